// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <mntent.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <ferry/xdp.h>

#include "maps.h"

void ferry_pin_path(char *buf, size_t len, const char *dir, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static int open_pin(const char *dir, const char *name, int *fd)
{
	char path[512];

	ferry_pin_path(path, sizeof(path), dir, name);
	*fd = bpf_obj_get(path);
	return *fd < 0 ? -errno : 0;
}

int ferry_maps_open(const char *dir, struct ferry_maps *m, const char **which)
{
	struct { const char *name; int *fd; } t[] = {
		{ FERRY_MAP_SVC, &m->svc }, { FERRY_MAP_SLOT, &m->slot },
		{ FERRY_MAP_BACKEND, &m->be }, { FERRY_MAP_BESTAT, &m->bestat },
		{ FERRY_MAP_MAGLEV, &m->mag }, { FERRY_MAP_REVNAT, &m->rev },
		{ FERRY_MAP_STATS, &m->stats }, { FERRY_MAP_STATUS, &m->status },
		{ FERRY_MAP_SVCNAME, &m->name },
	};
	size_t i;
	int err;

	ferry_maps_init(m);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if ((err = open_pin(dir, t[i].name, t[i].fd))) {
			if (which)
				*which = t[i].name;
			ferry_maps_close(m);
			errno = -err;
			return err;
		}
	}
	map_max_entries(m->svc, &m->max_services);
	map_max_entries(m->be, &m->max_backends);
	/* Optional: present once ferryd has loaded the XDP load balancer. */
	if (open_pin(dir, FERRY_MAP_XRING, &m->xring) || open_pin(dir, FERRY_MAP_XCFG, &m->xcfg)) {
		if (m->xring >= 0)
			close(m->xring);
		m->xring = m->xcfg = -1;
	}
	if (m->xring >= 0 && open_pin(dir, FERRY_MAP_XSVC, &m->xsvc))
		m->xsvc = -1;
	if (m->xring >= 0 && open_pin(dir, FERRY_MAP_XVIPF, &m->xvipf))
		m->xvipf = -1;
	if (m->xring >= 0 && open_pin(dir, FERRY_MAP_XVIP, &m->xvip))
		m->xvip = -1;
	if (m->xring >= 0 && open_pin(dir, FERRY_MAP_XBE, &m->xbe))
		m->xbe = -1;
	/* Optional: present once ferryd has loaded the decap (--decap-iface). */
	if (open_pin(dir, FERRY_MAP_XDCAP, &m->xdcap) || open_pin(dir, FERRY_MAP_XDVIP, &m->xdvip) ||
	    open_pin(dir, FERRY_MAP_XDADDR, &m->xdaddr) || open_pin(dir, FERRY_MAP_XDPAIR, &m->xdpair)) {
		int *fds[] = { &m->xdcap, &m->xdvip, &m->xdaddr, &m->xdpair };

		for (size_t j = 0; j < 4; j++) {
			if (*fds[j] >= 0)
				close(*fds[j]);
			*fds[j] = -1;
		}
	}
	m->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	m->lock_depth = 0;
	return 0;
}

/* Every descriptor struct ferry_maps holds. */
#define MAPS_FDS(m)                                                                          \
	{ &(m)->svc, &(m)->slot, &(m)->be, &(m)->bestat, &(m)->mag, &(m)->rev, &(m)->stats, \
	  &(m)->status, &(m)->name, &(m)->xring, &(m)->xcfg, &(m)->xsvc, &(m)->xvipf,       \
	  &(m)->xvip, &(m)->xbe, &(m)->xdcap, &(m)->xdvip, &(m)->xdaddr, &(m)->xdpair,      \
	  &(m)->dirfd }

void ferry_maps_init(struct ferry_maps *m)
{
	int *fds[] = MAPS_FDS(m);
	size_t i;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		*fds[i] = -1;
}

void ferry_maps_close(struct ferry_maps *m)
{
	int *fds[] = MAPS_FDS(m);
	size_t i;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	m->lock_depth = 0;	/* closing dirfd dropped the lock */
}

static __u64 mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

