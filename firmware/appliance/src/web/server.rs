//! Binding the two ports and serving them: HTTPS with the device
//! certificate, and the plain HTTP port that redirects to it.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

use super::{AppState, WebContext, lock, mdns_name, restore_sessions, router, strip_port, tls};
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
    /// certificate, and serves until dropped. Must run inside a tokio runtime.
    pub async fn start(ctx: WebContext) -> Result<Self, ApplianceError> {
        let settings = lock(&ctx.config).settings().clone();
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
        let tls_listener =
            tls::TlsListener::new(https_tcp, cert.server_config()?).map_err(|e| ApplianceError::io("https port", e))?;

        restore_sessions(&ctx, &settings.state_dir);
        let app = router(AppState {
            ctx,
            fingerprint: fingerprint.clone(),
            state_dir: settings.state_dir.clone(),
            names: names.clone(),
        });
        let https_port = https_addr.port();
        let redirect = Router::new().fallback(move |headers: HeaderMap, req: Request| async move {
            redirect_to_https(&headers, req.uri(), https_port)
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

fn redirect_to_https(headers: &HeaderMap, uri: &axum::http::Uri, https_port: u16) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let host = strip_port(host);
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !valid {
        return (StatusCode::BAD_REQUEST, "missing or invalid Host header\n").into_response();
    }
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

    #[test]
    fn redirect_keeps_path_and_refuses_bad_hosts() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("room.local:8080"));
        let uri: axum::http::Uri = "/join?x=1".parse().expect("uri");
        let r = redirect_to_https(&h, &uri, 8443);
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], "https://room.local:8443/join?x=1");
        let r = redirect_to_https(&h, &uri, 443);
        assert_eq!(r.headers()[header::LOCATION], "https://room.local/join?x=1");
        h.insert(header::HOST, HeaderValue::from_static("evil.example/x@"));
        assert_eq!(redirect_to_https(&h, &uri, 443).status(), StatusCode::BAD_REQUEST);
    }
}
