/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps of the XDP load balancer and of the backend-side decap, pinned by
 * name next to the socket LB's maps (whose service, slot, backend and
 * circuit maps the XDP path reads). max_entries are defaults; ferryd sizes
 * them before load (rings and VIP counters by --max-services, backend
 * counters by --max-backends, flows by --xdp-flows, counter rows and the
 * next-hop cache by the possible CPUs).
 */
#ifndef FERRY_XDP_MAPS_BPF_H
#define FERRY_XDP_MAPS_BPF_H

#include "common.bpf.h"
#include <ferry/xdp.h>

/*
 * Outcome counters of both programs, a row per CPU (include/ferry/xdp.h
 * says why not a per-CPU map). One row by default; the loader sizes it to
 * the possible CPUs (ferry_xdp_size). A CPU without a row counts nothing.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_xstat_row);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xstat_v2 SEC(".maps");

/*
 * Every address of the node (IPv6 link-local ones aside), as ferryd sees
 * them in its network namespace (recorded where the decap runs, as it does
 * on every backend). ferryctl, which may run anywhere, finds the node's
 * addresses there when a service change makes it derive ferry_xdvip_v1
 * (decap_derive()); the LB, whether a backend is this node.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_XDADDR_MAX);
	__type(key, struct ferry_xdcap_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xdaddr_v1 SEC(".maps");

/*
 * The node's VLAN devices (include/ferry/xdp.h), kept by ferryd: a route whose
 * device is one leaves by its lower device with its tag. Read only when a
 * next hop is resolved, not per packet.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_XVLAN_MAX);
	__type(key, __u32);
	__type(value, struct ferry_xvlan);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xvlan_v1 SEC(".maps");

static __always_inline void xstat_inc(__u32 slot)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct ferry_xstat_row *r = bpf_map_lookup_elem(&ferry_xstat_v2, &cpu);

	/* Only this CPU writes its row, as with a per-CPU map's value. */
	if (r)
		r->v[slot & (FERRY_XSTAT_MAX - 1)] += 1;
}

#endif /* FERRY_XDP_MAPS_BPF_H */
