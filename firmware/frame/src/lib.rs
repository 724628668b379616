//! Per-frame end-to-end encryption for cloakroom.
//!
//! Every audio and video frame the room sends is sealed here before it
//! reaches WebRTC, and every frame it receives is opened here before it
//! reaches a decoder, so the meeting server only ever forwards ciphertext.
//! The crate does no I/O: no sockets, no clocks, no threads. Randomness
//! (the initial send counters) is injected by the caller.
//!
//! Three wire formats:
//!
//! - [`jitsi`]: lib-jitsi-meet's AES-128-GCM frame format
//!   (`clear ‖ ciphertext ‖ tag ‖ IV ‖ 0x0C ‖ key index`), used for VP8 and Opus.
//! - [`h264`]: the same trailer with a NAL-aware clear prefix and emulation
//!   prevention, so H.264 stays packetizable (LiveKit's frame cryptor layout).
//! - [`sframe`]: RFC 9605, cipher suites 1–5, with a replay window.
//!
//! The sender side of the first two is [`FrameEncryptor`], the receiver side
//! [`FrameDecryptor`] (a key ring that ratchets forward on failure).
//! [`backend::aes_backend`] reports whether AES runs on CPU instructions
//! (AES-NI, ARMv8 crypto) or on the constant-time software path.

#![forbid(unsafe_code)]

pub mod backend;
mod error;
pub mod h264;
pub mod jitsi;
mod keys;
mod ring;
pub mod sframe;

pub use backend::{AesBackend, GcmLibrary, aes_backend};
pub use error::FrameError;
pub use jitsi::{FrameMeta, MediaKind};
pub use keys::{KeyMaterial, SecretBytes};
pub use ring::{FrameDecryptor, FrameEncryptor, KEY_RING_SLOTS, RATCHET_WINDOW};

/// Largest frame either direction accepts, clear or sealed. A 1080p key frame
/// is a few hundred kilobytes; anything near this bound is an attack or a bug.
pub const MAX_FRAME_LEN: usize = 4 * 1024 * 1024;
