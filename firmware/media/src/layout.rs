//! The participant grid on the room screen: where each remote participant's
//! picture goes, and where the small self-view sits.
//!
//! Pure geometry, no GStreamer: the receive pipeline applies the result to
//! compositor pads. Grids are 1, 2 (side by side), 2×2 and 3×3; beyond nine
//! remote participants the earliest nine are shown.

use serde::Serialize;

/// The most remote participants shown at once (a 3×3 grid).
pub const MAX_TILES: usize = 9;

/// A rectangle on the screen, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

/// The size of the screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Canvas {
    pub width: i32,
    pub height: i32,
}

/// Where everything goes for a given number of remote participants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GridLayout {
    /// Columns × rows of the grid (0 × 0 when nobody is there).
    pub columns: usize,
    pub rows: usize,
    /// One tile per shown participant, in join order.
    pub tiles: Vec<Rect>,
    /// The local self-view, small in the bottom-right corner.
    pub self_view: Rect,
}

impl GridLayout {
    /// Lays out `participants` remote participants on `canvas`.
    pub fn new(canvas: Canvas, participants: usize) -> Self {
        let shown = participants.min(MAX_TILES);
        let (columns, rows) = match shown {
            0 => (0, 0),
            1 => (1, 1),
            2 => (2, 1),
            3 | 4 => (2, 2),
            _ => (3, 3),
        };
        let mut tiles = Vec::with_capacity(shown);
        if shown > 0 {
            // Integer division; the last column and row take the remainder so
            // tiles cover the canvas exactly.
            let cols = columns as i32;
            let rws = rows as i32;
            for i in 0..shown as i32 {
                let (c, r) = (i % cols, i / cols);
                let x = canvas.width * c / cols;
                let y = canvas.height * r / rws;
                let x_end = canvas.width * (c + 1) / cols;
                let y_end = canvas.height * (r + 1) / rws;
                tiles.push(Rect { x, y, width: x_end - x, height: y_end - y });
            }
        }
        Self { columns, rows, tiles, self_view: self_view(canvas) }
    }
}

/// A fifth of the screen's width, 16:9, inset from the bottom-right corner.
fn self_view(canvas: Canvas) -> Rect {
    let width = (canvas.width / 5).max(2) & !1;
    let height = (width * 9 / 16).max(2) & !1;
    let margin = canvas.width / 64;
    Rect { x: canvas.width - width - margin, y: canvas.height - height - margin, width, height }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HD: Canvas = Canvas { width: 1280, height: 720 };

    fn r(x: i32, y: i32, width: i32, height: i32) -> Rect {
        Rect { x, y, width, height }
    }

    #[test]
    fn grid_shapes() {
        let shapes: Vec<_> = (0..=12)
            .map(|n| {
                let l = GridLayout::new(HD, n);
                (l.columns, l.rows, l.tiles.len())
            })
            .collect();
        assert_eq!(
            shapes,
            [
                (0, 0, 0),
                (1, 1, 1),
                (2, 1, 2),
                (2, 2, 3),
                (2, 2, 4),
                (3, 3, 5),
                (3, 3, 6),
                (3, 3, 7),
                (3, 3, 8),
                (3, 3, 9),
                (3, 3, 9),
                (3, 3, 9),
                (3, 3, 9),
            ]
        );
    }

    #[test]
    fn one_fills_the_screen_two_sit_side_by_side() {
        assert_eq!(GridLayout::new(HD, 1).tiles, [r(0, 0, 1280, 720)]);
        assert_eq!(GridLayout::new(HD, 2).tiles, [r(0, 0, 640, 720), r(640, 0, 640, 720)]);
    }

    #[test]
    fn four_make_a_two_by_two() {
        assert_eq!(
            GridLayout::new(HD, 4).tiles,
            [r(0, 0, 640, 360), r(640, 0, 640, 360), r(0, 360, 640, 360), r(640, 360, 640, 360)]
        );
    }

    #[test]
    fn tiles_cover_an_odd_canvas_without_gaps_or_overlap() {
        let canvas = Canvas { width: 1001, height: 601 };
        for n in 1..=MAX_TILES {
            let l = GridLayout::new(canvas, n);
            let full = l.columns * l.rows == n;
            let area: i64 = l.tiles.iter().map(|t| i64::from(t.width) * i64::from(t.height)).sum();
            if full {
                assert_eq!(area, 1001 * 601, "{n} participants");
            }
            for t in &l.tiles {
                assert!(t.x >= 0 && t.y >= 0);
                assert!(t.x + t.width <= 1001 && t.y + t.height <= 601);
            }
            for (i, a) in l.tiles.iter().enumerate() {
                for b in &l.tiles[i + 1..] {
                    let apart =
                        a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
                    assert!(apart, "{a:?} overlaps {b:?}");
                }
            }
        }
    }

    #[test]
    fn self_view_is_small_and_in_the_bottom_right_corner() {
        let v = GridLayout::new(HD, 3).self_view;
        assert_eq!(v, r(1024 - 20, 720 - 144 - 20, 256, 144));
        let tiny = GridLayout::new(Canvas { width: 4, height: 4 }, 0).self_view;
        assert!(tiny.width >= 2 && tiny.height >= 2);
    }
}
