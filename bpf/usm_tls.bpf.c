// SPDX-License-Identifier: GPL-2.0
/* usm_tls.bpf.c - a model of how Datadog USM attributes OpenSSL buffers to TCP connections,
 * including the ssl_ctx_by_pid_tgid fallback slot and its race (shared/MODEL.md), with the
 * variant chosen at load time. Old-style SEC names and no newer helpers, so that one source
 * builds with clang 11 + libbpf 0.3 (kernel 5.10) up to clang 21 + libbpf 1.7. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "usm_tls.h"

char LICENSE[] SEC("license") = "GPL";

/* Settings: written by the loader through skel->rodata before load. */
const volatile __u32 variant = USM_VARIANT_UPSTREAM;
const volatile bool filter_pid = false;	 /* trace only the tgids in pid_filter */
const volatile bool filter_comm = false; /* trace only processes named comm_filter */
const volatile char comm_filter[USM_COMM_LEN] = {};

/* The gate (.data, written by the loader at run time): every program returns at once while it is
 * 0. `usm_tls --control` loads and attaches with the gate closed and opens it for each run: a
 * closed gate records nothing and changes no map, so opening it is the moment the tracer starts. */
volatile __u32 gate = 1;

/* Kernel constants that vmlinux.h may not carry (macros, anonymous enums). */
#define K_AF_INET     2
#define K_AF_INET6    10
#define K_IPPROTO_TCP 6
#define K_TCP_CLOSE   7
#define K_S_IFMT      00170000
#define K_S_IFSOCK    0140000

/* Hide a value from clang's optimiser, so that a bound checked on it is the bound of the
 * register that is used (libbpf >= 0.6 has it as barrier_var; 0.3 does not). */
#define opaque(v) asm volatile("" : "+r"(v))

#define MAX_CONNS   16384
#define MAX_THREADS 16384

/* primary path: which connection an SSL * belongs to */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CONNS);
	__type(key, struct ssl_ctx_key);
	__type(value, struct ssl_sock);
} ssl_sock_by_ctx SEC(".maps");

/* THE fallback slot: one per thread, overwritten (BPF_ANY) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_THREADS);
	__type(key, __u64);
	__type(value, __u64);
} ssl_ctx_by_pid_tgid SEC(".maps");

/* reverse index for tcp_close; keyed by the tuple with pid 0 (close may run in softirq) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CONNS);
	__type(key, struct conn_tuple);
	__type(value, struct ssl_ctx_key);
} ssl_ctx_by_tuple SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_THREADS);
	__type(key, __u64);
	__type(value, struct ssl_args);
} ssl_read_args SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_THREADS);
	__type(key, __u64);
	__type(value, struct ssl_args);
} ssl_read_ex_args SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_THREADS);
	__type(key, __u64);
	__type(value, struct ssl_args);
} ssl_write_args SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_THREADS);
	__type(key, __u64);
	__type(value, struct ssl_args);
} ssl_write_ex_args SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CONNS);
	__type(key, struct pid_fd);
	__type(value, struct conn_tuple);
} tuple_by_pid_fd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CONNS);
	__type(key, struct conn_tuple);
	__type(value, struct pid_fd);
} pid_fd_by_tuple SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CONNS);
	__type(key, __u64);
	__type(value, __s32);
} fd_by_ssl_bio SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_THREADS);
	__type(key, __u64);
	__type(value, __s32);
} bio_new_socket_args SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, USM_MAX_PIDS);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, USM_C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* Never filled, never jumped to: see no_private_stack(). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} no_progs SEC(".maps");

const volatile bool never = false; /* no_private_stack()'s branch; the loader leaves it false */

/* Trap: kernels >= 6.14 put a kprobe-type prog with >= 64 B of stack on a PER-CPU private stack, */
/* shared by preempted uprobe runs (sid 7.2: one server got the other's ctx/tuple); a tail call opts
 * out. */
static __always_inline void no_private_stack(void *ctx)
{
	if (never)
		bpf_tail_call(ctx, &no_progs, 0);
}

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	/* atomic: a preempted task on the same CPU may be incrementing too */
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Is the current process one we trace? --pid and --comm both restrict (AND). The name is the
 * thread group leader's, so a process's renamed threads still match. */
