// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Backend side of the XDP load balancer's direct server return: strip the
 * outer IPv4 or IPv6 header of an IPIP / IPv6-in-IPv6 (or mixed 4in6, 6in4)
 * packet addressed to this node and hand the inner datagram to the stack,
 * which delivers it to the VIP bound locally (on lo or a dummy device); the
 * reply goes from the VIP straight to the client. This kernel has no ipip
 * module, so without this the tunnel packets would be dropped.
 *
 * Two checks guard it. The outer destination must be in ferry_xdcap_v1
 * (ferryd keeps the addresses of each --decap-iface there), and the inner
 * destination in ferry_xdvip_v1 (ferryd keeps there the VIPs of XDP services
 * that are bound on this node). The program makes both in one lookup, of the
 * pair in ferry_xdpair_v1 (every outer address with every VIP, derived by
 * userspace with the sets: a kernel hash lookup is most of a stripped
 * packet's cost); only a miss asks ferry_xdcap_v1, to count why it passed.
 * Anything else, tunnel or not, passes
 * untouched, and the kernel, without ipip, does not deliver it. Without the
 * second check, whoever reaches a decap address could hand the stack a
 * datagram from any source to any destination: to the node's own services,
 * or, with forwarding on, to anywhere it routes. With it, what the tunnel
 * delivers is what DSR needs: datagrams to the local XDP VIPs, from any
 * source (the LB carries the clients' addresses; filter the outer source
 * upstream if only the LBs may send). VLAN tags (up to two) are kept.
 *
 * ECN: the LB copies the inner TOS / traffic class to the outer header, so a
 * router on the tunnel path marks congestion (CE) on the outer one, which
 * stripping would lose. As RFC 6040 (normal mode) and the kernel's own
 * tunnels (INET_ECN_decapsulate) do, an outer CE turns an ECT inner header
 * CE, and over a Not-ECT inner header, which cannot carry the mark, the
 * packet is dropped (decap_ce_not_ect). Outer fragments are not reassembled:
 * they pass to the stack, which without ipip does not deliver them. Nor is
 * an outer header the kernel would refuse (wrong version, IPv4 checksum or
 * header length, a datagram longer than the frame): stripping it would
 * deliver what the kernel's own tunnel never would; it passes, counted
 * (decap_bad_outer), and the stack drops it.
 */
#include "lib/common.bpf.h"
#include "lib/xdp_maps.bpf.h"
#include "lib/xdp_parse.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct ferry_xdcap_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xdcap_v1 SEC(".maps");

/* Inner destinations: XDP VIPs bound on this node, for userspace (the
 * program asks the pairs below). Sized by --max-services. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_DEF_MAX_SERVICES);
	__type(key, struct ferry_xdcap_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xdvip_v1 SEC(".maps");

/* ferry_xdcap_v1 x ferry_xdvip_v1: what the program strips. Sized by --max-services. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_DEF_MAX_SERVICES);
	__type(key, struct ferry_xdpair_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_xdpair_v1 SEC(".maps");

/* The ECN field: the low two bits of the IPv4 TOS / IPv6 traffic class (RFC 3168). */
#define XECN_MASK	3
#define XECN_CE		3
#define XECN_V6_SHIFT	4	/* in the IPv6 header's second byte (flow_lbl[0]) */

static __always_inline bool is_tunnel(__u8 proto)
{
	return proto == IPPROTO_IPIP || proto == IPPROTO_IPV6;
}

/*
 * The outer header was CE: carry the mark to the inner header in (IPv4 if
 * inner is IPPROTO_IPIP, else IPv6), as RFC 6040's normal mode and the
 * kernel's ip_tunnel decap (__INET_ECN_decapsulate) do. ECT(0) and ECT(1)
 * become CE, the IPv4 checksum updated in place (RFC 1624, eqn. 3, over the
 * 16-bit word holding the TOS); CE stays. Not-ECT cannot carry it: -1, and
 * the caller drops the packet, as the kernel does (it counts rx_frame_errors).
 * Only packets marked on the way get here; the rest cost the caller one compare.
 */
static __noinline int ecn_set_ce(void *in, void *end, __u8 inner)
{
	if (inner == IPPROTO_IPIP) {
		struct iphdr *ip = in;
		__be16 *w = in, old, new;

		if ((void *)(ip + 1) > end || !(ip->tos & XECN_MASK))
			return -1;
		/* Read and written as the word only: a byte store to tos and a
		 * word load of the same bytes may be reordered (strict aliasing). */
		old = *w;
		new = old | bpf_htons(XECN_CE);
		*w = new;
		ip->check = csum_fold((__u16)~ip->check + (__u32)(__u16)~old + new);
	} else {
		struct ipv6hdr *ip = in;

		if ((void *)(ip + 1) > end || !(ip->flow_lbl[0] & XECN_MASK << XECN_V6_SHIFT))
			return -1;
		ip->flow_lbl[0] |= XECN_CE << XECN_V6_SHIFT;
	}
	return 0;
}

/* Move the L2 header olen bytes forward (over the outer header) and drop the gap. */
static __always_inline int strip(struct xdp_md *ctx, __u32 l2_len, __u32 olen, __u8 inner)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u8 l2[XL2_MAX];
	__u8 *dst;

	l2_len &= 0x1f;
	olen &= 0x7f;
	if (data + XL2_MAX > end)
		return -1;
	__builtin_memcpy(l2, data, XL2_MAX);
	*(__be16 *)&l2[(l2_len - 2) & 0x1f & ~1] =
		bpf_htons(inner == IPPROTO_IPIP ? XETH_P_IP : XETH_P_IPV6);
	dst = data + olen;
	if ((void *)(dst + XL2_MAX) > end)
		return -1;
	if (l2_len == XETH_HLEN) {
		__builtin_memcpy(dst, l2, XETH_HLEN);
	} else if (l2_len == XETH_HLEN + XVLAN_HLEN) {
		__builtin_memcpy(dst, l2, XETH_HLEN + XVLAN_HLEN);
	} else {
		__builtin_memcpy(dst, l2, XL2_MAX);
	}
	return bpf_xdp_adjust_head(ctx, (int)olen) ? -1 : 0;
}

