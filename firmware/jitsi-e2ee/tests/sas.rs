//! SAS verification between real instances: the same code on both sides,
//! Verified after both confirm, Mismatch, tampered keys and MACs.

mod common;

use cloakroom_jitsi_e2ee::{E2eeError, SasCode, SasEvent, SasFailure};
use common::{Net, Wire, olm_type};

fn pair() -> Net {
    let mut net = Net::new();
    net.join("alice");
    net.join("bob");
    net.run();
    assert!(net.errors.is_empty(), "{:?}", net.errors);
    net
}

fn code_of(net: &Net, id: &str, participant: &str) -> SasCode {
    net.sas_events(id, participant)
        .into_iter()
        .find_map(|e| if let SasEvent::Code(c) = e { Some(*c) } else { None })
        .unwrap_or_else(|| panic!("{id} has a code for {participant}"))
}

/// Replaces `field` in the `olm.data` of matching messages with `value`.
fn rewrite(wire: &mut Wire, kind: &str, field: &str, value: serde_json::Value) {
    if olm_type(&wire.json) != kind {
        return;
    }
    let mut v: serde_json::Value = serde_json::from_str(&wire.json).expect("JSON");
    v["olm"]["data"][field] = value;
    wire.json = v.to_string();
}

#[test]
fn both_sides_see_the_same_code_and_verify_after_both_confirm() {
    let mut net = pair();
    let now = net.now;
    net.peer("alice").start_sas(now, "bob").expect("starts");
    net.run();
    assert!(net.errors.is_empty(), "{:?}", net.errors);
    let kinds: Vec<String> = net.sent.iter().map(|w| olm_type(&w.json)).filter(|k| k.starts_with("sas")).collect();
    assert_eq!(kinds, ["sas-start", "sas-accept", "sas-key", "sas-key"]);

    let a = code_of(&net, "alice", "bob");
    let b = code_of(&net, "bob", "alice");
    assert_eq!(a, b, "the same code on both sides");
    assert!(a.decimals.iter().all(|d| (1000..=9191).contains(d)), "{:?}", a.decimals);

    net.peer("bob").confirm_sas(now, "alice", true).expect("bob confirms");
    net.run();
    assert!(!net.sas_events("bob", "alice").contains(&SasEvent::Verified), "alice has not confirmed yet");
    assert!(!net.sas_events("alice", "bob").contains(&SasEvent::Verified), "alice's people have not confirmed");
    net.peer("alice").confirm_sas(now, "bob", true).expect("alice confirms");
    net.run();
    assert!(net.errors.is_empty(), "{:?}", net.errors);
    assert_eq!(net.sas_events("alice", "bob").last(), Some(&SasEvent::Verified));
    assert_eq!(net.sas_events("bob", "alice").last(), Some(&SasEvent::Verified));
    assert_eq!(net.sent_of_type("sas-mac").len(), 2);

    // Done: a new verification may start, from either side.
    net.peer("bob").start_sas(now, "alice").expect("bob starts another");
    net.run();
    assert_eq!(code_of(&net, "bob", "alice").decimals.len(), 3);
    assert!(net.errors.is_empty(), "{:?}", net.errors);
}

#[test]
fn the_responder_confirming_last_also_verifies() {
    let mut net = pair();
    let now = net.now;
    net.peer("bob").start_sas(now, "alice").expect("starts");
    net.run();
    net.peer("bob").confirm_sas(now, "alice", true).expect("starter confirms");
    net.peer("alice").confirm_sas(now, "bob", true).expect("responder confirms");
    net.run();
    assert_eq!(net.sas_events("alice", "bob").last(), Some(&SasEvent::Verified));
    assert_eq!(net.sas_events("bob", "alice").last(), Some(&SasEvent::Verified));
}

