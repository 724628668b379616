//! The room screen's status banner: what the room is doing when that is
//! not what people expect to see, such as "Reconnecting: try 3 in 4 s" and
//! the failure's cause, in shaded text over the picture.
//!
//! The banner is one layer of a [`crate::text::Overlay`]: changing its
//! words renders one mask and restarts nothing, so a countdown can tick
//! without the screen's pipeline starting over. Lines too wide for the
//! banner's area are cut and end in "…"; the page shows the whole cause.

use crate::MediaError;
use crate::text::{Anchor, Font, LayerId, Overlay, Placement, TextImage, shade_padding};

/// A banner on an [`Overlay`]: a band across the picture, its text centred
/// in it on a dark box.
pub struct StatusBanner {
    overlay: Overlay,
    layer: LayerId,
    band: Band,
    /// The words shown, to skip rendering the same again.
    shown: Option<String>,
}

/// Where a banner goes: a horizontal band of the picture and the text size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    /// The picture's width, in pixels.
    pub width: u32,
    /// The band's top row and height, in pixels.
    pub top: u32,
    pub height: u32,
    /// Text height, in pixels.
    pub px: u32,
}

impl Band {
    /// The room the dark box takes around the text image, which is as
    /// tall as the band allows (the box's padding grows with the image).
    fn padding(self) -> u32 {
        shade_padding(self.inner_height())
    }

    /// The widest a line may be.
    fn max_line_width(self) -> u32 {
        self.width.saturating_sub(4 * self.padding())
    }

    /// The text's place: centred across the picture, its image (as tall as
    /// the band less the box's padding) at the band's top.
    fn placement(self) -> Placement {
        Placement { anchor: Anchor::TopCenter, margin: self.top + self.padding(), shaded: true }
    }

    /// The text image's height: image and padding (a sixth of the image,
    /// above and below) fill the band; never less than a line.
    fn inner_height(self) -> u32 {
        (self.height * 3 / 4).max(self.px)
    }
}

impl StatusBanner {
    /// An empty banner in `band`. Call before the pipeline starts (see
    /// [`Overlay::attach`]).
    pub fn attach(overlay: &Overlay, band: Band) -> Self {
        let layer = overlay.add_text(TextImage::default(), band.placement());
        Self { overlay: overlay.clone(), layer, band, shown: None }
    }

    /// Shows `text` (lines separated by `\n`), or nothing.
    pub fn set(&mut self, text: Option<&str>) -> Result<(), MediaError> {
        let text = text.map(str::trim).filter(|t| !t.is_empty());
        if text == self.shown.as_deref() {
            return Ok(());
        }
        let image = match text {
            Some(text) => {
                let font = Font::system()?;
                let lines =
                    font.render_lines(&fit_lines(&font, text, self.band.px, self.band.max_line_width()), self.band.px);
                centred_in_height(lines, self.band.inner_height())
            }
            None => TextImage::default(),
        };
        self.overlay.set_text(self.layer, image);
        self.shown = text.map(str::to_owned);
        Ok(())
    }

    /// The words shown, if any.
    pub fn shown(&self) -> Option<&str> {
        self.shown.as_deref()
    }
}

/// Each line of `text`, cut to fit `max_width` pixels at `px` with "…" at
/// the end of what was cut; control characters are left out.
pub fn fit_lines(font: &Font, text: &str, px: u32, max_width: u32) -> String {
    text.lines()
        .map(|line| {
            let line: String = line.chars().filter(|c| !c.is_control()).collect();
            if font.width(&line, px) <= max_width as f32 {
                return line;
            }
            let mut chars: Vec<char> = line.chars().collect();
            while !chars.is_empty() {
                chars.pop();
                let cut: String = chars.iter().collect::<String>().trim_end().to_owned() + "…";
                if font.width(&cut, px) <= max_width as f32 {
                    return cut;
                }
            }
            String::new()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `image` in the middle of an image `height` rows high (as it is when
/// already as tall or taller): the banner's box keeps its size whatever
/// the number of lines.
fn centred_in_height(image: TextImage, height: u32) -> TextImage {
    if image.height >= height || image.width == 0 {
        return image;
    }
    let (w, top) = (image.width as usize, ((height - image.height) / 2) as usize);
    let mut alpha = vec![0u8; w * height as usize];
    alpha[top * w..top * w + image.alpha.len()].copy_from_slice(&image.alpha);
    TextImage { width: image.width, height, alpha }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_with_an_ellipsis_and_short_ones_kept() {
        let font = Font::system().expect("a system font (fonts-dejavu-core)");
        let text =
            "Reconnecting: try 3 in 4 s\nserver gone: connection refused by the meeting server at sfu.example.org:8989";
        let fitted = fit_lines(&font, text, 20, 300);
        let lines: Vec<&str> = fitted.lines().collect();
        assert_eq!(lines.len(), 2, "{fitted}");
        assert_eq!(lines[0], "Reconnecting: try 3 in 4 s");
        assert!(lines[1].ends_with('…') && lines[1].starts_with("server gone: conn"), "{fitted}");
        assert!(font.width(lines[1], 20) <= 300.0);
        // Nothing fits: the line is empty, never wider than asked.
        assert_eq!(fit_lines(&font, "WWWW", 20, 1), "");
        // A control character (an escape from a peer's error text) is left out.
        assert_eq!(fit_lines(&font, "a\u{1b}b", 20, 300), "ab");
    }

    #[test]
    fn the_text_sits_in_the_middle_of_a_box_of_fixed_height() {
        let one = TextImage { width: 2, height: 2, alpha: vec![1, 2, 3, 4] };
        let padded = centred_in_height(one.clone(), 6);
        assert_eq!((padded.width, padded.height), (2, 6));
        assert_eq!(padded.alpha, [0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0]);
        assert_eq!(centred_in_height(one.clone(), 1), one, "taller than the box: kept");
        assert_eq!(centred_in_height(TextImage::default(), 6), TextImage::default(), "nothing stays nothing");
        let band = Band { width: 640, top: 270, height: 48, px: 18 };
        // 36 rows of text image, 6 of the box's padding above and below.
        assert_eq!(band.inner_height(), 36);
        assert_eq!(band.placement(), Placement { anchor: Anchor::TopCenter, margin: 276, shaded: true });
        assert_eq!(band.inner_height() + 2 * shade_padding(band.inner_height()), band.height);
        assert_eq!(Band { height: 4, ..band }.inner_height(), 18, "at least a line");
    }
}
