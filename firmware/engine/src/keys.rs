//! The key provider: which key seals our frames and which keys open each
//! participant's, and the check digits people compare out loud.
//!
//! Sources today: the meeting link's shared key (`#e2ee=` or
//! `#passphrase=`), used by everyone at key index 0; and keys a connector
//! announces per participant (`signalling::Event::ParticipantKey`, e.g.
//! Jitsi's Olm exchange), which replace the shared key for that participant
//! at their index. A receiver ratchets a key forward when a frame does not
//! open with it (lib-jitsi-meet's behaviour, in `cloakroom_frame`'s
//! `FrameDecryptor`).
//!
//! Key material stays here and in the frame crate's types, which zeroize on
//! drop and never print; the rest of the room sees [`verification_string`]
//! digits only.

use std::collections::BTreeMap;

use cloakroom_connectors::signalling::ParticipantId;
use cloakroom_frame::jitsi::{JitsiKey, MediaKind};
use cloakroom_frame::{FrameDecryptor, FrameEncryptor, KeyMaterial};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The key index the link's shared key is used at.
pub const SHARED_KEY_INDEX: u8 = 0;

/// The keys of one meeting.
#[derive(Debug, Default)]
pub struct KeyProvider {
    shared: Option<KeyMaterial>,
    /// Keys come from the connector's exchange (Jitsi's Olm): our own as
    /// [`KeyProvider::set_own_key`], everyone's as participant keys.
    exchanged: bool,
    own: Option<(u8, KeyMaterial)>,
    participants: BTreeMap<ParticipantId, BTreeMap<u8, KeyMaterial>>,
}

impl KeyProvider {
    /// Keys from the link: `None` for a meeting that is not end-to-end encrypted.
    pub fn new(shared: Option<KeyMaterial>) -> Self {
        Self { shared, exchanged: false, own: None, participants: BTreeMap::new() }
    }

    /// Keys exchanged in the meeting (Jitsi's Olm): nothing is sealed until
    /// the connector gives our key, and a participant's frames open only
    /// with keys they announced.
    pub fn exchanged() -> Self {
        Self { shared: None, exchanged: true, own: None, participants: BTreeMap::new() }
    }

    /// Whether our media is sealed (in an exchange: will be, once our key is known).
    pub fn encrypted(&self) -> bool {
        self.shared.is_some() || self.exchanged
    }

    /// Whether keys come from the connector's exchange.
    pub fn is_exchanged(&self) -> bool {
        self.exchanged
    }

    /// Our own key from the exchange (at this index from now on).
    pub fn set_own_key(&mut self, index: u8, material: KeyMaterial) {
        self.own = Some((index, material));
    }

    /// The sealer for our own media (with random starting counters), or
    /// `None` when the meeting is not encrypted.
    pub fn encryptor(&self) -> Option<FrameEncryptor> {
        let (index, key) = match (&self.shared, &self.own) {
            (Some(key), _) => (SHARED_KEY_INDEX, key),
            (None, Some((index, key))) => (*index, key),
            (None, None) => return None,
        };
        let mut e = FrameEncryptor::with_random_counters();
        e.set_key(index, key.clone());
        Some(e)
    }

    /// The opener for `participant`'s frames: the shared key, then any key
    /// the participant announced. `None` when nothing of theirs is sealed.
    pub fn decryptor(&self, participant: &ParticipantId) -> Option<FrameDecryptor> {
        let announced = self.participants.get(participant);
        if self.shared.is_none() && announced.is_none() && !self.exchanged {
            return None;
        }
        let mut d = FrameDecryptor::new();
        if let Some(key) = &self.shared {
            d.set_key(SHARED_KEY_INDEX, key.clone());
        }
        for (index, key) in announced.into_iter().flatten() {
            d.set_key(*index, key.clone());
        }
        Some(d)
    }

    /// A participant announced their key at `index`.
    pub fn set_participant_key(&mut self, participant: ParticipantId, index: u8, material: KeyMaterial) {
        self.participants.entry(participant).or_default().insert(index, material);
    }

    /// The participant left: their keys go (and are wiped).
    pub fn forget(&mut self, participant: &ParticipantId) {
        self.participants.remove(participant);
    }

    /// The shared key's check digits, if the meeting has one.
    pub fn verification(&self) -> Option<String> {
        self.shared.as_ref().map(verification_string)
    }
}

const VERIFICATION_LABEL: &[u8] = b"cloakroom/verification/v1";

