//! The `h264` format: the sealed frame keeps the input's NAL structure (same
//! start offsets and types, up to and including the first slice), contains no
//! start code inside the sealed part, and opens back to the input. Checked on
//! real x264 output (tests/data, made by tools/make-h264-fixture) and on
//! random access units.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use cloakroom_frame::h264::{NAL_IDR, NAL_SLICE, clear_prefix_len, nal_units};
use cloakroom_frame::{FrameDecryptor, FrameEncryptor, FrameError, FrameMeta, KeyMaterial, MediaKind};
use proptest::prelude::*;

const FIXTURE: &[u8] = include_bytes!("data/x264-160x120.h264");

fn pair() -> (FrameEncryptor, FrameDecryptor) {
    let mut tx = FrameEncryptor::new(|| 0);
    let mut rx = FrameDecryptor::new();
    tx.set_key(4, KeyMaterial::from_hex(&"5a".repeat(32)).unwrap());
    rx.set_key(4, KeyMaterial::from_hex(&"5a".repeat(32)).unwrap());
    (tx, rx)
}

/// Splits the fixture into access units at each access unit delimiter (type 9).
fn access_units(stream: &[u8]) -> Vec<&[u8]> {
    let starts: Vec<usize> = nal_units(stream)
        .iter()
        .filter(|u| u.nal_type == 9)
        .map(|u| if u.offset >= 4 && stream[u.offset - 4] == 0 { u.offset - 4 } else { u.offset - 3 })
        .collect();
    starts.iter().enumerate().map(|(i, &s)| &stream[s..*starts.get(i + 1).unwrap_or(&stream.len())]).collect()
}

/// Offsets and types of NAL units up to and including the first slice.
fn structure(au: &[u8]) -> Vec<(usize, u8)> {
    let mut out = Vec::new();
    for u in nal_units(au) {
        out.push((u.offset, u.nal_type));
        if u.nal_type == NAL_SLICE || u.nal_type == NAL_IDR {
            break;
        }
    }
    out
}

fn check_au(tx: &mut FrameEncryptor, rx: &mut FrameDecryptor, au: &[u8], ts: u32) {
    let sealed = tx.seal(FrameMeta { ssrc: 77, rtp_timestamp: ts, kind: MediaKind::H264 }, au).unwrap();
    assert_eq!(structure(&sealed), structure(au), "NAL boundaries and types kept");
    let clear = clear_prefix_len(au).unwrap();
    assert_eq!(&sealed[..clear], &au[..clear], "clear prefix untouched");
    assert_eq!(nal_units(&sealed).len(), structure(au).len(), "no start code emulated inside the sealed part");
    assert_eq!(rx.open(MediaKind::H264, &sealed).unwrap(), au);
}

#[test]
fn real_x264_access_units() {
    let aus = access_units(FIXTURE);
    assert_eq!(aus.len(), 30, "fixture holds 30 access units");
    let (mut tx, mut rx) = pair();
    let mut idrs = 0;
    for (i, au) in aus.iter().enumerate() {
        let types: Vec<u8> = nal_units(au).iter().map(|u| u.nal_type).collect();
        if types.contains(&NAL_IDR) {
            idrs += 1;
            assert!(types.starts_with(&[9, 7, 8]), "AUD, SPS, PPS lead an IDR: {types:?}");
        }
        check_au(&mut tx, &mut rx, au, i as u32 * 6000);
        // x264 here writes one slice per picture, so every NAL unit keeps its place and type.
        let sealed = tx.seal(FrameMeta { ssrc: 78, rtp_timestamp: i as u32, kind: MediaKind::H264 }, au).unwrap();
        let offsets_types = |d: &[u8]| nal_units(d).iter().map(|u| (u.offset, u.nal_type)).collect::<Vec<_>>();
        assert_eq!(offsets_types(&sealed), offsets_types(au), "access unit {i}");
    }
    assert_eq!(idrs, 3);
}

#[test]
fn tampering_and_garbage_escaping_are_refused() {
    let aus = access_units(FIXTURE);
    let (mut tx, mut rx) = pair();
    let au = aus[0];
    let sealed = tx.seal(FrameMeta { ssrc: 1, rtp_timestamp: 1, kind: MediaKind::H264 }, au).unwrap();
    let clear = clear_prefix_len(au).unwrap();

    // A start code injected into the sealed part is garbage escaping.
    let mut bad = sealed.clone();
    bad[clear + 5..clear + 8].copy_from_slice(&[0, 0, 1]);
    assert!(matches!(rx.open(MediaKind::H264, &bad), Err(FrameError::BadEscaping(_))));

    // Flipping a parameter-set byte (clear, authenticated) fails the tag.
    let mut bad = sealed.clone();
    bad[8] ^= 0x01;
    assert!(rx.open(MediaKind::H264, &bad).is_err());

    // No slice at all.
    assert_eq!(rx.open(MediaKind::H264, &au[..20]), Err(FrameError::NoSliceNal));
    assert_eq!(
        tx.seal(FrameMeta { ssrc: 1, rtp_timestamp: 1, kind: MediaKind::H264 }, &[0, 0, 1, 0x67, 1, 2]),
        Err(FrameError::NoSliceNal)
    );
}

fn random_au() -> impl Strategy<Value = Vec<u8>> {
    // Leading parameter-set-like NALs, then one slice whose body is random and zero-heavy.
    (
        proptest::collection::vec(
            (prop_oneof![Just(6u8), Just(7), Just(8), Just(9)], proptest::collection::vec(1u8..=255, 1..20)),
            0..4,
        ),
        prop_oneof![Just(0x65u8), Just(0x41)],
        proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(2), Just(3), any::<u8>()], 1..400),
        any::<bool>(),
    )
        .prop_map(|(params, slice_header, body, long_start)| {
            let mut au = Vec::new();
            for (t, bytes) in params {
                au.extend_from_slice(if long_start { &[0, 0, 0, 1][..] } else { &[0, 0, 1][..] });
                au.push(t);
                au.extend_from_slice(&bytes);
            }
            au.extend_from_slice(&[0, 0, 0, 1, slice_header, 0x88]);
            // Escape the body as an encoder would, so the input itself is a valid stream.
            au.extend_from_slice(&cloakroom_frame::h264::escape(&body, 0));
            au
        })
}

proptest! {
    #[test]
    fn random_access_units_keep_structure(au in random_au(), ts: u32) {
        let (mut tx, mut rx) = pair();
        check_au(&mut tx, &mut rx, &au, ts);
    }
}
