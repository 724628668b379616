//! The send side: camera and microphone to encoded frames.
//!
//! ```text
//! video: camera (v4l2src | videotestsrc → I420 caps + painted clock) → videoconvert → videoscale
//!        → videorate → caps (mode) → [tee → intervideosink self-view]
//!        → queue → encoder → [h264parse → Annex B caps] → appsink
//! audio: microphone (alsasrc | audiotestsrc) → convert/resample → S16 48 kHz mono
//!        → webrtcdsp (echo cancel against the receive side's webrtcechoprobe)
//!        → opusenc (20 ms, in-band FEC, DTX) → appsink
//! ```
//!
//! Each appsink hands [`EncodedFrame`]s to a callback. Run-time controls
//! (bitrate, key frame, quality steps) are methods on [`VideoSender`]. A
//! device that fails is reported by [`VideoSender::check`] as
//! [`MediaError::DeviceLost`]; [`VideoSender::rebuild`] starts again from the
//! same settings when it is back.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gst::prelude::*;

use crate::encoder::{EncoderKind, choose_encoder, installed};
use crate::ladder::{QualityLadder, VideoMode};
use crate::pipeline::{DeviceRole, Pipeline, caps_filter, make, set_number, set_text};
use crate::text::{Anchor, ClockGlyphs, Font, Overlay, Placement};
use crate::{Codec, EncodedFrame, MediaError};

/// The inter-pipeline channel carrying the camera picture to the receive
/// pipeline's self-view.
pub const SELF_VIEW_CHANNEL: &str = "cloakroom-self-view";

/// The name of the echo probe on the playback side that the microphone's
/// echo canceller listens to.
pub const ECHO_PROBE_NAME: &str = "cloakroom-echo-probe";

/// Where the picture comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VideoSource {
    /// A V4L2 camera, e.g. `/dev/video0`.
    Camera { device: PathBuf },
    /// A generated picture with a clock on it, for tests and demos.
    Test { pattern: TestPattern },
}

/// Generated pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TestPattern {
    /// A moving ball: cheap to encode, like a quiet room.
    Ball,
    /// Random noise: the worst case for an encoder, fills every pixel.
    Snow,
    /// SMPTE colour bars with a noisy corner: detailed but encodable, so
    /// bitrate limits bite without the encoder hitting its quantiser limit.
    Bars,
}

/// What the video sender is asked to do. Checked when it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoSendSettings {
    pub source: VideoSource,
    pub codec: Codec,
    /// An encoder pinned by the board profile; `None` probes.
    pub encoder: Option<EncoderKind>,
    /// The best mode; quality steps go down from here.
    pub mode: VideoMode,
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Longest distance between key frames, in frames.
    pub keyframe_distance: u32,
    /// Whether to offer the picture to the receive pipeline's self-view.
    pub self_view: bool,
}

impl VideoSendSettings {
    /// Settings with defaults: probed encoder, 1 Mbit/s, a key frame at
    /// least every two seconds, no self-view.
    pub fn new(source: VideoSource, codec: Codec, mode: VideoMode) -> Self {
        Self {
            source,
            codec,
            encoder: None,
            mode,
            bitrate_kbps: 1000,
            keyframe_distance: mode.framerate * 2,
            self_view: false,
        }
    }

    fn validate(&self) -> Result<(), MediaError> {
        if !self.codec.is_video() {
            return Err(MediaError::InvalidSetting {
                name: "codec",
                reason: format!("{} is not a video codec", self.codec),
            });
        }
        check_bitrate(self.bitrate_kbps)?;
        if !(1..=3000).contains(&self.keyframe_distance) {
            return Err(MediaError::InvalidSetting {
                name: "keyframe_distance",
                reason: format!("{} is not from 1 to 3000 frames", self.keyframe_distance),
            });
        }
        Ok(())
    }
}

type FrameSink = Arc<Mutex<Box<dyn FnMut(EncodedFrame) + Send>>>;

/// A running video send pipeline.
pub struct VideoSender {
    settings: VideoSendSettings,
    encoder: EncoderKind,
    ladder: QualityLadder,
    bitrate_kbps: u32,
    sink: FrameSink,
    pipeline: Pipeline,
}

