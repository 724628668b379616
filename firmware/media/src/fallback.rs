//! Keeping a meeting's picture and sound going when a capture device fails.
//!
//! A camera unplugged in a meeting makes `v4l2src` post a resource error
//! and push end-of-stream; left alone, that ends the send pipeline and the
//! remote side sees the room's picture freeze. Instead, the source
//! elements are swapped while the pipeline runs: the failed device goes
//! out and a stand-in comes in (a "Camera unavailable" picture at the same
//! size and rate, or silence for a microphone), so the encoder, its caps
//! and the remote side's stream stay as they were. Every
//! [`RETRY`] the real device is opened again; once it opens, it
//! replaces the stand-in. [`DeviceHealth`] says which one is live, for
//! the status line, the supervisor and the admin page.
//!
//! ```text
//! camera (v4l2src) ─╳─┐
//!                     ├─ junction probe ─ convert … encoder … appsink
//! stand-in ───────────┘  (drops the dead source's EOS, keeps time going forward)
//! ```
//!
//! TODO (issue 14 part 4, not done yet): the speaker going away (the receive
//! pipeline's audio sink) and an encoder that fails mid-meeting are not
//! recovered here; their errors stay on the pipelines' buses, for `check`.
//! The engine does not read [`DeviceHealth`] yet, so the status, the page
//! and the room screen do not say "camera unavailable"; the far end sees it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use gst::glib::translate::IntoGlib;
use gst::prelude::*;

use crate::MediaError;

/// How often a lost device is tried again.
pub const RETRY: Duration = Duration::from_secs(2);

/// Whether a capture device is live or its stand-in is being sent. Cloning
/// gives another handle on the same state.
#[derive(Clone, Debug, Default)]
pub struct DeviceHealth {
    inner: Arc<HealthInner>,
}

#[derive(Debug, Default)]
struct HealthInner {
    lost: AtomicBool,
    /// How many times the device was lost since the sender started.
    outages: AtomicU64,
    /// Why it was lost, while it is.
    problem: Mutex<Option<String>>,
}

impl DeviceHealth {
    /// True while the real device is captured.
    pub fn available(&self) -> bool {
        !self.inner.lost.load(Ordering::Acquire)
    }

