//! `cloakroomd`: joins a meeting from a link, end to end encrypted.
//!
//! ```text
//! cloakroomd --join 'janus+ws://host:8188/?room=1234#e2ee=…' [--video test|/dev/videoN]
//!            [--audio test|hw:N] [--codec vp8|h264]
//! ```
//!
//! Wiring (DESIGN.md): camera/mic → `cloakroom-media` encoders → seal
//! (`cloakroom-frame`, jitsi or h264 format) → WebRTC tracks ([`rtc`]) ⇄
//! Janus; remote tracks → open per participant → receive pipeline. The Janus
//! session logic is `cloakroom-connectors`' pure state machine, run by its
//! websocket task. Runs until Ctrl-C or SIGTERM, then leaves (hangup,
//! detach, destroy).
//!
//! Logs go to stderr (tracing). Every `--status-interval-ms` one JSON status
//! line goes to stdout (see [`status`]). The key is never logged: the link
//! is only ever shown through `MeetingLink`'s redacting `Display`.
#![forbid(unsafe_code)]

mod rtc;
mod status;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use cloakroom_connectors::janus::{self, Input, JanusSession, JanusSettings, Room, SessionEvent, SessionState};
use cloakroom_frame::{FrameDecryptor, FrameEncryptor, FrameMeta, KeyMaterial, MediaKind};
use cloakroom_media::ladder::VideoMode;
use cloakroom_media::layout::Canvas;
use cloakroom_media::receive::{AudioOutput, ReceivePipeline, ReceiveSettings};
use cloakroom_media::screen::DisplayOutput;
use cloakroom_media::send::{
    AudioSendSettings, AudioSender, AudioSource, TestPattern, VideoSendSettings, VideoSender, VideoSource,
};
use cloakroom_media::{Codec, EncodedFrame};
use cloakroom_meeting::{MeetingLink, RoomId};
use tokio::sync::mpsc;

use crate::rtc::{ConnectionEvent, Publisher, PublisherFeedback, RemoteFrame, RemoteKind, Subscriber, VideoCodec};
use crate::status::{ParticipantCounters, Status};

