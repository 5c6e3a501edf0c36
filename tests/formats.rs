//! The format contract: recordings made by the real binary on a real PTY are read back byte for byte by util-linux
//! `scriptreplay` (2.38) and by `auditty play`, and have the shape real `script` writes.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::formats::*;
use common::*;
use nix::sys::wait::WaitStatus;

/// Run `auditty session <args>` on a PTY, let `drive` talk to it, and check its exit status.
fn record(
    env: &Env,
    args: &[&str],
    drive: impl FnOnce(&mut rexpect::session::PtySession),
    status: i32,
) -> std::path::PathBuf {
    let mut full = vec!["--config", s(&env.config), "session"];
    full.extend_from_slice(args);
    let mut session = spawn_sized(BIN, &full, env.dir.path());
    drive(&mut session);
    let s = session;
    let st = s.process().wait().unwrap();
    assert!(
        matches!(st, WaitStatus::Exited(_, c) if c == status),
        "{st:?}"
    );
    finished(env)
}

/// Output with colours, UTF-8, bytes that are not UTF-8, a 30 kB burst (several chunks) and a tail with no newline.
const MIXED: &str = r"printf 'hello\n'; printf '\033[1;31mred\033[0m caf\303\251 \342\202\254 \001\377\n'; head -c 30000 /dev/zero | tr '\0' x; printf 'tail-no-newline'; exit 5";

#[test]
fn classic_recording_replays_byte_for_byte() {
    let env = Env::new("");
    let dir = record(
        &env,
        &["-c", MIXED],
        |s| {
            s.exp_string("tail-no-newline").unwrap();
        },
        5,
    );
    let ts = split_data(&file(&dir, "typescript"));
    let body = &ts.body;
    assert!(
        body.starts_with(b"hello\r\n\x1b[1;31mred\x1b[0m caf\xc3\xa9 \xe2\x82\xac \x01\xff\r\n")
    );
    assert!(body.ends_with(b"tail-no-newline"));
    assert_eq!(body.iter().filter(|&&c| c == b'x').count(), 30_000);
    assert_eq!(parse_footer(&ts.footer).1, 5);
    let timing = classic_lines(&file(&dir, "timing"));
    assert!(timing.len() >= 2, "several chunks: {timing:?}");
    assert_eq!(
        timing.iter().map(|t| t.1).sum::<u64>(),
        body.len() as u64,
        "timing sizes cover the recorded bytes exactly"
    );
    assert!(
        try_file(&dir, "input").is_none(),
        "no input file unless record.input"
    );

    // util-linux scriptreplay prints the recorded bytes, then one "\n" of its own.
    let plain = plain_copy(&dir);
    let mut want = body.clone();
    want.push(b'\n');
    assert_eq!(
        scriptreplay(plain.path(), &["-t", "timing", "typescript"]),
        want
    );
    assert_eq!(scriptreplay(plain.path(), &["timing", "typescript"]), want);
    assert_eq!(
        scriptreplay(plain.path(), &["timing"]),
        want,
        "typescript is the default"
    );
    assert_eq!(
        scriptreplay(plain.path(), &["-T", "timing", "-O", "typescript"]),
        want
    );

    // auditty play: exactly the recorded bytes, from every way of naming the recording.
    let gz = gz_copy(&dir);
    let id = dir.file_name().unwrap().to_str().unwrap();
    for args in [
        vec![s(&dir)],
        vec![s(plain.path())],
        vec!["--max-delay", "0", s(&plain.path().join("typescript"))],
        vec![s(gz.path())],
        vec![s(&gz.path().join("typescript.gz"))],
    ] {
        assert!(play_ok(None, &args) == *body, "play {args:?}");
    }
    assert!(play_ok(Some(&env), &[id]) == *body, "by id");
    assert!(
        play_ok(Some(&env), &[&id[..id.len() - 4]]) == *body,
        "by id prefix"
    );

    // A classic recording has no input stream.
    let o = play(None, &["--stream", "in", s(&dir)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no input stream"),
        "{o:?}"
    );
    let o = play(Some(&env), &["20991231T"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no recording 20991231T"),
        "{o:?}"
    );
    // A complete recording plays without a word on stderr.
    let o = play(None, &["--max-delay", "0", s(&dir)]);
    assert!(o.status.success() && o.stderr.is_empty(), "{o:?}");
}

/// Data the timing does not cover (a timing file cut short, e.g. by a full disk) is not played, and play says so.
#[test]
fn play_warns_about_data_the_timing_does_not_cover() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("typescript"),
        "Script started on 2026-12-03 10:00:00+00:00 [TERM=\"dumb\" TTY=\"/dev/pts/1\" COLUMNS=\"80\" LINES=\"24\"]\n\
         abcdef\nScript done on 2026-12-03 10:00:01+00:00 [COMMAND_EXIT_CODE=\"0\"]\n",
    )
    .unwrap();
    std::fs::write(d.path().join("timing"), "0.000001 1\n").unwrap();
    let o = play(None, &["--max-delay", "0", s(d.path())]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(o.stdout, b"a");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("times 1 of the 6 bytes") && err.contains("the last 5"),
        "{err}"
    );
}

