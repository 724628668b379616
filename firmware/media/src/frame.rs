//! Encoded frames and codecs: what the crate hands out and takes in.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A codec on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Codec {
    /// H.264, as Annex B byte stream, one access unit per frame.
    H264,
    /// VP8, one frame per buffer.
    Vp8,
    /// Opus, one 20 ms packet per frame.
    Opus,
}

impl Codec {
    /// Whether this is a video codec.
    pub const fn is_video(self) -> bool {
        matches!(self, Self::H264 | Self::Vp8)
    }

    /// The GStreamer caps of encoded frames of this codec, as this crate
    /// produces and expects them.
    pub(crate) fn caps(self) -> gst::Caps {
        match self {
            Self::H264 => gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
            Self::Vp8 => gst::Caps::builder("video/x-vp8").build(),
            Self::Opus => gst::Caps::builder("audio/x-opus")
                .field("channel-mapping-family", 0i32)
                .field("rate", 48_000i32)
                .field("channels", 1i32)
                .build(),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::H264 => "H.264",
            Self::Vp8 => "VP8",
            Self::Opus => "Opus",
        })
    }
}

/// One encoded video frame (an H.264 access unit, a VP8 frame) or one Opus
/// packet, as it leaves the encoder or enters the decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The encoded bytes. H.264 is Annex B with SPS and PPS before every IDR.
    pub data: Vec<u8>,
    /// Presentation time on the pipeline's running-time clock.
    pub pts: Option<Duration>,
    /// How long the frame lasts.
    pub duration: Option<Duration>,
    /// Whether the frame can be decoded on its own (H.264 IDR, VP8 key frame;
    /// every Opus packet).
    pub keyframe: bool,
    /// Which codec produced the bytes.
    pub codec: Codec,
}
