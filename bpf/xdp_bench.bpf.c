// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reference programs for the XDP load balancer benchmark (tools/bench/xdp.sh):
 * a program that only passes (the fixed cost BPF_PROG_TEST_RUN subtracts),
 * one that bounces every frame back (the veth forwarding ceiling), a
 * counting sink, and a traffic generator for BPF_F_TEST_XDP_LIVE_FRAMES
 * that varies the UDP/TCP source port over cfg_flows flows.
 */
#include "lib/common.bpf.h"

/* Generator: frames vary their source port over this many flows (1 = one flow). */
const volatile __u32 cfg_flows = 1;
/* Generator: offset of the L4 source port in the template frame. */
const volatile __u32 cfg_sport_off = 34;
/* Generator: the 64-byte frame written into every packet. Live-frame pages
 * are recycled without their data being restored, and the program under test
 * rewrote them (encapsulation moves the headers), so each run starts over. */
const volatile __u64 cfg_frame[8];

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);		/* 0: frames generated, 1: frames sunk */
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
	__u32 k = 1;
	__u64 *c = bpf_map_lookup_elem(&bench_count, &k);

	if (c)
		*c += 1;
	return XDP_DROP;
}

SEC("xdp")
int bench_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 k = 0, off = cfg_sport_off & 0xff;
	__u64 *c = bpf_map_lookup_elem(&bench_count, &k);
	__be16 *sport = data + off;
	__u64 *w = data;
	int i;

	if (!c || (void *)(w + 8) > end || (void *)(sport + 1) > end)
		return XDP_DROP;
#pragma unroll
	for (i = 0; i < 8; i++)
		w[i] = cfg_frame[i];
	if (cfg_flows > 1)
		*sport = bpf_htons(1024 + (__u16)(*c % cfg_flows));
	*c += 1;
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
