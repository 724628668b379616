//! Pairing and sessions, as pure logic (no clock, no I/O, randomness injected).
//!
//! - Pairing code: 6 decimal digits shown on the room screen; single use,
//!   replaced every [`CODE_TTL`] and after every [`ROTATE_AFTER_FAILURES`]
//!   wrong tries, so guesses cannot work through the code space.
//! - Wrong tries are limited per client ([`ClientKey`]): an address may make
//!   [`CLIENT_MAX_FAILURES`] in [`CLIENT_WINDOW`], an IPv6 /64 together
//!   [`PREFIX_MAX_FAILURES`] (one host can take many addresses of its
//!   /64, and every host of a LAN shares one); then that client waits
//!   [`CLIENT_PAUSE`], doubling up to [`CLIENT_PAUSE_MAX`]. Nobody else
//!   waits: someone guessing cannot lock the admin out.
//! - Under a global ceiling: after [`GUARD_AFTER_FAILURES`] wrong tries in
//!   [`GUARD_WINDOW`] from all clients together, the room is *guarded*: the
//!   code has [`GUARDED_CODE_DIGITS`] digits until [`GUARD_QUIET`] passes
//!   without a wrong try. So the 6-digit code meets fewer than that many
//!   guesses a day, however many addresses a guesser has.
//! - What a guesser does is reported as [`Alert`]s (for the journal).
//! - Sessions: 32 random bytes given to the browser as a cookie (hex);
//!   only their SHA-256 is kept. Each has its own CSRF token (the
//!   synchronizer-token pattern of the OWASP CSRF cheat sheet), sent back
//!   in the `x-csrf-token` header, and a public id for the admin's list.
//!   Admin and guest sessions are capped separately, so guests never push
//!   an admin out.
//! - Join-by-scan tokens for `https://<device>/join#t=<token>`: short-lived,
//!   single use, rotated; they open a guest session (join, leave, mute,
//!   status). A guest session ends after [`GUEST_IDLE`] without a request,
//!   and once it started a meeting ([`Pairing::bind_guest`]) it ends with it.
//! - Optional admin password: PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2), checked
//!   by the caller outside any lock ([`Pairing::begin_pair`]).
//!
//! Secrets are compared in constant time (`subtle`), wiped on drop and
//! print as `[redacted]`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::ApplianceError;

/// A pairing code is replaced after this long even if nobody used it.
pub const CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// A pairing code is replaced after this many wrong tries (from anyone).
pub const ROTATE_AFTER_FAILURES: u32 = 3;
/// Wrong tries one address may make per [`CLIENT_WINDOW`] before it waits.
pub const CLIENT_MAX_FAILURES: usize = 5;
/// Wrong tries the addresses of one IPv6 /64 may make together per [`CLIENT_WINDOW`].
pub const PREFIX_MAX_FAILURES: usize = 50;
/// The window a client's wrong tries are counted in.
pub const CLIENT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// A client's first wait after too many wrong tries; it doubles each time.
pub const CLIENT_PAUSE: Duration = Duration::from_secs(60);
/// The longest a client waits.
pub const CLIENT_PAUSE_MAX: Duration = Duration::from_secs(3600);
/// Clients whose wrong tries are remembered at most (the oldest go first).
pub const MAX_TRACKED_CLIENTS: usize = 1024;
/// Wrong tries in [`GUARD_WINDOW`], from all clients together, that make the room guarded.
pub const GUARD_AFTER_FAILURES: usize = 10;
/// The window the global ceiling counts wrong tries in.
pub const GUARD_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// A guarded room goes back to 6-digit codes after this long without a wrong try.
pub const GUARD_QUIET: Duration = Duration::from_secs(24 * 3600);
/// Digits of the pairing code normally.
pub const CODE_DIGITS: usize = 6;
/// Digits of the pairing code while the room is guarded.
pub const GUARDED_CODE_DIGITS: usize = 10;
/// Lifetime of an admin session.
pub const ADMIN_SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest lifetime of a guest session opened by a scan.
pub const GUEST_SESSION_TTL: Duration = Duration::from_secs(4 * 3600);
/// A guest session ends after this long without a request.
pub const GUEST_IDLE: Duration = Duration::from_secs(15 * 60);
/// Lifetime of a join-by-scan token before it is rotated.
pub const JOIN_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Admin sessions kept at most; the oldest admin session goes first.
pub const MAX_ADMIN_SESSIONS: usize = 16;
/// Guest sessions kept at most; the oldest guest session goes first.
pub const MAX_GUEST_SESSIONS: usize = 16;
/// PBKDF2 iterations for new admin password hashes.
pub const PASSWORD_ITERATIONS: u32 = 200_000;

/// Source of random bytes: the OS in the daemon, a fixed sequence in tests.
pub trait RandomSource: Send {
    fn fill(&mut self, buf: &mut [u8]);
}

/// The operating system's generator (`getrandom(2)`).
#[derive(Debug, Default)]
pub struct OsRandom;

impl OsRandom {
    /// Checks once that the OS generator works, so [`RandomSource::fill`] can rely on it.
    pub fn new() -> Result<Self, ApplianceError> {
        let mut probe = [0u8; 8];
        getrandom::fill(&mut probe).map_err(|e| ApplianceError::Random(e.to_string()))?;
        Ok(Self)
    }
}

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        // `new` checked the generator; on Linux getrandom(2) does not fail once seeded.
        #[allow(clippy::expect_used)]
        getrandom::fill(buf).expect("getrandom worked at start");
    }
}

/// What a session may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Paired with the code: everything.
    Admin,
    /// Opened by a scan: status, join, and leave or mute the meeting it started.
    Guest,
}

