//! The user's terminal (stdin): raw and exclusive while the session runs, restored on every exit path (drop, error,
//! panic).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use crate::sys;

/// The saved terminal state, for the panic hook (Drop does not run with panic = "abort").
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Restores the saved terminal settings when dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Put stdin's terminal in raw mode (cfmakeraw), remembering its settings.
    pub fn enter() -> Result<RawMode> {
        let saved =
            tcgetattr(std::io::stdin()).context("cannot read the terminal settings (tcgetattr)")?;
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved.clone());
        let mode = RawMode { saved };
        mode.reapply();
        Ok(mode)
    }

    /// The settings from before raw mode.
    pub fn saved(&self) -> &Termios {
        &self.saved
    }

    /// (Re-)apply raw mode, e.g. after SIGCONT when a job-control stop may have reset the terminal.
    pub fn reapply(&self) {
        let mut raw = self.saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &raw);
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore(&self.saved);
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Put the saved settings back. TCSANOW, not TCSADRAIN: output still queued was already processed when written,
/// and a terminal that does not drain (flow-stopped, or nobody reading it) must not hold the exit for ever.
/// SIGTTOU is blocked meanwhile, so a relay that ended up in the background is not stopped by its own tcsetattr.
fn restore(saved: &Termios) {
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let old = ttou.thread_swap_mask(SigmaskHow::SIG_BLOCK).ok();
    let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
    if let Some(old) = old {
        let _ = old.thread_set_mask();
    }
}

/// Whether `Exclusive` set the terminal's exclusive mode (so that the panic hook clears it).
static EXCLUSIVE_SET: AtomicBool = AtomicBool::new(false);

/// The user's terminal in exclusive mode while the session runs: nobody without CAP_SYS_ADMIN can open it again.
/// The recorded shell holds no descriptor of it, so it cannot reopen it by name (`$SSH_TTY`, the relay's tty in
/// /proc) to show output or read keystrokes past the recording. Cleared again when dropped, unless it was exclusive
/// already before.
pub struct Exclusive {
    set: bool,
}

impl Exclusive {
    /// Exclusive mode on stdin's terminal. An error (a terminal that does not support it) is returned for the
    /// caller to report; the session can still be recorded without it.
    pub fn enter() -> std::io::Result<Exclusive> {
        let fd = std::io::stdin();
        if sys::tty_exclusive(fd.as_fd())? {
            return Ok(Exclusive { set: false });
        }
        sys::set_tty_exclusive(fd.as_fd(), true)?;
        EXCLUSIVE_SET.store(true, Ordering::SeqCst);
        Ok(Exclusive { set: true })
    }
}

impl Exclusive {
    /// Whether this session set exclusive mode (rather than finding it set).
    pub fn is_ours(&self) -> bool {
        self.set
    }
}

/// The user's terminal as the spool writer keeps it, to put it back when the relay dies without doing so itself
/// (SIGKILL runs no Drop): the relay's raw mode and exclusive mode would otherwise stay on a terminal the user goes
/// on using, e.g. the one they ran `su - bob` on (an unopenable terminal makes `sudo` and `ssh` fail to ask for a
/// password). A descriptor of its own (taken at the fork), the settings from before raw mode, and whether exclusive
/// mode is the session's.
pub struct SavedTerminal {
    fd: OwnedFd,
    saved: Option<Termios>,
    exclusive_ours: bool,
}

impl std::os::fd::AsRawFd for SavedTerminal {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl SavedTerminal {
    /// In the writer, right after its fork: stdin is still the user's terminal. `started`: the raw and exclusive
    /// modes of a shell started before the fork; without it (the writer is forked first) the terminal is as the user
    /// left it, and exclusive mode set later is the session's.
    pub fn keep(started: Option<(&RawMode, Option<&Exclusive>)>) -> Option<SavedTerminal> {
        let stdin = std::io::stdin();
        let fd = stdin.as_fd().try_clone_to_owned().ok()?;
        let (saved, exclusive_ours) = match started {
            Some((raw, exclusive)) => (
                Some(raw.saved().clone()),
                exclusive.is_some_and(Exclusive::is_ours),
            ),
            None => (
                tcgetattr(&fd).ok(),
                sys::tty_exclusive(fd.as_fd()).is_ok_and(|on| !on),
            ),
        };
        Some(SavedTerminal {
            fd,
            saved,
            exclusive_ours,
        })
    }

    /// The relay died: clear the session's exclusive mode and put the settings back. Errors are ignored: a terminal
    /// that is gone (hung up) needs neither.
    pub fn restore(self) {
        if self.exclusive_ours {
            let _ = sys::set_tty_exclusive(self.fd.as_fd(), false);
        }
        if let Some(saved) = &self.saved {
            // The writer has no controlling terminal and ignores SIGTTOU: tcsetattr cannot stop it.
            let _ = tcsetattr(&self.fd, SetArg::TCSANOW, saved);
        }
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        if self.set {
            let _ = sys::set_tty_exclusive(std::io::stdin().as_fd(), false);
            EXCLUSIVE_SET.store(false, Ordering::SeqCst);
        }
    }
}

/// Install a panic hook that restores the terminal before the default hook reports the panic.
pub fn restore_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(saved) = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take() {
            restore(&saved);
        }
        if EXCLUSIVE_SET.swap(false, Ordering::SeqCst) {
            let _ = sys::set_tty_exclusive(std::io::stdin().as_fd(), false);
        }
        default(info);
    }));
}
