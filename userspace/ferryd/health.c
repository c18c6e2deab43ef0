// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Active health checks: one TCP connect or HTTP GET per backend every
 * interval_ms of its service's "health" config, verdicts by healthsm.c,
 * written into the backend's ferry_be_v1 entry (.health) for selection.
 *
 * Everything runs on ferryd's one thread without blocking: non-blocking
 * sockets in a private epoll set (one watcher on the daemon's loop, so
 * 10,000 probes in flight never exhaust its watcher table), and one timerfd
 * armed for the earliest deadline of a min-heap of targets (next probe, or
 * timeout of the probe in flight). A sync only swaps the target list: probes
 * in flight for backends that stay keep running.
 *
 * Probes leave from ferryd's own network namespace and cgroup (the node),
 * never from the managed cgroup, so the socket LB does not rewrite them and
 * the circuit breaker does not count them. TCP probes close with a RST
 * (SO_LINGER 0): thousands of probes a second would otherwise leave as many
 * TIME_WAIT sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <bpf/bpf.h>

#include "ferryd.h"
#include "healthsm.h"
#include "http.h"
#include "log.h"
#include "state.h"

#define HEALTH_MAX_INFLIGHT	8192	/* also bounded by RLIMIT_NOFILE */
#define HEALTH_RETRY_NS		(5 * 1000000ULL)	/* when every probe slot is busy */
#define HEALTH_RESP_MAX		256	/* enough for an HTTP status line */

struct target {
	/* identity: the backend entry this probes and writes */
	__u32	be_id;
	__u32	svc_id;
	__u32	addr[4];
	__u16	port;		/* network order */
	__u8	family;
	struct reg_health cfg;
	/* verdict */
	struct hstate hs;
	/* schedule */
	__u64	next_ns;	/* idle: when the next probe starts */
	__u64	deadline_ns;	/* in flight: when it times out */
	__u64	start_ns;
	size_t	heap_idx;
	/* probe in flight */
	int	fd;		/* -1: idle */
	bool	connected;
	size_t	sent, rlen;
	char	resp[HEALTH_RESP_MAX];
	char	req[256];
	size_t	reqlen;
};

struct health {
	int	epfd, tfd;
	struct target **t;	/* sorted by (be_id, addr, port) */
	size_t	n;
	struct target **heap;	/* min-heap on due time */
	size_t	nheap;
	size_t	inflight, max_inflight;
	__u64	armed_ns;
	__u64	probes, changes;
};

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static __u64 due(const struct target *t)
{
	return t->fd >= 0 ? t->deadline_ns : t->next_ns;
}

/* ---- min-heap of targets on due() ---- */

static void heap_swap(struct health *h, size_t a, size_t b)
{
	struct target *x = h->heap[a];

	h->heap[a] = h->heap[b];
	h->heap[b] = x;
	h->heap[a]->heap_idx = a;
	h->heap[b]->heap_idx = b;
}

static void heap_fix(struct health *h, size_t i)
{
	while (i && due(h->heap[i]) < due(h->heap[(i - 1) / 2])) {
		heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->nheap && due(h->heap[l]) < due(h->heap[m]))
			m = l;
		if (r < h->nheap && due(h->heap[r]) < due(h->heap[m]))
			m = r;
		if (m == i)
			return;
		heap_swap(h, i, m);
		i = m;
	}
}

static void heap_push(struct health *h, struct target *t)
{
	t->heap_idx = h->nheap;
	h->heap[h->nheap++] = t;
	heap_fix(h, t->heap_idx);
}

static void heap_remove(struct health *h, struct target *t)
{
	size_t i = t->heap_idx;

	if (i >= h->nheap || h->heap[i] != t)
		return;
	h->nheap--;
	if (i != h->nheap) {
		h->heap[i] = h->heap[h->nheap];
		h->heap[i]->heap_idx = i;
		heap_fix(h, i);
	}
	t->heap_idx = (size_t)-1;
}

