//! SFrame, RFC 9605.
//!
//! - Header (§4.3): a config byte `X K(3) Y C(3)`, then the key id and the
//!   counter in the fewest big-endian bytes; values below 8 sit in the config byte.
//! - Key schedule (§4.4.2): `secret = HKDF-Extract("", base_key)`, then key and
//!   salt expanded with the labels `"SFrame 1.0 Secret key " ‖ BE64(KID) ‖ BE16(suite)`
//!   and `"SFrame 1.0 Secret salt " ‖ …`.
//! - Nonce (§4.4.3): `salt XOR BE(CTR)`; AAD = header ‖ metadata.
//! - AES-CTR + HMAC suites (§4.5.1): key = enc_key ‖ auth_key, tag =
//!   HMAC(auth_key, BE64(len aad) ‖ BE64(len ct) ‖ BE64(Nt) ‖ nonce ‖ aad ‖ ct)
//!   truncated to Nt bytes.
//! - Replay protection on receive (§7.3 of the security considerations):
//!   a sliding window of [`REPLAY_WINDOW`] counters per key id.

use std::collections::HashMap;

use aes::{Aes128, cipher::KeyIvInit, cipher::StreamCipher};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};
use zeroize::Zeroizing;

use crate::backend::{GcmKey, GcmLibrary};
use crate::{FrameError, MAX_FRAME_LEN, SecretBytes};

/// How many counters behind the highest one a receiver still accepts.
pub const REPLAY_WINDOW: u64 = 128;
/// Longest header: config byte, 8 KID bytes, 8 CTR bytes.
pub const MAX_HEADER_LEN: usize = 17;

/// The cipher suites of RFC 9605 §4.5 (IANA registry, §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CipherSuite {
    AesCtr128HmacSha256_80,
    AesCtr128HmacSha256_64,
    AesCtr128HmacSha256_32,
    AesGcm128Sha256,
    AesGcm256Sha512,
}

impl CipherSuite {
    /// The suite with IANA value `id` (1–5).
    pub fn from_id(id: u16) -> Result<Self, FrameError> {
        Ok(match id {
            1 => CipherSuite::AesCtr128HmacSha256_80,
            2 => CipherSuite::AesCtr128HmacSha256_64,
            3 => CipherSuite::AesCtr128HmacSha256_32,
            4 => CipherSuite::AesGcm128Sha256,
            5 => CipherSuite::AesGcm256Sha512,
            other => return Err(FrameError::UnsupportedSuite(other)),
        })
    }

    pub fn id(self) -> u16 {
        match self {
            CipherSuite::AesCtr128HmacSha256_80 => 1,
            CipherSuite::AesCtr128HmacSha256_64 => 2,
            CipherSuite::AesCtr128HmacSha256_32 => 3,
            CipherSuite::AesGcm128Sha256 => 4,
            CipherSuite::AesGcm256Sha512 => 5,
        }
    }

    /// Nk: the AEAD key length (for CTR+HMAC, the AES key plus the HMAC key).
    pub fn key_len(self) -> usize {
        match self {
            CipherSuite::AesCtr128HmacSha256_80
            | CipherSuite::AesCtr128HmacSha256_64
            | CipherSuite::AesCtr128HmacSha256_32 => 48,
            CipherSuite::AesGcm128Sha256 => 16,
            CipherSuite::AesGcm256Sha512 => 32,
        }
    }

    /// Nn: the nonce length.
    pub fn nonce_len(self) -> usize {
        12
    }

    /// Nt: the tag length.
    pub fn tag_len(self) -> usize {
        match self {
            CipherSuite::AesCtr128HmacSha256_80 => 10,
            CipherSuite::AesCtr128HmacSha256_64 => 8,
            CipherSuite::AesCtr128HmacSha256_32 => 4,
            CipherSuite::AesGcm128Sha256 | CipherSuite::AesGcm256Sha512 => 16,
        }
    }

    fn uses_sha512(self) -> bool {
        self == CipherSuite::AesGcm256Sha512
    }
}

