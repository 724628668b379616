//! The peer connections a connector asks for, built with the `webrtc` crate
//! (0.21, async over the sans-I/O `rtc` core).
//!
//! - [`Publisher`]: one send-only connection with a video track (VP8 or
//!   H.264) and an Opus track, fed with frames that are *already sealed*
//!   (jitsi / h264 format) as samples. The RTP payloaders only add their own
//!   descriptors: VP8's payload descriptor (RFC 7741 §4.2) in front of the
//!   sealed frame, whose first 10/3 bytes are clear VP8 header as the jitsi
//!   format requires; H.264 (RFC 6184) splits the sealed access unit on start
//!   codes, which the h264 format keeps intact. Keyframe requests (PLI, FIR)
//!   and REMB estimates from the SFU come back as [`PublisherFeedback`].
//! - [`Subscriber`]: one receive-only connection per remote publisher. Its
//!   remote tracks are depacketized (VP8 / H.264 through a small reorder window;
//!   Opus one packet per frame) into sealed frames, handed to a callback.
//!
//! The transport never sees plaintext media: sealing happens before
//! [`Publisher::write_video`], opening after the callback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use cloakroom_connectors::signalling::PeerId;
use cloakroom_media::Codec;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{PayloadType, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use tokio::sync::{mpsc, watch};

use crate::reassembly::{FrameAssembler, H264Depacketizer};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
};

/// The RTP parameters we offer and accept for a video codec (VP8, or H.264
/// constrained baseline in packetization mode 1); `None` for audio codecs.
fn video_parameters(codec: Codec) -> Option<RTCRtpCodecParameters> {
    {
        let feedback = ["goog-remb:", "ccm:fir", "nack:", "nack:pli"]
            .iter()
            .map(|s| {
                let (typ, parameter) = s.split_once(':').unwrap_or((s, ""));
                RTCPFeedback { typ: typ.to_owned(), parameter: parameter.to_owned() }
            })
            .collect();
        let (mime, fmtp, pt) = match codec {
            Codec::Vp8 => (MIME_TYPE_VP8, "", 96),
            Codec::H264 => {
                (MIME_TYPE_H264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 102)
            }
            _ => return None,
        };
        Some(RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: fmtp.to_owned(),
                rtcp_feedback: feedback,
            },
            payload_type: pt,
        })
    }
}

fn opus_parameters() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
    }
}

/// What the SFU asks of the publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublisherFeedback {
    /// PLI or FIR: send a key frame.
    KeyframeRequest,
    /// REMB: the receiver-side bandwidth estimate, bit/s.
    Bitrate(u64),
}

/// Peer-connection-level happenings, for the engine.
#[derive(Clone, Debug)]
pub enum ConnectionEvent {
    State { peer: PeerId, state: RTCPeerConnectionState },
}

/// Byte and packet counters shared with the status line.
#[derive(Debug, Default)]
pub struct TransportCounters {
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub send_errors: AtomicU64,
}

struct Handler {
    peer: PeerId,
    /// Whether the connection is up (ICE and DTLS done).
    connected: Arc<AtomicBool>,
    gathering: watch::Sender<bool>,
    events: mpsc::UnboundedSender<ConnectionEvent>,
    tracks: Option<mpsc::UnboundedSender<Arc<dyn TrackRemote>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathering.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.connected.store(state == RTCPeerConnectionState::Connected, Ordering::Relaxed);
        let _ = self.events.send(ConnectionEvent::State { peer: self.peer.clone(), state });
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(tx) = &self.tracks {
            let _ = tx.send(track);
        }
    }
}

/// Builds a peer connection with our codecs and interceptors, binding UDP on
/// every non-loopback interface (the SFU may only reach us on one of them).
///
/// mDNS (resolving a browser's `.local` candidates) needs a multicast route;
/// a network without a default route has none, and the `webrtc` crate then
/// fails to build the connection at all. The SFU never sends `.local`
/// candidates, so there the connection is built without mDNS instead.
///
/// `rtx`: also offer RTX (RFC 4588) for the video codec. A peer-to-peer
/// call does: lib-jitsi-meet's statistics and send-quality code read the
/// video section's payload types as a list and break on a single one (seen:
/// "mLine.payloads.split is not a function" on every stats round), and the
/// other browser then has retransmission for its sends.
async fn build_connection(codec: Codec, handler: Handler, rtx: bool) -> Result<Arc<dyn PeerConnection>> {
    let handler = Arc::new(handler);
    let with_mdns = build_with_mdns(codec, Arc::clone(&handler), MulticastDnsMode::QueryOnly, rtx).await;
    match with_mdns {
        Ok(pc) => Ok(pc),
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "peer connection without mDNS (.local candidates will not resolve): no multicast route?"
            );
            build_with_mdns(codec, handler, MulticastDnsMode::Disabled, rtx)
                .await
                .with_context(|| format!("also with mDNS: {e:#}"))
        }
    }
}