/// A secret string (code, token): wiped on drop, `[redacted]` in Debug.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Who a wrong try is counted against: its address (IPv4-mapped IPv6 as
/// IPv4), and for IPv6 also the address's /64, with a higher limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    addr: IpAddr,
    prefix64: bool,
}

impl ClientKey {
    /// The address key of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        Self { addr, prefix64: false }
    }

    /// Every key a try from `addr` counts against.
    pub fn keys_of(addr: IpAddr) -> Vec<Self> {
        let key = Self::of(addr);
        match key.addr {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                vec![key, Self { addr: IpAddr::V6(net), prefix64: true }]
            }
            IpAddr::V4(_) => vec![key],
        }
    }

    fn limit(&self) -> usize {
        if self.prefix64 { PREFIX_MAX_FAILURES } else { CLIENT_MAX_FAILURES }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix64 { write!(f, "{}/64", self.addr) } else { write!(f, "{}", self.addr) }
    }
}

/// A session just opened: the cookie value and the CSRF token to hand out.
#[derive(Debug)]
pub struct NewSession {
    pub token: Secret,
    pub csrf: Secret,
    pub role: Role,
    pub expires_in: Duration,
}

/// A session found by its cookie.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Public id (for the admin's list and revoking), not a secret.
    pub id: String,
    pub role: Role,
    pub csrf: Secret,
    /// The meeting a guest session started, if it did.
    pub meeting: Option<u64>,
}

/// A session as the admin's list shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionSummary {
    pub id: String,
    pub role: Role,
    /// Where it was opened from.
    pub client: Option<String>,
    /// Seconds since it was opened (since the daemon started, for restored ones).
    pub age_secs: u64,
    /// Seconds since its last request.
    pub idle_secs: u64,
    /// Seconds until it ends at the latest.
    pub expires_in_secs: u64,
    /// The meeting a guest session started.
    pub meeting: Option<u64>,
}

/// Why pairing was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairError {
    /// Wrong code or password; `remaining` tries for this client before it waits.
    Wrong { remaining: usize },
    /// This client made too many wrong tries: it may try again after this long.
    Paused { retry_after: Duration },
    /// The scan token is unknown, used or expired.
    InvalidToken,
}

/// Something the journal should hear about: a guesser at work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// A client made too many wrong tries and now waits.
    ClientPaused { client: ClientKey, failures: u32, pause: Duration },
    /// Too many wrong tries in a day from everyone: the code gets longer.
    Guarded { failures_last_day: usize },
    /// A guarded room went back to the short code after a quiet day.
    Unguarded,
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientPaused { client, failures, pause } => write!(
                f,
                "pairing: {client} made {failures} wrong tries; it may try again in {} s (others can still pair)",
                pause.as_secs()
            ),
            Self::Guarded { failures_last_day } => write!(
                f,
                "pairing: {failures_last_day} wrong tries in the last day; someone may be guessing the code, \
                 which has {GUARDED_CODE_DIGITS} digits until a day passes without a wrong try"
            ),
            Self::Unguarded => write!(f, "pairing: a day without wrong tries; the code has {CODE_DIGITS} digits again"),
        }
    }
}

/// A pairing try under way: [`Pairing::begin_pair`] let it through, the
/// caller checks the password outside any lock ([`PasswordHash::verify`]),
/// then [`Pairing::finish_pair`] decides.
#[derive(Debug)]
pub struct PairAttempt {
    client: IpAddr,
    /// The admin password's hash, when one is set.
    pub password: Option<PasswordHash>,
}

/// One client's wrong tries.
#[derive(Debug, Default)]
struct ClientRecord {
    failures: VecDeque<Instant>,
    paused_until: Option<Instant>,
    /// Pauses so far (the next one doubles).
    pauses: u32,
    last: Option<Instant>,
}

/// Pairing, sessions and scan tokens of one boot.
pub struct Pairing {
    rng: Box<dyn RandomSource>,
    code: Secret,
    code_expires: Option<Instant>,
    code_failures: u32,
    clients: HashMap<ClientKey, ClientRecord>,
    /// Wrong tries from everyone in the last [`GUARD_WINDOW`].
    recent: VecDeque<Instant>,
    guarded_until: Option<Instant>,
    failures_total: u64,
    alerts: VecDeque<Alert>,
    password: Option<PasswordHash>,
    sessions: Vec<Session>,
    join_token: Option<(Secret, Instant)>,
}

impl fmt::Debug for Pairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pairing")
            .field("code", &self.code)
            .field("clients", &self.clients.len())
            .field("guarded_until", &self.guarded_until)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

struct Session {
    id: String,
    token_hash: [u8; 32],
    csrf: Secret,
    role: Role,
    client: Option<IpAddr>,
    opened: Instant,
    last_seen: Instant,
    expires: Instant,
    meeting: Option<u64>,
}

impl Session {
    fn alive(&self, now: Instant) -> bool {
        now < self.expires && (self.role == Role::Admin || now.saturating_duration_since(self.last_seen) < GUEST_IDLE)
    }
}

/// Pairing counters for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairingStats {
    /// Wrong tries since start.
    pub failures_total: u64,
    /// Wrong tries in the last day, from everyone.
    pub failures_last_day: usize,
    /// Clients waiting now.
    pub clients_paused: usize,
    /// Whether the code is the long one.
    pub guarded: bool,
}

