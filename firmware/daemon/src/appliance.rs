//! `cloakroomd --config FILE`: the appliance.
//!
//! Everything is fed to the room's supervisor (`cloakroom-appliance`'s pure
//! state machine behind [`SupervisedRoom`]); its outputs are carried out by
//! [`RoomRunner`]. Around it: the local HTTPS page and API, the room screen (room
//! name, pairing code, certificate fingerprint and the join-by-scan QR
//! code while idle), the board's mute button, and systemd's READY and
//! WATCHDOG notifications.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cloakroom_appliance::config::{Codec as ConfigCodec, ConfigStore, Settings};
use cloakroom_appliance::pairing::{OsRandom, Pairing};
use cloakroom_appliance::supervisor::{Input, RoomState};
use cloakroom_appliance::web::{CheckRefusal, LogBuffer, MicReading, Room as _, SupervisedRoom, WebContext, WebServer};
use cloakroom_board::BoardProfile;
use cloakroom_engine::meeting::MeetingSettings;
use cloakroom_media::Codec;
use cloakroom_media::check::{CheckError, DeviceChecks};
use cloakroom_media::devices::DeviceReport;
use cloakroom_media::ladder::VideoMode;
use cloakroom_media::layout::Canvas;
use cloakroom_media::receive::{AudioOutput, ReceiveSettings};
use cloakroom_media::screen::{DisplayOutput, IdleScreen, IdleScreenSettings};
use cloakroom_media::send::{AudioSource, TestPattern, VideoSource};
use zeroize::Zeroizing;

use crate::notify;
use crate::room::RoomRunner;

/// How often the room screen looks for a new scan token or pairing code.
const SCREEN_REFRESH: Duration = Duration::from_secs(2);
/// How long a leave may take at shutdown.
const SHUTDOWN_LEAVE: Duration = Duration::from_secs(6);

