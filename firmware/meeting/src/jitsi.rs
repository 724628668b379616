//! Jitsi Meet targets: a meeting URL as people share it,
//! `https://<host>[:port]/<Room>`, and for plain-WebSocket test servers
//! `jitsi+ws://<host>:<port>/<room>?domain=<xmpp domain>` (`jitsi+wss://`
//! too).
//!
//! A Jitsi deployment is an XMPP server: the room reaches it over XMPP on a
//! WebSocket (RFC 7395) at `/xmpp-websocket`, logs in anonymously in the
//! XMPP domain, and joins the multi-user chat `<room>@<muc service>`, where
//! the conference focus (jicofo) is `<focus service>`. For `https://` links
//! the defaults are those of a stock deployment whose XMPP domain is the
//! host name (`conference.<host>`, `focus.<host>`); a deployment that says
//! otherwise in its `config.js` is not read yet (see the connector's docs).
//!
//! Jitsi meetings exchange their keys with Olm between participants, so a
//! Jitsi link carries no key: a fragment naming a key form is refused (it
//! would be ignored, which the person who wrote it would not expect), any
//! other fragment (Jitsi's `#config.…=` overrides) is dropped and never sent.

use core::fmt;

use crate::janus::parse_authority;
use crate::{LinkError, shown};

/// Longest room name accepted (Jitsi's own limit is larger; rooms people
/// type are short, and the name is part of every stanza's address).
pub const MAX_ROOM_LEN: usize = 64;

/// Where a Jitsi meeting is: the XMPP WebSocket, the XMPP services and the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitsiTarget {
    secure: bool,
    host: String,
    port: Option<u16>,
    room: String,
    domain: String,
    muc: String,
    focus: String,
    /// The scheme the link was written with: `https` or `jitsi+ws(s)`.
    web_link: bool,
}

impl JitsiTarget {
    /// Parses what follows `https://` (a meeting URL).
    pub(crate) fn parse_web(rest: &str) -> Result<Self, LinkError> {
        Self::parse(true, true, rest)
    }

    /// Parses what follows `jitsi+ws://` or `jitsi+wss://`.
    pub(crate) fn parse_plain(secure: bool, rest: &str) -> Result<Self, LinkError> {
        Self::parse(secure, false, rest)
    }

    fn parse(secure: bool, web_link: bool, rest: &str) -> Result<Self, LinkError> {
        let (hier, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match hier.find('/') {
            Some(i) => (&hier[..i], &hier[i + 1..]),
            None => (hier, ""),
        };
        let (host, port) = parse_authority(authority)?;
        let room = parse_room(path)?;
        let mut domain = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "domain" if !web_link => domain = Some(parse_domain(value)?),
                _ => return Err(LinkError::UnknownParameter { name: shown(name) }),
            }
        }
        let domain = match domain {
            Some(d) => d,
            None if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() => {
                // An address is not an XMPP domain: the link must name it.
                return Err(LinkError::MissingDomain);
            }
            None => host.clone(),
        };
        Ok(Self {
            secure,
            host,
            port,
            room,
            muc: format!("conference.{domain}"),
            focus: format!("focus.{domain}"),
            domain,
            web_link,
        })
    }

    /// The XMPP WebSocket: `wss://host[:port]/xmpp-websocket`.
    pub fn server_url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        match self.port {
            Some(port) => format!("{scheme}://{}:{port}/xmpp-websocket", self.host),
            None => format!("{scheme}://{}/xmpp-websocket", self.host),
        }
    }

    /// Whether the WebSocket runs over TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The server's host name or address (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The room as written in the link (Jitsi's MUC uses it lower-cased:
    /// [`Self::room_jid`]).
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The XMPP domain the room logs in to (anonymously).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The multi-user chat service: `conference.<domain>`.
    pub fn muc(&self) -> &str {
        &self.muc
    }

    /// The conference focus: `focus.<domain>`.
    pub fn focus(&self) -> &str {
        &self.focus
    }

    /// Where the deployment's `config.js` is, for links written as the
    /// meeting's `https://` URL (test links name their XMPP domain instead).
    pub fn config_js_url(&self) -> Option<String> {
        if !self.web_link {
            return None;
        }
        Some(match self.port {
            Some(port) => format!("https://{}:{port}/config.js", self.host),
            None => format!("https://{}/config.js", self.host),
        })
    }

    /// The room's bare JID: `<room, lower-cased>@<muc>`.
    pub fn room_jid(&self) -> String {
        format!("{}@{}", self.room.to_lowercase(), self.muc)
    }
}

impl fmt::Display for JitsiTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        if self.web_link {
            write!(f, "https://{}{port}/{}", self.host, self.room)
        } else {
            let scheme = if self.secure { "jitsi+wss" } else { "jitsi+ws" };
            write!(f, "{scheme}://{}{port}/{}?domain={}", self.host, self.room, self.domain)
        }
    }
}

/// A room name: one path segment of letters, digits, `-`, `_` and `.`
/// (what Jitsi's own room-name rules leave after its URL handling; anything
/// else would have to be escaped in a JID).
fn parse_room(path: &str) -> Result<String, LinkError> {
    if path.is_empty() {
        return Err(LinkError::MissingRoom);
    }
    let ok = path.len() <= MAX_ROOM_LEN
        && !path.starts_with('.')
        && path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(path.to_owned()) } else { Err(LinkError::InvalidRoom { room: shown(path) }) }
}

/// An XMPP domain: a DNS name (letters, digits, `-`, `.`).
fn parse_domain(value: &str) -> Result<String, LinkError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && !value.starts_with('.')
        && !value.ends_with('.')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok { Ok(value.to_ascii_lowercase()) } else { Err(LinkError::InvalidDomain { domain: shown(value) }) }
}
