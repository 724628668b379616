//! Secret key material: zeroized on drop, never printed.

use core::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::FrameError;

/// Salt of lib-jitsi-meet's ratchet: new material = HKDF-SHA-256(material, this salt, no info, 32 bytes).
const RATCHET_SALT: &[u8] = b"JFrameRatchetKey";

/// The 32 bytes a meeting key is made from in the `jitsi` and `h264` formats.
///
/// Debug prints `[redacted]`; the bytes are wiped when the value is dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyMaterial([u8; 32]);

impl KeyMaterial {
    /// Takes ownership of 32 bytes and wipes the caller's copy.
    pub fn from_bytes(bytes: &mut [u8; 32]) -> Self {
        let material = Self(*bytes);
        bytes.zeroize();
        material
    }

    /// Parses 64 hex digits (as on the command line).
    pub fn from_hex(hex: &str) -> Result<Self, FrameError> {
        let bytes = SecretBytes::from_hex(hex)?;
        let mut arr: [u8; 32] = bytes
            .expose()
            .try_into()
            .map_err(|_| FrameError::InvalidKey("key material must be 32 bytes (64 hex digits)"))?;
        Ok(Self::from_bytes(&mut arr))
    }

    /// The next material in lib-jitsi-meet's ratchet.
    pub fn ratchet(&self) -> Self {
        let mut next = [0u8; 32];
        Hkdf::<Sha256>::new(Some(RATCHET_SALT), &self.0)
            .expand(&[], &mut next)
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        Self::from_bytes(&mut next)
    }

    /// Applies [`Self::ratchet`] `n` times.
    pub fn ratchet_n(&self, n: u32) -> Self {
        let mut material = self.clone();
        for _ in 0..n {
            material = material.ratchet();
        }
        material
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Constant-time comparison (the bytes are secret).
impl PartialEq for KeyMaterial {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
    }
}

impl Eq for KeyMaterial {}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial([redacted])")
    }
}

/// Secret bytes of any length (SFrame base keys, derived keys).
/// Debug prints `[redacted]`; wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of the bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Parses hex digits, keeping no unwiped copy.
    pub fn from_hex(hex: &str) -> Result<Self, FrameError> {
        let hex = hex.trim().as_bytes();
        if hex.len() % 2 != 0 {
            return Err(FrameError::InvalidKey("odd number of hex digits"));
        }
        let mut out = Zeroizing::new(Vec::with_capacity(hex.len() / 2));
        for pair in hex.chunks_exact(2) {
            let hi = hex_digit(pair[0])?;
            let lo = hex_digit(pair[1])?;
            out.push(hi << 4 | lo);
        }
        Ok(Self(core::mem::take(&mut *out)))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes([redacted])")
    }
}

fn hex_digit(c: u8) -> Result<u8, FrameError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(FrameError::InvalidKey("not a hex digit")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_bytes() {
        let m = KeyMaterial::from_hex(&"ab".repeat(32)).unwrap();
        let shown = format!("{m:?}");
        assert_eq!(shown, "KeyMaterial([redacted])");
        assert!(!shown.to_lowercase().contains("ab, ") && !shown.contains("171"));
        let s = SecretBytes::from_hex("00ff").unwrap();
        assert_eq!(format!("{s:?}"), "SecretBytes([redacted])");
    }

    #[test]
    fn from_bytes_wipes_source() {
        let mut src = [7u8; 32];
        let m = KeyMaterial::from_bytes(&mut src);
        assert_eq!(src, [0u8; 32]);
        assert_eq!(m.expose(), &[7u8; 32]);
    }

    #[test]
    fn hex_rejects_bad_input() {
        assert!(KeyMaterial::from_hex("abc").is_err());
        assert!(KeyMaterial::from_hex(&"zz".repeat(32)).is_err());
        assert!(KeyMaterial::from_hex(&"00".repeat(31)).is_err());
    }

    #[test]
    fn ratchet_changes_material_deterministically() {
        let m = KeyMaterial::from_hex(&"01".repeat(32)).unwrap();
        let a = m.ratchet();
        let b = m.ratchet();
        assert_eq!(a.expose(), b.expose());
        assert_ne!(a.expose(), m.expose());
        assert_eq!(m.ratchet_n(2).expose(), a.ratchet().expose());
    }
}
