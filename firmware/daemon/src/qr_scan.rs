//! The appliance's join by QR code held up to the camera (issue 17): the
//! thin adapter between the scanner (`cloakroom_media::qr`), the decision
//! and countdown (`cloakroom_appliance::qr_join`), the room and the screen.
//!
//! The scanner runs while the room is idle, its camera is a real one or a
//! still picture (`image:PATH`), and the admin page's preview does not hold
//! the camera. The test picture (`camera = "test"`) holds no code: nothing
//! is scanned then. What happens is logged and printed as status lines
//! (`qr counting <link without key>`, `qr refused <reason>`, `qr cancelled
//! <by>`, `qr ignored`, `qr join`, `qr banner <text>`).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cloakroom_appliance::qr_join::{CancelledBy, JoinRules, QrEvent, QrJoin, QrOutput};
use cloakroom_appliance::web::Room as _;
use cloakroom_appliance::web::SupervisedRoom;
use cloakroom_appliance::web::qr::COUNTDOWN;
use cloakroom_media::qr::{QrScanner, ScanSource};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

/// How often the scanner's situation and the countdown are looked at.
pub const TICK: Duration = Duration::from_millis(250);
/// How long after a failed start the scanner is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// How long the scanner stays off after the admin page asked for a
/// preview: the preview's pipeline runs until `IDLE_STOP` after its last
/// request, and a camera is opened by one pipeline at a time.
const PREVIEW_HOLD: Duration = Duration::from_secs(cloakroom_media::check::IDLE_STOP.as_secs() + 2);

/// The scanner's hold on the camera, shared with the admin page's preview
/// (`RoomChecks::preview_jpeg`), which takes the camera from it.
#[derive(Clone, Debug, Default)]
pub struct CameraHold(Arc<Mutex<Hold>>);

#[derive(Debug, Default)]
struct Hold {
    scanner: Option<QrScanner>,
    preview_until: Option<Instant>,
}

impl CameraHold {
    /// The preview wants the camera: the scanner lets go of it now (its
    /// pipeline stopped before this returns) and stays off a while.
    pub fn release_for_preview(&self) {
        let mut hold = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        hold.preview_until = Some(Instant::now() + PREVIEW_HOLD);
        if hold.scanner.take().is_some() {
            tracing::info!("QR scanning paused: the admin page's preview takes the camera");
        }
    }
}

/// What the camera has read, as the scanner's thread hands it over.
pub type Codes = mpsc::UnboundedReceiver<Zeroizing<String>>;

/// The join rules of the room's settings, as for a pasted link.
pub fn rules(settings: &cloakroom_appliance::config::Settings) -> JoinRules {
    JoinRules { require_key: settings.require_key, plain_ws_hosts: settings.plain_ws_hosts.clone() }
}

/// The scanner while it is wanted, and the countdown.
pub struct QrScan {
    join: QrJoin,
    hold: CameraHold,
    codes: mpsc::UnboundedSender<Zeroizing<String>>,
    retry_at: Option<Instant>,
    banner: Option<String>,
    /// The camera setting the scanner runs on, or was last refused for.
    source: Option<ScanSource>,
}

/// What the adapter needs to know each time it runs.
pub struct Situation<'a> {
    /// The room is idle and no meeting runs.
    pub idle: bool,
    /// The admin page's camera preview holds the camera.
    pub preview: bool,
    /// `devices.camera`.
    pub camera: &'a str,
    /// The first camera found (for `auto`).
    pub first_camera: Option<&'a Path>,
}

impl QrScan {
    /// The scanner (not started yet) holding the camera through `hold`.
    pub fn new(hold: CameraHold) -> (Self, Codes) {
        let (codes, rx) = mpsc::unbounded_channel();
        (Self { join: QrJoin::new(), hold, codes, retry_at: None, banner: None, source: None }, rx)
    }

    /// What the countdown or a refusal shows on the room screen's banner.
    pub fn banner(&self) -> Option<&str> {
        self.banner.as_deref()
    }

    /// A code the camera read.
    pub fn handle_code(&mut self, code: &str, rules: &JoinRules, room: &SupervisedRoom) {
        // A `#passphrase=` link runs PBKDF2 here: off the async worker's other tasks.
        tokio::task::block_in_place(|| self.join.handle_code(Instant::now(), code, rules));
        self.flush(room);
    }

