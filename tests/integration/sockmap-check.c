// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockmap-check: both ends of a TCP connection in one process, driving one
 * socket behaviour through ferry's same-node acceleration and checking that
 * every byte arrives, in order, exactly once.
 *
 *   sockmap-check [options] CASE
 *
 * The listener is created first (optionally in another network namespace
 * and/or another cgroup: sockets belong to the namespace and cgroup they were
 * created in, and accepted sockets to their listener's), then the client
 * connects from where the process runs. The server side runs in a thread.
 *
 * Every payload is a deterministic pseudo-random stream (byte i depends on a
 * seed and i only), so the reader verifies order and content at any offset
 * without keeping a copy. A case prints nothing and exits 0 when it held;
 * otherwise it prints "sockmap-check CASE: what went wrong" and exits 1.
 * A watchdog ends a hung case (exit 3): hangs are failures, not slowness.
 *
 * With --pin DIR the per-CPU counters in DIR/ferry_stats_v1 are read before
 * and after the case, printed as "stats redirect=N bytes=N ..." and checked
 * against --expect: "fast" needs redirected bytes (a stream may then fall
 * back to TCP: its bytes are checked all the same), "stream" needs every
 * byte of --bytes redirected, "slow" needs none.
 *
 * rr --loop holds one connection open across an event of the caller's: after
 * --iters round trips it creates --ready-file and goes on until a line (or
 * EOF) arrives on stdin, then makes --iters more round trips, and prints
 * "rr before=N after=M" (M: those made after the release, on the same
 * connection). The caller releases it once its event (a restart...) is over.
 *
 * Cases (see CASES below). Benchmarks: perf-rr and perf-stream print one
 * line of results and take --size, --iters/--bytes and --unix (AF_UNIX
 * socketpair instead of TCP, for the floor).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <bpf/bpf.h>

#include "maps.h"

#define IO_TIMEOUT_S	20	/* a blocked call this long is a hang */
#define MIB		(1024 * 1024)

struct opts {
	const char *cs;		/* case name */
	int	family;		/* AF_INET / AF_INET6; mapped: AF_INET6 server, AF_INET client */
	bool	mapped;
	const char *saddr;	/* server address */
	const char *caddr;	/* address the client connects to (default saddr) */
	int	port;
	int	cport;		/* port the client connects to (default port) */
	const char *snetns;
	const char *cnetns;
	bool	strict;		/* an EAGAIN from a blocking socket fails the case */
	const char *ready;	/* rr: create this file after 1000 round trips
				 * (--loop: after --iters) */
	bool	loop;		/* rr: go on until stdin says stop, then --iters more */
	const char *scgroup;
	const char *pin;
	const char *expect;	/* fast | slow | any */
	uint64_t bytes;
	size_t	size;
	long	iters;
	int	conns;
	bool	unix_;
	int	watchdog;
};

static struct opts O = {
	.family = AF_INET, .expect = "any", .bytes = 64 * MIB, .size = 64,
	.iters = 20000, .conns = 10000, .watchdog = 300,
};

static __thread char errbuf[512];

/*
 * EAGAIN from a blocking socket. The kernel's sockmap receive path
 * (tcp_bpf_recvmsg) returns it when a reader sleeping for data is woken
 * without any: by a signal, an RST, or a write-space wakeup on the same
 * socket. The helpers retry through poll(), as event-loop applications do,
 * and count them; docs/sockmap.md has the details.
 */
static volatile long spurious_eagain;

#define FAILF(...) do { snprintf(errbuf, sizeof(errbuf), __VA_ARGS__); return -1; } while (0)

/* ---- deterministic payload ------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Byte p of stream seed is byte p%8 of mix64(seed ^ p/8). */
static void gen(void *dst, uint64_t off, size_t n, uint64_t seed)
{
	uint8_t *b = dst;

	while (n && (off & 7)) {
		*b++ = mix64(seed ^ (off >> 3)) >> (8 * (off & 7));
		off++, n--;
	}
	while (n >= 8) {
		uint64_t w = mix64(seed ^ (off >> 3));

		memcpy(b, &w, 8);
		b += 8, off += 8, n -= 8;
	}
	while (n) {
		*b++ = mix64(seed ^ (off >> 3)) >> (8 * (off & 7));
		off++, n--;
	}
}

/* verify()'s expected bytes, one buffer per thread; verify_free() at a thread's end. */
static __thread uint8_t *vbuf;
static __thread size_t vbuf_len;

static void verify_free(void)
{
	free(vbuf);
	vbuf = NULL;
	vbuf_len = 0;
}

/* -1 if buf holds stream bytes off..off+n, else the first bad offset. */
static int64_t verify(const void *buf, uint64_t off, size_t n, uint64_t seed)
{
	const uint8_t *b = buf;
	size_t i;

	if (vbuf_len < n) {
		free(vbuf);
		vbuf = malloc(n);
		vbuf_len = vbuf ? n : 0;
		if (!vbuf)
			return off;
	}
	gen(vbuf, off, n, seed);
	if (!memcmp(vbuf, b, n))
		return -1;
	for (i = 0; i < n && vbuf[i] == b[i]; i++)
		;
	return off + i;
}

/* ---- small I/O helpers ----------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int wait_fd(int fd, short ev)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int n;

	do
		n = poll(&p, 1, IO_TIMEOUT_S * 1000);
	while (n < 0 && errno == EINTR);
	if (n == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	return n < 0 ? -1 : 0;
}

/* Write everything (blocking or not); 0 or -1 with errno. */
static int write_all(int fd, const void *buf, size_t n, int flags)
{
	const char *p = buf;

	while (n) {
		ssize_t w = send(fd, p, n, flags | MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				if (wait_fd(fd, POLLOUT))
					return -1;
				continue;
			}
			return -1;
		}
		p += w, n -= w;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t n, int flags)
{
	char *p = buf;

	while (n) {
		ssize_t r = recv(fd, p, n, flags);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			__atomic_add_fetch(&spurious_eagain, 1, __ATOMIC_RELAXED);
			if (wait_fd(fd, POLLIN))
				return -1;
			continue;
		}
		if (r <= 0) {
			if (!r)
				errno = EPIPE;
			return -1;
		}
		p += r, n -= r;
	}
	return 0;
}

static void set_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Send the stream bytes [0, total) in pieces of `chunk` (0: varying). */
static int send_stream(int fd, uint64_t total, size_t chunk, uint64_t seed, int flags)
{
	size_t bufsz = chunk ? chunk : MIB;
	uint8_t *buf = malloc(bufsz);
	uint64_t off = 0, r = seed;
	int err = 0;

	if (!buf)
		FAILF("malloc");
	while (off < total) {
		size_t n = chunk;

		if (!n) {	/* 1 B .. 1 MiB, biased to small */
			r = mix64(r);
			n = 1 + (r % (r & 1 ? 1500 : MIB));
		}
		if (n > total - off)
			n = total - off;
		gen(buf, off, n, seed);
		if (write_all(fd, buf, n, flags)) {
			snprintf(errbuf, sizeof(errbuf), "send at %llu: %s",
				 (unsigned long long)off, strerror(errno));
			err = -1;
			break;
		}
		off += n;
	}
	free(buf);
	return err;
}

/* Read and verify until EOF; *got = bytes read. want: expected total
 * (UINT64_MAX: any, for RST cases where a prefix is fine). */
