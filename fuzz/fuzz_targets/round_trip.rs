//! Seal then open, in every format, for arbitrary payloads and parameters: the plaintext comes back.
#![no_main]

use arbitrary::Arbitrary;
use cloakroom_frame::sframe::{CipherSuite, SframeDecryptor, SframeKey};
use cloakroom_frame::{FrameDecryptor, FrameEncryptor, FrameError, FrameMeta, KeyMaterial, MediaKind, SecretBytes};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    kind: u8,
    ssrc: u32,
    timestamp: u32,
    seed: u32,
    key_index: u8,
    ratchets: u8,
    material: [u8; 32],
    payload: &'a [u8],
    suite: u8,
    kid: u64,
    ctr: u64,
    metadata: &'a [u8],
}

fuzz_target!(|i: Input<'_>| {
    let kind = [MediaKind::Vp8Key, MediaKind::Vp8Delta, MediaKind::Opus, MediaKind::H264][usize::from(i.kind % 4)];
    let seed = i.seed;
    let mut tx = FrameEncryptor::new(move || seed);
    let mut rx = FrameDecryptor::new();
    let mut m = i.material;
    let material = KeyMaterial::from_bytes(&mut m);
    rx.set_key(i.key_index, material.clone());
    tx.set_key(i.key_index, material.ratchet_n(u32::from(i.ratchets % 10)));
    match tx.seal(FrameMeta { ssrc: i.ssrc, rtp_timestamp: i.timestamp, kind }, i.payload) {
        Ok(sealed) => {
            let opened = rx.open(kind, &sealed);
            if i.ratchets % 10 <= 8 {
                assert_eq!(opened.expect("sealed frame opens within the ratchet window"), i.payload);
            } else {
                assert!(opened.is_err());
            }
        }
        Err(FrameError::Empty | FrameError::NoSliceNal | FrameError::Truncated { .. } | FrameError::TooLarge { .. }) => {}
        Err(e) => panic!("unexpected seal error {e:?}"),
    }

    let Ok(suite) = CipherSuite::from_id(u16::from(i.suite % 5) + 1) else { return };
    let base = SecretBytes::new(i.material.to_vec());
    let key = SframeKey::derive(suite, i.kid, &base).expect("derive");
    let sealed = key.seal(i.ctr, i.metadata, i.payload).expect("sframe seal");
    let mut srx = SframeDecryptor::new();
    srx.add_key(SframeKey::derive(suite, i.kid, &base).expect("derive"));
    let (h, pt) = srx.open(i.metadata, &sealed).expect("sframe open");
    assert_eq!((h.kid, h.ctr, pt.as_slice()), (i.kid, i.ctr, i.payload));
});
