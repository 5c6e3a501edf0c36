//! SMTP over TLS (implicit and STARTTLS) with certificate verification against `mail.tls_ca_file` or the system CA
//! store, SMTP authentication with `mail.password_file`, and the refusals that keep recordings from leaking: no
//! downgrade when STARTTLS is required, no password in clear text, no CA taken from the user's environment.

mod common;

use std::process::Command;
use std::time::Duration;

use common::deliver::tls::*;
use common::deliver::*;
use common::*;

const T: Duration = Duration::from_secs(10);

fn mail(transport: &str, extra: &str) -> String {
    format!(
        "transport = {transport:?}\nto = \"auditors@example.com\"\nfrom = \"auditty@test.example\"\ntimeout = 5\nretry_min = 0\n{extra}"
    )
}

fn one_recording(env: &Env, state: &str) -> serde_json::Value {
    let v = env.recordings(state);
    assert_eq!(v.len(), 1, "{state}: {v:?}");
    meta(&v[0])
}

#[test]
fn smtps_with_configured_ca_delivers_over_tls() {
    let mta = Mta::start();
    let pki = Pki::new();
    let front = TlsFront::start(&pki, "smtps", mta.port);
    let env = env_with(
        "",
        &mail(
            &format!("smtps://127.0.0.1:{}", front.port),
            &format!("tls_ca_file = {:?}\n", pki.ca),
        ),
    );
    let mut t = session(&env, "echo over-implicit-tls");
    t.wait(T);
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1, "front log: {}", front.log_text());
    assert!(
        front.log_text().contains("tls TLSv1."),
        "{}",
        front.log_text()
    );
    assert!(String::from_utf8_lossy(&gunzip_and_replay(&msgs[0]).0).contains("over-implicit-tls"));
}

#[test]
fn starttls_required_verifies_against_the_system_store_not_the_users_environment() {
    let mta = Mta::start();
    let pki = Pki::new();
    let front = TlsFront::start(&pki, "starttls", mta.port);
    let url = format!("smtp://127.0.0.1:{}?tls=required", front.port);
    let env = env_with("", &mail(&url, ""));
    // The user points SSL_CERT_FILE at the attacker's CA (here: ours, which the system does not trust). The spool
    // writer ignores its environment, so verification fails and the recording stays queued.
    let mut c = session_cmd(&env, "echo env-ca-ignored");
    c.env("SSL_CERT_FILE", &pki.ca);
    let mut t = Term::spawn(&c, None);
    t.wait(T);
    wait_settled(&env, 1);
    let m = one_recording(&env, "queue");
    let err = m["last_error"].as_str().unwrap();
    assert!(
        err.contains("certificate") || err.contains("Certificate"),
        "{err}"
    );
    assert!(mta.files().is_empty());
    assert!(
        !front.log_text().contains("tls TLS"),
        "{}",
        front.log_text()
    );

    // With the CA added to the system store (/etc/ssl/certs, via an overlay in a private mount namespace), flush
    // delivers it over STARTTLS.
    let up = env.dir.path().join("etc-up");
    let work = env.dir.path().join("etc-work");
    std::fs::create_dir_all(up.join("ssl/certs")).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let mut bundle = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap();
    bundle.extend_from_slice(&std::fs::read(&pki.ca).unwrap());
    std::fs::write(up.join("ssl/certs/ca-certificates.crt"), bundle).unwrap();
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc && exec \"$@\"",
            up.display(),
            work.display()
        ))
        .arg("sh")
        .arg(BIN)
        .arg("--config")
        .arg(&env.config)
        .arg("flush")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    assert!(
        front.log_text().contains("tls TLSv1."),
        "{}",
        front.log_text()
    );
    assert!(
        !front.log_text().contains("plain command refused"),
        "{}",
        front.log_text()
    );
    assert!(String::from_utf8_lossy(&gunzip_and_replay(&msgs[0]).0).contains("env-ca-ignored"));
}