static int recv_stream(int fd, uint64_t want, size_t chunk, uint64_t seed, int flags,
		       uint64_t *got, int *end_errno)
{
	size_t bufsz = chunk ? chunk : 256 * 1024;
	uint8_t *buf = malloc(bufsz);
	uint64_t off = 0;
	int64_t bad;

	if (end_errno)
		*end_errno = 0;
	if (!buf)
		FAILF("malloc");
	for (;;) {
		ssize_t n = recv(fd, buf, bufsz, flags);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			__atomic_add_fetch(&spurious_eagain, 1, __ATOMIC_RELAXED);
			if (!wait_fd(fd, POLLIN))
				continue;
			free(buf);
			FAILF("read stalled at %llu of %llu bytes: %s", (unsigned long long)off,
			      (unsigned long long)want, strerror(errno));
		}
		if (n < 0) {
			if (end_errno && want == UINT64_MAX) {
				*end_errno = errno;
				break;
			}
			free(buf);
			FAILF("read at %llu: %s", (unsigned long long)off, strerror(errno));
		}
		if (n == 0)
			break;
		bad = verify(buf, off, n, seed);
		if (bad >= 0) {
			free(buf);
			FAILF("stream corrupt at byte %lld (read of %zd at %llu)", (long long)bad, n,
			      (unsigned long long)off);
		}
		off += n;
		if (want != UINT64_MAX && off > want) {
			free(buf);
			FAILF("%llu bytes arrived, %llu sent", (unsigned long long)off,
			      (unsigned long long)want);
		}
	}
	free(buf);
	*got = off;
	if (want != UINT64_MAX && off != want)
		FAILF("EOF after %llu of %llu bytes", (unsigned long long)off, (unsigned long long)want);
	return 0;
}

/* ---- connection setup ------------------------------------------------ */

static int parse_sa(const char *addr, int port, int family, struct sockaddr_storage *ss,
		    socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;

		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		*len = sizeof(*s);
		return inet_pton(AF_INET, addr, &s->sin_addr) == 1 ? 0 : -1;
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		*len = sizeof(*s);
		return inet_pton(AF_INET6, addr, &s->sin6_addr) == 1 ? 0 : -1;
	}
}

static int join_cgroup(const char *dir)
{
	char path[512], pid[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = snprintf(pid, sizeof(pid), "%d\n", getpid());
	n = write(fd, pid, n) == n ? 0 : -1;
	close(fd);
	return n;
}

static char my_cgroup[512];

static int current_cgroup(void)
{
	char line[600], *p;
	FILE *f = fopen("/proc/self/cgroup", "r");
	char root[256];

	if (!f || cgroup2_mount(root, sizeof(root)))
		return -1;
	my_cgroup[0] = 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			p = strchr(line, '\n');
			if (p)
				*p = 0;
			snprintf(my_cgroup, sizeof(my_cgroup), "%.200s%.300s", root, line + 3);
		}
	fclose(f);
	return my_cgroup[0] ? 0 : -1;
}

/* The listener, created in --server-netns / --server-cgroup if given. */
static int make_listener(int *port_out)
{
	int fam = O.mapped ? AF_INET6 : O.family, fd, one = 1, zero = 0, nsfd = -1, self = -1;
	struct sockaddr_storage ss;
	socklen_t len;
	const char *addr = O.saddr ? O.saddr : fam == AF_INET ? "127.0.0.1" : "::1";

	if (O.mapped && !O.saddr)
		addr = "::";
	if (O.scgroup && (current_cgroup() || join_cgroup(O.scgroup)))
		FAILF("join cgroup %s: %s", O.scgroup, strerror(errno));
	if (O.snetns) {
		char p[256];

		snprintf(p, sizeof(p), "/run/netns/%s", O.snetns);
		self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		nsfd = open(p, O_RDONLY | O_CLOEXEC);
		if (self < 0 || nsfd < 0 || setns(nsfd, CLONE_NEWNET))
			FAILF("enter netns %s: %s", O.snetns, strerror(errno));
	}
	fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fam == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (parse_sa(addr, O.port, fam, &ss, &len) || bind(fd, (struct sockaddr *)&ss, len) ||
	    listen(fd, 4096))
		FAILF("listen on %s port %d: %s", addr, O.port, strerror(errno));
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port_out = ntohs(fam == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port :
					   ((struct sockaddr_in6 *)&ss)->sin6_port);
	if (O.snetns) {
		if (setns(self, CLONE_NEWNET))
			FAILF("back to our netns: %s", strerror(errno));
		close(self);
		close(nsfd);
	}
	if (O.scgroup && join_cgroup(my_cgroup))
		FAILF("back to cgroup %s: %s", my_cgroup, strerror(errno));
	return fd;
}

static int connect_to(int port)
{
	int fam = O.family, fd;
	struct sockaddr_storage ss;
	socklen_t len;
	const char *addr = O.caddr ? O.caddr : O.saddr;

	if (O.mapped)
		fam = AF_INET;
	if (!addr || (O.mapped && !O.caddr))
		addr = fam == AF_INET ? "127.0.0.1" : "::1";
	fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		FAILF("socket: %s", strerror(errno));
	if (parse_sa(addr, O.cport ? O.cport : port, fam, &ss, &len))
		FAILF("bad client address %s", addr);
	set_timeouts(fd);
	if (connect(fd, (struct sockaddr *)&ss, len))
		FAILF("connect to %s port %d: %s", addr, O.cport ? O.cport : port, strerror(errno));
	return fd;
}

/* ---- counters -------------------------------------------------------- */

struct stats {
	__u64	redirect, miss, add, skip, add_fail, busy, pressure, bytes;
};

static int stats_read(struct stats *s)
{
	static int fd = -2;
	struct { __u32 slot; __u64 *v; } t[] = {
		{ FERRY_STAT_SOCKMAP_REDIRECT, &s->redirect }, { FERRY_STAT_SOCKMAP_MISS, &s->miss },
		{ FERRY_STAT_SOCKMAP_ADD, &s->add }, { FERRY_STAT_SOCKMAP_SKIP, &s->skip },
		{ FERRY_STAT_SOCKMAP_ADD_FAIL, &s->add_fail }, { FERRY_STAT_SOCKMAP_BUSY, &s->busy },
		{ FERRY_STAT_SOCKMAP_PRESSURE, &s->pressure }, { FERRY_STAT_SOCKMAP_BYTES, &s->bytes },
	};
	size_t i;

	memset(s, 0, sizeof(*s));
	if (!O.pin)
		return 0;
	if (fd == -2) {
		char p[512];

		snprintf(p, sizeof(p), "%s/%s", O.pin, FERRY_MAP_STATS);
		fd = bpf_obj_get(p);
		if (fd < 0) {
			fprintf(stderr, "sockmap-check: %s: %s\n", p, strerror(errno));
			return -1;
		}
	}
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (percpu_sum(fd, t[i].slot, t[i].v))
			return -1;
	return 0;
}

/* ---- cases ------------------------------------------------------------ */

struct pair {
	int	lfd;		/* listener */
	int	cfd;		/* client end */
	int	sfd;		/* server end (accepted) */
};

typedef int (*side_fn)(int fd);

/* A side that closes its own socket (RST, close) says so here. */
static volatile bool cli_closed, srv_closed;

struct srv_arg {
	side_fn	fn;
	int	fd;
	int	rc;
	char	err[512];
};

static void *srv_thread(void *a)
{
	struct srv_arg *s = a;

	s->rc = s->fn(s->fd);
	if (s->rc) {
		snprintf(s->err, sizeof(s->err), "%s", errbuf);
		shutdown(s->fd, SHUT_RDWR);	/* unblock the client */
	}
	verify_free();
	return NULL;
}

static int open_pair(struct pair *p)
{
	int port;

	p->lfd = make_listener(&port);
	if (p->lfd < 0)
		return -1;
	p->cfd = connect_to(port);
	if (p->cfd < 0)
		return -1;
	p->sfd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (p->sfd < 0)
		FAILF("accept: %s", strerror(errno));
	set_timeouts(p->sfd);
	return 0;
}

