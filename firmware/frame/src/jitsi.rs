//! lib-jitsi-meet's AES-GCM frame format, and its H.264 variant.
//!
//! A sealed frame is
//!
//! ```text
//! clear[N] ‖ AES-128-GCM(payload[N..]) ‖ tag(16) ‖ IV(12) ‖ 0x0C ‖ key_index
//! ```
//!
//! with the clear bytes as additional authenticated data. N is 10 for a VP8
//! key frame, 3 for a VP8 delta frame and 1 for Opus (the TOC byte), so the
//! SFU and the depacketizer still see the codec headers they need. The IV is
//! `BE32(SSRC) ‖ BE32(RTP timestamp) ‖ BE32(send_count mod 0xFFFF)`.
//! The AES key is HKDF-SHA-256(material, salt "JFrameEncryptionKey", no info,
//! 16 bytes); see [`crate::KeyMaterial::ratchet`] for the ratchet.
//!
//! For [`MediaKind::H264`] the clear prefix is every NAL unit before the
//! first slice plus that slice's NAL header and one more byte, and everything
//! after the clear prefix is escaped with emulation prevention (see
//! [`crate::h264`]).

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::backend::{GCM_NONCE_LEN, GCM_TAG_LEN, GcmKey, GcmLibrary};
use crate::{FrameError, KeyMaterial, MAX_FRAME_LEN, h264};

/// Salt of the AES key derivation.
const ENCRYPTION_KEY_SALT: &[u8] = b"JFrameEncryptionKey";
/// Length of the IV written into each frame.
pub const IV_LEN: usize = 12;
/// IV length byte plus key index byte.
pub const TRAILER_LEN: usize = 2;
/// Bytes a sealed frame adds to the payload (before any H.264 escaping).
pub const OVERHEAD: usize = GCM_TAG_LEN + IV_LEN + TRAILER_LEN;

/// What the frame carries; decides how many leading bytes stay clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A VP8 key frame: 10 clear bytes (payload header and key-frame header).
    Vp8Key,
    /// A VP8 inter frame: 3 clear bytes.
    Vp8Delta,
    /// An Opus packet: the TOC byte stays clear.
    Opus,
    /// An H.264 access unit in Annex B form (the `h264` format).
    H264,
}

impl MediaKind {
    /// The fixed clear length, or `None` for H.264 where it depends on the NAL units.
    pub fn fixed_clear_len(self) -> Option<usize> {
        match self {
            MediaKind::Vp8Key => Some(10),
            MediaKind::Vp8Delta => Some(3),
            MediaKind::Opus => Some(1),
            MediaKind::H264 => None,
        }
    }

    /// For VP8, the kind a payload is, read from its first byte (RFC 6386 §9.1: bit 0 clear = key frame).
    pub fn vp8_from_payload(payload: &[u8]) -> Self {
        match payload.first() {
            Some(b) if b & 1 == 0 => MediaKind::Vp8Key,
            _ => MediaKind::Vp8Delta,
        }
    }
}

/// Where a frame comes from, for the IV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    pub ssrc: u32,
    pub rtp_timestamp: u32,
    pub kind: MediaKind,
}

/// One key of the ring: its index, the material it came from (to ratchet)
/// and the expanded AES-128-GCM key.
pub struct JitsiKey {
    index: u8,
    material: KeyMaterial,
    library: GcmLibrary,
    gcm: GcmKey,
}

impl core::fmt::Debug for JitsiKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JitsiKey")
            .field("index", &self.index)
            .field("material", &self.material)
            .field("library", &self.library)
            .finish()
    }
}

impl JitsiKey {
    /// Derives the frame key from `material` with the preferred AES-GCM library.
    pub fn new(index: u8, material: KeyMaterial) -> Self {
        Self::with_library(index, material, GcmLibrary::preferred())
    }

