//! The relay: one poll loop moving bytes user terminal ⇄ PTY master with write queues both ways, copying each
//! chunk (with its monotonic time) to the spool writer's pipe. It never touches the disk.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::termios::{LocalFlags, tcgetattr};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, read, tcgetpgrp, write};

use crate::record::meta::EndReason;
use crate::session::procs;
use crate::session::signals::{self, Signals};
use crate::session::terminal::RawMode;
use crate::spool::frames::{self, Kind};
use crate::spool::writer::monotonic_ns;
use crate::sys;

/// Most bytes queued towards the user's terminal or the shell before we stop reading the other side.
const QUEUE_CAP: usize = 256 << 10;
/// Input goes to the shell only while less than this waits for the user's terminal: what the shell's terminal echoes
/// must find room here, or the kernel would drop echo characters (a big paste into `cat` with echo on).
const ECHO_ROOM: usize = QUEUE_CAP / 2;
/// Most frame bytes queued for a slow writer before the relay stops reading the PTY (backpressure). The pipe
/// itself holds 1 MiB more (16 ms of bulk output), so this only fills when the writer is that far behind; keeping it
/// small bounds the relay's memory when that happens while the user's terminal is slow too (both queues full).
const WRITER_CAP: usize = 64 << 10;
/// A running writer that takes nothing from a full pipe for this long is stuck (e.g. its disk hangs): the session
/// ends rather than going on unrecorded. Also bounds the hand-over of the last frames at the end.
const WRITER_STUCK: Duration = Duration::from_secs(10);
/// A writer stopped (SIGSTOP/SIGTSTP) for this long is taken as gone: the session ends. A shorter stop is harmless
/// (the frames wait in the pipe and the queue), so this only needs to outlast an accidental stop/continue.
const WRITER_STOPPED_MAX: Duration = Duration::from_secs(2);
/// After the shell exits, keep draining until the PTY has been silent this long (a background job may hold it).
const DRAIN_SILENCE: Duration = Duration::from_millis(50);
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// Hangup/termination: SIGHUP at once, SIGTERM after GRACE, SIGKILL after 2×GRACE, to the whole session.
const GRACE: Duration = Duration::from_millis(1000);
/// After the SIGKILL round, how long to wait for the PTY to report that nobody holds it any more.
const KILL_SETTLE: Duration = Duration::from_millis(300);
/// One read(2) of the user's terminal (the tty layer hands out at most 4095 bytes per read).
const KEYS: usize = 4096;
/// The most output the relay gathers from the PTY before passing it on (see `read_master`).
const BATCH: usize = 16 << 10;
/// A read of the PTY master this long took all the line discipline had (its buffer holds 4 KiB): more is on its way.
const FULL_READ: usize = 4095;
/// How long gathered output waits for the next full read before it is passed on anyway.
const GATHER_WAIT: Duration = Duration::from_millis(1);

pub struct Endpoints {
    /// The user's terminal, reopened non-blocking (reads keystrokes; writes output when `out` is None).
    pub user: OwnedFd,
    /// Output destination when stdout is not the same terminal as stdin (blocking).
    pub out: Option<OwnedFd>,
    pub master: OwnedFd,
    /// Write end of the pipe to the spool writer (non-blocking).
    pub writer: OwnedFd,
    /// The spool writer process (our child): watched so that its death or a long stop ends the session.
    pub writer_pid: Option<Pid>,
}

#[derive(Debug)]
pub struct Outcome {
    /// The shell's status: exit code, or 128+signal.
    pub status: i32,
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
    /// A queue that never reallocates while it holds at most `cap` bytes: the memory is reserved (not touched) up
    /// front, so its resident size follows what it really holds instead of doubling past it.
    fn with_capacity(cap: usize) -> Queue {
        Queue {
            buf: Vec::with_capacity(cap),
            head: 0,
        }
    }
    /// Append, moving the pending bytes to the front first when they would not fit otherwise.
    fn push(&mut self, data: &[u8]) {
        if self.buf.len() + data.len() > self.buf.capacity() && self.head > 0 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(data);
    }
    /// Write as much as `fd` takes now. Err only for errors other than EAGAIN.
    fn write_to(&mut self, fd: &impl AsFd) -> Result<(), Errno> {
        if !self.is_empty() {
            let n = write_some(fd, self.pending())?;
            self.consume(n);
        }
        Ok(())
    }
}