static __always_inline bool traced(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *task, *leader;
	char comm[USM_COMM_LEN] = {};

	if (filter_pid && !bpf_map_lookup_elem(&pid_filter, &tgid))
		return false;
	if (!filter_comm)
		return true;
	task = (struct task_struct *)bpf_get_current_task();
	leader = BPF_CORE_READ(task, group_leader);
	bpf_core_read(&comm, sizeof(comm), &leader->comm);
#pragma unroll
	for (int i = 0; i < USM_COMM_LEN; i++) {
		if (comm[i] != comm_filter[i])
			return false;
		if (comm[i] == 0)
			break;
	}
	return true;
}

static __always_inline bool is_v4_mapped(const __u32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

/* The tuple of a TCP socket over AF_INET/AF_INET6, local side first; false for anything else. */
static __always_inline bool read_tuple(struct sock *sk, __u32 pid, struct conn_tuple *t)
{
	__u16 family, proto;

	__builtin_memset(t, 0, sizeof(*t));
	if (!sk)
		return false;
	/* sk_protocol is a plain u16 from kernel 5.6 on; the oldest target is 5.10 */
	proto = BPF_CORE_READ(sk, sk_protocol);
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (proto != K_IPPROTO_TCP)
		return false;
	if (family == K_AF_INET) {
		t->family = 4;
		t->saddr[0] = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		t->daddr[0] = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	} else if (family == K_AF_INET6) {
		BPF_CORE_READ_INTO(&t->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);
		BPF_CORE_READ_INTO(&t->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32);
		if (is_v4_mapped(t->saddr) && is_v4_mapped(t->daddr)) {
			t->family = 4;
			t->saddr[0] = t->saddr[3];
			t->daddr[0] = t->daddr[3];
			t->saddr[2] = t->saddr[3] = 0;
			t->daddr[2] = t->daddr[3] = 0;
		} else {
			t->family = 6;
		}
	} else {
		return false;
	}
	/* Trap: not skc_num. tcp_set_state(TCP_CLOSE) calls inet_put_port(), which zeroes it
	 * before the close tracepoint fires; inet_sport survives. */
	t->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	t->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	t->pid = pid;
	return true;
}

/* Same connection, whoever saw it (pid ignored). */
static __always_inline bool same_conn(const struct conn_tuple *a, const struct conn_tuple *b)
{
	return a->saddr[0] == b->saddr[0] && a->saddr[1] == b->saddr[1] &&
	       a->saddr[2] == b->saddr[2] && a->saddr[3] == b->saddr[3] &&
	       a->daddr[0] == b->daddr[0] && a->daddr[1] == b->daddr[1] &&
	       a->daddr[2] == b->daddr[2] && a->daddr[3] == b->daddr[3] && a->sport == b->sport &&
	       a->dport == b->dport && a->family == b->family && a->netns == b->netns;
}

/* fd -> socket through the CURRENT task's file table (upstream: sockfd_lookup_light plus a
 * /proc scan at start-up; this also knows connections opened before the tracer started). */
static __always_inline bool tuple_from_fd(__u32 pid, __s32 fd, struct conn_tuple *t)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = 0; /* no NULL: libbpf 0.3's bpf_helpers.h does not define it */
	struct socket *sock;
	umode_t mode;

	/* fd comes from user space: bound it by the table's own size, or a bad fd would read
	 * past the array (a probe read, so not a verifier matter, but a wrong socket). */
	if (fd < 0 || (unsigned int)fd >= max_fds)
		return false;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return false;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & K_S_IFMT) != K_S_IFSOCK)
		return false;
	sock = (struct socket *)BPF_CORE_READ(file, private_data);
	return read_tuple(BPF_CORE_READ(sock, sk), pid, t);
}

/* tuple_by_pid_fd, refreshed by a walk of the fd table (an fd number may have been reused
 * since the map entry was written); the map answers only when the walk cannot. */
static __always_inline bool tuple_by_fd(__u32 pid, __s32 fd, struct conn_tuple *t)
{
	struct pid_fd key = {.pid = pid, .fd = fd};
	struct conn_tuple rkey, *cached;

	if (tuple_from_fd(pid, fd, t)) {
		bpf_map_update_elem(&tuple_by_pid_fd, &key, t, BPF_ANY);
		rkey = *t;
		rkey.pid = 0;
		bpf_map_update_elem(&pid_fd_by_tuple, &rkey, &key, BPF_ANY);
		return true;
	}
	cached = bpf_map_lookup_elem(&tuple_by_pid_fd, &key);
	if (!cached)
		return false;
	*t = *cached;
	return true;
}

