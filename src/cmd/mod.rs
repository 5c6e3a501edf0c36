//! One file per subcommand.

pub mod check_config;
pub mod flush;
pub mod hook;
pub mod list;
pub mod play;
pub mod session;
pub mod verify;
