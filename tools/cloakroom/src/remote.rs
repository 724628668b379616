//! `cloakroom pair|status|join|leave|mute`: the device's JSON API from the
//! command line (the same calls the web page makes; see
//! firmware/appliance/README.md).
//!
//! The device's certificate is self-signed, so it is pinned by its SHA-256
//! fingerprint, as shown on the room screen (its first 8 bytes, or all 32):
//! `pair --fingerprint` checks it before the code is sent. Without it,
//! `pair` sends nothing: it prints the fingerprint the device presented for
//! the user to compare with the screen and give back. The session (device address, fingerprint, cookie, CSRF
//! token) is kept in `$CLOAKROOM_SESSION`, or
//! `$XDG_CONFIG_HOME/cloakroom/session.json` (`~/.config/…`), mode 0600.
//! Meeting links are best given on stdin (`join -`): the key then stays out
//! of the process list and the shell history.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use cloakroom_appliance::web::tls::fingerprint_of;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct PairArgs {
    /// The code on the room screen (6 digits; 10 while someone is guessing).
    code: String,
    /// The device's page, e.g. `https://192.168.1.20` or `https://room.local:8443`.
    #[arg(long)]
    device: String,
    /// The certificate fingerprint on the room screen (`cert: AB:CD:…`, its
    /// first 8 bytes or all 32). Without it nothing is sent: the device's
    /// fingerprint is printed for you to compare with the screen.
    #[arg(long)]
    fingerprint: Option<String>,
    /// Read the admin password from stdin (when the device has one).
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    /// Print the device's JSON as it is.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct JoinArgs {
    /// The meeting link, or `-` to read it from stdin (keeps the key out of
    /// the process list).
    link: String,
}

#[derive(Args)]
pub struct MuteArgs {
    state: OnOff,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The participant: their display name, or their id (`cloakroom status --json`).
    participant: String,
    /// Start verifying; then, having compared the code with theirs, confirm or reject it.
    action: VerifyAction,
}

#[derive(Clone, Copy, ValueEnum)]
enum VerifyAction {
    Start,
    Confirm,
    Reject,
}

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// What `pair` keeps for the other commands.
#[derive(Serialize, Deserialize)]
struct Session {
    device: String,
    fingerprint: String,
    cookie: String,
    csrf: String,
}

pub fn pair(args: PairArgs) -> Result<()> {
    let device = Device::parse(&args.device)?;
    if ![6, 10].contains(&args.code.len()) || !args.code.bytes().all(|b| b.is_ascii_digit()) {
        bail!("the pairing code is the 6 (or 10) digits on the room screen");
    }
    let Some(expected) = args.fingerprint.as_deref() else {
        // Learn what the device presents without sending it anything of ours.
        let seen = device.request("GET", "/healthz", None, None, None)?.fingerprint;
        let short = seen.split(':').take(SCREEN_BYTES).collect::<Vec<_>>().join(":");
        bail!(
            "not paired: the device at {} presents the certificate {short}…; if the room screen shows the same \
             after `cert:`, run this again with --fingerprint {short}",
            device.origin()
        );
    };
    let expected = normalise_fingerprint(expected);
    if expected.len() < SCREEN_BYTES * 3 - 1 || expected.len() > 32 * 3 - 1 {
        bail!("--fingerprint: give the {SCREEN_BYTES} bytes (AB:CD:…) the room screen shows, or all 32");
    }
    let mut body = json!({ "code": args.code });
    if args.password_stdin {
        let mut password = String::new();
        std::io::stdin().read_to_string(&mut password).context("read the password from stdin")?;
        body["password"] = Value::String(password.trim_end_matches(['\r', '\n']).to_owned());
    }
    let answer = device.request("POST", "/api/pair", Some(&body), None, Some(&expected))?;
    let answer = answer.ok()?;
    let cookie = answer.cookie.clone().context("the device set no session cookie")?;
    let reply = answer.json()?;
    let csrf = reply["csrf"].as_str().context("no csrf token in the answer")?.to_owned();
    let session = Session { device: device.origin(), fingerprint: answer.fingerprint, cookie, csrf };
    save_session(&session)?;
    println!("paired with {} as {}", session.device, reply["role"].as_str().unwrap_or("?"));
    Ok(())
}

