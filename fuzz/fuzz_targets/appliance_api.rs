//! Request bodies of the appliance's JSON API (from any browser on the
//! network): parsing and validating never panics, whatever the route.
#![no_main]

use cloakroom_appliance::web::api::check_request;
use libfuzzer_sys::fuzz_target;

const ROUTES: [&str; 5] = ["/api/pair", "/api/scan", "/api/join", "/api/mute", "/api/settings"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let route = ROUTES[usize::from(selector) % ROUTES.len()];
    let _ = check_request(route, body);
});
