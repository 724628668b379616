//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the appliance library. Messages never
/// contain a secret (pairing code, token, password, key).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplianceError {
    /// A config key has a bad value: `video.framerate: 0 is not between 1 and 60`.
    #[error("{key}: {problem}")]
    InvalidSetting { key: String, problem: String },
    /// The config file is not valid TOML or has unknown keys.
    #[error("{path}: {message}")]
    ConfigSyntax { path: String, message: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The device certificate could not be made or loaded.
    #[error("device certificate: {0}")]
    Certificate(String),
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The operating system's random number generator failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// A join was refused by the supervisor or its policy.
    #[error("cannot join: {0}")]
    JoinRefused(String),
    /// A stored admin password hash is malformed.
    #[error("admin password hash: {0}")]
    PasswordHash(String),
}

impl ApplianceError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn invalid(key: &str, problem: impl Into<String>) -> Self {
        Self::InvalidSetting { key: key.to_owned(), problem: problem.into() }
    }
}
