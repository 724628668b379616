//! The config file survives `kill -9` of its writer at random moments: after
//! each kill the file parses as exactly the old or the new config.
//!
//! The writer is this test binary re-executed with `CLOAKROOM_CRASH_WRITER`
//! set, running only `crash_writer_child`, which rewrites the file in a loop.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cloakroom_appliance::config::{ConfigFile, parse_config, render_config, write_atomic};

const WRITER_ENV: &str = "CLOAKROOM_CRASH_WRITER";
const KILLS: usize = 200;

fn two_configs() -> (ConfigFile, ConfigFile) {
    let mut a = ConfigFile::default();
    a.room.name = "A".repeat(64);
    a.devices.camera = "/dev/video-a-".to_owned() + &"a".repeat(100);
    a.video.framerate = 15;
    let mut b = ConfigFile::default();
    b.room.name = "B".repeat(64);
    b.devices.microphone = "hw:CARD=b,DEV=0".to_owned() + &"b".repeat(100);
    b.video.codec = "h264".to_owned();
    b.video.framerate = 60;
    (a, b)
}

/// The writer: does nothing unless re-executed by the test below.
#[test]
fn crash_writer_child() {
    let Ok(path) = std::env::var(WRITER_ENV) else { return };
    let (a, b) = two_configs();
    let texts = [render_config(&a), render_config(&b)];
    for i in 0.. {
        write_atomic(Path::new(&path), texts[i % 2].as_bytes(), 0o644).expect("write");
    }
}

#[test]
fn config_is_old_or_new_after_kill_9() {
    if std::env::var_os(WRITER_ENV).is_some() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("cloakroom-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("cloakroom.toml");
    let (a, b) = two_configs();
    write_atomic(&path, render_config(&a).as_bytes(), 0o644).expect("first write");
    let exe = std::env::current_exe().expect("test binary");
    // xorshift64: a fixed seed makes the kill moments reproducible in shape.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let (mut seen_a, mut seen_b, mut torn_temp) = (0, 0, 0);
    let started = Instant::now();
    for i in 0..KILLS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_micros(2_000 + x % 40_000);
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_writer_child", "--test-threads=1", "-q"])
            .env(WRITER_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
        child.wait().expect("reap");
        // A temp file left behind (`.cloakroom.toml.<random>.tmp`) means the
        // kill landed between open and rename.
        for entry in std::fs::read_dir(&dir).expect("dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".cloakroom.toml.")
                && name.ends_with(".tmp")
                && std::fs::remove_file(entry.path()).is_ok()
            {
                torn_temp += 1;
            }
        }
        let text = std::fs::read_to_string(&path).expect("file still there");
        let parsed = parse_config(&text).unwrap_or_else(|e| panic!("kill {i}: torn file: {e}\n{text}"));
        if parsed == a {
            seen_a += 1;
        } else if parsed == b {
            seen_b += 1;
        } else {
            panic!("kill {i}: neither old nor new config:\n{text}");
        }
        assert!(started.elapsed() < Duration::from_secs(90), "too slow: {i} kills in 90 s");
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{KILLS} kills: config A {seen_a} times, B {seen_b} times, {torn_temp} kills mid-write, in {:?}",
        started.elapsed()
    );
    assert!(seen_b > 0, "the writer never got to write: kills came too early");
    assert!(torn_temp > 0, "no kill landed inside a write; the test did not test anything");
}
