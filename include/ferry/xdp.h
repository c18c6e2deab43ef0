/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ABI of the XDP load balancer (bpf/xdp_lb.bpf.c) and of its backend-side
 * decapsulation (bpf/xdp_decap.bpf.c): map names, key/value layouts, counter
 * slots. Kept apart from abi.h because only the XDP path and its tools use
 * it; the service, slot and backend maps it reads are the ones in abi.h.
 *
 * A packet for a service with FERRY_SVC_F_XDP is steered to a backend by the
 * service's maglev ring (ferry_xring_v1[svc id], built by userspace), kept
 * there by a set-associative flow table (ferry_xflow_v3), encapsulated in IPIP /
 * IPv6-in-IPv6 and sent back out; the backend strips the outer header and
 * answers the client directly (DSR).
 */
#ifndef FERRY_XDP_H
#define FERRY_XDP_H

#include <ferry/abi.h>

/* Ring size (prime) every LB node must agree on; --xdp-ring-size. */
#define FERRY_XDP_DEF_RING_M	65537
#define FERRY_XDP_MAX_RING_M	1048573
/* The least --xdp-ring-size: the first prime above FERRY_MAX_SVC_BACKENDS, so
 * that every backend of the largest service can own an entry. */
#define FERRY_XDP_MIN_RING_M	4099
/* Flow table entries (all CPUs together, FERRY_XFLOW_WAYS per set); --xdp-flows. */
#define FERRY_XDP_DEF_FLOWS	1048576
#define FERRY_XDP_MAX_FLOWS	(1U << 26)
/* Next-hop cache slots per CPU (ferry_xnh, private to the program: the
 * loader sizes it to possible CPUs x slots), direct-mapped by backend id. */
#define FERRY_XNH_SLOTS		4096
/* Ring entries tried, the hashed one first, when a backend may not take new flows
 * (a DEGRADED one is taken after them); then the fallback (bpf/xdp_lb.bpf.c,
 * ferry_fallback_pick) scans the service's slots for any that may, and if one
 * may, walks on along the ring, ferry_ring_walk_len() entries, for the pick. */
#define FERRY_XDP_RING_TRIES	16
#define FERRY_XDP_RING_WALK_PER_BE	8
#define FERRY_XDP_RING_WALK_MAX		1024

/*
 * How far the fallback walks along a ring of m entries for a service of
 * count backends: 8 entries per backend, so that a usable backend with an
 * even share of the ring is passed over with odds of e^-8 (3 in 10,000), at
 * most 1,024 (past 128 backends the odds grow: e^(-1024/count)), and never
 * the whole ring. The ring is the same on every LB node with the same
 * backends and weights; the slots are not (they keep their places through a
 * node's history), so the walk is what keeps the nodes agreeing when most
 * backends refuse.
 */
static inline __attribute__((always_inline)) __u32 ferry_ring_walk_len(__u32 count, __u32 m)
{
	__u32 n = count > FERRY_XDP_RING_WALK_MAX / FERRY_XDP_RING_WALK_PER_BE ?
		  FERRY_XDP_RING_WALK_MAX : count * FERRY_XDP_RING_WALK_PER_BE;

	if (m <= FERRY_XDP_RING_TRIES)
		return 0;
	return n > m - FERRY_XDP_RING_TRIES ? m - FERRY_XDP_RING_TRIES : n;
}

#define FERRY_MAP_XRING		"ferry_xring_v1"	/* svc id -> ring of M backend ids */
#define FERRY_MAP_XFLOW		"ferry_xflow_v3"	/* set index -> FERRY_XFLOW_WAYS flows */
#define FERRY_MAP_XCLIENT	"ferry_xclient_v1"	/* set index -> those flows' clients */
#define FERRY_MAP_XCFG		"ferry_xcfg_v1"		/* one struct ferry_xcfg */
#define FERRY_MAP_XSTAT		"ferry_xstat_v2"	/* CPU -> struct ferry_xstat_row */
#define FERRY_MAP_XVIP		"ferry_xvip_v2"		/* CPU-major: svc id -> ferry_xcnt */
#define FERRY_MAP_XBE		"ferry_xbe_v2"		/* CPU-major: backend id -> ferry_xcnt */
#define FERRY_MAP_XDCAP		"ferry_xdcap_v1"	/* decap: local outer addresses */
#define FERRY_MAP_XDVIP		"ferry_xdvip_v1"	/* decap: inner ones (local XDP VIPs) */
#define FERRY_MAP_XDADDR	"ferry_xdaddr_v1"	/* decap: every address of the node */
#define FERRY_MAP_XDPAIR	"ferry_xdpair_v1"	/* decap: (outer, inner) pairs it strips */
#define FERRY_XDADDR_MAX	16384
#define FERRY_MAP_XSVC		"ferry_xsvc_v1"		/* set index -> FERRY_XSVC_WAYS XDP VIPs */
#define FERRY_MAP_XVIPF		"ferry_xvipf_v1"	/* one struct ferry_xvipf: no VIP here */
#define FERRY_MAP_XVLAN		"ferry_xvlan_v1"	/* VLAN device ifindex -> struct ferry_xvlan */
#define FERRY_XVLAN_MAX		4096

