//! A recorded interactive shell driven through a real PTY, with the command hook installed the way the login
//! profile does it: `eval "$(auditty hook bash)"` inside the recording.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rexpect::session::PtySession;

use super::{BIN, Env};

pub const PROMPT: &str = "PROMPT> ";

pub struct Recorded {
    pub s: PtySession,
    pub home: PathBuf,
}

impl Recorded {
    /// `auditty session` running the login shell (bash) with HOME=`home`, whose `.bash_profile` is `profile`
    /// (it should set PS1 to PROMPT). Returns at the first prompt.
    pub fn start(env: &Env, home: &Path, profile: &str) -> Recorded {
        std::fs::create_dir_all(home).unwrap();
        std::fs::write(home.join(".bash_profile"), profile).unwrap();
        let mut c = env.cmd(&["session"]);
        c.current_dir(home)
            .env("HOME", home)
            .env("TERM", "dumb")
            .env("SHELL", "/bin/bash")
            .env("LANG", "C.UTF-8")
            .env("PS1", PROMPT)
            .env_remove("PROMPT_COMMAND")
            .env_remove("HISTCONTROL")
            .env_remove("HISTFILE")
            .env_remove("PS0");
        let s = rexpect::session::spawn_command(c, Some(20_000)).expect("spawn auditty session");
        let mut r = Recorded {
            s,
            home: home.to_path_buf(),
        };
        r.prompt();
        r
    }

    pub fn prompt(&mut self) {
        self.s
            .exp_string(PROMPT)
            .unwrap_or_else(|e| panic!("no prompt: {e}"));
    }

    /// Type a line (which may contain newlines: continuation lines) and wait for the next prompt.
    pub fn run(&mut self, line: &str) {
        self.s.send_line(line).unwrap();
        self.prompt();
    }

    /// Type raw bytes (e.g. invalid UTF-8) without waiting.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let mut f = self.s.process().get_file_handle().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
    }

    /// Type `text` at the prompt, then Ctrl-C, and wait for the next prompt: a line abandoned half-typed. Ctrl-C
    /// goes once the shell has read the text and waits for more, as when a person types it: bash 5.2 sometimes never
    /// prints the next prompt when SIGINT comes while it is still taking in typed keys (seen without auditty too).
    /// The shell does not echo here (rexpect's terminal has echo off, and readline then echoes nothing), so its
    /// reading is seen in /proc: its read count (`rchar`), and that it sleeps waiting for the terminal (in select or
    /// poll, as bash does, or in the terminal's read, as zsh does).
    pub fn abandon_line(&mut self, env: &Env, text: &str) {
        let shell = shell_pid(env);
        let rchar = || {
            std::fs::read_to_string(format!("/proc/{shell}/io"))
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("rchar: "))
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        let before = rchar();
        self.send_raw(text.as_bytes());
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let wchan = std::fs::read_to_string(format!("/proc/{shell}/wchan")).unwrap_or_default();
            if rchar() >= before + text.len() as u64
                && ["poll_schedule_timeout", "wait_woken", "n_tty_read"]
                    .iter()
                    .any(|w| wchan.starts_with(w))
            {
                break;
            }
            assert!(
                Instant::now() < end,
                "the shell did not read {text:?} (wchan {wchan})"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.s.send_control('c').unwrap();
        self.prompt();
    }

    /// Install the hook from inside the shell, as the profile does, once the spool writer has registered the
    /// shell's terminal in the guard registry.
    pub fn install_hook(&mut self, env: &Env, shell: &str) {
        wait_registered(env);
        self.run(&format!(
            "eval \"$({BIN} --config {} hook {shell})\"",
            env.config.display()
        ));
    }

    /// `exit`, then wait for auditty session to end.
    pub fn exit(mut self) {
        self.s.send_line("exit").unwrap();
        self.s.exp_eof().unwrap();
        let _ = self.s.process().wait();
    }
}

/// The pid of the recorded shell: the child of the relay (its pid from the guard registry) that is not auditty's
/// spool writer.
pub fn shell_pid(env: &Env) -> u32 {
    wait_registered(env);
    let relay: u32 = std::fs::read_dir(&env.run)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pts-"))
        .find_map(|e| {
            let t = std::fs::read_to_string(e.path()).ok()?;
            t.lines()
                .find_map(|l| l.strip_prefix("relay_pid=")?.parse().ok())
        })
        .expect("a relay_pid in the registry");
    let children = std::fs::read_to_string(format!("/proc/{relay}/task/{relay}/children")).unwrap();
    children
        .split_whitespace()
        .map(|p| p.parse::<u32>().unwrap())
        .find(|p| {
            std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| !e.ends_with("auditty"))
        })
        .unwrap_or_else(|| panic!("no shell among the children {children:?} of the relay {relay}"))
}

/// Wait (bounded) until the registry holds a terminal entry with a FIFO.
pub fn wait_registered(env: &Env) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let found = std::fs::read_dir(&env.run)
            .map(|rd| {
                rd.flatten().any(|e| {
                    e.file_name().to_string_lossy().starts_with("pts-")
                        && std::fs::read_to_string(e.path())
                            .is_ok_and(|t| t.lines().any(|l| l.len() > 5 && l.starts_with("fifo=")))
                })
            })
            .unwrap_or(false);
        if found {
            return;
        }
        assert!(Instant::now() < end, "the writer never registered the PTY");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The single recording's meta.json once it reached `state` and its writer is gone (it still writes meta.json and
/// removes the session's FIFO directory after the move).
pub fn meta(env: &Env, state: &str) -> serde_json::Value {
    // Generous: completing a recording fsyncs several files, which can take seconds on a busy machine.
    let recs = env.wait_for(state, 1, Duration::from_secs(30));
    assert_eq!(
        recs.len(),
        1,
        "one recording in {state}; active: {:?}",
        env.recordings("active")
    );
    let read = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(recs[0].join("meta.json")).unwrap()).unwrap()
    };
    super::deliver::wait_writer_gone(&read());
    read()
}

/// The single queued recording's commands.log, and the `cmd=` field of each of its lines.
pub fn logged_commands(env: &Env) -> (String, Vec<String>) {
    let m = meta(env, "queue");
    let dir = env.spool.join("queue").join(m["id"].as_str().unwrap());
    let log = std::fs::read_to_string(dir.join("commands.log")).unwrap();
    let cmds = log
        .lines()
        .filter_map(|l| l.split_once(" cmd=").map(|(_, c)| c.to_string()))
        .collect();
    (log, cmds)
}
