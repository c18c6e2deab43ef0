// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ifaddrs.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <ferry/xdp.h>

#include "log.h"
#include "maglev.h"
#include "maps.h"
#include "reconcile.h"

static void vec_init(struct vec *v, size_t esz)
{
	memset(v, 0, sizeof(*v));
	v->esz = esz;
}

static int vec_push(struct vec *v, const void *e)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		void *d = realloc(v->d, cap * v->esz);

		if (!d)
			return -ENOMEM;
		v->d = d;
		v->cap = cap;
	}
	memcpy((char *)v->d + v->n * v->esz, e, v->esz);
	v->n++;
	return 0;
}

void plan_init(struct plan *p)
{
	memset(p, 0, sizeof(*p));
	vec_init(&p->be_put_k, sizeof(__u32));
	vec_init(&p->be_put_v, sizeof(struct ferry_backend));
	vec_init(&p->bestat_del, sizeof(__u32));
	vec_init(&p->slot_put_k, sizeof(struct ferry_slot_key));
	vec_init(&p->slot_put_v, sizeof(struct ferry_slot));
	vec_init(&p->mag, sizeof(struct plan_mag));
	vec_init(&p->name_put_k, sizeof(__u32));
	vec_init(&p->name_put_v, sizeof(struct ferry_svc_name));
	vec_init(&p->svc_put_k, sizeof(struct ferry_svc_key));
	vec_init(&p->svc_put_v, sizeof(struct ferry_svc));
	vec_init(&p->svc_del, sizeof(struct ferry_svc_key));
	vec_init(&p->slot_del, sizeof(struct ferry_slot_key));
	vec_init(&p->be_del, sizeof(__u32));
	vec_init(&p->mag_del, sizeof(__u32));
	vec_init(&p->xring, sizeof(struct plan_mag));
	vec_init(&p->xring_del, sizeof(__u32));
	vec_init(&p->name_del, sizeof(__u32));
	vec_init(&p->svc_new, sizeof(__u32));
}

void plan_free(struct plan *p)
{
	struct vec *all[] = { &p->be_put_k, &p->be_put_v, &p->bestat_del, &p->slot_put_k,
		&p->slot_put_v, &p->mag, &p->name_put_k, &p->name_put_v, &p->svc_put_k,
		&p->svc_put_v, &p->svc_del, &p->slot_del, &p->be_del, &p->mag_del, &p->name_del,
		&p->xring, &p->xring_del, &p->svc_new };
	size_t i;

	for (i = 0; i < p->mag.n; i++)
		free(((struct plan_mag *)p->mag.d)[i].table);
	for (i = 0; i < p->xring.n; i++)
		free(((struct plan_mag *)p->xring.d)[i].table);
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(all[i]->d);
	memset(p, 0, sizeof(*p));
}

size_t plan_writes(const struct plan *p)
{
	return p->be_put_k.n + p->bestat_del.n + p->slot_put_k.n + p->mag.n +
	       p->name_put_k.n + p->svc_put_k.n + p->svc_del.n + p->slot_del.n +
	       p->be_del.n + p->mag_del.n + p->name_del.n + p->xring.n + p->xring_del.n;
}

static __u32 usable_weight(const struct ferry_backend *b)
{
	return b->state == FERRY_BE_ACTIVE ? b->weight : 0;
}

/* Lookup of current backends by endpoint. */
struct ep_idx {
	__u32	addr[4];
	__u16	port;	/* network order */
	__u32	idx;
};

static int cmp_ep(const void *a, const void *b)
{
	const struct ep_idx *x = a, *y = b;
	int r = memcmp(x->addr, y->addr, sizeof(x->addr));

	return r ? r : (int)x->port - (int)y->port;
}

static int plan_delete(struct plan *p, const struct svc_state *cur)
{
	struct ferry_slot_key sk = { .svc_id = cur->val.id };
	size_t i;
	int err;

	if ((err = vec_push(&p->svc_del, &cur->key)))
		return err;
	for (i = 0; i < cur->n; i++) {
		sk.slot = i;
		if ((err = vec_push(&p->slot_del, &sk)))
			return err;
		if (cur->bes[i].id && (err = vec_push(&p->be_del, &cur->bes[i].id)))
			return err;
	}
	if (cur->has_maglev && (err = vec_push(&p->mag_del, &cur->val.id)))
		return err;
	if (cur->xring_m && (err = vec_push(&p->xring_del, &cur->val.id)))
		return err;
	if ((err = vec_push(&p->name_del, &cur->val.id)))
		return err;
	p->sum.svc_removed++;
	p->sum.be_removed += cur->n;
	return 0;
}

