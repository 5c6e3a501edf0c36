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

/// The single recording's meta.json once it reached `state`.
pub fn meta(env: &Env, state: &str) -> serde_json::Value {
    // Generous: completing a recording fsyncs several files, which can take seconds on a busy machine.
    let recs = env.wait_for(state, 1, Duration::from_secs(30));
    assert_eq!(
        recs.len(),
        1,
        "one recording in {state}; active: {:?}",
        env.recordings("active")
    );
    serde_json::from_slice(&std::fs::read(recs[0].join("meta.json")).unwrap()).unwrap()
}
