//! The local web page and JSON API (axum over rustls), and the [`Room`]
//! trait through which it reaches the rest of the daemon.
//!
//! - HTTPS on `web.https_port` with the device certificate ([`tls`]); the
//!   plain HTTP port answers every request with a 308 redirect to HTTPS.
//! - Sessions: cookie `__Host-cloakroom` (HttpOnly, Secure,
//!   SameSite=Strict, Path=/; RFC 6265bis), opened by `POST /api/pair`
//!   (admin) or `POST /api/scan` (guest, from `/join#t=<token>`).
//! - CSRF: every state-changing request (POST, PUT) other than the two that
//!   open a session must carry the session's token in `x-csrf-token` and a
//!   JSON content type (so a cross-site form cannot send it).
//! - Every `/api` route except `pair` and `scan` answers 401 without a session.
//!
//! The API is documented in `firmware/appliance/README.md`.

pub mod api;
pub mod devices;
pub mod listener;
pub mod qr;
mod server;
pub mod tls;
mod verify;

pub use devices::{CheckRefusal, DeviceChecks, MicReading};
pub use server::WebServer;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cloakroom_meeting::MeetingLink;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::ApplianceError;
use crate::config::{ConfigStore, EditableSettings};
use crate::pairing::{PairError, Pairing, Role, SessionInfo, StoredSessions, csrf_matches};
use crate::supervisor::{Input, Output, RoomState, Status, Supervisor};
use api::ApiError;

/// Name of the session cookie (the `__Host-` prefix pins it to this origin, Secure, Path=/).
pub const SESSION_COOKIE: &str = "__Host-cloakroom";
/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What the web server needs from the daemon. The daemon implements it on
/// top of its supervisor; [`SupervisedRoom`] is that implementation without media.
pub trait Room: Send + Sync + 'static {
    /// The room's status.
    fn status(&self) -> Status;
    /// Asks the room to join a meeting; the meeting's number ([`Status::meeting_id`]).
    fn join(&self, link: MeetingLink) -> Result<u64, ApplianceError>;
    /// Asks the room to leave.
    fn leave(&self);
    /// Mutes or unmutes the microphone.
    fn set_mute(&self, muted: bool);
    /// People's step in verifying `participant` (Jitsi's SAS): `start` it,
    /// or `confirm` whether the codes matched. Rooms without it ignore it.
    fn verify(&self, participant: &str, start: bool, confirm: Option<bool>) {
        let _ = (participant, start, confirm);
    }
    /// The device report (as `cloakroom devices --json`).
    fn devices(&self) -> serde_json::Value;
    /// The admin page's device checks ([`devices`]), if the daemon gave any.
    fn device_checks(&self) -> Option<Arc<dyn DeviceChecks>> {
        None
    }
}

/// A [`Supervisor`] behind a mutex; its outputs go to a channel the daemon
/// drains (start the connector, mute the pipeline, arm timers).
#[derive(Debug)]
pub struct SupervisedRoom {
    supervisor: Mutex<Supervisor>,
    outputs: mpsc::UnboundedSender<Output>,
    /// Set by [`SupervisedRoom::set_device_checks`].
    checks: std::sync::OnceLock<Arc<dyn DeviceChecks>>,
}

impl SupervisedRoom {
    /// A room and the receiver of its outputs.
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<Output>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Self { supervisor: Mutex::new(Supervisor::new()), outputs: tx, checks: Default::default() }), rx)
    }

    /// Feeds an event (connector, pipelines, mute button) and forwards the outputs.
    pub fn handle_input(&self, input: Input) {
        let mut s = lock(&self.supervisor);
        s.handle_input(Instant::now(), input);
        self.flush(&mut s);
    }

    /// Delivers a timer asked for by [`Output::Timeout`].
    pub fn handle_timeout(&self) {
        let mut s = lock(&self.supervisor);
        s.handle_timeout(Instant::now());
        self.flush(&mut s);
    }

    fn flush(&self, s: &mut Supervisor) {
        while let Some(o) = s.poll_output() {
            // Nobody listening (daemon shutting down): dropping outputs is fine.
            let _ = self.outputs.send(o);
        }
    }
}

