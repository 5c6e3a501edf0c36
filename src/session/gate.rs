//! Admission: should this login be recorded? `/etc/profile.d/auditty.sh` asks with `auditty session --check`
//! before it `exec`s `auditty session`, so that a shell that must not (or cannot) be recorded never loops through
//! profile.d → auditty → login shell → profile.d.
//!
//! "Already inside a recording" is decided from things the user cannot forge, never from the environment:
//! * the guard registry in `spool.run_dir` (written only by group auditty): this terminal is the PTY of a live
//!   recording (`su -`, `sudo -i`, `bash -l` inside a session), or this process's kernel audit session id
//!   (pam_loginuid; inherited by tmux/screen servers and their panes) belongs to one;
//! * the process tree: a relay of a live recording (its pid in the private spool's `meta.json`) is an ancestor of
//!   this process. This also covers the first prompt of a recorded shell, before the writer has registered the PTY.

use std::collections::HashSet;
use std::path::Path;

use nix::unistd::{Group, getgid, getgroups, getppid, getuid};

use crate::cli::Cli;
use crate::cmd::Exit;
use crate::config::{self, Config, OnError};
use crate::privilege::Privilege;
use crate::procfs::ProcStat;
use crate::record::meta::Meta;
use crate::spool::guard;
use crate::spool::layout::{self, Spool, State};

/// The answer to `auditty session --check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not inside a recording, not exempt, the spool is usable: exec `auditty session`.
    Record,
    /// Already inside a live recording (the outer PTY records this shell).
    Inside(String),
    /// Never recorded: exempt user or group, or no terminal.
    Exempt(String),
    /// Recording is not possible; `policy.on_error` says what to do. None: the configuration exists but cannot be
    /// read (permissions, not a regular file), so its policy is unknown: profile.d then applies the one install.sh
    /// wrote into it.
    Impossible {
        policy: Option<OnError>,
        why: String,
    },
}

impl Verdict {
    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Record => 0,
            Verdict::Inside(_) => 3,
            Verdict::Exempt(_) => 4,
            Verdict::Impossible {
                policy: Some(OnError::Open),
                ..
            } => 5,
            Verdict::Impossible {
                policy: Some(OnError::Closed),
                ..
            } => 6,
            Verdict::Impossible { policy: None, .. } => 7,
        }
    }

    /// One line for profile.d (logged with `logger`, or shown when the login is refused).
    pub fn describe(&self) -> String {
        match self {
            Verdict::Record => "record".into(),
            Verdict::Inside(w) => format!("inside: {w}"),
            Verdict::Exempt(w) => format!("exempt: {w}"),
            Verdict::Impossible { policy, why } => format!(
                "cannot record ({}): {}",
                match policy {
                    Some(OnError::Open) => "policy.on_error=open, continuing unrecorded",
                    Some(OnError::Closed) => "policy.on_error=closed, login refused",
                    None => "policy.on_error unknown: the configuration cannot be read",
                },
                why.replace('\n', " ")
            ),
        }
    }
}

/// `auditty session --check`: print the verdict and exit with its code. A login that goes on unrecorded because
/// recording is impossible (`open`) leaves a note in the guard registry, from which `auditty flush` tells the
/// auditors (a NOT RECORDED notice), so that such a login is never known to syslog alone.
pub fn check(cli: &Cli, privilege: &Privilege) -> Exit {
    let v = decide(cli, privilege);
    if let Verdict::Impossible {
        policy: Some(OnError::Open),
        why,
    } = &v
        // Only when the configuration loaded: then `decide` has already found this login not inside a recording.
        // A configuration that does not load cannot tell (a nested `su -` would be reported as unrecorded).
        && let Ok(cfg) = privilege.load_config(cli)
    {
        // Still with the group (the registry is root:auditty 0770).
        leave_unrecorded_note(&cfg.spool.run_dir, why);
    }
    println!("{}", v.describe());
    Exit::from(v.exit_code())
}

/// The note of a login that goes on unrecorded: a registration under its own name (`unrecorded.<id>`) whose
/// "relay" is this process, which is gone a moment later; `auditty flush` takes it for what it says a minute on.
fn leave_unrecorded_note(run_dir: &Path, why: &str) {
    let who = Who::current();
    if guard::traces_of(run_dir, &who.user) >= guard::TRACES_PER_USER {
        return;
    }
    let pid = std::process::id();
    let Some(relay_start) = guard::process_start(pid) else {
        return;
    };
    let reg = guard::Registration {
        id: layout::new_id(&who.user, time::OffsetDateTime::now_utc()),
        relay_pid: pid,
        relay_start,
        uid: who.uid,
        pty: nix::unistd::ttyname(std::io::stdin())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "none".into()),
        fifo: String::new(),
        unrecorded: why.to_string(),
    };
    let _ = reg.publish(run_dir, &[format!("{}{}", guard::UNRECORDED, reg.id)]);
}

