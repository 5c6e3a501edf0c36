//! auditty: records interactive shell sessions and delivers them to auditors. `main` only dispatches.

mod cli;
mod cmd;
mod config;
mod deliver;
mod hook;
mod play;
mod privilege;
mod record;
mod session;
mod spool;
mod sys;
mod syslog;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Decide about the setgid privilege before anything else reads input.
    let privilege = privilege::Privilege::at_start();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Session { ref command, .. } => {
            cmd::session::run(&cli, privilege, command.clone())
        }
        cli::Command::Play {
            speed,
            max_delay,
            stream,
            ref recording,
        } => cmd::play::run(&cli, privilege, speed, max_delay, stream, recording),
        cli::Command::Flush { all } => cmd::flush::run(&cli, privilege, all),
        cli::Command::List {
            ref state,
            ref user,
            ref since,
        } => cmd::list::run(
            &cli,
            privilege,
            state.as_deref(),
            user.as_deref(),
            since.as_deref(),
        ),
        cli::Command::Verify { ref recording } => cmd::verify::run(&cli, privilege, recording),
        cli::Command::Hook { shell } => cmd::hook::run(&cli, privilege, shell),
        cli::Command::CheckConfig { send_test } => {
            cmd::check_config::run(&cli, privilege, send_test)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("auditty: {e:#}");
            ExitCode::from(1)
        }
    }
}
