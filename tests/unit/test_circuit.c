// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The circuit breaker's state machine (bpf/lib/circuit_sm.h), compiled in
 * userspace from the very header the BPF programs use: thresholds, ejection
 * times (x ejections, capped, reset after the quiet period), half-open
 * probes, max_ejection_percent, max_connections, the leaked-count repair,
 * and exact counters under concurrent threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include <cmocka.h>

#include <ferry/abi.h>
#include "../../bpf/lib/circuit_sm.h"

#define MS	1000000ULL
#define T0	(1000 * MS)

static struct ferry_circuit_cfg cfg(void)
{
	struct ferry_circuit_cfg c = {
		.consecutive_failures = 3, .base_ejection_ms = 200, .max_ejection_ms = 1000,
		.max_ejection_percent = 50, .half_open_probes = 1, .max_connections = 0,
	};
	return c;
}

/* A connect through the whole path: reserve, then fail or succeed. */
static int connect_fail(const struct ferry_circuit_cfg *c, struct ferry_bestat *st, __u64 now,
			__u32 *ej, __u32 n, __u32 *ev)
{
	__u32 e = 0;
	int r = cb_reserve(c, st, now, &e);

	if (r < 0)
		return r;
	e |= cb_failure(c, st, now, r == CB_ADMIT_PROBE, 111, ej, n);
	if (r == CB_ADMIT_PROBE)
		cb_release_probe(st);
	cb_release(st);
	if (ev)
		*ev = e;
	return r;
}

static int connect_ok(const struct ferry_circuit_cfg *c, struct ferry_bestat *st, __u64 now,
		      __u32 *ej, __u32 *ev)
{
	__u32 e = 0;
	int r = cb_reserve(c, st, now, &e);

	if (r < 0)
		return r;
	e |= cb_success(st, now, r == CB_ADMIT_PROBE, ej);
	if (r == CB_ADMIT_PROBE)
		cb_release_probe(st);
	cb_release(st);
	if (ev)
		*ev = e;
	return r;
}

static void opens_at_threshold(void **state)
{
	struct ferry_circuit_cfg c = cfg();
	struct ferry_bestat st = {};
	__u32 ej = 0, ev = 0;

	(void)state;
	assert_int_equal(connect_fail(&c, &st, T0, &ej, 3, &ev), CB_ADMIT);
	assert_int_equal(connect_fail(&c, &st, T0, &ej, 3, &ev), CB_ADMIT);
	assert_int_equal(st.circuit, FERRY_CIRCUIT_CLOSED);
	assert_int_equal(cb_check(&c, &st, T0), CB_OK);
	assert_int_equal(connect_fail(&c, &st, T0, &ej, 3, &ev), CB_ADMIT);
	assert_true(ev & CB_EV_OPENED);
	assert_int_equal(st.circuit, FERRY_CIRCUIT_OPEN);
	assert_int_equal(st.ejections, 1);
	assert_int_equal(st.failed, 3);
	assert_int_equal(ej, 1);
	/* The very next connect may not have it. */
	assert_int_equal(cb_check(&c, &st, T0 + 1), CB_DENY_OPEN);
	assert_int_equal(connect_ok(&c, &st, T0 + 1, &ej, NULL), -CB_DENY_OPEN);
	assert_int_equal(st.open_until_ns, T0 + 200 * MS);
	assert_int_equal(st.active, 0);
}

static void success_resets_consecutive(void **state)
{
	struct ferry_circuit_cfg c = cfg();
	struct ferry_bestat st = {};
	__u32 ej = 0;

	(void)state;
	connect_fail(&c, &st, T0, &ej, 3, NULL);
	connect_fail(&c, &st, T0, &ej, 3, NULL);
	connect_ok(&c, &st, T0, &ej, NULL);
	assert_int_equal(st.consecutive, 0);
	connect_fail(&c, &st, T0, &ej, 3, NULL);
	connect_fail(&c, &st, T0, &ej, 3, NULL);
	assert_int_equal(st.circuit, FERRY_CIRCUIT_CLOSED);
	assert_int_equal(st.success, 1);
	assert_int_equal(st.failed, 4);
}