static __always_inline void index_by_tuple(const struct conn_tuple *t,
					   const struct ssl_ctx_key *key)
{
	struct conn_tuple rkey = *t;

	rkey.pid = 0;
	bpf_map_update_elem(&ssl_ctx_by_tuple, &rkey, key, BPF_ANY);
}

static __always_inline void init_ssl_sock(__u64 ctx, __s32 fd)
{
	struct ssl_ctx_key key = {.pid_tgid = bpf_get_current_pid_tgid(), .ctx = ctx};
	struct ssl_sock s = {};

	s.fd = fd;
	bpf_map_update_elem(&ssl_sock_by_ctx, &key, &s, BPF_ANY);
}

static __always_inline void slot_write(__u64 pid_tgid, __u64 ctx)
{
	__u64 *old = bpf_map_lookup_elem(&ssl_ctx_by_pid_tgid, &pid_tgid);

	if (old && *old != ctx)
		count(USM_C_SLOT_OVERWRITES);
	bpf_map_update_elem(&ssl_ctx_by_pid_tgid, &pid_tgid, &ctx, BPF_ANY);
	count(USM_C_SLOT_WRITES);
}

#define CONN_FOUND	0
#define CONN_MISS	1 /* no ssl_sock_by_ctx entry */
#define CONN_UNRESOLVED 2 /* an entry, but its fd is not (or no longer) a TCP socket */

/* Steps 2-3 of tup_from_ssl_ctx: the entry's cached tuple, else resolve and cache its fd. */
static __always_inline int lookup_conn(__u64 ctx, __u64 pid_tgid, struct conn_tuple *t, __u8 *via)
{
	struct ssl_ctx_key key = {.pid_tgid = pid_tgid, .ctx = ctx};
	struct ssl_sock *s = bpf_map_lookup_elem(&ssl_sock_by_ctx, &key);

	if (!s)
		return CONN_MISS;
	if (s->tup.family) {
		*t = s->tup;
		*via = s->via;
		return CONN_FOUND;
	}
	if (!tuple_by_fd(pid_tgid >> 32, s->fd, t))
		return CONN_UNRESOLVED;
	s->tup = *t;
	s->via = USM_VIA_FD;
	*via = USM_VIA_FD;
	index_by_tuple(t, &key);
	return CONN_FOUND;
}

/* tup_from_ssl_ctx as upstream: on a miss, upstream and recv-hook write the slot. This is the
 * bug's trigger: called at SSL_write RETURN, the slot outlives the call whose tcp_sendmsg has
 * already happened, and is consumed by the thread's NEXT send, whatever connection that is.
 * no-fallback never writes it; scoped writes it only at call entry (scoped_enter). */
static __always_inline bool tup_from_ssl_ctx(__u64 ctx, __u64 pid_tgid, struct conn_tuple *t,
					     __u8 *via)
{
	int r = lookup_conn(ctx, pid_tgid, t, via);

	if (r == CONN_MISS && (variant == USM_VARIANT_UPSTREAM || variant == USM_VARIANT_RECV_HOOK))
		slot_write(pid_tgid, ctx);
	return r == CONN_FOUND;
}

/* scoped: arm the slot for the dynamic extent of this one SSL call. Only the call's own
 * tcp_sendmsg/tcp_recvmsg can consume it; the call's return always deletes it. */
static __always_inline void scoped_enter(__u64 ctx, __u64 pid_tgid)
{
	struct conn_tuple t;
	__u8 via;

	if (lookup_conn(ctx, pid_tgid, &t, &via) == CONN_MISS)
		slot_write(pid_tgid, ctx);
}

/* map_ssl_ctx_to_sock: bind the thread's slot, if any, to the socket being sent/received on. */
static __always_inline void map_ssl_ctx_to_sock(struct sock *sk, __u8 via)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ssl_ctx_key key = {.pid_tgid = pid_tgid};
	struct ssl_sock s = {};
	__u64 *slot;

	slot = bpf_map_lookup_elem(&ssl_ctx_by_pid_tgid, &pid_tgid);
	if (!slot)
		return;
	key.ctx = *slot; /* copy before the delete frees the value */
	bpf_map_delete_elem(&ssl_ctx_by_pid_tgid, &pid_tgid);
	if (!read_tuple(sk, pid_tgid >> 32, &s.tup))
		return;
	s.fd = -1;
	s.via = via;
	bpf_map_update_elem(&ssl_sock_by_ctx, &key, &s, BPF_ANY);
	index_by_tuple(&s.tup, &key);
	count(USM_C_SLOT_CONSUMED);
}

