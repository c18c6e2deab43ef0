// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reconcile plans against an in-memory copy of the maps: the plan must be the
 * minimal set of writes, keep unrelated slots where they are, leave
 * ferryctl's services and an operator's quarantine alone, and fail cleanly at
 * capacity. A small model applies each plan the way plan_apply() does and
 * rebuilds the fstate the way fstate_load() does, so multi-step histories
 * (and a randomised one) can be checked against invariants.
 *
 * plan_apply_order needs BPF (root): it injects a failure at each stage of a
 * real apply and checks that nothing downstream became visible; so does
 * xsvc_sync_index, which derives the XDP VIP index from a service map.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cmocka.h>

#include <ferry/abi.h>
#include <ferry/xdp.h>
#include "maps.h"
#include "reconcile.h"
#include "registry.h"
#include "state.h"
#include "realmaps.h"

/* ---- an in-memory map: linear, generic, good enough for tests ---- */

struct mmap {
	size_t	ksz, vsz, n, cap;
	char	*k, *v;
};

static void mm_init(struct mmap *m, size_t ksz, size_t vsz)
{
	memset(m, 0, sizeof(*m));
	m->ksz = ksz;
	m->vsz = vsz;
}

static void mm_free(struct mmap *m)
{
	free(m->k);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

static long mm_find(const struct mmap *m, const void *k)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (!memcmp(m->k + i * m->ksz, k, m->ksz))
			return i;
	return -1;
}

static void *mm_get(const struct mmap *m, const void *k)
{
	long i = mm_find(m, k);

	return i < 0 ? NULL : m->v + i * m->vsz;
}

static void mm_put(struct mmap *m, const void *k, const void *v)
{
	long i = mm_find(m, k);

	if (i < 0) {
		if (m->n == m->cap) {
			m->cap = m->cap ? m->cap * 2 : 16;
			m->k = realloc(m->k, m->cap * m->ksz);
			m->v = realloc(m->v, m->cap * m->vsz);
			assert_non_null(m->k);
			assert_non_null(m->v);
		}
		i = m->n++;
		memcpy(m->k + i * m->ksz, k, m->ksz);
	}
	memcpy(m->v + i * m->vsz, v, m->vsz);
}

static void mm_del(struct mmap *m, const void *k)
{
	long i = mm_find(m, k);

	if (i < 0)
		return;
	m->n--;
	memmove(m->k + i * m->ksz, m->k + m->n * m->ksz, m->ksz);
	memmove(m->v + i * m->vsz, m->v + m->n * m->vsz, m->vsz);
}

/* ---- the node's maps in memory ---- */

struct mem {
	struct mmap svc, slot, be, name, mag;
	__u32	max_services, max_backends;
};

#define MAG_SZ (FERRY_SOCK_MAGLEV_M * sizeof(__u32))

static struct mem *mem_new(__u32 max_services, __u32 max_backends)
{
	struct mem *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	mm_init(&m->svc, sizeof(struct ferry_svc_key), sizeof(struct ferry_svc));
	mm_init(&m->slot, sizeof(struct ferry_slot_key), sizeof(struct ferry_slot));
	mm_init(&m->be, sizeof(__u32), sizeof(struct ferry_backend));
	mm_init(&m->name, sizeof(__u32), sizeof(struct ferry_svc_name));
	mm_init(&m->mag, sizeof(__u32), MAG_SZ);
	m->max_services = max_services;
	m->max_backends = max_backends;
	return m;
}

static void mem_free(struct mem *m)
{
	mm_free(&m->svc);
	mm_free(&m->slot);
	mm_free(&m->be);
	mm_free(&m->name);
	mm_free(&m->mag);
	free(m);
}

#define VEC_AT(vec, type, i) (((type *)(vec).d)[i])

/* Same stages, same order as plan_apply(). */
static void mem_apply(struct mem *m, const struct plan *p)
{
	size_t i;

	for (i = 0; i < p->be_put_k.n; i++)
		mm_put(&m->be, &VEC_AT(p->be_put_k, __u32, i), &VEC_AT(p->be_put_v, struct ferry_backend, i));
	for (i = 0; i < p->slot_put_k.n; i++)
		mm_put(&m->slot, &VEC_AT(p->slot_put_k, struct ferry_slot_key, i),
		       &VEC_AT(p->slot_put_v, struct ferry_slot, i));
	for (i = 0; i < p->mag.n; i++)
		mm_put(&m->mag, &VEC_AT(p->mag, struct plan_mag, i).svc_id, VEC_AT(p->mag, struct plan_mag, i).table);
	for (i = 0; i < p->name_put_k.n; i++)
		mm_put(&m->name, &VEC_AT(p->name_put_k, __u32, i), &VEC_AT(p->name_put_v, struct ferry_svc_name, i));
	for (i = 0; i < p->svc_put_k.n; i++)
		mm_put(&m->svc, &VEC_AT(p->svc_put_k, struct ferry_svc_key, i),
		       &VEC_AT(p->svc_put_v, struct ferry_svc, i));
	for (i = 0; i < p->svc_del.n; i++)
		mm_del(&m->svc, &VEC_AT(p->svc_del, struct ferry_svc_key, i));
	for (i = 0; i < p->mag_del.n; i++)
		mm_del(&m->mag, &VEC_AT(p->mag_del, __u32, i));
	for (i = 0; i < p->slot_del.n; i++)
		mm_del(&m->slot, &VEC_AT(p->slot_del, struct ferry_slot_key, i));
	for (i = 0; i < p->be_del.n; i++)
		mm_del(&m->be, &VEC_AT(p->be_del, __u32, i));
	for (i = 0; i < p->name_del.n; i++)
		mm_del(&m->name, &VEC_AT(p->name_del, __u32, i));
}

static int cmp_svc_state(const void *a, const void *b)
{
	return svc_key_cmp(&((const struct svc_state *)a)->key, &((const struct svc_state *)b)->key);
}

/* The fstate fstate_load() would build from these maps. */
static void mem_state(const struct mem *m, struct fstate *st)
{
	size_t i, j;

	assert_int_equal(fstate_init(st, m->max_services, m->max_backends), 0);
	st->svcs = calloc(m->svc.n + 1, sizeof(*st->svcs));
	assert_non_null(st->svcs);
	for (i = 0; i < m->svc.n; i++) {
		struct svc_state *s = &st->svcs[st->n++];
		struct ferry_svc_name *nm;

		memcpy(&s->key, m->svc.k + i * m->svc.ksz, sizeof(s->key));
		memcpy(&s->val, m->svc.v + i * m->svc.vsz, sizeof(s->val));
		s->bes = calloc(s->val.count + 1, sizeof(*s->bes));
		assert_non_null(s->bes);
		s->n = s->val.count;
		for (j = 0; j < s->n; j++) {
			struct ferry_slot_key sk = { .svc_id = s->val.id, .slot = j };
			struct ferry_slot *sl = mm_get(&m->slot, &sk);
			struct ferry_backend *be = sl ? mm_get(&m->be, &sl->backend_id) : NULL;

			if (!be)
				continue;
			s->bes[j].id = sl->backend_id;
			s->bes[j].cum_weight = sl->cum_weight;
			s->bes[j].be = *be;
		}
		nm = mm_get(&m->name, &s->val.id);
		if (nm)
			memcpy(s->name, nm->name, FERRY_NAME_LEN - 1);
		s->has_maglev = mm_get(&m->mag, &s->val.id) != NULL;
		idset_mark(&st->svc_ids, s->val.id);
		st->nbackends += s->n;
	}
	qsort(st->svcs, st->n, sizeof(*st->svcs), cmp_svc_state);
	for (i = 0; i < m->be.n; i++)
		idset_mark(&st->be_ids, *(__u32 *)(m->be.k + i * m->be.ksz));
}

