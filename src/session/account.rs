//! The recorded user's passwd entry (name and login shell), read from /etc/passwd when NSS would answer from it.
//!
//! glibc's getpwuid(3) answers from /etc/passwd too on most servers (`passwd: files ...` in /etc/nsswitch.conf),
//! but the first lookup of a process first asks for nscd's socket twice, then reads and parses nsswitch.conf: the
//! step that finds the user's shell took 151 µs of every recorded login's start-up on our VM that way, 79 µs
//! reading the two files directly (docs/benchmarks.md). So when nsswitch.conf has `files` first for passwd, with no action of its own (`files
//! [SUCCESS=continue]` would change what a hit means), and /etc/passwd has the uid on a well-formed line, that line
//! is the answer: the one glibc's files service returns, which stops at the first line with the uid. Anything else
//! (another source first, no nsswitch.conf, NIS `+`/`-` lines, a malformed line, a uid not in the file: LDAP or
//! SSSD users) is asked of getpwuid(3).

use std::path::{Path, PathBuf};

/// The fields of a passwd entry the session needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub shell: PathBuf,
}

const NSSWITCH: &str = "/etc/nsswitch.conf";
const PASSWD: &str = "/etc/passwd";

/// The passwd entry of `uid`, if there is one.
pub fn lookup(uid: u32) -> Option<Account> {
    lookup_in(uid, Path::new(NSSWITCH), Path::new(PASSWD)).or_else(|| from_nss(uid))
}

/// May `shell` be exec'd as the user's shell: an absolute path that is not auditty itself (`own_exe`, and any
/// program named auditty), which would start a recording inside itself.
pub fn is_usable_shell(shell: &Path, own_exe: Option<&Path>) -> bool {
    shell.is_absolute() && Some(shell) != own_exe && !shell.ends_with("auditty")
}

fn from_nss(uid: u32) -> Option<Account> {
    let u = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()?;
    Some(Account {
        name: u.name,
        shell: u.shell,
    })
}

/// The entry from `passwd` when `nsswitch` makes it the authority for `uid` (see the module's doc); `None` means
/// "ask NSS".
fn lookup_in(uid: u32, nsswitch: &Path, passwd: &Path) -> Option<Account> {
    files_first(&std::fs::read_to_string(nsswitch).ok()?).then_some(())?;
    find_uid(&std::fs::read(passwd).ok()?, uid)
}

/// Does the nsswitch.conf text name `files` first for the passwd database, with no action after it? Only one
/// `passwd:` line may be there.
fn files_first(nsswitch: &str) -> bool {
    let mut services = nsswitch
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.strip_prefix("passwd:"));
    let (Some(line), None) = (services.next(), services.next()) else {
        return false;
    };
    let mut words = line.split_whitespace();
    words.next() == Some("files") && words.next().is_none_or(|w| !w.starts_with('['))
}

