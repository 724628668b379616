//! One meeting with any connector, from join to leave: media pipelines,
//! frame encryption, the connector's signalling and the peer connections.
//!
//! [`signalling_for`] picks the connector for a link and starts its
//! transport driver; [`run`] carries out the connector's events (open and
//! close peers, apply descriptions, participants and their keys) until the
//! meeting is over: after [`Control::Leave`] (the connector leaves cleanly)
//! or when the connector fails. A failure is reported, not retried: the
//! caller's supervisor owns retries. What happens on the way goes out as
//! [`MeetingEvent`]s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cloakroom_connectors::janus::{JanusSession, JanusSettings, Room};
use cloakroom_connectors::jitsi::{JitsiSession, JitsiSettings, config};
use cloakroom_connectors::signalling::{
    ConnectorState, Direction, Event, Failure, Input, ParticipantId, PeerId, Verification,
};
use cloakroom_connectors::{ConnectorError, transport};
use cloakroom_frame::{FrameDecryptor, FrameEncryptor, FrameMeta, KeyMaterial, MediaKind};
use cloakroom_media::labels::EncryptionWatch;
use cloakroom_media::ladder::VideoMode;
use cloakroom_media::receive::{ReceivePipeline, ReceiveSettings};
use cloakroom_media::send::{
    AudioSendSettings, AudioSender, AudioSource, TestPattern, VideoSendSettings, VideoSender, VideoSource,
};
use cloakroom_media::{Codec, EncodedFrame};
use cloakroom_meeting::{MeetingLink, RoomId, Target};
use tokio::sync::mpsc;
use webrtc::peer_connection::RTCPeerConnectionState;

use crate::annexb;
use crate::keys::KeyProvider;
use crate::peers::{ConnectionEvent, Publisher, PublisherFeedback, RemoteFrame, Subscriber};
use crate::status::{ParticipantCounters, Status};

/// An Opus packet of 20 ms of silence (TOC: CELT fullband 20 ms, mono, one
/// frame), sent instead of the microphone while muted: the stream stays up,
/// nothing from the room's microphone is sealed or sent.
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

/// How long leaving may take before the connector is dropped anyway.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

/// How the room takes part in a meeting.
#[derive(Clone, Debug)]
pub struct MeetingSettings {
    /// The video codec we send (and expect): VP8 or H.264.
    pub codec: Codec,
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
}

/// Orders for a running meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Leave,
    /// Verify who `participant` is (Jitsi's SAS): `start` a verification,
    /// or `confirm` whether the codes the people compared matched.
    Verify {
        participant: String,
        start: bool,
        confirm: Option<bool>,
    },
}

/// What happened in the meeting.
#[derive(Debug, Clone, PartialEq)]
pub enum MeetingEvent {
    /// In the room.
    Joined,
    /// Whether our media is sealed, and the key's check digits.
    Encryption {
        verification: Option<String>,
    },
    ParticipantJoined {
        participant: ParticipantId,
        display: String,
    },
    ParticipantLeft {
        participant: ParticipantId,
    },
    /// Numbers for the page and `/metrics`, about once a second.
    Stats(Stats),
    /// Verifying who a participant is (Jitsi's SAS): the code to compare, then the outcome.
    Verification {
        participant: ParticipantId,
        state: Verification,
    },
    /// Our sending connection lost its path (ICE disconnected: the link is
    /// down or the other end unreachable); it may come back by itself.
    ConnectionInterrupted(String),
    /// It came back after [`MeetingEvent::ConnectionInterrupted`].
    ConnectionRestored,
    /// Whether a participant's frames open, in the words of their tile
    /// ("encrypted", "NOT encrypted", "cannot decrypt (wrong key?)").
    ParticipantEncryption {
        participant: ParticipantId,
        state: &'static str,
    },
    /// The room exchanges no media with this participant, and why.
    MediaRefused {
        participant: ParticipantId,
        reason: &'static str,
    },
}

/// Media numbers of the meeting so far: the one shape they have from the
/// wire to the page and `/metrics`.
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

/// The signalling of one meeting: inputs to the connector, its events, and
/// the task that drives it (ending with its final state).
pub struct Signalling {
    pub inputs: mpsc::Sender<Input>,
    pub events: mpsc::Receiver<Event>,
    pub driver: tokio::task::JoinHandle<ConnectorState>,
}

