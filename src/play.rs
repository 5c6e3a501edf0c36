//! Playback of recordings: a strict parser for util-linux timing files (classic and advanced; its line parser,
//! `parse_line`, is also what `deliver::timing` repairs timings with), the data files
//! behind them (plain or gzip, header line skipped), and a paced writer of the recorded bytes of one stream.
//!
//! Playing is two passes over the timing file: `scan` checks every line and that the chosen stream's entries fit in
//! its data file, before a single byte is written; `replay` then writes the bytes, paced like `scriptreplay`
//! (delays of skipped entries are carried to the next emitted chunk, each pause divided by the speed and clamped
//! to the maximum delay). Nothing is allocated from a size read in a file: data is copied through a fixed buffer.

use std::fs::File;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cli::Stream;
use crate::spool::layout::{self, Spool};

/// Longest timing line accepted (scriptreplay reads H/S values into an 8 KiB buffer; ours are far shorter).
const MAX_LINE: usize = 64 << 10;
/// Longest S/H entry name (scriptreplay reads it with `%128s`).
const MAX_NAME: usize = 128;
/// Copy buffer for recorded data.
const CHUNK: usize = 64 << 10;
/// The longest single pause honoured (about 31 years); keeps `Instant` arithmetic far from overflow.
const MAX_PAUSE_SECS: f64 = 1e9;

// ------------------------------------------------------------------------------------------------------------
// Timing files

/// The two timing formats, told apart like scriptreplay does: a first character that is a digit means classic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `SECONDS.MICROSECONDS SIZE` per output chunk.
    Classic,
    /// `O`/`I` (data), `S` (signal) and `H` (header) lines sharing one delay chain.
    Advanced,
}

/// One parsed timing line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `size` bytes of a stream's data file, `delay_us` after the previous entry.
    Data {
        stream: Stream,
        delay_us: u64,
        size: u64,
    },
    /// `S <delay> <NAME>[ <value>]`, e.g. a resize.
    Signal {
        delay_us: u64,
        name: String,
        value: String,
    },
    /// `H <delay> <NAME>[ <value>]`, e.g. `START_TIME`.
    Info {
        delay_us: u64,
        name: String,
        value: String,
    },
}

impl Entry {
    pub fn delay_us(&self) -> u64 {
        match self {
            Entry::Data { delay_us, .. }
            | Entry::Signal { delay_us, .. }
            | Entry::Info { delay_us, .. } => *delay_us,
        }
    }
}

/// A problem in a timing file, at a line (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimingError {
    pub line: u64,
    pub msg: String,
}

/// Reads and checks a timing file line by line; never allocates more than `MAX_LINE` for a line.
pub struct TimingReader<R> {
    inner: R,
    /// Lines read so far; the number of the current line after `next_entry`.
    line: u64,
    format: Option<Format>,
    buf: Vec<u8>,
}

/// Up to 40 bytes of a field, escaped, for error messages.
fn show(b: &[u8]) -> String {
    let cut = &b[..b.len().min(40)];
    let mut s = cut.escape_ascii().to_string();
    if b.len() > cut.len() {
        s.push('…');
    }
    s
}

/// `SECONDS.MICROSECONDS` with exactly six fractional digits, as script writes (`%ld.%06ld`), in microseconds.
pub fn parse_delay(f: &[u8]) -> Result<u64, String> {
    let bad = |why: &str| {
        Err(format!(
            "bad delay \"{}\": {why} (want SECONDS.MICROSECONDS, e.g. 0.250000)",
            show(f)
        ))
    };
    let Some(dot) = f.iter().position(|&b| b == b'.') else {
        return bad("no decimal point");
    };
    let (secs, frac) = (&f[..dot], &f[dot + 1..]);
    if secs.is_empty() || !secs.iter().all(u8::is_ascii_digit) {
        return bad("seconds are not a number");
    }
    if secs.len() > 10 {
        return bad("too many seconds");
    }
    if frac.len() != 6 || !frac.iter().all(u8::is_ascii_digit) {
        // Not read leniently: scriptreplay's %ld.%06ld takes "0.1" for 1 µs, so such a file means different
        // things to different players.
        return bad(
            "need exactly 6 fractional digits (scriptreplay would read \"0.1\" as 1 microsecond)",
        );
    }
    let num = |d: &[u8]| d.iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
    Ok(num(secs) * 1_000_000 + num(frac))
}

/// A byte count: decimal digits only, within u64.
pub fn parse_size(f: &[u8]) -> Result<u64, String> {
    let bad = || {
        format!(
            "bad size \"{}\": want a byte count (decimal digits)",
            show(f)
        )
    };
    if f.is_empty() || f.len() > 20 || !f.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    f.iter()
        .try_fold(0u64, |n, &c| {
            n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        })
        .ok_or_else(bad)
}

/// Split `line` at runs of spaces into at most `n` fields; the last field keeps the rest of the line as it is.
fn fields(line: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    let mut rest = line;
    while out.len() + 1 < n {
        let Some(sp) = rest.iter().position(|&b| b == b' ') else {
            break;
        };
        out.push(&rest[..sp]);
        let skip = rest[sp..].iter().take_while(|&&b| b == b' ').count();
        rest = &rest[sp + skip..];
    }
    if !rest.is_empty() || out.len() + 1 == n {
        out.push(rest);
    }
    out
}

impl<R: BufRead> TimingReader<R> {
    pub fn new(inner: R) -> Self {
        TimingReader {
            inner,
            line: 0,
            format: None,
            buf: Vec::new(),
        }
    }

