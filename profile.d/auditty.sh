# /etc/profile.d/auditty.sh: record interactive logins with auditty. Installed by auditty's install.sh.
#
# Sourced by /etc/profile (sh, dash, bash, ksh) and, through a block install.sh adds to /etc/zsh/zprofile, by zsh.
# POSIX sh. It does nothing, and prints nothing, unless the shell is interactive and has a terminal, so scp, sftp,
# rsync and `ssh host cmd` are never disturbed.
#
# - Inside a live recording (the login shell auditty started, or `su -`, `sudo -i`, `bash -l` within it): installs
#   the per-command hook (`auditty hook bash|zsh`); never starts a second recording.
# - Otherwise, unless auditty says the user is exempt or recording is impossible: replaces this shell with
#   `auditty session` (exec), which records a new login shell on its own PTY. That shell sources this file again
#   and takes the first branch.
# Whether a shell is inside a recording is decided by auditty from its registry (writable only by group auditty)
# and the process tree, never from environment variables, so presetting variables cannot skip recording.
#
# `auditty session --check` answers: 0 record, 3 inside a recording, 4 exempt, 5 recording impossible and
# policy.on_error = open (logged here with logger, the login goes on), 6 the same with closed (login refused),
# 7 the same with the policy unknown (the configuration exists but cannot be read): the policy below applies.
# If auditty itself cannot run (missing, crashed), the policy below applies; install.sh copies it from
# policy.on_error when it installs this file.

__auditty_bin='@BINDIR@/auditty'
__auditty_on_error='@ON_ERROR@'

__auditty_fail() {
  if command -v logger >/dev/null 2>&1; then
    logger -p authpriv.warning -t auditty -- "profile.d: user $(id -un 2>/dev/null) tty $(tty 2>/dev/null): $1" 2>/dev/null
  fi
  if [ "$__auditty_on_error" = closed ]; then
    echo "auditty: this login must be recorded, but recording is not possible: $1" >&2
    echo "auditty: login refused (policy.on_error = closed); contact your administrator" >&2
    exit 1
  fi
  if [ "$(id -u 2>/dev/null)" = 0 ]; then
    echo "auditty: this session is NOT recorded: $1" >&2
  fi
}

case $- in
*i*)
  if [ -t 0 ]; then
    if [ ! -x "$__auditty_bin" ]; then
      __auditty_fail "$__auditty_bin is missing or not executable"
    else
      __auditty_sh=
      if [ -n "${ZSH_VERSION-}" ]; then
        __auditty_sh=zsh
      elif [ -n "${BASH_VERSION-}" ]; then
        __auditty_sh=bash
      fi
      __auditty_rc=3
      __auditty_out=
      if [ -n "$__auditty_sh" ]; then
        __auditty_rc=0
        __auditty_out=$("$__auditty_bin" hook "$__auditty_sh" 2>/dev/null) || __auditty_rc=$?
      fi
      if [ "$__auditty_rc" -eq 0 ]; then
        eval "$__auditty_out"
      else
        __auditty_rc=0
        __auditty_out=$("$__auditty_bin" session --check 2>&1) || __auditty_rc=$?
        case $__auditty_rc in
        0)
          exec "$__auditty_bin" session
          __auditty_fail "cannot execute $__auditty_bin session"
          ;;
        3)
          # Inside a recording whose terminal the hook did not know yet (the first prompt of a recorded shell can
          # come before the writer has registered its PTY): ask once more.
          if [ -n "$__auditty_sh" ] && __auditty_out=$("$__auditty_bin" hook "$__auditty_sh" 2>/dev/null); then
            eval "$__auditty_out"
          fi
          ;;
        4) ;;
        5)
          __auditty_on_error=open
          __auditty_fail "$__auditty_out"
          ;;
        6)
          __auditty_on_error=closed
          __auditty_fail "$__auditty_out"
          ;;
        7)
          # The configuration is there but cannot be read, so its policy is unknown: the installed one applies.
          __auditty_fail "$__auditty_out (the policy install.sh wrote into this file applies: $__auditty_on_error)"
          ;;
        *)
          __auditty_fail "auditty session --check failed (exit $__auditty_rc): $__auditty_out"
          ;;
        esac
      fi
    fi
  fi
  ;;
esac

unset -f __auditty_fail
unset __auditty_bin __auditty_on_error __auditty_sh __auditty_rc __auditty_out