#[test]
fn starttls_required_never_falls_back_to_clear_text() {
    // msmtpd offers no STARTTLS: the recording must not go out in clear text.
    let mta = Mta::start();
    let env = env_with(
        "",
        &mail(&format!("smtp://127.0.0.1:{}?tls=required", mta.port), ""),
    );
    let mut t = session(&env, "echo must-not-leak");
    t.wait(T);
    wait_settled(&env, 1);
    let m = one_recording(&env, "queue");
    assert!(
        m["last_error"].as_str().unwrap().contains("STARTTLS"),
        "{m}"
    );
    assert!(mta.files().is_empty());
}

#[test]
fn smtp_authentication_with_password_file() {
    let mta = Mta::start_with_auth("auditty-relay", "s3cret pass");
    let pwdir = tempfile::tempdir().unwrap();
    let pw = write_file(pwdir.path(), "pw", "s3cret pass\n", 0o640);
    let env = env_with(
        "",
        &mail(
            &mta.url(),
            &format!("user = \"auditty-relay\"\npassword_file = {pw:?}\n"),
        ),
    );
    let mut t = session(&env, "echo authenticated");
    t.wait(T);
    let msgs = mta.wait_for(1, T);
    assert_eq!(msgs.len(), 1);
    assert!(String::from_utf8_lossy(&gunzip_and_replay(&msgs[0]).0).contains("authenticated"));

    // A wrong password is refused by the server (535): the credentials are wrong, not the recording, so it stays
    // queued (retried with backoff) instead of going to failed/, and a flush does not try the server again for
    // every queued recording.
    std::fs::write(&pw, "wrong\n").unwrap();
    for i in 0..2 {
        let mut t = session(&env, &format!("echo wrong-password-{i}"));
        t.wait(T);
        wait_settled(&env, 2 + i);
    }
    assert!(env.recordings("failed").is_empty());
    let queued = env.recordings("queue");
    assert_eq!(queued.len(), 2);
    for d in &queued {
        assert!(
            meta(d)["last_error"].as_str().unwrap().contains("535"),
            "{}",
            meta(d)
        );
    }
    let f = run(&env, &["flush"]);
    assert_eq!(f.status.code(), Some(75), "{}", text(&f));
    let err = String::from_utf8_lossy(&f.stderr);
    assert!(
        err.contains("535") && err.contains("not tried: the server failed for"),
        "{}",
        text(&f)
    );

    // A password file everyone can read is not used at all.
    std::fs::write(&pw, "s3cret pass\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let f = run(&env, &["flush", "--all"]);
    assert_eq!(f.status.code(), Some(75), "{}", text(&f));
    assert!(
        String::from_utf8_lossy(&f.stderr)
            .contains("is readable by everyone (mode 644); make it root:auditty, mode 0640"),
        "{}",
        text(&f)
    );
    // Fixed: delivered.
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let f = run(&env, &["flush", "--all"]);
    assert!(f.status.success(), "{}", text(&f));
    assert_eq!(mta.wait_for(3, T).len(), 3);
    assert!(env.recordings("queue").is_empty());
}

#[test]
fn password_is_never_sent_in_clear_text_to_a_remote_host() {
    // A name that resolves nowhere: the refusal happens before any connection is attempted.
    let pwdir = tempfile::tempdir().unwrap();
    let pw = write_file(pwdir.path(), "pw", "x\n", 0o600);
    let env = env_with(
        "",
        &mail(
            "smtp://mail.invalid:25",
            &format!("user = \"u\"\npassword_file = {pw:?}\n"),
        ),
    );
    let mut t = session(&env, "echo no-clear-password");
    t.wait(T);
    wait_settled(&env, 1);
    let m = one_recording(&env, "queue");
    assert!(
        m["last_error"]
            .as_str()
            .unwrap()
            .contains("refusing to send the SMTP password in clear text"),
        "{m}"
    );
}