async fn build_with_mdns(
    codec: Codec,
    handler: Arc<Handler>,
    mdns: MulticastDnsMode,
    rtx: bool,
) -> Result<Arc<dyn PeerConnection>> {
    let video = video_parameters(codec).ok_or_else(|| anyhow!("{codec:?} is not a video codec"))?;
    let video_pt = video.payload_type;
    let mut media_engine = MediaEngine::default();
    media_engine.register_codec(video, RtpCodecKind::Video).context("register video codec")?;
    if rtx {
        let rtx = RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: rtc::peer_connection::configuration::media_engine::MIME_TYPE_RTX.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: format!("apt={video_pt}"),
                rtcp_feedback: vec![],
            },
            payload_type: video_pt + 1,
        };
        media_engine.register_codec(rtx, RtpCodecKind::Video).context("register rtx")?;
    }
    media_engine.register_codec(opus_parameters(), RtpCodecKind::Audio).context("register opus")?;
    let registry = register_default_interceptors(Registry::new(), &mut media_engine).context("interceptors")?;
    let registry = registry.with(Slot::from(14_000), FeedbackToApplication::default());
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(SettingEngineBuilder::new().with_multicast_dns_mode(mdns).build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(vec!["0.0.0.0:0".to_owned()])
        .build()
        .await
        .context("build peer connection")?;
    Ok(Arc::new(pc))
}

/// Waits for ICE gathering to finish (non-trickle: every candidate goes in the SDP), at most `limit`.
async fn gathered(rx: &mut watch::Receiver<bool>, limit: Duration) {
    let _ = tokio::time::timeout(limit, rx.wait_for(|done| *done)).await;
}

/// The publisher connection.
pub struct Publisher {
    pc: Arc<dyn PeerConnection>,
    video: Arc<TrackLocalStaticSample>,
    audio: Arc<TrackLocalStaticSample>,
    video_ssrc: u32,
    audio_ssrc: u32,
    video_pt: std::sync::OnceLock<PayloadType>,
    audio_pt: std::sync::OnceLock<PayloadType>,
    gathering: tokio::sync::Mutex<watch::Receiver<bool>>,
    counters: Arc<TransportCounters>,
    connected: Arc<AtomicBool>,
}

