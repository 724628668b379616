//! `media-bench`: what the send pipeline costs on this machine.
//!
//! For every video encoder GStreamer has here, at 640×480@20 and
//! 1280×720@30, runs the send pipeline (test camera with clock overlay →
//! scale → encoder → appsink, plus test microphone → webrtcdsp → opusenc →
//! appsink) for 20 s in a fresh child process and prints its CPU use (% of
//! one core, from /proc/self/stat) and memory (RSS and peak RSS, from
//! /proc/self/status). Numbers, not a pass/fail test: compare them with a
//! browser doing the same.
//!
//! The picture is a test pattern: `ball` (default; a moving ball and a clock,
//! cheap like a quiet room) or `bars` (colour bars with a noisy corner,
//! closer to a detailed camera picture).
//!
//! Usage: `media-bench [--seconds N] [--pattern ball|bars]`.

#![forbid(unsafe_code)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cloakroom_media::encoder::{EncoderKind, available_encoders, installed};
use cloakroom_media::ladder::VideoMode;
use cloakroom_media::send::{
    AudioSendSettings, AudioSender, AudioSource, TestPattern, VideoSendSettings, VideoSender, VideoSource,
};

/// (width, height, frame rate, bitrate in kbit/s)
const MODES: [(u32, u32, u32, u32); 2] = [(640, 480, 20, 800), (1280, 720, 30, 2500)];
/// Time to let the pipeline settle before measuring.
const WARM_UP: Duration = Duration::from_secs(2);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--run") {
        return child(&args[1..]);
    }
    let mut seconds = 20;
    let mut pattern = "ball".to_owned();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--seconds" => seconds = rest.next().context("--seconds needs a number")?.parse()?,
            "--pattern" => pattern = rest.next().context("--pattern needs ball or bars")?.clone(),
            other => bail!("unknown argument {other}; usage: media-bench [--seconds N] [--pattern ball|bars]"),
        }
    }
    test_pattern(&pattern)?;
    parent(seconds, &pattern)
}

fn test_pattern(name: &str) -> Result<TestPattern> {
    match name {
        "ball" => Ok(TestPattern::Ball),
        "bars" => Ok(TestPattern::Bars),
        other => bail!("unknown pattern {other}: ball or bars"),
    }
}

fn parent(seconds: u64, pattern: &str) -> Result<()> {
    let encoders: Vec<EncoderKind> =
        available_encoders(installed).into_iter().filter(|k| k.codec().is_video()).collect();
    let exe = std::env::current_exe()?;
    println!(
        "send pipeline (video + Opus audio), pattern {pattern}, {seconds} s per run after {} s warm-up, one process per run",
        WARM_UP.as_secs()
    );
    println!("cpu: {}", cpu_model());
    println!();
    println!(
        "| {:<12} | {:<12} | {:>8} | {:>8} | {:>9} | {:>8} | {:>9} | {:>10} |",
        "encoder", "mode", "target", "fps out", "kbit/s", "CPU %", "RSS MiB", "peak MiB"
    );
    println!("|{:-<14}|{:-<14}|{:->10}|{:->10}|{:->11}|{:->10}|{:->11}|{:->12}|", "", "", "", "", "", "", "", "");
    for (w, h, fps, kbps) in MODES {
        for encoder in &encoders {
            let out = Command::new(&exe)
                .args(["--run", encoder.factory(), &w.to_string(), &h.to_string(), &fps.to_string()])
                .arg(kbps.to_string())
                .arg(seconds.to_string())
                .arg(pattern)
                .output()?;
            let mode = format!("{w}×{h}@{fps}");
            if !out.status.success() {
                println!(
                    "| {:<12} | {:<12} | failed: {}",
                    encoder.factory(),
                    mode,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                continue;
            }
            let line = String::from_utf8_lossy(&out.stdout);
            let v: Vec<f64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            let [fps_out, kbit, cpu, rss, peak] = v[..] else {
                bail!("child printed {line:?}");
            };
            println!(
                "| {:<12} | {:<12} | {:>8} | {:>8.1} | {:>9.0} | {:>8.1} | {:>9.1} | {:>10.1} |",
                encoder.factory(),
                mode,
                kbps,
                fps_out,
                kbit,
                cpu,
                rss / 1024.0,
                peak / 1024.0
            );
        }
    }
    Ok(())
}

/// One run: prints `fps kbit/s cpu% rss_kib peak_rss_kib`.
fn child(args: &[String]) -> Result<()> {
    let [factory, w, h, fps, kbps, secs, pattern] = args else {
        bail!("--run factory width height fps kbps seconds pattern");
    };
    let encoder =
        available_encoders(installed).into_iter().find(|k| k.factory() == factory).context("encoder not installed")?;
    let mode = VideoMode::new(w.parse()?, h.parse()?, fps.parse()?)?;
    let seconds: u64 = secs.parse()?;
    let mut settings =
        VideoSendSettings::new(VideoSource::Test { pattern: test_pattern(pattern)? }, encoder.codec(), mode);
    settings.encoder = Some(encoder);
    settings.bitrate_kbps = kbps.parse()?;

    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let (f, b) = (Arc::clone(&frames), Arc::clone(&bytes));
    let video = VideoSender::start(settings, move |frame| {
        f.fetch_add(1, Ordering::Relaxed);
        b.fetch_add(frame.data.len() as u64, Ordering::Relaxed);
    })?;
    // No receive pipeline here, so no echo probe: noise suppression only.
    let mut audio_settings = AudioSendSettings::new(AudioSource::Test);
    audio_settings.echo_cancel = false;
    let audio = AudioSender::start(audio_settings, |_| {})?;

    std::thread::sleep(WARM_UP);
    let (f0, b0, cpu0, t0) =
        (frames.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed), cpu_ticks()?, Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (f1, b1, cpu1, wall) =
        (frames.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed), cpu_ticks()?, t0.elapsed().as_secs_f64());
    video.check()?;
    audio.check()?;
    let cpu = (cpu1 - cpu0) as f64 / clock_ticks_per_second() / wall * 100.0;
    let fps_out = (f1 - f0) as f64 / wall;
    let kbit = (b1 - b0) as f64 * 8.0 / wall / 1000.0;
    println!("{fps_out} {kbit} {cpu} {} {}", status_kib("VmRSS:")?, status_kib("VmHWM:")?);
    Ok(())
}

/// utime + stime of this process, in clock ticks (proc(5), fields 14 and 15).
fn cpu_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name may hold spaces; fields are counted after its ')'.
    let rest = stat.rsplit_once(')').context("odd /proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state), so field 14 is index 11.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn status_kib(key: &str) -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with(key)).context("no such line")?;
    Ok(line.split_whitespace().nth(1).context("no value")?.parse()?)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .map(|m| format!("{m}, {} cores visible", std::thread::available_parallelism().map_or(0, |n| n.get())))
        .unwrap_or_else(|| "unknown".into())
}
