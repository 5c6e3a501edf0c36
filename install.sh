#!/bin/sh
# install.sh: install (or remove) auditty on this host, or stage it into $DESTDIR for a package.
#
#   sudo ./install.sh [--binary PATH] [--prefix /usr] [--sshd] [--mail-to ADDR] [--transport URL] [--dry-run]
#   sudo ./install.sh --uninstall [--purge] [--dry-run]
#   DESTDIR=/tmp/stage ./install.sh --binary target/release/auditty      (packagers: files only)
#
# Re-running is safe: an existing /etc/auditty.conf is never overwritten, everything else is brought to the state
# described in auditty(1), section INSTALLATION.
set -eu

usage() {
  cat <<'EOF'
Usage: sudo ./install.sh [OPTIONS]

Install auditty: every interactive login on this host is recorded and mailed to the auditors.

  --binary PATH     install this binary instead of building one with `cargo build --release`
  --prefix DIR      where the binary and man pages go (default /usr: /usr/bin/auditty)
  --sshd            hardened mode: sshd runs every session through auditty (ForceCommand), see auditty(1)
  --mail-to ADDR    first install only: set mail.to in the new /etc/auditty.conf (repeatable)
  --transport URL   first install only: set mail.transport (sendmail, smtp://host:port, smtps://host:port)
  --uninstall       remove auditty; recordings in the spool are kept (with the config, saved there)
  --purge           with --uninstall: also remove the spool, the config and the group auditty
  --dry-run         print what would be done, change nothing
  -h, --help        this help

Environment: DESTDIR=DIR stages the files under DIR for a package (no group, owners, services or checks).
EOF
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

PREFIX=/usr
BINARY=
SSHD=0
UNINSTALL=0
PURGE=0
DRY=0
MAIL_TO=
TRANSPORT=
DESTDIR=${DESTDIR-}
DESTDIR=${DESTDIR%/}

while [ $# -gt 0 ]; do
  case $1 in
  --binary) [ $# -ge 2 ] || die "--binary needs a path"; BINARY=$2; shift ;;
  --binary=*) BINARY=${1#*=} ;;
  --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX=$2; shift ;;
  --prefix=*) PREFIX=${1#*=} ;;
  --sshd) SSHD=1 ;;
  --mail-to) [ $# -ge 2 ] || die "--mail-to needs an address"; MAIL_TO="$MAIL_TO${MAIL_TO:+ }$2"; shift ;;
  --mail-to=*) MAIL_TO="$MAIL_TO${MAIL_TO:+ }${1#*=}" ;;
  --transport) [ $# -ge 2 ] || die "--transport needs a URL"; TRANSPORT=$2; shift ;;
  --transport=*) TRANSPORT=${1#*=} ;;
  --uninstall) UNINSTALL=1 ;;
  --purge) PURGE=1 ;;
  --dry-run) DRY=1 ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done