int pin_dir_lock(int dirfd, int timeout_ms)
{
	__u64 start, waited;
	unsigned int nap_ms = 1;

	if (dirfd < 0)
		return 0;
	if (timeout_ms < 0) {
		while (flock(dirfd, LOCK_EX))
			if (errno != EINTR)
				return -errno;
		return 0;
	}
	/* Bounded: try, then sleep a little longer each time (to 50 ms). */
	start = mono_ms();
	for (;;) {
		struct timespec ts;

		if (!flock(dirfd, LOCK_EX | LOCK_NB))
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		waited = mono_ms() - start;
		if (waited >= (__u64)timeout_ms)
			return -EAGAIN;
		if (nap_ms > timeout_ms - waited)
			nap_ms = timeout_ms - waited;
		ts.tv_sec = 0;
		ts.tv_nsec = nap_ms * 1000000L;
		nanosleep(&ts, NULL);
		nap_ms = nap_ms * 2 > 50 ? 50 : nap_ms * 2;
	}
}

void pin_dir_unlock(int dirfd)
{
	if (dirfd >= 0)
		flock(dirfd, LOCK_UN);
}

int maps_lock(struct ferry_maps *m, int timeout_ms)
{
	int err;

	if (m->dirfd < 0)
		return 0;
	/* Held already through this open directory: a flock here would be a
	 * no-op, and the inner unlock would drop the outer caller's lock. */
	if (m->lock_depth > 0) {
		m->lock_depth++;
		return 0;
	}
	if ((err = pin_dir_lock(m->dirfd, timeout_ms)))
		return err;
	m->lock_depth = 1;
	return 0;
}

void maps_unlock(struct ferry_maps *m)
{
	if (m->dirfd < 0 || m->lock_depth <= 0)
		return;
	if (--m->lock_depth == 0)
		pin_dir_unlock(m->dirfd);
}

int map_inner_max_entries(int outer_fd, __u32 key, __u32 *max)
{
	__u32 id;
	int fd, err;

	if (bpf_map_lookup_elem(outer_fd, &key, &id))
		return -errno;
	fd = bpf_map_get_fd_by_id(id);
	if (fd < 0)
		return -errno;
	err = map_max_entries(fd, max);
	close(fd);
	return err;
}

int map_max_entries(int fd, __u32 *max)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	*max = info.max_entries;
	return 0;
}

static int map_dump_iter(int fd, size_t ksz, size_t vsz, char **keys, char **vals,
			 size_t *n, size_t cap)
{
	char *prev = NULL;

	*n = 0;
	for (;;) {
		if (*n == cap) {
			char *k, *v;

			cap = cap ? cap * 2 : 1024;
			k = realloc(*keys, cap * ksz);
			v = realloc(*vals, cap * vsz);
			if (k)
				*keys = k;
			if (v)
				*vals = v;
			if (!k || !v)
				return -ENOMEM;
		}
		prev = *n ? *keys + (*n - 1) * ksz : NULL;
		if (bpf_map_get_next_key(fd, prev, *keys + *n * ksz))
			return errno == ENOENT ? 0 : -errno;
		if (bpf_map_lookup_elem(fd, *keys + *n * ksz, *vals + *n * vsz)) {
			if (errno == ENOENT)
				continue;	/* deleted under us: skip */
			return -errno;
		}
		(*n)++;
	}
}

int map_dump(int fd, size_t ksz, size_t vsz, void **keys_out, void **vals_out, size_t *n)
{
	char *keys = NULL, *vals = NULL;
	__u32 max, batch = 4096, count;
	__u64 in = 0, out = 0;
	bool first = true;
	size_t cap;
	int err;

	*n = 0;
	if ((err = map_max_entries(fd, &max)))
		return err;
	cap = 1024;
	keys = malloc(cap * ksz);
	vals = malloc(cap * vsz);
	if (!keys || !vals) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (;;) {
		if (*n + batch > cap) {
			char *k, *v;

			cap = (*n + batch) * 2;
			k = realloc(keys, cap * ksz);
			v = realloc(vals, cap * vsz);
			if (k)
				keys = k;
			if (v)
				vals = v;
			if (!k || !v) {
				err = -ENOMEM;
				goto cleanup;
			}
		}
		count = batch;
		err = bpf_map_lookup_batch(fd, first ? NULL : &in, &out,
					   keys + *n * ksz, vals + *n * vsz, &count, NULL);
		if (err && errno == ENOSPC && batch < (1u << 20)) {
			batch *= 2;	/* a hash bucket larger than the batch */
			continue;
		}
		if (err && errno != ENOENT) {
			if (first && (errno == EINVAL || errno == ENOTSUP || errno == EOPNOTSUPP)) {
				err = map_dump_iter(fd, ksz, vsz, &keys, &vals, n, cap);
				if (err)
					goto cleanup;
				break;
			}
			err = -errno;
			goto cleanup;
		}
		*n += count;
		if (err)	/* ENOENT: done */
			break;
		in = out;
		first = false;
	}
	err = 0;
cleanup:
	if (err) {
		free(keys);
		free(vals);
		keys = vals = NULL;
		*n = 0;
	}
	*keys_out = keys;
	*vals_out = vals;
	return err;
}

