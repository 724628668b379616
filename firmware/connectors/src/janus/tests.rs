//! The session against a scripted Janus, in virtual time: every message the
//! session sends is parsed and checked, every reply is what Janus 1.1.2 sends
//! (shapes taken from its logs), and time only moves when a test says so.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::session::*;
use crate::ConnectorError;
use crate::signalling::{
    Candidate, ConnectorState, Direction, Event, Failure, Input, Output, ParticipantId, PeerId, Transmit,
};

const SESSION: u64 = 9001;
const PUB_HANDLE: u64 = 111;
const FEED: u64 = 5555;
const PRIVATE_ID: u64 = 777;

struct Harness {
    s: JanusSession,
    now: Instant,
    sent: Vec<Value>,
    events: Vec<Event>,
    connects: usize,
    closes: usize,
    timeout: Instant,
}

impl Harness {
    fn new(subscribe: bool) -> Self {
        let now = Instant::now();
        let settings =
            JanusSettings { room: Room::Number(1234), display: "Board room".into(), publish: true, subscribe };
        let mut h = Self {
            s: JanusSession::new(now, settings),
            now,
            sent: vec![],
            events: vec![],
            connects: 0,
            closes: 0,
            timeout: now,
        };
        h.drain();
        h
    }

    fn drain(&mut self) {
        loop {
            match self.s.poll_output() {
                Output::Transmit(Transmit::Connect) => self.connects += 1,
                Output::Transmit(Transmit::Close) => self.closes += 1,
                Output::Transmit(Transmit::Send(text)) => self.sent.push(serde_json::from_str(&text).expect("json")),
                Output::Event(e) => self.events.push(e),
                Output::Timeout(at) => {
                    self.timeout = at;
                    return;
                }
            }
        }
    }

    fn input(&mut self, input: Input) {
        self.s.handle_input(self.now, input).expect("input accepted");
        self.drain();
    }

    fn reply(&mut self, msg: Value) {
        self.input(Input::TransportReceived(msg.to_string()));
    }

    /// Moves virtual time forward, ticking at every timeout on the way.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while self.timeout <= end {
            self.now = self.timeout.max(self.now);
            self.input(Input::Tick);
        }
        self.now = end;
    }

    fn last_sent(&self) -> &Value {
        self.sent.last().expect("something sent")
    }

    fn take_sent(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.sent)
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Runs create → attach → join; `publishers` are present in the room.
    fn join(&mut self, publishers: Value) {
        assert_eq!(self.connects, 1);
        self.input(Input::TransportConnected);
        let create = self.last_sent().clone();
        assert_eq!(create["janus"], "create");
        self.reply(json!({"janus": "success", "transaction": create["transaction"], "data": {"id": SESSION}}));
        let attach = self.last_sent().clone();
        assert_eq!(attach["janus"], "attach");
        assert_eq!(attach["plugin"], "janus.plugin.videoroom");
        assert_eq!(attach["session_id"], SESSION);
        self.reply(json!({"janus": "success", "session_id": SESSION, "transaction": attach["transaction"], "data": {"id": PUB_HANDLE}}));
        let join = self.last_sent().clone();
        assert_eq!(join["janus"], "message");
        assert_eq!(join["handle_id"], PUB_HANDLE);
        assert_eq!(
            join["body"],
            json!({"request": "join", "ptype": "publisher", "room": 1234, "display": "Board room"})
        );
        self.reply(json!({"janus": "ack", "session_id": SESSION, "transaction": join["transaction"]}));
        assert_eq!(self.s.state(), &ConnectorState::Joining, "an ack is not the reply");
        self.reply(json!({
            "janus": "event", "session_id": SESSION, "sender": PUB_HANDLE, "transaction": join["transaction"],
            "plugindata": {"plugin": "janus.plugin.videoroom", "data": {
                "videoroom": "joined", "room": 1234, "id": FEED, "private_id": PRIVATE_ID, "publishers": publishers,
            }},
        }));
        assert_eq!(self.s.state(), &ConnectorState::InMeeting);
        assert_eq!(self.s.feed(), Some(FEED));
    }

    /// Completes a subscription to `feed` whose attach request is `attach`.
    fn complete_subscription(&mut self, attach: &Value, feed: u64, handle: u64) {
        assert_eq!(attach["janus"], "attach");
        self.reply(json!({"janus": "success", "session_id": SESSION, "transaction": attach["transaction"], "data": {"id": handle}}));
        let join = self.last_sent().clone();
        assert_eq!(join["handle_id"], handle);
        assert_eq!(
            join["body"],
            json!({"request": "join", "ptype": "subscriber", "room": 1234, "streams": [{"feed": feed}], "private_id": PRIVATE_ID})
        );
        self.reply(json!({"janus": "ack", "session_id": SESSION, "transaction": join["transaction"]}));
        self.reply(json!({
            "janus": "event", "session_id": SESSION, "sender": handle, "transaction": join["transaction"],
            "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "attached", "room": 1234}},
            "jsep": {"type": "offer", "sdp": format!("v=0 offer for {feed}")},
        }));
    }
}

