//! Hangups: the user's terminal goes away (SSH drop: the master is closed) or the relay gets SIGHUP. The recorder
//! must end promptly (SIGHUP, then SIGTERM, then SIGKILL to the session, each after a bounded grace), leave no
//! process of the session behind and queue a complete recording. A background job that merely keeps the PTY open
//! after a normal exit must not hang it either.

mod common;

use std::time::{Duration, Instant};

use common::pty::{self, Term, alive};
use common::rec::Rec;
use common::*;
use nix::sys::signal::Signal;

const T: Duration = Duration::from_secs(10);
/// The escalation takes 2 × 1 s at most; leave room for a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(5);

fn assert_hangup_recording(env: &Env, marker: &str) -> Rec {
    let rec = Rec::queued(env, T);
    assert_eq!(rec.meta_str("end_reason"), Some("hangup"), "{}", rec.meta);
    assert!(
        rec.footer_status().starts_with("COMMAND_EXIT_CODE=\""),
        "footer: {:?}",
        rec.footer
    );
    let text = String::from_utf8_lossy(&rec.data);
    assert!(
        text.contains(marker),
        "recording lacks {marker:?}: {text:?}"
    );
    assert_eq!(rec.timing_output_bytes(), rec.data.len());
    rec
}

#[test]
fn ssh_drop_during_a_foreground_job() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    let shell = t.shell_pid();
    let job = t.start_with_pid("bash -c 'echo PID=$$; exec sleep 1000'");
    assert!(pty::foreground_is(t.pid().as_raw(), "sleep") || alive(job));
    let started = Instant::now();
    t.hang_up();
    t.wait(PROMPTLY);
    assert!(started.elapsed() < PROMPTLY);
    pty::assert_gone(&[shell, job]);
    assert_hangup_recording(&env, &format!("PID={job}"));
}

#[test]
fn ssh_drop_with_jobs_that_ignore_sighup_and_sigterm() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    let shell = t.shell_pid();
    // A background job deaf to SIGHUP and SIGTERM (only SIGKILL ends it), detached from the shell's job table.
    let bg = t.start_with_pid("(trap '' HUP TERM; echo PID=$BASHPID; exec sleep 1000) & disown");
    let fg = t.start_with_pid("bash -c 'trap \"\" HUP; echo PID=$$; exec sleep 1000'");
    assert!(alive(bg) && alive(fg));
    let started = Instant::now();
    t.hang_up();
    t.wait(PROMPTLY);
    let took = started.elapsed();
    pty::assert_gone(&[shell, fg, bg]);
    assert!(
        took >= Duration::from_millis(1500),
        "the SIGKILL came after the grace periods (took {took:?})"
    );
    assert_hangup_recording(&env, &format!("PID={fg}"));
}

#[test]
fn sighup_to_the_relay_ends_the_session_and_restores_the_terminal() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    let shell = t.shell_pid();
    let job = t.start_with_pid("bash -c 'echo PID=$$; exec sleep 1000'");
    t.signal(Signal::SIGHUP);
    t.wait(PROMPTLY);
    pty::assert_gone(&[shell, job]);
    assert_eq!(t.termios(), t.initial, "terminal settings restored");
    assert_hangup_recording(&env, &format!("PID={job}"));
}

#[test]
fn hangup_at_the_prompt() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    let shell = t.shell_pid();
    t.hang_up();
    t.wait(PROMPTLY);
    pty::assert_gone(&[shell]);
    let rec = assert_hangup_recording(&env, "PROMPT> ");
    // bash dies of the SIGHUP: 128 + 1.
    assert_eq!(rec.footer_status(), "COMMAND_EXIT_CODE=\"129\"");
}

#[test]
fn background_job_holding_the_terminal_does_not_hang_the_recorder() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    let bg = t.start_with_pid("sleep 1000 & echo PID=$!");
    let started = Instant::now();
    t.line("echo bye; exit 3");
    let code = t.wait_code(PROMPTLY);
    let took = started.elapsed();
    assert_eq!(code, 3);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let rec = Rec::queued(&env, T);
    assert_eq!(rec.meta_str("end_reason"), Some("exit"));
    assert_eq!(rec.footer_status(), "COMMAND_EXIT_CODE=\"3\"");
    assert!(String::from_utf8_lossy(&rec.data).contains("bye\r\n"));
    // A normal exit leaves the user's background jobs alone (nohup-style work is theirs to keep).
    assert!(alive(bg), "the background job was killed on a normal exit");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(bg), Signal::SIGKILL);
}
