//! Appliance configuration: the TOML file under `/etc/cloakroom` (TOML 1.0,
//! read with serde), validated into [`Settings`], plus the settings the web
//! page changes, kept as an overlay in the state directory
//! (`<state_dir>/settings.toml`) because an A/B update replaces `/etc`.
//!
//! Every key, its default and an example are documented in
//! `dist/config/cloakroom.toml`; the defaults here must match it (a test
//! checks that the shipped file parses to [`ConfigFile::default`]).
//!
//! Files are written atomically (POSIX `rename(2)` semantics): a temporary
//! file in the same directory is written and `fsync`ed, renamed over the
//! target, and the directory is `fsync`ed, so after a crash or `kill -9` the
//! file is the old or the new content, never a mix.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ApplianceError;
use crate::pairing::PasswordHash;

/// Name of the web page's settings overlay in the state directory.
pub const SETTINGS_OVERLAY: &str = "settings.toml";

/// Longest room name, in characters.
pub const MAX_ROOM_NAME: usize = 64;
/// Longest device name, in characters.
pub const MAX_DEVICE_NAME: usize = 128;
/// Board profiles a config may force.
pub const BOARD_PROFILES: [&str; 4] = ["auto", "raspberrypi4-64", "raspberrypi5", "qemu-virt"];

/// The config file as written: every section and key, each with a default.
/// Unknown keys are refused. Use [`Settings::from_file`] to validate it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    pub room: RoomSection,
    pub devices: DevicesSection,
    pub video: VideoSection,
    pub web: WebSection,
    pub board: BoardSection,
    pub e2ee: E2eeSection,
    pub links: LinksSection,
    pub paths: PathsSection,
}

/// `[links]`: what meeting links the web page and the phone may ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksSection {
    /// Hosts (names or addresses, as written in links, or networks such as
    /// `10.231.0.0/16`) that `janus+ws://` links (signalling without TLS)
    /// may reach besides loopback: a lab's or a test's server. Empty by default: through the page and the
    /// phone, plain WebSocket reaches this device's own loopback only.
    pub plain_ws_hosts: Vec<String>,
}

/// `[room]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomSection {
    /// Shown on the room screen and the web page.
    pub name: String,
}

impl Default for RoomSection {
    fn default() -> Self {
        Self { name: "Meeting room".to_owned() }
    }
}

/// `[devices]`: `"auto"` or a device as listed by `cloakroom devices`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevicesSection {
    pub camera: String,
    pub microphone: String,
    pub speaker: String,
}

impl Default for DevicesSection {
    fn default() -> Self {
        Self { camera: "auto".to_owned(), microphone: "auto".to_owned(), speaker: "auto".to_owned() }
    }
}

/// `[video]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideoSection {
    /// `"<width>x<height>"`.
    pub resolution: String,
    /// Frames per second, 1 to 60.
    pub framerate: i64,
    /// `"vp8"` or `"h264"`.
    pub codec: String,
}

impl Default for VideoSection {
    fn default() -> Self {
        Self { resolution: "1280x720".to_owned(), framerate: 30, codec: "vp8".to_owned() }
    }
}

/// `[web]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSection {
    /// Address both ports listen on.
    pub bind: String,
    /// HTTPS port (0: any free port, for tests).
    pub https_port: i64,
    /// Plain HTTP port that only redirects (0: any free port).
    pub http_port: i64,
    /// Optional admin password, as made by `PasswordHash::create`; empty for none.
    pub admin_password_hash: RedactedString,
}

impl Default for WebSection {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0".to_owned(),
            https_port: 443,
            http_port: 80,
            admin_password_hash: RedactedString::default(),
        }
    }
}

/// `[board]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoardSection {
    pub profile: String,
}

impl Default for BoardSection {
    fn default() -> Self {
        Self { profile: "auto".to_owned() }
    }
}

/// `[e2ee]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct E2eeSection {
    /// Refuse a meeting link without an end-to-end encryption key.
    pub require_key: bool,
}

impl Default for E2eeSection {
    fn default() -> Self {
        Self { require_key: true }
    }
}

/// `[paths]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsSection {
    /// Device state: settings overlay, pairing state, certificate and key.
    pub state_dir: String,
}

impl Default for PathsSection {
    fn default() -> Self {
        Self { state_dir: "/var/lib/cloakroom".to_owned() }
    }
}

/// A string that is wiped on drop and prints as `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct RedactedString(String);

