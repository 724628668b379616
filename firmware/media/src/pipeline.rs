//! Shared GStreamer plumbing: making elements, setting their properties
//! without panicking, starting a pipeline, and turning bus errors into
//! typed [`MediaError`]s.

use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use crate::MediaError;

/// Which device an element stands for, so its errors become typed.
#[derive(Clone, Debug)]
pub(crate) enum DeviceRole {
    Camera,
    Microphone,
    Speaker,
    Display,
}

/// A pipeline plus what is needed to explain its failures. Stops the
/// pipeline when dropped.
pub(crate) struct Pipeline {
    pub(crate) bin: gst::Pipeline,
    label: &'static str,
    devices: Vec<(String, DeviceRole, String)>,
}

impl Pipeline {
    pub(crate) fn new(label: &'static str) -> Result<Self, MediaError> {
        crate::init()?;
        Ok(Self { bin: gst::Pipeline::with_name(label), label, devices: Vec::new() })
    }

    /// Notes that errors from element `element` concern `device`.
    pub(crate) fn device(&mut self, element: &str, role: DeviceRole, device: &str) {
        self.devices.push((element.to_owned(), role, device.to_owned()));
    }

    /// Adds elements and links them in order.
    pub(crate) fn chain(&self, elements: &[gst::Element]) -> Result<(), MediaError> {
        self.bin.add_many(elements).map_err(|e| self.failure("bin", e.to_string()))?;
        gst::Element::link_many(elements).map_err(|e| self.failure("link", e.to_string()))
    }

    /// Links two elements already in the bin.
    pub(crate) fn link(&self, a: &gst::Element, b: &gst::Element) -> Result<(), MediaError> {
        a.link(b).map_err(|e| self.failure(&format!("{} → {}", a.name(), b.name()), e.to_string()))
    }

    /// Sets the pipeline playing; a refusal is explained from the bus, so a
    /// missing camera comes back as [`MediaError::CameraMissing`].
    pub(crate) fn start(&self) -> Result<(), MediaError> {
        if self.bin.set_state(gst::State::Playing).is_ok() {
            return Ok(());
        }
        let error = self.error_within(Duration::from_millis(500), true).unwrap_or_else(|| MediaError::StateChange {
            pipeline: self.label.to_owned(),
            state: "playing".to_owned(),
        });
        let _ = self.bin.set_state(gst::State::Null);
        Err(error)
    }

    /// The first error on the bus, if any, without waiting. Device errors
    /// while running are [`MediaError::DeviceLost`].
    pub(crate) fn check(&self) -> Result<(), MediaError> {
        match self.error_within(Duration::ZERO, false) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits up to `timeout` for an error on the bus.
    pub(crate) fn error_within(&self, timeout: Duration, starting: bool) -> Option<MediaError> {
        let bus = self.bin.bus()?;
        let timeout = gst::ClockTime::from_nseconds(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
        let msg = bus.timed_pop_filtered(timeout, &[gst::MessageType::Error])?;
        let gst::MessageView::Error(err) = msg.view() else {
            return None;
        };
        let element = err.src().map(|s| s.name().to_string()).unwrap_or_default();
        let message = match err.debug() {
            Some(debug) => format!("{} ({debug})", err.error()),
            None => err.error().to_string(),
        };
        Some(self.classify(&element, err.error(), message, starting))
    }

    fn classify(&self, element: &str, error: glib::Error, message: String, starting: bool) -> MediaError {
        let device = self.devices.iter().find(|(name, ..)| name == element);
        let is_resource = error.kind::<gst::ResourceError>().is_some();
        match device {
            Some((_, role, device)) if is_resource && starting => match role {
                DeviceRole::Camera => MediaError::CameraMissing { device: device.clone() },
                DeviceRole::Microphone => MediaError::MicrophoneMissing { device: device.clone() },
                DeviceRole::Speaker | DeviceRole::Display => MediaError::DeviceLost { device: device.clone(), message },
            },
            Some((_, _, device)) => MediaError::DeviceLost { device: device.clone(), message },
            None => self.failure(element, message),
        }
    }

    pub(crate) fn failure(&self, element: &str, message: String) -> MediaError {
        MediaError::Pipeline { pipeline: self.label.to_owned(), element: element.to_owned(), message }
    }

    pub(crate) fn label(&self) -> &'static str {
        self.label
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.bin.set_state(gst::State::Null);
    }
}

/// Makes an element, naming it for logs and errors.
pub(crate) fn make(factory: &str, name: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory).name(name).build().map_err(|_| MediaError::missing(factory))
}

