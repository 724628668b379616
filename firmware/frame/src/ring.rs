//! The sender and the receiver of the `jitsi` and `h264` formats.
//!
//! [`FrameEncryptor`] keeps lib-jitsi-meet's per-SSRC send counters (each
//! starting at a random value below 0xFFFF, from an injected source) and the
//! current key. [`FrameDecryptor`] keeps one participant's key ring of 16
//! slots; when a frame fails to authenticate it ratchets that slot's key
//! forward up to [`RATCHET_WINDOW`] times, keeps the ratcheted key if one
//! works, and drops the frame otherwise (the sender ratchets when someone
//! joins, and the receiver catches up this way).

use crate::backend::GcmLibrary;
use crate::jitsi::{FrameMeta, IV_LEN, JitsiKey, MediaKind, make_iv, unpack};
use crate::{FrameError, KeyMaterial};

/// Number of key slots; a key index selects slot `index mod 16`.
pub const KEY_RING_SLOTS: usize = 16;
/// How many ratchet steps a receiver tries before it drops a frame.
pub const RATCHET_WINDOW: u32 = 8;

/// Source of the first send counter of each new SSRC.
type CounterSeed = Box<dyn FnMut() -> u32 + Send>;

/// Seals outgoing frames under the current key.
pub struct FrameEncryptor {
    key: Option<JitsiKey>,
    library: GcmLibrary,
    /// (SSRC, next send count). A room sends two or three SSRCs; a linear scan beats hashing.
    counters: Vec<(u32, u32)>,
    counter_seed: CounterSeed,
}

impl core::fmt::Debug for FrameEncryptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameEncryptor").field("key", &self.key).field("ssrcs", &self.counters.len()).finish()
    }
}

impl FrameEncryptor {
    /// A sender whose counters start at values drawn from `counter_seed` (taken mod 0xFFFF).
    pub fn new(counter_seed: impl FnMut() -> u32 + Send + 'static) -> Self {
        Self { key: None, library: GcmLibrary::preferred(), counters: Vec::new(), counter_seed: Box::new(counter_seed) }
    }

    /// A sender with counters seeded from the operating system's random source.
    pub fn with_random_counters() -> Self {
        Self::new(|| {
            let mut b = [0u8; 4];
            // Without OS randomness the counter start is predictable, which is
            // only a loss of IV diversity across restarts, never of confidentiality
            // within a key (the SSRC and timestamp still vary); fall back to 0.
            if getrandom::fill(&mut b).is_err() {
                return 0;
            }
            u32::from_le_bytes(b)
        })
    }

    /// Chooses the AES-GCM library for keys set from now on.
    pub fn set_library(&mut self, library: GcmLibrary) {
        self.library = library;
    }

    /// Installs a new key; frames from now on carry `index`.
    pub fn set_key(&mut self, index: u8, material: KeyMaterial) {
        self.key = Some(JitsiKey::with_library(index, material, self.library));
    }

    /// Ratchets the current key one step (a participant joined).
    pub fn ratchet(&mut self) {
        if let Some(key) = &self.key {
            self.key = Some(key.ratcheted());
        }
    }

    /// The key index frames are sealed under.
    pub fn key_index(&self) -> Option<u8> {
        self.key.as_ref().map(JitsiKey::index)
    }

    /// Seals one frame and advances its SSRC's send counter.
    pub fn seal(&mut self, meta: FrameMeta, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::new();
        self.seal_into(meta, payload, &mut out)?;
        Ok(out)
    }

    /// Seals one frame into `out`, replacing what it held; see
    /// [`JitsiKey::seal_into`]. Keep `out` between frames and nothing is allocated.
    pub fn seal_into(&mut self, meta: FrameMeta, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let (key, iv, count) = self.next_iv(meta)?;
        key.seal_into(meta.kind, &iv, payload, out)?;
        *count = count.wrapping_add(1);
        Ok(())
    }

