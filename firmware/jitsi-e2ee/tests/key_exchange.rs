//! Olm sessions and media keys between real instances: who initiates, keys
//! delivered both ways, the join ratchet, the leave rotation and timeouts.

mod common;

use cloakroom_frame::{FrameDecryptor, FrameEncryptor, FrameMeta, MediaKind};
use cloakroom_jitsi_e2ee::{E2eeError, JitsiE2ee, REQUEST_TIMEOUT, SESSION_INIT_ATTEMPTS, SessionState};
use common::{Net, Output, olm_type, secs};

#[test]
fn two_participants_end_with_each_others_keys() {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.run();
    assert!(net.errors.is_empty(), "{:?}", net.errors);

    // "a" sorts first, so "a" initiates, as lib-jitsi-meet decides.
    let inits = net.sent_of_type("session-init");
    assert_eq!(inits.len(), 1);
    assert_eq!((inits[0].from.as_str(), inits[0].to.as_str()), ("a", "b"));
    let acks = net.sent_of_type("session-ack");
    assert_eq!((acks[0].from.as_str(), acks[0].to.as_str()), ("b", "a"));
    // The initiator then sends its key, which is acknowledged with the other's key.
    let infos = net.sent_of_type("key-info");
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].from, "a");
    assert_eq!(net.sent_of_type("key-info-ack").len(), 1);

    assert_eq!(net.last_own_key("a").0, 0);
    assert_eq!(net.last_own_key("b").0, 0);
    net.assert_all_keys_known();
    assert!(net.last_own_key("a").1 != net.last_own_key("b").1, "each has its own random key");
    assert_eq!(net.peers["a"].session_state("b"), Some(SessionState::Established));
    assert_eq!(net.peers["b"].session_state("a"), Some(SessionState::Established));
}

#[test]
fn the_other_order_of_ids_makes_the_other_side_initiate() {
    let mut net = Net::new();
    net.join("zed");
    net.join("amy");
    net.run();
    let inits = net.sent_of_type("session-init");
    assert_eq!(inits.len(), 1);
    assert_eq!((inits[0].from.as_str(), inits[0].to.as_str()), ("amy", "zed"));
    net.assert_all_keys_known();
}

#[test]
fn delivered_keys_open_each_others_frames() {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.run();
    let (index, material) = net.last_own_key("a");
    let mut sealer = FrameEncryptor::new(|| 7);
    sealer.set_key(index, material);
    let meta = FrameMeta { ssrc: 1, rtp_timestamp: 2, kind: MediaKind::Opus };
    let frame = sealer.seal(meta, b"hello from a").expect("seals");

    let (index, material) = net.last_participant_key("b", "a").expect("b knows a's key");
    let mut opener = FrameDecryptor::new();
    opener.set_key(index, material);
    assert_eq!(opener.open(MediaKind::Opus, &frame).expect("opens"), b"hello from a");
}

#[test]
fn three_participants_all_pairs_have_sessions_and_keys() {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.join("c");
    net.run();
    assert!(net.errors.is_empty(), "{:?}", net.errors);
    let mut pairs: Vec<(String, String)> =
        net.sent_of_type("session-init").into_iter().map(|w| (w.from, w.to)).collect();
    pairs.sort();
    let expected = [("a", "b"), ("a", "c"), ("b", "c")].map(|(x, y)| (x.to_owned(), y.to_owned()));
    assert_eq!(pairs, expected);
    net.assert_all_keys_known();
}