/*
 * A VLAN device of the node (ferry_xvlan_v1[its ifindex]), written by ferryd
 * from rtnetlink (every link of kind "vlan"). bpf_fib_lookup answers with the
 * route's device, and for a route over eth0.100 that is the VLAN device:
 * neither a target XDP can redirect to (VLAN devices have no ndo_xdp_xmit)
 * nor the tag its frames need. The LB sends such a next hop out of
 * lower_ifindex with this one tag. proto and tci follow each other as on
 * the wire, so the program stores them as one word.
 */
struct ferry_xvlan {
	__u32	lower_ifindex;	/* IFLA_LINK: the device the tagged frames leave by */
	__be16	proto;		/* 0x8100 (802.1Q) or 0x88a8 (802.1ad), network order */
	__be16	tci;		/* the VLAN id, network order; priority bits 0 */
};

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
	__u32	be_epoch;	/* bumped after backends are deleted: next hops cached before go stale */
};

/*
 * A flow as the client sent it: client address/port, VIP/port. IPv4
 * addresses in [0], the rest zero. Ports in network order. Not stored in
 * any map; its VIP half (dst, dport, proto, family) is laid out as a
 * struct ferry_svc_key, so the data path looks the VIP up without a copy.
 */
struct ferry_xflow_key {
	__u32	src[4];
	__u16	sport;
	__u16	pad;
	__u32	dst[4];		/* from here: struct ferry_svc_key */
	__u16	dport;
	__u8	proto;
	__u8	family;
};

_Static_assert(sizeof(struct ferry_xflow_key) - __builtin_offsetof(struct ferry_xflow_key, dst) ==
	       sizeof(struct ferry_svc_key) &&
	       __builtin_offsetof(struct ferry_xflow_key, dport) -
	       __builtin_offsetof(struct ferry_xflow_key, dst) ==
	       __builtin_offsetof(struct ferry_svc_key, port),
	       "the VIP half of a flow key is a struct ferry_svc_key");

/* The VIP of a flow key, as a service key. */
static inline __attribute__((always_inline)) const struct ferry_svc_key *
ferry_xflow_vip(const struct ferry_xflow_key *k)
{
	return (const struct ferry_svc_key *)k->dst;
}

/*
 * The flow table: an array of sets (BPF_F_MMAPABLE, so every set starts on a
 * page-aligned 64-byte boundary: one cache line), FERRY_XFLOW_WAYS flows
 * each. A flow lives in set ferry_xflow_set_of(hash, sets) under a 32-bit tag
 * from the other half of its 64-bit hash, mixed with its service id; one
 * cache line read answers a lookup, where a hash map walks a bucket and
 * compares 40-byte keys. A new flow takes the way that matches its tag, else
 * an empty way, else the one idle longest (LRU within the set).
 *
 * The set holds only what the data path reads on every packet; who the
 * flow's client is (for ferryctl) lives at the same index and way of a
 * second array, ferry_xclient_v1, written when a flow is recorded and never
 * read by the data path. 100,000 flows touch 100,000 lines of the table
 * either way; with the client beside the tag they touched two or three each.
 *
 * The table is shared by the CPUs (a flow that moves CPU keeps its backend).
 * `id` is written last, in one 64-bit store, so a reader never sees one
 * flow's tag with another's backend.
 */
#define FERRY_XFLOW_WAYS	4

struct ferry_xflow {
	__u64	id;		/* tag << 32 | backend id; backend id 0: empty way */
	__u32	stamp;		/* bpf_jiffies64() of the flow's last packet (low 32 bits) */
	__u32	svc_id;
};

struct ferry_xflow_set {
	struct ferry_xflow way[FERRY_XFLOW_WAYS];
};

