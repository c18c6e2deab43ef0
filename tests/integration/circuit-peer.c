// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * circuit-peer: both ends of the circuit breaker / health tests.
 *
 *   circuit-peer serve ADDR:PORT [--ctl FILE] [--timeout S]
 *	One backend. A connection whose first bytes are "GET " is an HTTP
 *	health probe: it gets the status FILE holds ("200", "503", ...; 200
 *	without --ctl or when FILE is missing) or, for "flaky", 503 and 200 by
 *	turns; then the server closes. Any other first line gets
 *	"ADDR:PORT\n" (the backend's identity) and the connection stays open,
 *	echoing, until the client closes it. Prints "ready" once listening;
 *	exits by itself after --timeout seconds (default 120).
 *
 *   circuit-peer connect VIP:PORT [-n N] [--hold] [--io-timeout S] [--timeout S]
 *	N connects one after the other; each sends "hi\n" and reads the
 *	backend's identity, giving up after --io-timeout seconds (default 3). Prints one JSON object: {"total": N, "ok": K,
 *	"backends": {"ID": count...}, "errors": {"ECONNREFUSED": count...},
 *	"seq": ["ID" or "E..."...]}. With --hold the connections stay open:
 *	after the report it waits for a line (or EOF) on stdin, then closes them.
 *
 * Exit 0 when the run completed (the report says how it went), 2 on usage
 * errors, 3 on the overall timeout.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "addr.h"

#define MAX_CONNS	8192
#define MAX_IDS		64

static int io_timeout_s = 3;

static int to_sockaddr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct faddr a;
	int port;

	if (endpoint_parse(s, &a, &port, NULL))
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (a.family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		s4->sin_addr.s_addr = a.a[0];
		*len = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, a.a, 16);
		*len = sizeof(*s6);
	}
	return 0;
}

static void on_alarm(int sig)
{
	(void)sig;
	_exit(3);
}

/* ---- serve ---- */

struct conn {
	int	fd;
	bool	seen;	/* first bytes handled */
};

static const char *health_reply(const char *ctl, unsigned *flip)
{
	static char line[128];
	FILE *f = ctl ? fopen(ctl, "r") : NULL;
	int code = 200;

	if (f) {
		if (fgets(line, sizeof(line), f)) {
			if (!strncmp(line, "flaky", 5))
				code = (*flip)++ % 2 ? 200 : 503;
			else
				code = atoi(line);
		}
		fclose(f);
	}
	snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		 code, code < 400 ? "OK" : "Service Unavailable");
	return line;
}

static int do_serve(int argc, char **argv)
{
	const char *ep = NULL, *ctl = NULL;
	struct sockaddr_storage ss;
	struct epoll_event ev, evs[64];
	char id[96], buf[4096];
	unsigned flip = 0, timeout = 120;
	socklen_t len;
	int lfd, epfd, one = 1, i, n;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--ctl") && i + 1 < argc)
			ctl = argv[++i];
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = atoi(argv[++i]);
		else if (!ep)
			ep = argv[i];
		else
			return 2;
	}
	if (!ep || to_sockaddr(ep, &ss, &len))
		return 2;
	snprintf(id, sizeof(id), "%s\n", ep);
	alarm(timeout);
	lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&ss, len) || listen(lfd, 1024)) {
		perror(ep);
		return 1;
	}
	epfd = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		n = epoll_wait(epfd, evs, 64, -1);
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t r;

			if (!c) {
				int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

				if (fd < 0)
					continue;
				c = calloc(1, sizeof(*c));
				c->fd = fd;
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
				continue;
			}
			r = read(c->fd, buf, sizeof(buf));
			if (r <= 0) {
				close(c->fd);
				free(c);
				continue;
			}
			if (!c->seen && r >= 4 && !memcmp(buf, "GET ", 4)) {
				const char *rep = health_reply(ctl, &flip);

				if (write(c->fd, rep, strlen(rep)) < 0)
					perror("write");
				close(c->fd);
				free(c);
				continue;
			}
			if (!c->seen) {
				c->seen = true;
				if (write(c->fd, id, strlen(id)) < 0)
					perror("write");
				continue;
			}
			if (write(c->fd, buf, r) < 0)
				perror("write");
		}
	}
	return 0;
}

