// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reconcile plans the XDP rings: a ring for every service with "xdp": true
 * when the XDP load balancer is loaded (fstate.xring_m set), rebuilt only
 * when the usable backend set (weights, draining) or the configured ring
 * size changes, not when health does; deleted with the flag or the service.
 * Pure planning, no BPF.
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

/* A node with the XDP maps, and one XDP service of n backends planned and
 * applied: its plan in p, the maps' state after it in cur and bes. */
static void applied(struct fstate *st, struct reg_service *w, int n, struct plan *p,
		    struct svc_state *cur, struct be_state *bes)
{
	struct plan_opts o = { .owner = FERRY_SVC_F_REGISTRY };
	char err[256];

	assert_int_equal(fstate_init(st, 64, 256), 0);
	st->xring_m = FERRY_XDP_DEF_RING_M;
	want_init(w, true, n);
	plan_init(p);
	assert_int_equal(plan_service(p, st, NULL, w, &o, err, sizeof(err)), 0);
	state_after(p, w, cur, bes, FERRY_XDP_DEF_RING_M);
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
	applied(&st, &w, 2, &p, &cur, bes);

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

/* How many entries of ring pm each of ids[0..n) owns, into c[]; the rest in c[n]. */
static void ring_shares(const struct plan_mag *pm, const __u32 *ids, size_t n, size_t *c)
{
	size_t i, j;

	memset(c, 0, (n + 1) * sizeof(*c));
	for (i = 0; i < pm->m; i++) {
		for (j = 0; j < n && pm->table[i] != ids[j]; j++)
			;
		c[j]++;
	}
}

/*
 * "state": "draining" takes a backend out of the ring (new flows), as
 * weight 0 does, without removing it (its flows stay: the flow table);
 * back to active, it is in the ring again. A service created with a
 * draining backend gets a ring without it.
 */
static void ring_without_draining_backend(void **state)
{
	struct plan_opts o = { .owner = FERRY_SVC_F_REGISTRY };
	struct be_state bes[4];
	struct svc_state cur;
	struct reg_service w;
	struct fstate st;
	struct plan p, q;
	char err[256];
	size_t c[3];
	__u32 ids[2];

	(void)state;
	applied(&st, &w, 2, &p, &cur, bes);
	ids[0] = bes[0].id;
	ids[1] = bes[1].id;

	/* Draining: the ring is rebuilt without it; the backend stays. */
	rb[1].state = be_state_parse("draining");
	assert_int_equal(rb[1].state, FERRY_BE_DRAINING);
	plan_init(&q);
	assert_int_equal(plan_service(&q, &st, &cur, &w, &o, err, sizeof(err)), 0);
	assert_int_equal(q.xring.n, 1);
	ring_shares(q.xring.d, ids, 2, c);
	assert_int_equal(c[0], FERRY_XDP_DEF_RING_M);
	assert_int_equal(c[1] + c[2], 0);
	assert_int_equal(q.be_del.n, 0);
	assert_int_equal(q.be_put_k.n, 1);
	assert_int_equal(((__u32 *)q.be_put_k.d)[0], ids[1]);
	assert_int_equal(((struct ferry_backend *)q.be_put_v.d)[0].state, FERRY_BE_DRAINING);
	plan_free(&q);

	/* Active again (the maps as the drain left them): back in the ring. */
	bes[1].be.state = FERRY_BE_DRAINING;
	rb[1].state = FERRY_BE_ACTIVE;
	plan_init(&q);
	assert_int_equal(plan_service(&q, &st, &cur, &w, &o, err, sizeof(err)), 0);
	assert_int_equal(q.xring.n, 1);
	ring_shares(q.xring.d, ids, 2, c);
	assert_true(c[0] > FERRY_XDP_DEF_RING_M * 0.45 && c[1] > FERRY_XDP_DEF_RING_M * 0.45);
	assert_int_equal(c[2], 0);
	plan_free(&q);
	plan_free(&p);
	fstate_free(&st);

	/* Created with a draining backend: never in the ring. */
	assert_int_equal(fstate_init(&st, 64, 256), 0);
	st.xring_m = FERRY_XDP_DEF_RING_M;
	want_init(&w, true, 2);
	rb[0].state = FERRY_BE_DRAINING;
	plan_init(&p);
	assert_int_equal(plan_service(&p, &st, NULL, &w, &o, err, sizeof(err)), 0);
	assert_int_equal(p.xring.n, 1);
	assert_int_equal(p.be_put_k.n, 2);
	ids[0] = ((__u32 *)p.be_put_k.d)[0];
	ids[1] = ((__u32 *)p.be_put_k.d)[1];
	ring_shares(p.xring.d, ids, 2, c);
	assert_int_equal(c[1], FERRY_XDP_DEF_RING_M);
	assert_int_equal(c[0] + c[2], 0);
	plan_free(&p);
	fstate_free(&st);
}

/*
 * Health is not the plan's: ferryd's probes write it into the backend map,
 * and the ring is built from the weights alone (the data path skips
 * UNHEALTHY backends for new flows). A sync that finds backends UNHEALTHY
 * or DEGRADED with the registry unchanged writes nothing and keeps the
 * ring; one that rebuilds the ring for another reason keeps an UNHEALTHY
 * backend in it, and the health in the entries it writes.
 */
static void ring_kept_on_health_change(void **state)
{
	struct plan_opts o = { .owner = FERRY_SVC_F_REGISTRY };
	struct be_state bes[4];
	struct svc_state cur;
	struct reg_service w;
	struct fstate st;
	struct plan p, q;
	char err[256];
	size_t c[4];
	__u32 ids[3];

	(void)state;
	applied(&st, &w, 3, &p, &cur, bes);
	ids[0] = bes[0].id;
	ids[1] = bes[1].id;
	ids[2] = bes[2].id;

	/* ferryd's probes: .12 UNHEALTHY, .13 DEGRADED. The next sync. */
	bes[1].be.health = FERRY_HEALTH_UNHEALTHY;
	bes[2].be.health = FERRY_HEALTH_DEGRADED;
	plan_init(&q);
	assert_int_equal(plan_service(&q, &st, &cur, &w, &o, err, sizeof(err)), 0);
	assert_int_equal(q.xring.n, 0);
	assert_int_equal(plan_writes(&q), 0);
	plan_free(&q);

	/* Weight 0 on .13 rebuilds the ring: .12 in it all the same. */
	rb[2].weight = 0;
	plan_init(&q);
	assert_int_equal(plan_service(&q, &st, &cur, &w, &o, err, sizeof(err)), 0);
	assert_int_equal(q.xring.n, 1);
	ring_shares(q.xring.d, ids, 3, c);
	assert_true(c[0] > FERRY_XDP_DEF_RING_M * 0.45 && c[1] > FERRY_XDP_DEF_RING_M * 0.45);
	assert_int_equal(c[2] + c[3], 0);
	assert_int_equal(q.be_put_k.n, 1);
	assert_int_equal(((__u32 *)q.be_put_k.d)[0], ids[2]);
	assert_int_equal(((struct ferry_backend *)q.be_put_v.d)[0].health, FERRY_HEALTH_DEGRADED);
	plan_free(&q);
	plan_free(&p);
	fstate_free(&st);
}

/*
 * A service ferryctl made is the operator's, but its ring is the node's:
 * the registry's sync rebuilds it at the configured size when that changed
 * (ferryd restarted with another --xdp-ring-size) or when it has none (made
 * before XDP was loaded), and writes nothing else of it.
 */
static void ferryctl_ring_follows_size(void **state)
{
	struct registry none = { 0 };
	struct be_state bes[4];
	struct svc_state cur;
	struct reg_service w;
	struct fstate st;
	struct plan p, q;
	char err[256];
	const __u32 other = 131071;
	size_t i;

	(void)state;
	applied(&st, &w, 2, &p, &cur, bes);
	cur.val.flags = (cur.val.flags & ~FERRY_SVC_F_REGISTRY) | FERRY_SVC_F_MANUAL;
	st.svcs = &cur;		/* the maps hold it; the registry does not name it */
	st.n = 1;

	/* In step: nothing to write. */
	plan_init(&q);
	assert_int_equal(plan_registry(&q, &st, &none, err, sizeof(err)), 0);
	assert_int_equal(plan_writes(&q), 0);
	plan_free(&q);

	/* Another size configured, or no ring yet: the ring alone. */
	for (i = 0; i < 2; i++) {
		st.xring_m = i ? FERRY_XDP_DEF_RING_M : other;
		cur.xring_m = i ? 0 : FERRY_XDP_DEF_RING_M;
		plan_init(&q);
		assert_int_equal(plan_registry(&q, &st, &none, err, sizeof(err)), 0);
		assert_int_equal(q.xring.n, 1);
		assert_int_equal(((struct plan_mag *)q.xring.d)->m, st.xring_m);
		assert_int_equal(((struct plan_mag *)q.xring.d)->svc_id, cur.val.id);
		assert_int_equal(q.svc_put_k.n + q.svc_del.n + q.be_put_k.n + q.be_del.n, 0);
		assert_int_equal(q.slot_put_k.n + q.slot_del.n + q.xring_del.n, 0);
		plan_free(&q);
	}
	st.svcs = NULL;
	st.n = 0;
	plan_free(&p);
	fstate_free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_built_on_create),
		cmocka_unit_test(no_ring_without_xdp_loaded),
		cmocka_unit_test(ring_rebuilt_only_on_change),
		cmocka_unit_test(ring_without_draining_backend),
		cmocka_unit_test(ring_kept_on_health_change),
		cmocka_unit_test(ferryctl_ring_follows_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
