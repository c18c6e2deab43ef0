/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Backend selection for the socket load balancer. Each policy draws a slot
 * (round robin: claims a cursor value); one whose backend may not take a
 * new connection is not replaced by the next slot, it is drawn again, a few
 * times, so the usable backends keep their shares (scanning on from it would
 * hand all of its share to its neighbour). When the draws miss, a bounded
 * scan (bpf_loop over at most FERRY_MAX_SVC_BACKENDS slots) from the last
 * slot drawn takes the first usable one. HEALTHY (or never probed) backends
 * win; a DEGRADED one is used only when no healthy one is left; UNHEALTHY,
 * draining, quarantined, weight 0, OPEN circuits (and half-open ones whose
 * probe slots are taken) and backends at max_connections are never picked.
 * A TCP connect then reserves its slot on the chosen backend (circuit.bpf.h).
 */
#ifndef FERRY_SELECT_BPF_H
#define FERRY_SELECT_BPF_H

#include "maps.bpf.h"
#include "circuit.bpf.h"
#include <ferry/flowhash.h>

#define FERRY_MAGLEV_PROBE	8	/* table entries tried after the hashed one */
#define FERRY_LC_P2C_TRIES	8	/* random draws to find two usable backends */
#define FERRY_SELECT_TRIES	3	/* picks when a reservation is lost to a race */
#define FERRY_DRAW_TRIES	4	/* random, weighted, maglev fallback: draws before the scan */

/* Load-time tunable: least_conn scans every backend of services up to this
 * size (exact), and uses power of two choices above it. */
const volatile __u32 cfg_lc_exact_max = 16;

enum be_class {
	BE_UNUSABLE = 0,
	BE_FULL,	/* only max_connections keeps it out */
	BE_DEGRADED,
	BE_GOOD,
};

/* *active: the backend's connection count (least_conn), when not NULL. */
static __always_inline enum be_class backend_class(const struct ferry_svc *svc,
						   __u32 backend_id,
						   const struct ferry_backend *be,
						   __u64 now, __u64 *active)
{
	struct ferry_bestat *st;
	int why;

	if (be->state != FERRY_BE_ACTIVE || be->weight == 0 ||
	    be->health == FERRY_HEALTH_UNHEALTHY)
		return BE_UNUSABLE;
	st = bpf_map_lookup_elem(&ferry_bestat_v2, &backend_id);
	if (active)
		*active = st ? st->active : 0;
	why = cb_check(&svc->circuit, st, now);
	if (why == CB_DENY_FULL)
		return BE_FULL;
	if (why)
		return BE_UNUSABLE;
	return be->health == FERRY_HEALTH_DEGRADED ? BE_DEGRADED : BE_GOOD;
}

/* least_conn: is (act_a / w_a) < (act_b / w_b)? Weights are never 0 here. */
static __always_inline bool lc_less(__u64 act_a, __u32 w_a, __u64 act_b, __u32 w_b)
{
	return act_a * w_b < act_b * w_a;
}

#define BE_MISSING	(-1)	/* slot or backend entry absent */

/* Slot pos of svc: its backend (id, entry) and how it may be used now. */
static __always_inline int slot_class(const struct ferry_svc *svc, __u32 pos, __u64 now,
				      __u64 *act, __u32 *id, struct ferry_backend **be)
{
	struct ferry_slot_key sk = { .svc_id = svc->id, .slot = pos };
	struct ferry_slot *slot = bpf_map_lookup_elem(&ferry_slot_v1, &sk);

	if (!slot)
		return BE_MISSING;
	*id = slot->backend_id;
	*be = bpf_map_lookup_elem(&ferry_be_v1, id);
	if (!*be)
		return BE_MISSING;
	return backend_class(svc, *id, *be, now, act);
}

struct scan_ctx {
	const struct ferry_svc *svc;
	__u64	now;
	__u32	start;
	__u32	count;
	__u32	found;		/* backend id, 0: none yet */
	__u32	degraded;	/* best degraded backend id seen */
	/* least_conn: best so far, among good and among degraded ones */
	__u64	best_active;
	__u32	best_weight;
	__u64	deg_active;
	__u32	deg_weight;
	__u8	least_conn;
	__u8	lookup_fail;
	__u8	full;		/* a backend was skipped for max_connections */
};

