//! The room screen: what the HDMI display shows.
//!
//! When idle, [`IdleScreen`] shows the room name, a clock and a QR code of
//! the link the daemon gives (the device's local page), and between the
//! code and the clock a status banner when the room has something to say
//! ("Reconnecting: try 3 in 4 s" and why; [`IdleScreen::set_status`]). In a meeting the
//! receive pipeline shows the participant grid with an "end-to-end
//! encrypted" badge and each tile's name and encryption label
//! ([`crate::receive`]). Both are drawn by GStreamer
//! (videotestsrc canvas, compositor for the grid) with the text painted in by
//! [`crate::text`], so they work on `kmssink` without a desktop. The idle
//! screen's QR code is
//! painted into each canvas frame by a pad probe rather than composited from
//! a still-image branch: one straight chain has nothing to renegotiate (an
//! imagefreeze branch failed with not-negotiated in about one run in three). Only one of them owns the display at a time: stop the idle
//! screen before starting the receive pipeline.

use std::time::Duration;

use gst::prelude::*;

use crate::MediaError;
use crate::banner::{Band, StatusBanner};
use crate::layout::{Canvas, Rect};
use crate::pipeline::{DeviceRole, Pipeline, caps_filter, clock_time, make, set_number, set_text};
use crate::text::{Anchor, ClockGlyphs, Font, LayerId, Overlay, Placement};

/// Where the room screen goes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisplayOutput {
    /// Straight to the display through KMS, on a board without a desktop.
    Kms,
    /// Whatever GStreamer finds, on a desktop.
    Auto,
    /// Nowhere visible: pictures are kept for [`IdleScreen::snapshot`] and
    /// [`crate::receive::ReceivePipeline::snapshot`] (tests, headless).
    Snapshots,
}

/// One RGBA picture of the screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub width: u32,
    pub height: u32,
    /// Rows of `width` RGBA pixels, no padding.
    pub rgba: Vec<u8>,
}

impl Snapshot {
    /// The luma (0..=255) of the pixel at `x`, `y`; 0 outside the picture.
    pub fn luma(&self, x: u32, y: u32) -> u8 {
        if x >= self.width || y >= self.height {
            return 0;
        }
        let i = (y as usize * self.width as usize + x as usize) * 4;
        match self.rgba.get(i..i + 3) {
            Some(&[r, g, b]) => ((u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114) / 1000) as u8,
            _ => 0,
        }
    }
}

/// A QR code as a square grey-scale bitmap with its quiet zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrImage {
    /// Width and height in pixels.
    pub side: u32,
    /// `side × side` pixels, 0 for dark modules, 255 for light.
    pub luma: Vec<u8>,
}

impl QrImage {
    /// Renders `link` with `module_px` pixels per module and the standard
    /// four-module quiet zone.
    pub fn new(link: &str, module_px: u32) -> Result<Self, MediaError> {
        let code = qrcode::QrCode::with_error_correction_level(link, qrcode::EcLevel::M)
            .map_err(|e| MediaError::QrCode { message: e.to_string() })?;
        let modules = code.width();
        let colors = code.to_colors();
        let module_px = module_px.max(1) as usize;
        let quiet = 4;
        let side = (modules + 2 * quiet) * module_px;
        let mut luma = vec![255u8; side * side];
        for (i, color) in colors.iter().enumerate() {
            if *color != qrcode::Color::Dark {
                continue;
            }
            let (mx, my) = (i % modules + quiet, i / modules + quiet);
            for y in my * module_px..(my + 1) * module_px {
                let row = y * side;
                luma[row + mx * module_px..row + (mx + 1) * module_px].fill(0);
            }
        }
        Ok(Self {
            side: u32::try_from(side).map_err(|_| MediaError::QrCode { message: "link too long".into() })?,
            luma,
        })
    }

    /// The module count across, quiet zone included, for a link.
    fn modules_with_quiet_zone(link: &str) -> Result<u32, MediaError> {
        Self::new(link, 1).map(|q| q.side)
    }
}

/// The dark blue-grey behind everything, as videotestsrc's ARGB.
const BACKGROUND_ARGB: i64 = 0xff10_1820;

/// What the idle screen shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdleScreenSettings {
    pub room_name: String,
    /// The link the QR code carries (the device's local page).
    pub link: String,
    pub canvas: Canvas,
    pub framerate: u32,
    pub display: DisplayOutput,
}