fn publisher() -> PeerId {
    PeerId(PUBLISHER.into())
}

fn who(feed: u64) -> ParticipantId {
    ParticipantId(feed.to_string())
}

fn open_feed(feed: u64) -> Event {
    Event::OpenPeer {
        peer: feed_peer(feed),
        direction: Direction::Receive,
        participant: Some(who(feed)),
        remote_offer: Some(format!("v=0 offer for {feed}")),
    }
}

fn gone(feed: u64) -> Vec<Event> {
    vec![Event::ClosePeer { peer: feed_peer(feed) }, Event::ParticipantLeft { participant: who(feed) }]
}

fn failed(s: &JanusSession) -> &Failure {
    match s.state() {
        ConnectorState::Failed(f) => f,
        other => panic!("not failed: {other:?}"),
    }
}

#[test]
fn joins_publishes_with_e2ee_and_subscribes_to_present_publishers() {
    let mut h = Harness::new(true);
    h.join(json!([{"id": 42, "display": "Alice"}]));
    let events = h.take_events();
    let open_publisher =
        Event::OpenPeer { peer: publisher(), direction: Direction::Send, participant: None, remote_offer: None };
    assert_eq!(
        events[events.len() - 3..],
        [
            Event::State(ConnectorState::InMeeting),
            open_publisher,
            Event::ParticipantJoined { participant: who(42), display: "Alice".into() },
        ],
        "{events:?}"
    );

    // Subscriber for Alice: its own handle.
    let attach = h.last_sent().clone();
    h.complete_subscription(&attach, 42, 222);
    assert_eq!(h.take_events(), vec![open_feed(42)]);
    h.input(Input::LocalDescription { peer: feed_peer(42), sdp: "v=0 answer".into() });
    let start = h.last_sent().clone();
    assert_eq!(start["handle_id"], 222);
    assert_eq!(start["body"], json!({"request": "start", "room": 1234}));
    assert_eq!(start["jsep"], json!({"type": "answer", "sdp": "v=0 answer"}));

    // Publish, flagged e2ee, on the publisher handle.
    h.input(Input::LocalDescription { peer: publisher(), sdp: "v=0 our offer".into() });
    let publish = h.last_sent().clone();
    assert_eq!(publish["handle_id"], PUB_HANDLE);
    assert_eq!(
        publish["body"],
        json!({"request": "publish", "audio": true, "video": true, "display": "Board room", "e2ee": true})
    );
    // Janus 1.1.2 reads the flag from the jsep; a `require_e2ee` room refuses the publisher without it.
    assert_eq!(publish["jsep"], json!({"type": "offer", "sdp": "v=0 our offer", "e2ee": true}));
    h.reply(json!({"janus": "ack", "session_id": SESSION, "transaction": publish["transaction"]}));
    h.reply(json!({
        "janus": "event", "session_id": SESSION, "sender": PUB_HANDLE, "transaction": publish["transaction"],
        "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "event", "configured": "ok", "video_codec": "vp8"}},
        "jsep": {"type": "answer", "sdp": "v=0 janus answer"},
    }));
    assert_eq!(h.take_events(), vec![Event::RemoteDescription { peer: publisher(), sdp: "v=0 janus answer".into() }]);

    // Janus's own notifications about media are not the engine's business.
    h.reply(json!({"janus": "webrtcup", "session_id": SESSION, "sender": PUB_HANDLE}));
    h.reply(json!({"janus": "media", "session_id": SESSION, "sender": 222, "type": "video", "receiving": true}));
    h.reply(json!({"janus": "slowlink", "session_id": SESSION, "sender": PUB_HANDLE, "uplink": true, "lost": 12}));
    assert!(h.take_events().is_empty());
    assert_eq!(h.s.subscribed_feeds(), vec![42]);
}

