//! Linux GPIO character-device lines (gpiocdev, uAPI v2) as embedded-hal
//! pins, and the thin loop that feeds a button's edge events to
//! [`MuteButton`].
//!
//! Chips are found by label, not by `/dev/gpiochipN`, whose numbering
//! depends on probe order. Lines are requested with the kernel's
//! active-high view and the profile's polarity is applied in one place
//! (the cores' adapters), the same for every pin type.
//!
//! Edge events carry the kernel's CLOCK_MONOTONIC timestamp of the
//! interrupt; these are placed on the [`Instant`] time line so that a slow
//! reader (an emulated guest, a busy board) still measures the press as it
//! happened, not as it was read.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use embedded_hal::digital::{ErrorType, InputPin, OutputPin};
use gpiocdev::Request;
use gpiocdev::line::{Bias, EdgeDetection, EdgeKind, EventClock, Value};

use crate::Error;
use crate::button::{ButtonEvent, ButtonOutput, ButtonSettings, MuteButton};
use crate::profile::GpioLine;

/// The `/dev/gpiochipN` whose label is `label`.
pub fn find_chip(label: &str) -> Result<PathBuf, Error> {
    let mut found = Vec::new();
    for path in gpiocdev::chip::chips().map_err(|source| Error::Gpio { what: "listing chips", source })? {
        let Ok(chip) = gpiocdev::chip::Chip::from_path(&path) else {
            continue;
        };
        let Ok(info) = chip.info() else { continue };
        if info.label == label {
            return Ok(path);
        }
        found.push(format!("{} ({})", info.name, info.label));
    }
    Err(Error::ChipNotFound {
        label: label.to_owned(),
        found: if found.is_empty() { "no GPIO chips".to_owned() } else { found.join(", ") },
    })
}

/// A line requested as an input with edge events on both edges.
pub struct GpioInput {
    request: Request,
    offset: u32,
    chip: PathBuf,
    clock: MonotonicAnchor,
}

/// A rising or falling edge (active-high view) at the instant the kernel saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub at: Instant,
    pub high: bool,
}

impl GpioInput {
    pub fn open(line: &GpioLine, consumer: &str) -> Result<Self, Error> {
        let chip = find_chip(line.chip_label)?;
        let request = Request::builder()
            .on_chip(&chip)
            .with_consumer(consumer)
            .with_line(line.offset)
            .as_input()
            .with_bias(line.pull_up.then_some(Bias::PullUp))
            .with_edge_detection(EdgeDetection::BothEdges)
            .with_event_clock(EventClock::Monotonic)
            .request()
            .map_err(|source| Error::Gpio { what: "requesting the button line", source })?;
        Ok(Self { request, offset: line.offset, chip, clock: MonotonicAnchor::now()? })
    }

    /// The chip device the line is on.
    pub fn chip_path(&self) -> &std::path::Path {
        &self.chip
    }

    /// Waits up to `timeout` for the next edge.
    pub fn wait_edge(&mut self, timeout: Duration) -> Result<Option<Edge>, Error> {
        let ready = self
            .request
            .wait_edge_event(timeout)
            .map_err(|source| Error::Gpio { what: "waiting for an edge", source })?;
        if !ready {
            return Ok(None);
        }
        let event = self.request.read_edge_event().map_err(|source| Error::Gpio { what: "reading an edge", source })?;
        Ok(Some(Edge { at: self.clock.instant(event.timestamp_ns), high: event.kind == EdgeKind::Rising }))
    }
}

impl ErrorType for GpioInput {
    type Error = Error;
}

impl InputPin for GpioInput {
    fn is_high(&mut self) -> Result<bool, Error> {
        let value =
            self.request.value(self.offset).map_err(|source| Error::Gpio { what: "reading the line", source })?;
        Ok(value == Value::Active)
    }

    fn is_low(&mut self) -> Result<bool, Error> {
        self.is_high().map(|high| !high)
    }
}

/// A line requested as an output.
pub struct GpioOutput {
    request: Request,
    offset: u32,
}

impl GpioOutput {
    /// Requests `line` as an output driven low.
    pub fn open(line: &GpioLine, consumer: &str) -> Result<Self, Error> {
        let chip = find_chip(line.chip_label)?;
        let request = Request::builder()
            .on_chip(&chip)
            .with_consumer(consumer)
            .with_line(line.offset)
            .as_output(Value::Inactive)
            .request()
            .map_err(|source| Error::Gpio { what: "requesting the LED line", source })?;
        Ok(Self { request, offset: line.offset })
    }

