//! Logging: tracing to stderr (journald adds its own time stamps, so under
//! systemd the lines carry none and no colours), and the recent lines kept
//! for the admin page's log view.
//!
//! Nothing secret is ever logged: links go through `MeetingLink`'s
//! redacting `Display`, keys and pairing codes are never formatted.

use std::fmt::Write as _;
use std::io::IsTerminal as _;

use cloakroom_appliance::web::LogBuffer;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the global subscriber; returns the buffer the page reads.
pub fn init() -> LogBuffer {
    let logs = LogBuffer::default();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,webrtc=warn,rtc=warn"));
    // systemd sets JOURNAL_STREAM when stderr goes to the journal.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(!journal && std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter).with(PageLayer { logs: logs.clone() });
    if journal {
        registry.with(stderr.without_time()).init();
    } else {
        registry.with(stderr).init();
    }
    logs
}

/// Copies info and more severe events into the page's [`LogBuffer`].
struct PageLayer {
    logs: LogBuffer,
}

impl<S: Subscriber> Layer<S> for PageLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::INFO {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        let level = match level {
            Level::ERROR => "error",
            Level::WARN => "warn",
            _ => "info",
        };
        self.logs.push(level, line.text);
    }
}

/// `message key=value …`, like the terminal shows it.
#[derive(Default)]
struct Line {
    text: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let mut head = format!("{value:?}");
            if !self.text.is_empty() {
                head.push(' ');
                head.push_str(&self.text);
            }
            self.text = head;
        } else {
            if !self.text.is_empty() {
                self.text.push(' ');
            }
            let _ = write!(self.text, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            if !self.text.is_empty() {
                self.text.push(' ');
            }
            let _ = write!(self.text, "{}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_reach_the_page_buffer_with_their_fields() {
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::registry().with(PageLayer { logs: logs.clone() });
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(feed = 7, name = "Ana", "subscribing");
            tracing::debug!("not for the page");
            tracing::warn!("frame does not open");
        });
        let lines = logs.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].level, "info");
        assert_eq!(lines[0].message, "subscribing feed=7 name=Ana");
        assert_eq!(lines[1].level, "warn");
        assert_eq!(lines[1].message, "frame does not open");
    }
}
