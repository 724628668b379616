//! The Jitsi Meet connector: XMPP over a WebSocket (RFC 7395), the room's
//! multi-user chat with Jitsi's presence, the conference focus, Jingle
//! peer-to-peer media sessions and Jitsi's end-to-end key exchange.
//! [`session`] is the pure state machine, [`jingle`] the SDP ↔ Jingle
//! mapping, `xml` the stanza helpers over `minidom`; it runs over
//! [`crate::transport::websocket`] with the [`session::WS_PROTOCOL`]
//! subprotocol.
//!
//! XML is built and read with `minidom` (xmpp-rs's DOM) rather than
//! `xmpp-parsers`' typed Jingle: those types drop Jitsi's source names and
//! refuse lib-jitsi-meet's `transport-info` (its fingerprint has no `setup`),
//! both seen against the captured stanzas.

pub mod config;
pub mod jingle;
pub mod session;
mod xml;

pub use session::{JitsiSession, JitsiSettings, WS_PROTOCOL};

#[cfg(test)]
mod tests;
