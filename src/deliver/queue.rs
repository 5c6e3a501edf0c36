//! The delivery queue: enqueue (sums, gzip when a mail transport is configured, fsync, atomic rename), deliver
//! (gzip first what is still uncompressed) with backoff, permanent failures, `flush` with orphan recovery, damaged
//! entries salvaged and mailed, no further attempts in a run once the transport is down, and spool cleanup
//! (keep_days, max_size) that never deletes a queued recording.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use time::OffsetDateTime;

use crate::config::Config;
use crate::deliver::body;
use crate::deliver::compress;
use crate::deliver::mail::{self, TransportSpec};
use crate::deliver::timing::Timing;
use crate::procfs::ProcStat;
use crate::record::meta::{EndReason, FileSum, Meta};
use crate::record::typescript;
use crate::spool::guard::{self, Registration};
use crate::spool::layout::{self, Spool, State};
use crate::spool::strays;
use crate::syslog::Logger;

/// The footer mark of a recording completed by `flush` after both recorder processes vanished.
pub const RECOVERED_MARK: &str = "incomplete: recovered by auditty flush";
/// The footer mark of the notice `flush` makes for a login whose recording was never created.
pub const NEVER_STARTED_MARK: &str = "not recorded: the recorder was killed as the login began";
/// The footer mark of the notice of a login the spool could not take a recording of (`policy.on_error = open`).
pub const UNRECORDED_MARK: &str = "not recorded: the spool could not take the recording";
/// How long a guard registration whose relay is gone may wait for its writer to withdraw it, before `flush` takes
/// the login for one whose recorder died before the recording existed. A writer withdraws them within milliseconds
/// of its relay's end; only a writer that was killed or stopped leaves them.
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Seconds to wait before the next attempt after `attempts` failed ones: retry_min, doubling, capped at retry_max.
pub fn backoff(cfg: &Config, attempts: u32) -> u64 {
    let shift = attempts.saturating_sub(1).min(30);
    cfg.mail
        .retry_min
        .saturating_mul(1u64 << shift)
        .min(cfg.mail.retry_max)
}

/// The data files of a recording, the ones delivery compresses into `<name>.gz`.
pub const DATA_FILES: [&str; 3] = [layout::TYPESCRIPT, layout::TIMING, layout::INPUT];

/// Is a mail transport configured? With `none` nothing is mailed, so nothing is compressed either. A transport that
/// does not parse counts as configured: the delivery attempt reports it.
pub fn transport_configured(cfg: &Config) -> bool {
    !matches!(
        TransportSpec::parse(&cfg.mail.transport),
        Ok(TransportSpec::None)
    )
}

/// Add `msg` to the recording's problems, unless it is there already (a retried step would repeat it).
fn note_problem(meta: &mut Meta, msg: String) {
    if !meta.write_errors.contains(&msg) {
        meta.write_errors.push(msg);
    }
}

/// Record the sums of the uncompressed `name` computed now. When meta.json already holds other sums for it (taken
/// when it was queued), those are kept, so `auditty verify` shows the mismatch, and the change is noted.
fn record_raw_sum(meta: &mut Meta, name: &str, sum: FileSum) {
    match meta.files.get(name) {
        Some(old) if *old != sum => {
            let msg = format!(
                "{name} changed after it was queued: meta.json recorded {} bytes sha256 {}, it now holds {} bytes \
                 sha256 {} (the recorded sums are kept)",
                old.size, old.sha256, sum.size, sum.sha256
            );
            note_problem(meta, msg);
        }
        Some(_) => {}
        None => {
            meta.files.insert(name.to_string(), sum);
        }
    }
}

/// Temporary files a compression interrupted by a crash left behind (`.<name>.gz.XXXXXX`).
fn remove_stale_temporaries(dir: &Path, gz_name: &str) {
    for p in entries_starting_with(dir, &format!(".{gz_name}.")) {
        let _ = std::fs::remove_file(p);
    }
}

/// The entries of `dir` whose names start with `prefix` (none when it cannot be read).
fn entries_starting_with(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(|e| e.path())
        .collect()
}

/// gzip every data file of the recording in `dir` that is still uncompressed into `<name>.gz` (`level`), and record
/// the sums of both in `meta.files`. Used when a recording is queued with a transport configured, and before a mail
/// is built from a recording queued uncompressed (`mail.transport = "none"` at the time). The caller holds the
/// recording's lock. Returns whether there was anything to compress.
///
/// Safe against a crash at any point: each `.gz` is written to a temporary file, fsynced and renamed into place; the
/// directory is synced and meta.json (with the new sums) written before any uncompressed file is removed. A raw file
/// still present is always compressed again, so a `.gz` left next to it by an interrupted run is redone. A file that
/// cannot be compressed (e.g. the disk is full) stays uncompressed, is noted in `meta.write_errors`, and is
/// compressed in memory when the mail is built.
pub fn compress_recording(level: u32, dir: &Path, meta: &mut Meta) -> bool {
    let mut done_raw = Vec::new();
    let mut any = false;
    for name in DATA_FILES {
        let raw = dir.join(name);
        if !layout::is_regular_file(&raw) {
            continue;
        }
        any = true;
        let gz_name = format!("{name}.gz");
        remove_stale_temporaries(dir, &gz_name);
        match compress::gzip_file(&raw, dir, &gz_name, level) {
            Ok((r, g)) => {
                record_raw_sum(meta, name, r);
                meta.files.insert(gz_name, g);
                done_raw.push(raw);
            }
            Err(e) => {
                let _ = std::fs::remove_file(dir.join(&gz_name));
                meta.files.remove(&gz_name);
                match compress::sum_file(&raw) {
                    Ok(r) => record_raw_sum(meta, name, r),
                    Err(e) => note_problem(meta, format!("{e:#}")),
                }
                note_problem(
                    meta,
                    format!("compressing {name} (kept uncompressed): {e:#}"),
                );
            }
        }
    }
    if done_raw.is_empty() {
        return any;
    }
    // The .gz files' names must be on disk, and their sums in meta.json, before an uncompressed file goes.
    let kept = |meta: &mut Meta, why: String| {
        note_problem(
            meta,
            format!("{why}; the uncompressed files are kept next to their .gz"),
        )
    };
    if let Err(e) = compress::sync_dir(dir) {
        kept(meta, format!("{e:#}"));
        return true;
    }
    if let Err(e) = meta.write(dir) {
        kept(meta, format!("meta.json: {e:#}"));
        return true;
    }
    for raw in done_raw {
        if let Err(e) = std::fs::remove_file(&raw) {
            note_problem(
                meta,
                format!("cannot remove {} after compressing it: {e}", raw.display()),
            );
        }
    }
    let _ = compress::sync_dir(dir);
    true
}

/// Queue the finished recording in active/<id>: record the sums of its files, and move it to queue/ atomically. With
/// a mail transport configured its data files are compressed first (`compress_recording`); with `none` they stay
/// as they are (plain `typescript`, `timing`, `input`, which `scriptreplay` plays directly) and are compressed only
/// when a transport is configured later and `deliver` builds the mail. The caller holds the recording's lock.
/// Compression problems (e.g. a full disk) do not stop the queueing.
pub fn enqueue(cfg: &Config, spool: &Spool, meta: &mut Meta) -> Result<()> {
    enqueue_with_sums(cfg, spool, meta, &[])
}

/// `enqueue`, given the sums of files as their writer wrote them (`written`: the spool writer hashes what it writes,
/// so a finished session is not read back from disk to be summed); other files are summed from disk. Without a
/// transport those sums are recorded; with one, compression sums what it reads anyway.
pub fn enqueue_with_sums(
    cfg: &Config,
    spool: &Spool,
    meta: &mut Meta,
    written: &[(&str, FileSum)],
) -> Result<()> {
    let known = |name: &str| {
        written
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.clone())
    };
    let started = std::time::Instant::now();
    let id = meta.id.clone();
    let dir = spool.recording_dir(State::Active, &id);
    if transport_configured(cfg) {
        compress_recording(cfg.mail.compress_level, &dir, meta);
    } else {
        for name in DATA_FILES {
            let raw = dir.join(name);
            if !layout::is_regular_file(&raw) {
                continue;
            }
            match known(name).map_or_else(|| compress::sum_file(&raw), Ok) {
                Ok(r) => record_raw_sum(meta, name, r),
                Err(e) => note_problem(meta, format!("sha256 of {name}: {e:#}")),
            }
        }
    }
    if let Ok(s) =
        known(layout::COMMANDS).map_or_else(|| compress::sum_file(&dir.join(layout::COMMANDS)), Ok)
    {
        meta.files.insert(layout::COMMANDS.to_string(), s);
    }
    meta.queued_unix = Some(now_unix());
    meta.compress_ms = Some(started.elapsed().as_millis() as u64);
    if meta.next_try_unix.is_none() {
        meta.next_try_unix = meta.queued_unix;
    }
    if let Err(e) = meta.write(&dir) {
        meta.write_errors.push(format!("meta.json: {e:#}"));
    }
    let _ = compress::sync_dir(&dir);
    spool
        .move_to(&id, State::Active, State::Queue)
        .context("cannot queue the recording")?;
    let _ = compress::sync_dir(&spool.state_dir(State::Active));
    let _ = compress::sync_dir(&spool.state_dir(State::Queue));
    Ok(())
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Still queued; the error, and when the next attempt is due.
    Deferred(String),
    /// Still queued, as `Deferred`, and the transport itself failed (`mail::SendError::transport_down`): the rest of
    /// a flush run is not tried.
    TransportDown(String),
    /// Refused for good: moved to failed/.
    Failed(String),
    /// mail.transport is none: left queued, no attempt made.
    Disabled,
}

