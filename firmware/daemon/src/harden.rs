//! Process hardening done by the daemon itself, first thing after logging
//! starts: no core dumps (security review, issue 15 finding 18).
//!
//! A core dump of this process would hold the meeting key, session tokens
//! and the device's private key. The systemd unit sets `LimitCORE=0` too;
//! this covers a daemon started any other way (`--join` from a shell, a
//! distribution's own unit).
//!
//! - `RLIMIT_CORE` 0, soft and hard (setrlimit(2)): the kernel writes no core
//!   file, and the limit cannot be raised again without privilege.
//! - `PR_SET_DUMPABLE` 0 (prctl(2)): the kernel makes no dump at all, also
//!   when `/proc/sys/kernel/core_pattern` pipes to a handler such as
//!   systemd-coredump (a pipe handler is started whatever `RLIMIT_CORE`
//!   says, core(5)); and other processes of the same user cannot ptrace this
//!   one or read its `/proc/<pid>/mem` or `environ`.

use nix::sys::prctl;
use nix::sys::resource::{Resource, setrlimit};

/// Turns core dumps off for this process; a step that fails is logged and
/// the daemon goes on (hardening that is not there must not stop the room).
pub fn disable_core_dumps() {
    if let Err(e) = setrlimit(Resource::RLIMIT_CORE, 0, 0) {
        tracing::warn!("could not set RLIMIT_CORE to 0: {e}");
    }
    if let Err(e) = prctl::set_dumpable(false) {
        tracing::warn!("could not turn off core dumps (PR_SET_DUMPABLE): {e}");
    }
}

#[cfg(test)]
mod tests {
    use nix::sys::resource::getrlimit;

    use super::*;

    #[test]
    fn core_dumps_are_off_afterwards() {
        disable_core_dumps();
        assert_eq!(getrlimit(Resource::RLIMIT_CORE).expect("getrlimit"), (0, 0));
        assert!(!prctl::get_dumpable().expect("get_dumpable"));
    }
}
