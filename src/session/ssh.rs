//! Hardened mode: `auditty session` as sshd's `ForceCommand`.
//!
//! sshd then runs `$SHELL -c '/usr/bin/auditty session'` for every session and puts what the client asked for in
//! `SSH_ORIGINAL_COMMAND`. [`preflight`] runs first in `cmd::session::run` and decides:
//! * a terminal (`ssh host`, `ssh -t host cmd`): recorded as usual; the client's command, if any, runs recorded
//!   through the user's shell (`-c`);
//! * no terminal, a file transfer (`scp -t/-f`, `sftp-server` or `internal-sftp` subsystem, `rsync --server`):
//!   exec'd untouched so the byte stream is exact; the command line goes to syslog only;
//! * no terminal, anything else (`ssh host cmd`, `ssh -T host`): run through the user's shell and logged to syslog;
//!   with `record.noninteractive = true` its output is recorded through pipes ([`super::pipes`]).
//!
//! A transfer is recognised only when the command line is one plain command (no `;`, `|`, `$`, backquotes,
//! redirections or backslashes) naming the real tool: a bare name, or an absolute path that root owns. It then runs
//! through `/bin/sh -c` with a fixed `PATH`, so nothing in the user's startup files or environment can swap the tool
//! for something that would escape recording. Users whose login shell is not a general-purpose shell (git-shell,
//! rssh, scponly) keep getting everything through that shell, as sshd would do.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::cli::{self, Cli};
use crate::cmd::Exit;
use crate::config::{Config, OnError};
use crate::privilege::Privilege;
use crate::session::gate::{self, Who};
use crate::syslog::Logger;

/// What `cmd::session::run` does after [`preflight`].
pub enum Next {
    /// Go on recording on a PTY (or run as-is without a terminal), with this `-c` command.
    Continue(Option<String>),
    /// Everything is done (a check answered, a refusal); exit with this code.
    Done(Exit),
}

/// The PATH transfers run with: root-owned directories only.
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where distributions put sftp-server (used for `internal-sftp`, which only exists inside sshd).
const SFTP_SERVERS: &[&str] = &[
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/lib/sftp-server",
];

/// Login shells that run arbitrary commands anyway (for others, e.g. git-shell, everything goes through them).
const GENERAL_SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "yash", "fish", "csh", "tcsh",
    "busybox",
];

/// A command line as sshd passed it in `SSH_ORIGINAL_COMMAND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `scp -t`/`scp -f` (legacy scp protocol).
    Scp,
    /// `sftp-server` (the sftp subsystem, also used by scp in OpenSSH ≥ 9).
    Sftp,
    /// `internal-sftp [args]`: sshd's built-in server, replaced by the sftp-server binary.
    InternalSftp(Vec<String>),
    /// `rsync --server …`
    Rsync,
    /// Anything else.
    Other,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Scp => "scp",
            Kind::Sftp | Kind::InternalSftp(_) => "sftp",
            Kind::Rsync => "rsync",
            Kind::Other => "command",
        }
    }

    pub fn is_transfer(&self) -> bool {
        !matches!(self, Kind::Other)
    }
}

/// Runs first in `cmd::session::run`: answers `--check`, and handles sshd's ForceCommand sessions.
pub fn preflight(cli: &Cli, privilege: &mut Privilege, command: Option<String>) -> Result<Next> {
    if matches!(&cli.command, cli::Command::Session(a) if a.check) {
        return Ok(Next::Done(gate::check(cli, privilege)));
    }
    if command.is_some() {
        return Ok(Next::Continue(command));
    }
    let original = std::env::var_os("SSH_ORIGINAL_COMMAND");
    if crate::sys::is_tty(0) {
        let Some(orig) = original else {
            return Ok(Next::Continue(None));
        };
        let orig = orig.to_string_lossy().into_owned();
        if let Ok(cfg) = privilege.load_config(cli) {
            if gate::inside_recording(&cfg).is_some() {
                // Inherited from an outer ForceCommand session, not asked for now: the guard runs the shell.
                return Ok(Next::Continue(None));
            }
            let mut log = Logger::new(&cfg.syslog);
            event(
                &mut log,
                &Who::current(),
                &Kind::Other,
                "record-pty",
                None,
                &orig,
            );
        }
        return Ok(Next::Continue(Some(orig)));
    }
    if original.is_none() && std::env::var_os("SSH_CONNECTION").is_none() {
        // Not an sshd session: the usual no-terminal path (the command runs as it is).
        return Ok(Next::Continue(None));
    }
    noninteractive(cli, privilege, original)
}

