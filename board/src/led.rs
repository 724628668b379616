//! The state LED: one blink pattern per room state, as a pure state machine.
//!
//! [`StateLed::set_state`] picks the pattern, [`StateLed::handle_timeout`]
//! advances it, [`StateLed::poll_output`] says what to drive and when to call
//! back. Steps are scheduled from the previous step's deadline, not from when
//! the caller got round to it, so a slow caller does not stretch the rhythm.

use std::time::{Duration, Instant};

/// What the room is doing, as far as the LED is concerned. The daemon maps
/// its own state machine onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomState {
    /// Not in a meeting: a short blip every 3 s, so the room sees the device is alive.
    Idle,
    /// Connecting to a meeting: fast even blink.
    Joining,
    /// In a meeting with the microphone live: steady on.
    InMeeting,
    /// In a meeting, microphone muted: slow even blink.
    Muted,
    /// Something needs the admin: three flashes, pause.
    Error,
}

/// One step of a pattern: the LED lit or dark, for a time (`None`: until the state changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub lit: bool,
    pub hold: Option<Duration>,
}

const fn step(lit: bool, ms: u64) -> Step {
    Step { lit, hold: Some(Duration::from_millis(ms)) }
}

impl RoomState {
    /// The pattern, repeated for as long as the state lasts.
    pub fn pattern(self) -> &'static [Step] {
        const IDLE: &[Step] = &[step(true, 100), step(false, 2900)];
        const JOINING: &[Step] = &[step(true, 150), step(false, 150)];
        const IN_MEETING: &[Step] = &[Step { lit: true, hold: None }];
        const MUTED: &[Step] = &[step(true, 600), step(false, 600)];
        const ERROR: &[Step] =
            &[step(true, 100), step(false, 150), step(true, 100), step(false, 150), step(true, 100), step(false, 1400)];
        match self {
            RoomState::Idle => IDLE,
            RoomState::Joining => JOINING,
            RoomState::InMeeting => IN_MEETING,
            RoomState::Muted => MUTED,
            RoomState::Error => ERROR,
        }
    }
}

/// What the caller should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedOutput {
    /// Light (`true`) or darken the LED now, then poll again.
    Drive(bool),
    /// Call `handle_timeout` at this instant.
    Timeout(Instant),
    /// Nothing to do until the state changes.
    Idle,
}

/// The LED's pattern and where in it we are.
#[derive(Debug)]
pub struct StateLed {
    state: RoomState,
    step: usize,
    step_ends: Option<Instant>,
    /// What the LED was last told to show (`None` before the first drive).
    shown: Option<bool>,
}

impl StateLed {
    /// Starts showing `state` at `now`.
    pub fn new(now: Instant, state: RoomState) -> Self {
        let mut led = Self { state, step: 0, step_ends: None, shown: None };
        led.start(now);
        led
    }

    /// The room changed state. The same state again keeps the rhythm going.
    pub fn set_state(&mut self, now: Instant, state: RoomState) {
        if state != self.state {
            self.state = state;
            self.start(now);
        }
    }

    pub fn state(&self) -> RoomState {
        self.state
    }

