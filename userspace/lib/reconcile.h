/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reconcile: turn (current state, desired services) into the minimal set of
 * map writes, ordered so the data path never sees a service whose slot
 * points at a missing backend:
 *
 *   1. new/changed backends        4. service names, services
 *   2. slots                       5. removed services
 *   3. maglev tables and XDP rings  6. stale slots   7. removed backends
 *      (swapped in)
 *
 * Planning is pure (unit-tested without BPF); plan_apply() does the writes.
 */
#ifndef FERRY_RECONCILE_H
#define FERRY_RECONCILE_H

#include <stddef.h>
#include <linux/types.h>
#include <ferry/abi.h>

#include "registry.h"
#include "state.h"

struct ferry_maps;
struct ferry_xdcap_key;

struct vec {
	void	*d;
	size_t	n, cap, esz;
};

struct plan_mag {
	__u32	svc_id;
	__u32	m;		/* entries: FERRY_SOCK_MAGLEV_M, or the XDP ring size */
	__u32	*table;
};

struct plan_summary {
	size_t	svc_added, svc_removed, svc_changed, svc_unchanged;
	size_t	be_added, be_removed, be_changed;
};

struct plan {
	struct vec be_put_k, be_put_v, bestat_del;
	struct vec slot_put_k, slot_put_v;
	struct vec mag;			/* struct plan_mag */
	struct vec name_put_k, name_put_v;
	struct vec svc_put_k, svc_put_v;
	struct vec svc_del, slot_del, be_del, mag_del, name_del;
	struct vec xring, xring_del;	/* XDP rings (struct plan_mag), svc ids */
	struct vec svc_new;		/* ids of services created (their counters restart) */
	struct plan_summary sum;
};

struct plan_opts {
	__u8	owner;			/* FERRY_SVC_F_REGISTRY or FERRY_SVC_F_MANUAL */
	bool	keep_quarantine;	/* registry: an operator's ejection stays */
};

void plan_init(struct plan *p);
void plan_free(struct plan *p);
/* Whole registry against state: services the registry owned and no longer
 * names are removed; services ferryctl created are left alone. */
int plan_registry(struct plan *p, struct fstate *st, const struct registry *reg,
		  char *err, size_t errlen);
/* One service: cur NULL to create, want NULL to delete. */
int plan_service(struct plan *p, struct fstate *st, const struct svc_state *cur,
		 const struct reg_service *want, const struct plan_opts *o,
		 char *err, size_t errlen);
/* Map writes the plan does (for logs and the "minimal change" tests). */
size_t plan_writes(const struct plan *p);
/* The writes, holding m's lock (maps_lock(); nested in the caller's). A plan
 * is made from what fstate_load() read: take the lock before that read and
 * keep it to here, or another writer may have picked the same new ids. */
int plan_apply(struct ferry_maps *m, const struct plan *p, char *err, size_t errlen);

/* What xsvc_sync() did: VIPs in the index, VIPs left to ferry_svc_v1 because
 * their set was full, entries written and emptied. */
struct xsvc_report {
	size_t	indexed, overflow, added, removed;
};
/* Derive the XDP VIP index (ferry_xsvc_v1) and the VIP filter in front of it
 * (ferry_xvipf_v1; xvipf_fd -1: none) from ferry_svc_v1, writing only what
 * differs; plan_apply() calls it every time, ferryd once after loading. */
int xsvc_sync(int svc_fd, int xsvc_fd, int xvipf_fd, struct xsvc_report *r);
/* xsvc_sync() on m's maps, holding m's pin directory locked (maps_lock(),
 * nested in the caller's) so that writers (ferryd, ferryctl) take turns. */
int xsvc_sync_maps(struct ferry_maps *m, struct xsvc_report *r);

/* The node's IPv4 and IPv6 addresses as decap keys, sorted, malloc'd, from
 * one read: *all of every device, *on_ifs of the devices named in
 * ifs[0..nifs). IPv6 link-local addresses are left out. */
int node_addrs(const char *const *ifs, int nifs, struct ferry_xdcap_key **all, size_t *nall,
	       struct ferry_xdcap_key **on_ifs, size_t *non);
/* The decap's maps (include/ferry/xdp.h), and the pin directory to lock
 * around the derivation: -1 when the caller holds its lock (maps_lock(), as
 * plan_apply() does) or there is none. */
struct decap_maps {
	int	svc;		/* ferry_svc_v1: the XDP services */
	int	addr;		/* ferry_xdaddr_v1: the node's addresses, as ferryd recorded them */
	int	outer;		/* ferry_xdcap_v1: the --decap-iface addresses */
	int	vip;		/* ferry_xdvip_v1, written: XDP VIPs bound on the node */
	int	pair;		/* ferry_xdpair_v1, written: outer x vip, what the program asks */
	int	dirfd;
};
/* What decap_derive() did: entries in each written map, added and removed. */
struct decap_report {
	size_t	outers;			/* outer addresses (the decap interfaces') */
	size_t	vips, vip_added, vip_removed;
	size_t	pairs, pair_added, pair_removed;
	__u32	room;			/* ferry_xdpair_v1's size (--max-services) */
};
/* Make ferry_xdvip_v1 the VIPs of XDP services in ferry_svc_v1 that are one
 * of the node's addresses as ferryd recorded them (ferryctl may run in
 * another network namespace), and ferry_xdpair_v1 every outer address with
 * every such VIP; each map changed as map_set_sync() does, under the pin
 * directory's lock (maps_lock()). plan_apply() calls it where the
 * decap is loaded (a failure there is a warning: the services are written
 * anyway), ferryd also when the node's addresses change. */
int decap_derive(const struct decap_maps *m, struct decap_report *r);
/* The warning when decap_derive() failed with err: which sizes, and that
 * the decap keeps its last pairs. */
void decap_warn(const struct decap_report *r, int err);

/* The desired form of a service as it is now in the maps (ferryctl edits it). */
int svc_state_to_reg(const struct svc_state *s, struct reg_service *out);

#endif /* FERRY_RECONCILE_H */
