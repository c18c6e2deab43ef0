/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Backend selection for the socket load balancer. Each policy names a first
 * slot; from there a bounded scan (bpf_loop over at most
 * FERRY_MAX_SVC_BACKENDS slots) skips backends that may not take a new
 * connection. HEALTHY (or never probed) backends win; a DEGRADED one is used
 * only when no healthy one is left; UNHEALTHY, draining, quarantined,
 * weight 0 and OPEN circuits are never picked.
 */
#ifndef FERRY_SELECT_BPF_H
#define FERRY_SELECT_BPF_H

#include "maps.bpf.h"
#include "circuit.bpf.h"

enum be_class {
	BE_UNUSABLE = 0,
	BE_DEGRADED,
	BE_GOOD,
};

static __always_inline enum be_class backend_class(const struct ferry_svc *svc,
						   __u32 backend_id,
						   const struct ferry_backend *be,
						   __u64 now)
{
	struct ferry_bestat *st;

	if (be->state != FERRY_BE_ACTIVE || be->weight == 0 ||
	    be->health == FERRY_HEALTH_UNHEALTHY)
		return BE_UNUSABLE;
	st = bpf_map_lookup_elem(&ferry_bestat_v1, &backend_id);
	if (!circuit_admits(svc, st, now))
		return BE_UNUSABLE;
	return be->health == FERRY_HEALTH_DEGRADED ? BE_DEGRADED : BE_GOOD;
}

struct scan_ctx {
	const struct ferry_svc *svc;
	__u64	now;
	__u32	start;
	__u32	count;
	__u32	found;		/* backend id, 0: none yet */
	__u32	degraded;	/* first degraded backend id seen */
	/* least_conn: best so far */
	__u64	best_active;
	__u32	best_weight;
	__u8	least_conn;
	__u8	lookup_fail;
};

static __always_inline __u64 backend_active(__u32 id)
{
	struct ferry_bestat *st = bpf_map_lookup_elem(&ferry_bestat_v1, &id);

	return st ? st->active : 0;
}

static long scan_cb(__u32 i, void *data)
{
	struct scan_ctx *c = data;
	struct ferry_slot_key sk;
	struct ferry_slot *slot;
	struct ferry_backend *be;
	enum be_class cls;
	__u32 pos = c->start + i;

	if (pos >= c->count)
		pos -= c->count;
	sk.svc_id = c->svc->id;
	sk.slot = pos;
	slot = bpf_map_lookup_elem(&ferry_slot_v1, &sk);
	if (!slot) {
		c->lookup_fail = 1;
		return 0;
	}
	be = bpf_map_lookup_elem(&ferry_be_v1, &slot->backend_id);
	if (!be) {
		c->lookup_fail = 1;
		return 0;
	}
	cls = backend_class(c->svc, slot->backend_id, be, c->now);
	if (cls == BE_UNUSABLE)
		return 0;
	if (cls == BE_DEGRADED) {
		if (!c->degraded)
			c->degraded = slot->backend_id;
		return 0;
	}
	if (!c->least_conn) {
		c->found = slot->backend_id;
		return 1;
	}
	/* least_conn: fewest active connections per unit of weight. */
	{
		__u64 act = backend_active(slot->backend_id);

		if (!c->found || act * c->best_weight < c->best_active * be->weight) {
			c->found = slot->backend_id;
			c->best_active = act;
			c->best_weight = be->weight;
		}
	}
	return 0;
}

/* Scan from slot start; 0 when nothing is usable. */
static __always_inline __u32 scan_from(const struct ferry_svc *svc, __u32 start,
				       __u32 nr, bool least_conn, __u64 now)
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
	return c.found ? c.found : c.degraded;
}

/* Weighted: the first slot whose cumulative weight exceeds r (binary search). */
static __always_inline __u32 weighted_slot(const struct ferry_svc *svc, __u32 r)
{
	struct ferry_slot_key sk = { .svc_id = svc->id };
	struct ferry_slot *slot;
	__u32 lo = 0, hi = svc->count;
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
	return lo < svc->count ? lo : 0;
}

/* Maglev: the table entry for hash, then the next few entries if unusable. */
static __always_inline __u32 maglev_pick(const struct ferry_svc *svc, __u32 hash,
					 __u64 now)
{
	struct ferry_backend *be;
	__u32 id = svc->id, idx, *bid;
	void *table;
	int i;

	table = bpf_map_lookup_elem(&ferry_mag_v1, &id);
	if (!table)
		return 0;
	idx = hash % FERRY_SOCK_MAGLEV_M;
	for (i = 0; i < 8; i++) {
		bid = bpf_map_lookup_elem(table, &idx);
		if (!bid || !*bid)
			return 0;
		be = bpf_map_lookup_elem(&ferry_be_v1, bid);
		if (be && backend_class(svc, *bid, be, now) == BE_GOOD)
			return *bid;
		stat_inc(FERRY_STAT_SELECT_RETRY);
		idx = idx + 1 == FERRY_SOCK_MAGLEV_M ? 0 : idx + 1;
	}
	return 0;
}

/*
 * Choose a backend id for a new connection of svc. hash is the flow's
 * affinity hash (maglev). Returns 0 when no backend is usable.
 */
static __always_inline __u32 select_backend(struct ferry_svc *svc, __u32 hash)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 count = svc->count, start, id;

	if (count > FERRY_MAX_SVC_BACKENDS)
		count = FERRY_MAX_SVC_BACKENDS;
	if (!count)
		return 0;

	switch (svc->lb) {
	case FERRY_LB_RANDOM:
		start = bpf_get_prandom_u32() % count;
		break;
	case FERRY_LB_WEIGHTED:
		start = svc->weight_sum ?
			weighted_slot(svc, bpf_get_prandom_u32() % svc->weight_sum) : 0;
		break;
	case FERRY_LB_MAGLEV:
		id = maglev_pick(svc, hash, now);
		if (id)
			return id;
		start = hash % count;
		break;
	case FERRY_LB_LEAST_CONN:
		/* Scan up to 64 slots from a random start: exact for small
		 * services, a 64-way sample for large ones. */
		return scan_from(svc, bpf_get_prandom_u32() % count,
				 count < 64 ? count : 64, true, now) ?:
		       scan_from(svc, 0, count, false, now);
	case FERRY_LB_ROUND_ROBIN:
	default:
		start = __sync_fetch_and_add(&svc->rr, 1) % count;
		break;
	}
	id = scan_from(svc, start, count, false, now);
	return id;
}

#endif /* FERRY_SELECT_BPF_H */
