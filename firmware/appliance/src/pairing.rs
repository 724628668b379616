//! Pairing and sessions, as pure logic (no clock, no I/O, randomness injected).
//!
//! - Pairing code: 6 decimal digits, new each boot, shown on the room
//!   screen; single use (a new one replaces it once used). At most
//!   [`MAX_FAILURES`] wrong tries in [`FAILURE_WINDOW`]; the tenth starts a
//!   [`PAUSE`] during which every try is refused, even the right code.
//! - Sessions: 32 random bytes given to the browser as a cookie (hex);
//!   only their SHA-256 is kept. Each has its own CSRF token (the
//!   synchronizer-token pattern of the OWASP CSRF cheat sheet), sent back
//!   in the `x-csrf-token` header.
//! - Join-by-scan tokens for `https://<device>/join#t=<token>`: short-lived,
//!   single use, rotated; they open a guest session (join, leave, mute, status).
//! - Optional admin password: PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2).
//!
//! Secrets are compared in constant time (`subtle`), wiped on drop and
//! print as `[redacted]`.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::ApplianceError;

/// Wrong pairing tries allowed per [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 10;
/// The window the wrong tries are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long pairing is refused after too many wrong tries.
pub const PAUSE: Duration = Duration::from_secs(60);
/// Lifetime of an admin session.
pub const ADMIN_SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Lifetime of a guest session opened by a scan.
pub const GUEST_SESSION_TTL: Duration = Duration::from_secs(4 * 3600);
/// Lifetime of a join-by-scan token before it is rotated.
pub const JOIN_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Sessions kept at most; the oldest goes first.
pub const MAX_SESSIONS: usize = 64;
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
    /// Opened by a scan: status, join, leave, mute.
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
    pub role: Role,
    pub csrf: Secret,
}

/// Why pairing was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairError {
    /// Wrong code or password; `remaining` tries before the pause.
    Wrong { remaining: usize },
    /// Too many wrong tries: try again after this long.
    Paused { retry_after: Duration },
    /// The scan token is unknown, used or expired.
    InvalidToken,
}

/// Pairing, sessions and scan tokens of one boot.
pub struct Pairing {
    rng: Box<dyn RandomSource>,
    code: Secret,
    failures: VecDeque<Instant>,
    paused_until: Option<Instant>,
    password: Option<PasswordHash>,
    sessions: Vec<Session>,
    join_token: Option<(Secret, Instant)>,
}

impl fmt::Debug for Pairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pairing")
            .field("code", &self.code)
            .field("failures", &self.failures.len())
            .field("paused_until", &self.paused_until)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

struct Session {
    token_hash: [u8; 32],
    csrf: Secret,
    role: Role,
    expires: Instant,
}

impl Pairing {
    /// Starts a boot's pairing with a fresh code.
    pub fn new(mut rng: Box<dyn RandomSource>, password: Option<PasswordHash>) -> Self {
        let code = new_code(rng.as_mut());
        Self {
            rng,
            code,
            failures: VecDeque::new(),
            paused_until: None,
            password,
            sessions: Vec::new(),
            join_token: None,
        }
    }

    /// The code to show on the room screen.
    pub fn code(&self) -> &Secret {
        &self.code
    }

    /// Whether pairing also asks for the admin password.
    pub fn needs_password(&self) -> bool {
        self.password.is_some()
    }

    /// Number of wrong tries in the current window (for metrics).
    pub fn recent_failures(&self, now: Instant) -> usize {
        self.failures.iter().filter(|t| now.saturating_duration_since(**t) < FAILURE_WINDOW).count()
    }

