//! Syslog events (session-start, command, session-end, delivery, error) as logfmt lines, through a logger that
//! reconnects after the syslog daemon restarts and never blocks or fails the session.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use syslog::{Facility, Formatter3164, Formatter5424, LogFormat, Severity};

use crate::config;
use crate::hook::fifo::CommandRecord;
use crate::record::meta::Meta;

/// Longest value of one field (bytes before escaping); longer values are cut and the line says `truncated=1`.
const MAX_VALUE: usize = 2048;
/// Connect and write timeout for TCP.
const NET_TIMEOUT: Duration = Duration::from_millis(500);

enum Target {
    None,
    Unix(PathBuf),
    Udp(String),
    Tcp(String),
}

enum Conn {
    Datagram(UnixDatagram),
    Stream(UnixStream),
    Udp(UdpSocket),
    Tcp(TcpStream),
}

/// A logger that never blocks or fails the caller; lines it cannot send are counted.
pub struct Logger {
    target: Target,
    facility: Facility,
    tag: String,
    hostname: String,
    conn: Option<Conn>,
    dropped: u64,
}

impl Logger {
    pub fn new(cfg: &config::Syslog) -> Logger {
        let t = cfg.target.as_str();
        let target = if let Some(p) = t.strip_prefix("unix:") {
            Target::Unix(PathBuf::from(p))
        } else if let Some(a) = t.strip_prefix("udp://") {
            Target::Udp(a.to_string())
        } else if let Some(a) = t.strip_prefix("tcp://") {
            Target::Tcp(a.to_string())
        } else {
            Target::None
        };
        let facility = cfg
            .facility
            .parse::<Facility>()
            .unwrap_or(Facility::LOG_AUTHPRIV);
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "-".into());
        Logger {
            target,
            facility,
            tag: cfg.tag.clone(),
            hostname,
            conn: None,
            dropped: 0,
        }
    }

    /// Lines that could not be sent.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Send one logfmt event; on failure reconnect once and retry, then count it as dropped.
    pub fn event(&mut self, severity: Severity, fields: &[(&str, Value<'_>)]) -> bool {
        if matches!(self.target, Target::None) {
            return true;
        }
        let line = logfmt(fields);
        let packet = self.format(severity, &line);
        for _ in 0..2 {
            if self.conn.is_none() {
                self.conn = self.connect();
            }
            if let Some(c) = &mut self.conn
                && send(c, &packet).is_ok()
            {
                return true;
            }
            self.conn = None;
        }
        self.dropped += 1;
        false
    }

    fn format(&self, severity: Severity, msg: &str) -> Vec<u8> {
        let pid = std::process::id();
        let mut out = Vec::with_capacity(msg.len() + 64);
        let res = match self.target {
            Target::Udp(_) | Target::Tcp(_) => Formatter5424 {
                facility: self.facility,
                hostname: Some(self.hostname.clone()),
                process: self.tag.clone(),
                pid,
            }
            .format(&mut out, severity, (0u32, Default::default(), msg)),
            _ => Formatter3164 {
                facility: self.facility,
                hostname: None,
                process: self.tag.clone(),
                pid,
            }
            .format(&mut out, severity, msg),
        };
        if res.is_err() {
            out.clear();
            out.extend_from_slice(msg.as_bytes());
        }
        if matches!(self.target, Target::Tcp(_)) {
            out.push(b'\n');
        }
        out
    }

    fn connect(&self) -> Option<Conn> {
        match &self.target {
            Target::None => None,
            Target::Unix(p) => {
                let d = UnixDatagram::unbound().ok()?;
                match d.connect(p) {
                    Ok(()) => {
                        d.set_nonblocking(true).ok()?;
                        Some(Conn::Datagram(d))
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                        let s = UnixStream::connect(p).ok()?;
                        s.set_write_timeout(Some(NET_TIMEOUT)).ok()?;
                        Some(Conn::Stream(s))
                    }
                    Err(_) => None,
                }
            }
            Target::Udp(a) => {
                let addr = a.to_socket_addrs().ok()?.next()?;
                let local = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = UdpSocket::bind(local).ok()?;
                s.connect(addr).ok()?;
                s.set_nonblocking(true).ok()?;
                Some(Conn::Udp(s))
            }
            Target::Tcp(a) => {
                let addr = a.to_socket_addrs().ok()?.next()?;
                let s = TcpStream::connect_timeout(&addr, NET_TIMEOUT).ok()?;
                s.set_write_timeout(Some(NET_TIMEOUT)).ok()?;
                Some(Conn::Tcp(s))
            }
        }
    }
}

fn send(c: &mut Conn, packet: &[u8]) -> std::io::Result<()> {
    match c {
        Conn::Datagram(d) => d.send(packet).map(|_| ()),
        Conn::Stream(s) => {
            s.write_all(packet)?;
            s.write_all(b"\0")
        }
        Conn::Udp(u) => u.send(packet).map(|_| ()),
        Conn::Tcp(t) => {
            // A peer that closed shows up as an error on the next write; probe so the message is not lost.
            let mut probe = [0u8; 1];
            t.set_nonblocking(true)?;
            let closed = matches!(std::io::Read::read(t, &mut probe), Ok(0));
            t.set_nonblocking(false)?;
            if closed {
                return Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
            }
            t.write_all(packet)
        }
    }
}

/// A field value: text (escaped and quoted as needed) or raw bytes from the user (non-UTF-8 escaped).
pub enum Value<'a> {
    Str(&'a str),
    Bytes(&'a [u8]),
    Num(i64),
}

impl From<&'static str> for Value<'static> {
    fn from(s: &'static str) -> Self {
        Value::Str(s)
    }
}

/// Render fields as one logfmt line. Values with spaces, quotes, `=` or escapes are double-quoted; `"` and `\`
/// are backslash-escaped; control characters, invisible format characters and non-UTF-8 bytes become `\xHH` /
/// `\u{…}`; values over MAX_VALUE bytes are cut and `truncated=1` is appended.
pub fn logfmt(fields: &[(&str, Value<'_>)]) -> String {
    let mut out = String::new();
    let mut truncated = false;
    for (k, v) in fields {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(k);
        out.push('=');
        match v {
            Value::Num(n) => out.push_str(&n.to_string()),
            Value::Str(s) => truncated |= push_value(&mut out, s.as_bytes()),
            Value::Bytes(b) => truncated |= push_value(&mut out, b),
        }
    }
    if truncated {
        out.push_str(" truncated=1");
    }
    out
}

fn push_value(out: &mut String, bytes: &[u8]) -> bool {
    let cut = bytes.len() > MAX_VALUE;
    let bytes = &bytes[..bytes.len().min(MAX_VALUE)];
    let mut esc = String::with_capacity(bytes.len());
    let mut needs_quotes = bytes.is_empty();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => esc.push_str("\\\""),
                '\\' => esc.push_str("\\\\"),
                '\n' => esc.push_str("\\n"),
                '\r' => esc.push_str("\\r"),
                '\t' => esc.push_str("\\t"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    esc.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() || is_invisible(c) => {
                    esc.push_str(&format!("\\u{{{:x}}}", c as u32))
                }
                c => esc.push(c),
            }
            needs_quotes |= c == ' '
                || c == '"'
                || c == '='
                || c == '\\'
                || (c as u32) < 0x20
                || c as u32 == 0x7f;
        }
        for b in chunk.invalid() {
            esc.push_str(&format!("\\x{b:02x}"));
            needs_quotes = true;
        }
    }
    needs_quotes |= esc.contains('\\');
    if needs_quotes {
        out.push('"');
        out.push_str(&esc);
        out.push('"');
    } else {
        out.push_str(&esc);
    }
    cut
}

/// Characters that change how text displays without being visible (bidi overrides, zero-width): always escaped.
fn is_invisible(c: char) -> bool {
    matches!(c as u32, 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2069 | 0xfeff)
}

fn opt<'a>(s: &'a Option<String>) -> Value<'a> {
    Value::Str(s.as_deref().unwrap_or("-"))
}

