//! Our media key and the key-info plaintext lib-jitsi-meet sends through Olm.
//!
//! lib-jitsi-meet (`modules/e2ee/ManagedKeyHandler.js`, `OlmAdapter.js` at
//! 01daa07c3f8c) makes a media key from 32 bytes of `crypto.getRandomValues`
//! and sends those raw bytes, base64-encoded with padding (`base64-js`), as
//! `{"key": "<base64>", "keyIndex": n}` inside an Olm message (`{}` before it
//! has a key, `"key": false` when E2EE is off). The receiving worker
//! (`Worker.ts`, `Context.ts`) imports the raw bytes as an HKDF key and derives
//! the AES-128-GCM frame key with HKDF-SHA-256 (salt `JFrameEncryptionKey`,
//! empty info), and `crypto-utils.ts`'s `ratchet` is HKDF-SHA-256 (salt
//! `JFrameRatchetKey`, empty info, 256 bits) over the raw bytes.
//!
//! So the 32 bytes carried here are exactly the `material` of
//! [`cloakroom_frame::jitsi::JitsiKey::new`], which derives its AES key the
//! same way (firmware/frame/src/jitsi.rs), and this module's `ratchet` equals both
//! lib-jitsi-meet's `ratchet` and [`KeyMaterial::ratchet`] (firmware/frame/src/keys.rs).
//! The crate's tests check both against vectors computed with WebCrypto
//! (Node's `crypto.subtle`, the API lib-jitsi-meet calls), see
//! `tests/key_material.rs`. The frame crate keeps its bytes private, so our
//! own key is held here as zeroized raw bytes and handed out as
//! [`KeyMaterial`] copies.
//!
//! The key index lib-jitsi-meet sends grows by one per new key without bound;
//! its frame trailer carries `keyIndex % 16` (`Context.ts`, `KEYRING_SIZE`),
//! which is the index this crate gives in its outputs.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use cloakroom_frame::KeyMaterial;
use hkdf::Hkdf;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Salt of lib-jitsi-meet's ratchet (`crypto-utils.ts`).
const RATCHET_SALT: &[u8] = b"JFrameRatchetKey";
/// Slots of lib-jitsi-meet's key ring (`Context.ts`); the frame trailer holds `keyIndex % 16`.
const KEY_RING_SIZE: u64 = 16;

/// Padded standard base64 as `base64-js` writes it; either form is read.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// 32 secret bytes, wiped on drop.
pub(crate) type RawKey = Zeroizing<[u8; 32]>;

/// A fresh random media key.
pub(crate) fn random_key() -> RawKey {
    let mut key = Zeroizing::new([0u8; 32]);
    crate::fill_random(&mut *key);
    key
}

/// lib-jitsi-meet's ratchet: HKDF-SHA-256(key, salt "JFrameRatchetKey", no info, 32 bytes).
pub(crate) fn ratchet(key: &[u8; 32]) -> RawKey {
    let mut next = Zeroizing::new([0u8; 32]);
    // Cannot fail: 32 bytes is far below HKDF-SHA-256's limit of 255 * 32.
    Hkdf::<Sha256>::new(Some(RATCHET_SALT), key)
        .expand(&[], &mut *next)
        .expect("32 bytes is a valid HKDF-SHA-256 output length");
    next
}

/// A [`KeyMaterial`] holding a copy of `key`.
pub(crate) fn material(key: &[u8; 32]) -> KeyMaterial {
    let mut copy = [0u8; 32];
    copy.copy_from_slice(key);
    // from_bytes wipes `copy`.
    KeyMaterial::from_bytes(&mut copy)
}

/// The JFrame key index (the frame trailer's byte) for lib-jitsi-meet's key counter.
pub(crate) fn frame_index(key_index: u64) -> u8 {
    // Cannot truncate: the remainder is below 16.
    (key_index % KEY_RING_SIZE) as u8
}

/// The key-info plaintext for our current key: `{"key":"<base64>","keyIndex":n}`,
/// built in one buffer that is wiped on drop.
pub(crate) fn key_info_plaintext(key: &[u8; 32], key_index: u64) -> Zeroizing<String> {
    let mut encoded = Zeroizing::new([0u8; 44]);
    // Cannot fail: 32 bytes encode to exactly 44 padded characters.
    let len = KEY_BASE64.encode_slice(key, &mut *encoded).expect("44 bytes hold the base64 of 32 bytes");
    let mut text = Zeroizing::new(String::with_capacity(96));
    text.push_str("{\"key\":\"");
    // Cannot fail: base64 is ASCII.
    text.push_str(core::str::from_utf8(&encoded[..len]).expect("base64 is ASCII"));
    text.push_str("\",\"keyIndex\":");
    text.push_str(&key_index.to_string());
    text.push('}');
    text
}