#[test]
fn subscribes_to_arriving_publishers_and_drops_leaving_ones() {
    let mut h = Harness::new(true);
    h.join(json!([]));
    assert!(h.take_sent().iter().all(|m| m["janus"] != "attach" || m["transaction"] == "c2"));
    h.take_events();

    // Two publishers arrive; one of them is us (Janus never lists us, but be safe).
    h.reply(json!({
        "janus": "event", "session_id": SESSION, "sender": PUB_HANDLE,
        "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "event", "room": 1234,
            "publishers": [{"id": 43, "display": "Bob"}, {"id": FEED, "display": "Board room"}]}},
    }));
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1, "one subscription, not one for ourselves: {sent:?}");
    assert_eq!(h.take_events(), vec![Event::ParticipantJoined { participant: who(43), display: "Bob".into() }]);
    h.complete_subscription(&sent[0], 43, 333);
    // The same publisher listed again does not subscribe twice.
    h.reply(json!({
        "janus": "event", "session_id": SESSION, "sender": PUB_HANDLE,
        "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "event", "publishers": [{"id": 43}]}},
    }));
    assert!(h.take_sent().iter().all(|m| m["janus"] != "attach"));
    assert_eq!(h.take_events(), vec![open_feed(43)]);

    // Bob unpublishes: his peer closes, he has left, his handle is detached.
    h.reply(json!({
        "janus": "event", "session_id": SESSION, "sender": PUB_HANDLE,
        "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "event", "room": 1234, "unpublished": 43}},
    }));
    assert_eq!(h.take_events(), gone(43));
    let detach = h.take_sent();
    assert_eq!(detach.len(), 1);
    assert_eq!(detach[0]["janus"], "detach");
    assert_eq!(detach[0]["handle_id"], 333);
    assert!(h.s.subscribed_feeds().is_empty());

    // "leaving": "ok" is our own leave acknowledged, not a feed.
    h.reply(json!({
        "janus": "event", "session_id": SESSION, "sender": PUB_HANDLE,
        "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "event", "leaving": "ok"}},
    }));
    assert!(h.take_events().is_empty());
}

#[test]
fn without_subscribe_no_subscriber_handles() {
    let mut h = Harness::new(false);
    h.join(json!([{"id": 42}]));
    assert!(h.take_sent().iter().filter(|m| m["janus"] == "attach").count() == 1);
    assert!(!h.take_events().iter().any(|e| matches!(e, Event::ParticipantJoined { .. })));
}

#[test]
fn keepalive_every_25_seconds_in_virtual_time() {
    let mut h = Harness::new(true);
    h.join(json!([]));
    h.take_sent();
    h.advance(Duration::from_secs(24));
    assert!(h.take_sent().is_empty());
    h.advance(Duration::from_secs(2));
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["janus"], "keepalive");
    assert_eq!(sent[0]["session_id"], SESSION);
    // Janus acks keepalives; unanswered keepalives do not fail the session.
    h.advance(Duration::from_secs(100));
    assert_eq!(h.take_sent().iter().filter(|m| m["janus"] == "keepalive").count(), 4);
    assert_eq!(h.s.state(), &ConnectorState::InMeeting);
}

