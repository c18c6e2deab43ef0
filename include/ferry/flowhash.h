/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maglev affinity hash of a connect(): the client's network namespace
 * (its netns cookie), the service, and the client's bound address if any.
 * One definition for the connect hooks (sock_lb.bpf.c) and for
 * `ferryctl explain`, which must name the backend the kernel would pick.
 * Include after vmlinux.h (BPF) or <linux/types.h>, and after abi.h.
 */
#ifndef FERRY_FLOWHASH_H
#define FERRY_FLOWHASH_H

/* src4, src6_3: the socket's bound IPv4 address and the last word of its
 * bound IPv6 address, as the socket holds them (0 when unbound). */
static inline __u32 ferry_flow_hash(__u64 netns_cookie, const struct ferry_svc_key *k,
				    __u32 src4, __u32 src6_3)
{
	__u32 h = 2166136261u, w[6];
	int i;

	w[0] = (__u32)netns_cookie;
	w[1] = (__u32)(netns_cookie >> 32);
	w[2] = k->addr[0] ^ k->addr[3];
	w[3] = k->port | (__u32)k->proto << 16;
	w[4] = src4;
	w[5] = src6_3;
	for (i = 0; i < 6; i++) {
		h ^= w[i];
		h *= 16777619u;
		h ^= h >> 15;
	}
	return h;
}

/* The i-th redraw from flow hash h (i = 0, 1, ...): where maglev's fallback
 * looks when the table entries tried name no usable backend. Every flow
 * draws its own sequence, the same one each time (the client keeps its
 * backend while nothing changes). murmur3's finalizer over h + (i + 1) x
 * the golden ratio. */
static inline __u32 ferry_redraw_hash(__u32 h, __u32 i)
{
	h += (i + 1) * 0x9e3779b9u;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

#endif /* FERRY_FLOWHASH_H */