    /// Why the device is unavailable (the error it gave), while it is.
    pub fn problem(&self) -> Option<String> {
        self.inner.problem.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many times the device has been lost since the sender started.
    pub fn outages(&self) -> u64 {
        self.inner.outages.load(Ordering::Acquire)
    }

    fn set_lost(&self, problem: String) {
        *self.inner.problem.lock().unwrap_or_else(PoisonError::into_inner) = Some(problem);
        self.inner.outages.fetch_add(1, Ordering::AcqRel);
        self.inner.lost.store(true, Ordering::Release);
    }

    /// The real device is in (again): at start, after a rebuild, or reopened.
    pub(crate) fn set_back(&self) {
        self.inner.lost.store(false, Ordering::Release);
        *self.inner.problem.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Makes a chain of source elements (the device, or its stand-in), not yet
/// in any bin; the device's maker opens it, so a device still missing fails
/// here.
pub(crate) type SourceMaker = Box<dyn Fn() -> Result<Vec<gst::Element>, MediaError> + Send>;

/// What a [`StandIn`] needs to know about one capture device.
pub(crate) struct Device {
    /// `camera` or `microphone`: the name of the device's source element,
    /// and the word in log lines.
    pub(crate) element: &'static str,
    /// The device as configured, for messages.
    pub(crate) shown: String,
    /// The element the source chain links into.
    pub(crate) junction: &'static str,
    pub(crate) open: SourceMaker,
    pub(crate) stand_in: SourceMaker,
}

/// Watches one device of a running pipeline and swaps its stand-in in and
/// out. Stops its thread when dropped (drop it before the pipeline).
pub(crate) struct StandIn {
    wake: Sender<Wake>,
    thread: Option<JoinHandle<()>>,
}

enum Wake {
    Failed(String),
    Stop,
}

impl StandIn {
    /// Starts watching. `current` is the device's source chain as built into
    /// `bin`, linked into the junction. Call before the pipeline starts, so
    /// no error is missed.
    pub(crate) fn watch(
        bin: &gst::Pipeline,
        device: Device,
        current: Vec<gst::Element>,
        health: DeviceHealth,
    ) -> Result<Self, MediaError> {
        let junction =
            bin.by_name(device.junction).and_then(|j| j.static_pad("sink")).ok_or_else(|| MediaError::Pipeline {
                pipeline: bin.name().to_string(),
                element: device.junction.to_owned(),
                message: "no junction to watch the device at".into(),
            })?;
        add_junction_probe(&junction);
        let bus = bin.bus().ok_or_else(|| MediaError::NotRunning { pipeline: bin.name().to_string() })?;
        let (wake, woken) = mpsc::channel();
        // Errors of the device's element while it runs are the stand-in's
        // business; the rest stay on the bus: for `check`, and a device that
        // cannot be opened at start for the typed error `start` gives (its
        // element is still below PAUSED then). Runs on the posting thread
        // (the device's streaming thread), so it only passes the word on.
        let element = device.element;
        let to_thread = Mutex::new(wake.clone());
        // The element that failed last: its own later errors (basesrc's flow
        // error after the resource error) are part of the same fault.
        let failed = Mutex::new(gst::glib::WeakRef::<gst::Object>::new());
        bus.set_sync_handler(move |_, msg| {
            let gst::MessageView::Error(err) = msg.view() else {
                return gst::BusSyncReply::Pass;
            };
            let Some(src) = err.src().filter(|s| s.name() == element) else {
                return gst::BusSyncReply::Pass;
            };
            let failed = failed.lock().unwrap_or_else(PoisonError::into_inner);
            if failed.upgrade().as_ref() == Some(src) {
                return gst::BusSyncReply::Drop;
            }
            let running = src.downcast_ref::<gst::Element>().is_some_and(|e| e.current_state() >= gst::State::Paused);
            // A bare "streaming stopped, reason error" with nothing from the
            // device before it means something downstream (the encoder)
            // failed: not the device's fault, and no stand-in would help.
            if !running || is_downstream_failure(err) {
                return gst::BusSyncReply::Pass;
            }
            failed.set(Some(src));
            let message = match err.debug() {
                Some(debug) => format!("{} ({debug})", err.error()),
                None => err.error().to_string(),
            };
            let _ = to_thread.lock().unwrap_or_else(PoisonError::into_inner).send(Wake::Failed(message));
            gst::BusSyncReply::Drop
        });
        let weak = bin.downgrade();
        let thread = std::thread::Builder::new()
            .name(format!("{}-stand-in", device.element))
            .spawn(move || run(&weak, &device, current, &health, &woken))
            .map_err(|e| MediaError::Pipeline {
                pipeline: "stand-in".into(),
                element: "thread".into(),
                message: e.to_string(),
            })?;
        Ok(Self { wake, thread: Some(thread) })
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.wake.send(Wake::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The watching thread: a failure swaps the stand-in in; while it is in,
/// the device is tried every [`RETRY`].
fn run(
    bin: &gst::glib::WeakRef<gst::Pipeline>,
    device: &Device,
    mut current: Vec<gst::Element>,
    health: &DeviceHealth,
    woken: &mpsc::Receiver<Wake>,
) {
    let what = device.element;
    loop {
        let timeout = if health.available() { Duration::from_secs(3600) } else { RETRY };
        let wake = woken.recv_timeout(timeout);
        let Some(bin) = bin.upgrade() else { return };
        match wake {
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Wake::Failed(message)) => {
                if !health.available() {
                    // The dying source's second word (its flow error), or the
                    // device failing again right after it was opened: the
                    // stand-in is (or goes back) in.
                    if current.first().is_some_and(|e| e.name() != what) {
                        continue;
                    }
                }
                tracing::warn!(
                    "{what} {} failed: {message}; sending the stand-in, trying it again every {} s",
                    device.shown,
                    RETRY.as_secs()
                );
                health.set_lost(message.clone());
                match (device.stand_in)().and_then(|chain| swap(&bin, device.junction, &current, chain)) {
                    Ok(chain) => current = chain,
                    Err(e) => {
                        tracing::warn!("{what} {}: the stand-in could not be started: {e}", device.shown);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if health.available() {
                    continue;
                }
                let Ok(chain) = (device.open)() else {
                    continue;
                };
                match swap(&bin, device.junction, &current, chain) {
                    Ok(chain) => {
                        current = chain;
                        health.set_back();
                        tracing::info!("{what} {} is back", device.shown);
                    }
                    Err(e) => tracing::warn!("{what} {} opened but could not be linked: {e}", device.shown),
                }
            }
        }
    }
}

/// basesrc's error when a push returned `GST_FLOW_ERROR` (flow-return -5).
fn is_downstream_failure(err: &gst::message::Error) -> bool {
    err.error().matches(gst::StreamError::Failed)
        && err.details().and_then(|d| d.get::<i32>("flow-return").ok()) == Some(gst::FlowReturn::Error.into_glib())
}

/// Takes `old` out of the running `bin` and puts `new` in its place, linked
/// into `junction`; returns the chain now in.
fn swap(
    bin: &gst::Pipeline,
    junction: &str,
    old: &[gst::Element],
    new: Vec<gst::Element>,
) -> Result<Vec<gst::Element>, MediaError> {
    let failed = |element: &str, message: String| MediaError::Pipeline {
        pipeline: bin.name().to_string(),
        element: element.to_owned(),
        message,
    };
    let target = bin.by_name(junction).ok_or_else(|| failed(junction, "not in the pipeline".into()))?;
    // Stopped before unlinked: a source still streaming would fail its next
    // push as not-linked, an error on the bus.
    for element in old {
        if let Err(e) = element.set_state(gst::State::Null) {
            // Its device stays open (a V4L2 node keeps its number) until the element goes.
            tracing::warn!("{} could not be stopped: {e}", element.name());
        }
    }
    if let Some(last) = old.last() {
        last.unlink(&target);
    }
    for element in old {
        let _ = bin.remove(element);
    }
    bin.add_many(&new).map_err(|e| failed("bin", e.to_string()))?;
    gst::Element::link_many(&new).map_err(|e| failed("link", e.to_string()))?;
    if let Some(last) = new.last() {
        last.link(&target).map_err(|e| failed(junction, e.to_string()))?;
    }
    for element in new.iter().rev() {
        element.sync_state_with_parent().map_err(|e| failed(&element.name(), e.to_string()))?;
    }
    Ok(new)
}

/// At the junction: a dead source's end-of-stream would end the encoder
/// for good, so it stops here; a new source's stream start and segment are
/// dropped (the first ones stay in force), and its timestamps are moved to
/// the pipeline's running time if they would go back, so the encoder and
/// the remote side see one stream going forward.
fn add_junction_probe(pad: &gst::Pad) {
    #[derive(Default)]
    struct Seen {
        segment: bool,
        start: bool,
        last: Option<gst::ClockTime>,
    }
    let seen = Mutex::new(Seen::default());
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        let Seen { segment: seen_segment, start: seen_start, last } = &mut *seen;
        match info.data.as_mut() {
            Some(gst::PadProbeData::Event(event)) => match event.type_() {
                // Handled, not Drop: the event is consumed here (GStreamer
                // 1.22 unrefs a dropped event the bindings already took).
                gst::EventType::Eos => return gst::PadProbeReturn::Handled,
                gst::EventType::Segment if *seen_segment => return gst::PadProbeReturn::Handled,
                gst::EventType::Segment => *seen_segment = true,
                gst::EventType::StreamStart if *seen_start => return gst::PadProbeReturn::Handled,
                gst::EventType::StreamStart => *seen_start = true,
                _ => {}
            },
            Some(gst::PadProbeData::Buffer(buffer)) => {
                let pts = buffer.pts();
                if last.is_some() && pts <= *last {
                    let now = running_time(pad);
                    let step = buffer.duration().unwrap_or(gst::ClockTime::from_mseconds(1));
                    let pts = match (now, *last) {
                        (Some(now), Some(last)) if now > last => now,
                        (_, Some(last)) => last + step,
                        (now, None) => now.unwrap_or(gst::ClockTime::ZERO),
                    };
                    let buffer = buffer.make_mut();
                    buffer.set_pts(pts);
                    buffer.set_dts(gst::ClockTime::NONE);
                    *last = Some(pts);
                } else {
                    *last = pts.or(*last);
                }
            }
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
}

/// The running time of the pipeline `pad` is in, now.
fn running_time(pad: &gst::Pad) -> Option<gst::ClockTime> {
    let element = pad.parent_element()?;
    let clock = element.clock()?;
    let base = element.base_time()?;
    clock.time()?.checked_sub(base)
}
