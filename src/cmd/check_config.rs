//! `auditty check-config [--send-test]`: parse and validate every key, check the spool, the guard registry, the
//! binary's privilege and the mail transport, and say what is wrong naming the key. Exit 0 when nothing is an error
//! (warnings allowed), 1 otherwise. install.sh runs it before it enables the profile.d script.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::cli::Cli;
use crate::cmd::Exit;
use crate::config::{self, Config};
use crate::privilege::Privilege;

/// Print a line; a closed stdout (`check-config | head`) is not an error worth a panic.
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// The group install.sh creates and the binary is setgid to.
pub const GROUP: &str = "auditty";

#[derive(Default)]
struct Report {
    errors: usize,
    warnings: usize,
}

impl Report {
    fn ok(&mut self, msg: impl AsRef<str>) {
        say!("  ok       {}", msg.as_ref());
    }
    fn warn(&mut self, msg: impl AsRef<str>) {
        self.warnings += 1;
        say!("  warning  {}", msg.as_ref());
    }
    fn error(&mut self, msg: impl AsRef<str>) {
        self.errors += 1;
        say!("  error    {}", msg.as_ref());
    }
}

pub fn run(cli: &Cli, mut privilege: Privilege, send_test: bool) -> Result<Exit> {
    privilege.drop_unless_trusted()?;
    let path = cli
        .global
        .config
        .clone()
        .unwrap_or_else(|| config::DEFAULT_PATH.into());
    say!("auditty check-config: {}", path.display());
    let mut r = Report::default();
    let cfg = match privilege.load_config(cli) {
        Ok(c) => {
            if path.exists() {
                r.ok("configuration parses; every key has a valid type and value");
            } else {
                r.warn(format!(
                    "{} does not exist: built-in defaults are used",
                    path.display()
                ));
            }
            c
        }
        Err(e) => {
            r.error(format!("{e:#}"));
            say!(
                "1 error: the configuration does not load; fix what is named above (see auditty.conf(5))"
            );
            return Ok(Exit::from(1));
        }
    };
    let auditty_gid = nix::unistd::Group::from_name(GROUP)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw());
    if auditty_gid.is_none() {
        r.warn(format!(
            "group {GROUP} does not exist: run install.sh (recordings are not protected from their users)"
        ));
    }
    config_file(&mut r, &path, auditty_gid);
    binary(&mut r, auditty_gid);
    keys(&mut r, &cfg);
    spool(&mut r, &cfg.spool.dir, auditty_gid);
    run_dir(&mut r, &cfg.spool.run_dir, auditty_gid);
    fifo_dir(&mut r, &cfg);
    syslog_target(&mut r, &cfg);
    sshd_mode(&mut r);
    transport(&mut r, &cfg);
    if send_test {
        match crate::deliver::mail::send_test(&cfg) {
            Ok(()) => r.ok(format!(
                "--send-test: the transport accepted a test mail to {}",
                cfg.mail.to.join(", ")
            )),
            Err(e) => r.error(format!("--send-test: mail.transport: {e:#}")),
        }
    }
    say!("effective configuration:");
    for (k, v) in config::describe(&cfg) {
        say!("  {k} = {v}");
    }
    say!(
        "{} error{}, {} warning{}",
        r.errors,
        if r.errors == 1 { "" } else { "s" },
        r.warnings,
        if r.warnings == 1 { "" } else { "s" }
    );
    Ok(if r.errors == 0 {
        Exit::SUCCESS
    } else {
        Exit::from(1)
    })
}

fn owner_mode(md: &std::fs::Metadata) -> String {
    let name = |uid: u32| {
        nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string())
    };
    let group = |gid: u32| {
        nix::unistd::Group::from_gid(gid.into())
            .ok()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_else(|| gid.to_string())
    };
    format!(
        "{}:{} {:04o}",
        name(md.uid()),
        group(md.gid()),
        md.mode() & 0o7777
    )
}

fn config_file(r: &mut Report, path: &Path, gid: Option<u32>) {
    let Ok(md) = std::fs::metadata(path) else {
        return;
    };
    let om = owner_mode(&md);
    let readable_by_sessions =
        md.mode() & 0o004 != 0 || gid.is_some_and(|g| g == md.gid() && md.mode() & 0o040 != 0);
    if md.uid() != 0 || md.mode() & 0o022 != 0 {
        r.error(format!(
            "{}: {om}: must be owned by root and not writable by group or others (auditty refuses it when setgid)",
            path.display()
        ));
    } else if !md.is_file() {
        r.error(format!("{}: not a regular file", path.display()));
    } else if !readable_by_sessions {
        r.error(format!(
            "{}: {om}: sessions (the user's uid with group {GROUP}) cannot read it, so no login can be recorded \
             and each one gets the policy profile.d was installed with; make it root:{GROUP} 0640",
            path.display()
        ));
    } else if md.mode() & 0o004 != 0 {
        r.warn(format!(
            "{}: {om}: readable by everyone; install.sh makes it root:{GROUP} 0640",
            path.display()
        ));
    } else if gid.is_some_and(|g| g != md.gid()) && md.mode() & 0o040 != 0 {
        r.warn(format!(
            "{}: {om}: group should be {GROUP} (root:{GROUP} 0640)",
            path.display()
        ));
    } else {
        r.ok(format!("{}: {om}", path.display()));
    }
}

