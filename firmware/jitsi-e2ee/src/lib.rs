//! Jitsi Meet's end-to-end key exchange, as lib-jitsi-meet does it
//! (`modules/e2ee/OlmAdapter.js`, `ManagedKeyHandler.js`, `SAS.ts` at git
//! commit 01daa07c3f8c), as a pure state machine: no I/O, no clock, no
//! threads. The caller feeds presence changes, received messages and the
//! time, and drains [`JitsiE2ee::poll_output`] until it returns `None`.
//!
//! What lib-jitsi-meet does, and so this crate:
//!
//! - Each participant has an Olm account; its Curve25519 and Ed25519 identity
//!   keys are in its presence (`jitsi_participant_e2ee.idKey.curve25519` /
//!   `.ed25519`, unpadded base64) next to the feature
//!   `https://jitsi.org/meet/e2ee`.
//! - For each pair of E2EE participants, the one whose id sorts first (by
//!   UTF-16 code units, JavaScript's `<`) sends `session-init` with a fresh
//!   one-time key. The other creates the outbound Olm session and answers
//!   `session-ack`, whose Olm pre-key message carries its current media key.
//!   The initiator creates the inbound session from it and sends `key-info`
//!   with its own key; `key-info` is answered by `key-info-ack` carrying the
//!   answerer's key. Requests not answered in 5 s time out.
//! - A media key is 32 random bytes sent raw (see [`media_key`] for why that
//!   is exactly [`KeyMaterial`]) with a key index that grows by one per new
//!   key; frames carry the index modulo 16.
//! - 5 s after participants stop joining, the own key is ratcheted (HKDF) and
//!   used at once under the same index; nothing is sent (receivers ratchet
//!   on a failed decryption; later key-info and acks carry the new key).
//! - 5 s after participants stop leaving, a new random key with the next
//!   index is sent in `key-info` to every participant with a session, and
//!   used once all acknowledged it or their requests timed out.
//! - SAS verification: see [`sas`].
//!
//! Where this crate is stricter than lib-jitsi-meet: a session-init must name
//! the identity key of the sender's presence; a session-ack with the right
//! uuid that fails to decrypt does not cancel the pending init; a session-init
//! not answered is sent again up to [`SESSION_INIT_ATTEMPTS`] times (lib-jitsi-meet
//! leaves a TODO); a participant's SAS MAC must name at least one key and
//! counts only after our own people confirmed too; the join ratchet is
//! scheduled for every newly known participant (lib-jitsi-meet skips the
//! participants already present when it joins; an extra ratchet costs a
//! receiver one ratchet step).
//!
//! Randomness comes from the operating system (vodozemac draws its own).
//!
//! # Driving it (the connector's side)
//!
//! Our presence must carry the feature `https://jitsi.org/meet/e2ee`,
//! `jitsi_participant_e2ee.idKey.curve25519` / `.ed25519` from
//! [`JitsiE2ee::identity_keys`] and `jitsi_participant_e2ee.enabled` = `true`:
//! a lib-jitsi-meet participant whose id sorts first sends its session-init
//! when it sees that last property turn true. Ids are MUC resources (endpoint
//! ids), ours and `from` alike.
//!
//! ```
//! use std::time::Instant;
//! use cloakroom_jitsi_e2ee::{E2eeOutput, JitsiE2ee};
//!
//! /// Delivers `from`'s messages to `to` (a test stands in for the MUC); counts keys learnt.
//! fn pump(from_id: &str, from: &mut JitsiE2ee, to: &mut JitsiE2ee, now: Instant, keys: &mut usize) -> bool {
//!     let mut sent = false;
//!     while let Some(output) = from.poll_output() {
//!         match output {
//!             // A private MUC message to occupant `to` in <json-message xmlns='http://jitsi.org/jitmeet'>.
//!             E2eeOutput::Send { json, .. } => {
//!                 to.handle_message(now, from_id, &json).expect("a valid message");
//!                 sent = true;
//!             }
//!             // FrameEncryptor::set_key(index, material)
//!             E2eeOutput::OwnKey { .. } => {}
//!             // That participant's FrameDecryptor::set_key(index, material)
//!             E2eeOutput::ParticipantKey { .. } => *keys += 1,
//!             // Show the code, then ask the people; confirm_sas(…, true or false)
//!             E2eeOutput::Sas { .. } => {}
//!         }
//!     }
//!     sent
//! }
//!
//! let now = Instant::now();
//! let mut a = JitsiE2ee::new("2b4e1f0a");
//! let mut b = JitsiE2ee::new("9c3d5e7f");
//! // Each sees the other's presence with E2EE and identity keys.
//! a.participant_joined(now, "9c3d5e7f", b.identity_keys());
//! b.participant_joined(now, "2b4e1f0a", a.identity_keys());
//! let mut keys = 0;
//! while pump("2b4e1f0a", &mut a, &mut b, now, &mut keys) | pump("9c3d5e7f", &mut b, &mut a, now, &mut keys) {}
//! assert_eq!(keys, 2, "each has the other's key");
//! // And on a timer: at a.poll_timeout(), call a.handle_timeout(now) and pump again.
//! ```
#![forbid(unsafe_code)]