_Static_assert(sizeof(struct ferry_xflow_set) == 64, "a flow set is one cache line");

/* The client of the flow in the same set and way of ferry_xflow_v3. */
struct ferry_xclient {
	__u32	addr[4];	/* client address, IPv4 in [0] (ICMP: the quoted flow's) */
	__u16	port;		/* client port, network order */
	__u8	proto;
	__u8	family;
};

struct ferry_xclient_set {
	struct ferry_xclient way[FERRY_XFLOW_WAYS];
};

/*
 * The VIP index: which (address, port, protocol) are XDP services, and their
 * ids, in an mmapable array of sets of FERRY_XSVC_WAYS entries. Every packet
 * the VIP filter (below) does not rule out asks it first: one set read
 * instead of a hash-map lookup, and VIP packets no longer read ferry_svc_v1,
 * whose values the socket LB writes (round-robin cursor). Userspace derives it from ferry_svc_v1 after every change
 * (xsvc_sync, userspace/lib/reconcile.c); it is only ever an accelerator:
 *   - a set without FERRY_XSVC_F_VALID (not built yet) sends the lookup to
 *     ferry_svc_v1;
 *   - a VIP that did not fit its set (all ways taken) sets FERRY_XSVC_F_MORE
 *     there, and a miss in such a set asks ferry_svc_v1 too.
 * An entry is written key first and svc_id last (0: empty way), and emptied
 * svc_id first, so a reader never takes a half-written key for a VIP.
 */
#define FERRY_XSVC_WAYS		4
#define FERRY_XSVC_F_VALID	(1U << 0)	/* set maintained by userspace */
#define FERRY_XSVC_F_MORE	(1U << 1)	/* a VIP of this set is only in ferry_svc_v1 */
/* Sets when not sized by ferryd (a power of two: max services / 4). */
#define FERRY_XSVC_DEF_SETS	(FERRY_DEF_MAX_SERVICES / FERRY_XSVC_WAYS)

struct ferry_xsvc {
	struct ferry_svc_key key;
	__u32	svc_id;		/* 0: empty way */
	__u32	flags;		/* way[0] only: FERRY_XSVC_F_* of the set */
	__u32	pad;
};

struct ferry_xsvc_set {
	struct ferry_xsvc way[FERRY_XSVC_WAYS];
};

/* A service key's hash: its VIP-index set and its VIP-filter bit. */
static inline __attribute__((always_inline)) __u32 ferry_xsvc_hash(const struct ferry_svc_key *k)
{
	__u32 h = k->addr[0] * 0x9e3779b1U;

	h ^= k->addr[1] * 0x85ebca77U ^ k->addr[2] * 0xc2b2ae3dU ^ k->addr[3] * 0x27d4eb2fU;
	h ^= ((__u32)k->port | (__u32)k->proto << 16 | (__u32)k->family << 24) * 0x165667b1U;
	h ^= h >> 15;
	h *= 0x2c1b3c6dU;
	h ^= h >> 12;
	return h;
}

/* The set of a service key among `sets` (a power of two). */
static inline __attribute__((always_inline)) __u32 ferry_xsvc_set_of(const struct ferry_svc_key *k,
								     __u32 sets)
{
	return ferry_xsvc_hash(k) & (sets - 1);
}

/*
 * The VIP filter, ferry_xvipf_v1[0], asked before the index: a bit per
 * ferry_xsvc_hash() value modulo FERRY_XVIPF_BITS, SET when no XDP VIP
 * hashes there. A packet whose bit is set is no VIP and passes without
 * reading the index. 16 KiB in a small array that is not mmapable, so the
 * kernel normally kmallocs it (the direct map, where the data path's TLB
 * miss is cheap; vmalloc if memory is too fragmented, and then it costs
 * what the index does); the index (2 MiB by default) is vmalloc'd, a page
 * walk per packet on the benchmark machine (docs/benchmarks.md, sixth
 * round). Writers take turns (maps_lock(): flock on the pin directory).
 * All zero, as created or never built, means "ask the index": the filter
 * can only err towards asking. xsvc_sync() clears the bits of new VIPs
 * before it indexes them, and sets the bits of VIPs gone after.
 */
#define FERRY_XVIPF_BITS	(1U << 17)

struct ferry_xvipf {
	__u64	w[FERRY_XVIPF_BITS / 64];
};