/// The running idle screen.
pub struct IdleScreen {
    pipeline: Pipeline,
    qr: Rect,
    text: Overlay,
    room_name: LayerId,
    name_px: u32,
    status: StatusBanner,
}

impl IdleScreen {
    /// Builds and starts the idle screen.
    pub fn start(settings: &IdleScreenSettings) -> Result<Self, MediaError> {
        let Canvas { width, height } = settings.canvas;
        if width < 64 || height < 64 || !(1..=60).contains(&settings.framerate) {
            return Err(MediaError::InvalidSetting {
                name: "canvas",
                reason: format!("{width}×{height}@{} is too small", settings.framerate),
            });
        }
        // The code takes half the screen's height, whole pixels per module.
        let modules = QrImage::modules_with_quiet_zone(&settings.link)?;
        let module_px = (height as u32 / 2 / modules).max(1);
        let qr = QrImage::new(&settings.link, module_px)?;
        let side = i32::try_from(qr.side).unwrap_or(i32::MAX);
        let qr_rect = Rect { x: (width - side) / 2, y: (height - side) / 2, width: side, height: side };

        let mut pipeline = Pipeline::new("idle-screen")?;
        let background = make("videotestsrc", "background")?;
        set_text(&background, "is-live", "true")?;
        set_text(&background, "pattern", "solid-color")?;
        set_number(&background, "foreground-color", BACKGROUND_ARGB)?;
        let rgba = gst::Caps::builder("video/x-raw")
            .field("format", "RGBA")
            .field("width", width)
            .field("height", height)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .field("framerate", gst::Fraction::new(i32::try_from(settings.framerate).unwrap_or(30), 1))
            .build();
        let canvas = caps_filter("screen-caps", &rgba)?;
        paint_every_frame(&canvas, qr, qr_rect, width)?;
        // Room name at the top, the time at the bottom.
        let font = Font::system()?;
        let text = Overlay::attach(&canvas)?;
        let name_px = font_px(settings.canvas, 14);
        let margin = name_px / 2;
        let room_name = text.add_text(
            font.render_lines(&settings.room_name, name_px),
            Placement { anchor: Anchor::TopCenter, margin, shaded: false },
        );
        let clock_px = font_px(settings.canvas, 12);
        text.add_clock(
            ClockGlyphs::new(&font, clock_px),
            "%H:%M",
            Placement { anchor: Anchor::BottomCenter, margin, shaded: false },
        );
        drop(font);
        let status = StatusBanner::attach(&text, status_band(settings.canvas, qr_rect, clock_px, margin));
        let mut chain = vec![background, canvas];
        chain.extend(display_branch(&mut pipeline, &settings.display, "screen")?);
        pipeline.chain(&chain)?;
        pipeline.start()?;
        Ok(Self { pipeline, qr: qr_rect, text, room_name, name_px, status })
    }

    /// Where the QR code is on the screen.
    pub fn qr_rect(&self) -> Rect {
        self.qr
    }

    /// Changes the room name shown (lines separated by `\n`).
    pub fn set_room_name(&self, name: &str) -> Result<(), MediaError> {
        let font = Font::system()?;
        self.text.set_text(self.room_name, font.render_lines(name, self.name_px));
        Ok(())
    }

    /// Shows `status` (lines separated by `\n`; each cut with "…" where it
    /// is too wide) on a dark box between the QR code and the clock, or
    /// takes it away with `None`. Nothing restarts: the next picture has it.
    pub fn set_status(&mut self, status: Option<&str>) -> Result<(), MediaError> {
        self.status.set(status)
    }

    /// The status banner's words, if any.
    pub fn status(&self) -> Option<&str> {
        self.status.shown()
    }

    /// The latest picture, when the output is [`DisplayOutput::Snapshots`].
    pub fn snapshot(&self, timeout: Duration) -> Option<Snapshot> {
        pull_snapshot(&self.pipeline.bin, timeout)
    }

    /// The first error the pipeline reported, if any.
    pub fn check(&self) -> Result<(), MediaError> {
        self.pipeline.check()
    }
}

