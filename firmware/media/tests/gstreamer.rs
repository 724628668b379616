//! Integration tests with real GStreamer on the host (videotestsrc,
//! audiotestsrc, appsink): encoders, Annex B, key frames, bitrate, quality
//! steps, the receive grid, the idle screen, device errors.
//!
//! Pipelines here are live and CPU-bound; they run one at a time (`SERIAL`)
//! so a busy two-core machine does not starve them into flaky timings.

use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gst::prelude::*;

use cloakroom_media::annexb::AccessUnit;
use cloakroom_media::devices::DeviceReport;
use cloakroom_media::encoder::{EncoderKind, available_encoders, installed};
use cloakroom_media::labels::TileEncryption;
use cloakroom_media::ladder::VideoMode;
use cloakroom_media::layout::{Canvas, GridLayout, Rect};
use cloakroom_media::receive::{AudioOutput, ReceivePipeline, ReceiveSettings};
use cloakroom_media::screen::{DisplayOutput, IdleScreen, IdleScreenSettings, Snapshot};
use cloakroom_media::send::{
    AudioSendSettings, AudioSender, AudioSource, TestPattern, VideoSendSettings, VideoSender, VideoSource,
};
use cloakroom_media::{Codec, EncodedFrame, MediaError};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

const QVGA: Canvas = Canvas { width: 320, height: 240 };

fn video_encoders() -> Vec<EncoderKind> {
    available_encoders(installed).into_iter().filter(|k| k.codec().is_video()).collect()
}

fn settings(encoder: EncoderKind, pattern: TestPattern) -> VideoSendSettings {
    let mut s = VideoSendSettings::new(
        VideoSource::Test { pattern },
        encoder.codec(),
        VideoMode::new(320, 240, 30).expect("valid mode"),
    );
    s.encoder = Some(encoder);
    s.bitrate_kbps = 500;
    s
}

fn start(settings: VideoSendSettings) -> (VideoSender, Receiver<EncodedFrame>) {
    let (tx, rx) = mpsc::channel();
    let sender = VideoSender::start(settings, move |f| {
        let _ = tx.send(f);
    })
    .expect("video sender starts");
    (sender, rx)
}

fn take(rx: &Receiver<EncodedFrame>, n: usize) -> Vec<EncodedFrame> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut frames = Vec::with_capacity(n);
    while frames.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(f) => frames.push(f),
            Err(_) => panic!("only {} of {n} frames arrived", frames.len()),
        }
    }
    frames
}

fn drain(rx: &Receiver<EncodedFrame>) {
    while rx.try_recv().is_ok() {}
}

fn mean_size(frames: &[EncodedFrame]) -> usize {
    frames.iter().map(|f| f.data.len()).sum::<usize>() / frames.len().max(1)
}

