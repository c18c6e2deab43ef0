// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ferry-traffic: the traffic end of the integration tests.
 *
 *   ferry-traffic serve ADDR:PORT [ADDR:PORT...] [--udp] [--timeout S]
 *	Listen on every endpoint (TCP; UDP too with --udp). A TCP accept gets
 *	"ADDR:PORT\n" (the endpoint's identity), then everything it sends is
 *	echoed until it closes; a UDP datagram gets the identity back. Prints
 *	"ready" once everything listens. Exits by itself after --timeout
 *	seconds (default 120).
 *
 *   ferry-traffic connect VIP:PORT [-n N] [--udp | --connected-udp] [--hold]
 *			   [--loop] [--bind ADDR] [-j] [--timeout S]
 *	N connections (or datagrams) to VIP:PORT, each reading the identity of
 *	the backend that answered. Checks that getpeername() (TCP, connected
 *	UDP) or recvfrom()'s source (unconnected UDP) is VIP:PORT. Prints one
 *	"ADDR:PORT COUNT" line per backend, "errors N", "peer_mismatch N" and
 *	"errno NAME N" per failure kind; -j prints one JSON object instead.
 *	--hold keeps the TCP connections open: after the report it prints
 *	"held N", waits for a line (or EOF) on stdin, then checks every held
 *	connection still echoes and prints "alive N" and "dead N".
 *	--loop connects until a line (or EOF) arrives on stdin, then N more;
 *	it prints "looping" after the first one.
 *	--bind ADDR binds each socket to ADDR first (a distinct client for
 *	maglev affinity).
 *
 * IPv6 endpoints as [addr]:port. Exit 0 when the run completed (the counts
 * say how it went), 2 on usage errors, 3 on the overall timeout.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "addr.h"

#define MAX_EPS		64
#define MAX_IDS		256
#define MAX_ERRNO	160
#define MAX_HELD	4096
#define IO_TIMEOUT_S	3

struct ep {
	struct sockaddr_storage ss;
	socklen_t len;
	char	id[80];		/* "ADDR:PORT" or "[ADDR]:PORT" */
};

static void usage(void)
{
	fprintf(stderr,
		"usage: ferry-traffic serve ADDR:PORT [ADDR:PORT...] [--udp] [--timeout S]\n"
		"       ferry-traffic connect VIP:PORT [-n N] [--udp|--connected-udp] [--hold] [--loop]\n"
		"                     [--bind ADDR] [-j] [--timeout S]\n");
	exit(2);
}

static void on_alarm(int sig)
{
	static const char msg[] = "ferry-traffic: overall timeout\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(3);
}

static void set_timeout(long s)
{
	signal(SIGALRM, on_alarm);
	alarm(s);
}

static void ep_id(const struct sockaddr *sa, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s4->sin_port));
	}
}

/* bare: s is an address without a port (port 0, for --bind). */
static int ep_parse(const char *s, struct ep *e, bool bare)
{
	struct faddr a;
	int port = 0;

	memset(e, 0, sizeof(*e));
	if (bare ? faddr_parse(s, &a) : endpoint_parse(s, &a, &port, NULL))
		return -EINVAL;
	if (a.family == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)&e->ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a.a, 16);
		s6->sin6_port = htons(port);
		e->len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (void *)&e->ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = a.a[0];
		s4->sin_port = htons(port);
		e->len = sizeof(*s4);
	}
	ep_id((struct sockaddr *)&e->ss, e->id, sizeof(e->id));
	return 0;
}

static bool sa_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
	}
	{
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
}

/* ---- serve ---- */

enum { T_LISTEN = 1, T_UDP = 2, T_CONN = 3 };

#define TAG(type, idx, fd) (((__u64)(type) << 56) | ((__u64)(idx) << 32) | (__u32)(fd))

