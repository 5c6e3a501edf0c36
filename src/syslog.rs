//! Syslog events (session-start, command, session-end, delivery, error) as logfmt lines, sent through a logger
//! that reconnects after the syslog daemon restarts and never blocks the caller for long or fails it.
//!
//! * Targets (`syslog.target`): `unix:PATH` (RFC 3164, like glibc's syslog(3): local time stamp, no host name;
//!   datagram socket, or a stream socket with NUL framing if the path is one), `udp://host:port` and
//!   `tcp://host:port` (RFC 5424 with the event name as MSGID; one message per line on TCP), `none`.
//! * Messages that cannot be sent wait in a bounded queue and go out, in order, once the daemon is back (on the
//!   next event or `tick`); what overflows the queue or is still waiting at the end is counted in `dropped`.
//!   Every event is also in the recording (`commands.log`, `meta.json`), so nothing is only in syslog.
//! * Values are escaped so that a crafted command can never forge a line or hide text: `"` and `\` are
//!   backslash-escaped, newline/CR/tab as `\n` `\r` `\t`, every other control byte and every byte that is not
//!   UTF-8 as `\xHH`, C1 controls and the Unicode format characters that reorder or hide text (bidi overrides,
//!   zero-width, line/paragraph separators) as `\uHHHH`. A message is capped at `SYSLOG_MSG_MAX` bytes; a cut
//!   message ends in `truncated=1`.

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use time::{OffsetDateTime, UtcOffset};

use crate::config;
use crate::hook::fifo::CommandRecord;
use crate::record::meta::Meta;

/// Longest logfmt message sent to syslog (the header comes on top; rsyslog accepts 8 KiB by default).
pub const SYSLOG_MSG_MAX: usize = 4000;
/// Longest line in commands.log.
pub const LOG_LINE_MAX: usize = 320 << 10;
/// Messages kept while the daemon is unreachable.
const MAX_PENDING: usize = 1000;
const MAX_PENDING_BYTES: usize = 1 << 20;
/// Network connects and writes give up after this long.
const NET_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed connect to a network target, wait this long before the next try (events queue meanwhile).
const NET_BACKOFF: Duration = Duration::from_secs(1);
/// Longest value of an ordinary field (user, tty, …); cwd and cmd/error have their own limits.
const FIELD_MAX: usize = 256;
const CWD_MAX: usize = 1024;

const SEV_ERR: u8 = 3;
const SEV_WARNING: u8 = 4;
pub const SEV_INFO: u8 = 6;

// ---------------------------------------------------------------------------------------------------------------
// logfmt

/// A logfmt line under construction: `key=value` pairs, values escaped and quoted as needed.
#[derive(Default)]
pub struct Event {
    fields: Vec<(&'static str, Value)>,
}

enum Value {
    /// Escaped as needed, quoted only if it must be.
    Plain(Vec<u8>, usize),
    /// Always quoted (cmd, error).
    Quoted(Vec<u8>, usize),
}

impl Event {
    pub fn new() -> Event {
        Event::default()
    }

    pub fn text(&mut self, key: &'static str, v: &str) -> &mut Event {
        self.fields
            .push((key, Value::Plain(v.as_bytes().to_vec(), FIELD_MAX)));
        self
    }

    pub fn bytes(&mut self, key: &'static str, v: &[u8]) -> &mut Event {
        self.fields.push((key, Value::Plain(v.to_vec(), CWD_MAX)));
        self
    }

    pub fn num(&mut self, key: &'static str, v: u64) -> &mut Event {
        self.text(key, &v.to_string())
    }

    pub fn int(&mut self, key: &'static str, v: i64) -> &mut Event {
        self.text(key, &v.to_string())
    }

    /// `key="…"`, always quoted, limited only by the line's cap (put it last).
    pub fn quoted(&mut self, key: &'static str, v: &[u8]) -> &mut Event {
        self.fields
            .push((key, Value::Quoted(v.to_vec(), usize::MAX)));
        self
    }