/// The grid's badge, top right, painted into every picture leaving
/// `element`: "end-to-end encrypted", or "NOT encrypted" for a meeting whose
/// link had no key.
pub(crate) fn encryption_badge(element: &gst::Element, canvas: Canvas, encrypted: bool) -> Result<(), MediaError> {
    let px = font_px(canvas, 20);
    let words = if encrypted { "end-to-end encrypted" } else { "NOT encrypted" };
    let image = Font::system()?.render(words, px);
    Overlay::attach(element)?.add_text(image, Placement { anchor: Anchor::TopRight, margin: px / 2, shaded: true });
    Ok(())
}

/// The display sink and what it needs in front of it. The sink is named
/// `display` so its errors become typed device errors.
pub(crate) fn display_branch(
    pipeline: &mut Pipeline,
    output: &DisplayOutput,
    prefix: &str,
) -> Result<Vec<gst::Element>, MediaError> {
    let convert = make("videoconvert", &format!("{prefix}-display-convert"))?;
    let sink = match output {
        DisplayOutput::Kms => {
            pipeline.device("display", DeviceRole::Display, "kms");
            make("kmssink", "display")?
        }
        DisplayOutput::Auto => make("autovideosink", "display")?,
        DisplayOutput::Snapshots => {
            // The pipeline's own format (I420 for the grid, RGBA for the idle
            // screen): pictures are turned into RGBA only when one is asked
            // for, not 15 times a second for nobody.
            let caps = gst::Caps::builder("video/x-raw").field("format", gst::List::new(["I420", "RGBA"])).build();
            gst_app::AppSink::builder()
                .name("display")
                .caps(&caps)
                .max_buffers(1)
                .drop(true)
                .sync(false)
                .build()
                .upcast()
        }
    };
    Ok(vec![convert, sink])
}

/// Pulls the latest picture from a `display` appsink, as RGBA.
pub(crate) fn pull_snapshot(bin: &gst::Pipeline, timeout: Duration) -> Option<Snapshot> {
    let sink = bin.by_name("display")?.downcast::<gst_app::AppSink>().ok()?;
    let sample = sink.try_pull_sample(clock_time(timeout))?;
    let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
    let (buffer, info) = to_rgba(sample.buffer_owned()?, info)?;
    let map = buffer.map_readable().ok()?;
    let (width, height) = (info.width(), info.height());
    let stride = usize::try_from(*info.stride().first()?).ok()?;
    let row = width as usize * 4;
    let mut rgba = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        rgba.extend_from_slice(map.get(y * stride..y * stride + row)?);
    }
    Some(Snapshot { width, height, rgba })
}

/// The picture in `buffer` (described by `info`) as RGBA, converted if it
/// is in another format.
fn to_rgba(buffer: gst::Buffer, info: gst_video::VideoInfo) -> Option<(gst::Buffer, gst_video::VideoInfo)> {
    if info.format() == gst_video::VideoFormat::Rgba {
        return Some((buffer, info));
    }
    let rgba = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgba, info.width(), info.height())
        .fps(info.fps())
        .par(info.par())
        .build()
        .ok()?;
    let converter = gst_video::VideoConverter::new(&info, &rgba, None).ok()?;
    let src = gst_video::VideoFrame::from_buffer_readable(buffer, &info).ok()?;
    let out = gst::Buffer::with_size(rgba.size()).ok()?;
    let mut dst = gst_video::VideoFrame::from_buffer_writable(out, &rgba).ok()?;
    converter.frame(&src, &mut dst);
    Some((dst.into_buffer(), rgba))
}

/// Links the last element of `branch` to a new compositor pad placed at
/// `rect` (the whole canvas when `None`).
pub(crate) fn link_to_compositor(
    pipeline: &Pipeline,
    branch: &[gst::Element],
    compositor: &gst::Element,
    rect: Option<Rect>,
    zorder: u32,
) -> Result<gst::Pad, MediaError> {
    let fail = |what: &str| pipeline.failure("compositor", what.to_owned());
    let last = branch.last().ok_or_else(|| fail("empty branch"))?;
    let pad = compositor.request_pad_simple("sink_%u").ok_or_else(|| fail("no sink pad"))?;
    let src = last.static_pad("src").ok_or_else(|| fail("no src pad"))?;
    src.link(&pad).map_err(|e| fail(&format!("link: {e:?}")))?;
    set_number(&pad, "zorder", i64::from(zorder))?;
    if let Some(rect) = rect {
        place(&pad, rect)?;
    }
    Ok(pad)
}