/*
 * What the data path relies on: slots 0..count-1 of every service exist and
 * point at a backend of that service; every backend sits in exactly one slot;
 * cumulative weights add up; a maglev service has a table of its own usable
 * backends; nothing is left over.
 */
static void mem_check(const struct mem *m)
{
	size_t i, j, slots = 0;
	__u8 *used = calloc(m->be.n + 1, 1);

	assert_non_null(used);
	for (i = 0; i < m->svc.n; i++) {
		const struct ferry_svc_key *k = (void *)(m->svc.k + i * m->svc.ksz);
		const struct ferry_svc *s = (void *)(m->svc.v + i * m->svc.vsz);
		__u32 cum = 0, usable = 0;
		const __u32 *tab;
		char kb[96];

		svc_key_str(k, kb, sizeof(kb));
		if (!mm_get(&m->name, &s->id))
			fail_msg("service %s (id %u) has no name entry", kb, s->id);
		for (j = 0; j < s->count; j++) {
			struct ferry_slot_key sk = { .svc_id = s->id, .slot = j };
			struct ferry_slot *sl = mm_get(&m->slot, &sk);
			struct ferry_backend *be;
			long bi;

			if (!sl)
				fail_msg("service %s: slot %zu of %u missing", kb, j, s->count);
			bi = mm_find(&m->be, &sl->backend_id);
			if (bi < 0)
				fail_msg("service %s: slot %zu points at missing backend %u", kb, j, sl->backend_id);
			be = (void *)(m->be.v + bi * m->be.vsz);
			if (be->svc_id != s->id)
				fail_msg("service %s: backend %u belongs to service %u", kb, sl->backend_id, be->svc_id);
			if (used[bi]++)
				fail_msg("backend %u is in two slots", sl->backend_id);
			if (be->state == FERRY_BE_ACTIVE && be->weight)
				usable++;
			if (s->lb == FERRY_LB_WEIGHTED) {
				cum += be->state == FERRY_BE_ACTIVE ? be->weight : 0;
				if (sl->cum_weight != cum)
					fail_msg("service %s: slot %zu cum_weight %u, expected %u", kb, j, sl->cum_weight, cum);
			}
			slots++;
		}
		if (s->lb == FERRY_LB_WEIGHTED && s->weight_sum != cum)
			fail_msg("service %s: weight_sum %u, slots add up to %u", kb, s->weight_sum, cum);
		tab = mm_get(&m->mag, &s->id);
		if ((s->lb == FERRY_LB_MAGLEV) != (tab != NULL))
			fail_msg("service %s: lb %s but maglev table %s", kb, lb_name(s->lb), tab ? "present" : "absent");
		for (j = 0; tab && j < FERRY_SOCK_MAGLEV_M; j++) {
			struct ferry_backend *be = tab[j] ? mm_get(&m->be, &tab[j]) : NULL;

			if (!usable && tab[j])
				fail_msg("service %s: no usable backend, maglev entry %zu is %u", kb, j, tab[j]);
			if (usable && (!be || be->svc_id != s->id || be->state != FERRY_BE_ACTIVE || !be->weight))
				fail_msg("service %s: maglev entry %zu is %u, not a usable backend of it", kb, j, tab[j]);
		}
	}
	if (slots != m->slot.n)
		fail_msg("%zu slots in the map, services reach %zu", m->slot.n, slots);
	for (i = 0; i < m->be.n; i++)
		if (!used[i])
			fail_msg("backend %u is in no slot", *(__u32 *)(m->be.k + i * m->be.ksz));
	for (i = 0; i < m->name.n; i++) {
		__u32 id = *(__u32 *)(m->name.k + i * m->name.ksz);
		bool found = false;

		for (j = 0; j < m->svc.n; j++)
			found |= ((struct ferry_svc *)(m->svc.v + j * m->svc.vsz))->id == id;
		if (!found)
			fail_msg("name entry %u has no service", id);
	}
	free(used);
}

static void reg_parse(const char *doc, struct registry *r)
{
	static const struct registry_limits lim = { .max_services = 1024, .max_backends = 65536 };
	char err[FERRY_ERR_LEN];

	if (registry_parse(doc, strlen(doc), "test.json", &lim, r, err, sizeof(err)))
		fail_msg("test registry rejected: %s", err);
}

/* Plan doc against m; the plan is left in p (caller frees). */
static int plan_doc(struct mem *m, const char *doc, struct plan *p, char *err, size_t errlen)
{
	struct registry r;
	struct fstate st;
	int ret;

	reg_parse(doc, &r);
	mem_state(m, &st);
	plan_init(p);
	ret = plan_registry(p, &st, &r, err, errlen);
	fstate_free(&st);
	registry_free(&r);
	return ret;
}

/* Plan and apply doc; returns the number of map writes it took. */
static size_t sync_doc(struct mem *m, const char *doc)
{
	char err[FERRY_ERR_LEN] = "";
	struct plan p;
	size_t n;

	if (plan_doc(m, doc, &p, err, sizeof(err)))
		fail_msg("plan failed: %s", err);
	mem_apply(m, &p);
	mem_check(m);
	n = plan_writes(&p);
	plan_free(&p);
	return n;
}

static struct ferry_svc *svc_of(const struct mem *m, const char *vip, int port, int proto)
{
	struct ferry_svc_key k = {};
	struct faddr a;

	assert_int_equal(faddr_parse(vip, &a), 0);
	memcpy(k.addr, a.a, sizeof(k.addr));
	k.family = a.family;
	k.port = htons(port);
	k.proto = proto;
	return mm_get(&m->svc, &k);
}

static __u32 slot_backend(const struct mem *m, __u32 svc_id, __u32 slot)
{
	struct ferry_slot_key sk = { .svc_id = svc_id, .slot = slot };
	struct ferry_slot *sl = mm_get(&m->slot, &sk);

	return sl ? sl->backend_id : 0;
}

static __u16 backend_port(const struct mem *m, __u32 id)
{
	struct ferry_backend *be = mm_get(&m->be, &id);

	return be ? ntohs(be->port) : 0;
}

static bool vec_has_u32(const struct vec *v, __u32 x)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (((__u32 *)v->d)[i] == x)
			return true;
	return false;
}

/* A service at 198.51.100.10:80 with backends 192.0.2.11:<ports...>. */
static const char *doc_svc(const char *lb, const char *const *bes, size_t n)
{
	static char doc[4096];
	size_t off, i;

	off = snprintf(doc, sizeof(doc), "{\"services\": [{\"name\": \"web\", \"vip\": \"198.51.100.10\", "
		       "\"port\": 80, \"lb\": \"%s\", \"backends\": [", lb);
	for (i = 0; i < n; i++)
		off += snprintf(doc + off, sizeof(doc) - off, "%s%s", i ? ", " : "", bes[i]);
	snprintf(doc + off, sizeof(doc) - off, "]}]}");
	return doc;
}

#define BE(port) "{\"ip\": \"192.0.2.11\", \"port\": " #port "}"
#define BEW(port, w) "{\"ip\": \"192.0.2.11\", \"port\": " #port ", \"weight\": " #w "}"

/* ---- tests ---- */