impl Room for SupervisedRoom {
    fn status(&self) -> Status {
        lock(&self.supervisor).status()
    }

    fn join(&self, link: MeetingLink) -> Result<u64, ApplianceError> {
        let mut s = lock(&self.supervisor);
        if !matches!(s.status().state, RoomState::Idle | RoomState::Error) {
            return Err(ApplianceError::JoinRefused("the room is already in a meeting; leave first".to_owned()));
        }
        s.handle_input(Instant::now(), Input::Join(link));
        self.flush(&mut s);
        s.status().meeting_id.ok_or_else(|| ApplianceError::JoinRefused("the room did not start joining".to_owned()))
    }

    fn leave(&self) {
        self.handle_input(Input::Leave);
    }

    fn set_mute(&self, muted: bool) {
        self.handle_input(Input::SetMute(muted));
    }

    fn verify(&self, participant: &str, start: bool, confirm: Option<bool>) {
        self.handle_input(Input::Verify { id: participant.to_owned(), start, confirm });
    }

    fn devices(&self) -> serde_json::Value {
        lock(&self.supervisor).status().devices
    }

    fn device_checks(&self) -> Option<Arc<dyn DeviceChecks>> {
        self.checks.get().cloned()
    }
}

/// Recent log lines for the admin page (never secrets: callers log redacted values only).
#[derive(Debug, Clone, Default)]
pub struct LogBuffer {
    lines: Arc<Mutex<VecDeque<LogLine>>>,
}

/// One log line.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub unix_ms: u64,
    pub level: String,
    pub message: String,
}

impl LogBuffer {
    /// Lines kept.
    pub const CAPACITY: usize = 200;

    pub fn push(&self, level: &str, message: impl Into<String>) {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let mut lines = lock(&self.lines);
        if lines.len() >= Self::CAPACITY {
            lines.pop_front();
        }
        // Messages may quote text from outside (names, links): one line, nothing hidden.
        let message = cloakroom_meeting::text::clean_to(&message.into(), 2000);
        lines.push_back(LogLine { unix_ms, level: level.to_owned(), message });
    }

    pub fn lines(&self) -> Vec<LogLine> {
        lock(&self.lines).iter().cloned().collect()
    }
}

/// Shared pieces the web server runs on.
#[derive(Clone)]
pub struct WebContext {
    pub room: Arc<dyn Room>,
    pub pairing: Arc<Mutex<Pairing>>,
    pub config: Arc<Mutex<ConfigStore>>,
    pub logs: LogBuffer,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) ctx: WebContext,
    pub(crate) fingerprint: String,
    pub(crate) state_dir: std::path::PathBuf,
    /// The names this device answers to (see [`host_allowed`]).
    pub(crate) names: Vec<String>,
}

pub(crate) fn router(state: AppState) -> Router {
    devices::note_start();
    Router::new()
        .route("/", get(|| async { page(INDEX_HTML) }))
        .route("/join", get(|| async { page(JOIN_HTML) }))
        .route("/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/pair", post(pair))
        .route("/api/scan", post(scan))
        .route("/api/session", get(session))
        .route("/api/logout", post(logout))
        .route("/api/status", get(status))
        .route("/api/join", post(join))
        .route("/api/leave", post(leave))
        .route("/api/mute", post(mute))
        .route("/api/verify", post(verify::verify))
        .route("/api/settings", get(settings_get).put(settings_put))
        .route("/api/devices", get(devices))
        .route("/api/logs", get(logs))
        .route("/api/join-token", get(join_token))
        .route("/api/sessions", get(sessions_list))
        .route("/api/sessions/revoke", post(sessions_revoke))
        .merge(devices::routes())
        .merge(qr::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(api::MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(state.clone(), check_host))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(log_requests))
        .with_state(state)
}

/// Refuses a request whose `Host` is not this device (421): a page on a
/// DNS name that an attacker points at the device (DNS rebinding) never
/// reaches the API.
async fn check_host(State(st): State<AppState>, req: Request, next: axum::middleware::Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().host());
    if host.is_some_and(|h| host_allowed(h, &st.names)) {
        next.run(req).await
    } else {
        tracing::debug!("request for another host refused");
        (StatusCode::MISDIRECTED_REQUEST, "this device does not serve that host name\n").into_response()
    }
}

