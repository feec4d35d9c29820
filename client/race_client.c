// race_client: open N TLS connections, wait for SIGUSR1, then run HTTP/1.1 keep-alive requests on
// all of them from ONE thread (sequential, interleaved or writes-only). This is the access pattern
// behind the USM ssl_ctx_by_pid_tgid misattribution; CLI compatible with ssl_ctx_race{,_v2}.
// --reads full (default) reads each response whole by its HTTP framing; --reads single does what
// the investigation's clients do: ONE SSL_read per request, whatever it returns, so the client
// falls behind a server that sends headers and body as two TLS records.
//
// stdout carries machine lines only: READY:<l1>:<r1>[:<l2>:<r2>...], DONE, conn<k> ok=.. fail=..
// Everything human-readable goes to stderr.
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define PROG		   "race_client"
#define DEFAULT_ITERATIONS 500
#define MAX_ITERATIONS	   100000000L
#define DEFAULT_TIMEOUT_S  10.0
#define EXPECTED_STATUS	   200	 // the status every request path asks for (/200/...)
#define RBUF_SIZE	   16384 // per-connection response buffer (headers must fit)
#define SINGLE_READ_MAX	   4095	 // --reads single: the investigation's SSL_read(ssl, buf, 4095)
#define MAX_HOST	   255

enum mode { MODE_SEQUENTIAL, MODE_INTERLEAVED, MODE_WRITES_ONLY };
enum api { API_CLASSIC, API_EX };
enum reads { READS_FULL, READS_SINGLE };

struct conn {
	int k;	    // 1-based connection number, as in the path conn<k>
	char *host; // as given on the command line
	int port;   // server (remote) port
	int lport;  // ephemeral source port
	int fd;
	SSL *ssl;
	bool dead; // an I/O error happened: no further I/O on this connection
	long ok, fail;
	size_t rpos, rlen; // unread response bytes are rbuf[rpos, rlen)
	char rbuf[RBUF_SIZE];
};

struct opts {
	struct conn **conns;
	int nconns;
	long iterations;
	bool iterations_set;
	enum mode mode;
	enum api api;
	enum reads reads;
	const char *record;
	double timeout_s;
	const char **conn_specs; // --conn values, added after the positional pairs
	int nconn_specs;
};

static const char *const mode_names[] = {"sequential", "interleaved", "writes-only"};

// ---------------------------------------------------------------------------------------------
// Command line

static void print_usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " HOST1 PORT1 HOST2 PORT2 [ITERATIONS] [options]\n"
		"       " PROG " --conn HOST:PORT [--conn HOST:PORT ...] [ITERATIONS] [options]\n"
		"\n"
		"Opens one TLS connection per HOST/PORT pair (positional pairs first, then --conn "
		"in\n"
		"order), prints READY:<local1>:<remote1>:<local2>:<remote2>[:...], waits for "
		"SIGUSR1,\n"
		"then sends ITERATIONS HTTP/1.1 requests on every connection from one thread.\n"
		"\n"
		"options:\n"
		"  --sequential        per iteration and connection: write, then read (default)\n"
		"  --interleaved       per iteration: write on all connections, then read all\n"
		"  --writes-only       all writes of all iterations first, then drain all "
		"responses\n"
		"  --conn HOST:PORT    add a connection (repeatable; [v6addr]:PORT for IPv6)\n"
		"  --iterations N      same as the positional ITERATIONS (default %d)\n"
		"  --api classic|ex    SSL_write/SSL_read (default) or SSL_write_ex/SSL_read_ex\n"
		"  --reads full|single full (default): read each response whole (Content-Length);\n"
		"                      single: ONE read of at most %d bytes per request, whatever "
		"it\n"
		"                      returns, no HTTP framing (the investigation's clients; "
		"falls\n"
		"                      behind a server that sends headers and body apart). "
		"Counts:\n"
		"                      ok = reads that returned data, fail = reads that returned "
		"<= 0\n"
		"                      or timed out, and reads skipped after a connection failed\n"
		"  --record FILE       write one JSON line per request to FILE (single reads add\n"
		"                      \"bytes\" and \"chunk\": status, body, none or skipped)\n"
		"  --timeout SECONDS   per-socket I/O timeout (default %g)\n"
		"  --help              show this help\n"
		"\n"
		"exit status: 0 all requests ok, 1 a request or connection failed, 2 bad usage\n",
		DEFAULT_ITERATIONS, SINGLE_READ_MAX, DEFAULT_TIMEOUT_S);
}

