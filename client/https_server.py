#!/usr/bin/env python3
"""HTTPS keep-alive test server for the race client (stdlib only, Python 3.9+).

Like the investigation's server: one single-threaded http.server.HTTPServer per port, each in
its own process (forked per port; no fork with one port), HTTP/1.1 keep-alive, body "OK".
GET /<code>/anything answers <code> (100-599, else 400). Headers and body are two sends, so two
TLS records; --nagle on leaves Nagle's algorithm on as the investigation's server does (Python's
default), --nagle off (the default) sets TCP_NODELAY on every connection.

--plain serves HTTP without TLS, one thread per connection: the plain backend behind a TLS
terminator (client/tls_terminator.py), whose keep-alive connections must not wait for each other.

stdout: one line "LISTENING <port>" per port once it accepts connections, and one line
"CLOSED <port> <peer port>" per connection once the server has closed it. Access log on stderr.
"""
import argparse
import http.server
import os
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import time

PROG = "https_server"
BODY = b"OK"
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class Server(http.server.HTTPServer):
    """HTTPServer without the reverse-DNS lookup of server_bind (slow on hosts without DNS).

    Prints "CLOSED <port> <peer port>" on stdout once it has closed a connection (its tcp_close
    is done): the run protocol waits for these lines instead of sleeping before the query."""

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def shutdown_request(self, request):
        try:
            peer = request.getpeername()[1]
        except OSError:
            peer = None
        super().shutdown_request(request)
        if peer is not None:
            os.write(sys.stdout.fileno(), f"CLOSED {self.server_address[1]} {peer}\n".encode())  # one write: atomic among siblings


class Server6(Server):
    address_family = socket.AF_INET6


class ThreadingServer(socketserver.ThreadingMixIn, Server):
    """--plain: one thread per connection (a terminator's backend; nothing here is traced)."""

    daemon_threads = True


class ThreadingServer6(ThreadingServer):
    address_family = socket.AF_INET6


class Handler(http.server.BaseHTTPRequestHandler):
    """Status from the first path segment; Content-Length: 2, Connection: keep-alive, body OK."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # --nagle off: headers and body are two sends, no 40 ms delayed-ACK stall
    quiet = False

    def setup(self):
        super().setup()  # sets TCP_NODELAY if disable_nagle_algorithm
        if not self.quiet:  # what the socket really has, read back from the kernel
            nodelay = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            self.log_message("connection: Nagle's algorithm %s (TCP_NODELAY=%d)", "off" if nodelay else "on", nodelay)

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, ssl.SSLEOFError) as e:
            # A --reads single client closes with responses unread, so its kernel answers our next
            # send with RST: part of that read pattern, a log line rather than a traceback.
            self.close_connection = True
            if not self.quiet:
                self.log_message("connection: client went away while answering (%s)", e)

    def do_GET(self):
        code = status_for(self.path)
        self.send_response(code)
        if code < 200 or code in (204, 304):
            # These statuses cannot carry a body (RFC 9110): headers only, stream stays in sync.
            self.send_header("Connection", "keep-alive")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Connection", "keep-alive")
        self.end_headers()
        self.wfile.write(BODY)

    def log_request(self, code="-", size="-"):
        if not self.quiet:
            super().log_request(code, size)


def status_for(path):
    """Status code asked for by /<code>/...: 100-599, else 400."""
    first = path.split("?", 1)[0].lstrip("/").split("/", 1)[0]
    if first.isascii() and first.isdigit() and 100 <= int(first) <= 599:
        return int(first)
    return 400


def parse_ports(text):
    """'18001,18002' -> [18001, 18002]; 0 asks for any free port."""
    try:
        ports = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port list {text!r} (want e.g. 18001,18002)")
    if not ports or any(p < 0 or p > 65535 for p in ports):
        raise argparse.ArgumentTypeError(f"bad port list {text!r} (ports are 0-65535)")
    nonzero = [p for p in ports if p]
    if len(set(nonzero)) != len(nonzero):
        raise argparse.ArgumentTypeError(f"duplicate port in {text!r}")
    return ports


def parse_args(argv):
    ap = argparse.ArgumentParser(prog=PROG, description="HTTPS keep-alive test server: one single-threaded server process per port.")
    ap.add_argument("--ports", type=parse_ports, default=[18001, 18002], help="comma-separated ports (default 18001,18002)")
    ap.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--cert", help="certificate (PEM); with --key")
    ap.add_argument("--key", help="private key (PEM); with --cert")
    ap.add_argument("--cert-dir", help="generate the certificate here (default: a temp dir, removed again)")
    ap.add_argument("--nagle", choices=("on", "off"), default="off", help="Nagle's algorithm on accepted connections: on (Python's default, as the investigation's server) or off, TCP_NODELAY (default)")
    ap.add_argument("--quiet", action="store_true", help="no access log lines")
    ap.add_argument("--plain", action="store_true", help="plain HTTP, no TLS, one thread per connection (a TLS terminator's backend)")
    args = ap.parse_args(argv)
    if args.plain and (args.cert or args.cert_dir):
        ap.error("--plain serves without TLS: no --cert/--key/--cert-dir")
    if (args.cert is None) != (args.key is None):
        ap.error("--cert and --key go together")
    if args.cert and args.cert_dir:
        ap.error("--cert-dir is for a generated certificate; not with --cert/--key")
    return args


def fail(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def generate_cert(directory):
    """Self-signed localhost certificate via the openssl CLI; returns (cert, key) paths.

    An ECDSA P-256 key, not RSA: generating an RSA-2048 key takes 1.5-2.5 s (and sometimes far
    more) in a TCG guest, paid by every server of every trial; P-256 takes 0.2 s. The key type
    changes nothing the tracer sees (it reads application data, after the handshake)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"]
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        fail(f"failed to generate certificate: {e}")
    if r.returncode != 0:
        fail(f"failed to generate certificate: openssl exited {r.returncode}: {r.stderr.decode(errors='replace').strip()}")
    return cert, key


