/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The circuit breaker's state machine, per backend, on plain structs: no
 * maps, no helpers, kernel time passed in. The BPF programs call it through
 * bpf/lib/circuit.bpf.h; tests/unit/test_circuit.c compiles the very same
 * code in userspace. Include it after vmlinux.h (BPF) or <linux/types.h>.
 *
 *   CLOSED --(consecutive failures reach the threshold, and
 *             max_ejection_percent allows it)--> OPEN
 *   OPEN   --(open_until_ns passed; the next connect that picks it)--> HALF_OPEN
 *   HALF_OPEN --(a probe connect succeeds)--> CLOSED
 *   HALF_OPEN --(a probe connect fails)--> OPEN, for one more ejection step
 *
 * An ejection lasts base_ejection_ms x ejections (the times it was ejected,
 * this one included), capped at max_ejection_ms. The count starts again at
 * 1 when the backend stayed CLOSED for a quiet period of max_ejection_ms
 * since it last closed: a backend that has been fine for as long as the
 * longest ejection is forgiven its history. (Fleet-wide totals of
 * ejections are in the FERRY_STAT_CIRCUIT_OPENED counter.)
 *
 * Every counter is changed with an atomic operation and every state change
 * is claimed with a compare-and-swap, so concurrent connects and sockops
 * callbacks on several CPUs never lose an update nor take a transition
 * twice. An ejection claims CLOSED -> OPENING first, writes open_until_ns,
 * then publishes OPEN: a reader never sees OPEN with a stale deadline.
 *
 * Only probes (connects admitted in HALF_OPEN) decide HALF_OPEN: a
 * connect admitted before the ejection that ends later says nothing about
 * the backend now.
 */
#ifndef FERRY_CIRCUIT_SM_H
#define FERRY_CIRCUIT_SM_H

#include <ferry/abi.h>

#define CB_NS_PER_MS		1000000ULL
#define CB_MAX_LEVEL		1024
/* Recount a service's ejected backends at most this often (see abi.h). */
#define FERRY_RECOUNT_MS	100

#define cb_fetch_add(p, v)	__sync_fetch_and_add((p), (v))
#define cb_cas(p, o, n)		__sync_val_compare_and_swap((p), (o), (n))
#define cb_read(x)		(*(volatile __typeof__(x) *)&(x))
#define cb_write(x, v)		(*(volatile __typeof__(x) *)&(x) = (v))

/* Why a backend may not take a new connection (0: it may). */
enum cb_deny {
	CB_OK		= 0,
	CB_DENY_OPEN	= 1,	/* ejected, or half-open with every probe slot taken */
	CB_DENY_FULL	= 2,	/* at max_connections */
};

/* Admission results of cb_reserve(). */
enum cb_admit {
	CB_ADMIT	= 0,
	CB_ADMIT_PROBE	= 1,	/* holds a half-open probe slot: release it */
};

/* Events a call caused, for the per-CPU stats. */
#define CB_EV_OPENED		(1U << 0)	/* CLOSED or HALF_OPEN -> OPEN */
#define CB_EV_HALF_OPEN		(1U << 1)
#define CB_EV_CLOSED		(1U << 2)	/* HALF_OPEN -> CLOSED */
#define CB_EV_LIMITED		(1U << 3)	/* max_ejection_percent held an ejection back */

static inline int cb_enabled(const struct ferry_circuit_cfg *cfg)
{
	return cfg->consecutive_failures != 0;
}

static inline __u32 cb_probes(const struct ferry_circuit_cfg *cfg)
{
	return cfg->half_open_probes ? cfg->half_open_probes : 1;
}

/*
 * Read-only: may a new connection go to this backend now? Used while
 * scanning candidates; cb_reserve() then claims the chosen one.
 */
static inline int cb_check(const struct ferry_circuit_cfg *cfg,
			   const struct ferry_bestat *st, __u64 now)
{
	__u32 c;

	if (!st)
		return CB_OK;
	if (cb_enabled(cfg)) {
		c = cb_read(st->circuit);
		if (c == FERRY_CIRCUIT_OPENING)
			return CB_DENY_OPEN;
		if (c == FERRY_CIRCUIT_OPEN && now < cb_read(st->open_until_ns))
			return CB_DENY_OPEN;
		if (c == FERRY_CIRCUIT_HALF_OPEN &&
		    cb_read(st->half_open_inflight) >= cb_probes(cfg))
			return CB_DENY_OPEN;
	}
	if (cfg->max_connections && cb_read(st->active) >= cfg->max_connections)
		return CB_DENY_FULL;
	return CB_OK;
}

