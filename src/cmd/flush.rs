//! `auditty flush [--all]`: deliver due recordings, recover orphans, clean up the spool.

use anyhow::Result;

use crate::cli::Cli;
use crate::cmd::Exit;
use crate::deliver::queue;
use crate::privilege::Privilege;
use crate::spool::layout::Spool;
use crate::syslog::Logger;

pub fn run(cli: &Cli, mut privilege: Privilege, all: bool) -> Result<Exit> {
    privilege.drop_unless_trusted()?;
    let cfg = privilege.load_config(cli)?;
    let spool = Spool::new(&cfg.spool.dir);
    super::list::adopt_spool_group(&spool);
    spool.ensure().map_err(super::list::access_hint)?;
    let mut log = Logger::new(&cfg.syslog);
    let r = queue::flush(&cfg, &spool, all, &mut log).map_err(super::list::access_hint)?;
    for id in &r.recovered {
        println!("recovered {id} (its recorder was gone)");
    }
    for id in &r.never_started {
        eprintln!(
            "auditty flush: {id} was NOT RECORDED: its recorder processes were killed as the login began; \
             a notice is queued for the auditors"
        );
    }
    for id in &r.unrecorded {
        eprintln!(
            "auditty flush: {id} was NOT RECORDED: the spool could not take its recording when the login began \
             (policy.on_error = open); a notice is queued for the auditors"
        );
    }
    for id in &r.sent {
        println!("sent {id}");
    }
    for id in &r.removed {
        println!("removed {id}");
    }
    for (id, e) in &r.deferred {
        eprintln!("auditty flush: {id} stays queued: {e}");
    }
    for (id, e) in &r.failed {
        eprintln!(
            "auditty flush: {id} FAILED permanently (kept in failed/, retried by flush --all): {e}"
        );
    }
    if !r.strays_reported_earlier.is_empty() {
        let n = r.strays_reported_earlier.len();
        let paths: Vec<String> = r
            .strays_reported_earlier
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        println!(
            "{n} stray {} reported earlier {} still in the spool: {}",
            if n == 1 { "entry" } else { "entries" },
            if n == 1 { "is" } else { "are" },
            paths.join(", ")
        );
    }
    for e in &r.errors {
        eprintln!("auditty flush: {e}");
    }
    Ok(if !r.errors.is_empty() || !r.failed.is_empty() {
        Exit::from(1)
    } else if !r.deferred.is_empty() {
        Exit::from(75)
    } else {
        Exit::SUCCESS
    })
}
