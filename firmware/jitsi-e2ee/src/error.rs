//! The crate's one error type. No variant carries key material or plaintext.

/// What went wrong with a message, a participant or a request.
///
/// Participant ids and peer texts are untrusted: they print with `{:?}`
/// (escaped) and peer texts are clipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum E2eeError {
    /// The text is not one of lib-jitsi-meet's Olm messages.
    #[error("Olm message from {participant:?} is malformed: {reason}")]
    Malformed { participant: String, reason: String },
    /// The sender is not a participant we were told advertises E2EE.
    #[error("Olm message from {participant:?}, who is not a known E2EE participant")]
    UnknownParticipant { participant: String },
    /// The participant's presence carried identity keys that are not valid keys.
    #[error("participant {participant:?} advertised an invalid {which} identity key")]
    InvalidIdentityKey { participant: String, which: &'static str },
    /// A session-init whose identity key is not the one in the sender's presence.
    #[error("session-init from {participant:?} names an identity key other than its presence's")]
    IdentityKeyMismatch { participant: String },
    /// A message that needs an Olm session with a participant we have none with.
    #[error("{message} from {participant:?}, but there is no Olm session with them")]
    NoSession { participant: String, message: &'static str },
    /// A session-init or session-ack while a session already exists (also a replay).
    #[error("{message} from {participant:?}, but an Olm session with them already exists")]
    SessionExists { participant: String, message: &'static str },
    /// A session-ack for no session-init of ours (late, replayed or forged).
    #[error("session-ack from {participant:?} does not answer our pending session-init")]
    UnexpectedAck { participant: String },
    /// Olm refused a message: bad MAC, replayed or out-of-window message, unknown one-time key.
    #[error("Olm {operation} with {participant:?} failed: {reason}")]
    Olm { participant: String, operation: &'static str, reason: String },
    /// A decrypted key-info plaintext that is not `{"key": …, "keyIndex": …}`.
    #[error("key info from {participant:?} is invalid: {reason}")]
    InvalidKeyInfo { participant: String, reason: &'static str },
    /// The peer sent lib-jitsi-meet's `error` message (its text, clipped).
    #[error("participant {participant:?} reported an Olm error: {message:?}")]
    PeerError { participant: String, message: String },
    /// A SAS message or call that does not fit the verification's state.
    #[error("SAS with {participant:?}: {reason}")]
    Sas { participant: String, reason: &'static str },
    /// Our session-init was not acknowledged in time.
    #[error("participant {participant:?} did not answer our session-init (attempt {attempt} of {attempts})")]
    SessionInitTimeout { participant: String, attempt: u32, attempts: u32 },
    /// Our key-info was not acknowledged in time.
    #[error("participant {participant:?} did not acknowledge our key")]
    KeyInfoTimeout { participant: String },
    /// The participant's presence now carries other identity keys; its session was dropped.
    #[error("participant {participant:?} changed its identity keys; its Olm session was dropped")]
    IdentityKeysChanged { participant: String },
}
