//! The seam between a meeting service and the room's meeting engine.
//!
//! Every connector (Janus VideoRoom today; Jitsi Meet, WHIP/WHEP next) is a
//! pure state machine behind [`Connector`], in the style of str0m's `Rtc`:
//! the caller feeds [`Input`]s with the current time and drains
//! [`Connector::poll_output`] until it returns [`Output::Timeout`].
//!
//! - [`Transmit`]s go to a transport driver (a websocket today, see
//!   [`crate::transport`]), which owns the socket and nothing else.
//! - [`Event`]s go to the meeting engine, which owns the peer connections,
//!   the media and the keys. Events name peers by a neutral [`PeerId`] and
//!   people by a neutral [`ParticipantId`]: the engine never learns what a
//!   Janus feed or a Jingle session is.
//!
//! A connector never retries on its own and never sleeps: a failure ends
//! it in [`ConnectorState::Failed`] with a [`Failure`] that says whether
//! retrying can help. The room's supervisor owns the one retry policy.

use core::fmt;
use std::time::Instant;

use cloakroom_frame::KeyMaterial;

use crate::ConnectorError;

/// One peer connection the connector asked for, named by the connector
/// (e.g. `publisher`, `feed-1234`). Opaque to the engine.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub String);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Someone else in the meeting, named by the connector (a Janus feed id, a
/// MUC nickname). Opaque to the engine; stable while they stay.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParticipantId(pub String);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which way media flows on a peer connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We send our camera and microphone (and receive nothing).
    Send,
    /// We receive one participant's media (and send nothing).
    Receive,
    /// Both ways on one connection (a peer-to-peer call).
    SendReceive,
}

/// An ICE candidate as signalled (RFC 8839 `candidate:` attribute value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_mline_index: Option<u16>,
}

/// A failure, and whether trying again later can help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub error: ConnectorError,
    /// `false` when the same attempt will fail the same way (the room does
    /// not exist, the link asks for what this build cannot do).
    pub retryable: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

/// Where the connector is, from the outside.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectorState {
    /// Waiting for the transport to open.
    Connecting,
    /// Logging in, joining the room.
    Joining,
    /// In the room.
    InMeeting,
    /// Saying goodbye to the server.
    Leaving,
    /// Left cleanly (or gave up waiting to).
    Left,
    /// Out of the meeting because of `0`; the supervisor decides on a retry.
    Failed(Failure),
}

impl ConnectorState {
    /// Whether the connector is done (nothing more will happen).
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Left | Self::Failed(_))
    }

    /// A short name for logs and the status line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Joining => "joining",
            Self::InMeeting => "in_meeting",
            Self::Leaving => "leaving",
            Self::Left => "left",
            Self::Failed(_) => "failed",
        }
    }
}

/// What happened outside the connector.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// The transport is open.
    TransportConnected,
    /// A message from the server.
    TransportReceived(String),
    /// The transport closed or could not be opened.
    TransportClosed { reason: String },
    /// The engine's offer (for a peer opened without a remote offer) or
    /// answer (for one opened with it), with every candidate gathered.
    LocalDescription { peer: PeerId, sdp: String },
    /// A local ICE candidate, `None` when gathering is complete.
    LocalCandidate { peer: PeerId, candidate: Option<Candidate> },
    /// A peer connection could not be built, or failed (ICE, DTLS). The
    /// connector decides: a new peer for a receive peer, the whole meeting
    /// failed (retryable) for the one that sends.
    PeerFailed { peer: PeerId, reason: String },
    /// Time passed: an [`Output::Timeout`] is due.
    Tick,
    /// Leave the meeting.
    Leave,
    /// People in the room act on verifying `participant` (Jitsi's SAS):
    /// `start` a verification, or `confirm` whether the codes matched.
    Verify { participant: ParticipantId, start: bool, confirm: Option<bool> },
}

/// What the transport driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Open the transport.
    Connect,
    /// Send this message.
    Send(String),
    /// Close the transport.
    Close,
}

/// What the meeting engine must know or do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    State(ConnectorState),
    /// Build a peer connection. Without `remote_offer` the engine makes the
    /// offer; with it, the answer. Either way it comes back as
    /// [`Input::LocalDescription`]. `participant` is whose media a receive
    /// peer carries.
    OpenPeer {
        peer: PeerId,
        direction: Direction,
        participant: Option<ParticipantId>,
        remote_offer: Option<String>,
    },
    /// The server's answer to our offer.
    RemoteDescription {
        peer: PeerId,
        sdp: String,
    },
    /// A remote ICE candidate (`None`: the remote side finished gathering).
    RemoteCandidate {
        peer: PeerId,
        candidate: Option<Candidate>,
    },
    /// Drop this peer connection.
    ClosePeer {
        peer: PeerId,
    },
    ParticipantJoined {
        participant: ParticipantId,
        display: String,
    },
    ParticipantLeft {
        participant: ParticipantId,
    },
    /// A participant's frame key (per-participant keys, e.g. Jitsi's Olm
    /// exchange): frames from them with this key index open with it.
    ParticipantKey {
        participant: ParticipantId,
        key_index: u8,
        material: KeyMaterial,
    },
    /// Our own frame key (per-participant keys): seal our frames with it at
    /// this key index from now on.
    LocalKey {
        key_index: u8,
        material: KeyMaterial,
    },
    /// The room will not exchange media with this participant, and why
    /// (for the screen and the page).
    ParticipantRefused {
        participant: ParticipantId,
        reason: &'static str,
    },
    /// Something went wrong that ends nothing (a participant's key message
    /// that does not decrypt, a key exchange that timed out): for the log.
    Problem {
        participant: Option<ParticipantId>,
        what: String,
    },
    /// Progress of verifying who a participant is (Jitsi's SAS).
    Verification {
        participant: ParticipantId,
        state: Verification,
    },
}

/// Where verifying a participant is (short authentication strings: both
/// sides show the same code when nobody is in the middle).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verification {
    /// The code to compare with the participant: emoji names and three
    /// groups of decimal digits.
    Code { emoji: Vec<String>, decimals: [u16; 3] },
    /// Both sides confirmed the code and the keys' MACs matched.
    Verified,
    /// Someone said the codes differ.
    Mismatch,
    /// The verification could not complete.
    Failed { reason: String },
}

/// One output of a connector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Transmit(Transmit),
    Event(Event),
    /// Nothing more now; feed [`Input::Tick`] at this time.
    Timeout(Instant),
}

/// A meeting service's signalling, as a pure state machine (see the module
/// docs). `handle_input` returns an error only for a message that is not the
/// service's protocol; the connector has already dealt with it and the
/// caller only reports it.
pub trait Connector: Send + fmt::Debug {
    fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), ConnectorError>;
    fn poll_output(&mut self) -> Output;
    fn state(&self) -> &ConnectorState;
}
