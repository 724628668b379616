//! Text on the room screen (room name, pairing code, clock, the "end-to-end
//! encrypted" badge) and on the test picture (its clock), drawn by this crate.
//!
//! GStreamer's `textoverlay` and `clockoverlay` would do it, but they bring
//! pango, cairo, harfbuzz, freetype and fontconfig into the process: 4.3 MB
//! of the daemon's memory in a meeting (tools/bench-daemon), for a few
//! lines of Latin text. Here a TrueType font is rasterised in Rust
//! (`ab_glyph`) once, when the text changes, into a coverage mask, and a pad
//! probe blends the masks into every frame leaving an element, in I420 (the
//! grid, the camera) or RGBA (the idle screen). The font file is read only
//! while rendering: a clock renders its eleven glyphs once and puts them side
//! by side each second.
//!
//! There is no shaping: scripts that need it (Arabic, Indic) come out as
//! separate glyphs, and characters the font lacks as its missing-glyph box.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ab_glyph::{Font as _, FontVec, PxScale, ScaleFont as _, point};
use gst::prelude::*;
use gst_video::prelude::*;

use crate::MediaError;

/// Where fonts are looked for, in order, unless `CLOAKROOM_FONT` names one:
/// Debian's fonts-dejavu-core, then Bitstream Vera as the Yocto image
/// (ttf-bitstream-vera) and Debian install it.
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/ttf/VeraBd.ttf",
    "/usr/share/fonts/truetype/ttf-bitstream-vera/VeraBd.ttf",
];

/// A TrueType or OpenType font, kept only while text is rendered.
pub struct Font {
    face: FontVec,
}

impl Font {
    /// Reads the font at `path`.
    pub fn load(path: &Path) -> Result<Self, MediaError> {
        let failed = |message: String| MediaError::Font { path: path.display().to_string(), message };
        let data = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
        let face = FontVec::try_from_vec(data).map_err(|e| failed(e.to_string()))?;
        Ok(Self { face })
    }

    /// The font named by `CLOAKROOM_FONT`, else the first of [`FONT_PATHS`]
    /// that exists.
    pub fn system() -> Result<Self, MediaError> {
        if let Some(path) = std::env::var_os("CLOAKROOM_FONT") {
            return Self::load(&PathBuf::from(path));
        }
        match FONT_PATHS.iter().map(Path::new).find(|p| p.exists()) {
            Some(path) => Self::load(path),
            None => Err(MediaError::NoFont { tried: FONT_PATHS.join(", ") }),
        }
    }

    /// `text` on one line, `px` pixels from the highest ascender to the
    /// lowest descender. Control characters are left out.
    pub fn render(&self, text: &str, px: u32) -> TextImage {
        let scale = PxScale::from(px.max(1) as f32);
        let font = self.face.as_scaled(scale);
        let ascent = font.ascent();
        let mut caret = 0.0f32;
        let mut previous = None;
        let mut outlines = Vec::new();
        for c in text.chars().filter(|c| !c.is_control()) {
            let id = font.glyph_id(c);
            if let Some(previous) = previous {
                caret += font.kern(previous, id);
            }
            outlines.extend(font.outline_glyph(id.with_scale_and_position(scale, point(caret, ascent))));
            caret += font.h_advance(id);
            previous = Some(id);
        }
        let width = caret.ceil().max(0.0) as u32;
        let height = (ascent - font.descent()).ceil().max(1.0) as u32;
        let mut image = TextImage { width, height, alpha: vec![0; width as usize * height as usize] };
        for outline in outlines {
            let bounds = outline.px_bounds();
            let (left, top) = (bounds.min.x as i64, bounds.min.y as i64);
            outline.draw(|x, y, coverage| {
                let (x, y) = (left + i64::from(x), top + i64::from(y));
                if (0..i64::from(width)).contains(&x) && (0..i64::from(height)).contains(&y) {
                    let a = &mut image.alpha[y as usize * width as usize + x as usize];
                    *a = (*a).max((coverage.clamp(0.0, 1.0) * 255.0).round() as u8);
                }
            });
        }
        image
    }

