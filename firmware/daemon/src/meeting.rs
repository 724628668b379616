//! One meeting, from join to leave: media pipelines, frame encryption, the
//! Janus session and the peer connections. Used by both modes of the daemon
//! (`--join` on the command line, and the appliance's supervisor).
//!
//! [`run`] returns when the meeting is over: after [`Control::Leave`] (the
//! session leaves cleanly: hangup, detach, destroy) or when the session
//! failed for good. What happens on the way goes out as [`MeetingEvent`]s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cloakroom_connectors::janus::{self, Input, JanusSession, JanusSettings, Room, SessionEvent, SessionState};
use cloakroom_frame::{FrameDecryptor, FrameEncryptor, FrameMeta, KeyMaterial, MediaKind};
use cloakroom_media::ladder::VideoMode;
use cloakroom_media::receive::{ReceivePipeline, ReceiveSettings};
use cloakroom_media::send::{
    AudioSendSettings, AudioSender, AudioSource, TestPattern, VideoSendSettings, VideoSender, VideoSource,
};
use cloakroom_media::{Codec, EncodedFrame};
use cloakroom_meeting::{MeetingLink, RoomId};
use tokio::sync::mpsc;

use crate::rtc::{ConnectionEvent, Publisher, PublisherFeedback, RemoteFrame, RemoteKind, Subscriber, VideoCodec};
use crate::status::{ParticipantCounters, Status};

/// An Opus packet of 20 ms of silence (TOC: CELT fullband 20 ms, mono, one
/// frame), sent instead of the microphone while muted: the stream stays up,
/// nothing from the room's microphone is sealed or sent.
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

/// How the room takes part in a meeting.
#[derive(Clone, Debug)]
pub struct MeetingSettings {
    pub codec: VideoCodec,
    /// `test` or a V4L2 device path.
    pub video: String,
    /// `test` or an ALSA capture device.
    pub audio: String,
    pub mode: VideoMode,
    /// Our display name in the room.
    pub name: String,
    pub receive: ReceiveSettings,
    /// Print the JSON status line on stdout this often.
    pub status_line: Option<Duration>,
    /// End the meeting (as `Failed`) when the session would back off and
    /// retry, so that the caller's supervisor owns the retries and shows
    /// them; otherwise the session retries by itself.
    pub give_up_on_retry: bool,
}

/// Orders for a running meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Leave,
}

/// What happened in the meeting.
#[derive(Debug, Clone, PartialEq)]
pub enum MeetingEvent {
    /// In the room: Janus accepted us as a publisher.
    Joined,
    /// The session is retrying after an error (server gone, timeout).
    Retrying(String),
    ParticipantJoined {
        feed: u64,
        display: String,
    },
    ParticipantLeft {
        feed: u64,
    },
    /// Numbers for the page and `/metrics`, about once a second.
    Stats(Stats),
}

/// Media numbers of the meeting so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub video_frames_sent: u64,
    pub frames_decoded: u64,
    pub decrypt_failures: u64,
    pub packets_received: u64,
    pub packets_lost: u64,
}

/// Outgoing frames from the GStreamer threads, already sealed.
struct Outgoing {
    video: bool,
    sealed: Vec<u8>,
    duration: Duration,
}

/// A remote publisher we receive.
struct Remote {
    subscriber: Arc<Subscriber>,
    counters: Arc<ParticipantCounters>,
    task: tokio::task::JoinHandle<()>,
}

/// The meeting's shared pieces, for the session-event handler.
struct Ctx<'a> {
    settings: &'a MeetingSettings,
    link: &'a MeetingLink,
    input_tx: mpsc::Sender<Input>,
    conn_tx: mpsc::UnboundedSender<ConnectionEvent>,
    feedback_tx: mpsc::UnboundedSender<PublisherFeedback>,
    receive: Arc<Mutex<ReceivePipeline>>,
    status: Arc<Status>,
    events: mpsc::UnboundedSender<MeetingEvent>,
    ssrcs: (u32, u32),
}