// Report a command-line problem with the usage text and exit 2.
__attribute__((format(printf, 1, 2), noreturn)) static void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\n");
	print_usage(stderr);
	exit(2);
}

// Parse a decimal integer in [min, max] that fills the whole string.
static bool parse_long(const char *s, long min, long max, long *out)
{
	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	char *end = NULL;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

// Add a connection to the option set (host is copied).
static void add_conn(struct opts *o, const char *host, size_t hostlen, const char *port)
{
	long p = 0;
	if (!parse_long(port, 1, 65535, &p))
		usage_error("bad port '%s' (want 1-65535)", port);
	if (hostlen == 0 || hostlen > MAX_HOST)
		usage_error("bad host for port %s (want 1-%d characters)", port, MAX_HOST);
	struct conn **grown = realloc(o->conns, sizeof(*grown) * (size_t)(o->nconns + 1));
	struct conn *c = calloc(1, sizeof(*c));
	char *h = strndup(host, hostlen);
	if (grown == NULL || c == NULL || h == NULL) {
		fprintf(stderr, "failed to allocate connection: out of memory\n");
		exit(1);
	}
	o->conns = grown;
	c->k = o->nconns + 1;
	c->host = h;
	c->port = (int)p;
	c->fd = -1;
	o->conns[o->nconns++] = c;
}

// Split HOST:PORT (or [HOST]:PORT) and add it as a connection.
static void add_conn_spec(struct opts *o, const char *spec)
{
	const char *host = spec, *colon;
	size_t hostlen;
	if (spec[0] == '[') {
		const char *rbracket = strchr(spec, ']');
		if (rbracket == NULL || rbracket[1] != ':')
			usage_error("bad --conn '%s' (want HOST:PORT or [V6ADDR]:PORT)", spec);
		host = spec + 1;
		hostlen = (size_t)(rbracket - host);
		colon = rbracket + 1;
	} else {
		colon = strrchr(spec, ':');
		if (colon == NULL)
			usage_error("bad --conn '%s' (want HOST:PORT)", spec);
		hostlen = (size_t)(colon - spec);
	}
	add_conn(o, host, hostlen, colon + 1);
}

// Set the iteration count once (positional ITERATIONS or --iterations).
static void set_iterations(struct opts *o, const char *s)
{
	long n = 0;
	if (!parse_long(s, 1, MAX_ITERATIONS, &n))
		usage_error("iterations must be a positive integer, got '%s'", s);
	if (o->iterations_set && o->iterations != n)
		usage_error("iterations given twice with different values (last: %s)", s);
	o->iterations = n;
	o->iterations_set = true;
}

// Apply one --name[=value] option; returns the number of extra argv entries consumed.
static int parse_option(struct opts *o, const char *arg, const char *next)
{
	const char *eq = strchr(arg, '=');
	size_t namelen = eq ? (size_t)(eq - arg) : strlen(arg);
	char name[32];
	if (namelen >= sizeof(name))
		usage_error("unknown option '%s'", arg);
	memcpy(name, arg, namelen);
	name[namelen] = '\0';

	static const struct {
		const char *name;
		enum mode mode;
	} flags[] = {
		{"--sequential", MODE_SEQUENTIAL},
		{"--interleaved", MODE_INTERLEAVED},
		{"--writes-only", MODE_WRITES_ONLY},
	};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (strcmp(name, flags[i].name) == 0) {
			if (eq)
				usage_error("option %s takes no value", name);
			o->mode = flags[i].mode;
			return 0;
		}
	}
	if (strcmp(name, "--help") == 0) {
		print_usage(stdout);
		exit(0);
	}

	static const char *const valued[] = {"--conn",	"--iterations", "--api",
					     "--reads", "--record",	"--timeout"};
	bool known = false;
	for (size_t i = 0; i < sizeof(valued) / sizeof(valued[0]); i++)
		known = known || strcmp(name, valued[i]) == 0;
	if (!known)
		usage_error("unknown option '%s'", arg);
	const char *val = eq ? eq + 1 : next;
	if (val == NULL)
		usage_error("option %s needs a value", name);

	if (strcmp(name, "--conn") == 0) {
		o->conn_specs[o->nconn_specs++] = val;
	} else if (strcmp(name, "--iterations") == 0) {
		set_iterations(o, val);
	} else if (strcmp(name, "--api") == 0) {
		if (strcmp(val, "classic") == 0)
			o->api = API_CLASSIC;
		else if (strcmp(val, "ex") == 0)
			o->api = API_EX;
		else
			usage_error("bad --api '%s' (want classic or ex)", val);
	} else if (strcmp(name, "--reads") == 0) {
		if (strcmp(val, "full") == 0)
			o->reads = READS_FULL;
		else if (strcmp(val, "single") == 0)
			o->reads = READS_SINGLE;
		else
			usage_error("bad --reads '%s' (want full or single)", val);
	} else if (strcmp(name, "--record") == 0) {
		if (*val == '\0')
			usage_error("--record needs a file name");
		o->record = val;
	} else { // --timeout
		char *end = NULL;
		errno = 0;
		double t = strtod(val, &end);
		if (errno != 0 || end == val || *end != '\0' || !(t > 0.0) || t > 86400.0)
			usage_error("bad --timeout '%s' (want seconds > 0)", val);
		o->timeout_s = t;
	}
	return eq ? 0 : 1;
}

