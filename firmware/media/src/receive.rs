//! The receive side: remote participants' encoded frames to the screen and
//! the speaker.
//!
//! ```text
//! per participant: appsrc → [h264parse] → decoder → videoconvert → queue ┐
//! self-view (intervideosrc) ─────────────────────────────────────────────┤
//!   compositor (grid, live on its own clock) → caps (+ the badge and the tiles' labels, painted) → display sink
//! per participant: appsrc → opusdec → convert/resample → queue ┐
//! silence (live) ──────────────────────────────────────────────┤
//!   audiomixer → convert/resample → webrtcechoprobe → speaker
//! ```
//!
//! Participants come and go while it runs; the grid ([`GridLayout`]) is
//! recomputed and applied to the compositor pads each time. Each tile is
//! labelled with its participant's name and encryption state
//! ([`crate::labels`]); a label is rendered again only when its words or its
//! tile's size change. The echo probe feeds the send side's echo canceller,
//! so start this pipeline before the [`crate::send::AudioSender`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gst::prelude::*;

use crate::encoder::{DecoderKind, choose_decoder, installed};
use crate::labels::{self, LabelStyle, TileEncryption};
use crate::layout::{Canvas, GridLayout, Rect};
use crate::pipeline::{DeviceRole, Pipeline, caps_filter, clock_time, make, set_number, set_text};
use crate::screen::{
    DisplayOutput, Snapshot, canvas_caps, display_branch, encryption_badge, link_to_compositor, place, pull_snapshot,
};
use crate::send::{ECHO_PROBE_NAME, SELF_VIEW_CHANNEL};
use crate::text::{Anchor, Font, Overlay, Placement, TextImage};
use crate::{Codec, EncodedFrame, MediaError};

/// Where the meeting's sound goes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioOutput {
    /// An ALSA playback device, e.g. `hw:CARD=Speakerphone,DEV=0`.
    Alsa { device: String },
    /// Played to nowhere, in time (tests, boards without a speaker).
    Discard,
}

/// What the receive pipeline is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveSettings {
    pub canvas: Canvas,
    pub framerate: u32,
    pub display: DisplayOutput,
    pub speaker: AudioOutput,
    /// Show the local camera small in a corner (from the video sender's
    /// self-view channel).
    pub self_view: bool,
    /// Whether the meeting is end-to-end encrypted: the grid's badge says
    /// "end-to-end encrypted" or "NOT encrypted".
    pub encrypted: bool,
}

/// A running receive pipeline.
pub struct ReceivePipeline {
    pipeline: Pipeline,
    compositor: gst::Element,
    mixer: gst::Element,
    self_view: Option<gst::Pad>,
    canvas: Canvas,
    layout: GridLayout,
    participants: Vec<Participant>,
    /// The tiles' labels, painted after the badge.
    labels: Overlay,
    /// Whether the meeting has a key: a new tile says "NOT encrypted" when
    /// it has none, nothing about encryption until its frames tell.
    encrypted: bool,
    /// Makes element names unique even when an id comes back.
    next_tag: u64,
    /// A line across the top of the screen about the room itself ("Camera
    /// unavailable: …"), and its rendered picture.
    notice: Option<(String, TextImage)>,
}

struct Participant {
    id: String,
    name: String,
    encryption: Option<TileEncryption>,
    /// More words on the tile (verifying who they are: the code to compare, "verified").
    note: Option<String>,
    video: Option<Branch>,
    audio: Option<Branch>,
    /// The label as last rendered, while the participant has a tile.
    label: Option<Label>,
}

struct Label {
    /// What the mask was rendered from; when any of it changes, the mask
    /// is rendered again.
    drawn_from: (String, Option<TileEncryption>, Option<String>, LabelStyle),
    image: TextImage,
    band: Rect,
}

struct Branch {
    codec: Codec,
    src: gst_app::AppSrc,
    elements: Vec<gst::Element>,
    /// The compositor or mixer pad this branch feeds.
    pad: gst::Pad,
    decoded: Arc<AtomicU64>,
}