pub async fn run(config_path: &Path, print_pairing: bool, logs: LogBuffer, started: Instant) -> Result<()> {
    let store = ConfigStore::load(config_path).with_context(|| format!("config file {}", config_path.display()))?;
    let settings = store.settings().clone();
    let board = select_board(&settings.board_profile)?;
    tracing::info!(
        board = board.map_or("none (no device tree)", |b| b.name),
        aes = cloakroom_frame::backend::aes_backend().as_str(),
        gcm = cloakroom_frame::backend::GcmLibrary::preferred().as_str(),
        "aes backend"
    );
    let devices = tokio::task::spawn_blocking(DeviceReport::discover).await.context("device discovery")?;
    let pairing = Pairing::new(Box::new(OsRandom::new()?), settings.admin_password.clone());
    let pairing = Arc::new(Mutex::new(pairing));
    let config = Arc::new(Mutex::new(store));
    let (room, mut outputs) = SupervisedRoom::new();
    room.handle_input(Input::Devices(serde_json::to_value(&devices).unwrap_or_default()));
    let (restart_tx, mut restart_rx) = tokio::sync::mpsc::unbounded_channel();
    let camera_hold = crate::qr_scan::CameraHold::default();
    let checks = Arc::new(RoomChecks {
        checks: DeviceChecks::new(),
        config: Arc::clone(&config),
        devices: devices.clone(),
        restart: restart_tx,
        qr_hold: camera_hold.clone(),
    });
    room.set_device_checks(checks.clone());
    let web = WebServer::start(WebContext {
        room: room.clone(),
        pairing: Arc::clone(&pairing),
        config: Arc::clone(&config),
        logs,
    })
    .await
    .context("start the web page")?;
    let origin = page_origin(web.https_addr);
    tracing::info!(url = %format!("{origin}/"), fingerprint = %web.fingerprint, "web page ready");
    cloakroom_engine::status::emit(format_args!("url {origin}/"));
    cloakroom_engine::status::emit(format_args!("fingerprint {}", web.fingerprint));

    let mut screen = RoomScreen::new(board, origin.clone(), web.fingerprint.clone(), print_pairing);
    screen.refresh(&pairing, &settings.room_name, None);

    if let Some(line) = board.and_then(|b| b.mute_button) {
        spawn_button(line, room.clone());
    }
    if let Some(line) = board.and_then(|b| b.state_led) {
        spawn_led(line, room.clone());
    }
    notify::notify("READY=1\nSTATUS=idle");
    tracing::info!(ms = started.elapsed().as_millis() as u64, "ready");

    let (mut runner, mut ended) = RoomRunner::new(room.clone(), started);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let watchdog_every = notify::watchdog_interval();
    let mut watchdog = tokio::time::interval(watchdog_every.unwrap_or(Duration::from_secs(3600)));
    let mut screen_tick = tokio::time::interval(SCREEN_REFRESH);
    let (mut qr, mut qr_codes) = crate::qr_scan::QrScan::new(camera_hold);
    let mut qr_tick = tokio::time::interval(crate::qr_scan::TICK);
    let mut qr_shown: Option<String> = None;
    let mut last_state = RoomState::Idle;
    let mut restart = false;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => { tracing::info!("Ctrl-C: stopping"); break; }
            _ = sigterm.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            Some(()) = restart_rx.recv() => { tracing::info!("restarting (asked for on the admin page)"); restart = true; break; }
            Some(output) = outputs.recv() => {
                if matches!(output, cloakroom_appliance::supervisor::Output::StartJoin(_)) {
                    screen.hide();
                    // The meeting takes the camera and microphone: the page's checks let go first.
                    checks.checks.set_meeting(true);
                }
                runner.handle(output, || {
                    let current = lock(&config).settings().clone();
                    meeting_settings(&current, &devices, board)
                });
            }
            Some(generation) = ended.recv() => runner.finished(generation),
            Some(code) = qr_codes.recv() => qr.handle_code(&code, &crate::qr_scan::rules(lock(&config).settings()), &room),
            _ = qr_tick.tick() => {
                let status = room.status();
                let idle = status.state == RoomState::Idle && !runner.is_running();
                let camera = lock(&config).settings().camera.clone();
                let first_camera = devices.cameras.first().map(|c| Path::new(&c.path));
                let preview = checks.checks.running().0;
                qr.tick(&crate::qr_scan::Situation { idle, preview, camera: &camera, first_camera }, &room);
                if qr.banner() != qr_shown.as_deref() && idle {
                    qr_shown = qr.banner().map(str::to_owned);
                    let name = lock(&config).settings().room_name.clone();
                    screen.refresh(&pairing, &name, qr.banner().or(status.problem().as_deref()));
                }
            }
            _ = watchdog.tick(), if watchdog_every.is_some() => notify::notify("WATCHDOG=1"),
            _ = screen_tick.tick() => {
                checks.checks.set_meeting(runner.is_running());
                checks.checks.tick(Instant::now());
                let status = room.status();
                if status.state != last_state {
                    last_state = status.state;
                    notify::notify(&format!("STATUS={}", state_name(status.state)));
                }
                if !runner.is_running() && matches!(status.state, RoomState::Idle | RoomState::Reconnecting | RoomState::Error) {
                    let name = lock(&config).settings().room_name.clone();
                    // Between attempts the screen says why the room is not in its meeting.
                    screen.refresh(&pairing, &name, qr.banner().or(status.problem().as_deref()));
                }
            }
        }
    }

    notify::notify("STOPPING=1");
    screen.hide();
    runner.shutdown(SHUTDOWN_LEAVE).await;
    tracing::info!("stopped");
    if restart {
        // Not 0, so that systemd's Restart=on-failure starts the daemon again.
        std::process::exit(cloakroom_appliance::web::devices::RESTART_EXIT_CODE);
    }
    Ok(())
}

/// The admin page's device checks on this room's configured devices
/// (`cloakroom_media::check` does the work).
#[derive(Debug)]
struct RoomChecks {
    checks: DeviceChecks,
    config: Arc<Mutex<ConfigStore>>,
    devices: DeviceReport,
    restart: tokio::sync::mpsc::UnboundedSender<()>,
    /// The QR scanner lets go of the camera for the preview.
    qr_hold: crate::qr_scan::CameraHold,
}

impl cloakroom_appliance::web::DeviceChecks for RoomChecks {
    fn preview_jpeg(&self) -> Result<Vec<u8>, CheckRefusal> {
        let camera = match lock(&self.config).settings().camera.as_str() {
            "test" => VideoSource::Test { pattern: TestPattern::Ball },
            "auto" => match self.devices.cameras.first() {
                Some(c) => VideoSource::Camera { device: c.path.clone().into() },
                None => {
                    return Err(CheckRefusal::Unavailable(
                        "no camera: the camera is \"auto\" and none was found".into(),
                    ));
                }
            },
            path => VideoSource::Camera { device: path.into() },
        };
        self.qr_hold.release_for_preview();
        self.checks.snapshot(&camera).map_err(check_refusal)
    }

