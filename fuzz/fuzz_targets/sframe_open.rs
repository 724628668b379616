//! The SFrame receive path on untrusted frames (header parsing, every suite, replay window): never panics.
#![no_main]

use cloakroom_frame::SecretBytes;
use cloakroom_frame::sframe::{CipherSuite, Header, SframeDecryptor, SframeKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &[u8], Vec<&[u8]>)| {
    let (suite, metadata, frames) = input;
    let Ok(suite) = CipherSuite::from_id(u16::from(suite % 6)) else { return };
    let base = SecretBytes::new(vec![7; 16]);
    let mut rx = SframeDecryptor::new();
    for kid in [0, 7, 8, 300] {
        rx.add_key(SframeKey::derive(suite, kid, &base).expect("derive"));
    }
    for frame in frames {
        if let Ok((h, len)) = Header::decode(frame) {
            let mut again = Vec::new();
            h.encode(&mut again);
            assert!(again.len() <= len, "minimal encoding is never longer");
        }
        let _ = rx.open(metadata, frame);
    }
});
