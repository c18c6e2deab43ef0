// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * XDP L4 load balancer for traffic entering the node (Katran-style DSR).
 *
 * Per packet: parse Ethernet (up to two VLAN tags) / IPv4 / IPv6 and the
 * TCP or UDP ports, look the destination up in the VIP index ferry_xsvc_v1
 * (ferry_svc_v1 when the index cannot answer); anything that is not a
 * service with FERRY_SVC_F_XDP passes untouched. For a VIP:
 *
 *   1. the flow (client, VIP, ports, protocol) is looked up in the flow
 *      table ferry_xflow_v3 (a TCP SYN always starts a new flow: it takes no
 *      recorded backend, only its way): one 64-byte set of four flows,
 *      chosen and tagged by the flow's 64-bit hash (its clients, for
 *      ferryctl, in ferry_xclient_v1), shared by the CPUs so a flow whose packets move to
 *      another CPU keeps its backend. A new flow replaces the way idle
 *      longest in its set (LRU per set, include/ferry/xdp.h);
 *   2. a new flow takes the service's maglev ring entry for its hash
 *      (ferry_xring_v1, built by userspace from the weights, so every LB node
 *      picks the same backend without shared state); a backend that may not
 *      take new flows (draining, weight 0, UNHEALTHY, circuit OPEN or
 *      OPENING) makes it try the next entries, DEGRADED ones (health, or a
 *      circuit HALF_OPEN: this LB cannot run probes) only if nothing better
 *      is near.
 *      When none of those may, the fallback: a scan of the service's slots
 *      says whether any backend may, and a walk on along the ring picks it
 *      (ferry_fallback_pick); only a service none of whose backends may
 *      take a new flow drops it;
 *   3. the packet is encapsulated (IPIP, or IPv6 outer for an IPv6 backend)
 *      with an outer source whose host bits come from the flow hash, and sent
 *      with XDP_TX, or XDP_REDIRECT when the route leaves by another device.
 *      The next hop comes from bpf_fib_lookup, cached per backend and CPU for
 *      a quarter second; a route over a VLAN device leaves by its lower
 *      device with its tag (ferry_xvlan_v1), any other untagged: the tags
 *      the client's frame came with are not the next hop's. The configured
 *      gateway MAC is the fallback, sent back out of the ingress device in
 *      the VLANs the frame came in.
 *
 * ICMP: echo and other informational messages pass (the node answers or
 * not, as for any address). An error (destination unreachable incl. "frag
 * needed", time exceeded, parameter problem; ICMPv6 1-4 incl. "packet too
 * big") sent to a VIP quotes a reply the backend sent (VIP -> client); it is
 * routed by the quoted flow, reversed, to the backend that owns the flow, so
 * the backend's PMTU discovery works through the LB. Only an error sent to
 * the quoted source is: one whose outer destination is another address
 * concerns no reply of ours and passes untouched (pass_not_vip). When the encapsulated
 * packet itself would exceed the egress MTU, the LB answers the client with
 * "frag needed" (IPv4 with DF) / "packet too big" (IPv6) carrying the MTU
 * minus the encapsulation overhead; an IPv4 packet without DF is dropped.
 *
 * Fragments pass (no ports to choose a backend by); IPv6 routing, hop-by-hop
 * and destination-options headers are walked (three at most), and a routing
 * header with segments left passes (the packet is in transit through us).
 */
#include "lib/common.bpf.h"
#include "lib/maps.bpf.h"
#include "lib/xdp_maps.bpf.h"
#include "lib/xdp_parse.bpf.h"

/*
 * How long a resolved next hop is trusted before bpf_fib_lookup again: a
 * quarter second, in jiffies (bpf_jiffies64 costs a fraction of a clock
 * read per packet). Where the kernel config cannot be read, ferryd gives
 * libbpf CONFIG_HZ=0 (userspace/ferryd/xdp.c): 250 ticks, 0.25 to 2.5 s.
 */
extern unsigned int CONFIG_HZ __kconfig __weak;
#define FERRY_XNH_TTL_JIFFIES	(CONFIG_HZ ? CONFIG_HZ / 4 : 250)
#define XDP_DEF_MTU		1500
/*
 * Bytes of the offending packet quoted in a generated ICMP error. IPv4:
 * at least 56, and the whole header and 8 bytes more when that is longer
 * (ihl 13 to 15: 60, 64, 68): Linux discards an error whose quote is
 * shorter than ihl * 4 + 8 (icmp_socket_deliver), and PMTU discovery with
 * it. The quote is always a multiple of 4.
 */
#define ICMP4_QUOTE		56
#define ICMP4_QUOTE_MAX		(15 * 4 + 8)
#define ICMP6_QUOTE		200

/* svc id -> this VIP's ring: FERRY_XDP_DEF_RING_M backend ids (any size with BPF_F_INNER_MAP). */
struct ferry_xring_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_XDP_DEF_RING_M);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, FERRY_DEF_MAX_SERVICES + 1);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct ferry_xring_inner);
} ferry_xring_v1 SEC(".maps");

/* The flow table (include/ferry/xdp.h): FERRY_XDP_DEF_FLOWS / WAYS sets. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_XDP_DEF_FLOWS / FERRY_XFLOW_WAYS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ferry_xflow_set);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xflow_v3 SEC(".maps");

/* Who each flow's client is, same index and way; sized with the table. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_XDP_DEF_FLOWS / FERRY_XFLOW_WAYS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ferry_xclient_set);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xclient_v1 SEC(".maps");

/* The VIP index (include/ferry/xdp.h): FERRY_XSVC_DEF_SETS sets, a power of two. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_XSVC_DEF_SETS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ferry_xsvc_set);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xsvc_v1 SEC(".maps");

/* The VIP filter (include/ferry/xdp.h): not mmapable, so kmalloc'd. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_xvipf);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xvipf_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_xcfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xcfg_v1 SEC(".maps");

/*
 * The geometry (include/ferry/xdp.h): immediates that ferry_xdp_size()
 * rewrites before load, the defaults the maps here are declared with until
 * then. A 64-bit load of the marker; its low half is the value. Only in
 * code inlined into ferry_xdp_lb: libbpf gives the loader the entry
 * program's instructions, not a __noinline subprogram's (test_geometry
 * checks the loaded program holds no marker).
 */
#define XGEO(i, def)								\
	({									\
		__u64 __v;							\
		asm("%0 = %1 ll" : "=r"(__v) : "i"(FERRY_XGEO_MARKER(i, def)));	\
		(__u32)__v;							\
	})
#define XFLOW_SETS	XGEO(FERRY_XGEO_FLOW_SETS, FERRY_XDP_DEF_FLOWS / FERRY_XFLOW_WAYS)
#define XSVC_SETS	XGEO(FERRY_XGEO_XSVC_SETS, FERRY_XSVC_DEF_SETS)
#define XVIP_STRIDE	XGEO(FERRY_XGEO_XVIP_STRIDE, FERRY_DEF_MAX_SERVICES + 1)
#define XBE_STRIDE	XGEO(FERRY_XGEO_XBE_STRIDE, FERRY_DEF_MAX_BACKENDS + 1)