static void arm(struct health *h)
{
	struct itimerspec its = {};
	__u64 when;

	if (!h->nheap) {
		if (h->armed_ns) {
			timerfd_settime(h->tfd, TFD_TIMER_ABSTIME, &its, NULL);
			h->armed_ns = 0;
		}
		return;
	}
	when = due(h->heap[0]);
	if (when == h->armed_ns)
		return;
	if (!when)
		when = 1;	/* 0 would disarm */
	its.it_value.tv_sec = when / 1000000000ULL;
	its.it_value.tv_nsec = when % 1000000000ULL;
	if (timerfd_settime(h->tfd, TFD_TIMER_ABSTIME, &its, NULL))
		log_warn("health: timerfd_settime");
	h->armed_ns = when;
}

/* ---- verdicts into the backend map ---- */

static bool entry_is(const struct target *t, const struct ferry_backend *be)
{
	return be->svc_id == t->svc_id && be->port == t->port && be->family == t->family &&
	       !memcmp(be->addr, t->addr, sizeof(be->addr));
}

/*
 * Read-modify-write of the backend entry, only if it is still this backend
 * (an id can be reused) and only when the value differs: ferryctl may have
 * rewritten the entry with an older health, and this puts it right. The
 * write holds the writers' lock (maps_lock()) from its read on, so it
 * cannot undo a weight or state another writer changed in between; the
 * probing itself holds nothing.
 */
static bool health_stale(struct ferryd *d, const struct target *t, int health,
			 struct ferry_backend *be)
{
	return !bpf_map_lookup_elem(d->maps.be, &t->be_id, be) && entry_is(t, be) &&
	       be->health != health;
}

static void write_health(struct ferryd *d, const struct target *t, int health)
{
	struct ferry_backend be;
	int err;

	/* Every probe ends here, most with nothing to write: those read
	 * without the lock, and a write reads again under it. */
	if (!health_stale(d, t, health, &be))
		return;
	if ((err = ferryd_lock(d))) {
		/* Busy (a ferryctl edit): the verdict stays unwritten, and the
		 * next probe finds it so and writes it. */
		if (err == -EAGAIN)
			log_debug("health: writers' lock busy; backend %u's verdict at the next probe",
				  t->be_id);
		else
			log_warnx("health: locking the pin directory: %s; backend %u's verdict not "
				  "written", strerror(-err), t->be_id);
		return;
	}
	if (health_stale(d, t, health, &be)) {
		be.health = health;
		if (bpf_map_update_elem(d->maps.be, &t->be_id, &be, BPF_EXIST))
			log_warn("health: writing backend %u", t->be_id);
	}
	maps_unlock(&d->maps);
}

static const char *target_str(const struct target *t, char *buf, size_t len)
{
	return endpoint_str(t->addr, t->family, t->port, buf, len);
}

static void probe_done(struct ferryd *d, struct target *t, bool ok, const char *why)
{
	struct health *h = d->health;
	__u64 now = mono_ns();
	__u32 lat_ms = (now - t->start_ns) / 1000000ULL;
	int old = t->hs.health, now_h;
	char buf[96];

	if (t->fd >= 0) {
		epoll_ctl(h->epfd, EPOLL_CTL_DEL, t->fd, NULL);
		close(t->fd);
		t->fd = -1;
		h->inflight--;
	}
	h->probes++;
	now_h = hstate_update(&t->hs, &t->cfg, probe_classify(&t->cfg, ok, lat_ms));
	if (now_h != old) {
		h->changes++;
		log_info("health: backend %u %s: %s -> %s (%s, %u ms)", t->be_id,
			 target_str(t, buf, sizeof(buf)), health_name(old), health_name(now_h),
			 ok ? "probe passed" : why, lat_ms);
	} else {
		log_debug("health: backend %u %s: %s (%s, %u ms)", t->be_id,
			  target_str(t, buf, sizeof(buf)), health_name(now_h),
			  ok ? "passed" : why, lat_ms);
	}
	write_health(d, t, now_h);
	/* Keep the cadence: the next probe starts interval_ms after this one did. */
	t->next_ns = t->start_ns + (__u64)t->cfg.interval_ms * 1000000ULL;
	if (t->next_ns < now)
		t->next_ns = now;
	heap_fix(h, t->heap_idx);
}

