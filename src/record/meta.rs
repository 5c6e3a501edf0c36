//! meta.json: who, where, when and how a recording ended, plus its delivery state.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    /// The shell exited by itself.
    Exit,
    /// The user's terminal went away (SSH connection dropped, SIGHUP, EIO).
    Hangup,
    /// The recorder was asked to stop by a signal (SIGTERM, SIGINT, SIGQUIT, SIGALRM).
    Signal,
    /// The relay vanished without saying how the session ended (e.g. SIGKILL).
    Killed,
    /// Both recorder processes vanished; completed later by `auditty flush`.
    Incomplete,
    /// Both recorder processes were killed at the login, before the spool writer had created the recording: nothing
    /// was recorded. `auditty flush` made this recording from the login's guard registration, to tell the auditors.
    #[serde(rename = "never_started")]
    NeverStarted,
    /// The spool could not take a recording when the login began (full, missing, not writable) and
    /// `policy.on_error = "open"` let the login go on unrecorded. `auditty flush` made this recording from the note
    /// the login left in the guard registry, to tell the auditors.
    Unrecorded,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Exit => "exit",
            EndReason::Hangup => "hangup",
            EndReason::Signal => "signal",
            EndReason::Killed => "killed",
            EndReason::Incomplete => "incomplete",
            EndReason::NeverStarted => "never_started",
            EndReason::Unrecorded => "unrecorded",
        }
    }
}

/// SHA-256 and size of one file of a recording.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Meta {
    pub version: u32,
    pub id: String,
    pub user: String,
    pub uid: u32,
    /// The login (audit) uid when it differs from uid, e.g. after `su`.
    pub login_uid: Option<u32>,
    pub login_user: Option<String>,
    pub host: String,
    /// The user's terminal, e.g. /dev/pts/3.
    pub tty: Option<String>,
    /// The PTY the recorded shell runs on.
    pub pty: Option<String>,
    /// SSH client "address port", from SSH_CONNECTION.
    pub ssh_client: Option<String>,
    pub term: Option<String>,
    pub shell: String,
    pub command: Option<String>,
    /// Start and end as "YYYY-MM-DD HH:MM:SS+HH:MM" (local time).
    pub start: String,
    /// Start as Unix seconds, for sorting and filtering.
    pub start_unix: i64,
    pub end: Option<String>,
    pub duration_secs: Option<f64>,
    pub columns: u16,
    pub lines: u16,
    /// "classic" or "advanced".
    pub timing_format: String,
    pub input_recorded: bool,
    pub exit_status: Option<i32>,
    pub end_reason: Option<EndReason>,
    /// Signal name when end_reason is signal or the shell was killed by one.
    pub signal: Option<String>,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// Keystroke bytes not recorded because the terminal's echo was off (passwords).
    pub input_withheld_bytes: u64,
    pub commands: u64,
    /// Syslog lines that could not be sent (they are still in commands.log).
    pub syslog_dropped: u64,
    /// Bytes the writer could not store (disk full, I/O error).
    pub lost_bytes: u64,
    pub write_errors: Vec<String>,
    pub relay_pid: u32,
    pub writer_pid: u32,
    /// The recorded shell's pid (command records and syslog events name it).
    pub shell_pid: Option<u32>,
    // ---- delivery (filled by deliver::) ----
    /// name -> sums of the uncompressed and compressed files.
    pub files: BTreeMap<String, FileSum>,
    pub attempts: u32,
    pub next_try_unix: Option<i64>,
    pub last_error: Option<String>,
    pub sent_unix: Option<i64>,
    /// When the recording was completed and queued for delivery.
    pub queued_unix: Option<i64>,
    /// When the mail system refused it permanently (the recording is in failed/).
    pub failed_unix: Option<i64>,
    /// The delivered mail carried only the head and tail of the session (`mail.max_size`).
    pub mail_truncated: bool,
    /// Recipients of the delivered mail.
    pub sent_to: Vec<String>,
    /// How long queueing (sums, and gzip when a transport is configured) or a later compression at delivery took
    /// (ms), and the last delivery attempt (ms): for capacity planning.
    pub compress_ms: Option<u64>,
    pub send_ms: Option<u64>,
}

/// The largest meta.json read (a real one is a few KiB; the problems list is bounded).
const META_MAX: u64 = 16 << 20;

impl Meta {
    /// A new recording's meta: who (and the audit login user when it differs), where and when it started, and how
    /// it is recorded. The session fills in the terminal fields.
    pub fn new_recording(
        id: &str,
        user: &str,
        uid: u32,
        shell: &str,
        command: Option<String>,
        // In the local offset the recording's times are written in.
        start: time::OffsetDateTime,
        timing: crate::config::TimingFormat,
    ) -> Meta {
        let login_uid = crate::spool::guard::login_uid().filter(|l| *l != uid);
        Meta {
            version: 1,
            id: id.to_string(),
            user: user.to_string(),
            uid,
            login_uid,
            login_user: login_uid
                .and_then(|u| nix::unistd::User::from_uid(u.into()).ok().flatten())
                .map(|u| u.name),
            host: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            ssh_client: crate::session::ssh::ssh_client(),
            shell: shell.to_string(),
            command,
            start: crate::record::typescript::script_time(start, start.offset()),
            start_unix: start.unix_timestamp(),
            timing_format: match timing {
                crate::config::TimingFormat::Advanced => "advanced",
                crate::config::TimingFormat::Classic => "classic",
            }
            .into(),
            relay_pid: std::process::id(),
            ..Meta::default()
        }
    }

    pub fn read(path: &Path) -> Result<Meta> {
        // Never through a symlink, nor from a FIFO or device in its place, and bounded (a meta.json is a few KiB).
        let text = crate::spool::layout::read_no_follow(path, META_MAX)?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{} is not valid meta.json", path.display()))
    }

    /// Write atomically: a temporary file in the same directory, fsynced, then renamed over meta.json.
    pub fn write(&self, dir: &Path) -> Result<()> {
        self.write_with(dir, true)
    }

    /// As `write`, without the fsync (for a first version that is rewritten and synced moments later).
    pub fn write_unsynced(&self, dir: &Path) -> Result<()> {
        self.write_with(dir, false)
    }

    fn write_with(&self, dir: &Path, sync: bool) -> Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".meta.")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        let json = serde_json::to_vec_pretty(self).expect("meta serializes");
        tmp.write_all(&json)
            .and_then(|_| tmp.write_all(b"\n"))
            .and_then(|_| {
                if sync {
                    tmp.as_file().sync_data()
                } else {
                    Ok(())
                }
            })
            .with_context(|| format!("cannot write meta.json in {}", dir.display()))?;
        tmp.persist(dir.join("meta.json"))
            .with_context(|| format!("cannot rename meta.json in {}", dir.display()))?;
        Ok(())
    }
}