fn binary(r: &mut Report, gid: Option<u32>) {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(md) = std::fs::metadata(&exe) else {
        return;
    };
    let om = owner_mode(&md);
    let setgid = md.mode() & 0o2000 != 0;
    if setgid && gid.is_some_and(|g| g == md.gid()) && md.uid() == 0 && md.mode() & 0o022 == 0 {
        r.ok(format!("{}: {om} (setgid {GROUP})", exe.display()));
    } else {
        r.warn(format!(
            "{}: {om}: not root-owned and setgid {GROUP} (install.sh installs it root:{GROUP} 2755); recordings \
             made by this binary are not protected from their users",
            exe.display()
        ));
    }
}

/// Checks of single keys beyond what parsing already validated.
fn keys(r: &mut Report, cfg: &Config) {
    let m = &cfg.mail;
    if m.transport == "none" {
        r.warn("mail.transport = \"none\": recordings stay in the spool, uncompressed, and are never mailed");
    } else if m.to.is_empty() {
        r.error(format!(
            "mail.to: no auditor address, but mail.transport = {:?}: nothing could be delivered",
            m.transport
        ));
    } else {
        r.ok(format!("mail.to = {}", m.to.join(", ")));
    }
    if let Some(from) = &m.from
        && (!from.contains('@') || from.chars().any(|c| c.is_control() || c.is_whitespace()))
    {
        r.error(format!("mail.from: not an email address: {from:?}"));
    }
    if m.subject.contains(['\r', '\n']) {
        r.error("mail.subject: must be one line");
    }
    let mut rest = m.subject.as_str();
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j) => {
                let name = &after[..j];
                if !["user", "host", "tty", "start", "duration", "exit"].contains(&name) {
                    r.error(format!(
                        "mail.subject: unknown placeholder {{{name}}} (known: {{user}} {{host}} {{tty}} {{start}} \
                         {{duration}} {{exit}})"
                    ));
                }
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    if m.transport.starts_with("smtp") {
        if let Err(e) = crate::deliver::mail::TransportSpec::parse(&m.transport) {
            r.error(format!("mail.transport: {e}"));
        }
    } else if m.transport == "sendmail" {
        let ok = std::fs::metadata(&m.sendmail_path)
            .map(|md| md.is_file() && md.mode() & 0o111 != 0)
            .unwrap_or(false);
        if !ok {
            r.error(format!(
                "mail.sendmail_path: {} is not an executable file (mail.transport = \"sendmail\")",
                m.sendmail_path.display()
            ));
        }
    }
    match (&m.user, &m.password_file) {
        (Some(_), None) => r.error("mail.password_file: required when mail.user is set"),
        (None, Some(_)) => r.error("mail.user: required when mail.password_file is set"),
        (Some(_), Some(p)) => match std::fs::metadata(p) {
            Err(e) => r.error(format!("mail.password_file: {}: {e}", p.display())),
            Ok(md) if md.mode() & 0o004 != 0 => r.error(format!(
                "mail.password_file: {} is readable by everyone ({})",
                p.display(),
                owner_mode(&md)
            )),
            Ok(_) => {
                if let Err(e) = std::fs::read(p) {
                    r.error(format!("mail.password_file: {}: {e}", p.display()));
                }
            }
        },
        (None, None) => {}
    }
    if m.max_size < crate::deliver::mail::BODY_RESERVE + (64 << 10) {
        r.warn(format!(
            "mail.max_size = {}: the mail's text and headers take up to {} bytes, so mails will hold little or \
             nothing of a session (each is kept whole in the spool)",
            m.max_size,
            crate::deliver::mail::BODY_RESERVE
        ));
    }
    if cfg.spool.max_size != 0 && cfg.spool.max_size < 16 << 20 {
        r.warn(format!(
            "spool.max_size = {}: below 16M, recordings will be evicted quickly",
            cfg.spool.max_size
        ));
    }
    for u in &cfg.policy.exempt_users {
        if nix::unistd::User::from_name(u).ok().flatten().is_none() {
            r.warn(format!("policy.exempt_users: no such user {u:?}"));
        }
    }
    for g in &cfg.policy.exempt_groups {
        if nix::unistd::Group::from_name(g).ok().flatten().is_none() {
            r.warn(format!("policy.exempt_groups: no such group {g:?}"));
        }
    }
}

