/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ABI of the XDP load balancer (bpf/xdp_lb.bpf.c) and of its backend-side
 * decapsulation (bpf/xdp_decap.bpf.c): map names, key/value layouts, counter
 * slots. Kept apart from abi.h because only the XDP path and its tools use
 * it; the service, slot and backend maps it reads are the ones in abi.h.
 *
 * A packet for a service with FERRY_SVC_F_XDP is steered to a backend by the
 * service's maglev ring (ferry_xring_v1[svc id], built by userspace), kept
 * there by an LRU flow table with per-CPU LRU lists (ferry_xflow_v1), encapsulated in IPIP /
 * IPv6-in-IPv6 and sent back out; the backend strips the outer header and
 * answers the client directly (DSR).
 */
#ifndef FERRY_XDP_H
#define FERRY_XDP_H

#include <ferry/abi.h>

/* Ring size (prime) every LB node must agree on; --xdp-ring-size. */
#define FERRY_XDP_DEF_RING_M	65537
#define FERRY_XDP_MAX_RING_M	1048573
/* Flow table entries (all CPUs together); --xdp-flows. */
#define FERRY_XDP_DEF_FLOWS	262144
/* Ring entries tried after the hashed one when a backend may not take new flows. */
#define FERRY_XDP_RING_TRIES	16

#define FERRY_MAP_XRING		"ferry_xring_v1"	/* svc id -> ring of M backend ids */
#define FERRY_MAP_XFLOW		"ferry_xflow_v1"	/* flow -> backend (LRU, per-CPU lists) */
#define FERRY_MAP_XCFG		"ferry_xcfg_v1"		/* one struct ferry_xcfg */
#define FERRY_MAP_XSTAT		"ferry_xstat_v1"	/* per-CPU counters, enum ferry_xstat */
#define FERRY_MAP_XVIP		"ferry_xvip_v1"		/* per-CPU svc id -> ferry_xcnt */
#define FERRY_MAP_XBE		"ferry_xbe_v1"		/* per-CPU backend id -> ferry_xcnt */
#define FERRY_MAP_XDCAP		"ferry_xdcap_v1"	/* decap: local outer addresses */

/* ferry_xcfg.flags */
#define FERRY_XCFG_F_GW		(1U << 0)	/* gw_mac is set: fallback next hop */

/*
 * Load-balancer configuration, ferry_xcfg_v1[0], written by ferryd before it
 * attaches. ring_size 0 means "not configured": every packet passes.
 * Outer source: the prefix with its host bits (~mask) taken from the flow
 * hash, so receivers that hash the outer header spread flows over queues.
 */
struct ferry_xcfg {
	__u32	ring_size;	/* M of every ring (prime) */
	__u32	flags;		/* FERRY_XCFG_F_* */
	__u8	gw_mac[6];
	__u16	gw_mtu;		/* MTU assumed via the gateway; 0: 1500 */
	__u32	src4;		/* outer IPv4 source prefix, network order */
	__u32	src4_mask;	/* prefix mask, network order */
	__u32	src6[4];	/* outer IPv6 source prefix, network order */
	__u32	src6_mask;	/* mask of the last 32 bits, network order */
	__u32	pad2;
};

/*
 * A flow as the client sent it: client address/port, VIP/port. IPv4
 * addresses in [0], the rest zero. Ports in network order.
 */
struct ferry_xflow_key {
	__u32	src[4];
	__u32	dst[4];
	__u16	sport;
	__u16	dport;
	__u8	proto;
	__u8	family;
	__u16	pad;
};

/* Value of the flow table (LRU, per-CPU LRU lists, shared values). */
struct ferry_xflow {
	__u32	backend_id;
	__u32	svc_id;
	__u32	hash;		/* ferry_xflow_hash() of the key: not recomputed on a hit */
	__u32	pad;
};

/* Per-CPU packet and byte counters (per VIP, per backend). */
struct ferry_xcnt {
	__u64	packets;
	__u64	bytes;
};

/* Decap: an outer destination address this node accepts tunnels for. */
struct ferry_xdcap_key {
	__u32	addr[4];
	__u8	family;
	__u8	pad[3];
};