/// Starts the connector the link asks for on its transport. A new service
/// is one arm here, a folder in `cloakroom-connectors` and a link scheme.
pub fn signalling_for(link: &MeetingLink, display: &str) -> Signalling {
    let (input_tx, input_rx) = mpsc::channel::<Input>(64);
    let (event_tx, event_rx) = mpsc::channel::<Event>(64);
    let driver = match link.target() {
        Target::Janus(janus) => {
            let settings = JanusSettings {
                room: match janus.room() {
                    RoomId::Number(n) => Room::Number(*n),
                    RoomId::Text(s) => Room::Text(s.clone()),
                },
                display: display.to_owned(),
                publish: true,
                subscribe: true,
            };
            let session = Box::new(JanusSession::new(Instant::now(), settings));
            tokio::spawn(transport::websocket::run(
                janus.server_url(),
                Some(cloakroom_connectors::janus::messages::WS_PROTOCOL),
                session,
                input_rx,
                event_tx,
            ))
        }
        Target::Jitsi(jitsi) => {
            let mut settings = JitsiSettings {
                domain: jitsi.domain().to_owned(),
                room_jid: jitsi.room_jid(),
                focus: jitsi.focus().to_owned(),
                display: display.to_owned(),
                // Media only with participants whose frames are sealed; the
                // admin's `e2ee.require_key = false` does not reach here yet.
                require_e2ee: true,
                endpoint: None,
            };
            let jitsi = jitsi.clone();
            tokio::spawn(async move {
                let mut url = jitsi.server_url();
                if let Some(config_url) = jitsi.config_js_url() {
                    // Where the deployment's XMPP is, as Jitsi's own apps learn it.
                    match transport::http::get_text(&config_url, config::MAX_CONFIG_JS, CONFIG_JS_TIMEOUT).await {
                        Ok(text) => {
                            let found = config::parse(&text);
                            tracing::info!(?found, "the deployment's config.js (what it does not say, stock names)");
                            apply_deployment_config(&mut settings, &mut url, &found, jitsi.room());
                        }
                        Err(e) => tracing::warn!(
                            error = %e,
                            "could not read the deployment's config.js; assuming a stock deployment's names"
                        ),
                    }
                }
                let session = Box::new(JitsiSession::new(Instant::now(), settings));
                transport::websocket::run(
                    url,
                    Some(cloakroom_connectors::jitsi::WS_PROTOCOL),
                    session,
                    input_rx,
                    event_tx,
                )
                .await
            })
        }
        // A link this build parses but has no connector for.
        #[allow(unreachable_patterns)]
        other => {
            tracing::error!(service = %other, "no connector for this kind of meeting link in this build");
            tokio::spawn(async {
                ConnectorState::Failed(Failure {
                    error: ConnectorError::Unsupported { what: "this kind of meeting link" },
                    retryable: false,
                })
            })
        }
    };
    Signalling { inputs: input_tx, events: event_rx, driver }
}

/// How long reading a Jitsi deployment's `config.js` may take.
const CONFIG_JS_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies what a deployment's `config.js` says to the connector's settings
/// and the WebSocket URL; what it does not say keeps the stock names.
fn apply_deployment_config(
    settings: &mut JitsiSettings,
    url: &mut String,
    found: &config::DeploymentConfig,
    room: &str,
) {
    if let Some(domain) = &found.domain {
        settings.domain.clone_from(domain);
        settings.focus = format!("focus.{domain}");
        settings.room_jid = format!("{}@conference.{domain}", room.to_lowercase());
    }
    if let Some(muc) = &found.muc {
        settings.room_jid = format!("{}@{muc}", room.to_lowercase());
    }
    if let Some(focus) = &found.focus {
        settings.focus.clone_from(focus);
    }
    if let Some(ws) = &found.websocket {
        url.clone_from(ws);
    }
}

/// Outgoing frames from the GStreamer threads, already sealed.
struct Outgoing {
    video: bool,
    sealed: Vec<u8>,
    duration: Duration,
}

/// One participant's media we receive on a peer.
struct Remote {
    participant: ParticipantId,
    /// The receive-only connection; `None` when the media comes on our
    /// sending connection (a peer-to-peer call).
    subscriber: Option<Arc<Subscriber>>,
    counters: Arc<ParticipantCounters>,
    /// New keys for the opening task.
    keys: mpsc::UnboundedSender<(u8, KeyMaterial)>,
    task: tokio::task::JoinHandle<()>,
}

/// A participant's tile and frame opener, before their connection is up.
struct Receiving {
    participant: ParticipantId,
    counters: Arc<ParticipantCounters>,
    keys: mpsc::UnboundedSender<(u8, KeyMaterial)>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiving {
    /// The connection is up: `subscriber` is it, or `None` when the media
    /// comes on our sending connection.
    fn remote(self, subscriber: Option<Arc<Subscriber>>) -> Remote {
        Remote { participant: self.participant, subscriber, counters: self.counters, keys: self.keys, task: self.task }
    }

    /// The connection could not be made: the opener stops and the tile goes.
    fn undo(self, receive: &Mutex<ReceivePipeline>) {
        self.task.abort();
        let _ = receive.lock().unwrap_or_else(PoisonError::into_inner).remove_participant(&self.participant.0);
    }
}

/// Everything a running meeting holds, for the event handlers.
struct Meeting<'a> {
    settings: &'a MeetingSettings,
    keys: KeyProvider,
    /// Video's and audio's sealers (their counters are separate).
    sealers: [Sealer; 2],
    inputs: mpsc::Sender<Input>,
    conn_tx: mpsc::UnboundedSender<ConnectionEvent>,
    feedback_tx: mpsc::UnboundedSender<PublisherFeedback>,
    receive: Arc<Mutex<ReceivePipeline>>,
    status: Arc<Status>,
    events: mpsc::UnboundedSender<MeetingEvent>,
    ssrcs: (u32, u32),
    publisher: Option<(PeerId, Arc<Publisher>)>,
    remotes: BTreeMap<PeerId, Remote>,
    /// Display names by participant, from the connector.
    names: BTreeMap<ParticipantId, String>,
}

