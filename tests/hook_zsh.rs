//! The zsh command hook end to end: inside a recorded session the login bash execs zsh, which installs the hook
//! with `eval "$(auditty hook zsh)"`; a real rsyslogd receives the events.

mod common;

use std::path::Path;
use std::time::Duration;

use common::hookshell::{PROMPT, Recorded, meta, wait_registered};
use common::rsyslog::{self, Rsyslog};
use common::*;

const ZSH: &str = "/usr/bin/zsh";

#[test]
fn zsh_commands_reach_syslog_exactly() {
    if !rsyslog::available() || !Path::new(ZSH).exists() {
        eprintln!("rsyslogd or zsh not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rs = Rsyslog::start(tmp.path());
    let fifo_dir = tmp.path().join("fifos");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    let env = Env::new(&format!(
        "[syslog]\ntarget = \"unix:{}\"\nfacility = \"user\"\ntag = \"auditty-test\"\n[hook]\nfifo_dir = {:?}\n",
        rs.socket.display(),
        fifo_dir
    ));
    let home = tmp.path().join("home");
    let zdot = home.join("z");
    std::fs::create_dir_all(&zdot).unwrap();
    // Options users commonly have; a precmd of their own that changes $?.
    std::fs::write(
        zdot.join(".zshrc"),
        format!(
            "PS1='{PROMPT}'\nHISTFILE=$HOME/.zsh_history\nHISTSIZE=100\nSAVEHIST=100\n\
             setopt HIST_IGNORE_SPACE HIST_IGNORE_DUPS INC_APPEND_HISTORY\n\
             precmd() {{ false }}\n"
        ),
    )
    .unwrap();
    std::fs::write(home.join(".zsh_history"), "stale-entry-from-history-file\n").unwrap();
    let mut sh = Recorded::start(&env, &home, &format!("PS1='{PROMPT}'\n"));
    wait_registered(&env);
    sh.run(&format!("ZDOTDIR={} exec {ZSH} -d -i", zdot.display()));
    sh.install_hook(&env, "zsh");
    sh.run("true");
    sh.run("false");
    sh.run(" secret-leading-space");
    sh.run("");
    sh.abandon_line(&env, "half-typed");
    sh.run("for i in 1 2; do\necho \"loop $i\"\ndone");
    sh.run("cd /tmp");
    sh.send_raw(b"echo \"a\nb \\\"q\\\" \x16\x1b[1m\"\n");
    sh.prompt();
    sh.exit();

    let m = meta(&env, "queue");
    let id = m["id"].as_str().unwrap();
    let lines = rs
        .wait_for(Duration::from_secs(10), |ls| {
            ls.iter().any(|l| l.msg.starts_with("event=session-end "))
        })
        .expect("session-end reached rsyslog");
    let tty = m["tty"].as_str().unwrap();
    let user = m["user"].as_str().unwrap();
    let h = home.display().to_string();
    let want: Vec<String> = [
        (1, h.as_str(), "0", "\"true\""),
        (2, &h, "1", "\"false\""),
        (3, &h, "127", "\" secret-leading-space\""),
        (4, &h, "0", r#""for i in 1 2; do\necho \"loop $i\"\ndone""#),
        (5, "/tmp", "0", "\"cd /tmp\""),
        (6, "/tmp", "0", r#""echo \"a\nb \\\"q\\\" \x1b[1m\"""#),
    ]
    .iter()
    .map(|(seq, cwd, status, cmd)| {
        format!(
            "event=command rec={id} seq={seq} user={user} tty={tty} cwd={cwd} status={status} cmd={cmd}"
        )
    })
    .collect();
    let got: Vec<String> = lines
        .iter()
        .filter(|l| l.msg.starts_with("event=command "))
        .map(|l| l.msg.clone())
        .collect();
    assert_eq!(got, want);
    for l in &lines {
        assert_eq!(
            (l.pri.as_str(), l.app.as_str()),
            ("user.info", "auditty-test"),
            "{l:?}"
        );
    }
    assert!(
        lines
            .first()
            .unwrap()
            .msg
            .starts_with("event=session-start ")
    );
    assert!(lines.last().unwrap().msg.contains(" commands=6 dropped=0"));
}

/// zsh with `setopt NO_UNSET ERR_EXIT` (`set -eu`) when the hook is evaluated: it installs, the shell survives, and
/// every command is logged.
#[test]
fn the_zsh_hook_installs_and_logs_with_no_unset_and_err_exit() {
    if !Path::new(ZSH).exists() {
        eprintln!("zsh not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fifo_dir = tmp.path().join("fifos");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    let env = Env::new(&format!("[hook]\nfifo_dir = {fifo_dir:?}\n"));
    let home = tmp.path().join("home");
    let zdot = home.join("z");
    std::fs::create_dir_all(&zdot).unwrap();
    std::fs::write(zdot.join(".zshrc"), format!("PS1='{PROMPT}'\nset -eu\n")).unwrap();
    let mut sh = Recorded::start(&env, &home, &format!("PS1='{PROMPT}'\n"));
    wait_registered(&env);
    sh.run(&format!("ZDOTDIR={} exec {ZSH} -d -i", zdot.display()));
    sh.install_hook(&env, "zsh");
    sh.run("echo first-under-nounset");
    sh.run("true && echo second");
    sh.exit();
    let (log, cmds) = common::hookshell::logged_commands(&env);
    assert_eq!(
        cmds,
        ["\"echo first-under-nounset\"", "\"true && echo second\""],
        "{log}"
    );
}
