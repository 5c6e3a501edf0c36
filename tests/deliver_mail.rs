//! Delivery end to end with a real SMTP server (msmtpd on loopback), a real sendmail (msmtp), and the real gzip and
//! scriptreplay on what arrives: normal exit, hangup, SIGKILL of the relay, SIGKILL of both processes + flush,
//! head+tail truncation, and header-injection attempts.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::deliver::*;
use common::*;

const T: Duration = Duration::from_secs(10);

/// The replayed output must be the typescript's data, byte for byte (scriptreplay adds one final newline).
fn assert_replays(m: &Received) -> Vec<u8> {
    let (replayed, ts, _d) = gunzip_and_replay(m);
    let mut want = typescript_body(&ts).to_vec();
    want.push(b'\n');
    assert_eq!(
        String::from_utf8_lossy(&replayed),
        String::from_utf8_lossy(&want),
        "scriptreplay output differs from the typescript"
    );
    assert_eq!(replayed, want);
    ts
}

/// Every attachment's SHA-256 (computed by sha256sum) is in the body.
fn assert_sums_in_body(m: &Received) {
    for (name, _, path) in &m.attachments {
        let sum = sha256sum(path);
        assert!(
            m.body.contains(&sum),
            "sha256 of {name} ({sum}) not in the body:\n{}",
            m.body
        );
    }
}

/// The one recording, once it is in `state` and its writer is gone. The mail arrives before the recording moves:
/// the writer records the delivery in meta.json and moves it to sent/ once the server has accepted the mail.
fn only_recording(env: &Env, state: &str) -> (std::path::PathBuf, String) {
    let v = env.wait_for(state, 1, T);
    assert_eq!(v.len(), 1, "{state}: {v:?}");
    wait_writer_gone(&meta(&v[0]));
    let id = v[0].file_name().unwrap().to_str().unwrap().to_string();
    (v[0].clone(), id)
}

#[test]
fn normal_exit_mails_within_2s_and_replays_byte_exactly() {
    let mta = Mta::start();
    let env = env_with("", &smtp_mail(&mta.url()));
    let mut t = session(
        &env,
        "printf 'hello\\n'; for i in 1 2 3; do printf '\\033[1mline %s\\033[0m\\n' $i; done; printf 'caf\\303\\251\\tend\\n'; exit 7",
    );
    t.expect("line 3", T);
    let st = t.wait(T);
    let exited = Instant::now();
    assert_eq!(st.code(), Some(7));
    let msgs = mta.wait_for(1, Duration::from_secs(2));
    assert_eq!(msgs.len(), 1, "one mail within 2 s of the exit");
    assert!(
        exited.elapsed() <= Duration::from_secs(2),
        "{:?}",
        exited.elapsed()
    );
    let m = &msgs[0];
    let (sent_dir, id) = only_recording(&env, "sent");
    assert!(env.recordings("queue").is_empty() && env.recordings("active").is_empty());

    // Envelope and headers.
    assert_eq!(m.envelope_from, "auditty@test.example");
    assert_eq!(
        m.envelope_to,
        vec!["auditors@example.com", "second@example.org"]
    );
    assert!(m.defects.is_empty(), "{:?}", m.defects);
    assert_eq!(m.content_type, "multipart/mixed");
    assert_eq!(
        m.header("X-Auditty-Recording").as_deref(),
        Some(id.as_str())
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        m.header("Message-ID").unwrap(),
        format!("<auditty.{id}@{}>", host.trim())
    );
    let subject = m.header("Subject").unwrap();
    assert!(
        subject.starts_with(&format!("[auditty] root@{} pts/", host.trim())),
        "{subject}"
    );
    assert!(subject.ends_with("s, exit 7)"), "{subject}");
    let names: Vec<&str> = m.attachments.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(names, ["typescript.gz", "timing.gz"]);

    // The body an auditor acts on.
    for want in [
        "User:         root (uid 0)",
        "the shell exited with status 7",
        "gunzip typescript.gz timing.gz && scriptreplay -t timing typescript",
        &format!("auditty play {id}"),
        "Started:      20",
        "Ended:        20",
    ] {
        assert!(m.body.contains(want), "missing {want:?} in\n{}", m.body);
    }
    assert!(!m.body.contains("PROBLEMS"), "{}", m.body);
    assert_sums_in_body(m);

    // Real gunzip + scriptreplay, byte for byte; the footer carries the exit code.
    let ts = assert_replays(m);
    let tx = String::from_utf8_lossy(&ts);
    assert!(tx.contains("hello\r\n\x1b[1mline 1\x1b[0m\r\n"), "{tx}");
    assert!(tx.contains("café\tend\r\n"), "{tx}");
    assert!(tx.ends_with("[COMMAND_EXIT_CODE=\"7\"]\n"), "{tx}");
    // The uncompressed typescript's sum is in the body too.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("ts"), &ts).unwrap();
    assert!(m.body.contains(&sha256sum(&d.path().join("ts"))));

    // The spool keeps exactly what was mailed; verify and list agree.
    assert_eq!(
        read(&sent_dir.join("typescript.gz")),
        read(&m.attachment("typescript.gz"))
    );
    let meta = meta(&sent_dir);
    assert_eq!(meta["attempts"], 1);
    assert!(meta["sent_unix"].as_i64().is_some());
    assert_eq!(meta["sent_to"][0], "auditors@example.com");
    let v = run(&env, &["verify", &id]);
    assert!(v.status.success(), "{}", text_of(&v));
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("OK       typescript.gz"),
        "{}",
        text_of(&v)
    );
    let l = run(
        &env,
        &[
            "list",
            "--state",
            "sent",
            "--user",
            "root",
            "--since",
            "2000-01-01",
        ],
    );
    assert!(l.status.success(), "{}", text_of(&l));
    let out = String::from_utf8_lossy(&l.stdout);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with(&id)
            && out.contains(" sent ")
            && out.contains("exit=7")
            && out.contains("attempts=1"),
        "{out}"
    );
    let l = run(&env, &["list", "--user", "nobody-else"]);
    assert!(l.stdout.is_empty(), "{}", text_of(&l));
}

