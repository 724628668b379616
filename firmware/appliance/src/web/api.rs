//! The JSON API's request bodies and their validation (pure, fuzzed).
//!
//! Bodies are JSON (RFC 8259) objects with exactly the documented fields;
//! unknown fields, wrong types, over-long or odd strings are refused with
//! an [`ApiError`] naming the field.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cloakroom_meeting::{KeyPolicy, LinkError, MeetingLink, Target};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::{EditableSettings, Settings};

/// Longest request body accepted, in bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// `POST /api/pair`. Wiped on drop; Debug prints no secret.
#[derive(Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct PairRequest {
    pub code: String,
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for PairRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairRequest([redacted])")
    }
}

/// `POST /api/scan`: a join-by-scan token from `/join#t=<token>`. Wiped on drop.
#[derive(Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    pub token: String,
}

/// `POST /api/sessions/revoke`: a session's public id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub id: String,
}

/// `POST /api/join`. The link carries the meeting key: no Debug, wiped on drop.
#[derive(Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub link: String,
}

/// `POST /api/mute`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuteRequest {
    pub muted: bool,
}

/// An API error: HTTP status and `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, retry_after_secs: None }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self { field: Some(field.to_owned()), ..Self::new(StatusCode::BAD_REQUEST, "invalid_field", message) }
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "no_session", "pair with the code on the room screen first")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message, "field": self.field }
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// Parses a JSON body into `T`, refusing unknown fields and wrong types.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the request body is too large"));
    }
    serde_json::from_slice(body).map_err(|e| {
        // serde_json's messages name fields and types, never echo string values.
        ApiError::new(StatusCode::BAD_REQUEST, "bad_json", format!("invalid JSON body: {e}"))
    })
}

/// Validates a pairing request: 6 digits (10 while the room is guarded),
/// password at most 256 bytes.
pub fn validate_pair(req: &PairRequest) -> Result<(), ApiError> {
    use crate::pairing::{CODE_DIGITS, GUARDED_CODE_DIGITS};
    if ![CODE_DIGITS, GUARDED_CODE_DIGITS].contains(&req.code.len()) || !req.code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::field("code", "the code is the 6 (or 10) digits on the room screen"));
    }
    if req.password.as_ref().is_some_and(|p| p.len() > 256 || p.chars().any(char::is_control)) {
        return Err(ApiError::field("password", "the password is at most 256 bytes without control characters"));
    }
    Ok(())
}

/// Validates a scan token: 32 lower-case hex digits.
pub fn validate_scan(req: &ScanRequest) -> Result<(), ApiError> {
    if req.token.len() != 32 || !req.token.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(ApiError::field("token", "the scan link is not valid; scan the code on the room screen again"));
    }
    Ok(())
}

/// Parses the meeting link of a join request; a link without a key only
/// when `require_key` is off (`e2ee.require_key`), and plain `janus+ws://`
/// only to loopback or a host in `plain_ws_hosts` (`[links]`): signalling
/// without TLS to anywhere would let a visitor's link make the room probe
/// the LAN's ports, and a meeting's signalling in clear text is never what
/// a room should do unasked.
pub fn validate_join(req: &JoinRequest, require_key: bool, plain_ws_hosts: &[String]) -> Result<MeetingLink, ApiError> {
    let policy = if require_key { KeyPolicy::Required } else { KeyPolicy::Optional };
    let link = MeetingLink::parse_with(req.link.trim(), policy).map_err(|e| match e {
        LinkError::MissingKey => ApiError::field(
            "link",
            "the link has no end-to-end key (`#e2ee=` or `#passphrase=`), and this room refuses meetings \
             without one (settings: \"Refuse links without an end-to-end key\")",
        ),
        e => ApiError::field("link", e.to_string()),
    })?;
    match link.target() {
        Target::Janus(t) if !t.is_secure() && !plain_ws_allowed(t.host(), plain_ws_hosts) => Err(ApiError::field(
            "link",
            "`janus+ws://` (no TLS) reaches only this device's loopback and the hosts listed in its config file \
             ([links] plain_ws_hosts); use `janus+wss://`",
        )),
        Target::Jitsi(t) if !t.is_secure() && !plain_ws_allowed(t.host(), plain_ws_hosts) => Err(ApiError::field(
            "link",
            "`jitsi+ws://` (no TLS) reaches only this device's loopback and the hosts listed in its config file \
             ([links] plain_ws_hosts); use the meeting's https:// link",
        )),
        _ => Ok(link),
    }
}

/// Whether plain WebSocket signalling may go to `host` (as written in a
/// link): loopback, a listed host name or address, or an address inside a
/// listed network (`10.231.0.0/16`).
pub fn plain_ws_allowed(host: &str, plain_ws_hosts: &[String]) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = bare.parse::<std::net::IpAddr>().ok();
    let loopback = bare.eq_ignore_ascii_case("localhost") || ip.is_some_and(|ip| ip.is_loopback());
    loopback
        || plain_ws_hosts.iter().any(|h| {
            h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(bare) || ip.is_some_and(|ip| in_network(ip, h))
        })
}