impl VideoSender {
    /// Chooses the encoder, builds the pipeline and starts it; frames go to
    /// `on_frame` on a GStreamer streaming thread.
    pub fn start(
        settings: VideoSendSettings,
        on_frame: impl FnMut(EncodedFrame) + Send + 'static,
    ) -> Result<Self, MediaError> {
        settings.validate()?;
        crate::init()?;
        let encoder = choose_encoder(settings.codec, settings.encoder, installed)?;
        let sink: FrameSink = Arc::new(Mutex::new(Box::new(on_frame)));
        let ladder = QualityLadder::new(settings.mode);
        let bitrate_kbps = settings.bitrate_kbps;
        let pipeline = build_video(&settings, encoder, settings.mode, bitrate_kbps, &sink)?;
        pipeline.start()?;
        Ok(Self { settings, encoder, ladder, bitrate_kbps, sink, pipeline })
    }

    /// The encoder in use.
    pub fn encoder(&self) -> EncoderKind {
        self.encoder
    }

    /// The mode being sent now.
    pub fn mode(&self) -> VideoMode {
        self.ladder.current()
    }

    /// The target bitrate now, in kbit/s.
    pub fn bitrate_kbps(&self) -> u32 {
        self.bitrate_kbps
    }

    /// The picture size the encoder is currently fed, from its negotiated
    /// caps; `None` before negotiation.
    pub fn negotiated_size(&self) -> Option<(u32, u32)> {
        let caps = self.element("encoder").ok()?.static_pad("sink")?.current_caps()?;
        let s = caps.structure(0)?;
        let width = s.get::<i32>("width").ok()?;
        let height = s.get::<i32>("height").ok()?;
        Some((u32::try_from(width).ok()?, u32::try_from(height).ok()?))
    }

    /// Changes the target bitrate (congestion control).
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<(), MediaError> {
        check_bitrate(kbps)?;
        let encoder = self.element("encoder")?;
        apply_bitrate(&encoder, self.encoder, kbps, self.settings.keyframe_distance)?;
        self.bitrate_kbps = kbps;
        Ok(())
    }

    /// Asks the encoder for a key frame with parameter sets (PLI/FIR).
    pub fn force_keyframe(&self) -> Result<(), MediaError> {
        let encoder = self.element("encoder")?;
        let event = gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build();
        let pad = encoder.static_pad("src").ok_or_else(|| self.pipeline.failure("encoder", "no src pad".into()))?;
        if pad.send_event(event) {
            Ok(())
        } else {
            Err(self.pipeline.failure("encoder", "refused the key frame request".into()))
        }
    }

    /// Steps resolution and frame rate down one rung; `None` at the bottom.
    pub fn step_down(&mut self) -> Result<Option<VideoMode>, MediaError> {
        let stepped = self.ladder.step_down();
        if let Some(mode) = stepped {
            self.apply_mode(mode)?;
        }
        Ok(stepped)
    }

    /// Steps resolution and frame rate up one rung; `None` at the top.
    pub fn step_up(&mut self) -> Result<Option<VideoMode>, MediaError> {
        let stepped = self.ladder.step_up();
        if let Some(mode) = stepped {
            self.apply_mode(mode)?;
        }
        Ok(stepped)
    }

    /// The first error the pipeline reported since the last call, typed:
    /// a camera that went away is [`MediaError::DeviceLost`].
    pub fn check(&self) -> Result<(), MediaError> {
        self.pipeline.check()
    }

    /// Waits up to `timeout` for the pipeline to report an error.
    pub fn wait_for_error(&self, timeout: Duration) -> Option<MediaError> {
        self.pipeline.error_within(timeout, false)
    }

    /// Tears the pipeline down and builds it again with the current mode and
    /// bitrate, e.g. when an unplugged camera is back.
    pub fn rebuild(&mut self) -> Result<(), MediaError> {
        let _ = self.pipeline.bin.set_state(gst::State::Null);
        let pipeline = build_video(&self.settings, self.encoder, self.ladder.current(), self.bitrate_kbps, &self.sink)?;
        pipeline.start()?;
        self.pipeline = pipeline;
        Ok(())
    }

    fn apply_mode(&self, mode: VideoMode) -> Result<(), MediaError> {
        let filter = self.element("mode")?;
        // capsfilter's `caps` property is always GstCaps: cannot panic.
        filter.set_property("caps", raw_video_caps(mode));
        Ok(())
    }

    fn element(&self, name: &str) -> Result<gst::Element, MediaError> {
        self.pipeline
            .bin
            .by_name(name)
            .ok_or_else(|| MediaError::NotRunning { pipeline: self.pipeline.label().to_owned() })
    }
}

/// Where the sound comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioSource {
    /// An ALSA capture device, e.g. `hw:CARD=Speakerphone,DEV=0`.
    Microphone { device: String },
    /// A generated tone, for tests and demos.
    Test,
}

/// What the audio sender is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioSendSettings {
    pub source: AudioSource,
    /// Opus bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Cancel the speaker's echo. Needs a running receive pipeline (it owns
    /// the echo probe), so start that first.
    pub echo_cancel: bool,
}