/// Joins the meeting the link names and stays until told to leave or the
/// connector fails. `signalling` is the connector for the link (from
/// [`signalling_for`]; tests pass a scripted one). `started` dates the
/// first-frame time in the status line; `muted` is read for every
/// microphone frame. Returns the connector's final state (`Left` after a
/// clean leave, `Failed` otherwise); an error means the media could not start.
pub async fn run(
    settings: MeetingSettings,
    link: MeetingLink,
    signalling: Signalling,
    started: Instant,
    muted: Arc<AtomicBool>,
    mut control: mpsc::Receiver<Control>,
    events: mpsc::UnboundedSender<MeetingEvent>,
) -> Result<ConnectorState> {
    let keys = if link.keys_exchanged() { KeyProvider::exchanged() } else { KeyProvider::new(link.key().cloned()) };
    tracing::info!(link = %link, codec = ?settings.codec, encrypted = keys.encrypted(), "joining");
    if !keys.encrypted() {
        tracing::warn!("this meeting is NOT end-to-end encrypted: the link has no key and the room allows that");
    }
    drop(link);
    let _ = events.send(MeetingEvent::Encryption { verification: keys.verification() });
    let Signalling { inputs, events: mut signal_rx, mut driver } = signalling;

    // Receive side first: it owns the echo probe the microphone's canceller needs.
    // The room screen's badge says whether this meeting is encrypted.
    let receive_settings = ReceiveSettings { encrypted: keys.encrypted(), ..settings.receive.clone() };
    let receive = match ReceivePipeline::start(&receive_settings).context("start the receive pipeline") {
        Ok(r) => Arc::new(Mutex::new(r)),
        Err(e) => {
            driver.abort();
            return Err(e);
        }
    };

    let status = Arc::new(Status::default());
    let (out_tx, mut out_rx) = mpsc::channel::<Outgoing>(64);
    let ssrcs = (rand_u32(), rand_u32());
    let sealers = [Sealer::new(&keys), Sealer::new(&keys)];
    let media =
        start_video(&settings, sealers[0].clone(), ssrcs.0, out_tx.clone(), Arc::clone(&status)).and_then(|video| {
            let audio = start_audio(&settings, sealers[1].clone(), ssrcs.1, out_tx, Arc::clone(&status), muted)?;
            Ok((video, audio))
        });
    let (mut video, audio) = match media {
        Ok(m) => m,
        Err(e) => {
            driver.abort();
            return Err(e);
        }
    };

    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel::<ConnectionEvent>();
    let (feedback_tx, mut feedback_rx) = mpsc::unbounded_channel::<PublisherFeedback>();
    let mut m = Meeting {
        settings: &settings,
        keys,
        sealers,
        inputs: inputs.clone(),
        conn_tx,
        feedback_tx,
        receive: Arc::clone(&receive),
        status: Arc::clone(&status),
        events: events.clone(),
        ssrcs,
        publisher: None,
        remotes: BTreeMap::new(),
        names: BTreeMap::new(),
    };
    let mut last_keyframe = Instant::now() - Duration::from_secs(10);
    let mut interrupted = false;

    let mut tick =
        tokio::time::interval(settings.status_line.unwrap_or(Duration::from_secs(1)).max(Duration::from_millis(100)));
    let final_state = loop {
        tokio::select! {
            order = control.recv() => match order {
                Some(Control::Verify { participant, start, confirm }) => {
                    let _ = inputs.send(Input::Verify { participant: ParticipantId(participant), start, confirm }).await;
                }
                // A closed channel means nobody wants the meeting any more either.
                Some(Control::Leave) | None => break leave(&inputs, &mut driver).await,
            },
            state = &mut driver => {
                // What the connector said last (participants leaving, peers closing) still counts.
                while let Ok(event) = signal_rx.try_recv() {
                    m.on_event(event).await;
                }
                break state.unwrap_or_else(|e| ConnectorState::Failed(Failure {
                    error: ConnectorError::Protocol { reason: format!("the signalling task died: {e}") },
                    retryable: true,
                }));
            }
            Some(event) = signal_rx.recv() => m.on_event(event).await,
            Some(out) = out_rx.recv() => {
                if let Some((_, p)) = &m.publisher {
                    let result = if out.video { p.write_video(out.sealed, out.duration).await } else { p.write_audio(out.sealed, out.duration).await };
                    match result {
                        Ok(true) if out.video => {
                            if status.video_sent.fetch_add(1, Ordering::Relaxed) == 0 {
                                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                                status.first_video_ms.store(ms, Ordering::Relaxed);
                                tracing::info!(ms, "first encrypted video frame sent");
                            }
                        }
                        Ok(true) => { status.audio_sent.fetch_add(1, Ordering::Relaxed); }
                        Ok(false) => {}
                        Err(e) => tracing::debug!(error = format!("{e:#}"), "write sample"),
                    }
                }
            }
            Some(fb) = feedback_rx.recv() => match fb {
                PublisherFeedback::KeyframeRequest => {
                    status.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                    // An SFU relays every subscriber's PLI; one key frame per 500 ms answers them all.
                    if last_keyframe.elapsed() > Duration::from_millis(500) {
                        last_keyframe = Instant::now();
                        if let Err(e) = video.force_keyframe() { tracing::warn!(error = %crate::Chain(&e), "force key frame"); }
                    }
                }
                PublisherFeedback::Bitrate(bps) => {
                    let kbps = u32::try_from(bps / 1000).unwrap_or(u32::MAX).clamp(100, 4000);
                    let current = video.bitrate_kbps();
                    if kbps.abs_diff(current) * 10 > current {
                        tracing::info!(kbps, "bitrate from the receiver's estimate");
                        if let Err(e) = video.set_bitrate(kbps) { tracing::warn!(error = %crate::Chain(&e), "set bitrate"); }
                    }
                    status.bitrate_kbps.store(u64::from(video.bitrate_kbps()), Ordering::Relaxed);
                }
            },
            Some(ConnectionEvent::State { peer, state }) = conn_rx.recv() => {
                tracing::info!(%peer, %state, "peer connection");
                // The page and the screen say so while our sending connection has no path.
                if m.publisher.as_ref().is_some_and(|(id, _)| *id == peer) {
                    if state == RTCPeerConnectionState::Disconnected && !interrupted {
                        interrupted = true;
                        let cause = "the media connection lost its path (ICE disconnected); waiting for it to come back";
                        status.set_interrupted(Some(cause));
                        let _ = events.send(MeetingEvent::ConnectionInterrupted(cause.to_owned()));
                    } else if state == RTCPeerConnectionState::Connected && interrupted {
                        interrupted = false;
                        status.set_interrupted(None);
                        let _ = events.send(MeetingEvent::ConnectionRestored);
                    }
                }
                // A connection that failed (ICE or DTLS): the connector decides what follows.
                if state == RTCPeerConnectionState::Failed {
                    m.peer_failed(peer, "the connection failed (ICE or DTLS)".to_owned()).await;
                }
            }
            _ = tick.tick() => {
                // The room's screen says so while its camera or microphone is
                // gone (the others meanwhile see and hear the stand-ins).
                let (camera, microphone) = (video.camera(), audio.microphone());
                let mut gone = Vec::new();
                if !camera.available() {
                    gone.push(format!("Camera unavailable: {}", camera.problem().unwrap_or_default()));
                }
                if !microphone.available() {
                    gone.push(format!("Microphone unavailable: {}", microphone.problem().unwrap_or_default()));
                }
                let notice = (!gone.is_empty()).then(|| gone.join(" · "));
                if let Err(e) = receive.lock().unwrap_or_else(PoisonError::into_inner).set_notice(notice.as_deref()) {
                    tracing::debug!(error = %crate::Chain(&e), "screen notice");
                }
                m.update_link_stats().await;
                let list = m.counters();
                let _ = events.send(MeetingEvent::Stats(stats(&status, &list, &receive)));
                if settings.status_line.is_some() {
                    crate::status::emit(status.line(&list, &receive));
                }
            }
        }
    };

    for (_, remote) in std::mem::take(&mut m.remotes) {
        remote.task.abort();
        if let Some(s) = remote.subscriber {
            s.close().await;
        }
    }
    if let Some((_, p)) = m.publisher.take() {
        p.close().await;
    }
    // The driver may end before its last state event is drained.
    status.set_state(&final_state);
    if settings.status_line.is_some() {
        crate::status::emit(status.line(&[], &receive));
    }
    Ok(final_state)
}

