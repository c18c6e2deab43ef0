// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reference programs for the XDP load balancer benchmark (tools/bench/xdp.sh):
 * a program that only passes (the fixed cost BPF_PROG_TEST_RUN subtracts),
 * one that bounces every frame back (the veth forwarding ceiling), a
 * counting sink, and bench_peer, a model of the mature peer's forwarding path
 * (Katran's, IPv4/TCP) that gives ferry's figures a baseline measured in the
 * same run. The veth run's traffic comes from an AF_PACKET socket in
 * tools/bench/xdp.c, not from a program here: BPF_F_TEST_XDP_LIVE_FRAMES
 * returns EPERM on the kernel the benchmark runs on.
 */
#include "lib/common.bpf.h"
#include <ferry/bench_peer.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);		/* frames sunk */
	__type(key, __u32);
	__type(value, __u64);
} bench_count SEC(".maps");

SEC("xdp")
int bench_pass(struct xdp_md *ctx __attribute__((unused)))
{
	return XDP_PASS;
}

SEC("xdp")
int bench_bounce(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 tmp[6];

	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, tmp, 6);
	return XDP_TX;
}

SEC("xdp")
int bench_sink(struct xdp_md *ctx __attribute__((unused)))
{
	__u32 k = 0;
	__u64 *c = bpf_map_lookup_elem(&bench_count, &k);

	if (c)
		*c += 1;
	return XDP_DROP;
}

/* ---- the peer model: Katran's maps (balancer_maps.h, control_data_maps.h) ---- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PEER_MAX_VIPS);
	__type(key, struct peer_vip);
	__type(value, struct peer_vip_meta);
} peer_vip_map SEC(".maps");		/* vip_map */

/*
 * A connection table: flow -> backend, LRU (Katran's per-CPU "katran_lru").
 * Sizes, not types: clang 14 gives the types of a map-in-map template only
 * as forward declarations, whose size libbpf cannot tell.
 */
struct peer_lru {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PEER_DEFAULT_LRU);
	__uint(key_size, sizeof(struct peer_flow));
	__uint(value_size, sizeof(struct peer_flow_dst));
};

struct peer_lru peer_fallback SEC(".maps");	/* fallback_cache: for a CPU without one */

/*
 * lru_mapping: each CPU's own connection table, an LRU hash userspace
 * creates (flags 0: the map's LRU lists are common to all CPUs, but only
 * its own CPU uses it). The declared template is Katran's prototype
 * default; xdp-ns replaces it before load with the table it creates, as
 * KatranLb::initLrus() does.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, PEER_MAX_CPUS);
	__type(key, __u32);
	__array(values, struct peer_lru);
} peer_lru_map SEC(".maps");

/*
 * ch_rings: Katran's holds MAX_VIPS rings (134 MB); only VIP 0's is ever
 * read here, so one ring it is (what a packet touches is the same).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PEER_RING_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} peer_ch_rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PEER_MAX_REALS);
	__type(key, __u32);
	__type(value, struct peer_real);
} peer_reals SEC(".maps");		/* reals */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PEER_MAX_REALS);
	__type(key, __u32);
	__type(value, struct peer_stats);
} peer_reals_st SEC(".maps");		/* reals_stats */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PEER_MAX_REALS);
	__type(key, __u32);
	__type(value, __u32);
} peer_miss_st SEC(".maps");		/* lru_miss_stats */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct peer_vip);
} peer_miss_vip SEC(".maps");		/* lru_miss_stats_vip */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PEER_STAT_SLOTS);
	__type(key, __u32);
	__type(value, struct peer_stats);
} peer_stats SEC(".maps");		/* stats */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PEER_CTL_SIZE);
	__type(key, __u32);
	__type(value, struct peer_ctl);
} peer_ctl SEC(".maps");		/* ctl_array */

/* ---- the peer model: the path (balancer_kern.c) ---- */

static __always_inline struct peer_stats *peer_stat(__u32 slot)
{
	return bpf_map_lookup_elem(&peer_stats, &slot);
}

static __always_inline __u32 peer_rol32(__u32 w, int s)
{
	return w << s | w >> (32 - s);
}

/* The kernel's jhash_2words(), Katran's get_packet_hash() for IPv4. */
static __always_inline __u32 peer_jhash_2words(__u32 a, __u32 b, __u32 initval)
{
	__u32 c = initval + 0xdeadbeef + (2 << 2);

	a += c;
	b += c;
	c ^= b; c -= peer_rol32(b, 14);
	a ^= c; a -= peer_rol32(c, 11);
	b ^= a; b -= peer_rol32(a, 25);
	c ^= b; c -= peer_rol32(b, 16);
	a ^= c; a -= peer_rol32(c, 4);
	b ^= a; b -= peer_rol32(a, 14);
	c ^= b; c -= peer_rol32(b, 24);
	return c;
}