/* A maglev table of m entries over the usable weights of bes (socket LB, XDP ring). */
static int plan_maglev(struct vec *v, __u32 svc_id, const struct be_state *bes, size_t n,
		       __u32 m)
{
	struct maglev_backend *mb = calloc(n ? n : 1, sizeof(*mb));
	struct plan_mag pm = { .svc_id = svc_id, .m = m };
	size_t i;
	int err;

	pm.table = malloc(m * sizeof(__u32));
	if (!mb || !pm.table) {
		free(mb);
		free(pm.table);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		mb[i].id = bes[i].id;
		mb[i].weight = usable_weight(&bes[i].be);
		memcpy(mb[i].addr, bes[i].be.addr, sizeof(mb[i].addr));
		mb[i].port = bes[i].be.port;
	}
	err = maglev_build(mb, n, m, pm.table);
	free(mb);
	if (!err)
		err = vec_push(v, &pm);
	if (err)
		free(pm.table);
	return err;
}

static struct ferry_backend want_backend(const struct reg_backend *rb, __u32 svc_id)
{
	struct ferry_backend be = {};

	memcpy(be.addr, rb->addr.a, sizeof(be.addr));
	be.port = htons(rb->port);
	be.family = rb->addr.family;
	be.state = rb->state;
	be.weight = rb->weight;
	be.svc_id = svc_id;
	return be;
}

/*
 * Lay out the new slot array: retained backends keep their slots (so an
 * unrelated change moves nobody), new ones fill the holes removed ones left,
 * then go at the end; if the service shrank, entries past the new end move
 * down into the remaining holes. Every position below n ends up filled.
 */
static void place_slots(struct be_state *nb, size_t old_n, size_t n,
			const struct be_state *added, size_t nadded)
{
	size_t pos, a = 0, top;

	for (pos = 0; pos < old_n && a < nadded; pos++)
		if (!nb[pos].id)
			nb[pos] = added[a++];
	for (pos = old_n; a < nadded; pos++)
		nb[pos] = added[a++];
	top = old_n;
	for (pos = 0; pos < n; pos++) {
		if (nb[pos].id)
			continue;
		while (top > n && !nb[top - 1].id)
			top--;
		if (top <= n)
			break;
		nb[pos] = nb[--top];
		memset(&nb[top], 0, sizeof(nb[top]));
	}
}

