# auditty command hook for bash >= 4.4 (printed by `auditty hook bash`, evaluated by the login profile inside a
# recorded session). After each command line it writes one record into the session's command FIFO, with builtins
# only: no fork, no exec. The PTY recording is the authoritative record; this log is advisory.
#
# Record: "\0AUDITTY1\0" seq "\0" status "\0" pid "\0" flags "\0" cwd "\0" cmd "\0\n". NUL cannot occur in a
# bash string, so the fields are unambiguous. Flags: f = cmd is the raw `fc -l` line ("<number>\t <line>\n"),
# h = a command ran but its text is not in the history (set +o history, history -c). The reader bounds the text
# (64 KiB, then flagged as cut); the FIFO's 1 MiB buffer absorbs even such records while it is busy.
#
# How a command line is seen: PS0 is expanded once a line has been read and is about to run (never for an empty
# line, a comment or Ctrl-C) and sets __auditty_ran. HISTCONTROL and HISTIGNORE are kept empty in the live
# shell, so every line read becomes the history's last entry and `fc -l -1 -1` prints it; the user's values are
# then applied to the history (by bash itself for ignoredups, by emulation for the rest), so their history file
# still honours them. Multi-line commands are kept as typed (shopt lithist).
#
# Speed: bash copies a function's body on every call and spends ~1 µs per simple command, so the usual case
# (nothing to emulate) runs __auditty_direct, a handful of statements; PROMPT_COMMAND[0] names __auditty_easy
# for ignorespace/ignoreboth and __auditty_full for the rest. Safety: every statement that may fail is
# guarded (`set -e` shells survive it) and `set -u` is respected.
__auditty_install() {
    local f=@FIFO@
    ((BASH_VERSINFO[0] > 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] >= 4))) || return 0
    # Once per shell (a profile sourced again must not stack a second hook).
    [[ ${__auditty_fifo-} != "$f" ]] || return 0
    __auditty_fifo=$f
    # O_RDWR: open(2) of a FIFO this way never blocks, whether or not a reader exists.
    exec {__auditty_fd}<>"$f" || return 0
    # For the emulation the entry's text must come back into the shell: through a private file in the 0700
    # session directory, written by one descriptor and read by another (a regular file never blocks and cannot
    # fill up like a pipe). It is truncated only now and then: truncating on every prompt is slow on ext4.
    __auditty_tmp=${f%/*}/hist.$$ __auditty_tsz=0
    exec {__auditty_tw}>|"$__auditty_tmp" {__auditty_tr}<"$__auditty_tmp" || return 0
    __auditty_seq=0 __auditty_did=0 __auditty_due=0 __auditty_st=0 __auditty_emu=0
    __auditty_hc= __auditty_hi= __auditty_hcl=
    __auditty_cmd= __auditty_flags= __auditty_hv= __auditty_h=
    __auditty_ps0=1 __auditty_want= __auditty_next=$HISTCMD
    unset __auditty_ran
    # Until __auditty_fix picks the variant at the first prompt, after the user's startup files have run.
    __auditty_mode=__auditty_full
    if ((BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1))) &&
        [[ ${__auditty_form-} != string ]]; then
        # [0] is ours, [1] holds what the user sees as "$PROMPT_COMMAND", their other elements follow and the
        # last is ours: a plain `PROMPT_COMMAND=...` by the user replaces [0] only, and __auditty_post repairs
        # that.
        __auditty_form=array
        # ${…[@]+set}: no element set (PROMPT_COMMAND unset), without tripping `set -u`.
        [[ ${PROMPT_COMMAND[@]+set} ]] || PROMPT_COMMAND=("")
        PROMPT_COMMAND=("$__auditty_mode" "${PROMPT_COMMAND[@]}" __auditty_post)
    else
        __auditty_form=string
        PROMPT_COMMAND="$__auditty_mode;__auditty_post"$'\n'"${PROMPT_COMMAND-}"
    fi
}

# PROMPT_COMMAND[0] when there is nothing to emulate (HISTCONTROL empty or ignoredups, which bash applies itself):
# the record goes straight into the FIFO, with the history entry printed by fc. $1: the status, when called by
# __auditty_late.
__auditty_direct() {
    __auditty_st=${1-$?} __auditty_did=1
    [[ ${PS0-}${HISTCONTROL-u}${HISTIGNORE-u}${PROMPT_COMMAND-} == "$__auditty_want" ]] || __auditty_fix
    ((__auditty_did == 1)) && [[ -v __auditty_ran ]] && unset __auditty_ran && {
        builtin printf '\0AUDITTY1\0%s\0%s\0%s\0f\0%s\0' "$((++__auditty_seq))" "$__auditty_st" "$$" "${PWD-}"
        # The line is the history's last entry: new (one more entry), or, with ignoredups live, a repeat of it.
        ((HISTCMD < 2 || HISTCMD - __auditty_next > 1 || HISTCMD < __auditty_next)) || builtin fc -l -1 -1
        builtin printf '\0\n'
    } >&"$__auditty_fd" || :
}

# PROMPT_COMMAND[0] for HISTCONTROL=ignorespace or ignoreboth (no HISTIGNORE): as __auditty_direct (ignoredups
# stays in force), then the new entry leaves the history if it starts with a space, as bash would have done.
__auditty_easy() {
    __auditty_st=${1-$?} __auditty_did=1
    [[ ${PS0-}${HISTCONTROL-u}${HISTIGNORE-u}${PROMPT_COMMAND-} == "$__auditty_want" ]] || __auditty_fix
    ((__auditty_did == 1)) && [[ -v __auditty_ran ]] && unset __auditty_ran && {
        builtin printf '\0AUDITTY1\0%s\0%s\0%s\0f\0%s\0' "$((++__auditty_seq))" "$__auditty_st" "$$" "${PWD-}"
        ((HISTCMD < 2 || HISTCMD - __auditty_next > 1 || HISTCMD < __auditty_next)) || builtin fc -l -1 -1
        builtin printf '\0\n'
    } >&"$__auditty_fd" || :
    if ((HISTCMD == __auditty_next + 1)); then
        builtin fc -ln -1 -1 >&"$__auditty_tw" || :
        builtin mapfile -d '' -u "$__auditty_tr" __auditty_hv || :
        # "\t <line>\n" from fc -ln: a line starting with a space has two spaces after the tab.
        [[ ${__auditty_hv-} != $'\t'?' '* ]] || builtin history -d $((HISTCMD - 1))
        # The private file is started afresh now and then (by count: cheaper than measuring).
        ((++__auditty_tsz < 4096)) || __auditty_reopen
    fi
}

# PROMPT_COMMAND[0] otherwise: HISTCONTROL/HISTIGNORE to emulate, or no PS0 (then "the history grew" is the
# sign of a command, and whitespace-only lines count too).
__auditty_full() {
    __auditty_st=${1-$?} __auditty_did=1 __auditty_due=0
    if [[ -v __auditty_ran ]] || ((!__auditty_ps0 && HISTCMD != __auditty_next)); then
        unset __auditty_ran
        __auditty_due=1
        __auditty_take
    elif ((__auditty_emu && HISTCMD == __auditty_next + 1)); then
        # A line that did not run (whitespace, a comment) still went into the history.
        __auditty_take
    fi
    # After the emulation: settings the user changed in this command line apply from the next one on.
    [[ ${PS0-}${HISTCONTROL-u}${HISTIGNORE-u}${PROMPT_COMMAND-} == "$__auditty_want" ]] || __auditty_fix
    ((__auditty_due && __auditty_did == 1)) && __auditty_due=0 && __auditty_write "$__auditty_st"
    [[ $__auditty_form == array ]] || return "$__auditty_st"
}

# The new history entry's text into __auditty_cmd (flag h if there is none), and its fate under the user's
# HISTCONTROL/HISTIGNORE.
__auditty_take() {
    __auditty_cmd= __auditty_flags=h __auditty_hv=
    ((HISTCMD != __auditty_next + 1)) || {
        builtin fc -ln -1 -1 >&"$__auditty_tw"
        builtin mapfile -d '' -u "$__auditty_tr" __auditty_hv
    } || :
    # "\t <line>\n" from fc -ln (a '*' instead of the space marks an edited entry).
    [[ ${__auditty_hv-} == $'\t'?* ]] || return 0
    __auditty_h=${__auditty_hv:2} __auditty_h=${__auditty_h%$'\n'} __auditty_flags=
    __auditty_cmd=$__auditty_h
    (((__auditty_tsz += ${#__auditty_h}) < 1048576)) || __auditty_reopen
    ((__auditty_emu)) || return 0
    # Out of the history, then in again through `history -s`, which applies the user's settings the way bash
    # does when it reads a line.
    builtin history -d $((HISTCMD - 1))
    HISTCONTROL=$__auditty_hc HISTIGNORE=$__auditty_hi builtin history -s -- "$__auditty_h"
}

# A record with the text in __auditty_cmd; $1: the status.
__auditty_write() {
    builtin printf '\0AUDITTY1\0%s\0%s\0%s\0%s\0%s\0%s\0\n' "$((++__auditty_seq))" "$1" "$$" \
        "$__auditty_flags" "${PWD-}" "$__auditty_cmd" >&"$__auditty_fd" || :
}

__auditty_reopen() {
    exec {__auditty_tw}>&- {__auditty_tr}<&-
    exec {__auditty_tw}>|"$__auditty_tmp" {__auditty_tr}<"$__auditty_tmp"
    __auditty_tsz=0
}

# Last in PROMPT_COMMAND (in the string form: second, and it returns the status for the user's part). Bash
# gives every array element the command's status in $?, and this one runs after the user's own elements (e.g.
# `history -n`), so it is where the history's size is noted for the next prompt.
__auditty_post() {
    case $__auditty_did in
    1) __auditty_did=0 __auditty_next=$HISTCMD ;;
    *) __auditty_late "$?" ;;
    esac
    [[ $__auditty_form == array ]] || return "$__auditty_st"
}

# PROMPT_COMMAND[0] did not run as ours (the user assigned PROMPT_COMMAND): log here, with the status bash
# gives this element, then put ours back in front.
__auditty_late() {
    local st=$1
    [[ $__auditty_form == array ]] || st=$__auditty_st
    # __auditty_did is 2 if PROMPT_COMMAND[0]'s function ran somewhere else, 0 if not at all.
    ((__auditty_did)) || __auditty_full "$st"
    [[ ! -v __auditty_ran ]] || { unset __auditty_ran && __auditty_due=1 && __auditty_take; }
    ((!__auditty_due)) || { __auditty_due=0 && __auditty_write "$st"; }
    __auditty_did=0
    __auditty_heal
    __auditty_next=$HISTCMD
}

# What the user wrote replaces their own value (where our function's name, which is what they saw as
# $PROMPT_COMMAND, stands for it) and ours goes back in front. With the string form (bash < 5.1) a plain
# assignment removes the hook for good; assignments that keep "$PROMPT_COMMAND" are repaired.
__auditty_heal() {
    local c=${PROMPT_COMMAND-} u
    if [[ $__auditty_form == array ]]; then
        u=${PROMPT_COMMAND[1]-}
        c=${c//__auditty_direct/"$u"} c=${c//__auditty_easy/"$u"}
        PROMPT_COMMAND[1]=${c//__auditty_full/"$u"}
        PROMPT_COMMAND[0]=$__auditty_mode
    else
        c=${c//__auditty_direct;__auditty_post$'\n'/} c=${c//__auditty_full;__auditty_post$'\n'/}
        c=${c//__auditty_easy;__auditty_post$'\n'/}
        c=${c//__auditty_direct;__auditty_post/:} c=${c//__auditty_full;__auditty_post/:}
        c=${c//__auditty_easy;__auditty_post/:}
        PROMPT_COMMAND="$__auditty_mode;__auditty_post"$'\n'$c
    fi
    __auditty_want=
}

# Something the hook relies on changed (or this is the first prompt): take over the user's HISTCONTROL and
# HISTIGNORE, keep lithist and the PS0 marker, pick the PROMPT_COMMAND[0] variant. What the user assigns is theirs
# (an unset variable means "none"); what is live is ours: empty, or just "ignoredups", which never hides a command
# (a repeat is logged as its previous entry). A read-only value stays in force, and lines it hides are logged
# with flag h.
__auditty_fix() {
    local ro=0
    if [[ -v HISTCONTROL && ${HISTCONTROL@a} == *r* ]]; then
        ro=1 __auditty_hc=$HISTCONTROL
    elif [[ ! -v HISTCONTROL || $HISTCONTROL != "$__auditty_hcl" ]]; then
        __auditty_hc=${HISTCONTROL-}
    fi
    if [[ -v HISTIGNORE && ${HISTIGNORE@a} == *r* ]]; then
        ro=1 __auditty_hi=$HISTIGNORE
    elif [[ ! -v HISTIGNORE || -n $HISTIGNORE ]]; then
        __auditty_hi=${HISTIGNORE-}
    fi
    builtin shopt -s cmdhist lithist
    if ((__auditty_ps0)); then
        if builtin shopt -q promptvars; then
            [[ ${PS0-} == *'${__auditty_ran=}'* ]] || PS0=${PS0-}'${__auditty_ran=}'
        else
            __auditty_ps0=0
        fi
    fi
    local old=$__auditty_mode c=:$__auditty_hc:
    __auditty_emu=0 __auditty_hcl=
    if ((ro || !__auditty_ps0)) || [[ -n $__auditty_hi || $c == *:erasedups:* ]]; then
        # Everything emulated exactly (__auditty_take).
        __auditty_mode=__auditty_full
        [[ -z $__auditty_hc$__auditty_hi ]] || __auditty_emu=1
    else
        [[ $c == *:ignoredups:* || $c == *:ignoreboth:* ]] && __auditty_hcl=ignoredups
        __auditty_mode=__auditty_direct
        [[ $c == *:ignorespace:* || $c == *:ignoreboth:* ]] && __auditty_mode=__auditty_easy
    fi
    ((ro)) || HISTCONTROL=$__auditty_hcl HISTIGNORE=
    if [[ $__auditty_form == array ]]; then
        if [[ ${PROMPT_COMMAND-} == "$old" ]]; then
            PROMPT_COMMAND[0]=$__auditty_mode
        else
            # Not first in PROMPT_COMMAND: __auditty_late logs and repairs.
            __auditty_did=2
        fi
    elif [[ $PROMPT_COMMAND == "$old;__auditty_post"$'\n'* ]]; then
        PROMPT_COMMAND=$__auditty_mode${PROMPT_COMMAND#"$old"}
    else
        __auditty_did=2
    fi
    __auditty_want=${PS0-}${HISTCONTROL-u}${HISTIGNORE-u}${PROMPT_COMMAND-}
}

__auditty_install
unset -f __auditty_install
