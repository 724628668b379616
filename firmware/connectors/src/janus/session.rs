//! The Janus VideoRoom session as a pure state machine.
//!
//! Follows the Janus WebSocket API (create → attach `janus.plugin.videoroom`
//! → `join` as publisher → `publish` with an offer → `keepalive`s; one more
//! handle per remote publisher: `join` as subscriber → offer from Janus →
//! `start` with our answer; `trickle`; `hangup`/`detach`/`destroy` to
//! leave) and the VideoRoom plugin's events (`joined`, `publishers`,
//! `unpublished`, `leaving`, error 426 "no such room").
//!
//! No sockets and no clock: feed it [`Input`]s with the current time through
//! [`JanusSession::handle_input`], then drain [`JanusSession::poll_output`]
//! until it returns [`Output::Timeout`]: [`Transmit`]s are for the websocket
//! task, [`SessionEvent`]s for the daemon (peer connections, status).
//! Failures become [`SessionState::Backoff`] with exponential back-off and a
//! reconnect, or [`SessionState::Failed`] when retrying cannot help.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::messages::{Candidate, ERROR_NO_SUCH_ROOM, ERROR_SESSION_NOT_FOUND, Incoming, VIDEOROOM_PLUGIN, room_value};
use crate::ConnectorError;

/// How long Janus gets to answer a request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval between keep-alives (Janus drops sessions idle for 60 s).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(25);
/// How long leaving may take before the socket is closed anyway.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);
/// First back-off delay; doubles per failed attempt up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// With nothing due, the timeout is this far after the latest input.
pub const IDLE_WAKEUP: Duration = Duration::from_secs(3600);
/// Attempts at a room Janus says does not exist before giving up.
pub const NO_SUCH_ROOM_ATTEMPTS: u32 = 3;

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

/// Which peer connection a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Publisher,
    Subscriber { feed: u64 },
}

/// What happens to the session, from the outside.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// Waiting for the websocket to open.
    Connecting,
    /// Creating the session, attaching, joining.
    Joining,
    /// In the room as a publisher.
    InRoom { feed: u64 },
    /// Something failed; reconnecting after `retry_at`.
    Backoff { error: ConnectorError, attempt: u32, retry_at: Instant },
    /// Hanging up, detaching, destroying.
    Leaving,
    /// Left cleanly (or gave up leaving after [`LEAVE_TIMEOUT`]).
    Left,
    /// Gave up: retrying cannot help (e.g. the room does not exist).
    Failed { error: ConnectorError },
}

/// Inputs from the websocket task and the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// The websocket is open.
    Connected,
    /// A text frame from Janus.
    Message(String),
    /// The websocket closed or failed to open.
    Disconnected { reason: String },
    /// The publisher's offer (complete or trickled), for `publish`.
    PublisherOffer { sdp: String },
    /// Our answer to a subscriber offer, for `start`.
    SubscriberAnswer { feed: u64, sdp: String },
    /// A local ICE candidate, or `None` when gathering is complete.
    LocalCandidate { target: Target, candidate: Option<Candidate> },
    /// The publisher's media connection failed: start over (back off, new
    /// session, join, publish). Ignored unless joining or in the room.
    Restart { reason: String },
    /// A subscriber's media connection failed: drop it and subscribe to the
    /// feed again with a new handle.
    Resubscribe { feed: u64 },
    /// Time passed (a [`Output::Timeout`] is due).
    Tick,
    /// Leave the room and close.
    Leave,
}

/// What the websocket task must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Open the websocket (again).
    Connect,
    /// Send this text frame.
    Send(String),
    /// Close the websocket.
    Close,
}

/// What the daemon must know or do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    State(SessionState),
    /// We are in the room: build the publisher connection and send
    /// [`Input::PublisherOffer`].
    Joined {
        feed: u64,
        publishers: usize,
    },
    /// Janus's answer to our publisher offer.
    PublisherAnswer {
        sdp: String,
    },
    /// A remote publisher: build a subscriber connection for this offer and
    /// send [`Input::SubscriberAnswer`].
    SubscriberOffer {
        feed: u64,
        display: Option<String>,
        sdp: String,
    },
    /// A remote publisher left or unpublished: drop its connection.
    FeedGone {
        feed: u64,
    },
    /// A remote ICE candidate (`None`: Janus finished gathering).
    RemoteCandidate {
        target: Target,
        candidate: Option<Candidate>,
    },
    /// Janus's PeerConnection for `target` is up (`webrtcup`).
    WebRtcUp {
        target: Target,
    },
    /// Janus reports media flowing or stopping.
    Media {
        target: Target,
        kind: String,
        receiving: bool,
    },
    /// Janus hung up a PeerConnection.
    Hangup {
        target: Target,
        reason: String,
    },
    /// Janus sees loss (`slowlink`).
    SlowLink {
        target: Target,
        uplink: bool,
        lost: u64,
    },
    /// Every peer connection is void (the session was lost): drop them all.
    ConnectionsLost,
}

