//! The user's terminal: its window size reaches the recorded shell (at start and on every resize), it is in raw
//! mode while the session runs and gets its settings back afterwards.

mod common;

use std::time::Duration;

use common::pty::{Term, interactive_command, session_command};
use common::rec::Rec;
use common::*;
use nix::sys::termios::LocalFlags;

const T: Duration = Duration::from_secs(10);

/// Run `stty size` until it reports `want` (the resize is asynchronous: SIGWINCH to the relay, then TIOCSWINSZ).
fn await_size(t: &mut Term, want: &str) {
    let end = std::time::Instant::now() + T;
    loop {
        let got = t.run("stty size");
        if got.trim() == want {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "stty size says {got:?}, want {want:?}"
        );
    }
}

#[test]
fn initial_window_size_is_copied() {
    let env = Env::new("");
    let mut t = Term::spawn(
        session_command(
            &env,
            &[],
            &["-c", "stty size; tput cols 2>/dev/null || true"],
        ),
        33,
        101,
    );
    assert_eq!(t.wait_code(T), 0);
    let seen = String::from_utf8_lossy(&t.out).into_owned();
    assert!(seen.starts_with("33 101\r\n"), "{seen:?}");
    let rec = Rec::queued(&env, T);
    assert!(
        rec.header.ends_with("COLUMNS=\"101\" LINES=\"33\"]"),
        "{}",
        rec.header
    );
    assert_eq!(rec.meta_i64("columns"), Some(101));
    assert_eq!(rec.meta_i64("lines"), Some(33));
}

#[test]
fn resize_reaches_the_shell_and_is_logged_in_advanced_timing() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &["-o", "record.timing=advanced"]);
    assert_eq!(t.run("stty size").trim(), "24 80");
    t.resize(40, 100);
    await_size(&mut t, "40 100");
    t.resize(50, 132);
    await_size(&mut t, "50 132");
    t.line("exit 4");
    assert_eq!(t.wait_code(T), 4);
    let rec = Rec::queued(&env, T);
    rec.assert_timing_well_formed();
    let winch: Vec<&str> = rec
        .timing
        .lines()
        .filter(|l| l.starts_with("S ") && l.contains(" SIGWINCH "))
        .collect();
    assert!(
        winch
            .iter()
            .any(|l| l.ends_with(" SIGWINCH ROWS=40 COLS=100"))
            && winch
                .iter()
                .any(|l| l.ends_with(" SIGWINCH ROWS=50 COLS=132")),
        "timing:\n{}",
        rec.timing
    );
    assert!(
        rec.timing
            .contains("H 0.000000 COLUMNS 80\nH 0.000000 LINES 24\n"),
        "{}",
        rec.timing
    );
    assert!(
        rec.timing.ends_with("H 0.000000 EXIT_CODE 4\n"),
        "{}",
        rec.timing
    );
    assert_eq!(rec.timing_output_bytes(), rec.data.len());
}

#[test]
fn resize_while_a_program_runs_in_the_foreground() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    // The foreground job (not the shell) must get SIGWINCH and see the new size.
    t.line("bash -c 'trap \"stty size; exit 0\" WINCH; echo ready; while :; do sleep 0.05; done'");
    t.expect("ready\r\n", 5);
    t.resize(31, 91);
    t.expect("31 91\r\n", 5);
    t.line("exit");
    assert_eq!(t.wait_code(T), 0);
}

#[test]
fn terminal_is_raw_during_the_session_and_restored_after() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    let during = t.termios();
    assert!(
        !during.local_flags.contains(LocalFlags::ICANON)
            && !during.local_flags.contains(LocalFlags::ECHO),
        "the user's terminal is raw while recording"
    );
    assert_ne!(during, t.initial);
    // The recorded PTY got the user's original settings (canonical, echo), not raw ones.
    assert!(t.run("stty -a").contains(" icanon "));
    t.line("exit");
    assert_eq!(t.wait_code(T), 0);
    assert_eq!(t.termios(), t.initial, "terminal settings restored");
}

#[test]
fn interactive_recording_holds_the_dialogue() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    assert_eq!(t.run("echo $((6*7))"), "42\r\n");
    t.line("exit");
    assert_eq!(t.wait_code(T), 0);
    let rec = Rec::queued(&env, T);
    assert!(rec.data == t.out, "the recording is what the user saw");
    let text = String::from_utf8_lossy(&rec.data);
    assert!(
        text.contains("PROMPT> echo $((6*7))\r\n42\r\nPROMPT> exit\r\n"),
        "{text:?}"
    );
    assert!(
        rec.header
            .contains(&format!("COMMAND=\"{}\"", interactive_command(&env)))
    );
}