int map_update_many(int fd, const void *keys, const void *vals, size_t ksz, size_t vsz, size_t n)
{
	const char *k = keys, *v = vals;
	size_t done = 0, i;

	while (done < n) {
		__u32 count = n - done > 65536 ? 65536 : n - done;

		if (bpf_map_update_batch(fd, k + done * ksz, v + done * vsz, &count, NULL)) {
			if (errno != EINVAL && errno != ENOTSUP && errno != EOPNOTSUPP)
				return -errno;
			break;	/* no batch support: one at a time */
		}
		done += count;
	}
	for (i = done; i < n; i++)
		if (bpf_map_update_elem(fd, k + i * ksz, v + i * vsz, BPF_ANY))
			return -errno;
	return 0;
}

int map_delete_many(int fd, const void *keys, size_t ksz, size_t n)
{
	const char *k = keys;
	size_t i;

	/* One at a time: a batch delete stops at the first missing key. */
	for (i = 0; i < n; i++)
		if (bpf_map_delete_elem(fd, k + i * ksz) && errno != ENOENT)
			return -errno;
	return 0;
}

static int key_cmp(const void *a, const void *b, void *ksz)
{
	return memcmp(a, b, *(size_t *)ksz);
}

/* Index of key among keys[0..n) sorted by key_cmp, or n. */
static size_t key_index(const char *keys, size_t ksz, size_t n, const void *key)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(keys + mid * ksz, key, ksz);

		if (!c)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return n;
}

/* The deletes of map_set_sync(): keys of have[0..n) not in want[0..nw). */
static int set_delete_stale(int fd, const char *have, size_t n, const char *want, size_t nw,
			    size_t ksz, size_t *removed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const char *k = have + i * ksz;

		if (key_index(want, ksz, nw, k) < nw)
			continue;
		if (bpf_map_delete_elem(fd, k) && errno != ENOENT)
			return -errno;
		(*removed)++;
	}
	return 0;
}

/* Sort n keys of ksz bytes and their values of vsz bytes together, by key. */
static int kv_sort(char *keys, char *vals, size_t ksz, size_t vsz, size_t n)
{
	char *k = NULL, *v = NULL, *rec = malloc(n ? n * (ksz + vsz) : 1);
	size_t i;

	if (!rec)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		memcpy(rec + i * (ksz + vsz), keys + i * ksz, ksz);
		memcpy(rec + i * (ksz + vsz) + ksz, vals + i * vsz, vsz);
	}
	/* The key leads each record: key_cmp orders records by it. */
	qsort_r(rec, n, ksz + vsz, key_cmp, &ksz);
	for (i = 0; i < n; i++) {
		k = keys + i * ksz;
		v = vals + i * vsz;
		memcpy(k, rec + i * (ksz + vsz), ksz);
		memcpy(v, rec + i * (ksz + vsz) + ksz, vsz);
	}
	free(rec);
	return 0;
}

/* map_kv_sync(), and map_set_sync() with keep: a key already there is left
 * as it is, whatever its value. */
