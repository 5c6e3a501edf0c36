//! The spool writer process: owns a recording's files, turns relay frames and hook records into typescript, timing,
//! input and commands.log, survives the relay's death, and on EOF completes the recording and hands it to delivery.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::fcntl::Flock;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, UtcOffset};

use crate::config::{Config, TimingFormat};
use crate::deliver::timing::{Entry, Stream, Timing};
use crate::hook::fifo::{CommandRecord, RecordParser};
use crate::record::meta::{EndReason, FileSum, Meta};
use crate::record::timing::TimingWriter;
use crate::record::typescript;
use crate::session::terminal::SavedTerminal;
use crate::spool::frames::{self, Kind};
use crate::spool::guard::{self, Registration};
use crate::spool::layout::{self, Spool};
use crate::syslog::Logger;

/// Buffered bytes are written out at least this often, so a SIGKILL of both processes loses at most this much.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// ... or as soon as this much is buffered.
const FLUSH_BYTES: usize = 256 << 10;
/// If the disk refuses writes, keep at most this much waiting, then count the rest as lost.
const MAX_BACKLOG: usize = 32 << 20;
/// Room set aside in each recording (`layout::RESERVE`, allocated when the recording is created, released at
/// `Writer::finish`) for what must be written at the end even when the disk is full: the rest of the timing (the
/// entries of up to a few MB of stored output), the footers and meta.json. On a tmpfs every file written takes a
/// whole page: about ten pages are needed, twice that is kept.
const RESERVE_BYTES: i64 = 64 << 10;
/// One read of the relay's pipe. Small against FLUSH_BYTES: a drain writes the buffers out once they hold more than
/// FLUSH_BYTES - READ_CHUNK, so they never hold much more than FLUSH_BYTES, and the writer's resident memory follows
/// what they hold (with 256 KiB reads checked against FLUSH_BYTES, bulk output filled them to 0.5 MiB).
const READ_CHUNK: usize = 64 << 10;
/// A drain that brought at least this much is bulk output: the next nap is the short one (NAP_BULK).
const BULK_DRAIN: usize = 256 << 10;
/// While a session is active the writer takes the pipe in batches: after each drain it sleeps this long instead of
/// waiting on the pipe, so a keystroke's echo (written to the pipe just before the user's terminal) wakes no second
/// process on its critical path, and bulk output arrives in big reads. The pipe (1 MiB) holds what arrives meanwhile:
/// 10 ms of output at 60 MB/s is 600 KB. Nothing waits on disk: the relay's pipe write never blocks either way.
const NAP: Duration = Duration::from_millis(10);
/// The nap after a bulk drain (BULK_DRAIN): short, so the pipe never fills.
const NAP_BULK: Duration = Duration::from_millis(2);
/// Back to waiting on the pipe (no periodic wake-ups) after this long without data: an idle session costs nothing,
/// and a session that prints now and then costs at most 50 naps per output. Typing faster than this never wakes the
/// writer on a keystroke's path.
const NAP_LINGER: Duration = Duration::from_millis(500);

/// Everything the writer knows before the session starts (prepared by `cmd::session` before fork).
pub struct WriterPlan {
    pub cfg: Config,
    pub spool: Spool,
    pub dir: PathBuf,
    pub meta: Meta,
    pub format: TimingFormat,
    /// CLOCK_MONOTONIC (ns) when the log was opened: the first timing delta counts from here.
    pub opened_ns: u64,
    pub offset: UtcOffset,
    pub fifo: Option<PathBuf>,
    /// The guard registration published for this recording's PTY, withdrawn when the recording ends.
    pub registration: Option<(Registration, Vec<String>)>,
    /// The user's terminal, put back if the relay dies without doing so (closed once the relay is gone).
    pub terminal: Option<SavedTerminal>,
}

/// The open files of a recording.
pub struct WriterFiles {
    pub typescript: File,
    pub timing: File,
    pub input: Option<File>,
    pub commands: File,
    pub lock: Flock<File>,
    /// The room kept for the end of the recording (`RESERVE_BYTES`), when it could be allocated.
    pub reserve: Option<PathBuf>,
}

impl WriterFiles {
    /// Create the data files of the recording in `dir` (O_EXCL|O_NOFOLLOW, 0640), next to the `meta.json` and the
    /// directory `lock` that the session made before the fork. The writer does this itself, as soon as it runs, so
    /// that none of these inodes is created on the way to the user's shell; frames wait in the pipe meanwhile.
    pub fn create(dir: &Path, input: bool, lock: Flock<File>) -> anyhow::Result<WriterFiles> {
        Ok(WriterFiles {
            typescript: layout::create_exclusive(dir, layout::TYPESCRIPT, 0o640)?,
            timing: layout::create_exclusive(dir, layout::TIMING, 0o640)?,
            input: if input {
                Some(layout::create_exclusive(dir, layout::INPUT, 0o640)?)
            } else {
                None
            },
            commands: layout::create_exclusive(dir, layout::COMMANDS, 0o640)?,
            lock,
            reserve: reserve_room(dir),
        })
    }
}

/// Allocate `RESERVE_BYTES` in `dir` (`layout::RESERVE`), for `Writer::finish` to release when the disk is full.
/// `None` when the disk has not even that much left (or the file cannot be made): the recording goes on without.
fn reserve_room(dir: &Path) -> Option<PathBuf> {
    let path = dir.join(layout::RESERVE);
    let f = layout::create_exclusive(dir, layout::RESERVE, 0o640).ok()?;
    if nix::fcntl::posix_fallocate(&f, 0, RESERVE_BYTES).is_err() {
        let _ = std::fs::remove_file(&path);
        return None;
    }
    Some(path)
}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// A file with a userspace buffer that is written out in big chunks; write errors are counted, never fatal.
struct Sink {
    name: &'static str,
    file: File,
    buf: Vec<u8>,
    /// Bytes of the stream in the file.
    stored: u64,
    /// Parts of the stream that could not be stored and were given up: (offset in the stream, length).
    dropped: Vec<(u64, u64)>,
    /// A write has failed (disk full, I/O error): `Writer::finish` makes the files agree again.
    failed: bool,
    /// SHA-256 of the bytes stored so far, taken from the buffer as it is written out: queueing then need not read
    /// the whole recording back from disk to sum it (`Sink::sum`).
    hash: Sha256,
}

