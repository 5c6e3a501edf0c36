//! Tamper resistance with a real setgid installation and an unprivileged recorded user (see docs/security.md):
//! the user cannot list, read, modify or delete spool entries, cannot redirect a privileged session with -o/--config
//! or a config they can write, cannot ptrace or inspect the writer, their shell has none of the group's gids, and
//! killing or stopping their own recorder does not stop the delivery.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::deliver::user::*;
use common::deliver::*;

const T: Duration = Duration::from_secs(10);

fn out(o: &Output) -> String {
    text(o)
}

/// A recorded session of the test user through the setgid binary, on a terminal the user owns.
fn user_session(i: &Install, cmd: &str) -> Term {
    Term::spawn(
        &i.as_user(&[i.bin(), "session", "-c", cmd]),
        Some((i.uid, i.gid)),
    )
}

fn mail_to(mta: &Mta) -> String {
    format!(
        "transport = {:?}\nto = \"auditors@example.com\"\nfrom = \"auditty@test.example\"\ntimeout = 5\nretry_min = 0\n",
        mta.url()
    )
}

/// Wait (bounded) until `n` recordings are in `state` and their writers are done (attempts counted).
fn wait_state(i: &Install, state: &str, n: usize) -> Vec<std::path::PathBuf> {
    let end = Instant::now() + T;
    loop {
        let v = i.state(state);
        if v.len() == n && v.iter().all(|d| meta(d)["attempts"].as_u64() >= Some(1)) {
            return v;
        }
        assert!(Instant::now() < end, "{state}: {v:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sha(p: &std::path::Path) -> String {
    sha256sum(p)
}

#[test]
fn recorded_user_cannot_list_read_modify_or_delete_the_spool() {
    let mut mta = Mta::down();
    let i = Install::new(&mail_to(&mta));
    let mut t = user_session(&i, "echo secret-session-output");
    t.expect("secret-session-output", T);
    assert!(t.wait(T).success());
    let q = wait_state(&i, "queue", 1);
    let dir = &q[0];
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();
    let m = meta(dir);
    assert_eq!(m["uid"], i.uid, "recorded as the test user");
    let before = (sha(&dir.join("typescript.gz")), sha(&dir.join("meta.json")));
    let d = dir.to_str().unwrap();
    let spool = i.spool.to_str().unwrap();

    // Direct access to the files: every attempt is refused by the kernel.
    let attempts: Vec<(&str, Vec<String>)> = vec![
        (
            "list the spool",
            vec!["ls".into(), format!("{spool}/queue")],
        ),
        ("list the spool root", vec!["ls".into(), spool.into()]),
        (
            "read meta.json",
            vec!["cat".into(), format!("{d}/meta.json")],
        ),
        (
            "read the typescript",
            vec!["cat".into(), format!("{d}/typescript.gz")],
        ),
        (
            "delete the recording",
            vec!["rm".into(), "-rf".into(), d.into()],
        ),
        (
            "move it away",
            vec![
                "mv".into(),
                d.into(),
                format!("{}/stolen", i.userdir.display()),
            ],
        ),
        ("add a file", vec!["touch".into(), format!("{d}/evil")]),
        (
            "append to the typescript",
            vec![
                "sh".into(),
                "-c".into(),
                format!("echo x >> {d}/typescript.gz"),
            ],
        ),
        (
            "truncate the typescript",
            vec![
                "truncate".into(),
                "-s0".into(),
                format!("{d}/typescript.gz"),
            ],
        ),
        (
            "chmod the spool",
            vec!["chmod".into(), "777".into(), spool.into()],
        ),
    ];
    for (what, argv) in &attempts {
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        let o = i.as_user(&a).output().unwrap();
        assert!(!o.status.success(), "the user could {what}: {}", out(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("Permission denied")
                || String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"),
            "{what}: {}",
            out(&o)
        );
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains(&id),
            "{what} leaked the id: {}",
            out(&o)
        );
    }
    // The setgid binary drops its group for every subcommand but `session`: no backdoor through it either.
    for args in [
        vec![i.bin(), "list"],
        vec![i.bin(), "list", "--state", "queue"],
        vec![i.bin(), "verify", &id],
        vec![i.bin(), "flush", "--all"],
    ] {
        let o = i.as_user(&args).output().unwrap();
        assert!(!o.status.success(), "{args:?}: {}", out(&o));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("the spool is private"), "{args:?}: {}", out(&o));
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains(&id),
            "{args:?}: {}",
            out(&o)
        );
    }
    // --config with a spool the user controls does not give back the privilege either: it is simply their own
    // unprivileged run, and the real spool stays out of reach.
    let evil = write_file(
        &i.userdir,
        "evil.conf",
        &format!("[spool]\ndir = {spool:?}\n"),
        0o644,
    );
    let o = i
        .as_user(&[i.bin(), "--config", evil.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && !String::from_utf8_lossy(&o.stdout).contains(&id),
        "{}",
        out(&o)
    );

    // Nothing changed; root (the flush timer) delivers it once the MTA is up.
    assert!(dir.exists(), "deleted");
    assert_eq!(
        (sha(&dir.join("typescript.gz")), sha(&dir.join("meta.json"))),
        before
    );
    assert!(!exists(&i.userdir.join("stolen")) && !exists(&dir.join("evil")));
    mta.up();
    let o = i.in_ns(&[i.bin(), "flush"]).output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    assert!(
        String::from_utf8_lossy(&gunzip_and_replay(&msgs[0]).0).contains("secret-session-output")
    );
}

#[test]
fn recorded_user_cannot_redirect_a_privileged_session() {
    let mta = Mta::start();
    let i = Install::new(&mail_to(&mta));
    let mine = i.userdir.join("myspool");
    std::fs::create_dir(&mine).unwrap();
    std::os::unix::fs::chown(&mine, Some(i.uid), Some(i.gid)).unwrap();
    let evil = write_file(
        &i.userdir,
        "evil.conf",
        &format!("[spool]\ndir = {mine:?}\nrun_dir = {mine:?}\n[mail]\ntransport = \"none\"\n"),
        0o644,
    );
    let evil = evil.to_str().unwrap().to_string();
    let spool_opt = format!("spool.dir={}", mine.display());
    for args in [
        vec!["-o", &spool_opt, "session", "-c", "echo hijacked"],
        vec![
            "-o",
            "mail.to=me@evil.example",
            "session",
            "-c",
            "echo hijacked",
        ],
        vec![
            "-o",
            "mail.transport=none",
            "session",
            "-c",
            "echo hijacked",
        ],
        vec!["--config", &evil, "session", "-c", "echo hijacked"],
    ] {
        let mut a = vec![i.bin()];
        a.extend_from_slice(&args);
        let mut t = Term::spawn(&i.as_user(&a), Some((i.uid, i.gid)));
        let st = t.wait(T);
        let o = t.output_text();
        assert_eq!(st.code(), Some(1), "{args:?}: {o}");
        assert!(
            o.contains("--config and -o are refused while auditty runs with its setgid privilege"),
            "{args:?}: {o}"
        );
        assert!(!o.contains("hijacked"), "{args:?} started a shell: {o}");
    }
    assert_eq!(
        std::fs::read_dir(&mine).unwrap().count(),
        0,
        "nothing written where the user pointed"
    );
    assert!(
        i.state("active").is_empty() && i.state("queue").is_empty() && i.state("sent").is_empty()
    );
    assert!(mta.files().is_empty());

    // A configuration the user could have written is not trusted: nothing is recorded with it.
    let text = std::fs::read_to_string(i.path("etc-upper/auditty.conf")).unwrap();
    for (mode, owner, what) in [
        (0o666, 0, "world-writable"),
        (0o664, 0, "group-writable"),
        (0o644, i.uid, "owned by the user"),
    ] {
        i.write_config(&text, mode, owner);
        let mut t = user_session(&i, "cat /proc/self/status; echo shell-ran");
        t.expect("shell-ran", T);
        t.wait(T);
        assert!(
            i.state("active").is_empty() && i.state("queue").is_empty(),
            "{what} config was used"
        );
        let (g, groups) = status_gids(&t.output_text());
        assert!(
            !g.is_empty() && g.iter().all(|x| *x == i.gid),
            "{what}: shell gids {g:?}"
        );
        assert!(!groups.contains(&i.group_gid), "{what}: {groups:?}");
    }
    // And with the root-owned 0644 file everything is recorded and mailed as configured.
    i.write_config(&text, 0o644, 0);
    let mut t = user_session(&i, "echo recorded-with-the-real-config");
    t.wait(T);
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].envelope_to, vec!["auditors@example.com"]);
}

