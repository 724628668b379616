//! The `h264` receive path on untrusted frames (NAL parsing, unescaping, trailer): never panics.
#![no_main]

use cloakroom_frame::h264::{escape, unescape};
use cloakroom_frame::{FrameDecryptor, KeyMaterial, MediaKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let mut rx = FrameDecryptor::new();
    rx.set_key(3, KeyMaterial::from_bytes(&mut [0x33; 32]));
    let _ = rx.open(MediaKind::H264, frame);
    // Unescaping accepts exactly what escaping produces.
    if let Ok(raw) = unescape(frame, 0) {
        assert_eq!(escape(&raw, 0), frame);
    }
});