int plan_service(struct plan *p, struct fstate *st, const struct svc_state *cur,
		 const struct reg_service *want, const struct plan_opts *o,
		 char *err, size_t errlen)
{
	struct be_state *nb = NULL, *added = NULL;
	struct ep_idx *eps = NULL;
	__u8 *kept = NULL;
	struct ferry_svc nv = {};
	size_t i, old_n, new_n, nadded = 0;
	bool members_changed = false, changed = false;
	bool weighted;
	size_t be_changed = 0;
	char kbuf[96];
	__u32 cum;
	int ret;

	if (!want)
		return cur ? plan_delete(p, cur) : 0;
	weighted = want->lb == FERRY_LB_WEIGHTED;

	old_n = cur ? cur->n : 0;
	new_n = want->nbackends;
	nb = calloc((new_n > old_n ? new_n : old_n) + 1, sizeof(*nb));
	added = calloc(new_n + 1, sizeof(*added));
	eps = calloc(old_n + 1, sizeof(*eps));
	kept = calloc(old_n + 1, 1);
	if (!nb || !added || !eps || !kept) {
		ret = -ENOMEM;
		goto cleanup;
	}
	nv.id = cur ? cur->val.id : idset_alloc(&st->svc_ids);
	if (!nv.id) {
		snprintf(err, errlen, "service %s: no free service id: map capacity of %u services reached",
			 svc_key_str(&want->key, kbuf, sizeof(kbuf)), st->svc_ids.max);
		ret = -ENOSPC;
		goto cleanup;
	}
	if (!cur && (ret = vec_push(&p->svc_new, &nv.id)))
		goto cleanup;

	for (i = 0; i < old_n; i++) {
		memcpy(eps[i].addr, cur->bes[i].be.addr, sizeof(eps[i].addr));
		eps[i].port = cur->bes[i].be.port;
		eps[i].idx = i;
	}
	qsort(eps, old_n, sizeof(*eps), cmp_ep);

	for (i = 0; i < new_n; i++) {
		struct ferry_backend be = want_backend(&want->backends[i], nv.id);
		struct ep_idx probe = { .port = be.port }, *hit = NULL;

		memcpy(probe.addr, be.addr, sizeof(probe.addr));
		if (old_n)
			hit = bsearch(&probe, eps, old_n, sizeof(*eps), cmp_ep);
		if (hit && !kept[hit->idx]) {
			const struct be_state *cb = &cur->bes[hit->idx];

			kept[hit->idx] = 1;
			be.health = cb->be.health;	/* ferryd's probes own it */
			if (o->keep_quarantine && cb->be.state == FERRY_BE_QUARANTINED)
				be.state = FERRY_BE_QUARANTINED;
			nb[hit->idx].id = cb->id;
			nb[hit->idx].be = be;
			if (!cb->id || memcmp(&be, &cb->be, sizeof(be))) {
				if ((ret = vec_push(&p->be_put_k, &cb->id)) ||
				    (ret = vec_push(&p->be_put_v, &be)))
					goto cleanup;
				be_changed++;
				if (usable_weight(&be) != usable_weight(&cb->be))
					members_changed = true;
			}
			continue;
		}
		added[nadded].be = be;
		added[nadded].id = idset_alloc(&st->be_ids);
		if (!added[nadded].id) {
			snprintf(err, errlen, "service %s: no free backend id: map capacity of %u backends reached",
				 svc_key_str(&want->key, kbuf, sizeof(kbuf)), st->be_ids.max);
			ret = -ENOSPC;
			goto cleanup;
		}
		if ((ret = vec_push(&p->bestat_del, &added[nadded].id)) ||
		    (ret = vec_push(&p->be_put_k, &added[nadded].id)) ||
		    (ret = vec_push(&p->be_put_v, &added[nadded].be)))
			goto cleanup;
		nadded++;
		p->sum.be_added++;
		members_changed = true;
	}
	for (i = 0; i < old_n; i++) {
		if (kept[i])
			continue;
		if (cur->bes[i].id && (ret = vec_push(&p->be_del, &cur->bes[i].id)))
			goto cleanup;
		p->sum.be_removed++;
		members_changed = true;
	}

	place_slots(nb, old_n, new_n, added, nadded);

	/* Cumulative weights only matter to the weighted policy; elsewhere they
	 * stay 0 so a weight or state change is a single backend write. */
	cum = 0;
	for (i = 0; i < new_n; i++) {
		struct ferry_slot_key sk = { .svc_id = nv.id, .slot = i };
		struct ferry_slot sv;

		if (weighted)
			cum += usable_weight(&nb[i].be);
		sv.backend_id = nb[i].id;
		sv.cum_weight = cum;
		if (i < old_n && cur->bes[i].id == nb[i].id && cur->bes[i].cum_weight == cum)
			continue;
		if ((ret = vec_push(&p->slot_put_k, &sk)) || (ret = vec_push(&p->slot_put_v, &sv)))
			goto cleanup;
		changed = true;
	}
	for (i = new_n; i < old_n; i++) {
		struct ferry_slot_key sk = { .svc_id = nv.id, .slot = i };

		if ((ret = vec_push(&p->slot_del, &sk)))
			goto cleanup;
	}

	nv.count = new_n;
	nv.weight_sum = cum;
	nv.rr = cur ? cur->val.rr : 0;
	nv.lb = want->lb;
	nv.flags = (cur ? cur->val.flags : 0) & ~(FERRY_SVC_F_REGISTRY | FERRY_SVC_F_MANUAL | FERRY_SVC_F_XDP);
	nv.flags |= o->owner | (want->xdp ? FERRY_SVC_F_XDP : 0);
	nv.circuit = want->circuit;

	if (want->lb == FERRY_LB_MAGLEV &&
	    (!cur || !cur->has_maglev || members_changed || cur->val.lb != FERRY_LB_MAGLEV)) {
		if ((ret = plan_maglev(&p->mag, nv.id, nb, new_n, FERRY_SOCK_MAGLEV_M)))
			goto cleanup;
		changed = true;
	} else if (want->lb != FERRY_LB_MAGLEV && cur && cur->has_maglev) {
		if ((ret = vec_push(&p->mag_del, &nv.id)))
			goto cleanup;
	}
	/* XDP ring: whenever the usable backend set or the configured size changed. */
	if (want->xdp && st->xring_m &&
	    (!cur || cur->xring_m != st->xring_m || members_changed)) {
		if ((ret = plan_maglev(&p->xring, nv.id, nb, new_n, st->xring_m)))
			goto cleanup;
		changed = true;
	} else if (!want->xdp && cur && cur->xring_m) {
		if ((ret = vec_push(&p->xring_del, &nv.id)))
			goto cleanup;
		changed = true;
	}

	if (!cur || strncmp(cur->name, want->name, FERRY_NAME_LEN)) {
		struct ferry_svc_name name = {};

		snprintf(name.name, sizeof(name.name), "%s", want->name);
		if ((ret = vec_push(&p->name_put_k, &nv.id)) || (ret = vec_push(&p->name_put_v, &name)))
			goto cleanup;
		changed = true;
	}
	{
		struct ferry_svc a = nv, b = cur ? cur->val : nv;

		a.rr = b.rr = 0;
		if (!cur || memcmp(&a, &b, sizeof(a))) {
			if ((ret = vec_push(&p->svc_put_k, &want->key)) ||
			    (ret = vec_push(&p->svc_put_v, &nv)))
				goto cleanup;
			changed = true;
		}
	}
	p->sum.be_changed += be_changed;
	if (!cur)
		p->sum.svc_added++;
	else if (changed || members_changed || be_changed)
		p->sum.svc_changed++;
	else
		p->sum.svc_unchanged++;
	ret = 0;
cleanup:
	free(nb);
	free(added);
	free(eps);
	free(kept);
	return ret;
}