/// The SFrame header: key id and counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kid: u64,
    pub ctr: u64,
}

impl Header {
    /// Appends the shortest encoding of this header to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (k_bits, kid_bytes) = field(self.kid);
        let (c_bits, ctr_bytes) = field(self.ctr);
        out.push(k_bits << 4 | c_bits);
        out.extend_from_slice(&self.kid.to_be_bytes()[8 - kid_bytes..]);
        out.extend_from_slice(&self.ctr.to_be_bytes()[8 - ctr_bytes..]);
    }

    /// Parses a header at the start of `data`; returns it and its length.
    pub fn decode(data: &[u8]) -> Result<(Self, usize), FrameError> {
        let &config = data.first().ok_or(FrameError::Empty)?;
        let mut at = 1;
        let kid = read_field(data, &mut at, config >> 4)?;
        let ctr = read_field(data, &mut at, config & 0x0F)?;
        Ok((Header { kid, ctr }, at))
    }
}

/// Config-byte nibble and extra byte count for a value.
fn field(v: u64) -> (u8, usize) {
    if v < 8 {
        (v as u8, 0)
    } else {
        let len = 8 - (v.leading_zeros() as usize) / 8;
        (0x8 | (len as u8 - 1), len)
    }
}

fn read_field(data: &[u8], at: &mut usize, nibble: u8) -> Result<u64, FrameError> {
    if nibble & 0x8 == 0 {
        return Ok(u64::from(nibble));
    }
    let len = usize::from(nibble & 0x7) + 1;
    let bytes = data.get(*at..*at + len).ok_or(FrameError::BadHeader)?;
    *at += len;
    Ok(bytes.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
}

/// The key and salt derived for one key id, with the cipher expanded.
pub struct SframeKey {
    suite: CipherSuite,
    kid: u64,
    salt: [u8; 12],
    cipher: SuiteCipher,
}

impl core::fmt::Debug for SframeKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SframeKey").field("suite", &self.suite).field("kid", &self.kid).finish_non_exhaustive()
    }
}

enum SuiteCipher {
    Gcm(GcmKey),
    CtrHmac { enc_key: Zeroizing<[u8; 16]>, auth_key: Zeroizing<[u8; 32]> },
}

/// The values of the key schedule, exposed so tests can check each step.
pub struct KeySchedule {
    pub secret: SecretBytes,
    pub key: SecretBytes,
    pub salt: [u8; 12],
}

/// RFC 9605 §4.4.2: derives `sframe_key` and `sframe_salt` for `kid` from `base_key`.
pub fn derive(suite: CipherSuite, kid: u64, base_key: &SecretBytes) -> KeySchedule {
    let mut key_label = b"SFrame 1.0 Secret key ".to_vec();
    let mut salt_label = b"SFrame 1.0 Secret salt ".to_vec();
    for label in [&mut key_label, &mut salt_label] {
        label.extend_from_slice(&kid.to_be_bytes());
        label.extend_from_slice(&suite.id().to_be_bytes());
    }
    let mut key = Zeroizing::new(vec![0u8; suite.key_len()]);
    let mut salt = [0u8; 12];
    // Output lengths are at most 48 bytes, far below HKDF's 255·HashLen limit.
    let secret = if suite.uses_sha512() {
        let (prk, hk) = Hkdf::<Sha512>::extract(Some(&[]), base_key.expose());
        hk.expand(&key_label, &mut key).expect("key length within HKDF limit");
        hk.expand(&salt_label, &mut salt).expect("salt length within HKDF limit");
        prk.to_vec()
    } else {
        let (prk, hk) = Hkdf::<Sha256>::extract(Some(&[]), base_key.expose());
        hk.expand(&key_label, &mut key).expect("key length within HKDF limit");
        hk.expand(&salt_label, &mut salt).expect("salt length within HKDF limit");
        prk.to_vec()
    };
    KeySchedule { secret: SecretBytes::new(secret), key: SecretBytes::new(core::mem::take(&mut *key)), salt }
}

