//! The recorder runs a command on a PTY, relays its output byte for byte and files a scriptreplay-compatible recording.

mod common;

use std::time::Duration;

use common::pty::Term;
use common::*;

#[test]
fn command_output_exit_code_and_recording() {
    let env = Env::new("");
    let mut s = spawn_session(
        &env,
        &["-c", "printf 'hello\\n'; printf 'tail-no-newline'; exit 7"],
        10_000,
    );
    s.exp_string("hello").unwrap();
    s.exp_string("tail-no-newline").unwrap();
    let st = s.process().wait().unwrap();
    assert!(
        matches!(st, nix::sys::wait::WaitStatus::Exited(_, 7)),
        "{st:?}"
    );
    let recs = env.wait_for("queue", 1, Duration::from_secs(5));
    assert_eq!(recs.len(), 1, "one recording queued");
    let ts = read(&recs[0].join("typescript"));
    let text = String::from_utf8_lossy(&ts);
    assert!(text.starts_with("Script started on "), "{text}");
    assert!(text.contains("COMMAND=\"printf"), "{text}");
    assert!(
        text.contains("hello\r\ntail-no-newline\nScript done on "),
        "{text}"
    );
    assert!(text.ends_with("[COMMAND_EXIT_CODE=\"7\"]\n"), "{text}");
}

/// The login parser (`Cli::parse_args`) accepts the global options after `session` too, as clap's `global` options
/// always were: the recording lands in the spool named by that configuration.
#[test]
fn global_options_after_session_are_honoured() {
    let env = Env::new("");
    let mut c = std::process::Command::new(BIN);
    c.arg("session")
        .arg("--config")
        .arg(&env.config)
        .args(["-o", "record.banner=BANNER-AFTER-SESSION"])
        .args(["-c", "printf 'after-session\\n'"])
        .env("TERM", "dumb")
        .env("SHELL", "/bin/bash");
    let mut s = rexpect::session::spawn_command(c, Some(10_000)).unwrap();
    s.exp_string("BANNER-AFTER-SESSION").unwrap();
    s.exp_string("after-session").unwrap();
    let st = s.process().wait().unwrap();
    assert!(
        matches!(st, nix::sys::wait::WaitStatus::Exited(_, 0)),
        "{st:?}"
    );
    let recs = env.wait_for("queue", 1, Duration::from_secs(5));
    let ts = String::from_utf8_lossy(&read(&recs[0].join("typescript"))).into_owned();
    assert!(ts.contains("after-session\r\n"), "{ts}");
}

