//! Recording a command without a terminal (ForceCommand with `record.noninteractive = true`): the command's stdout
//! and stderr go through pipes; this process copies them to its own stdout/stderr unchanged and sends each chunk to
//! the same spool writer the PTY path uses, so the recording is an ordinary typescript + timing that replays with
//! `scriptreplay`. stdin is passed to the command directly (not recorded).
//!
//! Order of events (single-threaded until the command is spawned, so the fork is safe): recording directory and
//! files (privileged) → fork the spool writer (keeps group auditty, detaches) → this process drops the group, spawns
//! the command and relays.

use std::ffi::OsString;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use nix::fcntl::{Flock, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::pipe2;
use time::{OffsetDateTime, UtcOffset};

use crate::cmd::Exit;
use crate::config::Config;
use crate::privilege::Privilege;
use crate::record::meta::Meta;
use crate::session::gate::Who;
use crate::spool::frames::{self, Kind};
use crate::spool::layout::{self, Spool};
use crate::spool::writer::{self, WriterPlan};
use crate::sys::{self, Forked};
use crate::syslog::Logger;

/// Record `argv` (the user's shell with `-c COMMAND`, or a login shell reading stdin) through pipes.
pub fn record(
    cfg: &Config,
    privilege: &mut Privilege,
    who: &Who,
    (path, argv): (PathBuf, Vec<OsString>),
    command: Option<String>,
    log: &mut Logger,
) -> Result<Exit> {
    let (plan, lock) = prepare(cfg, who, command.clone())?;
    let id = plan.meta.id.clone();
    super::ssh::event(
        log,
        who,
        &super::ssh::Kind::Other,
        "record-pipes",
        Some(&id),
        command.as_deref().unwrap_or(""),
    );
    let (data_r, data_w) = pipe2(OFlag::O_CLOEXEC).context("cannot create the recorder pipe")?;
    match sys::fork_single_threaded().context("cannot start the spool writer")? {
        Forked::Child => {
            drop(data_w);
            crate::cmd::session::become_writer_process();
            let mut plan = plan;
            plan.meta.writer_pid = std::process::id();
            std::process::exit(writer::create_and_run(plan, lock, data_r));
        }
        Forked::Parent(_) => {}
    }
    drop(data_r);
    // Closing (not unlocking: dropping the Flock would unlock the open file description the writer shares, and leave
    // the live recording to `auditty flush`).
    sys::close_keeping_lock(lock);
    drop(plan);
    privilege.drop_group()?;
    let _ = sys::set_non_dumpable();
    relay(path, argv, &id, data_w)
}

fn prepare(cfg: &Config, who: &Who, command: Option<String>) -> Result<(WriterPlan, Flock<File>)> {
    let spool = Spool::new(&cfg.spool.dir);
    let start_wall = OffsetDateTime::now_utc();
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let id = layout::new_id(&who.user, start_wall);
    let dir = spool.create_recording(&id)?;
    let lock = layout::lock_new(&dir)?.context("a fresh recording is locked by someone else")?;
    let format = cfg.record.timing;
    let meta = Meta::new_recording(
        &id,
        &who.user,
        who.uid,
        &who.shell.display().to_string(),
        command,
        start_wall.to_offset(offset),
        format,
    );
    meta.write(&dir)?;
    let plan = WriterPlan {
        cfg: cfg.clone(),
        spool,
        dir,
        meta,
        format,
        opened_ns: writer::monotonic_ns(),
        offset,
        fifo: None,
        registration: None,
        terminal: None,
    };
    Ok((plan, lock))
}

/// Spawn the command with piped stdout/stderr, copy both out unchanged and into the recording, report the end.
fn relay(path: PathBuf, argv: Vec<OsString>, id: &str, writer: OwnedFd) -> Result<Exit> {
    let mut child = Command::new(&path)
        .arg0(&argv[0])
        .args(&argv[1..])
        .env("AUDITTY_RECORDING", id)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot execute {}", path.display()))?;
    let mut to_writer = Some(std::fs::File::from(writer));
    let mut frame = Vec::new();
    frames::encode(
        &mut frame,
        Kind::Started,
        writer::monotonic_ns(),
        format!("\0{}", child.id()).as_bytes(),
    );
    send(&mut to_writer, &frame);
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let mut sinks: [Option<Box<dyn Write>>; 2] = [
        Some(Box::new(std::io::stdout().lock())),
        Some(Box::new(std::io::stderr().lock())),
    ];
    let mut buf = vec![0u8; 64 << 10];
    while out.is_some() || err.is_some() {
        let ready = poll_two(
            out.as_ref().map(|o| o.as_fd()),
            err.as_ref().map(|e| e.as_fd()),
        );
        for (i, is_ready) in ready.into_iter().enumerate() {
            if !is_ready {
                continue;
            }
            let got = match i {
                0 => out.as_mut().map(|r| r.read(&mut buf)),
                _ => err.as_mut().map(|r| r.read(&mut buf)),
            };
            match got {
                Some(Ok(n)) if n > 0 => {
                    frame.clear();
                    frames::encode(&mut frame, Kind::Output, writer::monotonic_ns(), &buf[..n]);
                    send(&mut to_writer, &frame);
                    let delivered = sinks[i]
                        .as_mut()
                        .is_some_and(|s| s.write_all(&buf[..n]).is_ok() && s.flush().is_ok());
                    if !delivered {
                        // The client is gone: close this pipe, so the command meets EPIPE/SIGPIPE on its next write,
                        // as it would without auditty.
                        sinks[i] = None;
                        if i == 0 {
                            out = None;
                        } else {
                            err = None;
                        }
                    }
                }
                Some(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                _ => {
                    if i == 0 {
                        out = None;
                    } else {
                        err = None;
                    }
                }
            }
        }
    }
    let status = child.wait().context("waitpid")?;
    let (code, signal) = match (status.code(), status.signal()) {
        (Some(c), _) => (c, String::new()),
        (None, Some(s)) => (
            128 + s,
            nix::sys::signal::Signal::try_from(s)
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        ),
        _ => (255, String::new()),
    };
    frame.clear();
    frames::encode(
        &mut frame,
        Kind::End,
        writer::monotonic_ns(),
        &frames::end_payload(code, 0, &signal),
    );
    send(&mut to_writer, &frame);
    drop(to_writer);
    Ok(Exit::from(code.clamp(0, 255) as u8))
}

/// Blocking write of one frame; the first failure (writer gone) stops recording, never the command.
fn send(writer: &mut Option<std::fs::File>, bytes: &[u8]) {
    if let Some(w) = writer
        && w.write_all(bytes).is_err()
    {
        *writer = None;
    }
}

/// Wait until either pipe is readable (or hung up); which ones are.
fn poll_two(a: Option<BorrowedFd<'_>>, b: Option<BorrowedFd<'_>>) -> [bool; 2] {
    let mut fds = Vec::new();
    let mut idx = Vec::new();
    for (i, f) in [a, b].into_iter().enumerate() {
        if let Some(f) = f {
            fds.push(PollFd::new(f, PollFlags::POLLIN));
            idx.push(i);
        }
    }
    while let Err(nix::errno::Errno::EINTR) = poll(&mut fds, PollTimeout::NONE) {}
    let mut r = [false; 2];
    for (k, f) in fds.iter().enumerate() {
        if f.revents().is_some_and(|e| !e.is_empty()) {
            r[idx[k]] = true;
        }
    }
    r
}