impl Sink {
    fn new(name: &'static str, file: File) -> Sink {
        Sink {
            name,
            file,
            buf: Vec::with_capacity(FLUSH_BYTES),
            stored: 0,
            dropped: Vec::new(),
            failed: false,
            hash: Sha256::new(),
        }
    }

    /// Size and SHA-256 of the file as this sink wrote it, when that is all of it: every write succeeded, nothing was
    /// given up, nothing is left in the buffer.
    fn sum(&self) -> Option<(&'static str, FileSum)> {
        (!self.failed && self.dropped.is_empty() && self.buf.is_empty()).then(|| {
            let sum = FileSum {
                size: self.stored,
                sha256: crate::deliver::compress::hex(&self.hash.clone().finalize()),
            };
            (self.name, sum)
        })
    }

    /// Give up what is waiting in the buffer (the disk does not take it); returns its length.
    fn drop_backlog(&mut self) -> u64 {
        let len = self.buf.len() as u64;
        if len > 0 {
            let at = self.stored + self.dropped.iter().map(|d| d.1).sum::<u64>();
            self.dropped.push((at, len));
            self.buf.clear();
        }
        len
    }

    /// Bytes of the stream range [start, start + len) that were given up.
    fn dropped_within(&self, start: u64, len: u64) -> u64 {
        self.dropped
            .iter()
            .map(|&(at, n)| (at + n).min(start + len).saturating_sub(at.max(start)))
            .sum()
    }

    /// Write the buffer out; on error keep it (up to MAX_BACKLOG) and report. Returns bytes dropped.
    fn flush(&mut self, errors: &mut Vec<String>) -> u64 {
        let mut done = 0;
        while done < self.buf.len() {
            match self.file.write(&self.buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed = true;
                    let msg = format!("{}: {e}", self.name);
                    if !errors.contains(&msg) && errors.len() < 20 {
                        errors.push(msg);
                    }
                    break;
                }
            }
        }
        self.hash.update(&self.buf[..done]);
        self.buf.drain(..done);
        self.stored += done as u64;
        if self.buf.len() > MAX_BACKLOG {
            return self.drop_backlog();
        }
        0
    }
}

/// Write out the sinks' buffers, the timing before the data it describes: a writer killed between the two leaves a
/// timing that runs ahead (clamped to the data by `complete_orphan`), never typescript or input bytes without an
/// entry, which a recovery could take for the writer's footer when the user printed one (`typescript::footer_at_end`).
/// Returns the bytes given up.
fn write_out_timing_first(
    timing: &mut Sink,
    typescript: &mut Sink,
    input: Option<&mut Sink>,
    commands: &mut Sink,
    errors: &mut Vec<String>,
) -> u64 {
    let mut lost = timing.flush(errors);
    lost += typescript.flush(errors);
    if let Some(i) = input {
        lost += i.flush(errors);
    }
    lost + commands.flush(errors)
}

struct Writer {
    plan: WriterPlan,
    timing: TimingWriter,
    ts: Sink,
    tm: Sink,
    input: Option<Sink>,
    commands: Sink,
    last_flush: Instant,
    log: Logger,
    registration: Option<(Registration, Vec<String>)>,
    end: Option<(i32, EndReason, String)>,
    /// The recorded shell (leader of the PTY's session), from the Started frame.
    shell: Option<nix::unistd::Pid>,
    /// Length of the data files' header line (`Script started on …`), which comes before the recorded bytes.
    header_len: u64,
    /// The room kept for the end of the recording (`RESERVE_BYTES`).
    reserve: Option<PathBuf>,
}

/// What the writer sends on its ready pipe once the recording exists (`create_recording_and_run`).
pub const READY: u8 = 0x06;