    /// How wide [`Font::render`] would make `text`, without drawing it.
    pub fn width(&self, text: &str, px: u32) -> f32 {
        let font = self.face.as_scaled(PxScale::from(px.max(1) as f32));
        let mut caret = 0.0f32;
        let mut previous = None;
        for c in text.chars().filter(|c| !c.is_control()) {
            let id = font.glyph_id(c);
            if let Some(previous) = previous {
                caret += font.kern(previous, id);
            }
            caret += font.h_advance(id);
            previous = Some(id);
        }
        caret.ceil().max(0.0)
    }

    /// Each line of `text` rendered as by [`Font::render`], centred under
    /// one another with a fifth of the size between lines.
    pub fn render_lines(&self, text: &str, px: u32) -> TextImage {
        let lines: Vec<TextImage> = text.lines().map(|line| self.render(line, px)).collect();
        let gap = (px / 5) as usize;
        let width = lines.iter().map(|l| l.width).max().unwrap_or(0) as usize;
        let height = lines.iter().map(|l| l.height as usize).sum::<usize>() + gap * lines.len().saturating_sub(1);
        let mut alpha = vec![0u8; width * height];
        let mut top = 0;
        for line in &lines {
            let (w, left) = (line.width as usize, (width - line.width as usize) / 2);
            for (row, pixels) in line.alpha.chunks_exact(w.max(1)).enumerate() {
                let start = (top + row) * width + left;
                alpha[start..start + w].copy_from_slice(pixels);
            }
            top += line.height as usize + gap;
        }
        TextImage { width: width as u32, height: height as u32, alpha }
    }
}

/// Rendered text: how much of each pixel the glyphs cover, 0 to 255.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextImage {
    pub width: u32,
    pub height: u32,
    /// `width × height` coverage values, row by row.
    pub alpha: Vec<u8>,
}

impl TextImage {
    /// The image's left `width` columns (all of it when narrower).
    pub fn cropped(self, width: u32) -> TextImage {
        if self.width <= width {
            return self;
        }
        let (old, new) = (self.width as usize, width as usize);
        let alpha = self.alpha.chunks_exact(old.max(1)).flat_map(|row| &row[..new]).copied().collect();
        TextImage { width, height: self.height, alpha }
    }

    /// Images side by side, top-aligned, as tall as the tallest.
    fn side_by_side(parts: &[&TextImage]) -> TextImage {
        let width: u32 = parts.iter().map(|p| p.width).sum();
        let height = parts.iter().map(|p| p.height).max().unwrap_or(0);
        let mut alpha = vec![0u8; width as usize * height as usize];
        let mut left = 0usize;
        for part in parts {
            let w = part.width as usize;
            for (row, line) in part.alpha.chunks_exact(w.max(1)).enumerate() {
                let start = row * width as usize + left;
                alpha[start..start + w].copy_from_slice(line);
            }
            left += w;
        }
        TextImage { width, height, alpha }
    }
}

/// The characters a clock shows, rendered once.
pub struct ClockGlyphs {
    /// "0" to "9", then ":".
    glyphs: Vec<TextImage>,
}

impl ClockGlyphs {
    const CHARS: &'static str = "0123456789:";

    pub fn new(font: &Font, px: u32) -> Self {
        Self { glyphs: Self::CHARS.chars().map(|c| font.render(&c.to_string(), px)).collect() }
    }

    /// `time` (digits and colons; anything else is left out) from the
    /// rendered glyphs.
    pub fn render(&self, time: &str) -> TextImage {
        let parts: Vec<&TextImage> =
            time.chars().filter_map(|c| Self::CHARS.find(c)).filter_map(|i| self.glyphs.get(i)).collect();
        TextImage::side_by_side(&parts)
    }
}

/// Where a text goes on the picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    TopLeft,
    TopCenter,
    TopRight,
    BottomCenter,
    /// The image's top-left corner at these pixel coordinates (the margin
    /// is not used).
    At {
        x: u32,
        y: u32,
    },
}

/// A text's place: an edge or corner, its distance from the edges, and
/// whether a dark box goes behind it (for text over moving video).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub anchor: Anchor,
    pub margin: u32,
    pub shaded: bool,
}

