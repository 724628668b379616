//! A whole meeting in one process: the engine with real GStreamer pipelines
//! (test camera and tone, VP8 and Opus encoders, decoders, the grid) and
//! real WebRTC peer connections, behind a scripted connector instead of a
//! server. The scripted "server" joins the room, asks for its publisher, and
//! hands the publisher's own offer back as a participant's stream, so the
//! room receives, opens and decodes its own sealed media. The room's
//! supervisor (pure, in virtual time) drives the meetings: the server drops
//! the first one, the supervisor retries, the second one joins, a
//! participant's announced key replaces the shared one, the participant
//! leaves, the room leaves.
//!
//! Needs a non-loopback interface for ICE (as the peers' own tests); on a
//! machine without one the test says so and passes without running.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use cloakroom_appliance::supervisor::{Input as RoomInput, Output as RoomOutput, RoomState, Supervisor};
use cloakroom_connectors::ConnectorError;
use cloakroom_connectors::signalling::{ConnectorState, Direction, Event, Failure, Input, ParticipantId, PeerId};
use cloakroom_engine::meeting::{self, Control, MeetingEvent, MeetingSettings, Signalling};
use cloakroom_frame::KeyMaterial;
use cloakroom_media::Codec;
use cloakroom_media::ladder::VideoMode;
use cloakroom_media::layout::Canvas;
use cloakroom_media::receive::{AudioOutput, ReceiveSettings};
use cloakroom_media::screen::DisplayOutput;
use cloakroom_meeting::MeetingLink;
use tokio::sync::mpsc;

const LINK: &str = "janus+ws://127.0.0.1:9/janus?room=1#e2ee=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

fn settings() -> MeetingSettings {
    MeetingSettings {
        codec: Codec::Vp8,
        video: "test".into(),
        audio: "test".into(),
        mode: VideoMode::new(320, 240, 15).expect("mode"),
        name: "Board room".into(),
        receive: ReceiveSettings {
            canvas: Canvas { width: 320, height: 180 },
            framerate: 10,
            display: DisplayOutput::Snapshots,
            speaker: AudioOutput::Discard,
            self_view: false,
            encrypted: true,
        },
        status_line: None,
    }
}

/// How the scripted server ends its meeting.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The server goes away once frames have come back.
    DropsOut,
    /// It announces a wrong key for the participant, the participant
    /// leaves, then the room leaves and the server says goodbye.
    KeyThenLeave,
}

/// The scripted server: what it was told, for the test's asserts.
#[derive(Debug, Default)]
struct Heard {
    offers: usize,
    answers: usize,
    failed_peers: Vec<String>,
}

fn publisher() -> PeerId {
    PeerId("publisher".into())
}

fn echo_peer() -> PeerId {
    PeerId("echo-peer".into())
}

fn echo() -> ParticipantId {
    ParticipantId("echo".into())
}

/// Starts the scripted server: the engine's [`Signalling`], and `go` to
/// tell it that the test saw enough frames and the ending may begin.
fn scripted_server(ending: Ending) -> (Signalling, mpsc::Sender<()>, Arc<std::sync::Mutex<Heard>>) {
    let (input_tx, mut inputs) = mpsc::channel::<Input>(64);
    let (events, event_rx) = mpsc::channel::<Event>(64);
    let (go_tx, mut go) = mpsc::channel::<()>(4);
    let heard = Arc::new(std::sync::Mutex::new(Heard::default()));
    let log = Arc::clone(&heard);
    let driver = tokio::spawn(async move {
        let send = |e: Event| {
            let events = events.clone();
            async move {
                let _ = events.send(e).await;
            }
        };
        send(Event::State(ConnectorState::Joining)).await;
        send(Event::State(ConnectorState::InMeeting)).await;
        send(Event::OpenPeer { peer: publisher(), direction: Direction::Send, participant: None, remote_offer: None })
            .await;
        loop {
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(Input::LocalDescription { peer, sdp }) if peer == publisher() => {
                        log.lock().expect("log").offers += 1;
                        // The room's own stream comes back as a participant's.
                        send(Event::ParticipantJoined { participant: echo(), display: "Echo".into() }).await;
                        send(Event::OpenPeer {
                            peer: echo_peer(),
                            direction: Direction::Receive,
                            participant: Some(echo()),
                            remote_offer: Some(sdp),
                        })
                        .await;
                    }
                    Some(Input::LocalDescription { peer, sdp }) if peer == echo_peer() => {
                        log.lock().expect("log").answers += 1;
                        send(Event::RemoteDescription { peer: publisher(), sdp }).await;
                    }
                    Some(Input::PeerFailed { peer, reason }) => {
                        log.lock().expect("log").failed_peers.push(format!("{peer}: {reason}"));
                    }
                    Some(Input::Leave) | None => {
                        send(Event::State(ConnectorState::Leaving)).await;
                        send(Event::State(ConnectorState::Left)).await;
                        return ConnectorState::Left;
                    }
                    Some(_) => {}
                },
                Some(()) = go.recv() => match ending {
                    Ending::DropsOut => {
                        let failure = Failure {
                            error: ConnectorError::ServerGone { reason: "the test pulled the plug".into() },
                            retryable: true,
                        };
                        send(Event::ClosePeer { peer: echo_peer() }).await;
                        send(Event::ParticipantLeft { participant: echo() }).await;
                        send(Event::ClosePeer { peer: publisher() }).await;
                        send(Event::State(ConnectorState::Failed(failure.clone()))).await;
                        return ConnectorState::Failed(failure);
                    }
                    Ending::KeyThenLeave => {
                        // Step one: a key of the participant's own at index 0, not the link's.
                        send(Event::ParticipantKey {
                            participant: echo(),
                            key_index: 0,
                            material: KeyMaterial::from_bytes(&mut [0x5a; 32]),
                        })
                        .await;
                    }
                },
            }
        }
    });
    (Signalling { inputs: input_tx, events: event_rx, driver }, go_tx, heard)
}

