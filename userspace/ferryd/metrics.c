// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The metrics endpoint: a small HTTP/1.1 server on ferryd's event loop.
 *
 *   /metrics  Prometheus text format 0.0.4 (gzip when the scraper asks)
 *   /healthz  200 while the daemon runs its loop
 *   /readyz   200 once the programs are attached and the registry was
 *             applied; 503 (with the reason) before
 *
 * It never blocks the loop: sockets are non-blocking and responses are
 * written as the socket drains, across epoll events. A /metrics body (maps
 * read, rendered, compressed: a few hundred ms at 100k backends) is built
 * by one worker thread, so reconcile, health checks and /healthz carry on
 * meanwhile; requests that arrive while a body is being built share the
 * next one. The worker only reads the pinned maps and its own job record.
 * Connections live in a private epoll set, registered with the daemon's loop
 * as one fd, so any number of them costs the loop one watcher. Abuse is
 * bounded: a connection cap (503 past it), a request-header limit (431), and
 * a per-connection deadline that cuts off slow clients (408).
 *
 * The cap must not let one client starve the kubelet's probes (a pod whose
 * /healthz answers 503 is restarted): one peer address (an IPv6 /64) holds
 * at most a quarter of the connections, and the last few slots take only
 * /healthz and /readyz requests (cheap, answered at once), on a short read
 * deadline, closed after the answer. Filling the cap then needs several
 * addresses, and a probe still finds a slot unless the reserve, too, is
 * being refilled as fast as its deadline empties it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>

#include "addr.h"
#include "ferryd.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

#define MX_MAX_CONNS	32		/* concurrent connections */
#define MX_MAX_PER_PEER	(MX_MAX_CONNS / 4)	/* of them from one address (IPv6: one /64) */
#define MX_PROBE_SLOTS	4		/* the last slots: /healthz and /readyz only */
#define MX_PEER_PROBES	2		/* probe-only connections a peer past its share may add */
#define MX_PROBE_READ_MS 1000		/* a probe slot's request must come this fast */
#define MX_WRITE_MIN_MS	30000		/* a response may take at least this long to drain */
#define MX_TICK_MS	100		/* deadline check period while connections are open */
#define MX_LINGER_MS	1000		/* discard a closing client's leftovers this long */
#define MX_GZIP_LEVEL	1		/* fast: a scrape is mostly repeated label text */

enum { TAG_LISTEN = 0, TAG_TIMER = 1, TAG_WORKER = 2, TAG_CONN = 3 };

/* READ: waiting for a request head; WAIT: for the worker's /metrics body;
 * WRITE: a response is draining;
 * LINGER: after a closing response, reading and discarding what the client
 * still sends, so closing does not reset the connection (and lose our
 * response in the client's receive queue) while its data is unread. */
enum conn_state { C_FREE = 0, C_READ, C_WAIT, C_WRITE, C_LINGER };

struct mx_conn {
	int	fd;
	enum conn_state state;
	bool	close_after;	/* close once the response is written */
	bool	gzip, head;	/* of the /metrics request waiting for a body */
	bool	assigned;	/* WAIT: the running job's body is for it */
	bool	probe_only;	/* in a reserved slot: /healthz and /readyz only */
	struct in6_addr peer;	/* the client's address (IPv4 mapped; IPv6 as its /64) */
	__u64	deadline_ns;
	size_t	rlen;
	char	req[HTTP_HEAD_MAX + 1];
	struct mbuf hdr, body;	/* response: headers, then body */
	size_t	sent;		/* bytes of hdr + body written */
};

/* Status codes the server answers with; counted per code. */
static const int codes[] = { 200, 400, 404, 405, 408, 431, 503, 505 };
#define NCODES (sizeof(codes) / sizeof(codes[0]))

/*
 * One /metrics body build. The loop fills the inputs before handing it to
 * the worker (under mu) and reads the outputs after the worker says done
 * (under mu): the worker never touches anything else of the server.
 */
struct mx_job {
	bool	gzip;		/* a waiting client asked for gzip */
	bool	ready;		/* the exporter's own gauges, as of the request */
	__u64	requests[NCODES], rejected, timeouts, last_scrape_ns, last_body_bytes;
	unsigned int nconns;
	struct mbuf plain, gz;
	bool	gz_ok;
	int	err;
	__u64	dur_ns;
};

