// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Health verdicts from probe results (userspace/lib/healthsm.c): UNHEALTHY
 * after unhealthy_after failures in a row and back after healthy_after
 * passes, DEGRADED for intermittent failures and slow passes, HEALTHY
 * otherwise, and what a restarted ferryd keeps.
 *
 * Then the prober that feeds them (ferryd's health.c, linked in, driven the
 * way ferryd's loop drives it): one probe, one outcome, also when one batch
 * of its events holds both the timer that times a probe out and that
 * probe's answer. Those tests need BPF (root) for the maps the prober reads
 * its targets from and writes its verdicts to; they run on a clock of their
 * own, so what is due never depends on how fast the machine is.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <cmocka.h>

#include <ferry/abi.h>
#include "healthsm.h"
#include "maps.h"
#include "realmaps.h"
#include "reconcile.h"
#include "registry.h"
#include "state.h"
#include "../../userspace/ferryd/ferryd.h"

static struct reg_health hc(void)
{
	struct reg_health h = { .type = HEALTH_HTTP, .interval_ms = 100, .timeout_ms = 400,
				.healthy_after = 2, .unhealthy_after = 3 };
	return h;
}

static int feed(struct hstate *h, const struct reg_health *c, const char *pattern)
{
	int r = h->health;

	for (; *pattern; pattern++)
		r = hstate_update(h, c, *pattern == 'F' ? PROBE_FAIL : *pattern == 'S' ? PROBE_SLOW : PROBE_PASS);
	return r;
}

static void healthy_after_passes(void **state)
{
	struct reg_health c = hc();
	struct hstate h;

	(void)state;
	hstate_init(&h, FERRY_HEALTH_UNKNOWN);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_UNKNOWN);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_HEALTHY);
}

static void unhealthy_after_failures(void **state)
{
	struct reg_health c = hc();
	struct hstate h;

	(void)state;
	hstate_init(&h, FERRY_HEALTH_UNKNOWN);
	assert_int_equal(feed(&h, &c, "PP"), FERRY_HEALTH_HEALTHY);
	assert_int_equal(feed(&h, &c, "F"), FERRY_HEALTH_DEGRADED);
	assert_int_equal(feed(&h, &c, "F"), FERRY_HEALTH_DEGRADED);
	assert_int_equal(feed(&h, &c, "F"), FERRY_HEALTH_UNHEALTHY);
	/* Stays down until healthy_after passes in a row. */
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_UNHEALTHY);
	assert_int_equal(feed(&h, &c, "F"), FERRY_HEALTH_UNHEALTHY);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_UNHEALTHY);
	/* Recovered: the outage is not held against it. */
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_HEALTHY);
}

static void intermittent_is_degraded(void **state)
{
	struct reg_health c = hc();
	struct hstate h;

	(void)state;
	hstate_init(&h, FERRY_HEALTH_UNKNOWN);
	assert_int_equal(feed(&h, &c, "PFPFPFPF"), FERRY_HEALTH_DEGRADED);
	/* The last failure leaves the 8-probe window: healthy again. */
	assert_int_equal(feed(&h, &c, "PPPPPPP"), FERRY_HEALTH_DEGRADED);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_HEALTHY);
}

static void flaky_from_start_is_degraded(void **state)
{
	struct reg_health c = hc();
	struct hstate h;

	(void)state;
	c.unhealthy_after = 2;
	c.healthy_after = 1;
	hstate_init(&h, FERRY_HEALTH_UNKNOWN);
	assert_int_equal(feed(&h, &c, "F"), FERRY_HEALTH_DEGRADED);
	assert_int_equal(feed(&h, &c, "PFPFPF"), FERRY_HEALTH_DEGRADED);
}