/*
 * Packets and bytes per VIP and per backend, CPU-major (include/ferry/xdp.h):
 * [cpu * stride + id]. The loader sizes each map to possible CPUs x stride
 * and sets the strides (XVIP_STRIDE, XBE_STRIDE) with it; by default there
 * is one CPU's row, and a CPU beyond the map counts nothing. Mmapable, for
 * the readers.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_DEF_MAX_SERVICES + 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ferry_xcnt);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xvip_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_DEF_MAX_BACKENDS + 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ferry_xcnt);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xbe_v2 SEC(".maps");

/*
 * A backend's resolved next hop; private to this program, not pinned. It
 * answers for (backend_id, svc_id) only while epoch is ferry_xcfg's
 * be_epoch: a backend id freed (and so reusable, by any service, at another
 * address) bumps it, and every row resolved before goes stale at once.
 */
struct xnh {
	__u32	backend_id;	/* tag: 0 = empty */
	__u32	svc_id;		/* the service it was resolved for */
	__u64	expires;	/* bpf_jiffies64() */
	__u32	addr[4];	/* backend address: outer destination */
	__u8	dmac[6];	/* at 32 and 40: read as a word and a half-word */
	__u16	mtu;
	__u8	smac[6];
	__u8	family;
	__u8	local;		/* the backend is this node: no next hop, XDP_PASS */
	__u32	ifindex;	/* egress device; 0 = gateway out of the ingress device */
	__u32	epoch;		/* ferry_xcfg.be_epoch read before the backend was */
	__u32	vlan;		/* the tag out of ifindex as on the wire (proto, tci); 0: none */
	__u32	pad;
};

/* CPU-major as the counters are: [cpu * FERRY_XNH_SLOTS + slot]; sized by
 * the loader. A CPU beyond it resolves every packet (fail open). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_XNH_SLOTS);
	__type(key, __u32);
	__type(value, struct xnh);
} ferry_xnh SEC(".maps");

/* What the parser learnt about a packet. */
struct xpkt {
	struct ferry_xflow_key key;
	__u32	l2_len;		/* 14, 18 or 22 */
	__u32	l4_off;
	__u32	l3_len;		/* IP datagram length from its header */
	__u32	pkt_len;	/* frame length, for byte counters */
	__u8	tos;
	__u8	df;		/* may not be fragmented (IPv6: always) */
	__u8	icmp;		/* ICMP error steered by its quoted flow */
	__u8	syn;		/* TCP SYN without ACK */
};

/* Packet offsets read back from struct xpkt are masked so the verifier
 * sees their bound (L4 starts within the first 8 KiB). */
#define XOFF_MASK	0x1fff

/*
 * What the parser and lb() return: XP_CONTINUE, or a verdict, an XDP action
 * and the ferry_xstat_v2 slot it is counted under (XV_UNCOUNTED: none).
 * The program counts a verdict once, on its way out, so the many ways to
 * pass or drop share one counter update instead of each inlining its own.
 */
#define XP_CONTINUE	-1
#define XV(act, slot)	((int)((slot) << 8 | (act)))
#define XV_UNCOUNTED	0xff
#define vpass(slot)	XV(XDP_PASS, slot)
#define vdrop(slot)	XV(XDP_DROP, slot)

/* Count a pass where it is decided and return it as an uncounted verdict:
 * for the parser, whose exits every packet runs past (measured: a shared
 * exit slowed the non-VIP path by ~10 ns; lb() gains from sharing). */
static __always_inline int xpass(__u32 slot)
{
	xstat_inc(slot);
	return XV(XDP_PASS, XV_UNCOUNTED);
}

static __always_inline int xverdict(int v)
{
	__u32 slot = (__u32)v >> 8;

	if (slot != XV_UNCOUNTED)
		xstat_inc(slot);
	return v & 0xff;
}

