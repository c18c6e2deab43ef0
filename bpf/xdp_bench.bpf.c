// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reference programs for the XDP load balancer benchmark (tools/bench/xdp.sh):
 * a program that only passes (the fixed cost BPF_PROG_TEST_RUN subtracts),
 * one that bounces every frame back (the veth forwarding ceiling) and a
 * counting sink. The veth run's traffic comes from an AF_PACKET socket in
 * tools/bench/xdp.c, not from a program here: BPF_F_TEST_XDP_LIVE_FRAMES
 * returns EPERM on the kernel the benchmark runs on.
 */
#include "lib/common.bpf.h"

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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
