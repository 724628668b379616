//! Device checks for the admin page: a camera preview (small JPEG
//! snapshots), the microphone's level and a speaker test tone.
//!
//! ```text
//! idle preview: camera → videorate (≤ 2 fps, drop only) → convert → scale (320 px wide) → jpegenc → appsink
//! in a meeting: a one-shot buffer probe on the send pipeline's scaled camera picture → JPEG
//! idle meter:   microphone → convert/resample → S16 48 kHz mono → level (100 ms) → fakesink
//! in a meeting: a buffer probe on the send pipeline's microphone caps, peak and RMS computed in it
//! tone:         audiotestsrc (440 Hz sine, 2 s) → convert/resample → alsasink
//! ```
//!
//! Nothing here runs while nobody looks: the idle pipelines start on the
//! first request and stop [`IDLE_STOP`] after the last one ([`DeviceChecks::tick`]),
//! and the probes on a meeting's pipelines are added by a request and
//! removed by the next buffer after the requests stop. The preview is only
//! ever the room's own camera (the send pipeline's capture branch), never a
//! remote participant's video.
//!
//! While a meeting runs its pipelines own the camera and the microphone,
//! so the idle pipelines are stopped ([`DeviceChecks::set_meeting`]) and the
//! checks read the meeting's pipelines instead; the tone is refused then,
//! as the speaker plays the meeting.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;

use crate::MediaError;
use crate::pipeline::{DeviceRole, Pipeline, caps_filter, make, set_number, set_text};
use crate::send::{AudioSource, VideoSource};

/// How long an idle check pipeline runs after its last request.
pub const IDLE_STOP: Duration = Duration::from_secs(5);
/// How long the test tone plays.
pub const TONE_LENGTH: Duration = Duration::from_secs(2);
/// The test tone's pitch.
pub const TONE_HZ: f64 = 440.0;
/// Width of the preview pictures; the height keeps the camera's shape.
pub const PREVIEW_WIDTH: i32 = 320;
/// Snapshots asked for within this time of the last get the same picture:
/// several open pages cost no more than one.
const SNAPSHOT_REUSE: Duration = Duration::from_millis(900);
/// How long a request waits for the first picture or level.
const FIRST_RESULT: Duration = Duration::from_secs(4);

/// Why a check could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The device is in use by the meeting (the speaker during a meeting).
    #[error("{0}")]
    Busy(String),
    /// Nothing to check (no such device configured or found).
    #[error("{0}")]
    Unavailable(String),
    /// The check's pipeline failed or gave nothing in time.
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// The microphone's level since the last reading (at least 100 ms), in dBFS (0 is full
/// scale; silence is [`SILENCE_DB`]).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct MicLevel {
    pub peak_db: f64,
    pub rms_db: f64,
}

/// The floor of the level scale.
pub const SILENCE_DB: f64 = -90.0;

/// The device checks of one daemon. Cheap to make; nothing runs until asked.
#[derive(Default)]
pub struct DeviceChecks {
    state: Mutex<State>,
    meter: Arc<MeterShared>,
}

#[derive(Default)]
struct State {
    meeting: bool,
    preview: Option<IdlePreview>,
    listener: Option<IdleMeter>,
    tone: Option<(Pipeline, Instant)>,
    last_snapshot: Option<(Instant, Arc<Vec<u8>>)>,
}

struct IdlePreview {
    source: VideoSource,
    pipeline: Pipeline,
    latest: Arc<Mutex<Option<Arc<Vec<u8>>>>>,
    polled: Instant,
}

struct IdleMeter {
    source: AudioSource,
    pipeline: Pipeline,
    polled: Instant,
}

/// The meter's reading in a meeting, written by the probe on the send pipeline.
#[derive(Default)]
struct MeterShared {
    inner: Mutex<MeterInner>,
}

#[derive(Default)]
struct MeterInner {
    /// The pad the probe is on, while it is there.
    probed: Option<glib::WeakRef<gst::Pad>>,
    polled: Option<Instant>,
    /// Everything heard since the last reading.
    window: Window,
}

/// The fewest samples in one reading of the meeting's meter: 100 ms at
/// 48 kHz mono (the send pipeline's `mic-caps`), the idle meter's `level`
/// interval. A reading covers all samples since the one before.
const METER_WINDOW: u64 = 4800;