static int kv_sync(int fd, const void *keys, const void *vals, size_t ksz, size_t vsz, size_t n,
		   bool keep, size_t *written, size_t *removed)
{
	char *hk = NULL, *hv = NULL, *wk = NULL, *wv = NULL;
	size_t have = 0, i;
	bool deleted = false;
	int err;

	*written = *removed = 0;
	if ((err = map_dump(fd, ksz, vsz, (void **)&hk, (void **)&hv, &have)))
		return err;
	wk = malloc(n ? n * ksz : 1);
	wv = malloc(n ? n * vsz : 1);
	if (!wk || !wv) {
		err = -ENOMEM;
		goto cleanup;
	}
	if (n) {	/* an empty set may come as NULL: nothing to copy */
		memcpy(wk, keys, n * ksz);
		memcpy(wv, vals, n * vsz);
	}
	if ((err = kv_sort(wk, wv, ksz, vsz, n)) || (err = kv_sort(hk, hv, ksz, vsz, have)))
		goto cleanup;
	/* Every wanted entry is in before any other goes: one in both sets is
	 * never missing, and a reader never sees fewer than the old set's
	 * survivors plus what was written so far. Unless the map cannot hold
	 * the old and the new set together: then the stale keys go first (the
	 * survivors still stay) and the writes resume. */
	for (i = 0; i < n; i++) {
		const char *k = wk + i * ksz, *v = wv + i * vsz;
		size_t at = key_index(hk, ksz, have, k);

		if (i && !memcmp(k, k - ksz, ksz))
			continue;	/* a key wanted twice: once */
		if (at < have && (keep || !memcmp(hv + at * vsz, v, vsz)))
			continue;
		if (bpf_map_update_elem(fd, k, v, BPF_ANY)) {
			err = -errno;
			if (err != -E2BIG || deleted)
				goto cleanup;
			if ((err = set_delete_stale(fd, hk, have, wk, n, ksz, removed)))
				goto cleanup;
			deleted = true;
			i--;		/* this entry again */
			continue;
		}
		(*written)++;
	}
	if (!deleted)
		err = set_delete_stale(fd, hk, have, wk, n, ksz, removed);
cleanup:
	free(hk);
	free(hv);
	free(wk);
	free(wv);
	return err;
}

int map_set_sync(int fd, const void *want, size_t ksz, size_t n, const void *val, size_t vsz,
		 size_t *added, size_t *removed)
{
	char *vals = malloc(n ? n * vsz : 1);
	size_t i;
	int err;

	if (!vals)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		memcpy(vals + i * vsz, val, vsz);
	err = kv_sync(fd, want, vals, ksz, vsz, n, true, added, removed);
	free(vals);
	return err;
}

int map_kv_sync(int fd, const void *keys, const void *vals, size_t ksz, size_t vsz, size_t n,
		size_t *written, size_t *removed)
{
	return kv_sync(fd, keys, vals, ksz, vsz, n, false, written, removed);
}

int percpu_sum(int fd, __u32 key, __u64 *sum)
{
	int ncpu = libbpf_num_possible_cpus(), i;
	__u64 *vals;

	*sum = 0;
	if (ncpu <= 0)
		return -EINVAL;
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &key, vals)) {
		int err = -errno;

		free(vals);
		return err;
	}
	for (i = 0; i < ncpu; i++)
		*sum += vals[i];
	free(vals);
	return 0;
}

int map_count(int fd, size_t ksz, size_t *n)
{
	char k[256], prev[256];
	bool first = true;

	*n = 0;
	if (ksz > sizeof(k))
		return -EINVAL;
	while (!bpf_map_get_next_key(fd, first ? NULL : prev, k)) {
		memcpy(prev, k, ksz);
		first = false;
		(*n)++;
	}
	return errno == ENOENT ? 0 : -errno;
}

int status_read(const struct ferry_maps *m, struct ferry_status *st)
{
	__u32 k = 0;

	return bpf_map_lookup_elem(m->status, &k, st) ? -errno : 0;
}

int status_write(const struct ferry_maps *m, const struct ferry_status *st)
{
	__u32 k = 0;

	return bpf_map_update_elem(m->status, &k, st, BPF_ANY) ? -errno : 0;
}

int cgroup2_mount(char *buf, size_t len)
{
	struct mntent *e;
	FILE *f = setmntent("/proc/mounts", "r");
	int err = -ENOENT;

	if (!f)
		return -errno;
	while ((e = getmntent(f))) {
		if (!strcmp(e->mnt_type, "cgroup2")) {
			snprintf(buf, len, "%s", e->mnt_dir);
			err = 0;
			break;
		}
	}
	endmntent(f);
	return err;
}