/// Joins the meeting and stays until told to leave or the session fails.
/// `started` dates the first-frame time in the status line; `muted` is read
/// for every microphone frame. Returns the session's last state (`Left`
/// after a clean leave, `Failed` otherwise); an error means the media could
/// not start.
pub async fn run(
    settings: MeetingSettings,
    link: MeetingLink,
    started: Instant,
    muted: Arc<AtomicBool>,
    mut control: mpsc::Receiver<Control>,
    events: mpsc::UnboundedSender<MeetingEvent>,
) -> Result<SessionState> {
    let media_codec = match settings.codec {
        VideoCodec::Vp8 => Codec::Vp8,
        VideoCodec::H264 => Codec::H264,
    };
    tracing::info!(link = %link, codec = ?settings.codec, encrypted = link.key().is_some(), "joining");
    if link.key().is_none() {
        tracing::warn!("this meeting is NOT end-to-end encrypted: the link has no key and the room allows that");
    }

    // Receive side first: it owns the echo probe the microphone's canceller needs.
    // The room screen's badge says whether this meeting is encrypted.
    let receive_settings = ReceiveSettings { encrypted: link.key().is_some(), ..settings.receive.clone() };
    let receive = ReceivePipeline::start(&receive_settings).context("start the receive pipeline")?;
    let receive = Arc::new(Mutex::new(receive));

    let status = Arc::new(Status::default());
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(64);
    let ssrcs = (rand_u32(), rand_u32());
    let mut video = start_video(&settings, media_codec, link.key(), ssrcs.0, out_tx.clone(), Arc::clone(&status))?;
    let _audio = start_audio(&settings, link.key(), ssrcs.1, out_tx, Arc::clone(&status), muted)?;

    // Signalling.
    let janus_settings = JanusSettings {
        room: match link.room() {
            RoomId::Number(n) => Room::Number(*n),
            RoomId::Text(s) => Room::Text(s.clone()),
        },
        display: settings.name.clone(),
        publish: true,
        subscribe: true,
    };
    let (input_tx, input_rx) = mpsc::channel::<Input>(64);
    let (event_tx, mut event_rx) = mpsc::channel::<SessionEvent>(64);
    let session = JanusSession::new(Instant::now(), janus_settings);
    let mut transport = tokio::spawn(janus::transport::run(link.server_url(), session, input_rx, event_tx));

    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel::<ConnectionEvent>();
    let (feedback_tx, mut feedback_rx) = mpsc::unbounded_channel::<PublisherFeedback>();
    let ctx = Ctx {
        settings: &settings,
        link: &link,
        input_tx: input_tx.clone(),
        conn_tx,
        feedback_tx,
        receive: Arc::clone(&receive),
        status: Arc::clone(&status),
        events: events.clone(),
        ssrcs,
    };
    let mut publisher: Option<Arc<Publisher>> = None;
    let mut remotes: BTreeMap<u64, Remote> = BTreeMap::new();
    let mut last_keyframe = Instant::now() - Duration::from_secs(10);

    let mut tick =
        tokio::time::interval(settings.status_line.unwrap_or(Duration::from_secs(1)).max(Duration::from_millis(100)));
    let final_state = loop {
        tokio::select! {
            order = control.recv() => {
                // A closed channel means nobody wants the meeting any more either.
                let _ = order;
                break leave(&input_tx, &mut transport).await;
            }
            state = &mut transport => {
                break state.unwrap_or(SessionState::Failed { error: cloakroom_connectors::ConnectorError::Protocol { reason: "transport task died".into() } });
            }
            Some(event) = event_rx.recv() => {
                if let Some(error) = handle_session_event(event, &ctx, &mut publisher, &mut remotes).await {
                    transport.abort();
                    break SessionState::Failed { error };
                }
            }
            Some(out) = out_rx.recv() => {
                if let Some(p) = &publisher {
                    let result = if out.video { p.write_video(out.sealed, out.duration).await } else { p.write_audio(out.sealed, out.duration).await };
                    match result {
                        Ok(true) if out.video => {
                            if status.video_sent.fetch_add(1, Ordering::Relaxed) == 0 {
                                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                                status.first_video_ms.store(ms, Ordering::Relaxed);
                                tracing::info!(ms, "first encrypted video frame sent to the SFU");
                            }
                        }
                        Ok(true) => { status.audio_sent.fetch_add(1, Ordering::Relaxed); }
                        Ok(false) => {}
                        Err(e) => tracing::debug!(error = %e, "write sample"),
                    }
                }
            }
            Some(fb) = feedback_rx.recv() => match fb {
                PublisherFeedback::KeyframeRequest => {
                    status.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                    // Janus relays every subscriber's PLI; one key frame per 500 ms answers them all.
                    if last_keyframe.elapsed() > Duration::from_millis(500) {
                        last_keyframe = Instant::now();
                        if let Err(e) = video.force_keyframe() { tracing::warn!(error = %e, "force key frame"); }
                    }
                }
                PublisherFeedback::Bitrate(bps) => {
                    let kbps = u32::try_from(bps / 1000).unwrap_or(u32::MAX).clamp(100, 4000);
                    let current = video.bitrate_kbps();
                    if kbps.abs_diff(current) * 10 > current {
                        tracing::info!(kbps, "bitrate from the SFU's estimate");
                        if let Err(e) = video.set_bitrate(kbps) { tracing::warn!(error = %e, "set bitrate"); }
                    }
                    status.bitrate_kbps.store(u64::from(video.bitrate_kbps()), Ordering::Relaxed);
                }
            },
            Some(ConnectionEvent::State { feed, state }) = conn_rx.recv() => {
                tracing::info!(?feed, %state, "peer connection");
                // A connection that failed (ICE or DTLS) is rebuilt through the session.
                if state == webrtc::peer_connection::RTCPeerConnectionState::Failed {
                    let input = match feed {
                        None => Input::Restart { reason: "publisher connection failed".into() },
                        Some(feed) => Input::Resubscribe { feed },
                    };
                    let _ = input_tx.send(input).await;
                }
            }
            _ = tick.tick() => {
                update_link_stats(publisher.as_deref(), &remotes, &status).await;
                let list = remotes.iter().map(|(f, r)| (*f, Arc::clone(&r.counters))).collect::<Vec<_>>();
                let _ = events.send(MeetingEvent::Stats(stats(&status, &list, &receive)));
                if settings.status_line.is_some() {
                    crate::status::emit(status.line(&list, &receive));
                }
            }
        }
    };

    for (_, remote) in std::mem::take(&mut remotes) {
        remote.task.abort();
        remote.subscriber.close().await;
    }
    if let Some(p) = publisher.take() {
        p.close().await;
    }
    // The transport task may end before its last state event is drained.
    status.set_state(&final_state);
    if settings.status_line.is_some() {
        crate::status::emit(status.line(&[], &receive));
    }
    Ok(final_state)
}