impl RedactedString {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedactedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Preferred video codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Vp8,
    H264,
}

/// Capture size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
}

/// The validated configuration. Built only by [`Settings::from_file`], so a
/// value of this type always holds acceptable settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub room_name: String,
    pub camera: String,
    pub microphone: String,
    pub speaker: String,
    pub resolution: Resolution,
    pub framerate: u32,
    pub codec: Codec,
    pub bind: IpAddr,
    pub https_port: u16,
    pub http_port: u16,
    pub board_profile: String,
    pub require_key: bool,
    pub state_dir: PathBuf,
    pub admin_password: Option<PasswordHash>,
    /// `[links] plain_ws_hosts`, lower case.
    pub plain_ws_hosts: Vec<String>,
}

impl Settings {
    /// Validates a config document; the error names the first bad key.
    pub fn from_file(file: &ConfigFile) -> Result<Self, ApplianceError> {
        let room_name = check_text("room.name", &file.room.name, MAX_ROOM_NAME)?;
        let camera = check_text("devices.camera", &file.devices.camera, MAX_DEVICE_NAME)?;
        let microphone = check_text("devices.microphone", &file.devices.microphone, MAX_DEVICE_NAME)?;
        let speaker = check_text("devices.speaker", &file.devices.speaker, MAX_DEVICE_NAME)?;
        let resolution = parse_resolution("video.resolution", &file.video.resolution)?;
        let framerate = match file.video.framerate {
            n @ 1..=60 => n as u32,
            n => return Err(ApplianceError::invalid("video.framerate", format!("{n} is not between 1 and 60"))),
        };
        let codec = match file.video.codec.as_str() {
            "vp8" => Codec::Vp8,
            "h264" => Codec::H264,
            other => {
                return Err(ApplianceError::invalid(
                    "video.codec",
                    format!("`{}` is not \"vp8\" or \"h264\"", shorten(other)),
                ));
            }
        };
        let bind = file.web.bind.parse::<IpAddr>().map_err(|_| {
            ApplianceError::invalid("web.bind", format!("`{}` is not an IP address", shorten(&file.web.bind)))
        })?;
        let https_port = check_port("web.https_port", file.web.https_port)?;
        let http_port = check_port("web.http_port", file.web.http_port)?;
        if https_port != 0 && https_port == http_port {
            return Err(ApplianceError::invalid("web.http_port", format!("{http_port} is also web.https_port")));
        }
        let board_profile = file.board.profile.clone();
        if !BOARD_PROFILES.contains(&board_profile.as_str()) {
            return Err(ApplianceError::invalid(
                "board.profile",
                format!("`{}` is not one of {}", shorten(&board_profile), BOARD_PROFILES.join(", ")),
            ));
        }
        let state_dir = PathBuf::from(&file.paths.state_dir);
        if !state_dir.is_absolute() {
            return Err(ApplianceError::invalid(
                "paths.state_dir",
                format!("`{}` is not an absolute path", shorten(&file.paths.state_dir)),
            ));
        }
        let admin_password = match file.web.admin_password_hash.expose() {
            "" => None,
            hash => Some(
                PasswordHash::parse(hash)
                    .map_err(|e| ApplianceError::invalid("web.admin_password_hash", e.to_string()))?,
            ),
        };
        let mut plain_ws_hosts = Vec::new();
        for host in &file.links.plain_ws_hosts {
            let ok = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'/'));
            if !ok {
                return Err(ApplianceError::invalid(
                    "links.plain_ws_hosts",
                    format!("`{}` is not a host name or address", shorten(host)),
                ));
            }
            plain_ws_hosts.push(host.to_ascii_lowercase());
        }
        Ok(Self {
            plain_ws_hosts,
            room_name,
            camera,
            microphone,
            speaker,
            resolution,
            framerate,
            codec,
            bind,
            https_port,
            http_port,
            board_profile,
            require_key: file.e2ee.require_key,
            state_dir,
            admin_password,
        })
    }

    /// The settings the web page may change.
    pub fn editable(&self) -> EditableSettings {
        EditableSettings {
            room_name: self.room_name.clone(),
            camera: self.camera.clone(),
            microphone: self.microphone.clone(),
            speaker: self.speaker.clone(),
            resolution: format!("{}x{}", self.resolution.width, self.resolution.height),
            framerate: i64::from(self.framerate),
            codec: match self.codec {
                Codec::Vp8 => "vp8".to_owned(),
                Codec::H264 => "h264".to_owned(),
            },
            require_key: self.require_key,
        }
    }
}