/// Peak and sum of squares over the samples seen so far.
#[derive(Default)]
struct Window {
    peak: f64,
    sum: f64,
    n: u64,
}

impl Window {
    fn add(&mut self, sample: i16) {
        let x = f64::from(sample) / 32768.0;
        self.peak = self.peak.max(x.abs());
        self.sum += x * x;
        self.n += 1;
    }

    /// The level, once the window is full (and a fresh window).
    fn take_full(&mut self) -> Option<MicLevel> {
        if self.n < METER_WINDOW {
            return None;
        }
        let w = std::mem::take(self);
        // Sample counts are far below 2^52: exact.
        Some(MicLevel { peak_db: to_db(w.peak), rms_db: to_db((w.sum / w.n as f64).sqrt()) })
    }
}

impl std::fmt::Debug for DeviceChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("DeviceChecks")
            .field("meeting", &s.meeting)
            .field("preview", &s.preview.is_some())
            .field("meter", &s.listener.is_some())
            .field("tone", &s.tone.is_some())
            .finish()
    }
}

impl DeviceChecks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a meeting owns the devices. Going into a meeting stops the
    /// idle check pipelines at once, before the meeting opens the devices.
    pub fn set_meeting(&self, meeting: bool) {
        let mut s = lock(&self.state);
        if meeting && !s.meeting {
            s.preview = None;
            s.listener = None;
            s.tone = None;
        }
        s.meeting = meeting;
    }

    /// Stops idle check pipelines nobody has asked for within
    /// [`IDLE_STOP`], and a finished tone. Call every few seconds.
    pub fn tick(&self, now: Instant) {
        let mut s = lock(&self.state);
        if s.preview.as_ref().is_some_and(|p| now.saturating_duration_since(p.polled) > IDLE_STOP) {
            s.preview = None;
        }
        if s.listener.as_ref().is_some_and(|m| now.saturating_duration_since(m.polled) > IDLE_STOP) {
            s.listener = None;
        }
        if s.tone.as_ref().is_some_and(|(_, started)| now.saturating_duration_since(*started) > TONE_LENGTH * 2) {
            s.tone = None;
        }
    }

    /// Which check pipelines run now (preview, meter, tone): for tests and logs.
    pub fn running(&self) -> (bool, bool, bool) {
        let s = lock(&self.state);
        (s.preview.is_some(), s.listener.is_some(), s.tone.is_some())
    }

    /// A JPEG of the room's camera, at most [`PREVIEW_WIDTH`] wide. Idle, it
    /// starts (or keeps) a small capture pipeline from `camera`; in a meeting
    /// it takes the next picture of the meeting's capture. Blocks up to a
    /// few seconds: call it off the async threads.
    pub fn snapshot(&self, camera: &VideoSource) -> Result<Vec<u8>, CheckError> {
        let now = Instant::now();
        let (meeting, latest) = {
            let mut s = lock(&self.state);
            let recent = s.last_snapshot.as_ref().filter(|(at, _)| now.saturating_duration_since(*at) < SNAPSHOT_REUSE);
            if let Some(jpeg) = recent.map(|(_, jpeg)| Arc::clone(jpeg)) {
                if let Some(p) = &mut s.preview {
                    p.polled = now;
                }
                return Ok(jpeg.as_ref().clone());
            }
            if s.meeting {
                (true, None)
            } else {
                if s.preview.as_ref().is_some_and(|p| p.source != *camera) {
                    s.preview = None;
                }
                if s.preview.is_none() {
                    s.preview = Some(start_preview(camera)?);
                }
                let p = s.preview.as_mut().ok_or_else(|| not_running("preview"))?;
                p.polled = now;
                if let Err(e) = p.pipeline.check() {
                    s.preview = None;
                    return Err(e.into());
                }
                (false, Some(Arc::clone(&p.latest)))
            }
        };
        let jpeg = match latest {
            Some(latest) if !meeting => wait_for(FIRST_RESULT, || lock(&latest).clone())
                .ok_or_else(|| self.idle_failure("preview", "no picture from the camera"))?,
            _ => Arc::new(meeting_snapshot()?),
        };
        lock(&self.state).last_snapshot = Some((Instant::now(), Arc::clone(&jpeg)));
        Ok(jpeg.as_ref().clone())
    }

    /// The microphone's level now. Idle, it starts (or keeps) a small
    /// capture pipeline with GStreamer's `level` from `microphone`; in a
    /// meeting it reads the meeting's microphone. Blocks up to a few seconds
    /// for the first reading.
    pub fn mic_level(&self, microphone: &AudioSource) -> Result<MicLevel, CheckError> {
        let now = Instant::now();
        let meeting = lock(&self.state).meeting;
        if meeting {
            return self.meeting_level(now);
        }
        let bus = {
            let mut s = lock(&self.state);
            if s.listener.as_ref().is_some_and(|m| m.source != *microphone) {
                s.listener = None;
            }
            if s.listener.is_none() {
                s.listener = Some(start_meter(microphone)?);
            }
            let m = s.listener.as_mut().ok_or_else(|| not_running("meter"))?;
            m.polled = now;
            m.pipeline.bin.bus().ok_or_else(|| not_running("meter"))?
        };
        let deadline = now + FIRST_RESULT;
        let mut found: Option<MicLevel> = None;
        loop {
            while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Element, gst::MessageType::Error]) {
                match msg.view() {
                    // The loudest of the readings since the last request: a
                    // short sound between two requests still shows.
                    gst::MessageView::Element(e) => {
                        if let Some(level) = e.structure().and_then(level_of_message) {
                            found = Some(match found {
                                Some(f) => MicLevel {
                                    peak_db: f.peak_db.max(level.peak_db),
                                    rms_db: f.rms_db.max(level.rms_db),
                                },
                                None => level,
                            });
                        }
                    }
                    gst::MessageView::Error(err) => {
                        lock(&self.state).listener = None;
                        return Err(CheckError::Media(MediaError::Pipeline {
                            pipeline: "mic-check".into(),
                            element: err.src().map(|s| s.name().to_string()).unwrap_or_default(),
                            message: err.error().to_string(),
                        }));
                    }
                    _ => {}
                }
            }
            if let Some(level) = found {
                return Ok(level);
            }
            if Instant::now() >= deadline {
                return Err(self.idle_failure("meter", "no sound from the microphone"));
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Plays [`TONE_LENGTH`] of a [`TONE_HZ`] sine on the ALSA `speaker`
    /// and returns once it has started. Refused during a meeting and while
    /// a tone plays.
    pub fn play_tone(&self, speaker: &str) -> Result<(), CheckError> {
        let mut s = lock(&self.state);
        if s.meeting {
            return Err(CheckError::Busy(
                "the speaker is playing the meeting; try the test tone when the room is idle".into(),
            ));
        }
        if let Some((pipeline, started)) = &s.tone {
            let done = started.elapsed() > TONE_LENGTH || pipeline.check().is_err() || at_end(pipeline);
            if !done {
                return Err(CheckError::Busy("the test tone is playing".into()));
            }
        }
        s.tone = None;
        let pipeline = tone_pipeline(speaker)?;
        pipeline.start()?;
        // An ALSA device that cannot be opened fails while starting, or just after.
        if let Some(e) = pipeline.error_within(Duration::from_millis(300), true) {
            return Err(e.into());
        }
        s.tone = Some((pipeline, Instant::now()));
        Ok(())
    }

    fn idle_failure(&self, which: &'static str, what: &str) -> CheckError {
        let mut s = lock(&self.state);
        let error = match which {
            "preview" => s.preview.as_ref().and_then(|p| p.pipeline.check().err()),
            _ => s.listener.as_ref().and_then(|m| m.pipeline.check().err()),
        };
        match which {
            "preview" => s.preview = None,
            _ => s.listener = None,
        }
        match error {
            Some(e) => e.into(),
            None => CheckError::Media(MediaError::Pipeline {
                pipeline: format!("{which}-check"),
                element: "appsink".into(),
                message: format!("{what} within {} s", FIRST_RESULT.as_secs()),
            }),
        }
    }

    /// The meeting microphone's level: the probe is put on (or kept on) the
    /// send pipeline's microphone caps, and read.
    fn meeting_level(&self, now: Instant) -> Result<MicLevel, CheckError> {
        let pad = lock(&TAPS).audio.as_ref().and_then(glib::WeakRef::upgrade).ok_or_else(|| {
            CheckError::Unavailable("the meeting's microphone is not running (yet); try again in a moment".into())
        })?;
        {
            let mut m = lock(&self.meter.inner);
            m.polled = Some(now);
            let on_this_pad = m.probed.as_ref().and_then(glib::WeakRef::upgrade).is_some_and(|p| p == pad);
            if !on_this_pad {
                m.probed = Some(pad.downgrade());
                m.window = Window::default();
                let shared = Arc::clone(&self.meter);
                pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| meter_probe(&shared, info));
            }
        }
        wait_for(FIRST_RESULT, || lock(&self.meter.inner).window.take_full()).ok_or_else(|| {
            CheckError::Media(MediaError::Pipeline {
                pipeline: "audio-send".into(),
                element: "mic-caps".into(),
                message: format!("no sound from the meeting's microphone within {} s", FIRST_RESULT.as_secs()),
            })
        })
    }
}