#[test]
fn saying_no_gives_mismatch_and_never_verified() {
    let mut net = pair();
    let now = net.now;
    net.peer("alice").start_sas(now, "bob").expect("starts");
    net.run();
    net.peer("alice").confirm_sas(now, "bob", true).expect("alice confirms");
    net.peer("bob").confirm_sas(now, "alice", false).expect("bob says no");
    net.run();
    assert_eq!(net.sas_events("bob", "alice").last(), Some(&SasEvent::Mismatch));
    assert!(!net.sas_events("bob", "alice").contains(&SasEvent::Verified));
    assert!(!net.sas_events("alice", "bob").contains(&SasEvent::Verified), "alice never gets bob's MAC");
    assert_eq!(net.sent_of_type("sas-mac").len(), 1, "bob sent no MAC");
    // Bob's side is over: confirming again is refused.
    assert!(matches!(net.peer("bob").confirm_sas(now, "alice", true), Err(E2eeError::Sas { .. })));
}

#[test]
fn a_tampered_sas_key_fails_the_commitment() {
    let mut net = pair();
    let other = vodozemac::sas::Sas::new().public_key().to_base64();
    net.tamper = Some(Box::new(move |w| {
        if w.from == "bob" {
            rewrite(w, "sas-key", "key", serde_json::Value::String(other.clone()));
        }
        true
    }));
    let now = net.now;
    net.peer("alice").start_sas(now, "bob").expect("starts");
    net.run();
    assert_eq!(
        net.sas_events("alice", "bob").last(),
        Some(&SasEvent::Failed(SasFailure::CommitmentMismatch)),
        "{:?}",
        net.sas_events("alice", "bob")
    );
    assert!(!net.sas_events("alice", "bob").iter().any(|e| matches!(e, SasEvent::Code(_))), "no code shown");
    assert!(
        net.sent.iter().any(|w| w.from == "alice" && olm_type(&w.json) == "error"),
        "alice tells bob, as lib-jitsi-meet does"
    );
}

#[test]
fn a_replaced_starter_key_shows_different_codes() {
    // The responder has no commitment to check: a key swapped in transit shows as different codes.
    let mut net = pair();
    let other = vodozemac::sas::Sas::new().public_key().to_base64();
    net.tamper = Some(Box::new(move |w| {
        if w.from == "alice" {
            rewrite(w, "sas-key", "key", serde_json::Value::String(other.clone()));
        }
        true
    }));
    let now = net.now;
    net.peer("alice").start_sas(now, "bob").expect("starts");
    net.run();
    assert_ne!(code_of(&net, "alice", "bob"), code_of(&net, "bob", "alice"));
}

#[test]
fn a_sas_key_that_is_not_a_key_fails() {
    let mut net = pair();
    net.tamper = Some(Box::new(|w| {
        if w.from == "alice" {
            rewrite(w, "sas-key", "key", serde_json::Value::String("AAAA".into()));
        }
        true
    }));
    let now = net.now;
    net.peer("alice").start_sas(now, "bob").expect("starts");
    net.run();
    assert_eq!(net.sas_events("bob", "alice").last(), Some(&SasEvent::Failed(SasFailure::InvalidKey)));
}

fn tampered_mac(field: &'static str, expected: SasFailure) {
    let mut net = pair();
    net.tamper = Some(Box::new(move |w| {
        if w.from == "alice" && olm_type(&w.json) == "sas-mac" {
            let mut v: serde_json::Value = serde_json::from_str(&w.json).expect("JSON");
            let target = if field == "keys" {
                &mut v["olm"]["data"]["keys"]
            } else {
                let mac = v["olm"]["data"]["mac"].as_object_mut().expect("mac object");
                let key = mac.keys().next().expect("one MAC").clone();
                mac.get_mut(&key).expect("the MAC")
            };
            let text = target.as_str().expect("a string").to_owned();
            let rest: String = text.chars().skip(1).collect();
            let flipped = if text.starts_with('A') { format!("B{rest}") } else { format!("A{rest}") };
            *target = serde_json::Value::String(flipped);
            w.json = v.to_string();
        }
        true
    }));
    let now = net.now;
    net.peer("alice").start_sas(now, "bob").expect("starts");
    net.run();
    assert_eq!(code_of(&net, "alice", "bob"), code_of(&net, "bob", "alice"));
    net.peer("bob").confirm_sas(now, "alice", true).expect("bob confirms");
    net.peer("alice").confirm_sas(now, "bob", true).expect("alice confirms");
    net.run();
    assert_eq!(net.sas_events("bob", "alice").last(), Some(&SasEvent::Failed(expected)));
    assert!(!net.sas_events("bob", "alice").contains(&SasEvent::Verified));
    // Alice checked bob's honest MAC and confirmed: she verifies, as lib-jitsi-meet would.
    assert_eq!(net.sas_events("alice", "bob").last(), Some(&SasEvent::Verified));
}

