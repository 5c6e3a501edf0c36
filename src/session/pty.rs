//! The PTY the recorded shell runs on: open it with the user's settings and start the shell as its session leader.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result, bail};
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::pty::{Winsize, openpty};
use nix::sys::termios::Termios;
use nix::unistd::{Gid, Pid};

use crate::sys::{self, ExecPlan};

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// e.g. /dev/pts/7
    pub name: String,
}

impl Pty {
    /// Open a PTY pair with the given settings and size; both ends close-on-exec, the master non-blocking.
    pub fn open(termios: Option<&Termios>, winsize: Option<&Winsize>) -> Result<Pty> {
        let r = openpty(winsize, termios).context("cannot open a pseudo-terminal (openpty)")?;
        for fd in [&r.master, &r.slave] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("fcntl FD_CLOEXEC")?;
        }
        let fl = OFlag::from_bits_truncate(
            fcntl(&r.master, FcntlArg::F_GETFL).context("fcntl F_GETFL")?,
        );
        fcntl(&r.master, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK)).context("fcntl O_NONBLOCK")?;
        // From the master (TIOCGPTN): no readlink of /proc/self/fd and stat of /dev/pts as ttyname(3) makes.
        let name = sys::pts_name(r.master.as_fd())
            .or_else(|_| nix::unistd::ttyname(&r.slave).map(|p| p.display().to_string()))
            .unwrap_or_default();
        Ok(Pty {
            master: r.master,
            slave: r.slave,
            name,
        })
    }

    /// Start `plan` on the slave as a new session leader, with every gid set to `drop_gid` first when given (the
    /// setgid group is never exec'd into the shell). Exec failures (e.g. a missing shell) are reported here.
    pub fn spawn(&self, plan: &ExecPlan, drop_gid: Option<Gid>) -> Result<Pid> {
        let gid = drop_gid.map(|g| g.as_raw());
        match sys::spawn_on_pty(plan, self.slave.as_fd(), gid).context("cannot start the shell")? {
            Ok(pid) => Ok(pid),
            Err(e) => bail!("cannot execute {}: {e}", plan.path()),
        }
    }
}
