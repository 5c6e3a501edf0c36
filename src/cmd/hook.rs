//! `auditty hook bash|zsh`: print the command hook for a shell inside a live recording.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::{Cli, HookShell};
use crate::privilege::Privilege;

pub fn run(_cli: &Cli, mut privilege: Privilege, _shell: HookShell) -> Result<ExitCode> {
    privilege.drop_unless_trusted()?;
    bail!("hook: not implemented yet")
}