impl ReceivePipeline {
    /// Builds and starts the pipeline with nobody in it yet.
    pub fn start(settings: &ReceiveSettings) -> Result<Self, MediaError> {
        let Canvas { width, height } = settings.canvas;
        if width < 64 || height < 64 || !(1..=60).contains(&settings.framerate) {
            return Err(MediaError::InvalidSetting {
                name: "canvas",
                reason: format!("{width}×{height}@{} is too small", settings.framerate),
            });
        }
        let mut pipeline = Pipeline::new("receive")?;
        let (compositor, labels) = video_output_branch(&mut pipeline, settings)?;
        let mixer = audio_output_branch(&mut pipeline, &settings.speaker)?;
        let layout = GridLayout::new(settings.canvas, 0);
        let self_view = if settings.self_view {
            let branch = self_view_branch()?;
            pipeline.chain(&branch)?;
            let pad = link_to_compositor(&pipeline, &branch, &compositor, Some(layout.self_view), 100)?;
            Some(pad)
        } else {
            None
        };
        pipeline.start()?;
        Ok(Self {
            pipeline,
            compositor,
            mixer,
            self_view,
            canvas: settings.canvas,
            layout,
            participants: Vec::new(),
            labels,
            encrypted: settings.encrypted,
            next_tag: 0,
            notice: None,
        })
    }

    /// Adds a participant receiving `video` (if any) and Opus audio (if
    /// `audio`), and re-lays out the grid. `name` is shown on their tile
    /// ("Guest" when empty).
    pub fn add_participant(
        &mut self,
        id: &str,
        name: &str,
        video: Option<Codec>,
        audio: bool,
    ) -> Result<(), MediaError> {
        if self.participants.iter().any(|p| p.id == id) {
            return Err(MediaError::DuplicateParticipant { id: id.to_owned() });
        }
        if let Some(codec) = video.filter(|c| !c.is_video()) {
            return Err(MediaError::InvalidSetting { name: "video", reason: format!("{codec} is not a video codec") });
        }
        let tag = format!("{}-{}", self.next_tag, sanitise(id));
        self.next_tag += 1;
        let video = match video {
            Some(codec) => Some(self.add_video_branch(&tag, codec)?),
            None => None,
        };
        let audio = if audio {
            match self.add_audio_branch(&tag) {
                Ok(branch) => Some(branch),
                Err(e) => {
                    if let Some(v) = video {
                        self.remove_branch(&self.compositor, v);
                    }
                    return Err(e);
                }
            }
        } else {
            None
        };
        let encryption = (!self.encrypted).then_some(TileEncryption::NotEncrypted);
        self.participants.push(Participant {
            id: id.to_owned(),
            name: name.to_owned(),
            encryption,
            note: None,
            video,
            audio,
            label: None,
        });
        self.relayout()
    }

    /// Removes a participant and re-lays out the grid.
    pub fn remove_participant(&mut self, id: &str) -> Result<(), MediaError> {
        let at = self
            .participants
            .iter()
            .position(|p| p.id == id)
            .ok_or_else(|| MediaError::UnknownParticipant { id: id.to_owned() })?;
        let gone = self.participants.remove(at);
        if let Some(v) = gone.video {
            self.remove_branch(&self.compositor, v);
        }
        if let Some(a) = gone.audio {
            self.remove_branch(&self.mixer, a);
        }
        self.relayout()
    }

    /// Changes the name on participant `id`'s tile.
    pub fn set_name(&mut self, id: &str, name: &str) -> Result<(), MediaError> {
        let p = self.participant_mut(id)?;
        if p.name != name {
            p.name = name.to_owned();
            self.draw_labels()?;
        }
        Ok(())
    }