static int mkdir_p(const char *path)
{
	char buf[512], *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

int bpffs_prepare(const char *dir)
{
	struct statfs sfs;
	int err;

	/* Below /sys/fs/bpf: mount bpffs there first if nobody has. */
	if (!strncmp(dir, "/sys/fs/bpf/", 12) &&
	    (statfs("/sys/fs/bpf", &sfs) || sfs.f_type != BPF_FS_MAGIC) &&
	    mount("bpffs", "/sys/fs/bpf", "bpf", 0, "mode=0700"))
		return -errno;
	if ((err = mkdir_p(dir)))
		return err;
	if (statfs(dir, &sfs))
		return -errno;
	return sfs.f_type == BPF_FS_MAGIC ? 0 : -ENOTSUP;
}

int array_mmap(int fd, size_t vsz, bool writable, void **p, __u32 *n)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	void *a;

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (info.type != BPF_MAP_TYPE_ARRAY || info.value_size != vsz ||
	    !(info.map_flags & BPF_F_MMAPABLE))
		return -EPROTO;
	a = mmap(NULL, (size_t)info.max_entries * vsz, PROT_READ | (writable ? PROT_WRITE : 0),
		 MAP_SHARED, fd, 0);
	if (a == MAP_FAILED)
		return -errno;
	*p = a;
	*n = info.max_entries;
	return 0;
}

void array_munmap(const void *p, size_t vsz, __u32 n)
{
	if (p)
		munmap((void *)p, (size_t)n * vsz);
}

int cpu_mask_rows(const char *mask)
{
	const char *p;
	char *end;
	long hi = -1, v;

	/* "0-3,5,8-11": ids and ranges; the largest number is the highest id. */
	for (p = mask; *p; p = end) {
		if (*p < '0' || *p > '9') {
			end = (char *)p + 1;
			continue;
		}
		v = strtol(p, &end, 10);
		hi = v > hi ? v : hi;
	}
	return hi >= 0 && hi < 65536 ? (int)hi + 1 : -EINVAL;
}

int ferry_cpu_rows(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
	char buf[4096] = "";
	int n;

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	n = cpu_mask_rows(buf);
	return n > 0 ? n : libbpf_num_possible_cpus();
}

int ferry_xgeo_at(const struct bpf_insn *in, size_t n, size_t i)
{
	__u32 hi;

	if (i + 1 >= n || in[i].code != (BPF_LD | BPF_IMM | BPF_DW) || in[i].src_reg)
		return -1;
	hi = (__u32)in[i + 1].imm;
	if ((hi & ~0xffU) != FERRY_XGEO_TAG || (hi & ~FERRY_XGEO_SET & 0xff) >= FERRY_XGEO_MAX)
		return -1;
	return (int)(hi & 0xff);
}

/*
 * Write val[its index] into every geometry marker of every program of obj
 * (include/ferry/xdp.h) and mark it set. libbpf documents
 * bpf_program__set_insns() for a prepare-load callback; called between open
 * and load with the count unchanged and only plain constants rewritten, it
 * replaces the array that relocations, line info and the subprograms
 * appended at load all address by index, so none of them moves (the tests
 * read the loaded program back). Subprograms (.text) are not the loader's
 * to see, so markers live in entry programs only. -EINVAL if a value want
 * names has no marker.
 */
static int xgeo_patch(struct bpf_object *obj, const __u32 *val, unsigned int want)
{
	struct bpf_program *prog;
	unsigned int seen = 0;

	bpf_object__for_each_program(prog, obj) {
		size_t n = bpf_program__insn_cnt(prog), i;
		struct bpf_insn *in;
		int err, m;

		in = malloc(n * sizeof(*in));
		if (!in)
			return -ENOMEM;
		memcpy(in, bpf_program__insns(prog), n * sizeof(*in));
		for (i = 0; i + 1 < n; i++) {
			if ((m = ferry_xgeo_at(in, n, i)) < 0)
				continue;
			m &= ~FERRY_XGEO_SET;
			in[i].imm = (__s32)val[m];
			in[i + 1].imm = (__s32)(FERRY_XGEO_TAG | FERRY_XGEO_SET | m);
			seen |= 1U << m;
			i++;
		}
		err = bpf_program__set_insns(prog, in, n);
		free(in);
		if (err)
			return err;
	}
	return (seen & want) == want ? 0 : -EINVAL;
}