/// The running meeting's capture points: the scaled camera picture and the
/// microphone's raw samples. Weak: a stopped pipeline's pads simply vanish.
struct Taps {
    video: Option<glib::WeakRef<gst::Pad>>,
    audio: Option<glib::WeakRef<gst::Pad>>,
}

/// One meeting at a time runs in a daemon, and its pipelines are built
/// deep inside the engine: the send pipelines offer their capture points
/// here, where the device checks find them.
static TAPS: Mutex<Taps> = Mutex::new(Taps { video: None, audio: None });

/// Called by the video send pipeline once built: its `mode` caps filter's
/// output is the camera picture at the sent size.
pub(crate) fn offer_video(bin: &gst::Pipeline) {
    if let Some(pad) = bin.by_name("mode").and_then(|e| e.static_pad("src")) {
        lock(&TAPS).video = Some(pad.downgrade());
    }
}

/// Called by the audio send pipeline once built: its `mic-caps` output is
/// the microphone as S16 48 kHz mono, before echo cancelling.
pub(crate) fn offer_audio(bin: &gst::Pipeline) {
    if let Some(pad) = bin.by_name("mic-caps").and_then(|e| e.static_pad("src")) {
        lock(&TAPS).audio = Some(pad.downgrade());
    }
}

/// The next picture of the meeting's camera, as a JPEG.
fn meeting_snapshot() -> Result<Vec<u8>, CheckError> {
    let pad = lock(&TAPS).video.as_ref().and_then(glib::WeakRef::upgrade).ok_or_else(|| {
        CheckError::Unavailable("the meeting's camera is not running (yet); try again in a moment".into())
    })?;
    let (tx, rx) = mpsc::sync_channel(1);
    // One buffer, then the probe removes itself: nothing stays on the
    // meeting's pipeline.
    let probe = pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(buffer) = info.buffer() {
            let sample = gst::Sample::builder().buffer(buffer).caps_if_some(pad.current_caps().as_ref()).build();
            let _ = tx.try_send(sample);
        }
        gst::PadProbeReturn::Remove
    });
    let sample = match rx.recv_timeout(Duration::from_secs(2)) {
        Ok(sample) => sample,
        Err(_) => {
            if let Some(id) = probe {
                // Gone already if a buffer came at the last moment; nothing to undo then.
                if rx.try_recv().is_err() {
                    pad.remove_probe(id);
                }
            }
            return Err(CheckError::Media(MediaError::Pipeline {
                pipeline: "video-send".into(),
                element: "mode".into(),
                message: "no picture from the meeting's camera within 2 s".into(),
            }));
        }
    };
    let jpeg_caps = gst::Caps::builder("image/jpeg")
        .field("width", PREVIEW_WIDTH)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let converted = gst_video::convert_sample(&sample, &jpeg_caps, gst::ClockTime::from_seconds(2)).map_err(|e| {
        MediaError::Pipeline { pipeline: "preview".into(), element: "convert_sample".into(), message: e.to_string() }
    })?;
    let buffer = converted.buffer().ok_or_else(|| not_running("preview"))?;
    let map = buffer.map_readable().map_err(|_| not_running("preview"))?;
    Ok(map.as_slice().to_vec())
}