/* One connection: client function here, server function in a thread. */
static int run_pair(side_fn cli, side_fn srv)
{
	struct srv_arg s = { .fn = srv };
	struct pair p;
	pthread_t t;
	int rc;

	if (open_pair(&p))
		return -1;
	s.fd = p.sfd;
	pthread_create(&t, NULL, srv_thread, &s);
	rc = cli(p.cfd);
	if (rc)	/* unblock the server side */
		shutdown(p.cfd, SHUT_RDWR);
	pthread_join(t, NULL);
	if (!cli_closed)
		close(p.cfd);
	if (!srv_closed)
		close(p.sfd);
	close(p.lfd);
	if (rc && s.rc) {	/* both sides' view helps */
		size_t l = strlen(errbuf);

		snprintf(errbuf + l, sizeof(errbuf) - l, "; server: %.200s", s.err);
	}
	if (rc)
		return -1;
	if (s.rc)
		FAILF("server: %.400s", s.err);
	return 0;
}

#define SEED_C2S	0x5eed0001ULL
#define SEED_S2C	0x5eed0002ULL

/* Every stream case ends the same way: client shuts down writing, server
 * verifies to EOF and answers with its byte count; the client reads that
 * and EOF. Both directions carry data, so both can be redirected. */
static int srv_verify_ack(int fd, side_fn reader)
{
	char ack[32];
	int n;

	if (reader(fd))
		return -1;
	n = snprintf(ack, sizeof(ack), "%llu", (unsigned long long)O.bytes);
	if (write_all(fd, ack, n, 0))
		FAILF("ack: %s", strerror(errno));
	shutdown(fd, SHUT_WR);
	return 0;
}