/// The H entries script writes, in its order, for a `-c` session on a terminal with input logged.
const H_ORDER: [&str; 12] = [
    "START_TIME",
    "TERM",
    "TTY",
    "COLUMNS",
    "LINES",
    "SHELL",
    "COMMAND",
    "TIMING_LOG",
    "OUTPUT_LOG",
    "INPUT_LOG",
    "DURATION",
    "EXIT_CODE",
];

#[test]
fn advanced_recording_with_input_replays_both_streams() {
    let env = Env::new("");
    let cmd = r#"stty echo; read -p 'name: ' n; printf 'hi %s\n' "$n"; exit 3"#;
    let dir = record(
        &env,
        &["-o", "record.input=true", "-c", cmd],
        |s| {
            s.exp_string("name: ").unwrap();
            typed(s, "alice\r");
            s.exp_string("hi alice").unwrap();
        },
        3,
    );
    let out = split_data(&file(&dir, "typescript"));
    let inp = split_data(&file(&dir, "input"));
    assert_eq!(out.body, b"name: alice\r\nhi alice\r\n");
    assert_eq!(inp.body, b"alice\r");
    assert_eq!(
        inp.header, out.header,
        "each data file gets the same header"
    );
    assert_eq!(parse_footer(&inp.footer).1, 3);

    let t = file(&dir, "timing");
    let lines = advanced_lines(&t);
    assert_eq!(info_names(&lines), H_ORDER);
    assert_eq!(info(&lines, "EXIT_CODE"), Some("3"));
    assert_eq!(info(&lines, "COMMAND"), Some(cmd));
    assert_eq!(info(&lines, "OUTPUT_LOG"), Some("typescript"));
    assert_eq!(info(&lines, "INPUT_LOG"), Some("input"));
    assert!(is_delay(info(&lines, "DURATION").unwrap()));
    assert_eq!(stream_bytes(&lines, 'O'), out.body.len() as u64);
    assert_eq!(stream_bytes(&lines, 'I'), inp.body.len() as u64);
    let first_data = lines
        .iter()
        .position(|l| !matches!(l, Adv::Info(..)))
        .unwrap();
    assert!(
        lines[..first_data]
            .iter()
            .all(|l| matches!(l, Adv::Info(..)))
            && lines[lines.len() - 2..]
                .iter()
                .all(|l| matches!(l, Adv::Info(..))),
        "H lines first, DURATION and EXIT_CODE last: {lines:?}"
    );

    let plain = plain_copy(&dir);
    let p = plain.path();
    let nl = |b: &[u8]| [b, b"\n"].concat();
    assert_eq!(
        scriptreplay(p, &["-T", "timing", "-O", "typescript"]),
        nl(&out.body)
    );
    assert_eq!(
        scriptreplay(
            p,
            &["-T", "timing", "-I", "input", "-x", "in", "-c", "never"]
        ),
        nl(&inp.body)
    );
    // Default --cr-mode auto shows the keystrokes' CR as LF.
    assert_eq!(
        scriptreplay(p, &["-T", "timing", "-I", "input", "-x", "in"]),
        b"alice\n\n"
    );
    // --summary lists the H entries as "%10s: %s", in order.
    let want: String = lines
        .iter()
        .filter_map(|l| match l {
            Adv::Info(n, v) => Some(format!("{n:>10}:  {v}\n")),
            _ => None,
        })
        .collect::<String>()
        + "\n";
    let summary = String::from_utf8(scriptreplay(p, &["--summary", "-T", "timing"])).unwrap();
    assert_eq!(summary, want);
    assert!(summary.starts_with("START_TIME: "), "{summary}");
    assert!(summary.ends_with(" EXIT_CODE:  3\n\n"), "{summary}");

    let gz = gz_copy(&dir);
    for d in [dir.as_path(), p, gz.path()] {
        assert_eq!(play_ok(None, &[s(d)]), out.body, "{}", d.display());
        assert_eq!(
            play_ok(None, &["--stream", "in", s(d)]),
            inp.body,
            "{}",
            d.display()
        );
    }
}

