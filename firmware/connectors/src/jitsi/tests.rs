//! The Jitsi connector against captured lib-jitsi-meet stanzas, in virtual time.

use std::time::{Duration, Instant};

use minidom::Element;

use super::jingle::{announced_ssrcs, jingle_to_sdp, sdp_to_contents};
use super::session::{JitsiSession, JitsiSettings, LEAVE_TIMEOUT, PING_INTERVAL, REQUEST_TIMEOUT};
use super::xml::{X, attr, kids, ns};
use crate::ConnectorError;
use crate::signalling::{
    Connector as _, ConnectorState, Direction, Event, Input, Output, ParticipantId, PeerId, Transmit,
};

const ROOM: &str = "probe58261@conference.meet.jitsi";
const OTHER: &str = "4a8a99a2";

fn fixture(name: &str) -> String {
    let path = format!("{}/src/jitsi/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).trim().to_owned()
}

fn parse(xml: &str) -> Element {
    xml.parse().unwrap_or_else(|e| panic!("not XML ({e}): {xml}"))
}

/// An SDP offer as the engine's WebRTC stack (webrtc-rs) writes one for a
/// peer that sends and receives Opus and VP8, candidates gathered.
const OUR_OFFER: &str = "v=0\r\n\
o=- 8154712387498713486 604384224 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=fingerprint:sha-256 0E:1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7\r\n\
a=extmap-allow-mixed\r\n\
a=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 0.0.0.0\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=ice-ufrag:kVbQOiKgMLaEHvUX\r\n\
a=ice-pwd:yqYNwXVwkWZNiWqaSdDMUMqpmmCnYcpN\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtcp-fb:111 transport-cc \r\n\
a=extmap:1 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=ssrc:1111 cname:cloakroom\r\n\
a=ssrc:1111 msid:cloakroom audio\r\n\
a=msid:cloakroom audio\r\n\
a=sendrecv\r\n\
a=candidate:167090039 1 udp 2130706431 10.231.9.1 50000 typ host\r\n\
a=candidate:167090040 1 udp 1694498815 192.0.2.7 50001 typ srflx raddr 10.231.9.1 rport 50000\r\n\
a=end-of-candidates\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=ice-ufrag:kVbQOiKgMLaEHvUX\r\n\
a=ice-pwd:yqYNwXVwkWZNiWqaSdDMUMqpmmCnYcpN\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack \r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtcp-fb:96 ccm fir\r\n\
a=ssrc:2222 cname:cloakroom\r\n\
a=ssrc:2222 msid:cloakroom video\r\n\
a=sendrecv\r\n";

/// The lines of `sdp` that start with `prefix`.
fn lines<'a>(sdp: &'a str, prefix: &'a str) -> Vec<&'a str> {
    sdp.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn their_session_accept_becomes_an_sdp_answer() {
    let iq = parse(&fixture("session-accept.xml"));
    let jingle = iq.get_child("jingle", ns::JINGLE).expect("jingle");
    let sdp = jingle_to_sdp(jingle, false).expect("converts");
    assert_eq!(lines(&sdp, "m="), ["m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126", lines(&sdp, "m=video")[0]]);
    assert!(lines(&sdp, "m=video")[0].starts_with("m=video 9 UDP/TLS/RTP/SAVPF 45 98 96 "));
    assert_eq!(lines(&sdp, "a=group:"), ["a=group:BUNDLE 0 1"]);
    assert_eq!(lines(&sdp, "a=ice-ufrag:"), ["a=ice-ufrag:Pnk/", "a=ice-ufrag:Pnk/"]);
    assert_eq!(lines(&sdp, "a=setup:"), ["a=setup:active", "a=setup:active"]);
    assert!(sdp.contains("a=fingerprint:sha-256 4F:6D:5C:DD:C9:40:D6:92:83:BE:F6:40:80:17:39:B0:2A:B0:5B:8E:4A:DE:A6:C0:53:9B:0C:2B:2A:5D:03:C0\r\n"));
    assert!(sdp.contains("a=rtpmap:111 opus/48000/2\r\n"));
    assert!(sdp.contains("a=fmtp:111 minptime=10;useinbandfec=1\r\n"));
    assert!(sdp.contains("a=rtpmap:96 VP8/90000\r\n"));
    assert!(sdp.contains("a=rtcp-fb:96 nack pli\r\n"));
    assert!(sdp.contains("a=ssrc-group:FID 2182582443 2618842071\r\n"));
    assert!(sdp.contains("a=ssrc:1934744839 cname:4a8a99a2-a0\r\n"));
    assert_eq!(lines(&sdp, "a=sendrecv").len(), 2);
    assert_eq!(lines(&sdp, "a=rtcp-mux").len(), 2);
    assert!(sdp.contains("a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n"));
    // RED's bare parameter ("111/111") stays a bare value.
    assert!(sdp.contains("a=fmtp:63 111/111\r\n"));
    assert_eq!(announced_ssrcs(jingle), [1934744839, 2182582443, 2618842071]);
}

#[test]
fn their_session_initiate_becomes_an_sdp_offer_with_its_sources() {
    let iq = parse(&fixture("session-initiate-as-sent.xml"));
    let jingle = iq.get_child("jingle", ns::JINGLE).expect("jingle");
    let sdp = jingle_to_sdp(jingle, true).expect("converts");
    assert_eq!(lines(&sdp, "a=setup:"), ["a=setup:actpass", "a=setup:actpass"]);
    assert!(sdp.contains("a=ssrc:3305039279 msid:0ae081b8-audio-0-1 aece5142-7e34-41a0-8403-2370cc9c1426-1\r\n"));
    assert_eq!(lines(&sdp, "a=mid:"), ["a=mid:0", "a=mid:1"]);
}

#[test]
fn our_sdp_offer_becomes_jingle_with_jitsi_source_names() {
    let contents = sdp_to_contents(OUR_OFFER, "0c0ffee1", true).expect("converts");
    let jingle = X::new("jingle", ns::JINGLE).a("action", "session-initiate").a("sid", "s1").children(contents).build();
    let group = jingle.get_child("group", ns::JINGLE_GROUPING).expect("bundle group");
    assert_eq!(attr(group, "semantics"), "BUNDLE");
    let contents: Vec<&Element> = kids(&jingle, "content", ns::JINGLE).collect();
    assert_eq!(contents.len(), 2);
    for (content, (mid, media, source)) in
        contents.iter().zip([("0", "audio", "0c0ffee1-a0"), ("1", "video", "0c0ffee1-v0")])
    {
        assert_eq!(attr(content, "name"), mid);
        assert_eq!(attr(content, "creator"), "initiator");
        assert_eq!(attr(content, "senders"), "both");
        let d = content.get_child("description", ns::JINGLE_RTP).expect("description");
        assert_eq!(attr(d, "media"), media);
        let s = d.get_child("source", ns::JINGLE_SSMA).expect("source");
        assert_eq!(attr(s, "name"), source);
        let t = content.get_child("transport", ns::JINGLE_ICE_UDP).expect("transport");
        assert_eq!(attr(t, "ufrag"), "kVbQOiKgMLaEHvUX");
        let fp = t.get_child("fingerprint", ns::JINGLE_DTLS).expect("fingerprint");
        assert_eq!(attr(fp, "setup"), "actpass");
        assert!(fp.text().starts_with("0E:1F:2A"));
    }
    let audio_t = contents[0].get_child("transport", ns::JINGLE_ICE_UDP).expect("transport");
    let candidates: Vec<&Element> = kids(audio_t, "candidate", ns::JINGLE_ICE_UDP).collect();
    assert_eq!(candidates.len(), 2);
    assert_eq!(attr(candidates[1], "type"), "srflx");
    assert_eq!(attr(candidates[1], "rel-addr"), "10.231.9.1");
    let video = contents[1].get_child("description", ns::JINGLE_RTP).expect("video");
    let vp8 = video.get_child("payload-type", ns::JINGLE_RTP).expect("vp8");
    assert_eq!((attr(vp8, "id"), attr(vp8, "name"), attr(vp8, "clockrate")), ("96", "VP8", "90000"));
    assert_eq!(kids(vp8, "rtcp-fb", ns::JINGLE_RTCP_FB).count(), 3);

    // And back: what the other side would read is the same media.
    let back = jingle_to_sdp(&jingle, true).expect("round trip");
    assert!(back.contains("a=rtpmap:111 opus/48000/2\r\n"));
    assert!(back.contains("a=fmtp:111 minptime=10;useinbandfec=1\r\n"));
    assert!(back.contains(
        "a=candidate:167090040 1 udp 1694498815 192.0.2.7 50001 typ srflx raddr 10.231.9.1 rport 50000 generation 0\r\n"
    ));
    assert!(back.contains("a=ssrc:2222 msid:cloakroom video\r\n"));
}

#[test]
fn hostile_jingle_is_refused_not_injected_into_sdp() {
    for bad in [
        // A line break inside a value would add SDP lines.
        r#"<jingle xmlns="urn:xmpp:jingle:1"><content name="0"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"><payload-type id="111" name="opus&#10;a=evil" clockrate="48000"/></description><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="u" pwd="p"/></content></jingle>"#,
        r#"<jingle xmlns="urn:xmpp:jingle:1"><content name="0 1"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"/><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="u" pwd="p"/></content></jingle>"#,
        r#"<jingle xmlns="urn:xmpp:jingle:1"><content name="0"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="application"/><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="u" pwd="p"/></content></jingle>"#,
        r#"<jingle xmlns="urn:xmpp:jingle:1"><content name="0"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"><payload-type id="300" name="x" clockrate="1"/></description><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="u" pwd="p"/></content></jingle>"#,
        r#"<jingle xmlns="urn:xmpp:jingle:1"><content name="0"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"/></content></jingle>"#,
        r#"<jingle xmlns="urn:xmpp:jingle:1"/>"#,
    ] {
        assert!(jingle_to_sdp(&parse(bad), false).is_err(), "{bad}");
    }
}

/// Drives a session; collects what it sends and the events it raises.
struct Harness {
    now: Instant,
    session: JitsiSession,
    sent: Vec<Element>,
    events: Vec<Event>,
    transmits: Vec<Transmit>,
}

impl Harness {
    fn new(require_e2ee: bool) -> Self {
        let now = Instant::now();
        let settings = JitsiSettings {
            domain: "meet.jitsi".into(),
            room_jid: ROOM.into(),
            focus: "focus.meet.jitsi".into(),
            display: "Board room".into(),
            require_e2ee,
            endpoint: Some("0c0ffee1".into()),
        };
        let mut h =
            Self { now, session: JitsiSession::new(now, settings), sent: vec![], events: vec![], transmits: vec![] };
        h.drain();
        h
    }

    fn drain(&mut self) -> Instant {
        loop {
            match self.session.poll_output() {
                Output::Transmit(Transmit::Send(text)) => self.sent.push(parse(&text)),
                Output::Transmit(t) => self.transmits.push(t),
                Output::Event(e) => self.events.push(e),
                Output::Timeout(t) => return t,
            }
        }
    }

    fn input(&mut self, input: Input) -> Result<(), ConnectorError> {
        let r = self.session.handle_input(self.now, input);
        self.drain();
        r
    }

    fn recv(&mut self, xml: &str) {
        self.input(Input::TransportReceived(xml.to_owned())).expect("XMPP");
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.input(Input::Tick).expect("tick");
    }

    fn last_sent(&self) -> &Element {
        self.sent.last().expect("something sent")
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Logs in and joins the room as prosody and the focus stand-in answer.
    fn join(&mut self) {
        assert_eq!(self.transmits, [Transmit::Connect]);
        self.input(Input::TransportConnected).expect("connected");
        assert!(self.last_sent().is("open", ns::FRAMING));
        assert_eq!(attr(self.last_sent(), "to"), "meet.jitsi");
        self.recv(r#"<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" from="meet.jitsi" id="s1" version="1.0"/>"#);
        self.recv(r#"<stream:features xmlns:stream="http://etherx.jabber.org/streams"><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>ANONYMOUS</mechanism></mechanisms></stream:features>"#);
        assert!(self.last_sent().is("auth", ns::SASL));
        assert_eq!(attr(self.last_sent(), "mechanism"), "ANONYMOUS");
        self.recv(r#"<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>"#);
        assert!(self.last_sent().is("open", ns::FRAMING));
        self.recv(r#"<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" from="meet.jitsi" id="s2" version="1.0"/>"#);
        self.recv(r#"<stream:features xmlns:stream="http://etherx.jabber.org/streams"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></stream:features>"#);
        let bind = self.last_sent().clone();
        assert!(bind.has_child("bind", ns::BIND));
        self.recv(&format!(
            r#"<iq xmlns="jabber:client" type="result" id="{}"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid>abc@meet.jitsi/r1</jid></bind></iq>"#,
            attr(&bind, "id")
        ));
        let focus = self.last_sent().clone();
        assert_eq!(attr(&focus, "to"), "focus.meet.jitsi");
        let conference = focus.get_child("conference", ns::FOCUS).expect("conference request");
        assert_eq!(attr(conference, "room"), ROOM);
        // The focus stand-in's real answer, with our request's id.
        let answer = fixture("focus-conference-result.xml")
            .replace("f8943d21-6593-43af-9d85-472a0c1d4985:sendIQ", attr(&focus, "id"))
            .replace("probe58261@conference.meet.jitsi", ROOM);
        self.recv(&answer);
        let presence = self.last_sent().clone();
        assert!(presence.is("presence", ns::CLIENT));
        assert_eq!(attr(&presence, "to"), format!("{ROOM}/0c0ffee1"));
        assert!(presence.has_child("x", ns::MUC));
        let features = presence.get_child("features", ns::CLIENT).expect("features");
        assert!(kids(features, "feature", ns::CLIENT).any(|f| attr(f, "var") == "https://jitsi.org/meet/e2ee"));
        for key in ["jitsi_participant_e2ee.idKey.curve25519", "jitsi_participant_e2ee.idKey.ed25519"] {
            let text = presence.get_child(key, ns::CLIENT).expect(key).text();
            assert_eq!(text.len(), 43, "{key}: unpadded base64 of 32 bytes");
        }
        assert_eq!(presence.get_child("nick", ns::NICK).expect("nick").text(), "Board room");
        assert!(self.session.state() != &ConnectorState::InMeeting);
        self.recv(&format!(
            r#"<presence xmlns="jabber:client" from="{ROOM}/0c0ffee1" to="abc@meet.jitsi/r1"><x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="owner" role="moderator"/><status code="110"/></x></presence>"#
        ));
        assert_eq!(self.session.state(), &ConnectorState::InMeeting);
    }

    /// The other participant's captured presence, in our room.
    fn other_joins(&mut self) {
        let presence = fixture("presence-with-e2ee-props.xml")
            .replace("probe58261@conference.meet.jitsi", ROOM)
            .replace("<stats-id>", "<nick xmlns=\"http://jabber.org/protocol/nick\">Ana</nick><stats-id>");
        self.recv(&presence);
    }
}

#[test]
fn logs_in_joins_and_offers_p2p_to_the_one_other_participant() {
    let mut h = Harness::new(true);
    h.join();
    h.take_events();
    h.other_joins();
    let events = h.take_events();
    assert!(
        events.contains(&Event::ParticipantJoined { participant: ParticipantId(OTHER.into()), display: "Ana".into() })
    );
    let peer = PeerId(format!("p2p-{OTHER}"));
    assert!(events.contains(&Event::OpenPeer {
        peer: peer.clone(),
        direction: Direction::SendReceive,
        participant: Some(ParticipantId(OTHER.into())),
        remote_offer: None,
    }));
    // The key exchange starts with the participant that does E2EE (lib-jitsi-meet's Olm messages).
    assert!(h.sent.iter().any(|m| m.is("message", ns::CLIENT) && m.has_child("json-message", ns::JITMEET)));

    h.input(Input::LocalDescription { peer: peer.clone(), sdp: OUR_OFFER.into() }).expect("offer");
    let initiate = h.last_sent().clone();
    assert_eq!(attr(&initiate, "to"), format!("{ROOM}/{OTHER}"));
    let jingle = initiate.get_child("jingle", ns::JINGLE).expect("jingle");
    assert_eq!(attr(jingle, "action"), "session-initiate");
    assert_eq!(attr(jingle, "initiator"), format!("{ROOM}/0c0ffee1"));
    let sid = attr(jingle, "sid").to_owned();
    h.recv(&format!(
        r#"<iq xmlns="jabber:client" type="result" from="{ROOM}/{OTHER}" id="{}"/>"#,
        attr(&initiate, "id")
    ));

    // Their answer: the captured session-accept in this session.
    let accept =
        fixture("session-accept.xml").replace("c144d95e4b28", &sid).replace("probe58261@conference.meet.jitsi", ROOM);
    h.take_events();
    h.recv(&accept);
    let ack = h.last_sent();
    assert_eq!(attr(ack, "type"), "result");
    let events = h.take_events();
    let Some(Event::RemoteDescription { peer: p, sdp }) =
        events.iter().find(|e| matches!(e, Event::RemoteDescription { .. }))
    else {
        panic!("no answer in {events:?}")
    };
    assert_eq!(p, &peer);
    assert!(sdp.contains("a=setup:active"));

    // Their candidates (transport-info) reach the engine.
    let info = fixture("transport-info.xml")
        .replace("c144d95e4b28", &sid)
        .replace("probe58261@conference.meet.jitsi", ROOM)
        .replace("0ae081b8", OTHER);
    h.recv(&info);
    let candidates: Vec<_> =
        h.take_events().into_iter().filter(|e| matches!(e, Event::RemoteCandidate { .. })).collect();
    assert_eq!(candidates.len(), 2, "{candidates:?}");
    let Event::RemoteCandidate { candidate: Some(c), .. } = &candidates[0] else { panic!("candidate") };
    assert_eq!(c.candidate, "candidate:231529329 1 udp 2122260223 127.0.0.1 58726 typ host generation 0");
    assert_eq!(c.sdp_mid.as_deref(), Some("0"));

    // Leaving: terminate the session, leave the room, close the stream.
    h.input(Input::Leave).expect("leave");
    let n = h.sent.len();
    let last3 = &h.sent[n - 3..];
    assert_eq!(attr(last3[0].get_child("jingle", ns::JINGLE).expect("terminate"), "action"), "session-terminate");
    assert_eq!(attr(&last3[1], "type"), "unavailable");
    assert!(last3[2].is("close", ns::FRAMING));
    assert!(h.take_events().contains(&Event::ClosePeer { peer }));
    assert_eq!(h.session.state(), &ConnectorState::Leaving);
    h.input(Input::TransportClosed { reason: "closed".into() }).expect("closed");
    assert_eq!(h.session.state(), &ConnectorState::Left);
}

#[test]
fn a_participant_without_e2ee_gets_no_media_when_the_room_requires_it() {
    let mut h = Harness::new(true);
    h.join();
    h.take_events();
    h.recv(&format!(
        r#"<presence xmlns="jabber:client" from="{ROOM}/b0b0b0b0"><nick xmlns="http://jabber.org/protocol/nick">Plain</nick><x xmlns="http://jabber.org/protocol/muc#user"><item role="participant" affiliation="none"/></x></presence>"#
    ));
    let events = h.take_events();
    assert!(!events.iter().any(|e| matches!(e, Event::OpenPeer { .. })), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ParticipantRefused { participant, .. } if participant.0 == "b0b0b0b0"))
    );
    // Their offer is refused too.
    let initiate = fixture("session-initiate-as-sent.xml")
        .replace("probe58261@conference.meet.jitsi/0ae081b8", &format!("{ROOM}/b0b0b0b0"))
        .replace("probe58261@conference.meet.jitsi/4a8a99a2", &format!("{ROOM}/0c0ffee1"));
    let initiate = initiate.replacen(
        "<iq xmlns=\"jabber:client\"",
        &format!("<iq xmlns=\"jabber:client\" from=\"{ROOM}/b0b0b0b0\""),
        1,
    );
    h.recv(&initiate);
    assert_eq!(attr(h.last_sent(), "type"), "error");
    assert!(!h.take_events().iter().any(|e| matches!(e, Event::OpenPeer { .. })));

    // Without the requirement the same participant gets the peer session.
    let mut open = Harness::new(false);
    open.join();
    open.take_events();
    open.recv(&format!(r#"<presence xmlns="jabber:client" from="{ROOM}/b0b0b0b0"/>"#));
    assert!(open.take_events().iter().any(|e| matches!(e, Event::OpenPeer { direction: Direction::SendReceive, .. })));
}

#[test]
fn answers_a_p2p_offer_and_refuses_the_bridge() {
    let mut h = Harness::new(false);
    h.join();
    h.recv(&format!(r#"<presence xmlns="jabber:client" from="{ROOM}/0ae081b8"/>"#));
    // We offered already (one other person): their offer in a new session is refused while ours runs.
    let their = fixture("session-initiate-as-sent.xml").replacen(
        "<iq xmlns=\"jabber:client\"",
        &format!("<iq xmlns=\"jabber:client\" from=\"{ROOM}/0ae081b8\""),
        1,
    );
    h.recv(&their);
    assert_eq!(attr(h.last_sent(), "type"), "error");

    // The focus's session-initiate (the bridge) is not supported: an error, and nothing opened.
    h.take_events();
    let bridge = fixture("session-initiate-as-sent.xml").replacen(
        "<iq xmlns=\"jabber:client\"",
        "<iq xmlns=\"jabber:client\" from=\"focus@auth.meet.jitsi/focus\"",
        1,
    );
    h.recv(&bridge);
    let reply = h.last_sent();
    assert_eq!(attr(reply, "type"), "error");
    assert!(reply.get_child("error", ns::CLIENT).expect("error").has_child("feature-not-implemented", ns::STANZAS));
    assert!(!h.take_events().iter().any(|e| matches!(e, Event::OpenPeer { .. })));

    // A room where nobody offered yet: we answer their offer.
    let mut r = Harness::new(false);
    r.join();
    // Their presence arrives after their offer would be odd; the offer from an unknown occupant is refused.
    r.recv(&their);
    assert_eq!(attr(r.last_sent(), "type"), "error");
}

#[test]
fn the_other_leaving_closes_the_peer_and_a_third_person_is_told_unsupported() {
    let mut h = Harness::new(false);
    h.join();
    h.recv(&format!(r#"<presence xmlns="jabber:client" from="{ROOM}/aaaa0001"/>"#));
    h.recv(&format!(r#"<presence xmlns="jabber:client" from="{ROOM}/aaaa0002"/>"#));
    let events = h.take_events();
    assert_eq!(events.iter().filter(|e| matches!(e, Event::OpenPeer { .. })).count(), 1);
    assert!(events.iter().any(|e| matches!(e, Event::ParticipantRefused { .. })), "{events:?}");
    h.recv(&format!(r#"<presence xmlns="jabber:client" from="{ROOM}/aaaa0001" type="unavailable"/>"#));
    let events = h.take_events();
    assert!(events.contains(&Event::ClosePeer { peer: PeerId("p2p-aaaa0001".into()) }));
    assert!(events.contains(&Event::ParticipantLeft { participant: ParticipantId("aaaa0001".into()) }));
    // Now one other person again: they are offered the session.
    assert!(events.iter().any(|e| matches!(e, Event::OpenPeer { participant: Some(p), .. } if p.0 == "aaaa0002")));
}

#[test]
fn failures_say_what_and_whether_to_retry() {
    // No anonymous login: not retryable.
    let mut h = Harness::new(false);
    h.input(Input::TransportConnected).expect("connected");
    h.recv(r#"<stream:features xmlns:stream="http://etherx.jabber.org/streams"><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>PLAIN</mechanism></mechanisms></stream:features>"#);
    let ConnectorState::Failed(f) = h.session.state() else { panic!("{:?}", h.session.state()) };
    assert!(!f.retryable);
    assert!(f.error.to_string().contains("anonymous"), "{}", f.error);

    // A silent server: a timeout, retryable.
    let mut h = Harness::new(false);
    h.input(Input::TransportConnected).expect("connected");
    h.advance(REQUEST_TIMEOUT + Duration::from_millis(1));
    let ConnectorState::Failed(f) = h.session.state() else { panic!("{:?}", h.session.state()) };
    assert!(f.retryable);
    assert!(matches!(f.error, ConnectorError::Timeout { .. }));

    // The socket gone in the meeting: retryable, the peer closed.
    let mut h = Harness::new(false);
    h.join();
    h.recv(&format!(r#"<presence xmlns="jabber:client" from="{ROOM}/aaaa0001"/>"#));
    h.take_events();
    h.input(Input::TransportClosed { reason: "connection reset".into() }).expect("closed");
    let ConnectorState::Failed(f) = h.session.state() else { panic!("{:?}", h.session.state()) };
    assert!(f.retryable);
    assert!(f.error.to_string().contains("connection reset"));
    assert!(h.take_events().contains(&Event::ClosePeer { peer: PeerId("p2p-aaaa0001".into()) }));

    // Pings go out in the meeting; an unanswered one ends it.
    let mut h = Harness::new(false);
    h.join();
    h.advance(PING_INTERVAL);
    let ping = h.last_sent().clone();
    assert!(ping.has_child("ping", ns::PING));
    h.advance(REQUEST_TIMEOUT);
    let ConnectorState::Failed(f) = h.session.state() else { panic!("{:?}", h.session.state()) };
    assert!(f.error.to_string().contains("ping"));

    // The room refuses us (a nick conflict is retryable, a ban is not).
    for (condition, retryable) in [("conflict", true), ("forbidden", false)] {
        let mut h = Harness::new(false);
        h.input(Input::TransportConnected).expect("connected");
        h.recv(r#"<stream:features xmlns:stream="http://etherx.jabber.org/streams"><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>ANONYMOUS</mechanism></mechanisms></stream:features>"#);
        h.recv(r#"<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>"#);
        h.recv(r#"<stream:features xmlns:stream="http://etherx.jabber.org/streams"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></stream:features>"#);
        let bind_id = attr(h.last_sent(), "id").to_owned();
        h.recv(&format!(r#"<iq xmlns="jabber:client" type="result" id="{bind_id}"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid>a@meet.jitsi/r</jid></bind></iq>"#));
        let focus_id = attr(h.last_sent(), "id").to_owned();
        // No focus on this server: the join goes on without it.
        h.recv(&format!(r#"<iq xmlns="jabber:client" type="error" id="{focus_id}"><error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>"#));
        assert!(h.last_sent().is("presence", ns::CLIENT));
        h.recv(&format!(r#"<presence xmlns="jabber:client" type="error" from="{ROOM}/0c0ffee1"><error type="cancel"><{condition} xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></presence>"#));
        let ConnectorState::Failed(f) = h.session.state() else { panic!("{:?}", h.session.state()) };
        assert_eq!(f.retryable, retryable, "{condition}");
        assert!(f.error.to_string().contains(condition));
    }
}

#[test]
fn leaving_without_an_answer_ends_after_the_leave_timeout() {
    let mut h = Harness::new(false);
    h.join();
    h.input(Input::Leave).expect("leave");
    assert_eq!(h.session.state(), &ConnectorState::Leaving);
    h.advance(LEAVE_TIMEOUT);
    assert_eq!(h.session.state(), &ConnectorState::Left);
    assert!(h.transmits.contains(&Transmit::Close));
}

#[test]
fn server_pings_and_disco_are_answered_and_garbage_is_survived() {
    let mut h = Harness::new(false);
    h.join();
    h.recv(r#"<iq xmlns="jabber:client" type="get" from="meet.jitsi" id="p1"><ping xmlns="urn:xmpp:ping"/></iq>"#);
    assert_eq!((attr(h.last_sent(), "type"), attr(h.last_sent(), "id")), ("result", "p1"));
    h.recv(&format!(r#"<iq xmlns="jabber:client" type="get" from="{ROOM}/x" id="d1"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>"#));
    let query = h.last_sent().get_child("query", ns::DISCO_INFO).expect("disco");
    assert!(kids(query, "feature", ns::DISCO_INFO).any(|f| attr(f, "var") == "https://jitsi.org/meet/e2ee"));
    h.recv(r#"<iq xmlns="jabber:client" type="set" from="x@y" id="u1"><unknown xmlns="urn:example"/></iq>"#);
    assert_eq!(attr(h.last_sent(), "type"), "error");
    for garbage in ["", "<", "not xml", "<iq xmlns='jabber:client'/>", "<a xmlns='b'/>", &"<x>".repeat(1000)] {
        let _ = h.input(Input::TransportReceived(garbage.to_owned()));
        assert_eq!(h.session.state(), &ConnectorState::InMeeting, "{garbage:.20}");
    }
    // A private message that is not Olm, from someone unknown, changes nothing.
    h.recv(&format!(r#"<message xmlns="jabber:client" type="chat" from="{ROOM}/nobody"><json-message xmlns="http://jitsi.org/jitmeet">{{"type":"olm"}}</json-message></message>"#));
    assert_eq!(h.session.state(), &ConnectorState::InMeeting);
}

/// Whether a frame sealed under `a` opens under `b` (keys have no equality).
fn same_key(a: &cloakroom_frame::KeyMaterial, b: &cloakroom_frame::KeyMaterial, index: u8) -> bool {
    use cloakroom_frame::{FrameDecryptor, FrameEncryptor, FrameMeta, MediaKind};
    let mut enc = FrameEncryptor::new(|| 7);
    enc.set_key(index, a.clone());
    let Ok(sealed) = enc.seal(FrameMeta { ssrc: 1, rtp_timestamp: 2, kind: MediaKind::Opus }, b"\x78opus") else {
        return false;
    };
    let mut dec = FrameDecryptor::new();
    dec.set_key(index, b.clone());
    dec.open(MediaKind::Opus, &sealed).is_ok()
}

#[test]
fn two_rooms_exchange_their_media_keys_over_olm_through_the_chat() {
    // Two sessions in one room; the test carries their stanzas as the MUC would.
    let mut a = Harness::new(true);
    a.join();
    let mut b = Harness::new(true);
    // A second endpoint id for b, and its presence as the MUC reflects it.
    b.session = JitsiSession::new(
        b.now,
        JitsiSettings {
            domain: "meet.jitsi".into(),
            room_jid: ROOM.into(),
            focus: "focus.meet.jitsi".into(),
            display: "Other room".into(),
            require_e2ee: true,
            endpoint: Some("f00dbabe".into()),
        },
    );
    b.sent.clear();
    b.transmits.clear();
    b.events.clear();
    b.drain();
    b.input(Input::TransportConnected).expect("connected");
    b.recv(r#"<stream:features xmlns:stream="http://etherx.jabber.org/streams"><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>ANONYMOUS</mechanism></mechanisms></stream:features>"#);
    b.recv(r#"<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>"#);
    b.recv(r#"<stream:features xmlns:stream="http://etherx.jabber.org/streams"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></stream:features>"#);
    let bind_id = attr(b.last_sent(), "id").to_owned();
    b.recv(&format!(r#"<iq xmlns="jabber:client" type="result" id="{bind_id}"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid>b@meet.jitsi/r</jid></bind></iq>"#));
    let focus_id = attr(b.last_sent(), "id").to_owned();
    b.recv(&format!(r#"<iq xmlns="jabber:client" type="result" id="{focus_id}"><conference xmlns="http://jitsi.org/protocol/focus" ready="true"/></iq>"#));
    let b_presence = b.last_sent().clone();
    b.recv(&format!(r#"<presence xmlns="jabber:client" from="{ROOM}/f00dbabe"><x xmlns="http://jabber.org/protocol/muc#user"><status code="110"/></x></presence>"#));
    let a_presence = a.sent.iter().find(|m| m.is("presence", ns::CLIENT)).expect("a's presence").clone();

    // Each sees the other's presence, as the MUC sends it (from the occupant JID).
    let reflect = |p: &Element, from: &str| {
        let mut p = p.clone();
        p.attrs_mut().clear();
        String::from(&p).replacen("<presence", &format!("<presence from=\"{ROOM}/{from}\""), 1)
    };
    let (mut a_seen, mut b_seen) = (a.sent.len(), b.sent.len());
    a.recv(&reflect(&b_presence, "f00dbabe"));
    b.recv(&reflect(&a_presence, "0c0ffee1"));

    // Carry private messages both ways until both are quiet.
    for _ in 0..20 {
        let from_a: Vec<Element> = a.sent[a_seen..].to_vec();
        let from_b: Vec<Element> = b.sent[b_seen..].to_vec();
        a_seen = a.sent.len();
        b_seen = b.sent.len();
        if from_a.is_empty() && from_b.is_empty() {
            break;
        }
        let carry = |msgs: &[Element], to: &mut Harness, sender: &str| {
            for m in msgs.iter().filter(|m| m.is("message", ns::CLIENT)) {
                let json = m.get_child("json-message", ns::JITMEET).expect("json").text();
                let json = json.replace('&', "&amp;").replace('<', "&lt;");
                to.recv(&format!(r#"<message xmlns="jabber:client" type="chat" from="{ROOM}/{sender}"><json-message xmlns="http://jitsi.org/jitmeet">{json}</json-message></message>"#));
            }
        };
        carry(&from_a, &mut b, "0c0ffee1");
        carry(&from_b, &mut a, "f00dbabe");
    }
    let own = |h: &Harness| {
        h.events.iter().rev().find_map(|e| match e {
            Event::LocalKey { key_index, material } => Some((*key_index, material.clone())),
            _ => None,
        })
    };
    let theirs = |h: &Harness, who: &str| {
        h.events.iter().rev().find_map(|e| match e {
            Event::ParticipantKey { participant, key_index, material } if participant.0 == who => {
                Some((*key_index, material.clone()))
            }
            _ => None,
        })
    };
    let (a_index, a_key) = own(&a).expect("a's own key");
    let (b_index, b_key) = own(&b).expect("b's own key");
    let (ai, a_at_b) = theirs(&b, "0c0ffee1").expect("b learned a's key");
    let (bi, b_at_a) = theirs(&a, "f00dbabe").expect("a learned b's key");
    assert_eq!((ai, bi), (a_index, b_index));
    assert!(same_key(&a_key, &a_at_b, a_index), "b opens a's frames");
    assert!(same_key(&b_key, &b_at_a, b_index), "a opens b's frames");
    assert!(!same_key(&a_key, &b_key, a_index), "the two rooms' keys differ");
    // No key material in what went over the wire in the clear.
    for m in a.sent.iter().chain(&b.sent) {
        let xml = String::from(m);
        assert!(!xml.contains("\"key\""), "a key in clear text: {xml:.200}");
    }
}

#[test]
fn a_peer_that_keeps_failing_fails_the_meeting_with_its_cause() {
    let mut h = Harness::new(false);
    h.join();
    h.recv(&format!(r#"<presence xmlns="jabber:client" from="{ROOM}/aaaa0001"/>"#));
    for attempt in 1..=super::session::MAX_OFFERS {
        let events = h.take_events();
        assert!(events.iter().any(|e| matches!(e, Event::OpenPeer { .. })), "attempt {attempt}: {events:?}");
        h.input(Input::PeerFailed { peer: PeerId("p2p-aaaa0001".into()), reason: "ICE failed".into() })
            .expect("failed");
        // The other side hears the session end.
        let terminate = h.last_sent().get_child("jingle", ns::JINGLE).map(|j| attr(j, "action").to_owned());
        if attempt < super::session::MAX_OFFERS {
            assert_eq!(terminate.as_deref(), Some("session-terminate"));
            assert_eq!(h.session.state(), &ConnectorState::InMeeting);
            h.advance(super::session::REOFFER_DELAY);
        }
    }
    let ConnectorState::Failed(f) = h.session.state() else { panic!("{:?}", h.session.state()) };
    assert!(f.retryable);
    assert_eq!(f.error, ConnectorError::MediaFailed { reason: "ICE failed".into() });
}

#[test]
fn a_participant_turning_e2ee_off_loses_the_peer_session_when_the_room_requires_it() {
    let mut h = Harness::new(true);
    h.join();
    h.other_joins();
    let peer = PeerId(format!("p2p-{OTHER}"));
    assert!(h.take_events().iter().any(|e| matches!(e, Event::OpenPeer { peer: p, .. } if *p == peer)));
    h.input(Input::LocalDescription { peer: peer.clone(), sdp: OUR_OFFER.into() }).expect("offer");
    let off = fixture("presence-with-e2ee-props.xml")
        .replace("probe58261@conference.meet.jitsi", ROOM)
        .replace("<jitsi_participant_e2ee.enabled>true", "<jitsi_participant_e2ee.enabled>false");
    h.recv(&off);
    let events = h.take_events();
    assert!(events.contains(&Event::ClosePeer { peer }), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, Event::ParticipantRefused { .. })));
    let terminate = h.last_sent().get_child("jingle", ns::JINGLE).expect("terminate");
    assert_eq!(attr(terminate, "action"), "session-terminate");
    // Nothing is offered again while their E2EE stays off.
    h.advance(super::session::REOFFER_DELAY);
    assert!(!h.take_events().iter().any(|e| matches!(e, Event::OpenPeer { .. })));
}

#[test]
fn a_key_message_that_is_not_olm_is_reported_not_fatal() {
    let mut h = Harness::new(true);
    h.join();
    h.other_joins();
    h.take_events();
    h.recv(&format!(
        r#"<message xmlns="jabber:client" type="chat" from="{ROOM}/{OTHER}"><json-message xmlns="http://jitsi.org/jitmeet">{{"type":"olm","olm":{{"type":"key-info","data":{{"ciphertext":{{"type":1,"body":"AAAA"}},"uuid":"x"}}}}}}</json-message></message>"#
    ));
    let events = h.take_events();
    assert!(
        events.iter().any(|e| matches!(e, Event::Problem { participant: Some(p), .. } if p.0 == OTHER)),
        "{events:?}"
    );
    assert_eq!(h.session.state(), &ConnectorState::InMeeting);
}

#[test]
fn identity_keys_without_e2ee_enabled_do_not_make_an_e2ee_participant() {
    // lib-jitsi-meet with E2EE off still publishes its keys and the feature (seen
    // in the end-to-end test: the room offered P2P to a page without E2EE).
    let mut h = Harness::new(true);
    h.join();
    h.take_events();
    let never_enabled = fixture("presence-with-e2ee-props.xml")
        .replace("probe58261@conference.meet.jitsi", ROOM)
        .replace("<jitsi_participant_e2ee.enabled>true</jitsi_participant_e2ee.enabled>", "");
    h.recv(&never_enabled);
    let events = h.take_events();
    assert!(!events.iter().any(|e| matches!(e, Event::OpenPeer { .. })), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, Event::ParticipantRefused { .. })), "{events:?}");
    assert!(!h.sent.iter().any(|m| m.is("message", ns::CLIENT)), "no Olm with a participant whose E2EE is off");
}