static int cli_wait_ack(int fd)
{
	char ack[32] = "", want[32];
	ssize_t n, got = 0;

	for (;;) {
		n = recv(fd, ack + got, sizeof(ack) - 1 - got, 0);
		if (n < 0 && errno == EAGAIN && !wait_fd(fd, POLLIN)) {
			__atomic_add_fetch(&spurious_eagain, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (n <= 0)
			break;
		got += n;
	}
	if (n < 0)
		FAILF("reading the ack: %s", strerror(errno));
	ack[got] = 0;
	snprintf(want, sizeof(want), "%llu", (unsigned long long)O.bytes);
	if (strcmp(ack, want))
		FAILF("ack '%s', expected '%s'", ack, want);
	return 0;
}

static int rd_plain(int fd)
{
	uint64_t got;

	return recv_stream(fd, O.bytes, 0, SEED_C2S, 0, &got, NULL);
}

static int srv_plain(int fd) { return srv_verify_ack(fd, rd_plain); }

/* bulk: varying write sizes, 1 B .. 1 MiB. */
static int cli_bulk(int fd)
{
	if (send_stream(fd, O.bytes, 0, SEED_C2S, 0))
		return -1;
	shutdown(fd, SHUT_WR);
	return cli_wait_ack(fd);
}

/*
 * window: --bytes in 16 KiB writes, never more than 64 KiB unread: the
 * reader grants each window with one byte back. A reader that keeps up, so
 * nothing makes the stream fall back to TCP: every byte must be redirected
 * (--expect stream).
 */
#define WIN_WRITE	(16 * 1024)
#define WIN_SIZE	(64 * 1024)

static int cli_window(int fd)
{
	uint8_t *buf = malloc(WIN_WRITE), credit;
	uint64_t off = 0, end;
	size_t n;

	if (!buf)
		FAILF("malloc");
	while (off < O.bytes) {
		for (end = off + WIN_SIZE < O.bytes ? off + WIN_SIZE : O.bytes; off < end; off += n) {
			n = end - off < WIN_WRITE ? end - off : WIN_WRITE;
			gen(buf, off, n, SEED_C2S);
			if (write_all(fd, buf, n, 0)) {
				free(buf);
				FAILF("send at %llu: %s", (unsigned long long)off, strerror(errno));
			}
		}
		if (read_full(fd, &credit, 1, 0)) {
			free(buf);
			FAILF("no grant after %llu bytes", (unsigned long long)off);
		}
	}
	free(buf);
	shutdown(fd, SHUT_WR);
	return cli_wait_ack(fd);
}

static int rd_window(int fd)
{
	uint8_t *buf = malloc(WIN_SIZE), credit = 1;
	uint64_t off = 0;
	size_t n;

	if (!buf)
		FAILF("malloc");
	for (; off < O.bytes; off += n) {
		n = O.bytes - off < WIN_SIZE ? O.bytes - off : WIN_SIZE;
		if (read_full(fd, buf, n, 0) || verify(buf, off, n, SEED_C2S) >= 0 ||
		    write_all(fd, &credit, 1, 0)) {
			free(buf);
			FAILF("window at %llu: short, corrupt or not granted", (unsigned long long)off);
		}
	}
	free(buf);
	return 0;
}

static int srv_window(int fd) { return srv_verify_ack(fd, rd_window); }

/* large: one send() per 4 MiB. */
static int cli_large(int fd)
{
	if (send_stream(fd, O.bytes, 4 * MIB, SEED_C2S, 0))
		return -1;
	shutdown(fd, SHUT_WR);
	return cli_wait_ack(fd);
}

/* small: many tiny writes (1..16 bytes) without waiting. */
static int cli_small(int fd)
{
	uint8_t buf[16];
	uint64_t off = 0, r = 7;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (off < O.bytes) {
		size_t n;

		r = mix64(r);
		n = 1 + (r & 15);

		if (n > O.bytes - off)
			n = O.bytes - off;
		gen(buf, off, n, SEED_C2S);
		if (write_all(fd, buf, n, 0))
			FAILF("small send at %llu: %s", (unsigned long long)off, strerror(errno));
		off += n;
	}
	shutdown(fd, SHUT_WR);
	return cli_wait_ack(fd);
}

/* cork: MSG_MORE pieces and TCP_CORK on/off around bursts. */
static int cli_cork(int fd)
{
	uint8_t buf[8192];
	uint64_t off = 0, r = 11;
	int on = 1, off_ = 0, i = 0;

	while (off < O.bytes) {
		size_t n;
		int fl;

		r = mix64(r);
		n = 1 + (r % sizeof(buf));
		fl = (r >> 20) & 1 ? MSG_MORE : 0;

		if (n > O.bytes - off)
			n = O.bytes - off;
		if (++i % 64 == 0)
			setsockopt(fd, IPPROTO_TCP, TCP_CORK, (i / 64) & 1 ? &on : &off_, sizeof(int));
		gen(buf, off, n, SEED_C2S);
		if (write_all(fd, buf, n, fl))
			FAILF("corked send at %llu: %s", (unsigned long long)off, strerror(errno));
		off += n;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off_, sizeof(off_));
	shutdown(fd, SHUT_WR);
	return cli_wait_ack(fd);
}

/* sendfile: from a memfd holding the stream. */
static int cli_sendfile(int fd)
{
	int mfd = memfd_create("sockmap-check", MFD_CLOEXEC);
	uint8_t *buf = malloc(MIB);
	uint64_t off = 0;
	off_t pos = 0;

	if (mfd < 0 || !buf)
		FAILF("memfd: %s", strerror(errno));
	for (off = 0; off < O.bytes; off += MIB) {
		size_t n = O.bytes - off < MIB ? O.bytes - off : MIB;

		gen(buf, off, n, SEED_C2S);
		if (write(mfd, buf, n) != (ssize_t)n)
			FAILF("memfd write: %s", strerror(errno));
	}
	free(buf);
	while ((uint64_t)pos < O.bytes) {
		ssize_t n = sendfile(fd, mfd, &pos, O.bytes - pos < 3 * MIB ? O.bytes - pos : 3 * MIB);

		if (n <= 0)
			FAILF("sendfile at %lld: %s", (long long)pos, n ? strerror(errno) : "returned 0");
	}
	close(mfd);
	shutdown(fd, SHUT_WR);
	return cli_wait_ack(fd);
}

/* splice-send: vmsplice into a pipe, splice the pipe into the socket. */
static int cli_splice_send(int fd)
{
	uint8_t *buf = malloc(65536);
	uint64_t off = 0;
	int pp[2];

	if (!buf || pipe2(pp, O_CLOEXEC))
		FAILF("pipe: %s", strerror(errno));
	while (off < O.bytes) {
		size_t n = O.bytes - off < 65536 ? O.bytes - off : 65536;
		ssize_t in, out;

		gen(buf, off, n, SEED_C2S);
		for (in = 0; in < (ssize_t)n;) {
			ssize_t w = write(pp[1], buf + in, n - in);

			if (w <= 0)
				FAILF("pipe write: %s", strerror(errno));
			in += w;
			while (in > 0) {
				out = splice(pp[0], NULL, fd, NULL, in, SPLICE_F_MOVE);
				if (out <= 0)
					FAILF("splice to socket at %llu: %s", (unsigned long long)off,
					      out ? strerror(errno) : "returned 0");
				in -= out;
				n -= out;
				off += out;
			}
			break;
		}
	}
	free(buf);
	close(pp[0]);
	close(pp[1]);
	shutdown(fd, SHUT_WR);
	return cli_wait_ack(fd);
}

/* splice-recv: the server reads through splice(socket -> pipe). */
static int rd_splice(int fd)
{
	uint8_t *buf = malloc(65536);
	uint64_t off = 0;
	int pp[2];

	if (!buf || pipe2(pp, O_CLOEXEC))
		FAILF("pipe: %s", strerror(errno));
	for (;;) {
		ssize_t n = splice(fd, NULL, pp[1], NULL, 65536, SPLICE_F_MOVE);
		ssize_t r, got = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			FAILF("splice from socket at %llu of %llu: %s", (unsigned long long)off,
			      (unsigned long long)O.bytes, strerror(errno));
		if (n == 0)
			break;
		while (got < n) {
			r = read(pp[0], buf, n - got);
			if (r <= 0)
				FAILF("pipe read: %s", strerror(errno));
			if (verify(buf, off, r, SEED_C2S) >= 0)
				FAILF("stream corrupt near byte %llu", (unsigned long long)off);
			off += r, got += r;
		}
	}
	free(buf);
	close(pp[0]);
	close(pp[1]);
	if (off != O.bytes)
		FAILF("EOF after %llu of %llu bytes", (unsigned long long)off,
		      (unsigned long long)O.bytes);
	return 0;
}

static int srv_splice(int fd) { return srv_verify_ack(fd, rd_splice); }

/* peek: MSG_PEEK must show the bytes the next read returns. */
static int rd_peek(int fd)
{
	uint8_t pk[4096], rd[4096];
	uint64_t off = 0;

	while (off < O.bytes) {
		ssize_t p = recv(fd, pk, 1 + (mix64(off) % sizeof(pk)), MSG_PEEK);
		ssize_t r;

		if (p <= 0)
			FAILF("peek at %llu: %s", (unsigned long long)off, p ? strerror(errno) : "EOF");
		if (verify(pk, off, p, SEED_C2S) >= 0)
			FAILF("peeked bytes at %llu are not the stream", (unsigned long long)off);
		r = recv(fd, rd, p, 0);
		if (r <= 0)
			FAILF("read after peek at %llu: %s", (unsigned long long)off,
			      r ? strerror(errno) : "EOF");
		if (r > p || memcmp(pk, rd, r))
			FAILF("read after peek at %llu differs from the peeked bytes",
			      (unsigned long long)off);
		off += r;
	}
	if (recv(fd, rd, 1, 0) != 0)
		FAILF("no EOF after the stream");
	return 0;
}

static int srv_peek(int fd) { return srv_verify_ack(fd, rd_peek); }

/* waitall: MSG_WAITALL must fill the buffer (blocking socket). */
static int rd_waitall(int fd)
{
	uint8_t *buf = malloc(65536);
	uint64_t off = 0;

	if (!buf)
		FAILF("malloc");
	while (off < O.bytes) {
		size_t want = O.bytes - off < 65536 ? O.bytes - off : 65536;
		ssize_t n = recv(fd, buf, want, MSG_WAITALL);

		if (n < 0)
			FAILF("recv(MSG_WAITALL) at %llu: %s", (unsigned long long)off, strerror(errno));
		if ((size_t)n != want)
			FAILF("recv(MSG_WAITALL) returned %zd of %zu bytes at %llu", n, want,
			      (unsigned long long)off);
		if (verify(buf, off, n, SEED_C2S) >= 0)
			FAILF("stream corrupt near byte %llu", (unsigned long long)off);
		off += n;
	}
	free(buf);
	return 0;
}

static int srv_waitall(int fd) { return srv_verify_ack(fd, rd_waitall); }

/* fionread: once data is readable, FIONREAD must not say 0. */
static int rd_fionread(int fd)
{
	uint8_t *buf = malloc(65536);
	uint64_t off = 0;

	if (!buf)
		FAILF("malloc");
	while (off < O.bytes) {
		int avail = -1;
		ssize_t n;

		if (wait_fd(fd, POLLIN))
			FAILF("poll: %s", strerror(errno));
		if (ioctl(fd, FIONREAD, &avail))
			FAILF("FIONREAD: %s", strerror(errno));
		if (avail <= 0)
			FAILF("FIONREAD says %d with data readable at %llu", avail,
			      (unsigned long long)off);
		n = recv(fd, buf, avail < 65536 ? avail : 65536, 0);
		if (n <= 0)
			FAILF("read at %llu: %s", (unsigned long long)off, n ? strerror(errno) : "EOF");
		if (verify(buf, off, n, SEED_C2S) >= 0)
			FAILF("stream corrupt near byte %llu", (unsigned long long)off);
		off += n;
	}
	free(buf);
	return 0;
}

static int srv_fionread(int fd) { return srv_verify_ack(fd, rd_fionread); }

/* halfclose: client -> EOF, then the server answers on the half-open
 * connection and closes; the client reads to EOF. */
static int cli_halfclose(int fd)
{
	uint64_t got;

	if (send_stream(fd, O.bytes, 65536, SEED_C2S, 0))
		return -1;
	if (shutdown(fd, SHUT_WR))
		FAILF("shutdown: %s", strerror(errno));
	if (send(fd, "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
		FAILF("send after shutdown(SHUT_WR) did not fail with EPIPE (%s)", strerror(errno));
	return recv_stream(fd, O.bytes / 2, 0, SEED_S2C, 0, &got, NULL);
}

static int srv_halfclose(int fd)
{
	uint64_t got;

	if (recv_stream(fd, O.bytes, 0, SEED_C2S, 0, &got, NULL))
		return -1;
	if (send_stream(fd, O.bytes / 2, 0, SEED_S2C, 0))
		return -1;
	return close(dup(fd)) ? -1 : shutdown(fd, SHUT_WR);
}

/* rst: client sends, then closes with SO_LINGER 0 (RST). The server must see
 * a correct prefix, then EOF or ECONNRESET; a later write must fail. */
static int cli_rst(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	char c;

	if (send_stream(fd, O.bytes, 65536, SEED_C2S, 0))
		return -1;
	/* wait until the server has read some of it, so the RST races reads */
	if (recv(fd, &c, 1, 0) != 1)
		FAILF("no go-ahead from the server: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	cli_closed = true;
	close(fd);	/* the RST */
	return 0;
}

static int srv_rst(int fd)
{
	uint8_t buf[65536];
	uint64_t got = 0, more;
	int eno, i;

	if (read_full(fd, buf, 1000, 0))
		FAILF("first read: %s", strerror(errno));
	if (verify(buf, 0, 1000, SEED_C2S) >= 0)
		FAILF("stream corrupt in the first 1000 bytes");
	if (write_all(fd, "g", 1, 0))
		FAILF("go-ahead: %s", strerror(errno));
	/* the rest: any prefix of the stream, then EOF or ECONNRESET */
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && !wait_fd(fd, POLLIN)) {
			__atomic_add_fetch(&spurious_eagain, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (n < 0) {
			eno = errno;
			if (eno != ECONNRESET)
				FAILF("read after RST at %llu: %s", (unsigned long long)(1000 + got),
				      strerror(eno));
			break;
		}
		if (n == 0)
			break;
		if (verify(buf, 1000 + got, n, SEED_C2S) >= 0)
			FAILF("stream corrupt near byte %llu", (unsigned long long)(1000 + got));
		got += n;
	}
	if (1000 + got > O.bytes)
		FAILF("more bytes than were sent");
	/* writing to a reset connection fails (EPIPE or ECONNRESET) */
	for (i = 0, more = 0; i < 1000; i++) {
		if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) < 0) {
			if (errno != EPIPE && errno != ECONNRESET)
				FAILF("write after RST: %s", strerror(errno));
			return 0;
		}
		more += sizeof(buf);
	}
	FAILF("%llu bytes written to a reset connection without an error",
	      (unsigned long long)more);
}

/* peerclose: the server closes without reading everything; the client's
 * writes must start failing (EPIPE/ECONNRESET), not vanish silently. */
static int cli_peerclose(int fd)
{
	uint8_t buf[65536];
	uint64_t sent = 0;
	char c;

	gen(buf, 0, sizeof(buf), SEED_C2S);
	if (write_all(fd, buf, sizeof(buf), 0))
		FAILF("send: %s", strerror(errno));
	if (recv(fd, &c, 1, 0) != 0)	/* the server has closed */
		FAILF("expected EOF from the closing server");
	while (sent < 256ULL * MIB) {
		if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) < 0) {
			if (errno != EPIPE && errno != ECONNRESET)
				FAILF("write to a closed peer: %s", strerror(errno));
			return 0;
		}
		sent += sizeof(buf);
	}
	FAILF("%llu bytes written to a closed peer without an error", (unsigned long long)sent);
}

static int srv_peerclose(int fd)
{
	uint8_t buf[1000];

	if (read_full(fd, buf, sizeof(buf), 0))
		FAILF("read: %s", strerror(errno));
	srv_closed = true;
	close(fd);	/* with unread bytes */
	return 0;
}

/* nonblock: both ends O_NONBLOCK; the writer must meet EAGAIN (the reader
 * starts late) and lose nothing around it; the reader is an edge-triggered
 * epoll loop that reads until EAGAIN. */
static volatile int nb_eagain;

static int cli_nonblock(int fd)
{
	uint8_t *buf = malloc(MIB);
	uint64_t off = 0, r = 3;

	if (!buf)
		FAILF("malloc");
	set_nonblock(fd, true);
	while (off < O.bytes) {
		size_t n;
		ssize_t w;

		r = mix64(r);
		n = 1 + (r % (r & 1 ? 4096 : MIB));

		if (n > O.bytes - off)
			n = O.bytes - off;
		gen(buf, off, n, SEED_C2S);
		w = send(fd, buf, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN) {
			nb_eagain++;
			if (wait_fd(fd, POLLOUT))
				FAILF("no POLLOUT after EAGAIN at %llu: %s", (unsigned long long)off,
				      strerror(errno));
			continue;
		}
		if (w < 0)
			FAILF("send at %llu: %s", (unsigned long long)off, strerror(errno));
		off += w;	/* a short write is fine: the rest goes next */
	}
	free(buf);
	shutdown(fd, SHUT_WR);
	set_nonblock(fd, false);
	if (cli_wait_ack(fd))
		return -1;
	if (!nb_eagain)
		FAILF("the writer never saw EAGAIN: no backpressure");
	return 0;
}

static int rd_epoll_et(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET | EPOLLRDHUP }, out;
	uint8_t *buf = malloc(65536);
	uint64_t off = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC), n;
	bool eof = false;

	if (!buf || ep < 0)
		FAILF("epoll: %s", strerror(errno));
	/* start late so the writer fills everything it may */
	while (!nb_eagain) {
		struct timespec ts = { 0, 1000000 };

		if (!O.bytes)
			break;
		nanosleep(&ts, NULL);	/* waits for the writer's EAGAIN, polled */
	}
	set_nonblock(fd, true);
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	while (!eof) {
		n = epoll_wait(ep, &out, 1, IO_TIMEOUT_S * 1000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			FAILF("epoll: no event at %llu of %llu bytes (edge lost?)",
			      (unsigned long long)off, (unsigned long long)O.bytes);
		for (;;) {	/* edge-triggered: drain until EAGAIN */
			ssize_t r = recv(fd, buf, 65536, 0);

			if (r < 0 && errno == EAGAIN)
				break;
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				FAILF("read at %llu: %s", (unsigned long long)off, strerror(errno));
			if (r == 0) {
				eof = true;
				break;
			}
			if (verify(buf, off, r, SEED_C2S) >= 0)
				FAILF("stream corrupt near byte %llu", (unsigned long long)off);
			off += r;
		}
	}
	free(buf);
	close(ep);
	set_nonblock(fd, false);
	if (off != O.bytes)
		FAILF("EOF after %llu of %llu bytes", (unsigned long long)off,
		      (unsigned long long)O.bytes);
	return 0;
}