static __always_inline void handshake_enter(__u64 ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	/* upstream writes the slot unconditionally; scoped only on a miss, like SSL_read/write */
	if (variant == USM_VARIANT_UPSTREAM || variant == USM_VARIANT_RECV_HOOK)
		slot_write(pid_tgid, ctx);
	else if (variant == USM_VARIANT_SCOPED)
		scoped_enter(ctx, pid_tgid);
}

static __always_inline void handshake_return(void)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	bpf_map_delete_elem(&ssl_ctx_by_pid_tgid, &pid_tgid);
}

static __always_inline void ssl_call_enter(void *args_map, __u32 counter, __u64 ctx, __u64 buf,
					   __u64 size_out, bool is_read)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ssl_args a = {.ctx = ctx, .buf = buf, .size_out = size_out};
	struct conn_tuple t;
	__u8 via;

	count(counter);
	bpf_map_update_elem(args_map, &pid_tgid, &a, BPF_ANY);
	if (variant == USM_VARIANT_SCOPED)
		scoped_enter(ctx, pid_tgid);
	else if (is_read) /* upstream calls it at SSL_read entry for its side effect only */
		tup_from_ssl_ctx(ctx, pid_tgid, &t, &via);
}

/* Reserve an event and fill all but the payload; 0 (counted) when the ring buffer is full. */
static __always_inline struct tls_event *event_start(__u8 fn, __u64 ctx, __u64 len,
						     const struct conn_tuple *t, __u8 via)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct tls_event *e;

	/* the event is ~330 bytes: reserve it in the ring buffer, the BPF stack is 512 */
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(USM_C_RINGBUF_DROPS);
		return 0;
	}
	e->ts = bpf_ktime_get_ns();
	e->ctx = ctx;
	e->len = len;
	e->tup = *t;
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->fn = fn;
	e->via = via;
	e->pad = 0;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	return e;
}

static __always_inline void emit(__u8 fn, const struct ssl_args *a, __u64 len,
				 const struct conn_tuple *t, __u8 via)
{
	struct tls_event *e = event_start(fn, a->ctx, len, t, via);
	__u64 n = len;

	if (!e)
		return;
	/* Verifier trap: the copy size needs a provable bound. Left alone, clang clamps a copy of
	 * the value but passes the caller's unclamped int register ("R2 min value is negative").
	 * opaque() makes the clamped register the one passed. */
	opaque(n);
	if (n > USM_DATA_MAX)
		n = USM_DATA_MAX;
	if (bpf_probe_read_user(e->data, n, (const void *)a->buf))
		n = 0;
	e->data_len = n;
	e->truncated = n < len;
	bpf_ringbuf_submit(e, 0);
}

/* SSL_shutdown / tcp_close: the connection's end, for user space to flush its transaction. */
static __always_inline void emit_termination(__u8 fn, __u64 ctx, const struct conn_tuple *t,
					     __u8 via)
{
	struct tls_event *e = event_start(fn, ctx, 0, t, via);

	if (!e)
		return;
	e->data_len = 0;
	e->truncated = 0;
	bpf_ringbuf_submit(e, 0);
}

/* Return of SSL_read/SSL_write(_ex): bytes > 0 -> tuple -> event. ret is the call's return. */
static __always_inline void ssl_call_return(void *args_map, __u8 fn, long ret, bool ex)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct conn_tuple t;
	struct ssl_args a, *p;
	__u64 len = 0;
	__u8 via = USM_VIA_NONE;

	p = bpf_map_lookup_elem(args_map, &pid_tgid);
	if (!p)
		goto out;
	a = *p;
	bpf_map_delete_elem(args_map, &pid_tgid);
	if (ex) { /* SSL_*_ex return 1 and the byte count through size_out */
		if (ret == 1 && a.size_out)
			bpf_probe_read_user(&len, sizeof(len), (const void *)a.size_out);
	} else if (ret > 0) {
		len = ret;
	}
	if (len == 0)
		goto out;
	if (tup_from_ssl_ctx(a.ctx, pid_tgid, &t, &via)) {
		count(USM_C_ATTRIBUTED);
		emit(fn, &a, len, &t, via);
	} else {
		count(USM_C_DROPPED_NO_TUPLE);
	}