fn stats(status: &Status, remotes: &[(u64, Arc<ParticipantCounters>)], receive: &Mutex<ReceivePipeline>) -> Stats {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let receive = receive.lock().unwrap_or_else(PoisonError::into_inner);
    let mut s = Stats {
        bytes_sent: get(&status.transport.bytes_sent),
        bytes_received: get(&status.transport.bytes_received),
        video_frames_sent: get(&status.video_sent),
        ..Stats::default()
    };
    for (feed, c) in remotes {
        s.frames_decoded += receive.decoded_video_frames(&feed.to_string()).unwrap_or(0);
        s.decrypt_failures += get(&c.decrypt_failures);
        s.packets_received += get(&c.packets_received);
        s.packets_lost += get(&c.packets_lost);
    }
    s
}

/// Copies loss and RTT of every peer connection into the status counters.
async fn update_link_stats(publisher: Option<&Publisher>, remotes: &BTreeMap<u64, Remote>, status: &Status) {
    let micros = |ms: Option<f64>| ms.map(|m| (m * 1000.0) as u64).unwrap_or(0);
    if let Some(p) = publisher {
        status.rtt_us.store(micros(p.link_stats().await.rtt_ms), Ordering::Relaxed);
    }
    for remote in remotes.values() {
        let stats = remote.subscriber.link_stats().await;
        remote.counters.packets_received.store(stats.packets_received, Ordering::Relaxed);
        remote.counters.packets_lost.store(stats.packets_lost, Ordering::Relaxed);
        remote.counters.rtt_us.store(micros(stats.rtt_ms), Ordering::Relaxed);
    }
}

async fn leave(input_tx: &mpsc::Sender<Input>, transport: &mut tokio::task::JoinHandle<SessionState>) -> SessionState {
    let _ = input_tx.send(Input::Leave).await;
    match tokio::time::timeout(Duration::from_secs(5), transport).await {
        Ok(Ok(state)) => state,
        _ => SessionState::Left,
    }
}