/*
 * A service the registry does not own (ferryctl made it) is the operator's
 * to change, but its XDP ring is the node's: one built at another size
 * (--xdp-ring-size changed) or never built (made before XDP was loaded)
 * is rebuilt here, everything else as it is.
 */
static int plan_ring_refresh(struct plan *p, struct fstate *st, const struct svc_state *cur,
			     char *err, size_t errlen)
{
	struct plan_opts o = { .owner = cur->val.flags & FERRY_SVC_F_MANUAL, .keep_quarantine = true };
	struct reg_service want;
	int ret;

	if (!(cur->val.flags & FERRY_SVC_F_XDP) || !st->xring_m || cur->xring_m == st->xring_m)
		return 0;
	if ((ret = svc_state_to_reg(cur, &want)))
		return ret;
	ret = plan_service(p, st, cur, &want, &o, err, errlen);
	free(want.backends);
	return ret;
}

static int cmp_reg_idx(const void *a, const void *b, void *arg)
{
	const struct reg_service *s = arg;

	return svc_key_cmp(&s[*(const size_t *)a].key, &s[*(const size_t *)b].key);
}

int plan_registry(struct plan *p, struct fstate *st, const struct registry *reg,
		  char *err, size_t errlen)
{
	struct plan_opts o = { .owner = FERRY_SVC_F_REGISTRY, .keep_quarantine = true };
	size_t *idx, i = 0, j = 0;
	int ret = 0;

	idx = calloc(reg->nsvcs + 1, sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	for (i = 0; i < reg->nsvcs; i++)
		idx[i] = i;
	qsort_r(idx, reg->nsvcs, sizeof(*idx), cmp_reg_idx, reg->svcs);

	/* Merge two key-sorted lists. */
	i = 0;
	while (!ret && (i < st->n || j < reg->nsvcs)) {
		const struct svc_state *cur = i < st->n ? &st->svcs[i] : NULL;
		const struct reg_service *want = j < reg->nsvcs ? &reg->svcs[idx[j]] : NULL;
		int c = !cur ? 1 : !want ? -1 : svc_key_cmp(&cur->key, &want->key);

		if (c < 0) {
			if (cur->val.flags & FERRY_SVC_F_REGISTRY)
				ret = plan_service(p, st, cur, NULL, &o, err, errlen);
			else
				ret = plan_ring_refresh(p, st, cur, err, errlen);
			i++;
		} else if (c > 0) {
			ret = plan_service(p, st, NULL, want, &o, err, errlen);
			j++;
		} else {
			ret = plan_service(p, st, cur, want, &o, err, errlen);
			i++;
			j++;
		}
	}
	free(idx);
	if (ret)
		return ret;
	/* Garbage an interrupted apply may have left. */
	for (i = 0; i < st->n_orphan_slot; i++)
		if ((ret = vec_push(&p->slot_del, &st->orphan_slot[i])))
			return ret;
	for (i = 0; i < st->n_orphan_be; i++)
		if ((ret = vec_push(&p->be_del, &st->orphan_be[i])))
			return ret;
	return 0;
}

int svc_state_to_reg(const struct svc_state *s, struct reg_service *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", s->name);
	out->key = s->key;
	out->lb = s->val.lb;
	out->xdp = !!(s->val.flags & FERRY_SVC_F_XDP);
	out->circuit = s->val.circuit;
	out->backends = calloc(s->n + 1, sizeof(*out->backends));
	if (!out->backends)
		return -ENOMEM;
	for (i = 0; i < s->n; i++) {
		const struct ferry_backend *b = &s->bes[i].be;
		struct reg_backend *r = &out->backends[out->nbackends];

		/* A slot an interrupted apply left pointing at no backend is
		 * a hole, not a backend at 0.0.0.0:0: the plan drops it. */
		if (!s->bes[i].id)
			continue;
		memcpy(r->addr.a, b->addr, sizeof(b->addr));
		r->addr.family = b->family;
		r->port = ntohs(b->port);
		r->weight = b->weight;
		r->state = b->state;
		out->nbackends++;
	}
	return 0;
}

static int apply_step(int ret, const char *what, char *err, size_t errlen)
{
	if (ret)
		snprintf(err, errlen, "writing %s: %s", what, strerror(-ret));
	return ret;
}

/* Build the table in a fresh inner map, then swap it into outer[svc id]. */
static int apply_maglev(int outer, const struct plan_mag *pm, const char *name, __u32 flags)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = flags);
	__u32 *keys;
	int inner, ret = 0;
	__u32 i;

	if (outer < 0)
		return -ENOENT;
	inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, name, sizeof(__u32), sizeof(__u32), pm->m, &o);
	if (inner < 0)
		return -errno;
	keys = malloc(pm->m * sizeof(*keys));
	if (!keys) {
		close(inner);
		return -ENOMEM;
	}
	for (i = 0; i < pm->m; i++)
		keys[i] = i;
	ret = map_update_many(inner, keys, pm->table, sizeof(__u32), sizeof(__u32), pm->m);
	/* The new table replaces the old in one write: no half-built table is seen. */
	if (!ret && bpf_map_update_elem(outer, &pm->svc_id, &inner, BPF_ANY))
		ret = -errno;
	free(keys);
	close(inner);
	return ret;
}

