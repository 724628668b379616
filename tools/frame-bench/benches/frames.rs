//! Seal and open frames of typical sizes (Opus 120 B, 1,200 B, a 20 kB video
//! delta frame, a 150 kB key frame) with:
//!
//! - cloakroom's `jitsi` format (preferred AES-GCM library, and RustCrypto),
//! - cloakroom's `sframe` (suite 4, AES_128_GCM_SHA256_128),
//! - the `sframe` crate 2.x, suite 4 (its default `ring` backend, reusing its output buffer),
//! - OpenSSL EVP AES-128-GCM in-process (key schedule kept, new IV per frame): the floor.
//!
//! After criterion's own report it prints one table: ns per frame, MB/s, and
//! the ratios cloakroom / sframe crate and cloakroom / OpenSSL.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use cloakroom_frame::jitsi::{JitsiKey, make_iv};
use cloakroom_frame::sframe::{CipherSuite, SframeDecryptor, SframeKey};
use cloakroom_frame::{GcmLibrary, KeyMaterial, MediaKind, SecretBytes, aes_backend};
use criterion::{BenchmarkId, Criterion, Throughput};
use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;

const SIZES: [usize; 4] = [120, 1_200, 20_000, 150_000];
const IMPLS: [&str; 5] =
    ["cloakroom-jitsi", "cloakroom-jitsi-rustcrypto", "cloakroom-sframe", "sframe-crate", "openssl-evp"];

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

fn material() -> KeyMaterial {
    KeyMaterial::from_bytes(&mut [0x5a; 32])
}

fn output_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion")
}

