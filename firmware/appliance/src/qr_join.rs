//! Join by holding a meeting link's QR code up to the room's camera
//! (issue 17): the decision and the countdown, pure, in virtual time.
//!
//! The daemon's scanner (`cloakroom_media::qr`) reads codes a few times a
//! second while the room is idle and hands every text to
//! [`QrJoin::handle_code`]. A code is looked at once while it stays in view
//! (the same text again within [`FORGET_AFTER`] of its last sighting is a
//! repeat, remembered only as a SHA-256 digest: the text holds the key).
//! Text that is not a link is ignored without a word (posters, Wi-Fi
//! codes). A link goes through the very rules of a pasted link
//! ([`crate::web::api::validate_join`]: `require_key`, `plain_ws_hosts`):
//! a refused one says why on the room screen for [`NOTICE_SHOWN`]; an
//! accepted one starts a visible [`COUNTDOWN`], which the mute button or
//! the page ([`QrJoin::cancel`]) stops, and at its end the daemon joins
//! ([`QrOutput::Join`]). A cancelled code stays ignored while it is held
//! up; taken away for [`FORGET_AFTER`] and shown again, it counts anew.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use cloakroom_meeting::MeetingLink;
use sha2::{Digest, Sha256};

use crate::web::api::{JoinRequest, validate_join};

/// How long the room counts down before joining.
pub const COUNTDOWN: Duration = Duration::from_secs(5);
/// How long a refusal or a cancellation stays on the room screen.
pub const NOTICE_SHOWN: Duration = Duration::from_secs(10);
/// A code out of view this long is new when it comes back.
pub const FORGET_AFTER: Duration = Duration::from_secs(5);

/// The join rules of the room's config, as for a pasted link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinRules {
    /// `e2ee.require_key`.
    pub require_key: bool,
    /// `[links] plain_ws_hosts`.
    pub plain_ws_hosts: Vec<String>,
}

/// Who stopped a countdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelledBy {
    /// The board's mute button.
    Button,
    /// The page (`POST /api/qr/cancel`).
    Page,
    /// The room left idle (joined from the page meanwhile).
    RoomBusy,
}

/// What the daemon should do.
#[derive(Debug)]
pub enum QrOutput {
    /// Show this on the room screen's status banner; `None` takes ours away.
    Banner(Option<String>),
    /// The countdown ran out: join this meeting.
    Join(MeetingLink),
    /// Something for the log (never the key).
    Event(QrEvent),
}

/// What happened, for the log and the status lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QrEvent {
    /// A countdown started for this link (shown without its key).
    Counting { link: String },
    /// A link was refused, with the reason shown on the screen.
    Refused { reason: String },
    /// A countdown was stopped.
    Cancelled { by: CancelledBy },
    /// A code that is not a link was ignored.
    NotALink,
}

/// The decision and the countdown. See the module docs.
#[derive(Debug, Default)]
pub struct QrJoin {
    phase: Phase,
    /// The last code's digest and when it was last seen.
    last: Option<([u8; 32], Instant)>,
    outputs: VecDeque<QrOutput>,
}

#[derive(Debug, Default)]
enum Phase {
    #[default]
    Quiet,
    Counting {
        link: MeetingLink,
        shown: String,
        ends: Instant,
        seconds: u64,
    },
    /// A refusal or cancellation on the screen until then.
    Notice {
        until: Instant,
    },
}

impl QrJoin {
    /// Nothing going on.
    pub fn new() -> Self {
        Self::default()
    }

