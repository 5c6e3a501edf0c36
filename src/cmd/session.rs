//! `auditty session [-c COMMAND]`: record the user's shell, or run it as-is when there is no terminal.
//!
//! Order of events (the process is single-threaded throughout, so the writer's fork is safe; the shell is started as
//! posix_spawn does, `sys::spawn_on_pty`):
//! config → nesting guard → open the PTY → publish it in the guard → start the shell on the PTY (its child gives up
//! the group before its exec) → fork the spool writer, while the shell is exec'd on the other CPU (the writer keeps
//! group auditty, detaches, makes the command FIFO, creates the recording: directory, lock, meta.json, data files) →
//! this process drops the group and becomes the relay. Nothing of the recording is created on disk on the way to the
//! shell: the writer does it once the shell has started up, and frames wait in the pipe (the shell's first output
//! waits in the PTY until the relay reads it). With policy.on_error = closed the writer is forked first and the shell
//! starts only once it has reported the recording created; with open, a writer that cannot create it lets the
//! session go on unrecorded (`writer::create_recording_and_run`).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::pty::Winsize;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::{Pid, pipe2};
use time::{OffsetDateTime, UtcOffset};

use crate::cli::Cli;
use crate::cmd::Exit;
use crate::config::{Config, OnError, TimingFormat};
use crate::privilege::Privilege;
use crate::record::meta::Meta;
use crate::session::pty::Pty;
use crate::session::relay::{self, Endpoints};
use crate::session::signals::Signals;
use crate::session::terminal::{self, RawMode};
use crate::spool::frames::{self, Kind};
use crate::spool::guard::{self, Registration};
use crate::spool::layout::{self, Spool, State};
use crate::spool::writer::{self, WriterPlan};
use crate::sys::{self, ExecPlan, Forked};
use crate::syslog::Logger;

/// The shell to run and how.
struct ShellPlan {
    user: String,
    uid: u32,
    shell: PathBuf,
    command: Option<String>,
}

impl ShellPlan {
    fn resolve(command: Option<String>) -> ShellPlan {
        let uid = nix::unistd::getuid();
        let pw = crate::session::account::lookup(uid.as_raw());
        let me = std::fs::read_link("/proc/self/exe").ok();
        let usable = |p: &Path| crate::session::account::is_usable_shell(p, me.as_deref());
        let shell = pw
            .as_ref()
            .map(|u| u.shell.clone())
            .filter(|p| usable(p))
            .or_else(|| {
                std::env::var_os("SHELL")
                    .map(PathBuf::from)
                    .filter(|p| usable(p))
            })
            .unwrap_or_else(|| PathBuf::from("/bin/sh"));
        let user = pw.map(|u| u.name).unwrap_or_else(|| uid.to_string());
        ShellPlan {
            user,
            uid: uid.as_raw(),
            shell,
            command,
        }
    }

    /// argv: a login shell (`-bash`) or `bash -c COMMAND`.
    fn exec_plan(&self, extra_env: &[(&str, &str)]) -> Result<ExecPlan> {
        let base = self.shell.file_name().unwrap_or(OsStr::new("sh"));
        let argv: Vec<OsString> = match &self.command {
            Some(c) => vec![base.to_os_string(), "-c".into(), c.into()],
            None => {
                let mut a = OsString::from("-");
                a.push(base);
                vec![a]
            }
        };
        let mut env: Vec<OsString> = std::env::vars_os()
            .filter(|(k, _)| !extra_env.iter().any(|(n, _)| OsStr::new(n) == k))
            .map(|(k, v)| {
                let mut e = k;
                e.push("=");
                e.push(v);
                e
            })
            .collect();
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| OsString::from(format!("{k}={v}"))),
        );
        Ok(ExecPlan::new(self.shell.as_os_str(), &argv, &env)?)
    }
}