/// Try to mail the recording in `state`/<id> now. The caller holds the recording's lock.
pub fn deliver(
    cfg: &Config,
    spool: &Spool,
    state: State,
    meta: &mut Meta,
    log: &mut Logger,
) -> Outcome {
    if !transport_configured(cfg) {
        return Outcome::Disabled;
    }
    let id = meta.id.clone();
    let dir = spool.recording_dir(state, &id);
    // Queued while mail.transport was none (or compression failed then): compress before the mail is built.
    let started = std::time::Instant::now();
    if compress_recording(cfg.mail.compress_level, &dir, meta) {
        meta.compress_ms = Some(started.elapsed().as_millis() as u64);
    }
    // A data file that is gone (damage, tampering) cannot come back by waiting: mail what is there, saying so.
    for name in mail::missing_data_files(&dir, meta) {
        let msg = missing_file_problem(name);
        if !meta.write_errors.contains(&msg) {
            crate::syslog::error(log, &id, &msg);
        }
        note_problem(meta, msg);
    }
    meta.attempts = meta.attempts.saturating_add(1);
    let started = std::time::Instant::now();
    let result = mail::build(cfg, &dir, meta)
        .map_err(|e| mail::SendError::transient(format!("{e:#}")))
        .and_then(|b| mail::send(cfg, &b.message).map(|()| b.truncated));
    let now = now_unix();
    meta.send_ms = Some(started.elapsed().as_millis() as u64);
    match result {
        Ok(truncated) => {
            meta.sent_unix = Some(now);
            meta.last_error = None;
            meta.next_try_unix = None;
            meta.failed_unix = None;
            meta.mail_truncated = truncated;
            meta.sent_to = cfg.mail.to.clone();
            if let Err(e) = meta.write(&dir) {
                crate::syslog::error(
                    log,
                    &id,
                    &format!("sent, but cannot update meta.json: {e:#}"),
                );
            }
            crate::syslog::delivery(log, &id, "sent", meta.attempts, None);
            match spool.move_to(&id, state, State::Sent) {
                Ok(_) => {
                    let _ = compress::sync_dir(&spool.state_dir(State::Sent));
                    if cfg.spool.keep_days == 0 && !meta.mail_truncated {
                        let _ = std::fs::remove_dir_all(spool.recording_dir(State::Sent, &id));
                    }
                }
                Err(e) => crate::syslog::error(
                    log,
                    &id,
                    &format!("sent, but cannot move it to sent/: {e:#}"),
                ),
            }
            Outcome::Sent
        }
        Err(e) if e.permanent => {
            meta.last_error = Some(e.message.clone());
            meta.failed_unix = Some(now);
            meta.next_try_unix = None;
            let _ = meta.write(&dir);
            crate::syslog::delivery(log, &id, "failed", meta.attempts, Some(&e.message));
            if state != State::Failed
                && let Err(m) = spool.move_to(&id, state, State::Failed)
            {
                crate::syslog::error(log, &id, &format!("cannot move it to failed/: {m:#}"));
            }
            Outcome::Failed(e.message)
        }
        Err(e) => {
            meta.last_error = Some(e.message.clone());
            meta.next_try_unix = Some(now + backoff(cfg, meta.attempts) as i64);
            let _ = meta.write(&dir);
            crate::syslog::delivery(log, &id, "queued", meta.attempts, Some(&e.message));
            if e.transport_down {
                Outcome::TransportDown(e.message)
            } else {
                Outcome::Deferred(e.message)
            }
        }
    }
}

/// The problem noted in the meta (and so in the mail) of a recording whose data file `name` is gone.
fn missing_file_problem(name: &str) -> String {
    format!(
        "{name} is MISSING from the recording in the spool (neither {name} nor {name}.gz is there as a regular file: \
         damage or tampering; a symlink or a special file in its place is never read); this mail carries what is left"
    )
}

// ------------------------------------------------------------------------------------------------------------------
// Orphans

/// Length of the first line (the header), and the total length, of a data file.
fn header_and_len(path: &Path) -> Result<(u64, u64)> {
    let mut f = layout::open_no_follow(path)?;
    let len = f.metadata()?.len();
    let mut buf = vec![0u8; 64 << 10];
    let n = f.read(&mut buf)?;
    let hdr = buf[..n]
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| i as u64 + 1)
        .unwrap_or(n as u64);
    Ok((hdr, len))
}

/// The typescript header the writer writes for the recording `meta` describes.
fn typescript_header(meta: &Meta) -> Vec<u8> {
    let info = typescript::HeaderInfo {
        command: meta.command.as_deref(),
        term: meta.term.as_deref(),
        tty: meta.tty.as_deref(),
        columns: meta.columns,
        lines: meta.lines,
    };
    typescript::header(&meta.start, &info)
}

/// The spool writer's own footer at the end of the data file `path` (`hdr` header bytes, `len` in all), if it is
/// one: the file ends with a footer as `typescript::footer` writes it, after the header, and `timed`, the bytes the
/// timing's entries give this stream, covers exactly the body before it. Output (and recorded input) is always
/// covered by timing entries, the writer's footer never is; so recorded bytes that merely look like a footer
/// (a `cat` of an old typescript) are not taken for one.
fn writers_footer(
    path: &Path,
    hdr: u64,
    len: u64,
    timed: u64,
) -> Result<Option<typescript::Footer>> {
    use std::io::{Seek, SeekFrom};
    let body = len.saturating_sub(hdr);
    let n = body.min(typescript::FOOTER_MAX as u64);
    let mut f = layout::open_no_follow(path)?;
    let mut tail = vec![0u8; n as usize];
    f.seek(SeekFrom::Start(len - n))
        .and_then(|_| f.read_exact(&mut tail))
        .with_context(|| format!("cannot read the end of {}", path.display()))?;
    let Some(footer) = typescript::footer_at_end(&tail) else {
        return Ok(None);
    };
    let footer_len = footer.bytes().len() as u64;
    Ok((timed == body - footer_len).then_some(footer))
}

/// The value of the last `H <delay> NAME value` entry of an advanced timing named `name`.
fn timing_info<'a>(timing: &'a Timing, name: &str) -> Option<&'a str> {
    timing.entries.iter().rev().find_map(|e| match e {
        crate::deliver::timing::Entry::Other(l) => {
            let l = std::str::from_utf8(l).ok()?;
            let mut f = l.splitn(4, ' ');
            (f.next() == Some("H") && f.nth(1) == Some(name)).then(|| f.next().unwrap_or(""))
        }
        _ => None,
    })
}

/// How the session ended, as the spool writer recorded it, for a recording whose footer it wrote but whose meta.json
/// lacks the end: a killed relay says so in the footer; otherwise only an advanced timing tells (the writer puts
/// `END <reason>` there for every end but the shell's exit, before `DURATION`, and names the signal that stopped
/// the recorder in an `S` entry). Without it, `Incomplete`: the footer's exit code does not tell an exit from a
/// hangup. Returns the reason and the signal's name.
fn writers_end_reason(footer: &typescript::Footer, timing: &Timing) -> (EndReason, Option<String>) {
    match footer.mark.as_deref() {
        Some(typescript::KILLED_MARK) => return (EndReason::Killed, None),
        Some(_) => return (EndReason::Incomplete, None),
        None if timing.classic => return (EndReason::Incomplete, None),
        None => {}
    }
    let reason = match (timing_info(timing, "END"), timing_info(timing, "DURATION")) {
        (Some("exit"), _) | (None, Some(_)) => EndReason::Exit,
        (Some("hangup"), _) => EndReason::Hangup,
        (Some("signal"), _) => EndReason::Signal,
        (Some("killed"), _) => EndReason::Killed,
        _ => EndReason::Incomplete,
    };
    let signal = (reason == EndReason::Signal)
        .then(|| {
            timing.entries.iter().find_map(|e| match e {
                crate::deliver::timing::Entry::Other(l) => {
                    let l = std::str::from_utf8(l).ok()?;
                    let name = l.strip_prefix("S ")?.split(' ').nth(1)?;
                    (name != "SIGWINCH").then(|| name.to_string())
                }
                _ => None,
            })
        })
        .flatten();
    (reason, signal)
}