    fn mic_level(&self) -> Result<MicReading, CheckRefusal> {
        let microphone = match lock(&self.config).settings().microphone.as_str() {
            "test" => AudioSource::Test,
            "auto" => match self.devices.microphones.first() {
                Some(m) => AudioSource::Microphone { device: m.id.clone() },
                None => {
                    return Err(CheckRefusal::Unavailable(
                        "no microphone: the microphone is \"auto\" and none was found".into(),
                    ));
                }
            },
            device => AudioSource::Microphone { device: device.to_owned() },
        };
        let level = self.checks.mic_level(&microphone).map_err(check_refusal)?;
        Ok(MicReading { peak_db: level.peak_db, rms_db: level.rms_db })
    }

    fn test_tone(&self) -> Result<(), CheckRefusal> {
        let speaker = match lock(&self.config).settings().speaker.as_str() {
            "none" => return Err(CheckRefusal::Unavailable("no speaker: the speaker is set to \"none\"".into())),
            "auto" => match self.devices.speakers.first() {
                Some(s) => s.id.clone(),
                None => {
                    return Err(CheckRefusal::Unavailable(
                        "no speaker: the speaker is \"auto\" and none was found".into(),
                    ));
                }
            },
            device => device.to_owned(),
        };
        self.checks.play_tone(&speaker).map_err(check_refusal)
    }

    fn restart(&self) {
        let _ = self.restart.send(());
    }
}

fn check_refusal(e: CheckError) -> CheckRefusal {
    match e {
        CheckError::Busy(m) => CheckRefusal::Busy(m),
        CheckError::Unavailable(m) => CheckRefusal::Unavailable(m),
        // A configured device that is not there: nothing to check, not a fault of the check.
        CheckError::Media(
            e @ (cloakroom_media::MediaError::CameraMissing { .. }
            | cloakroom_media::MediaError::MicrophoneMissing { .. }),
        ) => CheckRefusal::Unavailable(e.to_string()),
        other => {
            tracing::warn!(error = %cloakroom_engine::Chain(&other), "device check");
            CheckRefusal::Failed(other.to_string())
        }
    }
}

/// The meeting's media settings from the config and the devices found.
/// `auto` takes the first device discovery found; `test` the test source.
fn meeting_settings(
    settings: &Settings,
    devices: &DeviceReport,
    board: Option<&'static BoardProfile>,
) -> Result<MeetingSettings> {
    let video = match settings.camera.as_str() {
        "auto" => devices.cameras.first().map(|c| c.path.clone()).context(
            "no camera: devices.camera is \"auto\" and no V4L2 camera was found (plug one in, or name one in the settings)",
        )?,
        // A still picture is a camera for the QR scanner's tests (qr_scan.rs); meetings send
        // the test picture then. TODO: send the picture itself (a `send::VideoSource` for it).
        still if still.starts_with("image:") => "test".to_owned(),
        other => other.to_owned(),
    };
    let audio = match settings.microphone.as_str() {
        "auto" => devices
            .microphones
            .first()
            .map(|m| m.id.clone())
            .context("no microphone: devices.microphone is \"auto\" and no ALSA capture device was found")?,
        other => other.to_owned(),
    };
    let speaker = match settings.speaker.as_str() {
        "none" => AudioOutput::Discard,
        "auto" => match devices.speakers.first() {
            Some(s) => AudioOutput::Alsa { device: s.id.clone() },
            None => {
                tracing::warn!("no speaker found: the meeting's sound is discarded");
                AudioOutput::Discard
            }
        },
        other => AudioOutput::Alsa { device: other.to_owned() },
    };
    let mode = VideoMode::new(settings.resolution.width, settings.resolution.height, settings.framerate)
        .context("video.resolution / video.framerate")?;
    Ok(MeetingSettings {
        codec: match settings.codec {
            ConfigCodec::H264 => Codec::H264,
            _ => Codec::Vp8,
        },
        video,
        audio,
        mode,
        name: settings.room_name.clone(),
        receive: ReceiveSettings {
            canvas: screen_canvas(board),
            framerate: 15,
            display: display_output(board),
            speaker,
            self_view: false,
            // Set from the link when the meeting starts.
            encrypted: true,
        },
        status_line: None,
    })
}

