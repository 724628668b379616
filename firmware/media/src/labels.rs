//! The labels on the grid's tiles: each remote participant's display name
//! and whether their pictures are end-to-end encrypted, at the tile's
//! bottom-left on a dark band.
//!
//! The words and the geometry are pure and tested here; the receive
//! pipeline renders a label's coverage mask only when its text, its tile or
//! its size changes, and [`crate::text::Overlay`] blends the masks into each
//! grid picture (only the bands' pixels are touched).

use crate::layout::{Canvas, Rect};
use crate::text::{Font, TextImage, shade_padding};

/// What a tile says about its participant's encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TileEncryption {
    /// The participant's frames open with the meeting's key.
    Encrypted,
    /// The meeting has no key: frames come in the clear.
    NotEncrypted,
    /// The participant's frames do not open with the key we have.
    CannotDecrypt,
}

impl TileEncryption {
    /// The words on the tile.
    pub fn words(self) -> &'static str {
        match self {
            Self::Encrypted => "encrypted",
            Self::NotEncrypted => "NOT encrypted",
            Self::CannotDecrypt => "cannot decrypt (wrong key?)",
        }
    }
}

/// The name shown for a participant: theirs, trimmed, or "Guest".
pub fn shown_name(name: &str) -> &str {
    match name.trim() {
        "" => "Guest",
        trimmed => trimmed,
    }
}

/// Follows whether a participant's frames open and says when the tile's
/// state should change. A state changes only after [`Self::STREAK`]
/// outcomes in a row say so (the first opened frame is believed at once),
/// so a few frames sealed with a key not yet received, or a stream that
/// alternates, does not make the label flicker or be re-rendered per frame.
#[derive(Clone, Debug, Default)]
pub struct EncryptionWatch {
    shown: Option<TileEncryption>,
    /// Outcomes in a row that disagree with `shown`.
    against: u32,
}

impl EncryptionWatch {
    /// Outcomes in a row needed to change a state already shown.
    pub const STREAK: u32 = 25;

    /// Records one frame: `opened` whether it opened (or was taken in the
    /// clear), `keyed` whether there is a key to open it with. Returns the
    /// new state when the tile should change.
    pub fn record(&mut self, opened: bool, keyed: bool) -> Option<TileEncryption> {
        let now = match (opened, keyed) {
            (true, true) => TileEncryption::Encrypted,
            (true, false) => TileEncryption::NotEncrypted,
            (false, _) => TileEncryption::CannotDecrypt,
        };
        if self.shown == Some(now) {
            self.against = 0;
            return None;
        }
        self.against += 1;
        if (self.shown.is_none() && opened) || self.against >= Self::STREAK {
            self.shown = Some(now);
            self.against = 0;
            return self.shown;
        }
        None
    }
}

/// How a tile's label is drawn: the text size and the widest the text may
/// be, from the tile and the screen alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelStyle {
    /// Text height in pixels.
    pub px: u32,
    /// Room between the text and the band's edges (the text overlay's
    /// shading padding, so the band computed here is the band drawn).
    pub pad: u32,
    /// The widest the text may be so the band stays inside the tile.
    pub max_text_width: u32,
}

impl LabelStyle {
    /// A fourteenth of the tile's height, at most a twenty-fourth of the
    /// screen's (one big tile has no bigger text than four) and at least 10 px.
    pub fn for_tile(tile: Rect, canvas: Canvas) -> Self {
        let px = (tile.height / 14).min(canvas.height / 24).max(10) as u32;
        let pad = shade_padding(px);
        let max_text_width = (tile.width.max(0) as u32).saturating_sub(2 * pad);
        Self { px, pad, max_text_width }
    }

    /// Where text of `width × height` goes in `tile` (its top-left corner)
    /// and the band behind it: flush with the tile's bottom-left corner,
    /// the overlay's shading padding around the text, never wider than the
    /// tile.
    pub fn place(self, tile: Rect, width: u32, height: u32) -> LabelPlace {
        let pad = shade_padding(height) as i32;
        let w = (width as i32).min(tile.width - 2 * pad).max(0);
        let h = height as i32;
        let band = Rect { x: tile.x, y: tile.y + tile.height - h - 2 * pad, width: w + 2 * pad, height: h + 2 * pad };
        LabelPlace { text_x: band.x + pad, text_y: band.y + pad, band }
    }
}