    /// Changes what participant `id`'s tile says about encryption (see
    /// [`labels::EncryptionWatch`] for when to).
    pub fn set_encryption(&mut self, id: &str, state: TileEncryption) -> Result<(), MediaError> {
        let p = self.participant_mut(id)?;
        if p.encryption != Some(state) {
            p.encryption = Some(state);
            self.draw_labels()?;
        }
        Ok(())
    }

    /// Sets (or clears) more words on participant `id`'s tile after its
    /// encryption state: the code to compare while verifying who they are,
    /// then "verified" or why not.
    pub fn set_note(&mut self, id: &str, note: Option<&str>) -> Result<(), MediaError> {
        let p = self.participant_mut(id)?;
        if p.note.as_deref() != note {
            p.note = note.map(str::to_owned);
            self.draw_labels()?;
        }
        Ok(())
    }

    /// Sets (or clears) a line across the top of the screen about the room
    /// itself, e.g. "Camera unavailable: &lt;cause&gt;" while the room's camera
    /// is gone (the others see a "camera unavailable" picture meanwhile).
    pub fn set_notice(&mut self, notice: Option<&str>) -> Result<(), MediaError> {
        if self.notice.as_ref().map(|(t, _)| t.as_str()) == notice {
            return Ok(());
        }
        self.notice = match notice {
            Some(text) => {
                let font = Font::system()?;
                let px = u32::try_from(self.canvas.height / 30).unwrap_or(12).max(12);
                // Left of the encryption badge (top right), whatever the cause's length.
                let width = u32::try_from(self.canvas.width).unwrap_or(0) * 3 / 5;
                let image = font.render(text, px).cropped(width);
                Some((text.to_owned(), image))
            }
            None => None,
        };
        self.draw_labels()
    }

    /// Where participant `id`'s label band is; `None` for participants
    /// without a tile.
    pub fn label_band(&self, id: &str) -> Option<Rect> {
        Some(self.participant(id).ok()?.label.as_ref()?.band)
    }

    /// Hands one encoded frame of participant `id` to its decoder. The frame
    /// is timestamped on arrival (network jitter is absorbed by the
    /// compositor's latency), so `frame.pts` is not used; `duration` and
    /// `keyframe` are.
    pub fn push(&self, id: &str, frame: EncodedFrame) -> Result<(), MediaError> {
        let p = self.participant(id)?;
        let branch = if frame.codec.is_video() { p.video.as_ref() } else { p.audio.as_ref() };
        let Some(branch) = branch else {
            return Err(MediaError::InvalidSetting {
                name: "frame",
                reason: format!("participant {id} has no {} branch", frame.codec),
            });
        };
        if branch.codec != frame.codec {
            return Err(MediaError::CodecMismatch { id: id.to_owned(), expected: branch.codec, got: frame.codec });
        }
        let mut buffer = gst::Buffer::from_mut_slice(frame.data);
        if let Some(b) = buffer.get_mut() {
            if let Some(d) = frame.duration {
                b.set_duration(clock_time(d));
            }
            if !frame.keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        branch
            .src
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|_| MediaError::NotRunning { pipeline: self.pipeline.label().to_owned() })
    }

    /// Participant ids in join order (the grid's order).
    pub fn participants(&self) -> Vec<&str> {
        self.participants.iter().map(|p| p.id.as_str()).collect()
    }

    /// The layout in force.
    pub fn layout(&self) -> &GridLayout {
        &self.layout
    }

    /// Where participant `id`'s picture is, read back from its compositor
    /// pad; `None` for unknown, audio-only or hidden participants.
    pub fn tile(&self, id: &str) -> Option<Rect> {
        let pad = &self.participant(id).ok()?.video.as_ref()?.pad;
        // Compositor pads always have these properties with these types
        // (gdouble alpha, gint geometry): the typed reads cannot panic.
        if pad.property::<f64>("alpha") <= 0.0 {
            return None;
        }
        Some(Rect {
            x: pad.property("xpos"),
            y: pad.property("ypos"),
            width: pad.property("width"),
            height: pad.property("height"),
        })
    }

