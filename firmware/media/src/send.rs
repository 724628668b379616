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
//! camera or microphone that fails while running is replaced by a stand-in
//! (a "Camera unavailable" picture, silence) and tried again until it is
//! back ([`crate::fallback`]); [`VideoSender::camera`] and
//! [`AudioSender::microphone`] say which is being sent. Other failures are
//! reported by [`VideoSender::check`]; [`VideoSender::rebuild`] starts again
//! from the same settings.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gst::prelude::*;

use crate::encoder::{EncoderKind, choose_encoder, installed};
use crate::fallback::{Device, DeviceHealth, StandIn};
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

/// Devices the unit tests unplug and plug back, used instead of the
/// settings' source; nothing outside tests.
#[derive(Clone, Default)]
struct Fakes {
    #[cfg(test)]
    camera: Option<tests::FakeCamera>,
    #[cfg(test)]
    microphone: Option<tests::FakeMicrophone>,
}

/// A running video send pipeline.
pub struct VideoSender {
    settings: VideoSendSettings,
    encoder: EncoderKind,
    ladder: QualityLadder,
    bitrate_kbps: u32,
    sink: FrameSink,
    camera: DeviceHealth,
    fakes: Fakes,
    // Declared before the pipeline: dropped (its thread stopped) first.
    stand_in: Option<StandIn>,
    pipeline: Pipeline,
}

impl VideoSender {
    /// Chooses the encoder, builds the pipeline and starts it; frames go to
    /// `on_frame` on a GStreamer streaming thread.
    pub fn start(
        settings: VideoSendSettings,
        on_frame: impl FnMut(EncodedFrame) + Send + 'static,
    ) -> Result<Self, MediaError> {
        Self::start_with(settings, Fakes::default(), on_frame)
    }

    fn start_with(
        settings: VideoSendSettings,
        fakes: Fakes,
        on_frame: impl FnMut(EncodedFrame) + Send + 'static,
    ) -> Result<Self, MediaError> {
        settings.validate()?;
        crate::init()?;
        let encoder = choose_encoder(settings.codec, settings.encoder, installed)?;
        let sink: FrameSink = Arc::new(Mutex::new(Box::new(on_frame)));
        let ladder = QualityLadder::new(settings.mode);
        let bitrate_kbps = settings.bitrate_kbps;
        let camera = DeviceHealth::default();
        let (pipeline, stand_in) =
            build_video(&settings, &fakes, encoder, settings.mode, bitrate_kbps, &sink, &camera)?;
        pipeline.start()?;
        Ok(Self { settings, encoder, ladder, bitrate_kbps, sink, camera, fakes, stand_in, pipeline })
    }

