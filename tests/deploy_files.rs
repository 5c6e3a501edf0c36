//! The files install.sh ships, checked without installing them: shell syntax, the profile.d script's decisions
//! (against a stand-in `auditty` that answers as told), man pages lint-clean and complete, the configuration template
//! complete and valid. The installed whole is exercised by tests/e2e_deploy.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_auditty");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn repo(p: &str) -> PathBuf {
    Path::new(REPO).join(p)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn shell_scripts_parse_in_every_shell() {
    for (file, shells) in [
        ("profile.d/auditty.sh", &["sh", "dash", "bash", "zsh"][..]),
        ("install.sh", &["sh", "dash", "bash"][..]),
        ("tests/e2e/ns.sh", &["bash"][..]),
    ] {
        for sh in shells {
            if !have(sh) {
                assert_ne!(*sh, "sh", "no sh");
                eprintln!("{sh} not installed: {file} not checked with it");
                continue;
            }
            let o = Command::new(sh).arg("-n").arg(repo(file)).output().unwrap();
            assert!(
                o.status.success() && o.stderr.is_empty(),
                "{sh} -n {file}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

#[test]
fn install_sh_help_and_bad_options() {
    let o = Command::new(repo("install.sh"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for opt in [
        "--binary",
        "--prefix",
        "--sshd",
        "--uninstall",
        "--purge",
        "--dry-run",
        "--mail-to",
        "--transport",
        "DESTDIR",
    ] {
        assert!(help.contains(opt), "--help mentions {opt}");
    }
    let o = Command::new(repo("install.sh"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown option: --bogus"));
    let o = Command::new(repo("install.sh"))
        .arg("--purge")
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "--purge without --uninstall is refused"
    );
}

/// A stand-in for /usr/bin/auditty: logs its arguments, answers `hook` and `session --check` as the environment
/// says (FAKE_HOOK=code[:output], FAKE_CHECK=code[:output], FAKE_HOOK2 for a second hook call).
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new(on_error: &str) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let calls = dir.path().join("calls");
        std::fs::write(
            bin.join("auditty"),
            format!(
                r#"#!/bin/sh
echo "$*" >>{calls}
answer() {{ code=${{1%%:*}}; case $1 in *:*) printf '%s\n' "${{1#*:}}";; esac; exit "$code"; }}
case $1 in
hook)
  if [ -e {calls}.hooked ] && [ -n "${{FAKE_HOOK2-}}" ]; then answer "$FAKE_HOOK2"; fi
  touch {calls}.hooked
  answer "${{FAKE_HOOK:-3}}" ;;
session)
  if [ "${{2-}}" = --check ]; then answer "${{FAKE_CHECK:-0}}"; fi
  echo SESSION-EXEC; exit 0 ;;
esac
exit 99
"#,
                calls = calls.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("auditty"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let script = std::fs::read_to_string(repo("profile.d/auditty.sh"))
            .unwrap()
            .replace("@BINDIR@", bin.to_str().unwrap())
            .replace("@ON_ERROR@", on_error);
        std::fs::write(dir.path().join("profile.sh"), script).unwrap();
        Fake { dir }
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }

    /// Source the script in an interactive `shell` on a PTY, then print AFTER; returns everything printed and the
    /// exit status.
    fn source(&self, shell: &str, env: &[(&str, &str)]) -> (String, i32) {
        let profile = self.dir.path().join("profile.sh");
        let mut c = match shell {
            "zsh" => {
                let mut c = Command::new("zsh");
                c.args(["-f", "-i", "-c"]);
                c
            }
            "bash" => {
                let mut c = Command::new("bash");
                c.args(["--noprofile", "--norc", "-i", "-c"]);
                c
            }
            other => {
                let mut c = Command::new(other);
                c.args(["-i", "-c"]);
                c
            }
        };
        c.arg(format!(". {}; echo AFTER-$((20+3))", profile.display()))
            .env("TERM", "dumb")
            .env("PS1", "");
        for (k, v) in env {
            c.env(k, v);
        }
        let mut s = rexpect::session::spawn_command(c, Some(10_000)).unwrap();
        let out = s.exp_eof().unwrap();
        let status = match s.process().wait().unwrap() {
            nix::sys::wait::WaitStatus::Exited(_, c) => c,
            other => panic!("{other:?}"),
        };
        (out, status)
    }
}

#[test]
fn profile_script_decisions() {
    let shells: Vec<&str> = ["bash", "dash", "zsh"]
        .into_iter()
        .filter(|s| have(s))
        .collect();
    for sh in &shells {
        // Inside a recording: the hook the binary prints is installed, nothing else happens.
        let f = Fake::new("open");
        let (out, st) = f.source(sh, &[("FAKE_HOOK", "0:echo HOOK-INSTALLED")]);
        if *sh == "dash" {
            // No hook for dash: straight to the check, which says "record".
            assert!(out.contains("SESSION-EXEC"), "{sh}: {out}");
        } else {
            assert!(
                out.contains("HOOK-INSTALLED") && out.contains("AFTER-23"),
                "{sh}: {out}"
            );
            assert!(!f.calls().contains("session"), "{sh}: {}", f.calls());
        }
        assert_eq!(st, 0);

        // Not inside, record: the shell is replaced by `auditty session` (exec: nothing after it runs).
        let f = Fake::new("open");
        let (out, _) = f.source(sh, &[("FAKE_HOOK", "3"), ("FAKE_CHECK", "0:record")]);
        assert!(
            out.contains("SESSION-EXEC") && !out.contains("AFTER-23"),
            "{sh}: {out}"
        );
        assert!(
            f.calls().ends_with("session --check\nsession\n"),
            "{sh}: {}",
            f.calls()
        );

        // Exempt: the login goes on, quietly.
        let f = Fake::new("open");
        let (out, _) = f.source(sh, &[("FAKE_CHECK", "4:exempt: user x")]);
        assert!(
            out.contains("AFTER-23") && !out.contains("exempt"),
            "{sh}: {out}"
        );

        // Inside, but the hook did not know the terminal yet: asked once more.
        if *sh != "dash" {
            let f = Fake::new("open");
            let (out, _) = f.source(
                sh,
                &[
                    ("FAKE_HOOK", "3"),
                    ("FAKE_CHECK", "3:inside: recording r1"),
                    ("FAKE_HOOK2", "0:echo HOOK-ON-RETRY"),
                ],
            );
            assert!(
                out.contains("HOOK-ON-RETRY") && out.contains("AFTER-23"),
                "{sh}: {out}"
            );
        }

        // Cannot record, policy open: the login goes on (the failure goes to syslog with logger).
        let f = Fake::new("open");
        let (out, st) = f.source(
            sh,
            &[("FAKE_CHECK", "5:cannot record (open): spool.dir: gone")],
        );
        assert!(out.contains("AFTER-23"), "{sh}: {out}");
        assert_eq!(st, 0);

        // Cannot record, policy closed: refused with a message, nothing after it runs.
        let f = Fake::new("open");
        let (out, st) = f.source(
            sh,
            &[("FAKE_CHECK", "6:cannot record (closed): spool.dir: gone")],
        );
        assert!(
            out.contains("login refused (policy.on_error = closed)"),
            "{sh}: {out}"
        );
        assert!(
            out.contains("spool.dir: gone") && !out.contains("AFTER-23"),
            "{sh}: {out}"
        );
        assert_eq!(st, 1);

        // Cannot record and the configuration cannot be read: the installed policy decides, either way.
        let why = "7:cannot record (policy.on_error unknown): cannot read config /etc/auditty.conf";
        let f = Fake::new("open");
        let (out, st) = f.source(sh, &[("FAKE_CHECK", why)]);
        assert!(out.contains("AFTER-23") && st == 0, "{sh}: {out}");
        let f = Fake::new("closed");
        let (out, st) = f.source(sh, &[("FAKE_CHECK", why)]);
        assert!(
            out.contains("login refused (policy.on_error = closed)")
                && out.contains("the policy install.sh wrote into this file applies: closed")
                && !out.contains("AFTER-23"),
            "{sh}: {out}"
        );
        assert_eq!(st, 1);

        // The binary crashes: the fallback policy decides.
        let f = Fake::new("open");
        let (out, _) = f.source(sh, &[("FAKE_CHECK", "139")]);
        assert!(out.contains("AFTER-23"), "{sh}: {out}");
        let f = Fake::new("closed");
        let (out, st) = f.source(sh, &[("FAKE_CHECK", "139")]);
        assert!(
            out.contains("login refused") && !out.contains("AFTER-23"),
            "{sh}: {out}"
        );
        assert_eq!(st, 1);
        std::fs::remove_file(f.dir.path().join("bin/auditty")).unwrap();
        let (out, _) = f.source(sh, &[]);
        assert!(
            out.contains("is missing or not executable") && out.contains("login refused"),
            "{sh}: {out}"
        );
    }
}

#[test]
fn profile_script_is_silent_and_inert_without_a_terminal() {
    let f = Fake::new("closed");
    for sh in ["sh", "bash", "dash", "zsh"]
        .into_iter()
        .filter(|s| have(s))
    {
        // Not interactive (scp, rsync, ssh host cmd), even with the binary answering "refuse".
        let o = Command::new(sh)
            .arg("-c")
            .arg(format!(
                ". {}; echo AFTER",
                f.dir.path().join("profile.sh").display()
            ))
            .env("FAKE_CHECK", "6:refuse")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), "AFTER\n", "{sh}");
        assert!(
            o.stderr.is_empty(),
            "{sh}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(f.calls(), "", "auditty is not even asked");
}

/// Fields of `pub struct <name>` in src/config.rs.
fn struct_fields(src: &str, name: &str) -> Vec<String> {
    let start = src.find(&format!("pub struct {name} {{")).unwrap();
    let body = &src[start..start + src[start..].find("\n}").unwrap()];
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split(':').next())
        .filter(|f| !f.starts_with("struct"))
        .map(str::to_string)
        .collect()
}

#[test]
fn config_template_and_man_page_cover_every_key() {
    let src = std::fs::read_to_string(repo("src/config.rs")).unwrap();
    let template = std::fs::read_to_string(repo("etc/auditty.conf")).unwrap();
    let man = std::fs::read_to_string(repo("man/auditty.conf.5")).unwrap();
    let sections = struct_fields(&src, "Config");
    assert!(sections.len() >= 6, "{sections:?}");
    for section in &sections {
        let ty = format!("{}{}", section[..1].to_uppercase(), &section[1..]);
        let keys = struct_fields(&src, &ty);
        assert!(!keys.is_empty(), "{ty}");
        let t_at = template
            .find(&format!("\n[{section}]\n"))
            .unwrap_or_else(|| panic!("etc/auditty.conf has [{section}]"));
        let t_sec = &template[t_at + 1..];
        let t_sec = &t_sec[..t_sec[1..].find("\n[").map(|i| i + 1).unwrap_or(t_sec.len())];
        let m_at = man
            .find(&format!(".SH [{section}]\n"))
            .unwrap_or_else(|| panic!("auditty.conf.5 has .SH [{section}]"));
        let m_sec = &man[m_at..];
        let m_sec = &m_sec[..m_sec[4..]
            .find("\n.SH ")
            .map(|i| i + 4)
            .unwrap_or(m_sec.len())];
        for key in keys {
            assert!(
                t_sec.contains(&format!("\n#{key} = ")),
                "etc/auditty.conf documents {section}.{key} (commented, with its default)"
            );
            assert!(
                m_sec.contains(&format!("\n.B {key}\n")),
                "auditty.conf(5) documents {section}.{key}"
            );
        }
    }
}

#[test]
fn config_template_parses_commented_and_uncommented() {
    let d = tempfile::tempdir().unwrap();
    let template = std::fs::read_to_string(repo("etc/auditty.conf")).unwrap();
    let pw = d.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    let uncommented: String = template
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest.to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace("<this host's name>", "host.example")
        .replace("/etc/auditty.smtp-password", pw.to_str().unwrap());
    for (name, text) in [
        ("commented", template.clone()),
        ("uncommented", uncommented),
    ] {
        let p = d.path().join(format!("{name}.conf"));
        std::fs::write(&p, text).unwrap();
        let o = Command::new(BIN)
            .args(["--config", p.to_str().unwrap(), "check-config"])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("ok       configuration parses"),
            "{name} template: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn man_pages_are_lint_clean_and_document_every_subcommand_and_option() {
    for page in ["man/auditty.1", "man/auditty.conf.5"] {
        if have("mandoc") {
            let o = Command::new("mandoc")
                .args(["-Tlint", "-W", "all"])
                .arg(repo(page))
                .output()
                .unwrap();
            assert!(
                o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
                "mandoc -Tlint {page}:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        } else {
            eprintln!("mandoc not installed: {page} not linted with it");
        }
        if have("groff") {
            let o = Command::new("groff")
                .args(["-man", "-ww", "-z"])
                .arg(repo(page))
                .output()
                .unwrap();
            assert!(
                o.status.success() && o.stderr.is_empty(),
                "groff -ww -z {page}:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    let man = std::fs::read_to_string(repo("man/auditty.1")).unwrap();
    let help = |args: &[&str]| {
        let o = Command::new(BIN).args(args).arg("--help").output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let top = help(&[]);
    let subcommands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .map(str::to_string)
        .collect();
    assert!(subcommands.len() >= 7, "{subcommands:?}");
    for sub in &subcommands {
        let roff = sub.replace('-', "\\-");
        assert!(
            man.contains(&format!(".SS auditty {roff}")),
            "auditty(1) has a section for {sub}"
        );
        for opt in help(&[sub])
            .split_whitespace()
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| {
                w.trim_end_matches([',', '.'])
                    .split('=')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .filter(|w| w != "--help")
        {
            assert!(
                man.contains(&opt.replace('-', "\\-")),
                "auditty(1) documents {sub} {opt}"
            );
        }
    }
    for global in ["\\-\\-config", ".BI \\-o "] {
        assert!(man.contains(global), "auditty(1) documents {global}");
    }
}