static void probe_start(struct ferryd *d, struct target *t, __u64 now)
{
	struct health *h = d->health;
	struct sockaddr_storage ss = {};
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = t };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	socklen_t sslen;
	int fd;

	t->start_ns = now;
	t->deadline_ns = now + (__u64)t->cfg.timeout_ms * 1000000ULL;
	t->connected = false;
	t->sent = t->rlen = 0;
	if (t->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = t->port;
		s4->sin_addr.s_addr = t->addr[0];
		sslen = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = t->port;
		memcpy(&s6->sin6_addr, t->addr, 16);
		sslen = sizeof(*s6);
	}
	fd = socket(t->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_warn("health: socket");
		t->fd = -1;
		probe_done(d, t, false, strerror(errno));
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	t->fd = fd;
	h->inflight++;
	if (connect(fd, (struct sockaddr *)&ss, sslen) && errno != EINPROGRESS) {
		probe_done(d, t, false, strerror(errno));
		return;
	}
	if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		probe_done(d, t, false, strerror(errno));
		return;
	}
	heap_fix(h, t->heap_idx);
}

static void probe_io(struct ferryd *d, struct target *t, uint32_t events)
{
	struct health *h = d->health;
	int err = 0, code;
	socklen_t elen = sizeof(err);
	ssize_t n;

	if (!t->connected) {
		if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &elen) || err) {
			probe_done(d, t, false, strerror(err ? err : errno));
			return;
		}
		if (!(events & (EPOLLOUT | EPOLLIN)))
			return;
		t->connected = true;
		if (t->cfg.type == HEALTH_TCP) {
			probe_done(d, t, true, NULL);
			return;
		}
	}
	if (t->sent < t->reqlen) {
		n = send(t->fd, t->req + t->sent, t->reqlen - t->sent, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN) {
			probe_done(d, t, false, strerror(errno));
			return;
		}
		if (n > 0)
			t->sent += n;
		if (t->sent == t->reqlen) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = t };

			epoll_ctl(h->epfd, EPOLL_CTL_MOD, t->fd, &ev);
		}
		return;
	}
	n = recv(t->fd, t->resp + t->rlen, sizeof(t->resp) - t->rlen, 0);
	if (n < 0) {
		if (errno != EAGAIN)
			probe_done(d, t, false, strerror(errno));
		return;
	}
	t->rlen += n;
	/* The status line is all a verdict needs. */
	code = http_status_line(t->resp, t->rlen);
	if (code == -EAGAIN && n > 0 && t->rlen < sizeof(t->resp))
		return;
	if (code < 0) {
		probe_done(d, t, false, code == -EAGAIN ? "closed before a status line" :
					      "not an HTTP status line");
		return;
	}
	if (code >= 200 && code < 400) {
		probe_done(d, t, true, NULL);
	} else {
		char why[32];

		snprintf(why, sizeof(why), "HTTP %d", code);
		probe_done(d, t, false, why);
	}
}