struct metrics_srv {
	struct ferryd *d;
	int	lfd, epfd, tfd, efd;
	bool	ticking;
	unsigned int nconns;
	struct mx_conn conns[MX_MAX_CONNS];
	__u64	requests[NCODES];
	__u64	rejected;	/* connections refused at the cap (total, per peer, reserve) */
	__u64	timeouts;
	__u64	last_scrape_ns;	/* collect + render + compress of the last /metrics */
	__u64	last_body_bytes;
	/* The worker: busy while a job is out; go/done/quit under mu. */
	pthread_t th;
	bool	th_started, busy, go, done, quit;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct mx_job job;
};

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static const char *reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return "Error";
}

static void count_code(struct metrics_srv *s, int code)
{
	size_t i;

	for (i = 0; i < NCODES; i++)
		if (codes[i] == code)
			s->requests[i]++;
}

static void set_timer(struct metrics_srv *s, bool on)
{
	struct itimerspec its = {};

	if (on == s->ticking)
		return;
	if (on) {
		its.it_interval.tv_nsec = MX_TICK_MS * 1000000L;
		its.it_value.tv_nsec = MX_TICK_MS * 1000000L;
	}
	if (!timerfd_settime(s->tfd, 0, &its, NULL))
		s->ticking = on;
}

static void conn_close(struct metrics_srv *s, struct mx_conn *c)
{
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	mbuf_free(&c->hdr);
	mbuf_free(&c->body);
	c->state = C_FREE;
	c->fd = -1;
	if (--s->nconns == 0)
		set_timer(s, false);
}