def make_context(args):
    """Server TLS context from --cert/--key, or from a certificate generated for this run."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if args.cert:
        cert, key = args.cert, args.key
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            fail(f"failed to load certificate {cert} / {key}: {e}")
        return ctx
    if args.cert_dir:
        os.makedirs(args.cert_dir, exist_ok=True)
        cert, key = generate_cert(args.cert_dir)
        ctx.load_cert_chain(cert, key)
        return ctx
    tmp = tempfile.mkdtemp(prefix="https-server-")
    try:
        cert, key = generate_cert(tmp)
        ctx.load_cert_chain(cert, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # loaded into memory: no key left on disk
    return ctx


def bind_all(args, ctx):
    """Bind and listen on every port before serving any; exit 1 naming the port that fails. ctx None: plain HTTP."""
    servers = []
    for port in args.ports:
        try:
            if ctx is None:
                cls = ThreadingServer6 if ":" in args.bind else ThreadingServer
            else:
                cls = Server6 if ":" in args.bind else Server
            srv = cls((args.bind, port), Handler)
        except OSError as e:
            for s in servers:
                s.server_close()
            fail(f"failed to bind {args.bind}:{port}: {e.strerror or e}")
        if ctx is not None:
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        servers.append(srv)
    return servers


def serve(srv):
    """Serve one port forever in this process (single-threaded)."""
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), f"LISTENING {srv.server_address[1]}\n".encode())  # one write: atomic among siblings
    srv.serve_forever()


def exit_with_parent(parent_pid):
    """Linux: get SIGTERM when the parent dies, so no orphan keeps the port (best effort)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(0)


def run_child(srv, others, parent_pid):
    """Forked child: serve srv until SIGTERM; never returns."""
    code = 0
    try:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and stops us
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        for o in others:
            o.socket.close()
        exit_with_parent(parent_pid)
        serve(srv)
    except BaseException as e:  # noqa: BLE001 - report anything, then leave without cleanup handlers
        print(f"{PROG}: server on port {srv.server_address[1]} failed: {e!r}", file=sys.stderr, flush=True)
        code = 1
    os._exit(code)


class Stop(BaseException):
    """SIGTERM/SIGINT in the parent (BaseException: socketserver must not swallow it)."""


def on_stop(signum, _frame):
    raise Stop(signum)


def supervise(children):
    """Wait for SIGTERM/SIGINT (exit 0) or a child dying on its own (exit 1); stop all children."""
    code = 0
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked while forking
        while children:
            pid, status = os.waitpid(-1, 0)
            port = children.pop(pid, None)
            if port is not None:
                code_or_sig = os.waitstatus_to_exitcode(status)
                how = f"was killed by signal {-code_or_sig}" if code_or_sig < 0 else f"exited with code {code_or_sig}"
                print(f"{PROG}: server on port {port} {how}; stopping the others", file=sys.stderr, flush=True)
                code = 1
                break
    except Stop:
        pass
    finally:
        supervise_stop(children)
    return code


def supervise_stop(children):
    """SIGTERM every child in children (pid -> port) and reap it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    pending = set(children)
    while pending:
        for pid in list(pending):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    pending.discard(pid)
            except ChildProcessError:
                pending.discard(pid)
        if pending and time.monotonic() > deadline:
            for pid in pending:
                os.kill(pid, signal.SIGKILL)  # ours and not yet reaped: the pid cannot be reused
            deadline = float("inf")
        time.sleep(0.02 if pending else 0)


def main(argv):
    args = parse_args(argv)
    Handler.quiet = args.quiet
    Handler.disable_nagle_algorithm = args.nagle == "off"
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    try:
        ctx = None if args.plain else make_context(args)
        servers = bind_all(args, ctx)
        if len(servers) == 1:
            serve(servers[0])
            return 0
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # no Stop between forks
    except Stop:
        return 0

    parent = os.getpid()
    children = {}
    sys.stdout.flush()
    sys.stderr.flush()
    for i, srv in enumerate(servers):
        try:
            pid = os.fork()
        except OSError as e:
            print(f"{PROG}: failed to fork server for port {srv.server_address[1]}: {e}", file=sys.stderr, flush=True)
            supervise_stop(children)
            return 1
        if pid == 0:
            run_child(srv, servers[:i] + servers[i + 1 :], parent)
        children[pid] = srv.server_address[1]
    for srv in servers:
        srv.socket.close()  # the children hold the listening sockets
    return supervise(children)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
