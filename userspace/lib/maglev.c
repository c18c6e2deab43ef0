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

/* Live backend i's order in the leftover hand-out: larger remainder first,
 * then canonical order (pos), so every node gives the leftovers alike. */
struct rem_key {
	__u64	rem;
	size_t	pos;
	size_t	i;
};

static int cmp_rem(const void *a, const void *b)
{
	const struct rem_key *x = a, *y = b;

	if (x->rem != y->rem)
		return x->rem > y->rem ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Pending claim turns, a min-heap on (round << 64 | canonical position): the
 * order in which the credit rounds reach the backends. */
typedef unsigned __int128 turn_t;

#define TURN(round, pos)	((turn_t)(round) << 64 | (pos))
#define TURN_ROUND(t)		((__u64)((t) >> 64))
#define TURN_POS(t)		((size_t)(__u64)(t))

/*
 * Put t in place of the top. t is a later turn of the top's backend, usually
 * behind most of the heap (with equal weights, behind all of it): walk the
 * hole down to a leaf along the smaller children, then sift t up from there
 * (Floyd), which takes about half the comparisons of a plain sift-down.
 */
static inline void heap_replace_top(turn_t *h, size_t len, turn_t t)
{
	size_t k = 0, c;

	while ((c = 2 * k + 1) < len) {
		if (c + 1 < len && h[c + 1] < h[c])
			c++;
		h[k] = h[c];
		k = c;
	}
	while (k > 0 && t < h[(k - 1) / 2]) {
		h[k] = h[(k - 1) / 2];
		k = (k - 1) / 2;
	}
	h[k] = t;
}

static void heap_down(turn_t *h, size_t len, size_t k)
{
	for (;;) {
		size_t l = 2 * k + 1, r = l + 1, s = k;
		turn_t t;

		if (l < len && h[l] < h[s])
			s = l;
		if (r < len && h[r] < h[s])
			s = r;
		if (s == k)
			return;
		t = h[k], h[k] = h[s], h[s] = t;
		k = s;
	}
}

/* Take the next free entry along backend i's permutation. */
static inline void claim(const struct maglev_backend *bes, size_t i, __u32 m, const __u32 *offset,
			 const __u32 *skip, __u32 *next, __u8 *used, __u32 *table)
{
	__u32 c;

	do {
		c = (offset[i] + (__u64)next[i] * skip[i]) % m;
		next[i]++;
	} while (used[c]);
	used[c] = 1;
	table[c] = bes[i].id;
}

/*
 * Entries per backend: exactly proportional. Live backend i gets the quota
 * q_i = floor(m * w_i / W) (W the sum of the weights), and the m - sum(q_i)
 * entries left over (fewer than the live backends) go one each to the
 * largest remainders m * w_i mod W, ties in canonical order. So each backend
 * owns floor or ceil of m * w_i / W entries, whatever the spread of weights.
 * A backend whose quota is 0 (weight below W / m, without a leftover) gets
 * no entry: that is the proportional answer, not a loss.
 *
 * Placement keeps maglev's interleaving: in credit rounds every backend
 * earns its weight and claims one entry (the next free one along its own
 * permutation) per wmax of credit, in canonical order within a round, and
 * stops once it holds its quota. The heaviest backends (weight wmax) claim
 * in every round; any other claims at most one entry a round, its k-th in
 * round ceil(k * wmax / w_i), so the rounds are not stepped through one by
 * one for those (with weights 1 and 65535 almost every round is empty for
 * the light ones): a heap on (round, canonical position) yields their turns,
 * merged in each round with the list of heaviest ones still claiming.
 * The table is full exactly when every backend holds its quota (they sum
 * to m), and a backend with quota left always has a next turn, so the
 * build ends.
 */
int maglev_build(const struct maglev_backend *bes, size_t n, __u32 m, __u32 *table)
{
	__u32 *offset = NULL, *skip = NULL, *next = NULL, *quota = NULL, *held = NULL, wmax = 0;
	size_t i, k, *order = NULL, *lane = NULL, filled = 0, live = 0, hlen = 0, nlane = 0;
	struct rem_key *rk = NULL;
	turn_t *heap = NULL;
	__u64 wsum = 0, given = 0, r;
	__u8 *used = NULL;
	int err = 0;

	if (!maglev_is_prime(m))
		return -EINVAL;
	memset(table, 0, m * sizeof(*table));
	for (i = 0; i < n; i++) {
		if (bes[i].weight > wmax)
			wmax = bes[i].weight;
		live += bes[i].weight > 0;
		wsum += bes[i].weight;	/* < 2^64: n * (2^32 - 1) */
	}
	if (!live)
		return 0;
	offset = calloc(n, sizeof(*offset));
	skip = calloc(n, sizeof(*skip));
	next = calloc(n, sizeof(*next));
	quota = calloc(n, sizeof(*quota));
	held = calloc(n, sizeof(*held));
	order = calloc(n, sizeof(*order));
	lane = calloc(live, sizeof(*lane));
	rk = calloc(live, sizeof(*rk));
	heap = calloc(live, sizeof(*heap));
	used = calloc(m, sizeof(*used));	/* taken entries (an id may be 0) */
	if (!offset || !skip || !next || !quota || !held || !order || !lane || !rk || !heap ||
	    !used) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof(*order), cmp_identity, (void *)bes);
	for (k = 0, live = 0; k < n; k++) {
		/* m and w_i are both below 2^32, so m * w_i fits in 64 bits */
		__u64 share = (__u64)m * bes[order[k]].weight;

		i = order[k];
		if (!bes[i].weight)
			continue;
		quota[i] = share / wsum;
		given += quota[i];
		rk[live++] = (struct rem_key){ .rem = share % wsum, .pos = k, .i = i };
	}
	qsort(rk, live, sizeof(*rk), cmp_rem);
	for (k = 0; given < m; k++, given++)	/* m - given < live */
		quota[rk[k].i]++;
	for (i = 0; i < n; i++) {
		offset[i] = be_hash(&bes[i], 0x5bd1e995) % m;
		skip[i] = be_hash(&bes[i], 0xc2b2ae35) % (m - 1) + 1;
	}
	/* the heaviest in the lane; the others' first turns: the round in
	 * which their credit reaches wmax */
	for (k = 0; k < n; k++) {
		i = order[k];
		if (!quota[i])
			continue;
		if (bes[i].weight == wmax)
			lane[nlane++] = k;
		else
			heap[hlen++] = TURN(((__u64)wmax + bes[i].weight - 1) / bes[i].weight, k);
	}
	for (k = hlen / 2; k-- > 0;)
		heap_down(heap, hlen, k);
	for (r = 1; filled < m; r++) {
		size_t j = 0, keep = 0;

		if (!nlane) {
			if (!hlen)
				break;	/* not reached: the quotas sum to m */
			r = TURN_ROUND(heap[0]);
		}
		/* round r: the lane and the heap's turns in canonical order */
		for (;;) {
			if (hlen && TURN_ROUND(heap[0]) == r &&
			    (j == nlane || TURN_POS(heap[0]) < lane[j])) {
				i = order[TURN_POS(heap[0])];
				claim(bes, i, m, offset, skip, next, used, table);
				filled++;
				if (++held[i] < quota[i]) {
					/* (held + 1) * wmax + w - 1 < 2^64: each below 2^32 */
					__u32 w = bes[i].weight;
					__u64 nr = ((__u64)(held[i] + 1) * wmax + w - 1) / w;

					heap_replace_top(heap, hlen, TURN(nr, TURN_POS(heap[0])));
				} else {
					heap[0] = heap[--hlen];
					heap_down(heap, hlen, 0);
				}
			} else if (j < nlane) {
				k = lane[j++];
				i = order[k];
				claim(bes, i, m, offset, skip, next, used, table);
				filled++;
				if (++held[i] < quota[i])
					lane[keep++] = k;
			} else {
				break;
			}
		}
		nlane = keep;
	}
cleanup:
	free(offset);
	free(skip);
	free(next);
	free(quota);
	free(held);
	free(order);
	free(lane);
	free(rk);
	free(heap);
	free(used);
	return err;
}
