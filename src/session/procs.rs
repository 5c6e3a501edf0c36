//! The processes of a recorded shell's session (the shell is its session leader, so the session id is its pid),
//! found in /proc: what the hangup escalation signals, so that nothing the session started outlives it.

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::procfs::ProcStat;

/// Pids of the live processes whose session id is `sid` (zombies excluded).
pub fn members(sid: Pid) -> Vec<Pid> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            ProcStat::of(pid as u32).is_some_and(|s| !s.is_gone() && s.session == sid.as_raw())
        })
        .map(Pid::from_raw)
        .collect()
}

/// Send `sig` to every process of the session `sid` (its process groups and every member found in /proc).
pub fn signal_session(sid: Pid, sig: Signal) {
    let _ = killpg(sid, sig);
    for pid in members(sid) {
        let _ = kill(pid, sig);
    }
}