/*
 * Claim a connection slot (and, half-open, a probe slot) on the chosen
 * backend. Returns CB_ADMIT, CB_ADMIT_PROBE or -CB_DENY_*; *ev gets the
 * events. Exact under concurrency: a slot is taken with fetch-and-add and
 * given back if that overshot the limit, so the limit is never exceeded.
 */
static inline int cb_reserve(const struct ferry_circuit_cfg *cfg,
			     struct ferry_bestat *st, __u64 now, __u32 *ev)
{
	__u32 probes = cb_probes(cfg);
	int probe = 0;
	__u32 c;

	if (cb_enabled(cfg)) {
		c = cb_read(st->circuit);
		if (c == FERRY_CIRCUIT_OPENING)
			return -CB_DENY_OPEN;
		if (c == FERRY_CIRCUIT_OPEN) {
			if (now < cb_read(st->open_until_ns))
				return -CB_DENY_OPEN;
			if (cb_cas(&st->circuit, FERRY_CIRCUIT_OPEN, FERRY_CIRCUIT_HALF_OPEN) ==
			    FERRY_CIRCUIT_OPEN) {
				cb_write(st->last_change_ns, now);
				*ev |= CB_EV_HALF_OPEN;
			}
			c = cb_read(st->circuit);
		}
		if (c == FERRY_CIRCUIT_HALF_OPEN) {
			if (cb_fetch_add(&st->half_open_inflight, 1) >= probes) {
				cb_fetch_add(&st->half_open_inflight, -1);
				return -CB_DENY_OPEN;
			}
			probe = 1;
		} else if (c != FERRY_CIRCUIT_CLOSED) {
			return -CB_DENY_OPEN;	/* reopened under us */
		}
	}
	if (cfg->max_connections) {
		if (cb_fetch_add(&st->active, 1) >= cfg->max_connections) {
			cb_fetch_add(&st->active, -1);
			if (probe)
				cb_fetch_add(&st->half_open_inflight, -1);
			return -CB_DENY_FULL;
		}
	} else {
		cb_fetch_add(&st->active, 1);
	}
	cb_fetch_add(&st->opened, 1);
	return probe ? CB_ADMIT_PROBE : CB_ADMIT;
}

/* The connection reserved by cb_reserve() is gone (closed, failed, abandoned). */
static inline void cb_release(struct ferry_bestat *st)
{
	cb_fetch_add(&st->active, -1);
}

static inline void cb_release_probe(struct ferry_bestat *st)
{
	cb_fetch_add(&st->half_open_inflight, -1);
}

/* One step more of ejection: base x level, capped. */
static inline __u64 cb_ejection_ns(const struct ferry_circuit_cfg *cfg, __u64 level)
{
	__u64 ms = (__u64)cfg->base_ejection_ms * level;

	if (cfg->max_ejection_ms && ms > cfg->max_ejection_ms)
		ms = cfg->max_ejection_ms;
	return ms * CB_NS_PER_MS;
}

/*
 * May one more backend of a service of n backends be ejected? Takes the
 * slot in *ejected when so. At least one may always be ejected; otherwise
 * the ejected share stays at or below max_ejection_percent.
 */
static inline int cb_eject_admit(const struct ferry_circuit_cfg *cfg, __u32 *ejected, __u32 n)
{
	__u32 old;

	if (!ejected)
		return 0;	/* no counter: the limit cannot be kept, so no ejection */
	old = cb_fetch_add(ejected, 1);
	if (old == 0 || (__u64)(old + 1) * 100 <= (__u64)cfg->max_ejection_percent * n)
		return 1;
	cb_fetch_add(ejected, -1);
	return 0;
}

/* One ejected backend less; never below zero (a repair may have raced). */
static inline void cb_uncount(__u32 *ejected)
{
	__u32 v;
	int i;

	if (!ejected)
		return;
	for (i = 0; i < 4; i++) {
		v = cb_read(*ejected);
		if (!v || cb_cas(ejected, v, v - 1) == v)
			return;
	}
}

/* The backend's circuit is OPENING (claimed by the caller): publish OPEN
 * for the level-th ejection. */