/// Write `data` to a non-blocking fd as far as it goes now; the number of bytes written (0 on EAGAIN), or the error.
fn write_some(fd: &impl AsFd, data: &[u8]) -> Result<usize, Errno> {
    let mut done = 0;
    while done < data.len() {
        match write(fd, &data[done..]) {
            Ok(0) | Err(Errno::EAGAIN) => break,
            Ok(n) if done + n < data.len() => {
                // A short write: the terminal/pipe is full, the next write would only say EAGAIN. poll() tells us
                // when it has room again; saves a syscall per loop turn under backpressure.
                done += n;
                break;
            }
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
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

/// The spool writer as the relay sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WriterState {
    Running,
    /// Stopped by a signal since then.
    Stopped(Instant),
    /// Exited, or its pipe is closed: nothing more can be handed over.
    Gone,
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
    /// Output read from the PTY and not yet passed on: `batch[..gathered]`, read from `gathered_ns` on.
    batch: Vec<u8>,
    gathered: usize,
    gathered_ns: u64,
    status: Option<i32>,
    reaped_at: Option<Instant>,
    last_output: Instant,
    master_eof: bool,
    ending: Ending,
    ending_since: Option<Instant>,
    escalation: u8,
    writer: WriterState,
    /// Since when the writer's pipe has been full with frames still queued (it takes nothing).
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
        // Reading stops at QUEUE_CAP, one read (≤ BATCH) may go past it.
        to_user: Queue::with_capacity(QUEUE_CAP + BATCH),
        // Reading stops at WRITER_CAP; one frame (header + ≤ BATCH) and the control frames may go past it.
        to_writer: Queue::with_capacity(WRITER_CAP + BATCH + 4096),
        batch: vec![0u8; BATCH],
        gathered: 0,
        gathered_ns: 0,
        status: None,
        reaped_at: None,
        last_output: Instant::now(),
        master_eof: false,
        ending: Ending::Running,
        ending_since: None,
        escalation: 0,
        writer: WriterState::Running,
        writer_blocked_since: None,
        message: None,
    };
    r.run_loop();
    r.finish()
}

const NONE: libc::pollfd = libc::pollfd {
    fd: -1,
    events: 0,
    revents: 0,
};

fn pollfd(fd: &impl AsRawFd, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }
}

