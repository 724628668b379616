//! Short authentication string (SAS) verification as lib-jitsi-meet does it
//! (`OlmAdapter.js` `startVerification`, the `sas-*` handlers,
//! `_sendSasMac`, `_computeCommitment`; `SAS.ts` at 01daa07c3f8c), after
//! Matrix's SAS (spec: client-server API, "Short Authentication String (SAS)
//! verification") with Jitsi's own strings:
//!
//! 1. the starter sends `sas-start {transactionId}`;
//! 2. the responder makes an ephemeral Curve25519 key and answers
//!    `sas-accept {commitment}` with commitment = unpadded base64 of
//!    SHA-256(its public key ‖ `JSON.stringify` of the sas-start data);
//! 3. the starter sends `sas-key {key}`; the responder answers with its own
//!    `sas-key`, which the starter checks against the commitment;
//! 4. both take 6 bytes of HKDF-SHA-256 from the shared secret with info
//!    `<starter id>|<starter key>|<responder id>|<responder key>`: 7 emoji
//!    (6 bits each) and 3 numbers (13 bits each, plus 1000);
//! 5. when the people say the codes match, each sends `sas-mac`: with
//!    base = `Jitsi-KEY_VERIFICATION_MAC` ‖ sender id ‖ receiver id ‖
//!    transactionId, `mac = {"ed25519:<receiver id>": MAC(sender's Ed25519
//!    identity key, base ‖ "ed25519:<receiver id>")}` and
//!    `keys = MAC("ed25519:<receiver id>", base ‖ "Jitsi-KEY_IDS")`.
//!    (The key id names the receiver, not the key's owner: that is what
//!    lib-jitsi-meet sends.) MAC is libolm's `calculate_mac`, whose base64 is
//!    known to be wrong; vodozemac's `calculate_mac_invalid_base64`
//!    reproduces it.

use std::collections::BTreeMap;

use base64::Engine;
use sha2::{Digest, Sha256};
use vodozemac::sas::{EstablishedSas, Sas};

/// Info prefix of the MACs (`OLM_KEY_VERIFICATION_MAC_INFO`).
const MAC_INFO: &str = "Jitsi-KEY_VERIFICATION_MAC";
/// Info suffix of the MAC over the key id list (`OLM_KEY_VERIFICATION_MAC_KEY_IDS`).
const MAC_KEY_IDS: &str = "Jitsi-KEY_IDS";

/// What verification with a participant produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SasEvent {
    /// Both ephemeral keys are known: show this code; the people on both
    /// ends compare it, then call [`crate::JitsiE2ee::confirm_sas`].
    Code(Box<SasCode>),
    /// Both sides confirmed and the peer's MAC over its identity key checked out.
    Verified,
    /// Our side said the codes differ (lib-jitsi-meet's
    /// `e2ee.sas.channel-verification-failed`; it tells the peer nothing).
    Mismatch,
    /// Verification failed for a protocol reason.
    Failed(SasFailure),
}

/// The short authentication string: lib-jitsi-meet shows the emoji.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasCode {
    pub emoji: [SasEmoji; 7],
    /// Three numbers from 1000 to 9191 (Matrix's decimal method).
    pub decimals: [u16; 3],
}

/// One emoji of the code, with the English name lib-jitsi-meet pairs it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SasEmoji {
    pub symbol: &'static str,
    pub name: &'static str,
}

/// Why a verification failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SasFailure {
    /// The responder's key does not match its commitment (a tampered sas-key or sas-accept).
    CommitmentMismatch,
    /// The MAC over the key id list is wrong.
    KeysMacMismatch,
    /// The MAC over the peer's identity key is wrong.
    MacMismatch,
    /// The peer's SAS key is not a usable Curve25519 key.
    InvalidKey,
    /// Both sides started at once; the peer's start was refused and ours dropped.
    ConcurrentStart,
    /// The participant left or turned E2EE off.
    ParticipantGone,
    /// The participant's identity keys changed in its presence.
    IdentityChanged,
}

