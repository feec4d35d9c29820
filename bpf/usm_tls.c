// SPDX-License-Identifier: GPL-2.0
/* usm_tls - loader for usm_tls.bpf.c: picks the variant, attaches every probe by hand (works
 * from libbpf 0.3 on), and prints one JSON line per attributed TLS buffer or connection end on
 * stdout, then a stats line on SIGINT/SIGTERM. Human log lines, and READY once attached, go to
 * stderr. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/membarrier.h>
#include <sys/utsname.h>
#include <linux/types.h>
#include <gelf.h>
#include <libelf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "usm_tls.h"
#include "usm_tls.skel.h"

#ifndef USM_LIBBPF_PKG_VERSION
#define USM_LIBBPF_PKG_VERSION ""
#endif

#define MAX_LINKS 32

enum hook_mode { HOOK_AUTO, HOOK_KPROBE, HOOK_TRACEPOINT };

struct env {
	enum usm_variant variant;
	enum hook_mode hook;
	const char *libssl;
	char libcrypto[PATH_MAX];
	__u32 pids[USM_MAX_PIDS];
	int npids;
	const char *comm;
	const char *out;
	const char *verifier_log;
	/* --control: runs opened and closed by signals, the output path read from this file */
	const char *control;
};

struct links {
	struct bpf_link *l[MAX_LINKS];
	int n;
};

/* A uprobe: the program, the symbol, entry or return, and which library holds it. */
struct uprobe_spec {
	const char *prog;
	const char *sym;
	bool retprobe;
	bool in_libcrypto;
};

/* A kernel hook: the program and the kprobe function or raw tracepoint name. */
struct khook_spec {
	const char *prog;
	const char *target;
};

static const char *const variant_names[] = {
	[USM_VARIANT_UPSTREAM] = "upstream",
	[USM_VARIANT_NO_FALLBACK] = "no-fallback",
	[USM_VARIANT_RECV_HOOK] = "recv-hook",
	[USM_VARIANT_SCOPED] = "scoped",
};

static const char *const via_names[] = {
	[USM_VIA_NONE] = "none",
	[USM_VIA_FD] = "fd",
	[USM_VIA_FALLBACK_SEND] = "fallback-send",
	[USM_VIA_FALLBACK_RECV] = "fallback-recv",
	[USM_VIA_SCOPED] = "scoped",
};

static const char *const fn_names[] = {
	[USM_FN_SSL_READ] = "SSL_read",		[USM_FN_SSL_READ_EX] = "SSL_read_ex",
	[USM_FN_SSL_WRITE] = "SSL_write",	[USM_FN_SSL_WRITE_EX] = "SSL_write_ex",
	[USM_FN_SSL_SHUTDOWN] = "SSL_shutdown", [USM_FN_TCP_CLOSE] = "tcp_close",
};

/* calls.tcp_* count the kernel hook of the mode taken (kprobe or raw tracepoint); tcp_close
 * counts closes of connections the maps knew; shutdown_no_tuple counts SSL_shutdown calls that
 * emitted no event. */
static const char *const counter_names[] = {
	[USM_C_SSL_READ] = "SSL_read",
	[USM_C_SSL_READ_EX] = "SSL_read_ex",
	[USM_C_SSL_WRITE] = "SSL_write",
	[USM_C_SSL_WRITE_EX] = "SSL_write_ex",
	[USM_C_SSL_SET_FD] = "SSL_set_fd",
	[USM_C_SSL_SET_BIO] = "SSL_set_bio",
	[USM_C_BIO_NEW_SOCKET] = "BIO_new_socket",
	[USM_C_SSL_DO_HANDSHAKE] = "SSL_do_handshake",
	[USM_C_SSL_CONNECT] = "SSL_connect",
	[USM_C_SSL_SHUTDOWN] = "SSL_shutdown",
	[USM_C_TCP_SENDMSG] = "tcp_sendmsg",
	[USM_C_TCP_RECVMSG] = "tcp_recvmsg",
	[USM_C_TCP_CLOSE] = "tcp_close",
	[USM_C_ATTRIBUTED] = "attributed",
	[USM_C_DROPPED_NO_TUPLE] = "dropped_no_tuple",
	[USM_C_SLOT_WRITES] = "slot_writes",
	[USM_C_SLOT_OVERWRITES] = "slot_overwrites",
	[USM_C_SLOT_CONSUMED] = "slot_consumed",
	[USM_C_RINGBUF_DROPS] = "ringbuf_drops",
	[USM_C_SHUTDOWN_NO_TUPLE] = "shutdown_no_tuple",
};

