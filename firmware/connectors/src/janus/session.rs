//! The Janus VideoRoom session as a pure state machine, one [`Connector`].
//!
//! Follows the Janus WebSocket API (create → attach `janus.plugin.videoroom`
//! → `join` as publisher → `publish` with an offer → `keepalive`s; one more
//! handle per remote publisher: `join` as subscriber → offer from Janus →
//! `start` with our answer; `trickle`; `hangup`/`detach`/`destroy` to
//! leave) and the VideoRoom plugin's events (`joined`, `publishers`,
//! `unpublished`, `leaving`, error 426 "no such room").
//!
//! In the seam's terms: our publisher is the peer [`PUBLISHER`] (we offer,
//! Janus answers); every remote publisher ("feed") is a participant named by
//! its feed id, received on the peer `feed-<id>` (Janus offers, we answer).
//! Failures end the session in [`ConnectorState::Failed`]; the supervisor
//! decides on a retry.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::messages::{Candidate, ERROR_NO_SUCH_ROOM, ERROR_SESSION_NOT_FOUND, Incoming, VIDEOROOM_PLUGIN, room_value};
use crate::ConnectorError;
use crate::signalling::{
    self, Connector, ConnectorState, Direction, Event, Failure, Input, Output, ParticipantId, PeerId, Transmit,
};

/// How long Janus gets to answer a request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval between keep-alives (Janus drops sessions idle for 60 s).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(25);
/// How long leaving may take before the socket is closed anyway.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);
/// With nothing due, the timeout is this far after the latest input.
pub const IDLE_WAKEUP: Duration = Duration::from_secs(3600);
/// The peer id of our publisher connection.
pub const PUBLISHER: &str = "publisher";

/// A VideoRoom room id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Room {
    Number(u64),
    Text(String),
}

/// What the session is asked to do. Settings, checked when it is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JanusSettings {
    pub room: Room,
    /// Our display name in the room (the room's name).
    pub display: String,
    /// Whether to publish audio and video.
    pub publish: bool,
    /// Whether to subscribe to the other publishers.
    pub subscribe: bool,
}

/// Which Janus handle a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Target {
    Publisher,
    Subscriber { feed: u64 },
}

impl Target {
    fn peer(self) -> PeerId {
        match self {
            Self::Publisher => PeerId(PUBLISHER.to_owned()),
            Self::Subscriber { feed } => feed_peer(feed),
        }
    }

    fn of_peer(peer: &PeerId) -> Option<Self> {
        if peer.0 == PUBLISHER {
            return Some(Self::Publisher);
        }
        peer.0.strip_prefix("feed-")?.parse().ok().map(|feed| Self::Subscriber { feed })
    }
}

/// The peer id that receives `feed`.
pub fn feed_peer(feed: u64) -> PeerId {
    PeerId(format!("feed-{feed}"))
}

fn participant(feed: u64) -> ParticipantId {
    ParticipantId(feed.to_string())
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Request {
    Create,
    AttachPublisher,
    JoinPublisher,
    Publish,
    AttachSubscriber {
        feed: u64,
    },
    JoinSubscriber {
        feed: u64,
    },
    Start {
        feed: u64,
    },
    /// Requests whose reply only matters for leaving (keepalive, trickle, detach, hangup, destroy).
    Other,
}

#[derive(Clone, Debug)]
struct Pending {
    request: Request,
    deadline: Instant,
}

#[derive(Clone, Debug, Default)]
struct Subscription {
    handle: Option<u64>,
    display: Option<String>,
}

/// The Janus VideoRoom session. See the module docs.
#[derive(Debug)]
pub struct JanusSession {
    settings: JanusSettings,
    state: ConnectorState,
    session_id: Option<u64>,
    publisher_handle: Option<u64>,
    feed: Option<u64>,
    private_id: Option<u64>,
    subscriptions: BTreeMap<u64, Subscription>,
    pending: BTreeMap<String, Pending>,
    next_transaction: u64,
    next_keepalive: Option<Instant>,
    leave_deadline: Option<Instant>,
    outputs: VecDeque<Output>,
    /// The latest time passed in, for "nothing due" timeouts.
    last_now: Instant,
}

impl Connector for JanusSession {
    fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), ConnectorError> {
        JanusSession::handle_input(self, now, input)
    }

    fn poll_output(&mut self) -> Output {
        JanusSession::poll_output(self)
    }

    fn state(&self) -> &ConnectorState {
        &self.state
    }
}