/// The settings the web page changes (`GET`/`PUT /api/settings`), stored as
/// `<state_dir>/settings.toml` over the config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditableSettings {
    pub room_name: String,
    pub camera: String,
    pub microphone: String,
    pub speaker: String,
    pub resolution: String,
    pub framerate: i64,
    pub codec: String,
    pub require_key: bool,
}

impl EditableSettings {
    /// `file` with these settings applied.
    pub fn apply_to(&self, file: &ConfigFile) -> ConfigFile {
        let mut out = file.clone();
        out.room.name = self.room_name.clone();
        out.devices.camera = self.camera.clone();
        out.devices.microphone = self.microphone.clone();
        out.devices.speaker = self.speaker.clone();
        out.video.resolution = self.resolution.clone();
        out.video.framerate = self.framerate;
        out.video.codec = self.codec.clone();
        out.e2ee.require_key = self.require_key;
        out
    }
}

/// Parses a config document (no validation beyond the key names and types).
pub fn parse_config(text: &str) -> Result<ConfigFile, ApplianceError> {
    toml::from_str(text).map_err(|e| syntax_error("config", text, &e))
}

/// A TOML syntax error as line, column and what is wrong, without the
/// quoted source line `toml`'s own message carries (it may be the
/// `admin_password_hash` line, or a secret pasted into the wrong place).
fn syntax_error(path: &str, text: &str, e: &toml::de::Error) -> ApplianceError {
    let message = match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            // The key of that line, never its value.
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let key = text[line_start..].split(['=', '\n']).next().unwrap_or("").trim();
            let key_ok = text[line_start..].contains('=')
                && !key.is_empty()
                && key.len() <= 40
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            match key_ok {
                true => format!("line {line}, column {column} (key `{key}`): {}", e.message()),
                false => format!("line {line}, column {column}: {}", e.message()),
            }
        }
        None => e.message().to_owned(),
    };
    ApplianceError::ConfigSyntax { path: path.to_owned(), message }
}

/// Serialises a config document as TOML.
pub fn render_config(file: &ConfigFile) -> String {
    // Serialising plain structs of strings, integers and booleans cannot fail.
    toml::to_string(file).unwrap_or_default()
}

/// The config file plus the web page's overlay, validated, and where to save changes.
#[derive(Debug)]
pub struct ConfigStore {
    base: ConfigFile,
    settings: Settings,
}

impl ConfigStore {
    /// Reads and validates `path` and the overlay in its state directory.
    pub fn load(path: &Path) -> Result<Self, ApplianceError> {
        let text = fs::read_to_string(path).map_err(|e| ApplianceError::io(path, e))?;
        let base =
            toml::from_str::<ConfigFile>(&text).map_err(|e| syntax_error(&path.display().to_string(), &text, &e))?;
        Self::from_base(base)
    }

    /// Validates `base` and applies the overlay found in its state directory.
    pub fn from_base(base: ConfigFile) -> Result<Self, ApplianceError> {
        let base_settings = Settings::from_file(&base)?;
        let overlay_path = base_settings.state_dir.join(SETTINGS_OVERLAY);
        let effective = match fs::read_to_string(&overlay_path) {
            Ok(text) => {
                let edit: EditableSettings =
                    toml::from_str(&text).map_err(|e| syntax_error(&overlay_path.display().to_string(), &text, &e))?;
                edit.apply_to(&base)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => base.clone(),
            Err(e) => return Err(ApplianceError::io(overlay_path, e)),
        };
        let settings = Settings::from_file(&effective)?;
        Ok(Self { base, settings })
    }

    /// The config file as read, without the overlay.
    pub fn base(&self) -> &ConfigFile {
        &self.base
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Validates `edit`, writes it atomically to the overlay, and makes it current.
    pub fn update(&mut self, edit: &EditableSettings) -> Result<(), ApplianceError> {
        let settings = Settings::from_file(&edit.apply_to(&self.base))?;
        ensure_state_dir(&settings.state_dir)?;
        // Plain strings, integers and booleans: serialising cannot fail.
        let text = toml::to_string(edit).unwrap_or_default();
        write_atomic(&settings.state_dir.join(SETTINGS_OVERLAY), text.as_bytes(), 0o644)?;
        self.settings = settings;
        Ok(())
    }
}

/// Creates the state directory (mode 0700), or corrects an existing one to
/// 0700: it holds the device key and the sessions, and a directory found
/// with wider permissions (an image built wrong, a hand-made directory)
/// must not stay open. One this user cannot change (owned by another user)
/// is refused.
pub fn ensure_state_dir(dir: &Path) -> Result<(), ApplianceError> {
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| ApplianceError::io(dir, e));
        }
        Err(e) => return Err(ApplianceError::io(dir, e)),
    };
    if !meta.is_dir() {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory");
        return Err(ApplianceError::io(dir, e));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
            let why = format!("has mode {mode:o} and could not be made 0700 (is it this user's?): {e}");
            ApplianceError::io(dir, std::io::Error::new(e.kind(), why))
        })?;
        tracing::warn!("state directory {} had mode {mode:o}; corrected to 0700", dir.display());
    }
    Ok(())
}

