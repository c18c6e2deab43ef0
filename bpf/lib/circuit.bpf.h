/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Circuit breaker glue between the maps and the state machine in
 * circuit_sm.h. The connect hooks ask circuit_check() while scanning, then
 * circuit_reserve() the chosen backend and remember the socket in socket
 * storage (ferry_sk_v1); the sockops program reports the handshake's outcome
 * and the connection's end through the conn_*() workers below, and
 * cgroup/sock_release gives back a reservation whose SYN never left (a
 * local failure such as no free port). Every counter moves exactly once per
 * socket: each step claims the socket's phase with a compare-and-swap.
 *
 * A missing map entry means "no history": the backend is CLOSED and the
 * connection proceeds untracked (fail open).
 */
#ifndef FERRY_CIRCUIT_BPF_H
#define FERRY_CIRCUIT_BPF_H

#include "maps.bpf.h"
#include "circuit_sm.h"

#define FERRY_EBUSY	16

/* Per-service breaker state (ejected count): array indexed by service id. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_DEF_MAX_SERVICES + 1);
	__type(key, __u32);
	__type(value, struct ferry_svc_rt);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_svcej_v1 SEC(".maps");

/* Per-socket tracking: which backend a socket's connect went to. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ferry_sk_conn);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_sk_v1 SEC(".maps");

/* The kernel's counters for backend id, created zeroed on first use. */
static __always_inline struct ferry_bestat *bestat_get(__u32 id)
{
	struct ferry_bestat *st, zero = {};

	st = bpf_map_lookup_elem(&ferry_bestat_v1, &id);
	if (st)
		return st;
	bpf_map_update_elem(&ferry_bestat_v1, &id, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&ferry_bestat_v1, &id);
}

static __always_inline void circuit_stats(__u32 ev)
{
	if (ev & CB_EV_OPENED)
		stat_inc(FERRY_STAT_CIRCUIT_OPENED);
	if (ev & CB_EV_HALF_OPEN)
		stat_inc(FERRY_STAT_CIRCUIT_HALF_OPEN);
	if (ev & CB_EV_CLOSED)
		stat_inc(FERRY_STAT_CIRCUIT_CLOSED);
	if (ev & CB_EV_LIMITED)
		stat_inc(FERRY_STAT_CIRCUIT_EJECT_LIMITED);
}

/* Selection: may backend id take a new connection (CB_OK / CB_DENY_*)? */
static __always_inline int circuit_check(const struct ferry_svc *svc, __u32 id, __u64 now)
{
	struct ferry_bestat *st = bpf_map_lookup_elem(&ferry_bestat_v1, &id);

	return cb_check(&svc->circuit, st, now);
}

/*
 * Claim the chosen backend for a TCP connect. Returns CB_ADMIT,
 * CB_ADMIT_PROBE or -CB_DENY_*; a missing counter entry admits untracked
 * (returns CB_ADMIT and *tracked = false).
 */
static __always_inline int circuit_reserve(struct ferry_svc *svc, __u32 id, __u64 now,
					   bool *tracked)
{
	struct ferry_bestat *st = bestat_get(id);
	__u32 ev = 0;
	int r;

	*tracked = st != NULL;
	if (!st)
		return CB_ADMIT;
	r = cb_reserve(&svc->circuit, st, now, &ev);
	circuit_stats(ev);
	return r;
}

/* Give back what circuit_reserve() took (the socket could not be tracked). */
static __always_inline void circuit_unreserve(__u32 id, bool probe)
{
	struct ferry_bestat *st = bpf_map_lookup_elem(&ferry_bestat_v1, &id);

	if (!st)
		return;
	cb_release(st);
	if (probe)
		cb_release_probe(st);
}

/* UDP connect/sendmsg: counted as opened, not tracked. */
static __always_inline void circuit_opened(__u32 id)
{
	struct ferry_bestat *st = bestat_get(id);

	if (st)
		__sync_fetch_and_add(&st->opened, 1);
}

/*
 * The backend a socket is already connecting or connected to, or 0. A
 * second connect() on such a socket (EALREADY/EISCONN polling) must not
 * count, nor move, anything.
 */
static __always_inline __u32 conn_current(struct bpf_sock *sk)
{
	struct ferry_sk_conn *conn;

	if (!sk)
		return 0;
	conn = bpf_sk_storage_get(&ferry_sk_v1, sk, 0, 0);
	if (!conn)
		return 0;
	if (conn->phase == FERRY_CONN_CONNECTING || conn->phase == FERRY_CONN_ESTABLISHED)
		return conn->backend_id;
	return 0;
}

