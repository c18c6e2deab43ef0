// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include <ferry/xdp.h>

#include "maps.h"
#include "state.h"

int idset_init(struct idset *s, __u32 max)
{
	s->max = max;
	s->hint = 1;
	s->bits = calloc(max / 8 + 2, 1);
	return s->bits ? 0 : -ENOMEM;
}

void idset_mark(struct idset *s, __u32 id)
{
	if (id && id <= s->max)
		s->bits[id / 8] |= 1 << (id % 8);
}

void idset_clear(struct idset *s, __u32 id)
{
	if (id && id <= s->max)
		s->bits[id / 8] &= ~(1 << (id % 8));
}

bool idset_test(const struct idset *s, __u32 id)
{
	return id && id <= s->max && (s->bits[id / 8] & (1 << (id % 8)));
}

__u32 idset_alloc(struct idset *s)
{
	__u32 i, id;

	for (i = 0; i < s->max; i++) {
		id = (s->hint - 1 + i) % s->max + 1;
		if (!idset_test(s, id)) {
			idset_mark(s, id);
			s->hint = id % s->max + 1;
			return id;
		}
	}
	return 0;
}

int svc_key_cmp(const struct ferry_svc_key *a, const struct ferry_svc_key *b)
{
	return memcmp(a, b, sizeof(*a));
}

static int cmp_svc(const void *a, const void *b)
{
	return svc_key_cmp(&((const struct svc_state *)a)->key,
			   &((const struct svc_state *)b)->key);
}

struct svc_state *fstate_find(const struct fstate *st, const struct ferry_svc_key *k)
{
	struct svc_state probe = { .key = *k };

	return bsearch(&probe, st->svcs, st->n, sizeof(*st->svcs), cmp_svc);
}

int fstate_init(struct fstate *st, __u32 max_services, __u32 max_backends)
{
	int err;

	memset(st, 0, sizeof(*st));
	if ((err = idset_init(&st->svc_ids, max_services)) ||
	    (err = idset_init(&st->be_ids, max_backends))) {
		fstate_free(st);
		return err;
	}
	return 0;
}

void fstate_free(struct fstate *st)
{
	size_t i;

	for (i = 0; i < st->n; i++)
		free(st->svcs[i].bes);
	free(st->svcs);
	free(st->svc_ids.bits);
	free(st->be_ids.bits);
	free(st->orphan_be);
	free(st->orphan_slot);
	memset(st, 0, sizeof(*st));
}

static int cmp_be_id(const void *a, const void *b)
{
	__u32 x = ((const struct be_state *)a)->id, y = ((const struct be_state *)b)->id;

	return x < y ? -1 : x > y;
}