out:
	/* scoped: the slot never outlives the call that armed it, consumed or not */
	if (variant == USM_VARIANT_SCOPED)
		bpf_map_delete_elem(&ssl_ctx_by_pid_tgid, &pid_tgid);
}

/* Report the connection's end if its tuple is known (resolved from the fd table like
 * tup_from_ssl_ctx, but a miss writes no slot), then drop the entry. */
static __always_inline void ssl_shutdown(__u64 ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ssl_ctx_key key = {.pid_tgid = pid_tgid, .ctx = ctx};
	struct conn_tuple t;
	__u8 via;
	int r;

	count(USM_C_SSL_SHUTDOWN);
	r = lookup_conn(ctx, pid_tgid, &t, &via);
	if (r == CONN_MISS) {
		count(USM_C_SHUTDOWN_NO_TUPLE);
		return;
	}
	if (r == CONN_FOUND) {
		emit_termination(USM_FN_SSL_SHUTDOWN, ctx, &t, via);
		t.pid = 0;
		bpf_map_delete_elem(&ssl_ctx_by_tuple, &t);
	} else {
		count(USM_C_SHUTDOWN_NO_TUPLE);
	}
	bpf_map_delete_elem(&ssl_sock_by_ctx, &key);
}

static __always_inline bool is_tcp_inet(struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	return BPF_CORE_READ(sk, sk_protocol) == K_IPPROTO_TCP &&
	       (family == K_AF_INET || family == K_AF_INET6);
}

static __always_inline void on_tcp_send(struct sock *sk)
{
	count(USM_C_TCP_SENDMSG);
	map_ssl_ctx_to_sock(sk,
			    variant == USM_VARIANT_SCOPED ? USM_VIA_SCOPED : USM_VIA_FALLBACK_SEND);
}

static __always_inline void on_tcp_recv(struct sock *sk)
{
	count(USM_C_TCP_RECVMSG);
	/* upstream has no TLS correlation on the receive path (INVESTIGATION.md, bug 2) */
	if (variant == USM_VARIANT_RECV_HOOK)
		map_ssl_ctx_to_sock(sk, USM_VIA_FALLBACK_RECV);
	else if (variant == USM_VARIANT_SCOPED)
		map_ssl_ctx_to_sock(sk, USM_VIA_SCOPED);
}

/* Forget a closed connection and report its end. Keyed by tuple, not by thread: in tracepoint
 * mode the TCP_CLOSE transition usually runs in softirq, so the current task is not the owner;
 * a connection the maps know is reported whoever runs the hook. Counted only when known. */
static __always_inline void on_tcp_close(struct sock *sk, bool report)
{
	struct conn_tuple t, *cur;
	struct ssl_ctx_key ck = {}, *ckp;
	struct ssl_sock *s;
	struct pid_fd pf, *pfp;
	bool known = false;
	__u8 via = USM_VIA_NONE;

	if (!read_tuple(sk, 0, &t))
		return;
	pfp = bpf_map_lookup_elem(&pid_fd_by_tuple, &t);
	if (pfp) {
		pf = *pfp;
		cur = bpf_map_lookup_elem(&tuple_by_pid_fd, &pf);
		if (cur && same_conn(cur, &t)) /* the fd may already name a newer socket */
			bpf_map_delete_elem(&tuple_by_pid_fd, &pf);
		bpf_map_delete_elem(&pid_fd_by_tuple, &t);
		known = true;
	}
	ckp = bpf_map_lookup_elem(&ssl_ctx_by_tuple, &t);
	if (ckp) {
		ck = *ckp;
		s = bpf_map_lookup_elem(&ssl_sock_by_ctx, &ck);
		if (s && same_conn(&s->tup, &t)) { /* the SSL * may already be reused */
			via = s->via;
			bpf_map_delete_elem(&ssl_sock_by_ctx, &ck);
		}
		bpf_map_delete_elem(&ssl_ctx_by_tuple, &t);
		known = true;
	}
	if (known)
		count(USM_C_TCP_CLOSE);
	/* port 0: a listener, or a socket that never had a peer; nothing to terminate */
	if (report && t.sport && t.dport && (known || traced()))
		emit_termination(USM_FN_TCP_CLOSE, ck.ctx, &t, via);
}