/// A label's place on the screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelPlace {
    pub text_x: i32,
    pub text_y: i32,
    /// The dark band, text included.
    pub band: Rect,
}

/// The label's line, `name · state`, rendered no wider than `max_width`:
/// the name is shortened with "…" first, the state is kept whole.
pub(crate) fn render(
    font: &Font,
    name: &str,
    state: Option<TileEncryption>,
    note: Option<&str>,
    px: u32,
    max_width: u32,
) -> TextImage {
    let name = shown_name(name);
    let mut suffix = state.map(|s| format!(" · {}", s.words())).unwrap_or_default();
    if let Some(note) = note {
        suffix.push_str(" · ");
        suffix.push_str(note);
    }
    let line = format!("{name}{suffix}");
    if font.width(&line, px) <= max_width as f32 {
        return font.render(&line, px);
    }
    // Fewer and fewer characters of the name, then "…", until it fits.
    let chars: Vec<char> = name.chars().collect();
    let fits = |n: usize| {
        let candidate: String = chars[..n].iter().collect::<String>() + "…" + &suffix;
        font.width(&candidate, px) <= max_width as f32
    };
    let (mut lo, mut hi) = (0usize, chars.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(mid) { lo = mid } else { hi = mid - 1 }
    }
    let shortened: String = chars[..lo].iter().collect::<String>() + "…" + &suffix;
    font.render(&shortened, px).cropped(max_width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::GridLayout;

    const HD: Canvas = Canvas { width: 1280, height: 720 };

    fn inside(inner: Rect, outer: Rect) -> bool {
        inner.x >= outer.x
            && inner.y >= outer.y
            && inner.x + inner.width <= outer.x + outer.width
            && inner.y + inner.height <= outer.y + outer.height
    }

    #[test]
    fn each_tile_of_one_to_four_has_its_label_at_its_bottom_left() {
        // Text 200 × 24 px, as "Ana · encrypted" at about that size.
        let expected_px = [30, 30, 25, 25];
        for n in 1..=4 {
            let layout = GridLayout::new(HD, n);
            let places: Vec<_> = layout
                .tiles
                .iter()
                .map(|&tile| {
                    let style = LabelStyle::for_tile(tile, HD);
                    assert_eq!(style.px, expected_px[n - 1], "{n} tiles");
                    (tile, style.place(tile, 200, 24))
                })
                .collect();
            for (i, (tile, place)) in places.iter().enumerate() {
                let band = place.band;
                assert!(inside(band, *tile), "{n} tiles: band {band:?} outside tile {tile:?}");
                assert_eq!(band.x, tile.x, "{n} tiles: flush left");
                assert_eq!(band.y + band.height, tile.y + tile.height, "{n} tiles: flush with the bottom");
                assert!(place.text_x > band.x && place.text_y > band.y, "text inside the band");
                let pad = 24 / 6;
                assert_eq!((band.width - 200, band.height - 24), (2 * pad, 2 * pad));
                // Only in its own tile.
                for (j, (other, _)) in places.iter().enumerate() {
                    if i != j {
                        let apart = band.x + band.width <= other.x
                            || other.x + other.width <= band.x
                            || band.y + band.height <= other.y
                            || other.y + other.height <= band.y;
                        assert!(apart, "{n} tiles: band of tile {i} reaches tile {j}");
                    }
                }
            }
        }
        // Two side by side: the second label starts at the screen's middle.
        let two = GridLayout::new(HD, 2);
        let right = LabelStyle::for_tile(two.tiles[1], HD).place(two.tiles[1], 200, 24);
        assert_eq!((right.band.x, right.band.y + right.band.height), (640, 720));
        // 2×2: the bottom row's labels sit on the screen's bottom edge, the top row's at its middle.
        let four = GridLayout::new(HD, 4);
        let bottoms: Vec<_> = four
            .tiles
            .iter()
            .map(|&t| {
                let p = LabelStyle::for_tile(t, HD).place(t, 200, 24);
                (p.band.x, p.band.y + p.band.height)
            })
            .collect();
        assert_eq!(bottoms, [(0, 360), (640, 360), (0, 720), (640, 720)]);
    }

    #[test]
    fn a_label_wider_than_its_tile_is_cut_to_it() {
        let tile = Rect { x: 100, y: 50, width: 120, height: 90 };
        let style = LabelStyle::for_tile(tile, Canvas { width: 320, height: 240 });
        assert_eq!(style.px, 10);
        let place = style.place(tile, 1000, 12);
        assert_eq!(place.band.width, 120);
        assert!(place.band.y >= tile.y);
    }

    #[test]
    fn the_state_changes_after_a_streak_and_the_first_open_frame_counts_at_once() {
        let mut w = EncryptionWatch::default();
        assert_eq!(w.record(true, true), Some(TileEncryption::Encrypted));
        assert_eq!(w.record(true, true), None, "no change, no re-render");
        for _ in 1..EncryptionWatch::STREAK {
            assert_eq!(w.record(false, true), None);
        }
        assert_eq!(w.record(false, true), Some(TileEncryption::CannotDecrypt));
        // Alternating outcomes keep what is shown.
        for _ in 0..100 {
            assert_eq!(w.record(true, true), None);
            assert_eq!(w.record(false, true), None);
        }
        let mut clear = EncryptionWatch::default();
        assert_eq!(clear.record(true, false), Some(TileEncryption::NotEncrypted));
        let mut early = EncryptionWatch::default();
        assert_eq!(early.record(false, true), None, "one frame before the key came is not a verdict");
    }

    #[test]
    fn a_note_follows_the_state_and_survives_shortening() {
        let Ok(font) = Font::system() else { panic!("no font found") };
        let with = render(&font, "Ana", Some(TileEncryption::Encrypted), Some("code 3671 7116 1586"), 20, 10_000);
        assert_eq!(with, font.render("Ana · encrypted · code 3671 7116 1586", 20));
        let long = "Maximiliane Wolkenstein-Rodenegg von Trostburg";
        let full = font.render(" · encrypted · verified", 20);
        let cut = render(&font, long, Some(TileEncryption::Encrypted), Some("verified"), 20, full.width + 80);
        assert!(cut.width <= full.width + 80, "{} > {}", cut.width, full.width + 80);
        assert_eq!(
            cut,
            font.render(
                &format!(
                    "{}… · encrypted · verified",
                    long.chars().take(cut_chars(&font, long, full.width + 80)).collect::<String>()
                ),
                20
            )
        );
    }

    /// How many characters of `name` the shortened label keeps (what render computes).
    fn cut_chars(font: &Font, name: &str, max: u32) -> usize {
        let chars: Vec<char> = name.chars().collect();
        (0..=chars.len())
            .rev()
            .find(|&n| {
                font.width(&format!("{}… · encrypted · verified", chars[..n].iter().collect::<String>()), 20)
                    <= max as f32
            })
            .unwrap_or(0)
    }

    #[test]
    fn names_are_trimmed_or_guest() {
        assert_eq!(shown_name("  Ana "), "Ana");
        assert_eq!(shown_name(""), "Guest");
        assert_eq!(shown_name(" \t"), "Guest");
    }

    #[test]
    fn a_long_name_is_shortened_and_the_state_kept() {
        let Ok(font) = Font::system() else { panic!("no font found") };
        let full = render(&font, "Ana", Some(TileEncryption::CannotDecrypt), None, 20, 10_000);
        assert_eq!(full, font.render("Ana · cannot decrypt (wrong key?)", 20));
        let long = "Maximiliane Wolkenstein-Rodenegg von Trostburg";
        let cut = render(&font, long, Some(TileEncryption::CannotDecrypt), None, 20, full.width + 60);
        assert!(cut.width <= full.width + 60 && cut.width > full.width, "{} vs {}", cut.width, full.width);
        let tiny = render(&font, long, Some(TileEncryption::Encrypted), None, 20, 30);
        assert!(tiny.width <= 30);
    }
}