static void slow_is_degraded(void **state)
{
	struct reg_health c = hc();
	struct hstate h;

	(void)state;
	assert_int_equal(probe_classify(&c, true, 200), PROBE_PASS);
	assert_int_equal(probe_classify(&c, true, 201), PROBE_SLOW);
	assert_int_equal(probe_classify(&c, false, 1), PROBE_FAIL);
	hstate_init(&h, FERRY_HEALTH_UNKNOWN);
	assert_int_equal(feed(&h, &c, "PP"), FERRY_HEALTH_HEALTHY);
	assert_int_equal(feed(&h, &c, "S"), FERRY_HEALTH_DEGRADED);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_DEGRADED);
	/* No slow one among the last healthy_after: healthy. */
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_HEALTHY);
	/* Slow for ever: degraded, never unhealthy. */
	assert_int_equal(feed(&h, &c, "SSSSSSSSSS"), FERRY_HEALTH_DEGRADED);
}

static void restart_keeps_verdict(void **state)
{
	struct reg_health c = hc();
	struct hstate h;

	(void)state;
	hstate_init(&h, FERRY_HEALTH_UNHEALTHY);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_UNHEALTHY);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_HEALTHY);
}

/* ---- the prober: one probe, one outcome ---- */

#define MS	1000000ULL

/*
 * The prober's clock (--wrap=clock_gettime): CLOCK_MONOTONIC reads
 * fake_now_ns while a test has set it. It starts 1 s after boot, long
 * before the real clock, so every deadline the prober arms its timerfd for
 * has passed already: the timer fires at once, and what is due when it
 * fires is decided by this clock alone.
 */
static __u64 fake_now_ns;

int __real_clock_gettime(clockid_t clk, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clk, struct timespec *ts);

int __wrap_clock_gettime(clockid_t clk, struct timespec *ts)
{
	if (clk != CLOCK_MONOTONIC || !fake_now_ns)
		return __real_clock_gettime(clk, ts);
	ts->tv_sec = fake_now_ns / 1000000000ULL;
	ts->tv_nsec = fake_now_ns % 1000000000ULL;
	return 0;
}

/* Every probe's outcome as the state machine is fed it (--wrap=
 * hstate_update), in order: P passed, S passed slowly, F failed. */
static char outcomes[16];

int __real_hstate_update(struct hstate *h, const struct reg_health *cfg, enum probe_result r);
int __wrap_hstate_update(struct hstate *h, const struct reg_health *cfg, enum probe_result r);

int __wrap_hstate_update(struct hstate *h, const struct reg_health *cfg, enum probe_result r)
{
	size_t n = strlen(outcomes);

	if (n < sizeof(outcomes) - 1)
		outcomes[n] = "PSF"[r];
	return __real_hstate_update(h, cfg, r);
}

/* What health.c uses of ferryd's main.c: its loop takes one watcher, the
 * prober's epoll set, whose callback the tests call as the loop would. */
static struct {
	int	fd;
	ev_cb	cb;
	void	*arg;
} watcher;

int ev_add(struct ferryd *d, int fd, uint32_t events, ev_cb cb, void *arg)
{
	(void)d;
	(void)events;
	watcher.fd = fd;
	watcher.cb = cb;
	watcher.arg = arg;
	return 0;
}

void ev_del(struct ferryd *d, int fd)
{
	(void)d;
	(void)fd;
	watcher.cb = NULL;
}

int ferryd_lock(struct ferryd *d)
{
	return maps_lock(&d->maps, 0);
}

struct prober {
	struct ferryd d;
	int	lfd;	/* the backend: a listener on 127.0.0.1 */
	__u64	t0;	/* the clock at the sync */
	unsigned	interval_ms, timeout_ms;
};

/*
 * ferryd after a sync of one service whose one backend is our listener,
 * health-checked over HTTP, 1 pass or 1 failure making a verdict. The first
 * probe is due within interval_ms. Non-zero without BPF (not root).
 */
