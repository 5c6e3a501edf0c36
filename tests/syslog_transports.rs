//! Syslog over UDP and TCP (RFC 5424, newline framing on TCP) to a real rsyslogd, reconnection after it
//! restarts, and a syslog that cannot be reached (the session goes on, the recording keeps the commands).

mod common;

use std::time::Duration;

use common::hookshell::{Recorded, meta};
use common::rsyslog::{self, Rsyslog};
use common::*;

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn udp_and_tcp_carry_rfc5424_events() {
    if !rsyslog::available() {
        eprintln!("rsyslogd not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rs = Rsyslog::start(tmp.path());
    for (proto, port) in [("udp", rs.udp_port), ("tcp", rs.tcp_port)] {
        let env = Env::new(&format!(
            "[syslog]\ntarget = \"{proto}://127.0.0.1:{port}\"\nfacility = \"local3\"\ntag = \"auditty-{proto}\"\n"
        ));
        let mut s = spawn_session(&env, &["-c", "exit 3"], 20_000);
        s.exp_eof().unwrap();
        let m = meta(&env, "queue");
        let id = m["id"].as_str().unwrap().to_string();
        let app = format!("auditty-{proto}");
        let lines = rs
            .wait_for(Duration::from_secs(10), |ls| {
                ls.iter()
                    .any(|l| l.app == app && l.msg.starts_with("event=session-end "))
            })
            .unwrap_or_else(|| panic!("{proto}: no session-end"));
        let ours: Vec<_> = lines.iter().filter(|l| l.app == app).collect();
        assert_eq!(ours.len(), 2, "{proto}: {ours:#?}");
        // RFC 5424: the event name is the MSGID, the writer's pid the PROCID; each message on its own line.
        assert_eq!(ours[0].msgid, "session-start", "{proto}");
        assert_eq!(ours[1].msgid, "session-end", "{proto}");
        assert_eq!(ours[0].pri, "local3.info");
        assert_eq!(ours[0].pid, m["writer_pid"].to_string(), "{proto}");
        assert_eq!(field(&ours[0].msg, "rec"), Some(id.as_str()));
        assert_eq!(field(&ours[1].msg, "exit"), Some("3"), "{}", ours[1].msg);
        assert_eq!(field(&ours[1].msg, "end"), Some("exit"));
        assert_eq!(field(&ours[1].msg, "commands"), Some("0"));
    }
}

#[test]
fn tcp_reconnects_after_rsyslog_restarts() {
    if !rsyslog::available() {
        eprintln!("rsyslogd not installed: skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut rs = Rsyslog::start(tmp.path());
    let fifo_dir = tmp.path().join("fifos");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    let env = Env::new(&format!(
        "[syslog]\ntarget = \"tcp://127.0.0.1:{}\"\n[hook]\nfifo_dir = {:?}\n",
        rs.tcp_port, fifo_dir
    ));
    let home = tmp.path().join("home");
    let mut sh = Recorded::start(&env, &home, "PS1='PROMPT> '\n");
    sh.install_hook(&env, "bash");
    sh.run("echo before");
    let seen = |rs: &Rsyslog, what: &str| {
        let what = what.to_string();
        rs.wait_for(Duration::from_secs(10), move |ls| {
            ls.iter().any(|l| l.msg.ends_with(&what))
        })
        .is_some()
    };
    assert!(seen(&rs, "cmd=\"echo before\""));
    // The writer's TCP connection is now dead: the next message must not vanish into it.
    rs.restart();
    sh.run("echo after-restart");
    assert!(seen(&rs, "cmd=\"echo after-restart\""));
    // Down for a while: queued, and delivered once it is back.
    rs.stop();
    sh.run("echo while-down");
    rs.restart();
    sh.run("echo back-again");
    sh.exit();
    let lines = rs
        .wait_for(Duration::from_secs(10), |ls| {
            ls.iter().any(|l| l.msg.starts_with("event=session-end "))
        })
        .expect("session-end");
    let full: Vec<String> = lines
        .iter()
        .filter(|l| l.msgid == "command")
        .map(|l| {
            format!(
                "{} {}",
                field(&l.msg, "seq").unwrap(),
                &l.msg[l.msg.find(" cmd=").unwrap() + 1..]
            )
        })
        .collect();
    assert_eq!(
        full,
        vec![
            "1 cmd=\"echo before\"",
            "2 cmd=\"echo after-restart\"",
            "3 cmd=\"echo while-down\"",
            "4 cmd=\"echo back-again\"",
        ]
    );
    let end = lines.last().unwrap();
    assert_eq!(field(&end.msg, "dropped"), Some("0"), "{}", end.msg);
}

#[test]
fn unreachable_syslog_never_blocks_and_the_recording_keeps_the_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo_dir = tmp.path().join("fifos");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    let env = Env::new(&format!(
        "[syslog]\ntarget = \"unix:{}\"\n[hook]\nfifo_dir = {:?}\n",
        tmp.path().join("no-such-daemon.sock").display(),
        fifo_dir
    ));
    let home = tmp.path().join("home");
    let mut sh = Recorded::start(&env, &home, "PS1='PROMPT> '\n");
    sh.install_hook(&env, "bash");
    sh.run("echo one");
    sh.run("false");
    sh.exit();
    let m = meta(&env, "queue");
    // session-start and the two commands could not be sent (session-end comes after meta.json).
    assert_eq!(m["syslog_dropped"], 3, "{m}");
    assert_eq!(m["commands"], 2);
    let rec = env.recordings("queue").remove(0);
    let log = String::from_utf8(read(&rec.join("commands.log"))).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].starts_with("time=20"), "{log}");
    assert!(lines[0].ends_with(&format!(
        " seq=1 status=0 pid={} cwd={} cmd=\"echo one\"",
        m["shell_pid"],
        home.display()
    )));
    assert!(lines[1].contains(" seq=2 status=1 "), "{log}");
    // The FIFO directory is gone with the session.
    assert_eq!(std::fs::read_dir(&fifo_dir).unwrap().count(), 0);
}
