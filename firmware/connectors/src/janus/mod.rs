//! The Janus VideoRoom connector (Janus 1.x WebSocket JSON API, VideoRoom
//! plugin). [`session`] is the pure state machine, [`messages`] the wire
//! types, [`transport`] the websocket task.

pub mod messages;
pub mod session;
#[cfg(feature = "websocket")]
pub mod transport;

pub use session::{Input, JanusSession, JanusSettings, Output, Room, SessionEvent, SessionState, Target, Transmit};

#[cfg(test)]
mod tests;