async fn drop_remote(ctx: &Ctx<'_>, remotes: &mut BTreeMap<u64, Remote>, feed: u64) {
    if let Some(old) = remotes.remove(&feed) {
        old.task.abort();
        old.subscriber.close().await;
        let _ = ctx.receive.lock().unwrap_or_else(PoisonError::into_inner).remove_participant(&feed.to_string());
        let _ = ctx.events.send(MeetingEvent::ParticipantLeft { feed });
    }
}

/// Handles one event of the Janus session; `Some(error)` ends the meeting
/// (a retry the caller wants to own, see [`MeetingSettings::give_up_on_retry`]).
async fn handle_session_event(
    event: SessionEvent,
    ctx: &Ctx<'_>,
    publisher: &mut Option<Arc<Publisher>>,
    remotes: &mut BTreeMap<u64, Remote>,
) -> Option<cloakroom_connectors::ConnectorError> {
    match event {
        SessionEvent::State(state) => {
            tracing::info!(?state, "janus session");
            ctx.status.set_state(&state);
            if let SessionState::Backoff { error, .. } = state {
                let _ = ctx.events.send(MeetingEvent::Retrying(error.to_string()));
                if ctx.settings.give_up_on_retry {
                    return Some(error);
                }
            }
        }
        SessionEvent::Joined { feed, publishers } => {
            tracing::info!(feed, publishers, "in the room");
            ctx.status.feed.store(feed, Ordering::Relaxed);
            let _ = ctx.events.send(MeetingEvent::Joined);
            match Publisher::new(
                ctx.settings.codec,
                ctx.ssrcs,
                ctx.conn_tx.clone(),
                ctx.feedback_tx.clone(),
                Arc::clone(&ctx.status.transport),
            )
            .await
            {
                Ok(p) => match p.offer().await {
                    Ok(sdp) => {
                        *publisher = Some(Arc::new(p));
                        let _ = ctx.input_tx.send(Input::PublisherOffer { sdp }).await;
                    }
                    Err(e) => tracing::error!(error = %e, "publisher offer"),
                },
                Err(e) => tracing::error!(error = %e, "publisher connection"),
            }
        }
        SessionEvent::PublisherAnswer { sdp } => {
            if let Some(p) = publisher {
                match p.answer(sdp).await {
                    Ok(()) => tracing::info!("publishing"),
                    Err(e) => tracing::error!(error = %e, "publisher answer"),
                }
            }
        }
        SessionEvent::SubscriberOffer { feed, display, sdp } => {
            drop_remote(ctx, remotes, feed).await;
            let name = display.clone().unwrap_or_default();
            tracing::info!(feed, %name, "subscribing");
            let media_codec = match ctx.settings.codec {
                VideoCodec::Vp8 => Codec::Vp8,
                VideoCodec::H264 => Codec::H264,
            };
            let added = ctx.receive.lock().unwrap_or_else(PoisonError::into_inner).add_participant(
                &feed.to_string(),
                Some(media_codec),
                true,
            );
            if let Err(e) = added {
                tracing::error!(feed, error = %e, "receive pipeline");
                return None;
            }
            let (frames_tx, frames_rx) = mpsc::channel::<RemoteFrame>(128);
            let counters = Arc::new(ParticipantCounters::new(display));
            let decryptor = ctx.link.key().map(|key| {
                let mut d = FrameDecryptor::new();
                d.set_key(0, key.clone());
                d
            });
            let task =
                tokio::spawn(open_frames(feed, frames_rx, decryptor, Arc::clone(&ctx.receive), Arc::clone(&counters)));
            match Subscriber::answer(
                ctx.settings.codec,
                feed,
                sdp,
                ctx.conn_tx.clone(),
                frames_tx,
                Arc::clone(&ctx.status.transport),
            )
            .await
            {
                Ok((subscriber, answer)) => {
                    remotes.insert(feed, Remote { subscriber: Arc::new(subscriber), counters, task });
                    let _ = ctx.events.send(MeetingEvent::ParticipantJoined { feed, display: name });
                    let _ = ctx.input_tx.send(Input::SubscriberAnswer { feed, sdp: answer }).await;
                }
                Err(e) => {
                    task.abort();
                    let _ = ctx
                        .receive
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove_participant(&feed.to_string());
                    tracing::error!(feed, error = %e, "subscriber connection");
                }
            }
        }
        SessionEvent::FeedGone { feed } => {
            tracing::info!(feed, "participant left");
            drop_remote(ctx, remotes, feed).await;
        }
        SessionEvent::ConnectionsLost => {
            tracing::warn!("session lost: dropping every peer connection");
            let feeds: Vec<u64> = remotes.keys().copied().collect();
            for feed in feeds {
                drop_remote(ctx, remotes, feed).await;
            }
            if let Some(p) = publisher.take() {
                p.close().await;
            }
        }
        SessionEvent::Hangup { target: janus::Target::Publisher, reason } => {
            // Janus gave up on our publisher connection: join again from scratch.
            tracing::warn!(%reason, "janus hung up the publisher connection");
            let _ =
                ctx.input_tx.send(Input::Restart { reason: format!("janus hung up the publisher: {reason}") }).await;
        }
        other => tracing::debug!(?other, "janus"),
    }
    None
}