/// `event=session-start rec=… user=… uid=… login_uid=… host=… tty=… from=… shell=… pid=…`
pub fn session_start(log: &mut Logger, m: &Meta) {
    let login_uid = m.login_uid.unwrap_or(m.uid) as i64;
    log.event(
        Severity::LOG_INFO,
        &[
            ("event", "session-start".into()),
            ("rec", Value::Str(&m.id)),
            ("user", Value::Str(&m.user)),
            ("uid", Value::Num(m.uid as i64)),
            ("login_uid", Value::Num(login_uid)),
            ("host", Value::Str(&m.host)),
            ("tty", opt(&m.tty)),
            ("from", opt(&m.ssh_client)),
            ("shell", Value::Str(&m.shell)),
            ("pid", Value::Num(m.relay_pid as i64)),
        ],
    );
}

/// `event=command rec=… seq=… user=… tty=… cwd=… status=… cmd="…"`
pub fn command(log: &mut Logger, m: &Meta, rec: &CommandRecord) {
    log.event(
        Severity::LOG_INFO,
        &[
            ("event", "command".into()),
            ("rec", Value::Str(&m.id)),
            ("seq", Value::Num(rec.seq as i64)),
            ("user", Value::Str(&m.user)),
            ("tty", opt(&m.tty)),
            ("cwd", Value::Bytes(&rec.cwd)),
            ("status", Value::Num(rec.status as i64)),
            ("cmd", Value::Bytes(&rec.cmd)),
        ],
    );
}

