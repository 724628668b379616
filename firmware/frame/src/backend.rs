//! Which AES runs, and the AES-GCM keys every format seals with.
//!
//! Two libraries sit behind one small internal type, `GcmKey`:
//!
//! - RustCrypto `aes-gcm`: portable. It uses AES-NI + PCLMULQDQ on x86_64 and
//!   the ARMv8 crypto extensions on aarch64 when the CPU has them (detected at
//!   run time), and otherwise a constant-time bitsliced software AES. This is
//!   the path a Raspberry Pi 4 (BCM2711, no AES instructions) takes.
//! - ring (`ring` feature, on by default): hand-written assembly (AES-NI with
//!   AVX/VAES and CLMUL GHASH on x86_64, ARMv8 crypto extensions on aarch64),
//!   faster on video-sized frames (see `tools/frame-bench`); chosen only when
//!   the CPU has AES instructions, so the one software path that runs is the
//!   one we test. ring is already in the daemon for DTLS and certificates.
//!
//! Building with `RUSTFLAGS='--cfg aes_backend="soft" --cfg polyval_backend="soft"'`
//! forces the software path even on a CPU with AES instructions. Every QEMU
//! CPU model has AES, so that is how the Pi 4 path is tested.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit};

use crate::FrameError;

/// The AES implementation in use on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AesBackend {
    /// x86_64 AES-NI.
    AesNi,
    /// ARMv8 cryptography extensions (Pi 5, Cortex-A76).
    ArmV8Crypto,
    /// Constant-time software AES (Pi 4, or forced).
    Software,
}

impl AesBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            AesBackend::AesNi => "aes-ni",
            AesBackend::ArmV8Crypto => "armv8-crypto",
            AesBackend::Software => "software (constant-time)",
        }
    }
}

/// Reports the AES implementation frames are sealed with on this machine.
pub fn aes_backend() -> AesBackend {
    if !aes::hardware_accelerated() {
        AesBackend::Software
    } else if cfg!(target_arch = "aarch64") {
        AesBackend::ArmV8Crypto
    } else {
        AesBackend::AesNi
    }
}

/// The library performing AES-GCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GcmLibrary {
    RustCrypto,
    #[cfg(feature = "ring")]
    Ring,
}

impl GcmLibrary {
    /// ring when it is built in and the CPU has AES instructions, RustCrypto otherwise.
    pub fn preferred() -> Self {
        #[cfg(feature = "ring")]
        if aes_backend() != AesBackend::Software {
            return GcmLibrary::Ring;
        }
        GcmLibrary::RustCrypto
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GcmLibrary::RustCrypto => "rustcrypto",
            #[cfg(feature = "ring")]
            GcmLibrary::Ring => "ring",
        }
    }
}

/// Length of the GCM authentication tag every format here uses.
pub const GCM_TAG_LEN: usize = 16;
/// Length of the GCM nonce.
pub const GCM_NONCE_LEN: usize = 12;

/// An expanded AES-GCM key (128 or 256 bit), ready to seal many frames.
/// Round keys are wiped on drop by the underlying libraries.
pub(crate) enum GcmKey {
    RustCrypto128(Box<Aes128Gcm>),
    RustCrypto256(Box<Aes256Gcm>),
    #[cfg(feature = "ring")]
    Ring(Box<ring::aead::LessSafeKey>),
}

impl GcmKey {
    /// Expands a 16- or 32-byte key.
    pub(crate) fn new(library: GcmLibrary, key: &[u8]) -> Result<Self, FrameError> {
        match library {
            GcmLibrary::RustCrypto => match key.len() {
                16 => Ok(GcmKey::RustCrypto128(Box::new(
                    Aes128Gcm::new_from_slice(key).map_err(|_| FrameError::InvalidKey("AES-128 key length"))?,
                ))),
                32 => Ok(GcmKey::RustCrypto256(Box::new(
                    Aes256Gcm::new_from_slice(key).map_err(|_| FrameError::InvalidKey("AES-256 key length"))?,
                ))),
                _ => Err(FrameError::InvalidKey("AES-GCM keys are 16 or 32 bytes")),
            },
            #[cfg(feature = "ring")]
            GcmLibrary::Ring => {
                use ring::aead::{AES_128_GCM, AES_256_GCM, LessSafeKey, UnboundKey};
                let alg = match key.len() {
                    16 => &AES_128_GCM,
                    32 => &AES_256_GCM,
                    _ => return Err(FrameError::InvalidKey("AES-GCM keys are 16 or 32 bytes")),
                };
                let unbound = UnboundKey::new(alg, key).map_err(|_| FrameError::InvalidKey("AES-GCM key"))?;
                Ok(GcmKey::Ring(Box::new(LessSafeKey::new(unbound))))
            }
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    #[inline]
    pub(crate) fn seal(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], FrameError> {
        match self {
            GcmKey::RustCrypto128(k) => k
                .encrypt_inout_detached(nonce.into(), aad, buf.into())
                .map(Into::into)
                .map_err(|_| FrameError::TooLarge { len: buf.len(), max: crate::MAX_FRAME_LEN }),
            GcmKey::RustCrypto256(k) => k
                .encrypt_inout_detached(nonce.into(), aad, buf.into())
                .map(Into::into)
                .map_err(|_| FrameError::TooLarge { len: buf.len(), max: crate::MAX_FRAME_LEN }),
            #[cfg(feature = "ring")]
            GcmKey::Ring(k) => {
                use ring::aead::{Aad, Nonce};
                let len = buf.len();
                let tag = k
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
                    .map_err(|_| FrameError::TooLarge { len, max: crate::MAX_FRAME_LEN })?;
                let mut out = [0u8; GCM_TAG_LEN];
                out.copy_from_slice(tag.as_ref());
                Ok(out)
            }
        }
    }

    /// Decrypts `buf` = ciphertext ‖ tag in place; on success the plaintext is
    /// `buf[..buf.len() - GCM_TAG_LEN]`. On failure `buf` holds garbage.
    #[inline]
    pub(crate) fn open(&self, nonce: &[u8; GCM_NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Result<(), FrameError> {
        let Some(ct_len) = buf.len().checked_sub(GCM_TAG_LEN) else {
            return Err(FrameError::Truncated { len: buf.len(), needed: GCM_TAG_LEN });
        };
        match self {
            GcmKey::RustCrypto128(k) => {
                let (ct, tag) = buf.split_at_mut(ct_len);
                let tag: &[u8; GCM_TAG_LEN] = (&*tag).try_into().map_err(|_| FrameError::AuthenticationFailed)?;
                k.decrypt_inout_detached(nonce.into(), aad, ct.into(), tag.into())
                    .map_err(|_| FrameError::AuthenticationFailed)
            }
            GcmKey::RustCrypto256(k) => {
                let (ct, tag) = buf.split_at_mut(ct_len);
                let tag: &[u8; GCM_TAG_LEN] = (&*tag).try_into().map_err(|_| FrameError::AuthenticationFailed)?;
                k.decrypt_inout_detached(nonce.into(), aad, ct.into(), tag.into())
                    .map_err(|_| FrameError::AuthenticationFailed)
            }
            #[cfg(feature = "ring")]
            GcmKey::Ring(k) => {
                use ring::aead::{Aad, Nonce};
                k.open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
                    .map(|_| ())
                    .map_err(|_| FrameError::AuthenticationFailed)
            }
        }
    }
}
