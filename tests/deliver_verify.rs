//! `auditty verify` checks a recording against the sums in its meta.json, and reads nothing but the recording's own
//! files: a meta.json that names other paths, or a file swapped for a symlink, is reported, not followed.

mod common;

use std::time::Duration;

use common::deliver::*;

const T: Duration = Duration::from_secs(10);

#[test]
fn verify_reads_only_the_recordings_own_files_and_never_through_a_symlink() {
    let env = env_with("", "transport = \"none\"");
    let mut t = session(&env, "echo verified-$((6*7))");
    t.expect("verified-42", T);
    t.wait(T);
    let rec = env.wait_for("queue", 1, T).remove(0);
    let id = rec.file_name().unwrap().to_str().unwrap().to_string();
    let v = run(&env, &["verify", &id]);
    assert!(v.status.success(), "{}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("OK       typescript"),
        "{}",
        text(&v)
    );

    // A secret outside the recording, and a meta.json that names it (as a path, and as a path through `..`).
    let secret = env.dir.path().join("secret");
    std::fs::write(&secret, "not part of any recording\n").unwrap();
    let mut m = meta(&rec);
    let sum = m["files"]["typescript"].clone();
    m["files"][secret.to_str().unwrap()] = sum.clone();
    m["files"]["../../secret"] = sum;
    std::fs::write(rec.join("meta.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    // The timing swapped for a symlink to the secret.
    std::fs::remove_file(rec.join("timing")).unwrap();
    std::os::unix::fs::symlink(&secret, rec.join("timing")).unwrap();

    let v = run(&env, &["verify", &id]);
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(out.contains("OK       typescript"), "{}", text(&v));
    assert!(
        out.contains(&format!(
            "UNKNOWN  {:?} is not a recording's file name; not read",
            secret.to_str().unwrap()
        )),
        "{}",
        text(&v)
    );
    assert!(
        out.contains("UNKNOWN  \"../../secret\" is not a recording's file name; not read"),
        "{}",
        text(&v)
    );
    assert!(
        out.lines().any(|l| l.starts_with("ERROR    timing")
            && l.contains("is a symlink, which is never followed")),
        "{}",
        text(&v)
    );
    // Nothing of the secret was read: its size appears nowhere.
    let secret_len = std::fs::metadata(&secret).unwrap().len().to_string();
    assert!(
        !out.contains(&format!(" {secret_len} bytes")),
        "{}",
        text(&v)
    );
    assert!(
        String::from_utf8_lossy(&v.stderr).contains("3 problem(s)"),
        "{}",
        text(&v)
    );
}