    /// How many compositor inputs the grid has (background, self-view and
    /// participants); shows that a leaving participant's pad is gone.
    pub fn compositor_inputs(&self) -> usize {
        self.compositor.sink_pads().len()
    }

    /// Video frames decoded for participant `id` so far.
    pub fn decoded_video_frames(&self, id: &str) -> Option<u64> {
        let v = self.participant(id).ok()?.video.as_ref()?;
        Some(v.decoded.load(Ordering::Relaxed))
    }

    /// Audio frames decoded for participant `id` so far.
    pub fn decoded_audio_frames(&self, id: &str) -> Option<u64> {
        let a = self.participant(id).ok()?.audio.as_ref()?;
        Some(a.decoded.load(Ordering::Relaxed))
    }

    /// The latest picture, when the display is [`DisplayOutput::Snapshots`].
    pub fn snapshot(&self, timeout: Duration) -> Option<Snapshot> {
        pull_snapshot(&self.pipeline.bin, timeout)
    }

    /// The first error the pipeline reported, typed (a speaker that went
    /// away is [`MediaError::DeviceLost`]).
    pub fn check(&self) -> Result<(), MediaError> {
        self.pipeline.check()
    }

    fn participant(&self, id: &str) -> Result<&Participant, MediaError> {
        self.participants
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| MediaError::UnknownParticipant { id: id.to_owned() })
    }

    fn participant_mut(&mut self, id: &str) -> Result<&mut Participant, MediaError> {
        self.participants
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(|| MediaError::UnknownParticipant { id: id.to_owned() })
    }

    /// Renders the labels whose words or size changed (the font is read
    /// only then) and hands all of them, placed on their tiles, to the
    /// overlay.
    fn draw_labels(&mut self) -> Result<(), MediaError> {
        let mut font = None;
        let mut texts = Vec::new();
        let mut tiles = self.layout.tiles.iter();
        for p in &mut self.participants {
            let tile = if p.video.is_some() { tiles.next() } else { None };
            let Some(&tile) = tile else {
                p.label = None;
                continue;
            };
            let style = LabelStyle::for_tile(tile, self.canvas);
            let drawn_from = (p.name.clone(), p.encryption, p.note.clone(), style);
            let label = match p.label.take() {
                Some(label) if label.drawn_from == drawn_from => label,
                _ => {
                    let font = match &mut font {
                        Some(f) => f,
                        None => font.insert(Font::system()?),
                    };
                    let image =
                        labels::render(font, &p.name, p.encryption, p.note.as_deref(), style.px, style.max_text_width);
                    Label { drawn_from, image, band: tile }
                }
            };
            let place = style.place(tile, label.image.width, label.image.height);
            let at =
                Anchor::At { x: u32::try_from(place.text_x).unwrap_or(0), y: u32::try_from(place.text_y).unwrap_or(0) };
            texts.push((label.image.clone(), Placement { anchor: at, margin: 0, shaded: true }));
            p.label = Some(Label { band: place.band, ..label });
        }
        if let Some((_, image)) = &self.notice {
            texts.push((image.clone(), Placement { anchor: Anchor::TopLeft, margin: 16, shaded: true }));
        }
        self.labels.replace_texts(texts);
        Ok(())
    }

    fn relayout(&mut self) -> Result<(), MediaError> {
        let with_video: Vec<&Branch> = self.participants.iter().filter_map(|p| p.video.as_ref()).collect();
        let layout = GridLayout::new(self.canvas, with_video.len());
        for (i, branch) in with_video.iter().enumerate() {
            match layout.tiles.get(i) {
                Some(&rect) => {
                    place(&branch.pad, rect)?;
                    set_number(&branch.pad, "alpha", 1)?;
                }
                // Beyond the 3×3 grid: connected but not shown.
                None => set_number(&branch.pad, "alpha", 0)?,
            }
        }
        if let Some(pad) = &self.self_view {
            place(pad, layout.self_view)?;
        }
        self.layout = layout;
        self.draw_labels()
    }

    fn add_video_branch(&self, tag: &str, codec: Codec) -> Result<Branch, MediaError> {
        let decoder = choose_decoder(codec, installed)?;
        let src = participant_src(&format!("video-in-{tag}"), codec)?;
        let mut elements = vec![src.clone().upcast::<gst::Element>()];
        if codec == Codec::H264 {
            elements.push(make("h264parse", &format!("video-parse-{tag}"))?);
        }
        let dec = make(decoder.factory(), &format!("video-decoder-{tag}"))?;
        if decoder == DecoderKind::AvH264 {
            // Slice threads only: frame threads add a frame of delay each.
            let _ = set_text(&dec, "thread-type", "slice");
        }
        let decoded = count_buffers(&dec);
        elements.push(dec);
        elements.push(make("videoconvert", &format!("video-convert-{tag}"))?);
        elements.push(make("queue", &format!("video-queue-{tag}"))?);
        self.pipeline.chain(&elements)?;
        let pad = link_to_compositor(&self.pipeline, &elements, &self.compositor, None, 10)?;
        set_text(&pad, "sizing-policy", "keep-aspect-ratio")?;
        set_number(&pad, "alpha", 0)?;
        self.activate(&elements)?;
        Ok(Branch { codec, src, elements, pad, decoded })
    }

    fn add_audio_branch(&self, tag: &str) -> Result<Branch, MediaError> {
        choose_decoder(Codec::Opus, installed)?;
        let src = participant_src(&format!("audio-in-{tag}"), Codec::Opus)?;
        let dec = make("opusdec", &format!("audio-decoder-{tag}"))?;
        set_text(&dec, "plc", "true")?;
        set_text(&dec, "use-inband-fec", "true")?;
        let decoded = count_buffers(&dec);
        let elements = vec![
            src.clone().upcast::<gst::Element>(),
            dec,
            make("audioconvert", &format!("audio-convert-{tag}"))?,
            make("audioresample", &format!("audio-resample-{tag}"))?,
            make("queue", &format!("audio-queue-{tag}"))?,
        ];
        self.pipeline.chain(&elements)?;
        let fail = |what: String| self.pipeline.failure("mixer", what);
        let pad = self.mixer.request_pad_simple("sink_%u").ok_or_else(|| fail("no sink pad".into()))?;
        let src_pad = elements.last().and_then(|e| e.static_pad("src")).ok_or_else(|| fail("no src pad".into()))?;
        src_pad.link(&pad).map_err(|e| fail(format!("{e:?}")))?;
        self.activate(&elements)?;
        Ok(Branch { codec: Codec::Opus, src, elements, pad, decoded })
    }

    /// Brings a branch added to the running pipeline up to its state.
    fn activate(&self, elements: &[gst::Element]) -> Result<(), MediaError> {
        for el in elements.iter().rev() {
            el.sync_state_with_parent().map_err(|e| self.pipeline.failure(&el.name(), e.to_string()))?;
        }
        Ok(())
    }

    /// Takes a branch out of the running pipeline. The aggregator pad is
    /// released first: that flushes it, so a streaming thread blocked on it
    /// lets go before the branch's elements are stopped.
    fn remove_branch(&self, aggregator: &gst::Element, branch: Branch) {
        if let Some(peer) = branch.pad.peer() {
            let _ = peer.unlink(&branch.pad);
        }
        aggregator.release_request_pad(&branch.pad);
        for el in &branch.elements {
            let _ = el.set_state(gst::State::Null);
        }
        let _ = self.pipeline.bin.remove_many(&branch.elements);
    }
}