static void plan_new_service(void **state)
{
	static const char *const bes[] = { BE(8081), BE(8082), BE(8083) };
	struct mem *m = mem_new(16, 64);
	char err[FERRY_ERR_LEN];
	struct ferry_svc *sv;
	struct plan p;
	size_t i;

	(void)state;
	assert_int_equal(plan_doc(m, doc_svc("round_robin", bes, 3), &p, err, sizeof(err)), 0);
	/* three backends, three slots, one name, one service; nothing deleted */
	assert_int_equal(p.be_put_k.n, 3);
	assert_int_equal(p.bestat_del.n, 3);	/* fresh ids start with fresh counters */
	assert_int_equal(p.slot_put_k.n, 3);
	assert_int_equal(p.name_put_k.n, 1);
	assert_int_equal(p.svc_put_k.n, 1);
	assert_int_equal(p.mag.n, 0);
	assert_int_equal(p.svc_del.n + p.slot_del.n + p.be_del.n + p.mag_del.n + p.name_del.n, 0);
	assert_int_equal(plan_writes(&p), 11);
	assert_int_equal(p.sum.svc_added, 1);
	assert_int_equal(p.sum.be_added, 3);
	/* every slot points at a backend the same plan writes (the backend
	 * stage runs first), and the service covers exactly those slots */
	for (i = 0; i < p.slot_put_k.n; i++) {
		struct ferry_slot_key *sk = &VEC_AT(p.slot_put_k, struct ferry_slot_key, i);

		assert_int_equal(sk->svc_id, VEC_AT(p.svc_put_v, struct ferry_svc, 0).id);
		assert_true(sk->slot < 3);
		assert_true(vec_has_u32(&p.be_put_k, VEC_AT(p.slot_put_v, struct ferry_slot, i).backend_id));
	}
	assert_int_equal(VEC_AT(p.svc_put_v, struct ferry_svc, 0).count, 3);
	assert_int_equal(VEC_AT(p.svc_put_v, struct ferry_svc, 0).flags & FERRY_SVC_F_REGISTRY, FERRY_SVC_F_REGISTRY);
	mem_apply(m, &p);
	plan_free(&p);
	mem_check(m);
	sv = svc_of(m, "198.51.100.10", 80, IPPROTO_TCP);
	assert_non_null(sv);
	/* registry order becomes slot order for a new service */
	assert_int_equal(backend_port(m, slot_backend(m, sv->id, 0)), 8081);
	assert_int_equal(backend_port(m, slot_backend(m, sv->id, 1)), 8082);
	assert_int_equal(backend_port(m, slot_backend(m, sv->id, 2)), 8083);
	mem_free(m);
}

static void plan_unchanged_zero_writes(void **state)
{
	static const char doc[] =
		"{\"services\": [\n"
		" {\"name\": \"rr\", \"vip\": \"198.51.100.10\", \"port\": 80, \"backends\": [\n"
		"   {\"ip\": \"192.0.2.11\", \"port\": 8080}, {\"ip\": \"192.0.2.12\", \"port\": 8080, \"weight\": 0},\n"
		"   {\"ip\": \"192.0.2.13\", \"port\": 8080, \"state\": \"draining\"}]},\n"
		" {\"name\": \"w\", \"vip\": \"198.51.100.11\", \"port\": 80, \"lb\": \"weighted\", \"backends\": [\n"
		"   {\"ip\": \"192.0.2.11\", \"port\": 8081, \"weight\": 3}, {\"ip\": \"192.0.2.12\", \"port\": 8081}]},\n"
		" {\"name\": \"mag\", \"vip\": \"198.51.100.12\", \"port\": 80, \"lb\": \"maglev\", \"backends\": [\n"
		"   {\"ip\": \"192.0.2.11\", \"port\": 8082}, {\"ip\": \"192.0.2.12\", \"port\": 8082}]},\n"
		" {\"name\": \"dns\", \"vip\": \"198.51.100.53\", \"port\": 53, \"protocol\": \"udp\", \"lb\": \"random\",\n"
		"   \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 5353}]},\n"
		" {\"name\": \"lc\", \"vip\": \"198.51.100.13\", \"port\": 80, \"lb\": \"least_conn\", \"backends\": []},\n"
		" {\"name\": \"v6\", \"vip\": \"2001:db8:ffff::10\", \"port\": 80, \"backends\": [\n"
		"   {\"ip\": \"2001:db8::11\", \"port\": 8080}, {\"ip\": \"2001:db8::12\", \"port\": 8080}]}\n"
		"]}\n";
	struct mem *m = mem_new(16, 64);
	char err[FERRY_ERR_LEN];
	struct plan p;

	(void)state;
	assert_true(sync_doc(m, doc) > 0);
	assert_int_equal(m->svc.n, 6);
	assert_int_equal(plan_doc(m, doc, &p, err, sizeof(err)), 0);
	assert_int_equal(plan_writes(&p), 0);
	assert_int_equal(p.sum.svc_unchanged, 6);
	assert_int_equal(p.sum.svc_changed + p.sum.svc_added + p.sum.svc_removed, 0);
	plan_free(&p);
	mem_free(m);
}

static void plan_weight_change_round_robin_one_write(void **state)
{
	static const char *const before[] = { BE(8081), BE(8082), BE(8083) };
	static const char *const after[] = { BE(8081), BEW(8082, 5), BE(8083) };
	struct mem *m = mem_new(16, 64);
	char err[FERRY_ERR_LEN];
	struct plan p;

	(void)state;
	sync_doc(m, doc_svc("round_robin", before, 3));
	assert_int_equal(plan_doc(m, doc_svc("round_robin", after, 3), &p, err, sizeof(err)), 0);
	if (plan_writes(&p) != 1)
		fail_msg("a weight change under round_robin took %zu writes (backends %zu, slots %zu, services %zu), expected 1",
			 plan_writes(&p), p.be_put_k.n, p.slot_put_k.n, p.svc_put_k.n);
	assert_int_equal(p.be_put_k.n, 1);
	assert_int_equal(VEC_AT(p.be_put_v, struct ferry_backend, 0).weight, 5);
	assert_int_equal(ntohs(VEC_AT(p.be_put_v, struct ferry_backend, 0).port), 8082);
	mem_apply(m, &p);
	plan_free(&p);
	mem_check(m);
	mem_free(m);
}

/* Weighted: the backend, the cumulative weights from its slot on, the sum. */
static void plan_weight_change_weighted(void **state)
{
	static const char *const before[] = { BE(8081), BE(8082), BE(8083), BE(8084) };
	static const char *const after[] = { BE(8081), BE(8082), BEW(8083, 4), BE(8084) };
	struct mem *m = mem_new(16, 64);
	char err[FERRY_ERR_LEN];
	struct plan p;

	(void)state;
	sync_doc(m, doc_svc("weighted", before, 4));
	assert_int_equal(plan_doc(m, doc_svc("weighted", after, 4), &p, err, sizeof(err)), 0);
	assert_int_equal(p.be_put_k.n, 1);
	assert_int_equal(p.slot_put_k.n, 2);	/* slots 2 and 3 */
	assert_int_equal(VEC_AT(p.slot_put_k, struct ferry_slot_key, 0).slot, 2);
	assert_int_equal(VEC_AT(p.slot_put_v, struct ferry_slot, 0).cum_weight, 6);
	assert_int_equal(VEC_AT(p.slot_put_k, struct ferry_slot_key, 1).slot, 3);
	assert_int_equal(VEC_AT(p.slot_put_v, struct ferry_slot, 1).cum_weight, 7);
	assert_int_equal(p.svc_put_k.n, 1);
	assert_int_equal(VEC_AT(p.svc_put_v, struct ferry_svc, 0).weight_sum, 7);
	assert_int_equal(plan_writes(&p), 4);
	mem_apply(m, &p);
	plan_free(&p);
	mem_check(m);
	mem_free(m);
}

