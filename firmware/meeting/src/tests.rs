use cloakroom_frame::{FrameDecryptor, FrameEncryptor, FrameMeta, KeyMaterial, MediaKind};

use super::*;

/// bytes 0..32, base64url without padding.
const KEY_0_31: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const HEX_0_31: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Whether a frame sealed under `a` opens under `b` (KeyMaterial has no
/// equality on purpose; the key is only ever used).
fn same_key(a: &KeyMaterial, b: &KeyMaterial) -> bool {
    let mut enc = FrameEncryptor::new(|| 7);
    enc.set_key(0, a.clone());
    let sealed =
        enc.seal(FrameMeta { ssrc: 1, rtp_timestamp: 2, kind: MediaKind::Opus }, b"\x78hello opus").expect("seal");
    let mut dec = FrameDecryptor::new();
    dec.set_key(0, b.clone());
    dec.open(MediaKind::Opus, &sealed).is_ok()
}

#[test]
fn parses_a_full_wss_link() {
    let link = MeetingLink::parse(&format!("janus+wss://Janus.Example.org:8989/janus?room=1234#e2ee={KEY_0_31}"))
        .expect("valid link");
    let Target::Janus(janus) = link.target() else { panic!("janus") };
    assert!(janus.is_secure());
    assert_eq!(janus.host(), "janus.example.org");
    assert_eq!(link.server_url(), "wss://janus.example.org:8989/janus");
    assert_eq!(janus.room(), &RoomId::Number(1234));
    assert_eq!(link.key_source(), Some(KeySource::Shared));
    assert!(same_key(link.key().expect("key"), &KeyMaterial::from_hex(HEX_0_31).expect("hex")));
}

#[test]
fn parses_ws_ipv4_and_ipv6_and_text_rooms() {
    let a = MeetingLink::parse(&format!("janus+ws://10.231.7.2:8188/?room=7#e2ee={KEY_0_31}")).expect("ipv4");
    let Target::Janus(janus) = a.target() else { panic!("janus") };
    assert!(!janus.is_secure());
    assert_eq!(a.server_url(), "ws://10.231.7.2:8188/");
    let b = MeetingLink::parse(&format!("janus+ws://[::1]:8188?room=board-room_2#e2ee={KEY_0_31}")).expect("ipv6");
    assert_eq!(b.server_url(), "ws://[::1]:8188/");
    let Target::Janus(janus) = b.target() else { panic!("janus") };
    assert_eq!(janus.room(), &RoomId::Text("board-room_2".into()));
    let c = MeetingLink::parse(&format!("janus+wss://host?room=1#e2ee={KEY_0_31}")).expect("no port");
    assert_eq!(c.server_url(), "wss://host/");
}

#[test]
fn display_and_debug_redact_the_key() {
    for fragment in [format!("e2ee={KEY_0_31}"), "passphrase=very%20secret%20words".to_owned()] {
        let text = format!("janus+wss://example.org/janus?room=42#{fragment}");
        let link = MeetingLink::parse(&text).expect("valid");
        let shown = format!("{link} {link:?} {:?}", link.key().expect("key"));
        assert_eq!(link.to_string(), "janus+wss://example.org/janus?room=42#[redacted]");
        for secret in [KEY_0_31, "very", "secret", HEX_0_31, "AAECAwQF"] {
            assert!(!shown.contains(secret), "{shown} shows {secret}");
        }
        assert!(!link.server_url().contains('#'));
        assert!(!link.server_url().contains("room"));
    }
}

#[test]
fn passphrase_matches_independent_pbkdf2() {
    // Expected values from Python's hashlib.pbkdf2_hmac('sha256', pass, salt, 100000, 32).
    let link =
        MeetingLink::parse("janus+ws://h:1/?room=1234#passphrase=correct%20horse%20battery%20staple").expect("ok");
    assert_eq!(link.key_source(), Some(KeySource::Passphrase));
    let expected =
        KeyMaterial::from_hex("0670525d77d36d051db298a4c7a29706d782a48d7c9655e1be20b9efd9a9f995").expect("hex");
    assert!(same_key(link.key().expect("key"), &expected));

    let link = MeetingLink::parse("janus+ws://h:1/?room=board-room#passphrase=gr%C3%BC%C3%9Fe%20%26%20co").expect("ok");
    let expected =
        KeyMaterial::from_hex("929663aab0db6538ab3d10d56cac97ff81fb09e2902f1d9712a18979d8332664").expect("hex");
    assert!(same_key(link.key().expect("key"), &expected));
}

#[test]
fn passphrase_key_depends_on_room() {
    let a = passphrase_key("same words", "1");
    let b = passphrase_key("same words", "2");
    assert!(!same_key(&a, &b));
    assert!(same_key(&a, &passphrase_key("same words", "1")));
}

#[test]
fn refuses_bad_links_with_typed_errors() {
    let k = format!("#e2ee={KEY_0_31}");
    let cases: Vec<(String, LinkError)> = vec![
        (format!("http://example.org/?room=1{k}"), LinkError::UnknownScheme { scheme: "http".into() }),
        (format!("janus+wss://?room=1{k}"), LinkError::MissingHost),
        (format!("janus+wss://:80/?room=1{k}"), LinkError::MissingHost),
        (format!("janus+wss://ex ample/?room=1{k}"), LinkError::InvalidCharacter),
        (format!("janus+wss://ex_ample/?room=1{k}"), LinkError::InvalidHost { host: "ex_ample".into() }),
        (format!("janus+wss://user@host/?room=1{k}"), LinkError::InvalidHost { host: "[userinfo]".into() }),
        (format!("janus+wss://host:0/?room=1{k}"), LinkError::InvalidPort { port: "0".into() }),
        (format!("janus+wss://host:70000/?room=1{k}"), LinkError::InvalidPort { port: "70000".into() }),
        (format!("janus+wss://host:+80/?room=1{k}"), LinkError::InvalidPort { port: "+80".into() }),
        (format!("janus+wss://host/{k}"), LinkError::MissingRoom),
        (format!("janus+wss://host/?room={k}"), LinkError::InvalidRoom { room: String::new() }),
        (format!("janus+wss://host/?room=a.b{k}"), LinkError::InvalidRoom { room: "a.b".into() }),
        (
            format!("janus+wss://host/?room=99999999999999999999999{k}"),
            LinkError::InvalidRoom { room: "[not shown]".into() },
        ),
        (format!("janus+wss://host/?room=1&pin=2{k}"), LinkError::UnknownParameter { name: "pin".into() }),
        ("janus+wss://host/?room=1".into(), LinkError::MissingKey),
        ("janus+wss://host/?room=1#".into(), LinkError::MissingKey),
        ("janus+wss://host/?room=1#key=abc".into(), LinkError::UnknownKeyForm),
        ("janus+wss://host/?room=1#e2ee=AAEC".into(), LinkError::InvalidKey),
        (format!("janus+wss://host/?room=1#e2ee={}A", KEY_0_31), LinkError::InvalidKey),
        (format!("janus+wss://host/?room=1#e2ee={}=", &KEY_0_31[..42]), LinkError::InvalidKey),
        (format!("janus+wss://host/?room=1#e2ee={}+", &KEY_0_31[..42]), LinkError::InvalidKey),
        ("janus+wss://host/?room=1#passphrase=".into(), LinkError::InvalidPassphrase),
        ("janus+wss://host/?room=1#passphrase=%zz".into(), LinkError::InvalidPassphrase),
        ("janus+wss://host/?room=1#passphrase=%C3".into(), LinkError::InvalidPassphrase),
        ("janus+wss://host/?room=1#passphrase=ab%4".into(), LinkError::InvalidPassphrase),
        (format!("janus+wss://host/?room=1#e2ee={}", "A".repeat(3000)), LinkError::TooLong),
    ];
    for (text, expected) in cases {
        let got = MeetingLink::parse(&text).map(|l| l.to_string());
        assert_eq!(got, Err(expected), "{text}");
    }
}

#[test]
fn error_messages_never_echo_the_fragment() {
    for text in [
        "janus+wss://host/?room=1#e2ee=SECRETSECRET",
        "janus+wss://host/?room=1#passphrase=%C3SECRET",
        "janus+wss://host/?room=1#SECRET",
        "bogus#SECRET",
        "janus+wss://host/?room=a.b#SECRET",
    ] {
        let err = MeetingLink::parse(text).expect_err("invalid");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}

#[test]
fn a_key_pasted_in_the_wrong_place_is_never_echoed() {
    // Security review finding 10: a percent-encoded `#`, a bare key, a key as the host or room.
    let key = KEY_0_31;
    for text in [
        format!("janus+wss://host/?room=1%23e2ee={key}"),
        "janus+wss://host/?room=1%23passphrase=horse".to_owned(),
        format!("janus+wss://host/?room=1&e2ee={key}"),
        key.to_owned(),
        format!("{key}://host/?room=1"),
        format!("janus+wss://{key}_/?room=1"),
        format!("janus+wss://host:{key}/?room=1"),
        format!("janus+wss://host/?room={key}"),
        format!("janus+wss://host/?{key}=1"),
        "correct horse battery staple".to_owned(),
        "correcthorsebatterystaple".to_owned(),
    ] {
        let err = MeetingLink::parse(&text).expect_err("invalid");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&key[..12]) && !shown.contains("horse"), "{text}: {shown}");
    }
    assert_eq!(
        MeetingLink::parse(&format!("janus+wss://host/?room=1%23e2ee={key}")).err(),
        Some(LinkError::MisplacedKey)
    );
}