/// Moves a compositor pad to `rect`.
pub(crate) fn place(pad: &gst::Pad, rect: Rect) -> Result<(), MediaError> {
    let el = pad;
    set_number(el, "xpos", i64::from(rect.x))?;
    set_number(el, "ypos", i64::from(rect.y))?;
    set_number(el, "width", i64::from(rect.width))?;
    set_number(el, "height", i64::from(rect.height))
}

/// The grid's picture format. Pinned to I420, what the decoders produce and
/// what the display planes take: left open, the compositor picks the richest
/// format its inputs allow (ABGR64, 8 bytes a pixel) and every decoded frame,
/// the blend and the badge are converted to and done in 16 bits per channel.
pub(crate) fn canvas_caps(canvas: Canvas, framerate: u32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", canvas.width)
        .field("height", canvas.height)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .field("framerate", gst::Fraction::new(i32::try_from(framerate).unwrap_or(30), 1))
        .build()
}

/// Paints the QR code into every frame leaving `element`: one straight
/// chain, nothing to negotiate or synchronise for a still picture.
fn paint_every_frame(element: &gst::Element, qr: QrImage, at: Rect, width: i32) -> Result<(), MediaError> {
    let pad = element.static_pad("src").ok_or_else(|| MediaError::QrCode { message: "no src pad".into() })?;
    let stride = usize::try_from(width).unwrap_or(0) * 4;
    let (x, y) = (usize::try_from(at.x).unwrap_or(0), usize::try_from(at.y).unwrap_or(0));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
            if let Ok(mut map) = buffer.make_mut().map_writable() {
                paint_qr(map.as_mut_slice(), stride, &qr, x, y);
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Copies the QR code into an RGBA picture with `stride` bytes per row, its
/// top-left corner at `x`, `y`; whatever falls outside is left out.
pub(crate) fn paint_qr(picture: &mut [u8], stride: usize, qr: &QrImage, x: usize, y: usize) {
    let side = qr.side as usize;
    for (row, line) in qr.luma.chunks_exact(side).enumerate() {
        let begin = (y + row) * stride + x * 4;
        let room = stride.saturating_sub(x * 4) / 4;
        let Some(dst) = picture.get_mut(begin..begin + side.min(room) * 4) else {
            return;
        };
        for (px, &l) in dst.chunks_exact_mut(4).zip(line) {
            px.copy_from_slice(&[l, l, l, 255]);
        }
    }
}

/// The idle screen's status band: from under the QR code to over the clock
/// (the clock's picture is about 6/5 of its size high).
fn status_band(canvas: Canvas, qr: Rect, clock_px: u32, margin: u32) -> Band {
    let width = u32::try_from(canvas.width).unwrap_or(0);
    let height = u32::try_from(canvas.height).unwrap_or(0);
    let top = u32::try_from(qr.y.saturating_add(qr.height)).unwrap_or(0);
    let bottom = height.saturating_sub(margin + clock_px * 6 / 5).max(top);
    Band { width, top, height: bottom - top, px: font_px(canvas, 24) }
}

/// A text size that is `1/fraction` of the screen height, in pixels.
fn font_px(canvas: Canvas, fraction: i32) -> u32 {
    u32::try_from(canvas.height / fraction).unwrap_or(0).max(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_image_has_quiet_zone_and_finder_pattern() {
        let qr = QrImage::new("https://cloakroom.local/", 3).expect("encodes");
        assert_eq!(qr.luma.len(), (qr.side * qr.side) as usize);
        // Quiet zone: the first 4 modules (12 px) of the first row are light.
        assert!(qr.luma[..12].iter().all(|&l| l == 255));
        // Top-left finder pattern starts dark right after the quiet zone.
        let at = |x: u32, y: u32| qr.luma[(y * qr.side + x) as usize];
        assert_eq!(at(12, 12), 0);
        assert_eq!(at(14, 14), 0);
        // Its second ring is light.
        assert_eq!(at(15, 15), 255);
    }

    #[test]
    fn painting_the_qr_code_clips_at_the_picture_edges() {
        let qr = QrImage { side: 2, luma: vec![0, 255, 255, 0] };
        // A 3×3 RGBA picture, all grey.
        let mut picture = vec![7u8; 3 * 3 * 4];
        paint_qr(&mut picture, 12, &qr, 1, 1);
        fn px(p: &[u8], x: usize, y: usize) -> &[u8] {
            &p[(y * 3 + x) * 4..(y * 3 + x) * 4 + 4]
        }
        assert_eq!(px(&picture, 0, 0), [7, 7, 7, 7]);
        assert_eq!(px(&picture, 1, 1), [0, 0, 0, 255]);
        assert_eq!(px(&picture, 2, 1), [255, 255, 255, 255]);
        assert_eq!(px(&picture, 1, 2), [255, 255, 255, 255]);
        assert_eq!(px(&picture, 2, 2), [0, 0, 0, 255]);
        // Partly or wholly outside: clipped, no panic.
        paint_qr(&mut picture, 12, &qr, 2, 2);
        assert_eq!(px(&picture, 2, 2), [0, 0, 0, 255]);
        paint_qr(&mut picture, 12, &qr, 5, 5);
        paint_qr(&mut [], 0, &qr, 0, 0);
    }

    #[test]
    fn qr_image_refuses_what_cannot_fit() {
        let huge = "x".repeat(8000);
        assert!(matches!(QrImage::new(&huge, 1), Err(MediaError::QrCode { .. })));
    }

    /// The idle screen's latest picture after a few (the first ones may
    /// predate a change; fonts load slowly on a busy machine).
    fn settled(screen: &IdleScreen) -> Snapshot {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut last = None;
        let mut pictures = 0;
        while pictures < 3 && std::time::Instant::now() < deadline {
            if let Some(s) = screen.snapshot(Duration::from_secs(1)) {
                pictures += 1;
                last = Some(s);
            }
        }
        last.expect("pictures of the idle screen")
    }

    /// Pixels that differ between two pictures, inside and outside rows `top..bottom`.
    fn changed(a: &Snapshot, b: &Snapshot, top: u32, bottom: u32) -> (usize, usize) {
        let (mut inside, mut outside) = (0, 0);
        for y in 0..a.height {
            for x in 0..a.width {
                if a.luma(x, y).abs_diff(b.luma(x, y)) > 40 {
                    if (top..bottom).contains(&y) { inside += 1 } else { outside += 1 }
                }
            }
        }
        (inside, outside)
    }

    #[test]
    fn the_status_banner_shows_between_the_code_and_the_clock_and_goes_away() {
        let canvas = Canvas { width: 640, height: 360 };
        let mut screen = IdleScreen::start(&IdleScreenSettings {
            room_name: "Aquarium".into(),
            link: "https://192.0.2.7/join#t=abcdefghijklmnop".into(),
            canvas,
            framerate: 10,
            display: DisplayOutput::Snapshots,
        })
        .expect("idle screen starts");
        let before = settled(&screen);
        let qr = screen.qr_rect();
        let band = status_band(canvas, qr, font_px(canvas, 12), font_px(canvas, 14) / 2);
        assert!(band.height >= 2 * band.px, "room for two lines: {band:?}");

        let words = "Reconnecting: try 3 in 4 s\nserver gone: connection reset by the meeting server at sfu.example.org (a long cause)";
        screen.set_status(Some(words)).expect("banner");
        assert_eq!(screen.status(), Some(words));
        let shown = settled(&screen);
        screen.check().expect("no pipeline error");
        let (inside, outside) = changed(&before, &shown, band.top, band.top + band.height);
        assert!(inside > 500, "the banner's text and box: {inside} pixels changed in the band");
        // Outside the band only the clock may change (its minute may turn during the test).
        let under = changed(&before, &shown, band.top + band.height, 360).0;
        assert_eq!(outside - under, 0, "only the band changes above the clock");
        // The QR code is untouched, so the phone page stays one scan away.
        let qr_rows = (u32::try_from(qr.y).expect("on screen"), u32::try_from(qr.y + qr.height).expect("on screen"));
        assert_eq!(changed(&before, &shown, qr_rows.0, qr_rows.1).0, 0, "the QR code is not covered");

        screen.set_status(None).expect("cleared");
        assert_eq!(screen.status(), None);
        let cleared = settled(&screen);
        assert!(changed(&before, &cleared, band.top, band.top + band.height).0 < 50, "the banner is gone");
    }

    #[test]
    fn snapshot_luma_is_safe_outside_the_picture() {
        let s = Snapshot { width: 1, height: 1, rgba: vec![255, 255, 255, 255] };
        assert_eq!(s.luma(0, 0), 255);
        assert_eq!(s.luma(1, 0), 0);
        assert_eq!(s.luma(0, 7), 0);
    }
}