static void conn_events(struct metrics_srv *s, struct mx_conn *c, __u32 events)
{
	struct epoll_event ev = { .events = events, .data.u32 = TAG_CONN + (c - s->conns) };

	epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Waiting for a request: the whole request must arrive within the timeout. */
static void conn_await_request(struct metrics_srv *s, struct mx_conn *c)
{
	__u64 ms = s->d->cfg.metrics_timeout_ms;

	if (c->probe_only && ms > MX_PROBE_READ_MS)
		ms = MX_PROBE_READ_MS;
	c->state = C_READ;
	c->sent = 0;
	mbuf_free(&c->hdr);
	mbuf_free(&c->body);
	c->deadline_ns = mono_ns() + ms * 1000000ULL;
	conn_events(s, c, EPOLLIN | EPOLLRDHUP);
}

/* Queue a response; body_len may differ from body->len for HEAD (0 sent). */
static void respond(struct metrics_srv *s, struct mx_conn *c, int code, const char *ctype,
		    const char *extra, bool head)
{
	__u64 wms = s->d->cfg.metrics_timeout_ms > MX_WRITE_MIN_MS ? s->d->cfg.metrics_timeout_ms
								     : MX_WRITE_MIN_MS;

	count_code(s, code);
	mbuf_reset(&c->hdr);
	mbuf_printf(&c->hdr, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
		    code, reason(code), ctype, c->body.len, extra ? extra : "",
		    c->close_after ? "Connection: close\r\n" : "");
	if (head)
		c->body.len = 0;
	if (c->hdr.oom || c->body.oom) {
		conn_close(s, c);
		return;
	}
	c->state = C_WRITE;
	c->sent = 0;
	c->deadline_ns = mono_ns() + wms * 1000000ULL;
	conn_events(s, c, EPOLLOUT);
}

static void respond_text(struct metrics_srv *s, struct mx_conn *c, int code, const char *text,
			 const char *extra, bool head)
{
	mbuf_reset(&c->body);
	mbuf_puts(&c->body, text);
	respond(s, c, code, "text/plain; charset=utf-8", extra, head);
}

static void append_daemon_metrics(const struct mx_job *s, struct mbuf *b, bool ready)
{
	size_t i;

	mbuf_puts(b, "# HELP ferry_daemon_ready 1 when programs are attached and the registry was applied (/readyz).\n"
		     "# TYPE ferry_daemon_ready gauge\n");
	mbuf_printf(b, "ferry_daemon_ready %d\n", ready);
	mbuf_puts(b, "# HELP ferry_metrics_http_requests_total Requests answered by the metrics endpoint, by status code.\n"
		     "# TYPE ferry_metrics_http_requests_total counter\n");
	for (i = 0; i < NCODES; i++)
		mbuf_printf(b, "ferry_metrics_http_requests_total{code=\"%d\"} %llu\n", codes[i],
			    (unsigned long long)s->requests[i]);
	mbuf_puts(b, "# HELP ferry_metrics_http_connections_rejected_total Connections refused at the connection cap (total, per peer address, or a probe-only slot asked for more than /healthz or /readyz).\n"
		     "# TYPE ferry_metrics_http_connections_rejected_total counter\n");
	mbuf_printf(b, "ferry_metrics_http_connections_rejected_total %llu\n", (unsigned long long)s->rejected);
	mbuf_puts(b, "# HELP ferry_metrics_http_connections_open Connections the metrics endpoint holds now (this scrape's included).\n"
		     "# TYPE ferry_metrics_http_connections_open gauge\n");
	mbuf_printf(b, "ferry_metrics_http_connections_open %u\n", (unsigned int)s->nconns);
	mbuf_puts(b, "# HELP ferry_metrics_http_timeouts_total Connections cut off at their deadline (slow or idle clients).\n"
		     "# TYPE ferry_metrics_http_timeouts_total counter\n");
	mbuf_printf(b, "ferry_metrics_http_timeouts_total %llu\n", (unsigned long long)s->timeouts);
	mbuf_puts(b, "# HELP ferry_metrics_last_scrape_duration_seconds Time the previous /metrics response took to build (read, render, compress).\n"
		     "# TYPE ferry_metrics_last_scrape_duration_seconds gauge\n");
	mbuf_printf(b, "ferry_metrics_last_scrape_duration_seconds %.6f\n", s->last_scrape_ns / 1e9);
	mbuf_puts(b, "# HELP ferry_metrics_last_scrape_bytes Uncompressed size of the previous /metrics response.\n"
		     "# TYPE ferry_metrics_last_scrape_bytes gauge\n");
	mbuf_printf(b, "ferry_metrics_last_scrape_bytes %llu\n", (unsigned long long)s->last_body_bytes);
}

/* Why the daemon is not ready, or NULL when it is. */
static const char *not_ready(struct ferryd *d)
{
	char path[512];

	if (!d->sock)
		return "programs not loaded";
	loader_link_path(d, "sock_connect4", path, sizeof(path));
	if (access(path, F_OK))
		return "programs not attached (link pin missing)";
	if (!d->synced)
		return "registry not applied yet";
	return NULL;
}

/* The worker's part: everything that takes time, on its own record only. */
static void job_build(struct ferryd *d, struct mx_job *j)
{
	struct metrics_opts o = { .max_backend_series = d->cfg.metrics_max_series, .version = FERRY_VERSION };
	struct ferry_snapshot snap;
	__u64 t0 = mono_ns();

	mbuf_reset(&j->plain);
	j->gz_ok = false;
	j->err = snapshot_collect(&d->maps, d->cfg.bpffs, &snap);
	if (!j->err) {
		j->err = metrics_render(&snap, &o, &j->plain);
		snapshot_free(&snap);
	}
	if (!j->err) {
		append_daemon_metrics(j, &j->plain, j->ready);
		if (j->plain.oom)
			j->err = -ENOMEM;
	}
	if (!j->err && j->gzip)
		j->gz_ok = !mbuf_gzip(j->plain.p, j->plain.len, &j->gz, MX_GZIP_LEVEL);
	j->dur_ns = mono_ns() - t0;
}

static void *worker(void *arg)
{
	struct metrics_srv *s = arg;
	__u64 one = 1;

	for (;;) {
		pthread_mutex_lock(&s->mu);
		while (!s->go && !s->quit)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->quit) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		s->go = false;
		pthread_mutex_unlock(&s->mu);

		job_build(s->d, &s->job);

		pthread_mutex_lock(&s->mu);
		s->done = true;
		pthread_mutex_unlock(&s->mu);
		if (write(s->efd, &one, sizeof(one)) < 0)
			(void)0;	/* the counter is saturated: a wakeup is pending anyway */
	}
}