pub fn run(cli: &Cli, mut privilege: Privilege, command: Option<String>) -> Result<Exit> {
    // `--check` for profile.d, and sshd ForceCommand sessions (SSH_ORIGINAL_COMMAND): src/session/ssh.rs.
    let command = match crate::session::ssh::preflight(cli, &mut privilege, command)? {
        crate::session::ssh::Next::Continue(c) => c,
        crate::session::ssh::Next::Done(code) => return Ok(code),
    };
    let shell = ShellPlan::resolve(command);
    if !sys::is_tty(0) {
        // scp, sftp, rsync, `ssh host cmd`: no PTY, nothing printed, the command runs as it is.
        privilege.drop_group()?;
        return Err(shell.exec_plan(&[])?.exec())
            .context(format!("cannot execute {}", shell.shell.display()));
    }
    if privilege.untrusted_elevated()
        && (cli.global.config.is_some() || !cli.global.overrides.is_empty())
    {
        // Choosing the configuration would choose where the recording goes: refused, and no shell is started.
        privilege.drop_group()?;
        bail!(
            "--config and -o are refused while auditty runs with its setgid privilege \
             (only root or members of the auditty group may use them)"
        );
    }
    let cfg = match privilege.load_config(cli) {
        Ok(c) => c,
        Err(e) => {
            return unrecorded(
                privilege,
                &shell,
                crate::session::gate::lenient_on_error(cli, &privilege),
                None,
                &format!("{e:#}"),
            );
        }
    };
    let tty = nix::unistd::ttyname(std::io::stdin())
        .ok()
        .map(|p| p.display().to_string());
    let audit_session = guard::audit_session_id();
    if let Some(reg) = guard::lookup(&cfg.spool.run_dir, tty.as_deref(), audit_session) {
        // Already inside a live recording (su -, bash -l, tmux): the outer PTY records this shell.
        let _ = reg;
        privilege.drop_group()?;
        return Err(shell.exec_plan(&[])?.exec())
            .context(format!("cannot execute {}", shell.shell.display()));
    }
    if is_exempt(&cfg, &shell) {
        privilege.drop_group()?;
        return Err(shell.exec_plan(&[])?.exec())
            .context(format!("cannot execute {}", shell.shell.display()));
    }
    let prepared = prepare(&cfg, &shell, tty.as_deref(), audit_session);
    record(cfg, privilege, shell, prepared)
}

/// Recording is impossible: on `open`, log it and run the shell unrecorded; on `closed`, refuse the login.
fn unrecorded(
    mut privilege: Privilege,
    shell: &ShellPlan,
    policy: OnError,
    cfg: Option<&Config>,
    why: &str,
) -> Result<Exit> {
    let default_cfg = Config::default();
    let mut log = Logger::new(&cfg.unwrap_or(&default_cfg).syslog);
    crate::syslog::error(
        &mut log,
        "-",
        &format!(
            "cannot record the session of {} ({}): {why}",
            shell.user,
            policy_name(policy)
        ),
    );
    if policy == OnError::Closed {
        eprintln!("auditty: this login must be recorded, but recording is not possible: {why}");
        eprintln!("auditty: login refused (policy.on_error = closed); contact your administrator");
        return Ok(Exit::from(1));
    }
    privilege.drop_group()?;
    Err(shell.exec_plan(&[])?.exec()).context(format!("cannot execute {}", shell.shell.display()))
}

fn policy_name(p: OnError) -> &'static str {
    match p {
        OnError::Open => "policy.on_error=open: continuing unrecorded",
        OnError::Closed => "policy.on_error=closed: login refused",
    }
}

fn is_exempt(cfg: &Config, shell: &ShellPlan) -> bool {
    if cfg.policy.exempt_users.contains(&shell.user) {
        return true;
    }
    if cfg.policy.exempt_groups.is_empty() {
        return false;
    }
    let Ok(groups) = nix::unistd::getgroups() else {
        return false;
    };
    let mut names: Vec<String> = groups
        .iter()
        .filter_map(|g| {
            nix::unistd::Group::from_gid(*g)
                .ok()
                .flatten()
                .map(|g| g.name)
        })
        .collect();
    if let Ok(Some(g)) = nix::unistd::Group::from_gid(nix::unistd::getgid()) {
        names.push(g.name);
    }
    cfg.policy.exempt_groups.iter().any(|g| names.contains(g))
}

/// A new recording as this process knows it before the fork: names and times, nothing on disk. The spool writer
/// creates it (directory, lock, meta.json, data files) once the shell has started up (`writer::let_the_shell_start`):
/// none of those inodes is made on the way to the user's shell, and frames wait in the pipe meanwhile.
struct Prepared {
    id: String,
    start_wall: OffsetDateTime,
    /// CLOCK_MONOTONIC when the recording began: the first timing delta counts from here.
    opened_ns: u64,
    format: TimingFormat,
    tty: Option<String>,
    ws: Option<Winsize>,
    fifo_dir: Option<PathBuf>,
    fifo: Option<PathBuf>,
    audit_session: Option<u32>,
}