    /// Seals the payload `frame` holds where it lies; see [`JitsiKey::seal_in_place`].
    pub fn seal_in_place(&mut self, meta: FrameMeta, frame: &mut Vec<u8>) -> Result<(), FrameError> {
        let (key, iv, count) = self.next_iv(meta)?;
        key.seal_in_place(meta.kind, &iv, frame)?;
        *count = count.wrapping_add(1);
        Ok(())
    }

    /// The current key, the IV for this frame and its SSRC's counter (to
    /// advance once the frame is sealed).
    fn next_iv(&mut self, meta: FrameMeta) -> Result<(&JitsiKey, [u8; IV_LEN], &mut u32), FrameError> {
        let key = self.key.as_ref().ok_or(FrameError::NoKey)?;
        let at = match self.counters.iter().position(|(ssrc, _)| *ssrc == meta.ssrc) {
            Some(at) => at,
            None => {
                let start = (self.counter_seed)() % 0xFFFF;
                self.counters.push((meta.ssrc, start));
                self.counters.len() - 1
            }
        };
        let count = &mut self.counters[at].1;
        Ok((key, make_iv(meta.ssrc, meta.rtp_timestamp, *count), count))
    }
}

/// Opens one remote participant's frames with its key ring.
#[derive(Debug)]
pub struct FrameDecryptor {
    ring: [Option<JitsiKey>; KEY_RING_SLOTS],
    library: GcmLibrary,
}

impl Default for FrameDecryptor {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecryptor {
    pub fn new() -> Self {
        Self { ring: Default::default(), library: GcmLibrary::preferred() }
    }

    /// Chooses the AES-GCM library for keys set from now on.
    pub fn set_library(&mut self, library: GcmLibrary) {
        self.library = library;
    }

    /// Installs the participant's key for `index` (slot `index mod 16`).
    pub fn set_key(&mut self, index: u8, material: KeyMaterial) {
        self.ring[usize::from(index) % KEY_RING_SLOTS] = Some(JitsiKey::with_library(index, material, self.library));
    }

    /// Forgets every key (the participant left).
    pub fn clear(&mut self) {
        self.ring = Default::default();
    }

    /// Opens a frame, ratcheting its slot forward if the current key fails.
    pub fn open(&mut self, kind: MediaKind, frame: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(frame.len());
        self.open_into(kind, frame, &mut out)?;
        Ok(out)
    }

