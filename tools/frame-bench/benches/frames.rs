//! Seal and open frames of typical sizes (Opus 120 B, 1,200 B, a 20 kB video
//! delta frame, a 150 kB key frame) with:
//!
//! - cloakroom's `jitsi` format (preferred AES-GCM library, and RustCrypto),
//!   through the allocating API (a new `Vec` per frame) and, `-into`, into a
//!   buffer the caller keeps (`seal_into`/`open_into`); `-in-place` seals the
//!   caller's payload buffer where it lies (`seal_in_place`, seal only),
//! - cloakroom's `sframe` (suite 4, AES_128_GCM_SHA256_128), allocating and `-into`,
//! - the `sframe` crate 2.x, suite 4 (its default `ring` backend, reusing its output buffer),
//! - OpenSSL EVP AES-128-GCM in-process (key schedule kept, new IV per frame).
//!
//! After criterion's own report it prints one table: ns per frame (criterion's
//! mean), MB/s, and the ratios cloakroom / sframe crate and cloakroom /
//! OpenSSL; then each implementation's fixed cost per frame (the intercept of
//! the line through its 120 B and 1,200 B times); then a paired check made to
//! survive a shared, loaded machine: each of our `-into` paths and the sframe
//! crate run in alternating batches, and the minimum and median ns per frame
//! over the batches are compared (`cargo bench -p frame-bench -- paired`
//! runs it alone).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cloakroom_frame::jitsi::{JitsiKey, make_iv};
use cloakroom_frame::sframe::{CipherSuite, SframeDecryptor, SframeKey};
use cloakroom_frame::{GcmLibrary, KeyMaterial, MediaKind, SecretBytes, aes_backend};
use criterion::{BenchmarkId, Criterion, Throughput};
use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;

const SIZES: [usize; 4] = [120, 1_200, 20_000, 150_000];
const IMPLS: [&str; 9] = [
    "cloakroom-jitsi",
    "cloakroom-jitsi-into",
    "cloakroom-jitsi-in-place",
    "cloakroom-jitsi-rustcrypto",
    "cloakroom-jitsi-rustcrypto-into",
    "cloakroom-sframe",
    "cloakroom-sframe-into",
    "sframe-crate",
    "openssl-evp",
];
/// Ours, held to "no slower than the sframe crate" in the paired check.
const PAIRED: [&str; 3] = ["cloakroom-jitsi-into", "cloakroom-jitsi-in-place", "cloakroom-sframe-into"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Seal,
    Open,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Seal => "seal",
            Op::Open => "open",
        }
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

fn material() -> KeyMaterial {
    KeyMaterial::from_bytes(&mut [0x5a; 32])
}

fn base_key() -> SecretBytes {
    SecretBytes::new(vec![0x5a; 16])
}

fn output_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/criterion")
}

