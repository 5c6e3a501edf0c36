//! Helpers for the format contract tests: finished recordings, their files (plain or .gz), util-linux
//! `script`/`scriptreplay`, and `auditty play`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{BIN, Env};

/// The data files of a recording, by base name.
pub const FILES: [&str; 3] = ["typescript", "timing", "input"];

/// Wait (bounded) for the one finished recording (queue, sent or failed: delivery may move it on), return its dir.
pub fn finished(env: &Env) -> PathBuf {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let done: Vec<PathBuf> = ["queue", "sent", "failed"]
            .iter()
            .flat_map(|s| env.recordings(s))
            .collect();
        if let [one] = &done[..] {
            return one.clone();
        }
        assert!(done.len() <= 1, "more than one recording: {done:?}");
        assert!(
            Instant::now() < end,
            "no finished recording in {}",
            env.spool.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `dir/name`, or `dir/name.gz` decompressed; `None` if neither exists.
pub fn try_file(dir: &Path, name: &str) -> Option<Vec<u8>> {
    if let Ok(b) = std::fs::read(dir.join(name)) {
        return Some(b);
    }
    let gz = std::fs::read(dir.join(format!("{name}.gz"))).ok()?;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut out)
        .expect("valid gzip");
    Some(out)
}

pub fn file(dir: &Path, name: &str) -> Vec<u8> {
    try_file(dir, name).unwrap_or_else(|| panic!("no {name}[.gz] in {}", dir.display()))
}

/// A copy of the recording's data files, uncompressed (what util-linux tools read).
pub fn plain_copy(dir: &Path) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for n in FILES {
        if let Some(b) = try_file(dir, n) {
            std::fs::write(t.path().join(n), b).unwrap();
        }
    }
    t
}

/// A copy with every data file gzip-compressed (`typescript.gz`, …), as delivery stores them.
pub fn gz_copy(dir: &Path) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for n in FILES {
        if let Some(b) = try_file(dir, n) {
            let f = std::fs::File::create(t.path().join(format!("{n}.gz"))).unwrap();
            let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
            gz.write_all(&b).unwrap();
            gz.finish().unwrap();
        }
    }
    t
}

/// A data file split into header line, recorded bytes and footer (`\nScript done on …\n`).
pub struct Data {
    pub header: String,
    pub body: Vec<u8>,
    pub footer: String,
}

pub fn split_data(b: &[u8]) -> Data {
    let nl = b.iter().position(|&c| c == b'\n').expect("header line") + 1;
    let marker = b"\nScript done on ";
    let at = b
        .windows(marker.len())
        .rposition(|w| w == marker)
        .expect("footer");
    assert!(at >= nl, "footer inside the header");
    Data {
        header: String::from_utf8(b[..nl].to_vec()).expect("UTF-8 header"),
        body: b[nl..at].to_vec(),
        footer: String::from_utf8(b[at..].to_vec()).expect("UTF-8 footer"),
    }
}

/// `Script started on <time> [fields]\n` → (time, [(name, value)]); fields are `NAME="value"` separated by
/// single spaces (values hold no `" `), or a literal `<…>` mark.
pub fn parse_header(h: &str) -> (String, Vec<(String, String)>) {
    let rest = h
        .strip_prefix("Script started on ")
        .unwrap_or_else(|| panic!("header: {h:?}"));
    let rest = rest
        .strip_suffix("]\n")
        .unwrap_or_else(|| panic!("header: {h:?}"));
    let (time, fields) = rest
        .split_once(" [")
        .unwrap_or_else(|| panic!("header: {h:?}"));
    let mut out = Vec::new();
    let mut s = fields;
    while !s.is_empty() {
        let (name, after) = s
            .split_once("=\"")
            .unwrap_or_else(|| panic!("field in {h:?}"));
        // The value runs to the next `" ` that starts another NAME=" field, or to the end.
        let mut end = after.len() - 1;
        let mut search = 0;
        while let Some(i) = after[search..].find("\" ") {
            let cand = search + i;
            let tail = &after[cand + 2..];
            if tail.split_once("=\"").is_some_and(|(n, _)| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            }) {
                end = cand;
                break;
            }
            search = cand + 1;
        }
        assert!(after[end..].starts_with('"'), "unterminated field in {h:?}");
        out.push((name.to_string(), after[..end].to_string()));
        s = after[end + 1..].trim_start_matches(' ');
    }
    (time.to_string(), out)
}

/// `YYYY-MM-DD HH:MM:SS±HH:MM`, as script prints times.
pub fn is_script_time(t: &str) -> bool {
    let b = t.as_bytes();
    let pat = b"dddd-dd-dd dd:dd:dd+dd:dd";
    b.len() == pat.len()
        && b.iter().zip(pat).all(|(&c, &p)| match p {
            b'd' => c.is_ascii_digit(),
            b'+' => c == b'+' || c == b'-',
            _ => c == p,
        })
}

/// `\nScript done on <time> [COMMAND_EXIT_CODE="n"]\n` → (time, n).
pub fn parse_footer(f: &str) -> (String, i32) {
    let rest = f
        .strip_prefix("\nScript done on ")
        .and_then(|r| r.strip_suffix("\"]\n"))
        .unwrap_or_else(|| panic!("footer: {f:?}"));
    let (time, code) = rest
        .split_once(" [COMMAND_EXIT_CODE=\"")
        .unwrap_or_else(|| panic!("footer: {f:?}"));
    (time.to_string(), code.parse().expect("exit code"))
}

