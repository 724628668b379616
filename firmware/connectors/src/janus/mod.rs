//! The Janus VideoRoom connector (Janus 1.x WebSocket JSON API, VideoRoom
//! plugin). [`session`] is the pure state machine, [`messages`] the wire
//! types; it runs over [`crate::transport::websocket`] with the
//! [`messages::WS_PROTOCOL`] subprotocol.

pub mod messages;
pub mod session;

pub use session::{JanusSession, JanusSettings, PUBLISHER, Room, feed_peer};

#[cfg(test)]
mod tests;