impl Publisher {
    /// Builds the connection and its two send-only tracks; feedback (PLI,
    /// FIR, REMB) goes to `feedback`. With `receive`, the tracks send and
    /// receive (a peer-to-peer call): the other side's frames go there.
    pub async fn new(
        peer: PeerId,
        codec: Codec,
        (video_ssrc, audio_ssrc): (u32, u32),
        events: mpsc::UnboundedSender<ConnectionEvent>,
        feedback: mpsc::UnboundedSender<PublisherFeedback>,
        counters: Arc<TransportCounters>,
        receive: Option<mpsc::Sender<RemoteFrame>>,
    ) -> Result<Self> {
        let (gathering_tx, gathering_rx) = watch::channel(false);
        let connected = Arc::new(AtomicBool::new(false));
        let direction =
            if receive.is_some() { RTCRtpTransceiverDirection::Sendrecv } else { RTCRtpTransceiverDirection::Sendonly };
        let tracks = receive.map(|frames| {
            let (tracks_tx, mut tracks_rx) = mpsc::unbounded_channel::<Arc<dyn TrackRemote>>();
            let counters = Arc::clone(&counters);
            tokio::spawn(async move {
                while let Some(track) = tracks_rx.recv().await {
                    tokio::spawn(read_track(track, frames.clone(), Arc::clone(&counters)));
                }
            });
            tracks_tx
        });
        let p2p = tracks.is_some();
        let handler = Handler { peer, connected: Arc::clone(&connected), gathering: gathering_tx, events, tracks };
        let pc = build_connection(codec, handler, p2p).await?;
        let video_codec = video_parameters(codec).ok_or_else(|| anyhow!("{codec:?} is not a video codec"))?.rtp_codec;
        let video = Arc::new(local_track("video", RtpCodecKind::Video, video_codec, video_ssrc)?);
        let audio = Arc::new(local_track("audio", RtpCodecKind::Audio, opus_parameters().rtp_codec, audio_ssrc)?);
        for track in [&video, &audio] {
            let init =
                RTCRtpTransceiverInit { direction, streams: vec!["cloakroom".to_owned()], send_encodings: vec![] };
            pc.add_transceiver_from_track(Arc::clone(track) as Arc<dyn TrackLocal>, Some(init))
                .await
                .context("add track")?;
            let track = Arc::clone(track);
            let feedback = feedback.clone();
            tokio::spawn(async move {
                while let Some(event) = track.poll().await {
                    let TrackLocalEvent::OnRtcpPacket(packets) = event else { continue };
                    for p in packets {
                        let any = p.as_any();
                        if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                            let _ = feedback.send(PublisherFeedback::KeyframeRequest);
                        } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                            let _ = feedback.send(PublisherFeedback::Bitrate(remb.bitrate as u64));
                        }
                    }
                }
            });
        }
        Ok(Self {
            pc,
            video,
            audio,
            video_ssrc,
            audio_ssrc,
            video_pt: Default::default(),
            audio_pt: Default::default(),
            gathering: tokio::sync::Mutex::new(gathering_rx),
            counters,
            connected,
        })
    }

    /// Our offer with every host candidate in it.
    pub async fn offer(&self) -> Result<String> {
        let offer = self.pc.create_offer(None).await.context("create offer")?;
        self.pc.set_local_description(offer).await.context("set local offer")?;
        gathered(&mut *self.gathering.lock().await, Duration::from_secs(5)).await;
        let local = self.pc.local_description().await.ok_or_else(|| anyhow!("no local description"))?;
        Ok(local.sdp)
    }

    /// Applies the SFU's answer.
    pub async fn answer(&self, sdp: String) -> Result<()> {
        let answer = RTCSessionDescription::answer(sdp).context("parse answer")?;
        self.pc.set_remote_description(answer).await.context("set remote answer")?;
        for sender in self.pc.get_senders().await {
            let params = sender.get_parameters().await.context("sender parameters")?;
            let Some(codec) = params.rtp_parameters.codecs.first() else { continue };
            if codec.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_OPUS) {
                let _ = self.audio_pt.set(codec.payload_type);
            } else {
                let _ = self.video_pt.set(codec.payload_type);
            }
        }
        if self.video_pt.get().is_none() {
            return Err(anyhow!("the answer accepted no video codec of ours"));
        }
        Ok(())
    }

    /// Sends one sealed video frame. Until the connection is up, frames are
    /// dropped (and not counted as sent: nothing would carry them).
    pub async fn write_video(&self, sealed: Vec<u8>, duration: Duration) -> Result<bool> {
        let Some(pt) = self.video_pt.get().copied() else { return Ok(false) };
        self.write(&self.video, self.video_ssrc, pt, sealed, duration).await
    }

    /// Sends one sealed Opus frame.
    pub async fn write_audio(&self, sealed: Vec<u8>, duration: Duration) -> Result<bool> {
        let Some(pt) = self.audio_pt.get().copied() else { return Ok(false) };
        self.write(&self.audio, self.audio_ssrc, pt, sealed, duration).await
    }

    async fn write(
        &self,
        track: &TrackLocalStaticSample,
        ssrc: u32,
        pt: PayloadType,
        sealed: Vec<u8>,
        duration: Duration,
    ) -> Result<bool> {
        if !self.connected.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let len = sealed.len() as u64;
        let sample = Sample { data: Bytes::from(sealed), duration, ..Sample::new(Instant::now()) };
        match track.sample_writer(ssrc, pt).write_sample(&sample).await {
            Ok(()) => {
                self.counters.bytes_sent.fetch_add(len, Ordering::Relaxed);
                Ok(true)
            }
            Err(e) => {
                self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }

    /// A candidate of the other side, trickled after its description (a
    /// peer-to-peer call's answerer sends them one by one).
    pub async fn add_remote_candidate(&self, candidate: String, sdp_mid: Option<String>) -> Result<()> {
        let init = rtc::peer_connection::transport::RTCIceCandidateInit { candidate, sdp_mid, ..Default::default() };
        self.pc.add_ice_candidate(init).await.context("add remote candidate")
    }

    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }

    /// Transport statistics of the publisher connection.
    pub async fn link_stats(&self) -> LinkStats {
        link_stats(&self.pc).await
    }
}

