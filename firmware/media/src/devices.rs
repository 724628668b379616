//! What media hardware and software the device has, for the local web page
//! and `cloakroom devices`.
//!
//! Cameras come from V4L2 (the v4l crate): name, driver, bus, and every
//! format with its resolutions and frame rates. Microphones and speakers come
//! from ALSA (the alsa crate), one entry per card and PCM device. Encoders
//! and decoders are those GStreamer has installed, in preference order.
//! Nothing found is a normal state: empty lists, and a report that says so.

use std::fmt;
use std::path::Path;

use serde::Serialize;
use v4l::capability::Flags;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::video::Capture;

use crate::Codec;
use crate::encoder::{available_decoders, available_encoders, installed};

/// Everything the device can capture, play, encode and decode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeviceReport {
    pub cameras: Vec<Camera>,
    pub microphones: Vec<AudioDevice>,
    pub speakers: Vec<AudioDevice>,
    /// Installed encoders, preferred first.
    pub encoders: Vec<CodecElement>,
    /// Installed decoders, preferred first.
    pub decoders: Vec<CodecElement>,
    /// Problems met while looking (a device that could not be opened, no
    /// ALSA at all), so the page can show why something is missing.
    pub notes: Vec<String>,
}

/// An installed GStreamer encoder or decoder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CodecElement {
    /// The element, e.g. `x264enc`.
    pub element: String,
    pub codec: Codec,
    /// Whether it runs on dedicated hardware.
    pub hardware: bool,
}

/// A V4L2 capture device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Camera {
    /// The device node, e.g. `/dev/video0`.
    pub path: String,
    /// The card name, e.g. `HD Pro Webcam C920`.
    pub name: String,
    pub driver: String,
    /// e.g. `usb-0000:01:00.0-1.2`.
    pub bus: String,
    pub formats: Vec<CameraFormat>,
}

/// One pixel format a camera offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CameraFormat {
    /// The FourCC, e.g. `YUYV`, `MJPG`.
    pub fourcc: String,
    pub description: String,
    /// Discrete sizes, or the corners of a stepwise range.
    pub resolutions: Vec<Resolution>,
}

/// A frame size with the frame rates offered at it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
    /// Frames per second, as fractions (e.g. 30/1, 15/2).
    pub frame_rates: Vec<FrameRate>,
}

/// Frames per second as a fraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FrameRate {
    pub numerator: u32,
    pub denominator: u32,
}

/// An ALSA PCM device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AudioDevice {
    /// What to give alsasrc/alsasink, e.g. `hw:CARD=Speakerphone,DEV=0`.
    pub id: String,
    /// The card's name.
    pub card: String,
    /// The PCM device's name.
    pub name: String,
}

impl DeviceReport {
    /// Looks at the real system: `/dev/video*`, ALSA cards, GStreamer.
    pub fn discover() -> Self {
        let mut notes = Vec::new();
        let cameras = cameras(&mut notes);
        let (microphones, speakers) = audio_devices(&mut notes);
        if crate::init().is_err() {
            notes.push("GStreamer could not be initialised: no encoders or decoders".into());
        }
        Self {
            cameras,
            microphones,
            speakers,
            encoders: available_encoders(installed)
                .into_iter()
                .map(|k| CodecElement { element: k.factory().to_owned(), codec: k.codec(), hardware: k.is_hardware() })
                .collect(),
            decoders: available_decoders(installed)
                .into_iter()
                .map(|k| CodecElement { element: k.factory().to_owned(), codec: k.codec(), hardware: k.is_hardware() })
                .collect(),
            notes,
        }
    }
}

