//! The Janus VideoRoom session fed untrusted server messages (after a real
//! join): never panics, whatever Janus sends, and every output it produces
//! is valid JSON.
#![no_main]

use std::time::{Duration, Instant};

use cloakroom_connectors::janus::{JanusSession, JanusSettings, Room};
use cloakroom_connectors::signalling::{Input, Output, Transmit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|messages: Vec<(u8, &str)>| {
    let now = Instant::now();
    let settings = JanusSettings { room: Room::Number(1), display: "room".into(), publish: true, subscribe: true };
    let mut s = JanusSession::new(now, settings);
    let _ = s.handle_input(now, Input::TransportConnected);
    for (i, (delay, text)) in messages.into_iter().enumerate() {
        let t = now + Duration::from_millis(u64::from(delay) * 100 * (i as u64 + 1));
        let _ = s.handle_input(t, Input::TransportReceived(text.to_owned()));
        let _ = s.handle_input(t, Input::Tick);
        loop {
            match s.poll_output() {
                Output::Transmit(Transmit::Send(json)) => {
                    serde_json::from_str::<serde_json::Value>(&json).expect("we send JSON");
                }
                Output::Timeout(_) => break,
                _ => {}
            }
        }
    }
});