impl SframeKey {
    /// Derives the key for `kid` from a base key (RFC 9605 §4.4.2).
    pub fn derive(suite: CipherSuite, kid: u64, base_key: &SecretBytes) -> Result<Self, FrameError> {
        let schedule = derive(suite, kid, base_key);
        let cipher = match suite {
            CipherSuite::AesGcm128Sha256 | CipherSuite::AesGcm256Sha512 => {
                SuiteCipher::Gcm(GcmKey::new(GcmLibrary::preferred(), schedule.key.expose())?)
            }
            _ => {
                let (enc_key, auth_key) = ctr_hmac_keys(suite, &schedule.key)?;
                SuiteCipher::CtrHmac { enc_key, auth_key }
            }
        };
        Ok(Self { suite, kid, salt: schedule.salt, cipher })
    }

    pub fn kid(&self) -> u64 {
        self.kid
    }

    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    fn nonce(&self, ctr: u64) -> [u8; 12] {
        let mut nonce = self.salt;
        for (n, c) in nonce[4..].iter_mut().zip(ctr.to_be_bytes()) {
            *n ^= c;
        }
        nonce
    }

    /// Seals one frame with counter `ctr`: header ‖ ciphertext ‖ tag.
    pub fn seal(&self, ctr: u64, metadata: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        self.seal_into(ctr, metadata, plaintext, &mut out)?;
        Ok(out)
    }

    /// Seals one frame into `out`, replacing what it held. A caller that keeps
    /// `out` from frame to frame allocates nothing once it has grown to the
    /// largest frame: the plaintext is copied once and encrypted where it lies.
    pub fn seal_into(&self, ctr: u64, metadata: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        if plaintext.len() > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge { len: plaintext.len(), max: MAX_FRAME_LEN });
        }
        out.clear();
        out.reserve(MAX_HEADER_LEN + plaintext.len() + self.suite.tag_len());
        Header { kid: self.kid, ctr }.encode(out);
        let header_len = out.len();
        out.extend_from_slice(plaintext);
        let nonce = self.nonce(ctr);
        let (header, body) = out.split_at_mut(header_len);
        // AAD = header ‖ metadata (§4.4.3).
        match &self.cipher {
            SuiteCipher::Gcm(gcm) => {
                let tag = with_aad(header, metadata, |aad| gcm.seal(&nonce, aad, body))?;
                out.extend_from_slice(&tag);
            }
            SuiteCipher::CtrHmac { enc_key, auth_key } => {
                let tag_len = self.suite.tag_len();
                ctr_apply(enc_key, &nonce, body);
                let tag = with_aad(header, metadata, |aad| ctr_hmac_tag(auth_key, &nonce, aad, body, tag_len));
                out.extend_from_slice(&tag[..tag_len]);
            }
        }
        Ok(())
    }

    /// Opens a frame sealed under this key (no replay check; see [`SframeDecryptor`]).
    pub fn open(&self, metadata: &[u8], frame: &[u8]) -> Result<(Header, Vec<u8>), FrameError> {
        let mut out = Vec::with_capacity(frame.len());
        let header = self.open_into(metadata, frame, &mut out)?;
        Ok((header, out))
    }

    /// Opens a frame into `out`, replacing what it held (no replay check; see
    /// [`SframeDecryptor`]). No allocation once `out` has grown to the largest
    /// frame. On failure `out` is left empty.
    pub fn open_into(&self, metadata: &[u8], frame: &[u8], out: &mut Vec<u8>) -> Result<Header, FrameError> {
        out.clear();
        let (header, header_len) = Header::decode(frame)?;
        if header.kid != self.kid {
            return Err(FrameError::UnknownKeyIndex(header.kid));
        }
        self.open_after_header(header, header_len, metadata, frame, out)?;
        Ok(header)
    }

    fn open_after_header(
        &self,
        header: Header,
        header_len: usize,
        metadata: &[u8],
        frame: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FrameError> {
        out.clear();
        if frame.len() > MAX_FRAME_LEN + MAX_HEADER_LEN + 16 {
            return Err(FrameError::TooLarge { len: frame.len(), max: MAX_FRAME_LEN });
        }
        let tag_len = self.suite.tag_len();
        if frame.len() < header_len + tag_len {
            return Err(FrameError::Truncated { len: frame.len(), needed: header_len + tag_len });
        }
        let nonce = self.nonce(header.ctr);
        let (header_bytes, body) = frame.split_at(header_len);
        let result = with_aad(header_bytes, metadata, |aad| match &self.cipher {
            SuiteCipher::Gcm(gcm) => {
                out.extend_from_slice(body);
                gcm.open(&nonce, aad, out)?;
                out.truncate(out.len() - tag_len);
                Ok(())
            }
            SuiteCipher::CtrHmac { enc_key, auth_key } => {
                ctr_hmac_verify_decrypt(enc_key, auth_key, &nonce, aad, body, tag_len, out)
            }
        });
        if result.is_err() {
            out.clear();
        }
        result
    }
}

