/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Circuit breaker glue between the maps and the state machine in
 * circuit_sm.h. The connect hooks check backends while scanning, then
 * circuit_reserve() the chosen one and remember the socket in ferry_conn_v2
 * (by socket cookie); the sockops program reports the handshake's outcome
 * and the connection's end through the conn_*() workers below, and
 * cgroup/sock_release ends whatever is still counted when the application
 * closes the socket (an established connection, a connect it gave up on, a
 * reservation whose SYN never left) and drops the record. Every counter
 * moves exactly once per socket: each step claims the socket's phase with a
 * compare-and-swap.
 *
 * A hash map rather than socket storage: creating socket storage (and
 * freeing it through RCU) cost about 1 us per connect here, a map record a
 * tenth of that (docs/benchmarks.md, "Circuit breaking").
 *
 * A missing map entry means "no history": the backend is CLOSED and the
 * connection proceeds untracked (fail open).
 *
 * A record outlives ferryd, and names its backend by id; userspace deletes
 * a backend's counters when it goes, and may hand its id to another backend
 * (or to the same address again) while old connections are open. So a
 * record also keeps the generation of the counter entry it was counted on,
 * and every later step finds its counters through conn_bestat(), which
 * answers NULL (count nothing) for an entry of another generation: those
 * counters are gone, the new owner's start from zero.
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

/* Per-socket tracking: socket cookie -> which backend its connect went to. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_DEF_MAX_REVNAT);
	__type(key, __u64);
	__type(value, struct ferry_sk_conn);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_conn_v2 SEC(".maps");

/*
 * The kernel's counters for backend id, created zeroed on first use with a
 * fresh generation (random, never 0: records written before generations
 * existed hold 0). Two CPUs creating it at once: one insert wins, both use
 * its entry.
 */
