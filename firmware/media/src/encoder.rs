//! Which encoder and decoder to use for a codec, chosen by probing.
//!
//! Preference order (pure, testable without GStreamer): H.264 prefers the
//! Pi 4's hardware encoder `v4l2h264enc`, then `x264enc`, then
//! `openh264enc`; VP8 uses `vp8enc`; audio uses `opusenc`. A board profile
//! may pin one encoder; a pinned encoder that is missing is an error, not a
//! silent fallback, so a misconfigured board is noticed.

use std::fmt;

use serde::Serialize;

use crate::{Codec, MediaError};

/// An encoder element this crate knows how to configure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EncoderKind {
    /// `v4l2h264enc`: the Pi 4's bcm2835-codec hardware encoder.
    V4l2H264,
    /// `x264enc`: software H.264, zero-latency tuning.
    X264,
    /// `openh264enc`: Cisco's software H.264.
    OpenH264,
    /// `vp8enc`: libvpx VP8, real-time settings.
    Vp8,
    /// `opusenc`: Opus, 20 ms frames, in-band FEC, DTX.
    Opus,
}

/// Every encoder, in preference order within each codec.
pub const ENCODERS: [EncoderKind; 5] =
    [EncoderKind::V4l2H264, EncoderKind::X264, EncoderKind::OpenH264, EncoderKind::Vp8, EncoderKind::Opus];

impl EncoderKind {
    /// The GStreamer element factory name.
    pub const fn factory(self) -> &'static str {
        match self {
            Self::V4l2H264 => "v4l2h264enc",
            Self::X264 => "x264enc",
            Self::OpenH264 => "openh264enc",
            Self::Vp8 => "vp8enc",
            Self::Opus => "opusenc",
        }
    }

    /// The codec it produces.
    pub const fn codec(self) -> Codec {
        match self {
            Self::V4l2H264 | Self::X264 | Self::OpenH264 => Codec::H264,
            Self::Vp8 => Codec::Vp8,
            Self::Opus => Codec::Opus,
        }
    }

    /// Whether it runs on dedicated hardware rather than the CPU.
    pub const fn is_hardware(self) -> bool {
        matches!(self, Self::V4l2H264)
    }
}

impl fmt::Display for EncoderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.factory())
    }
}

/// A decoder element this crate knows how to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DecoderKind {
    /// `v4l2h264dec`: the Pi 4's hardware decoder.
    V4l2H264,
    /// `avdec_h264`: FFmpeg's H.264 decoder.
    AvH264,
    /// `vp8dec`: libvpx.
    Vp8,
    /// `opusdec`.
    Opus,
}

/// Every decoder, in preference order within each codec.
pub const DECODERS: [DecoderKind; 4] =
    [DecoderKind::V4l2H264, DecoderKind::AvH264, DecoderKind::Vp8, DecoderKind::Opus];

impl DecoderKind {
    /// The GStreamer element factory name.
    pub const fn factory(self) -> &'static str {
        match self {
            Self::V4l2H264 => "v4l2h264dec",
            Self::AvH264 => "avdec_h264",
            Self::Vp8 => "vp8dec",
            Self::Opus => "opusdec",
        }
    }

    /// Whether it runs on dedicated hardware rather than the CPU.
    pub const fn is_hardware(self) -> bool {
        matches!(self, Self::V4l2H264)
    }

    /// The codec it consumes.
    pub const fn codec(self) -> Codec {
        match self {
            Self::V4l2H264 | Self::AvH264 => Codec::H264,
            Self::Vp8 => Codec::Vp8,
            Self::Opus => Codec::Opus,
        }
    }
}

impl fmt::Display for DecoderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.factory())
    }
}

/// Picks the encoder for `codec`: the pinned one if given (it must exist and
/// produce `codec`), else the first available in preference order.
/// `available` answers whether an element factory is installed.
pub fn choose_encoder(
    codec: Codec,
    pinned: Option<EncoderKind>,
    available: impl Fn(&str) -> bool,
) -> Result<EncoderKind, MediaError> {
    let candidates: Vec<EncoderKind> = match pinned {
        Some(kind) if kind.codec() == codec => vec![kind],
        Some(kind) => {
            return Err(MediaError::InvalidSetting {
                name: "encoder",
                reason: format!("{kind} does not produce {codec}"),
            });
        }
        None => ENCODERS.into_iter().filter(|k| k.codec() == codec).collect(),
    };
    candidates
        .iter()
        .copied()
        .find(|k| available(k.factory()))
        .ok_or_else(|| MediaError::NoEncoder { codec, tried: names(candidates.iter().map(|k| k.factory())) })
}