/// Runs `f` with AAD = `header ‖ metadata` (RFC 9605 §4.4.3), contiguous as
/// the AEADs want it: the header alone when there is no metadata (the usual
/// case), else a copy on the stack, or on the heap past 256 bytes.
fn with_aad<T>(header: &[u8], metadata: &[u8], f: impl FnOnce(&[u8]) -> T) -> T {
    if metadata.is_empty() {
        return f(header);
    }
    let len = header.len() + metadata.len();
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    let aad: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    aad[..header.len()].copy_from_slice(header);
    aad[header.len()..].copy_from_slice(metadata);
    f(aad)
}

/// The AES-CTR+HMAC AEAD of suites 1–3 on its own (RFC 9605 §4.5.1):
/// `key` is enc_key(16) ‖ auth_key(32); returns ciphertext ‖ truncated tag.
pub fn ctr_hmac_seal(
    suite: CipherSuite,
    key: &SecretBytes,
    nonce: &[u8; 12],
    aad: &[u8],
    pt: &[u8],
) -> Result<Vec<u8>, FrameError> {
    let (enc_key, auth_key) = ctr_hmac_keys(suite, key)?;
    let mut out = pt.to_vec();
    ctr_apply(&enc_key, nonce, &mut out);
    let tag = ctr_hmac_tag(&auth_key, nonce, aad, &out, suite.tag_len());
    out.extend_from_slice(&tag[..suite.tag_len()]);
    Ok(out)
}

/// Opens what [`ctr_hmac_seal`] sealed.
pub fn ctr_hmac_open(
    suite: CipherSuite,
    key: &SecretBytes,
    nonce: &[u8; 12],
    aad: &[u8],
    ct: &[u8],
) -> Result<Vec<u8>, FrameError> {
    let (enc_key, auth_key) = ctr_hmac_keys(suite, key)?;
    let mut out = Vec::new();
    ctr_hmac_verify_decrypt(&enc_key, &auth_key, nonce, aad, ct, suite.tag_len(), &mut out)?;
    Ok(out)
}

/// Checks the truncated tag at the end of `ct` (constant-time comparison),
/// then decrypts into `out` (appended).
fn ctr_hmac_verify_decrypt(
    enc_key: &[u8; 16],
    auth_key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    ct: &[u8],
    tag_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let Some(ct_len) = ct.len().checked_sub(tag_len) else {
        return Err(FrameError::Truncated { len: ct.len(), needed: tag_len });
    };
    let (body, tag) = ct.split_at(ct_len);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(auth_key).expect("HMAC takes any key length");
    ctr_hmac_input(&mut mac, nonce, aad, body, tag_len);
    mac.verify_truncated_left(tag).map_err(|_| FrameError::AuthenticationFailed)?;
    let start = out.len();
    out.extend_from_slice(body);
    ctr_apply(enc_key, nonce, &mut out[start..]);
    Ok(())
}

