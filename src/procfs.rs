//! Other processes' state from `/proc/<pid>/stat`: one parser for the guard registry, the nesting check, the hangup
//! escalation and flush.

/// The fields of `/proc/<pid>/stat` auditty uses (proc(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `T` (stopped), `Z` (zombie), `X` (dead)...
    pub state: char,
    /// Field 4.
    pub ppid: u32,
    /// Field 6: the session id.
    pub session: i32,
    /// Field 22: start time in clock ticks since boot (with the pid, it names one process across pid reuse).
    pub start_ticks: u64,
}

impl ProcStat {
    /// Read a process's stat; None when it is gone or the text is not what proc(5) describes.
    pub fn of(pid: u32) -> Option<ProcStat> {
        ProcStat::parse(&crate::sys::read_proc(&format!("/proc/{pid}/stat"))?)
    }

    /// Parse the text of a stat file.
    pub fn parse(stat: &str) -> Option<ProcStat> {
        // The command name (field 2) may hold spaces and parentheses: the fields resume after the last ')'.
        let rest = stat.get(stat.rfind(')')? + 1..)?;
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next()?;
        let mut state_chars = state.chars();
        let (Some(state), None) = (state_chars.next(), state_chars.next()) else {
            return None;
        };
        let ppid = fields.next()?.parse().ok()?;
        let session = fields.nth(1)?.parse().ok()?;
        let start_ticks = fields.nth(15)?.parse().ok()?;
        Some(ProcStat {
            state,
            ppid,
            session,
            start_ticks,
        })
    }

    /// A zombie or a dead process: it has let go of its terminal and files.
    pub fn is_gone(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_after_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (a) b) (c) S 17 4242 4240 34816 4242 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
                    8192 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            ProcStat::parse(line),
            Some(ProcStat {
                state: 'S',
                ppid: 17,
                session: 4240,
                start_ticks: 987654,
            })
        );
        assert_eq!(ProcStat::parse("12 (x) Z 1 12"), None, "cut short");
        assert_eq!(ProcStat::parse("12 (x) ZZ 1 12 12"), None);
        assert_eq!(ProcStat::parse("no parenthesis"), None);
    }

    #[test]
    fn reads_its_own_process() {
        let me = ProcStat::of(std::process::id()).unwrap();
        assert!(matches!(me.state, 'R' | 'S'), "{me:?}");
        assert_eq!(me.ppid, nix::unistd::getppid().as_raw() as u32);
        assert_eq!(me.session, nix::unistd::getsid(None).unwrap().as_raw());
        assert!(!me.is_gone());
    }
}
