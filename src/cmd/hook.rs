//! `auditty hook bash|zsh`: print the command hook for a shell running inside a live recording.
//!
//! Whether this shell is inside a recording is decided from the guard registry (`spool.run_dir`, reachable only
//! by group auditty: read while this process still has it), looked up by this process's terminal and audit session, never from the environment (which
//! at most makes it wait for a registration that is on its way); the FIFO path printed comes from the same
//! registration. Exit status: 0 inside a live recording (the hook is
//! printed, or nothing when `hook.enabled` is off or the FIFO is not this user's, root included), 3 when not inside one (the
//! caller should start `auditty session`), 1 on errors.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cli::{Cli, HookShell};
use crate::cmd::Exit;
use crate::privilege::Privilege;
use crate::spool::guard;

/// Exit status meaning "this terminal is not inside a live recording".
pub const NOT_RECORDED: u8 = 3;

const BASH: &str = include_str!("../hook/bash.sh");
const ZSH: &str = include_str!("../hook/zsh.sh");

pub fn run(cli: &Cli, mut privilege: Privilege, shell: HookShell) -> Result<Exit> {
    // /etc/auditty.conf is root:auditty 0640 and the guard registry root:auditty 0770: read the configuration (the
    // fixed file only; --config/-o are refused while privileged) and the registry before giving up the group.
    // Nothing else is done with the privilege: the FIFO is looked at as the user.
    let cfg = privilege.load_config(cli)?;
    let tty = nix::unistd::ttyname(std::io::stdin())
        .ok()
        .map(|p| p.display().to_string());
    let reg = lookup(&cfg.spool.run_dir, tty.as_deref());
    let reg = match reg {
        Some(reg) if cfg.hook.enabled => Some(await_fifo(&cfg.spool.run_dir, tty.as_deref(), reg)),
        other => other,
    };
    privilege.drop_unless_trusted()?;
    let Some(reg) = reg else {
        return Ok(Exit::from(NOT_RECORDED));
    };
    if !cfg.hook.enabled || reg.fifo.is_empty() || !usable_fifo(&reg.fifo) {
        // Recorded, but no command log for this shell (e.g. `su -` to another user inside the recording).
        return Ok(Exit::SUCCESS);
    }
    print!("{}", snippet(shell, &reg.fifo));
    Ok(Exit::SUCCESS)
}

/// How long to wait for the spool writer to register a shell that has just been started on its PTY.
const REGISTRATION_WAIT: Duration = Duration::from_secs(3);

/// The live recording this terminal belongs to. The shell's profile can run before the spool writer has
/// registered the PTY (they start at the same time): when the environment says this shell was started by
/// `auditty session`, wait a little for the registration. The environment is only a reason to wait, never
/// the answer: a forged AUDITTY_RECORDING costs its owner three seconds and then the recording they tried to
/// avoid.
fn lookup(run_dir: &Path, tty: Option<&str>) -> Option<guard::Registration> {
    let audit = guard::audit_session_id();
    let deadline = Instant::now() + REGISTRATION_WAIT;
    loop {
        if let Some(r) = guard::lookup(run_dir, tty, audit) {
            return Some(r);
        }
        if std::env::var_os("AUDITTY_RECORDING").is_none() || Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The spool writer makes the FIFO as soon as it runs, while the shell starts: a FIFO that the registration names
/// but that does not exist yet is on its way. Wait for it (bounded, as for the registration); the writer publishes the
/// registration again without the FIFO if it cannot make it. Only a missing FIFO is waited for: one that exists but is
/// not this user's (e.g. `su -` to another user inside the recording) or cannot be reached is answered at once.
fn await_fifo(
    run_dir: &Path,
    tty: Option<&str>,
    mut reg: guard::Registration,
) -> guard::Registration {
    let deadline = Instant::now() + REGISTRATION_WAIT;
    while !reg.fifo.is_empty()
        && std::fs::symlink_metadata(&reg.fifo)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
        match lookup(run_dir, tty) {
            Some(r) if r.id == reg.id => reg = r,
            _ => break,
        }
    }
    reg
}

/// The FIFO exists, is a FIFO, and it and its directory are ours. Not another user's, not even for root (`su -`,
/// `sudo -i` inside a user's recording): the hook opens files by path in that directory (the FIFO, and a private
/// `hist.<pid>` file it truncates), and the directory's owner could put a symlink there (docs/security.md, N15).
fn usable_fifo(path: &str) -> bool {
    let uid = nix::unistd::geteuid().as_raw();
    let ours = |p: &Path| {
        std::fs::symlink_metadata(p)
            .ok()
            .filter(|md| md.uid() == uid)
    };
    let p = Path::new(path);
    ours(p).is_some_and(|md| md.file_type().is_fifo())
        && p.parent().and_then(ours).is_some_and(|md| md.is_dir())
}

/// The shell code with the FIFO path filled in (single-quoted).
pub fn snippet(shell: HookShell, fifo: &str) -> String {
    let quoted = format!("'{}'", fifo.replace('\'', r"'\''"));
    let text = match shell {
        HookShell::Bash => BASH,
        HookShell::Zsh => ZSH,
    };
    text.replace("@FIFO@", &quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_quotes_the_path() {
        let s = snippet(HookShell::Bash, "/tmp/a'b/cmd");
        assert!(s.contains(r"local f='/tmp/a'\''b/cmd'"), "{s}");
        assert!(!s.contains("@FIFO@"));
        let z = snippet(HookShell::Zsh, "/tmp/x/cmd");
        assert!(z.contains("local f='/tmp/x/cmd'"));
    }

    /// Only a FIFO that is the caller's own, in a directory of its own, gets the hook: not another user's, not even
    /// for root (whose hook would open files by path in that user's directory).
    #[test]
    fn only_a_fifo_of_ones_own_in_a_directory_of_ones_own_is_used() {
        let me = nix::unistd::geteuid();
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("s");
        std::fs::create_dir(&dir).unwrap();
        let fifo = dir.join("cmd");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let path = fifo.to_str().unwrap();
        assert!(usable_fifo(path));
        std::fs::write(dir.join("file"), "x").unwrap();
        assert!(
            !usable_fifo(dir.join("file").to_str().unwrap()),
            "not a FIFO"
        );
        std::os::unix::fs::symlink(&fifo, dir.join("link")).unwrap();
        assert!(
            !usable_fifo(dir.join("link").to_str().unwrap()),
            "a symlink"
        );
        if me.is_root() {
            let other = Some(nix::unistd::Uid::from_raw(4242));
            nix::unistd::chown(&dir, other, None).unwrap();
            assert!(!usable_fifo(path), "root, in another user's directory");
            nix::unistd::chown(&dir, Some(me), None).unwrap();
            nix::unistd::chown(&fifo, other, None).unwrap();
            assert!(!usable_fifo(path), "root, another user's FIFO");
        }
    }

    #[test]
    fn snippets_parse() {
        for (sh, shell) in [("bash", HookShell::Bash), ("zsh", HookShell::Zsh)] {
            if std::process::Command::new(sh)
                .arg("-c")
                .arg(":")
                .output()
                .is_err()
            {
                continue;
            }
            let out = std::process::Command::new(sh)
                .arg("-n")
                .arg("-c")
                .arg(snippet(shell, "/nonexistent/cmd"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{sh}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
