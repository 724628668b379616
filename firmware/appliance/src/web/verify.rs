//! `POST /api/verify`: people in the room verify who a remote participant
//! is (Jitsi's SAS). They start it, compare the code the room's screen and
//! the page show with the one the participant sees, and say whether it
//! matched. Admins, and the phone whose session started the meeting.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::api::{self, ApiError};
use super::{Access, AppState, authorize, check_guest_meeting};

/// The request: `{"participant": "<id>", "action": "start" | "confirm" | "reject"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub participant: String,
    pub action: String,
}

pub(super) async fn verify(
    State(st): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let session = authorize(&st, &method, &headers, Access::AdminOrGuest)?;
    check_guest_meeting(&st, &session)?;
    let req: VerifyRequest = api::parse_body(&body)?;
    let (start, confirm) = match req.action.as_str() {
        "start" => (true, None),
        "confirm" => (false, Some(true)),
        "reject" => (false, Some(false)),
        _ => return Err(ApiError::field("action", "expected \"start\", \"confirm\" or \"reject\"")),
    };
    let status = st.ctx.room.status();
    if !status.participants.iter().any(|p| p.id == req.participant) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_participant",
            "nobody with that id is in the meeting",
        ));
    }
    st.ctx.room.verify(&req.participant, start, confirm);
    Ok(axum::Json(serde_json::json!({ "ok": true })).into_response())
}
