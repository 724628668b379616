//! SDP ↔ Jingle (XEP-0166/0167/0176/0320, with Jitsi's source signalling),
//! the mapping lib-jitsi-meet applies between its peer connection and XMPP.
//!
//! The engine speaks SDP (its WebRTC stack's offers and answers); Jitsi
//! speaks Jingle. [`sdp_to_contents`] turns our SDP into Jingle contents
//! (one per `m=` section, named by its `a=mid`), with our sources named as
//! Jitsi names them (`<endpoint>-a0`, `<endpoint>-v0`, which the other side
//! maps to our presence's `SourceInfo`). [`jingle_to_sdp`] turns the other
//! side's Jingle into SDP. [`candidate_to_sdp`] / [`candidate_from_sdp`]
//! carry single ICE candidates (transport-info).
//!
//! Everything here reads untrusted input: malformed parts are errors, never
//! panics, and sizes are bounded by the transport's message limit.

use core::fmt::Write as _;

use minidom::Element;

use super::xml::{X, attr, kids, ns};

/// Why a description could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JingleError(pub String);

fn err(what: impl Into<String>) -> JingleError {
    JingleError(what.into())
}

/// One payload type (codec) of a media section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Payload {
    id: u8,
    name: String,
    clockrate: u32,
    channels: Option<u8>,
    /// fmtp parameters in order (`name=value`; a bare value has name "").
    params: Vec<(String, String)>,
    /// rtcp-fb type and subtype.
    feedback: Vec<(String, Option<String>)>,
}

/// One media section, as both sides describe it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Media {
    kind: String,
    mid: String,
    direction: String,
    payloads: Vec<Payload>,
    rtcp_mux: bool,
    extmaps: Vec<(u16, String)>,
    extmap_allow_mixed: bool,
    /// SSRC and its `msid` (the rest of `a=ssrc:` attributes are dropped, as lib-jitsi-meet does).
    ssrcs: Vec<(u32, Option<String>)>,
    ssrc_groups: Vec<(String, Vec<u32>)>,
    ufrag: String,
    pwd: String,
    fingerprint: Option<(String, String)>,
    setup: Option<String>,
    /// Candidate attribute values (without `candidate:`).
    candidates: Vec<String>,
}

