//! A spool that cannot take a new recording when the session starts. The spool writer creates the recording while the
//! shell starts, so what happens then is its report: with policy.on_error = open the session goes on unrecorded (said
//! in syslog; the PTY stays registered, so the shell's profile does not start a nested session), with closed the shell
//! never runs. Real rsyslogd, real PTY; the spool is broken by making `active` a file (root can write anywhere, so
//! permissions would not do).
//!
//! An orphaned recording whose timing holds malformed lines is repaired by `auditty flush` into one that plays.

mod common;

use std::time::Duration;

use common::formats::{play_ok, s, scriptreplay};
use common::pty::{Term, find, wait_until};
use common::rec::Rec;
use common::rsyslog::{self, Rsyslog};
use common::*;

fn broken_spool_env(rs: &Rsyslog, policy: &str) -> Env {
    let env = Env::new(&format!(
        "[syslog]\ntarget = \"unix:{}\"\nfacility = \"local0\"\ntag = \"auditty\"\n[policy]\non_error = \"{policy}\"\n",
        rs.socket.display()
    ));
    std::fs::write(env.spool.join("active"), "not a directory\n").unwrap();
    env
}

/// The spool holds nothing but the file that broke it.
fn assert_nothing_recorded(env: &Env) {
    let entries: Vec<String> = std::fs::read_dir(&env.spool)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        entries.iter().all(|e| e == "active" || e == "queue"),
        "{entries:?}"
    );
    assert!(env.recordings("queue").is_empty());
    assert_eq!(
        std::fs::read_to_string(env.spool.join("active")).unwrap(),
        "not a directory\n"
    );
}