/// Writes a device secret (mode 0600) atomically.
pub fn write_secret(path: &Path, contents: &[u8]) -> Result<(), ApplianceError> {
    write_atomic(path, contents, 0o600)
}

/// Reads a device secret written by [`write_secret`], trusting it only as
/// written: a regular file (not a link to somewhere else, not hard-linked),
/// owned by the owner of its directory and readable by nobody else.
/// `Ok(None)`: there is none. Anything else found there is an error, for
/// the caller to log and replace.
pub fn read_secret(path: &Path) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, ApplianceError> {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;
    let refuse =
        |why: &str| ApplianceError::io(path, std::io::Error::new(std::io::ErrorKind::PermissionDenied, why.to_owned()));
    let link = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ApplianceError::io(path, e)),
    };
    if !link.file_type().is_file() {
        return Err(refuse("not a regular file (a symbolic link?); not trusted"));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let owner = fs::metadata(dir).map_err(|e| ApplianceError::io(dir, e))?.uid();
    let mut file = fs::File::open(path).map_err(|e| ApplianceError::io(path, e))?;
    let meta = file.metadata().map_err(|e| ApplianceError::io(path, e))?;
    if (meta.dev(), meta.ino()) != (link.dev(), link.ino()) {
        return Err(refuse("replaced while being opened; not trusted"));
    }
    if meta.nlink() != 1 {
        return Err(refuse("has other hard links; not trusted"));
    }
    if meta.uid() != owner {
        return Err(refuse("owned by another user than its directory; not trusted"));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(refuse("readable or writable by other users; not trusted"));
    }
    let mut contents = zeroize::Zeroizing::new(Vec::new());
    file.read_to_end(&mut contents).map_err(|e| ApplianceError::io(path, e))?;
    Ok(Some(contents))
}

/// Replaces `path` with `contents` so that a crash at any moment leaves the
/// old or the new content: write a new temporary file with a random name in
/// the same directory (created exclusively, so nothing planted there, not
/// even a symbolic link, is followed), fsync, rename over `path`, fsync the
/// directory.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), ApplianceError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        ApplianceError::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))
    })?;
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| ApplianceError::Random(e.to_string()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", crate::pairing::to_hex(&random)));
    let tmp = dir.join(tmp_name);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| ApplianceError::io(&tmp, e))?;
    let written = file
        .set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|()| file.write_all(contents))
        .and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(ApplianceError::io(path, e));
    }
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| ApplianceError::io(dir, e))
}

fn check_text(key: &str, value: &str, max: usize) -> Result<String, ApplianceError> {
    let len = value.chars().count();
    if len == 0 || value.trim().is_empty() {
        return Err(ApplianceError::invalid(key, "is empty"));
    }
    if len > max {
        return Err(ApplianceError::invalid(key, format!("is {len} characters, longer than {max}")));
    }
    if value.chars().any(char::is_control) {
        return Err(ApplianceError::invalid(key, "contains control characters"));
    }
    if value.chars().any(cloakroom_meeting::text::is_invisible) {
        return Err(ApplianceError::invalid(
            key,
            "contains invisible or direction-changing characters (zero-width, bidi controls)",
        ));
    }
    Ok(value.to_owned())
}