fn receive_settings(canvas: Canvas) -> ReceiveSettings {
    ReceiveSettings {
        canvas,
        framerate: 30,
        display: DisplayOutput::Snapshots,
        speaker: AudioOutput::Discard,
        self_view: false,
        encrypted: true,
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Share of pixels in `rect` brighter than `threshold`.
fn bright_share(s: &Snapshot, x0: u32, y0: u32, x1: u32, y1: u32, threshold: u8) -> f64 {
    let mut bright = 0u32;
    for y in y0..y1 {
        for x in x0..x1 {
            if s.luma(x, y) > threshold {
                bright += 1;
            }
        }
    }
    f64::from(bright) / f64::from((x1 - x0) * (y1 - y0))
}

#[test]
fn debian_encoders_are_found() {
    let found = video_encoders();
    assert!(found.contains(&EncoderKind::X264), "{found:?}");
    assert!(found.contains(&EncoderKind::Vp8), "{found:?}");
    assert!(installed("opusenc"));
    assert!(!installed("no-such-element-cloakroom"));
}

#[test]
fn every_encoder_encodes_frames_that_decode_back() {
    let _serial = serial();
    const N: usize = 30;
    for encoder in video_encoders() {
        let mut s = settings(encoder, TestPattern::Ball);
        s.keyframe_distance = 10;
        let (sender, rx) = start(s);
        assert_eq!(sender.encoder(), encoder);
        let frames = take(&rx, N);
        drop(sender);

        assert!(frames[0].keyframe, "{encoder}: first frame is a key frame");
        let keyframes = frames.iter().filter(|f| f.keyframe).count();
        assert!((2..=N / 2).contains(&keyframes), "{encoder}: {keyframes} key frames in {N} with distance 10");
        for f in &frames {
            assert_eq!(f.codec, encoder.codec());
            assert!(
                !f.data.is_empty() && f.data.len() < 320 * 240 * 3 / 2,
                "{encoder}: frame of {} bytes",
                f.data.len()
            );
            assert!(f.pts.is_some(), "{encoder}: frames carry timestamps");
        }

        let mut receive = ReceivePipeline::start(&receive_settings(QVGA)).expect("receive starts");
        receive.add_participant("peer", "Peer", Some(encoder.codec()), false).expect("participant added");
        for f in frames {
            receive.push("peer", f).expect("frame accepted");
        }
        wait_until(&format!("{encoder}: {N} decoded frames"), || {
            receive.decoded_video_frames("peer") == Some(N as u64)
        });
        receive.check().expect("no pipeline error");
    }
}

#[test]
fn h264_is_annex_b_with_parameter_sets_before_each_idr() {
    let _serial = serial();
    let h264: Vec<_> = video_encoders().into_iter().filter(|k| k.codec() == Codec::H264).collect();
    assert!(!h264.is_empty(), "x264enc at least");
    for encoder in h264 {
        let mut s = settings(encoder, TestPattern::Ball);
        s.keyframe_distance = 8;
        let (sender, rx) = start(s);
        let frames = take(&rx, 30);
        drop(sender);
        let mut idrs = 0;
        for (i, f) in frames.iter().enumerate() {
            let au = AccessUnit::parse(&f.data).unwrap_or_else(|e| panic!("{encoder}: frame {i} is not Annex B: {e}"));
            assert!(au.has_slice(), "{encoder}: frame {i} has no slice");
            assert_eq!(au.is_idr(), f.keyframe, "{encoder}: frame {i} flag vs NALs");
            if au.is_idr() {
                idrs += 1;
                assert!(au.has_parameter_sets_before_idr(), "{encoder}: IDR {i} lacks SPS/PPS: {:?}", au.nal_types);
            }
        }
        assert!(idrs >= 3, "{encoder}: {idrs} IDRs in 30 frames at distance 8");
    }
}

#[test]
fn forced_keyframe_arrives_within_two_frames() {
    let _serial = serial();
    for encoder in video_encoders() {
        let mut s = settings(encoder, TestPattern::Ball);
        s.keyframe_distance = 1000;
        let (sender, rx) = start(s);
        let warmup = take(&rx, 10);
        assert!(warmup[1..].iter().all(|f| !f.keyframe), "{encoder}: no natural key frame after the first");
        drain(&rx);
        sender.force_keyframe().expect("request accepted");
        let after = take(&rx, 2);
        assert!(
            after.iter().any(|f| f.keyframe),
            "{encoder}: no key frame within 2 frames: {:?}",
            after.iter().map(|f| f.keyframe).collect::<Vec<_>>()
        );
        if encoder.codec() == Codec::H264 {
            // A forced key frame must be a full starting point for a new viewer.
            let key = after.iter().find(|f| f.keyframe).map(|f| AccessUnit::parse(&f.data));
            let au = key.expect("found above").expect("Annex B");
            assert!(au.is_idr() && au.has_parameter_sets_before_idr(), "{encoder}: {:?}", au.nal_types);
        }
    }
}

#[test]
fn bitrate_change_is_honoured() {
    let _serial = serial();
    for encoder in video_encoders() {
        let mut s = settings(encoder, TestPattern::Bars);
        s.bitrate_kbps = 2000;
        s.keyframe_distance = 1000;
        let (mut sender, rx) = start(s);
        let high = take(&rx, 40);
        sender.set_bitrate(150).expect("bitrate set");
        assert_eq!(sender.bitrate_kbps(), 150);
        drain(&rx);
        let _settle = take(&rx, 10);
        let low = take(&rx, 30);
        let (high, low) = (mean_size(&high[10..]), mean_size(&low));
        assert!(low * 10 < high * 6, "{encoder}: mean frame {high} B at 2000 kbit/s, {low} B at 150 kbit/s");
    }
}

#[test]
fn quality_steps_change_the_encoded_size() {
    let _serial = serial();
    let (mut sender, rx) = start(settings(EncoderKind::X264, TestPattern::Ball));
    take(&rx, 5);
    assert_eq!(sender.negotiated_size(), Some((320, 240)));
    let down = sender.step_down().expect("stepped").expect("a rung below");
    assert_eq!(down, VideoMode::new(240, 180, 30).expect("valid"));
    drain(&rx);
    take(&rx, 10);
    assert_eq!(sender.negotiated_size(), Some((240, 180)));
    let up = sender.step_up().expect("stepped").expect("a rung above");
    assert_eq!(up.width, 320);
    drain(&rx);
    take(&rx, 10);
    assert_eq!(sender.negotiated_size(), Some((320, 240)));
    assert_eq!(sender.step_up().expect("no error"), None);
    sender.check().expect("no pipeline error");
}

#[test]
fn the_badge_says_when_the_meeting_is_not_encrypted() {
    let _serial = serial();
    let canvas = Canvas { width: 320, height: 240 };
    // Ink in the badge's corner: "end-to-end encrypted" is about half as
    // long again as "NOT encrypted", and starts further left.
    let ink = |encrypted: bool| {
        let receive =
            ReceivePipeline::start(&ReceiveSettings { encrypted, ..receive_settings(canvas) }).expect("receive starts");
        let shot = receive.snapshot(Duration::from_secs(5)).expect("a picture");
        write_png(&tmp(&format!("receive-badge-{encrypted}.png")), &shot);
        (bright_share(&shot, 0, 0, 320, 40, 180), bright_share(&shot, 0, 0, 200, 40, 180))
    };
    let (encrypted, encrypted_left) = ink(true);
    let (plain, plain_left) = ink(false);
    assert!(plain > 0.01, "a badge is shown for a meeting without a key: {plain}");
    assert!(encrypted > plain * 1.2, "different words: {encrypted} vs {plain}");
    assert!(encrypted_left > 0.002 && plain_left < 0.0005, "{encrypted_left} vs {plain_left}");
}

#[test]
fn receive_pipeline_shows_decoded_video_with_the_badge() {
    let _serial = serial();
    let canvas = Canvas { width: 320, height: 240 };
    let mut receive = ReceivePipeline::start(&receive_settings(canvas)).expect("receive starts");
    let before = receive.snapshot(Duration::from_secs(5)).expect("a picture with nobody in the meeting");
    assert_eq!((before.width, before.height), (320, 240));
    write_png(&tmp("receive-empty.png"), &before);
    // Bottom-left quarter: far from the badge, dark without participants.
    assert!(bright_share(&before, 0, 120, 160, 240, 100) < 0.01);
    // The badge: white text in the top-right corner.
    assert!(bright_share(&before, 160, 0, 320, 40, 180) > 0.01);

    receive.add_participant("alice", "Alice", Some(Codec::Vp8), false).expect("participant added");
    let (sender, rx) = start(settings(EncoderKind::Vp8, TestPattern::Snow));
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(f) = rx.recv_timeout(Duration::from_millis(100)) {
            receive.push("alice", f).expect("frame accepted");
        }
    }
    let decoded = receive.decoded_video_frames("alice").unwrap_or(0);
    assert!(decoded >= 30, "only {decoded} frames decoded");
    let after = receive.snapshot(Duration::from_secs(2)).expect("a picture");
    write_png(&tmp("receive-alice.png"), &after);
    let share = bright_share(&after, 0, 120, 160, 240, 100);
    assert!(share > 0.2, "noise should fill the tile, bright share {share}");

    // Alice leaves while her frames are still flowing: the screen goes back
    // to empty and the pipeline keeps running.
    for f in rx.try_iter() {
        receive.push("alice", f).expect("frame accepted");
    }
    receive.remove_participant("alice").expect("alice leaves");
    drop(sender);
    let mut gone = None;
    for _ in 0..5 {
        gone = receive.snapshot(Duration::from_secs(2));
    }
    let gone = gone.expect("pictures after alice left");
    let share = bright_share(&gone, 0, 120, 160, 240, 100);
    assert!(share < 0.01, "tile empty again, bright share {share}");
    receive.check().expect("no pipeline error");
}

#[test]
fn self_view_shows_the_local_camera_small_in_a_corner() {
    let _serial = serial();
    let canvas = Canvas { width: 640, height: 360 };
    let mut rs = receive_settings(canvas);
    rs.self_view = true;
    let receive = ReceivePipeline::start(&rs).expect("receive starts");
    let mut s = settings(EncoderKind::Vp8, TestPattern::Snow);
    s.self_view = true;
    let (sender, rx) = start(s);
    take(&rx, 15);
    let shot = receive.snapshot(Duration::from_secs(2)).expect("a picture");
    drop(sender);
    write_png(&tmp("receive-self-view.png"), &shot);
    let v = receive.layout().self_view;
    let (x0, y0) = (u32::try_from(v.x).expect("x"), u32::try_from(v.y).expect("y"));
    let (x1, y1) = (x0 + v.width as u32, y0 + v.height as u32);
    let inside = bright_share(&shot, x0 + 4, y0 + 4, x1 - 4, y1 - 4, 100);
    let left_of_it = bright_share(&shot, 0, y0, x0, y1, 100);
    assert!(inside > 0.2, "camera noise in the self-view: {inside}");
    assert!(left_of_it < 0.01, "nothing outside it: {left_of_it}");
}

#[test]
fn grid_relayouts_when_a_participant_leaves() {
    let _serial = serial();
    let canvas = Canvas { width: 640, height: 360 };
    let mut receive = ReceivePipeline::start(&receive_settings(canvas)).expect("receive starts");
    let base_inputs = receive.compositor_inputs();
    for id in ["a", "b", "c"] {
        receive.add_participant(id, id, Some(Codec::Vp8), true).expect("participant added");
    }
    let three = GridLayout::new(canvas, 3);
    assert_eq!((three.columns, three.rows), (2, 2));
    assert_eq!(receive.layout(), &three);
    for (id, rect) in ["a", "b", "c"].iter().zip(&three.tiles) {
        assert_eq!(receive.tile(id), Some(*rect), "{id} in the 2×2 grid");
    }
    assert_eq!(receive.compositor_inputs(), base_inputs + 3);

    receive.remove_participant("b").expect("b leaves");
    let two = GridLayout::new(canvas, 2);
    assert_eq!(receive.participants(), ["a", "c"]);
    assert_eq!(receive.tile("a"), Some(two.tiles[0]));
    assert_eq!(receive.tile("c"), Some(two.tiles[1]));
    assert_eq!(receive.tile("b"), None);
    assert_eq!(receive.compositor_inputs(), base_inputs + 2);
    assert!(matches!(receive.remove_participant("b"), Err(MediaError::UnknownParticipant { .. })));
    // The pipeline keeps running after the change.
    receive.snapshot(Duration::from_secs(2)).expect("pictures after the re-layout");
    receive.check().expect("no pipeline error");
}

/// VP8 frames of a uniform mid-grey picture: a tile showing them is grey
/// (luma 128) wherever nothing is drawn on it.
fn grey_vp8_frames(width: i32, height: i32, n: u32) -> Vec<EncodedFrame> {
    cloakroom_media::init().expect("GStreamer");
    let description = format!(
        "videotestsrc pattern=solid-color foreground-color=0xff808080 num-buffers={n} \
         ! video/x-raw,format=I420,width={width},height={height},framerate=30/1 \
         ! vp8enc deadline=1 ! appsink name=out sync=false"
    );
    let pipeline = gst::parse::launch(&description).expect("encoding pipeline");
    let bin = pipeline.clone().downcast::<gst::Bin>().expect("a bin");
    let sink = bin.by_name("out").and_then(|e| e.downcast::<gst_app::AppSink>().ok()).expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let mut frames = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().expect("a buffer");
        frames.push(EncodedFrame {
            data: buffer.map_readable().expect("readable").to_vec(),
            pts: None,
            duration: Some(Duration::from_millis(33)),
            keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            codec: Codec::Vp8,
        });
    }
    pipeline.set_state(gst::State::Null).expect("stopped");
    assert_eq!(frames.len(), n as usize);
    frames
}

