//! The appliance around `cloakroomd`, as a library the daemon calls:
//!
//! - [`config`]: the TOML config (`/etc/cloakroom/cloakroom.toml`), validated
//!   into [`config::Settings`], with atomic writes and device secrets (0600).
//! - [`supervisor`]: the room's state machine (idle → joining → in meeting →
//!   leaving, error with retry), pure, fed with `now`; the status value and
//!   the key verification string.
//! - [`pairing`]: pairing code, sessions, CSRF tokens, join-by-scan tokens,
//!   admin password; pure, randomness injected.
//! - [`web`]: the local HTTPS page and JSON API (axum, rustls, rcgen), talking
//!   to the daemon through [`web::Room`].
//!
//! The daemon's side, in short:
//!
//! ```text
//! let store = ConfigStore::load(path)?;                    // refuse bad config at start
//! let (room, mut outputs) = SupervisedRoom::new();         // outputs: StartJoin, Leave, SetMute, Timeout
//! let pairing = Pairing::new(Box::new(OsRandom::new()?), store.settings().admin_password.clone());
//! let web = WebServer::start(WebContext { room, pairing, config, logs }).await?;
//! // show pairing code, web.fingerprint and the join QR on the room screen;
//! // feed connector/pipeline events with room.handle_input(..), timers with room.handle_timeout().
//! ```
#![forbid(unsafe_code)]

pub mod config;
mod error;
pub mod pairing;
pub mod qr_join;
pub mod supervisor;
pub mod web;

pub use error::ApplianceError;
