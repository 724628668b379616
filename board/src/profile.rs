//! Board profiles: what differs between boards, as data rather than code
//! branches, and how the running board is recognised.
//!
//! The board is recognised from the text of `/proc/device-tree/model`
//! (the DT root node's `model` property, NUL-terminated); the config can
//! name a profile instead, which always wins. [`read_model`] is the only
//! I/O here.

use crate::Error;

/// Every profile the firmware knows, in detection order.
pub const PROFILES: &[BoardProfile] = &[RASPBERRYPI4_64, RASPBERRYPI5, QEMU_VIRT];

/// Where the board's model string lives on a device-tree system.
pub const MODEL_PATH: &str = "/proc/device-tree/model";

/// Raspberry Pi 4 B, 400 and Compute Module 4 (BCM2711).
pub const RASPBERRYPI4_64: BoardProfile = BoardProfile {
    name: "raspberrypi4-64",
    models: &["Raspberry Pi 4 ", "Raspberry Pi 400 ", "Raspberry Pi Compute Module 4"],
    // The VideoCore's stateful encoder (bcm2835-codec, /dev/video11), up to 1080p30.
    video_encoder: VideoEncoder { element: "v4l2h264enc", codec: "h264", hardware: true },
    camera_driver: "uvcvideo",
    audio_card_driver: "USB-Audio",
    display_sink: "kmssink",
    // Cortex-A72 in the BCM2711 is built without the ARMv8 crypto extension.
    aes_instructions: false,
    // Header pins 11 and 13; the button closes to ground against the internal pull-up.
    mute_button: Some(GpioLine { chip_label: "pinctrl-bcm2711", offset: 17, active_low: true, pull_up: true }),
    state_led: Some(GpioLine { chip_label: "pinctrl-bcm2711", offset: 27, active_low: false, pull_up: false }),
    kernel_modules: &["bcm2835-codec"],
};

/// Raspberry Pi 5, 500 and Compute Module 5 (BCM2712; GPIO header on RP1).
pub const RASPBERRYPI5: BoardProfile = BoardProfile {
    name: "raspberrypi5",
    models: &["Raspberry Pi 5 ", "Raspberry Pi 500 ", "Raspberry Pi Compute Module 5"],
    // No hardware H.264 encoder on the Pi 5; the A76 cores run x264.
    video_encoder: VideoEncoder { element: "x264enc", codec: "h264", hardware: false },
    camera_driver: "uvcvideo",
    audio_card_driver: "USB-Audio",
    display_sink: "kmssink",
    aes_instructions: true,
    mute_button: Some(GpioLine { chip_label: "pinctrl-rp1", offset: 17, active_low: true, pull_up: true }),
    state_led: Some(GpioLine { chip_label: "pinctrl-rp1", offset: 27, active_low: false, pull_up: false }),
    kernel_modules: &[],
};

/// QEMU's `-M virt` machine, as booted by `tools/qemu-test`.
pub const QEMU_VIRT: BoardProfile = BoardProfile {
    name: "qemu-virt",
    models: &["linux,dummy-virt"],
    video_encoder: VideoEncoder { element: "x264enc", codec: "h264", hardware: false },
    camera_driver: "vivid",
    audio_card_driver: "Loopback",
    // The test guest runs with -nographic: there is no display to drive.
    display_sink: "fakevideosink",
    // Every QEMU CPU model exposes the ARMv8 AES instructions.
    aes_instructions: true,
    // QEMU's power button (QMP `system_powerdown`) pulses line 3 of the
    // PL061 high for 100 ms. The DT also lists it under gpio-keys; the test
    // image does not load that driver, so the line is free to request.
    mute_button: Some(GpioLine { chip_label: "9030000.pl061", offset: 3, active_low: false, pull_up: false }),
    state_led: None,
    kernel_modules: &["vivid", "snd-aloop"],
};

/// What one board has and how to drive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardProfile {
    /// Name used in the config and in logs (the Yocto MACHINE where there is one).
    pub name: &'static str,
    /// Prefixes of the device-tree model strings this profile covers.
    pub models: &'static [&'static str],
    /// The H.264 encoder the board should use first.
    pub video_encoder: VideoEncoder,
    /// V4L2 driver name (`VIDIOC_QUERYCAP` `driver`) of the camera to prefer.
    pub camera_driver: &'static str,
    /// ALSA card driver (`/proc/asound/cards`) of the audio device to prefer.
    pub audio_card_driver: &'static str,
    /// GStreamer element that shows the room screen.
    pub display_sink: &'static str,
    /// Whether the CPU has the ARMv8 AES instructions (else the frame
    /// encryption runs its constant-time software path).
    pub aes_instructions: bool,
    /// The mute button, if the board has one wired.
    pub mute_button: Option<GpioLine>,
    /// The state LED, if the board has one wired.
    pub state_led: Option<GpioLine>,
    /// Kernel modules the firmware needs loaded on this board.
    pub kernel_modules: &'static [&'static str],
}

/// A GStreamer encoder element and what it produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoEncoder {
    pub element: &'static str,
    pub codec: &'static str,
    pub hardware: bool,
}

/// One GPIO line, named by its chip's label (stable across boots, unlike
/// `gpiochipN` numbering) and its offset on that chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpioLine {
    pub chip_label: &'static str,
    pub offset: u32,
    /// The line reads low when the button is pressed / must be driven low to light the LED.
    pub active_low: bool,
    /// Request the SoC's internal pull-up (a button wired to ground).
    pub pull_up: bool,
}

