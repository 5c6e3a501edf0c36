//! Stray entries of the spool's state directories (not recording directories), reported by `flush` once each.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::spool::layout::{self, Spool, State};

/// The file, in the spool directory, of the strays `flush` has reported.
pub const FILE: &str = "reported-strays";
/// Its first line; a file that does not start with it is not one `flush` wrote.
const MAGIC: &str = "# auditty reported-strays v1";
/// The most of the file that is read (a larger one is not one `flush` wrote) or written.
pub const MAX_BYTES: u64 = 1 << 20;
/// The readable part of a line (the stray's path) is cut to this many characters; the key before it decides.
const NOTE_CHARS: usize = 100;

/// An entry of a state directory that is not a directory: a symlink, a plain file, a FIFO, a socket, a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stray {
    pub path: PathBuf,
    /// What it is: `a symlink to …`, `a plain file of N bytes`, …
    pub what: String,
    /// What it is, as a key: the SHA-256 (hex) of its state, name, device, inode, file type, size and symlink target.
    /// Any change of these makes it another stray, reported again.
    key: String,
}

/// The strays of a state directory, sorted, read without following them (lstat, readlink).
pub fn of(spool: &Spool, state: State) -> Vec<Stray> {
    let Ok(rd) = std::fs::read_dir(spool.state_dir(state)) else {
        return Vec::new();
    };
    let mut v: Vec<Stray> = rd
        .flatten()
        .filter_map(|e| {
            let md = e.metadata().ok()?; // lstat: a symlink is not followed
            let path = e.path();
            let ft = md.file_type();
            let mut target = Vec::new();
            let what = if ft.is_dir() {
                return None;
            } else if ft.is_symlink() {
                match std::fs::read_link(&path) {
                    Ok(t) => {
                        target = t.as_os_str().as_bytes().to_vec();
                        format!("a symlink to {}", t.display())
                    }
                    Err(_) => "a symlink".to_string(),
                }
            } else if ft.is_file() {
                format!("a plain file of {} bytes", md.len())
            } else {
                "a special file (FIFO, socket or device)".to_string()
            };
            let mut id = format!("{MAGIC}\0{}\0", state.dir_name()).into_bytes();
            id.extend_from_slice(e.file_name().as_bytes());
            id.extend_from_slice(
                format!(
                    "\0{} {} {:o} {}\0",
                    md.dev(),
                    md.ino(),
                    md.mode() & libc::S_IFMT,
                    md.len()
                )
                .as_bytes(),
            );
            id.extend_from_slice(&target);
            let key = crate::deliver::compress::sum_bytes(&id).sha256;
            Some(Stray { path, what, key })
        })
        .collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// The strays of the whole spool, split into those to report now and those an earlier flush reported.
#[derive(Debug, Default)]
pub struct Review {
    /// Not reported before: new, changed since (inode, type, symlink target or size), or back after having gone.
    pub new: Vec<Stray>,
    /// Reported by an earlier flush and unchanged since.
    pub known: Vec<Stray>,
    /// What went wrong with `reported-strays` itself (unreadable, not one flush wrote, cannot be written), each
    /// saying what follows from it; for the administrator.
    pub problems: Vec<String>,
}

/// Sort the spool's strays by `reported-strays` and bring the file up to date: it names exactly the strays there
/// are now (those that have gone are dropped; the file is removed when none is left). A file that cannot be read
/// or is not one `flush` wrote counts as empty, so every stray is reported again, and is replaced.
pub fn review(spool: &Spool) -> Review {
    let current: Vec<Stray> = State::ALL
        .into_iter()
        .flat_map(|st| of(spool, st))
        .collect();
    let path = spool.root.join(FILE);
    let mut review = Review::default();
    remove_stale_temporaries(&spool.root);
    let (reported, trusted) = match read(&path) {
        Ok(keys) => (keys, true),
        Err(why) => {
            review.problems.push(format!(
                "{} {why}: not the list of reported strays auditty flush keeps there, so every stray is reported \
                 again and the file is replaced",
                path.display()
            ));
            (None, false)
        }
    };
    let reported = reported.unwrap_or_default();
    let now: BTreeSet<&str> = current.iter().map(|s| s.key.as_str()).collect();
    let exists = path.symlink_metadata().is_ok();
    let up_to_date = trusted && (reported.iter().map(String::as_str).eq(now.iter().copied()));
    if !up_to_date || (now.is_empty() && exists) {
        let done = if now.is_empty() {
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                // A directory in its place: left as it is, reported.
                Err(e) => Err(format!("cannot remove it: {e}")),
            }
        } else {
            write(&spool.root, &path, &current)
        };
        if let Err(e) = done {
            review.problems.push(format!(
                "cannot update {}, the list of reported strays: {e}; the strays still there are reported again by \
                 the next flush",
                path.display()
            ));
        }
    }
    for s in current {
        if reported.contains(&s.key) {
            review.known.push(s);
        } else {
            review.new.push(s);
        }
    }
    review
}

