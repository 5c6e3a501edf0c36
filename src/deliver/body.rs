//! The plain-text mail body an auditor can act on without opening anything, and the escaping of every piece of
//! user-controlled text that goes into the body or the headers.

use std::fmt::Write as _;

use time::{OffsetDateTime, UtcOffset, macros::format_description};

use crate::record::meta::{EndReason, FileSum, Meta};

/// Most commands listed in the body; the rest are counted.
pub const MAX_COMMANDS: usize = 1000;
/// Most bytes of command text in the body.
pub const MAX_COMMAND_BYTES: usize = 256 << 10;
/// Longest single command shown.
const MAX_ONE_COMMAND: usize = 2000;

/// Make untrusted bytes safe to show: printable text stays, `\` becomes `\\`, control characters (C0, DEL, C1,
/// including CR and LF) and invalid UTF-8 become `\xNN`/`\u{NNNN}` escapes. At most `max` characters are kept.
pub fn escape(bytes: &[u8], max: usize) -> String {
    escape_with(bytes, max, true)
}

/// `escape` for text that was escaped already where it was made (an error message: meta.json's `last_error`):
/// controls still become escapes, but a backslash stays one, so `\x1b` is not shown as `\\x1b`.
pub fn escape_again(bytes: &[u8], max: usize) -> String {
    escape_with(bytes, max, false)
}

fn escape_with(bytes: &[u8], max: usize, backslash: bool) -> String {
    let mut out = String::new();
    let mut count = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if count >= max {
                out.push('…');
                return out;
            }
            count += 1;
            match c {
                '\\' if backslash => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if ('\u{80}'..='\u{9f}').contains(&c)
                    || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
                {
                    let _ = write!(out, "\\u{{{:04x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            if count >= max {
                out.push('…');
                return out;
            }
            count += 1;
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// `escape` for text that goes into a header: never a control character, bounded.
pub fn header_text(s: &str, max: usize) -> String {
    escape(s.as_bytes(), max)
}

/// `5m12s`, `1h02m03s`, `12s`.
pub fn duration(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 {
        secs.round() as u64
    } else {
        0
    };
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `1,234,567`
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Parse the `YYYY-MM-DD HH:MM:SS+HH:MM` times of meta.json.
pub fn parse_script_time(s: &str) -> Option<OffsetDateTime> {
    let fmt = format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
    );
    OffsetDateTime::parse(s, &fmt).ok()
}

/// The short outcome used in subjects and lists: `exit 0`, `hangup`, `killed`, `SIGTERM`, `incomplete`.
pub fn outcome_short(m: &Meta) -> String {
    match m.end_reason {
        Some(EndReason::Exit) => match m.exit_status {
            Some(s) => format!("exit {s}"),
            None => "exit".into(),
        },
        Some(EndReason::Hangup) => "hangup".into(),
        Some(EndReason::Signal) => m
            .signal
            .as_deref()
            .map(|s| header_text(s, 16))
            .unwrap_or_else(|| "signal".into()),
        Some(EndReason::Killed) => "killed".into(),
        Some(EndReason::Incomplete) => "incomplete".into(),
        Some(EndReason::NeverStarted | EndReason::Unrecorded) => "NOT RECORDED".into(),
        None => "unknown".into(),
    }
}

fn outcome_long(m: &Meta) -> String {
    let status = m
        .exit_status
        .map(|s| format!("; shell status {s}"))
        .unwrap_or_default();
    match m.end_reason {
        Some(EndReason::Exit) => match m.exit_status {
            Some(s) if s > 128 && m.signal.is_some() => format!(
                "the shell was killed by {} (status {s})",
                escape(m.signal.as_deref().unwrap_or("").as_bytes(), 16)
            ),
            Some(s) => format!("the shell exited with status {s}"),
            None => "the shell exited".into(),
        },
        Some(EndReason::Hangup) => {
            format!(
                "HANGUP: the user's terminal went away (e.g. the SSH connection dropped){status}"
            )
        }
        Some(EndReason::Signal) => format!(
            "the recorder was stopped by {}{status}",
            escape(m.signal.as_deref().unwrap_or("a signal").as_bytes(), 16)
        ),
        Some(EndReason::Killed) => "KILLED: the recorder's relay process vanished (e.g. SIGKILL); \
             everything up to that moment is recorded"
            .into(),
        // An exit status with this reason: the writer had written the typescript's end (its footer, with the
        // shell's exit code) before it vanished, so every byte is there; only meta.json was left unfinished.
        Some(EndReason::Incomplete) => match m.exit_status {
            Some(code) => format!(
                "INCOMPLETE METADATA: the spool writer vanished after it had recorded the end of the session \
                 (exit status {code}) but before its metadata was complete; auditty flush completed it, and nothing \
                 of the recording is missing"
            ),
            None => "INCOMPLETE: both recorder processes vanished (crash, reboot or SIGKILL); \
                     the recording was completed by auditty flush and its last half second may be missing"
                .into(),
        },
        Some(EndReason::NeverStarted) => {
            "NOT RECORDED: both recorder processes were killed as the login began, before the spool writer had \
             created the recording, so nothing of this session was recorded; auditty flush found the login's entry \
             in the nesting-guard registry and made this notice from it"
                .into()
        }
        Some(EndReason::Unrecorded) => {
            "NOT RECORDED: when the login began the spool could not take a recording (the reason is below), and \
             policy.on_error = open let the login go on unrecorded, so nothing of this session was recorded; auditty \
             flush found the note the login left in the nesting-guard registry and made this notice from it"
                .into()
        }
        None => "unknown (the recording's metadata is incomplete)".into(),
    }
}

/// One command from commands.log, however the hook wrote it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Command {
    pub time: Option<f64>,
    pub status: Option<String>,
    pub cwd: Option<String>,
    pub cmd: String,
}

/// Parse one line of commands.log: JSON object, or logfmt (`[time] key=value …` with quoted or bare values; a bare
/// `cmd=` runs to the end of the line). `None` when no command text is found.
/// A command's time: Unix seconds, or RFC 3339 as the writer's commands.log has it (`2026-12-04T22:04:11.910319Z`).
fn parse_time(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|t| t.is_finite()).or_else(|| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
    })
}