/// Parses an SDP into its media sections (session-level ICE and DTLS
/// attributes are copied into each section).
fn parse_sdp(sdp: &str) -> Result<Vec<Media>, JingleError> {
    let mut session = Media::default();
    let mut sections: Vec<Media> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut fields = m.split(' ');
            let kind = fields.next().unwrap_or_default().to_owned();
            let mut media = Media {
                kind,
                ufrag: session.ufrag.clone(),
                pwd: session.pwd.clone(),
                fingerprint: session.fingerprint.clone(),
                setup: session.setup.clone(),
                extmap_allow_mixed: session.extmap_allow_mixed,
                direction: "sendrecv".to_owned(),
                ..Media::default()
            };
            for pt in fields.skip(2) {
                let id = pt.parse::<u8>().map_err(|_| err(format!("bad payload type {pt:?}")))?;
                media.payloads.push(Payload { id, ..Payload::default() });
            }
            sections.push(media);
            continue;
        }
        let Some(a) = line.strip_prefix("a=") else { continue };
        let (name, value) = a.split_once(':').unwrap_or((a, ""));
        let target = sections.last_mut().unwrap_or(&mut session);
        match name {
            "mid" => target.mid = value.to_owned(),
            "sendrecv" | "sendonly" | "recvonly" | "inactive" => target.direction = name.to_owned(),
            "rtcp-mux" => target.rtcp_mux = true,
            "extmap-allow-mixed" => target.extmap_allow_mixed = true,
            "ice-ufrag" => target.ufrag = value.to_owned(),
            "ice-pwd" => target.pwd = value.to_owned(),
            "setup" => target.setup = Some(value.to_owned()),
            "fingerprint" => {
                let (hash, fp) = value.split_once(' ').ok_or_else(|| err("bad a=fingerprint"))?;
                target.fingerprint = Some((hash.to_owned(), fp.to_owned()));
            }
            "candidate" => target.candidates.push(value.to_owned()),
            "extmap" => {
                let mut f = value.split(' ');
                let id = f.next().unwrap_or_default();
                let id = id.split('/').next().unwrap_or_default();
                let id = id.parse::<u16>().map_err(|_| err("bad a=extmap id"))?;
                let uri = f.next().ok_or_else(|| err("a=extmap without a URI"))?;
                target.extmaps.push((id, uri.to_owned()));
            }
            "rtpmap" => {
                let (pt, codec) = value.split_once(' ').ok_or_else(|| err("bad a=rtpmap"))?;
                let p = payload_mut(target, pt)?;
                let mut f = codec.split('/');
                p.name = f.next().unwrap_or_default().to_owned();
                p.clockrate =
                    f.next().and_then(|c| c.parse().ok()).ok_or_else(|| err("a=rtpmap without a clock rate"))?;
                p.channels = f.next().and_then(|c| c.parse().ok());
            }
            "fmtp" => {
                let (pt, params) = value.split_once(' ').ok_or_else(|| err("bad a=fmtp"))?;
                let p = payload_mut(target, pt)?;
                for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                    let (n, v) = param.split_once('=').unwrap_or(("", param));
                    p.params.push((n.to_owned(), v.to_owned()));
                }
            }
            "rtcp-fb" => {
                let (pt, fb) = value.split_once(' ').ok_or_else(|| err("bad a=rtcp-fb"))?;
                let mut f = fb.split(' ');
                let kind = f.next().unwrap_or_default().to_owned();
                let sub = f.next().map(str::to_owned);
                if pt == "*" {
                    for p in &mut target.payloads {
                        p.feedback.push((kind.clone(), sub.clone()));
                    }
                } else {
                    payload_mut(target, pt)?.feedback.push((kind, sub));
                }
            }
            "ssrc" => {
                let (id, rest) = value.split_once(' ').unwrap_or((value, ""));
                let id = id.parse::<u32>().map_err(|_| err("bad a=ssrc"))?;
                let msid = rest.strip_prefix("msid:").map(str::to_owned);
                match target.ssrcs.iter_mut().find(|(s, _)| *s == id) {
                    Some(entry) => {
                        if msid.is_some() {
                            entry.1 = msid;
                        }
                    }
                    None => target.ssrcs.push((id, msid)),
                }
            }
            "ssrc-group" => {
                let mut f = value.split(' ');
                let semantics = f.next().unwrap_or_default().to_owned();
                let ids = f.map(|s| s.parse::<u32>().map_err(|_| err("bad a=ssrc-group"))).collect::<Result<_, _>>()?;
                target.ssrc_groups.push((semantics, ids));
            }
            "msid" => {
                // Unified plan's per-section msid: applies to every SSRC that has none.
                let msid = value.to_owned();
                for s in target.ssrcs.iter_mut().filter(|(_, m)| m.is_none()) {
                    s.1 = Some(msid.clone());
                }
            }
            _ => {}
        }
    }
    if sections.is_empty() {
        return Err(err("the description has no media"));
    }
    Ok(sections)
}

fn payload_mut<'a>(media: &'a mut Media, pt: &str) -> Result<&'a mut Payload, JingleError> {
    let id = pt.parse::<u8>().map_err(|_| err(format!("bad payload type {pt:?}")))?;
    media
        .payloads
        .iter_mut()
        .find(|p| p.id == id)
        .ok_or_else(|| err(format!("attribute for unlisted payload type {id}")))
}

/// Jingle `senders` for an SDP direction, seen from the initiator.
fn senders_of(direction: &str, we_initiate: bool) -> &'static str {
    match (direction, we_initiate) {
        ("sendrecv", _) => "both",
        ("inactive", _) => "none",
        ("sendonly", true) | ("recvonly", false) => "initiator",
        _ => "responder",
    }
}

