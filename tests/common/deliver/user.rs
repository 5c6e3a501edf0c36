//! An unprivileged recorded user and a real setgid installation of the binary, as install.sh would make it, but
//! private to one test: a dedicated user `auditty-t1` (not in the group), a group `auditty-tg`, a setgid copy of
//! the binary, a spool root:auditty-tg 0770, and `/etc/auditty.conf` provided by an overlay on /etc inside a
//! private mount namespace (the host's /etc is never changed).

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

pub const USER: &str = "auditty-t1";
pub const GROUP: &str = "auditty-tg";

fn id_of(args: &[&str]) -> Option<u32> {
    let o = Command::new("getent").args(args).output().ok()?;
    if !o.status.success() {
        return None;
    }
    String::from_utf8_lossy(&o.stdout)
        .split(':')
        .nth(2)?
        .parse()
        .ok()
}

/// Create the test group and user once (serialised between parallel tests). Returns (uid, user's gid, group gid).
pub fn accounts() -> (u32, u32, u32) {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/.auditty-test-accounts.lock")
        .unwrap();
    let _l = Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    if id_of(&["group", GROUP]).is_none() {
        let st = Command::new("groupadd")
            .args(["--system", GROUP])
            .status()
            .unwrap();
        assert!(st.success(), "groupadd {GROUP}");
    }
    if id_of(&["passwd", USER]).is_none() {
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/bin/bash",
                "--user-group",
                USER,
            ])
            .status()
            .unwrap();
        assert!(st.success(), "useradd {USER}");
    }
    let uid = id_of(&["passwd", USER]).unwrap();
    let gid: u32 = {
        let o = Command::new("id").args(["-g", USER]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    };
    let tg = id_of(&["group", GROUP]).unwrap();
    // The recorded user must not be a member of the privileged group.
    let o = Command::new("id").args(["-G", USER]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .any(|g| g == tg.to_string()),
        "{USER} must not be in {GROUP}"
    );
    (uid, gid, tg)
}

/// One private setgid installation.
pub struct Install {
    pub root: tempfile::TempDir,
    pub bin: PathBuf,
    pub spool: PathBuf,
    pub run: PathBuf,
    /// A directory the test user may write (0777).
    pub userdir: PathBuf,
    etc_upper: PathBuf,
    etc_work: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub group_gid: u32,
}

impl Install {
    /// `mail` is the body of the `[mail]` section of /etc/auditty.conf.
    pub fn new(mail: &str) -> Install {
        let (uid, gid, tg) = accounts();
        let root = tempfile::Builder::new()
            .prefix("auditty-sgid-")
            .tempdir()
            .unwrap();
        let r = root.path();
        std::fs::set_permissions(r, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mkdir = |name: &str, mode: u32, group: u32| {
            let p = r.join(name);
            std::fs::create_dir(&p).unwrap();
            chown(&p, Some(0), Some(group)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let bindir = mkdir("bin", 0o755, 0);
        let spool = mkdir("spool", 0o770, tg);
        for st in ["active", "queue", "sent", "failed"] {
            mkdir(&format!("spool/{st}"), 0o770, tg);
        }
        let run = mkdir("run", 0o770, tg);
        let userdir = mkdir("userdir", 0o777, 0);
        let etc_upper = mkdir("etc-upper", 0o755, 0);
        let etc_work = mkdir("etc-work", 0o755, 0);
        let bin = bindir.join("auditty");
        std::fs::copy(super::super::BIN, &bin).unwrap();
        chown(&bin, Some(0), Some(tg)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o2755)).unwrap();
        let i = Install {
            root,
            bin,
            spool,
            run,
            userdir,
            etc_upper,
            etc_work,
            uid,
            gid,
            group_gid: tg,
        };
        i.write_config(
            &format!(
                "[spool]\ndir = {:?}\nrun_dir = {:?}\n[syslog]\ntarget = \"none\"\n[mail]\n{mail}\n",
                i.spool, i.run
            ),
            0o644,
            0,
        );
        i
    }

    /// Replace /etc/auditty.conf (as seen in the namespace) with `text`, `mode` and owner `uid`.
    pub fn write_config(&self, text: &str, mode: u32, uid: u32) {
        let p = self.etc_upper.join("auditty.conf");
        std::fs::write(&p, text).unwrap();
        chown(&p, Some(uid), Some(0)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// `cmd` run inside a private mount namespace where /etc has our auditty.conf.
    pub fn in_ns(&self, cmd: &[&str]) -> Command {
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc && exec \"$@\"",
                self.etc_upper.display(),
                self.etc_work.display()
            ))
            .arg("sh")
            .args(cmd);
        c.env("TERM", "dumb")
            .env("HOME", "/tmp")
            .env("PS1", "PROMPT> ");
        c
    }

    /// `cmd` run as the unprivileged test user (no supplementary groups), inside the namespace.
    pub fn as_user(&self, cmd: &[&str]) -> Command {
        let (u, g) = (self.uid.to_string(), self.gid.to_string());
        let mut v = vec![
            "setpriv",
            "--reuid",
            &u,
            "--regid",
            &g,
            "--clear-groups",
            "--",
        ];
        v.extend_from_slice(cmd);
        self.in_ns(&v)
    }

    /// The setgid binary, as a string for command lines.
    pub fn bin(&self) -> &str {
        self.bin.to_str().unwrap()
    }

    pub fn state(&self, state: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.spool.join(state))
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.root.path().join(p)
    }
}

/// The four gids (real, effective, saved, filesystem) and the supplementary groups of a process.
pub fn gids(pid: u32) -> (Vec<u32>, Vec<u32>) {
    status_gids(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap())
}

/// Parse `Gid:` and `Groups:` lines of a /proc/<pid>/status text.
pub fn status_gids(status: &str) -> (Vec<u32>, Vec<u32>) {
    let line = |k: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    (line("Gid:"), line("Groups:"))
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