impl Meeting<'_> {
    async fn on_event(&mut self, event: Event) {
        match event {
            Event::State(state) => {
                tracing::info!(state = state.name(), "connector");
                if let ConnectorState::Failed(f) = &state {
                    tracing::warn!(error = %f.error, retryable = f.retryable, "the connector failed");
                }
                self.status.set_state(&state);
                if state == ConnectorState::InMeeting {
                    let _ = self.events.send(MeetingEvent::Joined);
                }
            }
            Event::OpenPeer { peer, direction, participant, remote_offer } => {
                let opened = match (direction, participant, remote_offer) {
                    (Direction::Send, _, None) => self.open_publisher(peer.clone()).await,
                    (Direction::Receive, Some(participant), Some(offer)) => {
                        self.open_receiver(peer.clone(), participant, offer).await
                    }
                    (Direction::SendReceive, Some(participant), None) => self.open_p2p(peer.clone(), participant).await,
                    (Direction::SendReceive, _, Some(_)) => Err(anyhow::anyhow!(
                        "answering another side's peer-to-peer offer is not built yet (the room offers instead)"
                    )),
                    (direction, _, _) => Err(anyhow::anyhow!("a {direction:?} peer of this shape is not supported")),
                };
                match opened {
                    Ok(sdp) => {
                        let _ = self.inputs.send(Input::LocalDescription { peer, sdp }).await;
                    }
                    Err(e) => self.peer_failed(peer, format!("{e:#}")).await,
                }
            }
            Event::RemoteDescription { peer, sdp } => {
                let Some((id, publisher)) = &self.publisher else { return };
                if *id != peer {
                    return;
                }
                match publisher.answer(sdp).await {
                    Ok(()) => tracing::info!("publishing"),
                    Err(e) => self.peer_failed(peer, format!("{e:#}")).await,
                }
            }
            Event::RemoteCandidate { peer, candidate } => {
                // SFUs put theirs in their description; a peer-to-peer
                // call's answerer trickles them. Ours are all in our description.
                let Some(candidate) = candidate else { return };
                match &self.publisher {
                    Some((id, p)) if *id == peer => {
                        if let Err(e) = p.add_remote_candidate(candidate.candidate, candidate.sdp_mid).await {
                            tracing::warn!(%peer, error = format!("{e:#}"), "remote candidate refused");
                        }
                    }
                    _ => tracing::debug!(%peer, "remote candidate for no connection of ours"),
                }
            }
            Event::LocalKey { key_index, material } => {
                tracing::info!(key_index, "our frame key (exchanged)");
                for sealer in &self.sealers {
                    sealer.set_key(key_index, material.clone());
                }
                self.keys.set_own_key(key_index, material);
            }
            Event::ParticipantRefused { participant, reason } => {
                tracing::warn!(%participant, reason, "no media with this participant");
                let _ = self.events.send(MeetingEvent::MediaRefused { participant, reason });
            }
            Event::Problem { participant, what } => match participant {
                Some(participant) => tracing::warn!(%participant, problem = %what, "connector"),
                None => tracing::warn!(problem = %what, "connector"),
            },
            Event::Verification { participant, state } => {
                tracing::info!(%participant, ?state, "verification");
                // The room screen: the code for the people in the room to compare, then the outcome.
                let note = match &state {
                    Verification::Code { decimals: [a, b, c], .. } => Some(format!("compare code {a} {b} {c}")),
                    Verification::Verified => Some("verified".to_owned()),
                    Verification::Mismatch => Some("NOT verified: the codes differ".to_owned()),
                    Verification::Failed { .. } => Some("verification failed".to_owned()),
                    _ => None,
                };
                let _ = self
                    .receive
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .set_note(&participant.0, note.as_deref());
                let _ = self.events.send(MeetingEvent::Verification { participant, state });
            }
            Event::ClosePeer { peer } => self.close_peer(&peer).await,
            Event::ParticipantJoined { participant, display: name } => {
                tracing::info!(%participant, %name, "participant joined");
                self.names.insert(participant.clone(), name.clone());
                // A new name for a participant already on screen (unknown ones get theirs when added).
                let _ = self.receive.lock().unwrap_or_else(PoisonError::into_inner).set_name(&participant.0, &name);
                let _ = self.events.send(MeetingEvent::ParticipantJoined { participant, display: name });
            }
            Event::ParticipantLeft { participant } => {
                tracing::info!(%participant, "participant left");
                self.names.remove(&participant);
                self.keys.forget(&participant);
                let _ = self.events.send(MeetingEvent::ParticipantLeft { participant });
            }
            Event::ParticipantKey { participant, key_index, material } => {
                tracing::info!(%participant, key_index, "participant key");
                for remote in self.remotes.values().filter(|r| r.participant == participant) {
                    let _ = remote.keys.send((key_index, material.clone()));
                }
                self.keys.set_participant_key(participant, key_index, material);
            }
            other => tracing::debug!(?other, "connector event"),
        }
    }

    /// Our sending connection; returns its offer.
    async fn open_publisher(&mut self, peer: PeerId) -> Result<String> {
        if let Some((_, old)) = self.publisher.take() {
            old.close().await;
        }
        let p = Publisher::new(
            peer.clone(),
            self.settings.codec,
            self.ssrcs,
            self.conn_tx.clone(),
            self.feedback_tx.clone(),
            Arc::clone(&self.status.transport),
            None,
        )
        .await
        .context("publisher connection")?;
        let sdp = p.offer().await.context("publisher offer")?;
        self.publisher = Some((peer, Arc::new(p)));
        Ok(sdp)
    }

    /// A tile and a frame opener for `participant`'s media: frames sent on
    /// the returned channel are opened and shown. Undone by [`Receiving::undo`].
    fn start_receiving(&mut self, participant: &ParticipantId) -> Result<(mpsc::Sender<RemoteFrame>, Receiving)> {
        let name = self.names.get(participant).cloned().unwrap_or_default();
        self.receive
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add_participant(&participant.0, &name, Some(self.settings.codec), true)
            .with_context(|| format!("receive pipeline for {participant}"))?;
        let (frames_tx, frames_rx) = mpsc::channel::<RemoteFrame>(128);
        let (keys_tx, keys_rx) = mpsc::unbounded_channel();
        let counters = Arc::new(ParticipantCounters::new(participant.0.clone(), Some(name)));
        let task = tokio::spawn(open_frames(
            participant.clone(),
            frames_rx,
            keys_rx,
            self.keys.decryptor(participant),
            Arc::clone(&self.receive),
            Arc::clone(&counters),
            self.events.clone(),
        ));
        Ok((frames_tx, Receiving { participant: participant.clone(), counters, keys: keys_tx, task }))
    }

    /// A connection receiving `participant`'s media; returns the answer to `offer`.
    async fn open_receiver(&mut self, peer: PeerId, participant: ParticipantId, offer: String) -> Result<String> {
        self.close_peer(&peer).await;
        tracing::info!(%peer, %participant, "receiving");
        let (frames_tx, receiving) = self.start_receiving(&participant)?;
        let answered = Subscriber::answer(
            peer.clone(),
            self.settings.codec,
            offer,
            self.conn_tx.clone(),
            frames_tx,
            Arc::clone(&self.status.transport),
        )
        .await;
        match answered {
            Ok((subscriber, answer)) => {
                self.remotes.insert(peer, receiving.remote(Some(Arc::new(subscriber))));
                Ok(answer)
            }
            Err(e) => {
                receiving.undo(&self.receive);
                Err(e.context("subscriber connection"))
            }
        }
    }

    /// A peer-to-peer call with `participant`: our sending connection also
    /// receives their media. Returns our offer.
    async fn open_p2p(&mut self, peer: PeerId, participant: ParticipantId) -> Result<String> {
        self.close_peer(&peer).await;
        if let Some((_, old)) = self.publisher.take() {
            old.close().await;
        }
        tracing::info!(%peer, %participant, "peer-to-peer call");
        let (frames_tx, receiving) = self.start_receiving(&participant)?;
        let built = Publisher::new(
            peer.clone(),
            self.settings.codec,
            self.ssrcs,
            self.conn_tx.clone(),
            self.feedback_tx.clone(),
            Arc::clone(&self.status.transport),
            Some(frames_tx),
        )
        .await
        .context("peer-to-peer connection");
        let offered = match built {
            Ok(p) => p.offer().await.context("peer-to-peer offer").map(|sdp| (p, sdp)),
            Err(e) => Err(e),
        };
        match offered {
            Ok((p, sdp)) => {
                self.publisher = Some((peer.clone(), Arc::new(p)));
                self.remotes.insert(peer, receiving.remote(None));
                Ok(sdp)
            }
            Err(e) => {
                receiving.undo(&self.receive);
                Err(e)
            }
        }
    }

    async fn close_peer(&mut self, peer: &PeerId) {
        if self.publisher.as_ref().is_some_and(|(id, _)| id == peer) {
            if let Some((_, p)) = self.publisher.take() {
                p.close().await;
            }
        }
        if let Some(old) = self.remotes.remove(peer) {
            old.task.abort();
            if let Some(s) = old.subscriber {
                s.close().await;
            }
            let still_received = self.remotes.values().any(|r| r.participant == old.participant);
            if !still_received {
                let _ =
                    self.receive.lock().unwrap_or_else(PoisonError::into_inner).remove_participant(&old.participant.0);
            }
        }
    }

    /// Tells the connector and the log that a peer failed, with the whole cause
    /// (the page hears it from the supervisor if the connector gives up the meeting).
    async fn peer_failed(&mut self, peer: PeerId, reason: String) {
        tracing::error!(%peer, error = %reason, "peer connection failed");
        let _ = self.inputs.send(Input::PeerFailed { peer, reason }).await;
    }

    fn counters(&self) -> Vec<Arc<ParticipantCounters>> {
        self.remotes.values().map(|r| Arc::clone(&r.counters)).collect()
    }

    /// Copies loss and RTT of every peer connection into the status counters.
    async fn update_link_stats(&self) {
        let micros = |ms: Option<f64>| ms.map(|m| (m * 1000.0) as u64).unwrap_or(0);
        if let Some((_, p)) = &self.publisher {
            self.status.rtt_us.store(micros(p.link_stats().await.rtt_ms), Ordering::Relaxed);
        }
        for remote in self.remotes.values() {
            let stats = match (&remote.subscriber, &self.publisher) {
                (Some(s), _) => s.link_stats().await,
                (None, Some((_, p))) => p.link_stats().await,
                (None, None) => continue,
            };
            remote.counters.packets_received.store(stats.packets_received, Ordering::Relaxed);
            remote.counters.packets_lost.store(stats.packets_lost, Ordering::Relaxed);
            remote.counters.rtt_us.store(micros(stats.rtt_ms), Ordering::Relaxed);
        }
    }
}