static void job_finish(struct metrics_srv *s);

/* Start a job for the clients waiting without one, unless one is running. */
static void job_kick(struct metrics_srv *s)
{
	struct mx_job *j = &s->job;
	bool any = false;
	unsigned int k;

	if (s->busy)
		return;
	j->gzip = false;
	for (k = 0; k < MX_MAX_CONNS; k++) {
		struct mx_conn *c = &s->conns[k];

		if (c->state == C_WAIT && !c->assigned) {
			c->assigned = any = true;
			j->gzip |= c->gzip;
		}
	}
	if (!any)
		return;
	j->ready = !not_ready(s->d);
	memcpy(j->requests, s->requests, sizeof(j->requests));
	j->rejected = s->rejected;
	j->timeouts = s->timeouts;
	j->nconns = s->nconns;
	j->last_scrape_ns = s->last_scrape_ns;
	j->last_body_bytes = s->last_body_bytes;
	s->busy = true;
	if (!s->th_started) {
		if (pthread_create(&s->th, NULL, worker, s)) {
			/* No thread: build on the loop, slower for everyone but correct. */
			log_warnx("metrics: no worker thread; building /metrics on the event loop");
			job_build(s->d, j);
			s->done = true;
			job_finish(s);
			return;
		}
		s->th_started = true;
	}
	pthread_mutex_lock(&s->mu);
	s->go = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* The worker is done: answer everyone the body was built for. */
static void job_finish(struct metrics_srv *s)
{
	struct mx_job *j = &s->job;
	unsigned int k, n;
	bool done;

	pthread_mutex_lock(&s->mu);
	done = s->done;
	s->done = false;
	pthread_mutex_unlock(&s->mu);
	if (!done)
		return;
	s->busy = false;
	s->last_scrape_ns = j->dur_ns;
	if (!j->err)
		s->last_body_bytes = j->plain.len;
	else
		log_warnx("metrics: building the response: %s", strerror(-j->err));
	for (k = 0, n = 0; k < MX_MAX_CONNS; k++)
		n += s->conns[k].state == C_WAIT && s->conns[k].assigned;
	for (k = 0; k < MX_MAX_CONNS; k++) {
		struct mx_conn *c = &s->conns[k];
		struct mbuf *src;

		if (c->state != C_WAIT || !c->assigned)
			continue;
		if (j->err) {
			respond_text(s, c, 503, "metrics unavailable\n", NULL, c->head);
			continue;
		}
		src = c->gzip && j->gz_ok ? &j->gz : &j->plain;
		if (n == 1) {
			/* The only reader: hand the buffer over instead of copying. */
			struct mbuf t = c->body;

			c->body = *src;
			*src = t;
			mbuf_reset(src);
		} else {
			mbuf_reset(&c->body);
			mbuf_add(&c->body, src->p, src->len);
		}
		respond(s, c, 200, "text/plain; version=0.0.4; charset=utf-8",
			src == &j->gz ? "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
				      : "Vary: Accept-Encoding\r\n",
			c->head);
	}
	/* Buffers of a big scrape are not kept between scrapes. */
	if (j->plain.cap > (1u << 20)) {
		mbuf_free(&j->plain);
		mbuf_free(&j->gz);
	}
	job_kick(s);	/* those who came while it ran */
}

/* A /metrics request: wait for the worker's next body. */
static void serve_metrics(struct metrics_srv *s, struct mx_conn *c, bool gzip, bool head)
{
	__u64 wms = s->d->cfg.metrics_timeout_ms > MX_WRITE_MIN_MS ? s->d->cfg.metrics_timeout_ms
								     : MX_WRITE_MIN_MS;

	c->state = C_WAIT;
	c->gzip = gzip;
	c->head = head;
	c->assigned = false;
	c->deadline_ns = mono_ns() + wms * 1000000ULL;
	conn_events(s, c, 0);	/* hang-ups and errors only */
	job_kick(s);
}

/* Answer one request head (NUL-terminated, modified in place). */
static void handle_request(struct metrics_srv *s, struct mx_conn *c, char *req)
{
	struct http_req r;
	int bad = http_req_parse(req, &r);

	if (bad) {
		c->close_after = true;
		respond_text(s, c, bad, bad == 505 ? "only HTTP/1.x\n" : "bad request\n", NULL, false);
		return;
	}
	c->close_after = r.close;
	if (c->probe_only)
		c->close_after = true;	/* a reserved slot: one answer, then it is free again */
	if (strcmp(r.target, "/metrics") && strcmp(r.target, "/healthz") &&
	    strcmp(r.target, "/readyz") && strcmp(r.target, "/")) {
		respond_text(s, c, 404, "not found: try /metrics, /healthz or /readyz\n", NULL, r.head);
		return;
	}
	if (strcmp(r.method, "GET") && !r.head) {
		respond_text(s, c, 405, "method not allowed\n", "Allow: GET, HEAD\r\n", false);
		return;
	}
	if (c->probe_only && strcmp(r.target, "/healthz") && strcmp(r.target, "/readyz")) {
		s->rejected++;
		respond_text(s, c, 503, "too many connections\n", NULL, r.head);
		return;
	}
	if (!strcmp(r.target, "/metrics")) {
		serve_metrics(s, c, r.gzip, r.head);
	} else if (!strcmp(r.target, "/healthz")) {
		respond_text(s, c, 200, "ok\n", NULL, r.head);
	} else if (!strcmp(r.target, "/readyz")) {
		const char *why = not_ready(s->d);
		char msg[128];

		snprintf(msg, sizeof(msg), "not ready: %s\n", why ? why : "");
		respond_text(s, c, why ? 503 : 200, why ? msg : "ready\n", NULL, r.head);
	} else {
		respond_text(s, c, 200, "ferryd metrics: /metrics /healthz /readyz\n", NULL, r.head);
	}
}

/* Write what the socket takes; true once the whole response is out. */
static bool conn_flush(struct metrics_srv *s, struct mx_conn *c)
{
	size_t total = c->hdr.len + c->body.len;

	while (c->sent < total) {
		struct iovec iov[2];
		int niov = 0;
		ssize_t n;

		if (c->sent < c->hdr.len)
			iov[niov++] = (struct iovec){ c->hdr.p + c->sent, c->hdr.len - c->sent };
		if (c->body.len) {
			size_t off = c->sent > c->hdr.len ? c->sent - c->hdr.len : 0;

			iov[niov++] = (struct iovec){ c->body.p + off, c->body.len - off };
		}
		n = writev(c->fd, iov, niov);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				conn_close(s, c);
			return false;	/* EAGAIN: EPOLLOUT brings us back */
		}
		c->sent += n;
	}
	return true;
}