pub fn parse_command_line(line: &str) -> Option<Command> {
    if line.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let o = v.as_object()?;
        let get = |keys: &[&str]| {
            keys.iter().find_map(|k| match o.get(*k)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        return Some(Command {
            time: get(&["time", "ts", "t", "unix_time", "end"]).and_then(|s| parse_time(&s)),
            status: get(&["status", "exit", "rc", "exit_status", "code"]),
            cwd: get(&["cwd", "pwd", "dir"]),
            cmd: get(&["cmd", "command", "line"])?,
        });
    }
    let mut c = Command::default();
    let mut found = false;
    let mut rest = line.trim_start();
    let mut first = true;
    while !rest.is_empty() {
        let (tok_end, key) = match rest.find([' ', '=']) {
            Some(i) if rest.as_bytes()[i] == b'=' => (i, Some(&rest[..i])),
            Some(i) => (i, None),
            None => (rest.len(), None),
        };
        match key {
            None => {
                // A bare token: the leading timestamp, or noise.
                if first {
                    c.time = parse_time(&rest[..tok_end]);
                }
                rest = rest[tok_end..].trim_start();
            }
            Some(k) => {
                let after = &rest[tok_end + 1..];
                let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
                    let mut v = String::new();
                    let mut chars = q.char_indices();
                    let mut end = q.len();
                    while let Some((i, ch)) = chars.next() {
                        match ch {
                            '\\' => {
                                if let Some((_, n)) = chars.next() {
                                    v.push(match n {
                                        'n' => '\n',
                                        'r' => '\r',
                                        't' => '\t',
                                        o => o,
                                    });
                                }
                            }
                            '"' => {
                                end = i + 1;
                                break;
                            }
                            o => v.push(o),
                        }
                    }
                    (v, &q[end.min(q.len())..])
                } else if matches!(k, "cmd" | "command") {
                    (after.to_string(), "")
                } else {
                    let e = after.find(' ').unwrap_or(after.len());
                    (after[..e].to_string(), &after[e..])
                };
                match k {
                    "time" | "ts" | "t" => c.time = parse_time(&value),
                    "status" | "exit" | "rc" | "exit_status" => c.status = Some(value),
                    "cwd" | "pwd" | "dir" => c.cwd = Some(value),
                    "cmd" | "command" => {
                        c.cmd = value;
                        found = true;
                    }
                    _ => {}
                }
                rest = remaining.trim_start();
            }
        }
        first = false;
    }
    found.then_some(c)
}

