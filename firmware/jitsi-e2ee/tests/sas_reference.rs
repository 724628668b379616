//! SAS against a reference peer written in this test from lib-jitsi-meet's
//! source text (OlmAdapter.js, SAS.ts at 01daa07c3f8c) and libolm's
//! `olm_sas_*` functions, with its own HKDF, HMAC and libolm's in-place
//! base64 (not vodozemac's SAS), so that the info strings, key ids, MAC
//! inputs, commitment and code are pinned to lib-jitsi-meet's and not only
//! consistent between two instances of this crate.

mod common;

use base64::Engine;
use cloakroom_jitsi_e2ee::{SasEvent, sas::EMOJI};
use common::{Net, olm_type};
use hkdf::Hkdf;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vodozemac::{Curve25519PublicKey, Curve25519SecretKey};

const B64: [u8; 64] = *b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// libolm's `olm_sas_calculate_mac`: HMAC-SHA-256 keyed with HKDF(secret, no
/// salt, info, 32 bytes), then `_olm_encode_base64(mac, 32, mac)` in place.
fn libolm_calculate_mac(shared: &[u8], input: &str, info: &str) -> String {
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(None, shared).expand(info.as_bytes(), &mut key).expect("32 bytes");
    let mut hmac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    hmac.update(input.as_bytes());
    let digest = hmac.finalize().into_bytes();
    // The output buffer holds the MAC in its first 32 bytes and is encoded onto itself.
    let mut buf = [0u8; 44];
    buf[..32].copy_from_slice(&digest);
    let (mut read, mut write) = (0, 0);
    for _ in 0..10 {
        let value = u32::from(buf[read]) << 16 | u32::from(buf[read + 1]) << 8 | u32::from(buf[read + 2]);
        read += 3;
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            buf[write + k] = B64[((value >> shift) & 0x3f) as usize];
        }
        write += 4;
    }
    // Two bytes remain: three characters, no padding.
    let value = (u32::from(buf[read]) << 8 | u32::from(buf[read + 1])) << 2;
    buf[write] = B64[((value >> 12) & 0x3f) as usize];
    buf[write + 1] = B64[((value >> 6) & 0x3f) as usize];
    buf[write + 2] = B64[(value & 0x3f) as usize];
    String::from_utf8(buf[..43].to_vec()).expect("ASCII")
}

/// `Olm.Utility.sha256(pubKey + JSON.stringify(data))`.
fn commitment(pub_key: &str, data: &Value) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(format!("{pub_key}{data}")))
}

/// SAS.ts: `generateDecimalSas` and `generateEmojiSas` over `generate_bytes(info, 6)`.
fn reference_code(shared: &[u8], info: &str) -> ([u16; 3], Vec<&'static str>) {
    let mut b = [0u8; 6];
    Hkdf::<Sha256>::new(None, shared).expand(info.as_bytes(), &mut b).expect("6 bytes");
    let b = b.map(u16::from);
    let decimals = [
        (b[0] << 5 | b[1] >> 3) + 1000,
        ((b[1] & 0x7) << 10 | b[2] << 2 | b[3] >> 6) + 1000,
        ((b[3] & 0x3f) << 7 | b[4] >> 1) + 1000,
    ];
    let indices = [
        b[0] >> 2,
        (b[0] & 0x3) << 4 | b[1] >> 4,
        (b[1] & 0xf) << 2 | b[2] >> 6,
        b[2] & 0x3f,
        b[3] >> 2,
        (b[3] & 0x3) << 4 | b[4] >> 4,
        (b[4] & 0xf) << 2 | b[5] >> 6,
    ];
    (decimals, indices.iter().map(|&i| EMOJI[usize::from(i)].name).collect())
}

fn olm(kind: &str, data: Value) -> String {
    json!({"type": "olm", "olm": {"data": data, "type": kind}}).to_string()
}

