//! auditty: records interactive shell sessions and delivers them to auditors. `run` only dispatches; the process
//! starts in `sys::main` (the C entry point, without std's runtime start-up: see there why).

#![cfg_attr(not(test), no_main)]

mod cli;
mod cmd;
mod config;
mod deliver;
mod hook;
mod play;
mod privilege;
mod procfs;
mod record;
mod session;
mod spool;
mod sys;
mod syslog;

/// The program: parse the command line and run the subcommand; the exit status.
#[cfg_attr(test, allow(dead_code))]
fn run() -> cmd::Exit {
    // Decide about the setgid privilege before anything else reads input.
    let privilege = privilege::Privilege::at_start();
    let cli = cli::Cli::parse_args();
    let result = match cli.command {
        cli::Command::Session(ref args) => cmd::session::run(&cli, privilege, args.command.clone()),
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
            cmd::Exit(1)
        }
    }
}