/* This CPU's counter of id in a CPU-major array of the given stride. */
static __always_inline void xcnt_add(void *map, __u32 stride, __u32 id, __u32 bytes)
{
	__u32 key = bpf_get_smp_processor_id() * stride + id;
	struct ferry_xcnt *c;

	if (id >= stride)
		return;
	c = bpf_map_lookup_elem(map, &key);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* ---- parsing ---------------------------------------------------------- */

static __always_inline bool icmp4_is_error(__u8 type)
{
	return type == 3 || type == 11 || type == 12;	/* unreach, time exceeded, param */
}

/*
 * An ICMPv4 error quoting a datagram the backend sent (VIP -> client):
 * the flow it belongs to is the quoted one reversed. Such an error is sent
 * to the quoted source, the VIP (outer daddr); one sent elsewhere is about
 * no flow of ours, whatever it quotes, and is not for a VIP. A quoted
 * fragment other than the first has no ports, only payload where they would
 * be: it names no flow, and passes (pass_fragment).
 */
static __always_inline int parse_icmp4(void *data, void *end, struct xpkt *p, __be32 daddr)
{
	struct icmphdr *ic = data + (p->l4_off & XOFF_MASK);
	struct iphdr *in;
	struct xports *pt;
	__u32 ihl;

	if ((void *)(ic + 1) > end)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	if (!icmp4_is_error(ic->type))
		return xpass(FERRY_XSTAT_PASS_ICMP);
	in = (void *)(ic + 1);
	if ((void *)(in + 1) > end)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	if (in->version != 4 || in->ihl < 5)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	if (in->saddr != daddr)
		return xpass(FERRY_XSTAT_PASS_NOT_VIP);
	if (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP)
		return xpass(FERRY_XSTAT_PASS_ICMP);
	if (in->frag_off & bpf_htons(XIP_OFFSET))
		return xpass(FERRY_XSTAT_PASS_FRAG);
	ihl = in->ihl * 4;
	pt = (void *)in + ihl;
	if ((void *)(pt + 1) > end)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	p->key.src[0] = in->daddr;
	p->key.dst[0] = in->saddr;
	p->key.sport = pt->dst;
	p->key.dport = pt->src;
	p->key.proto = in->protocol;
	p->icmp = 1;
	return XP_CONTINUE;
}

static __always_inline int parse4(void *data, void *end, struct xpkt *p)
{
	struct iphdr *ip = data + (p->l2_len & 0x1f);
	struct xports *pt;
	__u32 ihl;

	if ((void *)(ip + 1) > end)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	if (ip->version != 4 || ip->ihl < 5)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	if (ip->frag_off & bpf_htons(XIP_MF_OFFSET))
		return xpass(FERRY_XSTAT_PASS_FRAG);
	ihl = ip->ihl * 4;
	p->l4_off = p->l2_len + ihl;
	p->l3_len = bpf_ntohs(ip->tot_len);
	p->tos = ip->tos;
	p->df = !!(ip->frag_off & bpf_htons(XIP_DF));
	p->key.family = AF_INET;
	if (ip->protocol == IPPROTO_ICMP)
		return parse_icmp4(data, end, p, ip->daddr);
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return xpass(FERRY_XSTAT_PASS_NOT_VIP);
	pt = data + (p->l4_off & XOFF_MASK);
	if ((void *)(pt + 1) > end)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	p->key.src[0] = ip->saddr;
	p->key.dst[0] = ip->daddr;
	p->key.sport = pt->src;
	p->key.dport = pt->dst;
	p->key.proto = ip->protocol;
	return XP_CONTINUE;
}

static __always_inline bool ip6_is_ext(__u8 nh)
{
	return nh == 0 || nh == 43 || nh == 60;	/* hop-by-hop, routing, dest opts */
}

static __always_inline void copy6(__u32 *dst, const struct in6_addr *a)
{
	dst[0] = a->in6_u.u6_addr32[0];
	dst[1] = a->in6_u.u6_addr32[1];
	dst[2] = a->in6_u.u6_addr32[2];
	dst[3] = a->in6_u.u6_addr32[3];
}

/* The same for ICMPv6; ip is the outer header, whose daddr must be the
 * quoted saddr. Only a quote whose transport header follows the IPv6 header
 * names a flow: a quoted fragment header passes (pass_fragment; a fragment
 * other than the first has no ports), any other header pass_icmp. */
static __always_inline int parse_icmp6(void *data, void *end, struct xpkt *p,
				       const struct ipv6hdr *ip)
{
	struct icmp6hdr *ic = data + (p->l4_off & XOFF_MASK);
	struct ipv6hdr *in;
	struct xports *pt;

	if ((void *)(ic + 1) > end)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	if (ic->icmp6_type < 1 || ic->icmp6_type > 4)	/* only errors quote a flow */
		return xpass(FERRY_XSTAT_PASS_ICMP);
	in = (void *)(ic + 1);
	if ((void *)(in + 1) > end)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	if (in->version != 6)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	if (in->saddr.in6_u.u6_addr32[0] != ip->daddr.in6_u.u6_addr32[0] ||
	    in->saddr.in6_u.u6_addr32[1] != ip->daddr.in6_u.u6_addr32[1] ||
	    in->saddr.in6_u.u6_addr32[2] != ip->daddr.in6_u.u6_addr32[2] ||
	    in->saddr.in6_u.u6_addr32[3] != ip->daddr.in6_u.u6_addr32[3])
		return xpass(FERRY_XSTAT_PASS_NOT_VIP);
	if (in->nexthdr != IPPROTO_TCP && in->nexthdr != IPPROTO_UDP)
		return xpass(in->nexthdr == 44 ? FERRY_XSTAT_PASS_FRAG : FERRY_XSTAT_PASS_ICMP);
	pt = (void *)(in + 1);
	if ((void *)(pt + 1) > end)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	copy6(p->key.src, &in->daddr);
	copy6(p->key.dst, &in->saddr);
	p->key.sport = pt->dst;
	p->key.dport = pt->src;
	p->key.proto = in->nexthdr;
	p->icmp = 1;
	return XP_CONTINUE;
}

static __always_inline int parse6(void *data, void *end, struct xpkt *p)
{
	struct ipv6hdr *ip = data + (p->l2_len & 0x1f);
	struct xports *pt;
	__u32 off;
	__u8 nh;
	int i;

	if ((void *)(ip + 1) > end)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	if (ip->version != 6)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	p->l3_len = bpf_ntohs(ip->payload_len) + sizeof(*ip);
	p->tos = ip->priority << 4 | ip->flow_lbl[0] >> 4;
	p->df = 1;
	p->key.family = AF_INET6;
	nh = ip->nexthdr;
	off = p->l2_len + sizeof(*ip);
#pragma unroll
	for (i = 0; i < 3; i++) {
		__u8 *e;

		if (!ip6_is_ext(nh))
			break;
		e = data + off;
		/* Every extension header is 8 bytes or more; the first four
		 * are a routing header's segments left, too. */
		if ((void *)(e + 4) > end)
			return xpass(FERRY_XSTAT_PASS_MALFORMED);
		/* A routing header with segments left: the destination is
		 * only a waypoint (ours or not), the packet is in transit to
		 * the next segment. Not a flow to balance: the stack routes it. */
		if (nh == 43 && e[3])
			return xpass(FERRY_XSTAT_PASS_V6_EXT);
		nh = e[0];
		off += (e[1] + 1) * 8;
	}
	if (nh == 44)
		return xpass(FERRY_XSTAT_PASS_FRAG);
	if (ip6_is_ext(nh))
		return xpass(FERRY_XSTAT_PASS_V6_EXT);
	p->l4_off = off;
	if (nh == XIPPROTO_ICMPV6)
		return parse_icmp6(data, end, p, ip);
	if (nh != IPPROTO_TCP && nh != IPPROTO_UDP)
		return xpass(FERRY_XSTAT_PASS_NOT_VIP);
	pt = data + off;
	if ((void *)(pt + 1) > end)
		return xpass(FERRY_XSTAT_PASS_MALFORMED);
	copy6(p->key.src, &ip->saddr);
	copy6(p->key.dst, &ip->daddr);
	p->key.sport = pt->src;
	p->key.dport = pt->dst;
	p->key.proto = nh;
	return XP_CONTINUE;
}

/*
 * The rest of a VIP packet must be sound before we carry it: the IP length
 * within the frame, a full TCP (doff >= 5) or UDP header. Learns SYN.
 */
static __always_inline int validate_l4(void *data, void *end, struct xpkt *p)
{
	if (p->l3_len > p->pkt_len || p->l2_len + p->l3_len > p->pkt_len ||
	    p->l4_off >= p->l2_len + p->l3_len)
		return vdrop(FERRY_XSTAT_DROP_MALFORMED);
	if (p->icmp)
		return XP_CONTINUE;
	if (p->key.proto == IPPROTO_TCP) {
		struct tcphdr *th = data + (p->l4_off & XOFF_MASK);

		if ((void *)(th + 1) > end || th->doff < 5)
			return vdrop(FERRY_XSTAT_DROP_MALFORMED);
		p->syn = th->syn && !th->ack;
	} else {
		struct udphdr *uh = data + (p->l4_off & XOFF_MASK);

		if ((void *)(uh + 1) > end)
			return vdrop(FERRY_XSTAT_DROP_MALFORMED);
	}
	return XP_CONTINUE;
}

/* ---- backend choice --------------------------------------------------- */

enum xbe_class { XBE_NO = 0, XBE_DEGRADED, XBE_GOOD };

/*
 * May backend id take a new flow of service svc_id? The circuit is the
 * socket LB's (bpf/lib/circuit_sm.h); the XDP LB only reads it. OPEN, and
 * OPENING (an ejection being written), take no new flows. HALF_OPEN (and
 * OPEN whose ejection has run out, which the next probe turns HALF_OPEN)
 * waits on probes the XDP LB cannot run: with DSR it never sees how a
 * connection fared, and every new flow it sent there would be an
 * unlimited probe. So such a backend is DEGRADED: new flows only when
 * nothing better is near.
 */
static __always_inline enum xbe_class xbe_class(__u32 svc_id, __u32 id)
{
	struct ferry_backend *be = bpf_map_lookup_elem(&ferry_be_v1, &id);
	struct ferry_bestat *st;
	__u32 circuit;

	if (!be || be->svc_id != svc_id)
		return XBE_NO;
	if (be->state != FERRY_BE_ACTIVE || !be->weight || be->health == FERRY_HEALTH_UNHEALTHY)
		return XBE_NO;
	st = bpf_map_lookup_elem(&ferry_bestat_v2, &id);
	if (st) {
		circuit = *(volatile __u32 *)&st->circuit;
		if (circuit == FERRY_CIRCUIT_OPENING)
			return XBE_NO;
		if (circuit == FERRY_CIRCUIT_OPEN &&
		    bpf_ktime_get_ns() < *(volatile __u64 *)&st->open_until_ns)
			return XBE_NO;
		if (circuit != FERRY_CIRCUIT_CLOSED)
			return XBE_DEGRADED;
	}
	return be->health == FERRY_HEALTH_DEGRADED ? XBE_DEGRADED : XBE_GOOD;
}

#define RING_NONE	0xffffffffU	/* no ring (or one shorter than M): fail open */

/*
 * The choice every search for a new flow's backend makes (the ring tries,
 * the fallback's scan and walk): the first GOOD backend met, else the first
 * DEGRADED one. last skips a backend met just before (ring entries repeat).
 * settle: a search that knows no GOOD one is there ends at the first
 * DEGRADED one.
 */
struct xpick {
	__u32	svc_id;
	__u32	last;
	__u32	found;
	__u32	degraded;
	__u32	settle;
};

/* Offer backend id: true once the search may end (p->found, or with
 * p->settle p->degraded). */
static __always_inline bool xpick_offer(struct xpick *p, __u32 id)
{
	enum xbe_class c;

	if (id == p->last)
		return false;
	p->last = id;
	c = xbe_class(p->svc_id, id);
	if (c == XBE_GOOD) {
		p->found = id;
		return true;
	}
	if (c == XBE_DEGRADED && !p->degraded) {
		p->degraded = id;
		return p->settle;
	}
	return false;
}

/*
 * When no ring entry tried may take the flow. The ring is built from the
 * weights alone, so with most backends UNHEALTHY or OPEN every tried entry
 * can name one of them while a usable backend sits further along. The
 * service's slots (ferry_slot_v1) are scanned from hash % count for one
 * that may (the first GOOD, else the first DEGRADED), as the socket LB's
 * fallback does; none: the flow has no backend. Else the pick comes from a
 * walk on along the ring (ferry_ring_walk_len() entries: 8 per backend, at
 * most 1,024), the first GOOD backend it meets: the ring is the same on
 * every LB node with the same backends, the slots are not (they keep their
 * places through a node's history), so the walk keeps the nodes agreeing.
 * Where the walk meets no GOOD one, the scan's GOOD one wins, then the
 * walk's DEGRADED one, then the scan's. When the scan found no GOOD one,
 * none is there to meet: the walk ends at its first DEGRADED one (settle)
 * instead of walking its whole length, the same pick at a fraction of the
 * cost, in the state (a partial outage) where new flows come here most.
 */
struct walk_ctx {
	struct xpick p;
	__u32	m;
	__u32	idx;
	void	*ring;		/* the service's ring, looked up once */
};

static long walk_cb(__u32 i, void *data)
{
	struct walk_ctx *c = data;
	__u32 idx = c->idx, *bid;

	(void)i;
	bid = bpf_map_lookup_elem(c->ring, &idx);
	if (!bid || !*bid)
		return 1;
	c->idx = idx + 1 >= c->m ? 0 : idx + 1;
	return xpick_offer(&c->p, *bid);
}

struct scan_ctx {
	struct xpick p;
	__u32	start;
	__u32	count;
};

static long scan_cb(__u32 i, void *data)
{
	struct scan_ctx *c = data;
	struct ferry_slot_key sk = { .svc_id = c->p.svc_id, .slot = c->start + i };
	struct ferry_slot *slot;

	if (sk.slot >= c->count)
		sk.slot -= c->count;
	slot = bpf_map_lookup_elem(&ferry_slot_v1, &sk);
	if (!slot)
		return 0;		/* a slot being rewritten: the next one */
	return xpick_offer(&c->p, slot->backend_id);
}

/*
 * The fallback's backend for a new flow of service svc_id (key sk) whose
 * ring (m entries) tries ended before entry idx; 0 when none may take it.
 * Global, as ferry_ring_pick is; bpf_loop bounds the walk and the scan
 * (FERRY_MAX_SVC_BACKENDS slots). Only new flows whose ring entries all
 * refused come here: established flows never read the slots.
 */
__noinline __u32 ferry_fallback_pick(const struct ferry_svc_key *sk, __u32 svc_id, __u32 m,
				     __u32 idx, __u32 hash)
{
	struct scan_ctx c = { .p.svc_id = svc_id };
	struct walk_ctx w = { .p.svc_id = svc_id, .m = m, .idx = idx };
	struct ferry_svc *svc;
	__u32 found;

	if (!sk)
		return 0;
	svc = bpf_map_lookup_elem(&ferry_svc_v1, sk);
	if (!svc || svc->id != svc_id)
		return 0;
	c.count = svc->count;
	if (c.count > FERRY_MAX_SVC_BACKENDS)
		c.count = FERRY_MAX_SVC_BACKENDS;
	if (!c.count)
		return 0;
	/* The scan first: when nothing may take the flow (an outage) it costs
	 * count lookups, not the walk's too. It stops at the first GOOD. */
	c.start = hash % c.count;
	bpf_loop(c.count, scan_cb, &c, 0);
	if (!c.p.found && !c.p.degraded)
		return 0;
	w.ring = bpf_map_lookup_elem(&ferry_xring_v1, &svc_id);
	if (!w.ring)
		return c.p.found ?: c.p.degraded;
	w.p.settle = !c.p.found;
	bpf_loop(ferry_ring_walk_len(c.count, m), walk_cb, &w, 0);
	found = w.p.found ?: c.p.found ?: w.p.degraded ?: c.p.degraded;
	xstat_inc(FERRY_XSTAT_RING_FALLBACK);
	return found;
}

/*
 * A new flow's backend: the ring entry for hash, or the next entries whose
 * backend takes new flows; when none of them may, the fallback above (sk:
 * the service's key). 0 when no backend of the service may take the flow.
 * A global function: the verifier checks its loop once, not once per caller
 * path, which keeps the main program far from the complexity limit; and
 * the fallback is called from here, not from lb(), so the main program's
 * code, the established-flow path's included, is as it was without it.
 */
__noinline __u32 ferry_ring_pick(__u32 svc_id, __u32 hash, const struct ferry_svc_key *sk)
{
	struct xpick p = { .svc_id = svc_id };
	__u32 id = svc_id, idx, m, *bid;
	void *ring;
	int i;

	ring = bpf_map_lookup_elem(&ferry_xring_v1, &id);
	if (!ring)
		return RING_NONE;
	/* The ring's own size, not the configured one: a ring built before
	 * --xdp-ring-size changed serves at its size until the sync rebuilds
	 * it (ferryd writes the new size before that sync). The lookups below
	 * read this header anyway: a ring is an inner map, never inlined. */
	m = ((const struct bpf_map *)ring)->max_entries;
	idx = ferry_ring_index(hash, m);
	for (i = 0; i < FERRY_XDP_RING_TRIES; i++) {
		bid = bpf_map_lookup_elem(ring, &idx);
		if (!bid)
			return RING_NONE;
		if (!*bid)
			return 0;		/* empty ring: no backend has weight */
		if (xpick_offer(&p, *bid))
			return p.found;
		xstat_inc(FERRY_XSTAT_RING_RETRY);
		if (++idx >= m)
			idx = 0;
	}
	return p.degraded ? p.degraded : ferry_fallback_pick(sk, svc_id, m, idx, hash);
}

/* ---- next hop --------------------------------------------------------- */

/* This CPU's cache slot for backend be_id; NULL if the map has no row for it. */
static __always_inline struct xnh *nh_slot(__u32 be_id)
{
	__u32 key = bpf_get_smp_processor_id() * FERRY_XNH_SLOTS + (be_id & (FERRY_XNH_SLOTS - 1));

	return bpf_map_lookup_elem(&ferry_xnh, &key);
}

enum { NH_OK = 0, NH_NO_BACKEND, NH_NO_ROUTE };

/* Is be's address one of this node's? The FIB cannot say (a local route
 * and no route at all both answer NOT_FWDED); the addresses ferryd records
 * for the decap, which every backend runs, can. */
static __always_inline bool node_addr(const struct ferry_backend *be)
{
	struct ferry_xdcap_key k = { .family = be->family };

	__builtin_memcpy(k.addr, be->addr, sizeof(k.addr));
	return bpf_map_lookup_elem(&ferry_xdaddr_v1, &k);
}

/* Resolve backend be_id of service svc_id into nh; NH_OK, or why not. */
static __noinline int nh_resolve(struct xdp_md *ctx, const struct ferry_xcfg *cfg, __u32 be_id,
				 __u32 svc_id, struct xnh *nh)
{
	struct bpf_fib_lookup fib = {};
	struct ferry_backend *be;
	__u32 epoch;
	int rc;

	/* The epoch first: a row must not carry an epoch newer than the
	 * backend it was resolved from (userspace bumps it after deleting). */
	epoch = *(volatile const __u32 *)&cfg->be_epoch;
	be = bpf_map_lookup_elem(&ferry_be_v1, &be_id);
	if (!be || be->svc_id != svc_id)
		return NH_NO_BACKEND;
	fib.ifindex = ctx->ingress_ifindex;
	if (be->family == AF_INET) {
		fib.family = AF_INET;
		fib.ipv4_src = cfg->src4;
		fib.ipv4_dst = be->addr[0];
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, cfg->src6, 16);
		__builtin_memcpy(fib.ipv6_dst, be->addr, 16);
	}
	xstat_inc(FERRY_XSTAT_NH_LOOKUP);
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	nh->local = 0;
	nh->vlan = 0;
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		const struct ferry_xvlan *v;
		__u32 dev = fib.ifindex;

		__builtin_memcpy(nh->dmac, fib.dmac, 6);
		__builtin_memcpy(nh->smac, fib.smac, 6);
		nh->mtu = fib.mtu_result ? fib.mtu_result : XDP_DEF_MTU;
		/* A route over a VLAN device (eth0.100): the FIB names that
		 * device and resolved the neighbour on it, but says nothing of
		 * the tag, and XDP cannot send through it. Its frames leave by
		 * the lower device with its tag. One level: the lower device
		 * of a VLAN over a VLAN is itself a VLAN device (no native
		 * XDP; docs/xdp.md). */
		v = bpf_map_lookup_elem(&ferry_xvlan_v1, &dev);
		if (v) {
			dev = v->lower_ifindex;
			nh->vlan = *(const __u32 *)&v->proto;
		}
		nh->ifindex = dev;
	} else if (rc == BPF_FIB_LKUP_RET_NOT_FWDED && node_addr(be)) {
		/* The backend is this node (it binds the VIP, as every backend
		 * does): its packets go up this node's stack as they came, not
		 * through a tunnel to itself. */
		nh->local = 1;
		nh->ifindex = 0;
		nh->mtu = 0xffff;
	} else if (cfg->flags & FERRY_XCFG_F_GW) {
		xstat_inc(FERRY_XSTAT_NH_GATEWAY);
		__builtin_memcpy(nh->dmac, cfg->gw_mac, 6);
		nh->ifindex = 0;
		nh->mtu = cfg->gw_mtu ? cfg->gw_mtu : XDP_DEF_MTU;
	} else {
		nh->backend_id = 0;
		return NH_NO_ROUTE;
	}
	nh->backend_id = be_id;
	nh->svc_id = svc_id;
	nh->epoch = epoch;
	nh->family = be->family;
	__builtin_memcpy(nh->addr, be->addr, 16);
	nh->expires = bpf_jiffies64() + FERRY_XNH_TTL_JIFFIES;
	return NH_OK;
}