impl BoardProfile {
    /// The profile whose model prefixes match `model`, the text of
    /// `/proc/device-tree/model` (a trailing NUL and whitespace are ignored).
    pub fn detect(model: &str) -> Result<&'static BoardProfile, Error> {
        let model = model.trim_end_matches(['\0', '\n', ' ']);
        PROFILES
            .iter()
            .find(|p| {
                p.models
                    .iter()
                    // "Raspberry Pi 4 " must not match "Raspberry Pi 400 …", hence the
                    // trailing space in prefixes; compare with one appended so that
                    // a bare model string still matches.
                    .any(|prefix| format!("{model} ").starts_with(prefix))
            })
            .ok_or_else(|| Error::UnrecognisedModel { model: model.to_owned(), known: known_names() })
    }

    /// The profile called `name` (a config setting).
    pub fn by_name(name: &str) -> Result<&'static BoardProfile, Error> {
        PROFILES
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::UnknownBoard { name: name.to_owned(), known: known_names() })
    }

    /// The board to run as: the config's choice if it names one, otherwise
    /// the one detected from the model text. An unknown name in the config
    /// is an error even when the model would be recognised, so a typo is
    /// refused at start rather than silently ignored.
    pub fn select(config_board: Option<&str>, model: Option<&str>) -> Result<&'static BoardProfile, Error> {
        match (config_board, model) {
            (Some(name), _) => Self::by_name(name),
            (None, Some(model)) => Self::detect(model),
            (None, None) => Err(Error::UnrecognisedModel { model: String::new(), known: known_names() }),
        }
    }
}

/// Reads the model text from `path` (normally [`MODEL_PATH`]).
pub fn read_model(path: &str) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::ModelUnreadable { path: path.to_owned(), source })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn known_names() -> String {
    PROFILES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_board_from_real_model_strings() {
        for (model, board) in [
            ("Raspberry Pi 4 Model B Rev 1.5\0", "raspberrypi4-64"),
            ("Raspberry Pi 400 Rev 1.0\0", "raspberrypi4-64"),
            ("Raspberry Pi Compute Module 4 Rev 1.0\0", "raspberrypi4-64"),
            ("Raspberry Pi 5 Model B Rev 1.0\0", "raspberrypi5"),
            ("Raspberry Pi Compute Module 5 Rev 1.0\0", "raspberrypi5"),
            ("Raspberry Pi 500 Rev 1.0\0", "raspberrypi5"),
            ("linux,dummy-virt\0", "qemu-virt"),
            ("linux,dummy-virt", "qemu-virt"),
        ] {
            assert_eq!(BoardProfile::detect(model).unwrap().name, board, "{model:?}");
        }
    }

    #[test]
    fn unknown_models_are_refused_with_the_model_in_the_message() {
        for model in ["Raspberry Pi 3 Model B Rev 1.2\0", "Raspberry Pi 40\0", ""] {
            let err = BoardProfile::detect(model).unwrap_err();
            assert!(matches!(err, Error::UnrecognisedModel { .. }), "{model:?}");
        }
        let msg = BoardProfile::detect("Pine64 RockPro64 v2.1\0").unwrap_err().to_string();
        assert!(msg.contains("Pine64 RockPro64 v2.1\""), "{msg}");
        assert!(msg.contains("raspberrypi5"), "{msg}");
    }

    #[test]
    fn config_override_wins_and_typos_are_refused() {
        let pi4 = "Raspberry Pi 4 Model B Rev 1.5\0";
        assert_eq!(BoardProfile::select(None, Some(pi4)).unwrap().name, "raspberrypi4-64");
        assert_eq!(BoardProfile::select(Some("raspberrypi5"), Some(pi4)).unwrap().name, "raspberrypi5");
        assert_eq!(BoardProfile::select(Some("qemu-virt"), None).unwrap().name, "qemu-virt");
        assert!(matches!(BoardProfile::select(Some("raspberrypi4"), Some(pi4)), Err(Error::UnknownBoard { .. })));
        assert!(BoardProfile::select(None, None).is_err());
    }

    #[test]
    fn profiles_carry_the_facts_the_design_states() {
        let pi4 = BoardProfile::by_name("raspberrypi4-64").unwrap();
        assert!(pi4.video_encoder.hardware && pi4.video_encoder.element == "v4l2h264enc");
        assert!(!pi4.aes_instructions);
        assert_eq!(pi4.display_sink, "kmssink");
        let pi5 = BoardProfile::by_name("raspberrypi5").unwrap();
        assert!(!pi5.video_encoder.hardware && pi5.aes_instructions);
        assert_eq!(pi5.display_sink, "kmssink");
        let virt = BoardProfile::by_name("qemu-virt").unwrap();
        assert_eq!(virt.camera_driver, "vivid");
        assert_eq!(virt.audio_card_driver, "Loopback");
        let button = virt.mute_button.unwrap();
        assert_eq!((button.chip_label, button.offset), ("9030000.pl061", 3));
        for p in PROFILES {
            assert!(p.mute_button.is_some(), "{}", p.name);
            assert_eq!(BoardProfile::by_name(p.name).unwrap(), p);
        }
    }

    #[test]
    fn read_model_reports_the_path_it_could_not_read() {
        let err = read_model("/nonexistent/cloakroom/model").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cloakroom/model"));
    }
}
