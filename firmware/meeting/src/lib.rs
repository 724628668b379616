//! Meeting links: what the room is asked to join, and the key it joins with.
//!
//! A link is a service's target (where and what to join, parsed by that
//! service's module: [`janus`]) and, in the fragment, the meeting key (parsed
//! here, the same for every service). The scheme picks the service. A new
//! service is a module with its target type, a [`Target`] variant and its
//! schemes in [`MeetingLink::parse_with`].
//!
//! A Janus VideoRoom link looks like
//!
//! ```text
//! janus+wss://host[:port][/path]?room=<id>#e2ee=<base64url, no padding, 32 bytes>
//! janus+wss://host[:port][/path]?room=<id>#passphrase=<percent-encoded text>
//! ```
//!
//! (`janus+ws://` is accepted too, for loopback and tests.) A Jitsi Meet
//! link is the meeting's URL, `https://<host>[:port]/<Room>`, or
//! `jitsi+ws://<host>:<port>/<room>?domain=<xmpp domain>` for test servers
//! ([`jitsi`]); it carries no key: Jitsi participants exchange theirs with
//! Olm ([`MeetingLink::keys_exchanged`]). The part before
//! `#` says where to connect (RFC 3986 syntax: scheme, authority, path,
//! query); the fragment carries the meeting key. Following RFC 3986 §3.5 the
//! fragment is never part of a request: [`MeetingLink::server_url`] is the
//! link without it, and [`MeetingLink`]'s `Display` and `Debug` print
//! `#[redacted]` in its place, so a link can be logged.
//!
//! Key forms:
//!
//! - `e2ee=`: the 32 bytes of key material of the `jitsi` frame format,
//!   base64url without padding (RFC 4648 §5), exactly 43 characters.
//! - `passphrase=`: key material = PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2) of
//!   the passphrase's UTF-8 bytes (after percent-decoding), 100,000
//!   iterations, 32 bytes, with the salt
//!   `"cloakroom/passphrase/v1/" ‖ <room id as written in the link>`, so the
//!   same passphrase gives different keys in different rooms.
//!
//! Pure: no I/O, no logging.
#![forbid(unsafe_code)]

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cloakroom_frame::KeyMaterial;
use zeroize::Zeroizing;

/// PBKDF2 iterations for `#passphrase=` keys.
pub const PASSPHRASE_ITERATIONS: u32 = 100_000;

/// Prefix of the PBKDF2 salt for `#passphrase=` keys; the room id follows.
pub const PASSPHRASE_SALT_PREFIX: &str = "cloakroom/passphrase/v1/";

/// Longest link accepted, in bytes (a QR code holds less than this anyway).
pub const MAX_LINK_LEN: usize = 2048;

/// Why a meeting link was refused. Messages never contain the key or the
/// passphrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    #[error("the link is longer than {MAX_LINK_LEN} bytes")]
    TooLong,
    #[error("unknown link scheme `{scheme}` (expected https (Jitsi Meet), jitsi+ws(s) or janus+ws(s))")]
    UnknownScheme { scheme: String },
    #[error("the link has no host")]
    MissingHost,
    #[error("invalid host `{host}`")]
    InvalidHost { host: String },
    #[error("invalid port `{port}`")]
    InvalidPort { port: String },
    #[error("the link has no `room=` parameter")]
    MissingRoom,
    #[error("invalid room id `{room}` (digits, or letters, digits, `-` and `_`, at most 64)")]
    InvalidRoom { room: String },
    #[error("unknown query parameter `{name}`")]
    UnknownParameter { name: String },
    #[error("the link has no key (`#e2ee=` or `#passphrase=`)")]
    MissingKey,
    #[error("the link's key has an unknown form (expected `e2ee=` or `passphrase=`)")]
    UnknownKeyForm,
    #[error("the `e2ee=` key is not base64url without padding of 32 bytes")]
    InvalidKey,
    #[error("the passphrase is empty or not valid percent-encoded UTF-8")]
    InvalidPassphrase,
    #[error("the link contains spaces or control characters")]
    InvalidCharacter,
    #[error("the link names no XMPP domain (`?domain=`), and its host is an address")]
    MissingDomain,
    #[error("invalid XMPP domain `{domain}`")]
    InvalidDomain { domain: String },
    #[error(
        "Jitsi meetings exchange their keys between participants: a Jitsi link carries no `#e2ee=` or `#passphrase=`"
    )]
    KeyNotUsed,
    #[error("the link's key must follow a plain `#` (this link has it before the `#`, or `#` written as `%23`)")]
    MisplacedKey,
}