/// The session's writer, right after the fork: create the recording (directory, lock, meta.json, data files) once
/// the shell has started up (`let_the_shell_start`), then `run`; frames wait in the pipe meanwhile. `spool_usable`:
/// what `Spool::can_create_recordings` said before the FIFO was made.
///
/// `ready` is given when policy.on_error = closed: the session waits on it before it starts the shell, and gets
/// READY, or the reason nothing can be recorded (the session then refuses the login, and logs why). Without it
/// (open), a recording that cannot be created leaves the session running unrecorded (`go_on_unrecorded`).
pub fn create_recording_and_run(
    mut plan: WriterPlan,
    data: OwnedFd,
    ready: Option<OwnedFd>,
    spool_usable: bool,
) -> i32 {
    // With on_error = open the recording is created once the shell has started up; at once when the spool plainly
    // cannot take it (`spool_usable`: `Spool::can_create_recordings`, asked before the FIFO was made).
    if ready.is_none() && spool_usable {
        let_the_shell_start(&data);
    }
    // Only `auditty flush` puts a recording of this id elsewhere: the notice of a login whose relay was gone, and no
    // recording made, for a minute (`queue::queue_never_started`), which this writer was then held (stopped) through.
    // A second recording of the id would collide with that one.
    let reported = plan.spool.find(&plan.meta.id).is_some();
    let created = if reported {
        Err(anyhow::anyhow!(
            "auditty flush has already reported this session as not recorded (its spool writer was held, e.g. \
             stopped, before it could create the recording)"
        ))
    } else {
        plan.spool.create_recording(&plan.meta.id)
    };
    let created = created.and_then(|dir| {
        let lock =
            layout::lock_new(&dir)?.context("a fresh recording is locked by someone else")?;
        // Not synced: rewritten (and synced) as soon as the shell runs.
        plan.meta.write_unsynced(&dir)?;
        let _ = plan.spool.ensure();
        WriterFiles::create(&dir, plan.cfg.record.input, lock)
    });
    match created {
        Ok(files) => {
            if let Some(r) = ready {
                let _ = nix::unistd::write(&r, &[READY]);
            }
            run(plan, files, data)
        }
        Err(e) => {
            let why = format!("{e:#}");
            match ready {
                Some(r) => {
                    // policy.on_error = closed: the login is refused and no shell runs, so there is no session to
                    // keep. What was made of its recording (ours: the id is new) goes; left there, `auditty flush`
                    // would mail it a minute later as a session whose recorder vanished. The refusal is in syslog.
                    if !reported && plan.dir.is_dir() {
                        let _ = std::fs::remove_dir_all(&plan.dir);
                    }
                    let _ = nix::unistd::write(&r, why.as_bytes());
                    1
                }
                None => {
                    if plan.dir.is_dir() {
                        // Ours (the id is new), and the session goes on unrecorded: meta.json says why, if it can,
                        // and `auditty flush` mails what there is when it completes it.
                        plan.meta
                            .write_errors
                            .push(format!("cannot record the session: {why}"));
                        let _ = plan.meta.write(&plan.dir);
                    }
                    go_on_unrecorded(plan, &why, data);
                    0
                }
            }
        }
    }
}

/// How long the writer lets the shell start up before it creates the recording (`let_the_shell_start`).
const SHELL_SETTLE: Duration = Duration::from_millis(20);
/// ... in naps of this length, between which it looks at the pipe.
const SHELL_SETTLE_NAP: Duration = Duration::from_millis(5);
/// ... and no longer once the relay has handed over this much (the pipe holds 1 MiB).
const SHELL_SETTLE_MAX_BYTES: usize = 256 << 10;

/// policy.on_error = open (the shell does not wait for the recording): let the shell start up first. Creating the
/// recording is a millisecond or more of kernel work (ext4 inodes for the directory and five files, a rename), which
/// on a small machine would otherwise run just while the shell is exec'd and starts, taking the CPU that the shell,
/// the tty layer's workers and the relay need in turn: measured on our 2-vCPU VM, a session's first output came
/// 0.3-0.7 ms later with it than with the writer kept out of the way (docs/benchmarks.md). So the writer first naps
/// for `SHELL_SETTLE` (from its fork; the relay starts the shell within a millisecond), in a few naps without
/// waiting on the pipe, so that nothing the relay writes wakes it; it stops early once `SHELL_SETTLE_MAX_BYTES` are
/// waiting, so a shell that starts with bulk output is not held back for long. Nothing is lost meanwhile: frames
/// wait in the pipe (and, past its size, in the relay), and a relay that dies meanwhile is seen as EOF afterwards.
/// The command FIFO is made before this wait, so the shell's hook never waits for it; a spool that plainly cannot
/// take a recording (`Spool::can_create_recordings`) gets no FIFO (the registration loses it before the hook can
/// use it) and no wait. One that fails anyway (a full disk) is handled as any failure: `go_on_unrecorded`, which also drains
/// the FIFO in case the hook found it meanwhile.
pub fn let_the_shell_start(data: &OwnedFd) {
    let end = Instant::now() + SHELL_SETTLE;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(SHELL_SETTLE_NAP));
        if crate::sys::pipe_pending(data.as_fd()).unwrap_or(usize::MAX) >= SHELL_SETTLE_MAX_BYTES {
            return;
        }
    }
}

