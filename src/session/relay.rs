//! The relay: one poll loop moving bytes user terminal ⇄ PTY master with write queues both ways, copying each
//! chunk (with its monotonic time) to the spool writer's pipe. It never touches the disk.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::termios::{LocalFlags, tcgetattr};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, read, tcgetpgrp, write};

use crate::record::meta::EndReason;
use crate::session::signals::{self, Signals};
use crate::session::terminal::RawMode;
use crate::spool::frames::{self, Kind};
use crate::spool::writer::monotonic_ns;
use crate::sys;

/// Most bytes queued towards the user's terminal or the shell before we stop reading the other side.
const QUEUE_CAP: usize = 1 << 20;
/// Most frame bytes queued for a slow writer before the relay stops reading the PTY (backpressure).
const WRITER_CAP: usize = 16 << 20;
/// A writer that takes nothing for this long while we wait on it is considered stuck: the session ends.
const WRITER_STUCK: Duration = Duration::from_secs(10);
/// After the shell exits, keep draining until the PTY has been silent this long (a background job may hold it).
const DRAIN_SILENCE: Duration = Duration::from_millis(50);
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// Hangup/termination: SIGHUP, then SIGTERM after GRACE, then SIGKILL after 2×GRACE, to the whole session.
const GRACE: Duration = Duration::from_millis(1000);
/// Bytes read from the PTY per loop turn at most.
const BATCH: usize = 64 << 10;

pub struct Endpoints {
    /// The user's terminal, reopened non-blocking (reads keystrokes; writes output when `out` is None).
    pub user: OwnedFd,
    /// Output destination when stdout is not the same terminal as stdin (blocking).
    pub out: Option<OwnedFd>,
    pub master: OwnedFd,
    /// Write end of the pipe to the spool writer (non-blocking).
    pub writer: OwnedFd,
}

#[derive(Debug)]
pub struct Outcome {
    /// The shell's status: exit code, or 128+signal.
    pub status: i32,
    pub reason: EndReason,
    pub signal: Option<&'static str>,
    /// Something to tell the user on their way out (e.g. the recorder is gone).
    pub message: Option<String>,
}

/// A byte queue drained from the front.
#[derive(Default)]
struct Queue {
    buf: Vec<u8>,
    head: usize,
}