/// Loss and round-trip time of one peer connection, from its stats report.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkStats {
    /// RTT of the nominated ICE candidate pair (STUN consent checks), ms.
    pub rtt_ms: Option<f64>,
    /// RTP packets received on inbound streams.
    pub packets_received: u64,
    /// RTP packets lost on inbound streams (sequence gaps, RFC 3550 §6.4.1).
    pub packets_lost: u64,
}

async fn link_stats(pc: &Arc<dyn PeerConnection>) -> LinkStats {
    let report = pc.get_stats(Instant::now(), rtc::statistics::StatsSelector::None).await;
    let rtt_ms = report
        .candidate_pairs()
        .filter(|p| p.nominated && p.current_round_trip_time > 0.0)
        .map(|p| p.current_round_trip_time * 1000.0)
        .next();
    let (mut packets_received, mut packets_lost) = (0u64, 0u64);
    for s in report.inbound_rtp_streams() {
        packets_received += s.received_rtp_stream_stats.packets_received;
        packets_lost += u64::try_from(s.received_rtp_stream_stats.packets_lost).unwrap_or(0);
    }
    LinkStats { rtt_ms, packets_received, packets_lost }
}

/// A sealed frame from a remote participant, as depacketized.
#[derive(Debug)]
pub struct RemoteFrame {
    pub codec: Codec,
    pub data: Bytes,
    pub duration: Duration,
}

/// One subscriber connection (one remote publisher).
pub struct Subscriber {
    pc: Arc<dyn PeerConnection>,
}

impl Subscriber {
    /// Answers the SFU's `offer`; every frame of the remote tracks goes to
    /// `frames`. Returns the connection and the answer SDP.
    pub async fn answer(
        peer: PeerId,
        codec: Codec,
        offer: String,
        events: mpsc::UnboundedSender<ConnectionEvent>,
        frames: mpsc::Sender<RemoteFrame>,
        counters: Arc<TransportCounters>,
    ) -> Result<(Self, String)> {
        let (gathering_tx, mut gathering_rx) = watch::channel(false);
        let (tracks_tx, mut tracks_rx) = mpsc::unbounded_channel::<Arc<dyn TrackRemote>>();
        let connected = Arc::new(AtomicBool::new(false));
        let handler = Handler { peer, connected, gathering: gathering_tx, events, tracks: Some(tracks_tx) };
        let pc = build_connection(codec, handler, false).await?;
        tokio::spawn(async move {
            while let Some(track) = tracks_rx.recv().await {
                tokio::spawn(read_track(track, frames.clone(), Arc::clone(&counters)));
            }
        });
        let offer = RTCSessionDescription::offer(offer).context("parse offer")?;
        pc.set_remote_description(offer).await.context("set remote offer")?;
        let answer = pc.create_answer(None).await.context("create answer")?;
        pc.set_local_description(answer).await.context("set local answer")?;
        gathered(&mut gathering_rx, Duration::from_secs(5)).await;
        let local = pc.local_description().await.ok_or_else(|| anyhow!("no local description"))?;
        Ok((Self { pc }, local.sdp))
    }

    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }

    /// Transport statistics of this subscriber connection.
    pub async fn link_stats(&self) -> LinkStats {
        link_stats(&self.pc).await
    }
}