/// The last message `from` sent of `kind`, parsed.
fn last_sent(net: &Net, from: &str, kind: &str) -> Value {
    let wire = net.sent.iter().rev().find(|w| w.from == from && olm_type(&w.json) == kind).expect("sent");
    serde_json::from_str::<Value>(&wire.json).expect("JSON")["olm"]["data"].clone()
}

/// A session between "alice" (this crate, under test) and "ref", whose Olm
/// side is an instance of this crate; ref's SAS messages are made here.
fn setup() -> (Net, String) {
    let mut net = Net::new();
    net.join("alice");
    net.join("ref");
    net.run();
    // Alice must not answer ref's instance: ref's SAS is the reference below.
    net.tamper = Some(Box::new(|w| w.to != "ref"));
    let ref_ed25519 = net.peers["ref"].identity_keys().ed25519;
    (net, ref_ed25519)
}

fn code_of(net: &Net) -> cloakroom_jitsi_e2ee::SasCode {
    net.sas_events("alice", "ref")
        .into_iter()
        .find_map(|e| if let SasEvent::Code(c) = e { Some(*c) } else { None })
        .expect("alice shows a code")
}

#[test]
fn alice_answers_a_reference_starter_as_lib_jitsi_meet() {
    let (mut net, ref_ed25519) = setup();
    let alice_ed25519 = net.peers["alice"].identity_keys().ed25519;
    let now = net.now;
    let tx = "3c465317-4b4e-4b62-aff5-c42ad5cd96ea";
    let start = json!({"transactionId": tx});
    net.peer("alice").handle_message(now, "ref", &olm("sas-start", start.clone())).expect("sas-start");
    net.run();
    let commitment_sent = last_sent(&net, "alice", "sas-accept")["commitment"].as_str().expect("commitment").to_owned();

    let secret = Curve25519SecretKey::from_slice(&[0x42; 32]);
    let ref_key = Curve25519PublicKey::from(&secret).to_base64();
    net.peer("alice")
        .handle_message(now, "ref", &olm("sas-key", json!({"key": ref_key, "transactionId": tx})))
        .expect("sas-key");
    net.run();
    let alice_key = last_sent(&net, "alice", "sas-key")["key"].as_str().expect("key").to_owned();
    assert_eq!(
        commitment_sent,
        commitment(&alice_key, &start),
        "commitment = sha256(key + JSON.stringify(start data))"
    );

    let alice_public = Curve25519PublicKey::from_base64(&alice_key).expect("a key");
    let shared = secret.diffie_hellman(&alice_public).expect("contributory");
    let shared = shared.as_bytes();
    // ref started: info = starter id|starter key|responder id|responder key.
    let (decimals, names) = reference_code(shared, &format!("ref|{ref_key}|alice|{alice_key}"));
    let code = code_of(&net);
    assert_eq!(code.decimals, decimals);
    assert_eq!(code.emoji.iter().map(|e| e.name).collect::<Vec<_>>(), names);

    net.peer("alice").confirm_sas(now, "ref", true).expect("confirms");
    net.run();
    let mac = last_sent(&net, "alice", "sas-mac");
    let base = format!("Jitsi-KEY_VERIFICATION_MAC{}{}{tx}", "alice", "ref");
    let expected_mac =
        json!({"ed25519:ref": libolm_calculate_mac(shared, &alice_ed25519, &format!("{base}ed25519:ref"))});
    assert_eq!(mac["mac"], expected_mac);
    assert_eq!(mac["keys"], libolm_calculate_mac(shared, "ed25519:ref", &format!("{base}Jitsi-KEY_IDS")));
    assert_eq!(mac["transactionId"], tx);

    // ref's MAC, made as lib-jitsi-meet's _sendSasMac: alice verifies.
    let base = format!("Jitsi-KEY_VERIFICATION_MAC{}{}{tx}", "ref", "alice");
    let ref_mac = json!({
        "keys": libolm_calculate_mac(shared, "ed25519:alice", &format!("{base}Jitsi-KEY_IDS")),
        "mac": {"ed25519:alice": libolm_calculate_mac(shared, &ref_ed25519, &format!("{base}ed25519:alice"))},
        "transactionId": tx,
    });
    net.peer("alice").handle_message(now, "ref", &olm("sas-mac", ref_mac)).expect("sas-mac");
    net.run();
    assert_eq!(net.sas_events("alice", "ref").last(), Some(&SasEvent::Verified));
}