/// Our SDP as Jingle contents (and the BUNDLE group), for a
/// session-initiate (`we_initiate`) or session-accept. `endpoint` is our
/// MUC resource, which names our sources.
pub fn sdp_to_contents(sdp: &str, endpoint: &str, we_initiate: bool) -> Result<Vec<X>, JingleError> {
    let sections = parse_sdp(sdp)?;
    let creator = if we_initiate { "initiator" } else { "responder" };
    let mut out = vec![
        X::new("group", ns::JINGLE_GROUPING)
            .a("semantics", "BUNDLE")
            .children(sections.iter().map(|m| X::new("content", ns::JINGLE_GROUPING).a("name", m.mid.clone()))),
    ];
    for m in &sections {
        if m.mid.is_empty() {
            return Err(err("a media section has no a=mid"));
        }
        let source_name = format!("{endpoint}-{}0", if m.kind == "video" { 'v' } else { 'a' });
        let payloads = m.payloads.iter().map(|p| {
            X::new("payload-type", ns::JINGLE_RTP)
                .a("id", p.id.to_string())
                .a("name", p.name.clone())
                .a("clockrate", p.clockrate.to_string())
                .a("channels", p.channels.unwrap_or(1).to_string())
                .children(
                    p.params
                        .iter()
                        .map(|(n, v)| X::new("parameter", ns::JINGLE_RTP).a("name", n.clone()).a("value", v.clone())),
                )
                .children(p.feedback.iter().map(|(t, s)| {
                    X::new("rtcp-fb", ns::JINGLE_RTCP_FB).a("type", t.clone()).a_opt("subtype", s.clone())
                }))
        });
        let sources = m.ssrcs.iter().map(|(ssrc, msid)| {
            let mut s = X::new("source", ns::JINGLE_SSMA).a("ssrc", ssrc.to_string()).a("name", source_name.clone());
            if m.kind == "video" {
                s = s.a("videoType", "camera");
            }
            match msid {
                Some(msid) => s.child(X::new("parameter", ns::JINGLE_SSMA).a("name", "msid").a("value", msid.clone())),
                None => s,
            }
        });
        let groups = m.ssrc_groups.iter().map(|(semantics, ids)| {
            X::new("ssrc-group", ns::JINGLE_SSMA)
                .a("semantics", semantics.clone())
                .children(ids.iter().map(|id| X::new("source", ns::JINGLE_SSMA).a("ssrc", id.to_string())))
        });
        let mut description = X::new("description", ns::JINGLE_RTP)
            .a("media", m.kind.clone())
            .children(payloads)
            .children(sources)
            .children(groups);
        if m.rtcp_mux {
            description = description.child(X::new("rtcp-mux", ns::JINGLE_RTP));
        }
        description =
            description.children(m.extmaps.iter().map(|(id, uri)| {
                X::new("rtp-hdrext", ns::JINGLE_HDREXT).a("id", id.to_string()).a("uri", uri.clone())
            }));
        if m.extmap_allow_mixed {
            description = description.child(X::new("extmap-allow-mixed", ns::JINGLE_HDREXT));
        }
        let mut transport = X::new("transport", ns::JINGLE_ICE_UDP).a("ufrag", m.ufrag.clone()).a("pwd", m.pwd.clone());
        if let Some((hash, fp)) = &m.fingerprint {
            transport = transport.child(
                X::new("fingerprint", ns::JINGLE_DTLS)
                    .a("hash", hash.clone())
                    .a("setup", m.setup.clone().unwrap_or_else(|| "actpass".to_owned()))
                    .text(fp.clone()),
            );
        }
        for c in &m.candidates {
            transport = transport.child(candidate_from_sdp(c)?);
        }
        out.push(
            X::new("content", ns::JINGLE)
                .a("creator", creator)
                .a("name", m.mid.clone())
                .a("senders", senders_of(&m.direction, we_initiate))
                .child(description)
                .child(transport),
        );
    }
    Ok(out)
}

/// An SDP candidate value (`<foundation> <component> <proto> <priority> <ip>
/// <port> typ <type> [raddr <a> rport <p>] [tcptype <t>] [generation <g>] …`)
/// as a Jingle `<candidate/>`.
pub fn candidate_from_sdp(value: &str) -> Result<X, JingleError> {
    let value = value.strip_prefix("candidate:").unwrap_or(value);
    let f: Vec<&str> = value.split(' ').collect();
    if f.len() < 8 || f[6] != "typ" {
        return Err(err("bad ICE candidate"));
    }
    let mut c = X::new("candidate", ns::JINGLE_ICE_UDP)
        .a("foundation", f[0])
        .a("component", f[1])
        .a("protocol", f[2].to_ascii_lowercase())
        .a("priority", f[3])
        .a("ip", f[4])
        .a("port", f[5])
        .a("type", f[7]);
    let mut generation = "0";
    let mut i = 8;
    while i + 1 < f.len() {
        match f[i] {
            "raddr" => c = c.a("rel-addr", f[i + 1]),
            "rport" => c = c.a("rel-port", f[i + 1]),
            "tcptype" => c = c.a("tcptype", f[i + 1]),
            "generation" => generation = f[i + 1],
            _ => {}
        }
        i += 2;
    }
    Ok(c.a("generation", generation).a("network", "1").a("id", format!("c{}", f[0])))
}