pub fn decide(cli: &Cli, privilege: &Privilege) -> Verdict {
    if !crate::sys::is_tty(0) {
        return Verdict::Exempt("no terminal".into());
    }
    let cfg = match privilege.load_config(cli) {
        Ok(c) => c,
        Err(e) => {
            return Verdict::Impossible {
                policy: policy_in_file(cli, privilege),
                why: format!("{e:#}"),
            };
        }
    };
    if let Some(w) = inside_recording(&cfg) {
        return Verdict::Inside(w);
    }
    if let Some(w) = exempt(&cfg) {
        return Verdict::Exempt(w);
    }
    if let Err(why) = spool_usable(&cfg.spool.dir) {
        return Verdict::Impossible {
            policy: Some(cfg.policy.on_error),
            why,
        };
    }
    Verdict::Record
}

/// The failure policy when the config does not load: `closed` only if the file that failed says so plainly (the
/// default file for a privileged run of an untrusted user, who may not name another), or, for a trusted caller, an
/// `-o policy.on_error=closed`.
pub fn lenient_on_error(cli: &Cli, privilege: &Privilege) -> OnError {
    policy_in_file(cli, privilege).unwrap_or(OnError::Open)
}

/// `lenient_on_error`, or None when the file is there but cannot be read (permissions, or not a regular file): then
/// nothing says which policy the administrator chose.
fn policy_in_file(cli: &Cli, privilege: &Privilege) -> Option<OnError> {
    let trusted = !privilege.untrusted_elevated();
    let path = match &cli.global.config {
        Some(p) if trusted => p.as_path(),
        _ => std::path::Path::new(config::DEFAULT_PATH),
    };
    // `on_error = "closed"` under [policy], `policy.on_error = "closed"`, or the -o form, quoted or not: a file
    // too broken to load is read in the direction that refuses rather than the one that lets a login through.
    let says_closed = |l: &str| {
        let l = l
            .split('#')
            .next()
            .unwrap_or("")
            .replace([' ', '\t', '"', '\''], "");
        l.strip_prefix("policy.").unwrap_or(&l) == "on_error=closed"
    };
    let in_overrides = trusted && cli.global.overrides.iter().any(|o| says_closed(o));
    let text = match config::read_file(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(_) if in_overrides => String::new(),
        Err(_) => return None,
    };
    if in_overrides || text.lines().any(says_closed) {
        Some(OnError::Closed)
    } else {
        Some(OnError::Open)
    }
}

/// Why this process is inside a live recording, if it is.
pub fn inside_recording(cfg: &Config) -> Option<String> {
    let tty = nix::unistd::ttyname(std::io::stdin())
        .ok()
        .map(|p| p.display().to_string());
    if let Some(reg) = guard::lookup(
        &cfg.spool.run_dir,
        tty.as_deref(),
        guard::audit_session_id(),
    ) {
        return Some(format!("recording {} on {}", reg.id, reg.pty));
    }
    let ancestors = ancestors();
    let spool = Spool::new(&cfg.spool.dir);
    for id in spool.list(State::Active).unwrap_or_default() {
        let Ok(meta) = Meta::read(&spool.recording_dir(State::Active, &id).join(layout::META))
        else {
            continue;
        };
        if meta.relay_pid != 0
            && ancestors.contains(&meta.relay_pid)
            && started_unix(meta.relay_pid).is_some_and(|s| s <= meta.start_unix + 2)
        {
            return Some(format!(
                "recording {id} (relay pid {} is an ancestor)",
                meta.relay_pid
            ));
        }
    }
    None
}

/// Parent, grandparent, … of this process (bounded; stops at pid 1).
fn ancestors() -> HashSet<u32> {
    let mut set = HashSet::new();
    let mut pid = getppid().as_raw() as u32;
    for _ in 0..256 {
        if pid <= 1 || !set.insert(pid) {
            break;
        }
        match parent_of(pid) {
            Some(p) => pid = p,
            None => break,
        }
    }
    set
}

