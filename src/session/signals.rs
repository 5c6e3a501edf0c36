//! Signals the relay handles, delivered through a self-pipe (signal-hook) so the poll loop wakes for them.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use signal_hook::consts::*;

/// The signals the relay reacts to.
pub const HANDLED: [i32; 9] = [
    SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGALRM, SIGUSR1, SIGWINCH, SIGCHLD, SIGCONT,
];

pub struct Signals {
    wake: UnixStream,
    flags: Vec<(i32, Arc<AtomicBool>)>,
}

impl Signals {
    pub fn install() -> Result<Signals> {
        let (r, w) = UnixStream::pair().context("socketpair for signals")?;
        r.set_nonblocking(true)?;
        w.set_nonblocking(true)?;
        let mut flags = Vec::new();
        for sig in HANDLED {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(sig, flag.clone())
                .with_context(|| format!("cannot handle signal {sig}"))?;
            signal_hook::low_level::pipe::register(sig, w.try_clone()?)
                .with_context(|| format!("cannot handle signal {sig}"))?;
            flags.push((sig, flag));
        }
        Ok(Signals { wake: r, flags })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Empty the wake-up pipe and return the signals that arrived, in HANDLED order.
    pub fn pending(&self) -> Vec<i32> {
        let mut buf = [0u8; 64];
        while matches!((&self.wake).read(&mut buf), Ok(n) if n > 0) {}
        self.flags
            .iter()
            .filter(|(_, f)| f.swap(false, Ordering::SeqCst))
            .map(|(s, _)| *s)
            .collect()
    }
}

pub fn name(sig: i32) -> &'static str {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str())
        .unwrap_or("SIGUNKNOWN")
}
