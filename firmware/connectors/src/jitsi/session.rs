//! The Jitsi Meet session as a pure state machine, one [`Connector`].
//!
//! XMPP over a WebSocket (RFC 7395): `<open/>` → anonymous SASL → a new
//! `<open/>` → resource binding → the conference request to the focus
//! (jicofo in a deployment; it answers `ready`) → joining the room's
//! multi-user chat with Jitsi's presence (display name, the E2EE feature and
//! our Olm identity keys, our sources) → in the room.
//!
//! In the room, media is one peer-to-peer Jingle session with the other
//! participant (mode P2P): we offer it (lib-jitsi-meet does not start P2P
//! while its E2EE is on, but accepts it), or answer one offered to us. Our
//! SDP becomes Jingle with [`super::jingle`]; their candidates arrive in
//! `transport-info`. Meetings of three or more run through a videobridge
//! (the focus's own session-initiate, carrying the bridge's transport;
//! Colibri2): that is the connector's second mode, not built yet. A
//! session-initiate from the focus is refused with `feature-not-implemented`
//! and the room stays in the chat without media, saying so in the logs.
//!
//! Keys: every participant that advertises E2EE gets an Olm session
//! ([`cloakroom_jitsi_e2ee`], lib-jitsi-meet's protocol over private
//! `<json-message>`s); our media key and theirs come out as
//! [`Event::LocalKey`] and [`Event::ParticipantKey`]. With `require_e2ee`,
//! no peer session is offered to or accepted from a participant that does
//! not do E2EE ([`Event::ParticipantRefused`] says why).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use cloakroom_jitsi_e2ee::{E2eeOutput, IdentityKeys, JitsiE2ee, SasEvent};
use minidom::Element;

use super::jingle::{self, candidate_to_sdp};
use super::xml::{X, attr, child_text, kids, ns};
use crate::ConnectorError;
use crate::signalling::{
    Candidate, Connector, ConnectorState, Direction, Event, Failure, Input, Output, ParticipantId, PeerId, Transmit,
    Verification,
};

/// The WebSocket subprotocol of XMPP (RFC 7395).
pub const WS_PROTOCOL: &str = "xmpp";
/// How long the server gets to answer a step of the login and join.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval between pings to the server while in the room.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long leaving may take before the socket is closed anyway.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);
/// With nothing due, the timeout is this far after the latest input.
pub const IDLE_WAKEUP: Duration = Duration::from_secs(3600);
/// How long to wait before offering the peer session again after the other
/// side ended it while staying in the room.
pub const REOFFER_DELAY: Duration = Duration::from_secs(2);
/// How many times one participant is offered a peer session.
pub const MAX_OFFERS: u32 = 3;
/// The focus's `ready="false"` is asked again this often, this many times.
pub const FOCUS_RETRY: Duration = Duration::from_secs(2);
pub const FOCUS_ATTEMPTS: u32 = 5;
/// Most participants tracked (a MUC is bounded by its server; this bounds us).
pub const MAX_OCCUPANTS: usize = 256;
/// Longest display name kept (characters).
pub const MAX_DISPLAY: usize = 64;

/// What the session is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitsiSettings {
    /// The XMPP domain to log in to (anonymously).
    pub domain: String,
    /// The room's bare JID (`room@conference.domain`).
    pub room_jid: String,
    /// The focus component (`focus.domain`).
    pub focus: String,
    /// Our display name in the room.
    pub display: String,
    /// Offer or accept media only with participants that do E2EE.
    pub require_e2ee: bool,
    /// Our MUC resource (Jitsi's endpoint id): 8 hex digits, random when `None`.
    pub endpoint: Option<String>,
}

/// Where the login and join are.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the transport.
    Transport,
    /// Sent `<open/>`; waiting for the server's and its features.
    Stream {
        authenticated: bool,
    },
    /// Sent the SASL ANONYMOUS auth.
    Sasl,
    /// Sent the bind request.
    Bind {
        id: String,
    },
    /// Asked the focus for the conference.
    Focus {
        id: String,
        attempts: u32,
    },
    /// Sent our presence to the room.
    Joining,
    /// In the room.
    InRoom,
    /// Said goodbye.
    Leaving,
    Done,
}

/// Someone else in the room.
#[derive(Clone, Debug)]
struct Occupant {
    display: String,
    keys: Option<IdentityKeys>,
    /// The focus (jicofo) or another service, not a person.
    service: bool,
    offers: u32,
    /// Told the meeting is too big for a peer session with them.
    told_bridge: bool,
}

/// Our one peer-to-peer Jingle session.
#[derive(Clone, Debug)]
struct P2p {
    with: String,
    sid: String,
    peer: PeerId,
    we_initiate: bool,
    /// Their session-initiate (when they offered) waiting for our answer.
    answered: bool,
}