/// The probe on the meeting's microphone: peak and RMS of each buffer while
/// someone reads them; it removes itself once the reads have stopped.
fn meter_probe(shared: &MeterShared, info: &mut gst::PadProbeInfo) -> gst::PadProbeReturn {
    let now = Instant::now();
    let mut m = lock(&shared.inner);
    if m.polled.is_none_or(|p| now.saturating_duration_since(p) > IDLE_STOP) {
        m.probed = None;
        m.window = Window::default();
        return gst::PadProbeReturn::Remove;
    }
    if let Some(map) = info.buffer().and_then(|b| b.map_readable().ok()) {
        for b in map.as_slice().chunks_exact(2) {
            m.window.add(i16::from_le_bytes([b[0], b[1]]));
        }
    }
    gst::PadProbeReturn::Ok
}

/// Peak and RMS in dBFS of 16-bit samples; `None` for no samples.
pub fn level_of_samples(samples: impl Iterator<Item = i16>) -> Option<MicLevel> {
    let mut w = Window::default();
    samples.for_each(|s| w.add(s));
    if w.n == 0 {
        return None;
    }
    Some(MicLevel { peak_db: to_db(w.peak), rms_db: to_db((w.sum / w.n as f64).sqrt()) })
}

fn to_db(amplitude: f64) -> f64 {
    if amplitude <= 0.0 { SILENCE_DB } else { (20.0 * amplitude.log10()).max(SILENCE_DB) }
}