/* ---- connect ---- */

struct tally {
	char	name[96];
	int	count;
};

static void count(struct tally *t, int *nt, const char *name)
{
	int i;

	for (i = 0; i < *nt; i++)
		if (!strcmp(t[i].name, name)) {
			t[i].count++;
			return;
		}
	if (*nt == MAX_IDS)
		return;
	snprintf(t[*nt].name, sizeof(t[*nt].name), "%s", name);
	t[(*nt)++].count = 1;
}

static const char *errname(int e)
{
	switch (e) {
	case ECONNREFUSED: return "ECONNREFUSED";
	case EBUSY: return "EBUSY";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case ENETUNREACH: return "ENETUNREACH";
	case ECONNRESET: return "ECONNRESET";
	case EAGAIN: return "EAGAIN";
	case EPIPE: return "EPIPE";
	case 0: return "EOF";
	default: return "EOTHER";
	}
}

/* One connect: the backend's identity in id, or -errno. */
static int one(const struct sockaddr_storage *ss, socklen_t len, char *id, size_t idlen, int *fdp)
{
	struct timeval tv = { .tv_sec = io_timeout_s };
	ssize_t r;
	size_t off = 0;
	int fd, err;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)ss, len)) {
		err = -errno;
		close(fd);
		return err;
	}
	if (write(fd, "hi\n", 3) != 3) {
		err = -errno;
		close(fd);
		return err;
	}
	while (off < idlen - 1) {
		r = read(fd, id + off, 1);
		if (r <= 0) {
			err = r < 0 ? -errno : 0;
			close(fd);
			return err ? err : -EPIPE;
		}
		if (id[off] == '\n')
			break;
		off++;
	}
	id[off] = '\0';
	*fdp = fd;
	return 0;
}

static int do_connect(int argc, char **argv)
{
	static int held[MAX_CONNS];
	struct tally bes[MAX_IDS], errs[MAX_IDS];
	int nbes = 0, nerrs = 0, nheld = 0, n = 1, ok = 0, i, r, fd = -1;
	const char *vip = NULL;
	struct sockaddr_storage ss;
	unsigned timeout = 120;
	bool hold = false;
	socklen_t len;
	char id[96], line[16];

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--hold"))
			hold = true;
		else if (!strcmp(argv[i], "--io-timeout") && i + 1 < argc)
			io_timeout_s = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = atoi(argv[++i]);
		else if (!vip)
			vip = argv[i];
		else
			return 2;
	}
	if (!vip || to_sockaddr(vip, &ss, &len) || n < 1 || n > MAX_CONNS)
		return 2;
	alarm(timeout);
	printf("{\"seq\": [");
	for (i = 0; i < n; i++) {
		r = one(&ss, len, id, sizeof(id), &fd);
		printf("%s\"%s\"", i ? ", " : "", r ? errname(-r) : id);
		if (r) {
			count(errs, &nerrs, errname(-r));
			continue;
		}
		ok++;
		count(bes, &nbes, id);
		if (hold)
			held[nheld++] = fd;
		else
			close(fd);
	}
	printf("], \"total\": %d, \"ok\": %d, \"backends\": {", n, ok);
	for (i = 0; i < nbes; i++)
		printf("%s\"%s\": %d", i ? ", " : "", bes[i].name, bes[i].count);
	printf("}, \"errors\": {");
	for (i = 0; i < nerrs; i++)
		printf("%s\"%s\": %d", i ? ", " : "", errs[i].name, errs[i].count);
	printf("}}\n");
	fflush(stdout);
	if (hold) {
		if (!fgets(line, sizeof(line), stdin))
			line[0] = '\0';
		for (i = 0; i < nheld; i++)
			close(held[i]);
	}
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && !strcmp(argv[1], "serve"))
		return do_serve(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "connect"))
		return do_connect(argc - 2, argv + 2);
	fprintf(stderr, "Usage: circuit-peer serve ADDR:PORT [--ctl FILE] [--timeout S]\n"
			"       circuit-peer connect VIP:PORT [-n N] [--hold] [--io-timeout S] [--timeout S]\n");
	return 2;
}