impl Pairing {
    /// Starts a boot's pairing with a fresh code.
    pub fn new(mut rng: Box<dyn RandomSource>, password: Option<PasswordHash>) -> Self {
        let code = new_code(rng.as_mut(), CODE_DIGITS);
        Self {
            rng,
            code,
            code_expires: None,
            code_failures: 0,
            clients: HashMap::new(),
            recent: VecDeque::new(),
            guarded_until: None,
            failures_total: 0,
            alerts: VecDeque::new(),
            password,
            sessions: Vec::new(),
            join_token: None,
        }
    }

    /// The code to show on the room screen, replaced when its time is up.
    pub fn code(&mut self, now: Instant) -> &Secret {
        self.expire(now);
        match self.code_expires {
            Some(t) if now < t => {}
            Some(_) => self.new_code(now),
            None => self.code_expires = Some(now + CODE_TTL),
        }
        &self.code
    }

    /// Whether pairing also asks for the admin password.
    pub fn needs_password(&self) -> bool {
        self.password.is_some()
    }

    /// Counters for metrics.
    pub fn stats(&mut self, now: Instant) -> PairingStats {
        self.expire(now);
        PairingStats {
            failures_total: self.failures_total,
            failures_last_day: self.recent.len(),
            clients_paused: self.clients.values().filter(|c| c.paused_until.is_some_and(|t| now < t)).count(),
            guarded: self.guarded_until.is_some(),
        }
    }

