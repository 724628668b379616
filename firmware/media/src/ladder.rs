//! Stepping video quality down and up under congestion.
//!
//! Congestion control first lowers the bitrate; when that is not enough the
//! daemon steps down this ladder: three quarters of the resolution, half,
//! half at half the frame rate, a quarter at half the frame rate. Pure logic;
//! the send pipeline applies the current rung to its caps filter.

use serde::{Deserialize, Serialize};

use crate::MediaError;

/// The smallest width or height a rung may have.
const MIN_SIDE: u32 = 64;

/// A picture size and frame rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VideoMode {
    pub width: u32,
    pub height: u32,
    /// Frames per second.
    pub framerate: u32,
}

impl VideoMode {
    /// A mode, refused when encoders could not take it: sides must be even
    /// and between 64 and 4096, the frame rate between 1 and 60.
    pub fn new(width: u32, height: u32, framerate: u32) -> Result<Self, MediaError> {
        for (name, side) in [("width", width), ("height", height)] {
            if !(MIN_SIDE..=4096).contains(&side) || side % 2 != 0 {
                return Err(MediaError::InvalidSetting {
                    name,
                    reason: format!("{side} is not an even number from {MIN_SIDE} to 4096"),
                });
            }
        }
        if !(1..=60).contains(&framerate) {
            return Err(MediaError::InvalidSetting {
                name: "framerate",
                reason: format!("{framerate} is not from 1 to 60"),
            });
        }
        Ok(Self { width, height, framerate })
    }

    fn scaled(self, num: u32, den: u32, fps_den: u32) -> Self {
        let side = |v: u32| ((v * num / den) & !1).max(MIN_SIDE);
        Self { width: side(self.width), height: side(self.height), framerate: (self.framerate / fps_den).max(1) }
    }
}

/// The rungs from the configured mode down, and where the sender is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QualityLadder {
    rungs: Vec<VideoMode>,
    current: usize,
}

impl QualityLadder {
    /// A ladder whose top rung is `top`, starting at the top.
    pub fn new(top: VideoMode) -> Self {
        let mut rungs = vec![top];
        for (num, den, fps_den) in [(3, 4, 1), (1, 2, 1), (1, 2, 2), (1, 4, 2)] {
            let rung = top.scaled(num, den, fps_den);
            if rungs.last() != Some(&rung) {
                rungs.push(rung);
            }
        }
        Self { rungs, current: 0 }
    }

    /// The mode to send now.
    pub fn current(&self) -> VideoMode {
        self.rungs[self.current]
    }

    /// All rungs, best first.
    pub fn rungs(&self) -> &[VideoMode] {
        &self.rungs
    }

    /// Moves one rung down; `None` when already at the bottom.
    pub fn step_down(&mut self) -> Option<VideoMode> {
        if self.current + 1 < self.rungs.len() {
            self.current += 1;
            Some(self.current())
        } else {
            None
        }
    }

    /// Moves one rung up; `None` when already at the top.
    pub fn step_up(&mut self) -> Option<VideoMode> {
        if self.current > 0 {
            self.current -= 1;
            Some(self.current())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(w: u32, h: u32, f: u32) -> VideoMode {
        VideoMode::new(w, h, f).expect("valid mode")
    }

    #[test]
    fn ladder_from_720p30() {
        let ladder = QualityLadder::new(mode(1280, 720, 30));
        assert_eq!(
            ladder.rungs(),
            [mode(1280, 720, 30), mode(960, 540, 30), mode(640, 360, 30), mode(640, 360, 15), mode(320, 180, 15),]
        );
    }

    #[test]
    fn steps_stop_at_both_ends() {
        let mut ladder = QualityLadder::new(mode(320, 240, 20));
        assert_eq!(ladder.step_up(), None);
        let mut downs = 0;
        while ladder.step_down().is_some() {
            downs += 1;
        }
        assert_eq!(downs, ladder.rungs().len() - 1);
        assert_eq!(ladder.current(), mode(80, 64, 10));
        assert_eq!(ladder.step_up(), Some(mode(160, 120, 10)));
    }

    #[test]
    fn small_modes_do_not_repeat_rungs() {
        let ladder = QualityLadder::new(mode(64, 64, 1));
        assert_eq!(ladder.rungs(), [mode(64, 64, 1)]);
    }

    #[test]
    fn refuses_modes_encoders_cannot_take() {
        assert!(VideoMode::new(641, 480, 30).is_err());
        assert!(VideoMode::new(640, 0, 30).is_err());
        assert!(VideoMode::new(640, 480, 0).is_err());
        assert!(VideoMode::new(640, 480, 61).is_err());
        assert!(VideoMode::new(8192, 480, 30).is_err());
    }
}