fn stats(status: &Status, remotes: &[Arc<ParticipantCounters>], receive: &Mutex<ReceivePipeline>) -> Stats {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let receive = receive.lock().unwrap_or_else(PoisonError::into_inner);
    let mut s = Stats {
        bytes_sent: get(&status.transport.bytes_sent),
        bytes_received: get(&status.transport.bytes_received),
        video_frames_sent: get(&status.video_sent),
        ..Stats::default()
    };
    for c in remotes {
        s.frames_decoded += receive.decoded_video_frames(&c.id).unwrap_or(0);
        s.decrypt_failures += get(&c.decrypt_failures);
        s.packets_received += get(&c.packets_received);
        s.packets_lost += get(&c.packets_lost);
    }
    s
}

async fn leave(inputs: &mpsc::Sender<Input>, driver: &mut tokio::task::JoinHandle<ConnectorState>) -> ConnectorState {
    let _ = inputs.send(Input::Leave).await;
    match tokio::time::timeout(LEAVE_WAIT, driver).await {
        Ok(Ok(state)) => state,
        _ => ConnectorState::Left,
    }
}

/// Opens one participant's frames and hands them to its decoders (as they
/// come, in a meeting without a key). New keys for the participant arrive
/// on `keys`.
async fn open_frames(
    participant: ParticipantId,
    mut frames: mpsc::Receiver<RemoteFrame>,
    mut keys: mpsc::UnboundedReceiver<(u8, KeyMaterial)>,
    mut decryptor: Option<FrameDecryptor>,
    receive: Arc<Mutex<ReceivePipeline>>,
    counters: Arc<ParticipantCounters>,
    events: mpsc::UnboundedSender<MeetingEvent>,
) {
    // What the participant's tile says about encryption, from whether their frames open.
    let mut watch = EncryptionWatch::default();
    loop {
        let frame = tokio::select! {
            Some((index, material)) = keys.recv() => {
                decryptor.get_or_insert_with(FrameDecryptor::new).set_key(index, material);
                continue;
            }
            frame = frames.recv() => match frame {
                Some(f) => f,
                None => return,
            },
        };
        let kind = match frame.codec {
            Codec::Opus => MediaKind::Opus,
            Codec::H264 => MediaKind::H264,
            _ => MediaKind::vp8_from_payload(&frame.data),
        };
        if frame.codec.is_video() {
            counters.video_frames.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.audio_frames.fetch_add(1, Ordering::Relaxed);
        }
        let opened = match &mut decryptor {
            Some(d) => d.open(kind, &frame.data),
            None => Ok(frame.data.to_vec()),
        };
        if let Some(state) = watch.record(opened.is_ok(), decryptor.is_some()) {
            let _ = receive.lock().unwrap_or_else(PoisonError::into_inner).set_encryption(&participant.0, state);
            // The page shows the same words as the participant's tile.
            let _ = events
                .send(MeetingEvent::ParticipantEncryption { participant: participant.clone(), state: state.words() });
        }
        match opened {
            Ok(plain) => {
                if decryptor.is_some() {
                    counters.decrypted.fetch_add(1, Ordering::Relaxed);
                }
                let keyframe = match kind {
                    MediaKind::Vp8Key | MediaKind::Opus => true,
                    MediaKind::H264 => annexb::is_idr(&plain),
                    _ => false,
                };
                let encoded = EncodedFrame {
                    data: plain,
                    pts: None,
                    duration: Some(frame.duration),
                    keyframe,
                    codec: frame.codec,
                };
                let pushed = receive.lock().unwrap_or_else(PoisonError::into_inner).push(&participant.0, encoded);
                if let Err(e) = pushed {
                    tracing::debug!(%participant, error = %crate::Chain(&e), "push");
                }
            }
            Err(e) => {
                let n = counters.decrypt_failures.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(%participant, error = %crate::Chain(&e), failures = n + 1, "frame does not open (wrong key?)");
                }
            }
        }
    }
}

