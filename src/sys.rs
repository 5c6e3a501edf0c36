//! The only module with `unsafe`: fork, exec, ioctls and prctl that the safe crates do not wrap.

use std::ffi::{CString, OsStr, OsString, c_char};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::pty::Winsize;
use nix::unistd::Pid;

/// Everything `execve` needs, allocated before `fork` so the child only makes async-signal-safe calls.
pub struct ExecPlan {
    path: CString,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
}

impl ExecPlan {
    /// `env` holds `NAME=value` entries.
    pub fn new(path: &OsStr, argv: &[OsString], env: &[OsString]) -> io::Result<Self> {
        let cstr = |s: &OsStr| {
            CString::new(s.as_bytes()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("NUL byte in {s:?}"))
            })
        };
        let path = cstr(path)?;
        let argv: Vec<CString> = argv.iter().map(|a| cstr(a)).collect::<Result<_, _>>()?;
        let envp: Vec<CString> = env.iter().map(|e| cstr(e)).collect::<Result<_, _>>()?;
        let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<*const c_char> = envp.iter().map(|e| e.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        Ok(ExecPlan {
            path,
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
        })
    }

    pub fn path(&self) -> &str {
        self.path.to_str().unwrap_or("?")
    }

    /// Replace this process with the planned program (used on paths that never fork, e.g. no terminal), with
    /// default signal dispositions and an empty mask: the Rust runtime ignores SIGPIPE, and an ignored signal
    /// stays ignored across execve (`yes | head -1` would then print "Broken pipe" in `ssh host cmd`).
    pub fn exec(&self) -> io::Error {
        reset_signals(proc_status().not_default);
        // SAFETY: path, argv and envp are NUL-terminated C strings owned by `self`, and both pointer arrays end in NULL.
        unsafe {
            libc::execve(
                self.path.as_ptr(),
                self.argv_ptrs.as_ptr(),
                self.envp_ptrs.as_ptr(),
            )
        };
        io::Error::last_os_error()
    }
}

/// A small `/proc` file, read in one go. (`std::fs::read_to_string` stats it, then grows its buffer from 32 bytes:
/// up to eight reads on the way to the shell, and the kernel formats the whole file again for each.)
pub fn read_proc(path: &str) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len == buf.len() {
                    buf.resize(len * 2, 0);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// Which side of a fork we are on.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// What one read of `/proc/self/status` tells about this process.
struct ProcStatus {
    /// The signals whose disposition is not the default (ignored or caught), bit `n - 1` for signal `n`; every
    /// signal when /proc cannot be read.
    not_default: u64,
}

fn proc_status() -> ProcStatus {
    let text = read_proc("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let mask = |name: &str| field(name).and_then(|v| u64::from_str_radix(v, 16).ok());
    ProcStatus {
        not_default: match (mask("SigIgn"), mask("SigCgt")) {
            (Some(i), Some(c)) => i | c,
            _ => u64::MAX,
        },
    }
}

/// Number of threads of this process (fork is only safe while it is 1); 1 when /proc cannot be read. procfs gives
/// `/proc/self/task` a link count of 2 plus the number of threads: one stat(2), where reading `/proc/self/status`
/// (which the kernel formats in full, memory figures included) costs several times as much on the way to the shell.
pub fn thread_count() -> usize {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/task") {
        Ok(m) if m.nlink() > 2 => (m.nlink() - 2) as usize,
        _ => 1,
    }
}

/// fork(2), refused unless the process is single-threaded, so the child is a faithful copy.
pub fn fork_single_threaded() -> io::Result<Forked> {
    if thread_count() != 1 {
        return Err(io::Error::other(
            "refusing to fork a multi-threaded process",
        ));
    }
    // SAFETY: the process has exactly one thread (checked above), so the child inherits no lock held by another thread.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid))),
    }
}

/// What the shell's child needs between clone and exec: plain values, and pointers into memory that the parent keeps
/// alive (it is suspended until the child has exec'd or exited).
#[repr(C)]
struct SpawnArgs {
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    slave: libc::c_int,
    not_default: u64,
    /// Set as the real, effective and saved gid before exec, when the parent still holds the setgid group.
    gid: Option<libc::gid_t>,
    /// The errno of a failed execve, stored by the child before it exits (0 while exec has not failed).
    err: AtomicI32,
}

