//! The queue: nothing is lost while the mail system is down or refuses, `flush` delivers exactly once (also when
//! several run at once; at least once when the disk fails after the server accepted a mail), permanent refusals go
//! to failed/ and come back with `flush --all`, cleanup never deletes a recording that is not delivered, and a full
//! disk does not break the user's session nor lose what was queued. Without a transport recordings stay
//! uncompressed in the queue (scriptreplay plays them there); flush compresses and mails them once a transport is
//! configured.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::deliver::*;
use common::small_disk::SmallDisk;
use common::*;

const T: Duration = Duration::from_secs(10);

/// Wait (bounded) until every recording in `state` has had `attempts` delivery attempts and its writer is gone.
fn wait_attempts(env: &Env, state: &str, n: usize, attempts: u64) -> Vec<PathBuf> {
    let end = Instant::now() + T;
    loop {
        let v = env.recordings(state);
        // As read now (None if one moved meanwhile: look again).
        let metas: Vec<_> = v.iter().map(|d| meta_if_written(d)).collect();
        if v.len() == n
            && metas.iter().all(|m| {
                m.as_ref()
                    .is_some_and(|m| m["attempts"].as_u64() == Some(attempts))
            })
        {
            // The writer records its attempt, then lets go of the recording's lock: a flush in between finds it busy.
            for m in metas.iter().flatten() {
                wait_writer_gone(m);
            }
            return v;
        }
        assert!(
            Instant::now() < end,
            "{state}: {v:?}\nall: {:?} {:?} {:?} {:?}\nmetas: {:?}",
            env.recordings("active"),
            env.recordings("queue"),
            env.recordings("sent"),
            env.recordings("failed"),
            metas
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ids(msgs: &[Received]) -> Vec<String> {
    let mut v: Vec<String> = msgs
        .iter()
        .map(|m| m.header("X-Auditty-Recording").unwrap())
        .collect();
    v.sort();
    v
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

#[test]
fn mta_down_keeps_everything_queued_and_flush_delivers_exactly_once() {
    let mut mta = Mta::down();
    let env = env_with("", &smtp_mail(&mta.url()));
    for i in 0..2 {
        let mut t = session(&env, &format!("echo queued-session-{i}"));
        t.expect(&format!("queued-session-{i}"), T);
        t.wait(T);
        wait_settled(&env, i + 1);
    }
    let queued = wait_attempts(&env, "queue", 2, 1);
    for d in &queued {
        let m = meta(d);
        assert!(
            m["last_error"]
                .as_str()
                .unwrap()
                .contains("Connection refused"),
            "{m}"
        );
        assert!(d.join("typescript.gz").exists() && d.join("timing.gz").exists());
    }
    // A flush while the MTA is still down: nothing is lost, the exit status says "try later". The connection is
    // refused for the first recording; the second is not tried in that run, and not charged an attempt.
    let f = run(&env, &["flush"]);
    assert_eq!(f.status.code(), Some(75), "{}", text(&f));
    let (first, second) = (name(&queued[0]), name(&queued[1]));
    let err = String::from_utf8_lossy(&f.stderr);
    assert!(
        err.contains(&format!("{first} stays queued: "))
            && err.contains(&format!(
                "{second} stays queued: not tried: the server failed for {first}"
            )),
        "{}",
        text(&f)
    );
    assert_eq!(meta(&queued[0])["attempts"], 2);
    assert_eq!(meta(&queued[1])["attempts"], 1);
    for d in &queued {
        let v = run(&env, &["verify", &name(d)]);
        assert!(v.status.success(), "{}", text(&v));
    }
    let l = run(&env, &["list", "--state", "queue"]);
    let out = String::from_utf8_lossy(&l.stdout);
    assert_eq!(out.lines().count(), 2, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("attempts=2")
            && lines[1].contains("attempts=1")
            && lines.iter().all(|l| l.contains("Connection refused")),
        "{out}"
    );

    // The MTA comes back: three flushes, two of them at the same time, deliver each recording exactly once.
    mta.up();
    let spawn = || {
        env.cmd(&["flush"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for c in [a, b] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", text(&f));
    let msgs = mta.wait_for(2, T);
    assert_eq!(msgs.len(), 2);
    let want: Vec<String> = queued.iter().map(|d| name(d)).collect();
    assert_eq!(ids(&msgs), want, "each recording once");
    for m in &msgs {
        let (replayed, _, _) = gunzip_and_replay(m);
        assert!(String::from_utf8_lossy(&replayed).contains("queued-session-"));
    }
    let attempt_of = |id: &str| {
        let m = msgs
            .iter()
            .find(|m| m.header("X-Auditty-Recording").as_deref() == Some(id))
            .unwrap();
        m.body.contains(&format!(
            "delivery attempt {}",
            if id == first { 3 } else { 2 }
        ))
    };
    assert!(attempt_of(&first) && attempt_of(&second), "{msgs:?}");
    assert!(env.recordings("queue").is_empty());
    assert_eq!(env.recordings("sent").len(), 2);
    let f = run(&env, &["flush", "--all"]);
    assert!(f.status.success(), "{}", text(&f));
    assert_eq!(mta.files().len(), 2, "nothing sent twice");
}

#[test]
fn temporary_refusal_stays_queued_permanent_refusal_goes_to_failed() {
    let mta = Mta::start();
    let env = env_with("", &smtp_mail(&mta.url()));
    // 451: try again later.
    mta.reject_temporarily(true);
    let mut t = session(&env, "echo temp-refused");
    t.wait(T);
    let q = wait_attempts(&env, "queue", 1, 1);
    let m = meta(&q[0]);
    assert!(m["last_error"].as_str().unwrap().contains("451"), "{m}");
    mta.reject_temporarily(false);
    // 554: refused for good.
    mta.reject_permanently(true);
    let f = run(&env, &["flush"]);
    assert_eq!(f.status.code(), Some(1), "{}", text(&f));
    assert!(
        String::from_utf8_lossy(&f.stderr).contains("FAILED permanently"),
        "{}",
        text(&f)
    );
    let failed = wait_attempts(&env, "failed", 1, 2);
    let m = meta(&failed[0]);
    assert!(m["last_error"].as_str().unwrap().contains("554"), "{m}");
    assert!(m["failed_unix"].as_i64().is_some());
    let l = run(&env, &["list", "--state", "failed"]);
    assert!(
        String::from_utf8_lossy(&l.stdout).contains("554"),
        "{}",
        text(&l)
    );
    // A plain flush leaves failed recordings alone; --all retries them.
    mta.reject_permanently(false);
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", text(&f));
    assert!(mta.files().is_empty());
    assert_eq!(env.recordings("failed").len(), 1);
    let f = run(&env, &["flush", "--all"]);
    assert!(f.status.success(), "{}", text(&f));
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    assert!(String::from_utf8_lossy(&gunzip_and_replay(&msgs[0]).0).contains("temp-refused"));
    assert_eq!(env.recordings("sent").len(), 1);
    assert!(env.recordings("failed").is_empty());
}

#[test]
fn sendmail_failure_is_retried_with_the_real_msmtp() {
    let mut mta = Mta::down();
    let mail = format!(
        "transport = \"sendmail\"\nsendmail_path = {:?}\nto = \"auditors@example.com\"\nfrom = \"auditty@test.example\"\ntimeout = 5\nretry_min = 0\n",
        mta.sendmail()
    );
    let env = env_with("", &mail);
    let mut t = session(&env, "echo sendmail-retry");
    t.wait(T);
    let q = wait_attempts(&env, "queue", 1, 1);
    let m = meta(&q[0]);
    assert!(
        m["last_error"]
            .as_str()
            .unwrap()
            .contains("status 75 (EX_TEMPFAIL)"),
        "{m}"
    );
    mta.up();
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", text(&f));
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    assert!(String::from_utf8_lossy(&gunzip_and_replay(&msgs[0]).0).contains("sendmail-retry"));
}

#[test]
fn cleanup_removes_old_sent_recordings_but_never_queued_ones() {
    let mut mta = Mta::start();
    let env = env_with("keep_days = 7\nmax_size = 1", &smtp_mail(&mta.url()));
    let mut t = session(&env, "echo will-be-sent-1");
    t.wait(T);
    wait_settled(&env, 1);
    let mut t = session(&env, "echo will-be-sent-2");
    t.wait(T);
    wait_settled(&env, 2);
    let sent = wait_attempts(&env, "sent", 2, 1);
    mta.stop();
    let mut t = session(&env, "echo stays-queued");
    t.wait(T);
    wait_settled(&env, 3);
    let queued = wait_attempts(&env, "queue", 1, 1);
    // One sent recording is past keep_days.
    let old = &sent[0];
    let mut m = meta(old);
    m["sent_unix"] = serde_json::json!(m["sent_unix"].as_i64().unwrap() - 8 * 86400);
    std::fs::write(old.join("meta.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    // The spool is over max_size (1 byte): the other sent one goes too, the queued one stays, and that is reported.
    let f = run(&env, &["flush"]);
    assert_eq!(f.status.code(), Some(1), "{}", text(&f));
    let out = String::from_utf8_lossy(&f.stdout);
    assert!(
        out.contains(&format!("removed {}", name(&sent[0]))),
        "{}",
        text(&f)
    );
    assert!(
        out.contains(&format!("removed {}", name(&sent[1]))),
        "{}",
        text(&f)
    );
    let err = String::from_utf8_lossy(&f.stderr);
    assert!(
        err.contains("over spool.max_size") && err.contains("never deleted"),
        "{}",
        text(&f)
    );
    assert!(env.recordings("sent").is_empty());
    assert_eq!(env.recordings("queue"), queued);
    let v = run(&env, &["verify", &name(&queued[0])]);
    assert!(v.status.success(), "{}", text(&v));
}

#[test]
fn keep_days_zero_removes_after_delivery() {
    let mta = Mta::start();
    let env = env_with("keep_days = 0", &smtp_mail(&mta.url()));
    let mut t = session(&env, "echo gone-after-sending");
    t.wait(T);
    assert_eq!(mta.wait_for(1, T).len(), 1);
    let end = Instant::now() + T;
    while !(env.recordings("sent").is_empty()
        && env.recordings("queue").is_empty()
        && env.recordings("active").is_empty())
    {
        assert!(Instant::now() < end, "still in the spool");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn full_disk_keeps_the_session_working_reports_it_and_loses_nothing_queued() {
    let mut mta = Mta::down();
    let env = env_with("", &smtp_mail(&mta.url()));
    let disk = SmallDisk::mount(&env.spool, "1m");
    let spool = disk.inside(&env.spool);
    // A recording queued while the MTA is down.
    let mut t = Term::spawn(
        &disk.enter(&session_cmd(&env, "echo queued-before-the-disk-filled")),
        None,
    );
    t.expect("queued-before-the-disk-filled", T);
    t.wait(T);
    let end = Instant::now() + T;
    let first = loop {
        let q: Vec<PathBuf> = std::fs::read_dir(spool.join("queue"))
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if q.len() == 1 && meta(&q[0])["attempts"] == 1 {
            break q[0].clone();
        }
        assert!(Instant::now() < end, "first recording not queued");
        std::thread::sleep(Duration::from_millis(10));
    };
    let first_id = name(&first);
    let first_ts = read(&first.join("typescript.gz"));
    // The MTA is back; a session writes 3 MB into a 1 MiB spool.
    mta.up();
    let mut t = Term::spawn(
        &disk.enter(&session_cmd(
            &env,
            "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo still-alive-$((6*7)); exit 3",
        )),
        None,
    );
    // The shell runs to its own end (the exit status 3 comes after the echo), and the output reaches the user.
    // (Not asserted byte for byte on the terminal: the relay gives a slow terminal 2 s after the shell's exit, and
    // a loaded test machine can be slower than that.)
    let st = t.wait(Duration::from_secs(60));
    let out = t.output();
    assert_eq!(st.code(), Some(3), "the session went on to its own end");
    assert!(
        out.iter().filter(|b| **b == b'x').count() >= 2_000_000,
        "the user saw the output: {} bytes",
        out.len()
    );
    // Its recording is mailed at once, saying what went wrong.
    let msgs = mta.wait_for(1, Duration::from_secs(20));
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(m.body.contains("PROBLEMS"), "{}", m.body);
    assert!(
        m.body
            .contains("spool: typescript: No space left on device (os error 28)"),
        "{}",
        m.body
    );
    assert!(
        m.body.contains(
            "the session produced 3,000,018 bytes of output, but the stored typescript holds only"
        ),
        "{}",
        m.body
    );
    let (_, ts, _) = gunzip_and_replay(m);
    assert!(ts.starts_with(b"Script started on "));
    // The recording queued before is intact and goes out with the next flush.
    assert_eq!(read(&first.join("typescript.gz")), first_ts);
    let f = disk.enter(&env.cmd(&["flush"])).output().unwrap();
    assert!(f.status.success(), "{}", text(&f));
    let msgs = mta.wait_for(2, T);
    assert_eq!(msgs.len(), 2);
    let m = msgs
        .iter()
        .find(|m| m.header("X-Auditty-Recording").as_deref() == Some(first_id.as_str()))
        .unwrap();
    assert_eq!(read(&m.attachment("typescript.gz")), first_ts);
    assert!(
        String::from_utf8_lossy(&gunzip_and_replay(m).0).contains("queued-before-the-disk-filled")
    );
}

#[test]
fn flush_leaves_a_live_recording_alone() {
    let mta = Mta::start();
    let env = env_with("", &smtp_mail(&mta.url()));
    let mut t = session(&env, "echo waiting-for-input; read x; echo got-$x; exit 4");
    t.expect("waiting-for-input", T);
    let (dir, writer) = active_writer(&env);
    // The writer holds the recording's lock (a flock on the recording directory itself, no lock file) for the whole
    // session: flush must neither complete nor move it.
    assert!(!dir.join(".lock").exists());
    assert!(
        nix::fcntl::Flock::lock(
            std::fs::File::open(&dir).unwrap(),
            nix::fcntl::FlockArg::LockSharedNonblock
        )
        .is_err(),
        "the live recording's directory is locked"
    );
    for _ in 0..2 {
        let f = run(&env, &["flush"]);
        assert!(f.status.success() && f.stdout.is_empty(), "{}", text(&f));
    }
    assert_eq!(env.recordings("active"), vec![dir.clone()]);
    let l = run(&env, &["list", "--state", "active"]);
    assert!(
        String::from_utf8_lossy(&l.stdout).contains(&format!("recording (writer pid {writer})")),
        "{}",
        text(&l)
    );
    t.send("later\r");
    t.expect("got-later", T);
    assert_eq!(t.wait(T).code(), Some(4));
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].header("Subject").unwrap().ends_with(", exit 4)"));
    assert!(!msgs[0].body.contains("INCOMPLETE"), "{}", msgs[0].body);
}

/// Names of the files in a recording directory, sorted, without `.lock`.
fn files_of(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n != ".lock")
        .collect();
    v.sort();
    v
}

/// Record one session with `mail.transport = "none"` and wait until it is queued and its writer is gone.
fn queued_without_transport(env: &Env, cmd: &str, shows: &str) -> PathBuf {
    let mut t = session(env, cmd);
    t.expect(shows, T);
    t.wait(T);
    let q = env.wait_for("queue", 1, T);
    assert_eq!(q.len(), 1, "active: {:?}", env.recordings("active"));
    wait_writer_gone(&meta(&q[0]));
    q[0].clone()
}

const PLAIN_SESSION: &str = "printf 'plain-spool\\n'; printf '\\033[1mbold\\033[0m caf\\303\\251 \\001\\n'; head -c 20000 /dev/zero | tr '\\0' y; echo; exit 4";

#[test]
fn without_transport_the_queue_keeps_plain_files_that_scriptreplay_plays() {
    let env = env_with("", "transport = \"none\"\n");
    let dir = queued_without_transport(&env, PLAIN_SESSION, "plain-spool");
    let id = name(&dir);
    assert_eq!(
        files_of(&dir),
        ["commands.log", "meta.json", "timing", "typescript"],
        "no compression without a transport"
    );
    // The sums in meta.json are those of the files (computed by the real sha256sum).
    let m = meta(&dir);
    for f in ["typescript", "timing", "commands.log"] {
        let want = &m["files"][f];
        assert_eq!(want["sha256"], sha256sum(&dir.join(f)), "{f}: {m}");
        assert_eq!(
            want["size"],
            std::fs::metadata(dir.join(f)).unwrap().len(),
            "{f}"
        );
    }
    assert!(m["files"].get("typescript.gz").is_none(), "{m}");
    assert!(m["queued_unix"].as_i64().is_some(), "{m}");
    assert_eq!(m["attempts"], 0, "no delivery attempt without a transport");
    // util-linux scriptreplay plays the spool's files as they are, byte for byte (plus its own final newline).
    let ts = std::fs::read(dir.join("typescript")).unwrap();
    let body = typescript_body(&ts).to_vec();
    assert!(
        String::from_utf8_lossy(&body).contains("plain-spool\r\n\x1b[1mbold\x1b[0m café \x01\r\n")
    );
    let o = Command::new("scriptreplay")
        .args(["-t", "timing", "typescript", "-m", "0.0001"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut want = body.clone();
    want.push(b'\n');
    assert_eq!(
        o.stdout, want,
        "scriptreplay output differs from the typescript"
    );
    // auditty play, verify and list read the plain files too.
    let p = run(&env, &["play", "--max-delay", "0", &id]);
    assert!(p.status.success(), "{}", text(&p));
    assert_eq!(p.stdout, body);
    // verify takes what play takes: the id, a unique prefix of it, the recording's typescript.
    let typescript = dir.join("typescript").display().to_string();
    for arg in [&id, &id[..id.len() - 4], &typescript] {
        let v = run(&env, &["verify", arg]);
        assert!(v.status.success(), "{arg}: {}", text(&v));
        assert!(
            String::from_utf8_lossy(&v.stdout).contains("OK       typescript "),
            "{arg}: {}",
            text(&v)
        );
    }
    let l = run(&env, &["list", "--state", "queue"]);
    assert!(
        String::from_utf8_lossy(&l.stdout).contains(&id),
        "{}",
        text(&l)
    );
    // flush without a transport leaves it alone.
    let f = run(&env, &["flush"]);
    assert!(f.status.success() && f.stdout.is_empty(), "{}", text(&f));
    assert_eq!(
        files_of(&dir),
        ["commands.log", "meta.json", "timing", "typescript"]
    );
}

#[test]
fn flush_after_a_transport_is_configured_compresses_and_mails_a_plain_recording() {
    let mut mta = Mta::down();
    let env = env_with("", "transport = \"none\"\n");
    let dir = queued_without_transport(&env, PLAIN_SESSION, "plain-spool");
    let id = name(&dir);
    let ts = std::fs::read(dir.join("typescript")).unwrap();
    let tm = std::fs::read(dir.join("timing")).unwrap();
    let queued_sums = meta(&dir)["files"].clone();

    // The administrator configures a transport; the mail system is still down: flush compresses the recording
    // (the attempt fails and it stays queued), and the queue holds only the .gz files.
    set_config(&env, "", &smtp_mail(&mta.url()));
    let f = run(&env, &["flush"]);
    assert_eq!(f.status.code(), Some(75), "{}", text(&f));
    assert_eq!(
        files_of(&dir),
        ["commands.log", "meta.json", "timing.gz", "typescript.gz"],
        "compressed, no raw file left"
    );
    assert!(!files_of(&dir).iter().any(|n| n.starts_with('.')));
    let m = meta(&dir);
    assert_eq!(m["attempts"], 1, "{m}");
    assert!(m["compress_ms"].as_u64().is_some(), "{m}");
    for f in ["typescript", "timing"] {
        assert_eq!(m["files"][f], queued_sums[f], "the sums taken when queued");
        assert_eq!(
            m["files"][format!("{f}.gz")]["sha256"],
            sha256sum(&dir.join(format!("{f}.gz")))
        );
    }
    assert_eq!(m["write_errors"], serde_json::json!([]), "{m}");
    assert_eq!(
        read(&dir.join("typescript")),
        ts,
        "the .gz holds the recorded bytes"
    );
    let v = run(&env, &["verify", &id]);
    assert!(v.status.success(), "{}", text(&v));

    // The mail system is back: the next flush mails it once, with attachments that unpack to the recorded bytes.
    mta.up();
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", text(&f));
    assert!(
        String::from_utf8_lossy(&f.stdout).contains(&format!("sent {id}")),
        "{}",
        text(&f)
    );
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    let names: Vec<&str> = m.attachments.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(names, ["typescript.gz", "timing.gz"]);
    let (replayed, got_ts, unpacked) = gunzip_and_replay(m);
    assert_eq!(
        got_ts, ts,
        "typescript.gz unpacks to the recorded typescript"
    );
    assert_eq!(std::fs::read(unpacked.path().join("timing")).unwrap(), tm);
    let mut want = typescript_body(&ts).to_vec();
    want.push(b'\n');
    assert_eq!(replayed, want);
    assert!(env.recordings("queue").is_empty());
    let sent = env.recordings("sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        files_of(&sent[0]),
        ["commands.log", "meta.json", "timing.gz", "typescript.gz"]
    );
    assert_eq!(
        read(&sent[0].join("typescript.gz")),
        read(&m.attachment("typescript.gz"))
    );
}

/// Wait (bounded) until nobody holds the lock of the recording directory `dir` (its writer has exited).
fn wait_unlocked(dir: &Path) {
    let end = Instant::now() + T;
    while nix::fcntl::Flock::lock(
        std::fs::File::open(dir).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .is_err()
    {
        assert!(Instant::now() < end, "{} stays locked", dir.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn flush_honours_the_lock_file_held_by_a_writer_of_the_previous_version() {
    // Before the lock moved to the recording directory itself, the writer locked a `.lock` file in it. Such a writer
    // may still be running right after an upgrade: flush must leave its recording alone as well.
    let env = env_with("", "transport = \"none\"\n");
    let mut t = session(&env, "echo recorded-before-the-upgrade");
    assert_eq!(t.wait(T).code(), Some(0));
    let queued = env.wait_for("queue", 1, T);
    assert_eq!(queued.len(), 1);
    wait_unlocked(&queued[0]);
    // Put it back as a live recording of an old writer: in active/, with a held `.lock`.
    let dir = env.spool.join("active").join(name(&queued[0]));
    std::fs::rename(&queued[0], &dir).unwrap();
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dir.join(".lock"))
        .unwrap();
    let old_writer =
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", text(&f));
    assert_eq!(env.recordings("active"), vec![dir.clone()], "{}", text(&f));
    let l = run(&env, &["list", "--state", "active"]);
    assert!(
        String::from_utf8_lossy(&l.stdout).contains("recording (writer pid"),
        "{}",
        text(&l)
    );
    drop(old_writer);
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", text(&f));
    assert!(env.recordings("active").is_empty(), "{}", text(&f));
    assert_eq!(env.recordings("queue").len(), 1);
}

#[test]
fn flush_leaves_a_live_pipe_recording_alone() {
    // `ssh host cmd` with record.noninteractive is recorded through pipes by the same spool writer, which must hold
    // the recording's lock just as long: the relay closes its copy of the lock without unlocking it.
    let env = env_with("", "transport = \"none\"\n");
    let mut conf = std::fs::read_to_string(&env.config).unwrap();
    conf += "[record]\nnoninteractive = true\n";
    std::fs::write(&env.config, conf).unwrap();
    let mut child = env
        .cmd(&["session"])
        .env("SHELL", "/bin/bash")
        .env("SSH_CONNECTION", "127.0.0.1 50000 127.0.0.1 22")
        .env(
            "SSH_ORIGINAL_COMMAND",
            "echo piped-session-started; read x; echo got-$x",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "piped-session-started\n");
    let (dir, _) = active_writer(&env);
    assert!(
        nix::fcntl::Flock::lock(
            std::fs::File::open(&dir).unwrap(),
            nix::fcntl::FlockArg::LockSharedNonblock
        )
        .is_err(),
        "the live pipe recording is locked"
    );
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", text(&f));
    assert_eq!(env.recordings("active"), vec![dir.clone()], "{}", text(&f));
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"later\n").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "got-later\n");
    assert!(child.wait().unwrap().success());
    assert_eq!(env.wait_for("queue", 1, T).len(), 1);
}

/// A recording queued with `mail.transport = "none"`, then a transport configured: an SMTP server that is up.
fn queued_then_mailed_to(env: &Env, mta: &Mta, cmd_and_shows: &str) -> (PathBuf, String) {
    let dir = queued_without_transport(env, &format!("echo {cmd_and_shows}"), cmd_and_shows);
    set_config(env, "", &smtp_mail(&mta.url()));
    let id = name(&dir);
    (dir, id)
}

/// `auditty flush`, which must report every one of `problems` (exit status 1) and send `id`.
fn flush_reporting(env: &Env, id: &str, problems: &[&str]) {
    let f = run(env, &["flush"]);
    assert_eq!(f.status.code(), Some(1), "reported: {}", text(&f));
    let err = String::from_utf8_lossy(&f.stderr);
    for p in problems {
        assert!(err.contains(p), "{p}\n{}", text(&f));
    }
    assert!(
        String::from_utf8_lossy(&f.stdout).contains(&format!("sent {id}")),
        "{}",
        text(&f)
    );
}

/// The only message, which must be the recording `id`'s.
fn only_message_of(mta: &Mta, id: &str) -> Received {
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].header("X-Auditty-Recording").as_deref(), Some(id));
    msgs[0].clone()
}

#[test]
fn a_damaged_meta_json_is_kept_aside_and_the_recording_mailed_with_what_is_known() {
    let mta = Mta::start();
    let env = env_with("", "transport = \"none\"\n");
    let (dir, id) = queued_then_mailed_to(&env, &mta, "damaged-meta-session");
    let header = String::from_utf8(read(&dir.join("typescript")))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let recorded = meta(&dir);
    // Damaged; and a copy of an earlier damage is there already, which must not be overwritten.
    std::fs::write(dir.join("meta.json"), b"{\"id\": \"20261203T1").unwrap();
    std::fs::write(dir.join("meta.json.corrupt"), b"earlier damage").unwrap();
    flush_reporting(
        &env,
        &id,
        &[
            &format!("{id}: {}/meta.json is not valid meta.json", dir.display()),
            &format!("kept as {}/meta.json.corrupt.1", dir.display()),
        ],
    );
    let m = only_message_of(&mta, &id);
    assert!(
        m.body.contains("PROBLEMS") && m.body.contains("meta.json was damaged"),
        "{}",
        m.body
    );
    // What the typescript header tells is salvaged: the start and the terminal.
    let row = |k: &str, v: &str| format!("  {k:<13} {v}\n");
    let start = recorded["start"].as_str().unwrap();
    assert!(m.body.contains(&row("Started:", start)), "{}", m.body);
    let tty = header
        .split_once(" TTY=\"")
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(t, _)| t)
        .unwrap_or_else(|| panic!("no TTY in {header}"));
    assert!(
        m.body.contains(&row("Terminal:", tty)),
        "{header}\n{}",
        m.body
    );
    assert!(String::from_utf8_lossy(&gunzip_and_replay(&m).0).contains("damaged-meta-session"));
    // Delivered once, with the damaged bytes kept next to the rebuilt meta.
    let sent = env.recordings("sent");
    assert_eq!(
        sent.iter().map(|d| name(d)).collect::<Vec<_>>(),
        std::slice::from_ref(&id)
    );
    assert_eq!(
        std::fs::read(sent[0].join("meta.json.corrupt")).unwrap(),
        b"earlier damage"
    );
    assert_eq!(
        std::fs::read(sent[0].join("meta.json.corrupt.1")).unwrap(),
        b"{\"id\": \"20261203T1"
    );
    let rebuilt = meta(&sent[0]);
    assert_eq!(rebuilt["id"], id.as_str());
    assert_eq!(rebuilt["uid"], recorded["uid"]);
    assert_eq!(rebuilt["start_unix"], recorded["start_unix"]);
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", text(&f));
    assert_eq!(mta.files().len(), 1, "mailed once");
}

#[test]
fn a_queued_recording_without_meta_json_is_rebuilt_and_mailed() {
    let mta = Mta::start();
    let env = env_with("", "transport = \"none\"\n");
    let (dir, id) = queued_then_mailed_to(&env, &mta, "lost-meta-session");
    let recorded = meta(&dir);
    std::fs::remove_file(dir.join("meta.json")).unwrap();
    flush_reporting(
        &env,
        &id,
        &[&format!("{id}: queued without meta.json: rebuilt")],
    );
    let m = only_message_of(&mta, &id);
    assert!(
        m.body
            .contains("meta.json was missing from the queued recording (damage or tampering)"),
        "{}",
        m.body
    );
    assert!(String::from_utf8_lossy(&gunzip_and_replay(&m).0).contains("lost-meta-session"));
    assert!(env.recordings("queue").is_empty());
    let sent = env.recordings("sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(meta(&sent[0])["start"], recorded["start"]);
    assert_eq!(meta(&sent[0])["tty"], recorded["tty"]);
}

/// `flush --all` takes a failed recording without meta.json back too (it used to be skipped without a word), and
/// it is mailed with its meta rebuilt.
#[test]
fn a_failed_recording_without_meta_json_comes_back_with_flush_all() {
    let mta = Mta::start();
    let env = env_with("", "transport = \"none\"\n");
    let (dir, id) = queued_then_mailed_to(&env, &mta, "failed-lost-meta-session");
    let failed = env.spool.join("failed").join(&id);
    std::fs::rename(&dir, &failed).unwrap();
    std::fs::remove_file(failed.join("meta.json")).unwrap();
    let f = run(&env, &["flush", "--all"]);
    assert_eq!(f.status.code(), Some(1), "reported: {}", text(&f));
    assert!(
        String::from_utf8_lossy(&f.stderr)
            .contains(&format!("{id}: queued without meta.json: rebuilt")),
        "{}",
        text(&f)
    );
    assert!(
        String::from_utf8_lossy(&f.stdout).contains(&format!("sent {id}")),
        "{}",
        text(&f)
    );
    let m = only_message_of(&mta, &id);
    assert!(String::from_utf8_lossy(&gunzip_and_replay(&m).0).contains("failed-lost-meta-session"));
    assert!(env.recordings("failed").is_empty());
}

#[test]
fn a_queued_recording_whose_typescript_is_missing_is_mailed_once_with_a_notice() {
    let mta = Mta::start();
    let env = env_with("", "transport = \"none\"\n");
    let (dir, id) = queued_then_mailed_to(&env, &mta, "typescript-gone-session");
    let timing = std::fs::read(dir.join("timing")).unwrap();
    std::fs::remove_file(dir.join("typescript")).unwrap();
    flush_reporting(
        &env,
        &id,
        &[&format!("{id}: typescript missing (damage or tampering")],
    );
    let m = only_message_of(&mta, &id);
    assert!(
        m.body
            .contains("typescript is MISSING from the recording in the spool"),
        "{}",
        m.body
    );
    let names: Vec<&str> = m.attachments.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(names, ["timing.gz"], "what is left is mailed");
    assert_eq!(read(&m.attachment("timing.gz").with_extension("")), timing);
    // Gone to sent/ like any other: not retried.
    assert!(env.recordings("queue").is_empty());
    assert_eq!(env.recordings("sent").len(), 1);
    let f = run(&env, &["flush", "--all"]);
    assert!(f.status.success(), "{}", text(&f));
    assert_eq!(mta.files().len(), 1, "mailed once");
}

/// Root's flush reads the spool, which the group can write: a data file swapped for a symlink (to a file only root
/// may read) or a FIFO is never read, compressed, mailed nor removed; the mail says the file is missing.
#[test]
fn a_data_file_swapped_for_a_symlink_or_a_fifo_is_never_read() {
    let mta = Mta::start();
    let env = env_with("", "transport = \"none\"\n");
    let (dir, id) = queued_then_mailed_to(&env, &mta, "swapped-files-session");
    let secret = env.dir.path().join("root-only-secret");
    std::fs::write(&secret, b"root-only-secret-content\n").unwrap();
    std::fs::remove_file(dir.join("typescript")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("typescript")).unwrap();
    std::fs::remove_file(dir.join("timing")).unwrap();
    nix::unistd::mkfifo(
        &dir.join("timing"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    // A flush that opened the FIFO would block for ever: it must finish (bounded by the helper's wait).
    flush_reporting(
        &env,
        &id,
        &[&format!(
            "{id}: typescript, timing missing (damage or tampering"
        )],
    );
    let m = only_message_of(&mta, &id);
    assert!(
        m.body
            .contains("typescript is MISSING from the recording in the spool")
            && m.body
                .contains("timing is MISSING from the recording in the spool"),
        "{}",
        m.body
    );
    assert!(m.attachments.is_empty(), "nothing of the secret is mailed");
    assert!(!m.body.contains("root-only-secret-content"), "{}", m.body);
    let sent = env.recordings("sent").remove(0);
    assert!(
        !sent.join("typescript.gz").exists() && !sent.join("timing.gz").exists(),
        "not compressed into the spool"
    );
    assert!(
        sent.join("typescript")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(read(&secret), b"root-only-secret-content\n");
}

#[test]
fn a_symlink_or_a_plain_file_in_the_spool_is_reported_never_followed_nor_removed() {
    let mta = Mta::start();
    let env = env_with("", "transport = \"none\"\n");
    // A complete recording outside the spool, which a symlink in queue/ points to.
    let (dir, id) = queued_then_mailed_to(&env, &mta, "outside-the-spool");
    let outside = env.dir.path().join(&id);
    std::fs::rename(&dir, &outside).unwrap();
    let before = std::fs::read(outside.join("meta.json")).unwrap();
    let link = env.spool.join("queue").join(&id);
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let file = env
        .spool
        .join("queue")
        .join("20261203T101500Z-alice-00000000000f");
    std::fs::write(&file, b"not a recording").unwrap();
    let failed_link = env
        .spool
        .join("failed")
        .join("20261203T101500Z-alice-0000000000ff");
    std::os::unix::fs::symlink("/etc", &failed_link).unwrap();
    let f = run(&env, &["flush", "--all"]);
    assert_eq!(f.status.code(), Some(1), "reported: {}", text(&f));
    let err = String::from_utf8_lossy(&f.stderr);
    for want in [
        format!(
            "{} is a symlink to {}, not a recording directory",
            link.display(),
            outside.display()
        ),
        format!(
            "{} is a plain file of 15 bytes, not a recording directory",
            file.display()
        ),
        format!(
            "{} is a symlink to /etc, not a recording directory",
            failed_link.display()
        ),
    ] {
        assert!(err.contains(&want), "{want}\n{}", text(&f));
    }
    assert!(f.stdout.is_empty(), "nothing sent: {}", text(&f));
    assert!(mta.files().is_empty(), "the symlink is not followed");
    assert_eq!(std::fs::read(outside.join("meta.json")).unwrap(), before);
    for p in [&link, &file, &failed_link] {
        assert!(
            std::fs::symlink_metadata(p).is_ok(),
            "{} is kept",
            p.display()
        );
    }
    assert!(
        outside.join("typescript").exists(),
        "nothing moved out of it"
    );
}

/// A flush run every minute does not fail every minute for the same stray: it is reported (exit status 1) by the
/// first flush that sees it; the next ones only mention it on stdout and exit 0, until it changes.
#[test]
fn a_stray_is_reported_once_and_again_when_it_changes() {
    let env = env_with("", "transport = \"none\"\n");
    std::fs::create_dir_all(env.spool.join("queue")).unwrap();
    let stray = env
        .spool
        .join("queue")
        .join("20261203T101500Z-alice-00000000000e");
    std::os::unix::fs::symlink("/etc", &stray).unwrap();
    let reported = format!(
        "{} is a symlink to /etc, not a recording directory",
        stray.display()
    );
    let f = run(&env, &["flush"]);
    assert_eq!(f.status.code(), Some(1), "reported: {}", text(&f));
    assert!(
        String::from_utf8_lossy(&f.stderr).contains(&reported),
        "{}",
        text(&f)
    );
    assert!(f.stdout.is_empty(), "{}", text(&f));
    let list = env.spool.join("reported-strays");
    let md = std::fs::symlink_metadata(&list).unwrap();
    assert!(md.is_file(), "{md:?}");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777,
        0o600
    );
    let f = run(&env, &["flush"]);
    assert_eq!(f.status.code(), Some(0), "not again: {}", text(&f));
    assert!(f.stderr.is_empty(), "{}", text(&f));
    assert_eq!(
        String::from_utf8_lossy(&f.stdout),
        format!(
            "1 stray entry reported earlier is still in the spool: {}\n",
            stray.display()
        )
    );
    // Changed: a plain file in the symlink's place is another stray.
    std::fs::remove_file(&stray).unwrap();
    std::fs::write(&stray, b"not a recording").unwrap();
    let f = run(&env, &["flush"]);
    assert_eq!(f.status.code(), Some(1), "reported again: {}", text(&f));
    let err = String::from_utf8_lossy(&f.stderr);
    assert!(
        err.contains(&format!(
            "{} is a plain file of 15 bytes, not a recording directory",
            stray.display()
        )) && !err.contains(&reported),
        "{}",
        text(&f)
    );
    assert!(f.stdout.is_empty(), "{}", text(&f));
    assert_eq!(read(&stray), b"not a recording", "left as it is");
    // Gone: nothing to report, nothing remembered.
    std::fs::remove_file(&stray).unwrap();
    let f = run(&env, &["flush"]);
    assert!(
        f.status.success() && f.stdout.is_empty() && f.stderr.is_empty(),
        "{}",
        text(&f)
    );
    assert!(!list.exists());
}

/// `n` sessions recorded while no transport is configured, each queued with its writer gone.
fn queued_and_settled(env: &Env, n: usize, tag: &str) -> Vec<PathBuf> {
    let mut queued = Vec::new();
    for i in 0..n {
        let mut t = session(env, &format!("echo {tag}-{i}"));
        t.expect(&format!("{tag}-{i}"), T);
        t.wait(T);
        let now = env.wait_for("queue", i + 1, T);
        assert_eq!(now.len(), i + 1);
        // The new one is not necessarily the last by name: ids made in the same second sort by their random part.
        let new = now.iter().find(|d| !queued.contains(*d)).unwrap();
        wait_writer_gone(&meta(new));
        queued = now;
    }
    queued
}

#[test]
fn a_silent_server_is_named_with_its_timeout_and_the_rest_of_the_run_waits_untried() {
    // Stands for a hung MTA: the kernel completes the TCP handshake on this listening socket (the client's connect
    // succeeds), and nobody ever reads or writes on the connection.
    let hung_mta = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hung_mta.local_addr().unwrap().port();
    let env = env_with("", "transport = \"none\"\n");
    let queued = queued_and_settled(&env, 3, "silent-server");
    let before: Vec<serde_json::Value> = queued.iter().map(|d| meta(d)).collect();
    let url = format!("smtp://127.0.0.1:{port}");
    set_config(
        &env,
        "",
        &smtp_mail(&url).replace("timeout = 5", "timeout = 1"),
    );
    let f = run(&env, &["flush"]);
    assert_eq!(f.status.code(), Some(75), "try later: {}", text(&f));
    let err = String::from_utf8_lossy(&f.stderr);
    let first = name(&queued[0]);
    assert!(
        err.contains(&format!(
            "{first} stays queued: {url}: no reply from 127.0.0.1:{port} within mail.timeout = 1 s"
        )),
        "{}",
        text(&f)
    );
    assert!(
        !err.contains("Resource temporarily unavailable"),
        "{}",
        text(&f)
    );
    for d in &queued[1..] {
        assert!(
            err.contains(&format!(
                "{} stays queued: not tried: the server failed for {first}",
                name(d)
            )),
            "{}",
            text(&f)
        );
    }
    // All keep their place; only the one tried is charged an attempt.
    assert_eq!(env.recordings("queue"), queued);
    let m = meta(&queued[0]);
    assert_eq!(m["attempts"], 1, "{m}");
    assert!(
        m["last_error"].as_str().unwrap().contains("no reply from"),
        "{m}"
    );
    for (d, b) in queued[1..].iter().zip(&before[1..]) {
        let m = meta(d);
        for k in ["attempts", "next_try_unix", "last_error"] {
            assert_eq!(m[k], b[k], "{k} of {}", name(d));
        }
    }
    // The server was contacted once in the run.
    hung_mta.set_nonblocking(true).unwrap();
    let connections = std::iter::from_fn(|| hung_mta.accept().ok()).count();
    assert_eq!(connections, 1);
}

#[test]
fn a_server_closing_with_421_is_tried_once_per_flush() {
    // Stands for an MTA that is shutting down or overloaded: it greets every connection with 421 and hangs up.
    let closing_mta = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closing_mta.local_addr().unwrap().port();
    let greeter = closing_mta.try_clone().unwrap();
    std::thread::spawn(move || {
        for c in greeter.incoming() {
            let Ok(mut c) = c else { return };
            let _ = std::io::Write::write_all(
                &mut c,
                b"421 4.3.2 mx.test shutting down, closing channel\r\n",
            );
        }
    });
    let env = env_with("", "transport = \"none\"\n");
    let queued = queued_and_settled(&env, 2, "closing-server");
    let url = format!("smtp://127.0.0.1:{port}");
    set_config(&env, "", &smtp_mail(&url));
    let f = run(&env, &["flush"]);
    assert_eq!(f.status.code(), Some(75), "try later: {}", text(&f));
    let err = String::from_utf8_lossy(&f.stderr);
    let first = name(&queued[0]);
    assert!(
        err.contains(&format!("{first} stays queued: {url}:")) && err.contains("shutting down"),
        "{}",
        text(&f)
    );
    assert!(
        err.contains(&format!(
            "{} stays queued: not tried: the server failed for {first}",
            name(&queued[1])
        )),
        "{}",
        text(&f)
    );
    assert_eq!(env.recordings("queue"), queued);
    assert_eq!(meta(&queued[0])["attempts"], 1);
    assert_eq!(meta(&queued[1])["attempts"], 0);
}

/// A spool writer killed after it had written its footer but before meta.json had the end, or a meta.json damaged
/// since (flush rebuilds it, without the end): flush completes the orphan with the writer's footer kept, not a
/// second one, and takes the end from it (the end reason too where the timing records it: advanced).
#[test]
fn an_abandoned_recording_whose_writer_wrote_its_footer_gets_no_second_footer() {
    for (timing, reason) in [("classic", "incomplete"), ("advanced", "exit")] {
        let env = env_with(
            &format!("[record]\ntiming = \"{timing}\"\n"),
            "transport = \"none\"\n",
        );
        let q = queued_without_transport(
            &env,
            "echo footer-kept-session; exit 3",
            "footer-kept-session",
        );
        let id = name(&q);
        let (ts, tm, recorded) = (
            read(&q.join("typescript")),
            read(&q.join("timing")),
            meta(&q),
        );
        let footer = format!(
            "\nScript done on {} [COMMAND_EXIT_CODE=\"3\"]\n",
            recorded["end"].as_str().unwrap()
        );
        assert!(
            ts.ends_with(footer.as_bytes()),
            "{}",
            String::from_utf8_lossy(&ts)
        );
        // Back in active/ as the writer left it, its meta.json damaged: an orphan whose meta has no end.
        let active = env.spool.join("active").join(&id);
        std::fs::rename(&q, &active).unwrap();
        std::fs::write(active.join("meta.json"), b"{\"id\": \"2026").unwrap();
        let f = run(&env, &["flush"]);
        assert_eq!(
            f.status.code(),
            Some(1),
            "the damage is reported: {}",
            text(&f)
        );
        assert!(
            String::from_utf8_lossy(&f.stdout).contains(&format!("recovered {id}"))
                && String::from_utf8_lossy(&f.stderr).contains("meta.json is not valid meta.json"),
            "{}",
            text(&f)
        );
        let q = env.recordings("queue");
        assert_eq!(q, [env.spool.join("queue").join(&id)], "{timing}");
        let done = read(&q[0].join("typescript"));
        assert_eq!(
            String::from_utf8_lossy(&done)
                .matches("Script done on ")
                .count(),
            1,
            "{timing}: {}",
            String::from_utf8_lossy(&done)
        );
        assert_eq!(
            done, ts,
            "{timing}: the typescript is the writer's, unchanged"
        );
        assert_eq!(
            read(&q[0].join("timing")),
            tm,
            "{timing}: no second END/DURATION"
        );
        let m = meta(&q[0]);
        assert_eq!(m["end"], recorded["end"], "{timing}: {m}");
        assert_eq!(m["exit_status"], 3, "{timing}: {m}");
        assert_eq!(m["end_reason"], reason, "{timing}: {m}");
        assert_eq!(m["bytes_out"], recorded["bytes_out"], "{timing}: {m}");
        assert!(
            m["write_errors"].as_array().unwrap().iter().any(|e| e
                .as_str()
                .unwrap()
                .contains("from that footer, which is kept")),
            "{timing}: {m}"
        );
        // Queued like any recording: the next flush has nothing to report.
        let f = run(&env, &["flush"]);
        assert!(
            f.status.success() && f.stderr.is_empty(),
            "{timing}: {}",
            text(&f)
        );
        assert_eq!(read(&q[0].join("typescript")), ts, "{timing}");
    }
}

/// Clears the immutable attribute of the directories it names when dropped, so a failing test still leaves a spool
/// its temporary directory can be removed with.
struct Immutable(Vec<PathBuf>);

impl Drop for Immutable {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = Command::new("chattr").arg("-i").arg(d).status();
        }
    }
}

#[test]
fn a_mail_accepted_when_neither_meta_json_nor_the_move_can_be_written_is_sent_again_with_the_same_message_id()
 {
    if !rsyslog::available() {
        eprintln!("rsyslogd not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rs = rsyslog::Rsyslog::start(tmp.path());
    let mta = Mta::start();
    let env = Env::new(&format!(
        "[syslog]\ntarget = \"unix:{}\"\n[mail]\n{}",
        rs.socket.display(),
        smtp_mail(&mta.url())
    ));
    // The disk fails between the server's acceptance and the writer's bookkeeping: once the message is stored, the
    // recording's directory is made immutable (even root can then neither write meta.json in it nor rename it).
    let queue = env.spool.join("queue");
    let marked = tmp.path().join("made-immutable");
    mta.on_accept(Some(&format!(
        "for d in {q}/*/; do chattr +i \"$d\"; echo \"$d\" >> {m}; done",
        q = queue.display(),
        m = marked.display()
    )));
    let mut t = session(&env, "echo sent-twice-session");
    t.expect("sent-twice-session", T);
    t.wait(T);
    let first = mta.wait_for(1, T);
    assert_eq!(first.len(), 1);
    let dirs = wait_file_lines(&marked, 1);
    let _guard = Immutable(dirs.iter().map(PathBuf::from).collect());
    let q = env.recordings("queue");
    assert_eq!(q.len(), 1, "{q:?}");
    let id = name(&q[0]);
    wait_writer_gone(&meta(&q[0]));
    mta.on_accept(None);

    // Both failures reach syslog, naming the recording.
    let lines = rs
        .wait_for(T, |l| {
            let mine = |what: &str| {
                l.iter().any(|l| {
                    l.msg.starts_with("event=error ")
                        && l.msg.contains(&format!("rec={id} "))
                        && l.msg.contains(what)
                })
            };
            mine("sent, but cannot update meta.json") && mine("sent, but cannot move it to sent/")
        })
        .unwrap_or_else(|| panic!("syslog: {:?}", rs.lines()));
    assert!(
        lines.iter().any(|l| l.msg.starts_with("event=delivery ")
            && l.msg.contains(&format!("rec={id} "))
            && l.msg.contains("result=sent")),
        "{lines:?}"
    );
    // Nothing on disk says it was sent: it is still queued, as it was before the attempt.
    assert_eq!(env.recordings("queue"), q);
    assert!(env.recordings("sent").is_empty());
    assert!(meta(&q[0])["sent_unix"].is_null(), "{}", meta(&q[0]));

    // The disk is back: the next flush sends it again, as the same message, and this time it is kept as sent.
    drop(_guard);
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", text(&f));
    assert!(
        String::from_utf8_lossy(&f.stdout).contains(&format!("sent {id}")),
        "{}",
        text(&f)
    );
    let msgs = mta.wait_for(2, T);
    assert_eq!(msgs.len(), 2);
    for h in ["Message-ID", "X-Auditty-Recording", "Subject"] {
        assert_eq!(msgs[0].header(h), msgs[1].header(h), "{h}");
    }
    assert_eq!(
        msgs[0].header("X-Auditty-Recording").as_deref(),
        Some(id.as_str())
    );
    assert!(
        msgs[0]
            .header("Message-ID")
            .is_some_and(|m| m.starts_with(&format!("<auditty.{id}@"))),
        "{:?}",
        msgs[0].header("Message-ID")
    );
    for m in &msgs {
        let (out, _, _tmp) = gunzip_and_replay(m);
        assert!(
            String::from_utf8_lossy(&out).contains("sent-twice-session"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
    let sent = env.recordings("sent");
    assert_eq!(sent, [env.spool.join("sent").join(&id)]);
    assert!(meta(&sent[0])["sent_unix"].is_i64(), "{}", meta(&sent[0]));
    // Once recorded as sent, it is never sent again.
    let f = run(&env, &["flush"]);
    assert!(f.status.success() && f.stdout.is_empty(), "{}", text(&f));
    assert_eq!(mta.files().len(), 2);
}

/// Wait (bounded) until `file` holds at least `n` lines; return them.
fn wait_file_lines(file: &Path, n: usize) -> Vec<String> {
    let end = Instant::now() + T;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(Instant::now() < end, "{}: {lines:?}", file.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A spool.dir that is missing, or a file, is an error for `list` as for `flush` (exit 1, saying which), never an
/// empty list that reads as "no recordings".
#[test]
fn list_and_flush_name_a_spool_that_is_missing_or_not_a_directory() {
    let env = Env::new("");
    let file = env.dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    for (dir, says) in [
        (env.dir.path().join("no-such-spool"), "does not exist"),
        (file, "is not a directory"),
    ] {
        std::fs::write(
            &env.config,
            format!(
                "[spool]\ndir = {dir:?}\nrun_dir = {:?}\n[syslog]\ntarget = \"none\"\n[mail]\ntransport = \"none\"\n",
                env.run
            ),
        )
        .unwrap();
        for cmd in ["list", "flush"] {
            let o = run(&env, &[cmd]);
            assert_eq!(o.status.code(), Some(1), "{cmd}: {}", text(&o));
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains(&format!("spool directory {} {says}", dir.display())),
                "{cmd}: {}",
                text(&o)
            );
            assert!(o.stdout.is_empty(), "{cmd}: {}", text(&o));
        }
    }
}

/// A mail.max_size too small for any of the session to fit beside the mail's text: flush still mails each
/// recording (saying the attachments are left out, the recording kept in the spool) and goes on to the next one.
/// Planning the excerpt aborted the whole run, for every queued recording, at every run of the timer.
#[test]
fn a_max_size_smaller_than_the_mail_text_still_delivers_every_recording() {
    let mta = Mta::start();
    let env = env_with("", "transport = \"none\"\n");
    let first = queued_without_transport(&env, "echo tiny-first-session", "tiny-first-session");
    let mut t = session(&env, "echo tiny-second-session");
    t.expect("tiny-second-session", T);
    t.wait(T);
    let q = env.wait_for("queue", 2, T);
    for d in &q {
        wait_writer_gone(&meta(d));
    }
    set_config(
        &env,
        "",
        &format!("{}max_size = \"256K\"\n", smtp_mail(&mta.url())),
    );
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", text(&f));
    let msgs = mta.wait_for(2, T);
    assert_eq!(msgs.len(), 2);
    assert_eq!(env.recordings("sent").len(), 2);
    for m in &msgs {
        assert!(
            m.body.contains(
                "ATTACHMENTS LEFT OUT: even a short excerpt of the session exceeds mail.max_size"
            ),
            "{}",
            m.body
        );
    }
    assert!(ids(&msgs).contains(&name(&first)));
    // Kept whole in the spool, as the mail says.
    for d in env.recordings("sent") {
        assert!(
            d.join("typescript.gz").exists() && d.join("timing.gz").exists(),
            "{d:?}"
        );
    }
}