/// Each request's start and answer at debug level (`RUST_LOG=cloakroom_appliance::web=debug`):
/// method and path only (no query strings), status and time taken.
async fn log_requests(req: Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let started = std::time::Instant::now();
    tracing::debug!(%method, path, "http request");
    let response = next.run(req).await;
    let ms = started.elapsed().as_millis();
    tracing::debug!(%method, path, status = response.status().as_u16(), ms, "http answer");
    response
}

const INDEX_HTML: &str = include_str!("pages/index.html");
const JOIN_HTML: &str = include_str!("pages/join.html");
const APP_CSS: &str = include_str!("pages/app.css");
const APP_JS: &str = include_str!("pages/app.js");

fn page(html: &'static str) -> Response {
    asset("text/html; charset=utf-8", html)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        // blob: images: the camera preview, fetched with its errors readable, then shown.
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Only ever served over HTTPS. Browsers act on it once the device's
    // certificate is trusted; from then on they never try plain HTTP.
    h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    response
}

async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api") {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route").into_response()
    } else {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}

/// The address of the client a request came from (the TCP peer).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddr(pub(crate) std::net::SocketAddr);

// Per listener type: a blanket impl over every listener would collide with axum's own.
impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::TlsListener>> for ClientAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, tls::TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// Which sessions may use a route.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    AdminOnly,
    AdminOrGuest,
}

/// Finds the session of the request; for POST/PUT also checks the CSRF
/// header and the JSON content type.
fn authorize(st: &AppState, method: &Method, headers: &HeaderMap, access: Access) -> Result<SessionInfo, ApiError> {
    let token = session_cookie(headers).ok_or_else(ApiError::unauthorized)?;
    let meeting = st.ctx.room.status().meeting_id;
    let session = {
        let mut pairing = lock(&st.ctx.pairing);
        // A guest session that started a meeting ends with it.
        if pairing.end_guests_of_past_meetings(meeting) > 0 {
            drop(pairing);
            save_sessions(st);
            pairing = lock(&st.ctx.pairing);
        }
        pairing.session(Instant::now(), &token).ok_or_else(ApiError::unauthorized)?
    };
    if access == Access::AdminOnly && session.role != Role::Admin {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "admin_only", "this needs the admin session"));
    }
    if method != Method::GET && method != Method::HEAD {
        check_origin(st, headers)?;
        check_json(headers)?;
        let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !csrf_matches(&session, presented) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "csrf", "missing or wrong x-csrf-token header"));
        }
    }
    Ok(session)
}

/// A state-changing request that names its origin must come from this
/// device's own page: `Origin` (RFC 6454) is `https://<a name of this
/// device>[:port]`. Browsers send it on every POST and PUT; tools that send
/// none (curl, the CLI) are still held to the session and the CSRF token.
fn check_origin(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let ok = origin
        .to_str()
        .ok()
        .and_then(|o| o.strip_prefix("https://"))
        .is_some_and(|host| !host.contains('/') && host_allowed(host, &st.names));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "origin", "this request came from another site's page"))
    }
}

fn check_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type",
            "send JSON (content-type: application/json)",
        ))
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn session_response(session: crate::pairing::NewSession) -> Response {
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        session.token.expose(),
        session.expires_in.as_secs()
    );
    let body = serde_json::json!({ "role": session.role, "csrf": session.csrf.expose() });
    let mut response = axum::Json(body).into_response();
    match HeaderValue::from_str(&cookie) {
        Ok(v) => {
            response.headers_mut().insert(header::SET_COOKIE, v);
            response
        }
        // Hex tokens and digits always make a valid header value.
        Err(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "cookie").into_response(),
    }
}

fn pair_error(e: PairError) -> ApiError {
    match e {
        PairError::Wrong { remaining } => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong_code",
            format!("wrong code or password; {remaining} more tries from this device, then a pause"),
        ),
        PairError::Paused { retry_after } => {
            let secs = retry_after.as_secs().max(1);
            ApiError {
                retry_after_secs: Some(secs),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("too many wrong tries from this device; try again in {secs} s"),
                )
            }
        }
        PairError::InvalidToken => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "this scan link was used or has expired; scan the code on the room screen again",
        ),
    }
}