/* ---- the XDP VIP index --------------------------------------------------- */

struct xsvc_want {
	struct ferry_svc_key key;
	__u32	id;
	__u32	hash;	/* ferry_xsvc_hash(): its set and its filter bit */
	__u32	set;
};

static int xsvc_want_cmp(const void *a, const void *b)
{
	return svc_key_cmp(&((const struct xsvc_want *)a)->key, &((const struct xsvc_want *)b)->key);
}

/*
 * Publish the VIP filter (include/ferry/xdp.h) *cur with the bits of
 * want[0..nw) cleared: from scratch (every other bit set), or from *cur
 * (only clearing). Written only if it changes; *cur becomes what the map
 * holds. A write copies the value while the data path may read it, but a
 * bit clear in both the old and the new filter is clear in any mix of the
 * two, so a VIP in both is never missed.
 */
static int xvipf_publish(int fd, struct ferry_xvipf *cur, const struct xsvc_want *want, size_t nw,
			 bool scratch)
{
	struct ferry_xvipf *f = malloc(sizeof(*f));
	__u32 zero = 0;
	size_t i;
	int err = 0;

	if (!f)
		return -ENOMEM;
	if (scratch)
		memset(f, 0xff, sizeof(*f));
	else
		memcpy(f, cur, sizeof(*f));
	for (i = 0; i < nw; i++) {
		__u32 bit = ferry_xvipf_bit(want[i].hash);

		f->w[bit / 64] &= ~(1ULL << (bit % 64));
	}
	if (memcmp(f, cur, sizeof(*f))) {
		if (bpf_map_update_elem(fd, &zero, f, BPF_ANY))
			err = -errno;
		else
			memcpy(cur, f, sizeof(*cur));
	}
	free(f);
	return err;
}

/*
 * Bring the VIP index in line with the XDP services of ferry_svc_v1 in three
 * passes, each a set of single-word publications the data path can read at
 * any moment: (1) entries of services that are gone or moved are emptied
 * (svc_id first); (2) missing VIPs are written into an empty way of their
 * set (key first, svc_id last), never one emptied in (1), so a reader that
 * is between the key and the id of the old entry cannot pair them with the
 * new; (3) each set's flags say it is built, and whether a VIP of it is
 * only in ferry_svc_v1 (a full set). Entries never move, so a VIP that
 * stays is found throughout. The VIP filter in front of the index (xvipf_fd,
 * -1 if none) lets the new VIPs through before pass (2) and is rebuilt for
 * exactly the XDP VIPs after pass (3).
 */