/// The command section: one line per command (time, status, cwd, command), bounded; unparseable lines are shown
/// escaped as they are.
pub fn command_lines(log: &[u8], offset: UtcOffset) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut more = 0;
    let tfmt = format_description!("[hour]:[minute]:[second]");
    for raw in log.split(|b| *b == b'\n') {
        if raw.is_empty() {
            continue;
        }
        if out.len() >= MAX_COMMANDS || bytes >= MAX_COMMAND_BYTES {
            more += 1;
            continue;
        }
        let text = String::from_utf8_lossy(raw);
        let line = match parse_command_line(&text) {
            Some(c) => {
                let t = c
                    .time
                    .and_then(|t| OffsetDateTime::from_unix_timestamp(t as i64).ok())
                    .and_then(|t| t.to_offset(offset).format(&tfmt).ok())
                    .unwrap_or_else(|| "--:--:--".into());
                format!(
                    "  {t}  [{}]  {}  $ {}",
                    escape(c.status.as_deref().unwrap_or("?").as_bytes(), 12),
                    escape(c.cwd.as_deref().unwrap_or("?").as_bytes(), 200),
                    escape(c.cmd.as_bytes(), MAX_ONE_COMMAND)
                )
            }
            None => format!("  (unparsed) {}", escape(raw, MAX_ONE_COMMAND)),
        };
        bytes += line.len();
        out.push(line);
    }
    (out, more)
}

/// One attachment as the body describes it.
pub struct AttachmentInfo {
    pub name: String,
    pub sent: FileSum,
    /// The uncompressed file the attachment unpacks to (for a full recording).
    pub raw: Option<FileSum>,
}

/// What was left out of a head+tail mail.
pub struct Truncation {
    pub kept_head: u64,
    pub omitted: u64,
    pub total: u64,
    pub max_size: u64,
    /// Sums of the full files kept in the spool.
    pub full: Vec<(String, FileSum)>,
    /// The attachments could not be made small enough at all.
    pub dropped: bool,
}

pub struct BodyInput<'a> {
    pub meta: &'a Meta,
    pub commands_log: Option<&'a [u8]>,
    pub attachments: &'a [AttachmentInfo],
    pub truncation: Option<&'a Truncation>,
    pub spool_dir: &'a str,
    pub attempt: u32,
}