/// What a peer's key-info plaintext says.
pub(crate) enum KeyInfo {
    /// `{}`: the peer has no key yet (lib-jitsi-meet then neither applies nor acknowledges it).
    Absent,
    /// `"key": false` (or another false-ish value): the peer turned E2EE off.
    Disabled,
    /// A key and its index.
    Key { key_index: u64, key: RawKey },
}

#[derive(Deserialize)]
struct KeyInfoFields<'a> {
    #[serde(borrow, default)]
    key: Option<&'a RawValue>,
    #[serde(rename = "keyIndex", default)]
    key_index: Option<u64>,
}

/// Parses a decrypted key-info plaintext. Errors never quote the plaintext.
pub(crate) fn parse_key_info(plaintext: &[u8]) -> Result<KeyInfo, &'static str> {
    let fields: KeyInfoFields<'_> =
        serde_json::from_slice(plaintext).map_err(|_| "key info is not a JSON object with key and keyIndex")?;
    let (Some(raw), Some(key_index)) = (fields.key, fields.key_index) else {
        return Ok(KeyInfo::Absent);
    };
    let raw = raw.get();
    match raw {
        "false" | "null" | "0" | "\"\"" => return Ok(KeyInfo::Disabled),
        _ => {}
    }
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return Err("key info's key is neither a string nor false");
    };
    if inner.contains('\\') {
        return Err("key info's key is not plain base64");
    }
    let mut buf = Zeroizing::new([0u8; 48]);
    let len =
        KEY_BASE64.decode_slice(inner.as_bytes(), &mut *buf).map_err(|_| "key info's key is not base64 of 32 bytes")?;
    if len != 32 {
        return Err("key info's key is not 32 bytes");
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&buf[..32]);
    Ok(KeyInfo::Key { key_index, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_round_trips_and_is_padded_base64() {
        let key = [7u8; 32];
        let text = key_info_plaintext(&key, 3);
        assert!(text.starts_with("{\"key\":\"BwcH"));
        assert!(text.ends_with("=\",\"keyIndex\":3}"), "{}", text.len());
        match parse_key_info(text.as_bytes()).expect("parses") {
            KeyInfo::Key { key_index, key: parsed } => {
                assert_eq!(key_index, 3);
                assert_eq!(*parsed, key);
            }
            _ => panic!("expected a key"),
        }
    }

    #[test]
    fn absent_disabled_and_bad_keys() {
        assert!(matches!(parse_key_info(b"{}"), Ok(KeyInfo::Absent)));
        assert!(matches!(parse_key_info(b"{\"key\":false,\"keyIndex\":2}"), Ok(KeyInfo::Disabled)));
        assert!(parse_key_info(b"{\"key\":\"AAAA\",\"keyIndex\":1}").is_err());
        assert!(parse_key_info(b"{\"key\":true,\"keyIndex\":1}").is_err());
        assert!(parse_key_info(b"{\"key\":\"AAAA\",\"keyIndex\":-1}").is_err());
        assert!(parse_key_info(b"[1,2]").is_err());
        assert!(parse_key_info(b"\xff\xfe").is_err());
        // Unpadded is read too.
        let unpadded = format!("{{\"key\":\"{}\",\"keyIndex\":0}}", "A".repeat(43));
        assert!(matches!(parse_key_info(unpadded.as_bytes()), Ok(KeyInfo::Key { .. })));
    }

    #[test]
    fn ratchet_matches_webcrypto_and_the_frame_crate() {
        // WebCrypto (Node 20) HKDF-SHA-256, salt "JFrameRatchetKey", empty info,
        // 256 bits, over bytes 0..31: see tests/key_material.rs.
        let raw: [u8; 32] = core::array::from_fn(|i| i as u8);
        let expected = "9cd33ec25c547bf5cfe62de2a08f9b767369d9eeff69fa4964abecf1cbea2a71";
        let next = ratchet(&raw);
        let hex: String = next.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        assert!(material(&next) == material(&raw).ratchet());
    }

    #[test]
    fn frame_index_is_the_key_ring_slot() {
        assert_eq!(frame_index(0), 0);
        assert_eq!(frame_index(15), 15);
        assert_eq!(frame_index(16), 0);
        assert_eq!(frame_index(33), 1);
    }
}
