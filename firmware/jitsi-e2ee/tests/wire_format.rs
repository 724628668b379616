//! Every message this crate sends has the field names, nesting and value types
//! of the message of the same type that real lib-jitsi-meet clients exchanged
//! (tests/fixtures/olm-messages.json), and the same lengths where the capture
//! kept them.

mod common;

use std::collections::BTreeMap;

use common::{Net, olm_type};
use serde_json::Value;

fn fixture() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/olm-messages.json");
    let text = std::fs::read_to_string(path).expect("fixture readable");
    let v: Value = serde_json::from_str(&text).expect("fixture is JSON");
    v["messages"].as_array().expect("messages").iter().map(|m| m["json"].clone()).collect()
}

/// Names, nesting and value types; the keys of `mac` (key ids) become `<keyId>`.
fn shape(v: &Value, parent: &str) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, child)| {
                    let name = if parent == "mac" { "<keyId>".to_owned() } else { k.clone() };
                    (name, shape(child, k))
                })
                .collect(),
        ),
        Value::String(_) => Value::String("string".into()),
        Value::Number(_) => Value::String("number".into()),
        Value::Bool(_) => Value::String("bool".into()),
        Value::Array(_) => Value::String("array".into()),
        Value::Null => Value::String("null".into()),
    }
}

/// Every string leaf with its path ("olm.data.idKey"), `mac` keys as `<keyId>`.
fn leaves(v: &Value, path: &str, parent: &str, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let name = if parent == "mac" { "<keyId>" } else { k.as_str() };
                let p = if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
                leaves(child, &p, k, out);
            }
        }
        Value::String(s) => {
            out.insert(path.to_owned(), s.clone());
        }
        _ => {}
    }
}

fn redacted_len(s: &str) -> Option<usize> {
    s.strip_prefix("<redacted ")?.strip_suffix(" chars>")?.parse().ok()
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// All the message types one conversation produces: sessions, keys, a full SAS.
fn our_messages() -> Vec<Value> {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.run();
    let now = net.now;
    net.peer("a").start_sas(now, "b").expect("starts");
    net.run();
    net.peer("a").confirm_sas(now, "b", true).expect("confirms");
    net.peer("b").confirm_sas(now, "a", true).expect("confirms");
    net.run();
    assert!(net.errors.is_empty(), "{:?}", net.errors);
    net.sent.iter().map(|w| serde_json::from_str(&w.json).expect("JSON")).collect()
}

#[test]
fn every_message_type_matches_the_capture() {
    let captured = fixture();
    assert_eq!(captured.len(), 12);
    let mut by_type: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for m in &captured {
        by_type.entry(m["olm"]["type"].as_str().expect("type").to_owned()).or_default().push(m.clone());
    }
    let ours = our_messages();
    let mut seen = BTreeMap::new();
    for m in &ours {
        let kind = m["olm"]["type"].as_str().expect("type").to_owned();
        let references = by_type.get(&kind).unwrap_or_else(|| panic!("no captured {kind}"));
        for reference in references {
            assert_eq!(shape(m, ""), shape(reference, ""), "{kind}: ours {m} vs captured {reference}");
        }
        *seen.entry(kind).or_insert(0) += 1;
    }
    let kinds: Vec<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(
        kinds,
        ["key-info", "key-info-ack", "sas-accept", "sas-key", "sas-mac", "sas-start", "session-ack", "session-init"],
        "all captured types were produced"
    );
}

#[test]
fn lengths_match_the_capture() {
    let captured = fixture();
    // Lengths of redacted fixed-size values (keys, commitment, MACs) by path.
    let mut fixed: BTreeMap<String, usize> = BTreeMap::new();
    // Olm body lengths of key-bearing messages by ciphertext type (the captured
    // session-ack carried `{}`: its sender had no key yet, so it is left out).
    let mut bodies: BTreeMap<u64, usize> = BTreeMap::new();
    for m in &captured {
        let kind = m["olm"]["type"].as_str().expect("type");
        let mut l = BTreeMap::new();
        leaves(m, "", "", &mut l);
        for (path, value) in l {
            if let Some(n) = redacted_len(&value) {
                if path.ends_with("ciphertext.body") {
                    if kind != "session-ack" {
                        let t = m["olm"]["data"]["ciphertext"]["type"].as_u64().expect("type");
                        let previous = bodies.insert(t, n);
                        assert!(previous.is_none_or(|p| p == n));
                    }
                } else {
                    fixed.insert(format!("{kind}:{path}"), n);
                }
            } else if path.ends_with("uuid") || path.ends_with("transactionId") {
                assert!(is_uuid(&value), "{value}");
            }
        }
    }
    assert_eq!(bodies, BTreeMap::from([(0, 310), (1, 170)]));

    let mut checked = 0;
    for m in &our_messages() {
        let kind = m["olm"]["type"].as_str().expect("type");
        let mut l = BTreeMap::new();
        leaves(m, "", "", &mut l);
        for (path, value) in l {
            if path.ends_with("ciphertext.body") {
                let t = m["olm"]["data"]["ciphertext"]["type"].as_u64().expect("type");
                assert_eq!(value.len(), bodies[&t], "{kind} type {t} body");
                checked += 1;
            } else if let Some(n) = fixed.get(&format!("{kind}:{path}")) {
                assert_eq!(value.len(), *n, "{kind} {path}");
                checked += 1;
            } else if path.ends_with("uuid") || path.ends_with("transactionId") {
                assert!(is_uuid(&value), "{kind} {path} {value}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "{checked}");
}

#[test]
fn the_session_ack_is_a_pre_key_message_as_captured() {
    let captured = fixture();
    let ack = captured.iter().find(|m| m["olm"]["type"] == "session-ack").expect("captured ack");
    let ours = our_messages();
    let our_ack = ours.iter().find(|m| m["olm"]["type"] == "session-ack").expect("our ack");
    assert_eq!(our_ack["olm"]["data"]["ciphertext"]["type"], ack["olm"]["data"]["ciphertext"]["type"]);
    assert_eq!(our_ack["olm"]["data"]["ciphertext"]["type"], 0);
    assert_eq!(our_ack["type"], "olm");
}

#[test]
fn the_error_message_has_lib_jitsi_meets_shape() {
    // No error in the capture; the shape is OlmAdapter.js's _sendError.
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.run();
    let now = net.now;
    let replay = net.sent_of_type("session-init").pop().expect("init");
    assert!(net.peer("b").handle_message(now, "a", &replay.json).is_err());
    net.drain_all();
    let err = net.sent_of_type("error").pop().expect("an error answer");
    let v: Value = serde_json::from_str(&err.json).expect("JSON");
    let expected = serde_json::json!({"type": "string", "olm": {"data": {"error": "string"}, "type": "string"}});
    assert_eq!(shape(&v, ""), expected);
    assert_eq!(v["type"], "olm");
    assert_eq!(v["olm"]["data"]["error"], "Session already established");
}

#[test]
fn a_captured_sas_start_is_answered_with_its_transaction_id() {
    let captured = fixture();
    let start = captured.iter().find(|m| m["olm"]["type"] == "sas-start").expect("captured start");
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.run();
    let now = net.now;
    net.peer("b").handle_message(now, "a", &start.to_string()).expect("a real sas-start is accepted");
    net.drain_all();
    let accept = net.sent_of_type("sas-accept").pop().expect("accepted");
    let v: Value = serde_json::from_str(&accept.json).expect("JSON");
    assert_eq!(v["olm"]["data"]["transactionId"], start["olm"]["data"]["transactionId"]);
    assert_eq!(olm_type(&accept.json), "sas-accept");
}