impl AudioSendSettings {
    /// Settings with defaults: 32 kbit/s, echo cancellation on.
    pub fn new(source: AudioSource) -> Self {
        Self { source, bitrate_kbps: 32, echo_cancel: true }
    }
}

/// A running audio send pipeline.
pub struct AudioSender {
    pipeline: Pipeline,
}

impl AudioSender {
    /// Builds and starts the audio pipeline; Opus packets go to `on_frame`.
    pub fn start(
        settings: AudioSendSettings,
        on_frame: impl FnMut(EncodedFrame) + Send + 'static,
    ) -> Result<Self, MediaError> {
        if !(6..=510).contains(&settings.bitrate_kbps) {
            return Err(MediaError::InvalidSetting {
                name: "bitrate_kbps",
                reason: format!("{} is not an Opus bitrate (6 to 510)", settings.bitrate_kbps),
            });
        }
        let sink: FrameSink = Arc::new(Mutex::new(Box::new(on_frame)));
        let pipeline = build_audio(&settings, &sink)?;
        pipeline.start()?;
        Ok(Self { pipeline })
    }

    /// The first error the pipeline reported, typed like the video side's.
    pub fn check(&self) -> Result<(), MediaError> {
        self.pipeline.check()
    }
}

fn check_bitrate(kbps: u32) -> Result<(), MediaError> {
    if (50..=20_000).contains(&kbps) {
        Ok(())
    } else {
        Err(MediaError::InvalidSetting { name: "bitrate_kbps", reason: format!("{kbps} is not from 50 to 20000") })
    }
}

fn build_video(
    settings: &VideoSendSettings,
    encoder: EncoderKind,
    mode: VideoMode,
    bitrate_kbps: u32,
    sink: &FrameSink,
) -> Result<Pipeline, MediaError> {
    let mut pipeline = Pipeline::new("video-send")?;
    let source = camera_branch(&mut pipeline, &settings.source, mode)?;
    let scaled = scale_branch(mode)?;
    let encode = encoder_branch(encoder, bitrate_kbps, settings.keyframe_distance)?;
    let appsink = frame_sink("frames", encoder.codec(), sink)?;

    let mut elements = source;
    elements.extend(scaled);
    if settings.self_view {
        pipeline.chain(&elements)?;
        let tee = make("tee", "self-view-tee")?;
        let view = self_view_branch()?;
        let last = elements.last().cloned();
        pipeline.chain(std::slice::from_ref(&tee))?;
        if let Some(last) = last {
            pipeline.link(&last, &tee)?;
        }
        pipeline.chain(&view)?;
        if let Some(first) = view.first() {
            pipeline.link(&tee, first)?;
        }
        let mut rest = encode;
        rest.push(appsink);
        pipeline.chain(&rest)?;
        if let Some(first) = rest.first() {
            pipeline.link(&tee, first)?;
        }
    } else {
        elements.extend(encode);
        elements.push(appsink);
        pipeline.chain(&elements)?;
    }
    // The admin page's preview reads the camera here, only while asked (check.rs).
    crate::check::offer_video(&pipeline.bin);
    Ok(pipeline)
}

/// The camera, or a test picture with a moving pattern and a clock.
fn camera_branch(
    pipeline: &mut Pipeline,
    source: &VideoSource,
    mode: VideoMode,
) -> Result<Vec<gst::Element>, MediaError> {
    match source {
        VideoSource::Camera { device } => {
            let shown = device.display().to_string();
            if !device.exists() {
                return Err(MediaError::CameraMissing { device: shown });
            }
            let camera = make("v4l2src", "camera")?;
            set_text(&camera, "device", &shown)?;
            pipeline.device("camera", DeviceRole::Camera, &shown);
            Ok(vec![camera])
        }
        VideoSource::Test { pattern } => {
            let camera = make("videotestsrc", "camera")?;
            set_text(&camera, "is-live", "true")?;
            let pattern = match pattern {
                TestPattern::Ball => "ball",
                TestPattern::Snow => "snow",
                TestPattern::Bars => "smpte",
            };
            set_text(&camera, "pattern", pattern)?;
            // Made at the mode's size and rate in I420, the format the clock
            // is painted in and the encoder takes: nothing to convert, scale
            // or drop after it until the quality ladder steps down.
            let caps = caps_filter("camera-caps", &raw_video_caps(mode))?;
            let font = Font::system()?;
            let px = (mode.height / 20).max(8);
            let placement = Placement { anchor: Anchor::TopLeft, margin: px / 2, shaded: true };
            Overlay::attach(&caps)?.add_clock(ClockGlyphs::new(&font, px), "%H:%M:%S", placement);
            Ok(vec![camera, caps])
        }
    }
}

