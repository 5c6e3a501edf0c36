//! Spool layout: state directories, recording ids, exclusive file creation and the per-recording lock.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};

/// The states a recording moves through; each is a directory of the spool, moves are atomic renames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Being recorded (the writer holds `.lock`).
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
pub const LOCK: &str = ".lock";

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

    /// Make sure the state directories exist (mode 0770; the spool root itself is made by install.sh).
    pub fn ensure(&self) -> Result<()> {
        if !self.root.is_dir() {
            bail!(
                "spool directory {} does not exist (spool.dir; install.sh creates it root:auditty 0770)",
                self.root.display()
            );
        }
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

    /// Recording ids in a state, oldest first (ids sort by time).
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
            {
                ids.push(name.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Where a recording is now.
    pub fn find(&self, id: &str) -> Option<(State, PathBuf)> {
        if !valid_id(id) {
            return None;
        }
        State::ALL
            .into_iter()
            .map(|st| (st, self.recording_dir(st, id)))
            .find(|(_, p)| p.is_dir())
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

/// Take the recording's lock without waiting; `None` if someone (a live writer, another flush) holds it.
pub fn try_lock(dir: &Path) -> Result<Option<Flock<File>>> {
    let p = dir.join(LOCK);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&p)
        .with_context(|| format!("cannot open lock {}", p.display()))?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e).with_context(|| format!("cannot lock {}", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let l = try_lock(&d).unwrap().expect("free lock");
        assert!(
            try_lock(&d).unwrap().is_none(),
            "second lock must fail while held"
        );
        drop(l);
        assert!(try_lock(&d).unwrap().is_some());
        create_exclusive(&d, "x", 0o600).unwrap();
        assert!(create_exclusive(&d, "x", 0o600).is_err(), "O_EXCL");
        s.move_to("20260101T000000Z-a-1", State::Active, State::Queue)
            .unwrap();
        assert_eq!(
            s.list(State::Queue).unwrap(),
            vec!["20260101T000000Z-a-1".to_string()]
        );
        assert_eq!(s.find("20260101T000000Z-a-1").unwrap().0, State::Queue);
    }
}