// Parse argv into o; exits 2 on bad usage.
static void parse_args(int argc, char **argv, struct opts *o)
{
	const char **pos = calloc((size_t)argc, sizeof(*pos));
	o->conn_specs = calloc((size_t)argc, sizeof(*o->conn_specs));
	if (pos == NULL || o->conn_specs == NULL) {
		fprintf(stderr, "failed to allocate arguments: out of memory\n");
		exit(1);
	}
	int npos = 0;
	bool only_pos = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!only_pos && strcmp(a, "--") == 0)
			only_pos = true;
		else if (!only_pos && strcmp(a, "-h") == 0)
			parse_option(o, "--help", NULL);
		else if (!only_pos && strncmp(a, "--", 2) == 0)
			i += parse_option(o, a, i + 1 < argc ? argv[i + 1] : NULL);
		else if (!only_pos && a[0] == '-' && a[1] != '\0' && (a[1] < '0' || a[1] > '9'))
			usage_error("unknown option '%s'", a);
		else
			pos[npos++] = a;
	}

	// Positionals: HOST PORT pairs, then an optional ITERATIONS; --conn ones come after them.
	if (npos % 2 == 1)
		set_iterations(o, pos[npos - 1]);
	for (int p = 0; p + 1 < npos; p += 2)
		add_conn(o, pos[p], strlen(pos[p]), pos[p + 1]);
	for (int f = 0; f < o->nconn_specs; f++)
		add_conn_spec(o, o->conn_specs[f]);
	free(pos);
	free(o->conn_specs);
	o->conn_specs = NULL;
	if (o->nconns < 1)
		usage_error("need at least one connection (HOST PORT pair or --conn HOST:PORT)");
}

// ---------------------------------------------------------------------------------------------
// Signals

// SIGTERM/SIGINT: say so and leave at once (async-signal-safe only).
static void on_stop_signal(int sig)
{
	static const char msg_term[] = PROG ": terminated by SIGTERM\n";
	static const char msg_int[] = PROG ": interrupted by SIGINT\n";
	ssize_t r = sig == SIGTERM ? write(STDERR_FILENO, msg_term, sizeof(msg_term) - 1)
				   : write(STDERR_FILENO, msg_int, sizeof(msg_int) - 1);
	(void)r;
	_exit(128 + sig);
}