    /// The number of the line last read (or being read when an error is returned).
    pub fn line(&self) -> u64 {
        self.line
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, TimingError> {
        Err(TimingError {
            line: self.line,
            msg: msg.into(),
        })
    }

    fn io_err<T>(&self, e: io::Error) -> Result<T, TimingError> {
        self.err(format!("read error: {e}"))
    }

    /// The file's format, from its first byte; `None` for an empty file.
    pub fn format(&mut self) -> Result<Option<Format>, TimingError> {
        if self.format.is_none() {
            let first = loop {
                match self.inner.fill_buf() {
                    Ok(b) => break b.first().copied(),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return self.io_err(e),
                }
            };
            self.format = first.map(|c| {
                if c.is_ascii_digit() {
                    Format::Classic
                } else {
                    Format::Advanced
                }
            });
        }
        Ok(self.format)
    }

    /// Read one line (without its `\n`) into `buf`; `false` at the end of the file.
    fn read_line(&mut self) -> Result<bool, TimingError> {
        self.buf.clear();
        let mut started = false;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return self.io_err(e),
            };
            if avail.is_empty() {
                if started {
                    return self.err("truncated: the last line has no newline");
                }
                return Ok(false);
            }
            if !started {
                started = true;
                self.line += 1;
            }
            let (take, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if self.buf.len() + take > MAX_LINE {
                return self.err(format!("line longer than {MAX_LINE} bytes"));
            }
            self.buf.extend_from_slice(&avail[..take]);
            self.inner.consume(take + usize::from(done));
            if done {
                return Ok(true);
            }
        }
    }

    /// The next entry, `None` at the end of the file.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TimingError> {
        let Some(format) = self.format()? else {
            return Ok(None);
        };
        if !self.read_line()? {
            return Ok(None);
        }
        let line = std::mem::take(&mut self.buf);
        let r = self.parse(format, &line);
        self.buf = line;
        r.map(Some)
    }

    fn parse(&self, format: Format, line: &[u8]) -> Result<Entry, TimingError> {
        parse_line(format, line).or_else(|m| self.err(m))
    }
}

/// One timing line (without its `\n`) of a file in `format`, checked as strictly as scriptreplay reads it (and
/// stricter where scriptreplay fails silently): the one grammar of timing lines, shared by playing and by the repair
/// of a recording's timing (`deliver::timing`). The error says what is wrong with the line.
pub fn parse_line(format: Format, line: &[u8]) -> Result<Entry, String> {
    if line.is_empty() {
        return Err("empty line".into());
    }
    match format {
        Format::Classic => {
            check_data_line(line)?;
            let (delay_us, size) = delay_size(line, line, "classic line")?;
            Ok(Entry::Data {
                stream: Stream::Out,
                delay_us,
                size,
            })
        }
        Format::Advanced => {
            let kind = line[0];
            if !matches!(kind, b'O' | b'I' | b'S' | b'H') {
                return Err(format!(
                    "unknown entry type '{}' (expected O, I, S or H)",
                    show(&line[..1])
                ));
            }
            if line.get(1) != Some(&b' ') {
                return Err(format!(
                    "expected a space after '{}', got \"{}\"",
                    kind as char,
                    show(line)
                ));
            }
            let rest = &line[1..];
            let rest = &rest[rest.iter().take_while(|&&b| b == b' ').count()..];
            match kind {
                b'O' | b'I' => {
                    check_data_line(line)?;
                    let (delay_us, size) = delay_size(rest, line, "O/I line")?;
                    let stream = if kind == b'O' {
                        Stream::Out
                    } else {
                        Stream::In
                    };
                    Ok(Entry::Data {
                        stream,
                        delay_us,
                        size,
                    })
                }
                _ => {
                    let f = fields(rest, 3);
                    let delay_us = parse_delay(f[0])?;
                    let name = f.get(1).copied().unwrap_or_default();
                    if name.is_empty() {
                        return Err(format!("{} line without a name", kind as char));
                    }
                    if name.len() > MAX_NAME || !name.iter().all(|b| b.is_ascii_graphic()) {
                        return Err(format!("bad entry name \"{}\"", show(name)));
                    }
                    let name = String::from_utf8_lossy(name).into_owned();
                    let value =
                        String::from_utf8_lossy(f.get(2).copied().unwrap_or_default()).into_owned();
                    Ok(if kind == b'S' {
                        Entry::Signal {
                            delay_us,
                            name,
                            value,
                        }
                    } else {
                        Entry::Info {
                            delay_us,
                            name,
                            value,
                        }
                    })
                }
            }
        }
    }
}

/// Whitespace rules scriptreplay enforces silently (it stops playing without a word): say what is wrong.
fn check_data_line(line: &[u8]) -> Result<(), String> {
    if line.ends_with(b"\r") {
        return Err("CRLF line ending (timing files use LF only)".into());
    }
    if line.last().is_some_and(|b| b.is_ascii_whitespace()) {
        return Err("trailing whitespace".into());
    }
    if line[0].is_ascii_whitespace() {
        return Err("leading whitespace".into());
    }
    if let Some(c) = line.iter().find(|b| b.is_ascii_control()) {
        return Err(format!("unexpected control character 0x{c:02x}"));
    }
    Ok(())
}

fn delay_size(f: &[u8], line: &[u8], what: &str) -> Result<(u64, u64), String> {
    let f = fields(f, 3);
    if f.len() != 2 {
        return Err(format!(
            "{what}: want \"SECONDS.MICROSECONDS SIZE\", got \"{}\"",
            show(line)
        ));
    }
    let delay = parse_delay(f[0])?;
    let size = parse_size(f[1])?;
    Ok((delay, size))
}

// ------------------------------------------------------------------------------------------------------------
// Files of a recording