static const struct uprobe_spec uprobes[] = {
	{"uprobe__SSL_set_fd", "SSL_set_fd", false, false},
	{"uprobe__SSL_set_bio", "SSL_set_bio", false, false},
	{"uprobe__SSL_do_handshake", "SSL_do_handshake", false, false},
	{"uretprobe__SSL_do_handshake", "SSL_do_handshake", true, false},
	{"uprobe__SSL_connect", "SSL_connect", false, false},
	{"uretprobe__SSL_connect", "SSL_connect", true, false},
	{"uprobe__SSL_write", "SSL_write", false, false},
	{"uretprobe__SSL_write", "SSL_write", true, false},
	{"uprobe__SSL_write_ex", "SSL_write_ex", false, false},
	{"uretprobe__SSL_write_ex", "SSL_write_ex", true, false},
	{"uprobe__SSL_read", "SSL_read", false, false},
	{"uretprobe__SSL_read", "SSL_read", true, false},
	{"uprobe__SSL_read_ex", "SSL_read_ex", false, false},
	{"uretprobe__SSL_read_ex", "SSL_read_ex", true, false},
	{"uprobe__SSL_shutdown", "SSL_shutdown", false, false},
	{"uprobe__BIO_new_socket", "BIO_new_socket", false, true},
	{"uretprobe__BIO_new_socket", "BIO_new_socket", true, true},
};

static const struct khook_spec kprobes[] = {
	{"kprobe__tcp_sendmsg", "tcp_sendmsg"},
	{"kprobe__tcp_recvmsg", "tcp_recvmsg"},
	{"kprobe__tcp_close", "tcp_close"},
};

static const struct khook_spec tracepoints[] = {
	{"raw_tp__sock_send_length", "sock_send_length"},
	{"raw_tp__sock_recv_length", "sock_recv_length"},
	{"raw_tp__inet_sock_set_state", "inet_sock_set_state"},
};

static const char *const lib_dirs[] = {
	"/lib/x86_64-linux-gnu",
	"/usr/lib/x86_64-linux-gnu",
	"/usr/lib64",
	"/lib64",
	"/usr/lib",
	"/lib",
};

static volatile sig_atomic_t stop;

/* libbpf's messages are kept (for the verifier log file) and shown only once loading is over:
 * a verifier log is thousands of lines. */
static FILE *libbpf_log;
static bool libbpf_loaded;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: usm_tls [--variant upstream|no-fallback|recv-hook|scoped] [--libssl PATH]\n"
		"               [--pid PID]... [--comm NAME] [--out FILE] [--hook "
		"auto|kprobe|tracepoint]\n"
		"               [--verifier-log FILE] [--control FILE] [--help]\n"
		"Trace OpenSSL through uprobes and attribute each SSL_read/SSL_write buffer to a "
		"TCP\n"
		"connection as Datadog USM does. stdout (or --out): a meta line, one JSON line "
		"per\n"
		"attributed buffer or connection end (SSL_shutdown, tcp_close), a stats line on\n"
		"SIGINT/SIGTERM. stderr: log, READY once attached.\n"
		"  --variant        fallback-slot behaviour (default upstream)\n"
		"  --libssl         libssl to probe (default: found in the usual library dirs)\n"
		"  --pid            trace only this process (repeatable, up to %d)\n"
		"  --comm           trace only processes with this name\n"
		"  --out            write JSON lines here instead of stdout\n"
		"  --hook           kernel side: kprobes, raw tracepoints, or auto (kprobes, else "
		"tracepoints)\n"
		"  --verifier-log   where a verifier rejection is saved (default "
		"bpf-verifier.log)\n"
		"  --control FILE   load and attach with the gate closed (LOADED); then SIGUSR1\n"
		"                   opens a run writing to the path in FILE (meta, ENABLED <n>),\n"
		"                   SIGUSR2 closes it (stats, maps emptied, FLUSHED <n>)\n",
		USM_MAX_PIDS);
}

