//! Support for the delivery tests (tests/deliver_*.rs): a real SMTP server and sendmail, a PTY driver that can hang
//! up, spool helpers, and the unprivileged-user setup.

#![allow(unused_imports)]

pub mod helpers;
pub mod mta;
pub mod term;
pub mod tls;

pub use helpers::*;
pub use mta::*;
pub use term::*;
pub mod user;