    /// Tries a pairing code (and the admin password when one is set).
    pub fn pair(&mut self, now: Instant, code: &str, password: Option<&str>) -> Result<NewSession, PairError> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(PairError::Paused { retry_after: until - now });
            }
            self.paused_until = None;
        }
        while self.failures.front().is_some_and(|t| now.saturating_duration_since(*t) >= FAILURE_WINDOW) {
            self.failures.pop_front();
        }
        let code_ok: bool = code.as_bytes().ct_eq(self.code.expose().as_bytes()).into();
        let password_ok = match &self.password {
            None => true,
            Some(hash) => password.is_some_and(|p| hash.verify(p)),
        };
        if code_ok && password_ok {
            self.failures.clear();
            self.code = new_code(self.rng.as_mut());
            return Ok(self.open_session(now, Role::Admin));
        }
        self.failures.push_back(now);
        if self.failures.len() >= MAX_FAILURES {
            self.failures.clear();
            self.paused_until = Some(now + PAUSE);
            return Err(PairError::Paused { retry_after: PAUSE });
        }
        Err(PairError::Wrong { remaining: MAX_FAILURES - self.failures.len() })
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
    pub fn redeem_join_token(&mut self, now: Instant, token: &str) -> Result<NewSession, PairError> {
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
        Ok(self.open_session(now, Role::Guest))
    }

    /// Finds the session of a cookie value.
    pub fn session(&mut self, now: Instant, token: &str) -> Option<SessionInfo> {
        self.sessions.retain(|s| now < s.expires);
        let hash = sha256(token.as_bytes());
        // Compare every stored hash so the time taken does not depend on which matched.
        let mut found = None;
        for s in &self.sessions {
            if bool::from(s.token_hash.ct_eq(&hash)) {
                found = Some(SessionInfo { role: s.role, csrf: s.csrf.clone() });
            }
        }
        found
    }

    /// Ends the session of a cookie value.
    pub fn end_session(&mut self, token: &str) {
        let hash = sha256(token.as_bytes());
        self.sessions.retain(|s| !bool::from(s.token_hash.ct_eq(&hash)));
    }

    fn open_session(&mut self, now: Instant, role: Role) -> NewSession {
        let token = random_hex(self.rng.as_mut(), 32);
        let csrf = random_hex(self.rng.as_mut(), 32);
        let ttl = match role {
            Role::Admin => ADMIN_SESSION_TTL,
            Role::Guest => GUEST_SESSION_TTL,
        };
        self.sessions.retain(|s| now < s.expires);
        if self.sessions.len() >= MAX_SESSIONS {
            self.sessions.remove(0);
        }
        self.sessions.push(Session {
            token_hash: sha256(token.expose().as_bytes()),
            csrf: csrf.clone(),
            role,
            expires: now + ttl,
        });
        NewSession { token, csrf, role, expires_in: ttl }
    }
}