impl Relay<'_> {
    fn user_alive(&self) -> bool {
        !matches!(self.ending, Ending::Hangup)
    }

    fn run_loop(&mut self) {
        // Slots of the poll set; an unused slot has fd -1, which poll(2) skips.
        const SIG: usize = 0;
        const USER: usize = 1;
        const MASTER: usize = 2;
        const OUT: usize = 3;
        const WRITER: usize = 4;
        loop {
            if self.done() {
                return;
            }
            let mut fds = [NONE; 5];
            fds[SIG] = pollfd(&self.signals.fd(), libc::POLLIN);
            // Output waiting for the user is shown only while the writer runs (it has its frames, maybe still in the pipe).
            let user_out = self.user_alive()
                && !self.to_user.is_empty()
                && self.writer == WriterState::Running;
            if self.user_alive() {
                let mut ev = 0;
                if self.to_shell.len() < QUEUE_CAP {
                    ev |= libc::POLLIN;
                }
                if user_out && self.ep.out.is_none() {
                    ev |= libc::POLLOUT;
                }
                fds[USER] = pollfd(&self.ep.user, ev);
            }
            // While the writer is stopped nothing is taken from the PTY (not even what would wake us: a hung-up PTY
            // polls ready for ever): what the user sees must be recorded, and a stopped writer records nothing. The
            // shell waits on its full PTY until the writer goes on or, after WRITER_STOPPED_MAX, the session ends.
            let writer_stopped = matches!(self.writer, WriterState::Stopped(_));
            if writer_stopped {
                self.last_output = Instant::now();
            }
            if !self.master_eof && !writer_stopped {
                let mut ev = 0;
                if self.to_user.len() < QUEUE_CAP && self.to_writer.len() < WRITER_CAP {
                    ev |= libc::POLLIN;
                } else {
                    // Not reading (backpressure) is not silence: the drain after the shell's exit must not end
                    // while output is still waiting in the PTY.
                    self.last_output = Instant::now();
                }
                if self.may_feed_shell() {
                    ev |= libc::POLLOUT;
                }
                fds[MASTER] = pollfd(&self.ep.master, ev);
            }
            if let Some(o) = &self.ep.out
                && user_out
            {
                fds[OUT] = pollfd(o, libc::POLLOUT);
            }
            if self.writer != WriterState::Gone {
                // Always watched: POLLERR tells at once that the writer's end is closed, even when idle.
                let ev = if self.to_writer.is_empty() {
                    0
                } else {
                    libc::POLLOUT
                };
                fds[WRITER] = pollfd(&self.ep.writer, ev);
            }
            match sys::poll_fds(&mut fds, self.timeout()) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.message = Some(format!("auditty: poll failed ({e}); ending the session"));
                    self.begin_ending(Ending::WriterLost);
                }
            }
            let rev = |i: usize| fds[i].revents;
            if rev(SIG) != 0 {
                self.handle_signals();
            }
            if rev(USER) != 0 && self.user_alive() {
                if rev(USER) & libc::POLLIN != 0 {
                    self.read_user();
                } else if rev(USER) & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                    self.begin_ending(Ending::Hangup);
                }
            }
            if rev(MASTER) & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                self.read_master();
            } else {
                // No more came within GATHER_WAIT (or something else woke us): pass on what was gathered.
                self.pass_on();
            }
            // The writer's state as it is now: a stop learned in this turn (SIGCHLD above) holds the keys too.
            if self.may_feed_shell()
                && !self.master_eof
                && !matches!(self.writer, WriterState::Stopped(_))
            {
                match self.to_shell.write_to(&self.ep.master) {
                    Ok(()) => {}
                    Err(_) => self.to_shell.clear(),
                }
            }
            if !self.to_user.is_empty() && self.writer == WriterState::Running {
                self.flush_user();
            }
            if rev(WRITER) & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                self.writer_gone();
            }
            self.flush_writer();
            self.check_writer_stopped();
            // SIGCHLD (through the signal pipe) triggers the reap; a waitpid every turn costs a syscall per chunk.
            // Still check once the PTY is gone or the session is ending, in case a SIGCHLD was coalesced away.
            if self.master_eof || self.ending != Ending::Running {
                self.check_child();
            }
            self.escalate();
        }
    }

    /// Input waits while the user's terminal is behind (see ECHO_ROOM).
    fn may_feed_shell(&self) -> bool {
        !self.to_shell.is_empty() && self.to_user.len() < ECHO_ROOM
    }

    /// Poll timeout (ms): none while nothing is pending, else the nearest deadline we must act on.
    fn timeout(&self) -> i32 {
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
        if self.gathered > 0 && self.writer == WriterState::Running {
            at_most(GATHER_WAIT);
        }
        if let WriterState::Stopped(since) = self.writer {
            at_most(WRITER_STOPPED_MAX.saturating_sub(since.elapsed()) + Duration::from_millis(1));
        }
        t.map_or(-1, |d| d.as_millis().min(60_000) as i32)
    }

    fn done(&self) -> bool {
        if let Some(since) = self.ending_since {
            // Hangup/termination: wait for every holder of the PTY to go (the escalation kills them), but never
            // longer than the escalation plus a moment for the SIGKILLed to die.
            return (self.reaped_at.is_some() && self.master_eof)
                || since.elapsed() > GRACE * 2 + KILL_SETTLE;
        }
        let Some(reaped) = self.reaped_at else {
            return false;
        };
        if self.master_eof {
            return true;
        }
        // The shell exited but something (a background job) still holds the PTY: take what it prints right away,
        // then stop waiting for it.
        (self.last_output.elapsed() >= DRAIN_SILENCE && reaped.elapsed() >= DRAIN_SILENCE)
            || reaped.elapsed() > DRAIN_MAX
    }

    fn handle_signals(&mut self) {
        for sig in self.signals.pending() {
            match sig {
                signal_hook::consts::SIGCHLD => {
                    self.check_child();
                    self.check_writer();
                }
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
                    if self.ending == Ending::Running {
                        frames::encode(
                            &mut self.to_writer.buf,
                            Kind::Signal,
                            monotonic_ns(),
                            name.as_bytes(),
                        );
                    }
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
            let mut p = [0u8; 4];
            p[..2].copy_from_slice(&ws.ws_row.to_le_bytes());
            p[2..].copy_from_slice(&ws.ws_col.to_le_bytes());
            frames::encode(&mut self.to_writer.buf, Kind::Resize, monotonic_ns(), &p);
        }
    }

    fn read_user(&mut self) {
        let mut keys = [0u8; KEYS];
        match read(&self.ep.user, &mut keys) {
            Ok(0) => self.begin_ending(Ending::Hangup),
            Ok(n) => {
                let ts = monotonic_ns();
                self.to_shell.buf.extend_from_slice(&keys[..n]);
                if self.record_input {
                    let echo = tcgetattr(&self.ep.master)
                        .map(|t| t.local_flags.contains(LocalFlags::ECHO))
                        .unwrap_or(true);
                    if echo {
                        frames::encode(&mut self.to_writer.buf, Kind::Input, ts, &keys[..n]);
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

    /// Read what the PTY has: one read per turn (a second read of a PTY that was just emptied is not free: it waits
    /// for the kernel's buffer-flush work even when non-blocking). A full read (FULL_READ) means bulk output with more
    /// on its way: it is gathered, up to BATCH, for at most GATHER_WAIT, and passed on in one piece, which makes one
    /// pipe write and one terminal write per 16 KiB instead of per 4 KiB. Anything less (an echo, a prompt, the end
    /// of a burst) is passed on at once.
    fn read_master(&mut self) {
        if matches!(self.writer, WriterState::Stopped(_)) {
            // Seen stopped just now (SIGCHLD handled in this turn): leave the output where it is.
            return;
        }
        let n = loop {
            match read(&self.ep.master, &mut self.batch[self.gathered..]) {
                Ok(0) => {
                    self.master_eof = true;
                    break 0;
                }
                Ok(k) => break k,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break 0,
                Err(_) => {
                    // EIO: every holder of the slave has closed it.
                    self.master_eof = true;
                    break 0;
                }
            }
        };
        if n > 0 {
            if self.gathered == 0 {
                self.gathered_ns = monotonic_ns();
            }
            self.gathered += n;
            self.last_output = Instant::now();
            if n >= FULL_READ && self.batch.len() - self.gathered >= FULL_READ {
                return;
            }
        }
        self.pass_on();
    }

    /// Pass the gathered output on: first as one frame into the writer's pipe (so whatever the user sees is already
    /// safe from a SIGKILL of the relay), then to the user's terminal, directly when nothing is queued for it. While
    /// the writer is stopped it stays here, neither recorded nor shown; once the writer is gone it is dropped.
    fn pass_on(&mut self) {
        let n = self.gathered;
        if n == 0 || matches!(self.writer, WriterState::Stopped(_)) {
            return;
        }
        self.gathered = 0;
        if self.writer == WriterState::Gone {
            // Nothing can be recorded any more (the session is ending): it is not shown either.
            return;
        }
        frames::encode(
            &mut self.to_writer.buf,
            Kind::Output,
            self.gathered_ns,
            &self.batch[..n],
        );
        self.flush_writer();
        if self.writer == WriterState::Gone {
            // The writer's pipe broke just now: this output may not have reached it.
            return;
        }
        let chunk = &self.batch[..n];
        if self.user_alive() {
            let mut sent = 0;
            if self.to_user.is_empty() && self.ep.out.is_none() {
                match write_some(&self.ep.user, chunk) {
                    Ok(k) => sent = k,
                    Err(_) => {
                        self.begin_ending(Ending::Hangup);
                        sent = n;
                    }
                }
            }
            if sent < n && self.user_alive() {
                self.to_user.push(&self.batch[sent..n]);
            }
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
        if self.writer == WriterState::Gone {
            self.to_writer.clear();
            return;
        }
        if self.to_writer.is_empty() {
            self.writer_blocked_since = None;
            return;
        }
        let before = self.to_writer.len();
        if self.to_writer.write_to(&self.ep.writer).is_err() {
            self.writer_gone();
            return;
        }
        if self.to_writer.len() < before {
            self.writer_blocked_since = None;
        } else {
            // The pipe is full: the writer has taken nothing since.
            let since = *self.writer_blocked_since.get_or_insert_with(Instant::now);
            if since.elapsed() > WRITER_STUCK {
                self.writer_lost("is not responding");
            }
        }
    }

    /// The writer's pipe is closed (EPIPE, POLLERR) or the writer exited.
    fn writer_gone(&mut self) {
        self.writer = WriterState::Gone;
        self.to_writer.clear();
        // What waits for the user may not have reached the writer: it is not shown.
        self.to_user.clear();
        self.writer_lost("has stopped");
    }

    fn writer_lost(&mut self, what: &str) {
        if self.ending == Ending::Running {
            self.message = Some(format!(
                "auditty: the session recorder {what}; ending the session"
            ));
        }
        self.begin_ending(Ending::WriterLost);
    }

    /// Reap the writer's state changes: exit (gone), stop, continue.
    fn check_writer(&mut self) {
        let Some(pid) = self.ep.writer_pid else {
            return;
        };
        let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED | WaitPidFlag::WCONTINUED;
        loop {
            match waitpid(pid, Some(flags)) {
                Ok(WaitStatus::Stopped(..)) => {
                    if self.writer == WriterState::Running {
                        self.writer = WriterState::Stopped(Instant::now());
                    }
                }
                Ok(WaitStatus::Continued(_)) => {
                    if matches!(self.writer, WriterState::Stopped(_)) {
                        self.writer = WriterState::Running;
                    }
                }
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => {
                    self.ep.writer_pid = None;
                    self.writer_gone();
                    return;
                }
                Err(Errno::ECHILD) => {
                    self.ep.writer_pid = None;
                    return;
                }
                _ => return,
            }
        }
    }

    fn check_writer_stopped(&mut self) {
        if let WriterState::Stopped(since) = self.writer
            && since.elapsed() >= WRITER_STOPPED_MAX
        {
            self.writer_lost("is not responding");
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

    /// SIGTERM then SIGKILL to every process of the shell's session, at bounded deadlines, while any holds the PTY.
    fn escalate(&mut self) {
        let Some(since) = self.ending_since else {
            return;
        };
        if self.master_eof && self.reaped_at.is_some() {
            return;
        }
        let el = since.elapsed();
        if self.escalation == 1 && el >= GRACE {
            // A second SIGHUP first: an interactive bash ignores SIGTERM, and one caught while readline was busy
            // can be swallowed (seen about once in four hangups at the prompt).
            let _ = killpg(self.shell, Signal::SIGHUP);
            procs::signal_session(self.shell, Signal::SIGTERM);
            self.escalation = 2;
        } else if self.escalation == 2 && el >= GRACE * 2 {
            procs::signal_session(self.shell, Signal::SIGKILL);
            self.escalation = 3;
        }
    }

    fn finish(mut self) -> (Outcome, OwnedFd) {
        if self.ending != Ending::Running && !(self.master_eof && self.reaped_at.is_some()) {
            // The bounded wait is over: nothing of the session may outlive it.
            procs::signal_session(self.shell, Signal::SIGKILL);
        }
        if self.status.is_none() {
            // Only after the bounded wait (the shell could not be reaped in time): never leave it running.
            let _ = kill(self.shell, Signal::SIGKILL);
            let end = Instant::now() + KILL_SETTLE;
            while self.status.is_none() && Instant::now() < end {
                self.check_child();
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.pass_on();
        // Last output to the user, bounded; none while the writer is stopped (see `user_out`).
        if self.user_alive() && self.writer == WriterState::Running {
            let deadline = Instant::now() + Duration::from_millis(500);
            while !self.to_user.is_empty() && Instant::now() < deadline {
                self.flush_user();
                if !self.to_user.is_empty() {
                    let fd = self.ep.out.as_ref().unwrap_or(&self.ep.user);
                    let _ = sys::poll_fds(&mut [pollfd(fd, libc::POLLOUT)], 50);
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
        // Hand the writer the rest: waiting while it takes data, bounded so a stuck disk cannot hold the logout
        // for long; a stopped or vanished writer gets what fits in the pipe now (it finds it when it resumes).
        let deadline = Instant::now() + WRITER_STUCK;
        while self.writer != WriterState::Gone && Instant::now() < deadline {
            if self.to_writer.write_to(&self.ep.writer).is_err()
                || self.to_writer.is_empty()
                || self.writer != WriterState::Running
            {
                break;
            }
            let _ = sys::poll_fds(&mut [pollfd(&self.ep.writer, libc::POLLOUT)], 100);
            self.check_writer();
        }
        let Endpoints { writer, .. } = self.ep;
        (
            Outcome {
                status,
                message: self.message,
            },
            writer,
        )
    }
}