/// Share of the pixels of `rect` (minus `except`) for which `pick` holds.
fn share_in(s: &Snapshot, rect: Rect, except: Option<Rect>, pick: impl Fn(u8) -> bool) -> f64 {
    let (mut hits, mut all) = (0u32, 0u32);
    for y in rect.y..rect.y + rect.height {
        for x in rect.x..rect.x + rect.width {
            let excepted = except.is_some_and(|e| x >= e.x && x < e.x + e.width && y >= e.y && y < e.y + e.height);
            if !excepted {
                all += 1;
                hits += u32::from(pick(s.luma(x as u32, y as u32)));
            }
        }
    }
    f64::from(hits) / f64::from(all.max(1))
}

/// A picture made after every change so far (the display keeps one older
/// picture queued).
fn fresh_snapshot(receive: &ReceivePipeline) -> Snapshot {
    let mut shot = None;
    for _ in 0..3 {
        shot = receive.snapshot(Duration::from_secs(2));
    }
    shot.expect("a picture")
}

#[test]
fn tiles_are_labelled_with_names_and_encryption_state() {
    let _serial = serial();
    let canvas = Canvas { width: 640, height: 360 };
    let mut receive = ReceivePipeline::start(&receive_settings(canvas)).expect("receive starts");
    // Two tiles of 320×360: grey pictures of that size fill them.
    let frames = grey_vp8_frames(320, 360, 20);
    receive.add_participant("ana", "Ana", Some(Codec::Vp8), false).expect("ana joins");
    receive.add_participant("bo", "Bo", Some(Codec::Vp8), false).expect("bo joins");
    for f in &frames {
        receive.push("ana", f.clone()).expect("frame accepted");
        receive.push("bo", f.clone()).expect("frame accepted");
    }
    wait_until("both decoded", || {
        receive.decoded_video_frames("ana") == Some(20) && receive.decoded_video_frames("bo") == Some(20)
    });
    let shot = fresh_snapshot(&receive);
    write_png(&tmp("receive-labels.png"), &shot);
    let not_grey = |l: u8| l.abs_diff(128) > 30;
    let (ana, bo) = (receive.label_band("ana").expect("ana's label"), receive.label_band("bo").expect("bo's label"));
    assert!(ana.width > bo.width, "\"Ana\" is longer than \"Bo\": {ana:?} {bo:?}");
    for id in ["ana", "bo"] {
        let (tile, band) = (receive.tile(id).expect("a tile"), receive.label_band(id).expect("a label"));
        assert_eq!((band.x, band.y + band.height), (tile.x, tile.y + tile.height), "{id}: bottom-left");
        let changed = share_in(&shot, band, None, not_grey);
        let ink = share_in(&shot, band, None, |l| l > 200);
        assert!(changed > 0.9, "{id}: the band is dark or text: {changed}");
        assert!(ink > 0.05, "{id}: white text in the band: {ink}");
        // The rest of the tile is the participant's grey picture; the top
        // 48 rows are left out for the grid's badge (top right).
        let rest = Rect { x: tile.x, y: 48, width: tile.width, height: tile.height - 48 };
        let elsewhere = share_in(&shot, rest, Some(band), not_grey);
        assert!(elsewhere < 0.002, "{id}: nothing drawn outside the band: {elsewhere}");
    }

    // A new name, then an encryption state: each time that band grows over
    // grey picture.
    for (id, old) in [("bo", bo), ("ana", ana)] {
        if id == "bo" {
            receive.set_name("bo", "Bartholomew").expect("renamed");
        } else {
            receive.set_encryption("ana", TileEncryption::CannotDecrypt).expect("state");
        }
        let shot = fresh_snapshot(&receive);
        write_png(&tmp(&format!("receive-labels-{id}-changed.png")), &shot);
        let new = receive.label_band(id).expect("a label");
        assert!(new.width > old.width + 20, "{id}: {old:?} → {new:?}");
        let grown = Rect { x: old.x + old.width + 2, width: new.width - old.width - 4, ..new };
        let changed = share_in(&shot, grown, None, not_grey);
        assert!(changed > 0.9, "{id}: the longer label is drawn: {changed}");
        assert!(share_in(&shot, grown, None, |l| l > 200) > 0.03, "{id}: with text");
    }

    // Bo leaves: Ana's picture fills the screen (pillarboxed: grey from
    // x = 160 to 480) and where Bo's label was is grey picture again.
    let bo = receive.label_band("bo").expect("bo's label");
    receive.remove_participant("bo").expect("bo leaves");
    assert_eq!(receive.label_band("bo"), None);
    let ana = receive.label_band("ana").expect("ana's label");
    assert_eq!((ana.x, ana.y + ana.height), (0, 360), "ana's label at the screen's bottom-left");
    let shot = fresh_snapshot(&receive);
    write_png(&tmp("receive-labels-one.png"), &shot);
    let where_bo_was = share_in(&shot, bo, Some(ana), not_grey);
    assert!(where_bo_was < 0.002, "no label where bo's was: {where_bo_was}");
    assert!(share_in(&shot, ana, None, |l| l > 200) > 0.03, "ana still labelled");
    receive.check().expect("no pipeline error");
}

