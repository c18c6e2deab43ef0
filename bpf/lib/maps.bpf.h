/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maps of the socket load balancer, pinned by name under ferryd's bpffs
 * directory so every ferry object (and a restarted daemon) shares them.
 * max_entries here are defaults; ferryd sets the real sizes before load.
 */
#ifndef FERRY_MAPS_BPF_H
#define FERRY_MAPS_BPF_H

#include "common.bpf.h"

/* (VIP, port, proto) -> service. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_DEF_MAX_SERVICES);
	__type(key, struct ferry_svc_key);
	__type(value, struct ferry_svc);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_svc_v1 SEC(".maps");

/* (service id, slot) -> backend id; slots 0..count-1 of a service. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_DEF_MAX_BACKENDS);
	__type(key, struct ferry_slot_key);
	__type(value, struct ferry_slot);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_slot_v1 SEC(".maps");

/* backend id -> backend. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_DEF_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ferry_backend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_be_v1 SEC(".maps");

/* backend id -> kernel-maintained counters and circuit state (entries created
 * by circuit.bpf.h: bestat_get()). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_DEF_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct ferry_bestat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_bestat_v2 SEC(".maps");

/* Per-service maglev table for the socket LB: service id -> array of M ids. */
struct ferry_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_SOCK_MAGLEV_M);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, FERRY_DEF_MAX_SERVICES);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct ferry_maglev_inner);
} ferry_mag_v1 SEC(".maps");

/* (socket cookie, backend) -> VIP, for getpeername and recvmsg. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_DEF_MAX_REVNAT);
	__type(key, struct ferry_revnat_key);
	__type(value, struct ferry_revnat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_rev_v1 SEC(".maps");

/* Per-CPU outcome counters, indexed by enum ferry_stat. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FERRY_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_stats_v1 SEC(".maps");

/* Daemon status (one entry) and service names: read by ferryctl, written
 * by ferryd; no program touches them, they live here to be pinned with the rest. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_status);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_status_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_DEF_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ferry_svc_name);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_name_v1 SEC(".maps");

static __always_inline void stat_inc(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&ferry_stats_v1, &slot);

	if (v)
		*v += 1;
}

#endif /* FERRY_MAPS_BPF_H */