static int serve(int argc, char **argv)
{
	struct ep eps[MAX_EPS];
	int neps = 0, i, epfd, one = 1;
	long timeout = 120;
	bool udp = false;
	time_t deadline;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--udp"))
			udp = true;
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = atol(argv[++i]);
		else if (neps < MAX_EPS && !ep_parse(argv[i], &eps[neps], false))
			neps++;
		else {
			fprintf(stderr, "serve: bad endpoint '%s'\n", argv[i]);
			usage();
		}
	}
	if (!neps || timeout <= 0)
		usage();
	set_timeout(timeout + 1);
	deadline = time(NULL) + timeout;
	signal(SIGPIPE, SIG_IGN);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		perror("epoll_create1");
		return 1;
	}
	for (i = 0; i < neps; i++) {
		int types[2] = { SOCK_STREAM, SOCK_DGRAM }, t;

		for (t = 0; t < (udp ? 2 : 1); t++) {
			struct epoll_event ev = { .events = EPOLLIN };
			int fd = socket(eps[i].ss.ss_family, types[t] | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

			if (fd < 0) {
				perror("socket");
				return 1;
			}
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (eps[i].ss.ss_family == AF_INET6)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
			if (bind(fd, (struct sockaddr *)&eps[i].ss, eps[i].len)) {
				fprintf(stderr, "serve: bind %s/%s: %s\n", eps[i].id, t ? "udp" : "tcp", strerror(errno));
				return 1;
			}
			if (!t && listen(fd, 1024)) {
				perror("listen");
				return 1;
			}
			ev.data.u64 = TAG(t ? T_UDP : T_LISTEN, i, fd);
			if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)) {
				perror("epoll_ctl");
				return 1;
			}
		}
	}
	printf("ready\n");
	fflush(stdout);

	while (time(NULL) < deadline) {
		struct epoll_event evs[64];
		int n = epoll_wait(epfd, evs, 64, 1000), k;

		if (n < 0 && errno != EINTR) {
			perror("epoll_wait");
			return 1;
		}
		for (k = 0; k < n; k++) {
			int type = evs[k].data.u64 >> 56, idx = (evs[k].data.u64 >> 32) & 0xffffff;
			int fd = (int)(__u32)evs[k].data.u64;
			char buf[2048], line[96];
			ssize_t r;

			if (type == T_LISTEN) {
				int c;

				while ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };

					snprintf(line, sizeof(line), "%s\n", eps[idx].id);
					if (write(c, line, strlen(line)) < 0) {
						close(c);
						continue;
					}
					ev.data.u64 = TAG(T_CONN, idx, c);
					if (epoll_ctl(epfd, EPOLL_CTL_ADD, c, &ev))
						close(c);
				}
			} else if (type == T_UDP) {
				struct sockaddr_storage from;
				socklen_t flen = sizeof(from);

				while ((r = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen)) >= 0) {
					snprintf(line, sizeof(line), "%s\n", eps[idx].id);
					sendto(fd, line, strlen(line), 0, (struct sockaddr *)&from, flen);
					flen = sizeof(from);
				}
			} else {
				/* echo until the peer closes */
				r = read(fd, buf, sizeof(buf));
				if (r > 0) {
					if (write(fd, buf, r) < 0) {
						epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
						close(fd);
					}
				} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
					epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
					close(fd);
				}
			}
		}
	}
	return 0;
}

/* ---- connect ---- */

struct tally {
	char	id[MAX_IDS][96];
	long	count[MAX_IDS];
	int	n;
	long	errors, mismatch;
	long	err_by[MAX_ERRNO];
};

static void tally_id(struct tally *t, const char *id)
{
	int i;

	for (i = 0; i < t->n; i++)
		if (!strcmp(t->id[i], id)) {
			t->count[i]++;
			return;
		}
	if (t->n == MAX_IDS) {
		t->errors++;
		return;
	}
	snprintf(t->id[t->n], sizeof(t->id[0]), "%s", id);
	t->count[t->n++] = 1;
}

static void tally_err(struct tally *t, int err)
{
	t->errors++;
	t->err_by[err > 0 && err < MAX_ERRNO ? err : 0]++;
}