    /// Starts or stops the scanner for `now`'s situation, takes a stop
    /// asked for on the page or with the button, and runs the countdown.
    pub fn tick(&mut self, situation: &Situation<'_>, room: &SupervisedRoom) {
        let now = Instant::now();
        if let Some(by) = COUNTDOWN.take_cancel() {
            self.join.cancel(now, by);
        }
        if !situation.idle {
            self.join.cancel(now, CancelledBy::RoomBusy);
        }
        self.run_scanner(now, situation);
        if self.join.poll_timeout().is_some_and(|t| t <= now) {
            self.join.handle_timeout(now);
        }
        self.flush(room);
    }

    fn run_scanner(&mut self, now: Instant, situation: &Situation<'_>) {
        let hold = Arc::clone(&self.hold.0);
        let mut hold = hold.lock().unwrap_or_else(PoisonError::into_inner);
        let preview = situation.preview || hold.preview_until.is_some_and(|t| now < t);
        let source = match ScanSource::from_camera_setting(situation.camera, situation.first_camera) {
            Some(ScanSource::Test) | None => None,
            other => other,
        };
        if source != self.source {
            // Another camera: start over on it.
            hold.scanner = None;
            self.retry_at = None;
        }
        let wanted = situation.idle && !preview && source.is_some();
        if !wanted {
            if hold.scanner.take().is_some() {
                tracing::info!("QR scanning stopped");
            }
            self.source = source;
            return;
        }
        if let Some(scanner) = &hold.scanner {
            if let Err(e) = scanner.check() {
                tracing::warn!(error = %cloakroom_engine::Chain(&e), "QR scanning stopped; trying again in 30 s");
                hold.scanner = None;
                self.retry_at = Some(now + RETRY_AFTER);
            }
            return;
        }
        if self.retry_at.is_some_and(|t| now < t) {
            return;
        }
        let Some(source) = source else { return };
        let codes = self.codes.clone();
        match QrScanner::start(&source, move |text| {
            let _ = codes.send(Zeroizing::new(text));
        }) {
            Ok(scanner) => {
                tracing::info!(camera = %situation.camera, "QR scanning: hold a meeting link's code up to the camera");
                hold.scanner = Some(scanner);
                self.retry_at = None;
            }
            Err(e) => {
                tracing::warn!(error = %cloakroom_engine::Chain(&e), "QR scanning unavailable; trying again in 30 s");
                self.retry_at = Some(now + RETRY_AFTER);
            }
        }
        self.source = Some(source);
    }

    fn flush(&mut self, room: &SupervisedRoom) {
        while let Some(output) = self.join.poll_output() {
            match output {
                QrOutput::Banner(text) => {
                    let line = text.as_deref().unwrap_or("").replace('\n', " / ");
                    cloakroom_engine::status::emit(format_args!("qr banner {line}"));
                    self.banner = text;
                }
                QrOutput::Join(link) => {
                    let shown = link.to_string();
                    match room.join(link) {
                        Ok(_) => {
                            tracing::info!(link = %shown, "joining from a QR code held up to the camera");
                            cloakroom_engine::status::emit(format_args!("qr join {shown}"));
                        }
                        Err(e) => tracing::warn!(error = %e, "join from a QR code refused"),
                    }
                }
                QrOutput::Event(event) => match event {
                    QrEvent::Counting { link } => {
                        tracing::info!(%link, "QR code of a meeting link: joining after the countdown");
                        cloakroom_engine::status::emit(format_args!("qr counting {link}"));
                    }
                    QrEvent::Refused { reason } => {
                        tracing::info!(%reason, "QR code of a link the room refuses");
                        cloakroom_engine::status::emit(format_args!("qr refused {reason}"));
                    }
                    QrEvent::Cancelled { by } => {
                        tracing::info!(?by, "join by QR code cancelled");
                        cloakroom_engine::status::emit(format_args!("qr cancelled {by:?}"));
                    }
                    QrEvent::NotALink => {
                        tracing::debug!("QR code that is not a link: ignored");
                        cloakroom_engine::status::emit(format_args!("qr ignored"));
                    }
                },
            }
        }
        COUNTDOWN.set_counting(self.join.counting());
    }
}
