//! The spool: recording directories moving through states (active → queue → sent/failed), the spool writer
//! process that owns them, the relay→writer frames, and the registry of live PTYs (the nesting guard).

pub mod frames;
pub mod guard;
pub mod layout;
pub mod strays;
pub mod writer;