/// Complete a recording whose writer vanished mid-session: make the timing agree with the data on disk, append the
/// footer with the "incomplete" mark, and fill in meta.json's end. The caller holds the lock.
///
/// A writer that vanished after it had written its footer (before meta.json had the end, or with meta.json damaged
/// since) completed the data files itself: its footer (`writers_footer`) is kept, not given a second one, and the
/// end, exit status and end reason are taken from it (and from the timing's closing entries, which are added only
/// where they are missing). The same for the input log, when it ends with the same footer, timed the same way.
pub fn complete_orphan(dir: &Path, meta: &mut Meta) -> Result<()> {
    let ts_path = dir.join(layout::TYPESCRIPT);
    let in_path = dir.join(layout::INPUT);
    let tm_path = dir.join(layout::TIMING);
    // The room the writer set aside for the end of the recording: the repair below is that end (on a disk that may
    // still be full), and the file is no part of what is queued.
    let _ = std::fs::remove_file(dir.join(layout::RESERVE));
    if ts_path.symlink_metadata().is_err() {
        // The writer vanished before it created the data files (its first act after the fork, while the shell starts),
        // so nothing was recorded: complete an empty typescript, with the header the writer would have written.
        layout::create_exclusive(dir, layout::TYPESCRIPT, 0o640)?
            .write_all(&typescript_header(meta))
            .with_context(|| format!("cannot write {}", ts_path.display()))?;
    }
    let input_present = in_path.symlink_metadata().is_ok();
    let (ts_hdr, ts_len) = header_and_len(&ts_path)?;
    let (in_hdr, in_len) = if input_present {
        header_and_len(&in_path)?
    } else {
        (0, 0)
    };
    let tm_bytes = if tm_path.symlink_metadata().is_err() {
        // Not created yet when the writer vanished (see above): an empty timing.
        Vec::new()
    } else {
        layout::read_no_follow(&tm_path, u64::MAX)?
    };
    let mut timing = Timing::parse(&tm_bytes);
    let timed = timing.totals();
    let ts_footer = writers_footer(&ts_path, ts_hdr, ts_len, timed[0])?;
    // The input log's footer counts only next to the typescript's, the same footer (the writer writes one to both),
    // and timed as its input (a classic timing holds no input entries, so nothing there vouches for it).
    let in_footer = match &ts_footer {
        Some(f) if input_present && !timing.classic => {
            writers_footer(&in_path, in_hdr, in_len, timed[1])?.filter(|g| g == f)
        }
        _ => None,
    };
    let footer_len =
        |f: &Option<typescript::Footer>| f.as_ref().map_or(0, |f| f.bytes().len() as u64);
    let have = [
        ts_len - ts_hdr.min(ts_len) - footer_len(&ts_footer),
        in_len - in_hdr.min(in_len) - footer_len(&in_footer),
    ];
    let changed = timing.reconcile(have, input_present) || timing.dropped_lines > 0;
    let start = body::parse_script_time(&meta.start);
    let offset = start.map(|t| t.offset()).unwrap_or(time::UtcOffset::UTC);
    let mut tm_out = if changed { timing.render() } else { tm_bytes };
    let (end_str, duration, reason, signal, exit_status) = match &ts_footer {
        Some(f) => {
            let (reason, signal) = writers_end_reason(f, &timing);
            let end_unix =
                body::parse_script_time(&f.end).map_or(meta.start_unix, |t| t.unix_timestamp());
            let from_times = end_unix.saturating_sub(meta.start_unix).max(0) as f64;
            let written = timing_info(&timing, "DURATION").and_then(|d| d.parse::<f64>().ok());
            if !timing.classic {
                // The writer's closing entries (END for every end but an exit, DURATION, EXIT_CODE) that it did not
                // get to write; none is written twice.
                let mut t = String::new();
                if written.is_none()
                    && timing_info(&timing, "END").is_none()
                    && reason != EndReason::Exit
                {
                    t += &format!("H 0.000000 END {}\n", reason.as_str());
                }
                if written.is_none() {
                    t += &format!("H 0.000000 DURATION {from_times:.6}\n");
                }
                if let Some(c) = f.exit_code
                    && timing_info(&timing, "EXIT_CODE").is_none()
                {
                    t += &format!("H 0.000000 EXIT_CODE {c}\n");
                }
                tm_out.extend_from_slice(t.as_bytes());
            }
            let duration = written.unwrap_or(from_times);
            (f.end.clone(), duration, reason, signal, f.exit_code)
        }
        None => {
            let last_write = std::fs::metadata(&ts_path)
                .map(|m| m.mtime())
                .unwrap_or_else(|_| now_unix());
            let end_t = OffsetDateTime::from_unix_timestamp(last_write)
                .unwrap_or_else(|_| OffsetDateTime::now_utc());
            let duration = last_write.saturating_sub(meta.start_unix).max(0) as f64;
            if !timing.classic {
                let t = format!("H 0.000000 END incomplete\nH 0.000000 DURATION {duration:.6}\n");
                tm_out.extend_from_slice(t.as_bytes());
            }
            let end_str = typescript::script_time(end_t, offset);
            (end_str, duration, EndReason::Incomplete, None, None)
        }
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".timing.")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o640))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(&tm_out)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("cannot rewrite {}", tm_path.display()))?;
    tmp.persist(&tm_path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot rewrite {}", tm_path.display()))?;
    let recovered = typescript::footer(&end_str, None, Some(RECOVERED_MARK));
    let mut paths = Vec::new();
    if ts_footer.is_none() {
        paths.push(ts_path);
    }
    if input_present && in_footer.is_none() {
        paths.push(in_path);
    }
    for p in paths {
        let mut f = layout::open_no_follow_to_append(&p)?;
        f.write_all(&recovered)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("cannot complete {}", p.display()))?;
    }
    meta.end = Some(end_str);
    meta.duration_secs = Some(duration);
    meta.end_reason = Some(reason);
    meta.signal = signal;
    meta.exit_status = exit_status;
    meta.bytes_out = have[0];
    if input_present {
        meta.bytes_in = have[1];
    }
    let repaired = match (timing.dropped_note(), changed) {
        (Some(d), _) => format!(", the timing file was repaired: {d}"),
        (None, true) => ", the timing file was repaired".to_string(),
        (None, false) => String::new(),
    };
    let now = typescript::script_time(OffsetDateTime::now_utc(), offset);
    meta.write_errors.push(match &ts_footer {
        Some(f) => format!(
            "the spool writer vanished after it had written the end of the typescript (its footer: {}) but before \
             meta.json was complete; completed by auditty flush at {now} from that footer, which is kept{}{}{repaired}",
            String::from_utf8_lossy(f.bytes().trim_ascii()),
            if reason == EndReason::Incomplete && f.mark.is_none() {
                " (how the session ended, exit or hangup, is not known: only an advanced timing records it)"
            } else {
                ""
            },
            if input_present && in_footer.is_none() {
                "; the input log's end was not written, it got the recovered footer"
            } else {
                ""
            },
        ),
        None => format!(
            "both recorder processes vanished; completed by auditty flush at {now} (the last half second of output \
             may be missing{repaired})"
        ),
    });
    meta.write(dir)?;
    Ok(())
}

/// A login whose recorder processes both died before the spool writer had created the recording (it does so once
/// the shell has started up, `writer::let_the_shell_start`): its guard registration is all that remained. Make a
/// recording of it that says so, from what the registration tells (id, uid, PTY, relay, when it was published,
/// which is when the login began), and queue it like any other, so the auditors learn of the login by mail.
/// The caller has made sure no recording of that id exists.
pub fn queue_never_started(
    cfg: &Config,
    spool: &Spool,
    reg: &Registration,
    published: std::time::SystemTime,
) -> Result<Meta> {
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let start = OffsetDateTime::from(published).to_offset(offset);
    let user = crate::session::account::lookup(reg.uid)
        .map(|u| u.name)
        .unwrap_or_else(|| reg.uid.to_string());
    let dir = spool.create_active(&reg.id)?;
    let Some(_lock) = layout::lock_new(&dir)? else {
        anyhow::bail!("{} is locked by another process", dir.display());
    };
    let base = meta_of_another_login(
        &reg.id,
        &user,
        reg.uid,
        start,
        crate::config::TimingFormat::Classic,
    );
    let found_at = typescript::script_time(OffsetDateTime::now_utc(), offset);
    let (end_reason, why, mark) = if reg.unrecorded.is_empty() {
        (
            EndReason::NeverStarted,
            format!(
                "no recording was created: the relay (pid {}) and the spool writer were both gone before the writer \
                 created the recording (killed, or stopped and killed, within the login's first moments); the \
                 login's guard registration, published {}, was found by auditty flush at {found_at}",
                reg.relay_pid, base.start
            ),
            NEVER_STARTED_MARK,
        )
    } else {
        (
            EndReason::Unrecorded,
            format!(
                "no recording was created: the spool could not take it when the login began ({}), and \
                 policy.on_error = open let the login go on unrecorded; the note the login left in the guard \
                 registry, published {}, was found by auditty flush at {found_at}",
                reg.unrecorded, base.start
            ),
            UNRECORDED_MARK,
        )
    };
    let mut meta = Meta {
        pty: Some(reg.pty.clone()),
        relay_pid: reg.relay_pid,
        writer_pid: 0,
        columns: 0,
        lines: 0,
        end: Some(base.start.clone()),
        duration_secs: Some(0.0),
        end_reason: Some(end_reason),
        write_errors: vec![why],
        ..base
    };
    let mut ts = typescript_header(&meta);
    ts.extend_from_slice(&typescript::footer(&meta.start, None, Some(mark)));
    layout::create_exclusive(&dir, layout::TYPESCRIPT, 0o640)?
        .write_all(&ts)
        .with_context(|| format!("cannot write {}", dir.join(layout::TYPESCRIPT).display()))?;
    layout::create_exclusive(&dir, layout::TIMING, 0o640)?;
    meta.write(&dir)?;
    enqueue(cfg, spool, &mut meta)?;
    Ok(meta)
}

