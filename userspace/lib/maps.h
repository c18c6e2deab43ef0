/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Pinned-map access shared by ferryd and ferryctl. */
#ifndef FERRY_MAPS_H
#define FERRY_MAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <ferry/abi.h>
#include <ferry/xdp.h>

#define FERRY_DEF_BPFFS	"/sys/fs/bpf/ferry"

struct ferry_maps {
	int	svc, slot, be, bestat, mag, rev, stats, status, name;
	/* XDP rings, config, VIP index and filter: -1 when the XDP load
	 * balancer was never loaded (or, the filter, by an older version). */
	int	xring, xcfg, xsvc, xvipf;
	/* Its per-VIP and per-backend packet counters (-1 likewise). */
	int	xvip, xbe;
	/* The decap's maps (struct decap_maps): -1 when the decap was never
	 * loaded here. */
	int	xdcap, xdvip, xdaddr, xdpair;
	/* The pin directory itself, whose lock writers take (maps_lock()),
	 * -1 when not opened from a directory; lock_depth: maps_lock() calls
	 * not yet undone. */
	int	dirfd, lock_depth;
	__u32	max_services, max_backends;
};

/* Open every pinned map under dir. -ENOENT (and errno) when ferry is not
 * loaded there; which names the first map that was missing. */
int ferry_maps_open(const char *dir, struct ferry_maps *m, const char **which);
/* No map open: every descriptor -1, what ferry_maps_close() may be given. */
void ferry_maps_init(struct ferry_maps *m);
void ferry_maps_close(struct ferry_maps *m);
/* Path of a pinned object: dir/name. */
void ferry_pin_path(char *buf, size_t len, const char *dir, const char *name);

/*
 * One writer at a time per pin directory: a writer (ferryd's registry sync
 * and health verdicts, ferryctl's edits, the bench) reads the maps, plans
 * (new service and backend ids are picked from what it read) and writes,
 * all under the lock, so no other writer's ids or entries change in
 * between. The lock is flock(LOCK_EX) on m->dirfd and belongs to that open
 * directory: calls nest on one struct ferry_maps (the outermost takes and
 * drops it, so a function that locks may call another that does), while two
 * opens of the directory exclude each other, in one process or two.
 * timeout_ms < 0 waits as long as it takes, else -EAGAIN after that long.
 * Nothing to lock (0) when m has no dirfd (maps not opened from a pin dir).
 */
int maps_lock(struct ferry_maps *m, int timeout_ms);
void maps_unlock(struct ferry_maps *m);
/* The same lock on a pin directory opened on its own (ferryd's load,
 * before its maps are opened); not nesting: one lock, one unlock. */
int pin_dir_lock(int dirfd, int timeout_ms);
void pin_dir_unlock(int dirfd);

/* Whole-map read into malloc'd arrays (batch lookups, falls back to
 * iteration). *n is the number of entries. */
int map_dump(int fd, size_t ksz, size_t vsz, void **keys, void **vals, size_t *n);
/* Batch writes and deletes; fall back to one call per element. */
int map_update_many(int fd, const void *keys, const void *vals, size_t ksz, size_t vsz, size_t n);
int map_delete_many(int fd, const void *keys, size_t ksz, size_t n);
/*
 * Make the hash map fd hold exactly keys[i] -> vals[i] for i in [0, n) (a
 * key wanted twice is written once): missing keys and keys whose value
 * differs are written first, then the others deleted, so a key in both the
 * old and the new set is there all along. When the map cannot hold the old
 * and the new set together (E2BIG), the others are deleted first and the
 * writes resume (a key in both still stays). *written / *removed: writes
 * done. On error the map holds the keys in both sets plus some of the new
 * ones, and the old ones not yet deleted.
 */
int map_kv_sync(int fd, const void *keys, const void *vals, size_t ksz, size_t vsz, size_t n,
		size_t *written, size_t *removed);
/* map_kv_sync() of a set: the keys want[0..n), each added with the value
 * val; a key already there keeps its value. */
int map_set_sync(int fd, const void *want, size_t ksz, size_t n, const void *val, size_t vsz,
		 size_t *added, size_t *removed);
/* Sum a per-CPU __u64 array slot over all possible CPUs. */
int percpu_sum(int fd, __u32 key, __u64 *sum);
int map_max_entries(int fd, __u32 *max);
/* max_entries of the inner map stored at key of a map-in-map; -ENOENT if none. */
int map_inner_max_entries(int outer_fd, __u32 key, __u32 *max);
int map_count(int fd, size_t ksz, size_t *n);