/* Count a reserved connection out, once, from phase `from`. */
static __always_inline bool conn_claim(struct ferry_sk_conn *conn, __u32 from, __u32 to)
{
	return __sync_val_compare_and_swap(&conn->phase, from, to) == from;
}

static __always_inline void conn_drop_probe(struct ferry_sk_conn *conn, struct ferry_bestat *st)
{
	if (conn->flags & FERRY_CONN_F_PROBE) {
		conn->flags &= ~FERRY_CONN_F_PROBE;
		cb_release_probe(st);
	}
}

/* A reservation this socket held from an earlier connect() attempt. */
static __always_inline void conn_release_stale(struct ferry_sk_conn *conn)
{
	struct ferry_bestat *st;

	if (!conn_claim(conn, FERRY_CONN_RESERVED, FERRY_CONN_DONE))
		return;
	st = bpf_map_lookup_elem(&ferry_bestat_v1, &conn->backend_id);
	if (!st)
		return;
	cb_release(st);
	conn_drop_probe(conn, st);
}

/*
 * Remember that sk's connect() was reserved on backend id. 0, or -errno
 * when the socket cannot be tracked (the caller gives the slot back).
 */
static __always_inline int conn_track(struct bpf_sock *sk, const struct ferry_svc_key *k,
				      __u32 id, bool probe, __u64 now)
{
	struct ferry_sk_conn *conn;

	if (!sk)
		return -FERRY_ENOENT;
	conn = bpf_sk_storage_get(&ferry_sk_v1, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!conn)
		return -FERRY_ENOENT;
	conn_release_stale(conn);
	conn->svc = *k;
	conn->backend_id = id;
	conn->flags = probe ? FERRY_CONN_F_PROBE : 0;
	conn->start_ns = now;
	conn->phase = FERRY_CONN_RESERVED;
	return 0;
}

/* Backends of the service, other than self, whose circuit is not CLOSED. */
struct recount_ctx {
	__u32	svc_id;
	__u32	self;
	__u32	count;
	__u32	n;
};

static long recount_cb(__u32 i, void *data)
{
	struct recount_ctx *c = data;
	struct ferry_slot_key sk = { .svc_id = c->svc_id, .slot = i };
	struct ferry_slot *slot;
	struct ferry_bestat *st;

	if (i >= c->count)
		return 1;
	slot = bpf_map_lookup_elem(&ferry_slot_v1, &sk);
	if (!slot || slot->backend_id == c->self)
		return 0;
	st = bpf_map_lookup_elem(&ferry_bestat_v1, &slot->backend_id);
	if (st && st->circuit != FERRY_CIRCUIT_CLOSED)
		c->n++;
	return 0;
}

/*
 * An ejection was held back by max_ejection_percent: if the service's
 * count may have leaked (not recounted for FERRY_RECOUNT_MS), recount it
 * from the backends and, when it was too high, try the ejection again.
 */
static __always_inline __u32 circuit_recount_retry(const struct ferry_svc *svc,
						   struct ferry_svc_rt *rt,
						   struct ferry_bestat *st, __u32 self,
						   __u64 now)
{
	struct recount_ctx c = { .svc_id = svc->id, .self = self, .count = svc->count };
	__u64 last = rt->recount_ns;
	__u32 seen;

	if (now - last < FERRY_RECOUNT_MS * CB_NS_PER_MS && last)
		return 0;
	if (__sync_val_compare_and_swap(&rt->recount_ns, last, now) != last)
		return 0;	/* another CPU recounts */
	seen = cb_read(rt->ejected);
	if (c.count > FERRY_MAX_SVC_BACKENDS)
		c.count = FERRY_MAX_SVC_BACKENDS;
	bpf_loop(c.count, recount_cb, &c, 0);
	if (!cb_repair_count(&rt->ejected, seen, c.n))
		return 0;
	return cb_try_eject(&svc->circuit, st, now, &rt->ejected, svc->count);
}

/* sockops: the SYN is about to leave. Returns true when sk is ours. */
static __always_inline bool conn_syn_sent(struct ferry_sk_conn *conn)
{
	return conn_claim(conn, FERRY_CONN_RESERVED, FERRY_CONN_CONNECTING);
}