/// The board from the config, or detected; `None` on a machine without a
/// device tree (a PC running the demo or the tests).
fn select_board(configured: &str) -> Result<Option<&'static BoardProfile>> {
    if configured != "auto" {
        return Ok(Some(BoardProfile::by_name(configured)?));
    }
    match cloakroom_board::profile::read_model(cloakroom_board::profile::MODEL_PATH) {
        Ok(model) => Ok(Some(BoardProfile::select(None, Some(&model))?)),
        Err(_) => Ok(None),
    }
}

fn display_output(board: Option<&BoardProfile>) -> DisplayOutput {
    match board.map(|b| b.display_sink) {
        Some("kmssink") => DisplayOutput::Kms,
        _ => DisplayOutput::Snapshots,
    }
}

fn screen_canvas(board: Option<&BoardProfile>) -> Canvas {
    match display_output(board) {
        DisplayOutput::Kms => Canvas { width: 1280, height: 720 },
        _ => Canvas { width: 640, height: 360 },
    }
}

/// `https://<address people can reach>:<port>`: the listening address, or
/// for a wildcard bind the address of the interface with the default route.
fn page_origin(addr: SocketAddr) -> String {
    let ip =
        if addr.ip().is_unspecified() { primary_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)) } else { addr.ip() };
    let host = match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    if addr.port() == 443 { format!("https://{host}") } else { format!("https://{host}:{}", addr.port()) }
}

/// The source address the kernel would use towards the outside (no packet is sent).
fn primary_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

fn state_name(state: RoomState) -> &'static str {
    match state {
        RoomState::Idle => "idle",
        RoomState::Joining => "joining",
        RoomState::InMeeting => "in meeting",
        RoomState::Leaving => "leaving",
        RoomState::Reconnecting => "reconnecting",
        RoomState::Error => "error",
    }
}

/// The room screen while no meeting is shown: room name, pairing code,
/// certificate fingerprint and the join-by-scan QR code. Rebuilt when the
/// scan token or the pairing code changes (both are single use).
struct RoomScreen {
    board: Option<&'static BoardProfile>,
    origin: String,
    fingerprint: String,
    print: bool,
    /// Pairing code, scan token and the text shown with them.
    shown: Option<(Zeroizing<String>, Zeroizing<String>, String)>,
    screen: Option<IdleScreen>,
    failed: bool,
}

impl RoomScreen {
    fn new(board: Option<&'static BoardProfile>, origin: String, fingerprint: String, print: bool) -> Self {
        Self { board, origin, fingerprint, print, shown: None, screen: None, failed: false }
    }

    /// Shows the current code and token (restarting the screen if they or
    /// the name changed) and `problem` on its status banner.
    fn refresh(&mut self, pairing: &Mutex<Pairing>, room_name: &str, problem: Option<&str>) {
        let (code, token) = {
            let mut p = pairing.lock().unwrap_or_else(PoisonError::into_inner);
            let token = Zeroizing::new(p.join_token(Instant::now()).expose().to_owned());
            (Zeroizing::new(p.code(Instant::now()).expose().to_owned()), token)
        };
        let unchanged = self.shown.as_ref().is_some_and(|(c, t, n)| *c == code && *t == token && n == room_name);
        // Shown already, or failed with this very content: only the banner may change.
        if unchanged && (self.screen.is_some() || self.failed) {
            self.show_problem(problem);
            return;
        }
        let code_changed = self.shown.as_ref().is_none_or(|(c, _, _)| *c != code);
        let token_changed = self.shown.as_ref().is_none_or(|(_, t, _)| *t != token);
        if self.print && code_changed {
            cloakroom_engine::status::emit(format_args!("code {}", code.as_str()));
        }
        if self.print && token_changed {
            cloakroom_engine::status::emit(format_args!("join-path /join#t={}", token.as_str()));
        }
        let short = self.fingerprint.split(':').take(8).collect::<Vec<_>>().join(":");
        let text = format!("{room_name}\npair: {}   cert: {short}…", code.as_str());
        let link = Zeroizing::new(format!("{}/join#t={}", self.origin, token.as_str()));
        self.screen = None; // one pipeline on the display at a time
        let settings = IdleScreenSettings {
            room_name: text,
            link: link.to_string(),
            canvas: screen_canvas(self.board),
            framerate: 5,
            display: display_output(self.board),
        };
        match IdleScreen::start(&settings) {
            Ok(screen) => {
                self.screen = Some(screen);
                self.failed = false;
                self.show_problem(problem);
            }
            Err(e) => {
                if !self.failed {
                    tracing::warn!(error = %cloakroom_engine::Chain(&e), "room screen");
                }
                self.failed = true;
            }
        }
        self.shown = Some((code, token, room_name.to_owned()));
    }