/* Why a tunnel that is no pair of ours passed (or, malformed, was dropped). */
static __always_inline int refuse(struct ferry_xdpair_key *pk, bool malformed)
{
	struct ferry_xdcap_key k = {};

	__builtin_memcpy(k.addr, pk->outer, sizeof(k.addr));
	k.family = pk->outer_family;
	if (!bpf_map_lookup_elem(&ferry_xdcap_v1, &k)) {
		xstat_inc(FERRY_XSTAT_DECAP_NOT_OURS);
		return XDP_PASS;
	}
	if (malformed) {
		xstat_inc(FERRY_XSTAT_DECAP_MALFORMED);
		return XDP_DROP;
	}
	xstat_inc(FERRY_XSTAT_DECAP_NOT_VIP);
	return XDP_PASS;
}

/*
 * The sum of the IPv4 header at ip, ihl 32-bit words (5 to 15, the caller
 * checked): one's complement sums do not care about word size or byte
 * order, and a sound header folds to 0. The first five words are within
 * the bounds the caller checked; options are read one bounds-checked word
 * at a time (a word past the frame is never there in a header the caller
 * found within its tot_len, but the verifier needs the check; were it,
 * the sum would come out wrong and the header refused).
 */
static __always_inline __u64 ip4_hdr_sum(const struct iphdr *ip, __u32 ihl, void *end)
{
	const __u32 *w = (const void *)ip;
	__u64 sum = (__u64)w[0] + w[1] + w[2] + w[3] + w[4];
	int i;

	if (ihl > 5) {
		for (i = 5; i < 15; i++) {
			if (i >= (int)ihl || (void *)(w + i + 1) > end)
				break;
			sum += w[i];
		}
	}
	return sum;
}