static inline __attribute__((always_inline)) __u32 ferry_xvipf_bit(__u32 hash)
{
	return hash & (FERRY_XVIPF_BITS - 1);
}

/*
 * The XDP counters are per CPU, but kept in plain arrays, one row per
 * possible CPU, not in per-CPU maps: a per-CPU map's values live in the
 * kernel's per-CPU area, and reaching it cost the data path a page walk of
 * its own per packet (~40 ns of a ~135 ns established-flow packet on the
 * benchmark machine, docs/benchmarks.md "Sixth round"). Rows of one CPU are
 * written by that CPU only, as per-CPU values are.
 *
 *   ferry_xstat_v2[cpu].v[FERRY_XSTAT_*]            outcome counters
 *   ferry_xvip_v2[cpu * stride + svc id]            stride: max services + 1
 *   ferry_xbe_v2[cpu * stride + backend id]         stride: max backends + 1
 *
 * Each map has rows x stride entries, rows the highest possible CPU id + 1
 * (ferry_cpu_rows); readers sum a column.
 */
struct ferry_xcnt {
	__u64	packets;
	__u64	bytes;
};

/*
 * Decap: an address the decap accepts, as a tunnel's outer destination
 * (ferry_xdcap_v1: the --decap-iface addresses) or as its inner one
 * (ferry_xdvip_v1: the XDP services' VIPs bound on this node).
 */
struct ferry_xdcap_key {
	__u32	addr[4];
	__u8	family;
	__u8	pad[3];
};

/*
 * What the decap program asks, in one lookup: a tunnel's outer and inner
 * destinations (ferry_xdpair_v1, every outer address with every local XDP
 * VIP, derived from the two sets above by userspace).
 */
struct ferry_xdpair_key {
	__u32	outer[4];
	__u32	inner[4];
	__u8	outer_family;
	__u8	inner_family;
	__u8	pad[2];
};

/* Outcome counters: ferry_xstat_v2[cpu].v[FERRY_XSTAT_*]. */
enum ferry_xstat {
	FERRY_XSTAT_PASS_NOT_IP = 0,	/* not IPv4/IPv6 */
	FERRY_XSTAT_PASS_NOT_VIP,	/* no XDP service for (dst, port, proto) */
	FERRY_XSTAT_PASS_FRAG,		/* IP fragment: no ports to balance on */
	FERRY_XSTAT_PASS_MALFORMED,	/* truncated/invalid L2/L3, or L4 without ports */
	FERRY_XSTAT_PASS_ICMP,		/* echo and other non-error ICMP */
	FERRY_XSTAT_PASS_NO_RING,	/* XDP service without a ring yet: fail open */
	FERRY_XSTAT_PASS_V6_EXT,	/* IPv6 extension header we do not walk; routing header, segments left */
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
	FERRY_XSTAT_VIP_SLOW,		/* VIP index could not answer: ferry_svc_v1 did */
	FERRY_XSTAT_RING_FALLBACK,	/* no ring entry tried could take a new flow: the fallback did */
	FERRY_XSTAT_DECAP_NOT_VIP,	/* tunnel to us whose inner destination is not in ferry_xdvip_v1 */
	FERRY_XSTAT_LOCAL,		/* the backend is this node: XDP_PASS, not encapsulated */
	FERRY_XSTAT_DECAP_CE_NOT_ECT,	/* tunnel to us, outer CE over a Not-ECT inner: dropped (RFC 6040) */
	FERRY_XSTAT_DECAP_BAD_OUTER,	/* tunnel whose outer header the kernel would refuse: passed */
	/* Slot 31 was the last free one: a new counter needs a wider row,
	 * that is a new ferry_xstat map (its value size is the row's). */
	FERRY_XSTAT_MAX = 32,
};

/* One CPU's row of ferry_xstat_v2: four cache lines, written by that CPU. */
struct ferry_xstat_row {
	__u64	v[FERRY_XSTAT_MAX];
};

/*
 * The flow hash, shared by the kernel and userspace (tests, tools) so both
 * agree on which ring entry and which flow-table set a flow lands on:
 * murmur3's 64-bit block mixing over (client, VIP, ports, protocol), one
 * block for IPv4 addresses, four for IPv6. Pure arithmetic, no loops.
 * Its low half picks the ring entry, the outer source and the set; its high
 * half is the flow's tag in that set.
 */