static void plan_add_backend(void **state)
{
	static const char *const before[] = { BE(8081), BE(8082), BE(8083) };
	static const char *const after[] = { BE(8081), BE(8082), BE(8083), BE(8084) };
	struct mem *m = mem_new(16, 64);
	char err[FERRY_ERR_LEN];
	struct ferry_svc *sv;
	struct plan p;
	__u32 id;

	(void)state;
	sync_doc(m, doc_svc("round_robin", before, 3));
	assert_int_equal(plan_doc(m, doc_svc("round_robin", after, 4), &p, err, sizeof(err)), 0);
	assert_int_equal(p.be_put_k.n, 1);
	assert_int_equal(p.bestat_del.n, 1);
	assert_int_equal(p.slot_put_k.n, 1);
	assert_int_equal(p.svc_put_k.n, 1);
	assert_int_equal(plan_writes(&p), 4);
	id = VEC_AT(p.be_put_k, __u32, 0);
	assert_int_equal(VEC_AT(p.slot_put_k, struct ferry_slot_key, 0).slot, 3);
	assert_int_equal(VEC_AT(p.slot_put_v, struct ferry_slot, 0).backend_id, id);
	assert_int_equal(VEC_AT(p.svc_put_v, struct ferry_svc, 0).count, 4);
	mem_apply(m, &p);
	plan_free(&p);
	mem_check(m);
	sv = svc_of(m, "198.51.100.10", 80, IPPROTO_TCP);
	assert_int_equal(backend_port(m, slot_backend(m, sv->id, 3)), 8084);
	mem_free(m);
}

static void plan_remove_middle_backend(void **state)
{
	static const char *const before[] = { BE(8081), BE(8082), BE(8083), BE(8084), BE(8085) };
	static const char *const after[] = { BE(8081), BE(8083), BE(8084), BE(8085) };
	struct mem *m = mem_new(16, 64);
	char err[FERRY_ERR_LEN];
	struct ferry_svc *sv;
	struct plan p;
	__u32 id8082, id8085, ids[5], i;

	(void)state;
	sync_doc(m, doc_svc("round_robin", before, 5));
	sv = svc_of(m, "198.51.100.10", 80, IPPROTO_TCP);
	for (i = 0; i < 5; i++)
		ids[i] = slot_backend(m, sv->id, i);
	id8082 = ids[1];
	id8085 = ids[4];
	assert_int_equal(backend_port(m, id8082), 8082);
	assert_int_equal(plan_doc(m, doc_svc("round_robin", after, 4), &p, err, sizeof(err)), 0);
	/* the tail backend moves into the hole; no other slot is written */
	assert_int_equal(p.slot_put_k.n, 1);
	assert_int_equal(VEC_AT(p.slot_put_k, struct ferry_slot_key, 0).slot, 1);
	assert_int_equal(VEC_AT(p.slot_put_v, struct ferry_slot, 0).backend_id, id8085);
	assert_int_equal(p.slot_del.n, 1);
	assert_int_equal(VEC_AT(p.slot_del, struct ferry_slot_key, 0).slot, 4);
	assert_int_equal(p.be_del.n, 1);
	assert_int_equal(VEC_AT(p.be_del, __u32, 0), id8082);
	assert_int_equal(p.be_put_k.n, 0);
	assert_int_equal(p.svc_put_k.n, 1);
	assert_int_equal(VEC_AT(p.svc_put_v, struct ferry_svc, 0).count, 4);
	mem_apply(m, &p);
	plan_free(&p);
	mem_check(m);
	/* survivors keep their ids and (but for the moved one) their slots */
	sv = svc_of(m, "198.51.100.10", 80, IPPROTO_TCP);
	assert_int_equal(slot_backend(m, sv->id, 0), ids[0]);
	assert_int_equal(slot_backend(m, sv->id, 1), id8085);
	assert_int_equal(slot_backend(m, sv->id, 2), ids[2]);
	assert_int_equal(slot_backend(m, sv->id, 3), ids[3]);
	mem_free(m);
}

static void plan_remove_service(void **state)
{
	static const char *const bes[] = { BE(8081), BE(8082), BE(8083) };
	struct mem *m = mem_new(16, 64);
	char err[FERRY_ERR_LEN];
	struct plan p;

	(void)state;
	sync_doc(m, doc_svc("maglev", bes, 3));
	assert_int_equal(m->mag.n, 1);
	assert_int_equal(plan_doc(m, "{\"services\": []}", &p, err, sizeof(err)), 0);
	assert_int_equal(p.svc_del.n, 1);
	assert_int_equal(p.slot_del.n, 3);
	assert_int_equal(p.be_del.n, 3);
	assert_int_equal(p.mag_del.n, 1);
	assert_int_equal(p.name_del.n, 1);
	assert_int_equal(p.be_put_k.n + p.slot_put_k.n + p.svc_put_k.n + p.name_put_k.n + p.mag.n, 0);
	assert_int_equal(p.sum.svc_removed, 1);
	mem_apply(m, &p);
	plan_free(&p);
	mem_check(m);
	assert_int_equal(m->svc.n + m->slot.n + m->be.n + m->name.n + m->mag.n, 0);
	mem_free(m);
}

/* Create a service the way ferryctl does. */
static void ctl_add(struct mem *m, const char *name, const char *vip, int port, __u8 lb)
{
	struct plan_opts o = { .owner = FERRY_SVC_F_MANUAL };
	struct reg_service want = {};
	struct reg_backend be = { .port = 9000, .weight = 1 };
	char err[FERRY_ERR_LEN];
	struct fstate st;
	struct faddr a;
	struct plan p;

	assert_int_equal(faddr_parse(vip, &a), 0);
	memcpy(want.key.addr, a.a, sizeof(a.a));
	want.key.family = a.family;
	want.key.port = htons(port);
	want.key.proto = IPPROTO_TCP;
	snprintf(want.name, sizeof(want.name), "%s", name);
	want.lb = lb;
	circuit_defaults(&want.circuit);
	assert_int_equal(faddr_parse("192.0.2.99", &be.addr), 0);
	want.backends = &be;
	want.nbackends = 1;
	mem_state(m, &st);
	plan_init(&p);
	assert_int_equal(plan_service(&p, &st, NULL, &want, &o, err, sizeof(err)), 0);
	mem_apply(m, &p);
	plan_free(&p);
	fstate_free(&st);
	mem_check(m);
}

static void plan_registry_leaves_ferryctl_services(void **state)
{
	static const char *const bes[] = { BE(8081) };
	struct mem *m = mem_new(16, 64);
	char err[FERRY_ERR_LEN];
	struct ferry_svc *sv;
	struct plan p;

	(void)state;
	ctl_add(m, "manual", "198.51.100.20", 80, FERRY_LB_MAGLEV);
	sv = svc_of(m, "198.51.100.20", 80, IPPROTO_TCP);
	assert_non_null(sv);
	assert_int_equal(sv->flags & (FERRY_SVC_F_MANUAL | FERRY_SVC_F_REGISTRY), FERRY_SVC_F_MANUAL);
	/* an empty registry does not remove it ... */
	assert_int_equal(plan_doc(m, "{\"services\": []}", &p, err, sizeof(err)), 0);
	assert_int_equal(plan_writes(&p), 0);
	plan_free(&p);
	/* ... nor does a registry with other services touch it */
	sync_doc(m, doc_svc("round_robin", bes, 1));
	assert_int_equal(m->svc.n, 2);
	sync_doc(m, "{\"services\": []}");
	assert_int_equal(m->svc.n, 1);
	sv = svc_of(m, "198.51.100.20", 80, IPPROTO_TCP);
	assert_non_null(sv);
	assert_int_equal(sv->count, 1);
	assert_int_equal(m->mag.n, 1);
	mem_free(m);
}

