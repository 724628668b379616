//! `cloakroom frame seal|open`: one frame in, one frame out, as hex.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use cloakroom_frame::jitsi::{JitsiKey, key_index_of, make_iv};
use cloakroom_frame::sframe::{CipherSuite, SframeKey};
use cloakroom_frame::{KeyMaterial, MediaKind, SecretBytes};

#[derive(Subcommand)]
pub enum FrameCommand {
    /// Encrypt a frame and print the sealed frame as hex.
    Seal(FrameArgs),
    /// Decrypt a sealed frame and print the plaintext as hex.
    Open(FrameArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// lib-jitsi-meet's AES-GCM format (VP8, Opus).
    Jitsi,
    /// The NAL-aware H.264 layout with the jitsi trailer.
    H264,
    /// RFC 9605 SFrame.
    Sframe,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Vp8Key,
    Vp8Delta,
    Opus,
}

#[derive(Args)]
pub struct FrameArgs {
    #[arg(long, value_enum)]
    format: Format,
    /// jitsi/h264: 32 bytes of key material, 64 hex digits.
    #[arg(long, value_name = "HEX64")]
    material: Option<String>,
    /// jitsi/h264: apply the ratchet this many times to the material first.
    #[arg(long, default_value_t = 0, value_name = "N")]
    ratchets: u32,
    /// jitsi/h264 seal: key index written into the trailer.
    #[arg(long, value_name = "N")]
    key_index: Option<u8>,
    /// jitsi/h264 seal: RTP SSRC for the IV.
    #[arg(long, value_name = "N")]
    ssrc: Option<u32>,
    /// jitsi/h264 seal: RTP timestamp for the IV.
    #[arg(long, value_name = "N")]
    timestamp: Option<u32>,
    /// jitsi/h264 seal: send counter (the IV carries it mod 0xFFFF).
    #[arg(long, value_name = "N")]
    count: Option<u32>,
    /// jitsi: what the frame carries.
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    /// sframe: cipher suite 1-5.
    #[arg(long, value_name = "N")]
    suite: Option<u16>,
    /// sframe: base key, hex.
    #[arg(long, value_name = "HEX")]
    base_key: Option<String>,
    /// sframe: key id.
    #[arg(long, value_name = "N")]
    kid: Option<u64>,
    /// sframe: counter (required to seal; checked against the header when opening).
    #[arg(long, value_name = "N")]
    ctr: Option<u64>,
    /// sframe: metadata authenticated with the frame, hex.
    #[arg(long, value_name = "HEX", default_value = "")]
    metadata: String,
    /// seal: the frame to encrypt, hex.
    #[arg(long, value_name = "HEX")]
    plaintext: Option<String>,
    /// open: the sealed frame, hex.
    #[arg(long, value_name = "HEX")]
    ciphertext: Option<String>,
}

pub fn run(cmd: FrameCommand) -> Result<()> {
    let out = match cmd {
        FrameCommand::Seal(args) => seal(&args)?,
        FrameCommand::Open(args) => open(&args)?,
    };
    println!("{}", to_hex(&out));
    Ok(())
}

fn seal(a: &FrameArgs) -> Result<Vec<u8>> {
    let plaintext = hex_arg("--plaintext", a.plaintext.as_deref())?;
    match a.format {
        Format::Jitsi | Format::H264 => {
            let kind = media_kind(a)?;
            let index = need("--key-index", a.key_index)?;
            let iv = make_iv(need("--ssrc", a.ssrc)?, need("--timestamp", a.timestamp)?, need("--count", a.count)?);
            let key = JitsiKey::new(index, material(a)?);
            key.seal(kind, &iv, &plaintext).context("cannot seal frame")
        }
        Format::Sframe => {
            let key = sframe_key(a)?;
            let ctr = need("--ctr", a.ctr)?;
            key.seal(ctr, &parse_hex("--metadata", &a.metadata)?, &plaintext).context("cannot seal frame")
        }
    }
}

fn open(a: &FrameArgs) -> Result<Vec<u8>> {
    let frame = hex_arg("--ciphertext", a.ciphertext.as_deref())?;
    match a.format {
        Format::Jitsi | Format::H264 => {
            let kind = media_kind(a)?;
            let index = key_index_of(&frame).context("cannot open frame: empty frame")?;
            let key = JitsiKey::new(index, material(a)?);
            key.open(kind, &frame).context("cannot open frame")
        }
        Format::Sframe => {
            let key = sframe_key(a)?;
            let (header, plaintext) =
                key.open(&parse_hex("--metadata", &a.metadata)?, &frame).context("cannot open frame")?;
            if let Some(ctr) = a.ctr
                && ctr != header.ctr
            {
                bail!("cannot open frame: header counter is {}, --ctr says {ctr}", header.ctr);
            }
            Ok(plaintext)
        }
    }
}

fn media_kind(a: &FrameArgs) -> Result<MediaKind> {
    Ok(match (a.format, a.kind) {
        (Format::H264, None) => MediaKind::H264,
        (Format::H264, Some(_)) => bail!("--kind does not apply to --format h264 (the frame is an H.264 access unit)"),
        (_, None) => bail!("--format jitsi needs --kind vp8-key|vp8-delta|opus"),
        (_, Some(Kind::Vp8Key)) => MediaKind::Vp8Key,
        (_, Some(Kind::Vp8Delta)) => MediaKind::Vp8Delta,
        (_, Some(Kind::Opus)) => MediaKind::Opus,
    })
}

fn material(a: &FrameArgs) -> Result<KeyMaterial> {
    let hex = a.material.as_deref().context("--material HEX64 is required for this format")?;
    let material = KeyMaterial::from_hex(hex).context("bad --material")?;
    Ok(material.ratchet_n(a.ratchets))
}

fn sframe_key(a: &FrameArgs) -> Result<SframeKey> {
    let suite = CipherSuite::from_id(need("--suite", a.suite)?).context("bad --suite")?;
    let base = SecretBytes::from_hex(a.base_key.as_deref().context("--base-key HEX is required for --format sframe")?)
        .context("bad --base-key")?;
    SframeKey::derive(suite, need("--kid", a.kid)?, &base).context("cannot derive SFrame key")
}

fn need<T>(flag: &str, v: Option<T>) -> Result<T> {
    v.with_context(|| format!("{flag} is required for this format"))
}

fn hex_arg(flag: &str, v: Option<&str>) -> Result<Vec<u8>> {
    parse_hex(flag, v.with_context(|| format!("{flag} HEX is required"))?)
}

fn parse_hex(flag: &str, s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        bail!("{flag}: odd number of hex digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).with_context(|| format!("{flag}: not hex at position {i}")))
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
