//! What the shell prints reaches the user and the recording byte for byte, and the session's exit status is the
//! shell's: exit codes, death by signal, a tail without newline, binary output, a 10 MB burst.

mod common;

use std::time::Duration;

use common::pty::Term;
use common::rec::Rec;
use common::*;

const T: Duration = Duration::from_secs(10);

/// Run `-c cmd` to completion; return auditty's exit code, what the user saw, and the queued recording.
fn run_command(env: &Env, cmd: &str) -> (i32, Vec<u8>, Rec) {
    let mut t = Term::session(env, &["-c", cmd]);
    let code = t.wait_code(Duration::from_secs(30));
    let rec = Rec::queued(env, T);
    (code, std::mem::take(&mut t.out), rec)
}

#[test]
fn exit_code_is_the_shells() {
    let env = Env::new("");
    let (code, seen, rec) = run_command(&env, "echo bye; exit 3");
    assert_eq!(code, 3);
    assert_eq!(seen, b"bye\r\n");
    assert_eq!(rec.data, b"bye\r\n");
    assert_eq!(rec.footer_status(), "COMMAND_EXIT_CODE=\"3\"");
    assert_eq!(rec.meta_i64("exit_status"), Some(3));
    assert_eq!(rec.meta_str("end_reason"), Some("exit"));
    assert!(
        rec.header.starts_with("Script started on ")
            && rec.header.contains("COMMAND=\"echo bye; exit 3\"")
            && rec.header.ends_with("COLUMNS=\"80\" LINES=\"24\"]"),
        "{}",
        rec.header
    );
}

#[test]
fn shell_killed_by_signal_gives_128_plus_signal() {
    for (sig, code) in [("TERM", 143), ("KILL", 137), ("SEGV", 139)] {
        let env = Env::new("");
        let (got, _, rec) = run_command(&env, &format!("kill -{sig} $$"));
        assert_eq!(got, code, "SIG{sig}");
        assert_eq!(
            rec.footer_status(),
            format!("COMMAND_EXIT_CODE=\"{code}\""),
            "SIG{sig}"
        );
        assert_eq!(rec.meta_i64("exit_status"), Some(i64::from(code)));
    }
}

#[test]
fn tail_without_newline_is_recorded_exactly() {
    let env = Env::new("");
    let (code, seen, rec) = run_command(&env, "printf 'one\\ntwo'");
    assert_eq!(code, 0);
    assert_eq!(seen, b"one\r\ntwo");
    assert_eq!(rec.data, b"one\r\ntwo");
    let raw = read(&rec.dir.join("typescript"));
    let raw = String::from_utf8(raw).unwrap();
    assert!(
        raw.contains("\none\r\ntwo\nScript done on ")
            && raw.ends_with("[COMMAND_EXIT_CODE=\"0\"]\n"),
        "{raw:?}"
    );
    assert_eq!(rec.timing_output_bytes(), rec.data.len());
    rec.assert_timing_well_formed();
}

#[test]
fn binary_and_invalid_utf8_output_is_byte_exact() {
    let env = Env::new("");
    let mut payload: Vec<u8> = (0..=255u8).collect();
    payload.extend((0..=255u8).rev());
    // Invalid UTF-8: lone continuation bytes, overlong forms, surrogates, a truncated sequence at the very end.
    payload.extend_from_slice(
        b"\x80\xbf\xc0\xaf\xe0\x80\xaf\xed\xa0\x80\xf8\x88\x80\x80\x80\xff\xfe\xc3\x28",
    );
    payload.extend_from_slice("é€😀".as_bytes());
    payload.extend_from_slice(&"😀".as_bytes()[..2]);
    let file = env.dir.path().join("binary");
    std::fs::write(&file, &payload).unwrap();
    // -opost: the PTY passes the bytes untouched (no \n → \r\n), so the recording must equal the file.
    let (code, seen, rec) = run_command(&env, &format!("stty -opost; cat '{}'", file.display()));
    assert_eq!(code, 0);
    assert!(
        seen == payload,
        "the user's terminal got other bytes than printed"
    );
    assert!(
        rec.data == payload,
        "the typescript holds other bytes than printed"
    );
    assert_eq!(rec.timing_output_bytes(), payload.len());
    assert_eq!(rec.meta_i64("bytes_out"), Some(payload.len() as i64));
}

#[test]
fn ten_megabyte_burst_is_recorded_completely() {
    let env = Env::new("");
    // 10 MB of varied text lines (some long, some with UTF-8 and ANSI colours).
    let mut text = Vec::with_capacity(10 << 20);
    let mut x: u32 = 12345;
    let mut n = 0u64;
    while text.len() < 10_000_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let len = (x >> 16) as usize % 300;
        text.extend_from_slice(format!("\x1b[3{}m{n:08} ", n % 8).as_bytes());
        for i in 0..len {
            text.push(b'a' + ((x as usize >> 3) + i) as u8 % 26);
        }
        if n.is_multiple_of(7) {
            text.extend_from_slice("é–😀".as_bytes());
        }
        text.extend_from_slice(b"\x1b[0m\n");
        n += 1;
    }
    let file = env.dir.path().join("burst");
    std::fs::write(&file, &text).unwrap();
    let (code, seen, rec) = run_command(&env, &format!("cat '{}'", file.display()));
    assert_eq!(code, 0);
    // ONLCR on the recorded PTY: every \n arrives as \r\n.
    let mut expected = Vec::with_capacity(text.len() + text.len() / 50);
    for &b in &text {
        if b == b'\n' {
            expected.push(b'\r');
        }
        expected.push(b);
    }
    assert_eq!(seen.len(), expected.len(), "bytes the user saw");
    assert!(seen == expected, "the user saw other bytes than printed");
    assert_eq!(rec.data.len(), expected.len(), "bytes in the typescript");
    assert!(
        rec.data == expected,
        "the typescript differs from what was printed"
    );
    assert_eq!(
        rec.timing_output_bytes(),
        rec.data.len(),
        "timing byte counts"
    );
    rec.assert_timing_well_formed();
    assert_eq!(rec.meta_i64("bytes_out"), Some(expected.len() as i64));
    assert_eq!(rec.footer_status(), "COMMAND_EXIT_CODE=\"0\"");
}

#[test]
fn sessions_that_end_at_once_are_always_recorded() {
    // The shell dies before the writer has settled: the hangup that follows (SIGHUP to the foreground process
    // group, which the writer is still in for a moment after its fork) must not kill it.
    let env = Env::new("");
    let n = 30;
    for _ in 0..n {
        let mut t = Term::session(&env, &["-c", "kill -KILL $$"]);
        assert_eq!(t.wait_code(T), 137);
        t.hang_up();
    }
    let recs = env.wait_for("queue", n, T);
    assert_eq!(recs.len(), n, "active: {:?}", env.recordings("active"));
    for d in recs {
        let rec = Rec::load(&d);
        assert_eq!(
            rec.footer_status(),
            "COMMAND_EXIT_CODE=\"137\"",
            "{}",
            d.display()
        );
    }
}