/* A registry that names a ferryctl-created VIP takes it over. */
static void plan_registry_claims_named_service(void **state)
{
	static const char *const bes[] = { BE(8081), BE(8082) };
	struct mem *m = mem_new(16, 64);
	struct ferry_svc *sv;

	(void)state;
	ctl_add(m, "manual", "198.51.100.10", 80, FERRY_LB_ROUND_ROBIN);
	sync_doc(m, doc_svc("round_robin", bes, 2));
	sv = svc_of(m, "198.51.100.10", 80, IPPROTO_TCP);
	assert_int_equal(sv->count, 2);
	assert_int_equal(sv->flags & (FERRY_SVC_F_MANUAL | FERRY_SVC_F_REGISTRY), FERRY_SVC_F_REGISTRY);
	mem_free(m);
}

static struct ferry_backend *backend_by_port(const struct mem *m, __u16 port)
{
	size_t i;

	for (i = 0; i < m->be.n; i++) {
		struct ferry_backend *be = (void *)(m->be.v + i * m->be.vsz);

		if (ntohs(be->port) == port)
			return be;
	}
	return NULL;
}

/* ferryctl backend set --state: the same planner, owner kept, no quarantine keeping. */
static void ctl_set_state(struct mem *m, __u16 port, __u8 state)
{
	struct plan_opts o = { .keep_quarantine = false };
	struct reg_service want;
	char err[FERRY_ERR_LEN];
	struct fstate st;
	struct plan p;
	size_t i;

	mem_state(m, &st);
	assert_int_equal(st.n, 1);
	o.owner = st.svcs[0].val.flags & (FERRY_SVC_F_REGISTRY | FERRY_SVC_F_MANUAL);
	assert_int_equal(svc_state_to_reg(&st.svcs[0], &want), 0);
	for (i = 0; i < want.nbackends; i++)
		if (want.backends[i].port == port)
			want.backends[i].state = state;
	plan_init(&p);
	assert_int_equal(plan_service(&p, &st, &st.svcs[0], &want, &o, err, sizeof(err)), 0);
	mem_apply(m, &p);
	plan_free(&p);
	free(want.backends);
	fstate_free(&st);
	mem_check(m);
}

/* A slot an interrupted apply left without a backend (id 0 in the state)
 * is a hole, not a backend at 0.0.0.0:0, when a service is turned back
 * into what a registry would say (ferryctl edits, ring refreshes). */
static void state_to_reg_skips_holes(void **state)
{
	struct be_state bes[3] = {};
	struct svc_state s = { .bes = bes, .n = 3 };
	struct reg_service r;

	(void)state;
	bes[0].id = 7;
	bes[0].be.family = AF_INET;
	bes[0].be.addr[0] = htonl(0xc000020b);
	bes[0].be.port = htons(8081);
	bes[0].be.weight = 1;
	bes[2] = bes[0];
	bes[2].id = 9;
	bes[2].be.port = htons(8082);
	assert_int_equal(svc_state_to_reg(&s, &r), 0);
	assert_int_equal(r.nbackends, 2);
	assert_int_equal(r.backends[0].port, 8081);
	assert_int_equal(r.backends[1].port, 8082);
	free(r.backends);
}

static void plan_registry_keeps_quarantine(void **state)
{
	static const char *const bes[] = { BE(8081), BE(8082), BE(8083) };
	static const char *const reweigh[] = { BE(8081), BEW(8082, 7), BE(8083) };
	static const char *const drain[] = { BE(8081),
		"{\"ip\": \"192.0.2.11\", \"port\": 8082, \"state\": \"draining\"}", BE(8083) };
	static const char *const drop[] = { BE(8081), BE(8083) };
	struct mem *m = mem_new(16, 64);
	char err[FERRY_ERR_LEN];
	struct plan p;

	(void)state;
	sync_doc(m, doc_svc("maglev", bes, 3));
	/* an operator quarantines 8082 (ferryctl backend set --state quarantined) */
	ctl_set_state(m, 8082, FERRY_BE_QUARANTINED);
	assert_int_equal(backend_by_port(m, 8082)->state, FERRY_BE_QUARANTINED);
	/* the registry still says active: nothing to write */
	assert_int_equal(plan_doc(m, doc_svc("maglev", bes, 3), &p, err, sizeof(err)), 0);
	assert_int_equal(plan_writes(&p), 0);
	plan_free(&p);
	/* a registry change to that backend keeps the quarantine */
	sync_doc(m, doc_svc("maglev", reweigh, 3));
	assert_int_equal(backend_by_port(m, 8082)->weight, 7);
	assert_int_equal(backend_by_port(m, 8082)->state, FERRY_BE_QUARANTINED);
	sync_doc(m, doc_svc("maglev", drain, 3));
	assert_int_equal(backend_by_port(m, 8082)->state, FERRY_BE_QUARANTINED);
	/* removing it from the registry removes it */
	sync_doc(m, doc_svc("maglev", drop, 2));
	assert_null(backend_by_port(m, 8082));
	mem_free(m);
}

/* ferryctl's plans (keep_quarantine off) do change the state back. */
static void plan_service_lifts_quarantine(void **state)
{
	static const char *const bes[] = { BE(8081), BE(8082) };
	struct mem *m = mem_new(16, 64);

	(void)state;
	sync_doc(m, doc_svc("round_robin", bes, 2));
	ctl_set_state(m, 8082, FERRY_BE_QUARANTINED);
	assert_int_equal(backend_by_port(m, 8082)->state, FERRY_BE_QUARANTINED);
	ctl_set_state(m, 8082, FERRY_BE_ACTIVE);
	assert_int_equal(backend_by_port(m, 8082)->state, FERRY_BE_ACTIVE);
	mem_free(m);
}

static void plan_capacity_enospc(void **state)
{
	static const char *const bes[] = { BE(8081), BE(8082), BE(8083) };
	static const char two_svcs[] =
		"{\"services\": [{\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80},\n"
		"                {\"name\": \"b\", \"vip\": \"198.51.100.11\", \"port\": 80}]}";
	struct mem *m = mem_new(1, 2);
	char err[FERRY_ERR_LEN] = "";
	struct plan p;

	(void)state;
	assert_int_equal(plan_doc(m, doc_svc("round_robin", bes, 3), &p, err, sizeof(err)), -ENOSPC);
	plan_free(&p);
	if (!strstr(err, "service 198.51.100.10:80/tcp") || !strstr(err, "capacity of 2 backends"))
		fail_msg("capacity error does not name the service and the limit: \"%s\"", err);
	err[0] = '\0';
	assert_int_equal(plan_doc(m, two_svcs, &p, err, sizeof(err)), -ENOSPC);
	plan_free(&p);
	if (!strstr(err, "198.51.100.11:80/tcp") || !strstr(err, "capacity of 1 services"))
		fail_msg("capacity error does not name the service and the limit: \"%s\"", err);
	/* nothing was applied, and a registry that fits still does */
	assert_int_equal(m->svc.n + m->be.n, 0);
	sync_doc(m, doc_svc("round_robin", bes, 2));
	assert_int_equal(m->be.n, 2);
	mem_free(m);
}

/*
 * Ids freed by removals are reused, so capacity is about what is live (plus
 * the headroom of one change: new backends are written before old ones go).
 */
static void plan_ids_reused(void **state)
{
	static const char *const a[] = { BE(8081), BE(8082) };
	static const char *const b[] = { BE(9081), BE(9082) };
	struct mem *m = mem_new(2, 4);
	int i;

	(void)state;
	for (i = 0; i < 6; i++) {
		sync_doc(m, doc_svc("round_robin", i % 2 ? b : a, 2));
		assert_int_equal(m->be.n, 2);
	}
	mem_free(m);
}