fn prepare(
    cfg: &Config,
    shell: &ShellPlan,
    tty: Option<&str>,
    audit_session: Option<u32>,
) -> Prepared {
    let start_wall = OffsetDateTime::now_utc();
    let id = layout::new_id(&shell.user, start_wall);
    // Only named here (for the shell's environment and the guard registration): the writer makes it (`make_fifo`).
    let (fifo_dir, fifo) = if cfg.hook.enabled {
        let d = fifo_dir_name(&cfg.hook.fifo_dir, &id);
        let f = d.join("cmd");
        (Some(d), Some(f))
    } else {
        (None, None)
    };
    Prepared {
        id,
        start_wall,
        opened_ns: writer::monotonic_ns(),
        format: cfg.record.effective_timing(),
        tty: tty.map(str::to_string),
        ws: sys::get_winsize(std::io::stdin().as_fd()).ok(),
        fifo_dir,
        fifo,
        audit_session,
    }
}

impl Prepared {
    /// The spool writer's plan, made in the writer before it clears its environment (TZ, TERM and SSH_CLIENT are
    /// read from it).
    fn writer_plan(&self, cfg: &Config, shell: &ShellPlan, relay_pid: u32) -> WriterPlan {
        let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
        let meta = Meta {
            tty: self.tty.clone(),
            term: std::env::var("TERM").ok(),
            columns: self.ws.map(|w| w.ws_col).unwrap_or(80),
            lines: self.ws.map(|w| w.ws_row).unwrap_or(24),
            input_recorded: cfg.record.input,
            relay_pid,
            writer_pid: std::process::id(),
            ..Meta::new_recording(
                &self.id,
                &shell.user,
                shell.uid,
                &shell.shell.display().to_string(),
                shell.command.clone(),
                self.start_wall.to_offset(offset),
                self.format,
            )
        };
        let spool = Spool::new(&cfg.spool.dir);
        WriterPlan {
            cfg: cfg.clone(),
            dir: spool.recording_dir(State::Active, &self.id),
            spool,
            meta,
            format: self.format,
            opened_ns: self.opened_ns,
            offset,
            fifo: self.fifo.clone(),
            registration: None,
            terminal: None,
        }
    }
}

/// The name of the per-session directory holding the command FIFO: `<fifo_dir>/auditty-<id>-<12 hex digits>`, the
/// low 48 bits of a fresh UUIDv7 (at least 32 of them random per call, as in tempfile's 6 alphanumeric characters);
/// only this process knows it until the writer has made it.
fn fifo_dir_name(base: &Path, id: &str) -> PathBuf {
    let rnd = uuid::Uuid::now_v7().as_u128() as u64 & 0xffff_ffff_ffff;
    base.join(format!("auditty-{id}-{rnd:012x}"))
}

/// Make the per-session directory (0700, the user's) holding the command FIFO `cmd` (0600). Done by the spool writer
/// right after the fork, off the way to the user's shell: the shell's hook finds the FIFO through the guard
/// registration, and `auditty hook` waits (bounded) for a FIFO the registration names but that is not there yet.
/// mkdir fails on anything already at that name (a symlink included), so nothing of someone else's is used.
fn make_fifo(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir)?;
    fifo_in_made_dir(dir).inspect_err(|_| {
        let _ = std::fs::remove_dir(dir);
    })
}