pub mod janus;
pub mod jitsi;
pub mod text;

pub use janus::{JanusTarget, RoomId};
pub use jitsi::JitsiTarget;

/// What a link asks to join, per service.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// A Janus VideoRoom room over Janus's WebSocket JSON API.
    Janus(JanusTarget),
    /// A Jitsi Meet room over XMPP on a WebSocket.
    Jitsi(JitsiTarget),
}

impl Target {
    /// The server to connect to, without anything from the fragment.
    pub fn server_url(&self) -> String {
        match self {
            Self::Janus(t) => t.server_url(),
            Self::Jitsi(t) => t.server_url(),
        }
    }

    /// The string that names the meeting within its server, for deriving a
    /// passphrase key (so one passphrase gives different keys in different rooms).
    fn key_context(&self) -> String {
        match self {
            Self::Janus(t) => t.room().to_string(),
            Self::Jitsi(t) => t.room_jid(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Janus(t) => fmt::Display::fmt(t, f),
            Self::Jitsi(t) => fmt::Display::fmt(t, f),
        }
    }
}

/// Where the key of a link came from (the material itself is in
/// [`MeetingLink::key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// `#e2ee=`: 32 bytes given directly.
    Shared,
    /// `#passphrase=`: derived with PBKDF2.
    Passphrase,
}

/// A parsed meeting link. `Display` and `Debug` redact the key.
#[derive(Clone)]
pub struct MeetingLink {
    target: Target,
    key: Option<(KeyMaterial, KeySource)>,
}

/// Whether a link must carry an end-to-end key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPolicy {
    /// A link without a key is refused ([`LinkError::MissingKey`]).
    Required,
    /// A link without a key is accepted: the meeting is not end-to-end
    /// encrypted (an admin's choice, `e2ee.require_key = false`).
    Optional,
}

impl MeetingLink {
    /// Parses a link that must carry a key. Errors say what is wrong without
    /// echoing the key.
    pub fn parse(link: &str) -> Result<Self, LinkError> {
        Self::parse_with(link, KeyPolicy::Required)
    }

    /// Parses a link; `policy` says whether it may come without a key.
    pub fn parse_with(link: &str, policy: KeyPolicy) -> Result<Self, LinkError> {
        if link.len() > MAX_LINK_LEN {
            return Err(LinkError::TooLong);
        }
        if link.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(LinkError::InvalidCharacter);
        }
        let (before_fragment, fragment) = match link.split_once('#') {
            Some((b, f)) => (b, Some(f)),
            None => (link, None),
        };
        let lower = before_fragment.to_ascii_lowercase();
        if ["e2ee=", "passphrase=", "%23"].iter().any(|k| lower.contains(k)) {
            // Whatever is wrong with such a link, its error must not echo a part of it.
            return Err(LinkError::MisplacedKey);
        }
        let (scheme, rest) = before_fragment
            .split_once("://")
            .ok_or_else(|| LinkError::UnknownScheme { scheme: shown(before_fragment) })?;
        let target = match scheme.to_ascii_lowercase().as_str() {
            "janus+wss" => Target::Janus(JanusTarget::parse(true, rest)?),
            "janus+ws" => Target::Janus(JanusTarget::parse(false, rest)?),
            "https" => Target::Jitsi(JitsiTarget::parse_web(rest)?),
            "jitsi+wss" => Target::Jitsi(JitsiTarget::parse_plain(true, rest)?),
            "jitsi+ws" => Target::Jitsi(JitsiTarget::parse_plain(false, rest)?),
            _ => return Err(LinkError::UnknownScheme { scheme: shown(scheme) }),
        };
        if let Target::Jitsi(_) = target {
            let fragment = fragment.unwrap_or("");
            if fragment.starts_with("e2ee=") || fragment.starts_with("passphrase=") {
                return Err(LinkError::KeyNotUsed);
            }
            // Jitsi's own `#config.…=` overrides are not ours to apply; the
            // fragment is dropped here and never sent.
            return Ok(Self { target, key: None });
        }
        let key = match (fragment.filter(|f| !f.is_empty()), policy) {
            (Some(fragment), _) => Some(parse_fragment(fragment, &target.key_context())?),
            (None, KeyPolicy::Required) => return Err(LinkError::MissingKey),
            (None, KeyPolicy::Optional) => None,
        };
        Ok(Self { target, key })
    }

    /// What the link asks to join.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The server to connect to, without the fragment. This and what the
    /// service's protocol needs of the target is all that is ever sent out.
    pub fn server_url(&self) -> String {
        self.target.server_url()
    }

    /// The meeting's key material (the `jitsi` format's 32 bytes); `None`
    /// for a link without a key (accepted only with [`KeyPolicy::Optional`]).
    pub fn key(&self) -> Option<&KeyMaterial> {
        self.key.as_ref().map(|(k, _)| k)
    }

    /// Whether the participants exchange their keys in the meeting (Jitsi's
    /// Olm) rather than the link carrying one.
    pub fn keys_exchanged(&self) -> bool {
        matches!(self.target, Target::Jitsi(_))
    }

    /// How the key was given.
    pub fn key_source(&self) -> Option<KeySource> {
        self.key.as_ref().map(|(_, s)| *s)
    }
}

