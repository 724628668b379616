//! The one error type of the crate.

use crate::Codec;

/// Everything that can go wrong while moving media.
///
/// Device problems are typed ([`MediaError::CameraMissing`],
/// [`MediaError::DeviceLost`]) so the daemon can show them and rebuild a
/// pipeline when the device comes back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// GStreamer itself could not start (libraries missing or broken).
    #[error("GStreamer could not be initialised: {message}")]
    Init { message: String },
    /// A GStreamer element this pipeline needs is not installed.
    #[error("GStreamer element `{factory}` is not installed")]
    MissingElement { factory: String },
    /// No encoder for the codec is installed (or the pinned one is missing).
    #[error("no {codec} encoder is available (tried {tried})")]
    NoEncoder { codec: Codec, tried: String },
    /// No decoder for the codec is installed.
    #[error("no {codec} decoder is available (tried {tried})")]
    NoDecoder { codec: Codec, tried: String },
    /// The configured camera does not exist or cannot be opened.
    #[error("camera {device} is not present")]
    CameraMissing { device: String },
    /// The configured microphone does not exist or cannot be opened.
    #[error("microphone {device} is not present")]
    MicrophoneMissing { device: String },
    /// A capture or playback device failed while in use (e.g. USB unplug).
    #[error("device {device} stopped working while in use: {message}")]
    DeviceLost { device: String, message: String },
    /// An element of a running pipeline reported an error.
    #[error("{pipeline} pipeline: {element} failed: {message}")]
    Pipeline { pipeline: String, element: String, message: String },
    /// A pipeline refused to change state and said nothing more on its bus.
    #[error("{pipeline} pipeline could not change to {state}")]
    StateChange { pipeline: String, state: String },
    /// The pipeline has already been stopped or has reached end of stream.
    #[error("{pipeline} pipeline is not running")]
    NotRunning { pipeline: String },
    /// A setting was refused before anything was built.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting { name: &'static str, reason: String },
    /// A participant id was used that the receive pipeline does not know.
    #[error("unknown participant {id}")]
    UnknownParticipant { id: String },
    /// A participant id was added twice.
    #[error("participant {id} is already present")]
    DuplicateParticipant { id: String },
    /// A frame was pushed with a codec the participant's branch does not decode.
    #[error("participant {id} receives {expected}, got a {got} frame")]
    CodecMismatch { id: String, expected: Codec, got: Codec },
    /// Bytes that should be H.264 Annex B are not.
    #[error("not H.264 Annex B: {reason} at byte {offset}")]
    NotAnnexB { offset: usize, reason: &'static str },
    /// No font for the room screen's text was found.
    #[error(
        "no font for the room screen: none of {tried} exists (install fonts-dejavu-core, or set CLOAKROOM_FONT to a .ttf file)"
    )]
    NoFont { tried: String },
    /// The font file could not be read or is not a TrueType/OpenType font.
    #[error("font {path}: {message}")]
    Font { path: String, message: String },
    /// The QR code for the room screen could not be made.
    #[error("QR code: {message}")]
    QrCode { message: String },
}

impl MediaError {
    pub(crate) fn missing(factory: &str) -> Self {
        Self::MissingElement { factory: factory.to_owned() }
    }
}