/// The FIFO `cmd` in the directory `make_fifo` has just made. That directory is the user's, in one anyone may write
/// (/tmp), so they can put something else at its name at any moment, such as a symlink to a directory only group
/// auditty may write (the spool): the FIFO is made through a descriptor of what is at the name now, which must be a
/// directory of this process's uid and not a symlink, so it never lands anywhere else.
fn fifo_in_made_dir(dir: &Path) -> std::io::Result<()> {
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    if nix::sys::stat::fstat(&fd)?.st_uid != nix::unistd::geteuid().as_raw() {
        return Err(std::io::Error::other(format!(
            "{} is not the directory made for the command FIFO",
            dir.display()
        )));
    }
    nix::unistd::mkfifoat(&fd, "cmd", nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    Ok(())
}

fn record(
    cfg: Config,
    mut privilege: Privilege,
    shell: ShellPlan,
    mut prepared: Prepared,
) -> Result<Exit> {
    let (data_r, data_w) = pipe2(OFlag::O_CLOEXEC).context("cannot create the recorder pipe")?;
    // A bigger pipe absorbs output bursts while the writer is busy (1 MiB is the unprivileged maximum).
    let _ = fcntl(&data_w, FcntlArg::F_SETPIPE_SZ(1 << 20));
    // With policy.on_error = closed the shell starts only once the writer says the recording exists (`await_writer`).
    let ready = match cfg.policy.on_error {
        OnError::Closed => Some(pipe2(OFlag::O_CLOEXEC).context("cannot create a pipe")?),
        OnError::Open => None,
    };
    // A spool that plainly cannot take the recording gets no command FIFO: neither the registration nor the shell's
    // environment names one, so the shell's hook (which waits for a FIFO the registration names) installs nothing
    // that no writer would read. Asked here, still privileged, before the shell can start.
    let spool_usable = Spool::new(&cfg.spool.dir).can_create_recordings();
    if !spool_usable {
        prepared.fifo = None;
        prepared.fifo_dir = None;
    }
    // The PTY is opened before the writer exists, so the guard can name it before the shell starts (a nested
    // login shell's profile asks the guard at once).
    let termios = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
    let pty = Pty::open(termios.as_ref(), prepared.ws.as_ref())?;
    let keys = guard::keys(&pty.name, prepared.audit_session);
    let pty_name = pty.name.clone();
    let relay_pid = std::process::id();
    // Still privileged, before the writer's fork: publish the PTY in the guard registry (the writer withdraws it at
    // the end, on every path; this process does if there is no writer). Before the shell starts, so that no shell's
    // profile can ask before it is there (`auditty session --check` does not wait), and so that a login whose
    // recorder is killed before any recording exists is still found by flush (docs/security.md, C10); before the
    // fork, so that the relay does not pay copy-on-write faults for it on the way to the shell.
    let registration = guard::process_start(relay_pid).map(|relay_start| Registration {
        id: prepared.id.clone(),
        relay_pid,
        relay_start,
        uid: shell.uid,
        pty: pty_name.clone(),
        fifo: prepared
            .fifo
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        unrecorded: String::new(),
    });
    if let Some(reg) = &registration
        && let Err(e) = reg.publish(&cfg.spool.run_dir, &keys)
    {
        let mut log = Logger::new(&cfg.syslog);
        crate::syslog::error(&mut log, &reg.id, &format!("nesting guard: {e:#}"));
    }
    let withdraw = |registration: &Option<Registration>| {
        if let Some(reg) = registration {
            reg.withdraw(&cfg.spool.run_dir, &keys);
        }
    };
    let ids = Ids {
        recording: &prepared.id,
        tty: prepared.tty.as_deref(),
        fifo: prepared.fifo.as_deref(),
    };
    // The shell's argv and environment, made before the fork: memory allocated after it would first be copied for
    // the writer, on the way to the shell.
    // Every failure from here to the fork withdraws the registration: one left behind would be reported by flush as
    // a login whose recorder was killed (docs/security.md, C10).
    let exec = match shell_exec_plan(&shell, ids) {
        Ok(exec) => exec,
        Err(e) => {
            withdraw(&registration);
            return Err(e);
        }
    };
    // Blocked across the fork: until the writer has left our session and ignores the terminal's signals, a hangup
    // or ^C sent to our process group (e.g. a session that ends at once) would kill it before it writes a byte.
    // When the shell starts first, the relay's own signals are blocked from before its start until their handlers
    // are installed (`run_relay`), so none acts by default or is lost meanwhile.
    let shell_first = ready.is_none();
    let mut blocked = writer_signals();
    if shell_first {
        for s in relay_signals().iter() {
            blocked.add(s);
        }
    }
    let old_mask = match blocked.thread_swap_mask(SigmaskHow::SIG_BLOCK) {
        Ok(mask) => mask,
        Err(e) => {
            withdraw(&registration);
            return Err(anyhow::Error::from(e).context("sigprocmask"));
        }
    };
    // policy.on_error = open: the shell is started before the writer is forked, and the fork (the relay's costliest
    // step on the way to the shell's first output) runs while the shell is exec'd. The shell's child gives up the
    // setgid group itself, before its exec. No byte of the session is lost meanwhile: the shell's output waits in
    // the PTY, which only this process reads, and its input can only come from this process. A relay killed before
    // the fork leaves no writer: the shell loses its terminal (SIGHUP) at once, and the registration published above
    // makes flush report the login as not recorded (C10), as when both processes are killed at birth.
    let early = shell_first.then(|| {
        start_shell(
            &cfg,
            &exec,
            ids,
            &pty,
            privilege.elevated.map(|_| privilege.real_gid),
        )
    });
    let forked = sys::fork_single_threaded();
    if !shell_first && !matches!(forked, Ok(Forked::Child)) {
        let _ = old_mask.thread_set_mask();
    }
    let writer_pid = match forked {
        Ok(Forked::Child) => {
            // The shell (if started) is the relay's: its terminal settings are restored by the relay, here only if
            // the relay dies without doing so (`SavedTerminal`).
            let terminal = terminal::SavedTerminal::keep(
                early
                    .as_ref()
                    .and_then(|s| s.as_ref().ok())
                    .map(|s| (&s.raw, s.exclusive.as_ref())),
            );
            std::mem::forget(early);
            drop(data_w);
            drop(pty);
            let ready = ready.map(|(r, w)| {
                drop(r);
                w
            });
            let mut plan = prepared.writer_plan(&cfg, &shell, relay_pid);
            become_writer_process();
            let mut keep = vec![data_r.as_raw_fd()];
            keep.extend(ready.as_ref().map(|w| w.as_raw_fd()));
            keep.extend(terminal.as_ref().map(|t| t.as_raw_fd()));
            sys::close_inherited_fds(&keep);
            let _ = old_mask.thread_set_mask();
            plan.terminal = terminal;
            plan.registration = registration.map(|r| (r, keys));
            // A FIFO that cannot be made: the registration loses it, so the shell's hook stops waiting for it.
            let fifo_dir = prepared.fifo_dir.filter(|d| {
                let made = make_fifo(d).is_ok();
                if !made {
                    plan.fifo = None;
                    if let Some((reg, keys)) = &mut plan.registration {
                        reg.republish_without_fifo(&plan.cfg.spool.run_dir, keys);
                    }
                }
                made
            });
            let code = writer::create_recording_and_run(plan, data_r, ready, spool_usable);
            if let Some(d) = fifo_dir {
                let _ = std::fs::remove_dir_all(d);
            }
            std::process::exit(code);
        }
        Ok(Forked::Parent(writer)) => writer,
        Err(e) => {
            if let Some(Ok(running)) = early {
                // No writer: the shell that has just started is ended (its terminal restored by the drop).
                running.kill();
            }
            let _ = old_mask.thread_set_mask();
            withdraw(&registration);
            return Err(anyhow::Error::from(e).context("cannot start the spool writer"));
        }
    };
    drop(data_r);
    if let Some((r, w)) = ready {
        drop(w);
        if let Err(why) = await_writer(r) {
            // The writer withdraws the registration when it fails; not if it was killed.
            withdraw(&registration);
            return unrecorded(privilege, &shell, OnError::Closed, Some(&cfg), &why);
        }
    }
    // The relay: give up the group at once.
    privilege.drop_group()?;
    let _ = sys::set_non_dumpable();
    let fl = OFlag::from_bits_truncate(fcntl(&data_w, FcntlArg::F_GETFL)?);
    fcntl(&data_w, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
    let started = early.map(|s| (s, old_mask));
    run_relay(&cfg, &exec, ids, data_w, writer_pid, pty, started)
}

/// How long a session with policy.on_error = closed waits for its writer to create the recording.
const WRITER_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// policy.on_error = closed: wait until the writer has created the recording (`writer::READY`); otherwise the reason
/// it gives (or that it gave none), for the refusal.
fn await_writer(ready: OwnedFd) -> Result<(), String> {
    let deadline = std::time::Instant::now() + WRITER_READY_WAIT;
    let mut said = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut fds = [nix::poll::PollFd::new(
            ready.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let timeout = nix::poll::PollTimeout::try_from(left).unwrap_or(nix::poll::PollTimeout::MAX);
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) => {
                return Err(format!(
                    "the spool writer did not create the recording within {} s",
                    WRITER_READY_WAIT.as_secs()
                ));
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("waiting for the spool writer: {e}")),
            Ok(_) => {}
        }
        match nix::unistd::read(&ready, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if said.is_empty() && buf[0] == writer::READY {
                    return Ok(());
                }
                said.extend_from_slice(&buf[..n]);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("waiting for the spool writer: {e}")),
        }
    }
    if said.is_empty() {
        Err("the spool writer ended before it created the recording".into())
    } else {
        Err(String::from_utf8_lossy(&said).into_owned())
    }
}

