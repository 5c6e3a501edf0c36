# auditty command hook for zsh (printed by `auditty hook zsh`, evaluated by the login profile inside a recorded
# session). After each command line it writes one record into the session's command FIFO, with builtins only:
# no fork, no exec. The PTY recording is the authoritative record; this log is advisory.
#
# Record: "\0AUDITTY1\0" seq "\0" status "\0" pid "\0" flags "\0" cwd "\0" cmd "\0\n" (see bash.sh). zsh hands
# preexec the line as typed, multi-line commands intact, whatever HIST_IGNORE_SPACE, HIST_IGNORE_DUPS or
# HIST_NO_STORE do to the history; preexec does not run for an empty line or Ctrl-C, nor before the first
# prompt. A zsh string may hold NUL: it is written as "^@" (flag n). Flags: t = the text was cut.
__auditty_install() {
    emulate -L zsh
    local f=@FIFO@
    # Once per shell (a profile sourced again must not open the FIFO a second time).
    [[ ${__auditty_fifo-} != $f ]] || return 0
    typeset -g __auditty_fifo=$f
    # O_RDWR: open(2) of a FIFO this way never blocks, whether or not a reader exists.
    exec {__auditty_fd}<>$f || return 0
    typeset -g __auditty_seq=0 __auditty_line= __auditty_ran=0
    # Ours first among the precmd hooks, so $? is still the command's status.
    typeset -ga precmd_functions preexec_functions
    precmd_functions=(__auditty_precmd ${precmd_functions:#__auditty_precmd})
    preexec_functions=(${preexec_functions:#__auditty_preexec} __auditty_preexec)
}

__auditty_preexec() {
    # $1: the line as typed (empty if the history mechanism is off; $3 is then the expanded text).
    __auditty_line=${1:-$3} __auditty_ran=1
}

__auditty_precmd() {
    local st=$?
    if ((__auditty_ran)); then
        emulate -L zsh
        local c=$__auditty_line fl=
        __auditty_ran=0 __auditty_line=
        if [[ $c == *$'\0'* ]]; then
            c=${c//$'\0'/^@} fl=n
        fi
        if ((${#c} > 16384)); then
            c=${c[1,16384]} fl+=t
        fi
        builtin printf '\0AUDITTY1\0%s\0%s\0%s\0%s\0%s\0%s\0\n' $((++__auditty_seq)) $st $$ "$fl" "$PWD" "$c" \
            >&$__auditty_fd 2>/dev/null
    fi
    return st
}

__auditty_install
unfunction __auditty_install