fn parent_of(pid: u32) -> Option<u32> {
    ProcStat::of(pid).map(|s| s.ppid)
}

/// When a process started, in Unix seconds (rounded down), from its start time in ticks since boot.
fn started_unix(pid: u32) -> Option<i64> {
    let ticks = guard::process_start(pid)?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|h| *h > 0)
        .unwrap_or(100) as u64;
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + (ticks / hz) as i64)
}

/// The user running this process and their shell (from the password database).
pub struct Who {
    pub user: String,
    pub uid: u32,
    pub shell: std::path::PathBuf,
}

impl Who {
    pub fn current() -> Who {
        let uid = getuid();
        let pw = crate::session::account::lookup(uid.as_raw());
        let me = std::fs::read_link("/proc/self/exe").ok();
        let shell = pw
            .as_ref()
            .map(|u| u.shell.clone())
            .filter(|p| crate::session::account::is_usable_shell(p, me.as_deref()))
            .unwrap_or_else(|| "/bin/sh".into());
        Who {
            user: pw.map(|u| u.name).unwrap_or_else(|| uid.to_string()),
            uid: uid.as_raw(),
            shell,
        }
    }
}

/// Why the current user is exempt (`policy.exempt_users`, `policy.exempt_groups`), if they are.
pub fn exempt(cfg: &Config) -> Option<String> {
    let who = Who::current();
    if cfg.policy.exempt_users.contains(&who.user) {
        return Some(format!("user {} is in policy.exempt_users", who.user));
    }
    if cfg.policy.exempt_groups.is_empty() {
        return None;
    }
    let mut gids = getgroups().unwrap_or_default();
    gids.push(getgid());
    gids.into_iter()
        .filter_map(|g| Group::from_gid(g).ok().flatten())
        .find(|g| cfg.policy.exempt_groups.contains(&g.name))
        .map(|g| format!("group {} is in policy.exempt_groups", g.name))
}