/// Reads one remote track until it ends, reassembling frames.
async fn read_track(track: Arc<dyn TrackRemote>, frames: mpsc::Sender<RemoteFrame>, counters: Arc<TransportCounters>) {
    let Some(ssrc) = track.ssrcs().await.first().copied() else { return };
    let mime = track.codec(ssrc).await.map(|c| c.mime_type.to_ascii_lowercase()).unwrap_or_default();
    let kind = if mime == MIME_TYPE_OPUS.to_ascii_lowercase() {
        Codec::Opus
    } else if mime == MIME_TYPE_H264.to_ascii_lowercase() {
        Codec::H264
    } else if mime == MIME_TYPE_VP8.to_ascii_lowercase() {
        Codec::Vp8
    } else {
        tracing::warn!(%mime, "ignoring a remote track of an unknown codec");
        return;
    };
    tracing::info!(?kind, ssrc, "remote track");
    let mut assembler = match kind {
        Codec::H264 => Assembler::H264(FrameAssembler::new(H264Depacketizer::default(), 256)),
        Codec::Opus => Assembler::Opus,
        _ => Assembler::Vp8(FrameAssembler::new(Vp8Packet::default(), 128)),
    };
    // Janus forwards the publisher's key frame only on request: ask now and
    // then until the first frame arrives.
    let mut asked = Instant::now() - Duration::from_secs(10);
    let mut got_frame = false;
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else { continue };
        counters.bytes_received.fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
        let now = Instant::now();
        if kind.is_video() && !got_frame && now.duration_since(asked) > Duration::from_secs(1) {
            asked = now;
            let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
            let _ = track.write_rtcp(vec![Box::new(pli)]).await;
        }
        let h = &packet.header;
        let (seq, ts, marker) = (h.sequence_number, h.timestamp, h.marker);
        let out: Vec<RemoteFrame> = match &mut assembler {
            Assembler::Opus => {
                vec![RemoteFrame { codec: kind, data: packet.payload, duration: Duration::from_millis(20) }]
            }
            Assembler::Vp8(a) => {
                a.push(seq, ts, marker, packet.payload);
                std::iter::from_fn(|| a.pop())
                    .map(|(data, duration)| RemoteFrame { codec: kind, data, duration })
                    .collect()
            }
            Assembler::H264(a) => {
                a.push(seq, ts, marker, packet.payload);
                std::iter::from_fn(|| a.pop())
                    .map(|(data, duration)| RemoteFrame { codec: kind, data, duration })
                    .collect()
            }
        };
        for frame in out {
            got_frame |= frame.codec.is_video();
            if frames.send(frame).await.is_err() {
                return;
            }
        }
    }
}

enum Assembler {
    Vp8(FrameAssembler<Vp8Packet>),
    H264(FrameAssembler<H264Depacketizer>),
    Opus,
}