fn spool(r: &mut Report, dir: &Path, gid: Option<u32>) {
    let md = match std::fs::metadata(dir) {
        Ok(md) if md.is_dir() => md,
        Ok(_) => return r.error(format!("spool.dir: {} is not a directory", dir.display())),
        Err(e) => {
            return r.error(format!(
                "spool.dir: {}: {e} (install.sh creates it root:{GROUP} 0770)",
                dir.display()
            ));
        }
    };
    let om = owner_mode(&md);
    let mut bad = false;
    if md.mode() & 0o007 != 0 {
        r.error(format!(
            "spool.dir: {}: {om}: others must have no access (recordings hold secrets); install.sh makes it \
             root:{GROUP} 0770",
            dir.display()
        ));
        bad = true;
    }
    if let Some(g) = gid
        && (md.gid() != g || md.mode() & 0o070 != 0o070)
    {
        r.error(format!(
            "spool.dir: {}: {om}: group {GROUP} must own it with rwx (root:{GROUP} 0770)",
            dir.display()
        ));
        bad = true;
    }
    for st in crate::spool::layout::State::ALL {
        let sub = dir.join(st.dir_name());
        if let Ok(smd) = std::fs::metadata(&sub)
            && let Some(g) = gid
            && (smd.gid() != g || smd.mode() & 0o070 != 0o070 || smd.mode() & 0o007 != 0)
        {
            r.error(format!(
                "spool.dir: {}: {}: must be {GROUP}-writable and private like the spool",
                sub.display(),
                owner_mode(&smd)
            ));
            bad = true;
        }
    }
    let probe = dir.join(crate::spool::layout::State::Active.dir_name());
    let target = if probe.is_dir() {
        probe
    } else {
        dir.to_path_buf()
    };
    if let Err(e) = tempfile::Builder::new()
        .prefix(".check-")
        .tempdir_in(&target)
    {
        r.error(format!(
            "spool.dir: cannot create a recording in {}: {e}",
            target.display()
        ));
        bad = true;
    }
    if !bad {
        r.ok(format!("spool.dir {}: {om}, writable", dir.display()));
    }
}

fn run_dir(r: &mut Report, dir: &Path, gid: Option<u32>) {
    let md = match std::fs::metadata(dir) {
        Ok(md) if md.is_dir() => md,
        Ok(_) => {
            return r.error(format!(
                "spool.run_dir: {} is not a directory",
                dir.display()
            ));
        }
        Err(e) => {
            return r.error(format!(
                "spool.run_dir: {}: {e} (install.sh creates it root:{GROUP} 0770 and a tmpfiles.d/cron entry \
                 recreates it at boot); without it nested logins (su -, bash -l) are detected by process ancestry \
                 only and tmux panes are recorded again",
                dir.display()
            ));
        }
    };
    let om = owner_mode(&md);
    if md.mode() & 0o002 != 0 {
        return r.error(format!(
            "spool.run_dir: {}: {om}: writable by everyone, so anyone could fake a live recording",
            dir.display()
        ));
    }
    if let Some(g) = gid
        && (md.gid() != g || md.mode() & 0o020 == 0)
    {
        return r.error(format!(
            "spool.run_dir: {}: {om}: must be writable by group {GROUP} (root:{GROUP} 0770)",
            dir.display()
        ));
    }
    if md.mode() & 0o007 != 0 {
        return r.error(format!(
            "spool.run_dir: {}: {om}: others may enter it, so a recorded user could rewrite their own registrations \
             (they own them) to make later logins on that terminal go unrecorded; make it root:{GROUP} 0770 (re-run \
             install.sh)",
            dir.display()
        ));
    }
    r.ok(format!("spool.run_dir {}: {om}", dir.display()));
}

fn fifo_dir(r: &mut Report, cfg: &Config) {
    if !cfg.hook.enabled {
        return r.warn("hook.enabled = false: commands are not logged to syslog");
    }
    let d = &cfg.hook.fifo_dir;
    match std::fs::metadata(d) {
        Ok(md) if md.is_dir() => {
            if md.mode() & 0o002 != 0 && md.mode() & 0o1000 == 0 {
                r.error(format!(
                    "hook.fifo_dir: {}: {}: world-writable without the sticky bit",
                    d.display(),
                    owner_mode(&md)
                ));
            } else {
                r.ok(format!(
                    "hook.fifo_dir {}: {}",
                    d.display(),
                    owner_mode(&md)
                ));
            }
        }
        Ok(_) => r.error(format!("hook.fifo_dir: {} is not a directory", d.display())),
        Err(e) => r.error(format!("hook.fifo_dir: {}: {e}", d.display())),
    }
}

