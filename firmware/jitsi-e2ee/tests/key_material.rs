//! The raw 32-byte key lib-jitsi-meet sends in key-info is what
//! `cloakroom_frame`'s `JitsiKey::new` and `KeyMaterial::ratchet` expect.
//!
//! The vectors were computed with WebCrypto (`crypto.subtle` in Node 20), the
//! API lib-jitsi-meet's `crypto-utils.ts` calls, doing exactly what its worker
//! does with a key from key-info: `importKey('raw', key, 'HKDF')`, then
//! `deriveKey` HKDF-SHA-256 (salt "JFrameEncryptionKey", empty info) to
//! AES-GCM-128 and `encrypt` with the clear byte as additional data, and
//! `deriveBits` HKDF-SHA-256 (salt "JFrameRatchetKey", empty info, 256 bits)
//! for the ratchet. Key = bytes 0..31, IV = a0..ab, payload "Opus frame
//! payload for the vector" (its first byte, the Opus TOC, stays clear).

use cloakroom_frame::jitsi::JitsiKey;
use cloakroom_frame::{KeyMaterial, MediaKind};

const RAW: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const RATCHET_1: &str = "9cd33ec25c547bf5cfe62de2a08f9b767369d9eeff69fa4964abecf1cbea2a71";
const RATCHET_2: &str = "e347bf02dd1314e4039f15930bc322037d002123ea8a8e2f8543cdc86ba5afd1";
const IV: &str = "a0a1a2a3a4a5a6a7a8a9aaab";
const PAYLOAD: &[u8] = b"Opus frame payload for the vector";
const CIPHERTEXT_AND_TAG: &str =
    "2986d1b5c1c678f95d597b478992a8e42c68799ce85934ce9f75ffc108addf074bdd83d4ab905fc4e9130af505c25cc9";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

#[test]
fn key_material_ratchet_is_lib_jitsi_meets() {
    let m = KeyMaterial::from_hex(RAW).expect("key");
    assert!(m.ratchet() == KeyMaterial::from_hex(RATCHET_1).expect("key"));
    assert!(m.ratchet_n(2) == KeyMaterial::from_hex(RATCHET_2).expect("key"));
}

#[test]
fn jitsi_key_from_raw_bytes_seals_as_lib_jitsi_meet() {
    let key = JitsiKey::new(3, KeyMaterial::from_hex(RAW).expect("key"));
    let iv: [u8; 12] = unhex(IV).try_into().expect("12 bytes");
    let sealed = key.seal(MediaKind::Opus, &iv, PAYLOAD).expect("seals");
    let mut expected = vec![PAYLOAD[0]];
    expected.extend(unhex(CIPHERTEXT_AND_TAG));
    expected.extend(&iv);
    expected.extend([12, 3]);
    assert_eq!(sealed, expected);
}