/// The loudest channel's peak and RMS from a `level` element message.
fn level_of_message(s: &gst::StructureRef) -> Option<MicLevel> {
    if s.name() != "level" {
        return None;
    }
    let loudest = |field: &str| -> Option<f64> {
        let values = s.get::<glib::ValueArray>(field).ok()?;
        values.iter().filter_map(|v| v.get::<f64>().ok()).reduce(f64::max)
    };
    let clamp = |db: f64| if db.is_finite() { db.max(SILENCE_DB) } else { SILENCE_DB };
    Some(MicLevel { peak_db: clamp(loudest("peak")?), rms_db: clamp(loudest("rms")?) })
}

fn start_preview(camera: &VideoSource) -> Result<IdlePreview, MediaError> {
    let mut pipeline = Pipeline::new("preview-check")?;
    let source = match camera {
        VideoSource::Camera { device } => {
            let shown = device.display().to_string();
            if !device.exists() {
                return Err(MediaError::CameraMissing { device: shown });
            }
            let camera = make("v4l2src", "camera")?;
            set_text(&camera, "device", &shown)?;
            pipeline.device("camera", DeviceRole::Camera, &shown);
            camera
        }
        VideoSource::Test { .. } => {
            let camera = make("videotestsrc", "camera")?;
            set_text(&camera, "is-live", "true")?;
            set_text(&camera, "pattern", "ball")?;
            camera
        }
    };
    // Frames are dropped before anything is converted: a 30 fps camera costs
    // two conversions and two JPEGs a second.
    let rate = make("videorate", "rate")?;
    set_text(&rate, "drop-only", "true")?;
    set_number(&rate, "max-rate", 2)?;
    let size = gst::Caps::builder("video/x-raw")
        .field("width", PREVIEW_WIDTH)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let jpeg = make("jpegenc", "jpeg")?;
    set_number(&jpeg, "quality", 70)?;
    let latest: Arc<Mutex<Option<Arc<Vec<u8>>>>> = Arc::default();
    let sink = gst_app::AppSink::builder().name("pictures").sync(false).max_buffers(1).drop(true).build();
    let slot = Arc::clone(&latest);
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                    *lock(&slot) = Some(Arc::new(map.as_slice().to_vec()));
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.chain(&[
        source,
        rate,
        make("videoconvert", "convert")?,
        make("videoscale", "scale")?,
        caps_filter("size", &size)?,
        jpeg,
        sink.upcast(),
    ])?;
    pipeline.start()?;
    Ok(IdlePreview { source: camera.clone(), pipeline, latest, polled: Instant::now() })
}