    /// The line, at most `max` bytes; ` truncated=1` at the end if anything was cut.
    pub fn render(&self, max: usize) -> String {
        const MARK: &str = " truncated=1";
        let has_mark = self.fields.iter().any(|(k, _)| *k == "truncated");
        let budget = max.saturating_sub(MARK.len()).max(16);
        let mut out = String::new();
        let mut cut = false;
        for (key, v) in &self.fields {
            let (bytes, limit, always) = match v {
                Value::Plain(b, l) => (b, *l, false),
                Value::Quoted(b, l) => (b, *l, true),
            };
            let sep = usize::from(!out.is_empty());
            // "key=" and, if quoted, the two quotes.
            let fixed = sep + key.len() + 1 + 2;
            if out.len() + fixed > budget {
                cut = true;
                break;
            }
            let room = (budget - out.len() - fixed).min(limit);
            let (esc, quote, this_cut) = escape(bytes, room, always);
            if sep == 1 {
                out.push(' ');
            }
            out.push_str(key);
            out.push('=');
            if quote {
                out.push('"');
                out.push_str(&esc);
                out.push('"');
            } else {
                out.push_str(&esc);
            }
            if this_cut {
                cut = true;
                if limit == usize::MAX || out.len() + 8 > budget {
                    break;
                }
            }
        }
        if cut && !has_mark {
            out.push_str(MARK);
        }
        out
    }
}

/// Escape `v` into at most `room` bytes. Returns (text, needs quotes, was cut).
fn escape(v: &[u8], room: usize, always_quote: bool) -> (String, bool, bool) {
    let mut out = String::new();
    let mut quote = always_quote || v.is_empty();
    let mut cut = false;
    let push = |out: &mut String, unit: &str, quote_it: bool, q: &mut bool| -> bool {
        if out.len() + unit.len() > room {
            return false;
        }
        if quote_it {
            *q = true;
        }
        out.push_str(unit);
        true
    };
    'outer: for chunk in v.utf8_chunks() {
        for c in chunk.valid().chars() {
            let mut buf = [0u8; 4];
            let ok = match c {
                '"' => push(&mut out, "\\\"", true, &mut quote),
                '\\' => push(&mut out, "\\\\", true, &mut quote),
                '\n' => push(&mut out, "\\n", true, &mut quote),
                '\r' => push(&mut out, "\\r", true, &mut quote),
                '\t' => push(&mut out, "\\t", true, &mut quote),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    push(&mut out, &format!("\\x{:02x}", c as u32), true, &mut quote)
                }
                c if hides_text(c) => {
                    push(&mut out, &format!("\\u{:04x}", c as u32), true, &mut quote)
                }
                ' ' | '=' => push(&mut out, c.encode_utf8(&mut buf), true, &mut quote),
                c => push(&mut out, c.encode_utf8(&mut buf), !c.is_ascii(), &mut quote),
            };
            if !ok {
                cut = true;
                break 'outer;
            }
        }
        for b in chunk.invalid() {
            if !push(&mut out, &format!("\\x{b:02x}"), true, &mut quote) {
                cut = true;
                break 'outer;
            }
        }
    }
    (out, quote, cut)
}

/// C1 controls and format characters that reorder, hide or break lines on display.
fn hides_text(c: char) -> bool {
    matches!(c as u32,
        0x80..=0x9f
        | 0xad
        | 0x061c
        | 0x180e
        | 0x200b..=0x200f
        | 0x2028..=0x202e
        | 0x2060..=0x2069
        | 0xfeff
        | 0xfff9..=0xfffb)
}

// ---------------------------------------------------------------------------------------------------------------
// transport

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    None,
    Unix(PathBuf),
    Udp(String),
    Tcp(String),
}

impl Target {
    fn parse(s: &str) -> Target {
        if let Some(p) = s.strip_prefix("unix:") {
            Target::Unix(PathBuf::from(p))
        } else if let Some(a) = s.strip_prefix("udp://") {
            Target::Udp(a.trim_end_matches('/').to_string())
        } else if let Some(a) = s.strip_prefix("tcp://") {
            Target::Tcp(a.trim_end_matches('/').to_string())
        } else {
            Target::None
        }
    }
}

enum Conn {
    Dgram(UnixDatagram),
    Stream(UnixStream),
    Udp(UdpSocket),
    Tcp(TcpStream),
}

/// A logger that never blocks the caller for long (bounded timeouts) and never fails it; lines it cannot send
/// are kept for later, then counted.
pub struct Logger {
    target: Target,
    facility: u8,
    tag: String,
    host: String,
    pid: u32,
    offset: UtcOffset,
    conn: Option<Conn>,
    pending: VecDeque<Vec<u8>>,
    pending_bytes: usize,
    overflowed: u64,
    retry_at: Option<Instant>,
    addr: Option<SocketAddr>,
}

