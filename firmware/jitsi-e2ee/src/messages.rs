//! lib-jitsi-meet's Olm message shapes (`modules/e2ee/OlmAdapter.js` at 01daa07c3f8c).
//!
//! Every message is the JSON text of a private MUC message's
//! `<json-message xmlns='http://jitsi.org/jitmeet'>`:
//!
//! ```text
//! {"type":"olm","olm":{"data":{…},"type":"<message type>"}}
//! ```
//!
//! | type | data |
//! |------|------|
//! | `session-init` | `idKey` (sender's Curve25519 identity key), `otKey` (a fresh one-time key), `uuid` |
//! | `session-ack` | `ciphertext` `{type, body}` (an Olm pre-key message with the sender's key info), `uuid` of the init |
//! | `key-info` | `ciphertext`, `uuid` |
//! | `key-info-ack` | `ciphertext` (the acknowledger's key info), `uuid` of the key-info |
//! | `sas-start` | `transactionId` |
//! | `sas-accept` | `commitment`, `transactionId` |
//! | `sas-key` | `key` (the SAS public key), `transactionId` |
//! | `sas-mac` | `keys` (MAC of the key id list), `mac` (`{"ed25519:<id>": MAC}`), `transactionId` |
//! | `error` | `error` (text, only logged) |
//!
//! Keys, one-time keys and Olm bodies are unpadded base64 as libolm writes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vodozemac::olm::OlmMessage;

/// The value of the top-level `type` for Olm messages (`OLM_MESSAGE_TYPE`).
pub const OLM_MUC_TYPE: &str = "olm";

/// Longest JSON text accepted. lib-jitsi-meet's largest message (a session-ack)
/// is about 400 bytes.
pub(crate) const MAX_MESSAGE_LEN: usize = 16 * 1024;
/// Longest uuid or transaction id accepted (lib-jitsi-meet sends 36-character uuids).
const MAX_ID_LEN: usize = 128;
/// Most entries accepted in a sas-mac's `mac` (lib-jitsi-meet sends one).
const MAX_MAC_ENTRIES: usize = 8;

/// A message received from a peer, checked for shape.
pub(crate) enum Incoming {
    SessionInit { id_key: String, ot_key: String, uuid: String },
    SessionAck(Ciphered),
    KeyInfo(Ciphered),
    KeyInfoAck(Ciphered),
    Error { error: String },
    SasStart { transaction_id: String },
    SasAccept { commitment: String, transaction_id: String },
    SasKey { key: String, transaction_id: String },
    SasMac { keys: String, mac: BTreeMap<String, String>, transaction_id: String },
}

/// An Olm message and the uuid it belongs to.
pub(crate) struct Ciphered {
    pub message: OlmMessage,
    pub uuid: String,
}

/// Why a text is not an Olm message. Never quotes the text.
#[derive(Debug)]
pub(crate) struct ParseError(pub String);

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<String>,
    olm: Option<Payload>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: serde_json::Value,
}

#[derive(Deserialize)]
struct SessionInitIn {
    #[serde(rename = "idKey")]
    id_key: String,
    #[serde(rename = "otKey")]
    ot_key: String,
    uuid: String,
}

#[derive(Deserialize)]
struct CipheredIn {
    ciphertext: CiphertextIn,
    uuid: String,
}

#[derive(Deserialize)]
struct CiphertextIn {
    #[serde(rename = "type")]
    kind: usize,
    body: String,
}

#[derive(Deserialize)]
struct TransactionIn {
    #[serde(rename = "transactionId")]
    transaction_id: String,
}

#[derive(Deserialize)]
struct SasAcceptIn {
    commitment: String,
    #[serde(rename = "transactionId")]
    transaction_id: String,
}

#[derive(Deserialize)]
struct SasKeyIn {
    key: String,
    #[serde(rename = "transactionId")]
    transaction_id: String,
}

#[derive(Deserialize)]
struct SasMacIn {
    keys: String,
    mac: BTreeMap<String, String>,
    #[serde(rename = "transactionId")]
    transaction_id: String,
}

