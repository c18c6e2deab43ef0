/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Circuit breaker view used by backend selection: may this backend take a
 * new connection right now? The kernel owns the state in ferry_bestat_v1;
 * a missing entry means "no history": CLOSED (fail open).
 */
#ifndef FERRY_CIRCUIT_BPF_H
#define FERRY_CIRCUIT_BPF_H

#include "maps.bpf.h"

/* Returns true when the circuit lets a new connection through. */
static __always_inline bool circuit_admits(const struct ferry_svc *svc,
					   const struct ferry_bestat *st,
					   __u64 now)
{
	if (!st)
		return true;
	if (svc->circuit.max_connections &&
	    st->active >= svc->circuit.max_connections)
		return false;
	if (st->circuit == FERRY_CIRCUIT_OPEN && now < st->open_until_ns)
		return false;
	return true;
}

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

/* A connect() was just sent to backend id. */
static __always_inline void ferry_backend_connecting(__u32 id)
{
	struct ferry_bestat *st = bestat_get(id);

	if (st)
		__sync_fetch_and_add(&st->opened, 1);
}

#endif /* FERRY_CIRCUIT_BPF_H */
