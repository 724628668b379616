//! Janus VideoRoom targets: `janus+wss://host[:port][/path]?room=<id>`
//! (`janus+ws://` for loopback and tests), the part of a link before `#`
//! (RFC 3986 syntax: authority, path, query).

use core::fmt;

use crate::{LinkError, shown};

/// A Janus VideoRoom room id: a number (Janus's default) or a string (rooms
/// configured with `string_ids`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RoomId {
    Number(u64),
    Text(String),
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(s) => f.write_str(s),
        }
    }
}

/// Where a Janus meeting is: the server's WebSocket API and the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JanusTarget {
    secure: bool,
    host: String,
    port: Option<u16>,
    path: String,
    room: RoomId,
}

impl JanusTarget {
    /// Parses what follows `janus+ws(s)://` up to the fragment.
    pub(crate) fn parse(secure: bool, rest: &str) -> Result<Self, LinkError> {
        let (hier, query) = match rest.split_once('?') {
            Some((h, q)) => (h, q),
            None => (rest, ""),
        };
        let (authority, path) = match hier.find('/') {
            Some(i) => (&hier[..i], &hier[i..]),
            None => (hier, ""),
        };
        let (host, port) = parse_authority(authority)?;
        let room = parse_query(query)?;
        Ok(Self { secure, host, port, path: if path.is_empty() { "/".to_owned() } else { path.to_owned() }, room })
    }

    /// The WebSocket URL of the server, without the room:
    /// `wss://host[:port]/path`.
    pub fn server_url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        match self.port {
            Some(port) => format!("{scheme}://{}:{port}{}", self.host, self.path),
            None => format!("{scheme}://{}{}", self.host, self.path),
        }
    }

    /// Whether the WebSocket runs over TLS (`janus+wss`).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The server's host name or address (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The room to join.
    pub fn room(&self) -> &RoomId {
        &self.room
    }
}

impl fmt::Display for JanusTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "janus+wss" } else { "janus+ws" };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        write!(f, "{scheme}://{}{port}{}?room={}", self.host, self.path, self.room)
    }
}

pub(crate) fn parse_authority(authority: &str) -> Result<(String, Option<u16>), LinkError> {
    if authority.contains('@') {
        // Userinfo would be sent to the server; links carry no credentials.
        return Err(LinkError::InvalidHost { host: "[userinfo]".to_owned() });
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']').ok_or_else(|| LinkError::InvalidHost { host: shown(authority) })?;
        let inside = &rest[..end];
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err(LinkError::InvalidHost { host: shown(authority) });
        }
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| LinkError::InvalidHost { host: shown(authority) })?),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(LinkError::MissingHost);
    }
    if !host.starts_with('[')
        && (host.len() > 253 || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        return Err(LinkError::InvalidHost { host: shown(&host) });
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 && p.chars().all(|c| c.is_ascii_digit()) => Some(n),
            _ => return Err(LinkError::InvalidPort { port: shown(p) }),
        },
    };
    Ok((host.to_ascii_lowercase(), port))
}

fn parse_query(query: &str) -> Result<RoomId, LinkError> {
    let mut room = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "room" => room = Some(parse_room(value)?),
            _ => return Err(LinkError::UnknownParameter { name: shown(name) }),
        }
    }
    room.ok_or(LinkError::MissingRoom)
}

fn parse_room(value: &str) -> Result<RoomId, LinkError> {
    let invalid = || LinkError::InvalidRoom { room: shown(value) };
    if value.is_empty() || value.len() > 64 {
        return Err(invalid());
    }
    if value.chars().all(|c| c.is_ascii_digit()) {
        return value.parse::<u64>().map(RoomId::Number).map_err(|_| invalid());
    }
    if value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Ok(RoomId::Text(value.to_owned()));
    }
    Err(invalid())
}