/// No terminal under sshd: a transfer, a remote command, or `ssh -T host` (a shell reading stdin).
fn noninteractive(
    cli: &Cli,
    privilege: &mut Privilege,
    original: Option<OsString>,
) -> Result<Next> {
    let who = Who::current();
    let text = original.as_ref().map(|o| o.to_string_lossy().into_owned());
    let kind = original
        .as_ref()
        .map(|o| match o.to_str() {
            Some(s) => classify(s),
            None => Kind::Other,
        })
        .unwrap_or(Kind::Other);
    let cfg = match privilege.load_config(cli) {
        Ok(c) => c,
        Err(e) => {
            let policy = gate::lenient_on_error(cli, privilege);
            let mut log = Logger::new(&Config::default().syslog);
            crate::syslog::error(
                &mut log,
                "-",
                &format!(
                    "cannot check the ssh command of {} ({}): {e:#}",
                    who.user,
                    policy_text(policy)
                ),
            );
            if policy == OnError::Closed {
                eprintln!(
                    "auditty: this session must be audited, but auditty is misconfigured: {e:#}"
                );
                eprintln!(
                    "auditty: refused (policy.on_error = closed); contact your administrator"
                );
                return Ok(Next::Done(Exit::from(1)));
            }
            privilege.drop_group()?;
            return Err(untouched(&who, &kind, original.as_ref()).into());
        }
    };
    if gate::exempt(&cfg).is_some() {
        privilege.drop_group()?;
        return Err(untouched(&who, &kind, original.as_ref()).into());
    }
    let mut log = Logger::new(&cfg.syslog);
    let shown = text.as_deref().unwrap_or("");
    if kind.is_transfer() || !cfg.record.noninteractive {
        event(&mut log, &who, &kind, "exec", None, shown);
        privilege.drop_group()?;
        return Err(untouched(&who, &kind, original.as_ref()).into());
    }
    let argv = shell_argv(&who, original.as_ref());
    match super::pipes::record(&cfg, privilege, &who, argv, text.clone(), &mut log) {
        Ok(code) => Ok(Next::Done(code)),
        Err(e) => {
            let why = format!("{e:#}");
            crate::syslog::error(
                &mut log,
                "-",
                &format!(
                    "cannot record the ssh command of {} ({}): {why}",
                    who.user,
                    policy_text(cfg.policy.on_error)
                ),
            );
            if cfg.policy.on_error == OnError::Closed {
                eprintln!(
                    "auditty: this command must be recorded, but recording is not possible: {why}"
                );
                eprintln!(
                    "auditty: refused (policy.on_error = closed); contact your administrator"
                );
                return Ok(Next::Done(Exit::from(1)));
            }
            event(&mut log, &who, &kind, "exec-unrecorded", None, shown);
            privilege.drop_group()?;
            Err(untouched(&who, &kind, original.as_ref()).into())
        }
    }
}

fn policy_text(p: OnError) -> &'static str {
    match p {
        OnError::Open => "policy.on_error=open: running unrecorded",
        OnError::Closed => "policy.on_error=closed: refused",
    }
}

/// `event=ssh-command rec=… user=… uid=… from=… kind=scp|sftp|rsync|command action=… cmd="…"`
pub fn event(log: &mut Logger, who: &Who, kind: &Kind, action: &str, rec: Option<&str>, cmd: &str) {
    let from = ssh_client().unwrap_or_else(|| "-".into());
    let mut ev = crate::syslog::Event::new();
    ev.text("event", "ssh-command")
        .text("rec", rec.unwrap_or("-"))
        .text("user", &who.user)
        .num("uid", who.uid as u64)
        .text("from", &from)
        .text("kind", kind.name())
        .text("action", action)
        .quoted("cmd", cmd.as_bytes());
    log.send(
        crate::syslog::SEV_INFO,
        "ssh-command",
        &ev.render(crate::syslog::SYSLOG_MSG_MAX),
    );
}