/// A Jingle `<candidate/>` as an SDP candidate value (without `candidate:`).
pub fn candidate_to_sdp(c: &Element) -> Result<String, JingleError> {
    let need = |n: &'static str| -> Result<&str, JingleError> {
        c.attr(n)
            .filter(|v| !v.is_empty() && v.len() <= 64 && !v.contains(|ch: char| ch.is_whitespace() || ch.is_control()))
            .ok_or_else(|| err(format!("candidate without a valid {n}")))
    };
    let mut s = format!(
        "{} {} {} {} {} {} typ {}",
        need("foundation")?,
        need("component")?,
        need("protocol")?,
        need("priority")?,
        need("ip")?,
        need("port")?,
        need("type")?
    );
    if let (Some(a), Some(p)) = (c.attr("rel-addr"), c.attr("rel-port")) {
        let _ = write!(s, " raddr {a} rport {p}");
    }
    if let Some(t) = c.attr("tcptype") {
        let _ = write!(s, " tcptype {t}");
    }
    let _ = write!(s, " generation {}", c.attr("generation").unwrap_or("0"));
    if s.contains(['\r', '\n']) {
        return Err(err("candidate with a line break"));
    }
    Ok(s)
}

/// Checks a value goes into an SDP line as one token.
fn token<'a>(v: &'a str, what: &str) -> Result<&'a str, JingleError> {
    if v.is_empty() || v.len() > 256 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(format!("bad {what}")));
    }
    Ok(v)
}

