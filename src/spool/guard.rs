//! The nesting guard: a registry (`root:auditty` 0770: only the group reaches it) of the PTYs that live recordings
//! run on.
//! "Is this terminal inside a recording?" is answered from it, never from the environment.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::procfs::ProcStat;

/// One live recording as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub id: String,
    /// The relay: it holds the PTY's master, so while it lives the PTY number cannot be handed to another login.
    pub relay_pid: u32,
    /// The relay's start time in clock ticks since boot (/proc/<pid>/stat field 22), against pid reuse.
    pub relay_start: u64,
    pub uid: u32,
    pub pty: String,
    /// The command FIFO the shell hook writes into (empty when the hook is off).
    pub fifo: String,
    /// Why this login goes on unrecorded (empty: it is recorded). Set when the spool cannot take the recording and
    /// `policy.on_error = "open"` lets the login go on: the registration then stays after the session, and
    /// `auditty flush` tells the auditors (`queue::queue_never_started`).
    pub unrecorded: String,
}

/// Registry file name for a terminal path: /dev/pts/5 → "pts-5".
pub fn tty_key(tty: &str) -> String {
    tty.trim_start_matches("/dev/").replace('/', "-")
}

/// Registry file name for an audit session id (shells in tmux/screen panes inherit it).
pub fn session_key(audit_session: u32) -> String {
    format!("session-{audit_session}")
}

/// The registry keys of a recording: its PTY and, when known, the audit session it belongs to.
pub fn keys(pty: &str, audit_session: Option<u32>) -> Vec<String> {
    let mut k = vec![tty_key(pty)];
    k.extend(audit_session.map(session_key));
    k
}

/// The kernel audit session id of this process, if pam_loginuid set one (4294967295 means unset).
pub fn audit_session_id() -> Option<u32> {
    let s = crate::sys::read_proc("/proc/self/sessionid")?;
    let n: u32 = s.trim().parse().ok()?;
    (n != u32::MAX).then_some(n)
}

/// The audit login uid, if set.
pub fn login_uid() -> Option<u32> {
    let s = crate::sys::read_proc("/proc/self/loginuid")?;
    let n: u32 = s.trim().parse().ok()?;
    (n != u32::MAX).then_some(n)
}

/// Start time (field 22 of /proc/<pid>/stat) of a live process.
pub fn process_start(pid: u32) -> Option<u64> {
    ProcStat::of(pid).map(|s| s.start_ticks)
}

/// The real uid of a process (/proc/<pid>/status, readable for every process).
fn real_uid(pid: u32) -> Option<u32> {
    let status = crate::sys::read_proc(&format!("/proc/{pid}/status"))?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().next()?.parse().ok()
}

impl Registration {
    fn render(&self) -> String {
        let mut text = format!(
            "id={}\nrelay_pid={}\nrelay_start={}\nuid={}\npty={}\nfifo={}\n",
            self.id, self.relay_pid, self.relay_start, self.uid, self.pty, self.fifo
        );
        if !self.unrecorded.is_empty() {
            let why: String = self
                .unrecorded
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(1000)
                .collect();
            text.push_str(&format!("unrecorded={why}\n"));
        }
        text
    }

