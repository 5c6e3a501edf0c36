//! A reader that is not reading never makes the shell hang: the hook's FIFO writes land in the pipe's buffer
//! (the shell holds the FIFO open read-write, so open(2) never blocks and a write never fails), and when the
//! spool writer is gone the relay ends the session.

mod common;

use std::time::{Duration, Instant};

use common::hookshell::{PROMPT, Recorded};
use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn stopped_writer_never_hangs_the_shell_and_loses_nothing_already_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo_dir = tmp.path().join("fifos");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    let env = Env::new(&format!("[hook]\nfifo_dir = {fifo_dir:?}\n"));
    let home = tmp.path().join("home");
    let mut sh = Recorded::start(&env, &home, &format!("PS1='{PROMPT}'\n"));
    sh.install_hook(&env, "bash");
    let writer = Pid::from_raw(pty::writer_pid(&env));
    sh.run("echo before-stop");
    kill(writer, Signal::SIGSTOP).unwrap();
    // Long command lines while nobody reads the FIFO: the shell's writes land in the FIFO's buffer and never
    // block; the relay notices the stopped recorder and ends the session (nothing goes on unrecorded).
    let arg = "x".repeat(1000);
    sh.s.send_line(&format!(": during-stop {arg}")).unwrap();
    sh.s.exp_string("recorder is not responding").unwrap();
    kill(writer, Signal::SIGCONT).unwrap();
    let rec = env.wait_for("queue", 1, Duration::from_secs(30));
    assert_eq!(rec.len(), 1);
    let log = String::from_utf8(read(&rec[0].join("commands.log"))).unwrap();
    assert!(
        log.lines().next().is_some_and(
            |l| l.contains(" seq=1 status=0 ") && l.ends_with(" cmd=\"echo before-stop\"")
        ),
        "{log}"
    );
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
    let w = Pid::from_raw(pty::writer_pid(&env));
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
