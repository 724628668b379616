//! Janus WebSocket JSON API messages (Janus 1.x, "The Janus API" and the
//! VideoRoom plugin documentation): what the session sends and the parts of
//! replies and events it reads. Unknown fields are ignored; a message that
//! is not JSON or lacks `janus` is an error returned to the caller, never a
//! panic.

use serde::Deserialize;
use serde_json::{Value, json};

use super::session::Room;

/// The VideoRoom plugin's package name, for `attach`.
pub const VIDEOROOM_PLUGIN: &str = "janus.plugin.videoroom";

/// The subprotocol Janus's WebSocket transport requires.
pub const WS_PROTOCOL: &str = "janus-protocol";

/// VideoRoom error code: no such room.
pub const ERROR_NO_SUCH_ROOM: i64 = 426;
/// Janus core error code: no such session (it expired or the server restarted).
pub const ERROR_SESSION_NOT_FOUND: i64 = 458;

/// A session description as Janus carries it in `jsep`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Jsep {
    #[serde(rename = "type")]
    pub kind: String,
    pub sdp: String,
}

/// An ICE candidate in a `trickle` message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Candidate {
    pub candidate: String,
    #[serde(rename = "sdpMid", default)]
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default)]
    pub sdp_mline_index: Option<u16>,
}

/// One message from Janus, the fields the session looks at.
#[derive(Debug, Clone, Deserialize)]
pub struct Incoming {
    pub janus: String,
    #[serde(default)]
    pub transaction: Option<String>,
    #[serde(default)]
    pub sender: Option<u64>,
    #[serde(default)]
    pub data: Option<Value>,
    #[serde(default)]
    pub plugindata: Option<PluginData>,
    #[serde(default)]
    pub jsep: Option<Jsep>,
    #[serde(default)]
    pub error: Option<CoreError>,
    #[serde(default)]
    pub candidate: Option<Value>,
    #[serde(default)]
    pub reason: Option<String>,
    /// `media` events: "audio" / "video" (1.1: `type`).
    #[serde(default, rename = "type")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub receiving: Option<bool>,
    #[serde(default)]
    pub uplink: Option<bool>,
    #[serde(default)]
    pub lost: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PluginData {
    #[serde(default)]
    pub plugin: String,
    #[serde(default)]
    pub data: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CoreError {
    pub code: i64,
    #[serde(default)]
    pub reason: String,
}

/// A publisher listed in `joined` / `event` messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherInfo {
    pub id: u64,
    pub display: Option<String>,
}

impl Incoming {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// `data.id` of a `success` reply (session or handle id).
    pub fn data_id(&self) -> Option<u64> {
        self.data.as_ref()?.get("id")?.as_u64()
    }

    /// The VideoRoom payload (`plugindata.data`).
    pub fn room_data(&self) -> Option<&Value> {
        self.plugindata.as_ref().map(|p| &p.data)
    }

    /// A VideoRoom error in the plugin payload: (code, text).
    pub fn plugin_error(&self) -> Option<(i64, String)> {
        let d = self.room_data()?;
        let code = d.get("error_code")?.as_i64()?;
        let text = d.get("error").and_then(Value::as_str).unwrap_or_default().to_owned();
        Some((code, text))
    }

    /// `publishers` listed in the payload (joined, or new ones arriving).
    pub fn publishers(&self) -> Vec<PublisherInfo> {
        let Some(list) = self.room_data().and_then(|d| d.get("publishers")).and_then(Value::as_array) else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|p| {
                Some(PublisherInfo {
                    id: p.get("id")?.as_u64()?,
                    // Chosen by a remote participant: cleaned before it reaches a log, the page or the screen.
                    display: p.get("display").and_then(Value::as_str).map(cloakroom_meeting::text::clean),
                })
            })
            .collect()
    }

    /// A feed that stopped publishing or left (`unpublished` / `leaving`).
    /// `"ok"` (our own unpublish/leave acknowledged) is not a feed.
    pub fn gone_feed(&self) -> Option<u64> {
        let d = self.room_data()?;
        ["unpublished", "leaving"].iter().find_map(|k| d.get(*k)?.as_u64())
    }

    /// `plugindata.data.videoroom` (joined, event, attached, …).
    pub fn videoroom(&self) -> Option<&str> {
        self.room_data()?.get("videoroom")?.as_str()
    }
}

/// The JSON value of a room id.
pub fn room_value(room: &Room) -> Value {
    match room {
        Room::Number(n) => json!(n),
        Room::Text(s) => json!(s),
    }
}