    fn parse(text: &str) -> Option<Registration> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(Registration {
            id: get("id")?,
            relay_pid: get("relay_pid")?.parse().ok()?,
            relay_start: get("relay_start")?.parse().ok()?,
            uid: get("uid")?.parse().ok()?,
            pty: get("pty")?,
            fifo: get("fifo")?,
            unrecorded: get("unrecorded").unwrap_or_default(),
        })
    }

    /// The recording's relay is still the same live process, so the PTY is still this recording's. (The writer
    /// outlives the relay while it compresses and mails; by then the PTY number may belong to a new login.)
    /// The relay that published it still runs: the same process (pid and start time), not a zombie (which has
    /// let go of the PTY), and the user the registration names (a registration naming someone else's process,
    /// e.g. pid 1, is not live).
    pub fn is_live(&self) -> bool {
        let Some(stat) = ProcStat::of(self.relay_pid) else {
            return false;
        };
        if stat.start_ticks != self.relay_start || stat.is_gone() {
            return false;
        }
        real_uid(self.relay_pid) == Some(self.uid)
    }

    /// Publish under each key (tty, and audit session when known), atomically, readable by group auditty. A registration of
    /// another recording whose relay is gone is set aside first (`stale.<id>`), not overwritten: when its writer
    /// died too it is the only trace of that login, which `auditty flush` reports (`queue::queue_never_started`).
    pub fn publish(&self, run_dir: &Path, keys: &[String]) -> Result<()> {
        for key in keys {
            let mut tmp = tempfile::Builder::new()
                .prefix(TEMPORARY)
                .permissions(std::fs::Permissions::from_mode(0o640))
                .tempfile_in(run_dir)
                .with_context(|| {
                    format!("cannot write to the guard registry {}", run_dir.display())
                })?;
            tmp.write_all(self.render().as_bytes())?;
            // Normally the key is free (the writer withdraws its registrations when the session ends), and the
            // rename that publishes it refuses to replace anything: only when something is there is it read.
            let path = run_dir.join(key);
            let tmp = match tmp.persist_noclobber(&path) {
                Ok(_) => continue,
                Err(e) => e.file,
            };
            set_aside_if_stale(run_dir, key, &self.id);
            tmp.persist(&path)
                .with_context(|| format!("cannot publish {}/{key}", run_dir.display()))?;
        }
        Ok(())
    }

    /// Publish again without the FIFO (the writer could not make it, or records nothing), so that `auditty hook`
    /// does not wait for a FIFO that will never come. Only over the relay's own publication, which it makes before
    /// the writer exists: none there means publishing failed, or the registry has moved on.
    pub fn republish_without_fifo(&mut self, run_dir: &Path, keys: &[String]) {
        self.fifo.clear();
        if keys
            .first()
            .is_some_and(|key| read_key(run_dir, key).is_some_and(|r| r.id == self.id))
        {
            let _ = self.publish(run_dir, keys);
        }
    }

    /// Remove our entries (only those still naming this recording), including the one a next login on the same
    /// PTY set aside (`stale.<id>`) when it published before we withdrew: left there, `auditty flush` would take it
    /// for a login whose recorder was killed.
    pub fn withdraw(&self, run_dir: &Path, keys: &[String]) {
        for key in keys {
            remove_if_it_names(&run_dir.join(key), &self.id);
        }
        remove_if_it_names(&run_dir.join(format!("{SET_ASIDE}{}", self.id)), &self.id);
    }
}

/// Remove the registration file `p` if it names recording `id`. Reading it and then removing the path would remove
/// a registration a new login on the same PTY published in between; so the file is first renamed away (atomically,
/// to a temporary name lookups ignore), read there, and put back if it is someone else's. A newer one published
/// meanwhile is kept (the rename back never replaces anything). The key is then absent for a few microseconds at
/// most, where it used to be lost for good.
fn remove_if_it_names(p: &Path, id: &str) {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
        return;
    };
    // Not a temporary name: should this process die right here, `abandoned` still finds the file (flush reports
    // the login if its relay is gone too).
    let taken = dir.join(format!(
        "{WITHDRAWING}{}.{}",
        std::process::id(),
        name.to_string_lossy()
    ));
    if std::fs::rename(p, &taken).is_err() {
        return;
    }
    let other = read(&taken).filter(|r| r.id != id);
    let Some(other) = other else {
        let _ = std::fs::remove_file(&taken);
        return;
    };
    if renameat2(AT_FDCWD, &taken, AT_FDCWD, p, RenameFlags::RENAME_NOREPLACE).is_ok() {
        return;
    }
    // A newer one was published meanwhile: the one taken is set aside as `publish` would have done, if its relay is
    // gone (the only trace of a login flush may have to report), else dropped (the newer one replaces it).
    if crate::spool::layout::valid_id(&other.id) && !other.is_live() {
        let _ = std::fs::rename(&taken, dir.join(format!("{SET_ASIDE}{}", other.id)));
    } else {
        let _ = std::fs::remove_file(&taken);
    }
}

/// A registration file, if it is what a recorder wrote: a regular file (not followed through a symlink) owned by
/// the user it names (the relay and the writer run with that uid) or by root. The registry directory is
/// `root:auditty` 0770, so nobody else can reach it; this is the second line (docs/security.md, N14).
fn read(p: &PathBuf) -> Option<Registration> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)
        .ok()?;
    let md = f.metadata().ok()?;
    if !md.is_file() || md.len() > 64 << 10 {
        return None;
    }
    let mut text = String::new();
    f.read_to_string(&mut text).ok()?;
    let reg = Registration::parse(&text)?;
    (md.uid() == reg.uid || md.uid() == 0).then_some(reg)
}