impl SasFailure {
    /// lib-jitsi-meet's `E2EEErrors` value for this failure, where it has one.
    pub fn lib_jitsi_meet_code(self) -> Option<&'static str> {
        match self {
            SasFailure::CommitmentMismatch => Some("e2ee.sas.commitment-mismatched"),
            SasFailure::KeysMacMismatch => Some("e2ee.sas.keys-mac-mismatch"),
            SasFailure::MacMismatch => Some("e2ee.sas.mac-mismatch"),
            SasFailure::ConcurrentStart => Some("e2ee.sas.invalid-sas-verification"),
            SasFailure::InvalidKey | SasFailure::ParticipantGone | SasFailure::IdentityChanged => None,
        }
    }
}

impl core::fmt::Display for SasFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SasFailure::CommitmentMismatch => "the peer's SAS key does not match its commitment",
            SasFailure::KeysMacMismatch => "the peer's MAC of its key list is wrong",
            SasFailure::MacMismatch => "the peer's MAC of its identity key is wrong",
            SasFailure::InvalidKey => "the peer's SAS key is not a valid Curve25519 key",
            SasFailure::ConcurrentStart => "both sides started verification at once",
            SasFailure::ParticipantGone => "the participant left or turned end-to-end encryption off",
            SasFailure::IdentityChanged => "the participant's identity keys changed",
        })
    }
}

/// One verification in progress with one participant.
pub(crate) struct SasState {
    pub transaction_id: String,
    pub starter: bool,
    /// Our ephemeral public key, unpadded base64.
    pub our_key: String,
    pub stage: Stage,
    pub our_mac_sent: bool,
    pub their_mac_verified: bool,
}

pub(crate) enum Stage {
    /// Starter: sas-start sent.
    AwaitingAccept(Sas),
    /// Starter: sas-accept received (its commitment kept) and our sas-key sent.
    /// Responder: sas-accept sent (no commitment).
    AwaitingKey { sas: Sas, commitment: Option<String> },
    /// Keys exchanged, code shown.
    Established(Box<EstablishedSas>),
    /// Transient while a stage is being replaced.
    Taken,
}

impl SasState {
    pub fn new(transaction_id: String, starter: bool) -> Self {
        let sas = Sas::new();
        let our_key = sas.public_key().to_base64();
        let stage = if starter { Stage::AwaitingAccept(sas) } else { Stage::AwaitingKey { sas, commitment: None } };
        Self { transaction_id, starter, our_key, stage, our_mac_sent: false, their_mac_verified: false }
    }

    pub fn established(&self) -> Option<&EstablishedSas> {
        match &self.stage {
            Stage::Established(sas) => Some(sas),
            _ => None,
        }
    }
}

/// lib-jitsi-meet's commitment: unpadded base64 of SHA-256(`pub_key` ‖ `start_data_json`)
/// (libolm's `Utility.sha256` over the UTF-8 string).
pub(crate) fn commitment(pub_key: &str, start_data_json: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(pub_key.as_bytes());
    hash.update(start_data_json.as_bytes());
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash.finalize())
}

/// The HKDF info of the code: starter's id and key, then the responder's.
pub(crate) fn code_info(starter_id: &str, starter_key: &str, responder_id: &str, responder_key: &str) -> String {
    format!("{starter_id}|{starter_key}|{responder_id}|{responder_key}")
}

/// The code from the shared secret (`generate_bytes(info, 6)`, then `SAS.ts`).
pub(crate) fn code(sas: &EstablishedSas, info: &str) -> SasCode {
    let bytes = sas.bytes(info);
    let (a, b, c) = bytes.decimals();
    let emoji = bytes.emoji_indices().map(|i| EMOJI[usize::from(i) % EMOJI.len()]);
    SasCode { emoji, decimals: [a, b, c] }
}

/// Our sas-mac: `(keys, mac)` for `sender` (us) telling `receiver` our Ed25519 key.
pub(crate) fn our_mac(
    sas: &EstablishedSas,
    sender: &str,
    receiver: &str,
    transaction_id: &str,
    our_ed25519: &str,
) -> (String, String, String) {
    let base = format!("{MAC_INFO}{sender}{receiver}{transaction_id}");
    let key_id = format!("ed25519:{receiver}");
    let mac = sas.calculate_mac_invalid_base64(our_ed25519, &format!("{base}{key_id}"));
    let keys = sas.calculate_mac_invalid_base64(&key_id, &format!("{base}{MAC_KEY_IDS}"));
    (keys, key_id, mac)
}

