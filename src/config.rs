//! Configuration: TOML file + `-o section.key=value` overrides, validated, with errors naming the key and file/line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

pub const DEFAULT_PATH: &str = "/etc/auditty.conf";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub spool: Spool,
    pub record: Record,
    pub mail: Mail,
    pub syslog: Syslog,
    pub policy: Policy,
    pub hook: Hook,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spool {
    /// Private spool (root:auditty 0770): active/, queue/, sent/, failed/.
    pub dir: PathBuf,
    /// Registry of live recordings' PTYs (root:auditty 0770: only the group reaches it): the nesting guard.
    pub run_dir: PathBuf,
    /// Days a delivered recording is kept in sent/ (0 removes it at once).
    pub keep_days: u32,
    /// Upper bound of the whole spool in bytes (0 = unbounded); oldest sent/ recordings go first.
    #[serde(deserialize_with = "size")]
    pub max_size: u64,
}

impl Default for Spool {
    fn default() -> Self {
        Spool {
            dir: "/var/spool/auditty".into(),
            run_dir: "/run/auditty".into(),
            keep_days: 7,
            max_size: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimingFormat {
    Classic,
    Advanced,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Record {
    /// Record keystrokes too (never while the terminal's echo is off). Forces advanced timing.
    pub input: bool,
    pub timing: TimingFormat,
    /// Text shown on the user's terminal before the shell starts.
    pub banner: String,
    /// ForceCommand mode: record non-interactive commands through pipes.
    pub noninteractive: bool,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            input: false,
            timing: TimingFormat::Classic,
            banner: String::new(),
            noninteractive: false,
        }
    }
}

impl Record {
    /// The timing format actually written: advanced whenever input is recorded.
    pub fn effective_timing(&self) -> TimingFormat {
        if self.input {
            TimingFormat::Advanced
        } else {
            self.timing
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mail {
    /// none | sendmail | smtp://host[:port][?tls=required] | smtps://host[:port]
    pub transport: String,
    #[serde(deserialize_with = "string_or_list")]
    pub to: Vec<String>,
    pub from: Option<String>,
    pub subject: String,
    pub sendmail_path: PathBuf,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Seconds for connect and each SMTP command, and for sendmail to finish.
    pub timeout: u64,
    pub compress_level: u32,
    #[serde(deserialize_with = "size")]
    pub max_size: u64,
    /// Seconds before the first retry of a failed delivery; doubles with every attempt.
    pub retry_min: u64,
    /// Longest wait between two delivery attempts, in seconds.
    pub retry_max: u64,
    /// PEM bundle of CAs trusted for smtps:// and STARTTLS instead of the system store.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for Mail {
    fn default() -> Self {
        Mail {
            transport: "none".into(),
            to: Vec::new(),
            from: None,
            subject: "[auditty] {user}@{host} {tty} {start} ({duration}, {exit})".into(),
            sendmail_path: "/usr/sbin/sendmail".into(),
            user: None,
            password_file: None,
            timeout: 30,
            compress_level: 6,
            max_size: 10 << 20,
            retry_min: 60,
            retry_max: 3600,
            tls_ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Syslog {
    /// unix:/dev/log | unix:PATH | udp://host:port | tcp://host:port | none
    pub target: String,
    pub facility: String,
    pub tag: String,
}

impl Default for Syslog {
    fn default() -> Self {
        Syslog {
            target: "unix:/dev/log".into(),
            facility: "authpriv".into(),
            tag: "auditty".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    Open,
    Closed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub on_error: OnError,
    #[serde(deserialize_with = "string_or_list")]
    pub exempt_users: Vec<String>,
    #[serde(deserialize_with = "string_or_list")]
    pub exempt_groups: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            on_error: OnError::Open,
            exempt_users: Vec::new(),
            exempt_groups: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hook {
    /// Log each command through the shell hook.
    pub enabled: bool,
    /// Where the per-session directory holding the command FIFO is made (mode 0700, owned by the user).
    pub fifo_dir: PathBuf,
}

impl Default for Hook {
    fn default() -> Self {
        Hook {
            enabled: true,
            fifo_dir: "/tmp".into(),
        }
    }
}

/// A configuration error an administrator can act on: which key, which file and line, what is wrong.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Largest configuration file read: a real one is a few KiB; the bound keeps a path that leads to /dev/zero or a
/// huge file from growing every login's memory.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The text of the configuration file at `path`: a regular file (a FIFO would hold every login waiting for a writer,
/// a device may never end) of at most MAX_FILE_BYTES. Symlinks are followed (configuration management keeps them).
pub fn read_file(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, Read};
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let md = f.metadata()?;
    let t = md.file_type();
    if !t.is_file() {
        let what = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(Error::other(format!("it is {what}, not a regular file")));
    }
    let mut text = String::new();
    f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::other(format!(
            "it is larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// Where the configuration comes from.
pub struct Source<'a> {
    /// The file; `None` means the default path, where a missing file means built-in defaults.
    pub file: Option<&'a Path>,
    /// `-o section.key=value` overrides, in order.
    pub overrides: &'a [String],
}

impl Config {
    /// Load and validate. A missing default file gives the built-in defaults; an explicit missing file is an error.
    pub fn load(src: &Source<'_>) -> Result<Config, ConfigError> {
        let path = src.file.unwrap_or(Path::new(DEFAULT_PATH));
        let text = match read_file(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && src.file.is_none() => {
                String::new()
            }
            Err(e) => {
                return Err(ConfigError(format!(
                    "cannot read config {}: {e}",
                    path.display()
                )));
            }
        };
        Self::parse(&text, &path.display().to_string(), src.overrides)
    }

    /// Parse `text` (named `origin` in errors) and apply the overrides.
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Config, ConfigError> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError(describe_toml_error(origin, text, &e)))?;
        cfg.validate(origin)?;
        if overrides.is_empty() {
            return Ok(cfg);
        }
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        for ov in overrides {
            apply_override(&mut table, ov)?;
            let merged = toml::Value::Table(table.clone());
            let cfg: Config = merged
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError(format!("-o {ov}: {}", e.message())))?;
            cfg.validate(&format!("-o {ov}"))?;
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(e.message().to_string()))?;
        Ok(cfg)
    }

    /// Checks serde cannot express; errors name the key.
    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, msg: String| Err(ConfigError(format!("{origin}: {key}: {msg}")));
        if !self.spool.dir.is_absolute() {
            return bad(
                "spool.dir",
                format!("must be an absolute path, got {:?}", self.spool.dir),
            );
        }
        if !self.spool.run_dir.is_absolute() {
            return bad(
                "spool.run_dir",
                format!("must be an absolute path, got {:?}", self.spool.run_dir),
            );
        }
        if !self.hook.fifo_dir.is_absolute() {
            return bad(
                "hook.fifo_dir",
                format!("must be an absolute path, got {:?}", self.hook.fifo_dir),
            );
        }
        if !self.mail.sendmail_path.is_absolute() {
            return bad(
                "mail.sendmail_path",
                format!(
                    "must be an absolute path (no PATH lookup), got {:?}",
                    self.mail.sendmail_path
                ),
            );
        }
        if let Err(e) = crate::deliver::mail::TransportSpec::parse(&self.mail.transport) {
            return bad("mail.transport", e);
        }
        if self.mail.user.is_some() != self.mail.password_file.is_some() {
            return bad(
                "mail.user",
                "mail.user and mail.password_file must be set together".into(),
            );
        }
        for (key, p) in [
            ("mail.password_file", &self.mail.password_file),
            ("mail.tls_ca_file", &self.mail.tls_ca_file),
        ] {
            if let Some(p) = p
                && !p.is_absolute()
            {
                return bad(key, format!("must be an absolute path, got {p:?}"));
            }
        }
        if let Some(from) = &self.mail.from
            && from.parse::<lettre::message::Mailbox>().is_err()
        {
            return bad("mail.from", format!("not an email address: {from:?}"));
        }
        if self.mail.retry_max < self.mail.retry_min {
            return bad(
                "mail.retry_max",
                format!(
                    "must be at least mail.retry_min ({}), got {}",
                    self.mail.retry_min, self.mail.retry_max
                ),
            );
        }
        if self.mail.compress_level > 9 {
            return bad(
                "mail.compress_level",
                format!("must be 0..9, got {}", self.mail.compress_level),
            );
        }
        if self.mail.timeout == 0 {
            return bad("mail.timeout", "must be at least 1 second".into());
        }
        for addr in &self.mail.to {
            // As the mailer will read it (one address per list entry: "a@b, c@d" is two entries).
            if !addr.contains('@')
                || addr.chars().any(|c| c.is_control() || c.is_whitespace())
                || addr.parse::<lettre::message::Mailbox>().is_err()
            {
                return bad("mail.to", format!("not an email address: {addr:?}"));
            }
        }
        let tg = self.syslog.target.as_str();
        let has_rest = |prefix: &str| tg.strip_prefix(prefix).is_some_and(|r| !r.is_empty());
        if !(tg == "none"
            || tg.strip_prefix("unix:").is_some_and(|p| p.starts_with('/'))
            || has_rest("udp://")
            || has_rest("tcp://"))
        {
            return bad(
                "syslog.target",
                format!(
                    "expected unix:/ABSOLUTE/PATH, udp://host:port, tcp://host:port or none, got {tg:?}"
                ),
            );
        }
        if facility_code(&self.syslog.facility).is_none() {
            return bad(
                "syslog.facility",
                format!(
                    "unknown facility {:?} (e.g. authpriv, auth, user, local0..local7)",
                    self.syslog.facility
                ),
            );
        }
        if self.syslog.tag.is_empty()
            || self.syslog.tag.len() > 32
            || !self
                .syslog
                .tag
                .chars()
                .all(|c| c.is_ascii_graphic() && c != ':' && c != '[')
        {
            return bad(
                "syslog.tag",
                format!(
                    "must be 1-32 printable ASCII characters without ':' or '[', got {:?}",
                    self.syslog.tag
                ),
            );
        }
        Ok(())
    }
}

/// Syslog facility names (RFC 3164 numbers).
pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

fn describe_toml_error(origin: &str, text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return format!("{origin}: {}", e.message());
    };
    let start = span.start.min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    // The message alone often does not say which key ("duplicate key", "invalid type: string, expected u64"):
    // name the key of that line (with its table), or else what the parser points at when that is short.
    let line_text = text.lines().nth(line - 1).unwrap_or("");
    let key = line_text
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        });
    if let Some(key) = key {
        let table = text
            .lines()
            .take(line - 1)
            .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']'))
            .last();
        let name = table.map_or(key.to_string(), |t| format!("{}.{key}", t.trim()));
        return format!("{origin}:{line}: {name}: {}", e.message());
    }
    let at = text
        .get(start..span.end.min(text.len()))
        .unwrap_or("")
        .trim();
    if !at.is_empty() && at.len() <= 60 && !at.contains('\n') && !e.message().contains(at) {
        format!("{origin}:{line}: {} (at `{at}`)", e.message())
    } else {
        format!("{origin}:{line}: {}", e.message())
    }
}

/// Apply `section.key=value`: the value is a TOML value where it parses as one, a plain string otherwise.
fn apply_override(table: &mut toml::Table, ov: &str) -> Result<(), ConfigError> {
    let (key, raw) = ov
        .split_once('=')
        .ok_or_else(|| ConfigError(format!("-o {ov}: expected section.key=value")))?;
    let (section, name) = key
        .trim()
        .split_once('.')
        .ok_or_else(|| ConfigError(format!("-o {ov}: key must be section.key (e.g. mail.to)")))?;
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match entry {
        toml::Value::Table(t) => {
            t.insert(name.to_string(), value);
            Ok(())
        }
        _ => Err(ConfigError(format!("-o {ov}: {section} is not a section"))),
    }
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(
        match OneOrMany::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a string or a list of strings"))?
        {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        },
    )
}

/// A size in bytes: an integer, or a string with a K/M/G suffix (powers of 1024).
fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a size such as 10485760 or \"10M\""))?
    {
        Size::Bytes(n) => Ok(n),
        Size::Text(s) => parse_size(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid size {s:?} (use e.g. 512K, 10M, 2G)"))
        }),
    }
}

pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()?.to_ascii_uppercase() {
        'K' => (&s[..s.len() - 1], 1u64 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// The effective configuration as `section.key = value` lines (for `check-config`).
pub fn describe(cfg: &Config) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    m.insert("spool.dir", cfg.spool.dir.display().to_string());
    m.insert("spool.run_dir", cfg.spool.run_dir.display().to_string());
    m.insert("spool.keep_days", cfg.spool.keep_days.to_string());
    m.insert("spool.max_size", cfg.spool.max_size.to_string());
    m.insert("record.input", cfg.record.input.to_string());
    m.insert(
        "record.timing",
        format!("{:?}", cfg.record.timing).to_lowercase(),
    );
    m.insert("record.banner", format!("{:?}", cfg.record.banner));
    m.insert(
        "record.noninteractive",
        cfg.record.noninteractive.to_string(),
    );
    m.insert("mail.transport", cfg.mail.transport.clone());
    m.insert("mail.to", format!("{:?}", cfg.mail.to));
    m.insert(
        "mail.from",
        cfg.mail
            .from
            .clone()
            .unwrap_or_else(|| "(auditty@<fqdn>)".into()),
    );
    m.insert("mail.subject", format!("{:?}", cfg.mail.subject));
    m.insert(
        "mail.sendmail_path",
        cfg.mail.sendmail_path.display().to_string(),
    );
    m.insert(
        "mail.user",
        cfg.mail.user.clone().unwrap_or_else(|| "(none)".into()),
    );
    m.insert(
        "mail.password_file",
        cfg.mail
            .password_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(none)".into()),
    );
    m.insert("mail.timeout", cfg.mail.timeout.to_string());
    m.insert("mail.compress_level", cfg.mail.compress_level.to_string());
    m.insert("mail.max_size", cfg.mail.max_size.to_string());
    m.insert("mail.retry_min", cfg.mail.retry_min.to_string());
    m.insert("mail.retry_max", cfg.mail.retry_max.to_string());
    m.insert(
        "mail.tls_ca_file",
        cfg.mail
            .tls_ca_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(system store)".into()),
    );
    m.insert("syslog.target", cfg.syslog.target.clone());
    m.insert("syslog.facility", cfg.syslog.facility.clone());
    m.insert(
        "policy.on_error",
        format!("{:?}", cfg.policy.on_error).to_lowercase(),
    );
    m.insert(
        "policy.exempt_users",
        format!("{:?}", cfg.policy.exempt_users),
    );
    m.insert(
        "policy.exempt_groups",
        format!("{:?}", cfg.policy.exempt_groups),
    );
    m.insert("syslog.tag", cfg.syslog.tag.clone());
    m.insert("hook.enabled", cfg.hook.enabled.to_string());
    m.insert("hook.fifo_dir", cfg.hook.fifo_dir.display().to_string());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO, a device, a directory or a huge file at the path is an error naming it, at once: never a login
    /// waiting for a FIFO's writer or reading /dev/zero until memory runs out.
    #[test]
    fn only_a_regular_file_of_bounded_size_is_read() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo.conf");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let zero = d.path().join("zero.conf");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let big = d.path().join("big.conf");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let ok = d.path().join("ok.conf");
        std::fs::write(&ok, "[record]\ninput = true\n").unwrap();
        for (p, says) in [
            (&fifo, "it is a FIFO, not a regular file"),
            (&zero, "it is a device, not a regular file"),
            (
                &d.path().to_path_buf(),
                "it is a directory, not a regular file",
            ),
            (&big, "it is larger than 1048576 bytes"),
        ] {
            let e = Config::load(&Source {
                file: Some(p),
                overrides: &[],
            })
            .unwrap_err();
            assert_eq!(e.0, format!("cannot read config {}: {says}", p.display()));
        }
        let cfg = Config::load(&Source {
            file: Some(&ok),
            overrides: &[],
        })
        .unwrap();
        assert!(cfg.record.input);
    }

    #[test]
    fn defaults_when_empty() {
        let c = Config::parse("", "x", &[]).unwrap();
        assert_eq!(c.spool.dir, PathBuf::from("/var/spool/auditty"));
        assert_eq!(c.record.effective_timing(), TimingFormat::Classic);
        assert_eq!(c.mail.transport, "none");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = Config::parse(
            "[record]\ninput = true\nbogus = 1\n",
            "/etc/auditty.conf",
            &[],
        )
        .unwrap_err()
        .0;
        assert!(e.contains("/etc/auditty.conf:3"), "{e}");
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn bad_value_names_line() {
        let e = Config::parse("[record]\n\ntiming = \"fancy\"\n", "f.conf", &[])
            .unwrap_err()
            .0;
        assert!(e.contains("f.conf:3"), "{e}");
        assert!(e.contains("fancy"), "{e}");
    }

    #[test]
    fn errors_name_the_key_with_its_table() {
        let err = |text: &str| Config::parse(text, "f.conf", &[]).unwrap_err().0;
        let e = err("[mail]\nto = \"a@b.c\"\nto = \"d@e.f\"\n");
        assert_eq!(e, "f.conf:3: mail.to: duplicate key", "{e}");
        let e = err("[mail]\ntimeout = \"x\"\n");
        assert!(e.starts_with("f.conf:2: mail.timeout: invalid type"), "{e}");
        let e = err("[mail]\nto = \"a@b.c\"\n[mail]\n");
        assert!(e.contains("f.conf:3:") && e.contains("`mail`"), "{e}");
    }

    /// The example file lists every key (commented out); uncommented it is a valid configuration, and the
    /// effective configuration check-config prints shows each of its keys.
    #[test]
    fn the_example_file_has_every_key_and_check_config_shows_them_all() {
        let example = include_str!("../etc/auditty.conf");
        let mut table = "";
        let mut keys = Vec::new();
        let mut uncommented = String::new();
        for line in example.lines() {
            if let Some(t) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                table = t;
                uncommented += line;
            } else if let Some((k, _)) = line
                .strip_prefix('#')
                .and_then(|l| l.split_once(" = "))
                .filter(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            {
                keys.push(format!("{table}.{k}"));
                uncommented += &line[1..];
            }
            uncommented += "\n";
        }
        // The one placeholder in it stands for a host name.
        let uncommented = uncommented.replace("<this host's name>", "host.example");
        let cfg = Config::parse(&uncommented, "etc/auditty.conf", &[]).unwrap();
        let shown = describe(&cfg);
        let mut listed: Vec<&str> = keys.iter().map(String::as_str).collect();
        listed.sort();
        let mut shown_keys: Vec<&str> = shown.keys().copied().collect();
        shown_keys.sort();
        assert_eq!(listed, shown_keys);
    }

    #[test]
    fn overrides_parse_toml_or_string() {
        let ov = vec![
            "record.input=true".to_string(),
            "mail.to=a@example.com".to_string(),
            "mail.timeout=5".to_string(),
        ];
        let c = Config::parse("", "x", &ov).unwrap();
        assert!(c.record.input);
        assert_eq!(c.record.effective_timing(), TimingFormat::Advanced);
        assert_eq!(c.mail.to, vec!["a@example.com".to_string()]);
        assert_eq!(c.mail.timeout, 5);
        let c = Config::parse("", "x", &["mail.to=[\"a@x.org\",\"b@y.org\"]".to_string()]).unwrap();
        assert_eq!(c.mail.to.len(), 2);
        let c = Config::parse("", "x", &["record.banner=Recorded session".to_string()]).unwrap();
        assert_eq!(c.record.banner, "Recorded session");
        // Two addresses in one entry: refused here, as the mailer would refuse it at every delivery.
        let e =
            Config::parse("", "x", &["mail.to=a@b.example,c@d.example".to_string()]).unwrap_err();
        assert!(e.to_string().contains("mail.to"), "{e}");
    }

    #[test]
    fn bad_override_names_it() {
        let e = Config::parse("", "x", &["record.nope=1".to_string()])
            .unwrap_err()
            .0;
        assert!(e.contains("-o record.nope=1") && e.contains("nope"), "{e}");
        let e = Config::parse("", "x", &["record.input=maybe".to_string()])
            .unwrap_err()
            .0;
        assert!(e.contains("-o record.input=maybe"), "{e}");
        let e = Config::parse("", "x", &["mail.transport=pigeon".to_string()])
            .unwrap_err()
            .0;
        assert!(e.contains("mail.transport"), "{e}");
    }

    /// A syslog target must name where: an absolute socket path or a host.
    #[test]
    fn a_syslog_target_without_a_place_is_an_error() {
        for bad in ["unix:", "unix:dev/log", "udp://", "tcp://", "syslog"] {
            let e = Config::parse(&format!("[syslog]\ntarget = {bad:?}\n"), "x", &[])
                .unwrap_err()
                .0;
            assert!(
                e.contains("syslog.target") && e.contains("unix:/ABSOLUTE/PATH"),
                "{bad}: {e}"
            );
        }
        for good in [
            "unix:/dev/log",
            "udp://127.0.0.1:514",
            "tcp://loghost:601",
            "none",
        ] {
            assert!(
                Config::parse(&format!("[syslog]\ntarget = {good:?}\n"), "x", &[]).is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
        let c = Config::parse("[mail]\nmax_size = \"2M\"\n", "x", &[]).unwrap();
        assert_eq!(c.mail.max_size, 2 << 20);
    }
}