/// `event=session-end rec=… duration=… exit=… end=… bytes_out=… sha256_typescript=… sha256_timing=… syslog_dropped=…`
pub fn session_end(log: &mut Logger, m: &Meta) {
    let sha = |name: &str| {
        m.files
            .get(name)
            .map(|f| f.sha256.clone())
            .unwrap_or_else(|| "-".into())
    };
    let duration = format!("{:.3}", m.duration_secs.unwrap_or(0.0));
    let exit = m
        .exit_status
        .map(|e| e.to_string())
        .unwrap_or_else(|| "-".into());
    let end = m.end_reason.map(|r| r.as_str()).unwrap_or("-");
    let (sha_ts, sha_tm) = (sha("typescript"), sha("timing"));
    let dropped = log.dropped() as i64;
    log.event(
        Severity::LOG_INFO,
        &[
            ("event", "session-end".into()),
            ("rec", Value::Str(&m.id)),
            ("user", Value::Str(&m.user)),
            ("duration", Value::Str(&duration)),
            ("exit", Value::Str(&exit)),
            ("end", Value::Str(end)),
            ("bytes_out", Value::Num(m.bytes_out as i64)),
            ("commands", Value::Num(m.commands as i64)),
            ("sha256_typescript", Value::Str(&sha_ts)),
            ("sha256_timing", Value::Str(&sha_tm)),
            ("syslog_dropped", Value::Num(dropped)),
        ],
    );
}

/// `event=delivery rec=… result=sent|queued|failed attempt=… error="…"`
pub fn delivery(log: &mut Logger, rec: &str, result: &str, attempt: u32, error: Option<&str>) {
    let sev = if result == "sent" {
        Severity::LOG_INFO
    } else {
        Severity::LOG_WARNING
    };
    let mut f = vec![
        ("event", Value::from("delivery")),
        ("rec", Value::Str(rec)),
        ("result", Value::Str(result)),
        ("attempt", Value::Num(attempt as i64)),
    ];
    if let Some(e) = error {
        f.push(("error", Value::Str(e)));
    }
    log.event(sev, &f);
}

/// `event=error rec=… error="…"`: something an administrator must look at.
pub fn error(log: &mut Logger, rec: &str, msg: &str) {
    log.event(
        Severity::LOG_ERR,
        &[
            ("event", "error".into()),
            ("rec", Value::Str(rec)),
            ("error", Value::Str(msg)),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quotes_and_escapes() {
        let line = logfmt(&[
            ("a", Value::Str("plain")),
            ("b", Value::Str("two words")),
            ("c", Value::Bytes(b"say \"hi\"\\\n\x1b[31m\xff")),
            ("d", Value::Str("")),
            ("e", Value::Num(-3)),
            ("f", Value::Str("x\u{202e}y")),
        ]);
        assert_eq!(
            line,
            r#"a=plain b="two words" c="say \"hi\"\\\n\x1b[31m\xff" d="" e=-3 f="x\u{202e}y""#
        );
    }

    #[test]
    fn logfmt_cannot_forge_a_line_and_caps_length() {
        let evil = "x\nJan  1 00:00:00 host auditty[1]: event=command cmd=fake";
        let line = logfmt(&[("cmd", Value::Str(evil))]);
        assert!(!line.contains('\n'));
        let long = "y".repeat(MAX_VALUE + 10);
        let line = logfmt(&[("cmd", Value::Str(&long))]);
        assert!(line.ends_with(" truncated=1"));
        assert!(line.len() < MAX_VALUE + 40);
    }

    #[test]
    fn unreachable_target_counts_drops_without_blocking() {
        let cfg = config::Syslog {
            target: "unix:/nonexistent/auditty-test.sock".into(),
            ..Default::default()
        };
        let mut l = Logger::new(&cfg);
        let t = std::time::Instant::now();
        assert!(!l.event(Severity::LOG_INFO, &[("event", "x".into())]));
        assert_eq!(l.dropped(), 1);
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn unix_datagram_delivery_and_reconnect() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.sock");
        let cfg = config::Syslog {
            target: format!("unix:{}", p.display()),
            ..Default::default()
        };
        let mut l = Logger::new(&cfg);
        let srv = UnixDatagram::bind(&p).unwrap();
        assert!(l.event(Severity::LOG_INFO, &[("event", "one".into())]));
        let mut buf = [0u8; 512];
        let n = srv.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            got.starts_with("<86>") && got.ends_with("event=one"),
            "{got}"
        );
        // The daemon restarts: a new socket at the same path.
        drop(srv);
        std::fs::remove_file(&p).unwrap();
        let srv = UnixDatagram::bind(&p).unwrap();
        assert!(l.event(Severity::LOG_INFO, &[("event", "two".into())]));
        let n = srv.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with("event=two"));
    }
}