/// Fifteen digits in groups of three, derived from the meeting key so that
/// people in the meeting can compare it out loud without showing it.
///
/// The digits come from a frame sealed with the meeting's frame key (the
/// same HKDF step every participant runs), hashed once more with HKDF under
/// a label of our own: equal digits mean equal keys; the digits say nothing
/// usable about the key itself.
pub fn verification_string(key: &KeyMaterial) -> String {
    const IV: [u8; 12] = *b"cloakroom-vs";
    let frame_key = JitsiKey::new(0, key.clone());
    // Sealing a fixed block cannot fail for an Opus-sized frame; an empty
    // result would still give digits, just not comparable ones.
    let sealed = Zeroizing::new(frame_key.seal(MediaKind::Opus, &IV, &[0u8; 32]).unwrap_or_default());
    let mut out = Zeroizing::new([0u8; 8]);
    let _ = Hkdf::<Sha256>::new(Some(VERIFICATION_LABEL), &sealed).expand(b"digits", &mut *out);
    let n = u64::from_be_bytes(*out) % 1_000_000_000_000_000;
    let digits = format!("{n:015}");
    digits.as_bytes().chunks(3).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use cloakroom_frame::FrameMeta;

    use super::*;

    fn key(b: u8) -> KeyMaterial {
        KeyMaterial::from_bytes(&mut [b; 32])
    }

    fn sealed_with(k: u8, index: u8) -> Vec<u8> {
        let mut e = FrameEncryptor::new(|| 5);
        e.set_key(index, key(k));
        e.seal(FrameMeta { ssrc: 1, rtp_timestamp: 2, kind: MediaKind::Opus }, &[0xf8, 1, 2, 3]).expect("seal")
    }

    #[test]
    fn the_shared_key_opens_everyone_and_an_announced_key_opens_only_its_owner() {
        let alice = ParticipantId("alice".into());
        let bob = ParticipantId("bob".into());
        let mut keys = KeyProvider::new(Some(key(1)));
        assert!(keys.encrypted());
        keys.set_participant_key(alice.clone(), 3, key(9));
        let mut for_alice = keys.decryptor(&alice).expect("alice");
        let mut for_bob = keys.decryptor(&bob).expect("bob");
        assert!(for_alice.open(MediaKind::Opus, &sealed_with(1, 0)).is_ok());
        assert!(for_bob.open(MediaKind::Opus, &sealed_with(1, 0)).is_ok());
        assert!(for_alice.open(MediaKind::Opus, &sealed_with(9, 3)).is_ok());
        assert!(for_bob.open(MediaKind::Opus, &sealed_with(9, 3)).is_err(), "bob never announced key 3");
        keys.forget(&alice);
        assert!(keys.decryptor(&alice).expect("shared").open(MediaKind::Opus, &sealed_with(9, 3)).is_err());
    }

    #[test]
    fn without_a_key_nothing_is_sealed_or_opened() {
        let mut keys = KeyProvider::new(None);
        assert!(!keys.encrypted() && keys.encryptor().is_none() && keys.verification().is_none());
        let carol = ParticipantId("carol".into());
        assert!(keys.decryptor(&carol).is_none());
        keys.set_participant_key(carol.clone(), 1, key(4));
        assert!(keys.decryptor(&carol).is_some(), "a participant's own key still opens their frames");
    }

    #[test]
    fn an_exchange_seals_nothing_before_our_key_and_opens_only_announced_keys() {
        let mut keys = KeyProvider::exchanged();
        assert!(keys.encrypted() && keys.is_exchanged());
        assert!(keys.encryptor().is_none(), "no key yet: nothing may go out, sealed or not");
        assert!(keys.verification().is_none());
        let dave = ParticipantId("dave".into());
        // Dave's frames do not pass through unopened before his key is known.
        let mut before = keys.decryptor(&dave).expect("an opener that opens nothing yet");
        assert!(before.open(MediaKind::Opus, &sealed_with(6, 2)).is_err());
        keys.set_participant_key(dave.clone(), 2, key(6));
        assert!(keys.decryptor(&dave).expect("dave").open(MediaKind::Opus, &sealed_with(6, 2)).is_ok());
        keys.set_own_key(5, key(8));
        let mut e = keys.encryptor().expect("our key");
        let sealed =
            e.seal(FrameMeta { ssrc: 1, rtp_timestamp: 2, kind: MediaKind::Opus }, &[0xf8, 1, 2]).expect("seal");
        let mut d = FrameDecryptor::new();
        d.set_key(5, key(8));
        assert!(d.open(MediaKind::Opus, &sealed).is_ok());
    }

    #[test]
    fn check_digits_are_five_groups_and_follow_the_key() {
        let a = verification_string(&key(1));
        assert_eq!(a.split(' ').count(), 5);
        assert!(a.split(' ').all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit())), "{a}");
        assert_eq!(a, verification_string(&key(1)));
        assert_ne!(a, verification_string(&key(2)));
        assert_eq!(KeyProvider::new(Some(key(1))).verification(), Some(a));
    }
}