static int prober_open(struct prober *p, unsigned interval_ms, unsigned timeout_ms)
{
	static const struct registry_limits lim = { .max_services = 16, .max_backends = 64 };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	char doc[512], err[FERRY_ERR_LEN];
	struct fstate st;
	struct plan pl;

	memset(p, 0, sizeof(*p));
	p->interval_ms = interval_ms;
	p->timeout_ms = timeout_ms;
	if (real_maps_open(&p->d.maps, 64, 64)) {
		real_maps_close(&p->d.maps);
		return -1;
	}
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->lfd >= 0);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(p->lfd, 8), 0);
	assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&sa, &len), 0);
	snprintf(doc, sizeof(doc),
		 "{\"services\": [{\"name\": \"web\", \"vip\": \"198.51.100.10\", \"port\": 80, "
		 "\"backends\": [{\"ip\": \"127.0.0.1\", \"port\": %u}], "
		 "\"health\": {\"type\": \"http\", \"interval_ms\": %u, \"timeout_ms\": %u, "
		 "\"healthy_after\": 1, \"unhealthy_after\": 1}}]}",
		 ntohs(sa.sin_port), interval_ms, timeout_ms);
	if (registry_parse(doc, strlen(doc), "health.json", &lim, &p->d.reg, err, sizeof(err)))
		fail_msg("test registry rejected: %s", err);
	assert_int_equal(fstate_init(&st, 16, 64), 0);
	plan_init(&pl);
	assert_int_equal(plan_registry(&pl, &st, &p->d.reg, err, sizeof(err)), 0);
	if (plan_apply(&p->d.maps, &pl, err, sizeof(err)))
		fail_msg("apply: %s", err);
	plan_free(&pl);
	fstate_free(&st);

	fake_now_ns = p->t0 = 1000 * MS;
	memset(outcomes, 0, sizeof(outcomes));
	assert_int_equal(health_start(&p->d), 0);
	assert_non_null(watcher.cb);
	health_sync(&p->d);
	return 0;
}

static void prober_close(struct prober *p)
{
	health_stop(&p->d);
	registry_free(&p->d.reg);
	real_maps_close(&p->d.maps);
	close(p->lfd);
	fake_now_ns = 0;
}

/* Wait for fd to be readable: the event is due at once, so the limit only
 * turns a broken prober into a failure instead of a hang until run.sh's. */
#define READY_LIMIT_MS	60000

static void wait_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	assert_int_equal(poll(&pfd, 1, READY_LIMIT_MS), 1);
}

/* The loop's turn: its epoll set said the prober's set is ready. */
static void run_batch(struct ferryd *d)
{
	watcher.cb(d, watcher.fd, EPOLLIN, watcher.arg);
}

/* The prober's socket of the connection our listener accepted as conn:
 * the one bound to conn's peer address (the test's descriptors are few). */
static int probe_fd(int conn)
{
	struct sockaddr_in peer, sa;
	socklen_t len = sizeof(peer);
	int fd;

	assert_int_equal(getpeername(conn, (struct sockaddr *)&peer, &len), 0);
	for (fd = 0; fd < 1024; fd++) {
		len = sizeof(sa);
		if (fd != conn && !getsockname(fd, (struct sockaddr *)&sa, &len) &&
		    sa.sin_family == AF_INET && sa.sin_port == peer.sin_port &&
		    sa.sin_addr.s_addr == peer.sin_addr.s_addr)
			return fd;
	}
	fail_msg("no socket of ours is the probe's");
	return -1;
}

/*
 * A probe the timer started, driven until only its answer is missing: it
 * connects (our listener accepts it), sends its request on EPOLLOUT, and we
 * read the request in full. Returns our end; *probe is the prober's.
 */
static int probe_asks(struct prober *p, int *probe)
{
	char req[512];
	size_t n = 0;
	ssize_t r;
	int conn;

	conn = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(conn >= 0);
	*probe = probe_fd(conn);
	wait_readable(watcher.fd);	/* connected: EPOLLOUT */
	run_batch(&p->d);
	while (n < 4 || memcmp(req + n - 4, "\r\n\r\n", 4)) {
		assert_true(n < sizeof(req));
		r = recv(conn, req + n, sizeof(req) - n, 0);
		assert_true(r > 0);
		n += r;
	}
	return conn;
}

