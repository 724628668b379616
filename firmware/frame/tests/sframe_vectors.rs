//! Every RFC 9605 test vector in tests/data/sframe-rfc9605.json (a copy; see tests/data/README.md)
//! (header encodings, AES-CTR+HMAC AEAD, full SFrame encryption).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use cloakroom_frame::FrameError;
use cloakroom_frame::SecretBytes;
use cloakroom_frame::sframe::{self, CipherSuite, Header, SframeDecryptor, SframeKey};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    header: Vec<HeaderCase>,
    aes_ctr_hmac: Vec<AeadCase>,
    sframe: Vec<SframeCase>,
}

#[derive(Deserialize)]
struct HeaderCase {
    kid: u64,
    ctr: u64,
    encoded: String,
}

#[derive(Deserialize)]
struct AeadCase {
    cipher_suite: u16,
    key: String,
    nonce: String,
    aad: String,
    pt: String,
    ct: String,
}

#[derive(Deserialize)]
struct SframeCase {
    cipher_suite: u16,
    kid: u64,
    ctr: u64,
    base_key: String,
    sframe_secret: String,
    sframe_key: String,
    sframe_salt: String,
    metadata: String,
    pt: String,
    ct: String,
}

fn vectors() -> Vectors {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sframe-rfc9605.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).expect("vector file parses")
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex in vector file")
}

#[test]
fn header_vectors() {
    let v = vectors();
    assert!(v.header.len() > 200, "expected the RFC's full header table, got {}", v.header.len());
    for case in &v.header {
        let mut out = Vec::new();
        Header { kid: case.kid, ctr: case.ctr }.encode(&mut out);
        assert_eq!(hex::encode(&out), case.encoded, "encode kid={} ctr={}", case.kid, case.ctr);
        let (header, len) = Header::decode(&h(&case.encoded)).unwrap();
        assert_eq!((header.kid, header.ctr, len), (case.kid, case.ctr, out.len()));
    }
}

/// The AES-CTR+HMAC AEAD alone (RFC 9605 §4.5.1), from raw key and nonce.
#[test]
fn aes_ctr_hmac_vectors() {
    let v = vectors();
    assert_eq!(v.aes_ctr_hmac.len(), 3);
    for case in &v.aes_ctr_hmac {
        let suite = CipherSuite::from_id(case.cipher_suite).unwrap();
        let key = SecretBytes::new(h(&case.key));
        let nonce: [u8; 12] = h(&case.nonce).try_into().unwrap();
        let ct = sframe::ctr_hmac_seal(suite, &key, &nonce, &h(&case.aad), &h(&case.pt)).unwrap();
        assert_eq!(hex::encode(&ct), case.ct, "suite {}", case.cipher_suite);
        let pt = sframe::ctr_hmac_open(suite, &key, &nonce, &h(&case.aad), &ct).unwrap();
        assert_eq!(hex::encode(pt), case.pt);
        let mut bad = ct.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            sframe::ctr_hmac_open(suite, &key, &nonce, &h(&case.aad), &bad),
            Err(FrameError::AuthenticationFailed)
        );
    }
}

#[test]
fn sframe_vectors_all_suites() {
    let v = vectors();
    let suites: Vec<u16> = v.sframe.iter().map(|c| c.cipher_suite).collect();
    assert_eq!(suites, vec![1, 2, 3, 4, 5]);
    for case in &v.sframe {
        let suite = CipherSuite::from_id(case.cipher_suite).unwrap();
        let base = SecretBytes::new(h(&case.base_key));
        // The intermediate values (secret, key, salt) are checked by the unit
        // test `sframe::tests::key_schedule_vectors`, which may see secrets.
        let _ = (&case.sframe_secret, &case.sframe_key, &case.sframe_salt);
        let key = SframeKey::derive(suite, case.kid, &base).unwrap();
        let sealed = key.seal(case.ctr, &h(&case.metadata), &h(&case.pt)).unwrap();
        assert_eq!(hex::encode(&sealed), case.ct, "ciphertext, suite {}", case.cipher_suite);

        let mut rx = SframeDecryptor::new();
        rx.add_key(SframeKey::derive(suite, case.kid, &base).unwrap());
        let (header, pt) = rx.open(&h(&case.metadata), &h(&case.ct)).unwrap();
        assert_eq!((header.kid, header.ctr), (case.kid, case.ctr));
        assert_eq!(hex::encode(pt), case.pt);
        assert_eq!(
            rx.open(&h(&case.metadata), &h(&case.ct)),
            Err(FrameError::Replay { ctr: case.ctr }),
            "replay refused"
        );

        // Metadata is authenticated.
        let mut rx = SframeDecryptor::new();
        rx.add_key(SframeKey::derive(suite, case.kid, &base).unwrap());
        assert_eq!(rx.open(b"other metadata", &h(&case.ct)), Err(FrameError::AuthenticationFailed));
        // A refused frame does not burn its counter.
        assert!(rx.open(&h(&case.metadata), &h(&case.ct)).is_ok());
    }
}

#[test]
fn unknown_kid_and_suite() {
    assert_eq!(CipherSuite::from_id(6).unwrap_err(), FrameError::UnsupportedSuite(6));
    let base = SecretBytes::new(vec![1; 16]);
    let key = SframeKey::derive(CipherSuite::AesGcm128Sha256, 5, &base).unwrap();
    let frame = key.seal(1, b"", b"payload").unwrap();
    let mut rx = SframeDecryptor::new();
    rx.add_key(SframeKey::derive(CipherSuite::AesGcm128Sha256, 6, &base).unwrap());
    assert_eq!(rx.open(b"", &frame), Err(FrameError::UnknownKeyIndex(5)));
}
