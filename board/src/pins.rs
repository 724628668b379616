//! The button and LED cores driven through embedded-hal 1.0 digital pins.
//!
//! Any [`InputPin`]/[`OutputPin`] works: the GPIO character-device lines in
//! [`crate::gpio`] on a board, a fake pin in tests. Active-low wiring is
//! handled here, from the profile's [`GpioLine::active_low`], so the cores
//! only ever see "pressed" and "lit".
//!
//! [`GpioLine::active_low`]: crate::GpioLine::active_low

use std::time::Instant;

use embedded_hal::digital::{InputPin, OutputPin, PinState};

use crate::button::{ButtonOutput, ButtonSettings, MuteButton};
use crate::led::{LedOutput, RoomState, StateLed};

/// A mute button read by sampling a pin (for pins without edge events).
#[derive(Debug)]
pub struct PolledButton<P> {
    pin: P,
    active_low: bool,
    button: MuteButton,
}

impl<P: InputPin> PolledButton<P> {
    pub fn new(pin: P, active_low: bool, settings: ButtonSettings) -> Self {
        Self { pin, active_low, button: MuteButton::new(settings) }
    }

    /// Reads the pin at `now` and feeds the level to the button. Sample at
    /// least a few times per debounce period.
    pub fn sample(&mut self, now: Instant) -> Result<(), P::Error> {
        let high = self.pin.is_high()?;
        self.button.handle_input(now, high != self.active_low);
        Ok(())
    }

    pub fn poll_output(&mut self) -> ButtonOutput {
        self.button.poll_output()
    }
}

/// The state LED on an output pin.
#[derive(Debug)]
pub struct LedDriver<P> {
    pin: P,
    active_low: bool,
    led: StateLed,
}

impl<P: OutputPin> LedDriver<P> {
    pub fn new(pin: P, active_low: bool, now: Instant, state: RoomState) -> Self {
        Self { pin, active_low, led: StateLed::new(now, state) }
    }

    pub fn set_state(&mut self, now: Instant, state: RoomState) {
        self.led.set_state(now, state);
    }

    /// Brings the pin up to date at `now`; returns when to call again
    /// (`None`: not until the state changes).
    pub fn drive(&mut self, now: Instant) -> Result<Option<Instant>, P::Error> {
        self.led.handle_timeout(now);
        loop {
            match self.led.poll_output() {
                LedOutput::Drive(lit) => self.pin.set_state(PinState::from(lit != self.active_low))?,
                LedOutput::Timeout(t) => return Ok(Some(t)),
                LedOutput::Idle => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::convert::Infallible;
    use std::rc::Rc;
    use std::time::Duration;

    use embedded_hal::digital::ErrorType;

    use super::*;
    use crate::button::ButtonEvent;

    /// An input pin whose level the test sets.
    #[derive(Clone, Default)]
    struct FakeInput(Rc<Cell<bool>>);

    impl ErrorType for FakeInput {
        type Error = Infallible;
    }

    impl InputPin for FakeInput {
        fn is_high(&mut self) -> Result<bool, Infallible> {
            Ok(self.0.get())
        }
        fn is_low(&mut self) -> Result<bool, Infallible> {
            Ok(!self.0.get())
        }
    }

    /// An output pin that records every level it is driven to.
    #[derive(Clone, Default)]
    struct FakeOutput(Rc<RefCell<Vec<bool>>>);

    impl ErrorType for FakeOutput {
        type Error = Infallible;
    }

    impl OutputPin for FakeOutput {
        fn set_low(&mut self) -> Result<(), Infallible> {
            self.0.borrow_mut().push(false);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Infallible> {
            self.0.borrow_mut().push(true);
            Ok(())
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn active_low_button_sampled_every_5ms_with_bounce_gives_one_press() {
        let level = FakeInput::default();
        level.0.set(true); // pulled up: released
        let mut button = PolledButton::new(level.clone(), true, ButtonSettings::default());
        let t0 = Instant::now();
        let mut events = Vec::new();
        for tick in 0..200u64 {
            let t = tick * 5;
            // Pressed (low) from 100 ms to 400 ms, with a bouncy leading edge.
            let pressed = match t {
                100 | 110 => true,
                105 | 115 => false,
                116..=399 => true,
                _ => false,
            };
            level.0.set(!pressed);
            button.sample(t0 + ms(t)).unwrap();
            while let ButtonOutput::Event(e) = button.poll_output() {
                events.push(e);
            }
        }
        assert_eq!(events, vec![ButtonEvent::Press { at: t0 + ms(400), held: ms(280) }]);
    }

    #[test]
    fn button_wired_active_high_is_read_as_is() {
        let level = FakeInput::default();
        let mut button = PolledButton::new(level.clone(), false, ButtonSettings::default());
        let t0 = Instant::now();
        level.0.set(true);
        button.sample(t0).unwrap();
        button.sample(t0 + ms(2000)).unwrap();
        assert_eq!(button.poll_output(), ButtonOutput::Event(ButtonEvent::LongPress { at: t0 + ms(1500) }));
    }

    #[test]
    fn led_driver_inverts_for_active_low_and_follows_the_pattern() {
        let pin = FakeOutput::default();
        let t0 = Instant::now();
        let mut led = LedDriver::new(pin.clone(), true, t0, RoomState::Joining);
        let mut now = t0;
        while let Some(next) = led.drive(now).unwrap() {
            if next > t0 + ms(600) {
                break;
            }
            now = next;
        }
        // Joining: lit 150 ms / dark 150 ms, inverted on the wire.
        assert_eq!(*pin.0.borrow(), vec![false, true, false, true, false]);
        led.set_state(now, RoomState::InMeeting);
        assert_eq!(led.drive(now).unwrap(), None);
        assert_eq!(pin.0.borrow().last(), Some(&false));
    }
}