impl fmt::Display for MeetingLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.target)?;
        if self.key.is_some() { f.write_str("#[redacted]") } else { Ok(()) }
    }
}

impl fmt::Debug for MeetingLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeetingLink")
            .field("target", &self.target)
            .field("key", &self.key.as_ref().map(|_| "[redacted]"))
            .field("key_source", &self.key_source())
            .finish()
    }
}

/// Derives key material from a passphrase for a meeting (`context`: a Janus
/// room id as written in the link), as `#passphrase=` links do.
pub fn passphrase_key(passphrase: &str, context: &str) -> KeyMaterial {
    let salt = format!("{PASSPHRASE_SALT_PREFIX}{context}");
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(passphrase.as_bytes(), salt.as_bytes(), PASSPHRASE_ITERATIONS, &mut out);
    KeyMaterial::from_bytes(&mut out)
}

fn parse_fragment(fragment: &str, context: &str) -> Result<(KeyMaterial, KeySource), LinkError> {
    if let Some(encoded) = fragment.strip_prefix("e2ee=") {
        // 32 bytes are exactly 43 characters unpadded; anything else is refused
        // before decoding so a long input costs nothing.
        if encoded.len() != 43 {
            return Err(LinkError::InvalidKey);
        }
        let decoded = Zeroizing::new(URL_SAFE_NO_PAD.decode(encoded).map_err(|_| LinkError::InvalidKey)?);
        let mut bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| LinkError::InvalidKey)?;
        return Ok((KeyMaterial::from_bytes(&mut bytes), KeySource::Shared));
    }
    if let Some(encoded) = fragment.strip_prefix("passphrase=") {
        let passphrase = percent_decode(encoded).ok_or(LinkError::InvalidPassphrase)?;
        if passphrase.is_empty() {
            return Err(LinkError::InvalidPassphrase);
        }
        return Ok((passphrase_key(&passphrase, context), KeySource::Passphrase));
    }
    Err(LinkError::UnknownKeyForm)
}

/// Percent-decodes (RFC 3986 §2.1) into UTF-8, in zeroizing memory.
fn percent_decode(s: &str) -> Option<Zeroizing<String>> {
    let bytes = s.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hi = (hex[0] as char).to_digit(16)?;
                let lo = (hex[1] as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    let text = core::str::from_utf8(&out).ok()?;
    Some(Zeroizing::new(text.to_owned()))
}

/// Longest part of a link an error echoes back.
pub const MAX_ECHO: usize = 16;

/// What an error echoes of a part of a link: the part itself when it is
/// short printable ASCII, otherwise nothing. Callers pass only parts before
/// `#`, but a key pasted in the wrong place (a bare key, `%23` for `#`, a
/// key as the host) is there too: keys are 43 characters or passphrases,
/// and [`MeetingLink::parse_with`] shows nothing at all for a link that
/// names a key form before its `#`.
pub(crate) fn shown(s: &str) -> String {
    if s.len() <= MAX_ECHO && s.bytes().all(|b| b.is_ascii_graphic()) { s.to_owned() } else { "[not shown]".to_owned() }
}

#[cfg(test)]
mod tests;
