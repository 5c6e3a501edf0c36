//! The typescript (data) file's header and footer lines, exactly as util-linux 2.38 `script` writes them (and the
//! header read back).

use time::{OffsetDateTime, UtcOffset, macros::format_description};

/// `YYYY-MM-DD HH:MM:SS+HH:MM` in the given offset, as `script` prints times.
pub fn script_time(t: OffsetDateTime, offset: UtcOffset) -> String {
    let fmt = format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
    );
    t.to_offset(offset).format(&fmt).expect("time formats")
}

/// What the header says about the terminal.
pub struct HeaderInfo<'a> {
    pub command: Option<&'a str>,
    pub term: Option<&'a str>,
    pub tty: Option<&'a str>,
    pub columns: u16,
    pub lines: u16,
}

/// A value for a header field or an H entry, on one line and free of control characters: CR and LF become spaces
/// (as `script` makes newlines), tabs stay, any other control character (ESC, BEL, C1: aimed at the auditor's
/// terminal when the header is printed) becomes `?`.
pub fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '\n' | '\r' => ' ',
            '\t' => '\t',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

/// `Script started on <time> [COMMAND="…" TERM="…" TTY="…" COLUMNS="n" LINES="n"]\n`
/// (values made `one_line`: newlines become spaces, as in `script`; quotes are kept as they are). Without a terminal
/// (`tty` is `None`, the same test the writer uses for the TERM/TTY/COLUMNS/LINES H entries) the terminal fields
/// are replaced by `<not executed on terminal>`, as `script` does.
pub fn header(start: &str, info: &HeaderInfo<'_>) -> Vec<u8> {
    let mut fields = Vec::new();
    if let Some(c) = info.command {
        fields.push(format!("COMMAND=\"{}\"", one_line(c)));
    }
    if let Some(tty) = info.tty {
        if let Some(t) = info.term {
            fields.push(format!("TERM=\"{}\"", one_line(t)));
        }
        fields.push(format!("TTY=\"{}\"", one_line(tty)));
        fields.push(format!(
            "COLUMNS=\"{}\" LINES=\"{}\"",
            info.columns, info.lines
        ));
    } else {
        fields.push("<not executed on terminal>".to_string());
    }
    format!("Script started on {start} [{}]\n", fields.join(" ")).into_bytes()
}

/// What a header line written by `header` says; read back for a recording whose meta.json is lost.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParsedHeader {
    /// `YYYY-MM-DD HH:MM:SS+HH:MM`, as written.
    pub start: String,
    pub command: Option<String>,
    pub term: Option<String>,
    pub tty: Option<String>,
    pub columns: u16,
    pub lines: u16,
}

/// Parse a `Script started on …` line (as `header` writes it, with or without its newline). The fields are taken
/// from the right, where their values cannot hold quotes (TTY, COLUMNS, LINES); the command is what remains. `None`
/// for anything else.
pub fn parse_header(line: &[u8]) -> Option<ParsedHeader> {
    let line = std::str::from_utf8(line).ok()?;
    let rest = line.strip_suffix('\n').unwrap_or(line);
    let rest = rest.strip_prefix("Script started on ")?;
    let (start, fields) = rest.split_once(" [")?;
    let fields = format!(" {}", fields.strip_suffix(']')?);
    let mut h = ParsedHeader {
        start: start.to_string(),
        ..ParsedHeader::default()
    };
    // ` KEY="value"` at the end of `s`: (the rest, value).
    fn last_field<'a>(s: &'a str, key: &str) -> Option<(&'a str, &'a str)> {
        let (before, value) = s.rsplit_once(&format!(" {key}=\""))?;
        Some((before, value.strip_suffix('"')?))
    }
    let mut rest = fields.as_str();
    if let Some(r) = rest.strip_suffix(" <not executed on terminal>") {
        rest = r;
    } else {
        let (r, lines) = last_field(rest, "LINES")?;
        let (r, columns) = last_field(r, "COLUMNS")?;
        let (r, tty) = last_field(r, "TTY")?;
        h.lines = lines.parse().ok()?;
        h.columns = columns.parse().ok()?;
        h.tty = Some(tty.to_string());
        rest = r;
        // script writes the command unescaped, so a command holding `" TERM="` reads the same as a real TERM
        // field; a value that is no terminal name (e.g. `x ; evil`) stays part of the command. (Only a rebuilt meta
        // reads the header; the header line itself stays in the typescript for the auditor.)
        let terminal_name = |t: &str| {
            !t.is_empty()
                && t.len() <= 64
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c))
        };
        if let Some((r, term)) = last_field(rest, "TERM").filter(|(_, t)| terminal_name(t)) {
            h.term = Some(term.to_string());
            rest = r;
        }
    }
    if !rest.is_empty() {
        let c = rest.strip_prefix(" COMMAND=\"")?.strip_suffix('"')?;
        h.command = Some(c.to_string());
    }
    Some(h)
}

