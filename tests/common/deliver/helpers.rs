//! Helpers for delivery tests: a private spool whose config mails to a test MTA, sessions on a real PTY, meta.json.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::term::Term;
use crate::common::Env;

/// An `Env` whose config has the given `[spool]` extras and `[mail]` section body.
pub fn env_with(spool_extra: &str, mail: &str) -> Env {
    let env = Env::new("");
    set_config(&env, spool_extra, mail);
    env
}

/// Rewrite the env's config with the given `[spool]` extras and `[mail]` section body (as an administrator changes
/// it between sessions).
pub fn set_config(env: &Env, spool_extra: &str, mail: &str) {
    let text = format!(
        "[spool]\ndir = {:?}\nrun_dir = {:?}\n{spool_extra}\n[syslog]\ntarget = \"none\"\n[mail]\n{mail}\n",
        env.spool, env.run
    );
    std::fs::write(&env.config, text).unwrap();
}

/// The `[mail]` lines for an SMTP transport to `url`, retrying at once (retry_min = 0) so `flush` finds it due.
pub fn smtp_mail(url: &str) -> String {
    format!(
        "transport = {url:?}\nto = [\"auditors@example.com\", \"second@example.org\"]\nfrom = \"auditty@test.example\"\ntimeout = 5\nretry_min = 0\n"
    )
}

/// A command for `auditty session -c CMD` with test-friendly environment.
pub fn session_cmd(env: &Env, cmd: &str) -> Command {
    let mut c = env.cmd(&["session", "-c", cmd]);
    c.env("TERM", "dumb")
        .env("SHELL", "/bin/bash")
        .env("PS1", "PROMPT> ");
    c
}

/// `auditty session -c CMD` on a fresh PTY.
pub fn session(env: &Env, cmd: &str) -> Term {
    Term::spawn(&session_cmd(env, cmd), None)
}

pub fn meta(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap()
}

/// meta.json once the writer has written it (it creates the recording's directory first).
pub fn meta_if_written(dir: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()
}

/// Wait (bounded) until the single active recording's meta.json names its writer; return (dir, writer pid).
pub fn active_writer(env: &Env) -> (std::path::PathBuf, u32) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(d) = env.recordings("active").into_iter().next()
            && let Ok(b) = std::fs::read(d.join("meta.json"))
            && let Ok(m) = serde_json::from_slice::<serde_json::Value>(&b)
            && m["writer_pid"].as_u64().unwrap_or(0) != 0
        {
            return (d, m["writer_pid"].as_u64().unwrap() as u32);
        }
        assert!(Instant::now() < end, "no live recording appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait (bounded) until `file` contains `needle` (the writer flushes at least every half second).
pub fn wait_file_contains(file: &Path, needle: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if std::fs::read(file).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle)) {
            return;
        }
        assert!(
            Instant::now() < end,
            "{} never contained {needle:?}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait (bounded) until the process is gone.
pub fn wait_gone(pid: u32) {
    let end = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie of ours still has a /proc entry: it is gone for our purposes once it no longer runs.
        if std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")) {
            return;
        }
        assert!(Instant::now() < end, "pid {pid} did not go away");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait (bounded) until the writer a recording's meta.json names is gone. It still writes meta.json, lets go of the
/// recording's lock and removes the session's FIFO directory after it moved the recording on.
pub fn wait_writer_gone(meta: &serde_json::Value) {
    wait_gone(meta["writer_pid"].as_u64().unwrap_or(0) as u32);
}

pub fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// Run `auditty <args>` with the env's config.
pub fn run(env: &Env, args: &[&str]) -> Output {
    env.cmd(args).output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Wait (bounded) until `n` recordings have left active/ and each has had its first delivery attempt (its writer is
/// done). Start the next session only then: a PTY number freed by one session can be handed to the next one.
pub fn wait_settled(env: &Env, n: usize) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let done: Vec<_> = ["queue", "sent", "failed"]
            .iter()
            .flat_map(|s| env.recordings(s))
            .collect();
        // Each one's meta as read now (None if it moved meanwhile: look again).
        let metas: Vec<_> = done.iter().map(|d| meta_if_written(d)).collect();
        if env.recordings("active").is_empty()
            && done.len() == n
            && metas.iter().all(|m| {
                m.as_ref()
                    .is_some_and(|m| m["attempts"].as_u64() >= Some(1))
            })
        {
            // The writer records its attempt, then lets go of the recording's lock: a flush in between finds it busy.
            for m in metas.iter().flatten() {
                wait_writer_gone(m);
            }
            return;
        }
        assert!(Instant::now() < end, "recordings did not settle: {done:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