case $PREFIX in /*) ;; *) die "--prefix must be an absolute path" ;; esac
PREFIX=${PREFIX%/}
[ "$PURGE" = 0 ] || [ "$UNINSTALL" = 1 ] || die "--purge only goes with --uninstall"

SRC=$(cd "$(dirname "$0")" && pwd)
GROUP=auditty
BIN=$PREFIX/bin/auditty
MAN1=$PREFIX/share/man/man1
MAN5=$PREFIX/share/man/man5
CONF=/etc/auditty.conf
PROFILE=/etc/profile.d/auditty.sh
TMPFILES=/etc/tmpfiles.d/auditty.conf
CRON=/etc/cron.d/auditty
UNIT_DIR=/etc/systemd/system
SSHD_SNIPPET=/etc/ssh/sshd_config.d/auditty.conf
ZMARK_BEGIN='# BEGIN auditty (added by auditty install.sh; removed by install.sh --uninstall)'
ZMARK_END='# END auditty'
PAM_SSHD=/etc/pam.d/sshd
PAM_MARK='# auditty --sshd: was user_readenv=1'

if [ -z "$DESTDIR" ] && [ "$DRY" = 0 ] && [ "$(id -u)" != 0 ]; then
  die "run as root (sudo ./install.sh), or use --dry-run, or DESTDIR=... for a package"
fi
if [ -n "$DESTDIR" ] && [ "$UNINSTALL" = 1 ]; then
  die "--uninstall does not take DESTDIR (remove the staging directory instead)"
fi

DONE=
NOTES=
did() {
  DONE="$DONE
  - $*"
}
note() {
  NOTES="$NOTES
  ! $*"
}
# Run a command, or only show it with --dry-run.
run() {
  if [ "$DRY" = 1 ]; then
    echo "[dry-run] $*"
  else
    "$@"
  fi
}
live() { [ -z "$DESTDIR" ]; }
have() { command -v "$1" >/dev/null 2>&1; }
systemd_running() { live && [ -d /run/systemd/system ]; }

# install(1) arguments that set owner and group, except when staging a package.
owner() {
  if live; then
    echo "-o $1 -g $2"
  fi
}

# put MODE USER GROUP SRCFILE DEST: install a file atomically (a running binary can be replaced).
put() {
  _mode=$1 _user=$2 _group=$3 _src=$4 _dst=$DESTDIR$5
  if [ "$DRY" = 1 ]; then
    echo "[dry-run] install -m $_mode $_user:$_group $_src -> $_dst"
    return 0
  fi
  mkdir -p "$(dirname "$_dst")"
  # shellcheck disable=SC2046
  install -m "$_mode" $(owner "$_user" "$_group") "$_src" "$_dst.auditty-new"
  mv -f "$_dst.auditty-new" "$_dst"
}

# dir MODE USER GROUP PATH: create or fix a directory.
dir() {
  _dst=$DESTDIR$4
  if [ "$DRY" = 1 ]; then
    echo "[dry-run] install -d -m $1 $2:$3 $_dst"
    return 0
  fi
  # shellcheck disable=SC2046
  install -d -m "$1" $(owner "$2" "$3") "$_dst"
  if live; then
    chown "$2:$3" "$_dst"
    chmod "$1" "$_dst"
  fi
}

remove() {
  for _p in "$@"; do
    if [ -e "$_p" ] || [ -L "$_p" ]; then
      run rm -rf -- "$_p"
      did "removed $_p"
    fi
  done
}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

# conf_value SECTION KEY: a plain string value from the existing config, or nothing.
conf_value() {
  [ -r "$DESTDIR$CONF" ] || return 0
  awk -v sec="$1" -v key="$2" '
    /^[ \t]*\[/ { s = $0; gsub(/[][ \t]/, "", s); next }
    s == sec {
      line = $0; sub(/#.*/, "", line)
      if (match(line, "^[ \t]*" key "[ \t]*=")) {
        v = substr(line, RLENGTH + 1); gsub(/^[ \t]*["\047]|["\047][ \t]*$/, "", v); print v; exit
      }
    }' "$DESTDIR$CONF"
}

SPOOL=$(conf_value spool dir)
SPOOL=${SPOOL:-/var/spool/auditty}
RUNDIR=$(conf_value spool run_dir)
RUNDIR=${RUNDIR:-/run/auditty}
ZPROFILE=
for _z in /etc/zsh/zprofile /etc/zprofile; do
  if [ -f "$DESTDIR$_z" ]; then
    ZPROFILE=$_z
    break
  fi
done
ZSHENV=
for _z in /etc/zsh/zshenv /etc/zshenv; do
  if [ -f "$DESTDIR$_z" ]; then
    ZSHENV=$_z
    break
  fi
done

# remove_block FILE: take out the lines between our markers.
remove_block() {
  if [ -n "$1" ] && [ -f "$1" ] && grep -qF "$ZMARK_BEGIN" "$1"; then
    if [ "$DRY" = 1 ]; then
      echo "[dry-run] remove the auditty block from $1"
    else
      awk -v b="$ZMARK_BEGIN" -v e="$ZMARK_END" '$0 == b { skip = 1; next } skip && $0 == e { skip = 0; next } !skip' \
        "$1" >"$TMP/block"
      cat "$TMP/block" >"$1"
    fi
    did "removed the auditty block from $1"
  fi
}

# add_block FILE LINE...: append our marked block once.
add_block() {
  _f=$1
  shift
  grep -qF "$ZMARK_BEGIN" "$_f" && return 0
  if [ "$DRY" = 1 ]; then
    echo "[dry-run] append an auditty block to $_f"
  else
    { echo "$ZMARK_BEGIN"; printf '%s\n' "$@"; echo "$ZMARK_END"; } >>"$_f"
  fi
}

sshd_bin() {
  for _s in "$(command -v sshd 2>/dev/null || true)" /usr/sbin/sshd /usr/local/sbin/sshd; do
    if [ -n "$_s" ] && [ -x "$_s" ]; then
      echo "$_s"
      return 0
    fi
  done
  return 1
}

