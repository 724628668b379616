//! The paths where the caller gives the buffer (`seal_into`, `seal_in_place`,
//! `open_into`) produce exactly what the allocating ones do, whatever the
//! buffer held before, and allocate nothing once the buffer has grown.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use cloakroom_frame::jitsi::{JitsiKey, OVERHEAD, make_iv};
use cloakroom_frame::sframe::{CipherSuite, SframeDecryptor, SframeEncryptor, SframeKey};
use cloakroom_frame::{
    FrameDecryptor, FrameEncryptor, FrameError, FrameMeta, GcmLibrary, KeyMaterial, MediaKind, SecretBytes,
};
use proptest::prelude::*;

const FIXTURE: &[u8] = include_bytes!("data/x264-160x120.h264");

fn material(b: u8) -> KeyMaterial {
    KeyMaterial::from_hex(&format!("{b:02x}").repeat(32)).unwrap()
}

const KINDS: [MediaKind; 3] = [MediaKind::Vp8Key, MediaKind::Vp8Delta, MediaKind::Opus];

fn libraries() -> Vec<GcmLibrary> {
    let mut all = vec![GcmLibrary::RustCrypto];
    if GcmLibrary::preferred() != GcmLibrary::RustCrypto {
        all.push(GcmLibrary::preferred());
    }
    all
}

proptest! {
    #[test]
    fn jitsi_buffer_paths_match(payload in proptest::collection::vec(any::<u8>(), 1..3000), kind in 0usize..3, junk in proptest::collection::vec(any::<u8>(), 0..100), ts: u32) {
        let kind = KINDS[kind];
        for library in libraries() {
            let key = JitsiKey::with_library(5, material(7), library);
            let iv = make_iv(9, ts, 11);
            let sealed = key.seal(kind, &iv, &payload).unwrap();
            let mut out = junk.clone();
            key.seal_into(kind, &iv, &payload, &mut out).unwrap();
            prop_assert_eq!(&out, &sealed);
            let mut frame = payload.clone();
            key.seal_in_place(kind, &iv, &mut frame).unwrap();
            prop_assert_eq!(&frame, &sealed);
            let mut plain = junk.clone();
            key.open_into(kind, &sealed, &mut plain).unwrap();
            prop_assert_eq!(&plain, &payload);
        }
    }

    #[test]
    fn sframe_buffer_paths_match(payload in proptest::collection::vec(any::<u8>(), 0..3000), metadata in proptest::collection::vec(any::<u8>(), 0..300), suite in 1u16..=5, junk in proptest::collection::vec(any::<u8>(), 0..100), ctr: u64) {
        let suite = CipherSuite::from_id(suite).unwrap();
        let base = SecretBytes::new(vec![0x33; 16]);
        let key = SframeKey::derive(suite, 0x1234, &base).unwrap();
        let sealed = key.seal(ctr, &metadata, &payload).unwrap();
        let mut out = junk.clone();
        key.seal_into(ctr, &metadata, &payload, &mut out).unwrap();
        prop_assert_eq!(&out, &sealed);
        let mut plain = junk.clone();
        let header = key.open_into(&metadata, &sealed, &mut plain).unwrap();
        prop_assert_eq!(header.ctr, ctr);
        prop_assert_eq!(&plain, &payload);
        let mut rx = SframeDecryptor::new();
        rx.add_key(SframeKey::derive(suite, 0x1234, &base).unwrap());
        let mut plain = junk.clone();
        rx.open_into(&metadata, &sealed, &mut plain).unwrap();
        prop_assert_eq!(&plain, &payload);
        prop_assert_eq!(rx.open_into(&metadata, &sealed, &mut plain), Err(FrameError::Replay { ctr }));
        prop_assert!(plain.is_empty(), "a refused frame leaves the buffer empty");
    }
}

