//! `auditty list`: one line per recording.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::Cli;
use crate::privilege::Privilege;

pub fn run(
    _cli: &Cli,
    mut privilege: Privilege,
    _state: Option<&str>,
    _user: Option<&str>,
    _since: Option<&str>,
) -> Result<ExitCode> {
    privilege.drop_unless_trusted()?;
    bail!("list: not implemented yet")
}