static int srv_nonblock(int fd) { return srv_verify_ack(fd, rd_epoll_et); }

/* slowreader: the reader does not read; a non-blocking writer must hit
 * EAGAIN after what the socket buffers allow (memory stays bounded), then
 * everything arrives once the reader reads. */
static volatile int slow_go;
static volatile long long slow_written, slow_queued, slow_limit;

static int cli_slow(int fd)
{
	uint8_t *buf = malloc(65536);
	uint64_t off = 0, cap = 1024ULL * MIB;
	int sndbuf = 0;
	socklen_t l = sizeof(int);

	if (!buf)
		FAILF("malloc");
	set_nonblock(fd, true);
	for (;;) {
		ssize_t w;

		gen(buf, off, 65536, SEED_C2S);
		w = send(fd, buf, 65536, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0)
			FAILF("send at %llu: %s", (unsigned long long)off, strerror(errno));
		off += w;
		if (off > cap)
			FAILF("%llu bytes accepted with nobody reading: no backpressure",
			      (unsigned long long)off);
	}
	getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &l);
	slow_written = off;
	slow_limit += sndbuf;
	__atomic_store_n(&slow_go, 1, __ATOMIC_SEQ_CST);
	set_nonblock(fd, false);
	/* then send the rest of O.bytes normally (blocking) */
	while (off < O.bytes) {
		size_t n = O.bytes - off < 65536 ? O.bytes - off : 65536;

		gen(buf, off, n, SEED_C2S);
		if (write_all(fd, buf, n, 0))
			FAILF("send at %llu: %s", (unsigned long long)off, strerror(errno));
		off += n;
	}
	free(buf);
	shutdown(fd, SHUT_WR);
	if (off != O.bytes) {
		O.bytes = off;	/* the stall went past O.bytes: ack what was sent */
	}
	return cli_wait_ack(fd);
}

static int rd_slow(int fd)
{
	__u32 mi[SK_MEMINFO_VARS] = {};
	socklen_t l = sizeof(mi);
	int rcvbuf = 0;
	socklen_t rl = sizeof(int);
	uint64_t got;

	while (!__atomic_load_n(&slow_go, __ATOMIC_SEQ_CST)) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);	/* polls the writer's state */
	}
	if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &l))
		FAILF("SO_MEMINFO: %s", strerror(errno));
	getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &rl);
	slow_queued = mi[SK_MEMINFO_RMEM_ALLOC];
	slow_limit += rcvbuf;
	if (O.bytes < (uint64_t)slow_written)
		O.bytes = slow_written;
	return recv_stream(fd, O.bytes, 0, SEED_C2S, 0, &got, NULL);
}

