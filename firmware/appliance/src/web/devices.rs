//! The admin page's device checks and device information (issue 17):
//!
//! - `GET /api/preview.jpg`: a small JPEG of the room's own camera (never a
//!   remote participant's video); the page asks about once a second while
//!   it is open and visible.
//! - `GET /api/mic-level`: the microphone's peak and RMS level in dBFS.
//! - `POST /api/test-tone`: about two seconds of 440 Hz on the speaker.
//! - `GET /api/info`: the device's addresses, version and uptime.
//! - `GET /api/logs.txt`: the page's log as a text file to download (the
//!   same redacted lines as `GET /api/logs`).
//! - `POST /api/restart`: the daemon leaves any meeting and exits with
//!   [`RESTART_EXIT_CODE`], which systemd's `Restart=on-failure` restarts.
//!
//! All of them need the admin session (a guest's is refused with 403), and
//! the POSTs the CSRF token, a JSON content type and this device's Origin,
//! as every state-changing request. The checks themselves are the daemon's
//! ([`DeviceChecks`], given to [`SupervisedRoom::set_device_checks`]); without
//! them the routes answer 503.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::api::{self, ApiError};
use super::{Access, AppState, LogLine, SupervisedRoom, authorize};

/// The exit code of a restart asked for on the page: not 0, so that
/// systemd's `Restart=on-failure` starts the daemon again (75 is
/// `EX_TEMPFAIL`: try again).
pub const RESTART_EXIT_CODE: i32 = 75;

/// What the daemon does for the device checks. The slow ones block (they
/// start pipelines and wait for a picture or a level): they are called off
/// the async threads.
pub trait DeviceChecks: Send + Sync + std::fmt::Debug + 'static {
    /// A JPEG of the room's camera, a few hundred pixels wide.
    fn preview_jpeg(&self) -> Result<Vec<u8>, CheckRefusal>;
    /// The microphone's level now.
    fn mic_level(&self) -> Result<MicReading, CheckRefusal>;
    /// Starts the speaker's test tone; returns once it plays.
    fn test_tone(&self) -> Result<(), CheckRefusal>;
    /// Leaves any meeting and ends the daemon with [`RESTART_EXIT_CODE`].
    fn restart(&self);
}

/// Why a check was not done, with a message for the page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckRefusal {
    /// The device is in use (the speaker during a meeting): 409.
    Busy(String),
    /// There is nothing to check (no such device configured or found): 503.
    Unavailable(String),
    /// The check was tried and failed (the pipeline's error): 500.
    Failed(String),
}

/// A microphone level in dBFS (0 is full scale, -90 silence).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MicReading {
    pub peak_db: f64,
    pub rms_db: f64,
}

impl SupervisedRoom {
    /// Gives the page its device checks (once; a second call is ignored).
    pub fn set_device_checks(&self, checks: Arc<dyn DeviceChecks>) {
        let _ = self.checks.set(checks);
    }
}

/// The device-check routes, merged into the page's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/preview.jpg", get(preview))
        .route("/api/mic-level", get(mic_level))
        .route("/api/test-tone", post(test_tone))
        .route("/api/info", get(info))
        .route("/api/logs.txt", get(logs_download))
        .route("/api/restart", post(restart))
}

/// When the web server started, for the daemon's uptime.
static STARTED: OnceLock<Instant> = OnceLock::new();

/// Notes the daemon's start (the web server starts with it).
pub(crate) fn note_start() {
    STARTED.get_or_init(Instant::now);
}

/// Device checks running at once (each holds a blocking thread for up to a
/// few seconds): more wait their turn.
static CHECKS_AT_ONCE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(3);

fn checks(st: &AppState) -> Result<Arc<dyn DeviceChecks>, ApiError> {
    st.ctx.room.device_checks().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_device_checks", "this device has no device checks")
    })
}

/// Runs a blocking check on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CheckRefusal> + Send + 'static,
) -> Result<T, ApiError> {
    let internal = || ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the device check did not finish");
    let _turn = CHECKS_AT_ONCE.acquire().await.map_err(|_| internal())?;
    tokio::task::spawn_blocking(f).await.map_err(|_| internal())?.map_err(refusal)
}

fn refusal(r: CheckRefusal) -> ApiError {
    match r {
        CheckRefusal::Busy(m) => ApiError::new(StatusCode::CONFLICT, "busy", m),
        CheckRefusal::Unavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m),
        CheckRefusal::Failed(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "check_failed", m),
    }
}

/// The body of a POST that takes no arguments: `{}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArguments {}

/// An empty body or `{}` for the POSTs that take no arguments.
fn no_arguments(body: &Bytes) -> Result<(), ApiError> {
    if !body.is_empty() {
        api::parse_body::<NoArguments>(body)?;
    }
    Ok(())
}

async fn preview(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    let checks = checks(&st)?;
    let jpeg = blocking(move || checks.preview_jpeg()).await?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response())
}

async fn mic_level(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    let checks = checks(&st)?;
    let level = blocking(move || checks.mic_level()).await?;
    Ok(axum::Json(level).into_response())
}

async fn test_tone(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    no_arguments(&body)?;
    let checks = checks(&st)?;
    blocking(move || checks.test_tone()).await?;
    st.ctx.logs.push("info", "speaker test tone played");
    Ok(axum::Json(serde_json::json!({ "ok": true })).into_response())
}

