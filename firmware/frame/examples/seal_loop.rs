//! Seals or opens `frames` frames of `size` bytes in the `jitsi` format with
//! a kept buffer, and nothing else: the workload `tools/frame-bench/insn-count`
//! counts instructions of under qemu-user (aarch64), once with `frames` and
//! once with 0, so the difference is the frames' alone.
//!
//! `cargo run --release -p cloakroom-frame --example seal_loop -- <seal|open> <size> <frames> [vp8|h264]`
//!
//! A VP8 delta frame keeps 3 bytes clear; an H.264 access unit here is one
//! IDR slice NAL unit of `size` bytes, sealed with emulation prevention.

use std::hint::black_box;

use cloakroom_frame::jitsi::{JitsiKey, make_iv};
use cloakroom_frame::{GcmLibrary, KeyMaterial, MediaKind, aes_backend};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (op, size, frames, kind) = match &args[..] {
        [op, size, frames] => (op, size, frames, MediaKind::Vp8Delta),
        [op, size, frames, k] if k == "vp8" => (op, size, frames, MediaKind::Vp8Delta),
        [op, size, frames, k] if k == "h264" => (op, size, frames, MediaKind::H264),
        _ => {
            eprintln!("usage: seal_loop <seal|open> <size> <frames> [vp8|h264]");
            std::process::exit(2);
        }
    };
    let size: usize = size.parse().expect("size");
    let frames: u32 = frames.parse().expect("frames");
    let key = JitsiKey::with_library(0, KeyMaterial::from_bytes(&mut [0x5a; 32]), GcmLibrary::preferred());
    // No two zero bytes in a row: no start code inside the slice.
    let mut payload: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
    if kind == MediaKind::H264 {
        payload[..5].copy_from_slice(&[0, 0, 0, 1, 0x65]);
    }
    let mut sealed = key.seal(kind, &make_iv(1, 2, 3), &payload).expect("seal");
    let mut out = Vec::with_capacity(sealed.len());
    for n in 0..frames {
        match op.as_str() {
            "seal" => key.seal_into(kind, &make_iv(1, 2, n), black_box(&payload), &mut sealed).expect("seal"),
            _ => key.open_into(kind, black_box(&sealed), &mut out).expect("open"),
        }
    }
    black_box((&sealed, &out));
    eprintln!(
        "{op} {frames} x {size} B {kind:?}; AES {}, {}",
        aes_backend().as_str(),
        GcmLibrary::preferred().as_str()
    );
}