type CtrHmacKeys = (Zeroizing<[u8; 16]>, Zeroizing<[u8; 32]>);

fn ctr_hmac_keys(suite: CipherSuite, key: &SecretBytes) -> Result<CtrHmacKeys, FrameError> {
    if suite.key_len() != 48 || key.len() != 48 {
        return Err(FrameError::InvalidKey("AES-CTR+HMAC keys are 48 bytes (suites 1-3)"));
    }
    let k = key.expose();
    let mut enc_key = Zeroizing::new([0u8; 16]);
    let mut auth_key = Zeroizing::new([0u8; 32]);
    enc_key.copy_from_slice(&k[..16]);
    auth_key.copy_from_slice(&k[16..48]);
    Ok((enc_key, auth_key))
}

fn ctr_apply(enc_key: &[u8; 16], nonce: &[u8; 12], buf: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..12].copy_from_slice(nonce);
    let mut cipher = ctr::Ctr32BE::<Aes128>::new(enc_key.into(), (&iv).into());
    cipher.apply_keystream(buf);
}

fn ctr_hmac_input(mac: &mut Hmac<Sha256>, nonce: &[u8; 12], aad: &[u8], ct: &[u8], tag_len: usize) {
    mac.update(&(aad.len() as u64).to_be_bytes());
    mac.update(&(ct.len() as u64).to_be_bytes());
    mac.update(&(tag_len as u64).to_be_bytes());
    mac.update(nonce);
    mac.update(aad);
    mac.update(ct);
}

/// The full HMAC-SHA-256; the tag is its first `tag_len` bytes.
fn ctr_hmac_tag(auth_key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], ct: &[u8], tag_len: usize) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(auth_key).expect("HMAC takes any key length");
    ctr_hmac_input(&mut mac, nonce, aad, ct, tag_len);
    mac.finalize().into_bytes().into()
}

/// Seals frames for one key id with an increasing counter.
#[derive(Debug)]
pub struct SframeEncryptor {
    key: SframeKey,
    next_ctr: u64,
}

impl SframeEncryptor {
    pub fn new(key: SframeKey, first_ctr: u64) -> Self {
        Self { key, next_ctr: first_ctr }
    }

    pub fn seal(&mut self, metadata: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        self.seal_into(metadata, plaintext, &mut out)?;
        Ok(out)
    }

    /// Seals one frame into `out`, replacing what it held; see [`SframeKey::seal_into`].
    pub fn seal_into(&mut self, metadata: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let ctr = self.next_ctr;
        self.next_ctr = ctr.checked_add(1).ok_or(FrameError::CounterExhausted)?;
        self.key.seal_into(ctr, metadata, plaintext, out)
    }
}

/// Opens frames from any number of key ids, refusing replays.
#[derive(Debug, Default)]
pub struct SframeDecryptor {
    keys: HashMap<u64, (SframeKey, ReplayWindow)>,
}

impl SframeDecryptor {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_key(&mut self, key: SframeKey) {
        self.keys.insert(key.kid, (key, ReplayWindow::default()));
    }

    pub fn remove_key(&mut self, kid: u64) {
        self.keys.remove(&kid);
    }

    pub fn open(&mut self, metadata: &[u8], frame: &[u8]) -> Result<(Header, Vec<u8>), FrameError> {
        let mut out = Vec::with_capacity(frame.len());
        let header = self.open_into(metadata, frame, &mut out)?;
        Ok((header, out))
    }

    /// Opens a frame into `out`, replacing what it held, refusing replays.
    /// No allocation once `out` has grown to the largest frame. On failure
    /// `out` is left empty.
    pub fn open_into(&mut self, metadata: &[u8], frame: &[u8], out: &mut Vec<u8>) -> Result<Header, FrameError> {
        out.clear();
        let (header, header_len) = Header::decode(frame)?;
        let (key, window) = self.keys.get_mut(&header.kid).ok_or(FrameError::UnknownKeyIndex(header.kid))?;
        window.check(header.ctr)?;
        key.open_after_header(header, header_len, metadata, frame, out)?;
        window.accept(header.ctr);
        Ok(header)
    }
}