mod error;
pub mod media_key;
mod messages;
pub mod sas;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use cloakroom_frame::KeyMaterial;
use vodozemac::olm::{Account, OlmMessage, Session, SessionConfig};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey};
use zeroize::Zeroizing;

pub use error::E2eeError;
pub use messages::OLM_MUC_TYPE;
pub use sas::{SasCode, SasEmoji, SasEvent, SasFailure};

use media_key::{KeyInfo, RawKey};
use messages::{CipheredKind, Incoming};
use sas::{SasState, Stage};

/// How long lib-jitsi-meet waits for a session-ack or key-info-ack (`REQ_TIMEOUT`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long joins and leaves are debounced before ratcheting or rotating (`DEBOUNCE_PERIOD`).
pub const KEY_CHANGE_DEBOUNCE: Duration = Duration::from_secs(5);
/// How many session-inits are sent to a participant that does not answer,
/// before waiting for its presence to be reported again.
pub const SESSION_INIT_ATTEMPTS: u32 = 3;
/// Problems kept for [`JitsiE2ee::poll_problem`] when nobody drains them.
const MAX_PROBLEMS: usize = 64;
/// Longest peer error text kept.
const MAX_PEER_ERROR_LEN: usize = 200;

/// A participant's Olm identity keys, unpadded base64 as in presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityKeys {
    pub curve25519: String,
    pub ed25519: String,
}

/// What the caller should do next.
#[derive(Debug)]
pub enum E2eeOutput {
    /// Send as a private MUC message to occupant `to`, inside `<json-message xmlns='http://jitsi.org/jitmeet'>`.
    Send { to: String, json: String },
    /// Seal our own frames with this key (at this JFrame key index) from now on.
    ///
    /// `material` is the raw 32-byte key lib-jitsi-meet sends in key-info, as
    /// `cloakroom_frame::jitsi::JitsiKey::new` expects it; the index is lib-jitsi-meet's
    /// key index modulo 16, as in its frame trailer (evidence in [`media_key`]).
    OwnKey { index: u8, material: KeyMaterial },
    /// Open `participant`'s frames with this key at this index.
    ParticipantKey { participant: String, index: u8, material: KeyMaterial },
    /// Verification progress with `participant`.
    Sas { participant: String, event: SasEvent },
}

/// Where the Olm session with a participant stands (for status pages and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// Its presence keys are not valid keys; nothing can be exchanged.
    InvalidIdentityKeys,
    /// It initiates (its id sorts first) and has not yet.
    AwaitingSessionInit,
    /// Our session-init is out (attempt n).
    SessionInitSent { attempt: u32 },
    /// We initiate and have no session: it was dropped (E2EE turned off).
    /// A new presence report starts again.
    NoSession,
    /// Our session-inits went unanswered; a new presence report starts again.
    SessionInitFailed,
    /// The Olm session exists.
    Established,
}

/// Jitsi's Olm key exchange and SAS verification for one conference.
pub struct JitsiE2ee {
    own_id: String,
    account: Account,
    identity: IdentityKeys,
    /// Our current media key and lib-jitsi-meet's `_mediaKeyIndex` for it.
    own_key: RawKey,
    key_index: u64,
    participants: BTreeMap<String, Participant>,
    /// Our key-info requests awaiting a key-info-ack, by uuid.
    key_requests: BTreeMap<String, KeyRequest>,
    /// A new key sent but not yet used: the uuids still unacknowledged.
    rotation: Option<BTreeSet<String>>,
    ratchet_at: Option<Instant>,
    rotate_at: Option<Instant>,
    outputs: VecDeque<E2eeOutput>,
    problems: VecDeque<E2eeError>,
}

