// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * portctl's BPF iterators: who holds each socket, and the socket options
 * sock_diag does not report (SO_REUSEADDR, SO_REUSEPORT).
 *
 *   iter/task_file  owners         one record per socket descriptor on the host
 *   iter/task_file  owners_wanted  the same, only for the inodes in map `wanted`
 *   iter/tcp        tcp_socks      one record per TCP socket of the namespace
 *                                  (listeners, connections, TIME_WAIT), filtered
 *                                  by port or by inode (map `config`)
 *   iter/udp        udp_socks      the same for UDP
 *
 * No vmlinux.h: the few kernel types touched are declared below, only the
 * members used, with preserve_access_index, so that every access is a CO-RE
 * relocation that portctl resolves against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux) when it loads a program. Member order and
 * offsets here do not matter.
 *
 * Records are little-endian structs of fixed size without implicit padding;
 * src/bpf/records.rs decodes them (keep the two in step).
 *
 * Build: scripts/build-bpf.sh (clang -target bpf; libbpf's headers for
 * bpf_helpers.h and bpf_core_read.h). The object is committed as
 * bpf/portctl.bpf.o so that building portctl needs neither.
 */

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define PAI __attribute__((preserve_access_index))

enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
};

#define AF_INET 2
#define AF_INET6 10
#define TCP_TIME_WAIT 6
#define TCP_NEW_SYN_RECV 12

/* ---- kernel types (the members used, nothing else) ---- */

struct seq_file;
struct files_struct;

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 seq_num;
} PAI;

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *group_leader;
	struct files_struct *files;
} PAI;

struct inode {
	unsigned long i_ino;
} PAI;

struct file {
	struct inode *f_inode;
} PAI;

struct in6_addr {
	union {
		__be32 u6_addr32[4];
	} in6_u;
} PAI;

/* The kernel nests the address and port pairs in anonymous unions and
 * structs; CO-RE finds members by name through them. */
struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	unsigned char skc_reuse : 4;
	unsigned char skc_reuseport : 1;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} PAI;

struct socket;

struct sock {
	struct sock_common __sk_common;
	struct socket *sk_socket;
	__u8 sk_kern_sock : 1;
} PAI;

struct socket {
	struct file *file;
	struct sock *sk;
} PAI;

struct socket_alloc {
	struct socket socket;
	struct inode vfs_inode;
} PAI;

struct tcp_sock;
struct udp_sock;

struct bpf_iter__task_file {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
	__u32 fd;
	struct file *file;
} PAI;

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} PAI;

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
} PAI;

/* ---- records ---- */

/* owner_rec.bits and sock_rec.bits */
#define OWN_TABLE 1  /* a thread with a descriptor table of its own: tid != tgid */
#define INET 2       /* an AF_INET or AF_INET6 socket: the flags below mean something */
#define REUSEADDR 4  /* sk_reuse: SO_REUSEADDR */
#define REUSEPORT 8  /* sk_reuseport: SO_REUSEPORT */
#define NO_FILE 16   /* sock_rec: a full socket no file refers to (orphan or kernel socket) */
#define KERNEL 32    /* sock_rec: created by the kernel (sk_kern_sock) */
#define TIME_WAIT 64 /* sock_rec: a TIME_WAIT socket (inode 0) */
#define REQUEST 128  /* sock_rec: a connection request not yet accepted (inode 0) */
#define SEEN 128     /* owner_rec: not a socket; the iterator's first descriptor (fd = ~0) */

/* 24 bytes */
struct owner_rec {
	__u32 tgid; /* process id, in portctl's pid namespace at iterator creation */
	__u32 tid;  /* the thread whose table this is (== tgid for the process's table) */
	__u32 fd;
	__u32 bits;
	__u64 ino; /* socket inode, as in /proc/PID/fd -> socket:[ino] */
};