/* ---- uprobes on libssl (BIO_new_socket: libcrypto) ---- */

SEC("uprobe/SSL_set_fd")
int BPF_KPROBE(uprobe__SSL_set_fd, void *ssl, int fd)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	if (!traced())
		return 0;
	count(USM_C_SSL_SET_FD);
	init_ssl_sock((__u64)ssl, fd);
	return 0;
}

SEC("uprobe/BIO_new_socket")
int BPF_KPROBE(uprobe__BIO_new_socket, int fd)
{
	if (!gate)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	no_private_stack(ctx);
	if (!traced())
		return 0;
	count(USM_C_BIO_NEW_SOCKET);
	bpf_map_update_elem(&bio_new_socket_args, &pid_tgid, &fd, BPF_ANY);
	return 0;
}

SEC("uretprobe/BIO_new_socket")
int BPF_KRETPROBE(uretprobe__BIO_new_socket, void *bio)
{
	if (!gate)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 key = (__u64)bio;
	__s32 *fd = bpf_map_lookup_elem(&bio_new_socket_args, &pid_tgid);

	no_private_stack(ctx);
	if (!fd)
		return 0;
	if (bio)
		bpf_map_update_elem(&fd_by_ssl_bio, &key, fd, BPF_ANY);
	bpf_map_delete_elem(&bio_new_socket_args, &pid_tgid);
	return 0;
}

SEC("uprobe/SSL_set_bio")
int BPF_KPROBE(uprobe__SSL_set_bio, void *ssl, void *rbio)
{
	if (!gate)
		return 0;
	__u64 key = (__u64)rbio;
	__s32 *fd;

	no_private_stack(ctx);
	if (!traced())
		return 0;
	count(USM_C_SSL_SET_BIO);
	fd = bpf_map_lookup_elem(&fd_by_ssl_bio, &key);
	if (!fd)
		return 0;
	init_ssl_sock((__u64)ssl, *fd);
	bpf_map_delete_elem(&fd_by_ssl_bio, &key);
	return 0;
}

SEC("uprobe/SSL_do_handshake")
int BPF_KPROBE(uprobe__SSL_do_handshake, void *ssl)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	if (!traced())
		return 0;
	count(USM_C_SSL_DO_HANDSHAKE);
	handshake_enter((__u64)ssl);
	return 0;
}

SEC("uretprobe/SSL_do_handshake")
int BPF_KRETPROBE(uretprobe__SSL_do_handshake)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	handshake_return();
	return 0;
}

SEC("uprobe/SSL_connect")
int BPF_KPROBE(uprobe__SSL_connect, void *ssl)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	if (!traced())
		return 0;
	count(USM_C_SSL_CONNECT);
	handshake_enter((__u64)ssl);
	return 0;
}

SEC("uretprobe/SSL_connect")
int BPF_KRETPROBE(uretprobe__SSL_connect)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	handshake_return();
	return 0;
}

SEC("uprobe/SSL_write")
int BPF_KPROBE(uprobe__SSL_write, void *ssl, const void *buf)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	if (traced())
		ssl_call_enter(&ssl_write_args, USM_C_SSL_WRITE, (__u64)ssl, (__u64)buf, 0, false);
	return 0;
}

SEC("uretprobe/SSL_write")
int BPF_KRETPROBE(uretprobe__SSL_write, int ret)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	ssl_call_return(&ssl_write_args, USM_FN_SSL_WRITE, ret, false);
	return 0;
}

SEC("uprobe/SSL_write_ex")
int BPF_KPROBE(uprobe__SSL_write_ex, void *ssl, const void *buf, __u64 num, __u64 *written)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	if (traced())
		ssl_call_enter(&ssl_write_ex_args, USM_C_SSL_WRITE_EX, (__u64)ssl, (__u64)buf,
			       (__u64)written, false);
	return 0;
}

SEC("uretprobe/SSL_write_ex")
int BPF_KRETPROBE(uretprobe__SSL_write_ex, int ret)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	ssl_call_return(&ssl_write_ex_args, USM_FN_SSL_WRITE_EX, ret, true);
	return 0;
}