/// "address:port" of the SSH client, from SSH_CONNECTION (validated: it is only an environment variable).
pub fn ssh_client() -> Option<String> {
    let v = std::env::var("SSH_CONNECTION").ok()?;
    let mut it = v.split_whitespace();
    let (ip, port) = (it.next()?, it.next()?);
    if ip.len() > 64
        || !ip
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
        || port.parse::<u16>().is_err()
    {
        return None;
    }
    Some(if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    })
}

/// argv of the user's shell for a command (`bash -c CMD`), or a login shell reading stdin (`-bash`).
pub fn shell_argv(who: &Who, original: Option<&OsString>) -> (PathBuf, Vec<OsString>) {
    let base = who
        .shell
        .file_name()
        .map(|b| b.to_os_string())
        .unwrap_or_else(|| "sh".into());
    let argv = match original {
        Some(c) => vec![base, "-c".into(), c.clone()],
        None => {
            let mut a = OsString::from("-");
            a.push(base);
            vec![a]
        }
    };
    (who.shell.clone(), argv)
}

/// Replace this process with the command as sshd would have run it (transfers: see the module comment).
/// Returns only on failure.
fn untouched(who: &Who, kind: &Kind, original: Option<&OsString>) -> std::io::Error {
    let general = who
        .shell
        .file_name()
        .and_then(|b| b.to_str())
        .is_some_and(|b| GENERAL_SHELLS.contains(&b));
    let mut cmd = match (kind, original) {
        (Kind::InternalSftp(args), _) => {
            let Some(server) = SFTP_SERVERS.iter().map(Path::new).find(|p| p.is_file()) else {
                return std::io::Error::other("internal-sftp: no sftp-server binary found");
            };
            let mut c = Command::new(server);
            c.arg0("sftp-server").args(args);
            c
        }
        (k, Some(orig)) if k.is_transfer() && general => {
            let mut c = Command::new("/bin/sh");
            c.arg0("sh").arg("-c").arg(orig).env("PATH", SAFE_PATH);
            c
        }
        _ => {
            let (path, argv) = shell_argv(who, original);
            let mut c = Command::new(path);
            c.arg0(&argv[0]).args(&argv[1..]);
            c
        }
    };
    cmd.exec()
}

/// Classify `SSH_ORIGINAL_COMMAND`. Only one plain command naming the real tool counts as a transfer.
pub fn classify(cmd: &str) -> Kind {
    let Some(words) = plain_words(cmd) else {
        return Kind::Other;
    };
    let Some((prog, args)) = words.split_first() else {
        return Kind::Other;
    };
    if prog == "internal-sftp" {
        return Kind::InternalSftp(args.to_vec());
    }
    if !trusted_program(prog) {
        return Kind::Other;
    }
    let base = prog.rsplit('/').next().unwrap_or(prog);
    let options = args.iter().take_while(|a| *a != "--");
    match base {
        "scp" => {
            let remote = options.clone().any(|a| {
                a.len() > 1
                    && a.starts_with('-')
                    && a[1..].chars().all(|c| "dfprtv".contains(c))
                    && (a.contains('t') || a.contains('f'))
            });
            if remote { Kind::Scp } else { Kind::Other }
        }
        "sftp-server" => Kind::Sftp,
        "rsync"
            if options.clone().any(|a| a == "--server")
                && !options.clone().any(|a| rsync_daemon_option(a)) =>
        {
            Kind::Rsync
        }
        _ => Kind::Other,
    }
}

/// An rsync option that makes `rsync --server` a daemon over the remote shell (`--daemon`, which reads the user's
/// own rsyncd.conf: its `early exec`/`pre-xfer exec` run any program), or only means something to one: `--config`,
/// `--dparam`/`-M`. Abbreviations of the long names count too.
fn rsync_daemon_option(a: &str) -> bool {
    let name = a.split('=').next().unwrap_or(a);
    (name.len() >= 4
        && ["--daemon", "--config", "--dparam"]
            .iter()
            .any(|o| o.starts_with(name)))
        || (a.starts_with("-M") && !a.starts_with("--"))
}