/*
 * Backend be_id's next hop: this CPU's cache slot while it holds be_id of
 * svc_id, resolved in the current epoch, and has not expired; else resolved
 * into it; into spare when this CPU has no slot (fail open: every packet
 * resolves). NULL and *why if none.
 */
static __always_inline struct xnh *nh_get(struct xdp_md *ctx, const struct ferry_xcfg *cfg,
					  __u32 be_id, __u32 svc_id, __u64 now, struct xnh *spare,
					  int *why)
{
	struct xnh *nh = nh_slot(be_id);

	*why = NH_OK;
	if (nh && nh->backend_id == be_id && nh->svc_id == svc_id && nh->epoch == cfg->be_epoch &&
	    now < nh->expires)
		return nh;
	if (!nh)
		nh = spare;
	*why = nh_resolve(ctx, cfg, be_id, svc_id, nh);
	return *why == NH_OK ? nh : NULL;
}

/* ---- packet rewriting ------------------------------------------------- */

/* L2 header as received: our MAC as the sender used it, and VLAN tags. */
struct l2save {
	__u8	dst[6];
	__u8	tags[8];
	__u32	len;
};

static __always_inline int l2_save(void *data, void *end, struct l2save *s, __u32 l2_len)
{
	__u8 *b = data;

	if ((void *)(b + XL2_MAX) > end)
		return -1;
	__builtin_memcpy(s->dst, b, 6);
	__builtin_memcpy(s->tags, b + 12, 8);
	s->len = l2_len;
	return 0;
}