/// One seal or one open of one `size`-byte frame by `name`, state owned by
/// the closure (keys expanded once, buffers kept).
fn case(op: Op, name: &str, size: usize) -> Option<Box<dyn FnMut()>> {
    let pt = payload(size);
    let iv = make_iv(1, 2, 3);
    let kind = MediaKind::Vp8Delta;
    let jitsi = |library| {
        let key = JitsiKey::with_library(0, material(), library);
        let sealed = key.seal(kind, &iv, &pt).expect("seal");
        assert_eq!(key.open(kind, &sealed).expect("open"), pt);
        (key, sealed)
    };
    let sframe_key = || SframeKey::derive(CipherSuite::AesGcm128Sha256, 3, &base_key()).expect("derive");
    let f: Box<dyn FnMut()> = match (name, op) {
        ("cloakroom-jitsi" | "cloakroom-jitsi-rustcrypto", _) => {
            let library = if name == "cloakroom-jitsi" { GcmLibrary::preferred() } else { GcmLibrary::RustCrypto };
            let (key, sealed) = jitsi(library);
            match op {
                Op::Seal => Box::new(move || {
                    black_box(key.seal(kind, black_box(&iv), black_box(&pt)).expect("seal"));
                }),
                Op::Open => Box::new(move || {
                    black_box(key.open(kind, black_box(&sealed)).expect("open"));
                }),
            }
        }
        ("cloakroom-jitsi-into" | "cloakroom-jitsi-rustcrypto-into", _) => {
            let library = if name == "cloakroom-jitsi-into" { GcmLibrary::preferred() } else { GcmLibrary::RustCrypto };
            let (key, sealed) = jitsi(library);
            let mut out = Vec::new();
            match op {
                Op::Seal => Box::new(move || {
                    key.seal_into(kind, black_box(&iv), black_box(&pt), &mut out).expect("seal");
                    black_box(&out);
                }),
                Op::Open => Box::new(move || {
                    key.open_into(kind, black_box(&sealed), &mut out).expect("open");
                    black_box(&out);
                }),
            }
        }
        ("cloakroom-jitsi-in-place", Op::Seal) => {
            let (key, _) = jitsi(GcmLibrary::preferred());
            let mut frame = pt.clone();
            frame.reserve(cloakroom_frame::jitsi::OVERHEAD);
            Box::new(move || {
                // Sealing what the last round left (ciphertext) costs the same as sealing the payload.
                frame.truncate(size);
                key.seal_in_place(kind, black_box(&iv), &mut frame).expect("seal");
                black_box(&frame);
            })
        }
        ("cloakroom-jitsi-in-place", Op::Open) => return None,
        ("cloakroom-sframe", _) => {
            let key = sframe_key();
            let sealed = key.seal(1, &[], &pt).expect("seal");
            // The decryptor (with replay window) would need a fresh frame each time; the bare
            // key open is what the sframe crate's decrypt does too. Check the decryptor once.
            let mut rx = SframeDecryptor::new();
            rx.add_key(sframe_key());
            assert_eq!(rx.open(&[], &sealed).expect("open").1, pt);
            match op {
                Op::Seal => Box::new(move || {
                    black_box(key.seal(black_box(1), &[], black_box(&pt)).expect("seal"));
                }),
                Op::Open => Box::new(move || {
                    black_box(key.open(&[], black_box(&sealed)).expect("open"));
                }),
            }
        }
        ("cloakroom-sframe-into", _) => {
            let key = sframe_key();
            let sealed = key.seal(1, &[], &pt).expect("seal");
            let mut out = Vec::new();
            match op {
                Op::Seal => Box::new(move || {
                    key.seal_into(black_box(1), &[], black_box(&pt), &mut out).expect("seal");
                    black_box(&out);
                }),
                Op::Open => Box::new(move || {
                    key.open_into(&[], black_box(&sealed), &mut out).expect("open");
                    black_box(&out);
                }),
            }
        }
        ("sframe-crate", _) => {
            let suite = sframe::CipherSuite::AesGcm128Sha256;
            let enc = sframe::key::EncryptionKey::derive_from(suite, 3u64, [0x5a; 16]).expect("sframe crate key");
            let dec = sframe::key::DecryptionKey::derive_from(suite, 3u64, [0x5a; 16]).expect("sframe crate key");
            let mut counter = sframe::frame::MonotonicCounter::default();
            let their_sealed = sframe::frame::MediaFrameView::try_new(&mut counter, &pt)
                .expect("counter")
                .encrypt(&enc)
                .expect("encrypt")
                .as_ref()
                .to_vec();
            assert_eq!(their_sealed, sframe_key().seal(0, &[], &pt).expect("seal"), "the sframe crate and ours agree");
            let mut buf: Vec<u8> = Vec::new();
            match op {
                Op::Seal => Box::new(move || {
                    let frame = sframe::frame::MediaFrameView::try_new(&mut counter, black_box(&pt)).expect("counter");
                    black_box(frame.encrypt_into(&enc, &mut buf).expect("encrypt").cipher_text().len());
                }),
                Op::Open => Box::new(move || {
                    let frame = sframe::frame::EncryptedFrameView::try_new(black_box(&their_sealed)).expect("parse");
                    black_box(frame.decrypt_into(&dec, &mut buf).expect("decrypt").payload().len());
                }),
            }
        }
        ("openssl-evp", _) => {
            let key16 = [0x5a; 16];
            let mut ctx = CipherCtx::new().expect("ctx");
            ctx.encrypt_init(Some(Cipher::aes_128_gcm()), Some(&key16), None).expect("init");
            let mut out = vec![0u8; size + 16];
            let mut tag = [0u8; 16];
            let seal_once = move |ctx: &mut CipherCtx, out: &mut [u8], tag: &mut [u8; 16], pt: &[u8]| {
                ctx.encrypt_init(None, None, Some(&iv)).expect("iv");
                ctx.cipher_update(&pt[..3], None).expect("aad");
                let n = ctx.cipher_update(&pt[3..], Some(&mut out[..])).expect("update");
                ctx.cipher_final(&mut out[n..]).expect("final");
                ctx.tag(tag).expect("tag");
            };
            seal_once(&mut ctx, &mut out, &mut tag, &pt);
            match op {
                Op::Seal => Box::new(move || {
                    seal_once(&mut ctx, &mut out, &mut tag, black_box(&pt));
                    black_box(&tag);
                }),
                Op::Open => {
                    let ct = out[..size - 3].to_vec();
                    let mut dctx = CipherCtx::new().expect("ctx");
                    dctx.decrypt_init(Some(Cipher::aes_128_gcm()), Some(&key16), None).expect("init");
                    Box::new(move || {
                        dctx.decrypt_init(None, None, Some(&iv)).expect("iv");
                        dctx.set_tag(&tag).expect("tag");
                        dctx.cipher_update(&pt[..3], None).expect("aad");
                        let n = dctx.cipher_update(black_box(&ct), Some(&mut out[..])).expect("update");
                        dctx.cipher_final(&mut out[n..]).expect("tag verifies");
                    })
                }
            }
        }
        _ => return None,
    };
    Some(f)
}