/// Waits for Stats until `check` holds, at most `limit`.
async fn wait_stats(
    events: &mut mpsc::UnboundedReceiver<MeetingEvent>,
    seen: &mut Vec<MeetingEvent>,
    limit: Duration,
    what: &str,
    check: impl Fn(&meeting::Stats) -> bool,
) -> meeting::Stats {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = None;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if let MeetingEvent::Stats(s) = &event {
            if check(s) {
                return s.clone();
            }
            last = Some(s.clone());
        } else {
            seen.push(event);
        }
    }
    panic!("{what}: not within {limit:?}; last stats {last:?}; events {seen:?}");
}

fn has_interface() -> bool {
    // The same test the peers make: a UDP socket "connected" outwards gets a non-loopback source address.
    let Ok(socket) = std::net::UdpSocket::bind("0.0.0.0:0") else { return false };
    socket.connect("192.0.2.1:9").is_ok() && socket.local_addr().is_ok_and(|a| !a.ip().is_loopback())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_drops_the_supervisor_rejoins_keys_change_and_the_room_leaves() {
    if !has_interface() {
        eprintln!("no non-loopback interface here: skipped");
        return;
    }
    let link = MeetingLink::parse(LINK).expect("link");
    let t0 = Instant::now();
    let mut supervisor = Supervisor::new();
    supervisor.handle_input(t0, RoomInput::Join(link));
    let start = std::iter::from_fn(|| supervisor.poll_output()).find_map(|o| match o {
        RoomOutput::StartJoin(l) => Some(l),
        _ => None,
    });
    let link = start.expect("the supervisor starts a join");

    // Meeting 1: joins, the room's frames come back sealed and decode; then the server drops out.
    let (signalling, go, heard) = scripted_server(Ending::DropsOut);
    let (_control_tx, control_rx) = mpsc::channel::<Control>(1);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let muted = Arc::new(AtomicBool::new(false));
    let first = tokio::spawn(meeting::run(
        settings(),
        link.clone(),
        signalling,
        Instant::now(),
        Arc::clone(&muted),
        control_rx,
        events_tx,
    ));
    let mut seen = Vec::new();
    let s = wait_stats(&mut events, &mut seen, Duration::from_secs(30), "meeting 1 decodes its own frames", |s| {
        s.frames_decoded >= 10
    })
    .await;
    assert_eq!(s.decrypt_failures, 0, "every frame opened with the link's key: {s:?}");
    assert!(s.video_frames_sent >= 10 && s.bytes_received > 0, "{s:?}");
    let _ = go.send(()).await;
    let end = tokio::time::timeout(Duration::from_secs(15), first).await.expect("meeting 1 ends").expect("task");
    let end = end.expect("media started");
    assert!(matches!(&end, ConnectorState::Failed(f) if f.retryable), "{end:?}");
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert!(seen.contains(&MeetingEvent::Joined), "{seen:?}");
    assert!(seen.contains(&MeetingEvent::Encryption {
        verification: Some(cloakroom_engine::keys::verification_string(link.key().expect("key")))
    }));
    assert!(seen.contains(&MeetingEvent::ParticipantJoined { participant: echo(), display: "Echo".into() }));
    assert!(seen.contains(&MeetingEvent::ParticipantLeft { participant: echo() }));
    {
        let h = heard.lock().expect("heard");
        assert_eq!((h.offers, h.answers), (1, 1));
        assert!(h.failed_peers.is_empty(), "{:?}", h.failed_peers);
    }

    // The supervisor hears the meeting was lost and retries after its back-off (virtual time).
    let t1 = t0 + Duration::from_secs(20);
    supervisor.handle_input(t0 + Duration::from_secs(1), RoomInput::Joined);
    supervisor.handle_input(t1, RoomInput::Disconnected("server gone: the test pulled the plug".into()));
    let status = supervisor.status();
    assert_eq!((status.state, status.retry_in_ms), (RoomState::Reconnecting, Some(1000)));
    supervisor.handle_timeout(t1 + Duration::from_secs(1));
    let link = std::iter::from_fn(|| supervisor.poll_output())
        .find_map(|o| match o {
            RoomOutput::StartJoin(l) => Some(l),
            _ => None,
        })
        .expect("the supervisor rejoins");

    // Meeting 2: joins again; a wrong key announced for the participant makes their frames fail to open.
    let (signalling, go, _heard) = scripted_server(Ending::KeyThenLeave);
    let (control_tx, control_rx) = mpsc::channel::<Control>(1);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let second = tokio::spawn(meeting::run(settings(), link, signalling, Instant::now(), muted, control_rx, events_tx));
    let mut seen = Vec::new();
    let before = wait_stats(&mut events, &mut seen, Duration::from_secs(30), "meeting 2 decodes again", |s| {
        s.frames_decoded >= 10
    })
    .await;
    assert_eq!(before.decrypt_failures, 0);
    let _ = go.send(()).await;
    wait_stats(&mut events, &mut seen, Duration::from_secs(15), "the participant's own key is used", |s| {
        s.decrypt_failures >= 10
    })
    .await;
    let _ = control_tx.send(Control::Leave).await;
    let end = tokio::time::timeout(Duration::from_secs(15), second).await.expect("meeting 2 ends").expect("task");
    assert_eq!(end.expect("media started"), ConnectorState::Left);
}