# Ask the running sshd to re-read its configuration.
reload_sshd() {
  if systemd_running && have systemctl; then
    for _u in ssh sshd; do
      if systemctl is-active --quiet "$_u" 2>/dev/null; then
        run systemctl reload "$_u" && did "reloaded sshd (systemctl reload $_u)" && return 0
      fi
    done
  fi
  for _pf in /run/sshd.pid /var/run/sshd.pid; do
    _pid=$(cat "$_pf" 2>/dev/null || true)
    if [ -n "$_pid" ] && kill -0 "$_pid" 2>/dev/null; then
      run kill -HUP "$_pid" && did "reloaded sshd (SIGHUP to pid $_pid)" && return 0
    fi
  done
  note "no running sshd found to reload: restart sshd yourself for the change to take effect"
}

# Validate the sshd configuration; on failure restore the previous snippet ($1: saved copy, or empty).
validate_sshd() {
  _sshd=$(sshd_bin) || { note "sshd not found: $SSHD_SNIPPET is not validated"; return 0; }
  [ "$DRY" = 0 ] || return 0
  if ! _err=$("$_sshd" -t 2>&1); then
    if [ -n "$1" ]; then cp -p "$1" "$SSHD_SNIPPET"; else rm -f "$SSHD_SNIPPET"; fi
    die "sshd -t rejects the configuration, $SSHD_SNIPPET restored: $_err"
  fi
}

###############################################################################################################
uninstall() {
  # Stop new recordings first, then everything else.
  remove "$PROFILE"
  remove_block "$ZPROFILE"
  remove_block "$ZSHENV"
  if [ -e "$SSHD_SNIPPET" ]; then
    cp -p "$SSHD_SNIPPET" "$TMP/sshd-snippet"
    run rm -f "$SSHD_SNIPPET"
    did "removed $SSHD_SNIPPET (sshd no longer forces auditty)"
    validate_sshd "$TMP/sshd-snippet"
    reload_sshd
  fi
  if [ -f "$PAM_SSHD" ] && grep -qF "$PAM_MARK" "$PAM_SSHD"; then
    if [ "$DRY" = 1 ]; then
      echo "[dry-run] restore user_readenv=1 in $PAM_SSHD"
    else
      sed "s/user_readenv=0\(.*\) $PAM_MARK\$/user_readenv=1\1/" "$PAM_SSHD" >"$TMP/pam"
      cat "$TMP/pam" >"$PAM_SSHD"
    fi
    did "restored user_readenv=1 in $PAM_SSHD"
  fi
  if [ -e "$UNIT_DIR/auditty-flush.timer" ]; then
    if have systemctl && systemd_running; then
      run systemctl disable --now auditty-flush.timer || true
    fi
    remove "$UNIT_DIR/auditty-flush.timer" "$UNIT_DIR/auditty-flush.service"
    if have systemctl && systemd_running; then run systemctl daemon-reload || true; fi
  fi
  remove "$CRON" "$TMPFILES"
  # Deliver what can still be delivered while the binary is here.
  if [ -x "$BIN" ] && [ "$DRY" = 0 ] && [ "$PURGE" = 0 ]; then
    if "$BIN" flush >/dev/null 2>&1; then did "ran a last auditty flush"; fi
  fi
  remove "$MAN1/auditty.1" "$MAN1/auditty.1.gz" "$MAN5/auditty.conf.5" "$MAN5/auditty.conf.5.gz" "$BIN" "$RUNDIR"
  if [ "$PURGE" = 1 ]; then
    remove "$CONF" "$SPOOL"
    if getent group "$GROUP" >/dev/null 2>&1; then
      if have groupdel; then run groupdel "$GROUP"; else run delgroup "$GROUP"; fi
      did "removed group $GROUP"
    fi
  else
    if [ -e "$CONF" ]; then
      if [ -d "$SPOOL" ]; then
        run mv -f "$CONF" "$SPOOL/auditty.conf.uninstalled"
        did "moved $CONF to $SPOOL/auditty.conf.uninstalled"
      else
        remove "$CONF"
      fi
    fi
    if [ -d "$SPOOL" ]; then
      _left=$(find "$SPOOL" -mindepth 2 -maxdepth 2 -type d 2>/dev/null | wc -l)
      did "kept the spool $SPOOL ($_left recordings; group $GROUP kept for it; remove with --uninstall --purge)"
    fi
  fi
  echo "auditty uninstalled:$DONE"
  if [ -n "$NOTES" ]; then echo "notes:$NOTES"; fi
  echo "Logins are no longer recorded. Sessions that are running now finish their recordings."
}