#[test]
fn a_tampered_identity_key_mac_fails() {
    tampered_mac("mac", SasFailure::MacMismatch);
}

#[test]
fn a_tampered_key_list_mac_fails() {
    tampered_mac("keys", SasFailure::KeysMacMismatch);
}

#[test]
fn a_mac_over_another_identity_key_than_presence_fails() {
    // Bob's view of alice's presence has another Ed25519 key (a forged presence):
    // the Olm session works (same Curve25519 key) but alice's MAC does not match.
    let mut net = Net::new();
    let alice = cloakroom_jitsi_e2ee::JitsiE2ee::new("alice");
    let bob = cloakroom_jitsi_e2ee::JitsiE2ee::new("bob");
    let impostor = cloakroom_jitsi_e2ee::JitsiE2ee::new("alice").identity_keys();
    let mut forged = alice.identity_keys();
    forged.ed25519 = impostor.ed25519;
    let (alice_keys, bob_keys) = (alice.identity_keys(), bob.identity_keys());
    net.peers.insert("alice".into(), alice);
    net.peers.insert("bob".into(), bob);
    let now = net.now;
    net.peer("alice").participant_joined(now, "bob", bob_keys);
    net.peer("bob").participant_joined(now, "alice", forged);
    let _ = alice_keys;
    net.run();
    assert!(net.errors.is_empty(), "{:?}", net.errors);
    net.peer("alice").start_sas(now, "bob").expect("starts");
    net.run();
    net.peer("alice").confirm_sas(now, "bob", true).expect("confirms");
    net.peer("bob").confirm_sas(now, "alice", true).expect("confirms");
    net.run();
    assert_eq!(net.sas_events("bob", "alice").last(), Some(&SasEvent::Failed(SasFailure::MacMismatch)));
    assert_eq!(net.sas_events("alice", "bob").last(), Some(&SasEvent::Verified), "bob's own MAC is honest");
}

#[test]
fn sas_calls_out_of_order_are_refused() {
    let mut net = pair();
    let now = net.now;
    assert!(matches!(net.peer("alice").confirm_sas(now, "bob", true), Err(E2eeError::Sas { .. })));
    assert!(matches!(net.peer("alice").start_sas(now, "nobody"), Err(E2eeError::UnknownParticipant { .. })));
    net.peer("alice").start_sas(now, "bob").expect("starts");
    assert!(matches!(net.peer("alice").start_sas(now, "bob"), Err(E2eeError::Sas { .. })), "one at a time");
    assert!(matches!(net.peer("alice").confirm_sas(now, "bob", true), Err(E2eeError::Sas { .. })), "no code yet");
    assert!(net.peer("alice").cancel_sas("bob"));
    assert!(!net.peer("alice").cancel_sas("bob"));
}

#[test]
fn both_starting_at_once_fails_both_and_allows_a_new_start() {
    let mut net = pair();
    let now = net.now;
    net.peer("alice").start_sas(now, "bob").expect("starts");
    net.peer("bob").start_sas(now, "alice").expect("starts");
    net.run();
    assert!(net.sas_events("alice", "bob").contains(&SasEvent::Failed(SasFailure::ConcurrentStart)));
    assert!(net.sas_events("bob", "alice").contains(&SasEvent::Failed(SasFailure::ConcurrentStart)));
    net.errors.clear();
    net.peer("alice").start_sas(now, "bob").expect("starts again");
    net.run();
    assert_eq!(code_of(&net, "alice", "bob"), code_of(&net, "bob", "alice"));
}

#[test]
fn verification_in_progress_fails_when_the_participant_leaves() {
    let mut net = pair();
    let now = net.now;
    net.peer("alice").start_sas(now, "bob").expect("starts");
    net.run();
    net.leave("bob");
    assert_eq!(net.sas_events("alice", "bob").last(), Some(&SasEvent::Failed(SasFailure::ParticipantGone)));
}