fn start_meter(microphone: &AudioSource) -> Result<IdleMeter, MediaError> {
    let mut pipeline = Pipeline::new("mic-check")?;
    let source = match microphone {
        AudioSource::Microphone { device } => {
            let mic = make("alsasrc", "microphone")?;
            set_text(&mic, "device", device)?;
            pipeline.device("microphone", DeviceRole::Microphone, device);
            mic
        }
        AudioSource::Test => {
            // The meeting's test microphone: ticks, a tone that comes and goes.
            let mic = make("audiotestsrc", "microphone")?;
            set_text(&mic, "is-live", "true")?;
            set_text(&mic, "wave", "ticks")?;
            mic
        }
    };
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("rate", 48_000i32)
        .field("channels", 1i32)
        .build();
    let level = make("level", "level")?;
    set_number(&level, "interval", 100_000_000)?;
    set_text(&level, "post-messages", "true")?;
    let sink = make("fakesink", "sink")?;
    set_text(&sink, "sync", "false")?;
    pipeline.chain(&[
        source,
        make("audioconvert", "convert")?,
        make("audioresample", "resample")?,
        caps_filter("caps", &caps)?,
        level,
        sink,
    ])?;
    pipeline.start()?;
    Ok(IdleMeter { source: microphone.clone(), pipeline, polled: Instant::now() })
}

fn tone_pipeline(speaker: &str) -> Result<Pipeline, MediaError> {
    let mut pipeline = Pipeline::new("tone-check")?;
    let tone = make("audiotestsrc", "tone")?;
    set_text(&tone, "wave", "sine")?;
    set_text(&tone, "freq", &TONE_HZ.to_string())?;
    set_text(&tone, "volume", "0.3")?;
    set_text(&tone, "is-live", "true")?;
    // 100 ms buffers at 48 kHz: the tone's length in buffers.
    set_number(&tone, "samplesperbuffer", 4800)?;
    set_number(&tone, "num-buffers", i64::try_from(TONE_LENGTH.as_millis() / 100).unwrap_or(20))?;
    let caps = gst::Caps::builder("audio/x-raw").field("rate", 48_000i32).build();
    let out = make("alsasink", "speaker")?;
    set_text(&out, "device", speaker)?;
    pipeline.device("speaker", DeviceRole::Speaker, speaker);
    pipeline.chain(&[
        tone,
        caps_filter("tone-caps", &caps)?,
        make("audioconvert", "convert")?,
        make("audioresample", "resample")?,
        out,
    ])?;
    Ok(pipeline)
}

/// Whether a pipeline has played to its end.
fn at_end(pipeline: &Pipeline) -> bool {
    pipeline.bin.bus().is_some_and(|bus| bus.pop_filtered(&[gst::MessageType::Eos]).is_some())
}