/* is_under_flood(): the new-flow rate of this CPU, and the clock. */
static __always_inline bool peer_under_flood(__u64 *now)
{
	struct peer_stats *r = peer_stat(PEER_MAX_VIPS + PEER_STAT_CONN_RATE);

	if (!r)
		return true;
	*now = bpf_ktime_get_ns();
	if (*now - r->v2 > 1000000000ULL) {
		r->v1 = 1;
		r->v2 = *now;
		return false;
	}
	return ++r->v1 > PEER_MAX_CONN_RATE;
}

/* connection_table_lookup(): the flow's backend from the CPU's LRU (TCP:
 * no atime). */
static __always_inline struct peer_real *peer_lru_find(void *lru, const struct peer_flow *f,
						       __u32 *real)
{
	struct peer_flow_dst *d = bpf_map_lookup_elem(lru, f);
	__u32 key;

	if (!d)
		return NULL;
	key = d->pos;
	*real = key;
	return bpf_map_lookup_elem(&peer_reals, &key);
}

/* get_packet_dst(): the ring entry of the flow's hash, its backend, and
 * the flow recorded in the LRU. */
static __always_inline struct peer_real *peer_ring_pick(void *lru, const struct peer_flow *f,
							const struct peer_vip_meta *vm, __u32 *real)
{
	struct peer_flow_dst d = {};
	struct peer_real *r;
	__u64 now = 0;
	bool flood = peer_under_flood(&now);
	__u32 key, *pos;

	key = PEER_RING_SIZE * vm->vip_num +
	      peer_jhash_2words(f->src[0], f->ports, PEER_JHASH_SEED) % PEER_RING_SIZE;
	pos = bpf_map_lookup_elem(&peer_ch_rings, &key);
	if (!pos)
		return NULL;
	key = *pos;
	*real = key;
	r = bpf_map_lookup_elem(&peer_reals, &key);
	if (!r)
		return NULL;
	if (!(vm->flags & PEER_F_LRU_BYPASS) && !flood) {
		d.pos = key;
		bpf_map_update_elem(lru, f, &d, BPF_ANY);
	}
	return r;
}

/* update_vip_lru_miss_stats(): per-backend misses of the one VIP userspace
 * watches (none here: the compare fails). */
static __always_inline void peer_vip_miss(const struct peer_vip *vip, __u32 real)
{
	__u32 zero = 0, *n;
	struct peer_vip *w = bpf_map_lookup_elem(&peer_miss_vip, &zero);

	if (!w || w->addr[0] != vip->addr[0] || w->port != vip->port || w->proto != vip->proto)
		return;
	n = bpf_map_lookup_elem(&peer_miss_st, &real);
	if (n)
		*n += 1;
}

/* encap_v4() and create_v4_hdr(): IPIP to the backend, the outer source
 * from the client's address and port, via the default router's MAC. */
static __always_inline bool peer_encap4(struct xdp_md *ctx, const struct peer_ctl *gw,
					const struct peer_flow *f, const struct peer_real *r,
					__u8 tos, __u16 pkt_bytes)
{
	void *data, *end;
	struct ethhdr *eth, *old;
	struct iphdr *ip;
	__u32 suffix;
	__u64 csum = 0;
	__u16 *w;
	int i;

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
		return false;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	ip = data + sizeof(*eth);
	old = data + sizeof(*ip);
	if ((void *)(eth + 1) > end || (void *)(old + 1) > end || (void *)(ip + 1) > end)
		return false;
	__builtin_memcpy(eth->h_dest, gw->mac, 6);
	__builtin_memcpy(eth->h_source, old->h_dest, 6);
	eth->h_proto = bpf_htons(0x0800);
	suffix = (__u32)bpf_htons(f->port16[0]) << 16 ^ f->src[0];
	ip->version = 4;
	ip->ihl = 5;
	ip->frag_off = 0;
	ip->protocol = IPPROTO_IPIP;
	ip->check = 0;
	ip->tos = tos;
	ip->tot_len = bpf_htons(pkt_bytes + sizeof(*ip));
	ip->daddr = r->addr[0];
	ip->saddr = (suffix & 0xffff0000) | PEER_IPIP_V4_PREFIX;
	ip->ttl = 64;
	/* ipv4_csum_inline(): the ten 16-bit words just written, folded */
	w = (__u16 *)ip;
#pragma unroll
	for (i = 0; i < (int)sizeof(*ip) / 2; i++)
		csum += w[i];
#pragma unroll
	for (i = 0; i < 4; i++)
		if (csum >> 16)
			csum = (csum & 0xffff) + (csum >> 16);
	ip->check = ~csum;
	return true;
}