/// Slow key derivations (PBKDF2: the admin password, `#passphrase=` links)
/// running at once, on blocking threads: more wait their turn, so a burst
/// of them can neither stall the async workers nor take every core.
static SLOW_KDF: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Runs a slow key derivation on a blocking thread, one at a time.
async fn slow_kdf<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    let internal = || ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "key derivation failed");
    let _turn = SLOW_KDF.acquire().await.map_err(|_| internal())?;
    tokio::task::spawn_blocking(f).await.map_err(|_| internal())
}

/// Writes what the pairing state has to report to the journal and the page's log.
fn report_alerts(st: &AppState) {
    for alert in lock(&st.ctx.pairing).take_alerts() {
        tracing::warn!("{alert}");
        st.ctx.logs.push("warn", alert.to_string());
    }
}

async fn pair(
    State(st): State<AppState>,
    ConnectInfo(client): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_json(&headers)?;
    let req: api::PairRequest = api::parse_body(&body)?;
    api::validate_pair(&req)?;
    let now = Instant::now();
    // Refused at once while this client waits: no key derivation for it.
    let attempt = lock(&st.ctx.pairing).begin_pair(now, client.0.ip()).map_err(pair_error)?;
    // The admin password check runs PBKDF2 (about 0.1-0.5 s on a Pi): off
    // the async threads and outside the pairing lock every request takes.
    let (attempt, password_ok) = match attempt.password.clone() {
        None => (attempt, true),
        Some(hash) => {
            let password = zeroize::Zeroizing::new(req.password.clone().unwrap_or_default());
            let ok = slow_kdf(move || !password.is_empty() && hash.verify(&password)).await?;
            (attempt, ok)
        }
    };
    let result = lock(&st.ctx.pairing).finish_pair(Instant::now(), attempt, &req.code, password_ok);
    report_alerts(&st);
    match result {
        Ok(session) => {
            tracing::info!("a browser at {} paired as admin", client.0.ip());
            st.ctx.logs.push("info", format!("a browser at {} paired as admin", client.0.ip()));
            save_sessions(&st);
            Ok(session_response(session))
        }
        Err(e) => {
            tracing::debug!("wrong pairing try from {}", client.0.ip());
            Err(pair_error(e))
        }
    }
}

async fn scan(
    State(st): State<AppState>,
    ConnectInfo(client): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_json(&headers)?;
    let req: api::ScanRequest = api::parse_body(&body)?;
    api::validate_scan(&req)?;
    let session =
        lock(&st.ctx.pairing).redeem_join_token(Instant::now(), client.0.ip(), &req.token).map_err(pair_error)?;
    tracing::info!("a phone at {} opened the join page (guest session)", client.0.ip());
    st.ctx.logs.push("info", format!("a phone at {} opened the join page", client.0.ip()));
    Ok(session_response(session))
}

async fn session(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    let s = authorize(&st, &method, &headers, Access::AdminOrGuest)?;
    Ok(axum::Json(serde_json::json!({
        "role": s.role,
        "id": s.id,
        "csrf": s.csrf.expose(),
        "fingerprint": st.fingerprint,
        "needs_password": lock(&st.ctx.pairing).needs_password(),
    }))
    .into_response())
}

async fn logout(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOrGuest)?;
    if let Some(token) = session_cookie(&headers) {
        lock(&st.ctx.pairing).end_session(&token);
        save_sessions(&st);
    }
    let mut response = axum::Json(serde_json::json!({ "ok": true })).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("__Host-cloakroom=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"),
    );
    Ok(response)
}

async fn status(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    let session = authorize(&st, &method, &headers, Access::AdminOrGuest)?;
    let room_name = lock(&st.ctx.config).settings().room_name.clone();
    let mut status = st.ctx.room.status();
    if session.role == Role::Guest {
        guest_view(&mut status);
    }
    let mut value = serde_json::to_value(status).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("room_name".into(), room_name.into());
        obj.insert("fingerprint".into(), st.fingerprint.clone().into());
    }
    Ok(axum::Json(value).into_response())
}