    /// Puts `problem` on the screen's status banner (or clears it).
    fn show_problem(&mut self, problem: Option<&str>) {
        if let Some(screen) = self.screen.as_mut() {
            if let Err(e) = screen.set_status(problem) {
                tracing::warn!(error = %cloakroom_engine::Chain(&e), "room screen status");
            }
        }
    }

    /// Frees the display for the meeting.
    fn hide(&mut self) {
        self.screen = None;
        self.shown = None;
    }
}

/// Reads the board's mute button on its own thread; a press toggles mute,
/// a long press leaves the meeting.
fn spawn_button(line: cloakroom_board::GpioLine, room: Arc<SupervisedRoom>) {
    let spawned = std::thread::Builder::new().name("mute-button".into()).spawn(move || {
        let settings = cloakroom_board::button::ButtonSettings::default();
        let mut button = match cloakroom_board::gpio::EdgeButton::open(&line, settings, "cloakroomd") {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %cloakroom_engine::Chain(&e), chip = line.chip_label, line = line.offset, "mute button unavailable");
                return;
            }
        };
        tracing::info!(chip = line.chip_label, line = line.offset, "mute button ready");
        loop {
            match button.next_event(Instant::now() + Duration::from_secs(60)) {
                Ok(Some(cloakroom_board::button::ButtonEvent::Press { held, .. })) => {
                    tracing::info!(held_ms = held.as_millis() as u64, "mute button pressed");
                    // During a join-by-QR countdown the button stops it instead of muting.
                    let qr = cloakroom_appliance::qr_join::CancelledBy::Button;
                    if !cloakroom_appliance::web::qr::COUNTDOWN.request_cancel(qr) {
                        room.handle_input(Input::ToggleMute);
                    }
                }
                Ok(Some(cloakroom_board::button::ButtonEvent::LongPress { .. })) => {
                    tracing::info!("mute button held: leaving the meeting");
                    room.handle_input(Input::Leave);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %cloakroom_engine::Chain(&e), "mute button stopped");
                    return;
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %cloakroom_engine::Chain(&e), "mute button thread");
    }
}

