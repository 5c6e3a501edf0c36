//! Spool layout: state directories, recording ids, exclusive file creation and the per-recording lock.
//!
//! The lock is an exclusive `flock` on the recording directory itself (opened `O_DIRECTORY`): it needs no file of
//! its own, so nothing more has to be created before the shell starts, and since a rename keeps the inode, it moves
//! with the recording from `active/` to `queue/`, `sent/` or `failed/`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};

/// The states a recording moves through; each is a directory of the spool, moves are atomic renames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Being recorded (the writer holds the recording's lock).
    Active,
    /// Complete and waiting for delivery ("ready").
    Queue,
    /// Delivered; kept `spool.keep_days`.
    Sent,
    /// Permanently refused by the mail system; retried by `flush --all`.
    Failed,
}

impl State {
    pub const ALL: [State; 4] = [State::Active, State::Queue, State::Sent, State::Failed];

    pub fn dir_name(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Queue => "queue",
            State::Sent => "sent",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL
            .into_iter()
            .find(|st| st.dir_name() == s || (s == "ready" && *st == State::Queue))
    }
}

/// File names inside a recording directory.
pub const TYPESCRIPT: &str = "typescript";
pub const TIMING: &str = "timing";
pub const INPUT: &str = "input";
pub const COMMANDS: &str = "commands.log";
pub const META: &str = "meta.json";
/// The data files a recording's sums may name (each also as `NAME.gz` once compressed).
pub const DATA_FILES: [&str; 4] = [TYPESCRIPT, TIMING, INPUT, COMMANDS];

/// A name meta.json's sums may carry: one of `DATA_FILES`, plain or `.gz`. Anything else (`../x`, `/etc/shadow`,
/// another file) is not part of a recording and is never opened on its behalf.
pub fn is_data_file_name(name: &str) -> bool {
    DATA_FILES.contains(&name.strip_suffix(".gz").unwrap_or(name))
}

/// Room the spool writer sets aside in a recording it creates, and releases when it completes it, so that a full disk
/// still leaves room for the end of the recording (`spool::writer`, RESERVE_BYTES). Never queued.
pub const RESERVE: &str = ".reserve";
/// The lock file of recordings made before the lock moved to the directory itself. A writer started by an older
/// version may still hold it (e.g. across an upgrade), so whoever takes a recording's lock takes this one too when
/// it exists. It is never created any more.
pub const LEGACY_LOCK: &str = ".lock";

#[derive(Debug, Clone)]
pub struct Spool {
    pub root: PathBuf,
}

impl Spool {
    pub fn new(root: &Path) -> Spool {
        Spool {
            root: root.to_path_buf(),
        }
    }

    pub fn state_dir(&self, state: State) -> PathBuf {
        self.root.join(state.dir_name())
    }

    pub fn recording_dir(&self, state: State, id: &str) -> PathBuf {
        self.state_dir(state).join(id)
    }

    /// The spool root is a directory (install.sh makes it): an error saying what is wrong otherwise.
    pub fn must_exist(&self) -> Result<()> {
        match std::fs::metadata(&self.root) {
            Ok(md) if md.is_dir() => Ok(()),
            Ok(_) => bail!(
                "spool directory {} is not a directory (spool.dir; install.sh creates it root:auditty 0770)",
                self.root.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "spool directory {} does not exist (spool.dir; install.sh creates it root:auditty 0770)",
                self.root.display()
            ),
            Err(e) => Err(e).with_context(|| format!("spool directory {}", self.root.display())),
        }
    }