/// If a live recording's writer is stopped (SIGSTOP by the user), let it go on (SIGCONT): a stopped writer holds its
/// lock and would delay delivery for ever. Only done for a process that is really an auditty writer.
fn continue_stopped_writer(meta: &Meta) -> bool {
    let pid = meta.writer_pid;
    if pid == 0 {
        return false;
    }
    if ProcStat::of(pid).map(|s| s.state) != Some('T') {
        return false;
    }
    let ours = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let me = std::fs::read_link("/proc/self/exe").ok();
    if ours.is_none() || ours != me {
        return false;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .is_ok()
}

// ------------------------------------------------------------------------------------------------------------------
// flush

/// What a flush did.
#[derive(Debug, Default)]
pub struct Report {
    pub recovered: Vec<String>,
    /// Logins whose recorder died before the recording existed; a notice was queued for each.
    pub never_started: Vec<String>,
    /// Notices queued for logins the spool could not take a recording of (`policy.on_error = open`).
    pub unrecorded: Vec<String>,
    pub sent: Vec<String>,
    pub deferred: Vec<(String, String)>,
    pub failed: Vec<(String, String)>,
    pub busy: Vec<String>,
    pub removed: Vec<String>,
    /// Problems an administrator must look at.
    pub errors: Vec<String>,
    /// Stray entries of the state directories an earlier flush reported, still there unchanged (not in `errors`).
    pub strays_reported_earlier: Vec<PathBuf>,
    pub disabled: usize,
}

fn lock(dir: &Path) -> Result<Option<layout::RecordingLock>> {
    layout::try_lock(dir)
}

/// Tell the administrator of a problem with the recording `id`: syslog, and the flush report (its stderr).
fn report_problem(report: &mut Report, log: &mut Logger, id: &str, msg: &str) {
    crate::syslog::error(log, id, msg);
    report.errors.push(format!("{id}: {msg}"));
}

/// The recording's meta.json, for the recording its directory names: the directory decides which recording this
/// is (a meta.json naming another id is reported, and corrected, so that nothing is mailed or written under the
/// other recording's name). A meta.json that cannot be parsed (damage, tampering) is set aside, never overwritten,
/// and the meta rebuilt from what the directory tells (`salvage_damaged_meta`). `None` (reported) when even that
/// fails: the recording is left as it is, for the next flush.
fn read_meta(dir: &Path, id: &str, report: &mut Report, log: &mut Logger) -> Option<Meta> {
    match Meta::read(&dir.join(layout::META)) {
        Ok(mut m) => {
            if m.id != id {
                report.errors.push(format!(
                    "{id}: its meta.json names recording {:?}; treated as {id}",
                    m.id
                ));
                m.id = id.to_string();
            }
            Some(m)
        }
        Err(e) => match salvage_damaged_meta(dir, id, &format!("{e:#}")) {
            Ok((meta, kept)) => {
                let msg = format!(
                    "{e:#}: kept as {}, the meta rebuilt from the recording's id, directory and typescript header; \
                     delivering with what is known",
                    kept.display()
                );
                report_problem(report, log, id, &msg);
                Some(meta)
            }
            Err(s) => {
                let msg = format!("{e:#}: {s:#}; left as it is for the next flush");
                report_problem(report, log, id, &msg);
                None
            }
        },
    }
}

/// The meta of the recording in `dir` (its lock held): its meta.json (`read_meta`), or, without one, rebuilt
/// (`rebuilt_meta`) with `problem` noted in it for the mail, written, and `report` reported. `None` when the
/// recording is to be left for now (moved meanwhile, or a problem reported).
fn meta_or_rebuilt(
    dir: &Path,
    id: &str,
    problem: &str,
    report_as: &str,
    report: &mut Report,
    log: &mut Logger,
) -> Option<Meta> {
    if dir.join(layout::META).exists() {
        return read_meta(dir, id, report, log);
    }
    if !dir.is_dir() {
        return None; // moved meanwhile
    }
    let meta = rebuilt_meta(dir, id, problem.to_string());
    if let Err(e) = meta.write(dir) {
        let msg = format!("{report_as}; but the rebuilt meta.json cannot be written: {e:#}");
        report_problem(report, log, id, &msg);
        return None;
    }
    report_problem(report, log, id, report_as);
    Some(meta)
}

/// The `meta.json.corrupt*` in `dir` that is the same file as `damaged` (a hard link made by an earlier flush).
fn already_kept_aside(dir: &Path, damaged: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let md = damaged.symlink_metadata().ok()?;
    if md.nlink() < 2 {
        return None;
    }
    let prefix = format!("{}.corrupt", layout::META);
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let same = e.file_name().to_string_lossy().starts_with(&prefix)
            && e.metadata()
                .is_ok_and(|m| m.ino() == md.ino() && m.dev() == md.dev());
        same.then(|| e.path())
    })
}

/// Set the damaged meta.json of the recording in `dir` aside as `meta.json.corrupt` (`.corrupt.1`, … when an
/// earlier one is there: none is ever overwritten), rebuild the meta (`rebuilt_meta`) with the damage noted, and
/// write it. Returns the meta and where the damaged file is kept.
fn salvage_damaged_meta(dir: &Path, id: &str, error: &str) -> Result<(Meta, PathBuf)> {
    let damaged = dir.join(layout::META);
    // Set aside by an earlier flush that could not write the rebuilt meta (a full disk): the same file, kept once.
    let mut kept = already_kept_aside(dir, &damaged);
    for n in 0..1000 {
        if kept.is_some() {
            break;
        }
        let name = match n {
            0 => format!("{}.corrupt", layout::META),
            n => format!("{}.corrupt.{n}", layout::META),
        };
        let p = dir.join(name);
        // A hard link fails rather than replace an existing name (and does not follow a symlink).
        match std::fs::hard_link(&damaged, &p) {
            Ok(()) => {
                kept = Some(p);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot link {} to {}", damaged.display(), p.display())
                });
            }
        }
    }
    let kept =
        kept.with_context(|| format!("too many damaged meta.json copies in {}", dir.display()))?;
    let meta = rebuilt_meta(
        dir,
        id,
        format!(
            "meta.json was damaged ({error}); it is kept as {} and the meta was rebuilt by auditty flush from the \
             recording's id, directory and typescript header (the delivery history, end and exit status are unknown)",
            kept.file_name().unwrap_or_default().to_string_lossy()
        ),
    );
    // Replaces the damaged meta.json (its bytes are kept under the other name).
    meta.write(dir).with_context(|| {
        format!(
            "kept as {}, but the rebuilt meta.json cannot be written",
            kept.display()
        )
    })?;
    let _ = compress::sync_dir(dir);
    Ok((meta, kept))
}

/// Deliver every due recording, recover orphans, retry failed ones with `all`, and clean up.
pub fn flush(cfg: &Config, spool: &Spool, all: bool, log: &mut Logger) -> Result<Report> {
    flush_by(cfg, spool, all, log, &now_unix)
}

/// `flush`, with `clock` telling the time (Unix seconds) for its due checks and cleanup: a test's clock ticks at
/// the moment it chooses.
fn flush_by(
    cfg: &Config,
    spool: &Spool,
    all: bool,
    log: &mut Logger,
    clock: &dyn Fn() -> i64,
) -> Result<Report> {
    let mut report = Report::default();
    let now = clock();
    // 0. Logins whose recording was never created: their guard registration outlived both recorder processes.
    for a in guard::abandoned(&cfg.spool.run_dir, ABANDONED_AFTER) {
        let id = &a.registration.id;
        let found = spool.find(id);
        if let Some((State::Active, dir)) = &found
            && !layout::lock_is_free(dir)
        {
            // Its writer is alive: it withdraws the registration itself. (Its relay only looked gone, e.g. from
            // another pid namespace.)
            continue;
        }
        if found.is_none() {
            match queue_never_started(cfg, spool, &a.registration, a.published) {
                Ok(meta) if a.registration.unrecorded.is_empty() => {
                    let msg = format!(
                        "the login of {} on {} (relay pid {}) was not recorded: its recorder processes were killed \
                         before the recording was created; a notice is queued for the auditors",
                        meta.user, a.registration.pty, a.registration.relay_pid
                    );
                    crate::syslog::error(log, id, &msg);
                    report.never_started.push(id.clone());
                }
                Ok(meta) => {
                    let msg = format!(
                        "the login of {} on {} was not recorded: the spool could not take its recording ({}), and \
                         policy.on_error = open let it go on; a notice is queued for the auditors",
                        meta.user, a.registration.pty, a.registration.unrecorded
                    );
                    crate::syslog::error(log, id, &msg);
                    report.unrecorded.push(id.clone());
                }
                // Another flush, running at the same time, made it.
                Err(_) if spool.find(id).is_some() => {}
                Err(e) => {
                    // The registration stays, for the next flush.
                    let msg =
                        format!("cannot queue the notice of a login that was not recorded: {e:#}");
                    crate::syslog::error(log, id, &msg);
                    report.errors.push(format!("{id}: {msg}"));
                    continue;
                }
            }
        }
        // Either way the registration has served: a recording of that id now exists.
        a.remove();
    }
    // Entries of the state directories that are not recording directories (a symlink, a plain file): reported,
    // never followed nor removed (`Spool::list` only lists directories); each once, while it stays the same
    // (`strays::review`: `<spool>/reported-strays`), so a flush run every minute does not fail every minute for it.
    let strays = strays::review(spool);
    for s in &strays.new {
        let msg = format!(
            "{} is {}, not a recording directory: left as it is (not followed, not removed); find out how it got \
             there, and move or remove it (reported once: auditty flush mentions it again only if it changes)",
            s.path.display(),
            s.what
        );
        crate::syslog::error(log, "-", &msg);
        report.errors.push(msg);
    }
    for msg in strays.problems {
        crate::syslog::error(log, "-", &msg);
        report.errors.push(msg);
    }
    report.strays_reported_earlier = strays.known.into_iter().map(|s| s.path).collect();
    let mut attempt = Attempts::default();
    // 1. Orphans: active recordings whose writer is gone (their lock is free).
    for id in spool.list(State::Active)? {
        let dir = spool.recording_dir(State::Active, &id);
        if !dir.join(layout::META).exists() {
            // Being created (the writer takes the lock, then writes meta.json), or a writer that never wrote it
            // (a full disk at the login, killed in between): after a minute with the lock free, rebuilt below.
            if !older_than(&dir, ABANDONED_AFTER) || !layout::lock_is_free(&dir) {
                continue;
            }
        }
        let guard = match lock(&dir) {
            Ok(Some(g)) => g,
            Ok(None) => {
                if let Ok(m) = Meta::read(&dir.join(layout::META))
                    && continue_stopped_writer(&m)
                {
                    let msg = format!(
                        "its writer (pid {}) was stopped (SIGSTOP), which would hold back the recording; sent SIGCONT",
                        m.writer_pid
                    );
                    crate::syslog::error(log, &id, &msg);
                    report.errors.push(format!("{id}: {msg}"));
                }
                continue;
            }
            Err(_) => continue, // moved meanwhile
        };
        let Some(mut meta) = meta_or_rebuilt(
            &dir,
            &id,
            "meta.json was never written: the user, start and terminal are rebuilt by auditty flush from the \
             recording's id, directory and typescript header (the shell and exit status are unknown)",
            "its meta.json was never written (a full disk when the login began, or the writer killed while creating \
             the recording): rebuilt from the recording's id and directory, completed and queued",
            &mut report,
            log,
        ) else {
            continue;
        };
        if meta.end.is_none()
            && let Err(e) = complete_orphan(&dir, &mut meta)
        {
            let msg = format!("cannot complete the orphaned recording: {e:#}");
            crate::syslog::error(log, &id, &msg);
            report.errors.push(format!("{id}: {msg}"));
            continue;
        }
        if let Err(e) = enqueue(cfg, spool, &mut meta) {
            report.errors.push(format!("{id}: {e:#}"));
            continue;
        }
        remove_fifo_dirs(&cfg.hook.fifo_dir, &id);
        report.recovered.push(id.clone());
        attempt.deliver(cfg, spool, &mut meta, &mut report, log);
        drop(guard);
    }
    // 2. With --all, failed recordings go back to the queue.
    if all {
        for id in spool.list(State::Failed)? {
            let dir = spool.recording_dir(State::Failed, &id);
            let Ok(Some(guard)) = lock(&dir) else {
                continue;
            };
            // Also without meta.json (damage): the queue rebuilds it and mails the recording, saying so.
            if let Err(e) = spool.move_to(&id, State::Failed, State::Queue) {
                report.errors.push(format!("{id}: {e:#}"));
            }
            drop(guard);
        }
    }
    // 3. The queue.
    for id in spool.list(State::Queue)? {
        if report.recovered.contains(&id) {
            continue; // attempted a moment ago
        }
        let dir = spool.recording_dir(State::Queue, &id);
        let guard = match lock(&dir) {
            Ok(Some(g)) => g,
            Ok(None) => {
                report.busy.push(id);
                continue;
            }
            Err(_) => continue,
        };
        // Without meta.json (lost: the writer and flush write it before a recording enters the queue), rebuilt, so
        // that the recording is mailed, saying so, rather than stay here for ever.
        let Some(mut meta) = meta_or_rebuilt(
            &dir,
            &id,
            "meta.json was missing from the queued recording (damage or tampering): the meta was rebuilt by auditty \
             flush from the recording's id, directory and typescript header (the delivery history, end and exit \
             status are unknown)",
            "queued without meta.json: rebuilt from the recording's id, directory and typescript header; delivering \
             with what is known",
            &mut report,
            log,
        ) else {
            continue;
        };
        if meta.sent_unix.is_some() {
            // Sent, but the move to sent/ did not happen (crash): finish the move, do not send twice.
            if let Err(e) = spool.move_to(&id, State::Queue, State::Sent) {
                report.errors.push(format!(
                    "{id}: sent, but it cannot be moved to sent/ ({e:#}); it stays in queue/ and is not sent again"
                ));
            }
            continue;
        }
        // The clock read now, not at the start: a recording queued since (by a writer, or by another flush running
        // at the same time, which then finds it locked here) is due at once, and skipping it while holding its lock
        // would leave it to a later flush.
        if !all && meta.next_try_unix.is_some_and(|t| t > clock()) {
            continue;
        }
        let missing = mail::missing_data_files(&dir, &meta);
        if !missing.is_empty() {
            report.errors.push(format!(
                "{id}: {} missing (damage or tampering; a symlink or special file in its place is not read): \
                 what is left is delivered with a notice in the mail (see the line for {id} about its delivery)",
                missing.join(", ")
            ));
        }
        attempt.deliver(cfg, spool, &mut meta, &mut report, log);
        drop(guard);
    }
    // 4. Cleanup.
    cleanup(cfg, spool, now, &mut report, log);
    Ok(report)
}