    /// Opens a frame into `out`, replacing what it held (see
    /// [`JitsiKey::open_into`]); ratchets like [`Self::open`]. On failure
    /// `out` is left empty.
    pub fn open_into(&mut self, kind: MediaKind, frame: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let trailer = unpack(kind, frame, out)?;
        let slot = usize::from(trailer.key_index) % KEY_RING_SLOTS;
        let key = match &self.ring[slot] {
            Some(key) if key.index() == trailer.key_index => key,
            _ => {
                out.clear();
                return Err(FrameError::UnknownKeyIndex(trailer.key_index.into()));
            }
        };
        match key.open_unpacked(&trailer, out) {
            Err(FrameError::AuthenticationFailed) => {}
            other => return other,
        }
        // A failed open leaves `out` empty: each candidate starts from the frame again.
        let mut candidate = key.ratcheted();
        for step in 1..=RATCHET_WINDOW {
            let trailer = unpack(kind, frame, out)?;
            if candidate.open_unpacked(&trailer, out).is_ok() {
                self.ring[slot] = Some(candidate);
                return Ok(());
            }
            if step < RATCHET_WINDOW {
                candidate = candidate.ratcheted();
            }
        }
        Err(FrameError::AuthenticationFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(b: u8) -> KeyMaterial {
        KeyMaterial::from_hex(&format!("{b:02x}").repeat(32)).unwrap()
    }

    fn meta(ssrc: u32, ts: u32, kind: MediaKind) -> FrameMeta {
        FrameMeta { ssrc, rtp_timestamp: ts, kind }
    }

    #[test]
    fn counters_are_per_ssrc_and_seeded() {
        let mut seeds = vec![0x1_0000u32 + 5, 70].into_iter();
        let mut tx = FrameEncryptor::new(move || seeds.next().unwrap_or(0));
        tx.set_key(1, material(1));
        let a1 = tx.seal(meta(10, 0, MediaKind::Opus), &[1, 2, 3]).unwrap();
        let b1 = tx.seal(meta(20, 0, MediaKind::Opus), &[1, 2, 3]).unwrap();
        let a2 = tx.seal(meta(10, 0, MediaKind::Opus), &[1, 2, 3]).unwrap();
        let count = |f: &[u8]| u32::from_be_bytes(f[f.len() - 6..f.len() - 2].try_into().unwrap());
        assert_eq!(count(&a1), 6, "0x10005 mod 0xFFFF");
        assert_eq!(count(&a2), 7);
        assert_eq!(count(&b1), 70);
    }

    #[test]
    fn receiver_catches_up_with_ratcheted_sender() {
        let mut tx = FrameEncryptor::new(|| 0);
        let mut rx = FrameDecryptor::new();
        tx.set_key(2, material(9));
        rx.set_key(2, material(9));
        let f = tx.seal(meta(1, 1, MediaKind::Vp8Delta), b"hello frame").unwrap();
        assert_eq!(rx.open(MediaKind::Vp8Delta, &f).unwrap(), b"hello frame");
        for _ in 0..3 {
            tx.ratchet();
        }
        let f = tx.seal(meta(1, 2, MediaKind::Vp8Delta), b"after join").unwrap();
        assert_eq!(rx.open(MediaKind::Vp8Delta, &f).unwrap(), b"after join");
        // The ratcheted key was kept: an old-key frame no longer opens...
        let mut old = FrameEncryptor::new(|| 0);
        old.set_key(2, material(9));
        let stale = old.seal(meta(1, 3, MediaKind::Vp8Delta), b"stale").unwrap();
        assert_eq!(rx.open(MediaKind::Vp8Delta, &stale), Err(FrameError::AuthenticationFailed));
        // ...and a new-key frame opens without ratcheting again.
        let f = tx.seal(meta(1, 4, MediaKind::Vp8Delta), b"again").unwrap();
        assert_eq!(rx.open(MediaKind::Vp8Delta, &f).unwrap(), b"again");
    }

    #[test]
    fn ratchet_window_is_eight() {
        for (steps, ok) in [(8, true), (9, false)] {
            let mut tx = FrameEncryptor::new(|| 0);
            let mut rx = FrameDecryptor::new();
            tx.set_key(0, material(3).ratchet_n(steps));
            rx.set_key(0, material(3));
            let f = tx.seal(meta(1, 1, MediaKind::Opus), b"x").unwrap();
            assert_eq!(rx.open(MediaKind::Opus, &f).is_ok(), ok, "{steps} steps");
        }
    }

    #[test]
    fn unknown_and_aliased_key_indexes() {
        let mut tx = FrameEncryptor::new(|| 0);
        let mut rx = FrameDecryptor::new();
        rx.set_key(1, material(5));
        assert_eq!(tx.seal(meta(1, 1, MediaKind::Opus), b"x"), Err(FrameError::NoKey));
        tx.set_key(17, material(5));
        let f = tx.seal(meta(1, 1, MediaKind::Opus), b"x").unwrap();
        assert_eq!(rx.open(MediaKind::Opus, &f), Err(FrameError::UnknownKeyIndex(17)));
        rx.set_key(17, material(5));
        assert_eq!(rx.open(MediaKind::Opus, &f).unwrap(), b"x");
        assert_eq!(tx.key_index(), Some(17));
    }

    #[test]
    fn wrong_key_fails_and_keeps_the_slot() {
        let mut tx = FrameEncryptor::new(|| 0);
        let mut rx = FrameDecryptor::new();
        tx.set_key(0, material(1));
        rx.set_key(0, material(2));
        let f = tx.seal(meta(1, 1, MediaKind::Vp8Key), &[0u8; 50]).unwrap();
        assert_eq!(rx.open(MediaKind::Vp8Key, &f), Err(FrameError::AuthenticationFailed));
        rx.set_key(0, material(1));
        assert!(rx.open(MediaKind::Vp8Key, &f).is_ok());
    }
}