#[test]
fn bad_participant_input_is_refused_not_panicked() {
    let _serial = serial();
    let mut receive = ReceivePipeline::start(&receive_settings(QVGA)).expect("receive starts");
    receive.add_participant("p", "P", Some(Codec::H264), false).expect("added");
    assert!(matches!(receive.add_participant("p", "P", None, true), Err(MediaError::DuplicateParticipant { .. })));
    let vp8 = EncodedFrame { data: vec![1, 2, 3], pts: None, duration: None, keyframe: true, codec: Codec::Vp8 };
    assert!(matches!(receive.push("p", vp8.clone()), Err(MediaError::CodecMismatch { .. })));
    assert!(matches!(receive.push("nobody", vp8), Err(MediaError::UnknownParticipant { .. })));
}

#[test]
fn missing_camera_is_a_typed_error() {
    let _serial = serial();
    for device in ["/dev/video-cloakroom-missing", "/dev/null"] {
        let s = VideoSendSettings::new(
            VideoSource::Camera { device: device.into() },
            Codec::Vp8,
            VideoMode::new(320, 240, 30).expect("valid"),
        );
        match VideoSender::start(s, |_| {}) {
            Err(MediaError::CameraMissing { device: d }) => assert_eq!(d, device),
            Err(other) => panic!("{device}: wrong error {other:?}"),
            Ok(_) => panic!("{device}: started without a camera"),
        }
    }
}

