#!/bin/bash
# End-to-end test host, run by tests/e2e_deploy.rs as:
#   unshare -m --propagation private -- bash tests/e2e/ns.sh T SSH_PORT SMTP_PORT
# Inside this private mount namespace the host's /etc, /usr, /var, /home and /root are overlays whose changes land in
# T/ovl/<dir>/upper, /run and /tmp are private tmpfs (T and the repository stay visible) and /dev is a tmpfs holding the host's device
# nodes, a private devpts and a private /dev/log:
# nothing done here (install.sh, useradd, sshd_config.d) reaches the host. It starts a real rsyslogd on /dev/log, a
# real SMTP server (msmtpd, storing each message in T/mail) and a real sshd on 127.0.0.1:SSH_PORT, creates the test
# user `auditee`, prints "READY <pid>" and waits until its stdin closes; then it stops everything in the namespace.
set -euo pipefail
T=$1
SSH_PORT=$2
SMTP_PORT=$3
log() { echo "ns.sh: $*" >&2; }

# Bounded wait for something that appears asynchronously (a socket, a listening port).
wait_for() {
  local what=$1
  shift
  for _ in $(seq 1 200); do
    if "$@" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  log "timed out waiting for $what"
  return 1
}

mkdir -p "$T/ovl" "$T/mail" "$T/syslog" "$T/rsyslog-work" "$T/hostdev"
for d in etc usr var home root; do
  mkdir -p "$T/ovl/$d/upper" "$T/ovl/$d/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/ovl/$d/upper,workdir=$T/ovl/$d/work" "/$d"
done
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/sshd /run/lock
chmod 0755 /run/sshd
# A private /tmp too (FIFO directories of recordings, tmux sockets), with the repository (install.sh, the binary) and
# T still reachable at their paths, wherever they are (a checkout under /tmp included).
REPO=$(cd "$(dirname "$0")/../.." && pwd)
mkdir /run/e2e-repo /run/e2e-t
mount --bind "$REPO" /run/e2e-repo
mount --bind "$T" /run/e2e-t
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p "$REPO" "$T"
mount --bind /run/e2e-repo "$REPO"
mount --bind /run/e2e-t "$T"

# /dev: a private tmpfs with the host's plain device nodes bound in, so that /dev/log can be ours.
mount --rbind /dev "$T/hostdev"
mount -t tmpfs -o mode=0755 tmpfs /dev
for n in null zero full random urandom tty; do
  touch "/dev/$n"
  mount --bind "$T/hostdev/$n" "/dev/$n"
done
# A private devpts instance: the PTYs of sshd and of the recorder live in this namespace only.
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr

# rsyslogd in the foreground on the private /dev/log.
cat >"$T/rsyslog.conf" <<EOF
global(workDirectory="$T/rsyslog-work")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="/dev/log" CreatePath="on")
template(name="testfmt" type="string" string="%timereported:::date-rfc3339% pri=%syslogfacility-text%.%syslogseverity-text% app=%app-name% pid=%procid% msg=%msg:::drop-last-lf%\n")
*.* action(type="omfile" file="$T/syslog/messages.log" template="testfmt")
EOF
rsyslogd -n -f "$T/rsyslog.conf" -i "$T/rsyslog.pid" >"$T/rsyslogd.out" 2>&1 &
wait_for "rsyslogd's /dev/log" test -S /dev/log

# msmtpd: every message is stored whole in T/mail/<n>.eml (envelope in T/mail/<n>.env).
cat >"$T/store.sh" <<EOF
#!/bin/sh
n=\$(date +%s%N)
printf '%s\n' "\$@" >"$T/mail/\$n.env"
cat >"$T/mail/.\$n.tmp" && mv "$T/mail/.\$n.tmp" "$T/mail/\$n.eml"
EOF
chmod 0755 "$T/store.sh"
msmtpd --interface=127.0.0.1 --port="$SMTP_PORT" --log="$T/msmtpd.log" --command="$T/store.sh %F" &
wait_for "msmtpd on port $SMTP_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SMTP_PORT"

# The test user and the client key (also authorized for root, to test su - from a root session).
ssh-keygen -q -t ed25519 -N '' -f "$T/id" -C e2e
useradd -m -s /bin/bash auditee
usermod -p '*' auditee
for h in /home/auditee /root; do
  mkdir -p "$h/.ssh"
  cp "$T/id.pub" "$h/.ssh/authorized_keys"
  # A fixed prompt to wait for (after the distribution's .bashrc has set its own).
  printf '%s\n' "PS1='PROMPT\\$ '" >>"$h/.bashrc"
done
# What a user who wants to run something before auditty would try first: code at the top of ~/.bashrc. Each run
# logs which command line the shell was started for (the ForceCommand would be "/usr/bin/auditty session").
{
  echo 'echo "bashrc cmd=[${BASH_EXECUTION_STRING-}]" >>"$HOME/startup.log"'
  cat /home/auditee/.bashrc
} >"$T/bashrc" && cat "$T/bashrc" >/home/auditee/.bashrc
chown -R auditee:auditee /home/auditee/.ssh /home/auditee/.bashrc
chmod 0700 /home/auditee/.ssh /root/.ssh

# A zsh user and a user of /bin/sh (dash), with the same key.
useradd -m -s /bin/zsh zauditee
useradd -m -s /bin/sh dauditee
usermod -p '*' zauditee
usermod -p '*' dauditee
for u in zauditee dauditee; do
  mkdir -p "/home/$u/.ssh"
  cp "$T/id.pub" "/home/$u/.ssh/authorized_keys"
done
echo "PS1='ZPROMPT%# '" >/home/zauditee/.zshrc
echo 'print -r -- "zshenv cmd=[${ZSH_EXECUTION_STRING-}]" >>$HOME/startup.log' >/home/zauditee/.zshenv
echo "PS1='DPROMPT\$ '" >/home/dauditee/.profile
for u in zauditee dauditee; do
  chown -R "$u:$u" "/home/$u"
  chmod 0700 "/home/$u/.ssh"
done
# Worst case for the guard: users may preset any AUDITTY_* variable and their own environment file.
cat >/etc/ssh/sshd_config.d/00-e2e.conf <<EOF
AcceptEnv LANG LC_* AUDITTY_*
PermitUserEnvironment yes
EOF
printf 'AUDITTY_RECORDING=forged-by-user\nAUDITTY_FIFO=/tmp/forged\n' >/home/auditee/.ssh/environment
chown auditee:auditee /home/auditee/.ssh/environment

/usr/sbin/sshd -D -p "$SSH_PORT" -o ListenAddress=127.0.0.1 -o PidFile=/run/sshd.pid -E "$T/sshd.log" &
wait_for "sshd on port $SSH_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT"

echo "READY $$"
# Stay until the test closes our stdin.
cat >/dev/null || true

# Stop everything that runs in this namespace (daemons, sessions, spool writers), then leave.
me=$(readlink /proc/$$/ns/mnt)
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [ "$pid" = $$ ] && continue
  if [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$me" ]; then
    kill -9 "$pid" 2>/dev/null || true
  fi
done