impl fmt::Display for DeviceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Cameras:")?;
        if self.cameras.is_empty() {
            writeln!(f, "  no camera found")?;
        }
        for cam in &self.cameras {
            writeln!(f, "  {} — {} ({}, {})", cam.path, cam.name, cam.driver, cam.bus)?;
            for format in &cam.formats {
                let sizes: Vec<String> = format
                    .resolutions
                    .iter()
                    .map(|r| {
                        let rates: Vec<String> = r.frame_rates.iter().map(|f| f.to_string()).collect();
                        format!("{}×{}@{}", r.width, r.height, rates.join("/"))
                    })
                    .collect();
                writeln!(f, "    {} ({}): {}", format.fourcc, format.description, sizes.join(", "))?;
            }
        }
        for (title, list, none) in [
            ("Microphones", &self.microphones, "no microphone found"),
            ("Speakers", &self.speakers, "no speaker found"),
        ] {
            writeln!(f, "{title}:")?;
            if list.is_empty() {
                writeln!(f, "  {none}")?;
            }
            for dev in list {
                writeln!(f, "  {} — {}: {}", dev.id, dev.card, dev.name)?;
            }
        }
        let encoders: Vec<&str> = self.encoders.iter().map(|e| e.element.as_str()).collect();
        let decoders: Vec<&str> = self.decoders.iter().map(|d| d.element.as_str()).collect();
        writeln!(f, "Encoders: {}", list_or_none(&encoders))?;
        writeln!(f, "Decoders: {}", list_or_none(&decoders))?;
        for note in &self.notes {
            writeln!(f, "Note: {note}")?;
        }
        Ok(())
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.denominator == 1 {
            write!(f, "{}", self.numerator)
        } else {
            write!(f, "{}/{}", self.numerator, self.denominator)
        }
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

/// Every V4L2 node that captures video (encoder and decoder nodes, which are
/// memory-to-memory devices, are left out).
fn cameras(notes: &mut Vec<String>) -> Vec<Camera> {
    let mut nodes: Vec<_> = v4l::context::enum_devices().into_iter().map(|n| n.path().to_path_buf()).collect();
    nodes.sort();
    nodes
        .iter()
        .filter_map(|path| match camera(path) {
            Ok(cam) => cam,
            Err(e) => {
                notes.push(format!("{}: {e}", path.display()));
                None
            }
        })
        .collect()
}

fn camera(path: &Path) -> std::io::Result<Option<Camera>> {
    let dev = v4l::Device::with_path(path)?;
    let caps = dev.query_caps()?;
    let captures = caps.capabilities.intersects(Flags::VIDEO_CAPTURE | Flags::VIDEO_CAPTURE_MPLANE);
    let m2m = caps.capabilities.intersects(Flags::VIDEO_M2M | Flags::VIDEO_M2M_MPLANE);
    if !captures || m2m {
        return Ok(None);
    }
    let mut formats = Vec::new();
    // A node that captures metadata only has no formats: not a camera.
    for desc in dev.enum_formats().unwrap_or_default() {
        let mut resolutions = Vec::new();
        for size in dev.enum_framesizes(desc.fourcc).unwrap_or_default() {
            let corners = match size.size {
                FrameSizeEnum::Discrete(d) => vec![(d.width, d.height)],
                FrameSizeEnum::Stepwise(s) => {
                    vec![(s.min_width, s.min_height), (s.max_width, s.max_height)]
                }
            };
            for (width, height) in corners {
                let frame_rates = frame_rates(&dev, desc.fourcc, width, height);
                resolutions.push(Resolution { width, height, frame_rates });
            }
        }
        formats.push(CameraFormat {
            fourcc: desc.fourcc.str().unwrap_or("????").to_owned(),
            description: desc.description,
            resolutions,
        });
    }
    if formats.is_empty() {
        return Ok(None);
    }
    Ok(Some(Camera { path: path.display().to_string(), name: caps.card, driver: caps.driver, bus: caps.bus, formats }))
}