static int parse_args(int argc, char **argv, struct env *env)
{
	static const struct option opts[] = {
		{"variant", required_argument, NULL, 'v'},
		{"libssl", required_argument, NULL, 'l'},
		{"pid", required_argument, NULL, 'p'},
		{"comm", required_argument, NULL, 'c'},
		{"out", required_argument, NULL, 'o'},
		{"hook", required_argument, NULL, 'k'},
		{"verifier-log", required_argument, NULL, 'V'},
		{"control", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	char *end;
	long pid;
	int opt, i;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'v':
			for (i = 0; i < 4 && strcmp(optarg, variant_names[i]); i++)
				;
			if (i == 4) {
				fprintf(stderr, "unknown variant '%s'\n", optarg);
				return 2;
			}
			env->variant = i;
			break;
		case 'l':
			env->libssl = optarg;
			break;
		case 'p':
			errno = 0;
			pid = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || pid <= 0 || pid > INT_MAX) {
				fprintf(stderr, "bad pid '%s'\n", optarg);
				return 2;
			}
			if (env->npids == USM_MAX_PIDS) {
				fprintf(stderr, "at most %d --pid\n", USM_MAX_PIDS);
				return 2;
			}
			env->pids[env->npids++] = pid;
			break;
		case 'c':
			if (!*optarg || strlen(optarg) >= USM_COMM_LEN) {
				fprintf(stderr, "bad comm '%s': 1 to %d characters\n", optarg,
					USM_COMM_LEN - 1);
				return 2;
			}
			env->comm = optarg;
			break;
		case 'o':
			env->out = optarg;
			break;
		case 'k':
			if (!strcmp(optarg, "auto"))
				env->hook = HOOK_AUTO;
			else if (!strcmp(optarg, "kprobe"))
				env->hook = HOOK_KPROBE;
			else if (!strcmp(optarg, "tracepoint"))
				env->hook = HOOK_TRACEPOINT;
			else {
				fprintf(stderr, "unknown hook mode '%s'\n", optarg);
				return 2;
			}
			break;
		case 'V':
			env->verifier_log = optarg;
			break;
		case 'C':
			env->control = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return 0;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	va_list copy;

	if (level == LIBBPF_DEBUG)
		return 0;
	if (libbpf_log) {
		va_copy(copy, args);
		vfprintf(libbpf_log, fmt, copy);
		va_end(copy);
	}
	if (libbpf_loaded && level == LIBBPF_WARN)
		return vfprintf(stderr, fmt, args);
	return 0;
}

static volatile sig_atomic_t run_open_req, run_close_req;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		run_open_req = 1;
	else if (sig == SIGUSR2)
		run_close_req = 1;
	else
		stop = 1;
}

static bool kernel_older_than(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return true; /* unknown: assume the worst */
	return ma < major || (ma == major && mi < minor);
}