#[test]
fn h264_buffer_paths_match_on_x264_output() {
    let mut tx = FrameEncryptor::new(|| 0x3ff);
    let mut tx_into = FrameEncryptor::new(|| 0x3ff);
    let mut tx_in_place = FrameEncryptor::new(|| 0x3ff);
    let mut rx = FrameDecryptor::new();
    for t in [&mut tx, &mut tx_into, &mut tx_in_place] {
        t.set_key(2, material(4));
    }
    rx.set_key(2, material(4));
    let mut out = Vec::new();
    let mut plain = Vec::new();
    // Whole fixture and slices of it as access units: any bytes with a slice NAL unit.
    let mut units = vec![FIXTURE];
    units.extend(FIXTURE.chunks(700).filter(|c| cloakroom_frame::h264::clear_prefix_len(c).is_ok()));
    assert!(units.len() > 3);
    for (i, au) in units.into_iter().enumerate() {
        // Counts from 0x3ff on put `00 00 03 ff`, `00 00 04 00`, ... in the IV: escapes in the trailer.
        let meta = FrameMeta { ssrc: 0x100, rtp_timestamp: i as u32 * 3000, kind: MediaKind::H264 };
        let sealed = tx.seal(meta, au).unwrap();
        tx_into.seal_into(meta, au, &mut out).unwrap();
        assert_eq!(out, sealed);
        let mut frame = au.to_vec();
        tx_in_place.seal_in_place(meta, &mut frame).unwrap();
        assert_eq!(frame, sealed);
        rx.open_into(MediaKind::H264, &sealed, &mut plain).unwrap();
        assert_eq!(plain, au);
    }
}

#[test]
fn reused_buffers_stop_allocating() {
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i * 31 + 7) as u8).collect();
    let mut tx = FrameEncryptor::new(|| 0);
    let mut rx = FrameDecryptor::new();
    tx.set_key(0, material(1));
    rx.set_key(0, material(1));
    let meta = FrameMeta { ssrc: 1, rtp_timestamp: 0, kind: MediaKind::Vp8Delta };
    let (mut sealed, mut plain) = (Vec::new(), Vec::new());
    tx.seal_into(meta, &payload, &mut sealed).unwrap();
    rx.open_into(MediaKind::Vp8Delta, &sealed, &mut plain).unwrap();
    let (sealed_at, plain_at) = (sealed.as_ptr(), plain.as_ptr());
    for n in 1..50 {
        let len = payload.len() - n * 100;
        tx.seal_into(meta, &payload[..len], &mut sealed).unwrap();
        assert_eq!(sealed.len(), len + OVERHEAD);
        rx.open_into(MediaKind::Vp8Delta, &sealed, &mut plain).unwrap();
        assert_eq!(plain, payload[..len]);
    }
    assert_eq!((sealed.as_ptr(), plain.as_ptr()), (sealed_at, plain_at), "no reallocation");

    let base = SecretBytes::new(vec![0x5a; 16]);
    let mut tx = SframeEncryptor::new(SframeKey::derive(CipherSuite::AesGcm128Sha256, 3, &base).unwrap(), 0);
    let mut rx = SframeDecryptor::new();
    rx.add_key(SframeKey::derive(CipherSuite::AesGcm128Sha256, 3, &base).unwrap());
    tx.seal_into(&[], &payload, &mut sealed).unwrap();
    rx.open_into(&[], &sealed, &mut plain).unwrap();
    let (sealed_at, plain_at) = (sealed.as_ptr(), plain.as_ptr());
    for n in 1..50 {
        tx.seal_into(&[], &payload[..payload.len() - n], &mut sealed).unwrap();
        rx.open_into(&[], &sealed, &mut plain).unwrap();
        assert_eq!(plain, payload[..payload.len() - n]);
    }
    assert_eq!((sealed.as_ptr(), plain.as_ptr()), (sealed_at, plain_at), "no reallocation");
}

#[test]
fn ratcheting_open_into_and_failures_leave_the_buffer_empty() {
    let mut tx = FrameEncryptor::new(|| 0);
    let mut rx = FrameDecryptor::new();
    tx.set_key(1, material(9));
    rx.set_key(1, material(9));
    for _ in 0..5 {
        tx.ratchet();
    }
    let meta = FrameMeta { ssrc: 1, rtp_timestamp: 0, kind: MediaKind::Vp8Key };
    let mut sealed = Vec::new();
    tx.seal_into(meta, b"after five joins", &mut sealed).unwrap();
    let mut plain = b"stale".to_vec();
    rx.open_into(MediaKind::Vp8Key, &sealed, &mut plain).unwrap();
    assert_eq!(plain, b"after five joins");

    let mut bad = sealed.clone();
    bad[12] ^= 1;
    assert_eq!(rx.open_into(MediaKind::Vp8Key, &bad, &mut plain), Err(FrameError::AuthenticationFailed));
    assert!(plain.is_empty());
    *bad.last_mut().unwrap() = 2;
    plain.extend_from_slice(b"junk");
    assert_eq!(rx.open_into(MediaKind::Vp8Key, &bad, &mut plain), Err(FrameError::UnknownKeyIndex(2)));
    assert!(plain.is_empty());
    let mut empty = Vec::new();
    assert_eq!(tx.seal_in_place(meta, &mut empty), Err(FrameError::Empty));
}