#[test]
fn open_policy_goes_on_unrecorded_without_nesting_and_logs_why() {
    if !rsyslog::available() {
        eprintln!("rsyslogd not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rs = Rsyslog::start(tmp.path());
    let env = broken_spool_env(&rs, "open");
    // Inside the session: the hook finds the PTY registered (exit 0) but prints no hook (no FIFO: nothing would read
    // it), and `session --check` answers "inside" (3), so profile.d would not exec a nested `auditty session`.
    let cfg = env.config.display().to_string();
    let cmd = format!(
        "h=$({BIN} --config {cfg} hook bash); echo \"hook-rc=$? hook-len=${{#h}}\"; \
         {BIN} --config {cfg} session --check; echo \"check-rc=$?\"; echo out-$((6*7)); exit 3"
    );
    let mut t = Term::session(&env, &["-c", &cmd]);
    t.expect("hook-rc=0 hook-len=0", 10);
    t.expect("check-rc=3", 10);
    t.expect("out-42", 10);
    assert_eq!(
        t.wait_code(Duration::from_secs(10)),
        3,
        "the shell's status"
    );
    let lines = rs
        .wait_for(Duration::from_secs(10), |ls| {
            ls.iter()
                .any(|l| l.msg.contains("cannot record the session of"))
        })
        .expect("the failure reached rsyslog");
    let line = lines
        .iter()
        .find(|l| l.msg.contains("cannot record the session of"))
        .unwrap();
    assert!(
        line.msg
            .contains("(policy.on_error=open: continuing unrecorded)")
            && line.msg.contains("cannot create recording directory"),
        "{line:?}"
    );
    assert_eq!(line.pri, "local0.err", "{line:?}");
    assert_nothing_recorded(&env);
    // The registration is withdrawn once the session has ended.
    let left: Vec<_> = std::fs::read_dir(&env.run).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn closed_policy_refuses_before_the_shell_runs() {
    if !rsyslog::available() {
        eprintln!("rsyslogd not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rs = Rsyslog::start(tmp.path());
    let env = broken_spool_env(&rs, "closed");
    let marker = tmp.path().join("the-shell-ran");
    let cmd = format!("touch {}; echo shell-ran", marker.display());
    let mut t = Term::session(&env, &["-c", &cmd]);
    let out = t.expect("login refused (policy.on_error = closed)", 10);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("this login must be recorded, but recording is not possible: cannot create recording directory"),
        "{text}"
    );
    assert_eq!(t.wait_code(Duration::from_secs(10)), 1);
    assert!(!marker.exists(), "the shell must not have run");
    let lines = rs
        .wait_for(Duration::from_secs(10), |ls| {
            ls.iter()
                .any(|l| l.msg.contains("cannot record the session of"))
        })
        .expect("the refusal reached rsyslog");
    let refusals: Vec<_> = lines
        .iter()
        .filter(|l| l.msg.contains("cannot record the session of"))
        .collect();
    assert_eq!(refusals.len(), 1, "logged once: {refusals:?}");
    assert!(
        refusals[0]
            .msg
            .contains("(policy.on_error=closed: login refused)"),
        "{refusals:?}"
    );
    assert_nothing_recorded(&env);
    let left: Vec<_> = std::fs::read_dir(&env.run).unwrap().flatten().collect();
    assert!(left.is_empty(), "nothing registered: {left:?}");
}

#[test]
fn closed_policy_with_a_working_spool_records_as_usual() {
    let env = Env::new("[policy]\non_error = \"closed\"\n");
    let mut t = Term::session(&env, &["-c", "echo fine-$((2*21))"]);
    t.expect("fine-42", 10);
    assert_eq!(t.wait_code(Duration::from_secs(10)), 0);
    let recs = env.wait_for("queue", 1, Duration::from_secs(10));
    assert_eq!(recs.len(), 1, "one recording queued");
    let ts = String::from_utf8_lossy(&read(&recs[0].join("typescript"))).into_owned();
    assert!(ts.contains("fine-42\r\n"), "{ts}");
    assert!(ts.ends_with("[COMMAND_EXIT_CODE=\"0\"]\n"), "{ts}");
}

/// A recording orphaned (both recorder processes killed) whose timing holds lines that `auditty play` and
/// `scriptreplay` reject: `auditty flush` completes it with those lines dropped, and it plays with both.
#[test]
fn orphan_with_garbage_timing_lines_is_repaired_into_one_that_plays() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let env = Env::new("[mail]\ntransport = \"none\"\n[record]\ntiming = \"advanced\"\n");
    let mut t = Term::session(
        &env,
        &[
            "-c",
            "printf 'before-the-kill\\n'; seq 1 300; exec sleep 30",
        ],
    );
    t.expect("300\r\n", 10);
    let writer = common::pty::writer_pid(&env);
    let dir = env.recordings("active").remove(0);
    assert!(
        wait_until(Duration::from_secs(10), || {
            find(&read(&dir.join("typescript")), b"300\r\n").is_some()
        }),
        "the writer stored the output"
    );
    // Stop the relay first, so that it cannot end the session itself when it sees its writer die.
    kill(t.pid(), Signal::SIGSTOP).unwrap();
    kill(Pid::from_raw(writer), Signal::SIGKILL).unwrap();
    kill(t.pid(), Signal::SIGKILL).unwrap();
    t.wait(Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(10), || !common::pty::alive(
        writer
    )));
    // Garbage among the timing's lines, as a crash or a bad disk leaves it: each is a line play refuses.
    let timing = read(&dir.join("timing"));
    let (head, tail) = timing.split_at(find(&timing, b"\nO ").expect("an output entry") + 1);
    let garbage: &[&[u8]] = &[
        b"S 0.1 SIGWINCH ROWS=40 COLS=120\n",
        b"O 0.5 3\n",
        b"H 1234567890123.000000 NOTE x\n",
        b"O 0.000001 17 \n",
        b"\n",
    ];
    let mut spoiled = head.to_vec();
    for g in garbage {
        spoiled.extend_from_slice(g);
    }
    spoiled.extend_from_slice(tail);
    std::fs::write(dir.join("timing"), &spoiled).unwrap();
    assert!(
        !common::formats::play(None, &["--max-delay", "0", s(&dir)])
            .status
            .success(),
        "the spoiled timing does not play"
    );

    let f = env.cmd(&["flush"]).output().unwrap();
    assert!(f.status.success(), "{f:?}");
    let queued = env.wait_for("queue", 1, Duration::from_secs(10));
    assert_eq!(queued.len(), 1, "{f:?}");
    let rec = Rec::load(&queued[0]);
    rec.assert_timing_well_formed();
    for g in garbage {
        let g = String::from_utf8_lossy(g);
        assert!(
            !rec.timing.lines().any(|l| l == g.trim_end_matches('\n')),
            "{g:?} dropped"
        );
    }
    assert_eq!(
        rec.meta_str("end_reason"),
        Some("incomplete"),
        "{}",
        rec.meta
    );
    assert!(
        rec.meta["write_errors"]
            .to_string()
            .contains("the timing file was repaired"),
        "{}",
        rec.meta
    );
    let body = String::from_utf8_lossy(&rec.data);
    assert!(
        body.contains("before-the-kill\r\n") && body.contains("300\r\n"),
        "{body}"
    );
    assert_eq!(
        play_ok(None, &["--max-delay", "0", s(&queued[0])]),
        rec.data
    );
    let mut want = rec.data.clone();
    want.push(b'\n');
    assert!(
        scriptreplay(
            &queued[0],
            &["-m", "0.01", "-T", "timing", "-O", "typescript"]
        ) == want,
        "scriptreplay reproduces the typescript's body"
    );
}
