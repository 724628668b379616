//! The room's state machine, as pure logic in the sans-I/O style of str0m's
//! `Rtc`: inputs go in with the current time (`handle_input(now, input)`),
//! what to do comes out of [`Supervisor::poll_output`], and timers are asked
//! for with [`Output::Timeout`] and delivered with [`Supervisor::handle_timeout`].
//!
//! States: idle → joining → in meeting → leaving → idle. A failed join or a
//! lost meeting that retrying may fix (the server is down or unreachable,
//! the WebSocket dropped, ICE failed, the network is not up yet after boot)
//! is `reconnecting`: the room tries again by itself after a back-off of
//! 1 s, doubling per failure in a row up to 60 s, and back to 1 s only once
//! a meeting has stayed up for a minute ([`GOOD_MEETING`]). It keeps trying
//! until it is asked to leave. A meeting whose media connection is
//! interrupted but still held ([`Input::ConnectionInterrupted`]) is shown as
//! `reconnecting` too, with no try counted. A failure retrying cannot fix (no such room,
//! a link no connector takes) is `error` and is not retried. The status
//! carries the failures in a row, the time to the next try and the last
//! failure's whole cause, for the page, the room screen and the logs.
//!
//! The supervisor is the one place that retries: connectors and the meeting
//! report a failure as retryable ([`Input::JoinFailed`],
//! [`Input::Disconnected`]) or not ([`Input::GaveUp`]) and never sleep on
//! their own. It never sees the meeting key: the meeting reports the key's
//! check digits ([`Input::Encryption`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use cloakroom_meeting::MeetingLink;
use serde::Serialize;

/// How long a join may take before it counts as failed.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long leaving may take before the room is idle anyway.
pub const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);
/// First retry delay; it doubles per failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A meeting that lasted this long was a good one: the next failure starts
/// the back-off from the beginning. (Joining alone is not enough: a server
/// that accepts the join and then refuses the media would otherwise be
/// asked again every second.)
pub const GOOD_MEETING: Duration = Duration::from_secs(60);

/// Events for the supervisor, from the web page, the mute button, the
/// connector and the media pipelines.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Input {
    /// Join this meeting (web page or scanned link).
    Join(MeetingLink),
    /// Leave the meeting, or stop retrying.
    Leave,
    /// Mute or unmute the microphone.
    SetMute(bool),
    /// The mute button was pressed.
    ToggleMute,
    /// The connector is in the room.
    Joined,
    /// The connector could not join.
    JoinFailed(String),
    /// The meeting was lost (server gone, ICE failed).
    Disconnected(String),
    /// The meeting's media connection is interrupted (ICE disconnected:
    /// the link is down or the server unreachable) while the meeting is
    /// still held, waiting to see whether it comes back: shown as
    /// `reconnecting` with this cause, not left.
    ConnectionInterrupted(String),
    /// The media connection is back after [`Input::ConnectionInterrupted`].
    ConnectionRestored,
    /// Joining failed in a way retrying cannot fix (the room does not
    /// exist): shown as an error, not retried.
    GaveUp(String),
    /// Whether the meeting's media is sealed, with the key's check digits.
    Encryption { verification: Option<String> },
    /// The connector has left.
    Left,
    /// Someone joined the meeting.
    ParticipantJoined { id: String, display: String },
    /// Someone left the meeting.
    ParticipantLeft { id: String },
    /// Verifying who `id` is progressed (from the meeting).
    Verification { id: String, verification: ParticipantVerification },
    /// The room exchanges no media with `id`, and why (from the meeting).
    MediaRefused { id: String, reason: String },
    /// Whether `id`'s frames open, in the words of their tile (from the meeting).
    ParticipantEncryption { id: String, state: String },
    /// People in the room act on verifying `id` (page or phone): `start`
    /// it, or say whether the codes matched.
    Verify { id: String, start: bool, confirm: Option<bool> },
    /// Latest media numbers.
    Media(MediaStats),
    /// Latest device report (as `cloakroom devices --json`).
    Devices(serde_json::Value),
}

/// What the daemon should do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Output {
    /// Start joining this meeting.
    StartJoin(MeetingLink),
    /// Leave the meeting (or abandon a join in progress).
    Leave,
    /// Mute (`true`) or unmute the microphone.
    SetMute(bool),
    /// Pass people's verification step for participant `id` to the meeting.
    Verify { id: String, start: bool, confirm: Option<bool> },
    /// Call [`Supervisor::handle_timeout`] at this instant.
    Timeout(Instant),
}

/// The state names shown in [`Status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomState {
    Idle,
    Joining,
    InMeeting,
    Leaving,
    /// A retryable failure: waiting for the next try
    /// ([`Status::retry_in_ms`]) or trying again (`retry_in_ms` empty).
    Reconnecting,
    /// A failure retrying cannot fix: shown, not retried.
    Error,
}

