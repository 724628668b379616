//! One HTTPS GET of a small text file: hyper's HTTP/1 client over rustls
//! with the system's CA certificates, bounded in time and size. Used for a
//! Jitsi deployment's `config.js`; plain `http://` is refused.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::ConnectorError;

/// Fetches `url` (`https://…`) and returns its body as text (invalid UTF-8
/// replaced), failing on anything but 200, more than `max_bytes`, or
/// taking longer than `timeout` in all.
pub async fn get_text(url: &str, max_bytes: usize, timeout: Duration) -> Result<String, ConnectorError> {
    match tokio::time::timeout(timeout, get(url, max_bytes)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectorError::Timeout { what: "the HTTPS request" }),
    }
}

fn gone(reason: impl Into<String>) -> ConnectorError {
    ConnectorError::ServerGone { reason: reason.into() }
}

async fn get(url: &str, max_bytes: usize) -> Result<String, ConnectorError> {
    let uri: Uri = url.parse().map_err(|e| gone(format!("bad URL: {e}")))?;
    if uri.scheme_str() != Some("https") {
        return Err(ConnectorError::Unsupported { what: "fetching anything but https://" });
    }
    let host = uri.host().ok_or_else(|| gone("URL without a host"))?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(443);
    let tcp = TcpStream::connect((host, port)).await.map_err(|e| gone(format!("connect to {host}:{port}: {e}")))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| gone(format!("host name: {e}")))?;
    let tls = tokio_rustls::TlsConnector::from(super::tls_client_config()?)
        .connect(name, tcp)
        .await
        .map_err(|e| gone(format!("TLS with {host}: {e}")))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| gone(format!("HTTP: {e}")))?;
    let driver = tokio::spawn(connection);
    let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_else(|| host.to_owned());
    let path = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".to_owned());
    let request = Request::get(path.as_str())
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, concat!("cloakroom/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| gone(format!("request: {e}")))?;
    let response = sender.send_request(request).await.map_err(|e| gone(format!("HTTP: {e}")))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), max_bytes).collect().await;
    driver.abort();
    if status != StatusCode::OK {
        return Err(ConnectorError::Refused {
            code: i64::from(status.as_u16()),
            reason: format!("GET {path}: {status}"),
        });
    }
    let bytes = body.map_err(|e| gone(format!("body (at most {max_bytes} bytes): {e}")))?.to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_http_is_refused_and_a_closed_port_says_so() {
        let e = get_text("http://127.0.0.1:9/config.js", 1024, Duration::from_secs(2)).await.expect_err("plain");
        assert!(matches!(e, ConnectorError::Unsupported { .. }), "{e}");
        // A port nobody listens on (bound, then closed).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let e = get_text(&format!("https://127.0.0.1:{port}/config.js"), 1024, Duration::from_secs(2))
            .await
            .expect_err("closed");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Accepts and says nothing (no TLS handshake).
        let _held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let e = get_text(&format!("https://127.0.0.1:{port}/config.js"), 1024, Duration::from_millis(300))
            .await
            .expect_err("silent");
        assert!(matches!(e, ConnectorError::Timeout { .. }), "{e}");
    }
}