impl Placement {
    /// The top-left corner of an image of `w × h` on a picture of
    /// `width × height`; never left of or above the picture.
    fn origin(self, width: u32, height: u32, w: u32, h: u32) -> (u32, u32) {
        let m = self.margin;
        let x = match self.anchor {
            Anchor::TopLeft => m,
            Anchor::TopCenter | Anchor::BottomCenter => width.saturating_sub(w) / 2,
            Anchor::TopRight => width.saturating_sub(w + m),
            Anchor::At { x, .. } => x,
        };
        let y = match self.anchor {
            Anchor::BottomCenter => height.saturating_sub(h + m),
            Anchor::At { y, .. } => y,
            _ => m,
        };
        (x, y)
    }
}

/// What a layer shows: a fixed text, or the local time in a format such as
/// `%H:%M:%S` (re-composed when the shown string changes).
enum Content {
    Fixed,
    Clock { glyphs: ClockGlyphs, format: String, shown: String },
}

struct Layer {
    image: TextImage,
    place: Placement,
    content: Content,
}

impl Layer {
    fn tick(&mut self) {
        if let Content::Clock { glyphs, format, shown } = &mut self.content {
            let now = gst::glib::DateTime::now_local().ok().and_then(|t| t.format(format).ok());
            if let Some(now) = now {
                if now.as_str() != shown.as_str() {
                    self.image = glyphs.render(&now);
                    *shown = now.to_string();
                }
            }
        }
    }
}

/// Text layers painted into every frame that leaves an element's source
/// pad. Cloning gives another handle on the same layers.
#[derive(Clone)]
pub struct Overlay {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// The pad's picture format, from its caps event.
    info: Option<gst_video::VideoInfo>,
    layers: Vec<Layer>,
}

/// A layer of an [`Overlay`], to change its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerId(usize);

impl Overlay {
    /// Starts painting on `element`'s source pad. Call before the pipeline
    /// starts, so the probe sees the caps.
    pub fn attach(element: &gst::Element) -> Result<Self, MediaError> {
        let pad = element.static_pad("src").ok_or_else(|| MediaError::Pipeline {
            pipeline: "text".into(),
            element: element.name().to_string(),
            message: "no source pad to draw on".into(),
        })?;
        let overlay = Self { state: Arc::new(Mutex::new(State::default())) };
        let state = Arc::clone(&overlay.state);
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |_, probe| {
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            match probe.data.as_mut() {
                Some(gst::PadProbeData::Event(event)) => {
                    if let gst::EventView::Caps(caps) = event.view() {
                        state.info = gst_video::VideoInfo::from_caps(caps.caps()).ok();
                    }
                }
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    let State { info, layers } = &mut *state;
                    if let (Some(info), false) = (info.as_ref(), layers.is_empty()) {
                        layers.iter_mut().for_each(Layer::tick);
                        paint(buffer.make_mut(), info, layers);
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        });
        Ok(overlay)
    }

    /// Adds a fixed text.
    pub fn add_text(&self, image: TextImage, place: Placement) -> LayerId {
        self.push(Layer { image, place, content: Content::Fixed })
    }

    /// Adds a clock showing the local time in `format` (strftime-like, as
    /// `glib::DateTime::format`; digits and colons only).
    pub fn add_clock(&self, glyphs: ClockGlyphs, format: &str, place: Placement) -> LayerId {
        let content = Content::Clock { glyphs, format: format.to_owned(), shown: String::new() };
        self.push(Layer { image: TextImage::default(), place, content })
    }

    /// Replaces a fixed text.
    pub fn set_text(&self, id: LayerId, image: TextImage) {
        if let Some(layer) = self.state.lock().unwrap_or_else(PoisonError::into_inner).layers.get_mut(id.0) {
            layer.image = image;
        }
    }

    /// Replaces every layer with these fixed texts (the tiles' labels, all
    /// at once when the grid changes).
    pub fn replace_texts(&self, texts: Vec<(TextImage, Placement)>) {
        let layers = texts.into_iter().map(|(image, place)| Layer { image, place, content: Content::Fixed }).collect();
        self.state.lock().unwrap_or_else(PoisonError::into_inner).layers = layers;
    }

    fn push(&self, layer: Layer) -> LayerId {
        let layers = &mut self.state.lock().unwrap_or_else(PoisonError::into_inner).layers;
        layers.push(layer);
        LayerId(layers.len() - 1)
    }
}

fn paint(buffer: &mut gst::BufferRef, info: &gst_video::VideoInfo, layers: &[Layer]) {
    let Ok(mut frame) = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, info) else {
        return;
    };
    let (width, height) = (frame.width(), frame.height());
    // No allocation per frame: at most four planes.
    let strides: [usize; 4] =
        std::array::from_fn(|i| frame.plane_stride().get(i).and_then(|&s| usize::try_from(s).ok()).unwrap_or(0));
    for layer in layers.iter().filter(|l| l.image.width > 0) {
        let (x, y) = layer.place.origin(width, height, layer.image.width, layer.image.height);
        let at = Spot { x: x as usize, y: y as usize, shaded: layer.place.shaded };
        match frame.format() {
            gst_video::VideoFormat::I420 => {
                for plane in 0..3u32 {
                    let stride = strides[plane as usize];
                    if let Ok(data) = frame.plane_data_mut(plane) {
                        let subsampled = plane > 0;
                        let (w, h) = if subsampled { (width.div_ceil(2), height.div_ceil(2)) } else { (width, height) };
                        let picture = Plane { data, stride, width: w as usize, height: h as usize };
                        if subsampled {
                            blend_chroma(picture, &layer.image, at);
                        } else {
                            blend_luma(picture, &layer.image, at);
                        }
                    }
                }
            }
            gst_video::VideoFormat::Rgba | gst_video::VideoFormat::Rgbx | gst_video::VideoFormat::Bgra => {
                let stride = strides[0];
                if let Ok(data) = frame.plane_data_mut(0) {
                    blend_rgb(Plane { data, stride, width: width as usize, height: height as usize }, &layer.image, at);
                }
            }
            _ => {}
        }
    }
}

