//! Delivery: compress a finished recording, queue it, and mail it to the auditors until the mail system accepts it.

use anyhow::Result;

use crate::config::Config;
use crate::spool::layout::{Spool, State};
use crate::syslog::Logger;

/// Called by the spool writer once a recording's files are complete in active/: make it ready for delivery.
pub fn enqueue_finished(_cfg: &Config, spool: &Spool, id: &str) -> Result<()> {
    spool.move_to(id, State::Active, State::Queue)?;
    Ok(())
}

/// Try to deliver one queued recording now (the writer calls this right after queueing).
pub fn deliver_now(_cfg: &Config, _spool: &Spool, _id: &str, _log: &mut Logger) -> Result<()> {
    Ok(())
}