// Block SIGUSR1 (so it waits for sigwait), ignore SIGPIPE, make SIGTERM/SIGINT exit promptly.
static void setup_signals(sigset_t *usr1)
{
	sigemptyset(usr1);
	sigaddset(usr1, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, usr1, NULL) != 0) {
		fprintf(stderr, "failed to block SIGUSR1: %s\n", strerror(errno));
		exit(1);
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

// ---------------------------------------------------------------------------------------------
// TLS connection setup

// Print "failed to <what> on conn<k> (<host>:<port>): <reason>" for a failed SSL call.
static void report_ssl_failure(const struct conn *c, const char *what, int ret, int err_no,
			       double timeout_s)
{
	int e = SSL_get_error(c->ssl, ret);
	char reason[128];
	bool dump = false;
	switch (e) {
	case SSL_ERROR_ZERO_RETURN:
		snprintf(reason, sizeof(reason), "peer closed the TLS connection");
		break;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		if (err_no == EAGAIN || err_no == EWOULDBLOCK)
			snprintf(reason, sizeof(reason), "timed out after %g s", timeout_s);
		else
			snprintf(reason, sizeof(reason), "operation did not complete (%s)",
				 err_no ? strerror(err_no) : "retry");
		break;
	case SSL_ERROR_SYSCALL:
		snprintf(reason, sizeof(reason), "%s",
			 err_no ? strerror(err_no) : "unexpected EOF from peer");
		dump = ERR_peek_error() != 0;
		break;
	case SSL_ERROR_SSL:
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
		if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			snprintf(reason, sizeof(reason), "unexpected EOF from peer");
			ERR_clear_error();
			break;
		}
#endif
		snprintf(reason, sizeof(reason), "TLS error (OpenSSL errors follow)");
		dump = true;
		break;
	default:
		snprintf(reason, sizeof(reason), "SSL error %d", e);
		dump = true;
		break;
	}
	fprintf(stderr, "failed to %s on conn%d (%s:%d): %s\n", what, c->k, c->host, c->port,
		reason);
	if (dump)
		ERR_print_errors_fp(stderr);
	ERR_clear_error();
}

// Apply the per-socket timeouts and TCP_NODELAY to a fresh socket.
static void tune_socket(int fd, double timeout_s)
{
	struct timeval tv;
	tv.tv_sec = (time_t)timeout_s;
	tv.tv_usec = (suseconds_t)((timeout_s - (double)tv.tv_sec) * 1e6);
	if (tv.tv_sec == 0 && tv.tv_usec == 0)
		tv.tv_usec = 1;
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		fprintf(stderr, "failed to set socket timeouts: %s\n", strerror(errno));
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		fprintf(stderr, "failed to set TCP_NODELAY: %s\n", strerror(errno));
}

// Return the local port bound to fd, or -1.
static int local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

// TCP-connect c to its host:port (first address that works); false with a message on failure.
static bool tcp_connect(struct conn *c, double timeout_s)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	char port[12];
	snprintf(port, sizeof(port), "%d", c->port);
	int gai = getaddrinfo(c->host, port, &hints, &res);
	if (gai != 0) {
		fprintf(stderr, "failed to resolve %s: %s\n", c->host, gai_strerror(gai));
		return false;
	}
	int err = 0;
	for (struct addrinfo *ai = res; ai != NULL && c->fd < 0; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		tune_socket(fd, timeout_s);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			c->fd = fd;
		} else {
			err = errno;
			close(fd);
		}
	}
	freeaddrinfo(res);
	if (c->fd < 0) {
		fprintf(stderr, "failed to connect to %s:%d: %s\n", c->host, c->port,
			err == EINPROGRESS || err == EAGAIN ? "timed out" : strerror(err));
		return false;
	}
	c->lport = local_port(c->fd);
	return true;
}

