//! A small PTY driver for session tests: the test owns the master (the "user's terminal" as sshd would hold it),
//! so it can resize it, read with deadlines, inspect the terminal settings and close it to simulate an SSH drop.
//!
//! Every descriptor is opened close-on-exec, so a child spawned concurrently by another test never inherits
//! (and keeps open) our master: a hangup test would otherwise not hang up.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{Winsize, grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::termios::{Termios, tcgetattr};
use nix::unistd::Pid;

use super::Env;

pub const PROMPT: &str = "PROMPT> ";

/// A process running on a PTY whose master the test holds.
pub struct Term {
    master: Option<OwnedFd>,
    /// The test's own handle on the slave side: for tcgetattr, and so the PTY outlives the child for inspection.
    slave: Option<OwnedFd>,
    pub child: Child,
    /// Everything read from the master so far.
    pub out: Vec<u8>,
    /// `expect` consumes `out` up to here.
    pos: usize,
    status: Option<ExitStatus>,
    /// The terminal's settings before the child started.
    pub initial: Termios,
}

/// Open a PTY pair, both ends close-on-exec, with the given window size.
fn open_pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let m = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).expect("posix_openpt");
    grantpt(&m).expect("grantpt");
    unlockpt(&m).expect("unlockpt");
    let name = ptsname_r(&m).expect("ptsname");
    let s = open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .expect("open slave");
    let master: OwnedFd = m.into();
    set_size(&master, rows, cols);
    nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    (master, s)
}

fn set_size(fd: &impl AsFd, rows: u16, cols: u16) {
    let ws = Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one struct winsize from a valid reference.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(rc, 0, "TIOCSWINSZ");
}

/// `auditty --config <ours> GLOBALS… session ARGS…` in the environment every session test uses: a plain bash,
/// a fixed prompt, no colours.
pub fn session_command(env: &Env, globals: &[&str], args: &[&str]) -> Command {
    let mut c = env.cmd(globals);
    c.arg("session").args(args);
    c.env("TERM", "dumb")
        .env("SHELL", "/bin/bash")
        .env("PS1", PROMPT)
        .env_remove("PROMPT_COMMAND");
    c
}

/// The `-c` command for an interactive bash that reads only our rc file (the prompt; bash ignores PS1 from the
/// environment), with job control: it is the session leader of the inner PTY, as `exec` keeps the pid auditty
/// started.
pub fn interactive_command(env: &Env) -> String {
    let rc = env.dir.path().join("bashrc");
    std::fs::write(
        &rc,
        format!("PS1='{PROMPT}'\nunset PROMPT_COMMAND HISTFILE\n"),
    )
    .unwrap();
    format!("exec bash --noprofile --rcfile '{}' -i", rc.display())
}

