//! Shared test support: a private spool + config per test, and the real binary driven through a real PTY.
#![allow(dead_code)]

pub mod hookshell;
pub mod pty;
pub mod rec;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_auditty");

/// A private spool, guard registry and config file for one test.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub spool: PathBuf,
    pub run: PathBuf,
    pub config: PathBuf,
}

impl Env {
    /// `extra` is appended to the config (TOML); syslog is off unless `extra` sets it.
    pub fn new(extra: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("auditty-test-")
            .tempdir()
            .unwrap();
        let spool = dir.path().join("spool");
        let run = dir.path().join("run");
        std::fs::create_dir(&spool).unwrap();
        std::fs::create_dir(&run).unwrap();
        let config = dir.path().join("auditty.conf");
        let has = |sec: &str| extra.contains(&format!("[{sec}]"));
        let mut text = String::new();
        if !has("spool") {
            text += &format!("[spool]\ndir = {:?}\nrun_dir = {:?}\n", spool, run);
        }
        if !has("syslog") {
            text += "[syslog]\ntarget = \"none\"\n";
        }
        text += extra;
        std::fs::write(&config, text).unwrap();
        Env {
            dir,
            spool,
            run,
            config,
        }
    }

    /// `auditty --config <ours> <args…>`
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(&self.config).args(args);
        c
    }

    /// Recording directories currently in a state (active, queue, sent, failed).
    pub fn recordings(&self, state: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.spool.join(state))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Wait (bounded) until `n` recordings are in `state`, and return them.
    pub fn wait_for(&self, state: &str, n: usize, timeout: Duration) -> Vec<PathBuf> {
        let end = Instant::now() + timeout;
        loop {
            let v = self.recordings(state);
            if v.len() >= n || Instant::now() > end {
                return v;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Spawn `auditty session …` on a fresh PTY (TERM=dumb, a plain bash without rc files).
pub fn spawn_session(env: &Env, args: &[&str], timeout_ms: u64) -> rexpect::session::PtySession {
    let mut c = env.cmd(&["session"]);
    c.args(args);
    c.env("TERM", "dumb")
        .env("SHELL", "/bin/bash")
        .env("PS1", "PROMPT> ");
    rexpect::session::spawn_command(c, Some(timeout_ms)).expect("spawn auditty session")
}

/// The bytes of `p`; for a recording's data file that delivery has compressed (`typescript` → `typescript.gz` once
/// the recording is queued with a mail transport configured, or mailed), the decompressed `p.gz`.
pub fn read(p: &Path) -> Vec<u8> {
    match std::fs::read(p) {
        Ok(b) => b,
        Err(e) => {
            let mut gz = p.as_os_str().to_owned();
            gz.push(".gz");
            let Ok(z) = std::fs::read(&gz) else {
                panic!("read {}: {e}", p.display())
            };
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&z[..]), &mut out)
                .unwrap_or_else(|e| panic!("gunzip {}.gz: {e}", p.display()));
            out
        }
    }
}

pub mod deliver;
pub mod formats;
pub mod rsyslog;
pub mod small_disk;

/// Ports handed to this test process's servers so far (`unclaimed_port`).
static CLAIMED_PORTS: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// A port for one server of this test process: the first that `free` (a port the OS says is free now) gives and no
/// other test has been given. Tests run in parallel threads, and two servers told the same port would each find
/// "their" server answering there (the other's), until that one stops; the OS's answer alone does not prevent it.
pub fn unclaimed_port(free: impl Fn() -> u16) -> u16 {
    loop {
        let port = free();
        let mut claimed = CLAIMED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
        if !claimed.contains(&port) {
            claimed.push(port);
            return port;
        }
    }
}
