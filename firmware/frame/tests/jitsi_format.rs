//! The `jitsi` format end to end through FrameEncryptor/FrameDecryptor:
//! round trips for any payload, and typed errors for every kind of bad input.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use cloakroom_frame::jitsi::{JitsiKey, OVERHEAD, make_iv};
use cloakroom_frame::{
    FrameDecryptor, FrameEncryptor, FrameError, FrameMeta, GcmLibrary, KeyMaterial, MAX_FRAME_LEN, MediaKind,
};
use proptest::prelude::*;

fn material(b: u8) -> KeyMaterial {
    KeyMaterial::from_hex(&format!("{b:02x}").repeat(32)).unwrap()
}

fn pair(index: u8) -> (FrameEncryptor, FrameDecryptor) {
    let mut tx = FrameEncryptor::new(|| 1234);
    let mut rx = FrameDecryptor::new();
    tx.set_key(index, material(0x42));
    rx.set_key(index, material(0x42));
    (tx, rx)
}

const KINDS: [MediaKind; 3] = [MediaKind::Vp8Key, MediaKind::Vp8Delta, MediaKind::Opus];

proptest! {
    #[test]
    fn any_payload_round_trips(payload in proptest::collection::vec(any::<u8>(), 1..3000), kind in 0usize..3, ssrc: u32, ts: u32, index: u8) {
        let kind = KINDS[kind];
        let (mut tx, mut rx) = pair(index);
        let sealed = tx.seal(FrameMeta { ssrc, rtp_timestamp: ts, kind }, &payload).unwrap();
        prop_assert_eq!(sealed.len(), payload.len() + OVERHEAD);
        prop_assert_eq!(rx.open(kind, &sealed).unwrap(), payload);
    }

    #[test]
    fn any_single_bit_flip_is_refused(payload in proptest::collection::vec(any::<u8>(), 1..200), bit in 0usize..8, pos_seed: usize) {
        let (mut tx, mut rx) = pair(1);
        let sealed = tx.seal(FrameMeta { ssrc: 1, rtp_timestamp: 2, kind: MediaKind::Vp8Delta }, &payload).unwrap();
        let mut bad = sealed.clone();
        let pos = pos_seed % bad.len();
        bad[pos] ^= 1 << bit;
        prop_assert!(rx.open(MediaKind::Vp8Delta, &bad).is_err());
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300), kind in 0usize..4) {
        let kind = [MediaKind::Vp8Key, MediaKind::Vp8Delta, MediaKind::Opus, MediaKind::H264][kind];
        let (_, mut rx) = pair(0);
        prop_assert!(rx.open(kind, &data).is_err());
    }
}

#[test]
fn both_libraries_produce_identical_frames() {
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let iv = make_iv(7, 8, 9);
    let a =
        JitsiKey::with_library(3, material(1), GcmLibrary::RustCrypto).seal(MediaKind::Vp8Key, &iv, &payload).unwrap();
    let b = JitsiKey::new(3, material(1)).seal(MediaKind::Vp8Key, &iv, &payload).unwrap();
    assert_eq!(a, b, "preferred library ({}) differs from RustCrypto", GcmLibrary::preferred().as_str());
}

#[test]
fn bad_inputs_give_typed_errors() {
    let (mut tx, mut rx) = pair(5);
    let meta = FrameMeta { ssrc: 9, rtp_timestamp: 10, kind: MediaKind::Vp8Key };
    let sealed = tx.seal(meta, &[0x10; 100]).unwrap();
    let n = sealed.len();

    assert_eq!(rx.open(MediaKind::Vp8Key, &[]), Err(FrameError::Empty));
    assert!(matches!(rx.open(MediaKind::Vp8Key, &sealed[..OVERHEAD - 1]), Err(FrameError::Truncated { .. })));

    let mut wrong_iv_len = sealed.clone();
    wrong_iv_len[n - 2] = 16;
    assert_eq!(rx.open(MediaKind::Vp8Key, &wrong_iv_len), Err(FrameError::WrongIvLength(16)));

    let mut unknown = sealed.clone();
    unknown[n - 1] = 6;
    assert_eq!(rx.open(MediaKind::Vp8Key, &unknown), Err(FrameError::UnknownKeyIndex(6)));

    let mut clear_tampered = sealed.clone();
    clear_tampered[2] ^= 0x80;
    assert_eq!(rx.open(MediaKind::Vp8Key, &clear_tampered), Err(FrameError::AuthenticationFailed));

    let mut body_tampered = sealed.clone();
    body_tampered[50] ^= 1;
    assert_eq!(rx.open(MediaKind::Vp8Key, &body_tampered), Err(FrameError::AuthenticationFailed));

    let mut iv_tampered = sealed.clone();
    iv_tampered[n - 3] ^= 1;
    assert_eq!(rx.open(MediaKind::Vp8Key, &iv_tampered), Err(FrameError::AuthenticationFailed));

    // Opened as the wrong kind: the clear/encrypted split moves, the tag fails.
    assert_eq!(rx.open(MediaKind::Vp8Delta, &sealed), Err(FrameError::AuthenticationFailed));

    let huge = vec![0u8; MAX_FRAME_LEN + 1];
    assert!(matches!(tx.seal(meta, &huge), Err(FrameError::TooLarge { .. })));
    let huge_sealed = vec![0u8; MAX_FRAME_LEN + 2 * OVERHEAD + 1];
    assert!(matches!(rx.open(MediaKind::Vp8Key, &huge_sealed), Err(FrameError::TooLarge { .. })));
    assert_eq!(tx.seal(meta, &[]), Err(FrameError::Empty));

    // After all that the receiver still opens the genuine frame.
    assert_eq!(rx.open(MediaKind::Vp8Key, &sealed).unwrap(), vec![0x10; 100]);
}

#[test]
fn large_frames_round_trip() {
    let (mut tx, mut rx) = pair(0);
    let payload: Vec<u8> = (0..150_000u32).map(|i| (i ^ (i >> 8)) as u8).collect();
    let sealed = tx.seal(FrameMeta { ssrc: 1, rtp_timestamp: 1, kind: MediaKind::Vp8Key }, &payload).unwrap();
    assert_eq!(rx.open(MediaKind::Vp8Key, &sealed).unwrap(), payload);
}