/* Write L2 at data: new MACs, the saved tags, proto as the inner ethertype. */
static __always_inline int l2_write(void *data, void *end, const struct l2save *s,
				    const __u8 *dmac, const __u8 *smac, __be16 proto)
{
	__u8 *b = data;

	if ((void *)(b + XL2_MAX) > end)
		return -1;
	__builtin_memcpy(b, dmac, 6);
	__builtin_memcpy(b + 6, smac, 6);
	if (s->len == XETH_HLEN) {
		*(__be16 *)(b + 12) = proto;
	} else if (s->len == XETH_HLEN + XVLAN_HLEN) {
		__builtin_memcpy(b + 12, s->tags, 4);
		*(__be16 *)(b + 16) = proto;
	} else {
		__builtin_memcpy(b + 12, s->tags, 8);
		*(__be16 *)(b + 20) = proto;
	}
	return 0;
}

/*
 * The outer L2 header at b, l2_out bytes: nh's MACs, the tags, then proto.
 * gw (the --xdp-gateway, XDP_TX out of the ingress device): smac the one
 * the sender addressed, and the VLAN tags as received (the gateway sent us
 * the frame in those VLANs), l2_out the received L2 length, the old header
 * under b + olen. Otherwise a FIB next hop: its smac, and its own tag, vlan
 * (l2_out 18), or none (14); the received tags name the client's VLANs,
 * not the one bpf_fib_lookup resolved the neighbour in. Words in
 * registers, stored whole: the old header is read before anything is
 * written over it.
 */
static __always_inline void l2_encap(__u8 *b, __u32 olen, __u32 l2_out, bool gw, bool tagged,
				     const struct xnh *nh, __u32 vlan, __be16 proto)
{
	__u8 *old = b + olen;
	__u64 tags = 0;
	__u32 slo;
	__u16 shi;

	if (gw) {
		tags = *(__u64 *)(old + 12);
		slo = *(__u32 *)old;
		shi = *(__u16 *)(old + 4);
	} else {
		slo = *(const __u32 *)nh->smac;
		shi = *(const __u16 *)(nh->smac + 4);
	}
	asm volatile("" ::: "memory");	/* all of the old header read before any store */
	*(__u32 *)b = *(const __u32 *)nh->dmac;
	*(__u16 *)(b + 4) = *(const __u16 *)(nh->dmac + 4);
	*(__u16 *)(b + 6) = (__u16)slo;
	*(__u16 *)(b + 8) = (__u16)(slo >> 16);
	*(__u16 *)(b + 10) = shi;
	if (!gw) {
		if (tagged) {
			*(__u32 *)(b + 12) = vlan;
			*(__u16 *)(b + 16) = proto;
		} else {
			*(__u16 *)(b + 12) = proto;
		}
	} else if (l2_out == XETH_HLEN) {
		*(__u16 *)(b + 12) = proto;
	} else if (l2_out == XETH_HLEN + XVLAN_HLEN) {
		*(__u32 *)(b + 12) = (__u32)tags;
		*(__u16 *)(b + 16) = proto;
	} else {
		*(__u64 *)(b + 12) = tags;
		*(__u16 *)(b + 20) = proto;
	}
}