/// Opens one participant's frames and hands them to its decoders (as they
/// come, in a meeting without a key).
async fn open_frames(
    feed: u64,
    mut frames: mpsc::Receiver<RemoteFrame>,
    mut decryptor: Option<FrameDecryptor>,
    receive: Arc<Mutex<ReceivePipeline>>,
    counters: Arc<ParticipantCounters>,
) {
    let id = feed.to_string();
    while let Some(frame) = frames.recv().await {
        let (kind, codec) = match frame.kind {
            RemoteKind::Opus => (MediaKind::Opus, Codec::Opus),
            RemoteKind::Vp8 => (MediaKind::vp8_from_payload(&frame.data), Codec::Vp8),
            RemoteKind::H264 => (MediaKind::H264, Codec::H264),
        };
        if codec == Codec::Opus {
            counters.audio_frames.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.video_frames.fetch_add(1, Ordering::Relaxed);
        }
        let opened = match &mut decryptor {
            Some(d) => d.open(kind, &frame.data),
            None => Ok(frame.data.to_vec()),
        };
        match opened {
            Ok(plain) => {
                if decryptor.is_some() {
                    counters.decrypted.fetch_add(1, Ordering::Relaxed);
                }
                let keyframe = match kind {
                    MediaKind::Vp8Key | MediaKind::Opus => true,
                    MediaKind::H264 => {
                        cloakroom_media::annexb::AccessUnit::parse(&plain).map(|au| au.is_idr()).unwrap_or(false)
                    }
                    _ => false,
                };
                let encoded = EncodedFrame { data: plain, pts: None, duration: Some(frame.duration), keyframe, codec };
                let pushed = receive.lock().unwrap_or_else(PoisonError::into_inner).push(&id, encoded);
                if let Err(e) = pushed {
                    tracing::debug!(feed, error = %e, "push");
                }
            }
            Err(e) => {
                let n = counters.decrypt_failures.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(feed, error = %e, failures = n + 1, "frame does not open (wrong key?)");
                }
            }
        }
    }
}