/// Polls `f` every 30 ms until it gives something or `limit` has passed.
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn not_running(what: &str) -> MediaError {
    MediaError::NotRunning { pipeline: format!("{what}-check") }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::TestPattern;

    fn test_camera() -> VideoSource {
        VideoSource::Test { pattern: TestPattern::Ball }
    }

    #[test]
    fn levels_of_known_signals() {
        assert_eq!(level_of_samples(std::iter::empty()), None);
        let silence = level_of_samples(std::iter::repeat_n(0i16, 480)).expect("level");
        assert_eq!((silence.peak_db, silence.rms_db), (SILENCE_DB, SILENCE_DB));
        // A full-scale square wave: peak and RMS both 0 dBFS.
        let square = level_of_samples((0..480).map(|i| if i % 2 == 0 { i16::MAX } else { i16::MIN })).expect("level");
        assert!(square.peak_db.abs() < 0.01 && square.rms_db.abs() < 0.01, "{square:?}");
        // A half-scale sine: peak -6 dB, RMS 3 dB below it.
        let sine = level_of_samples((0..4800).map(|i| {
            let x = (f64::from(i) * 2.0 * std::f64::consts::PI * 440.0 / 48_000.0).sin() * 16384.0;
            x as i16
        }))
        .expect("level");
        assert!((sine.peak_db + 6.02).abs() < 0.1, "{sine:?}");
        assert!((sine.rms_db - sine.peak_db + 3.01).abs() < 0.1, "{sine:?}");
    }

    #[test]
    fn idle_preview_gives_moving_jpegs_and_stops_when_nobody_asks() {
        let checks = DeviceChecks::new();
        let first = checks.snapshot(&test_camera()).expect("a snapshot");
        assert_eq!(&first[..2], &[0xFF, 0xD8], "a JPEG");
        // Asked again at once: the same picture (several pages cost one).
        assert_eq!(checks.snapshot(&test_camera()).expect("again"), first);
        std::thread::sleep(Duration::from_millis(1300));
        let second = checks.snapshot(&test_camera()).expect("a later snapshot");
        assert_ne!(first, second, "the test picture's ball moves");
        assert_eq!(checks.running(), (true, false, false));
        checks.tick(Instant::now());
        assert!(checks.running().0, "still wanted");
        checks.tick(Instant::now() + IDLE_STOP + Duration::from_secs(1));
        assert_eq!(checks.running(), (false, false, false), "stopped after the last request");
    }

    #[test]
    fn a_meeting_stops_the_idle_pipelines_and_the_tone_is_refused() {
        let checks = DeviceChecks::new();
        checks.snapshot(&test_camera()).expect("a snapshot");
        checks.mic_level(&AudioSource::Test).expect("a level");
        assert_eq!(checks.running(), (true, true, false));
        checks.set_meeting(true);
        assert_eq!(checks.running(), (false, false, false));
        assert!(matches!(checks.play_tone("null"), Err(CheckError::Busy(_))));
    }

    #[test]
    fn the_test_microphone_meter_moves() {
        let checks = DeviceChecks::new();
        let mut readings = Vec::new();
        for _ in 0..25 {
            readings.push(checks.mic_level(&AudioSource::Test).expect("a level").peak_db);
            std::thread::sleep(Duration::from_millis(80));
        }
        let (lo, hi) = readings.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!(hi > -30.0, "the ticks are heard: {readings:?}");
        assert!(hi - lo > 10.0, "and come and go: {readings:?}");
    }

    #[test]
    fn a_missing_camera_is_named() {
        let checks = DeviceChecks::new();
        let e = checks
            .snapshot(&VideoSource::Camera { device: "/dev/video-cloakroom-none".into() })
            .expect_err("no such camera");
        assert!(e.to_string().contains("/dev/video-cloakroom-none"), "{e}");
    }

    #[test]
    fn a_meeting_snapshot_comes_from_the_send_pipelines_camera() {
        use crate::Codec;
        use crate::ladder::VideoMode;
        use crate::send::{VideoSendSettings, VideoSender};
        let checks = DeviceChecks::new();
        checks.set_meeting(true);
        let mode = VideoMode::new(320, 240, 15).expect("mode");
        let settings = VideoSendSettings::new(test_camera(), Codec::Vp8, mode);
        let sender = VideoSender::start(settings, |_| {}).expect("sender");
        let jpeg = checks.snapshot(&test_camera()).expect("a snapshot of the meeting's camera");
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        assert_eq!(checks.running(), (false, false, false), "no capture pipeline of its own");
        drop(sender);
    }

    #[test]
    fn the_meeting_microphone_meter_moves() {
        use crate::send::{AudioSendSettings, AudioSender};
        let checks = DeviceChecks::new();
        checks.set_meeting(true);
        let mut settings = AudioSendSettings::new(AudioSource::Test);
        settings.echo_cancel = false;
        let _sender = AudioSender::start(settings, |_| {}).expect("sender");
        let mut readings = Vec::new();
        for _ in 0..25 {
            readings.push(checks.mic_level(&AudioSource::Test).expect("a level").peak_db);
            std::thread::sleep(Duration::from_millis(80));
        }
        let (lo, hi) = readings.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!(hi > -30.0 && hi - lo > 10.0, "{readings:?}");
        assert_eq!(checks.running(), (false, false, false), "no capture pipeline of its own");
    }

    #[test]
    fn the_tone_plays_on_an_alsa_device() {
        // ALSA's `null` device is there without any sound card.
        let checks = DeviceChecks::new();
        checks.play_tone("null").expect("the tone starts");
        assert!(matches!(checks.play_tone("null"), Err(CheckError::Busy(_))), "one at a time");
        let e = DeviceChecks::new().play_tone("hw:CARD=cloakroomNoSuchCard").expect_err("no such card");
        assert!(e.to_string().contains("cloakroomNoSuchCard"), "{e}");
    }
}