static void disabled_never_opens(void **state)
{
	struct ferry_circuit_cfg c = cfg();
	struct ferry_bestat st = {};
	__u32 ej = 0;
	int i;

	(void)state;
	c.consecutive_failures = 0;
	for (i = 0; i < 20; i++)
		assert_int_equal(connect_fail(&c, &st, T0, &ej, 3, NULL), CB_ADMIT);
	assert_int_equal(st.circuit, FERRY_CIRCUIT_CLOSED);
	assert_int_equal(st.failed, 20);
	/* Turning the breaker off re-admits an open backend at once. */
	st.circuit = FERRY_CIRCUIT_OPEN;
	st.open_until_ns = T0 + 1000 * MS;
	assert_int_equal(cb_check(&c, &st, T0), CB_OK);
}

static void half_open_probe_success_closes(void **state)
{
	struct ferry_circuit_cfg c = cfg();
	struct ferry_bestat st = {};
	__u32 ej = 0, ev = 0;
	__u64 t;
	int i;

	(void)state;
	for (i = 0; i < 3; i++)
		connect_fail(&c, &st, T0, &ej, 3, NULL);
	t = st.open_until_ns;
	assert_int_equal(cb_check(&c, &st, t - 1), CB_DENY_OPEN);
	assert_int_equal(cb_check(&c, &st, t), CB_OK);
	assert_int_equal(connect_ok(&c, &st, t, &ej, &ev), CB_ADMIT_PROBE);
	assert_true(ev & CB_EV_HALF_OPEN);
	assert_true(ev & CB_EV_CLOSED);
	assert_int_equal(st.circuit, FERRY_CIRCUIT_CLOSED);
	assert_int_equal(st.half_open_inflight, 0);
	assert_int_equal(ej, 0);
	assert_int_equal(st.last_change_ns, t);
}

static void half_open_limits_probes(void **state)
{
	struct ferry_circuit_cfg c = cfg();
	struct ferry_bestat st = {};
	__u32 ej = 0, ev = 0;
	int i;

	(void)state;
	c.half_open_probes = 2;
	for (i = 0; i < 3; i++)
		connect_fail(&c, &st, T0, &ej, 3, NULL);
	assert_int_equal(cb_reserve(&c, &st, st.open_until_ns, &ev), CB_ADMIT_PROBE);
	assert_int_equal(cb_reserve(&c, &st, st.open_until_ns, &ev), CB_ADMIT_PROBE);
	assert_int_equal(st.half_open_inflight, 2);
	assert_int_equal(cb_check(&c, &st, st.open_until_ns), CB_DENY_OPEN);
	assert_int_equal(cb_reserve(&c, &st, st.open_until_ns, &ev), -CB_DENY_OPEN);
	assert_int_equal(st.half_open_inflight, 2);
	assert_int_equal(st.active, 2);
	/* A connect admitted before the ejection ends: it decides nothing. */
	assert_int_equal(cb_success(&st, st.open_until_ns, 0, &ej), 0);
	assert_int_equal(st.circuit, FERRY_CIRCUIT_HALF_OPEN);
}

static void probe_failure_reopens_doubling(void **state)
{
	struct ferry_circuit_cfg c = cfg();
	struct ferry_bestat st = {};
	__u32 ej = 0, ev = 0;
	__u64 t;
	int i;

	(void)state;
	for (i = 0; i < 3; i++)
		connect_fail(&c, &st, T0, &ej, 3, NULL);
	assert_int_equal(st.open_until_ns - st.last_change_ns, 200 * MS);
	t = st.open_until_ns;
	assert_int_equal(connect_fail(&c, &st, t, &ej, 3, &ev), CB_ADMIT_PROBE);
	assert_true(ev & CB_EV_OPENED);
	assert_int_equal(st.circuit, FERRY_CIRCUIT_OPEN);
	assert_int_equal(st.ejections, 2);
	assert_int_equal(st.open_until_ns - t, 400 * MS);
	assert_int_equal(ej, 1);	/* still the one ejected backend */
	t = st.open_until_ns;
	connect_fail(&c, &st, t, &ej, 3, NULL);
	assert_int_equal(st.open_until_ns - t, 600 * MS);
	/* Capped at max_ejection_ms. */
	for (i = 0; i < 5; i++) {
		t = st.open_until_ns;
		connect_fail(&c, &st, t, &ej, 3, NULL);
	}
	assert_int_equal(st.open_until_ns - t, 1000 * MS);
	assert_int_equal(st.ejections, 8);
}