#[test]
fn arbitrary_input_never_panics() {
    // A cheap deterministic sweep of mutations around a valid link (the fuzz
    // target does this properly).
    let base = format!("janus+wss://host:8188/p?room=12#e2ee={KEY_0_31}");
    let bytes = base.as_bytes();
    for i in 0..bytes.len() {
        for b in [b'%', b'#', b'?', b'[', b']', b':', b'@', b'/', 0xff, b'0', b'='] {
            let mut m = bytes.to_vec();
            m[i] = b;
            if let Ok(s) = String::from_utf8(m.clone()) {
                let _ = MeetingLink::parse(&s);
            }
            m.truncate(i);
            if let Ok(s) = String::from_utf8(m) {
                let _ = MeetingLink::parse(&s);
            }
        }
    }
}

#[test]
fn a_link_without_a_key_only_with_the_optional_policy() {
    let plain = "janus+wss://sfu.example/janus?room=1234";
    assert_eq!(MeetingLink::parse(plain).err(), Some(LinkError::MissingKey));
    assert_eq!(MeetingLink::parse_with(plain, KeyPolicy::Required).err(), Some(LinkError::MissingKey));
    let link = MeetingLink::parse_with(plain, KeyPolicy::Optional).expect("accepted");
    assert!(link.key().is_none() && link.key_source().is_none());
    assert_eq!(link.to_string(), "janus+wss://sfu.example/janus?room=1234");
    // A key, when there is one, is still parsed (and checked) under the optional policy.
    let keyed = MeetingLink::parse_with(&format!("{plain}#e2ee=short"), KeyPolicy::Optional);
    assert!(keyed.is_err());
}