static inline __attribute__((always_inline)) __u64 ferry_rotl64(__u64 x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline __attribute__((always_inline)) __u32 ferry_rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static inline __attribute__((always_inline)) __u64 ferry_hmix64(__u64 h, __u64 k)
{
	k *= 0x87c37b91114253d5ULL;
	k = ferry_rotl64(k, 31);
	k *= 0x4cf5ad432745937fULL;
	h ^= k;
	h = ferry_rotl64(h, 27);
	return h * 5 + 0x52dce729;
}

static inline __attribute__((always_inline)) __u64 ferry_hfinal64(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static inline __attribute__((always_inline)) __u64 ferry_xflow_hash64(const struct ferry_xflow_key *k)
{
	__u64 h = 0x666572727966ULL;	/* "ferryf" */

	h = ferry_hmix64(h, (__u64)k->src[0] << 32 | k->dst[0]);
	if (k->family != 2) {	/* AF_INET6: the other 96 bits of each address */
		h = ferry_hmix64(h, (__u64)k->src[1] << 32 | k->src[2]);
		h = ferry_hmix64(h, (__u64)k->src[3] << 32 | k->dst[1]);
		h = ferry_hmix64(h, (__u64)k->dst[2] << 32 | k->dst[3]);
	}
	h = ferry_hmix64(h, (__u64)k->sport << 48 | (__u64)k->dport << 32 |
			    (__u32)k->proto << 8 | k->family);
	return ferry_hfinal64(h);
}

/* The 32-bit flow hash: ring entry and outer source. */
static inline __attribute__((always_inline)) __u32 ferry_xflow_hash(const struct ferry_xflow_key *k)
{
	return (__u32)ferry_xflow_hash64(k);
}

/* A flow's tag in its set: the hash's high half, distinct per service id. */
static inline __attribute__((always_inline)) __u32 ferry_xflow_tag(__u64 h64, __u32 svc_id)
{
	return (__u32)(h64 >> 32) ^ (svc_id * 0x9e3779b1U);
}

/* Ring entry of a hash: hash * m / 2^32 (no division, uniform over 0..m-1). */
static inline __attribute__((always_inline)) __u32 ferry_ring_index(__u32 hash, __u32 m)
{
	return (__u32)(((__u64)hash * m) >> 32);
}

/* A flow's set among `sets`: the same scaling, on the hash bits the ring uses
 * least (bit-reversed order would do as well; a rotation is cheaper). */
static inline __attribute__((always_inline)) __u32 ferry_xflow_set_of(__u64 h64, __u32 sets)
{
	return ferry_ring_index(ferry_rotl32((__u32)h64, 16), sets);
}

/*
 * The LB's geometry: how many sets the flow table and the VIP index have,
 * and the counter strides. The loader chooses them (--xdp-flows,
 * --max-services, --max-backends), and the data path needs them before
 * its first lookup. Read from memory they cost a dependent load at the
 * head of every packet's chain of lookups: the map's header or .rodata is
 * one more page the benchmark machine walks per call (~25 ns of an
 * established-flow packet, docs/benchmarks.md "Seventh round"). So each is
 * an immediate in the program's code: a 64-bit load of a marker, the tag
 * FERRY_XGEO_TAG | its index in the high half and its default (what the
 * maps are sized to before the loader resizes them) in the low half; the
 * program uses the low half only. ferry_xdp_size() writes the value it
 * sized the maps for into every marker's low half and sets FERRY_XGEO_SET
 * in the high half, before the program is loaded (again if called again);
 * a program loaded without it runs with the defaults over maps of the
 * default sizes. Cilium's loader substitutes constants in the same way.
 */
enum ferry_xgeo {
	FERRY_XGEO_FLOW_SETS = 0,	/* sets of ferry_xflow_v3 */
	FERRY_XGEO_XSVC_SETS,		/* sets of ferry_xsvc_v1 (a power of two) */
	FERRY_XGEO_XVIP_STRIDE,		/* ferry_xvip_v2 columns: max services + 1 */
	FERRY_XGEO_XBE_STRIDE,		/* ferry_xbe_v2 columns: max backends + 1 */
	FERRY_XGEO_MAX,
};

#define FERRY_XGEO_TAG		0xfe77a900U	/* high half: tag | SET | index */
#define FERRY_XGEO_SET		0x80U		/* written by ferry_xdp_size() */
#define FERRY_XGEO_MARKER(i, def) ((__u64)(FERRY_XGEO_TAG | (i)) << 32 | (__u32)(def))

#endif /* FERRY_XDP_H */