static void quiet_period_resets_ejections(void **state)
{
	struct ferry_circuit_cfg c = cfg();
	struct ferry_bestat st = {};
	__u32 ej = 0;
	__u64 t, closed;
	int i;

	(void)state;
	for (i = 0; i < 3; i++)
		connect_fail(&c, &st, T0, &ej, 3, NULL);
	t = st.open_until_ns;
	connect_fail(&c, &st, t, &ej, 3, NULL);		/* ejection 2 */
	t = st.open_until_ns;
	connect_ok(&c, &st, t, &ej, NULL);		/* closes */
	closed = t;
	/* Fails again soon: ejection 3, 600 ms. */
	for (i = 0; i < 3; i++)
		connect_fail(&c, &st, closed + 10 * MS, &ej, 3, NULL);
	assert_int_equal(st.ejections, 3);
	assert_int_equal(st.open_until_ns - st.last_change_ns, 600 * MS);
	t = st.open_until_ns;
	connect_ok(&c, &st, t, &ej, NULL);
	closed = t;
	/* Fine for max_ejection_ms: forgiven, back to one base ejection. */
	for (i = 0; i < 3; i++)
		connect_fail(&c, &st, closed + 1000 * MS, &ej, 3, NULL);
	assert_int_equal(st.ejections, 1);
	assert_int_equal(st.open_until_ns - st.last_change_ns, 200 * MS);
}

static void max_ejection_percent_holds(void **state)
{
	struct ferry_circuit_cfg c = cfg();
	struct ferry_bestat a = {}, b = {};
	__u32 ej = 0, ev = 0;
	int i;

	(void)state;
	/* 3 backends, 50%: one may be ejected, not two. */
	for (i = 0; i < 3; i++)
		connect_fail(&c, &a, T0, &ej, 3, NULL);
	assert_int_equal(a.circuit, FERRY_CIRCUIT_OPEN);
	for (i = 0; i < 3; i++)
		connect_fail(&c, &b, T0, &ej, 3, &ev);
	assert_true(ev & CB_EV_LIMITED);
	assert_int_equal(b.circuit, FERRY_CIRCUIT_CLOSED);
	assert_int_equal(ej, 1);
	/* Every further failure tries again; a closes, then b may go. */
	connect_ok(&c, &a, a.open_until_ns, &ej, NULL);
	assert_int_equal(ej, 0);
	connect_fail(&c, &b, a.open_until_ns, &ej, 3, &ev);
	assert_true(ev & CB_EV_OPENED);
	assert_int_equal(b.circuit, FERRY_CIRCUIT_OPEN);
	assert_int_equal(ej, 1);
}

static void at_least_one_ejectable(void **state)
{
	struct ferry_circuit_cfg c = cfg();
	__u32 ej = 0;

	(void)state;
	c.max_ejection_percent = 0;
	assert_true(cb_eject_admit(&c, &ej, 2));
	assert_false(cb_eject_admit(&c, &ej, 2));
	assert_int_equal(ej, 1);
	c.max_ejection_percent = 100;
	ej = 0;
	assert_true(cb_eject_admit(&c, &ej, 2));
	assert_true(cb_eject_admit(&c, &ej, 2));
	assert_false(cb_eject_admit(&c, &ej, 2));
	/* No counter: the limit cannot be kept, so nothing is ejected. */
	assert_false(cb_eject_admit(&c, NULL, 2));
}

static void repair_lowers_leaked_count(void **state)
{
	struct ferry_circuit_cfg c = cfg();
	struct ferry_bestat b = {};
	__u32 ej = 1;	/* left by a backend removed while ejected */
	__u32 ev = 0;
	int i;

	(void)state;
	c.max_ejection_percent = 34;	/* of 3: one */
	for (i = 0; i < 3; i++)
		connect_fail(&c, &b, T0, &ej, 3, &ev);
	assert_true(ev & CB_EV_LIMITED);
	assert_false(cb_repair_count(&ej, 0, 0));	/* seen value stale: no write */
	assert_int_equal(ej, 1);
	assert_true(cb_repair_count(&ej, 1, 0));
	assert_int_equal(ej, 0);
	assert_int_equal(cb_try_eject(&c, &b, T0, &ej, 3), CB_EV_OPENED);
	assert_int_equal(ej, 1);
	/* Never below zero. */
	ej = 0;
	cb_uncount(&ej);
	assert_int_equal(ej, 0);
}