fn text_of(o: &std::process::Output) -> String {
    text(o)
}

#[test]
fn hangup_still_mails_marked_hangup() {
    let mta = Mta::start();
    let env = env_with("", &smtp_mail(&mta.url()));
    let mut t = session(&env, "echo before-hangup; exec sleep 30");
    t.expect("before-hangup", T);
    t.hangup();
    t.wait(T);
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    let subject = m.header("Subject").unwrap();
    assert!(subject.ends_with(", hangup)"), "{subject}");
    assert!(
        m.body.contains("HANGUP: the user's terminal went away"),
        "{}",
        m.body
    );
    let ts = assert_replays(m);
    assert!(String::from_utf8_lossy(&ts).contains("before-hangup\r\n"));
    assert_sums_in_body(m);
    let (dir, _) = only_recording(&env, "sent");
    assert_eq!(meta(&dir)["end_reason"], "hangup");
}

#[test]
fn sigkill_of_the_relay_still_mails_marked_killed() {
    let mta = Mta::start();
    let env = env_with("", &smtp_mail(&mta.url()));
    let mut t = session(&env, "echo before-kill; exec sleep 30");
    t.expect("before-kill", T);
    let (_, _writer) = active_writer(&env);
    kill9(t.pid);
    t.wait(T);
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(m.header("Subject").unwrap().ends_with(", killed)"));
    assert!(
        m.body
            .contains("KILLED: the recorder's relay process vanished"),
        "{}",
        m.body
    );
    let ts = assert_replays(m);
    let tx = String::from_utf8_lossy(&ts);
    assert!(tx.contains("before-kill\r\n"), "{tx}");
    assert!(tx.ends_with(" [<recorder killed>]\n"), "{tx}");
}

