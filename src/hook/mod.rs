//! The shell command hook: bash/zsh snippets that write one record per command into the session FIFO, and the
//! parser the spool writer uses to read them.

pub mod fifo;
