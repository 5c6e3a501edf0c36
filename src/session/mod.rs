//! The recorded session: the PTY and the shell on it, the user's terminal in raw mode, signals, and the relay loop.

pub mod account;
pub mod gate;
pub mod pipes;
pub mod procs;
pub mod pty;
pub mod relay;
pub mod signals;
pub mod ssh;
pub mod terminal;