/// Open a file for reading, through a gzip decoder when its name ends in `.gz`. A plain file that is gone but has a
/// `.gz` beside it was compressed meanwhile (`auditty flush` compresses a queued recording before mailing it): the
/// `.gz` holds the same bytes.
pub fn open_maybe_gz(path: &Path) -> Result<Box<dyn BufRead>> {
    let is_gz = |p: &Path| p.extension().is_some_and(|e| e == "gz");
    let (path, f) = match File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !is_gz(path) => {
            let mut gz = path.as_os_str().to_owned();
            gz.push(".gz");
            let gz = std::path::PathBuf::from(gz);
            match File::open(&gz) {
                Ok(f) => (gz, f),
                Err(_) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
            }
        }
        r => (
            path.to_path_buf(),
            r.with_context(|| format!("cannot open {}", path.display()))?,
        ),
    };
    if is_gz(&path) {
        let mut raw = BufReader::with_capacity(CHUNK, f);
        // Said plainly here: the decoder would only report "unexpected end of file" or "invalid gzip header"
        // later, at the first read.
        let head = raw
            .fill_buf()
            .with_context(|| format!("cannot read {}", path.display()))?;
        if !head.starts_with(&[0x1f, 0x8b]) {
            bail!(
                "{}: not gzip data (a .gz file must be gzip-compressed)",
                path.display()
            );
        }
        Ok(Box::new(BufReader::with_capacity(
            CHUNK,
            flate2::bufread::MultiGzDecoder::new(raw),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(CHUNK, f)))
    }
}

/// Skip a data file's header line (`Script started on …`), as scriptreplay does. Returns the bytes skipped.
pub fn skip_header(r: &mut dyn BufRead) -> io::Result<Option<u64>> {
    let mut n = 0u64;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(None);
        }
        match avail.iter().position(|&b| b == b'\n') {
            Some(i) => {
                r.consume(i + 1);
                return Ok(Some(n + i as u64 + 1));
            }
            None => {
                let l = avail.len();
                n += l as u64;
                r.consume(l);
            }
        }
    }
}

/// The recorded bytes left in a data file whose header was skipped: everything up to the footer
/// (`\nScript done on …\n`, which is not recorded data), or to the end when there is none (a live recording).
pub fn recorded_len(r: &mut dyn Read) -> io::Result<u64> {
    const TAIL: usize = 4096;
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK];
    let mut tail: Vec<u8> = Vec::with_capacity(2 * TAIL);
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if n >= TAIL {
            tail.clear();
            tail.extend_from_slice(&buf[n - TAIL..n]);
        } else {
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > TAIL {
                tail.drain(..tail.len() - TAIL);
            }
        }
    }
    Ok(total - footer_len(&tail) as u64)
}

/// Length of a `\nScript done on …\n` footer at the end of `tail`, 0 if there is none.
fn footer_len(tail: &[u8]) -> usize {
    let marker = b"\nScript done on ";
    let Some(body) = tail.strip_suffix(b"\n") else {
        return 0;
    };
    match body.windows(marker.len()).rposition(|w| w == marker) {
        Some(at) if !body[at + 1..].contains(&b'\n') => tail.len() - at,
        _ => 0,
    }
}

/// Where a recording's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub timing: PathBuf,
    pub typescript: Option<PathBuf>,
    pub input: Option<PathBuf>,
}

/// `dir/name`, else `dir/name.gz`, if either exists.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [name.to_string(), format!("{name}.gz")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

fn in_dir(dir: &Path, typescript: Option<PathBuf>) -> Result<Located> {
    let timing = find_file(dir, layout::TIMING)
        .with_context(|| format!("no timing or timing.gz in {}", dir.display()))?;
    Ok(Located {
        timing,
        typescript: typescript.or_else(|| find_file(dir, layout::TYPESCRIPT)),
        input: find_file(dir, layout::INPUT),
    })
}

/// Resolve RECORDING: a recording directory, a typescript path (its timing file next to it), or a recording id
/// (or a unique prefix of one) in the spool's states. `spool` is only asked for when a spool lookup is needed.
pub fn locate(arg: &str, spool: impl FnOnce() -> Result<Spool>) -> Result<Located> {
    let p = Path::new(arg);
    if p.is_dir() {
        return in_dir(p, None);
    }
    if p.is_file() {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // The recording's timing file (an auditor who saved the mail's attachments may name either): the
        // typescript beside it is what plays; it is never read as a typescript itself.
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        if name
            .as_deref()
            .is_some_and(|n| n.strip_suffix(".gz").unwrap_or(n) == layout::TIMING)
        {
            return in_dir(dir, None);
        }
        return in_dir(dir, Some(p.to_path_buf()));
    }
    if p.symlink_metadata().is_ok() {
        bail!("{arg}: not a recording: neither a directory nor a regular file");
    }
    if arg.contains('/') || !layout::valid_id(arg) {
        bail!("{arg}: no such file, directory or recording id");
    }
    let spool = spool()?;
    in_dir(&spool.resolve(arg)?, None)
}

// ------------------------------------------------------------------------------------------------------------
// Playing

/// How to play.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub stream: Stream,
    /// Divides every pause (2 = twice as fast).
    pub speed: f64,
    /// Upper bound of one pause, in seconds, applied after the speed.
    pub max_delay: Option<f64>,
}

impl Options {
    /// Reject values that make no sense before anything is read.
    pub fn check(&self) -> Result<()> {
        if !(self.speed.is_finite() && self.speed >= 1e-3 && self.speed <= 1e6) {
            bail!(
                "--speed must be a number from 0.001 to 1000000, got {}",
                self.speed
            );
        }
        if let Some(m) = self.max_delay
            && !(m.is_finite() && m >= 0.0)
        {
            bail!("--max-delay must be a number of seconds >= 0, got {m}");
        }
        Ok(())
    }

    /// The pause before a chunk recorded `delay_us` after the previous emitted one.
    pub fn pause(&self, delay_us: u64) -> Duration {
        let mut s = delay_us as f64 / 1e6 / self.speed;
        if let Some(m) = self.max_delay {
            s = s.min(m);
        }
        // Whole nanoseconds, rounded: 0.3 s must be 300 ms, not 299.999999 ms.
        Duration::from_nanos((s.clamp(0.0, MAX_PAUSE_SECS) * 1e9).round() as u64)
    }
}

