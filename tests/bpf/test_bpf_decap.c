// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The backend-side decap (bpf/xdp_decap.bpf.c) under BPF_PROG_TEST_RUN, and
 * map_set_sync(), which ferryd keeps its address sets with.
 *
 * A table of rows (description, tunnel packet, expected action, expected
 * output, the counter it bumps): IPIP, IPv6-in-IPv6 and the mixed forms to a
 * VIP the node accepts are stripped with the inner datagram intact (its
 * checksums verified) and VLAN tags kept; tunnels whose inner destination is
 * no accepted VIP, or whose outer one is not the node's, pass untouched;
 * inner headers that are cut (by the frame or the outer header's length) or
 * of the wrong version are dropped; outer headers the kernel would refuse
 * (version, IPv4 checksum and header length, a length past the frame) pass
 * untouched, counted, and bytes after a sound one are no reason to; an outer
 * CE mark reaches an ECT inner header (RFC 6040), and over a Not-ECT one the
 * tunnel is dropped. The LB's
 * test (test_bpf_xdp.c) also feeds every packet it encapsulates through the
 * decap; this one needs no load balancer and no services.
 *
 * Maps are pinned under a unique directory removed at exit.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <ferry/xdp.h>
#include "check.h"
#include "csum.h"
#include "addr.h"
#include "maps.h"
#include "pindir.h"
#include "reconcile.h"
#include "xdp_decap.skel.h"

static char pin_dir[128];
static struct xdp_decap_bpf *dc;

static void cleanup(void)
{
	xdp_decap_bpf__destroy(dc);
	dc = NULL;
	if (pin_dir[0]) {
		pin_dir_remove();
		if (!access(pin_dir, F_OK))
			printf("  could not remove %s\n", pin_dir);
		pin_dir[0] = '\0';
	}
}

/* ---- map writes, watched ------------------------------------------------ */

/* While spying, every update and delete of the map under test, in order. */
#define SPY_MAX 64
static struct spy_op {
	char	op;		/* 'u' update, 'd' delete */
	struct ferry_xdcap_key k;
} spy_ops[SPY_MAX];
static int spy_fd = -1, spy_n;

int __real_bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags);
int __real_bpf_map_delete_elem(int fd, const void *key);

int __wrap_bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags)
{
	if (fd == spy_fd && spy_n < SPY_MAX) {
		spy_ops[spy_n].op = 'u';
		memcpy(&spy_ops[spy_n++].k, key, sizeof(struct ferry_xdcap_key));
	}
	return __real_bpf_map_update_elem(fd, key, value, flags);
}

int __wrap_bpf_map_delete_elem(int fd, const void *key)
{
	if (fd == spy_fd && spy_n < SPY_MAX) {
		spy_ops[spy_n].op = 'd';
		memcpy(&spy_ops[spy_n++].k, key, sizeof(struct ferry_xdcap_key));
	}
	return __real_bpf_map_delete_elem(fd, key);
}

/* ---- packets ------------------------------------------------------------ */

/* The UDP checksum's pseudo-header sum of an IPv4 or IPv6 header at ip. */
static __u32 pseudo_sum(const __u8 *ip, int family, __u16 l4len)
{
	const __u8 *a = ip + (family == 4 ? 12 : 8);
	size_t i, n = family == 4 ? 8 : 32;
	__u32 sum = IPPROTO_UDP + l4len;

	for (i = 0; i < n; i += 2)
		sum += a[i] << 8 | a[i + 1];
	return sum;
}

#define PAYLOAD		32
#define OUTER_SRC4	"203.0.113.5"
#define OUTER_SRC6	"2001:db8:f::5"
#define CLIENT4		"203.0.113.1"
#define CLIENT6		"2001:db8:c::1"
#define OURS4		"192.0.2.11"	/* the node's addresses: ferry_xdcap_v1 */
#define OURS6		"2001:db8::11"
#define VIP4		"198.51.100.10"	/* XDP VIPs bound on it: ferry_xdvip_v1 */
#define VIP6		"2001:db8:ffff::10"
#define DSCP		0x48	/* AF21, in every header: only the ECN bits may change */

/* ECN codepoints (RFC 3168), the low two bits of the TOS / traffic class. */
enum { NOT_ECT = 0, ECT1 = 1, ECT0 = 2, CE = 3 };

enum mangle {
	M_NONE, M_CUT, M_INNER_VERSION, M_INNER_IHL4, M_OUTER_FRAG, M_NOT_TUNNEL,
	/* outer headers the kernel would refuse */
	M_OUTER_CSUM,		/* IPv4: the header checksum one off */
	M_OUTER_LONG,		/* its length 8 bytes past the frame (checksum right) */
	M_OUTER_IHL_LEN,	/* IPv4: tot_len 16, less than ihl * 4 */
	M_OUTER_IHL4,		/* IPv4: ihl 4 */
	M_OUTER_VERSION,	/* the other family's version under this ethertype */
	M_OUTER_SHORT,		/* its length ends cut bytes into the inner header */
};

struct pkt {
	int		outer, inner;	/* 4 or 6 */
	const char	*odst, *idst;
	int		vlans;
	enum mangle	m;
	size_t		cut;		/* M_CUT, M_OUTER_SHORT: bytes of the inner header kept */
	size_t		pad;		/* bytes after the outer datagram (Ethernet padding) */
	bool		oopts;		/* IPv4 outer header with 4 bytes of options (ihl 6) */
	__u8		oecn, iecn;	/* ECN field of the outer and the inner header */
};