pub fn status(args: StatusArgs) -> Result<()> {
    let (device, session) = load()?;
    let st = device.request("GET", "/api/status", None, Some(&session), Some(&session.fingerprint))?.ok()?.json()?;
    if args.json {
        println!("{st}");
        return Ok(());
    }
    let s = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    println!("state: {}", s(&st["state"]).replace('_', " "));
    if let Some(m) = st["meeting"].as_str() {
        println!("meeting: {m}");
    }
    if let Some(e) = st["error"].as_str() {
        println!("error: {e} (attempt {}, retry in {} ms)", st["attempts"], st["retry_in_ms"]);
    }
    println!("muted: {}", st["muted"]);
    if st["encryption"]["encrypted"].as_bool() == Some(true) {
        println!("encryption: end to end, key check {}", s(&st["encryption"]["verification"]));
    }
    let people: Vec<String> = st["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let v = &p["verification"];
            let note = match v["state"].as_str() {
                Some("code") => {
                    let numbers: Vec<String> =
                        v["decimals"].as_array().into_iter().flatten().map(|d| d.to_string()).collect();
                    format!(" (compare code {})", numbers.join(" "))
                }
                Some("verified") => " (verified)".to_owned(),
                Some("mismatch") => " (NOT verified: the codes differ)".to_owned(),
                Some(_) => format!(" (verification failed: {})", s(&v["reason"])),
                None => String::new(),
            };
            let refused = p["media_refused"].as_str().map(|r| format!(" (no media: {r})")).unwrap_or_default();
            let frames = p["encryption"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
            format!("{}{frames}{note}{refused}", s(&p["display"]))
        })
        .collect();
    println!("participants: {}", if people.is_empty() { "—".to_owned() } else { people.join(", ") });
    let m = &st["media"];
    println!(
        "media: send {} kbit/s, receive {} kbit/s, loss {} %, frames sent {}, received {}, decrypt failures {}",
        m["send_bitrate_kbps"],
        m["receive_bitrate_kbps"],
        m["packet_loss_percent"],
        m["frames_sent"],
        m["frames_received"],
        m["decrypt_failures"]
    );
    Ok(())
}

pub fn join(args: JoinArgs) -> Result<()> {
    let link = if args.link == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("read the link from stdin")?;
        s.trim().to_owned()
    } else {
        args.link
    };
    post("/api/join", &json!({ "link": link }))?;
    println!("joining");
    Ok(())
}

pub fn leave() -> Result<()> {
    post("/api/leave", &json!({}))?;
    println!("leaving");
    Ok(())
}

pub fn mute(args: MuteArgs) -> Result<()> {
    let muted = matches!(args.state, OnOff::On);
    post("/api/mute", &json!({ "muted": muted }))?;
    println!("{}", if muted { "muted" } else { "unmuted" });
    Ok(())
}

pub fn verify(args: VerifyArgs) -> Result<()> {
    let (device, session) = load()?;
    let st = device.request("GET", "/api/status", None, Some(&session), Some(&session.fingerprint))?.ok()?.json()?;
    let people = st["participants"].as_array().cloned().unwrap_or_default();
    let matching: Vec<&Value> = people
        .iter()
        .filter(|p| p["id"].as_str() == Some(&args.participant) || p["display"].as_str() == Some(&args.participant))
        .collect();
    let id = match matching.as_slice() {
        [one] => one["id"].as_str().unwrap_or_default().to_owned(),
        [] => anyhow::bail!("nobody called {:?} is in the meeting", args.participant),
        _ => anyhow::bail!(
            "more than one participant is called {:?}: give the id (cloakroom status --json)",
            args.participant
        ),
    };
    let action = match args.action {
        VerifyAction::Start => "start",
        VerifyAction::Confirm => "confirm",
        VerifyAction::Reject => "reject",
    };
    post("/api/verify", &json!({ "participant": id, "action": action }))?;
    println!("verification: {action}");
    Ok(())
}

fn post(path: &str, body: &Value) -> Result<()> {
    let (device, session) = load()?;
    device.request("POST", path, Some(body), Some(&session), Some(&session.fingerprint))?.ok()?;
    Ok(())
}