    /// Time has reached `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let pattern = self.state.pattern();
        while let Some(ends) = self.step_ends {
            if now < ends {
                break;
            }
            self.step = (self.step + 1) % pattern.len();
            self.step_ends = pattern[self.step].hold.map(|hold| ends + hold);
        }
    }

    /// Drive the LED if it shows the wrong thing, else when to call back.
    pub fn poll_output(&mut self) -> LedOutput {
        let lit = self.state.pattern()[self.step].lit;
        if self.shown != Some(lit) {
            self.shown = Some(lit);
            return LedOutput::Drive(lit);
        }
        match self.step_ends {
            Some(t) => LedOutput::Timeout(t),
            None => LedOutput::Idle,
        }
    }

    fn start(&mut self, now: Instant) {
        self.step = 0;
        self.step_ends = self.state.pattern()[0].hold.map(|hold| now + hold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The LED's level changes (ms since t0, lit) from t0 to `until_ms`,
    /// with `changes` applied at their times.
    fn trace(start: RoomState, changes: &[(u64, RoomState)], until_ms: u64) -> Vec<(u64, bool)> {
        let t0 = Instant::now();
        let end = t0 + ms(until_ms);
        let mut led = StateLed::new(t0, start);
        let mut now = t0;
        let mut changes = changes.iter().copied().peekable();
        let mut out = Vec::new();
        loop {
            match led.poll_output() {
                LedOutput::Drive(lit) => out.push(((now - t0).as_millis() as u64, lit)),
                output => {
                    let timeout = match output {
                        LedOutput::Timeout(t) => Some(t),
                        _ => None,
                    };
                    let change = changes.peek().map(|&(t, s)| (t0 + ms(t), s));
                    match (timeout, change) {
                        (_, Some((t, s))) if timeout.is_none_or(|x| t <= x) && t <= end => {
                            now = t;
                            led.handle_timeout(now);
                            led.set_state(now, s);
                            changes.next();
                        }
                        (Some(t), _) if t <= end => {
                            now = t;
                            led.handle_timeout(now);
                        }
                        _ => return out,
                    }
                }
            }
        }
    }

    #[test]
    fn idle_blips_every_three_seconds() {
        assert_eq!(
            trace(RoomState::Idle, &[], 6500),
            vec![(0, true), (100, false), (3000, true), (3100, false), (6000, true), (6100, false)]
        );
    }

    #[test]
    fn in_meeting_is_steady_and_asks_for_no_timeouts() {
        let t0 = Instant::now();
        let mut led = StateLed::new(t0, RoomState::InMeeting);
        assert_eq!(led.poll_output(), LedOutput::Drive(true));
        assert_eq!(led.poll_output(), LedOutput::Idle);
    }

    #[test]
    fn muting_and_unmuting_switch_patterns_at_once() {
        assert_eq!(
            trace(RoomState::InMeeting, &[(1000, RoomState::Muted), (2500, RoomState::InMeeting)], 4000),
            vec![(0, true), (1600, false), (2200, true)]
        );
    }

    #[test]
    fn error_flashes_three_times_then_pauses() {
        let lit_at: Vec<u64> =
            trace(RoomState::Error, &[], 1999).into_iter().filter(|&(_, lit)| lit).map(|(t, _)| t).collect();
        assert_eq!(lit_at, vec![0, 250, 500]);
    }

    #[test]
    fn every_state_has_a_distinct_pattern() {
        let states = [RoomState::Idle, RoomState::Joining, RoomState::InMeeting, RoomState::Muted, RoomState::Error];
        for (i, a) in states.iter().enumerate() {
            assert!(!a.pattern().is_empty());
            for b in &states[i + 1..] {
                assert_ne!(a.pattern(), b.pattern(), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn a_late_caller_keeps_the_rhythm() {
        let t0 = Instant::now();
        let mut led = StateLed::new(t0, RoomState::Joining);
        assert_eq!(led.poll_output(), LedOutput::Drive(true));
        // Woken 40 ms late for the 150 ms step: the next edge is still at 300 ms.
        led.handle_timeout(t0 + ms(190));
        assert_eq!(led.poll_output(), LedOutput::Drive(false));
        assert_eq!(led.poll_output(), LedOutput::Timeout(t0 + ms(300)));
        // Asleep for 1 s: skips the missed steps instead of replaying them.
        led.handle_timeout(t0 + ms(1310));
        assert_eq!(led.poll_output(), LedOutput::Drive(true));
        assert_eq!(led.poll_output(), LedOutput::Timeout(t0 + ms(1350)));
    }

    #[test]
    fn the_same_state_again_does_not_restart_the_pattern() {
        let t0 = Instant::now();
        let mut led = StateLed::new(t0, RoomState::Idle);
        led.poll_output();
        led.set_state(t0 + ms(50), RoomState::Idle);
        assert_eq!(led.poll_output(), LedOutput::Timeout(t0 + ms(100)));
    }
}