fn bench(c: &mut Criterion, op: Op) {
    let mut group = c.benchmark_group(op.as_str());
    group.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_millis(1200)).sample_size(20);
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        for name in IMPLS {
            let Some(mut f) = case(op, name, size) else { continue };
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| b.iter(&mut f));
        }
    }
    group.finish();
}

fn estimate_ns(op: Op, name: &str, size: usize) -> Option<f64> {
    let path = output_dir().join(op.as_str()).join(name).join(size.to_string()).join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

/// The intercept of the line through the 120 B and 1,200 B times: what a frame costs before its bytes.
fn fixed_cost(small: (usize, f64), large: (usize, f64)) -> f64 {
    let per_byte = (large.1 - small.1) / (large.0 - small.0) as f64;
    small.1 - per_byte * small.0 as f64
}

fn summary() {
    println!();
    println!("AES: {} · preferred AES-GCM library: {}", aes_backend().as_str(), GcmLibrary::preferred().as_str());
    println!(
        "{:<5} {:<31} {:>9} {:>12} {:>12} {:>12} {:>12}",
        "op", "implementation", "bytes", "ns/frame", "MB/s", "÷ sframe", "÷ openssl"
    );
    for op in [Op::Seal, Op::Open] {
        for size in SIZES {
            let sframe = estimate_ns(op, "sframe-crate", size);
            let openssl = estimate_ns(op, "openssl-evp", size);
            for name in IMPLS {
                let Some(ns) = estimate_ns(op, name, size) else { continue };
                let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.2}", ns / r));
                println!(
                    "{:<5} {name:<31} {size:>9} {ns:>12.0} {:>12.0} {:>12} {:>12}",
                    op.as_str(),
                    size as f64 / ns * 1e3,
                    ratio(sframe),
                    ratio(openssl)
                );
            }
        }
    }
    println!();
    println!("fixed cost per frame (ns; intercept through the 120 B and 1,200 B means)");
    for name in IMPLS {
        let line: Vec<String> = [Op::Seal, Op::Open]
            .into_iter()
            .filter_map(|op| {
                let small = estimate_ns(op, name, SIZES[0])?;
                let large = estimate_ns(op, name, SIZES[1])?;
                Some(format!("{} {:>6.0}", op.as_str(), fixed_cost((SIZES[0], small), (SIZES[1], large))))
            })
            .collect();
        if !line.is_empty() {
            println!("  {name:<31} {}", line.join("   "));
        }
    }
}

