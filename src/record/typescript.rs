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

/// `Script started on <time> [COMMAND="…" TERM="…" TTY="…" COLUMNS="n" LINES="n"]\n`
/// (newlines in the command become spaces, as in `script`; quotes are kept as they are). Without a terminal
/// (`tty` is `None`, the same test the writer uses for the TERM/TTY/COLUMNS/LINES H entries) the terminal fields
/// are replaced by `<not executed on terminal>`, as `script` does.
pub fn header(start: &str, info: &HeaderInfo<'_>) -> Vec<u8> {
    let mut fields = Vec::new();
    if let Some(c) = info.command {
        fields.push(format!("COMMAND=\"{}\"", c.replace('\n', " ")));
    }
    if let Some(tty) = info.tty {
        if let Some(t) = info.term {
            fields.push(format!("TERM=\"{}\"", t.replace('\n', " ")));
        }
        fields.push(format!("TTY=\"{}\"", tty.replace('\n', " ")));
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn time_has_offset() {
        let t = OffsetDateTime::from_unix_timestamp(1_795_320_000).unwrap();
        assert_eq!(
            script_time(t, UtcOffset::from_hms(-5, 0, 0).unwrap()),
            "2026-11-21 23:00:00-05:00"
        );
    }
}
