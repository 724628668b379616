//! Transport drivers: the I/O under a [`crate::signalling::Connector`]. A
//! driver opens, feeds and closes one connection as the connector says and
//! hands its events on; every decision stays in the connector.
//!
//! - [`websocket`]: text frames over WebSocket (Janus today; XMPP over
//!   WebSocket, RFC 7395, next).

pub mod websocket;