/*
 * Encapsulate the L3 datagram for nh and write the new L2 header (gw: the
 * gateway, which keeps the VLAN tags received; else nh's one tag or none,
 * so the head grows by the outer header plus or less the change in tags).
 * The outer header is built in registers and stored in 32-bit words; the
 * IPv4 checksum is summed from the same words (one's complement sums do
 * not care about byte order), never read back from memory.
 */
static __always_inline int encap(struct xdp_md *ctx, const struct xpkt *p, const struct xnh *nh,
				 const struct ferry_xcfg *cfg, __u32 hash, bool gw, bool tagged)
{
	__u32 bits = ferry_rotl32(hash, 16), l2_len = p->l2_len & 0x1f, l3_len = p->l3_len;
	__u32 vlan = tagged ? nh->vlan : 0;
	__u32 tos = p->tos, v4 = nh->family == AF_INET;
	__u32 l2_out = gw ? l2_len : tagged ? XETH_HLEN + XVLAN_HLEN : XETH_HLEN;
	__u8 inner = p->key.family == AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6;
	__u32 olen = v4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	void *data, *end;
	__u32 *w;

	/* The L3 datagram stays where it is: the head grows by what goes
	 * before it, l2_out + olen, less the l2_len bytes already there. */
	if (bpf_xdp_adjust_head(ctx, -(int)(olen + l2_out - l2_len)))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (v4) {
		__u32 w0, w1, w2, w3;
		__u64 sum;

		/* gw: the old L2 header (up to XL2_MAX) sits olen bytes in. */
		if (data + sizeof(struct iphdr) + XL2_MAX > end)
			return -1;
		w = data + l2_out;
		if ((void *)(w + 5) > end)
			return -1;
		w0 = 0x45 | tos << 8 | (__u32)bpf_htons(l3_len + sizeof(struct iphdr)) << 16;
		w1 = p->df ? (__u32)bpf_htons(XIP_DF) << 16 : 0;
		w2 = 64 | (__u32)inner << 8;
		w3 = (cfg->src4 & cfg->src4_mask) | (bits & ~cfg->src4_mask);
		sum = (__u64)w0 + w1 + w2 + w3 + nh->addr[0];
		sum = (sum & 0xffffffff) + (sum >> 32);
		l2_encap(data, sizeof(struct iphdr), l2_out, gw, tagged, nh, vlan, bpf_htons(XETH_P_IP));
		w[0] = w0;
		w[1] = w1;
		w[2] = w2 | (__u32)csum_fold(sum) << 16;
		w[3] = w3;
		w[4] = nh->addr[0];
	} else {
		if (data + sizeof(struct ipv6hdr) + XL2_MAX > end)
			return -1;
		w = data + l2_out;
		if ((void *)(w + 10) > end)
			return -1;
		l2_encap(data, sizeof(struct ipv6hdr), l2_out, gw, tagged, nh, vlan, bpf_htons(XETH_P_IPV6));
		w[0] = bpf_htonl(6U << 28 | tos << 20 | (hash & 0xfffff));
		w[1] = bpf_htons(l3_len) | (__u32)inner << 16 | 64U << 24;
		w[2] = cfg->src6[0];
		w[3] = cfg->src6[1];
		w[4] = cfg->src6[2];
		w[5] = (cfg->src6[3] & cfg->src6_mask) | (bits & ~cfg->src6_mask);
		w[6] = nh->addr[0];
		w[7] = nh->addr[1];
		w[8] = nh->addr[2];
		w[9] = nh->addr[3];
	}
	return 0;
}

/*
 * Answer "fragmentation needed" (IPv4) for a datagram that does not fit
 * after encapsulation: [L2 back to the sender][IPv4][ICMP 3/4][quote].
 * The quote already sits where it belongs once the head grew by 28 bytes;
 * it is ICMP4_QUOTE bytes, or the header and 8 more when that is longer.
 * A datagram that cannot be answered (too short to quote, the frame cannot
 * grow) is dropped as drop_too_big, as one not allowed an answer is.
 */
static __noinline int too_big4(struct xdp_md *ctx, __u32 l2_len, __u32 mtu)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct iphdr *oip, o = {};
	struct icmphdr *ic;
	struct l2save s;
	__u8 smac[6];
	__u32 vip, client, len, quote, i;
	int grow = sizeof(struct iphdr) + sizeof(struct icmphdr);
	__u64 sum;

	l2_len &= 0x1f;
	if (l2_save(data, end, &s, l2_len))
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	__builtin_memcpy(smac, data + 6, 6);
	oip = data + l2_len;
	if ((void *)(oip + 1) > end)
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	vip = oip->daddr;
	client = oip->saddr;
	quote = oip->ihl * 4 + 8;	/* 28 to 68: the parser saw ihl >= 5 */
	if (quote < ICMP4_QUOTE)
		quote = ICMP4_QUOTE;
	len = end - data;
	if (len < l2_len + quote)
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	if (bpf_xdp_adjust_head(ctx, -grow))
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	if (bpf_xdp_adjust_tail(ctx, (int)(l2_len + grow + quote) - (int)(len + grow)))
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + l2_len + grow + ICMP4_QUOTE > end)
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	if (l2_write(data, end, &s, smac, s.dst, bpf_htons(XETH_P_IP)))
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	ic = data + l2_len + sizeof(struct iphdr);
	if ((void *)ic + sizeof(*ic) + ICMP4_QUOTE > end)
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	ic->type = 3;
	ic->code = 4;
	ic->checksum = 0;
	ic->un.frag.__unused = 0;
	ic->un.frag.mtu = bpf_htons(mtu);
	/* The first ICMP4_QUOTE bytes in one helper call of a constant size,
	 * a longer quote's words after them one by one (three at most): the
	 * frame ends where the quote does, so each has its own bounds check. */
	sum = bpf_csum_diff(NULL, 0, (__be32 *)ic, sizeof(*ic) + ICMP4_QUOTE, 0);
	for (i = ICMP4_QUOTE; i < ICMP4_QUOTE_MAX; i += 4) {
		__u32 *w = (void *)(ic + 1) + i;

		if (i >= quote)
			break;
		if ((void *)(w + 1) > end)
			return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
		sum += *w;
	}
	ic->checksum = csum_fold(sum);
	o.version = 4;
	o.ihl = 5;
	o.tos = 0xc0;
	o.tot_len = bpf_htons(grow + quote);
	o.ttl = 64;
	o.protocol = IPPROTO_ICMP;
	o.saddr = vip;
	o.daddr = client;
	o.check = ip4_csum(&o);
	oip = data + l2_len;
	if ((void *)(oip + 1) > end)
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	__builtin_memcpy(oip, &o, sizeof(o));
	return XV(XDP_TX, FERRY_XSTAT_ICMP_TOO_BIG);
}