static long scan_cb(__u32 i, void *data)
{
	struct scan_ctx *c = data;
	struct ferry_backend *be;
	__u32 pos = c->start + i, id;
	__u64 act = 0;
	int cls;

	if (pos >= c->count)
		pos -= c->count;
	cls = slot_class(c->svc, pos, c->now, &act, &id, &be);
	if (cls == BE_MISSING) {
		c->lookup_fail = 1;
		return 0;
	}
	if (cls == BE_FULL)
		c->full = 1;
	if (cls <= BE_FULL)
		return 0;
	if (!c->least_conn) {
		if (cls == BE_DEGRADED) {
			if (!c->degraded)
				c->degraded = id;
			return 0;
		}
		c->found = id;
		return 1;
	}
	/* least_conn: fewest connections per unit of weight, per class. */
	if (cls == BE_DEGRADED) {
		if (!c->degraded || lc_less(act, be->weight, c->deg_active, c->deg_weight)) {
			c->degraded = id;
			c->deg_active = act;
			c->deg_weight = be->weight;
		}
		return 0;
	}
	if (!c->found || lc_less(act, be->weight, c->best_active, c->best_weight)) {
		c->found = id;
		c->best_active = act;
		c->best_weight = be->weight;
	}
	return 0;
}

/* Scan nr slots from slot start; 0 when nothing is usable. */
static __always_inline __u32 scan_from(const struct ferry_svc *svc, __u32 start,
				       __u32 nr, bool least_conn, __u64 now, bool *full)
{
	struct scan_ctx c = {
		.svc = svc, .now = now, .start = start, .count = svc->count,
		.least_conn = least_conn,
	};

	if (nr > FERRY_MAX_SVC_BACKENDS)
		nr = FERRY_MAX_SVC_BACKENDS;
	bpf_loop(nr, scan_cb, &c, 0);
	if (c.lookup_fail)
		stat_inc(FERRY_STAT_LOOKUP_FAIL);
	if (c.full)
		*full = true;
	return c.found ? c.found : c.degraded;
}

/*
 * Weighted: the first of count slots of service svc_id whose cumulative
 * weight exceeds r (binary search); 0 on a map miss. A global function:
 * the verifier checks the search once, on its own, instead of once per
 * iteration it walks of draw_cb (the draws' loop), which multiplied the
 * hooks' verification cost by six.
 */