fn parse_resolution(key: &str, value: &str) -> Result<Resolution, ApplianceError> {
    let bad = || ApplianceError::invalid(key, format!("`{}` is not <width>x<height>", shorten(value)));
    let (w, h) = value.split_once('x').ok_or_else(bad)?;
    let all_digits = |s: &str| !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(w) || !all_digits(h) {
        return Err(bad());
    }
    let (width, height) = (w.parse::<u32>().map_err(|_| bad())?, h.parse::<u32>().map_err(|_| bad())?);
    if !(160..=1920).contains(&width) || !(120..=1080).contains(&height) {
        return Err(ApplianceError::invalid(key, format!("{width}x{height} is not between 160x120 and 1920x1080")));
    }
    if width % 2 != 0 || height % 2 != 0 {
        return Err(ApplianceError::invalid(key, format!("{width}x{height} has an odd width or height")));
    }
    Ok(Resolution { width, height })
}

fn check_port(key: &str, value: i64) -> Result<u16, ApplianceError> {
    u16::try_from(value).map_err(|_| ApplianceError::invalid(key, format!("{value} is not between 0 and 65535")))
}

/// The first 32 characters of a user value, for error messages.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(32).collect();
    if s.chars().count() > 32 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base_with(f: impl FnOnce(&mut ConfigFile)) -> ConfigFile {
        let mut c = ConfigFile::default();
        f(&mut c);
        c
    }

    fn error_of(c: &ConfigFile) -> String {
        Settings::from_file(c).expect_err("should be refused").to_string()
    }

    #[test]
    fn shipped_config_is_the_default() {
        let text = include_str!("../../../dist/config/cloakroom.toml");
        let file = parse_config(text).expect("shipped config parses");
        assert_eq!(file, ConfigFile::default());
        let s = Settings::from_file(&file).expect("shipped config is valid");
        assert_eq!(s.framerate, 30);
        assert_eq!(s.resolution, Resolution { width: 1280, height: 720 });
        assert!(s.require_key);
        assert!(s.admin_password.is_none());
    }

    #[test]
    fn errors_name_the_key_and_the_problem() {
        assert_eq!(error_of(&base_with(|c| c.video.framerate = 0)), "video.framerate: 0 is not between 1 and 60");
        assert_eq!(error_of(&base_with(|c| c.video.framerate = 61)), "video.framerate: 61 is not between 1 and 60");
        assert_eq!(
            error_of(&base_with(|c| c.video.codec = "av1".into())),
            "video.codec: `av1` is not \"vp8\" or \"h264\""
        );
        assert_eq!(error_of(&base_with(|c| c.room.name = String::new())), "room.name: is empty");
        assert_eq!(error_of(&base_with(|c| c.room.name = "a\u{7}b".into())), "room.name: contains control characters");
        // Security review finding 18: a name that reads differently than it is, or hides characters.
        for sneaky in ["Board\u{202E}moor", "Board\u{200B}room", "\u{2066}Board\u{2069}"] {
            assert!(error_of(&base_with(|c| c.room.name = sneaky.into())).contains("direction-changing"), "{sneaky:?}");
        }
        assert!(
            error_of(&base_with(|c| c.links.plain_ws_hosts = vec!["a b".into()])).starts_with("links.plain_ws_hosts")
        );
        assert_eq!(
            error_of(&base_with(|c| c.video.resolution = "1280*720".into())),
            "video.resolution: `1280*720` is not <width>x<height>"
        );
        assert_eq!(
            error_of(&base_with(|c| c.video.resolution = "4096x2160".into())),
            "video.resolution: 4096x2160 is not between 160x120 and 1920x1080"
        );
        assert_eq!(
            error_of(&base_with(|c| c.web.https_port = 70000)),
            "web.https_port: 70000 is not between 0 and 65535"
        );
        assert_eq!(error_of(&base_with(|c| c.web.http_port = 443)), "web.http_port: 443 is also web.https_port");
        assert_eq!(error_of(&base_with(|c| c.web.bind = "example".into())), "web.bind: `example` is not an IP address");
        assert!(
            error_of(&base_with(|c| c.board.profile = "pi3".into())).starts_with("board.profile: `pi3` is not one of")
        );
        assert_eq!(
            error_of(&base_with(|c| c.paths.state_dir = "state".into())),
            "paths.state_dir: `state` is not an absolute path"
        );
        assert!(
            error_of(&base_with(|c| c.web.admin_password_hash = RedactedString::new("x".into())))
                .starts_with("web.admin_password_hash: ")
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused() {
        let e = parse_config("[video]\nframerte = 30\n").expect_err("typo refused").to_string();
        assert!(e.contains("framerte"), "{e}");
        let e = parse_config("[video]\nframerate = \"thirty\"\n").expect_err("type refused").to_string();
        assert!(e.contains("framerate"), "{e}");
    }

    #[test]
    fn syntax_errors_never_quote_the_line() {
        // Security review finding 18: toml's message quoted the offending line.
        let text = "[web]\nadmin_password_hash = \"pbkdf2-sha256$200000$00ff$SECRET\nbind = \"0.0.0.0\"\n";
        let e = parse_config(text).expect_err("unterminated string").to_string();
        assert!(!e.contains("SECRET") && !e.contains("pbkdf2"), "{e}");
        assert!(e.starts_with("config: line 2"), "{e}");
    }

    #[test]
    fn render_parses_back() {
        let c = base_with(|c| {
            c.room.name = "Board room \"A\"".into();
            c.video.codec = "h264".into();
        });
        assert_eq!(parse_config(&render_config(&c)).expect("round trip"), c);
    }

    #[test]
    fn password_hash_is_redacted_in_debug() {
        let c = base_with(|c| c.web.admin_password_hash = RedactedString::new("pbkdf2-sha256$1$00$00".into()));
        let dbg = format!("{c:?}");
        assert!(dbg.contains("[redacted]") && !dbg.contains("pbkdf2-sha256"), "{dbg}");
    }

    #[test]
    fn the_state_directory_is_made_private_and_nothing_planted_is_trusted() {
        // Security review finding 9.
        use std::os::unix::fs::symlink;
        let dir = std::env::temp_dir().join(format!("cloakroom-statedir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        ensure_state_dir(&dir).expect("corrected");
        assert_eq!(fs::metadata(&dir).expect("dir").permissions().mode() & 0o777, 0o700, "0777 corrected to 0700");
        // A link planted where a temporary file could be: the victim is never written.
        let victim = dir.join("victim");
        fs::write(&victim, b"precious").expect("victim");
        for planted in [".device-key.der.tmp", ".sessions.json.tmp"] {
            symlink(&victim, dir.join(planted)).expect("symlink");
        }
        write_secret(&dir.join("device-key.der"), b"KEY").expect("written");
        assert_eq!(fs::read(&victim).expect("victim"), b"precious");
        assert!(!fs::symlink_metadata(dir.join("device-key.der")).expect("key").file_type().is_symlink());
        assert_eq!(
            read_secret(&dir.join("device-key.der")).expect("trusted").as_deref().map(Vec::as_slice),
            Some(&b"KEY"[..])
        );
        // Planted files are refused: a link, a world-readable file, a hard link.
        symlink(&victim, dir.join("sessions.json")).expect("symlink");
        assert!(read_secret(&dir.join("sessions.json")).is_err(), "a symbolic link");
        fs::write(dir.join("open.json"), b"{}").expect("file");
        fs::set_permissions(dir.join("open.json"), fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(read_secret(&dir.join("open.json")).is_err(), "readable by others");
        write_secret(&dir.join("linked"), b"x").expect("written");
        fs::hard_link(dir.join("linked"), dir.join("linked2")).expect("hard link");
        assert!(read_secret(&dir.join("linked")).is_err(), "hard-linked");
        assert!(read_secret(&dir.join("absent")).expect("fine").is_none());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn overlay_is_saved_atomically_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("cloakroom-config-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let base = base_with(|c| c.paths.state_dir = dir.join("state").display().to_string());
        let mut store = ConfigStore::from_base(base.clone()).expect("valid");
        let mut edit = store.settings().editable();
        edit.room_name = "Aquarium".into();
        edit.framerate = 15;
        store.update(&edit).expect("saved");
        let again = ConfigStore::from_base(base.clone()).expect("reloads");
        assert_eq!(again.settings().room_name, "Aquarium");
        assert_eq!(again.settings().framerate, 15);
        edit.framerate = 0;
        let e = store.update(&edit).expect_err("refused").to_string();
        assert_eq!(e, "video.framerate: 0 is not between 1 and 60");
        assert_eq!(ConfigStore::from_base(base).expect("reloads").settings().framerate, 15);
        let mode = fs::metadata(dir.join("state")).expect("dir").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        write_secret(&dir.join("state/secret"), b"s").expect("secret");
        let mode = fs::metadata(dir.join("state/secret")).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = fs::remove_dir_all(&dir);
    }
}