/*
 * Move a connection as far as it can go without waiting: finish a response,
 * then answer requests already buffered (pipelining), until it needs the
 * socket again. A loop, not recursion: a client may pipeline hundreds.
 */
static void conn_drive(struct metrics_srv *s, struct mx_conn *c)
{
	char head[HTTP_HEAD_MAX + 1];
	size_t hlen;

	while (c->state == C_READ || c->state == C_WRITE) {
		if (c->state == C_WRITE) {
			if (!conn_flush(s, c))
				return;
			if (!c->close_after) {
				conn_await_request(s, c);
				continue;
			}
			shutdown(c->fd, SHUT_WR);
			c->state = C_LINGER;
			c->deadline_ns = mono_ns() + MX_LINGER_MS * 1000000ULL;
			conn_events(s, c, EPOLLIN | EPOLLRDHUP);
			return;
		}
		hlen = http_head_end(c->req, c->rlen);
		if (!hlen) {
			if (c->rlen < HTTP_HEAD_MAX)
				return;
			c->close_after = true;
			respond_text(s, c, 431, "request headers too large\n", NULL, false);
			continue;
		}
		memcpy(head, c->req, hlen);
		head[hlen] = '\0';
		c->rlen -= hlen;
		memmove(c->req, c->req + hlen, c->rlen);
		handle_request(s, c, head);
	}
}

static void conn_read(struct metrics_srv *s, struct mx_conn *c)
{
	char junk[4096];
	ssize_t n;

	if (c->state == C_LINGER)
		n = recv(c->fd, junk, sizeof(junk), 0);
	else
		n = recv(c->fd, c->req + c->rlen, HTTP_HEAD_MAX - c->rlen, 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		conn_close(s, c);
		return;
	}
	if (n < 0 || c->state == C_LINGER)
		return;
	c->rlen += n;
	conn_drive(s, c);
}