    /// Alerts since the last call (oldest first).
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        self.alerts.drain(..).collect()
    }

    /// Starts a pairing try from `client`: refused at once while the client waits.
    pub fn begin_pair(&mut self, now: Instant, client: IpAddr) -> Result<PairAttempt, PairError> {
        self.expire(now);
        if let Some(retry_after) = self.paused_for(now, client) {
            return Err(PairError::Paused { retry_after });
        }
        Ok(PairAttempt { client, password: self.password.clone() })
    }

    /// How long `client` still waits, if it does.
    fn paused_for(&self, now: Instant, client: IpAddr) -> Option<Duration> {
        ClientKey::keys_of(client)
            .iter()
            .filter_map(|k| self.clients.get(k).and_then(|c| c.paused_until))
            .filter(|until| now < *until)
            .map(|until| until - now)
            .max()
    }

    /// Decides a try [`begin_pair`](Self::begin_pair) let through;
    /// `password_ok` is whether the caller found the password right (true
    /// when none is set).
    pub fn finish_pair(
        &mut self,
        now: Instant,
        attempt: PairAttempt,
        code: &str,
        password_ok: bool,
    ) -> Result<NewSession, PairError> {
        self.expire(now);
        let client = attempt.client;
        // A try that waited for its password check while the client got paused.
        if let Some(retry_after) = self.paused_for(now, client) {
            return Err(PairError::Paused { retry_after });
        }
        let code_ok: bool = code.as_bytes().ct_eq(self.code.expose().as_bytes()).into();
        if code_ok && password_ok {
            if let Some(record) = self.clients.get_mut(&ClientKey::of(client)) {
                record.failures.clear();
            }
            self.new_code(now);
            return Ok(self.open_session(now, Role::Admin, Some(client)));
        }
        Err(self.count_failure(now, client))
    }

    /// Tries a pairing code (and the admin password when one is set) in one
    /// step, the password checked under the caller's lock. For tests and tools.
    pub fn pair(
        &mut self,
        now: Instant,
        client: IpAddr,
        code: &str,
        password: Option<&str>,
    ) -> Result<NewSession, PairError> {
        let attempt = self.begin_pair(now, client)?;
        let password_ok = match &attempt.password {
            None => true,
            Some(hash) => password.is_some_and(|p| hash.verify(p)),
        };
        self.finish_pair(now, attempt, code, password_ok)
    }

    fn count_failure(&mut self, now: Instant, client: IpAddr) -> PairError {
        self.failures_total += 1;
        self.recent.push_back(now);
        if self.guarded_until.is_some() {
            self.guarded_until = Some(now + GUARD_QUIET);
        } else if self.recent.len() >= GUARD_AFTER_FAILURES {
            self.guarded_until = Some(now + GUARD_QUIET);
            self.alerts.push_back(Alert::Guarded { failures_last_day: self.recent.len() });
            self.code_failures = ROTATE_AFTER_FAILURES; // a long code now
        }
        self.code_failures += 1;
        if self.code_failures >= ROTATE_AFTER_FAILURES {
            self.new_code(now);
        }
        let (mut remaining, mut pause) = (usize::MAX, None);
        for key in ClientKey::keys_of(client) {
            match self.count_against(now, key) {
                Ok(left) => remaining = remaining.min(left),
                Err(p) => pause = pause.max(Some(p)),
            }
        }
        match pause {
            Some(retry_after) => PairError::Paused { retry_after },
            None => PairError::Wrong { remaining },
        }
    }

    /// Counts a wrong try against one key: the tries it has left, or the
    /// pause it starts now.
    fn count_against(&mut self, now: Instant, key: ClientKey) -> Result<usize, Duration> {
        if !self.clients.contains_key(&key) && self.clients.len() >= MAX_TRACKED_CLIENTS {
            // Forget the client heard from least recently (never one that waits now).
            let oldest = self
                .clients
                .iter()
                .filter(|(_, r)| r.paused_until.is_none_or(|t| t <= now))
                .min_by_key(|(_, r)| r.last)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.clients.remove(&k);
            }
        }
        let limit = key.limit();
        let record = self.clients.entry(key).or_default();
        record.last = Some(now);
        while record.failures.front().is_some_and(|t| now.saturating_duration_since(*t) >= CLIENT_WINDOW) {
            record.failures.pop_front();
        }
        record.failures.push_back(now);
        if record.failures.len() < limit {
            return Ok(limit - record.failures.len());
        }
        let pause = CLIENT_PAUSE.saturating_mul(1 << record.pauses.min(10)).min(CLIENT_PAUSE_MAX);
        record.pauses += 1;
        record.failures.clear();
        record.paused_until = Some(now + pause);
        let failures = u32::try_from(limit).unwrap_or(u32::MAX);
        self.alerts.push_back(Alert::ClientPaused { client: key, failures, pause });
        Err(pause)
    }

    fn new_code(&mut self, now: Instant) {
        let digits = if self.guarded_until.is_some() { GUARDED_CODE_DIGITS } else { CODE_DIGITS };
        self.code = new_code(self.rng.as_mut(), digits);
        self.code_expires = Some(now + CODE_TTL);
        self.code_failures = 0;
    }

    /// Forgets what is too old: wrong tries past the day, ended pauses'
    /// clients after their window, the guard after a quiet day, ended sessions.
    fn expire(&mut self, now: Instant) {
        while self.recent.front().is_some_and(|t| now.saturating_duration_since(*t) >= GUARD_WINDOW) {
            self.recent.pop_front();
        }
        if self.guarded_until.is_some_and(|t| now >= t) {
            self.guarded_until = None;
            self.alerts.push_back(Alert::Unguarded);
            self.new_code(now);
        }
        self.clients.retain(|_, r| {
            let waiting = r.paused_until.is_some_and(|t| now < t);
            // A client is remembered a day after its last wrong try, so pauses keep doubling.
            waiting || r.last.is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(24 * 3600))
        });
        self.sessions.retain(|s| s.alive(now));
    }

    /// The current join-by-scan token, rotated when expired.
    pub fn join_token(&mut self, now: Instant) -> Secret {
        match &self.join_token {
            Some((token, expires)) if now < *expires => token.clone(),
            _ => {
                let token = random_hex(self.rng.as_mut(), 16);
                self.join_token = Some((token.clone(), now + JOIN_TOKEN_TTL));
                token
            }
        }
    }

    /// Redeems a scan token (single use) for a guest session.
    pub fn redeem_join_token(&mut self, now: Instant, client: IpAddr, token: &str) -> Result<NewSession, PairError> {
        let valid = match &self.join_token {
            Some((current, expires)) => {
                let same: bool = token.as_bytes().ct_eq(current.expose().as_bytes()).into();
                same && now < *expires
            }
            None => false,
        };
        if !valid {
            return Err(PairError::InvalidToken);
        }
        self.join_token = None;
        Ok(self.open_session(now, Role::Guest, Some(client)))
    }

    /// Finds the session of a cookie value (and notes the request, which
    /// keeps a guest session from going idle).
    pub fn session(&mut self, now: Instant, token: &str) -> Option<SessionInfo> {
        self.expire(now);
        let hash = sha256(token.as_bytes());
        // Compare every stored hash so the time taken does not depend on which matched.
        let mut found = None;
        for s in &mut self.sessions {
            if bool::from(s.token_hash.ct_eq(&hash)) {
                s.last_seen = now;
                found = Some(SessionInfo { id: s.id.clone(), role: s.role, csrf: s.csrf.clone(), meeting: s.meeting });
            }
        }
        found
    }

    /// Binds a guest session to the meeting it started (it ends with it).
    pub fn bind_guest(&mut self, id: &str, meeting: u64) {
        if let Some(s) = self.sessions.iter_mut().find(|s| s.id == id && s.role == Role::Guest) {
            s.meeting = Some(meeting);
        }
    }

    /// Ends the guest sessions bound to a meeting other than `current`
    /// (`None`: no meeting), i.e. those whose meeting is over.
    pub fn end_guests_of_past_meetings(&mut self, current: Option<u64>) -> usize {
        let before = self.sessions.len();
        self.sessions.retain(|s| s.role != Role::Guest || s.meeting.is_none() || s.meeting == current);
        before - self.sessions.len()
    }

    /// Ends the session of a cookie value.
    pub fn end_session(&mut self, token: &str) {
        let hash = sha256(token.as_bytes());
        self.sessions.retain(|s| !bool::from(s.token_hash.ct_eq(&hash)));
    }

    /// Ends a session by its public id; whether there was one.
    pub fn revoke(&mut self, id: &str) -> bool {
        let before = self.sessions.len();
        self.sessions.retain(|s| s.id != id);
        before != self.sessions.len()
    }

    /// The live sessions, oldest first.
    pub fn sessions(&mut self, now: Instant) -> Vec<SessionSummary> {
        self.expire(now);
        self.sessions
            .iter()
            .map(|s| SessionSummary {
                id: s.id.clone(),
                role: s.role,
                client: s.client.map(|c| c.to_string()),
                age_secs: now.saturating_duration_since(s.opened).as_secs(),
                idle_secs: now.saturating_duration_since(s.last_seen).as_secs(),
                expires_in_secs: match s.role {
                    Role::Admin => s.expires.saturating_duration_since(now),
                    Role::Guest => s.expires.min(s.last_seen + GUEST_IDLE).saturating_duration_since(now),
                }
                .as_secs(),
                meeting: s.meeting,
            })
            .collect()
    }

    fn open_session(&mut self, now: Instant, role: Role, client: Option<IpAddr>) -> NewSession {
        let token = random_hex(self.rng.as_mut(), 32);
        let csrf = random_hex(self.rng.as_mut(), 32);
        let id = random_hex(self.rng.as_mut(), 8).expose().to_owned();
        let ttl = match role {
            Role::Admin => ADMIN_SESSION_TTL,
            Role::Guest => GUEST_SESSION_TTL,
        };
        self.expire(now);
        let cap = match role {
            Role::Admin => MAX_ADMIN_SESSIONS,
            Role::Guest => MAX_GUEST_SESSIONS,
        };
        if self.sessions.iter().filter(|s| s.role == role).count() >= cap {
            if let Some(i) = self.sessions.iter().position(|s| s.role == role) {
                self.sessions.remove(i);
            }
        }
        self.sessions.push(Session {
            id,
            token_hash: sha256(token.expose().as_bytes()),
            csrf: csrf.clone(),
            role,
            client,
            opened: now,
            last_seen: now,
            expires: now + ttl,
            meeting: None,
        });
        NewSession { token, csrf, role, expires_in: ttl }
    }
}