// TLS client context: no certificate verification (self-signed test certificates), TLS >= 1.2.
static SSL_CTX *make_ssl_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		fprintf(stderr, "failed to create SSL_CTX:\n");
		ERR_print_errors_fp(stderr);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		fprintf(stderr, "failed to set minimum TLS version:\n");
		ERR_print_errors_fp(stderr);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

// TCP connect, SSL_new, SSL_set_fd (hooked by the tracer), SSL_connect.
static bool open_conn(struct conn *c, SSL_CTX *ctx, double timeout_s)
{
	fprintf(stderr, "Establishing connection %d to %s:%d...\n", c->k, c->host, c->port);
	if (!tcp_connect(c, timeout_s))
		return false;
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL) {
		fprintf(stderr, "failed to create SSL for conn%d:\n", c->k);
		ERR_print_errors_fp(stderr);
		return false;
	}
	if (SSL_set_fd(c->ssl, c->fd) != 1) {
		fprintf(stderr, "failed to attach socket to SSL for conn%d:\n", c->k);
		ERR_print_errors_fp(stderr);
		return false;
	}
	ERR_clear_error();
	errno = 0;
	int r = SSL_connect(c->ssl);
	if (r != 1) {
		report_ssl_failure(c, "complete TLS handshake", r, errno, timeout_s);
		c->dead = true; // no close_notify after a failed handshake
		return false;
	}
	return true;
}

// Send close_notify where the connection is healthy, then free everything. Called for every
// connection at the end of every run (both read modes). With --reads single, responses are still
// unread: SSL_shutdown only sends close_notify (it returns 0, we do not wait for the peer's), and
// close() with unread bytes in the socket makes the kernel answer with RST instead of FIN.
static void close_conn(struct conn *c)
{
	if (c->ssl != NULL) {
		if (!c->dead && SSL_is_init_finished(c->ssl)) {
			ERR_clear_error();
			(void)SSL_shutdown(c->ssl);
			ERR_clear_error();
		}
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

// ---------------------------------------------------------------------------------------------
// HTTP over TLS

// Write all of buf with ONE SSL_write / SSL_write_ex call; false (connection dead) on failure.
static bool tls_write_all(struct conn *c, const struct opts *o, const char *buf, size_t len)
{
	ERR_clear_error();
	errno = 0;
	int r;
	bool good;
	if (o->api == API_EX) {
		size_t written = 0;
		r = SSL_write_ex(c->ssl, buf, len, &written);
		good = r == 1 && written == len;
	} else {
		r = SSL_write(c->ssl, buf, (int)len);
		good = r == (int)len;
	}
	if (!good) {
		report_ssl_failure(c, "write request", r, errno, o->timeout_s);
		c->dead = true;
	}
	return good;
}

// ONE SSL_read / SSL_read_ex of at most room bytes into dst; returns the bytes read, or 0 (a
// message was printed, the connection is dead) on an error, EOF or timeout.
static size_t tls_read(struct conn *c, const struct opts *o, char *dst, size_t room)
{
	ERR_clear_error();
	errno = 0;
	int r;
	size_t got = 0;
	if (o->api == API_EX) {
		r = SSL_read_ex(c->ssl, dst, room, &got);
		if (r != 1)
			got = 0;
	} else {
		r = SSL_read(c->ssl, dst, (int)room);
		got = r > 0 ? (size_t)r : 0;
	}
	if (got == 0) {
		report_ssl_failure(c, "read response", r, errno, o->timeout_s);
		c->dead = true;
	}
	return got;
}

// Read more response bytes into c->rbuf (compacting first); false (connection dead) on failure.
static bool tls_fill(struct conn *c, const struct opts *o)
{
	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	if (c->rlen == sizeof(c->rbuf)) {
		fprintf(stderr,
			"failed to read response on conn%d (%s:%d): headers exceed %d bytes\n",
			c->k, c->host, c->port, RBUF_SIZE);
		c->dead = true;
		return false;
	}
	size_t got = tls_read(c, o, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
	c->rlen += got;
	return got > 0;
}

// Offset of "\r\n\r\n" in buf[0, len), or -1.
static long find_header_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 4 <= len; i++)
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
			return (long)i;
	return -1;
}

// Does buf[0, len) begin with a status line "HTTP/1.x NNN"? Sets *status if so.
static bool parse_status(const char *buf, size_t len, int *status)
{
	if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[7] < '0' || buf[7] > '9' ||
	    buf[8] != ' ' || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
	    buf[11] < '0' || buf[11] > '9')
		return false;
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	return true;
}