impl RoomState {
    /// The state in words, as the page, the room screen and systemd's
    /// `STATUS=` show it.
    pub fn words(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Joining => "joining",
            Self::InMeeting => "in meeting",
            Self::Leaving => "leaving",
            Self::Reconnecting => "reconnecting",
            Self::Error => "error",
        }
    }
}

/// A participant in the meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Participant {
    pub id: String,
    pub display: String,
    /// Verifying who they are (Jitsi's SAS), once someone started it.
    pub verification: Option<ParticipantVerification>,
    /// Why the room exchanges no media with them (their E2EE is off, the
    /// meeting needs a videobridge); `None` while it does.
    pub media_refused: Option<String>,
    /// Whether their frames open, as their tile on the room screen says
    /// ("encrypted", "NOT encrypted", "cannot decrypt (wrong key?)");
    /// `None` before any of their frames came.
    pub encryption: Option<String>,
}

/// Where verifying a participant is, for the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantVerification {
    /// `code` (compare it, then confirm or reject), `verified`, `mismatch` or `failed`.
    pub state: &'static str,
    /// The code: emoji (with their names) and three numbers; empty after the code stage.
    pub emoji: Vec<String>,
    pub decimals: Vec<u16>,
    /// Why it failed.
    pub reason: Option<String>,
}

/// Media numbers, from the pipelines and WebRTC stats.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MediaStats {
    pub send_bitrate_kbps: u32,
    pub receive_bitrate_kbps: u32,
    pub packet_loss_percent: f32,
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Frames that did not open (wrong or missing key), all participants.
    pub decrypt_failures: u64,
}

/// Encryption state of the meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Encryption {
    pub encrypted: bool,
    /// Digit groups derived from the key, as the meeting reported them.
    pub verification: Option<String>,
}

/// Everything the page, the room screen and `/metrics` show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub state: RoomState,
    /// The meeting, with its key redacted.
    pub meeting: Option<String>,
    pub muted: bool,
    pub participants: Vec<Participant>,
    pub devices: serde_json::Value,
    pub encryption: Encryption,
    pub media: MediaStats,
    /// Why the last join failed or the meeting was lost: the whole cause.
    pub error: Option<String>,
    /// Failed attempts in a row (while reconnecting, the try under way or
    /// coming next is number `attempts + 1`).
    pub attempts: u32,
    /// Milliseconds until the next try, while reconnecting and waiting.
    pub retry_in_ms: Option<u64>,
    /// Which meeting this is: a new number for each join asked for, kept
    /// through its retries; `None` when idle.
    pub meeting_id: Option<u64>,
}