/// Admin sessions as kept in the state directory (`sessions.json`, mode
/// 0600) so that a daemon restart does not log the admin out: only the
/// SHA-256 of each cookie token, its CSRF token, role and expiry (Unix
/// seconds). Guest sessions are not kept: a restart ends them.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct StoredSessions {
    pub sessions: Vec<StoredSession>,
}

impl fmt::Debug for StoredSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredSessions({} sessions, [redacted])", self.sessions.len())
    }
}

/// One stored session.
#[derive(serde::Serialize, serde::Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct StoredSession {
    token_sha256: String,
    csrf: String,
    #[zeroize(skip)]
    role: Role,
    expires_unix: u64,
}

impl Pairing {
    /// The live sessions, for saving. `now_unix` is the wall clock at `now`.
    pub fn export_sessions(&self, now: Instant, now_unix: u64) -> StoredSessions {
        let sessions = self
            .sessions
            .iter()
            .filter(|s| s.role == Role::Admin && now < s.expires)
            .map(|s| StoredSession {
                token_sha256: to_hex(&s.token_hash),
                csrf: s.csrf.expose().to_owned(),
                role: s.role,
                expires_unix: now_unix.saturating_add((s.expires - now).as_secs()),
            })
            .collect();
        StoredSessions { sessions }
    }

    /// Adds saved admin sessions that have not expired; malformed entries
    /// and guest sessions are skipped.
    pub fn restore_sessions(&mut self, stored: &StoredSessions, now: Instant, now_unix: u64) {
        for s in &stored.sessions {
            let Some(hash) = from_hex(&s.token_sha256).and_then(|h| <[u8; 32]>::try_from(h).ok()) else { continue };
            let valid_csrf = s.csrf.len() == 64 && s.csrf.bytes().all(|b| b.is_ascii_hexdigit());
            let admins = self.sessions.iter().filter(|s| s.role == Role::Admin).count();
            if !valid_csrf || s.role != Role::Admin || s.expires_unix <= now_unix || admins >= MAX_ADMIN_SESSIONS {
                continue;
            }
            let left = Duration::from_secs(s.expires_unix - now_unix).min(ADMIN_SESSION_TTL);
            let id = random_hex(self.rng.as_mut(), 8).expose().to_owned();
            self.sessions.push(Session {
                id,
                token_hash: hash,
                csrf: Secret(s.csrf.clone()),
                role: Role::Admin,
                client: None,
                opened: now,
                last_seen: now,
                expires: now + left,
                meeting: None,
            });
        }
    }
}

/// Compares a presented CSRF token with the session's in constant time.
pub fn csrf_matches(session: &SessionInfo, presented: &str) -> bool {
    presented.as_bytes().ct_eq(session.csrf.expose().as_bytes()).into()
}

/// An admin password hash: `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`.
#[derive(Clone, PartialEq, Zeroize, ZeroizeOnDrop)]
pub struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

impl PasswordHash {
    /// Hashes a new password with a random 16-byte salt.
    pub fn create(password: &str, rng: &mut dyn RandomSource) -> Self {
        let mut salt = vec![0u8; 16];
        rng.fill(&mut salt);
        let hash = pbkdf2_sha256(password, &salt, PASSWORD_ITERATIONS);
        Self { iterations: PASSWORD_ITERATIONS, salt, hash }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Result<Self, ApplianceError> {
        let bad = |why: &str| ApplianceError::PasswordHash(why.to_owned());
        let mut parts = s.split('$');
        if parts.next() != Some("pbkdf2-sha256") {
            return Err(bad("expected `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`"));
        }
        let iterations = parts
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (1..=10_000_000).contains(n))
            .ok_or_else(|| bad("iterations are not a number between 1 and 10000000"))?;
        let salt = parts.next().and_then(from_hex).filter(|s| !s.is_empty()).ok_or_else(|| bad("salt is not hex"))?;
        let hash = parts
            .next()
            .and_then(from_hex)
            .filter(|h| h.len() == 32)
            .ok_or_else(|| bad("hash is not 64 hex digits"))?;
        if parts.next().is_some() {
            return Err(bad("too many `$` fields"));
        }
        Ok(Self { iterations, salt, hash })
    }

    /// The stored form.
    pub fn to_stored(&self) -> String {
        format!("pbkdf2-sha256${}${}${}", self.iterations, to_hex(&self.salt), to_hex(&self.hash))
    }

    /// Checks a password in constant time.
    pub fn verify(&self, password: &str) -> bool {
        let candidate = Zeroizing::new(pbkdf2_sha256(password, &self.salt, self.iterations));
        candidate.ct_eq(&self.hash).into()
    }
}

