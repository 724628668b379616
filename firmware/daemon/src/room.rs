//! The room's supervisor at work, for both ways the daemon runs: its
//! outputs carried out (start a meeting, leave it, mute, arm timers) and the
//! meeting's events fed back to it. The supervisor alone decides on retries;
//! a meeting only reports how it ended. Every step of reconnecting is in
//! the log: the failure with its whole cause, the try number and the wait
//! before the next one, each new try, and getting back in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Result;
use cloakroom_appliance::supervisor::{Input, MediaStats, Output, ParticipantVerification, RoomState};
use cloakroom_appliance::web::{Room as _, SupervisedRoom};
use cloakroom_connectors::signalling::{ConnectorState, Verification};
use cloakroom_engine::meeting::{self, Control, MeetingEvent, MeetingSettings, Stats};
use cloakroom_meeting::MeetingLink;
use tokio::sync::mpsc;

/// A meeting in progress.
struct Running {
    control: mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<()>,
}

/// Carries out the supervisor's outputs.
pub struct RoomRunner {
    room: Arc<SupervisedRoom>,
    muted: Arc<AtomicBool>,
    started: Instant,
    ended: mpsc::UnboundedSender<u64>,
    running: Option<(u64, Running)>,
    generation: u64,
}

impl RoomRunner {
    /// The runner, and where it says that a meeting (by generation) has
    /// ended: hand those to [`RoomRunner::finished`].
    pub fn new(room: Arc<SupervisedRoom>, started: Instant) -> (Self, mpsc::UnboundedReceiver<u64>) {
        let (ended, ended_rx) = mpsc::unbounded_channel();
        let runner =
            Self { room, muted: Arc::new(AtomicBool::new(false)), started, ended, running: None, generation: 0 };
        (runner, ended_rx)
    }

    /// Carries out one output. `settings` makes the meeting's settings when
    /// one starts (a bad setting fails the join with its reason).
    pub fn handle(&mut self, output: Output, settings: impl FnOnce() -> Result<MeetingSettings>) {
        match output {
            Output::StartJoin(link) => {
                let status = self.room.status();
                if status.state == RoomState::Reconnecting {
                    tracing::info!(attempt = status.attempts.saturating_add(1), "reconnecting: trying again");
                }
                self.generation += 1;
                let previous = self.running.take().map(|(_, r)| r);
                let run = start_meeting(
                    self.generation,
                    settings(),
                    link,
                    previous,
                    Arc::clone(&self.room),
                    Arc::clone(&self.muted),
                    self.ended.clone(),
                    self.started,
                );
                self.running = Some((self.generation, run));
            }
            Output::Leave => match &self.running {
                Some((_, r)) => {
                    let _ = r.control.try_send(Control::Leave);
                }
                None => self.room.handle_input(Input::Left),
            },
            Output::SetMute(m) => {
                self.muted.store(m, Ordering::Relaxed);
                tracing::info!(muted = m, "microphone");
            }
            Output::Verify { id, start, confirm } => {
                if let Some((_, r)) = &self.running {
                    tracing::info!(participant = %id, start, ?confirm, "verification step from the page");
                    let _ = r.control.try_send(Control::Verify { participant: id, start, confirm });
                }
            }
            Output::Timeout(at) => {
                let room = Arc::clone(&self.room);
                tokio::spawn(async move {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                    room.handle_timeout();
                });
            }
            other => tracing::debug!(?other, "supervisor output"),
        }
    }