int ferry_xdp_size(struct bpf_object *obj, __u32 services, __u32 backends)
{
	int ncpu = ferry_cpu_rows(), err, i;
	const struct {
		const char	*name;
		__u64		cols;
	} t[] = {
		{ FERRY_MAP_XSTAT, 1 },
		{ FERRY_MAP_XVIP, (__u64)services + 1 },
		{ FERRY_MAP_XBE, (__u64)backends + 1 },
		{ "ferry_xnh", FERRY_XNH_SLOTS },
	};
	/* What the program needs, if it has the map: a table's sets are its
	 * size as the caller left it (0 here), a stride is the columns. */
	const struct {
		const char	*map;
		__u32		val;
	} g[FERRY_XGEO_MAX] = {
		[FERRY_XGEO_FLOW_SETS] = { FERRY_MAP_XFLOW, 0 },
		[FERRY_XGEO_XSVC_SETS] = { FERRY_MAP_XSVC, 0 },
		[FERRY_XGEO_XVIP_STRIDE] = { FERRY_MAP_XVIP, services + 1 },
		[FERRY_XGEO_XBE_STRIDE] = { FERRY_MAP_XBE, backends + 1 },
	};
	__u32 val[FERRY_XGEO_MAX] = {};
	unsigned int want = 0;

	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	for (i = 0; i < (int)(sizeof(t) / sizeof(t[0])); i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(obj, t[i].name);

		if (!m)
			continue;
		if (t[i].cols * ncpu > UINT32_MAX)
			return -E2BIG;
		if ((err = bpf_map__set_max_entries(m, (__u32)(t[i].cols * ncpu))))
			return err;
	}
	for (i = 0; i < FERRY_XGEO_MAX; i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(obj, g[i].map);

		if (!m)
			continue;
		val[i] = g[i].val ? g[i].val : bpf_map__max_entries(m);
		want |= 1U << i;
	}
	return xgeo_patch(obj, val, want);
}

int xstat_sum(int fd, __u64 *sum)
{
	struct ferry_xstat_row row;
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), cpu;
	int i;

	memset(sum, 0, FERRY_XSTAT_MAX * sizeof(*sum));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (info.type != BPF_MAP_TYPE_ARRAY || info.value_size != sizeof(row))
		return -EPROTO;
	for (cpu = 0; cpu < info.max_entries; cpu++) {
		if (bpf_map_lookup_elem(fd, &cpu, &row))
			return -errno;
		for (i = 0; i < FERRY_XSTAT_MAX; i++)
			sum[i] += row.v[i];
	}
	return 0;
}

int xcnt_open(int fd, struct xcnt_view *v)
{
	int ncpu = ferry_cpu_rows(), err;
	void *a;

	memset(v, 0, sizeof(*v));
	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	if ((err = array_mmap(fd, sizeof(struct ferry_xcnt), false, &a, &v->n)))
		return err;
	v->a = a;
	v->ncpu = ncpu;
	v->stride = v->n / ncpu;
	if (v->n % ncpu) {
		/* Not sized by ferry_xdp_size on this machine: no layout to trust. */
		xcnt_close(v);
		return -EPROTO;
	}
	return 0;
}

void xcnt_get(const struct xcnt_view *v, __u32 id, struct ferry_xcnt *out)
{
	__u32 c;

	memset(out, 0, sizeof(*out));
	if (!v->a || id >= v->stride)
		return;
	for (c = 0; c < v->ncpu; c++) {
		out->packets += v->a[(size_t)c * v->stride + id].packets;
		out->bytes += v->a[(size_t)c * v->stride + id].bytes;
	}
}

void xcnt_close(struct xcnt_view *v)
{
	array_munmap(v->a, sizeof(struct ferry_xcnt), v->n);
	memset(v, 0, sizeof(*v));
}

