//! Meeting connectors: the signalling between the room and a meeting server.
//!
//! [`signalling`] is the seam: one [`signalling::Connector`] trait, pure
//! state machines fed with the time (`handle_input(now, input)` /
//! `poll_output()`), neutral events for the meeting engine. Each service is
//! a folder of the same shape: `session.rs` the pure protocol state machine,
//! `messages.rs` the wire types, `tests.rs` deterministic tests in virtual
//! time. [`transport`] holds the generic I/O drivers (feature `websocket`).
//!
//! - [`janus`]: the Janus VideoRoom plugin over Janus's WebSocket JSON API.
//! - [`jitsi`]: Jitsi Meet over XMPP on a WebSocket: the room's chat, Jingle
//!   peer-to-peer sessions, and Jitsi's Olm key exchange and SAS.
#![forbid(unsafe_code)]

pub mod janus;
pub mod jitsi;
pub mod signalling;
#[cfg(feature = "websocket")]
pub mod transport;

/// Why a connector could not (or can no longer) be in the meeting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The server says the room does not exist.
    #[error("no such room: {room}")]
    NoSuchRoom { room: String },
    /// The websocket closed, could not be opened, or the server forgot our session.
    #[error("server gone: {reason}")]
    ServerGone { reason: String },
    /// The server did not answer in time.
    #[error("timeout waiting for {what}")]
    Timeout { what: &'static str },
    /// The server refused a request.
    #[error("refused by the server (code {code}): {reason}")]
    Refused { code: i64, reason: String },
    /// The server sent something that is not its protocol.
    #[error("protocol error: {reason}")]
    Protocol { reason: String },
    /// Our media connection failed (ICE/DTLS failure, the server hung it up).
    #[error("media connection failed: {reason}")]
    MediaFailed { reason: String },
    /// A peer connection could not be built (no usable network interface,
    /// a codec the other side does not take).
    #[error("peer connection: {reason}")]
    PeerSetup { reason: String },
    /// The link asks for something this build cannot do.
    #[error("unsupported: {what}")]
    Unsupported { what: &'static str },
}
