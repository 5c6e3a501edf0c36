//! A spool that cannot take a new recording when the session starts. The spool writer creates the recording while the
//! shell starts, so what happens then is its report: with policy.on_error = open the session goes on unrecorded (said
//! in syslog; the PTY stays registered, so the shell's profile does not start a nested session), with closed the shell
//! never runs. Real rsyslogd, real PTY; the spool is broken by making `active` a file (root can write anywhere, so
//! permissions would not do).
//!
//! A spool that fills up during the session (a tiny tmpfs in a private mount namespace): the session goes on, and the
//! recording that is queued is a consistent pair, whose timing describes exactly the bytes its typescript holds, so
//! `scriptreplay` and `auditty play` replay all of them.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::formats::{play_ok, s, scriptreplay};
use common::pty::{Term, find, session_command, wait_until};
use common::rec::Rec;
use common::rsyslog::{self, Rsyslog};
use common::small_disk::SmallDisk;
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
    // The registration stays after the session, saying why: the trace from which flush tells the auditors.
    let left: Vec<_> = std::fs::read_dir(&env.run)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let note = std::fs::read_to_string(&left[0]).unwrap();
    assert!(
        note.contains("\nunrecorded=") && note.contains("cannot create recording directory"),
        "{note}"
    );
    notice_for_an_unrecorded_login(
        &env,
        &left,
        "/dev/pts/",
        "cannot create recording directory",
    );
}

/// Once the spool works again and the login's note is a minute old, `auditty flush` queues a NOT RECORDED notice
/// for it, saying why, and the note has served.
fn notice_for_an_unrecorded_login(env: &Env, notes: &[PathBuf], pty: &str, why: &str) {
    std::fs::remove_file(env.spool.join("active")).unwrap();
    let past = std::time::SystemTime::now() - Duration::from_secs(120);
    for n in notes {
        std::fs::File::options()
            .write(true)
            .open(n)
            .unwrap()
            .set_modified(past)
            .unwrap();
    }
    let f = env.cmd(&["flush"]).output().unwrap();
    let err = String::from_utf8_lossy(&f.stderr);
    assert!(f.status.success(), "{f:?}");
    assert!(
        err.contains(
            "was NOT RECORDED: the spool could not take its recording when the login began"
        ),
        "{err}"
    );
    let q = env.recordings("queue");
    assert_eq!(q.len(), 1, "{q:?}");
    let rec = Rec::load(&q[0]);
    assert_eq!(rec.meta_str("end_reason"), Some("unrecorded"));
    assert!(
        rec.meta["pty"].as_str().is_some_and(|p| p.starts_with(pty)),
        "{}",
        rec.meta
    );
    let errors = rec.meta["write_errors"].to_string();
    assert!(
        errors.contains("the spool could not take it when the login began") && errors.contains(why),
        "{errors}"
    );
    assert!(
        rec.footer
            .ends_with("[<not recorded: the spool could not take the recording>]"),
        "{}",
        rec.footer
    );
    assert!(
        std::fs::read_dir(&env.run).unwrap().next().is_none(),
        "the note has served"
    );
    // Reported once.
    let f = env.cmd(&["flush"]).output().unwrap();
    assert!(f.status.success() && f.stderr.is_empty(), "{f:?}");
    assert_eq!(env.recordings("queue").len(), 1);
}