static void set_io_timeout(int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* One line ("...\n") from fd into buf, without the newline. */
static int read_line(int fd, char *buf, size_t len)
{
	size_t off = 0;

	while (off + 1 < len) {
		ssize_t r = read(fd, buf + off, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ECONNRESET;
		if (buf[off] == '\n') {
			buf[off] = '\0';
			return 0;
		}
		off++;
	}
	return -EMSGSIZE;
}

struct copts {
	struct ep target, bind;
	bool	has_bind, udp, connected, hold;
};

/* One TCP connection or UDP exchange. Returns the socket (held) or -1. */
static int one(const struct copts *o, struct tally *t)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	char id[96];
	int fd, err;
	ssize_t r;

	fd = socket(o->target.ss.ss_family, (o->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		tally_err(t, errno);
		return -1;
	}
	set_io_timeout(fd);
	if (o->has_bind && bind(fd, (struct sockaddr *)&o->bind.ss, o->bind.len)) {
		err = errno;
		goto fail;
	}
	if (!o->udp || o->connected) {
		if (connect(fd, (struct sockaddr *)&o->target.ss, o->target.len)) {
			err = errno;
			goto fail;
		}
		if (getpeername(fd, (struct sockaddr *)&peer, &plen)) {
			err = errno;
			goto fail;
		}
		if (!sa_equal(&peer, &o->target.ss))
			t->mismatch++;
	}
	if (!o->udp) {
		if ((err = -read_line(fd, id, sizeof(id))))
			goto fail;
	} else {
		struct sockaddr_storage from = {};
		socklen_t flen = sizeof(from);

		r = o->connected ? send(fd, "q", 1, 0) :
		    sendto(fd, "q", 1, 0, (struct sockaddr *)&o->target.ss, o->target.len);
		if (r < 0) {
			err = errno;
			goto fail;
		}
		r = recvfrom(fd, id, sizeof(id) - 1, 0, (struct sockaddr *)&from, &flen);
		if (r < 0) {
			err = errno;
			goto fail;
		}
		id[r] = '\0';
		if (r && id[r - 1] == '\n')
			id[r - 1] = '\0';
		if (!o->connected && !sa_equal(&from, &o->target.ss))
			t->mismatch++;
	}
	tally_id(t, id);
	if (o->hold && !o->udp)
		return fd;
	close(fd);
	return -1;
fail:
	tally_err(t, err);
	close(fd);
	return -1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void report(struct tally *t, bool json, const struct copts *o, long held)
{
	int i, e;

	/* sort ids (and their counts) for stable output */
	for (i = 1; i < t->n; i++) {
		int j;

		for (j = i; j > 0 && cmp_str(t->id[j - 1], t->id[j]) > 0; j--) {
			char tmp[96];
			long c = t->count[j];

			memcpy(tmp, t->id[j], sizeof(tmp));
			memcpy(t->id[j], t->id[j - 1], sizeof(tmp));
			memcpy(t->id[j - 1], tmp, sizeof(tmp));
			t->count[j] = t->count[j - 1];
			t->count[j - 1] = c;
		}
	}
	if (json) {
		printf("{\"target\": \"%s\", \"backends\": {", o->target.id);
		for (i = 0; i < t->n; i++)
			printf("%s\"%s\": %ld", i ? ", " : "", t->id[i], t->count[i]);
		printf("}, \"errors\": %ld, \"peer_mismatch\": %ld, \"errnos\": {", t->errors, t->mismatch);
		for (e = 0, i = 0; e < MAX_ERRNO; e++)
			if (t->err_by[e])
				printf("%s\"%s\": %ld", i++ ? ", " : "", e ? strerrorname_np(e) : "other", t->err_by[e]);
		printf("}");
		if (o->hold)
			printf(", \"held\": %ld", held);
		printf("}\n");
	} else {
		for (i = 0; i < t->n; i++)
			printf("%s %ld\n", t->id[i], t->count[i]);
		printf("errors %ld\npeer_mismatch %ld\n", t->errors, t->mismatch);
		for (e = 0; e < MAX_ERRNO; e++)
			if (t->err_by[e])
				printf("errno %s %ld\n", e ? strerrorname_np(e) : "other", t->err_by[e]);
		if (o->hold)
			printf("held %ld\n", held);
	}
	fflush(stdout);
}

/* Block until a line or EOF on stdin. */
static void wait_stdin(void)
{
	char buf[256];

	if (!fgets(buf, sizeof(buf), stdin))
		return;
}

static bool stdin_ready(void)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

static int do_connect(int argc, char **argv)
{
	static struct tally t;
	static int held[MAX_HELD];
	struct copts o = {};
	long n = 1, timeout = 120, nheld = 0, i, alive = 0, dead = 0;
	bool json = false, loop = false, have_target = false;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			n = atol(argv[++i]);
		else if (!strcmp(argv[i], "--udp"))
			o.udp = true;
		else if (!strcmp(argv[i], "--connected-udp"))
			o.udp = o.connected = true;
		else if (!strcmp(argv[i], "--hold"))
			o.hold = true;
		else if (!strcmp(argv[i], "--loop"))
			loop = true;
		else if (!strcmp(argv[i], "-j"))
			json = true;
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = atol(argv[++i]);
		else if (!strcmp(argv[i], "--bind") && i + 1 < argc) {
			if (ep_parse(argv[++i], &o.bind, true))
				usage();
			o.has_bind = true;
		} else if (!have_target && !ep_parse(argv[i], &o.target, false))
			have_target = true;
		else {
			fprintf(stderr, "connect: unexpected '%s'\n", argv[i]);
			usage();
		}
	}
	if (!have_target || n < 0 || timeout <= 0 || (o.hold && (o.udp || n > MAX_HELD)) ||
	    (o.has_bind && o.bind.ss.ss_family != o.target.ss.ss_family))
		usage();
	set_timeout(timeout);
	signal(SIGPIPE, SIG_IGN);

	if (loop) {
		bool said = false;

		while (!stdin_ready()) {
			int fd = one(&o, &t);

			if (fd >= 0)
				close(fd);
			if (!said) {
				printf("looping\n");
				fflush(stdout);
				said = true;
			}
		}
		wait_stdin();
	}
	for (i = 0; i < n; i++) {
		int fd = one(&o, &t);

		if (fd >= 0)
			held[nheld++] = fd;
	}
	report(&t, json, &o, nheld);
	if (!o.hold)
		return 0;

	wait_stdin();
	for (i = 0; i < nheld; i++) {
		char buf[16];

		if (write(held[i], "ping\n", 5) == 5 && !read_line(held[i], buf, sizeof(buf)) &&
		    !strcmp(buf, "ping"))
			alive++;
		else
			dead++;
		close(held[i]);
	}
	if (json)
		printf("{\"alive\": %ld, \"dead\": %ld}\n", alive, dead);
	else
		printf("alive %ld\ndead %ld\n", alive, dead);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "serve"))
		return serve(argc - 2, argv + 2);
	if (!strcmp(argv[1], "connect"))
		return do_connect(argc - 2, argv + 2);
	usage();
	return 2;
}
