/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The benchmark's model of the mature peer, Katran (facebookincubator/katran,
 * katran/lib/bpf/balancer_*.h): the maps' keys and values and the constants
 * of its IPv4/TCP forwarding path, for bench_peer in bpf/xdp_bench.bpf.c and
 * for `ferry-bench xdp-ns`, which fills the maps and measures the program
 * beside ferry's in the same run. Not ferry's ABI: nothing else reads these.
 *
 * Layouts and sizes are Katran's (the sizes are what its maps hash and
 * compare); the names say the role, Katran's name is beside each.
 */
#ifndef FERRY_BENCH_PEER_H
#define FERRY_BENCH_PEER_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* balancer_consts.h defaults. */
#define PEER_RING_SIZE		65537		/* RING_SIZE: ch_rings entries per VIP */
#define PEER_MAX_VIPS		512		/* MAX_VIPS */
#define PEER_MAX_REALS		4096		/* MAX_REALS */
#define PEER_MAX_CPUS		128		/* MAX_SUPPORTED_CPUS: lru_mapping */
#define PEER_CTL_SIZE		16		/* CTL_MAP_SIZE */
#define PEER_DEFAULT_LRU	1000		/* DEFAULT_LRU_SIZE: fallback_cache */
#define PEER_MAX_PCKT_SIZE	1514		/* MAX_PCKT_SIZE */
#define PEER_IPIP_V4_PREFIX	4268		/* IPIP_V4_PREFIX: 172.16/16, network order */
#define PEER_JHASH_SEED		(PEER_MAX_VIPS * PEER_RING_SIZE)	/* INIT_JHASH_SEED */
/*
 * MAX_CONN_RATE: above this many new flows per second and CPU, Katran stops
 * recording them in its LRU (is_under_flood()). Its default, 125,000, is
 * below the rate at which the benchmark sends SYNs, so most of them would
 * skip the insert ferry always pays; the model is built with the limit out
 * of reach, as Katran allows (-DMAX_CONN_RATE), and keeps the check's cost.
 */
#define PEER_MAX_CONN_RATE	4000000000U

/* Slots of the stats map past the per-VIP ones (LRU_CNTRS ...). */
enum peer_stat {
	PEER_STAT_LRU		= 0,	/* v1 packets, v2 LRU misses */
	PEER_STAT_LRU_MISS	= 1,	/* v1 TCP SYN misses, v2 other TCP misses */
	PEER_STAT_CONN_RATE	= 2,	/* v1 new flows this second, v2 its start (ns) */
	PEER_STAT_FALLBACK_LRU	= 3,	/* v1 packets that found no LRU for their CPU */
	PEER_STAT_SLOTS		= PEER_MAX_VIPS * 2,	/* STATS_MAP_SIZE */
};

/* vip_meta flags Katran's path tests; the model's VIP sets none. */
#define PEER_F_HASH_NO_SRC_PORT	(1 << 0)
#define PEER_F_LRU_BYPASS	(1 << 1)
#define PEER_F_HASH_DPORT_ONLY	(1 << 3)

/* flow_key: the LRU's key (40 bytes with its padding, zeroed). */
struct peer_flow {
	__be32	src[4];		/* IPv4 in [0] */
	__be32	dst[4];
	union {
		__u32	ports;
		__u16	port16[2];	/* source, destination (network order) */
	};
	__u8	proto;
};

/* real_pos_lru: where an LRU entry sends its flow. */
struct peer_flow_dst {
	__u32	pos;		/* index in the reals map */
	__u64	atime;		/* UDP only */
};

/* vip_definition -> vip_meta: the VIP map. */
struct peer_vip {
	__be32	addr[4];
	__be16	port;		/* 0: any port */
	__u8	proto;
};

struct peer_vip_meta {
	__u32	flags;
	__u32	vip_num;	/* ring and stats index */
};

/* real_definition: a backend (reals[0] is never used, as in Katran). */
struct peer_real {
	__be32	addr[4];
	__u8	flags;
};

/* ctl_value: ctl_array[0] is the default router's MAC. */
struct peer_ctl {
	union {
		__u64	value;
		__u8	mac[6];
	};
};

/* lb_stats */
struct peer_stats {
	__u64	v1;
	__u64	v2;
};

#endif /* FERRY_BENCH_PEER_H */
