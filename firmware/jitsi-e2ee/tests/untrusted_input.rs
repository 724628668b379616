//! Garbage, truncated, wrong-type, unknown-sender and replayed messages are
//! refused with errors, never a panic, and leave the instance working.

mod common;

use cloakroom_jitsi_e2ee::{E2eeError, JitsiE2ee};
use common::{Net, Wire};

fn pair() -> Net {
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.run();
    assert!(net.errors.is_empty(), "{:?}", net.errors);
    net
}

/// After abuse, a key rotation still reaches b: the instance still works.
fn assert_still_works(net: &mut Net) {
    // Deliver the error answers the abuse caused, then start clean.
    net.run();
    net.errors.clear();
    net.join("c");
    net.run();
    net.leave("c");
    net.advance(common::secs(6));
    net.advance(common::secs(0));
    assert!(net.errors.is_empty(), "{:?}", net.errors);
    net.assert_all_keys_known();
}

#[test]
fn garbage_and_wrong_types_are_errors() {
    let mut net = pair();
    let now = net.now;
    let cases = [
        "",
        "{",
        "null",
        "[]",
        "42",
        "\"olm\"",
        "{}",
        r#"{"type":"olm"}"#,
        r#"{"type":"chat","olm":{"type":"key-info","data":{}}}"#,
        r#"{"type":"olm","olm":null}"#,
        r#"{"type":"olm","olm":{"type":"nonsense","data":{}}}"#,
        r#"{"type":"olm","olm":{"type":"key-info"}}"#,
        r#"{"type":"olm","olm":{"type":"key-info","data":{"ciphertext":{"type":1,"body":5},"uuid":"x"}}}"#,
        r#"{"type":"olm","olm":{"type":"key-info","data":{"ciphertext":{"type":7,"body":"AAAA"},"uuid":"x"}}}"#,
        r#"{"type":"olm","olm":{"type":"key-info","data":{"ciphertext":{"type":1,"body":"!!!"},"uuid":"x"}}}"#,
        r#"{"type":"olm","olm":{"type":"key-info","data":{"ciphertext":{"type":1,"body":"AAAA"},"uuid":""}}}"#,
        r#"{"type":"olm","olm":{"type":"session-init","data":{"idKey":1,"otKey":"x","uuid":"u"}}}"#,
        r#"{"type":"olm","olm":{"type":"session-init","data":{"idKey":"x","otKey":"y","uuid":"u"}}}"#,
        r#"{"type":"olm","olm":{"type":"sas-mac","data":{"keys":"k","mac":{},"transactionId":"t"}}}"#,
        r#"{"type":"olm","olm":{"type":"sas-mac","data":{"keys":"k","mac":[1],"transactionId":"t"}}}"#,
        r#"{"type":"olm","olm":{"type":"sas-key","data":{"key":"k","transactionId":"t"}}}"#,
        r#"{"type":"olm","olm":{"type":"sas-accept","data":{"commitment":"c","transactionId":"t"}}}"#,
        r#"{"type":"olm","olm":{"type":"sas-start","data":{"transactionId":""}}}"#,
        r#"{"type":"olm","olm":{"type":"sas-start","data":{"transactionId":"a\u0000b"}}}"#,
        r#"{"type":"olm","olm":{"type":"error","data":{"error":"something broke"}}}"#,
    ];
    for case in cases {
        let result = net.peer("b").handle_message(now, "a", case);
        assert!(result.is_err(), "accepted {case:?}");
    }
    // An error message from the peer is surfaced with its text.
    let err = net
        .peer("b")
        .handle_message(now, "a", r#"{"type":"olm","olm":{"type":"error","data":{"error":"something broke"}}}"#)
        .expect_err("peer error");
    assert_eq!(err, E2eeError::PeerError { participant: "a".into(), message: "something broke".into() });
    // An oversized message is refused before parsing.
    let huge = format!(r#"{{"type":"olm","olm":{{"type":"error","data":{{"error":"{}"}}}}}}"#, "x".repeat(20_000));
    assert!(matches!(net.peer("b").handle_message(now, "a", &huge), Err(E2eeError::Malformed { .. })));
    net.drain_all();
    assert_still_works(&mut net);
}

#[test]
fn every_truncation_of_every_real_message_is_an_error() {
    let mut net = pair();
    let now = net.now;
    net.peer("a").start_sas(now, "b").expect("starts");
    net.run();
    let messages: Vec<Wire> = net.sent.clone();
    assert!(messages.len() >= 8);
    for wire in &messages {
        for cut in 0..wire.json.len() {
            if !wire.json.is_char_boundary(cut) {
                continue;
            }
            let result = net.peer(&wire.to).handle_message(now, &wire.from, &wire.json[..cut]);
            assert!(result.is_err(), "accepted {:?}", &wire.json[..cut]);
        }
    }
    net.drain_all();
    net.peer("a").cancel_sas("b");
    net.peer("b").cancel_sas("a");
    assert_still_works(&mut net);
}

#[test]
fn messages_from_unknown_senders_are_errors_and_unanswered() {
    let mut net = pair();
    let now = net.now;
    let init = net.sent_of_type("session-init").pop().expect("init");
    let before = net.sent.len();
    let err = net.peer("b").handle_message(now, "mallory", &init.json).expect_err("unknown sender");
    assert!(matches!(err, E2eeError::UnknownParticipant { .. }), "{err}");
    let err = net.peer("b").handle_message(now, "b", &init.json).expect_err("ourselves");
    assert!(matches!(err, E2eeError::UnknownParticipant { .. }), "{err}");
    net.drain_all();
    assert_eq!(net.sent.len(), before, "no answer to strangers");
}

#[test]
fn replayed_messages_are_errors() {
    let mut net = pair();
    let now = net.now;
    net.peer("a").start_sas(now, "b").expect("starts");
    net.run();
    net.peer("a").confirm_sas(now, "b", true).expect("confirms");
    net.peer("b").confirm_sas(now, "a", true).expect("confirms");
    net.run();
    assert!(net.errors.is_empty(), "{:?}", net.errors);
    let keys_before = net.participant_keys.clone().into_iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>();
    for wire in net.sent.clone() {
        let kind = common::olm_type(&wire.json);
        let result = net.peer(&wire.to).handle_message(now, &wire.from, &wire.json);
        let err = result.expect_err(&format!("replayed {kind} accepted"));
        match kind.as_str() {
            "session-init" | "session-ack" => {
                assert!(matches!(err, E2eeError::SessionExists { .. }), "{kind}: {err}")
            }
            "key-info" | "key-info-ack" => assert!(matches!(err, E2eeError::Olm { .. }), "{kind}: {err}"),
            _ => assert!(matches!(err, E2eeError::Sas { .. }), "{kind}: {err}"),
        }
    }
    net.drain_all();
    let keys_after = net.participant_keys.clone().into_iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>();
    assert_eq!(keys_before, keys_after, "replays delivered no key");
    assert_still_works(&mut net);
}

#[test]
fn a_message_meant_for_another_pair_is_an_error() {
    // c replays what a sent to b as if a had sent it to c: Olm cannot open it.
    let mut net = Net::new();
    net.join("a");
    net.join("b");
    net.join("c");
    net.run();
    let now = net.now;
    let info = net
        .sent
        .iter()
        .find(|w| w.from == "a" && w.to == "b" && common::olm_type(&w.json) == "key-info")
        .cloned()
        .expect("a key-info");
    let err = net.peer("c").handle_message(now, "a", &info.json).expect_err("not for c");
    assert!(matches!(err, E2eeError::Olm { .. }), "{err}");
}

/// xorshift64*: a fixed sequence, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn arbitrary_bytes_and_mutated_messages_never_panic() {
    let mut net = pair();
    let now = net.now;
    net.peer("a").start_sas(now, "b").expect("starts");
    net.run();
    let real: Vec<Wire> = net.sent.clone();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let tokens = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\"type\"",
        "\"olm\"",
        "\"data\"",
        "\"uuid\"",
        "\"ciphertext\"",
        "\"body\"",
        "\"mac\"",
        "\"keys\"",
        "\"key-info\"",
        "\"sas-mac\"",
        "\"session-ack\"",
        "0",
        "1",
        "-1",
        "1e309",
        "true",
        "null",
        "\"AAAA\"",
        "\\u0000",
        "\\ud800",
    ];
    let mut inputs = 0;
    for round in 0..6000 {
        let text = match round % 3 {
            // Random bytes, made text.
            0 => {
                let len = rng.below(300);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            // Random JSON-ish token soup.
            1 => (0..rng.below(40)).map(|_| tokens[rng.below(tokens.len())]).collect(),
            // A real message with a few bytes changed, cut or duplicated.
            _ => {
                let wire = &real[rng.below(real.len())];
                let mut bytes = wire.json.clone().into_bytes();
                for _ in 0..1 + rng.below(4) {
                    if bytes.is_empty() {
                        break;
                    }
                    let at = rng.below(bytes.len());
                    match rng.below(3) {
                        0 => bytes[at] = rng.next() as u8,
                        1 => {
                            bytes.truncate(at);
                        }
                        _ => {
                            let b = bytes[at];
                            bytes.insert(at, b);
                        }
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        let (to, from) = if rng.below(2) == 0 { ("a", "b") } else { ("b", "a") };
        let _ = net.peer(to).handle_message(now, from, &text);
        inputs += 1;
        while net.peer(to).poll_output().is_some() {}
    }
    assert_eq!(inputs, 6000);
    net.peer("a").cancel_sas("b");
    net.peer("b").cancel_sas("a");
    // Mutations may have cost the session a message key, never the instance itself.
    let mut fresh = JitsiE2ee::new("z");
    let _ = fresh.handle_message(now, "a", "{}");
    assert_still_works(&mut net);
}