/// The whole body text.
pub fn render(b: &BodyInput<'_>) -> String {
    let m = b.meta;
    let e = |s: &str, n| escape(s.as_bytes(), n);
    let offset = parse_script_time(&m.start)
        .map(|t| t.offset())
        .unwrap_or(UtcOffset::UTC);
    let mut o = String::new();
    let tty_short = m
        .tty
        .as_deref()
        .map(|t| t.trim_start_matches("/dev/"))
        .unwrap_or("no terminal");
    let _ = writeln!(
        o,
        "Recorded terminal session of {} on {} ({}), started {}, {}, {}.",
        e(&m.user, 64),
        e(&m.host, 255),
        e(tty_short, 64),
        e(&m.start, 40),
        duration(m.duration_secs.unwrap_or(0.0)),
        outcome_short(m)
    );
    o.push('\n');
    let mut row = |k: &str, v: String| {
        let _ = writeln!(o, "  {k:<13} {v}");
    };
    row("Recording:", e(&m.id, 80));
    row("User:", format!("{} (uid {})", e(&m.user, 64), m.uid));
    if let Some(l) = m.login_uid {
        row(
            "Logged in as:",
            format!(
                "{} (login uid {l}; the session changed user, e.g. with su)",
                e(m.login_user.as_deref().unwrap_or("?"), 64)
            ),
        );
    }
    row("Host:", e(&m.host, 255));
    row(
        "Terminal:",
        match (&m.tty, &m.pty) {
            (Some(t), Some(p)) => format!("{} (the shell ran on {})", e(t, 64), e(p, 64)),
            (Some(t), None) => e(t, 64),
            (None, _) => "none".into(),
        },
    );
    row(
        "SSH client:",
        m.ssh_client
            .as_deref()
            .map(|s| e(s, 80))
            .unwrap_or_else(|| "none (not an SSH login, or SSH_CONNECTION unset)".into()),
    );
    row("Started:", e(&m.start, 40));
    row(
        "Ended:",
        m.end
            .as_deref()
            .map(|s| e(s, 40))
            .unwrap_or_else(|| "unknown".into()),
    );
    row("Duration:", duration(m.duration_secs.unwrap_or(0.0)));
    row("How it ended:", outcome_long(m));
    row("Shell:", e(&m.shell, 200));
    if let Some(c) = &m.command {
        row("Command:", e(c, 2000));
    }
    row("Output:", format!("{} bytes", thousands(m.bytes_out)));
    row(
        "Input:",
        if m.input_recorded {
            let mut s = format!("{} bytes recorded", thousands(m.bytes_in));
            if m.input_withheld_bytes > 0 {
                let _ = write!(
                    s,
                    " ({} bytes typed with echo off were not recorded)",
                    thousands(m.input_withheld_bytes)
                );
            }
            s
        } else {
            "not recorded (record.input = false)".into()
        },
    );
    row(
        "Commands:",
        if b.commands_log.is_some() {
            format!("{} logged by the shell hook", m.commands)
        } else {
            "no command log".into()
        },
    );

    let mut problems: Vec<String> = Vec::new();
    if m.lost_bytes > 0 {
        problems.push(format!(
            "{} bytes of the session could not be stored by the recorder (see the errors below).",
            thousands(m.lost_bytes)
        ));
    }
    // The same error repeats while a disk stays full: show each once, with a count.
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for w in &m.write_errors {
        match seen.iter_mut().find(|(s, _)| *s == w.as_str()) {
            Some((_, n)) => *n += 1,
            None => seen.push((w, 1)),
        }
    }
    for (w, n) in seen {
        let times = if n > 1 {
            format!(" ({n} times)")
        } else {
            String::new()
        };
        problems.push(format!("spool: {}{times}", e(w, 500)));
    }
    let stored = b
        .attachments
        .iter()
        .find(|a| a.name == "typescript.gz")
        .and_then(|a| a.raw.as_ref())
        .map(|r| r.size);
    if let Some(stored) = stored
        && b.truncation.is_none()
        && stored < m.bytes_out
    {
        problems.push(format!(
            "the session produced {} bytes of output, but the stored typescript holds only {} bytes \
             (header and footer included): the rest could not be stored.",
            thousands(m.bytes_out),
            thousands(stored)
        ));
    }
    if m.syslog_dropped > 0 {
        problems.push(format!(
            "{} syslog lines could not be sent (they are in the command list below).",
            m.syslog_dropped
        ));
    }
    if let Some(t) = b.truncation {
        if t.dropped {
            problems.push(format!(
                "ATTACHMENTS LEFT OUT: even a short excerpt of the session exceeds mail.max_size ({} bytes). \
                 The full recording is kept in the spool (see below).",
                thousands(t.max_size)
            ));
        } else {
            problems.push(format!(
                "ATTACHMENTS TRUNCATED to fit mail.max_size ({} bytes): they hold the first {} and the last {} \
                 bytes of the session; {} of {} bytes in the middle are left out, at the marked point. \
                 The full recording is kept in the spool (see below).",
                thousands(t.max_size),
                thousands(t.kept_head),
                thousands(
                    t.total
                        .saturating_sub(t.kept_head)
                        .saturating_sub(t.omitted)
                ),
                thousands(t.omitted),
                thousands(t.total)
            ));
        }
    }
    if !problems.is_empty() {
        o.push_str("\nPROBLEMS\n");
        for p in problems {
            let _ = writeln!(o, "  - {p}");
        }
    }

    if let Some(log) = b.commands_log {
        o.push_str(
            "\nCOMMANDS (reported by the shell hook: advisory, the typescript is the authoritative record)\n",
        );
        let _ = writeln!(o, "  time      [exit]  cwd  $ command");
        let (lines, more) = command_lines(log, offset);
        if lines.is_empty() {
            o.push_str("  (none)\n");
        }
        for l in lines {
            o.push_str(&l);
            o.push('\n');
        }
        if more > 0 {
            let _ = writeln!(
                o,
                "  … and {more} more lines, in commands.log of the recording in the spool"
            );
        }
    }

    o.push_str("\nATTACHMENTS (SHA-256)\n");
    if b.attachments.is_empty() {
        o.push_str("  (none)\n");
    }
    for a in b.attachments {
        let _ = writeln!(
            o,
            "  {:<14} {:>14} bytes  sha256 {}",
            a.name,
            thousands(a.sent.size),
            a.sent.sha256
        );
        if let Some(r) = &a.raw {
            let _ = writeln!(
                o,
                "    unpacks to {:<14} {:>14} bytes  sha256 {}",
                a.name.trim_end_matches(".gz"),
                thousands(r.size),
                r.sha256
            );
        }
    }
    if let Some(t) = b.truncation {
        let _ = writeln!(
            o,
            "\nFULL RECORDING (kept in the spool of {}: {}/sent/{})",
            e(&m.host, 255),
            b.spool_dir,
            e(&m.id, 80)
        );
        for (name, s) in &t.full {
            let _ = writeln!(
                o,
                "  {:<14} {:>14} bytes  sha256 {}",
                name,
                thousands(s.size),
                s.sha256
            );
        }
    }

    o.push_str("\nREPLAY\n");
    if !b.attachments.is_empty() {
        let names: Vec<&str> = b.attachments.iter().map(|a| a.name.as_str()).collect();
        let _ = writeln!(o, "  sha256sum {}", names.join(" "));
        let replay = if m.timing_format == "advanced" {
            "scriptreplay -T timing -O typescript"
        } else {
            "scriptreplay -t timing typescript"
        };
        let _ = writeln!(o, "  gunzip {} && {replay}", names.join(" "));
    }
    let _ = writeln!(
        o,
        "  or on {}, as root or a member of group auditty: auditty play {}",
        e(&m.host, 255),
        e(&m.id, 80)
    );
    let _ = writeln!(
        o,
        "\n-- \nauditty {}, delivery attempt {}",
        env!("CARGO_PKG_VERSION"),
        b.attempt
    );
    o
}

