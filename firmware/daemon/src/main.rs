//! `cloakroomd`: the room's daemon. Two ways to run it:
//!
//! ```text
//! cloakroomd --config /etc/cloakroom/cloakroom.toml [--print-pairing]
//! cloakroomd --join 'janus+ws://host:8188/?room=1234#e2ee=…' [--video test|/dev/videoN]
//!            [--audio test|hw:N] [--codec vp8|h264]
//! ```
//!
//! With `--config` it is the appliance ([`appliance`]): the local HTTPS page
//! with pairing and join-by-scan, the room's supervisor, the room screen,
//! the mute button, systemd notifications; it joins when asked through the
//! page or the API. With `--join` it joins one meeting from the command line
//! and runs until Ctrl-C or SIGTERM.
//!
//! Both run the room's supervisor ([`room`]), which starts meetings with
//! `cloakroom-engine` and alone decides on retries. The daemon itself is
//! thin: arguments, the appliance's event loop, the room screen, board I/O,
//! systemd notifications and logs (docs/ARCHITECTURE.md).
//!
//! Logs go to stderr (tracing). The key is never logged: the link is only
//! ever shown through `MeetingLink`'s redacting `Display`.
#![forbid(unsafe_code)]

mod appliance;
mod harden;
mod logs;
mod notify;
mod qr_scan;
mod room;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use cloakroom_appliance::supervisor::{Input, RoomState};
use cloakroom_appliance::web::{Room as _, SupervisedRoom};
use cloakroom_engine::meeting::MeetingSettings;
use cloakroom_media::Codec;
use cloakroom_media::ladder::VideoMode;
use cloakroom_media::layout::Canvas;
use cloakroom_media::receive::{AudioOutput, ReceiveSettings};
use cloakroom_media::screen::DisplayOutput;
use cloakroom_meeting::MeetingLink;

use crate::room::RoomRunner;