#[test]
fn alice_starts_with_a_reference_responder_as_lib_jitsi_meet() {
    let (mut net, ref_ed25519) = setup();
    let alice_ed25519 = net.peers["alice"].identity_keys().ed25519;
    let now = net.now;
    net.peer("alice").start_sas(now, "ref").expect("starts");
    net.run();
    let start = last_sent(&net, "alice", "sas-start");
    assert_eq!(start.as_object().expect("object").len(), 1, "sas-start data is {{transactionId}} only");
    let tx = start["transactionId"].as_str().expect("tx").to_owned();

    let secret = Curve25519SecretKey::from_slice(&[0x24; 32]);
    let ref_key = Curve25519PublicKey::from(&secret).to_base64();
    let accept = json!({"commitment": commitment(&ref_key, &start), "transactionId": tx});
    net.peer("alice").handle_message(now, "ref", &olm("sas-accept", accept)).expect("sas-accept");
    net.run();
    let alice_key = last_sent(&net, "alice", "sas-key")["key"].as_str().expect("key").to_owned();
    net.peer("alice")
        .handle_message(now, "ref", &olm("sas-key", json!({"key": ref_key, "transactionId": tx})))
        .expect("sas-key");
    net.run();
    assert!(net.errors.is_empty(), "{:?}", net.errors);

    let alice_public = Curve25519PublicKey::from_base64(&alice_key).expect("a key");
    let shared = secret.diffie_hellman(&alice_public).expect("contributory");
    let shared = shared.as_bytes();
    let (decimals, names) = reference_code(shared, &format!("alice|{alice_key}|ref|{ref_key}"));
    let code = code_of(&net);
    assert_eq!(code.decimals, decimals);
    assert_eq!(code.emoji.iter().map(|e| e.name).collect::<Vec<_>>(), names);

    let base = format!("Jitsi-KEY_VERIFICATION_MAC{}{}{tx}", "ref", "alice");
    let ref_mac = json!({
        "keys": libolm_calculate_mac(shared, "ed25519:alice", &format!("{base}Jitsi-KEY_IDS")),
        "mac": {"ed25519:alice": libolm_calculate_mac(shared, &ref_ed25519, &format!("{base}ed25519:alice"))},
        "transactionId": tx,
    });
    net.peer("alice").handle_message(now, "ref", &olm("sas-mac", ref_mac)).expect("sas-mac");
    net.run();
    assert!(!net.sas_events("alice", "ref").contains(&SasEvent::Verified), "not before alice's people confirm");
    net.peer("alice").confirm_sas(now, "ref", true).expect("confirms");
    net.run();
    assert_eq!(net.sas_events("alice", "ref").last(), Some(&SasEvent::Verified));
    let mac = last_sent(&net, "alice", "sas-mac");
    let base = format!("Jitsi-KEY_VERIFICATION_MAC{}{}{tx}", "alice", "ref");
    assert_eq!(mac["mac"]["ed25519:ref"], libolm_calculate_mac(shared, &alice_ed25519, &format!("{base}ed25519:ref")));
}

#[test]
fn the_in_place_base64_differs_from_plain_base64() {
    // The quirk the reference reproduces: after the first 6 characters libolm's output stops being the MAC's base64.
    let shared = [9u8; 32];
    let buggy = libolm_calculate_mac(&shared, "input", "info");
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(None, &shared).expand(b"info", &mut key).expect("32 bytes");
    let mut hmac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("key");
    hmac.update(b"input");
    let plain = base64::engine::general_purpose::STANDARD_NO_PAD.encode(hmac.finalize().into_bytes());
    assert_eq!(buggy.len(), 43);
    assert_eq!(buggy[..4], plain[..4]);
    assert_ne!(buggy, plain);
}