    /// The directory of the recording `arg` names: its id, or a prefix of exactly one id, in any state.
    pub fn resolve(&self, arg: &str) -> Result<PathBuf> {
        if let Some((_, dir)) = self.find(arg) {
            return Ok(dir);
        }
        let mut found = Vec::new();
        for st in State::ALL {
            for id in self.list(st)? {
                if id.starts_with(arg) {
                    found.push(self.recording_dir(st, &id));
                }
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => bail!(
                "no recording {arg} in {} (active, queue, sent, failed)",
                self.root.display()
            ),
            n => {
                let names: Vec<String> = found
                    .iter()
                    .take(5)
                    .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect();
                bail!(
                    "{arg} matches {n} recordings ({}{}); give more of the id",
                    names.join(", "),
                    if n > 5 { ", …" } else { "" }
                )
            }
        }
    }

    /// Make sure the state directories exist (mode 0770; the spool root itself is made by install.sh).
    pub fn ensure(&self) -> Result<()> {
        self.must_exist()?;
        if State::ALL.iter().all(|st| self.state_dir(*st).is_dir()) {
            return Ok(());
        }
        for st in State::ALL {
            let d = self.state_dir(st);
            match std::fs::DirBuilder::new().mode(0o770).create(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", d.display())),
            }
        }
        Ok(())
    }

    /// Create active/<id> (mode 0750) for a new recording, making the state directories first only when active/ is
    /// missing (`ensure`'s five stats are not paid by every login; the spool writer calls `ensure` once it runs, so
    /// queue/ is there when the recording is queued).
    /// Could a recording be created now: is active/ a directory this process may create entries in, with its
    /// effective ids (the setgid group), or, when it is missing, the spool root one it may make it in (`ensure`)?
    /// A cheap check that creates nothing; creating may still fail (a full disk).
    pub fn can_create_recordings(&self) -> bool {
        let may_create_in = |dir: &Path| {
            nix::unistd::faccessat(
                nix::fcntl::AT_FDCWD,
                dir,
                nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
                nix::fcntl::AtFlags::AT_EACCESS,
            )
            .is_ok()
        };
        let active = self.state_dir(State::Active);
        match std::fs::metadata(&active) {
            Ok(m) => m.is_dir() && may_create_in(&active),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.root.is_dir() && may_create_in(&self.root)
            }
            Err(_) => false,
        }
    }

    pub fn create_recording(&self, id: &str) -> Result<PathBuf> {
        let d = self.recording_dir(State::Active, id);
        match std::fs::DirBuilder::new().mode(0o750).create(&d) {
            Ok(()) => Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.ensure()?;
                self.create_active(id)
            }
            Err(e) => {
                Err(e).with_context(|| format!("cannot create recording directory {}", d.display()))
            }
        }
    }

    /// Create active/<id> (mode 0750) for a new recording.
    pub fn create_active(&self, id: &str) -> Result<PathBuf> {
        let d = self.recording_dir(State::Active, id);
        std::fs::DirBuilder::new()
            .mode(0o750)
            .create(&d)
            .with_context(|| format!("cannot create recording directory {}", d.display()))?;
        Ok(d)
    }

    /// Atomically move a recording between states.
    pub fn move_to(&self, id: &str, from: State, to: State) -> Result<PathBuf> {
        let src = self.recording_dir(from, id);
        let dst = self.recording_dir(to, id);
        std::fs::rename(&src, &dst)
            .with_context(|| format!("cannot move {} to {}", src.display(), dst.display()))?;
        Ok(dst)
    }

    /// Recording ids in a state, oldest first (ids sort by time): directories only, never what a symlink points to
    /// (`spool::strays::of` lists the rest).
    pub fn list(&self, state: State) -> Result<Vec<String>> {
        let d = self.state_dir(state);
        let mut ids = Vec::new();
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", d.display())),
        };
        for e in rd {
            let e = e.with_context(|| format!("cannot read {}", d.display()))?;
            if let Some(name) = e.file_name().to_str()
                && valid_id(name)
                && e.file_type().is_ok_and(|t| t.is_dir())
            {
                ids.push(name.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Where a recording is now (a directory, not a symlink to one).
    pub fn find(&self, id: &str) -> Option<(State, PathBuf)> {
        if !valid_id(id) {
            return None;
        }
        State::ALL
            .into_iter()
            .map(|st| (st, self.recording_dir(st, id)))
            .find(|(_, p)| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
    }
}

/// A time-sortable recording id: `YYYYmmddTHHMMSSZ-<user>-<12 hex>`.
pub fn new_id(user: &str, now: time::OffsetDateTime) -> String {
    let u = now.to_offset(time::UtcOffset::UTC);
    let user: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    let rnd = uuid::Uuid::now_v7().as_u128() as u64 & 0xffff_ffff_ffff;
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}-{:012x}",
        u.year(),
        u.month() as u8,
        u.day(),
        u.hour(),
        u.minute(),
        u.second(),
        if user.is_empty() { "_" } else { &user },
        rnd
    )
}

/// Ids are names we made: no path separators, no dot-files, bounded.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 80
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Create a new file O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC with `mode`.
pub fn create_exclusive(dir: &Path, name: &str, mode: u32) -> Result<File> {
    let p = dir.join(name);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&p)
        .with_context(|| format!("cannot create {}", p.display()))
}