if [ "$UNINSTALL" = 1 ]; then
  uninstall
  exit 0
fi

###############################################################################################################
# 1. The binary.
if [ -z "$BINARY" ]; then
  [ -f "$SRC/Cargo.toml" ] || die "no --binary given and no source tree next to install.sh"
  echo "Building the release binary (cargo build --release)..."
  if [ "$DRY" = 1 ]; then
    echo "[dry-run] cargo build --release"
  elif [ -n "${SUDO_USER-}" ] && [ "$SUDO_USER" != root ] && have sudo; then
    sudo -u "$SUDO_USER" -H sh -c 'PATH="$HOME/.cargo/bin:$PATH"; cd "$1" && cargo build --release --quiet' \
      sh "$SRC" || die "cargo build failed: build it yourself, then: sudo ./install.sh --binary target/release/auditty"
  else
    (PATH="${HOME-/root}/.cargo/bin:$PATH" && cd "$SRC" && cargo build --release --quiet) ||
      die "cargo build failed: build it yourself, then: sudo ./install.sh --binary target/release/auditty"
  fi
  BINARY=$SRC/target/release/auditty
fi
if [ "$DRY" = 0 ] || [ -e "$BINARY" ]; then
  [ -f "$BINARY" ] && [ -x "$BINARY" ] || die "$BINARY is not an executable file"
  "$BINARY" --version >/dev/null 2>&1 || die "$BINARY does not run"
fi

# 2. The group.
if live; then
  if getent group "$GROUP" >/dev/null 2>&1; then
    :
  elif have groupadd; then
    run groupadd --system "$GROUP"
    did "created system group $GROUP"
  elif have addgroup; then
    run addgroup -S "$GROUP"
    did "created system group $GROUP"
  else
    die "cannot create the group $GROUP (no groupadd or addgroup)"
  fi
fi

# 3. Files that need no checks.
put 2755 root "$GROUP" "$BINARY" "$BIN"
did "installed $BIN (root:$GROUP 2755, setgid $GROUP)"
dir 0770 root "$GROUP" "$SPOOL"
for _st in active queue sent failed; do
  dir 0770 root "$GROUP" "$SPOOL/$_st"
done
did "spool $SPOOL (root:$GROUP 0770)"
if live; then
  dir 0770 root "$GROUP" "$RUNDIR"
  did "registry of live recordings $RUNDIR (root:$GROUP 0770)"
fi
printf 'd %s 0770 root %s -\n' "$RUNDIR" "$GROUP" >"$TMP/tmpfiles"
put 0644 root root "$TMP/tmpfiles" "$TMPFILES"
if systemd_running && have systemd-tmpfiles; then
  run systemd-tmpfiles --create "$TMPFILES" || true
fi
did "$TMPFILES (recreates $RUNDIR at boot)"

for _m in "$SRC/man/auditty.1:$MAN1" "$SRC/man/auditty.conf.5:$MAN5"; do
  put 0644 root root "${_m%%:*}" "${_m#*:}/$(basename "${_m%%:*}")"
done
did "man pages auditty(1), auditty.conf(5) in $PREFIX/share/man"

# 4. The configuration: never overwritten.
if [ -e "$DESTDIR$CONF" ]; then
  did "kept the existing $CONF"
  if [ -n "$MAIL_TO$TRANSPORT" ]; then
    note "--mail-to/--transport ignored: $CONF exists (edit it, then run auditty check-config --send-test)"
  fi
else
  cp "$SRC/etc/auditty.conf" "$TMP/conf"
  if [ -n "$MAIL_TO" ]; then
    _list=$(printf '%s\n' $MAIL_TO | sed 's/.*/"&"/' | paste -sd, - | sed 's/,/, /g')
    sed "s|^#to = .*|to = [$_list]|" "$TMP/conf" >"$TMP/conf2" && mv "$TMP/conf2" "$TMP/conf"
  fi
  if [ -n "$TRANSPORT" ]; then
    sed "s|^#transport = .*|transport = \"$TRANSPORT\"|" "$TMP/conf" >"$TMP/conf2" && mv "$TMP/conf2" "$TMP/conf"
  fi
  put 0640 root "$GROUP" "$TMP/conf" "$CONF"
  did "new $CONF (root:$GROUP 0640, every key commented with its default)"
fi

# 5. Delivery every minute.
if systemd_running; then
  cat >"$TMP/service" <<EOF
