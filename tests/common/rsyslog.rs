//! A real rsyslogd in the foreground on a private unix socket and loopback UDP/TCP ports (the host's /dev/log is
//! never touched: imuxsock runs with SysSock.Use="off").

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Rsyslog {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub port: u16,
    pub log: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    // A TCP port that is free now; the same number is used for UDP.
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Rsyslog {
    pub fn start() -> Rsyslog {
        let dir = tempfile::Builder::new()
            .prefix("auditty-rsyslog-")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("log.sock");
        let log = dir.path().join("messages.log");
        let port = free_port();
        let mut r = Rsyslog {
            dir,
            socket,
            port,
            log,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        std::fs::create_dir_all(d.join("work")).unwrap();
        let conf = format!(
            r#"global(workDirectory="{d}/work")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}" CreatePath="on")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{port}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="testfmt" type="string" string="ip=%fromhost-ip% pri=%syslogfacility-text%.%syslogseverity-text% app=%app-name% msg=%msg:::drop-last-lf%\n")
*.* action(type="omfile" file="{log}" template="testfmt")
"#,
            d = d.display(),
            sock = self.socket.display(),
            port = self.port,
            log = self.log.display()
        );
        let conf_path = d.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(d.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd (apt-get install rsyslog)");
        self.child = Some(child);
        // Ready when the socket exists and a probe line sent through it has been written.
        let end = Instant::now() + Duration::from_secs(10);
        let probe = format!("probe-{}", std::process::id());
        while Instant::now() < end {
            if self.socket.exists() {
                let _ = Command::new("logger")
                    .arg("--socket")
                    .arg(&self.socket)
                    .arg("-t")
                    .arg("probe")
                    .arg(&probe)
                    .status();
                if self.lines().iter().any(|l| l.contains(&probe)) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("rsyslogd did not come up");
    }

    /// Stop and start again on the same socket and port (a daemon restart).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Lines from app `auditty` whose message contains all of `needles`, waiting (bounded) for at least `n`.
    pub fn wait_lines(&self, needles: &[&str], n: usize, timeout: Duration) -> Vec<String> {
        let end = Instant::now() + timeout;
        loop {
            let v: Vec<String> = self
                .lines()
                .into_iter()
                .filter(|l| l.contains("app=auditty") && needles.iter().all(|x| l.contains(x)))
                .collect();
            if v.len() >= n || Instant::now() > end {
                return v;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}
