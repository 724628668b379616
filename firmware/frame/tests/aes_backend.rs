//! Which AES path runs. The test scripts set CLOAKROOM_EXPECT_AES_BACKEND
//! (aes-ni, armv8-crypto or software) for each run, so a run that silently
//! took another path than the one it claims to test fails here.

use cloakroom_frame::{
    AesBackend, FrameDecryptor, FrameEncryptor, FrameMeta, GcmLibrary, KeyMaterial, MediaKind, aes_backend,
};

#[test]
fn reports_the_expected_backend() {
    let backend = aes_backend();
    if cfg!(aes_backend = "soft") {
        assert_eq!(backend, AesBackend::Software, "forced software build must not use AES instructions");
        assert_eq!(GcmLibrary::preferred(), GcmLibrary::RustCrypto);
    }
    if cfg!(target_arch = "aarch64") {
        assert_ne!(backend, AesBackend::AesNi);
    } else {
        assert_ne!(backend, AesBackend::ArmV8Crypto);
    }
    match std::env::var("CLOAKROOM_EXPECT_AES_BACKEND") {
        Ok(expected) => assert_eq!(backend.as_str().split(' ').next(), Some(expected.as_str()), "AES backend"),
        Err(_) => eprintln!("CLOAKROOM_EXPECT_AES_BACKEND not set; backend is {}", backend.as_str()),
    }
    println!("aes backend: {}, gcm library: {}", backend.as_str(), GcmLibrary::preferred().as_str());
}

#[test]
fn frames_cross_between_libraries() {
    // A frame sealed by one library opens with the other: both implement the same AES-GCM.
    let libs = [GcmLibrary::RustCrypto, GcmLibrary::preferred()];
    for tx_lib in libs {
        for rx_lib in libs {
            let mut tx = FrameEncryptor::new(|| 9);
            tx.set_library(tx_lib);
            tx.set_key(1, KeyMaterial::from_hex(&"7e".repeat(32)).expect("hex"));
            let mut rx = FrameDecryptor::new();
            rx.set_library(rx_lib);
            rx.set_key(1, KeyMaterial::from_hex(&"7e".repeat(32)).expect("hex"));
            let payload: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
            let f =
                tx.seal(FrameMeta { ssrc: 5, rtp_timestamp: 6, kind: MediaKind::Vp8Delta }, &payload).expect("seal");
            assert_eq!(rx.open(MediaKind::Vp8Delta, &f).expect("open"), payload);
        }
    }
}