fn load() -> Result<(Device, Session)> {
    let path = session_path()?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no session in {}: run `cloakroom pair CODE --device URL` first", path.display()))?;
    let session: Session =
        serde_json::from_str(&text).with_context(|| format!("{} is not a session", path.display()))?;
    Ok((Device::parse(&session.device)?, session))
}

fn session_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("CLOAKROOM_SESSION") {
        return Ok(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("cloakroom").join("session.json"))
}

fn save_session(session: &Session) -> Result<()> {
    let path = session_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("write {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(session)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// Bytes of the certificate fingerprint the room screen shows.
const SCREEN_BYTES: usize = 8;

/// `AB:CD:…` upper case, from any of `ab:cd…`, `abcd…`.
fn normalise_fingerprint(s: &str) -> String {
    let hex: String = s.chars().filter(char::is_ascii_hexdigit).collect::<String>().to_ascii_uppercase();
    hex.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
}

/// A device's page: host and port of an `https://` URL.
struct Device {
    host: String,
    port: u16,
}

impl Device {
    fn parse(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("https://").context("the device address starts with https://")?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            bail!("no host in the device address");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                (h.trim_matches(['[', ']']).to_owned(), p.parse().context("the port in the device address")?)
            }
            _ => (authority.trim_matches(['[', ']']).to_owned(), 443),
        };
        Ok(Self { host, port })
    }

    fn origin(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == 443 { format!("https://{host}") } else { format!("https://{host}:{}", self.port) }
    }

    /// One HTTPS request; the certificate's fingerprint must start with
    /// `pin` (at least the screen's 8 bytes; any certificate when `None`).
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        session: Option<&Session>,
        pin: Option<&str>,
    ) -> Result<Answer> {
        let verifier = Arc::new(Pinned::new(pin.map(str::to_owned)));
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let name = ServerName::try_from(self.host.clone()).context("the device's host name")?;
        let conn = rustls::ClientConnection::new(Arc::new(config), name)?;
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .with_context(|| format!("connect to {}", self.origin()))?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        tcp.set_write_timeout(Some(TIMEOUT))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\n",
            self.origin().trim_start_matches("https://")
        );
        if method != "GET" {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        if let Some(s) = session {
            head.push_str(&format!("Cookie: {}\r\nX-CSRF-Token: {}\r\n", s.cookie, s.csrf));
        }
        head.push_str("\r\n");
        let sent = tls.write_all(head.as_bytes()).and_then(|()| tls.write_all(body.as_bytes()));
        if let Err(e) = sent {
            if let Some(seen) = verifier.mismatch() {
                bail!("the device's certificate fingerprint is {seen}, not the one paired with: not talking to it");
            }
            return Err(anyhow!(e).context(format!("send to {}", self.origin())));
        }
        let mut raw = Vec::new();
        if let Err(e) = tls.read_to_end(&mut raw) {
            // A peer that closes without close_notify still sent a whole answer.
            if raw.is_empty() {
                return Err(anyhow!(e).context(format!("read from {}", self.origin())));
            }
        }
        let mut answer = parse_response(&raw)?;
        answer.fingerprint = verifier.seen().unwrap_or_default();
        Ok(answer)
    }
}

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    cookie: Option<String>,
    body: Vec<u8>,
    fingerprint: String,
}

impl Answer {
    fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).context("the device's answer is not JSON")
    }

    /// The answer if 2xx, else the device's error message.
    fn ok(self) -> Result<Self> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let message = self
            .json()
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).trim().to_owned());
        match self.status {
            401 => bail!("{message} (401: pair again with `cloakroom pair CODE --device URL`)"),
            s => bail!("{message} ({s})"),
        }
    }
}

/// Parses `HTTP/1.1 200 OK\r\nheaders\r\n\r\nbody` (body by length, chunked, or to the end).
fn parse_response(raw: &[u8]) -> Result<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no HTTP header in the answer")?;
    let head = std::str::from_utf8(&raw[..split]).context("HTTP header is not text")?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line `{status_line}`"))?;
    let (mut cookie, mut length, mut chunked) = (None, None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "set-cookie" => cookie = value.split(';').next().map(str::to_owned),
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n).context("the answer ended early")?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Answer { status, cookie, body, fingerprint: String::new() })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").context("bad chunk")?;
        let size_text = std::str::from_utf8(&data[..eol])?.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).context("the answer ended inside a chunk")?);
        data = data.get(size + 2..).context("the answer ended after a chunk")?;
    }
}

