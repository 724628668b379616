//! The device certificate and the HTTPS listener.
//!
//! On first start a self-signed certificate (ECDSA P-256, rcgen) is made for
//! the device's names and kept in the state directory: `device-cert.der`
//! (0644) and `device-key.der` (PKCS#8, 0600). Browsers cannot check it
//! against a CA, so its SHA-256 fingerprint (over the DER, as browsers show
//! it) is shown on the room screen and the page for people to compare.
//! TLS is rustls (TLS 1.2 and 1.3, ring provider).
//!
//! A certificate is valid from a day before it is made (clocks differ) for
//! [`CERT_LIFETIME`]. At start a new one, with a new key, replaces a stored
//! one that has less than [`RENEW_BEFORE`] left, is not valid yet, is valid
//! for longer than [`MAX_LIFETIME`] (those made before had rcgen's defaults,
//! 1975 to 4096: security review, issue 15 finding 16), or cannot be read.
//! The new fingerprint is logged; people compare it on the room screen again.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use zeroize::Zeroizing;

use super::listener::{LimitedListener, LimitedStream};
use crate::ApplianceError;
use crate::config::{ensure_state_dir, read_secret, write_atomic, write_secret};

/// File name of the certificate in the state directory.
pub const CERT_FILE: &str = "device-cert.der";
/// File name of the private key in the state directory.
pub const KEY_FILE: &str = "device-key.der";

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a new device certificate is valid.
pub const CERT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// A stored certificate with less than this left is replaced at start.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// A stored certificate valid for longer than this in all is replaced at start.
pub const MAX_LIFETIME: Duration = Duration::from_secs(2 * 366 * 24 * 60 * 60);

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
    /// Loads the certificate from `state_dir`, or makes and saves one for
    /// `names` if there is none or it is due for replacement (module docs).
    pub fn load_or_create(state_dir: &Path, names: &[String]) -> Result<Self, ApplianceError> {
        Self::load_or_create_at(state_dir, names, SystemTime::now())
    }

    /// [`DeviceCertificate::load_or_create`] with the time passed in.
    pub fn load_or_create_at(state_dir: &Path, names: &[String], now: SystemTime) -> Result<Self, ApplianceError> {
        let cert_path = state_dir.join(CERT_FILE);
        let key_path = state_dir.join(KEY_FILE);
        // The key is trusted only as written (a private regular file); one
        // planted or loosened is replaced like a missing one.
        let key = read_secret(&key_path).unwrap_or_else(|e| {
            tracing::warn!("{e}; making a new device certificate");
            None
        });
        if let (Ok(cert), Some(key)) = (std::fs::read(&cert_path), key) {
            let stored = Self { cert: CertificateDer::from(cert), key };
            match stored.replacement_reason(now) {
                None => return Ok(stored),
                Some(why) => tracing::info!("replacing the device certificate ({why})"),
            }
        }
        let made = Self::generate(names, now)?;
        ensure_state_dir(state_dir)?;
        write_secret(&key_path, &made.key)?;
        write_atomic(&cert_path, &made.cert, 0o644)?;
        tracing::info!("new device certificate, fingerprint {}", made.fingerprint());
        Ok(made)
    }

    fn generate(names: &[String], now: SystemTime) -> Result<Self, ApplianceError> {
        let failed = |e: rcgen::Error| ApplianceError::Certificate(e.to_string());
        let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(failed)?;
        let now = time::OffsetDateTime::from(now);
        params.not_before = now - DAY;
        params.not_after = now + CERT_LIFETIME;
        let key_pair = rcgen::KeyPair::generate().map_err(failed)?;
        let cert = params.self_signed(&key_pair).map_err(failed)?;
        Ok(Self { cert: cert.der().clone(), key: Zeroizing::new(key_pair.serialize_der()) })
    }

    /// Why the certificate is to be replaced at `now`, if it is.
    fn replacement_reason(&self, now: SystemTime) -> Option<String> {
        let (not_before, not_after) = match validity(&self.cert) {
            Ok(v) => v,
            Err(e) => return Some(format!("cannot read it: {e}")),
        };
        let now = time::OffsetDateTime::from(now);
        if not_after - not_before > MAX_LIFETIME {
            Some(format!("valid from {} to {}, too long", not_before.date(), not_after.date()))
        } else if not_after - now < RENEW_BEFORE {
            Some(format!("valid until {}", not_after.date()))
        } else if not_before > now {
            Some(format!("not valid before {}", not_before.date()))
        } else {
            None
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

/// When a DER certificate's validity begins and ends.
fn validity(der: &[u8]) -> Result<(time::OffsetDateTime, time::OffsetDateTime), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let v = cert.validity();
    Ok((v.not_before.to_datetime(), v.not_after.to_datetime()))
}

/// SHA-256 fingerprint of a DER certificate (`AB:CD:…`).
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// A listener handing out finished TLS connections. Connections are
/// admitted by a `LimitedListener` (a handshake in flight counts against
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

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("cloakroom-tls-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn names() -> Vec<String> {
        vec!["room.local".to_owned(), "localhost".to_owned()]
    }

    fn at(unix_days: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + DAY * u32::try_from(unix_days).expect("days")
    }

    /// 2026-12-01.
    const NOW_DAYS: u64 = 20_788;

    #[test]
    fn a_new_certificate_is_valid_from_yesterday_for_a_year() {
        let dir = TempDir::new("new");
        let made = DeviceCertificate::load_or_create_at(&dir.0, &names(), at(NOW_DAYS)).expect("made");
        let (from, until) = validity(made.der()).expect("validity");
        assert_eq!(from, time::OffsetDateTime::from(at(NOW_DAYS - 1)));
        assert_eq!(until, time::OffsetDateTime::from(at(NOW_DAYS + 365)));
        // Kept while more than 30 days are left...
        let kept = DeviceCertificate::load_or_create_at(&dir.0, &names(), at(NOW_DAYS + 334)).expect("kept");
        assert_eq!(kept.fingerprint(), made.fingerprint());
        // ...and replaced, with a new key, when fewer are.
        let renewed = DeviceCertificate::load_or_create_at(&dir.0, &names(), at(NOW_DAYS + 336)).expect("renewed");
        assert_ne!(renewed.fingerprint(), made.fingerprint());
        assert_ne!(*renewed.key, *made.key);
        let (from, _) = validity(renewed.der()).expect("validity");
        assert_eq!(from, time::OffsetDateTime::from(at(NOW_DAYS + 335)));
        // What was saved is what is served.
        let reread = DeviceCertificate::load_or_create_at(&dir.0, &names(), at(NOW_DAYS + 336)).expect("reread");
        assert_eq!(reread.fingerprint(), renewed.fingerprint());
    }

    #[test]
    fn a_key_file_others_can_read_is_not_served() {
        // Security review finding 9: state files were trusted as found.
        let dir = TempDir::new("loose");
        let made = DeviceCertificate::load_or_create_at(&dir.0, &names(), at(NOW_DAYS)).expect("made");
        let loose = std::os::unix::fs::PermissionsExt::from_mode(0o644);
        std::fs::set_permissions(dir.0.join(KEY_FILE), loose).expect("chmod");
        let again = DeviceCertificate::load_or_create_at(&dir.0, &names(), at(NOW_DAYS)).expect("replaced");
        assert_ne!(again.fingerprint(), made.fingerprint(), "a key others could read is replaced");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.0.join(KEY_FILE)).expect("key").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_old_style_certificate_valid_until_4096_is_replaced() {
        // Security review finding 16: the certificates made before were valid 1975-4096.
        let dir = TempDir::new("old");
        let old = rcgen::generate_simple_self_signed(names()).expect("old-style certificate");
        std::fs::write(dir.0.join(CERT_FILE), old.cert.der()).expect("write");
        std::fs::write(dir.0.join(KEY_FILE), old.signing_key.serialize_der()).expect("write");
        // Private as the daemon writes it, so the lifetime is what replaces it.
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(dir.0.join(KEY_FILE), private).expect("chmod");
        let old_fingerprint = fingerprint_of(old.cert.der());
        let (from, until) = validity(old.cert.der()).expect("validity");
        assert_eq!((from.year(), until.year()), (1975, 4096));

        let now = DeviceCertificate::load_or_create_at(&dir.0, &names(), at(NOW_DAYS)).expect("loads");
        assert_ne!(now.fingerprint(), old_fingerprint);
        let (_, until) = validity(now.der()).expect("validity");
        assert_eq!(until, time::OffsetDateTime::from(at(NOW_DAYS + 365)));
        assert_eq!(std::fs::read(dir.0.join(CERT_FILE)).expect("saved"), now.der().to_vec());
    }

    #[test]
    fn a_certificate_not_valid_yet_or_unreadable_is_replaced() {
        let dir = TempDir::new("future");
        // Made while the clock was a year ahead.
        let ahead = DeviceCertificate::load_or_create_at(&dir.0, &names(), at(NOW_DAYS + 365)).expect("made");
        let now = DeviceCertificate::load_or_create_at(&dir.0, &names(), at(NOW_DAYS)).expect("loads");
        assert_ne!(now.fingerprint(), ahead.fingerprint());
        std::fs::write(dir.0.join(CERT_FILE), b"not a certificate").expect("write");
        let again = DeviceCertificate::load_or_create_at(&dir.0, &names(), at(NOW_DAYS)).expect("loads");
        assert!(validity(again.der()).is_ok());
    }
}