#[test]
fn a_join_ratchets_the_own_key_after_the_debounce_and_sends_nothing() {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.run();
    let before = net.last_own_key("a");
    let sent_before = net.sent.len();

    net.advance(secs(4));
    assert_eq!(net.own_keys["a"].len(), 1, "no ratchet before 5 s");
    net.advance(secs(1));
    let after = net.last_own_key("a");
    assert_eq!(net.own_keys["a"].len(), 2);
    assert_eq!(after.0, before.0, "a ratchet keeps the index");
    assert!(after.1 == before.1.ratchet(), "the new key is lib-jitsi-meet's ratchet of the old");
    assert_eq!(net.sent.len(), sent_before, "a ratchet sends nothing");

    // b still holds the old key; the frame decryptor ratchets forward to open a's frames.
    let mut sealer = FrameEncryptor::new(|| 1);
    sealer.set_key(after.0, after.1.clone());
    let frame = sealer.seal(FrameMeta { ssrc: 5, rtp_timestamp: 9, kind: MediaKind::Opus }, b"xyz").expect("seals");
    let (index, old) = net.last_participant_key("b", "a").expect("b has a's key");
    assert!(old == before.1);
    let mut opener = FrameDecryptor::new();
    opener.set_key(index, old);
    assert_eq!(opener.open(MediaKind::Opus, &frame).expect("opens after ratcheting"), b"xyz");

    // The next key-info carries the ratcheted key: c joins and gets it.
    net.join("c");
    net.run();
    let (index, known) = net.last_participant_key("c", "a").expect("c has a's key");
    assert_eq!(index, after.0);
    assert!(known == after.1);
}

#[test]
fn repeated_joins_within_the_debounce_ratchet_once() {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.advance(secs(3));
    net.join("c");
    net.advance(secs(3));
    assert_eq!(net.own_keys["a"].len(), 1, "the second join restarted the debounce");
    net.advance(secs(2));
    assert_eq!(net.own_keys["a"].len(), 2, "one ratchet");
    // Presence repeating is not a join.
    let keys = net.peers["b"].identity_keys();
    let now = net.now;
    net.peer("a").participant_joined(now, "b", keys);
    net.advance(secs(6));
    assert_eq!(net.own_keys["a"].len(), 2);
    assert_eq!(net.sent_of_type("session-init").len(), 3, "no new session-init for a repeated presence");
}

#[test]
fn a_leave_rotates_to_a_new_key_sent_only_to_those_remaining() {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.join("c");
    net.run();
    net.advance(secs(6)); // join ratchets done
    let before = net.last_own_key("a");
    let c_knew = net.last_participant_key("c", "a").expect("c knew a's key");
    let sent_before = net.sent.len();

    net.leave("c");
    net.advance(secs(4));
    assert_eq!(net.last_own_key("a").0, before.0, "no rotation before 5 s");

    // At 5 s: a sends key-info to b only, and uses the key once b acknowledged it.
    net.now += secs(1);
    let now = net.now;
    net.peer("a").handle_timeout(now);
    let outputs = net.drain("a");
    let sends: Vec<_> =
        outputs.iter().filter_map(|o| if let Output::Send(w) = o { Some(w.clone()) } else { None }).collect();
    assert_eq!(sends.len(), 1);
    assert_eq!((sends[0].to.as_str(), olm_type(&sends[0].json).as_str()), ("b", "key-info"));
    assert!(!outputs.iter().any(|o| matches!(o, Output::OwnKey(_))), "not used before b acknowledged: {outputs:?}");
    net.advance(secs(0));
    let after = net.last_own_key("a");
    assert_eq!(after.0, before.0 + 1, "the index advances");
    assert!(after.1 != before.1 && after.1 != before.1.ratchet(), "a new random key");

    let (index, b_knows) = net.last_participant_key("b", "a").expect("b has a's key");
    assert_eq!(index, after.0);
    assert!(b_knows == after.1, "b got a's new key");
    assert!(c_knew.1 != after.1, "c's last key of a is not the new one");
    assert!(net.sent[sent_before..].iter().all(|w| w.to != "c"), "nothing went to c after it left");
    // b rotated too, and a has it.
    net.assert_all_keys_known();
    assert!(net.errors.is_empty(), "{:?}", net.errors);
}