#[test]
fn shell_has_no_group_writer_cannot_be_ptraced_and_killing_it_does_not_stop_delivery() {
    let mta = Mta::start();
    let i = Install::new(&mail_to(&mta));
    let mut t = user_session(
        &i,
        "grep -E '^(Gid|Groups):' /proc/self/status; echo shell-gids-done; exec sleep 60",
    );
    t.expect("shell-gids-done", T);
    // The shell: all four gids are the user's, no supplementary group.
    let (g, groups) = status_gids(&t.output_text());
    assert_eq!(g, vec![i.gid; 4], "shell gids");
    assert!(!groups.contains(&i.group_gid), "shell groups {groups:?}");
    // The relay dropped the group too; the writer kept it (effective, saved, fs), nothing else.
    let (g, groups) = gids(t.pid);
    assert_eq!(g, vec![i.gid; 4], "relay gids");
    assert!(!groups.contains(&i.group_gid));
    let end = Instant::now() + T;
    let (dir, writer) = loop {
        if let Some(d) = i.state("active").into_iter().next()
            && let Some(m) = meta_if_written(&d)
            && let Some(w) = m["writer_pid"].as_u64().filter(|w| *w != 0)
        {
            break (d, w as u32);
        }
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(10));
    };
    let (g, _) = gids(writer);
    assert_eq!(
        g,
        vec![i.gid, i.group_gid, i.group_gid, i.group_gid],
        "writer gids"
    );

    // The user can ptrace their own processes (positive control) but not the writer, nor read its memory or fds.
    let ctl = i
        .as_user(&[
            "sh",
            "-c",
            "sleep 30 & p=$!; gdb -nx -batch -p $p -ex 'info proc' 2>&1; kill $p",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ctl.stdout).contains("exe = '/usr/bin/sleep'"),
        "control: {}",
        out(&ctl)
    );
    let w = writer.to_string();
    let o = i
        .as_user(&["gdb", "-nx", "-batch", "-p", &w, "-ex", "info proc"])
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&o.stdout) + String::from_utf8_lossy(&o.stderr);
    assert!(
        so.contains("ptrace: Operation not permitted"),
        "gdb attached to the writer: {}",
        out(&o)
    );
    let o = i.as_user(&["strace", "-p", &w]).output().unwrap();
    assert!(!o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"),
        "{}",
        out(&o)
    );
    for f in ["environ", "mem", "fd/", "maps", "cwd/"] {
        let p = format!("/proc/{writer}/{f}");
        let tool = if f.ends_with('/') { "ls" } else { "cat" };
        let o = i.as_user(&[tool, &p]).output().unwrap();
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("Permission denied") && o.stdout.is_empty(),
            "{p}: {}",
            out(&o)
        );
    }

    // What the user can do: stop the writer and kill their own session. The delivery still happens: flush (root,
    // from the timer) lets the stopped writer go on, and it mails what was recorded.
    wait_file_contains(&dir.join("typescript"), "shell-gids-done\r\n");
    let o = i.as_user(&["kill", "-STOP", &w]).output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let o = i
        .as_user(&["kill", "-KILL", &t.pid.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    t.wait(T);
    assert!(mta.files().is_empty(), "the stopped writer cannot deliver");
    let o = i.in_ns(&[i.bin(), "flush"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("was stopped (SIGSTOP), which would hold back the recording; sent SIGCONT"),
        "{}",
        out(&o)
    );
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(m.body.contains("KILLED"), "{}", m.body);
    assert!(String::from_utf8_lossy(&gunzip_and_replay(m).0).contains("shell-gids-done"));
}

#[test]
fn killing_both_recorder_processes_as_the_user_is_recovered_by_flush() {
    let mta = Mta::start();
    let i = Install::new(&mail_to(&mta));
    let mut t = user_session(&i, "echo about-to-kill-both; exec sleep 60");
    t.expect("about-to-kill-both", T);
    let end = Instant::now() + T;
    let (dir, writer) = loop {
        if let Some(d) = i.state("active").into_iter().next()
            && let Some(m) = meta_if_written(&d)
            && let Some(w) = m["writer_pid"].as_u64().filter(|w| *w != 0)
        {
            break (d, w as u32);
        }
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(10));
    };
    wait_file_contains(&dir.join("typescript"), "about-to-kill-both\r\n");
    // Both at once: stopped first (the relay first, so that it cannot end the session on seeing its writer die, and
    // be gone before the second kill), then killed.
    let (w, r) = (writer.to_string(), t.pid.to_string());
    let o = i
        .as_user(&[
            "sh",
            "-c",
            &format!("kill -STOP {r} {w} && kill -KILL {w} {r}"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    t.wait(T);
    wait_gone(writer);
    let o = i.in_ns(&[i.bin(), "flush"]).output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].body.contains("INCOMPLETE"), "{}", msgs[0].body);
    let (replayed, ts, _) = gunzip_and_replay(&msgs[0]);
    assert!(String::from_utf8_lossy(&replayed).contains("about-to-kill-both"));
    assert!(String::from_utf8_lossy(&ts).ends_with("[<incomplete: recovered by auditty flush>]\n"));
}

/// A relay killed with SIGKILL puts nothing back itself: its writer, which keeps a descriptor of the user's terminal,
/// clears exclusive mode and restores the settings from before raw mode, so a terminal the user goes on using (the one
/// they ran `su - bob` on, say) is not left raw and unopenable (docs/security.md C11).
#[test]
fn a_killed_relay_leaves_the_users_terminal_openable_and_as_it_was() {
    let mta = Mta::start();
    let i = Install::new(&mail_to(&mta));
    let mut t = user_session(&i, "echo about-to-kill-the-relay; exec sleep 60");
    t.expect("about-to-kill-the-relay", T);
    let end = Instant::now() + T;
    let writer = loop {
        if let Some(d) = i.state("active").into_iter().next()
            && let Some(m) = meta_if_written(&d)
            && let Some(w) = m["writer_pid"].as_u64().filter(|w| *w != 0)
        {
            break w as u32;
        }
        assert!(Instant::now() < end);
        std::thread::sleep(Duration::from_millis(10));
    };
    let pts = t.pts.display().to_string();
    let user_opens = |i: &Install| {
        i.as_user(&["sh", "-c", &format!("exec 3> {pts}")])
            .output()
            .unwrap()
            .status
            .success()
    };
    // Root may open an exclusive terminal (CAP_SYS_ADMIN): stty reads its settings.
    let settings = || {
        let o = std::process::Command::new("stty")
            .args(["-F", &pts, "-a"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", out(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    // While the session runs: exclusive, raw.
    assert!(!user_opens(&i));
    let during = words(&settings());
    assert!(
        during.iter().any(|w| w == "-icanon") && during.iter().any(|w| w == "-isig"),
        "{during:?}"
    );
    let o = i
        .as_user(&["kill", "-KILL", &t.pid.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    t.wait(T);
    wait_gone(writer);
    assert!(user_opens(&i), "the terminal stayed exclusive");
    let after = words(&settings());
    assert!(
        after.iter().any(|w| w == "icanon")
            && after.iter().any(|w| w == "isig")
            && after.iter().any(|w| w == "opost"),
        "the terminal stayed raw: {after:?}"
    );
    // And the recording says how it ended.
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    let (replayed, ts, _) = gunzip_and_replay(&msgs[0]);
    assert!(String::from_utf8_lossy(&replayed).contains("about-to-kill-the-relay"));
    assert!(
        String::from_utf8_lossy(&ts).contains("recorder killed"),
        "{}",
        String::from_utf8_lossy(&ts)
    );
}

/// The guard registry is `root:auditty` 0770: the recorded user owns their registration files (the relay writes them
/// with their uid) but cannot reach them, so they cannot rewrite theirs to make later logins on that PTY look
/// nested, nor read anyone's FIFO path; `auditty hook` still finds their recording, reading the registry with the
/// group before it drops it (docs/security.md N14).
#[test]
fn recorded_user_cannot_rewrite_the_guard_registry_and_the_hook_still_finds_it() {
    let mta = Mta::down();
    let i = Install::new(&mail_to(&mta));
    let run = i.run.display().to_string();
    let script = format!(
        "key=$(tty | sed 's#^/dev/##; s#/#-#g'); echo \"key=$key\"; \
         printf 'id=20200101T000000Z-u-000000000000\\nrelay_pid=1\\nrelay_start=1\\nuid=0\\npty=x\\nfifo=\\n' \
           >{run}/$key 2>/dev/null && echo rewrite-done || echo rewrite-refused; \
         ls {run} >/dev/null 2>&1 && echo list-done || echo list-refused; \
         {bin} hook bash | grep -c '^__auditty_install$'; echo hook-rc=${{PIPESTATUS[0]}}; \
         {bin} session --check; echo check-rc=$?",
        bin = i.bin()
    );
    let mut t = user_session(&i, &format!("bash -c {}", shell_quote(&script)));
    t.expect("check-rc=", T);
    assert!(t.wait(T).success());
    let o = t.output_text();
    assert!(
        o.contains("rewrite-refused") && o.contains("list-refused"),
        "{o}"
    );
    assert!(
        o.contains("\n1\r\nhook-rc=0"),
        "the hook is printed for the user's own recording: {o}"
    );
    assert!(
        o.contains("inside: recording") && o.contains("check-rc=3"),
        "{o}"
    );
    let key = o
        .split("key=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    // The registration (until the writer withdrew it) was never the forged one.
    let recs = wait_state(&i, "queue", 1);
    let id = recs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(!i.run.join(&key).exists(), "withdrawn at the end");
    assert!(o.contains(&format!("inside: recording {id}")), "{o}");
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The user's terminal is exclusive while the session runs (docs/security.md C11): the recorded shell, which holds no
/// descriptor of it, cannot open it again by name to print past the recording or read keys the relay would not see.
/// It is the user's own terminal (owner, mode 0620, as sshd leaves it), which they can open once the session is over.
#[test]
fn the_recorded_shell_cannot_reopen_the_users_terminal() {
    let mta = Mta::start();
    let i = Install::new(&mail_to(&mta));
    let probe = "t=/dev/$(ps -o tty= -p $PPID | tr -d ' '); echo \"outer=$t\"; \
                 if (echo SHOWN-PAST-THE-RECORDING > \"$t\") 2>/dev/null; then echo write-reopened; \
                 else echo write-refused; fi; \
                 if (exec 3< \"$t\") 2>/dev/null; then echo read-reopened; else echo read-refused; fi";
    let mut t = user_session(&i, probe);
    t.expect("read-", T);
    assert!(t.wait(T).success());
    let o = t.output_text();
    assert!(o.contains(&format!("outer={}", t.pts.display())), "{o}");
    assert!(
        o.contains("write-refused") && o.contains("read-refused"),
        "{o}"
    );
    assert!(!o.contains("SHOWN-PAST-THE-RECORDING"), "{o}");
    // Once the session is over, the terminal is the user's to open again.
    let back = format!("echo back-to-normal > {}", t.pts.display());
    let o = i.as_user(&["sh", "-c", &back]).output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    // The recording has what the shell printed, the refusals included.
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    let (replayed, _, _) = gunzip_and_replay(&msgs[0]);
    let replayed = String::from_utf8_lossy(&replayed);
    assert!(
        replayed.contains("write-refused") && replayed.contains("read-refused"),
        "{replayed}"
    );
}