/// policy.on_error = open and the recording cannot be created: the session goes on unrecorded. Say so in syslog;
/// leave the guard registration in place without its FIFO (the shell's profile must not start a nested session,
/// which would fail the same way); take and drop what the relay sends until the session ends (the relay ends any
/// session whose writer is gone), then withdraw the registration.
fn go_on_unrecorded(mut plan: WriterPlan, why: &str, data: OwnedFd) {
    let mut log = Logger::new(&plan.cfg.syslog);
    crate::syslog::error(
        &mut log,
        &plan.meta.id,
        &format!(
            "cannot record the session of {} (policy.on_error=open: continuing unrecorded): {why}",
            plan.meta.user
        ),
    );
    log.flush_now();
    let run_dir = plan.cfg.spool.run_dir.clone();
    if let Some((reg, keys)) = &mut plan.registration {
        // The registration now says why, and stays after the session: `auditty flush` finds it once the relay is
        // gone and tells the auditors that this login was not recorded (a notice recording, mailed).
        reg.unrecorded = why.to_string();
        reg.republish_without_fifo(&run_dir, keys);
    }
    // The shell's hook may have found the FIFO before it left the registration (the recording is created once the
    // shell has started up, `let_the_shell_start`) and holds it open: what it writes is taken and dropped too, so
    // the FIFO never fills and the shell never waits on it.
    let fifo = plan.fifo.as_ref().and_then(|p| open_fifo(p));
    let mut data = File::from(data);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let (data_ready, fifo_ready) =
            match poll_pipe_and_fifo(&data, fifo.as_ref(), PollTimeout::NONE) {
                Ok(ready) => ready,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            };
        if fifo_ready && let Some((r, _)) = &fifo {
            let _ = (&*r).read(&mut buf);
        }
        if data_ready {
            match data.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    // The registration stays as the login's trace for flush, unless this user already has many waiting (a loop of
    // logins on a spool they filled): then it goes, as for a recorded session; syslog has the failure either way.
    if let Some((reg, keys)) = &plan.registration
        && guard::traces_of(&run_dir, &plan.meta.user) >= guard::TRACES_PER_USER
    {
        reg.withdraw(&run_dir, keys);
    }
}

/// The pipe recorder's writer (`session::pipes`), right after the fork: create the recording's data files, then `run`. If they cannot be created,
/// nothing can be recorded: say why (syslog, and meta.json, which `auditty flush` mails when it completes the
/// recording) and return 1 at once; the relay then ends the session, as it does whenever its writer is gone.
pub fn create_and_run(mut plan: WriterPlan, lock: Flock<File>, data: OwnedFd) -> i32 {
    // The session only made sure of active/ (`Spool::create_recording`): queue/ must be there by the end.
    let _ = plan.spool.ensure();
    match WriterFiles::create(&plan.dir, plan.cfg.record.input, lock) {
        Ok(files) => run(plan, files, data),
        Err(e) => {
            let msg = format!("cannot record the session: {e:#}");
            let mut log = Logger::new(&plan.cfg.syslog);
            crate::syslog::error(&mut log, &plan.meta.id, &msg);
            if let Some((reg, keys)) = &plan.registration {
                reg.withdraw(&plan.cfg.spool.run_dir, keys);
            }
            plan.meta.write_errors.push(msg);
            let _ = plan.meta.write(&plan.dir);
            log.flush_now();
            1
        }
    }
}

/// Run the writer until the relay's pipe reaches EOF, then complete and queue the recording. Returns the exit code.
pub fn run(mut plan: WriterPlan, files: WriterFiles, data: OwnedFd) -> i32 {
    // Held until the recording is complete and queued: `auditty flush` leaves a locked recording alone.
    let _lock = files.lock;
    let mut log = Logger::new(&plan.cfg.syslog);
    let timing = TimingWriter::new(plan.format, plan.opened_ns);
    let mut w = Writer {
        timing,
        ts: Sink::new("typescript", files.typescript),
        tm: Sink::new("timing", files.timing),
        input: files.input.map(|f| Sink::new("input", f)),
        commands: Sink::new("commands.log", files.commands),
        last_flush: Instant::now(),
        log: Logger::new(&plan.cfg.syslog),
        registration: plan.registration.take(),
        end: None,
        shell: None,
        header_len: 0,
        reserve: files.reserve,
        plan,
    };
    std::mem::swap(&mut w.log, &mut log);
    w.write_headers();
    let fifo = w.plan.fifo.as_ref().and_then(|p| open_fifo(p));
    let mut parser = RecordParser::default();
    // Non-blocking (this open file description is the writer's alone): a drain reads until the pipe is empty.
    let _ = nix::fcntl::fcntl(
        &data,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let mut data = File::from(data);
    let mut incoming = Incoming::default();
    let mut corrupt = None;
    let mut eof = false;
    // When the relay last handed over data; None while idle. While recent, the writer naps between drains instead
    // of waiting on the pipe, so the relay's pipe write wakes nobody (see NAP).
    let mut active_since_data: Option<Instant> = None;
    let mut last_drain = 0usize;
    loop {
        // Once the relay has said the session ended, EOF follows at once: wait for it without a nap.
        let napping =
            w.end.is_none() && active_since_data.is_some_and(|t| t.elapsed() < NAP_LINGER);
        let timeout = if napping {
            std::thread::sleep(if last_drain >= BULK_DRAIN {
                NAP_BULK
            } else {
                NAP
            });
            PollTimeout::ZERO
        } else {
            active_since_data = None;
            PollTimeout::from(250u16)
        };
        let (data_ready, fifo_ready) =
            poll_pipe_and_fifo(&data, fifo.as_ref(), timeout).unwrap_or((false, false));
        last_drain = 0;
        // The relay's frames first: its Started frame, which logs session-start, is in the pipe before the shell
        // can have run a command, and syslog must see the session begin before its commands.
        if data_ready {
            match drain(&mut data, &mut incoming, &mut w) {
                Drained::Bytes(n) => last_drain = n,
                Drained::Eof => {
                    eof = true;
                    break;
                }
                Drained::Corrupt(e) => {
                    corrupt = Some(e);
                    break;
                }
            }
        }
        if fifo_ready && let Some((r, _)) = &fifo {
            w.read_commands(r, &mut parser);
        }
        if last_drain > 0 {
            active_since_data = Some(Instant::now());
        }
        if w.ts.buf.len() + w.tm.buf.len() >= FLUSH_BYTES || w.last_flush.elapsed() >= FLUSH_EVERY {
            w.flush(false);
        }
        // Syslog lines queued while the daemon was away (e.g. restarting) go out once it is back.
        w.log.tick();
    }
    if let Some(e) = corrupt {
        w.plan.meta.write_errors.push(format!("relay stream: {e}"));
    }
    // The relay died without restoring the user's terminal. Either way it is closed here, before the delivery.
    if let Some(t) = w.plan.terminal.take()
        && eof
        && w.end.is_none()
    {
        t.restore();
    }
    if eof && w.end.is_none() {
        // The relay died, maybe in the middle of a frame: keep the part of its output that arrived.
        if let Some(f) = frames::decode_truncated(incoming.unhandled()) {
            w.handle(f.kind, f.ts_ns, f.payload);
        }
        w.end_orphaned_session();
    }
    if let Some((r, _)) = &fifo {
        w.read_commands(r, &mut parser);
    }
    if parser.discarded() > 0 {
        // Not from the hook: someone wrote into the FIFO by hand (or a record was cut off).
        let msg = format!(
            "command FIFO: {} bytes that were not command records were skipped",
            parser.discarded()
        );
        crate::syslog::error(&mut w.log, &w.plan.meta.id, &msg);
    }
    w.finish();
    0
}

/// What one drain of the relay's pipe came to.
enum Drained {
    /// Bytes taken (the pipe is empty now, or the next read would wait).
    Bytes(usize),
    Eof,
    Corrupt(String),
}

/// The relay's stream as read from its pipe: the bytes not handled yet (after `Writer::handle_frames`, at most one
/// incomplete frame), followed by room for the next read. Reads land here directly and frames are handled where they
/// lie, so a recorded byte is copied once in the writer, into its file's buffer.
#[derive(Default)]
struct Incoming {
    buf: Vec<u8>,
    filled: usize,
}

impl Incoming {
    /// One read of up to READ_CHUNK bytes, appended to what is unhandled.
    fn read_from(&mut self, data: &mut File) -> std::io::Result<usize> {
        let end = self.filled + READ_CHUNK;
        if self.buf.len() < end {
            // Grows only while an incomplete frame is carried over that is bigger than any before.
            self.buf.resize(end, 0);
        }
        let n = data.read(&mut self.buf[self.filled..end])?;
        self.filled += n;
        Ok(n)
    }

    fn unhandled(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    /// Forget the first `n` unhandled bytes (handled frames), moving the rest (part of a frame) to the front.
    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
    }
}

/// Read the pipe while reads come back full (more is waiting), handing every complete frame to the writer; a short
/// read means the pipe is empty now.
fn drain(data: &mut File, incoming: &mut Incoming, w: &mut Writer) -> Drained {
    let mut total = 0;
    loop {
        match incoming.read_from(data) {
            Ok(0) => return Drained::Eof,
            Ok(n) => {
                total += n;
                let (handled, res) = w.handle_frames(incoming.unhandled());
                incoming.consume(handled);
                if let Err(e) = res {
                    return Drained::Corrupt(e);
                }
                // Write out as we go: a drain after a nap can bring a whole pipe (1 MiB), which would otherwise sit in
                // the buffers at once and grow them (and the writer's resident memory) past FLUSH_BYTES.
                if w.ts.buf.len() + w.tm.buf.len() > FLUSH_BYTES - READ_CHUNK {
                    w.flush(false);
                }
                if n < READ_CHUNK {
                    return Drained::Bytes(total);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Drained::Bytes(total),
            Err(e) => return Drained::Corrupt(format!("reading the relay pipe: {e}")),
        }
    }
}

/// Open the FIFO for reading without blocking, plus a write end we keep so it never reports EOF.
/// Wait (up to `timeout`) until the relay's pipe or the command FIFO (its read end, when there is one) has something
/// (data, EOF, an error): which of the two.
fn poll_pipe_and_fifo(
    data: &impl AsFd,
    fifo: Option<&(File, File)>,
    timeout: PollTimeout,
) -> nix::Result<(bool, bool)> {
    let mut fds = vec![PollFd::new(data.as_fd(), PollFlags::POLLIN)];
    if let Some((r, _)) = fifo {
        fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
    }
    poll(&mut fds, timeout)?;
    let ready = |i: usize| {
        fds.get(i)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty())
    };
    Ok((ready(0), ready(1)))
}

/// Open the command FIFO for reading without blocking, plus a write end we keep so it never reports EOF. Only a FIFO
/// is taken, and never through a symlink: the directory is the user's, who could otherwise put `/dev/zero` or a
/// huge file in its place and keep this process reading instead of recording (docs/security.md, N13). Both ends
/// must be the same inode (nothing swapped between the two opens).
fn open_fifo(p: &std::path::Path) -> Option<(File, File)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
    let open = |write: bool| {
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(p)
            .ok()
    };
    let r = open(false)?;
    let rm = r.metadata().ok()?;
    if !rm.file_type().is_fifo() {
        return None;
    }
    let w = open(true)?;
    let wm = w.metadata().ok()?;
    if (wm.dev(), wm.ino()) != (rm.dev(), rm.ino()) {
        return None;
    }
    // Room for many records while this process is busy, so a shell's write never waits on us (the hook also
    // caps a record's text at 64 KiB, and this 1 MiB is the unprivileged maximum).
    let _ = nix::fcntl::fcntl(&r, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    Some((r, w))
}

/// The most read from the command FIFO in one turn: a FIFO kept full (`yes > $AUDITTY_FIFO`) must not keep the
/// writer from the relay's pipe, nor from finishing once the session has ended.
const COMMANDS_PER_TURN: usize = 1 << 20;

impl Writer {
    fn write_headers(&mut self) {
        let m = &self.plan.meta;
        let info = typescript::HeaderInfo {
            command: m.command.as_deref(),
            term: m.term.as_deref(),
            tty: m.tty.as_deref(),
            columns: m.columns,
            lines: m.lines,
        };
        let header = typescript::header(&m.start, &info);
        self.header_len = header.len() as u64;
        self.ts.buf.extend_from_slice(&header);
        if let Some(i) = &mut self.input {
            i.buf.extend_from_slice(&header);
        }
        let t = &mut self.timing;
        let b = &mut self.tm.buf;
        t.info(b, "START_TIME", &m.start);
        if m.tty.is_some() {
            t.info(b, "TERM", m.term.as_deref().unwrap_or("(null)"));
            t.info(b, "TTY", m.tty.as_deref().unwrap_or(""));
            t.info(b, "COLUMNS", &m.columns.to_string());
            t.info(b, "LINES", &m.lines.to_string());
        }
        t.info(b, "SHELL", &m.shell);
        if let Some(c) = &m.command {
            t.info(b, "COMMAND", c);
        }
        t.info(b, "TIMING_LOG", "timing");
        t.info(b, "OUTPUT_LOG", "typescript");
        if self.input.is_some() {
            t.info(b, "INPUT_LOG", "input");
        }
        self.flush(false);
    }

    /// Handle the complete frames at the front of `stream`: how many bytes they took, and an error for a frame that
    /// cannot be decoded (the rest of the stream cannot be trusted).
    fn handle_frames(&mut self, stream: &[u8]) -> (usize, Result<(), String>) {
        let mut at = 0;
        loop {
            match frames::decode(&stream[at..]) {
                Ok(Some((f, used))) => {
                    self.handle(f.kind, f.ts_ns, f.payload);
                    at += used;
                }
                Ok(None) => return (at, Ok(())),
                Err(e) => return (at, Err(e)),
            }
        }
    }

    fn handle(&mut self, kind: Kind, ts: u64, p: &[u8]) {
        match kind {
            Kind::Output => {
                self.ts.buf.extend_from_slice(p);
                self.timing.output(&mut self.tm.buf, ts, p.len());
                self.plan.meta.bytes_out += p.len() as u64;
            }
            Kind::Input => {
                if let Some(i) = &mut self.input {
                    i.buf.extend_from_slice(p);
                    self.timing.input(&mut self.tm.buf, ts, p.len());
                    self.plan.meta.bytes_in += p.len() as u64;
                }
            }
            Kind::InputWithheld => {
                if let Ok(b) = p.try_into() {
                    self.plan.meta.input_withheld_bytes += u32::from_le_bytes(b) as u64;
                }
            }
            Kind::Resize => {
                if p.len() == 4 {
                    let rows = u16::from_le_bytes([p[0], p[1]]);
                    let cols = u16::from_le_bytes([p[2], p[3]]);
                    self.timing.resize(&mut self.tm.buf, ts, rows, cols);
                }
            }
            Kind::Signal => {
                let name = String::from_utf8_lossy(p).into_owned();
                self.timing.signal(&mut self.tm.buf, ts, &name);
            }
            Kind::Flush => self.flush(true),
            Kind::Started => self.started(p),
            Kind::End => {
                if p.len() >= 5 {
                    let status = i32::from_le_bytes(p[..4].try_into().unwrap());
                    let reason = match p[4] {
                        0 => EndReason::Exit,
                        1 => EndReason::Hangup,
                        2 => EndReason::Signal,
                        _ => EndReason::Killed,
                    };
                    self.end = Some((
                        status,
                        reason,
                        String::from_utf8_lossy(&p[5..]).into_owned(),
                    ));
                }
            }
        }
    }

    /// The shell runs on its PTY (registered in the guard by the session before it started): log the session start.
    fn started(&mut self, p: &[u8]) {
        let text = String::from_utf8_lossy(p);
        let mut parts = text.split('\0');
        let pty = parts.next().unwrap_or("").to_string();
        self.shell = parts
            .next()
            .and_then(|p| p.parse::<i32>().ok())
            .filter(|&p| p > 1)
            .map(nix::unistd::Pid::from_raw);
        self.plan.meta.pty = Some(pty.clone()).filter(|s| !s.is_empty());
        self.plan.meta.shell_pid = self.shell.map(|p| p.as_raw() as u32);
        let _ = self.plan.meta.write_unsynced(&self.plan.dir);
        crate::syslog::session_start(&mut self.log, &self.plan.meta);
    }

    /// The relay vanished without ending the session (SIGKILL, crash): the kernel hung up the PTY, but a job that
    /// ignores SIGHUP would outlive the recording. End the shell's session as the relay would have: SIGHUP, then
    /// SIGTERM and SIGKILL, each after a bounded grace.
    fn end_orphaned_session(&mut self) {
        use crate::session::procs;
        use nix::sys::signal::Signal;
        let Some(sid) = self.shell else {
            return;
        };
        for (sig, grace) in [
            (Signal::SIGHUP, Duration::from_secs(1)),
            (Signal::SIGTERM, Duration::from_secs(1)),
            (Signal::SIGKILL, Duration::ZERO),
        ] {
            if procs::members(sid).is_empty() {
                return;
            }
            procs::signal_session(sid, sig);
            if sig == Signal::SIGHUP {
                procs::signal_session(sid, Signal::SIGCONT);
            }
            let end = Instant::now() + grace;
            while Instant::now() < end && !procs::members(sid).is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn read_commands(&mut self, fifo: &File, parser: &mut RecordParser) {
        let mut buf = [0u8; 16 << 10];
        let mut taken = 0;
        while taken < COMMANDS_PER_TURN {
            match (&*fifo).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    taken += n;
                    for rec in parser.feed(&buf[..n]) {
                        self.command(&rec);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }

    fn command(&mut self, rec: &CommandRecord) {
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp() as f64 + now.nanosecond() as f64 / 1e9;
        self.commands
            .buf
            .extend_from_slice(&crate::hook::fifo::log_line(rec, t));
        self.plan.meta.commands += 1;
        crate::syslog::command(&mut self.log, &self.plan.meta, rec);
    }

    fn flush(&mut self, sync: bool) {
        let errors = &mut self.plan.meta.write_errors;
        let lost = write_out_timing_first(
            &mut self.tm,
            &mut self.ts,
            self.input.as_mut(),
            &mut self.commands,
            errors,
        );
        self.plan.meta.lost_bytes += lost;
        if sync {
            let _ = self.ts.file.sync_data();
            let _ = self.tm.file.sync_data();
            if let Some(i) = &self.input {
                let _ = i.file.sync_data();
            }
        }
        self.last_flush = Instant::now();
    }

    /// After write errors (a full disk): make the timing file describe exactly the bytes the typescript (and input)
    /// holds, as `auditty flush` does for an orphan (`Timing::reconcile`): entries for bytes that were given up are
    /// shortened or dropped, stored bytes without an entry get one, lines cut by a failed write are dropped; then
    /// `closing` (DURATION, EXIT_CODE). Only what differs from the file is rewritten (it is truncated to what they
    /// have in common), so this needs little room: the reserve released just before.
    fn rewrite_timing_for_what_is_stored(&mut self, closing: &[u8]) {
        use std::os::unix::fs::FileExt;
        let path = self.plan.dir.join(layout::TIMING);
        let mut on_disk = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                self.plan
                    .meta
                    .write_errors
                    .push(format!("timing: cannot read it back to repair it: {e}"));
                return;
            }
        };
        on_disk.truncate(self.tm.stored as usize);
        let mut text = on_disk.clone();
        text.extend_from_slice(&self.tm.buf);
        self.tm.buf.clear();
        let mut timing = Timing::parse(&text);
        timing.classic = self.plan.format == TimingFormat::Classic;
        let streams = [Some(&self.ts), self.input.as_ref()];
        let mut at = [self.header_len; 2];
        for e in &mut timing.entries {
            if let Entry::Data { stream, len, .. } = e {
                let i = usize::from(*stream == Stream::In);
                let start = at[i];
                at[i] += *len;
                if let Some(sink) = streams[i] {
                    *len -= sink.dropped_within(start, *len);
                }
            }
        }
        timing
            .entries
            .retain(|e| !matches!(e, Entry::Data { len: 0, .. }));
        let have = streams.map(|s| s.map_or(0, |s| s.stored.saturating_sub(self.header_len)));
        timing.reconcile(have, self.input.is_some());
        let mut fixed = timing.render();
        fixed.extend_from_slice(closing);
        let same = fixed
            .iter()
            .zip(&on_disk)
            .take_while(|(a, b)| a == b)
            .count();
        let written = self
            .tm
            .file
            .set_len(same as u64)
            .and_then(|_| self.tm.file.write_all_at(&fixed[same..], same as u64));
        // A repair to report only when the lines differ from what the session wrote and kept waiting (a write that
        // failed once and then went through changes nothing).
        let repaired = fixed[..fixed.len() - closing.len()] != text[..];
        let m = &mut self.plan.meta;
        match written {
            Ok(()) if !repaired => self.tm.stored = fixed.len() as u64,
            Ok(()) => {
                self.tm.stored = fixed.len() as u64;
                let mut note = format!(
                    "timing: rewritten to describe exactly the {} bytes of output the typescript holds",
                    have[0]
                );
                if self.input.is_some() {
                    note += &format!(" and the {} bytes of input", have[1]);
                }
                if let Some(d) = timing.dropped_note() {
                    note += &format!(" ({d})");
                }
                m.write_errors.push(note);
            }
            Err(e) => m.write_errors.push(format!(
                "timing: cannot repair it after the write errors: {e}"
            )),
        }
    }

    /// EOF from the relay: write the footers, sync, complete meta.json, withdraw from the guard, log, queue.
    fn finish(mut self) {
        // The PTY is gone: withdraw it from the guard before anything slow (compression, mail).
        if let Some((reg, keys)) = &self.registration {
            reg.withdraw(&self.plan.cfg.spool.run_dir, keys);
        }
        let end_wall = OffsetDateTime::now_utc();
        let duration_ns = monotonic_ns().saturating_sub(self.plan.opened_ns);
        let end_str = typescript::script_time(end_wall, self.plan.offset);
        let (status, reason, signal) = match self.end.take() {
            Some((s, r, sig)) => (Some(s), r, Some(sig).filter(|s| !s.is_empty())),
            None => (None, EndReason::Killed, None),
        };
        let mark = (reason == EndReason::Killed).then_some(typescript::KILLED_MARK);
        let footer = typescript::footer(&end_str, status, mark);
        let us = duration_ns / 1000;
        let mut closing = Vec::new();
        if self.plan.meta.input_withheld_bytes > 0 {
            self.timing.info(
                &mut closing,
                "INPUT_WITHHELD",
                &self.plan.meta.input_withheld_bytes.to_string(),
            );
        }
        if reason != EndReason::Exit {
            self.timing.info(&mut closing, "END", reason.as_str());
        }
        self.timing.info(
            &mut closing,
            "DURATION",
            &format!("{}.{:06}", us / 1_000_000, us % 1_000_000),
        );
        if let Some(s) = status {
            self.timing.info(&mut closing, "EXIT_CODE", &s.to_string());
        }
        // What the session sent, while the reserve still keeps its room.
        self.flush(false);
        let write_failed = [Some(&self.ts), Some(&self.tm), self.input.as_ref()]
            .into_iter()
            .flatten()
            .any(|s| s.failed);
        if write_failed {
            // The disk refused data: what it still does not take is given up now, so that the room released next
            // goes to the end of the recording, not to more of its middle.
            let mut lost = self.ts.drop_backlog() + self.commands.drop_backlog();
            if let Some(i) = &mut self.input {
                lost += i.drop_backlog();
            }
            self.plan.meta.lost_bytes += lost;
        }
        if let Some(reserve) = self.reserve.take() {
            let _ = std::fs::remove_file(reserve);
        }
        if write_failed {
            self.rewrite_timing_for_what_is_stored(&closing);
        } else {
            self.tm.buf.extend_from_slice(&closing);
        }
        self.ts.buf.extend_from_slice(&footer);
        if let Some(i) = &mut self.input {
            i.buf.extend_from_slice(&footer);
        }
        self.flush(true);
        let _ = self.commands.file.sync_data();
        let m = &mut self.plan.meta;
        m.end = Some(end_str);
        m.duration_secs = Some(duration_ns as f64 / 1e9);
        m.exit_status = status;
        m.end_reason = Some(reason);
        m.signal = signal;
        // Syslog lines still queued get one more chance before they count as dropped.
        self.log.flush_now();
        m.syslog_dropped = self.log.dropped();
        if let Err(e) = m.write(&self.plan.dir) {
            m.write_errors.push(format!("meta.json: {e:#}"));
        }
        let id = self.plan.meta.id.clone();
        // The sums of the files as written, unless a write failed (the timing may then have been rewritten).
        let written: Vec<(&str, FileSum)> = if write_failed {
            Vec::new()
        } else {
            [
                Some(&self.ts),
                Some(&self.tm),
                self.input.as_ref(),
                Some(&self.commands),
            ]
            .into_iter()
            .flatten()
            .filter_map(Sink::sum)
            .collect()
        };
        if let Err(e) = crate::deliver::enqueue_finished(
            &self.plan.cfg,
            &self.plan.spool,
            &mut self.plan.meta,
            &written,
        ) {
            crate::syslog::session_end(&mut self.log, &self.plan.meta);
            crate::syslog::error(
                &mut self.log,
                &id,
                &format!("cannot queue the recording: {e:#}"),
            );
            return;
        }
        // session-end carries the files' sums, computed while queueing.
        crate::syslog::session_end(&mut self.log, &self.plan.meta);
        let _ = crate::deliver::deliver_now(
            &self.plan.cfg,
            &self.plan.spool,
            &mut self.plan.meta,
            &mut self.log,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every complete frame `incoming` holds now, decoded (kind, payload), and consumed.
    fn take_frames(incoming: &mut Incoming) -> Vec<(Kind, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((f, used)) = frames::decode(&incoming.unhandled()[at..]).unwrap() {
            out.push((f.kind, f.payload.to_vec()));
            at += used;
        }
        incoming.consume(at);
        out
    }

    #[test]
    fn incoming_carries_a_frame_split_over_reads_and_one_bigger_than_a_read() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let (mut r, mut w) = (File::from(r), File::from(w));
        let small: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let big: Vec<u8> = (0..(READ_CHUNK as u32 + 5000))
            .map(|i| (i % 241) as u8)
            .collect();
        let mut stream = Vec::new();
        frames::encode(&mut stream, Kind::Output, 1, &small);
        frames::encode(&mut stream, Kind::Input, 2, &big);
        frames::encode(&mut stream, Kind::Output, 3, b"tail");
        let mut incoming = Incoming::default();
        let mut got = Vec::new();
        // The first frame and 10 bytes of the second (part of its header), then the rest in pieces that end
        // in the middle of the big payload and of the last header.
        let first = frames::HEADER_LEN + small.len();
        let cuts = [
            first + 10,
            READ_CHUNK / 2,
            READ_CHUNK + 100,
            stream.len() - 18,
            stream.len(),
        ];
        let (mut sent, mut read) = (0, 0);
        for cut in cuts {
            w.write_all(&stream[sent..cut]).unwrap();
            sent = cut;
            while read < sent {
                read += incoming.read_from(&mut r).unwrap();
            }
            got.extend(take_frames(&mut incoming));
            if cut == first + 10 {
                assert_eq!(got.len(), 1);
                assert_eq!(incoming.unhandled(), &stream[first..cut]);
            }
        }
        assert_eq!(
            got,
            [
                (Kind::Output, small),
                (Kind::Input, big),
                (Kind::Output, b"tail".to_vec())
            ]
        );
        assert!(incoming.unhandled().is_empty());
    }

    #[test]
    fn a_sinks_sum_is_that_of_its_file_and_only_while_it_holds_everything() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("typescript");
        let mut sink = Sink::new("typescript", File::create(&path).unwrap());
        let mut errors = Vec::new();
        for i in 0..50u32 {
            sink.buf
                .extend_from_slice(&vec![b'a' + (i % 26) as u8; 7001]);
            if i % 7 == 0 {
                sink.flush(&mut errors);
            }
        }
        sink.buf.extend_from_slice(b"tail");
        assert!(sink.sum().is_none(), "bytes still buffered: no sum yet");
        sink.flush(&mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let (name, sum) = sink.sum().unwrap();
        assert_eq!(name, "typescript");
        assert_eq!(sum, crate::deliver::compress::sum_file(&path).unwrap());
        assert_eq!(sum.size, 50 * 7001 + 4);
        // A write that failed (here: a file opened read-only) leaves no sum to trust.
        let mut ro = Sink::new("timing", File::open(&path).unwrap());
        ro.buf.extend_from_slice(b"0.000001 5\n");
        ro.flush(&mut errors);
        assert!(ro.failed && ro.sum().is_none());
    }

    #[test]
    fn the_timing_is_written_out_before_the_data_it_describes() {
        // All four sinks write into one pipe, so the pipe holds their writes in the order they were made.
        let (rx, tx) = nix::unistd::pipe().unwrap();
        let sink = |name| Sink::new(name, File::from(tx.try_clone().unwrap()));
        let (mut tm, mut ts, mut input, mut commands) = (
            sink("timing"),
            sink("typescript"),
            sink("input"),
            sink("commands.log"),
        );
        ts.buf.extend_from_slice(b"[data]");
        tm.buf.extend_from_slice(b"[timing]");
        input.buf.extend_from_slice(b"[input]");
        commands.buf.extend_from_slice(b"[commands]");
        let mut errors = Vec::new();
        let lost = write_out_timing_first(
            &mut tm,
            &mut ts,
            Some(&mut input),
            &mut commands,
            &mut errors,
        );
        assert_eq!((lost, errors.len()), (0, 0), "{errors:?}");
        drop((tm, ts, input, commands, tx));
        let mut written = String::new();
        File::from(rx).read_to_string(&mut written).unwrap();
        assert_eq!(written, "[timing][data][input][commands]");
    }
}