/// Names the relay passes on to the shell: the recording id, the user's terminal (as found at the start), the FIFO.
#[derive(Clone, Copy)]
struct Ids<'a> {
    recording: &'a str,
    tty: Option<&'a str>,
    fifo: Option<&'a Path>,
}

/// The signals the spool writer ignores: those of the terminal it leaves, and SIGUSR1 (meant for the relay).
const WRITER_IGNORES: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGPIPE,
    Signal::SIGUSR1,
];

fn writer_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in WRITER_IGNORES {
        set.add(s);
    }
    set
}

/// The spool writer detaches from the session: own session, no terminal, terminal signals ignored, cwd /.
pub fn become_writer_process() {
    let _ = nix::unistd::setsid();
    sys::ignore_signals(&WRITER_IGNORES.map(|s| s as i32));
    let _ = sys::set_non_dumpable();
    sys::clear_environment();
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o027));
    let _ = std::env::set_current_dir("/");
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// The relay's signals (`signals::HANDLED`), blocked until its handlers are installed.
fn relay_signals() -> SigSet {
    let mut handled = SigSet::empty();
    for sig in crate::session::signals::HANDLED {
        if let Ok(s) = Signal::try_from(sig) {
            handled.add(s);
        }
    }
    handled
}

/// The relay. `started`: the shell, when it was started before the writer's fork (policy.on_error = open), with the
/// signal mask to restore once the handlers are installed (the relay's signals are blocked until then); otherwise
/// the shell is started here.
fn run_relay(
    cfg: &Config,
    exec: &ExecPlan,
    ids: Ids<'_>,
    writer_pipe: OwnedFd,
    writer_pid: Pid,
    pty: Pty,
    started: Option<(Result<RunningShell>, SigSet)>,
) -> Result<Exit> {
    // The relay's handlers are installed once the shell has been started (which does not need them): until then the
    // signals they handle are blocked, so none acts by default or is lost meanwhile; they arrive once unblocked.
    let (shell, old_mask) = match started {
        Some(started) => started,
        None => {
            let old_mask = relay_signals()
                .thread_swap_mask(SigmaskHow::SIG_BLOCK)
                .context("sigprocmask")?;
            (start_shell(cfg, exec, ids, &pty, None), old_mask)
        }
    };
    let started = shell.and_then(|s| match Signals::install() {
        Ok(signals) => Ok((s, signals)),
        Err(e) => {
            // Cannot happen in practice (a socketpair): without its handlers the relay cannot run the session.
            s.kill();
            Err(e)
        }
    });
    let _ = old_mask.thread_set_mask();
    let (
        RunningShell {
            user,
            out,
            raw,
            exclusive,
            child,
        },
        signals,
    ) = match started {
        Ok(started) => started,
        Err(e) => {
            // Tell the writer how it ended, so the recording says "could not start" rather than "killed".
            let mut end = Vec::new();
            frames::encode(
                &mut end,
                Kind::End,
                writer::monotonic_ns(),
                &frames::end_payload(127, 0, ""),
            );
            let _ = nix::unistd::write(&writer_pipe, &end);
            return Err(e);
        }
    };
    let Pty {
        master,
        slave,
        name,
    } = pty;
    drop(slave);
    let mut started = Vec::new();
    let mut payload = name.into_bytes();
    payload.push(0);
    payload.extend_from_slice(child.as_raw().to_string().as_bytes());
    frames::encode(
        &mut started,
        Kind::Started,
        writer::monotonic_ns(),
        &payload,
    );
    let _ = nix::unistd::write(&writer_pipe, &started);
    let (outcome, pipe) = relay::run(
        Endpoints {
            user,
            out,
            master,
            writer: writer_pipe,
            writer_pid: Some(writer_pid),
        },
        child,
        &signals,
        Some(&raw),
        cfg.record.input,
    );
    drop(pipe);
    drop(exclusive);
    drop(raw);
    if let Some(m) = &outcome.message {
        // Not eprintln!: it panics when the terminal is gone (EIO).
        let _ = writeln!(std::io::stderr(), "{m}");
    }
    Ok(Exit::from(outcome.status.clamp(0, 255) as u8))
}