static __always_inline struct ferry_bestat *bestat_get(__u32 id)
{
	struct ferry_bestat *st, fresh = {};

	st = bpf_map_lookup_elem(&ferry_bestat_v2, &id);
	if (st)
		return st;
	fresh.gen = bpf_get_prandom_u32() | 1;
	bpf_map_update_elem(&ferry_bestat_v2, &id, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&ferry_bestat_v2, &id);
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

/*
 * Claim the chosen backend for a TCP connect. Returns CB_ADMIT,
 * CB_ADMIT_PROBE or -CB_DENY_*; a missing counter entry admits untracked
 * (returns CB_ADMIT and *tracked = false). *gen: the generation of the
 * entry the claim was counted on, which the socket's record keeps.
 */
static __always_inline int circuit_reserve(struct ferry_svc *svc, __u32 id, __u64 now,
					   bool *tracked, __u32 *gen)
{
	struct ferry_bestat *st = bestat_get(id);
	__u32 ev = 0;
	int r;

	*tracked = st != NULL;
	*gen = st ? st->gen : 0;
	if (!st)
		return CB_ADMIT;
	r = cb_reserve(&svc->circuit, st, now, &ev);
	circuit_stats(ev);
	return r;
}

/* Give back what circuit_reserve() took (the socket could not be tracked),
 * from the entry of generation gen that took it. */
static __always_inline void circuit_unreserve(__u32 id, __u32 gen, bool probe)
{
	struct ferry_bestat *st = bpf_map_lookup_elem(&ferry_bestat_v2, &id);

	if (!st || st->gen != gen)
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
 * The socket's tracking record, created empty on its first connect to a
 * VIP: it says whether the socket is already connecting (conn_current) and
 * takes the new reservation (conn_track). NULL: the socket cannot be
 * tracked (map full): it is balanced, nothing is reserved.
 */
static __always_inline struct ferry_sk_conn *conn_get(__u64 cookie)
{
	struct ferry_sk_conn zero = {};

	/* A socket's first connect is the common case: insert, then look up
	 * (a second connect() on the socket finds its record: EEXIST). */
	bpf_map_update_elem(&ferry_conn_v2, &cookie, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&ferry_conn_v2, &cookie);
}

/*
 * The backend a socket is already connecting or connected to, or 0. A
 * second connect() on such a socket (EALREADY/EISCONN polling) must not
 * count, nor move, anything.
 */
static __always_inline __u32 conn_current(const struct ferry_sk_conn *conn)
{
	if (conn && (conn->phase == FERRY_CONN_CONNECTING || conn->phase == FERRY_CONN_ESTABLISHED))
		return conn->backend_id;
	return 0;
}

/* Count a reserved connection out, once, from phase `from`. */
static __always_inline bool conn_claim(struct ferry_sk_conn *conn, __u32 from, __u32 to)
{
	return __sync_val_compare_and_swap(&conn->phase, from, to) == from;
}

/* Flags change with atomic operations: sockops (softirq) and the release
 * hook (process context) may touch one record at once. */
static __always_inline __u32 conn_flag_set(struct ferry_sk_conn *conn, __u32 f)
{
	return __sync_fetch_and_or(&conn->flags, f);
}

static __always_inline void conn_drop_probe(struct ferry_sk_conn *conn, struct ferry_bestat *st)
{
	if (__sync_fetch_and_and(&conn->flags, ~FERRY_CONN_F_PROBE) & FERRY_CONN_F_PROBE)
		cb_release_probe(st);
}

/*
 * The counters the socket's connection was counted on: its backend's entry,
 * if that is still the one it reserved on (same generation). NULL: the
 * entry is gone, or was created anew since (the backend was removed, its id
 * maybe handed on): nothing more is counted for this connection.
 */
static __always_inline struct ferry_bestat *conn_bestat(const struct ferry_sk_conn *conn)
{
	__u32 id = conn->backend_id;
	struct ferry_bestat *st = bpf_map_lookup_elem(&ferry_bestat_v2, &id);

	if (!st || st->gen != conn->gen)
		return NULL;
	return st;
}

/* A reservation this socket held from an earlier connect() attempt. */
static __always_inline void conn_release_stale(struct ferry_sk_conn *conn)
{
	struct ferry_bestat *st;

	if (!conn_claim(conn, FERRY_CONN_RESERVED, FERRY_CONN_DONE))
		return;
	st = conn_bestat(conn);
	if (!st)
		return;
	cb_release(st);
	conn_drop_probe(conn, st);
}

/*
 * Remember in the socket's record that its connect() was reserved on
 * backend id, in the counters entry of generation gen (circuit_reserve()'s):
 * what the connection counts later goes there or nowhere, even if the
 * entry was deleted and created anew in between.
 */
static __always_inline void conn_track(struct ferry_sk_conn *conn, const struct ferry_svc_key *k,
				       __u32 id, __u32 gen, const struct ferry_backend *be, bool probe,
				       __u64 now)
{
	conn_release_stale(conn);
	conn->gen = gen;
	conn->svc = *k;
	conn->backend_id = id;
	__builtin_memcpy(conn->be_addr, be->addr, sizeof(conn->be_addr));
	conn->be_port = be->port;
	conn->be_family = be->family;
	conn->flags = probe ? FERRY_CONN_F_PROBE : 0;
	conn->start_ns = now;
	conn->phase = FERRY_CONN_RESERVED;
}

/*
 * getpeername() of a tracked TCP socket: when the peer the kernel sees (rk:
 * cookie, address, port) is the backend its record names, *out gets the
 * VIP it asked for.
 */
static __always_inline bool conn_revnat(const struct ferry_revnat_key *rk, struct ferry_revnat *out)
{
	__u64 cookie = rk->cookie;
	struct ferry_sk_conn *conn = bpf_map_lookup_elem(&ferry_conn_v2, &cookie);

	if (!conn || conn->phase == FERRY_CONN_NONE || conn->be_family != rk->family ||
	    conn->be_port != rk->port || conn->be_addr[0] != rk->addr[0] ||
	    conn->be_addr[1] != rk->addr[1] || conn->be_addr[2] != rk->addr[2] ||
	    conn->be_addr[3] != rk->addr[3])
		return false;
	__builtin_memcpy(out->addr, conn->svc.addr, sizeof(out->addr));
	out->port = conn->svc.port;
	out->family = conn->svc.family;
	out->backend_id = conn->backend_id;
	return true;
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
	st = bpf_map_lookup_elem(&ferry_bestat_v2, &slot->backend_id);
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

/* sockops: the SYN is about to leave. Returns true when sk is ours (the
 * caller then asks for state callbacks: TCP_CLOSE will come). */
static __always_inline bool conn_syn_sent(struct ferry_sk_conn *conn)
{
	if (!conn_claim(conn, FERRY_CONN_RESERVED, FERRY_CONN_CONNECTING))
		return false;
	conn_flag_set(conn, FERRY_CONN_F_SYN);
	return true;
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
	st = conn_bestat(conn);
	if (!st)
		return;
	conn_flag_set(conn, FERRY_CONN_F_ESTABLISHED);
	if (!(conn_flag_set(conn, FERRY_CONN_F_DECIDED) & FERRY_CONN_F_DECIDED)) {
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

	if (conn_flag_set(conn, FERRY_CONN_F_DECIDED) & FERRY_CONN_F_DECIDED)
		return;
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
	st = conn_bestat(conn);
	if (!st)
		return;
	conn_failed(conn, st, 110 /* ETIMEDOUT */, now);
	conn_drop_probe(conn, st);
}

/*
 * Count the socket's connection out, once, whatever it had reached. err:
 * why a handshake in flight ended (sk_err: ECONNREFUSED for a RST,
 * ETIMEDOUT, EHOSTUNREACH...), 0 when the application gave up on it (not
 * the backend's fault).
 */
static __always_inline void conn_end(struct ferry_sk_conn *conn, __u32 err, __u64 now)
{
	struct ferry_bestat *st;
	__u32 phase = conn->phase;

	if (phase != FERRY_CONN_RESERVED && phase != FERRY_CONN_CONNECTING &&
	    phase != FERRY_CONN_ESTABLISHED)
		return;
	if (!conn_claim(conn, phase, FERRY_CONN_DONE))
		return;
	st = conn_bestat(conn);
	if (!st)
		return;
	if (phase == FERRY_CONN_CONNECTING && err)
		conn_failed(conn, st, err, now);
	conn_drop_probe(conn, st);
	cb_release(st);
}

/*
 * sockops: the socket reached TCP_CLOSE; sent/received: its byte counts.
 * Returns true when the record should go now (the application released the
 * socket already).
 */
static __always_inline bool conn_tcp_closed(struct ferry_sk_conn *conn, __u32 err,
					    __u64 sent, __u64 received, __u64 now)
{
	struct ferry_bestat *st;

	conn_end(conn, err, now);
	if ((conn->flags & FERRY_CONN_F_ESTABLISHED) &&
	    (st = conn_bestat(conn))) {
		if (sent)
			__sync_fetch_and_add(&st->bytes_sent, sent);
		if (received)
			__sync_fetch_and_add(&st->bytes_received, received);
	}
	return conn_flag_set(conn, FERRY_CONN_F_TCP_CLOSED) & FERRY_CONN_F_RELEASED;
}

/*
 * cgroup/sock_release: the application closed the socket. Returns true when
 * the record should go now: no TCP_CLOSE callback is still to come (none
 * was asked for, or it came already).
 */
static __always_inline bool conn_released(struct ferry_sk_conn *conn, __u64 now)
{
	__u32 old;

	conn_end(conn, 0, now);
	old = conn_flag_set(conn, FERRY_CONN_F_RELEASED);
	return !(old & FERRY_CONN_F_SYN) || (old & FERRY_CONN_F_TCP_CLOSED);
}

#endif /* FERRY_CIRCUIT_BPF_H */