static int srv_slow(int fd) { return srv_verify_ack(fd, rd_slow); }

static bool stdin_ready(void)	/* a line or EOF waits on stdin */
{
	struct pollfd p = { .fd = 0, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static long rr_before, rr_after;	/* --loop: round trips before / after the release */

/* rr: request/response with sizes 1 B .. 64 KiB, each answer checked.
 * --loop: a 0-length request tells the server the run is over. */
static int cli_rr(int fd)
{
	uint8_t *q = malloc(65536), *a = malloc(65536);
	uint64_t r = 5;
	bool released = false;
	long i;

	if (!q || !a)
		FAILF("malloc");
	for (i = 0;; i++) {
		uint32_t n;

		if (O.loop && !released && i >= O.iters && stdin_ready()) {
			released = true;	/* --iters more from here */
			rr_before = i;
		}
		if (O.loop ? released && i >= rr_before + O.iters : i >= O.iters)
			break;

		r = mix64(r);
		n = 1 + (r % (r & 1 ? 64 : 65536));

		gen(q, (uint64_t)i << 20, n, SEED_C2S);
		if (write_all(fd, &n, 4, 0) || write_all(fd, q, n, 0))
			FAILF("request %ld: %s", i, strerror(errno));
		if (read_full(fd, a, n, 0))
			FAILF("response %ld: %s", i, strerror(errno));
		if (verify(a, (uint64_t)i << 20, n, SEED_S2C) >= 0)
			FAILF("response %ld corrupt", i);
		if (O.ready && i == (O.loop ? O.iters - 1 : 1000))
			close(open(O.ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	}
	if (O.loop) {
		uint32_t stop = 0;

		rr_after = i - rr_before;
		if (write_all(fd, &stop, 4, 0))
			FAILF("end of run: %s", strerror(errno));
	}
	free(q);
	free(a);
	return 0;
}

static int srv_rr(int fd)
{
	uint8_t *q = malloc(65536);
	long i;

	if (!q)
		FAILF("malloc");
	for (i = 0; O.loop || i < O.iters; i++) {
		uint32_t n;

		if (read_full(fd, &n, 4, 0))
			FAILF("request %ld: %s", i, strerror(errno));
		if (O.loop && n == 0)
			break;
		if (n > 65536 || read_full(fd, q, n, 0))
			FAILF("request %ld: %s", i, strerror(errno));
		if (verify(q, (uint64_t)i << 20, n, SEED_C2S) >= 0)
			FAILF("request %ld corrupt", i);
		gen(q, (uint64_t)i << 20, n, SEED_S2C);
		if (write_all(fd, q, n, 0))
			FAILF("response %ld: %s", i, strerror(errno));
	}
	free(q);
	return 0;
}

/* conc: O.conns connections open at once, each carrying its own message
 * both ways, driven by one epoll loop per side. */
#define CONC_MSG	100

struct cconn {
	int	fd;
	uint32_t id;
	uint32_t done;	/* bytes of the answer read (client) / request read (server) */
	uint8_t	buf[CONC_MSG];
};

static void raise_nofile(int n)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)n) {
		rl.rlim_cur = n;
		if (rl.rlim_max < (rlim_t)n)
			rl.rlim_max = n;	/* root may raise the hard limit */
		if (setrlimit(RLIMIT_NOFILE, &rl))
			fprintf(stderr, "sockmap-check: RLIMIT_NOFILE %d: %s\n", n, strerror(errno));
	}
}

struct conc_srv {
	int	lfd;
	int	n;
	int	rc;
	char	err[512];
};

static int conc_server(struct conc_srv *cs)
{
	struct cconn *c = calloc(cs->n, sizeof(*c));
	struct epoll_event ev, evs[256];
	int ep = epoll_create1(EPOLL_CLOEXEC), accepted = 0, finished = 0, i, n;

	if (!c || ep < 0)
		FAILF("epoll: %s", strerror(errno));
	set_nonblock(cs->lfd, true);
	ev.events = EPOLLIN;
	ev.data.u64 = UINT64_MAX;
	epoll_ctl(ep, EPOLL_CTL_ADD, cs->lfd, &ev);
	while (finished < cs->n) {
		n = epoll_wait(ep, evs, 256, IO_TIMEOUT_S * 1000);
		if (n <= 0)
			FAILF("server stalled: %d accepted, %d answered of %d", accepted, finished,
			      cs->n);
		for (i = 0; i < n; i++) {
			if (evs[i].data.u64 == UINT64_MAX) {
				int fd;

				while (accepted < cs->n &&
				       (fd = accept4(cs->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					c[accepted].fd = fd;
					ev.events = EPOLLIN;
					ev.data.u64 = accepted;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
					accepted++;
				}
				continue;
			}
			struct cconn *k = &c[evs[i].data.u64];
			ssize_t r = recv(k->fd, k->buf + k->done, CONC_MSG - k->done, 0);

			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0)
				FAILF("server read: %s", r ? strerror(errno) : "early EOF");
			k->done += r;
			if (k->done == CONC_MSG) {
				uint8_t out[CONC_MSG];

				memcpy(&k->id, k->buf, 4);
				if (k->id >= (uint32_t)cs->n ||
				    verify(k->buf + 4, 4, CONC_MSG - 4, SEED_C2S ^ k->id) >= 0)
					FAILF("request on connection %d corrupt", (int)evs[i].data.u64);
				gen(out, 0, CONC_MSG, SEED_S2C ^ k->id);
				if (write_all(k->fd, out, CONC_MSG, 0))
					FAILF("server write: %s", strerror(errno));
				finished++;
			}
		}
	}
	/* hold everything open until the client has read all answers */
	for (i = 0; i < accepted; i++) {
		char x;

		set_nonblock(c[i].fd, false);
		if (recv(c[i].fd, &x, 1, 0) != 0)
			FAILF("connection %d: expected EOF", i);
		close(c[i].fd);
	}
	close(ep);
	free(c);
	return 0;
}

/* The server runs in a child process: 10,000 connections need 20,000
 * descriptors, more than one process may have here. */
static int run_conc(void)
{
	struct conc_srv cs = { .n = O.conns };
	struct cconn *c = calloc(O.conns, sizeof(*c));
	struct epoll_event ev, evs[256];
	int port, ep, fin = 0, i, n, rc = 0, pp[2], st;
	char srv_err[512] = "";
	pid_t pid;

	raise_nofile(O.conns + 64);
	if (!c || pipe2(pp, O_CLOEXEC))
		FAILF("setup: %s", strerror(errno));
	cs.lfd = make_listener(&port);
	if (cs.lfd < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		FAILF("fork: %s", strerror(errno));
	if (pid == 0) {
		close(pp[0]);
		rc = conc_server(&cs);
		if (rc && write(pp[1], errbuf, strlen(errbuf)) < 0)
			_exit(1);
		_exit(rc ? 1 : 0);
	}
	close(pp[1]);
	close(cs.lfd);
	ep = epoll_create1(EPOLL_CLOEXEC);
	/* connect everything first: all O.conns are open at once */
	for (i = 0; i < O.conns; i++) {
		c[i].fd = connect_to(port);
		if (c[i].fd < 0) {
			size_t l = strlen(errbuf);

			rc = -1;
			snprintf(errbuf + l, sizeof(errbuf) - l, " (connection %d)", i);
			break;
		}
		c[i].id = i;
	}
	for (i = 0; !rc && i < O.conns; i++) {
		uint8_t msg[CONC_MSG];

		memcpy(msg, &c[i].id, 4);
		gen(msg + 4, 4, CONC_MSG - 4, SEED_C2S ^ c[i].id);
		if (write_all(c[i].fd, msg, CONC_MSG, 0)) {
			rc = -1;
			snprintf(errbuf, sizeof(errbuf), "client write %d: %s", i, strerror(errno));
		}
		set_nonblock(c[i].fd, true);
		ev.events = EPOLLIN;
		ev.data.u64 = i;
		epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
	}
	while (!rc && fin < O.conns) {
		n = epoll_wait(ep, evs, 256, IO_TIMEOUT_S * 1000);
		if (n <= 0) {
			rc = -1;
			snprintf(errbuf, sizeof(errbuf), "client stalled: %d of %d answers", fin, O.conns);
			break;
		}
		for (i = 0; i < n && !rc; i++) {
			struct cconn *k = &c[evs[i].data.u64];
			uint8_t buf[CONC_MSG];
			ssize_t r = recv(k->fd, buf, CONC_MSG - k->done, 0);

			if (r < 0 && errno == EAGAIN)
				continue;
			if (r <= 0) {
				rc = -1;
				snprintf(errbuf, sizeof(errbuf), "client read: %s",
					 r ? strerror(errno) : "early EOF");
				break;
			}
			if (verify(buf, k->done, r, SEED_S2C ^ k->id) >= 0) {
				rc = -1;
				snprintf(errbuf, sizeof(errbuf), "answer of connection %u corrupt", k->id);
				break;
			}
			k->done += r;
			if (k->done == CONC_MSG)
				fin++;
		}
	}
	for (i = 0; i < O.conns; i++)
		if (c[i].fd > 0)
			close(c[i].fd);
	if (rc)
		kill(pid, SIGTERM);
	n = read(pp[0], srv_err, sizeof(srv_err) - 1);
	srv_err[n > 0 ? n : 0] = 0;
	waitpid(pid, &st, 0);
	close(pp[0]);
	close(ep);
	free(c);
	if (!rc && (!WIFEXITED(st) || WEXITSTATUS(st))) {
		snprintf(errbuf, sizeof(errbuf), "server: %.400s", srv_err[0] ? srv_err : "died");
		rc = -1;
	}
	return rc;
}

/* ---- benchmarks -------------------------------------------------------- */

static int bench_pair(int *a, int *b)
{
	struct pair p;
	int sv[2];

	if (O.unix_) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			FAILF("socketpair: %s", strerror(errno));
		*a = sv[0];
		*b = sv[1];
		return 0;
	}
	if (open_pair(&p))
		return -1;
	close(p.lfd);
	*a = p.cfd;
	*b = p.sfd;
	return 0;
}

static int echo_side(int fd)
{
	uint8_t *buf = malloc(O.size);
	long i;

	for (i = 0; i < O.iters + 1000; i++) {
		if (read_full(fd, buf, O.size, 0))
			return i < O.iters ? -1 : 0;
		if (write_all(fd, buf, O.size, 0))
			return -1;
	}
	free(buf);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* perf-rr: --size bytes each way, --iters round trips (after 1000 warm-up). */
static int run_perf_rr(void)
{
	struct srv_arg s = { .fn = echo_side };
	uint64_t *lat = calloc(O.iters, sizeof(*lat));
	uint8_t *buf = malloc(O.size);
	struct stats a, b;
	int cfd, sfd, one = 1;
	pthread_t t;
	long i;

	if (!lat || !buf || bench_pair(&cfd, &sfd))
		return -1;
	if (!O.unix_) {
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	s.fd = sfd;
	memset(buf, 0xab, O.size);
	pthread_create(&t, NULL, srv_thread, &s);
	stats_read(&a);
	for (i = -1000; i < O.iters; i++) {
		uint64_t t0 = now_ns();

		if (write_all(cfd, buf, O.size, 0) || read_full(cfd, buf, O.size, 0))
			FAILF("round trip %ld: %s", i, strerror(errno));
		if (i >= 0)
			lat[i] = now_ns() - t0;
	}
	stats_read(&b);
	shutdown(cfd, SHUT_RDWR);
	pthread_join(t, NULL);
	close(cfd);
	close(sfd);
	if (s.rc)	/* the echo side saw what the client did not */
		FAILF("echo side: %.480s", s.err);
	qsort(lat, O.iters, sizeof(*lat), cmp_u64);
	printf("rr size=%zu iters=%ld p50_us=%.1f p99_us=%.1f redirect=%llu\n", O.size, O.iters,
	       lat[O.iters / 2] / 1000.0, lat[O.iters * 99 / 100] / 1000.0,
	       (unsigned long long)(b.redirect - a.redirect));
	free(lat);
	free(buf);
	return 0;
}

static uint64_t stream_rx_ns;
static __u32 stream_max_queued;	/* the reader's sk_rmem_alloc, sampled */

static int sink_side(int fd)
{
	size_t bufsz = O.size > 256 * 1024 ? O.size : 256 * 1024;
	uint8_t *buf = malloc(bufsz);
	uint64_t got = 0, reads = 0;
	ssize_t n;

	while ((n = recv(fd, buf, bufsz, 0)) > 0) {
		got += n;
		if (!O.unix_ && !(++reads & 63)) {
			__u32 mi[SK_MEMINFO_VARS];
			socklen_t l = sizeof(mi);

			if (!getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &l) &&
			    mi[SK_MEMINFO_RMEM_ALLOC] > stream_max_queued)
				stream_max_queued = mi[SK_MEMINFO_RMEM_ALLOC];
		}
	}
	stream_rx_ns = now_ns();
	free(buf);
	if (got != O.bytes)
		FAILF("sink got %llu of %llu", (unsigned long long)got, (unsigned long long)O.bytes);
	return 0;
}

/* perf-stream: --bytes in writes of --size. */
static int run_perf_stream(void)
{
	struct srv_arg s = { .fn = sink_side };
	uint8_t *buf = malloc(O.size);
	struct stats a, b;
	uint64_t off = 0, t0;
	int cfd, sfd;
	pthread_t t;

	if (!buf || bench_pair(&cfd, &sfd))
		return -1;
	memset(buf, 0xcd, O.size);
	s.fd = sfd;
	pthread_create(&t, NULL, srv_thread, &s);
	stats_read(&a);
	t0 = now_ns();
	while (off < O.bytes) {
		size_t n = O.bytes - off < O.size ? O.bytes - off : O.size;

		if (write_all(cfd, buf, n, 0))
			FAILF("write: %s", strerror(errno));
		off += n;
	}
	shutdown(cfd, SHUT_WR);
	pthread_join(t, NULL);
	stats_read(&b);
	close(cfd);
	close(sfd);
	if (s.rc)
		FAILF("%s", s.err);
	printf("stream size=%zu bytes=%llu MBps=%.0f max_queued=%u redirect_bytes=%llu pressure=%llu busy=%llu\n",
	       O.size, (unsigned long long)O.bytes,
	       O.bytes / ((stream_rx_ns - t0) / 1e9) / 1e6, stream_max_queued,
	       (unsigned long long)(b.bytes - a.bytes), (unsigned long long)(b.pressure - a.pressure),
	       (unsigned long long)(b.busy - a.busy));
	free(buf);
	return 0;
}

/* ---- main ----------------------------------------------------------------- */

static int run_stream_case(void);

struct case_def {
	const char *name;
	side_fn	cli, srv;
	int	(*run)(void);
	const char *what;
};

static const struct case_def CASES[] = {
	{ "bulk", cli_bulk, srv_plain, NULL, "--bytes in writes of 1 B..1 MiB" },
	{ "large", cli_large, srv_plain, NULL, "--bytes in 4 MiB writes" },
	{ "window", cli_window, srv_window, NULL, "--bytes in 16 KiB writes, 64 KiB granted at a time" },
	{ "small", cli_small, srv_plain, NULL, "--bytes in 1..16 B writes, TCP_NODELAY" },
	{ "cork", cli_cork, srv_plain, NULL, "MSG_MORE and TCP_CORK" },
	{ "sendfile", cli_sendfile, srv_plain, NULL, "sendfile() from a memfd" },
	{ "splice-send", cli_splice_send, srv_plain, NULL, "pipe -> socket splice()" },
	{ "splice-recv", cli_bulk, srv_splice, NULL, "socket -> pipe splice() reader" },
	{ "peek", cli_bulk, srv_peek, NULL, "MSG_PEEK before every read" },
	{ "waitall", cli_bulk, srv_waitall, NULL, "MSG_WAITALL reader" },
	{ "fionread", cli_bulk, srv_fionread, NULL, "FIONREAD before every read" },
	{ "halfclose", cli_halfclose, srv_halfclose, NULL, "shutdown(SHUT_WR), answer after EOF" },
	{ "rst", cli_rst, srv_rst, NULL, "SO_LINGER 0 close (RST) mid-stream" },
	{ "peerclose", cli_peerclose, srv_peerclose, NULL, "writes to a closed peer fail" },
	{ "nonblock", cli_nonblock, srv_nonblock, NULL, "O_NONBLOCK writer with EAGAIN, epoll ET reader" },
	{ "slowreader", cli_slow, srv_slow, NULL, "writer bounded while nobody reads" },
	{ "rr", cli_rr, srv_rr, NULL, "--iters request/response, 1 B..64 KiB" },
	{ "conc", NULL, NULL, run_conc, "--conns connections open at once" },
	{ "perf-rr", NULL, NULL, run_perf_rr, "benchmark: --size, --iters" },
	{ "perf-stream", NULL, NULL, run_perf_stream, "benchmark: --size, --bytes" },
};

static const struct case_def *the_case;

static int run_stream_case(void)
{
	return run_pair(the_case->cli, the_case->srv);
}

static void on_alarm(int sig)
{
	static const char msg[] = "sockmap-check: watchdog: the case hung\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(3);
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: sockmap-check [-4|-6|--mapped] [--server ADDR] [--connect ADDR] [--port N]\n"
		   "         [--connect-port N] [--server-netns NAME] [--client-netns NAME]\n"
		   "         [--server-cgroup DIR] [--strict] [--ready-file PATH] [--loop]\n"
		   "         [--pin DIR --expect fast|stream|slow|any] [--bytes N] [--size N] [--iters N]\n"
		   "         [--conns N] [--unix] [--watchdog S] CASE\ncases:\n");
	for (i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++)
		fprintf(f, "  %-12s %s\n", CASES[i].name, CASES[i].what);
}

int main(int argc, char **argv)
{
	struct stats a, b;
	int i, rc;
	size_t k;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

#define ARG(name) (!strcmp(argv[i], name) && v && ++i)
		if (!strcmp(argv[i], "-4"))
			O.family = AF_INET;
		else if (!strcmp(argv[i], "-6"))
			O.family = AF_INET6;
		else if (!strcmp(argv[i], "--mapped"))
			O.mapped = true;
		else if (!strcmp(argv[i], "--unix"))
			O.unix_ = true;
		else if (ARG("--server"))
			O.saddr = v;
		else if (ARG("--connect"))
			O.caddr = v;
		else if (ARG("--port"))
			O.port = atoi(v);
		else if (ARG("--connect-port"))
			O.cport = atoi(v);
		else if (ARG("--server-netns"))
			O.snetns = v;
		else if (ARG("--client-netns"))
			O.cnetns = v;
		else if (!strcmp(argv[i], "--strict"))
			O.strict = true;
		else if (!strcmp(argv[i], "--loop"))
			O.loop = true;
		else if (ARG("--ready-file"))
			O.ready = v;
		else if (ARG("--server-cgroup"))
			O.scgroup = v;
		else if (ARG("--pin"))
			O.pin = v;
		else if (ARG("--expect"))
			O.expect = v;
		else if (ARG("--bytes"))
			O.bytes = strtoull(v, NULL, 0);
		else if (ARG("--size"))
			O.size = strtoull(v, NULL, 0);
		else if (ARG("--iters"))
			O.iters = atol(v);
		else if (ARG("--conns"))
			O.conns = atoi(v);
		else if (ARG("--watchdog"))
			O.watchdog = atoi(v);
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] != '-' && !O.cs)
			O.cs = argv[i];
		else {
			usage(stderr);
			return 2;
		}
	}
	for (k = 0; O.cs && k < sizeof(CASES) / sizeof(CASES[0]); k++)
		if (!strcmp(CASES[k].name, O.cs))
			the_case = &CASES[k];
	if (!the_case || O.size < 1 || O.iters < 1 || (O.loop && strcmp(O.cs, "rr"))) {
		usage(stderr);
		return 2;
	}
	if (O.cnetns) {	/* setns, not `ip netns exec`: keeps /sys/fs/bpf */
		char p[256];
		int nsfd;

		snprintf(p, sizeof(p), "/run/netns/%s", O.cnetns);
		nsfd = open(p, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0 || setns(nsfd, CLONE_NEWNET)) {
			fprintf(stderr, "sockmap-check: netns %s: %s\n", O.cnetns, strerror(errno));
			return 1;
		}
		close(nsfd);
	}
	signal(SIGALRM, on_alarm);
	alarm(O.watchdog);
	if (stats_read(&a))
		return 1;
	rc = the_case->run ? the_case->run() : run_stream_case();
	if (rc) {
		printf("sockmap-check %s: %s\n", O.cs, errbuf);
		return 1;
	}
	if (O.loop)
		printf("rr before=%ld after=%ld\n", rr_before, rr_after);
	if (stats_read(&b))
		return 1;
	if (!strcmp(O.cs, "slowreader")) {
		printf("slowreader written=%lld queued=%lld limit=%lld\n", slow_written, slow_queued,
		       slow_limit);
		/* What may sit between the two: both socket buffers (as TCP),
		 * plus one message in flight (at most the 64 KiB written). */
		if (slow_written > 2 * slow_limit + 65536) {
			printf("sockmap-check %s: %lld bytes accepted with nobody reading, buffers %lld\n",
			       O.cs, slow_written, slow_limit);
			return 1;
		}
	}
	if (O.strict && spurious_eagain) {
		printf("sockmap-check %s: %ld EAGAIN from blocking sockets\n", O.cs, spurious_eagain);
		return 1;
	}
	if (O.pin) {
		printf("stats redirect=%llu bytes=%llu miss=%llu busy=%llu pressure=%llu add=%llu "
		       "skip=%llu add_fail=%llu eagain=%ld\n",
		       (unsigned long long)(b.redirect - a.redirect), (unsigned long long)(b.bytes - a.bytes),
		       (unsigned long long)(b.miss - a.miss), (unsigned long long)(b.busy - a.busy),
		       (unsigned long long)(b.pressure - a.pressure), (unsigned long long)(b.add - a.add),
		       (unsigned long long)(b.skip - a.skip), (unsigned long long)(b.add_fail - a.add_fail),
		       spurious_eagain);
		/* stream: the client's --bytes all went socket to socket. */
		if (!strcmp(O.expect, "stream") && b.bytes - a.bytes < O.bytes) {
			printf("sockmap-check %s: %llu of %llu bytes redirected (expected all)\n", O.cs,
			       (unsigned long long)(b.bytes - a.bytes), (unsigned long long)O.bytes);
			return 1;
		}
		if (!strcmp(O.expect, "fast") && b.bytes == a.bytes) {
			printf("sockmap-check %s: nothing was redirected (expected the fast path)\n", O.cs);
			return 1;
		}
		if (!strcmp(O.expect, "slow") && b.redirect != a.redirect) {
			printf("sockmap-check %s: %llu messages redirected (expected the normal path)\n",
			       O.cs, (unsigned long long)(b.redirect - a.redirect));
			return 1;
		}
	}
	return 0;
}