/// Open a recording directory for its lock (read-only, no symlink followed).
fn open_dir(dir: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
}

/// flock without waiting: `None` when someone else holds a conflicting lock.
fn flock_nb(f: File, arg: FlockArg, p: &Path) -> Result<Option<Flock<File>>> {
    match Flock::lock(f, arg) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e).with_context(|| format!("cannot lock {}", p.display())),
    }
}

/// Lock a recording directory that this process has just created (the spool writer then holds the lock for the
/// recording's whole life); `None` if someone holds it already.
pub fn lock_new(dir: &Path) -> Result<Option<Flock<File>>> {
    let f = open_dir(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    flock_nb(f, FlockArg::LockExclusiveNonblock, dir)
}

/// A recording's lock as `flush` and the cleanup take it: the directory, plus the legacy `.lock` when there is one.
/// Released when dropped.
pub struct RecordingLock {
    _dir: Flock<File>,
    _legacy: Option<Flock<File>>,
}

/// Take a recording's lock without waiting; `None` if someone (a live writer, another flush) holds it.
pub fn try_lock(dir: &Path) -> Result<Option<RecordingLock>> {
    lock_with(dir, FlockArg::LockExclusiveNonblock)
}

/// Is the recording's lock free (nobody is writing or delivering it)? Tested with a shared lock, released at once.
/// A directory that cannot be opened (moved meanwhile) counts as free, as a missing `.lock` did.
pub fn lock_is_free(dir: &Path) -> bool {
    !matches!(lock_with(dir, FlockArg::LockSharedNonblock), Ok(None))
}

fn lock_with(dir: &Path, arg: FlockArg) -> Result<Option<RecordingLock>> {
    let f = open_dir(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    let Some(d) = flock_nb(f, arg, dir)? else {
        return Ok(None);
    };
    let p = dir.join(LEGACY_LOCK);
    let legacy = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&p)
    {
        Ok(f) => match flock_nb(f, arg, &p)? {
            Some(l) => Some(l),
            None => return Ok(None),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot open lock {}", p.display())),
    };
    Ok(Some(RecordingLock {
        _dir: d,
        _legacy: legacy,
    }))
}

/// Open a recording's file for reading: only a regular file, never through a symlink, and without blocking on a
/// FIFO or device put in its place (root's flush reads the spool, which root and the group can write).
pub fn open_no_follow(path: &Path) -> Result<File> {
    open_regular(path, false)
}

/// As `open_no_follow`, for appending (orphan completion writes the footer).
pub fn open_no_follow_to_append(path: &Path) -> Result<File> {
    open_regular(path, true)
}

fn open_regular(path: &Path, append: bool) -> Result<File> {
    let f = OpenOptions::new()
        .read(!append)
        .append(append)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => {
                anyhow::anyhow!("{} is a symlink, which is never followed", path.display())
            }
            _ => anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
        })?;
    let md = f
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?;
    if !md.is_file() {
        bail!("{} is not a regular file; not read", path.display());
    }
    Ok(f)
}

/// The whole of a recording's file (`open_no_follow`), at most `limit` bytes.
pub fn read_no_follow(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    open_no_follow(path)?
        .take(limit)
        .read_to_end(&mut out)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(out)
}

