//! Command-line definitions (clap derive); `main.rs` only dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "auditty",
    version,
    about = "Record interactive shell sessions and deliver them to auditors"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The options every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file (default /etc/auditty.conf; refused while running privileged)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one configuration key for this run, e.g. -o mail.to=auditor@example.com (refused while privileged)
    #[arg(short = 'o', global = true, value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl Cli {
    /// Parse the command line. Every recorded login runs `auditty session`, so that case is tried first with a
    /// parser that knows only the global options and `session`: a login does not build every subcommand's
    /// definitions (docs/benchmarks.md has its share of the start-up gain). Anything that parser does not accept as
    /// it stands (another subcommand, --help, --version, a mistake) is parsed again by the full parser, so help,
    /// errors and every other subcommand are exactly as always.
    pub fn parse_args() -> Cli {
        match LoginCli::try_parse() {
            Ok(LoginCli {
                global,
                command: LoginCommand::Session(args),
            }) => Cli {
                global,
                command: Command::Session(args),
            },
            Err(_) => Cli::parse(),
        }
    }
}

/// The login path's parser (`Cli::parse_args`).
#[derive(Parser)]
#[command(name = "auditty")]
struct LoginCli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: LoginCommand,
}

#[derive(Subcommand)]
enum LoginCommand {
    Session(SessionArgs),
}

#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Run COMMAND through the user's shell instead of an interactive login shell
    #[arg(short = 'c', value_name = "COMMAND")]
    pub command: Option<String>,
    /// Only decide, for /etc/profile.d/auditty.sh: exit 0 record, 3 already inside a recording, 4 exempt or no
    /// terminal, 5 recording impossible with policy.on_error=open, 6 the same with closed (reason on stdout)
    #[arg(long, conflicts_with = "command")]
    pub check: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the user's shell (or -c COMMAND) inside a recorded PTY
    Session(SessionArgs),
    /// Replay a recording (directory, typescript path or recording id; .gz files are read transparently)
    Play {
        /// Speed factor (2 = twice as fast), 0.001 to 1000000
        #[arg(long, default_value_t = 1.0, value_parser = speed_factor)]
        speed: f64,
        /// Longest pause between two chunks, in seconds, after --speed (0 = no pauses)
        #[arg(long, value_name = "S", value_parser = seconds)]
        max_delay: Option<f64>,
        /// Which stream to play: out (what the user saw) or in (their keystrokes, with record.input)
        #[arg(long, value_enum, default_value_t = Stream::Out)]
        stream: Stream,
        /// A recording directory, a typescript file (timing next to it), or a recording id (or a unique
        /// prefix of one) in the spool
        recording: String,
    },
    /// Deliver queued recordings that are due, and recover orphaned ones
    Flush {
        /// Retry everything now, including failed recordings and those not yet due
        #[arg(long)]
        all: bool,
    },
    /// List recordings in the spool
    List {
        /// active, queue, sent or failed
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        user: Option<String>,
        /// Only recordings started at or after this time (RFC 3339 or YYYY-MM-DD)
        #[arg(long)]
        since: Option<String>,
    },
    /// Check a recording's SHA-256 sums
    Verify { recording: String },
    /// Print the command-logging hook for a shell running inside a recording (exit 3 when not inside one)
    Hook {
        #[arg(value_enum)]
        shell: HookShell,
    },
    /// Validate the configuration, the spool and the mail transport
    CheckConfig {
        /// Also send a test mail to mail.to
        #[arg(long)]
        send_test: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stream {
    In,
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HookShell {
    Bash,
    Zsh,
}

/// `--speed`: a factor from 0.001 to 1000000 (a usage error otherwise, exit 2).
fn speed_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (1e-3..=1e6).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a number from 0.001 to 1000000, got {s:?}"
        )),
    }
}

/// `--max-delay`: seconds, 0 or more.
fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "expected a number of seconds, 0 or more, got {s:?}"
        )),
    }
}