/// How long leaving may take after Ctrl-C or SIGTERM before the daemon exits anyway.
const LEAVE_LIMIT: Duration = Duration::from_secs(8);
/// How long background work may go on once the daemon is done.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Parser, Debug)]
#[command(name = "cloakroomd", version, about = "The cloakroom room daemon: end-to-end encrypted meetings")]
#[command(group(clap::ArgGroup::new("run_as").required(true).args(["join", "config"])))]
struct Cli {
    /// Run as the appliance with this config file (web page, pairing, join by scan).
    #[arg(long)]
    config: Option<PathBuf>,
    /// With --config: print the pairing code and the scan link's path on
    /// stdout too (demo and tests; the room screen always shows them).
    #[arg(long, conflicts_with = "join")]
    print_pairing: bool,
    /// Join this meeting (`janus+wss://host/path?room=ID#e2ee=KEY`) and stay
    /// until Ctrl-C, or `-` to read the link from stdin (keeps the key out of
    /// the process list).
    #[arg(long)]
    join: Option<String>,
    /// `test` (a moving test picture) or a V4L2 camera such as /dev/video0.
    #[arg(long, default_value = "test")]
    video: String,
    /// `test` (a tone) or an ALSA capture device such as hw:1.
    #[arg(long, default_value = "test")]
    audio: String,
    /// Video codec: vp8 (jitsi format) or h264 (h264 format).
    #[arg(long, value_enum, default_value_t = CodecArg::Vp8)]
    codec: CodecArg,
    /// Our display name in the room (the room's name).
    #[arg(long, default_value = "cloakroom")]
    name: String,
    /// Sent video size and rate, WxH@FPS.
    #[arg(long, default_value = "640x480@20")]
    mode: String,
    /// Where remote video goes: snapshots (headless), auto, kms.
    #[arg(long, value_enum, default_value_t = DisplayArg::Snapshots)]
    display: DisplayArg,
    /// Room screen size, WxH.
    #[arg(long, default_value = "640x360")]
    canvas: String,
    /// `discard` or an ALSA playback device.
    #[arg(long, default_value = "discard")]
    speaker: String,
    /// Interval of the JSON status line on stdout, ms (0: none).
    #[arg(long, default_value_t = 1000)]
    status_interval_ms: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CodecArg {
    Vp8,
    H264,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DisplayArg {
    Snapshots,
    Auto,
    Kms,
}

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = Cli::parse();
    let logs = logs::init();
    harden::disable_core_dumps();
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")
        .and_then(|runtime| {
            let result = runtime.block_on(async {
                match (&cli.config, &cli.join) {
                    (Some(config), _) => appliance::run(config, cli.print_pairing, logs, started).await,
                    (None, Some(join)) => join_from_command_line(&cli, join, started).await,
                    (None, None) => bail!("give --config FILE or --join LINK"),
                }
            });
            // Work still running (a peer connection closing, a pipeline
            // stopping) gets a moment, not a veto over exiting.
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
            result
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line a person can act on, in the journal and on the terminal.
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--join`: one meeting, until Ctrl-C or SIGTERM. The same supervisor as
/// the appliance's retries a lost meeting with back-off; a failure retrying
/// cannot fix (no such room) ends the daemon with the reason.
async fn join_from_command_line(cli: &Cli, join: &str, started: Instant) -> Result<()> {
    let link_text = if join == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("read the link from stdin")?;
        s.trim().to_owned()
    } else {
        join.to_owned()
    };
    let link = MeetingLink::parse(&link_text).context("the --join link")?;
    drop(link_text);
    let settings = meeting_settings(cli)?;
    let (room, mut outputs) = SupervisedRoom::new();
    let (mut runner, mut ended) = RoomRunner::new(room.clone(), started);
    room.handle_input(Input::Join(link));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut stopping = false;
    let leave_limit = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(leave_limit);
    let mut last_error = None;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c(), if !stopping => {
                tracing::info!("Ctrl-C: leaving");
                stopping = true;
                leave_limit.as_mut().reset(tokio::time::Instant::now() + LEAVE_LIMIT);
                room.handle_input(Input::Leave);
            }
            _ = sigterm.recv(), if !stopping => {
                tracing::info!("SIGTERM: leaving");
                stopping = true;
                leave_limit.as_mut().reset(tokio::time::Instant::now() + LEAVE_LIMIT);
                room.handle_input(Input::Leave);
            }
            () = &mut leave_limit, if stopping => {
                tracing::warn!(seconds = LEAVE_LIMIT.as_secs(), "the meeting did not end in time: exiting anyway");
                return Ok(());
            }
            Some(output) = outputs.recv() => runner.handle(output, || Ok(settings.clone())),
            Some(generation) = ended.recv() => runner.finished(generation),
        }
        let status = room.status();
        match status.state {
            RoomState::Idle if !runner.is_running() => {
                tracing::info!("left the meeting");
                return Ok(());
            }
            RoomState::Error if status.retry_in_ms.is_none() => {
                bail!("could not join: {}", status.error.unwrap_or_default());
            }
            RoomState::Reconnecting if status.error != last_error => {
                // Between meetings there is no meeting to print a status line: say why.
                let line = serde_json::json!({
                    "event": "status",
                    "state": format!("reconnecting: {}", status.error.as_deref().unwrap_or_default()),
                    "attempts": status.attempts,
                    "retry_in_ms": status.retry_in_ms,
                });
                cloakroom_engine::status::emit(line);
                last_error = status.error;
            }
            _ => {}
        }
    }
}

/// The meeting settings from the command line.
fn meeting_settings(cli: &Cli) -> Result<MeetingSettings> {
    let (cw, ch) = parse_size(&cli.canvas)?;
    Ok(MeetingSettings {
        codec: match cli.codec {
            CodecArg::Vp8 => Codec::Vp8,
            CodecArg::H264 => Codec::H264,
        },
        video: cli.video.clone(),
        audio: cli.audio.clone(),
        mode: parse_mode(&cli.mode)?,
        name: cli.name.clone(),
        receive: ReceiveSettings {
            canvas: Canvas { width: cw, height: ch },
            framerate: 15,
            display: match cli.display {
                DisplayArg::Snapshots => DisplayOutput::Snapshots,
                DisplayArg::Auto => DisplayOutput::Auto,
                DisplayArg::Kms => DisplayOutput::Kms,
            },
            speaker: if cli.speaker == "discard" {
                AudioOutput::Discard
            } else {
                AudioOutput::Alsa { device: cli.speaker.clone() }
            },
            self_view: false,
            // Set from the link when the meeting starts.
            encrypted: true,
        },
        status_line: (cli.status_interval_ms > 0).then(|| Duration::from_millis(cli.status_interval_ms)),
    })
}

fn parse_mode(s: &str) -> Result<VideoMode> {
    let (size, fps) = s.split_once('@').context("--mode is WxH@FPS")?;
    let (w, h) = parse_size(size)?;
    let fps: u32 = fps.parse().context("--mode frame rate")?;
    Ok(VideoMode::new(u32::try_from(w)?, u32::try_from(h)?, fps)?)
}

fn parse_size(s: &str) -> Result<(i32, i32)> {
    let (w, h) = s.split_once('x').context("a size is WxH")?;
    Ok((w.parse().context("width")?, h.parse().context("height")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mode_and_size() {
        let m = parse_mode("640x480@20").expect("mode");
        assert_eq!((m.width, m.height, m.framerate), (640, 480, 20));
        assert!(parse_mode("640x480").is_err());
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn config_and_join_are_exclusive_and_one_is_needed() {
        assert!(Cli::try_parse_from(["cloakroomd"]).is_err());
        assert!(Cli::try_parse_from(["cloakroomd", "--config", "a.toml", "--join", "-"]).is_err());
        assert!(Cli::try_parse_from(["cloakroomd", "--print-pairing", "--join", "-"]).is_err());
        let cli = Cli::try_parse_from(["cloakroomd", "--config", "a.toml", "--print-pairing"]).expect("config mode");
        assert!(cli.print_pairing);
    }
}