/// Frame rates (the inverse of V4L2's frame intervals), fastest first.
fn frame_rates(dev: &v4l::Device, fourcc: v4l::FourCC, width: u32, height: u32) -> Vec<FrameRate> {
    let mut rates: Vec<FrameRate> = dev
        .enum_frameintervals(fourcc, width, height)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|i| match i.interval {
            FrameIntervalEnum::Discrete(f) => vec![f],
            FrameIntervalEnum::Stepwise(s) => vec![s.min, s.max],
        })
        .filter(|f| f.numerator > 0)
        .map(|f| FrameRate { numerator: f.denominator, denominator: f.numerator })
        .collect();
    rates.sort_by(|a, b| {
        (u64::from(b.numerator) * u64::from(a.denominator)).cmp(&(u64::from(a.numerator) * u64::from(b.denominator)))
    });
    rates.dedup();
    rates
}

/// Capture and playback PCM devices of every ALSA card.
fn audio_devices(notes: &mut Vec<String>) -> (Vec<AudioDevice>, Vec<AudioDevice>) {
    let mut microphones = Vec::new();
    let mut speakers = Vec::new();
    if !Path::new("/dev/snd").exists() {
        notes.push("no ALSA sound devices (/dev/snd is missing)".into());
        return (microphones, speakers);
    }
    for card in alsa::card::Iter::new() {
        // The iterator repeats an error forever; stop at the first.
        let card = match card {
            Ok(card) => card,
            Err(e) => {
                notes.push(format!("ALSA: {e}"));
                break;
            }
        };
        let ctl = match alsa::Ctl::from_card(&card, false) {
            Ok(ctl) => ctl,
            Err(e) => {
                notes.push(format!("ALSA card {}: {e}", card.get_index()));
                continue;
            }
        };
        let (card_id, card_name) = match ctl.card_info() {
            Ok(info) => (info.get_id().unwrap_or_default().to_owned(), info.get_name().unwrap_or_default().to_owned()),
            Err(_) => (card.get_index().to_string(), String::new()),
        };
        for device in alsa::ctl::DeviceIter::new(&ctl) {
            let Ok(number) = u32::try_from(device) else {
                continue;
            };
            for (direction, list) in
                [(alsa::Direction::Capture, &mut microphones), (alsa::Direction::Playback, &mut speakers)]
            {
                if let Ok(info) = ctl.pcm_info(number, 0, direction) {
                    list.push(AudioDevice {
                        id: format!("hw:CARD={card_id},DEV={number}"),
                        card: card_name.clone(),
                        name: info.get_name().unwrap_or_default().to_owned(),
                    });
                }
            }
        }
    }
    (microphones, speakers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_report_says_so_plainly() {
        let text = DeviceReport::default().to_string();
        assert!(text.contains("no camera found"), "{text}");
        assert!(text.contains("no microphone found"), "{text}");
        assert!(text.contains("no speaker found"), "{text}");
        assert!(text.contains("Encoders: none"), "{text}");
    }

    #[test]
    fn report_lists_formats_and_rates() {
        let report = DeviceReport {
            cameras: vec![Camera {
                path: "/dev/video0".into(),
                name: "Webcam".into(),
                driver: "uvcvideo".into(),
                bus: "usb-1".into(),
                formats: vec![CameraFormat {
                    fourcc: "YUYV".into(),
                    description: "YUYV 4:2:2".into(),
                    resolutions: vec![Resolution {
                        width: 640,
                        height: 480,
                        frame_rates: vec![
                            FrameRate { numerator: 30, denominator: 1 },
                            FrameRate { numerator: 15, denominator: 2 },
                        ],
                    }],
                }],
            }],
            encoders: ["x264enc", "vp8enc"]
                .map(|e| CodecElement { element: e.into(), codec: Codec::H264, hardware: false })
                .into(),
            ..DeviceReport::default()
        };
        let text = report.to_string();
        assert!(text.contains("/dev/video0 — Webcam (uvcvideo, usb-1)"), "{text}");
        assert!(text.contains("YUYV (YUYV 4:2:2): 640×480@30/15/2"), "{text}");
        assert!(text.contains("Encoders: x264enc, vp8enc"), "{text}");
    }
}