/// Is `path` a regular file (not followed if it is a symlink)?
pub fn is_regular_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_create_recordings_looks_before_creating() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::new(&d.path().join("spool"));
        assert!(!spool.can_create_recordings(), "no spool at all");
        std::fs::create_dir(&spool.root).unwrap();
        assert!(spool.can_create_recordings(), "ensure() will make active/");
        std::fs::write(spool.state_dir(State::Active), "not a directory\n").unwrap();
        assert!(!spool.can_create_recordings());
        std::fs::remove_file(spool.state_dir(State::Active)).unwrap();
        spool.ensure().unwrap();
        assert!(spool.can_create_recordings());
        assert!(
            std::fs::read_dir(spool.state_dir(State::Active))
                .unwrap()
                .next()
                .is_none(),
            "nothing was created by asking"
        );
    }

    #[test]
    fn ids_sort_by_time_and_are_safe() {
        let t1 = time::OffsetDateTime::from_unix_timestamp(1_795_320_000).unwrap();
        let t2 = t1 + time::Duration::seconds(1);
        let a = new_id("alice", t1);
        let b = new_id("../evil user", t2);
        assert!(a.starts_with("20261122T040000Z-alice-"), "{a}");
        assert!(a < b);
        assert!(valid_id(&a) && valid_id(&b), "{b}");
        assert!(!valid_id("../x") && !valid_id(".lock") && !valid_id("a/b"));
    }

    #[test]
    fn states_and_lock() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::new(t.path());
        s.ensure().unwrap();
        let d = s.create_active("20260101T000000Z-a-1").unwrap();
        let l = lock_new(&d).unwrap().expect("free lock");
        assert!(
            try_lock(&d).unwrap().is_none() && !lock_is_free(&d),
            "second lock must fail while held"
        );
        assert!(lock_new(&d).unwrap().is_none());
        assert!(
            !d.join(LEGACY_LOCK).exists(),
            "the lock is the directory's, no file"
        );
        drop(l);
        assert!(lock_is_free(&d));
        let g = try_lock(&d).unwrap().expect("free again");
        assert!(lock_new(&d).unwrap().is_none(), "flush's lock excludes too");
        drop(g);
        create_exclusive(&d, "x", 0o600).unwrap();
        assert!(create_exclusive(&d, "x", 0o600).is_err(), "O_EXCL");
        // The lock follows the directory when it moves between states.
        let held = lock_new(&d).unwrap().unwrap();
        let q = s
            .move_to("20260101T000000Z-a-1", State::Active, State::Queue)
            .unwrap();
        assert!(try_lock(&q).unwrap().is_none() && !lock_is_free(&q));
        drop(held);
        assert!(try_lock(&q).unwrap().is_some());
        assert_eq!(
            s.list(State::Queue).unwrap(),
            vec!["20260101T000000Z-a-1".to_string()]
        );
        assert_eq!(s.find("20260101T000000Z-a-1").unwrap().0, State::Queue);
    }

    #[test]
    fn a_recording_makes_the_state_directories_only_when_they_are_missing() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::new(t.path());
        let d = s.create_recording("20260101T000000Z-a-3").unwrap();
        assert!(d.is_dir() && State::ALL.iter().all(|st| s.state_dir(*st).is_dir()));
        assert!(s.create_recording("20260101T000000Z-a-4").is_ok());
        let e = Spool::new(&t.path().join("missing"))
            .create_recording("20260101T000000Z-a-5")
            .unwrap_err();
        assert!(format!("{e:#}").contains("does not exist"), "{e:#}");
        let file = t.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let e = Spool::new(&file).must_exist().unwrap_err();
        assert!(format!("{e:#}").contains("is not a directory"), "{e:#}");
    }

    #[test]
    fn a_legacy_lock_file_held_by_an_old_writer_still_counts() {
        let t = tempfile::tempdir().unwrap();
        let s = Spool::new(t.path());
        s.ensure().unwrap();
        let d = s.create_active("20260101T000000Z-a-2").unwrap();
        // A writer of the previous version: `.lock` created and flocked, the directory itself not locked.
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(d.join(LEGACY_LOCK))
            .unwrap();
        let old = Flock::lock(f, FlockArg::LockExclusiveNonblock).unwrap();
        assert!(try_lock(&d).unwrap().is_none() && !lock_is_free(&d));
        drop(old);
        let l = try_lock(&d)
            .unwrap()
            .expect("free once the old writer is gone");
        assert!(lock_new(&d).unwrap().is_none());
        drop(l);
        assert!(lock_is_free(&d));
    }

    #[test]
    fn a_symlink_is_not_locked_through() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(try_lock(&link).is_err() && lock_new(&link).is_err());
    }
}