int xsvc_sync(int svc_fd, int xsvc_fd, int xvipf_fd, struct xsvc_report *r)
{
	struct ferry_svc_key *keys = NULL;
	struct ferry_svc *vals = NULL;
	struct xsvc_want *want = NULL, *w;
	struct ferry_xsvc_set *sets = NULL;
	struct ferry_xvipf *filter = NULL;
	__u8 *freed = NULL, *more = NULL;
	size_t n = 0, nw = 0, i;
	__u32 nsets = 0, s, zero = 0;
	void *p;
	int err, k;

	memset(r, 0, sizeof(*r));
	if ((err = array_mmap(xsvc_fd, sizeof(*sets), true, &p, &nsets)))
		return err;
	sets = p;
	if (!nsets || (nsets & (nsets - 1))) {
		err = -EPROTO;	/* sets are a hash masked: a power of two */
		goto out;
	}
	if ((err = map_dump(svc_fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals, &n)))
		goto out;
	want = calloc(n ? n : 1, sizeof(*want));
	freed = calloc(nsets, 1);
	more = calloc(nsets, 1);
	if (!want || !freed || !more) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!(vals[i].flags & FERRY_SVC_F_XDP) || !vals[i].id)
			continue;
		want[nw].key = keys[i];
		want[nw].id = vals[i].id;
		want[nw].hash = ferry_xsvc_hash(&keys[i]);
		want[nw].set = want[nw].hash & (nsets - 1);
		nw++;
	}
	qsort(want, nw, sizeof(*want), xsvc_want_cmp);
	if (xvipf_fd >= 0) {
		if (!(filter = malloc(sizeof(*filter)))) {
			err = -ENOMEM;
			goto out;
		}
		if (bpf_map_lookup_elem(xvipf_fd, &zero, filter)) {
			err = -errno;
			goto out;
		}
		if ((err = xvipf_publish(xvipf_fd, filter, want, nw, false)))
			goto out;
	}

	for (s = 0; s < nsets; s++) {
		for (k = 0; k < FERRY_XSVC_WAYS; k++) {
			struct ferry_xsvc *e = &sets[s].way[k];
			struct xsvc_want probe = { .key = e->key };

			if (!__atomic_load_n(&e->svc_id, __ATOMIC_RELAXED))
				continue;
			w = bsearch(&probe, want, nw, sizeof(*want), xsvc_want_cmp);
			if (w && w->id == e->svc_id && w->set == s)
				continue;
			__atomic_store_n(&e->svc_id, 0, __ATOMIC_RELEASE);
			memset(&e->key, 0, sizeof(e->key));
			freed[s] |= 1U << k;
			r->removed++;
		}
	}
	for (i = 0; i < nw; i++) {
		struct ferry_xsvc_set *set = &sets[want[i].set];
		int empty = -1;

		for (k = 0; k < FERRY_XSVC_WAYS; k++) {
			struct ferry_xsvc *e = &set->way[k];

			if (e->svc_id == want[i].id && !svc_key_cmp(&e->key, &want[i].key))
				break;
			if (!e->svc_id && !(freed[want[i].set] & (1U << k)) && empty < 0)
				empty = k;
		}
		if (k < FERRY_XSVC_WAYS) {
			r->indexed++;
			continue;
		}
		if (empty < 0) {
			more[want[i].set] = 1;
			r->overflow++;
			continue;
		}
		set->way[empty].key = want[i].key;
		__atomic_store_n(&set->way[empty].svc_id, want[i].id, __ATOMIC_RELEASE);
		r->indexed++;
		r->added++;
	}
	for (s = 0; s < nsets; s++) {
		__u32 f = FERRY_XSVC_F_VALID | (more[s] ? FERRY_XSVC_F_MORE : 0);

		if (sets[s].way[0].flags != f)
			__atomic_store_n(&sets[s].way[0].flags, f, __ATOMIC_RELEASE);
	}
	if (filter)
		err = xvipf_publish(xvipf_fd, filter, want, nw, true);
out:
	array_munmap(sets, sizeof(*sets), nsets);
	free(filter);
	free(keys);
	free(vals);
	free(want);
	free(freed);
	free(more);
	return err;
}

int xsvc_sync_maps(struct ferry_maps *m, struct xsvc_report *r)
{
	int err;

	/* One writer at a time: each derives the index and the filter from
	 * ferry_svc_v1 as it finds it, and a writer whose view predates
	 * another's change must not be the last to publish. Nests in the
	 * caller's lock (plan_apply()'s), never dropping it. */
	if ((err = maps_lock(m, -1)))
		return err;
	err = xsvc_sync(m->svc, m->xsvc, m->xvipf, r);
	maps_unlock(m);
	return err;
}

static int xdcap_key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct ferry_xdcap_key));
}

int node_addrs(const char *const *ifs, int nifs, struct ferry_xdcap_key **all, size_t *nall,
	       struct ferry_xdcap_key **on_ifs, size_t *non)
{
	struct ferry_xdcap_key k;
	struct ifaddrs *ifa, *a;
	size_t cap = 1;
	int j;