/// Drives the board's state LED: a pattern per room state (board/README.md).
fn spawn_led(line: cloakroom_board::GpioLine, room: Arc<SupervisedRoom>) {
    let spawned = std::thread::Builder::new().name("state-led".into()).spawn(move || {
        let pin = match cloakroom_board::gpio::GpioOutput::open(&line, "cloakroomd") {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %cloakroom_engine::Chain(&e), chip = line.chip_label, line = line.offset, "state LED unavailable");
                return;
            }
        };
        let led_state = |room: &SupervisedRoom| {
            let s = room.status();
            led_pattern(s.state, s.muted)
        };
        let mut state = led_state(&room);
        let mut led = cloakroom_board::pins::LedDriver::new(pin, line.active_low, Instant::now(), state);
        let mut next: Option<Instant> = None;
        loop {
            // The state is looked at every 100 ms; the pattern's own steps may come sooner.
            let now = Instant::now();
            let wake = next.map_or(now + Duration::from_millis(100), |t| t.min(now + Duration::from_millis(100)));
            std::thread::sleep(wake.saturating_duration_since(now));
            let now = Instant::now();
            let current = led_state(&room);
            if current != state {
                state = current;
                led.set_state(now, state);
            }
            match led.drive(now) {
                Ok(n) => next = n,
                Err(e) => {
                    tracing::warn!(error = %cloakroom_engine::Chain(&e), "state LED stopped");
                    return;
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %cloakroom_engine::Chain(&e), "state LED thread");
    }
}

fn led_pattern(state: RoomState, muted: bool) -> cloakroom_board::RoomState {
    use cloakroom_board::RoomState as Led;
    match state {
        RoomState::Idle | RoomState::Leaving => Led::Idle,
        RoomState::Joining | RoomState::Reconnecting => Led::Joining,
        RoomState::InMeeting if muted => Led::Muted,
        RoomState::InMeeting => Led::InMeeting,
        RoomState::Error => Led::Error,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_checks_say_which_device_is_missing() {
        use cloakroom_appliance::web::DeviceChecks as _;
        let dir = std::env::temp_dir().join(format!("cloakroomd-checks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("cloakroom.toml");
        let state = dir.join("state");
        let config = |devices: &str| {
            std::fs::write(&path, format!("[devices]\n{devices}\n[paths]\nstate_dir = \"{}\"\n", state.display()))
                .expect("config");
            Arc::new(Mutex::new(ConfigStore::load(&path).expect("config loads")))
        };
        let checks = |devices: &str| {
            let (restart, _) = tokio::sync::mpsc::unbounded_channel();
            RoomChecks {
                checks: DeviceChecks::new(),
                config: config(devices),
                devices: DeviceReport::default(),
                restart,
                qr_hold: Default::default(),
            }
        };
        let none = checks("camera = \"auto\"\nmicrophone = \"auto\"\nspeaker = \"none\"");
        assert_eq!(
            none.preview_jpeg(),
            Err(CheckRefusal::Unavailable("no camera: the camera is \"auto\" and none was found".into()))
        );
        assert_eq!(
            none.mic_level(),
            Err(CheckRefusal::Unavailable("no microphone: the microphone is \"auto\" and none was found".into()))
        );
        assert_eq!(
            none.test_tone(),
            Err(CheckRefusal::Unavailable("no speaker: the speaker is set to \"none\"".into()))
        );
        let auto = checks("speaker = \"auto\"");
        assert_eq!(
            auto.test_tone(),
            Err(CheckRefusal::Unavailable("no speaker: the speaker is \"auto\" and none was found".into()))
        );
        // A named camera that is not there.
        let missing = checks("camera = \"/dev/video-cloakroom-none\"");
        assert_eq!(
            missing.preview_jpeg(),
            Err(CheckRefusal::Unavailable("camera /dev/video-cloakroom-none is not present".into()))
        );
        let test = checks("camera = \"test\"\nmicrophone = \"test\"");
        assert_eq!(&test.preview_jpeg().expect("the test picture")[..2], &[0xFF, 0xD8]);
        assert!(test.mic_level().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn led_shows_mute_only_in_a_meeting() {
        use cloakroom_board::RoomState as Led;
        assert_eq!(led_pattern(RoomState::InMeeting, true), Led::Muted);
        assert_eq!(led_pattern(RoomState::InMeeting, false), Led::InMeeting);
        assert_eq!(led_pattern(RoomState::Idle, true), Led::Idle);
        assert_eq!(led_pattern(RoomState::Error, false), Led::Error);
    }

    #[test]
    fn origin_for_a_wildcard_bind_is_a_reachable_address() {
        let o = page_origin("127.0.0.1:8443".parse().expect("addr"));
        assert_eq!(o, "https://127.0.0.1:8443");
        assert_eq!(page_origin("10.0.0.5:443".parse().expect("addr")), "https://10.0.0.5");
        let wildcard = page_origin("0.0.0.0:8443".parse().expect("addr"));
        assert!(!wildcard.contains("0.0.0.0"), "{wildcard}");
        assert!(wildcard.ends_with(":8443"));
    }

    #[test]
    fn missing_devices_are_named_in_the_error() {
        let file = cloakroom_appliance::config::parse_config("[devices]\ncamera = \"auto\"\n").expect("config");
        let settings = Settings::from_file(&file).expect("settings");
        let err = meeting_settings(&settings, &DeviceReport::default(), None).expect_err("no camera");
        assert!(format!("{err:#}").contains("no camera"), "{err:#}");
        let file = cloakroom_appliance::config::parse_config(
            "[devices]\ncamera = \"test\"\nmicrophone = \"test\"\nspeaker = \"none\"\n[video]\nresolution = \"320x240\"\nframerate = 15\n",
        )
        .expect("config");
        let settings = Settings::from_file(&file).expect("settings");
        let m = meeting_settings(&settings, &DeviceReport::default(), None).expect("test sources");
        assert_eq!((m.video.as_str(), m.audio.as_str()), ("test", "test"));
        assert_eq!(m.receive.speaker, AudioOutput::Discard);
        assert_eq!((m.mode.width, m.mode.height, m.mode.framerate), (320, 240, 15));
    }
}