#[test]
fn a_rotation_not_acknowledged_is_used_after_the_request_timeout() {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.join("c");
    net.run();
    net.advance(secs(6));
    // b stops answering.
    net.tamper = Some(Box::new(|w| w.to != "b"));
    net.leave("c");
    net.advance(secs(5));
    let index = net.last_own_key("a").0;
    assert_eq!(index, 0, "waiting for b's ack");
    net.advance(REQUEST_TIMEOUT);
    assert_eq!(net.last_own_key("a").0, 1, "used once the request timed out");
    let problems: Vec<_> = std::iter::from_fn(|| net.peer("a").poll_problem()).collect();
    assert!(
        problems.iter().any(|p| matches!(p, E2eeError::KeyInfoTimeout { participant } if participant == "b")),
        "{problems:?}"
    );
}

#[test]
fn an_unanswered_session_init_times_out_is_retried_then_given_up() {
    let t0 = std::time::Instant::now();
    let mut a = JitsiE2ee::new("a");
    let silent = JitsiE2ee::new("z");
    a.participant_joined(t0, "z", silent.identity_keys());
    let inits = |a: &mut JitsiE2ee| {
        std::iter::from_fn(|| a.poll_output())
            .filter(|o| matches!(o, cloakroom_jitsi_e2ee::E2eeOutput::Send { json, .. } if olm_type(json) == "session-init"))
            .count()
    };
    assert_eq!(inits(&mut a), 1);
    assert_eq!(a.session_state("z"), Some(SessionState::SessionInitSent { attempt: 1 }));
    assert_eq!(a.poll_timeout(), Some(t0 + REQUEST_TIMEOUT));
    let mut now = t0;
    for attempt in 2..=SESSION_INIT_ATTEMPTS {
        now += REQUEST_TIMEOUT;
        a.handle_timeout(now);
        assert_eq!(inits(&mut a), 1, "attempt {attempt}");
        assert!(matches!(a.poll_problem(), Some(E2eeError::SessionInitTimeout { attempt: n, .. }) if n == attempt - 1));
    }
    now += REQUEST_TIMEOUT;
    a.handle_timeout(now);
    assert_eq!(inits(&mut a), 0, "given up after {SESSION_INIT_ATTEMPTS} attempts");
    assert_eq!(a.session_state("z"), Some(SessionState::SessionInitFailed));
    assert!(a.poll_timeout().is_none_or(|t| t > now));
    // Its presence again starts over.
    a.participant_joined(now, "z", silent.identity_keys());
    assert_eq!(inits(&mut a), 1);
}

#[test]
fn a_late_session_ack_is_refused_with_an_error_message() {
    let mut net = Net::new();
    net.join("a");
    // Hold b's ack until a's init timed out.
    net.tamper = Some(Box::new(|w| w.to != "a"));
    net.join("b");
    net.run();
    net.tamper = None;
    let ack = net.sent_of_type("session-ack").pop().expect("b acked");
    net.advance(REQUEST_TIMEOUT); // a times out and sends a new init, which b refuses: it has a session
    let now = net.now;
    let err = net.peer("a").handle_message(now, "b", &ack.json).expect_err("late ack");
    assert!(matches!(err, E2eeError::UnexpectedAck { .. }), "{err}");
    let outs = net.drain("a");
    assert!(outs.iter().any(|o| matches!(o, Output::Send(w) if olm_type(&w.json) == "error")), "{outs:?}");
}

#[test]
fn a_participant_turning_e2ee_off_and_on_gets_a_new_session() {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.run();
    // b turns E2EE off and on again: a fresh b (new account) in the same seat.
    let now = net.now;
    net.peer("a").participant_disabled_e2ee(now, "b");
    assert_eq!(net.peers["a"].session_state("b"), Some(SessionState::NoSession));
    let fresh_b = JitsiE2ee::new("b");
    let keys = fresh_b.identity_keys();
    net.peers.insert("b".into(), fresh_b);
    let a_keys = net.peers["a"].identity_keys();
    net.peer("b").participant_joined(now, "a", a_keys);
    net.peer("a").participant_joined(now, "b", keys);
    net.run();
    assert!(net.errors.is_empty(), "{:?}", net.errors);
    net.assert_all_keys_known();
}