/* IPv6 "packet too big", the same way; the checksum covers a pseudo-header. */
static __noinline int too_big6(struct xdp_md *ctx, __u32 l2_len, __u32 mtu)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct {
		__u32 saddr[4];
		__u32 daddr[4];
		__be32 len;
		__be32 nexthdr;
	} ph = {};
	struct ipv6hdr *ip;
	struct icmp6hdr *ic;
	struct l2save s;
	__u8 smac[6];
	__u32 len;
	int grow = sizeof(struct ipv6hdr) + sizeof(struct icmp6hdr);
	__u64 sum;

	l2_len &= 0x1f;
	if (l2_save(data, end, &s, l2_len))
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	__builtin_memcpy(smac, data + 6, 6);
	ip = data + l2_len;
	if ((void *)(ip + 1) > end)
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	copy6(ph.saddr, &ip->daddr);	/* from the VIP */
	copy6(ph.daddr, &ip->saddr);	/* to the client */
	len = end - data;
	if (len < l2_len + ICMP6_QUOTE)
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	if (bpf_xdp_adjust_head(ctx, -grow))
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	if (bpf_xdp_adjust_tail(ctx, (int)(l2_len + grow + ICMP6_QUOTE) - (int)(len + grow)))
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + l2_len + grow + ICMP6_QUOTE > end)
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	if (l2_write(data, end, &s, smac, s.dst, bpf_htons(XETH_P_IPV6)))
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	ic = data + l2_len + sizeof(struct ipv6hdr);
	if ((void *)ic + sizeof(*ic) + ICMP6_QUOTE > end)
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	ic->icmp6_type = 2;
	ic->icmp6_code = 0;
	ic->icmp6_cksum = 0;
	ic->icmp6_dataun.un_data32[0] = bpf_htonl(mtu);
	ph.len = bpf_htonl(sizeof(*ic) + ICMP6_QUOTE);
	ph.nexthdr = bpf_htonl(XIPPROTO_ICMPV6);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)ic, sizeof(*ic) + ICMP6_QUOTE, sum);
	ic->icmp6_cksum = csum_fold(sum);
	ip = data + l2_len;
	if ((void *)(ip + 1) > end)
		return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
	*(__u32 *)ip = bpf_htonl(6U << 28);
	ip->payload_len = bpf_htons(sizeof(*ic) + ICMP6_QUOTE);
	ip->nexthdr = XIPPROTO_ICMPV6;
	ip->hop_limit = 64;
	__builtin_memcpy(&ip->saddr, ph.saddr, 16);
	__builtin_memcpy(&ip->daddr, ph.daddr, 16);
	return XV(XDP_TX, FERRY_XSTAT_ICMP_TOO_BIG);
}

/* ---- flow table ------------------------------------------------------- */

/*
 * The set a flow hash lands in (ferry_xflow_set_of over the table's size),
 * its index in *idx; NULL only if the lookup fails, and then every packet
 * of the flow is chosen from the ring (fail open).
 */
static __always_inline struct ferry_xflow_set *flow_set(__u64 h64, __u32 *idx)
{
	*idx = ferry_xflow_set_of(h64, XFLOW_SETS);
	return bpf_map_lookup_elem(&ferry_xflow_v3, idx);
}

/* The way holding tag, its backend in *be_id; -1 if none. */
static __always_inline int flow_find(const struct ferry_xflow_set *s, __u32 tag, __u32 *be_id)
{
	__u64 want = (__u64)tag << 32;
	int i;

#pragma unroll
	for (i = 0; i < FERRY_XFLOW_WAYS; i++) {
		__u64 id = *(volatile const __u64 *)&s->way[i].id;

		if ((id & ~0xffffffffULL) == want && (__u32)id) {
			*be_id = (__u32)id;
			return i;
		}
	}
	return -1;
}

/* The way a new flow takes: an empty one, else the one idle longest. */
static __always_inline int flow_victim(const struct ferry_xflow_set *s, __u32 now)
{
	__u32 oldest = 0, age;
	int i, v = 0;

#pragma unroll
	for (i = 0; i < FERRY_XFLOW_WAYS; i++) {
		if (!(__u32)s->way[i].id)
			return i;
		age = now - s->way[i].stamp;
		if (age > oldest) {
			oldest = age;
			v = i;
		}
	}
	return v;
}

static __always_inline void flow_insert(struct ferry_xflow_set *s, __u32 idx, int way,
					const struct xpkt *p, __u32 tag, __u32 be_id, __u32 svc_id,
					__u32 now)
{
	struct ferry_xclient_set *cs = bpf_map_lookup_elem(&ferry_xclient_v1, &idx);
	struct ferry_xflow *w = &s->way[way & (FERRY_XFLOW_WAYS - 1)];

	/* The client is for ferryctl; no packet waits on it. */
	if (cs) {
		struct ferry_xclient *c = &cs->way[way & (FERRY_XFLOW_WAYS - 1)];

		__builtin_memcpy(c->addr, p->key.src, sizeof(c->addr));
		c->port = p->key.sport;
		c->proto = p->key.proto;
		c->family = p->key.family;
	}
	w->stamp = now;
	w->svc_id = svc_id;
	/* id is what the data path trusts: it goes in one store, last. */
	asm volatile("" ::: "memory");
	*(volatile __u64 *)&w->id = (__u64)tag << 32 | be_id;
}

/* ---- VIP lookup -------------------------------------------------------- */

/*
 * The XDP service id of sk from the VIP index: 1 and *svc_id when found, 0
 * when sk is no XDP VIP, -1 when the index cannot say (its set is not built,
 * or a VIP of the set did not fit in it) and ferry_svc_v1 must.
 */
static __always_inline int xsvc_find(const struct ferry_svc_key *sk, __u32 hash, __u32 *svc_id)
{
	__u32 idx = hash & (XSVC_SETS - 1);
	/* port, proto, family as one word, from the fields (the parser stored
	 * them one by one: a 32-bit load across those stores would stall) */
	__u32 want = sk->port | (__u32)sk->proto << 16 | (__u32)sk->family << 24;
	const struct ferry_xsvc_set *s = bpf_map_lookup_elem(&ferry_xsvc_v1, &idx);
	__u32 flags;
	int i;

	if (!s)
		return -1;
	flags = s->way[0].flags;
	if (!(flags & FERRY_XSVC_F_VALID))
		return -1;
#pragma unroll
	for (i = 0; i < FERRY_XSVC_WAYS; i++) {
		const struct ferry_xsvc *w = &s->way[i];
		__u32 id = *(volatile const __u32 *)&w->svc_id;

		if (id && *(const __u32 *)&w->key.port == want && w->key.addr[0] == sk->addr[0] &&
		    w->key.addr[1] == sk->addr[1] && w->key.addr[2] == sk->addr[2] &&
		    w->key.addr[3] == sk->addr[3]) {
			*svc_id = id;
			return 1;
		}
	}
	return flags & FERRY_XSVC_F_MORE ? -1 : 0;
}

/* Does the filter say no XDP VIP hashes to hash (ferry_xsvc_hash)? */
static __always_inline bool vip_filtered(__u32 hash)
{
	__u32 zero = 0, bit = ferry_xvipf_bit(hash);
	const struct ferry_xvipf *f = bpf_map_lookup_elem(&ferry_xvipf_v1, &zero);

	return f && (f->w[bit / 64] >> (bit % 64) & 1);
}

/* The XDP service of sk, whose hash the filter let by, or 0: the index,
 * else ferry_svc_v1. */
static __always_inline __u32 vip_lookup(const struct ferry_svc_key *sk, __u32 hash)
{
	struct ferry_svc *svc;
	__u32 id = 0;
	int found;

	found = xsvc_find(sk, hash, &id);
	if (found >= 0)
		return id;
	xstat_inc(FERRY_XSTAT_VIP_SLOW);
	svc = bpf_map_lookup_elem(&ferry_svc_v1, sk);
	return svc && (svc->flags & FERRY_SVC_F_XDP) ? svc->id : 0;
}

/* ---- the program ------------------------------------------------------ */

