//! `POST /api/qr/cancel`: stops the countdown of a join by QR code held up
//! to the room's camera ([`crate::qr_join`]), as the mute button does.
//!
//! Admin or guest: a guest session comes from scanning the room screen's
//! own code, so a guest is someone who sees the room screen and the
//! countdown on it, which is whom the Cancel button is for. Needs the CSRF
//! token and this device's Origin as every state-changing request. Answers
//! 409 `no_countdown` when nothing counts down.
//!
//! The countdown lives in the daemon; the daemon and this route meet in
//! [`CountdownControl`], one per process (one room per daemon), which the
//! board's mute button reaches too.

use std::sync::Mutex;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::api::{self, ApiError};
use super::{Access, AppState, authorize};
use crate::qr_join::CancelledBy;

/// Whether a countdown runs, and who asked to stop it.
#[derive(Debug)]
pub struct CountdownControl {
    state: Mutex<(bool, Option<CancelledBy>)>,
}

/// The daemon's countdown control.
pub static COUNTDOWN: CountdownControl = CountdownControl::new();

impl CountdownControl {
    /// No countdown, nothing asked.
    pub const fn new() -> Self {
        Self { state: Mutex::new((false, None)) }
    }

    /// The daemon: whether a countdown runs now (a stop asked for before
    /// it started is forgotten).
    pub fn set_counting(&self, counting: bool) {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.0 != counting {
            *s = (counting, None);
        }
    }

    /// The page or the mute button: asks to stop the countdown; whether one ran.
    pub fn request_cancel(&self, by: CancelledBy) -> bool {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.0 && s.1.is_none() {
            s.1 = Some(by);
        }
        s.0
    }

    /// The daemon: who asked to stop since the last call, if anyone.
    pub fn take_cancel(&self) -> Option<CancelledBy> {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.1.take()
    }
}

impl Default for CountdownControl {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/qr/cancel", post(cancel))
}

async fn cancel(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&st, &method, &headers, Access::AdminOrGuest)?;
    if !body.is_empty() {
        api::parse_body::<serde_json::Map<String, serde_json::Value>>(&body)?;
    }
    if !COUNTDOWN.request_cancel(CancelledBy::Page) {
        return Err(ApiError::new(StatusCode::CONFLICT, "no_countdown", "the room is not counting down to a join"));
    }
    st.ctx.logs.push("info", "join by QR code cancelled on the page");
    Ok(axum::Json(serde_json::json!({ "ok": true })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_counts_only_during_a_countdown() {
        let c = CountdownControl::new();
        assert!(!c.request_cancel(CancelledBy::Page), "nothing counts down");
        c.set_counting(true);
        assert_eq!(c.take_cancel(), None, "the earlier request is not kept");
        assert!(c.request_cancel(CancelledBy::Button));
        assert!(c.request_cancel(CancelledBy::Page));
        assert_eq!(c.take_cancel(), Some(CancelledBy::Button), "the first one counts");
        assert_eq!(c.take_cancel(), None, "taken once");
        c.request_cancel(CancelledBy::Page);
        c.set_counting(false);
        c.set_counting(true);
        assert_eq!(c.take_cancel(), None, "a new countdown starts clean");
    }
}
