//! The processes of a recorded shell's session (the shell is its session leader, so the session id is its pid),
//! found in /proc: what the hangup escalation signals, so that nothing the session started outlives it.

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Pids of the live processes whose session id is `sid` (zombies excluded).
pub fn members(sid: Pid) -> Vec<Pid> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            let Some(stat) = crate::sys::read_proc(&format!("/proc/{pid}/stat")) else {
                return false;
            };
            // Fields after the command name (which may hold spaces and parentheses): state ppid pgrp session …
            let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
                return false;
            };
            let mut f = rest.split_whitespace();
            let state = f.next().unwrap_or("Z");
            state != "Z"
                && state != "X"
                && f.nth(2).and_then(|s| s.parse::<i32>().ok()) == Some(sid.as_raw())
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