/// The recorded shell's argv and environment: the user's, with the recording id and the command FIFO added.
fn shell_exec_plan(shell: &ShellPlan, ids: Ids<'_>) -> Result<ExecPlan> {
    let mut env = vec![("AUDITTY_RECORDING", ids.recording)];
    let fifo_s = ids.fifo.map(|f| f.display().to_string());
    if let Some(f) = &fifo_s {
        env.push(("AUDITTY_FIFO", f));
    }
    shell.exec_plan(&env)
}

/// The shell, started on the PTY, and the user's terminal the relay serves it from.
struct RunningShell {
    user: OwnedFd,
    out: Option<OwnedFd>,
    raw: RawMode,
    exclusive: Option<terminal::Exclusive>,
    child: Pid,
}

impl RunningShell {
    /// End a shell that cannot be served (no writer, no signal handlers): SIGKILL and reap it.
    fn kill(&self) {
        let _ = nix::sys::signal::kill(self.child, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.child, None);
    }
}

/// Put the user's terminal in raw mode and start the shell (`exec`) on the PTY. `drop_gid`: the gid the shell's
/// child sets as its real, effective and saved gid before its exec, when this process still holds the setgid group.
fn start_shell(
    cfg: &Config,
    exec: &ExecPlan,
    ids: Ids<'_>,
    pty: &Pty,
    drop_gid: Option<nix::unistd::Gid>,
) -> Result<RunningShell> {
    let user = reopen_tty(ids.tty).context("cannot open the terminal")?;
    let out = stdout_if_elsewhere()?;
    if !cfg.record.banner.is_empty() {
        let mut e = std::io::stderr();
        let _ = e.write_all(cfg.record.banner.trim_end_matches('\n').as_bytes());
        let _ = e.write_all(b"\n");
    }
    terminal::restore_on_panic();
    // Before the shell exists: from then on only the relay's descriptors reach the user's terminal.
    let exclusive = terminal::Exclusive::enter()
        .map_err(|e| {
            // Not fatal: the session is still recorded, only not protected against this.
            let _ = writeln!(
                std::io::stderr(),
                "auditty: cannot make the terminal exclusive (TIOCEXCL: {e}); the recorded shell could reopen it"
            );
        })
        .ok();
    let raw = RawMode::enter()?;
    // On failure `raw` is dropped here, restoring the terminal before the error is printed.
    let child = pty.spawn(exec, drop_gid)?;
    Ok(RunningShell {
        user,
        out,
        raw,
        exclusive,
        child,
    })
}