	*all = *on_ifs = NULL;
	*nall = *non = 0;
	if (getifaddrs(&ifa))
		return -errno;
	for (a = ifa; a; a = a->ifa_next)
		cap++;
	*all = calloc(cap, sizeof(**all));
	*on_ifs = calloc(cap, sizeof(**on_ifs));
	if (!*all || !*on_ifs) {
		freeifaddrs(ifa);
		free(*all);
		free(*on_ifs);
		*all = *on_ifs = NULL;
		return -ENOMEM;
	}
	for (a = ifa; a; a = a->ifa_next) {
		if (!a->ifa_addr)
			continue;
		memset(&k, 0, sizeof(k));
		if (a->ifa_addr->sa_family == AF_INET) {
			k.family = AF_INET;
			k.addr[0] = ((struct sockaddr_in *)a->ifa_addr)->sin_addr.s_addr;
		} else if (a->ifa_addr->sa_family == AF_INET6) {
			const struct in6_addr *a6 = &((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr;

			/* One per device, never a VIP nor a tunnel's destination
			 * (an LB sends to routable addresses), and a node with a
			 * veth per pod has hundreds. */
			if (IN6_IS_ADDR_LINKLOCAL(a6))
				continue;
			k.family = AF_INET6;
			memcpy(k.addr, a6, 16);
		} else {
			continue;
		}
		(*all)[(*nall)++] = k;
		for (j = 0; j < nifs; j++)
			if (!strcmp(a->ifa_name, ifs[j])) {
				(*on_ifs)[(*non)++] = k;
				break;
			}
	}
	freeifaddrs(ifa);
	qsort(*all, *nall, sizeof(**all), xdcap_key_cmp);
	qsort(*on_ifs, *non, sizeof(**on_ifs), xdcap_key_cmp);
	return 0;
}

/* Read a set of decap keys (ferry_xdcap_v1, ferry_xdaddr_v1), sorted. */
static int xdcap_read(int fd, struct ferry_xdcap_key **keys, size_t *n)
{
	__u32 *vals = NULL;
	int err;

	if ((err = map_dump(fd, sizeof(**keys), sizeof(*vals), (void **)keys, (void **)&vals, n)))
		return err;
	free(vals);
	qsort(*keys, *n, sizeof(**keys), xdcap_key_cmp);
	return 0;
}

int decap_derive(const struct decap_maps *m, struct decap_report *r)
{
	struct ferry_xdcap_key *local = NULL, *outer = NULL, *vips = NULL, k;
	struct ferry_xdpair_key *pairs = NULL;
	struct ferry_svc_key *keys = NULL;
	struct ferry_svc *vals = NULL;
	size_t nloc = 0, nout = 0, n = 0, i, j;
	__u32 one = 1, max = 0;
	int err;

	memset(r, 0, sizeof(*r));
	/* The writers' lock (maps_lock()): a writer whose view of ferry_svc_v1
	 * or of the node's addresses predates another's change must not be
	 * the last to publish. All are read under it; ferryd derives again
	 * after every address change, and every service change is followed
	 * by a derivation. Taken here only when the caller does not hold it
	 * (dirfd -1): an unlock here would drop the caller's. */
	if ((err = pin_dir_lock(m->dirfd, -1)))
		return err;
	if ((err = xdcap_read(m->addr, &local, &nloc)) || (err = xdcap_read(m->outer, &outer, &nout)))
		goto unlock;
	if ((err = map_dump(m->svc, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals, &n)))
		goto unlock;
	if (!(vips = calloc(n ? n : 1, sizeof(*vips)))) {
		err = -ENOMEM;
		goto unlock;
	}
	for (i = 0; i < n; i++) {
		if (!(vals[i].flags & FERRY_SVC_F_XDP))
			continue;
		memset(&k, 0, sizeof(k));
		memcpy(k.addr, keys[i].addr, sizeof(k.addr));
		k.family = keys[i].family;
		if (bsearch(&k, local, nloc, sizeof(*local), xdcap_key_cmp))
			vips[r->vips++] = k;	/* one per port and protocol: made unique below */
	}
	qsort(vips, r->vips, sizeof(*vips), xdcap_key_cmp);
	for (i = 0, n = 0; i < r->vips; i++)
		if (!n || xdcap_key_cmp(&vips[n - 1], &vips[i]))
			vips[n++] = vips[i];
	r->vips = n;
	r->outers = nout;
	if (!(pairs = calloc(nout * r->vips + 1, sizeof(*pairs)))) {
		err = -ENOMEM;
		goto unlock;
	}
	for (i = 0; i < nout; i++)
		for (j = 0; j < r->vips; j++) {
			struct ferry_xdpair_key *p = &pairs[r->pairs++];

			memcpy(p->outer, outer[i].addr, sizeof(p->outer));
			p->outer_family = outer[i].family;
			memcpy(p->inner, vips[j].addr, sizeof(p->inner));
			p->inner_family = vips[j].family;
		}
	/* More pairs than the map holds: nothing is written, the decap keeps
	 * its last VIPs and pairs as they were. */
	if ((err = map_max_entries(m->pair, &max)))
		goto unlock;
	r->room = max;
	if (r->pairs > max) {
		err = -E2BIG;
		goto unlock;
	}
	/* What the program asks first, then the set it comes from (what
	 * ferryctl shows). */
	if ((err = map_set_sync(m->pair, pairs, sizeof(*pairs), r->pairs, &one, sizeof(one),
				&r->pair_added, &r->pair_removed)))
		goto unlock;
	err = map_set_sync(m->vip, vips, sizeof(*vips), r->vips, &one, sizeof(one),
			   &r->vip_added, &r->vip_removed);
unlock:
	pin_dir_unlock(m->dirfd);
	free(local);
	free(outer);
	free(vips);
	free(pairs);
	free(keys);
	free(vals);
	return err;
}

static int apply_locked(struct ferry_maps *m, const struct plan *p, char *err, size_t errlen)
{
	struct decap_report dr;
	struct xsvc_report xr;
	size_t i;
	int ret;

#define PUT(fd, k, v, what) \
	if ((ret = apply_step(map_update_many(fd, (k)->d, (v)->d, (k)->esz, (v)->esz, (k)->n), what, err, errlen))) \
		return ret
#define DEL(fd, k, what) \
	if ((ret = apply_step(map_delete_many(fd, (k)->d, (k)->esz, (k)->n), what, err, errlen))) \
		return ret

	DEL(m->bestat, &p->bestat_del, "backend counters");
	/* New ids may be reused ones: the XDP packet counts of whoever had
	 * them before go, before the new owner is published. */
	if (m->xbe >= 0 &&
	    (ret = apply_step(xcnt_reset(m->xbe, p->bestat_del.d, p->bestat_del.n), FERRY_MAP_XBE,
			      err, errlen)))
		return ret;
	if (m->xvip >= 0 &&
	    (ret = apply_step(xcnt_reset(m->xvip, p->svc_new.d, p->svc_new.n), FERRY_MAP_XVIP,
			      err, errlen)))
		return ret;
	PUT(m->be, &p->be_put_k, &p->be_put_v, FERRY_MAP_BACKEND);
	PUT(m->slot, &p->slot_put_k, &p->slot_put_v, FERRY_MAP_SLOT);
	for (i = 0; i < p->mag.n; i++)
		if ((ret = apply_step(apply_maglev(m->mag, (struct plan_mag *)p->mag.d + i, "ferry_mag_in", 0),
				      FERRY_MAP_MAGLEV, err, errlen)))
			return ret;
	for (i = 0; i < p->xring.n; i++)
		if ((ret = apply_step(apply_maglev(m->xring, (struct plan_mag *)p->xring.d + i,
						   "ferry_xring_in", BPF_F_INNER_MAP),
				      FERRY_MAP_XRING, err, errlen)))
			return ret;
	PUT(m->name, &p->name_put_k, &p->name_put_v, FERRY_MAP_SVCNAME);
	PUT(m->svc, &p->svc_put_k, &p->svc_put_v, FERRY_MAP_SVC);
	DEL(m->svc, &p->svc_del, FERRY_MAP_SVC);
	/* Every apply, not only one that changed services: a sync that finds
	 * the index in agreement writes nothing, and one that does not (two
	 * writers raced, an operator wrote a service by hand) repairs it, so
	 * ferryd's periodic resync undoes drift here as everywhere. */
	if (m->xsvc >= 0 && (ret = apply_step(xsvc_sync_maps(m, &xr), FERRY_MAP_XSVC, err, errlen)))
		return ret;
	DEL(m->mag, &p->mag_del, FERRY_MAP_MAGLEV);
	if (m->xring >= 0)
		DEL(m->xring, &p->xring_del, FERRY_MAP_XRING);
	DEL(m->slot, &p->slot_del, FERRY_MAP_SLOT);
	DEL(m->be, &p->be_del, FERRY_MAP_BACKEND);
	DEL(m->bestat, &p->be_del, "backend counters");
	DEL(m->name, &p->name_del, FERRY_MAP_SVCNAME);
	/* Deleted ids may be handed out again, to any service at another
	 * address: the XDP LB's cached next hops for them go stale now, after
	 * the deletes (a program that read the old epoch resolves again). */
	if (p->be_del.n && m->xcfg >= 0 &&
	    (ret = apply_step(xcfg_bump_epoch(m->xcfg), FERRY_MAP_XCFG, err, errlen)))
		return ret;
#undef PUT
#undef DEL
	/* On a backend node, the decap's set of XDP VIPs bound here and its
	 * pairs follow the services too, whoever wrote them (ferryctl
	 * included). Last, and not fatal: the services are written whatever
	 * the decap can hold, and a derivation that fails (more pairs than
	 * the map holds) leaves the decap as it was, says so, and is tried
	 * again at the next change of services or addresses. */
	if (m->xdvip >= 0) {
		/* dirfd -1: the lock is held (plan_apply()). */
		struct decap_maps dm = { .svc = m->svc, .addr = m->xdaddr, .outer = m->xdcap,
					 .vip = m->xdvip, .pair = m->xdpair, .dirfd = -1 };
		int derr = decap_derive(&dm, &dr);

		if (derr)
			decap_warn(&dr, derr);
	}
	return 0;
}

int plan_apply(struct ferry_maps *m, const struct plan *p, char *err, size_t errlen)
{
	int ret;

	/* Nests in the caller's lock, taken before it read the state the plan
	 * is made from; held here at least for the writes themselves (the
	 * XDP config's epoch is a read-modify-write of the whole value). */
	if ((ret = maps_lock(m, -1))) {
		snprintf(err, errlen, "locking the pin directory: %s", strerror(-ret));
		return ret;
	}
	ret = apply_locked(m, p, err, errlen);
	maps_unlock(m);
	return ret;
}

void decap_warn(const struct decap_report *r, int err)
{
	if (err == -E2BIG)
		log_warnx("xdp_decap: %zu outer address(es) x %zu XDP VIP(s) bound here = %zu pairs, "
			  "room for %u (--max-services); the decap keeps its last pairs", r->outers,
			  r->vips, r->pairs, r->room);
	else
		log_warnx("xdp_decap: deriving %s: %s; the decap keeps its last pairs", FERRY_MAP_XDPAIR,
			  strerror(-err));
}