/// A temporary that `write` left behind (flush killed between its creation and the rename): removed once it is an
/// hour old, so that a flush writing one now is never disturbed. Only plain files of that name; never followed.
fn remove_stale_temporaries(dir: &Path) {
    let prefix = format!(".{FILE}.");
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let stale = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
            && e.metadata().is_ok_and(|m| {
                m.file_type().is_file()
                    && m.modified()
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age >= STALE_TEMPORARY)
            });
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The keys `reported-strays` holds (`None` when there is no such file), or why it is not to be trusted: a symlink
/// (never followed), not a regular file (never blocked on), not owned by this process's user or writable by others,
/// over `MAX_BYTES`, or not in the format `write` writes.
fn read(path: &Path) -> Result<Option<BTreeSet<String>>, String> {
    let f = match layout::open_no_follow(path) {
        Ok(f) => f,
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
            }) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(format!("cannot be read ({e:#})")),
    };
    let md = f.metadata().map_err(|e| format!("cannot be read ({e})"))?;
    let me = nix::unistd::geteuid().as_raw();
    if md.uid() != me {
        return Err(format!(
            "is owned by uid {}, not by uid {me}, who runs flush",
            md.uid()
        ));
    }
    if md.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by others than its owner (mode {:o})",
            md.mode() & 0o7777
        ));
    }
    let mut bytes = Vec::new();
    f.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read ({e})"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("is larger than {MAX_BYTES} bytes"));
    }
    parse(&bytes)
        .map(Some)
        .ok_or_else(|| "is damaged".to_string())
}

/// The keys of a file `write` wrote: its first line `MAGIC`, then one line per stray, the key (64 lowercase hex
/// digits) optionally followed by a space and a note. `None` for anything else.
fn parse(bytes: &[u8]) -> Option<BTreeSet<String>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.strip_suffix('\n')?.split('\n');
    if lines.next()? != MAGIC {
        return None;
    }
    lines
        .map(|l| {
            let (key, note) = l.split_at_checked(64)?;
            let hex = key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            (hex && (note.is_empty() || note.starts_with(' '))).then(|| key.to_string())
        })
        .collect()
}