impl core::fmt::Debug for JitsiE2ee {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JitsiE2ee")
            .field("own_id", &self.own_id)
            .field("identity", &self.identity)
            .field("key_index", &self.key_index)
            .field("participants", &self.participants.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

struct Participant {
    keys: IdentityKeys,
    /// Parsed keys; `None` when the presence's keys are invalid.
    curve25519: Option<Curve25519PublicKey>,
    session: Option<Session>,
    pending_init: Option<PendingInit>,
    init_attempts: u32,
    /// The last key received, to report only changes (lib-jitsi-meet's `lastKey`).
    last_key: Option<(u64, RawKey)>,
    sas: Option<SasState>,
    /// Transaction ids of verifications already run with them, newest last, so a replayed sas-start is refused.
    used_transactions: VecDeque<String>,
}

/// Transaction ids remembered per participant.
const REMEMBERED_TRANSACTIONS: usize = 32;

struct PendingInit {
    uuid: String,
    deadline: Instant,
}

struct KeyRequest {
    participant: String,
    deadline: Instant,
}

impl JitsiE2ee {
    /// `own_id`: our MUC resource (endpoint id). Creates the Olm account and our first random 32-byte media key at index 0.
    pub fn new(own_id: &str) -> Self {
        let account = Account::new();
        let keys = account.identity_keys();
        let identity = IdentityKeys { curve25519: keys.curve25519.to_base64(), ed25519: keys.ed25519.to_base64() };
        let mut this = Self {
            own_id: own_id.to_owned(),
            account,
            identity,
            own_key: media_key::random_key(),
            key_index: 0,
            participants: BTreeMap::new(),
            key_requests: BTreeMap::new(),
            rotation: None,
            ratchet_at: None,
            rotate_at: None,
            outputs: VecDeque::new(),
            problems: VecDeque::new(),
        };
        this.emit_own_key();
        this
    }

    /// Our identity keys, for our presence.
    pub fn identity_keys(&self) -> IdentityKeys {
        self.identity.clone()
    }

    /// Our MUC resource.
    pub fn own_id(&self) -> &str {
        &self.own_id
    }

    /// A participant whose presence advertises E2EE (feature `https://jitsi.org/meet/e2ee`) with these keys. Called again when presence repeats (idempotent).
    ///
    /// A new participant schedules the join ratchet; if our id sorts first we
    /// send it a session-init. A repeat with no session and no pending init
    /// (after [`Self::participant_disabled_e2ee`] or failed inits) starts again.
    /// New identity keys drop the old session. Invalid keys are reported
    /// through [`Self::poll_problem`] and [`Self::session_state`].
    pub fn participant_joined(&mut self, now: Instant, id: &str, keys: IdentityKeys) {
        if id == self.own_id {
            return;
        }
        let is_new = match self.participants.get(id) {
            None => true,
            Some(p) if p.keys != keys => {
                self.forget_session(id, SasFailure::IdentityChanged);
                self.problem(E2eeError::IdentityKeysChanged { participant: id.to_owned() });
                self.participants.remove(id);
                false
            }
            Some(_) => false,
        };
        if !self.participants.contains_key(id) {
            let curve25519 = Curve25519PublicKey::from_base64(&keys.curve25519).ok();
            if curve25519.is_none() {
                self.problem(E2eeError::InvalidIdentityKey { participant: id.to_owned(), which: "Curve25519" });
            }
            let ed25519_ok = Ed25519PublicKey::from_base64(&keys.ed25519).is_ok();
            if !ed25519_ok {
                self.problem(E2eeError::InvalidIdentityKey { participant: id.to_owned(), which: "Ed25519" });
            }
            let participant = Participant {
                keys,
                curve25519: curve25519.filter(|_| ed25519_ok),
                session: None,
                pending_init: None,
                init_attempts: 0,
                last_key: None,
                sas: None,
                used_transactions: VecDeque::new(),
            };
            self.participants.insert(id.to_owned(), participant);
        }
        if is_new {
            self.ratchet_at = Some(now + KEY_CHANGE_DEBOUNCE);
        }
        let initiates = self.initiates_with(id);
        let Some(p) = self.participants.get_mut(id) else { return };
        if p.curve25519.is_some() && p.session.is_none() && p.pending_init.is_none() && initiates {
            p.init_attempts = 0;
            self.send_session_init(now, id);
        }
    }

    /// The participant left the conference: its session is dropped and, 5 s
    /// after the last leave, our key is replaced with a new one (index + 1)
    /// sent to everyone remaining. A participant never reported by
    /// [`Self::participant_joined`] never had our key: nothing happens (where
    /// lib-jitsi-meet rotates on any leave).
    pub fn participant_left(&mut self, now: Instant, id: &str) {
        if !self.participants.contains_key(id) {
            return;
        }
        self.forget_session(id, SasFailure::ParticipantGone);
        self.participants.remove(id);
        self.rotate_at = Some(now + KEY_CHANGE_DEBOUNCE);
    }

    /// The participant's presence says E2EE is off (`e2ee.enabled` false):
    /// its session is dropped as lib-jitsi-meet does, without a new key; it
    /// stays known, so its leaving still rotates our key, and
    /// [`Self::participant_joined`] sets up a new session when it turns E2EE on again.
    pub fn participant_disabled_e2ee(&mut self, _now: Instant, id: &str) {
        if self.participants.contains_key(id) {
            self.forget_session(id, SasFailure::ParticipantGone);
        }
    }

    /// The JSON text inside a private `<json-message xmlns='http://jitsi.org/jitmeet'>` from MUC occupant `from` whose "type" is "olm". Untrusted input: never panic; Err for what is not the protocol.
    ///
    /// Where lib-jitsi-meet answers a bad request with an `error` message,
    /// so does this (as a [`E2eeOutput::Send`]); an `error` received is
    /// returned as [`E2eeError::PeerError`] so that it gets logged.
    pub fn handle_message(&mut self, now: Instant, from: &str, json: &str) -> Result<(), E2eeError> {
        let message = messages::parse(json)
            .map_err(|e| E2eeError::Malformed { participant: messages::clip(from), reason: e.0 })?;
        let Some(p) = self.participants.get(from) else {
            return Err(E2eeError::UnknownParticipant { participant: messages::clip(from) });
        };
        if p.curve25519.is_none() {
            return Err(E2eeError::InvalidIdentityKey { participant: from.to_owned(), which: "Curve25519 or Ed25519" });
        }
        match message {
            Incoming::SessionInit { id_key, ot_key, uuid } => self.on_session_init(from, &id_key, &ot_key, &uuid),
            Incoming::SessionAck(c) => self.on_session_ack(now, from, c.message, &c.uuid),
            Incoming::KeyInfo(c) => self.on_key_info(from, c.message, &c.uuid),
            Incoming::KeyInfoAck(c) => self.on_key_info_ack(from, c.message, &c.uuid),
            Incoming::Error { error } => {
                let mut message: String = error.chars().take(MAX_PEER_ERROR_LEN).collect();
                if message.len() < error.len() {
                    message.push('…');
                }
                Err(E2eeError::PeerError { participant: from.to_owned(), message })
            }
            Incoming::SasStart { transaction_id } => self.on_sas_start(from, transaction_id),
            Incoming::SasAccept { commitment, transaction_id } => self.on_sas_accept(from, commitment, &transaction_id),
            Incoming::SasKey { key, transaction_id } => self.on_sas_key(from, &key, &transaction_id),
            Incoming::SasMac { keys, mac, transaction_id } => self.on_sas_mac(from, &keys, &mac, &transaction_id),
        }
    }

    /// Fires what is due: request timeouts (and session-init retries), the join ratchet and the leave rotation.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Session-inits not answered.
        let expired: Vec<String> = self
            .participants
            .iter()
            .filter(|(_, p)| p.pending_init.as_ref().is_some_and(|i| i.deadline <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let Some(p) = self.participants.get_mut(&id) else { continue };
            p.pending_init = None;
            let attempt = p.init_attempts;
            self.problem(E2eeError::SessionInitTimeout {
                participant: id.clone(),
                attempt,
                attempts: SESSION_INIT_ATTEMPTS,
            });
            if attempt < SESSION_INIT_ATTEMPTS {
                self.send_session_init(now, &id);
            }
        }
        // Key-infos not acknowledged.
        let expired: Vec<String> =
            self.key_requests.iter().filter(|(_, r)| r.deadline <= now).map(|(uuid, _)| uuid.clone()).collect();
        for uuid in expired {
            if let Some(request) = self.key_requests.remove(&uuid) {
                self.problem(E2eeError::KeyInfoTimeout { participant: request.participant });
            }
            self.rotation_acknowledged(&uuid);
        }
        if self.ratchet_at.is_some_and(|t| t <= now) {
            self.ratchet_at = None;
            self.ratchet_own_key();
        }
        if self.rotate_at.is_some_and(|t| t <= now) {
            self.rotate_at = None;
            self.rotate_own_key(now);
        }
    }

    /// When [`Self::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let inits = self.participants.values().filter_map(|p| p.pending_init.as_ref().map(|i| i.deadline));
        let requests = self.key_requests.values().map(|r| r.deadline);
        inits.chain(requests).chain(self.ratchet_at).chain(self.rotate_at).min()
    }

    /// We start verification with participant `id` (sends sas-start).
    pub fn start_sas(&mut self, _now: Instant, id: &str) -> Result<(), E2eeError> {
        let Some(p) = self.participants.get_mut(id) else {
            return Err(E2eeError::UnknownParticipant { participant: id.to_owned() });
        };
        if p.session.is_none() {
            return Err(E2eeError::NoSession { participant: id.to_owned(), message: "SAS start" });
        }
        if p.sas.is_some() {
            return Err(E2eeError::Sas { participant: id.to_owned(), reason: "a verification is already in progress" });
        }
        let state = SasState::new(new_uuid(), true);
        let json = messages::sas_start(&state.transaction_id);
        remember_transaction(p, &state.transaction_id);
        p.sas = Some(state);
        self.send(id, json);
        Ok(())
    }

    /// People compared the code with participant `id`: `matches` sends our
    /// MAC (Verified follows once the peer's MAC checked out); `!matches`
    /// ends the verification with [`SasEvent::Mismatch`].
    pub fn confirm_sas(&mut self, _now: Instant, id: &str, matches: bool) -> Result<(), E2eeError> {
        let own_id = self.own_id.clone();
        let our_ed25519 = self.identity.ed25519.clone();
        let Some(p) = self.participants.get_mut(id) else {
            return Err(E2eeError::UnknownParticipant { participant: id.to_owned() });
        };
        let Some(state) = p.sas.as_mut() else {
            return Err(E2eeError::Sas { participant: id.to_owned(), reason: "no verification in progress" });
        };
        if !matches {
            p.sas = None;
            self.sas_event(id, SasEvent::Mismatch);
            return Ok(());
        }
        let Some(established) = state.established() else {
            return Err(E2eeError::Sas { participant: id.to_owned(), reason: "the code is not known yet" });
        };
        if state.our_mac_sent {
            return Err(E2eeError::Sas { participant: id.to_owned(), reason: "already confirmed" });
        }
        let (keys, key_id, mac) = sas::our_mac(established, &own_id, id, &state.transaction_id, &our_ed25519);
        let json = messages::sas_mac(&keys, BTreeMap::from([(key_id.as_str(), mac.as_str())]), &state.transaction_id);
        state.our_mac_sent = true;
        let verified = state.their_mac_verified;
        if verified {
            p.sas = None;
        }
        self.send(id, json);
        if verified {
            self.sas_event(id, SasEvent::Verified);
        }
        Ok(())
    }

    /// Drops a verification in progress with `id` without telling the peer
    /// (lib-jitsi-meet has no cancel message). Returns whether there was one.
    pub fn cancel_sas(&mut self, id: &str) -> bool {
        self.participants.get_mut(id).and_then(|p| p.sas.take()).is_some()
    }

    /// The next thing to do, until `None`.
    pub fn poll_output(&mut self) -> Option<E2eeOutput> {
        self.outputs.pop_front()
    }

    /// Failures that happened outside [`Self::handle_message`] (unanswered
    /// requests, invalid presence keys), for the log. Drain until `None`;
    /// the oldest are dropped past 64.
    pub fn poll_problem(&mut self) -> Option<E2eeError> {
        self.problems.pop_front()
    }

    /// Where the Olm session with `id` stands, or `None` for an unknown participant.
    pub fn session_state(&self, id: &str) -> Option<SessionState> {
        let p = self.participants.get(id)?;
        Some(if p.curve25519.is_none() {
            SessionState::InvalidIdentityKeys
        } else if p.session.is_some() {
            SessionState::Established
        } else if p.pending_init.is_some() {
            SessionState::SessionInitSent { attempt: p.init_attempts }
        } else if self.initiates_with(id) {
            if p.init_attempts >= SESSION_INIT_ATTEMPTS {
                SessionState::SessionInitFailed
            } else {
                SessionState::NoSession
            }
        } else {
            SessionState::AwaitingSessionInit
        })
    }

    /// The JFrame key index our frames use now.
    pub fn own_key_index(&self) -> u8 {
        media_key::frame_index(self.key_index)
    }

    // ---- Olm session and key messages ----

    fn on_session_init(&mut self, from: &str, id_key: &str, ot_key: &str, uuid: &str) -> Result<(), E2eeError> {
        let own_key = &self.own_key;
        let key_index = self.key_index;
        let Some(p) = self.participants.get_mut(from) else {
            return Err(E2eeError::UnknownParticipant { participant: from.to_owned() });
        };
        if p.session.is_some() {
            self.send_error(from, "Session already established");
            return Err(E2eeError::SessionExists { participant: from.to_owned(), message: "session-init" });
        }
        let Some(their_key) = p.curve25519 else {
            return Err(E2eeError::InvalidIdentityKey { participant: from.to_owned(), which: "Curve25519" });
        };
        if Curve25519PublicKey::from_base64(id_key).ok() != Some(their_key) {
            self.send_error(from, "Identity key does not match presence");
            return Err(E2eeError::IdentityKeyMismatch { participant: from.to_owned() });
        }
        let one_time_key = Curve25519PublicKey::from_base64(ot_key).map_err(|_| E2eeError::Malformed {
            participant: from.to_owned(),
            reason: "session-init's otKey is not a Curve25519 key".into(),
        })?;
        let mut session = self
            .account
            .create_outbound_session(SessionConfig::version_1(), their_key, one_time_key)
            .map_err(|e| olm_error(from, "session creation", &e))?;
        let plaintext = media_key::key_info_plaintext(own_key, key_index);
        let message = session.encrypt(plaintext.as_bytes()).map_err(|e| olm_error(from, "encryption", &e))?;
        p.session = Some(session);
        // Their init wins over ours (ids should make only one side initiate).
        p.pending_init = None;
        self.send(from, messages::ciphered_message(CipheredKind::SessionAck, &message, uuid));
        Ok(())
    }

    fn on_session_ack(&mut self, now: Instant, from: &str, message: OlmMessage, uuid: &str) -> Result<(), E2eeError> {
        let Some(p) = self.participants.get_mut(from) else {
            return Err(E2eeError::UnknownParticipant { participant: from.to_owned() });
        };
        if p.session.is_some() {
            self.send_error(from, "Session already established");
            return Err(E2eeError::SessionExists { participant: from.to_owned(), message: "session-ack" });
        }
        if p.pending_init.as_ref().is_none_or(|i| i.uuid != uuid) {
            self.send_error(from, "Invalid UUID");
            return Err(E2eeError::UnexpectedAck { participant: from.to_owned() });
        }
        let OlmMessage::PreKey(pre_key) = message else {
            return Err(E2eeError::Malformed {
                participant: from.to_owned(),
                reason: "session-ack does not carry an Olm pre-key message".into(),
            });
        };
        let Some(their_key) = p.curve25519 else {
            return Err(E2eeError::InvalidIdentityKey { participant: from.to_owned(), which: "Curve25519" });
        };
        let created = self
            .account
            .create_inbound_session(SessionConfig::version_1(), their_key, &pre_key)
            .map_err(|e| olm_error(from, "session creation", &e))?;
        let plaintext = Zeroizing::new(created.plaintext);
        p.session = Some(created.session);
        p.pending_init = None;
        p.init_attempts = 0;
        let applied = self.apply_key_info(from, &plaintext).map(|_| ());
        // As lib-jitsi-meet's initiator does next: our key to them.
        self.send_key_info(now, from);
        applied
    }

    fn on_key_info(&mut self, from: &str, message: OlmMessage, uuid: &str) -> Result<(), E2eeError> {
        let plaintext = self.decrypt(from, &message, "key-info")?;
        if matches!(self.apply_key_info(from, &plaintext)?, KeyInfoSeen::Absent) {
            // lib-jitsi-meet acknowledges only a key-info with a key (or `false`).
            return Ok(());
        }
        let own_key = &self.own_key;
        let key_index = self.key_index;
        let Some(session) = self.participants.get_mut(from).and_then(|p| p.session.as_mut()) else {
            return Err(E2eeError::NoSession { participant: from.to_owned(), message: "key-info" });
        };
        let plaintext = media_key::key_info_plaintext(own_key, key_index);
        let ack = session.encrypt(plaintext.as_bytes()).map_err(|e| olm_error(from, "encryption", &e))?;
        self.send(from, messages::ciphered_message(CipheredKind::KeyInfoAck, &ack, uuid));
        Ok(())
    }

    fn on_key_info_ack(&mut self, from: &str, message: OlmMessage, uuid: &str) -> Result<(), E2eeError> {
        let plaintext = self.decrypt(from, &message, "key-info-ack")?;
        let applied = self.apply_key_info(from, &plaintext).map(|_| ());
        if self.key_requests.get(uuid).is_some_and(|r| r.participant == from) {
            self.key_requests.remove(uuid);
            self.rotation_acknowledged(uuid);
        }
        applied
    }

    /// Decrypts with the participant's session; answers lib-jitsi-meet's error when there is none.
    fn decrypt(
        &mut self,
        from: &str,
        message: &OlmMessage,
        what: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>, E2eeError> {
        let Some(session) = self.participants.get_mut(from).and_then(|p| p.session.as_mut()) else {
            self.send_error(from, &format!("No session found while processing {what}"));
            return Err(E2eeError::NoSession { participant: from.to_owned(), message: what });
        };
        session.decrypt(message).map(Zeroizing::new).map_err(|e| olm_error(from, "decryption", &e))
    }

    /// Reports a received key if it differs from the last one.
    fn apply_key_info(&mut self, from: &str, plaintext: &[u8]) -> Result<KeyInfoSeen, E2eeError> {
        let info = media_key::parse_key_info(plaintext)
            .map_err(|reason| E2eeError::InvalidKeyInfo { participant: from.to_owned(), reason })?;
        let Some(p) = self.participants.get_mut(from) else {
            return Err(E2eeError::UnknownParticipant { participant: from.to_owned() });
        };
        match info {
            KeyInfo::Absent => Ok(KeyInfoSeen::Absent),
            KeyInfo::Disabled => {
                // The peer sends clear frames now; its presence tells the caller.
                p.last_key = None;
                Ok(KeyInfoSeen::Key)
            }
            KeyInfo::Key { key_index, key } => {
                let unchanged = p.last_key.as_ref().is_some_and(|(i, k)| *i == key_index && **k == *key);
                if !unchanged {
                    let material = media_key::material(&key);
                    p.last_key = Some((key_index, key));
                    self.outputs.push_back(E2eeOutput::ParticipantKey {
                        participant: from.to_owned(),
                        index: media_key::frame_index(key_index),
                        material,
                    });
                }
                Ok(KeyInfoSeen::Key)
            }
        }
    }

    fn send_session_init(&mut self, now: Instant, id: &str) {
        let Some(p) = self.participants.get_mut(id) else { return };
        let generated = self.account.generate_one_time_keys(1);
        let Some(one_time_key) = generated.created.first() else {
            // vodozemac always creates the key it is asked for; should it not, say so.
            self.problem(E2eeError::Olm {
                participant: id.to_owned(),
                operation: "one-time key generation",
                reason: "no key was created".into(),
            });
            return;
        };
        let one_time_key = one_time_key.to_base64();
        self.account.mark_keys_as_published();
        let uuid = new_uuid();
        let json = messages::session_init(&self.identity.curve25519, &one_time_key, &uuid);
        p.pending_init = Some(PendingInit { uuid, deadline: now + REQUEST_TIMEOUT });
        p.init_attempts += 1;
        self.send(id, json);
    }

    /// Sends our current key to `id` as a key-info request; returns its uuid.
    fn send_key_info(&mut self, now: Instant, id: &str) -> Option<String> {
        let plaintext = media_key::key_info_plaintext(&self.own_key, self.key_index);
        let session = self.participants.get_mut(id)?.session.as_mut()?;
        let message = match session.encrypt(plaintext.as_bytes()) {
            Ok(message) => message,
            Err(e) => {
                self.problem(olm_error(id, "encryption", &e));
                return None;
            }
        };
        let uuid = new_uuid();
        self.send(id, messages::ciphered_message(CipheredKind::KeyInfo, &message, &uuid));
        self.key_requests
            .insert(uuid.clone(), KeyRequest { participant: id.to_owned(), deadline: now + REQUEST_TIMEOUT });
        Some(uuid)
    }

    // ---- Own key ----

    fn emit_own_key(&mut self) {
        self.outputs.push_back(E2eeOutput::OwnKey {
            index: media_key::frame_index(self.key_index),
            material: media_key::material(&self.own_key),
        });
    }

    /// lib-jitsi-meet's `_ratchetKeyImpl`: the next key in the ratchet, same index, used at once, nothing sent.
    fn ratchet_own_key(&mut self) {
        self.own_key = media_key::ratchet(&self.own_key);
        self.emit_own_key();
    }

    /// lib-jitsi-meet's `_rotateKeyImpl`: a new random key at the next index,
    /// sent to everyone with a session, used when all acknowledged or timed out.
    fn rotate_own_key(&mut self, now: Instant) {
        self.own_key = media_key::random_key();
        self.key_index += 1;
        let ids: Vec<String> =
            self.participants.iter().filter(|(_, p)| p.session.is_some()).map(|(id, _)| id.clone()).collect();
        let mut waiting = BTreeSet::new();
        for id in ids {
            if let Some(uuid) = self.send_key_info(now, &id) {
                waiting.insert(uuid);
            }
        }
        if waiting.is_empty() {
            self.rotation = None;
            self.emit_own_key();
        } else {
            // A newer key replaces one still waiting: only the newest gets used.
            self.rotation = Some(waiting);
        }
    }

    /// One request of the pending rotation settled; uses the new key once none is left.
    fn rotation_acknowledged(&mut self, uuid: &str) {
        let Some(waiting) = self.rotation.as_mut() else { return };
        waiting.remove(uuid);
        if waiting.is_empty() {
            self.rotation = None;
            self.emit_own_key();
        }
    }

    // ---- SAS ----

    fn on_sas_start(&mut self, from: &str, transaction_id: String) -> Result<(), E2eeError> {
        let p = self.session_participant(from, "sas-start")?;
        if p.used_transactions.contains(&transaction_id) {
            return Err(E2eeError::Sas {
                participant: from.to_owned(),
                reason: "sas-start of a transaction already run (replayed?)",
            });
        }
        if p.sas.is_some() {
            // lib-jitsi-meet fails its own verification here and keeps it; we
            // drop ours too so that either side can start again.
            p.sas = None;
            self.sas_event(from, SasEvent::Failed(SasFailure::ConcurrentStart));
            return Err(E2eeError::Sas {
                participant: from.to_owned(),
                reason: "sas-start while a verification was in progress",
            });
        }
        remember_transaction(p, &transaction_id);
        let state = SasState::new(transaction_id, false);
        let commitment = sas::commitment(&state.our_key, &messages::sas_start_data_json(&state.transaction_id));
        let json = messages::sas_accept(&commitment, &state.transaction_id);
        p.sas = Some(state);
        self.send(from, json);
        Ok(())
    }

    fn on_sas_accept(&mut self, from: &str, commitment: String, transaction_id: &str) -> Result<(), E2eeError> {
        let p = self.session_participant(from, "sas-accept")?;
        let state = sas_for(p, from, transaction_id)?;
        match std::mem::replace(&mut state.stage, Stage::Taken) {
            Stage::AwaitingAccept(sas) => {
                state.stage = Stage::AwaitingKey { sas, commitment: Some(commitment) };
                let json = messages::sas_key(&state.our_key, &state.transaction_id);
                self.send(from, json);
                Ok(())
            }
            other => {
                let already = matches!(other, Stage::AwaitingKey { commitment: Some(_), .. });
                state.stage = other;
                if already {
                    self.send_error(from, "Already received sas commitment message");
                }
                Err(E2eeError::Sas { participant: from.to_owned(), reason: "unexpected sas-accept" })
            }
        }
    }

    fn on_sas_key(&mut self, from: &str, their_key: &str, transaction_id: &str) -> Result<(), E2eeError> {
        let own_id = self.own_id.clone();
        let p = self.session_participant(from, "sas-key")?;
        let state = sas_for(p, from, transaction_id)?;
        let (sas, commitment) = match std::mem::replace(&mut state.stage, Stage::Taken) {
            Stage::AwaitingKey { sas, commitment } => (sas, commitment),
            other => {
                state.stage = other;
                return Err(E2eeError::Sas { participant: from.to_owned(), reason: "unexpected sas-key" });
            }
        };
        if let Some(commitment) = commitment {
            let expected = sas::commitment(their_key, &messages::sas_start_data_json(&state.transaction_id));
            if expected != commitment {
                p.sas = None;
                self.send_error(from, "OlmAdapter commitments mismatched");
                self.sas_event(from, SasEvent::Failed(SasFailure::CommitmentMismatch));
                return Ok(());
            }
        }
        let established = match sas.diffie_hellman_with_raw(their_key) {
            Ok(established) => established,
            Err(_) => {
                p.sas = None;
                self.sas_event(from, SasEvent::Failed(SasFailure::InvalidKey));
                return Ok(());
            }
        };
        let info = if state.starter {
            sas::code_info(&own_id, &state.our_key, from, their_key)
        } else {
            sas::code_info(from, their_key, &own_id, &state.our_key)
        };
        let code = sas::code(&established, &info);
        state.stage = Stage::Established(Box::new(established));
        let reply = (!state.starter).then(|| messages::sas_key(&state.our_key, &state.transaction_id));
        self.sas_event(from, SasEvent::Code(Box::new(code)));
        if let Some(json) = reply {
            self.send(from, json);
        }
        Ok(())
    }

    fn on_sas_mac(
        &mut self,
        from: &str,
        keys: &str,
        mac: &BTreeMap<String, String>,
        transaction_id: &str,
    ) -> Result<(), E2eeError> {
        let own_id = self.own_id.clone();
        let p = self.session_participant(from, "sas-mac")?;
        let their_ed25519 = p.keys.ed25519.clone();
        let state = sas_for(p, from, transaction_id)?;
        let Some(established) = state.established() else {
            return Err(E2eeError::Sas {
                participant: from.to_owned(),
                reason: "sas-mac before the keys were exchanged",
            });
        };
        if state.their_mac_verified {
            return Err(E2eeError::Sas { participant: from.to_owned(), reason: "second sas-mac" });
        }
        match sas::check_their_mac(established, from, &own_id, transaction_id, &their_ed25519, keys, mac) {
            Ok(()) => {
                state.their_mac_verified = true;
                if state.our_mac_sent {
                    p.sas = None;
                    self.sas_event(from, SasEvent::Verified);
                }
            }
            Err(failure) => {
                p.sas = None;
                self.sas_event(from, SasEvent::Failed(failure));
            }
        }
        Ok(())
    }

    /// The participant, which must have a session (else lib-jitsi-meet's error answer).
    fn session_participant(&mut self, from: &str, what: &'static str) -> Result<&mut Participant, E2eeError> {
        let has_session = self.participants.get(from).is_some_and(|p| p.session.is_some());
        if !has_session {
            self.send_error(from, &format!("No session found while processing {what}"));
            return Err(E2eeError::NoSession { participant: from.to_owned(), message: what });
        }
        self.participants.get_mut(from).ok_or_else(|| E2eeError::UnknownParticipant { participant: from.to_owned() })
    }

    // ---- Helpers ----

    /// Whether we send the session-init to `id` (lib-jitsi-meet: `myId < id` in JavaScript).
    fn initiates_with(&self, id: &str) -> bool {
        self.own_id.encode_utf16().lt(id.encode_utf16())
    }

    /// Drops the session, pending requests and verification with `id`.
    fn forget_session(&mut self, id: &str, sas_failure: SasFailure) {
        let Some(p) = self.participants.get_mut(id) else { return };
        p.session = None;
        p.pending_init = None;
        p.init_attempts = 0;
        p.last_key = None;
        let had_sas = p.sas.take().is_some();
        let uuids: Vec<String> =
            self.key_requests.iter().filter(|(_, r)| r.participant == id).map(|(u, _)| u.clone()).collect();
        for uuid in uuids {
            self.key_requests.remove(&uuid);
            self.rotation_acknowledged(&uuid);
        }
        if had_sas {
            self.sas_event(id, SasEvent::Failed(sas_failure));
        }
    }

    fn send(&mut self, to: &str, json: String) {
        self.outputs.push_back(E2eeOutput::Send { to: to.to_owned(), json });
    }

    fn send_error(&mut self, to: &str, text: &str) {
        self.send(to, messages::error(text));
    }

    fn sas_event(&mut self, participant: &str, event: SasEvent) {
        self.outputs.push_back(E2eeOutput::Sas { participant: participant.to_owned(), event });
    }

    fn problem(&mut self, error: E2eeError) {
        if self.problems.len() == MAX_PROBLEMS {
            self.problems.pop_front();
        }
        self.problems.push_back(error);
    }
}

enum KeyInfoSeen {
    Absent,
    Key,
}

/// The verification with `from` whose transaction is `transaction_id`.
fn sas_for<'a>(p: &'a mut Participant, from: &str, transaction_id: &str) -> Result<&'a mut SasState, E2eeError> {
    match p.sas.as_mut() {
        None => Err(E2eeError::Sas { participant: from.to_owned(), reason: "no verification in progress" }),
        Some(state) if state.transaction_id != transaction_id => {
            Err(E2eeError::Sas { participant: from.to_owned(), reason: "message for another transaction" })
        }
        Some(state) => Ok(state),
    }
}

fn remember_transaction(p: &mut Participant, transaction_id: &str) {
    if p.used_transactions.len() == REMEMBERED_TRANSACTIONS {
        p.used_transactions.pop_front();
    }
    p.used_transactions.push_back(transaction_id.to_owned());
}

fn olm_error(participant: &str, operation: &'static str, error: &dyn std::fmt::Display) -> E2eeError {
    E2eeError::Olm { participant: participant.to_owned(), operation, reason: error.to_string() }
}

/// Fills `bytes` from the operating system's random source.
pub(crate) fn fill_random(bytes: &mut [u8]) {
    // The OS generator does not fail on the systems we run on; vodozemac,
    // which draws its own keys from it, panics the same way if it does.
    getrandom::fill(bytes).expect("the operating system's random number generator failed");
}

/// A random (version 4) UUID, as lib-jitsi-meet's `uuid` makes for requests.
fn new_uuid() -> String {
    let mut b = [0u8; 16];
    fill_random(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}