impl JanusSession {
    /// A session that will ask to connect on the first poll.
    pub fn new(now: Instant, settings: JanusSettings) -> Self {
        let mut s = Self {
            last_now: now,
            settings,
            state: ConnectorState::Connecting,
            session_id: None,
            publisher_handle: None,
            feed: None,
            private_id: None,
            subscriptions: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_transaction: 1,
            next_keepalive: None,
            leave_deadline: None,
            outputs: VecDeque::new(),
        };
        s.outputs.push_back(Output::Transmit(Transmit::Connect));
        s
    }

    /// The current state.
    pub fn state(&self) -> &ConnectorState {
        &self.state
    }

    /// Our feed (publisher) id while in the room.
    pub fn feed(&self) -> Option<u64> {
        self.feed
    }

    /// The remote feeds we subscribe to.
    pub fn subscribed_feeds(&self) -> Vec<u64> {
        self.subscriptions.keys().copied().collect()
    }

    /// Feeds one input. Errors in Janus's messages become states, not
    /// `Err`s: the only error returned is a message that is not Janus JSON,
    /// which is ignored after being reported.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), ConnectorError> {
        self.last_now = self.last_now.max(now);
        match input {
            Input::TransportConnected => {
                if self.state == ConnectorState::Connecting {
                    self.request(now, Request::Create, json!({"janus": "create"}));
                    self.set_state(ConnectorState::Joining);
                }
            }
            Input::TransportReceived(text) => {
                let msg = Incoming::parse(&text).map_err(|e| ConnectorError::Protocol { reason: e.to_string() })?;
                self.on_message(now, msg);
            }
            Input::TransportClosed { reason } => match self.state {
                ConnectorState::Leaving => self.finish_leaving(),
                ConnectorState::Left | ConnectorState::Failed(_) => {}
                _ => self.fail(ConnectorError::ServerGone { reason }),
            },
            Input::LocalDescription { peer, sdp } => match Target::of_peer(&peer) {
                Some(Target::Publisher) => self.publish(now, sdp),
                Some(Target::Subscriber { feed }) => self.start(now, feed, sdp),
                None => {}
            },
            Input::LocalCandidate { peer, candidate } => {
                if let Some(handle) = Target::of_peer(&peer).and_then(|t| self.handle_of(t)) {
                    let candidate = match candidate {
                        Some(c) => {
                            json!({"candidate": c.candidate, "sdpMid": c.sdp_mid, "sdpMLineIndex": c.sdp_mline_index})
                        }
                        None => json!({"completed": true}),
                    };
                    self.request(
                        now,
                        Request::Other,
                        json!({"janus": "trickle", "handle_id": handle, "candidate": candidate}),
                    );
                }
            }
            Input::PeerFailed { peer, reason } => match Target::of_peer(&peer) {
                // Without our publisher there is no meeting: start over (the supervisor retries).
                Some(Target::Publisher)
                    if matches!(self.state, ConnectorState::InMeeting | ConnectorState::Joining) =>
                {
                    self.fail(ConnectorError::MediaFailed { reason: format!("publisher: {reason}") });
                }
                // One participant's connection: subscribe to them again with a new handle.
                Some(Target::Subscriber { feed }) if self.state == ConnectorState::InMeeting => {
                    self.resubscribe(now, feed);
                }
                _ => {}
            },
            Input::Tick => self.on_tick(now),
            Input::Leave => self.leave(now),
            // Janus VideoRoom has no participant verification; the page offers none for it.
            Input::Verify { .. } => {}
        }
        Ok(())
    }

    fn publish(&mut self, now: Instant, sdp: String) {
        if let (ConnectorState::InMeeting, Some(handle)) = (&self.state, self.publisher_handle) {
            let body = json!({
                "request": "publish", "audio": true, "video": true,
                "display": self.settings.display, "e2ee": true,
            });
            self.request(
                now,
                Request::Publish,
                // Janus 1.1 reads `e2ee` from the jsep (as its janus.js sends it): a
                // `require_e2ee` room refuses a publisher whose jsep lacks it (433).
                json!({"janus": "message", "handle_id": handle, "body": body,
                       "jsep": {"type": "offer", "sdp": sdp, "e2ee": true}}),
            );
        }
    }

    fn start(&mut self, now: Instant, feed: u64, sdp: String) {
        if let Some(handle) = self.subscriptions.get(&feed).and_then(|s| s.handle) {
            let body = json!({"request": "start", "room": room_value(&self.settings.room)});
            self.request(
                now,
                Request::Start { feed },
                json!({"janus": "message", "handle_id": handle, "body": body, "jsep": {"type": "answer", "sdp": sdp}}),
            );
        }
    }

    /// The next thing to do; [`Output::Timeout`] when there is nothing now.
    pub fn poll_output(&mut self) -> Output {
        if let Some(out) = self.outputs.pop_front() {
            return out;
        }
        Output::Timeout(self.next_deadline())
    }

    fn next_deadline(&self) -> Instant {
        let mut deadlines: Vec<Instant> = self.pending.values().map(|p| p.deadline).collect();
        deadlines.extend(self.next_keepalive);
        deadlines.extend(self.leave_deadline);
        // With nothing pending the session waits for input; an hour is "never"
        // without needing an Option in every caller's select loop.
        deadlines.into_iter().min().unwrap_or(self.last_now + IDLE_WAKEUP)
    }

    fn on_tick(&mut self, now: Instant) {
        if self.state.is_final() {
            return;
        }
        if let Some(deadline) = self.leave_deadline {
            if now >= deadline {
                self.finish_leaving();
                return;
            }
        }
        let expired = self.pending.values().any(|p| now >= p.deadline && p.request != Request::Other);
        if expired && self.state != ConnectorState::Leaving {
            self.fail(ConnectorError::Timeout { what: "janus request" });
            return;
        }
        self.pending.retain(|_, p| now < p.deadline);
        if let (Some(at), Some(session)) = (self.next_keepalive, self.session_id) {
            if now >= at {
                self.next_keepalive = Some(now + KEEPALIVE_INTERVAL);
                self.request(now, Request::Other, json!({"janus": "keepalive", "session_id": session}));
            }
        }
    }

    fn on_message(&mut self, now: Instant, msg: Incoming) {
        if self.state.is_final() {
            return;
        }
        // A session-level event about the whole session.
        if msg.janus == "timeout" {
            self.fail(ConnectorError::ServerGone { reason: "janus session timed out".into() });
            return;
        }
        let pending = msg.transaction.as_ref().and_then(|t| self.pending.get(t)).cloned();
        if let Some(pending) = pending {
            if msg.janus == "ack" && pending.request != Request::Other {
                // Plugin requests answer with an ack now and an event later.
                return;
            }
            if let Some(t) = &msg.transaction {
                self.pending.remove(t);
            }
            self.on_reply(now, pending.request, msg);
            return;
        }
        self.on_async(now, msg);
    }

    fn on_reply(&mut self, now: Instant, request: Request, msg: Incoming) {
        if msg.janus == "error" {
            let (code, reason) = msg.error.map(|e| (e.code, e.reason)).unwrap_or((0, String::new()));
            if self.state == ConnectorState::Leaving {
                return self.maybe_finish_leaving();
            }
            let error = if code == ERROR_SESSION_NOT_FOUND {
                ConnectorError::ServerGone { reason: format!("janus forgot the session: {reason}") }
            } else {
                ConnectorError::Refused { code, reason }
            };
            return self.on_request_error(now, request, error);
        }
        if let Some((code, reason)) = msg.plugin_error() {
            let error = if code == ERROR_NO_SUCH_ROOM {
                ConnectorError::NoSuchRoom { room: room_text(&self.settings.room) }
            } else {
                ConnectorError::Refused { code, reason }
            };
            return self.on_request_error(now, request, error);
        }
        match request {
            Request::Create => match msg.data_id() {
                Some(id) => {
                    self.session_id = Some(id);
                    self.next_keepalive = Some(now + KEEPALIVE_INTERVAL);
                    self.request(now, Request::AttachPublisher, json!({"janus": "attach", "plugin": VIDEOROOM_PLUGIN}));
                }
                None => self.fail(protocol("create: no session id")),
            },
            Request::AttachPublisher => match msg.data_id() {
                Some(id) => {
                    self.publisher_handle = Some(id);
                    let body = json!({
                        "request": "join", "ptype": "publisher",
                        "room": room_value(&self.settings.room), "display": self.settings.display,
                    });
                    self.request(
                        now,
                        Request::JoinPublisher,
                        json!({"janus": "message", "handle_id": id, "body": body}),
                    );
                }
                None => self.fail(protocol("attach: no handle id")),
            },
            Request::JoinPublisher => {
                if msg.videoroom() != Some("joined") {
                    return self.fail(protocol("join: no joined event"));
                }
                let Some(feed) = msg.room_data().and_then(|d| d.get("id")).and_then(Value::as_u64) else {
                    return self.fail(protocol("join: no feed id"));
                };
                self.feed = Some(feed);
                self.private_id = msg.room_data().and_then(|d| d.get("private_id")).and_then(Value::as_u64);
                let publishers = msg.publishers();
                self.set_state(ConnectorState::InMeeting);
                if self.settings.publish {
                    self.event(Event::OpenPeer {
                        peer: Target::Publisher.peer(),
                        direction: Direction::Send,
                        participant: None,
                        remote_offer: None,
                    });
                }
                for p in publishers {
                    self.subscribe(now, p.id, p.display);
                }
            }
            Request::Publish => match msg.jsep {
                Some(jsep) if jsep.kind == "answer" => {
                    self.event(Event::RemoteDescription { peer: Target::Publisher.peer(), sdp: jsep.sdp })
                }
                _ => self.fail(protocol("publish: no answer")),
            },
            Request::AttachSubscriber { feed } => match (msg.data_id(), self.subscriptions.get_mut(&feed)) {
                (Some(handle), Some(sub)) => {
                    sub.handle = Some(handle);
                    let mut body = json!({
                        "request": "join", "ptype": "subscriber",
                        "room": room_value(&self.settings.room), "streams": [{"feed": feed}],
                    });
                    if let Some(pid) = self.private_id {
                        body["private_id"] = json!(pid);
                    }
                    self.request(
                        now,
                        Request::JoinSubscriber { feed },
                        json!({"janus": "message", "handle_id": handle, "body": body}),
                    );
                }
                // The feed left while we attached: let the handle go.
                (Some(handle), None) => self.detach(now, handle),
                (None, _) => self.drop_subscription(now, feed),
            },
            Request::JoinSubscriber { feed } => match msg.jsep {
                Some(jsep) if jsep.kind == "offer" => self.event(Event::OpenPeer {
                    peer: feed_peer(feed),
                    direction: Direction::Receive,
                    participant: Some(participant(feed)),
                    remote_offer: Some(jsep.sdp),
                }),
                _ => self.drop_subscription(now, feed),
            },
            Request::Start { .. } | Request::Other => {
                if self.state == ConnectorState::Leaving {
                    self.maybe_finish_leaving();
                }
            }
        }
    }

    /// A request failed: subscriber-side failures drop that subscription
    /// (the feed may have just left); anything else fails the session.
    fn on_request_error(&mut self, now: Instant, request: Request, error: ConnectorError) {
        match request {
            Request::AttachSubscriber { feed } | Request::JoinSubscriber { feed } | Request::Start { feed } => {
                self.drop_subscription(now, feed);
            }
            Request::Other => {}
            _ => self.fail(error),
        }
    }

    fn on_async(&mut self, now: Instant, msg: Incoming) {
        let target = match msg.sender {
            Some(s) if Some(s) == self.publisher_handle => Target::Publisher,
            Some(s) => match self.subscriptions.iter().find(|(_, sub)| sub.handle == Some(s)) {
                Some((feed, _)) => Target::Subscriber { feed: *feed },
                None => return,
            },
            None => return,
        };
        match msg.janus.as_str() {
            "event" => {
                if target == Target::Publisher && self.settings.subscribe {
                    for p in msg.publishers() {
                        self.subscribe(now, p.id, p.display);
                    }
                }
                if let Some(feed) = msg.gone_feed() {
                    if self.subscriptions.contains_key(&feed) {
                        self.drop_subscription(now, feed);
                    }
                }
            }
            "trickle" => {
                let candidate = msg.candidate.as_ref().and_then(|c| {
                    if c.get("completed").and_then(Value::as_bool) == Some(true) {
                        None
                    } else {
                        serde_json::from_value::<Candidate>(c.clone()).ok()
                    }
                });
                let candidate = candidate.map(|c| signalling::Candidate {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                });
                self.event(Event::RemoteCandidate { peer: target.peer(), candidate });
            }
            // Janus gave up on our publisher's connection: start over. While
            // leaving it is our own hangup coming back, not a failure.
            "hangup" if target == Target::Publisher && self.state != ConnectorState::Leaving => {
                let reason = msg.reason.unwrap_or_default();
                self.fail(ConnectorError::MediaFailed { reason: format!("janus hung up the publisher: {reason}") });
            }
            "detached" => {
                if let Target::Subscriber { feed } = target {
                    if self.subscriptions.remove(&feed).is_some() {
                        self.participant_gone(feed);
                    }
                }
            }
            // `webrtcup`, `media`, `slowlink`, a subscriber's `hangup`: what
            // they say, the peer connections see first-hand.
            _ => {}
        }
    }

    /// Subscribes to a feed we do not receive yet: a new participant.
    fn subscribe(&mut self, now: Instant, feed: u64, display: Option<String>) {
        if !self.settings.subscribe || Some(feed) == self.feed || self.subscriptions.contains_key(&feed) {
            return;
        }
        self.event(Event::ParticipantJoined {
            participant: participant(feed),
            display: display.clone().unwrap_or_default(),
        });
        self.attach_subscriber(now, feed, display);
    }

    fn attach_subscriber(&mut self, now: Instant, feed: u64, display: Option<String>) {
        self.subscriptions.insert(feed, Subscription { handle: None, display });
        self.request(now, Request::AttachSubscriber { feed }, json!({"janus": "attach", "plugin": VIDEOROOM_PLUGIN}));
    }

    /// The same participant on a new handle and a new peer connection.
    fn resubscribe(&mut self, now: Instant, feed: u64) {
        if let Some(sub) = self.subscriptions.remove(&feed) {
            if let Some(handle) = sub.handle {
                self.detach(now, handle);
            }
            self.event(Event::ClosePeer { peer: feed_peer(feed) });
            self.attach_subscriber(now, feed, sub.display);
        }
    }

    /// The feed left, or we cannot receive it.
    fn drop_subscription(&mut self, now: Instant, feed: u64) {
        if let Some(sub) = self.subscriptions.remove(&feed) {
            if let Some(handle) = sub.handle {
                self.detach(now, handle);
            }
            self.participant_gone(feed);
        }
    }

    fn participant_gone(&mut self, feed: u64) {
        self.event(Event::ClosePeer { peer: feed_peer(feed) });
        self.event(Event::ParticipantLeft { participant: participant(feed) });
    }

    fn detach(&mut self, now: Instant, handle: u64) {
        self.request(now, Request::Other, json!({"janus": "detach", "handle_id": handle}));
    }

    fn leave(&mut self, now: Instant) {
        match self.state {
            ConnectorState::Leaving | ConnectorState::Left => return,
            ConnectorState::InMeeting | ConnectorState::Joining if self.session_id.is_some() => {}
            _ => {
                // Nothing on the server to clean up.
                self.set_state(ConnectorState::Leaving);
                return self.finish_leaving();
            }
        }
        self.set_state(ConnectorState::Leaving);
        self.pending.clear();
        self.leave_deadline = Some(now + LEAVE_TIMEOUT);
        self.next_keepalive = None;
        let subscriber_handles: Vec<u64> = self.subscriptions.values().filter_map(|s| s.handle).collect();
        for handle in subscriber_handles {
            self.request(now, Request::Other, json!({"janus": "hangup", "handle_id": handle}));
            self.detach(now, handle);
        }
        if let Some(handle) = self.publisher_handle {
            self.request(now, Request::Other, json!({"janus": "hangup", "handle_id": handle}));
            self.detach(now, handle);
        }
        self.request(now, Request::Other, json!({"janus": "destroy"}));
    }

    fn maybe_finish_leaving(&mut self) {
        if self.pending.is_empty() {
            self.finish_leaving();
        }
    }

    fn finish_leaving(&mut self) {
        self.reset_server_state();
        self.leave_deadline = None;
        self.outputs.push_back(Output::Transmit(Transmit::Close));
        self.set_state(ConnectorState::Left);
    }

    /// Drops everything that lived on the server and ends the session; the
    /// supervisor decides whether to try again. A room that does not exist
    /// will not exist on the next attempt either.
    fn fail(&mut self, error: ConnectorError) {
        self.reset_server_state();
        self.outputs.push_back(Output::Transmit(Transmit::Close));
        let retryable = !matches!(error, ConnectorError::NoSuchRoom { .. });
        self.set_state(ConnectorState::Failed(Failure { error, retryable }));
    }

    /// Forgets the server's session; every peer connection it carried is void.
    fn reset_server_state(&mut self) {
        for feed in std::mem::take(&mut self.subscriptions).into_keys() {
            self.participant_gone(feed);
        }
        if self.feed.take().is_some() && self.settings.publish {
            self.event(Event::ClosePeer { peer: Target::Publisher.peer() });
        }
        self.session_id = None;
        self.publisher_handle = None;
        self.private_id = None;
        self.pending.clear();
        self.next_keepalive = None;
    }

    fn handle_of(&self, target: Target) -> Option<u64> {
        match target {
            Target::Publisher => self.publisher_handle,
            Target::Subscriber { feed } => self.subscriptions.get(&feed)?.handle,
        }
    }

    fn request(&mut self, now: Instant, request: Request, mut body: Value) {
        let transaction = format!("c{}", self.next_transaction);
        self.next_transaction += 1;
        body["transaction"] = json!(transaction);
        if let Some(session) = self.session_id {
            if body.get("session_id").is_none() {
                body["session_id"] = json!(session);
            }
        }
        self.pending.insert(transaction, Pending { request, deadline: now + REQUEST_TIMEOUT });
        self.outputs.push_back(Output::Transmit(Transmit::Send(body.to_string())));
    }

    fn set_state(&mut self, state: ConnectorState) {
        if self.state != state {
            self.state = state.clone();
            self.event(Event::State(state));
        }
    }

    fn event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }
}

fn protocol(reason: &str) -> ConnectorError {
    ConnectorError::Protocol { reason: reason.to_owned() }
}

fn room_text(room: &Room) -> String {
    match room {
        Room::Number(n) => n.to_string(),
        Room::Text(s) => s.clone(),
    }
}