/// Alternating batches of each of `names` at one size; min and median ns per frame for each.
fn paired(op: Op, names: &[&str], size: usize, rounds: usize) -> Vec<(f64, f64)> {
    let mut fs: Vec<Box<dyn FnMut()>> = names.iter().map(|n| case(op, n, size).expect("case")).collect();
    let per_batch = (200_000 / size).clamp(20, 2000);
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); fs.len()];
    for f in &mut fs {
        for _ in 0..per_batch {
            f();
        }
    }
    for round in 0..rounds {
        for i in 0..fs.len() {
            // Alternate the order so neither side always runs right after the other.
            let i = if round % 2 == 0 { i } else { fs.len() - 1 - i };
            let start = Instant::now();
            for _ in 0..per_batch {
                fs[i]();
            }
            times[i].push(start.elapsed().as_nanos() as f64 / per_batch as f64);
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            (t[0], t[t.len() / 2])
        })
        .collect()
}

fn paired_summary() {
    println!();
    println!(
        "paired check: alternating batches, ns per frame (min / median of 101 batches), ratio to the sframe crate"
    );
    println!(
        "{:<5} {:<27} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "op", "implementation", "bytes", "min", "median", "÷ min", "÷ median"
    );
    let mut fixed: Vec<(Op, &str, [f64; 2])> = Vec::new();
    for op in [Op::Seal, Op::Open] {
        let names: Vec<&str> =
            PAIRED.iter().copied().filter(|n| case(op, n, 120).is_some()).chain(["sframe-crate"]).collect();
        let mut mins = vec![[0.0; 2]; names.len()];
        for size in SIZES {
            let t = paired(op, &names, size, 101);
            let theirs = t[t.len() - 1];
            for (i, name) in names.iter().enumerate() {
                println!(
                    "{:<5} {name:<27} {size:>9} {:>10.0} {:>10.0} {:>9.2} {:>9.2}",
                    op.as_str(),
                    t[i].0,
                    t[i].1,
                    t[i].0 / theirs.0,
                    t[i].1 / theirs.1
                );
                if size == SIZES[0] {
                    mins[i][0] = t[i].0;
                } else if size == SIZES[1] {
                    mins[i][1] = t[i].0;
                }
            }
        }
        for (i, name) in names.iter().enumerate() {
            fixed.push((op, name, mins[i]));
        }
    }
    println!("fixed cost per frame from the paired minimums (ns; intercept through 120 B and 1,200 B)");
    for (op, name, [small, large]) in fixed {
        println!("  {:<5} {name:<27} {:>6.0}", op.as_str(), fixed_cost((SIZES[0], small), (SIZES[1], large)));
    }
}

fn main() {
    // `cargo bench -p frame-bench -- paired` runs the paired check alone.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let paired_only = args == ["paired"];
    if !paired_only {
        let mut c = Criterion::default().output_directory(&output_dir()).configure_from_args();
        bench(&mut c, Op::Seal);
        bench(&mut c, Op::Open);
        c.final_summary();
        // The table reads every row's saved estimate: only a full run has them all fresh.
        if args.is_empty() {
            summary();
        }
    }
    // Not for a filtered or profiling run.
    if args.is_empty() || paired_only {
        paired_summary();
    }
}
