//! The meeting's counters and its machine-readable status line: one JSON
//! object per line on stdout, for tests, the supervisor and metrics.
//!
//! ```json
//! {"event":"status","state":"in_room",
//!  "sent":{"video_sealed":0,"video_frames":0,"audio_frames":0,"bytes":0,"dropped":0,
//!          "keyframe_requests":0,"bitrate_kbps":0,"send_errors":0,"first_video_ms":0,"rtt_ms":0.0},
//!  "received":{"bytes":0,"video_frames":0,"audio_frames":0,"decrypted":0,"decrypt_failures":0,
//!              "decoded_video":0,"decoded_audio":0},
//!  "participants":[{"id":"2","display":"…","video_frames":0,"audio_frames":0,"decrypted":0,
//!                   "decrypt_failures":0,"decoded_video":0,"decoded_audio":0,"packets_received":0,
//!                   "packets_lost":0,"rtt_ms":0.0}]}
//! ```
//!
//! `sent.rtt_ms` and `participants[].rtt_ms` are the ICE round-trip times of
//! the sending and receiving connections (0: not measured yet); loss is
//! counted on the receiving connections' inbound RTP streams. `state` is
//! `connecting`, `joining`, `in_room`, `leaving`, `left` or
//! `failed: <the whole cause>`.

use std::fmt::Display;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cloakroom_connectors::signalling::ConnectorState;
use cloakroom_media::receive::ReceivePipeline;
use serde_json::json;

use crate::peers::TransportCounters;

/// Writes one line to stdout. When nobody reads stdout any more (the pipe's
/// other end closed) the line is lost and nothing else: `println!` would
/// panic the task that printed it, which for the status line is the meeting.
pub fn emit(line: impl Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

#[derive(Debug, Default)]
pub struct Status {
    state: Mutex<String>,
    pub video_sealed: AtomicU64,
    pub video_sent: AtomicU64,
    pub audio_sent: AtomicU64,
    pub dropped: AtomicU64,
    pub keyframe_requests: AtomicU64,
    pub bitrate_kbps: AtomicU64,
    /// Milliseconds from process start to the first video frame written to the publisher connection (0: none yet).
    pub first_video_ms: AtomicU64,
    /// Publisher connection RTT in µs (0: unknown).
    pub rtt_us: AtomicU64,
    pub transport: Arc<TransportCounters>,
}

/// One remote participant's counters.
#[derive(Debug, Default)]
pub struct ParticipantCounters {
    /// The participant's id (the connector's) and display name.
    pub id: String,
    pub display: Option<String>,
    pub video_frames: AtomicU64,
    pub audio_frames: AtomicU64,
    pub decrypted: AtomicU64,
    pub decrypt_failures: AtomicU64,
    pub packets_received: AtomicU64,
    pub packets_lost: AtomicU64,
    /// Subscriber connection RTT in µs (0: unknown).
    pub rtt_us: AtomicU64,
}

impl ParticipantCounters {
    pub fn new(id: String, display: Option<String>) -> Self {
        Self { id, display, ..Default::default() }
    }
}

impl Status {
    pub fn set_state(&self, state: &ConnectorState) {
        let text = match state {
            // The name the status line has always had for being in the room.
            ConnectorState::InMeeting => "in_room".to_owned(),
            ConnectorState::Failed(f) => format!("failed: {}", f.error),
            other => other.name().to_owned(),
        };
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = text;
    }

    /// The media connection lost its path (`Some(cause)`) or is back
    /// (`None`): the line says `reconnecting: <cause>` meanwhile.
    pub fn set_interrupted(&self, cause: Option<&str>) {
        let text = match cause {
            Some(cause) => format!("reconnecting: {cause}"),
            None => "in_room".to_owned(),
        };
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = text;
    }

    pub fn line(&self, participants: &[Arc<ParticipantCounters>], receive: &Mutex<ReceivePipeline>) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let receive = receive.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = [0u64; 6];
        let list: Vec<_> = participants
            .iter()
            .map(|c| {
                let dv = receive.decoded_video_frames(&c.id).unwrap_or(0);
                let da = receive.decoded_audio_frames(&c.id).unwrap_or(0);
                let row =
                    [get(&c.video_frames), get(&c.audio_frames), get(&c.decrypted), get(&c.decrypt_failures), dv, da];
                for (t, v) in total.iter_mut().zip(row) {
                    *t += v;
                }
                json!({
                    "id": c.id, "display": c.display, "video_frames": row[0], "audio_frames": row[1],
                    "decrypted": row[2], "decrypt_failures": row[3], "decoded_video": row[4], "decoded_audio": row[5],
                    "packets_received": get(&c.packets_received), "packets_lost": get(&c.packets_lost),
                    "rtt_ms": get(&c.rtt_us) as f64 / 1000.0,
                })
            })
            .collect();
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner).clone();
        json!({
            "event": "status",
            "state": state,
            "sent": {
                "video_sealed": get(&self.video_sealed), "video_frames": get(&self.video_sent),
                "audio_frames": get(&self.audio_sent), "bytes": get(&self.transport.bytes_sent),
                "dropped": get(&self.dropped), "keyframe_requests": get(&self.keyframe_requests),
                "bitrate_kbps": get(&self.bitrate_kbps), "send_errors": get(&self.transport.send_errors),
                "first_video_ms": get(&self.first_video_ms), "rtt_ms": get(&self.rtt_us) as f64 / 1000.0,
            },
            "received": {
                "bytes": get(&self.transport.bytes_received), "video_frames": total[0], "audio_frames": total[1],
                "decrypted": total[2], "decrypt_failures": total[3], "decoded_video": total[4], "decoded_audio": total[5],
            },
            "participants": list,
        })
        .to_string()
    }
}
