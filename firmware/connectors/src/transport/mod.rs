//! Transport drivers: the I/O under a [`crate::signalling::Connector`]. A
//! driver opens, feeds and closes one connection as the connector says and
//! hands its events on; every decision stays in the connector.
//!
//! - [`websocket`]: text frames over WebSocket (Janus's JSON API; XMPP
//!   over WebSocket, RFC 7395, for Jitsi).
//! - [`http`]: one HTTPS GET of a small text (a Jitsi deployment's
//!   `config.js`).

pub mod http;
pub mod websocket;

use crate::ConnectorError;

/// TLS for `wss://` and `https://`: rustls with the ring provider and the
/// operating system's CA certificates (the device's CA bundle is updated
/// with the image).
pub fn tls_client_config() -> Result<std::sync::Arc<rustls::ClientConfig>, ConnectorError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // A CA the parser rejects is skipped; the others still verify.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(ConnectorError::Unsupported { what: "TLS without any CA certificate on the system" });
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|_| ConnectorError::Unsupported { what: "TLS protocol versions" })?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}
