//! The idle room's QR scanner (issue 17): people join by holding a meeting
//! link's QR code (a phone showing its meeting's code) up to the camera.
//!
//! ```text
//! camera → videorate (≤ SCAN_FPS, drop only) → convert → scale (SCAN_WIDTH wide) → GRAY8 → appsink
//!                                                     decoder thread: rqrr ← one frame at a time ┘
//! ```
//!
//! The appsink callback only copies the small grey picture and hands it
//! to the decoder thread (a channel of one: a picture that arrives while
//! the last is still being looked at is dropped), so GStreamer's streaming
//! thread never waits for the decoder. What the codes say goes to the
//! caller's callback, on the decoder thread; deciding what to do with
//! them (dedupe, countdown, the join rules) is the daemon's.
//!
//! The scanner holds the camera: it runs only while the room is idle and
//! the admin page's preview ([`crate::check`]) is not running.
//!
//! Cost, measured as the daemon's CPU time over 60 s (`/proc/PID/stat`) on
//! this 2-core x86 machine with a 640×480 still-picture camera, less the
//! same daemon with scanning off (0.4 % of a core): with this crate built
//! at `opt-level = 2` (release builds optimise it too) +0.5 % of a core
//! with no code in view and +0.9 % with one held up (decoded once a
//! second, [`SKIP_AFTER_CODE`]); an unoptimised debug build +1.7 % and
//! +2.3 %. One picture takes 1.6 ms to find no code in and 13 ms to read
//! one from (`decode_cost`, optimised).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use gst::prelude::*;

use crate::MediaError;
use crate::pipeline::{DeviceRole, Pipeline, caps_filter, make, set_number, set_text};

/// Pictures looked at per second.
pub const SCAN_FPS: i32 = 3;
/// Width of the grey pictures looked at; the height keeps the camera's shape.
/// A phone's code held at arm's length fills a third of a 640-px picture:
/// at 320 px a 33-module code still gets 3 px per module.
pub const SCAN_WIDTH: i32 = 320;
/// Pictures left out after one in which a code was read: a code held up
/// is seen once a second instead of [`SCAN_FPS`] times (enough to know it
/// is still there), since reading one costs about eight times as much as
/// finding none (13 ms against 1.6 ms a picture, measured with
/// `decode_cost` on this 2-core x86 machine).
pub const SKIP_AFTER_CODE: u32 = SCAN_FPS as u32 - 1;
/// Longest text read from a code that is passed on (a meeting link is
/// at most 2 KiB; anything longer is not one).
pub const MAX_CODE_TEXT: usize = 4096;

/// Where the scanner's pictures come from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScanSource {
    /// A V4L2 camera, e.g. `/dev/video0`.
    Camera { device: PathBuf },
    /// A generated picture (`camera = "test"`): never holds a code.
    Test,
    /// A still picture (PNG) shown as a live camera forever
    /// (`camera = "image:/path.png"`): for tests and demos.
    Image { path: PathBuf },
}

impl ScanSource {
    /// The source for the room's `devices.camera` setting: `test`,
    /// `image:<path to a PNG>`, `auto` (the first camera found, `None`
    /// without one) or a device path.
    pub fn from_camera_setting(camera: &str, first_found: Option<&Path>) -> Option<Self> {
        match camera {
            "test" => Some(Self::Test),
            "auto" => first_found.map(|d| Self::Camera { device: d.to_owned() }),
            other => match other.strip_prefix("image:") {
                Some(path) => Some(Self::Image { path: path.into() }),
                None => Some(Self::Camera { device: other.into() }),
            },
        }
    }
}

/// A running scanner. Stops its pipeline and decoder thread when dropped.
pub struct QrScanner {
    pipeline: Pipeline,
    stop: Arc<AtomicBool>,
    counters: Arc<ScanCounters>,
}

/// What the scanner has done so far.
#[derive(Debug, Default)]
pub struct ScanCounters {
    /// Pictures the decoder looked at.
    pub scanned: AtomicU64,
    /// Pictures dropped because the decoder was still busy.
    pub dropped: AtomicU64,
    /// Pictures left out after one with a code ([`SKIP_AFTER_CODE`]).
    pub skipped: AtomicU64,
    /// Codes read.
    pub codes: AtomicU64,
}

