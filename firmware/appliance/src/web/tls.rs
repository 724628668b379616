//! The device certificate and the HTTPS listener.
//!
//! On first start a self-signed certificate (ECDSA P-256, rcgen) is made for
//! the device's names and kept in the state directory: `device-cert.der`
//! (0644) and `device-key.der` (PKCS#8, 0600). Browsers cannot check it
//! against a CA, so its SHA-256 fingerprint (over the DER, as browsers show
//! it) is shown on the room screen and the page for people to compare.
//! TLS is rustls (TLS 1.2 and 1.3, ring provider).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use zeroize::Zeroizing;

use super::listener::{LimitedListener, LimitedStream};
use crate::ApplianceError;
use crate::config::{ensure_state_dir, write_atomic, write_secret};

/// File name of the certificate in the state directory.
pub const CERT_FILE: &str = "device-cert.der";
/// File name of the private key in the state directory.
pub const KEY_FILE: &str = "device-key.der";

/// The device's certificate and key.
pub struct DeviceCertificate {
    cert: CertificateDer<'static>,
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for DeviceCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCertificate")
            .field("fingerprint", &self.fingerprint())
            .field("key", &"[redacted]")
            .finish()
    }
}

impl DeviceCertificate {
    /// Loads the certificate from `state_dir`, or makes and saves one for `names`.
    pub fn load_or_create(state_dir: &Path, names: &[String]) -> Result<Self, ApplianceError> {
        let cert_path = state_dir.join(CERT_FILE);
        let key_path = state_dir.join(KEY_FILE);
        match (std::fs::read(&cert_path), std::fs::read(&key_path)) {
            (Ok(cert), Ok(key)) => Ok(Self { cert: CertificateDer::from(cert), key: Zeroizing::new(key) }),
            _ => {
                let made = rcgen::generate_simple_self_signed(names.to_vec())
                    .map_err(|e| ApplianceError::Certificate(e.to_string()))?;
                let key = Zeroizing::new(made.signing_key.serialize_der());
                let cert = made.cert.der().clone();
                ensure_state_dir(state_dir)?;
                write_secret(&key_path, &key)?;
                write_atomic(&cert_path, &cert, 0o644)?;
                Ok(Self { cert, key })
            }
        }
    }

    /// SHA-256 of the certificate, as colon-separated upper-case hex.
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.cert)
    }

    /// The certificate in DER form.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// A rustls server config serving this certificate.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, ApplianceError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.to_vec()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ApplianceError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], key)
            .map_err(|e| ApplianceError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// SHA-256 fingerprint of a DER certificate (`AB:CD:…`).
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// A listener handing out finished TLS connections. Connections are
/// admitted by a [`LimitedListener`] (a handshake in flight counts against
/// the port's limits) and their handshakes run in their own tasks with a
/// timeout, so a slow or silent client holds up no one else.
pub struct TlsListener {
    local: SocketAddr,
    rx: mpsc::Receiver<(TlsStream<LimitedStream>, SocketAddr)>,
}

impl TlsListener {
    /// Runs TLS handshakes with `config` on the connections `tcp` admits;
    /// a handshake not done within `handshake_timeout` is dropped.
    pub(crate) fn new(
        mut tcp: LimitedListener,
        config: Arc<rustls::ServerConfig>,
        handshake_timeout: Duration,
    ) -> std::io::Result<Self> {
        let local = axum::serve::Listener::local_addr(&tcp)?;
        let (tx, rx) = mpsc::channel(16);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    // The listener was dropped: stop accepting (and close the port).
                    () = tx.closed() => break,
                    accepted = tcp.accept_limited() => accepted,
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        Ok(Self { local, rx })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<LimitedStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this listener is dropped; wait forever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