/// A new, independent open file description of our terminal (`tty`: its name as found at the start), so O_NONBLOCK
/// does not leak to other processes.
fn reopen_tty(tty: Option<&str>) -> Result<OwnedFd> {
    let path = match tty {
        Some(t) => PathBuf::from(t),
        None => nix::unistd::ttyname(std::io::stdin()).context("ttyname(stdin)")?,
    };
    let fd = nix::fcntl::open(
        &path,
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(fd)
}

/// When stdout is not the terminal stdin is, output goes there (blocking) instead of to the terminal.
fn stdout_if_elsewhere() -> Result<Option<OwnedFd>> {
    let dev = |fd: std::os::fd::BorrowedFd<'_>| {
        nix::sys::stat::fstat(fd)
            .map(|m| (m.st_dev, m.st_ino, m.st_rdev))
            .ok()
    };
    if dev(std::io::stdin().as_fd()) == dev(std::io::stdout().as_fd()) {
        return Ok(None);
    }
    Ok(Some(std::io::stdout().as_fd().try_clone_to_owned()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Swapped for a symlink between the mkdir and the FIFO (as the user may do in /tmp), the directory's name leads
    /// nowhere: the FIFO is not made, least of all where the symlink points.
    #[test]
    fn the_fifo_is_made_only_in_the_directory_made_for_it() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("auditty-x");
        make_fifo(&dir).unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(
            std::fs::metadata(dir.join("cmd"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        let spool = d.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        let swapped = d.path().join("auditty-y");
        std::os::unix::fs::symlink(&spool, &swapped).unwrap();
        let e = fifo_in_made_dir(&swapped).unwrap_err();
        // O_NOFOLLOW with O_DIRECTORY: ENOTDIR for a symlink (ELOOP without O_DIRECTORY).
        assert!(
            matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    }
}