/// Parses the JSON text of a `<json-message>` whose type should be "olm".
pub(crate) fn parse(json: &str) -> Result<Incoming, ParseError> {
    if json.len() > MAX_MESSAGE_LEN {
        return Err(ParseError(format!("message of {} bytes is longer than {MAX_MESSAGE_LEN}", json.len())));
    }
    let envelope: Envelope = serde_json::from_str(json).map_err(|e| json_error("message", &e))?;
    if envelope.kind.as_deref() != Some(OLM_MUC_TYPE) {
        return Err(ParseError("message type is not \"olm\"".into()));
    }
    let Some(payload) = envelope.olm else {
        return Err(ParseError("message has no \"olm\" object".into()));
    };
    let data = payload.data;
    let message = match payload.kind.as_str() {
        "session-init" => {
            let d: SessionInitIn = from_data(data, "session-init")?;
            check_id(&d.uuid, "uuid")?;
            Incoming::SessionInit { id_key: d.id_key, ot_key: d.ot_key, uuid: d.uuid }
        }
        "session-ack" => Incoming::SessionAck(ciphered(data, "session-ack")?),
        "key-info" => Incoming::KeyInfo(ciphered(data, "key-info")?),
        "key-info-ack" => Incoming::KeyInfoAck(ciphered(data, "key-info-ack")?),
        "error" => {
            let error = match data.get("error") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            Incoming::Error { error }
        }
        "sas-start" => {
            let d: TransactionIn = from_data(data, "sas-start")?;
            check_id(&d.transaction_id, "transactionId")?;
            Incoming::SasStart { transaction_id: d.transaction_id }
        }
        "sas-accept" => {
            let d: SasAcceptIn = from_data(data, "sas-accept")?;
            check_id(&d.transaction_id, "transactionId")?;
            Incoming::SasAccept { commitment: d.commitment, transaction_id: d.transaction_id }
        }
        "sas-key" => {
            let d: SasKeyIn = from_data(data, "sas-key")?;
            check_id(&d.transaction_id, "transactionId")?;
            Incoming::SasKey { key: d.key, transaction_id: d.transaction_id }
        }
        "sas-mac" => {
            let d: SasMacIn = from_data(data, "sas-mac")?;
            check_id(&d.transaction_id, "transactionId")?;
            if d.mac.is_empty() || d.mac.len() > MAX_MAC_ENTRIES {
                return Err(ParseError(format!("sas-mac has {} MACs, not 1 to {MAX_MAC_ENTRIES}", d.mac.len())));
            }
            Incoming::SasMac { keys: d.keys, mac: d.mac, transaction_id: d.transaction_id }
        }
        other => {
            return Err(ParseError(format!("unknown Olm message type {:?}", clip(other))));
        }
    };
    Ok(message)
}

fn from_data<T: serde::de::DeserializeOwned>(data: serde_json::Value, kind: &str) -> Result<T, ParseError> {
    serde_json::from_value(data).map_err(|e| json_error(kind, &e))
}

fn ciphered(data: serde_json::Value, kind: &str) -> Result<Ciphered, ParseError> {
    let d: CipheredIn = from_data(data, kind)?;
    check_id(&d.uuid, "uuid")?;
    let bytes = vodozemac::base64_decode(&d.ciphertext.body)
        .map_err(|_| ParseError(format!("{kind}'s ciphertext body is not base64")))?;
    let message = OlmMessage::from_parts(d.ciphertext.kind, &bytes)
        .map_err(|e| ParseError(format!("{kind}'s ciphertext is not an Olm message: {e}")))?;
    Ok(Ciphered { message, uuid: d.uuid })
}

/// serde_json's category and position only: its messages can quote values.
fn json_error(what: &str, e: &serde_json::Error) -> ParseError {
    let category = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "missing or mistyped fields",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    if e.line() == 0 {
        ParseError(format!("{what}: {category}"))
    } else {
        ParseError(format!("{what}: {category} (line {} column {})", e.line(), e.column()))
    }
}

fn check_id(id: &str, field: &str) -> Result<(), ParseError> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(|c| c.is_control()) {
        return Err(ParseError(format!("{field} is empty, longer than {MAX_ID_LEN} bytes or has control characters")));
    }
    Ok(())
}

