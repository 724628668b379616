//! The appliance's TOML config (and the settings overlay): parsing and
//! validation never panic, and what validates renders back to TOML that
//! parses to the same document.
#![no_main]

use cloakroom_appliance::config::{Settings, parse_config, render_config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(file) = parse_config(text) {
        if Settings::from_file(&file).is_ok() {
            let again = parse_config(&render_config(&file)).expect("rendered config parses");
            assert_eq!(again, file);
        }
    }
});
