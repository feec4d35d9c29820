#!/usr/bin/env python3
"""A real TLS terminator on the run's ports, in front of plain HTTP backends (stdlib only, Python 3.9+).

--server nginx: Debian's nginx, one worker process; --server haproxy: Debian's HAProxy, one thread.
Each terminates TLS on one port of --ports and forwards to a plain HTTP backend of its own on
127.0.0.1 (client/https_server.py --plain, on a port the kernel picks). The requests, status
codes and connection markers travel unchanged: GET /<code>/<marker> answers <code> with body OK.

nginx forwards as its default proxy_pass does (HTTP/1.0, a new backend connection per request);
HAProxy as its defaults do (HTTP/1.1 keep-alive to the backend). Either way the terminator's
thread makes plain sends between an SSL_read and its SSL_write: the sends that take upstream's
per-thread slot.

stdout, as https_server.py: one line "LISTENING <port>" per port once the terminator listens
on it, and one line "CLOSED <port> <peer port>" per client connection once the terminator has
closed it (its socket left ESTABLISHED/CLOSE_WAIT in /proc/net/tcp, read every 20 ms: tcp_close
is done; a connection open for less than that may get no line, and the run protocol then waits its
settle time). The
terminator's and the backend's own messages go to stderr. Exit 0 on SIGTERM/SIGINT (both
stopped), 1 when the terminator or the backend dies on its own or fails to start (naming which).
"""
import argparse
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import https_server  # noqa: E402  (the certificate and the port list, as the python server's)

PROG = "tls_terminator"
SERVERS = ("nginx", "haproxy")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# /proc/net/tcp states: a socket the terminator has not closed yet
OPEN_STATES = {"01", "03", "08"}  # ESTABLISHED, SYN_RECV, CLOSE_WAIT
LISTEN = "0A"
POLL_S = 0.02
START_TIMEOUT_S = 60


def fail(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def parse_args(argv):
    ap = argparse.ArgumentParser(prog=PROG, description="nginx or HAProxy terminating TLS on --ports in front of plain HTTP backends.")
    ap.add_argument("--server", choices=SERVERS, required=True, help="the terminator: nginx (one worker) or haproxy (one thread)")
    ap.add_argument("--ports", type=https_server.parse_ports, default=[18001, 18002], help="comma-separated TLS ports (default 18001,18002)")
    ap.add_argument("--nagle", choices=("on", "off"), default="off", help="Nagle's algorithm on the backends' sockets and nginx's (tcp_nodelay); HAProxy keeps its own default")
    ap.add_argument("--dir", help="keep the configuration, certificate and logs here (default: a temp dir, removed again)")
    ap.add_argument("--bin", help="the terminator's executable (default: found on PATH or in /usr/sbin)")
    ap.add_argument("--python", default=sys.executable, help="python for the backend (default: this one)")
    ap.add_argument("--quiet", action="store_true", help="no access log lines from the backend")
    args = ap.parse_args(argv)
    if 0 in args.ports:
        ap.error("--ports: the terminator's ports must be given (no 0)")
    return args


def find_bin(name, given):
    if given:
        return given
    found = shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)
    if not found:
        fail(f"{name} not found (install Debian's {'nginx-light or nginx' if name == 'nginx' else 'haproxy'} package; locally: bash provision/host-deps.sh servers)")
    return found


def with_parent():
    """preexec_fn: SIGTERM when we die (so no orphan keeps a port), and the stop signals unblocked."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def with_parent_own_group():
    """preexec_fn of the terminator: with_parent, in a process group of its own, so that its
    workers can be stopped with it even when its master died first (an orphaned nginx worker
    serves on)."""
    os.setpgid(0, 0)
    with_parent()


def nginx_conf(d, fronts, backends, cert, key, nagle):
    servers = "\n".join(
        f"""  server {{
    listen 127.0.0.1:{f} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{ proxy_pass http://127.0.0.1:{b}; }}
  }}"""
        for f, b in zip(fronts, backends)
    )
    temps = "\n".join(f"  {t}_temp_path {d}/tmp-{t};" for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""# written by {PROG}: one worker, TLS on the run's ports, plain HTTP to the backends
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 1024; }}
http {{
  access_log off;
{temps}
  keepalive_requests 1000000;
  keepalive_timeout 3600s;
  client_header_timeout 3600s;
  tcp_nodelay {"off" if nagle == "on" else "on"};
{servers}
}}
"""


def haproxy_conf(fronts, backends, pem):
    parts = [
        f"# written by {PROG}: one thread, TLS on the run's ports, plain HTTP to the backends",
        "global",
        "  nbthread 1",
        "  maxconn 1024",
        "defaults",
        "  mode http",
        "  timeout connect 10s",
        "  timeout client 1h",
        "  timeout http-request 1h",
        "  timeout http-keep-alive 1h",
        "  timeout server 60s",
    ]
    for i, (f, b) in enumerate(zip(fronts, backends), 1):
        parts += [f"frontend tls{i}", f"  bind 127.0.0.1:{f} ssl crt {pem}", f"  default_backend plain{i}"]
        parts += [f"backend plain{i}", f"  server s{i} 127.0.0.1:{b}"]
    return "\n".join(parts) + "\n"


def read_tcp():
    """(state, local port, remote port, inode) of every IPv4/IPv6 TCP socket in this network namespace."""
    out = []
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh, None)
                for line in fh:
                    p = line.split()
                    if len(p) > 9:
                        out.append((p[3], int(p[1].rsplit(":", 1)[1], 16), int(p[2].rsplit(":", 1)[1], 16), p[9]))
        except OSError:
            pass
    return out