/// `session --check` (what profile.d asks) finds the spool broken and, with `open`, lets the login go on without a
/// recorder: it leaves a note in the guard registry, so that flush tells the auditors of that login too.
#[test]
fn an_unrecorded_login_from_the_check_is_reported_by_flush() {
    if !rsyslog::available() {
        eprintln!("rsyslogd not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rs = Rsyslog::start(tmp.path());
    let env = broken_spool_env(&rs, "open");
    let mut t = Term::session(&env, &["--check"]);
    assert_eq!(t.wait_code(Duration::from_secs(10)), 5);
    let notes: Vec<PathBuf> = std::fs::read_dir(&env.run)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("unrecorded."),
        "{notes:?}"
    );
    notice_for_an_unrecorded_login(&env, &notes, "/dev/pts/", "spool.dir");
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

/// Output of the full-disk sessions: far more than the 1 MiB spool holds.
const FLOOD_BYTES: usize = 3_000_000;

/// Run a session that writes `FLOOD_BYTES` into a 1 MiB spool (config `extra`, no mail transport, so the queued
/// files stay plain) through a real PTY; return the recording it queued (as seen from outside the mount namespace)
/// once its writer is done, with the disk and the test's directory (which the disk is mounted in) to keep meanwhile.
fn session_on_a_full_disk(extra: &str) -> (Env, SmallDisk, PathBuf) {
    let env = Env::new(&format!("[mail]\ntransport = \"none\"\n{extra}"));
    let disk = SmallDisk::mount(&env.spool, "1m");
    let cmd = format!(
        "head -c {FLOOD_BYTES} /dev/zero | tr '\\0' x; echo; echo still-alive-$((6*7)); exit 3"
    );
    let mut t = Term::spawn(
        disk.enter(&session_command(&env, &[], &["-c", &cmd])),
        24,
        80,
    );
    // The user's session is not disturbed: it runs to its own end, and the output reaches the terminal.
    assert_eq!(
        t.wait_code(Duration::from_secs(60)),
        3,
        "the shell's status"
    );
    assert!(
        t.out.iter().filter(|b| **b == b'x').count() >= FLOOD_BYTES * 2 / 3,
        "the user saw the output: {} bytes",
        t.out.len()
    );
    let queue = disk.inside(&env.spool).join("queue");
    let queued = || -> Vec<PathBuf> {
        std::fs::read_dir(&queue)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(20), || queued().len() == 1),
        "one recording queued: {:?}",
        queued()
    );
    let dir = queued().remove(0);
    let writer = Rec::load(&dir).meta["writer_pid"].as_i64().unwrap() as i32;
    assert!(
        wait_until(Duration::from_secs(20), || !common::pty::alive(writer)),
        "the writer is done"
    );
    (env, disk, dir)
}

/// What a full-disk recording must be: the footer written, meta.json complete and saying what was lost, and a timing
/// that covers every byte the typescript holds, so that `scriptreplay` and `auditty play` reproduce its body exactly.
fn assert_consistent_after_a_full_disk(dir: &Path) -> Rec {
    let rec = Rec::load(dir);
    assert_eq!(
        rec.footer_status(),
        "COMMAND_EXIT_CODE=\"3\"",
        "{:?}",
        rec.footer
    );
    assert!(
        !rec.data.is_empty() && rec.data.len() < FLOOD_BYTES,
        "the disk was full: {} bytes stored",
        rec.data.len()
    );
    rec.assert_timing_well_formed();
    assert_eq!(
        rec.timing_output_bytes(),
        rec.data.len(),
        "the timing describes exactly the bytes the typescript holds"
    );
    assert_eq!(rec.meta_str("end_reason"), Some("exit"), "{}", rec.meta);
    assert_eq!(rec.meta_i64("exit_status"), Some(3), "{}", rec.meta);
    let lost = rec.meta_i64("lost_bytes").unwrap() as usize;
    assert!(lost > 0, "{}", rec.meta);
    assert_eq!(
        rec.meta_i64("bytes_out").unwrap() as usize,
        rec.data.len() + lost,
        "what was produced is what was stored plus what was lost: {}",
        rec.meta
    );
    let errors = rec.meta["write_errors"].to_string();
    assert!(
        errors.contains("typescript: No space left on device (os error 28)"),
        "{errors}"
    );
    let mut want = rec.data.clone();
    want.push(b'\n');
    assert!(
        scriptreplay(dir, &["-m", "0.01", "-t", "timing", "typescript"]) == want,
        "scriptreplay reproduces the typescript's body"
    );
    let o = common::formats::play(None, &["--max-delay", "0", s(dir)]);
    assert!(
        o.status.success() && o.stdout == rec.data,
        "auditty play: {:?}",
        o.status
    );
    assert!(
        o.stderr.is_empty(),
        "play has nothing to warn about: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    rec
}

#[test]
fn disk_full_mid_session_leaves_a_timing_that_covers_the_typescript() {
    let (_env, _disk, dir) = session_on_a_full_disk("");
    let rec = assert_consistent_after_a_full_disk(&dir);
    assert!(rec.timing.lines().all(|l| !l.starts_with('H')), "classic");
}

#[test]
fn disk_full_mid_session_keeps_the_advanced_timing_and_input_consistent() {
    let (_env, _disk, dir) = session_on_a_full_disk("[record]\ninput = true\n");
    let rec = assert_consistent_after_a_full_disk(&dir);
    // The closing entries made it too.
    assert!(
        rec.timing.contains("\nH 0.000000 DURATION "),
        "{}",
        rec.timing
    );
    assert!(
        rec.timing.ends_with("H 0.000000 EXIT_CODE 3\n"),
        "{}",
        &rec.timing[rec.timing.len().saturating_sub(300)..]
    );
    let input = read(&dir.join("input"));
    assert!(
        input.starts_with(b"Script started on ") && input.ends_with(b"[COMMAND_EXIT_CODE=\"3\"]\n"),
        "the input file has its footer too"
    );
    assert_eq!(play_ok(None, &["--max-delay", "0", s(&dir)]), rec.data);
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
            .contains("the timing file was repaired: 5 malformed timing lines were dropped"),
        "{}",
        rec.meta
    );
    assert!(
        !queued[0].join(".reserve").exists(),
        "the writer's reserve is released by the repair, not queued"
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

/// `session --check` on a spool whose file system is full says recording is impossible (profile.d then applies the
/// policy at once, before any recorder starts), and creates nothing in the spool while it looks.
#[test]
fn check_on_a_full_spool_says_impossible_and_leaves_nothing() {
    let env = Env::new("[mail]\ntransport = \"none\"\n");
    let disk = SmallDisk::mount(&env.spool, "256k");
    // A working spool first: "record".
    let mut t = Term::spawn(
        disk.enter(&session_command(&env, &[], &["--check"])),
        24,
        80,
    );
    assert_eq!(t.wait_code(Duration::from_secs(10)), 0);
    assert!(String::from_utf8_lossy(&t.out).contains("record"));
    fill_up(&disk, &env);
    let mut t = Term::spawn(
        disk.enter(&session_command(&env, &[], &["--check"])),
        24,
        80,
    );
    assert_eq!(t.wait_code(Duration::from_secs(10)), 5);
    let said = String::from_utf8_lossy(&t.out).into_owned();
    assert!(
        said.contains("cannot record (policy.on_error=open, continuing unrecorded): spool.dir: cannot create a recording in")
            && said.contains("its file system is full"),
        "{said}"
    );
    assert_active_empty(&disk, &env);
}

/// With `closed`, a login refused because its recording cannot be written (a full file system: the directory is
/// made, meta.json is not) leaves nothing in the spool, so no later flush mails it as a session whose recorder
/// vanished: no shell ran, there was no session.
#[test]
fn a_login_refused_on_a_full_spool_leaves_nothing_for_flush_to_report() {
    let env = Env::new("[policy]\non_error = \"closed\"\n[mail]\ntransport = \"none\"\n");
    let disk = SmallDisk::mount(&env.spool, "256k");
    // The state directories exist; then nothing more fits (a full tmpfs still takes a directory, not a file's data).
    let mut t = Term::spawn(
        disk.enter(&session_command(&env, &[], &["-c", "echo first-session"])),
        24,
        80,
    );
    assert_eq!(t.wait_code(Duration::from_secs(10)), 0);
    fill_up(&disk, &env);
    let marker = env.dir.path().join("the-shell-ran");
    let cmd = format!("touch {}", marker.display());
    let mut t = Term::spawn(
        disk.enter(&session_command(&env, &[], &["-c", &cmd])),
        24,
        80,
    );
    assert_eq!(t.wait_code(Duration::from_secs(10)), 1);
    let said = String::from_utf8_lossy(&t.out).into_owned();
    assert!(
        said.contains("login refused (policy.on_error = closed)")
            && said.contains("No space left on device"),
        "{said}"
    );
    assert!(!marker.exists(), "the shell must not have run");
    assert_active_empty(&disk, &env);
}

/// A file system without a size limit reports no blocks at all (a tmpfs mounted with size=0): that is not a full
/// one, and the spool check says "record".
#[test]
fn check_on_an_unlimited_tmpfs_says_record() {
    let env = Env::new("[mail]\ntransport = \"none\"\n");
    let disk = SmallDisk::mount(&env.spool, "0");
    let mut t = Term::spawn(
        disk.enter(&session_command(&env, &[], &["--check"])),
        24,
        80,
    );
    assert_eq!(
        t.wait_code(Duration::from_secs(10)),
        0,
        "{}",
        String::from_utf8_lossy(&t.out)
    );
    assert!(String::from_utf8_lossy(&t.out).contains("record"));
}

/// Fill the small disk's file system, as root (no reserve on a tmpfs): nothing more fits.
fn fill_up(disk: &SmallDisk, env: &Env) {
    let fill = disk
        .enter(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("cat /dev/zero > {}/fill", env.spool.display())),
        )
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&fill.stderr).contains("No space left on device"),
        "{fill:?}"
    );
}

/// Nothing is left in the spool's active/ on the small disk.
fn assert_active_empty(disk: &SmallDisk, env: &Env) {
    let active: Vec<_> = std::fs::read_dir(disk.inside(&env.spool).join("active"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(active.is_empty(), "{active:?}");
}