#[test]
fn parses_jitsi_meeting_urls_with_stock_defaults() {
    let link = MeetingLink::parse("https://Meet.Example.org/WeeklySync").expect("jitsi link");
    let Target::Jitsi(jitsi) = link.target() else { panic!("jitsi") };
    assert!(link.keys_exchanged());
    assert!(link.key().is_none());
    assert_eq!(link.server_url(), "wss://meet.example.org/xmpp-websocket");
    assert_eq!(jitsi.room(), "WeeklySync");
    assert_eq!(jitsi.room_jid(), "weeklysync@conference.meet.example.org");
    assert_eq!(jitsi.domain(), "meet.example.org");
    assert_eq!(jitsi.focus(), "focus.meet.example.org");
    assert_eq!(link.to_string(), "https://meet.example.org/WeeklySync");
    assert_eq!(jitsi.config_js_url().as_deref(), Some("https://meet.example.org/config.js"));
    // Jitsi's own `#config.` overrides are dropped, never sent nor shown.
    let with_config = MeetingLink::parse("https://meet.example.org:8443/Room#config.startWithAudioMuted=true")
        .expect("config fragment");
    assert_eq!(with_config.server_url(), "wss://meet.example.org:8443/xmpp-websocket");
    assert!(!with_config.to_string().contains("config"));
}