/// At most 40 characters of untrusted text, for error messages (printed with `{:?}`).
pub(crate) fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

// ---- Outgoing ----

#[derive(Serialize)]
struct Out<D: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    olm: OutPayload<D>,
}

#[derive(Serialize)]
struct OutPayload<D: Serialize> {
    data: D,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Serializes a message in lib-jitsi-meet's field order.
fn to_json<D: Serialize>(kind: &'static str, data: D) -> String {
    let message = Out { kind: OLM_MUC_TYPE, olm: OutPayload { data, kind } };
    // Cannot fail: plain structs of strings, numbers and string-keyed maps.
    serde_json::to_string(&message).expect("Olm messages serialize")
}

#[derive(Serialize)]
struct SessionInitOut<'a> {
    #[serde(rename = "idKey")]
    id_key: &'a str,
    #[serde(rename = "otKey")]
    ot_key: &'a str,
    uuid: &'a str,
}

#[derive(Serialize)]
struct CipheredOut<'a> {
    ciphertext: CiphertextOut,
    uuid: &'a str,
}

#[derive(Serialize)]
struct CiphertextOut {
    #[serde(rename = "type")]
    kind: usize,
    body: String,
}

/// The data of a sas-start, also what the commitment is computed over.
#[derive(Serialize)]
pub(crate) struct SasStartOut<'a> {
    #[serde(rename = "transactionId")]
    pub transaction_id: &'a str,
}

#[derive(Serialize)]
struct SasAcceptOut<'a> {
    commitment: &'a str,
    #[serde(rename = "transactionId")]
    transaction_id: &'a str,
}

#[derive(Serialize)]
struct SasKeyOut<'a> {
    key: &'a str,
    #[serde(rename = "transactionId")]
    transaction_id: &'a str,
}

#[derive(Serialize)]
struct SasMacOut<'a> {
    keys: &'a str,
    mac: BTreeMap<&'a str, &'a str>,
    #[serde(rename = "transactionId")]
    transaction_id: &'a str,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    error: &'a str,
}

pub(crate) fn session_init(id_key: &str, ot_key: &str, uuid: &str) -> String {
    to_json("session-init", SessionInitOut { id_key, ot_key, uuid })
}

/// A session-ack, key-info or key-info-ack.
pub(crate) fn ciphered_message(kind: CipheredKind, message: &OlmMessage, uuid: &str) -> String {
    let (message_type, bytes) = message.to_parts();
    let ciphertext = CiphertextOut { kind: message_type, body: vodozemac::base64_encode(bytes) };
    to_json(kind.as_str(), CipheredOut { ciphertext, uuid })
}

#[derive(Clone, Copy)]
pub(crate) enum CipheredKind {
    SessionAck,
    KeyInfo,
    KeyInfoAck,
}

impl CipheredKind {
    fn as_str(self) -> &'static str {
        match self {
            CipheredKind::SessionAck => "session-ack",
            CipheredKind::KeyInfo => "key-info",
            CipheredKind::KeyInfoAck => "key-info-ack",
        }
    }
}

pub(crate) fn sas_start(transaction_id: &str) -> String {
    to_json("sas-start", SasStartOut { transaction_id })
}

/// `JSON.stringify` of a sas-start's data, as lib-jitsi-meet computes the commitment over it.
pub(crate) fn sas_start_data_json(transaction_id: &str) -> String {
    // Cannot fail: one string field.
    serde_json::to_string(&SasStartOut { transaction_id }).expect("sas-start data serializes")
}

pub(crate) fn sas_accept(commitment: &str, transaction_id: &str) -> String {
    to_json("sas-accept", SasAcceptOut { commitment, transaction_id })
}

pub(crate) fn sas_key(key: &str, transaction_id: &str) -> String {
    to_json("sas-key", SasKeyOut { key, transaction_id })
}

pub(crate) fn sas_mac(keys: &str, mac: BTreeMap<&str, &str>, transaction_id: &str) -> String {
    to_json("sas-mac", SasMacOut { keys, mac, transaction_id })
}

pub(crate) fn error(text: &str) -> String {
    to_json("error", ErrorOut { error: text })
}