#[test]
fn missing_microphone_is_a_typed_error() {
    let _serial = serial();
    let device = "hw:CARD=NoSuchCloakroomCard,DEV=0";
    let mut s = AudioSendSettings::new(AudioSource::Microphone { device: device.into() });
    s.echo_cancel = false;
    match AudioSender::start(s, |_| {}) {
        Err(MediaError::MicrophoneMissing { device: d }) => assert_eq!(d, device),
        Err(other) => panic!("wrong error {other:?}"),
        Ok(_) => panic!("started without a microphone"),
    }
}

#[test]
fn rebuild_keeps_the_stepped_mode_and_frames_flow_again() {
    let _serial = serial();
    let (mut sender, rx) = start(settings(EncoderKind::Vp8, TestPattern::Ball));
    take(&rx, 3);
    sender.step_down().expect("stepped");
    sender.rebuild().expect("rebuilt");
    drain(&rx);
    let frames = take(&rx, 5);
    assert!(frames[0].keyframe, "a rebuilt encoder starts with a key frame");
    assert_eq!(sender.negotiated_size(), Some((240, 180)));
    sender.check().expect("no pipeline error");
}

#[test]
fn microphone_audio_is_echo_cancelled_encoded_and_decoded() {
    let _serial = serial();
    // The receive pipeline owns the echo probe, so it starts first.
    let mut receive = ReceivePipeline::start(&receive_settings(QVGA)).expect("receive starts");
    receive.add_participant("room", "Room", None, true).expect("participant added");
    let (tx, rx) = mpsc::channel();
    let sender = AudioSender::start(AudioSendSettings::new(AudioSource::Test), move |f| {
        let _ = tx.send(f);
    })
    .expect("audio sender starts with echo cancellation");
    let packets = take(&rx, 50);
    sender.check().expect("no audio pipeline error");
    drop(sender);
    // The first packet is shorter by the encoder's look-ahead.
    let durations: Vec<_> = packets[1..].iter().filter_map(|p| p.duration).collect();
    assert_eq!(durations.len(), packets.len() - 1, "every packet has a duration");
    assert!(
        durations.iter().all(|d| *d == Duration::from_millis(20)),
        "20 ms frames: {:?}",
        &durations[..durations.len().min(5)]
    );
    assert!(packets.iter().all(|p| p.codec == Codec::Opus && p.keyframe));
    assert!(packets.iter().all(|p| !p.data.is_empty() && p.data.len() < 1500));
    let n = packets.len() as u64;
    for p in packets {
        receive.push("room", p).expect("packet accepted");
    }
    // With in-band FEC on, opusdec holds the last packet back until the next
    // one shows whether it needs recovering.
    wait_until(&format!("{} decoded Opus packets", n - 1), || {
        receive.decoded_audio_frames("room").unwrap_or(0) >= n - 1
    });
    receive.check().expect("no receive pipeline error");
}