/// The child side of `spawn_on_pty`, on its own stack in the parent's (suspended) address space.
extern "C" fn spawn_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `SpawnArgs` that `spawn_on_pty` keeps alive until this child has exec'd or exited.
    let a = unsafe { &*(arg as *const SpawnArgs) };
    // SAFETY: only raw, async-signal-safe syscalls (setsid, ioctl, dup2, close), no allocation; every signal is
    // blocked (the parent blocked them all before clone) until reset_signals has set the dispositions back.
    unsafe {
        libc::setsid();
        libc::ioctl(a.slave, libc::TIOCSCTTY as _, 0);
        libc::dup2(a.slave, 0);
        libc::dup2(a.slave, 1);
        libc::dup2(a.slave, 2);
        if a.slave > 2 {
            libc::close(a.slave);
        }
    }
    if let Some(gid) = a.gid {
        // SAFETY: a raw syscall (glibc's setresgid would broadcast to threads, which this child is not); on failure
        // the child never execs the shell with the parent's group.
        let r = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
        if r != 0 {
            // SAFETY: errno of this thread; _exit is async-signal-safe.
            unsafe {
                let errno = *libc::__errno_location();
                a.err.store(errno.max(1), Ordering::SeqCst);
                libc::_exit(127)
            }
        }
    }
    reset_signals(a.not_default);
    // SAFETY: path, argv and envp point into the parent's ExecPlan (NUL-terminated strings, NULL-terminated arrays),
    // alive while the parent waits; execve and _exit are async-signal-safe.
    unsafe {
        libc::execve(a.path, a.argv, a.envp);
        let errno = *libc::__errno_location();
        a.err.store(errno.max(1), Ordering::SeqCst);
        libc::_exit(127)
    }
}

/// Start a child that becomes a session leader with `slave` as controlling terminal and stdio, default signal
/// dispositions and an empty mask, then execs `plan`. Between clone and exec only async-signal-safe calls are made.
///
/// The child is made as posix_spawn(3) makes it: clone(CLONE_VM|CLONE_VFORK) on a stack of its own, sharing our
/// memory while we are suspended until it has exec'd (or exited). Unlike fork, nothing of our address space is
/// copied and then torn down again by its exec, which was most of the cost of starting the shell. Since the child
/// runs in our memory, every signal is blocked across the clone, so none of our handlers can run in it before it has
/// reset them.
///
/// `gid`: set as the child's real, effective and saved gid before its exec (the setgid group, still held by the
/// parent, is given up by the child).
///
/// Returns the child's pid, `Ok(Err(e))` when exec (or the gid change) failed (the child has been reaped), `Err` when
/// no child could be made.
pub fn spawn_on_pty(
    plan: &ExecPlan,
    slave: BorrowedFd<'_>,
    gid: Option<libc::gid_t>,
) -> io::Result<io::Result<Pid>> {
    // Read before the clone (the child may not allocate): which signals the child must set back to default. (Other
    // threads would not matter here, unlike for fork: the child only makes raw syscalls, and signals sent to this
    // process are never delivered to it.)
    let status = proc_status();
    let args = SpawnArgs {
        path: plan.path.as_ptr(),
        argv: plan.argv_ptrs.as_ptr(),
        envp: plan.envp_ptrs.as_ptr(),
        slave: slave.as_raw_fd(),
        not_default: status.not_default,
        gid,
        err: AtomicI32::new(0),
    };
    // The child's stack: it needs a few hundred bytes; pages it does not touch are never faulted in.
    const STACK: usize = 64 << 10;
    let mut stack: Vec<u8> = Vec::with_capacity(STACK);
    // SAFETY: one past the end of the allocation, rounded down to 16 bytes; the child writes below it only.
    let top = unsafe { stack.as_mut_ptr().add(STACK) } as usize & !15;
    let all = u64::MAX;
    let mut old = 0u64;
    // SAFETY: rt_sigprocmask reads one 8-byte set from `all` and writes the old one into `old`. The raw syscall also
    // blocks glibc's reserved signals, as posix_spawn does.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const u64,
            &mut old as *mut u64,
            8usize,
        )
    };
    // SAFETY: `spawn_child` runs on `stack` (alive, untouched by us until clone returns) with a pointer to `args`
    // (alive until then too); CLONE_VFORK suspends us until the child has exec'd or exited, so nothing else uses
    // this memory meanwhile. SIGCHLD: the child is reaped like any other.
    let pid = unsafe {
        libc::clone(
            spawn_child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &args as *const SpawnArgs as *mut libc::c_void,
        )
    };
    let clone_err = io::Error::last_os_error();
    // SAFETY: as above, restoring the saved mask.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &old as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
    drop(stack);
    if pid == -1 {
        return Err(clone_err);
    }
    let pid = Pid::from_raw(pid);
    match args.err.load(Ordering::SeqCst) {
        0 => Ok(Ok(pid)),
        errno => {
            let _ = nix::sys::wait::waitpid(pid, None);
            Ok(Err(io::Error::from_raw_os_error(errno)))
        }
    }
}