impl Logger {
    pub fn new(cfg: &config::Syslog) -> Logger {
        Logger {
            target: Target::parse(&cfg.target),
            facility: config::facility_code(&cfg.facility).unwrap_or(10),
            tag: cfg.tag.clone(),
            host: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "-".into()),
            pid: std::process::id(),
            offset: UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC),
            conn: None,
            pending: VecDeque::new(),
            pending_bytes: 0,
            overflowed: 0,
            retry_at: None,
            addr: None,
        }
    }

    /// Send one event (a logfmt message) with a severity and an event name (the RFC 5424 MSGID). Returns
    /// false when it could not be sent now (it is queued and retried).
    pub fn send(&mut self, severity: u8, name: &str, msg: &str) -> bool {
        if self.target == Target::None {
            return true;
        }
        let frame = self.format(severity, name, msg);
        let full = self.pending.len() >= MAX_PENDING
            || self.pending_bytes + frame.len() > MAX_PENDING_BYTES;
        if full && let Some(old) = self.pending.pop_front() {
            self.pending_bytes -= old.len();
            self.overflowed += 1;
        }
        self.pending_bytes += frame.len();
        self.pending.push_back(frame);
        self.flush()
    }

    /// Retry queued messages (the spool writer calls this now and then).
    pub fn tick(&mut self) {
        if !self.pending.is_empty() {
            self.flush();
        }
    }

    /// Messages lost so far: pushed out of the full queue, or still waiting.
    pub fn dropped(&self) -> u64 {
        self.overflowed + self.pending.len() as u64
    }

    /// Send what is queued now, without waiting out the reconnect back-off (at the end of a session).
    pub fn flush_now(&mut self) -> bool {
        self.retry_at = None;
        self.flush()
    }

    /// Try to send everything queued, in order; true if the queue is empty afterwards.
    pub fn flush(&mut self) -> bool {
        while let Some(frame) = self.pending.front().cloned() {
            if self.conn.is_none() && !self.connect() {
                return false;
            }
            match self.write(&frame) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(_) => {
                    // The daemon went away (restart): a fresh connection, and one more try.
                    self.conn = None;
                    if !self.connect() || self.write(&frame).is_err() {
                        self.conn = None;
                        return false;
                    }
                }
            }
            if let Some(f) = self.pending.pop_front() {
                self.pending_bytes -= f.len();
            }
        }
        true
    }

    fn connect(&mut self) -> bool {
        if let Some(t) = self.retry_at {
            if Instant::now() < t {
                return false;
            }
            self.retry_at = None;
        }
        let conn = match self.target.clone() {
            Target::None => return false,
            Target::Unix(p) => connect_unix(&p),
            Target::Udp(a) => self.resolve(&a).and_then(|addr| {
                let local: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(local).ok()?;
                s.connect(addr).ok()?;
                s.set_nonblocking(true).ok()?;
                Some(Conn::Udp(s))
            }),
            Target::Tcp(a) => self.resolve(&a).and_then(|addr| {
                let s = TcpStream::connect_timeout(&addr, NET_TIMEOUT).ok()?;
                s.set_write_timeout(Some(NET_TIMEOUT)).ok()?;
                let _ = s.set_nodelay(true);
                Some(Conn::Tcp(s))
            }),
        };
        match conn {
            Some(c) => {
                self.conn = Some(c);
                true
            }
            None => {
                if matches!(self.target, Target::Udp(_) | Target::Tcp(_)) {
                    self.retry_at = Some(Instant::now() + NET_BACKOFF);
                    self.addr = None;
                }
                false
            }
        }
    }

    /// host:port to an address, once (a name is resolved again only after a failure).
    fn resolve(&mut self, a: &str) -> Option<SocketAddr> {
        if self.addr.is_none() {
            self.addr = a.to_socket_addrs().ok()?.next();
        }
        self.addr
    }

    fn write(&mut self, frame: &[u8]) -> std::io::Result<()> {
        match self.conn.as_mut() {
            None => Err(ErrorKind::NotConnected.into()),
            Some(Conn::Dgram(s)) => s.send(frame).map(drop),
            Some(Conn::Udp(s)) => s.send(frame).map(drop),
            Some(Conn::Stream(s)) => s.write_all(frame),
            Some(Conn::Tcp(s)) => {
                // A daemon that restarted has closed our connection: writing into it would lose this message
                // silently (the kernel accepts it, the peer resets), so look first.
                s.set_nonblocking(true)?;
                let mut b = [0u8; 1];
                let alive = match s.peek(&mut b) {
                    Ok(0) => false,
                    Ok(_) => true,
                    Err(e) => e.kind() == ErrorKind::WouldBlock,
                };
                s.set_nonblocking(false)?;
                if !alive {
                    return Err(ErrorKind::ConnectionReset.into());
                }
                s.write_all(frame)
            }
        }
    }

    fn format(&self, severity: u8, name: &str, msg: &str) -> Vec<u8> {
        let pri = self.facility as u32 * 8 + severity as u32;
        let now = OffsetDateTime::now_utc();
        match &self.target {
            Target::Unix(_) | Target::None => {
                // RFC 3164 as glibc writes it to /dev/log: local time, no host name.
                let t = now.to_offset(self.offset);
                const MON: [&str; 12] = [
                    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                    "Dec",
                ];
                let mut f = format!(
                    "<{pri}>{} {:2} {:02}:{:02}:{:02} {}[{}]: {msg}",
                    MON[t.month() as usize - 1],
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second(),
                    self.tag,
                    self.pid
                )
                .into_bytes();
                if matches!(self.conn, Some(Conn::Stream(_))) {
                    f.push(0);
                }
                f
            }
            Target::Udp(_) | Target::Tcp(_) => {
                let t = now.to_offset(self.offset);
                let off = self.offset.whole_seconds();
                let tz = if off == 0 {
                    "Z".to_string()
                } else {
                    format!(
                        "{}{:02}:{:02}",
                        if off < 0 { '-' } else { '+' },
                        off.unsigned_abs() / 3600,
                        off.unsigned_abs() / 60 % 60
                    )
                };
                let mut f = format!(
                    "<{pri}>1 {:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}{tz} {} {} {} {} - {msg}",
                    t.year(),
                    t.month() as u8,
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second(),
                    t.microsecond(),
                    header_token(&self.host, 255),
                    header_token(&self.tag, 48),
                    self.pid,
                    header_token(name, 32),
                )
                .into_bytes();
                if matches!(self.target, Target::Tcp(_)) {
                    f.push(b'\n');
                }
                f
            }
        }
    }
}

