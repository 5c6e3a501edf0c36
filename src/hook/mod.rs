//! The shell command hook: bash/zsh snippets (`bash.sh`, `zsh.sh`, printed by `auditty hook`) that write one
//! record per command line into the session's command FIFO, and the parser the spool writer reads them with.
//!
//! # The FIFO
//! `auditty session` names a directory `hook.fifo_dir/auditty-<id>-<12 hex>` holding the FIFO `cmd` and publishes
//! its path in the guard registry (with the PTY), which is where `auditty hook` takes it from (never from the
//! environment); the spool writer makes the directory (0700, the user's) and the FIFO (0600) first thing, while the
//! shell starts, so `auditty hook` waits (bounded) for a FIFO the registration names but that is not there yet, and
//! if the writer cannot make it, it publishes the registration again without it. Other users cannot reach it; the
//! user can write anything into it, which the parser treats as untrusted (see `fifo`). The writer removes the
//! directory when the recording ends.
//!
//! # Why a reader that died or stopped can never hang the shell
//! * The hook opens the FIFO once, read-write (`exec {fd}<>fifo`): on Linux that open never blocks, whether or
//!   not a reader exists, and since the shell itself then counts as a reader, a write never fails with EPIPE or
//!   raises SIGPIPE either.
//! * A write only waits when the pipe's buffer is full. The writer enlarges it to 1 MiB (F_SETPIPE_SZ) and
//!   drains it continuously; a record is one command line plus ~40 bytes, so it takes thousands of commands
//!   logged while nobody reads before a write could wait.
//! * Nobody reads only if the writer is dead or stopped. Dead: the relay finds out at its next write into the
//!   writer's pipe (EPIPE), which the very next keystroke echo or output causes, and ends the session (SIGHUP,
//!   then SIGTERM and SIGKILL within 3 s), so the shell cannot be left waiting. Stopped (SIGSTOP by the user,
//!   who shares its uid): the records wait in the 1 MiB buffer and arrive when it continues; the relay ends the
//!   session if the stopped writer leaves 16 MiB of output untaken for 10 s. Only a user who stops the writer
//!   and then logs more than 1 MiB of command lines can make their own shell wait, for the writer.
//! * The hook never opens anything per prompt except through descriptors opened once (the FIFO, and for the
//!   HISTCONTROL emulation a private file in the same 0700 directory), and a regular file never blocks.
//!
//! # Zero forks per prompt
//! bash: PS0 (expanded when a command line is about to run, never for an empty line, a comment or Ctrl-C) sets a
//! marker; PROMPT_COMMAND[0] sees it, and `fc -l -1 -1` prints the command line from the history straight into
//! the FIFO inside one `printf … >&fd` group. HISTCONTROL/HISTIGNORE are kept empty in the live shell so every
//! line reaches the history, and the user's values are emulated on the history afterwards (so their history
//! file still honours them). zsh: `preexec` receives the line as typed. Only builtins run; `bench/hook.py`
//! counts the processes (none) and the time added per prompt.

pub mod fifo;