/// Accepts exactly the pinned certificate (or any, remembering it), and
/// checks the handshake signatures with it as usual.
#[derive(Debug)]
struct Pinned {
    pin: Option<String>,
    seen: std::sync::Mutex<Option<String>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl Pinned {
    fn new(pin: Option<String>) -> Self {
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        Self { pin, seen: std::sync::Mutex::new(None), algorithms }
    }

    fn seen(&self) -> Option<String> {
        self.seen.lock().ok().and_then(|s| s.clone())
    }

    fn mismatch(&self) -> Option<String> {
        let seen = self.seen()?;
        self.pin.as_deref().is_some_and(|pin| !pin_matches(pin, &seen)).then_some(seen)
    }
}

/// Whether a fingerprint (`AB:CD:…`, 32 bytes) is the pinned one: `pin` is
/// all of it, or its first [`SCREEN_BYTES`] or more bytes as the screen shows.
fn pin_matches(pin: &str, fingerprint: &str) -> bool {
    pin.len() >= SCREEN_BYTES * 3 - 1
        && fingerprint.starts_with(pin)
        && (pin.len() == fingerprint.len() || fingerprint.as_bytes().get(pin.len()) == Some(&b':'))
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint = fingerprint_of(end_entity);
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(fingerprint.clone());
        }
        match &self.pin {
            Some(pin) if !pin_matches(pin, &fingerprint) => {
                Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_chunked_and_cookie() {
        let a = parse_response(
            b"HTTP/1.1 200 OK\r\nset-cookie: __Host-cloakroom=abc; HttpOnly; Secure\r\ncontent-length: 2\r\n\r\n{}xx",
        )
        .expect("answer");
        assert_eq!((a.status, a.cookie.as_deref(), a.body.as_slice()), (200, Some("__Host-cloakroom=abc"), &b"{}"[..]));
        let c = parse_response(
            b"HTTP/1.1 401 Unauthorized\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n",
        )
        .expect("chunked");
        assert_eq!(c.body, b"{\"a\":1}");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort").is_err());
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn errors_carry_the_devices_message() {
        let a = Answer {
            status: 409,
            cookie: None,
            body: br#"{"error":{"code":"busy","message":"the room is already in a meeting; leave first"}}"#.to_vec(),
            fingerprint: String::new(),
        };
        assert_eq!(a.ok().expect_err("409").to_string(), "the room is already in a meeting; leave first (409)");
    }

    #[test]
    fn device_addresses() {
        let d = Device::parse("https://10.0.0.5:8443/").expect("addr");
        assert_eq!((d.host.as_str(), d.port, d.origin()), ("10.0.0.5", 8443, "https://10.0.0.5:8443".to_owned()));
        assert_eq!(Device::parse("https://room.local").expect("addr").port, 443);
        assert_eq!(Device::parse("https://[::1]:8443").expect("v6").host, "::1");
        assert!(Device::parse("http://room.local").is_err());
        assert!(Device::parse("https://user@room.local").is_err());
    }

    #[test]
    fn the_screens_eight_bytes_pin_the_certificate() {
        // Security review finding 14: the screen shows 8 bytes, the CLI wanted 32.
        let full = normalise_fingerprint(&"ab".repeat(32));
        let screen = full.split(':').take(SCREEN_BYTES).collect::<Vec<_>>().join(":");
        assert!(pin_matches(&screen, &full));
        assert!(pin_matches(&full, &full));
        assert!(!pin_matches(&screen[..screen.len() - 3], &full), "fewer than 8 bytes pin nothing");
        assert!(!pin_matches(&screen[..screen.len() - 1], &full), "half a byte is no pin");
        let other = normalise_fingerprint(&format!("ac{}", "ab".repeat(31)));
        assert!(!pin_matches(&screen, &other));
    }

    #[test]
    fn fingerprints_compare_in_any_spelling() {
        assert_eq!(normalise_fingerprint("ab:cd:0f"), "AB:CD:0F");
        assert_eq!(normalise_fingerprint("ABCD0F"), "AB:CD:0F");
    }
}
