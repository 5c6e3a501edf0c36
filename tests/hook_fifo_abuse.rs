//! The command FIFO sits in a directory the recorded user owns, and they can write anything into it: neither a
//! node swapped for something else nor a flood keeps the spool writer from recording and finishing
//! (docs/security.md N13).

mod common;

use std::time::Duration;

use common::pty::{self, Term};
use common::*;

fn fifo_env(tmp: &tempfile::TempDir) -> Env {
    let fifo_dir = tmp.path().join("fifos");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    Env::new(&format!("[hook]\nfifo_dir = {fifo_dir:?}\n"))
}

/// `cmd` replaced by a symlink to /dev/zero before the writer opens it (it does so once the shell has started up):
/// the writer does not follow it, records the session and queues it.
#[test]
fn a_fifo_swapped_for_a_symlink_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let env = fifo_env(&tmp);
    let mut t = Term::session(
        &env,
        &[
            "-c",
            "until [ -p \"$AUDITTY_FIFO\" ]; do sleep 0.01; done; d=${AUDITTY_FIFO%/*}; ln -s /dev/zero \"$d/z\" && mv -f \"$d/z\" \"$AUDITTY_FIFO\" && echo swapped-ok; \
             sleep 0.2; echo after-swap",
        ],
    );
    t.expect("swapped-ok", 10);
    t.expect("after-swap", 10);
    assert_eq!(t.wait_code(Duration::from_secs(10)), 0);
    let recs = env.wait_for("queue", 1, Duration::from_secs(20));
    assert_eq!(recs.len(), 1, "queued: {:?}", env.recordings("active"));
    let ts = String::from_utf8_lossy(&read(&recs[0].join("typescript"))).into_owned();
    assert!(
        ts.contains("after-swap") && ts.contains("COMMAND_EXIT_CODE=\"0\""),
        "{ts}"
    );
}

// The spool writer makes the FIFO just after the shell has started (the shell's hook waits for it, bounded): these
// commands, which use it directly, wait for it first.

/// A process of the user's that keeps the FIFO full (in a session of its own, so the session's end does not stop
/// it; the writer's last close of the FIFO does): the recording is still complete and queued.
#[test]
fn a_flooded_fifo_does_not_stall_the_recording() {
    let tmp = tempfile::tempdir().unwrap();
    let env = fifo_env(&tmp);
    let mut t = Term::session(
        &env,
        &[
            "-c",
            "until [ -p \"$AUDITTY_FIFO\" ]; do sleep 0.01; done; setsid sh -c 'exec yes AUDITTY >\"$AUDITTY_FIFO\"' </dev/null >/dev/null 2>&1 & echo flooder=$!; \
             sleep 0.5; seq 1 20000 | tail -1; echo end-of-session",
        ],
    );
    let out = String::from_utf8_lossy(&t.expect("end-of-session", 30)).into_owned();
    let flooder: i32 = out
        .split("flooder=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .expect("flooder pid");
    assert!(pty::alive(flooder), "the flood runs as the session ends");
    let _ = t.wait_code(Duration::from_secs(20));
    let recs = env.wait_for("queue", 1, Duration::from_secs(30));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(flooder),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert_eq!(recs.len(), 1, "queued: {:?}", env.recordings("active"));
    let ts = String::from_utf8_lossy(&read(&recs[0].join("typescript"))).into_owned();
    assert!(
        ts.contains("20000") && ts.contains("end-of-session"),
        "{ts}"
    );
}