/// Sessions as kept in the state directory (`sessions.json`, mode 0600) so
/// that a daemon restart does not log everyone out: only the SHA-256 of each
/// cookie token, its CSRF token, role and expiry (Unix seconds).
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
            .filter(|s| now < s.expires)
            .map(|s| StoredSession {
                token_sha256: to_hex(&s.token_hash),
                csrf: s.csrf.expose().to_owned(),
                role: s.role,
                expires_unix: now_unix.saturating_add((s.expires - now).as_secs()),
            })
            .collect();
        StoredSessions { sessions }
    }

    /// Adds saved sessions that have not expired; malformed entries are skipped.
    pub fn restore_sessions(&mut self, stored: &StoredSessions, now: Instant, now_unix: u64) {
        for s in &stored.sessions {
            let Some(hash) = from_hex(&s.token_sha256).and_then(|h| <[u8; 32]>::try_from(h).ok()) else { continue };
            let valid_csrf = s.csrf.len() == 64 && s.csrf.bytes().all(|b| b.is_ascii_hexdigit());
            if !valid_csrf || s.expires_unix <= now_unix || self.sessions.len() >= MAX_SESSIONS {
                continue;
            }
            let ttl = match s.role {
                Role::Admin => ADMIN_SESSION_TTL,
                Role::Guest => GUEST_SESSION_TTL,
            };
            let left = Duration::from_secs(s.expires_unix - now_unix).min(ttl);
            self.sessions.push(Session {
                token_hash: hash,
                csrf: Secret(s.csrf.clone()),
                role: s.role,
                expires: now + left,
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

fn new_code(rng: &mut dyn RandomSource) -> Secret {
    // Rejection sampling keeps the 6 digits uniform.
    loop {
        let mut b = Zeroizing::new([0u8; 4]);
        rng.fill(&mut *b);
        let n = u32::from_le_bytes(*b);
        if n < 4_294_000_000 {
            return Secret(format!("{:06}", n % 1_000_000));
        }
    }
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

    fn pairing() -> (Pairing, Instant) {
        (Pairing::new(Box::new(CountingRandom::new(1)), None), Instant::now())
    }

    fn wrong(code: &Secret) -> String {
        let n: u32 = code.expose().parse().expect("digits");
        format!("{:06}", (n + 1) % 1_000_000)
    }

    #[test]
    fn code_is_six_digits_and_new_each_boot() {
        let a = Pairing::new(Box::new(CountingRandom::new(1)), None);
        let b = Pairing::new(Box::new(CountingRandom::new(2)), None);
        assert_eq!(a.code().expose().len(), 6);
        assert!(a.code().expose().bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(a.code(), b.code());
        assert_eq!(format!("{a:?}").matches("[redacted]").count(), 1);
        assert!(!format!("{a:?}").contains(a.code().expose()));
    }

    #[test]
    fn right_code_opens_a_session_once() {
        let (mut p, now) = pairing();
        let code = p.code().clone();
        let s = p.pair(now, code.expose(), None).expect("paired");
        assert_eq!(s.role, Role::Admin);
        assert_eq!(s.token.expose().len(), 64);
        let info = p.session(now, s.token.expose()).expect("session found");
        assert!(csrf_matches(&info, s.csrf.expose()));
        assert!(!csrf_matches(&info, "nope"));
        // Single use: the same code again is wrong, and a new code is shown.
        assert_ne!(p.code(), &code);
        assert!(matches!(p.pair(now, code.expose(), None), Err(PairError::Wrong { .. })));
        assert!(p.session(now, "0".repeat(64).as_str()).is_none());
        assert!(p.session(now + ADMIN_SESSION_TTL, s.token.expose()).is_none(), "expired");
    }

    #[test]
    fn ten_wrong_tries_a_minute_then_a_pause() {
        let (mut p, t0) = pairing();
        let code = p.code().clone();
        for i in 0..9 {
            let r = p.pair(t0 + Duration::from_secs(i), &wrong(&code), None);
            assert_eq!(r.expect_err("wrong"), PairError::Wrong { remaining: 9 - i as usize });
        }
        let r = p.pair(t0 + Duration::from_secs(9), &wrong(&code), None);
        assert_eq!(r.expect_err("paused"), PairError::Paused { retry_after: PAUSE });
        // Even the right code is refused during the pause.
        let r = p.pair(t0 + Duration::from_secs(30), code.expose(), None);
        assert_eq!(r.expect_err("paused"), PairError::Paused { retry_after: Duration::from_secs(39) });
        assert!(p.pair(t0 + Duration::from_secs(69), code.expose(), None).is_ok());
    }

    #[test]
    fn wrong_tries_spread_over_minutes_do_not_pause() {
        let (mut p, t0) = pairing();
        let code = p.code().clone();
        for i in 0..30 {
            let r = p.pair(t0 + Duration::from_secs(7 * i), &wrong(&code), None);
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
        let code = p.code().clone();
        let now = Instant::now();
        assert!(matches!(p.pair(now, code.expose(), None), Err(PairError::Wrong { .. })));
        assert!(matches!(p.pair(now, code.expose(), Some("wrong")), Err(PairError::Wrong { .. })));
        assert!(p.pair(now, code.expose(), Some("correct horse")).is_ok());
        assert!(PasswordHash::parse("pbkdf2-sha256$0$00$00").is_err());
        assert!(PasswordHash::parse("md5$1$00$00").is_err());
    }

    #[test]
    fn scan_tokens_are_single_use_and_rotate() {
        let (mut p, t0) = pairing();
        let t = p.join_token(t0);
        assert_eq!(p.join_token(t0 + Duration::from_secs(10)), t, "stable within its lifetime");
        let s = p.redeem_join_token(t0 + Duration::from_secs(10), t.expose()).expect("redeemed");
        assert_eq!(s.role, Role::Guest);
        assert_eq!(p.redeem_join_token(t0, t.expose()).expect_err("used"), PairError::InvalidToken);
        let t2 = p.join_token(t0 + Duration::from_secs(20));
        assert_ne!(t2, t);
        let t3 = p.join_token(t0 + Duration::from_secs(20) + JOIN_TOKEN_TTL);
        assert_ne!(t3, t2, "rotated after its lifetime");
        assert_eq!(
            p.redeem_join_token(t0 + Duration::from_secs(20) + JOIN_TOKEN_TTL, t2.expose()).expect_err("old"),
            PairError::InvalidToken
        );
        let late = t0 + Duration::from_secs(20) + 2 * JOIN_TOKEN_TTL;
        assert_eq!(p.redeem_join_token(late, t3.expose()).expect_err("expired"), PairError::InvalidToken);
    }

    #[test]
    fn sessions_survive_export_and_restore_until_they_expire() {
        let (mut p, t0) = pairing();
        let code = p.code().clone();
        let s = p.pair(t0, code.expose(), None).expect("paired");
        let stored = p.export_sessions(t0, 1_000_000);
        let json = serde_json::to_string(&stored).expect("json");
        assert!(!json.contains(s.token.expose()), "only the hash of the token is stored");
        assert!(!format!("{stored:?}").contains(s.csrf.expose()));
        let back: StoredSessions = serde_json::from_str(&json).expect("parses");
        let (mut q, t1) = (Pairing::new(Box::new(CountingRandom::new(2)), None), Instant::now());
        q.restore_sessions(&back, t1, 1_000_100);
        let info = q.session(t1, s.token.expose()).expect("restored");
        assert!(csrf_matches(&info, s.csrf.expose()));
        assert_eq!(info.role, Role::Admin);
        let mut r = Pairing::new(Box::new(CountingRandom::new(3)), None);
        r.restore_sessions(&back, t1, 1_000_000 + ADMIN_SESSION_TTL.as_secs());
        assert!(r.session(t1, s.token.expose()).is_none(), "expired sessions are not restored");
    }

    #[test]
    fn ended_sessions_are_gone() {
        let (mut p, now) = pairing();
        let code = p.code().clone();
        let s = p.pair(now, code.expose(), None).expect("paired");
        p.end_session(s.token.expose());
        assert!(p.session(now, s.token.expose()).is_none());
    }
}
