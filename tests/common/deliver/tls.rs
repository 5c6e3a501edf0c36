//! TLS for delivery tests: a throw-away CA and server certificate made with the openssl CLI, and a TLS front (Python's
//! ssl module, i.e. OpenSSL) before msmtpd, either implicit TLS (smtps) or STARTTLS.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Pki {
    /// A CA and a certificate for localhost / 127.0.0.1 signed by it.
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("auditty-pki-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut a = vec!["req", "-x509"];
        a.extend_from_slice(&ec);
        a.extend_from_slice(&[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=auditty test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(d, &a);
        let mut a = vec!["req"];
        a.extend_from_slice(&ec);
        a.extend_from_slice(&[
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(d, &a);
        std::fs::write(
            d.join("ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "srv.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "srv.pem",
                "-days",
                "2",
                "-extfile",
                "ext",
            ],
        );
        Pki {
            ca: d.join("ca.pem"),
            cert: d.join("srv.pem"),
            key: d.join("srv.key"),
            dir,
        }
    }
}

const FRONT: &str = r#"
import socket, ssl, sys, threading
mode, cert, key, backend, logpath = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(('127.0.0.1', 0))
ls.listen(16)
print(ls.getsockname()[1], flush=True)
def log(s):
    with open(logpath, 'a') as f:
        f.write(s + '\n')
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except Exception:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except Exception:
        pass
def handle(c):
    try:
        if mode == 'starttls':
            c.sendall(b'220 front ESMTP\r\n')
            f = c.makefile('rb', buffering=0)
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.strip().upper()
                if cmd.startswith(b'EHLO') or cmd.startswith(b'HELO'):
                    c.sendall(b'250-front\r\n250 STARTTLS\r\n')
                elif cmd == b'STARTTLS':
                    c.sendall(b'220 go ahead\r\n')
                    break
                elif cmd == b'QUIT':
                    c.sendall(b'221 bye\r\n')
                    return
                else:
                    log('plain command refused: %r' % cmd)
                    c.sendall(b'530 5.7.0 STARTTLS first\r\n')
        c = ctx.wrap_socket(c, server_side=True)
        log('tls ' + c.version())
        b = socket.create_connection(('127.0.0.1', backend))
        if mode == 'starttls':
            greeting = b''
            while not greeting.endswith(b'\n'):
                greeting += b.recv(1)
        t = threading.Thread(target=pipe, args=(b, c))
        t.start()
        pipe(c, b)
        t.join()
    except Exception as e:
        log('error %r' % e)
while True:
    c, _ = ls.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

/// A TLS front for an msmtpd on `backend` (port).
pub struct TlsFront {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl TlsFront {
    /// `mode`: "smtps" (TLS from the first byte) or "starttls".
    pub fn start(pki: &Pki, mode: &str, backend: u16) -> TlsFront {
        let log = pki.dir.path().join(format!("front-{mode}.log"));
        let mut child = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(FRONT)
            .arg(mode)
            .arg(&pki.cert)
            .arg(&pki.key)
            .arg(backend.to_string())
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("TLS front port");
        TlsFront { child, port, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