SEC("xdp")
int ferry_xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ferry_xdpair_key pk = {};
	__u32 olen, dlen, l2;
	__be16 proto;
	__u8 inner, ecn;
	void *in;
	int r;

	r = parse_l2(data, end, &proto);
	if (r < 0)
		return XDP_PASS;
	l2 = r;
	/*
	 * The outer header must be one the kernel would take (ip_rcv_core,
	 * ipv6_rcv): its version, for IPv4 a header length within the total
	 * length and a checksum that holds, its datagram (dlen) within the
	 * frame (the frame may be longer: Ethernet padding). One that is not
	 * passes untouched and counted (decap_bad_outer), before any lookup:
	 * the stack drops it, as it would have without us.
	 */
	if (proto == bpf_htons(XETH_P_IP)) {
		struct iphdr *ip = data + l2;

		if ((void *)(ip + 1) > end || !is_tunnel(ip->protocol))
			return XDP_PASS;
		olen = ip->ihl * 4;
		dlen = bpf_ntohs(ip->tot_len);
		if (ip->version != 4 || olen < sizeof(*ip) || olen > dlen || (void *)ip + dlen > end)
			goto bad_outer;
		if (csum_fold(ip4_hdr_sum(ip, ip->ihl, end)))
			goto bad_outer;
		if (ip->frag_off & bpf_htons(XIP_MF_OFFSET))
			return XDP_PASS;	/* outer fragment: not reassembled; lost (docs/xdp.md) */
		inner = ip->protocol;
		ecn = ip->tos & XECN_MASK;
		pk.outer_family = AF_INET;
		pk.outer[0] = ip->daddr;
	} else if (proto == bpf_htons(XETH_P_IPV6)) {
		struct ipv6hdr *ip = data + l2;

		if ((void *)(ip + 1) > end || !is_tunnel(ip->nexthdr))
			return XDP_PASS;
		olen = sizeof(*ip);
		dlen = sizeof(*ip) + bpf_ntohs(ip->payload_len);
		if (ip->version != 6 || (void *)ip + dlen > end)
			goto bad_outer;
		inner = ip->nexthdr;
		ecn = ip->flow_lbl[0] >> XECN_V6_SHIFT & XECN_MASK;
		pk.outer_family = AF_INET6;
		__builtin_memcpy(pk.outer, &ip->daddr, 16);
	} else {
		return XDP_PASS;
	}
	/* The inner header must be there, within the outer datagram, and of
	 * the announced version (if the tunnel is ours: refuse() tells). */
	in = data + l2 + olen;
	if (inner == IPPROTO_IPIP) {
		struct iphdr *ip = in;

		if ((void *)(ip + 1) > end || olen + sizeof(*ip) > dlen || ip->version != 4 ||
		    ip->ihl < 5)
			return refuse(&pk, true);
		pk.inner_family = AF_INET;
		pk.inner[0] = ip->daddr;
	} else {
		struct ipv6hdr *ip = in;

		if ((void *)(ip + 1) > end || olen + sizeof(*ip) > dlen || ip->version != 6)
			return refuse(&pk, true);
		pk.inner_family = AF_INET6;
		__builtin_memcpy(pk.inner, &ip->daddr, 16);
	}
	if (!bpf_map_lookup_elem(&ferry_xdpair_v1, &pk))
		return refuse(&pk, false);
	/* Congestion met on the tunnel path reaches the inner header. */
	if (ecn == XECN_CE && ecn_set_ce(in, end, inner)) {
		xstat_inc(FERRY_XSTAT_DECAP_CE_NOT_ECT);
		return XDP_DROP;
	}
	if (strip(ctx, l2, olen, inner)) {
		xstat_inc(FERRY_XSTAT_DECAP_MALFORMED);
		return XDP_DROP;
	}
	xstat_inc(FERRY_XSTAT_DECAP_OK);
	return XDP_PASS;
bad_outer:
	xstat_inc(FERRY_XSTAT_DECAP_BAD_OUTER);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
