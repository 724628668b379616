//! The web page and API with the real supervisor and a pretend meeting (no
//! media, no connector): for the browser tests and for trying the page.
//!
//! `cargo run -p cloakroom-appliance --example appliance-demo -- --config FILE`
//!
//! Prints `url …`, `code …` (the pairing code, as the room screen would show
//! it), `fingerprint …` and `join-path …` (the scan link's path), one per
//! line, then serves until killed. A join "succeeds" after 300 ms with one
//! pretend participant.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloakroom_appliance::config::ConfigStore;
use cloakroom_appliance::pairing::{OsRandom, Pairing};
use cloakroom_appliance::supervisor::{Input, MediaStats, Output};
use cloakroom_appliance::web::{LogBuffer, SupervisedRoom, WebContext, WebServer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let config = match (args.next().as_deref(), args.next()) {
        (Some("--config"), Some(path)) => PathBuf::from(path),
        _ => return Err("usage: appliance-demo --config FILE".into()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(config))
}

async fn run(config: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let store = ConfigStore::load(&config)?;
    let mut pairing = Pairing::new(Box::new(OsRandom::new()?), store.settings().admin_password.clone());
    let code = pairing.code().expose().to_owned();
    let join_path = format!("/join#t={}", pairing.join_token(Instant::now()).expose());
    let (room, mut outputs) = SupervisedRoom::new();
    room.handle_input(Input::Devices(serde_json::json!({
        "cameras": [{ "path": "/dev/video0", "name": "Pretend UVC camera", "formats": ["YUYV 1280x720@30"] }],
        "microphones": [{ "name": "hw:CARD=Speakerphone,DEV=0" }],
        "speakers": [{ "name": "hw:CARD=Speakerphone,DEV=0" }],
    })));
    let logs = LogBuffer::default();
    logs.push("info", "appliance demo started (pretend media)");
    let ctx = WebContext {
        room: room.clone(),
        pairing: Arc::new(Mutex::new(pairing)),
        config: Arc::new(Mutex::new(store)),
        logs,
    };
    let web = WebServer::start(ctx).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "url https://{}/", web.https_addr)?;
    writeln!(out, "http http://{}/", web.http_addr)?;
    writeln!(out, "code {code}")?;
    writeln!(out, "fingerprint {}", web.fingerprint)?;
    writeln!(out, "join-path {join_path}")?;
    out.flush()?;
    drop(out);

    while let Some(output) = outputs.recv().await {
        let room = room.clone();
        match output {
            Output::StartJoin(_) => {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    room.handle_input(Input::Joined);
                    room.handle_input(Input::ParticipantJoined { id: "1".into(), display: "Ana (browser)".into() });
                    room.handle_input(Input::Media(MediaStats {
                        send_bitrate_kbps: 1450,
                        receive_bitrate_kbps: 980,
                        packet_loss_percent: 0.4,
                        frames_sent: 900,
                        frames_received: 870,
                    }));
                });
            }
            Output::Leave => {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    room.handle_input(Input::Left);
                });
            }
            Output::Timeout(at) => {
                tokio::spawn(async move {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                    room.handle_timeout();
                });
            }
            _ => {}
        }
    }
    Ok(())
}