__noinline __u32 weighted_slot(__u32 svc_id, __u32 count, __u32 r)
{
	struct ferry_slot_key sk = { .svc_id = svc_id };
	struct ferry_slot *slot;
	__u32 lo = 0, hi = count;
	int i;

	for (i = 0; i < 16 && lo < hi; i++) {	/* 2^16 > FERRY_MAX_SVC_BACKENDS */
		__u32 mid = lo + (hi - lo) / 2;

		sk.slot = mid;
		slot = bpf_map_lookup_elem(&ferry_slot_v1, &sk);
		if (!slot)
			return 0;
		if (slot->cum_weight > r)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo < count ? lo : 0;
}

/* Maglev: the table entry for hash, then the next few entries if unusable. */
static __always_inline __u32 maglev_pick(const struct ferry_svc *svc, __u32 hash,
					 __u64 now, bool *full)
{
	struct ferry_backend *be;
	__u32 id = svc->id, idx, *bid;
	enum be_class cls;
	void *table;
	int i;

	table = bpf_map_lookup_elem(&ferry_mag_v1, &id);
	if (!table)
		return 0;
	idx = hash % FERRY_SOCK_MAGLEV_M;
	for (i = 0; i < FERRY_MAGLEV_PROBE; i++) {
		bid = bpf_map_lookup_elem(table, &idx);
		if (!bid || !*bid)
			return 0;
		be = bpf_map_lookup_elem(&ferry_be_v1, bid);
		cls = be ? backend_class(svc, *bid, be, now, NULL) : BE_UNUSABLE;
		if (cls == BE_GOOD)
			return *bid;
		if (cls == BE_FULL)
			*full = true;
		stat_inc(FERRY_STAT_SELECT_RETRY);
		idx = idx + 1 == FERRY_SOCK_MAGLEV_M ? 0 : idx + 1;
	}
	return 0;
}

/*
 * least_conn on a large service: power of two choices. Two random slots,
 * the one with fewer connections per unit of weight wins; up to
 * FERRY_LC_P2C_TRIES draws to find two usable ones. Full scans of services
 * above FERRY_LC_EXACT_MAX backends cost too much per connect
 * (docs/benchmarks.md, "least_conn").
 */
struct p2c_ctx {
	const struct ferry_svc *svc;
	__u64	now;
	__u32	count;
	__u32	found;
	__u64	best_active;
	__u32	best_weight;
	__u32	picks;
	__u8	full;
};

static long p2c_cb(__u32 i, void *data)
{
	struct p2c_ctx *c = data;
	struct ferry_backend *be;
	__u64 act = 0;
	__u32 id;
	int cls;

	(void)i;
	cls = slot_class(c->svc, bpf_get_prandom_u32() % c->count, c->now, &act, &id, &be);
	if (cls == BE_FULL)
		c->full = 1;
	if (cls != BE_GOOD)
		return 0;
	if (!c->found || lc_less(act, be->weight, c->best_active, c->best_weight)) {
		c->found = id;
		c->best_active = act;
		c->best_weight = be->weight;
	}
	return ++c->picks == 2;
}

static __always_inline __u32 least_conn_pick(const struct ferry_svc *svc, __u32 count,
					     __u64 now, bool *full)
{
	struct p2c_ctx c = { .svc = svc, .now = now, .count = count };

	if (count <= cfg_lc_exact_max)
		return scan_from(svc, bpf_get_prandom_u32() % count, count, true, now, full);
	bpf_loop(FERRY_LC_P2C_TRIES, p2c_cb, &c, 0);
	if (c.full)
		*full = true;
	if (c.found)
		return c.found;
	/* Mostly unusable, or only degraded ones left: look at all of them. */
	return scan_from(svc, bpf_get_prandom_u32() % count, count, true, now, full);
}

/*
 * Round robin: every pick claims the next cursor value. A backend that may
 * not take the connection passes its turn on by claiming another value (up
 * to FERRY_RR_TRIES), so the usable backends share evenly instead of the
 * one after a drained backend taking its turns too.
 */
#define FERRY_RR_TRIES	4

static __always_inline __u32 rr_pick(struct ferry_svc *svc, __u32 count, __u64 now,
				     bool *full, __u32 *start)
{
	struct ferry_backend *be;
	__u32 id;
	int i, cls;

	for (i = 0; i < FERRY_RR_TRIES; i++) {
		*start = __sync_fetch_and_add(&svc->rr, 1) % count;
		cls = slot_class(svc, *start, now, NULL, &id, &be);
		if (cls == BE_MISSING)
			return 0;
		if (cls == BE_GOOD)
			return id;
		if (cls == BE_FULL)
			*full = true;
		stat_inc(FERRY_STAT_SELECT_RETRY);
	}
	return 0;
}

/*
 * random, weighted, and maglev when its table entries fail: draw a slot
 * (uniformly; by weight over the cumulative weights; from the flow hash),
 * and while it names a backend that may not take the connection now, draw
 * again, up to FERRY_DRAW_TRIES times. Each usable backend keeps its share
 * among the usable ones (its weight over theirs under weighted) but for the
 * (unusable share)^FERRY_DRAW_TRIES of picks whose draws all miss: those
 * go to the scan from the last slot drawn (the caller's). A bpf_loop
 * callback, like the scan's: the tries are not unrolled into each hook.
 */
struct draw_ctx {
	const struct ferry_svc *svc;
	__u64	now;
	__u32	count;
	__u32	weight_sum;	/* weighted: draw by weight; 0: uniformly */
	__u32	hash;		/* hashed: the flow hash the draws derive from */
	__u32	start;		/* the last slot drawn */
	__u32	found;
	__u8	hashed;
	__u8	full;
};

static long draw_cb(__u32 i, void *data)
{
	struct draw_ctx *c = data;
	struct ferry_backend *be;
	__u32 r, id;
	int cls;

	r = c->hashed ? ferry_redraw_hash(c->hash, i) : bpf_get_prandom_u32();
	c->start = c->weight_sum ? weighted_slot(c->svc->id, c->count, r % c->weight_sum) :
				   r % c->count;
	cls = slot_class(c->svc, c->start, c->now, NULL, &id, &be);
	if (cls == BE_MISSING)
		return 1;	/* the scan counts the miss and goes on */
	if (cls == BE_GOOD) {
		c->found = id;
		return 1;
	}
	if (cls == BE_FULL)
		c->full = 1;
	stat_inc(FERRY_STAT_SELECT_RETRY);
	return 0;
}

static __always_inline __u32 draw_pick(const struct ferry_svc *svc, __u32 count,
				       __u32 weight_sum, bool hashed, __u32 hash,
				       __u64 now, bool *full, __u32 *start)
{
	struct draw_ctx c = {
		.svc = svc, .now = now, .count = count, .weight_sum = weight_sum,
		.hash = hash, .hashed = hashed,
	};

	bpf_loop(FERRY_DRAW_TRIES, draw_cb, &c, 0);
	if (c.full)
		*full = true;
	*start = c.start < count ? c.start : 0;
	return c.found;
}

/*
 * One pick for a new connection of svc by its policy. hash is the flow's
 * affinity hash (maglev). Returns 0 when no backend is usable; *full then
 * tells whether max_connections kept some out.
 *
 * A global function: the verifier checks it once, on its own, instead of
 * once per path of every caller (select_backend's retries times the hooks'
 * v4/v6/tracked paths), which otherwise multiplies every policy's branches
 * past the 1M-instruction limit. Its pointers may be NULL as far as the
 * verifier knows, hence the check.
 */
__noinline __u32 select_once(struct ferry_svc *svc, __u32 hash, __u64 now, bool *full)
{
	__u32 count, start, id;
	bool f = false;

	if (!svc || !full)
		return 0;
	count = svc->count;
	if (count > FERRY_MAX_SVC_BACKENDS)
		count = FERRY_MAX_SVC_BACKENDS;
	if (!count)
		return 0;

	switch (svc->lb) {
	case FERRY_LB_RANDOM:
		id = draw_pick(svc, count, 0, false, 0, now, &f, &start);
		if (id)
			goto out;
		break;
	case FERRY_LB_WEIGHTED:
		/* No usable weight: nothing may take it; the scan says so. */
		start = 0;
		if (!svc->weight_sum)
			break;
		id = draw_pick(svc, count, svc->weight_sum, false, 0, now, &f, &start);
		if (id)
			goto out;
		break;
	case FERRY_LB_MAGLEV:
		id = maglev_pick(svc, hash, now, &f);
		if (id)
			goto out;
		id = draw_pick(svc, count, 0, true, hash, now, &f, &start);
		if (id)
			goto out;
		break;
	case FERRY_LB_LEAST_CONN:
		id = least_conn_pick(svc, count, now, &f);
		goto out;
	case FERRY_LB_ROUND_ROBIN:
	default:
		id = rr_pick(svc, count, now, &f, &start);
		if (id)
			goto out;
		break;
	}
	id = scan_from(svc, start, count, false, now, &f);
out:
	*full |= f;
	return id;
}

struct pick {
	__u64	now;
	__u32	id;
	__u32	gen;		/* of the counters entry the slot was reserved in */
	bool	probe;		/* holds a half-open probe slot */
	bool	tracked;	/* a slot was reserved in ferry_bestat */
	bool	full;		/* refused: every candidate at max_connections */
};

/*
 * Choose a backend for a new connection. reserve (TCP connect): claim a
 * connection slot on it (circuit_reserve); a slot lost to another CPU
 * sends the pick round again, at most FERRY_SELECT_TRIES times. Returns 0
 * with p filled, or -ECONNREFUSED (nothing usable) / -EBUSY (every
 * candidate at max_connections).
 */
static __always_inline int select_backend(struct ferry_svc *svc, __u32 hash, bool reserve,
					  struct pick *p)
{
	__u64 now = bpf_ktime_get_ns();
	int i, r;

	p->now = now;
	for (i = 0; i < FERRY_SELECT_TRIES; i++) {
		p->id = select_once(svc, hash, now, &p->full);
		if (!p->id)
			break;
		if (!reserve)
			return 0;
		r = circuit_reserve(svc, p->id, now, &p->tracked, &p->gen);
		if (r >= 0) {
			p->probe = r == CB_ADMIT_PROBE;
			return 0;
		}
		if (r == -CB_DENY_FULL)
			p->full = true;
		stat_inc(FERRY_STAT_SELECT_RETRY);
	}
	p->id = 0;
	return p->full ? -FERRY_EBUSY : -FERRY_ECONNREFUSED;
}

#endif /* FERRY_SELECT_BPF_H */