static inline void cb_open(const struct ferry_circuit_cfg *cfg, struct ferry_bestat *st,
			   __u64 now, __u64 level)
{
	if (level > CB_MAX_LEVEL)
		level = CB_MAX_LEVEL;
	cb_write(st->ejections, level);
	cb_write(st->open_until_ns, now + cb_ejection_ns(cfg, level));
	cb_write(st->last_change_ns, now);
	/* A compare-and-swap is fully ordered: the deadline is visible first. */
	cb_cas(&st->circuit, FERRY_CIRCUIT_OPENING, FERRY_CIRCUIT_OPEN);
}

/*
 * Try to eject a CLOSED backend whose consecutive failures reached the
 * threshold. Returns the events (CB_EV_OPENED or CB_EV_LIMITED, or 0 when
 * another CPU changed the state first).
 */
static inline __u32 cb_try_eject(const struct ferry_circuit_cfg *cfg, struct ferry_bestat *st,
				 __u64 now, __u32 *svc_ejected, __u32 nbackends)
{
	__u64 closed_at, quiet, level;

	if (!cb_enabled(cfg) || cb_read(st->consecutive) < cfg->consecutive_failures)
		return 0;
	if (cb_cas(&st->circuit, FERRY_CIRCUIT_CLOSED, FERRY_CIRCUIT_OPENING) !=
	    FERRY_CIRCUIT_CLOSED)
		return 0;
	if (!cb_eject_admit(cfg, svc_ejected, nbackends)) {
		cb_write(st->circuit, FERRY_CIRCUIT_CLOSED);
		return CB_EV_LIMITED;
	}
	level = cb_read(st->ejections);
	closed_at = cb_read(st->last_change_ns);
	quiet = (__u64)cfg->max_ejection_ms * CB_NS_PER_MS;
	if (!closed_at || now - closed_at >= quiet)
		level = 0;
	cb_open(cfg, st, now, level + 1);
	return CB_EV_OPENED;
}

/*
 * A handshake failed (err: positive errno). probe: the connect held a
 * half-open probe slot (the caller releases it after this call).
 */
static inline __u32 cb_failure(const struct ferry_circuit_cfg *cfg, struct ferry_bestat *st,
			       __u64 now, int probe, __u32 err, __u32 *svc_ejected,
			       __u32 nbackends)
{
	cb_fetch_add(&st->failed, 1);
	cb_fetch_add(&st->consecutive, 1);
	(void)err;
	if (!cb_enabled(cfg))
		return 0;
	if (probe) {
		/* Stays counted as ejected: no change to the service's count. */
		if (cb_cas(&st->circuit, FERRY_CIRCUIT_HALF_OPEN, FERRY_CIRCUIT_OPENING) ==
		    FERRY_CIRCUIT_HALF_OPEN) {
			cb_open(cfg, st, now, cb_read(st->ejections) + 1);
			return CB_EV_OPENED;
		}
		return 0;
	}
	if (cb_read(st->circuit) != FERRY_CIRCUIT_CLOSED)
		return 0;
	return cb_try_eject(cfg, st, now, svc_ejected, nbackends);
}

/* A handshake completed. */
static inline __u32 cb_success(struct ferry_bestat *st, __u64 now, int probe,
			       __u32 *svc_ejected)
{
	cb_fetch_add(&st->success, 1);
	cb_write(st->consecutive, 0);
	if (!probe)
		return 0;
	if (cb_cas(&st->circuit, FERRY_CIRCUIT_HALF_OPEN, FERRY_CIRCUIT_CLOSED) !=
	    FERRY_CIRCUIT_HALF_OPEN)
		return 0;
	cb_write(st->last_change_ns, now);
	cb_uncount(svc_ejected);
	return CB_EV_CLOSED;
}

/*
 * The service's ejected count may have leaked (a backend removed while
 * ejected). counted: backends other than this one whose circuit is not
 * CLOSED, as just counted from the maps. Lowers the count if it was seen
 * unchanged; returns 1 when it did.
 */
static inline int cb_repair_count(__u32 *svc_ejected, __u32 seen, __u32 counted)
{
	if (!svc_ejected || counted >= seen)
		return 0;
	return cb_cas(svc_ejected, seen, counted) == seen;
}

#endif /* FERRY_CIRCUIT_SM_H */
