//! A terminal for one test session: a real PTY whose slave becomes the controlling terminal of the program
//! (`setsid -c`), a reader thread collecting output, and a way to hang up by closing the master, as sshd does when a
//! connection drops.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::chown;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{Winsize, grantpt, posix_openpt, ptsname_r, unlockpt};
use std::os::unix::fs::OpenOptionsExt;

#[derive(Default)]
struct Output {
    bytes: Vec<u8>,
    closed: bool,
    /// Why the reader stopped.
    why: String,
}

pub struct Term {
    /// The program's pid (the `setsid -c` exec chain keeps it).
    pub pid: u32,
    /// Path of the PTY slave.
    pub pts: PathBuf,
    master: Option<File>,
    out: Arc<(Mutex<Output>, Condvar)>,
    stop: Option<OwnedFd>,
    exit: mpsc::Receiver<ExitStatus>,
    status: Option<ExitStatus>,
}

impl Term {
    /// Start `cmd` on a new PTY (80x24) as its controlling terminal. `owner` (uid, gid) gets the slave, as login does.
    pub fn spawn(cmd: &Command, owner: Option<(u32, u32)>) -> Term {
        let ws = Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // Both ends close-on-exec, so no other program (nor a parallel test's child) keeps the master open.
        let master =
            posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).expect("posix_openpt");
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let pts = PathBuf::from(ptsname_r(&master).unwrap());
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(&pts)
            .unwrap();
        set_winsize(&slave, &ws);
        let master: OwnedFd = master.into();
        if let Some((u, g)) = owner {
            chown(&pts, Some(u), Some(g)).unwrap();
            std::fs::set_permissions(&pts, std::os::unix::fs::PermissionsExt::from_mode(0o620))
                .unwrap();
        }
        let mut c = Command::new("setsid");
        c.arg("-c").arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            c.current_dir(d);
        }
        c.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        let mut child = c.spawn().expect("spawn setsid -c …");
        drop(c);
        let pid = child.id();
        let master = File::from(master);
        let reader = master.try_clone().unwrap();
        // We keep a slave descriptor until the program has exited and the reader has taken its output: when the
        // last slave descriptor closes, a read of the master may report EIO before the last bytes (seen under
        // gVisor).
        let (exited_r, exited_w) = nix::unistd::pipe().unwrap();
        let (drained_tx, drained_rx) = mpsc::channel::<()>();
        let (tx, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let status = child.wait().unwrap();
            let _ = nix::unistd::write(&exited_w, b"x");
            let _ = drained_rx.recv_timeout(Duration::from_secs(5));
            drop(slave);
            let _ = tx.send(status);
        });
        let (stop_r, stop_w) = nix::unistd::pipe().unwrap();
        let out: Arc<(Mutex<Output>, Condvar)> = Arc::default();
        let out2 = out.clone();
        std::thread::spawn(move || {
            let mut reader = reader;
            let mut buf = [0u8; 65536];
            let mut exited = false;
            loop {
                let mut fds = [
                    PollFd::new(reader.as_fd(), PollFlags::POLLIN),
                    PollFd::new(stop_r.as_fd(), PollFlags::POLLIN),
                    PollFd::new(exited_r.as_fd(), PollFlags::POLLIN),
                ];
                if poll(&mut fds, PollTimeout::NONE).is_err() {
                    continue;
                }
                if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                    break; // hangup requested: drop our master descriptor
                }
                let data = fds[0].revents().is_some_and(|r| !r.is_empty());
                if !exited && fds[2].revents().is_some_and(|r| !r.is_empty()) && !data {
                    // The program is gone and nothing more is readable: let the waiter close the slave.
                    exited = true;
                    let _ = drained_tx.send(());
                    continue;
                }
                if !data {
                    continue;
                }
                match reader.read(&mut buf) {
                    Ok(0) => {
                        out2.0.lock().unwrap().why = "EOF".into();
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        out2.0.lock().unwrap().why = e.to_string();
                        break;
                    }
                    Ok(n) => {
                        let (m, cv) = &*out2;
                        m.lock().unwrap().bytes.extend_from_slice(&buf[..n]);
                        cv.notify_all();
                    }
                }
            }
            let (m, cv) = &*out2;
            m.lock().unwrap().closed = true;
            cv.notify_all();
        });
        Term {
            pid,
            pts,
            master: Some(master),
            out,
            stop: Some(stop_w),
            exit,
            status: None,
        }
    }

    /// Everything the program wrote so far.
    pub fn output(&self) -> Vec<u8> {
        self.out.0.lock().unwrap().bytes.clone()
    }

    pub fn output_text(&self) -> String {
        String::from_utf8_lossy(&self.output()).into_owned()
    }

    /// Wait until the output contains `s`.
    pub fn expect(&self, s: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        let (m, cv) = &*self.out;
        let mut g = m.lock().unwrap();
        loop {
            if String::from_utf8_lossy(&g.bytes).contains(s) {
                return;
            }
            let now = Instant::now();
            if now >= end || g.closed {
                let tail = &g.bytes[g.bytes.len().saturating_sub(600)..];
                panic!(
                    "expected {s:?} on the terminal within {timeout:?}; got {} bytes{}, ending with {:?}",
                    g.bytes.len(),
                    if g.closed {
                        format!(" (terminal closed: {})", g.why)
                    } else {
                        String::new()
                    },
                    String::from_utf8_lossy(tail)
                );
            }
            g = cv.wait_timeout(g, end - now).unwrap().0;
        }
    }

    pub fn send(&mut self, s: &str) {
        self.master
            .as_mut()
            .expect("terminal hung up")
            .write_all(s.as_bytes())
            .unwrap();
    }

    /// Close the master: the terminal hangs up (SIGHUP to the session, EIO on reads).
    pub fn hangup(&mut self) {
        self.master = None;
        if let Some(w) = self.stop.take() {
            let _ = nix::unistd::write(&w, b"x");
        }
    }

    /// Wait for the program to exit.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let s = self.exit.recv_timeout(timeout).unwrap_or_else(|_| {
            panic!(
                "the session did not end within {timeout:?}: {}",
                self.output_text()
            )
        });
        self.status = Some(s);
        s
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if self.status.is_none() && self.exit.try_recv().is_err() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        self.hangup();
    }
}

/// Set the terminal size with the real stty (its stdin is the terminal).
fn set_winsize(f: &File, ws: &Winsize) {
    let st = Command::new("stty")
        .args([
            "rows",
            &ws.ws_row.to_string(),
            "cols",
            &ws.ws_col.to_string(),
        ])
        .stdin(Stdio::from(f.try_clone().unwrap()))
        .status()
        .unwrap();
    assert!(st.success(), "stty");
}
