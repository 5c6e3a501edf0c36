//! A private mount namespace with a small tmpfs mounted over a test's spool: a real full disk, for the root user
//! too, without touching the machine's filesystems.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A private mount namespace whose `path` is a small tmpfs, kept alive by a sleeping process.
pub struct SmallDisk {
    holder: Child,
}

impl SmallDisk {
    pub fn mount(path: &Path, size: &str) -> SmallDisk {
        let mut holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o size=$1,mode=0770 tmpfs \"$2\" && echo ready && exec sleep 600")
            .args(["sh", size])
            .arg(path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n", "mounting a tmpfs in a mount namespace");
        SmallDisk { holder }
    }

    /// `cmd` run inside the namespace.
    pub fn enter(&self, cmd: &Command) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.holder.id().to_string())
            .args(["-m", "--"]);
        c.arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c
    }

    /// A path as seen inside the namespace.
    pub fn inside(&self, p: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{}", self.holder.id(), p.display()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
