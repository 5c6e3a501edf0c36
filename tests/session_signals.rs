//! Signals to the recorder's processes: SIGTERM/INT/QUIT/ALRM end the session cleanly, SIGUSR1 flushes, SIGKILL of
//! the relay leaves a recording marked as such, SIGKILL of both loses at most about a second, and a writer that is
//! killed or stopped ends the session instead of leaving it unrecorded (a stopped one freezes it first).

mod common;

use std::time::{Duration, Instant};

use common::pty::{self, Term, alive, wait_until};
use common::rec::Rec;
use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const T: Duration = Duration::from_secs(10);
const PROMPTLY: Duration = Duration::from_secs(5);
/// For tests that kill the writer: it would leave its command-FIFO directory in /tmp behind.
const NO_HOOK: &str = "[hook]\nenabled = false\n";

fn signal(pid: i32, sig: Signal) {
    kill(Pid::from_raw(pid), sig).unwrap();
}

/// The active recording's typescript, as it is on disk now.
fn active_typescript(env: &Env) -> Vec<u8> {
    env.recordings("active")
        .first()
        .and_then(|d| std::fs::read(d.join("typescript")).ok())
        .unwrap_or_default()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    pty::find(hay, needle.as_bytes()).is_some()
}

#[test]
fn terminating_signals_end_the_session_cleanly() {
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGALRM,
    ] {
        let env = Env::new("");
        let mut t = Term::interactive(&env, &["-o", "record.timing=advanced"]);
        let shell = t.shell_pid();
        let job = t.start_with_pid("bash -c 'echo PID=$$; exec sleep 1000'");
        t.signal(sig);
        t.wait(PROMPTLY);
        pty::assert_gone(&[shell, job]);
        assert_eq!(t.termios(), t.initial, "{sig}: terminal settings restored");
        let rec = Rec::queued(&env, T);
        assert_eq!(
            rec.meta_str("end_reason"),
            Some("signal"),
            "{sig}: {}",
            rec.meta
        );
        assert_eq!(rec.meta_str("signal"), Some(sig.as_str()), "{sig}");
        assert!(
            rec.footer_status().starts_with("COMMAND_EXIT_CODE=\""),
            "{sig}: {:?}",
            rec.footer
        );
        assert!(contains(&rec.data, &format!("PID={job}")), "{sig}");
        rec.assert_timing_well_formed();
        assert!(
            rec.timing
                .lines()
                .any(|l| l.starts_with("S ") && l.ends_with(&format!(" {sig}"))),
            "{sig}: no S entry in\n{}",
            rec.timing
        );
        assert_eq!(rec.timing_output_bytes(), rec.data.len(), "{sig}");
    }
}

#[test]
fn sigusr1_writes_everything_to_disk_now_and_the_session_goes_on() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    t.run("echo first-$((1+1))");
    t.line("echo marker-$((6*7))");
    t.expect("marker-42\r\n", 5);
    t.signal(Signal::SIGUSR1);
    assert!(
        wait_until(Duration::from_millis(400), || contains(
            &active_typescript(&env),
            "marker-42\r\n"
        )),
        "the output is not on disk right after SIGUSR1"
    );
    assert_eq!(t.run("echo still-$((2+3))"), "still-5\r\n");
    t.line("exit");
    assert_eq!(t.wait_code(T), 0);
    let rec = Rec::queued(&env, T);
    assert_eq!(rec.meta_str("end_reason"), Some("exit"));
}

#[test]
fn sigkill_of_the_relay_leaves_a_marked_recording_and_no_shell() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    let shell = t.shell_pid();
    t.run("echo before-kill-$((1+2))");
    t.signal(Signal::SIGKILL);
    t.wait(PROMPTLY);
    pty::assert_gone(&[shell]);
    let rec = Rec::queued(&env, T);
    assert_eq!(rec.footer_status(), "<recorder killed>");
    assert_eq!(rec.meta_str("end_reason"), Some("killed"));
    assert!(contains(&rec.data, "before-kill-3\r\n"));
    assert_eq!(rec.timing_output_bytes(), rec.data.len());
}