impl Queue {
    fn len(&self) -> usize {
        self.buf.len() - self.head
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn pending(&self) -> &[u8] {
        &self.buf[self.head..]
    }
    fn consume(&mut self, n: usize) {
        self.head += n;
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head > (1 << 20) {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }
    fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
    }
    /// Write as much as `fd` takes now. Err only for errors other than EAGAIN.
    fn write_to(&mut self, fd: &impl AsFd) -> Result<(), Errno> {
        while !self.is_empty() {
            match write(fd, self.pending()) {
                Ok(0) => break,
                Ok(n) => self.consume(n),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// How the session is being brought down, if it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Running,
    /// The user's terminal is gone.
    Hangup,
    /// A terminating signal reached the relay.
    Signal(&'static str),
    /// The spool writer is gone or stuck: recording is impossible, so the session must not go on.
    WriterLost,
}

struct Relay<'a> {
    ep: Endpoints,
    shell: Pid,
    signals: &'a Signals,
    raw: Option<&'a RawMode>,
    record_input: bool,
    to_shell: Queue,
    to_user: Queue,
    to_writer: Queue,
    batch: Vec<u8>,
    status: Option<i32>,
    reaped_at: Option<Instant>,
    last_output: Instant,
    master_eof: bool,
    ending: Ending,
    ending_since: Option<Instant>,
    escalation: u8,
    writer_blocked_since: Option<Instant>,
    message: Option<String>,
}

/// Run the session until the shell is gone and the PTY drained; the caller then sends End and closes the pipe.
pub fn run(
    ep: Endpoints,
    shell: Pid,
    signals: &Signals,
    raw: Option<&RawMode>,
    record_input: bool,
) -> (Outcome, OwnedFd) {
    let mut r = Relay {
        ep,
        shell,
        signals,
        raw,
        record_input,
        to_shell: Queue::default(),
        to_user: Queue::default(),
        to_writer: Queue::default(),
        batch: vec![0u8; BATCH],
        status: None,
        reaped_at: None,
        last_output: Instant::now(),
        master_eof: false,
        ending: Ending::Running,
        ending_since: None,
        escalation: 0,
        writer_blocked_since: None,
        message: None,
    };
    r.run_loop();
    r.finish()
}

impl Relay<'_> {
    fn user_alive(&self) -> bool {
        !matches!(self.ending, Ending::Hangup)
    }

    fn run_loop(&mut self) {
        loop {
            if self.done() {
                return;
            }
            let timeout = self.timeout();
            let want_user_in = self.user_alive() && self.to_shell.len() < QUEUE_CAP;
            let want_master_in = !self.master_eof
                && self.to_user.len() < QUEUE_CAP
                && self.to_writer.len() < WRITER_CAP;
            let (poll_err, revs_sig, revs_user, revs_master, revs_out) = {
                let mut fds = Vec::with_capacity(5);
                fds.push(PollFd::new(self.signals.fd(), PollFlags::POLLIN));
                let mut uflags = PollFlags::empty();
                if want_user_in {
                    uflags |= PollFlags::POLLIN;
                }
                if self.user_alive() && self.ep.out.is_none() && !self.to_user.is_empty() {
                    uflags |= PollFlags::POLLOUT;
                }
                let ui = (self.user_alive()).then(|| {
                    fds.push(PollFd::new(self.ep.user.as_fd(), uflags));
                    fds.len() - 1
                });
                let mut mflags = PollFlags::empty();
                if want_master_in {
                    mflags |= PollFlags::POLLIN;
                }
                if !self.to_shell.is_empty() && !self.master_eof {
                    mflags |= PollFlags::POLLOUT;
                }
                let mi = (!self.master_eof).then(|| {
                    fds.push(PollFd::new(self.ep.master.as_fd(), mflags));
                    fds.len() - 1
                });
                let oi = match &self.ep.out {
                    Some(o) if self.user_alive() && !self.to_user.is_empty() => {
                        fds.push(PollFd::new(o.as_fd(), PollFlags::POLLOUT));
                        Some(fds.len() - 1)
                    }
                    _ => None,
                };
                let wi = (!self.to_writer.is_empty()).then(|| {
                    fds.push(PollFd::new(self.ep.writer.as_fd(), PollFlags::POLLOUT));
                    fds.len() - 1
                });
                let _ = wi;
                let poll_err = match poll(&mut fds, timeout) {
                    Ok(_) | Err(Errno::EINTR) => None,
                    Err(e) => Some(e),
                };
                let get = |i: Option<usize>| {
                    i.and_then(|i| fds[i].revents())
                        .unwrap_or(PollFlags::empty())
                };
                (poll_err, get(Some(0)), get(ui), get(mi), get(oi))
            };
            if let Some(e) = poll_err {
                self.message = Some(format!("auditty: poll failed ({e}); ending the session"));
                self.begin_ending(Ending::WriterLost);
            }
            if !revs_sig.is_empty() {
                self.handle_signals();
            }
            if !revs_user.is_empty() && self.user_alive() {
                if revs_user.contains(PollFlags::POLLIN) {
                    self.read_user();
                } else if revs_user
                    .intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
                {
                    self.begin_ending(Ending::Hangup);
                }
            }
            if revs_master.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                self.read_master();
            }
            if !self.to_shell.is_empty() && !self.master_eof {
                match self.to_shell.write_to(&self.ep.master) {
                    Ok(()) => {}
                    Err(_) => self.to_shell.clear(),
                }
            }
            if !revs_out.is_empty() || !revs_user.is_empty() || !self.to_user.is_empty() {
                self.flush_user();
            }
            self.flush_writer();
            self.check_child();
            self.escalate();
        }
    }

    fn timeout(&self) -> PollTimeout {
        let mut t: Option<Duration> = None;
        let mut at_most = |d: Duration| t = Some(t.map_or(d, |x| x.min(d)));
        if self.reaped_at.is_some() {
            at_most(DRAIN_SILENCE);
        }
        if self.ending != Ending::Running {
            at_most(Duration::from_millis(100));
        }
        if !self.to_writer.is_empty() {
            at_most(Duration::from_millis(500));
        }
        match t {
            None => PollTimeout::NONE,
            Some(d) => PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX),
        }
    }

    fn done(&self) -> bool {
        let Some(reaped) = self.reaped_at else {
            return false;
        };
        if self.master_eof {
            return true;
        }
        if self.ending != Ending::Running {
            // Hangup/termination: wait for every holder of the PTY (the escalation kills them), within bounds.
            return self.ending_since.is_some_and(|s| s.elapsed() > GRACE * 3)
                || reaped.elapsed() > DRAIN_MAX;
        }
        (self.last_output.elapsed() >= DRAIN_SILENCE && reaped.elapsed() >= DRAIN_SILENCE)
            || reaped.elapsed() > DRAIN_MAX
    }

    fn handle_signals(&mut self) {
        for sig in self.signals.pending() {
            match sig {
                signal_hook::consts::SIGCHLD => self.check_child(),
                signal_hook::consts::SIGWINCH => self.resize(),
                signal_hook::consts::SIGHUP => self.begin_ending(Ending::Hangup),
                signal_hook::consts::SIGUSR1 => {
                    frames::encode(&mut self.to_writer.buf, Kind::Flush, monotonic_ns(), &[])
                }
                signal_hook::consts::SIGCONT => {
                    if let Some(r) = self.raw {
                        r.reapply();
                    }
                    self.resize();
                }
                s => {
                    let name = signals::name(s);
                    frames::encode(
                        &mut self.to_writer.buf,
                        Kind::Signal,
                        monotonic_ns(),
                        name.as_bytes(),
                    );
                    self.begin_ending(Ending::Signal(name));
                }
            }
        }
    }

    /// Copy the user's window size to the PTY (the kernel then sends SIGWINCH to the shell's foreground job).
    fn resize(&mut self) {
        if !self.user_alive() {
            return;
        }
        if let Ok(ws) = sys::get_winsize(self.ep.user.as_fd()) {
            let _ = sys::set_winsize(self.ep.master.as_fd(), &ws);
            let mut p = ws.ws_row.to_le_bytes().to_vec();
            p.extend_from_slice(&ws.ws_col.to_le_bytes());
            frames::encode(&mut self.to_writer.buf, Kind::Resize, monotonic_ns(), &p);
        }
    }

    fn read_user(&mut self) {
        match read(&self.ep.user, &mut self.batch) {
            Ok(0) => self.begin_ending(Ending::Hangup),
            Ok(n) => {
                let ts = monotonic_ns();
                self.to_shell.buf.extend_from_slice(&self.batch[..n]);
                if self.record_input {
                    let echo = tcgetattr(&self.ep.master)
                        .map(|t| t.local_flags.contains(LocalFlags::ECHO))
                        .unwrap_or(true);
                    if echo {
                        frames::encode(&mut self.to_writer.buf, Kind::Input, ts, &self.batch[..n]);
                    } else {
                        frames::encode(
                            &mut self.to_writer.buf,
                            Kind::InputWithheld,
                            ts,
                            &(n as u32).to_le_bytes(),
                        );
                    }
                }
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => self.begin_ending(Ending::Hangup),
        }
    }

    /// Read what the PTY has (up to BATCH) and queue it for the user and the writer as one chunk.
    fn read_master(&mut self) {
        let mut n = 0;
        let mut ts = 0;
        while n < BATCH {
            match read(&self.ep.master, &mut self.batch[n..]) {
                Ok(0) => {
                    self.master_eof = true;
                    break;
                }
                Ok(k) => {
                    if n == 0 {
                        ts = monotonic_ns();
                    }
                    n += k;
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    // EIO: every holder of the slave has closed it.
                    self.master_eof = true;
                    break;
                }
            }
        }
        if n > 0 {
            self.last_output = Instant::now();
            if self.user_alive() {
                self.to_user.buf.extend_from_slice(&self.batch[..n]);
            }
            frames::encode(&mut self.to_writer.buf, Kind::Output, ts, &self.batch[..n]);
        }
    }

    fn flush_user(&mut self) {
        if !self.user_alive() {
            self.to_user.clear();
            return;
        }
        let res = match &self.ep.out {
            Some(o) => self.to_user.write_to(o),
            None => self.to_user.write_to(&self.ep.user),
        };
        if res.is_err() {
            self.to_user.clear();
            self.begin_ending(Ending::Hangup);
        }
    }

    fn flush_writer(&mut self) {
        if self.to_writer.is_empty() {
            self.writer_blocked_since = None;
            return;
        }
        let before = self.to_writer.len();
        match self.to_writer.write_to(&self.ep.writer) {
            Ok(()) => {}
            Err(_) => {
                self.to_writer.clear();
                self.message =
                    Some("auditty: the session recorder has stopped; ending the session".into());
                self.begin_ending(Ending::WriterLost);
                return;
            }
        }
        if self.to_writer.len() < before || self.to_writer.is_empty() {
            self.writer_blocked_since = None;
        } else if self.to_writer.len() >= WRITER_CAP {
            let since = *self.writer_blocked_since.get_or_insert_with(Instant::now);
            if since.elapsed() > WRITER_STUCK && self.ending == Ending::Running {
                self.message = Some(
                    "auditty: the session recorder is not responding; ending the session".into(),
                );
                self.begin_ending(Ending::WriterLost);
            }
        }
    }

    fn check_child(&mut self) {
        if self.status.is_some() {
            return;
        }
        match waitpid(self.shell, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => self.status = Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => self.status = Some(128 + sig as i32),
            Err(Errno::ECHILD) => self.status = Some(255),
            _ => return,
        }
        self.reaped_at = Some(Instant::now());
    }

    fn begin_ending(&mut self, how: Ending) {
        if self.ending != Ending::Running {
            return;
        }
        self.ending = how;
        self.ending_since = Some(Instant::now());
        if how == Ending::Hangup {
            self.to_user.clear();
        }
        // First step: SIGHUP (and SIGCONT, so stopped jobs see it) to the shell and its foreground job.
        let fg = tcgetpgrp(&self.ep.master).ok();
        for pg in [Some(self.shell), fg].into_iter().flatten() {
            let _ = killpg(pg, Signal::SIGHUP);
            let _ = killpg(pg, Signal::SIGCONT);
        }
        self.escalation = 1;
    }

    /// SIGTERM then SIGKILL to every process of the shell's session, at bounded deadlines.
    fn escalate(&mut self) {
        let Some(since) = self.ending_since else {
            return;
        };
        let el = since.elapsed();
        if self.escalation == 1 && el >= GRACE {
            signal_session(self.shell, Signal::SIGTERM);
            self.escalation = 2;
        } else if self.escalation == 2 && el >= GRACE * 2 {
            signal_session(self.shell, Signal::SIGKILL);
            self.escalation = 3;
        }
    }

    fn finish(mut self) -> (Outcome, OwnedFd) {
        if self.status.is_none() {
            // Should not happen (done() needs the shell reaped), but never leave it running.
            signal_session(self.shell, Signal::SIGKILL);
            let _ = kill(self.shell, Signal::SIGKILL);
            self.check_child();
        }
        // Last output to the user, bounded.
        if self.user_alive() {
            let deadline = Instant::now() + Duration::from_millis(500);
            while !self.to_user.is_empty() && Instant::now() < deadline {
                self.flush_user();
                if !self.to_user.is_empty() {
                    let mut fds = [PollFd::new(self.ep.user.as_fd(), PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::from(50u16));
                }
            }
        }
        let (reason, signal) = match self.ending {
            Ending::Running => (EndReason::Exit, None),
            Ending::Hangup => (EndReason::Hangup, None),
            Ending::Signal(s) => (EndReason::Signal, Some(s)),
            Ending::WriterLost => (EndReason::Signal, None),
        };
        let status = self.status.unwrap_or(255);
        let reason_code = match reason {
            EndReason::Exit => 0,
            EndReason::Hangup => 1,
            _ => 2,
        };
        frames::encode(
            &mut self.to_writer.buf,
            Kind::End,
            monotonic_ns(),
            &frames::end_payload(status, reason_code, signal.unwrap_or("")),
        );
        // Hand the writer the rest: blocking, but bounded so a stopped writer cannot hold the logout.
        let deadline = Instant::now() + WRITER_STUCK;
        while !self.to_writer.is_empty() && Instant::now() < deadline {
            if self.to_writer.write_to(&self.ep.writer).is_err() {
                break;
            }
            if !self.to_writer.is_empty() {
                let mut fds = [PollFd::new(self.ep.writer.as_fd(), PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(100u16));
            }
        }
        let Endpoints { writer, .. } = self.ep;
        (
            Outcome {
                status,
                reason,
                signal,
                message: self.message,
            },
            writer,
        )
    }
}

/// Send `sig` to every process whose session id is `sid` (the shell's session: its jobs and their children).
pub fn signal_session(sid: Pid, sig: Signal) {
    let _ = killpg(sid, sig);
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        // Fields after the name: state ppid pgrp session ...
        if rest
            .split_whitespace()
            .nth(3)
            .and_then(|s| s.parse::<i32>().ok())
            == Some(sid.as_raw())
        {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
}
