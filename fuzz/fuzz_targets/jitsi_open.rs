//! The `jitsi` receive path on untrusted frames: never panics, and anything
//! that opens must have been sealed with the key (so it re-seals identically).
#![no_main]

use cloakroom_frame::jitsi::{JitsiKey, SealedParts};
use cloakroom_frame::{FrameDecryptor, KeyMaterial, MediaKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &[u8])| {
    let (selector, frame) = input;
    let kind = [MediaKind::Vp8Key, MediaKind::Vp8Delta, MediaKind::Opus][usize::from(selector % 3)];
    let mut rx = FrameDecryptor::new();
    rx.set_key(0, KeyMaterial::from_bytes(&mut [0x11; 32]));
    rx.set_key(1, KeyMaterial::from_bytes(&mut [0x22; 32]));
    if let Ok(plain) = rx.open(kind, frame) {
        // Only a genuine frame opens; sealing its plaintext with its IV gives it back.
        let parts = SealedParts::of(kind, frame).expect("an opened frame parses");
        let key = JitsiKey::new(parts.key_index, KeyMaterial::from_bytes(&mut [if parts.key_index == 0 { 0x11 } else { 0x22 }; 32]));
        assert_eq!(key.seal(kind, &parts.iv, &plain).expect("re-seal"), frame);
    }
});