    /// A code read by the camera at `now`.
    pub fn handle_code(&mut self, now: Instant, text: &str, rules: &JoinRules) {
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        let repeat =
            self.last.is_some_and(|(d, seen)| d == digest && now.saturating_duration_since(seen) < FORGET_AFTER);
        self.last = Some((digest, now));
        if repeat || matches!(self.phase, Phase::Counting { .. }) {
            // Held up still, or another code while one counts down: the first one stands.
            return;
        }
        if !looks_like_a_link(text) {
            self.outputs.push_back(QrOutput::Event(QrEvent::NotALink));
            return;
        }
        let request = JoinRequest { link: text.to_owned() };
        match validate_join(&request, rules.require_key, &rules.plain_ws_hosts) {
            Ok(link) => {
                let shown = link.to_string();
                let seconds = COUNTDOWN.as_secs();
                self.outputs.push_back(QrOutput::Event(QrEvent::Counting { link: shown.clone() }));
                self.outputs.push_back(QrOutput::Banner(Some(counting_text(&shown, seconds))));
                self.phase = Phase::Counting { link, shown, ends: now + COUNTDOWN, seconds };
            }
            Err(e) => {
                self.outputs.push_back(QrOutput::Event(QrEvent::Refused { reason: e.message.clone() }));
                self.outputs.push_back(QrOutput::Banner(Some(refused_text(&e.message))));
                self.phase = Phase::Notice { until: now + NOTICE_SHOWN };
            }
        }
    }

    /// Stops a countdown; whether one was running. The screen says so
    /// (except when the room got busy: the meeting takes the screen).
    pub fn cancel(&mut self, now: Instant, by: CancelledBy) -> bool {
        if !matches!(self.phase, Phase::Counting { .. }) {
            return false;
        }
        self.outputs.push_back(QrOutput::Event(QrEvent::Cancelled { by }));
        if by == CancelledBy::RoomBusy {
            self.phase = Phase::Quiet;
            self.outputs.push_back(QrOutput::Banner(None));
        } else {
            self.phase = Phase::Notice { until: now + NOTICE_SHOWN };
            self.outputs.push_back(QrOutput::Banner(Some("Join cancelled".to_owned())));
        }
        true
    }

    /// Whether a countdown is running.
    pub fn counting(&self) -> bool {
        matches!(self.phase, Phase::Counting { .. })
    }

    /// Moves the countdown on to `now` (call at [`QrJoin::poll_timeout`] or later).
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Counting { ends, seconds, shown, .. } => {
                if now >= *ends {
                    let Phase::Counting { link, .. } = std::mem::take(&mut self.phase) else { return };
                    self.outputs.push_back(QrOutput::Banner(None));
                    self.outputs.push_back(QrOutput::Join(link));
                    return;
                }
                let left = seconds_left(*ends, now);
                if left != *seconds {
                    *seconds = left;
                    let text = counting_text(shown, left);
                    self.outputs.push_back(QrOutput::Banner(Some(text)));
                }
            }
            Phase::Notice { until } if now >= *until => {
                self.phase = Phase::Quiet;
                self.outputs.push_back(QrOutput::Banner(None));
            }
            Phase::Notice { .. } | Phase::Quiet => {}
        }
    }

    /// When [`QrJoin::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Quiet => None,
            // The next whole second of the countdown, or its end.
            Phase::Counting { ends, seconds, .. } => {
                Some(ends.checked_sub(Duration::from_secs(seconds.saturating_sub(1))).unwrap_or(*ends))
            }
            Phase::Notice { until } => Some(*until),
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<QrOutput> {
        self.outputs.pop_front()
    }
}

/// The banner during the countdown.
pub fn counting_text(shown: &str, seconds: u64) -> String {
    format!("Joining {shown} in {seconds} s\nPress mute, or Stop on the room's page, to cancel")
}

/// The banner for a refused link.
pub fn refused_text(reason: &str) -> String {
    format!("Not joining from this QR code:\n{reason}")
}