/* Per-CPU counters: ferry_xstat_v1[FERRY_XSTAT_*]. */
enum ferry_xstat {
	FERRY_XSTAT_PASS_NOT_IP = 0,	/* not IPv4/IPv6 */
	FERRY_XSTAT_PASS_NOT_VIP,	/* no XDP service for (dst, port, proto) */
	FERRY_XSTAT_PASS_FRAG,		/* IP fragment: no ports to balance on */
	FERRY_XSTAT_PASS_MALFORMED,	/* truncated/invalid L2/L3, or L4 without ports */
	FERRY_XSTAT_PASS_ICMP,		/* echo and other non-error ICMP */
	FERRY_XSTAT_PASS_NO_RING,	/* XDP service without a ring yet: fail open */
	FERRY_XSTAT_PASS_V6_EXT,	/* IPv6 extension header we do not walk */
	FERRY_XSTAT_LRU_HIT,
	FERRY_XSTAT_LRU_MISS,
	FERRY_XSTAT_LRU_OTHER_CPU,	/* unused since flow values are shared by CPUs; slot kept */
	FERRY_XSTAT_SYN_NEW,		/* TCP SYN: chosen fresh (no LRU lookup) */
	FERRY_XSTAT_RING_RETRY,		/* ring entry may not take new flows: next */
	FERRY_XSTAT_NH_LOOKUP,		/* next-hop cache miss: bpf_fib_lookup */
	FERRY_XSTAT_NH_GATEWAY,		/* fib failed: configured gateway MAC used */
	FERRY_XSTAT_ICMP_FWD,		/* ICMP error sent to the flow's backend */
	FERRY_XSTAT_ICMP_TOO_BIG,	/* frag-needed / packet-too-big answered */
	FERRY_XSTAT_TX,
	FERRY_XSTAT_REDIRECT,
	FERRY_XSTAT_DROP_NO_BACKEND,	/* VIP whose backends all refuse new flows */
	FERRY_XSTAT_DROP_MALFORMED,	/* VIP packet with a bad L4 header or length */
	FERRY_XSTAT_DROP_NO_ROUTE,	/* fib lookup failed and no gateway set */
	FERRY_XSTAT_DROP_TOO_BIG,	/* too big after encap and not answerable */
	FERRY_XSTAT_DROP_ADJUST,	/* bpf_xdp_adjust_head/tail failed */
	FERRY_XSTAT_DECAP_OK,
	FERRY_XSTAT_DECAP_NOT_OURS,	/* tunnel packet for an address not in ferry_xdcap_v1 */
	FERRY_XSTAT_DECAP_MALFORMED,
	FERRY_XSTAT_MAX = 32,
};

/*
 * The flow hash, shared by the kernel and userspace (tests, tools) so both
 * agree on which ring entry a flow lands on: murmur3's 32-bit mixing over
 * (client, VIP, ports, protocol). Pure arithmetic on __u32, no loops.
 */
static inline __attribute__((always_inline)) __u32 ferry_rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static inline __attribute__((always_inline)) __u32 ferry_hmix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = ferry_rotl32(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = ferry_rotl32(h, 13);
	return h * 5 + 0xe6546b64;
}

static inline __attribute__((always_inline)) __u32 ferry_hfinal(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static inline __attribute__((always_inline)) __u32 ferry_xflow_hash(const struct ferry_xflow_key *k)
{
	__u32 h = 0x6665726bU;	/* "ferk" */

	h = ferry_hmix(h, k->src[0]);
	h = ferry_hmix(h, k->dst[0]);
	if (k->family != 2) {	/* AF_INET6: the other 96 bits of each address */
		h = ferry_hmix(h, k->src[1] ^ k->dst[1]);
		h = ferry_hmix(h, k->src[2] ^ k->dst[2]);
		h = ferry_hmix(h, k->src[3] ^ ferry_rotl32(k->dst[3], 16));
	}
	h = ferry_hmix(h, (__u32)k->sport << 16 | k->dport);
	h = ferry_hmix(h, k->proto);
	return ferry_hfinal(h);
}

/* Ring entry of a hash: hash * m / 2^32 (no division, uniform over 0..m-1). */
static inline __attribute__((always_inline)) __u32 ferry_ring_index(__u32 hash, __u32 m)
{
	return (__u32)(((__u64)hash * m) >> 32);
}

#endif /* FERRY_XDP_H */