/// The footer mark of a recording whose relay vanished without an End frame (the spool writer's `finish`).
pub const KILLED_MARK: &str = "recorder killed";

/// `\nScript done on <time> [<status>]\n`, with status `COMMAND_EXIT_CODE="n"` or an explicit mark such as
/// `<recorder killed>`.
pub fn footer(end: &str, exit_code: Option<i32>, mark: Option<&str>) -> Vec<u8> {
    let status = match (exit_code, mark) {
        (_, Some(m)) => format!("<{m}>"),
        (Some(c), None) => format!("COMMAND_EXIT_CODE=\"{c}\""),
        (None, None) => "<exit code unknown>".to_string(),
    };
    format!("\nScript done on {end} [{status}]\n").into_bytes()
}

/// A footer as `footer` writes it, read back: the end time as written, the exit code, the mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// `YYYY-MM-DD HH:MM:SS+HH:MM`, as written.
    pub end: String,
    pub exit_code: Option<i32>,
    /// The explicit mark (`recorder killed`, …) in place of the exit code.
    pub mark: Option<String>,
}

impl Footer {
    /// The footer's bytes, exactly as `footer` writes them.
    pub fn bytes(&self) -> Vec<u8> {
        footer(&self.end, self.exit_code, self.mark.as_deref())
    }
}

/// The longest footer `footer_at_end` recognises (a time of 25 bytes and a mark of a few dozen): the bytes of a data
/// file's end a caller needs to hand it.
pub const FOOTER_MAX: usize = 512;

