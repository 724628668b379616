//! Jitsi Meet's end-to-end key exchange (work in progress, issue 13).
#![forbid(unsafe_code)]
