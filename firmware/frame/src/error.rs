//! The one error type of this crate. Every variant is something a peer or a
//! caller can cause; none of them carries key bytes.

use thiserror::Error;

/// Why a frame could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame has no bytes at all.
    #[error("empty frame")]
    Empty,
    /// The frame is shorter than its format's fixed parts.
    #[error("frame truncated: {len} bytes, the format needs at least {needed}")]
    Truncated { len: usize, needed: usize },
    /// The frame is larger than [`crate::MAX_FRAME_LEN`].
    #[error("frame of {len} bytes is larger than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    /// The trailer's IV-length byte is not 12.
    #[error("IV length byte is {0}, expected 12")]
    WrongIvLength(u8),
    /// No key is installed under the frame's key index (or key id).
    #[error("no key for key index {0}")]
    UnknownKeyIndex(u64),
    /// The sender has no key yet.
    #[error("no key set")]
    NoKey,
    /// The tag did not verify: wrong key, or clear or encrypted bytes altered.
    #[error("authentication failed (wrong key or tampered frame)")]
    AuthenticationFailed,
    /// The H.264 emulation-prevention escaping of the sealed part is invalid.
    #[error("invalid emulation-prevention escaping at byte {0}")]
    BadEscaping(usize),
    /// The H.264 access unit has no coded slice NAL unit (type 1 or 5).
    #[error("H.264 access unit has no slice NAL unit")]
    NoSliceNal,
    /// The SFrame header is malformed.
    #[error("malformed SFrame header")]
    BadHeader,
    /// An SFrame cipher suite this crate does not implement.
    #[error("unsupported SFrame cipher suite {0}")]
    UnsupportedSuite(u16),
    /// An SFrame counter that was already accepted or is older than the replay window.
    #[error("SFrame counter {ctr} replayed or too old")]
    Replay { ctr: u64 },
    /// The SFrame counter would overflow the nonce.
    #[error("SFrame counter exhausted")]
    CounterExhausted,
    /// Key bytes of the wrong length or encoding were supplied.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
}
