//! Meeting links from users (pasted, scanned from QR codes): parsing never
//! panics, and whatever parses shows no fragment in `Display`/`Debug` and
//! round-trips its server URL without `#`; a link without a key parses only
//! under the optional-key policy, and a link with one parses the same either way.
#![no_main]

use cloakroom_meeting::{KeyPolicy, MeetingLink};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let strict = MeetingLink::parse(text);
    let lenient = MeetingLink::parse_with(text, KeyPolicy::Optional);
    if let Ok(link) = &lenient {
        assert_eq!(strict.is_ok(), link.key().is_some(), "the policies differ only on keyless links");
        assert!(!format!("{link} {link:?}").contains('#') || link.key().is_some());
    } else {
        assert!(strict.is_err());
    }
    if let Ok(link) = strict {
        let shown = format!("{link} {link:?}");
        assert!(shown.contains("[redacted]"));
        let fragment = text.split_once('#').map(|(_, f)| f).unwrap_or("");
        if fragment.len() >= 8 {
            assert!(!shown.contains(fragment), "fragment shown");
        }
        assert!(!link.server_url().contains('#'));
    }
});
