//! Delivery: queue a finished recording, compress it, and mail it to the auditors until the mail system accepts it.
//! With `mail.transport = "none"` nothing is mailed, and recordings stay uncompressed in the queue.
//!
//! - `compress`: gzip + SHA-256 in one pass.
//! - `timing`: reading timing files back (orphan repair, head+tail excerpts).
//! - `body`: the text an auditor reads, and escaping of user-controlled text.
//! - `mail`: attachments, the lettre message, transports (sendmail, SMTP, STARTTLS, SMTPS).
//! - `queue`: enqueue, compress (when a transport is configured), deliver with backoff, flush with orphan recovery,
//!   cleanup.

pub mod body;
pub mod compress;
pub mod mail;
pub mod queue;
pub mod timing;

use anyhow::Result;

use crate::config::Config;
use crate::record::meta::{FileSum, Meta};
use crate::spool::layout::{Spool, State};
use crate::syslog::Logger;

/// Called by the spool writer, which holds the recording's lock, once the files in active/<id> are complete:
/// record the sums in `meta`, compress when a mail transport is configured, and move the recording to queue/
/// atomically.
pub fn enqueue_finished(
    cfg: &Config,
    spool: &Spool,
    meta: &mut Meta,
    written: &[(&str, FileSum)],
) -> Result<()> {
    queue::enqueue_with_sums(cfg, spool, meta, written)
}

/// Try to deliver one queued recording now (the writer calls this right after queueing, still holding the lock).
/// A failure leaves it queued for `auditty flush`.
pub fn deliver_now(
    cfg: &Config,
    spool: &Spool,
    meta: &mut Meta,
    log: &mut Logger,
) -> queue::Outcome {
    queue::deliver(cfg, spool, State::Queue, meta, log)
}