class Lines:
    """The backend's stdout: its LISTENING lines (the ports it got), then drained in a thread."""

    def __init__(self, proc):
        self.proc = proc

    def listening(self, n, deadline):
        ports = []
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b""
        while len(ports) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return None
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                return None
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                w = line.decode(errors="replace").split()
                if len(w) == 2 and w[0] == "LISTENING":
                    ports.append(int(w[1]))
        sel.close()
        threading.Thread(target=self.drain, daemon=True).start()
        return ports

    def drain(self):
        try:
            while os.read(self.proc.stdout.fileno(), 65536):
                pass  # the backend's CLOSED lines name its own connections, not the run's
        except OSError:
            pass


def socket_inodes(pid):
    """Inodes of the sockets process pid has open (its listening sockets among them)."""
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
    except OSError:
        pass
    return out


def killpg(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(procs, groups):
    """SIGTERM each (terminator first; its whole process group for those in groups), SIGKILL what
    is left after 5 s; reap all. A group's members left after its leader exited are killed too."""
    for _, p in procs:
        if p.pid in groups:
            killpg(p.pid, signal.SIGTERM)
        elif p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    for _, p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for pid in groups:
        killpg(pid, signal.SIGKILL)


def how(p):
    rc = p.returncode
    return f"was killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"


class Stop(BaseException):
    pass


def on_stop(_signum, _frame):
    raise Stop()


def main(argv):
    args = parse_args(argv)
    binary = find_bin(args.server, args.bin)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    own = args.dir is None
    d = tempfile.mkdtemp(prefix="tls-terminator-") if own else os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)
    procs = []  # (name, Popen), terminator first once started
    groups = set()  # pids that lead a process group of their own (the terminator)
    code = 0
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        backend_argv = [args.python, os.path.join(HERE, "https_server.py"), "--plain", "--ports", ",".join("0" * len(args.ports)), "--nagle", args.nagle]
        backend = subprocess.Popen(backend_argv + (["--quiet"] if args.quiet else []), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=with_parent)
        procs.append(("backend", backend))
        # the certificate while the backend's python starts (each takes seconds in a TCG guest)
        cert, key = https_server.generate_cert(d)
        bports = Lines(backend).listening(len(args.ports), deadline)
        if bports is None:
            backend.poll()
            fail(f"the plain backend did not listen within {START_TIMEOUT_S} s" + (f" ({how(backend)})" if backend.returncode is not None else ""))
        if args.server == "nginx":
            conf = os.path.join(d, "nginx.conf")
            with open(conf, "w") as fh:
                fh.write(nginx_conf(d, args.ports, bports, cert, key, args.nagle))
            cmd = [binary, "-c", conf, "-p", d + "/"]
        else:
            pem = os.path.join(d, "haproxy.pem")
            with open(cert) as c, open(key) as k, open(pem, "w") as out:
                out.write(c.read() + k.read())
            os.chmod(pem, 0o600)
            conf = os.path.join(d, "haproxy.cfg")
            with open(conf, "w") as fh:
                fh.write(haproxy_conf(args.ports, bports, pem))
            cmd = [binary, "-f", conf, "-db"]
        term = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(), preexec_fn=with_parent_own_group)
        procs.insert(0, (args.server, term))
        groups.add(term.pid)
        # listening: every port in LISTEN state on a socket the terminator holds (read from the
        # kernel, no connection made; another program's socket on the port is not the terminator's)
        fronts = set(args.ports)
        while True:
            mine = socket_inodes(term.pid)
            listening = {lp for st, lp, _, ino in read_tcp() if st == LISTEN and lp in fronts and ino in mine}
            if listening == fronts:
                break
            for name, p in procs:
                if p.poll() is not None:
                    fail(f"{name} {how(p)} before listening on {','.join(map(str, sorted(fronts - listening)))}")
            if time.monotonic() > deadline:
                fail(f"{args.server} did not listen on {','.join(map(str, sorted(fronts - listening)))} within {START_TIMEOUT_S} s")
            time.sleep(POLL_S)
        sys.stdout.flush()
        for port in args.ports:
            os.write(sys.stdout.fileno(), f"LISTENING {port}\n".encode())
        # serve: report each client connection the terminator closed; stop when a process dies
        open_conns = set()
        while True:
            now = {(lp, rp) for st, lp, rp, _ in read_tcp() if lp in fronts and st in OPEN_STATES}
            for lp, rp in sorted(open_conns - now):
                os.write(sys.stdout.fileno(), f"CLOSED {lp} {rp}\n".encode())
            open_conns = now
            for name, p in procs:
                if p.poll() is not None:
                    print(f"{PROG}: {name} {how(p)}; stopping the others", file=sys.stderr, flush=True)
                    code = 1
                    raise Stop()
            time.sleep(POLL_S)
    except Stop:
        pass
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        stop(procs, groups)
        if own:
            shutil.rmtree(d, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
