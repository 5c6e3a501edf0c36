//! `auditty list [--state S] [--user U] [--since T]`: one line per recording.

use std::os::unix::fs::MetadataExt;

use anyhow::{Context, Result, anyhow, bail};
use time::{OffsetDateTime, UtcOffset};

use crate::cli::Cli;
use crate::cmd::Exit;
use crate::deliver::body;
use crate::privilege::Privilege;
use crate::record::meta::Meta;
use crate::spool::layout::{self, Spool, State};

/// When the spool cannot be read, say who may read it.
pub fn access_hint(e: anyhow::Error) -> anyhow::Error {
    let denied = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    });
    if denied {
        e.context(
            "the spool is private: run this as root or as a member of the spool's group (auditty)",
        )
    } else {
        e
    }
}

/// Running as root: create files with the spool's group, so group members (and the writers) can use them later.
pub fn adopt_spool_group(spool: &Spool) {
    if nix::unistd::geteuid().is_root()
        && let Ok(md) = std::fs::metadata(&spool.root)
    {
        let _ = nix::unistd::setegid(nix::unistd::Gid::from_raw(md.gid()));
    }
}

/// `--since`: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` or `YYYY-MM-DD` (local time).
pub fn parse_since(s: &str) -> Result<i64> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let full = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let minutes = format_description!("[year]-[month]-[day] [hour]:[minute]");
    if let Ok(t) = time::PrimitiveDateTime::parse(s, &full)
        .or_else(|_| time::PrimitiveDateTime::parse(s, &minutes))
    {
        return Ok(t.assume_offset(offset).unix_timestamp());
    }
    let day = format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &day) {
        return Ok(d.midnight().assume_offset(offset).unix_timestamp());
    }
    bail!(
        "--since {s:?}: expected YYYY-MM-DD, \"YYYY-MM-DD HH:MM\" or RFC 3339 (2026-11-22T10:00:00+01:00)"
    )
}

fn fmt_unix(t: i64) -> String {
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    OffsetDateTime::from_unix_timestamp(t)
        .map(|t| crate::record::typescript::script_time(t, offset))
        .unwrap_or_else(|_| t.to_string())
}

/// The delivery column.
fn delivery(state: State, m: &Meta, live: bool) -> String {
    let err = m
        .last_error
        .as_deref()
        .map(|e| format!(" last_error=\"{}\"", body::escape_again(e.as_bytes(), 160)))
        .unwrap_or_default();
    match state {
        State::Active if live => format!("recording (writer pid {})", m.writer_pid),
        State::Active => "orphaned: recorder gone, `auditty flush` completes it".into(),
        State::Queue => {
            let next = m
                .next_try_unix
                .map(|t| format!(" next_try={}", fmt_unix(t)))
                .unwrap_or_default();
            format!("attempts={}{next}{err}", m.attempts)
        }
        State::Sent => format!(
            "sent={} attempts={}{}",
            m.sent_unix.map(fmt_unix).unwrap_or_else(|| "?".into()),
            m.attempts,
            if m.mail_truncated {
                " (mail held head+tail only)"
            } else {
                ""
            }
        ),
        State::Failed => format!("attempts={}{err}", m.attempts),
    }
}

/// Is the recording's lock free (nobody is writing or delivering it)?
fn lock_free(dir: &std::path::Path) -> bool {
    layout::lock_is_free(dir)
}

pub fn run(
    cli: &Cli,
    mut privilege: Privilege,
    state: Option<&str>,
    user: Option<&str>,
    since: Option<&str>,
) -> Result<Exit> {
    privilege.drop_unless_trusted()?;
    let cfg = privilege.load_config(cli)?;
    let spool = Spool::new(&cfg.spool.dir);
    // A missing spool is an error, not an empty list (a typo in spool.dir must not read as "no recordings").
    spool.must_exist().map_err(access_hint)?;
    let states: Vec<State> = match state {
        Some(s) => vec![State::parse(s).ok_or_else(|| {
            anyhow!("--state {s:?}: expected active, queue (or ready), sent or failed")
        })?],
        None => State::ALL.to_vec(),
    };
    let since = since.map(parse_since).transpose()?;
    let mut rows = Vec::new();
    for st in states {
        let ids = spool
            .list(st)
            .with_context(|| format!("cannot list {}", spool.state_dir(st).display()))
            .map_err(access_hint)?;
        for id in ids {
            let dir = spool.recording_dir(st, &id);
            let m = match Meta::read(&dir.join(layout::META)) {
                Ok(m) => m,
                Err(e) => {
                    rows.push(format!(
                        "{id} {} (unreadable: {})",
                        st.dir_name(),
                        body::escape(format!("{e:#}").as_bytes(), 200)
                    ));
                    continue;
                }
            };
            if user.is_some_and(|u| u != m.user) || since.is_some_and(|t| m.start_unix < t) {
                continue;
            }
            let live = st == State::Active && !lock_free(&dir);
            rows.push(format!(
                "{} {:<6} {:<12} {:<16} {:<8} {} {:>9} {:<10} {}",
                id,
                st.dir_name(),
                body::escape(m.user.as_bytes(), 32),
                body::escape(m.host.as_bytes(), 64),
                body::escape(
                    m.tty
                        .as_deref()
                        .unwrap_or("-")
                        .trim_start_matches("/dev/")
                        .as_bytes(),
                    16
                ),
                body::escape(m.start.as_bytes(), 40),
                m.duration_secs
                    .map(body::duration)
                    .unwrap_or_else(|| "-".into()),
                if st == State::Active && live {
                    "-".into()
                } else if matches!(
                    m.end_reason,
                    Some(
                        crate::record::meta::EndReason::NeverStarted
                            | crate::record::meta::EndReason::Unrecorded
                    )
                ) {
                    "NOT-RECORDED".into()
                } else {
                    body::outcome_short(&m).replace(' ', "=")
                },
                delivery(st, &m, live)
            ));
        }
    }
    for r in rows {
        println!("{r}");
    }
    Ok(Exit::SUCCESS)
}