#[test]
fn no_such_room_fails_for_good_and_says_which_room() {
    let mut h = Harness::new(true);
    h.input(Input::TransportConnected);
    let create = h.last_sent().clone();
    h.reply(json!({"janus": "success", "transaction": create["transaction"], "data": {"id": SESSION}}));
    let attach = h.last_sent().clone();
    h.reply(json!({"janus": "success", "transaction": attach["transaction"], "data": {"id": PUB_HANDLE}}));
    let join = h.last_sent().clone();
    h.reply(json!({
        "janus": "event", "sender": PUB_HANDLE, "transaction": join["transaction"],
        "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "event", "error_code": 426, "error": "No such room (1234)"}},
    }));
    assert_eq!(failed(&h.s), &Failure { error: ConnectorError::NoSuchRoom { room: "1234".into() }, retryable: false });
    assert_eq!(h.closes, 1);
    // A failed session does nothing more by itself: retrying is the supervisor's.
    h.advance(Duration::from_secs(120));
    assert_eq!(h.connects, 1);
}

#[test]
fn unanswered_request_times_out_as_a_retryable_failure() {
    let mut h = Harness::new(true);
    h.input(Input::TransportConnected);
    h.advance(REQUEST_TIMEOUT - Duration::from_millis(1));
    assert_eq!(h.s.state(), &ConnectorState::Joining);
    h.advance(Duration::from_millis(1));
    let f = failed(&h.s);
    assert!(matches!(f.error, ConnectorError::Timeout { .. }) && f.retryable, "{f:?}");
    assert_eq!((h.connects, h.closes), (1, 1));
}

#[test]
fn server_gone_closes_every_peer_and_fails_retryably() {
    let mut h = Harness::new(true);
    h.join(json!([{"id": 42, "display": "Alice"}]));
    let attach = h.last_sent().clone();
    h.complete_subscription(&attach, 42, 222);
    h.take_events();
    h.input(Input::TransportClosed { reason: "connection reset".into() });
    let events = h.take_events();
    let mut expected = gone(42);
    expected.push(Event::ClosePeer { peer: publisher() });
    assert_eq!(events[..3], expected[..], "{events:?}");
    let f = failed(&h.s);
    assert_eq!(f.error, ConnectorError::ServerGone { reason: "connection reset".into() });
    assert!(f.retryable);
    // Closing the transport again (the driver noticing) changes nothing.
    h.input(Input::TransportClosed { reason: "closed".into() });
    assert!(h.take_events().is_empty());
}

#[test]
fn janus_session_timeout_event_is_server_gone() {
    let mut h = Harness::new(true);
    h.join(json!([]));
    h.reply(json!({"janus": "timeout", "session_id": SESSION}));
    assert!(matches!(failed(&h.s).error, ConnectorError::ServerGone { .. }));
}

#[test]
fn leaves_cleanly_hangup_detach_destroy() {
    let mut h = Harness::new(true);
    h.join(json!([{"id": 42}]));
    let attach = h.last_sent().clone();
    h.complete_subscription(&attach, 42, 222);
    h.take_sent();
    h.input(Input::Leave);
    assert_eq!(h.s.state(), &ConnectorState::Leaving);
    let sent = h.take_sent();
    let kinds: Vec<(String, Value)> =
        sent.iter().map(|m| (m["janus"].as_str().unwrap_or("").to_owned(), m["handle_id"].clone())).collect();
    assert_eq!(
        kinds,
        vec![
            ("hangup".into(), json!(222)),
            ("detach".into(), json!(222)),
            ("hangup".into(), json!(PUB_HANDLE)),
            ("detach".into(), json!(PUB_HANDLE)),
            ("destroy".into(), Value::Null),
        ]
    );
    assert!(sent.iter().all(|m| m["session_id"] == SESSION));
    for m in &sent {
        assert_eq!(h.closes, 0, "not closed before every reply");
        h.reply(json!({"janus": "success", "session_id": SESSION, "transaction": m["transaction"]}));
    }
    assert_eq!(h.closes, 1);
    assert_eq!(h.s.state(), &ConnectorState::Left);
}