#[test]
fn advanced_timing_without_input() {
    let env = Env::new("");
    let dir = record(
        &env,
        &["-o", "record.timing=advanced", "-c", MIXED],
        |s| {
            s.exp_string("tail-no-newline").unwrap();
        },
        5,
    );
    let out = split_data(&file(&dir, "typescript"));
    let lines = advanced_lines(&file(&dir, "timing"));
    let names = info_names(&lines);
    let without_input: Vec<&str> = H_ORDER
        .iter()
        .copied()
        .filter(|n| *n != "INPUT_LOG")
        .collect();
    assert_eq!(names, without_input);
    assert_eq!(stream_bytes(&lines, 'I'), 0);
    assert_eq!(stream_bytes(&lines, 'O'), out.body.len() as u64);
    assert!(try_file(&dir, "input").is_none());
    let plain = plain_copy(&dir);
    assert_eq!(
        scriptreplay(plain.path(), &["-T", "timing", "-O", "typescript"]),
        [&out.body[..], b"\n"].concat()
    );
    assert_eq!(play_ok(None, &[s(&dir)]), out.body);
    assert_eq!(play_ok(None, &[s(gz_copy(&dir).path())]), out.body);
    let o = play(None, &["--stream", "in", s(&dir)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no input stream"),
        "{o:?}"
    );
}

#[test]
fn keystrokes_typed_with_echo_off_are_never_recorded() {
    let env = Env::new("");
    // bash's `read -s` turns echo off before it prints its prompt, so "pw: " is a safe cue to type the secret.
    let cmd = r#"stty echo; read -s -p 'pw: ' pw; echo; read -p 'name: ' n; echo "[${#pw}/$n]""#;
    let dir = record(
        &env,
        &["-o", "record.input=true", "-c", cmd],
        |s| {
            s.exp_string("pw: ").unwrap();
            typed(s, "hunter2\r");
            s.exp_string("name: ").unwrap();
            typed(s, "alice\r");
            s.exp_string("[7/alice]").unwrap();
        },
        0,
    );
    let inp = split_data(&file(&dir, "input")).body;
    let out = split_data(&file(&dir, "typescript")).body;
    let has = |h: &[u8], n: &[u8]| h.windows(n.len()).any(|w| w == n);
    assert_eq!(inp, b"alice\r", "only what was typed with echo on");
    assert!(!has(&out, b"hunter2") && !has(&file(&dir, "timing"), b"hunter2"));
    let meta: serde_json::Value = serde_json::from_slice(&file(&dir, "meta.json")).unwrap();
    assert_eq!(meta["input_withheld_bytes"], 8, "{meta}");
    assert_eq!(meta["bytes_in"], 6, "{meta}");
    let lines = advanced_lines(&file(&dir, "timing"));
    assert_eq!(stream_bytes(&lines, 'I'), 6);
    assert_eq!(play_ok(None, &["--stream", "in", s(&dir)]), b"alice\r");
}

#[test]
fn speed_and_max_delay_bound_the_replay() {
    let env = Env::new("");
    let dir = record(
        &env,
        &["-c", "printf 'one\\n'; sleep 1; printf 'two\\n'"],
        |s| {
            s.exp_string("two").unwrap();
        },
        0,
    );
    let body = split_data(&file(&dir, "typescript")).body;
    assert_eq!(body, b"one\r\ntwo\r\n");
    let timing = classic_lines(&file(&dir, "timing"));
    let gap = Duration::from_micros(timing.iter().map(|t| t.0).max().unwrap());
    assert!(gap >= Duration::from_secs(1), "{timing:?}");
    let timed = |args: &[&str]| {
        let t = Instant::now();
        let out = play_ok(None, args);
        assert_eq!(out, body, "{args:?}");
        t.elapsed()
    };
    let full = timed(&[s(&dir)]);
    assert!(full >= gap, "paced: {full:?} < recorded gap {gap:?}");
    let clamped = timed(&["--max-delay", "0.05", s(&dir)]);
    assert!(clamped < gap * 3 / 4, "--max-delay 0.05 took {clamped:?}");
    let fast = timed(&["--speed", "20", s(&dir)]);
    assert!(fast < gap * 3 / 4, "--speed 20 took {fast:?}");
    for bad in [
        &["--speed", "0", s(&dir)][..],
        &["--speed", "nan", s(&dir)][..],
        &["--max-delay=-1", s(&dir)][..],
    ] {
        // A command line auditty does not understand: usage, exit 2 (auditty(1), EXIT STATUS).
        let o = play(None, bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?} {o:?}");
        assert!(o.stdout.is_empty());
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("expected a number"),
            "{bad:?} {o:?}"
        );
    }
}

