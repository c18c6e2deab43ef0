// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reconcile plans the XDP rings: a ring for every service with "xdp": true
 * when the XDP load balancer is loaded (fstate.xring_m set), rebuilt only
 * when the usable backend set or the configured ring size changes, deleted
 * with the flag or the service. Pure planning, no BPF.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include <ferry/abi.h>
#include <ferry/xdp.h>
#include "reconcile.h"
#include "registry.h"
#include "state.h"

static struct reg_backend rb[3];

static void want_init(struct reg_service *w, bool xdp, int n)
{
	int i;

	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "xdp/web");
	inet_pton(AF_INET, "198.51.100.10", w->key.addr);
	w->key.family = AF_INET;
	w->key.port = htons(80);
	w->key.proto = 6;
	w->xdp = xdp;
	circuit_defaults(&w->circuit);
	for (i = 0; i < n; i++) {
		char ip[32];

		memset(&rb[i], 0, sizeof(rb[i]));
		snprintf(ip, sizeof(ip), "192.0.2.%d", 11 + i);
		faddr_parse(ip, &rb[i].addr);
		rb[i].port = 80;
		rb[i].weight = 1;
	}
	w->backends = rb;
	w->nbackends = n;
}

/* The state the maps would hold after applying p (one service). */
static void state_after(const struct plan *p, const struct reg_service *w, struct svc_state *cur,
			struct be_state *bes, __u32 xring_m)
{
	size_t i;

	memset(cur, 0, sizeof(*cur));
	cur->key = w->key;
	cur->val = ((struct ferry_svc *)p->svc_put_v.d)[0];
	snprintf(cur->name, sizeof(cur->name), "%s", w->name);
	for (i = 0; i < p->be_put_k.n; i++) {
		bes[i].id = ((__u32 *)p->be_put_k.d)[i];
		bes[i].be = ((struct ferry_backend *)p->be_put_v.d)[i];
		bes[i].cum_weight = ((struct ferry_slot *)p->slot_put_v.d)[i].cum_weight;
	}
	cur->bes = bes;
	cur->n = p->be_put_k.n;
	cur->xring_m = xring_m;
}

static void ring_built_on_create(void **state)
{
	struct plan_opts o = { .owner = FERRY_SVC_F_REGISTRY };
	struct reg_service w;
	struct fstate st;
	struct plan p;
	char err[256];
	size_t i, c[2] = {};

	(void)state;
	assert_int_equal(fstate_init(&st, 64, 256), 0);
	st.xring_m = FERRY_XDP_DEF_RING_M;
	want_init(&w, true, 2);
	plan_init(&p);
	assert_int_equal(plan_service(&p, &st, NULL, &w, &o, err, sizeof(err)), 0);
	assert_int_equal(p.xring.n, 1);
	{
		struct plan_mag *pm = p.xring.d;
		__u32 id0 = ((__u32 *)p.be_put_k.d)[0];

		assert_int_equal(pm->m, FERRY_XDP_DEF_RING_M);
		for (i = 0; i < pm->m; i++)
			c[pm->table[i] != id0]++;
		/* Equal weights: each backend owns about half the ring. */
		assert_true(c[0] > pm->m * 0.45 && c[1] > pm->m * 0.45);
	}
	assert_int_equal(((struct ferry_svc *)p.svc_put_v.d)[0].flags & FERRY_SVC_F_XDP, FERRY_SVC_F_XDP);
	plan_free(&p);
	fstate_free(&st);
}

static void no_ring_without_xdp_loaded(void **state)
{
	struct plan_opts o = { .owner = FERRY_SVC_F_REGISTRY };
	struct reg_service w;
	struct fstate st;
	struct plan p;
	char err[256];

	(void)state;
	assert_int_equal(fstate_init(&st, 64, 256), 0);	/* xring_m 0: no XDP maps */
	want_init(&w, true, 2);
	plan_init(&p);
	assert_int_equal(plan_service(&p, &st, NULL, &w, &o, err, sizeof(err)), 0);
	assert_int_equal(p.xring.n, 0);
	plan_free(&p);
	fstate_free(&st);
}

static void ring_rebuilt_only_on_change(void **state)
{
	struct plan_opts o = { .owner = FERRY_SVC_F_REGISTRY };
	struct be_state bes[4];
	struct svc_state cur;
	struct reg_service w;
	struct fstate st;
	struct plan p, q;
	char err[256];

	(void)state;
	assert_int_equal(fstate_init(&st, 64, 256), 0);
	st.xring_m = FERRY_XDP_DEF_RING_M;
	want_init(&w, true, 2);
	plan_init(&p);
	assert_int_equal(plan_service(&p, &st, NULL, &w, &o, err, sizeof(err)), 0);
	state_after(&p, &w, &cur, bes, FERRY_XDP_DEF_RING_M);

	/* Same registry: nothing to write, no ring. */
	plan_init(&q);
	assert_int_equal(plan_service(&q, &st, &cur, &w, &o, err, sizeof(err)), 0);
	assert_int_equal(q.xring.n, 0);
	assert_int_equal(plan_writes(&q), 0);
	plan_free(&q);

	/* Weight 0 on one backend: the ring is rebuilt without it. */
	rb[1].weight = 0;
	plan_init(&q);
	assert_int_equal(plan_service(&q, &st, &cur, &w, &o, err, sizeof(err)), 0);
	assert_int_equal(q.xring.n, 1);
	{
		struct plan_mag *pm = q.xring.d;
		size_t i;

		for (i = 0; i < pm->m; i++)
			assert_int_equal(pm->table[i], bes[0].id);
	}
	plan_free(&q);
	rb[1].weight = 1;

	/* Another ring size configured: rebuilt at that size. */
	st.xring_m = 16381;
	plan_init(&q);
	assert_int_equal(plan_service(&q, &st, &cur, &w, &o, err, sizeof(err)), 0);
	assert_int_equal(q.xring.n, 1);
	assert_int_equal(((struct plan_mag *)q.xring.d)->m, 16381);
	plan_free(&q);
	st.xring_m = FERRY_XDP_DEF_RING_M;

	/* The flag goes: the ring goes. */
	w.xdp = false;
	plan_init(&q);
	assert_int_equal(plan_service(&q, &st, &cur, &w, &o, err, sizeof(err)), 0);
	assert_int_equal(q.xring.n, 0);
	assert_int_equal(q.xring_del.n, 1);
	plan_free(&q);

	/* The service goes: the ring goes. */
	plan_init(&q);
	assert_int_equal(plan_service(&q, &st, &cur, NULL, &o, err, sizeof(err)), 0);
	assert_int_equal(q.xring_del.n, 1);
	assert_int_equal(((__u32 *)q.xring_del.d)[0], cur.val.id);
	plan_free(&q);

	plan_free(&p);
	fstate_free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_built_on_create),
		cmocka_unit_test(no_ring_without_xdp_loaded),
		cmocka_unit_test(ring_rebuilt_only_on_change),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