/// Every signal to its default disposition and an empty signal mask, as a freshly exec'd program expects.
/// `not_default` (bit `n - 1` for signal `n`: the SigIgn and SigCgt masks of /proc/self/status, read before the fork)
/// names the signals that are not at their default now; only those are set (a handler would be reset by execve
/// anyway, but not before it, and an ignored signal stays ignored across execve). That is a handful of syscalls
/// instead of 62. Async-signal-safe (raw syscalls only, no allocation), so it may run between fork and exec.
/// glibc's signal(3) refuses the two signals it reserves (32 and 33), which a parent may have left ignored: the raw
/// rt_sigaction does not.
pub fn reset_signals(not_default: u64) {
    // The kernel's struct sigaction with every field zero: SIG_DFL, no flags, no restorer, empty mask. 32 bytes
    // covers the largest layout (handler, flags, restorer, 64-bit mask).
    let dfl = [0u64; 4];
    let empty = 0u64;
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || not_default & (1u64 << (sig - 1)) == 0 {
            continue;
        }
        // SAFETY: rt_sigaction reads one kernel sigaction from `dfl` (valid, large enough) and writes nothing
        // (NULL old action); the set size is the kernel's 8 bytes.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
    // SAFETY: rt_sigprocmask reads one 8-byte signal set from `empty` and writes nothing.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
}

/// poll(2) over raw `pollfd`s (a negative fd is skipped, as poll(2) defines). The relay builds its set on the
/// stack every turn; nix's `PollFd` borrows descriptors and cannot be kept or placed in a fixed array cheaply.
/// Returns the number of ready entries; EINTR is returned as an error like any other.
pub fn poll_fds(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs; poll only reads the fd
    // numbers and events and writes revents. An fd that is not open just reports POLLNVAL.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// The name of the slave of the PTY whose master is `master` (`/dev/pts/N`, from TIOCGPTN).
pub fn pts_name(master: BorrowedFd<'_>) -> io::Result<String> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int into the valid, exclusively borrowed `n`.
    let rc = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTN,
            &mut n as *mut libc::c_uint,
        )
    };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(format!("/dev/pts/{n}"))
    }
}

/// How many bytes a pipe holds now, waiting to be read (FIONREAD).
pub fn pipe_pending(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into the valid, exclusively borrowed `n`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n as *mut libc::c_int) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.max(0) as usize)
    }
}

/// Whether the terminal is in exclusive mode (TIOCGEXCL).
pub fn tty_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut on: libc::c_int = 0;
    // SAFETY: TIOCGEXCL writes one int into the valid, exclusively borrowed `on`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGEXCL, &mut on as *mut libc::c_int) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(on != 0)
    }
}

/// Put the terminal in exclusive mode (TIOCEXCL: every later open(2) of it fails with EBUSY, except with
/// CAP_SYS_ADMIN) or take it out again (TIOCNXCL). Descriptors already open are not affected.
pub fn set_tty_exclusive(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let req = if on { libc::TIOCEXCL } else { libc::TIOCNXCL };
    // SAFETY: TIOCEXCL and TIOCNXCL take no argument and touch no memory of ours.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// TIOCGWINSZ on `fd`.
pub fn get_winsize(fd: BorrowedFd<'_>) -> io::Result<Winsize> {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` into the valid, exclusively borrowed `ws`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws as *mut Winsize) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ws)
    }
}

/// TIOCSWINSZ on `fd` (on a PTY master this also signals SIGWINCH to the slave's foreground group).
pub fn set_winsize(fd: BorrowedFd<'_>, ws: &Winsize) -> io::Result<()> {
    // SAFETY: TIOCSWINSZ only reads one `struct winsize` from the valid reference `ws`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const Winsize) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// prctl(PR_SET_DUMPABLE, 0): no core dumps, no ptrace by the same uid, /proc/<pid>/fd owned by root.
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes plain integer arguments and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Is `fd` a terminal? (isatty(3))
pub fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor number; an invalid one just returns 0.
    unsafe { libc::isatty(fd) == 1 }
}

