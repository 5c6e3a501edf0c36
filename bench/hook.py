#!/usr/bin/env python3
"""Per-prompt cost of the auditty command hook (issue 4).

Drives an interactive `bash -i` through a PTY and times N prompts (lines of `:`) for three set-ups:
  bare    no PROMPT_COMMAND
  auditty the hook from src/hook/bash.sh, writing into a FIFO drained by a reader thread
  auditty+hc  the same with HISTCONTROL=ignoreboth (the hook then emulates it on the history)
  logger  the seed recipe: PROMPT_COMMAND forking whoami, history|sed and logger (to a private syslog socket)
The cost per prompt is (T(N) - T(0)) / N, median over interleaved rounds, as wall time and as CPU time of the shell
and everything it waited for (getrusage via wait4: less disturbed by other load on the machine); the added cost is
the difference to bare.
Processes spawned per prompt are counted with strace (clone/fork/vfork) when strace is installed.

usage: bench/hook.py [--prompts N] [--rounds R] [--shell /bin/bash] [--only auditty,logger]
"""
import argparse, os, pty, select, shutil, socket, statistics, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
SNIPPET = open(os.path.join(HERE, '..', 'src', 'hook', 'bash.sh')).read()
LOGGER = ('RETRN_VAL=$?; logger -u {sock} -p local6.debug "$(whoami) [$$]: '
          '$(history 1 | sed "s/^[ ]*[0-9]\\+[ ]*//" ) [$RETRN_VAL]"')


def drain_fifo(path):
    fd = os.open(path, os.O_RDWR)  # like the spool writer: keeps a write end, never sees EOF
    while True:
        os.read(fd, 1 << 16)


def drain_dgram(sock):
    while True:
        sock.recv(1 << 16)


def run_shell(shell, rc, lines, strace_out=None):
    """Start `shell -i` on a PTY, wait for its first prompt, send `lines` lines of `:`, wait until done."""
    pid, master = pty.fork()
    if pid == 0:
        env = {'TERM': 'dumb', 'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': os.path.dirname(rc)}
        argv = [shell, '--noprofile', '--rcfile', rc, '-i']
        if strace_out:
            argv = ['strace', '-f', '-qq', '-o', strace_out, '-e', 'trace=clone,clone3,fork,vfork,execve'] + argv
        os.execvpe(argv[0], argv, env)
    buf = b''

    def wait_for(token, timeout=120):
        nonlocal buf
        end = time.monotonic() + timeout
        while token not in buf:
            r, _, _ = select.select([master], [], [], max(0, end - time.monotonic()))
            if not r:
                raise RuntimeError('timeout waiting for %r; got %r' % (token, buf[-200:]))
            buf += os.read(master, 1 << 16)
        buf = buf[buf.index(token) + len(token):]

    wait_for(b'READY> ')
    payload = b':\n' * lines + b'echo DO""NE\n'
    t0 = time.perf_counter()
    for i in range(0, len(payload), 4096):
        os.write(master, payload[i:i + 4096])
        # keep reading so the PTY never fills up
        while select.select([master], [], [], 0)[0]:
            buf += os.read(master, 1 << 16)
    wait_for(b'DONE')
    t = time.perf_counter() - t0  # wall time of the N prompts
    os.write(master, b'exit\n')
    try:
        while os.read(master, 1 << 16):
            pass
    except OSError:
        pass
    _, _, ru = os.wait4(pid, 0)
    os.close(master)
    return t, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--prompts', type=int, default=2000)
    ap.add_argument('--rounds', type=int, default=7)
    ap.add_argument('--only', help='comma-separated set-ups to run (bare is always run)')
    ap.add_argument('--shell', default='/bin/bash')
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='auditty-bench-')
    sess = os.path.join(tmp, 'sess')
    os.mkdir(sess, 0o700)
    fifo = os.path.join(sess, 'cmd')
    os.mkfifo(fifo, 0o600)
    threading.Thread(target=drain_fifo, args=(fifo,), daemon=True).start()
    sock_path = os.path.join(tmp, 'log.sock')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    threading.Thread(target=drain_dgram, args=(sock,), daemon=True).start()
    base = "PS1='READY> '\nHISTFILE=%s/hist\n" % tmp
    hook = SNIPPET.replace('@FIFO@', "'%s'" % fifo)
    setups = {
        'bare': base,
        # The hook with nothing to emulate: fc's output goes straight into the FIFO.
        'auditty': base + hook,
        # HISTCONTROL=ignoreboth (Debian/Ubuntu skeleton .bashrc): the text comes back into the shell for the
        # emulation.
        'auditty+hc': base + 'HISTCONTROL=ignoreboth\n' + hook,
        'logger': base + "PROMPT_COMMAND='%s'\n" % LOGGER.format(sock=sock_path),
    }
    if a.only:
        keep = set(a.only.split(',')) | {'bare'}
        setups = {k: v for k, v in setups.items() if k in keep}
    rcs = {}
    for name, text in setups.items():
        rcs[name] = os.path.join(tmp, name + '.rc')
        with open(rcs[name], 'w') as f:
            f.write(text)
    n = a.prompts
    wall = {name: [] for name in setups}
    cpu = {name: [] for name in setups}
    for r in range(a.rounds):
        for name in setups:
            lines = n if name != 'logger' else max(1, n // 20)  # the logger recipe is ~100x slower
            w_n, c_n = run_shell(a.shell, rcs[name], lines)
            w_0, c_0 = run_shell(a.shell, rcs[name], 0)
            wall[name].append((w_n - w_0) / lines)
            cpu[name].append((c_n - c_0) / lines)
        print('round %d/%d done' % (r + 1, a.rounds), file=sys.stderr)
    print('%d prompts per run, median of %d rounds (%s)' % (n, a.rounds, a.shell))
    print('%-11s %16s %16s %16s %16s' % ('setup', 'wall/prompt', 'wall added', 'CPU/prompt', 'CPU added'))
    mw = {k: statistics.median(v) for k, v in wall.items()}
    mc = {k: statistics.median(v) for k, v in cpu.items()}
    for k in setups:
        print('%-11s %13.1f us %13.1f us %13.1f us %13.1f us' % (
            k, mw[k] * 1e6, (mw[k] - mw['bare']) * 1e6, mc[k] * 1e6, (mc[k] - mc['bare']) * 1e6))
    if shutil.which('strace'):
        m = 200
        for name in setups:
            outs = []
            for lines in (0, m):
                out = os.path.join(tmp, '%s.%d.strace' % (name, lines))
                run_shell(a.shell, rcs[name], lines if name != 'logger' else lines // 10, strace_out=out)
                with open(out) as f:
                    outs.append(sum(1 for l in f if any(s in l for s in ('clone(', 'clone3(', 'fork(', 'vfork(')) and '= -1' not in l))
            per = (outs[1] - outs[0]) / (m if name != 'logger' else m // 10)
            print('%-11s processes spawned per prompt: %.2f' % (name, per))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