/// One output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Transmit(Transmit),
    Event(SessionEvent),
    /// Nothing more now; call again with [`Input::Tick`] at this time.
    Timeout(Instant),
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
    state: SessionState,
    session_id: Option<u64>,
    publisher_handle: Option<u64>,
    feed: Option<u64>,
    private_id: Option<u64>,
    subscriptions: BTreeMap<u64, Subscription>,
    pending: BTreeMap<String, Pending>,
    next_transaction: u64,
    next_keepalive: Option<Instant>,
    leave_deadline: Option<Instant>,
    attempt: u32,
    outputs: VecDeque<Output>,
    /// The latest time passed in, for "nothing due" timeouts.
    last_now: Instant,
}

impl JanusSession {
    /// A session that will ask to connect on the first poll.
    pub fn new(now: Instant, settings: JanusSettings) -> Self {
        let mut s = Self {
            last_now: now,
            settings,
            state: SessionState::Connecting,
            session_id: None,
            publisher_handle: None,
            feed: None,
            private_id: None,
            subscriptions: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_transaction: 1,
            next_keepalive: None,
            leave_deadline: None,
            attempt: 0,
            outputs: VecDeque::new(),
        };
        s.outputs.push_back(Output::Transmit(Transmit::Connect));
        s
    }

    /// The current state.
    pub fn state(&self) -> &SessionState {
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
            Input::Connected => {
                if self.state == SessionState::Connecting {
                    self.request(now, Request::Create, json!({"janus": "create"}));
                    self.set_state(SessionState::Joining);
                }
            }
            Input::Message(text) => {
                let msg = Incoming::parse(&text).map_err(|e| ConnectorError::Protocol { reason: e.to_string() })?;
                self.on_message(now, msg);
            }
            Input::Disconnected { reason } => match self.state {
                SessionState::Leaving => self.finish_leaving(),
                SessionState::Left | SessionState::Failed { .. } | SessionState::Backoff { .. } => {}
                _ => self.fail(now, ConnectorError::ServerGone { reason }),
            },
            Input::PublisherOffer { sdp } => {
                if let (SessionState::InRoom { .. }, Some(handle)) = (&self.state, self.publisher_handle) {
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
            Input::SubscriberAnswer { feed, sdp } => {
                if let Some(handle) = self.subscriptions.get(&feed).and_then(|s| s.handle) {
                    let body = json!({"request": "start", "room": room_value(&self.settings.room)});
                    self.request(
                        now,
                        Request::Start { feed },
                        json!({"janus": "message", "handle_id": handle, "body": body, "jsep": {"type": "answer", "sdp": sdp}}),
                    );
                }
            }
            Input::LocalCandidate { target, candidate } => {
                if let Some(handle) = self.handle_of(target) {
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
            Input::Restart { reason } => {
                if matches!(self.state, SessionState::InRoom { .. } | SessionState::Joining) {
                    self.fail(now, ConnectorError::MediaFailed { reason });
                }
            }
            Input::Resubscribe { feed } => {
                if matches!(self.state, SessionState::InRoom { .. }) {
                    if let Some(display) = self.subscriptions.get(&feed).map(|s| s.display.clone()) {
                        self.drop_subscription(now, feed);
                        self.subscribe(now, feed, display);
                    }
                }
            }
            Input::Tick => self.on_tick(now),
            Input::Leave => self.leave(now),
        }
        Ok(())
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
        if let SessionState::Backoff { retry_at, .. } = &self.state {
            deadlines.push(*retry_at);
        }
        // With nothing pending the session waits for input; an hour is "never"
        // without needing an Option in every caller's select loop.
        deadlines.into_iter().min().unwrap_or(self.last_now + IDLE_WAKEUP)
    }

    fn on_tick(&mut self, now: Instant) {
        if let SessionState::Backoff { retry_at, .. } = &self.state {
            if now >= *retry_at {
                self.set_state(SessionState::Connecting);
                self.outputs.push_back(Output::Transmit(Transmit::Connect));
            }
            return;
        }
        if let Some(deadline) = self.leave_deadline {
            if now >= deadline {
                self.finish_leaving();
                return;
            }
        }
        let expired = self.pending.values().any(|p| now >= p.deadline && p.request != Request::Other);
        if expired && self.state != SessionState::Leaving {
            self.fail(now, ConnectorError::Timeout { what: "janus request" });
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
        if matches!(self.state, SessionState::Left | SessionState::Failed { .. } | SessionState::Backoff { .. }) {
            return;
        }
        // A session-level event about the whole session.
        if msg.janus == "timeout" {
            self.fail(now, ConnectorError::ServerGone { reason: "janus session timed out".into() });
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
            if self.state == SessionState::Leaving {
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
                None => self.fail(now, protocol("create: no session id")),
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
                None => self.fail(now, protocol("attach: no handle id")),
            },
            Request::JoinPublisher => {
                if msg.videoroom() != Some("joined") {
                    return self.fail(now, protocol("join: no joined event"));
                }
                let Some(feed) = msg.room_data().and_then(|d| d.get("id")).and_then(Value::as_u64) else {
                    return self.fail(now, protocol("join: no feed id"));
                };
                self.feed = Some(feed);
                self.private_id = msg.room_data().and_then(|d| d.get("private_id")).and_then(Value::as_u64);
                self.attempt = 0;
                let publishers = msg.publishers();
                self.set_state(SessionState::InRoom { feed });
                self.event(SessionEvent::Joined { feed, publishers: publishers.len() });
                for p in publishers {
                    self.subscribe(now, p.id, p.display);
                }
            }
            Request::Publish => match msg.jsep {
                Some(jsep) if jsep.kind == "answer" => self.event(SessionEvent::PublisherAnswer { sdp: jsep.sdp }),
                _ => self.fail(now, protocol("publish: no answer")),
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
                Some(jsep) if jsep.kind == "offer" => {
                    let display = self.subscriptions.get(&feed).and_then(|s| s.display.clone());
                    self.event(SessionEvent::SubscriberOffer { feed, display, sdp: jsep.sdp });
                }
                _ => self.drop_subscription(now, feed),
            },
            Request::Start { .. } | Request::Other => {
                if self.state == SessionState::Leaving {
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
            _ => self.fail(now, error),
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
                self.event(SessionEvent::RemoteCandidate { target, candidate });
            }
            "webrtcup" => self.event(SessionEvent::WebRtcUp { target }),
            "media" => self.event(SessionEvent::Media {
                target,
                kind: msg.media_type.unwrap_or_default(),
                receiving: msg.receiving.unwrap_or(false),
            }),
            "hangup" => self.event(SessionEvent::Hangup { target, reason: msg.reason.unwrap_or_default() }),
            "slowlink" => self.event(SessionEvent::SlowLink {
                target,
                uplink: msg.uplink.unwrap_or(false),
                lost: msg.lost.unwrap_or(0),
            }),
            "detached" => {
                if let Target::Subscriber { feed } = target {
                    if self.subscriptions.remove(&feed).is_some() {
                        self.event(SessionEvent::FeedGone { feed });
                    }
                }
            }
            _ => {}
        }
    }

    fn subscribe(&mut self, now: Instant, feed: u64, display: Option<String>) {
        if !self.settings.subscribe || Some(feed) == self.feed || self.subscriptions.contains_key(&feed) {
            return;
        }
        self.subscriptions.insert(feed, Subscription { handle: None, display });
        self.request(now, Request::AttachSubscriber { feed }, json!({"janus": "attach", "plugin": VIDEOROOM_PLUGIN}));
    }

    fn drop_subscription(&mut self, now: Instant, feed: u64) {
        if let Some(sub) = self.subscriptions.remove(&feed) {
            if let Some(handle) = sub.handle {
                self.detach(now, handle);
            }
            self.event(SessionEvent::FeedGone { feed });
        }
    }

    fn detach(&mut self, now: Instant, handle: u64) {
        self.request(now, Request::Other, json!({"janus": "detach", "handle_id": handle}));
    }

    fn leave(&mut self, now: Instant) {
        match self.state {
            SessionState::Leaving | SessionState::Left => return,
            SessionState::InRoom { .. } | SessionState::Joining if self.session_id.is_some() => {}
            _ => {
                // Nothing on the server to clean up.
                self.set_state(SessionState::Leaving);
                return self.finish_leaving();
            }
        }
        self.set_state(SessionState::Leaving);
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
        self.set_state(SessionState::Left);
    }

    /// Drops everything that lived on the server and backs off (or gives up).
    fn fail(&mut self, now: Instant, error: ConnectorError) {
        self.reset_server_state();
        self.outputs.push_back(Output::Transmit(Transmit::Close));
        self.attempt += 1;
        let give_up = matches!(error, ConnectorError::NoSuchRoom { .. }) && self.attempt >= NO_SUCH_ROOM_ATTEMPTS;
        if give_up {
            self.set_state(SessionState::Failed { error });
        } else {
            let shift = self.attempt.saturating_sub(1).min(5);
            let delay = (FIRST_BACKOFF * (1 << shift)).min(MAX_BACKOFF);
            self.set_state(SessionState::Backoff { error, attempt: self.attempt, retry_at: now + delay });
        }
    }

    fn reset_server_state(&mut self) {
        let had_connections = self.feed.is_some() || !self.subscriptions.is_empty();
        self.session_id = None;
        self.publisher_handle = None;
        self.feed = None;
        self.private_id = None;
        self.subscriptions.clear();
        self.pending.clear();
        self.next_keepalive = None;
        if had_connections {
            self.event(SessionEvent::ConnectionsLost);
        }
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

    fn set_state(&mut self, state: SessionState) {
        if self.state != state {
            self.state = state.clone();
            self.event(SessionEvent::State(state));
        }
    }

    fn event(&mut self, event: SessionEvent) {
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