/// What a guest's status leaves out: the device report (admin only), the
/// key's check digits (with them, a visitor could test guesses of a weak
/// passphrase offline) and the cause of a failure (which would tell what
/// answers at a LAN address the visitor typed in: refused, not HTTP, ...).
fn guest_view(status: &mut Status) {
    status.devices = serde_json::Value::Null;
    status.encryption.verification = None;
    if status.error.is_some() {
        status.error = Some("could not join or lost the meeting; the room's admin page has the details".to_owned());
    }
}

async fn join(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let session = authorize(&st, &method, &headers, Access::AdminOrGuest)?;
    let req: api::JoinRequest = api::parse_body(&body)?;
    let (require_key, plain_ws_hosts) = {
        let config = lock(&st.ctx.config);
        (config.settings().require_key, config.settings().plain_ws_hosts.clone())
    };
    // A `#passphrase=` link runs PBKDF2: off the async threads, one at a time.
    let link = slow_kdf(move || api::validate_join(&req, require_key, &plain_ws_hosts)).await??;
    let shown = link.to_string();
    let meeting =
        st.ctx.room.join(link).map_err(|e| ApiError::new(StatusCode::CONFLICT, "join_refused", e.to_string()))?;
    if session.role == Role::Guest {
        // The guest may leave and mute this meeting, and its session ends with it.
        lock(&st.ctx.pairing).bind_guest(&session.id, meeting);
    }
    let by = if session.role == Role::Guest { "a guest" } else { "the admin" };
    st.ctx.logs.push("info", format!("join asked for through the API: {shown} (by {by})"));
    Ok(axum::Json(serde_json::json!({ "ok": true })).into_response())
}

/// A guest may leave or mute only the meeting it started.
fn check_guest_meeting(st: &AppState, session: &SessionInfo) -> Result<(), ApiError> {
    if session.role == Role::Admin || (session.meeting.is_some() && session.meeting == st.ctx.room.status().meeting_id)
    {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "not_your_meeting",
        "this phone did not start the room's meeting; use the room's button or its admin page",
    ))
}

async fn leave(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let session = authorize(&st, &method, &headers, Access::AdminOrGuest)?;
    check_guest_meeting(&st, &session)?;
    if !body.is_empty() {
        api::parse_body::<serde_json::Map<String, serde_json::Value>>(&body)?;
    }
    st.ctx.room.leave();
    st.ctx.logs.push("info", "leaving the meeting");
    Ok(axum::Json(serde_json::json!({ "ok": true })).into_response())
}

async fn mute(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let session = authorize(&st, &method, &headers, Access::AdminOrGuest)?;
    check_guest_meeting(&st, &session)?;
    let req: api::MuteRequest = api::parse_body(&body)?;
    st.ctx.room.set_mute(req.muted);
    Ok(axum::Json(serde_json::json!({ "ok": true, "muted": req.muted })).into_response())
}

async fn settings_get(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    let edit = lock(&st.ctx.config).settings().editable();
    Ok(axum::Json(edit).into_response())
}

async fn settings_put(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    let edit: EditableSettings = api::parse_body(&body)?;
    let mut store = lock(&st.ctx.config);
    api::validate_settings(&edit, store.base())?;
    store.update(&edit).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "save_failed", e.to_string()))?;
    drop(store);
    st.ctx.logs.push("info", "settings saved");
    Ok(axum::Json(edit).into_response())
}

async fn devices(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    Ok(axum::Json(st.ctx.room.devices()).into_response())
}

async fn logs(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    Ok(axum::Json(st.ctx.logs.lines()).into_response())
}

async fn sessions_list(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    let me = authorize(&st, &method, &headers, Access::AdminOnly)?;
    let list = lock(&st.ctx.pairing).sessions(Instant::now());
    let list: Vec<_> = list
        .into_iter()
        .map(|s| {
            let current = s.id == me.id;
            let mut v = serde_json::to_value(s).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert("current".into(), current.into());
            }
            v
        })
        .collect();
    Ok(axum::Json(list).into_response())
}