#[test]
fn idle_screen_snapshot_decodes_back_to_the_link() {
    let _serial = serial();
    let link = "https://cloakroom.local/pair?room=board-room-2";
    let screen = IdleScreen::start(&IdleScreenSettings {
        room_name: "Board room 2".into(),
        link: link.into(),
        canvas: Canvas { width: 640, height: 480 },
        framerate: 10,
        display: DisplayOutput::Snapshots,
    })
    .expect("idle screen starts");
    // Skip the first pictures: the QR branch may join a frame late. The
    // first picture can take seconds on a loaded machine (fonts load).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pictures = 0;
    let mut shot = None;
    while pictures < 3 && Instant::now() < deadline {
        if let Some(s) = screen.snapshot(Duration::from_secs(1)) {
            pictures += 1;
            shot = Some(s);
        }
    }
    screen.check().expect("no pipeline error");
    let shot = shot.expect("a picture of the idle screen");

    let path = tmp("idle-screen.png");
    write_png(&path, &shot);
    let (width, height, luma) = read_png_luma(&path);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| luma[y * width + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code on the idle screen");
    let (_, content) = grids[0].decode().expect("QR code decodes");
    assert_eq!(content, link);

    // Room name at the top and clock at the bottom: white text on the dark
    // background outside the QR code.
    let qr = screen.qr_rect();
    let qr_top = u32::try_from(qr.y).expect("on screen");
    let qr_bottom = u32::try_from(qr.y + qr.height).expect("on screen");
    assert!(bright_share(&shot, 0, 0, 640, qr_top, 180) > 0.005, "room name");
    assert!(bright_share(&shot, 0, qr_bottom, 640, 480, 180) > 0.005, "clock");
}

#[test]
fn device_report_is_json_and_clear_when_nothing_is_plugged_in() {
    let report = DeviceReport::discover();
    let json = serde_json::to_value(&report).expect("serialises");
    for key in ["cameras", "microphones", "speakers", "encoders", "decoders", "notes"] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    let encoders = json["encoders"].as_array().expect("a list");
    let x264 = serde_json::json!({"element": "x264enc", "codec": "h264", "hardware": false});
    let vp8 = serde_json::json!({"element": "vp8enc", "codec": "vp8", "hardware": false});
    assert!(encoders.contains(&x264), "{json}");
    assert!(encoders.contains(&vp8), "{json}");
    let text = report.to_string();
    if report.cameras.is_empty() {
        assert!(text.contains("no camera found"), "{text}");
    }
    if report.microphones.is_empty() {
        assert!(text.contains("no microphone found"), "{text}");
    }
}

/// Where pictures go for a human to look at after a run.
fn tmp(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn write_png(path: &std::path::Path, shot: &Snapshot) {
    let file = std::fs::File::create(path).expect("create png");
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), shot.width, shot.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("png header");
    writer.write_image_data(&shot.rgba).expect("png data");
}

fn read_png_luma(path: &std::path::Path) -> (usize, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).expect("open png"));
    let mut reader = decoder.read_info().expect("png info");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    assert_eq!(info.color_type, png::ColorType::Rgba);
    let luma = buf[..info.buffer_size()]
        .chunks_exact(4)
        .map(|p| ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000) as u8)
        .collect();
    (info.width as usize, info.height as usize, luma)
}