fn pbkdf2_sha256(password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

fn new_code(rng: &mut dyn RandomSource, digits: usize) -> Secret {
    // Digit by digit, rejection sampling keeps each uniform (250 = 25 × 10).
    let mut code = String::with_capacity(digits);
    while code.len() < digits {
        let mut b = Zeroizing::new([0u8; 1]);
        rng.fill(&mut *b);
        if b[0] < 250 {
            code.push(char::from(b'0' + b[0] % 10));
        }
    }
    Secret(code)
}

fn random_hex(rng: &mut dyn RandomSource, bytes: usize) -> Secret {
    let mut b = Zeroizing::new(vec![0u8; bytes]);
    rng.fill(&mut b);
    Secret(to_hex(&b))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 256 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok())).collect()
}

/// Deterministic bytes for tests: a counter run through SHA-256.
#[derive(Debug, Default)]
pub struct CountingRandom(u64);

impl CountingRandom {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl RandomSource for CountingRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(32) {
            self.0 += 1;
            let block = sha256(&self.0.to_le_bytes());
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 10));

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, last))
    }

    fn pairing() -> (Pairing, Instant) {
        (Pairing::new(Box::new(CountingRandom::new(1)), None), Instant::now())
    }

    fn wrong(code: &Secret) -> String {
        let n: u64 = code.expose().parse().expect("digits");
        let len = code.expose().len();
        format!("{:0len$}", (n + 1) % 10u64.pow(u32::try_from(len).expect("short")))
    }

    #[test]
    fn code_is_six_digits_and_new_each_boot() {
        let now = Instant::now();
        let mut a = Pairing::new(Box::new(CountingRandom::new(1)), None);
        let mut b = Pairing::new(Box::new(CountingRandom::new(2)), None);
        let code = a.code(now).clone();
        assert_eq!(code.expose().len(), 6);
        assert!(code.expose().bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(&code, b.code(now));
        assert_eq!(format!("{a:?}").matches("[redacted]").count(), 1);
        assert!(!format!("{a:?}").contains(code.expose()));
    }

    #[test]
    fn right_code_opens_a_session_once() {
        let (mut p, now) = pairing();
        let code = p.code(now).clone();
        let s = p.pair(now, ADMIN, code.expose(), None).expect("paired");
        assert_eq!(s.role, Role::Admin);
        assert_eq!(s.token.expose().len(), 64);
        let info = p.session(now, s.token.expose()).expect("session found");
        assert!(csrf_matches(&info, s.csrf.expose()));
        assert!(!csrf_matches(&info, "nope"));
        // Single use: the same code again is wrong, and a new code is shown.
        assert_ne!(p.code(now), &code);
        assert!(matches!(p.pair(now, ADMIN, code.expose(), None), Err(PairError::Wrong { .. })));
        assert!(p.session(now, "0".repeat(64).as_str()).is_none());
        assert!(p.session(now + ADMIN_SESSION_TTL, s.token.expose()).is_none(), "expired");
    }

    #[test]
    fn the_code_changes_on_a_timer_and_after_a_few_wrong_tries() {
        let (mut p, t0) = pairing();
        let first = p.code(t0).clone();
        assert_eq!(p.code(t0 + CODE_TTL - Duration::from_secs(1)), &first);
        let second = p.code(t0 + CODE_TTL).clone();
        assert_ne!(second, first, "replaced after its lifetime");
        let t1 = t0 + CODE_TTL;
        for i in 0..ROTATE_AFTER_FAILURES - 1 {
            assert!(p.pair(t1, ip(50 + u8::try_from(i).expect("small")), &wrong(&second), None).is_err());
            assert_eq!(p.code(t1), &second, "a typo does not change the code");
        }
        assert!(p.pair(t1, ip(60), &wrong(&second), None).is_err());
        assert_ne!(p.code(t1), &second, "replaced after {ROTATE_AFTER_FAILURES} wrong tries");
    }

    #[test]
    fn a_guesser_waits_alone_and_the_admin_still_pairs() {
        let (mut p, t0) = pairing();
        let attacker = ip(66);
        for i in 0..CLIENT_MAX_FAILURES - 1 {
            let code = p.code(t0).clone();
            let r = p.pair(t0, attacker, &wrong(&code), None);
            assert_eq!(r.expect_err("wrong"), PairError::Wrong { remaining: CLIENT_MAX_FAILURES - 1 - i });
        }
        let code = p.code(t0).clone();
        let r = p.pair(t0, attacker, &wrong(&code), None);
        assert_eq!(r.expect_err("paused"), PairError::Paused { retry_after: CLIENT_PAUSE });
        assert_eq!(
            p.take_alerts(),
            vec![Alert::ClientPaused {
                client: ClientKey::of(attacker),
                failures: u32::try_from(CLIENT_MAX_FAILURES).expect("small"),
                pause: CLIENT_PAUSE
            }]
        );
        // The guesser is refused even with the right code while it waits...
        let code = p.code(t0).clone();
        let r = p.pair(t0 + Duration::from_secs(30), attacker, code.expose(), None);
        assert_eq!(r.expect_err("paused"), PairError::Paused { retry_after: Duration::from_secs(30) });
        // ...while the admin, elsewhere, pairs at once.
        assert!(p.pair(t0 + Duration::from_secs(30), ADMIN, code.expose(), None).is_ok());
        assert_eq!(p.stats(t0 + Duration::from_secs(30)).clients_paused, 1);
        assert_eq!(p.stats(t0 + Duration::from_secs(30)).failures_total, 5);
        // The next pause doubles.
        let t1 = t0 + CLIENT_PAUSE;
        for _ in 0..CLIENT_MAX_FAILURES - 1 {
            let code = p.code(t1).clone();
            assert!(matches!(p.pair(t1, attacker, &wrong(&code), None), Err(PairError::Wrong { .. })));
        }
        let code = p.code(t1).clone();
        let r = p.pair(t1, attacker, &wrong(&code), None);
        assert_eq!(r.expect_err("paused"), PairError::Paused { retry_after: 2 * CLIENT_PAUSE });
    }

    #[test]
    fn an_ipv6_guesser_waits_per_address_and_its_64_under_a_higher_limit() {
        let a: IpAddr = "2001:db8:1:2::10".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.168.1.66".parse().expect("ip");
        assert_eq!(ClientKey::of(mapped), ClientKey::of(ip(66)));
        let keys = ClientKey::keys_of(a);
        assert_eq!(keys.iter().map(ToString::to_string).collect::<Vec<_>>(), ["2001:db8:1:2::10", "2001:db8:1:2::/64"]);
        // Fresh addresses of one /64 get PREFIX_MAX_FAILURES tries together...
        let (mut p, t0) = pairing();
        let admin: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        for i in 0..PREFIX_MAX_FAILURES {
            let guesser: IpAddr = format!("2001:db8:1:2::{:x}", 0x100 + i).parse().expect("ip");
            let code = p.code(t0).clone();
            let r = p.pair(t0, guesser, &wrong(&code), None);
            assert_eq!(matches!(r, Err(PairError::Paused { .. })), i + 1 == PREFIX_MAX_FAILURES, "try {i}: {r:?}");
        }
        // ...then the whole /64 waits, while IPv4 and other networks still pair.
        let code = p.code(t0).clone();
        assert!(matches!(p.pair(t0, admin, code.expose(), None), Err(PairError::Paused { .. })));
        assert!(p.pair(t0, ADMIN, code.expose(), None).is_ok());
    }

    #[test]
    fn many_addresses_guessing_make_the_code_long_for_a_quiet_day() {
        let (mut p, t0) = pairing();
        for i in 0..GUARD_AFTER_FAILURES {
            let t = t0 + Duration::from_secs(60 * u64::try_from(i).expect("small"));
            let code = p.code(t).clone();
            assert_eq!(code.expose().len(), CODE_DIGITS);
            let _ = p.pair(t, ip(100 + u8::try_from(i).expect("small")), &wrong(&code), None);
        }
        let t1 = t0 + Duration::from_secs(60 * u64::try_from(GUARD_AFTER_FAILURES).expect("small"));
        assert!(p.take_alerts().contains(&Alert::Guarded { failures_last_day: GUARD_AFTER_FAILURES }));
        let long = p.code(t1).clone();
        assert_eq!(long.expose().len(), GUARDED_CODE_DIGITS);
        assert!(p.stats(t1).guarded);
        // The admin pairs with the long code as usual.
        assert!(p.pair(t1, ADMIN, long.expose(), None).is_ok());
        // A wrong try restarts the quiet day.
        let t2 = t1 + Duration::from_secs(3600);
        let code = p.code(t2).clone();
        let _ = p.pair(t2, ip(200), &wrong(&code), None);
        assert!(p.stats(t2 + GUARD_QUIET - Duration::from_secs(1)).guarded);
        let t3 = t2 + GUARD_QUIET;
        assert!(!p.stats(t3).guarded);
        assert_eq!(p.code(t3).expose().len(), CODE_DIGITS);
        assert_eq!(p.take_alerts().last(), Some(&Alert::Unguarded));
    }

    #[test]
    fn wrong_tries_spread_over_time_never_pause() {
        let (mut p, t0) = pairing();
        for i in 0..30 {
            let t = t0 + Duration::from_secs(240 * i);
            let code = p.code(t).clone();
            let r = p.pair(t, ip(7), &wrong(&code), None);
            assert!(matches!(r, Err(PairError::Wrong { .. })), "try {i}: {r:?}");
        }
    }

    #[test]
    fn password_is_required_when_set() {
        let mut rng = CountingRandom::new(9);
        let hash = PasswordHash::create("correct horse", &mut rng);
        let parsed = PasswordHash::parse(&hash.to_stored()).expect("round trip");
        assert_eq!(parsed, hash);
        assert_eq!(format!("{hash:?}"), "PasswordHash([redacted])");
        let mut p = Pairing::new(Box::new(CountingRandom::new(1)), Some(parsed));
        let now = Instant::now();
        let code = p.code(now).clone();
        assert!(matches!(p.pair(now, ADMIN, code.expose(), None), Err(PairError::Wrong { .. })));
        assert!(matches!(p.pair(now, ADMIN, code.expose(), Some("wrong")), Err(PairError::Wrong { .. })));
        assert!(p.pair(now, ADMIN, code.expose(), Some("correct horse")).is_ok());
        assert!(PasswordHash::parse("pbkdf2-sha256$0$00$00").is_err());
        assert!(PasswordHash::parse("md5$1$00$00").is_err());
    }

    #[test]
    fn the_password_is_checked_outside_the_pairing_state() {
        let mut rng = CountingRandom::new(9);
        let mut p = Pairing::new(Box::new(CountingRandom::new(1)), Some(PasswordHash::create("pw", &mut rng)));
        let now = Instant::now();
        let code = p.code(now).clone();
        let attempt = p.begin_pair(now, ADMIN).expect("let through");
        let ok = attempt.password.as_ref().is_some_and(|h| h.verify("pw"));
        assert!(p.finish_pair(now, attempt, code.expose(), ok).is_ok());
    }

    #[test]
    fn scan_tokens_are_single_use_and_rotate() {
        let (mut p, t0) = pairing();
        let t = p.join_token(t0);
        assert_eq!(p.join_token(t0 + Duration::from_secs(10)), t, "stable within its lifetime");
        let s = p.redeem_join_token(t0 + Duration::from_secs(10), ip(9), t.expose()).expect("redeemed");
        assert_eq!(s.role, Role::Guest);
        assert_eq!(p.redeem_join_token(t0, ip(9), t.expose()).expect_err("used"), PairError::InvalidToken);
        let t2 = p.join_token(t0 + Duration::from_secs(20));
        assert_ne!(t2, t);
        let t3 = p.join_token(t0 + Duration::from_secs(20) + JOIN_TOKEN_TTL);
        assert_ne!(t3, t2, "rotated after its lifetime");
        assert_eq!(
            p.redeem_join_token(t0 + Duration::from_secs(20) + JOIN_TOKEN_TTL, ip(9), t2.expose()).expect_err("old"),
            PairError::InvalidToken
        );
        let late = t0 + Duration::from_secs(20) + 2 * JOIN_TOKEN_TTL;
        assert_eq!(p.redeem_join_token(late, ip(9), t3.expose()).expect_err("expired"), PairError::InvalidToken);
    }

    fn guest(p: &mut Pairing, now: Instant) -> NewSession {
        let t = p.join_token(now);
        p.redeem_join_token(now, ip(9), t.expose()).expect("redeemed")
    }

    #[test]
    fn guest_sessions_end_when_idle_or_with_their_meeting() {
        let (mut p, t0) = pairing();
        let g = guest(&mut p, t0);
        // Each request keeps it alive...
        let t1 = t0 + GUEST_IDLE - Duration::from_secs(1);
        let info = p.session(t1, g.token.expose()).expect("alive");
        assert!(p.session(t1 + GUEST_IDLE - Duration::from_secs(1), g.token.expose()).is_some());
        // ...fifteen quiet minutes end it.
        assert!(p.session(t1 + 2 * GUEST_IDLE, g.token.expose()).is_none(), "idle");

        let g = guest(&mut p, t0);
        let info2 = p.session(t0, g.token.expose()).expect("alive");
        assert_ne!(info.id, info2.id);
        p.bind_guest(&info2.id, 7);
        assert_eq!(p.session(t0, g.token.expose()).expect("alive").meeting, Some(7));
        assert_eq!(p.end_guests_of_past_meetings(Some(7)), 0, "its meeting goes on");
        assert_eq!(p.end_guests_of_past_meetings(None), 1, "its meeting ended");
        assert!(p.session(t0, g.token.expose()).is_none());
    }

    #[test]
    fn guests_never_push_an_admin_out_and_the_admin_can_revoke() {
        let (mut p, t0) = pairing();
        let code = p.code(t0).clone();
        let admin = p.pair(t0, ADMIN, code.expose(), None).expect("paired");
        let guests: Vec<_> = (0..MAX_GUEST_SESSIONS + 50).map(|_| guest(&mut p, t0)).collect();
        assert!(p.session(t0, admin.token.expose()).is_some(), "the admin stays");
        assert!(p.session(t0, guests[0].token.expose()).is_none(), "the oldest guest went");
        let list = p.sessions(t0);
        assert_eq!(list.iter().filter(|s| s.role == Role::Guest).count(), MAX_GUEST_SESSIONS);
        assert_eq!(list.iter().filter(|s| s.role == Role::Admin).count(), 1);
        assert_eq!(list[0].client.as_deref(), Some("192.168.1.10"));
        let last = guests.last().expect("one");
        let id = p.session(t0, last.token.expose()).expect("alive").id;
        assert!(p.revoke(&id));
        assert!(p.session(t0, last.token.expose()).is_none(), "revoked");
        assert!(!p.revoke(&id));
    }

    #[test]
    fn only_admin_sessions_survive_export_and_restore_until_they_expire() {
        let (mut p, t0) = pairing();
        let code = p.code(t0).clone();
        let s = p.pair(t0, ADMIN, code.expose(), None).expect("paired");
        let g = guest(&mut p, t0);
        let stored = p.export_sessions(t0, 1_000_000);
        assert_eq!(stored.sessions.len(), 1, "guest sessions are not kept");
        let json = serde_json::to_string(&stored).expect("json");
        assert!(!json.contains(s.token.expose()), "only the hash of the token is stored");
        assert!(!format!("{stored:?}").contains(s.csrf.expose()));
        let back: StoredSessions = serde_json::from_str(&json).expect("parses");
        let (mut q, t1) = (Pairing::new(Box::new(CountingRandom::new(2)), None), Instant::now());
        q.restore_sessions(&back, t1, 1_000_100);
        let info = q.session(t1, s.token.expose()).expect("restored");
        assert!(csrf_matches(&info, s.csrf.expose()));
        assert_eq!(info.role, Role::Admin);
        assert!(q.session(t1, g.token.expose()).is_none());
        let mut r = Pairing::new(Box::new(CountingRandom::new(3)), None);
        r.restore_sessions(&back, t1, 1_000_000 + ADMIN_SESSION_TTL.as_secs());
        assert!(r.session(t1, s.token.expose()).is_none(), "expired sessions are not restored");
        // A planted guest entry is not restored either.
        let planted = json.replace("\"admin\"", "\"guest\"");
        let planted: StoredSessions = serde_json::from_str(&planted).expect("parses");
        let mut r = Pairing::new(Box::new(CountingRandom::new(4)), None);
        r.restore_sessions(&planted, t1, 1_000_100);
        assert!(r.session(t1, s.token.expose()).is_none());
    }

    #[test]
    fn ended_sessions_are_gone() {
        let (mut p, now) = pairing();
        let code = p.code(now).clone();
        let s = p.pair(now, ADMIN, code.expose(), None).expect("paired");
        p.end_session(s.token.expose());
        assert!(p.session(now, s.token.expose()).is_none());
    }
}
