/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between usm_tls.bpf.c and usm_tls.c: settings, event and map layouts, constants.
 * No logic here. The __uNN types come from vmlinux.h (BPF side) or <linux/types.h> (loader). */
#ifndef __USM_TLS_H
#define __USM_TLS_H

#define USM_COMM_LEN 16
#define USM_DATA_MAX 208 /* upstream inspects the first ~160-208 bytes of a buffer */
#define USM_MAX_PIDS 64	 /* --pid may be given this many times */

/* How the fallback slot ssl_ctx_by_pid_tgid behaves (MODEL.md, "Variants"). */
enum usm_variant {
	USM_VARIANT_UPSTREAM = 0,
	USM_VARIANT_NO_FALLBACK = 1,
	USM_VARIANT_RECV_HOOK = 2,
	USM_VARIANT_SCOPED = 3,
};

/* How an ssl_sock_by_ctx entry learnt its connection; copied into every event. */
enum usm_via {
	USM_VIA_NONE = 0,
	USM_VIA_FD = 1,		   /* SSL_set_fd / SSL_set_bio fd, resolved through the fd table */
	USM_VIA_FALLBACK_SEND = 2, /* the slot, consumed by tcp_sendmsg */
	USM_VIA_FALLBACK_RECV = 3, /* the slot, consumed by tcp_recvmsg (recv-hook) */
	USM_VIA_SCOPED = 4,	   /* the call-scoped slot (scoped) */
};

enum usm_fn {
	USM_FN_SSL_READ = 0,
	USM_FN_SSL_READ_EX = 1,
	USM_FN_SSL_WRITE = 2,
	USM_FN_SSL_WRITE_EX = 3,
	USM_FN_SSL_SHUTDOWN = 4, /* termination events: len 0, no data */
	USM_FN_TCP_CLOSE = 5,
	USM_FN_MAX,
};

/* Indexes into the per-CPU counters map; names in usm_tls.c's counter_names[]. */
enum usm_counter {
	USM_C_SSL_READ = 0,
	USM_C_SSL_READ_EX,
	USM_C_SSL_WRITE,
	USM_C_SSL_WRITE_EX,
	USM_C_SSL_SET_FD,
	USM_C_SSL_SET_BIO,
	USM_C_BIO_NEW_SOCKET,
	USM_C_SSL_DO_HANDSHAKE,
	USM_C_SSL_CONNECT,
	USM_C_SSL_SHUTDOWN,
	USM_C_TCP_SENDMSG,
	USM_C_TCP_RECVMSG,
	USM_C_TCP_CLOSE,
	USM_C_CALLS_END, /* counters below are not calls */
	USM_C_ATTRIBUTED = USM_C_CALLS_END,
	USM_C_DROPPED_NO_TUPLE,
	USM_C_SLOT_WRITES,
	USM_C_SLOT_OVERWRITES,
	USM_C_SLOT_CONSUMED,
	USM_C_RINGBUF_DROPS,
	USM_C_SHUTDOWN_NO_TUPLE,
	USM_C_MAX,
};

/* A TCP connection as seen from the socket's own side (s = local). Used as a hash key: every
 * byte, padding included, is written. IPv4 (and v4-mapped IPv6) sits in saddr[0] / daddr[0]. */
struct conn_tuple {
	__u32 saddr[4];
	__u32 daddr[4];
	__u32 netns;  /* skc_net inum */
	__u32 pid;    /* tgid that saw it; zeroed in the keys of the reverse indexes */
	__u16 sport;  /* host order */
	__u16 dport;  /* host order */
	__u16 family; /* 4 or 6; 0 = unknown */
	__u16 pad;
};

/* ssl_sock_by_ctx key and ssl_ctx_by_tuple value. */
struct ssl_ctx_key {
	__u64 pid_tgid;
	__u64 ctx;
};

/* ssl_sock_by_ctx value: the tuple is cached for the entry's life once known. */
struct ssl_sock {
	struct conn_tuple tup;
	__s32 fd; /* -1 when the entry was made by the slot */
	__u32 via;
};

/* tuple_by_pid_fd key and pid_fd_by_tuple value. */
struct pid_fd {
	__u32 pid;
	__s32 fd;
};

/* SSL_read/SSL_write(_ex) entry -> return hand-off. */
struct ssl_args {
	__u64 ctx;
	__u64 buf;
	__u64 size_out; /* size_t * of the _ex calls, else 0 */
};

/* One attributed TLS buffer, or a connection's termination (len 0), through the ring buffer. */
struct tls_event {
	__u64 ts;  /* bpf_ktime_get_ns */
	__u64 ctx; /* the SSL * */
	__u64 len; /* bytes of the call */
	struct conn_tuple tup;
	__u32 pid;
	__u32 tid;
	__u32 data_len; /* bytes copied into data */
	__u8 fn;	/* enum usm_fn */
	__u8 via;	/* enum usm_via */
	__u8 truncated;
	__u8 pad;
	char comm[USM_COMM_LEN];
	char data[USM_DATA_MAX];
};

#endif /* __USM_TLS_H */
