//! `cloakroom-button`: watch the board's mute button and print one JSON line
//! per debounced press or long press. For bring-up on a board and for the
//! QEMU test (`tools/qemu-test`), where the host presses the button with
//! QMP `system_powerdown`.
//!
//! ```text
//! cloakroom-button [--board NAME] [--model-file PATH] [--count N] [--timeout SECONDS]
//! cloakroom-button [--board NAME] [--model-file PATH] --print-profile
//! ```
//!
//! Prints `{"event":"ready",…}` once the line is requested, then
//! `{"event":"press","held_ms":…}` / `{"event":"long_press"}` lines. Exits 0
//! after `--count` events (default: never), 2 if `--timeout` passes first,
//! 1 with a message on stderr on errors. `--print-profile` prints the
//! selected board profile as one JSON line and exits.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use cloakroom_board::gpio::EdgeButton;
use cloakroom_board::profile::{BoardProfile, MODEL_PATH, read_model};
use cloakroom_board::{ButtonEvent, ButtonSettings};

struct Args {
    board: Option<String>,
    model_file: String,
    count: Option<u64>,
    timeout: Option<Duration>,
    print_profile: bool,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cloakroom-button: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args = parse_args(std::env::args().skip(1))?;
    // The model is only needed without an override, and an unreadable file is
    // only an error then.
    let model = match args.board {
        Some(_) => None,
        None => Some(read_model(&args.model_file)?),
    };
    let profile = BoardProfile::select(args.board.as_deref(), model.as_deref())?;
    if args.print_profile {
        println!("{}", profile_json(profile));
        return Ok(ExitCode::SUCCESS);
    }
    let line =
        profile.mute_button.ok_or(cloakroom_board::Error::NoLine { board: profile.name, function: "mute button" })?;
    let mut button = EdgeButton::open(&line, ButtonSettings::default(), "cloakroom-button")?;
    let start = Instant::now();
    println!(
        "{{\"event\":\"ready\",\"board\":\"{}\",\"chip\":\"{}\",\"chip_label\":\"{}\",\"line\":{},\"active_low\":{}}}",
        profile.name,
        button.input().chip_path().display(),
        line.chip_label,
        line.offset,
        line.active_low
    );
    let deadline = args
        .timeout
        .map(|t| start + t)
        // Far enough to mean "never" without overflowing Instant arithmetic.
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 24 * 3600));
    let mut seen = 0;
    while args.count.is_none_or(|n| seen < n) {
        let Some(event) = button.next_event(deadline)? else {
            eprintln!("cloakroom-button: no button event within the timeout");
            return Ok(ExitCode::from(2));
        };
        seen += 1;
        match event {
            ButtonEvent::Press { at, held } => println!(
                "{{\"event\":\"press\",\"held_ms\":{},\"at_ms\":{}}}",
                held.as_millis(),
                at.saturating_duration_since(start).as_millis()
            ),
            ButtonEvent::LongPress { at } => {
                println!("{{\"event\":\"long_press\",\"at_ms\":{}}}", at.saturating_duration_since(start).as_millis())
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args =
        Args { board: None, model_file: MODEL_PATH.to_owned(), count: None, timeout: None, print_profile: false };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--board" => args.board = Some(value()?),
            "--model-file" => args.model_file = value()?,
            "--count" => args.count = Some(value()?.parse().map_err(|e| format!("--count: {e}"))?),
            "--timeout" => {
                let secs: f64 = value()?.parse().map_err(|e| format!("--timeout: {e}"))?;
                args.timeout = Some(Duration::try_from_secs_f64(secs).map_err(|e| format!("--timeout: {e}"))?);
            }
            "--print-profile" => args.print_profile = true,
            "-h" | "--help" => {
                return Err(
                    "usage: cloakroom-button [--board NAME] [--model-file PATH] [--count N] [--timeout SECONDS] [--print-profile]".into(),
                );
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// The profile as one JSON line (all values are fixed identifiers: no escaping needed).
fn profile_json(p: &BoardProfile) -> String {
    let line = |l: Option<cloakroom_board::GpioLine>| match l {
        Some(l) => {
            format!("{{\"chip_label\":\"{}\",\"line\":{},\"active_low\":{}}}", l.chip_label, l.offset, l.active_low)
        }
        None => "null".to_owned(),
    };
    format!(
        "{{\"board\":\"{}\",\"encoder\":\"{}\",\"hardware_encoder\":{},\"display_sink\":\"{}\",\"camera_driver\":\"{}\",\"audio_card_driver\":\"{}\",\"aes_instructions\":{},\"mute_button\":{},\"state_led\":{}}}",
        p.name,
        p.video_encoder.element,
        p.video_encoder.hardware,
        p.display_sink,
        p.camera_driver,
        p.audio_card_driver,
        p.aes_instructions,
        line(p.mute_button),
        line(p.state_led)
    )
}