/// Ignore these signals (SIG_IGN), e.g. the terminal's signals in the detached spool writer.
pub fn ignore_signals(sigs: &[i32]) {
    for &sig in sigs {
        // SAFETY: installing SIG_IGN involves no handler code and no memory of ours.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

/// Close a lock's descriptor without unlocking it. A flock belongs to the open file description, which a forked
/// child shares: dropping a `Flock` (LOCK_UN) in one process would release the other's lock too.
pub fn close_keeping_lock(lock: nix::fcntl::Flock<std::fs::File>) {
    let fd = lock.as_raw_fd();
    std::mem::forget(lock);
    // SAFETY: `fd` was owned by the File inside the forgotten Flock, which will never use or close it again, so the
    // new OwnedFd is its only owner.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}

/// Remove every environment variable (the spool writer needs none, and must not take e.g. SSL_CERT_FILE from the
/// user). Does nothing unless the process is single-threaded.
pub fn clear_environment() {
    if thread_count() != 1 {
        return;
    }
    for (k, _) in std::env::vars_os() {
        // SAFETY: the process has a single thread (checked above), so nothing reads the environment concurrently.
        unsafe { std::env::remove_var(k) };
    }
}

/// Close every descriptor above 2 but `keep`: the spool writer keeps nothing it was handed by whoever started the
/// login (it runs with the group auditty, and outlives the session). close_range(2), or one close per entry of
/// /proc/self/fd where the kernel has none.
pub fn close_inherited_fds(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    let mut from: RawFd = 3;
    let mut ranges = Vec::new();
    for &k in &keep {
        if k > from {
            ranges.push((from as u32, (k - 1) as u32));
        }
        from = k + 1;
    }
    ranges.push((from as u32, u32::MAX));
    for (lo, hi) in ranges {
        // SAFETY: close_range only closes descriptors; none in the range is owned by live Rust objects (the caller
        // keeps the ones it still uses out of it).
        if unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0) } != 0 {
            let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|&fd: &RawFd| fd as u32 >= lo && fd as u32 <= hi)
                .collect();
            for fd in open {
                // SAFETY: as above; the read_dir's own descriptor is closed by now.
                unsafe { libc::close(fd) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{WaitStatus, waitpid};
    use std::os::fd::AsFd;

    #[test]
    fn thread_count_sees_another_thread() {
        // The test harness runs tests on threads of their own, so only a lower bound is certain here; the
        // single-threaded case is every session test (the writer's fork is refused unless the count is 1).
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let parked = std::thread::spawn(move || rx.recv());
        assert!(thread_count() >= 2, "thread_count() = {}", thread_count());
        drop(tx);
        let _ = parked.join();
    }

    #[test]
    fn the_shell_is_started_on_the_pty_and_an_exec_failure_is_reported() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let missing =
            ExecPlan::new(OsStr::new("/nonexistent/shell"), &["shell".into()], &[]).unwrap();
        let e = spawn_on_pty(&missing, pty.slave.as_fd(), None)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        // A session leader on the slave, with it as stdin/stdout/stderr and controlling terminal.
        let argv = [
            "sh".into(),
            "-c".into(),
            "test -t 0 && test -t 1 && test -t 2 && exit 7".into(),
        ];
        let sh = ExecPlan::new(OsStr::new("/bin/sh"), &argv, &[]).unwrap();
        let pid = spawn_on_pty(&sh, pty.slave.as_fd(), None).unwrap().unwrap();
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 7));
    }
}

/// The program's entry point, called by the C library in place of the Rust runtime's start-up, which would read and
/// parse all of /proc/self/maps (glibc's pthread_getattr_np, to place the main thread's stack-overflow guard): about
/// 0.1 ms of every recorded login's start-up on our VM (docs/benchmarks.md). What else that start-up does is done
/// here, and the rest does not need it (`std::env::args` is set up by the C library's constructors either way):
/// - stdin, stdout and stderr are made sure to be open (on /dev/null when closed), so that no file auditty opens,
///   while setgid, can become someone's fd 0-2;
/// - SIGPIPE is ignored, so a write to a closed pipe fails with EPIPE instead of killing the process (every exec
///   sets it back to default, `reset_signals`);
/// - standard output is flushed at the end.
///
/// Lost: the runtime's "thread 'main' has overflowed its stack" message; an overflow still ends the process (SIGSEGV
/// on the kernel's guard gap).
#[cfg(not(test))]
// SAFETY: the crate is `#![no_main]`, so this is the only `main` symbol in the program, with the C signature the C
// library calls.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const c_char) -> libc::c_int {
    open_standard_fds();
    ignore_signals(&[libc::SIGPIPE]);
    let status = crate::run();
    let _ = io::Write::flush(&mut io::stdout());
    libc::c_int::from(status.0)
}

/// Make sure fds 0, 1 and 2 are open: any that is closed is opened on /dev/null (as Rust's runtime does); if that
/// is impossible the process aborts rather than run with a standard stream that a later open would take.
#[cfg(not(test))]
fn open_standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll reads and writes the three pollfd entries of `fds` only.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    for p in fds {
        let closed = if polled >= 0 {
            p.revents & libc::POLLNVAL != 0
        } else {
            // poll refused (e.g. EINTR): ask each descriptor.
            // SAFETY: F_GETFD only reads the descriptor's flags.
            let flags = unsafe { libc::fcntl(p.fd, libc::F_GETFD) };
            flags == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
        };
        if closed {
            // SAFETY: a NUL-terminated path; open returns the lowest free descriptor, which is this one.
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0) };
            if fd != p.fd {
                std::process::abort();
            }
        }
    }
}