/* 48 bytes */
struct sock_rec {
	__u64 ino;      /* 0 for TIME_WAIT and request sockets */
	__u32 saddr[4]; /* network order; IPv4 in saddr[0] */
	__u32 daddr[4];
	__u16 family;
	__u16 sport; /* host order */
	__u16 dport; /* host order */
	__u8 state;
	__u8 bits;
};

/* map `config`, one entry */
struct config {
	__u16 port;     /* only sockets on this local port (0: every port) */
	__u8 by_inode;  /* only sockets whose inode is in `wanted` */
	__u8 pad[5];
};

_Static_assert(sizeof(struct owner_rec) == 24, "owner_rec");
_Static_assert(sizeof(struct sock_rec) == 48, "sock_rec");
_Static_assert(sizeof(struct config) == 8, "config");

/* ---- maps ---- */

/* Socket inodes wanted; max_entries is set by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u8);
} wanted SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

/* ---- task_file ---- */

/* The socket of a descriptor (of `task`), NULL when it is not one; `*ino`
 * gets its inode.
 *
 * The first descriptor of an iterator session also gets a SEEN record:
 * run per process, that says its descriptors were visible at all (a
 * sandbox may hide a process from the iterator as from /proc, and a
 * socket no iterator showed must not be called held by nobody). */
static __always_inline struct socket *socket_of(struct bpf_iter__task_file *ctx, struct task_struct *task,
						struct file *file, __u64 *ino)
{
	struct socket *sock;

	if (ctx->meta->seq_num == 0) {
		struct owner_rec seen = { .tgid = task->tgid, .tid = task->pid, .fd = ~0U, .bits = SEEN };

		bpf_seq_write(ctx->meta->seq, &seen, sizeof(seen));
	}
	/* NULL unless file is a socket (f_op == &socket_file_ops): an O_PATH
	 * descriptor of a socket's path is not one. */
	sock = bpf_sock_from_file(file);
	if (sock)
		*ino = file->f_inode->i_ino;
	return sock;
}

/* Fills `o` for the socket descriptor of `ctx`; 0 for a thread that shares
 * its leader's table (the leader's descriptor is the one shown). */
static __always_inline int owner_of(struct bpf_iter__task_file *ctx, struct task_struct *task, struct socket *sock,
				    struct owner_rec *o)
{
	struct sock *sk;

	o->tgid = task->tgid;
	o->tid = task->pid;
	/* The kernel skips threads that share their leader's table already;
	 * the ones it shows have a table of their own. */
	if (o->tid != o->tgid) {
		if (task->files == task->group_leader->files)
			return 0;
		o->bits |= OWN_TABLE;
	}
	o->fd = ctx->fd;
	sk = sock->sk;
	if (sk) {
		unsigned short family = sk->__sk_common.skc_family;

		if (family == AF_INET || family == AF_INET6) {
			o->bits |= INET;
			if (BPF_CORE_READ_BITFIELD(&sk->__sk_common, skc_reuse))
				o->bits |= REUSEADDR;
			if (BPF_CORE_READ_BITFIELD(&sk->__sk_common, skc_reuseport))
				o->bits |= REUSEPORT;
		}
	}
	return 1;
}

/* Both programs are called once more at the end, without a file. */
SEC("iter/task_file")
int owners(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct owner_rec o = {};
	struct socket *sock;

	if (!task || !file)
		return 0;
	sock = socket_of(ctx, task, file, &o.ino);
	if (sock && owner_of(ctx, task, sock, &o))
		bpf_seq_write(ctx->meta->seq, &o, sizeof(o));
	return 0;
}

/* The socket itself (its struct sock: a cache miss or two) is read only
 * for the inodes wanted: most descriptors a filtered walk sees are not. */
SEC("iter/task_file")
int owners_wanted(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct owner_rec o = {};
	struct socket *sock;

	if (!task || !file)
		return 0;
	sock = socket_of(ctx, task, file, &o.ino);
	if (sock && bpf_map_lookup_elem(&wanted, &o.ino) && owner_of(ctx, task, sock, &o))
		bpf_seq_write(ctx->meta->seq, &o, sizeof(o));
	return 0;
}