fn start_video(
    settings: &MeetingSettings,
    codec: Codec,
    key: Option<&KeyMaterial>,
    ssrc: u32,
    out: mpsc::Sender<Outgoing>,
    status: Arc<Status>,
) -> Result<VideoSender> {
    let source = if settings.video == "test" {
        VideoSource::Test { pattern: TestPattern::Ball }
    } else {
        VideoSource::Camera { device: PathBuf::from(&settings.video) }
    };
    let mode = settings.mode;
    let mut encryptor = key.map(encryptor_for);
    let send_settings = VideoSendSettings::new(source, codec, mode);
    let frame_time = Duration::from_millis(1000 / u64::from(mode.framerate.max(1)));
    let sender = VideoSender::start(send_settings, move |frame: EncodedFrame| {
        let (payload, kind) = match frame.codec {
            Codec::H264 => (normalise_h264(&frame.data), MediaKind::H264),
            _ => {
                let kind = MediaKind::vp8_from_payload(&frame.data);
                (frame.data, kind)
            }
        };
        let rtp_timestamp = frame.pts.map(|p| (p.as_micros() * 9 / 100) as u32).unwrap_or(0);
        let sealed = match &mut encryptor {
            Some(e) => e.seal(FrameMeta { ssrc, rtp_timestamp, kind }, &payload),
            None => Ok(payload),
        };
        match sealed {
            Ok(sealed) => {
                status.video_sealed.fetch_add(1, Ordering::Relaxed);
                let duration = frame.duration.unwrap_or(frame_time);
                if out.try_send(Outgoing { video: true, sealed, duration }).is_err() {
                    status.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %e, "seal video"),
        }
    })
    .with_context(|| format!("start the video sender ({})", settings.video))?;
    tracing::info!(encoder = ?sender.encoder(), "video");
    Ok(sender)
}

fn start_audio(
    settings: &MeetingSettings,
    key: Option<&KeyMaterial>,
    ssrc: u32,
    out: mpsc::Sender<Outgoing>,
    status: Arc<Status>,
    muted: Arc<AtomicBool>,
) -> Result<AudioSender> {
    let source = if settings.audio == "test" {
        AudioSource::Test
    } else {
        AudioSource::Microphone { device: settings.audio.clone() }
    };
    let mut encryptor = key.map(encryptor_for);
    let mut send_settings = AudioSendSettings::new(source);
    // The echo canceller needs a speaker to cancel; without one it only costs CPU.
    send_settings.echo_cancel = !matches!(settings.receive.speaker, cloakroom_media::receive::AudioOutput::Discard);
    AudioSender::start(send_settings, move |frame: EncodedFrame| {
        let rtp_timestamp = frame.pts.map(|p| (p.as_micros() * 48 / 1000) as u32).unwrap_or(0);
        // Muted: the microphone's packet is dropped here, before sealing; silence goes instead.
        let payload: &[u8] = if muted.load(Ordering::Relaxed) { &OPUS_SILENCE } else { &frame.data };
        let sealed = match &mut encryptor {
            Some(e) => e.seal(FrameMeta { ssrc, rtp_timestamp, kind: MediaKind::Opus }, payload),
            None => Ok(payload.to_vec()),
        };
        match sealed {
            Ok(sealed) => {
                let duration = frame.duration.unwrap_or(Duration::from_millis(20));
                if out.try_send(Outgoing { video: false, sealed, duration }).is_err() {
                    status.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %e, "seal audio"),
        }
    })
    .with_context(|| format!("start the audio sender ({})", settings.audio))
}

fn encryptor_for(key: &KeyMaterial) -> FrameEncryptor {
    let mut e = FrameEncryptor::with_random_counters();
    e.set_key(0, key.clone());
    e
}

/// Rewrites an Annex B access unit the way it travels over RTP (RFC 6184):
/// 4-byte start codes, no access unit delimiters or filler (the packetizer
/// drops those, and the h264 format's AAD must match on both sides).
pub fn normalise_h264(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for nal in cloakroom_frame::h264::nal_units(data) {
        if matches!(nal.nal_type, 9 | 12) {
            continue;
        }
        let end = (nal.offset + nal.len).min(data.len());
        let body = &data[nal.offset..end];
        let trimmed =
            &body[..body.len() - cloakroom_frame::h264::trailing_zeros(body).min(body.len().saturating_sub(1))];
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(trimmed);
    }
    out
}

fn rand_u32() -> u32 {
    use std::io::Read as _;
    let mut b = [0u8; 4];
    // An SSRC only needs to differ from the room's other streams; without OS
    // randomness the time's low bits still do.
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_err() {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
    }
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_h264_uses_four_byte_start_codes_and_drops_aud() {
        let au = [0, 0, 1, 9, 0xf0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 7, 8, 9];
        assert_eq!(normalise_h264(&au), vec![0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 7, 8, 9]);
    }

    #[test]
    fn silence_packet_is_one_celt_fullband_20ms_mono_frame() {
        // RFC 6716 §3.1: config 31 (CELT-only FB 20 ms), s = 0 (mono), c = 0 (one frame).
        let toc = OPUS_SILENCE[0];
        assert_eq!(toc >> 3, 31);
        assert_eq!(toc & 0b100, 0);
        assert_eq!(toc & 0b11, 0);
    }
}