    /// Derives the frame key with a chosen AES-GCM library (benchmarks, tests).
    pub fn with_library(index: u8, material: KeyMaterial, library: GcmLibrary) -> Self {
        let mut aes_key = Zeroizing::new([0u8; 16]);
        Hkdf::<Sha256>::new(Some(ENCRYPTION_KEY_SALT), material.expose())
            .expand(&[], &mut *aes_key)
            .expect("16 bytes is a valid HKDF-SHA-256 output length");
        let gcm = GcmKey::new(library, &*aes_key).expect("a 16-byte key is a valid AES-128 key");
        Self { index, material, library, gcm }
    }

    /// The key one ratchet step on, under the same index.
    pub fn ratcheted(&self) -> Self {
        Self::with_library(self.index, self.material.ratchet(), self.library)
    }

    pub fn index(&self) -> u8 {
        self.index
    }

    /// Seals `payload` with the given IV into a new frame.
    pub fn seal(&self, kind: MediaKind, iv: &[u8; IV_LEN], payload: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(sealed_capacity(payload.len()));
        self.seal_into(kind, iv, payload, &mut out)?;
        Ok(out)
    }

    /// Seals `payload` into `out`, replacing what it held. A caller that keeps
    /// `out` from frame to frame allocates nothing once it has grown to the
    /// largest frame: the payload is copied once and encrypted where it lies.
    pub fn seal_into(
        &self,
        kind: MediaKind,
        iv: &[u8; IV_LEN],
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FrameError> {
        check_payload(payload)?;
        out.clear();
        out.reserve(sealed_capacity(payload.len()));
        out.extend_from_slice(payload);
        self.seal_in_place(kind, iv, out)
    }

    /// Seals the payload that `frame` holds where it lies: on success `frame`
    /// holds the sealed frame, with no copy made. It grows by [`OVERHEAD`]
    /// bytes (and for H.264 by any escape bytes), so a caller that reserves
    /// them avoids a reallocation. On failure the payload is left as it was.
    pub fn seal_in_place(&self, kind: MediaKind, iv: &[u8; IV_LEN], frame: &mut Vec<u8>) -> Result<(), FrameError> {
        check_payload(frame)?;
        let clear_len = match kind.fixed_clear_len() {
            Some(n) => n.min(frame.len()),
            None => h264::clear_prefix_len(frame)?,
        };
        let (clear, body) = frame.split_at_mut(clear_len);
        let tag = self.gcm.seal(iv, clear, body)?;
        frame.reserve(OVERHEAD);
        frame.extend_from_slice(&tag);
        frame.extend_from_slice(iv);
        frame.extend_from_slice(&[IV_LEN as u8, self.index]);
        if kind == MediaKind::H264 {
            h264::escape_in_place(frame, clear_len);
        }
        Ok(())
    }

    /// Opens a sealed frame. The frame's key index must be this key's.
    pub fn open(&self, kind: MediaKind, frame: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(frame.len());
        self.open_into(kind, frame, &mut out)?;
        Ok(out)
    }

    /// Opens a sealed frame into `out`, replacing what it held (the frame is
    /// copied once and decrypted where it lies; no allocation once `out` has
    /// grown to the largest frame). On failure `out` is left empty.
    pub fn open_into(&self, kind: MediaKind, frame: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let trailer = unpack(kind, frame, out)?;
        if trailer.key_index != self.index {
            out.clear();
            return Err(FrameError::UnknownKeyIndex(trailer.key_index.into()));
        }
        self.open_unpacked(&trailer, out)
    }

    /// Decrypts what [`unpack`] left in `buf` (clear ‖ ciphertext ‖ tag);
    /// on success `buf` holds the payload, on failure nothing.
    pub(crate) fn open_unpacked(&self, trailer: &Trailer, buf: &mut Vec<u8>) -> Result<(), FrameError> {
        let (clear, body) = buf.split_at_mut(trailer.clear_len);
        match self.gcm.open(&trailer.iv, clear, body) {
            Ok(()) => {
                buf.truncate(buf.len() - GCM_TAG_LEN);
                Ok(())
            }
            Err(e) => {
                buf.clear();
                Err(e)
            }
        }
    }
}

/// Capacity a sealed frame of a `payload_len`-byte payload needs, with room
/// for a few H.264 escape bytes.
fn sealed_capacity(payload_len: usize) -> usize {
    payload_len + OVERHEAD + 8
}

fn check_payload(payload: &[u8]) -> Result<(), FrameError> {
    if payload.is_empty() {
        return Err(FrameError::Empty);
    }
    if payload.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len: payload.len(), max: MAX_FRAME_LEN });
    }
    Ok(())
}