/* Ethernet [+ VLAN tags] + outer IP + inner IP + UDP + payload [+ padding].
 * Returns the frame's length; *l3 is the outer header's offset, *olen its
 * length. */
static size_t build(const struct pkt *s, __u8 *f, size_t *l3, size_t *olen)
{
	size_t off = 12, ilen = s->inner == 4 ? 20 : 40, l4len = 8 + PAYLOAD, n, dlen;
	__u8 *ip, *in, *udp;
	int i;

	memset(f, 0, 512);
	memcpy(f, "\x02\x00\x00\x00\x00\x11\x02\x00\x00\x00\x00\x02", 12);
	for (i = 0; i < s->vlans; i++) {
		f[off] = i == 0 && s->vlans == 2 ? 0x88 : 0x81;
		f[off + 1] = i == 0 && s->vlans == 2 ? 0xa8 : 0x00;
		f[off + 3] = 10 + i;	/* VLAN id */
		off += 4;
	}
	f[off] = s->outer == 4 ? 0x08 : 0x86;
	f[off + 1] = s->outer == 4 ? 0x00 : 0xdd;
	*l3 = off + 2;
	*olen = s->outer == 4 ? (s->oopts ? 24 : 20) : 40;
	ip = f + *l3;
	in = ip + *olen;
	udp = in + ilen;
	n = *l3 + *olen + ilen + l4len;

	/* inner datagram: UDP from the client to idst, port 80 */
	if (s->inner == 4) {
		in[0] = s->m == M_INNER_IHL4 ? 0x44 : 0x45;
		in[1] = DSCP | s->iecn;
		*(__be16 *)(in + 2) = htons(ilen + l4len);
		*(__be16 *)(in + 6) = htons(0x4000);
		in[8] = 63;
		in[9] = IPPROTO_UDP;
		inet_pton(AF_INET, CLIENT4, in + 12);
		inet_pton(AF_INET, s->idst, in + 16);
		*(__be16 *)(in + 10) = csum16(in, 20, 0);
	} else {
		in[0] = 0x60 | DSCP >> 4;
		in[1] = (DSCP | s->iecn) << 4;
		*(__be16 *)(in + 4) = htons(l4len);
		in[6] = IPPROTO_UDP;
		in[7] = 63;
		inet_pton(AF_INET6, CLIENT6, in + 8);
		inet_pton(AF_INET6, s->idst, in + 24);
	}
	*(__be16 *)udp = htons(40000);
	*(__be16 *)(udp + 2) = htons(80);
	*(__be16 *)(udp + 4) = htons(l4len);
	for (i = 0; i < PAYLOAD; i++)
		udp[8 + i] = 'a' + i % 26;
	*(__be16 *)(udp + 6) = csum16(udp, l4len, pseudo_sum(in, s->inner, l4len));
	if (s->m == M_INNER_VERSION)
		in[0] = (in[0] & 0x0f) | (s->inner == 4 ? 0x60 : 0x40);

	/* The datagram the outer header announces, and the frame around it:
	 * cut inner headers are cut in both (the outer header sound), one
	 * M_OUTER_SHORT only by the outer header's length. */
	if (s->m == M_CUT)
		n = *l3 + *olen + s->cut;
	dlen = s->m == M_OUTER_SHORT ? *olen + s->cut : n - *l3;
	if (s->m == M_OUTER_LONG)
		dlen += 8;

	/* outer header: from the LB's prefix to odst */
	if (s->outer == 4) {
		ip[0] = s->m == M_OUTER_VERSION ? 0x65 : s->m == M_OUTER_IHL4 ? 0x44 :
			s->oopts ? 0x46 : 0x45;
		ip[1] = DSCP | s->oecn;
		*(__be16 *)(ip + 2) = htons(s->m == M_OUTER_IHL_LEN ? 16 : dlen);
		if (s->m == M_OUTER_FRAG)
			*(__be16 *)(ip + 6) = htons(0x2000);	/* MF */
		ip[8] = 64;
		ip[9] = s->m == M_NOT_TUNNEL ? IPPROTO_UDP : s->inner == 4 ? IPPROTO_IPIP : IPPROTO_IPV6;
		inet_pton(AF_INET, OUTER_SRC4, ip + 12);
		inet_pton(AF_INET, s->odst, ip + 16);
		if (s->oopts)
			memcpy(ip + 20, "\x01\x01\x01\x00", 4);	/* NOP NOP NOP EOL */
		*(__be16 *)(ip + 10) = csum16(ip, *olen, 0);
		if (s->m == M_OUTER_CSUM)
			ip[s->oopts ? 22 : 11] ^= 1;	/* an option byte, else the checksum */
	} else {
		ip[0] = (s->m == M_OUTER_VERSION ? 0x40 : 0x60) | DSCP >> 4;
		ip[1] = (DSCP | s->oecn) << 4;
		*(__be16 *)(ip + 4) = htons(dlen - 40);
		ip[6] = s->m == M_NOT_TUNNEL ? IPPROTO_UDP : s->inner == 4 ? IPPROTO_IPIP : IPPROTO_IPV6;
		ip[7] = 64;
		inet_pton(AF_INET6, OUTER_SRC6, ip + 8);
		inet_pton(AF_INET6, s->odst, ip + 24);
	}
	memset(f + n, 0xee, s->pad);
	return n + s->pad;
}