/// Whether `p` was last modified at least `age` ago.
fn older_than(p: &Path, age: std::time::Duration) -> bool {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|e| e >= age))
}

/// The first line of the data file `name` in `dir`, plain or compressed (bounded; `None` when unreadable).
fn first_line(dir: &Path, name: &str) -> Option<Vec<u8>> {
    use std::io::BufRead;
    let gz = dir.join(format!("{name}.gz"));
    let reader: Box<dyn Read> = match layout::open_no_follow(&gz) {
        Ok(f) => Box::new(flate2::read::GzDecoder::new(f)),
        Err(_) => Box::new(layout::open_no_follow(&dir.join(name)).ok()?),
    };
    let mut line = Vec::new();
    std::io::BufReader::new(reader.take(64 << 10))
        .read_until(b'\n', &mut line)
        .ok()?;
    Some(line)
}

/// The meta.json of a recording that has none (never written, missing from the queue, or damaged): the user is the
/// directory's owner (the writer runs with the recorded user's uid); the start, terminal and command what the
/// typescript header says (the start from the id, `YYYYmmddTHHMMSSZ-…`, or the directory's time, without one); the
/// timing format what its timing file holds; the rest unknown. `problem` says why, in `write_errors` (the mail).
fn rebuilt_meta(dir: &Path, id: &str, problem: String) -> Meta {
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let md = std::fs::metadata(dir).ok();
    let uid = md.as_ref().map(|m| m.uid()).unwrap_or(0);
    let user = crate::session::account::lookup(uid)
        .map(|u| u.name)
        .unwrap_or_else(|| id.split('-').nth(1).unwrap_or("unknown").to_string());
    let header = first_line(dir, layout::TYPESCRIPT).and_then(|l| typescript::parse_header(&l));
    let start = header
        .as_ref()
        .and_then(|h| body::parse_script_time(&h.start))
        .or_else(|| {
            time::PrimitiveDateTime::parse(
                id.get(..16).unwrap_or(""),
                time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
            )
            .map(|t| t.assume_utc().to_offset(offset))
            .ok()
        })
        .or_else(|| {
            md.and_then(|m| m.modified().ok())
                .map(|t| OffsetDateTime::from(t).to_offset(offset))
        })
        .unwrap_or_else(|| OffsetDateTime::now_utc().to_offset(offset));
    let advanced = first_line(dir, layout::TIMING)
        .and_then(|t| t.first().copied())
        .is_some_and(|b| b.is_ascii_alphabetic());
    let timing = if advanced {
        crate::config::TimingFormat::Advanced
    } else {
        crate::config::TimingFormat::Classic
    };
    let base = meta_of_another_login(id, &user, uid, start, timing);
    let header = header.unwrap_or_default();
    Meta {
        relay_pid: 0,
        command: header.command,
        term: header.term,
        tty: header.tty,
        columns: header.columns,
        lines: header.lines,
        input_recorded: mail::has_data_file(dir, layout::INPUT),
        write_errors: vec![problem],
        ..base
    }
}

/// A new recording's meta made by flush for a login it did not run: without what `Meta::new_recording` takes from
/// the calling process (its login uid and user, its SSH client).
fn meta_of_another_login(
    id: &str,
    user: &str,
    uid: u32,
    start: OffsetDateTime,
    timing: crate::config::TimingFormat,
) -> Meta {
    Meta {
        login_uid: None,
        login_user: None,
        ssh_client: None,
        ..Meta::new_recording(id, user, uid, "", None, start, timing)
    }
}

/// The per-session command FIFO directories (`<fifo_dir>/auditty-<id>-*`) a vanished writer could not remove.
/// `remove_dir_all` removes a symlink itself, never what it points to.
fn remove_fifo_dirs(fifo_dir: &Path, id: &str) {
    for p in entries_starting_with(fifo_dir, &format!("auditty-{id}-")) {
        let _ = std::fs::remove_dir_all(p);
    }
}

/// The delivery attempts of one flush run: once the transport itself has failed for a recording (no connection,
/// no reply within mail.timeout, …), the others are not tried in this run. They keep their place in the queue and
/// their attempt and backoff counters, and are reported as not tried.
#[derive(Default)]
struct Attempts {
    /// The recording the transport failed for.
    transport_failed_for: Option<String>,
}

impl Attempts {
    /// Deliver the queued recording `meta` describes (its lock held), unless the transport is down.
    fn deliver(
        &mut self,
        cfg: &Config,
        spool: &Spool,
        meta: &mut Meta,
        report: &mut Report,
        log: &mut Logger,
    ) {
        let id = meta.id.clone();
        if let Some(first) = &self.transport_failed_for {
            let what = match TransportSpec::parse(&cfg.mail.transport) {
                Ok(TransportSpec::Smtp { .. }) => "the server",
                _ => "the mail transport",
            };
            report
                .deferred
                .push((id, format!("not tried: {what} failed for {first}")));
            return;
        }
        let outcome = deliver(cfg, spool, State::Queue, meta, log);
        if matches!(outcome, Outcome::TransportDown(_)) {
            self.transport_failed_for = Some(id.clone());
        }
        record(report, &id, outcome);
    }
}