impl Status {
    /// What the room screen says when the room is not in the meeting it
    /// was asked for: "Reconnecting: try N in S s" (or "Reconnecting: try
    /// N…" while it is under way) over the last failure's cause, or "Not
    /// joined" over a cause retrying cannot fix. `None` otherwise.
    pub fn problem(&self) -> Option<String> {
        let cause = self.error.as_deref().unwrap_or("no cause given");
        let next = self.attempts.saturating_add(1);
        match (self.state, self.retry_in_ms) {
            (RoomState::Reconnecting, Some(ms)) => {
                Some(format!("Reconnecting: try {next} in {} s\n{cause}", ms.div_ceil(1000)))
            }
            // A held meeting whose connection is interrupted has no tries to count.
            (RoomState::Reconnecting, None) if self.attempts == 0 => Some(format!("Reconnecting…\n{cause}")),
            (RoomState::Reconnecting, None) => Some(format!("Reconnecting: try {next}…\n{cause}")),
            (RoomState::Error, _) => Some(format!("Not joined (not retried)\n{cause}")),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum State {
    Idle,
    Joining {
        deadline: Instant,
    },
    InMeeting {
        since: Instant,
    },
    Leaving {
        deadline: Instant,
    },
    /// `retry_at: None`: not retried (the admin may join again).
    Error {
        retry_at: Option<Instant>,
    },
}

/// The room's state machine.
#[derive(Debug)]
pub struct Supervisor {
    state: State,
    link: Option<MeetingLink>,
    verification: Option<String>,
    muted: bool,
    participants: Vec<Participant>,
    devices: serde_json::Value,
    media: MediaStats,
    error: Option<String>,
    /// Why the meeting's media connection is interrupted, while it is.
    interrupted: Option<String>,
    attempts: u32,
    /// Joins asked for since start: the current meeting's number.
    meetings: u64,
    now: Option<Instant>,
    outputs: VecDeque<Output>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// An idle room, microphone on.
    pub fn new() -> Self {
        Self {
            state: State::Idle,
            link: None,
            verification: None,
            muted: false,
            participants: Vec::new(),
            devices: serde_json::Value::Null,
            media: MediaStats::default(),
            error: None,
            interrupted: None,
            attempts: 0,
            meetings: 0,
            now: None,
            outputs: VecDeque::new(),
        }
    }

    /// Feeds one event.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.now = Some(now);
        match input {
            Input::Join(link) => self.join(now, link),
            Input::Leave => self.leave(now),
            Input::SetMute(m) => self.set_mute(m),
            Input::ToggleMute => self.set_mute(!self.muted),
            Input::Joined => {
                if matches!(self.state, State::Joining { .. }) {
                    self.state = State::InMeeting { since: now };
                    self.error = None;
                    if self.attempts > 0 {
                        // Back in: the back-off starts over once this meeting has lasted.
                        self.outputs.push_back(Output::Timeout(now + GOOD_MEETING));
                    }
                }
            }
            Input::JoinFailed(reason) => {
                if matches!(self.state, State::Joining { .. }) {
                    self.fail(now, reason);
                }
            }
            Input::Disconnected(reason) => {
                if matches!(self.state, State::InMeeting { .. } | State::Joining { .. }) {
                    self.fail(now, reason);
                }
            }
            Input::GaveUp(reason) => {
                if matches!(self.state, State::InMeeting { .. } | State::Joining { .. }) {
                    self.attempts = self.attempts.saturating_add(1);
                    self.error = Some(reason);
                    self.participants.clear();
                    self.state = State::Error { retry_at: None };
                }
            }
            Input::ConnectionInterrupted(reason) => {
                if matches!(self.state, State::InMeeting { .. }) {
                    self.interrupted = Some(reason);
                }
            }
            Input::ConnectionRestored => self.interrupted = None,
            Input::Encryption { verification } => {
                if matches!(self.state, State::InMeeting { .. } | State::Joining { .. }) {
                    self.verification = verification;
                }
            }
            Input::Left => {
                if matches!(self.state, State::Leaving { .. }) {
                    self.become_idle();
                }
            }
            Input::ParticipantJoined { id, display } => {
                if matches!(self.state, State::InMeeting { .. } | State::Joining { .. }) {
                    match self.participants.iter_mut().find(|p| p.id == id) {
                        Some(p) => p.display = display,
                        None => self.participants.push(Participant {
                            id,
                            display,
                            verification: None,
                            media_refused: None,
                            encryption: None,
                        }),
                    }
                }
            }
            Input::ParticipantLeft { id } => self.participants.retain(|p| p.id != id),
            Input::Verification { id, verification } => {
                if let Some(p) = self.participants.iter_mut().find(|p| p.id == id) {
                    p.verification = Some(verification);
                }
            }
            Input::MediaRefused { id, reason } => {
                if let Some(p) = self.participants.iter_mut().find(|p| p.id == id) {
                    p.media_refused = Some(reason);
                }
            }
            Input::ParticipantEncryption { id, state } => {
                if let Some(p) = self.participants.iter_mut().find(|p| p.id == id) {
                    p.encryption = Some(state);
                }
            }
            Input::Verify { id, start, confirm } => {
                // Only for someone in the meeting the room is in.
                if matches!(self.state, State::InMeeting { .. }) && self.participants.iter().any(|p| p.id == id) {
                    self.outputs.push_back(Output::Verify { id, start, confirm });
                }
            }
            Input::Media(stats) => self.media = stats,
            Input::Devices(devices) => self.devices = devices,
        }
    }

    /// Delivers a timer asked for with [`Output::Timeout`] (early or late calls are fine).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        match self.state {
            State::Joining { deadline } if now >= deadline => {
                self.outputs.push_back(Output::Leave);
                self.fail(now, format!("no answer within {} s", JOIN_TIMEOUT.as_secs()));
            }
            State::InMeeting { since } if now.saturating_duration_since(since) >= GOOD_MEETING => self.attempts = 0,
            State::Leaving { deadline } if now >= deadline => self.become_idle(),
            State::Error { retry_at: Some(retry_at) } if now >= retry_at => {
                if let Some(link) = self.link.clone() {
                    self.start_join(now, link);
                } else {
                    self.become_idle();
                }
            }
            _ => {}
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The room as the page shows it.
    pub fn status(&self) -> Status {
        let state = match self.state {
            State::Idle => RoomState::Idle,
            // Trying again after a failure is still reconnecting, not a first join.
            State::Joining { .. } if self.attempts > 0 => RoomState::Reconnecting,
            State::Joining { .. } => RoomState::Joining,
            State::InMeeting { .. } if self.interrupted.is_some() => RoomState::Reconnecting,
            State::InMeeting { .. } => RoomState::InMeeting,
            State::Leaving { .. } => RoomState::Leaving,
            State::Error { retry_at: Some(_) } => RoomState::Reconnecting,
            State::Error { retry_at: None } => RoomState::Error,
        };
        let retry_in_ms = match (&self.state, self.now) {
            (State::Error { retry_at: Some(retry_at) }, Some(now)) => {
                Some(u64::try_from(retry_at.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX))
            }
            _ => None,
        };
        // An interrupted meeting is still the same encrypted meeting.
        let in_meeting = matches!(self.state, State::InMeeting { .. });
        Status {
            state,
            meeting: self.link.as_ref().map(ToString::to_string),
            muted: self.muted,
            participants: self.participants.clone(),
            devices: self.devices.clone(),
            encryption: Encryption {
                encrypted: in_meeting && self.verification.is_some(),
                verification: self.verification.clone(),
            },
            media: self.media.clone(),
            error: match (&self.state, &self.interrupted) {
                (State::InMeeting { .. }, Some(why)) => Some(why.clone()),
                _ => self.error.clone(),
            },
            attempts: self.attempts,
            retry_in_ms,
            meeting_id: (!matches!(self.state, State::Idle)).then_some(self.meetings),
        }
    }

    fn join(&mut self, now: Instant, link: MeetingLink) {
        match self.state {
            State::Idle | State::Error { .. } => {
                self.attempts = 0;
                self.error = None;
                self.meetings += 1;
                self.start_join(now, link);
            }
            // Switching meetings: leave first, the caller joins again once idle.
            State::Joining { .. } | State::InMeeting { .. } | State::Leaving { .. } => {
                self.error = Some("already in a meeting: leave first".to_owned());
            }
        }
    }

    fn start_join(&mut self, now: Instant, link: MeetingLink) {
        self.verification = None;
        self.interrupted = None;
        self.link = Some(link.clone());
        let deadline = now + JOIN_TIMEOUT;
        self.state = State::Joining { deadline };
        self.outputs.push_back(Output::StartJoin(link));
        self.outputs.push_back(Output::SetMute(self.muted));
        self.outputs.push_back(Output::Timeout(deadline));
    }

    fn leave(&mut self, now: Instant) {
        match self.state {
            State::Joining { .. } | State::InMeeting { .. } => {
                let deadline = now + LEAVE_TIMEOUT;
                self.state = State::Leaving { deadline };
                self.outputs.push_back(Output::Leave);
                self.outputs.push_back(Output::Timeout(deadline));
            }
            State::Error { .. } => self.become_idle(),
            State::Idle | State::Leaving { .. } => {}
        }
    }

    fn set_mute(&mut self, muted: bool) {
        if self.muted != muted {
            self.muted = muted;
            self.outputs.push_back(Output::SetMute(muted));
        }
    }

    fn fail(&mut self, now: Instant, reason: String) {
        if let State::InMeeting { since } = self.state {
            if now.saturating_duration_since(since) >= GOOD_MEETING {
                self.attempts = 0;
            }
        }
        self.attempts = self.attempts.saturating_add(1);
        self.interrupted = None;
        let retry_at = now + backoff(self.attempts);
        self.error = Some(reason);
        self.participants.clear();
        self.state = State::Error { retry_at: Some(retry_at) };
        self.outputs.push_back(Output::Timeout(retry_at));
    }

    /// Idle after a leave (asked for, or given up on a failing meeting):
    /// nothing is failing any more, so the last failure goes too.
    fn become_idle(&mut self) {
        self.state = State::Idle;
        self.error = None;
        self.interrupted = None;
        self.attempts = 0;
        self.link = None;
        self.verification = None;
        self.participants.clear();
        self.media = MediaStats::default();
    }
}

/// Retry delay after `attempts` failures in a row: 1 s, 2 s, 4 s … 60 s.
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(6);
    (FIRST_BACKOFF * (1u32 << exp)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "janus+wss://sfu.example:8989/janus?room=1234#e2ee=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn link() -> MeetingLink {
        MeetingLink::parse(LINK).expect("valid link")
    }

    fn drain(s: &mut Supervisor) -> Vec<Output> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    #[test]
    fn verification_reaches_the_status_and_people_s_steps_reach_the_meeting() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::Join(link()));
        // Not in the meeting yet: a step for anyone goes nowhere.
        s.handle_input(t0, Input::Verify { id: "7".into(), start: true, confirm: None });
        assert!(!drain(&mut s).iter().any(|o| matches!(o, Output::Verify { .. })));
        s.handle_input(t0, Input::Joined);
        s.handle_input(t0, Input::ParticipantJoined { id: "7".into(), display: "Ana".into() });
        s.handle_input(t0, Input::ParticipantJoined { id: "8".into(), display: "Plain".into() });
        drain(&mut s);
        s.handle_input(t0, Input::Verify { id: "7".into(), start: true, confirm: None });
        s.handle_input(t0, Input::Verify { id: "nobody".into(), start: true, confirm: None });
        let out = drain(&mut s);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(&out[0], Output::Verify { id, start: true, confirm: None } if id == "7"));
        let code = ParticipantVerification {
            state: "code",
            emoji: vec!["🐶 Dog".into()],
            decimals: vec![3671, 7116, 1586],
            reason: None,
        };
        s.handle_input(t0, Input::Verification { id: "7".into(), verification: code.clone() });
        s.handle_input(t0, Input::MediaRefused { id: "8".into(), reason: "no E2EE".into() });
        s.handle_input(
            t0,
            Input::ParticipantEncryption { id: "7".into(), state: "cannot decrypt (wrong key?)".into() },
        );
        let st = s.status();
        assert_eq!(st.participants[0].encryption.as_deref(), Some("cannot decrypt (wrong key?)"));
        assert_eq!(st.participants[0].verification, Some(code));
        assert_eq!(st.participants[1].media_refused.as_deref(), Some("no E2EE"));
        let json = serde_json::to_string(&st).expect("serialises");
        assert!(
            json.contains("\"decimals\":[3671,7116,1586]") && json.contains("\"media_refused\":\"no E2EE\""),
            "{json}"
        );
        s.handle_input(t0, Input::Verify { id: "7".into(), start: false, confirm: Some(true) });
        assert!(matches!(drain(&mut s).as_slice(), [Output::Verify { confirm: Some(true), .. }]));
    }

    #[test]
    fn join_meet_leave() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        assert_eq!(s.status().state, RoomState::Idle);
        s.handle_input(t0, Input::Join(link()));
        let out = drain(&mut s);
        assert!(matches!(&out[0], Output::StartJoin(l) if l.server_url() == "wss://sfu.example:8989/janus"));
        assert!(matches!(out[1], Output::SetMute(false)));
        assert!(matches!(out[2], Output::Timeout(t) if t == t0 + JOIN_TIMEOUT));
        assert_eq!(s.status().state, RoomState::Joining);
        assert!(!s.status().encryption.encrypted, "not encrypted before the meeting is up");

        s.handle_input(t0 + Duration::from_secs(2), Input::Joined);
        s.handle_input(t0, Input::Encryption { verification: Some("000 111 222 333 444".into()) });
        s.handle_input(t0, Input::ParticipantJoined { id: "7".into(), display: "Ana".into() });
        s.handle_input(t0, Input::ParticipantJoined { id: "7".into(), display: "Ana B.".into() });
        let st = s.status();
        assert_eq!(st.state, RoomState::InMeeting);
        assert!(st.encryption.encrypted);
        assert_eq!(st.participants.len(), 1);
        assert_eq!(st.participants[0].display, "Ana B.", "a new name replaces the old");
        // The join deadline passing while in the meeting changes nothing.
        s.handle_timeout(t0 + JOIN_TIMEOUT);
        assert_eq!(s.status().state, RoomState::InMeeting);

        let json = serde_json::to_string(&st).expect("serialises");
        assert!(json.contains("\"state\":\"in_meeting\""), "{json}");
        assert!(json.contains("[redacted]") && !json.contains("AAECAwQF"), "key never in status: {json}");

        s.handle_input(t0 + Duration::from_secs(60), Input::Leave);
        assert!(matches!(drain(&mut s)[0], Output::Leave));
        assert_eq!(s.status().state, RoomState::Leaving);
        s.handle_input(t0 + Duration::from_secs(61), Input::Left);
        let st = s.status();
        assert_eq!(st.state, RoomState::Idle);
        assert!(st.participants.is_empty() && st.meeting.is_none() && st.encryption.verification.is_none());
    }

    #[test]
    fn failures_retry_with_backoff_until_left() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::Join(link()));
        drain(&mut s);
        let mut now = t0;
        for attempt in 1..=8u32 {
            s.handle_input(now, Input::JoinFailed("connection refused".into()));
            let out = drain(&mut s);
            let retry_at = match out.as_slice() {
                [Output::Timeout(t)] => *t,
                other => panic!("attempt {attempt}: {other:?}"),
            };
            assert_eq!(retry_at - now, backoff(attempt));
            let st = s.status();
            assert_eq!((st.state, st.attempts), (RoomState::Reconnecting, attempt));
            assert_eq!(st.error.as_deref(), Some("connection refused"));
            // Too early: nothing happens.
            s.handle_timeout(retry_at - Duration::from_millis(1));
            assert!(drain(&mut s).is_empty());
            now = retry_at;
            s.handle_timeout(now);
            assert!(matches!(drain(&mut s)[0], Output::StartJoin(_)));
            // Trying again is still reconnecting, with no next time yet.
            let st = s.status();
            assert_eq!((st.state, st.retry_in_ms, st.attempts), (RoomState::Reconnecting, None, attempt));
        }
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(8), MAX_BACKOFF);
        s.handle_input(now, Input::JoinFailed("again".into()));
        s.handle_input(now, Input::Leave);
        assert_eq!(s.status().state, RoomState::Idle);
        // Idle by the admin's choice: the failure no longer shows.
        assert_eq!((s.status().error, s.status().attempts), (None, 0));
        drain(&mut s);
        s.handle_timeout(now + MAX_BACKOFF);
        assert!(drain(&mut s).is_empty(), "no retry after leaving");
    }

    #[test]
    fn join_timeout_and_lost_meeting_become_errors() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::Join(link()));
        drain(&mut s);
        s.handle_timeout(t0 + JOIN_TIMEOUT);
        let out = drain(&mut s);
        assert!(matches!(out[0], Output::Leave));
        assert_eq!(s.status().state, RoomState::Reconnecting);
        assert_eq!(s.status().retry_in_ms, Some(1000));
        s.handle_timeout(t0 + JOIN_TIMEOUT + Duration::from_secs(1));
        s.handle_input(t0 + Duration::from_secs(40), Input::Joined);
        assert_eq!(s.status().attempts, 1, "joining alone does not reset the back-off");
        s.handle_input(t0 + Duration::from_secs(50), Input::Disconnected("ICE failed".into()));
        assert_eq!(s.status().state, RoomState::Reconnecting);
        assert_eq!(s.status().error.as_deref(), Some("ICE failed"));
        assert_eq!((s.status().attempts, s.status().retry_in_ms), (2, Some(2000)), "lost within a minute: longer wait");
        // A good minute in the meeting: the next failure starts over at 1 s.
        s.handle_timeout(t0 + Duration::from_secs(52));
        s.handle_input(t0 + Duration::from_secs(53), Input::Joined);
        s.handle_input(t0 + Duration::from_secs(53) + GOOD_MEETING, Input::Disconnected("server gone".into()));
        assert_eq!((s.status().attempts, s.status().retry_in_ms), (1, Some(1000)));
    }

    #[test]
    fn leave_timeout_goes_idle_and_second_join_is_refused() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::Join(link()));
        s.handle_input(t0, Input::Joined);
        s.handle_input(t0, Input::Join(link()));
        assert_eq!(s.status().state, RoomState::InMeeting);
        assert!(s.status().error.is_some());
        s.handle_input(t0, Input::Leave);
        s.handle_timeout(t0 + LEAVE_TIMEOUT);
        assert_eq!(s.status().state, RoomState::Idle);
    }

    #[test]
    fn mute_is_kept_and_toggled() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::ToggleMute);
        assert!(matches!(drain(&mut s).as_slice(), [Output::SetMute(true)]));
        s.handle_input(t0, Input::SetMute(true));
        assert!(drain(&mut s).is_empty(), "no output when nothing changes");
        s.handle_input(t0, Input::Join(link()));
        let out = drain(&mut s);
        assert!(out.iter().any(|o| matches!(o, Output::SetMute(true))), "a new meeting starts muted: {out:?}");
        assert!(s.status().muted);
    }

    #[test]
    fn a_failure_retrying_cannot_fix_is_shown_and_not_retried() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::Join(link()));
        drain(&mut s);
        s.handle_input(t0, Input::GaveUp("no such room: 1234".into()));
        assert!(drain(&mut s).is_empty(), "no retry timer");
        let st = s.status();
        assert_eq!(
            (st.state, st.retry_in_ms, st.error.as_deref()),
            (RoomState::Error, None, Some("no such room: 1234"))
        );
        s.handle_timeout(t0 + MAX_BACKOFF * 2);
        assert!(drain(&mut s).is_empty());
        // The admin can join again (or leave) from there.
        s.handle_input(t0 + MAX_BACKOFF * 2, Input::Join(link()));
        assert!(matches!(drain(&mut s)[0], Output::StartJoin(_)));
    }

    /// Feeds a retryable failure and returns the retry timer it asked for.
    fn fail_at(s: &mut Supervisor, now: Instant, input: Input) -> Instant {
        s.handle_input(now, input);
        match drain(s).as_slice() {
            [Output::Timeout(t)] => *t,
            other => panic!("one retry timer expected: {other:?}"),
        }
    }

    /// Delivers the retry timer and checks a new join starts.
    fn retry_at(s: &mut Supervisor, at: Instant) {
        s.handle_timeout(at);
        let out = drain(s);
        assert!(matches!(out.first(), Some(Output::StartJoin(_))), "{out:?}");
    }

    #[test]
    fn backoff_is_one_second_doubling_to_sixty() {
        let secs: Vec<u64> = (1..=10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(backoff(0), FIRST_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_lost_meeting_reconnects_in_virtual_time_and_a_good_minute_resets_the_backoff() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::Join(link()));
        drain(&mut s);
        s.handle_input(t0, Input::Joined);
        assert!(drain(&mut s).is_empty(), "a first join that works asks for no timer");

        // The server is killed: every try fails until it is back. The waits
        // between tries are 1, 2, 4, 8, 16, 32, 60, 60 s, each measured from
        // the failure, and the status says so with the whole cause.
        let mut now = t0 + Duration::from_secs(5);
        let mut waits = Vec::new();
        for attempt in 1..=8u32 {
            let cause = format!("server gone: connection refused (try {attempt})");
            let input =
                if attempt == 1 { Input::Disconnected(cause.clone()) } else { Input::JoinFailed(cause.clone()) };
            let at = fail_at(&mut s, now, input);
            waits.push((at - now).as_secs());
            let st = s.status();
            assert_eq!(
                (st.state, st.attempts, st.retry_in_ms, st.error.as_deref()),
                (RoomState::Reconnecting, attempt, Some((at - now).as_millis() as u64), Some(cause.as_str()))
            );
            let json = serde_json::to_value(&st).expect("serialises");
            assert_eq!(json["state"], "reconnecting");
            assert_eq!(st.state.words(), "reconnecting");
            // Half-way, nothing is tried yet and the time left counts down.
            let half = (at - now) / 2;
            s.handle_timeout(now + half);
            assert!(drain(&mut s).is_empty());
            assert_eq!(s.status().retry_in_ms, Some((at - now - half).as_millis() as u64));
            now = at;
            retry_at(&mut s, now);
            now += Duration::from_millis(300); // a refused connection fails at once
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);

        // The server is back: joined, the cause is gone, the failures in a
        // row stay counted until the meeting has lasted a minute.
        s.handle_input(now, Input::Joined);
        let good = match drain(&mut s).as_slice() {
            [Output::Timeout(t)] => *t,
            other => panic!("the good-minute timer: {other:?}"),
        };
        assert_eq!(good - now, GOOD_MEETING);
        let st = s.status();
        assert_eq!((st.state, st.attempts, st.error, st.retry_in_ms), (RoomState::InMeeting, 8, None, None));
        s.handle_timeout(good - Duration::from_secs(1));
        assert_eq!(s.status().attempts, 8, "59 s is not a good minute yet");
        s.handle_timeout(good);
        assert_eq!(s.status().attempts, 0, "a good minute: the back-off starts over");
        assert_eq!(
            fail_at(&mut s, good + Duration::from_secs(1), Input::Disconnected("ICE failed".into())) - good,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn a_meeting_lost_within_a_minute_keeps_backing_off() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::Join(link()));
        drain(&mut s);
        // A server that accepts the join and drops the meeting after 10 s, again and again.
        let mut now = t0;
        for attempt in 1..=7u32 {
            s.handle_input(now, Input::Joined);
            drain(&mut s);
            now += Duration::from_secs(10);
            let at = fail_at(&mut s, now, Input::Disconnected("websocket closed".into()));
            assert_eq!(at - now, backoff(attempt), "attempt {attempt}");
            now = at;
            retry_at(&mut s, now);
        }
        assert_eq!(s.status().attempts, 7);
    }

    #[test]
    fn booting_before_the_network_is_up_keeps_trying_until_it_is() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::Join(link()));
        drain(&mut s);
        assert_eq!(s.status().state, RoomState::Joining, "the first try is a join, not a reconnect");
        // No network for 10 minutes: name resolution fails, then no route.
        let mut now = t0;
        let mut tries = 1;
        while now < t0 + Duration::from_secs(600) {
            let cause = if tries < 5 {
                "connect: failed to lookup address information"
            } else {
                "connect: network unreachable"
            };
            let at = fail_at(&mut s, now, Input::JoinFailed(cause.into()));
            assert!(at - now <= MAX_BACKOFF);
            let st = s.status();
            assert_eq!((st.state, st.error.as_deref()), (RoomState::Reconnecting, Some(cause)));
            now = at;
            retry_at(&mut s, now);
            tries += 1;
        }
        // The first try, then retries after 1+2+4+8+16+32 s and every 60 s
        // after that: 16 tries in the first 10 minutes, none given up.
        assert_eq!(tries, 16);
        s.handle_input(now + Duration::from_secs(1), Input::Joined);
        assert_eq!(s.status().state, RoomState::InMeeting);
    }

    #[test]
    fn a_failure_retrying_cannot_fix_while_reconnecting_stops_the_retries() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::Join(link()));
        s.handle_input(t0, Input::Joined);
        drain(&mut s);
        let at = fail_at(&mut s, t0, Input::Disconnected("server gone: reset".into()));
        retry_at(&mut s, at);
        // The restarted server does not have the room any more.
        s.handle_input(at, Input::GaveUp("no such room: 1234".into()));
        assert!(drain(&mut s).is_empty(), "no retry timer");
        let st = s.status();
        assert_eq!(
            (st.state, st.retry_in_ms, st.attempts, st.error.as_deref()),
            (RoomState::Error, None, 2, Some("no such room: 1234"))
        );
        assert_eq!(st.state.words(), "error");
        s.handle_timeout(at + MAX_BACKOFF * 2);
        assert!(drain(&mut s).is_empty());
    }

    #[test]
    fn the_screen_says_reconnecting_with_the_next_try_and_the_cause() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::Join(link()));
        assert_eq!(s.status().problem(), None, "joining is no problem");
        s.handle_input(t0, Input::Joined);
        assert_eq!(s.status().problem(), None);
        drain(&mut s);
        let at = fail_at(&mut s, t0, Input::Disconnected("server gone: websocket closed (1006)".into()));
        s.handle_input(t0, Input::JoinFailed("connect: connection refused".into()));
        assert_eq!(
            s.status().problem().as_deref(),
            Some("Reconnecting: try 2 in 1 s\nserver gone: websocket closed (1006)")
        );
        retry_at(&mut s, at);
        assert_eq!(s.status().problem().as_deref(), Some("Reconnecting: try 2…\nserver gone: websocket closed (1006)"));
        let at = fail_at(&mut s, at, Input::JoinFailed("connect: connection refused".into()));
        s.handle_timeout(at - Duration::from_millis(1500));
        assert_eq!(s.status().problem().as_deref(), Some("Reconnecting: try 3 in 2 s\nconnect: connection refused"));
        retry_at(&mut s, at);
        s.handle_input(at, Input::GaveUp("no such room: 1234".into()));
        assert_eq!(s.status().problem().as_deref(), Some("Not joined (not retried)\nno such room: 1234"));
    }

    #[test]
    fn an_interrupted_connection_is_reconnecting_until_it_is_back_or_lost() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::ConnectionInterrupted("too early".into()));
        assert_eq!(s.status().state, RoomState::Idle, "nothing to interrupt");
        s.handle_input(t0, Input::Join(link()));
        s.handle_input(t0, Input::Joined);
        s.handle_input(t0, Input::Encryption { verification: Some("123".into()) });
        drain(&mut s);
        // The link goes down: the meeting is held, the page and screen say reconnecting and why.
        s.handle_input(
            t0 + Duration::from_secs(10),
            Input::ConnectionInterrupted("publisher: ICE disconnected".into()),
        );
        let st = s.status();
        assert_eq!(
            (st.state, st.error.as_deref(), st.retry_in_ms, st.attempts),
            (RoomState::Reconnecting, Some("publisher: ICE disconnected"), None, 0)
        );
        assert!(st.encryption.encrypted, "still the same encrypted meeting");
        assert_eq!(st.problem().as_deref(), Some("Reconnecting…\npublisher: ICE disconnected"));
        assert!(drain(&mut s).is_empty(), "nothing is left or retried while the connection may come back");
        // It comes back.
        s.handle_input(t0 + Duration::from_secs(25), Input::ConnectionRestored);
        let st = s.status();
        assert_eq!((st.state, st.error), (RoomState::InMeeting, None));
        // Interrupted again, and this time the meeting is lost: the usual back-off.
        s.handle_input(
            t0 + Duration::from_secs(30),
            Input::ConnectionInterrupted("publisher: ICE disconnected".into()),
        );
        let at = fail_at(&mut s, t0 + Duration::from_secs(40), Input::Disconnected("ICE failed".into()));
        assert_eq!(at - (t0 + Duration::from_secs(40)), Duration::from_secs(1));
        assert_eq!(s.status().error.as_deref(), Some("ICE failed"), "the loss's cause, not the old interruption");
        retry_at(&mut s, at);
        s.handle_input(at, Input::Joined);
        assert_eq!(s.status().state, RoomState::InMeeting, "a new meeting starts uninterrupted");
    }

    #[test]
    fn check_digits_come_from_the_meeting_never_from_the_link() {
        let t0 = Instant::now();
        let mut s = Supervisor::new();
        s.handle_input(t0, Input::Join(link()));
        s.handle_input(t0, Input::Joined);
        assert_eq!(s.status().encryption, Encryption { encrypted: false, verification: None });
        s.handle_input(t0, Input::Encryption { verification: Some("123 456 789 012 345".into()) });
        let st = s.status();
        assert!(st.encryption.encrypted);
        assert_eq!(st.encryption.verification.as_deref(), Some("123 456 789 012 345"));
    }
}