int xcnt_reset(int fd, const __u32 *ids, size_t nids)
{
	struct ferry_xcnt zero = {};
	int ncpu = ferry_cpu_rows(), c, err;
	__u32 n = 0, stride, key;
	size_t i;

	if (!nids)
		return 0;
	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	if ((err = map_max_entries(fd, &n)))
		return err;
	stride = n / ncpu;
	if (n % ncpu)
		return 0;	/* not laid out for this machine: nothing counted */
	for (i = 0; i < nids; i++) {
		if (ids[i] >= stride)
			continue;	/* no column: nothing counted */
		for (c = 0; c < ncpu; c++) {
			key = (__u32)c * stride + ids[i];
			if (bpf_map_update_elem(fd, &key, &zero, BPF_ANY))
				return -errno;
		}
	}
	return 0;
}

int xdp_counters_open(const char *dir, struct xdp_counters *x)
{
	int fst, fvip = -1, fbe = -1, err;

	memset(x, 0, sizeof(*x));
	if (open_pin(dir, FERRY_MAP_XSTAT, &fst))
		return -ENOENT;
	err = xstat_sum(fst, x->stat);
	close(fst);
	if (!err && !open_pin(dir, FERRY_MAP_XVIP, &fvip) && !open_pin(dir, FERRY_MAP_XBE, &fbe) &&
	    !(err = xcnt_open(fvip, &x->vip)))
		err = xcnt_open(fbe, &x->be);
	if (fvip >= 0)
		close(fvip);
	if (fbe >= 0)
		close(fbe);
	return err;
}

void xdp_counters_close(struct xdp_counters *x)
{
	xcnt_close(&x->vip);
	xcnt_close(&x->be);
}

int xvipf_count(int fd, __u64 *open_bits)
{
	struct ferry_xvipf *f = malloc(sizeof(*f));
	__u32 zero = 0, i;
	int err = 0;

	*open_bits = 0;
	if (!f)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &zero, f))
		err = -errno;
	for (i = 0; !err && i < FERRY_XVIPF_BITS / 64; i++)
		*open_bits += 64 - __builtin_popcountll(f->w[i]);
	free(f);
	return err;
}

int xvipf_reset(int fd)
{
	struct ferry_xvipf *f = calloc(1, sizeof(*f));
	__u32 zero = 0;
	int err = 0;

	if (!f)
		return -ENOMEM;
	if (bpf_map_update_elem(fd, &zero, f, BPF_ANY))
		err = -errno;
	free(f);
	return err;
}

int xsvc_count(int fd, __u64 *used, __u64 *capacity, __u64 *sets_full)
{
	const struct ferry_xsvc_set *sets;
	void *p;
	__u32 n, i;
	int k, err;

	if ((err = array_mmap(fd, sizeof(*sets), false, &p, &n)))
		return err;
	sets = p;
	*used = *sets_full = 0;
	for (i = 0; i < n; i++) {
		for (k = 0; k < FERRY_XSVC_WAYS; k++)
			*used += !!sets[i].way[k].svc_id;
		*sets_full += !!(sets[i].way[0].flags & FERRY_XSVC_F_MORE);
	}
	*capacity = (__u64)n * FERRY_XSVC_WAYS;
	array_munmap(sets, sizeof(*sets), n);
	return 0;
}

int xflow_count(int fd, __u64 *used, __u64 *capacity)
{
	const struct ferry_xflow_set *sets;
	void *p;
	__u32 n, i;
	int k, err;

	if ((err = array_mmap(fd, sizeof(*sets), false, &p, &n)))
		return err;
	sets = p;
	*used = 0;
	for (i = 0; i < n; i++)
		for (k = 0; k < FERRY_XFLOW_WAYS; k++)
			*used += !!(__u32)sets[i].way[k].id;
	*capacity = (__u64)n * FERRY_XFLOW_WAYS;
	array_munmap(sets, sizeof(*sets), n);
	return 0;
}

int xcfg_bump_epoch(int fd)
{
	struct ferry_xcfg c;
	__u32 zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, &c))
		return -errno;
	c.be_epoch++;
	/* In place: every other field is written back as it was. */
	return bpf_map_update_elem(fd, &zero, &c, BPF_ANY) ? -errno : 0;
}
