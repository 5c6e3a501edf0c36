//! A recording directory as the tests inspect it: typescript split into header, data and footer; timing; meta.json.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Env;

pub struct Rec {
    pub dir: PathBuf,
    /// The header line, without its newline.
    pub header: String,
    /// The bytes read from the PTY master (between header and footer).
    pub data: Vec<u8>,
    /// `Script done on … [...]` without the leading and trailing newline; empty when there is none yet.
    pub footer: String,
    pub timing: String,
    pub meta: serde_json::Value,
}

const FOOTER: &[u8] = b"\nScript done on ";

impl Rec {
    pub fn load(dir: &Path) -> Rec {
        let ts = super::read(&dir.join("typescript"));
        let nl = ts
            .iter()
            .position(|&b| b == b'\n')
            .expect("typescript has a header line");
        let header = String::from_utf8(ts[..nl].to_vec()).expect("header is UTF-8");
        let body = &ts[nl + 1..];
        let (data, footer) = match rfind(body, FOOTER) {
            Some(i) if body.ends_with(b"]\n") => (
                body[..i].to_vec(),
                String::from_utf8_lossy(&body[i + 1..body.len() - 1]).into_owned(),
            ),
            _ => (body.to_vec(), String::new()),
        };
        let timing = String::from_utf8(super::read(&dir.join("timing"))).expect("timing is text");
        let meta = std::fs::read(dir.join("meta.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        Rec {
            dir: dir.to_path_buf(),
            header,
            data,
            footer,
            timing,
            meta,
        }
    }

    /// The one recording that reaches the queue within `timeout` (panics otherwise).
    pub fn queued(env: &Env, timeout: Duration) -> Rec {
        let v = env.wait_for("queue", 1, timeout);
        assert_eq!(
            v.len(),
            1,
            "expected one queued recording; active: {:?}",
            env.recordings("active")
        );
        Rec::load(&v[0])
    }

    /// Sum of the byte counts of the output entries (classic lines or advanced `O` lines).
    pub fn timing_output_bytes(&self) -> usize {
        self.timing
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                match f.as_slice() {
                    [t, n] if t.contains('.') => n.parse::<usize>().ok(),
                    ["O", _, n] => n.parse::<usize>().ok(),
                    _ => None,
                }
            })
            .sum()
    }

    /// Every timing line is well formed for scriptreplay: `%u.%06u %u` (classic) or a known advanced entry.
    pub fn assert_timing_well_formed(&self) {
        for (i, l) in self.timing.lines().enumerate() {
            let ok_delta = |d: &str| {
                d.split_once('.').is_some_and(|(s, us)| {
                    !s.is_empty()
                        && s.bytes().all(|b| b.is_ascii_digit())
                        && us.len() == 6
                        && us.bytes().all(|b| b.is_ascii_digit())
                })
            };
            let f: Vec<&str> = l.split(' ').collect();
            let ok = match f.as_slice() {
                [d, n] => ok_delta(d) && n.parse::<usize>().is_ok(),
                ["O" | "I", d, n] => ok_delta(d) && n.parse::<usize>().is_ok(),
                ["S", d, ..] => ok_delta(d),
                ["H", "0.000000", _, ..] => true,
                _ => false,
            };
            assert!(ok, "timing line {} is malformed: {l:?}", i + 1);
        }
        assert!(
            self.timing.is_empty() || self.timing.ends_with('\n'),
            "timing ends with a newline"
        );
    }

    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.meta.get(key).and_then(|v| v.as_str())
    }

    pub fn meta_i64(&self, key: &str) -> Option<i64> {
        self.meta.get(key).and_then(|v| v.as_i64())
    }

    /// The footer's bracket: `COMMAND_EXIT_CODE="n"` or a mark like `<recorder killed>`.
    pub fn footer_status(&self) -> &str {
        self.footer
            .rsplit_once('[')
            .map(|(_, s)| s.trim_end_matches(']'))
            .unwrap_or("")
    }
}

pub fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len())
        .rev()
        .find(|&i| &hay[i..i + needle.len()] == needle)
}