static void on_timer(struct ferryd *d, struct health *h)
{
	__u64 ticks, now = mono_ns();
	struct target *t;

	if (read(h->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn("health: timerfd read");
	h->armed_ns = 0;
	while (h->nheap && due(h->heap[0]) <= now) {
		t = h->heap[0];
		if (t->fd >= 0) {
			probe_done(d, t, false, "timeout");
		} else if (h->inflight >= h->max_inflight) {
			t->next_ns = now + HEALTH_RETRY_NS;
			heap_fix(h, 0);
		} else {
			probe_start(d, t, now);
		}
	}
}

/*
 * One probe, one outcome. A batch from epoll_wait() may hold the timer and
 * socket events of probes the timer is about to end: on_timer() times a
 * probe out (its socket closed, t->fd -1) and may start the next one at
 * once, likely on the same descriptor number. An event fetched before that
 * belongs to the old probe: applied afterwards it would fail on EBADF (a
 * second failure) or, seen by the new connecting socket, pass a TCP probe
 * that never connected. So every socket event of a batch is applied first,
 * each to the probe it was fetched for (only probe_done() of that probe ends
 * it, and nothing starts a probe there), and the timer comes last.
 */
static void on_health(struct ferryd *d, int fd, uint32_t events, void *arg)
{
	struct health *h = arg;
	struct epoll_event evs[64];
	bool timer = false;
	int n, i;

	(void)fd;
	(void)events;
	n = epoll_wait(h->epfd, evs, 64, 0);
	for (i = 0; i < n; i++) {
		struct target *t = evs[i].data.ptr;

		if (!t)
			timer = true;
		else if (t->fd >= 0)	/* else ended already: not its probe's event */
			probe_io(d, t, evs[i].events);
	}
	if (timer)
		on_timer(d, h);
	arm(h);
}

/* ---- targets from the registry and the maps ---- */

static int cmp_target(const void *a, const void *b)
{
	const struct target *x = *(struct target *const *)a, *y = *(struct target *const *)b;

	if (x->be_id != y->be_id)
		return x->be_id < y->be_id ? -1 : 1;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	if (x->svc_id != y->svc_id)
		return x->svc_id < y->svc_id ? -1 : 1;
	return memcmp(x->addr, y->addr, sizeof(x->addr));
}

static void target_free(struct ferryd *d, struct target *t, bool reset)
{
	struct health *h = d->health;

	heap_remove(h, t);
	if (t->fd >= 0) {
		epoll_ctl(h->epfd, EPOLL_CTL_DEL, t->fd, NULL);
		close(t->fd);
		h->inflight--;
	}
	/* No more probing: the backend's health is unknown again. */
	if (reset)
		write_health(d, t, FERRY_HEALTH_UNKNOWN);
	free(t);
}

static void build_request(struct target *t)
{
	char host[96];

	target_str(t, host, sizeof(host));
	t->reqlen = snprintf(t->req, sizeof(t->req),
			     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ferryd-health/%s\r\n"
			     "Accept: */*\r\nConnection: close\r\n\r\n",
			     t->cfg.path, host, FERRY_VERSION);
	if (t->reqlen >= sizeof(t->req))
		t->reqlen = sizeof(t->req) - 1;
}

void health_sync(struct ferryd *d)
{
	struct health *h = d->health;
	struct target **nt, **heap, key, *kp = &key;
	size_t i, j, n = 0, want = 0, kept = 0;
	bool *taken;
	__u64 now = mono_ns();
	struct fstate st;
	int err;

	if (!h)
		return;
	if ((err = fstate_load(&d->maps, &st))) {
		log_warnx("health: reading the maps: %s; probe targets unchanged", strerror(-err));
		return;
	}
	for (i = 0; i < d->reg.nsvcs; i++) {
		const struct svc_state *ss = fstate_find(&st, &d->reg.svcs[i].key);

		if (d->reg.svcs[i].health.type != HEALTH_NONE && ss)
			want += ss->n;
	}
	nt = calloc(want + 1, sizeof(*nt));
	heap = calloc(want + 1, sizeof(*heap));
	taken = calloc(h->n + 1, sizeof(*taken));
	if (!nt || !heap || !taken) {
		free(nt);
		free(heap);
		free(taken);
		fstate_free(&st);
		log_warnx("health: out of memory for %zu probe targets; keeping the old ones", want);
		return;
	}
	for (i = 0; i < d->reg.nsvcs; i++) {
		const struct reg_service *rs = &d->reg.svcs[i];
		const struct svc_state *ss;

		if (rs->health.type == HEALTH_NONE || !(ss = fstate_find(&st, &rs->key)))
			continue;
		for (j = 0; j < ss->n && n < want; j++) {
			const struct be_state *b = &ss->bes[j];
			struct target *t, **hit;

			if (!b->id)
				continue;
			memset(&key, 0, sizeof(key));
			key.be_id = b->id;
			key.svc_id = ss->val.id;
			key.port = b->be.port;
			memcpy(key.addr, b->be.addr, sizeof(key.addr));
			hit = h->n ? bsearch(&kp, h->t, h->n, sizeof(*h->t), cmp_target) : NULL;
			if (hit && !taken[hit - h->t]) {
				t = *hit;
				taken[hit - h->t] = true;	/* taken over, probe in flight and all */
				kept++;
			} else {
				t = calloc(1, sizeof(*t));
				if (!t) {
					log_warnx("health: out of memory: backend %u not probed", b->id);
					continue;
				}
				*t = key;
				t->family = b->be.family;
				t->fd = -1;
				t->heap_idx = (size_t)-1;
				hstate_init(&t->hs, b->be.health);
				/* Spread first probes over one interval. */
				t->next_ns = now + (__u64)(rand() % (rs->health.interval_ms + 1)) * 1000000ULL;
			}
			t->cfg = rs->health;
			build_request(t);
			nt[n++] = t;
		}
	}
	fstate_free(&st);
	qsort(nt, n, sizeof(*nt), cmp_target);
	/* Targets that went away: stop their probes, forget their verdict. */
	for (i = 0; i < h->n; i++)
		if (!taken[i])
			target_free(d, h->t[i], true);
	free(taken);
	free(h->t);
	free(h->heap);
	h->t = nt;
	h->n = n;
	h->heap = heap;
	h->nheap = 0;
	for (i = 0; i < n; i++)
		heap_push(h, nt[i]);
	h->armed_ns = (__u64)-1;	/* force a re-arm */
	arm(h);
	log_debug("health: %zu probe targets (%zu kept), %zu probes in flight", n, kept, h->inflight);
}

int health_start(struct ferryd *d)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	struct health *h;
	struct rlimit rl;
	int err;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	h->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (h->epfd < 0 || h->tfd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->tfd, &ev)) {
		err = -errno;
		log_warn("health: epoll/timerfd");
		goto fail;
	}
	/* One descriptor per probe in flight: take what the hard limit allows. */
	h->max_inflight = HEALTH_MAX_INFLIGHT;
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < HEALTH_MAX_INFLIGHT + 1024) {
			rl.rlim_cur = rl.rlim_max < HEALTH_MAX_INFLIGHT + 1024 ?
				      rl.rlim_max : HEALTH_MAX_INFLIGHT + 1024;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		if (rl.rlim_cur < HEALTH_MAX_INFLIGHT + 1024)
			h->max_inflight = rl.rlim_cur > 512 ? rl.rlim_cur - 256 : rl.rlim_cur / 2;
	}
	d->health = h;
	if ((err = ev_add(d, h->epfd, EPOLLIN, on_health, h))) {
		log_warnx("health: adding to the event loop: %s", strerror(-err));
		d->health = NULL;
		goto fail;
	}
	srand(mono_ns() ^ getpid());
	return 0;
fail:
	if (h->epfd >= 0)
		close(h->epfd);
	if (h->tfd >= 0)
		close(h->tfd);
	free(h);
	return err;
}

void health_stop(struct ferryd *d)
{
	struct health *h = d->health;
	size_t i;

	if (!h)
		return;
	ev_del(d, h->epfd);
	/* Verdicts stay in the maps: a restarted ferryd picks them up. */
	for (i = 0; i < h->n; i++)
		if (h->t[i])
			target_free(d, h->t[i], false);
	free(h->t);
	free(h->heap);
	close(h->epfd);
	close(h->tfd);
	free(h);
	d->health = NULL;
}
