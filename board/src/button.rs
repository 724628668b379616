//! The mute button: debounce and long press as a pure state machine.
//!
//! Inputs are the button's level at a point in time ([`MuteButton::handle_input`])
//! and the passing of time ([`MuteButton::handle_timeout`]); outputs are polled
//! ([`MuteButton::poll_output`]): an event, or the instant by which the caller
//! must call `handle_timeout` again. No clock is read here, so tests run in
//! virtual time; the adapters ([`crate::pins`], [`crate::gpio`]) feed it.
//!
//! Rules:
//! - A level counts only once it has held for `debounce`; a change that
//!   flips back earlier is contact bounce and is dropped. The press is dated
//!   from its first edge, not from when it was confirmed.
//! - A press released before `long_press` is a [`ButtonEvent::Press`],
//!   reported on release (the daemon toggles mute on it).
//! - A press held for `long_press` is a [`ButtonEvent::LongPress`], reported
//!   while still held; its release then reports nothing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Timing of the button. Validated values only come from [`ButtonSettings::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ButtonSettings {
    debounce: Duration,
    long_press: Duration,
}

impl ButtonSettings {
    /// `debounce` must be shorter than `long_press`, or a long press could never
    /// be told from a bounce; `None` otherwise.
    pub fn new(debounce: Duration, long_press: Duration) -> Option<Self> {
        (debounce < long_press).then_some(Self { debounce, long_press })
    }

    pub fn debounce(&self) -> Duration {
        self.debounce
    }

    pub fn long_press(&self) -> Duration {
        self.long_press
    }
}

impl Default for ButtonSettings {
    /// 30 ms covers the bounce of common tactile switches; QEMU's power
    /// button pulse (100 ms) still passes. 1.5 s is a deliberate hold.
    fn default() -> Self {
        Self { debounce: Duration::from_millis(30), long_press: Duration::from_millis(1500) }
    }
}

/// What the button did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonEvent {
    /// Pressed and released before the long-press time. `at` is the release edge.
    Press { at: Instant, held: Duration },
    /// Held for the long-press time; `at` is when that time was reached.
    LongPress { at: Instant },
}

/// What the caller should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonOutput {
    /// Act on this event, then poll again.
    Event(ButtonEvent),
    /// Nothing to report; call `handle_timeout` at this instant (or earlier with an input).
    Timeout(Instant),
    /// Nothing to report and nothing pending until the level changes.
    Idle,
}

/// Debounce and long-press logic for one button.
#[derive(Debug)]
pub struct MuteButton {
    settings: ButtonSettings,
    /// Debounced state.
    pressed: bool,
    /// A level differing from `pressed`, and the instant it first appeared.
    pending: Option<(bool, Instant)>,
    /// First edge of the current debounced press.
    pressed_at: Option<Instant>,
    long_press_reported: bool,
    events: VecDeque<ButtonEvent>,
}

impl MuteButton {
    /// A button that starts released.
    pub fn new(settings: ButtonSettings) -> Self {
        Self {
            settings,
            pressed: false,
            pending: None,
            pressed_at: None,
            long_press_reported: false,
            events: VecDeque::new(),
        }
    }

    /// The button reads `pressed` at `now`. Levels may be repeated (polling)
    /// or only sent on change (edge events); times must not go backwards.
    pub fn handle_input(&mut self, now: Instant, pressed: bool) {
        // Settle what was due before this input, so a late caller gets the same answer.
        self.handle_timeout(now);
        if pressed == self.pressed {
            // Flipped back within the debounce time: bounce.
            self.pending = None;
        } else if self.pending.map(|(level, _)| level) != Some(pressed) {
            self.pending = Some((pressed, now));
        }
    }

