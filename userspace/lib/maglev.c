// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "maglev.h"

/* 64-bit mix of the backend identity (splitmix64 finaliser over the words). */
static __u64 be_hash(const struct maglev_backend *b, __u64 seed)
{
	__u64 h = seed ^ 0x9e3779b97f4a7c15ULL;
	__u32 w[5] = { b->addr[0], b->addr[1], b->addr[2], b->addr[3], b->port };
	int i;

	for (i = 0; i < 5; i++) {
		h ^= w[i];
		h += 0x9e3779b97f4a7c15ULL;
		h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
		h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
		h ^= h >> 31;
	}
	return h;
}

/* Canonical order: by identity, so the table does not depend on the order
 * a node happens to hold its backends in (slot order follows its history). */
static int cmp_identity(const void *a, const void *b, void *arg)
{
	const struct maglev_backend *bes = arg;
	const struct maglev_backend *x = &bes[*(const size_t *)a], *y = &bes[*(const size_t *)b];
	int r = memcmp(x->addr, y->addr, sizeof(x->addr));

	if (r)
		return r;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

bool maglev_is_prime(__u32 m)
{
	__u32 d;

	if (m < 2)
		return false;
	for (d = 2; (__u64)d * d <= m; d++)
		if (m % d == 0)
			return false;
	return true;
}

int maglev_build(const struct maglev_backend *bes, size_t n, __u32 m, __u32 *table)
{
	__u32 *offset = NULL, *skip = NULL, *next = NULL, wmax = 0;
	__u64 *credit = NULL;
	size_t i, k, *order = NULL, filled = 0, live = 0;
	int err = 0;

	if (!maglev_is_prime(m))
		return -EINVAL;
	memset(table, 0, m * sizeof(*table));
	for (i = 0; i < n; i++) {
		if (bes[i].weight > wmax)
			wmax = bes[i].weight;
		live += bes[i].weight > 0;
	}
	if (!live)
		return 0;
	offset = calloc(n, sizeof(*offset));
	skip = calloc(n, sizeof(*skip));
	next = calloc(n, sizeof(*next));
	credit = calloc(n, sizeof(*credit));
	order = calloc(n, sizeof(*order));
	if (!offset || !skip || !next || !credit || !order) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof(*order), cmp_identity, (void *)bes);
	for (i = 0; i < n; i++) {
		offset[i] = be_hash(&bes[i], 0x5bd1e995) % m;
		skip[i] = be_hash(&bes[i], 0xc2b2ae35) % (m - 1) + 1;
	}
	/* Each round every backend earns its weight in credit; a backend
	 * claims one entry per wmax credit, so entries follow the weights. */
	while (filled < m) {
		for (k = 0; k < n && filled < m; k++) {
			i = order[k];
			if (!bes[i].weight)
				continue;
			credit[i] += bes[i].weight;
			while (credit[i] >= wmax && filled < m) {
				__u32 c;

				credit[i] -= wmax;
				do {
					c = (offset[i] + (__u64)next[i] * skip[i]) % m;
					next[i]++;
				} while (table[c]);
				table[c] = bes[i].id;
				filled++;
			}
		}
	}
cleanup:
	free(offset);
	free(skip);
	free(next);
	free(credit);
	free(order);
	return err;
}