/// At most this many registrations of one user may wait for `auditty flush` as the only trace of a login
/// (`stale.<id>`, `unrecorded.<id>`): a user who can make recording impossible (fill the spool's file system) and then
/// loops logins must not fill the registry's tmpfs. Ten a minute (flush's interval) tell the auditors enough.
pub const TRACES_PER_USER: usize = 10;

/// How many registrations of `user`'s logins wait in the registry as traces (`stale.<id>`, `unrecorded.<id>`: the
/// id holds the user name).
pub fn traces_of(run_dir: &Path, user: &str) -> usize {
    let needle = format!("-{user}-");
    std::fs::read_dir(run_dir)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    (n.starts_with(SET_ASIDE) || n.starts_with(UNRECORDED)) && n.contains(&needle)
                })
                .count()
        })
        .unwrap_or(0)
}

/// Name prefix of the note of a login that went on unrecorded without a recorder (`auditty session --check`).
pub const UNRECORDED: &str = "unrecorded.";

/// Name prefix of a registration set aside by `publish`.
const SET_ASIDE: &str = "stale.";
/// Name prefix of a registration `withdraw` has taken away to read it (`remove_if_it_names`).
const WITHDRAWING: &str = "withdrawing.";
/// Name prefix of `publish`'s temporary files.
const TEMPORARY: &str = ".reg.";

/// Before `key` is published over for recording `id`: keep a registration of another recording whose relay is gone
/// as `stale.<its id>`.
fn set_aside_if_stale(run_dir: &Path, key: &str, id: &str) {
    let p = run_dir.join(key);
    if let Some(old) = read(&p)
        && old.id != id
        && crate::spool::layout::valid_id(&old.id)
        && !old.is_live()
    {
        let _ = std::fs::rename(&p, run_dir.join(format!("{SET_ASIDE}{}", old.id)));
    }
}

/// A recording's registrations whose relay is gone: its writer either withdraws them soon or died as well.
#[derive(Debug)]
pub struct Abandoned {
    pub registration: Registration,
    /// When the relay published it (the newest file's modification time): about when the login began.
    pub published: std::time::SystemTime,
    files: Vec<PathBuf>,
}

impl Abandoned {
    /// Remove the files (those still naming this recording).
    pub fn remove(&self) {
        for f in &self.files {
            remove_if_it_names(f, &self.registration.id);
        }
    }
}

/// Every recording in the registry whose relay is no longer the process that published it, and whose newest file
/// is at least `older_than` old (a writer whose relay has just ended is still withdrawing them), one entry per
/// recording however many keys name it.
pub fn abandoned(run_dir: &Path, older_than: std::time::Duration) -> Vec<Abandoned> {
    let mut found: Vec<Abandoned> = Vec::new();
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return found;
    };
    let now = std::time::SystemTime::now();
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMPORARY) || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let p = e.path();
        let (Some(reg), Ok(modified)) = (read(&p), e.metadata().and_then(|m| m.modified())) else {
            continue;
        };
        if !crate::spool::layout::valid_id(&reg.id) || reg.is_live() {
            continue;
        }
        match found.iter_mut().find(|a| a.registration.id == reg.id) {
            Some(a) => {
                a.published = a.published.max(modified);
                a.files.push(p);
            }
            None => found.push(Abandoned {
                registration: reg,
                published: modified,
                files: vec![p],
            }),
        }
    }
    found.retain(|a| {
        now.duration_since(a.published)
            .is_ok_and(|age| age >= older_than)
    });
    found.sort_by(|a, b| a.registration.id.cmp(&b.registration.id));
    found
}

/// The registration published under `key`, live or not.
pub fn read_key(run_dir: &Path, key: &str) -> Option<Registration> {
    read(&run_dir.join(key))
}

