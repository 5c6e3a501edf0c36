//! Session events reach a real rsyslogd over the unix socket, UDP and TCP, escaped, and survive a daemon restart.

mod common;

use std::time::Duration;

use common::rsyslog::Rsyslog;
use common::*;

fn session_with(target: &str, rs: &Rsyslog, cmd: &str) -> Env {
    let env = Env::new(&format!(
        "[syslog]\ntarget = \"{target}\"\nfacility = \"local3\"\n"
    ));
    let _ = rs;
    let mut s = spawn_session(&env, &["-c", cmd], 10_000);
    s.exp_eof().unwrap();
    env
}

fn rec_id(env: &Env) -> String {
    let recs = env.wait_for("queue", 1, Duration::from_secs(10));
    let d = recs
        .first()
        .or(env.recordings("sent").first())
        .cloned()
        .expect("a finished recording");
    d.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn start_and_end_over_the_unix_socket() {
    let rs = Rsyslog::start();
    let env = session_with(&format!("unix:{}", rs.socket.display()), &rs, "exit 3");
    let id = rec_id(&env);
    let start = rs.wait_lines(
        &["event=session-start", &format!("rec={id}")],
        1,
        Duration::from_secs(5),
    );
    assert_eq!(start.len(), 1, "{:?}", rs.lines());
    assert!(start[0].contains("pri=local3.info"), "{}", start[0]);
    assert!(start[0].contains(" user=root uid=0 "), "{}", start[0]);
    assert!(start[0].contains(" shell=/bin/bash "), "{}", start[0]);
    let end = rs.wait_lines(
        &["event=session-end", &format!("rec={id}")],
        1,
        Duration::from_secs(5),
    );
    assert_eq!(end.len(), 1, "{:?}", rs.lines());
    assert!(end[0].contains(" exit=3 end=exit "), "{}", end[0]);
    assert!(end[0].contains(" syslog_dropped=0"), "{}", end[0]);
}

#[test]
fn udp_and_tcp_targets() {
    let rs = Rsyslog::start();
    for proto in ["udp", "tcp"] {
        let env = session_with(&format!("{proto}://127.0.0.1:{}", rs.port), &rs, "exit 0");
        let id = rec_id(&env);
        let lines = rs.wait_lines(&[&format!("rec={id}")], 2, Duration::from_secs(5));
        assert_eq!(lines.len(), 2, "{proto}: {:?}", rs.lines());
        assert!(
            lines[0].contains("ip=127.0.0.1") && lines[0].contains("event=session-start"),
            "{proto}: {}",
            lines[0]
        );
        assert!(
            lines[1].contains("event=session-end"),
            "{proto}: {}",
            lines[1]
        );
    }
}

#[test]
fn events_after_a_daemon_restart_are_not_lost() {
    let mut rs = Rsyslog::start();
    let env = Env::new(&format!(
        "[syslog]\ntarget = \"unix:{}\"\n",
        rs.socket.display()
    ));
    let mut s = spawn_session(&env, &["-c", "read line; exit 4"], 10_000);
    let start = rs.wait_lines(&["event=session-start"], 1, Duration::from_secs(5));
    assert_eq!(start.len(), 1);
    rs.restart();
    s.send_line("go").unwrap();
    s.exp_eof().unwrap();
    let end = rs.wait_lines(
        &["event=session-end", " exit=4 "],
        1,
        Duration::from_secs(5),
    );
    assert_eq!(
        end.len(),
        1,
        "session-end lost after restart: {:?}",
        rs.lines()
    );
}

#[test]
fn unreachable_syslog_never_blocks_the_session_and_is_counted() {
    let env = Env::new("[syslog]\ntarget = \"unix:/nonexistent/auditty.sock\"\n");
    let mut s = spawn_session(&env, &["-c", "echo done"], 10_000);
    s.exp_string("done").unwrap();
    s.exp_eof().unwrap();
    let recs = env.wait_for("queue", 1, Duration::from_secs(10));
    let meta = String::from_utf8(read(&recs[0].join("meta.json"))).unwrap();
    assert!(meta.contains("\"syslog_dropped\": 1"), "{meta}");
}
