//! The mail: attachments (whole, or head+tail under `mail.max_size`), the lettre message, and the transports
//! (our own bounded sendmail spawn, SMTP plain / STARTTLS / implicit TLS with rustls).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use flate2::read::GzDecoder;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    Certificate, CertificateStore, SmtpConnection, Tls, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport as _};

use crate::config::Config;
use crate::deliver::body::{self, AttachmentInfo, BodyInput, Truncation};
use crate::deliver::compress;
use crate::deliver::timing::{Stream, Timing};
use crate::record::meta::{FileSum, Meta};
use crate::spool::layout;

// ------------------------------------------------------------------------------------------------------------------
// Transport specification

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// smtp://: plain, for a relay on the local host or a trusted network.
    Plain,
    /// smtp://…?tls=required: STARTTLS, refused if the server does not offer it.
    StartTls,
    /// smtps://: TLS from the first byte.
    Implicit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportSpec {
    None,
    Sendmail,
    Smtp {
        host: String,
        port: u16,
        tls: TlsMode,
    },
}

impl TransportSpec {
    /// Parse `mail.transport`; the error says what is accepted.
    pub fn parse(s: &str) -> Result<TransportSpec, String> {
        let usage = "expected none, sendmail, smtp://host[:port], smtp://host[:port]?tls=required or smtps://host[:port]";
        match s {
            "none" => return Ok(TransportSpec::None),
            "sendmail" => return Ok(TransportSpec::Sendmail),
            _ => {}
        }
        let (rest, implicit) = if let Some(r) = s.strip_prefix("smtps://") {
            (r, true)
        } else if let Some(r) = s.strip_prefix("smtp://") {
            (r, false)
        } else {
            return Err(format!("{usage}, got {s:?}"));
        };
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let authority = authority.trim_end_matches('/');
        let tls = match (implicit, query) {
            (true, None) => TlsMode::Implicit,
            (false, None) => TlsMode::Plain,
            (false, Some("tls=required")) => TlsMode::StartTls,
            (_, Some(q)) => {
                return Err(format!(
                    "unknown option {q:?} in {s:?} (the only option is ?tls=required, for smtp://)"
                ));
            }
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("unclosed [ in {s:?}"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("{usage}, got {s:?}")),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
        {
            return Err(format!("invalid host {host:?} in {s:?}"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("invalid port {p:?} in {s:?}"))?,
            None if implicit => 465,
            None => 25,
        };
        Ok(TransportSpec::Smtp { host, port, tls })
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Errors

/// Why a delivery attempt failed. `permanent` means the mail system refused the message itself (5xx): retrying the
/// same message will not help, the recording goes to failed/. `transport_down` means the transport itself failed,
/// not this message (no connection, no reply within mail.timeout, a failed TLS handshake, a sendmail that cannot be
/// run or hangs, a transport that cannot be set up): the other queued recordings would fare no better now.
#[derive(Debug)]
pub struct SendError {
    pub permanent: bool,
    pub transport_down: bool,
    pub message: String,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SendError {}

impl SendError {
    /// A failure of this message that a later attempt may overcome.
    pub fn transient(message: impl Into<String>) -> SendError {
        SendError {
            permanent: false,
            transport_down: false,
            message: message.into(),
        }
    }

    /// A failure of the transport itself (see `transport_down`).
    fn down(message: impl Into<String>) -> SendError {
        SendError {
            transport_down: true,
            ..SendError::transient(message)
        }
    }
}

// ------------------------------------------------------------------------------------------------------------------
// Attachments

/// One attachment, ready to go.
pub struct Att {
    pub name: String,
    pub data: Vec<u8>,
    pub sum: FileSum,
    pub raw: Option<FileSum>,
}

/// Is the data file `name` of the recording in `dir` there, plain or compressed?
pub fn has_data_file(dir: &Path, name: &str) -> bool {
    layout::is_regular_file(&dir.join(name))
        || layout::is_regular_file(&dir.join(format!("{name}.gz")))
}

/// The data files a recording should have but has not (damage or tampering): typescript and timing, and input when
/// it was recorded. Delivery mails what is there and says what is missing (`queue::deliver`).
pub fn missing_data_files(dir: &Path, meta: &Meta) -> Vec<&'static str> {
    let mut want = vec![layout::TYPESCRIPT, layout::TIMING];
    if meta.input_recorded {
        want.push(layout::INPUT);
    }
    want.retain(|n| !has_data_file(dir, n));
    want
}

/// The data streams of a recording that are there, in attachment order: (file name, timing stream it belongs to).
fn streams(dir: &Path) -> Vec<(&'static str, Option<Stream>)> {
    [
        (layout::TYPESCRIPT, Some(Stream::Out)),
        (layout::TIMING, None),
        (layout::INPUT, Some(Stream::In)),
    ]
    .into_iter()
    .filter(|(n, _)| has_data_file(dir, n))
    .collect()
}

/// The uncompressed content of `name`, from `name.gz` if the recording is compressed, else from `name`.
fn open_stream(dir: &Path, name: &str) -> Result<Box<dyn Read>> {
    let gz = dir.join(format!("{name}.gz"));
    if layout::is_regular_file(&gz) {
        let f = layout::open_no_follow(&gz)?;
        return Ok(Box::new(GzDecoder::new(BufReader::with_capacity(
            1 << 20,
            f,
        ))));
    }
    let raw = dir.join(name);
    let f = layout::open_no_follow(&raw)?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
}

/// Size a base64 attachment of `n` bytes takes in the message (76-column lines).
fn encoded(n: u64) -> u64 {
    n.div_ceil(3) * 4 * 78 / 76 + 400
}

/// Room for headers and the body in the size budget.
pub const BODY_RESERVE: u64 = 320 << 10;

/// The attachments of a recording, whole when they fit `mail.max_size`, otherwise head+tail excerpts.
pub fn attachments(
    cfg: &Config,
    dir: &Path,
    meta: &Meta,
) -> Result<(Vec<Att>, Option<Truncation>)> {
    let level = cfg.mail.compress_level;
    let streams = streams(dir);
    // Sizes first: never load a recording that is too big anyway.
    let mut estimate = BODY_RESERVE;
    for (name, _) in &streams {
        let gz = dir.join(format!("{name}.gz"));
        match std::fs::symlink_metadata(&gz).ok().filter(|m| m.is_file()) {
            Some(md) => estimate += encoded(md.len()),
            None => {
                let raw = dir.join(name);
                let md = std::fs::symlink_metadata(&raw).with_context(|| {
                    format!(
                        "the recording has neither {} nor {}",
                        raw.display(),
                        gz.display()
                    )
                })?;
                // Uncompressed (compression failed, e.g. disk full): assume text compresses at least 4x.
                estimate += encoded(md.len() / 4);
            }
        }
    }
    let limit = cfg.mail.max_size;
    if estimate <= limit || limit == 0 {
        let mut out = Vec::new();
        for (name, _) in &streams {
            let gz_name = format!("{name}.gz");
            let gz = dir.join(&gz_name);
            let (data, raw) = if layout::is_regular_file(&gz) {
                let data = layout::read_no_follow(&gz, u64::MAX)?;
                (data, meta.files.get(*name).cloned())
            } else {
                let raw_path = dir.join(name);
                let bytes = layout::read_no_follow(&raw_path, u64::MAX)?;
                (
                    compress::gzip_bytes(&bytes, name, level),
                    Some(compress::sum_bytes(&bytes)),
                )
            };
            out.push(Att {
                name: gz_name,
                sum: compress::sum_bytes(&data),
                data,
                raw,
            });
        }
        let total: u64 = out
            .iter()
            .map(|a| encoded(a.data.len() as u64))
            .sum::<u64>()
            + BODY_RESERVE;
        if limit == 0 || total <= limit {
            return Ok((out, None));
        }
        // The estimate for uncompressed files was too hopeful: fall through to an excerpt.
    }
    excerpt(cfg, dir, meta, &streams)
}

/// The first line of a data file (the `Script started on` header), bounded.
fn read_header_line(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.take(64 << 10).read_until(b'\n', &mut line)?;
    Ok(line)
}

/// head+tail excerpts of every stream that fit `mail.max_size` together.
fn excerpt(
    cfg: &Config,
    dir: &Path,
    meta: &Meta,
    streams: &[(&'static str, Option<Stream>)],
) -> Result<(Vec<Att>, Option<Truncation>)> {
    let level = cfg.mail.compress_level;
    let limit = cfg.mail.max_size;
    let mut timing_text = Vec::new();
    // Without a timing file (missing, said in the mail) nothing can be cut: the attachments are left out.
    if has_data_file(dir, layout::TIMING) {
        open_stream(dir, layout::TIMING)?
            .read_to_end(&mut timing_text)
            .context("cannot read the timing file")?;
    }
    let timing = Timing::parse(&timing_text);
    let totals = timing.totals();
    let total_raw = totals[0].saturating_add(totals[1]);
    // Sums of the full files, for the body.
    let mut full = Vec::new();
    let mut gz_total = 0u64;
    for (name, _) in streams {
        let gz = dir.join(format!("{name}.gz"));
        if let Ok(s) = compress::sum_file(&gz) {
            gz_total += s.size;
            full.push((format!("{name}.gz"), s));
        }
        if let Some(s) = meta.files.get(*name) {
            full.push(((*name).to_string(), s.clone()));
        }
    }
    let budget = limit.saturating_sub(BODY_RESERVE) * 3 / 4 * 76 / 78;
    let ratio = if gz_total > 0 && total_raw > 0 {
        (gz_total as f64 / total_raw as f64).clamp(0.001, 1.2)
    } else {
        0.25
    };
    let mut raw_budget = ((budget as f64 / ratio) * 0.85).min((64u64 << 20) as f64) as u64;
    for _ in 0..6 {
        let Some(cut) = timing.plan_cut(raw_budget / 2, raw_budget / 2) else {
            raw_budget /= 2;
            continue;
        };
        let marker = format!(
            "\r\n\r\n[auditty: {} bytes of this session are left out here to fit the mail size limit; \
             the full recording is {} on {}]\r\n\r\n",
            body::thousands(cut.omitted[0].saturating_add(cut.omitted[1])),
            body::escape(meta.id.as_bytes(), 80),
            body::escape(meta.host.as_bytes(), 128)
        )
        .into_bytes();
        let mut atts = Vec::new();
        for (name, stream) in streams {
            let data = match stream {
                None => timing.excerpt(&cut, marker.len() as u64).render(),
                Some(s) => {
                    let i = if *s == Stream::Out { 0 } else { 1 };
                    let mut r = BufReader::new(open_stream(dir, name)?);
                    let mut out = read_header_line(&mut r)?;
                    (&mut r)
                        .take(cut.head_bytes[i])
                        .read_to_end(&mut out)
                        .with_context(|| format!("cannot read {name}"))?;
                    if *s == Stream::Out {
                        out.extend_from_slice(&marker);
                    }
                    io::copy(&mut (&mut r).take(cut.omitted[i]), &mut io::sink())
                        .with_context(|| format!("cannot read {name}"))?;
                    r.read_to_end(&mut out)
                        .with_context(|| format!("cannot read {name}"))?;
                    out
                }
            };
            let gz = compress::gzip_bytes(&data, name, level);
            atts.push(Att {
                name: format!("{name}.gz"),
                sum: compress::sum_bytes(&gz),
                data: gz,
                raw: Some(compress::sum_bytes(&data)),
            });
        }
        let size: u64 = atts.iter().map(|a| a.data.len() as u64).sum();
        let kept_head = cut.head_bytes[0] + cut.head_bytes[1];
        let omitted = cut.omitted[0].saturating_add(cut.omitted[1]);
        if size <= budget {
            return Ok((
                atts,
                Some(Truncation {
                    kept_head,
                    omitted,
                    total: total_raw,
                    max_size: limit,
                    full,
                    dropped: false,
                }),
            ));
        }
        raw_budget = (raw_budget as f64 * (budget as f64 / size as f64) * 0.9) as u64;
    }
    Ok((
        Vec::new(),
        Some(Truncation {
            kept_head: 0,
            omitted: total_raw,
            total: total_raw,
            max_size: limit,
            full,
            dropped: true,
        }),
    ))
}

// ------------------------------------------------------------------------------------------------------------------
// The message

#[derive(Clone)]
struct XAudittyRecording(String);

impl Header for XAudittyRecording {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Auditty-Recording")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(XAudittyRecording(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[derive(Clone)]
struct XAudittyTruncated(String);

impl Header for XAudittyTruncated {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Auditty-Truncated")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(XAudittyTruncated(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// A host name safe for a Message-ID or an address: letters, digits, dots and dashes only.
pub fn domain_part(host: &str) -> String {
    let d: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .take(253)
        .collect();
    let d = d.trim_matches(['.', '-']).to_string();
    if d.is_empty() || d.contains("..") {
        "localhost".into()
    } else {
        d
    }
}

/// This host's name, as the kernel knows it.
pub fn local_host() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// This host's fully qualified name without asking DNS (which could hang): the host name if it has a dot, else the
/// first dotted name on the /etc/hosts line that lists it (Debian's `127.0.1.1 web1.example.com web1`), else the
/// plain host name.
pub fn fqdn() -> String {
    let host = local_host();
    if host.contains('.') {
        return host;
    }
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    fqdn_from_hosts(&host, &hosts).unwrap_or(host)
}

fn fqdn_from_hosts(host: &str, hosts: &str) -> Option<String> {
    hosts.lines().find_map(|l| {
        let names: Vec<&str> = l.split('#').next()?.split_whitespace().skip(1).collect();
        if names.contains(&host) {
            names
                .iter()
                .find(|n| n.contains('.') && n.starts_with(&format!("{host}.")))
                .map(|n| n.to_string())
        } else {
            None
        }
    })
}

/// `mail.from`, or `auditty@<fqdn>`.
pub fn sender(cfg: &Config) -> Result<Mailbox> {
    match &cfg.mail.from {
        Some(f) => f
            .parse()
            .map_err(|e| anyhow!("mail.from {f:?} is not a valid address: {e}")),
        None => format!("auditty@{}", domain_part(&fqdn()))
            .parse()
            .map_err(|e| anyhow!("cannot make a sender address from the host name: {e}")),
    }
}

fn recipients(cfg: &Config) -> Result<Vec<Mailbox>> {
    if cfg.mail.to.is_empty() {
        bail!("mail.to is empty: set the auditors' addresses in the configuration");
    }
    cfg.mail
        .to
        .iter()
        .map(|t| {
            t.parse::<Mailbox>()
                .map_err(|e| anyhow!("mail.to {t:?} is not a valid address: {e}"))
        })
        .collect()
}

/// The Message-ID of a recording's mail: the same for every attempt, so a retried delivery is recognisable.
pub fn message_id(meta: &Meta) -> String {
    let id: String = meta
        .id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    format!("<auditty.{id}@{}>", domain_part(&meta.host))
}

/// A built message plus what the queue records about it.
pub struct Built {
    pub message: Message,
    pub truncated: bool,
}

/// Build the mail for the recording in `dir`.
pub fn build(cfg: &Config, dir: &Path, meta: &Meta) -> Result<Built> {
    let (atts, trunc) = attachments(cfg, dir, meta)?;
    let commands = layout::read_no_follow(&dir.join(layout::COMMANDS), 8 << 20).ok();
    let infos: Vec<AttachmentInfo> = atts
        .iter()
        .map(|a| AttachmentInfo {
            name: a.name.clone(),
            sent: a.sum.clone(),
            raw: a.raw.clone(),
        })
        .collect();
    let spool_dir = dir
        .parent()
        .and_then(Path::parent)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let text = body::render(&BodyInput {
        meta,
        commands_log: commands.as_deref(),
        attachments: &infos,
        truncation: trunc.as_ref(),
        spool_dir: &spool_dir,
        attempt: meta.attempts.max(1),
    });
    let mut b = Message::builder()
        .from(sender(cfg)?)
        .subject(body::subject(&cfg.mail.subject, meta))
        .message_id(Some(message_id(meta)))
        .header(XAudittyRecording(body::header_text(&meta.id, 80)));
    if trunc.is_some() {
        b = b.header(XAudittyTruncated("head+tail".into()));
    }
    for r in recipients(cfg)? {
        b = b.to(r);
    }
    let mut mp = MultiPart::mixed().singlepart(SinglePart::plain(text));
    let gzip = ContentType::parse("application/gzip").expect("valid content type");
    for a in atts {
        mp = mp.singlepart(Attachment::new(a.name).body(a.data, gzip.clone()));
    }
    let message = b.multipart(mp).context("cannot build the mail")?;
    Ok(Built {
        message,
        truncated: trunc.is_some(),
    })
}

// ------------------------------------------------------------------------------------------------------------------
// Sending

/// Send a message with the configured transport.
pub fn send(cfg: &Config, message: &Message) -> Result<(), SendError> {
    let spec = TransportSpec::parse(&cfg.mail.transport).map_err(SendError::down)?;
    let timeout = Duration::from_secs(cfg.mail.timeout.max(1));
    match spec {
        TransportSpec::None => Err(SendError::transient(
            "mail.transport is none: recordings stay in the spool",
        )),
        TransportSpec::Sendmail => {
            let env = message.envelope();
            let from = env.from().map(|a| a.to_string()).unwrap_or_default();
            let to: Vec<String> = env.to().iter().map(|a| a.to_string()).collect();
            run_sendmail(
                &cfg.mail.sendmail_path,
                &from,
                &to,
                &message.formatted(),
                timeout,
            )
        }
        TransportSpec::Smtp { host, port, tls } => {
            let t = smtp_transport(cfg, &host, port, tls, timeout)
                .map_err(|e| SendError::down(format!("{e:#}")))?;
            t.send(message)
                .map(|_| ())
                .map_err(|e| smtp_send_error(cfg, &host, port, timeout, &e))
        }
    }
}

/// What an SMTP failure means for the queue. The server's answers (4xx but 421, 5xx, a reply that does not parse)
/// concern this message; a 421 and anything else is the connection failing (refused, unreachable, reset, TLS, no reply): the transport
/// is down. No reply within the timeout shows as EAGAIN (a socket read timeout) or ETIMEDOUT (connect): say what it
/// is, naming the server and the setting, rather than "Resource temporarily unavailable".
fn smtp_send_error(
    cfg: &Config,
    host: &str,
    port: u16,
    timeout: Duration,
    e: &lettre::transport::smtp::Error,
) -> SendError {
    let no_reply = io_error_kind(e)
        .is_some_and(|k| matches!(k, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut));
    // 421 "service not available, closing transmission channel" is the server going away, for every message alike.
    // So do 454/530/534/535/538, refusing the authentication (mail.user, mail.password_file): not permanent for the
    // recording either, which waits in the queue (retried with backoff) until the credentials are fixed, instead of
    // going to failed/.
    let code = e.status().map(|c| c.to_string());
    let transport_refused = code
        .as_deref()
        .is_some_and(|c| matches!(c, "421" | "454" | "530" | "534" | "535" | "538"));
    let answered = !transport_refused
        && (e.is_response() || e.is_transient() || e.is_permanent() || e.is_client());
    let message = if no_reply {
        let server = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        format!(
            "{}: no reply from {server} within mail.timeout = {} s",
            cfg.mail.transport,
            timeout.as_secs()
        )
    } else {
        format!("{}: {}", cfg.mail.transport, error_chain(e))
    };
    SendError {
        permanent: e.is_permanent() && !transport_refused,
        transport_down: no_reply || !answered,
        message,
    }
}

/// The kind of the first I/O error in `e`'s chain of causes.
fn io_error_kind(e: &dyn std::error::Error) -> Option<io::ErrorKind> {
    let mut cur = e.source();
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        cur = c.source();
    }
    None
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        cur = c.source();
    }
    s
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Read `mail.password_file`: it must not be readable by everyone.
fn read_password(p: &Path) -> Result<String> {
    let f = File::open(p).with_context(|| {
        format!(
            "cannot read mail.password_file {} (it should be root:auditty, mode 0640)",
            p.display()
        )
    })?;
    let md = f
        .metadata()
        .with_context(|| format!("cannot stat {}", p.display()))?;
    if md.permissions().mode() & 0o004 != 0 {
        bail!(
            "mail.password_file {} is readable by everyone (mode {:o}); make it root:auditty, mode 0640",
            p.display(),
            md.mode() & 0o7777
        );
    }
    let mut s = String::new();
    f.take(4096)
        .read_to_string(&mut s)
        .with_context(|| format!("cannot read {}", p.display()))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

fn tls_parameters(cfg: &Config, host: &str) -> Result<TlsParameters> {
    let mut b = TlsParameters::builder(host.to_string());
    if let Some(ca) = &cfg.mail.tls_ca_file {
        let pem = std::fs::read(ca)
            .with_context(|| format!("cannot read mail.tls_ca_file {}", ca.display()))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| anyhow!("mail.tls_ca_file {}: {e}", ca.display()))?;
        b = b
            .certificate_store(CertificateStore::None)
            .add_root_certificate(cert);
    }
    b.build()
        .map_err(|e| anyhow!("cannot set up TLS for {host}: {e}"))
}

fn smtp_transport(
    cfg: &Config,
    host: &str,
    port: u16,
    tls: TlsMode,
    timeout: Duration,
) -> Result<SmtpTransport> {
    // The EHLO name: lettre's default is the raw host name, which could carry CR/LF into the SMTP dialogue.
    let mut b = SmtpTransport::builder_dangerous(host)
        .port(port)
        .hello_name(ClientId::Domain(domain_part(&local_host())))
        .timeout(Some(timeout));
    b = match tls {
        TlsMode::Plain => b,
        TlsMode::StartTls => b.tls(Tls::Required(tls_parameters(cfg, host)?)),
        TlsMode::Implicit => b.tls(Tls::Wrapper(tls_parameters(cfg, host)?)),
    };
    if let Some(c) = credentials(cfg, host, tls)? {
        b = b
            .credentials(c)
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(b.build())
}

/// The SMTP credentials, if configured; never for a clear-text connection to another host.
fn credentials(cfg: &Config, host: &str, tls: TlsMode) -> Result<Option<Credentials>> {
    let (Some(user), Some(pf)) = (&cfg.mail.user, &cfg.mail.password_file) else {
        return Ok(None);
    };
    if tls == TlsMode::Plain && !is_loopback(host) {
        bail!(
            "refusing to send the SMTP password in clear text to {host}: use smtps:// or smtp://…?tls=required"
        );
    }
    Ok(Some(Credentials::new(user.clone(), read_password(pf)?)))
}

/// sysexits that say the message itself is refused.
fn sendmail_permanent(code: i32) -> bool {
    matches!(code, 65 | 67)
}

fn sysexit_name(code: i32) -> &'static str {
    match code {
        64 => " (EX_USAGE)",
        65 => " (EX_DATAERR)",
        66 => " (EX_NOINPUT)",
        67 => " (EX_NOUSER)",
        68 => " (EX_NOHOST)",
        69 => " (EX_UNAVAILABLE)",
        70 => " (EX_SOFTWARE)",
        71 => " (EX_OSERR)",
        73 => " (EX_CANTCREAT)",
        74 => " (EX_IOERR)",
        75 => " (EX_TEMPFAIL)",
        76 => " (EX_PROTOCOL)",
        77 => " (EX_NOPERM)",
        78 => " (EX_CONFIG)",
        _ => "",
    }
}

/// Run `sendmail -i -f FROM -- TO…` with the message on stdin, a clean environment, in its own process group, and
/// kill the group if it takes longer than `timeout`.
pub fn run_sendmail(
    path: &Path,
    from: &str,
    to: &[String],
    data: &[u8],
    timeout: Duration,
) -> Result<(), SendError> {
    use nix::sys::signal::{Signal, killpg};
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    use nix::unistd::Pid;

    if !path.is_absolute() {
        return Err(SendError::down(format!(
            "mail.sendmail_path {} is not absolute",
            path.display()
        )));
    }
    // The message goes through a pipe of ours: a second read end kept here (which reads nothing) tells, once the
    // program has exited, whether it left part of the message unread.
    let (input_r, input_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| {
        SendError::transient(format!("cannot make a pipe for {}: {e}", path.display()))
    })?;
    let unread_probe = input_r.try_clone().map_err(|e| {
        SendError::transient(format!("cannot make a pipe for {}: {e}", path.display()))
    })?;
    let mut child = Command::new(path)
        .arg("-i")
        .arg("-f")
        .arg(from)
        .arg("--")
        .args(to)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/")
        .env("LC_ALL", "C")
        .current_dir("/")
        .stdin(Stdio::from(input_r))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| SendError::down(format!("cannot run {}: {e}", path.display())))?;
    let pid = Pid::from_raw(child.id() as i32);
    let mut stderr = child.stderr.take().expect("piped stderr");
    let data_len = data.len();
    let data = data.to_vec();
    let (itx, irx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut input = std::fs::File::from(input_w);
        let written = input.write_all(&data);
        drop(input);
        let _ = itx.send(written);
    });
    let (etx, erx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(16 << 10).read_to_end(&mut buf);
        let _ = io::copy(&mut stderr, &mut io::sink());
        let _ = etx.send(buf);
    });
    let (wtx, wrx) = mpsc::channel();
    std::thread::spawn(move || {
        // Wait for the exit without reaping, so the pid cannot be reused before we are done with it.
        let _ = wtx.send(waitid(
            Id::Pid(pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        ));
    });
    let timed_out = wrx.recv_timeout(timeout).is_err();
    if timed_out {
        let _ = killpg(pid, Signal::SIGKILL);
    }
    let status = child
        .wait()
        .map_err(|e| SendError::transient(format!("waiting for {}: {e}", path.display())))?;
    let err_text = erx
        .recv_timeout(Duration::from_secs(1))
        .map(|b| body::escape(String::from_utf8_lossy(&b).trim().as_bytes(), 500))
        .unwrap_or_default();
    if timed_out {
        return Err(SendError::down(format!(
            "{} did not finish within mail.timeout ({} s) and was killed{}",
            path.display(),
            timeout.as_secs(),
            if err_text.is_empty() {
                String::new()
            } else {
                format!(": {err_text}")
            }
        )));
    }
    match status.code() {
        Some(0) => {
            // Exit 0 counts only for a message read whole: a wrong program, or one that stops at a lone "." line,
            // would otherwise have the recording moved to sent/ with no mail sent.
            // Everything written (the write end closed), and nothing of it left in the pipe.
            let unread = match irx.recv_timeout(Duration::from_secs(1)) {
                Ok(Ok(())) => crate::sys::pipe_pending(std::os::fd::AsFd::as_fd(&unread_probe))
                    .unwrap_or(usize::MAX),
                Ok(Err(_)) | Err(_) => usize::MAX,
            };
            // A write still blocked on the full pipe (nobody reads it any more) now fails and ends.
            drop(unread_probe);
            if unread == 0 {
                return Ok(());
            }
            Err(SendError::transient(format!(
                "{} exited with status 0 without reading the whole message ({}): not counted as sent{}",
                path.display(),
                if unread == usize::MAX {
                    "it stopped reading before the end".to_string()
                } else {
                    format!("{unread} of {} bytes left unread", data_len)
                },
                if err_text.is_empty() {
                    String::new()
                } else {
                    format!(": {err_text}")
                }
            )))
        }
        Some(c) => Err(SendError {
            permanent: sendmail_permanent(c),
            transport_down: false,
            message: format!(
                "{} exited with status {c}{}{}",
                path.display(),
                sysexit_name(c),
                if err_text.is_empty() {
                    String::new()
                } else {
                    format!(": {err_text}")
                }
            ),
        }),
        None => Err(SendError::transient(format!(
            "{} was killed by a signal{}",
            path.display(),
            if err_text.is_empty() {
                String::new()
            } else {
                format!(": {err_text}")
            }
        ))),
    }
}

// ------------------------------------------------------------------------------------------------------------------
// For check-config

/// Check that the transport can be used, without sending: the sendmail program is a root-owned executable that only
/// root can modify, or the SMTP server answers EHLO (and TLS/authentication succeed when configured).
#[allow(dead_code)] // for `auditty check-config`
pub fn probe_transport(cfg: &Config) -> Result<()> {
    let spec =
        TransportSpec::parse(&cfg.mail.transport).map_err(|e| anyhow!("mail.transport: {e}"))?;
    match spec {
        TransportSpec::None => Ok(()),
        TransportSpec::Sendmail => {
            let p: PathBuf = cfg.mail.sendmail_path.clone();
            let md = std::fs::metadata(&p)
                .with_context(|| format!("mail.sendmail_path {}", p.display()))?;
            if !md.is_file() || md.mode() & 0o111 == 0 {
                bail!(
                    "mail.sendmail_path {} is not an executable file",
                    p.display()
                );
            }
            if md.mode() & 0o002 != 0 {
                bail!("mail.sendmail_path {} is writable by everyone", p.display());
            }
            Ok(())
        }
        TransportSpec::Smtp { host, port, tls } => {
            // Connect, greeting, EHLO, STARTTLS and AUTH as configured, then QUIT: no message.
            let timeout = Duration::from_secs(cfg.mail.timeout.max(1));
            let hello = ClientId::Domain(domain_part(&local_host()));
            let params = match tls {
                TlsMode::Plain => None,
                _ => Some(tls_parameters(cfg, &host)?),
            };
            let ctx = |e: lettre::transport::smtp::Error| {
                anyhow!("{}: {}", cfg.mail.transport, error_chain(&e))
            };
            let implicit = if tls == TlsMode::Implicit {
                params.as_ref()
            } else {
                None
            };
            let mut conn = SmtpConnection::connect(
                (host.as_str(), port),
                Some(timeout),
                &hello,
                implicit,
                None,
            )
            .map_err(ctx)?;
            if tls == TlsMode::StartTls {
                if !conn.can_starttls() {
                    bail!("{}: the server does not offer STARTTLS", cfg.mail.transport);
                }
                conn.starttls(params.as_ref().expect("TLS parameters"), &hello)
                    .map_err(ctx)?;
            }
            if let Some(c) = credentials(cfg, &host, tls)? {
                conn.auth(&[Mechanism::Plain, Mechanism::Login], &c)
                    .map_err(ctx)?;
            }
            let _ = conn.quit();
            Ok(())
        }
    }
}

/// Send a short test mail to `mail.to` with the configured transport.
#[allow(dead_code)] // for `auditty check-config --send-test`
pub fn send_test(cfg: &Config) -> Result<()> {
    if TransportSpec::parse(&cfg.mail.transport).map_err(|e| anyhow!(e))? == TransportSpec::None {
        bail!("mail.transport is none: nothing would be sent");
    }
    let host = local_host();
    let mut b = Message::builder()
        .from(sender(cfg)?)
        .subject(body::header_text(
            &format!("[auditty] test mail from {host}"),
            200,
        ))
        .header(XAudittyRecording("test".into()));
    for r in recipients(cfg)? {
        b = b.to(r);
    }
    let m = b
        .singlepart(SinglePart::plain(format!(
            "This is a test mail from auditty {} on {}.\n\nIf you can read it, mail.transport ({}) works, and \
             recordings of terminal sessions on this host will reach this address.\n",
            env!("CARGO_PKG_VERSION"),
            body::escape(host.as_bytes(), 255),
            cfg.mail.transport
        )))
        .context("cannot build the test mail")?;
    send(cfg, &m).map_err(|e| anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse() {
        use TransportSpec::*;
        assert_eq!(TransportSpec::parse("none"), Ok(None));
        assert_eq!(TransportSpec::parse("sendmail"), Ok(Sendmail));
        assert_eq!(
            TransportSpec::parse("smtp://mail.example.com"),
            Ok(Smtp {
                host: "mail.example.com".into(),
                port: 25,
                tls: TlsMode::Plain
            })
        );
        assert_eq!(
            TransportSpec::parse("smtp://127.0.0.1:2525?tls=required"),
            Ok(Smtp {
                host: "127.0.0.1".into(),
                port: 2525,
                tls: TlsMode::StartTls
            })
        );
        assert_eq!(
            TransportSpec::parse("smtps://[::1]"),
            Ok(Smtp {
                host: "::1".into(),
                port: 465,
                tls: TlsMode::Implicit
            })
        );
        for bad in [
            "smtp://",
            "smtp://h:0",
            "smtp://h:x",
            "smtps://h?tls=required",
            "smtp://h?tls=maybe",
            "pigeon",
            "smtp://a b",
        ] {
            assert!(TransportSpec::parse(bad).is_err(), "{bad}");
        }
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(b).read_to_end(&mut out).unwrap();
        out
    }

    /// An advanced-format recording with input, too big for the limit: the excerpt's timing must account for exactly
    /// the bytes of both excerpt data files, and keep head, tail and the H lines.
    #[test]
    fn excerpt_with_input_stream_is_consistent() {
        let d = tempfile::tempdir().unwrap();
        let hdr = "Script started on 2026-11-22 10:00:00+00:00 [TERM=\"dumb\" TTY=\"/dev/pts/1\" COLUMNS=\"80\" LINES=\"24\"]\n";
        let mut ts = hdr.as_bytes().to_vec();
        let mut inp = hdr.as_bytes().to_vec();
        let mut tm = String::from("H 0.000000 START_TIME 2026-11-22 10:00:00+00:00\n");
        let mut seed = 7u64;
        for i in 0..4000 {
            // Incompressible output chunks, and a keystroke now and then.
            let chunk: String = (0..500)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (b'!' + (seed >> 58) as u8) as char
                })
                .collect();
            let chunk = format!("{i:05}{chunk}\r\n");
            ts.extend_from_slice(chunk.as_bytes());
            tm.push_str(&format!("O 0.001000 {}\n", chunk.len()));
            if i % 100 == 0 {
                inp.extend_from_slice(b"ls\r");
                tm.push_str("I 0.200000 3\n");
            }
        }
        tm.push_str("H 0.000000 DURATION 12.0\nH 0.000000 EXIT_CODE 0\n");
        let footer = b"\nScript done on 2026-11-22 10:00:12+00:00 [COMMAND_EXIT_CODE=\"0\"]\n";
        ts.extend_from_slice(footer);
        inp.extend_from_slice(footer);
        std::fs::write(d.path().join("typescript"), &ts).unwrap();
        std::fs::write(d.path().join("input"), &inp).unwrap();
        std::fs::write(d.path().join("timing"), &tm).unwrap();
        let meta = Meta {
            id: "20261122T100000Z-a-000000000001".into(),
            input_recorded: true,
            timing_format: "advanced".into(),
            ..Meta::default()
        };
        let mut cfg = Config::default();
        cfg.mail.max_size = 1 << 20;
        let (atts, trunc) = attachments(&cfg, d.path(), &meta).unwrap();
        let trunc = trunc.expect("truncated");
        assert!(!trunc.dropped && trunc.omitted > 0 && trunc.kept_head > 0);
        let names: Vec<&str> = atts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["typescript.gz", "timing.gz", "input.gz"]);
        let total: u64 = atts.iter().map(|a| encoded(a.data.len() as u64)).sum();
        assert!(total + BODY_RESERVE <= cfg.mail.max_size, "{total}");
        let ex_ts = gunzip(&atts[0].data);
        let ex_tm = Timing::parse(&gunzip(&atts[1].data));
        let ex_in = gunzip(&atts[2].data);
        let body = |b: &[u8]| {
            let start = b.iter().position(|c| *c == b'\n').unwrap() + 1;
            (b.len() - start - footer.len()) as u64
        };
        assert_eq!(ex_tm.totals(), [body(&ex_ts), body(&ex_in)]);
        assert!(ex_ts.starts_with(hdr.as_bytes()) && ex_ts.ends_with(footer));
        let text = String::from_utf8_lossy(&ex_ts);
        assert!(
            text.contains("\n00000") && text.contains("03999"),
            "head and tail kept"
        );
        assert!(!text.contains("02000"), "the middle is left out");
        assert!(text.contains("bytes of this session are left out here"));
        let rendered = String::from_utf8(ex_tm.render()).unwrap();
        assert!(rendered.starts_with("H 0.000000 START_TIME"));
        assert!(rendered.ends_with("H 0.000000 DURATION 12.0\nH 0.000000 EXIT_CODE 0\n"));
    }

    #[test]
    fn fqdn_from_etc_hosts() {
        let hosts = "127.0.0.1 localhost\n127.0.1.1 web1.example.com web1 # comment\n";
        assert_eq!(
            fqdn_from_hosts("web1", hosts).as_deref(),
            Some("web1.example.com")
        );
        assert_eq!(fqdn_from_hosts("db", hosts), None);
        let mut cfg = Config::default();
        cfg.mail.from = None;
        let m = sender(&cfg).unwrap();
        assert!(m.email.to_string().starts_with("auditty@"), "{m}");
    }

    #[test]
    fn ids_and_domains_are_header_safe() {
        assert_eq!(domain_part("web1.example.com"), "web1.example.com");
        assert_eq!(domain_part("evil\r\nBcc: x@y"), "evilBccxy");
        assert_eq!(domain_part("\r\n"), "localhost");
        let m = Meta {
            id: "20261122T090000Z-alice-0123456789ab".into(),
            host: "web1\r\nX-Evil: 1".into(),
            ..Meta::default()
        };
        assert_eq!(
            message_id(&m),
            "<auditty.20261122T090000Z-alice-0123456789ab@web1X-Evil1>"
        );
    }

    struct Server(std::process::Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// msmtpd on a free loopback port, storing messages into `dir/inbox`.
    fn msmtpd(dir: &Path) -> (Server, u16) {
        let inbox = dir.join("inbox");
        std::fs::create_dir_all(&inbox).unwrap();
        let store = dir.join("store.sh");
        std::fs::write(
            &store,
            format!("#!/bin/sh\ncat > {}/msg.eml\n", inbox.display()),
        )
        .unwrap();
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
        loop {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut c = Command::new("msmtpd")
                .arg(format!("--port={port}"))
                .arg(format!("--command={} %F", store.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let end = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < end {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return (Server(c), port);
                }
                if c.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    #[test]
    fn probe_and_send_test_for_check_config() {
        let d = tempfile::tempdir().unwrap();
        let (server, port) = msmtpd(d.path());
        let mut cfg = Config::default();
        cfg.mail.transport = format!("smtp://127.0.0.1:{port}");
        cfg.mail.to = vec!["auditors@example.com".into()];
        cfg.mail.timeout = 5;
        probe_transport(&cfg).unwrap();
        send_test(&cfg).unwrap();
        let msg = std::fs::read_to_string(d.path().join("inbox/msg.eml")).unwrap();
        assert!(msg.contains("Subject: [auditty] test mail from "), "{msg}");
        assert!(msg.contains("X-Auditty-Recording: test"), "{msg}");
        drop(server);
        // (Refused, or reset by a connection child of the killed server that still held the socket.)
        let e = format!("{:#}", probe_transport(&cfg).unwrap_err());
        assert!(
            e.contains(&cfg.mail.transport) && e.contains("Connection re"),
            "{e}"
        );
        let e = format!("{:#}", send_test(&cfg).unwrap_err());
        assert!(
            e.contains(&cfg.mail.transport) && e.contains("Connection re"),
            "{e}"
        );

        cfg.mail.transport = "sendmail".into();
        let sm = d.path().join("sendmail");
        std::fs::write(&sm, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&sm, std::fs::Permissions::from_mode(0o644)).unwrap();
        cfg.mail.sendmail_path = sm.clone();
        let e = format!("{:#}", probe_transport(&cfg).unwrap_err());
        assert!(e.contains("is not an executable file"), "{e}");
        std::fs::set_permissions(&sm, std::fs::Permissions::from_mode(0o755)).unwrap();
        probe_transport(&cfg).unwrap();
        cfg.mail.sendmail_path = "/nonexistent/sendmail".into();
        assert!(
            format!("{:#}", probe_transport(&cfg).unwrap_err()).contains("/nonexistent/sendmail")
        );

        cfg.mail.transport = "none".into();
        probe_transport(&cfg).unwrap();
        assert!(format!("{:#}", send_test(&cfg).unwrap_err()).contains("nothing would be sent"));
    }

    #[test]
    fn sendmail_timeout_kills_and_reports() {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("slow-sendmail");
        std::fs::write(&script, "#!/bin/sh\necho stuck >&2\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t0 = std::time::Instant::now();
        let e = run_sendmail(
            &script,
            "a@b",
            &["c@d".into()],
            b"x",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(!e.permanent);
        assert!(e.transport_down, "a hung sendmail is the transport down");
        assert!(
            e.message
                .contains("did not finish within mail.timeout (1 s)"),
            "{e}"
        );
    }

    #[test]
    fn sendmail_exit_codes() {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("sm");
        let out = d.path().join("out");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > {0}.args\ncat > {0}\nenv > {0}.env\nexit ${{SM_EXIT:-0}}\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        run_sendmail(
            &script,
            "a@b.example",
            &["c@d.example".into()],
            b"hello",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"hello");
        assert_eq!(
            std::fs::read_to_string(d.path().join("out.args")).unwrap(),
            "-i\n-f\na@b.example\n--\nc@d.example\n"
        );
        let env = std::fs::read_to_string(d.path().join("out.env")).unwrap();
        assert!(env.contains("HOME=/\n") && !env.contains("CARGO"), "{env}");
        // Exit 0 without reading the message (a wrong program, or one that stops early): not sent, whether the
        // message fits in the pipe or not.
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        for len in [5usize, 4 << 20] {
            let e = run_sendmail(
                &script,
                "a@b",
                &["c@d".into()],
                &vec![b'x'; len],
                Duration::from_secs(5),
            )
            .unwrap_err();
            assert!(!e.permanent, "{}", e.message);
            assert!(
                e.message
                    .contains("exited with status 0 without reading the whole message")
                    && e.message.contains("not counted as sent"),
                "{len}: {}",
                e.message
            );
        }
        std::fs::write(
            &script,
            "#!/bin/sh\ncat >/dev/null\necho 'no such user' >&2\nexit 67\n",
        )
        .unwrap();
        let e = run_sendmail(
            &script,
            "a@b",
            &["c@d".into()],
            b"x",
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(e.permanent && !e.transport_down, "{e}");
        assert!(
            e.message.contains("status 67 (EX_NOUSER): no such user"),
            "{e}"
        );
        let e = run_sendmail(
            &d.path().join("no-such-sendmail"),
            "a@b",
            &["c@d".into()],
            b"x",
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(e.transport_down && !e.permanent, "{e}");
        assert!(
            e.message.contains("cannot run ") && e.message.contains("no-such-sendmail"),
            "{e}"
        );
        std::fs::write(&script, "#!/bin/sh\ncat >/dev/null\nexit 75\n").unwrap();
        let e = run_sendmail(
            &script,
            "a@b",
            &["c@d".into()],
            b"x",
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(!e.permanent && !e.transport_down, "{e}");
    }
}