fn local_track(kind_label: &str, kind: RtpCodecKind, codec: RTCRtpCodec, ssrc: u32) -> Result<TrackLocalStaticSample> {
    let track = MediaStreamTrack::new(
        "cloakroom".to_owned(),
        format!("cloakroom-{kind_label}"),
        format!("cloakroom-{kind_label}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        }],
    );
    TrackLocalStaticSample::new(Instant::now(), track).context("local track")
}

/// Marks inbound key-frame requests and REMB for the application (inbound
/// RTCP otherwise stops at the end of the interceptor chain). Sits last.
#[derive(Default)]
struct FeedbackToApplication {
    read: std::collections::VecDeque<TaggedPacket>,
    write: std::collections::VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackToApplication {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let wanted: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>()
                        || any.is::<FullIntraRequest>()
                        || any.is::<ReceiverEstimatedMaximumBitrate>()
                })
                .cloned()
                .collect();
            if wanted.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(wanted);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for FeedbackToApplication {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    //! A publisher and a subscriber connection of ours talking directly (no
    //! SFU) over this machine's first non-loopback interface: sealed frames
    //! must come out of the depacketizer byte for byte and open.

    use cloakroom_frame::{FrameDecryptor, FrameEncryptor, FrameMeta, KeyMaterial, MediaKind};

    use super::*;

    fn key() -> KeyMaterial {
        KeyMaterial::from_bytes(&mut [7u8; 32])
    }

    /// Deterministic filler bytes without start codes (no 00 00 runs).
    fn filler(seed: u32, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as u8) | 1
            })
            .collect()
    }

    fn plain_video(codec: Codec, i: u32) -> (Vec<u8>, MediaKind) {
        let key_frame = i % 10 == 0;
        let body = filler(i, if key_frame { 4000 } else { 600 + (i as usize % 7) * 50 });
        match codec {
            Codec::H264 => {
                let mut f = Vec::new();
                if key_frame {
                    f.extend([0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x05, 0x07, 0xe8]);
                    f.extend([0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
                    f.extend([0, 0, 0, 1, 0x65, 0x88]);
                } else {
                    f.extend([0, 0, 0, 1, 0x41, 0x9a]);
                }
                f.extend(body);
                (f, MediaKind::H264)
            }
            _ => {
                let mut f = if key_frame {
                    vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]
                } else {
                    vec![0x31, 0x02, 0x00]
                };
                f.extend(body);
                let kind = MediaKind::vp8_from_payload(&f);
                (f, kind)
            }
        }
    }

    /// Frames from a publisher to a subscriber; `p2p`: the publisher's
    /// connection receives too (a peer-to-peer call's shape).
    async fn round_trip(codec: Codec, p2p: bool) {
        let counters = Arc::new(TransportCounters::default());
        let (events, _events_rx) = mpsc::unbounded_channel();
        let (feedback, _feedback_rx) = mpsc::unbounded_channel();
        let (back_tx, _back_rx) = mpsc::channel(16);
        let publisher = Publisher::new(
            PeerId("publisher".into()),
            codec,
            (0x1111, 0x2222),
            events.clone(),
            feedback,
            Arc::clone(&counters),
            p2p.then_some(back_tx),
        )
        .await
        .expect("publisher");
        let offer = publisher.offer().await.expect("offer");
        let direction = if p2p { "a=sendrecv" } else { "a=sendonly" };
        assert_eq!(offer.lines().filter(|l| *l == direction).count(), 2, "{offer}");
        // A P2P offer lists RTX beside the video codec (lib-jitsi-meet needs more than one).
        assert_eq!(offer.contains(" rtx/90000"), p2p, "{offer}");
        if !offer.contains("typ host") {
            eprintln!("no non-loopback interface here: skipped");
            return;
        }
        let (frames_tx, mut frames_rx) = mpsc::channel(1024);
        let (subscriber, answer) =
            Subscriber::answer(PeerId("subscriber".into()), codec, offer, events, frames_tx, Arc::clone(&counters))
                .await
                .expect("answer");
        publisher.answer(answer).await.expect("apply answer");

        let mut encryptor = FrameEncryptor::new(|| 100);
        encryptor.set_key(0, key());
        let mut decryptor = FrameDecryptor::new();
        decryptor.set_key(0, key());
        let mut sent_video: Vec<(Vec<u8>, Vec<u8>)> = Vec::new(); // (sealed, plain)
        let (mut video_in, mut audio_in, mut big_in) = (0, 0, 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut i = 0u32;
        while video_in < 30 && Instant::now() < deadline {
            let (plain, kind) = plain_video(codec, i);
            let sealed =
                encryptor.seal(FrameMeta { ssrc: 0x1111, rtp_timestamp: i * 4500, kind }, &plain).expect("seal video");
            let _ = publisher.write_video(sealed.clone(), Duration::from_millis(50)).await;
            sent_video.push((sealed, plain));
            let opus = encryptor
                .seal(FrameMeta { ssrc: 0x2222, rtp_timestamp: i * 960, kind: MediaKind::Opus }, &filler(i + 7, 80))
                .expect("seal opus");
            let _ = publisher.write_audio(opus, Duration::from_millis(20)).await;
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            while let Ok(frame) = frames_rx.try_recv() {
                match frame.codec {
                    Codec::Opus => {
                        decryptor.open(MediaKind::Opus, &frame.data).expect("opus opens");
                        audio_in += 1;
                    }
                    _ => {
                        let (_, plain) = sent_video
                            .iter()
                            .find(|(sealed, _)| sealed.as_slice() == frame.data.as_ref())
                            .unwrap_or_else(|| {
                                panic!("{codec:?}: received a frame that was not sent ({} bytes)", frame.data.len())
                            });
                        let kind = if codec == Codec::H264 {
                            MediaKind::H264
                        } else {
                            MediaKind::vp8_from_payload(&frame.data)
                        };
                        assert_eq!(&decryptor.open(kind, &frame.data).expect("video opens"), plain);
                        video_in += 1;
                        if frame.data.len() > 1200 {
                            big_in += 1;
                        }
                    }
                }
            }
        }
        assert!(video_in >= 30, "{codec:?}: {video_in} video frames came through of {i} sent");
        assert!(audio_in >= 10, "{codec:?}: {audio_in} audio frames");
        assert!(big_in >= 1, "{codec:?}: no multi-packet frame came through");
        assert!(counters.bytes_sent.load(Ordering::Relaxed) > 0);
        eprintln!(
            "{codec:?}: {video_in} video ({big_in} multi-packet) and {audio_in} audio frames of {i} came through intact"
        );
        subscriber.close().await;
        publisher.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sealed_vp8_and_opus_frames_cross_a_peer_connection_byte_for_byte() {
        round_trip(Codec::Vp8, false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sealed_h264_frames_cross_a_peer_connection_byte_for_byte() {
        round_trip(Codec::H264, false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_to_peer_connection_offers_both_ways_and_sends_the_same() {
        round_trip(Codec::Vp8, true).await;
    }
}