#[test]
fn a_notice_about_the_room_crosses_the_top_of_the_grid_and_goes_again() {
    let _serial = serial();
    let canvas = Canvas { width: 640, height: 360 };
    let mut receive = ReceivePipeline::start(&receive_settings(canvas)).expect("receive starts");
    let frames = grey_vp8_frames(640, 360, 10);
    receive.add_participant("ana", "Ana", Some(Codec::Vp8), false).expect("ana joins");
    for f in &frames {
        receive.push("ana", f.clone()).expect("frame accepted");
    }
    wait_until("decoded", || receive.decoded_video_frames("ana") == Some(10));
    // The top band, where the notice goes (top left, clear of the badge at the top right).
    let top = Rect { x: 16, y: 16, width: 360, height: 14 };
    let changed = |a: &Snapshot, b: &Snapshot| {
        let (mut n, mut all) = (0u32, 0u32);
        for y in top.y..top.y + top.height {
            for x in top.x..top.x + top.width {
                all += 1;
                n += u32::from(a.luma(x as u32, y as u32).abs_diff(b.luma(x as u32, y as u32)) > 40);
            }
        }
        f64::from(n) / f64::from(all)
    };
    let before = fresh_snapshot(&receive);
    receive.set_notice(Some("Camera unavailable: the device went away")).expect("notice");
    let with = fresh_snapshot(&receive);
    write_png(&tmp("receive-notice.png"), &with);
    assert!(changed(&before, &with) > 0.05, "text across the top: {}", changed(&before, &with));
    receive.set_notice(None).expect("cleared");
    let after = fresh_snapshot(&receive);
    assert!(changed(&before, &after) < 0.01, "gone again: {}", changed(&before, &after));
}