/// Convert and scale to the chosen mode; the `mode` caps filter is what the
/// quality steps change.
fn scale_branch(mode: VideoMode) -> Result<Vec<gst::Element>, MediaError> {
    let rate = make("videorate", "rate")?;
    // Drop frames only; never duplicate them to reach the rate.
    set_text(&rate, "drop-only", "true")?;
    Ok(vec![
        make("videoconvert", "convert")?,
        make("videoscale", "scale")?,
        rate,
        caps_filter("mode", &raw_video_caps(mode))?,
    ])
}

fn raw_video_caps(mode: VideoMode) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", i32::try_from(mode.width).unwrap_or(i32::MAX))
        .field("height", i32::try_from(mode.height).unwrap_or(i32::MAX))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .field("framerate", gst::Fraction::new(i32::try_from(mode.framerate).unwrap_or(30), 1))
        .build()
}

/// The encoder with its real-time settings; H.264 goes through h264parse so
/// it leaves as Annex B access units with SPS/PPS before every IDR.
fn encoder_branch(
    kind: EncoderKind,
    bitrate_kbps: u32,
    keyframe_distance: u32,
) -> Result<Vec<gst::Element>, MediaError> {
    let queue = make("queue", "encoder-queue")?;
    // A slow encoder drops old pictures rather than adding delay.
    set_number(&queue, "max-size-buffers", 2)?;
    set_number(&queue, "max-size-bytes", 0)?;
    set_number(&queue, "max-size-time", 0)?;
    set_text(&queue, "leaky", "downstream")?;

    let encoder = make(kind.factory(), "encoder")?;
    let kfd = i64::from(keyframe_distance);
    match kind {
        EncoderKind::X264 => {
            set_text(&encoder, "tune", "zerolatency")?;
            set_text(&encoder, "speed-preset", "ultrafast")?;
            set_number(&encoder, "bframes", 0)?;
            set_number(&encoder, "key-int-max", kfd)?;
        }
        EncoderKind::OpenH264 => {
            set_text(&encoder, "usage-type", "camera")?;
            set_text(&encoder, "rate-control", "bitrate")?;
            set_text(&encoder, "complexity", "low")?;
            set_number(&encoder, "gop-size", kfd)?;
        }
        EncoderKind::Vp8 => {
            set_number(&encoder, "deadline", 1)?;
            set_text(&encoder, "error-resilient", "default")?;
            set_number(&encoder, "keyframe-max-dist", kfd)?;
            set_text(&encoder, "end-usage", "cbr")?;
            set_number(&encoder, "lag-in-frames", 0)?;
            // A fixed real-time speed, what libwebrtc gives libvpx for VP8 on
            // x86 (-6; it uses -12 on ARM). A positive value would let libvpx
            // pick its speed itself and spend up to (16 - n)/16 of every
            // frame's time on a fast CPU: cpu-used=8 measured 1.6x the encoder
            // CPU of -6 here for the same picture.
            set_number(&encoder, "cpu-used", -6)?;
            // One thread: libvpx's multi-threaded encoder busy-waits between
            // rows, which measured 10× the CPU here on a loaded two-core host.
            set_number(&encoder, "threads", 1)?;
        }
        EncoderKind::V4l2H264 | EncoderKind::Opus => {}
    }
    apply_bitrate(&encoder, kind, bitrate_kbps, keyframe_distance)?;

    let mut branch = vec![queue, encoder];
    if kind == EncoderKind::V4l2H264 {
        // The bcm2835 encoder negotiates only with an explicit level.
        let level = gst::Caps::builder("video/x-h264").field("level", "4").build();
        branch.push(caps_filter("encoder-caps", &level)?);
    }
    if kind.codec() == Codec::H264 {
        let parse = make("h264parse", "parse")?;
        // -1: SPS and PPS in front of every IDR.
        set_number(&parse, "config-interval", -1)?;
        branch.push(parse);
        branch.push(caps_filter("annex-b", &Codec::H264.caps())?);
    }
    Ok(branch)
}

/// Sets the bitrate in the unit each encoder wants.
fn apply_bitrate(
    encoder: &gst::Element,
    kind: EncoderKind,
    kbps: u32,
    keyframe_distance: u32,
) -> Result<(), MediaError> {
    let bps = i64::from(kbps) * 1000;
    match kind {
        EncoderKind::X264 => set_number(encoder, "bitrate", i64::from(kbps)),
        EncoderKind::OpenH264 => set_number(encoder, "bitrate", bps),
        EncoderKind::Vp8 => set_number(encoder, "target-bitrate", bps),
        EncoderKind::Opus => set_number(encoder, "bitrate", bps),
        EncoderKind::V4l2H264 => set_text(
            encoder,
            "extra-controls",
            &format!(
                "controls,video_bitrate=(int){bps},h264_i_frame_period=(int){keyframe_distance},repeat_sequence_header=(int)1"
            ),
        ),
    }
}

