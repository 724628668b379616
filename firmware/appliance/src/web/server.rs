//! Binding the two ports and serving them: HTTPS with the device
//! certificate, and the plain HTTP port that redirects to it. Both ports
//! take connections through [`listener`](super::listener) (connection caps
//! per port and per client address, idle and handshake timeouts).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

use super::listener::{LimitedListener, WebLimits};
use super::{AppState, WebContext, host_allowed, lock, mdns_name, restore_sessions, router, strip_port, tls};
use crate::ApplianceError;

/// A running web server.
#[derive(Debug)]
pub struct WebServer {
    /// Where HTTPS listens.
    pub https_addr: SocketAddr,
    /// Where the HTTP redirect listens.
    pub http_addr: SocketAddr,
    /// SHA-256 fingerprint of the device certificate.
    pub fingerprint: String,
    /// The device certificate (DER), e.g. for a client to trust.
    pub certificate: Vec<u8>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl WebServer {
    /// Binds both ports from the settings, loads or makes the device
    /// certificate, and serves until dropped, with [`WebLimits::default`].
    /// Must run inside a tokio runtime.
    pub async fn start(ctx: WebContext) -> Result<Self, ApplianceError> {
        Self::start_with(ctx, WebLimits::default()).await
    }

    /// [`WebServer::start`] with other connection limits.
    pub async fn start_with(ctx: WebContext, limits: WebLimits) -> Result<Self, ApplianceError> {
        limits.check()?;
        let settings = lock(&ctx.config).settings().clone();
        // The first name is the one the HTTP port redirects to when a request names another host.
        let names = vec![mdns_name(&settings.room_name), "localhost".to_owned(), settings.bind.to_string()];
        let cert = tls::DeviceCertificate::load_or_create(&settings.state_dir, &names)?;
        let fingerprint = cert.fingerprint();
        let https_tcp = TcpListener::bind((settings.bind, settings.https_port))
            .await
            .map_err(|e| ApplianceError::io(format!("https port {}", settings.https_port), e))?;
        let http_tcp = TcpListener::bind((settings.bind, settings.http_port))
            .await
            .map_err(|e| ApplianceError::io(format!("http port {}", settings.http_port), e))?;
        let https_addr = https_tcp.local_addr().map_err(|e| ApplianceError::io("https port", e))?;
        let http_addr = http_tcp.local_addr().map_err(|e| ApplianceError::io("http port", e))?;
        let https_tcp = LimitedListener::new(https_tcp, "https", &limits.https, limits.warn_interval);
        let http_tcp = LimitedListener::new(http_tcp, "http", &limits.http, limits.warn_interval);
        let tls_listener = tls::TlsListener::new(https_tcp, cert.server_config()?, limits.tls_handshake_timeout)
            .map_err(|e| ApplianceError::io("https port", e))?;

        restore_sessions(&ctx, &settings.state_dir);
        let app = router(AppState {
            ctx,
            fingerprint: fingerprint.clone(),
            state_dir: settings.state_dir.clone(),
            names: names.clone(),
        });
        let https_port = https_addr.port();
        let redirect = Router::new().fallback(move |headers: HeaderMap, req: Request| async move {
            redirect_to_https(&headers, req.uri(), https_port, &names)
        });
        let tasks = vec![
            tokio::spawn(async move {
                if let Err(e) =
                    axum::serve(tls_listener, app.into_make_service_with_connect_info::<super::ClientAddr>()).await
                {
                    tracing::error!("https server stopped: {e}");
                }
            }),
            tokio::spawn(async move {
                if let Err(e) = axum::serve(http_tcp, redirect).await {
                    tracing::error!("http redirect stopped: {e}");
                }
            }),
        ];
        Ok(Self { https_addr, http_addr, fingerprint, certificate: cert.der().to_vec(), tasks })
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The redirect for a request to the HTTP port: the same path on HTTPS, at
/// the host the request named if that is this device ([`host_allowed`]),
/// else at the device's first name (its `.local` name). A foreign `Host` is
/// never sent back, so the device cannot be made to redirect elsewhere.
fn redirect_to_https(headers: &HeaderMap, uri: &axum::http::Uri, https_port: u16, names: &[String]) -> Response {
    let asked = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(strip_port);
    let host = match asked {
        Some(host) if host_allowed(host, names) => match host.parse::<std::net::Ipv6Addr>() {
            // An IPv6 literal sent without brackets (not valid in a Host header, but harmless).
            Ok(ip) => format!("[{ip}]"),
            Err(_) => host.to_owned(),
        },
        _ => names.first().cloned().unwrap_or_else(|| "localhost".to_owned()),
    };
    let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "invalid request target\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["room.local".to_owned(), "localhost".to_owned(), "0.0.0.0".to_owned()]
    }

    fn redirect(host: Option<&str>, https_port: u16) -> Response {
        let mut h = HeaderMap::new();
        if let Some(host) = host {
            h.insert(header::HOST, HeaderValue::from_str(host).expect("header"));
        }
        let uri: axum::http::Uri = "/join?x=1".parse().expect("uri");
        redirect_to_https(&h, &uri, https_port, &names())
    }

    #[test]
    fn redirect_keeps_the_path_and_the_devices_own_host() {
        let r = redirect(Some("room.local:8080"), 8443);
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], "https://room.local:8443/join?x=1");
        assert_eq!(redirect(Some("ROOM.local"), 443).headers()[header::LOCATION], "https://ROOM.local/join?x=1");
        assert_eq!(redirect(Some("192.0.2.7:80"), 443).headers()[header::LOCATION], "https://192.0.2.7/join?x=1");
        assert_eq!(redirect(Some("[fe80::1]:80"), 443).headers()[header::LOCATION], "https://[fe80::1]/join?x=1");
        assert_eq!(redirect(Some("fe80::1"), 443).headers()[header::LOCATION], "https://[fe80::1]/join?x=1");
    }

    #[test]
    fn redirect_never_reflects_a_foreign_host() {
        // Security review finding 18: any Host was sent back in Location.
        for host in [
            Some("evil.example"),
            Some("evil.example:80"),
            Some("room.local.evil.example"),
            Some("evil.example/x@"),
            Some(""),
            None,
        ] {
            let r = redirect(host, 443);
            assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT, "{host:?}");
            assert_eq!(r.headers()[header::LOCATION], "https://room.local/join?x=1", "{host:?}");
        }
    }
}
