//! Syslog events (session-start, command, session-end, delivery) as logfmt lines, through a reconnecting logger.

use crate::config;

/// A logger that never blocks or fails the caller; lines it cannot send are counted.
pub struct Logger {
    dropped: u64,
}

impl Logger {
    pub fn new(_cfg: &config::Syslog) -> Logger {
        Logger { dropped: 0 }
    }

    /// Send one event; returns false (and counts it) when it could not be sent.
    pub fn event(&mut self, _fields: &[(&str, String)]) -> bool {
        self.dropped += 1;
        false
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

use crate::hook::fifo::CommandRecord;
use crate::record::meta::Meta;

/// `event=session-start …`
pub fn session_start(_log: &mut Logger, _meta: &Meta) {}

/// `event=command …`
pub fn command(_log: &mut Logger, _meta: &Meta, _rec: &CommandRecord) {}

/// `event=session-end …`
pub fn session_end(_log: &mut Logger, _meta: &Meta) {}

/// `event=error rec=… error="…"`: something an administrator must look at.
pub fn error(_log: &mut Logger, _rec: &str, _msg: &str) {}

/// `event=delivery rec=… result=sent|queued|failed attempt=… error="…"`
pub fn delivery(_log: &mut Logger, _rec: &str, _result: &str, _attempt: u32, _error: Option<&str>) {
}