    /// Whether the camera's picture is being sent, or (camera failed or
    /// unplugged) the "Camera unavailable" picture while it is tried again.
    /// The handle stays valid across [`VideoSender::rebuild`].
    pub fn camera(&self) -> DeviceHealth {
        self.camera.clone()
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

    /// The first error the pipeline reported since the last call. A camera
    /// that went away is not one: its stand-in is sent instead, as
    /// [`VideoSender::camera`] says.
    pub fn check(&self) -> Result<(), MediaError> {
        self.pipeline.check()
    }

    /// Waits up to `timeout` for the pipeline to report an error.
    pub fn wait_for_error(&self, timeout: Duration) -> Option<MediaError> {
        self.pipeline.error_within(timeout, false)
    }

    /// Tears the pipeline down and builds it again with the current mode and
    /// bitrate, e.g. after a failure [`VideoSender::check`] reported. (An
    /// unplugged camera needs none: it comes back by itself.)
    pub fn rebuild(&mut self) -> Result<(), MediaError> {
        self.stand_in = None;
        let _ = self.pipeline.bin.set_state(gst::State::Null);
        let (pipeline, stand_in) = build_video(
            &self.settings,
            &self.fakes,
            self.encoder,
            self.ladder.current(),
            self.bitrate_kbps,
            &self.sink,
            &self.camera,
        )?;
        pipeline.start()?;
        self.pipeline = pipeline;
        self.stand_in = stand_in;
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
    microphone: DeviceHealth,
    // Declared before the pipeline: dropped (its thread stopped) first.
    _stand_in: Option<StandIn>,
    pipeline: Pipeline,
}

impl AudioSender {
    /// Builds and starts the audio pipeline; Opus packets go to `on_frame`.
    pub fn start(
        settings: AudioSendSettings,
        on_frame: impl FnMut(EncodedFrame) + Send + 'static,
    ) -> Result<Self, MediaError> {
        Self::start_with(settings, &Fakes::default(), on_frame)
    }

    fn start_with(
        settings: AudioSendSettings,
        fakes: &Fakes,
        on_frame: impl FnMut(EncodedFrame) + Send + 'static,
    ) -> Result<Self, MediaError> {
        if !(6..=510).contains(&settings.bitrate_kbps) {
            return Err(MediaError::InvalidSetting {
                name: "bitrate_kbps",
                reason: format!("{} is not an Opus bitrate (6 to 510)", settings.bitrate_kbps),
            });
        }
        let sink: FrameSink = Arc::new(Mutex::new(Box::new(on_frame)));
        let microphone = DeviceHealth::default();
        let (pipeline, stand_in) = build_audio(&settings, fakes, &sink, &microphone)?;
        pipeline.start()?;
        Ok(Self { microphone, _stand_in: stand_in, pipeline })
    }

    /// Whether the microphone is heard, or (failed or unplugged) silence is
    /// sent while it is tried again.
    pub fn microphone(&self) -> DeviceHealth {
        self.microphone.clone()
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
    fakes: &Fakes,
    encoder: EncoderKind,
    mode: VideoMode,
    bitrate_kbps: u32,
    sink: &FrameSink,
    health: &DeviceHealth,
) -> Result<(Pipeline, Option<StandIn>), MediaError> {
    let mut pipeline = Pipeline::new("video-send")?;
    let source = camera_branch(&mut pipeline, &settings.source, fakes, mode)?;
    let camera_chain = source.clone();
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
    let stand_in = match camera_device(&settings.source, fakes, settings.mode) {
        Some(device) => {
            // Built with the camera itself (a rebuild after an outage too).
            health.set_back();
            Some(StandIn::watch(&pipeline.bin, device, camera_chain, health.clone())?)
        }
        None => None,
    };
    Ok((pipeline, stand_in))
}

/// What the stand-in needs to replace and reopen a camera; `None` for the
/// test picture, which cannot fail. The "Camera unavailable" picture is made
/// at the best mode, so it fits whatever step the ladder is on.
fn camera_device(source: &VideoSource, fakes: &Fakes, best: VideoMode) -> Option<Device> {
    let (shown, open): (String, crate::fallback::SourceMaker) = match source {
        #[cfg(test)]
        _ if fakes.camera.is_some() => {
            let fake = fakes.camera.clone()?;
            ("fake camera".into(), Box::new(move || fake.open(best)))
        }
        VideoSource::Camera { device } => {
            let device = device.clone();
            let identity = CameraIdentity::of(&device);
            (device.display().to_string(), Box::new(move || open_camera(&device, identity.as_ref())))
        }
        VideoSource::Test { .. } => return None,
    };
    let _ = fakes;
    Some(Device {
        element: "camera",
        shown,
        junction: "convert",
        open,
        stand_in: Box::new(move || camera_unavailable_picture(best)),
    })
}

/// A V4L2 camera, opened (to READY) so a camera still missing fails here.
fn open_camera(device: &std::path::Path, identity: Option<&CameraIdentity>) -> Result<Vec<gst::Element>, MediaError> {
    let configured = device.display().to_string();
    let path = if device.exists() {
        device.to_path_buf()
    } else {
        identity
            .and_then(CameraIdentity::find)
            .ok_or_else(|| MediaError::CameraMissing { device: configured.clone() })?
    };
    let shown = path.display().to_string();
    let camera = make("v4l2src", "camera")?;
    set_text(&camera, "device", &shown)?;
    if camera.set_state(gst::State::Ready).is_err() {
        let _ = camera.set_state(gst::State::Null);
        return Err(MediaError::CameraMissing { device: shown });
    }
    if shown != configured {
        tracing::info!("camera {configured} is found again as {shown}");
    }
    Ok(vec![camera])
}

/// Which camera a V4L2 node is, to find it again when it comes back under
/// another node: a node keeps its number while anything still holds it
/// open, and GStreamer's V4L2 buffer pool keeps the unplugged one open (seen
/// with vivid unbound in the QEMU test), so the camera plugged back gets the
/// next free number.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CameraIdentity {
    card: String,
    bus: String,
}

impl CameraIdentity {
    fn of(path: &std::path::Path) -> Option<Self> {
        let caps = v4l::Device::with_path(path).ok()?.query_caps().ok()?;
        Some(Self { card: caps.card, bus: caps.bus })
    }

    /// The first capture node (one with capture formats) of the same card
    /// on the same bus.
    fn find(&self) -> Option<PathBuf> {
        use v4l::video::Capture;
        let mut nodes: Vec<PathBuf> =
            v4l::context::enum_devices().into_iter().map(|n| n.path().to_path_buf()).collect();
        nodes.sort();
        nodes.into_iter().find(|path| {
            let Ok(dev) = v4l::Device::with_path(path) else { return false };
            let same = dev.query_caps().is_ok_and(|c| c.card == self.card && c.bus == self.bus);
            same && dev.enum_formats().is_ok_and(|f| !f.is_empty())
        })
    }
}

/// What is sent while the camera is away: a dark picture saying "Camera
/// unavailable", with the clock so the far end sees it is live.
fn camera_unavailable_picture(mode: VideoMode) -> Result<Vec<gst::Element>, MediaError> {
    let source = make("videotestsrc", "camera-stand-in")?;
    set_text(&source, "is-live", "true")?;
    set_text(&source, "pattern", "solid-color")?;
    set_number(&source, "foreground-color", 0xff20_2428)?;
    let caps = caps_filter("camera-stand-in-caps", &raw_video_caps(mode))?;
    // Without a font the picture stays plain dark: still a live stream.
    if let Ok(font) = Font::system() {
        let overlay = Overlay::attach(&caps)?;
        let px = (mode.height / 12).max(10);
        let text = font.render("Camera unavailable", px);
        let x = mode.width.saturating_sub(text.width) / 2;
        let y = mode.height.saturating_sub(text.height) / 2;
        overlay.add_text(text, Placement { anchor: Anchor::At { x, y }, margin: 0, shaded: false });
        let small = (mode.height / 20).max(8);
        let placement = Placement { anchor: Anchor::TopLeft, margin: small / 2, shaded: true };
        overlay.add_clock(ClockGlyphs::new(&font, small), "%H:%M:%S", placement);
    }
    Ok(vec![source, caps])
}

/// The camera, or a test picture with a moving pattern and a clock.
fn camera_branch(
    pipeline: &mut Pipeline,
    source: &VideoSource,
    fakes: &Fakes,
    mode: VideoMode,
) -> Result<Vec<gst::Element>, MediaError> {
    #[cfg(test)]
    if let Some(fake) = &fakes.camera {
        return fake.open(mode);
    }
    let _ = fakes;
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

fn build_audio(
    settings: &AudioSendSettings,
    fakes: &Fakes,
    sink: &FrameSink,
    health: &DeviceHealth,
) -> Result<(Pipeline, Option<StandIn>), MediaError> {
    let mut pipeline = Pipeline::new("audio-send")?;
    let mut elements = microphone_branch(&mut pipeline, &settings.source, fakes)?;
    let microphone_chain = elements.first().cloned().into_iter().collect();
    elements.extend(echo_cancel_branch(settings.echo_cancel)?);
    elements.extend(opus_branch(settings.bitrate_kbps)?);
    elements.push(frame_sink("frames", Codec::Opus, sink)?);
    pipeline.chain(&elements)?;
    // The admin page's meter reads the microphone here, only while asked (check.rs).
    crate::check::offer_audio(&pipeline.bin);
    let stand_in = match microphone_device(&settings.source, fakes) {
        Some(device) => {
            health.set_back();
            Some(StandIn::watch(&pipeline.bin, device, microphone_chain, health.clone())?)
        }
        None => None,
    };
    Ok((pipeline, stand_in))
}

/// What the stand-in needs to replace and reopen a microphone; `None` for
/// the test tone.
fn microphone_device(source: &AudioSource, fakes: &Fakes) -> Option<Device> {
    let (shown, open): (String, crate::fallback::SourceMaker) = match source {
        #[cfg(test)]
        _ if fakes.microphone.is_some() => {
            let fake = fakes.microphone.clone()?;
            ("fake microphone".into(), Box::new(move || fake.open()))
        }
        AudioSource::Microphone { device } => {
            let device = device.clone();
            (device.clone(), Box::new(move || open_microphone(&device)))
        }
        AudioSource::Test => return None,
    };
    let _ = fakes;
    Some(Device { element: "microphone", shown, junction: "mic-convert", open, stand_in: Box::new(silence) })
}

/// An ALSA capture device, opened (to READY) so one still missing fails here.
fn open_microphone(device: &str) -> Result<Vec<gst::Element>, MediaError> {
    let mic = make("alsasrc", "microphone")?;
    set_text(&mic, "device", device)?;
    if mic.set_state(gst::State::Ready).is_err() {
        let _ = mic.set_state(gst::State::Null);
        return Err(MediaError::MicrophoneMissing { device: device.to_owned() });
    }
    Ok(vec![mic])
}

/// What is sent while the microphone is away.
fn silence() -> Result<Vec<gst::Element>, MediaError> {
    let source = make("audiotestsrc", "microphone-stand-in")?;
    set_text(&source, "is-live", "true")?;
    set_text(&source, "wave", "silence")?;
    Ok(vec![source])
}

fn microphone_branch(
    pipeline: &mut Pipeline,
    source: &AudioSource,
    fakes: &Fakes,
) -> Result<Vec<gst::Element>, MediaError> {
    #[cfg(test)]
    let fake = fakes.microphone.as_ref().map(tests::FakeMicrophone::open).transpose()?.map(|mut chain| chain.remove(0));
    #[cfg(not(test))]
    let fake: Option<gst::Element> = None;
    let _ = fakes;
    let mic = match source {
        _ if fake.is_some() => fake.ok_or_else(|| MediaError::missing("audiotestsrc"))?,
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

#[cfg(test)]
mod tests {
    //! Unplugging and plugging back a camera and a microphone in a running
    //! send pipeline, with real GStreamer: sources that fail the way
    //! v4l2src and alsasrc do (a resource error, then a flow error and
    //! end-of-stream from the dead source), and a VP8/Opus decoder that
    //! looks at what was sent.

    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::Instant;

    use super::*;
    use crate::fallback::RETRY;

    /// Pipelines here are live and timed; one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    /// A white picture while plugged in; unplugged, it fails like v4l2src
    /// does and cannot be opened again until plugged back.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct FakeCamera {
        unplugged: Arc<AtomicBool>,
    }

    impl FakeCamera {
        pub(crate) fn open(&self, mode: VideoMode) -> Result<Vec<gst::Element>, MediaError> {
            if self.unplugged.load(Ordering::SeqCst) {
                return Err(MediaError::CameraMissing { device: "fake camera".into() });
            }
            let camera = make("videotestsrc", "camera")?;
            set_text(&camera, "is-live", "true")?;
            set_text(&camera, "pattern", "white")?;
            fail_when_unplugged(&camera, &self.unplugged);
            Ok(vec![camera, caps_filter("camera-caps", &raw_video_caps(mode))?])
        }
    }

    /// A loud tone while plugged in; unplugged, it fails like alsasrc does.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct FakeMicrophone {
        unplugged: Arc<AtomicBool>,
    }

    impl FakeMicrophone {
        pub(crate) fn open(&self) -> Result<Vec<gst::Element>, MediaError> {
            if self.unplugged.load(Ordering::SeqCst) {
                return Err(MediaError::MicrophoneMissing { device: "fake microphone".into() });
            }
            let mic = make("audiotestsrc", "microphone")?;
            set_text(&mic, "is-live", "true")?;
            set_text(&mic, "wave", "white-noise")?;
            set_text(&mic, "volume", "0.5")?;
            fail_when_unplugged(&mic, &self.unplugged);
            Ok(vec![mic])
        }
    }

    /// What a capture element does when its device goes: a resource error
    /// on the bus, then its push fails (basesrc then posts a flow error and
    /// sends end-of-stream downstream).
    fn fail_when_unplugged(source: &gst::Element, unplugged: &Arc<AtomicBool>) {
        let unplugged = Arc::clone(unplugged);
        let element = source.clone();
        if let Some(pad) = source.static_pad("src") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if !unplugged.load(Ordering::SeqCst) {
                    return gst::PadProbeReturn::Ok;
                }
                let msg = gst::message::Error::builder(gst::ResourceError::Read, "Could not read from resource.")
                    .src(&element)
                    .debug("fake device unplugged")
                    .build();
                let _ = element.post_message(msg);
                info.flow_res = Err(gst::FlowError::Error);
                gst::PadProbeReturn::Handled
            });
        }
    }