async fn sessions_revoke(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    let req: api::RevokeRequest = api::parse_body(&body)?;
    if !lock(&st.ctx.pairing).revoke(&req.id) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no_such_session", "no such session (it may have ended)"));
    }
    save_sessions(&st);
    tracing::info!("the admin ended a session");
    st.ctx.logs.push("info", "the admin ended a session");
    Ok(axum::Json(serde_json::json!({ "ok": true })).into_response())
}

async fn join_token(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    let token = lock(&st.ctx.pairing).join_token(Instant::now());
    Ok(axum::Json(serde_json::json!({ "path": format!("/join#t={}", token.expose()) })).into_response())
}

/// `/metrics` (Prometheus text format) needs the admin session: whether the
/// room is in a meeting, muted, encrypted, and when pairing is being
/// guessed tell about the room and the people in it, which is not for
/// anyone on the LAN. A scraper presents an admin session's cookie (see
/// docs/SECURITY.md).
async fn metrics(State(st): State<AppState>, method: Method, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOnly)?;
    let s = st.ctx.room.status();
    let pairing = lock(&st.ctx.pairing).stats(Instant::now());
    let mut out = String::new();
    out.push_str("# HELP cloakroom_room_state 1 for the room's current state.\n# TYPE cloakroom_room_state gauge\n");
    for (name, state) in [
        ("idle", RoomState::Idle),
        ("joining", RoomState::Joining),
        ("in_meeting", RoomState::InMeeting),
        ("leaving", RoomState::Leaving),
        ("reconnecting", RoomState::Reconnecting),
        ("error", RoomState::Error),
    ] {
        out.push_str(&format!("cloakroom_room_state{{state=\"{name}\"}} {}\n", u8::from(s.state == state)));
    }
    let gauges: [(&str, &str, String); 10] = [
        ("cloakroom_participants", "Participants in the meeting.", s.participants.len().to_string()),
        ("cloakroom_muted", "1 when the microphone is muted.", u8::from(s.muted).to_string()),
        (
            "cloakroom_encrypted",
            "1 when the meeting is end-to-end encrypted.",
            u8::from(s.encryption.encrypted).to_string(),
        ),
        ("cloakroom_send_bitrate_kbps", "Send bitrate.", s.media.send_bitrate_kbps.to_string()),
        ("cloakroom_receive_bitrate_kbps", "Receive bitrate.", s.media.receive_bitrate_kbps.to_string()),
        ("cloakroom_packet_loss_percent", "Packet loss.", s.media.packet_loss_percent.to_string()),
        ("cloakroom_join_failures", "Failed join attempts in a row.", s.attempts.to_string()),
        (
            "cloakroom_pairing_failures_last_day",
            "Wrong pairing tries in the last 24 hours, from everyone.",
            pairing.failures_last_day.to_string(),
        ),
        (
            "cloakroom_pairing_clients_paused",
            "Clients that made too many wrong pairing tries and wait now.",
            pairing.clients_paused.to_string(),
        ),
        (
            "cloakroom_pairing_guarded",
            "1 while the pairing code is long because of many wrong tries.",
            u8::from(pairing.guarded).to_string(),
        ),
    ];
    for (name, help, value) in gauges {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"));
    }
    for (name, help, value) in [
        ("cloakroom_frames_sent_total", "Frames sent.", s.media.frames_sent),
        ("cloakroom_frames_received_total", "Frames received.", s.media.frames_received),
        (
            "cloakroom_decrypt_failures_total",
            "Frames that did not open (wrong or missing key).",
            s.media.decrypt_failures,
        ),
        ("cloakroom_pairing_failures_total", "Wrong pairing tries since start.", pairing.failures_total),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response())
}