/* Our end answers; the answer is in the prober's socket. */
static void answer(int conn, int probe, const char *text)
{
	assert_int_equal(send(conn, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
	wait_readable(probe);
}

/*
 * The batch of 962a051. The first probe, started by the timer, asks
 * (probe_asks()); its deadline passes and the timer fires (nothing else can
 * make the prober's set ready: the probe waits for its answer); then the
 * answer arrives. One batch fetches both, the timer first, as it was ready
 * first: the order the old handler went wrong in. Returns our end.
 */
static int answer_at_deadline(struct prober *p, const char *text)
{
	int conn, probe;

	fake_now_ns = p->t0 + p->interval_ms * MS;	/* the first probe is due */
	wait_readable(watcher.fd);
	run_batch(&p->d);
	conn = probe_asks(p, &probe);
	fake_now_ns += p->timeout_ms * MS;
	wait_readable(watcher.fd);
	answer(conn, probe, text);
	run_batch(&p->d);
	return conn;
}

/* The verdict written to the one backend's entry. */
static int be_health(const struct prober *p)
{
	struct ferry_backend be;
	__u32 id;

	assert_int_equal(bpf_map_get_next_key(p->d.maps.be, NULL, &id), 0);
	assert_int_equal(bpf_map_lookup_elem(p->d.maps.be, &id, &be), 0);
	return be.health;
}

/*
 * The answer in the timeout's batch is the probe's one outcome: a pass, a
 * slow one (it came at the deadline), so DEGRADED. (Timed out first, and
 * the answer's event applied to its closed socket after, the probe failed
 * twice: the timeout, then recv() on EBADF.)
 */
static void answer_in_timeout_batch_is_one_outcome(void **state)
{
	struct prober p;
	int conn;

	(void)state;
	if (prober_open(&p, 1000, 100))
		skip();	/* no BPF here (not root) */
	conn = answer_at_deadline(&p, "HTTP/1.1 200 OK\r\n\r\n");
	assert_string_equal(outcomes, "S");
	assert_int_equal(be_health(&p), FERRY_HEALTH_DEGRADED);
	close(conn);
	prober_close(&p);
}

/*
 * The next probe is due at the deadline too (interval_ms == timeout_ms):
 * the timer starts it once the batch's answer has ended this probe, and it
 * ends on an answer of its own. (Timed out first, the next probe started at
 * once on the descriptor just closed and took the answer's event as its
 * connect: this probe failed, and the answer was lost.)
 */
static void next_probe_starts_after_the_batch(void **state)
{
	struct prober p;
	int conn, conn2, probe2;

	(void)state;
	if (prober_open(&p, 100, 100))
		skip();	/* no BPF here (not root) */
	conn = answer_at_deadline(&p, "HTTP/1.1 200 OK\r\n\r\n");
	assert_string_equal(outcomes, "S");
	conn2 = probe_asks(&p, &probe2);
	answer(conn2, probe2, "HTTP/1.1 503 \r\n\r\n");
	run_batch(&p.d);
	assert_string_equal(outcomes, "SF");
	assert_int_equal(be_health(&p), FERRY_HEALTH_UNHEALTHY);
	close(conn);
	close(conn2);
	prober_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(healthy_after_passes),
		cmocka_unit_test(unhealthy_after_failures),
		cmocka_unit_test(intermittent_is_degraded),
		cmocka_unit_test(flaky_from_start_is_degraded),
		cmocka_unit_test(slow_is_degraded),
		cmocka_unit_test(restart_keeps_verdict),
		cmocka_unit_test(answer_in_timeout_batch_is_one_outcome),
		cmocka_unit_test(next_probe_starts_after_the_batch),
	};

	return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