/// The compositor and everything after it; returns the compositor and the
/// overlay for the tiles' labels.
fn video_output_branch(
    pipeline: &mut Pipeline,
    settings: &ReceiveSettings,
) -> Result<(gst::Element, Overlay), MediaError> {
    // Pictures at the canvas rate even with nobody connected, from the
    // compositor's own clock: no live black source to mix under everything.
    // (force-live can only be given when the element is made, and the
    // builder panics on a property the element lacks: GStreamer before 1.22.)
    if make("compositor", "grid-probe")?.find_property("force-live").is_none() {
        return Err(MediaError::MissingElement { factory: "compositor with force-live (GStreamer 1.22)".into() });
    }
    let compositor = gst::ElementFactory::make("compositor")
        .name("grid")
        .property_from_str("force-live", "true")
        .build()
        .map_err(|_| MediaError::MissingElement { factory: "compositor".into() })?;
    set_text(&compositor, "background", "black")?;
    // Wait a little for late pictures from the network and the decoders.
    set_number(&compositor, "latency", 50_000_000)?;
    let grid_caps = caps_filter("grid-caps", &canvas_caps(settings.canvas, settings.framerate))?;
    encryption_badge(&grid_caps, settings.canvas, settings.encrypted)?;
    let labels = Overlay::attach(&grid_caps)?;
    let mut output = vec![compositor.clone(), grid_caps];
    output.extend(display_branch(pipeline, &settings.display, "grid")?);
    pipeline.chain(&output)?;
    Ok((compositor, labels))
}