/* Index of services by id: ids are dense below max_services. */
int fstate_load(const struct ferry_maps *m, struct fstate *st)
{
	struct ferry_svc_key *skeys = NULL;
	struct ferry_svc *svals = NULL;
	struct ferry_slot_key *slkeys = NULL;
	struct ferry_slot *slvals = NULL;
	__u32 *bkeys = NULL, *nkeys = NULL;
	struct ferry_backend *bvals = NULL;
	struct ferry_svc_name *nvals = NULL;
	struct svc_state **by_id = NULL;
	struct be_state *bs = NULL;
	__u8 *be_seen = NULL;
	size_t ns, nsl, nb, nn, i;
	__u32 mdummy;
	int err;

	if ((err = fstate_init(st, m->max_services, m->max_backends)))
		return err;
	if ((err = map_dump(m->svc, sizeof(*skeys), sizeof(*svals), (void **)&skeys, (void **)&svals, &ns)) ||
	    (err = map_dump(m->slot, sizeof(*slkeys), sizeof(*slvals), (void **)&slkeys, (void **)&slvals, &nsl)) ||
	    (err = map_dump(m->be, sizeof(*bkeys), sizeof(*bvals), (void **)&bkeys, (void **)&bvals, &nb)) ||
	    (err = map_dump(m->name, sizeof(*nkeys), sizeof(*nvals), (void **)&nkeys, (void **)&nvals, &nn)))
		goto cleanup;

	st->svcs = calloc(ns ? ns : 1, sizeof(*st->svcs));
	by_id = calloc(m->max_services + 1, sizeof(*by_id));
	be_seen = calloc(nb ? nb : 1, 1);
	if (!st->svcs || !by_id || !be_seen) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (i = 0; i < ns; i++) {
		struct svc_state *s = &st->svcs[st->n];

		if (!svals[i].id || svals[i].id > m->max_services || svals[i].count > FERRY_MAX_SVC_BACKENDS)
			continue;	/* not ours to interpret */
		s->key = skeys[i];
		s->val = svals[i];
		s->bes = calloc(s->val.count ? s->val.count : 1, sizeof(*s->bes));
		if (!s->bes) {
			err = -ENOMEM;
			goto cleanup;
		}
		st->n++;
		idset_mark(&st->svc_ids, s->val.id);
	}
	qsort(st->svcs, st->n, sizeof(*st->svcs), cmp_svc);
	for (i = 0; i < st->n; i++) {
		by_id[st->svcs[i].val.id] = &st->svcs[i];
		st->svcs[i].has_maglev = !bpf_map_lookup_elem(m->mag, &st->svcs[i].val.id, &mdummy);
		if (m->xring >= 0 && map_inner_max_entries(m->xring, st->svcs[i].val.id,
							   &st->svcs[i].xring_m))
			st->svcs[i].xring_m = 0;
	}
	if (m->xcfg >= 0) {
		struct ferry_xcfg xc;
		__u32 zero = 0;

		if (!bpf_map_lookup_elem(m->xcfg, &zero, &xc))
			st->xring_m = xc.ring_size;
	}
	for (i = 0; i < nn; i++)
		if (nkeys[i] <= m->max_services && by_id[nkeys[i]])
			memcpy(by_id[nkeys[i]]->name, nvals[i].name, FERRY_NAME_LEN - 1);

	/* Backends sorted by id, so a slot finds its backend with bsearch. */
	bs = calloc(nb ? nb : 1, sizeof(*bs));
	if (!bs) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (i = 0; i < nb; i++) {
		bs[i].id = bkeys[i];
		bs[i].be = bvals[i];
		idset_mark(&st->be_ids, bkeys[i]);
	}
	qsort(bs, nb, sizeof(*bs), cmp_be_id);

	for (i = 0; i < nsl; i++) {
		struct svc_state *s = slkeys[i].svc_id <= m->max_services ? by_id[slkeys[i].svc_id] : NULL;
		struct be_state probe = { .id = slvals[i].backend_id }, *hit;

		if (!s || slkeys[i].slot >= s->val.count) {
			void *n = realloc(st->orphan_slot, (st->n_orphan_slot + 1) * sizeof(*st->orphan_slot));

			if (!n) {
				err = -ENOMEM;
				goto cleanup;
			}
			st->orphan_slot = n;
			st->orphan_slot[st->n_orphan_slot++] = slkeys[i];
			continue;
		}
		hit = bsearch(&probe, bs, nb, sizeof(*bs), cmp_be_id);
		if (!hit)
			continue;	/* dangling slot (id 0): reconcile rewrites it */
		be_seen[hit - bs] = 1;
		s->bes[slkeys[i].slot] = *hit;
		s->bes[slkeys[i].slot].cum_weight = slvals[i].cum_weight;
	}
	for (i = 0; i < st->n; i++) {
		struct svc_state *s = &st->svcs[i];

		s->n = s->val.count;
		st->nbackends += s->n;
	}
	for (i = 0; i < nb; i++) {
		if (be_seen[i])
			continue;
		{
			void *n = realloc(st->orphan_be, (st->n_orphan_be + 1) * sizeof(*st->orphan_be));

			if (!n) {
				err = -ENOMEM;
				goto cleanup;
			}
			st->orphan_be = n;
			st->orphan_be[st->n_orphan_be++] = bs[i].id;
		}
	}
	err = 0;
cleanup:
	free(skeys);
	free(svals);
	free(slkeys);
	free(slvals);
	free(bkeys);
	free(bvals);
	free(nkeys);
	free(nvals);
	free(by_id);
	free(be_seen);
	free(bs);
	if (err)
		fstate_free(st);
	return err;
}