#[test]
fn sigkill_of_both_processes_is_recovered_and_delivered_by_flush() {
    let mta = Mta::start();
    let env = env_with("", &smtp_mail(&mta.url()));
    let mut t = session(&env, "echo before-double-kill; exec sleep 30");
    t.expect("before-double-kill", T);
    let (dir, writer) = active_writer(&env);
    wait_file_contains(&dir.join("typescript"), "before-double-kill\r\n");
    // Stop the relay first: otherwise it notices the writer's death and ends the session itself before its own
    // SIGKILL arrives (a race the test would lose under load).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(t.pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    kill9(writer);
    kill9(t.pid);
    t.wait(T);
    wait_gone(writer);
    // Nothing can deliver it but flush: the recording is an orphan in active/.
    assert_eq!(env.recordings("active").len(), 1);
    assert!(mta.files().is_empty());
    let l = run(&env, &["list", "--state", "active"]);
    assert!(
        String::from_utf8_lossy(&l.stdout).contains("orphaned"),
        "{}",
        text(&l)
    );

    let orphan_id = dir.file_name().unwrap().to_str().unwrap().to_string();
    let fifo_dirs = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("auditty-{orphan_id}-"))
            })
            .map(|e| e.path())
            .collect()
    };
    assert_eq!(
        fifo_dirs().len(),
        1,
        "the session's command FIFO directory is left behind"
    );
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", text(&f));
    let out = String::from_utf8_lossy(&f.stdout);
    assert!(
        fifo_dirs().is_empty(),
        "flush removes it: {:?}",
        fifo_dirs()
    );
    assert!(
        out.contains("recovered ") && out.contains("sent "),
        "{}",
        text(&f)
    );
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(m.header("Subject").unwrap().ends_with(", incomplete)"));
    assert!(
        m.body
            .contains("INCOMPLETE: both recorder processes vanished"),
        "{}",
        m.body
    );
    assert!(m.body.contains("completed by auditty flush"), "{}", m.body);
    let ts = assert_replays(m);
    let tx = String::from_utf8_lossy(&ts);
    assert!(tx.contains("before-double-kill\r\n"), "{tx}");
    assert!(
        tx.ends_with(" [<incomplete: recovered by auditty flush>]\n"),
        "{tx}"
    );
    assert_sums_in_body(m);
    let (sent, id) = only_recording(&env, "sent");
    assert_eq!(meta(&sent)["end_reason"], "incomplete");
    // Idempotent: a second flush sends nothing more.
    let f = run(&env, &["flush"]);
    assert!(f.status.success() && f.stdout.is_empty(), "{}", text(&f));
    assert_eq!(mta.files().len(), 1);
    let v = run(&env, &["verify", &id]);
    assert!(v.status.success(), "{}", text(&v));
}

#[test]
fn sendmail_transport_with_msmtp_delivers() {
    let mta = Mta::start();
    let mail = format!(
        "transport = \"sendmail\"\nsendmail_path = {:?}\nto = \"auditors@example.com\"\nfrom = \"auditty@test.example\"\ntimeout = 5\n",
        mta.sendmail()
    );
    let env = env_with("", &mail);
    let mut t = session(&env, "echo via-sendmail; exit 0");
    t.wait(T);
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.envelope_from, "auditty@test.example");
    assert_eq!(m.envelope_to, vec!["auditors@example.com"]);
    let ts = assert_replays(m);
    assert!(String::from_utf8_lossy(&ts).contains("via-sendmail\r\n"));
    assert_sums_in_body(m);
    only_recording(&env, "sent");
}