/// Can a recording be created now? Makes the state directories if they are missing, then asks the kernel and
/// creates nothing: whether this process (its effective ids) may create in active/, and whether the spool's file
/// system has a free block and inode. (A scratch directory, as this used to make, was left behind in the spool,
/// owned by the user, whenever the check was killed half-way.)
pub fn spool_usable(dir: &Path) -> Result<(), String> {
    let spool = Spool::new(dir);
    spool.ensure().map_err(|e| format!("spool.dir: {e:#}"))?;
    let active = spool.state_dir(State::Active);
    let cannot = |why: &str| {
        format!(
            "spool.dir: cannot create a recording in {}: {why}",
            active.display()
        )
    };
    nix::unistd::faccessat(
        nix::fcntl::AT_FDCWD,
        &active,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .map_err(|e| cannot(e.desc()))?;
    let fs = nix::sys::statvfs::statvfs(&active).map_err(|e| cannot(e.desc()))?;
    // A file system without a limit reports no inodes or blocks at all (a tmpfs mounted with size=0 or nr_inodes=0).
    if fs.files() > 0 && fs.files_free() == 0 {
        return Err(cannot("its file system has no free inode"));
    }
    // Free blocks, not those available to non-root users: the space ext4 keeps for root is the writer's when root
    // logs in (refusing root's login there would lock out the administrator who must free the disk). A user's
    // writer that finds only that reserve left fails to create the recording and says so itself (C9).
    if fs.blocks() > 0 && fs.blocks_free() == 0 {
        return Err(cannot("its file system is full"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(Verdict::Record.exit_code(), 0);
        assert_eq!(Verdict::Inside("x".into()).exit_code(), 3);
        assert_eq!(Verdict::Exempt("x".into()).exit_code(), 4);
        let open = Verdict::Impossible {
            policy: Some(OnError::Open),
            why: "a\nb".into(),
        };
        assert_eq!(open.exit_code(), 5);
        assert!(!open.describe().contains('\n'));
        let closed = Verdict::Impossible {
            policy: Some(OnError::Closed),
            why: "x".into(),
        };
        assert_eq!(closed.exit_code(), 6);
        assert!(closed.describe().contains("login refused"));
        let unknown = Verdict::Impossible {
            policy: None,
            why: "x".into(),
        };
        assert_eq!(unknown.exit_code(), 7);
        assert!(unknown.describe().contains("policy.on_error unknown"));
    }

    #[test]
    fn a_config_that_does_not_load_is_read_for_closed_only_as_far_as_the_caller_is_trusted() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("auditty.conf");
        std::fs::write(
            &file,
            "[policy]\n  on_error = 'closed'  # broken below\nno_such_key =\n",
        )
        .unwrap();
        let cli = |config: Option<&Path>, overrides: &[&str]| {
            use clap::Parser;
            let mut args = vec!["auditty".to_string()];
            if let Some(c) = config {
                args.push(format!("--config={}", c.display()));
            }
            for o in overrides {
                args.push(format!("-o{o}"));
            }
            args.push("session".into());
            Cli::parse_from(args)
        };
        let root = Privilege {
            elevated: None,
            trusted: true,
            real_gid: getgid(),
        };
        let user = Privilege {
            elevated: Some(nix::unistd::Gid::from_raw(getgid().as_raw() + 1)),
            trusted: false,
            real_gid: getgid(),
        };
        assert_eq!(
            lenient_on_error(&cli(Some(&file), &[]), &root),
            OnError::Closed
        );
        assert_eq!(
            lenient_on_error(&cli(None, &["policy.on_error=closed"]), &root),
            OnError::Closed
        );
        // A file that is there but cannot be read says nothing: profile.d's installed policy decides (exit 7).
        let fifo = d.path().join("fifo.conf");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(policy_in_file(&cli(Some(&fifo), &[]), &root), None);
        assert_eq!(
            policy_in_file(&cli(Some(&fifo), &["policy.on_error=closed"]), &root),
            Some(OnError::Closed)
        );
        assert_eq!(
            policy_in_file(&cli(Some(&d.path().join("absent")), &[]), &root),
            Some(OnError::Open)
        );
        assert_eq!(
            lenient_on_error(&cli(None, &["policy.on_error=open"]), &root),
            OnError::Open
        );
        // An untrusted user may not choose the file or the policy: the default file decides (absent or open here).
        if !Path::new(config::DEFAULT_PATH).exists() {
            assert_eq!(
                lenient_on_error(&cli(Some(&file), &[]), &user),
                OnError::Open
            );
            assert_eq!(
                lenient_on_error(&cli(None, &["policy.on_error=closed"]), &user),
                OnError::Open
            );
        }
    }

    #[test]
    fn ancestors_include_parent_and_start_times_are_sane() {
        let a = ancestors();
        assert!(a.contains(&(getppid().as_raw() as u32)));
        let me = started_unix(std::process::id()).unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(me <= now && me > now - 3600, "{me} vs {now}");
    }

    /// The notes of unrecorded logins are capped per user (a user looping logins on a spool they filled must not
    /// fill the registry's tmpfs), and flush reads back what they say.
    #[test]
    fn unrecorded_notes_say_why_and_are_capped_per_user() {
        let d = tempfile::tempdir().unwrap();
        let user = Who::current().user;
        leave_unrecorded_note(d.path(), "spool.dir: its file system is full");
        let notes: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(notes.len(), 1);
        let text = std::fs::read_to_string(notes[0].path()).unwrap();
        assert!(
            text.contains(&format!("-{user}-"))
                && text.ends_with("\nunrecorded=spool.dir: its file system is full\n"),
            "{text}"
        );
        assert_eq!(guard::traces_of(d.path(), &user), 1);
        // Ids made in the same second differ in their random part.
        for _ in 1..guard::TRACES_PER_USER + 5 {
            leave_unrecorded_note(d.path(), "spool.dir: its file system is full");
        }
        assert_eq!(guard::traces_of(d.path(), &user), guard::TRACES_PER_USER);
        assert_eq!(guard::traces_of(d.path(), "somebody-else"), 0);
    }

    #[test]
    fn spool_usable_names_the_key() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(spool_usable(d.path()), Ok(()));
        assert!(d.path().join("active").is_dir());
        // It creates nothing (not even for a moment: active/'s modification time would change).
        let active = d.path().join("active");
        let past =
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        std::fs::File::open(&active)
            .unwrap()
            .set_modified(past)
            .unwrap();
        assert_eq!(spool_usable(d.path()), Ok(()));
        assert_eq!(
            std::fs::metadata(&active).unwrap().modified().unwrap(),
            past
        );
        assert_eq!(std::fs::read_dir(&active).unwrap().count(), 0);
        let e = spool_usable(&d.path().join("missing")).unwrap_err();
        assert!(e.starts_with("spool.dir:"), "{e}");
    }
}