static void plan_maglev_tables(void **state)
{
	static const char *const bes[] = { BE(8081), BE(8082), BE(8083) };
	static const char *const reweigh[] = { BE(8081), BEW(8082, 2), BE(8083) };
	struct mem *m = mem_new(16, 64);
	char err[FERRY_ERR_LEN];
	struct plan p;
	static const char renamed[] =
		"{\"services\": [{\"name\": \"web2\", \"vip\": \"198.51.100.10\", \"port\": 80, \"lb\": \"maglev\","
		" \"backends\": [" BE(8081) ", " BEW(8082, 2) ", " BE(8083) "]}]}";

	(void)state;
	sync_doc(m, doc_svc("maglev", bes, 3));
	assert_int_equal(m->mag.n, 1);
	/* a weight change rebuilds the table */
	assert_int_equal(plan_doc(m, doc_svc("maglev", reweigh, 3), &p, err, sizeof(err)), 0);
	assert_int_equal(p.mag.n, 1);
	mem_apply(m, &p);
	plan_free(&p);
	mem_check(m);
	/* a rename does not */
	assert_int_equal(plan_doc(m, renamed, &p, err, sizeof(err)), 0);
	assert_int_equal(p.mag.n, 0);
	assert_int_equal(p.name_put_k.n, 1);
	mem_apply(m, &p);
	plan_free(&p);
	mem_check(m);
	/* leaving maglev deletes the table */
	assert_int_equal(plan_doc(m, doc_svc("round_robin", reweigh, 3), &p, err, sizeof(err)), 0);
	assert_int_equal(p.mag_del.n, 1);
	mem_apply(m, &p);
	plan_free(&p);
	mem_check(m);
	assert_int_equal(m->mag.n, 0);
	mem_free(m);
}

/*
 * A deterministic random walk over registries: after every sync the maps
 * satisfy the invariants, describe exactly the registry, a re-plan is empty,
 * and a backend that stays keeps its id and its slot unless its slot was cut
 * off by a shrink.
 */
#define POOL 12
static void plan_random_walk(void **state)
{
	static const char *const lbs[] = { "round_robin", "random", "weighted", "maglev", "least_conn" };
	static const char *const vips[] = { "198.51.100.10", "198.51.100.11", "2001:db8:ffff::10" };
	struct mem *m = mem_new(8, 128);
	unsigned seed = 12345;
	char *doc = malloc(65536);
	int iter;

	(void)state;
	assert_non_null(doc);
	for (iter = 0; iter < 300; iter++) {
		__u32 old_id[3][POOL] = {}, old_slot[3][POOL] = {}, old_n[3] = {};
		int present[3][POOL] = {}, nsv = 0, v, i;
		size_t off = 0, writes;
		char err[FERRY_ERR_LEN];
		struct plan p;

		/* remember where every backend is now */
		for (v = 0; v < 3; v++) {
			struct ferry_svc *sv = svc_of(m, vips[v], 80, IPPROTO_TCP);
			__u32 s;

			for (s = 0; sv && s < sv->count; s++) {
				__u32 id = slot_backend(m, sv->id, s);
				int port = backend_port(m, id);

				old_id[v][port - 8000] = id;
				old_slot[v][port - 8000] = s;
			}
			old_n[v] = sv ? sv->count : 0;
		}
		off += sprintf(doc + off, "{\"services\": [");
		for (v = 0; v < 3; v++) {
			bool v6 = strchr(vips[v], ':');
			int first = 1;

			if (rand_r(&seed) % 5 == 0)
				continue;	/* service absent this round */
			off += sprintf(doc + off, "%s{\"name\": \"s%d-%u\", \"vip\": \"%s\", \"port\": 80, \"lb\": \"%s\", \"backends\": [",
				       nsv++ ? ", " : "", v, rand_r(&seed) % 2, vips[v], lbs[rand_r(&seed) % 5]);
			for (i = 0; i < POOL; i++) {
				if (rand_r(&seed) % 3 == 0)
					continue;
				present[v][i] = 1;
				off += sprintf(doc + off, "%s{\"ip\": \"%s\", \"port\": %d, \"weight\": %u%s}",
					       first ? "" : ", ", v6 ? "2001:db8::11" : "192.0.2.11", 8000 + i,
					       rand_r(&seed) % 4, rand_r(&seed) % 4 ? "" : ", \"state\": \"draining\"");
				first = 0;
			}
			off += sprintf(doc + off, "]}");
		}
		sprintf(doc + off, "]}");

		sync_doc(m, doc);
		assert_int_equal(m->svc.n, nsv);
		for (v = 0; v < 3; v++) {
			struct ferry_svc *sv = svc_of(m, vips[v], 80, IPPROTO_TCP);
			__u32 s, n = 0;

			for (i = 0; i < POOL; i++)
				n += present[v][i];
			if (!sv)
				continue;
			assert_int_equal(sv->count, n);
			for (s = 0; s < sv->count; s++) {
				__u32 id = slot_backend(m, sv->id, s);
				int k = backend_port(m, id) - 8000;

				assert_true(k >= 0 && k < POOL && present[v][k]);
				if (!old_id[v][k])
					continue;
				/* a survivor keeps its id, and its slot unless that was cut off */
				if (old_id[v][k] != id)
					fail_msg("iteration %d: backend %d of service %d changed id %u -> %u",
						 iter, 8000 + k, v, old_id[v][k], id);
				if (old_slot[v][k] != s && old_slot[v][k] < n)
					fail_msg("iteration %d: backend %d moved from slot %u to %u (count %u -> %u)",
						 iter, 8000 + k, old_slot[v][k], s, old_n[v], n);
			}
		}
		assert_int_equal(plan_doc(m, doc, &p, err, sizeof(err)), 0);
		writes = plan_writes(&p);
		plan_free(&p);
		if (writes)
			fail_msg("iteration %d: re-planning the same registry takes %zu writes", iter, writes);
	}
	free(doc);
	mem_free(m);
}

/* ---- plan_apply() against real maps: the order of the stages ---- */

static size_t real_count(int fd, size_t ksz)
{
	size_t n = 0;

	assert_int_equal(map_count(fd, ksz, &n), 0);
	return n;
}

static void plan_apply_order(void **state)
{
	static const char *const bes[] = { BE(8081), BE(8082), BE(8083) };
	const char *doc = doc_svc("maglev", bes, 3);
	struct ferry_maps m;
	struct registry r;
	struct fstate st;
	char err[FERRY_ERR_LEN];
	struct plan p;
	int ret;

	(void)state;
	reg_parse(doc, &r);

	/* 1. the backend stage fails (map too small): no slot, table or service appears */
	if (real_maps_open(&m, 2, 64)) {
		real_maps_close(&m);
		registry_free(&r);
		skip();	/* no BPF here (not root): the pure tests cover the plan */
	}
	assert_int_equal(fstate_init(&st, 16, 64), 0);
	plan_init(&p);
	assert_int_equal(plan_registry(&p, &st, &r, err, sizeof(err)), 0);
	ret = plan_apply(&m, &p, err, sizeof(err));
	assert_true(ret < 0);
	assert_non_null(strstr(err, FERRY_MAP_BACKEND));
	assert_int_equal(real_count(m.slot, sizeof(struct ferry_slot_key)), 0);
	assert_int_equal(real_count(m.mag, 4), 0);
	assert_int_equal(real_count(m.svc, sizeof(struct ferry_svc_key)), 0);
	plan_free(&p);
	fstate_free(&st);
	real_maps_close(&m);

	/* 2. the slot stage fails: backends are there, the service is not */
	assert_int_equal(real_maps_open(&m, 64, 2), 0);
	assert_int_equal(fstate_init(&st, 16, 64), 0);
	plan_init(&p);
	assert_int_equal(plan_registry(&p, &st, &r, err, sizeof(err)), 0);
	assert_true(plan_apply(&m, &p, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, FERRY_MAP_SLOT));
	assert_int_equal(real_count(m.be, 4), 3);
	assert_int_equal(real_count(m.mag, 4), 0);
	assert_int_equal(real_count(m.svc, sizeof(struct ferry_svc_key)), 0);
	plan_free(&p);
	fstate_free(&st);
	real_maps_close(&m);

	/* 3. all good: the service appears; read back, the same registry is 0 writes */
	assert_int_equal(real_maps_open(&m, 64, 64), 0);
	assert_int_equal(fstate_init(&st, 16, 64), 0);
	plan_init(&p);
	assert_int_equal(plan_registry(&p, &st, &r, err, sizeof(err)), 0);
	if (plan_apply(&m, &p, err, sizeof(err)))
		fail_msg("apply: %s", err);
	plan_free(&p);
	fstate_free(&st);
	assert_int_equal(real_count(m.svc, sizeof(struct ferry_svc_key)), 1);
	assert_int_equal(real_count(m.mag, 4), 1);
	assert_int_equal(fstate_load(&m, &st), 0);
	assert_int_equal(st.n, 1);
	assert_int_equal(st.svcs[0].n, 3);
	assert_true(st.svcs[0].has_maglev);
	assert_string_equal(st.svcs[0].name, "web");
	plan_init(&p);
	assert_int_equal(plan_registry(&p, &st, &r, err, sizeof(err)), 0);
	assert_int_equal(plan_writes(&p), 0);
	plan_free(&p);
	fstate_free(&st);
	real_maps_close(&m);
	registry_free(&r);
}

