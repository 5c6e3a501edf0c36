//! The bash command hook end to end: a recorded interactive bash (through a real PTY), the hook installed with
//! `eval "$(auditty hook bash)"`, a real rsyslogd on a private socket; the exact lines rsyslog wrote.

mod common;

use std::time::{Duration, Instant};

use common::hookshell::{Recorded, meta};
use common::rsyslog::{self, Line, Rsyslog};
use common::*;

fn env_for(rs: &Rsyslog, dir: &std::path::Path) -> Env {
    let fifo_dir = dir.join("fifos");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    Env::new(&format!(
        "[syslog]\ntarget = \"unix:{}\"\nfacility = \"local0\"\ntag = \"auditty\"\n[hook]\nfifo_dir = {:?}\n",
        rs.socket.display(),
        fifo_dir
    ))
}

fn commands(lines: &[Line]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.msg.starts_with("event=command "))
        .map(|l| l.msg.clone())
        .collect()
}

/// A field's raw (still escaped) value in a logfmt line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(&format!(" {key}="))
        .or_else(|| line.starts_with(&format!("{key}=")).then_some(usize::MAX))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    let v = if start == usize::MAX {
        &line[key.len() + 1..]
    } else {
        &line[start + key.len() + 2..]
    };
    v.split(' ').next().unwrap()
}

