//! The Jitsi session fed untrusted XMPP (after a real login and room join):
//! never panics, whatever the server or the other participants send, and
//! everything it sends is well-formed XML.
#![no_main]

use std::time::{Duration, Instant};

use cloakroom_connectors::jitsi::{JitsiSession, JitsiSettings};
use cloakroom_connectors::signalling::{Input, Output, Transmit};
use libfuzzer_sys::fuzz_target;

const ROOM: &str = "r@conference.meet.jitsi";

fn drain(s: &mut JitsiSession) -> Vec<String> {
    let mut sent = Vec::new();
    loop {
        match s.poll_output() {
            Output::Transmit(Transmit::Send(xml)) => {
                assert!(xml.parse::<minidom::Element>().is_ok(), "we send XML: {xml}");
                sent.push(xml);
            }
            Output::Timeout(_) => return sent,
            _ => {}
        }
    }
}

/// The id attribute of the last stanza sent.
fn last_id(sent: &[String]) -> String {
    let last = sent.last().map(String::as_str).unwrap_or_default();
    last.parse::<minidom::Element>().ok().and_then(|e| e.attr("id").map(str::to_owned)).unwrap_or_default()
}

fuzz_target!(|messages: Vec<(u8, &str)>| {
    let now = Instant::now();
    let settings = JitsiSettings {
        domain: "meet.jitsi".into(),
        room_jid: ROOM.into(),
        focus: "focus.meet.jitsi".into(),
        display: "room".into(),
        require_e2ee: true,
        endpoint: Some("0c0ffee1".into()),
    };
    let mut s = JitsiSession::new(now, settings);
    let _ = s.handle_input(now, Input::TransportConnected);
    drain(&mut s);
    // Log in and join as prosody answers, so the fuzzer starts in the room.
    let mut feed = |s: &mut JitsiSession, xml: String| {
        let _ = s.handle_input(now, Input::TransportReceived(xml));
        drain(s)
    };
    feed(&mut s, r#"<stream:features xmlns:stream="http://etherx.jabber.org/streams"><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>ANONYMOUS</mechanism></mechanisms></stream:features>"#.into());
    feed(&mut s, r#"<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>"#.into());
    let sent = feed(&mut s, r#"<stream:features xmlns:stream="http://etherx.jabber.org/streams"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></stream:features>"#.into());
    let sent = feed(
        &mut s,
        format!(
            r#"<iq xmlns="jabber:client" type="result" id="{}"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid>a@meet.jitsi/r</jid></bind></iq>"#,
            last_id(&sent)
        ),
    );
    feed(
        &mut s,
        format!(
            r#"<iq xmlns="jabber:client" type="result" id="{}"><conference xmlns="http://jitsi.org/protocol/focus" ready="true"/></iq>"#,
            last_id(&sent)
        ),
    );
    feed(
        &mut s,
        format!(
            r#"<presence xmlns="jabber:client" from="{ROOM}/0c0ffee1"><x xmlns="http://jabber.org/protocol/muc#user"><status code="110"/></x></presence>"#
        ),
    );
    for (i, (delay, text)) in messages.into_iter().enumerate() {
        let t = now + Duration::from_millis(u64::from(delay) * 100 * (i as u64 + 1));
        let _ = s.handle_input(t, Input::TransportReceived(text.to_owned()));
        let _ = s.handle_input(t, Input::Tick);
        drain(&mut s);
    }
});