/// A leaky branch to the receive pipeline's self-view.
fn self_view_branch() -> Result<Vec<gst::Element>, MediaError> {
    let queue = make("queue", "self-view-queue")?;
    set_text(&queue, "leaky", "downstream")?;
    set_number(&queue, "max-size-buffers", 1)?;
    let sink = make("intervideosink", "self-view")?;
    set_text(&sink, "channel", SELF_VIEW_CHANNEL)?;
    Ok(vec![queue, sink])
}

fn build_audio(settings: &AudioSendSettings, sink: &FrameSink) -> Result<Pipeline, MediaError> {
    let mut pipeline = Pipeline::new("audio-send")?;
    let mut elements = microphone_branch(&mut pipeline, &settings.source)?;
    elements.extend(echo_cancel_branch(settings.echo_cancel)?);
    elements.extend(opus_branch(settings.bitrate_kbps)?);
    elements.push(frame_sink("frames", Codec::Opus, sink)?);
    pipeline.chain(&elements)?;
    // The admin page's meter reads the microphone here, only while asked (check.rs).
    crate::check::offer_audio(&pipeline.bin);
    Ok(pipeline)
}

fn microphone_branch(pipeline: &mut Pipeline, source: &AudioSource) -> Result<Vec<gst::Element>, MediaError> {
    let mic = match source {
        AudioSource::Microphone { device } => {
            let mic = make("alsasrc", "microphone")?;
            set_text(&mic, "device", device)?;
            pipeline.device("microphone", DeviceRole::Microphone, device);
            mic
        }
        AudioSource::Test => {
            let mic = make("audiotestsrc", "microphone")?;
            set_text(&mic, "is-live", "true")?;
            set_text(&mic, "wave", "ticks")?;
            mic
        }
    };
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("layout", "interleaved")
        .field("rate", 48_000i32)
        .field("channels", 1i32)
        .build();
    Ok(vec![
        mic,
        make("audioconvert", "mic-convert")?,
        make("audioresample", "mic-resample")?,
        caps_filter("mic-caps", &caps)?,
    ])
}

/// webrtcdsp cancels what the speaker plays (heard through the probe) and
/// suppresses noise.
fn echo_cancel_branch(echo_cancel: bool) -> Result<Vec<gst::Element>, MediaError> {
    let dsp = make("webrtcdsp", "echo-cancel")?;
    set_text(&dsp, "echo-cancel", if echo_cancel { "true" } else { "false" })?;
    set_text(&dsp, "probe", ECHO_PROBE_NAME)?;
    set_text(&dsp, "noise-suppression", "true")?;
    Ok(vec![dsp, make("audioconvert", "dsp-convert")?])
}

/// Opus for speech: 20 ms frames, in-band FEC, DTX.
fn opus_branch(bitrate_kbps: u32) -> Result<Vec<gst::Element>, MediaError> {
    let opus = make("opusenc", "encoder")?;
    set_text(&opus, "frame-size", "20")?;
    set_text(&opus, "inband-fec", "true")?;
    set_text(&opus, "dtx", "true")?;
    set_number(&opus, "packet-loss-percentage", 10)?;
    set_text(&opus, "audio-type", "voice")?;
    set_text(&opus, "bitrate-type", "vbr")?;
    apply_bitrate(&opus, EncoderKind::Opus, bitrate_kbps, 0)?;
    Ok(vec![opus])
}

/// An appsink that hands every encoded buffer to the callback.
fn frame_sink(name: &str, codec: Codec, sink: &FrameSink) -> Result<gst::Element, MediaError> {
    let appsink = gst_app::AppSink::builder().name(name).sync(false).build();
    let sink = Arc::clone(sink);
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Ok(map) = buffer.map_readable() else {
                    return Err(gst::FlowError::Error);
                };
                let frame = EncodedFrame {
                    data: map.as_slice().to_vec(),
                    pts: buffer.pts().map(|t| Duration::from_nanos(t.nseconds())),
                    duration: buffer.duration().map(|t| Duration::from_nanos(t.nseconds())),
                    keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                    codec,
                };
                let mut deliver = sink.lock().unwrap_or_else(PoisonError::into_inner);
                deliver(frame);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(appsink.upcast())
}