// Parse the status line and Content-Length out of head[0, len); false if malformed.
static bool parse_head(const char *head, size_t len, int *status, long *clen, const char **why)
{
	*clen = -1;
	if (!parse_status(head, len, status)) {
		*why = "malformed status line";
		return false;
	}
	const char *end = head + len;
	for (const char *line = memchr(head, '\n', len); line != NULL && line + 1 < end;) {
		line++;
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		size_t n = (size_t)((eol ? eol : end) - line);
		if (n >= 15 && strncasecmp(line, "Content-Length:", 15) == 0) {
			const char *p = line + 15, *q = line + n;
			while (p < q && (*p == ' ' || *p == '\t'))
				p++;
			long v = 0;
			if (p == q || *p < '0' || *p > '9') {
				*why = "bad Content-Length";
				return false;
			}
			for (; p < q && *p >= '0' && *p <= '9'; p++) {
				if (v > (LONG_MAX - 9) / 10) {
					*why = "Content-Length too large";
					return false;
				}
				v = v * 10 + (*p - '0');
			}
			while (p < q && (*p == ' ' || *p == '\t' || *p == '\r'))
				p++;
			if (p != q || (*clen >= 0 && *clen != v)) {
				*why = "bad Content-Length";
				return false;
			}
			*clen = v;
		} else if (n >= 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
			*why = "Transfer-Encoding is not supported";
			return false;
		}
		line = eol;
	}
	bool bodyless = *status < 200 || *status == 204 || *status == 304;
	if (bodyless)
		*clen = 0;
	else if (*clen < 0) {
		*why = "no Content-Length";
		return false;
	}
	return true;
}

// Read one complete response; returns its status (body consumed, surplus kept), or -1 if the
// connection died (a message was printed).
static int read_response(struct conn *c, const struct opts *o)
{
	long hend;
	while ((hend = find_header_end(c->rbuf + c->rpos, c->rlen - c->rpos)) < 0)
		if (!tls_fill(c, o))
			return -1;
	int status = 0;
	long body = 0;
	const char *why = NULL;
	if (!parse_head(c->rbuf + c->rpos, (size_t)hend + 2, &status, &body, &why)) {
		fprintf(stderr, "failed to parse response on conn%d (%s:%d): %s\n", c->k, c->host,
			c->port, why);
		c->dead = true; // cannot know where the next response starts
		return -1;
	}
	c->rpos += (size_t)hend + 4;
	while (body > 0) {
		if (c->rpos == c->rlen && !tls_fill(c, o))
			return -1;
		size_t take = c->rlen - c->rpos;
		if ((long)take > body)
			take = (size_t)body;
		c->rpos += take;
		body -= (long)take;
	}
	return status;
}

// Format the request path of (conn k, iteration i).
static void request_path(char *buf, size_t n, int k, long i)
{
	snprintf(buf, n, "/%d/conn%d-iter%ld", EXPECTED_STATUS, k, i);
}

// Send request i on c (single write); a dead connection is skipped.
static void send_request(struct conn *c, const struct opts *o, long i)
{
	if (c->dead)
		return;
	char path[64], req[512 + MAX_HOST];
	request_path(path, sizeof(path), c->k, i);
	bool v6 = strchr(c->host, ':') != NULL;
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nConnection: keep-alive\r\n\r\n",
			 path, v6 ? "[" : "", c->host, v6 ? "]" : "", c->port);
	tls_write_all(c, o, req, (size_t)n);
}