[Unit]
Description=Deliver queued auditty session recordings
Documentation=man:auditty(1)

[Service]
Type=oneshot
ExecStartPre=-/usr/bin/install -d -m 0770 -o root -g $GROUP $RUNDIR
ExecStart=$BIN flush
EOF
  cat >"$TMP/timer" <<EOF
[Unit]
Description=Deliver queued auditty session recordings every minute
Documentation=man:auditty(1)

[Timer]
OnBootSec=30s
OnUnitActiveSec=1min
AccuracySec=5s

[Install]
WantedBy=timers.target
EOF
  put 0644 root root "$TMP/service" "$UNIT_DIR/auditty-flush.service"
  put 0644 root root "$TMP/timer" "$UNIT_DIR/auditty-flush.timer"
  run systemctl daemon-reload
  run systemctl enable --now auditty-flush.timer
  did "systemd timer auditty-flush.timer runs '$BIN flush' every minute"
  remove "$DESTDIR$CRON"
else
  remove "$DESTDIR$UNIT_DIR/auditty-flush.timer" "$DESTDIR$UNIT_DIR/auditty-flush.service"
  cat >"$TMP/cron" <<EOF
# auditty: deliver queued session recordings every minute (installed by auditty install.sh).
SHELL=/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
@reboot root install -d -m 0770 -o root -g $GROUP $RUNDIR
* * * * * root [ -d $RUNDIR ] || install -d -m 0770 -o root -g $GROUP $RUNDIR; $BIN flush >/dev/null 2>&1
EOF
  put 0644 root root "$TMP/cron" "$CRON"
  did "$CRON runs '$BIN flush' every minute (no systemd here)"
  if live && ! have cron && ! have crond && [ ! -x /usr/sbin/cron ] && [ ! -x /usr/sbin/crond ]; then
    note "no cron daemon is installed: install cron (or cronie), or queued recordings are only sent at logout"
  fi
fi

if ! live; then
  sed -e "s|@BINDIR@|$PREFIX/bin|" -e "s|@ON_ERROR@|open|" "$SRC/profile.d/auditty.sh" >"$TMP/profile"
  put 0644 root root "$TMP/profile" "$PROFILE"
  did "$PROFILE"
  echo "auditty staged in $DESTDIR:$DONE"
  cat <<EOF
A package's post-install step must still: create the system group $GROUP; chown root:$GROUP and chmod 2755
$BIN; chown root:$GROUP $SPOOL (0770, and its active queue sent failed) and $CONF (0640); create $RUNDIR
(systemd-tmpfiles --create $TMPFILES); enable the flush timer or cron entry; run '$BIN check-config'.
EOF
  exit 0
fi

# 6. Check the whole setup before logins start going through it.
CHECK_OK=1
if [ "$DRY" = 1 ]; then
  echo "[dry-run] $BIN check-config"
else
  if ! "$BIN" check-config >"$TMP/check" 2>&1; then
    CHECK_OK=0
  fi
  sed 's/^/    /' "$TMP/check"
fi
if [ "$CHECK_OK" = 0 ]; then
  if [ -e "$PROFILE" ]; then
    note "auditty check-config failed (above): $PROFILE was left as it was; fix $CONF and re-run install.sh"
  else
    note "auditty check-config failed (above): logins are NOT recorded yet; fix $CONF and re-run install.sh"
  fi
  echo "auditty partly installed:$DONE"
  echo "notes:$NOTES"
  exit 1
fi

# 7. zsh reads /etc/profile.d only where the distribution's zprofile sources /etc/profile.
if [ -n "$ZPROFILE" ] && ! grep -qF "$ZMARK_BEGIN" "$ZPROFILE" && ! grep -q '/etc/profile' "$ZPROFILE"; then
  add_block "$ZPROFILE" "[ -r $PROFILE ] && . $PROFILE"
  did "$ZPROFILE sources $PROFILE (zsh logins)"
fi

# 8. Enable recording of logins.
ON_ERROR=$(conf_value policy on_error)
case $ON_ERROR in closed) ;; *) ON_ERROR=open ;; esac
sed -e "s|@BINDIR@|$PREFIX/bin|" -e "s|@ON_ERROR@|$ON_ERROR|" "$SRC/profile.d/auditty.sh" >"$TMP/profile"
put 0644 root root "$TMP/profile" "$PROFILE"
did "$PROFILE: interactive logins are recorded (policy.on_error = $ON_ERROR)"

