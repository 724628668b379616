//! `cloakroomd --config` as systemd runs it: READY=1 once the page is up,
//! WATCHDOG=1 at half of WatchdogSec, STOPPING=1 and exit 0 on SIGTERM; a
//! bad config refused at start with the key named. The real binary, the
//! real notification socket protocol (a datagram socket we bind here, as
//! systemd does), no meeting.

use std::io::Read as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cloakroomd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("cloakroom.toml");
    let text = format!(
        "[devices]\ncamera = \"test\"\nmicrophone = \"test\"\nspeaker = \"none\"\n\
         [web]\nbind = \"127.0.0.1\"\nhttps_port = 0\nhttp_port = 0\n\
         [paths]\nstate_dir = \"{}\"\n{extra}",
        dir.join("state").display()
    );
    std::fs::write(&path, text).expect("config");
    path
}

/// A scratch dir with a config, a bound notification socket (30 s read
/// timeout) and the `cloakroomd --config … --print-pairing` command that
/// notifies it.
fn appliance_with_notify(name: &str) -> (PathBuf, UnixDatagram, Command) {
    let dir = scratch(name);
    let config = write_config(&dir, "");
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut command = Command::new(env!("CARGO_BIN_EXE_cloakroomd"));
    command.args(["--config", config.to_str().expect("utf-8"), "--print-pairing"]).env("NOTIFY_SOCKET", &socket_path);
    (dir, socket, command)
}

#[test]
fn notifies_systemd_ready_watchdog_and_stopping() {
    let (dir, socket, mut command) = appliance_with_notify("notify");
    let mut child = command
        .env("WATCHDOG_USEC", "400000")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cloakroomd");
    let started = Instant::now();

    let mut messages = Vec::new();
    let mut buf = [0u8; 512];
    // READY=1 first, then the watchdog pings (every 200 ms).
    while messages.iter().filter(|m: &&String| m.as_str() == "WATCHDOG=1").count() < 3 {
        let n = socket.recv(&mut buf).expect("a notification within 30 s");
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let ready = messages.iter().position(|m| m.starts_with("READY=1")).expect("READY=1 sent");
    let first_ping = messages.iter().position(|m| m == "WATCHDOG=1").expect("WATCHDOG=1 sent");
    assert!(ready < first_ping, "READY before the watchdog pings: {messages:?}");
    assert!(messages[ready].contains("STATUS=idle"), "{messages:?}");
    eprintln!("READY=1 after {} ms", started.elapsed().as_millis());

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let mut stopping = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !stopping && Instant::now() < deadline {
        let n = socket.recv(&mut buf).expect("STOPPING=1 within the timeout");
        stopping = &buf[..n] == b"STOPPING=1";
    }
    assert!(stopping, "STOPPING=1 sent on SIGTERM");
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "exit after SIGTERM: {exit:?}");

    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut out).expect("read stdout");
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("read stderr");
    let code = out.lines().find_map(|l| l.strip_prefix("code ")).expect("--print-pairing prints the code");
    assert_eq!(code.len(), 6);
    assert!(!err.contains(code), "the pairing code is not in the logs");
    assert!(err.contains("web page ready"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_config_is_refused_with_the_key_named() {
    let dir = scratch("badconfig");
    let config = write_config(&dir, "[video]\nframerate = 0\n");
    let out = Command::new(env!("CARGO_BIN_EXE_cloakroomd"))
        .args(["--config", config.to_str().expect("utf-8")])
        .output()
        .expect("run cloakroomd");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("video.framerate: 0 is not between 1 and 60"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let missing = Command::new(env!("CARGO_BIN_EXE_cloakroomd"))
        .args(["--config", dir.join("nonexistent.toml").to_str().expect("utf-8")])
        .output()
        .expect("run cloakroomd");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nonexistent.toml"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_closed_stdout_loses_lines_not_the_daemon() {
    // A pipe whose reading end is already closed: every line written to
    // stdout fails with EPIPE, as when the program reading the status lines
    // or pairing codes has gone away.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let (dir, socket, mut command) = appliance_with_notify("closedstdout");
    let mut child = command.stdout(writer).stderr(Stdio::piped()).spawn().expect("start cloakroomd");
    let mut buf = [0u8; 512];
    let mut ready = false;
    while !ready {
        let n = socket.recv(&mut buf).expect("READY=1 within 30 s");
        ready = buf[..n].starts_with(b"READY=1");
    }
    // The pairing code is printed once the room screen is up, after READY.
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().expect("try_wait").is_none(), "cloakroomd still running with stdout closed");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("read stderr");
    assert!(exit.success(), "exit after SIGTERM: {exit:?}\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