/// The other side's Jingle (`<jingle>` of a session-accept or
/// session-initiate) as SDP. `they_initiate`: whether the other side is the
/// session's initiator (gives the direction of `senders`).
pub fn jingle_to_sdp(jingle: &Element, they_initiate: bool) -> Result<String, JingleError> {
    let mut sdp = String::from("v=0\r\no=- 1923518516 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
    let contents: Vec<&Element> = kids(jingle, "content", ns::JINGLE).collect();
    if contents.is_empty() {
        return Err(err("no content"));
    }
    let mids: Vec<&str> = contents.iter().map(|c| token(attr(c, "name"), "content name")).collect::<Result<_, _>>()?;
    let _ = write!(sdp, "a=group:BUNDLE {}\r\na=msid-semantic: WMS *\r\n", mids.join(" "));
    for (content, mid) in contents.iter().zip(&mids) {
        let description = content
            .get_child("description", ns::JINGLE_RTP)
            .ok_or_else(|| err("content without an RTP description"))?;
        let transport = content
            .get_child("transport", ns::JINGLE_ICE_UDP)
            .ok_or_else(|| err("content without an ICE transport"))?;
        let kind = token(attr(description, "media"), "media")?;
        if kind != "audio" && kind != "video" {
            return Err(err("media is neither audio nor video"));
        }
        let payloads: Vec<&Element> = kids(description, "payload-type", ns::JINGLE_RTP).collect();
        let ids: Vec<&str> = payloads.iter().map(|p| token(attr(p, "id"), "payload id")).collect::<Result<_, _>>()?;
        if ids.iter().any(|id| id.parse::<u8>().is_err()) {
            return Err(err("bad payload id"));
        }
        let _ = write!(
            sdp,
            "m={kind} 9 UDP/TLS/RTP/SAVPF {}\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n",
            ids.join(" ")
        );
        let _ = write!(
            sdp,
            "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
            token(attr(transport, "ufrag"), "ufrag")?,
            token(attr(transport, "pwd"), "pwd")?
        );
        if let Some(fp) = transport.get_child("fingerprint", ns::JINGLE_DTLS) {
            let text = fp.text();
            let _ = write!(
                sdp,
                "a=fingerprint:{} {}\r\na=setup:{}\r\n",
                token(attr(fp, "hash"), "fingerprint hash")?,
                token(text.trim(), "fingerprint")?,
                token(fp.attr("setup").unwrap_or("actpass"), "setup")?
            );
        }
        let direction = match (attr(content, "senders"), they_initiate) {
            ("" | "both", _) => "sendrecv",
            ("none", _) => "inactive",
            ("initiator", true) | ("responder", false) => "sendonly",
            _ => "recvonly",
        };
        let _ = write!(sdp, "a=mid:{mid}\r\na={direction}\r\n");
        if description.has_child("rtcp-mux", ns::JINGLE_RTP) {
            sdp.push_str("a=rtcp-mux\r\n");
        }
        for ext in kids(description, "rtp-hdrext", ns::JINGLE_HDREXT) {
            let id = token(attr(ext, "id"), "extension id")?;
            let _ = write!(sdp, "a=extmap:{id} {}\r\n", token(attr(ext, "uri"), "extension uri")?);
        }
        if description.has_child("extmap-allow-mixed", ns::JINGLE_HDREXT) {
            sdp.push_str("a=extmap-allow-mixed\r\n");
        }
        for (p, id) in payloads.iter().zip(&ids) {
            let name = token(attr(p, "name"), "codec name")?;
            let clock = token(attr(p, "clockrate"), "clock rate")?;
            match p.attr("channels").filter(|c| *c != "1") {
                Some(ch) => {
                    let _ = write!(sdp, "a=rtpmap:{id} {name}/{clock}/{}\r\n", token(ch, "channels")?);
                }
                None => {
                    let _ = write!(sdp, "a=rtpmap:{id} {name}/{clock}\r\n");
                }
            }
            let params: Vec<String> = kids(p, "parameter", ns::JINGLE_RTP)
                .map(|param| {
                    let value = token(attr(param, "value"), "parameter value")?;
                    Ok(match attr(param, "name") {
                        "" => value.to_owned(),
                        n => format!("{}={value}", token(n, "parameter name")?),
                    })
                })
                .collect::<Result<_, JingleError>>()?;
            if !params.is_empty() {
                let _ = write!(sdp, "a=fmtp:{id} {}\r\n", params.join(";"));
            }
            for fb in kids(p, "rtcp-fb", ns::JINGLE_RTCP_FB) {
                let t = token(attr(fb, "type"), "rtcp-fb type")?;
                match fb.attr("subtype") {
                    Some(s) => {
                        let _ = write!(sdp, "a=rtcp-fb:{id} {t} {}\r\n", token(s, "rtcp-fb subtype")?);
                    }
                    None => {
                        let _ = write!(sdp, "a=rtcp-fb:{id} {t}\r\n");
                    }
                }
            }
        }
        for group in kids(description, "ssrc-group", ns::JINGLE_SSMA) {
            let ids: Vec<&str> = kids(group, "source", ns::JINGLE_SSMA)
                .map(|s| token(attr(s, "ssrc"), "ssrc"))
                .collect::<Result<_, _>>()?;
            let _ = write!(sdp, "a=ssrc-group:{} {}\r\n", token(attr(group, "semantics"), "semantics")?, ids.join(" "));
        }
        for source in kids(description, "source", ns::JINGLE_SSMA) {
            let ssrc = token(attr(source, "ssrc"), "ssrc")?;
            ssrc.parse::<u32>().map_err(|_| err("bad ssrc"))?;
            let msid = kids(source, "parameter", ns::JINGLE_SSMA)
                .find(|p| attr(p, "name") == "msid")
                .map(|p| attr(p, "value"));
            let label = source.attr("name").map(|n| token(n, "source name")).transpose()?;
            let _ = write!(sdp, "a=ssrc:{ssrc} cname:{}\r\n", label.unwrap_or("remote"));
            if let Some(msid) = msid {
                let msid = msid.split(' ').map(|part| token(part, "msid")).collect::<Result<Vec<_>, _>>()?;
                let _ = write!(sdp, "a=ssrc:{ssrc} msid:{}\r\n", msid.join(" "));
            }
        }
        for c in kids(transport, "candidate", ns::JINGLE_ICE_UDP) {
            let _ = write!(sdp, "a=candidate:{}\r\n", candidate_to_sdp(c)?);
        }
    }
    Ok(sdp)
}

/// The SSRCs each content of a Jingle description announces (for the
/// engine to know whose media arrives on which SSRC).
pub fn announced_ssrcs(jingle: &Element) -> Vec<u32> {
    kids(jingle, "content", ns::JINGLE)
        .filter_map(|c| c.get_child("description", ns::JINGLE_RTP))
        .flat_map(|d| kids(d, "source", ns::JINGLE_SSMA))
        .filter_map(|s| s.attr("ssrc")?.parse().ok())
        .collect()
}
