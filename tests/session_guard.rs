//! The nesting guard names a PTY only while the recording's relay holds it: a writer still mailing a finished
//! recording must not make the next login on the same PTY number look "already recorded".

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn registration_is_withdrawn_when_the_session_ends_not_when_mail_is_done() {
    // A mail relay that accepts and never answers: the writer stays busy delivering after the session ends.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let env = Env::new(&format!(
        "[mail]\ntransport = \"smtp://127.0.0.1:{port}\"\nto = \"a@example.com\"\ntimeout = 3\n"
    ));
    let mut s = spawn_session(
        &env,
        &["-c", "ls /run >/dev/null; echo registered; read x"],
        10_000,
    );
    s.exp_string("registered").unwrap();
    let regs: Vec<String> = std::fs::read_dir(&env.run)
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    assert!(
        regs.iter()
            .any(|r| r.contains("relay_pid=") && r.contains("pty=/dev/pts/")),
        "live session registered: {regs:?}"
    );
    s.send_line("").unwrap();
    s.exp_eof().unwrap();
    // The writer is now stuck talking to the black hole (the connection is accepted by the kernel's backlog).
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<_> = std::fs::read_dir(&env.run)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < end,
            "registration still present after the session ended: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let active = env.recordings("active");
    let queued = env.recordings("queue");
    assert_eq!(
        active.len() + queued.len(),
        1,
        "the recording is still being finished or delivered"
    );
    let mut conn = blackhole.accept().unwrap().0;
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let _ = conn.read(&mut [0u8; 16]);
}