/// One plane of a picture: `height` rows of `stride` bytes.
pub(crate) struct Plane<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
    /// In samples (pixels for luma and RGBA, half for I420 chroma).
    pub width: usize,
    pub height: usize,
}

/// Where a text image goes, in full-resolution pixels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spot {
    pub x: usize,
    pub y: usize,
    pub shaded: bool,
}

/// Room around shaded text, in pixels.
fn padding(image: &TextImage) -> usize {
    shade_padding(image.height) as usize
}

/// Room around shaded text `height` pixels high.
pub(crate) fn shade_padding(height: u32) -> u32 {
    (height / 6).max(2)
}

/// For each sample of `picture` under the image (padded when shaded),
/// `f(sample, coverage)`; coverage is 0 in the padding. `step` is the
/// sampling step (2 for I420 chroma: the mean of a 2×2 block of coverage).
fn for_each_under(picture: Plane<'_>, image: &TextImage, at: Spot, step: usize, mut f: impl FnMut(&mut u8, u32)) {
    let pad = if at.shaded { padding(image) } else { 0 };
    let (w, h) = (image.width as usize, image.height as usize);
    let coverage = |x: usize, y: usize| -> u32 {
        // x and y in picture pixels; outside the image (the padding) is 0.
        match (x.checked_sub(at.x), y.checked_sub(at.y)) {
            (Some(ix), Some(iy)) if ix < w && iy < h => u32::from(image.alpha[iy * w + ix]),
            _ => 0,
        }
    };
    let last_x = (at.x + w + pad).div_ceil(step).min(picture.width);
    let last_y = (at.y + h + pad).div_ceil(step).min(picture.height);
    for sy in at.y.saturating_sub(pad) / step..last_y {
        for sx in at.x.saturating_sub(pad) / step..last_x {
            let mut sum = 0;
            for dy in 0..step {
                for dx in 0..step {
                    sum += coverage(sx * step + dx, sy * step + dy);
                }
            }
            if let Some(sample) = picture.data.get_mut(sy * picture.stride + sx) {
                f(sample, sum / (step * step) as u32);
            }
        }
    }
}

/// White text on the luma plane; shaded text darkens what is behind it.
pub(crate) fn blend_luma(picture: Plane<'_>, image: &TextImage, at: Spot) {
    for_each_under(picture, image, at, 1, |v, a| {
        let base = if at.shaded { u32::from(*v) * 2 / 5 } else { u32::from(*v) };
        *v = (base + (235 - base.min(235)) * a / 255) as u8;
    });
}