#[derive(Parser, Debug)]
#[command(name = "cloakroomd", version, about = "Join a meeting, end-to-end encrypted")]
struct Cli {
    /// The meeting link (`janus+wss://host/path?room=ID#e2ee=KEY`), or `-`
    /// to read it from stdin (keeps the key out of the process list).
    #[arg(long)]
    join: String,
    /// `test` (a moving test picture) or a V4L2 camera such as /dev/video0.
    #[arg(long, default_value = "test")]
    video: String,
    /// `test` (a tone) or an ALSA capture device such as hw:1.
    #[arg(long, default_value = "test")]
    audio: String,
    /// Video codec: vp8 (jitsi format) or h264 (h264 format).
    #[arg(long, value_enum, default_value_t = CodecArg::Vp8)]
    codec: CodecArg,
    /// Our display name in the room (the room's name).
    #[arg(long, default_value = "cloakroom")]
    name: String,
    /// Sent video size and rate, WxH@FPS.
    #[arg(long, default_value = "640x480@20")]
    mode: String,
    /// Where remote video goes: snapshots (headless), auto, kms.
    #[arg(long, value_enum, default_value_t = DisplayArg::Snapshots)]
    display: DisplayArg,
    /// Room screen size, WxH.
    #[arg(long, default_value = "640x360")]
    canvas: String,
    /// `discard` or an ALSA playback device.
    #[arg(long, default_value = "discard")]
    speaker: String,
    /// Interval of the JSON status line on stdout, ms (0: none).
    #[arg(long, default_value_t = 1000)]
    status_interval_ms: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CodecArg {
    Vp8,
    H264,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DisplayArg {
    Snapshots,
    Auto,
    Kms,
}

fn main() -> Result<()> {
    let started = Instant::now();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,webrtc=warn,rtc=warn")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(cli, started))
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

async fn run(cli: Cli, started: Instant) -> Result<()> {
    let link_text = if cli.join == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("read the link from stdin")?;
        s.trim().to_owned()
    } else {
        cli.join.clone()
    };
    let link = MeetingLink::parse(&link_text).context("the --join link")?;
    drop(link_text);
    let codec = match cli.codec {
        CodecArg::Vp8 => VideoCodec::Vp8,
        CodecArg::H264 => VideoCodec::H264,
    };
    let media_codec = match codec {
        VideoCodec::Vp8 => Codec::Vp8,
        VideoCodec::H264 => Codec::H264,
    };
    let mode = parse_mode(&cli.mode)?;
    tracing::info!(link = %link, codec = ?codec, "joining");

    // Receive side first: it owns the echo probe the microphone's canceller needs.
    let (cw, ch) = parse_size(&cli.canvas)?;
    let receive = ReceivePipeline::start(&ReceiveSettings {
        canvas: Canvas { width: cw, height: ch },
        framerate: 15,
        display: match cli.display {
            DisplayArg::Snapshots => DisplayOutput::Snapshots,
            DisplayArg::Auto => DisplayOutput::Auto,
            DisplayArg::Kms => DisplayOutput::Kms,
        },
        speaker: if cli.speaker == "discard" {
            AudioOutput::Discard
        } else {
            AudioOutput::Alsa { device: cli.speaker.clone() }
        },
        self_view: false,
    })
    .context("start the receive pipeline")?;
    let receive = Arc::new(Mutex::new(receive));

    let status = Arc::new(Status::default());
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(64);
    let (video_ssrc, audio_ssrc) = (rand_u32(), rand_u32());
    let mut video = start_video(&cli, media_codec, mode, link.key(), video_ssrc, out_tx.clone(), Arc::clone(&status))?;
    let _audio = start_audio(&cli, link.key(), audio_ssrc, out_tx, Arc::clone(&status))?;

    // Signalling.
    let settings = JanusSettings {
        room: match link.room() {
            RoomId::Number(n) => Room::Number(*n),
            RoomId::Text(s) => Room::Text(s.clone()),
        },
        display: cli.name.clone(),
        publish: true,
        subscribe: true,
    };
    let (input_tx, input_rx) = mpsc::channel::<Input>(64);
    let (event_tx, mut event_rx) = mpsc::channel::<SessionEvent>(64);
    let session = JanusSession::new(Instant::now(), settings);
    let mut transport = tokio::spawn(janus::transport::run(link.server_url(), session, input_rx, event_tx));

    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel::<ConnectionEvent>();
    let (feedback_tx, mut feedback_rx) = mpsc::unbounded_channel::<PublisherFeedback>();
    let mut publisher: Option<Arc<Publisher>> = None;
    let mut remotes: BTreeMap<u64, Remote> = BTreeMap::new();
    let mut last_keyframe = Instant::now() - Duration::from_secs(10);

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut status_tick = tokio::time::interval(Duration::from_millis(cli.status_interval_ms.max(100)));
    let final_state = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => { tracing::info!("Ctrl-C: leaving"); break leave(&input_tx, &mut transport).await; }
            _ = sigterm.recv() => { tracing::info!("SIGTERM: leaving"); break leave(&input_tx, &mut transport).await; }
            state = &mut transport => {
                break state.unwrap_or(SessionState::Failed { error: cloakroom_connectors::ConnectorError::Protocol { reason: "transport task died".into() } });
            }
            Some(event) = event_rx.recv() => {
                handle_session_event(event, codec, &link, &input_tx, &conn_tx, &feedback_tx, &mut publisher, &mut remotes, &receive, &status, video_ssrc, audio_ssrc).await;
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
            _ = status_tick.tick(), if cli.status_interval_ms > 0 => {
                update_link_stats(publisher.as_deref(), &remotes, &status).await;
                let line = status.line(&remotes.iter().map(|(f, r)| (*f, Arc::clone(&r.counters))).collect::<Vec<_>>(), &receive);
                println!("{line}");
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
    let line = status.line(&[], &receive);
    println!("{line}");
    match final_state {
        SessionState::Left => {
            tracing::info!("left the meeting");
            Ok(())
        }
        SessionState::Failed { error } => bail!("could not stay in the meeting: {error}"),
        other => bail!("stopped in state {other:?}"),
    }
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

#[allow(clippy::too_many_arguments)] // one call site: the daemon's event loop, its state passed by reference
async fn handle_session_event(
    event: SessionEvent,
    codec: VideoCodec,
    link: &MeetingLink,
    input_tx: &mpsc::Sender<Input>,
    conn_tx: &mpsc::UnboundedSender<ConnectionEvent>,
    feedback_tx: &mpsc::UnboundedSender<PublisherFeedback>,
    publisher: &mut Option<Arc<Publisher>>,
    remotes: &mut BTreeMap<u64, Remote>,
    receive: &Arc<Mutex<ReceivePipeline>>,
    status: &Arc<Status>,
    video_ssrc: u32,
    audio_ssrc: u32,
) {
    match event {
        SessionEvent::State(state) => {
            tracing::info!(?state, "janus session");
            status.set_state(&state);
        }
        SessionEvent::Joined { feed, publishers } => {
            tracing::info!(feed, publishers, "in the room");
            status.feed.store(feed, Ordering::Relaxed);
            match Publisher::new(
                codec,
                (video_ssrc, audio_ssrc),
                conn_tx.clone(),
                feedback_tx.clone(),
                Arc::clone(&status.transport),
            )
            .await
            {
                Ok(p) => match p.offer().await {
                    Ok(sdp) => {
                        *publisher = Some(Arc::new(p));
                        let _ = input_tx.send(Input::PublisherOffer { sdp }).await;
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
            if let Some(old) = remotes.remove(&feed) {
                old.task.abort();
                old.subscriber.close().await;
                remove_participant(receive, feed);
            }
            let name = display.clone().unwrap_or_default();
            tracing::info!(feed, %name, "subscribing");
            let media_codec = match codec {
                VideoCodec::Vp8 => Codec::Vp8,
                VideoCodec::H264 => Codec::H264,
            };
            let added = receive.lock().unwrap_or_else(PoisonError::into_inner).add_participant(
                &feed.to_string(),
                Some(media_codec),
                true,
            );
            if let Err(e) = added {
                tracing::error!(feed, error = %e, "receive pipeline");
                return;
            }
            let (frames_tx, frames_rx) = mpsc::channel::<RemoteFrame>(128);
            let counters = Arc::new(ParticipantCounters::new(display));
            let mut decryptor = FrameDecryptor::new();
            decryptor.set_key(0, link.key().clone());
            let task =
                tokio::spawn(open_frames(feed, frames_rx, decryptor, Arc::clone(receive), Arc::clone(&counters)));
            match Subscriber::answer(codec, feed, sdp, conn_tx.clone(), frames_tx, Arc::clone(&status.transport)).await
            {
                Ok((subscriber, answer)) => {
                    remotes.insert(feed, Remote { subscriber: Arc::new(subscriber), counters, task });
                    let _ = input_tx.send(Input::SubscriberAnswer { feed, sdp: answer }).await;
                }
                Err(e) => {
                    task.abort();
                    remove_participant(receive, feed);
                    tracing::error!(feed, error = %e, "subscriber connection");
                }
            }
        }
        SessionEvent::FeedGone { feed } => {
            tracing::info!(feed, "participant left");
            if let Some(old) = remotes.remove(&feed) {
                old.task.abort();
                old.subscriber.close().await;
                remove_participant(receive, feed);
            }
        }
        SessionEvent::ConnectionsLost => {
            tracing::warn!("session lost: dropping every peer connection");
            for (feed, old) in std::mem::take(remotes) {
                old.task.abort();
                old.subscriber.close().await;
                remove_participant(receive, feed);
            }
            if let Some(p) = publisher.take() {
                p.close().await;
            }
        }
        SessionEvent::Hangup { target: janus::Target::Publisher, reason } => {
            // Janus gave up on our publisher connection: join again from scratch.
            tracing::warn!(%reason, "janus hung up the publisher connection");
            let _ = input_tx.send(Input::Restart { reason: format!("janus hung up the publisher: {reason}") }).await;
        }
        other => tracing::debug!(?other, "janus"),
    }
}

fn remove_participant(receive: &Arc<Mutex<ReceivePipeline>>, feed: u64) {
    let _ = receive.lock().unwrap_or_else(PoisonError::into_inner).remove_participant(&feed.to_string());
}

/// Opens one participant's frames and hands them to its decoders.
async fn open_frames(
    feed: u64,
    mut frames: mpsc::Receiver<RemoteFrame>,
    mut decryptor: FrameDecryptor,
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
        match decryptor.open(kind, &frame.data) {
            Ok(plain) => {
                counters.decrypted.fetch_add(1, Ordering::Relaxed);
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
    cli: &Cli,
    codec: Codec,
    mode: VideoMode,
    key: &KeyMaterial,
    ssrc: u32,
    out: mpsc::Sender<Outgoing>,
    status: Arc<Status>,
) -> Result<VideoSender> {
    let source = if cli.video == "test" {
        VideoSource::Test { pattern: TestPattern::Ball }
    } else {
        VideoSource::Camera { device: PathBuf::from(&cli.video) }
    };
    let mut encryptor = FrameEncryptor::with_random_counters();
    encryptor.set_key(0, key.clone());
    let settings = VideoSendSettings::new(source, codec, mode);
    let frame_time = Duration::from_millis(1000 / u64::from(mode.framerate.max(1)));
    let sender = VideoSender::start(settings, move |frame: EncodedFrame| {
        let (payload, kind) = match frame.codec {
            Codec::H264 => (normalise_h264(&frame.data), MediaKind::H264),
            _ => {
                let kind = MediaKind::vp8_from_payload(&frame.data);
                (frame.data, kind)
            }
        };
        let rtp_timestamp = frame.pts.map(|p| (p.as_micros() * 9 / 100) as u32).unwrap_or(0);
        match encryptor.seal(FrameMeta { ssrc, rtp_timestamp, kind }, &payload) {
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
    .context("start the video sender")?;
    tracing::info!(encoder = ?sender.encoder(), "video");
    Ok(sender)
}

fn start_audio(
    cli: &Cli,
    key: &KeyMaterial,
    ssrc: u32,
    out: mpsc::Sender<Outgoing>,
    status: Arc<Status>,
) -> Result<AudioSender> {
    let source =
        if cli.audio == "test" { AudioSource::Test } else { AudioSource::Microphone { device: cli.audio.clone() } };
    let mut encryptor = FrameEncryptor::with_random_counters();
    encryptor.set_key(0, key.clone());
    let mut settings = AudioSendSettings::new(source);
    // The echo canceller needs a speaker to cancel; without one it only costs CPU.
    settings.echo_cancel = cli.speaker != "discard";
    AudioSender::start(settings, move |frame: EncodedFrame| {
        let rtp_timestamp = frame.pts.map(|p| (p.as_micros() * 48 / 1000) as u32).unwrap_or(0);
        match encryptor.seal(FrameMeta { ssrc, rtp_timestamp, kind: MediaKind::Opus }, &frame.data) {
            Ok(sealed) => {
                let duration = frame.duration.unwrap_or(Duration::from_millis(20));
                if out.try_send(Outgoing { video: false, sealed, duration }).is_err() {
                    status.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %e, "seal audio"),
        }
    })
    .context("start the audio sender")
}

/// Rewrites an Annex B access unit the way it travels over RTP (RFC 6184):
/// 4-byte start codes, no access unit delimiters or filler (the packetizer
/// drops those, and the h264 format's AAD must match on both sides).
fn normalise_h264(data: &[u8]) -> Vec<u8> {
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

fn parse_mode(s: &str) -> Result<VideoMode> {
    let (size, fps) = s.split_once('@').context("--mode is WxH@FPS")?;
    let (w, h) = parse_size(size)?;
    let fps: u32 = fps.parse().context("--mode frame rate")?;
    Ok(VideoMode::new(u32::try_from(w)?, u32::try_from(h)?, fps)?)
}

fn parse_size(s: &str) -> Result<(i32, i32)> {
    let (w, h) = s.split_once('x').context("a size is WxH")?;
    Ok((w.parse().context("width")?, h.parse().context("height")?))
}

fn rand_u32() -> u32 {
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
    fn parses_mode_and_size() {
        let m = parse_mode("640x480@20").expect("mode");
        assert_eq!((m.width, m.height, m.framerate), (640, 480, 20));
        assert!(parse_mode("640x480").is_err());
        assert!(parse_size("x").is_err());
    }
}
