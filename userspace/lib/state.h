/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The node's current state as read back from the pinned maps: services in
 * key order, each with its backends in slot order. Reconcile diffs a registry
 * against this; ferryctl prints it.
 */
#ifndef FERRY_STATE_H
#define FERRY_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <ferry/abi.h>

struct ferry_maps;

struct be_state {
	__u32	id;
	__u32	cum_weight;	/* from its slot */
	struct ferry_backend be;
};

struct svc_state {
	struct ferry_svc_key key;
	struct ferry_svc val;
	char	name[FERRY_NAME_LEN];
	struct be_state *bes;	/* slot order */
	size_t	n;
	bool	has_maglev;
	__u32	xring_m;	/* size of its XDP ring; 0: none */
};

/* An id allocator over 1..max (0 is never an id). */
struct idset {
	__u8	*bits;
	__u32	max;
	__u32	hint;
};

struct fstate {
	struct svc_state *svcs;	/* sorted by key */
	size_t	n;
	size_t	nbackends;
	/* Ring size the XDP load balancer is configured for (ferry_xcfg_v1);
	 * 0: XDP not loaded, no rings are planned. */
	__u32	xring_m;
	struct idset svc_ids, be_ids;
	/* Entries no service reaches (left by an interrupted apply). */
	__u32	*orphan_be;
	size_t	n_orphan_be;
	struct ferry_slot_key *orphan_slot;
	size_t	n_orphan_slot;
};

int fstate_load(const struct ferry_maps *m, struct fstate *st);
/* An empty state with id spaces of the given sizes (tests, first start). */
int fstate_init(struct fstate *st, __u32 max_services, __u32 max_backends);
void fstate_free(struct fstate *st);
struct svc_state *fstate_find(const struct fstate *st, const struct ferry_svc_key *k);
int svc_key_cmp(const struct ferry_svc_key *a, const struct ferry_svc_key *b);

int idset_init(struct idset *s, __u32 max);
void idset_mark(struct idset *s, __u32 id);
void idset_clear(struct idset *s, __u32 id);
bool idset_test(const struct idset *s, __u32 id);
/* Lowest free id from the hint on, marked used; 0 when full. */
__u32 idset_alloc(struct idset *s);

#endif /* FERRY_STATE_H */
