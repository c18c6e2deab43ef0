/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The node's maps as real BPF maps, unpinned, for the unit tests that need
 * the kernel's (root): test_reconcile applies plans to them, test_health
 * probes the backends a plan wrote. Closing the descriptors frees them.
 */
#ifndef FERRY_TESTS_REALMAPS_H
#define FERRY_TESTS_REALMAPS_H

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include <ferry/abi.h>
#include "maps.h"

static int mk_hash(const char *name, size_t ksz, size_t vsz, __u32 max)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);

	return bpf_map_create(BPF_MAP_TYPE_HASH, name, ksz, vsz, max, &o);
}

/*
 * Every map plan_apply() and fstate_load() use, for 16 services; a small
 * max_be or max_slot makes an apply fail at that stage. Not from a pin
 * directory (dirfd -1): maps_lock() has nothing to lock. Non-zero when the
 * kernel refused one (not root): real_maps_close() what was made.
 */
static int real_maps_open(struct ferry_maps *m, __u32 max_be, __u32 max_slot)
{
	LIBBPF_OPTS(bpf_map_create_opts, mo);
	int inner;

	memset(m, 0xff, sizeof(*m));
	inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "t_inner", 4, 4, FERRY_SOCK_MAGLEV_M, NULL);
	if (inner < 0)
		return -errno;
	mo.inner_map_fd = inner;
	m->mag = bpf_map_create(BPF_MAP_TYPE_HASH_OF_MAPS, "t_mag", 4, 4, 16, &mo);
	close(inner);
	m->svc = mk_hash("t_svc", sizeof(struct ferry_svc_key), sizeof(struct ferry_svc), 16);
	m->slot = mk_hash("t_slot", sizeof(struct ferry_slot_key), sizeof(struct ferry_slot), max_slot);
	m->be = mk_hash("t_be", 4, sizeof(struct ferry_backend), max_be);
	m->bestat = bpf_map_create(BPF_MAP_TYPE_HASH, "t_bestat", 4, sizeof(struct ferry_bestat), 64, NULL);
	m->name = mk_hash("t_name", 4, sizeof(struct ferry_svc_name), 16);
	m->rev = m->stats = -1;
	m->status = bpf_map_create(BPF_MAP_TYPE_ARRAY, "t_status", 4, sizeof(struct ferry_status), 1, NULL);
	m->max_services = 16;
	m->max_backends = 64;
	if (m->mag < 0 || m->svc < 0 || m->slot < 0 || m->be < 0 || m->bestat < 0 || m->name < 0 || m->status < 0)
		return -EPERM;
	return 0;
}

static void real_maps_close(struct ferry_maps *m)
{
	int fds[] = { m->svc, m->slot, m->be, m->bestat, m->mag, m->name, m->status };
	size_t i;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

#endif /* FERRY_TESTS_REALMAPS_H */