/* What the per-peer limit counts by: the IPv4 address (mapped), or the
 * IPv6 /64 (one host commonly has a whole /64 to pick addresses from). */
static void peer_key(const struct sockaddr_storage *ss, struct in6_addr *k)
{
	memset(k, 0, sizeof(*k));
	if (ss->ss_family == AF_INET) {
		k->s6_addr[10] = k->s6_addr[11] = 0xff;
		memcpy(&k->s6_addr[12], &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		*k = *a;
		if (!IN6_IS_ADDR_V4MAPPED(a))
			memset(&k->s6_addr[8], 0, 8);
	}
}

static void on_accept(struct metrics_srv *s)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
				   "Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n";
	int i, fd, one = 1;

	for (i = 0; i < 64; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
		struct sockaddr_storage ss;
		socklen_t slen = sizeof(ss);
		struct mx_conn *c = NULL;
		struct in6_addr peer;
		unsigned int k, same = 0;

		fd = accept4(s->lfd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;	/* EAGAIN, or a transient error: the next event retries */
		peer_key(&ss, &peer);
		for (k = 0; k < MX_MAX_CONNS; k++) {
			if (s->conns[k].state == C_FREE)
				c = c ? c : &s->conns[k];
			else
				same += !memcmp(&s->conns[k].peer, &peer, sizeof(peer));
		}
		/* A peer past its share gets two connections more, for
		 * /healthz and /readyz only (the kubelet probes from the
		 * node's address, which other host-network clients share);
		 * past those, nothing. */
		if (same >= MX_MAX_PER_PEER + MX_PEER_PROBES)
			c = NULL;
		if (!c) {
			/* Best effort, never waits: the client may not read it. */
			if (send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
				(void)0;
			close(fd);
			s->rejected++;
			count_code(s, 503);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		memset(c, 0, offsetof(struct mx_conn, req));
		c->fd = fd;
		c->rlen = 0;
		c->peer = peer;
		c->probe_only = same >= MX_MAX_PER_PEER || s->nconns >= MX_MAX_CONNS - MX_PROBE_SLOTS;
		ev.data.u32 = TAG_CONN + (c - s->conns);
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			continue;
		}
		s->nconns++;
		set_timer(s, true);
		conn_await_request(s, c);
	}
}

/* Cut off connections past their deadline; a half-sent request gets 408. */
static void on_tick(struct metrics_srv *s)
{
	static const char slow[] = "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
				   "Content-Length: 16\r\nConnection: close\r\n\r\nrequest timeout\n";
	__u64 now = mono_ns(), ticks;
	unsigned int k;

	if (read(s->tfd, &ticks, sizeof(ticks)) < 0)
		(void)0;	/* EAGAIN: a spurious wakeup */
	for (k = 0; k < MX_MAX_CONNS; k++) {
		struct mx_conn *c = &s->conns[k];

		if (c->state == C_FREE || now < c->deadline_ns)
			continue;
		if (c->state == C_READ && c->rlen) {	/* slow client: tell it why */
			if (send(c->fd, slow, sizeof(slow) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
				(void)0;
			count_code(s, 408);
		}
		if (c->state != C_LINGER)
			s->timeouts++;
		log_debug("metrics: connection %d past its deadline: closed", c->fd);
		conn_close(s, c);
	}
}

static void on_event(struct ferryd *d, int fd, uint32_t events, void *arg)
{
	struct metrics_srv *s = arg;
	struct epoll_event evs[32];
	int n, i;

	(void)d;
	(void)fd;
	(void)events;
	n = epoll_wait(s->epfd, evs, 32, 0);
	for (i = 0; i < n; i++) {
		__u32 tag = evs[i].data.u32;
		struct mx_conn *c;

		if (tag == TAG_LISTEN) {
			on_accept(s);
			continue;
		}
		if (tag == TAG_TIMER) {
			on_tick(s);
			continue;
		}
		if (tag == TAG_WORKER) {
			__u64 n;

			if (read(s->efd, &n, sizeof(n)) < 0)
				(void)0;	/* EAGAIN: already drained */
			job_finish(s);
			continue;
		}
		c = &s->conns[tag - TAG_CONN];
		if (c->state == C_FREE)
			continue;	/* closed earlier in this batch */
		if (c->state == C_WAIT) {
			if (evs[i].events & (EPOLLHUP | EPOLLERR))
				conn_close(s, c);
			continue;
		}
		if (c->state == C_WRITE)
			conn_drive(s, c);
		else
			conn_read(s, c);
	}
}

/*
 * Listen on spec (HOST:PORT; port 0: the kernel picks one). The address
 * actually bound goes into bound, so the log names the port a client must use.
 */
static int listen_on(const char *spec, int *out, char *bound, size_t len)
{
	struct sockaddr_storage ss = {};
	struct faddr a;
	socklen_t slen;
	int port, fd, one = 1, err;

	if (listen_addr_parse(spec, &a, &port))
		return -EINVAL;
	if (a.family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = a.a[0];
		slen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a.a, 16);
		slen = sizeof(*sin6);
	}
	fd = socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* "[::]" answers IPv4 too, whatever net.ipv6.bindv6only says: a
	 * dual-stack node's kubelet may probe either pod address. */
	if (a.family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr)) {
		int zero = 0;

		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (bind(fd, (struct sockaddr *)&ss, slen) || listen(fd, 64) ||
	    getsockname(fd, (struct sockaddr *)&ss, &slen)) {
		err = -errno;
		close(fd);
		return err;
	}
	if (a.family == AF_INET)
		endpoint_str(a.a, AF_INET, ((struct sockaddr_in *)&ss)->sin_port, bound, len);
	else
		endpoint_str(a.a, AF_INET6, ((struct sockaddr_in6 *)&ss)->sin6_port, bound, len);
	*out = fd;
	return 0;
}

int metrics_start(struct ferryd *d)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct metrics_srv *s;
	char bound[64];
	unsigned int k;
	int err;

	if (!d->cfg.metrics_addr || !strcmp(d->cfg.metrics_addr, "off"))
		return 0;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->d = d;
	s->lfd = s->epfd = s->tfd = s->efd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	for (k = 0; k < MX_MAX_CONNS; k++)
		s->conns[k].fd = -1;
	if ((err = listen_on(d->cfg.metrics_addr, &s->lfd, bound, sizeof(bound)))) {
		log_warnx("metrics: cannot listen on %s: %s; running without the metrics endpoint",
			  d->cfg.metrics_addr, strerror(-err));
		goto fail;
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->epfd < 0 || s->tfd < 0 || s->efd < 0) {
		err = -errno;
		log_warn("metrics: epoll/timerfd");
		goto fail;
	}
	ev.data.u32 = TAG_LISTEN;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev)) {
		err = -errno;
		goto fail;
	}
	ev.data.u32 = TAG_TIMER;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->tfd, &ev)) {
		err = -errno;
		goto fail;
	}
	ev.data.u32 = TAG_WORKER;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->efd, &ev)) {
		err = -errno;
		goto fail;
	}
	if ((err = ev_add(d, s->epfd, EPOLLIN, on_event, s))) {
		log_warnx("metrics: event loop: %s", strerror(-err));
		goto fail;
	}
	d->metrics = s;
	log_info("metrics on http://%s/metrics (/healthz, /readyz)", bound);
	return 0;
fail:
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->tfd >= 0)
		close(s->tfd);
	if (s->efd >= 0)
		close(s->efd);
	free(s);
	return err;
}

void metrics_stop(struct ferryd *d)
{
	struct metrics_srv *s = d->metrics;
	unsigned int k;

	if (!s)
		return;
	for (k = 0; k < MX_MAX_CONNS; k++)
		if (s->conns[k].state != C_FREE)
			conn_close(s, &s->conns[k]);
	if (s->th_started) {
		/* A build in progress finishes first: bounded by one scrape. */
		pthread_mutex_lock(&s->mu);
		s->quit = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->th, NULL);
	}
	ev_del(d, s->epfd);
	close(s->lfd);
	close(s->tfd);
	close(s->efd);
	close(s->epfd);
	mbuf_free(&s->job.plain);
	mbuf_free(&s->job.gz);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
	d->metrics = NULL;
}