/*
 * Katran's balancer_ingress() -> process_packet() for IPv4/TCP, with the
 * flags the default build has (no QUIC, no source routing, no inline
 * decap, no introspection). Left out, as the benchmark's frames never take
 * them: IPv6 and UDP (passed here), ICMP (handle_icmp.h, passed here).
 */
SEC("xdp")
int bench_peer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct tcphdr *tcp = (void *)(ip + 1);
	struct peer_flow f;
	struct peer_vip vip;
	struct peer_vip_meta *vm;
	struct peer_real *r = NULL;
	struct peer_stats *st, *cnt;
	struct peer_ctl *gw;
	__u32 real = 0, cpu, zero = 0, slot;
	__u16 pkt_bytes, sport;
	void *lru;
	bool syn;
	__u8 tos;

	/* balancer_ingress(), process_l3_headers(): IPv4 without options or
	 * fragments; parse_tcp() */
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(0x0800))
		return XDP_PASS;
	if ((void *)(ip + 1) > end)
		return XDP_DROP;
	if (ip->ihl != 5)
		return XDP_DROP;
	tos = ip->tos;
	pkt_bytes = bpf_ntohs(ip->tot_len);
	if (ip->frag_off & bpf_htons(0x3fff))
		return XDP_DROP;
	if (ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	if ((void *)(tcp + 1) > end)
		return XDP_DROP;
	__builtin_memset(&f, 0, sizeof(f));
	f.src[0] = ip->saddr;
	f.dst[0] = ip->daddr;
	f.port16[0] = tcp->source;
	f.port16[1] = tcp->dest;
	f.proto = IPPROTO_TCP;
	syn = tcp->syn;

	/* process_packet(): the VIP, else the VIP on any port */
	__builtin_memset(&vip, 0, sizeof(vip));
	vip.addr[0] = f.dst[0];
	vip.port = f.port16[1];
	vip.proto = f.proto;
	vm = bpf_map_lookup_elem(&peer_vip_map, &vip);
	if (!vm) {
		vip.port = 0;
		vm = bpf_map_lookup_elem(&peer_vip_map, &vip);
		if (!vm)
			return XDP_PASS;
		if (!(vm->flags & PEER_F_HASH_DPORT_ONLY))
			f.port16[1] = 0;
	}
	if (end - data > PEER_MAX_PCKT_SIZE)
		return XDP_DROP;
	st = peer_stat(PEER_MAX_VIPS + PEER_STAT_LRU);
	if (!st)
		return XDP_DROP;
	st->v1 += 1;

	/* the CPU's LRU: an established flow's backend, or the ring's */
	sport = f.port16[0];
	if (vm->flags & PEER_F_HASH_NO_SRC_PORT)
		f.port16[0] = 0;
	cpu = bpf_get_smp_processor_id();
	lru = bpf_map_lookup_elem(&peer_lru_map, &cpu);
	if (!lru) {
		lru = &peer_fallback;
		cnt = peer_stat(PEER_MAX_VIPS + PEER_STAT_FALLBACK_LRU);
		if (!cnt)
			return XDP_DROP;
		cnt->v1 += 1;
	}
	if (!syn && !(vm->flags & PEER_F_LRU_BYPASS))
		r = peer_lru_find(lru, &f, &real);
	if (!r) {
		cnt = peer_stat(PEER_MAX_VIPS + PEER_STAT_LRU_MISS);
		if (!cnt)
			return XDP_DROP;
		if (syn)
			cnt->v1 += 1;
		else
			cnt->v2 += 1;
		r = peer_ring_pick(lru, &f, vm, &real);
		if (!r)
			return XDP_DROP;
		peer_vip_miss(&vip, real);
		st->v2 += 1;
	}

	/* counters per VIP and per backend, then out to the backend */
	gw = bpf_map_lookup_elem(&peer_ctl, &zero);
	if (!gw)
		return XDP_DROP;
	slot = vm->vip_num;
	st = bpf_map_lookup_elem(&peer_stats, &slot);
	if (!st)
		return XDP_DROP;
	st->v1 += 1;
	st->v2 += pkt_bytes;
	st = bpf_map_lookup_elem(&peer_reals_st, &real);
	if (!st)
		return XDP_DROP;
	st->v1 += 1;
	st->v2 += pkt_bytes;
	f.port16[0] = sport;
	return peer_encap4(ctx, gw, &f, r, tos, pkt_bytes) ? XDP_TX : XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