#[test]
fn sigkill_of_the_relay_also_ends_jobs_that_ignore_sighup() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    let shell = t.shell_pid();
    let job = t.start_with_pid("bash -c 'trap \"\" HUP; echo PID=$$; exec sleep 1000'");
    t.signal(Signal::SIGKILL);
    t.wait(PROMPTLY);
    pty::assert_gone(&[shell, job]);
    let rec = Rec::queued(&env, T);
    assert_eq!(rec.footer_status(), "<recorder killed>");
}

#[test]
fn sigkill_of_both_processes_loses_at_most_about_a_second() {
    // No command FIFO: nobody would remove its directory after the writer's death.
    let env = Env::new(NO_HOOK);
    let mut t = Term::interactive(&env, &[]);
    let writer = pty::writer_pid(&env);
    t.line("echo marker-$((6*7))");
    t.expect("marker-42\r\n", 5);
    // No flush request: the writer must get it to disk on its own within about a second.
    assert!(
        wait_until(Duration::from_millis(1500), || contains(
            &active_typescript(&env),
            "marker-42\r\n"
        )),
        "output not on disk 1.5 s after it was printed"
    );
    signal(writer, Signal::SIGKILL);
    t.signal(Signal::SIGKILL);
    t.wait(PROMPTLY);
    assert!(wait_until(T, || !alive(writer)));
    let active = env.recordings("active");
    assert_eq!(
        active.len(),
        1,
        "the recording stays in active/ for `auditty flush`"
    );
    assert!(env.recordings("queue").is_empty());
    let rec = Rec::load(&active[0]);
    assert!(rec.header.starts_with("Script started on "));
    assert!(contains(
        &rec.data,
        "PROMPT> echo marker-$((6*7))\r\nmarker-42\r\n"
    ));
    assert_eq!(rec.footer, "", "no footer: nobody finished it");
    assert_eq!(
        rec.timing_output_bytes(),
        rec.data.len(),
        "timing matches the data on disk"
    );
}

#[test]
fn killed_writer_ends_the_session_with_a_message() {
    let env = Env::new(NO_HOOK);
    let mut t = Term::interactive(&env, &[]);
    let shell = t.shell_pid();
    let writer = pty::writer_pid(&env);
    // The session is idle: the relay must notice without having output to hand over.
    signal(writer, Signal::SIGKILL);
    let started = Instant::now();
    t.wait(PROMPTLY);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    pty::assert_gone(&[shell]);
    assert_eq!(t.termios(), t.initial, "terminal settings restored");
    let seen = String::from_utf8_lossy(&t.out).into_owned();
    assert!(
        seen.contains("auditty: the session recorder has stopped; ending the session"),
        "{seen:?}"
    );
    // The orphan stays in active/ for `auditty flush` to complete.
    assert_eq!(env.recordings("active").len(), 1);
}

/// Wait (bounded) until the relay has woken since `switches` (its voluntary context switches then) and sleeps in
/// poll again: a signal sent meanwhile (SIGCHLD of its writer's stop) has been handled.
fn wait_relay_went_round(relay: i32, switches: u64) {
    let ok = wait_until(T, || {
        let wchan = std::fs::read_to_string(format!("/proc/{relay}/wchan")).unwrap_or_default();
        voluntary_switches(relay) > switches && wchan.starts_with("poll_schedule_timeout")
    });
    assert!(ok, "the relay did not go back to poll");
}