/// Fill the `mail.subject` template: {user} {host} {tty} {start} {duration} {exit} {id}.
pub fn subject(template: &str, m: &Meta) -> String {
    let tty = m
        .tty
        .as_deref()
        .map(|t| t.trim_start_matches("/dev/"))
        .unwrap_or("notty");
    let start: String = m.start.chars().take(16).collect();
    let s = template
        .replace("{user}", &header_text(&m.user, 64))
        .replace("{host}", &header_text(&m.host, 128))
        .replace("{tty}", &header_text(tty, 32))
        .replace("{start}", &header_text(&start, 20))
        .replace("{duration}", &duration(m.duration_secs.unwrap_or(0.0)))
        .replace("{exit}", &outcome_short(m))
        .replace("{id}", &header_text(&m.id, 80));
    // The fields are escaped already; the template itself is the administrator's, but a header never gets a control.
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            id: "20261122T090000Z-alice-0123456789ab".into(),
            user: "alice".into(),
            uid: 1000,
            host: "web1".into(),
            tty: Some("/dev/pts/3".into()),
            pty: Some("/dev/pts/7".into()),
            ssh_client: Some("203.0.113.5:51234".into()),
            shell: "/bin/bash".into(),
            start: "2026-11-22 10:00:00+01:00".into(),
            end: Some("2026-11-22 10:05:12+01:00".into()),
            duration_secs: Some(312.2),
            end_reason: Some(EndReason::Exit),
            exit_status: Some(0),
            timing_format: "classic".into(),
            bytes_out: 1234567,
            ..Meta::default()
        }
    }

    #[test]
    fn escaping_again_keeps_backslashes_and_still_neutralises_controls() {
        let once = escape(b"fatal: \x1b[31mbad\r\n", 100);
        assert_eq!(once, "fatal: \\x1b[31mbad\\x0d\\x0a");
        assert_eq!(escape_again(once.as_bytes(), 100), once);
        assert_eq!(escape_again(b"a\x1bb\\c", 100), "a\\x1bb\\c");
    }

    #[test]
    fn escape_neutralises_controls_and_bidi() {
        assert_eq!(escape(b"a\r\nBcc: x", 100), "a\\x0d\\x0aBcc: x");
        assert_eq!(escape(b"\x1b[31mred\\", 100), "\\x1b[31mred\\\\");
        assert_eq!(escape(b"\xff\xfe ok", 100), "\\xff\\xfe ok");
        assert_eq!(escape("\u{202e}evil".as_bytes(), 100), "\\u{202e}evil");
        assert_eq!(escape("\u{85}".as_bytes(), 100), "\\u{0085}");
        assert_eq!(escape(b"abcdef", 3), "abc…");
        assert_eq!(escape("héllo".as_bytes(), 100), "héllo");
    }

    #[test]
    fn subject_default_shape() {
        let s = subject(&crate::config::Mail::default().subject, &meta());
        assert_eq!(
            s,
            "[auditty] alice@web1 pts/3 2026-11-22 10:00 (5m12s, exit 0)"
        );
        let mut m = meta();
        m.host = "evil\r\nBcc: attacker@example.com".into();
        let s = subject("{user}@{host}", &m);
        assert!(!s.contains('\r') && !s.contains('\n'), "{s}");
    }

    #[test]
    fn an_incomplete_recording_says_whether_its_end_was_recorded() {
        let mut m = meta();
        m.end_reason = Some(EndReason::Incomplete);
        m.exit_status = None;
        let lost = outcome_long(&m);
        assert!(lost.contains("last half second may be missing"), "{lost}");
        // The writer's footer was kept (auditty flush, complete_orphan): the shell's status is known, nothing lost.
        m.exit_status = Some(3);
        let kept = outcome_long(&m);
        assert!(kept.contains("exit status 3"), "{kept}");
        assert!(
            kept.contains("nothing of the recording is missing"),
            "{kept}"
        );
        assert!(!kept.contains("half second"), "{kept}");
    }

    /// The two notices of a login that was not recorded say which of the two things happened.
    #[test]
    fn a_not_recorded_notice_says_why() {
        let mut m = meta();
        m.end_reason = Some(EndReason::NeverStarted);
        assert_eq!(outcome_short(&m), "NOT RECORDED");
        assert!(
            outcome_long(&m).contains("both recorder processes were killed as the login began")
        );
        m.end_reason = Some(EndReason::Unrecorded);
        assert_eq!(outcome_short(&m), "NOT RECORDED");
        let long = outcome_long(&m);
        assert!(
            long.contains("the spool could not take a recording")
                && long.contains("policy.on_error = open let the login go on unrecorded"),
            "{long}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0.2), "0s");
        assert_eq!(duration(12.0), "12s");
        assert_eq!(duration(312.0), "5m12s");
        assert_eq!(duration(3723.0), "1h02m03s");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }

    #[test]
    fn commands_in_any_format() {
        let c = parse_command_line("1795320012.5 seq=3 status=1 cmd=ls -la /tmp").unwrap();
        assert_eq!(c.time, Some(1795320012.5));
        assert_eq!(c.status.as_deref(), Some("1"));
        assert_eq!(c.cmd, "ls -la /tmp");
        let c = parse_command_line(
            r#"time=1795320012.5 seq=3 status=0 cwd="/home/a b" cmd="echo \"hi\"\nx""#,
        )
        .unwrap();
        assert_eq!(c.cwd.as_deref(), Some("/home/a b"));
        assert_eq!(c.cmd, "echo \"hi\"\nx");
        let c = parse_command_line(r#"{"ts":1795320012.5,"status":130,"cwd":"/","cmd":"sleep 9"}"#)
            .unwrap();
        assert_eq!(c.status.as_deref(), Some("130"));
        assert_eq!(c.cmd, "sleep 9");
        // What the writer's commands.log holds (`hook::fifo::log_line`): the time in RFC 3339.
        let writer_line =
            "time=2026-11-22T08:00:00.500000Z seq=3 status=1 pid=9 cwd=\"/tmp/a b\" cmd=\"ls\"";
        let c = parse_command_line(writer_line).unwrap();
        assert_eq!(c.time, Some(1_795_334_400.5));
        assert_eq!((c.status.as_deref(), c.cmd.as_str()), (Some("1"), "ls"));
        let (lines, _) = command_lines(writer_line.as_bytes(), UtcOffset::UTC);
        assert!(
            lines[0].starts_with("  08:00:00  [1]  /tmp/a b  $ ls"),
            "{lines:?}"
        );
        assert!(parse_command_line("garbage without command").is_none());
        let (lines, more) = command_lines(
            b"1795320012 status=0 cwd=/tmp cmd=rm -rf x\r\nBcc: evil\n\x1b]0;title\x07junk\n",
            UtcOffset::UTC,
        );
        assert_eq!(more, 0);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("[0]  /tmp  $ rm -rf x\\x0d"), "{lines:?}");
        assert_eq!(lines[1], "  (unparsed) Bcc: evil");
        assert!(
            lines[2].starts_with("  (unparsed) \\x1b]0;title\\x07junk"),
            "{lines:?}"
        );
    }

    #[test]
    fn body_has_what_an_auditor_needs() {
        let m = meta();
        let atts = vec![AttachmentInfo {
            name: "typescript.gz".into(),
            sent: FileSum {
                size: 10,
                sha256: "ab".repeat(32),
            },
            raw: Some(FileSum {
                size: 1234800,
                sha256: "cd".repeat(32),
            }),
        }];
        let text = render(&BodyInput {
            meta: &m,
            commands_log: Some(b"1795320012 status=0 cwd=/tmp cmd=id\n"),
            attachments: &atts,
            truncation: None,
            spool_dir: "/var/spool/auditty",
            attempt: 1,
        });
        for want in [
            "alice (uid 1000)",
            "203.0.113.5:51234",
            "2026-11-22 10:00:00+01:00",
            "2026-11-22 10:05:12+01:00",
            "5m12s",
            "the shell exited with status 0",
            "1,234,567 bytes",
            "$ id",
            &"ab".repeat(32),
            &"cd".repeat(32),
            "gunzip typescript.gz && scriptreplay -t timing typescript",
            "auditty play 20261122T090000Z-alice-0123456789ab",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("PROBLEMS"), "{text}");
    }
}