/* sockops: the handshake completed. */
static __always_inline void conn_established(struct ferry_sk_conn *conn, __u64 now)
{
	struct ferry_bestat *st;
	struct ferry_svc_rt *rt;
	struct ferry_svc *svc;
	__u32 ev = 0;

	if (!conn_claim(conn, FERRY_CONN_CONNECTING, FERRY_CONN_ESTABLISHED))
		return;
	st = bpf_map_lookup_elem(&ferry_bestat_v1, &conn->backend_id);
	if (!st)
		return;
	if (!(conn->flags & FERRY_CONN_F_DECIDED)) {
		conn->flags |= FERRY_CONN_F_DECIDED;
		rt = NULL;
		if (conn->flags & FERRY_CONN_F_PROBE) {
			svc = bpf_map_lookup_elem(&ferry_svc_v1, &conn->svc);
			if (svc)
				rt = bpf_map_lookup_elem(&ferry_svcej_v1, &svc->id);
		}
		ev = cb_success(st, now, !!(conn->flags & FERRY_CONN_F_PROBE),
				rt ? &rt->ejected : NULL);
	}
	conn_drop_probe(conn, st);
	circuit_stats(ev);
}

/* The handshake failed with err (positive errno): count it, maybe eject. */
static __always_inline void conn_failed(struct ferry_sk_conn *conn, struct ferry_bestat *st,
					__u32 err, __u64 now)
{
	struct ferry_svc_rt *rt = NULL;
	struct ferry_svc *svc;
	__u32 ev;

	if (conn->flags & FERRY_CONN_F_DECIDED)
		return;
	conn->flags |= FERRY_CONN_F_DECIDED;
	svc = bpf_map_lookup_elem(&ferry_svc_v1, &conn->svc);
	if (!svc) {
		/* The service is gone: count, nothing to decide. */
		__sync_fetch_and_add(&st->failed, 1);
		__sync_fetch_and_add(&st->consecutive, 1);
		return;
	}
	rt = bpf_map_lookup_elem(&ferry_svcej_v1, &svc->id);
	ev = cb_failure(&svc->circuit, st, now, !!(conn->flags & FERRY_CONN_F_PROBE), err,
			rt ? &rt->ejected : NULL, svc->count);
	if ((ev & CB_EV_LIMITED) && rt)
		ev |= circuit_recount_retry(svc, rt, st, conn->backend_id, now);
	circuit_stats(ev);
}

/* sockops: no answer to the SYN after the configured number of RTOs. */
static __always_inline void conn_syn_timeout(struct ferry_sk_conn *conn, __u64 now)
{
	struct ferry_bestat *st;

	if (conn->phase != FERRY_CONN_CONNECTING)
		return;
	st = bpf_map_lookup_elem(&ferry_bestat_v1, &conn->backend_id);
	if (!st)
		return;
	conn_failed(conn, st, 110 /* ETIMEDOUT */, now);
	conn_drop_probe(conn, st);
}

/*
 * sockops: the socket reached TCP_CLOSE. err is sk_err: non-zero when the
 * handshake failed (ECONNREFUSED for a RST, ETIMEDOUT, EHOSTUNREACH...);
 * 0 when the application gave up on it (not the backend's fault).
 */
static __always_inline void conn_closed(struct ferry_sk_conn *conn, __u32 err,
					__u64 sent, __u64 received, __u64 now)
{
	struct ferry_bestat *st;
	__u32 phase = conn->phase;

	if (phase != FERRY_CONN_RESERVED && phase != FERRY_CONN_CONNECTING &&
	    phase != FERRY_CONN_ESTABLISHED)
		return;
	if (!conn_claim(conn, phase, FERRY_CONN_DONE))
		return;
	st = bpf_map_lookup_elem(&ferry_bestat_v1, &conn->backend_id);
	if (!st)
		return;
	if (phase == FERRY_CONN_CONNECTING && err)
		conn_failed(conn, st, err, now);
	if (phase == FERRY_CONN_ESTABLISHED) {
		if (sent)
			__sync_fetch_and_add(&st->bytes_sent, sent);
		if (received)
			__sync_fetch_and_add(&st->bytes_received, received);
	}
	conn_drop_probe(conn, st);
	cb_release(st);
}

#endif /* FERRY_CIRCUIT_BPF_H */