# 9. Hardened sshd mode.
if [ "$SSHD" = 1 ]; then
  _sshd=$(sshd_bin) || die "--sshd: sshd is not installed"
  _main=/etc/ssh/sshd_config
  if ! grep -Eqi '^[[:space:]]*Include[[:space:]].*sshd_config\.d' "$_main" 2>/dev/null; then
    die "--sshd: $_main does not Include /etc/ssh/sshd_config.d/*.conf; add 'Include /etc/ssh/sshd_config.d/*.conf' at its top and re-run"
  fi
  cat >"$TMP/sshd" <<EOF
# Installed by auditty install.sh --sshd; removed by install.sh --uninstall. See auditty(1), HARDENED MODE.
# Every SSH session goes through auditty: interactive ones are recorded, file transfers (scp, sftp, rsync) run
# untouched and are logged, other commands are logged (and recorded when record.noninteractive = true).
ForceCommand $BIN session
PermitUserRC no
PermitUserEnvironment no
# sshd runs the ForceCommand through the user's shell. SHLVL=1 stops bash from reading ~/.bashrc first (its
# "run by sshd" rule applies only to a top-level shell), and BASH_ENV is emptied, so nothing of the user's runs
# before auditty. (zsh: see the auditty block in zshenv.)
SetEnv SHLVL=1 BASH_ENV=
# Recommended as well where users need no tunnels (ssh -L/-R/-D/-W are never seen by auditty):
#DisableForwarding yes
#PermitTunnel no
EOF
  _saved=
  if [ -e "$SSHD_SNIPPET" ]; then
    cp -p "$SSHD_SNIPPET" "$TMP/sshd-old"
    _saved=$TMP/sshd-old
  fi
  put 0644 root root "$TMP/sshd" "$SSHD_SNIPPET"
  validate_sshd "$_saved"
  # zsh reads ~/.zshenv before any command; for the ForceCommand itself, stop after the system zshenv.
  if [ -n "$ZSHENV" ]; then
    add_block "$ZSHENV" "[[ \${ZSH_EXECUTION_STRING-} == '$BIN session' ]] && setopt no_rcs"
    did "$ZSHENV: zsh runs the ForceCommand without the user's startup files"
  fi
  # pam_env's user_readenv lets users set any variable (LD_PRELOAD, ...) for the shell that starts auditty.
  if [ -f "$PAM_SSHD" ] && grep -Eq '^[^#]*user_readenv=1' "$PAM_SSHD"; then
    if [ "$DRY" = 1 ]; then
      echo "[dry-run] set user_readenv=0 in $PAM_SSHD"
    else
      sed "/^[^#]*user_readenv=1/{s/user_readenv=1\(.*\)\$/user_readenv=0\1 $PAM_MARK/}" "$PAM_SSHD" >"$TMP/pam"
      cat "$TMP/pam" >"$PAM_SSHD"
    fi
    did "$PAM_SSHD: user_readenv=0 (~/.pam_environment could otherwise run code before auditty)"
  fi
  if [ "$DRY" = 0 ]; then
    _fc=$("$_sshd" -T 2>/dev/null | awk 'tolower($1) == "forcecommand" { $1 = ""; sub(/^ /, ""); print }')
    if [ "$_fc" != "$BIN session" ]; then
      if [ -n "$_saved" ]; then cp -p "$_saved" "$SSHD_SNIPPET"; else rm -f "$SSHD_SNIPPET"; fi
      die "--sshd: sshd's effective ForceCommand is '${_fc:-none}', not '$BIN session' (an earlier ForceCommand in $_main wins); $SSHD_SNIPPET removed"
    fi
  fi
  did "$SSHD_SNIPPET: ForceCommand $BIN session, PermitUserRC no, PermitUserEnvironment no (sshd -t passed)"
  reload_sshd
fi

echo "auditty installed:$DONE"
if [ -n "$NOTES" ]; then echo "notes:$NOTES"; fi
_also=
if [ "$SSHD" = 1 ]; then _also=" (and $SSHD_SNIPPET)"; fi
cat <<EOF

Keep this root session open while you test: log in from another terminal, run a few commands, log out, and
check that the recording arrives (auditty list; the mail to the addresses in mail.to). If logins fail, remove
$PROFILE$_also from this session, or run ./install.sh --uninstall.
EOF
if grep -Eq '^[[:space:]]*to[[:space:]]*=' "$CONF" 2>/dev/null; then
  echo "Next: sudo auditty check-config --send-test"
else
  echo "Next: set mail.to and mail.transport in $CONF, then: sudo auditty check-config --send-test"
fi