/// Write `timing` into a copy of the recording at `dir`, play it, and expect a clear error.
fn garbage(dir: &Path, timing: &[u8], typescript: Option<&[u8]>, want: &[&str]) {
    let t = plain_copy(dir);
    std::fs::write(t.path().join("timing"), timing).unwrap();
    if let Some(ts) = typescript {
        std::fs::write(t.path().join("typescript"), ts).unwrap();
    }
    let o = play(None, &["--max-delay", "0", s(t.path())]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{want:?}: {o:?}");
    assert!(
        o.stdout.is_empty(),
        "nothing played before the error: {o:?}"
    );
    assert!(err.starts_with("auditty: "), "{err}");
    assert!(err.contains("timing"), "names the file: {err}");
    for w in want {
        assert!(err.contains(w), "{err:?} should say {w:?}");
    }
    assert!(!err.contains("panick"), "{err}");
}

#[test]
fn garbage_timing_gives_the_line_number_and_fails() {
    let env = Env::new("");
    let dir = record(
        &env,
        &[
            "-o",
            "record.timing=advanced",
            "-c",
            "printf 'a\\n'; printf 'bb\\n'; head -c 9000 /dev/zero",
        ],
        |s| {
            s.exp_eof().unwrap();
        },
        0,
    );
    let t = String::from_utf8(file(&dir, "timing")).unwrap();
    let ts = file(&dir, "typescript");
    let lines: Vec<&str> = t.lines().collect();
    let first_o = lines.iter().position(|l| l.starts_with("O ")).unwrap();
    let last_o = lines.iter().rposition(|l| l.starts_with("O ")).unwrap();
    let join = |v: &[String]| v.iter().map(|l| format!("{l}\n")).collect::<String>();
    let with = |i: usize, new: &str| {
        let mut v: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        v[i] = new.to_string();
        join(&v).into_bytes()
    };
    let at = |i: usize| format!("timing: line {}: ", i + 1);

    garbage(
        &dir,
        &with(first_o, "O 1.5 2"),
        None,
        &[&at(first_o), "6 fractional digits"],
    );
    garbage(
        &dir,
        &with(first_o, "O 0.1234567 2"),
        None,
        &[&at(first_o), "6 fractional digits"],
    );
    garbage(
        &dir,
        &with(first_o, "O 0.000001 two"),
        None,
        &[&at(first_o), "bad size"],
    );
    garbage(
        &dir,
        &with(first_o, "X 0.000001 2"),
        None,
        &[&at(first_o), "unknown entry type 'X'"],
    );
    garbage(
        &dir,
        &with(first_o, "O 0.000001 2 "),
        None,
        &[&at(first_o), "trailing whitespace"],
    );
    garbage(&dir, t.replace('\n', "\r\n").as_bytes(), None, &["CRLF"]);
    // One byte more than recorded would reach into the footer: still past the end of the recorded data.
    let (d, n) = lines[last_o][2..].split_once(' ').unwrap();
    let one_more = with(last_o, &format!("O {d} {}", n.parse::<u64>().unwrap() + 1));
    garbage(&dir, &one_more, None, &[&at(last_o), "runs past the end"]);
    let huge = with(last_o, "O 0.000001 18446744073709551615");
    garbage(&dir, &huge, None, &[&at(last_o), "runs past the end"]);
    garbage(
        &dir,
        &t.as_bytes()[..t.len() - 3],
        None,
        &[&format!("line {}: ", lines.len()), "truncated"],
    );
    // A typescript cut short: the timing entries no longer fit.
    let cut = &ts[..ts.iter().position(|&c| c == b'\n').unwrap() + 4];
    garbage(&dir, t.as_bytes(), Some(cut), &["runs past the end of"]);
    // Random bytes, classic (a digit first) and advanced.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    garbage(&dir, &noise, None, &["line "]);
    noise[0] = b'7';
    garbage(&dir, &noise, None, &["line 1: "]);
    // A corrupt .gz is an error naming the file, not a panic.
    let g = gz_copy(&dir);
    std::fs::write(g.path().join("timing.gz"), &noise).unwrap();
    let o = play(None, &[s(g.path())]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("timing.gz"),
        "{o:?}"
    );
}

/// Run real util-linux `script -q <args>` on a PTY in `dir`, driving it like our sessions.
fn real_script(
    dir: &Path,
    args: &[&str],
    drive: impl FnOnce(&mut rexpect::session::PtySession),
    status: i32,
) {
    let mut full = vec!["-q"];
    full.extend_from_slice(args);
    let mut s = spawn_sized("script", &full, dir);
    drive(&mut s);
    let st = s.process().wait().unwrap();
    assert!(
        matches!(st, WaitStatus::Exited(_, c) if c == status),
        "{st:?}"
    );
}

fn same_header_shape(ours: &str, theirs: &str) {
    let (t1, f1) = parse_header(ours);
    let (t2, f2) = parse_header(theirs);
    assert!(
        is_script_time(&t1) && is_script_time(&t2),
        "{ours:?} {theirs:?}"
    );
    let names = |f: &[(String, String)]| f.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&f1), ["COMMAND", "TERM", "TTY", "COLUMNS", "LINES"]);
    assert_eq!(names(&f1), names(&f2));
    for (a, b) in f1.iter().zip(&f2) {
        if a.0 == "TTY" {
            assert!(
                a.1.starts_with("/dev/pts/") && b.1.starts_with("/dev/pts/"),
                "{a:?} {b:?}"
            );
        } else {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn classic_files_have_the_shape_script_writes() {
    let cmd = r#"printf 'a\nb"c\n'; exit 4"#;
    let theirs = tempfile::tempdir().unwrap();
    real_script(
        theirs.path(),
        &["-T", "timing", "-c", cmd, "typescript"],
        |s| {
            s.exp_eof().unwrap();
        },
        0,
    );
    let env = Env::new("");
    let dir = record(
        &env,
        &["-c", cmd],
        |s| {
            s.exp_eof().unwrap();
        },
        4,
    );
    let ours = split_data(&file(&dir, "typescript"));
    let real = split_data(&file(theirs.path(), "typescript"));
    same_header_shape(&ours.header, &real.header);
    assert_eq!(ours.body, real.body);
    assert_eq!(ours.body, b"a\r\nb\"c\r\n");
    let (t1, c1) = parse_footer(&ours.footer);
    let (t2, c2) = parse_footer(&real.footer);
    assert!(is_script_time(&t1) && is_script_time(&t2));
    assert_eq!((c1, c2), (4, 4));
    for d in [&dir, &theirs.path().to_path_buf()] {
        let lines = classic_lines(&file(d, "timing"));
        assert_eq!(
            lines.iter().map(|l| l.1).sum::<u64>(),
            ours.body.len() as u64
        );
    }
    // Our player reads the real tool's files too.
    assert_eq!(play_ok(None, &[s(theirs.path())]), real.body);
}

#[test]
fn advanced_files_have_the_shape_script_writes() {
    let cmd = r#"stty echo; read -p 'name: ' n; echo "hi $n"; exit 4"#;
    let drive = |s: &mut rexpect::session::PtySession| {
        s.exp_string("name: ").unwrap();
        typed(s, "bob\r");
        s.exp_eof().unwrap();
    };
    let theirs = tempfile::tempdir().unwrap();
    real_script(
        theirs.path(),
        &[
            "-m",
            "advanced",
            "-T",
            "timing",
            "-I",
            "input",
            "-O",
            "typescript",
            "-c",
            cmd,
        ],
        drive,
        0,
    );
    let env = Env::new("");
    let dir = record(&env, &["-o", "record.input=true", "-c", cmd], drive, 4);
    for name in ["typescript", "input"] {
        let ours = split_data(&file(&dir, name));
        let real = split_data(&file(theirs.path(), name));
        same_header_shape(&ours.header, &real.header);
        assert_eq!(ours.body, real.body, "{name}");
        assert_eq!(parse_footer(&ours.footer).1, 4);
        assert_eq!(parse_footer(&real.footer).1, 4);
    }
    assert_eq!(split_data(&file(&dir, "input")).body, b"bob\r");
    let ours = advanced_lines(&file(&dir, "timing"));
    let real = advanced_lines(&file(theirs.path(), "timing"));
    assert_eq!(info_names(&ours), info_names(&real));
    assert_eq!(info_names(&ours), H_ORDER);
    for n in [
        "TERM",
        "COLUMNS",
        "LINES",
        "SHELL",
        "COMMAND",
        "TIMING_LOG",
        "OUTPUT_LOG",
        "INPUT_LOG",
        "EXIT_CODE",
    ] {
        assert_eq!(info(&ours, n), info(&real, n), "{n}");
    }
    for n in ["START_TIME", "DURATION"] {
        let (a, b) = (info(&ours, n).unwrap(), info(&real, n).unwrap());
        if n == "DURATION" {
            assert!(is_delay(a) && is_delay(b), "{a} {b}");
        } else {
            assert!(is_script_time(a) && is_script_time(b), "{a} {b}");
        }
    }
    let data_kinds = |v: &[Adv]| {
        v.iter()
            .filter_map(|l| match l {
                Adv::Data(c, ..) => Some(*c),
                _ => None,
            })
            .collect::<String>()
    };
    assert!(data_kinds(&ours).contains('I') && data_kinds(&real).contains('I'));
    for d in [dir.as_path(), theirs.path()] {
        assert_eq!(play_ok(None, &["--stream", "in", s(d)]), b"bob\r");
        assert_eq!(play_ok(None, &[s(d)]), b"name: bob\r\nhi bob\r\n");
    }
}

/// A hand-made recording (header, bytes, footer) with the given timing.
fn handmade(body: &[u8], timing: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let mut ts = b"Script started on 2026-01-01 00:00:00+00:00 [TERM=\"dumb\" TTY=\"/dev/pts/0\" COLUMNS=\"80\" LINES=\"24\"]\n".to_vec();
    ts.extend_from_slice(body);
    ts.extend_from_slice(b"\nScript done on 2026-01-01 00:00:01+00:00 [COMMAND_EXIT_CODE=\"0\"]\n");
    std::fs::write(t.path().join("typescript"), ts).unwrap();
    std::fs::write(t.path().join("timing"), timing).unwrap();
    t
}

/// Run `bash -c <script>` on a PTY (ONLCR on, as a terminal is by default) with $PLAY set to our binary.
fn on_terminal(script: &str, cwd: &Path) -> rexpect::session::PtySession {
    let mut c = Command::new("bash");
    c.arg("--norc")
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("PLAY", BIN);
    rexpect::session::spawn_command(c, Some(10_000)).expect("spawn bash")
}

#[test]
fn playing_to_a_terminal_keeps_bytes_and_restores_settings() {
    // Bytes recorded while the inner terminal had OPOST off: bare LFs must reach the terminal unchanged.
    let rec = handmade(b"a\nb\ndone\r\n", "0.001000 4\n0.001000 6\n");
    let work = tempfile::tempdir().unwrap();
    let mut s = on_terminal(
        &format!(
            r#"stty -a > before; "$PLAY" play {}; echo "rc=$?"; stty -a > after; echo end"#,
            s(rec.path())
        ),
        work.path(),
    );
    s.exp_string("a\nb\ndone\r\nrc=0\r\n").unwrap();
    s.exp_string("end").unwrap();
    s.exp_eof().unwrap();
    let before = std::fs::read_to_string(work.path().join("before")).unwrap();
    let flags: Vec<&str> = before.split_whitespace().collect();
    assert!(
        flags.contains(&"opost") && flags.contains(&"onlcr"),
        "{before}"
    );
    assert_eq!(
        before,
        std::fs::read_to_string(work.path().join("after")).unwrap()
    );
}

#[test]
fn interrupted_play_restores_the_terminal_and_dies_of_the_signal() {
    let rec = handmade(b"first\r\nsecond\r\n", "0.001000 7\n30.000000 8\n");
    let work = tempfile::tempdir().unwrap();
    let mut s = on_terminal(
        &format!(
            r#"trap 'echo trapped' INT; stty -a > before; "$PLAY" play {}; echo "rc=$?"; stty -a > after; echo end"#,
            s(rec.path())
        ),
        work.path(),
    );
    s.exp_string("first\r\n").unwrap();
    let t = Instant::now();
    s.send_control('c').unwrap();
    s.exp_string("rc=130").unwrap();
    s.exp_string("end").unwrap();
    s.exp_eof().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "Ctrl-C stops the pause"
    );
    let before = std::fs::read_to_string(work.path().join("before")).unwrap();
    assert_eq!(
        before,
        std::fs::read_to_string(work.path().join("after")).unwrap()
    );
}

#[test]
fn keystrokes_played_to_a_terminal_show_enter_as_a_new_line() {
    let rec = handmade(
        b"alice\r\nbob\r\n",
        "H 0.000000 START_TIME 2026-01-01 00:00:00+00:00\nI 0.001000 6\nO 0.000100 7\nI 0.001000 4\nO 0.000100 5\nH 0.000000 EXIT_CODE 0\n",
    );
    let input = b"Script started on 2026-01-01 00:00:00+00:00 [TERM=\"dumb\" TTY=\"/dev/pts/0\" COLUMNS=\"80\" LINES=\"24\"]\nalice\rbob\r\nScript done on 2026-01-01 00:00:01+00:00 [COMMAND_EXIT_CODE=\"0\"]\n";
    std::fs::write(rec.path().join("input"), input).unwrap();
    // To a pipe: the exact bytes.
    assert_eq!(
        play_ok(None, &["--stream", "in", s(rec.path())]),
        b"alice\rbob\r"
    );
    // To a terminal: Enter (CR) shown as a new line, as scriptreplay does, so typed lines do not overwrite each other.
    let work = tempfile::tempdir().unwrap();
    let mut t = on_terminal(
        &format!(
            r#"stty -a > before; "$PLAY" play --stream in {}; echo "rc=$?"; stty -a > after; echo end"#,
            s(rec.path())
        ),
        work.path(),
    );
    t.exp_string("alice\r\nbob\r\nrc=0\r\n").unwrap();
    t.exp_string("end").unwrap();
    t.exp_eof().unwrap();
    let before = std::fs::read_to_string(work.path().join("before")).unwrap();
    assert_eq!(
        before,
        std::fs::read_to_string(work.path().join("after")).unwrap()
    );
}

#[test]
fn resizes_are_s_entries_scriptreplay_understands() {
    let env = Env::new("");
    // Resize the recorder's terminal from inside, then wait until the inner terminal has the new size.
    let cmd = r#"printf 'before\n'; stty -F "$OUTER" cols 120 rows 40; until [ "$(stty size)" = "40 120" ]; do sleep 0.01; done; printf 'after\n'"#;
    let dir = record(
        &env,
        &["-o", "record.timing=advanced", "-c", cmd],
        |s| {
            s.exp_string("after").unwrap();
        },
        0,
    );
    let out = split_data(&file(&dir, "typescript"));
    assert_eq!(out.body, b"before\r\nafter\r\n");
    let lines = advanced_lines(&file(&dir, "timing"));
    // stty sets columns and rows one at a time: one or two SIGWINCH entries, the last with the final size.
    let resizes: Vec<&str> = lines
        .iter()
        .filter_map(|l| match l {
            Adv::Signal(_, m) => Some(m.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        resizes.last() == Some(&"SIGWINCH ROWS=40 COLS=120")
            && resizes.iter().all(|m| m.starts_with("SIGWINCH ROWS=")),
        "{lines:?}"
    );
    let plain = plain_copy(&dir);
    assert_eq!(
        scriptreplay(plain.path(), &["-T", "timing", "-O", "typescript"]),
        b"before\r\nafter\r\n\n"
    );
    let signals = String::from_utf8(scriptreplay(
        plain.path(),
        &["-T", "timing", "-x", "signal"],
    ))
    .unwrap();
    let want: String = resizes
        .iter()
        .map(|m| m.replacen(' ', "  ", 1) + "\n")
        .collect::<String>()
        + "\n";
    assert_eq!(
        signals, want,
        "scriptreplay prints S entries as \"NAME  value\""
    );
    assert_eq!(play_ok(None, &[s(&dir)]), out.body);
}