/* ---- tcp and udp ---- */

static __always_inline void addresses(struct sock_common *skc, struct sock_rec *r)
{
	r->family = skc->skc_family;
	r->state = skc->skc_state;
	r->sport = skc->skc_num;
	r->dport = __builtin_bswap16(skc->skc_dport);
	if (r->family == AF_INET6) {
		r->saddr[0] = skc->skc_v6_rcv_saddr.in6_u.u6_addr32[0];
		r->saddr[1] = skc->skc_v6_rcv_saddr.in6_u.u6_addr32[1];
		r->saddr[2] = skc->skc_v6_rcv_saddr.in6_u.u6_addr32[2];
		r->saddr[3] = skc->skc_v6_rcv_saddr.in6_u.u6_addr32[3];
		r->daddr[0] = skc->skc_v6_daddr.in6_u.u6_addr32[0];
		r->daddr[1] = skc->skc_v6_daddr.in6_u.u6_addr32[1];
		r->daddr[2] = skc->skc_v6_daddr.in6_u.u6_addr32[2];
		r->daddr[3] = skc->skc_v6_daddr.in6_u.u6_addr32[3];
	} else {
		r->saddr[0] = skc->skc_rcv_saddr;
		r->daddr[0] = skc->skc_daddr;
	}
	r->bits = INET;
	/* TIME_WAIT sockets keep the flags of the socket they replace. */
	if (BPF_CORE_READ_BITFIELD(skc, skc_reuse))
		r->bits |= REUSEADDR;
	if (BPF_CORE_READ_BITFIELD(skc, skc_reuseport))
		r->bits |= REUSEPORT;
}

/* The inode and the file of a full socket. */
static __always_inline void full(struct sock *sk, struct sock_rec *r)
{
	struct socket *sock = sk->sk_socket;

	if (BPF_CORE_READ_BITFIELD(sk, sk_kern_sock))
		r->bits |= KERNEL;
	if (!sock) {
		/* orphaned (closed, still finishing): no inode any more */
		r->bits |= NO_FILE;
		return;
	}
	if (!sock->file)
		r->bits |= NO_FILE;
	/* The inode is allocated with the socket (struct socket_alloc), file
	 * or not: what sock_diag reports. */
	bpf_core_read(&r->ino, sizeof(r->ino), &((struct socket_alloc *)sock)->vfs_inode.i_ino);
}

static __always_inline struct config *filter(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
}

/* Whether a socket on local port `port` can pass the filter (checked
 * first: it is one load). */
static __always_inline int port_wanted(struct config *c, __u16 port)
{
	return !c || !c->port || c->port == port;
}

/* Whether a record passes the inode part of the filter. */
static __always_inline int inode_wanted(struct config *c, struct sock_rec *r)
{
	return !c || !c->by_inode || (r->ino && bpf_map_lookup_elem(&wanted, &r->ino));
}

SEC("iter/tcp")
int tcp_socks(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct config *c = filter();
	struct sock_rec r = {};

	if (!skc || !port_wanted(c, skc->skc_num))
		return 0;
	addresses(skc, &r);
	if (r.state == TCP_TIME_WAIT) {
		r.bits |= TIME_WAIT;
	} else if (r.state == TCP_NEW_SYN_RECV) {
		r.bits |= REQUEST;
	} else {
		struct sock *sk = (void *)bpf_skc_to_tcp_sock(skc);

		if (sk)
			full(sk, &r);
	}
	if (inode_wanted(c, &r))
		bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

SEC("iter/udp")
int udp_socks(struct bpf_iter__udp *ctx)
{
	struct sock *sk = (void *)ctx->udp_sk;
	struct config *c = filter();
	struct sock_rec r = {};

	if (!sk || !port_wanted(c, sk->__sk_common.skc_num))
		return 0;
	addresses(&sk->__sk_common, &r);
	full(sk, &r);
	if (inode_wanted(c, &r))
		bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