/// The live recording that `tty` (or, failing that, this process's audit session) belongs to.
pub fn lookup(
    run_dir: &Path,
    tty: Option<&str>,
    audit_session: Option<u32>,
) -> Option<Registration> {
    let mut keys = Vec::new();
    if let Some(t) = tty {
        keys.push(tty_key(t));
    }
    if let Some(s) = audit_session {
        keys.push(session_key(s));
    }
    keys.into_iter()
        .filter_map(|k| read(&run_dir.join(k)))
        .find(Registration::is_live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_lookup_withdraw() {
        let d = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let r = Registration {
            id: "rec1".into(),
            relay_pid: me,
            relay_start: process_start(me).unwrap(),
            uid: nix::unistd::getuid().as_raw(),
            pty: "/dev/pts/9".into(),
            fifo: "/tmp/x/cmd".into(),
            unrecorded: String::new(),
        };
        let keys = vec![tty_key("/dev/pts/9"), session_key(7)];
        r.publish(d.path(), &keys).unwrap();
        assert_eq!(lookup(d.path(), Some("/dev/pts/9"), None), Some(r.clone()));
        assert_eq!(
            lookup(d.path(), Some("/dev/pts/1"), Some(7)),
            Some(r.clone())
        );
        assert_eq!(lookup(d.path(), Some("/dev/pts/1"), Some(8)), None);
        let stale = Registration {
            relay_start: r.relay_start + 1,
            ..r.clone()
        };
        stale.publish(d.path(), &keys[..1]).unwrap();
        assert_eq!(
            lookup(d.path(), Some("/dev/pts/9"), None),
            None,
            "pid reuse must not count as live"
        );
        r.publish(d.path(), &keys).unwrap();
        r.withdraw(d.path(), &keys);
        assert_eq!(lookup(d.path(), Some("/dev/pts/9"), Some(7)), None);
        // Withdrawing leaves another recording's registration where it is, unchanged, and nothing else behind.
        let other = Registration {
            id: "rec2".into(),
            ..r.clone()
        };
        other.publish(d.path(), &keys).unwrap();
        r.withdraw(d.path(), &keys);
        assert_eq!(
            lookup(d.path(), Some("/dev/pts/9"), Some(7)),
            Some(other.clone())
        );
        assert_eq!(lookup(d.path(), Some("/dev/pts/1"), Some(7)), Some(other));
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(left, want);
        // A registration left taken away by a withdraw that died half-way is still found by flush once its relay
        // is gone.
        let dead = Registration {
            id: "20261203T101500Z-alice-00000000000c".into(),
            relay_start: r.relay_start + 1,
            ..r.clone()
        };
        dead.publish(d.path(), &keys[..1]).unwrap();
        std::fs::rename(
            d.path().join(&keys[0]),
            d.path().join(format!("{WITHDRAWING}1.{}", keys[0])),
        )
        .unwrap();
        let found: Vec<String> = abandoned(d.path(), std::time::Duration::ZERO)
            .into_iter()
            .map(|a| a.registration.id)
            .collect();
        assert_eq!(found, vec![dead.id.clone()]);
    }

    /// A registration counts only for the relay process it names, running as the user it names and not a zombie;
    /// only a regular file owned by that user (or root) is read, never through a symlink.
    #[test]
    fn only_a_live_relay_of_the_named_user_in_a_file_of_theirs_counts() {
        let me = nix::unistd::getuid().as_raw();
        let of = |pid: u32, uid: u32| Registration {
            id: "20261203T100000Z-x-000000000001".into(),
            relay_pid: pid,
            relay_start: process_start(pid).unwrap(),
            uid,
            pty: "/dev/pts/9".into(),
            fifo: String::new(),
            unrecorded: String::new(),
        };
        let own = of(std::process::id(), me);
        assert!(own.is_live());
        assert!(
            !of(std::process::id(), me + 4242).is_live(),
            "another user's uid"
        );
        // A zombie still has its pid and start time, but has let go of the PTY.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let zombie = of(pid, me);
        nix::sys::wait::waitid(
            nix::sys::wait::Id::Pid(nix::unistd::Pid::from_raw(pid as i32)),
            nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT,
        )
        .unwrap();
        assert!(!zombie.is_live(), "a zombie relay");
        child.wait().unwrap();

        let d = tempfile::tempdir().unwrap();
        let keys = vec![tty_key("/dev/pts/9")];
        own.publish(d.path(), &keys).unwrap();
        assert_eq!(
            lookup(d.path(), Some("/dev/pts/9"), None),
            Some(own.clone())
        );
        let file = d.path().join(&keys[0]);
        if me == 0 {
            // Owned by a user other than the one it names (and not root): not a recorder's.
            nix::unistd::chown(&file, Some(nix::unistd::Uid::from_raw(4242)), None).unwrap();
            assert_eq!(lookup(d.path(), Some("/dev/pts/9"), None), None);
            nix::unistd::chown(&file, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
        }
        std::fs::rename(&file, d.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(d.path().join("elsewhere"), &file).unwrap();
        assert_eq!(
            lookup(d.path(), Some("/dev/pts/9"), None),
            None,
            "a symlink"
        );
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_stale_registration_is_set_aside_not_overwritten_and_found_abandoned() {
        let d = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let start = process_start(me).unwrap();
        let live = |id: &str| Registration {
            id: id.into(),
            relay_pid: me,
            relay_start: start,
            uid: nix::unistd::getuid().as_raw(),
            pty: "/dev/pts/9".into(),
            fifo: String::new(),
            unrecorded: String::new(),
        };
        // A login whose relay is gone (this pid with another start time is another process) under both keys.
        let dead = Registration {
            relay_start: start + 1,
            ..live("20261203T100000Z-alice-000000000001")
        };
        let keys = vec![tty_key("/dev/pts/9"), session_key(7)];
        dead.publish(d.path(), &keys).unwrap();
        assert_eq!(names(d.path()), ["pts-9", "session-7"]);
        let found = abandoned(d.path(), std::time::Duration::ZERO);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].registration, dead);
        assert_eq!(found[0].files.len(), 2, "both keys name it");
        assert!(
            abandoned(d.path(), std::time::Duration::from_secs(3600)).is_empty(),
            "too young to be taken for abandoned"
        );
        // The next login on that PTY keeps the stale one aside instead of overwriting it.
        let next = live("20261203T100500Z-bob-000000000002");
        next.publish(d.path(), &keys[..1]).unwrap();
        assert_eq!(
            names(d.path()),
            [
                "pts-9",
                "session-7",
                "stale.20261203T100000Z-alice-000000000001"
            ]
        );
        assert_eq!(read_key(d.path(), "pts-9"), Some(next.clone()));
        let found = abandoned(d.path(), std::time::Duration::ZERO);
        assert_eq!(found.len(), 1, "the live one is not abandoned: {found:?}");
        assert_eq!(found[0].registration, dead);
        found[0].remove();
        assert_eq!(
            names(d.path()),
            ["pts-9"],
            "only the live registration is left"
        );
        // A live registration under the key is replaced, not set aside (the guard found it not live, or it is ours).
        live("20261203T101000Z-carol-000000000003")
            .publish(d.path(), &keys[..1])
            .unwrap();
        assert_eq!(names(d.path()), ["pts-9"]);
    }

    /// The next login on the PTY published before the previous recording's writer withdrew (its relay had just
    /// ended): the writer's withdrawal removes what was set aside for it too, and leaves the new login's alone.
    #[test]
    fn a_withdrawal_after_the_next_login_published_leaves_nothing_set_aside() {
        let d = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let start = process_start(me).unwrap();
        let reg = |id: &str, relay_start: u64| Registration {
            id: id.into(),
            relay_pid: me,
            relay_start,
            uid: nix::unistd::getuid().as_raw(),
            pty: "/dev/pts/9".into(),
            fifo: String::new(),
            unrecorded: String::new(),
        };
        let keys = vec![tty_key("/dev/pts/9"), session_key(7)];
        let ended = reg("20261203T100000Z-alice-000000000001", start + 1);
        ended.publish(d.path(), &keys).unwrap();
        let next = reg("20261203T100001Z-alice-000000000002", start);
        next.publish(d.path(), &keys[..1]).unwrap();
        assert_eq!(
            names(d.path()),
            [
                "pts-9",
                "session-7",
                "stale.20261203T100000Z-alice-000000000001"
            ]
        );
        ended.withdraw(d.path(), &keys);
        assert_eq!(names(d.path()), ["pts-9"]);
        assert_eq!(read_key(d.path(), "pts-9"), Some(next));
        assert!(abandoned(d.path(), std::time::Duration::ZERO).is_empty());
    }
}