/// Picks the first available decoder for `codec`.
pub fn choose_decoder(codec: Codec, available: impl Fn(&str) -> bool) -> Result<DecoderKind, MediaError> {
    let candidates = DECODERS.into_iter().filter(|k| k.codec() == codec);
    let mut tried = Vec::new();
    for kind in candidates {
        if available(kind.factory()) {
            return Ok(kind);
        }
        tried.push(kind.factory());
    }
    Err(MediaError::NoDecoder { codec, tried: names(tried.into_iter()) })
}

/// All encoders whose element is installed, in preference order.
pub fn available_encoders(available: impl Fn(&str) -> bool) -> Vec<EncoderKind> {
    ENCODERS.into_iter().filter(|k| available(k.factory())).collect()
}

/// All decoders whose element is installed, in preference order.
pub fn available_decoders(available: impl Fn(&str) -> bool) -> Vec<DecoderKind> {
    DECODERS.into_iter().filter(|k| available(k.factory())).collect()
}

/// Whether GStreamer has an element factory of this name (the probe used
/// with the functions above on a real device).
pub fn installed(factory: &str) -> bool {
    gst::init().is_ok() && gst::ElementFactory::find(factory).is_some()
}

fn names<'a>(list: impl Iterator<Item = &'a str>) -> String {
    list.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(names: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |f| names.contains(&f)
    }

    #[test]
    fn h264_prefers_hardware_then_x264_then_openh264() {
        let all = only(&["v4l2h264enc", "x264enc", "openh264enc"]);
        assert_eq!(choose_encoder(Codec::H264, None, &all).ok(), Some(EncoderKind::V4l2H264));
        assert_eq!(choose_encoder(Codec::H264, None, only(&["x264enc", "openh264enc"])).ok(), Some(EncoderKind::X264));
        assert_eq!(
            choose_encoder(Codec::H264, None, only(&["openh264enc", "vp8enc"])).ok(),
            Some(EncoderKind::OpenH264)
        );
    }

    #[test]
    fn no_h264_encoder_names_what_was_tried() {
        match choose_encoder(Codec::H264, None, only(&["vp8enc"])) {
            Err(MediaError::NoEncoder { codec, tried }) => {
                assert_eq!(codec, Codec::H264);
                assert_eq!(tried, "v4l2h264enc, x264enc, openh264enc");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn vp8_and_opus_have_one_encoder_each() {
        let all = only(&["x264enc", "vp8enc", "opusenc"]);
        assert_eq!(choose_encoder(Codec::Vp8, None, &all).ok(), Some(EncoderKind::Vp8));
        assert_eq!(choose_encoder(Codec::Opus, None, &all).ok(), Some(EncoderKind::Opus));
    }

    #[test]
    fn a_pinned_encoder_wins_or_fails_loudly() {
        let all = only(&["v4l2h264enc", "x264enc", "openh264enc"]);
        assert_eq!(choose_encoder(Codec::H264, Some(EncoderKind::OpenH264), &all).ok(), Some(EncoderKind::OpenH264));
        // Pinned but missing: no silent fallback to x264enc.
        assert!(matches!(
            choose_encoder(Codec::H264, Some(EncoderKind::V4l2H264), only(&["x264enc"])),
            Err(MediaError::NoEncoder { .. })
        ));
        // Pinned to the wrong codec.
        assert!(matches!(
            choose_encoder(Codec::H264, Some(EncoderKind::Vp8), &all),
            Err(MediaError::InvalidSetting { .. })
        ));
    }

    #[test]
    fn decoders_prefer_hardware() {
        assert_eq!(choose_decoder(Codec::H264, only(&["v4l2h264dec", "avdec_h264"])).ok(), Some(DecoderKind::V4l2H264));
        assert_eq!(choose_decoder(Codec::H264, only(&["avdec_h264"])).ok(), Some(DecoderKind::AvH264));
        assert!(matches!(choose_decoder(Codec::Vp8, only(&["avdec_h264"])), Err(MediaError::NoDecoder { .. })));
    }

    #[test]
    fn availability_lists_keep_preference_order() {
        let found = available_encoders(only(&["opusenc", "openh264enc", "x264enc"]));
        assert_eq!(found, [EncoderKind::X264, EncoderKind::OpenH264, EncoderKind::Opus]);
        assert_eq!(available_decoders(only(&["opusdec", "vp8dec"])), [DecoderKind::Vp8, DecoderKind::Opus]);
    }
}
