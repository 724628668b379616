//! `cloakroom frame seal|open` as a user runs it: hex out on success, exit 1
//! and a clear message on failure, and never the key in an error.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::process::{Command, Output};

const MATERIAL: &str = "0101010101010101010101010101010101010101010101010101010101010101";

fn cloakroom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloakroom")).args(args).output().expect("run cloakroom")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap().trim().to_string()
}

#[test]
fn jitsi_seal_then_open_with_ratchets() {
    let sealed = stdout(&cloakroom(&[
        "frame",
        "seal",
        "--format",
        "jitsi",
        "--material",
        MATERIAL,
        "--ratchets",
        "2",
        "--key-index",
        "5",
        "--ssrc",
        "1",
        "--timestamp",
        "2",
        "--count",
        "65538",
        "--kind",
        "vp8-key",
        "--plaintext",
        "00112233445566778899aabbccdd",
    ]));
    // clear 10 bytes, then ciphertext(4) + tag(16), IV = 1, 2, 65538 mod 65535 = 3, then 0c 05.
    assert!(sealed.starts_with("00112233445566778899"));
    assert!(sealed.ends_with("0000000100000002000000030c05"), "{sealed}");
    let open = |ratchets: &str| {
        cloakroom(&[
            "frame",
            "open",
            "--format",
            "jitsi",
            "--material",
            MATERIAL,
            "--ratchets",
            ratchets,
            "--kind",
            "vp8-key",
            "--ciphertext",
            &sealed,
        ])
    };
    assert_eq!(stdout(&open("2")), "00112233445566778899aabbccdd");
    let wrong = open("0");
    assert_eq!(wrong.status.code(), Some(1));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains(MATERIAL) && !err.contains("0101010101"), "key leaked: {err}");
}

#[test]
fn sframe_rfc_vector_suite_1() {
    let sealed = stdout(&cloakroom(&[
        "frame",
        "seal",
        "--format",
        "sframe",
        "--suite",
        "1",
        "--base-key",
        "000102030405060708090a0b0c0d0e0f",
        "--kid",
        "291",
        "--ctr",
        "17767",
        "--metadata",
        "4945544620534672616d65205747",
        "--plaintext",
        "64726166742d696574662d736672616d652d656e63",
    ]));
    assert_eq!(sealed, "9901234567449408b6f490086165b9d6f62b24ae1a59a56486b4ae8ed036b88912e24f11");
    let opened = cloakroom(&[
        "frame",
        "open",
        "--format",
        "sframe",
        "--suite",
        "1",
        "--base-key",
        "000102030405060708090a0b0c0d0e0f",
        "--kid",
        "291",
        "--metadata",
        "4945544620534672616d65205747",
        "--ciphertext",
        &sealed,
    ]);
    assert_eq!(stdout(&opened), "64726166742d696574662d736672616d652d656e63");
}

#[test]
fn h264_access_unit_round_trip() {
    let au = "0000000167420c1e8c8d400000000168ce3c8000000001658880aabbccddeeff00000302";
    let sealed = stdout(&cloakroom(&[
        "frame",
        "seal",
        "--format",
        "h264",
        "--material",
        MATERIAL,
        "--key-index",
        "0",
        "--ssrc",
        "0",
        "--timestamp",
        "0",
        "--count",
        "0",
        "--plaintext",
        au,
    ]));
    let clear = au.find("0000000165").unwrap() + 12; // start code, NAL header, one more byte (hex digits)
    assert_eq!(&sealed[..clear], &au[..clear]);
    let opened = cloakroom(&["frame", "open", "--format", "h264", "--material", MATERIAL, "--ciphertext", &sealed]);
    assert_eq!(stdout(&opened), au);
}

#[test]
fn bad_input_exits_1_with_a_message() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["frame", "open", "--format", "jitsi", "--material", MATERIAL, "--kind", "opus", "--ciphertext", "zz"],
            "not hex",
        ),
        (
            &["frame", "open", "--format", "jitsi", "--material", "0102", "--kind", "opus", "--ciphertext", "00"],
            "32 bytes",
        ),
        (&["frame", "open", "--format", "jitsi", "--material", MATERIAL, "--ciphertext", "00"], "--kind"),
        (
            &["frame", "open", "--format", "jitsi", "--material", MATERIAL, "--kind", "opus", "--ciphertext", "0011"],
            "truncated",
        ),
        (
            &[
                "frame",
                "seal",
                "--format",
                "sframe",
                "--suite",
                "9",
                "--base-key",
                "00",
                "--kid",
                "1",
                "--ctr",
                "1",
                "--plaintext",
                "00",
            ],
            "cipher suite 9",
        ),
    ];
    for (args, expect) in cases {
        let out = cloakroom(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
}
