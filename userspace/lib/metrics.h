/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Metrics: a snapshot of every counter ferry keeps (per-CPU outcome counters,
 * per-backend counters and circuit state, map fill, daemon status), read
 * from the pinned maps in one pass, and its rendering in the Prometheus text
 * exposition format 0.0.4. ferryd serves the text on /metrics; ferryctl stats
 * prints the same snapshot as a table or JSON without the daemon.
 *
 * Families whose maps are not pinned (a feature that is not loaded) are left
 * out, never reported as errors. docs/metrics.md lists every family.
 */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <ferry/abi.h>
#include <ferry/xdp.h>

#include "state.h"

struct ferry_maps;

/* Per-backend series cap: the backends past it are summed into one series
 * set labelled service/vip/backend="__overflow__". */
#define FERRY_METRICS_DEF_MAX_BACKEND_SERIES	10000
#define FERRY_METRICS_OVERFLOW			"__overflow__"

/* A growable text buffer; after a failed allocation oom stays set and
 * further appends are dropped, so callers check once at the end. */
struct mbuf {
	char	*p;
	size_t	len, cap;
	bool	oom;
};

void mbuf_free(struct mbuf *b);
void mbuf_reset(struct mbuf *b);
bool mbuf_reserve(struct mbuf *b, size_t more);
void mbuf_add(struct mbuf *b, const void *p, size_t n);
void mbuf_puts(struct mbuf *b, const char *s);
void mbuf_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* gzip (RFC 1952) of in into out (replacing it): 0 or -errno. */
int mbuf_gzip(const void *in, size_t len, struct mbuf *out, int level);

/* One pinned map and its fill. */
struct mx_map {
	char	name[64];		/* pin name */
	__u32	type;			/* enum bpf_map_type */
	__u32	max_entries;
	__u64	entries;
	bool	has_entries;		/* false: not countable (sockmap, ringbuf...) */
};

struct ferry_snapshot {
	__u64	stats[FERRY_STAT_MAX];	/* summed over CPUs */
	bool	has_stats;
	struct ferry_status status;
	bool	has_status;
	struct fstate st;		/* services in key order, backends in slot order */
	bool	has_state;
	/* One per backend of st in the same order (services, then slots); zeroed
	 * for a backend without a ferry_bestat_v2 entry (never connected). */
	struct ferry_bestat *bestat;
	/* The XDP load balancer, when its maps are pinned (ferryd --xdp-iface). */
	bool	has_xdp;
	__u64	xstats[FERRY_XSTAT_MAX];	/* summed over CPUs */
	struct ferry_xcnt *xvip;	/* per service of st; zero unless FERRY_SVC_F_XDP */
	struct ferry_xcnt *xbe;		/* per backend, in bestat order; idem */
	struct mx_map *maps;
	size_t	nmaps;
	__u64	collect_ns;		/* time the collection took */
};

/* Read everything from the maps of m (and the pins under bpffs, for map
 * fill; NULL skips that). A map that cannot be read leaves its part out
 * (has_* false); only allocation failures are errors (-ENOMEM). */
int snapshot_collect(const struct ferry_maps *m, const char *bpffs, struct ferry_snapshot *s);
void snapshot_free(struct ferry_snapshot *s);
/* Entries of a map when it can be counted cheaply: 0 or -errno. */
int map_fill(int fd, __u32 *type, __u32 *max_entries, __u64 *entries, bool *has_entries);

struct metrics_opts {
	__u32	max_backend_series;	/* backends with their own series */
	const char *version;		/* ferry_build_info{version} */
};

/* Append the exposition text of s to out: 0, or -ENOMEM. */
int metrics_render(const struct ferry_snapshot *s, const struct metrics_opts *o, struct mbuf *out);
/* Label value escaping of the text format (\\, \", \n) into out. */
void metrics_escape(struct mbuf *out, const char *s);

/* Sums over one service's backends (its current ones: a removed backend's
 * counts leave the sums with it). */
struct mx_svc_sum {
	__u64	opened, success, failed, active, sent, received;
	__u64	circuit_open, unhealthy, usable;
	__u64	xpackets, xbytes;	/* XDP, filled by the renderer for its overflow series */
};

/* Add backend (be, st) to sum; usable means it may take new connections:
 * active, weight > 0, not unhealthy, circuit not open. */
void mx_svc_sum_add(struct mx_svc_sum *sum, const struct be_state *be, const struct ferry_bestat *st);

/* Display label of a service: its name, or its VIP when it has none. */
const char *snapshot_svc_label(const struct svc_state *s, char *buf, size_t len);

#endif /* FERRY_METRICS_H */