#[test]
fn janus_hanging_up_the_publisher_while_we_leave_is_no_failure() {
    // Seen in the appliance e2e test: the hangup event of our own leave came
    // before the replies, and the meeting ended as "lost" instead of "left".
    let mut h = Harness::new(true);
    h.join(json!([]));
    h.take_sent();
    h.input(Input::Leave);
    let sent = h.take_sent();
    h.reply(json!({"janus": "hangup", "session_id": SESSION, "sender": PUB_HANDLE, "reason": "Close PC"}));
    assert_eq!(h.s.state(), &ConnectorState::Leaving);
    for m in &sent {
        h.reply(json!({"janus": "success", "session_id": SESSION, "transaction": m["transaction"]}));
    }
    assert_eq!(h.s.state(), &ConnectorState::Left);
}

#[test]
fn leave_gives_up_waiting_after_the_leave_timeout() {
    let mut h = Harness::new(true);
    h.join(json!([]));
    h.input(Input::Leave);
    h.advance(LEAVE_TIMEOUT - Duration::from_millis(1));
    assert_eq!(h.s.state(), &ConnectorState::Leaving);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.s.state(), &ConnectorState::Left);
    assert_eq!(h.closes, 1);
}

#[test]
fn leave_before_connecting_closes_at_once() {
    let mut h = Harness::new(true);
    h.input(Input::Leave);
    assert_eq!(h.s.state(), &ConnectorState::Left);
    assert!(h.sent.is_empty());
}