fn voluntary_switches(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// While its writer is stopped the relay takes nothing from the PTY and gives the shell no keystroke: the user sees
/// nothing that is not recorded (docs/security.md C3), and nothing typed runs unrecorded. After WRITER_STOPPED_MAX
/// the session ends; the writer, continued, completes the recording with what the user saw.
#[test]
fn a_stopped_writer_freezes_the_session_then_ends_it_and_the_recording_completes_later() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    let shell = t.shell_pid();
    let writer = pty::writer_pid(&env);
    // A job that prints on its own (no keystroke needed) once the test opens the gate.
    let gate = env.dir.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    t.run(&format!(
        "echo before-stop-$((1+1)); {{ read _ < {g}; echo printed-while-stopped-$((3+3)); seq 1 20000; }} &",
        g = gate.display()
    ));
    let relay = t.pid().as_raw();
    let switches = voluntary_switches(relay);
    signal(writer, Signal::SIGSTOP);
    // Whatever happens below, never leave a stopped writer behind.
    struct Resume(i32);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = kill(Pid::from_raw(self.0), Signal::SIGCONT);
        }
    }
    let _resume = Resume(writer);
    let stopped = Instant::now();
    wait_relay_went_round(relay, switches);
    drop(std::fs::OpenOptions::new().write(true).open(&gate).unwrap());
    let marker = env.dir.path().join("typed-command-ran");
    t.line(&format!(
        "touch {}; echo typed-while-stopped-$((2+2))",
        marker.display()
    ));
    t.wait(Duration::from_secs(8));
    let took = stopped.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "the session ended {took:?} after the writer stopped"
    );
    pty::assert_gone(&[shell]);
    assert_eq!(t.termios(), t.initial, "terminal settings restored");
    let seen = String::from_utf8_lossy(&t.out).into_owned();
    assert!(
        seen.contains("auditty: the session recorder is not responding; ending the session"),
        "{seen:?}"
    );
    for unseen in [
        "printed-while-stopped-6",
        "typed-while-stopped-4",
        "\r\n20000\r\n",
    ] {
        assert!(!seen.contains(unseen), "{unseen:?} shown: {seen:?}");
    }
    // Once it runs again, the writer completes the recording with what the user saw, and the end.
    signal(writer, Signal::SIGCONT);
    let rec = Rec::queued(&env, T);
    assert!(contains(&rec.data, "before-stop-2\r\n"));
    assert!(
        !contains(&rec.data, "typed-while-stopped-4"),
        "a keystroke reached the shell"
    );
    assert!(
        !marker.exists(),
        "a command typed while the writer was stopped ran"
    );
    assert!(
        rec.footer_status().starts_with("COMMAND_EXIT_CODE="),
        "{}",
        rec.footer
    );
    assert_eq!(rec.meta_str("end_reason"), Some("signal"));
}

#[test]
fn sigkill_of_the_relay_during_a_burst_leaves_a_consistent_prefix() {
    let env = Env::new("");
    let line =
        b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01234567\n";
    let text: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(line.len() * 250_000)
        .collect();
    let file = env.dir.path().join("flood");
    std::fs::write(&file, &text).unwrap();
    let mut t = Term::session(
        &env,
        &["-c", &format!("cat '{}'; sleep 100", file.display())],
    );
    // Kill it in full flow.
    let end = Instant::now() + T;
    while t.out.len() < (2 << 20) {
        assert!(Instant::now() < end, "no output flood");
        t.drain(Duration::from_millis(20));
    }
    t.signal(Signal::SIGKILL);
    t.wait(PROMPTLY);
    let rec = Rec::queued(&env, T);
    assert_eq!(rec.footer_status(), "<recorder killed>");
    let crlf: Vec<u8> = line[..line.len() - 1]
        .iter()
        .chain(b"\r\n")
        .copied()
        .collect();
    let expected: Vec<u8> = crlf
        .iter()
        .copied()
        .cycle()
        .take(crlf.len() * 250_000)
        .collect();
    assert!(
        rec.data.len() >= 1 << 20,
        "only {} bytes recorded",
        rec.data.len()
    );
    assert!(
        expected.starts_with(&rec.data),
        "the recording is not a prefix of the output"
    );
    assert_eq!(
        rec.timing_output_bytes(),
        rec.data.len(),
        "timing and data disagree"
    );
    rec.assert_timing_well_formed();
}
