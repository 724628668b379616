//! Meeting links from users (pasted, scanned from QR codes): parsing never
//! panics, and whatever parses shows no fragment in `Display`/`Debug` and
//! round-trips its server URL without `#`.
#![no_main]

use cloakroom_meeting::MeetingLink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(link) = MeetingLink::parse(text) {
        let shown = format!("{link} {link:?}");
        assert!(shown.contains("[redacted]"));
        let fragment = text.split_once('#').map(|(_, f)| f).unwrap_or("");
        if fragment.len() >= 8 {
            assert!(!shown.contains(fragment), "fragment shown");
        }
        assert!(!link.server_url().contains('#'));
    }
});