/* ---- xsvc_sync() against real maps: the XDP VIP index ---- */

static int mk_index(__u32 sets, size_t vsz)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_MMAPABLE);

	return bpf_map_create(BPF_MAP_TYPE_ARRAY, "t_xsvc", 4, vsz, sets, &o);
}

static void put_svc(int fd, __u16 port, __u32 id, __u8 flags)
{
	struct ferry_svc_key k = { .addr = { htonl(0xc6336401) }, .port = htons(port),
				   .proto = IPPROTO_TCP, .family = AF_INET };
	struct ferry_svc v = { .id = id, .flags = flags };

	assert_int_equal(bpf_map_update_elem(fd, &k, &v, BPF_ANY), 0);
}

static void xsvc_sync_index(void **state)
{
	struct ferry_xsvc_set set;
	struct xsvc_report r;
	int svc, idx, bad, i, n;
	__u32 zero = 0;

	(void)state;
	svc = mk_hash("t_svc", sizeof(struct ferry_svc_key), sizeof(struct ferry_svc), 16);
	if (svc < 0)
		skip();	/* no BPF here (not root) */
	/* The set is chosen by masking: the index must be a power of two. */
	bad = mk_index(3, sizeof(struct ferry_xsvc_set));
	assert_int_equal(xsvc_sync(svc, bad, -1, &r), -EPROTO);
	close(bad);
	bad = mk_index(4, sizeof(struct ferry_xsvc_set) / 2);
	assert_int_equal(xsvc_sync(svc, bad, -1, &r), -EPROTO);
	close(bad);

	/* One set of four ways: three XDP services and a socket-only one. */
	idx = mk_index(1, sizeof(struct ferry_xsvc_set));
	assert_true(idx >= 0);
	put_svc(svc, 80, 1, FERRY_SVC_F_XDP);
	put_svc(svc, 81, 2, FERRY_SVC_F_XDP);
	put_svc(svc, 82, 3, FERRY_SVC_F_XDP);
	put_svc(svc, 83, 4, 0);
	assert_int_equal(xsvc_sync(svc, idx, -1, &r), 0);
	assert_int_equal(r.indexed, 3);
	assert_int_equal(r.added, 3);
	assert_int_equal(r.overflow, 0);
	assert_int_equal(bpf_map_lookup_elem(idx, &zero, &set), 0);
	assert_int_equal(set.way[0].flags, FERRY_XSVC_F_VALID);
	for (i = 0, n = 0; i < FERRY_XSVC_WAYS; i++)
		n += set.way[i].svc_id != 0 && set.way[i].svc_id != 4;
	assert_int_equal(n, 3);

	/* Nothing changed: nothing written. */
	assert_int_equal(xsvc_sync(svc, idx, -1, &r), 0);
	assert_int_equal(r.added + r.removed, 0);

	/* Same key, new id (deleted and created again): the entry is replaced,
	 * in another way; two more services fill the set and one is left over. */
	put_svc(svc, 80, 9, FERRY_SVC_F_XDP);
	put_svc(svc, 84, 5, FERRY_SVC_F_XDP);
	put_svc(svc, 85, 6, FERRY_SVC_F_XDP);
	assert_int_equal(xsvc_sync(svc, idx, -1, &r), 0);
	assert_int_equal(r.removed, 1);
	assert_int_equal(r.indexed, 3);
	assert_int_equal(r.overflow, 2);
	assert_int_equal(bpf_map_lookup_elem(idx, &zero, &set), 0);
	assert_int_equal(set.way[0].flags, FERRY_XSVC_F_VALID | FERRY_XSVC_F_MORE);
	assert_int_equal(xsvc_sync(svc, idx, -1, &r), 0);
	assert_int_equal(r.indexed, 4);
	assert_int_equal(r.overflow, 1);
	for (i = 0; i < FERRY_XSVC_WAYS; i++)
		assert_int_not_equal(set.way[i].svc_id, 1);

	/* Two go: all fit, the set no longer sends misses to ferry_svc_v1. */
	put_svc(svc, 81, 2, 0);
	put_svc(svc, 82, 3, 0);
	assert_int_equal(xsvc_sync(svc, idx, -1, &r), 0);
	assert_int_equal(xsvc_sync(svc, idx, -1, &r), 0);
	assert_int_equal(r.indexed, 3);
	assert_int_equal(r.overflow, 0);
	assert_int_equal(bpf_map_lookup_elem(idx, &zero, &set), 0);
	assert_int_equal(set.way[0].flags, FERRY_XSVC_F_VALID);
	close(idx);
	close(svc);
}

/* The filter bit of put_svc()'s service on port. */
static __u32 vipf_index(__u16 port)
{
	struct ferry_svc_key k = { .addr = { htonl(0xc6336401) }, .port = htons(port),
				   .proto = IPPROTO_TCP, .family = AF_INET };

	return ferry_xvipf_bit(ferry_xsvc_hash(&k));
}

static bool vipf_bit(const struct ferry_xvipf *f, __u16 port)
{
	__u32 bit = vipf_index(port);

	return f->w[bit / 64] >> (bit % 64) & 1;
}

/* A service map, a 4-set index and a filter; -1 (nothing made) when the
 * kernel will not make the service map, as in the other map tests. */
static int filter_maps(int *svc, int *idx, int *flt)
{
	*svc = mk_hash("t_svc", sizeof(struct ferry_svc_key), sizeof(struct ferry_svc), 16);
	if (*svc < 0)
		return -1;
	*idx = mk_index(4, sizeof(struct ferry_xsvc_set));
	*flt = bpf_map_create(BPF_MAP_TYPE_ARRAY, "t_xvipf", 4, sizeof(struct ferry_xvipf), 1, NULL);
	assert_true(*idx >= 0 && *flt >= 0);
	return 0;
}

/* The VIP filter: a clear bit for each XDP VIP, every other bit set; a VIP
 * that goes sets its bit again; a filter never built (zero) gets built. */
