// SPDX-License-Identifier: MIT
/*
 * floor_bpf: the lower bound of "every TCP socket with its owners" when the
 * owners come from the kernel's task_file iterator, done the plainest way,
 * on one thread, one step after the other, printing nothing:
 *
 *   1. one NETLINK_SOCK_DIAG dump of every TCP socket (IPv4 and IPv6, every
 *      state), keeping each socket's inode;
 *   2. bpf/portctl.bpf.o's `owners` program (iter/task_file: one record per
 *      socket descriptor on the host) loaded with libbpf, its iterator read
 *      to the end, each record kept as (inode, pid, fd).
 *
 * It is what `portctl conns --state all --tcp` is compared with (the BPF
 * side's twin of examples/floor.rs, which walks /proc instead). bench/run.sh
 * builds it with `cc -O2 ... -lbpf` (Debian's libbpf-dev).
 *
 *   floor_bpf OBJECT [--phases]
 *
 * --phases prints each step's time and count on stdout.
 */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "floor_bpf: %s: %s\n", what, strerror(errno));
	exit(1);
}

struct vec {
	uint64_t *v;
	size_t len, cap;
};

static void push(struct vec *x, uint64_t a)
{
	if (x->len == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 1 << 16;
		x->v = realloc(x->v, x->cap * sizeof(*x->v));
		if (!x->v)
			die("realloc");
	}
	x->v[x->len++] = a;
}

/* One sock_diag dump of TCP sockets of `family`, every state: inodes. */
static void dump(int family, struct vec *inodes)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg = {
		.nlh = { .nlmsg_len = sizeof(msg), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1 },
		.req = { .sdiag_family = family, .sdiag_protocol = IPPROTO_TCP, .idiag_states = ~0U },
	};
	static char buf[256 * 1024];
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);

	if (fd < 0)
		die("socket(NETLINK_SOCK_DIAG)");
	if (send(fd, &msg, sizeof(msg), 0) < 0)
		die("send");
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h;

		if (n < 0)
			die("recv");
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE) {
				close(fd);
				return;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				errno = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
				die("sock_diag");
			}
			push(inodes, ((struct inet_diag_msg *)NLMSG_DATA(h))->idiag_inode);
		}
	}
}

/* struct owner_rec of bpf/portctl.bpf.c */
struct owner_rec {
	uint32_t tgid, tid, fd, bits;
	uint64_t ino;
};

#define SEEN 128

int main(int argc, char **argv)
{
	int phases = argc > 2 && strcmp(argv[2], "--phases") == 0;
	struct vec inodes = { 0 }, owners = { 0 };
	struct bpf_object *obj;
	struct bpf_program *p, *owners_prog = NULL;
	struct bpf_link *link;
	static char buf[1 << 20];
	double t0, t1, t2, t3;
	int fd;

	if (argc < 2) {
		fprintf(stderr, "usage: floor_bpf bpf/portctl.bpf.o [--phases]\n");
		return 2;
	}
	t0 = now_ms();
	dump(AF_INET, &inodes);
	dump(AF_INET6, &inodes);
	t1 = now_ms();

	libbpf_set_print(NULL);
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		die("bpf_object__open_file");
	bpf_object__for_each_program(p, obj) {
		int mine = strcmp(bpf_program__name(p), "owners") == 0;

		bpf_program__set_autoload(p, mine);
		if (mine)
			owners_prog = p;
	}
	if (!owners_prog) {
		errno = ENOENT;
		die("no program `owners` in the object");
	}
	if (bpf_object__load(obj))
		die("bpf_object__load");
	link = bpf_program__attach_iter(owners_prog, NULL);
	if (!link)
		die("bpf_program__attach_iter");
	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0)
		die("bpf_iter_create");
	t2 = now_ms();
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		struct owner_rec *r;

		if (n < 0)
			die("read");
		if (n == 0)
			break;
		for (r = (struct owner_rec *)buf; (char *)(r + 1) <= buf + n; r++) {
			if (r->bits & SEEN)
				continue;
			push(&owners, r->ino);
			push(&owners, (uint64_t)r->tgid << 32 | r->fd);
		}
	}
	t3 = now_ms();
	if (phases) {
		printf("dump: %.1f ms for %zu sockets\n", t1 - t0, inodes.len);
		printf("load (libbpf, CO-RE against the kernel's BTF): %.1f ms\n", t2 - t1);
		printf("iterator read: %.1f ms for %zu socket descriptors\n", t3 - t2, owners.len / 2);
	}
	close(fd);
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}