/// The first line of a passwd file with this uid, as glibc's files service reads it: lines are split at LF, leading
/// blanks dropped, blank lines and comments skipped, lines of fewer than three fields skipped. `None` (ask NSS) as
/// soon as a line is not plain to read: a uid that is not plain decimal (glibc's strtoul would take " 7" or "+7"),
/// the uid's line not seven fields with a decimal gid, or a NIS compat line (`+`, `-`), which the files and compat
/// services read differently.
fn find_uid(passwd: &[u8], uid: u32) -> Option<Account> {
    let decimal = |f: &[u8]| !f.is_empty() && f.iter().all(u8::is_ascii_digit);
    for raw in passwd.split(|&b| b == b'\n') {
        let blank = raw
            .iter()
            .take_while(|b| b" \t\x0b\x0c\r".contains(b))
            .count();
        let line = &raw[blank..];
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        if line[0] == b'+' || line[0] == b'-' {
            return None;
        }
        let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        let [name, _, line_uid, ..] = fields[..] else {
            continue;
        };
        if !decimal(line_uid) {
            return None;
        }
        if std::str::from_utf8(line_uid).ok()?.parse::<u32>().ok()? != uid {
            continue;
        }
        let [_, _, _, gid, _, _, shell] = fields[..] else {
            return None;
        };
        if name.is_empty() || !decimal(gid) {
            return None;
        }
        use std::os::unix::ffi::OsStrExt;
        return Some(Account {
            name: String::from_utf8(name.to_vec()).ok()?,
            shell: PathBuf::from(std::ffi::OsStr::from_bytes(shell)),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, shell: &str) -> Option<Account> {
        Some(Account {
            name: name.into(),
            shell: shell.into(),
        })
    }

    #[test]
    fn nsswitch_must_name_files_first_with_no_action() {
        assert!(files_first("passwd:         files systemd\ngroup: files\n"));
        assert!(files_first("# comment\npasswd: files # trailing\n"));
        assert!(files_first("passwd:\tfiles\n"));
        assert!(!files_first("passwd: sss files\n"));
        assert!(!files_first("passwd: compat\n"));
        assert!(!files_first("passwd: files [SUCCESS=continue] ldap\n"));
        assert!(
            !files_first("group: files\n"),
            "no passwd line: glibc's default"
        );
        assert!(!files_first("passwd: files\npasswd: ldap\n"), "two lines");
        assert!(!files_first("#passwd: files\n"));
    }

    #[test]
    fn the_first_line_with_the_uid_answers() {
        let p = b"# accounts\n\nroot:x:0:0:root:/root:/bin/bash\n  alice:x:1000:1000:Alice A.,,,:/home/alice:/usr/bin/zsh\nalias:x:1000:1000::/home/alias:/bin/sh\n";
        assert_eq!(find_uid(p, 0), account("root", "/bin/bash"));
        assert_eq!(find_uid(p, 1000), account("alice", "/usr/bin/zsh"));
        assert_eq!(find_uid(p, 1001), None);
        assert_eq!(find_uid(p, 4_294_967_295), None);
        assert_eq!(
            find_uid(b"bob:x:7:7:::", 7),
            account("bob", ""),
            "no newline at the end, empty shell"
        );
    }

    #[test]
    fn anything_unusual_is_left_to_nss() {
        assert_eq!(
            find_uid(b"+@admins::::::\nroot:x:0:0::/root:/bin/sh\n", 0),
            None
        );
        assert_eq!(find_uid(b"-bad\nroot:x:0:0::/root:/bin/sh\n", 0), None);
        assert_eq!(find_uid(b"root:x:0:0::/root\n", 0), None, "six fields");
        assert_eq!(find_uid(b"root:x:0:0::/root:/bin/sh:extra\n", 0), None);
        assert_eq!(
            find_uid(b"root:x:+0:0::/root:/bin/sh\n", 0),
            None,
            "not plain decimal"
        );
        assert_eq!(find_uid(b":x:0:0::/root:/bin/sh\n", 0), None, "no name");
        assert_eq!(find_uid(b"root:x:0:g::/root:/bin/sh\n", 0), None);
        assert_eq!(
            find_uid(b"other:x: 0:0::/:/bin/sh\nroot:x:0:0::/root:/bin/sh\n", 0),
            None,
            "glibc reads \" 0\" as 0"
        );
        assert_eq!(
            find_uid(b"other:x::0::/:/bin/sh\nroot:x:0:0::/root:/bin/sh\n", 0),
            None
        );
        // A line of fewer than three fields is skipped, as glibc skips it; so are leading blanks.
        assert_eq!(
            find_uid(b"junk\n\x0b root:x:0:0::/root:/bin/sh\n", 0),
            account("root", "/bin/sh")
        );
    }

    #[test]
    fn files_answer_only_when_nsswitch_says_so() {
        let d = tempfile::tempdir().unwrap();
        let (ns, pw) = (d.path().join("nsswitch.conf"), d.path().join("passwd"));
        std::fs::write(&pw, "carol:x:4242:4242::/home/carol:/bin/dash\n").unwrap();
        assert_eq!(lookup_in(4242, &ns, &pw), None, "no nsswitch.conf");
        std::fs::write(&ns, "passwd: ldap files\n").unwrap();
        assert_eq!(lookup_in(4242, &ns, &pw), None);
        std::fs::write(&ns, "passwd: files ldap\n").unwrap();
        assert_eq!(lookup_in(4242, &ns, &pw), account("carol", "/bin/dash"));
    }

    #[test]
    fn auditty_is_never_a_usable_shell() {
        let me = Path::new("/usr/local/bin/auditty-real");
        assert!(is_usable_shell(Path::new("/bin/bash"), Some(me)));
        assert!(!is_usable_shell(me, Some(me)));
        assert!(!is_usable_shell(Path::new("/usr/bin/auditty"), Some(me)));
        assert!(!is_usable_shell(Path::new("bash"), None));
    }

    /// On this host the fast path and glibc agree on the current user.
    #[test]
    fn the_same_entry_as_getpwuid() {
        let uid = nix::unistd::getuid().as_raw();
        assert_eq!(lookup(uid), from_nss(uid));
        assert!(lookup(uid).is_some());
    }
}