    /// Time has reached `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            if let Some(deadline) = self.long_press_deadline() {
                if now >= deadline {
                    self.long_press_reported = true;
                    self.events.push_back(ButtonEvent::LongPress { at: deadline });
                    progressed = true;
                }
            }
            match self.pending {
                Some((level, since)) if now >= since + self.settings.debounce => {
                    self.pending = None;
                    self.settle(level, since);
                    progressed = true;
                }
                _ => {}
            }
            if !progressed {
                break;
            }
        }
    }

    /// The next thing to do: events first, then when to call back.
    pub fn poll_output(&mut self) -> ButtonOutput {
        if let Some(event) = self.events.pop_front() {
            return ButtonOutput::Event(event);
        }
        let debounce_due = self.pending.map(|(_, since)| since + self.settings.debounce);
        match (debounce_due, self.long_press_deadline()) {
            (Some(a), Some(b)) => ButtonOutput::Timeout(a.min(b)),
            (Some(t), None) | (None, Some(t)) => ButtonOutput::Timeout(t),
            (None, None) => ButtonOutput::Idle,
        }
    }

    /// The debounced state.
    pub fn is_pressed(&self) -> bool {
        self.pressed
    }

    fn settle(&mut self, pressed: bool, edge: Instant) {
        self.pressed = pressed;
        if pressed {
            self.pressed_at = Some(edge);
            self.long_press_reported = false;
        } else if let Some(start) = self.pressed_at.take() {
            if !self.long_press_reported {
                self.events.push_back(ButtonEvent::Press { at: edge, held: edge.saturating_duration_since(start) });
            }
        }
    }

    /// When a long press would be reported. `None` while a release edge from
    /// before that time awaits its debounce: if it holds, the press was short;
    /// if it bounces back, the deadline returns.
    fn long_press_deadline(&self) -> Option<Instant> {
        let deadline = match (self.pressed, self.pressed_at) {
            (true, Some(start)) if !self.long_press_reported => start + self.settings.long_press,
            _ => return None,
        };
        match self.pending {
            Some((false, since)) if since < deadline => None,
            _ => Some(deadline),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Feeds `(ms, pressed)` edges in order, honouring every timeout the
    /// button asks for in between, and returns events with times relative to t0.
    fn run(edges: &[(u64, bool)], until_ms: u64) -> Vec<(String, u64, u64)> {
        let t0 = Instant::now();
        let mut b = MuteButton::new(ButtonSettings::default());
        let mut out = Vec::new();
        let mut edges = edges.iter().copied().peekable();
        let end = t0 + ms(until_ms);
        loop {
            let next_edge = edges.peek().map(|&(t, _)| t0 + ms(t));
            match b.poll_output() {
                ButtonOutput::Event(ButtonEvent::Press { at, held }) => {
                    out.push(("press".into(), (at - t0).as_millis() as u64, held.as_millis() as u64))
                }
                ButtonOutput::Event(ButtonEvent::LongPress { at }) => {
                    out.push(("long".into(), (at - t0).as_millis() as u64, 0))
                }
                ButtonOutput::Timeout(t) if next_edge.is_none_or(|e| t < e) && t <= end => b.handle_timeout(t),
                _ => match edges.next() {
                    Some((t, level)) => b.handle_input(t0 + ms(t), level),
                    None => {
                        b.handle_timeout(end);
                        if let ButtonOutput::Event(_) = b.poll_output() {
                            panic!("event after the end of the run");
                        }
                        return out;
                    }
                },
            }
        }
    }

    #[test]
    fn clean_press_is_reported_on_release_with_its_duration() {
        assert_eq!(run(&[(1000, true), (1100, false)], 5000), vec![("press".into(), 1100, 100)]);
    }

    #[test]
    fn qemu_power_button_pulse_is_one_press() {
        // QEMU's gpio-key holds the line high for 100 ms.
        assert_eq!(run(&[(0, true), (100, false)], 1000).len(), 1);
    }

    #[test]
    fn contact_bounce_gives_one_press_dated_from_the_stable_edge() {
        let mut edges = vec![];
        // Bounce on press: 5 ms flips for 20 ms, then held.
        for i in 0..4 {
            edges.push((500 + i * 5, i % 2 == 0));
        }
        edges.push((520, true));
        // Bounce on release at 800 ms.
        for i in 0..4 {
            edges.push((800 + i * 5, i % 2 == 1));
        }
        edges.push((820, false));
        assert_eq!(run(&edges, 3000), vec![("press".into(), 820, 300)]);
    }

    #[test]
    fn glitch_shorter_than_debounce_is_ignored() {
        assert!(run(&[(100, true), (120, false)], 3000).is_empty());
        assert!(run(&[(100, true), (129, false), (500, true), (510, false)], 3000).is_empty());
    }

    #[test]
    fn long_press_fires_while_held_and_release_reports_nothing_more() {
        assert_eq!(run(&[(0, true), (4000, false)], 6000), vec![("long".into(), 1500, 0)]);
    }

    #[test]
    fn release_just_before_long_press_time_is_a_press() {
        assert_eq!(run(&[(0, true), (1499, false)], 6000), vec![("press".into(), 1499, 1499)]);
    }

    #[test]
    fn bounce_on_release_near_the_deadline_does_not_lose_the_long_press() {
        // Release edge at 1490 bounces back within the debounce time: still held.
        assert_eq!(run(&[(0, true), (1490, false), (1500, true), (3000, false)], 6000), vec![("long".into(), 1500, 0)]);
    }

    #[test]
    fn two_presses_in_a_row() {
        assert_eq!(
            run(&[(0, true), (200, false), (400, true), (600, false)], 2000),
            vec![("press".into(), 200, 200), ("press".into(), 600, 200)]
        );
    }

    #[test]
    fn timeouts_say_when_to_call_back() {
        let t0 = Instant::now();
        let mut b = MuteButton::new(ButtonSettings::default());
        assert_eq!(b.poll_output(), ButtonOutput::Idle);
        b.handle_input(t0, true);
        assert_eq!(b.poll_output(), ButtonOutput::Timeout(t0 + ms(30)));
        assert!(!b.is_pressed());
        b.handle_timeout(t0 + ms(30));
        assert!(b.is_pressed());
        assert_eq!(b.poll_output(), ButtonOutput::Timeout(t0 + ms(1500)));
        b.handle_input(t0 + ms(100), false);
        assert_eq!(b.poll_output(), ButtonOutput::Timeout(t0 + ms(130)));
        b.handle_timeout(t0 + ms(130));
        assert!(matches!(b.poll_output(), ButtonOutput::Event(ButtonEvent::Press { .. })));
        assert_eq!(b.poll_output(), ButtonOutput::Idle);
    }

    #[test]
    fn a_late_caller_gets_the_same_events() {
        // Nobody called handle_timeout during a 2 s hold; the release input catches up.
        let t0 = Instant::now();
        let mut b = MuteButton::new(ButtonSettings::default());
        b.handle_input(t0, true);
        b.handle_input(t0 + ms(2000), false);
        b.handle_timeout(t0 + ms(2100));
        assert_eq!(b.poll_output(), ButtonOutput::Event(ButtonEvent::LongPress { at: t0 + ms(1500) }));
        assert_eq!(b.poll_output(), ButtonOutput::Idle);
    }

    #[test]
    fn settings_refuse_a_debounce_longer_than_the_long_press() {
        assert!(ButtonSettings::new(ms(2000), ms(1500)).is_none());
        assert!(ButtonSettings::new(ms(20), ms(1000)).is_some());
    }
}
