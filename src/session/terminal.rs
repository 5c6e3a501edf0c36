//! The user's terminal (stdin): raw and exclusive while the session runs, restored on every exit path (drop, error,
//! panic).

use std::os::fd::AsFd;
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
