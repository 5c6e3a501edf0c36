//! Without a terminal on stdin (scp, sftp, rsync, `ssh host cmd`) the command runs as it is: bytes pass through
//! untouched, auditty prints nothing, records nothing, and the command's exit status and signal dispositions are
//! its own.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;

/// Nothing was created in the spool, not even the state directories.
fn assert_nothing_recorded(env: &Env) {
    let entries: Vec<_> = std::fs::read_dir(&env.spool).unwrap().flatten().collect();
    assert!(entries.is_empty(), "spool touched: {entries:?}");
}

#[test]
fn piped_bytes_pass_through_untouched() {
    let env = Env::new("");
    let mut data: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut x: u32 = 7;
    while data.len() < (1 << 20) {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        data.push((x >> 24) as u8);
    }
    data.extend(0..=255u8);
    let mut c = env.cmd(&["session", "-c", "cat"]);
    c.env("SHELL", "/bin/bash")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = data.clone();
    let feeder = std::thread::spawn(move || {
        stdin.write_all(&input).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        out.stdout == data,
        "bytes changed on the way ({} vs {})",
        out.stdout.len(),
        data.len()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "auditty printed something"
    );
    assert_nothing_recorded(&env);
}

#[test]
fn stdin_from_a_file_keeps_the_exit_status_and_prints_nothing_else() {
    let env = Env::new("");
    let file = env.dir.path().join("in");
    std::fs::write(&file, b"line one\nline two").unwrap();
    let out = env
        .cmd(&["session", "-c", "cat; echo; exit 5"])
        .env("SHELL", "/bin/bash")
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(out.stdout, b"line one\nline two\n");
    assert_eq!(out.stderr, b"");
    assert_nothing_recorded(&env);
}

#[test]
fn command_gets_default_signal_dispositions() {
    let env = Env::new("");
    let out = env
        .cmd(&[
            "session",
            "-c",
            "yes | head -1; echo \"${PIPESTATUS[*]}\"; grep -E '^Sig(Ign|Blk)' /proc/self/status",
        ])
        .env("SHELL", "/bin/bash")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "y\n141 0\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no \"Broken pipe\""
    );
}

/// Started with stdin, stdout and stderr closed (a careless cron job, or someone who wants a file that auditty opens
/// while setgid to become a standard stream), auditty opens them on /dev/null first, so the command sees fds 0-2
/// open on /dev/null and nothing else, and runs as usual.
#[test]
fn closed_standard_streams_are_reopened_on_dev_null() {
    let env = Env::new("");
    let listing = env.dir.path().join("fds");
    let inner = format!(
        "for fd in 0 1 2; do readlink /proc/self/fd/$fd || echo closed; done > {}; exit 7",
        listing.display()
    );
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"exec 0<&- 1>&- 2>&- "$@""#)
        .arg("sh")
        .arg(BIN)
        .arg("--config")
        .arg(&env.config)
        .args(["session", "-c", &inner])
        .env("SHELL", "/bin/bash")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    // readlink runs with fd 1 on the listing; fds 0 and 2 are what the command inherited from auditty.
    let text = std::fs::read_to_string(&listing).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "/dev/null", "stdin: {text}");
    assert!(lines[1].ends_with("/fds"), "stdout: {text}");
    assert_eq!(lines[2], "/dev/null", "stderr: {text}");
    assert_nothing_recorded(&env);
}