/* An mmapable BPF array (BPF_F_MMAPABLE) mapped whole: *n elements of vsz
 * bytes; -EPROTO when it is not one, or its values are not vsz bytes. */
int array_mmap(int fd, size_t vsz, bool writable, void **p, __u32 *n);
void array_munmap(const void *p, size_t vsz, __u32 n);

/*
 * The XDP counters, per CPU in plain arrays (include/ferry/xdp.h).
 * ferry_xdp_size() sizes them in an opened, not yet loaded object, with the
 * private next-hop cache: rows for every possible CPU, columns for services
 * + 1 VIPs and backends + 1 backends. Maps the object lacks are skipped (the
 * decap has only the outcome counters). It then writes the LB's geometry
 * into its code (enum ferry_xgeo): the strides, and the sets of the flow
 * table and of the VIP index as sized so far, so size those first (or call
 * it again after). -EINVAL if the program lacks a geometry marker it needs.
 */
struct bpf_object;
/* Rows of those arrays: the highest possible CPU id + 1 (CPU ids index them,
 * and the possible mask may have holes). */
int ferry_cpu_rows(void);
/* The same from a CPU list as the kernel prints it ("0-3,8-11": 12); -EINVAL
 * if it names no CPU. */
int cpu_mask_rows(const char *mask);
int ferry_xdp_size(struct bpf_object *obj, __u32 services, __u32 backends);
struct bpf_insn;
/* The geometry marker at in[i] of n instructions: its index, | FERRY_XGEO_SET
 * once written; -1 if in[i] is none. */
int ferry_xgeo_at(const struct bpf_insn *in, size_t n, size_t i);
/* ferry_xstat_v2 summed over CPUs into sum[FERRY_XSTAT_MAX]. */
int xstat_sum(int fd, __u64 *sum);
/* ferry_xcfg_v1's be_epoch + 1 (the XDP LB's next-hop cache goes stale). */
int xcfg_bump_epoch(int fd);
/* A CPU-major counter array (ferry_xvip_v2, ferry_xbe_v2) mapped for reading;
 * xcnt_get sums id's column (zero for an id beyond it). */
struct xcnt_view {
	const struct ferry_xcnt	*a;
	__u32			n, stride, ncpu;
};
int xcnt_open(int fd, struct xcnt_view *v);
void xcnt_get(const struct xcnt_view *v, __u32 id, struct ferry_xcnt *out);
void xcnt_close(struct xcnt_view *v);
/* Zero the columns of ids on every CPU's row (a reused id starts from
 * nothing); the map's layout is read once for all of them. */
int xcnt_reset(int fd, const __u32 *ids, size_t nids);

/*
 * The XDP counters pinned under dir: the outcomes summed over CPUs, and
 * the per-VIP and per-backend arrays mapped (left empty on a decap-only
 * node, which pins the outcomes alone). -ENOENT when no XDP program was
 * ever loaded there; xdp_counters_close() after any return.
 */
struct xdp_counters {
	__u64			stat[FERRY_XSTAT_MAX];
	struct xcnt_view	vip, be;
};
int xdp_counters_open(const char *dir, struct xdp_counters *x);
void xdp_counters_close(struct xdp_counters *x);

/* The XDP flow table (ferry_xflow_v3, an mmapable array of sets): flows
 * recorded in it and its capacity (ways). */
int xflow_count(int fd, __u64 *used, __u64 *capacity);

/* The XDP VIP index (ferry_xsvc_v1): VIPs in it, its capacity (ways), and
 * sets with a VIP left out (full; misses there ask ferry_svc_v1). */
int xsvc_count(int fd, __u64 *used, __u64 *capacity, __u64 *sets_full);

/* The XDP VIP filter (ferry_xvipf_v1): its bits that let packets through to
 * the index (all of them: not built yet). */
int xvipf_count(int fd, __u64 *open_bits);
/* Set it to all zero: every packet asks the index until xsvc_sync() runs. */
int xvipf_reset(int fd);

/* Read or write the daemon status record. */
int status_read(const struct ferry_maps *m, struct ferry_status *st);
int status_write(const struct ferry_maps *m, const struct ferry_status *st);

/* The cgroup v2 mount point from /proc/mounts (never assumed). */
int cgroup2_mount(char *buf, size_t len);
/* Mount bpffs on dir's mount point if dir is not on one yet, then mkdir -p dir. */
int bpffs_prepare(const char *dir);

#endif /* FERRY_MAPS_H */