impl QrScanner {
    /// Builds and starts the scanner; every code read is passed to
    /// `on_code` on the decoder thread (again for every picture it is in:
    /// deduplicating is the caller's).
    pub fn start(source: &ScanSource, on_code: impl FnMut(String) + Send + 'static) -> Result<Self, MediaError> {
        let mut pipeline = Pipeline::new("qr-scan")?;
        let mut elements = source_branch(&mut pipeline, source)?;
        let rate = make("videorate", "scan-rate")?;
        set_text(&rate, "drop-only", "true")?;
        set_number(&rate, "max-rate", i64::from(SCAN_FPS))?;
        let grey = gst::Caps::builder("video/x-raw")
            .field("format", "GRAY8")
            .field("width", SCAN_WIDTH)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let sink = gst_app::AppSink::builder().name("scan").max_buffers(1).drop(true).sync(true).build();
        elements.extend([
            rate,
            make("videoconvert", "scan-convert")?,
            make("videoscale", "scan-scale")?,
            caps_filter("scan-caps", &grey)?,
            sink.clone().upcast(),
        ]);
        pipeline.chain(&elements)?;

        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(ScanCounters::default());
        let (tx, rx) = mpsc::sync_channel::<GreyPicture>(1);
        let dropped = Arc::clone(&counters);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(picture) = GreyPicture::from_sample(&sample) {
                        if tx.try_send(picture).is_err() {
                            dropped.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let thread_stop = Arc::clone(&stop);
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("qr-decode".into())
            .spawn(move || decode_loop(&rx, &thread_stop, &thread_counters, on_code))
            .map_err(|e| pipeline.failure("qr-decode thread", e.to_string()))?;
        if let Err(e) = pipeline.start() {
            stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
        Ok(Self { pipeline, stop, counters })
    }

    /// The first error the pipeline reported (camera gone, picture that
    /// cannot be read), if any.
    pub fn check(&self) -> Result<(), MediaError> {
        self.pipeline.check()
    }

    /// What the scanner has done so far.
    pub fn counters(&self) -> &ScanCounters {
        &self.counters
    }
}

impl Drop for QrScanner {
    fn drop(&mut self) {
        // The decoder thread sees it within a second; the pipeline stops with `Pipeline`'s drop.
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for QrScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QrScanner").field("pipeline", &self.pipeline.label()).finish_non_exhaustive()
    }
}

/// Reads every code in a grey picture (`width` × `height`, one byte a
/// pixel, rows without padding). Codes that do not decode, and texts
/// longer than [`MAX_CODE_TEXT`], are left out.
pub fn read_codes(width: usize, height: usize, luma: &[u8]) -> Vec<String> {
    if width == 0 || height == 0 || luma.len() < width * height {
        return Vec::new();
    }
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| luma[y * width + x]);
    image
        .detect_grids()
        .iter()
        .filter_map(|grid| grid.decode().ok())
        .map(|(_, text)| text)
        .filter(|text| text.len() <= MAX_CODE_TEXT)
        .collect()
}

/// One small grey picture, rows without padding.
struct GreyPicture {
    width: usize,
    height: usize,
    luma: Vec<u8>,
}

impl GreyPicture {
    fn from_sample(sample: &gst::Sample) -> Option<Self> {
        let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer()?, &info).ok()?;
        let (width, height) = (info.width() as usize, info.height() as usize);
        let stride = usize::try_from(*info.stride().first()?).ok()?;
        let data = frame.plane_data(0).ok()?;
        let mut luma = Vec::with_capacity(width * height);
        for y in 0..height {
            luma.extend_from_slice(data.get(y * stride..y * stride + width)?);
        }
        Some(Self { width, height, luma })
    }
}

fn decode_loop(
    rx: &mpsc::Receiver<GreyPicture>,
    stop: &AtomicBool,
    counters: &ScanCounters,
    mut on_code: impl FnMut(String),
) {
    // Pictures left out after one with a code (see [`SKIP_AFTER_CODE`]).
    let mut skip = 0;
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(_) if skip > 0 => {
                skip -= 1;
                counters.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Ok(picture) => {
                counters.scanned.fetch_add(1, Ordering::Relaxed);
                let codes = read_codes(picture.width, picture.height, &picture.luma);
                if !codes.is_empty() {
                    skip = SKIP_AFTER_CODE;
                }
                for text in codes {
                    counters.codes.fetch_add(1, Ordering::Relaxed);
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    on_code(text);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn source_branch(pipeline: &mut Pipeline, source: &ScanSource) -> Result<Vec<gst::Element>, MediaError> {
    match source {
        ScanSource::Camera { device } => {
            let shown = device.display().to_string();
            if !device.exists() {
                return Err(MediaError::CameraMissing { device: shown });
            }
            let camera = make("v4l2src", "scan-camera")?;
            set_text(&camera, "device", &shown)?;
            pipeline.device("scan-camera", DeviceRole::Camera, &shown);
            Ok(vec![camera])
        }
        ScanSource::Test => {
            let camera = make("videotestsrc", "scan-camera")?;
            set_text(&camera, "is-live", "true")?;
            set_text(&camera, "pattern", "ball")?;
            // Made small in the first place: nothing to scale.
            let caps = gst::Caps::builder("video/x-raw")
                .field("width", SCAN_WIDTH)
                .field("height", SCAN_WIDTH * 3 / 4)
                .field("framerate", gst::Fraction::new(SCAN_FPS, 1))
                .build();
            Ok(vec![camera, caps_filter("scan-test-caps", &caps)?])
        }
        ScanSource::Image { path } => {
            let shown = path.display().to_string();
            if !path.is_file() {
                return Err(MediaError::CameraMissing { device: format!("image:{shown}") });
            }
            let file = make("filesrc", "scan-camera")?;
            set_text(&file, "location", &shown)?;
            pipeline.device("scan-camera", DeviceRole::Camera, &format!("image:{shown}"));
            let freeze = make("imagefreeze", "scan-freeze")?;
            // Live like a camera (GStreamer 1.18+); an older one is paced by the appsink.
            let _ = set_text(&freeze, "is-live", "true");
            let rate = gst::Caps::builder("video/x-raw").field("framerate", gst::Fraction::new(SCAN_FPS, 1)).build();
            Ok(vec![file, make("pngdec", "scan-png")?, freeze, caps_filter("scan-image-rate", &rate)?])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    /// A PNG of a QR code of `text`, 8 px a module with a quiet zone, in the
    /// middle of a 640×480 grey picture (a phone held up to the camera).
    fn code_picture(text: &str, path: &Path) {
        let code = qrcode::QrCode::new(text.as_bytes()).expect("code");
        let modules = code.to_colors();
        let side = code.width();
        let (w, h, px) = (640usize, 480usize, 8usize);
        let mut luma = vec![160u8; w * h];
        let total = (side + 8) * px;
        let (x0, y0) = ((w - total) / 2, (h - total) / 2);
        for y in 0..total {
            for x in 0..total {
                let (mx, my) = ((x / px).wrapping_sub(4), (y / px).wrapping_sub(4));
                let dark = mx < side && my < side && modules[my * side + mx] == qrcode::Color::Dark;
                luma[(y0 + y) * w + x0 + x] = if dark { 20 } else { 240 };
            }
        }
        let file = std::fs::File::create(path).expect("png file");
        let mut png = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
        png.set_color(png::ColorType::Grayscale);
        png.set_depth(png::BitDepth::Eight);
        png.write_header().expect("png header").write_image_data(&luma).expect("png data");
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("cloakroom-qr-{}-{name}", std::process::id()))
    }

    fn wait_for_code(codes: &Mutex<Vec<String>>, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(c) = codes.lock().expect("codes").first() {
                return Some(c.clone());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    #[test]
    fn camera_settings_name_the_source() {
        let first = Path::new("/dev/video2");
        assert_eq!(ScanSource::from_camera_setting("test", None), Some(ScanSource::Test));
        assert_eq!(ScanSource::from_camera_setting("auto", None), None);
        assert_eq!(
            ScanSource::from_camera_setting("auto", Some(first)),
            Some(ScanSource::Camera { device: first.into() })
        );
        assert_eq!(
            ScanSource::from_camera_setting("image:/tmp/a.png", None),
            Some(ScanSource::Image { path: "/tmp/a.png".into() })
        );
        assert_eq!(
            ScanSource::from_camera_setting("/dev/video0", None),
            Some(ScanSource::Camera { device: "/dev/video0".into() })
        );
    }

    #[test]
    fn a_still_picture_of_a_code_is_read_through_the_pipeline() {
        let path = temp("link.png");
        let link = "janus+wss://sfu.example/janus?room=1#e2ee=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        code_picture(link, &path);
        let codes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&codes);
        let scanner = QrScanner::start(&ScanSource::Image { path: path.clone() }, move |c| {
            seen.lock().expect("codes").push(c);
        })
        .expect("scanner starts");
        let code = wait_for_code(&codes, Duration::from_secs(20));
        scanner.check().expect("no pipeline error");
        assert_eq!(code.as_deref(), Some(link));
        // A few pictures a second, not the source's every picture.
        let t0 = Instant::now();
        let pictures = |c: &ScanCounters| c.scanned.load(Ordering::Relaxed) + c.skipped.load(Ordering::Relaxed);
        let (before, decoded) = (pictures(scanner.counters()), scanner.counters().scanned.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_secs(3));
        let seconds = t0.elapsed().as_secs_f64();
        let rate = (pictures(scanner.counters()) - before) as f64 / seconds;
        assert!(rate <= f64::from(SCAN_FPS) + 1.0, "{rate} pictures a second");
        assert!(rate >= 1.5, "{rate} pictures a second");
        // With the code in view, only every third picture is decoded.
        let decoded = (scanner.counters().scanned.load(Ordering::Relaxed) - decoded) as f64 / seconds;
        assert!(decoded <= 1.7, "{decoded} pictures decoded a second with a code in view");
        drop(scanner);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_test_camera_gives_pictures_without_codes() {
        let codes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&codes);
        let scanner =
            QrScanner::start(&ScanSource::Test, move |c| seen.lock().expect("codes").push(c)).expect("scanner");
        let deadline = Instant::now() + Duration::from_secs(20);
        while scanner.counters().scanned.load(Ordering::Relaxed) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(scanner.counters().scanned.load(Ordering::Relaxed) >= 3, "pictures scanned");
        assert!(codes.lock().expect("codes").is_empty());
    }

    #[test]
    fn a_missing_picture_or_camera_is_named() {
        let e = QrScanner::start(&ScanSource::Image { path: "/nonexistent/cloakroom.png".into() }, drop)
            .expect_err("no picture");
        assert_eq!(e.to_string(), "camera image:/nonexistent/cloakroom.png is not present");
        let e = QrScanner::start(&ScanSource::Camera { device: "/dev/video-cloakroom-none".into() }, drop)
            .expect_err("no camera");
        assert!(matches!(e, MediaError::CameraMissing { .. }), "{e}");
    }

    /// Milliseconds per picture of [`read_codes`] with and without a code
    /// in view (`cargo test -p cloakroom-media --lib qr::tests::decode_cost -- --ignored --nocapture`).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn decode_cost() {
        let path = temp("cost.png");
        code_picture("janus+wss://sfu.example/janus?room=1", &path);
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).expect("png")));
        let mut reader = decoder.read_info().expect("png info");
        let mut luma = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut luma).expect("png frame");
        // Halved to SCAN_WIDTH as the pipeline does (every other pixel and row).
        let small: Vec<u8> =
            (0..240).flat_map(|y| (0..320).map(move |x| (x, y))).map(|(x, y)| luma[y * 2 * 640 + x * 2]).collect();
        let blank = vec![128u8; 320 * 240];
        for (what, picture) in [("with a code", &small), ("without", &blank)] {
            let t0 = Instant::now();
            let mut read = 0;
            for _ in 0..20 {
                read += read_codes(320, 240, picture).len();
            }
            println!("{what}: {:.2} ms a picture, {read} codes read", t0.elapsed().as_secs_f64() * 1000.0 / 20.0);
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn random_bytes_read_no_code() {
        let mut x = 0x1234_5678u32;
        let luma: Vec<u8> = (0..320 * 240)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(read_codes(320, 240, &luma).is_empty());
        assert!(read_codes(320, 240, &luma[..10]).is_empty(), "short buffers are refused, not indexed");
    }

    /// The room screen with the countdown on its banner, saved as a PNG
    /// when `CLOAKROOM_SHOTS` names a directory (the screenshot of issue 17).
    #[test]
    fn the_countdown_shows_on_the_room_screen() {
        use crate::layout::Canvas;
        use crate::screen::{DisplayOutput, IdleScreen, IdleScreenSettings};
        let mut screen = IdleScreen::start(&IdleScreenSettings {
            room_name: "Aquarium\npair: 123456   cert: AB:CD:EF:01:23:45:67:89…".into(),
            link: "https://192.0.2.7:8443/join#t=0123456789abcdef0123456789abcdef".into(),
            canvas: Canvas { width: 640, height: 360 },
            framerate: 5,
            display: DisplayOutput::Snapshots,
        })
        .expect("idle screen");
        let words =
            "Joining janus+wss://sfu.example/janus?room=1234 in 4 s\nPress mute, or Stop on the room's page, to cancel";
        let plain = screen.snapshot(Duration::from_secs(10)).expect("picture");
        screen.set_status(Some(words)).expect("banner");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut shown = None;
        while Instant::now() < deadline {
            if let Some(s) = screen.snapshot(Duration::from_secs(1)) {
                let changed = (0..s.height)
                    .flat_map(|y| (0..s.width).map(move |x| (x, y)))
                    .filter(|&(x, y)| s.luma(x, y).abs_diff(plain.luma(x, y)) > 40)
                    .count();
                if changed > 500 {
                    shown = Some(s);
                    break;
                }
            }
        }
        let shot = shown.expect("the banner changes the picture");
        if let Some(dir) = std::env::var_os("CLOAKROOM_SHOTS") {
            let path = Path::new(&dir).join("qr-countdown-room-screen.png");
            let file = std::fs::File::create(&path).expect("screenshot file");
            let mut png = png::Encoder::new(std::io::BufWriter::new(file), shot.width, shot.height);
            png.set_color(png::ColorType::Rgba);
            png.set_depth(png::BitDepth::Eight);
            png.write_header().expect("png header").write_image_data(&shot.rgba).expect("png data");
        }
    }
}