fn stream_letter(s: Stream) -> char {
    match s {
        Stream::Out => 'O',
        Stream::In => 'I',
    }
}

/// What the first pass learned about a timing file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub format: Option<Format>,
    /// Entries and bytes of the chosen stream.
    pub chunks: u64,
    pub bytes: u64,
    /// Recorded time of the whole file (all delays), in microseconds.
    pub duration_us: u64,
}

/// First pass: check every line, and that the chosen stream's entries fit in the `available` bytes of its data.
pub fn scan<R: BufRead>(
    timing: &mut TimingReader<R>,
    stream: Stream,
    available: u64,
    data_name: &str,
) -> Result<Scan, TimingError> {
    let mut s = Scan {
        format: timing.format()?,
        ..Scan::default()
    };
    while let Some(e) = timing.next_entry()? {
        s.duration_us = s.duration_us.saturating_add(e.delay_us());
        match e {
            Entry::Data {
                stream: st, size, ..
            } if st == stream => {
                s.chunks += 1;
                s.bytes = s.bytes.saturating_add(size);
                if s.bytes > available {
                    return Err(TimingError {
                        line: timing.line(),
                        msg: format!(
                            "{} entry of {size} bytes runs past the end of {data_name} \
                             (it holds {available} bytes of recorded data, the entries up to here need {})",
                            stream_letter(stream),
                            s.bytes
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

/// What can stop a replay.
#[derive(Debug)]
pub enum PlayError {
    Timing(TimingError),
    /// The data file ended before the timing said (it changed after the first pass).
    DataShort {
        line: u64,
        missing: u64,
    },
    DataRead(io::Error),
    /// Writing to stdout failed (a closed pipe is `ErrorKind::BrokenPipe`).
    Output(io::Error),
    /// A signal asked us to stop.
    Stopped(i32),
}

/// Waits between chunks; the real one sleeps on a clock and watches signals, tests record the pauses.
pub trait Pacer {
    /// Wait `pause` after the previous chunk's due time.
    fn pause(&mut self, pause: Duration) -> Result<(), i32>;
    /// Between pieces of a big chunk: has a stop been asked for?
    fn check(&mut self) -> Result<(), i32>;
}

/// Second pass: write the chosen stream's bytes to `out`, paced by `pacer`. `data` is past its header line.
/// Returns the number of bytes written.
pub fn replay<R: BufRead, D: Read + ?Sized, W: Write, P: Pacer>(
    timing: &mut TimingReader<R>,
    data: &mut D,
    opts: &Options,
    out: &mut W,
    pacer: &mut P,
) -> Result<u64, PlayError> {
    let mut carry_us = 0u64;
    let mut written = 0u64;
    let mut buf = vec![0u8; CHUNK];
    while let Some(e) = timing.next_entry().map_err(PlayError::Timing)? {
        carry_us = carry_us.saturating_add(e.delay_us());
        let Entry::Data { stream, size, .. } = e else {
            continue;
        };
        if stream != opts.stream {
            continue;
        }
        pacer
            .pause(opts.pause(carry_us))
            .map_err(PlayError::Stopped)?;
        carry_us = 0;
        let mut left = size;
        while left > 0 {
            let want = left.min(CHUNK as u64) as usize;
            let n = match data.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(PlayError::DataShort {
                        line: timing.line(),
                        missing: left,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(PlayError::DataRead(e)),
            };
            out.write_all(&buf[..n]).map_err(PlayError::Output)?;
            left -= n as u64;
            written += n as u64;
            if left > 0 {
                pacer.check().map_err(PlayError::Stopped)?;
            }
        }
        out.flush().map_err(PlayError::Output)?;
    }
    Ok(written)
}

// ------------------------------------------------------------------------------------------------------------
// The auditor's terminal and the real clock

/// Settings changed on the auditor's terminal while playing, restored on drop, on a stop signal and before a
/// job-control suspend. Output stream: OPOST off, so the terminal receives exactly the recorded bytes, as the
/// recorded user's terminal did (the recorder kept it raw). Input stream: OPOST and ONLCR on, so the LF that
/// [`CrToNl`] makes of each Enter starts a new line. Both: ECHO off so the auditor's keystrokes do not mix with the
/// replay; what they typed is discarded when the settings are restored.
pub struct TtyGuard {
    saved: nix::sys::termios::Termios,
    playing: nix::sys::termios::Termios,
}

/// The saved settings, for the panic hook (Drop does not run with panic = "abort").
static SAVED_TTY: std::sync::Mutex<Option<nix::sys::termios::Termios>> =
    std::sync::Mutex::new(None);

impl TtyGuard {
    /// Take over stdout's terminal, if stdout is one and we are in its foreground process group.
    pub fn enter(stream: Stream) -> Option<TtyGuard> {
        use nix::sys::termios::{LocalFlags, OutputFlags, tcgetattr};
        use std::io::IsTerminal;
        let out = io::stdout();
        if !out.is_terminal() {
            return None;
        }
        let fg = nix::unistd::tcgetpgrp(&out).ok()?;
        if fg != nix::unistd::getpgrp() {
            return None;
        }
        let saved = tcgetattr(&out).ok()?;
        let mut playing = saved.clone();
        playing
            .local_flags
            .remove(LocalFlags::ECHO | LocalFlags::ECHONL);
        match stream {
            Stream::Out => playing.output_flags.remove(OutputFlags::OPOST),
            Stream::In => {
                playing
                    .output_flags
                    .insert(OutputFlags::OPOST | OutputFlags::ONLCR);
                playing.output_flags.remove(OutputFlags::OCRNL);
            }
        }
        *SAVED_TTY.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved.clone());
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(s) = SAVED_TTY.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = nix::sys::termios::tcsetattr(
                    io::stdout(),
                    nix::sys::termios::SetArg::TCSANOW,
                    &s,
                );
            }
            default(info);
        }));
        let g = TtyGuard { saved, playing };
        g.apply();
        Some(g)
    }

    pub fn apply(&self) {
        let _ = nix::sys::termios::tcsetattr(
            io::stdout(),
            nix::sys::termios::SetArg::TCSADRAIN,
            &self.playing,
        );
    }

    /// Back to the auditor's settings, after the output has drained; keystrokes typed meanwhile are dropped.
    pub fn restore(&self) {
        let _ = nix::sys::termios::tcsetattr(
            io::stdout(),
            nix::sys::termios::SetArg::TCSAFLUSH,
            &self.saved,
        );
    }
}

impl Drop for TtyGuard {
    fn drop(&mut self) {
        self.restore();
        *SAVED_TTY.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Keystrokes shown on a terminal: each CR (what Enter sends) is written as LF, so typed lines do not overwrite
/// each other; what `scriptreplay --cr-mode auto` does for the input stream. Only used when stdout is a terminal.
pub struct CrToNl<W>(pub W);

impl<W: Write> Write for CrToNl<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut b = [0u8; 4096];
        let n = buf.len().min(b.len());
        for (d, &c) in b.iter_mut().zip(&buf[..n]) {
            *d = if c == b'\r' { b'\n' } else { c };
        }
        self.0.write(&b[..n])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Signals watched while playing to a terminal.
const STOP_SIGNALS: [i32; 4] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGQUIT,
];

/// Sleeps on the monotonic clock until each chunk's due time (absolute, so pauses do not drift). With a terminal
/// it also wakes for signals: a stop signal ends the replay (the terminal is restored before the process dies of
/// it), Ctrl-Z restores the terminal before stopping and re-applies it on `fg`, and the clock is re-based after a
/// stop so a resumed replay does not rush.
pub struct ClockPacer {
    start: Instant,
    due: Duration,
    signals: Option<SignalPipe>,
    tty: Option<TtyGuard>,
}

struct SignalPipe {
    wake: std::os::unix::net::UnixStream,
    flags: Vec<(i32, std::sync::Arc<std::sync::atomic::AtomicBool>)>,
}

impl SignalPipe {
    fn install() -> Result<SignalPipe> {
        use signal_hook::consts::{SIGCONT, SIGTSTP};
        let (r, w) = std::os::unix::net::UnixStream::pair().context("socketpair for signals")?;
        r.set_nonblocking(true)?;
        w.set_nonblocking(true)?;
        let mut flags = Vec::new();
        for sig in STOP_SIGNALS.into_iter().chain([SIGTSTP, SIGCONT]) {
            let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            signal_hook::flag::register(sig, flag.clone())
                .with_context(|| format!("cannot handle signal {sig}"))?;
            signal_hook::low_level::pipe::register(sig, w.try_clone()?)
                .with_context(|| format!("cannot handle signal {sig}"))?;
            flags.push((sig, flag));
        }
        Ok(SignalPipe { wake: r, flags })
    }

    fn pending(&self) -> Vec<i32> {
        let mut b = [0u8; 64];
        while matches!((&self.wake).read(&mut b), Ok(n) if n > 0) {}
        self.flags
            .iter()
            .filter(|(_, f)| f.swap(false, std::sync::atomic::Ordering::SeqCst))
            .map(|(s, _)| *s)
            .collect()
    }
}

impl ClockPacer {
    /// `tty`: the auditor's terminal, if we changed its settings (then signals are handled too).
    pub fn new(tty: Option<TtyGuard>) -> Result<ClockPacer> {
        let signals = match tty {
            Some(_) => Some(SignalPipe::install()?),
            None => None,
        };
        Ok(ClockPacer {
            start: Instant::now(),
            due: Duration::ZERO,
            signals,
            tty,
        })
    }

    /// Restore the terminal and die of `sig` the way its default action would.
    pub fn die_of(&mut self, sig: i32) -> ! {
        let _ = io::stdout().flush();
        drop(self.tty.take());
        let _ = signal_hook::low_level::emulate_default_handler(sig);
        std::process::exit(128 + sig)
    }

    fn handle_signals(&mut self) -> Result<(), i32> {
        use signal_hook::consts::{SIGCONT, SIGTSTP};
        let Some(sp) = &self.signals else {
            return Ok(());
        };
        for sig in sp.pending() {
            if STOP_SIGNALS.contains(&sig) {
                return Err(sig);
            }
            let stopped_at = self.start.elapsed();
            if sig == SIGTSTP {
                if let Some(t) = &self.tty {
                    t.restore();
                }
                let _ = signal_hook::low_level::raise(nix::libc::SIGSTOP);
            }
            if sig == SIGTSTP || sig == SIGCONT {
                if let Some(t) = &self.tty {
                    t.apply();
                }
                // Carry on from where the replay was, not from where the wall clock now is.
                let behind = self.start.elapsed().saturating_sub(stopped_at);
                self.start += behind;
            }
        }
        Ok(())
    }
}

impl Pacer for ClockPacer {
    fn pause(&mut self, pause: Duration) -> Result<(), i32> {
        self.due = self.due.saturating_add(pause);
        loop {
            self.handle_signals()?;
            let now = self.start.elapsed();
            if now >= self.due {
                return Ok(());
            }
            let left = self.due - now;
            match &self.signals {
                Some(sp) => {
                    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
                    use std::os::fd::AsFd;
                    let ms = left.as_micros().div_ceil(1000).min(60_000) as u32;
                    let mut fds = [PollFd::new(sp.wake.as_fd(), PollFlags::POLLIN)];
                    let _ = poll(
                        &mut fds,
                        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
                    );
                }
                None => std::thread::sleep(left),
            }
        }
    }

    fn check(&mut self) -> Result<(), i32> {
        self.handle_signals()
    }
}

// ------------------------------------------------------------------------------------------------------------
// Tests

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::layout::State;

    fn entries(text: &[u8]) -> Result<Vec<Entry>, TimingError> {
        let mut r = TimingReader::new(text);
        let mut v = Vec::new();
        while let Some(e) = r.next_entry()? {
            v.push(e);
        }
        Ok(v)
    }

    fn err_of(text: &[u8]) -> TimingError {
        entries(text).expect_err("must be rejected")
    }

    fn data(stream: Stream, delay_us: u64, size: u64) -> Entry {
        Entry::Data {
            stream,
            delay_us,
            size,
        }
    }

    #[test]
    fn classic_lines_parse() {
        assert_eq!(
            entries(b"0.000942 4\n1.301526 7\n12.000000  3\n").unwrap(),
            vec![
                data(Stream::Out, 942, 4),
                data(Stream::Out, 1_301_526, 7),
                data(Stream::Out, 12_000_000, 3),
            ]
        );
        assert_eq!(entries(b"").unwrap(), vec![]);
    }

    #[test]
    fn advanced_lines_parse() {
        let text = b"H 0.000000 START_TIME 2026-11-22 03:58:54+00:00\n\
H 0.000000 COMMAND  echo  a b \n\
S 0.200036 SIGWINCH ROWS=40 COLS=120\n\
I 0.200830 7\n\
O 0.000056 8\n\
S 0.100000 SIGTERM\n\
H 0.000000 EXIT_CODE 7\n";
        let v = entries(text).unwrap();
        assert_eq!(
            v[0],
            Entry::Info {
                delay_us: 0,
                name: "START_TIME".into(),
                value: "2026-11-22 03:58:54+00:00".into()
            }
        );
        assert_eq!(
            v[1],
            Entry::Info {
                delay_us: 0,
                name: "COMMAND".into(),
                value: "echo  a b ".into()
            }
        );
        assert_eq!(
            v[2],
            Entry::Signal {
                delay_us: 200_036,
                name: "SIGWINCH".into(),
                value: "ROWS=40 COLS=120".into()
            }
        );
        assert_eq!(v[3], data(Stream::In, 200_830, 7));
        assert_eq!(v[4], data(Stream::Out, 56, 8));
        assert_eq!(
            v[5],
            Entry::Signal {
                delay_us: 100_000,
                name: "SIGTERM".into(),
                value: String::new()
            }
        );
        assert_eq!(v.len(), 7);
    }

    #[test]
    fn garbage_is_reported_with_its_line() {
        let cases: &[(&[u8], u64, &str)] = &[
            (b"0.000001 4\n1.5 2\n", 2, "6 fractional digits"),
            (b"0.000001 4\n1 3\n", 2, "no decimal point"),
            (b"0.1234567 3\n", 1, "6 fractional digits"),
            (b"0.000001 4 \n", 1, "trailing whitespace"),
            (b"0.000001 4\r\n", 1, "CRLF"),
            (b"0.000001 4\n0.000002 x\n", 2, "bad size"),
            (b"0.000001 -4\n", 1, "bad size"),
            (b"0.000001 18446744073709551616\n", 1, "bad size"),
            (b"0.000001 999999999999999999999\n", 1, "bad size"),
            (b"99999999999.000000 1\n", 1, "too many seconds"),
            (b"0.000001\n", 1, "want"),
            (b"0.000001 1 2\n", 1, "want"),
            (b"0.000001 4\n\n", 2, "empty line"),
            (b"0.000001 4\n0.000002 5", 2, "truncated"),
            (
                b"H 0.000000 A b\nX 0.000001 3\n",
                2,
                "unknown entry type 'X'",
            ),
            (b"O0.000001 3\n", 1, "expected a space"),
            (b"O 0.000001\n", 1, "want"),
            (b"O 1.0 3\n", 1, "6 fractional digits"),
            (b"H 0.000000 START_TIME x\nO 0.000001 3\r\n", 2, "CRLF"),
            (b"S 0.000001\n", 1, "without a name"),
            (b"H x NAME v\n", 1, "bad delay"),
            (b" 0.000001 3\n", 1, "unknown entry type ' '"),
            (b"\xff\xfe\n", 1, "unknown entry type '\\xff'"),
            (b"O 0.000001 3\tx\n", 1, "control character"),
        ];
        for (text, line, want) in cases {
            let e = err_of(text);
            assert_eq!(e.line, *line, "{:?}: {e:?}", String::from_utf8_lossy(text));
            assert!(
                e.msg.contains(want),
                "{:?}: {:?} should mention {want:?}",
                String::from_utf8_lossy(text),
                e.msg
            );
        }
    }

    #[test]
    fn over_long_line_is_refused_without_reading_it_all() {
        let mut t = b"O 0.000001 ".to_vec();
        t.extend(std::iter::repeat_n(b'1', MAX_LINE + 10));
        t.push(b'\n');
        let e = err_of(&t);
        assert!(e.msg.contains("longer than"), "{e:?}");
    }

    /// A small deterministic PRNG (xorshift64*), so the fuzz-ish tests need no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    struct NoWait(Vec<Duration>);
    impl Pacer for NoWait {
        fn pause(&mut self, p: Duration) -> Result<(), i32> {
            self.0.push(p);
            Ok(())
        }
        fn check(&mut self) -> Result<(), i32> {
            Ok(())
        }
    }

    /// Parse, scan and replay arbitrary input; only Ok or Err may come out.
    fn exercise(timing: &[u8], data: &[u8]) {
        let _ = entries(timing);
        for stream in [Stream::Out, Stream::In] {
            let _ = scan(
                &mut TimingReader::new(timing),
                stream,
                data.len() as u64,
                "d",
            );
            let opts = Options {
                stream,
                speed: 1e6,
                max_delay: Some(0.0),
            };
            let mut out = Vec::new();
            let _ = replay(
                &mut TimingReader::new(timing),
                &mut &data[..],
                &opts,
                &mut out,
                &mut NoWait(Vec::new()),
            );
            assert!(out.len() <= data.len());
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let alphabet = b"0123456789. \n\r\tOISHx-+e";
        for round in 0..3000 {
            let len = rng.below(200) as usize;
            let t: Vec<u8> = (0..len)
                .map(|_| {
                    if round % 2 == 0 {
                        rng.next() as u8
                    } else {
                        alphabet[rng.below(alphabet.len() as u64) as usize]
                    }
                })
                .collect();
            let d: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            exercise(&t, &d);
        }
    }

    #[test]
    fn mutated_valid_files_never_panic() {
        let base: &[&[u8]] = &[
            b"0.000942 4\n1.301526 7\n0.000100 4095\n",
            b"H 0.000000 START_TIME 2026-11-22 03:58:54+00:00\nH 0.000000 TERM xterm\nS 0.200036 SIGWINCH ROWS=40 COLS=120\nI 0.200830 7\nO 0.000056 8\nH 0.000000 DURATION 0.813876\nH 0.000000 EXIT_CODE 7\n",
        ];
        let mut rng = Rng(42);
        for b in base {
            for _ in 0..2000 {
                let mut t = b.to_vec();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(t.len() as u64 + 1) as usize;
                    match rng.below(4) {
                        0 if at < t.len() => t[at] ^= 1 << rng.below(8),
                        1 => t.insert(at, rng.next() as u8),
                        2 if at < t.len() => {
                            t.remove(at);
                        }
                        _ => t.truncate(at),
                    }
                }
                exercise(&t, b"0123456789abcdefghij");
            }
        }
    }

    #[test]
    fn scan_catches_sizes_past_the_data() {
        let t = b"O 0.000001 3\nI 0.000001 100\nO 0.000001 3\nO 0.000001 5\n";
        let s = scan(
            &mut TimingReader::new(&t[..]),
            Stream::Out,
            11,
            "typescript",
        )
        .unwrap();
        assert_eq!((s.chunks, s.bytes, s.duration_us), (3, 11, 4));
        let e = scan(
            &mut TimingReader::new(&t[..]),
            Stream::Out,
            10,
            "typescript",
        )
        .unwrap_err();
        assert_eq!(e.line, 4, "{e:?}");
        assert!(e.msg.contains("past the end of typescript"), "{e:?}");
        let e = scan(&mut TimingReader::new(&t[..]), Stream::In, 99, "input").unwrap_err();
        assert_eq!(e.line, 2, "{e:?}");
        // A crafted huge size is just a number: no allocation, a clear error.
        let e = scan(
            &mut TimingReader::new(&b"0.000001 9999999999999999999\n"[..]),
            Stream::Out,
            10,
            "ts",
        )
        .unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn replay_writes_one_stream_and_carries_skipped_delays() {
        let t = b"H 0.000000 START_TIME x\nO 0.500000 3\nI 0.250000 2\nS 0.100000 SIGWINCH ROWS=1 COLS=2\nO 0.050000 4\nI 1.000000 1\n";
        let out_data = b"abcdefg";
        let opts = Options {
            stream: Stream::Out,
            speed: 1.0,
            max_delay: None,
        };
        let mut out = Vec::new();
        let mut p = NoWait(Vec::new());
        let n = replay(
            &mut TimingReader::new(&t[..]),
            &mut &out_data[..],
            &opts,
            &mut out,
            &mut p,
        )
        .unwrap();
        assert_eq!((n, &out[..]), (7, &b"abcdefg"[..]));
        assert_eq!(
            p.0,
            vec![Duration::from_millis(500), Duration::from_millis(400)]
        );

        let opts = Options {
            stream: Stream::In,
            speed: 2.0,
            max_delay: Some(0.3),
        };
        let mut out = Vec::new();
        let mut p = NoWait(Vec::new());
        replay(
            &mut TimingReader::new(&t[..]),
            &mut &b"XYZ"[..],
            &opts,
            &mut out,
            &mut p,
        )
        .unwrap();
        assert_eq!(out, b"XYZ");
        // 0.75 s / 2 = 0.375 clamped to 0.3; then 0.15 + 1.0 = 1.15 / 2 = 0.575 clamped to 0.3.
        assert_eq!(
            p.0,
            vec![Duration::from_millis(300), Duration::from_millis(300)]
        );
    }

    #[test]
    fn replay_reports_short_data_and_stops_on_signal() {
        let t = b"0.000001 3\n0.000001 5\n";
        let opts = Options {
            stream: Stream::Out,
            speed: 1.0,
            max_delay: None,
        };
        let mut out = Vec::new();
        match replay(
            &mut TimingReader::new(&t[..]),
            &mut &b"abcdef"[..],
            &opts,
            &mut out,
            &mut NoWait(Vec::new()),
        ) {
            Err(PlayError::DataShort {
                line: 2,
                missing: 2,
            }) => {}
            other => panic!("{other:?}"),
        }
        struct Stop;
        impl Pacer for Stop {
            fn pause(&mut self, _: Duration) -> Result<(), i32> {
                Err(2)
            }
            fn check(&mut self) -> Result<(), i32> {
                Ok(())
            }
        }
        let mut out = Vec::new();
        assert!(matches!(
            replay(
                &mut TimingReader::new(&t[..]),
                &mut &b"abcdefgh"[..],
                &opts,
                &mut out,
                &mut Stop
            ),
            Err(PlayError::Stopped(2))
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn cr_becomes_lf_for_terminals() {
        let mut w = CrToNl(Vec::new());
        let big: Vec<u8> = b"ab\r".iter().copied().cycle().take(10_000).collect();
        w.write_all(&big).unwrap();
        w.write_all(b"\x1b[A\r\n").unwrap();
        let want: Vec<u8> = b"ab\n".iter().copied().cycle().take(10_000).collect();
        assert_eq!(w.0, [&want[..], b"\x1b[A\n\n"].concat());
    }

    #[test]
    fn options_are_checked() {
        let o = |speed, max_delay| Options {
            stream: Stream::Out,
            speed,
            max_delay,
        };
        assert!(o(1.0, None).check().is_ok());
        assert!(o(0.0, None).check().is_err());
        assert!(o(f64::NAN, None).check().is_err());
        assert!(o(f64::INFINITY, None).check().is_err());
        assert!(o(1.0, Some(-1.0)).check().is_err());
        assert!(o(1.0, Some(f64::NAN)).check().is_err());
        assert_eq!(
            o(0.001, None).pause(u64::MAX),
            Duration::from_secs(1_000_000_000)
        );
        assert_eq!(o(4.0, Some(0.1)).pause(200_000), Duration::from_millis(50));
    }

    #[test]
    fn a_plain_file_compressed_meanwhile_is_read_from_its_gz() {
        let dir = tempfile::tempdir().unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, b"Script started\nhello").unwrap();
        std::fs::write(dir.path().join("typescript.gz"), enc.finish().unwrap()).unwrap();
        let mut r = open_maybe_gz(&dir.path().join("typescript")).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"Script started\nhello");
        let e = open_maybe_gz(&dir.path().join("timing")).err().unwrap();
        assert!(format!("{e:#}").contains("cannot open"), "{e:#}");
        assert!(format!("{e:#}").contains("timing"), "{e:#}");
    }

    #[test]
    fn header_skip_and_gzip() {
        let mut r: &[u8] = b"Script started on x\nhello";
        assert_eq!(skip_header(&mut r).unwrap(), Some(20));
        assert_eq!(r, b"hello");
        let mut r: &[u8] = b"no newline";
        assert_eq!(skip_header(&mut r).unwrap(), None);

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("typescript.gz");
        let mut gz = flate2::write::GzEncoder::new(
            File::create(&p).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(b"Script started\nabc").unwrap();
        gz.finish().unwrap();
        let mut r = open_maybe_gz(&p).unwrap();
        skip_header(&mut *r).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "abc");
        std::fs::write(dir.path().join("bad.gz"), b"not gzip").unwrap();
        let e = open_maybe_gz(&dir.path().join("bad.gz")).err().unwrap();
        assert!(
            format!("{e:#}")
                .ends_with("bad.gz: not gzip data (a .gz file must be gzip-compressed)"),
            "{e:#}"
        );
        // gzip's magic, then garbage: the decoder's own error, at the first read.
        std::fs::write(dir.path().join("cut.gz"), b"\x1f\x8b\x08garbage").unwrap();
        let mut r = open_maybe_gz(&dir.path().join("cut.gz")).unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err());
    }

    #[test]
    fn recorded_bytes_stop_at_the_footer() {
        let len = |b: &[u8]| recorded_len(&mut &b[..]).unwrap();
        assert_eq!(
            len(b"hi\r\n\nScript done on T [COMMAND_EXIT_CODE=\"0\"]\n"),
            4
        );
        assert_eq!(len(b"tail\nScript done on T [<recorder killed>]\n"), 4);
        assert_eq!(len(b"live, no footer yet"), 19);
        assert_eq!(len(b"x\nScript done on T\nmore\n"), 24, "not the last line");
        assert_eq!(len(b""), 0);
        let mut big = vec![b'x'; 200_000];
        big.extend_from_slice(b"\nScript done on T [COMMAND_EXIT_CODE=\"1\"]\n");
        assert_eq!(len(&big), 200_000);
    }

    #[test]
    fn locate_dirs_paths_and_ids() {
        let t = tempfile::tempdir().unwrap();
        let spool = Spool::new(t.path());
        spool.ensure().unwrap();
        let id = "20260101T000000Z-alice-0123456789ab";
        spool.create_active(id).unwrap();
        let d = spool.move_to(id, State::Active, State::Queue).unwrap();
        std::fs::write(d.join("typescript.gz"), b"").unwrap();
        std::fs::write(d.join("timing.gz"), b"").unwrap();
        let want = Located {
            timing: d.join("timing.gz"),
            typescript: Some(d.join("typescript.gz")),
            input: None,
        };
        let sp = || Ok(Spool::new(t.path()));
        assert_eq!(locate(d.to_str().unwrap(), sp).unwrap(), want);
        assert_eq!(locate(id, sp).unwrap(), want);
        assert_eq!(locate("20260101T000000Z-al", sp).unwrap(), want);
        assert_eq!(
            locate(d.join("typescript.gz").to_str().unwrap(), sp).unwrap(),
            want
        );
        assert_eq!(
            locate(d.join("timing.gz").to_str().unwrap(), sp).unwrap(),
            want,
            "the timing names its recording, it is not read as the typescript"
        );
        let other = spool.create_active("20260101T000000Z-bob-1").unwrap();
        std::fs::write(other.join("timing"), b"").unwrap();
        let e = locate("20260101T", sp).unwrap_err().to_string();
        assert!(e.contains("matches 2 recordings"), "{e}");
        let e = locate("20990101T", sp).unwrap_err().to_string();
        assert!(e.contains("no recording"), "{e}");
        let e = locate("../x", sp).unwrap_err().to_string();
        assert!(e.contains("no such file"), "{e}");
        let e = locate("/dev/null", sp).unwrap_err().to_string();
        assert_eq!(
            e,
            "/dev/null: not a recording: neither a directory nor a regular file"
        );
        let e = locate(t.path().to_str().unwrap(), sp)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no timing"), "{e}");
    }
}