/// Whether `ip` is inside `network` written as `<address>/<prefix length>`.
fn in_network(ip: std::net::IpAddr, network: &str) -> bool {
    use std::net::IpAddr;
    let Some((addr, len)) = network.split_once('/') else { return false };
    let (Ok(net), Ok(len)) = (addr.parse::<IpAddr>(), len.parse::<u32>()) else { return false };
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Validates new settings against the config file they will be applied to.
pub fn validate_settings(edit: &EditableSettings, base: &crate::config::ConfigFile) -> Result<Settings, ApiError> {
    Settings::from_file(&edit.apply_to(base)).map_err(|e| match e {
        crate::ApplianceError::InvalidSetting { key, problem } => {
            let field = match key.as_str() {
                "room.name" => "room_name",
                "devices.camera" => "camera",
                "devices.microphone" => "microphone",
                "devices.speaker" => "speaker",
                "video.resolution" => "resolution",
                "video.framerate" => "framerate",
                "video.codec" => "codec",
                other => other,
            };
            ApiError::field(field, format!("{field}: {problem}"))
        }
        other => ApiError::new(StatusCode::BAD_REQUEST, "invalid_settings", other.to_string()),
    })
}

/// Parses and validates the body of `method path` as the server would; for
/// the fuzz target. Returns whether it was accepted.
pub fn check_request(path: &str, body: &[u8]) -> bool {
    match path {
        "/api/pair" => parse_body::<PairRequest>(body).and_then(|r| validate_pair(&r)).is_ok(),
        "/api/scan" => parse_body::<ScanRequest>(body).and_then(|r| validate_scan(&r)).is_ok(),
        "/api/join" => parse_body::<JoinRequest>(body)
            .and_then(|r| validate_join(&r, body.first().is_some_and(|b| b % 2 == 0), &[]).map(drop))
            .is_ok(),
        "/api/mute" => parse_body::<MuteRequest>(body).is_ok(),
        "/api/settings" => parse_body::<EditableSettings>(body)
            .and_then(|e| validate_settings(&e, &crate::config::ConfigFile::default()).map(drop))
            .is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_strict() {
        assert!(check_request("/api/pair", br#"{"code":"123456"}"#));
        assert!(!check_request("/api/pair", br#"{"code":"12345a"}"#));
        assert!(!check_request("/api/pair", br#"{"code":"123456","admin":true}"#));
        assert!(!check_request("/api/mute", br#"{"muted":"yes"}"#));
        assert!(check_request("/api/mute", br#"{"muted":true}"#));
        assert!(!check_request("/api/join", br#"{"link":"https://evil.example/"}"#));
        assert!(check_request(
            "/api/join",
            br#"{"link":"janus+wss://sfu.example/janus?room=1#e2ee=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}"#
        ));
        assert!(!check_request("/api/pair", &vec![b' '; MAX_BODY + 1]));
    }

    #[test]
    fn settings_errors_name_the_field() {
        let mut edit = crate::config::Settings::from_file(&Default::default()).expect("defaults").editable();
        edit.framerate = 0;
        let e = validate_settings(&edit, &Default::default()).expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("framerate"));
        assert_eq!(e.message, "framerate: 0 is not between 1 and 60");
    }

    #[test]
    fn link_errors_do_not_echo_the_key() {
        let req = JoinRequest { link: "janus+wss://sfu.example/janus?room=1#e2ee=SECRETSECRET".into() };
        let e = validate_join(&req, true, &[]).expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("link"));
        assert!(!e.message.contains("SECRET"), "{}", e.message);
    }

    #[test]
    fn plain_websocket_only_to_loopback_and_listed_hosts() {
        // Security review finding 7: `janus+ws://` went to any host.
        let key = "#e2ee=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        let join = |host: &str, listed: &[String]| {
            validate_join(&JoinRequest { link: format!("janus+ws://{host}/?room=1{key}") }, true, listed)
        };
        for ok in ["127.0.0.1:8188", "localhost:8188", "[::1]:8188", "127.1.2.3"] {
            assert!(join(ok, &[]).is_ok(), "{ok}");
        }
        for refused in ["192.168.1.1:22", "10.0.0.1", "printer.local:9100", "[fe80::1]"] {
            let e = join(refused, &[]).expect_err("refused");
            assert!(e.message.contains("plain_ws_hosts"), "{refused}: {}", e.message);
        }
        assert!(join("10.0.0.1:8188", &["10.0.0.1".to_owned()]).is_ok());
        let lab = ["10.231.0.0/16".to_owned()];
        assert!(join("10.231.7.2:8188", &lab).is_ok(), "inside a listed network");
        assert!(join("10.232.0.1:8188", &lab).is_err(), "outside it");
        assert!(join("10.231.7.2:8188", &["10.231.0.0/40".to_owned()]).is_err(), "a bad prefix lists nothing");
        let wss = JoinRequest { link: format!("janus+wss://192.168.1.1/?room=1{key}") };
        assert!(validate_join(&wss, true, &[]).is_ok(), "TLS signalling goes anywhere");
        // The same rule for Jitsi's plain WebSocket links; a Jitsi link needs no key.
        let jitsi = |link: &str, listed: &[String]| validate_join(&JoinRequest { link: link.to_owned() }, true, listed);
        assert!(jitsi("jitsi+ws://127.0.0.1:5280/room?domain=meet.jitsi", &[]).is_ok());
        let e = jitsi("jitsi+ws://10.0.0.1:5280/room?domain=meet.jitsi", &[]).expect_err("refused");
        assert!(e.message.contains("plain_ws_hosts"), "{}", e.message);
        assert!(jitsi("jitsi+ws://10.231.7.2:5280/room?domain=meet.jitsi", &lab).is_ok());
        assert!(jitsi("https://meet.example.org/Room", &[]).is_ok(), "TLS signalling goes anywhere");
    }

    #[test]
    fn a_link_without_a_key_depends_on_the_rooms_policy() {
        let req = JoinRequest { link: "janus+wss://sfu.example/janus?room=1".into() };
        let e = validate_join(&req, true, &[]).expect_err("refused");
        assert!(e.message.contains("refuses meetings without one"), "{}", e.message);
        let link = validate_join(&req, false, &[]).expect("allowed");
        assert!(link.key().is_none());
    }
}
