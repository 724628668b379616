//! The session against a scripted Janus, in virtual time: every message the
//! session sends is parsed and checked, every reply is what Janus 1.1.2 sends
//! (shapes taken from its logs), and time only moves when a test says so.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::messages::Candidate;
use super::session::*;
use crate::ConnectorError;

const SESSION: u64 = 9001;
const PUB_HANDLE: u64 = 111;
const FEED: u64 = 5555;
const PRIVATE_ID: u64 = 777;

struct Harness {
    s: JanusSession,
    now: Instant,
    sent: Vec<Value>,
    events: Vec<SessionEvent>,
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
        self.input(Input::Message(msg.to_string()));
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

    fn take_events(&mut self) -> Vec<SessionEvent> {
        std::mem::take(&mut self.events)
    }

    /// Runs create → attach → join; `publishers` are present in the room.
    fn join(&mut self, publishers: Value) {
        assert_eq!(self.connects, 1);
        self.input(Input::Connected);
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
        assert_eq!(self.s.state(), &SessionState::Joining, "an ack is not the reply");
        self.reply(json!({
            "janus": "event", "session_id": SESSION, "sender": PUB_HANDLE, "transaction": join["transaction"],
            "plugindata": {"plugin": "janus.plugin.videoroom", "data": {
                "videoroom": "joined", "room": 1234, "id": FEED, "private_id": PRIVATE_ID, "publishers": publishers,
            }},
        }));
        assert_eq!(self.s.state(), &SessionState::InRoom { feed: FEED });
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

#[test]
fn joins_publishes_with_e2ee_and_subscribes_to_present_publishers() {
    let mut h = Harness::new(true);
    h.join(json!([{"id": 42, "display": "Alice"}]));
    let events = h.take_events();
    assert!(events.contains(&SessionEvent::Joined { feed: FEED, publishers: 1 }), "{events:?}");

    // Subscriber for Alice: its own handle.
    let attach = h.last_sent().clone();
    h.complete_subscription(&attach, 42, 222);
    let events = h.take_events();
    assert_eq!(
        events,
        vec![SessionEvent::SubscriberOffer { feed: 42, display: Some("Alice".into()), sdp: "v=0 offer for 42".into() }]
    );
    h.input(Input::SubscriberAnswer { feed: 42, sdp: "v=0 answer".into() });
    let start = h.last_sent().clone();
    assert_eq!(start["handle_id"], 222);
    assert_eq!(start["body"], json!({"request": "start", "room": 1234}));
    assert_eq!(start["jsep"], json!({"type": "answer", "sdp": "v=0 answer"}));

    // Publish, flagged e2ee, on the publisher handle.
    h.input(Input::PublisherOffer { sdp: "v=0 our offer".into() });
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
    assert_eq!(h.take_events(), vec![SessionEvent::PublisherAnswer { sdp: "v=0 janus answer".into() }]);

    // Janus's own notifications route to the right target.
    h.reply(json!({"janus": "webrtcup", "session_id": SESSION, "sender": PUB_HANDLE}));
    h.reply(json!({"janus": "media", "session_id": SESSION, "sender": 222, "type": "video", "receiving": true}));
    h.reply(json!({"janus": "slowlink", "session_id": SESSION, "sender": PUB_HANDLE, "uplink": true, "lost": 12}));
    assert_eq!(
        h.take_events(),
        vec![
            SessionEvent::WebRtcUp { target: Target::Publisher },
            SessionEvent::Media { target: Target::Subscriber { feed: 42 }, kind: "video".into(), receiving: true },
            SessionEvent::SlowLink { target: Target::Publisher, uplink: true, lost: 12 },
        ]
    );
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
    h.complete_subscription(&sent[0], 43, 333);
    // The same publisher listed again does not subscribe twice.
    h.reply(json!({
        "janus": "event", "session_id": SESSION, "sender": PUB_HANDLE,
        "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "event", "publishers": [{"id": 43}]}},
    }));
    assert!(h.take_sent().iter().all(|m| m["janus"] != "attach"));
    h.take_events();

    // Bob unpublishes: FeedGone, and his handle is detached.
    h.reply(json!({
        "janus": "event", "session_id": SESSION, "sender": PUB_HANDLE,
        "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "event", "room": 1234, "unpublished": 43}},
    }));
    assert_eq!(h.take_events(), vec![SessionEvent::FeedGone { feed: 43 }]);
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
    assert_eq!(h.s.state(), &SessionState::InRoom { feed: FEED });
}

#[test]
fn no_such_room_backs_off_then_fails() {
    let mut h = Harness::new(true);
    let mut retries = vec![];
    for attempt in 1..=NO_SUCH_ROOM_ATTEMPTS {
        h.input(Input::Connected);
        let create = h.last_sent().clone();
        h.reply(json!({"janus": "success", "transaction": create["transaction"], "data": {"id": SESSION}}));
        let attach = h.last_sent().clone();
        h.reply(json!({"janus": "success", "transaction": attach["transaction"], "data": {"id": PUB_HANDLE}}));
        let join = h.last_sent().clone();
        h.reply(json!({
            "janus": "event", "sender": PUB_HANDLE, "transaction": join["transaction"],
            "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "event", "error_code": 426, "error": "No such room (1234)"}},
        }));
        let error = ConnectorError::NoSuchRoom { room: "1234".into() };
        match h.s.state().clone() {
            SessionState::Backoff { error: e, attempt: a, retry_at } => {
                assert_eq!((e, a), (error, attempt));
                retries.push(retry_at - h.now);
                let connects = h.connects;
                h.advance(retry_at - h.now - Duration::from_millis(1));
                assert_eq!(h.connects, connects, "no reconnect before the back-off ends");
                h.advance(Duration::from_millis(1));
                assert_eq!(h.connects, connects + 1);
            }
            SessionState::Failed { error: e } => {
                assert_eq!(attempt, NO_SUCH_ROOM_ATTEMPTS);
                assert_eq!(e, error);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(h.closes, attempt as usize);
    }
    assert_eq!(retries, vec![Duration::from_secs(1), Duration::from_secs(2)]);
    assert!(matches!(h.s.state(), SessionState::Failed { .. }));
}

#[test]
fn unanswered_request_times_out_and_reconnects() {
    let mut h = Harness::new(true);
    h.input(Input::Connected);
    h.advance(REQUEST_TIMEOUT - Duration::from_millis(1));
    assert_eq!(h.s.state(), &SessionState::Joining);
    h.advance(Duration::from_millis(1));
    assert!(matches!(h.s.state(), SessionState::Backoff { error: ConnectorError::Timeout { .. }, attempt: 1, .. }));
    h.advance(FIRST_BACKOFF);
    assert_eq!(h.connects, 2);
    assert_eq!(h.s.state(), &SessionState::Connecting);
}

#[test]
fn server_gone_drops_connections_backs_off_exponentially_and_rejoins() {
    let mut h = Harness::new(true);
    h.join(json!([]));
    h.take_events();
    h.input(Input::Disconnected { reason: "connection reset".into() });
    let events = h.take_events();
    assert_eq!(events[0], SessionEvent::ConnectionsLost);
    assert!(matches!(h.s.state(), SessionState::Backoff { error: ConnectorError::ServerGone { .. }, attempt: 1, .. }));
    // Reconnect fails twice more: 1 s, 2 s, then 4 s.
    h.advance(Duration::from_secs(1));
    assert_eq!(h.connects, 2);
    h.input(Input::Disconnected { reason: "refused".into() });
    h.advance(Duration::from_secs(2));
    assert_eq!(h.connects, 3);
    h.input(Input::Disconnected { reason: "refused".into() });
    h.advance(Duration::from_millis(3999));
    assert_eq!(h.connects, 3);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.connects, 4);
    // The server is back: a fresh session joins again, attempt count resets.
    h.connects = 1;
    h.take_sent();
    h.join(json!([]));
    assert!(h.take_events().contains(&SessionEvent::Joined { feed: FEED, publishers: 0 }));
    h.input(Input::Disconnected { reason: "again".into() });
    assert!(matches!(h.s.state(), SessionState::Backoff { attempt: 1, .. }));
}

#[test]
fn janus_session_timeout_event_is_server_gone() {
    let mut h = Harness::new(true);
    h.join(json!([]));
    h.reply(json!({"janus": "timeout", "session_id": SESSION}));
    assert!(matches!(h.s.state(), SessionState::Backoff { error: ConnectorError::ServerGone { .. }, .. }));
}

#[test]
fn leaves_cleanly_hangup_detach_destroy() {
    let mut h = Harness::new(true);
    h.join(json!([{"id": 42}]));
    let attach = h.last_sent().clone();
    h.complete_subscription(&attach, 42, 222);
    h.take_sent();
    h.input(Input::Leave);
    assert_eq!(h.s.state(), &SessionState::Leaving);
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
    assert_eq!(h.s.state(), &SessionState::Left);
}

#[test]
fn leave_gives_up_waiting_after_the_leave_timeout() {
    let mut h = Harness::new(true);
    h.join(json!([]));
    h.input(Input::Leave);
    h.advance(LEAVE_TIMEOUT - Duration::from_millis(1));
    assert_eq!(h.s.state(), &SessionState::Leaving);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.s.state(), &SessionState::Left);
    assert_eq!(h.closes, 1);
}

#[test]
fn leave_before_connecting_closes_at_once() {
    let mut h = Harness::new(true);
    h.input(Input::Leave);
    assert_eq!(h.s.state(), &SessionState::Left);
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
    h.input(Input::LocalCandidate { target: Target::Publisher, candidate: Some(c.clone()) });
    h.input(Input::LocalCandidate { target: Target::Publisher, candidate: None });
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
            SessionEvent::RemoteCandidate { target: Target::Publisher, candidate: Some(c) },
            SessionEvent::RemoteCandidate { target: Target::Publisher, candidate: None },
        ]
    );
}

