//! The meeting engine: one meeting with any connector.
//!
//! A connector (`cloakroom-connectors`, behind its `signalling::Connector`
//! seam) says what the service wants: open a peer connection for sending or
//! for one participant's media, apply a remote description, close a peer,
//! someone joined or left, a participant's key. The engine does it, with the
//! same code for every service:
//!
//! - [`meeting`]: the runner. Starts the media pipelines, drives the
//!   connector through its transport driver, builds and drops peers keyed by
//!   the connector's neutral peer ids, seals outgoing frames and opens
//!   incoming ones, reports events and one set of [`meeting::Stats`].
//! - [`peers`]: WebRTC peer connections (the `webrtc` crate) that carry
//!   already-sealed frames.
//! - [`reassembly`]: the receive side's reorder window (pure, fuzzed).
//! - [`annexb`]: H.264 access units as they travel over RTP (pure).
//! - [`keys`]: the key provider: the link's shared key and per-participant
//!   keys, the key check digits. The rest of the room gets the digits, never
//!   a key.
//!
//! It never retries: a meeting ends with the connector's final state, and
//! the room's supervisor decides what happens next.
#![forbid(unsafe_code)]

pub mod annexb;
pub mod keys;
#[cfg(feature = "runtime")]
pub mod meeting;
#[cfg(feature = "runtime")]
pub mod peers;
pub mod reassembly;
#[cfg(feature = "runtime")]
pub mod status;

/// An error with every cause under it, `outer: inner: innermost`, for logs
/// and the page: an error's own `Display` shows only the outermost.
/// (`anyhow` errors print the same with `{:#}`.)
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Chain;

    #[derive(Debug, thiserror::Error)]
    #[error("open the camera")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_chain_prints_every_cause() {
        let e = Outer(std::io::Error::new(std::io::ErrorKind::NotFound, "/dev/video0: no such device"));
        assert_eq!(Chain(&e).to_string(), "open the camera: /dev/video0: no such device");
    }
}