SEC("uprobe/SSL_read")
int BPF_KPROBE(uprobe__SSL_read, void *ssl, void *buf)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	if (traced())
		ssl_call_enter(&ssl_read_args, USM_C_SSL_READ, (__u64)ssl, (__u64)buf, 0, true);
	return 0;
}

SEC("uretprobe/SSL_read")
int BPF_KRETPROBE(uretprobe__SSL_read, int ret)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	ssl_call_return(&ssl_read_args, USM_FN_SSL_READ, ret, false);
	return 0;
}

SEC("uprobe/SSL_read_ex")
int BPF_KPROBE(uprobe__SSL_read_ex, void *ssl, void *buf, __u64 num, __u64 *readbytes)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	if (traced())
		ssl_call_enter(&ssl_read_ex_args, USM_C_SSL_READ_EX, (__u64)ssl, (__u64)buf,
			       (__u64)readbytes, true);
	return 0;
}

SEC("uretprobe/SSL_read_ex")
int BPF_KRETPROBE(uretprobe__SSL_read_ex, int ret)
{
	if (!gate)
		return 0;
	no_private_stack(ctx);
	ssl_call_return(&ssl_read_ex_args, USM_FN_SSL_READ_EX, ret, true);
	return 0;
}

SEC("uprobe/SSL_shutdown")
int BPF_KPROBE(uprobe__SSL_shutdown, void *ssl)
{
	if (!gate)
		return 0;
#ifdef USM_TEST_BAD_PROG
	/* test only (make USM_TEST_BAD_PROG=1, the fault suite's case 5): with --variant scoped, a
	 * load through a user pointer without bpf_probe_read_user, which every verifier rejects.
	 * `variant` is read-only data: for the other variants the verifier prunes the branch, so
	 * they load and one cell of a matrix fails while the others run. */
	if (variant == USM_VARIANT_SCOPED && *(volatile __u64 *)ssl == 0)
		return 1;
#endif
	no_private_stack(ctx);
	if (traced())
		ssl_shutdown((__u64)ssl);
	return 0;
}

/* ---- kernel, --hook kprobe ---- */

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(kprobe__tcp_sendmsg, struct sock *sk)
{
	if (!gate)
		return 0;
	if (traced())
		on_tcp_send(sk);
	return 0;
}

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(kprobe__tcp_recvmsg, struct sock *sk)
{
	if (!gate)
		return 0;
	if (traced())
		on_tcp_recv(sk);
	return 0;
}

SEC("kprobe/tcp_close")
int BPF_KPROBE(kprobe__tcp_close, struct sock *sk)
{
	if (!gate)
		return 0;
	on_tcp_close(sk, true);
	return 0;
}

/* ---- kernel, --hook tracepoint: TP_PROTO(struct sock *sk, int ret, int flags), fired at the
 * end of sock_sendmsg/sock_recvmsg for every socket family: after the I/O, but still inside
 * the SSL call, which is all the model needs. ---- */

SEC("raw_tracepoint/sock_send_length")
int raw_tp__sock_send_length(struct bpf_raw_tracepoint_args *ctx)
{
	if (!gate)
		return 0;
	struct sock *sk = (struct sock *)ctx->args[0];

	if (traced() && is_tcp_inet(sk))
		on_tcp_send(sk);
	return 0;
}

SEC("raw_tracepoint/sock_recv_length")
int raw_tp__sock_recv_length(struct bpf_raw_tracepoint_args *ctx)
{
	if (!gate)
		return 0;
	struct sock *sk = (struct sock *)ctx->args[0];

	if (traced() && is_tcp_inet(sk))
		on_tcp_recv(sk);
	return 0;
}

/* TP_PROTO(const struct sock *sk, const int oldstate, const int newstate) */
SEC("raw_tracepoint/inet_sock_set_state")
int raw_tp__inet_sock_set_state(struct bpf_raw_tracepoint_args *ctx)
{
	if (!gate)
		return 0;
	/* a transition to TCP_CLOSE from TCP_CLOSE is not a second end of the connection */
	if ((int)ctx->args[2] == K_TCP_CLOSE)
		on_tcp_close((struct sock *)ctx->args[0], (int)ctx->args[1] != K_TCP_CLOSE);
	return 0;
}