static int find_in_lib_dirs(const char *name, char *path, size_t size)
{
	for (size_t i = 0; i < sizeof(lib_dirs) / sizeof(lib_dirs[0]); i++) {
		snprintf(path, size, "%s/%s", lib_dirs[i], name);
		if (access(path, R_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

static Elf *elf_open(const char *path, int *fd)
{
	Elf *elf;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return NULL;
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return NULL;
	elf = elf_begin(*fd, ELF_C_READ, NULL);
	if (!elf) {
		close(*fd);
		errno = EINVAL;
	}
	return elf;
}

static void elf_close(Elf *elf, int fd)
{
	elf_end(elf);
	close(fd);
}

/* The file offset of sym's code: uprobes are placed by file offset, and .dynsym gives a virtual
 * address; convert it through the PT_LOAD segment that contains it. */
static int elf_sym_offset(const char *path, const char *sym, size_t *offset)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;
	GElf_Phdr phdr;
	GElf_Sym s;
	Elf_Data *data;
	GElf_Addr addr = 0;
	size_t i, n, nphdr;
	int fd, err = -ENOENT;
	Elf *elf = elf_open(path, &fd);

	if (!elf)
		return -errno;
	while (!addr && (scn = elf_nextscn(elf, scn))) {
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_DYNSYM || !shdr.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		n = shdr.sh_size / shdr.sh_entsize;
		for (i = 0; data && i < n; i++) {
			const char *name;

			if (!gelf_getsym(data, i, &s) || s.st_shndx == SHN_UNDEF || !s.st_value)
				continue;
			if (GELF_ST_TYPE(s.st_info) != STT_FUNC)
				continue;
			name = elf_strptr(elf, shdr.sh_link, s.st_name);
			if (name && !strcmp(name, sym)) {
				addr = s.st_value;
				break;
			}
		}
	}
	if (addr && elf_getphdrnum(elf, &nphdr) == 0) {
		for (i = 0; i < nphdr; i++) {
			if (!gelf_getphdr(elf, i, &phdr) || phdr.p_type != PT_LOAD)
				continue;
			if (addr >= phdr.p_vaddr && addr < phdr.p_vaddr + phdr.p_memsz) {
				*offset = addr - phdr.p_vaddr + phdr.p_offset;
				err = 0;
				break;
			}
		}
	}
	elf_close(elf, fd);
	return err;
}

/* BIO_new_socket lives in libcrypto: the one libssl was linked against (its DT_NEEDED),
 * looked for beside libssl, then in the usual dirs. */
static int find_libcrypto(const char *libssl, char *path, size_t size)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;
	GElf_Dyn dyn;
	Elf_Data *data;
	char needed[NAME_MAX + 1] = "";
	const char *slash;
	size_t i;
	int fd;
	Elf *elf = elf_open(libssl, &fd);

	if (!elf)
		return -errno;
	while (!needed[0] && (scn = elf_nextscn(elf, scn))) {
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_DYNAMIC || !shdr.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		for (i = 0; data && i < shdr.sh_size / shdr.sh_entsize; i++) {
			const char *name;

			if (!gelf_getdyn(data, i, &dyn) || dyn.d_tag != DT_NEEDED)
				continue;
			name = elf_strptr(elf, shdr.sh_link, dyn.d_un.d_val);
			if (name && !strncmp(name, "libcrypto", 9)) {
				snprintf(needed, sizeof(needed), "%s", name);
				break;
			}
		}
	}
	elf_close(elf, fd);
	if (!needed[0])
		return -ENOENT;
	slash = strrchr(libssl, '/');
	snprintf(path, size, "%.*s%s", slash ? (int)(slash - libssl + 1) : 0, libssl, needed);
	if (access(path, R_OK) == 0)
		return 0;
	return find_in_lib_dirs(needed, path, size);
}

static int add_link(struct links *links, struct bpf_link *link)
{
	long err = libbpf_get_error(link);

	if (err)
		return err;
	if (links->n == MAX_LINKS) {
		bpf_link__destroy(link);
		return -E2BIG;
	}
	links->l[links->n++] = link;
	return 0;
}

static void *destroy_link(void *link)
{
	bpf_link__destroy(link);
	return NULL;
}

/*
 * Detach every link past `keep`, all at once: each uprobe's detach waits for an RCU grace
 * period (about 0.1 s on 6.x, more in a TCG guest), and 20 of them one after the other took
 * 2 s per tracer exit. Concurrent detaches share grace periods. A link whose thread cannot be
 * started is destroyed here, in turn.
 */
static void drop_links(struct links *links, int keep)
{
	pthread_t threads[MAX_LINKS];
	bool started[MAX_LINKS] = {};
	int i;

	for (i = keep; i < links->n; i++)
		started[i] = !pthread_create(&threads[i], NULL, destroy_link, links->l[i]);
	for (i = keep; i < links->n; i++) {
		if (started[i])
			pthread_join(threads[i], NULL);
		else
			bpf_link__destroy(links->l[i]);
	}
	links->n = keep < links->n ? keep : links->n;
}

static int attach_uprobes(struct usm_tls_bpf *skel, const struct env *env, struct links *links)
{
	for (size_t i = 0; i < sizeof(uprobes) / sizeof(uprobes[0]); i++) {
		const struct uprobe_spec *u = &uprobes[i];
		const char *path = u->in_libcrypto ? env->libcrypto : env->libssl;
		const char *kind = u->retprobe ? "uretprobe" : "uprobe";
		struct bpf_program *prog = bpf_object__find_program_by_name(skel->obj, u->prog);
		size_t offset = 0;
		int err;

		if (!prog) {
			fprintf(stderr, "failed to find program %s: %s\n", u->prog,
				strerror(ENOENT));
			return -ENOENT;
		}
		err = elf_sym_offset(path, u->sym, &offset);
		if (err) {
			fprintf(stderr, "failed to attach %s %s in %s: symbol not found: %s\n",
				kind, u->sym, path, strerror(-err));
			return err;
		}
		err = add_link(links,
			       bpf_program__attach_uprobe(prog, u->retprobe, -1, path, offset));
		if (err) {
			fprintf(stderr, "failed to attach %s %s in %s: %s\n", kind, u->sym, path,
				strerror(-err));
			return err;
		}
	}
	return 0;
}

static int attach_khooks(struct usm_tls_bpf *skel, const struct khook_spec *specs, size_t n,
			 bool kprobe, struct links *links, const char **failed)
{
	for (size_t i = 0; i < n; i++) {
		struct bpf_program *prog =
			bpf_object__find_program_by_name(skel->obj, specs[i].prog);
		int err;

		*failed = specs[i].target;
		if (!prog)
			return -ENOENT;
		err = add_link(links,
			       kprobe ? bpf_program__attach_kprobe(prog, false, specs[i].target)
				      : bpf_program__attach_raw_tracepoint(prog, specs[i].target));
		if (err)
			return err;
	}
	return 0;
}

/* The one place that decides how the kernel side is hooked on this kernel, and says so. */
static int attach_kernel(struct usm_tls_bpf *skel, enum hook_mode mode, struct links *links,
			 const char **taken)
{
	const char *failed = NULL;
	int keep = links->n, err;

	if (mode != HOOK_TRACEPOINT) {
		err = attach_khooks(skel, kprobes, 3, true, links, &failed);
		if (!err) {
			*taken = "kprobe";
			fprintf(stderr,
				"kernel hooks: kprobes on tcp_sendmsg, tcp_recvmsg, tcp_close\n");
			return 0;
		}
		drop_links(links, keep);
		if (mode == HOOK_KPROBE) {
			fprintf(stderr, "failed to attach kprobe %s: %s\n", failed, strerror(-err));
			return err;
		}
		fprintf(stderr,
			"kernel hooks: kprobe %s refused (%s); falling back to raw tracepoints\n",
			failed, strerror(-err));
	}
	err = attach_khooks(skel, tracepoints, 3, false, links, &failed);
	if (err) {
		fprintf(stderr, "failed to attach raw tracepoint %s: %s\n", failed, strerror(-err));
		return err;
	}
	*taken = "tracepoint";
	fprintf(stderr, "kernel hooks: raw tracepoints sock_send_length, sock_recv_length, "
			"inet_sock_set_state (TCP_CLOSE)\n");
	return 0;
}

/* On a load failure: save libbpf's messages (the verifier log among them) and name the
 * program they blame; no program is blamed when the object as a whole failed (kernel BTF,
 * maps), as with libbpf 0.3 on a kernel whose BTF is newer than it can parse. */
static void report_load_failure(const char *log, const char *path, int err)
{
	const char *p = NULL, *q, *saved;
	char name[128] = "";
	FILE *f;
	int len;

	for (q = log; q && (q = strstr(q, "prog")); q++) {
		if (!strncmp(q, "prog '", 6))
			p = q + 6;
		else if (!strncmp(q, "program '", 9))
			p = q + 9;
		if (p)
			break;
	}
	if (p && (q = strchr(p, '\'')) && (len = q - p) < (int)sizeof(name))
		snprintf(name, sizeof(name), "%.*s", len, p);
	f = fopen(path, "w");
	if (f) {
		fputs(log ? log : "", f);
		fclose(f);
	}
	saved = f ? path : "nowhere: cannot write it";
	if (name[0])
		fprintf(stderr, "failed to load BPF program %s: %s (verifier log in %s)\n", name,
			strerror(-err), saved);
	else
		fprintf(stderr, "failed to load BPF object: %s (libbpf log in %s)\n",
			strerror(-err), saved);
}

static void json_string(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void format_addr(char *buf, size_t size, __u16 family, const __u32 a[4])
{
	if (!inet_ntop(family == 6 ? AF_INET6 : AF_INET, a, buf, size))
		snprintf(buf, size, "?");
}

static int on_event(void *ctx, void *data, size_t size)
{
	const struct tls_event *e = data;
	FILE *out = *(FILE **)ctx;
	char saddr[INET6_ADDRSTRLEN], daddr[INET6_ADDRSTRLEN];
	size_t n;

	if (size < sizeof(*e) || !out)
		return 0;
	n = e->data_len < USM_DATA_MAX ? e->data_len : USM_DATA_MAX;
	format_addr(saddr, sizeof(saddr), e->tup.family, e->tup.saddr);
	format_addr(daddr, sizeof(daddr), e->tup.family, e->tup.daddr);
	fprintf(out, "{\"ts\":%llu,\"pid\":%u,\"tid\":%u,\"comm\":", (unsigned long long)e->ts,
		e->pid, e->tid);
	json_string(out, e->comm, strnlen(e->comm, sizeof(e->comm)));
	fprintf(out,
		",\"fn\":\"%s\",\"ctx\":\"0x%llx\",\"len\":%llu,\"family\":%u,"
		"\"saddr\":\"%s\",\"sport\":%u,\"daddr\":\"%s\",\"dport\":%u,\"via\":\"%s\","
		"\"data\":",
		e->fn < USM_FN_MAX ? fn_names[e->fn] : "?", (unsigned long long)e->ctx,
		(unsigned long long)e->len, e->tup.family, saddr, e->tup.sport, daddr, e->tup.dport,
		e->via <= USM_VIA_SCOPED ? via_names[e->via] : "?");
	json_string(out, e->data, n);
	fprintf(out, ",\"truncated\":%s}\n", e->truncated ? "true" : "false");
	return 0;
}

/* run > 0 (--control): the run's number, and the entries its maps held when it opened (0: the
 * previous run's state was emptied). */
static void print_meta(FILE *out, const struct env *env, const char *hook, int run, long left)
{
	struct utsname u;
	char libbpf[32];

#ifdef LIBBPF_MAJOR_VERSION
	snprintf(libbpf, sizeof(libbpf), "%u.%u", libbpf_major_version(), libbpf_minor_version());
#else
	/* libbpf < 0.6 cannot tell its version at run time: the one built against */
	snprintf(libbpf, sizeof(libbpf), "%s",
		 USM_LIBBPF_PKG_VERSION[0] ? USM_LIBBPF_PKG_VERSION : "unknown");
	if (strchr(libbpf, '.') && strchr(strchr(libbpf, '.') + 1, '.'))
		*strchr(strchr(libbpf, '.') + 1, '.') = '\0';
#endif
	if (uname(&u))
		snprintf(u.release, sizeof(u.release), "unknown");
	fprintf(out, "{\"meta\":{\"variant\":\"%s\",\"hook\":\"%s\",\"libssl\":",
		variant_names[env->variant], hook);
	json_string(out, env->libssl, strlen(env->libssl));
	fprintf(out, ",\"kernel\":");
	json_string(out, u.release, strlen(u.release));
	fprintf(out, ",\"libbpf\":\"%s\"", libbpf);
	if (run > 0)
		fprintf(out, ",\"run\":%d,\"map_entries_at_start\":%ld", run, left);
	fprintf(out, "}}\n");
	fflush(out);
}

static int print_stats(FILE *out, struct usm_tls_bpf *skel)
{
	int ncpus = libbpf_num_possible_cpus(), fd = bpf_map__fd(skel->maps.counters);
	unsigned long long totals[USM_C_MAX] = {};
	struct timespec now;
	__u64 *values;
	__u32 key;

	if (ncpus <= 0)
		return ncpus ? ncpus : -EINVAL;
	values = calloc(ncpus, sizeof(*values));
	if (!values)
		return -ENOMEM;
	for (key = 0; key < USM_C_MAX; key++) {
		if (bpf_map_lookup_elem(fd, &key, values))
			continue;
		for (int cpu = 0; cpu < ncpus; cpu++)
			totals[key] += values[cpu];
	}
	free(values);
	/* Called after the drain, so every event printed is older. bpf_ktime_get_ns is
	 * CLOCK_MONOTONIC outside a time namespace (inside one, user space's is offset). */
	if (clock_gettime(CLOCK_MONOTONIC, &now))
		return -errno;
	fprintf(out, "{\"stats\":{\"calls\":{");
	for (key = 0; key < USM_C_CALLS_END; key++)
		fprintf(out, "%s\"%s\":%llu", key ? "," : "", counter_names[key], totals[key]);
	fprintf(out, "}");
	for (key = USM_C_CALLS_END; key < USM_C_MAX; key++)
		fprintf(out, ",\"%s\":%llu", counter_names[key], totals[key]);
	fprintf(out, ",\"ktime_ns\":%llu}}\n",
		(unsigned long long)now.tv_sec * 1000000000ULL + now.tv_nsec);
	return fflush(out) ? -errno : 0;
}

/* The run state: entries in the hash maps, pid_filter (a setting) aside. clear: delete them. */
static long map_entries(struct usm_tls_bpf *skel, bool clear)
{
	struct bpf_map *map;
	char key[512];
	long n = 0;

	bpf_object__for_each_map(map, skel->obj)
	{
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);
		int fd = bpf_map__fd(map);

		if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
			continue;
		if (info.type != BPF_MAP_TYPE_HASH || map == skel->maps.pid_filter ||
		    info.key_size > sizeof(key))
			continue;
		if (clear) {
			while (!bpf_map_get_next_key(fd, NULL, key) &&
			       !bpf_map_delete_elem(fd, key))
				n++;
		} else {
			void *prev = NULL;

			while (!bpf_map_get_next_key(fd, prev, key)) {
				n++;
				prev = key;
			}
		}
	}
	return n;
}

static int zero_counters(struct usm_tls_bpf *skel)
{
	int ncpus = libbpf_num_possible_cpus(), fd = bpf_map__fd(skel->maps.counters);
	__u64 *zeros;
	__u32 key;
	int err = 0;

	if (ncpus <= 0)
		return ncpus ? ncpus : -EINVAL;
	zeros = calloc(ncpus, sizeof(*zeros));
	if (!zeros)
		return -ENOMEM;
	for (key = 0; key < USM_C_MAX && !err; key++)
		if (bpf_map_update_elem(fd, &key, zeros, BPF_ANY))
			err = -errno;
	free(zeros);
	return err;
}

/* SIGUSR1 with --control: open run n, writing to the path in the control file; open the gate. */
static int open_run(struct usm_tls_bpf *skel, const struct env *env, const char *hook, FILE **out,
		    int run)
{
	char path[PATH_MAX] = "";
	FILE *f = fopen(env->control, "r");
	size_t len;

	if (!f || !fgets(path, sizeof(path), f)) {
		fprintf(stderr, "run %d: cannot read the output path from %s: %s\n", run,
			env->control, f ? "empty" : strerror(errno));
		if (f)
			fclose(f);
		return -EINVAL;
	}
	fclose(f);
	len = strlen(path);
	while (len && (path[len - 1] == '\n' || path[len - 1] == '\r'))
		path[--len] = '\0';
	*out = fopen(path, "w");
	if (!*out) {
		fprintf(stderr, "run %d: failed to open %s: %s\n", run, path, strerror(errno));
		return -errno;
	}
	setvbuf(*out, NULL, _IOLBF, 0);
	print_meta(*out, env, hook, run, map_entries(skel, false));
	skel->data->gate = 1;
	fprintf(stderr, "ENABLED %d\n", run);
	return 0;
}

/*
 * SIGUSR2 (or the exit) with --control: close the gate; wait for a grace period, so that no
 * program that passed the gate is still running (they run under rcu_read_lock); drain the ring
 * buffer; write the stats; empty the maps and counters for the next run.
 */
static int close_run(struct usm_tls_bpf *skel, struct ring_buffer *rb, FILE **out, int run)
{
	int err;

	skel->data->gate = 0;
	if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0))
		usleep(200 * 1000);
	err = ring_buffer__consume(rb);
	if (err < 0)
		fprintf(stderr, "run %d: failed to drain ring buffer: %s\n", run, strerror(-err));
	err = print_stats(*out, skel);
	if (err)
		fprintf(stderr, "run %d: failed to write stats: %s\n", run, strerror(-err));
	fclose(*out);
	*out = NULL;
	fprintf(stderr, "run %d: %ld map entries emptied\n", run, map_entries(skel, true));
	if (zero_counters(skel))
		fprintf(stderr, "run %d: failed to zero the counters\n", run);
	fprintf(stderr, "FLUSHED %d\n", run);
	return err;
}