/// The mixer, the echo probe and the speaker; returns the mixer.
fn audio_output_branch(pipeline: &mut Pipeline, speaker: &AudioOutput) -> Result<gst::Element, MediaError> {
    let silence = make("audiotestsrc", "silence")?;
    set_text(&silence, "is-live", "true")?;
    set_text(&silence, "wave", "silence")?;
    let pcm = gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("layout", "interleaved")
        .field("rate", 48_000i32)
        .field("channels", 1i32)
        .build();
    let mixer = make("audiomixer", "mixer")?;
    let probe = make("webrtcechoprobe", ECHO_PROBE_NAME)?;
    let sink = match speaker {
        AudioOutput::Alsa { device } => {
            let sink = make("alsasink", "speaker")?;
            set_text(&sink, "device", device)?;
            pipeline.device("speaker", DeviceRole::Speaker, device);
            sink
        }
        AudioOutput::Discard => {
            let sink = make("fakesink", "speaker")?;
            set_text(&sink, "sync", "true")?;
            sink
        }
    };
    pipeline.chain(&[
        silence,
        caps_filter("silence-caps", &pcm)?,
        mixer.clone(),
        make("audioconvert", "speaker-convert")?,
        make("audioresample", "speaker-resample")?,
        caps_filter("speaker-caps", &pcm)?,
        probe,
        make("audioconvert", "probe-convert")?,
        sink,
    ])?;
    Ok(mixer)
}

fn self_view_branch() -> Result<Vec<gst::Element>, MediaError> {
    let src = make("intervideosrc", "self-view")?;
    set_text(&src, "channel", SELF_VIEW_CHANNEL)?;
    Ok(vec![src, make("videoconvert", "self-view-convert")?])
}

fn participant_src(name: &str, codec: Codec) -> Result<gst_app::AppSrc, MediaError> {
    let src = gst_app::AppSrc::builder()
        .name(name)
        .caps(&codec.caps())
        .format(gst::Format::Time)
        .is_live(true)
        .do_timestamp(true)
        .build();
    // Frames arrive from the network at their own pace; never block the
    // caller for long, drop the oldest instead.
    src.set_max_bytes(4 << 20);
    set_text(&src, "leaky-type", "downstream")?;
    Ok(src)
}

/// Counts buffers leaving an element's src pad.
fn count_buffers(element: &gst::Element) -> Arc<AtomicU64> {
    let count = Arc::new(AtomicU64::new(0));
    if let Some(pad) = element.static_pad("src") {
        let c = Arc::clone(&count);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            c.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
    count
}

/// Keeps element names readable and valid whatever the participant id is.
fn sanitise(id: &str) -> String {
    id.chars().take(32).map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}