/// Whether a `Host` header (port stripped or not) names this device: one of
/// `names` (the `.local` name, `localhost`, the bound address) or any IP
/// address literal. Anything else is refused: a DNS name the device does not
/// own pointing at it is how DNS rebinding reaches a LAN device.
pub(crate) fn host_allowed(host: &str, names: &[String]) -> bool {
    let host = strip_port(host);
    let bare = match host.strip_prefix('[') {
        Some(inner) => match inner.strip_suffix(']') {
            Some(inner) => inner,
            None => return false,
        },
        None => host,
    };
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let host = host.trim_end_matches('.');
    !host.is_empty() && names.iter().any(|n| n.eq_ignore_ascii_case(host))
}

/// `host` without a trailing `:port` (IPv6 literals keep their brackets).
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

/// The `<name>.local` host name derived from the room name.
pub fn mdns_name(room_name: &str) -> String {
    let mut label: String =
        room_name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    while label.contains("--") {
        label = label.replace("--", "-");
    }
    let label = label.trim_matches('-');
    let label = if label.is_empty() { "cloakroom" } else { &label[..label.len().min(63)] };
    format!("{}.local", label.trim_end_matches('-'))
}

/// File in the state directory holding the sessions (see [`StoredSessions`]).
pub const SESSIONS_FILE: &str = "sessions.json";

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Loads saved sessions into `pairing`; a missing or unreadable file means nobody is paired.
pub(crate) fn restore_sessions(ctx: &WebContext, state_dir: &std::path::Path) {
    let path = state_dir.join(SESSIONS_FILE);
    let bytes = match crate::config::read_secret(&path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return,
        Err(e) => {
            // Planted or tampered with: nobody is paired; the next save replaces it.
            tracing::warn!("{e}; browsers pair again");
            ctx.logs.push("warn", format!("{e}; browsers pair again"));
            return;
        }
    };
    match serde_json::from_slice::<StoredSessions>(&bytes) {
        Ok(stored) => lock(&ctx.pairing).restore_sessions(&stored, Instant::now(), unix_now()),
        Err(e) => ctx.logs.push("warn", format!("{}: ignored ({e}); browsers pair again", path.display())),
    }
}

/// Saves the sessions (mode 0600); a failure only costs a re-pairing after a restart.
fn save_sessions(st: &AppState) {
    let stored = lock(&st.ctx.pairing).export_sessions(Instant::now(), unix_now());
    let path = st.state_dir.join(SESSIONS_FILE);
    let json = zeroize::Zeroizing::new(serde_json::to_vec(&stored).unwrap_or_default());
    if let Err(e) = crate::config::write_secret(&path, &json) {
        st.ctx.logs.push("warn", format!("sessions not saved: {e}"));
    }
}

/// Locks a mutex, carrying on after a panic elsewhere (the data are plain values).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdns_names() {
        assert_eq!(mdns_name("Meeting room"), "meeting-room.local");
        assert_eq!(mdns_name("  Ärger!! 3 "), "rger-3.local");
        assert_eq!(mdns_name("!!!"), "cloakroom.local");
    }

    #[test]
    fn only_the_devices_own_names_and_ip_literals_are_hosts() {
        let names = vec!["room.local".to_owned(), "localhost".to_owned(), "0.0.0.0".to_owned()];
        for ok in ["room.local", "ROOM.local:8443", "room.local.", "localhost:443", "192.168.1.20", "[::1]:8443", "::1"]
        {
            assert!(host_allowed(ok, &names), "{ok}");
        }
        for bad in ["evil.example", "room.local.evil.example", "", ":443", "[::1", "room.local@evil"] {
            assert!(!host_allowed(bad, &names), "{bad}");
        }
    }

    #[test]
    fn a_guest_sees_no_device_report_check_digits_or_failure_cause() {
        // Security review findings 6, 7, 15: what a visitor's phone must not read.
        let mut status = Supervisor::new().status();
        status.devices = serde_json::json!({"cameras": [{"path": "/dev/video0"}]});
        status.encryption.verification = Some("123 456 789 012 345".into());
        status.error = Some("IO error: Connection refused (os error 111)".into());
        guest_view(&mut status);
        assert!(status.devices.is_null());
        assert!(status.encryption.verification.is_none());
        let error = status.error.expect("still says something failed");
        assert!(!error.contains("refused") && error.contains("admin page"), "{error}");
    }

    #[test]
    fn session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; __Host-cloakroom=abc; b=2"));
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
    }
}