/// The Jitsi Meet session. See the module docs.
pub struct JitsiSession {
    settings: JitsiSettings,
    endpoint: String,
    state: ConnectorState,
    phase: Phase,
    /// Our full JID after binding.
    jid: Option<String>,
    occupants: BTreeMap<String, Occupant>,
    p2p: Option<P2p>,
    e2ee: JitsiE2ee,
    outputs: VecDeque<Output>,
    id_prefix: String,
    next_id: u64,
    /// The step being waited for, and until when.
    deadline: Option<(Instant, &'static str)>,
    next_ping: Option<Instant>,
    /// A ping sent and not answered: its id and deadline.
    ping: Option<(String, Instant)>,
    reoffer_at: Option<Instant>,
    focus_retry_at: Option<Instant>,
    leave_deadline: Option<Instant>,
    last_now: Instant,
}

impl core::fmt::Debug for JitsiSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Keys live in `e2ee` and are not printed.
        f.debug_struct("JitsiSession")
            .field("room", &self.settings.room_jid)
            .field("endpoint", &self.endpoint)
            .field("state", &self.state)
            .field("phase", &self.phase)
            .field("occupants", &self.occupants.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Connector for JitsiSession {
    fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), ConnectorError> {
        JitsiSession::handle_input(self, now, input)
    }

    fn poll_output(&mut self) -> Output {
        JitsiSession::poll_output(self)
    }

    fn state(&self) -> &ConnectorState {
        &self.state
    }
}

/// Random lower-case hex digits.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // Without OS randomness ids are still unique per session by the counter.
    let _ = getrandom::fill(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn protocol(reason: impl Into<String>) -> ConnectorError {
    ConnectorError::Protocol { reason: reason.into() }
}

impl JitsiSession {
    /// A session that will ask to connect on the first poll.
    pub fn new(now: Instant, settings: JitsiSettings) -> Self {
        let endpoint = settings.endpoint.clone().unwrap_or_else(|| random_hex(4));
        let e2ee = JitsiE2ee::new(&endpoint);
        let mut s = Self {
            settings,
            e2ee,
            endpoint,
            state: ConnectorState::Connecting,
            phase: Phase::Transport,
            jid: None,
            occupants: BTreeMap::new(),
            p2p: None,
            outputs: VecDeque::new(),
            id_prefix: random_hex(4),
            next_id: 1,
            deadline: None,
            next_ping: None,
            ping: None,
            reoffer_at: None,
            focus_retry_at: None,
            leave_deadline: None,
            last_now: now,
        };
        // The transport driver bounds the connection itself (and reports a close).
        s.outputs.push_back(Output::Transmit(Transmit::Connect));
        s
    }

    /// Our MUC resource (Jitsi's endpoint id).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Our full MUC JID.
    fn muc_jid(&self) -> String {
        format!("{}/{}", self.settings.room_jid, self.endpoint)
    }

    fn occupant_jid(&self, resource: &str) -> String {
        format!("{}/{resource}", self.settings.room_jid)
    }

    fn id(&mut self) -> String {
        let id = format!("{}-{}", self.id_prefix, self.next_id);
        self.next_id += 1;
        id
    }

    fn send(&mut self, x: X) {
        self.outputs.push_back(Output::Transmit(Transmit::Send(x.to_xml())));
    }

    fn event(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    fn set_state(&mut self, state: ConnectorState) {
        if self.state != state && !self.state.is_final() {
            self.state = state.clone();
            self.event(Event::State(state));
        }
    }

    fn fail(&mut self, error: ConnectorError, retryable: bool) {
        if self.state.is_final() {
            return;
        }
        if let Some(p2p) = self.p2p.take() {
            self.event(Event::ClosePeer { peer: p2p.peer });
        }
        self.phase = Phase::Done;
        self.deadline = None;
        self.outputs.push_back(Output::Transmit(Transmit::Close));
        self.set_state(ConnectorState::Failed(Failure { error, retryable }));
    }

    /// Feeds one input. Only a message that is not XMPP returns `Err` (after
    /// being dealt with: ignored when in the room, a failure while joining).
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), ConnectorError> {
        self.last_now = self.last_now.max(now);
        match input {
            Input::TransportConnected => {
                if self.phase == Phase::Transport {
                    self.set_state(ConnectorState::Joining);
                    self.open_stream(now, false);
                }
                Ok(())
            }
            Input::TransportReceived(text) => self.receive(now, &text),
            Input::TransportClosed { reason } => {
                match self.phase {
                    Phase::Leaving | Phase::Done => {
                        if !self.state.is_final() {
                            self.phase = Phase::Done;
                            self.set_state(ConnectorState::Left);
                        }
                    }
                    _ => self.fail(ConnectorError::ServerGone { reason }, true),
                }
                Ok(())
            }
            Input::LocalDescription { peer, sdp } => {
                self.local_description(now, &peer, &sdp);
                Ok(())
            }
            Input::LocalCandidate { peer, candidate } => {
                self.local_candidate(&peer, candidate);
                Ok(())
            }
            Input::PeerFailed { peer, reason } => {
                let Some(with) = self.p2p.as_ref().filter(|p| p.peer == peer).map(|p| p.with.clone()) else {
                    return Ok(());
                };
                // The other side may still be there: end this session and offer again,
                // up to MAX_OFFERS times; then the meeting has failed (the supervisor retries it).
                self.terminate_p2p(now, "connectivity-error", &reason);
                if self.occupants.get(&with).is_none_or(|o| o.offers >= MAX_OFFERS) {
                    self.fail(ConnectorError::MediaFailed { reason }, true);
                }
                Ok(())
            }
            Input::Tick => {
                self.tick(now);
                Ok(())
            }
            Input::Leave => {
                self.leave(now);
                Ok(())
            }
            Input::Verify { participant, start, confirm } => {
                self.verify(now, &participant.0, start, confirm);
                Ok(())
            }
        }
    }

    /// Drains what is due.
    pub fn poll_output(&mut self) -> Output {
        self.drain_e2ee();
        if let Some(o) = self.outputs.pop_front() {
            return o;
        }
        let due = [
            self.deadline.map(|(t, _)| t),
            self.next_ping,
            self.ping.as_ref().map(|(_, t)| *t),
            self.reoffer_at,
            self.focus_retry_at,
            self.leave_deadline,
            self.e2ee.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        Output::Timeout(due.unwrap_or(self.last_now + IDLE_WAKEUP))
    }

    fn open_stream(&mut self, now: Instant, authenticated: bool) {
        let open = X::new("open", ns::FRAMING).a("to", self.settings.domain.clone()).a("version", "1.0");
        self.send(open);
        self.phase = Phase::Stream { authenticated };
        self.deadline = Some((now + REQUEST_TIMEOUT, "the XMPP stream"));
    }

    fn receive(&mut self, now: Instant, text: &str) -> Result<(), ConnectorError> {
        let el: Element = match text.parse() {
            Ok(el) => el,
            Err(e) => {
                let error = protocol(format!("not XML: {e}"));
                if self.phase != Phase::InRoom {
                    self.fail(error.clone(), true);
                }
                return Err(error);
            }
        };
        match (el.name(), el.ns().as_str()) {
            ("open", ns::FRAMING) => Ok(()),
            ("close", ns::FRAMING) => {
                if !matches!(self.phase, Phase::Leaving | Phase::Done) {
                    self.fail(ConnectorError::ServerGone { reason: "the server closed the XMPP stream".into() }, true);
                }
                Ok(())
            }
            ("features", ns::STREAMS) => self.features(now, &el),
            ("success", ns::SASL) if self.phase == Phase::Sasl => {
                self.open_stream(now, true);
                Ok(())
            }
            ("failure", ns::SASL) => {
                let condition = el.children().next().map(|c| c.name().to_owned()).unwrap_or_default();
                self.fail(
                    ConnectorError::Refused {
                        code: 0,
                        reason: format!("anonymous login refused ({condition}); this deployment needs an account"),
                    },
                    false,
                );
                Ok(())
            }
            ("error", ns::STREAMS) => {
                let condition = el.children().next().map(|c| c.name().to_owned()).unwrap_or_default();
                self.fail(ConnectorError::ServerGone { reason: format!("XMPP stream error: {condition}") }, true);
                Ok(())
            }
            ("iq", ns::CLIENT) => self.iq(now, &el),
            ("presence", ns::CLIENT) => {
                self.presence(now, &el);
                Ok(())
            }
            ("message", ns::CLIENT) => {
                self.message(now, &el);
                Ok(())
            }
            (name, _) => Err(protocol(format!("unexpected <{}>", name.chars().take(32).collect::<String>()))),
        }
    }

    fn features(&mut self, now: Instant, el: &Element) -> Result<(), ConnectorError> {
        match self.phase {
            Phase::Stream { authenticated: false } => {
                let anonymous = el
                    .get_child("mechanisms", ns::SASL)
                    .is_some_and(|m| kids(m, "mechanism", ns::SASL).any(|m| m.text().trim() == "ANONYMOUS"));
                if !anonymous {
                    self.fail(
                        ConnectorError::Refused {
                            code: 0,
                            reason: "the server offers no anonymous login; this deployment needs an account".into(),
                        },
                        false,
                    );
                    return Ok(());
                }
                self.send(X::new("auth", ns::SASL).a("mechanism", "ANONYMOUS"));
                self.phase = Phase::Sasl;
                self.deadline = Some((now + REQUEST_TIMEOUT, "the login"));
            }
            Phase::Stream { authenticated: true } => {
                if !el.has_child("bind", ns::BIND) {
                    self.fail(protocol("the server offers no resource binding"), true);
                    return Ok(());
                }
                let id = self.id();
                self.send(
                    X::new("iq", ns::CLIENT).a("type", "set").a("id", id.clone()).child(X::new("bind", ns::BIND)),
                );
                self.phase = Phase::Bind { id };
                self.deadline = Some((now + REQUEST_TIMEOUT, "resource binding"));
            }
            _ => {}
        }
        Ok(())
    }

    fn ask_focus(&mut self, now: Instant, attempts: u32) {
        let id = self.id();
        let conference = X::new("conference", ns::FOCUS)
            .a("room", self.settings.room_jid.clone())
            .a("machine-uid", self.id_prefix.clone())
            .child(X::new("property", ns::FOCUS).a("name", "rtcstatsEnabled").a("value", "false"));
        self.send(
            X::new("iq", ns::CLIENT)
                .a("type", "set")
                .a("to", self.settings.focus.clone())
                .a("id", id.clone())
                .child(conference),
        );
        self.phase = Phase::Focus { id, attempts };
        self.deadline = Some((now + REQUEST_TIMEOUT, "the conference focus"));
    }

    fn join_room(&mut self, now: Instant) {
        let keys = self.e2ee.identity_keys();
        let source_info = format!(
            "{{\"{0}-a0\":{{\"muted\":false}},\"{0}-v0\":{{\"muted\":false,\"videoType\":\"camera\"}}}}",
            self.endpoint
        );
        let presence = X::new("presence", ns::CLIENT)
            .a("to", self.muc_jid())
            .child(X::new("x", ns::MUC))
            .child(X::new("nick", ns::NICK).text(self.settings.display.clone()))
            .child(X::new("features", ns::CLIENT).child(X::new("feature", ns::CLIENT).a("var", ns::JITSI_E2EE_FEATURE)))
            .child(X::new("jitsi_participant_codecList", ns::CLIENT).text("vp8"))
            .child(X::new("jitsi_participant_e2ee.idKey.curve25519", ns::CLIENT).text(keys.curve25519.clone()))
            .child(X::new("jitsi_participant_e2ee.idKey.ed25519", ns::CLIENT).text(keys.ed25519.clone()))
            .child(X::new("jitsi_participant_e2ee.enabled", ns::CLIENT).text("true"))
            .child(X::new("SourceInfo", ns::CLIENT).text(source_info))
            .child(X::new("audiomuted", ns::CLIENT).text("false"))
            .child(X::new("videomuted", ns::CLIENT).text("false"));
        self.send(presence);
        self.phase = Phase::Joining;
        self.deadline = Some((now + REQUEST_TIMEOUT, "joining the room"));
    }

    fn iq(&mut self, now: Instant, el: &Element) -> Result<(), ConnectorError> {
        let kind = attr(el, "type");
        let id = attr(el, "id").to_owned();
        let from = attr(el, "from").to_owned();
        match kind {
            "result" | "error" => {
                self.iq_reply(now, el, &id, kind == "error");
                Ok(())
            }
            "get" | "set" => {
                let Some(payload) = el.children().next() else {
                    self.iq_error(&from, &id, "bad-request");
                    return Ok(());
                };
                if payload.is("ping", ns::PING) {
                    self.iq_result(&from, &id);
                } else if payload.is("query", ns::DISCO_INFO) && kind == "get" {
                    let query = X::new("query", ns::DISCO_INFO)
                        .child(
                            X::new("identity", ns::DISCO_INFO)
                                .a("category", "client")
                                .a("type", "web")
                                .a("name", "cloakroom"),
                        )
                        .children(
                            [
                                ns::JITSI_E2EE_FEATURE,
                                ns::JINGLE,
                                ns::JINGLE_RTP,
                                ns::JINGLE_ICE_UDP,
                                ns::JINGLE_DTLS,
                                "urn:ietf:rfc:5761",
                                "urn:ietf:rfc:5888",
                            ]
                            .into_iter()
                            .map(|f| X::new("feature", ns::DISCO_INFO).a("var", f)),
                        );
                    self.send(X::new("iq", ns::CLIENT).a("type", "result").a("to", from).a("id", id).child(query));
                } else if payload.is("jingle", ns::JINGLE) && kind == "set" {
                    self.jingle(now, &from, &id, payload);
                } else {
                    self.iq_error(&from, &id, "service-unavailable");
                }
                Ok(())
            }
            _ => Err(protocol("iq without a valid type")),
        }
    }

    fn iq_result(&mut self, to: &str, id: &str) {
        self.send(X::new("iq", ns::CLIENT).a("type", "result").a("to", to).a("id", id));
    }

    fn iq_error(&mut self, to: &str, id: &str, condition: &str) {
        let kind = if condition == "bad-request" { "modify" } else { "cancel" };
        self.send(
            X::new("iq", ns::CLIENT)
                .a("type", "error")
                .a("to", to)
                .a("id", id)
                .child(X::new("error", ns::CLIENT).a("type", kind).child(X::new(condition, ns::STANZAS))),
        );
    }

    /// The reply to one of our requests.
    fn iq_reply(&mut self, now: Instant, el: &Element, id: &str, error: bool) {
        let condition = || {
            el.get_child("error", ns::CLIENT)
                .and_then(|e| e.children().find(|c| c.ns() == ns::STANZAS))
                .map(|c| c.name().to_owned())
                .unwrap_or_else(|| "unknown".into())
        };
        match self.phase.clone() {
            Phase::Bind { id: want } if want == id => {
                if error {
                    self.fail(
                        ConnectorError::Refused { code: 0, reason: format!("binding refused: {}", condition()) },
                        true,
                    );
                    return;
                }
                let jid = el.get_child("bind", ns::BIND).and_then(|b| child_text(b, "jid", ns::BIND));
                match jid {
                    Some(jid) if !jid.is_empty() => {
                        self.jid = Some(jid);
                        self.ask_focus(now, 1);
                    }
                    _ => self.fail(protocol("the bind result has no JID"), true),
                }
            }
            Phase::Focus { id: want, attempts } if want == id => {
                if error {
                    // No focus (a server with only the chat, as in our tests
                    // without the stand-in): P2P needs none, so go on.
                    self.join_room(now);
                    return;
                }
                let ready = el.get_child("conference", ns::FOCUS).map(|c| attr(c, "ready") == "true").unwrap_or(false);
                if ready {
                    self.join_room(now);
                } else if attempts >= FOCUS_ATTEMPTS {
                    self.fail(ConnectorError::Timeout { what: "the conference focus to be ready" }, true);
                } else {
                    self.phase = Phase::Focus { id: String::new(), attempts };
                    self.deadline = None;
                    self.focus_retry_at = Some(now + FOCUS_RETRY);
                }
            }
            _ => {
                if self.ping.as_ref().is_some_and(|(p, _)| p == id) {
                    self.ping = None;
                    self.next_ping = Some(now + PING_INTERVAL);
                } else if error && self.p2p.is_some() {
                    // A Jingle request of ours refused: the other side will not take this session.
                    let reason = condition();
                    self.terminate_p2p(now, "general-error", &format!("the other side refused: {reason}"));
                }
            }
        }
    }

    fn presence(&mut self, now: Instant, el: &Element) {
        let from = attr(el, "from");
        let Some(resource) = from.strip_prefix(self.settings.room_jid.as_str()).and_then(|r| r.strip_prefix('/'))
        else {
            return;
        };
        let resource = resource.to_owned();
        let kind = attr(el, "type");
        let own = resource == self.endpoint
            || el
                .get_child("x", ns::MUC_USER)
                .is_some_and(|x| kids(x, "status", ns::MUC_USER).any(|s| attr(s, "code") == "110"));
        if kind == "error" {
            if self.phase == Phase::Joining {
                let condition = el
                    .get_child("error", ns::CLIENT)
                    .and_then(|e| e.children().find(|c| c.ns() == ns::STANZAS))
                    .map(|c| c.name().to_owned())
                    .unwrap_or_else(|| "unknown".into());
                let retryable = condition == "conflict" || condition == "service-unavailable";
                self.fail(
                    ConnectorError::Refused { code: 0, reason: format!("the room refused us: {condition}") },
                    retryable,
                );
            }
            return;
        }
        if own {
            if kind == "unavailable" {
                if self.phase == Phase::InRoom {
                    self.fail(ConnectorError::ServerGone { reason: "removed from the room".into() }, true);
                }
                return;
            }
            if self.phase == Phase::Joining {
                self.phase = Phase::InRoom;
                self.deadline = None;
                self.next_ping = Some(now + PING_INTERVAL);
                self.set_state(ConnectorState::InMeeting);
                self.maybe_offer(now);
            }
            return;
        }
        if kind == "unavailable" {
            self.occupant_left(now, &resource);
            return;
        }
        if !self.occupants.contains_key(&resource) && self.occupants.len() >= MAX_OCCUPANTS {
            return;
        }
        let display = child_text(el, "nick", ns::NICK)
            .map(|n| cloakroom_meeting::text::clean_to(&n, MAX_DISPLAY))
            .unwrap_or_default();
        let service = el
            .get_child("x", ns::MUC_USER)
            .and_then(|x| x.get_child("item", ns::MUC_USER))
            .and_then(|i| i.attr("jid"))
            .is_some_and(|jid| {
                jid.starts_with("focus@") || jid.starts_with("jibri@") || jid.starts_with("transcriber@")
            })
            || resource == "focus";
        let e2ee = el
            .get_child("features", ns::CLIENT)
            .is_some_and(|f| kids(f, "feature", ns::CLIENT).any(|f| attr(f, "var") == ns::JITSI_E2EE_FEATURE));
        // lib-jitsi-meet puts its identity keys in presence whether or not
        // its E2EE is on; `jitsi_participant_e2ee.enabled` says whether it is
        // (and lib-jitsi-meet starts Olm only with participants where it is).
        let enabled = child_text(el, "jitsi_participant_e2ee.enabled", ns::CLIENT).is_some_and(|t| t.trim() == "true");
        let e2ee = e2ee && enabled;
        let keys = match (
            child_text(el, "jitsi_participant_e2ee.idKey.curve25519", ns::CLIENT),
            child_text(el, "jitsi_participant_e2ee.idKey.ed25519", ns::CLIENT),
        ) {
            (Some(c), Some(e)) if e2ee && valid_key(&c) && valid_key(&e) => {
                Some(IdentityKeys { curve25519: c.trim().to_owned(), ed25519: e.trim().to_owned() })
            }
            _ => None,
        };
        let new = !self.occupants.contains_key(&resource);
        let changed_name = self.occupants.get(&resource).is_some_and(|o| o.display != display);
        let occupant = self.occupants.entry(resource.clone()).or_insert(Occupant {
            display: display.clone(),
            keys: None,
            service,
            offers: 0,
            told_bridge: false,
        });
        occupant.display = display.clone();
        let keys_new = keys.is_some() && occupant.keys != keys;
        let keys_gone = keys.is_none() && occupant.keys.is_some();
        occupant.keys = keys.clone();
        if service {
            return;
        }
        if new || changed_name {
            self.event(Event::ParticipantJoined { participant: ParticipantId(resource.clone()), display });
        }
        if let (true, Some(keys)) = (keys_new, keys) {
            self.e2ee.participant_joined(now, &resource, keys);
        }
        if keys_gone {
            self.e2ee.participant_disabled_e2ee(now, &resource);
            if self.settings.require_e2ee && self.p2p.as_ref().is_some_and(|p| p.with == resource) {
                self.terminate_p2p(now, "security-error", "end-to-end encryption was turned off");
                self.event(Event::ParticipantRefused {
                    participant: ParticipantId(resource.clone()),
                    reason: "this participant turned end-to-end encryption off, which this room requires",
                });
            }
        }
        if new || keys_new {
            self.maybe_offer(now);
        }
    }

    fn occupant_left(&mut self, now: Instant, resource: &str) {
        let Some(occupant) = self.occupants.remove(resource) else { return };
        if self.p2p.as_ref().is_some_and(|p| p.with == resource) {
            if let Some(p2p) = self.p2p.take() {
                self.event(Event::ClosePeer { peer: p2p.peer });
            }
        }
        if occupant.service {
            return;
        }
        if occupant.keys.is_some() {
            self.e2ee.participant_left(now, resource);
        }
        self.event(Event::ParticipantLeft { participant: ParticipantId(resource.to_owned()) });
        self.maybe_offer(now);
    }

    /// The people in the room (not services).
    fn people(&self) -> impl Iterator<Item = (&String, &Occupant)> {
        self.occupants.iter().filter(|(_, o)| !o.service)
    }

    /// Offers the peer session when exactly one other person is here.
    fn maybe_offer(&mut self, now: Instant) {
        if self.phase != Phase::InRoom {
            return;
        }
        let partner = self.p2p.as_ref().map(|p| p.with.clone());
        let people: Vec<(String, bool, u32)> =
            self.people().map(|(r, o)| (r.clone(), o.keys.is_some(), o.offers)).collect();
        if people.len() > 1 {
            // Everyone beyond the peer session's partner would need the bridge.
            let first = partner.unwrap_or_else(|| people[0].0.clone());
            let others: Vec<String> =
                self.people().filter(|(r, o)| **r != first && !o.told_bridge).map(|(r, _)| r.clone()).collect();
            for other in others {
                if let Some(o) = self.occupants.get_mut(&other) {
                    o.told_bridge = true;
                }
                self.event(Event::ParticipantRefused {
                    participant: ParticipantId(other),
                    reason: "meetings of three or more need Jitsi's videobridge, which this room does not support yet",
                });
            }
            return;
        }
        if self.p2p.is_some() || people.is_empty() {
            return;
        }
        let (with, e2ee, offers) = people[0].clone();
        if self.settings.require_e2ee && !e2ee {
            self.event(Event::ParticipantRefused {
                participant: ParticipantId(with),
                reason: "this participant does not use end-to-end encryption, which this room requires",
            });
            return;
        }
        if offers >= MAX_OFFERS {
            return;
        }
        if let Some(o) = self.occupants.get_mut(&with) {
            o.offers += 1;
        }
        let peer = PeerId(format!("p2p-{with}"));
        self.p2p = Some(P2p {
            with: with.clone(),
            sid: random_hex(6),
            peer: peer.clone(),
            we_initiate: true,
            answered: false,
        });
        self.reoffer_at = None;
        let _ = now;
        self.event(Event::OpenPeer {
            peer,
            direction: Direction::SendReceive,
            participant: Some(ParticipantId(with)),
            remote_offer: None,
        });
    }

    fn local_description(&mut self, now: Instant, peer: &PeerId, sdp: &str) {
        let Some(p2p) = self.p2p.clone().filter(|p| &p.peer == peer) else { return };
        let (action, initiator) = if p2p.we_initiate {
            ("session-initiate", self.muc_jid())
        } else {
            ("session-accept", self.occupant_jid(&p2p.with))
        };
        let contents = match jingle::sdp_to_contents(sdp, &self.endpoint, p2p.we_initiate) {
            Ok(c) => c,
            Err(e) => {
                self.terminate_p2p(now, "general-error", &format!("our description: {e}"));
                return;
            }
        };
        let mut j =
            X::new("jingle", ns::JINGLE).a("action", action).a("initiator", initiator).a("sid", p2p.sid.clone());
        if !p2p.we_initiate {
            j = j.a("responder", self.muc_jid());
        }
        let id = self.id();
        let to = self.occupant_jid(&p2p.with);
        self.send(X::new("iq", ns::CLIENT).a("type", "set").a("to", to).a("id", id).child(j.children(contents)));
        if let Some(p) = self.p2p.as_mut() {
            p.answered = true;
        }
    }

    fn local_candidate(&mut self, peer: &PeerId, candidate: Option<Candidate>) {
        let Some(p2p) = self.p2p.clone().filter(|p| &p.peer == peer) else { return };
        let Some(candidate) = candidate else { return };
        let Ok(c) = jingle::candidate_from_sdp(&candidate.candidate) else { return };
        let name = candidate.sdp_mid.unwrap_or_else(|| "0".into());
        let creator = if p2p.we_initiate { "initiator" } else { "responder" };
        let j = X::new("jingle", ns::JINGLE)
            .a("action", "transport-info")
            .a("initiator", if p2p.we_initiate { self.muc_jid() } else { self.occupant_jid(&p2p.with) })
            .a("sid", p2p.sid.clone())
            .child(
                X::new("content", ns::JINGLE)
                    .a("creator", creator)
                    .a("name", name)
                    .child(X::new("transport", ns::JINGLE_ICE_UDP).child(c)),
            );
        let id = self.id();
        let to = self.occupant_jid(&p2p.with);
        self.send(X::new("iq", ns::CLIENT).a("type", "set").a("to", to).a("id", id).child(j));
    }

    fn jingle(&mut self, now: Instant, from: &str, id: &str, j: &Element) {
        let action = attr(j, "action");
        let sid = attr(j, "sid").to_owned();
        let resource = from.strip_prefix(self.settings.room_jid.as_str()).and_then(|r| r.strip_prefix('/'));
        let from_focus =
            from.split('/').next().is_some_and(|bare| bare.starts_with("focus@") || bare == self.settings.focus);
        if from_focus || resource.is_none() {
            // The bridge session (mode 2) is not built: say no, stay in the chat.
            self.iq_error(from, id, "feature-not-implemented");
            return;
        }
        let resource = resource.unwrap_or_default().to_owned();
        let current = self.p2p.as_ref().filter(|p| p.with == resource && p.sid == sid).cloned();
        match (action, current) {
            ("session-initiate", None) => {
                let allowed = self.occupants.get(&resource).is_some_and(|o| !o.service)
                    && (!self.settings.require_e2ee || self.occupants.get(&resource).is_some_and(|o| o.keys.is_some()));
                if !allowed || self.p2p.is_some() {
                    self.iq_error(from, id, "not-acceptable");
                    return;
                }
                let sdp = match jingle::jingle_to_sdp(j, true) {
                    Ok(sdp) => sdp,
                    Err(e) => {
                        self.iq_error(from, id, "bad-request");
                        let _ = e;
                        return;
                    }
                };
                self.iq_result(from, id);
                let peer = PeerId(format!("p2p-{resource}"));
                self.p2p =
                    Some(P2p { with: resource.clone(), sid, peer: peer.clone(), we_initiate: false, answered: false });
                self.event(Event::OpenPeer {
                    peer,
                    direction: Direction::SendReceive,
                    participant: Some(ParticipantId(resource)),
                    remote_offer: Some(sdp),
                });
            }
            ("session-accept", Some(p2p)) if p2p.we_initiate => match jingle::jingle_to_sdp(j, false) {
                Ok(sdp) => {
                    self.iq_result(from, id);
                    self.event(Event::RemoteDescription { peer: p2p.peer, sdp });
                }
                Err(e) => {
                    self.iq_error(from, id, "bad-request");
                    self.terminate_p2p(now, "general-error", &format!("their answer: {e}"));
                }
            },
            ("transport-info", Some(p2p)) => {
                self.iq_result(from, id);
                for content in kids(j, "content", ns::JINGLE) {
                    let mid = attr(content, "name").to_owned();
                    let Some(t) = content.get_child("transport", ns::JINGLE_ICE_UDP) else { continue };
                    for c in kids(t, "candidate", ns::JINGLE_ICE_UDP) {
                        if let Ok(candidate) = candidate_to_sdp(c) {
                            self.event(Event::RemoteCandidate {
                                peer: p2p.peer.clone(),
                                candidate: Some(Candidate {
                                    candidate: format!("candidate:{candidate}"),
                                    sdp_mid: Some(mid.clone()),
                                    sdp_mline_index: None,
                                }),
                            });
                        }
                    }
                }
            }
            ("session-terminate", Some(p2p)) => {
                self.iq_result(from, id);
                self.p2p = None;
                self.event(Event::ClosePeer { peer: p2p.peer });
                self.reoffer_at = Some(now + REOFFER_DELAY);
            }
            ("source-add" | "source-remove" | "content-modify" | "session-info" | "description-info", Some(_)) => {
                // Source changes within the one camera and microphone: nothing to renegotiate.
                self.iq_result(from, id);
            }
            _ => self.iq_error(from, id, "item-not-found"),
        }
    }

    /// Ends our peer session (telling the other side) and offers a new one later.
    fn terminate_p2p(&mut self, now: Instant, reason: &str, text: &str) {
        let Some(p2p) = self.p2p.take() else { return };
        let j = X::new("jingle", ns::JINGLE).a("action", "session-terminate").a("sid", p2p.sid.clone()).child(
            X::new("reason", ns::JINGLE)
                .child(X::new(reason, ns::JINGLE))
                .child(X::new("text", ns::JINGLE).text(text.chars().take(200).collect::<String>())),
        );
        let id = self.id();
        let to = self.occupant_jid(&p2p.with);
        self.send(X::new("iq", ns::CLIENT).a("type", "set").a("to", to).a("id", id).child(j));
        self.event(Event::ClosePeer { peer: p2p.peer });
        self.reoffer_at = Some(now + REOFFER_DELAY);
    }

    fn message(&mut self, now: Instant, el: &Element) {
        let from = attr(el, "from");
        let Some(resource) = from.strip_prefix(self.settings.room_jid.as_str()).and_then(|r| r.strip_prefix('/'))
        else {
            return;
        };
        if attr(el, "type") == "groupchat" || resource == self.endpoint {
            return;
        }
        let resource = resource.to_owned();
        let Some(json) = child_text(el, "json-message", ns::JITMEET) else { return };
        if self.occupants.get(&resource).is_none_or(|o| o.keys.is_none()) {
            return;
        }
        // A bad key message ends nothing: that participant's frames stay unopened until a good one.
        if let Err(e) = self.e2ee.handle_message(now, &resource, &json) {
            self.event(Event::Problem {
                participant: Some(ParticipantId(resource)),
                what: format!("key exchange: {e}"),
            });
        }
    }

    fn verify(&mut self, now: Instant, participant: &str, start: bool, confirm: Option<bool>) {
        let result = if start {
            self.e2ee.start_sas(now, participant)
        } else if let Some(matches) = confirm {
            self.e2ee.confirm_sas(now, participant, matches)
        } else {
            Ok(())
        };
        if let Err(e) = result {
            self.event(Event::Verification {
                participant: ParticipantId(participant.to_owned()),
                state: Verification::Failed { reason: e.to_string() },
            });
        }
    }

    /// Moves the key exchange's outputs into ours.
    fn drain_e2ee(&mut self) {
        while let Some(problem) = self.e2ee.poll_problem() {
            self.event(Event::Problem { participant: None, what: format!("key exchange: {problem}") });
        }
        while let Some(out) = self.e2ee.poll_output() {
            match out {
                E2eeOutput::Send { to, json } => {
                    let msg = X::new("message", ns::CLIENT)
                        .a("to", self.occupant_jid(&to))
                        .a("type", "chat")
                        .child(X::new("json-message", ns::JITMEET).text(json));
                    self.send(msg);
                }
                E2eeOutput::OwnKey { index, material } => self.event(Event::LocalKey { key_index: index, material }),
                E2eeOutput::ParticipantKey { participant, index, material } => self.event(Event::ParticipantKey {
                    participant: ParticipantId(participant),
                    key_index: index,
                    material,
                }),
                E2eeOutput::Sas { participant, event } => {
                    let state = match event {
                        SasEvent::Code(code) => Verification::Code {
                            emoji: code.emoji.iter().map(|e| format!("{} {}", e.symbol, e.name)).collect(),
                            decimals: code.decimals,
                        },
                        SasEvent::Verified => Verification::Verified,
                        SasEvent::Mismatch => Verification::Mismatch,
                        SasEvent::Failed(failure) => Verification::Failed { reason: format!("{failure:?}") },
                        _ => continue,
                    };
                    self.event(Event::Verification { participant: ParticipantId(participant), state });
                }
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        self.e2ee.handle_timeout(now);
        if let Some((at, what)) = self.deadline {
            if now >= at {
                self.deadline = None;
                self.fail(ConnectorError::Timeout { what }, true);
                return;
            }
        }
        if let Some((_, at)) = &self.ping {
            if now >= *at {
                self.fail(ConnectorError::ServerGone { reason: "the server stopped answering pings".into() }, true);
                return;
            }
        }
        if self.next_ping.is_some_and(|t| now >= t) && self.phase == Phase::InRoom && self.ping.is_none() {
            let id = self.id();
            self.send(
                X::new("iq", ns::CLIENT)
                    .a("type", "get")
                    .a("to", self.settings.domain.clone())
                    .a("id", id.clone())
                    .child(X::new("ping", ns::PING)),
            );
            self.ping = Some((id, now + REQUEST_TIMEOUT));
            self.next_ping = None;
        }
        if self.focus_retry_at.is_some_and(|t| now >= t) {
            self.focus_retry_at = None;
            if let Phase::Focus { attempts, .. } = self.phase {
                self.ask_focus(now, attempts + 1);
            }
        }
        if self.reoffer_at.is_some_and(|t| now >= t) {
            self.reoffer_at = None;
            self.maybe_offer(now);
        }
        if self.leave_deadline.is_some_and(|t| now >= t) {
            self.leave_deadline = None;
            self.outputs.push_back(Output::Transmit(Transmit::Close));
            self.phase = Phase::Done;
            self.set_state(ConnectorState::Left);
        }
    }

    fn leave(&mut self, now: Instant) {
        if self.state.is_final() || matches!(self.phase, Phase::Leaving | Phase::Done) {
            return;
        }
        if self.phase == Phase::Transport {
            self.phase = Phase::Done;
            self.set_state(ConnectorState::Left);
            return;
        }
        if let Some(p2p) = self.p2p.take() {
            let j = X::new("jingle", ns::JINGLE)
                .a("action", "session-terminate")
                .a("sid", p2p.sid.clone())
                .child(X::new("reason", ns::JINGLE).child(X::new("success", ns::JINGLE)));
            let id = self.id();
            let to = self.occupant_jid(&p2p.with);
            self.send(X::new("iq", ns::CLIENT).a("type", "set").a("to", to).a("id", id).child(j));
            self.event(Event::ClosePeer { peer: p2p.peer });
        }
        if matches!(self.phase, Phase::InRoom | Phase::Joining) {
            self.send(X::new("presence", ns::CLIENT).a("to", self.muc_jid()).a("type", "unavailable"));
        }
        self.send(X::new("close", ns::FRAMING));
        self.phase = Phase::Leaving;
        self.deadline = None;
        self.ping = None;
        self.next_ping = None;
        self.reoffer_at = None;
        self.focus_retry_at = None;
        self.leave_deadline = Some(now + LEAVE_TIMEOUT);
        self.set_state(ConnectorState::Leaving);
    }
}

/// Identity keys are unpadded base64 of 32 bytes: 43 characters.
fn valid_key(k: &str) -> bool {
    let k = k.trim();
    k.len() == 43 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}
