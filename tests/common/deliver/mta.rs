//! A real SMTP server on loopback for delivery tests: msmtpd (Debian msmtp-mta) storing every message it accepts,
//! with its envelope, as a file; and msmtp as a real `sendmail`. Messages are parsed by Python's `email` package.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now, and that no other test of this process has been given.
pub fn free_port() -> u16 {
    crate::common::unclaimed_port(|| {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
}

/// msmtpd on 127.0.0.1; every accepted message lands in `dir/inbox` as one file.
pub struct Mta {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// `--auth=USER,passwordeval` when set.
    auth: Option<String>,
}

impl Mta {
    /// A running server.
    pub fn start() -> Mta {
        let mut m = Mta::down();
        m.up();
        m
    }

    /// A server that is not running yet (its port refuses connections): `up()` starts it on the same port.
    pub fn down() -> Mta {
        let dir = tempfile::Builder::new()
            .prefix("auditty-mta-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        std::fs::set_permissions(&inbox, std::fs::Permissions::from_mode(0o777)).unwrap();
        // $1 = envelope sender, then the recipients; the message on stdin.
        let store = dir.path().join("store.sh");
        std::fs::write(
            &store,
            format!(
                "#!/bin/sh\nset -e\nd={inbox}\n\
                 if [ -f \"$d/../reject-permanent\" ]; then cat >/dev/null; exit 1; fi\n\
                 if [ -f \"$d/../reject-temporary\" ]; then cat >/dev/null; exit 75; fi\n\
                 t=$(mktemp \"$d/.in.XXXXXX\")\n\
                 {{ printf 'X-Test-Envelope-From: %s\\n' \"$1\"; shift; printf 'X-Test-Envelope-To: %s\\n' \"$*\"; cat; }} > \"$t\"\n\
                 mv \"$t\" \"$d/msg-$(date +%s%N)-$$.eml\"\n\
                 if [ -x \"$d/../on-accept\" ]; then \"$d/../on-accept\"; fi\n",
                inbox = inbox.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
        Mta {
            port: free_port(),
            dir,
            child: None,
            auth: None,
        }
    }

    /// A running server that requires SMTP authentication as `user` with `password`.
    pub fn start_with_auth(user: &str, password: &str) -> Mta {
        let mut m = Mta::down();
        let pw = m.dir.path().join("server-password");
        std::fs::write(&pw, password).unwrap();
        m.auth = Some(format!("--auth={user},cat {}", pw.display()));
        m.up();
        m
    }

    /// Start msmtpd and wait until it accepts connections.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "already up");
        for _ in 0..5 {
            let mut cmd = Command::new("msmtpd");
            if let Some(a) = &self.auth {
                cmd.arg(a);
            }
            let mut child = cmd
                .arg("--interface=127.0.0.1")
                .arg(format!("--port={}", self.port))
                .arg(format!(
                    "--log={}",
                    self.dir.path().join("msmtpd.log").display()
                ))
                .arg(format!(
                    "--command={} %F",
                    self.dir.path().join("store.sh").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("msmtpd (apt-get install msmtp-mta)");
            let end = Instant::now() + Duration::from_secs(5);
            loop {
                // Ours only if it greets like an SMTP server and our msmtpd is still running: a port taken by another
                // process meanwhile also accepts the connection, and msmtpd then exits because it cannot bind.
                if let Ok(mut c) = TcpStream::connect(("127.0.0.1", self.port)) {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut greeting = [0u8; 4];
                    let smtp = std::io::Read::read_exact(&mut c, &mut greeting).is_ok()
                        && &greeting[..3] == b"220";
                    drop(c);
                    if smtp && child.try_wait().unwrap().is_none() {
                        self.child = Some(child);
                        return;
                    }
                }
                if child.try_wait().unwrap().is_some() || Instant::now() > end {
                    // The port was taken meanwhile: take another one.
                    let _ = child.kill();
                    let _ = child.wait();
                    self.port = free_port();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("msmtpd did not start");
    }

    /// Stop the server: connections are refused until `up()`.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Answer every message with 554 (permanent failure) while `on`.
    pub fn reject_permanently(&self, on: bool) {
        self.flag("reject-permanent", on);
    }

    /// Answer every message with 451 (try again later) while `on`.
    pub fn reject_temporarily(&self, on: bool) {
        self.flag("reject-temporary", on);
    }

    /// Run the shell script `script` (None: nothing) while each message is taken in, before the server answers
    /// that it accepted it: what happens there happens after the mail is safe and before the client knows it.
    pub fn on_accept(&self, script: Option<&str>) {
        let p = self.dir.path().join("on-accept");
        match script {
            Some(s) => {
                std::fs::write(&p, format!("#!/bin/sh\nset -e\n{s}\n")).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            None => {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    fn flag(&self, name: &str, on: bool) {
        let p = self.dir.path().join(name);
        if on {
            std::fs::write(p, "").unwrap();
        } else {
            let _ = std::fs::remove_file(p);
        }
    }

    /// `mail.transport` for this server.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// A real sendmail: msmtp delivering to this server (exit 75 when it is down).
    pub fn sendmail(&self) -> PathBuf {
        let p = self.dir.path().join("sendmail");
        if !p.exists() {
            std::fs::write(
                &p,
                format!(
                    "#!/bin/sh\nexec /usr/bin/msmtp --host=127.0.0.1 --port={} --auto-from=off \"$@\"\n",
                    self.port
                ),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        p
    }

    /// Files of the messages received so far, oldest first.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("inbox"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        v.sort();
        v
    }

    /// Wait (bounded) until at least `n` messages arrived; return all of them, parsed.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let end = Instant::now() + timeout;
        loop {
            let f = self.files();
            if f.len() >= n || Instant::now() > end {
                return f.iter().map(|p| Received::parse(p)).collect();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.files().iter().map(|p| Received::parse(p)).collect()
    }
}

impl Drop for Mta {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Parse with Python's standard `email` package (an independent MIME implementation).
const PARSER: &str = r#"
import email, json, os, sys
from email import policy
raw = open(sys.argv[1], 'rb').read()
msg = email.message_from_bytes(raw, policy=policy.default)
out = {"raw_headers": [[k, v] for k, v in msg.raw_items()],
       "headers": [[k, str(v)] for k, v in msg.items()],
       "defects": [repr(d) for d in msg.defects], "attachments": [], "body": None, "content_type": msg.get_content_type()}
os.makedirs(sys.argv[2], exist_ok=True)
for part in msg.walk():
    if part.is_multipart():
        continue
    out["defects"] += [repr(d) for d in part.defects]
    fn = part.get_filename()
    if fn:
        p = os.path.join(sys.argv[2], os.path.basename(fn))
        open(p, 'wb').write(part.get_payload(decode=True))
        out["attachments"].append({"name": fn, "type": part.get_content_type(), "path": p})
    elif part.get_content_type() == "text/plain" and out["body"] is None:
        out["body"] = part.get_content()
print(json.dumps(out))
"#;

/// One message as the server stored it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: PathBuf,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    /// Header (name, raw value) pairs as they appear in the message (after our two envelope lines).
    pub raw_headers: Vec<(String, String)>,
    /// Decoded header values.
    pub headers: Vec<(String, String)>,
    pub defects: Vec<String>,
    pub content_type: String,
    pub body: String,
    /// (file name, content type, extracted path)
    pub attachments: Vec<(String, String, PathBuf)>,
}

impl Received {
    pub fn parse(path: &Path) -> Received {
        let out_dir = path.with_extension("parts");
        let o = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(PARSER)
            .arg(path)
            .arg(&out_dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let pairs = |k: &str| -> Vec<(String, String)> {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_string(),
                        p[1].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let raw_headers = pairs("raw_headers");
        let get = |n: &str| {
            raw_headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Received {
            path: path.to_path_buf(),
            envelope_from: get("X-Test-Envelope-From"),
            envelope_to: get("X-Test-Envelope-To")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            headers: pairs("headers"),
            raw_headers,
            defects: v["defects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_string())
                .collect(),
            content_type: v["content_type"].as_str().unwrap().to_string(),
            body: v["body"].as_str().unwrap_or("").to_string(),
            attachments: v["attachments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["name"].as_str().unwrap().to_string(),
                        a["type"].as_str().unwrap().to_string(),
                        PathBuf::from(a["path"].as_str().unwrap()),
                    )
                })
                .collect(),
        }
    }

    /// A decoded header value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    pub fn attachment(&self, name: &str) -> PathBuf {
        self.attachments
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no attachment {name} in {:?}", self.attachments))
            .2
            .clone()
    }
}

/// gunzip the attachments (real gzip) into a fresh directory, replay them with the real scriptreplay, and return
/// (replayed output, typescript bytes, directory).
pub fn gunzip_and_replay(m: &Received) -> (Vec<u8>, Vec<u8>, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    for (name, ty, path) in &m.attachments {
        assert_eq!(ty, "application/gzip", "{name}");
        std::fs::copy(path, d.path().join(name)).unwrap();
    }
    let names: Vec<&str> = m.attachments.iter().map(|(n, _, _)| n.as_str()).collect();
    let st = Command::new("gunzip")
        .args(&names)
        .current_dir(d.path())
        .status()
        .unwrap();
    assert!(st.success(), "gunzip {names:?}");
    let o = Command::new("scriptreplay")
        .args(["-t", "timing", "typescript", "-m", "0.0001"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "scriptreplay: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ts = std::fs::read(d.path().join("typescript")).unwrap();
    (o.stdout, ts, d)
}

/// `sha256sum FILE` (the real tool).
pub fn sha256sum(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()[..64].to_string()
}

/// The body bytes of a typescript: everything after the header line, up to the footer.
pub fn typescript_body(ts: &[u8]) -> &[u8] {
    let start = ts
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let end = find_last(ts, b"\nScript done on ").unwrap_or(ts.len());
    &ts[start..end.max(start)]
}

fn find_last(h: &[u8], n: &[u8]) -> Option<usize> {
    (0..=h.len().saturating_sub(n.len()))
        .rev()
        .find(|&i| &h[i..i + n.len()] == n)
}

/// Write `text` to a new file `name` in `dir` with `mode`.
pub fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}