// Write the record line of request i on c; extra is appended inside the object ("" or ",...").
static void record_request(FILE *record, const struct conn *c, long i, int status, bool ok,
			   const char *extra)
{
	char path[64], st[16];
	request_path(path, sizeof(path), c->k, i);
	if (status > 0)
		snprintf(st, sizeof(st), "%d", status);
	else
		snprintf(st, sizeof(st), "null");
	fprintf(record,
		"{\"conn\":%d,\"iter\":%ld,\"path\":\"%s\",\"lport\":%d,\"rport\":%d,\"status\":%s,"
		"\"ok\":%s%s}\n",
		c->k, i, path, c->lport, c->port, st, ok ? "true" : "false", extra);
}

// --reads full: read the whole response to request i on c; ok means status 200.
static void recv_full(struct conn *c, const struct opts *o, long i, FILE *record)
{
	int status = c->dead ? -1 : read_response(c, o);
	bool ok = status == EXPECTED_STATUS;
	if (ok)
		c->ok++;
	else
		c->fail++;
	if (record != NULL)
		record_request(record, c, i, status, ok, "");
}

// --reads single: ONE read in request i's slot, whatever it returns (the investigation's
// SSL_read(ssl, buf, 4095), no framing). ok means the read returned data. The record says what
// it was: "status" (began with a status line; "status" holds it), "body" (data without a status
// line at its start, e.g. an earlier response's 2-byte body), "none" (returned <= 0: error, EOF
// or timeout; the connection is then dead, as with full reads) or "skipped" (dead before: no read).
static void recv_single(struct conn *c, const struct opts *o, long i, FILE *record)
{
	const char *chunk = "skipped";
	size_t got = 0;
	int status = -1;
	if (!c->dead) {
		got = tls_read(c, o, c->rbuf, SINGLE_READ_MAX);
		chunk = got == 0 ? "none" : parse_status(c->rbuf, got, &status) ? "status" : "body";
	}
	if (got > 0)
		c->ok++;
	else
		c->fail++;
	if (record != NULL) {
		char extra[64];
		snprintf(extra, sizeof(extra), ",\"bytes\":%zu,\"chunk\":\"%s\"", got, chunk);
		record_request(record, c, i, status, got > 0, extra);
	}
}

// Read in request i's slot on c as --reads says, count it and record it.
static void recv_response(struct conn *c, const struct opts *o, long i, FILE *record)
{
	if (o->reads == READS_SINGLE)
		recv_single(c, o, i, record);
	else
		recv_full(c, o, i, record);
}

// ---------------------------------------------------------------------------------------------
// Modes (all on this one thread)

// Per iteration and connection: write, then read its response.
static void run_sequential(const struct opts *o, FILE *record)
{
	for (long i = 0; i < o->iterations; i++)
		for (int k = 0; k < o->nconns; k++) {
			send_request(o->conns[k], o, i);
			recv_response(o->conns[k], o, i, record);
		}
}

// Per iteration: write on every connection, then read every response in the same order.
static void run_interleaved(const struct opts *o, FILE *record)
{
	for (long i = 0; i < o->iterations; i++) {
		for (int k = 0; k < o->nconns; k++)
			send_request(o->conns[k], o, i);
		for (int k = 0; k < o->nconns; k++)
			recv_response(o->conns[k], o, i, record);
	}
}

// All writes of all iterations first, then drain all responses (pipelined).
static void run_writes_only(const struct opts *o, FILE *record)
{
	for (long i = 0; i < o->iterations; i++)
		for (int k = 0; k < o->nconns; k++)
			send_request(o->conns[k], o, i);
	for (long i = 0; i < o->iterations; i++)
		for (int k = 0; k < o->nconns; k++)
			recv_response(o->conns[k], o, i, record);
}

// ---------------------------------------------------------------------------------------------