async fn restart(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    no_arguments(&body)?;
    let checks = checks(&st)?;
    tracing::info!("restart asked for on the admin page");
    st.ctx.logs.push("info", "restart asked for on the admin page");
    // The answer leaves before the daemon starts stopping.
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        checks.restart();
    });
    Ok(axum::Json(serde_json::json!({ "ok": true })).into_response())
}

/// What `GET /api/info` answers.
#[derive(Debug, Serialize)]
struct DeviceInfo {
    version: &'static str,
    /// `git describe` of the build, when the build set `CLOAKROOM_GIT_DESCRIBE`.
    build: Option<&'static str>,
    daemon_uptime_secs: u64,
    system_uptime_secs: Option<u64>,
    addresses: Vec<Address>,
}

/// One of the device's own addresses (loopback left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    /// The interface, when the kernel's table names it.
    pub interface: Option<String>,
    pub address: std::net::IpAddr,
}

async fn info(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let mut addresses = ipv4_addresses(&read("/proc/net/fib_trie"));
    addresses.extend(ipv6_addresses(&read("/proc/net/if_inet6")));
    let info = DeviceInfo {
        version: env!("CARGO_PKG_VERSION"),
        build: option_env!("CLOAKROOM_GIT_DESCRIBE"),
        daemon_uptime_secs: STARTED.get().map_or(0, |t| t.elapsed().as_secs()),
        system_uptime_secs: system_uptime(&read("/proc/uptime")),
        addresses,
    };
    Ok(axum::Json(info).into_response())
}

async fn logs_download(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    let text = log_text(&st.ctx.logs.lines());
    let mut response = ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"cloakroom-log.txt\""));
    Ok(response)
}

/// The log as text, one line per entry: UTC time, level, message.
pub fn log_text(lines: &[LogLine]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&format!("{} {} {}\n", utc_time(l.unix_ms), l.level, l.message));
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since 1970 (UTC, proleptic Gregorian).
pub fn utc_time(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Days to a civil date (Howard Hinnant's algorithm, era of 400 years).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// The system's uptime from `/proc/uptime` ("12345.67 23456.78").
pub fn system_uptime(text: &str) -> Option<u64> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    // Seconds since boot fit easily; the fraction is dropped.
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

/// The host's own IPv4 addresses from `/proc/net/fib_trie`: each address
/// line (`|-- 192.0.2.7`) followed by `/32 host LOCAL`. Loopback left out.
pub fn ipv4_addresses(fib_trie: &str) -> Vec<Address> {
    let mut out: Vec<Address> = Vec::new();
    let mut last: Option<std::net::Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-', '`']).trim();
        if let Ok(ip) = t.parse::<std::net::Ipv4Addr>() {
            last = Some(ip);
        } else if t.starts_with("/32 host LOCAL")
            && let Some(ip) = last
        {
            let a = Address { interface: None, address: ip.into() };
            if !ip.is_loopback() && !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// The host's IPv6 addresses with their interfaces from
/// `/proc/net/if_inet6` (`<32 hex digits> <index> <prefix> <scope> <flags> <name>`).
/// Loopback left out.
pub fn ipv6_addresses(if_inet6: &str) -> Vec<Address> {
    if_inet6
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let hex = fields.next()?;
            let name = fields.nth(4)?;
            let bits = u128::from_str_radix(hex, 16).ok().filter(|_| hex.len() == 32)?;
            let ip = std::net::Ipv6Addr::from(bits);
            (!ip.is_loopback()).then(|| Address { interface: Some(name.to_owned()), address: ip.into() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_time(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc_time(1_796_095_845_007), "2026-12-01T03:30:45.007Z");
    }

    #[test]
    fn the_log_file_has_one_line_per_entry() {
        let lines = vec![
            LogLine { unix_ms: 0, level: "info".into(), message: "ready".into() },
            LogLine {
                unix_ms: 1000,
                level: "warn".into(),
                message: "join: janus+wss://sfu.example/ [key redacted]".into(),
            },
        ];
        assert_eq!(
            log_text(&lines),
            "1970-01-01T00:00:00.000Z info ready\n1970-01-01T00:00:01.000Z warn join: janus+wss://sfu.example/ [key redacted]\n"
        );
    }

    #[test]
    fn addresses_from_the_kernels_tables() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 127.0.0.0/8 2 0 2\n        +-- 127.0.0.0/31 1 0 0\n           |-- 127.0.0.1\n              /32 host LOCAL\n     |-- 192.168.1.0\n        /24 link UNICAST\n     |-- 192.168.1.20\n        /32 host LOCAL\nLocal:\n     |-- 192.168.1.20\n        /32 host LOCAL\n";
        let v4 = ipv4_addresses(fib);
        assert_eq!(v4, vec![Address { interface: None, address: "192.168.1.20".parse().expect("ip") }]);
        let inet6 = "00000000000000000000000000000001 01 80 10 80       lo\nfe80000000000000021122fffe334455 02 40 20 80     eth0\n";
        let v6 = ipv6_addresses(inet6);
        assert_eq!(v6.len(), 1);
        assert_eq!(v6[0].interface.as_deref(), Some("eth0"));
        assert_eq!(v6[0].address.to_string(), "fe80::211:22ff:fe33:4455");
        assert!(ipv6_addresses("garbage\nzz 1 2 3 4 eth0\n").is_empty());
    }

    #[test]
    fn uptime_from_proc() {
        assert_eq!(system_uptime("12345.67 23456.78\n"), Some(12345));
        assert_eq!(system_uptime(""), None);
        assert_eq!(system_uptime("-1 0"), None);
    }
}