/// The unencrypted fields at the end of a sealed frame, and how many bytes
/// at its start were sent in the clear.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trailer {
    pub clear_len: usize,
    pub iv: [u8; GCM_NONCE_LEN],
    pub key_index: u8,
}

/// Copies a sealed frame into `buf` as clear ‖ ciphertext ‖ tag (H.264
/// escaping undone) and reads its trailer. On failure `buf` is left empty.
pub(crate) fn unpack(kind: MediaKind, frame: &[u8], buf: &mut Vec<u8>) -> Result<Trailer, FrameError> {
    buf.clear();
    let result = unpack_unchecked(kind, frame, buf);
    if result.is_err() {
        buf.clear();
    }
    result
}

fn unpack_unchecked(kind: MediaKind, frame: &[u8], buf: &mut Vec<u8>) -> Result<Trailer, FrameError> {
    if frame.is_empty() {
        return Err(FrameError::Empty);
    }
    if frame.len() > MAX_FRAME_LEN + OVERHEAD * 2 {
        return Err(FrameError::TooLarge { len: frame.len(), max: MAX_FRAME_LEN });
    }
    let clear_len = match kind.fixed_clear_len() {
        Some(n) => n.min(frame.len().saturating_sub(OVERHEAD)),
        None => h264::clear_prefix_len(frame)?,
    };
    let rest_len = match kind {
        MediaKind::H264 => {
            // The trailer is escaped too: unescape before reading it.
            buf.extend_from_slice(frame);
            h264::unescape_in_place(buf, clear_len).map_err(|at| FrameError::BadEscaping(clear_len + at))?;
            buf.len() - clear_len
        }
        _ => frame.len() - clear_len,
    };
    if rest_len < OVERHEAD {
        return Err(FrameError::Truncated { len: frame.len(), needed: clear_len + OVERHEAD });
    }
    let unescaped: &[u8] = if kind == MediaKind::H264 { buf } else { frame };
    let n = unescaped.len();
    let iv_len = unescaped[n - 2];
    if usize::from(iv_len) != IV_LEN {
        return Err(FrameError::WrongIvLength(iv_len));
    }
    let key_index = unescaped[n - 1];
    let mut iv = [0u8; GCM_NONCE_LEN];
    iv.copy_from_slice(&unescaped[n - TRAILER_LEN - IV_LEN..n - TRAILER_LEN]);
    let sealed_end = n - TRAILER_LEN - IV_LEN;
    if kind == MediaKind::H264 {
        buf.truncate(sealed_end);
    } else {
        buf.extend_from_slice(&frame[..sealed_end]);
    }
    Ok(Trailer { clear_len, iv, key_index })
}

/// The unencrypted trailer fields of a sealed frame, read without a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedParts {
    pub key_index: u8,
    pub iv: [u8; IV_LEN],
    /// Number of leading bytes sent in the clear.
    pub clear_len: usize,
}

impl SealedParts {
    /// Parses a sealed frame's layout (undoing H.264 escaping) without decrypting it.
    pub fn of(kind: MediaKind, frame: &[u8]) -> Result<Self, FrameError> {
        let trailer = unpack(kind, frame, &mut Vec::new())?;
        Ok(Self { key_index: trailer.key_index, iv: trailer.iv, clear_len: trailer.clear_len })
    }
}