    fn set(&mut self, value: Value) -> Result<(), Error> {
        self.request.set_value(self.offset, value).map_err(|source| Error::Gpio { what: "setting the line", source })
    }
}

impl ErrorType for GpioOutput {
    type Error = Error;
}

impl OutputPin for GpioOutput {
    fn set_low(&mut self) -> Result<(), Error> {
        self.set(Value::Inactive)
    }

    fn set_high(&mut self) -> Result<(), Error> {
        self.set(Value::Active)
    }
}

/// A mute button on a GPIO line, fed by the line's edge events.
pub struct EdgeButton {
    input: GpioInput,
    active_low: bool,
    button: MuteButton,
}

impl EdgeButton {
    /// Requests the line and reads its current level as the starting point.
    pub fn open(line: &GpioLine, settings: ButtonSettings, consumer: &str) -> Result<Self, Error> {
        let mut input = GpioInput::open(line, consumer)?;
        let mut button = MuteButton::new(settings);
        let pressed = input.is_high()? != line.active_low;
        button.handle_input(Instant::now(), pressed);
        Ok(Self { input, active_low: line.active_low, button })
    }

    pub fn input(&self) -> &GpioInput {
        &self.input
    }

    /// The next button event, or `None` if there was none by `deadline`.
    pub fn next_event(&mut self, deadline: Instant) -> Result<Option<ButtonEvent>, Error> {
        loop {
            let wake = match self.button.poll_output() {
                ButtonOutput::Event(event) => return Ok(Some(event)),
                ButtonOutput::Timeout(t) => t.min(deadline),
                ButtonOutput::Idle => deadline,
            };
            let now = Instant::now();
            if now >= deadline && wake == deadline {
                self.button.handle_timeout(now);
                return Ok(match self.button.poll_output() {
                    ButtonOutput::Event(event) => Some(event),
                    _ => None,
                });
            }
            match self.input.wait_edge(wake.saturating_duration_since(now))? {
                Some(edge) => self.button.handle_input(edge.at, edge.high != self.active_low),
                None => self.button.handle_timeout(Instant::now()),
            }
        }
    }
}

/// Maps CLOCK_MONOTONIC nanoseconds (kernel event timestamps) to `Instant`s.
/// Rust's `Instant` is CLOCK_MONOTONIC on Linux, so one reading of each
/// taken together fixes the offset.
struct MonotonicAnchor {
    instant: Instant,
    monotonic: Duration,
}

impl MonotonicAnchor {
    fn now() -> Result<Self, Error> {
        let monotonic = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_err(Error::Clock)?;
        Ok(Self { instant: Instant::now(), monotonic: Duration::from(monotonic) })
    }

    fn instant(&self, timestamp_ns: u64) -> Instant {
        let at = Duration::from_nanos(timestamp_ns);
        if at >= self.monotonic {
            self.instant + (at - self.monotonic)
        } else {
            // Before the anchor (an edge queued before we started): as early as representable.
            self.instant.checked_sub(self.monotonic - at).unwrap_or(self.instant)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_timestamps_land_on_the_instant_time_line() {
        let instant = Instant::now();
        let anchor = MonotonicAnchor { instant, monotonic: Duration::from_secs(100) };
        assert_eq!(anchor.instant(100_250_000_000), instant + Duration::from_millis(250));
        assert_eq!(anchor.instant(100_000_000_000), instant);
        // An edge from before the anchor is earlier, not later.
        assert!(anchor.instant(99_900_000_000) <= instant);
    }

    #[test]
    fn the_anchor_agrees_with_instant_now() {
        // Rust's Instant is CLOCK_MONOTONIC on Linux: a fresh reading maps to about now.
        let anchor = MonotonicAnchor::now().unwrap();
        let mono = Duration::from(nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap());
        let mapped = anchor.instant(mono.as_nanos() as u64);
        let now = Instant::now();
        assert!(now.saturating_duration_since(mapped) < Duration::from_secs(1));
        assert!(mapped.saturating_duration_since(now) < Duration::from_secs(1));
    }

    #[test]
    fn a_missing_chip_names_the_chips_there_are() {
        let err = find_chip("no-such-chip-label").unwrap_err().to_string();
        assert!(err.contains("no-such-chip-label"), "{err}");
    }
}