/// Sets a numeric property whatever its integer or float type, refusing
/// unknown properties and out-of-range values instead of panicking.
pub(crate) fn set_number(
    element: &impl IsA<glib::Object>,
    property: &'static str,
    value: i64,
) -> Result<(), MediaError> {
    let pspec = writable(element, property)?;
    let out_of_range = || MediaError::InvalidSetting {
        name: property,
        reason: format!("{value} is out of range for {}", described(element)),
    };
    let t = pspec.value_type();
    let v: glib::Value = if t == glib::Type::U32 {
        u32::try_from(value).map_err(|_| out_of_range())?.to_value()
    } else if t == glib::Type::I32 {
        i32::try_from(value).map_err(|_| out_of_range())?.to_value()
    } else if t == glib::Type::U64 {
        u64::try_from(value).map_err(|_| out_of_range())?.to_value()
    } else if t == glib::Type::I64 {
        value.to_value()
    } else if t == glib::Type::F64 {
        // Property values here are small; the conversion is exact.
        (value as f64).to_value()
    } else {
        return Err(MediaError::InvalidSetting {
            name: property,
            reason: format!("{} is not a number on {}", t.name(), described(element)),
        });
    };
    // The value was built with the property's own type, so this cannot panic.
    element.set_property_from_value(property, &v);
    Ok(())
}

/// Sets any property from its string form (enum nicks, flags, booleans,
/// structures), refusing bad values instead of panicking.
pub(crate) fn set_text(
    element: &impl IsA<glib::Object>,
    property: &'static str,
    value: &str,
) -> Result<(), MediaError> {
    use gst::prelude::GstValueExt;
    let pspec = writable(element, property)?;
    let v = glib::Value::deserialize(value, pspec.value_type()).map_err(|_| MediaError::InvalidSetting {
        name: property,
        reason: format!("{value:?} is not valid for {}", described(element)),
    })?;
    element.set_property_from_value(property, &v);
    Ok(())
}

fn writable(element: &impl IsA<glib::Object>, property: &'static str) -> Result<glib::ParamSpec, MediaError> {
    // A construct-only property is flagged writable too, but setting it on a
    // built element panics in GLib's bindings.
    let settable = |p: &glib::ParamSpec| {
        p.flags().contains(glib::ParamFlags::WRITABLE) && !p.flags().contains(glib::ParamFlags::CONSTRUCT_ONLY)
    };
    element.find_property(property).filter(settable).ok_or_else(|| MediaError::InvalidSetting {
        name: property,
        reason: format!("{} has no writable property {property}", described(element)),
    })
}

/// A caps filter element with the given caps.
pub(crate) fn caps_filter(name: &str, caps: &gst::Caps) -> Result<gst::Element, MediaError> {
    let filter = make("capsfilter", name)?;
    // capsfilter's `caps` property is always GstCaps: cannot panic.
    filter.set_property("caps", caps);
    Ok(filter)
}

/// Nanoseconds for a GStreamer clock time, from a `Duration`.
pub(crate) fn clock_time(d: Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// An object's name for messages: its GStreamer name, else its type.
fn described(object: &impl IsA<glib::Object>) -> String {
    match object.dynamic_cast_ref::<gst::Object>() {
        Some(o) => o.name().to_string(),
        None => object.type_().name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A running pipeline with one source named like a device.
    fn running(role: DeviceRole) -> (Pipeline, gst::Element) {
        let mut p = Pipeline::new("test").expect("GStreamer initialises");
        let src = make("videotestsrc", "camera").expect("videotestsrc");
        set_text(&src, "is-live", "true").expect("property");
        let sink = make("fakesink", "sink").expect("fakesink");
        p.chain(&[src.clone(), sink]).expect("links");
        p.device("camera", role, "/dev/video7");
        p.start().expect("starts");
        (p, src)
    }

    #[test]
    fn resource_error_from_a_device_while_running_is_device_lost() {
        let (p, camera) = running(DeviceRole::Camera);
        assert!(p.check().is_ok());
        // What v4l2src posts when a USB camera is unplugged.
        let msg = gst::message::Error::builder(gst::ResourceError::Read, "Could not read from resource.")
            .src(&camera)
            .build();
        assert!(camera.post_message(msg).is_ok());
        match p.error_within(Duration::from_secs(2), false) {
            Some(MediaError::DeviceLost { device, message }) => {
                assert_eq!(device, "/dev/video7");
                assert!(message.contains("Could not read"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_from_other_elements_stay_pipeline_errors() {
        let (p, _camera) = running(DeviceRole::Camera);
        let sink = p.bin.by_name("sink").expect("sink");
        let msg = gst::message::Error::builder(gst::CoreError::Failed, "boom").src(&sink).build();
        assert!(sink.post_message(msg).is_ok());
        assert!(matches!(
            p.error_within(Duration::from_secs(2), false),
            Some(MediaError::Pipeline { element, .. }) if element == "sink"
        ));
    }

    #[test]
    fn property_setters_refuse_instead_of_panicking() {
        crate::init().expect("GStreamer initialises");
        let queue = make("queue", "q").expect("queue");
        assert!(set_number(&queue, "max-size-buffers", -1).is_err());
        assert!(set_number(&queue, "no-such-property", 1).is_err());
        assert!(set_number(&queue, "leaky", 1).is_err());
        assert!(set_text(&queue, "leaky", "sideways").is_err());
        assert!(set_text(&queue, "leaky", "downstream").is_ok());
        assert!(set_number(&queue, "max-size-time", 5).is_ok());
        // Construct-only: refused, not a panic.
        let compositor = make("compositor", "c").expect("compositor");
        assert!(set_text(&compositor, "force-live", "true").is_err());
        assert!(make("no-such-element-cloakroom", "x").is_err());
    }
}
