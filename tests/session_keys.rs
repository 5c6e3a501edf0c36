//! Keys and job control inside the recorded shell: Ctrl-C/Ctrl-Z/Ctrl-\ reach it as bytes, job control works,
//! the child starts with default signal dispositions, and a big paste neither deadlocks nor loses a byte.

mod common;

use std::time::Duration;

use common::pty::{self, PROMPT, Term};
use common::rec::Rec;
use common::*;

const T: Duration = Duration::from_secs(10);

/// Wait until `sleep` runs in the foreground of the recorded terminal (a key typed earlier would reach the shell
/// instead, still in the middle of starting the job).
fn await_foreground_sleep(t: &mut Term) {
    let relay = t.pid().as_raw();
    let ok = pty::wait_until(T, || pty::foreground_is(relay, "sleep"));
    assert!(ok, "sleep never became the foreground job");
}

fn finish(mut t: Term, env: &Env) -> Rec {
    t.line("exit");
    assert_eq!(t.wait_code(T), 0);
    Rec::queued(env, T)
}

#[test]
fn ctrl_c_interrupts_the_foreground_job() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    t.line("sleep 100; echo not-$((6*7))");
    await_foreground_sleep(&mut t);
    t.send(b"\x03");
    t.expect(PROMPT, 5);
    assert_eq!(t.run("echo status=$?"), "status=130\r\n");
    let rec = finish(t, &env);
    let text = String::from_utf8_lossy(&rec.data).into_owned();
    assert!(text.contains("^C") && !text.contains("not-42"), "{text:?}");
}

#[test]
fn ctrl_backslash_quits_the_foreground_job() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    t.line("sleep 100");
    await_foreground_sleep(&mut t);
    t.send(b"\x1c");
    t.expect(PROMPT, 5);
    assert_eq!(t.run("echo status=$?"), "status=131\r\n");
    finish(t, &env);
}

#[test]
fn ctrl_z_jobs_fg_then_ctrl_c() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    t.line("sleep 100");
    await_foreground_sleep(&mut t);
    t.send(b"\x1a");
    let stopped = String::from_utf8_lossy(&t.expect(PROMPT, 5)).into_owned();
    assert!(stopped.contains("Stopped"), "{stopped:?}");
    let jobs = t.run("jobs");
    assert!(
        jobs.contains("[1]+  Stopped") && jobs.contains("sleep 100"),
        "{jobs:?}"
    );
    t.line("fg");
    t.expect("sleep 100\r\n", 5);
    await_foreground_sleep(&mut t);
    t.send(b"\x03");
    t.expect(PROMPT, 5);
    assert_eq!(t.run("echo status=$?"), "status=130\r\n");
    assert_eq!(t.run("jobs"), "");
    finish(t, &env);
}

#[test]
fn children_get_default_signal_dispositions() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    // SIGPIPE not ignored: `yes` dies of it (141) instead of printing "Broken pipe".
    assert_eq!(
        t.run("yes | head -1; echo \"${PIPESTATUS[*]}\""),
        "y\r\n141 0\r\n"
    );
    // Nothing ignored, nothing blocked (SigIgn and SigBlk of a fresh process are zero), even when the process
    // starting auditty ignores some (the cargo test runner ignores glibc's reserved signals 32 and 33).
    let st = t.run("grep -E '^Sig(Ign|Blk)' /proc/self/status");
    assert_eq!(
        st,
        "SigBlk:\t0000000000000000\r\nSigIgn:\t0000000000000000\r\n"
    );
    finish(t, &env);
}

#[test]
fn children_get_default_signal_dispositions_when_auditty_inherits_ignored_ones() {
    // Started the way nohup or a careless parent would: SIGHUP, SIGUSR2 and a real-time signal ignored. Only the
    // signals that are not at their default are reset in the child: these must be among them.
    let env = Env::new("");
    let inner = pty::session_command(&env, &[], &["-c", &pty::interactive_command(&env)]);
    let mut c = std::process::Command::new("/bin/bash");
    c.arg("-c")
        .arg("trap '' HUP USR2 40; exec \"$0\" \"$@\"")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let mut t = Term::spawn(c, 24, 80);
    t.expect(PROMPT, 10);
    let st = t.run("grep -E '^Sig(Ign|Blk)' /proc/self/status");
    assert_eq!(
        st,
        "SigBlk:\t0000000000000000\r\nSigIgn:\t0000000000000000\r\n"
    );
    assert_eq!(
        t.run("yes | head -1; echo \"${PIPESTATUS[*]}\""),
        "y\r\n141 0\r\n"
    );
    finish(t, &env);
}