/// Reads the key index of a sealed frame without opening it.
pub fn key_index_of(frame: &[u8]) -> Option<u8> {
    frame.last().copied()
}

/// lib-jitsi-meet's IV: `BE32(ssrc) ‖ BE32(rtp_timestamp) ‖ BE32(send_count mod 0xFFFF)`.
pub fn make_iv(ssrc: u32, rtp_timestamp: u32, send_count: u32) -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    iv[..4].copy_from_slice(&ssrc.to_be_bytes());
    iv[4..8].copy_from_slice(&rtp_timestamp.to_be_bytes());
    iv[8..].copy_from_slice(&(send_count % 0xFFFF).to_be_bytes());
    iv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: u8, byte: u8) -> JitsiKey {
        JitsiKey::with_library(
            index,
            KeyMaterial::from_hex(&format!("{byte:02x}").repeat(32)).unwrap(),
            GcmLibrary::RustCrypto,
        )
    }

    #[test]
    fn layout_matches_the_format() {
        let k = key(3, 0x11);
        let payload: Vec<u8> = (0u8..40).collect();
        let iv = make_iv(0x01020304, 0x0a0b0c0d, 0x1_0005);
        let sealed = k.seal(MediaKind::Vp8Delta, &iv, &payload).unwrap();
        assert_eq!(sealed.len(), payload.len() + OVERHEAD);
        assert_eq!(&sealed[..3], &payload[..3], "VP8 delta keeps 3 clear bytes");
        assert_ne!(&sealed[3..40], &payload[3..40]);
        let n = sealed.len();
        assert_eq!(sealed[n - 1], 3, "key index last");
        assert_eq!(sealed[n - 2], 12, "IV length byte");
        // send_count 0x10005 mod 0xFFFF = 6
        assert_eq!(&sealed[n - 14..n - 2], &[1, 2, 3, 4, 0xa, 0xb, 0xc, 0xd, 0, 0, 0, 6]);
        assert_eq!(k.open(MediaKind::Vp8Delta, &sealed).unwrap(), payload);
    }

    #[test]
    fn clear_lengths_per_kind() {
        let k = key(0, 0x22);
        let payload = [0xAAu8; 64];
        let iv = make_iv(1, 2, 3);
        for (kind, n) in [(MediaKind::Vp8Key, 10), (MediaKind::Vp8Delta, 3), (MediaKind::Opus, 1)] {
            let sealed = k.seal(kind, &iv, &payload).unwrap();
            assert_eq!(&sealed[..n], &payload[..n]);
            assert_ne!(
                sealed[n], 0xAA,
                "{kind:?} byte {n} must be encrypted (probability of equality 1/256 fixed by key)"
            );
        }
    }

    #[test]
    fn short_payload_keeps_everything_clear_and_still_authenticates() {
        let k = key(0, 0x33);
        let sealed = k.seal(MediaKind::Vp8Key, &make_iv(1, 1, 1), &[9, 8, 7]).unwrap();
        assert_eq!(sealed.len(), 3 + OVERHEAD);
        assert_eq!(k.open(MediaKind::Vp8Key, &sealed).unwrap(), vec![9, 8, 7]);
        let mut t = sealed.clone();
        t[0] ^= 1;
        assert_eq!(k.open(MediaKind::Vp8Key, &t), Err(FrameError::AuthenticationFailed));
    }

    #[test]
    fn vp8_kind_from_payload() {
        assert_eq!(MediaKind::vp8_from_payload(&[0x10]), MediaKind::Vp8Key);
        assert_eq!(MediaKind::vp8_from_payload(&[0x11]), MediaKind::Vp8Delta);
        assert_eq!(MediaKind::vp8_from_payload(&[]), MediaKind::Vp8Delta);
    }
}