impl Term {
    /// Start `cmd` as session leader on a fresh PTY of `rows`×`cols`, with the slave as its controlling terminal.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Term {
        let (master, slave) = open_pty(rows, cols);
        let initial = tcgetattr(&slave).expect("tcgetattr");
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on pty");
        Term {
            master: Some(master),
            slave: Some(slave),
            child,
            out: Vec::new(),
            pos: 0,
            status: None,
            initial,
        }
    }

    /// `auditty session ARGS` on a 24×80 PTY.
    pub fn session(env: &Env, args: &[&str]) -> Term {
        Term::spawn(session_command(env, &[], args), 24, 80)
    }

    /// An interactive bash recorded by auditty (`globals` go before `session`, e.g. `-o k=v`), at its first prompt.
    pub fn interactive(env: &Env, globals: &[&str]) -> Term {
        let cmd = interactive_command(env);
        let mut t = Term::spawn(session_command(env, globals, &["-c", &cmd]), 24, 80);
        t.expect(PROMPT, 10);
        t
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn master(&self) -> &OwnedFd {
        self.master.as_ref().expect("master already closed")
    }

    /// Read what is available within `wait`; returns false once the master reports EOF/EIO (nothing holds the
    /// slave any more).
    fn pump(&mut self, wait: Duration) -> bool {
        let Some(m) = self.master.as_ref() else {
            return false;
        };
        let mut fds = [PollFd::new(m.as_fd(), PollFlags::POLLIN)];
        let ms = wait.as_millis().min(1000) as u16;
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => return true,
            Ok(_) => {}
            Err(e) => panic!("poll: {e}"),
        }
        let mut buf = [0u8; 65536];
        loop {
            match nix::unistd::read(m, &mut buf) {
                Ok(0) => return false,
                Ok(n) => self.out.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => return true,
                Err(Errno::EINTR) => {}
                Err(_) => return false,
            }
        }
    }

    /// Wait until `needle` appears after the expect cursor (within `secs`), move the cursor past it and return
    /// what came before it. Panics with the output so far on timeout.
    pub fn expect(&mut self, needle: &str, secs: u64) -> Vec<u8> {
        self.expect_bytes(needle.as_bytes(), Duration::from_secs(secs))
    }

    pub fn expect_bytes(&mut self, needle: &[u8], timeout: Duration) -> Vec<u8> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = find(&self.out[self.pos..], needle) {
                let before = self.out[self.pos..self.pos + i].to_vec();
                self.pos += i + needle.len();
                return before;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "timed out waiting for {:?}; output after cursor:\n{}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.out[self.pos..])
                );
            }
            if !self.pump(left.min(Duration::from_millis(200)))
                && find(&self.out[self.pos..], needle).is_none()
            {
                // EOF: one last look already done by find above.
                panic!(
                    "EOF while waiting for {:?}; output after cursor:\n{}",
                    String::from_utf8_lossy(needle),
                    String::from_utf8_lossy(&self.out[self.pos..])
                );
            }
        }
    }

    /// Type bytes on the terminal (all of them, waiting while the PTY is full and reading its output meanwhile).
    pub fn send(&mut self, bytes: &[u8]) {
        let mut done = 0;
        let end = Instant::now() + Duration::from_secs(20);
        while done < bytes.len() {
            assert!(
                Instant::now() < end,
                "could not type {} bytes",
                bytes.len() - done
            );
            match nix::unistd::write(self.master(), &bytes[done..]) {
                Ok(n) => done += n,
                Err(Errno::EAGAIN) => {
                    self.pump(Duration::from_millis(5));
                }
                Err(Errno::EINTR) => {}
                Err(e) => panic!("write to master: {e}"),
            }
        }
    }

    pub fn line(&mut self, s: &str) {
        self.send(s.as_bytes());
        self.send(b"\r");
    }

    /// Run a command line in the interactive shell and return its output (between the echoed line and the next
    /// prompt).
    pub fn run(&mut self, cmdline: &str) -> String {
        self.line(cmdline);
        self.expect("\r\n", 5);
        String::from_utf8_lossy(&self.expect(PROMPT, 10)).into_owned()
    }

    /// Resize the terminal as a terminal emulator or sshd does (the kernel sends SIGWINCH to its foreground group).
    pub fn resize(&mut self, rows: u16, cols: u16) {
        set_size(self.master(), rows, cols);
    }

    /// Close our side of the terminal: what sshd does when the connection drops.
    pub fn hang_up(&mut self) {
        self.pump(Duration::ZERO);
        self.master = None;
    }

    /// The terminal's settings as the process on it sees them (`stty -a`).
    pub fn termios(&self) -> Termios {
        tcgetattr(self.slave.as_ref().expect("slave")).expect("tcgetattr")
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).expect("kill");
    }

    /// Wait (bounded) for the process to exit, reading its output meanwhile.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                // Collect what is still buffered for us (the test holds the slave, so there is no EOF).
                while self.master.is_some() {
                    let before = self.out.len();
                    if !self.pump(Duration::from_millis(30)) || self.out.len() == before {
                        break;
                    }
                }
                self.status = Some(s);
                return s;
            }
            if Instant::now() > end {
                panic!(
                    "auditty did not exit within {timeout:?}; output:\n{}",
                    String::from_utf8_lossy(&self.out)
                );
            }
            if self.master.is_some() {
                self.pump(Duration::from_millis(20));
            } else {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Exit code, or 128+signal when auditty itself died of a signal (like a shell reports it).
    pub fn wait_code(&mut self, timeout: Duration) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        let s = self.wait(timeout);
        s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
    }

    /// Read until `secs` pass with the master still open or until it reports EOF.
    pub fn drain(&mut self, timeout: Duration) {
        let end = Instant::now() + timeout;
        while Instant::now() < end && self.pump(Duration::from_millis(50)) {}
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Is a process alive (and not a zombie)?
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rfind(')').and_then(|i| s[i + 2..].chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// Every one of `pids` is gone (or goes within a moment: a SIGKILLed process needs the scheduler once).
pub fn assert_gone(pids: &[i32]) {
    for &p in pids {
        assert!(
            wait_until(Duration::from_secs(2), || !alive(p)),
            "process {p} of the session survived: {:?}",
            stat(p)
        );
    }
}

/// Poll `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Fields of /proc/<pid>/stat after the command name: (name, state, ppid, pgrp, session, tpgid).
pub fn stat(pid: i32) -> Option<(String, char, i32, i32, i32, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let name = s[open + 1..close].to_string();
    let f: Vec<&str> = s[close + 2..].split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|x| x.parse::<i32>().ok());
    Some((
        name,
        f.first()?.chars().next()?,
        num(1)?,
        num(2)?,
        num(3)?,
        num(5)?,
    ))
}

/// Live processes descending from `root` (not including it).
pub fn descendants(root: i32) -> Vec<i32> {
    let all: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter_map(|p| stat(p).filter(|s| s.1 != 'Z').map(|s| (p, s.2)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &all {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// Is a process named `name`, descending from `root`, in the foreground process group of its terminal?
pub fn foreground_is(root: i32, name: &str) -> bool {
    descendants(root)
        .into_iter()
        .filter_map(stat)
        .any(|(n, _, _, pgrp, _, tpgid)| n == name && pgrp == tpgid)
}

impl Term {
    /// The pid of the interactive shell (`echo $$`).
    pub fn shell_pid(&mut self) -> i32 {
        let out = self.run("echo $$");
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("echo $$ gave {out:?}"))
    }

    /// Start `cmdline` (which must print `PID=<pid>` first) and return that pid once it is running.
    pub fn start_with_pid(&mut self, cmdline: &str) -> i32 {
        self.line(cmdline);
        // `PID=` followed by digits (the echoed command line holds `PID=$…`); the digits end at the first
        // non-digit (the job's output may interleave with the shell's).
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            self.expect("PID=", 5);
            while self.pos >= self.out.len() {
                assert!(Instant::now() < end, "nothing after PID=");
                self.pump(Duration::from_millis(50));
            }
            if self.out[self.pos].is_ascii_digit() {
                break;
            }
        }
        loop {
            let rest = &self.out[self.pos..];
            if let Some(n) = rest.iter().position(|b| !b.is_ascii_digit()) {
                let pid = String::from_utf8_lossy(&rest[..n])
                    .parse()
                    .expect("PID=<n>");
                self.pos += n;
                return pid;
            }
            assert!(Instant::now() < end, "no end of PID=");
            self.pump(Duration::from_millis(50));
        }
    }
}

/// The spool writer's pid, from the active recording's meta.json (it records itself once the shell runs).
pub fn writer_pid(env: &Env) -> i32 {
    let mut pid = 0;
    let ok = wait_until(Duration::from_secs(5), || {
        pid = env
            .recordings("active")
            .first()
            .and_then(|d| std::fs::read(d.join("meta.json")).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|m| m.get("writer_pid")?.as_i64())
            .unwrap_or(0) as i32;
        pid > 0
    });
    assert!(ok, "no writer_pid in the active recording's meta.json");
    pid
}