/// Sliding replay window: the highest accepted counter and a bitmap of the
/// [`REPLAY_WINDOW`] counters below it.
#[derive(Debug, Default, Clone)]
pub struct ReplayWindow {
    highest: Option<u64>,
    seen: u128,
}

impl ReplayWindow {
    /// Whether `ctr` may still be accepted.
    pub fn check(&self, ctr: u64) -> Result<(), FrameError> {
        let Some(highest) = self.highest else { return Ok(()) };
        if ctr > highest {
            return Ok(());
        }
        let age = highest - ctr;
        if age >= REPLAY_WINDOW || self.seen & (1u128 << age) != 0 {
            return Err(FrameError::Replay { ctr });
        }
        Ok(())
    }

    /// Records `ctr` as accepted (after it authenticated).
    pub fn accept(&mut self, ctr: u64) {
        match self.highest {
            None => {
                self.highest = Some(ctr);
                self.seen = 1;
            }
            Some(highest) if ctr > highest => {
                let shift = ctr - highest;
                self.seen = if shift >= REPLAY_WINDOW { 0 } else { self.seen << shift };
                self.seen |= 1;
                self.highest = Some(ctr);
            }
            Some(highest) => {
                let age = highest - ctr;
                if age < REPLAY_WINDOW {
                    self.seen |= 1u128 << age;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9605 key-schedule intermediates (secret, key, salt, nonce) for every suite.
    #[test]
    fn key_schedule_vectors() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sframe-rfc9605.json");
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let cases = v["sframe"].as_array().unwrap();
        assert_eq!(cases.len(), 5);
        for c in cases {
            let hx = |k: &str| hex::decode(c[k].as_str().unwrap()).unwrap();
            let suite = CipherSuite::from_id(c["cipher_suite"].as_u64().unwrap() as u16).unwrap();
            let kid = c["kid"].as_u64().unwrap();
            let s = derive(suite, kid, &SecretBytes::new(hx("base_key")));
            assert_eq!(s.secret.expose(), hx("sframe_secret"), "{suite:?}");
            assert_eq!(s.key.expose(), hx("sframe_key"), "{suite:?}");
            assert_eq!(s.salt.to_vec(), hx("sframe_salt"), "{suite:?}");
            let key = SframeKey::derive(suite, kid, &SecretBytes::new(hx("base_key"))).unwrap();
            assert_eq!(key.nonce(c["ctr"].as_u64().unwrap()).to_vec(), hx("nonce"), "{suite:?}");
        }
    }

    #[test]
    fn header_sizes() {
        let enc = |kid, ctr| {
            let mut v = Vec::new();
            Header { kid, ctr }.encode(&mut v);
            v
        };
        assert_eq!(enc(0, 0), vec![0x00]);
        assert_eq!(enc(7, 7), vec![0x77]);
        assert_eq!(enc(8, 0), vec![0x80, 8]);
        assert_eq!(enc(0, 0x100), vec![0x09, 1, 0]);
        assert_eq!(enc(u64::MAX, u64::MAX).len(), MAX_HEADER_LEN);
        assert_eq!(Header::decode(&[0x80]), Err(FrameError::BadHeader));
        assert_eq!(Header::decode(&[]), Err(FrameError::Empty));
    }

    #[test]
    fn replay_window() {
        let mut w = ReplayWindow::default();
        w.accept(10);
        assert!(w.check(10).is_err());
        assert!(w.check(9).is_ok());
        w.accept(9);
        assert!(w.check(9).is_err());
        w.accept(10 + REPLAY_WINDOW);
        assert!(w.check(10).is_err(), "fell out of the window");
        assert!(w.check(11).is_ok());
        assert!(w.check(10 + REPLAY_WINDOW).is_err());
        w.accept(u64::MAX);
        assert!(w.check(u64::MAX).is_err());
    }
}