fn start_video(
    settings: &MeetingSettings,
    sealer: Sealer,
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
    let send_settings = VideoSendSettings::new(source, settings.codec, mode);
    let frame_time = Duration::from_millis(1000 / u64::from(mode.framerate.max(1)));
    let sender = VideoSender::start(send_settings, move |frame: EncodedFrame| {
        let (payload, kind) = match frame.codec {
            Codec::H264 => (annexb::normalise(&frame.data), MediaKind::H264),
            _ => {
                let kind = MediaKind::vp8_from_payload(&frame.data);
                (frame.data, kind)
            }
        };
        let rtp_timestamp = frame.pts.map(|p| (p.as_micros() * 9 / 100) as u32).unwrap_or(0);
        let Some(sealed) = sealer.seal(FrameMeta { ssrc, rtp_timestamp, kind }, &payload) else {
            // Keys are exchanged and ours is not known yet: nothing goes out.
            status.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match sealed {
            Ok(sealed) => {
                status.video_sealed.fetch_add(1, Ordering::Relaxed);
                let duration = frame.duration.unwrap_or(frame_time);
                if out.try_send(Outgoing { video: true, sealed, duration }).is_err() {
                    status.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %crate::Chain(&e), "seal video"),
        }
    })
    .with_context(|| format!("start the video sender ({})", settings.video))?;
    tracing::info!(encoder = ?sender.encoder(), "video");
    Ok(sender)
}

fn start_audio(
    settings: &MeetingSettings,
    sealer: Sealer,
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
    let mut send_settings = AudioSendSettings::new(source);
    // The echo canceller needs a speaker to cancel; without one it only costs CPU.
    send_settings.echo_cancel = !matches!(settings.receive.speaker, cloakroom_media::receive::AudioOutput::Discard);
    AudioSender::start(send_settings, move |frame: EncodedFrame| {
        let rtp_timestamp = frame.pts.map(|p| (p.as_micros() * 48 / 1000) as u32).unwrap_or(0);
        // Muted: the microphone's packet is dropped here, before sealing; silence goes instead.
        let payload: &[u8] = if muted.load(Ordering::Relaxed) { &OPUS_SILENCE } else { &frame.data };
        let Some(sealed) = sealer.seal(FrameMeta { ssrc, rtp_timestamp, kind: MediaKind::Opus }, payload) else {
            status.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match sealed {
            Ok(sealed) => {
                let duration = frame.duration.unwrap_or(Duration::from_millis(20));
                if out.try_send(Outgoing { video: false, sealed, duration }).is_err() {
                    status.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %crate::Chain(&e), "seal audio"),
        }
    })
    .with_context(|| format!("start the audio sender ({})", settings.audio))
}

/// Seals our frames for one medium, shared with its GStreamer thread: the
/// link's key from the start, or (keys exchanged in the meeting) the key
/// the connector gives, which may change while the meeting runs.
#[derive(Clone)]
struct Sealer {
    encryptor: Arc<Mutex<Option<FrameEncryptor>>>,
    /// Frames must be sealed: without a key they are dropped, never sent clear.
    required: bool,
}

impl Sealer {
    fn new(keys: &KeyProvider) -> Self {
        Self { encryptor: Arc::new(Mutex::new(keys.encryptor())), required: keys.encrypted() }
    }

    /// The frame to send: sealed, clear (a meeting without encryption), or
    /// `None` (encryption required, no key yet).
    fn seal(&self, meta: FrameMeta, payload: &[u8]) -> Option<Result<Vec<u8>, cloakroom_frame::FrameError>> {
        let mut guard = self.encryptor.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_mut() {
            Some(e) => Some(e.seal(meta, payload)),
            None if self.required => None,
            None => Some(Ok(payload.to_vec())),
        }
    }

    /// Our key from now on (a new index, or a ratchet at the same one).
    fn set_key(&self, index: u8, material: KeyMaterial) {
        let mut guard = self.encryptor.lock().unwrap_or_else(PoisonError::into_inner);
        guard.get_or_insert_with(FrameEncryptor::with_random_counters).set_key(index, material);
    }
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
    fn a_deployment_s_config_js_overrides_the_stock_names_it_gives() {
        let base = || JitsiSettings {
            domain: "meet.example.org".into(),
            room_jid: "weekly@conference.meet.example.org".into(),
            focus: "focus.meet.example.org".into(),
            display: "Room".into(),
            require_e2ee: true,
            endpoint: None,
        };
        let mut s = base();
        let mut url = "wss://meet.example.org/xmpp-websocket".to_owned();
        let found = config::DeploymentConfig {
            domain: Some("xmpp.example.org".into()),
            muc: Some("muc.xmpp.example.org".into()),
            focus: None,
            websocket: Some("wss://signal.example.org/xmpp-websocket".into()),
        };
        apply_deployment_config(&mut s, &mut url, &found, "Weekly");
        assert_eq!(s.domain, "xmpp.example.org");
        assert_eq!(s.room_jid, "weekly@muc.xmpp.example.org");
        assert_eq!(s.focus, "focus.xmpp.example.org");
        assert_eq!(url, "wss://signal.example.org/xmpp-websocket");
        let mut s = base();
        let mut url = "wss://meet.example.org/xmpp-websocket".to_owned();
        apply_deployment_config(&mut s, &mut url, &config::DeploymentConfig::default(), "Weekly");
        assert_eq!(s, base(), "nothing said, nothing changed");
        assert_eq!(url, "wss://meet.example.org/xmpp-websocket");
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