#[test]
fn parses_plain_websocket_jitsi_links_for_test_servers() {
    let link = MeetingLink::parse("jitsi+ws://10.231.9.2:5280/probe-1?domain=meet.jitsi").expect("jitsi+ws");
    let Target::Jitsi(jitsi) = link.target() else { panic!("jitsi") };
    assert!(!jitsi.is_secure());
    assert_eq!(link.server_url(), "ws://10.231.9.2:5280/xmpp-websocket");
    assert_eq!(jitsi.room_jid(), "probe-1@conference.meet.jitsi");
    assert_eq!(jitsi.focus(), "focus.meet.jitsi");
    assert_eq!(link.to_string(), "jitsi+ws://10.231.9.2:5280/probe-1?domain=meet.jitsi");
    assert_eq!(jitsi.config_js_url(), None, "a test link names its domain");
    // The domain defaults to the host when it is a name.
    let named = MeetingLink::parse("jitsi+wss://xmpp.example.org/room").expect("named host");
    let Target::Jitsi(named) = named.target() else { panic!("jitsi") };
    assert_eq!(named.domain(), "xmpp.example.org");
}

#[test]
fn refuses_bad_jitsi_links_with_typed_errors() {
    let keyed = format!("https://meet.example.org/room#e2ee={KEY_0_31}");
    let cases: Vec<(&str, LinkError)> = vec![
        ("https://meet.example.org/", LinkError::MissingRoom),
        ("https://meet.example.org", LinkError::MissingRoom),
        ("https://meet.example.org/team/room", LinkError::InvalidRoom { room: "team/room".into() }),
        ("https://meet.example.org/r%C3%A9union", LinkError::InvalidRoom { room: "r%C3%A9union".into() }),
        ("https://meet.example.org/room?jwt=abc", LinkError::UnknownParameter { name: "jwt".into() }),
        ("https://meet.example.org/room?domain=x.org", LinkError::UnknownParameter { name: "domain".into() }),
        ("jitsi+ws://10.0.0.1:5280/room", LinkError::MissingDomain),
        ("jitsi+ws://[::1]:5280/room", LinkError::MissingDomain),
        ("jitsi+ws://10.0.0.1:5280/room?domain=bad_domain", LinkError::InvalidDomain { domain: "bad_domain".into() }),
        ("jitsi+ws://10.0.0.1:5280/room?domain=.x", LinkError::InvalidDomain { domain: ".x".into() }),
        ("https://meet.example.org/room#passphrase=secret", LinkError::KeyNotUsed),
        (&keyed, LinkError::KeyNotUsed),
        ("https://user@meet.example.org/room", LinkError::InvalidHost { host: "[userinfo]".into() }),
    ];
    for (link, expected) in cases {
        let err = MeetingLink::parse(link).expect_err(link);
        assert_eq!(err, expected, "{link}");
        assert!(!err.to_string().contains("secret") && !err.to_string().contains(KEY_0_31));
    }
    let long = format!("https://meet.example.org/{}", "a".repeat(jitsi::MAX_ROOM_LEN + 1));
    assert!(matches!(MeetingLink::parse(&long), Err(LinkError::InvalidRoom { .. })));
}
