//! The websocket driver: carries a [`Connector`]'s [`Transmit`]s to the
//! server as text frames and the server's text frames back
//! (tokio-tungstenite, `ws://` or `wss://` with the system's CA store). It
//! decides nothing: when to connect, what to send and when to give up are the
//! connector's.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::ConnectorError;
use crate::signalling::{Connector, ConnectorState, Event, Input, Output, Transmit};

/// How long opening the websocket may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Runs `session` against the server at `url` (`ws://…` or `wss://…`, with
/// the websocket `subprotocol` if the service needs one) until it has left or
/// failed. Inputs from the engine arrive on `inputs` (a closed channel means
/// leave); events go to `events`. Returns the final state.
pub async fn run(
    url: String,
    subprotocol: Option<&'static str>,
    mut session: Box<dyn Connector>,
    mut inputs: mpsc::Receiver<Input>,
    events: mpsc::Sender<Event>,
) -> ConnectorState {
    let mut socket: Option<Socket> = None;
    let mut inputs_open = true;
    loop {
        let timeout = loop {
            match session.poll_output() {
                Output::Transmit(Transmit::Connect) => {
                    let input = match connect(&url, subprotocol).await {
                        Ok(s) => {
                            socket = Some(s);
                            Input::TransportConnected
                        }
                        Err(ConnectorError::ServerGone { reason }) => Input::TransportClosed { reason },
                        Err(e) => Input::TransportClosed { reason: e.to_string() },
                    };
                    feed(&mut *session, input);
                }
                Output::Transmit(Transmit::Send(text)) => {
                    let failed = match socket.as_mut() {
                        Some(s) => s.send(Message::text(text)).await.err().map(|e| e.to_string()),
                        None => Some("not connected".to_owned()),
                    };
                    if let Some(reason) = failed {
                        socket = None;
                        feed(&mut *session, Input::TransportClosed { reason });
                    }
                }
                Output::Transmit(Transmit::Close) => {
                    if let Some(mut s) = socket.take() {
                        // Best effort: the server may already be gone.
                        let _ = s.close(None).await;
                    }
                }
                Output::Event(event) => {
                    // A closed receiver means nobody listens any more; keep
                    // running so the session can still leave cleanly.
                    let _ = events.send(event).await;
                }
                Output::Timeout(at) => break at,
            }
        };
        if session.state().is_final() {
            return session.state().clone();
        }
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(timeout));
        tokio::select! {
            frame = next_frame(&mut socket) => {
                let input = match frame {
                    Ok(Some(text)) => Input::TransportReceived(text),
                    Ok(None) => continue,
                    Err(reason) => {
                        socket = None;
                        Input::TransportClosed { reason }
                    }
                };
                feed(&mut *session, input);
            }
            input = inputs.recv(), if inputs_open => match input {
                Some(input) => feed(&mut *session, input),
                // The daemon dropped its sender: that means leave.
                None => {
                    inputs_open = false;
                    feed(&mut *session, Input::Leave);
                }
            },
            () = sleep => feed(&mut *session, Input::Tick),
        }
    }
}

fn feed(session: &mut dyn Connector, input: Input) {
    if let Err(e) = session.handle_input(Instant::now(), input) {
        tracing::warn!(error = %e, "ignored a message from the server");
    }
}

/// The next text frame; `Ok(None)` for control frames; pends forever without a socket.
async fn next_frame(socket: &mut Option<Socket>) -> Result<Option<String>, String> {
    let Some(s) = socket.as_mut() else {
        return std::future::pending().await;
    };
    match s.next().await {
        Some(Ok(Message::Text(t))) => Ok(Some(t.as_str().to_owned())),
        Some(Ok(Message::Close(_))) | None => Err("websocket closed".to_owned()),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(e.to_string()),
    }
}

async fn connect(url: &str, subprotocol: Option<&'static str>) -> Result<Socket, ConnectorError> {
    let tls = if url.starts_with("wss://") { Some(tls_connector()?) } else { None };
    let mut request =
        url.into_client_request().map_err(|e| ConnectorError::ServerGone { reason: format!("bad server url: {e}") })?;
    if let Some(protocol) = subprotocol {
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    }
    let connecting = tokio_tungstenite::connect_async_tls_with_config(request, None, false, tls);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(e)) => Err(ConnectorError::ServerGone { reason: e.to_string() }),
        Err(_) => Err(ConnectorError::Timeout { what: "websocket connect" }),
    }
}

/// TLS for `wss://` (see [`super::tls_client_config`]).
fn tls_connector() -> Result<tokio_tungstenite::Connector, ConnectorError> {
    Ok(tokio_tungstenite::Connector::Rustls(super::tls_client_config()?))
}
