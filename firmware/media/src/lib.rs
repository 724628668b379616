//! Media on the cloakroom device, through GStreamer.
//!
//! This crate moves audio and video: it captures from the camera and the
//! microphone, encodes, and hands [`EncodedFrame`]s out ([`send`]); it takes
//! encoded frames of remote participants in, decodes them, lays them out on
//! the room screen and plays their audio ([`receive`]); it draws the idle
//! room screen ([`screen`]) with its own text drawing ([`text`]); and it lists cameras, microphones, speakers,
//! encoders and decoders ([`devices`]); the admin page's camera preview,
//! microphone meter and speaker test tone are in [`check`]. It knows nothing about encryption,
//! WebRTC or signalling: those meet in the daemon.
//!
//! The parts that need no GStreamer are plain functions and structs, tested
//! on their own: encoder choice ([`encoder`]), the participant grid
//! ([`layout`]), the words and places of the tiles' labels ([`labels`]),
//! the quality ladder ([`ladder`]) and H.264 Annex B parsing ([`annexb`]).
#![forbid(unsafe_code)]

pub mod annexb;
pub mod banner;
pub mod check;
pub mod devices;
pub mod encoder;
mod error;
pub mod fallback;
mod frame;
pub mod labels;
pub mod ladder;
pub mod layout;
mod pipeline;
pub mod qr;
pub mod receive;
pub mod screen;
pub mod send;
pub mod text;

pub use error::MediaError;
pub use frame::{Codec, EncodedFrame};

/// Initialises GStreamer once per process; every pipeline constructor calls it,
/// so callers need it only to probe elements before building anything.
pub fn init() -> Result<(), MediaError> {
    gst::init().map_err(|e| MediaError::Init { message: e.to_string() })
}