fn syslog_target(r: &mut Report, cfg: &Config) {
    let t = &cfg.syslog.target;
    if t == "none" {
        return r.warn("syslog.target = \"none\": no session or command events are logged");
    }
    if let Some(path) = t.strip_prefix("unix:") {
        let is_socket = std::fs::metadata(path)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false);
        let reachable = is_socket
            && (std::os::unix::net::UnixDatagram::unbound()
                .and_then(|s| s.connect(path))
                .is_ok()
                || std::os::unix::net::UnixStream::connect(path).is_ok());
        if reachable {
            r.ok(format!("syslog.target {t}: a syslog daemon is listening"));
        } else {
            r.warn(format!(
                "syslog.target: nothing listens at {path}: events are kept in the recordings only"
            ));
        }
        return;
    }
    let Some((scheme, hostport)) = t.split_once("://") else {
        return r.error(format!("syslog.target: cannot parse {t:?}"));
    };
    let addr = match hostport.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        _ => {
            return r.error(format!(
                "syslog.target: cannot resolve {hostport:?} (expected host:port)"
            ));
        }
    };
    if scheme == "tcp" {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(cfg.mail.timeout.min(10))) {
            Ok(_) => r.ok(format!("syslog.target {t}: connected")),
            Err(e) => r.warn(format!(
                "syslog.target {t}: {e}: events are kept in the recordings until it is back"
            )),
        }
    } else {
        r.ok(format!("syslog.target {t} (UDP: not verifiable)"));
    }
}

/// Hardened mode: things that would let a user run code before sshd starts auditty.
fn sshd_mode(r: &mut Report) {
    if !Path::new("/etc/ssh/sshd_config.d/auditty.conf").exists() {
        return;
    }
    let pam = std::fs::read_to_string("/etc/pam.d/sshd").unwrap_or_default();
    if pam
        .lines()
        .any(|l| l.split('#').next().unwrap_or("").contains("user_readenv=1"))
    {
        r.warn(
            "/etc/pam.d/sshd: pam_env user_readenv=1 lets users set LD_PRELOAD and the like for the shell that \
             starts auditty (sshd ForceCommand mode); install.sh --sshd sets user_readenv=0",
        );
    } else {
        r.ok("sshd ForceCommand mode: /etc/ssh/sshd_config.d/auditty.conf, no user environment from PAM");
    }
}

/// Is the mail transport there? SMTP: connect, EHLO, STARTTLS/AUTH as configured, QUIT; sendmail: the program.
fn transport(r: &mut Report, cfg: &Config) {
    let t = &cfg.mail.transport;
    if t == "none" {
        return;
    }
    match crate::deliver::mail::probe_transport(cfg) {
        Ok(()) => r.ok(format!("mail.transport {t}: reachable")),
        Err(e) => r.error(format!(
            "mail.transport {t}: unreachable ({e:#}); recordings will wait in the queue"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn unknown_subject_placeholder_is_an_error() {
        let mut cfg = Config::default();
        cfg.mail.subject = "{user} {bogus}".into();
        let mut r = Report::default();
        keys(&mut r, &cfg);
        assert_eq!(r.errors, 1);
    }

    #[test]
    fn world_accessible_spool_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut r = Report::default();
        spool(&mut r, d.path(), None);
        assert_eq!(r.errors, 1);
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let mut r = Report::default();
        spool(&mut r, d.path(), None);
        assert_eq!(r.errors, 0);
    }

    /// The configuration must be readable by the sessions (group auditty, or everyone): a root-only file would
    /// leave every login to the failure policy. It must not be writable by anyone but root.
    #[test]
    fn a_config_sessions_cannot_read_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("auditty.conf");
        std::fs::write(&f, "").unwrap();
        let gid = std::fs::metadata(&f).unwrap().gid();
        for (mode, group, errors, warnings) in [
            (0o600, Some(gid), 1, 0),
            (0o640, Some(gid + 1), 1, 0),
            (0o640, Some(gid), 0, 0),
            (0o644, Some(gid), 0, 1),
            (0o660, Some(gid), 1, 0),
        ] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let mut r = Report::default();
            config_file(&mut r, &f, group);
            assert_eq!(
                (r.errors, r.warnings),
                (errors, warnings),
                "mode {mode:o}, group {group:?}"
            );
        }
    }

    /// The guard registry must be closed to others (docs/security.md N14): 0775, as installed before, is an error.
    #[test]
    fn a_registry_others_may_enter_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        for (mode, errors) in [(0o775, 1), (0o771, 1), (0o770, 0)] {
            std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let mut r = Report::default();
            run_dir(&mut r, d.path(), None);
            assert_eq!(r.errors, errors, "mode {mode:o}");
        }
    }
}