    /// What was sent, decoded: when it left the sender and its mean luma
    /// (video) or RMS level (audio), with its timestamp.
    struct Sent {
        at: Instant,
        level: f64,
        /// Share of bright pixels in the picture's middle band (video).
        middle_bright: f64,
        pts: Option<Duration>,
    }

    /// Feeds every encoded frame through a real decoder on its own thread.
    fn decoding(codec: Codec) -> (impl FnMut(EncodedFrame) + Send + 'static, mpsc::Receiver<Sent>) {
        crate::init().expect("GStreamer initialises");
        let (tx, rx) = mpsc::channel::<(Instant, EncodedFrame)>();
        let (out_tx, out_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (description, caps) = match codec {
                Codec::Vp8 => ("vp8dec ! videoconvert ! video/x-raw,format=GRAY8", "video/x-vp8"),
                _ => (
                    "opusdec ! audioconvert ! audio/x-raw,format=S16LE,channels=1",
                    "audio/x-opus,channel-mapping-family=0",
                ),
            };
            let line = format!(
                "appsrc name=in is-live=true format=time caps={caps} ! {description} ! appsink name=out sync=false"
            );
            let pipeline = gst::parse::launch(&line).expect("decoder").downcast::<gst::Pipeline>().expect("pipeline");
            let appsrc = pipeline.by_name("in").expect("in").downcast::<gst_app::AppSrc>().expect("appsrc");
            let appsink = pipeline.by_name("out").expect("out").downcast::<gst_app::AppSink>().expect("appsink");
            pipeline.set_state(gst::State::Playing).expect("decoder plays");
            while let Ok((at, frame)) = rx.recv() {
                let mut buffer = gst::Buffer::from_slice(frame.data);
                if let Some(pts) = frame.pts {
                    buffer.get_mut().expect("fresh").set_pts(gst::ClockTime::from_nseconds(pts.as_nanos() as u64));
                }
                if appsrc.push_buffer(buffer).is_err() {
                    break;
                }
                let Some(sample) = appsink.try_pull_sample(gst::ClockTime::from_seconds(1)) else {
                    continue;
                };
                let buffer = sample.buffer().expect("buffer");
                let map = buffer.map_readable().expect("readable");
                let (level, middle_bright) = if codec.is_video() {
                    let info = gst_video::VideoInfo::from_caps(sample.caps().expect("caps")).expect("info");
                    let (w, h, stride) = (info.width() as usize, info.height() as usize, info.stride()[0] as usize);
                    let luma = |x: usize, y: usize| f64::from(map[y * stride + x]);
                    let mean = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| luma(x, y)).sum::<f64>()
                        / (w * h) as f64;
                    let band = (h * 2 / 5)..(h * 3 / 5);
                    let bright = band
                        .clone()
                        .flat_map(|y| (0..w).map(move |x| (x, y)))
                        .filter(|&(x, y)| luma(x, y) > 200.0)
                        .count();
                    (mean, bright as f64 / (band.len() * w) as f64)
                } else {
                    let samples: Vec<f64> =
                        map.chunks_exact(2).map(|b| f64::from(i16::from_le_bytes([b[0], b[1]]))).collect();
                    ((samples.iter().map(|s| s * s).sum::<f64>() / samples.len().max(1) as f64).sqrt(), 0.0)
                };
                if out_tx.send(Sent { at, level, middle_bright, pts: frame.pts }).is_err() {
                    break;
                }
            }
            let _ = pipeline.set_state(gst::State::Null);
        });
        (
            move |frame| {
                let _ = tx.send((Instant::now(), frame));
            },
            out_rx,
        )
    }

    /// The next sent frame that `is` says yes to, within `within`; the ones
    /// before it go to `seen`.
    fn until(rx: &mpsc::Receiver<Sent>, within: Duration, seen: &mut Vec<Sent>, is: impl Fn(&Sent) -> bool) -> Sent {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let sent = rx.recv_timeout(left).unwrap_or_else(|_| panic!("nothing matching within {within:?}"));
            if is(&sent) {
                return sent;
            }
            seen.push(sent);
        }
    }

    fn is_camera(s: &Sent) -> bool {
        s.level > 200.0
    }

    fn is_unavailable_picture(s: &Sent) -> bool {
        // Dark, with white text across the middle.
        s.level < 80.0 && s.middle_bright > 0.02
    }

    #[test]
    fn unplugged_camera_sends_the_unavailable_picture_and_comes_back_without_a_restart() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let fake = FakeCamera::default();
        let mode = VideoMode::new(320, 240, 30).expect("valid mode");
        let mut settings = VideoSendSettings::new(VideoSource::Test { pattern: TestPattern::Ball }, Codec::Vp8, mode);
        settings.encoder = Some(EncoderKind::Vp8);
        settings.bitrate_kbps = 500;
        let (on_frame, rx) = decoding(Codec::Vp8);
        let fakes = Fakes { camera: Some(fake.clone()), microphone: None };
        let sender = VideoSender::start_with(settings, fakes, on_frame).expect("sender starts");
        let camera = sender.camera();
        let mut seen = Vec::new();
        until(&rx, Duration::from_secs(10), &mut seen, is_camera);
        assert!(camera.available());

        let unplugged = Instant::now();
        fake.unplugged.store(true, Ordering::SeqCst);
        let first = until(&rx, Duration::from_secs(5), &mut seen, is_unavailable_picture);
        let to_stand_in = first.at - unplugged;
        assert!(!camera.available(), "the state says the camera is unavailable");
        assert_eq!(camera.outages(), 1);
        let problem = camera.problem().expect("a reason");
        assert!(problem.contains("Could not read"), "{problem}");
        sender.check().expect("a lost camera is not a pipeline failure");

        // The stand-in is a live stream: a second of it, at the frame rate.
        let start = Instant::now();
        let mut during = vec![first];
        while start.elapsed() < Duration::from_secs(1) {
            during.push(rx.recv_timeout(Duration::from_secs(1)).expect("frames go on while the camera is away"));
        }
        assert!(during.len() >= 20, "{} frames in 1 s of stand-in", during.len());
        assert!(during.iter().all(is_unavailable_picture), "only the unavailable picture while unplugged");

        let plugged = Instant::now();
        fake.unplugged.store(false, Ordering::SeqCst);
        let back = until(&rx, RETRY + Duration::from_secs(5), &mut during, is_camera);
        let to_camera = back.at - plugged;
        assert!(camera.available(), "the state says the camera is back");
        assert!(camera.problem().is_none());
        let after: Vec<Sent> =
            (0..10).map(|_| rx.recv_timeout(Duration::from_secs(2)).expect("frames after")).collect();
        assert!(after.iter().all(is_camera), "the camera's picture stays");
        sender.check().expect("no pipeline error");

        // One stream going forward for the far end: timestamps never go back.
        let stamps: Vec<Duration> =
            seen.iter().chain(&during).chain([&back]).chain(&after).filter_map(|s| s.pts).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "timestamps go forward: {stamps:?}");
        println!(
            "camera unplugged → first \"Camera unavailable\" frame sent: {} ms; plugged back → first camera frame sent: {} ms (retry every {} s)",
            to_stand_in.as_millis(),
            to_camera.as_millis(),
            RETRY.as_secs()
        );
        assert!(to_stand_in < Duration::from_secs(1), "{to_stand_in:?}");
        assert!(to_camera < RETRY + Duration::from_secs(2), "{to_camera:?}");

        // Again, plugged back at once: the same elements' names, a fresh
        // camera, up to a whole retry period to wait.
        let unplugged = Instant::now();
        fake.unplugged.store(true, Ordering::SeqCst);
        let mut rest = Vec::new();
        let first = until(&rx, Duration::from_secs(5), &mut rest, is_unavailable_picture);
        assert_eq!(camera.outages(), 2);
        let plugged = Instant::now();
        fake.unplugged.store(false, Ordering::SeqCst);
        let back = until(&rx, RETRY + Duration::from_secs(5), &mut rest, is_camera);
        assert!(camera.available());
        sender.check().expect("no pipeline error");
        println!(
            "again: unplugged → unavailable picture: {} ms; plugged back at once → camera: {} ms",
            (first.at - unplugged).as_millis(),
            (back.at - plugged).as_millis()
        );
        assert!(back.at - plugged < RETRY + Duration::from_secs(2));
    }

    #[test]
    fn a_rebuild_while_the_camera_is_away_starts_from_the_camera() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let fake = FakeCamera::default();
        let mode = VideoMode::new(320, 240, 30).expect("valid mode");
        let mut settings = VideoSendSettings::new(VideoSource::Test { pattern: TestPattern::Ball }, Codec::Vp8, mode);
        settings.encoder = Some(EncoderKind::Vp8);
        let (on_frame, rx) = decoding(Codec::Vp8);
        let fakes = Fakes { camera: Some(fake.clone()), microphone: None };
        let mut sender = VideoSender::start_with(settings, fakes, on_frame).expect("sender starts");
        let camera = sender.camera();
        let mut seen = Vec::new();
        until(&rx, Duration::from_secs(10), &mut seen, is_camera);
        fake.unplugged.store(true, Ordering::SeqCst);
        until(&rx, Duration::from_secs(5), &mut seen, is_unavailable_picture);
        assert!(!camera.available());
        fake.unplugged.store(false, Ordering::SeqCst);
        sender.rebuild().expect("rebuilt with the camera");
        assert!(camera.available(), "the same handle says the camera is back");
        until(&rx, Duration::from_secs(5), &mut seen, is_camera);
        // A retry period later nothing was swapped behind the rebuilt pipeline's back.
        std::thread::sleep(RETRY + Duration::from_millis(500));
        while rx.try_recv().is_ok() {}
        let after: Vec<Sent> = (0..5).map(|_| rx.recv_timeout(Duration::from_secs(2)).expect("frames")).collect();
        assert!(after.iter().all(is_camera));
        assert!(camera.available());
        assert_eq!(camera.outages(), 1);
        sender.check().expect("no pipeline error");
    }

    #[test]
    fn a_failing_encoder_is_not_taken_for_the_camera() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let fake = FakeCamera::default();
        let mode = VideoMode::new(320, 240, 30).expect("valid mode");
        let mut settings = VideoSendSettings::new(VideoSource::Test { pattern: TestPattern::Ball }, Codec::Vp8, mode);
        settings.encoder = Some(EncoderKind::Vp8);
        let (on_frame, rx) = decoding(Codec::Vp8);
        let fakes = Fakes { camera: Some(fake), microphone: None };
        let sender = VideoSender::start_with(settings, fakes, on_frame).expect("sender starts");
        let camera = sender.camera();
        until(&rx, Duration::from_secs(10), &mut Vec::new(), is_camera);
        // What a hardware encoder that gives up does: an error, then every
        // push into it fails (the camera's thread stops with a flow error).
        let encoder = sender.element("encoder").expect("encoder");
        let broken = Arc::new(AtomicBool::new(false));
        let pad = encoder.static_pad("sink").expect("sink pad");
        let failing = Arc::clone(&broken);
        let element = encoder.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if !failing.swap(true, Ordering::SeqCst) {
                let msg = gst::message::Error::builder(gst::LibraryError::Encode, "Failed to encode frame.")
                    .src(&element)
                    .build();
                let _ = element.post_message(msg);
            }
            info.flow_res = Err(gst::FlowError::Error);
            gst::PadProbeReturn::Handled
        });
        match sender.wait_for_error(Duration::from_secs(5)) {
            Some(MediaError::Pipeline { element, message, .. }) => {
                assert_eq!(element, "encoder", "{message}");
            }
            other => panic!("the encoder's failure should be reported: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(500));
        assert!(camera.available(), "the camera did not fail: {:?}", camera.problem());
        assert_eq!(camera.outages(), 0);
    }

    #[test]
    fn unplugged_microphone_sends_silence_and_comes_back() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let fake = FakeMicrophone::default();
        let mut settings = AudioSendSettings::new(AudioSource::Test);
        settings.echo_cancel = false;
        let (on_frame, rx) = decoding(Codec::Opus);
        let fakes = Fakes { camera: None, microphone: Some(fake.clone()) };
        let sender = AudioSender::start_with(settings, &fakes, on_frame).expect("sender starts");
        let microphone = sender.microphone();
        let loud = |s: &Sent| s.level > 1000.0;
        let quiet = |s: &Sent| s.level < 50.0;
        let mut seen = Vec::new();
        until(&rx, Duration::from_secs(10), &mut seen, loud);

        let unplugged = Instant::now();
        fake.unplugged.store(true, Ordering::SeqCst);
        let first = until(&rx, Duration::from_secs(5), &mut seen, quiet);
        let to_silence = first.at - unplugged;
        assert!(!microphone.available());
        assert!(microphone.problem().expect("a reason").contains("Could not read"));
        sender.check().expect("a lost microphone is not a pipeline failure");
        let start = Instant::now();
        let mut during = 0;
        while start.elapsed() < Duration::from_secs(1) {
            let s = rx.recv_timeout(Duration::from_secs(1)).expect("packets go on while the microphone is away");
            assert!(quiet(&s), "silence while unplugged, got level {}", s.level);
            during += 1;
        }

        let plugged = Instant::now();
        fake.unplugged.store(false, Ordering::SeqCst);
        let mut rest = Vec::new();
        let back = until(&rx, RETRY + Duration::from_secs(5), &mut rest, loud);
        let to_microphone = back.at - plugged;
        assert!(microphone.available());
        sender.check().expect("no pipeline error");
        println!(
            "microphone unplugged → silence sent: {} ms ({during} packets in the next second); plugged back → its sound sent: {} ms",
            to_silence.as_millis(),
            to_microphone.as_millis()
        );
        assert!(to_silence < Duration::from_secs(1), "{to_silence:?}");
        assert!(to_microphone < RETRY + Duration::from_secs(2), "{to_microphone:?}");
    }
}