int main(int argc, char **argv)
{
	struct env env = {.variant = USM_VARIANT_UPSTREAM,
			  .hook = HOOK_AUTO,
			  .verifier_log = "bpf-verifier.log"};
	struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll returns -EINTR */
	static char libssl[PATH_MAX];
	struct usm_tls_bpf *skel = NULL;
	struct ring_buffer *rb = NULL;
	struct links links = {};
	const char *hook = NULL;
	char *log_buf = NULL;
	size_t log_size = 0;
	FILE *out = stdout;
	__u8 one = 1;
	int err, i;

	/* arguments, libraries, output */
	err = parse_args(argc, argv, &env);
	if (err) {
		usage(stderr);
		return err;
	}
	if (!env.libssl) {
		if (find_in_lib_dirs("libssl.so.3", libssl, sizeof(libssl)) &&
		    find_in_lib_dirs("libssl.so.1.1", libssl, sizeof(libssl))) {
			fprintf(stderr, "failed to find libssl (libssl.so.3, libssl.so.1.1): %s\n",
				strerror(ENOENT));
			return 1;
		}
		env.libssl = libssl;
	}
	if (access(env.libssl, R_OK)) {
		fprintf(stderr, "failed to open libssl %s: %s\n", env.libssl, strerror(errno));
		return 1;
	}
	err = find_libcrypto(env.libssl, env.libcrypto, sizeof(env.libcrypto));
	if (err) {
		fprintf(stderr, "failed to find the libcrypto of %s: %s\n", env.libssl,
			strerror(-err));
		return 1;
	}
	fprintf(stderr, "libssl: %s\nlibcrypto: %s\n", env.libssl, env.libcrypto);
	if (env.control && env.out) {
		fprintf(stderr,
			"--control and --out: each run's output path comes from the control "
			"file\n");
		return 2;
	}
	if (env.control)
		out = NULL;
	else if (env.out && !(out = fopen(env.out, "w"))) {
		fprintf(stderr, "failed to open %s: %s\n", env.out, strerror(errno));
		return 1;
	}
	if (out)
		setvbuf(out, NULL, _IOLBF, 0);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (env.control) {
		sigaction(SIGUSR1, &sa, NULL);
		sigaction(SIGUSR2, &sa, NULL);
	}

	/* kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; later ones to the memory cgroup */
	if (setrlimit(RLIMIT_MEMLOCK, &unlimited)) {
		if (kernel_older_than(5, 11))
			fprintf(stderr,
				"failed to raise RLIMIT_MEMLOCK: %s (this kernel needs it: map "
				"creation may fail)\n",
				strerror(errno));
		else
			fprintf(stderr,
				"memlock: RLIMIT_MEMLOCK not raised (%s), not needed on kernels >= "
				"5.11\n",
				strerror(errno));
	}
	libbpf_log = open_memstream(&log_buf, &log_size);
	libbpf_set_print(libbpf_print);

	/* open, settings, load */
	skel = usm_tls_bpf__open();
	if (!skel) {
		err = -errno;
		fprintf(stderr, "failed to open BPF object: %s\n", strerror(-err));
		goto cleanup;
	}
	skel->rodata->variant = env.variant;
	skel->data->gate = env.control ? 0 : 1;
	skel->rodata->filter_pid = env.npids > 0;
	skel->rodata->filter_comm = env.comm != NULL;
	if (env.comm)
		strncpy(skel->rodata->comm_filter, env.comm, USM_COMM_LEN - 1);
	err = usm_tls_bpf__load(skel);
	fflush(libbpf_log);
	if (err) {
		report_load_failure(log_buf, env.verifier_log, err);
		goto cleanup;
	}
	libbpf_loaded = true;
	for (i = 0; i < env.npids; i++) {
		err = bpf_map_update_elem(bpf_map__fd(skel->maps.pid_filter), &env.pids[i], &one,
					  BPF_ANY);
		if (err) {
			err = -errno;
			fprintf(stderr, "failed to add pid %u to the filter: %s\n", env.pids[i],
				strerror(-err));
			goto cleanup;
		}
	}

	/* attach, by hand: libbpf 0.3 can neither auto-attach "uprobe/SYM" nor find symbols */
	err = attach_uprobes(skel, &env, &links);
	if (err)
		goto cleanup;
	err = attach_kernel(skel, env.hook, &links, &hook);
	if (err)
		goto cleanup;
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, &out, NULL);
	err = rb ? 0 : -errno;
	if (!rb || (err = libbpf_get_error(rb))) {
		rb = NULL;
		fprintf(stderr, "failed to create ring buffer: %s\n", strerror(-err));
		goto cleanup;
	}
	if (env.control) {
		/* the programs are attached behind a closed gate: runs open and close on signals */
		int run = 0;

		fprintf(stderr, "variant %s: %d probes attached, gate closed\nLOADED\n",
			variant_names[env.variant], links.n);
		while (!stop) {
			err = ring_buffer__poll(rb, 100);
			if (err < 0 && err != -EINTR) {
				fprintf(stderr, "failed to poll ring buffer: %s\n", strerror(-err));
				goto cleanup;
			}
			err = 0;
			if (run_open_req) {
				run_open_req = 0;
				if (!out && open_run(skel, &env, hook, &out, run + 1) == 0)
					run++;
			}
			if (run_close_req) {
				run_close_req = 0;
				if (out)
					close_run(skel, rb, &out, run);
			}
		}
		if (out)
			err = close_run(skel, rb, &out, run);
		goto cleanup;
	}
	print_meta(out, &env, hook, 0, 0);
	fprintf(stderr, "variant %s: %d probes attached\nREADY\n", variant_names[env.variant],
		links.n);

	/* poll until SIGINT/SIGTERM, then drain and report */
	while (!stop) {
		err = ring_buffer__poll(rb, 100);
		if (err == -EINTR)
			break;
		if (err < 0) {
			fprintf(stderr, "failed to poll ring buffer: %s\n", strerror(-err));
			goto cleanup;
		}
		/* a reader of a pipe (the look-alike) sees each batch as it comes */
		if (err > 0)
			fflush(out);
	}
	err = ring_buffer__consume(rb);
	if (err < 0) {
		fprintf(stderr, "failed to drain ring buffer: %s\n", strerror(-err));
		goto cleanup;
	}
	err = print_stats(out, skel);
	if (err)
		fprintf(stderr, "failed to write stats: %s\n", strerror(-err));

cleanup:
	ring_buffer__free(rb);
	drop_links(&links, 0);
	usm_tls_bpf__destroy(skel);
	libbpf_set_print(NULL);
	if (libbpf_log)
		fclose(libbpf_log);
	free(log_buf);
	if (out && out != stdout)
		fclose(out);
	return err ? 1 : 0;
}
