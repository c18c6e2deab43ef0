// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Snapshot of ferry's counters and its Prometheus text rendering (format
 * 0.0.4). Collection reads each map once (batch lookups); rendering makes no
 * syscalls and formats numbers by hand, so a node with 100k backends renders
 * in milliseconds. The family list lives in docs/metrics.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <zlib.h>

#include "addr.h"
#include "maps.h"
#include "metrics.h"
#include "stat_names.h"

/* ---- text buffer ------------------------------------------------------ */

void mbuf_free(struct mbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void mbuf_reset(struct mbuf *b)
{
	b->len = 0;
	b->oom = false;
}

bool mbuf_reserve(struct mbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void mbuf_add(struct mbuf *b, const void *p, size_t n)
{
	if (!mbuf_reserve(b, n))
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void mbuf_puts(struct mbuf *b, const char *s)
{
	mbuf_add(b, s, strlen(s));
}

void mbuf_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !mbuf_reserve(b, n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
}

int mbuf_gzip(const void *in, size_t len, struct mbuf *out, int level)
{
	z_stream z = {};
	int ret;

	/* windowBits 15 + 16: a gzip wrapper instead of zlib's. */
	if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	mbuf_reset(out);
	if (!mbuf_reserve(out, deflateBound(&z, len) + 32)) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = len;
	z.next_out = (Bytef *)out->p;
	z.avail_out = out->cap - 1;
	ret = deflate(&z, Z_FINISH);
	out->len = z.total_out;
	deflateEnd(&z);
	return ret == Z_STREAM_END ? 0 : -EIO;
}

/* ---- collection ------------------------------------------------------- */

/* Map type, sizes from /proc/self/fdinfo: tells maps from other pins. */
static int fdinfo_map(int fd, __u32 *type, __u32 *ksz, __u32 *vsz, __u32 *max)
{
	char path[64], line[128];
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned int v;

		if (sscanf(line, "map_type: %u", &v) == 1)
			*type = v, found |= 1;
		else if (sscanf(line, "key_size: %u", &v) == 1)
			*ksz = v, found |= 2;
		else if (sscanf(line, "value_size: %u", &v) == 1)
			*vsz = v, found |= 4;
		else if (sscanf(line, "max_entries: %u", &v) == 1)
			*max = v, found |= 8;
	}
	fclose(f);
	return found == 15 ? 0 : -EINVAL;
}

/* Count a hash-like map with batch lookups into a reused scratch buffer. */
static int count_batch(int fd, __u32 ksz, size_t vsz, __u64 *n)
{
	__u32 batch = 1024, count;
	__u64 in = 0, out = 0;
	bool first = true;
	char *buf = NULL;
	size_t bufsz = 0;
	int err;

	*n = 0;
	for (;;) {
		size_t need = (size_t)batch * (ksz + vsz);

		if (need > bufsz) {
			char *p = realloc(buf, need);

			if (!p) {
				free(buf);
				return -ENOMEM;
			}
			buf = p;
			bufsz = need;
		}
		count = batch;
		err = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, buf,
					   buf + (size_t)batch * ksz, &count, NULL);
		if (err && errno == ENOSPC && batch < (1u << 20)) {
			batch *= 2;	/* one bucket holds more than a batch */
			continue;
		}
		if (err && errno != ENOENT) {
			err = -errno;
			free(buf);
			return err;
		}
		*n += count;
		if (err)
			break;
		in = out;
		first = false;
	}
	free(buf);
	return 0;
}

int map_fill(int fd, __u32 *type, __u32 *max_entries, __u64 *entries, bool *has_entries)
{
	__u32 ksz = 0, vsz = 0;
	size_t n, val;
	int ncpu, err;

	*entries = 0;
	*has_entries = false;
	if ((err = fdinfo_map(fd, type, &ksz, &vsz, max_entries)))
		return err;
	switch (*type) {
	case BPF_MAP_TYPE_HASH:
	case BPF_MAP_TYPE_LRU_HASH:
	case BPF_MAP_TYPE_PERCPU_HASH:
	case BPF_MAP_TYPE_LRU_PERCPU_HASH:
	case BPF_MAP_TYPE_HASH_OF_MAPS:
	case BPF_MAP_TYPE_LPM_TRIE:
	case BPF_MAP_TYPE_SOCKHASH:
		break;
	default:
		/* Arrays (always "full": fill means nothing), sockmaps, ring
		 * buffers...: capacity only. */
		return 0;
	}
	val = vsz;
	if (*type == BPF_MAP_TYPE_PERCPU_HASH || *type == BPF_MAP_TYPE_LRU_PERCPU_HASH) {
		ncpu = libbpf_num_possible_cpus();
		if (ncpu <= 0)
			return -EINVAL;
		val = ((vsz + 7) & ~7u) * (size_t)ncpu;
	}
	if (*type != BPF_MAP_TYPE_LPM_TRIE && *type != BPF_MAP_TYPE_SOCKHASH &&
	    !count_batch(fd, ksz, val, entries)) {
		*has_entries = true;
		return 0;
	}
	/* No batch support for this type: walk the keys. */
	if ((err = map_count(fd, ksz, &n)))
		return err;
	*entries = n;
	*has_entries = true;
	return 0;
}

static int cmp_mx_map(const void *a, const void *b)
{
	return strcmp(((const struct mx_map *)a)->name, ((const struct mx_map *)b)->name);
}

/* Entry counts already known from the dumps of this collection. */
struct known_count {
	const char *name;
	size_t	n;
	bool	valid;
};

static int collect_maps(const char *bpffs, const struct known_count *known, size_t nknown,
			struct ferry_snapshot *s)
{
	char path[1024];
	struct dirent *e;
	size_t cap = 0, i;
	DIR *d = opendir(bpffs);

	if (!d)
		return 0;	/* nothing pinned: no fill family */
	while ((e = readdir(d))) {
		struct mx_map mm = {};
		__u32 ksz, vsz;
		int fd;

		if (e->d_name[0] == '.' || e->d_type == DT_DIR)
			continue;
		snprintf(path, sizeof(path), "%s/%s", bpffs, e->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		for (i = 0; i < nknown; i++)
			if (known[i].valid && !strcmp(known[i].name, e->d_name))
				break;
		if (i < nknown) {
			/* Counted by its dump a moment ago: no second pass. */
			if (fdinfo_map(fd, &mm.type, &ksz, &vsz, &mm.max_entries)) {
				close(fd);
				continue;
			}
			mm.entries = known[i].n;
			mm.has_entries = true;
		} else if (!strcmp(e->d_name, FERRY_MAP_XFLOW) || !strcmp(e->d_name, FERRY_MAP_XSVC)) {
			/* Arrays of sets (the flow table, the VIP index): their
			 * fill is the ways in use, their capacity the ways. */
			bool flows = !strcmp(e->d_name, FERRY_MAP_XFLOW);
			__u64 cap, full;

			if (fdinfo_map(fd, &mm.type, &ksz, &vsz, &mm.max_entries) ||
			    (flows ? xflow_count(fd, &mm.entries, &cap) :
				     xsvc_count(fd, &mm.entries, &cap, &full))) {
				close(fd);
				continue;
			}
			mm.max_entries = cap > UINT32_MAX ? UINT32_MAX : cap;
			mm.has_entries = true;
		} else if (map_fill(fd, &mm.type, &mm.max_entries, &mm.entries, &mm.has_entries)) {
			close(fd);
			continue;	/* a pinned program or link, or unreadable */
		}
		close(fd);
		snprintf(mm.name, sizeof(mm.name), "%.*s", (int)sizeof(mm.name) - 1, e->d_name);
		if (s->nmaps == cap) {
			struct mx_map *p;

			cap = cap ? cap * 2 : 32;
			p = realloc(s->maps, cap * sizeof(*p));
			if (!p) {
				closedir(d);
				return -ENOMEM;
			}
			s->maps = p;
		}
		s->maps[s->nmaps++] = mm;
	}
	closedir(d);
	qsort(s->maps, s->nmaps, sizeof(*s->maps), cmp_mx_map);
	return 0;
}

struct id_idx {
	__u32	id;
	__u32	idx;	/* into a dump */
};

static int cmp_id_idx(const void *a, const void *b)
{
	__u32 x = ((const struct id_idx *)a)->id, y = ((const struct id_idx *)b)->id;

	return x < y ? -1 : x > y;
}

static int cmp_svc_state(const void *a, const void *b)
{
	return svc_key_cmp(&((const struct svc_state *)a)->key, &((const struct svc_state *)b)->key);
}

static int cmp_be_state(const void *a, const void *b)
{
	__u32 x = ((const struct be_state *)a)->id, y = ((const struct be_state *)b)->id;

	return x < y ? -1 : x > y;
}

/* Sorted (id, index) pairs of a dump's __u32 keys, for bsearch by id. */
static struct id_idx *index_ids(const __u32 *keys, size_t n)
{
	struct id_idx *ix = malloc((n ? n : 1) * sizeof(*ix));
	size_t i;

	if (!ix)
		return NULL;
	for (i = 0; i < n; i++)
		ix[i] = (struct id_idx){ .id = keys[i], .idx = i };
	qsort(ix, n, sizeof(*ix), cmp_id_idx);
	return ix;
}

static const struct id_idx *find_id(const struct id_idx *ix, size_t n, __u32 id)
{
	struct id_idx probe = { .id = id };

	return bsearch(&probe, ix, n, sizeof(*ix), cmp_id_idx);
}

/*
 * Services and their backends for metrics, from four dumps: services, names,
 * backends and their counters. Backends are grouped by their svc_id (the
 * slot map is not needed to know who belongs where), in backend id order,
 * which is registry order for a fresh node and stable across scrapes. This
 * reads about half of what fstate_load does, which matters at 100k backends.
 */
static int collect_state(const struct ferry_maps *m, struct ferry_snapshot *s, struct known_count *known)
{
	struct ferry_svc_key *skeys = NULL;
	struct ferry_svc *svals = NULL;
	struct ferry_backend *bvals = NULL;
	struct ferry_svc_name *nvals = NULL;
	struct ferry_bestat *tvals = NULL;
	__u32 *bkeys = NULL, *nkeys = NULL, *tkeys = NULL;
	struct id_idx *sx = NULL, *nx = NULL, *tx = NULL;
	size_t ns = 0, nb = 0, nn = 0, nt = 0, i, k;
	int err;

	if ((err = fstate_init(&s->st, 1, 1)))
		return err;
	if (m->svc < 0 || m->be < 0)
		return 0;
	if ((err = map_dump(m->svc, sizeof(*skeys), sizeof(*svals), (void **)&skeys, (void **)&svals, &ns)) ||
	    (err = map_dump(m->be, sizeof(*bkeys), sizeof(*bvals), (void **)&bkeys, (void **)&bvals, &nb)))
		goto cleanup;
	known[0] = (struct known_count){ FERRY_MAP_SVC, ns, true };
	known[1] = (struct known_count){ FERRY_MAP_BACKEND, nb, true };
	/* Names and counters are optional: without them, no names and zeros. */
	if (m->name >= 0 && !map_dump(m->name, sizeof(*nkeys), sizeof(*nvals), (void **)&nkeys,
				      (void **)&nvals, &nn))
		known[2] = (struct known_count){ FERRY_MAP_SVCNAME, nn, true };
	if (m->bestat >= 0 && !map_dump(m->bestat, sizeof(*tkeys), sizeof(*tvals), (void **)&tkeys,
					(void **)&tvals, &nt))
		known[3] = (struct known_count){ FERRY_MAP_BESTAT, nt, true };

	s->st.svcs = calloc(ns ? ns : 1, sizeof(*s->st.svcs));
	if (!s->st.svcs) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (i = 0; i < ns; i++) {
		if (!svals[i].id)
			continue;	/* not ours to interpret */
		s->st.svcs[s->st.n].key = skeys[i];
		s->st.svcs[s->st.n].val = svals[i];
		s->st.n++;
	}
	qsort(s->st.svcs, s->st.n, sizeof(*s->st.svcs), cmp_svc_state);

	/* Service ids -> position; count each service's backends. */
	sx = malloc((s->st.n ? s->st.n : 1) * sizeof(*sx));
	nx = index_ids(nkeys, nn);
	tx = index_ids(tkeys, nt);
	if (!sx || !nx || !tx) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (i = 0; i < s->st.n; i++)
		sx[i] = (struct id_idx){ .id = s->st.svcs[i].val.id, .idx = i };
	qsort(sx, s->st.n, sizeof(*sx), cmp_id_idx);
	for (i = 0; i < nb; i++) {
		const struct id_idx *hit = find_id(sx, s->st.n, bvals[i].svc_id);

		if (hit)
			s->st.svcs[hit->idx].n++;
	}
	for (i = 0; i < s->st.n; i++) {
		struct svc_state *sv = &s->st.svcs[i];
		const struct id_idx *hit = find_id(nx, nn, sv->val.id);

		if (hit)
			memcpy(sv->name, nvals[hit->idx].name, FERRY_NAME_LEN - 1);
		sv->bes = calloc(sv->n ? sv->n : 1, sizeof(*sv->bes));
		if (!sv->bes) {
			err = -ENOMEM;
			goto cleanup;
		}
		s->st.nbackends += sv->n;
		sv->n = 0;	/* refilled below */
	}
	for (i = 0; i < nb; i++) {
		const struct id_idx *hit = find_id(sx, s->st.n, bvals[i].svc_id);
		struct svc_state *sv;

		if (!hit)
			continue;	/* an orphan: reconcile removes it */
		sv = &s->st.svcs[hit->idx];
		sv->bes[sv->n].id = bkeys[i];
		sv->bes[sv->n].be = bvals[i];
		sv->n++;
	}
	s->bestat = calloc(s->st.nbackends ? s->st.nbackends : 1, sizeof(*s->bestat));
	if (!s->bestat) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (i = 0, k = 0; i < s->st.n; i++) {
		struct svc_state *sv = &s->st.svcs[i];
		size_t j;

		qsort(sv->bes, sv->n, sizeof(*sv->bes), cmp_be_state);
		for (j = 0; j < sv->n; j++, k++) {
			const struct id_idx *hit = find_id(tx, nt, sv->bes[j].id);

			if (hit)
				s->bestat[k] = tvals[hit->idx];
		}
	}
	s->has_state = true;
	err = 0;
cleanup:
	free(skeys);
	free(svals);
	free(bkeys);
	free(bvals);
	free(nkeys);
	free(nvals);
	free(tkeys);
	free(tvals);
	free(sx);
	free(nx);
	free(tx);
	return err;
}

/*
 * The XDP load balancer's counters, when ferryd loaded it: outcome slots,
 * and packets/bytes per VIP and per backend of the services marked xdp
 * (CPU-major arrays, mapped once and summed per id).
 */
static int collect_xdp(const char *bpffs, struct ferry_snapshot *s)
{
	struct xdp_counters x;
	size_t i, j, k;
	int err = 0;

	/* Not loaded, or counters this build cannot read: no XDP families. */
	if (xdp_counters_open(bpffs, &x))
		goto cleanup;
	memcpy(s->xstats, x.stat, sizeof(s->xstats));
	s->has_xdp = true;
	if (!x.vip.a || !x.be.a)
		goto cleanup;	/* decap only */
	s->xvip = calloc(s->st.n ? s->st.n : 1, sizeof(*s->xvip));
	s->xbe = calloc(s->st.nbackends ? s->st.nbackends : 1, sizeof(*s->xbe));
	if (!s->xvip || !s->xbe) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (i = 0, k = 0; i < s->st.n; i++) {
		const struct svc_state *sv = &s->st.svcs[i];

		if (!(sv->val.flags & FERRY_SVC_F_XDP)) {
			k += sv->n;
			continue;
		}
		xcnt_get(&x.vip, sv->val.id, &s->xvip[i]);
		for (j = 0; j < sv->n; j++, k++)
			xcnt_get(&x.be, sv->bes[j].id, &s->xbe[k]);
	}
cleanup:
	xdp_counters_close(&x);
	return err;
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

int snapshot_collect(const struct ferry_maps *m, const char *bpffs, struct ferry_snapshot *s)
{
	struct known_count known[4] = {};
	__u64 t0 = mono_ns();
	__u32 i;
	int err;

	memset(s, 0, sizeof(*s));
	if (m->stats >= 0) {
		s->has_stats = true;
		for (i = 0; i < FERRY_STAT_MAX; i++)
			if (percpu_sum(m->stats, i, &s->stats[i]) && i == 0) {
				s->has_stats = false;
				break;
			}
	}
	s->has_status = m->status >= 0 && !status_read(m, &s->status);
	err = collect_state(m, s, known);
	if (err == -ENOMEM)
		goto fail;
	if (err) {
		/* Unreadable service maps: report the rest. */
		fstate_free(&s->st);
		free(s->bestat);
		s->bestat = NULL;
		s->has_state = false;
		memset(known, 0, sizeof(known));
		if ((err = fstate_init(&s->st, 1, 1)))
			goto fail;
	}
	if (bpffs && (err = collect_xdp(bpffs, s)))
		goto fail;
	if (bpffs && (err = collect_maps(bpffs, known, 4, s)))
		goto fail;
	s->collect_ns = mono_ns() - t0;
	return 0;
fail:
	snapshot_free(s);
	return err;
}

void snapshot_free(struct ferry_snapshot *s)
{
	fstate_free(&s->st);
	free(s->bestat);
	free(s->xvip);
	free(s->xbe);
	free(s->maps);
	memset(s, 0, sizeof(*s));
}

const char *snapshot_svc_label(const struct svc_state *s, char *buf, size_t len)
{
	if (s->name[0]) {
		snprintf(buf, len, "%.*s", FERRY_NAME_LEN, s->name);
		return buf;
	}
	return svc_key_str(&s->key, buf, len);
}

/* ---- rendering -------------------------------------------------------- */

static void put_u64(struct mbuf *b, __u64 v)
{
	char t[24];
	int i = sizeof(t);

	do {
		t[--i] = '0' + v % 10;
		v /= 10;
	} while (v);
	mbuf_add(b, t + i, sizeof(t) - i);
}

/* Nanoseconds as decimal seconds, exactly: "12.000345678". */
static void put_ns_as_s(struct mbuf *b, __u64 ns)
{
	char frac[10];
	int i;

	put_u64(b, ns / 1000000000ULL);
	ns %= 1000000000ULL;
	frac[0] = '.';
	for (i = 9; i >= 1; i--) {
		frac[i] = '0' + ns % 10;
		ns /= 10;
	}
	mbuf_add(b, frac, sizeof(frac));
}

void metrics_escape(struct mbuf *out, const char *s)
{
	const char *run = s;

	for (; *s; s++) {
		const char *rep = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;

		if (!rep)
			continue;
		mbuf_add(out, run, s - run);
		mbuf_add(out, rep, 2);
		run = s + 1;
	}
	mbuf_add(out, run, s - run);
}

static void family(struct mbuf *b, const char *name, const char *type, const char *help)
{
	mbuf_puts(b, "# HELP ");
	mbuf_puts(b, name);
	mbuf_add(b, " ", 1);
	mbuf_puts(b, help);	/* help texts are ours: no backslash or newline */
	mbuf_puts(b, "\n# TYPE ");
	mbuf_puts(b, name);
	mbuf_add(b, " ", 1);
	mbuf_puts(b, type);
	mbuf_add(b, "\n", 1);
}

/* name{labels} value; labels already escaped, may be empty. */
static void sample(struct mbuf *b, const char *name, const char *labels, size_t llen, __u64 v)
{
	mbuf_puts(b, name);
	if (llen) {
		mbuf_add(b, "{", 1);
		mbuf_add(b, labels, llen);
		mbuf_add(b, "}", 1);
	}
	mbuf_add(b, " ", 1);
	put_u64(b, v);
	mbuf_add(b, "\n", 1);
}

static void sample_s(struct mbuf *b, const char *name, __u64 ns)
{
	mbuf_puts(b, name);
	mbuf_add(b, " ", 1);
	put_ns_as_s(b, ns);
	mbuf_add(b, "\n", 1);
}

static void gauge1(struct mbuf *b, const char *name, const char *help, __u64 v)
{
	family(b, name, "gauge", help);
	sample(b, name, "", 0, v);
}

static void counter1(struct mbuf *b, const char *name, const char *help, __u64 v)
{
	family(b, name, "counter", help);
	sample(b, name, "", 0, v);
}

/* Counters named by a stat_desc table; unnamed non-zero slots by number. */
static void render_statset(struct mbuf *b, const struct stat_desc *d, int n, const __u64 *v,
			   const char *unnamed_family, const char *unnamed_help)
{
	bool done[64] = {}, unnamed = false;
	int i, j;

	/* A family's slots may be anywhere in the enum: emit them together. */
	for (i = 0; i < n; i++) {
		if (!d[i].name || done[i])
			continue;
		family(b, d[i].family, "counter", d[i].help ? d[i].help : d[i].name);
		for (j = i; j < n; j++) {
			if (!d[j].name || done[j] || strcmp(d[j].family, d[i].family))
				continue;
			done[j] = true;
			sample(b, d[j].family, d[j].labels, strlen(d[j].labels), v[j]);
		}
	}
	for (i = 0; i < n; i++) {
		char lbl[32];

		if (d[i].name || !v[i])
			continue;
		if (!unnamed)
			family(b, unnamed_family, "counter", unnamed_help);
		unnamed = true;
		sample(b, unnamed_family, lbl, snprintf(lbl, sizeof(lbl), "slot=\"%d\"", i), v[i]);
	}
}

enum be_field {
	BF_OPENED, BF_SUCCESS, BF_FAILED, BF_ACTIVE, BF_EJECTIONS, BF_CONSECUTIVE, BF_SENT, BF_RECEIVED,
	BF_CIRCUIT, BF_HEALTH, BF_ADMIN, BF_WEIGHT, BF_XPACKETS, BF_XBYTES,
};

static const struct be_family {
	const char *name, *type, *help;
	enum be_field field;
	bool summable;		/* also emitted for the __overflow__ series */
} be_families[] = {
	{ "ferry_backend_connections_opened_total", "counter",
	  "Connections the socket LB sent to the backend.", BF_OPENED, true },
	{ "ferry_backend_connections_established_total", "counter",
	  "Connections to the backend whose handshake completed.", BF_SUCCESS, true },
	{ "ferry_backend_connections_failed_total", "counter",
	  "Connections to the backend that failed (reset, timeout, unreachable).", BF_FAILED, true },
	{ "ferry_backend_connections_active", "gauge",
	  "Established connections to the backend not yet closed.", BF_ACTIVE, true },
	{ "ferry_backend_ejection_level", "gauge",
	  "Ejections of the backend in a row: the current or last ejection lasts this x base_ejection_ms; back to 0 after a quiet max_ejection_ms (node total: ferry_circuit_transitions_total{state=\"open\"}).",
	  BF_EJECTIONS, false },
	{ "ferry_backend_consecutive_failures", "gauge",
	  "Failed connects to the backend since its last success (the circuit opens at consecutive_failures).",
	  BF_CONSECUTIVE, false },
	{ "ferry_backend_sent_bytes_total", "counter",
	  "Bytes sent to the backend over balanced connections.", BF_SENT, true },
	{ "ferry_backend_received_bytes_total", "counter",
	  "Bytes received from the backend over balanced connections.", BF_RECEIVED, true },
	{ "ferry_backend_circuit_state", "gauge",
	  "Circuit breaker state of the backend: 0 closed, 1 open, 2 half-open, 3 opening (an ejection being written).",
	  BF_CIRCUIT, false },
	{ "ferry_backend_health_state", "gauge",
	  "Probed health of the backend: 0 unknown, 1 healthy, 2 degraded, 3 unhealthy.", BF_HEALTH, false },
	{ "ferry_backend_admin_state", "gauge",
	  "Administrative state of the backend: 0 active, 1 draining, 2 quarantined.", BF_ADMIN, false },
	{ "ferry_backend_weight", "gauge",
	  "Configured weight of the backend (0 takes no new connections).", BF_WEIGHT, false },
	/* XDP: only backends of services balanced in XDP, only when it is loaded. */
	{ "ferry_xdp_backend_packets_total", "counter",
	  "Packets the XDP load balancer sent to the backend.", BF_XPACKETS, true },
	{ "ferry_xdp_backend_bytes_total", "counter",
	  "Bytes (as received, before encapsulation) the XDP load balancer sent to the backend.", BF_XBYTES, true },
};

static __u64 be_value(enum be_field f, const struct be_state *be, const struct ferry_bestat *st,
		      const struct ferry_xcnt *x)
{
	switch (f) {
	case BF_XPACKETS: return x ? x->packets : 0;
	case BF_XBYTES: return x ? x->bytes : 0;
	case BF_OPENED: return st->opened;
	case BF_SUCCESS: return st->success;
	case BF_FAILED: return st->failed;
	case BF_ACTIVE: return st->active;
	case BF_EJECTIONS: return st->ejections;
	case BF_CONSECUTIVE: return st->consecutive;
	case BF_SENT: return st->bytes_sent;
	case BF_RECEIVED: return st->bytes_received;
	case BF_CIRCUIT: return st->circuit;
	case BF_HEALTH: return be->be.health;
	case BF_ADMIN: return be->be.state;
	case BF_WEIGHT: return be->be.weight;
	}
	return 0;
}

void mx_svc_sum_add(struct mx_svc_sum *a, const struct be_state *be, const struct ferry_bestat *st)
{
	bool open = st->circuit == FERRY_CIRCUIT_OPEN || st->circuit == FERRY_CIRCUIT_OPENING;

	a->opened += st->opened;
	a->success += st->success;
	a->failed += st->failed;
	a->active += st->active;
	a->sent += st->bytes_sent;
	a->received += st->bytes_received;
	a->circuit_open += open;
	a->unhealthy += be->be.health == FERRY_HEALTH_UNHEALTHY;
	a->usable += be->be.state == FERRY_BE_ACTIVE && be->be.weight &&
		     be->be.health != FERRY_HEALTH_UNHEALTHY && !open;
}

static __u64 agg_value(enum be_field f, const struct mx_svc_sum *a)
{
	switch (f) {
	case BF_OPENED: return a->opened;
	case BF_SUCCESS: return a->success;
	case BF_FAILED: return a->failed;
	case BF_ACTIVE: return a->active;
	case BF_SENT: return a->sent;
	case BF_RECEIVED: return a->received;
	case BF_XPACKETS: return a->xpackets;
	case BF_XBYTES: return a->xbytes;
	default: return 0;
	}
}

static const struct svc_family {
	const char *name, *type, *help;
	int field;	/* enum be_field, or -1..-4 for the counts below */
} svc_families[] = {
	{ "ferry_service_backends", "gauge", "Backends of the service.", -1 },
	{ "ferry_service_backends_usable", "gauge",
	  "Backends of the service that may take new connections (active, weight > 0, not unhealthy, circuit not open).", -2 },
	{ "ferry_service_backends_circuit_open", "gauge", "Backends of the service whose circuit is open.", -3 },
	{ "ferry_service_backends_unhealthy", "gauge", "Backends of the service probed unhealthy.", -4 },
	{ "ferry_service_connections_opened_total", "counter",
	  "Connections the socket LB sent to the service's current backends.", BF_OPENED },
	{ "ferry_service_connections_established_total", "counter",
	  "Connections to the service's current backends whose handshake completed.", BF_SUCCESS },
	{ "ferry_service_connections_failed_total", "counter",
	  "Connections to the service's current backends that failed.", BF_FAILED },
	{ "ferry_service_connections_active", "gauge",
	  "Established connections to the service's backends not yet closed.", BF_ACTIVE },
};

/* Label strings: one per service, one per backend under the cap. */
struct labels {
	struct mbuf text;
	size_t	*svc_off, *svc_len;
	size_t	*be_off, *be_len;
	size_t	nbe;		/* backends with their own series */
};

static int build_labels(const struct ferry_snapshot *s, __u32 cap, struct labels *l)
{
	size_t i, j, k = 0;
	char buf[128];

	l->nbe = s->st.nbackends < cap ? s->st.nbackends : cap;
	l->svc_off = calloc(s->st.n + 1, sizeof(size_t));
	l->svc_len = calloc(s->st.n + 1, sizeof(size_t));
	l->be_off = calloc(l->nbe + 1, sizeof(size_t));
	l->be_len = calloc(l->nbe + 1, sizeof(size_t));
	if (!l->svc_off || !l->svc_len || !l->be_off || !l->be_len)
		return -ENOMEM;
	mbuf_reserve(&l->text, s->st.n * 64 + l->nbe * 96);
	for (i = 0; i < s->st.n; i++) {
		const struct svc_state *sv = &s->st.svcs[i];
		size_t start = l->text.len, slen;

		mbuf_puts(&l->text, "service=\"");
		metrics_escape(&l->text, snapshot_svc_label(sv, buf, sizeof(buf)));
		mbuf_puts(&l->text, "\",vip=\"");
		mbuf_puts(&l->text, svc_key_str(&sv->key, buf, sizeof(buf)));
		mbuf_puts(&l->text, "\"");
		l->svc_off[i] = start;
		l->svc_len[i] = slen = l->text.len - start;
		for (j = 0; j < sv->n && k < l->nbe; j++, k++) {
			size_t bstart = l->text.len;

			/* Copy from the offset: the buffer may move while appending. */
			if (mbuf_reserve(&l->text, slen))
				mbuf_add(&l->text, l->text.p + start, slen);
			backend_str(&sv->bes[j].be, buf, sizeof(buf));
			mbuf_puts(&l->text, ",backend=\"");
			mbuf_puts(&l->text, buf);
			mbuf_puts(&l->text, "\"");
			l->be_off[k] = bstart;
			l->be_len[k] = l->text.len - bstart;
		}
	}
	return l->text.oom ? -ENOMEM : 0;
}

static void free_labels(struct labels *l)
{
	mbuf_free(&l->text);
	free(l->svc_off);
	free(l->svc_len);
	free(l->be_off);
	free(l->be_len);
}

static void render_services(struct mbuf *b, const struct ferry_snapshot *s, const struct labels *l,
			    const struct mx_svc_sum *agg)
{
	size_t f, i;

	for (f = 0; f < sizeof(svc_families) / sizeof(svc_families[0]); f++) {
		const struct svc_family *sf = &svc_families[f];

		family(b, sf->name, sf->type, sf->help);
		for (i = 0; i < s->st.n; i++) {
			__u64 v;

			switch (sf->field) {
			case -1: v = s->st.svcs[i].n; break;
			case -2: v = agg[i].usable; break;
			case -3: v = agg[i].circuit_open; break;
			case -4: v = agg[i].unhealthy; break;
			default: v = agg_value(sf->field, &agg[i]);
			}
			sample(b, sf->name, l->text.p + l->svc_off[i], l->svc_len[i], v);
		}
	}
}

static bool is_xdp_family(const struct be_family *bf)
{
	return bf->field == BF_XPACKETS || bf->field == BF_XBYTES;
}

static void render_backends(struct mbuf *b, const struct ferry_snapshot *s, const struct labels *l,
			    const struct mx_svc_sum *over)
{
	static const char over_lbl[] = "service=\"" FERRY_METRICS_OVERFLOW "\",vip=\""
		FERRY_METRICS_OVERFLOW "\",backend=\"" FERRY_METRICS_OVERFLOW "\"";
	size_t f, i, j, k;

	for (f = 0; f < sizeof(be_families) / sizeof(be_families[0]); f++) {
		const struct be_family *bf = &be_families[f];
		bool xdp = is_xdp_family(bf);

		if (xdp && !s->xbe)
			continue;	/* XDP not loaded */
		family(b, bf->name, bf->type, bf->help);
		for (i = 0, k = 0; i < s->st.n && k < l->nbe; i++) {
			const struct svc_state *sv = &s->st.svcs[i];

			if (xdp && !(sv->val.flags & FERRY_SVC_F_XDP)) {
				k += sv->n < l->nbe - k ? sv->n : l->nbe - k;
				continue;
			}
			for (j = 0; j < sv->n && k < l->nbe; j++, k++)
				sample(b, bf->name, l->text.p + l->be_off[k], l->be_len[k],
				       be_value(bf->field, &sv->bes[j], &s->bestat[k], s->xbe ? &s->xbe[k] : NULL));
		}
		if (l->nbe < s->st.nbackends && bf->summable)
			sample(b, bf->name, over_lbl, sizeof(over_lbl) - 1, agg_value(bf->field, over));
	}
}

/* Per-VIP XDP counters of the services balanced in XDP. */
static void render_xdp_services(struct mbuf *b, const struct ferry_snapshot *s, const struct labels *l)
{
	static const struct { const char *name, *help; bool bytes; } f[] = {
		{ "ferry_xdp_packets_total", "Packets to the VIP that the XDP load balancer sent to a backend.", false },
		{ "ferry_xdp_bytes_total", "Bytes (as received) to the VIP that the XDP load balancer sent to a backend.", true },
	};
	size_t n, i;

	if (!s->xvip)
		return;
	for (n = 0; n < 2; n++) {
		family(b, f[n].name, "counter", f[n].help);
		for (i = 0; i < s->st.n; i++)
			if (s->st.svcs[i].val.flags & FERRY_SVC_F_XDP)
				sample(b, f[n].name, l->text.p + l->svc_off[i], l->svc_len[i],
				       f[n].bytes ? s->xvip[i].bytes : s->xvip[i].packets);
	}
}

/* map="name",type="hash" (libbpf's name of the map type). */
static int map_labels(const struct mx_map *m, char *buf, size_t len)
{
	const char *t = libbpf_bpf_map_type_str(m->type);
	int n = snprintf(buf, len, "map=\"%s\",type=\"%s\"", m->name, t ? t : "unknown");

	return n < 0 || (size_t)n >= len ? (int)len - 1 : n;
}

static void render_maps(struct mbuf *b, const struct ferry_snapshot *s)
{
	char lbl[160];
	size_t i;

	if (!s->nmaps)
		return;
	family(b, "ferry_map_entries", "gauge",
	       "Entries in the pinned BPF map (hash-like maps only: arrays are always full, sockmaps are not counted).");
	for (i = 0; i < s->nmaps; i++)
		if (s->maps[i].has_entries)
			sample(b, "ferry_map_entries", lbl, map_labels(&s->maps[i], lbl, sizeof(lbl)),
			       s->maps[i].entries);
	family(b, "ferry_map_max_entries", "gauge", "Capacity (max_entries) of the pinned BPF map.");
	for (i = 0; i < s->nmaps; i++)
		sample(b, "ferry_map_max_entries", lbl, map_labels(&s->maps[i], lbl, sizeof(lbl)),
		       s->maps[i].max_entries);
}

static void render_status(struct mbuf *b, const struct ferry_status *st)
{
	counter1(b, "ferry_registry_syncs_total", "Registry syncs attempted by ferryd.", st->syncs);
	counter1(b, "ferry_registry_sync_errors_total",
		 "Registry syncs that failed (the last good state was kept).", st->sync_errors);
	gauge1(b, "ferry_registry_last_sync_success", "1 if the last registry sync was applied, else 0.",
	       st->syncs && st->last_ok);
	family(b, "ferry_registry_last_sync_timestamp_seconds", "gauge",
	       "Unix time of the last registry sync attempt (0: none yet).");
	sample_s(b, "ferry_registry_last_sync_timestamp_seconds", st->last_sync_ns);
	family(b, "ferry_registry_last_success_timestamp_seconds", "gauge",
	       "Unix time of the last registry sync that was applied (0: none yet).");
	sample_s(b, "ferry_registry_last_success_timestamp_seconds", st->last_ok_ns);
	family(b, "ferry_registry_last_sync_duration_seconds", "gauge",
	       "Duration of the last registry sync.");
	sample_s(b, "ferry_registry_last_sync_duration_seconds", st->last_sync_dur_ns);
}

int metrics_render(const struct ferry_snapshot *s, const struct metrics_opts *o, struct mbuf *b)
{
	struct mx_svc_sum *agg = NULL, over = {};
	struct labels l = {};
	size_t i, j, k = 0;
	int err;

	family(b, "ferry_build_info", "gauge", "Always 1; the version label is ferry's build.");
	mbuf_puts(b, "ferry_build_info{version=\"");
	metrics_escape(b, o->version ? o->version : "unknown");
	mbuf_puts(b, "\"} 1\n");
	if (s->has_stats)
		render_statset(b, ferry_stat_descs, FERRY_STAT_MAX, s->stats, "ferry_datapath_events_total",
			       "Per-CPU outcome counters without a name in this build, by slot of enum ferry_stat.");
	if (s->has_xdp)
		render_statset(b, ferry_xstat_descs, FERRY_XSTAT_MAX, s->xstats, "ferry_xdp_events_total",
			       "XDP counters without a name in this build, by slot of enum ferry_xstat.");

	if (s->has_state) {
		agg = calloc(s->st.n + 1, sizeof(*agg));
		if (!agg || (err = build_labels(s, o->max_backend_series, &l))) {
			err = -ENOMEM;
			goto cleanup;
		}
		for (i = 0; i < s->st.n; i++) {
			const struct svc_state *sv = &s->st.svcs[i];

			for (j = 0; j < sv->n; j++, k++) {
				mx_svc_sum_add(&agg[i], &sv->bes[j], &s->bestat[k]);
				if (k < l.nbe)
					continue;
				mx_svc_sum_add(&over, &sv->bes[j], &s->bestat[k]);
				if (s->xbe) {
					over.xpackets += s->xbe[k].packets;
					over.xbytes += s->xbe[k].bytes;
				}
			}
		}
		gauge1(b, "ferry_services", "Services in the service map.", s->st.n);
		gauge1(b, "ferry_backends", "Backends over all services.", s->st.nbackends);
		render_services(b, s, &l, agg);
		render_xdp_services(b, s, &l);
		render_backends(b, s, &l, &over);
		gauge1(b, "ferry_metrics_backend_series_limit",
		       "Backends that get their own per-backend series (--metrics-max-backend-series).",
		       o->max_backend_series);
		gauge1(b, "ferry_metrics_backends_overflowed",
		       "Backends past the series limit, summed into the series labelled backend=\"__overflow__\".",
		       s->st.nbackends - l.nbe);
	}
	render_maps(b, s);
	if (s->has_status)
		render_status(b, &s->status);
	family(b, "ferry_metrics_collect_duration_seconds", "gauge",
	       "Time spent reading the maps for this snapshot.");
	sample_s(b, "ferry_metrics_collect_duration_seconds", s->collect_ns);
	err = b->oom ? -ENOMEM : 0;
cleanup:
	free(agg);
	free_labels(&l);
	return err;
}
