//! A spool that cannot take a new recording when the session starts. The spool writer creates the recording while the
//! shell starts, so what happens then is its report: with policy.on_error = open the session goes on unrecorded (said
//! in syslog; the PTY stays registered, so the shell's profile does not start a nested session), with closed the shell
//! never runs. Real rsyslogd, real PTY; the spool is broken by making `active` a file (root can write anywhere, so
//! permissions would not do).

mod common;

use std::time::Duration;

use common::pty::Term;
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

/// A config file that does not load, given with --config by root, is still read for its failure policy: the file
/// says closed, so the login is refused (it used to be read from /etc/auditty.conf, absent here: open).
#[test]
fn a_config_that_does_not_load_but_says_closed_refuses_the_login() {
    let env = Env::new("[policy]\non_error = \"closed\"\nno_such_key = 1\n");
    let marker = env.dir.path().join("the-shell-ran");
    let cmd = format!("touch {}; echo shell-ran", marker.display());
    let mut t = Term::session(&env, &["-c", &cmd]);
    let out = t.expect("login refused (policy.on_error = closed)", 10);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("no_such_key"),
        "the reason names the key: {text}"
    );
    assert_eq!(t.wait_code(Duration::from_secs(10)), 1);
    assert!(!marker.exists(), "the shell must not have run");
    assert!(env.recordings("queue").is_empty());
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