/// Replace `path` with the list of `strays`: a new file (O_EXCL, mode 0600, owned by whoever runs flush) in `dir`,
/// synced, renamed over it. Each line is the stray's key and, for whoever reads it, its path (escaped, cut short);
/// bounded by `MAX_BYTES` (the paths are left out first; what still does not fit is reported again next time).
fn write(dir: &Path, path: &Path, strays: &[Stray]) -> Result<(), String> {
    let lines = |with_note: bool| {
        let mut out = format!("{MAGIC}\n");
        for s in strays {
            let line = if with_note {
                let note: String = format!("{:?}", s.path).chars().take(NOTE_CHARS).collect();
                format!("{} {note}\n", s.key)
            } else {
                format!("{}\n", s.key)
            };
            if (out.len() + line.len()) as u64 > MAX_BYTES {
                break;
            }
            out += &line;
        }
        out
    };
    let mut text = lines(true);
    if text.lines().count() <= strays.len() {
        text = lines(false);
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{FILE}."))
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| format!("cannot rename it into place: {}", e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool() -> (tempfile::TempDir, Spool) {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::new(d.path());
        s.ensure().unwrap();
        (d, s)
    }

    fn paths(v: &[Stray]) -> Vec<&Path> {
        v.iter().map(|s| s.path.as_path()).collect()
    }

    #[test]
    fn a_stray_is_reported_once_while_it_stays_the_same() {
        let (_d, s) = spool();
        let link = s
            .state_dir(State::Queue)
            .join("20261203T101500Z-alice-00000000000f");
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        let file = s.state_dir(State::Failed).join("notes.txt");
        std::fs::write(&file, b"not a recording").unwrap();
        s.create_active("20261203T101500Z-alice-000000000001")
            .unwrap();
        let first = review(&s);
        assert_eq!(
            paths(&first.new),
            [link.as_path(), file.as_path()],
            "{first:?}"
        );
        assert_eq!(first.new[0].what, "a symlink to /etc");
        assert_eq!(first.new[1].what, "a plain file of 15 bytes");
        assert!(
            first.known.is_empty() && first.problems.is_empty(),
            "{first:?}"
        );
        let md = std::fs::symlink_metadata(s.root.join(FILE)).unwrap();
        assert!(md.is_file());
        assert_eq!(md.mode() & 0o7777, 0o600);
        assert_eq!(md.uid(), nix::unistd::geteuid().as_raw());
        let text = std::fs::read_to_string(s.root.join(FILE)).unwrap();
        assert!(text.starts_with(&format!("{MAGIC}\n")), "{text}");
        assert!(text.contains("notes.txt"), "{text}");
        assert_eq!(text.lines().count(), 3, "{text}");
        for _ in 0..2 {
            let again = review(&s);
            assert!(
                again.new.is_empty() && again.problems.is_empty(),
                "{again:?}"
            );
            assert_eq!(paths(&again.known), [link.as_path(), file.as_path()]);
            assert_eq!(std::fs::read_to_string(s.root.join(FILE)).unwrap(), text);
        }
        // Nothing of them was touched.
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/etc"));
        assert_eq!(std::fs::read(&file).unwrap(), b"not a recording");
    }

    #[test]
    fn a_stray_that_changes_or_comes_back_is_reported_again() {
        let (_d, s) = spool();
        let p = s.state_dir(State::Queue).join("x");
        std::os::unix::fs::symlink("/etc", &p).unwrap();
        assert_eq!(paths(&review(&s).new), [p.as_path()]);
        let changes: [&dyn Fn(); 4] = [
            // Another target.
            &|| {
                std::fs::remove_file(&p).unwrap();
                std::os::unix::fs::symlink("/root", &p).unwrap();
            },
            // Another type.
            &|| {
                std::fs::remove_file(&p).unwrap();
                std::fs::write(&p, b"abc").unwrap();
            },
            // Another size.
            &|| std::fs::write(&p, b"abcd").unwrap(),
            // Another inode, same type and size.
            &|| {
                let q = p.with_file_name("x.new");
                std::fs::write(&q, b"efgh").unwrap();
                std::fs::rename(&q, &p).unwrap();
            },
        ];
        for change in changes {
            change();
            let r = review(&s);
            assert_eq!(paths(&r.new), [p.as_path()], "{r:?}");
            assert!(r.known.is_empty(), "{r:?}");
            assert!(review(&s).new.is_empty(), "reported once");
        }
        // Gone: its entry is dropped (the file with it, none being left); back: reported again.
        let back = std::fs::read(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        let r = review(&s);
        assert!(
            r.new.is_empty() && r.known.is_empty() && r.problems.is_empty(),
            "{r:?}"
        );
        assert!(!s.root.join(FILE).exists());
        std::fs::write(&p, &back).unwrap();
        assert_eq!(paths(&review(&s).new), [p.as_path()]);
        // One of two goes: the other stays known, and only it is listed.
        let other = s.state_dir(State::Sent).join("y");
        std::fs::write(&other, b"").unwrap();
        assert_eq!(paths(&review(&s).new), [other.as_path()]);
        std::fs::remove_file(&p).unwrap();
        let r = review(&s);
        assert_eq!(
            (paths(&r.new), paths(&r.known)),
            (vec![], vec![other.as_path()])
        );
        assert_eq!(
            std::fs::read_to_string(s.root.join(FILE))
                .unwrap()
                .lines()
                .count(),
            2
        );
        std::fs::write(&p, &back).unwrap();
        assert_eq!(paths(&review(&s).new), [p.as_path()]);
    }

    #[test]
    fn a_list_flush_did_not_write_counts_as_empty_and_is_replaced() {
        let (d, s) = spool();
        let p = s.state_dir(State::Queue).join("x");
        std::fs::write(&p, b"stray").unwrap();
        let list = s.root.join(FILE);
        review(&s);
        let good = std::fs::read(&list).unwrap();
        let secret = d.path().join("secret");
        std::fs::write(&secret, &good).unwrap();
        let damage: [(&str, &dyn Fn()); 5] = [
            ("is damaged", &|| {
                std::fs::write(&list, b"garbage\n").unwrap()
            }),
            ("is damaged", &|| {
                let mut b = good.clone();
                b.extend_from_slice(b"not a key\n");
                std::fs::write(&list, b).unwrap()
            }),
            ("larger than", &|| {
                let mut b = good.clone();
                b.resize(MAX_BYTES as usize + 1, b'a');
                std::fs::write(&list, b).unwrap()
            }),
            ("is a symlink, which is never followed", &|| {
                std::fs::remove_file(&list).unwrap();
                std::os::unix::fs::symlink(&secret, &list).unwrap();
            }),
            ("writable by others than its owner (mode 622)", &|| {
                std::fs::write(&list, &good).unwrap();
                std::fs::set_permissions(&list, std::fs::Permissions::from_mode(0o622)).unwrap();
            }),
        ];
        for (why, damage) in damage {
            damage();
            let r = review(&s);
            assert_eq!(paths(&r.new), [p.as_path()], "{why}: reported again: {r:?}");
            assert_eq!(r.problems.len(), 1, "{r:?}");
            assert!(r.problems[0].contains(why), "{why}: {:?}", r.problems);
            let md = std::fs::symlink_metadata(&list).unwrap();
            assert!(
                md.is_file() && md.mode() & 0o7777 == 0o600,
                "{why}: replaced"
            );
            assert_eq!(std::fs::read(&list).unwrap(), good, "{why}");
            let r = review(&s);
            assert!(r.new.is_empty() && r.problems.is_empty(), "{why}: {r:?}");
        }
        assert_eq!(
            std::fs::read(&secret).unwrap(),
            good,
            "the symlink was not followed"
        );
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&list, Some(4242), None).unwrap();
            let r = review(&s);
            assert_eq!(paths(&r.new), [p.as_path()]);
            assert!(
                r.problems[0].contains("is owned by uid 4242"),
                "{:?}",
                r.problems
            );
            assert_eq!(std::fs::metadata(&list).unwrap().uid(), 0);
        }
    }

    #[test]
    fn a_list_that_cannot_be_written_is_reported_and_the_strays_with_it() {
        let (_d, s) = spool();
        let p = s.state_dir(State::Queue).join("x");
        std::fs::write(&p, b"stray").unwrap();
        std::fs::create_dir(s.root.join(FILE)).unwrap();
        for _ in 0..2 {
            let r = review(&s);
            assert_eq!(paths(&r.new), [p.as_path()], "{r:?}");
            assert_eq!(r.problems.len(), 2, "{r:?}");
            assert!(
                r.problems[0].contains("is not a regular file"),
                "{:?}",
                r.problems
            );
            assert!(
                r.problems[1].starts_with(&format!(
                    "cannot update {}, the list of reported strays: cannot rename it into place",
                    s.root.join(FILE).display()
                )) && r.problems[1].contains("reported again by the next flush"),
                "{:?}",
                r.problems
            );
        }
        assert!(s.root.join(FILE).is_dir(), "left as it is");
        let leftovers: Vec<_> = std::fs::read_dir(&s.root)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!(".{FILE}."))
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_temporary_left_by_a_killed_flush_is_removed_once_an_hour_old() {
        let (_d, spool) = spool();
        let old = spool.root.join(format!(".{FILE}.abc123"));
        let fresh = spool.root.join(format!(".{FILE}.def456"));
        let other = spool.root.join("keep-me");
        for p in [&old, &fresh, &other] {
            std::fs::write(p, "x").unwrap();
        }
        let hour_ago =
            std::time::SystemTime::now() - STALE_TEMPORARY - std::time::Duration::from_secs(5);
        for p in [&old, &other] {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(hour_ago)
                .unwrap();
        }
        review(&spool);
        assert!(!old.exists(), "the stale temporary is removed");
        assert!(
            fresh.exists(),
            "a temporary being written now is left alone"
        );
        assert!(other.exists(), "other files are not touched");
    }

    #[test]
    fn without_strays_nothing_is_written() {
        let (_d, s) = spool();
        s.create_active("20261203T101500Z-alice-000000000001")
            .unwrap();
        let r = review(&s);
        assert!(
            r.new.is_empty() && r.known.is_empty() && r.problems.is_empty(),
            "{r:?}"
        );
        assert!(!s.root.join(FILE).exists());
    }
}
