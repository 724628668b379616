//! Board support for cloakroom: what differs between the boards the firmware
//! runs on, and the two pieces of hardware on the table, the mute button and
//! the state LED.
//!
//! - [`profile`]: one [`BoardProfile`] per board, as data (encoder, camera,
//!   display sink, GPIO lines, AES instructions), detected from the text of
//!   `/proc/device-tree/model` or chosen by name in the config.
//! - [`button`]: debounce and long press as a pure state machine
//!   ([`MuteButton`]): inputs with the time passed in, outputs polled.
//! - [`led`]: a blink pattern per room state ([`StateLed`]), also pure.
//! - [`pins`]: the two cores driven through embedded-hal 1.0 digital pins,
//!   so any pin (a fake one in tests) works.
//! - [`gpio`]: the Linux adapter, GPIO character device lines (gpiocdev)
//!   behind the same embedded-hal traits, plus edge events with the kernel's
//!   timestamps.
#![forbid(unsafe_code)]

pub mod button;
pub mod gpio;
pub mod led;
pub mod pins;
pub mod profile;

pub use button::{ButtonEvent, ButtonOutput, ButtonSettings, MuteButton};
pub use led::{LedOutput, RoomState, StateLed};
pub use profile::{BoardProfile, GpioLine, VideoEncoder};

/// Everything that can go wrong in board support.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config names a board that has no profile.
    #[error("unknown board {name:?} in config (known boards: {known})")]
    UnknownBoard { name: String, known: String },
    /// No profile matches the device-tree model and the config names none.
    #[error("no board profile for device-tree model {model:?}; set the board in the config (known boards: {known})")]
    UnrecognisedModel { model: String, known: String },
    /// Reading the device-tree model file failed.
    #[error("cannot read the board model from {path}: {source}")]
    ModelUnreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// No GPIO chip with the label a profile names.
    #[error("no GPIO chip labelled {label:?} (found: {found})")]
    ChipNotFound { label: String, found: String },
    /// The profile has no line for this function (e.g. no LED on the board).
    #[error("board {board} has no {function} line")]
    NoLine { board: &'static str, function: &'static str },
    /// A GPIO character-device call failed.
    #[error("GPIO {what}: {source}")]
    Gpio {
        what: &'static str,
        #[source]
        source: gpiocdev::Error,
    },
    /// Reading the monotonic clock failed.
    #[error("reading CLOCK_MONOTONIC: {0}")]
    Clock(#[source] nix::Error),
}

impl embedded_hal::digital::Error for Error {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}