/// Checks a peer's sas-mac: `sender` is the peer, whose presence gave `their_ed25519`.
pub(crate) fn check_their_mac(
    sas: &EstablishedSas,
    sender: &str,
    receiver: &str,
    transaction_id: &str,
    their_ed25519: &str,
    keys: &str,
    mac: &BTreeMap<String, String>,
) -> Result<(), SasFailure> {
    let base = format!("{MAC_INFO}{sender}{receiver}{transaction_id}");
    // BTreeMap keys come sorted, as `Object.keys(mac).sort()` (the same order for ASCII ids).
    let key_list = mac.keys().map(String::as_str).collect::<Vec<_>>().join(",");
    let expected_keys = sas.calculate_mac_invalid_base64(&key_list, &format!("{base}{MAC_KEY_IDS}"));
    if !equal_in_constant_time(expected_keys.as_bytes(), keys.as_bytes()) {
        return Err(SasFailure::KeysMacMismatch);
    }
    for (key_id, their_mac) in mac {
        let expected = sas.calculate_mac_invalid_base64(their_ed25519, &format!("{base}{key_id}"));
        if !equal_in_constant_time(expected.as_bytes(), their_mac.as_bytes()) {
            return Err(SasFailure::MacMismatch);
        }
    }
    Ok(())
}

fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const fn e(symbol: &'static str, name: &'static str) -> SasEmoji {
    SasEmoji { symbol, name }
}

/// The 64 emoji of Matrix's SAS emoji method, in index order, as lib-jitsi-meet's `SAS.ts` lists them.
pub const EMOJI: [SasEmoji; 64] = [
    e("🐶", "dog"),
    e("🐱", "cat"),
    e("🦁", "lion"),
    e("🐎", "horse"),
    e("🦄", "unicorn"),
    e("🐷", "pig"),
    e("🐘", "elephant"),
    e("🐰", "rabbit"),
    e("🐼", "panda"),
    e("🐓", "rooster"),
    e("🐧", "penguin"),
    e("🐢", "turtle"),
    e("🐟", "fish"),
    e("🐙", "octopus"),
    e("🦋", "butterfly"),
    e("🌷", "flower"),
    e("🌳", "tree"),
    e("🌵", "cactus"),
    e("🍄", "mushroom"),
    e("🌏", "globe"),
    e("🌙", "moon"),
    e("☁️", "cloud"),
    e("🔥", "fire"),
    e("🍌", "banana"),
    e("🍎", "apple"),
    e("🍓", "strawberry"),
    e("🌽", "corn"),
    e("🍕", "pizza"),
    e("🎂", "cake"),
    e("❤️", "heart"),
    e("🙂", "smiley"),
    e("🤖", "robot"),
    e("🎩", "hat"),
    e("👓", "glasses"),
    e("🔧", "spanner"),
    e("🎅", "santa"),
    e("👍", "thumbs up"),
    e("☂️", "umbrella"),
    e("⌛", "hourglass"),
    e("⏰", "clock"),
    e("🎁", "gift"),
    e("💡", "light bulb"),
    e("📕", "book"),
    e("✏️", "pencil"),
    e("📎", "paperclip"),
    e("✂️", "scissors"),
    e("🔒", "lock"),
    e("🔑", "key"),
    e("🔨", "hammer"),
    e("☎️", "telephone"),
    e("🏁", "flag"),
    e("🚂", "train"),
    e("🚲", "bicycle"),
    e("✈️", "aeroplane"),
    e("🚀", "rocket"),
    e("🏆", "trophy"),
    e("⚽", "ball"),
    e("🎸", "guitar"),
    e("🎺", "trumpet"),
    e("🔔", "bell"),
    e("⚓️", "anchor"),
    e("🎧", "headphones"),
    e("📁", "folder"),
    e("📌", "pin"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_table_has_unique_names() {
        let mut names: Vec<_> = EMOJI.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 64);
        assert_eq!(EMOJI[0].name, "dog");
        assert_eq!(EMOJI[63].name, "pin");
    }

    #[test]
    fn commitment_is_unpadded_base64_sha256() {
        // SHA-256("abc") = ba7816bf…; unpadded base64 of it.
        assert_eq!(commitment("a", "bc"), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0");
        assert_eq!(sas_start_json_example(), "{\"transactionId\":\"t-1\"}");
    }

    fn sas_start_json_example() -> String {
        crate::messages::sas_start_data_json("t-1")
    }
}
