/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Header parsing and checksum helpers for the XDP programs. Every read is
 * preceded by its own bounds check against data_end, with offsets whose
 * upper bound the verifier can see (L2 <= 22, IPv4 header <= 60 bytes).
 */
#ifndef FERRY_XDP_PARSE_BPF_H
#define FERRY_XDP_PARSE_BPF_H

#include "common.bpf.h"

#define XETH_P_IP	0x0800
#define XETH_P_IPV6	0x86DD
#define XETH_P_8021Q	0x8100
#define XETH_P_8021AD	0x88A8
#define XIPPROTO_ICMPV6	58
#define XIP_DF		0x4000
#define XIP_MF_OFFSET	0x3fff
#define XIP_OFFSET	0x1fff
#define XETH_HLEN	14
#define XVLAN_HLEN	4
#define XL2_MAX		(XETH_HLEN + 2 * XVLAN_HLEN)

struct xports {
	__be16	src;
	__be16	dst;
};

static __always_inline bool is_vlan(__be16 proto)
{
	return proto == bpf_htons(XETH_P_8021Q) || proto == bpf_htons(XETH_P_8021AD);
}

/*
 * Ethernet with up to two VLAN tags. Returns the L2 length (14, 18 or 22)
 * with *proto the ethertype after the tags, or -1 when truncated or tagged
 * more deeply than we look.
 */
static __always_inline int parse_l2(void *data, void *end, __be16 *proto)
{
	struct ethhdr *eth = data;
	struct vlan_hdr *vh;

	if ((void *)(eth + 1) > end)
		return -1;
	*proto = eth->h_proto;
	if (!is_vlan(*proto))
		return XETH_HLEN;
	vh = data + XETH_HLEN;
	if ((void *)(vh + 1) > end)
		return -1;
	*proto = vh->h_vlan_encapsulated_proto;
	if (!is_vlan(*proto))
		return XETH_HLEN + XVLAN_HLEN;
	vh = data + XETH_HLEN + XVLAN_HLEN;
	if ((void *)(vh + 1) > end)
		return -1;
	*proto = vh->h_vlan_encapsulated_proto;
	if (is_vlan(*proto))
		return -1;
	return XL2_MAX;
}

static __always_inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* Checksum of an IPv4 header without options, built on the stack. */
static __always_inline __u16 ip4_csum(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u64 s = 0;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*ip) / 2); i++)
		s += w[i];
	return csum_fold(s);
}

#endif /* FERRY_XDP_PARSE_BPF_H */