/// A token for an RFC 5424 header field: printable ASCII, no spaces, bounded, "-" if empty.
fn header_token(s: &str, max: usize) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() { "-".into() } else { t }
}

fn connect_unix(p: &std::path::Path) -> Option<Conn> {
    let s = UnixDatagram::unbound().ok()?;
    match s.connect(p) {
        Ok(()) => {
            s.set_nonblocking(true).ok()?;
            Some(Conn::Dgram(s))
        }
        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
            let s = UnixStream::connect(p).ok()?;
            s.set_write_timeout(Some(NET_TIMEOUT)).ok()?;
            Some(Conn::Stream(s))
        }
        Err(_) => None,
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        // One last try for what is still queued (bounded by the timeouts above).
        self.flush_now();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// events

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// `event=session-start rec=… user=… uid=… login_uid=… host=… tty=… from=… shell=… pid=…`
pub fn session_start(log: &mut Logger, meta: &Meta) {
    let login_uid = meta
        .login_uid
        .or_else(crate::spool::guard::login_uid)
        .map(|u| u.to_string());
    let mut ev = Event::new();
    ev.text("event", "session-start")
        .text("rec", &meta.id)
        .text("user", &meta.user)
        .num("uid", meta.uid as u64)
        .text("login_uid", &opt(login_uid))
        .text("host", &meta.host)
        .text("tty", &opt(meta.tty.as_deref()))
        .text("from", &opt(meta.ssh_client.as_deref()))
        .text("shell", &meta.shell)
        .text("pid", &opt(meta.shell_pid));
    log.send(SEV_INFO, "session-start", &ev.render(SYSLOG_MSG_MAX));
}

/// `event=command rec=… seq=… user=… tty=… cwd=… status=… cmd="…"` (plus `truncated=1`, `cmd_missing=1` or
/// `missed=N` when they apply).
pub fn command(log: &mut Logger, meta: &Meta, rec: &CommandRecord) {
    log.send(SEV_INFO, "command", &command_line(meta, rec));
}

fn command_line(meta: &Meta, rec: &CommandRecord) -> String {
    let mut ev = Event::new();
    ev.text("event", "command")
        .text("rec", &meta.id)
        .num("seq", rec.seq)
        .text("user", &meta.user)
        .text("tty", &opt(meta.tty.as_deref().or(meta.pty.as_deref())))
        .bytes("cwd", &rec.cwd)
        .int("status", rec.status as i64);
    if rec.truncated {
        ev.num("truncated", 1);
    }
    if rec.text_missing {
        ev.num("cmd_missing", 1);
    }
    if rec.missed > 0 {
        ev.num("missed", rec.missed);
    }
    ev.quoted("cmd", &rec.cmd);
    ev.render(SYSLOG_MSG_MAX)
}

/// `event=session-end rec=… duration=… exit=… end=… bytes_out=… sha256_typescript=… sha256_timing=…
/// commands=… dropped=…` (the sums when delivery has computed them; `signal=` when there is one).
pub fn session_end(log: &mut Logger, meta: &Meta) {
    // What is still queued has one more chance before it is counted.
    log.flush_now();
    let sum = |name: &str| {
        meta.files
            .get(name)
            .map(|f| f.sha256.clone())
            .filter(|s| !s.is_empty())
    };
    let mut ev = Event::new();
    ev.text("event", "session-end")
        .text("rec", &meta.id)
        .text(
            "duration",
            &opt(meta.duration_secs.map(|d| format!("{d:.3}"))),
        )
        .text("exit", &opt(meta.exit_status))
        .text("end", &opt(meta.end_reason.map(|r| r.as_str())))
        .num("bytes_out", meta.bytes_out)
        .text("sha256_typescript", &opt(sum("typescript")))
        .text("sha256_timing", &opt(sum("timing")))
        .num("commands", meta.commands)
        .num("dropped", log.dropped().max(meta.syslog_dropped));
    if let Some(s) = &meta.signal {
        ev.text("signal", s);
    }
    log.send(SEV_INFO, "session-end", &ev.render(SYSLOG_MSG_MAX));
}

/// `event=error rec=… error="…"`: something an administrator must look at.
pub fn error(log: &mut Logger, rec: &str, msg: &str) {
    let mut ev = Event::new();
    ev.text("event", "error")
        .text("rec", rec)
        .quoted("error", msg.as_bytes());
    log.send(SEV_ERR, "error", &ev.render(SYSLOG_MSG_MAX));
}

/// `event=delivery rec=… result=sent|queued|failed attempt=… error="…"`
#[allow(dead_code)] // called by deliver:: and `auditty flush`
pub fn delivery(log: &mut Logger, rec: &str, result: &str, attempt: u32, error: Option<&str>) {
    let mut ev = Event::new();
    ev.text("event", "delivery")
        .text("rec", rec)
        .text("result", result)
        .num("attempt", attempt as u64);
    if let Some(e) = error {
        ev.quoted("error", e.as_bytes());
    }
    let sev = if result == "failed" {
        SEV_WARNING
    } else {
        SEV_INFO
    };
    log.send(sev, "delivery", &ev.render(SYSLOG_MSG_MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(v: &[u8]) -> String {
        let mut e = Event::new();
        e.bytes("v", v);
        e.render(1 << 20)
    }

    #[test]
    fn escaping() {
        assert_eq!(esc(b"/tmp"), "v=/tmp");
        assert_eq!(esc(b""), "v=\"\"");
        assert_eq!(esc(b"a b"), "v=\"a b\"");
        assert_eq!(esc(b"a=b"), "v=\"a=b\"");
        assert_eq!(esc(b"say \"hi\""), "v=\"say \\\"hi\\\"\"");
        assert_eq!(esc(b"back\\slash"), "v=\"back\\\\slash\"");
        assert_eq!(esc(b"l1\nl2\r\t"), "v=\"l1\\nl2\\r\\t\"");
        assert_eq!(esc(b"\x1b[31mred\x07\x7f"), "v=\"\\x1b[31mred\\x07\\x7f\"");
        assert_eq!(esc(b"bad\xff\xfe."), "v=\"bad\\xff\\xfe.\"");
        assert_eq!(esc("héllo".as_bytes()), "v=\"héllo\"");
        assert_eq!(
            esc("a\u{202e}b\u{9b}c".as_bytes()),
            "v=\"a\\u202eb\\u009bc\""
        );
        // A forged event cannot appear: everything stays inside one quoted value on one line.
        let forged = esc(b"x\" event=command cmd=\"rm\nevent=forged");
        assert_eq!(
            forged,
            "v=\"x\\\" event=command cmd=\\\"rm\\nevent=forged\""
        );
    }

    #[test]
    fn cap_and_truncated_mark() {
        let mut e = Event::new();
        e.text("event", "command")
            .quoted("cmd", "\u{1b}x".repeat(1000).as_bytes());
        let s = e.render(200);
        assert!(s.len() <= 200, "{} {s}", s.len());
        assert!(s.ends_with("\" truncated=1"), "{s}");
        // Never half an escape: the text before the closing quote is whole units.
        let body = &s["event=command cmd=\"".len()..s.len() - "\" truncated=1".len()];
        assert!(body.split("\\x1bx").all(|p| p.is_empty()), "{body}");
        let mut e = Event::new();
        e.num("truncated", 1).quoted("cmd", &[b'a'; 500]);
        let s = e.render(100);
        assert_eq!(s.matches("truncated=1").count(), 1, "{s}");
    }

    #[test]
    fn command_event_fields() {
        let meta = Meta {
            id: "20261122T080000Z-alice-0123456789ab".into(),
            user: "alice".into(),
            tty: Some("/dev/pts/3".into()),
            ..Meta::default()
        };
        let rec = CommandRecord {
            seq: 7,
            status: 1,
            pid: 1,
            cwd: b"/tmp".to_vec(),
            cmd: b"false".to_vec(),
            truncated: false,
            text_missing: false,
            missed: 0,
        };
        assert_eq!(
            command_line(&meta, &rec),
            "event=command rec=20261122T080000Z-alice-0123456789ab seq=7 user=alice tty=/dev/pts/3 cwd=/tmp \
             status=1 cmd=\"false\""
        );
    }

    #[test]
    fn formats() {
        let cfg = config::Syslog {
            target: "unix:/nonexistent/log".into(),
            facility: "authpriv".into(),
            tag: "auditty".into(),
        };
        let l = Logger::new(&cfg);
        let f = String::from_utf8(l.format(6, "command", "event=x")).unwrap();
        assert!(f.starts_with("<86>"), "{f}");
        assert!(
            f.ends_with(&format!(" auditty[{}]: event=x", std::process::id())),
            "{f}"
        );
        let cfg = config::Syslog {
            target: "tcp://127.0.0.1:1".into(),
            ..cfg
        };
        let l = Logger::new(&cfg);
        let f = String::from_utf8(l.format(3, "error", "event=error")).unwrap();
        assert!(f.starts_with("<83>1 20"), "{f}");
        assert!(
            f.ends_with(&format!(
                " auditty {} error - event=error\n",
                std::process::id()
            )),
            "{f}"
        );
    }

    #[test]
    fn unreachable_target_queues_and_counts() {
        let cfg = config::Syslog {
            target: "unix:/nonexistent/log".into(),
            facility: "user".into(),
            tag: "t".into(),
        };
        let mut l = Logger::new(&cfg);
        assert!(!l.send(6, "x", "a"));
        assert!(!l.send(6, "x", "b"));
        assert_eq!(l.dropped(), 2);
        for _ in 0..MAX_PENDING + 5 {
            l.send(6, "x", "c");
        }
        assert_eq!(l.dropped(), MAX_PENDING as u64 + 7);
        assert!(l.pending.len() <= MAX_PENDING);
        let none = config::Syslog {
            target: "none".into(),
            ..cfg
        };
        let mut l = Logger::new(&none);
        assert!(l.send(6, "x", "a"));
        assert_eq!(l.dropped(), 0);
    }

    #[test]
    fn unix_datagram_delivery_and_reconnect() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.sock");
        let cfg = config::Syslog {
            target: format!("unix:{}", p.display()),
            facility: "local0".into(),
            tag: "auditty".into(),
        };
        let mut l = Logger::new(&cfg);
        assert!(!l.send(6, "x", "early"), "nobody listens yet");
        let rx = UnixDatagram::bind(&p).unwrap();
        assert!(l.send(6, "x", "first"));
        let mut buf = [0u8; 512];
        let n = rx.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with(": early"));
        let n = rx.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with(": first"));
        // The daemon restarts: a new socket at the same path.
        drop(rx);
        std::fs::remove_file(&p).unwrap();
        let rx = UnixDatagram::bind(&p).unwrap();
        assert!(l.send(6, "x", "second"));
        let n = rx.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with(": second"));
        assert_eq!(l.dropped(), 0);
    }
}