#[test]
fn trickle_both_ways() {
    let mut h = Harness::new(true);
    h.join(json!([]));
    h.take_sent();
    h.take_events();
    let c = Candidate {
        candidate: "candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    };
    h.input(Input::LocalCandidate { peer: publisher(), candidate: Some(c.clone()) });
    h.input(Input::LocalCandidate { peer: publisher(), candidate: None });
    let sent = h.take_sent();
    assert_eq!(sent[0]["janus"], "trickle");
    assert_eq!(sent[0]["handle_id"], PUB_HANDLE);
    assert_eq!(sent[0]["candidate"], json!({"candidate": c.candidate, "sdpMid": "0", "sdpMLineIndex": 0}));
    assert_eq!(sent[1]["candidate"], json!({"completed": true}));
    h.reply(json!({"janus": "trickle", "session_id": SESSION, "sender": PUB_HANDLE,
        "candidate": {"candidate": c.candidate, "sdpMid": "0", "sdpMLineIndex": 0}}));
    h.reply(json!({"janus": "trickle", "session_id": SESSION, "sender": PUB_HANDLE, "candidate": {"completed": true}}));
    assert_eq!(
        h.take_events(),
        vec![
            Event::RemoteCandidate { peer: publisher(), candidate: Some(c) },
            Event::RemoteCandidate { peer: publisher(), candidate: None },
        ]
    );
}

#[test]
fn garbage_from_the_server_is_an_error_not_a_panic() {
    let mut h = Harness::new(true);
    h.join(json!([{"id": 42}]));
    let before = h.s.state().clone();
    for text in ["", "{", "[]", "null", "{\"janus\": 5}", "\u{0}", "{\"transaction\":\"c1\"}"] {
        assert!(matches!(
            h.s.handle_input(h.now, Input::TransportReceived(text.into())),
            Err(ConnectorError::Protocol { .. })
        ));
    }
    // Well-formed but nonsensical: unknown senders, wrong types, replies to nothing.
    for msg in [
        json!({"janus": "event", "sender": 99999, "plugindata": {"data": {"publishers": "x"}}}),
        json!({"janus": "event", "sender": PUB_HANDLE, "plugindata": {"data": {"publishers": [{"id": "x"}, 5, null]}}}),
        json!({"janus": "success", "transaction": "nope"}),
        json!({"janus": "event", "sender": PUB_HANDLE, "plugindata": {"data": {"unpublished": -1}}}),
        json!({"janus": "hangup", "sender": 222}),
        json!({"janus": "trickle", "sender": PUB_HANDLE, "candidate": 7}),
    ] {
        h.reply(msg);
    }
    assert_eq!(h.s.state(), &before);
    // Peers the session never named are ignored.
    h.input(Input::LocalDescription { peer: PeerId("feed-x".into()), sdp: "v=0".into() });
    h.input(Input::PeerFailed { peer: PeerId("nobody".into()), reason: "?".into() });
    assert_eq!(h.s.state(), &before);
}

#[test]
fn a_publisher_that_cannot_be_built_fails_the_meeting_retryably() {
    let mut h = Harness::new(true);
    // Before joining there is nothing to fail.
    h.input(Input::PeerFailed { peer: publisher(), reason: "early".into() });
    assert_eq!(h.s.state(), &ConnectorState::Connecting);
    h.join(json!([]));
    h.take_events();
    h.input(Input::PeerFailed { peer: publisher(), reason: "build peer connection: no usable interface".into() });
    assert_eq!(h.take_events()[0], Event::ClosePeer { peer: publisher() });
    let f = failed(&h.s);
    assert_eq!(
        f.error,
        ConnectorError::MediaFailed { reason: "publisher: build peer connection: no usable interface".into() }
    );
    assert!(f.retryable);
    assert_eq!(h.closes, 1);
}

#[test]
fn janus_hanging_up_the_publisher_fails_the_meeting() {
    let mut h = Harness::new(true);
    h.join(json!([]));
    h.reply(json!({"janus": "hangup", "session_id": SESSION, "sender": PUB_HANDLE, "reason": "DTLS alert"}));
    assert_eq!(
        failed(&h.s).error,
        ConnectorError::MediaFailed { reason: "janus hung up the publisher: DTLS alert".into() }
    );
}

#[test]
fn a_failed_receive_peer_is_replaced_without_the_participant_leaving() {
    let mut h = Harness::new(true);
    h.join(json!([{"id": 42, "display": "Alice"}]));
    let attach = h.last_sent().clone();
    h.complete_subscription(&attach, 42, 222);
    h.take_sent();
    h.take_events();
    h.input(Input::PeerFailed { peer: feed_peer(42), reason: "ICE failed".into() });
    let sent = h.take_sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!((sent[0]["janus"].as_str(), &sent[0]["handle_id"]), (Some("detach"), &json!(222)));
    assert_eq!(sent[1]["janus"], "attach");
    assert_eq!(h.take_events(), vec![Event::ClosePeer { peer: feed_peer(42) }]);
    h.complete_subscription(&sent[1], 42, 223);
    assert_eq!(h.take_events(), vec![open_feed(42)]);
    assert_eq!(h.s.state(), &ConnectorState::InMeeting);
    // Unknown feeds are ignored.
    h.take_sent();
    h.input(Input::PeerFailed { peer: feed_peer(7), reason: "?".into() });
    assert!(h.take_sent().is_empty());
}

#[test]
fn a_display_name_cannot_forge_log_lines_or_hide_text() {
    // Security review finding 12: a newline and ANSI escapes in a remote name forged a log line.
    let mut h = Harness::new(true);
    h.join(json!([{"id": 42, "display": "Mallory\n2026-12-01T00:00:00Z  INFO paired\u{1b}[2J\u{202e}"}]));
    let shown = h
        .take_events()
        .into_iter()
        .find_map(|e| match e {
            Event::ParticipantJoined { display, .. } => Some(display),
            _ => None,
        })
        .expect("the participant is reported");
    assert!(shown.starts_with("Mallory\u{FFFD}2026"), "{shown:?}");
    assert!(!shown.chars().any(|c| c.is_control() || c == '\u{202e}'), "{shown:?}");
}