    /// The meeting of `generation` has ended.
    pub fn finished(&mut self, generation: u64) {
        if self.running.as_ref().is_some_and(|(g, _)| *g == generation) {
            self.running = None;
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Leaves the meeting, if any, waiting at most `limit`.
    pub async fn shutdown(mut self, limit: std::time::Duration) {
        if let Some((_, r)) = self.running.take() {
            let _ = r.control.try_send(Control::Leave);
            if tokio::time::timeout(limit, r.task).await.is_err() {
                tracing::warn!("the meeting did not end in time");
            }
        }
    }
}

/// Starts a meeting task that reports to the room; it waits for the
/// previous meeting (if any) to have left first.
#[allow(clippy::too_many_arguments)] // one call site, RoomRunner::handle
fn start_meeting(
    generation: u64,
    settings: Result<MeetingSettings>,
    link: MeetingLink,
    previous: Option<Running>,
    room: Arc<SupervisedRoom>,
    muted: Arc<AtomicBool>,
    ended: mpsc::UnboundedSender<u64>,
    started: Instant,
) -> Running {
    let (control_tx, control_rx) = mpsc::channel(4);
    let task = tokio::spawn(async move {
        if let Some(previous) = previous {
            let _ = previous.control.try_send(Control::Leave);
            let _ = previous.task.await;
        }
        let joined = Arc::new(AtomicBool::new(false));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let forward = tokio::spawn(forward_events(events_rx, Arc::clone(&room), Arc::clone(&joined)));
        let outcome = match settings {
            Ok(settings) => {
                let signalling = meeting::signalling_for(&link, &settings.name);
                meeting::run(settings, link, signalling, started, muted, control_rx, events_tx).await
            }
            Err(e) => Err(e),
        };
        let _ = forward.await;
        let input = meeting_end(outcome, joined.load(Ordering::Relaxed));
        let what = match &input {
            Input::JoinFailed(_) => "could not join",
            Input::Disconnected(_) => "meeting lost",
            _ => "",
        };
        let cause = match &input {
            Input::JoinFailed(why) | Input::Disconnected(why) | Input::GaveUp(why) => Some(why.clone()),
            _ => None,
        };
        room.handle_input(input.clone());
        let status = room.status();
        match (&input, cause) {
            (Input::Left, _) => tracing::info!("left the meeting"),
            (Input::GaveUp(_), Some(why)) => tracing::error!(error = %why, "could not join; not retrying"),
            (_, Some(why)) if status.state == RoomState::Reconnecting => tracing::warn!(
                error = %why,
                attempt = status.attempts,
                retry_in_s = status.retry_in_ms.unwrap_or(0).div_ceil(1000),
                "{what}: reconnecting"
            ),
            // The room was leaving anyway: nothing is retried.
            (_, Some(why)) => tracing::warn!(error = %why, "{what}"),
            _ => {}
        }
        let _ = ended.send(generation);
    });
    Running { control: control_tx, task }
}

/// What the supervisor hears about a meeting that ended.
fn meeting_end(outcome: Result<ConnectorState>, joined: bool) -> Input {
    match outcome {
        Ok(ConnectorState::Left) => Input::Left,
        Ok(ConnectorState::Failed(f)) if !f.retryable => Input::GaveUp(f.error.to_string()),
        Ok(ConnectorState::Failed(f)) if joined => Input::Disconnected(f.error.to_string()),
        Ok(ConnectorState::Failed(f)) => Input::JoinFailed(f.error.to_string()),
        Ok(other) => Input::Disconnected(format!("the meeting stopped while {}", other.name())),
        // The media could not start (a missing camera, a pipeline error): the whole cause.
        Err(e) => Input::JoinFailed(format!("{e:#}")),
    }
}

/// Turns the meeting's events into supervisor inputs (rates from counters).
async fn forward_events(
    mut events: mpsc::UnboundedReceiver<MeetingEvent>,
    room: Arc<SupervisedRoom>,
    joined: Arc<AtomicBool>,
) {
    let mut last: Option<(Instant, Stats)> = None;
    while let Some(event) = events.recv().await {
        match event {
            MeetingEvent::Joined => {
                joined.store(true, Ordering::Relaxed);
                let before = room.status();
                room.handle_input(Input::Joined);
                if before.state == RoomState::Reconnecting {
                    tracing::info!(failed_tries = before.attempts, "reconnected: back in the meeting");
                }
            }
            MeetingEvent::Encryption { verification } => room.handle_input(Input::Encryption { verification }),
            MeetingEvent::ParticipantJoined { participant, display } => {
                room.handle_input(Input::ParticipantJoined { id: participant.0, display });
            }
            MeetingEvent::ParticipantLeft { participant } => {
                room.handle_input(Input::ParticipantLeft { id: participant.0 })
            }
            MeetingEvent::Verification { participant, state } => {
                room.handle_input(Input::Verification { id: participant.0, verification: verification_view(state) });
            }
            MeetingEvent::ConnectionInterrupted(why) => {
                tracing::warn!(error = %why, "media connection interrupted");
                room.handle_input(Input::ConnectionInterrupted(why));
            }
            MeetingEvent::ConnectionRestored => {
                tracing::info!("media connection back");
                room.handle_input(Input::ConnectionRestored);
            }
            MeetingEvent::ParticipantEncryption { participant, state } => {
                room.handle_input(Input::ParticipantEncryption { id: participant.0, state: state.to_owned() });
            }
            MeetingEvent::MediaRefused { participant, reason } => {
                room.handle_input(Input::MediaRefused { id: participant.0, reason: reason.to_owned() });
            }
            MeetingEvent::Stats(now_stats) => {
                let now = Instant::now();
                room.handle_input(Input::Media(media_stats(last.as_ref(), now, &now_stats)));
                last = Some((now, now_stats));
            }
        }
    }
}

/// What the page shows of a verification step.
fn verification_view(state: Verification) -> ParticipantVerification {
    let (name, emoji, decimals, reason) = match state {
        Verification::Code { emoji, decimals } => ("code", emoji, decimals.to_vec(), None),
        Verification::Verified => ("verified", vec![], vec![], None),
        Verification::Mismatch => ("mismatch", vec![], vec![], None),
        Verification::Failed { reason } => ("failed", vec![], vec![], Some(reason)),
        _ => ("failed", vec![], vec![], Some("an unknown verification step".to_owned())),
    };
    ParticipantVerification { state: name, emoji, decimals, reason }
}

/// The page's numbers: bitrates over the last interval, loss so far.
fn media_stats(last: Option<&(Instant, Stats)>, now: Instant, s: &Stats) -> MediaStats {
    let kbps = |then: u64, now_bytes: u64, ms: u128| -> u32 {
        if ms == 0 {
            return 0;
        }
        u32::try_from(u128::from(now_bytes.saturating_sub(then)) * 8 / ms).unwrap_or(u32::MAX)
    };
    let (send, receive) = match last {
        Some((t, prev)) => {
            let ms = now.saturating_duration_since(*t).as_millis();
            (kbps(prev.bytes_sent, s.bytes_sent, ms), kbps(prev.bytes_received, s.bytes_received, ms))
        }
        None => (0, 0),
    };
    let expected = s.packets_received + s.packets_lost;
    let loss = if expected == 0 { 0.0 } else { (s.packets_lost as f64 * 100.0 / expected as f64) as f32 };
    MediaStats {
        send_bitrate_kbps: send,
        receive_bitrate_kbps: receive,
        packet_loss_percent: loss,
        frames_sent: s.video_frames_sent,
        frames_received: s.frames_decoded,
        decrypt_failures: s.decrypt_failures,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cloakroom_connectors::ConnectorError;
    use cloakroom_connectors::signalling::Failure;

    use super::*;

    #[test]
    fn bitrates_come_from_the_byte_counters_over_the_interval() {
        let t0 = Instant::now();
        let first = Stats { bytes_sent: 1000, bytes_received: 500, ..Stats::default() };
        assert_eq!(media_stats(None, t0, &first).send_bitrate_kbps, 0);
        let later = Stats {
            bytes_sent: 1000 + 125_000,
            bytes_received: 500 + 250_000,
            packets_received: 990,
            packets_lost: 10,
            video_frames_sent: 20,
            frames_decoded: 18,
            decrypt_failures: 3,
        };
        let m = media_stats(Some(&(t0, first)), t0 + Duration::from_secs(1), &later);
        assert_eq!(m.send_bitrate_kbps, 1000);
        assert_eq!(m.receive_bitrate_kbps, 2000);
        assert!((m.packet_loss_percent - 1.0).abs() < 1e-6);
        assert_eq!((m.frames_sent, m.frames_received, m.decrypt_failures), (20, 18, 3));
    }

    #[test]
    fn how_a_meeting_ended_decides_whether_the_supervisor_retries() {
        let failed = |error, retryable| Ok(ConnectorState::Failed(Failure { error, retryable }));
        let gone = || ConnectorError::ServerGone { reason: "reset".into() };
        assert!(matches!(meeting_end(Ok(ConnectorState::Left), true), Input::Left));
        assert!(matches!(meeting_end(failed(gone(), true), true), Input::Disconnected(r) if r == "server gone: reset"));
        assert!(matches!(meeting_end(failed(gone(), true), false), Input::JoinFailed(_)));
        let no_room = ConnectorError::NoSuchRoom { room: "9".into() };
        assert!(matches!(meeting_end(failed(no_room, false), false), Input::GaveUp(r) if r == "no such room: 9"));
        let err = anyhow::anyhow!("no V4L2 camera").context("start the video sender (auto)");
        assert!(
            matches!(meeting_end(Err(err), false), Input::JoinFailed(r) if r == "start the video sender (auto): no V4L2 camera"),
            "the whole cause"
        );
    }
}
