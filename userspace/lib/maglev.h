/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Weighted maglev lookup tables (Eisenbud et al., NSDI '16). A backend's
 * permutation depends only on its address and port, so every node builds the
 * same table from the same backend set, and removing one backend moves only
 * the entries it owned (plus a small reshuffle).
 */
#ifndef FERRY_MAGLEV_H
#define FERRY_MAGLEV_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct maglev_backend {
	__u32	id;		/* value written into the table */
	__u32	weight;		/* 0: not in the table */
	__u32	addr[4];	/* identity: hashed for the permutation */
	__u16	port;
};

/*
 * Fill table[0..m-1] (m prime; -EINVAL otherwise). Backend i owns floor or
 * ceil of m * weight_i / (sum of weights) entries (none when that is below 1
 * and it gets no leftover), the same whatever order bes lists them in.
 * Entries are 0 when no backend has weight.
 */
int maglev_build(const struct maglev_backend *bes, size_t n, __u32 m, __u32 *table);
bool maglev_is_prime(__u32 m);

#endif /* FERRY_MAGLEV_H */