#[test]
fn oversized_session_is_mailed_head_and_tail_and_kept_whole() {
    let mta = Mta::start();
    // keep_days = 0 removes delivered recordings at once, but not one whose mail held only head and tail.
    let env = env_with(
        "keep_days = 0",
        &(smtp_mail(&mta.url()) + "max_size = \"1M\"\n"),
    );
    // ~3.2 MB of incompressible text: the attachments cannot fit 1 MiB.
    let mut t = session(
        &env,
        "echo HEAD-MARK; head -c 2400000 /dev/urandom | base64 -w 120; echo TAIL-MARK; exit 0",
    );
    t.wait(Duration::from_secs(60));
    let msgs = mta.wait_for(1, Duration::from_secs(20));
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    let size = std::fs::metadata(&m.path).unwrap().len();
    assert!(
        size <= 1 << 20,
        "message is {size} bytes, over mail.max_size"
    );
    assert_eq!(
        m.header("X-Auditty-Truncated").as_deref(),
        Some("head+tail")
    );
    assert!(
        m.body
            .contains("ATTACHMENTS TRUNCATED to fit mail.max_size (1,048,576 bytes)"),
        "{}",
        m.body
    );
    // Both parts are counted: "the first N and the last M bytes".
    let count = |after: &str| -> u64 {
        let at = m
            .body
            .find(after)
            .unwrap_or_else(|| panic!("{after:?} in {}", m.body))
            + after.len();
        m.body[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    };
    assert!(
        count("they hold the first ") > 0 && count(" and the last ") > 0,
        "{}",
        m.body
    );
    // The excerpt is itself a valid recording: replays byte-exactly, head and tail present, the cut is marked.
    let ts = assert_replays(m);
    let tx = String::from_utf8_lossy(&ts);
    assert!(tx.starts_with("Script started on "));
    assert!(tx.contains("HEAD-MARK\r\n"));
    assert!(tx.contains("TAIL-MARK\r\n"));
    assert!(tx.contains("bytes of this session are left out here"));
    assert!(
        tx.ends_with("[COMMAND_EXIT_CODE=\"0\"]\n"),
        "{}",
        &tx[tx.len() - 100..]
    );
    assert_sums_in_body(m);
    // The full recording stays in the spool, and its sums are in the body.
    let (dir, id) = only_recording(&env, "sent");
    assert!(meta(&dir)["mail_truncated"].as_bool().unwrap());
    assert!(
        m.body.contains(&sha256sum(&dir.join("typescript.gz"))),
        "{}",
        m.body
    );
    let v = run(&env, &["verify", &id]);
    assert!(v.status.success(), "{}", common::deliver::text(&v));
    assert!(std::fs::metadata(dir.join("typescript.gz")).unwrap().len() > 1 << 20);
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", common::deliver::text(&f));
    assert_eq!(
        env.recordings("sent"),
        vec![dir.clone()],
        "the only full copy is kept"
    );
}

/// Hostname and command text are user-influenced: neither can add a header, a recipient or a MIME part.
#[test]
fn header_injection_in_hostname_and_command_is_neutralised() {
    let mta = Mta::start();
    // mail.from unset: the sender address is derived from the (hostile) host name.
    let mail = format!(
        "transport = {:?}\nto = \"auditors@example.com\"\nsubject = \"[auditty] {{user}}@{{host}} {{tty}}\"\n",
        mta.url()
    );
    let env = env_with("", &mail);
    let evil_host = "evil\r\nBcc: attacker@evil.example\r\nX-Injected: host";
    let evil_cmd = "echo ran; : \"\r\nBcc: attacker@evil.example\r\nX-Injected: cmd\r\n\r\n--boundary\r\nContent-Type: text/html\r\n\"";
    let mut c = Command::new("unshare");
    c.args(["-u", "/usr/bin/python3", "-c"])
        .arg("import socket, os, sys; socket.sethostname(sys.argv[1].encode()); os.execv(sys.argv[2], sys.argv[2:])")
        .arg(evil_host)
        .arg(BIN)
        .arg("--config")
        .arg(&env.config)
        .args(["session", "-c", evil_cmd])
        .env("TERM", "dumb")
        .env("SHELL", "/bin/bash");
    let mut t = Term::spawn(&c, None);
    t.expect("ran", T);
    t.wait(T);
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(
        m.envelope_to,
        vec!["auditors@example.com"],
        "no extra recipient"
    );
    assert!(m.defects.is_empty(), "{:?}", m.defects);
    for (k, v) in &m.raw_headers {
        assert!(
            !k.eq_ignore_ascii_case("Bcc") && !k.eq_ignore_ascii_case("X-Injected"),
            "injected header {k}: {v}"
        );
        let unfolded = v
            .replace("\r\n\t", " ")
            .replace("\r\n ", " ")
            .replace("\n\t", " ")
            .replace("\n ", " ");
        assert!(!unfolded.contains(['\r', '\n']), "raw {k}: {v:?}");
    }
    let raw = std::fs::read_to_string(&m.path).unwrap();
    assert!(
        !raw.contains("\nBcc:") && !raw.contains("\nX-Injected:"),
        "{raw}"
    );
    let subject = m.header("Subject").unwrap();
    assert!(
        subject.contains("evil\\x0d\\x0aBcc: attacker@evil.example"),
        "{subject}"
    );
    assert_eq!(
        m.header("From").unwrap(),
        "auditty@evilBccattackerevil.exampleX-Injectedhost"
    );
    assert!(
        m.header("Message-ID")
            .unwrap()
            .ends_with("@evilBccattackerevil.exampleX-Injectedhost>")
    );
    // Exactly the body and two attachments: the fake boundary in the command did not create a part.
    let names: Vec<&str> = m.attachments.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(names, ["typescript.gz", "timing.gz"]);
    assert!(
        m.body
            .contains("evil\\x0d\\x0aBcc: attacker@evil.example\\x0d\\x0aX-Injected: host"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("\\x0d\\x0a\\x0d\\x0a--boundary\\x0d\\x0aContent-Type: text/html"),
        "{}",
        m.body
    );
    assert_replays(m);
}

#[test]
fn input_log_is_attached_when_recorded() {
    let mta = Mta::start();
    let env = env_with("", &smtp_mail(&mta.url()));
    let mut conf = std::fs::read_to_string(&env.config).unwrap();
    conf.push_str("[record]\ninput = true\n");
    std::fs::write(&env.config, conf).unwrap();
    let mut t = session(&env, "read -r line; echo got-$line; exit 0");
    t.send("typed-by-the-user\r");
    t.expect("got-typed-by-the-user", T);
    t.wait(T);
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    let names: Vec<&str> = m.attachments.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(names, ["typescript.gz", "timing.gz", "input.gz"]);
    assert!(
        m.body.contains(
            "gunzip typescript.gz timing.gz input.gz && scriptreplay -T timing -O typescript"
        ),
        "{}",
        m.body
    );
    assert_sums_in_body(m);
    // Advanced timing: replay the output stream, and the input stream, with the real scriptreplay.
    let d = tempfile::tempdir().unwrap();
    for (name, _, path) in &m.attachments {
        std::fs::copy(path, d.path().join(name)).unwrap();
    }
    let st = Command::new("gunzip")
        .args(&names)
        .current_dir(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    let ts = std::fs::read(d.path().join("typescript")).unwrap();
    let o = Command::new("scriptreplay")
        .args(["-T", "timing", "-O", "typescript", "-m", "0.0001"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut want = typescript_body(&ts).to_vec();
    want.push(b'\n');
    assert_eq!(o.stdout, want);
    let o = Command::new("scriptreplay")
        .args(["-T", "timing", "-I", "input", "-x", "in", "-m", "0.0001"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("typed-by-the-user"),
        "{:?}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// The writer of a session just started: the relay's child that is still auditty once the shell's child has exec'd.
fn writer_of(relay: u32) -> Option<u32> {
    let end = Instant::now() + T;
    while Instant::now() < end {
        let children =
            std::fs::read_to_string(format!("/proc/{relay}/task/{relay}/children")).ok()?;
        let pids: Vec<u32> = children
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        let comm = |p: u32| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        if pids.len() == 2 {
            let ours: Vec<u32> = pids
                .iter()
                .copied()
                .filter(|p| comm(*p).trim() == "auditty")
                .collect();
            if ours.len() == 1 {
                return Some(ours[0]);
            }
        }
        std::thread::yield_now();
    }
    None
}

fn state_of(pid: u32) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    s.rfind(')')
        .and_then(|i| s[i + 1..].split_whitespace().next())
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_login_whose_recorder_was_killed_before_the_recording_existed_is_reported_by_flush() {
    if !rsyslog::available() {
        eprintln!("rsyslogd not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rs = rsyslog::Rsyslog::start(tmp.path());
    let mta = Mta::start();
    // The writer creates the recording 20 ms after its fork (once the shell has started up): stop it before that, as
    // a user racing their own login from another session would, then kill both processes. Under heavy load the test
    // may be too late; it then tries again with a new login (the recording made meanwhile is not what it tests).
    let mut attempt = 0;
    let (env, relay, writer, id) = loop {
        attempt += 1;
        assert!(
            attempt <= 10,
            "never stopped a writer before it created the recording"
        );
        let env = Env::new(&format!(
            "[syslog]\ntarget = \"unix:{}\"\n[mail]\n{}",
            rs.socket.display(),
            smtp_mail(&mta.url())
        ));
        let mut t = session(&env, "exec sleep 30");
        let writer = writer_of(t.pid).expect("the session's spool writer");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(writer as i32),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .unwrap();
        while state_of(writer) != "T" {
            std::thread::yield_now();
        }
        let unborn =
            std::fs::read_dir(env.spool.join("active")).map_or(true, |mut d| d.next().is_none());
        kill9(t.pid);
        t.wait(T);
        if !unborn {
            kill9(writer);
            wait_gone(writer);
            continue;
        }
        let regs: Vec<_> = std::fs::read_dir(&env.run)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(
            !regs.is_empty(),
            "the relay registered the login before the shell started"
        );
        let text = std::fs::read_to_string(&regs[0]).unwrap();
        assert!(text.contains(&format!("relay_pid={}\n", t.pid)), "{text}");
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("id="))
            .unwrap()
            .to_string();
        break (env, t.pid, writer, id);
    };
    assert!(env.recordings("active").is_empty() && mta.files().is_empty());
    // A flush right away leaves the registration alone: a writer whose relay has just gone still withdraws it.
    let f = run(&env, &["flush"]);
    assert!(f.status.success(), "{}", text(&f));
    assert!(
        !String::from_utf8_lossy(&f.stderr).contains("NOT RECORDED"),
        "{}",
        text(&f)
    );
    // A minute later (the registrations are made older instead of waiting) it is taken for what it is.
    let past = std::time::SystemTime::now() - Duration::from_secs(120);
    for e in std::fs::read_dir(&env.run).unwrap().flatten() {
        std::fs::File::options()
            .write(true)
            .open(e.path())
            .unwrap()
            .set_modified(past)
            .unwrap();
    }
    // Two flushes at once (a timer's and an administrator's): one notice, one mail, no error.
    let flushes: Vec<_> = [env.cmd(&["flush"]), env.cmd(&["flush"])]
        .into_iter()
        .map(|mut c| {
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for f in &flushes {
        assert!(f.status.success(), "{}", text(f));
    }
    let all = |pick: fn(&std::process::Output) -> &Vec<u8>| {
        flushes
            .iter()
            .map(|f| String::from_utf8_lossy(pick(f)).into_owned())
            .collect::<String>()
    };
    let (out, err) = (all(|f| &f.stdout), all(|f| &f.stderr));
    assert_eq!(
        err.matches(&format!("{id} was NOT RECORDED")).count(),
        1,
        "{out}\n{err}"
    );
    assert!(!err.contains("cannot queue"), "{err}");
    assert_eq!(
        out.matches(&format!("sent {id}")).count(),
        1,
        "{out}\n{err}"
    );
    assert!(
        std::fs::read_dir(&env.run).unwrap().next().is_none(),
        "the registrations have served"
    );
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(
        m.header("Subject").unwrap().ends_with(", NOT RECORDED)"),
        "{:?}",
        m.header("Subject")
    );
    assert!(
        m.body
            .contains("NOT RECORDED: both recorder processes were killed"),
        "{}",
        m.body
    );
    assert!(
        m.body.contains(&format!("the relay (pid {relay})")),
        "{}",
        m.body
    );
    assert!(m.body.contains(&id), "{}", m.body);
    let (_, ts, _d) = gunzip_and_replay(m);
    let ts = String::from_utf8_lossy(&ts).into_owned();
    assert!(
        ts.starts_with("Script started on ")
            && ts.ends_with(" [<not recorded: the recorder was killed as the login began>]\n"),
        "{ts}"
    );
    let line = rs
        .wait_for(T, |l| {
            l.iter().any(|l| {
                l.msg.contains(&format!("rec={id} ")) && l.msg.contains("was not recorded")
            })
        })
        .expect("the syslog line");
    assert!(line.iter().any(|l| l.msg.starts_with("event=error ")));
    // The writer, held all along (one killed as well is the usual case), goes on now: it must not make a second
    // recording of the id; it says why and ends.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(writer as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    wait_gone(writer);
    rs.wait_for(T, |l| {
        l.iter().any(|l| {
            l.msg.contains(&format!("rec={id} "))
                && l.msg
                    .contains("already reported this session as not recorded")
        })
    })
    .expect("the writer's syslog line");
    assert!(
        env.recordings("active").is_empty(),
        "{:?}",
        env.recordings("active")
    );
    // Reported once.
    let f = run(&env, &["flush"]);
    assert!(
        !String::from_utf8_lossy(&f.stderr).contains("NOT RECORDED"),
        "{}",
        text(&f)
    );
    let sent = env.recordings("sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(meta(&sent[0])["end_reason"], "never_started");
    assert_eq!(mta.messages().len(), 1);
    let l = run(&env, &["list"]);
    let row = String::from_utf8_lossy(&l.stdout)
        .lines()
        .find(|r| r.starts_with(&id))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{id} not listed: {}", text(&l)));
    assert!(row.contains(" NOT-RECORDED "), "{row}");
}