#[test]
fn pasting_a_megabyte_does_not_deadlock_or_lose_bytes() {
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    let file = env.dir.path().join("pasted");
    t.line(&format!(
        "stty -echo; cat > '{}'; stty echo",
        file.display()
    ));
    t.expect("\r\n", 5);
    // 1 MiB of lines the canonical tty accepts (printable, well below its 4095-byte line limit).
    let mut paste = Vec::with_capacity(1 << 20);
    let mut i = 0u32;
    while paste.len() < (1 << 20) - 120 {
        paste.extend_from_slice(format!("{i:07} ").as_bytes());
        paste.extend(std::iter::repeat_n(
            b'a' + (i % 26) as u8,
            (i % 97) as usize,
        ));
        paste.push(b'\n');
        i += 1;
    }
    let len = paste.len();
    t.send(&paste);
    t.send(b"\x04");
    t.expect(PROMPT, 30);
    let got = std::fs::read(&file).unwrap();
    assert_eq!(got.len(), len, "bytes that reached cat");
    assert!(got == paste, "the pasted bytes arrived changed");
    // The same, with echo on: the echo (1 MiB back) must not deadlock against the paste either.
    t.line(&format!("cat > '{}'", file.display()));
    t.expect("\r\n", 5);
    t.send(&paste);
    t.send(b"\x04");
    t.expect(PROMPT, 30);
    let got = std::fs::read(&file).unwrap();
    assert!(got == paste, "the pasted bytes arrived changed (echo on)");
    t.line("exit");
    assert_eq!(t.wait_code(T), 0);
    let rec = Rec::queued(&env, T);
    assert_eq!(rec.timing_output_bytes(), rec.data.len());
    // The recording is what the terminal showed, byte for byte. (When the CPUs are busy the inner terminal's line
    // discipline may drop some echo characters, as it does for any program on a PTY whose reader falls behind: then
    // neither the user nor the recording has them. The input itself arrived whole, above.)
    assert!(
        rec.data == t.out,
        "the recording differs from what the terminal showed: {} bytes recorded, {} shown",
        rec.data.len(),
        t.out.len()
    );
    assert!(
        rec.data.len() > len / 2,
        "the echoed paste is in the recording: {} bytes recorded, {len} pasted",
        rec.data.len()
    );
}

#[test]
fn less_runs_and_quits() {
    if std::process::Command::new("less")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("less is not installed; skipped");
        return;
    }
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    let file = env.dir.path().join("text");
    let text: String = (0..200).map(|i| format!("line-{i}\n")).collect();
    std::fs::write(&file, text).unwrap();
    t.line(&format!("TERM=xterm less '{}'", file.display()));
    t.expect("line-22", 5);
    t.send(b" ");
    t.expect("line-40", 5);
    t.send(b"q");
    t.expect(PROMPT, 5);
    assert_eq!(t.run("echo status=$?"), "status=0\r\n");
    finish(t, &env);
}

#[test]
fn vim_edits_a_file_and_suspends() {
    if std::process::Command::new("vim")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("vim is not installed; skipped");
        return;
    }
    let env = Env::new("");
    let mut t = Term::interactive(&env, &[]);
    let file = env.dir.path().join("edited");
    t.line(&format!(
        "TERM=xterm vim -u NONE -i NONE -N -n -c 'echo \"vim-\".\"ready\"' '{}'",
        file.display()
    ));
    t.expect("vim-ready", 5);
    // Suspend with Ctrl-Z, come back with fg, then write and quit.
    t.send(b"\x1a");
    let stopped = String::from_utf8_lossy(&t.expect(PROMPT, 5)).into_owned();
    assert!(stopped.contains("Stopped"), "{stopped:?}");
    t.line("fg");
    t.send(b"ihello from vim\x1b:wq\r");
    t.expect(PROMPT, 5);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hello from vim\n");
    finish(t, &env);
}
