//! The recorder runs a command on a PTY, relays its output byte for byte and files a scriptreplay-compatible recording.

mod common;

use std::time::Duration;

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