/// What the login parser does not accept goes to the full parser: its errors, help and version are clap's usual ones.
#[test]
fn login_parser_falls_back_to_the_full_parser() {
    let o = std::process::Command::new(BIN)
        .args(["session", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--bogus") && err.contains("auditty session"),
        "{err}"
    );
    let o = std::process::Command::new(BIN)
        .args(["session", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("Usage: auditty session") && help.contains("-c <COMMAND>"),
        "{help}"
    );
    let o = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("auditty {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// This user's passwd entry as `getent passwd` gives it, and its shell field.
fn passwd_entry_and_shell() -> (String, String) {
    let uid = nix::unistd::getuid().as_raw().to_string();
    let entry = std::process::Command::new("getent")
        .args(["passwd", &uid])
        .output()
        .unwrap();
    let entry = String::from_utf8(entry.stdout).unwrap();
    let shell = entry.trim_end().rsplit(':').next().unwrap().to_string();
    (entry, shell)
}

/// The shell is the passwd entry's (read as `getent passwd` reads it), not `$SHELL`: a user cannot pick another
/// program to be recorded under, or an unrecorded one (security.md N12).
#[test]
fn the_passwd_shell_is_run_whatever_shell_says() {
    let (entry, passwd_shell) = passwd_entry_and_shell();
    assert!(
        passwd_shell.ends_with("bash"),
        "this test needs a bash user: {entry}"
    );
    let env = Env::new("");
    let mut c = env.cmd(&[
        "session",
        "-c",
        "echo \"shell=$0 bash=${BASH_VERSION:+yes}\"",
    ]);
    c.env("TERM", "dumb").env("SHELL", "/bin/sh");
    let mut s = rexpect::session::spawn_command(c, Some(10_000)).unwrap();
    let name = std::path::Path::new(&passwd_shell)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    s.exp_string(&format!("shell={name} bash=yes")).unwrap();
    s.process().wait().unwrap();
    let recs = env.wait_for("queue", 1, Duration::from_secs(5));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(recs[0].join("meta.json")).unwrap()).unwrap();
    assert_eq!(
        meta["shell"].as_str(),
        Some(passwd_shell.as_str()),
        "{meta}"
    );
}

/// The spool writer keeps no descriptor it was handed by whoever started the login (it runs with the group auditty
/// and outlives the session: docs/security.md N16); the shell still gets the user's.
#[test]
fn the_spool_writer_keeps_no_inherited_descriptor() {
    let env = Env::new("");
    let marker = env.dir.path().join("inherited-marker");
    std::fs::write(&marker, "x").unwrap();
    let file = std::fs::File::open(&marker).unwrap();
    // Not close-on-exec: the session inherits it as a login would inherit one of sshd's or the user's.
    nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let mut t = Term::session(&env, &["-c", "echo shell-is-up; read x"]);
    drop(file);
    t.expect("shell-is-up", 10);
    let points_at_marker = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == marker))
    };
    // The writer's pid, from the recording it is writing.
    let meta = loop_until(Duration::from_secs(10), || {
        let dir = env.recordings("active").into_iter().next()?;
        let text = std::fs::read_to_string(dir.join("meta.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()
    });
    let writer = meta["writer_pid"].as_u64().unwrap() as u32;
    let relay = t.pid().as_raw() as u32;
    assert!(
        points_at_marker(relay),
        "the relay (and so the shell) has it"
    );
    assert!(!points_at_marker(writer), "the writer closed it");
    t.line("");
    assert_eq!(t.wait_code(Duration::from_secs(10)), 0);
}

fn loop_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < end, "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A passwd shell that cannot be executed (here: not a valid program, bound over the real one in a private mount
/// namespace): the login ends at once with the reason on the terminal and status 1, the terminal is given back in
/// its own mode, and the recording says the shell never ran (exit status 127, the header and the footer only).
#[test]
fn a_shell_that_cannot_be_executed_ends_the_login_with_a_recording_that_says_so() {
    let (_, passwd_shell) = passwd_entry_and_shell();
    let env = Env::new("");
    let bogus = env.dir.path().join("not-a-program");
    std::fs::write(&bogus, b"\x7fELF-this-is-no-program").unwrap();
    std::fs::set_permissions(&bogus, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let real = std::fs::canonicalize(&passwd_shell).unwrap();
    let script = format!(
        "mount --bind '{}' '{}' || exit 9; '{BIN}' --config '{}' session -c true; echo \"rc=$?\"; \
         stty -a | grep -o ' -icanon\\| icanon' | sed 's/^/after: /'",
        bogus.display(),
        real.display(),
        env.config.display()
    );
    let mut c = std::process::Command::new("unshare");
    c.args(["-m", "--propagation", "private", "/bin/sh", "-c", &script])
        .env("TERM", "dumb");
    let mut s = rexpect::session::spawn_command(c, Some(10_000)).unwrap();
    s.exp_string(&format!(
        "auditty: cannot execute {passwd_shell}: Exec format error"
    ))
    .unwrap();
    s.exp_string("rc=1").unwrap();
    s.exp_string("after:  icanon").unwrap();
    let st = s.process().wait().unwrap();
    assert!(
        matches!(st, nix::sys::wait::WaitStatus::Exited(_, 0)),
        "{st:?}"
    );
    let recs = env.wait_for("queue", 1, Duration::from_secs(10));
    assert_eq!(recs.len(), 1, "one recording queued");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(recs[0].join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["exit_status"].as_i64(), Some(127), "{meta}");
    let ts = String::from_utf8_lossy(&read(&recs[0].join("typescript"))).into_owned();
    let lines: Vec<&str> = ts.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "{ts}");
    assert!(lines[0].starts_with("Script started on "), "{ts}");
    assert!(
        lines[1].starts_with("Script done on ")
            && lines[1].ends_with("[COMMAND_EXIT_CODE=\"127\"]"),
        "{ts}"
    );
}