#[test]
fn bash_commands_reach_syslog_exactly() {
    if !rsyslog::available() {
        eprintln!("rsyslogd not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut rs = Rsyslog::start(tmp.path());
    let env = env_for(&rs, tmp.path());
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // A history file from an earlier login: its last entry must not be logged at the first prompt.
    std::fs::write(
        home.join(".bash_history"),
        "stale-entry-from-history-file\n",
    )
    .unwrap();
    // What users commonly have (Debian/Ubuntu skeleton plus the usual additions).
    let profile = "PS1='PROMPT> '\nHISTFILE=$HOME/.bash_history\nHISTCONTROL=ignoreboth\n\
                   HISTTIMEFORMAT='%F %T '\nshopt -s histappend\nPROMPT_COMMAND='history -a'\n";
    let mut sh = Recorded::start(&env, &home, profile);
    sh.install_hook(&env, "bash");

    sh.run("true");
    sh.run("false");
    sh.run(" secret-leading-space");
    // An empty line and Ctrl-C at the prompt log nothing.
    sh.run("");
    sh.abandon_line(&env, "half-typed");
    sh.run("for i in 1 2; do\necho \"loop $i\"\ndone");
    sh.run("cd /tmp");
    sh.run("echo dup");
    sh.run("echo dup");
    // rsyslogd restarts: what is logged while it is away and after it is back all arrives. What it has received
    // but not yet read when it stops is lost to syslog (a datagram socket has no acknowledgement; the recording's
    // commands file keeps it), so it stops only once it has written the commands so far.
    rs.wait_for(Duration::from_secs(10), |ls| {
        ls.iter()
            .any(|l| l.msg.contains(" seq=7 ") && l.msg.ends_with(" cmd=\"echo dup\""))
    })
    .expect("the commands before the outage reached rsyslog");
    rs.stop();
    sh.run("echo during-outage");
    rs.restart();
    sh.run("echo after-restart");
    // Newline, double quote, ESC (typed with Ctrl-V) and bytes that are not UTF-8.
    sh.send_raw(b"echo \"a\nb \\\"q\\\" \x16\x1b[1m\xff\xfe\"\n");
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
    let home_s = home.display().to_string();
    let want: Vec<String> = [
        (1, home_s.as_str(), "0", "\"true\""),
        (2, &home_s, "1", "\"false\""),
        (3, &home_s, "127", "\" secret-leading-space\""),
        (4, &home_s, "0", r#""for i in 1 2; do\necho \"loop $i\"\ndone""#),
        (5, "/tmp", "0", "\"cd /tmp\""),
        (6, "/tmp", "0", "\"echo dup\""),
        (7, "/tmp", "0", "\"echo dup\""),
        (8, "/tmp", "0", "\"echo during-outage\""),
        (9, "/tmp", "0", "\"echo after-restart\""),
        (10, "/tmp", "0", r#""echo \"a\nb \\\"q\\\" \x1b[1m\xff\xfe\"""#),
    ]
    .iter()
    .map(|(seq, cwd, status, cmd)| {
        format!(
            "event=command rec={id} seq={seq} user={user} tty={tty} cwd={cwd} status={status} cmd={cmd}"
        )
    })
    .collect();
    if std::env::var_os("SHOW").is_some() {
        for l in &lines {
            eprintln!("{l:?}");
        }
    }
    assert_eq!(commands(&lines), want);
    // The session begins before its commands, and ends after them.
    let pos = |prefix: &str| lines.iter().position(|l| l.msg.starts_with(prefix));
    assert!(
        pos("event=session-start ") < pos("event=command ")
            && pos("event=command ") < pos("event=session-end "),
        "{lines:#?}"
    );
    for l in lines.iter().filter(|l| l.msg.starts_with("event=")) {
        assert_eq!(l.pri, "local0.info", "{l:?}");
        assert_eq!(l.app, "auditty", "{l:?}");
    }

    let login_uid = std::fs::read_to_string("/proc/self/loginuid")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&u| u != u32::MAX)
        .map(|u| u.to_string())
        .unwrap_or_else(|| "-".into());
    let start: Vec<&Line> = lines
        .iter()
        .filter(|l| l.msg.starts_with("event=session-start "))
        .collect();
    assert_eq!(start.len(), 1);
    assert_eq!(
        start[0].msg,
        format!(
            "event=session-start rec={id} user={user} uid={} login_uid={login_uid} host={} tty={tty} from=- \
             shell=/bin/bash pid={}",
            m["uid"],
            m["host"].as_str().unwrap(),
            m["shell_pid"]
        )
    );
    let end: Vec<&Line> = lines
        .iter()
        .filter(|l| l.msg.starts_with("event=session-end "))
        .collect();
    assert_eq!(end.len(), 1);
    let e = &end[0].msg;
    assert_eq!(field(e, "rec"), id);
    assert!(field(e, "duration").parse::<f64>().unwrap() > 0.0, "{e}");
    assert_eq!(field(e, "exit"), "0");
    assert_eq!(field(e, "end"), "exit");
    assert_eq!(field(e, "bytes_out"), m["bytes_out"].to_string());
    assert_eq!(field(e, "commands"), "10");
    assert_eq!(field(e, "dropped"), "0", "the outage lost nothing: {e}");
    assert!(
        e.contains(" sha256_typescript=") && e.contains(" sha256_timing="),
        "{e}"
    );
    // Order: start, the commands, end.
    let events: Vec<&str> = lines
        .iter()
        .filter(|l| l.msg.starts_with("event="))
        .map(|l| field(&l.msg, "event"))
        .collect();
    assert_eq!(events.first(), Some(&"session-start"));
    assert_eq!(events.last(), Some(&"session-end"));

    // commands.log in the recording has the same commands, one escaped line each.
    let rec_dir = env.recordings("queue").remove(0);
    let log = String::from_utf8(read(&rec_dir.join("commands.log"))).unwrap();
    let log_lines: Vec<&str> = log.lines().collect();
    assert_eq!(log_lines.len(), 10, "{log}");
    assert!(
        log_lines[2].contains(" seq=3 status=127 pid="),
        "{}",
        log_lines[2]
    );
    assert!(
        log_lines[2].ends_with(" cmd=\" secret-leading-space\""),
        "{}",
        log_lines[2]
    );
    assert!(log_lines[9].ends_with(r#" cmd="echo \"a\nb \\\"q\\\" \x1b[1m\xff\xfe\"""#));

    // The user's history file still honours HISTCONTROL=ignoreboth: the leading-space command and the
    // duplicate are logged above but not kept here, and the stale entry is still only there once.
    let hist = String::from_utf8_lossy(&read(&home.join(".bash_history"))).into_owned();
    let entries: Vec<&str> = hist.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!hist.contains("secret-leading-space"), "{hist}");
    assert_eq!(
        entries.iter().filter(|l| **l == "echo dup").count(),
        1,
        "{hist}"
    );
    assert_eq!(
        entries.iter().filter(|l| l.contains("stale-entry")).count(),
        1
    );
    assert!(
        entries.contains(&"false") && entries.contains(&"cd /tmp"),
        "{hist}"
    );
}

#[test]
fn hook_outside_a_recording_prints_nothing_and_exits_3() {
    let env = Env::new("");
    let out = env.cmd(&["hook", "bash"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let out = env.cmd(&["hook", "zsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn bash_direct_path_user_prompt_command_and_history_off() {
    if !rsyslog::available() {
        eprintln!("rsyslogd not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rs = Rsyslog::start(tmp.path());
    let env = env_for(&rs, tmp.path());
    let home = tmp.path().join("home");
    // No HISTCONTROL: the hook writes fc's output straight into the FIFO. The user's PROMPT_COMMAND shares
    // history between terminals (history -a; history -n) and is replaced mid-session.
    let profile =
        "PS1='PROMPT> '\nHISTFILE=$HOME/.bash_history\nPROMPT_COMMAND='history -a; history -n'\n";
    let mut sh = Recorded::start(&env, &home, profile);
    sh.install_hook(&env, "bash");
    sh.run("true");
    sh.run("PROMPT_COMMAND='echo pc-user'");
    // The user's new PROMPT_COMMAND runs, and so does the hook (repaired behind it).
    sh.s.send_line("(exit 3)").unwrap();
    sh.s.exp_string("pc-user").unwrap();
    sh.prompt();
    sh.run("set +o history");
    sh.run("echo hidden");
    sh.run("set -o history");
    sh.run("echo visible");
    sh.run("x=$(printf '%.0sy' {1..70000}); echo ${#x}");
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
    let pre = |seq: u32, status: u32| {
        format!("event=command rec={id} seq={seq} user={user} tty={tty} cwd={h} status={status}")
    };
    let want = vec![
        format!("{} cmd=\"true\"", pre(1, 0)),
        format!("{} cmd=\"PROMPT_COMMAND='echo pc-user'\"", pre(2, 0)),
        format!("{} cmd=\"(exit 3)\"", pre(3, 3)),
        // History turned off by the command itself, then on again: the text of what ran meanwhile is not in
        // the history, which the log says instead of guessing.
        format!("{} cmd=\"set +o history\"", pre(4, 0)),
        format!("{} cmd_missing=1 cmd=\"\"", pre(5, 0)),
        format!("{} cmd_missing=1 cmd=\"\"", pre(6, 0)),
        format!("{} cmd=\"echo visible\"", pre(7, 0)),
        format!(
            "{} cmd=\"x=$(printf '%.0sy' {{1..70000}}); echo ${{#x}}\"",
            pre(8, 0)
        ),
    ];
    let got = commands(&lines);
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(&want) {
        if w.contains("seq=4 ") {
            // Turning history off in the same line may or may not leave that line's text to fc.
            assert!(
                g == w || *g == format!("{} cmd_missing=1 cmd=\"\"", pre(4, 0)),
                "{g}"
            );
        } else {
            assert_eq!(g, w);
        }
    }
}

/// Start time (field 22 of /proc/<pid>/stat) of this test process, for a registration that counts as live.
fn own_start() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[test]
fn hook_waits_for_a_registration_that_is_on_its_way() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new("");
    let fifo = tmp.path().join("cmd");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // On a PTY, as the profile runs it, started by `auditty session` (which sets AUDITTY_RECORDING) before the
    // spool writer has registered the PTY.
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(format!(
            "tty; exec {BIN} --config {} hook bash; echo exec-failed-marker",
            env.config.display()
        ))
        .env("AUDITTY_RECORDING", "20261122T000000Z-u-000000000000");
    let mut s = rexpect::session::spawn_command(c, Some(10_000)).unwrap();
    let tty = s.read_line().unwrap().trim().to_string();
    assert!(tty.starts_with("/dev/pts/"), "{tty}");
    register_this_process(&env, &tty, &fifo);
    s.exp_string("__auditty_install").unwrap();
    let out = s.exp_eof().unwrap();
    assert!(
        out.contains(&format!("local f='{}'", fifo.display())),
        "{out}"
    );
    assert!(!out.contains("exec-failed-marker"));

    // Without the announcement there is no waiting: not inside a recording, at once.
    let t = std::time::Instant::now();
    let o = env.cmd(&["hook", "bash"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn hook_waits_for_a_fifo_that_is_on_its_way() {
    // The spool writer makes the FIFO while the shell starts: a registration may name a FIFO that is not there yet.
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new("");
    let fifo = tmp.path().join("cmd");
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(format!(
            "tty; echo $$; read go; exec {BIN} --config {} hook bash",
            env.config.display()
        ))
        .env("AUDITTY_RECORDING", "20261122T000000Z-u-000000000000");
    let mut s = rexpect::session::spawn_command(c, Some(10_000)).unwrap();
    let tty = s.read_line().unwrap().trim().to_string();
    let hook = s.read_line().unwrap().trim().to_string();
    register_this_process(&env, &tty, &fifo);
    s.send_line("").unwrap();
    // Once the hook has found the registration without the FIFO and waits for it (up to 3 s, in short sleeps),
    // make the FIFO.
    let end = Instant::now() + Duration::from_secs(10);
    while !(std::fs::read_link(format!("/proc/{hook}/exe")).is_ok_and(|e| e.ends_with("auditty"))
        && std::fs::read_to_string(format!("/proc/{hook}/wchan"))
            .is_ok_and(|w| w.contains("nanosleep")))
    {
        assert!(Instant::now() < end, "the hook never waited for the FIFO");
        std::thread::sleep(Duration::from_millis(1));
    }
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    s.exp_string("__auditty_install").unwrap();
    let out = s.exp_eof().unwrap();
    assert!(
        out.contains(&format!("local f='{}'", fifo.display())),
        "{out}"
    );
}

#[test]
fn a_fifo_the_writer_cannot_make_is_withdrawn_from_the_registration() {
    // hook.fifo_dir does not exist: the session goes on without a command log, and the writer publishes the
    // registration again without the FIFO the relay had named, so `auditty hook` answers at once with nothing.
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(&format!(
        "[hook]\nfifo_dir = {:?}\n",
        tmp.path().join("missing")
    ));
    let mut s = spawn_session(
        &env,
        &[
            "-c",
            &format!(
                "echo started; read x; {BIN} --config {} hook bash; echo hook-rc=$?",
                env.config.display()
            ),
        ],
        10_000,
    );
    s.exp_string("started").unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let regs: Vec<String> = std::fs::read_dir(&env.run)
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect();
        if !regs.is_empty() && regs.iter().all(|r| r.ends_with("\nfifo=\n")) {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "registration still names a FIFO: {regs:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    s.send_line("").unwrap();
    let out = s.exp_string("hook-rc=").unwrap();
    assert!(!out.contains("__auditty_install"), "{out}");
    s.exp_string("0").unwrap();
    s.exp_eof().unwrap();
}

/// Publish a guard registration for `tty` that names this test process as relay and writer (alive, so the
/// registration counts) and `fifo` as the command FIFO.
fn register_this_process(env: &Env, tty: &str, fifo: &std::path::Path) {
    let reg = format!(
        "id=x\nrelay_pid={}\nrelay_start={}\nwriter_pid={}\nwriter_start={}\nuid={}\npty={tty}\nfifo={}\n",
        std::process::id(),
        own_start(),
        std::process::id(),
        own_start(),
        nix::unistd::getuid(),
        fifo.display()
    );
    std::fs::write(
        env.run
            .join(tty.trim_start_matches("/dev/").replace('/', "-")),
        reg,
    )
    .unwrap();
}

/// A shell that runs with `set -eu` when the profile evaluates the hook (an earlier profile script, an exported
/// SHELLOPTS, `bash -u -l`): the hook installs, the shell survives, and every command is logged. With no
/// PROMPT_COMMAND set, `${#PROMPT_COMMAND[@]}` was an unbound-variable error: the hook stopped half-installed, and
/// under `set -e` the login shell exited at once.
#[test]
fn the_hook_installs_and_logs_in_a_set_eu_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo_dir = tmp.path().join("fifos");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    let env = Env::new(&format!("[hook]\nfifo_dir = {fifo_dir:?}\n"));
    let home = tmp.path().join("home");
    let mut sh = Recorded::start(&env, &home, "PS1='PROMPT> '\nset -eu\n");
    sh.install_hook(&env, "bash");
    sh.run("echo first-under-nounset");
    sh.run("true && echo second");
    sh.run("echo \"${PROMPT_COMMAND[0]}\" $- | grep -c u");
    sh.exit();
    let (log, cmds) = common::hookshell::logged_commands(&env);
    let m = meta(&env, "queue");
    assert_eq!(
        cmds,
        [
            "\"echo first-under-nounset\"",
            "\"true && echo second\"",
            "\"echo \\\"${PROMPT_COMMAND[0]}\\\" $- | grep -c u\""
        ],
        "{log}"
    );
    assert_eq!(m["commands"], 3, "{m}");
}