/// The footer `footer` writes, if `tail` (the last bytes of a typescript or input log) ends with exactly one:
/// `\nScript done on <time> [<status>]\n`, the time in `script_time`'s format, the status `COMMAND_EXIT_CODE="n"`,
/// `<exit code unknown>` or `<mark>`. Anything that would not be written byte for byte the same (another time
/// format, `"+1"` or `"01"` as an exit code, bytes after the newline) is `None`. Whether the bytes are the writer's
/// footer or output that looks like one, the caller decides (the timing covers output, never the footer).
pub fn footer_at_end(tail: &[u8]) -> Option<Footer> {
    const START: &[u8] = b"\nScript done on ";
    let body = tail.strip_suffix(b"\n")?;
    let at = body.windows(START.len()).rposition(|w| w == START)?;
    let line = std::str::from_utf8(&body[at + START.len()..]).ok()?;
    let (end, status) = line.split_once(" [")?;
    let status = status.strip_suffix(']')?;
    let fmt = format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
    );
    // Strictly `script_time`'s format: what it would print for the time it parses to.
    if OffsetDateTime::parse(end, &fmt).ok()?.format(&fmt).ok()? != end {
        return None;
    }
    let (exit_code, mark) = if let Some(code) = status
        .strip_prefix("COMMAND_EXIT_CODE=\"")
        .and_then(|c| c.strip_suffix('"'))
    {
        (Some(code.parse().ok()?), None)
    } else if status == "<exit code unknown>" {
        (None, None)
    } else {
        let m = status.strip_prefix('<')?.strip_suffix('>')?;
        if m.is_empty() || m.contains(['<', '>', '\n']) {
            return None;
        }
        (None, Some(m.to_string()))
    };
    let f = Footer {
        end: end.to_string(),
        exit_code,
        mark,
    };
    (f.bytes() == tail[at..]).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TERM (or command) holding terminal controls cannot reach the auditor's terminal through the header, nor
    /// forge a line: only the header's own newline is left, and the text around the controls stays.
    #[test]
    fn header_values_carry_no_control_characters() {
        let term = "xterm\u{1b}]0;pwned\u{7}\nH 0.000000 FAKE\r\u{9b}31m\tx";
        let h = header(
            "2026-11-22 03:58:47+00:00",
            &HeaderInfo {
                command: Some(term),
                term: Some(term),
                tty: Some("/dev/pts/0"),
                columns: 80,
                lines: 24,
            },
        );
        let text = String::from_utf8(h).unwrap();
        let body = text.strip_suffix('\n').unwrap();
        assert!(
            !body.chars().any(|c| c.is_control() && c != '\t'),
            "{body:?}"
        );
        assert!(
            body.contains("TERM=\"xterm?]0;pwned? H 0.000000 FAKE ?31m\tx\""),
            "{body:?}"
        );
        let mut t =
            crate::record::timing::TimingWriter::new(crate::config::TimingFormat::Advanced, 0);
        let mut buf = Vec::new();
        t.info(&mut buf, "TERM", term);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "H 0.000000 TERM xterm?]0;pwned? H 0.000000 FAKE ?31m\tx\n"
        );
    }

    #[test]
    fn header_matches_script() {
        let h = header(
            "2026-11-22 03:58:47+00:00",
            &HeaderInfo {
                command: Some("echo hi;\necho x"),
                term: Some("xterm-256color"),
                tty: Some("/dev/pts/0"),
                columns: 100,
                lines: 30,
            },
        );
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "Script started on 2026-11-22 03:58:47+00:00 [COMMAND=\"echo hi; echo x\" TERM=\"xterm-256color\" TTY=\"/dev/pts/0\" COLUMNS=\"100\" LINES=\"30\"]\n"
        );
    }

    #[test]
    fn a_header_reads_back_as_written() {
        let full = HeaderInfo {
            command: Some("echo \"TTY=\\\"x\\\"\""),
            term: Some("xterm-256color"),
            tty: Some("/dev/pts/0"),
            columns: 100,
            lines: 30,
        };
        let bare = HeaderInfo {
            command: None,
            term: None,
            tty: Some("/dev/pts/3"),
            columns: 80,
            lines: 24,
        };
        let no_tty = HeaderInfo {
            command: Some("ls"),
            term: None,
            tty: None,
            columns: 0,
            lines: 0,
        };
        for info in [full, bare, no_tty] {
            let h = parse_header(&header("2026-11-22 03:58:47+01:00", &info)).unwrap();
            assert_eq!(h.start, "2026-11-22 03:58:47+01:00");
            assert_eq!(h.command.as_deref(), info.command);
            assert_eq!(h.term.as_deref(), info.term);
            assert_eq!(h.tty.as_deref(), info.tty);
            assert_eq!((h.columns, h.lines), (info.columns, info.lines));
        }
        assert_eq!(parse_header(b"partial output"), None);
        assert_eq!(
            parse_header(b"Script started on x [TTY=\"/dev/pts/1\"]\n"),
            None
        );
        // A command shaped like a TERM field whose value is no terminal name stays the command.
        let shaped = header(
            "2026-11-22 03:58:47+00:00",
            &HeaderInfo {
                command: Some("innocent\" TERM=\"x ; evil"),
                term: None,
                tty: Some("/dev/pts/4"),
                columns: 80,
                lines: 24,
            },
        );
        let h = parse_header(&shaped).unwrap();
        assert_eq!(h.command.as_deref(), Some("innocent\" TERM=\"x ; evil"));
        assert_eq!(h.term, None);
    }

    #[test]
    fn header_without_a_terminal_matches_script() {
        let info = |command| HeaderInfo {
            command,
            term: Some("xterm"),
            tty: None,
            columns: 0,
            lines: 0,
        };
        assert_eq!(
            String::from_utf8(header("T", &info(Some("true")))).unwrap(),
            "Script started on T [COMMAND=\"true\" <not executed on terminal>]\n"
        );
        assert_eq!(
            String::from_utf8(header("T", &info(None))).unwrap(),
            "Script started on T [<not executed on terminal>]\n"
        );
    }

    #[test]
    fn footer_matches_script() {
        assert_eq!(
            footer("2026-11-22 03:58:47+00:00", Some(7), None),
            b"\nScript done on 2026-11-22 03:58:47+00:00 [COMMAND_EXIT_CODE=\"7\"]\n"
        );
        assert_eq!(
            footer("T", Some(0), Some("recorder killed")),
            b"\nScript done on T [<recorder killed>]\n"
        );
    }

    #[test]
    fn a_footer_reads_back_as_written() {
        let end = "2026-11-22 03:58:47+01:00";
        for (code, mark) in [
            (Some(0), None),
            (Some(-1), None),
            (Some(255), None),
            (None, Some("recorder killed")),
            (None, Some("incomplete: recovered by auditty flush")),
            (None, None),
        ] {
            let written = footer(end, code, mark);
            for before in [&b""[..], b"output\r\n", b"Script done on x [y]\n"] {
                let mut ts = b"Script started on T [<not executed on terminal>]\n".to_vec();
                ts.extend_from_slice(before);
                ts.extend_from_slice(&written);
                let f = footer_at_end(&ts).unwrap_or_else(|| panic!("{code:?} {mark:?}"));
                assert_eq!(f.end, end);
                assert_eq!((f.exit_code, f.mark.as_deref()), (code, mark));
                assert_eq!(f.bytes(), written);
                assert_eq!(
                    footer_at_end(&written).as_ref(),
                    Some(&f),
                    "the footer alone"
                );
            }
        }
        // A mark that replaces the exit code reads back as the mark (it is all the footer says).
        let f = footer_at_end(&footer(end, Some(3), Some("recorder killed"))).unwrap();
        assert_eq!(
            (f.exit_code, f.mark.as_deref()),
            (None, Some("recorder killed"))
        );
        assert!(footer(end, None, None).len() < FOOTER_MAX);
    }

    #[test]
    fn only_a_footer_as_written_is_one() {
        let ok = footer("2026-11-22 03:58:47+01:00", Some(7), None);
        let mut trailing = ok.clone();
        trailing.extend_from_slice(b"$ ");
        let mut cut = ok.clone();
        cut.pop();
        for bad in [
            &b""[..],
            &trailing,
            &cut,
            &ok[1..], // no newline before it
            b"\nScript done on 2026-11-22 03:58:47 [COMMAND_EXIT_CODE=\"7\"]\n",
            b"\nScript done on 2026-11-22 03:58:47+01:00 [COMMAND_EXIT_CODE=\"+7\"]\n",
            b"\nScript done on 2026-11-22 03:58:47+01:00 [COMMAND_EXIT_CODE=\"07\"]\n",
            b"\nScript done on 2026-11-22 03:58:47+01:00 [COMMAND_EXIT_CODE=\"x\"]\n",
            b"\nScript done on 2026-11-22 03:58:47+01:00 [<>]\n",
            b"\nScript done on 2026-11-22 03:58:47+01:00 [killed]\n",
            b"\nScript done on 2026-11-22 03:58:47+01:00 [<a> <b>]\n",
            b"\nScript done on 2026-11-22 03:58:47+01:00 [<a>]\nmore\n",
            b"\nScript done on 2026-13-22 03:58:47+01:00 [<a>]\n",
        ] {
            assert_eq!(footer_at_end(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn time_has_offset() {
        let t = OffsetDateTime::from_unix_timestamp(1_795_320_000).unwrap();
        assert_eq!(
            script_time(t, UtcOffset::from_hms(-5, 0, 0).unwrap()),
            "2026-11-21 23:00:00-05:00"
        );
    }
}
