//! A reader that is not reading never makes the shell hang: the hook's FIFO writes land in the pipe's buffer
//! (the shell holds the FIFO open read-write, so open(2) never blocks and a write never fails), and when the
//! spool writer is gone the relay ends the session.

mod common;

use std::time::{Duration, Instant};

use common::hookshell::{PROMPT, Recorded};
use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn writer_pid(env: &Env) -> Pid {
    let active = env.wait_for("active", 1, Duration::from_secs(10));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(active[0].join("meta.json")).unwrap()).unwrap();
    // meta.json in active/ is written before the writer knows its pid; the registry entry names it.
    let reg = std::fs::read_dir(&env.run)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("pts-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .expect("registry entry");
    let pid: i32 = reg
        .lines()
        .find_map(|l| l.strip_prefix("writer_pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no writer_pid in {reg} ({m})"));
    Pid::from_raw(pid)
}

#[test]
fn stopped_writer_does_not_block_the_shell_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo_dir = tmp.path().join("fifos");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    let env = Env::new(&format!("[hook]\nfifo_dir = {fifo_dir:?}\n"));
    let home = tmp.path().join("home");
    let mut sh = Recorded::start(&env, &home, &format!("PS1='{PROMPT}'\n"));
    sh.install_hook(&env, "bash");
    let writer = writer_pid(&env);
    kill(writer, Signal::SIGSTOP).unwrap();
    // Long command lines: 100 records of ~1 KiB are more than a default 64 KiB pipe holds.
    let arg = "x".repeat(1000);
    let started = Instant::now();
    for i in 0..100 {
        sh.run(&format!(": {i} {arg}"));
    }
    assert!(started.elapsed() < Duration::from_secs(120));
    kill(writer, Signal::SIGCONT).unwrap();
    sh.exit();
    let rec = env.wait_for("queue", 1, Duration::from_secs(30));
    assert_eq!(rec.len(), 1);
    let log = String::from_utf8(read(&rec[0].join("commands.log"))).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 100);
    for (i, l) in lines.iter().enumerate() {
        assert!(l.contains(&format!(" seq={} status=0 ", i + 1)), "{l}");
        assert!(l.ends_with(&format!(" cmd=\": {i} {arg}\"")), "{i}");
    }
}

#[test]
fn killed_writer_ends_the_session_instead_of_hanging_it() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo_dir = tmp.path().join("fifos");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    let env = Env::new(&format!("[hook]\nfifo_dir = {fifo_dir:?}\n"));
    let home = tmp.path().join("home");
    let mut sh = Recorded::start(&env, &home, &format!("PS1='{PROMPT}'\n"));
    sh.install_hook(&env, "bash");
    sh.run("true");
    let w = writer_pid(&env);
    kill(w, Signal::SIGKILL).unwrap();
    // Once it is really gone (a zombie: its end of the relay's pipe is closed)…
    let end = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(format!("/proc/{w}/status"))
        .map(|s| s.contains("State:\tZ"))
        .unwrap_or(true)
    {
        assert!(Instant::now() < end, "writer {w} did not die");
        std::thread::sleep(Duration::from_millis(10));
    }
    // …the next keystrokes' echo cannot be recorded: the relay ends the session and says why.
    sh.s.send_line("echo after").unwrap();
    sh.s.exp_string("recorder has stopped").unwrap();
    sh.s.exp_eof().unwrap();
}
