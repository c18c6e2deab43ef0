/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps of the XDP load balancer and of the backend-side decap, pinned by
 * name next to the socket LB's maps (whose service, slot, backend and
 * circuit maps the XDP path reads). max_entries are defaults; ferryd sizes
 * them before load (rings and VIP counters by --max-services, backend
 * counters by --max-backends, flows by --xdp-flows).
 */
#ifndef FERRY_XDP_MAPS_BPF_H
#define FERRY_XDP_MAPS_BPF_H

#include "common.bpf.h"
#include <ferry/xdp.h>

/* Per-CPU counters of both programs, indexed by enum ferry_xstat. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FERRY_XSTAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xstat_v1 SEC(".maps");

static __always_inline void xstat_inc(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&ferry_xstat_v1, &slot);

	if (v)
		*v += 1;
}

#endif /* FERRY_XDP_MAPS_BPF_H */