static void max_connections_exact(void **state)
{
	struct ferry_circuit_cfg c = cfg();
	struct ferry_bestat st = {};
	__u32 ev = 0;

	(void)state;
	c.max_connections = 2;
	assert_int_equal(cb_reserve(&c, &st, T0, &ev), CB_ADMIT);
	assert_int_equal(cb_reserve(&c, &st, T0, &ev), CB_ADMIT);
	assert_int_equal(cb_check(&c, &st, T0), CB_DENY_FULL);
	assert_int_equal(cb_reserve(&c, &st, T0, &ev), -CB_DENY_FULL);
	assert_int_equal(st.active, 2);
	assert_int_equal(st.opened, 2);
	cb_release(&st);
	assert_int_equal(cb_check(&c, &st, T0), CB_OK);
	assert_int_equal(cb_reserve(&c, &st, T0, &ev), CB_ADMIT);
}

static void opening_is_not_admitted(void **state)
{
	struct ferry_circuit_cfg c = cfg();
	struct ferry_bestat st = { .circuit = FERRY_CIRCUIT_OPENING };
	__u32 ev = 0;

	(void)state;
	assert_int_equal(cb_check(&c, &st, T0), CB_DENY_OPEN);
	assert_int_equal(cb_reserve(&c, &st, T0, &ev), -CB_DENY_OPEN);
}

/* ---- concurrency: no lost updates ---- */

struct race {
	struct ferry_circuit_cfg c;
	struct ferry_bestat st;
	__u32	ej;
	int	admitted;
	pthread_barrier_t go;
};

static void *race_reserve(void *arg)
{
	struct race *r = arg;
	__u32 ev = 0;
	int i, mine = 0;

	pthread_barrier_wait(&r->go);
	for (i = 0; i < 100000; i++) {
		if (cb_reserve(&r->c, &r->st, T0, &ev) >= 0) {
			mine++;
			cb_release(&r->st);
		}
	}
	__sync_fetch_and_add(&r->admitted, mine);
	return NULL;
}

static void counters_exact_under_threads(void **state)
{
	static struct race r;
	pthread_t t[4];
	int i;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.c = cfg();
	pthread_barrier_init(&r.go, NULL, 4);
	for (i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, race_reserve, &r);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(r.st.active, 0);
	assert_int_equal(r.st.opened, 400000);
	assert_int_equal(r.admitted, 400000);
}

static void *race_limit(void *arg)
{
	struct race *r = arg;
	__u32 ev = 0;
	int i, mine = 0;

	pthread_barrier_wait(&r->go);
	for (i = 0; i < 50000; i++) {
		if (cb_reserve(&r->c, &r->st, T0, &ev) >= 0)
			mine++;
	}
	__sync_fetch_and_add(&r->admitted, mine);
	return NULL;
}

static void max_connections_never_exceeded_under_threads(void **state)
{
	static struct race r;
	pthread_t t[4];
	int i;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.c = cfg();
	r.c.max_connections = 37;
	pthread_barrier_init(&r.go, NULL, 4);
	for (i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, race_limit, &r);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(r.admitted, 37);
	assert_int_equal(r.st.active, 37);
}

static void *race_fail(void *arg)
{
	struct race *r = arg;
	int i;

	pthread_barrier_wait(&r->go);
	for (i = 0; i < 50000; i++)
		cb_failure(&r->c, &r->st, T0, 0, 111, &r->ej, 3);
	return NULL;
}

static void one_ejection_from_concurrent_failures(void **state)
{
	static struct race r;
	pthread_t t[4];
	int i;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.c = cfg();
	pthread_barrier_init(&r.go, NULL, 4);
	for (i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, race_fail, &r);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(r.st.failed, 200000);
	assert_int_equal(r.st.consecutive, 200000);
	assert_int_equal(r.st.ejections, 1);
	assert_int_equal(r.st.circuit, FERRY_CIRCUIT_OPEN);
	assert_int_equal(r.ej, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(opens_at_threshold),
		cmocka_unit_test(success_resets_consecutive),
		cmocka_unit_test(disabled_never_opens),
		cmocka_unit_test(half_open_probe_success_closes),
		cmocka_unit_test(half_open_limits_probes),
		cmocka_unit_test(probe_failure_reopens_doubling),
		cmocka_unit_test(quiet_period_resets_ejections),
		cmocka_unit_test(max_ejection_percent_holds),
		cmocka_unit_test(at_least_one_ejectable),
		cmocka_unit_test(repair_lowers_leaked_count),
		cmocka_unit_test(max_connections_exact),
		cmocka_unit_test(opening_is_not_admitted),
		cmocka_unit_test(counters_exact_under_threads),
		cmocka_unit_test(max_connections_never_exceeded_under_threads),
		cmocka_unit_test(one_ejection_from_concurrent_failures),
	};

	return cmocka_run_group_tests_name("circuit", tests, NULL, NULL);
}