// Print READY:<l1>:<r1>[:...] on stdout and the human version on stderr.
static void announce_ready(const struct opts *o)
{
	printf("READY");
	for (int k = 0; k < o->nconns; k++)
		printf(":%d:%d", o->conns[k]->lport, o->conns[k]->port);
	printf("\n");
	fflush(stdout);
	fprintf(stderr, "Connections established:\n");
	for (int k = 0; k < o->nconns; k++)
		fprintf(stderr, "  conn%d: local=%d -> remote=%d (marker=conn%d)\n", o->conns[k]->k,
			o->conns[k]->lport, o->conns[k]->port, o->conns[k]->k);
}

// Print DONE and the per-connection counts; true if every request was ok.
static bool report_done(const struct opts *o, double elapsed_s)
{
	bool all_ok = true;
	long requests = 0;
	printf("DONE\n");
	for (int k = 0; k < o->nconns; k++) {
		const struct conn *c = o->conns[k];
		printf("conn%d ok=%ld fail=%ld local=%d remote=%d\n", c->k, c->ok, c->fail,
		       c->lport, c->port);
		all_ok = all_ok && c->fail == 0 && c->ok == o->iterations;
		requests += c->ok;
	}
	// Machine-readable timing of the run (SIGUSR1 to the last response), for benchmarks.
	printf("elapsed_ms=%.3f requests=%ld\n", elapsed_s * 1000.0, requests);
	fflush(stdout);
	return all_ok;
}

// Close every connection (close_notify where healthy) and free everything.
static void free_all(struct opts *o, SSL_CTX *ctx)
{
	for (int k = 0; k < o->nconns; k++) {
		close_conn(o->conns[k]);
		free(o->conns[k]->host);
		free(o->conns[k]);
	}
	free(o->conns);
	o->conns = NULL;
	o->nconns = 0;
	SSL_CTX_free(ctx);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct opts o = {.iterations = DEFAULT_ITERATIONS,
			 .mode = MODE_SEQUENTIAL,
			 .api = API_CLASSIC,
			 .reads = READS_FULL,
			 .timeout_s = DEFAULT_TIMEOUT_S};
	parse_args(argc, argv, &o);

	sigset_t usr1;
	setup_signals(&usr1);

	FILE *record = NULL;
	if (o.record != NULL && (record = fopen(o.record, "w")) == NULL) {
		fprintf(stderr, "failed to open record file %s: %s\n", o.record, strerror(errno));
		free_all(&o, NULL);
		return 1;
	}

	SSL_CTX *ctx = make_ssl_ctx();
	bool opened = ctx != NULL;
	for (int k = 0; opened && k < o.nconns; k++)
		opened = open_conn(o.conns[k], ctx, o.timeout_s);
	if (!opened) {
		if (record != NULL)
			fclose(record);
		free_all(&o, ctx);
		return 1;
	}

	announce_ready(&o);
	fprintf(stderr, "Waiting for SIGUSR1 (PID=%ld)...\n", (long)getpid());
	int sig = 0;
	while (sig != SIGUSR1) {
		int r = sigwait(&usr1, &sig);
		if (r != 0) {
			fprintf(stderr, "failed to wait for SIGUSR1: %s\n", strerror(r));
			exit(1);
		}
	}

	fprintf(stderr, "Starting %s run: %ld iterations x %d connections (api=%s%s)...\n",
		mode_names[o.mode], o.iterations, o.nconns, o.api == API_EX ? "ex" : "classic",
		o.reads == READS_SINGLE ? ", reads=single" : "");
	double t0 = now_s();
	if (o.mode == MODE_SEQUENTIAL)
		run_sequential(&o, record);
	else if (o.mode == MODE_INTERLEAVED)
		run_interleaved(&o, record);
	else
		run_writes_only(&o, record);
	double elapsed = now_s() - t0;
	fprintf(stderr, "Finished in %.3f s\n", elapsed);

	bool all_ok = report_done(&o, elapsed);
	if (record != NULL && fclose(record) != 0) {
		fprintf(stderr, "failed to write record file %s: %s\n", o.record, strerror(errno));
		all_ok = false;
	}
	free_all(&o, ctx);
	return all_ok ? 0 : 1;
}