/// Whole seconds left, rounded up (5, 4, … 1).
fn seconds_left(ends: Instant, now: Instant) -> u64 {
    let left = ends.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

/// Whether a code's text is meant as a link (and so is worth a refusal on
/// the screen); anything else is somebody else's code.
fn looks_like_a_link(text: &str) -> bool {
    let lower = text.trim().get(..12).unwrap_or(text.trim()).to_ascii_lowercase();
    ["https://", "http://", "janus+ws://", "janus+wss://", "jitsi+ws://", "jitsi+wss://"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYED: &str = "janus+wss://sfu.example/janus?room=1234#e2ee=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const KEYLESS: &str = "janus+wss://sfu.example/janus?room=1234";

    fn rules(require_key: bool) -> JoinRules {
        JoinRules { require_key, plain_ws_hosts: Vec::new() }
    }

    fn drain(q: &mut QrJoin) -> Vec<QrOutput> {
        std::iter::from_fn(|| q.poll_output()).collect()
    }

    fn banners(outputs: &[QrOutput]) -> Vec<Option<String>> {
        outputs
            .iter()
            .filter_map(|o| match o {
                QrOutput::Banner(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    fn joined(outputs: &[QrOutput]) -> Option<&MeetingLink> {
        outputs.iter().find_map(|o| match o {
            QrOutput::Join(l) => Some(l),
            _ => None,
        })
    }

    /// Runs the machine's timers from `from` to `to`, a tenth of a second at a time.
    fn run(q: &mut QrJoin, from: Instant, to: Instant) -> Vec<QrOutput> {
        let mut out = Vec::new();
        let mut now = from;
        while now <= to {
            if q.poll_timeout().is_some_and(|t| t <= now) {
                q.handle_timeout(now);
            }
            out.extend(drain(q));
            now += Duration::from_millis(100);
        }
        out
    }

    #[test]
    fn a_keyed_link_joins_after_a_visible_countdown() {
        let t0 = Instant::now();
        let mut q = QrJoin::new();
        q.handle_code(t0, KEYED, &rules(true));
        let first = drain(&mut q);
        assert_eq!(
            banners(&first),
            [Some(counting_text("janus+wss://sfu.example/janus?room=1234#[redacted]", 5))],
            "{first:?}"
        );
        assert!(q.counting());
        let before_end = run(&mut q, t0, t0 + Duration::from_millis(4900));
        assert!(joined(&before_end).is_none(), "no join before 5 s");
        let seconds: Vec<_> = banners(&before_end).into_iter().flatten().collect();
        assert_eq!(seconds.len(), 4, "{seconds:?}");
        for (text, n) in seconds.iter().zip([4, 3, 2, 1]) {
            assert!(text.contains(&format!(" in {n} s\n")), "{text}");
            assert!(!text.contains("AAEC"), "the key is never shown: {text}");
        }
        let end = run(&mut q, t0 + Duration::from_millis(5000), t0 + Duration::from_secs(6));
        let link = joined(&end).expect("joins at 5 s");
        assert!(link.key().is_some());
        assert_eq!(banners(&end), [None]);
        assert!(!q.counting());
        assert_eq!(q.poll_timeout(), None);
    }

    #[test]
    fn the_button_or_the_page_cancels_and_the_held_code_stays_ignored() {
        let t0 = Instant::now();
        for by in [CancelledBy::Button, CancelledBy::Page] {
            let mut q = QrJoin::new();
            q.handle_code(t0, KEYED, &rules(true));
            let _ = run(&mut q, t0, t0 + Duration::from_secs(2));
            assert!(q.cancel(t0 + Duration::from_secs(2), by));
            let out = drain(&mut q);
            assert_eq!(banners(&out), [Some("Join cancelled".to_owned())]);
            assert!(out.iter().any(|o| matches!(o, QrOutput::Event(QrEvent::Cancelled { by: b }) if *b == by)));
            // Still held up, seen three times a second: no new countdown, no join.
            let mut now = t0 + Duration::from_secs(2);
            let mut out = Vec::new();
            while now < t0 + Duration::from_secs(20) {
                q.handle_code(now, KEYED, &rules(true));
                out.extend(run(&mut q, now, now + Duration::from_millis(300)));
                now += Duration::from_millis(333);
            }
            assert!(joined(&out).is_none(), "{by:?}: {out:?}");
            assert!(!q.counting());
            assert!(!q.cancel(now, by), "nothing left to cancel");
            // The banner went away after its time.
            assert_eq!(banners(&out), [None]);
        }
    }

    #[test]
    fn a_code_taken_away_and_shown_again_counts_anew() {
        let t0 = Instant::now();
        let mut q = QrJoin::new();
        q.handle_code(t0, KEYED, &rules(true));
        assert!(q.cancel(t0 + Duration::from_secs(1), CancelledBy::Button));
        q.handle_code(t0 + Duration::from_secs(1), KEYED, &rules(true));
        assert!(!q.counting(), "still in view");
        q.handle_code(t0 + Duration::from_secs(7), KEYED, &rules(true));
        assert!(q.counting(), "out of view for 6 s, then back");
    }

    #[test]
    fn a_busy_room_stops_the_countdown_quietly() {
        let t0 = Instant::now();
        let mut q = QrJoin::new();
        q.handle_code(t0, KEYED, &rules(true));
        let _ = drain(&mut q);
        assert!(q.cancel(t0, CancelledBy::RoomBusy));
        assert_eq!(banners(&drain(&mut q)), [None]);
        assert_eq!(q.poll_timeout(), None);
    }

    #[test]
    fn a_link_without_a_key_is_refused_on_the_screen_when_keys_are_required() {
        let t0 = Instant::now();
        let mut q = QrJoin::new();
        q.handle_code(t0, KEYLESS, &rules(true));
        let out = drain(&mut q);
        let shown = banners(&out);
        let [Some(text)] = shown.as_slice() else { panic!("{out:?}") };
        assert!(text.starts_with("Not joining from this QR code:\n"), "{text}");
        assert!(text.contains("refuses meetings without one"), "{text}");
        assert!(!q.counting());
        let later = run(&mut q, t0, t0 + NOTICE_SHOWN);
        assert_eq!(banners(&later), [None], "the refusal goes away");
        assert!(joined(&later).is_none());
        // The same rules as a pasted link: with require_key off it counts down.
        let mut open = QrJoin::new();
        open.handle_code(t0, KEYLESS, &rules(false));
        assert!(open.counting());
    }

    #[test]
    fn plain_websocket_follows_the_pasted_link_rules() {
        let t0 = Instant::now();
        let link = "janus+ws://10.0.0.9:8188/janus?room=1#e2ee=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        let mut q = QrJoin::new();
        q.handle_code(t0, link, &rules(true));
        let out = drain(&mut q);
        assert!(
            out.iter().any(
                |o| matches!(o, QrOutput::Event(QrEvent::Refused { reason }) if reason.contains("plain_ws_hosts"))
            ),
            "{out:?}"
        );
        let mut listed = QrJoin::new();
        listed.handle_code(t0, link, &JoinRules { require_key: true, plain_ws_hosts: vec!["10.0.0.9".into()] });
        assert!(listed.counting());
    }

    #[test]
    fn random_text_is_ignored_without_a_word() {
        let t0 = Instant::now();
        let mut q = QrJoin::new();
        for text in ["WIFI:S:guest;T:WPA;P:hunter2;;", "hello", "", "janus", "tel:+4412345"] {
            q.handle_code(t0, text, &rules(true));
            let out = drain(&mut q);
            assert!(banners(&out).is_empty(), "{text}: {out:?}");
            assert!(matches!(out.as_slice(), [QrOutput::Event(QrEvent::NotALink)]), "{text}: {out:?}");
        }
        assert!(!q.counting());
        assert_eq!(q.poll_timeout(), None);
    }

    #[test]
    fn a_second_code_during_a_countdown_does_not_replace_it() {
        let t0 = Instant::now();
        let other = "janus+wss://other.example/janus?room=9#e2ee=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        let mut q = QrJoin::new();
        q.handle_code(t0, KEYED, &rules(true));
        q.handle_code(t0 + Duration::from_secs(1), other, &rules(true));
        let out = run(&mut q, t0, t0 + Duration::from_secs(6));
        let link = joined(&out).expect("joins");
        assert!(link.to_string().contains("sfu.example"), "{link}");
    }

    #[test]
    fn refusals_never_show_the_key() {
        let t0 = Instant::now();
        let mut q = QrJoin::new();
        q.handle_code(t0, "janus+wss://sfu.example/janus?room=1#e2ee=SECRETSECRET", &rules(true));
        let out = drain(&mut q);
        assert!(!format!("{out:?}").contains("SECRET"), "{out:?}");
        assert_eq!(banners(&out).len(), 1);
    }
}