/// `%u.%06u` exactly.
pub fn is_delay(s: &str) -> bool {
    s.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.len() == 6
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// Lines of a classic timing file as (delay µs, size); panics on any line not exactly `%u.%06u %u`.
pub fn classic_lines(t: &[u8]) -> Vec<(u64, u64)> {
    let s = std::str::from_utf8(t).expect("ASCII timing");
    assert!(s.is_empty() || s.ends_with('\n'), "timing ends with LF");
    s.lines()
        .map(|l| {
            let (d, n) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("classic line {l:?}"));
            assert!(is_delay(d), "delay {d:?} in {l:?}");
            assert!(
                !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()),
                "size in {l:?}"
            );
            (delay_us(d), n.parse().unwrap())
        })
        .collect()
}

pub fn delay_us(d: &str) -> u64 {
    let (a, b) = d.split_once('.').unwrap();
    a.parse::<u64>().unwrap() * 1_000_000 + b.parse::<u64>().unwrap()
}

/// One line of an advanced timing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adv {
    Data(char, u64, u64),
    Signal(u64, String),
    Info(String, String),
}

/// Lines of an advanced timing file; panics on anything `script --log-io` would not write.
pub fn advanced_lines(t: &[u8]) -> Vec<Adv> {
    let s = std::str::from_utf8(t).expect("UTF-8 timing");
    assert!(s.ends_with('\n') && !s.contains('\r'), "LF-only lines");
    s.lines()
        .map(|l| {
            let (kind, rest) = l.split_once(' ').unwrap_or_else(|| panic!("line {l:?}"));
            let (d, rest) = rest.split_once(' ').unwrap_or_else(|| panic!("line {l:?}"));
            assert!(is_delay(d), "delay {d:?} in {l:?}");
            match kind {
                "O" | "I" => {
                    assert!(rest.bytes().all(|c| c.is_ascii_digit()), "size in {l:?}");
                    Adv::Data(
                        kind.chars().next().unwrap(),
                        delay_us(d),
                        rest.parse().unwrap(),
                    )
                }
                "S" => Adv::Signal(delay_us(d), rest.to_string()),
                "H" => {
                    assert_eq!(d, "0.000000", "H delay in {l:?}");
                    let (n, v) = rest.split_once(' ').unwrap_or((rest, ""));
                    Adv::Info(n.to_string(), v.to_string())
                }
                _ => panic!("unknown line {l:?}"),
            }
        })
        .collect()
}

/// Sum of the sizes of one stream's entries.
pub fn stream_bytes(lines: &[Adv], stream: char) -> u64 {
    lines
        .iter()
        .map(|l| match l {
            Adv::Data(c, _, n) if *c == stream => *n,
            _ => 0,
        })
        .sum()
}

pub fn info_names(lines: &[Adv]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| match l {
            Adv::Info(n, _) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

pub fn info<'a>(lines: &'a [Adv], name: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| match l {
        Adv::Info(n, v) if n == name => Some(v.as_str()),
        _ => None,
    })
}

/// Run util-linux `scriptreplay` in `dir`, stdin closed; must succeed.
pub fn scriptreplay(dir: &Path, args: &[&str]) -> Vec<u8> {
    let o = Command::new("scriptreplay")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("scriptreplay runs");
    assert!(
        o.status.success(),
        "scriptreplay {args:?}: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// `auditty [--config <env's>] play <args…>` with stdout captured (a pipe).
pub fn play(env: Option<&Env>, args: &[&str]) -> Output {
    let mut c = match env {
        Some(e) => e.cmd(&["play"]),
        None => {
            let mut c = Command::new(BIN);
            c.arg("play");
            c
        }
    };
    c.args(args)
        .stdin(Stdio::null())
        .output()
        .expect("auditty play runs")
}

/// `auditty play` must succeed; its stdout.
pub fn play_ok(env: Option<&Env>, args: &[&str]) -> Vec<u8> {
    let o = play(env, args);
    assert!(
        o.status.success(),
        "auditty play {args:?}: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// A path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Window size set on the test terminals, so headers carry real COLUMNS/LINES.
pub const COLS: u16 = 100;
pub const ROWS: u16 = 30;

/// Spawn `program args…` on a fresh PTY sized COLS x ROWS (TERM=dumb, SHELL=/bin/bash, PS1 set; $OUTER names
/// that PTY, so a recorded command can resize the recorder's terminal with `stty -F "$OUTER"`).
pub fn spawn_sized(program: &str, args: &[&str], cwd: &Path) -> rexpect::session::PtySession {
    let mut c = Command::new("bash");
    c.arg("--norc")
        .arg("-c")
        .arg(format!(
            "stty cols {COLS} rows {ROWS} && OUTER=$(tty) && export OUTER && exec \"$@\""
        ))
        .arg("sized")
        .arg(program)
        .args(args)
        .current_dir(cwd)
        .env("TERM", "dumb")
        .env("SHELL", "/bin/bash")
        .env("PS1", "PROMPT> ");
    rexpect::session::spawn_command(c, Some(10_000)).expect("spawn on a PTY")
}

/// Type `text` (rexpect buffers what is sent until a flush).
pub fn typed(s: &mut rexpect::session::PtySession, text: &str) {
    s.send(text).unwrap();
    s.flush().unwrap();
}
