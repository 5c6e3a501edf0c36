#!/bin/sh
# Finalize + compress + send time of one large recorded session, with a real SMTP server (msmtpd) on loopback.
#
#   bench/deliver.sh [SIZE_MIB] [RUNS]          (defaults: 64 MiB, 3 runs)
#   AUDITTY=path/to/auditty bench/deliver.sh    (default: target/release/auditty; build it with cargo build --release)
#   LEVEL=1 bench/deliver.sh                    (mail.compress_level, default 6)
#
# The session prints SIZE_MIB of log-like terminal text (`cat` of a generated file) through the real PTY recorder.
# Measured per run, from the moment the session's `auditty session` process exits:
#   finalize+compress  until the recording appears in queue/ (footer, fsync, gzip + SHA-256 of every file, rename;
#                      the gzip only because a transport is configured: with mail.transport = "none" nothing is
#                      compressed)
#   send               from then until msmtpd has received the whole message
#   total              exit -> message received
#   compress_ms/send_ms  the writer's own measurements (meta.json): gzip + SHA-256 + queue, and build + send
# for two settings: mail.max_size = 0 (the whole recording is mailed) and the default 10M (head+tail excerpt).
# Needs: msmtpd (msmtp-mta), script (util-linux), python3 (to generate the text).
set -eu

SIZE=${1:-64}
RUNS=${2:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${AUDITTY:-$HERE/target/release/auditty}
[ -x "$BIN" ] || { echo "no $BIN: run cargo build --release, or set AUDITTY" >&2; exit 1; }
T=$(mktemp -d /tmp/auditty-bench.XXXXXX)
trap 'kill $MTA 2>/dev/null || true; rm -rf "$T"' EXIT INT TERM

now() { date +%s.%N; }
elapsed() { echo "$1 $2" | awk '{ printf "%.3f", $2 - $1 }'; }

# Log-like text: varied numbers and paths, as a busy terminal shows (gzip -6 compresses it about 5x).
python3 - "$T/big.txt" "$SIZE" <<'PY'
import random, sys
random.seed(42)
path, mib = sys.argv[1], int(sys.argv[2])
words = "GET POST PUT DELETE items users orders search login report export health cache session".split()
with open(path, "w") as f:
    n = 0
    while n < mib << 20:
        line = "2026-11-22T10:%02d:%02d.%03d INFO worker[%d]: %s /api/v1/%s/%d?q=%s status=%d bytes=%d ms=%d\n" % (
            random.randrange(60), random.randrange(60), random.randrange(1000), random.randrange(1, 64),
            random.choice(words[:4]), random.choice(words[4:]), random.randrange(10**6),
            random.choice(words).lower(), random.choice((200, 200, 200, 201, 304, 404, 500)),
            random.randrange(10**5), random.randrange(2000))
        f.write(line)
        n += len(line)
PY

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$T/inbox"
cat > "$T/store.sh" <<STORE
#!/bin/sh
cat > "$T/inbox/msg.tmp"
date +%s.%N > "$T/inbox/received"
STORE
chmod 755 "$T/store.sh"
msmtpd --interface=127.0.0.1 --port="$PORT" --command="$T/store.sh %F" &
MTA=$!
while ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))" 2>/dev/null; do sleep 0.02; done

echo "auditty $("$BIN" --version | cut -d' ' -f2), $SIZE MiB session, compress_level ${LEVEL:-6}, $(nproc) cores, $RUNS runs per setting"
printf '%-8s %4s %9s %7s %9s %6s %6s %8s %12s %8s\n' max_size run session_s out_MB finalize send total mail_MB compress_ms send_ms
for MAX in 0 10M; do
  for RUN in $(seq 1 "$RUNS"); do
    S="$T/spool-$MAX-$RUN"
    mkdir -p "$S/spool" "$S/run"
    cat > "$S/auditty.conf" <<CONF
[spool]
dir = "$S/spool"
run_dir = "$S/run"
[syslog]
target = "none"
[hook]
enabled = false
[mail]
transport = "smtp://127.0.0.1:$PORT"
to = "auditors@example.com"
from = "auditty@bench.example"
max_size = "$MAX"
compress_level = ${LEVEL:-6}
CONF
    [ "$MAX" = 0 ] && sed -i 's/^max_size = "0"/max_size = 0/' "$S/auditty.conf"
    rm -f "$T/inbox/received" "$T/inbox/msg.tmp"
    T_START=$(now)
    TERM=dumb script -qc "$BIN --config $S/auditty.conf session -c 'cat $T/big.txt'" /dev/null > /dev/null
    T_EXIT=$(now)
    until [ -n "$(ls "$S/spool/queue" "$S/spool/sent" 2>/dev/null | grep -v ':$' | grep .)" ]; do sleep 0.005; done
    T_QUEUED=$(now)
    until [ -f "$T/inbox/received" ]; do sleep 0.005; done
    T_RECV=$(cat "$T/inbox/received")
    OUT=$(du -m "$T/big.txt" | cut -f1)
    MAIL=$(du -m "$T/inbox/msg.tmp" | cut -f1)
    # Wait for the writer to be done before the next run.
    until [ -n "$(ls "$S/spool/sent" 2>/dev/null)" ] || [ -n "$(ls "$S/spool/failed" 2>/dev/null)" ]; do sleep 0.01; done
    META=$(ls -d "$S"/spool/sent/*/meta.json "$S"/spool/failed/*/meta.json 2>/dev/null | head -1)
    CMS=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m.get("compress_ms"), m.get("send_ms"))' "$META")
    printf '%-8s %4s %9s %7s %9s %6s %6s %8s %12s %8s\n' "$MAX" "$RUN" "$(elapsed "$T_START" "$T_EXIT")" "$OUT" \
      "$(elapsed "$T_EXIT" "$T_QUEUED")" "$(elapsed "$T_QUEUED" "$T_RECV")" "$(elapsed "$T_EXIT" "$T_RECV")" "$MAIL" $CMS
  done
done