#[test]
fn new_identity_keys_in_presence_drop_the_old_session() {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.run();
    let other = JitsiE2ee::new("b");
    let now = net.now;
    net.peer("a").participant_joined(now, "b", other.identity_keys());
    assert!(matches!(net.peer("a").poll_problem(), Some(E2eeError::IdentityKeysChanged { .. })));
    assert_eq!(net.peers["a"].session_state("b"), Some(SessionState::SessionInitSent { attempt: 1 }));
}

#[test]
fn invalid_presence_keys_are_reported_and_nothing_is_sent() {
    let now = std::time::Instant::now();
    let mut a = JitsiE2ee::new("a");
    while a.poll_output().is_some() {}
    let keys = cloakroom_jitsi_e2ee::IdentityKeys { curve25519: "not a key".into(), ed25519: "nor this".into() };
    a.participant_joined(now, "b", keys);
    assert!(matches!(a.poll_problem(), Some(E2eeError::InvalidIdentityKey { which: "Curve25519", .. })));
    assert!(matches!(a.poll_problem(), Some(E2eeError::InvalidIdentityKey { which: "Ed25519", .. })));
    assert_eq!(a.session_state("b"), Some(SessionState::InvalidIdentityKeys));
    assert!(a.poll_output().is_none());
}

#[test]
fn the_first_own_key_is_index_zero_and_identity_keys_look_like_presence() {
    let mut a = JitsiE2ee::new("a");
    assert!(matches!(a.poll_output(), Some(cloakroom_jitsi_e2ee::E2eeOutput::OwnKey { index: 0, .. })));
    assert!(a.poll_output().is_none());
    let keys = a.identity_keys();
    // As in fixtures/presence-with-e2ee-props.xml: 43 characters of unpadded base64.
    for key in [&keys.curve25519, &keys.ed25519] {
        assert_eq!(key.len(), 43);
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/'), "{key}");
    }
    // And the presence fixture's keys are accepted as they are.
    let now = std::time::Instant::now();
    a.participant_joined(
        now,
        "4a8a99a2",
        cloakroom_jitsi_e2ee::IdentityKeys {
            curve25519: "qbrCOpiHgScfzRCrHFrgjft6TtaLYPnLvTNCSGMvlE4".into(),
            ed25519: "QxEGrcku94Svzz9Dyl8xJmCWorX5kmxiQTcm5D3HRMQ".into(),
        },
    );
    assert!(a.poll_problem().is_none());
    assert_eq!(a.session_state("4a8a99a2"), Some(SessionState::AwaitingSessionInit), "\"4a8a99a2\" < \"a\"");
}

#[test]
fn debug_output_shows_no_key_material() {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.run();
    let (index, material) = net.last_participant_key("b", "a").expect("a key");
    let shown = format!(
        "{:?} {:?}",
        cloakroom_jitsi_e2ee::E2eeOutput::ParticipantKey { participant: "a".into(), index, material: material.clone() },
        cloakroom_jitsi_e2ee::E2eeOutput::OwnKey { index, material },
    );
    assert_eq!(shown.matches("KeyMaterial([redacted])").count(), 2, "{shown}");
    let state = format!("{:?}", net.peers["a"]);
    assert!(state.starts_with("JitsiE2ee {") && !state.contains("own_key") && !state.contains("session"), "{state}");
}

#[test]
fn the_state_machine_can_move_between_threads() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<JitsiE2ee>();
    send_and_sync::<cloakroom_jitsi_e2ee::E2eeOutput>();
    send_and_sync::<E2eeError>();
}