static int run(const __u8 *in, size_t inlen, __u8 *out, __u32 *outlen, __u32 *action)
{
	LIBBPF_OPTS(bpf_test_run_opts, t,
		.data_in = in, .data_size_in = inlen,
		.data_out = out, .data_size_out = *outlen,
		.repeat = 1);

	if (bpf_prog_test_run_opts(bpf_program__fd(dc->progs.ferry_xdp_decap), &t))
		return -errno;
	*outlen = t.data_size_out;
	*action = t.retval;
	return 0;
}

/* ---- the rows ------------------------------------------------------------ */

enum out_kind { OUT_STRIPPED, OUT_SAME, OUT_NONE };
#define NO_COUNTER	(-1)

struct row {
	const char	*desc;
	struct pkt	in;
	__u32		action;
	enum out_kind	out;
	int		counter;	/* FERRY_XSTAT_* bumped once, or NO_COUNTER */
	__u8		ecn;		/* OUT_STRIPPED: the inner ECN field expected out */
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct row rows[] = {
	{ "IPIP to a local VIP: stripped, inner datagram and its checksums intact",
	  { 4, 4, OURS4, VIP4 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK },
	{ "IPv6-in-IPv6 to a local VIP: stripped",
	  { 6, 6, OURS6, VIP6 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK },
	{ "4in6 to a local VIP: stripped",
	  { 6, 4, OURS6, VIP4 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK },
	{ "6in4 to a local VIP: stripped",
	  { 4, 6, OURS4, VIP6 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK },
	{ "IPIP with a VLAN tag: stripped, tag kept",
	  { 4, 4, OURS4, VIP4, .vlans = 1 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK },
	{ "IPv6-in-IPv6 QinQ: stripped, both tags kept",
	  { 6, 6, OURS6, VIP6, .vlans = 2 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK },
	{ "IPIP whose inner destination is another host: untouched",
	  { 4, 4, OURS4, CLIENT4 }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_NOT_VIP },
	{ "IPIP whose inner destination is the node's own address, no VIP: untouched",
	  { 4, 4, OURS4, OURS4 }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_NOT_VIP },
	{ "IPv6-in-IPv6 whose inner destination is another host: untouched",
	  { 6, 6, OURS6, CLIENT6 }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_NOT_VIP },
	{ "6in4 to the v4 VIP as a v4-mapped address: not the VIP, untouched",
	  { 4, 6, OURS4, "::ffff:" VIP4 }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_NOT_VIP },
	{ "VLAN-tagged IPIP whose inner destination is another host: untouched",
	  { 4, 4, OURS4, CLIENT4, .vlans = 1 }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_NOT_VIP },
	{ "IPIP to an address that is not the node's: untouched",
	  { 4, 4, "192.0.2.99", VIP4 }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_NOT_OURS },
	{ "IPIP with the inner header cut before its destination: dropped",
	  { 4, 4, OURS4, VIP4, .m = M_CUT, .cut = 16 }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_MALFORMED },
	{ "IPIP with the inner header cut after its destination: dropped",
	  { 4, 4, OURS4, VIP4, .m = M_CUT, .cut = 19 }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_MALFORMED },
	{ "IPv6-in-IPv6 with the inner header cut: dropped",
	  { 6, 6, OURS6, VIP6, .m = M_CUT, .cut = 30 }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_MALFORMED },
	{ "IPIP (protocol 4) carrying an IPv6 header: dropped",
	  { 4, 4, OURS4, VIP4, .m = M_INNER_VERSION }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_MALFORMED },
	{ "IPv6-in-IPv6 (protocol 41) carrying an IPv4 header: dropped",
	  { 6, 6, OURS6, VIP6, .m = M_INNER_VERSION }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_MALFORMED },
	{ "IPIP whose inner IPv4 header says ihl 4: dropped",
	  { 4, 4, OURS4, VIP4, .m = M_INNER_IHL4 }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_MALFORMED },
	{ "IPIP whose outer length ends before the inner header, the rest padding: dropped",
	  { 4, 4, OURS4, VIP4, .m = M_OUTER_SHORT, .cut = 0 }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_MALFORMED },
	{ "IPIP whose outer length ends inside the inner header: dropped",
	  { 4, 4, OURS4, VIP4, .m = M_OUTER_SHORT, .cut = 12 }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_MALFORMED },
	{ "IPv6-in-IPv6 whose outer payload length is 0: dropped",
	  { 6, 6, OURS6, VIP6, .m = M_OUTER_SHORT, .cut = 0 }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_MALFORMED },
	{ "4in6 whose outer payload length ends inside the inner header: dropped",
	  { 6, 4, OURS6, VIP4, .m = M_OUTER_SHORT, .cut = 19 }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_MALFORMED },
	/* Outer headers the kernel would refuse (ip_rcv_core, ipv6_rcv): the
	 * stack drops them, so they pass untouched, counted, whoever they are for. */
	{ "IPIP whose outer checksum is wrong: untouched",
	  { 4, 4, OURS4, VIP4, .m = M_OUTER_CSUM }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_BAD_OUTER },
	{ "IPIP with outer options whose checksum does not cover them: untouched",
	  { 4, 4, OURS4, VIP4, .oopts = true, .m = M_OUTER_CSUM }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_BAD_OUTER },
	{ "6in4 whose outer checksum is wrong: untouched",
	  { 4, 6, OURS4, VIP6, .m = M_OUTER_CSUM }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_BAD_OUTER },
	{ "IPIP whose outer checksum is wrong, to another address: untouched, bad outer",
	  { 4, 4, "192.0.2.99", VIP4, .m = M_OUTER_CSUM }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_BAD_OUTER },
	{ "IPIP whose outer total length runs past the frame: untouched",
	  { 4, 4, OURS4, VIP4, .m = M_OUTER_LONG }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_BAD_OUTER },
	{ "IPIP whose outer total length is less than its header (16): untouched",
	  { 4, 4, OURS4, VIP4, .m = M_OUTER_IHL_LEN }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_BAD_OUTER },
	{ "IPIP whose outer ihl is 4: untouched",
	  { 4, 4, OURS4, VIP4, .m = M_OUTER_IHL4 }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_BAD_OUTER },
	{ "ethertype IPv4 over a version-6 outer header: untouched",
	  { 4, 4, OURS4, VIP4, .m = M_OUTER_VERSION }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_BAD_OUTER },
	{ "ethertype IPv6 over a version-4 outer header: untouched",
	  { 6, 6, OURS6, VIP6, .m = M_OUTER_VERSION }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_BAD_OUTER },
	{ "IPv6-in-IPv6 whose outer payload length runs past the frame: untouched",
	  { 6, 6, OURS6, VIP6, .m = M_OUTER_LONG }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_BAD_OUTER },
	{ "4in6 tagged whose outer payload length runs past the frame: untouched",
	  { 6, 4, OURS6, VIP4, .vlans = 1, .m = M_OUTER_LONG }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_BAD_OUTER },
	/* What the kernel takes, so do we. */
	{ "IPIP with outer IPv4 options (ihl 6): stripped",
	  { 4, 4, OURS4, VIP4, .oopts = true }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK },
	{ "IPIP with bytes after the outer datagram (Ethernet padding): stripped, the bytes after the inner",
	  { 4, 4, OURS4, VIP4, .pad = 10 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK },
	{ "IPv6-in-IPv6 with bytes after the outer datagram: stripped",
	  { 6, 6, OURS6, VIP6, .pad = 7 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK },
	{ "IPIP fragment: untouched, not reassembled",
	  { 4, 4, OURS4, VIP4, .m = M_OUTER_FRAG }, XDP_PASS, OUT_SAME, NO_COUNTER },
	{ "plain UDP to the node: untouched",
	  { 4, 4, OURS4, VIP4, .m = M_NOT_TUNNEL }, XDP_PASS, OUT_SAME, NO_COUNTER },
	/* ECN, RFC 6040 normal mode: an outer CE reaches an ECT inner header,
	 * over Not-ECT the tunnel is dropped; nothing else changes the inner. */
	{ "IPIP, CE over ECT(0): inner CE, checksum updated",
	  { 4, 4, OURS4, VIP4, .oecn = CE, .iecn = ECT0 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK, CE },
	{ "IPIP, CE over ECT(1): inner CE, checksum updated",
	  { 4, 4, OURS4, VIP4, .oecn = CE, .iecn = ECT1 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK, CE },
	{ "IPIP, CE over CE: inner CE, untouched",
	  { 4, 4, OURS4, VIP4, .oecn = CE, .iecn = CE }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK, CE },
	{ "IPIP, CE over Not-ECT: dropped",
	  { 4, 4, OURS4, VIP4, .oecn = CE }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_CE_NOT_ECT },
	{ "IPIP, ECT(0) over Not-ECT: inner Not-ECT, untouched",
	  { 4, 4, OURS4, VIP4, .oecn = ECT0 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK, NOT_ECT },
	{ "IPIP, ECT(0) over ECT(0): untouched",
	  { 4, 4, OURS4, VIP4, .oecn = ECT0, .iecn = ECT0 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK, ECT0 },
	{ "IPv6-in-IPv6, CE over ECT(0): inner CE",
	  { 6, 6, OURS6, VIP6, .oecn = CE, .iecn = ECT0 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK, CE },
	{ "IPv6-in-IPv6, CE over ECT(1): inner CE",
	  { 6, 6, OURS6, VIP6, .oecn = CE, .iecn = ECT1 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK, CE },
	{ "IPv6-in-IPv6, CE over Not-ECT: dropped",
	  { 6, 6, OURS6, VIP6, .oecn = CE }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_CE_NOT_ECT },
	{ "IPv6-in-IPv6, ECT(0) over Not-ECT: inner Not-ECT, untouched",
	  { 6, 6, OURS6, VIP6, .oecn = ECT0 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK, NOT_ECT },
	{ "4in6, CE over ECT(0): inner CE, checksum updated",
	  { 6, 4, OURS6, VIP4, .oecn = CE, .iecn = ECT0 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK, CE },
	{ "4in6, CE over ECT(1) with a VLAN tag: inner CE, checksum updated",
	  { 6, 4, OURS6, VIP4, .vlans = 1, .oecn = CE, .iecn = ECT1 }, XDP_PASS, OUT_STRIPPED,
	  FERRY_XSTAT_DECAP_OK, CE },
	{ "4in6, CE over Not-ECT: dropped",
	  { 6, 4, OURS6, VIP4, .oecn = CE }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_CE_NOT_ECT },
	{ "6in4, CE over ECT(0): inner CE",
	  { 4, 6, OURS4, VIP6, .oecn = CE, .iecn = ECT0 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK, CE },
	{ "6in4, CE over ECT(1): inner CE",
	  { 4, 6, OURS4, VIP6, .oecn = CE, .iecn = ECT1 }, XDP_PASS, OUT_STRIPPED, FERRY_XSTAT_DECAP_OK, CE },
	{ "6in4, CE over Not-ECT: dropped",
	  { 4, 6, OURS4, VIP6, .oecn = CE }, XDP_DROP, OUT_NONE, FERRY_XSTAT_DECAP_CE_NOT_ECT },
	{ "IPIP, CE over Not-ECT, inner destination no VIP: untouched, not dropped",
	  { 4, 4, OURS4, CLIENT4, .oecn = CE }, XDP_PASS, OUT_SAME, FERRY_XSTAT_DECAP_NOT_VIP },
};
#pragma GCC diagnostic pop

/* The stripped frame: the MACs and tags of the tunnel, the inner family's
 * ethertype, then the inner datagram byte for byte but for the ECN field the
 * row expects (and so an IPv4 header checksum computed afresh), its
 * checksums right. */
static bool check_stripped(const struct row *r, const __u8 *in, size_t inlen, size_t l3,
			   size_t olen, const __u8 *out, size_t outlen)
{
	const __u8 *ip = out + l3, *udp = ip + (r->in.inner == 4 ? 20 : 40);
	__u8 want[512];
	bool ok = true;
	size_t i;

	ok &= ASSERT_EQ(outlen, inlen - olen, "frame length");
	ok &= ASSERT_TRUE(!memcmp(out, in, l3 - 2), "MACs and VLAN tags kept");
	ok &= ASSERT_EQ(out[l3 - 2] << 8 | out[l3 - 1], r->in.inner == 4 ? ETH_P_IP : ETH_P_IPV6,
			"ethertype of the inner family");
	memcpy(want, in + l3 + olen, inlen - l3 - olen);
	if (r->in.inner == 4) {
		want[1] = (want[1] & ~3) | r->ecn;
		want[10] = want[11] = 0;
		*(__be16 *)(want + 10) = csum16(want, 20, 0);
	} else {
		want[1] = (want[1] & ~0x30) | r->ecn << 4;
	}
	ok &= ASSERT_EQ((r->in.inner == 4 ? ip[1] : ip[1] >> 4) & 3, r->ecn, "inner ECN field");
	for (i = 0; i < inlen - l3 - olen && ip[i] == want[i]; i++)
		;
	ok &= ASSERT_EQ(i, inlen - l3 - olen, "inner datagram byte for byte (first difference)");
	if (r->in.inner == 4)
		ok &= ASSERT_EQ(csum16(ip, 20, 0), 0, "inner IPv4 header checksum");
	ok &= ASSERT_EQ(csum16(udp, 8 + PAYLOAD, pseudo_sum(ip, r->in.inner, 8 + PAYLOAD)), 0,
			"UDP checksum over the inner pseudo-header");
	return ok;
}

static void test_rows(void)
{
	int xstat = bpf_map__fd(dc->maps.ferry_xstat_v2);
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		__u64 before[FERRY_XSTAT_MAX], after[FERRY_XSTAT_MAX];
		__u8 in[512], out[512];
		__u32 outlen = sizeof(out), act = 0;
		size_t inlen, l3, olen;
		char name[160];
		bool ok;
		int s;

		inlen = build(&r->in, in, &l3, &olen);
		ok = ASSERT_EQ(xstat_sum(xstat, before), 0, "read counters");
		ok = ok && ASSERT_EQ(run(in, inlen, out, &outlen, &act), 0, "test run");
		ok = ok && ASSERT_EQ(act, r->action, "action");
		if (ok && r->out == OUT_SAME)
			ok &= ASSERT_EQ(outlen, inlen, "length unchanged") &&
			      ASSERT_TRUE(!memcmp(in, out, inlen), "bytes unchanged");
		if (ok && r->out == OUT_STRIPPED)
			ok &= check_stripped(r, in, inlen, l3, olen, out, outlen);
		ok = ok && ASSERT_EQ(xstat_sum(xstat, after), 0, "read counters");
		for (s = FERRY_XSTAT_DECAP_OK; ok && s < FERRY_XSTAT_MAX; s++) {
			if (s != FERRY_XSTAT_DECAP_OK && s != FERRY_XSTAT_DECAP_NOT_OURS &&
			    s != FERRY_XSTAT_DECAP_MALFORMED && s != FERRY_XSTAT_DECAP_NOT_VIP &&
			    s != FERRY_XSTAT_DECAP_CE_NOT_ECT && s != FERRY_XSTAT_DECAP_BAD_OUTER)
				continue;
			ok &= ASSERT_EQ(after[s] - before[s], s == r->counter, "counter slot %d", s);
		}
		snprintf(name, sizeof(name), "xdp decap row: %s", r->desc);
		verdict(name, ok);
	}
}

/* ---- map_set_sync ---------------------------------------------------------- */

static struct ferry_xdcap_key key_of(const char *addr)
{
	struct ferry_xdcap_key k = {};
	struct faddr a;

	faddr_parse(addr, &a);
	memcpy(k.addr, a.a, 16);
	k.family = a.family;
	return k;
}

static bool holds(int fd, const char *addr, __u32 *val)
{
	struct ferry_xdcap_key k = key_of(addr);
	__u32 v;

	if (bpf_map_lookup_elem(fd, &k, &v))
		return false;
	if (val)
		*val = v;
	return true;
}

/* The set becomes the wanted one; what stays is never written or missing:
 * every write of a new key comes before the first delete. */
static void test_set_sync(void)
{
	struct ferry_xdcap_key want[4], kept = key_of("192.0.2.11");
	__u32 one = 1, seven = 7, v = 0;
	size_t added = 0, removed = 0;
	const char *old[] = { "192.0.2.11", "192.0.2.12", "2001:db8::12" };
	bool ok = true, deleted = false;
	int fd, i;

	fd = bpf_map_create(BPF_MAP_TYPE_HASH, "ferry_test_set", sizeof(want[0]), sizeof(__u32), 64, NULL);
	if (!ASSERT_TRUE(fd >= 0, "create a hash map: %s", strerror(errno))) {
		verdict("map_set_sync: the map ends equal to the wanted set", false);
		return;
	}
	for (i = 0; i < 3; i++) {
		struct ferry_xdcap_key k = key_of(old[i]);

		ok &= ASSERT_EQ(bpf_map_update_elem(fd, &k, i ? &one : &seven, BPF_ANY), 0, "seed %s", old[i]);
	}
	want[0] = key_of("2001:db8::11");
	want[1] = kept;
	want[2] = key_of("198.51.100.10");
	want[3] = want[0];	/* repeated: one entry */
	spy_fd = fd;
	spy_n = 0;
	ok &= ASSERT_EQ(map_set_sync(fd, want, sizeof(want[0]), 4, &one, sizeof(one), &added, &removed),
			0, "map_set_sync");
	spy_fd = -1;
	ok &= ASSERT_EQ(added, 2, "added");
	ok &= ASSERT_EQ(removed, 2, "removed");
	ok &= ASSERT_TRUE(holds(fd, "2001:db8::11", NULL) && holds(fd, "198.51.100.10", NULL),
			  "new keys are in");
	ok &= ASSERT_TRUE(holds(fd, "192.0.2.11", &v), "a key in both sets stays");
	ok &= ASSERT_EQ(v, 7, "and keeps its value");
	ok &= ASSERT_TRUE(!holds(fd, "192.0.2.12", NULL) && !holds(fd, "2001:db8::12", NULL),
			  "stale keys are gone");
	ok &= ASSERT_EQ(spy_n, 4, "map writes");
	for (i = 0; i < spy_n; i++) {
		ok &= ASSERT_TRUE(memcmp(&spy_ops[i].k, &kept, sizeof(kept)), "write %d touches the kept key", i);
		if (spy_ops[i].op == 'd')
			deleted = true;
		else
			ok &= ASSERT_TRUE(!deleted, "write %d: an add after a delete", i);
	}
	verdict("map_set_sync: the map ends equal to the wanted set, adds before deletes", ok);

	ok = ASSERT_EQ(map_set_sync(fd, want, sizeof(want[0]), 0, &one, sizeof(one), &added, &removed),
		       0, "map_set_sync to nothing");
	ok &= ASSERT_EQ(removed, 3, "removed");
	ok &= ASSERT_TRUE(!holds(fd, "192.0.2.11", NULL), "empty");
	verdict("map_set_sync: an empty set empties the map", ok);
	close(fd);

	/* A map that cannot hold the old and the new set together: the
	 * stale keys make room, the key in both stays. */
	fd = bpf_map_create(BPF_MAP_TYPE_HASH, "ferry_test_set4", sizeof(want[0]), sizeof(__u32), 4, NULL);
	ok = ASSERT_TRUE(fd >= 0, "create a 4-entry hash map: %s", strerror(errno));
	for (i = 0; ok && i < 3; i++) {
		struct ferry_xdcap_key k = key_of(old[i]);

		ok &= ASSERT_EQ(bpf_map_update_elem(fd, &k, &one, BPF_ANY), 0, "seed %s", old[i]);
	}
	want[0] = key_of("2001:db8::11");
	want[1] = kept;
	want[2] = key_of("198.51.100.10");
	want[3] = key_of("198.51.100.11");
	if (ok) {
		ok &= ASSERT_EQ(map_set_sync(fd, want, sizeof(want[0]), 4, &one, sizeof(one), &added,
					     &removed), 0, "map_set_sync into a full map");
		ok &= ASSERT_TRUE(added == 3 && removed == 2, "added %zu (3), removed %zu (2)", added, removed);
		ok &= ASSERT_TRUE(holds(fd, "192.0.2.11", NULL) && holds(fd, "2001:db8::11", NULL) &&
				  holds(fd, "198.51.100.10", NULL) && holds(fd, "198.51.100.11", NULL),
				  "the new set is in");
		ok &= ASSERT_TRUE(!holds(fd, "192.0.2.12", NULL) && !holds(fd, "2001:db8::12", NULL),
				  "stale keys are gone");
	}
	verdict("map_set_sync: a map too small for both sets makes room first", ok);
	if (fd >= 0)
		close(fd);
}

/* ---- decap_derive ---------------------------------------------------------- */

static int put_svc(int fd, const char *vip, __u16 port, __u32 flags)
{
	struct ferry_svc_key k = {};
	struct ferry_svc v = {};
	struct faddr a;

	faddr_parse(vip, &a);
	memcpy(k.addr, a.a, 16);
	k.family = a.family;
	k.port = htons(port);
	k.proto = IPPROTO_TCP;
	v.id = port;
	v.flags = flags;
	return bpf_map_update_elem(fd, &k, &v, BPF_ANY);
}

static int put_addr(int fd, const char *addr)
{
	struct ferry_xdcap_key k = key_of(addr);
	__u32 one = 1;

	return bpf_map_update_elem(fd, &k, &one, BPF_ANY);
}

static struct ferry_xdpair_key pair_of(const char *outer, const char *inner)
{
	struct ferry_xdcap_key o = key_of(outer), i = key_of(inner);
	struct ferry_xdpair_key p = {};

	memcpy(p.outer, o.addr, sizeof(p.outer));
	p.outer_family = o.family;
	memcpy(p.inner, i.addr, sizeof(p.inner));
	p.inner_family = i.family;
	return p;
}

static bool has_pair(int fd, const char *outer, const char *inner)
{
	struct ferry_xdpair_key p = pair_of(outer, inner);
	__u32 v;

	return !bpf_map_lookup_elem(fd, &p, &v);
}

static size_t entries(int fd, size_t ksz)
{
	size_t n = 0;

	return map_count(fd, ksz, &n) ? (size_t)-1 : n;
}

/* The VIP set is the XDP VIPs among the addresses ferryd recorded for the
 * node (ferry_xdaddr_v1), whatever the caller's own network namespace has;
 * the pairs the program asks, every outer address with every such VIP. */
static void test_decap_derive(void)
{
	const char *node[] = { "192.0.2.11", "198.51.100.1", "198.51.100.3", "2001:db8::1" };
	struct decap_maps m = { .dirfd = -1 };
	int *fds[] = { &m.svc, &m.addr, &m.outer, &m.vip, &m.pair };
	struct ferry_xdpair_key stale_pair = pair_of("192.0.2.11", "198.51.100.9");
	struct decap_report r = {};
	__u32 one = 1;
	bool ok = true;
	size_t i;

	m.svc = bpf_map_create(BPF_MAP_TYPE_HASH, "ferry_test_svc", sizeof(struct ferry_svc_key),
			       sizeof(struct ferry_svc), 64, NULL);
	m.addr = bpf_map_create(BPF_MAP_TYPE_HASH, "ferry_test_addr", sizeof(struct ferry_xdcap_key),
				sizeof(__u32), 64, NULL);
	m.outer = bpf_map_create(BPF_MAP_TYPE_HASH, "ferry_test_out", sizeof(struct ferry_xdcap_key),
				 sizeof(__u32), 64, NULL);
	m.vip = bpf_map_create(BPF_MAP_TYPE_HASH, "ferry_test_vip", sizeof(struct ferry_xdcap_key),
			       sizeof(__u32), 64, NULL);
	m.pair = bpf_map_create(BPF_MAP_TYPE_HASH, "ferry_test_pair", sizeof(struct ferry_xdpair_key),
				sizeof(__u32), 64, NULL);
	if (!ASSERT_TRUE(m.svc >= 0 && m.addr >= 0 && m.outer >= 0 && m.vip >= 0 && m.pair >= 0,
			 "create maps: %s", strerror(errno))) {
		verdict("decap_derive: bound XDP VIPs, from the recorded node addresses", false);
		goto out;
	}
	for (i = 0; i < 4; i++)
		ok &= ASSERT_EQ(put_addr(m.addr, node[i]), 0, "node address %s", node[i]);
	ok &= ASSERT_EQ(put_addr(m.outer, "192.0.2.11") | put_addr(m.outer, "2001:db8::11"), 0, "outer");
	ok &= ASSERT_EQ(put_svc(m.svc, "198.51.100.1", 80, FERRY_SVC_F_XDP), 0, "xdp VIP, bound");
	ok &= ASSERT_EQ(put_svc(m.svc, "198.51.100.1", 443, FERRY_SVC_F_XDP), 0, "same VIP, second port");
	ok &= ASSERT_EQ(put_svc(m.svc, "2001:db8::1", 80, FERRY_SVC_F_XDP), 0, "xdp VIP v6, bound");
	ok &= ASSERT_EQ(put_svc(m.svc, "198.51.100.2", 80, FERRY_SVC_F_XDP), 0, "xdp VIP, not bound");
	ok &= ASSERT_EQ(put_svc(m.svc, "198.51.100.3", 80, 0), 0, "bound, not xdp");
	ok &= ASSERT_EQ(put_addr(m.vip, "198.51.100.9"), 0, "stale VIP");
	ok &= ASSERT_EQ(bpf_map_update_elem(m.pair, &stale_pair, &one, BPF_ANY), 0, "stale pair");

	ok &= ASSERT_EQ(decap_derive(&m, &r), 0, "decap_derive");
	ok &= ASSERT_EQ(r.vips, 2, "VIPs (one per address, not per port)");
	ok &= ASSERT_TRUE(r.vip_added == 2 && r.vip_removed == 1, "VIPs added 2, removed 1");
	ok &= ASSERT_TRUE(holds(m.vip, "198.51.100.1", NULL) && holds(m.vip, "2001:db8::1", NULL),
			  "bound XDP VIPs are in");
	ok &= ASSERT_TRUE(!holds(m.vip, "198.51.100.2", NULL), "an XDP VIP the node does not bind is not");
	ok &= ASSERT_TRUE(!holds(m.vip, "198.51.100.3", NULL), "a bound VIP of a non-XDP service is not");
	ok &= ASSERT_TRUE(!holds(m.vip, "198.51.100.9", NULL), "the stale VIP is gone");
	verdict("decap_derive: bound XDP VIPs, from the recorded node addresses", ok);

	ok = ASSERT_EQ(r.pairs, 4, "pairs: 2 outer x 2 VIPs");
	ok &= ASSERT_EQ(entries(m.pair, sizeof(struct ferry_xdpair_key)), 4, "pairs in the map");
	ok &= ASSERT_TRUE(has_pair(m.pair, "192.0.2.11", "198.51.100.1") &&
			  has_pair(m.pair, "192.0.2.11", "2001:db8::1") &&
			  has_pair(m.pair, "2001:db8::11", "198.51.100.1") &&
			  has_pair(m.pair, "2001:db8::11", "2001:db8::1"), "every outer with every VIP");
	ok &= ASSERT_TRUE(!has_pair(m.pair, "192.0.2.11", "198.51.100.9"), "the stale pair is gone");
	verdict("decap_derive: the pairs are every outer address with every VIP", ok);

	/* The node loses an address, and an outer one: the next derivation
	 * drops the VIP and every pair with either. */
	{
		struct ferry_xdcap_key k = key_of("2001:db8::1"), o = key_of("2001:db8::11");

		ok = ASSERT_EQ(bpf_map_delete_elem(m.addr, &k), 0, "unbind");
		ok &= ASSERT_EQ(bpf_map_delete_elem(m.outer, &o), 0, "outer address gone");
	}
	ok &= ASSERT_EQ(decap_derive(&m, &r), 0, "decap_derive");
	ok &= ASSERT_TRUE(r.vips == 1 && r.vip_added == 0 && r.vip_removed == 1, "one VIP left, one removed");
	ok &= ASSERT_TRUE(holds(m.vip, "198.51.100.1", NULL) && !holds(m.vip, "2001:db8::1", NULL),
			  "the unbound VIP is gone");
	ok &= ASSERT_TRUE(r.pairs == 1 && r.pair_removed == 3, "one pair left, three removed");
	ok &= ASSERT_TRUE(has_pair(m.pair, "192.0.2.11", "198.51.100.1"), "the pair that stays");
	verdict("decap_derive: an address the node no longer has leaves both maps", ok);

	/* More pairs than the map holds: refused whole, both maps as they were. */
	{
		struct ferry_xdcap_key o = key_of("2001:db8::11");
		int small = bpf_map_create(BPF_MAP_TYPE_HASH, "ferry_test_pair2",
					   sizeof(struct ferry_xdpair_key), sizeof(__u32), 1, NULL);
		struct decap_maps m2 = m;

		ok = ASSERT_TRUE(small >= 0, "create a 1-pair map: %s", strerror(errno));
		ok &= ASSERT_EQ(bpf_map_update_elem(m.outer, &o, &one, BPF_ANY), 0, "second outer again");
		ok &= ASSERT_EQ(put_addr(m.addr, "2001:db8::1"), 0, "bind the v6 VIP again");
		m2.pair = small;
		ok &= ASSERT_EQ(decap_derive(&m2, &r), -E2BIG, "decap_derive into too small a map");
		ok &= ASSERT_EQ(r.pairs, 4, "pairs it would have");
		ok &= ASSERT_EQ(entries(small, sizeof(struct ferry_xdpair_key)), 0, "pairs written");
		ok &= ASSERT_TRUE(holds(m.vip, "198.51.100.1", NULL) && !holds(m.vip, "2001:db8::1", NULL),
				  "the VIP set as it was");
		if (small >= 0)
			close(small);
	}
	verdict("decap_derive: more pairs than the map holds writes nothing", ok);
out:
	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
}

/* The decap as ferryd sets it up: the node's outer addresses, the VIPs
 * bound on it, and two XDP services on those VIPs; decap_derive() writes
 * the VIP set and the pairs. */
static int load(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	const char *outer[] = { OURS4, OURS6 }, *vips[] = { VIP4, VIP6 };
	struct decap_maps m = { .dirfd = -1 };
	struct decap_report r;
	int err, i;

	if ((err = pin_dir_create(pin_dir, sizeof(pin_dir), "dc")))	/* unique; removed on signals too */
		return err;
	oo.pin_root_path = pin_dir;
	dc = xdp_decap_bpf__open_opts(&oo);
	if (!dc)
		return -errno;
	bpf_map__set_max_entries(dc->maps.ferry_xdvip_v1, 1024);
	bpf_map__set_max_entries(dc->maps.ferry_xdpair_v1, 1024);
	if ((err = ferry_xdp_size(dc->obj, 1024, 4096)) || (err = xdp_decap_bpf__load(dc)))
		return err;
	m.svc = bpf_map_create(BPF_MAP_TYPE_HASH, "ferry_test_svc", sizeof(struct ferry_svc_key),
			       sizeof(struct ferry_svc), 16, NULL);
	if (m.svc < 0)
		return -errno;
	m.addr = bpf_map__fd(dc->maps.ferry_xdaddr_v1);
	m.outer = bpf_map__fd(dc->maps.ferry_xdcap_v1);
	m.vip = bpf_map__fd(dc->maps.ferry_xdvip_v1);
	m.pair = bpf_map__fd(dc->maps.ferry_xdpair_v1);
	for (i = 0; i < 2; i++)
		if (put_addr(m.outer, outer[i]) || put_addr(m.addr, outer[i]) || put_addr(m.addr, vips[i]) ||
		    put_svc(m.svc, vips[i], 80, FERRY_SVC_F_XDP)) {
			err = -errno;
			goto out;
		}
	if (!(err = decap_derive(&m, &r)) && (r.vips != 2 || r.pairs != 4))
		err = -EPROTO;
out:
	close(m.svc);
	return err;
}

int main(void)
{
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid()) {
		printf("SKIP test_bpf_decap: needs root\n");
		return 0;
	}
	atexit(cleanup);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	if ((err = load())) {
		printf("FAIL xdp decap loads: %s\n", strerror(-err));
		return 1;
	}
	verdict("xdp decap loads and passes the verifier", true);
	test_rows();
	test_set_sync();
	test_decap_derive();
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail ? 1 : 0;
}