fn record(report: &mut Report, id: &str, o: Outcome) {
    match o {
        Outcome::Sent => report.sent.push(id.to_string()),
        Outcome::Deferred(e) | Outcome::TransportDown(e) => {
            report.deferred.push((id.to_string(), e))
        }
        Outcome::Failed(e) => report.failed.push((id.to_string(), e)),
        Outcome::Disabled => report.disabled += 1,
    }
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(md) if md.is_dir() => total += dir_size(&e.path()),
                Ok(md) => total += md.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

/// Remove sent recordings older than keep_days; keep the spool under max_size by removing the oldest sent ones;
/// never remove anything else, but report when the spool stays over its limit.
pub fn cleanup(cfg: &Config, spool: &Spool, now: i64, report: &mut Report, log: &mut Logger) {
    let keep = cfg.spool.keep_days as i64 * 86400;
    let mut sent: Vec<(i64, String)> = Vec::new();
    for id in spool.list(State::Sent).unwrap_or_default() {
        let dir = spool.recording_dir(State::Sent, &id);
        let meta = Meta::read(&dir.join(layout::META)).ok();
        let sent_at = meta
            .as_ref()
            .and_then(|m| m.sent_unix)
            .or_else(|| std::fs::metadata(&dir).ok().map(|m| m.mtime()))
            .unwrap_or(now);
        // A recording mailed as head+tail is the only full copy: keep it at least a week even with keep_days = 0.
        let min_keep = if meta.as_ref().is_some_and(|m| m.mail_truncated) {
            keep.max(7 * 86400)
        } else {
            keep
        };
        if now - sent_at >= min_keep {
            if remove_locked(&dir) {
                report.removed.push(id);
            }
        } else {
            sent.push((sent_at, id));
        }
    }
    let max = cfg.spool.max_size;
    if max == 0 {
        return;
    }
    let mut size = dir_size(&spool.root);
    sent.sort();
    let mut oldest = sent.into_iter();
    while size > max {
        let Some((_, id)) = oldest.next() else {
            break;
        };
        let dir = spool.recording_dir(State::Sent, &id);
        let s = dir_size(&dir);
        if remove_locked(&dir) {
            size = size.saturating_sub(s);
            report.removed.push(id);
        }
    }
    if size > max {
        let waiting = spool.list(State::Queue).map(|v| v.len()).unwrap_or(0)
            + spool.list(State::Failed).map(|v| v.len()).unwrap_or(0)
            + spool.list(State::Active).map(|v| v.len()).unwrap_or(0);
        let msg = format!(
            "the spool {} holds {} bytes, over spool.max_size ({} bytes), and only recordings not yet delivered \
             remain ({waiting} in active/, queue/ and failed/); they are never deleted: get the mail delivered \
             (auditty flush --all), free space, or raise spool.max_size",
            spool.root.display(),
            size,
            max
        );
        crate::syslog::error(log, "-", &msg);
        report.errors.push(msg);
    }
}

fn remove_locked(dir: &Path) -> bool {
    match layout::try_lock(dir) {
        Ok(Some(_g)) => std::fs::remove_dir_all(dir).is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let cfg = Config::default();
        assert_eq!(backoff(&cfg, 1), 60);
        assert_eq!(backoff(&cfg, 2), 120);
        assert_eq!(backoff(&cfg, 4), 480);
        assert_eq!(backoff(&cfg, 7), 3600);
        assert_eq!(backoff(&cfg, 500), 3600);
    }

    fn orphan(timing: &str, ts_body: &str) -> (tempfile::TempDir, Meta) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("typescript"),
            format!("Script started on 2026-11-22 10:00:00+01:00 [COLUMNS=\"80\" LINES=\"24\"]\n{ts_body}"),
        )
        .unwrap();
        std::fs::write(d.path().join("timing"), timing).unwrap();
        let meta = Meta {
            id: "20261122T090000Z-a-000000000001".into(),
            start: "2026-11-22 10:00:00+01:00".into(),
            start_unix: 1_795_338_000,
            timing_format: "classic".into(),
            ..Meta::default()
        };
        meta.write(d.path()).unwrap();
        (d, meta)
    }

    #[test]
    fn orphan_completion_repairs_timing_and_marks_footer() {
        // The writer died with 3 bytes of data not yet timed and half a timing line written.
        let (d, mut meta) = orphan("0.100000 5\n0.200000 4\n0.3000", "hello\r\nabcdef");
        complete_orphan(d.path(), &mut meta).unwrap();
        let tm = std::fs::read_to_string(d.path().join("timing")).unwrap();
        assert_eq!(tm, "0.100000 5\n0.200000 4\n0.000000 4\n");
        let ts = std::fs::read_to_string(d.path().join("typescript")).unwrap();
        assert!(ts.contains("hello\r\nabcdef\nScript done on "), "{ts}");
        assert!(
            ts.ends_with(" [<incomplete: recovered by auditty flush>]\n"),
            "{ts}"
        );
        assert_eq!(meta.end_reason, Some(EndReason::Incomplete));
        assert_eq!(meta.bytes_out, 13);
        assert!(meta.end.is_some());
        let back = Meta::read(&d.path().join("meta.json")).unwrap();
        assert_eq!(back.end_reason, Some(EndReason::Incomplete));
    }

    fn gunzip(p: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// A finished recording in active/<id> of a fresh spool.
    fn finished(ts: &[u8], tm: &[u8]) -> (tempfile::TempDir, Spool, Meta) {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::new(d.path());
        spool.ensure().unwrap();
        let meta = Meta {
            id: "20261122T090000Z-a-000000000002".into(),
            end: Some("2026-11-22 10:00:05+01:00".into()),
            ..Meta::default()
        };
        let dir = spool.create_active(&meta.id).unwrap();
        std::fs::write(dir.join(layout::TYPESCRIPT), ts).unwrap();
        std::fs::write(dir.join(layout::TIMING), tm).unwrap();
        std::fs::write(dir.join(layout::COMMANDS), b"").unwrap();
        meta.write(&dir).unwrap();
        (d, spool, meta)
    }

    #[test]
    fn flush_queues_a_notice_for_a_login_whose_recording_was_never_created() {
        let d = tempfile::tempdir().unwrap();
        let (cfg, spool) = spool_in(d.path(), Config::default());
        let me = std::process::id();
        // Relays that are gone (this pid with another start time is another process): one whose writer died before
        // creating the recording, one whose recording exists (its writer died later: flush's orphan recovery).
        let gone = |id: &str, pty: &str| Registration {
            id: id.into(),
            relay_pid: me,
            relay_start: guard::process_start(me).unwrap() + 1,
            uid: 4242,
            pty: pty.into(),
            fifo: String::new(),
            unrecorded: String::new(),
        };
        let unborn = gone("20261203T100000Z-alice-000000000001", "/dev/pts/4");
        let born = gone("20261203T100100Z-alice-000000000002", "/dev/pts/5");
        unborn
            .publish(&cfg.spool.run_dir, &["pts-4".into()])
            .unwrap();
        born.publish(&cfg.spool.run_dir, &["pts-5".into()]).unwrap();
        spool.create_active(&born.id).unwrap();
        // One whose writer still holds its recording's lock: its relay only looks gone (another pid namespace).
        let writing = gone("20261203T100200Z-alice-000000000003", "/dev/pts/6");
        writing
            .publish(&cfg.spool.run_dir, &["pts-6".into()])
            .unwrap();
        let writing_dir = spool.create_active(&writing.id).unwrap();
        let _writer_lock = layout::lock_new(&writing_dir).unwrap().unwrap();
        let mut log = Logger::new(&cfg.syslog);
        // Too young: its writer may still be withdrawing it.
        let r = flush(&cfg, &spool, false, &mut log).unwrap();
        assert!(r.never_started.is_empty(), "{r:?}");
        assert_eq!(names(&cfg.spool.run_dir), ["pts-4", "pts-5", "pts-6"]);
        let past =
            std::time::SystemTime::now() - ABANDONED_AFTER - std::time::Duration::from_secs(5);
        for k in ["pts-4", "pts-5", "pts-6"] {
            std::fs::File::options()
                .write(true)
                .open(cfg.spool.run_dir.join(k))
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        let r = flush(&cfg, &spool, false, &mut log).unwrap();
        assert_eq!(r.never_started, std::slice::from_ref(&unborn.id), "{r:?}");
        assert_eq!(
            names(&cfg.spool.run_dir),
            ["pts-6"],
            "the two whose writers are gone have served; a live writer withdraws its own"
        );
        let dir = spool.recording_dir(State::Queue, &unborn.id);
        let m = Meta::read(&dir.join(layout::META)).unwrap();
        assert_eq!(m.end_reason, Some(EndReason::NeverStarted));
        assert_eq!((m.uid, m.relay_pid, m.writer_pid), (4242, me, 0));
        assert_eq!(m.pty.as_deref(), Some("/dev/pts/4"));
        assert_eq!(m.end.as_deref(), Some(m.start.as_str()));
        assert!(
            m.write_errors[0].contains(&format!("the relay (pid {me})")),
            "{:?}",
            m.write_errors
        );
        let ts = std::fs::read_to_string(dir.join(layout::TYPESCRIPT)).unwrap();
        assert!(
            ts.starts_with(&format!("Script started on {} [", m.start))
                && ts.ends_with(&format!(" [<{NEVER_STARTED_MARK}>]\n")),
            "{ts}"
        );
        assert_eq!(std::fs::read(dir.join(layout::TIMING)).unwrap(), b"");
        assert!(
            m.files.contains_key(layout::TYPESCRIPT),
            "its sums are recorded like any recording's"
        );
        // Reported once only.
        let r = flush(&cfg, &spool, false, &mut log).unwrap();
        assert!(r.never_started.is_empty(), "{r:?}");
    }

    /// A recording that became due after a flush began (queued meanwhile by a writer, or by another flush running at
    /// the same time) is delivered by that flush, not left to the next one: "due" is judged by the clock when the
    /// recording's turn comes, not when the flush began.
    #[test]
    fn a_recording_due_after_the_flush_began_is_delivered_in_that_flush() {
        let d = tempfile::tempdir().unwrap();
        let (cfg, spool) = spool_in(d.path(), with_transport("none"));
        let begun = now_unix();
        for (id, due) in [
            ("20261203T110000Z-alice-000000000001", begun + 1),
            ("20261203T110001Z-alice-000000000002", begun + 3600),
        ] {
            let dir = spool.create_active(id).unwrap();
            for f in [layout::TYPESCRIPT, layout::TIMING, layout::COMMANDS] {
                std::fs::write(dir.join(f), b"").unwrap();
            }
            let mut meta = Meta {
                id: id.into(),
                end: Some("2026-12-03 11:00:05+00:00".into()),
                next_try_unix: Some(due),
                ..Meta::default()
            };
            meta.write(&dir).unwrap();
            enqueue(&cfg, &spool, &mut meta).unwrap();
        }
        let mut log = Logger::new(&cfg.syslog);
        // A clock that never ticks: neither is due (the flush reads the time at its start, then at each turn).
        let r = flush_by(&cfg, &spool, false, &mut log, &|| begun).unwrap();
        assert_eq!(r.disabled, 0, "{r:?}");
        // The second ticks once the flush has begun: the first recording is due at its turn, the second is not.
        let reads = std::cell::Cell::new(0);
        let ticking = || {
            reads.set(reads.get() + 1);
            if reads.get() == 1 { begun } else { begun + 1 }
        };
        let r = flush_by(&cfg, &spool, false, &mut log, &ticking).unwrap();
        assert_eq!(r.disabled, 1, "{r:?}");
        assert!(reads.get() >= 3, "read at the start and at each turn");
    }

    /// `cfg` with a fresh spool, registry and FIFO directory under `d`, syslog off.
    fn spool_in(d: &Path, mut cfg: Config) -> (Config, Spool) {
        cfg.spool.dir = d.join("spool");
        cfg.spool.run_dir = d.join("run");
        cfg.hook.fifo_dir = d.join("fifo");
        cfg.syslog.target = "none".into();
        std::fs::create_dir(&cfg.spool.dir).unwrap();
        std::fs::create_dir(&cfg.spool.run_dir).unwrap();
        let spool = Spool::new(&cfg.spool.dir);
        spool.ensure().unwrap();
        (cfg, spool)
    }

    fn with_transport(t: &str) -> Config {
        let mut cfg = Config::default();
        cfg.mail.transport = t.into();
        cfg
    }

    /// A recording directory whose writer never wrote meta.json (a full disk at the login) is left alone while it
    /// may still be being created, then rebuilt, completed and queued (and so mailed), not skipped for ever.
    /// A damaged meta.json an earlier flush set aside but could not replace (a full disk) is not linked again.
    #[test]
    fn a_damaged_meta_json_already_set_aside_is_kept_once() {
        let d = tempfile::tempdir().unwrap();
        let (_cfg, spool) = spool_in(d.path(), with_transport("none"));
        let id = "20261203T101500Z-alice-00000000000b";
        let dir = spool.create_active(id).unwrap();
        std::fs::write(dir.join(layout::META), b"{\"id\": \"2026").unwrap();
        std::fs::write(dir.join("meta.json.corrupt"), b"an earlier, other damage").unwrap();
        std::fs::hard_link(dir.join(layout::META), dir.join("meta.json.corrupt.1")).unwrap();
        let (meta, kept) = salvage_damaged_meta(&dir, id, "not JSON").unwrap();
        assert_eq!(kept, dir.join("meta.json.corrupt.1"));
        assert_eq!(meta.id, id);
        assert!(!dir.join("meta.json.corrupt.2").exists());
        assert_eq!(std::fs::read(&kept).unwrap(), b"{\"id\": \"2026");
        assert_eq!(
            std::fs::read(dir.join("meta.json.corrupt")).unwrap(),
            b"an earlier, other damage"
        );
        assert_eq!(Meta::read(&dir.join(layout::META)).unwrap().id, id);
    }

    #[test]
    fn a_recording_without_meta_json_is_rebuilt_and_queued_once_abandoned() {
        let d = tempfile::tempdir().unwrap();
        let (cfg, spool) = spool_in(d.path(), with_transport("none"));
        let id = "20261203T101500Z-alice-00000000000a";
        let dir = spool.create_active(id).unwrap();
        std::fs::write(dir.join(layout::TYPESCRIPT), b"partial output").unwrap();
        let mut log = Logger::new(&cfg.syslog);
        let r = flush(&cfg, &spool, false, &mut log).unwrap();
        assert!(
            r.recovered.is_empty() && spool.find(id).unwrap().0 == State::Active,
            "{r:?}"
        );
        let old = nix::sys::time::TimeSpec::from_duration(
            (std::time::SystemTime::now() - ABANDONED_AFTER - std::time::Duration::from_secs(5))
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap(),
        );
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &dir,
            &old,
            &old,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        let r = flush(&cfg, &spool, false, &mut log).unwrap();
        assert_eq!(r.recovered, vec![id.to_string()], "{r:?}");
        assert!(
            r.errors
                .iter()
                .any(|e| e.contains("meta.json was never written")),
            "{r:?}"
        );
        let (state, q) = spool.find(id).unwrap();
        assert_eq!(state, State::Queue);
        let meta = Meta::read(&q.join(layout::META)).unwrap();
        assert_eq!(meta.id, id);
        assert_eq!(meta.start_unix, 1_796_292_900, "the start from the id");
        assert_eq!(meta.end_reason, Some(EndReason::Incomplete));
        assert!(
            meta.write_errors.iter().any(|e| e.contains("rebuilt")),
            "{meta:?}"
        );
        let ts = std::fs::read_to_string(q.join(layout::TYPESCRIPT)).unwrap();
        assert!(
            ts.starts_with("partial output") && ts.contains("Script done on "),
            "{ts}"
        );
    }

    /// The directory decides which recording a meta.json is read for: one naming another id is reported and
    /// corrected, so that flush never mails or writes under the other recording's name.
    #[test]
    fn a_meta_naming_another_recording_is_read_as_its_directorys() {
        let (_d, spool, meta) = finished(b"Script started\n", b"");
        let dir = spool.recording_dir(State::Active, &meta.id);
        let mut report = Report::default();
        let mut log = Logger::new(&crate::config::Syslog {
            target: "none".into(),
            ..Default::default()
        });
        let read = read_meta(
            &dir,
            "20261122T090000Z-b-000000000009",
            &mut report,
            &mut log,
        )
        .unwrap();
        assert_eq!(read.id, "20261122T090000Z-b-000000000009");
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.contains("names recording") && e.contains(&meta.id)),
            "{report:?}"
        );
        let mut clean = Report::default();
        assert_eq!(
            read_meta(&dir, &meta.id, &mut clean, &mut log).unwrap().id,
            meta.id
        );
        assert!(clean.errors.is_empty(), "{clean:?}");
    }

    /// A sendmail that cannot be run is the transport down: the first recording is charged the attempt, the rest
    /// of the run is not tried, and keeps its counters.
    #[test]
    fn a_transport_that_is_down_is_tried_once_per_flush() {
        let d = tempfile::tempdir().unwrap();
        let (mut cfg, spool) = spool_in(d.path(), with_transport("none"));
        let ids = [
            "20261203T101500Z-alice-000000000001",
            "20261203T101600Z-alice-000000000002",
        ];
        for id in ids {
            let dir = spool.create_active(id).unwrap();
            std::fs::write(dir.join(layout::TYPESCRIPT), b"Script started\n").unwrap();
            std::fs::write(dir.join(layout::TIMING), b"").unwrap();
            let mut meta = Meta {
                id: id.into(),
                end: Some("2026-12-03 10:15:05+00:00".into()),
                ..Meta::default()
            };
            enqueue(&cfg, &spool, &mut meta).unwrap();
        }
        cfg.mail.transport = "sendmail".into();
        cfg.mail.to = vec!["auditors@example.com".into()];
        cfg.mail.sendmail_path = d.path().join("no-such-sendmail");
        let mut log = Logger::new(&cfg.syslog);
        let r = flush(&cfg, &spool, false, &mut log).unwrap();
        assert_eq!(r.deferred.len(), 2, "{r:?}");
        assert_eq!(r.deferred[0].0, ids[0]);
        assert!(r.deferred[0].1.contains("cannot run "), "{r:?}");
        assert_eq!(
            r.deferred[1],
            (
                ids[1].to_string(),
                format!("not tried: the mail transport failed for {}", ids[0])
            )
        );
        let attempts = |id: &str| {
            Meta::read(&spool.recording_dir(State::Queue, id).join(layout::META))
                .unwrap()
                .attempts
        };
        assert_eq!((attempts(ids[0]), attempts(ids[1])), (1, 0));
    }

    #[test]
    fn enqueue_without_transport_keeps_plain_files_and_records_their_sums() {
        let (_d, spool, mut meta) = finished(b"Script started\nhello\r\n", b"0.100000 7\n");
        enqueue(&with_transport("none"), &spool, &mut meta).unwrap();
        let q = spool.recording_dir(State::Queue, &meta.id);
        assert_eq!(
            names(&q),
            ["commands.log", "meta.json", "timing", "typescript"]
        );
        let back = Meta::read(&q.join(layout::META)).unwrap();
        assert_eq!(
            back.files[layout::TYPESCRIPT],
            compress::sum_bytes(b"Script started\nhello\r\n")
        );
        assert_eq!(
            back.files[layout::TIMING],
            compress::sum_bytes(b"0.100000 7\n")
        );
        assert!(!back.files.contains_key("typescript.gz"));
        assert!(back.queued_unix.is_some() && back.write_errors.is_empty());
    }

    #[test]
    fn enqueue_with_transport_compresses() {
        let (_d, spool, mut meta) = finished(b"Script started\nhello\r\n", b"0.100000 7\n");
        enqueue(&with_transport("sendmail"), &spool, &mut meta).unwrap();
        let q = spool.recording_dir(State::Queue, &meta.id);
        assert_eq!(
            names(&q),
            ["commands.log", "meta.json", "timing.gz", "typescript.gz"]
        );
        assert_eq!(
            gunzip(&q.join("typescript.gz")),
            b"Script started\nhello\r\n"
        );
        let back = Meta::read(&q.join(layout::META)).unwrap();
        for n in ["typescript", "typescript.gz", "timing", "timing.gz"] {
            assert!(back.files.contains_key(n), "{n}: {:?}", back.files);
        }
    }

    #[test]
    fn compress_later_redoes_partial_work_and_keeps_the_queued_sums() {
        let ts = b"Script started\nhello\r\n".to_vec();
        let (_d, spool, mut meta) = finished(&ts, b"0.100000 7\n");
        enqueue(&with_transport("none"), &spool, &mut meta).unwrap();
        let q = spool.recording_dir(State::Queue, &meta.id);
        // An earlier run was interrupted: a truncated typescript.gz next to the raw file, a temporary file.
        std::fs::write(q.join("typescript.gz"), b"\x1f\x8b\x08").unwrap();
        std::fs::write(q.join(".timing.gz.AbC123"), b"\x1f\x8b").unwrap();
        assert!(compress_recording(6, &q, &mut meta));
        assert_eq!(
            names(&q),
            ["commands.log", "meta.json", "timing.gz", "typescript.gz"]
        );
        assert_eq!(gunzip(&q.join("typescript.gz")), ts);
        let back = Meta::read(&q.join(layout::META)).unwrap();
        assert_eq!(back.files["typescript"], compress::sum_bytes(&ts));
        assert_eq!(
            back.files["typescript.gz"],
            compress::sum_file(&q.join("typescript.gz")).unwrap()
        );
        assert!(back.write_errors.is_empty(), "{:?}", back.write_errors);
        // Nothing left to do.
        assert!(!compress_recording(6, &q, &mut meta));

        // A raw file changed after queueing: the queued sum stays, the change is reported.
        let (_d2, spool2, mut meta2) = finished(&ts, b"0.100000 7\n");
        enqueue(&with_transport("none"), &spool2, &mut meta2).unwrap();
        let q2 = spool2.recording_dir(State::Queue, &meta2.id);
        std::fs::write(q2.join("typescript"), b"Script started\nforged\r\n").unwrap();
        assert!(compress_recording(6, &q2, &mut meta2));
        assert_eq!(meta2.files["typescript"], compress::sum_bytes(&ts));
        assert!(
            meta2.write_errors[0].starts_with("typescript changed after it was queued"),
            "{:?}",
            meta2.write_errors
        );
    }

    #[test]
    fn orphan_whose_writer_vanished_before_creating_its_files_is_completed_empty() {
        let d = tempfile::tempdir().unwrap();
        let mut meta = Meta {
            id: "20261122T090000Z-a-000000000002".into(),
            start: "2026-11-22 10:00:00+01:00".into(),
            start_unix: 1_795_338_000,
            columns: 80,
            lines: 24,
            timing_format: "classic".into(),
            ..Meta::default()
        };
        meta.write(d.path()).unwrap();
        complete_orphan(d.path(), &mut meta).unwrap();
        let ts = std::fs::read_to_string(d.path().join("typescript")).unwrap();
        assert!(
            ts.starts_with("Script started on 2026-11-22 10:00:00+01:00 [")
                && ts.ends_with(" [<incomplete: recovered by auditty flush>]\n"),
            "{ts}"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("timing")).unwrap(),
            ""
        );
        assert_eq!(meta.end_reason, Some(EndReason::Incomplete));
        assert_eq!(meta.bytes_out, 0);
    }

    /// The footer the writer writes at the end of a session that lasted 5 s (the orphans' start is 10:00:00).
    fn writers_footer_bytes(code: Option<i32>, mark: Option<&str>) -> Vec<u8> {
        typescript::footer("2026-11-22 10:00:05+01:00", code, mark)
    }

    fn done_lines(b: &[u8]) -> usize {
        String::from_utf8_lossy(b)
            .matches("Script done on ")
            .count()
    }

    #[test]
    fn an_orphan_whose_writer_wrote_its_footer_keeps_it() {
        let footer = writers_footer_bytes(Some(3), None);
        let body = format!("hello\r\n{}", String::from_utf8_lossy(&footer));
        // Classic: the footer's exit code is kept; how the session ended is not recorded there.
        let (d, mut meta) = orphan("0.100000 5\n0.200000 2\n", &body);
        let ts_before = std::fs::read(d.path().join("typescript")).unwrap();
        complete_orphan(d.path(), &mut meta).unwrap();
        let ts = std::fs::read(d.path().join("typescript")).unwrap();
        assert_eq!(ts, ts_before, "nothing appended");
        assert_eq!(done_lines(&ts), 1);
        assert_eq!(
            std::fs::read_to_string(d.path().join("timing")).unwrap(),
            "0.100000 5\n0.200000 2\n"
        );
        assert_eq!(meta.end.as_deref(), Some("2026-11-22 10:00:05+01:00"));
        assert_eq!(meta.exit_status, Some(3));
        assert_eq!(meta.end_reason, Some(EndReason::Incomplete));
        assert_eq!(meta.duration_secs, Some(5.0));
        assert_eq!(meta.bytes_out, 7);
        let note = meta.write_errors.last().unwrap();
        assert!(
            note.contains("after it had written the end of the typescript")
                && note.contains(
                    "(its footer: Script done on 2026-11-22 10:00:05+01:00 [COMMAND_EXIT_CODE=\"3\"])"
                )
                && note.contains("exit or hangup, is not known"),
            "{note}"
        );
        let back = Meta::read(&d.path().join("meta.json")).unwrap();
        assert_eq!(
            (back.exit_status, back.end.as_deref()),
            (Some(3), meta.end.as_deref())
        );

        // Advanced, with the writer's closing entries: the end reason is the writer's; nothing is added twice.
        for (closing, reason) in [
            (
                "H 0.000000 DURATION 5.250000\nH 0.000000 EXIT_CODE 3\n",
                EndReason::Exit,
            ),
            (
                "H 0.000000 END hangup\nH 0.000000 DURATION 5.250000\nH 0.000000 EXIT_CODE 3\n",
                EndReason::Hangup,
            ),
        ] {
            let tm = format!("H 0.000000 START_TIME x\nO 0.100000 7\n{closing}");
            let (d, mut meta) = orphan(&tm, &body);
            complete_orphan(d.path(), &mut meta).unwrap();
            let ts = std::fs::read(d.path().join("typescript")).unwrap();
            assert!(ts.ends_with(&footer) && done_lines(&ts) == 1, "{ts:?}");
            assert_eq!(
                std::fs::read_to_string(d.path().join("timing")).unwrap(),
                tm
            );
            assert_eq!(meta.end_reason, Some(reason));
            assert_eq!(
                (meta.exit_status, meta.duration_secs),
                (Some(3), Some(5.25))
            );
        }

        // Advanced, killed between the typescript's write and the timing's closing entries: added once, honestly.
        let (d, mut meta) = orphan("O 0.100000 7\nH 0.000000 DURA", &body);
        complete_orphan(d.path(), &mut meta).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("timing")).unwrap(),
            "O 0.100000 7\nH 0.000000 END incomplete\nH 0.000000 DURATION 5.000000\nH 0.000000 EXIT_CODE 3\n"
        );
        assert_eq!(
            done_lines(&std::fs::read(d.path().join("typescript")).unwrap()),
            1
        );
        assert_eq!(meta.end_reason, Some(EndReason::Incomplete));

        // A killed relay: the footer says so; the signal that stopped a recorder comes from its S entry.
        let killed = writers_footer_bytes(None, Some(typescript::KILLED_MARK));
        let (d, mut meta) = orphan(
            "O 0.100000 7\nH 0.000000 END killed\n",
            &format!("hello\r\n{}", String::from_utf8_lossy(&killed)),
        );
        complete_orphan(d.path(), &mut meta).unwrap();
        assert_eq!(meta.end_reason, Some(EndReason::Killed));
        assert_eq!(meta.exit_status, None);
        assert_eq!(
            std::fs::read_to_string(d.path().join("timing")).unwrap(),
            "O 0.100000 7\nH 0.000000 END killed\nH 0.000000 DURATION 5.000000\n"
        );
        let (d, mut meta) = orphan(
            "O 0.100000 7\nS 0.000000 SIGWINCH ROWS=24 COLS=80\nS 0.100000 SIGTERM\nH 0.000000 END signal\n\
             H 0.000000 DURATION 5.000000\nH 0.000000 EXIT_CODE 3\n",
            &body,
        );
        complete_orphan(d.path(), &mut meta).unwrap();
        assert_eq!(meta.end_reason, Some(EndReason::Signal));
        assert_eq!(meta.signal.as_deref(), Some("SIGTERM"));
    }

    #[test]
    fn an_orphans_input_log_keeps_the_writers_footer_only_when_it_wrote_it_there() {
        let footer = writers_footer_bytes(Some(0), None);
        let f = String::from_utf8_lossy(&footer).into_owned();
        let header = "Script started on 2026-11-22 10:00:00+01:00 [COLUMNS=\"80\" LINES=\"24\"]\n";
        let tm =
            "I 0.050000 3\nO 0.100000 7\nH 0.000000 DURATION 5.000000\nH 0.000000 EXIT_CODE 0\n";
        for (input, kept) in [(format!("ls\r{f}"), true), ("ls\r".to_string(), false)] {
            let (d, mut meta) = orphan(tm, &format!("hello\r\n{f}"));
            std::fs::write(d.path().join("input"), format!("{header}{input}")).unwrap();
            complete_orphan(d.path(), &mut meta).unwrap();
            let inp = std::fs::read(d.path().join("input")).unwrap();
            let ts = std::fs::read(d.path().join("typescript")).unwrap();
            assert!(ts.ends_with(&footer) && done_lines(&ts) == 1);
            assert_eq!(done_lines(&inp), 1, "{}", String::from_utf8_lossy(&inp));
            if kept {
                assert_eq!(inp, format!("{header}{input}").into_bytes());
            } else {
                assert_eq!(
                    inp,
                    format!(
                        "{header}ls\r\nScript done on 2026-11-22 10:00:05+01:00 [<{RECOVERED_MARK}>]\n"
                    )
                    .into_bytes()
                );
                assert!(
                    meta.write_errors
                        .last()
                        .unwrap()
                        .contains("the input log's end was not written"),
                    "{:?}",
                    meta.write_errors
                );
            }
            assert_eq!((meta.bytes_out, meta.bytes_in), (7, 3));
            assert_eq!(meta.end_reason, Some(EndReason::Exit));
            assert_eq!(
                std::fs::read_to_string(d.path().join("timing")).unwrap(),
                tm
            );
        }
    }

    #[test]
    fn an_orphan_whose_output_only_looks_like_a_footer_is_marked_recovered() {
        // `cat` of a finished typescript as the session's last output: the timing covers those bytes, so they are
        // output, not the writer's footer.
        let lookalike = writers_footer_bytes(Some(0), None);
        let n = lookalike.len();
        let (d, mut meta) = orphan(
            &format!("0.100000 7\n0.200000 {n}\n"),
            &format!("hello\r\n{}", String::from_utf8_lossy(&lookalike)),
        );
        complete_orphan(d.path(), &mut meta).unwrap();
        let ts = std::fs::read_to_string(d.path().join("typescript")).unwrap();
        assert_eq!(done_lines(ts.as_bytes()), 2, "{ts}");
        assert!(
            ts.ends_with(&format!(" [<{RECOVERED_MARK}>]\n"))
                && ts.contains(&format!(
                    "hello\r\n{}\nScript done on ",
                    String::from_utf8_lossy(&lookalike)
                )),
            "{ts}"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("timing")).unwrap(),
            format!("0.100000 7\n0.200000 {n}\n")
        );
        assert_eq!(meta.end_reason, Some(EndReason::Incomplete));
        assert_eq!((meta.exit_status, meta.bytes_out), (None, 7 + n as u64));
        assert!(
            meta.write_errors
                .last()
                .unwrap()
                .starts_with("both recorder processes vanished"),
            "{:?}",
            meta.write_errors
        );
    }

    #[test]
    fn orphan_timing_longer_than_data_is_clamped() {
        let (d, mut meta) = orphan("0.100000 5\n0.200000 400\n", "hello\r\nab");
        complete_orphan(d.path(), &mut meta).unwrap();
        let tm = std::fs::read_to_string(d.path().join("timing")).unwrap();
        assert_eq!(tm, "0.100000 5\n0.200000 4\n");
    }
}