/// A bare command name (found through [`SAFE_PATH`]), or an absolute path to a root-owned file in a directory only
/// root can write.
fn trusted_program(prog: &str) -> bool {
    if !prog.contains('/') {
        return !prog.is_empty() && !prog.contains('=');
    }
    let p = Path::new(prog);
    if !p.is_absolute() || prog.contains("/../") || prog.contains("/./") {
        return false;
    }
    let root_only = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.uid() == 0 && m.mode() & 0o022 == 0)
            .unwrap_or(false)
    };
    root_only(p) && p.parent().is_some_and(root_only)
}

/// Split a command line into words when it is one plain command: quotes are allowed ('…' anything, "…" without
/// `$`, backquote or backslash), but no character that would make a shell run anything else.
fn plain_words(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        ch => cur.push(ch),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '$' | '`' | '\\' => return None,
                        ch => cur.push(ch),
                    }
                }
            }
            ';' | '&' | '|' | '<' | '>' | '`' | '$' | '(' | ')' | '\\' | '\n' | '\r' | '{'
            | '}' => {
                return None;
            }
            c if c.is_control() => return None,
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_recognised() {
        assert_eq!(classify("scp -t /tmp/x"), Kind::Scp);
        assert_eq!(classify("scp -v -d -t -- /tmp/x"), Kind::Scp);
        assert_eq!(classify("scp -r -f 'dir with space'"), Kind::Scp);
        assert_eq!(classify("scp -prt ."), Kind::Scp);
        assert_eq!(classify("/usr/bin/scp -f /etc/hostname"), Kind::Scp);
        assert_eq!(classify("/usr/lib/openssh/sftp-server"), Kind::Sftp);
        assert_eq!(classify("sftp-server -l INFO"), Kind::Sftp);
        assert_eq!(
            classify("internal-sftp -l INFO"),
            Kind::InternalSftp(vec!["-l".into(), "INFO".into()])
        );
        assert_eq!(
            classify("rsync --server -vlogDtpre.iLsfxCIvu . /tmp/dest"),
            Kind::Rsync
        );
        assert_eq!(
            classify("rsync --server --sender -vlogDtpre.iLsfxCIvu . /tmp/src"),
            Kind::Rsync
        );
    }

    #[test]
    fn anything_that_could_run_more_is_other() {
        for c in [
            "scp -t /tmp; bash -i",
            "scp -t /tmp && id",
            "scp -t $(id)",
            "scp -t `id`",
            "scp -t /tmp | tee x",
            "scp -t /tmp > /tmp/y",
            "scp -t \"$HOME\"",
            "scp -t /tmp\nid",
            "scp -t a\\ b",
            "rsync --version",
            // A daemon over the remote shell runs what the user's rsyncd.conf says (early exec).
            "rsync --server --daemon .",
            "rsync --server --daemon --config=/home/u/rsyncd.conf .",
            "rsync --server --daem .",
            "rsync --server --config=x --sender -vlogDtpre.iLsfxCIvu . /tmp/src",
            "rsync --server --dparam=pidfile=/tmp/p .",
            "rsync --server -M pidfile=/tmp/p .",
            "scp /a /b",
            "bin/scp -t /tmp",
            "./scp -t /tmp",
            "/tmp/scp -t /tmp",
            "/usr/bin/../../tmp/scp -t x",
            "PATH=/tmp scp -t x",
            "bash -c 'scp -t x'",
            "ls -l",
            "",
            "scp -t 'unterminated",
        ] {
            assert_eq!(classify(c), Kind::Other, "{c:?}");
        }
    }

    #[test]
    fn plain_words_unquotes() {
        assert_eq!(
            plain_words("a 'b c' \"d e\"  f").unwrap(),
            vec!["a", "b c", "d e", "f"]
        );
        assert_eq!(plain_words("''").unwrap(), vec![""]);
        assert!(plain_words("a \"b$c\"").is_none());
    }
}
