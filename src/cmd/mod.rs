//! One file per subcommand.

pub mod check_config;
pub mod flush;
pub mod hook;
pub mod list;
pub mod play;
pub mod session;
pub mod verify;

/// The status a subcommand exits with (0-255). The C entry point (`sys::main`) returns it; std's `ExitCode` cannot be
/// read back, which that entry point needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit(pub u8);

impl Exit {
    pub const SUCCESS: Exit = Exit(0);
}

impl From<u8> for Exit {
    fn from(code: u8) -> Exit {
        Exit(code)
    }
}