#[test]
fn garbage_from_the_server_is_an_error_not_a_panic() {
    let mut h = Harness::new(true);
    h.join(json!([{"id": 42}]));
    let before = h.s.state().clone();
    for text in ["", "{", "[]", "null", "{\"janus\": 5}", "\u{0}", "{\"transaction\":\"c1\"}"] {
        assert!(matches!(h.s.handle_input(h.now, Input::Message(text.into())), Err(ConnectorError::Protocol { .. })));
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
}

#[test]
fn restart_after_a_media_failure_backs_off_and_joins_again() {
    let mut h = Harness::new(true);
    // Before joining there is nothing to restart.
    h.input(Input::Restart { reason: "early".into() });
    assert_eq!(h.s.state(), &SessionState::Connecting);
    h.join(json!([]));
    h.take_events();
    h.input(Input::Restart { reason: "publisher ICE failed".into() });
    assert_eq!(h.take_events()[0], SessionEvent::ConnectionsLost);
    assert!(matches!(h.s.state(), SessionState::Backoff { error: ConnectorError::MediaFailed { .. }, attempt: 1, .. }));
    assert_eq!(h.closes, 1);
    h.advance(FIRST_BACKOFF);
    assert_eq!(h.connects, 2);
    h.connects = 1;
    h.join(json!([]));
    assert_eq!(h.s.state(), &SessionState::InRoom { feed: FEED });
}

#[test]
fn resubscribe_replaces_a_failed_subscription() {
    let mut h = Harness::new(true);
    h.join(json!([{"id": 42, "display": "Alice"}]));
    let attach = h.last_sent().clone();
    h.complete_subscription(&attach, 42, 222);
    h.take_sent();
    h.take_events();
    h.input(Input::Resubscribe { feed: 42 });
    let sent = h.take_sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!((sent[0]["janus"].as_str(), &sent[0]["handle_id"]), (Some("detach"), &json!(222)));
    assert_eq!(sent[1]["janus"], "attach");
    assert_eq!(h.take_events(), vec![SessionEvent::FeedGone { feed: 42 }]);
    h.complete_subscription(&sent[1], 42, 223);
    assert_eq!(
        h.take_events(),
        vec![SessionEvent::SubscriberOffer { feed: 42, display: Some("Alice".into()), sdp: "v=0 offer for 42".into() }]
    );
    // Unknown feeds are ignored.
    h.take_sent();
    h.input(Input::Resubscribe { feed: 7 });
    assert!(h.take_sent().is_empty());
}