fn bench(c: &mut Criterion, op: &str) {
    let mut group = c.benchmark_group(op);
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_millis(1200)).sample_size(20);
    let base = SecretBytes::new(vec![0x5a; 16]);
    for size in SIZES {
        let pt = payload(size);
        group.throughput(Throughput::Bytes(size as u64));

        for (name, library) in
            [("cloakroom-jitsi", GcmLibrary::preferred()), ("cloakroom-jitsi-rustcrypto", GcmLibrary::RustCrypto)]
        {
            let key = JitsiKey::with_library(0, material(), library);
            let iv = make_iv(1, 2, 3);
            let sealed = key.seal(MediaKind::Vp8Delta, &iv, &pt).expect("seal");
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| match op {
                "seal" => b.iter(|| key.seal(MediaKind::Vp8Delta, black_box(&iv), black_box(&pt)).expect("seal")),
                _ => b.iter(|| key.open(MediaKind::Vp8Delta, black_box(&sealed)).expect("open")),
            });
        }

        let key = SframeKey::derive(CipherSuite::AesGcm128Sha256, 3, &base).expect("derive");
        let sealed = key.seal(1, &[], &pt).expect("seal");
        group.bench_with_input(BenchmarkId::new("cloakroom-sframe", size), &size, |b, _| match op {
            "seal" => b.iter(|| key.seal(black_box(1), &[], black_box(&pt)).expect("seal")),
            _ => b.iter(|| key.open(&[], black_box(&sealed)).expect("open")),
        });
        // The decryptor (with replay window) on a fresh frame each time would need new frames; the
        // bare key open above is what the sframe crate's decrypt does too. Check the decryptor once.
        let mut rx = SframeDecryptor::new();
        rx.add_key(SframeKey::derive(CipherSuite::AesGcm128Sha256, 3, &base).expect("derive"));
        assert_eq!(rx.open(&[], &sealed).expect("open").1, pt);

        let enc = sframe::key::EncryptionKey::derive_from(sframe::CipherSuite::AesGcm128Sha256, 3u64, [0x5a; 16])
            .expect("sframe crate key");
        let dec = sframe::key::DecryptionKey::derive_from(sframe::CipherSuite::AesGcm128Sha256, 3u64, [0x5a; 16])
            .expect("sframe crate key");
        let mut counter = sframe::frame::MonotonicCounter::default();
        let their_sealed = sframe::frame::MediaFrameView::try_new(&mut counter, &pt)
            .expect("counter")
            .encrypt(&enc)
            .expect("encrypt")
            .as_ref()
            .to_vec();
        assert_eq!(their_sealed, key.seal(0, &[], &pt).expect("seal"), "the sframe crate and ours agree on suite 4");
        let mut buf: Vec<u8> = Vec::new();
        group.bench_with_input(BenchmarkId::new("sframe-crate", size), &size, |b, _| match op {
            "seal" => b.iter(|| {
                let frame = sframe::frame::MediaFrameView::try_new(&mut counter, black_box(&pt)).expect("counter");
                frame.encrypt_into(&enc, &mut buf).expect("encrypt").cipher_text().len()
            }),
            _ => b.iter(|| {
                let frame = sframe::frame::EncryptedFrameView::try_new(black_box(&their_sealed)).expect("parse");
                frame.decrypt_into(&dec, &mut buf).expect("decrypt").payload().len()
            }),
        });

        let mut ctx = CipherCtx::new().expect("ctx");
        let key16 = [0x5a; 16];
        let iv = make_iv(1, 2, 3);
        let aad = &pt[..3];
        let mut out = vec![0u8; size + 16];
        let mut tag = [0u8; 16];
        ctx.encrypt_init(Some(Cipher::aes_128_gcm()), Some(&key16), None).expect("init");
        let seal_once = |ctx: &mut CipherCtx, out: &mut [u8], tag: &mut [u8; 16]| {
            ctx.encrypt_init(None, None, Some(&iv)).expect("iv");
            ctx.cipher_update(aad, None).expect("aad");
            let n = ctx.cipher_update(&pt[3..], Some(&mut out[..])).expect("update");
            ctx.cipher_final(&mut out[n..]).expect("final");
            ctx.tag(tag).expect("tag");
        };
        seal_once(&mut ctx, &mut out, &mut tag);
        let ct = out[..size - 3].to_vec();
        let mut dctx = CipherCtx::new().expect("ctx");
        dctx.decrypt_init(Some(Cipher::aes_128_gcm()), Some(&key16), None).expect("init");
        group.bench_with_input(BenchmarkId::new("openssl-evp", size), &size, |b, _| match op {
            "seal" => b.iter(|| seal_once(&mut ctx, &mut out, &mut tag)),
            _ => b.iter(|| {
                dctx.decrypt_init(None, None, Some(&iv)).expect("iv");
                dctx.set_tag(&tag).expect("tag");
                dctx.cipher_update(aad, None).expect("aad");
                let n = dctx.cipher_update(black_box(&ct), Some(&mut out[..])).expect("update");
                dctx.cipher_final(&mut out[n..]).expect("tag verifies");
            }),
        });
    }
    group.finish();
}

fn estimate_ns(op: &str, name: &str, size: usize) -> Option<f64> {
    let path = output_dir().join(op).join(name).join(size.to_string()).join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn summary() {
    println!();
    println!("AES: {} · preferred AES-GCM library: {}", aes_backend().as_str(), GcmLibrary::preferred().as_str());
    println!(
        "{:<5} {:<27} {:>9} {:>12} {:>12} {:>12} {:>12}",
        "op", "implementation", "bytes", "ns/frame", "MB/s", "÷ sframe", "÷ openssl"
    );
    for op in ["seal", "open"] {
        for size in SIZES {
            let sframe = estimate_ns(op, "sframe-crate", size);
            let openssl = estimate_ns(op, "openssl-evp", size);
            for name in IMPLS {
                let Some(ns) = estimate_ns(op, name, size) else { continue };
                let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.2}", ns / r));
                println!(
                    "{op:<5} {name:<27} {size:>9} {ns:>12.0} {:>12.0} {:>12} {:>12}",
                    size as f64 / ns * 1e3,
                    ratio(sframe),
                    ratio(openssl)
                );
            }
        }
    }
}

fn main() {
    let mut c = Criterion::default().output_directory(&output_dir()).configure_from_args();
    bench(&mut c, "seal");
    bench(&mut c, "open");
    c.final_summary();
    summary();
}
