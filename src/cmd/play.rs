//! `auditty play`: replay a recording.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cli::{Cli, Stream};
use crate::privilege::Privilege;

pub fn run(
    _cli: &Cli,
    mut privilege: Privilege,
    _speed: f64,
    _max_delay: Option<f64>,
    _stream: Stream,
    _rec: &str,
) -> Result<ExitCode> {
    privilege.drop_unless_trusted()?;
    bail!("play: not implemented yet")
}