/// Text and shading are grey: chroma goes to neutral under them.
pub(crate) fn blend_chroma(picture: Plane<'_>, image: &TextImage, at: Spot) {
    for_each_under(picture, image, at, 2, |v, a| {
        let a = if at.shaded { 255 } else { a as i32 };
        let v32 = i32::from(*v);
        *v = (v32 + (128 - v32) * a / 255) as u8;
    });
}

/// White text on 4-byte RGB pixels (alpha untouched).
pub(crate) fn blend_rgb(picture: Plane<'_>, image: &TextImage, at: Spot) {
    let row_pixels = picture.stride / 4;
    let stride = picture.stride;
    let (width, height) = (picture.width, picture.height);
    let data = picture.data;
    let pad = if at.shaded { padding(image) } else { 0 };
    let (w, h) = (image.width as usize, image.height as usize);
    for y in at.y.saturating_sub(pad)..(at.y + h + pad).min(height) {
        for x in at.x.saturating_sub(pad)..(at.x + w + pad).min(width.min(row_pixels)) {
            let a = if x >= at.x && y >= at.y && x - at.x < w && y - at.y < h {
                u32::from(image.alpha[(y - at.y) * w + (x - at.x)])
            } else {
                0
            };
            let Some(px) = data.get_mut(y * stride + x * 4..y * stride + x * 4 + 3) else {
                return;
            };
            for c in px {
                let base = if at.shaded { u32::from(*c) * 2 / 5 } else { u32::from(*c) };
                *c = (base + (255 - base) * a / 255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn font() -> Option<Font> {
        // The machines that run the tests have fonts-dejavu-core (tools/setup).
        Font::system().ok()
    }

    #[test]
    fn rendered_text_has_ink_and_grows_with_the_text() {
        let Some(font) = font() else { panic!("no font found: tried {FONT_PATHS:?}") };
        let short = font.render("Aula", 20);
        let long = font.render("Aula Magna", 20);
        assert!(short.height >= 18 && short.height <= 26, "{}", short.height);
        assert!(long.width > short.width + 40, "{} vs {}", long.width, short.width);
        let ink = short.alpha.iter().filter(|&&a| a > 128).count();
        assert!(ink > 50 && ink < short.alpha.len() / 2, "{ink} of {}", short.alpha.len());
        assert_eq!(font.render("", 20).width, 0);
        assert_eq!(font.render("a\nb", 20), font.render("ab", 20), "control characters are left out");
    }

    #[test]
    fn lines_are_stacked_and_centred() {
        let Some(font) = font() else { panic!("no font found: tried {FONT_PATHS:?}") };
        let (top, bottom) = (font.render("Room 4", 20), font.render("pair: 123456", 20));
        let both = font.render_lines("Room 4\npair: 123456", 20);
        assert_eq!(both.width, top.width.max(bottom.width));
        assert_eq!(both.height, top.height + bottom.height + 4);
        // The shorter first line is centred: nothing in its left margin.
        let margin = ((both.width - top.width) / 2) as usize;
        assert!(margin > 0);
        for row in 0..top.height as usize {
            assert!(both.alpha[row * both.width as usize..][..margin].iter().all(|&a| a == 0));
        }
        assert_eq!(font.render_lines("one line", 20), font.render("one line", 20));
    }

    #[test]
    fn a_missing_or_broken_font_is_named() {
        let missing = Font::load(Path::new("/nonexistent/font.ttf")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(missing.contains("/nonexistent/font.ttf"), "{missing}");
        let path = std::env::temp_dir().join(format!("cloakroom-not-a-font-{}", std::process::id()));
        std::fs::write(&path, b"not a font").expect("write");
        let broken = Font::load(&path).err().map(|e| e.to_string()).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        assert!(broken.contains("not-a-font"), "{broken}");
    }

    #[test]
    fn the_clock_is_its_glyphs_side_by_side() {
        let Some(font) = font() else { panic!("no font found: tried {FONT_PATHS:?}") };
        let glyphs = ClockGlyphs::new(&font, 16);
        let one = glyphs.render("1");
        let time = glyphs.render("12:34");
        let parts = ["1", "2", ":", "3", "4"].map(|c| font.render(c, 16).width);
        assert_eq!(time.width, parts.iter().sum::<u32>());
        assert_eq!(&time.alpha[..one.width as usize], &one.alpha[..one.width as usize], "first row starts with the 1");
        assert_eq!(glyphs.render("1x2"), glyphs.render("12"), "other characters are left out");
    }

    #[test]
    fn width_matches_the_rendered_width_and_cropping_keeps_the_left() {
        let Some(font) = font() else { panic!("no font found: tried {FONT_PATHS:?}") };
        let image = font.render("Ana · encrypted", 20);
        assert_eq!(font.width("Ana · encrypted", 20), image.width as f32);
        let left = image.clone().cropped(10);
        assert_eq!((left.width, left.height), (10, image.height));
        for row in 0..image.height as usize {
            assert_eq!(&left.alpha[row * 10..][..10], &image.alpha[row * image.width as usize..][..10]);
        }
        assert_eq!(image.clone().cropped(10_000), image);
    }

    #[test]
    fn placement_keeps_text_on_the_picture() {
        let top_right = Placement { anchor: Anchor::TopRight, margin: 8, shaded: false };
        assert_eq!(top_right.origin(640, 360, 100, 20), (532, 8));
        let bottom = Placement { anchor: Anchor::BottomCenter, margin: 10, shaded: false };
        assert_eq!(bottom.origin(640, 360, 100, 20), (270, 330));
        // Wider than the picture: pinned to the left edge, not negative.
        assert_eq!(top_right.origin(64, 64, 100, 20), (0, 8));
    }

    fn block(w: u32, h: u32) -> TextImage {
        TextImage { width: w, height: h, alpha: vec![255; (w * h) as usize] }
    }

    #[test]
    fn luma_and_chroma_blends_whiten_under_the_text_only() {
        let (width, height) = (16usize, 8usize);
        let mut y = vec![16u8; width * height];
        blend_luma(
            Plane { data: &mut y, stride: width, width, height },
            &block(4, 2),
            Spot { x: 2, y: 2, shaded: false },
        );
        assert_eq!(y[2 * width + 2], 235);
        assert_eq!(y[3 * width + 5], 235);
        assert_eq!(y[2 * width + 6], 16, "right of the text");
        assert_eq!(y[4 * width + 2], 16, "below the text");
        // Chroma: half resolution, the mean coverage of each 2×2 block.
        let mut u = vec![200u8; 8 * 4];
        blend_chroma(
            Plane { data: &mut u, stride: 8, width: 8, height: 4 },
            &block(4, 2),
            Spot { x: 2, y: 2, shaded: false },
        );
        assert_eq!(u[8 + 1], 128);
        assert_eq!(u[8 + 3], 200);
    }

    #[test]
    fn shading_darkens_a_padded_box() {
        let (width, height) = (64usize, 32usize);
        let mut y = vec![200u8; width * height];
        let image = TextImage { width: 12, height: 12, alpha: vec![0; 144] };
        blend_luma(Plane { data: &mut y, stride: width, width, height }, &image, Spot { x: 10, y: 10, shaded: true });
        assert_eq!(y[10 * width + 10], 80, "under the text");
        assert_eq!(y[8 * width + 8], 80, "in the padding");
        assert_eq!(y[5 * width + 5], 200, "outside");
    }

    #[test]
    fn rgb_blend_clips_at_the_edges_and_keeps_alpha() {
        let (width, height) = (4usize, 4usize);
        let mut rgba = vec![0u8; width * height * 4];
        for px in rgba.chunks_exact_mut(4) {
            px[3] = 7;
        }
        blend_rgb(
            Plane { data: &mut rgba, stride: width * 4, width, height },
            &block(3, 3),
            Spot { x: 2, y: 2, shaded: false },
        );
        assert_eq!(&rgba[(2 * width + 2) * 4..(2 * width + 2) * 4 + 4], &[255, 255, 255, 7]);
        assert_eq!(&rgba[(3 * width + 3) * 4..(3 * width + 3) * 4 + 4], &[255, 255, 255, 7]);
        assert_eq!(&rgba[(width + 1) * 4..(width + 1) * 4 + 4], &[0, 0, 0, 7], "above and left of the text");
    }
}