/*
 * The load balancer proper, for a packet of XDP service svc_id: its flow
 * hash h64 and the flow's set fs (index fidx, NULL when it has none).
 */
static __always_inline int lb(struct xdp_md *ctx, struct xpkt *p, __u32 svc_id, __u64 h64,
			      struct ferry_xflow_set *fs, __u32 fidx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	const struct ferry_xcfg *cfg;
	struct xnh *nh = NULL, spare;
	__u32 zero = 0, be_id = 0, hash, tag, olen, dev;
	__u64 now;
	int ret, way = -1, why = NH_OK;

	cfg = bpf_map_lookup_elem(&ferry_xcfg_v1, &zero);
	if (!cfg || !cfg->ring_size)
		return vpass(FERRY_XSTAT_PASS_NO_RING);
	ret = validate_l4(data, end, p);
	if (ret != XP_CONTINUE)
		return ret;

	now = bpf_jiffies64();
	hash = (__u32)h64;
	tag = ferry_xflow_tag(h64, svc_id);
	if (fs)
		way = flow_find(fs, tag, &be_id);
	if (p->syn) {
		be_id = 0;	/* a SYN starts a new flow; it reuses the way */
	} else if (be_id && fs) {
		struct ferry_xflow *w = &fs->way[way & (FERRY_XFLOW_WAYS - 1)];

		if (w->stamp != (__u32)now)
			w->stamp = now;
	}
	if (be_id) {
		nh = nh_get(ctx, cfg, be_id, svc_id, now, &spare, &why);
		/* A hit only if the flow keeps its backend: one that is gone
		 * is chosen again, and counted a miss there, once. */
		if (why == NH_NO_BACKEND)
			be_id = 0;
		else
			xstat_inc(FERRY_XSTAT_LRU_HIT);
	}
	if (!be_id) {
		struct xpkt *q = p;

		/* q is p, made opaque: otherwise the compiler works the VIP
		 * key's address out once for this call and the VIP lookup, and
		 * spills it on every VIP packet's way (three instructions). */
		barrier_var(q);
		be_id = ferry_ring_pick(svc_id, hash, ferry_xflow_vip(&q->key));
		if (be_id == RING_NONE)
			return vpass(FERRY_XSTAT_PASS_NO_RING);
		if (!be_id)
			return vdrop(FERRY_XSTAT_DROP_NO_BACKEND);
		xstat_inc(p->syn ? FERRY_XSTAT_SYN_NEW : FERRY_XSTAT_LRU_MISS);
		if (!p->icmp && fs) {
			if (way < 0)
				way = flow_victim(fs, now);
			flow_insert(fs, fidx, way, p, tag, be_id, svc_id, now);
		}
		nh = nh_get(ctx, cfg, be_id, svc_id, now, &spare, &why);
	}
	if (!nh)
		return vdrop(why == NH_NO_BACKEND ? FERRY_XSTAT_DROP_NO_BACKEND :
						    FERRY_XSTAT_DROP_NO_ROUTE);

	/*
	 * What goes into the tunnel is the whole frame after L2, bytes past
	 * the IP length (Ethernet padding, or anything) included, so that is
	 * what must fit. Padding is a few bytes on short frames and fits;
	 * only when the frame does not while the datagram would, the tail
	 * goes first (rare: adjust_tail is no hot path's cost).
	 */
	olen = nh->family == AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	if (p->pkt_len - p->l2_len + olen > nh->mtu) {
		__u32 mtu = nh->mtu - olen;

		if (p->l3_len + olen <= nh->mtu) {
			if (bpf_xdp_adjust_tail(ctx, (int)(p->l2_len + p->l3_len) - (int)p->pkt_len))
				return vdrop(FERRY_XSTAT_DROP_ADJUST);
			p->pkt_len = p->l2_len + p->l3_len;	/* the bytes counted: what was sent */
		} else if (p->icmp || !p->df) {
			return vdrop(FERRY_XSTAT_DROP_TOO_BIG);
		} else if (p->key.family == AF_INET) {
			return too_big4(ctx, p->l2_len, mtu < 68 ? 68 : mtu);
		} else {
			return too_big6(ctx, p->l2_len, mtu < 1280 ? 1280 : mtu);
		}
	}

	if (p->icmp)
		xstat_inc(FERRY_XSTAT_ICMP_FWD);
	xcnt_add(&ferry_xvip_v2, XVIP_STRIDE, svc_id, p->pkt_len);
	xcnt_add(&ferry_xbe_v2, XBE_STRIDE, be_id, p->pkt_len);
	if (nh->local)		/* its MTU is 0xffff: never too big */
		return XV(XDP_PASS, FERRY_XSTAT_LOCAL);
	/* The gateway: back out of the ingress device in the VLANs the frame
	 * came in. A FIB next hop: its own tag or none, out of the ingress
	 * device when the route's (lower) device is that one, else redirected
	 * to it. encap() is inlined once for each kind, gw and tagged
	 * constants: each header is built straight, the untagged one (most
	 * next hops) with no more work than before VLAN devices counted. */
	dev = nh->ifindex;
	if (!dev) {
		if (encap(ctx, p, nh, cfg, hash, true, false))
			return vdrop(FERRY_XSTAT_DROP_ADJUST);
		return XV(XDP_TX, FERRY_XSTAT_TX);
	}
	if (nh->vlan ? encap(ctx, p, nh, cfg, hash, false, true) :
		       encap(ctx, p, nh, cfg, hash, false, false))
		return vdrop(FERRY_XSTAT_DROP_ADJUST);
	if (dev == ctx->ingress_ifindex)
		return XV(XDP_TX, FERRY_XSTAT_TX);
	return XV(bpf_redirect(dev, 0), FERRY_XSTAT_REDIRECT);
}

SEC("xdp")
int ferry_xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct xpkt p = {};
	__be16 proto;
	int l2, ret;

	l2 = parse_l2(data, end, &proto);
	p.l2_len = l2;
	p.pkt_len = end - data;
	if (l2 < 0)
		ret = xpass(FERRY_XSTAT_PASS_MALFORMED);
	else if (proto == bpf_htons(XETH_P_IP))
		ret = parse4(data, end, &p);
	else if (proto == bpf_htons(XETH_P_IPV6))
		ret = parse6(data, end, &p);
	else
		ret = xpass(FERRY_XSTAT_PASS_NOT_IP);
	if (ret == XP_CONTINUE) {
		const struct ferry_svc_key *sk = ferry_xflow_vip(&p.key);
		__u32 vhash = ferry_xsvc_hash(sk), svc_id = 0, fidx = 0;
		struct ferry_xflow_set *fs = NULL;
		__u64 h64 = 0;

		if (!vip_filtered(vhash)) {
			/* The flow's set matters only for a VIP, but its
			 * address depends on the packet alone. Hashed before
			 * the index is asked, the set's read follows the
			 * index's closely enough for the CPU to have both
			 * misses in flight at once; hashed after, it did not
			 * (~30 ns more per established-flow packet,
			 * docs/benchmarks.md, seventh round). */
			h64 = ferry_xflow_hash64(&p.key);
			fs = flow_set(h64, &fidx);
			svc_id = vip_lookup(sk, vhash);
		}
		/* Most of what an ingress interface sees: its own way out,
		 * a constant counter slot, no verdict to decode. */
		if (!svc_id) {
			xstat_inc(FERRY_XSTAT_PASS_NOT_VIP);
			return XDP_PASS;
		}
		ret = lb(ctx, &p, svc_id, h64, fs, fidx);
	}
	return xverdict(ret);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