static void xsvc_sync_filter(void **state)
{
	struct ferry_xvipf *f = calloc(1, sizeof(*f));
	struct xsvc_report r;
	int svc, idx, flt, i, clear;
	__u32 zero = 0;

	(void)state;
	assert_non_null(f);
	if (filter_maps(&svc, &idx, &flt)) {
		free(f);
		skip();
	}
	put_svc(svc, 80, 1, FERRY_SVC_F_XDP);
	put_svc(svc, 81, 2, FERRY_SVC_F_XDP);
	put_svc(svc, 82, 3, 0);
	assert_int_equal(xsvc_sync(svc, idx, flt, &r), 0);
	assert_int_equal(bpf_map_lookup_elem(flt, &zero, f), 0);
	assert_false(vipf_bit(f, 80));
	assert_false(vipf_bit(f, 81));
	assert_true(vipf_bit(f, 82));		/* a socket-only service is no XDP VIP */
	assert_true(vipf_bit(f, 9999));
	for (i = 0, clear = 0; i < (int)FERRY_XVIPF_BITS; i++)
		clear += !(f->w[i / 64] >> (i % 64) & 1);
	assert_true(clear >= 1 && clear <= 2);	/* the two VIPs' bits (one if they share it) */

	/* 81 stops being an XDP service: its bit is set again. */
	put_svc(svc, 81, 2, 0);
	assert_int_equal(xsvc_sync(svc, idx, flt, &r), 0);
	assert_int_equal(bpf_map_lookup_elem(flt, &zero, f), 0);
	assert_false(vipf_bit(f, 80));
	if (vipf_index(81) != vipf_index(80))	/* else it shares 80's bit */
		assert_true(vipf_bit(f, 81));

	/* A filter never built (all zero: "ask the index") is built. */
	memset(f, 0, sizeof(*f));
	assert_int_equal(bpf_map_update_elem(flt, &zero, f, BPF_ANY), 0);
	assert_int_equal(xsvc_sync(svc, idx, flt, &r), 0);
	assert_int_equal(bpf_map_lookup_elem(flt, &zero, f), 0);
	assert_false(vipf_bit(f, 80));
	assert_true(vipf_bit(f, 9999));
	close(flt);
	close(idx);
	close(svc);
	free(f);
}

/*
 * The order of the filter's writes against the index: a new VIP's bit is
 * clear before its entry appears in the index, and a VIP's bit is set again
 * only once its entry is gone, so the data path never has the filter turn
 * away a VIP the index holds. This binary is linked with
 * --wrap=bpf_map_update_elem: every write to the watched filter records
 * the watched VIP's bit as written and whether the index held it then.
 */
#define SPY_WRITES	8

static struct {
	int	flt, idx;	/* the watched filter (-1: none), its index */
	__u16	port;		/* the watched VIP (put_svc's address) */
	int	n;
	bool	bit[SPY_WRITES], indexed[SPY_WRITES];
} spy = { .flt = -1 };

/* Does the index (4 sets) hold put_svc()'s service on port? */
static bool index_has(int idx, __u16 port)
{
	struct ferry_xsvc_set set;
	__u32 s;
	int k;

	for (s = 0; s < 4; s++) {
		if (bpf_map_lookup_elem(idx, &s, &set))
			continue;
		for (k = 0; k < FERRY_XSVC_WAYS; k++)
			if (set.way[k].svc_id && set.way[k].key.port == htons(port))
				return true;
	}
	return false;
}

int __real_bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags);
int __wrap_bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags);

int __wrap_bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags)
{
	if (fd == spy.flt) {
		if (spy.n < SPY_WRITES) {
			spy.bit[spy.n] = vipf_bit(value, spy.port);
			spy.indexed[spy.n] = index_has(spy.idx, spy.port);
		}
		spy.n++;
	}
	return __real_bpf_map_update_elem(fd, key, value, flags);
}

static void xsvc_sync_filter_order(void **state)
{
	struct ferry_xvipf *f = calloc(1, sizeof(*f));
	struct xsvc_report r;
	int svc, idx, flt, i;
	__u16 port = 83;
	__u32 zero = 0;

	(void)state;
	assert_non_null(f);
	if (filter_maps(&svc, &idx, &flt)) {
		free(f);
		skip();
	}
	put_svc(svc, 80, 1, FERRY_SVC_F_XDP);
	assert_int_equal(xsvc_sync(svc, idx, flt, &r), 0);
	while (vipf_index(port) == vipf_index(80))	/* a bit of its own */
		port++;

	/* It comes: the first write clears its bit, before it is indexed. */
	put_svc(svc, port, 2, FERRY_SVC_F_XDP);
	spy.flt = flt, spy.idx = idx, spy.port = port, spy.n = 0;
	assert_int_equal(xsvc_sync(svc, idx, flt, &r), 0);
	assert_true(spy.n >= 1 && spy.n <= SPY_WRITES);
	assert_false(spy.bit[0]);
	assert_false(spy.indexed[0]);
	for (i = 0; i < spy.n; i++)
		assert_false(spy.bit[i]);
	assert_true(index_has(idx, port));

	/* It goes: its bit is set again, and only when it is out of the index. */
	put_svc(svc, port, 2, 0);
	spy.n = 0;
	assert_int_equal(xsvc_sync(svc, idx, flt, &r), 0);
	spy.flt = -1;
	assert_true(spy.n >= 1 && spy.n <= SPY_WRITES);
	for (i = 0; i < spy.n; i++)
		if (spy.bit[i])
			assert_false(spy.indexed[i]);
	assert_true(spy.bit[spy.n - 1]);
	assert_int_equal(bpf_map_lookup_elem(flt, &zero, f), 0);
	assert_true(vipf_bit(f, port));
	assert_false(index_has(idx, port));
	close(flt);
	close(idx);
	close(svc);
	free(f);
}

/* Rows of the XDP per-CPU arrays: the highest possible CPU id + 1, holes
 * in the mask included (CPU ids index the rows). */
static void cpu_rows_from_mask(void **state)
{
	(void)state;
	assert_int_equal(cpu_mask_rows("0\n"), 1);
	assert_int_equal(cpu_mask_rows("0-1\n"), 2);
	assert_int_equal(cpu_mask_rows("0-3,8-11\n"), 12);
	assert_int_equal(cpu_mask_rows("0,2,5\n"), 6);
	assert_int_equal(cpu_mask_rows(""), -EINVAL);
	assert_int_equal(cpu_mask_rows("-\n"), -EINVAL);
	assert_true(ferry_cpu_rows() >= libbpf_num_possible_cpus());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cpu_rows_from_mask),
		cmocka_unit_test(xsvc_sync_filter_order),
		cmocka_unit_test(plan_new_service),
		cmocka_unit_test(plan_unchanged_zero_writes),
		cmocka_unit_test(plan_weight_change_round_robin_one_write),
		cmocka_unit_test(plan_weight_change_weighted),
		cmocka_unit_test(plan_add_backend),
		cmocka_unit_test(plan_remove_middle_backend),
		cmocka_unit_test(plan_remove_service),
		cmocka_unit_test(plan_registry_leaves_ferryctl_services),
		cmocka_unit_test(plan_registry_claims_named_service),
		cmocka_unit_test(plan_registry_keeps_quarantine),
		cmocka_unit_test(plan_service_lifts_quarantine),
		cmocka_unit_test(plan_capacity_enospc),
		cmocka_unit_test(plan_ids_reused),
		cmocka_unit_test(state_to_reg_skips_holes),
		cmocka_unit_test(plan_maglev_tables),
		cmocka_unit_test(plan_random_walk),
		cmocka_unit_test(plan_apply_order),
		cmocka_unit_test(xsvc_sync_index),
		cmocka_unit_test(xsvc_sync_filter),
	};

	return cmocka_run_group_tests_name("reconcile", tests, NULL, NULL);
}
