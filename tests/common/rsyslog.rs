//! A real rsyslogd for tests: foreground, private config, its own unix socket (imuxsock with SysSock.Use="off",
//! so the host's /dev/log is untouched) and UDP/TCP inputs on free loopback ports; everything it receives goes
//! to one file, one message per line.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// One line rsyslog wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// e.g. "local0.info"
    pub pri: String,
    pub app: String,
    pub pid: String,
    pub msgid: String,
    /// The message, leading space (RFC 3164) removed.
    pub msg: String,
}

pub struct Rsyslog {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub udp_port: u16,
    pub tcp_port: u16,
    out: PathBuf,
    child: Option<Child>,
}

/// Whether rsyslogd is installed (tests that need it say so and pass vacuously otherwise).
pub fn available() -> bool {
    Path::new(RSYSLOGD).exists()
}

fn free_ports() -> (u16, u16) {
    let udp = super::unclaimed_port(|| {
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    });
    let tcp = super::unclaimed_port(|| {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    });
    (udp, tcp)
}

impl Rsyslog {
    /// Configure and start rsyslogd in `dir`; returns once it has logged a probe sent through each input.
    pub fn start(dir: &Path) -> Rsyslog {
        let (udp_port, tcp_port) = free_ports();
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let socket = dir.join("log.sock");
        let out = dir.join("messages.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}" CreatePath="on")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp_port}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}")
template(name="t" type="string" string="pri=%syslogfacility-text%.%syslogseverity-text% app=%app-name% pid=%procid% msgid=%msgid% msg=%msg:::drop-last-lf%\n")
*.* action(type="omfile" file="{out}" template="t")
"#,
                work = work.display(),
                sock = socket.display(),
                out = out.display(),
            ),
        )
        .unwrap();
        let mut r = Rsyslog {
            dir: dir.to_path_buf(),
            socket,
            udp_port,
            tcp_port,
            out,
            child: None,
        };
        r.launch();
        r
    }

    fn launch(&mut self) {
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Ready means a probe through the unix socket and one through TCP both arrived.
    fn wait_ready(&self) {
        let token = format!(
            "probe-{}",
            Instant::now().elapsed().as_nanos() ^ std::process::id() as u128
        );
        let end = Instant::now() + Duration::from_secs(20);
        let mut n = 0u32;
        loop {
            n += 1;
            let tag = format!("{token}-{n}");
            let _ = Command::new("logger")
                .args(["--socket-errors=off", "-u"])
                .arg(&self.socket)
                .args(["-t", "probe", &format!("unix {tag}")])
                .stderr(Stdio::null())
                .status();
            let _ = Command::new("logger")
                .args(["-T", "-n", "127.0.0.1", "-P", &self.tcp_port.to_string()])
                .args(["-t", "probe", &format!("tcp {tag}")])
                .stderr(Stdio::null())
                .status();
            let got = self
                .wait_for(Duration::from_millis(300), |ls| {
                    ls.iter().any(|l| l.msg == format!("unix {tag}"))
                        && ls.iter().any(|l| l.msg == format!("tcp {tag}"))
                })
                .is_some();
            if got {
                return;
            }
            assert!(Instant::now() < end, "rsyslogd did not come up");
        }
    }

    /// Everything logged so far (probes excluded).
    pub fn lines(&self) -> Vec<Line> {
        let text = std::fs::read(&self.out).unwrap_or_default();
        String::from_utf8_lossy(&text)
            .lines()
            .filter_map(parse_line)
            .filter(|l| l.app != "probe")
            .collect()
    }

    fn all_lines(&self) -> Vec<Line> {
        let text = std::fs::read(&self.out).unwrap_or_default();
        String::from_utf8_lossy(&text)
            .lines()
            .filter_map(parse_line)
            .collect()
    }

    /// Wait (bounded) until `pred` holds for what rsyslog has written; returns the lines then.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Line]) -> bool) -> Option<Vec<Line>> {
        let end = Instant::now() + timeout;
        loop {
            let ls = self.all_lines();
            if pred(&ls) {
                return Some(ls.into_iter().filter(|l| l.app != "probe").collect());
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop rsyslogd (SIGTERM) and wait until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    /// Start it again (same config, ports and socket), once stopped.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse_line(l: &str) -> Option<Line> {
    let rest = l.strip_prefix("pri=")?;
    let (pri, rest) = rest.split_once(" app=")?;
    let (app, rest) = rest.split_once(" pid=")?;
    let (pid, rest) = rest.split_once(" msgid=")?;
    let (msgid, msg) = rest.split_once(" msg=")?;
    Some(Line {
        pri: pri.into(),
        app: app.into(),
        pid: pid.into(),
        msgid: msgid.into(),
        msg: msg.strip_prefix(' ').unwrap_or(msg).into(),
    })
}
