// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The XDP load balancer and decap under BPF_PROG_TEST_RUN.
 *
 * A table of rows (description, input packet, expected action, expected
 * output packet) covers parsing and rewriting: IPv4/IPv6, VLAN and QinQ, TCP
 * and UDP, non-VIP and socket-only services, ICMP echo and errors, MTU
 * overflow answered with ICMP, truncated and malformed headers, XDP_TX out
 * of the ingress device and XDP_REDIRECT to another one, and the VLAN tags
 * each leaves with: none toward a neighbour of an untagged device, the VLAN
 * device's one tag toward a neighbour behind one (ferry_xvlan_v1), those
 * received toward the gateway. Every encapsulated output is checked field by field (outer
 * addresses, protocol, lengths, TTL, checksum, MACs, tags, the inner
 * datagram byte for byte) and then fed to the decap program, which must give
 * back the original datagram.
 *
 * Behaviour tests follow: flows stay on their backend when a backend is
 * added, weights hold over 100,000 flows, draining / weight 0 / UNHEALTHY /
 * circuit OPEN / OPENING backends get no new flows but keep existing ones,
 * HALF_OPEN ones count as DEGRADED, new flows whose ring entries all refuse
 * still reach a usable backend (the slot scan), an ICMP error follows its
 * flow's recorded backend where the ring now names another, a flow that
 * moves CPUs keeps its backend, and the counters move by exactly the packets
 * sent. Last, every row's packet and every tunnel the rows made, mutated at
 * random (seeded), must get only a sound verdict (test_mutations()).
 *
 * The test runs in a network namespace of its own (unshare) with a veth
 * whose neighbours are static, so bpf_fib_lookup has a deterministic answer,
 * and pins its maps under a unique directory it removes at exit. Two more
 * veths stand in for VLAN devices over xdt0 (this kernel has no 8021q): the
 * FIB resolves their neighbours on them, and ferry_xvlan_v1 says what they
 * are, as ferryd would for real ones; the program cannot tell.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <linux/rtnetlink.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <ferry/abi.h>
#include <ferry/xdp.h>
#include "check.h"
#include "csum.h"
#include "maps.h"
#include "pindir.h"
#include "reconcile.h"
#include "registry.h"
#include "state.h"
#include "stat_names.h"
#include "xvlan.h"
#include "xdp_lb.skel.h"
#include "xdp_decap.skel.h"

static int lb_ifindex;		/* xdt0: the route to the backends leaves by it */
static int vlan_ifindex[2];	/* xdt2, xdt4: "VLAN devices" over xdt0 */
static char pin_dir[128];
static struct xdp_lb_bpf *lb;
static struct xdp_decap_bpf *dc;
static struct ferry_maps fm;

/* ---- the world ---------------------------------------------------------- */

static const __u8 MAC_LB[6] = { 0x02, 0, 0, 0, 0, 0x02 };	/* xdt0 */
static const __u8 MAC_GW[6] = { 0x02, 0, 0, 0, 0, 0xfe };
static const __u8 MAC_CLIENT[6] = { 0x02, 0, 0, 0, 0, 0x01 };
static const __u8 MAC_VIP_DST[6] = { 0x02, 0, 0, 0, 0, 0x0a };	/* as the client addressed us */
static const __u8 MAC_XDT2[6] = { 0x02, 0, 0, 0, 0x07, 0x02 };	/* VLAN 100 over xdt0 */
static const __u8 MAC_XDT4[6] = { 0x02, 0, 0, 0, 0x07, 0x04 };	/* 802.1ad VLAN 200 over xdt0 */

/* The "VLAN devices": veths whose entries in ferry_xvlan_v1 name xdt0. */
static const struct {
	const char *dev, *peer, *v4, *v6;
	const __u8 *mac;
	__u16 proto, vid;
} vdevs[] = {
	{ "xdt2", "xdt3", "198.18.0.2/24", "2001:db8:7::2/64", MAC_XDT2, 0x8100, 100 },
	{ "xdt4", "xdt5", "198.18.1.2/24", NULL, MAC_XDT4, 0x88a8, 200 },
};

struct nbr {
	const char *ip;
	__u8 mac[6];
	const char *dev;	/* NULL: xdt0 */
};

static const struct nbr nbrs[] = {
	{ "192.0.2.11", { 0x02, 0, 0, 0, 0, 0x11 }, NULL },
	{ "192.0.2.12", { 0x02, 0, 0, 0, 0, 0x12 }, NULL },
	{ "192.0.2.13", { 0x02, 0, 0, 0, 0, 0x13 }, NULL },
	{ "2001:db8::11", { 0x02, 0, 0, 0, 0, 0x11 }, NULL },
	{ "2001:db8::12", { 0x02, 0, 0, 0, 0, 0x12 }, NULL },
	{ "198.18.0.11", { 0x02, 0, 0, 0, 0x07, 0x11 }, "xdt2" },
	{ "2001:db8:7::11", { 0x02, 0, 0, 0, 0x07, 0x11 }, "xdt2" },
	{ "198.18.1.11", { 0x02, 0, 0, 0, 0x07, 0x21 }, "xdt4" },
};

static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* sysctl -w without procps: /proc/sys/net is the writer's netns (ours). */
static int proc_write(const char *path, const char *val)
{
	FILE *f = fopen(path, "w");
	int err = 0;

	if (!f)
		return -errno;
	if (fputs(val, f) < 0)
		err = -EIO;
	if (fclose(f) && !err)
		err = -errno;
	return err;
}

/* The netns is unshare()d, not named: it goes with the process, however it ends. */
static int net_setup(void)
{
	size_t i;

	if (unshare(CLONE_NEWNET))
		return -errno;
	if (sh("ip link set lo up") ||
	    sh("ip link add xdt0 type veth peer name xdt1") ||
	    sh("ip link set xdt0 address 02:00:00:00:00:02") ||
	    sh("ip addr add 192.0.2.2/24 dev xdt0") ||
	    sh("ip addr add 2001:db8::2/64 dev xdt0 nodad") ||
	    sh("ip link set xdt1 up && ip link set xdt0 up") ||
	    proc_write("/proc/sys/net/ipv4/conf/all/forwarding", "1") ||
	    proc_write("/proc/sys/net/ipv6/conf/all/forwarding", "1"))
		return -EIO;
	lb_ifindex = if_nametoindex("xdt0");
	if (!lb_ifindex)
		return -errno;
	for (i = 0; i < sizeof(vdevs) / sizeof(vdevs[0]); i++) {
		const __u8 *m = vdevs[i].mac;

		if (sh("ip link add %s type veth peer name %s", vdevs[i].dev, vdevs[i].peer) ||
		    sh("ip link set %s address %02x:%02x:%02x:%02x:%02x:%02x", vdevs[i].dev,
		       m[0], m[1], m[2], m[3], m[4], m[5]) ||
		    sh("ip addr add %s dev %s", vdevs[i].v4, vdevs[i].dev) ||
		    (vdevs[i].v6 && sh("ip addr add %s dev %s nodad", vdevs[i].v6, vdevs[i].dev)) ||
		    sh("ip link set %s up && ip link set %s up", vdevs[i].peer, vdevs[i].dev))
			return -EIO;
		vlan_ifindex[i] = if_nametoindex(vdevs[i].dev);
		if (!vlan_ifindex[i])
			return -errno;
	}
	for (i = 0; i < sizeof(nbrs) / sizeof(nbrs[0]); i++) {
		const __u8 *m = nbrs[i].mac;

		if (sh("ip neigh replace %s lladdr %02x:%02x:%02x:%02x:%02x:%02x dev %s nud permanent",
		       nbrs[i].ip, m[0], m[1], m[2], m[3], m[4], m[5], nbrs[i].dev ?: "xdt0"))
			return -EIO;
	}
	return 0;
}

static void cleanup(void)
{
	xdp_decap_bpf__destroy(dc);
	xdp_lb_bpf__destroy(lb);
	ferry_maps_close(&fm);
	if (pin_dir[0])
		pin_dir_remove();
}

/* Small maps: this is a test, not a node. */
#define XFLOW_SETS	65521	/* not the default, nor a power of two: any size works */
static int size_lb(struct xdp_lb_bpf *l)
{
	bpf_map__set_max_entries(l->maps.ferry_svc_v1, 1024);
	bpf_map__set_max_entries(l->maps.ferry_name_v1, 1024);
	bpf_map__set_max_entries(l->maps.ferry_mag_v1, 1024);
	bpf_map__set_max_entries(l->maps.ferry_xring_v1, 1025);
	bpf_map__set_max_entries(l->maps.ferry_slot_v1, 4096);
	bpf_map__set_max_entries(l->maps.ferry_be_v1, 4096);
	bpf_map__set_max_entries(l->maps.ferry_bestat_v2, 4096);
	bpf_map__set_max_entries(l->maps.ferry_rev_v1, 1024);
	/* Tables of other sizes than the program's defaults, so every test
	 * also shows ferry_xdp_size() wrote the geometry into the code. */
	bpf_map__set_max_entries(l->maps.ferry_xsvc_v1, 256);
	bpf_map__set_max_entries(l->maps.ferry_xflow_v3, XFLOW_SETS);
	bpf_map__set_max_entries(l->maps.ferry_xclient_v1, XFLOW_SETS);
	return ferry_xdp_size(l->obj, 1024, 4096);
}

static int load(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	struct ferry_xcfg xc = {};
	const char *which = NULL;
	__u32 zero = 0;
	size_t i;
	int err;

	if ((err = pin_dir_create(pin_dir, sizeof(pin_dir), "xd")))	/* unique; removed on signals too */
		return err;
	oo.pin_root_path = pin_dir;
	lb = xdp_lb_bpf__open_opts(&oo);
	if (!lb)
		return -errno;
	if ((err = size_lb(lb)) || (err = xdp_lb_bpf__load(lb)))
		return err;
	dc = xdp_decap_bpf__open_opts(&oo);
	if (!dc)
		return -errno;
	if ((err = ferry_xdp_size(dc->obj, 1024, 4096)) || (err = xdp_decap_bpf__load(dc)))
		return err;
	if ((err = ferry_maps_open(pin_dir, &fm, &which))) {
		printf("  open %s: %s\n", which, strerror(-err));
		return err;
	}
	xc.ring_size = FERRY_XDP_DEF_RING_M;
	xc.flags = FERRY_XCFG_F_GW;
	memcpy(xc.gw_mac, MAC_GW, 6);
	inet_pton(AF_INET, "203.0.113.0", &xc.src4);
	inet_pton(AF_INET, "255.255.255.0", &xc.src4_mask);
	inet_pton(AF_INET6, "2001:db8:f::", xc.src6);
	xc.src6_mask = htonl(0xffff0000);
	if (bpf_map_update_elem(fm.xcfg, &zero, &xc, BPF_ANY))
		return -errno;
	/* What ferryd would write for real VLAN devices xdt2 and xdt4 over xdt0. */
	for (i = 0; i < sizeof(vdevs) / sizeof(vdevs[0]); i++) {
		struct ferry_xvlan v = { .lower_ifindex = lb_ifindex, .proto = htons(vdevs[i].proto),
					 .tci = htons(vdevs[i].vid) };
		__u32 key = vlan_ifindex[i];

		if (bpf_map_update_elem(bpf_map__fd(lb->maps.ferry_xvlan_v1), &key, &v, BPF_NOEXIST))
			return -errno;
	}
	return 0;
}

/* ---- services through the real reconcile path ------------------------- */

struct bspec {
	const char *ip;
	int weight;
	int state;
};

static int svc_set(const char *name, const char *vip, int port, int proto, bool xdp,
		   const struct bspec *bs, size_t n)
{
	struct plan_opts o = { .owner = FERRY_SVC_F_MANUAL };
	struct reg_backend rb[16] = {};
	struct reg_service want = {};
	struct faddr va;
	struct fstate st;
	struct plan p;
	char err[256] = "";
	size_t i;
	int ret;

	if (faddr_parse(vip, &va) || n > sizeof(rb) / sizeof(rb[0]))
		return -EINVAL;
	snprintf(want.name, sizeof(want.name), "%s", name);
	memcpy(want.key.addr, va.a, sizeof(va.a));
	want.key.family = va.family;
	want.key.port = htons(port);
	want.key.proto = proto;
	want.lb = FERRY_LB_ROUND_ROBIN;
	want.xdp = xdp;
	circuit_defaults(&want.circuit);
	for (i = 0; i < n; i++) {
		if (faddr_parse(bs[i].ip, &rb[i].addr))
			return -EINVAL;
		rb[i].port = port;
		rb[i].weight = bs[i].weight ? bs[i].weight : 1;
		if (bs[i].weight < 0)
			rb[i].weight = 0;
		rb[i].state = bs[i].state;
	}
	want.backends = rb;
	want.nbackends = n;
	if ((ret = fstate_load(&fm, &st)))
		return ret;
	plan_init(&p);
	ret = plan_service(&p, &st, fstate_find(&st, &want.key), &want, &o, err, sizeof(err));
	if (!ret)
		ret = plan_apply(&fm, &p, err, sizeof(err));
	if (ret)
		printf("  service %s: %s\n", name, err);
	plan_free(&p);
	fstate_free(&st);
	return ret;
}

static void vip_key(const char *vip, int port, int proto, struct ferry_svc_key *k)
{
	struct faddr a;

	memset(k, 0, sizeof(*k));
	faddr_parse(vip, &a);
	memcpy(k->addr, a.a, sizeof(a.a));
	k->family = a.family;
	k->port = htons(port);
	k->proto = proto;
}

static int svc_lookup(const char *vip, int port, int proto, struct ferry_svc *out)
{
	struct ferry_svc_key k;

	vip_key(vip, port, proto, &k);
	return bpf_map_lookup_elem(fm.svc, &k, out) ? -errno : 0;
}

/* Backend id of slot i of the service at vip:port. */
static __u32 svc_backend(const char *vip, int port, int proto, __u32 slot)
{
	struct ferry_slot_key sk;
	struct ferry_slot sv;
	struct ferry_svc s;

	if (svc_lookup(vip, port, proto, &s))
		return 0;
	sk.svc_id = s.id;
	sk.slot = slot;
	return bpf_map_lookup_elem(fm.slot, &sk, &sv) ? 0 : sv.backend_id;
}

/* Which backend the service's ring names for a flow (what maglev alone says). */
static __u32 ring_backend(__u32 svc_id, const struct ferry_xflow_key *k)
{
	__u32 id, idx, m, be = 0;
	int fd;

	if (bpf_map_lookup_elem(fm.xring, &svc_id, &id))
		return 0;
	fd = bpf_map_get_fd_by_id(id);
	if (fd < 0)
		return 0;
	/* At the ring's own size, as the program reads it. */
	if (!map_max_entries(fd, &m)) {
		idx = ferry_ring_index(ferry_xflow_hash(k), m);
		bpf_map_lookup_elem(fd, &idx, &be);
	}
	close(fd);
	return be;
}

/* ---- packets ------------------------------------------------------------ */

struct pspec {
	int	vlans;			/* 0, 1 or 2 tags */
	int	vid;			/* the (outer) tag's VLAN id; 0: 100 (inner: 101) */
	int	family;			/* 4, 6; 0: an ARP frame */
	int	proto;			/* IPPROTO_TCP / UDP / ICMP / ICMPV6 */
	const char *src, *dst;
	__u16	sport, dport;
	__u8	tcp_flags;		/* default ACK */
	int	payload;
	bool	no_df;
	/* ICMP: type/code; an error quotes a reply qsrc:qsport -> qdst:qdport */
	int	icmp_type, icmp_code;
	const char *qsrc, *qdst;
	__u16	qsport, qdport;
	int	qproto;
	int	qfrag;			/* the quote is a fragment: IPv4 frag_off (MF 0x2000 |
					 * offset / 8); IPv6 a fragment header's offset / 8 << 3 | M */
	/* damage */
	int	truncate;		/* cut the frame to this many bytes */
	int	ihl;			/* IPv4 ihl override */
	int	doff;			/* TCP doff override */
	int	len_extra;		/* added to the IP length field */
	bool	frag;			/* IPv4 MF / IPv6 fragment header */
	bool	hbh;			/* IPv6 hop-by-hop header before L4 */
	int	rh;			/* IPv6 routing header (SRH, one segment) before L4:
					 * segments left + 1; 0: none */
	bool	ip_opts;		/* IPv4 with 8 bytes of options */
	int	trail;			/* bytes after the datagram (past its IP length) */
	int	opt_len;		/* IPv4 with this many bytes of options (a multiple of 4) */
};

#define TCP_ACK	0x10
#define TCP_SYN	0x02

/* Builds L4 (TCP/UDP header + payload) at p; returns its length. */
static size_t put_l4(__u8 *p, int proto, __u16 sport, __u16 dport, __u8 flags, int payload, int doff)
{
	size_t i;

	if (proto == IPPROTO_TCP) {
		struct tcphdr *t = (void *)p;

		memset(t, 0, sizeof(*t));
		t->source = htons(sport);
		t->dest = htons(dport);
		t->seq = htonl(1000);
		t->ack_seq = htonl(flags & TCP_ACK ? 2000 : 0);
		t->doff = doff ? doff : 5;
		p[13] = flags;
		t->window = htons(65535);
		t->check = 0x1234;	/* the LB never looks: carried as is */
		for (i = 0; i < (size_t)payload; i++)
			p[20 + i] = (__u8)i;
		return 20 + payload;
	}
	{
		struct udphdr *u = (void *)p;

		u->source = htons(sport);
		u->dest = htons(dport);
		u->len = htons(8 + payload);
		u->check = 0x4321;
		for (i = 0; i < (size_t)payload; i++)
			p[8 + i] = (__u8)(i * 7);
		return 8 + payload;
	}
}

/* A quoted datagram (for ICMP errors): IP header [+ IPv6 fragment header
 * when frag] + 8 bytes of L4 (ports there or, in a fragment other than the
 * first, payload bytes that look like them). */
static size_t put_quote(__u8 *p, int family, int proto, const char *src, const char *dst,
			__u16 sport, __u16 dport, int frag)
{
	if (family == 4) {
		struct iphdr *ip = (void *)p;

		memset(ip, 0, sizeof(*ip));
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons(1500);
		ip->frag_off = htons(frag);
		ip->ttl = 60;
		ip->protocol = proto;
		inet_pton(AF_INET, src, &ip->saddr);
		inet_pton(AF_INET, dst, &ip->daddr);
		ip->check = csum16(ip, 20, 0);
		put_l4(p + 20, proto, sport, dport, TCP_ACK, 0, 0);
		return 28;
	} else {
		struct ipv6hdr *ip = (void *)p;

		memset(ip, 0, sizeof(*ip));
		ip->version = 6;
		ip->payload_len = htons(1460);
		ip->nexthdr = frag ? 44 : proto;
		ip->hop_limit = 60;
		inet_pton(AF_INET6, src, &ip->saddr);
		inet_pton(AF_INET6, dst, &ip->daddr);
		if (frag) {
			memset(p + 40, 0, 8);
			p[40] = proto;
			p[42] = frag >> 8;
			p[43] = frag & 0xff;
			p[47] = 7;	/* identification */
		}
		put_l4(p + (frag ? 48 : 40), proto, sport, dport, TCP_ACK, 0, 0);
		return frag ? 56 : 48;
	}
}

/* Frame for spec s into buf; returns its length; *l3 is the L3 offset. */
static size_t build(const struct pspec *s, __u8 *buf, size_t *l3)
{
	__u8 *p = buf;
	size_t n = 0, l4len, iphl;
	int i;

	memcpy(p, MAC_VIP_DST, 6);
	memcpy(p + 6, MAC_CLIENT, 6);
	n = 12;
	for (i = 0; i < s->vlans; i++) {
		p[n] = i == 0 && s->vlans == 2 ? 0x88 : 0x81;
		p[n + 1] = i == 0 && s->vlans == 2 ? 0xa8 : 0x00;
		{
			int vid = i == 0 && s->vid ? s->vid : 100 + i;

			p[n + 2] = vid >> 8;
			p[n + 3] = vid & 0xff;
		}
		n += 4;
	}
	if (s->family == 0) {		/* ARP */
		p[n] = 0x08;
		p[n + 1] = 0x06;
		n += 2;
		memset(p + n, 0x11, 28);
		*l3 = n;
		return n + 28;
	}
	p[n] = s->family == 4 ? 0x08 : 0x86;
	p[n + 1] = s->family == 4 ? 0x00 : 0xdd;
	n += 2;
	*l3 = n;
	if (s->family == 4) {
		struct iphdr *ip = (void *)(p + n);
		__u8 *l4;

		iphl = s->opt_len ? 20 + s->opt_len : s->ip_opts ? 28 : 20;
		memset(ip, 0, iphl);
		ip->version = 4;
		ip->ihl = s->ihl ? (size_t)s->ihl : iphl / 4;
		ip->tos = 0x28;
		ip->id = htons(77);
		ip->frag_off = htons((s->no_df ? 0 : 0x4000) | (s->frag ? 0x2000 : 0));
		ip->ttl = 63;
		ip->protocol = s->proto;
		inet_pton(AF_INET, s->src, &ip->saddr);
		inet_pton(AF_INET, s->dst, &ip->daddr);
		memset((__u8 *)ip + 20, 1, iphl - 20);	/* NOPs */
		l4 = (__u8 *)ip + iphl;
		if (s->proto == IPPROTO_ICMP) {
			struct icmphdr *ic = (void *)l4;

			memset(ic, 0, 8);
			ic->type = s->icmp_type;
			ic->code = s->icmp_code;
			if (s->icmp_type == 3 && s->icmp_code == 4)
				ic->un.frag.mtu = htons(1400);
			l4len = 8;
			if (s->qsrc)
				l4len += put_quote(l4 + 8, 4, s->qproto, s->qsrc, s->qdst, s->qsport, s->qdport,
						   s->qfrag);
			else
				memset(l4 + 8, 0xab, 32), l4len += 32;
			ic->checksum = csum16(ic, l4len, 0);
		} else {
			l4len = put_l4(l4, s->proto, s->sport, s->dport, s->tcp_flags ? s->tcp_flags : TCP_ACK,
				       s->payload, s->doff);
		}
		ip->tot_len = htons(iphl + l4len + s->len_extra);
		ip->check = csum16(ip, iphl, 0);
		n += iphl + l4len;
	} else {
		struct ipv6hdr *ip = (void *)(p + n);
		__u8 *l4 = (__u8 *)(ip + 1);
		size_t ext = 0;

		memset(ip, 0, sizeof(*ip));
		ip->version = 6;
		ip->priority = 2;
		ip->flow_lbl[0] = 0x80;
		ip->hop_limit = 63;
		inet_pton(AF_INET6, s->src, &ip->saddr);
		inet_pton(AF_INET6, s->dst, &ip->daddr);
		if (s->rh) {
			/* Segment routing header, type 4: one segment after
			 * the VIP, the packet's final destination. */
			ip->nexthdr = 43;
			memset(l4, 0, 24);
			l4[0] = s->proto;
			l4[1] = 2;		/* 8 + 16 bytes */
			l4[2] = 4;
			l4[3] = s->rh - 1;	/* segments left */
			inet_pton(AF_INET6, "2001:db8:5e9::1", l4 + 8);
			ext = 24;
			l4 += 24;
		} else if (s->hbh || s->frag) {
			ip->nexthdr = s->hbh ? 0 : 44;
			l4[0] = s->proto;
			l4[1] = 0;
			memset(l4 + 2, 0, 6);
			if (s->hbh) {
				l4[2] = 1;	/* PadN */
				l4[3] = 4;
			}
			ext = 8;
			l4 += 8;
		} else {
			ip->nexthdr = s->proto;
		}
		if (s->proto == IPPROTO_ICMPV6) {
			struct icmp6hdr *ic = (void *)l4;

			memset(ic, 0, 8);
			ic->icmp6_type = s->icmp_type;
			ic->icmp6_code = s->icmp_code;
			l4len = 8;
			if (s->qsrc)
				l4len += put_quote(l4 + 8, 6, s->qproto, s->qsrc, s->qdst, s->qsport, s->qdport,
						   s->qfrag);
			else
				memset(l4 + 8, 0xab, 32), l4len += 32;
		} else {
			l4len = put_l4(l4, s->proto, s->sport, s->dport, s->tcp_flags ? s->tcp_flags : TCP_ACK,
				       s->payload, s->doff);
		}
		ip->payload_len = htons(ext + l4len + s->len_extra);
		n += sizeof(*ip) + ext + l4len;
	}
	memset(p + n, 0x5a, s->trail);
	n += s->trail;
	if (s->truncate && (size_t)s->truncate < n)
		n = s->truncate;
	return n;
}

/* ---- running ------------------------------------------------------------ */

/* One run of the program on frame in, as received on device ifindex (0: the
 * test run's default, lo); out, *outlen and *action as it left. */
static int run_on(int prog_fd, int ifindex, const void *in, size_t inlen, void *out, __u32 *outlen,
		  __u32 *action)
{
	struct xdp_md md = { .data_end = inlen, .ingress_ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, t,
		.data_in = in, .data_size_in = inlen,
		.data_out = out, .data_size_out = *outlen,
		.repeat = 1);
	int err;

	if (ifindex) {
		t.ctx_in = &md;
		t.ctx_size_in = sizeof(md);
	}
	err = bpf_prog_test_run_opts(prog_fd, &t);

	if (err)
		return -errno;
	*outlen = t.data_size_out;
	*action = t.retval;
	return 0;
}

static int run(int prog_fd, const void *in, size_t inlen, void *out, __u32 *outlen, __u32 *action)
{
	return run_on(prog_fd, 0, in, inlen, out, outlen, action);
}

/* Outcome counter slot of the LB summed over CPUs (0 if unreadable). */
static __u64 xstat(int slot)
{
	__u64 v[FERRY_XSTAT_MAX];

	if (xstat_sum(bpf_map__fd(lb->maps.ferry_xstat_v2), v))
		return 0;
	return v[slot];
}

static int lb_fd(void)
{
	return bpf_program__fd(lb->progs.ferry_xdp_lb);
}

static int dc_fd(void)
{
	return bpf_program__fd(dc->progs.ferry_xdp_decap);
}

/* The flow as the LB keys it: for an ICMP error, the quoted reply reversed. */
static void flow_key(const struct pspec *s, struct ferry_xflow_key *k)
{
	bool icmp = s->qsrc != NULL;
	int af = s->family == 4 ? AF_INET : AF_INET6;
	const char *cl = icmp ? s->qdst : s->src, *vip = icmp ? s->qsrc : s->dst;

	memset(k, 0, sizeof(*k));
	inet_pton(af, cl, k->src);
	inet_pton(af, vip, k->dst);
	k->sport = htons(icmp ? s->qdport : s->sport);
	k->dport = htons(icmp ? s->qsport : s->dport);
	k->proto = icmp ? s->qproto : s->proto;
	k->family = af;
}

static const struct nbr *nbr_of(const struct ferry_backend *be)
{
	char buf[64];
	size_t i;

	inet_ntop(be->family, be->addr, buf, sizeof(buf));
	for (i = 0; i < sizeof(nbrs) / sizeof(nbrs[0]); i++)
		if (!strcmp(nbrs[i].ip, buf))
			return &nbrs[i];
	return NULL;
}

/* The MAC of the device the FIB resolved n on: the next hop's source. */
static const __u8 *nbr_dev_mac(const struct nbr *n)
{
	size_t i;

	for (i = 0; n && n->dev && i < sizeof(vdevs) / sizeof(vdevs[0]); i++)
		if (!strcmp(n->dev, vdevs[i].dev))
			return vdevs[i].mac;
	return MAC_LB;
}

enum out_kind { OUT_SAME, OUT_ENCAP, OUT_TOOBIG, OUT_NONE };

struct row {
	const char *desc;
	struct pspec in;
	__u32 action;
	enum out_kind out;
	bool via_gw;		/* next hop from the configured gateway: the tags received kept */
	bool on_xdt0;		/* received on xdt0, the route's (lower) device: XDP_TX */
	int vid;		/* the one tag out (a backend behind a VLAN device); 0: none */
	__u16 tpid;		/* its ethertype; 0: 0x8100 */
	int mtu;		/* OUT_TOOBIG: the MTU announced */
	bool trimmed;		/* OUT_ENCAP: the bytes past the datagram (in.trail) cut, not carried */
	int counts;		/* CNT(slot): the row adds one to that counter; 0: unchecked */
};

#define CNT(slot)	((slot) + 1)

#define V4C	"192.0.2.1"
#define V4VIP	"198.51.100.10"
#define V6C	"2001:db8::1"
#define V6VIP	"2001:db8:ffff::10"
#define V4VLAN	"198.51.100.60"		/* backend 198.18.0.11, behind xdt2 (VLAN 100) */
#define V6VLAN	"2001:db8:ffff::60"	/* backend 2001:db8:7::11, behind xdt2 */
#define V4QINQ	"198.51.100.61"		/* backend 198.18.1.11, behind xdt4 (802.1ad 200) */

/* Rows name only the fields that matter; the rest are zero. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct row rows[] = {
	{ "v4 tcp to VIP: encapsulated IPIP, redirected to the route's device",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40000, .dport = 80, .payload = 100 },
	  XDP_REDIRECT, OUT_ENCAP },
	{ "v4 tcp SYN to VIP",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40001, .dport = 80, .tcp_flags = TCP_SYN },
	  XDP_REDIRECT, OUT_ENCAP },
	{ "v4 tcp with IP options to VIP",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40002, .dport = 80, .ip_opts = true, .payload = 10 },
	  XDP_REDIRECT, OUT_ENCAP },
	{ "v4 udp to VIP",
	  { .family = 4, .proto = IPPROTO_UDP, .src = V4C, .dst = V4VIP, .sport = 5353, .dport = 53, .payload = 40 },
	  XDP_REDIRECT, OUT_ENCAP },
	{ "v4 tcp VLAN-tagged to VIP, redirected to another device: untagged",
	  { .vlans = 1, .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40003, .dport = 80, .payload = 20 },
	  XDP_REDIRECT, OUT_ENCAP },
	{ "v4 udp QinQ to VIP, redirected to another device: both tags left behind",
	  { .vlans = 2, .family = 4, .proto = IPPROTO_UDP, .src = V4C, .dst = V4VIP, .sport = 5354, .dport = 53, .payload = 20 },
	  XDP_REDIRECT, OUT_ENCAP },
	{ "v4 tcp to VIP, route out of the ingress device: XDP_TX",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40004, .dport = 80, .payload = 20 },
	  XDP_TX, OUT_ENCAP, .on_xdt0 = true },
	/* The neighbour was resolved on xdt0's untagged L3: the client's VLAN
	 * is not where it lives. */
	{ "v4 tcp VLAN-tagged, XDP_TX to a neighbour on the ingress device's untagged subnet: untagged",
	  { .vlans = 1, .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40005, .dport = 80, .payload = 20 },
	  XDP_TX, OUT_ENCAP, .on_xdt0 = true },
	{ "v4 udp QinQ, XDP_TX to a neighbour on the ingress device's untagged subnet: untagged",
	  { .vlans = 2, .family = 4, .proto = IPPROTO_UDP, .src = V4C, .dst = V4VIP, .sport = 5355, .dport = 53, .payload = 20 },
	  XDP_TX, OUT_ENCAP, .on_xdt0 = true },
	{ "v6 tcp VLAN-tagged, XDP_TX to a neighbour on the ingress device's untagged subnet: untagged",
	  { .vlans = 1, .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 40005, .dport = 80, .payload = 20 },
	  XDP_TX, OUT_ENCAP, .on_xdt0 = true },
	/* Backends behind a VLAN device over xdt0: out of xdt0 with its tag. */
	{ "v4 tcp untagged to a backend behind VLAN 100 over the ingress device: XDP_TX, tag 100",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VLAN, .sport = 40020, .dport = 80, .payload = 20 },
	  XDP_TX, OUT_ENCAP, .on_xdt0 = true, .vid = 100 },
	{ "v4 tcp in VLAN 7 to a backend behind VLAN 100: XDP_TX, tag 100 (not 7)",
	  { .vlans = 1, .vid = 7, .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VLAN, .sport = 40021, .dport = 80, .payload = 20 },
	  XDP_TX, OUT_ENCAP, .on_xdt0 = true, .vid = 100 },
	{ "v4 udp QinQ to a backend behind VLAN 100: XDP_TX, the one tag 100",
	  { .vlans = 2, .vid = 7, .family = 4, .proto = IPPROTO_UDP, .src = V4C, .dst = V4VLAN, .sport = 5356, .dport = 53, .payload = 20 },
	  XDP_TX, OUT_ENCAP, .on_xdt0 = true, .vid = 100 },
	{ "v6 tcp in VLAN 7 to a backend behind VLAN 100: XDP_TX, tag 100",
	  { .vlans = 1, .vid = 7, .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VLAN, .sport = 40022, .dport = 80, .payload = 20 },
	  XDP_TX, OUT_ENCAP, .on_xdt0 = true, .vid = 100 },
	{ "v4 tcp in VLAN 7 to a backend behind an 802.1ad VLAN 200: XDP_TX, tag 88a8/200",
	  { .vlans = 1, .vid = 7, .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4QINQ, .sport = 40023, .dport = 80, .payload = 20 },
	  XDP_TX, OUT_ENCAP, .on_xdt0 = true, .vid = 200, .tpid = 0x88a8 },
	{ "v4 tcp from another device to a backend behind VLAN 100: redirected to the lower device, tag 100",
	  { .vlans = 1, .vid = 7, .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VLAN, .sport = 40024, .dport = 80, .payload = 20 },
	  XDP_REDIRECT, OUT_ENCAP, .vid = 100 },
	{ "v6 udp untagged from another device to a backend behind VLAN 100: redirected, tag 100",
	  { .family = 6, .proto = IPPROTO_UDP, .src = V6C, .dst = V6VLAN, .sport = 5357, .dport = 53, .payload = 30 },
	  XDP_REDIRECT, OUT_ENCAP, .vid = 100 },
	{ "v4 tcp QinQ to a backend via the gateway (XDP_TX): both tags kept",
	  { .vlans = 2, .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = "198.51.100.30", .sport = 40006, .dport = 80 },
	  XDP_TX, OUT_ENCAP, .via_gw = true },
	{ "v4 tcp in VLAN 7 to a backend via the gateway (XDP_TX): tag 7 kept",
	  { .vlans = 1, .vid = 7, .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = "198.51.100.30", .sport = 40007, .dport = 80 },
	  XDP_TX, OUT_ENCAP, .via_gw = true },
	{ "v6 tcp to VIP: IPv6-in-IPv6",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 40000, .dport = 80, .payload = 100 },
	  XDP_REDIRECT, OUT_ENCAP },
	{ "v6 udp VLAN-tagged to VIP, redirected to another device: untagged",
	  { .vlans = 1, .family = 6, .proto = IPPROTO_UDP, .src = V6C, .dst = V6VIP, .sport = 5353, .dport = 53, .payload = 30 },
	  XDP_REDIRECT, OUT_ENCAP },
	{ "v6 tcp after a hop-by-hop header",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 40001, .dport = 80, .hbh = true },
	  XDP_REDIRECT, OUT_ENCAP },
	{ "v6 tcp to the VIP after a routing header with no segments left: balanced",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 40002, .dport = 80, .rh = 1, .payload = 10 },
	  XDP_REDIRECT, OUT_ENCAP },
	/* The VIP is a waypoint: the packet goes on to the next segment. */
	{ "v6 tcp to the VIP with a routing header, segments left 1: passes, in transit",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 40003, .dport = 80, .rh = 2, .payload = 10 },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_V6_EXT) },
	{ "v6 udp to the VIP with a routing header, segments left 2: passes",
	  { .family = 6, .proto = IPPROTO_UDP, .src = V6C, .dst = V6VIP, .sport = 5358, .dport = 53, .rh = 3, .payload = 10 },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_V6_EXT) },
	{ "backend without a route: configured gateway MAC, XDP_TX",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = "198.51.100.30", .sport = 40000, .dport = 80 },
	  XDP_TX, OUT_ENCAP, .via_gw = true },
	{ "v4 tcp to a non-VIP address passes untouched",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = "198.51.100.99", .sport = 40000, .dport = 80 },
	  XDP_PASS, OUT_SAME },
	{ "v4 tcp to the VIP on another port passes",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40000, .dport = 81 },
	  XDP_PASS, OUT_SAME },
	{ "v4 udp to the tcp-only VIP port passes",
	  { .family = 4, .proto = IPPROTO_UDP, .src = V4C, .dst = V4VIP, .sport = 40000, .dport = 80 },
	  XDP_PASS, OUT_SAME },
	{ "socket-LB-only service (no xdp flag) passes",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = "198.51.100.20", .sport = 40000, .dport = 80 },
	  XDP_PASS, OUT_SAME },
	{ "v6 to a non-VIP passes",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = "2001:db8::99", .sport = 40000, .dport = 80 },
	  XDP_PASS, OUT_SAME },
	{ "ARP passes",
	  { .family = 0 }, XDP_PASS, OUT_SAME },
	{ "ICMP echo to the VIP passes",
	  { .family = 4, .proto = IPPROTO_ICMP, .src = V4C, .dst = V4VIP, .icmp_type = 8 },
	  XDP_PASS, OUT_SAME },
	{ "ICMPv6 echo to the VIP passes",
	  { .family = 6, .proto = IPPROTO_ICMPV6, .src = V6C, .dst = V6VIP, .icmp_type = 128 },
	  XDP_PASS, OUT_SAME },
	/* Here the table and the ring agree on the quoted flow; that the
	 * table decides is test_icmp_follows_flow's. */
	{ "ICMP frag-needed quoting a VIP reply goes to that flow's backend",
	  { .family = 4, .proto = IPPROTO_ICMP, .src = "203.0.113.254", .dst = V4VIP, .icmp_type = 3, .icmp_code = 4,
	    .qsrc = V4VIP, .qdst = V4C, .qsport = 80, .qdport = 40000, .qproto = IPPROTO_TCP },
	  XDP_REDIRECT, OUT_ENCAP },
	{ "ICMPv6 packet-too-big quoting a VIP reply goes to that flow's backend",
	  { .family = 6, .proto = IPPROTO_ICMPV6, .src = "2001:db8:1::fe", .dst = V6VIP, .icmp_type = 2,
	    .qsrc = V6VIP, .qdst = V6C, .qsport = 80, .qdport = 40000, .qproto = IPPROTO_TCP },
	  XDP_REDIRECT, OUT_ENCAP },
	/* A fragment other than the first has payload where ports would be
	 * (here bytes that read as the flow's): no flow to steer by. */
	{ "ICMP frag-needed quoting a non-first fragment of a VIP reply passes",
	  { .family = 4, .proto = IPPROTO_ICMP, .src = "203.0.113.254", .dst = V4VIP, .icmp_type = 3, .icmp_code = 4,
	    .qsrc = V4VIP, .qdst = V4C, .qsport = 80, .qdport = 40000, .qproto = IPPROTO_TCP, .qfrag = 185 },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_FRAG) },
	{ "ICMP time-exceeded quoting a last fragment (offset, no MF) of a VIP reply passes",
	  { .family = 4, .proto = IPPROTO_ICMP, .src = "203.0.113.254", .dst = V4VIP, .icmp_type = 11,
	    .qsrc = V4VIP, .qdst = V4C, .qsport = 53, .qdport = 40000, .qproto = IPPROTO_UDP, .qfrag = 1 },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_FRAG) },
	{ "ICMP frag-needed quoting a first fragment (MF, offset 0) of a VIP reply goes to the flow's backend",
	  { .family = 4, .proto = IPPROTO_ICMP, .src = "203.0.113.254", .dst = V4VIP, .icmp_type = 3, .icmp_code = 4,
	    .qsrc = V4VIP, .qdst = V4C, .qsport = 80, .qdport = 40000, .qproto = IPPROTO_TCP, .qfrag = 0x2000 },
	  XDP_REDIRECT, OUT_ENCAP, .counts = CNT(FERRY_XSTAT_ICMP_FWD) },
	{ "ICMPv6 packet-too-big quoting a non-first fragment of a VIP reply passes",
	  { .family = 6, .proto = IPPROTO_ICMPV6, .src = "2001:db8:1::fe", .dst = V6VIP, .icmp_type = 2,
	    .qsrc = V6VIP, .qdst = V6C, .qsport = 80, .qdport = 40000, .qproto = IPPROTO_TCP, .qfrag = 185 << 3 },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_FRAG) },
	{ "ICMP error quoting a non-VIP flow passes",
	  { .family = 4, .proto = IPPROTO_ICMP, .src = "203.0.113.254", .dst = "198.51.100.99", .icmp_type = 3, .icmp_code = 4,
	    .qsrc = "198.51.100.99", .qdst = V4C, .qsport = 80, .qdport = 40000, .qproto = IPPROTO_TCP },
	  XDP_PASS, OUT_SAME },
	{ "ICMP error quoting a VIP reply, sent to another address: passes, not for a VIP",
	  { .family = 4, .proto = IPPROTO_ICMP, .src = "203.0.113.254", .dst = "198.51.100.99", .icmp_type = 3, .icmp_code = 4,
	    .qsrc = V4VIP, .qdst = V4C, .qsport = 80, .qdport = 40000, .qproto = IPPROTO_TCP },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_NOT_VIP) },
	{ "ICMP error sent to a VIP quoting another VIP's reply passes",
	  { .family = 4, .proto = IPPROTO_ICMP, .src = "203.0.113.254", .dst = V4VIP, .icmp_type = 3, .icmp_code = 1,
	    .qsrc = "198.51.100.30", .qdst = V4C, .qsport = 80, .qdport = 40000, .qproto = IPPROTO_TCP },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_NOT_VIP) },
	{ "ICMPv6 packet-too-big quoting a VIP reply, sent to another address: passes, not for a VIP",
	  { .family = 6, .proto = IPPROTO_ICMPV6, .src = "2001:db8:1::fe", .dst = "2001:db8::99", .icmp_type = 2,
	    .qsrc = V6VIP, .qdst = V6C, .qsport = 80, .qdport = 40000, .qproto = IPPROTO_TCP },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_NOT_VIP) },
	{ "v4 tcp too big after encapsulation (DF): frag-needed answered, mtu 1480",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40010, .dport = 80, .payload = 1450 },
	  XDP_TX, OUT_TOOBIG, .mtu = 1480 },
	/* Linux discards a frag-needed whose quote is shorter than the
	 * quoted header and 8 bytes (icmp_socket_deliver). */
	{ "v4 tcp with 40 bytes of IP options too big (DF): frag-needed quoting the 60-byte header and 8 bytes",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40013, .dport = 80, .opt_len = 40,
	    .payload = 1420 },
	  XDP_TX, OUT_TOOBIG, .mtu = 1480, .counts = CNT(FERRY_XSTAT_ICMP_TOO_BIG) },
	{ "v4 udp with 32 bytes of IP options too big (DF): frag-needed quoting 60 bytes",
	  { .family = 4, .proto = IPPROTO_UDP, .src = V4C, .dst = V4VIP, .sport = 5360, .dport = 53, .opt_len = 32,
	    .payload = 1440 },
	  XDP_TX, OUT_TOOBIG, .mtu = 1480, .counts = CNT(FERRY_XSTAT_ICMP_TOO_BIG) },
	{ "v4 tcp with 28 bytes of IP options too big (DF): frag-needed quoting 56 bytes",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40014, .dport = 80, .opt_len = 28,
	    .payload = 1440 },
	  XDP_TX, OUT_TOOBIG, .mtu = 1480, .counts = CNT(FERRY_XSTAT_ICMP_TOO_BIG) },
	{ "v4 tcp too big without DF: dropped",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40011, .dport = 80, .payload = 1450, .no_df = true },
	  XDP_DROP, OUT_NONE, .counts = CNT(FERRY_XSTAT_DROP_TOO_BIG) },
	{ "v4 tcp exactly fitting after encapsulation",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40012, .dport = 80, .payload = 1440 },
	  XDP_REDIRECT, OUT_ENCAP },
	/* The tunnel carries the frame after L2: bytes past the IP length
	 * too. Ethernet padding fits; bytes that would take the outer frame
	 * over the MTU are cut first when the datagram itself fits. */
	{ "v4 tcp 60-byte frame with Ethernet padding: encapsulated, padding carried after the datagram",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40015, .dport = 80, .trail = 6 },
	  XDP_REDIRECT, OUT_ENCAP, .counts = CNT(FERRY_XSTAT_REDIRECT) },
	{ "v4 tcp with 1400 bytes past its IP length, over the MTU encapsulated: trimmed, encapsulated",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40016, .dport = 80, .payload = 100,
	    .trail = 1400 },
	  XDP_REDIRECT, OUT_ENCAP, .trimmed = true, .counts = CNT(FERRY_XSTAT_REDIRECT) },
	{ "v4 tcp exactly fitting after encapsulation, 1 byte past its IP length: trimmed, encapsulated",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40017, .dport = 80, .payload = 1440,
	    .trail = 1 },
	  XDP_REDIRECT, OUT_ENCAP, .trimmed = true, .counts = CNT(FERRY_XSTAT_REDIRECT) },
	{ "v6 udp with 1400 bytes past its payload length, over the MTU encapsulated: trimmed, encapsulated",
	  { .family = 6, .proto = IPPROTO_UDP, .src = V6C, .dst = V6VIP, .sport = 5359, .dport = 53, .payload = 100,
	    .trail = 1400 },
	  XDP_REDIRECT, OUT_ENCAP, .trimmed = true, .counts = CNT(FERRY_XSTAT_REDIRECT) },
	{ "v4 tcp too big itself, with bytes past its IP length (DF): frag-needed answered",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40018, .dport = 80, .payload = 1450,
	    .trail = 30 },
	  XDP_TX, OUT_TOOBIG, .mtu = 1480, .counts = CNT(FERRY_XSTAT_ICMP_TOO_BIG) },
	{ "v6 tcp too big after encapsulation: packet-too-big answered, mtu 1460",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 40010, .dport = 80, .payload = 1420 },
	  XDP_TX, OUT_TOOBIG, .mtu = 1460 },
	{ "v4 fragment to the VIP passes (no ports)",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 40000, .dport = 80, .frag = true },
	  XDP_PASS, OUT_SAME },
	{ "v6 fragment header passes",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 40000, .dport = 80, .frag = true },
	  XDP_PASS, OUT_SAME },
	{ "Ethernet header alone (test_run needs 14 bytes) passes",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 1, .dport = 80, .truncate = 14 },
	  XDP_PASS, OUT_SAME },
	{ "truncated VLAN tag passes",
	  { .vlans = 1, .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 1, .dport = 80, .truncate = 15 },
	  XDP_PASS, OUT_SAME },
	{ "truncated IPv4 header passes",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 1, .dport = 80, .truncate = 14 + 12 },
	  XDP_PASS, OUT_SAME },
	{ "IPv4 ihl 4 passes",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 1, .dport = 80, .ihl = 4 },
	  XDP_PASS, OUT_SAME },
	{ "IPv4 ihl 15 past the frame passes",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 1, .dport = 80, .ihl = 15 },
	  XDP_PASS, OUT_SAME },
	{ "ports cut off passes",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 1, .dport = 80, .truncate = 14 + 20 + 3 },
	  XDP_PASS, OUT_SAME },
	{ "VIP tcp header cut after the ports: dropped",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 1, .dport = 80, .truncate = 14 + 20 + 10 },
	  XDP_DROP, OUT_NONE },
	{ "VIP tcp doff 3: dropped",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 1, .dport = 80, .doff = 3 },
	  XDP_DROP, OUT_NONE },
	{ "VIP IPv4 total length past the frame: dropped",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 1, .dport = 80, .len_extra = 100 },
	  XDP_DROP, OUT_NONE },
	{ "VIP udp header cut: dropped",
	  { .family = 4, .proto = IPPROTO_UDP, .src = V4C, .dst = V4VIP, .sport = 1, .dport = 53, .truncate = 14 + 20 + 6 },
	  XDP_DROP, OUT_NONE },
	{ "truncated IPv6 header passes",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 1, .dport = 80, .truncate = 14 + 30 },
	  XDP_PASS, OUT_SAME },
	{ "IPv6 ports cut off passes",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 1, .dport = 80, .truncate = 14 + 40 + 3 },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_MALFORMED) },
	{ "VIP IPv6 tcp header cut after the ports: dropped",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 1, .dport = 80, .truncate = 14 + 40 + 10 },
	  XDP_DROP, OUT_NONE, .counts = CNT(FERRY_XSTAT_DROP_MALFORMED) },
	{ "truncated IPv6 extension header passes",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 1, .dport = 80, .hbh = true, .truncate = 14 + 40 + 1 },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_MALFORMED) },
	{ "IPv6 ports cut after an extension header pass",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 1, .dport = 80, .hbh = true, .truncate = 14 + 40 + 8 + 3 },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_MALFORMED) },
	{ "ICMPv6 error with its quoted IPv6 header cut passes",
	  { .family = 6, .proto = IPPROTO_ICMPV6, .src = "2001:db8:1::fe", .dst = V6VIP, .icmp_type = 2,
	    .qsrc = V6VIP, .qdst = V6C, .qsport = 80, .qdport = 40000, .qproto = IPPROTO_TCP, .truncate = 14 + 40 + 8 + 20 },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_MALFORMED) },
	{ "ICMPv6 error with its quoted ports cut passes",
	  { .family = 6, .proto = IPPROTO_ICMPV6, .src = "2001:db8:1::fe", .dst = V6VIP, .icmp_type = 2,
	    .qsrc = V6VIP, .qdst = V6C, .qsport = 80, .qdport = 40000, .qproto = IPPROTO_TCP, .truncate = 14 + 40 + 8 + 40 + 2 },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_MALFORMED) },
	{ "truncated second (QinQ) VLAN tag passes",
	  { .vlans = 2, .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = V4VIP, .sport = 1, .dport = 80, .truncate = 14 + 4 + 2 },
	  XDP_PASS, OUT_SAME, .counts = CNT(FERRY_XSTAT_PASS_MALFORMED) },
	{ "VIP IPv6 payload length past the frame: dropped",
	  { .family = 6, .proto = IPPROTO_TCP, .src = V6C, .dst = V6VIP, .sport = 1, .dport = 80, .len_extra = 8 },
	  XDP_DROP, OUT_NONE },
	{ "ICMP error with its quote cut passes",
	  { .family = 4, .proto = IPPROTO_ICMP, .src = "203.0.113.254", .dst = V4VIP, .icmp_type = 3, .icmp_code = 4,
	    .qsrc = V4VIP, .qdst = V4C, .qsport = 80, .qdport = 40000, .qproto = IPPROTO_TCP, .truncate = 14 + 20 + 8 + 22 },
	  XDP_PASS, OUT_SAME },
	{ "VIP whose only backend is UNHEALTHY: dropped",
	  { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = "198.51.100.31", .sport = 40000, .dport = 80, .tcp_flags = TCP_SYN },
	  XDP_DROP, OUT_NONE },
};
#pragma GCC diagnostic pop

static bool ip4_csum_ok(const struct iphdr *ip)
{
	return csum16(ip, ip->ihl * 4, 0) == 0;
}

/*
 * Checks an encapsulated frame against the original; the decap must undo it.
 * Toward the gateway it keeps the VLAN tags it came with; toward a FIB
 * neighbour it carries the tag of the VLAN device the neighbour is behind
 * (r->vid), else none, whichever device it leaves by.
 */
static bool check_encap(const struct row *r, const __u8 *in, size_t inlen, size_t l3,
			const __u8 *out, size_t outlen)
{
	struct ferry_xflow_key k;
	struct ferry_backend be;
	struct ferry_svc svc;
	const __u8 *dmac, *smac;
	const struct nbr *n;
	/* the datagram, by its IP length; what the tunnel carries: the
	 * frame after L2, bytes after the datagram included unless trimmed */
	size_t dgram = inlen - l3 - r->in.trail, l3len = r->trimmed ? dgram : inlen - l3;
	size_t ol3, ol2 = r->via_gw ? l3 : r->vid ? ETH_HLEN + 4 : ETH_HLEN;
	__u32 be_id;
	bool ok = true;
	int ofam;

	flow_key(&r->in, &k);
	{
		char vip[64];

		inet_ntop(k.family, k.dst, vip, sizeof(vip));
		if (!ASSERT_TRUE(!svc_lookup(vip, ntohs(k.dport), k.proto, &svc), "service of %s", vip))
			return false;
	}
	be_id = ring_backend(svc.id, &k);
	if (!ASSERT_TRUE(be_id && !bpf_map_lookup_elem(fm.be, &be_id, &be), "ring entry for the flow"))
		return false;
	ofam = be.family;
	n = nbr_of(&be);
	dmac = r->via_gw ? MAC_GW : n ? n->mac : NULL;
	smac = r->via_gw ? MAC_VIP_DST : nbr_dev_mac(n);
	ok &= ASSERT_TRUE(dmac && !memcmp(out, dmac, 6), "destination MAC");
	ok &= ASSERT_TRUE(!memcmp(out + 6, smac, 6), "source MAC: %s", r->via_gw ? "as addressed" :
			  "the route's device's");
	if (r->via_gw)
		ok &= ASSERT_TRUE(!memcmp(out + 12, in + 12, ol2 - ETH_HLEN), "VLAN tags kept toward the gateway");
	if (r->vid) {
		ok &= ASSERT_EQ(out[12] << 8 | out[13], r->tpid ? r->tpid : 0x8100, "the VLAN device's tag protocol");
		ok &= ASSERT_EQ(out[14] << 8 | out[15], r->vid, "the VLAN device's tag (TCI)");
	}
	ok &= ASSERT_EQ(out[ol2 - 2] << 8 | out[ol2 - 1], ofam == AF_INET ? 0x0800 : 0x86dd,
			"ethertype%s", r->via_gw ? "" : r->vid ? " after the one tag" : ", no VLAN tag");
	if (ofam == AF_INET) {
		const struct iphdr *o = (const void *)(out + ol2);
		__u32 pfx = htonl(0xcb007100);	/* 203.0.113.0/24 */

		ol3 = 20;
		ok &= ASSERT_EQ(outlen, ol2 + ol3 + l3len, "frame length");
		ok &= ASSERT_EQ(o->version, 4, "outer version");
		ok &= ASSERT_EQ(o->ihl, 5, "outer ihl");
		ok &= ASSERT_EQ(o->protocol, k.family == AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6, "outer protocol");
		ok &= ASSERT_EQ(ntohs(o->tot_len), dgram + 20, "outer total length");
		ok &= ASSERT_EQ(o->ttl, 64, "outer ttl");
		ok &= ASSERT_TRUE(ip4_csum_ok(o), "outer header checksum");
		ok &= ASSERT_EQ(o->daddr, be.addr[0], "outer destination is the ring's backend");
		ok &= ASSERT_EQ(o->saddr & htonl(0xffffff00), pfx, "outer source in the configured prefix");
		if (k.family == AF_INET && !r->in.qsrc)
			ok &= ASSERT_EQ(o->tos, 0x28, "inner TOS copied");
		if (k.family == AF_INET)
			ok &= ASSERT_EQ(ntohs(o->frag_off), r->in.no_df ? 0 : 0x4000, "DF copied");
	} else {
		const struct ipv6hdr *o = (const void *)(out + ol2);
		struct in6_addr pfx;

		ol3 = 40;
		inet_pton(AF_INET6, "2001:db8:f::", &pfx);
		ok &= ASSERT_EQ(outlen, ol2 + ol3 + l3len, "frame length");
		ok &= ASSERT_EQ(o->version, 6, "outer version");
		ok &= ASSERT_EQ(o->nexthdr, k.family == AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6, "outer next header");
		ok &= ASSERT_EQ(ntohs(o->payload_len), dgram, "outer payload length");
		ok &= ASSERT_EQ(o->hop_limit, 64, "outer hop limit");
		ok &= ASSERT_TRUE(!memcmp(&o->daddr, be.addr, 16), "outer destination is the ring's backend");
		ok &= ASSERT_TRUE(!memcmp(&o->saddr, &pfx, 14), "outer source in the configured prefix");
		ok &= ASSERT_EQ(ntohl(*(const __u32 *)o) & 0xfffff, ferry_xflow_hash(&k) & 0xfffff,
				"flow label from the flow hash");
		if (k.family == AF_INET6 && !r->in.qsrc) {
			const struct ipv6hdr *i6 = (const void *)(in + l3);

			ok &= ASSERT_EQ(o->priority << 4 | o->flow_lbl[0] >> 4, 0x28,
					"inner traffic class copied");
			ok &= ASSERT_EQ(i6->priority << 4 | i6->flow_lbl[0] >> 4, 0x28,
					"(the inner traffic class the row sent)");
		}
	}
	ok &= ASSERT_TRUE(!memcmp(out + ol2 + ol3, in + l3, l3len), "inner datagram carried byte for byte");

	/* The backend's decap must give back the original datagram. */
	{
		__u8 dout[2048];
		__u32 dlen = sizeof(dout), act;

		if (!ASSERT_EQ(run(dc_fd(), out, outlen, dout, &dlen, &act), 0, "decap test run"))
			return false;
		ok &= ASSERT_EQ(act, XDP_PASS, "decap action");
		ok &= ASSERT_EQ(dlen, ol2 + l3len, "decapsulated length");
		ok &= ASSERT_TRUE(!memcmp(dout, out, 12), "decap keeps the MACs");
		ok &= ASSERT_TRUE(!memcmp(dout + 12, out + 12, ol2 - ETH_HLEN), "decap keeps the tags it received");
		ok &= ASSERT_TRUE(!memcmp(dout + ol2 - 2, in + l3 - 2, 2), "decap restores the ethertype");
		ok &= ASSERT_TRUE(!memcmp(dout + ol2, in + l3, l3len), "decap restores the datagram");
	}
	return ok;
}

/* The reply to a datagram too big: from the VIP to the client, its MTU, and
 * a quote Linux accepts (IPv4: 56 bytes, or the header and 8 more when that
 * is longer; IPv6: 200), byte for byte, under valid checksums. */
static bool check_toobig(const struct row *r, const __u8 *in, size_t l3, const __u8 *out, size_t outlen)
{
	bool ok = true;

	ok &= ASSERT_TRUE(!memcmp(out, MAC_CLIENT, 6), "reply to the sender's MAC");
	ok &= ASSERT_TRUE(!memcmp(out + 6, MAC_VIP_DST, 6), "reply from the MAC it used");
	if (r->in.family == 4) {
		const struct iphdr *ip = (const void *)(out + l3), *iin = (const void *)(in + l3);
		const struct icmphdr *ic = (const void *)(ip + 1);
		size_t q = iin->ihl * 4 + 8 > 56 ? iin->ihl * 4 + 8 : 56;

		ok &= ASSERT_EQ(outlen, l3 + 20 + 8 + q, "reply length");
		ok &= ASSERT_EQ(ip->protocol, IPPROTO_ICMP, "protocol");
		ok &= ASSERT_TRUE(ip4_csum_ok(ip), "IP checksum");
		ok &= ASSERT_EQ(ip->saddr, iin->daddr, "from the VIP");
		ok &= ASSERT_EQ(ip->daddr, iin->saddr, "to the client");
		ok &= ASSERT_EQ(ntohs(ip->tot_len), 20 + 8 + q, "IP total length");
		ok &= ASSERT_EQ(ic->type, 3, "ICMP type");
		ok &= ASSERT_EQ(ic->code, 4, "ICMP code");
		ok &= ASSERT_EQ(ntohs(ic->un.frag.mtu), r->mtu, "next-hop MTU");
		ok &= ASSERT_EQ(csum16(ic, 8 + q, 0), 0, "ICMP checksum");
		ok &= ASSERT_TRUE(q >= iin->ihl * 4 + 8u, "the quote holds the header and 8 bytes (%zu)", q);
		ok &= ASSERT_TRUE(!memcmp(ic + 1, in + l3, q), "quote of the datagram");
	} else {
		const struct ipv6hdr *ip = (const void *)(out + l3), *iin = (const void *)(in + l3);
		const struct icmp6hdr *ic = (const void *)(ip + 1);
		__u8 ph[40] = {};
		__u32 sum = 0;
		size_t i;

		ok &= ASSERT_EQ(outlen, l3 + 40 + 8 + 200, "reply length");
		ok &= ASSERT_EQ(ip->nexthdr, IPPROTO_ICMPV6, "next header");
		ok &= ASSERT_TRUE(!memcmp(&ip->saddr, &iin->daddr, 16), "from the VIP");
		ok &= ASSERT_TRUE(!memcmp(&ip->daddr, &iin->saddr, 16), "to the client");
		ok &= ASSERT_EQ(ntohs(ip->payload_len), 208, "payload length");
		ok &= ASSERT_EQ(ic->icmp6_type, 2, "ICMPv6 type");
		ok &= ASSERT_EQ(ntohl(ic->icmp6_dataun.un_data32[0]), r->mtu, "MTU");
		memcpy(ph, &ip->saddr, 32);
		ph[35] = 208;
		ph[39] = IPPROTO_ICMPV6;
		for (i = 0; i < 40; i += 2)
			sum += ph[i] << 8 | ph[i + 1];
		ok &= ASSERT_EQ(csum16(ic, 208, sum), 0, "ICMPv6 checksum over the pseudo-header");
		ok &= ASSERT_TRUE(!memcmp(ic + 1, in + l3, 200), "quote of the datagram");
	}
	return ok;
}

static void test_rows(void)
{
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		__u8 in[2048], out[2048];
		__u32 outlen = sizeof(out), act;
		__u64 before = r->counts ? xstat(r->counts - 1) : 0;
		size_t inlen, l3;
		bool ok;

		inlen = build(&r->in, in, &l3);
		ok = ASSERT_EQ(run_on(lb_fd(), r->on_xdt0 ? lb_ifindex : 0, in, inlen, out, &outlen, &act),
			       0, "test run");
		ok = ok && ASSERT_EQ(act, r->action, "action");
		if (ok && r->counts)
			ok &= ASSERT_EQ(xstat(r->counts - 1) - before, 1, "counter slot %d", r->counts - 1);
		if (ok) {
			switch (r->out) {
			case OUT_SAME:
				ok &= ASSERT_EQ(outlen, inlen, "length unchanged");
				ok &= ASSERT_TRUE(!memcmp(in, out, inlen), "bytes unchanged");
				break;
			case OUT_ENCAP:
				ok &= check_encap(r, in, inlen, l3, out, outlen);
				break;
			case OUT_TOOBIG:
				ok &= check_toobig(r, in, l3, out, outlen);
				break;
			case OUT_NONE:
				break;
			}
		}
		{
			char name[160];

			snprintf(name, sizeof(name), "xdp row: %s", r->desc);
			verdict(name, ok);
		}
	}
}

/* ---- behaviour ------------------------------------------------------------ */

/* One packet of flow (client port, VIP) through the LB; returns the outer destination's last byte. */
static int send_flow(const char *vip, int port, __u32 client, __u16 sport, bool syn, __u32 *act_out)
{
	struct pspec s = { .family = 4, .proto = IPPROTO_TCP, .dst = vip, .dport = port,
			   .sport = sport, .tcp_flags = syn ? TCP_SYN : TCP_ACK };
	char src[32];
	__u8 in[256], out[256];
	__u32 outlen = sizeof(out), act;
	size_t inlen, l3;

	snprintf(src, sizeof(src), "192.0.2.%u", 100 + client % 100);
	s.src = src;
	inlen = build(&s, in, &l3);
	if (run(lb_fd(), in, inlen, out, &outlen, &act))
		return -1;
	if (act_out)
		*act_out = act;
	if (act != XDP_REDIRECT && act != XDP_TX)
		return -1;
	return out[l3 + 19];	/* last byte of the outer IPv4 destination */
}

static void test_weights(void)
{
	const struct bspec bs[] = { { .ip = "192.0.2.11", .weight = 3 }, { .ip = "192.0.2.12", .weight = 1 } };
	int n = 100000, c11 = 0, c12 = 0, other = 0, i;
	bool ok;

	ok = ASSERT_EQ(svc_set("weights", "198.51.100.40", 80, IPPROTO_TCP, true, bs, 2), 0, "service");
	for (i = 0; ok && i < n; i++) {
		int b = send_flow("198.51.100.40", 80, i / 1000, 1024 + i % 1000 * 61, true, NULL);

		if (b == 11)
			c11++;
		else if (b == 12)
			c12++;
		else
			other++;
	}
	ok &= ASSERT_EQ(other, 0, "flows not balanced");
	/* 3:1 -> 75%; maglev's table is within a fraction of a percent. */
	ok &= ASSERT_TRUE(c11 > n * 0.73 && c11 < n * 0.77, "weight 3 backend got %d of %d", c11, n);
	printf("  weights 3:1 over %d flows: %d / %d (%.2f%%)\n", n, c11, c12, 100.0 * c11 / n);
	verdict("xdp weight proportions over 100000 flows", ok);
}

static void test_stickiness_and_draining(void)
{
	struct bspec two[] = { { .ip = "192.0.2.11" }, { .ip = "192.0.2.12" } };
	struct bspec three[] = { { .ip = "192.0.2.11" }, { .ip = "192.0.2.12" }, { .ip = "192.0.2.13" } };
	enum { N = 2000 };
	static int first[N];
	int moved = 0, to13 = 0, i, b, new13 = 0, drained_new = 0, drained_kept = 0, on11 = 0;
	bool ok;

	ok = ASSERT_EQ(svc_set("sticky", "198.51.100.50", 80, IPPROTO_TCP, true, two, 2), 0, "service");
	for (i = 0; ok && i < N; i++)
		first[i] = send_flow("198.51.100.50", 80, 1, 2000 + i, true, NULL);
	/* A third backend: maglev alone would move about a third of the flows. */
	ok &= ASSERT_EQ(svc_set("sticky", "198.51.100.50", 80, IPPROTO_TCP, true, three, 3), 0, "add backend");
	for (i = 0; ok && i < N; i++) {
		struct ferry_xflow_key k = { .proto = IPPROTO_TCP, .family = AF_INET };
		struct ferry_svc s;
		struct ferry_backend be;
		__u32 id;

		b = send_flow("198.51.100.50", 80, 1, 2000 + i, false, NULL);
		moved += b != first[i];
		inet_pton(AF_INET, "192.0.2.101", k.src);
		inet_pton(AF_INET, "198.51.100.50", k.dst);
		k.sport = htons(2000 + i);
		k.dport = htons(80);
		svc_lookup("198.51.100.50", 80, IPPROTO_TCP, &s);
		id = ring_backend(s.id, &k);
		if (!bpf_map_lookup_elem(fm.be, &id, &be) && (ntohl(be.addr[0]) & 0xff) == 13)
			to13++;
	}
	ok &= ASSERT_EQ(moved, 0, "established flows that changed backend after a backend was added");
	ok &= ASSERT_TRUE(to13 > N / 5, "the new ring sends %d of %d flows to the new backend", to13, N);
	for (i = 0; ok && i < N; i++)
		new13 += send_flow("198.51.100.50", 80, 2, 2000 + i, true, NULL) == 13;
	ok &= ASSERT_TRUE(new13 > N / 5, "new flows reach the new backend (%d of %d)", new13, N);
	verdict("xdp established flows stay on their backend when one is added", ok);

	/* Draining .11: its flows stay, no new flow goes there. */
	three[0].state = FERRY_BE_DRAINING;
	ok = ASSERT_EQ(svc_set("sticky", "198.51.100.50", 80, IPPROTO_TCP, true, three, 3), 0, "drain");
	for (i = 0; ok && i < N; i++) {
		if (first[i] != 11)
			continue;
		on11++;
		drained_kept += send_flow("198.51.100.50", 80, 1, 2000 + i, false, NULL) == 11;
	}
	for (i = 0; ok && i < N; i++)
		drained_new += send_flow("198.51.100.50", 80, 3, 2000 + i, true, NULL) == 11;
	ok &= ASSERT_TRUE(on11 > 0, "flows on the drained backend before");
	ok &= ASSERT_EQ(drained_kept, on11, "established flows kept on the draining backend");
	ok &= ASSERT_EQ(drained_new, 0, "new flows sent to the draining backend");
	verdict("xdp draining backend keeps its flows and gets no new ones", ok);

	/* Weight 0 on .12: the same. */
	three[0].state = FERRY_BE_ACTIVE;
	three[1].weight = -1;
	ok = ASSERT_EQ(svc_set("sticky", "198.51.100.50", 80, IPPROTO_TCP, true, three, 3), 0, "weight 0");
	drained_kept = drained_new = on11 = 0;
	for (i = 0; ok && i < N; i++) {
		if (first[i] != 12)
			continue;
		on11++;
		drained_kept += send_flow("198.51.100.50", 80, 1, 2000 + i, false, NULL) == 12;
	}
	for (i = 0; ok && i < N; i++)
		drained_new += send_flow("198.51.100.50", 80, 4, 2000 + i, true, NULL) == 12;
	ok &= ASSERT_EQ(drained_kept, on11, "established flows kept on the weight-0 backend");
	ok &= ASSERT_EQ(drained_new, 0, "new flows sent to the weight-0 backend");
	verdict("xdp weight-0 backend keeps its flows and gets no new ones", ok);
}

/* The flow table's set for a flow of service svc_id: its index and tag. */
static __u32 flow_set_index(const struct ferry_xflow_key *k, __u32 svc_id, __u32 *tag)
{
	const struct bpf_map *m = lb->maps.ferry_xflow_v3;
	__u64 h = ferry_xflow_hash64(k);

	*tag = ferry_xflow_tag(h, svc_id);
	return ferry_xflow_set_of(h, bpf_map__max_entries(m));
}

static int ways_with(const struct ferry_xflow_set *fs, __u32 tag)
{
	int i, n = 0;

	for (i = 0; i < FERRY_XFLOW_WAYS; i++)
		n += (__u32)fs->way[i].id && fs->way[i].id >> 32 == tag;
	return n;
}

/*
 * The set-associative flow table itself: a flow is found under its tag (which
 * includes the service id), a SYN of a known flow reuses its way, a new flow
 * takes the way idle longest in a full set, and a flow whose entry is gone is
 * chosen from the ring again and recorded.
 */
static void test_flow_table(void)
{
	const struct bspec bs[] = { { .ip = "192.0.2.11" }, { .ip = "192.0.2.12" } };
	int fd = bpf_map__fd(lb->maps.ferry_xflow_v3), i, b, ring, other;
	int fdc = bpf_map__fd(lb->maps.ferry_xclient_v1);
	struct ferry_xflow_key k = { .proto = IPPROTO_TCP, .family = AF_INET };
	struct ferry_xflow_set fs, fake;
	struct ferry_xclient_set cs = {};
	struct ferry_svc s;
	__u32 idx, tag, stamp, id11, id12, be_other;
	bool ok;

	ok = ASSERT_EQ(svc_set("table", "198.51.100.90", 80, IPPROTO_TCP, true, bs, 2), 0, "service");
	ok &= ASSERT_EQ(svc_lookup("198.51.100.90", 80, IPPROTO_TCP, &s), 0, "service id");
	id11 = svc_backend("198.51.100.90", 80, IPPROTO_TCP, 0);
	id12 = svc_backend("198.51.100.90", 80, IPPROTO_TCP, 1);
	inet_pton(AF_INET, "192.0.2.108", k.src);	/* send_flow client 8 */
	inet_pton(AF_INET, "198.51.100.90", k.dst);
	k.sport = htons(4321);
	k.dport = htons(80);
	idx = flow_set_index(&k, s.id, &tag);
	ring = send_flow("198.51.100.90", 80, 8, 4321, true, NULL);
	ok &= ASSERT_TRUE(ring == 11 || ring == 12, "SYN balanced (%d)", ring);
	ok &= ASSERT_EQ(bpf_map_lookup_elem(fd, &idx, &fs), 0, "read the set");
	ok &= ASSERT_EQ(ways_with(&fs, tag), 1, "the SYN recorded its flow once");
	for (i = 0; i < FERRY_XFLOW_WAYS; i++)
		if ((__u32)fs.way[i].id && fs.way[i].id >> 32 == tag)
			break;
	ok &= ASSERT_EQ(bpf_map_lookup_elem(fdc, &idx, &cs), 0, "read the set's clients");
	ok &= ASSERT_TRUE(i < FERRY_XFLOW_WAYS && fs.way[i].svc_id == s.id &&
			  cs.way[i & 3].port == k.sport && cs.way[i & 3].addr[0] == k.src[0] &&
			  cs.way[i & 3].family == AF_INET && cs.way[i & 3].proto == IPPROTO_TCP,
			  "the way and its client name the flow for ferryctl");
	stamp = i < FERRY_XFLOW_WAYS ? fs.way[i].stamp : 0;

	send_flow("198.51.100.90", 80, 8, 4321, true, NULL);
	ok &= ASSERT_EQ(bpf_map_lookup_elem(fd, &idx, &fs), 0, "read the set");
	ok &= ASSERT_EQ(ways_with(&fs, tag), 1, "a second SYN of the flow reuses its way");

	/* The table wins over the ring: record the flow on the other backend. */
	other = ring == 11 ? 12 : 11;
	be_other = ring == 11 ? id12 : id11;
	memset(&fake, 0, sizeof(fake));
	fake.way[2].id = (__u64)tag << 32 | be_other;
	fake.way[2].stamp = stamp;
	ok &= ASSERT_EQ(bpf_map_update_elem(fd, &idx, &fake, BPF_ANY), 0, "write the set");
	b = send_flow("198.51.100.90", 80, 8, 4321, false, NULL);
	ok &= ASSERT_EQ(b, other, "a recorded flow follows the table, not the ring");
	/* The same flow recorded under another service id is not this flow. */
	fake.way[2].id = (__u64)ferry_xflow_tag(ferry_xflow_hash64(&k), s.id + 1) << 32 | be_other;
	ok &= ASSERT_EQ(bpf_map_update_elem(fd, &idx, &fake, BPF_ANY), 0, "write the set");
	b = send_flow("198.51.100.90", 80, 8, 4321, false, NULL);
	ok &= ASSERT_EQ(b, ring, "an entry of another service id is ignored: the ring decides");
	ok &= ASSERT_EQ(bpf_map_lookup_elem(fd, &idx, &fs), 0, "read the set");
	ok &= ASSERT_EQ(ways_with(&fs, tag), 1, "the flow missing from the table was recorded again");

	/* A full set: the new flow replaces the way idle longest. */
	for (i = 0; i < FERRY_XFLOW_WAYS; i++) {
		fake.way[i].id = (__u64)(tag ^ (0x1000u << i)) << 32 | id11;
		fake.way[i].stamp = stamp - (i == 1 ? 1000 : 10 * i);
	}
	ok &= ASSERT_EQ(bpf_map_update_elem(fd, &idx, &fake, BPF_ANY), 0, "fill the set");
	send_flow("198.51.100.90", 80, 8, 4321, true, NULL);
	ok &= ASSERT_EQ(bpf_map_lookup_elem(fd, &idx, &fs), 0, "read the set");
	ok &= ASSERT_EQ(fs.way[1].id >> 32, tag, "the way idle longest took the new flow");
	for (i = 0; i < FERRY_XFLOW_WAYS; i++)
		if (i != 1)
			ok &= ASSERT_EQ(fs.way[i].id, fake.way[i].id, "way %d kept", i);
	verdict("xdp flow table: tags per service, way reuse, LRU within a set", ok);
}

/*
 * One frame of spec sp through the LB; the last byte of the outer
 * destination (the backend) when it was encapsulated and sent on, else -1.
 * *act the action.
 */
static int send_outer(const struct pspec *sp, __u32 *act)
{
	__u8 in[256], out[256];
	__u32 ol = sizeof(out);
	size_t l3, il = build(sp, in, &l3);

	*act = XDP_ABORTED;
	if (run(lb_fd(), in, il, out, &ol, act) || (*act != XDP_REDIRECT && *act != XDP_TX))
		return -1;
	l3 = *act == XDP_TX ? l3 : ETH_HLEN;	/* a redirect leaves untagged */
	if (out[l3 - 2] == 0x08 && out[l3 - 1] == 0x00)
		return out[l3 + 19];		/* IPv4 daddr at 16..19 */
	return out[l3 + 39];			/* IPv6 daddr at 24..39 */
}

/*
 * An ICMP error about a flow goes where the flow's packets go: to the
 * backend the flow table recorded, even when the ring now names another.
 * Flows start on a service of one backend; a second one is added, and for
 * a flow the new ring gives to the new backend, a "fragmentation needed"
 * (IPv4) or "packet too big" (IPv6) quoting the first backend's reply must
 * still reach the first backend, whose connection it is about, and leave
 * the flow's record as it was. The rows' ICMP errors quote flows the ring
 * and the table agree on, so they cannot tell the two apart.
 */
static void test_icmp_follows_flow(int family)
{
	const bool v4 = family == 4;
	const char *vip = v4 ? "198.51.100.93" : "2001:db8:ffff::93";
	const char *client = v4 ? V4C : V6C;
	const struct bspec one[] = { { .ip = v4 ? "192.0.2.11" : "2001:db8::11" } };
	const struct bspec two[] = { { .ip = v4 ? "192.0.2.11" : "2001:db8::11" },
				     { .ip = v4 ? "192.0.2.12" : "2001:db8::12" } };
	const int last11 = v4 ? 11 : 0x11, last12 = v4 ? 12 : 0x12;
	struct pspec fl = { .family = family, .proto = IPPROTO_TCP, .src = client, .dst = vip,
			    .dport = 80, .tcp_flags = TCP_SYN };
	struct pspec err = { .family = family, .src = v4 ? "203.0.113.254" : "2001:db8:1::fe",
			     .dst = vip, .qsrc = vip, .qdst = client, .qsport = 80,
			     .qproto = IPPROTO_TCP };
	struct ferry_xflow_key k;
	struct ferry_svc s;
	__u32 id11, id12, act, idx, tag;
	int fd = bpf_map__fd(lb->maps.ferry_xflow_v3), i, n = 64, on11 = 0, port = 0, unrec = 0;
	struct ferry_xflow_set fs;
	char name[128];
	bool ok;

	err.proto = v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	err.icmp_type = v4 ? 3 : 2;
	err.icmp_code = v4 ? 4 : 0;
	ok = ASSERT_EQ(svc_set(v4 ? "icmp-flow4" : "icmp-flow6", vip, 80, IPPROTO_TCP, true, one, 1),
		       0, "service of one backend");
	for (i = 0; ok && i < n; i++) {
		fl.sport = 3000 + i;
		on11 += send_outer(&fl, &act) == last11;
	}
	ok &= ASSERT_EQ(on11, n, "flows started on the one backend");
	ok &= ASSERT_EQ(svc_set(v4 ? "icmp-flow4" : "icmp-flow6", vip, 80, IPPROTO_TCP, true, two, 2),
			0, "a second backend");
	ok &= ASSERT_EQ(svc_lookup(vip, 80, IPPROTO_TCP, &s), 0, "service id");
	id11 = svc_backend(vip, 80, IPPROTO_TCP, 0);
	id12 = svc_backend(vip, 80, IPPROTO_TCP, 1);
	/* A recorded flow the new ring gives to .12, and one never recorded
	 * that it gives to .12 too. */
	for (i = 0; ok && i < 4 * n && (!port || !unrec); i++) {
		fl.sport = 3000 + i;
		fl.tcp_flags = TCP_ACK;
		flow_key(&fl, &k);
		if (ring_backend(s.id, &k) != id12)
			continue;
		if (i < n && !port)
			port = fl.sport;
		else if (i >= n && !unrec)
			unrec = fl.sport;
	}
	ok &= ASSERT_TRUE(id11 && id12 && port && unrec,
			  "a recorded and an unrecorded flow the new ring gives to the new backend");
	if (!ok)
		goto out;

	err.qdport = port;
	ok &= ASSERT_EQ(send_outer(&err, &act), last11,
			"the error goes to the flow's recorded backend, not the ring's (outer destination's last byte)");
	ok &= ASSERT_EQ(act, XDP_REDIRECT, "action");
	fl.sport = port;
	ok &= ASSERT_EQ(send_outer(&fl, &act), last11, "the flow's next packet: still its backend");

	/* An error about a flow the table does not hold: the ring's entry, and
	 * the error records nothing. */
	fl.sport = unrec;
	flow_key(&fl, &k);
	idx = flow_set_index(&k, s.id, &tag);
	err.qdport = unrec;
	ok &= ASSERT_EQ(send_outer(&err, &act), last12, "an unrecorded flow's error: the ring's backend");
	ok &= ASSERT_EQ(bpf_map_lookup_elem(fd, &idx, &fs), 0, "read the set");
	ok &= ASSERT_EQ(ways_with(&fs, tag), 0, "the error created no flow");
out:
	snprintf(name, sizeof(name), "xdp %s quoting a recorded flow goes to its backend, not the ring's",
		 v4 ? "ICMP frag-needed" : "ICMPv6 packet-too-big");
	verdict(name, ok);
}

/* Way of the index holding key in set *set, -1 if none. */
static int xsvc_way(const struct ferry_xsvc_set *sets, __u32 nsets, const struct ferry_svc_key *k,
		    __u32 *set)
{
	int i;

	*set = ferry_xsvc_set_of(k, nsets);
	for (i = 0; i < FERRY_XSVC_WAYS; i++)
		if (sets[*set].way[i].svc_id && !memcmp(&sets[*set].way[i].key, k, sizeof(*k)))
			return i;
	return -1;
}

/*
 * The VIP index answers for the XDP path; ferry_svc_v1 only when the index
 * cannot (set not built, or full). Five VIPs whose keys share a set: four fit,
 * the fifth is served through ferry_svc_v1 until a way frees up.
 */
static void test_vip_index(void)
{
	const struct bspec bs[] = { { .ip = "192.0.2.11" } };
	const char *vip = "198.51.100.95";
	struct ferry_xsvc_set *sets;
	struct ferry_svc_key k, ks[5];
	struct xsvc_report xr;
	struct plan pl;
	char err[256];
	int fd = bpf_map__fd(lb->maps.ferry_xsvc_v1), ports[5], n = 0, port, i, w;
	__u32 nsets, set, set0 = 0, act;
	__u64 slow, notvip;
	char name[32];
	void *p;
	bool ok = true;

	if (!ASSERT_EQ(array_mmap(fd, sizeof(*sets), true, &p, &nsets), 0, "map the index")) {
		verdict("xdp VIP index: answers alone, ferry_svc_v1 only when it cannot", false);
		return;
	}
	sets = p;
	/* Built by plan_apply for the services set up so far; a VIP packet does
	 * not touch ferry_svc_v1. */
	vip_key(V4VIP, 80, IPPROTO_TCP, &k);
	ok &= ASSERT_TRUE(xsvc_way(sets, nsets, &k, &set) >= 0, "tcp4 VIP in the index");
	ok &= ASSERT_EQ(sets[set].way[0].flags, FERRY_XSVC_F_VALID, "its set is built, not full");
	vip_key("198.51.100.20", 80, IPPROTO_TCP, &k);
	ok &= ASSERT_TRUE(xsvc_way(sets, nsets, &k, &set) < 0, "a socket-only service is not");
	slow = xstat(FERRY_XSTAT_VIP_SLOW);
	ok &= ASSERT_TRUE(send_flow(V4VIP, 80, 1, 5000, true, NULL) > 0, "VIP balanced");
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_VIP_SLOW) - slow, 0, "answered by the index");

	/* A set not built yet (a new map): the lookup goes to ferry_svc_v1. */
	vip_key(V4VIP, 80, IPPROTO_TCP, &k);
	xsvc_way(sets, nsets, &k, &set);
	sets[set].way[0].flags = 0;
	ok &= ASSERT_TRUE(send_flow(V4VIP, 80, 1, 5000, true, NULL) > 0, "VIP balanced without the index");
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_VIP_SLOW) - slow, 1, "answered by ferry_svc_v1");
	/* A built set without the VIP: the index is believed, the packet passes. */
	sets[set].way[0].flags = FERRY_XSVC_F_VALID;
	w = xsvc_way(sets, nsets, &k, &set);
	sets[set].way[w & 3].svc_id = 0;
	notvip = xstat(FERRY_XSTAT_PASS_NOT_VIP);
	send_flow(V4VIP, 80, 1, 5000, true, &act);
	ok &= ASSERT_EQ(act, XDP_PASS, "a VIP missing from a built set passes");
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_PASS_NOT_VIP) - notvip, 1, "counted as not a VIP");
	/* Any apply repairs it, one without a change too (ferryd's resync). */
	plan_init(&pl);
	ok &= ASSERT_EQ(plan_apply(&fm, &pl, err, sizeof(err)), 0, "an apply without changes");
	plan_free(&pl);
	ok &= ASSERT_TRUE(xsvc_way(sets, nsets, &k, &set) >= 0, "put the VIP back");
	ok &= ASSERT_TRUE(send_flow(V4VIP, 80, 1, 5000, true, NULL) > 0, "VIP balanced again");

	/* Five VIPs of one empty set. */
	for (port = 1000; port < 65536 && n < 5; port++) {
		vip_key(vip, port, IPPROTO_TCP, &k);
		set = ferry_xsvc_set_of(&k, nsets);
		if (!n && !sets[set].way[0].svc_id && !sets[set].way[1].svc_id &&
		    !sets[set].way[2].svc_id && !sets[set].way[3].svc_id)
			set0 = set;
		else if (!n || set != set0)
			continue;
		ports[n++] = port;
	}
	ok &= ASSERT_EQ(n, 5, "five ports of one set");
	for (i = 0; ok && i < 5; i++) {
		snprintf(name, sizeof(name), "same-set-%d", i);
		vip_key(vip, ports[i], IPPROTO_TCP, &ks[i]);
		ok &= ASSERT_EQ(svc_set(name, vip, ports[i], IPPROTO_TCP, true, bs, 1), 0, "service %d", i);
	}
	ok &= ASSERT_EQ(sets[set0].way[0].flags, FERRY_XSVC_F_VALID | FERRY_XSVC_F_MORE,
			"the full set says a VIP is elsewhere");
	for (i = 0, n = 0; i < 5; i++)
		n += xsvc_way(sets, nsets, &ks[i], &set) >= 0;
	ok &= ASSERT_EQ(n, FERRY_XSVC_WAYS, "four of five VIPs in the set");
	slow = xstat(FERRY_XSTAT_VIP_SLOW);
	for (i = 0; i < 5; i++)
		ok &= ASSERT_TRUE(send_flow(vip, ports[i], 2, 6000, true, NULL) == 11, "VIP %d balanced", i);
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_VIP_SLOW) - slow, 1, "only the fifth through ferry_svc_v1");
	send_flow(vip, ports[4] + 1, 2, 6000, true, &act);
	ok &= ASSERT_EQ(act, XDP_PASS, "a non-VIP port still passes");

	/* One of the four goes: the fifth takes its way on the next sync (not
	 * the same one: a way emptied in a sync is not refilled by it). */
	for (i = 0; i < 5; i++)
		if (xsvc_way(sets, nsets, &ks[i], &set) >= 0)
			break;
	snprintf(name, sizeof(name), "same-set-%d", i);
	ok &= ASSERT_EQ(svc_set(name, vip, ports[i], IPPROTO_TCP, false, bs, 1), 0,
			"VIP %d is no longer an XDP service", i);
	ok &= ASSERT_TRUE(xsvc_way(sets, nsets, &ks[i], &set) < 0, "its entry emptied");
	ok &= ASSERT_EQ(sets[set0].way[0].flags, FERRY_XSVC_F_VALID | FERRY_XSVC_F_MORE,
			"the way that sync emptied is not refilled by it");
	send_flow(vip, ports[i], 2, 6000, true, &act);
	ok &= ASSERT_EQ(act, XDP_PASS, "its packets pass");
	ok &= ASSERT_EQ(xsvc_sync(fm.svc, fd, fm.xvipf, &xr), 0, "sync");
	ok &= ASSERT_EQ(xr.overflow, 0, "nothing left over");
	ok &= ASSERT_EQ(sets[set0].way[0].flags, FERRY_XSVC_F_VALID, "the set is complete again");
	slow = xstat(FERRY_XSTAT_VIP_SLOW);
	for (w = 0; w < 5; w++)
		if (w != i)
			ok &= ASSERT_TRUE(send_flow(vip, ports[w], 2, 6000, true, NULL) == 11,
					  "VIP %d balanced", w);
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_VIP_SLOW) - slow, 0, "all answered by the index");
	array_munmap(sets, sizeof(*sets), nsets);
	verdict("xdp VIP index: answers alone, ferry_svc_v1 only when it cannot", ok);
}

/*
 * The VIP filter in front of the index: a packet whose filter bit is set is
 * no VIP and passes without the index being asked (shown by an index set
 * that would send it to ferry_svc_v1); a filter all zero, as never built,
 * sends everything to the index (fail safe), and any apply rebuilds it.
 */
static void test_vip_filter(void)
{
	const char *other = "198.51.100.99";
	struct ferry_xvipf *f = calloc(1, sizeof(*f));
	int fd = bpf_map__fd(lb->maps.ferry_xsvc_v1);
	struct ferry_xsvc_set *sets = NULL;
	struct ferry_svc_key k;
	__u32 nsets = 0, zero = 0, bit, set, act;
	__u64 slow, notvip;
	struct plan pl;
	char err[256];
	void *p = NULL;
	bool ok;

	ok = ASSERT_TRUE(f != NULL, "memory");
	ok &= ASSERT_EQ(array_mmap(fd, sizeof(*sets), true, &p, &nsets), 0, "map the index");
	ok &= ASSERT_TRUE(fm.xvipf >= 0, "the filter is pinned");
	if (!ok)
		goto out;
	sets = p;
	ok &= ASSERT_EQ(bpf_map_lookup_elem(fm.xvipf, &zero, f), 0, "read the filter");
	vip_key(V4VIP, 80, IPPROTO_TCP, &k);
	bit = ferry_xvipf_bit(ferry_xsvc_hash(&k));
	ok &= ASSERT_EQ(f->w[bit / 64] >> (bit % 64) & 1, 0, "a VIP's bit is clear");
	vip_key(other, 80, IPPROTO_TCP, &k);
	bit = ferry_xvipf_bit(ferry_xsvc_hash(&k));
	ok &= ASSERT_EQ(f->w[bit / 64] >> (bit % 64) & 1, 1, "another address's bit is set");

	/* Its index set unbuilt: were the index asked, ferry_svc_v1 would be. */
	set = ferry_xsvc_set_of(&k, nsets);
	sets[set].way[0].flags = 0;
	slow = xstat(FERRY_XSTAT_VIP_SLOW);
	notvip = xstat(FERRY_XSTAT_PASS_NOT_VIP);
	send_flow(other, 80, 1, 5000, false, &act);
	ok &= ASSERT_EQ(act, XDP_PASS, "a packet for no VIP passes");
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_PASS_NOT_VIP) - notvip, 1, "counted as not a VIP");
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_VIP_SLOW) - slow, 0, "the filter answered");

	/* Never built: the index (here ferry_svc_v1) is asked; VIPs balance. */
	memset(f, 0, sizeof(*f));
	ok &= ASSERT_EQ(bpf_map_update_elem(fm.xvipf, &zero, f, BPF_ANY), 0, "zero the filter");
	send_flow(other, 80, 1, 5000, false, &act);
	ok &= ASSERT_EQ(act, XDP_PASS, "still passes");
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_VIP_SLOW) - slow, 1, "asked through the index");
	ok &= ASSERT_TRUE(send_flow(V4VIP, 80, 1, 5000, true, NULL) > 0, "VIP balanced");
	plan_init(&pl);
	ok &= ASSERT_EQ(plan_apply(&fm, &pl, err, sizeof(err)), 0, "an apply without changes");
	plan_free(&pl);
	ok &= ASSERT_EQ(bpf_map_lookup_elem(fm.xvipf, &zero, f), 0, "read the filter");
	ok &= ASSERT_EQ(f->w[bit / 64] >> (bit % 64) & 1, 1, "rebuilt");
	ok &= ASSERT_TRUE(send_flow(V4VIP, 80, 1, 5000, true, NULL) > 0, "VIP balanced");
out:
	array_munmap(sets, sizeof(*sets), nsets);
	free(f);
	verdict("xdp VIP filter: no VIP passes without the index, zero asks it", ok);
}

/* n flows of client cl to vip:80 (source ports from 1000) begin: a SYN each;
 * first[i] is where flow i went (send_flow()'s byte). */
static void flows_start(const char *vip, int cl, int n, int *first)
{
	int i;

	for (i = 0; i < n; i++)
		first[i] = send_flow(vip, 80, cl, 1000 + i, true, NULL);
}

/* The next packet (an ACK) of each flow flows_start() began: how many went
 * elsewhere than first[]; *on how many had begun on the backend ending in
 * last. */
static int flows_moved(const char *vip, int cl, int n, const int *first, int last, int *on)
{
	int i, moved = 0;

	*on = 0;
	for (i = 0; i < n; i++) {
		*on += first[i] == last;
		moved += send_flow(vip, 80, cl, 1000 + i, false, NULL) != first[i];
	}
	return moved;
}

/*
 * UNHEALTHY and an OPEN circuit are not in the ring's decision: the kernel
 * skips them for new flows. Flows recorded before keep their backend: the
 * table's entry is not checked against the backend's state.
 */
static void test_unusable(void)
{
	const struct bspec bs[] = { { .ip = "192.0.2.11" }, { .ip = "192.0.2.12" } };
	const char *vip = "198.51.100.60";
	enum { N = 2000 };
	static int first[N];
	struct ferry_backend be;
	struct ferry_bestat st = {};
	__u32 id11, id12;
	int i, to11 = 0, to12 = 0, on;
	bool ok;

	ok = ASSERT_EQ(svc_set("unusable", vip, 80, IPPROTO_TCP, true, bs, 2), 0, "service");
	id11 = svc_backend(vip, 80, IPPROTO_TCP, 0);
	id12 = svc_backend(vip, 80, IPPROTO_TCP, 1);
	ok &= ASSERT_TRUE(id11 && id12 && !bpf_map_lookup_elem(fm.be, &id11, &be), "backend ids");
	if (ok)
		flows_start(vip, 26, N, first);	/* established while both are usable */
	be.health = FERRY_HEALTH_UNHEALTHY;
	ok &= ASSERT_EQ(bpf_map_update_elem(fm.be, &id11, &be, BPF_ANY), 0, "mark unhealthy");
	for (i = 0; ok && i < N; i++)
		to11 += send_flow(vip, 80, 5, 1000 + i, true, NULL) == 11;
	ok &= ASSERT_EQ(to11, 0, "new flows to the UNHEALTHY backend");
	ok &= ASSERT_EQ(flows_moved(vip, 26, N, first, 11, &on), 0,
			"established flows that moved after .11 became UNHEALTHY");
	ok &= ASSERT_TRUE(on > N / 4, "established flows on the UNHEALTHY backend (%d of %d)", on, N);
	verdict("xdp UNHEALTHY backend keeps its flows and gets no new ones", ok);

	be.health = FERRY_HEALTH_HEALTHY;
	ok = ASSERT_EQ(bpf_map_update_elem(fm.be, &id11, &be, BPF_ANY), 0, "mark healthy");
	st.circuit = FERRY_CIRCUIT_OPEN;
	st.open_until_ns = ~0ULL;
	ok &= ASSERT_EQ(bpf_map_update_elem(fm.bestat, &id12, &st, BPF_ANY), 0, "open circuit");
	for (i = 0, to11 = 0; ok && i < N; i++) {
		int b = send_flow(vip, 80, 6, 1000 + i, true, NULL);

		to12 += b == 12;
		to11 += b == 11;
	}
	ok &= ASSERT_EQ(to12, 0, "new flows to the backend whose circuit is OPEN");
	ok &= ASSERT_EQ(to11, N, "new flows to the other backend");
	ok &= ASSERT_EQ(flows_moved(vip, 26, N, first, 12, &on), 0,
			"established flows that moved after .12's circuit OPENed");
	ok &= ASSERT_TRUE(on > N / 4, "established flows on the OPEN backend (%d of %d)", on, N);
	verdict("xdp backend with an OPEN circuit keeps its flows and gets no new ones", ok);
}

/* Backend health by id for model_pick(): GOOD or DEGRADED, anything else refuses. */
struct usable {
	__u32	id;
	bool	degraded;
};

/* usable's class of backend id: 2 GOOD, 1 DEGRADED, 0 none. */
static int usable_class(const struct usable *u, int nu, __u32 id)
{
	int i;

	for (i = 0; i < nu; i++)
		if (u[i].id == id)
			return u[i].degraded ? 1 : 2;
	return 0;
}

/*
 * What the LB must give a new flow k of service svc (count slots) when only
 * the backends in u may take new flows: the first GOOD of the ring's
 * FERRY_XDP_RING_TRIES entries from the flow's own (else the first DEGRADED
 * among them); when none may, the fallback: the slots scanned from
 * hash % count (none may: 0), then the walk on along the ring
 * (ferry_ring_walk_len() entries); the walk's first GOOD, else the scan's,
 * else the walk's first DEGRADED, else the scan's. *fell: the fallback
 * decided.
 */
static __u32 model_pick(int ring, const struct ferry_svc *svc, const struct ferry_xflow_key *k,
			const struct usable *u, int nu, bool *fell)
{
	__u32 hash = ferry_xflow_hash(k), idx, m = 0, be = 0, deg = 0, i;
	int c;

	*fell = false;
	if (map_max_entries(ring, &m) || !m)
		return 0;
	idx = ferry_ring_index(hash, m);	/* the ring at its own size, as the program */
	for (i = 0; i < FERRY_XDP_RING_TRIES; i++) {
		if (bpf_map_lookup_elem(ring, &idx, &be))
			return 0;
		c = usable_class(u, nu, be);
		if (c == 2)
			return be;
		if (c == 1 && !deg)
			deg = be;
		idx = (idx + 1) % m;
	}
	if (deg)
		return deg;
	*fell = true;
	{
		__u32 sgood = 0, sdeg = 0, wgood = 0, wdeg = 0;

		for (i = 0; i < svc->count && !sgood; i++) {
			struct ferry_slot_key sk = { .svc_id = svc->id,
						     .slot = (hash % svc->count + i) % svc->count };
			struct ferry_slot sv;

			if (bpf_map_lookup_elem(fm.slot, &sk, &sv))
				continue;
			c = usable_class(u, nu, sv.backend_id);
			if (c == 2)
				sgood = sv.backend_id;
			if (c == 1 && !sdeg)
				sdeg = sv.backend_id;
		}
		if (!sgood && !sdeg) {
			*fell = false;
			return 0;
		}
		for (i = 0; i < ferry_ring_walk_len(svc->count, m) && !wgood; i++) {
			if (bpf_map_lookup_elem(ring, &idx, &be))
				return 0;
			c = usable_class(u, nu, be);
			if (c == 2)
				wgood = be;
			if (c == 1 && !wdeg)
				wdeg = be;
			idx = (idx + 1) % m;
		}
		return wgood ? wgood : sgood ? sgood : wdeg ? wdeg : sdeg;
	}
}

/* The fd of service svc_id's ring (close it); -1 if none. */
static int ring_fd(__u32 svc_id)
{
	__u32 id;

	if (bpf_map_lookup_elem(fm.xring, &svc_id, &id))
		return -1;
	return bpf_map_get_fd_by_id(id);
}

/* Set backend id's health; 0 or -errno. */
static int set_health(__u32 id, int health)
{
	struct ferry_backend be;

	if (bpf_map_lookup_elem(fm.be, &id, &be))
		return -errno;
	be.health = health;
	return bpf_map_update_elem(fm.be, &id, &be, BPF_ANY) ? -errno : 0;
}

/*
 * n SYNs of client cl to vip:80 against model_pick() with u usable: how many
 * went elsewhere than the model says (dropped when it says none); *to_last
 * how many went to the backend whose address ends in last, *fell (if not
 * NULL) how many the model's fallback placed.
 */
static int model_mismatch(const char *vip, const struct ferry_svc *svc, int ring, int cl,
			  const struct usable *u, int nu, int n, int last, int *to_last, int *fell)
{
	char src[32];
	int i, wrong = 0;
	bool f;

	snprintf(src, sizeof(src), "192.0.2.%u", 100 + cl % 100);
	*to_last = 0;
	if (fell)
		*fell = 0;
	for (i = 0; i < n; i++) {
		struct ferry_xflow_key k = { .proto = IPPROTO_TCP, .family = AF_INET };
		struct ferry_backend be;
		__u32 want, act = XDP_ABORTED;
		int b = send_flow(vip, 80, cl, 1000 + i, true, &act), wb = -2;

		inet_pton(AF_INET, src, k.src);
		inet_pton(AF_INET, vip, k.dst);
		k.sport = htons(1000 + i);
		k.dport = htons(80);
		want = model_pick(ring, svc, &k, u, nu, &f);
		if (fell)
			*fell += f;
		if (want && !bpf_map_lookup_elem(fm.be, &want, &be))
			wb = ntohl(be.addr[0]) & 0xff;	/* what send_flow() returns for it */
		if (!want)
			wrong += act != XDP_DROP;
		else if (b != wb)
			wrong++;
		*to_last += b == last;
	}
	return wrong;
}

/*
 * New flows of a service whose ring entries near the flow's all refuse it
 * are not dropped while a backend may take them: the scan of the service's
 * slots, from hash % count, places them, deterministically, and counts it.
 * Ten backends, nine UNHEALTHY: the ring's 16 tries miss the healthy one
 * for more than a tenth of the flows.
 */
static void test_fallback(void)
{
	static const char *ips[] = { "192.0.2.11", "192.0.2.21", "192.0.2.22", "192.0.2.23",
				     "192.0.2.24", "192.0.2.12", "192.0.2.26", "192.0.2.27",
				     "192.0.2.28", "192.0.2.29" };
	const char *vip = "198.51.100.65";
	struct bspec bs[10] = {};
	struct usable u[2];
	struct ferry_svc s;
	__u64 fell0, drop0;
	int i, n = 2000, ring = -1, to11, dropped, other, fell, wrong;
	__u32 id, act, want;
	bool ok, f;

	for (i = 0; i < 10; i++)
		bs[i].ip = ips[i];
	ok = ASSERT_EQ(svc_set("fallback", vip, 80, IPPROTO_TCP, true, bs, 10), 0, "service");
	ok &= ASSERT_EQ(svc_lookup(vip, 80, IPPROTO_TCP, &s), 0, "service id");
	for (i = 1; ok && i < 10; i++)
		ok &= ASSERT_EQ(set_health(svc_backend(vip, 80, IPPROTO_TCP, i), FERRY_HEALTH_UNHEALTHY),
				0, "mark slot %d UNHEALTHY", i);
	ring = ring_fd(s.id);
	ok &= ASSERT_TRUE(ring >= 0, "the service's ring");
	if (!ok) {
		verdict("xdp new flows reach the one healthy backend of ten (ring fallback)", false);
		goto out;
	}

	/* Nine of ten UNHEALTHY: every new flow to the healthy one. */
	u[0].id = svc_backend(vip, 80, IPPROTO_TCP, 0);
	u[0].degraded = false;
	fell0 = xstat(FERRY_XSTAT_RING_FALLBACK);
	drop0 = xstat(FERRY_XSTAT_DROP_NO_BACKEND);
	to11 = dropped = other = fell = 0;
	for (i = 0; i < n; i++) {
		struct ferry_xflow_key k = { .proto = IPPROTO_TCP, .family = AF_INET };
		int b;

		act = XDP_ABORTED;
		b = send_flow(vip, 80, 11, 1000 + i, true, &act);

		to11 += b == 11;
		dropped += act == XDP_DROP;
		other += b != 11 && act != XDP_DROP;
		inet_pton(AF_INET, "192.0.2.111", k.src);
		inet_pton(AF_INET, vip, k.dst);
		k.sport = htons(1000 + i);
		k.dport = htons(80);
		model_pick(ring, &s, &k, u, 1, &f);
		fell += f;
	}
	ok &= ASSERT_EQ(to11, n, "new flows to the one healthy backend of ten");
	ok &= ASSERT_EQ(dropped, 0, "new flows dropped");
	ok &= ASSERT_EQ(other, 0, "new flows elsewhere");
	ok &= ASSERT_TRUE(fell > n / 20, "flows whose ring tries all refuse (%d of %d)", fell, n);
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_RING_FALLBACK) - fell0, fell, "fallbacks counted");
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_DROP_NO_BACKEND) - drop0, 0, "no drop counted");
	verdict("xdp new flows reach the one healthy backend of ten (ring fallback)", ok);

	/* The healthy one DEGRADED: still the only one that may, so all of them. */
	ok = ASSERT_EQ(set_health(u[0].id, FERRY_HEALTH_DEGRADED), 0, "mark DEGRADED");
	to11 = dropped = 0;
	for (i = 0; ok && i < n; i++) {
		act = XDP_ABORTED;
		to11 += send_flow(vip, 80, 12, 1000 + i, true, &act) == 11;
		dropped += act == XDP_DROP;
	}
	ok &= ASSERT_EQ(to11, n, "new flows to the one DEGRADED backend of ten");
	ok &= ASSERT_EQ(dropped, 0, "new flows dropped");
	verdict("xdp new flows reach the one DEGRADED backend when nothing else may", ok);

	/* Two healthy of ten: each flow where the ring, else the scan, says. */
	ok = ASSERT_EQ(set_health(u[0].id, FERRY_HEALTH_HEALTHY), 0, "mark HEALTHY");
	u[1].id = svc_backend(vip, 80, IPPROTO_TCP, 5);
	u[1].degraded = false;
	ok &= ASSERT_EQ(set_health(u[1].id, FERRY_HEALTH_HEALTHY), 0, "slot 5 HEALTHY");
	fell0 = xstat(FERRY_XSTAT_RING_FALLBACK);
	fell = wrong = 0;
	for (i = 0; ok && i < n; i++) {
		struct ferry_xflow_key k = { .proto = IPPROTO_TCP, .family = AF_INET };
		struct ferry_backend be;
		int b = send_flow(vip, 80, 13, 1000 + i, true, &act);

		inet_pton(AF_INET, "192.0.2.113", k.src);
		inet_pton(AF_INET, vip, k.dst);
		k.sport = htons(1000 + i);
		k.dport = htons(80);
		want = model_pick(ring, &s, &k, u, 2, &f);
		fell += f;
		id = want;
		if (!want || bpf_map_lookup_elem(fm.be, &id, &be) ||
		    b != (int)(ntohl(be.addr[0]) & 0xff))
			wrong++;
	}
	ok &= ASSERT_TRUE(fell > 0, "flows placed by the fallback (%d of %d)", fell, n);
	ok &= ASSERT_EQ(wrong, 0, "flows not where the ring, the walk on along it, else the slots say");
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_RING_FALLBACK) - fell0, fell, "fallbacks counted");
	verdict("xdp ring fallback: the slots say whether any may, a walk on along the ring picks", ok);

	/* Another LB node whose history put the two healthy backends in each
	 * other's slots (swapped here by hand) places every new flow alike:
	 * the walk reads the ring, which does not depend on history. */
	{
		struct ferry_slot_key k0 = { .svc_id = s.id, .slot = 0 }, k5 = { .svc_id = s.id, .slot = 5 };
		struct ferry_slot v0, v5;
		int before[200], moved = 0;

		for (i = 0; ok && i < 200; i++)
			before[i] = send_flow(vip, 80, 14, 2000 + i, true, &act);
		ok &= ASSERT_TRUE(!bpf_map_lookup_elem(fm.slot, &k0, &v0) &&
				  !bpf_map_lookup_elem(fm.slot, &k5, &v5), "read slots 0 and 5");
		ok &= ASSERT_TRUE(!bpf_map_update_elem(fm.slot, &k0, &v5, BPF_EXIST) &&
				  !bpf_map_update_elem(fm.slot, &k5, &v0, BPF_EXIST), "swap them");
		for (i = 0; ok && i < 200; i++)
			moved += send_flow(vip, 80, 14, 2000 + i, true, &act) != before[i];
		ok &= ASSERT_EQ(moved, 0, "new flows placed elsewhere after the slots moved");
		bpf_map_update_elem(fm.slot, &k0, &v0, BPF_EXIST);
		bpf_map_update_elem(fm.slot, &k5, &v5, BPF_EXIST);
	}
	verdict("xdp ring fallback does not depend on the order of the slots (LB nodes agree)", ok);

	/* The two DEGRADED, the rest UNHEALTHY: no GOOD one anywhere, so the
	 * walk ends at its first DEGRADED one, which is the model's pick. */
	u[0].degraded = u[1].degraded = true;
	ok = ASSERT_EQ(set_health(u[0].id, FERRY_HEALTH_DEGRADED), 0, "mark DEGRADED") &&
	     ASSERT_EQ(set_health(u[1].id, FERRY_HEALTH_DEGRADED), 0, "slot 5 DEGRADED");
	fell0 = xstat(FERRY_XSTAT_RING_FALLBACK);
	fell = 0;
	wrong = ok ? model_mismatch(vip, &s, ring, 15, u, 2, n, 0, &other, &fell) : 0;
	ok &= ASSERT_TRUE(fell > 0, "flows placed by the fallback (%d of %d)", fell, n);
	ok &= ASSERT_EQ(wrong, 0, "flows not at the walk's first DEGRADED backend");
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_RING_FALLBACK) - fell0, fell, "fallbacks counted");
	verdict("xdp ring fallback, no GOOD backend: the walk's first DEGRADED one picks", ok);
out:
	if (ring >= 0)
		close(ring);
}

/*
 * The circuit states the XDP LB cannot act on as the socket LB does: it
 * cannot run half-open probes (with DSR it never sees a connection's
 * outcome). OPENING (an ejection being written) takes no new flows, as
 * OPEN does; HALF_OPEN, and OPEN whose ejection ran out (a probe away from
 * HALF_OPEN), are DEGRADED: new flows only when nothing better is near.
 */
static void test_circuit_states(void)
{
	const struct bspec bs[] = { { .ip = "192.0.2.11" }, { .ip = "192.0.2.12" } };
	const char *vip = "198.51.100.62";
	enum { N = 2000 };
	static int first[N];
	struct ferry_bestat st = {};
	struct usable u[2];
	struct ferry_svc s;
	__u32 id11, id12;
	int ring = -1, n = 2000, to12, on;
	bool ok;

	ok = ASSERT_EQ(svc_set("circuits", vip, 80, IPPROTO_TCP, true, bs, 2), 0, "service");
	ok &= ASSERT_EQ(svc_lookup(vip, 80, IPPROTO_TCP, &s), 0, "service id");
	id11 = svc_backend(vip, 80, IPPROTO_TCP, 0);
	id12 = svc_backend(vip, 80, IPPROTO_TCP, 1);
	ring = ring_fd(s.id);
	ok &= ASSERT_TRUE(id11 && id12 && ring >= 0, "backends and ring");
	if (!ok) {
		verdict("xdp circuit OPENING backend keeps its flows and gets no new ones", false);
		goto out;
	}
	u[0] = (struct usable){ .id = id11 };

	flows_start(vip, 27, N, first);		/* established while both are CLOSED */
	st.circuit = FERRY_CIRCUIT_OPENING;
	ok &= ASSERT_EQ(bpf_map_update_elem(fm.bestat, &id12, &st, BPF_ANY), 0, "OPENING");
	ok &= ASSERT_EQ(model_mismatch(vip, &s, ring, 20, u, 1, n, 12, &to12, NULL), 0,
			"flows not where the model (OPENING refuses) says");
	ok &= ASSERT_EQ(to12, 0, "new flows to the OPENING backend");
	ok &= ASSERT_EQ(flows_moved(vip, 27, N, first, 12, &on), 0,
			"established flows that moved after .12's circuit went OPENING");
	ok &= ASSERT_TRUE(on > N / 4, "established flows on the OPENING backend (%d of %d)", on, N);
	verdict("xdp circuit OPENING backend keeps its flows and gets no new ones", ok);

	/* HALF_OPEN beside a healthy backend: DEGRADED, passed over. */
	st.circuit = FERRY_CIRCUIT_HALF_OPEN;
	ok = ASSERT_EQ(bpf_map_update_elem(fm.bestat, &id12, &st, BPF_ANY), 0, "HALF_OPEN");
	u[1] = (struct usable){ .id = id12, .degraded = true };
	ok &= ASSERT_EQ(model_mismatch(vip, &s, ring, 21, u, 2, n, 12, &to12, NULL), 0,
			"flows not where the model (HALF_OPEN is DEGRADED) says");
	ok &= ASSERT_TRUE(to12 < n / 100, "new flows to the HALF_OPEN backend: %d of %d", to12, n);
	/* Alone: it takes them, rather than a drop. */
	ok &= ASSERT_EQ(set_health(id11, FERRY_HEALTH_UNHEALTHY), 0, "the other UNHEALTHY");
	ok &= ASSERT_EQ(model_mismatch(vip, &s, ring, 22, &u[1], 1, n, 12, &to12, NULL), 0,
			"flows not where the model says");
	ok &= ASSERT_EQ(to12, n, "new flows to the HALF_OPEN backend when it is the only one");
	ok &= ASSERT_EQ(set_health(id11, FERRY_HEALTH_HEALTHY), 0, "the other HEALTHY");
	verdict("xdp circuit HALF_OPEN backend is DEGRADED: new flows only when nothing better", ok);

	/* OPEN, its ejection over, no probe yet: as HALF_OPEN. */
	st.circuit = FERRY_CIRCUIT_OPEN;
	st.open_until_ns = 1;
	ok = ASSERT_EQ(bpf_map_update_elem(fm.bestat, &id12, &st, BPF_ANY), 0, "OPEN, run out");
	ok &= ASSERT_EQ(model_mismatch(vip, &s, ring, 23, u, 2, n, 12, &to12, NULL), 0,
			"flows not where the model (run-out OPEN is DEGRADED) says");
	ok &= ASSERT_TRUE(to12 < n / 100, "new flows to the backend: %d of %d", to12, n);
	verdict("xdp circuit OPEN past its ejection is DEGRADED until a probe closes it", ok);
out:
	if (ring >= 0)
		close(ring);
}

/* One frame of spec sp through the LB; its action, or -1 if it did not run. */
static int send_spec(const struct pspec *sp)
{
	__u8 in[256], out[256];
	__u32 ol = sizeof(out), act;
	size_t l3, il = build(sp, in, &l3);

	return run(lb_fd(), in, il, out, &ol, &act) ? -1 : (int)act;
}

/*
 * Known packets move the outcome counters by exactly what they are: a SYN
 * is a new flow and no lookup, an ACK a hit on its recorded flow or a miss
 * (and then recorded), an ACK of a flow whose backend was removed a miss
 * alone (not a hit too: the recorded backend was not kept), a packet to a
 * VIP none of whose backends may take it
 * a drop after every ring entry tried, a bad TCP header a drop. Every other
 * slot stays put, bar the next-hop resolutions (their cache expires on a
 * clock).
 */
static void test_counter_deltas(void)
{
	const struct bspec bs[] = { { .ip = "192.0.2.11" } };
	const struct bspec two[] = { { .ip = "192.0.2.11" }, { .ip = "192.0.2.12" } };
	const struct bspec only12[] = { { .ip = "192.0.2.12" } };
	const char *vip = "198.51.100.66";
	struct pspec bad = { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = vip,
			     .sport = 7009, .dport = 80, .doff = 3 };
	struct pspec sick = { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = "198.51.100.31",
			      .sport = 7010, .dport = 80, .tcp_flags = TCP_SYN };
	__u64 v0[FERRY_XSTAT_MAX], v1[FERRY_XSTAT_MAX], want[FERRY_XSTAT_MAX] = {};
	int fd = bpf_map__fd(lb->maps.ferry_xstat_v2), i, fwd = 0, drops = 0;
	bool ok;

	ok = ASSERT_EQ(svc_set("deltas", vip, 80, IPPROTO_TCP, true, bs, 1), 0, "service");
	ok &= ASSERT_EQ(xstat_sum(fd, v0), 0, "read the counters");
	if (!ok) {
		verdict("xdp counters move by exactly the packets sent", false);
		return;
	}
	fwd += send_flow(vip, 80, 30, 7000, true, NULL) == 11;		/* new flow A */
	want[FERRY_XSTAT_SYN_NEW] += 1;
	for (i = 0; i < 3; i++)
		fwd += send_flow(vip, 80, 30, 7000, false, NULL) == 11;	/* A's next packets */
	want[FERRY_XSTAT_LRU_HIT] += 3;
	fwd += send_flow(vip, 80, 30, 7001, false, NULL) == 11;	/* B, mid-flow, unknown */
	want[FERRY_XSTAT_LRU_MISS] += 1;
	fwd += send_flow(vip, 80, 30, 7001, false, NULL) == 11;	/* B, recorded by now */
	want[FERRY_XSTAT_LRU_HIT] += 1;
	fwd += send_flow(vip, 80, 30, 7000, true, NULL) == 11;		/* A's SYN again */
	want[FERRY_XSTAT_SYN_NEW] += 1;
	want[FERRY_XSTAT_REDIRECT] += 7;
	/* A's backend removed (the other one was there before, so no id is
	 * reused): its next packet is placed again, one miss and no hit. */
	ok &= ASSERT_EQ(svc_set("deltas", vip, 80, IPPROTO_TCP, true, two, 2), 0, "second backend");
	ok &= ASSERT_EQ(svc_set("deltas", vip, 80, IPPROTO_TCP, true, only12, 1), 0, "A's backend removed");
	ok &= ASSERT_EQ(send_flow(vip, 80, 30, 7000, false, NULL), 12, "A re-placed on the backend left");
	want[FERRY_XSTAT_LRU_MISS] += 1;
	ok &= ASSERT_EQ(send_flow(vip, 80, 30, 7000, false, NULL), 12, "A recorded there");
	want[FERRY_XSTAT_LRU_HIT] += 1;
	want[FERRY_XSTAT_REDIRECT] += 2;
	drops += send_spec(&sick) == XDP_DROP;				/* only backend UNHEALTHY */
	sick.tcp_flags = TCP_ACK;
	drops += send_spec(&sick) == XDP_DROP;				/* and mid-flow */
	want[FERRY_XSTAT_DROP_NO_BACKEND] += 2;
	want[FERRY_XSTAT_RING_RETRY] += 2 * FERRY_XDP_RING_TRIES;
	drops += send_spec(&bad) == XDP_DROP;				/* TCP doff 3 */
	want[FERRY_XSTAT_DROP_MALFORMED] += 1;
	ok &= ASSERT_EQ(fwd, 7, "packets sent on to the backend");
	ok &= ASSERT_EQ(drops, 3, "packets dropped");
	ok &= ASSERT_EQ(xstat_sum(fd, v1), 0, "read the counters");
	for (i = 0; i < FERRY_XSTAT_MAX; i++) {
		if (i == FERRY_XSTAT_NH_LOOKUP || i == FERRY_XSTAT_NH_GATEWAY)
			continue;
		ok &= ASSERT_EQ(v1[i] - v0[i], want[i], "counter slot %d (%s)", i,
				ferry_xstat_descs[i].name ? ferry_xstat_descs[i].name : "unnamed");
	}
	verdict("xdp counters move by exactly the packets sent", ok);
}

/* Run this thread on CPU cpu; -errno if it may not. */
static int on_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

/* Can the tests that move between CPU 0 and CPU 1 run here? Back on CPU 0. */
static bool two_cpus(void)
{
	bool ok = libbpf_num_possible_cpus() >= 2 && !on_cpu(1);

	on_cpu(0);
	return ok;
}

/* Entries in service svc_id's ring; 0 if it has none. */
static __u32 ring_size(__u32 svc_id)
{
	__u32 id, m = 0;
	int fd;

	if (bpf_map_lookup_elem(fm.xring, &svc_id, &id))
		return 0;
	fd = bpf_map_get_fd_by_id(id);
	if (fd < 0)
		return 0;
	if (map_max_entries(fd, &m))
		m = 0;
	close(fd);
	return m;
}

/* Of n new flows to vip:80 (SYNs from 192.0.2.1<client>), how many did not
 * go where the service's ring, read at its own size, sends them; to (NULL
 * or 256 counters) counts them by their backend's last address byte. */
static int off_ring(const char *vip, __u32 svc_id, __u32 client, int n, int *to)
{
	char src[32];
	int i, wrong = 0;

	snprintf(src, sizeof(src), "192.0.2.%u", 100 + client % 100);
	for (i = 0; i < n; i++) {
		struct ferry_xflow_key k = { .proto = IPPROTO_TCP, .family = AF_INET };
		__u16 sport = 100 * client + i;
		int got = send_flow(vip, 80, client, sport, true, NULL);
		struct ferry_backend be;
		__u32 id;

		inet_pton(AF_INET, src, k.src);
		inet_pton(AF_INET, vip, k.dst);
		k.sport = htons(sport);
		k.dport = htons(80);
		id = ring_backend(svc_id, &k);
		if (!id || bpf_map_lookup_elem(fm.be, &id, &be) || got != (int)(ntohl(be.addr[0]) & 0xff))
			wrong++;
		if (to && got >= 0)
			to[got & 0xff]++;
	}
	return wrong;
}

/*
 * A backend id freed by one registry change is handed out again by a later
 * one, to any service, at another address. The next hops this CPU cached
 * for the old backend must not answer for the new one (nor a flow of the old
 * service be sent on to the new one's address): cached rows name their
 * service, and deleting backends bumps ferry_xcfg's epoch, which outdates
 * every row cached before. Without it they answered until they expired
 * (250 ms; 2.5 s where ferryd assumes HZ).
 */
static void test_id_reuse(void)
{
	const struct bspec one[] = { { .ip = "192.0.2.11" } }, other[] = { { .ip = "192.0.2.12" } };
	const struct bspec ab[] = { { .ip = "192.0.2.11" }, { .ip = "192.0.2.13" } };
	const struct bspec b[] = { { .ip = "192.0.2.13" } };
	const struct bspec bc[] = { { .ip = "192.0.2.13" }, { .ip = "192.0.2.12" } };
	const char *v1 = "198.51.100.200", *v2 = "198.51.100.201", *v3 = "198.51.100.202";
	__u32 ida, idb, act, id11 = 0;
	int i, sport = -1, wrong = 0, to[256] = { 0 };
	struct ferry_svc s3;
	bool ok;

	/* Service 1's backend carries a flow, its next hop cached. */
	ok = ASSERT_EQ(svc_set("reuse1", v1, 80, IPPROTO_TCP, true, one, 1), 0, "service 1");
	ida = svc_backend(v1, 80, IPPROTO_TCP, 0);
	ok &= ASSERT_EQ(send_flow(v1, 80, 21, 2100, true, NULL), 11, "service 1's flow to .11");
	ok &= ASSERT_EQ(send_flow(v1, 80, 21, 2100, false, NULL), 11, "its next packet, cached hop");
	/* The backend leaves; the next change gives service 2 a backend at
	 * .12, which takes the freed id. */
	ok &= ASSERT_EQ(svc_set("reuse1", v1, 80, IPPROTO_TCP, true, one, 0), 0, "service 1 loses it");
	ok &= ASSERT_EQ(svc_set("reuse2", v2, 80, IPPROTO_TCP, true, other, 1), 0, "service 2");
	idb = svc_backend(v2, 80, IPPROTO_TCP, 0);
	ok &= ASSERT_EQ(idb, ida, "service 2's backend has the freed id");
	ok &= ASSERT_EQ(send_flow(v2, 80, 22, 2200, true, NULL), 12, "service 2's new flow to .12 at once");
	/* Service 1's flow comes back: its backend is gone, and the hop now
	 * cached for the id is service 2's. */
	act = XDP_ABORTED;
	ok &= ASSERT_EQ(send_flow(v1, 80, 21, 2100, false, &act), -1, "service 1's flow not to .12");
	ok &= ASSERT_EQ(act, XDP_DROP, "service 1's flow dropped: no backend left");
	verdict("xdp a reused backend id: no next hop cached for the old backend answers", ok);

	/* Within one service: .11 leaves, its flows go elsewhere at once,
	 * and a backend added later with its id is reached at its address. */
	ok = ASSERT_EQ(svc_set("reuse2", v2, 80, IPPROTO_TCP, true, other, 0), 0, "service 2 empty");
	ok &= ASSERT_EQ(svc_set("reuse3", v3, 80, IPPROTO_TCP, true, ab, 2), 0, "service 3: .11, .13");
	ok &= ASSERT_EQ(svc_lookup(v3, 80, IPPROTO_TCP, &s3), 0, "service 3's id");
	for (i = 0; i < 2; i++) {
		struct ferry_backend be;
		__u32 id = svc_backend(v3, 80, IPPROTO_TCP, i);

		if (!bpf_map_lookup_elem(fm.be, &id, &be) && (ntohl(be.addr[0]) & 0xff) == 11)
			id11 = id;
	}
	ok &= ASSERT_TRUE(id11 != 0, "the id of .11");
	for (i = 0; ok && i < 64 && sport < 0; i++)
		if (send_flow(v3, 80, 23, 2300 + i, true, NULL) == 11)
			sport = 2300 + i;
	ok &= ASSERT_TRUE(sport >= 0, "a flow on .11");
	ok &= ASSERT_EQ(send_flow(v3, 80, 23, sport, false, NULL), 11, "its next packet, cached hop");
	ok &= ASSERT_EQ(svc_set("reuse3", v3, 80, IPPROTO_TCP, true, b, 1), 0, ".11 leaves");
	ok &= ASSERT_EQ(send_flow(v3, 80, 23, sport, false, NULL), 13, "the flow of .11 to .13 at once");
	ok &= ASSERT_EQ(svc_set("reuse3", v3, 80, IPPROTO_TCP, true, bc, 2), 0, ".12 joins");
	ok &= ASSERT_EQ(svc_backend(v3, 80, IPPROTO_TCP, 1), id11, ".12 has the id of .11");
	{
		struct xcnt_view be = {};
		struct ferry_xcnt sum;

		ok &= ASSERT_EQ(xcnt_open(bpf_map__fd(lb->maps.ferry_xbe_v2), &be), 0, "map backend counters");
		xcnt_get(&be, id11, &sum);
		xcnt_close(&be);
		ok &= ASSERT_EQ(sum.packets, 0, "packets counted for .12 before it had any (those of .11)");
	}
	wrong = off_ring(v3, s3.id, 24, 200, to);
	ok &= ASSERT_TRUE(to[12] > 0, "new flows to .12 (%d of 200)", to[12]);
	ok &= ASSERT_EQ(wrong, 0, "new flows not at their ring backend's address");
	verdict("xdp a backend leaving: its flows move at once, its id's next user is reached", ok);
}

/*
 * A backend that is this node (one of the addresses ferryd records in
 * ferry_xdaddr_v1) gets its flows as they came, XDP_PASS to the local stack
 * where it binds the VIP, not a tunnel to itself: the FIB answers NOT_FWDED
 * for it as for an address without a route (which keeps the gateway or
 * drop_no_route, the rows above).
 */
static void test_local_backend(void)
{
	static const struct { const char *vip, *self; int family; } c[] = {
		{ "198.51.100.210", "192.0.2.2", 4 },
		{ "2001:db8:ffff::210", "2001:db8::2", 6 },
	};
	int addr = bpf_map__fd(lb->maps.ferry_xdaddr_v1);
	__u64 local0 = xstat(FERRY_XSTAT_LOCAL);
	size_t i, k;
	bool ok = true;

	for (i = 0; i < 2; i++) {
		const struct bspec self[] = { { .ip = c[i].self } };
		struct ferry_xdcap_key key = { .family = c[i].family == 4 ? AF_INET : AF_INET6 };
		__u32 one = 1;

		inet_pton(key.family, c[i].self, key.addr);
		ok &= ASSERT_EQ(bpf_map_update_elem(addr, &key, &one, BPF_ANY), 0, "record %s", c[i].self);
		ok &= ASSERT_EQ(svc_set(i ? "self6" : "self4", c[i].vip, 80, IPPROTO_TCP, true, self, 1), 0,
				"service with backend %s", c[i].self);
		for (k = 0; ok && k < 2; k++) {	/* a SYN, then the flow's next packet */
			struct pspec sp = { .family = c[i].family, .proto = IPPROTO_TCP,
					    .src = c[i].family == 4 ? V4C : V6C, .dst = c[i].vip,
					    .sport = 41000, .dport = 80, .payload = 10,
					    .tcp_flags = k ? TCP_ACK : TCP_SYN };
			__u8 in[256], out[256];
			__u32 outlen = sizeof(out), act = XDP_ABORTED;
			size_t l3, inlen = build(&sp, in, &l3);

			ok &= ASSERT_EQ(run_on(lb_fd(), lb_ifindex, in, inlen, out, &outlen, &act), 0, "run");
			ok &= ASSERT_EQ(act, XDP_PASS, "v%d %s: action", c[i].family, k ? "ACK" : "SYN");
			ok &= ASSERT_TRUE(outlen == inlen && !memcmp(in, out, inlen),
					  "v%d %s: the packet as it came", c[i].family, k ? "ACK" : "SYN");
		}
	}
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_LOCAL) - local0, 4, "counted as local");
	verdict("xdp a backend that is this node gets its flows unencapsulated (XDP_PASS)", ok);
	for (i = 0; i < 2; i++)
		svc_set(i ? "self6" : "self4", c[i].vip, 80, IPPROTO_TCP, true, NULL, 0);
}

/*
 * ferryd restarted with another --xdp-ring-size writes the new size at
 * load; each ring keeps the size it was built with until the next sync
 * rebuilds it. Meanwhile the program reads a ring at its own size: new
 * flows go where the ring says and none passes for want of an entry (read
 * at the configured size, a larger one found no entry for half of them: XDP_PASS).
 */
static void test_ring_size_change(void)
{
	const struct bspec bs[] = { { .ip = "192.0.2.11" }, { .ip = "192.0.2.12" } };
	const char *vip = "198.51.100.220";
	struct ferry_xcfg cfg, big;
	struct ferry_svc s = {};
	__u64 noring0 = xstat(FERRY_XSTAT_PASS_NO_RING);
	__u32 zero = 0;
	bool ok;

	ok = ASSERT_EQ(bpf_map_lookup_elem(fm.xcfg, &zero, &cfg), 0, "the configuration");
	big = cfg;
	big.ring_size = 131071;
	ok &= ASSERT_EQ(svc_set("resize", vip, 80, IPPROTO_TCP, true, bs, 2), 0, "service");
	ok &= ASSERT_EQ(svc_lookup(vip, 80, IPPROTO_TCP, &s), 0, "its id");
	ok &= ASSERT_EQ(ring_size(s.id), FERRY_XDP_DEF_RING_M, "its ring at the default size");
	ok &= ASSERT_EQ(bpf_map_update_elem(fm.xcfg, &zero, &big, BPF_ANY), 0, "configured 131071");
	ok &= ASSERT_EQ(off_ring(vip, s.id, 25, 200, NULL), 0, "new flows off the old ring");
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_PASS_NO_RING) - noring0, 0, "new flows passed (no ring entry)");
	/* The next sync rebuilds the ring at the configured size. */
	ok &= ASSERT_EQ(svc_set("resize", vip, 80, IPPROTO_TCP, true, bs, 2), 0, "the sync");
	ok &= ASSERT_EQ(ring_size(s.id), 131071, "the ring rebuilt at 131071");
	ok &= ASSERT_EQ(off_ring(vip, s.id, 25, 200, NULL), 0, "new flows off the new ring");
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_PASS_NO_RING) - noring0, 0, "new flows passed");
	verdict("xdp a ring built at another size serves at its own size until rebuilt", ok);
	bpf_map_update_elem(fm.xcfg, &zero, &cfg, BPF_ANY);
	svc_set("resize", vip, 80, IPPROTO_TCP, true, NULL, 0);
}

/* A flow seen on CPU 0 keeps its backend when its packets show up on CPU 1
 * after the ring changed (the flow table's values are shared by CPUs). */
static void test_other_cpu(void)
{
	struct bspec two[] = { { .ip = "192.0.2.11" }, { .ip = "192.0.2.12" } };
	struct bspec three[] = { { .ip = "192.0.2.11" }, { .ip = "192.0.2.12" }, { .ip = "192.0.2.13" } };
	static int first[1000];
	int i, moved = 0, unbalanced = 0, new13 = 0;
	bool ok;

	if (!two_cpus()) {
		printf("SKIP xdp flow moving CPUs keeps its backend: needs two CPUs\n");
		return;
	}
	ok = ASSERT_EQ(svc_set("cpu", "198.51.100.70", 80, IPPROTO_TCP, true, two, 2), 0, "service");
	for (i = 0; ok && i < 1000; i++) {
		first[i] = send_flow("198.51.100.70", 80, 7, 1000 + i, true, NULL);
		unbalanced += first[i] != 11 && first[i] != 12;
	}
	/* send_flow() is -1 for anything but TX/REDIRECT: every flow must have
	 * reached a backend, or "kept its backend" would compare -1 with -1. */
	ok &= ASSERT_EQ(unbalanced, 0, "first packets not sent to .11 or .12");
	ok &= ASSERT_EQ(svc_set("cpu", "198.51.100.70", 80, IPPROTO_TCP, true, three, 3), 0, "add");
	on_cpu(1);
	for (i = 0; ok && i < 1000; i++)
		moved += send_flow("198.51.100.70", 80, 7, 1000 + i, false, NULL) != first[i];
	/* The same flows started anew (a SYN always picks from the ring): the
	 * new ring sends some to .13, so a flow that had lost its entry on
	 * the way to CPU 1 would have shown up as moved. */
	for (i = 0; ok && i < 1000; i++)
		new13 += send_flow("198.51.100.70", 80, 7, 1000 + i, true, NULL) == 13;
	on_cpu(0);
	ok &= ASSERT_EQ(moved, 0, "flows that changed backend after moving CPU");
	ok &= ASSERT_TRUE(new13 > 0, "the new ring sends %d of the 1000 flows' SYNs to .13", new13);
	verdict("xdp flow moving CPUs keeps its backend", ok);
}

/*
 * The geometry markers among n instructions: *seen the values they stand
 * for; *unset how many ferry_xdp_size() has not written, *wrong how many
 * it wrote with another value than want[].
 */
static void xgeo_scan(const struct bpf_insn *in, size_t n, const __u32 *want, unsigned int *seen,
		      int *unset, int *wrong)
{
	size_t i;
	int m;

	*seen = 0, *unset = 0, *wrong = 0;
	for (i = 0; i + 1 < n; i++) {
		if ((m = ferry_xgeo_at(in, n, i)) < 0)
			continue;
		*seen |= 1U << (m & ~FERRY_XGEO_SET);
		if (!(m & FERRY_XGEO_SET))
			(*unset)++;
		else if ((__u32)in[i].imm != want[m & ~FERRY_XGEO_SET])
			(*wrong)++;
		i++;
	}
}

/* A loaded program's instructions as the kernel holds them (free them);
 * NULL on error. */
static struct bpf_insn *loaded_insns(int prog_fd, size_t *n)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	struct bpf_insn *in;

	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) || !info.xlated_prog_len)
		return NULL;
	*n = info.xlated_prog_len / sizeof(*in);
	in = calloc(*n, sizeof(*in));
	if (!in)
		return NULL;
	memset(&info, 0, sizeof(info));
	info.xlated_prog_len = *n * sizeof(*in);
	info.xlated_prog_insns = (__u64)(unsigned long)in;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len)) {
		free(in);
		return NULL;
	}
	return in;
}

/* Does the JIT blind constants (so a loaded program's dump hides them)? */
static bool jit_hardened(void)
{
	FILE *f = fopen("/proc/sys/net/core/bpf_jit_harden", "r");
	int v = 0;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v != 0;
}

/*
 * ferry_xdp_size() writes the geometry into the code (include/ferry/xdp.h):
 * a fresh copy has a marker for each value, none written; a sized copy has
 * every marker written with the sizes it was given, and sizing it again
 * writes them again. The program the tests run holds its own maps' sizes,
 * subprograms included (libbpf appends them at load, unpatched: none may
 * hold a marker).
 */
static void test_geometry(void)
{
	__u32 want[FERRY_XGEO_MAX] = {
		[FERRY_XGEO_FLOW_SETS] = XFLOW_SETS,
		[FERRY_XGEO_XSVC_SETS] = 256,
		[FERRY_XGEO_XVIP_STRIDE] = 1025,
		[FERRY_XGEO_XBE_STRIDE] = 4097,
	};
	struct xdp_lb_bpf *fresh = xdp_lb_bpf__open(), *sized = xdp_lb_bpf__open();
	const unsigned int all = (1U << FERRY_XGEO_MAX) - 1;
	int unset, wrong;
	struct bpf_insn *in = NULL;
	unsigned int seen;
	size_t n;
	bool ok;

	ok = ASSERT_TRUE(fresh && sized, "open two copies");
	if (!ok)
		goto out;
	n = bpf_program__insn_cnt(fresh->progs.ferry_xdp_lb);
	xgeo_scan(bpf_program__insns(fresh->progs.ferry_xdp_lb), n, want, &seen, &unset, &wrong);
	ok &= ASSERT_EQ(seen, all, "the program has a marker of each value");

	ok &= ASSERT_EQ(size_lb(sized), 0, "size a copy");
	n = bpf_program__insn_cnt(sized->progs.ferry_xdp_lb);
	xgeo_scan(bpf_program__insns(sized->progs.ferry_xdp_lb), n, want, &seen, &unset, &wrong);
	ok &= ASSERT_EQ(seen, all, "sized: every value still marked");
	ok &= ASSERT_EQ(unset, 0, "sized: every marker written");
	ok &= ASSERT_EQ(wrong, 0, "sized: each with its value");

	want[FERRY_XGEO_FLOW_SETS] = 1021;
	bpf_map__set_max_entries(sized->maps.ferry_xflow_v3, 1021);
	ok &= ASSERT_EQ(ferry_xdp_size(sized->obj, 1024, 4096), 0, "size it again");
	xgeo_scan(bpf_program__insns(sized->progs.ferry_xdp_lb), n, want, &seen, &unset, &wrong);
	ok &= ASSERT_EQ(wrong + unset, 0, "resized: the new flow-table size written");

	if (jit_hardened()) {
		printf("  (loaded program not read back: bpf_jit_harden blinds its constants)\n");
		goto out;
	}
	in = loaded_insns(bpf_program__fd(lb->progs.ferry_xdp_lb), &n);
	ok &= ASSERT_TRUE(in != NULL, "read the loaded program back");
	if (!in)
		goto out;
	want[FERRY_XGEO_FLOW_SETS] = bpf_map__max_entries(lb->maps.ferry_xflow_v3);
	want[FERRY_XGEO_XSVC_SETS] = bpf_map__max_entries(lb->maps.ferry_xsvc_v1);
	xgeo_scan(in, n, want, &seen, &unset, &wrong);
	ok &= ASSERT_EQ(seen, all, "loaded: every value marked");
	ok &= ASSERT_EQ(unset, 0, "loaded: no marker left unwritten, subprograms included");
	ok &= ASSERT_EQ(wrong, 0, "loaded: each holds its map's size");
out:
	free(in);
	xdp_lb_bpf__destroy(fresh);
	xdp_lb_bpf__destroy(sized);
	verdict("xdp geometry is written into the program's code", ok);
}

/*
 * A second copy of the program, on the same pinned maps, whose next-hop
 * cache has a row for CPU 0 only; with counters, its counter arrays too,
 * private (not pinned) so the shared ones keep every CPU's row. NULL if
 * it does not load.
 */
static struct xdp_lb_bpf *load_one_row(bool counters)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = pin_dir);
	struct xdp_lb_bpf *one = xdp_lb_bpf__open_opts(&oo);
	int err;

	if (!one)
		return NULL;
	err = size_lb(one);
	if (!err)
		err = bpf_map__set_max_entries(one->maps.ferry_xnh, FERRY_XNH_SLOTS);
	if (!err && counters)
		err = bpf_map__set_pin_path(one->maps.ferry_xstat_v2, NULL) ?:
		      bpf_map__set_pin_path(one->maps.ferry_xvip_v2, NULL) ?:
		      bpf_map__set_pin_path(one->maps.ferry_xbe_v2, NULL) ?:
		      bpf_map__set_max_entries(one->maps.ferry_xstat_v2, 1) ?:
		      bpf_map__set_max_entries(one->maps.ferry_xvip_v2, 1024 + 1) ?:
		      bpf_map__set_max_entries(one->maps.ferry_xbe_v2, 4096 + 1);
	if (!err)
		err = xdp_lb_bpf__load(one);
	if (err) {
		xdp_lb_bpf__destroy(one);
		return NULL;
	}
	return one;
}

/* n packets of one flow to vip:80 (a SYN first if syn) through prog on
 * CPU cpu; how many were sent on to 192.0.2.11. Back on CPU 0. */
static int forward_on(int prog_fd, int cpu, const char *vip, int n, bool syn)
{
	int i, b = 0;

	on_cpu(cpu);
	for (i = 0; i < n; i++) {
		struct pspec sp = { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = vip,
				    .sport = 4000, .dport = 80,
				    .tcp_flags = i || !syn ? TCP_ACK : TCP_SYN };
		__u8 in[256], out[256];
		__u32 ol = sizeof(out), act = 0;
		size_t l3, il = build(&sp, in, &l3);

		if (!run(prog_fd, in, il, out, &ol, &act) && act == XDP_REDIRECT &&
		    out[l3 + 19] == 11)
			b++;
	}
	on_cpu(0);
	return b;
}

/* A CPU the next-hop cache has no row for (a loader that did not size it)
 * still forwards: every packet resolves its next hop anew. */
static void test_unsized_cpu(void)
{
	const struct bspec bs[] = { { .ip = "192.0.2.11" } };
	struct xdp_lb_bpf *one = NULL;
	__u64 lookups;
	bool ok;

	if (!two_cpus()) {
		printf("SKIP xdp CPU without a next-hop cache row forwards: needs two CPUs\n");
		return;
	}
	ok = ASSERT_EQ(svc_set("unsized", "198.51.100.85", 80, IPPROTO_TCP, true, bs, 1), 0, "service");
	one = load_one_row(false);
	ok &= ASSERT_TRUE(one != NULL, "load a copy with a cache row for CPU 0 only");
	if (!ok)
		goto out;
	lookups = xstat(FERRY_XSTAT_NH_LOOKUP);
	ok &= ASSERT_EQ(forward_on(bpf_program__fd(one->progs.ferry_xdp_lb), 1, "198.51.100.85", 3,
				   true), 3, "packets forwarded to 192.0.2.11 from CPU 1");
	ok &= ASSERT_EQ(xstat(FERRY_XSTAT_NH_LOOKUP) - lookups, 3, "a next-hop lookup per packet");
out:
	xdp_lb_bpf__destroy(one);
	verdict("xdp CPU without a next-hop cache row forwards (fail open)", ok);
}

/* Packets one copy's counters hold: sent on (tx or redirect), per VIP, per
 * backend. */
static void counted(const struct xdp_lb_bpf *one, __u64 *tx, __u64 *vip, __u64 *be)
{
	__u64 v[FERRY_XSTAT_MAX];
	struct ferry_xcnt c;
	__u32 k;

	*tx = ~0ULL;
	if (!xstat_sum(bpf_map__fd(one->maps.ferry_xstat_v2), v))
		*tx = v[FERRY_XSTAT_TX] + v[FERRY_XSTAT_REDIRECT];
	*vip = *be = 0;
	for (k = 0; k < bpf_map__max_entries(one->maps.ferry_xvip_v2); k++)
		if (!bpf_map_lookup_elem(bpf_map__fd(one->maps.ferry_xvip_v2), &k, &c))
			*vip += c.packets;
	for (k = 0; k < bpf_map__max_entries(one->maps.ferry_xbe_v2); k++)
		if (!bpf_map_lookup_elem(bpf_map__fd(one->maps.ferry_xbe_v2), &k, &c))
			*be += c.packets;
}

/* A CPU the counters have no row for counts nothing and still forwards;
 * the same program on CPU 0 counts, so the counters are live. */
static void test_unsized_counters(void)
{
	const struct bspec bs[] = { { .ip = "192.0.2.11" } };
	struct xdp_lb_bpf *one = NULL;
	__u64 tx, vip, be;
	int fd;
	bool ok;

	if (!two_cpus()) {
		printf("SKIP xdp CPU without a counter row forwards: needs two CPUs\n");
		return;
	}
	ok = ASSERT_EQ(svc_set("unrowed", "198.51.100.86", 80, IPPROTO_TCP, true, bs, 1), 0, "service");
	one = load_one_row(true);
	ok &= ASSERT_TRUE(one != NULL, "load a copy with counter rows for CPU 0 only");
	if (!ok)
		goto out;
	fd = bpf_program__fd(one->progs.ferry_xdp_lb);
	ok &= ASSERT_EQ(forward_on(fd, 1, "198.51.100.86", 3, true), 3, "forwarded from CPU 1");
	counted(one, &tx, &vip, &be);
	ok &= ASSERT_EQ(tx + vip + be, 0, "nothing counted on CPU 1");
	ok &= ASSERT_EQ(forward_on(fd, 0, "198.51.100.86", 1, false), 1, "forwarded from CPU 0");
	counted(one, &tx, &vip, &be);
	ok &= ASSERT_EQ(tx, 1, "CPU 0 counts its packet sent on");
	ok &= ASSERT_EQ(vip, 1, "and its VIP's packet");
	ok &= ASSERT_EQ(be, 1, "and its backend's packet");
out:
	xdp_lb_bpf__destroy(one);
	verdict("xdp CPU without a counter row counts nothing and forwards (fail open)", ok);
}

/*
 * Per-VIP and per-backend packet/byte counters, outer source spread. The
 * packets run on two CPUs (when there are two): each CPU's row of the
 * CPU-major arrays holds its own share, the readers' sum holds all.
 */
static void test_counters(void)
{
	const struct bspec bs[] = { { .ip = "192.0.2.11" } };
	int i, n = 500, cpu1 = two_cpus();
	struct xcnt_view vip = {}, be = {};
	__u32 max = 0;
	struct ferry_xcnt sum, row;
	struct ferry_svc s;
	__u32 be_id, key;
	__u8 seen[256] = {};
	int distinct = 0;
	bool ok;

	ok = ASSERT_EQ(svc_set("count", "198.51.100.80", 80, IPPROTO_TCP, true, bs, 1), 0, "service");
	ok &= ASSERT_EQ(svc_lookup("198.51.100.80", 80, IPPROTO_TCP, &s), 0, "lookup");
	for (i = 0; ok && i < n; i++) {
		/* The first with 1,400 bytes past its datagram: they do not
		 * fit the tunnel, are cut, and so are not counted. */
		struct pspec sp = { .family = 4, .proto = IPPROTO_TCP, .src = V4C, .dst = "198.51.100.80",
				    .sport = 3000 + i, .dport = 80, .payload = 46, .trail = i ? 0 : 1400 };
		__u8 in[2048], out[2048];
		__u32 ol = sizeof(out), act;
		size_t l3, il = build(&sp, in, &l3);

		if (i == n / 5 && cpu1)
			on_cpu(1);	/* the last 4/5 on CPU 1 */
		if (run(lb_fd(), in, il, out, &ol, &act) || act != XDP_REDIRECT) {
			ok = false;
			break;
		}
		if (!seen[out[l3 + 15]]++)
			distinct++;	/* host byte of the outer source */
	}
	on_cpu(0);
	be_id = svc_backend("198.51.100.80", 80, IPPROTO_TCP, 0);
	ok &= ASSERT_EQ(xcnt_open(bpf_map__fd(lb->maps.ferry_xvip_v2), &vip), 0, "map VIP counters");
	ok &= ASSERT_EQ(xcnt_open(bpf_map__fd(lb->maps.ferry_xbe_v2), &be), 0, "map backend counters");
	ok &= ASSERT_EQ(map_max_entries(bpf_map__fd(lb->maps.ferry_xvip_v2), &max), 0, "size");
	ok &= ASSERT_EQ(max, 1025 * ferry_cpu_rows(), "a row of services + 1 per possible CPU");
	ok &= ASSERT_EQ(vip.stride, 1025, "the reader's columns");
	xcnt_get(&vip, s.id, &sum);
	ok &= ASSERT_EQ(sum.packets, n, "VIP packets");
	ok &= ASSERT_EQ(sum.bytes, n * (14 + 20 + 20 + 46), "VIP bytes");
	xcnt_get(&be, be_id, &sum);
	ok &= ASSERT_EQ(sum.packets, n, "backend packets");
	/* The rows as the program wrote them: CPU c at c * stride + id. */
	key = s.id;
	ok &= ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(lb->maps.ferry_xvip_v2), &key, &row), 0, "row 0");
	ok &= ASSERT_EQ(row.packets, cpu1 ? n / 5 : n, "CPU 0's row");
	if (cpu1) {
		key = 1025 + s.id;
		ok &= ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(lb->maps.ferry_xvip_v2), &key, &row), 0,
				"row 1");
		ok &= ASSERT_EQ(row.packets, n - n / 5, "CPU 1's row");
	}
	ok &= ASSERT_TRUE(distinct > 200, "outer sources spread over the /24 (%d distinct of %d flows)", distinct, n);
	xcnt_close(&vip);
	xcnt_close(&be);
	verdict("xdp per-VIP and per-backend counters, a row per CPU, outer source spread", ok);
}

static void test_decap_rows(void)
{
	__u8 in[256], out[256];
	__u32 ol, act;
	bool ok = true;
	size_t n;

	/* IPIP to an address we do not own: passes untouched. The outer
	 * header is a sound one: the decap refuses any other before it looks
	 * at addresses (test_bpf_decap's rows). */
	memset(in, 0, sizeof(in));
	in[12] = 0x08;
	in[14] = 0x45;
	in[14 + 3] = 60;
	in[14 + 8] = 64;
	in[14 + 9] = IPPROTO_IPIP;
	inet_pton(AF_INET, "203.0.113.5", in + 14 + 12);
	inet_pton(AF_INET, "192.0.2.99", in + 14 + 16);
	*(__be16 *)(in + 14 + 10) = csum16(in + 14, 20, 0);
	in[34] = 0x45;
	n = 14 + 20 + 40;
	ol = sizeof(out);
	ok &= ASSERT_EQ(run(dc_fd(), in, n, out, &ol, &act), 0, "run") &&
	      ASSERT_EQ(act, XDP_PASS, "not ours: pass") && ASSERT_TRUE(!memcmp(in, out, n), "untouched");
	verdict("xdp decap: tunnel to a foreign address passes untouched", ok);

	/* Ours, but the inner header is cut (frame and outer length): dropped. */
	inet_pton(AF_INET, "192.0.2.11", in + 14 + 16);
	in[14 + 3] = 30;
	in[14 + 10] = in[14 + 11] = 0;
	*(__be16 *)(in + 14 + 10) = csum16(in + 14, 20, 0);
	ol = sizeof(out);
	ok = ASSERT_EQ(run(dc_fd(), in, 14 + 20 + 10, out, &ol, &act), 0, "run") &&
	     ASSERT_EQ(act, XDP_DROP, "truncated inner: drop");
	/* Ours, inner version wrong: dropped. */
	in[14 + 3] = 60;
	in[14 + 10] = in[14 + 11] = 0;
	*(__be16 *)(in + 14 + 10) = csum16(in + 14, 20, 0);
	in[34] = 0x65;
	ol = sizeof(out);
	ok &= ASSERT_EQ(run(dc_fd(), in, n, out, &ol, &act), 0, "run") &&
	      ASSERT_EQ(act, XDP_DROP, "inner version mismatch: drop");
	verdict("xdp decap: malformed inner datagram dropped", ok);

	/* Plain traffic passes. */
	in[14 + 9] = IPPROTO_TCP;
	ol = sizeof(out);
	ok = ASSERT_EQ(run(dc_fd(), in, n, out, &ol, &act), 0, "run") &&
	     ASSERT_EQ(act, XDP_PASS, "plain: pass") && ASSERT_TRUE(!memcmp(in, out, n), "untouched");
	verdict("xdp decap: non-tunnel traffic passes untouched", ok);
}

/*
 * ferryd's side of ferry_xvlan_v1: a dump of this namespace's links finds no
 * VLAN device among the veths; a sync makes the map exactly the set given
 * (a changed tag rewritten, a stale device dropped, the others untouched);
 * a link message going applies as a delete.
 */
static void test_xvlan_sync(void)
{
	int fd = bpf_map__fd(lb->maps.ferry_xvlan_v1);
	struct xvlan_ent want[3] = {}, *got = NULL;
	struct ferry_xvlan v, stale = { .lower_ifindex = 1, .proto = htons(0x8100), .tci = htons(9) };
	size_t n = 0, written = 0, removed = 0, i;
	__u32 key;
	char msg[NLMSG_SPACE(sizeof(struct ifinfomsg))] = {};
	struct nlmsghdr *nlh = (void *)msg;
	struct ifinfomsg *ifi = NLMSG_DATA(nlh);
	bool ok = true, changed = false;

	ok &= ASSERT_EQ(xvlan_read(&got, &n), 0, "dump of the links");
	ok &= ASSERT_EQ(n, 0, "VLAN devices among veths");
	free(got);
	for (i = 0; i < 2; i++) {
		want[i].ifindex = vlan_ifindex[i];
		want[i].v = (struct ferry_xvlan){ .lower_ifindex = lb_ifindex,
						  .proto = htons(vdevs[i].proto), .tci = htons(vdevs[i].vid) };
	}
	want[2].ifindex = 1000;
	want[2].v = (struct ferry_xvlan){ .lower_ifindex = lb_ifindex, .proto = htons(0x8100), .tci = htons(5) };
	key = 1000;
	ok &= ASSERT_EQ(bpf_map_update_elem(fd, &key, &stale, BPF_ANY), 0, "device 1000, other tag");
	key = 1001;
	ok &= ASSERT_EQ(bpf_map_update_elem(fd, &key, &stale, BPF_ANY), 0, "device 1001, gone");
	ok &= ASSERT_EQ(xvlan_sync(fd, want, 3, &written, &removed), 0, "sync");
	ok &= ASSERT_EQ(written, 1, "entries written (the changed one)");
	ok &= ASSERT_EQ(removed, 1, "entries removed (the stale one)");
	for (i = 0; i < 3; i++) {
		key = want[i].ifindex;
		ok &= ASSERT_TRUE(!bpf_map_lookup_elem(fd, &key, &v) && !memcmp(&v, &want[i].v, sizeof(v)),
				  "device %u as wanted", key);
	}
	key = 1001;
	ok &= ASSERT_TRUE(bpf_map_lookup_elem(fd, &key, &v) && errno == ENOENT, "stale device gone");
	nlh->nlmsg_len = sizeof(msg);
	nlh->nlmsg_type = RTM_DELLINK;
	ifi->ifi_index = 1000;
	ok &= ASSERT_EQ(xvlan_apply(fd, nlh, &changed), 0, "apply RTM_DELLINK");
	ok &= ASSERT_TRUE(changed, "the map changed");
	key = 1000;
	ok &= ASSERT_TRUE(bpf_map_lookup_elem(fd, &key, &v) && errno == ENOENT, "deleted device gone");
	verdict("xdp VLAN devices: dump, sync to exactly the set, link deletion", ok);
}

static int setup_services(void)
{
	const struct bspec v4[] = { { .ip = "192.0.2.11" }, { .ip = "192.0.2.12" } };
	const struct bspec v6[] = { { .ip = "2001:db8::11" }, { .ip = "2001:db8::12" } };
	const struct bspec far[] = { { .ip = "198.51.100.199" } };
	const struct bspec sick[] = { { .ip = "192.0.2.11" } };
	const struct bspec vl4[] = { { .ip = "198.18.0.11" } };
	const struct bspec vl6[] = { { .ip = "2001:db8:7::11" } };
	const struct bspec ad4[] = { { .ip = "198.18.1.11" } };
	struct ferry_xdcap_key dk = {};
	struct ferry_backend be;
	__u32 one = 1, id;
	int err, i;
	const char *dcaps[] = { "192.0.2.11", "192.0.2.12", "2001:db8::11", "2001:db8::12",
				"198.51.100.199", "198.18.0.11", "2001:db8:7::11", "198.18.1.11" };
	/* The decap strips only tunnels to VIPs bound on its node. */
	const char *vips[] = { V4VIP, V6VIP, "198.51.100.30", V4VLAN, V6VLAN, V4QINQ };

	if ((err = svc_set("tcp4", V4VIP, 80, IPPROTO_TCP, true, v4, 2)) ||
	    (err = svc_set("udp4", V4VIP, 53, IPPROTO_UDP, true, v4, 2)) ||
	    (err = svc_set("tcp6", V6VIP, 80, IPPROTO_TCP, true, v6, 2)) ||
	    (err = svc_set("udp6", V6VIP, 53, IPPROTO_UDP, true, v6, 2)) ||
	    (err = svc_set("sock-only", "198.51.100.20", 80, IPPROTO_TCP, false, v4, 2)) ||
	    (err = svc_set("far", "198.51.100.30", 80, IPPROTO_TCP, true, far, 1)) ||
	    (err = svc_set("sick", "198.51.100.31", 80, IPPROTO_TCP, true, sick, 1)) ||
	    (err = svc_set("vlan4", V4VLAN, 80, IPPROTO_TCP, true, vl4, 1)) ||
	    (err = svc_set("vlan4u", V4VLAN, 53, IPPROTO_UDP, true, vl4, 1)) ||
	    (err = svc_set("vlan6", V6VLAN, 80, IPPROTO_TCP, true, vl6, 1)) ||
	    (err = svc_set("vlan6u", V6VLAN, 53, IPPROTO_UDP, true, vl6, 1)) ||
	    (err = svc_set("qinq4", V4QINQ, 80, IPPROTO_TCP, true, ad4, 1)))
		return err;
	id = svc_backend("198.51.100.31", 80, IPPROTO_TCP, 0);
	if (bpf_map_lookup_elem(fm.be, &id, &be))
		return -errno;
	be.health = FERRY_HEALTH_UNHEALTHY;
	if (bpf_map_update_elem(fm.be, &id, &be, BPF_ANY))
		return -errno;
	for (i = 0; i < (int)(sizeof(dcaps) / sizeof(dcaps[0])); i++) {
		struct faddr a;

		faddr_parse(dcaps[i], &a);
		memcpy(dk.addr, a.a, 16);
		dk.family = a.family;
		if (bpf_map_update_elem(bpf_map__fd(dc->maps.ferry_xdcap_v1), &dk, &one, BPF_ANY))
			return -errno;
	}
	/* The VIPs as the node's addresses, where ferryd would record them;
	 * decap_derive() makes the VIP set and the pairs the program asks. */
	for (i = 0; i < (int)(sizeof(vips) / sizeof(vips[0])); i++) {
		struct faddr a;

		faddr_parse(vips[i], &a);
		memcpy(dk.addr, a.a, 16);
		dk.family = a.family;
		if (bpf_map_update_elem(bpf_map__fd(dc->maps.ferry_xdaddr_v1), &dk, &one, BPF_ANY))
			return -errno;
	}
	{
		struct decap_maps dm = {
			.svc = fm.svc, .addr = bpf_map__fd(dc->maps.ferry_xdaddr_v1),
			.outer = bpf_map__fd(dc->maps.ferry_xdcap_v1),
			.vip = bpf_map__fd(dc->maps.ferry_xdvip_v1),
			.pair = bpf_map__fd(dc->maps.ferry_xdpair_v1), .dirfd = -1,
		};
		struct decap_report dr;

		if ((err = decap_derive(&dm, &dr)))
			return err;
		if (dr.vips != sizeof(vips) / sizeof(vips[0]))
			return -EPROTO;
	}
	return 0;
}

/* ---- mutated packets ------------------------------------------------------ */

/*
 * Every row's packet, mutated at random (header bytes flipped or set to 0,
 * 0xff or anything, the frame cut short or given bytes more), through the
 * LB; and every tunnel packet the rows made, mutated the same way, through
 * the decap. Whatever arrives, each program may only:
 *   LB:    pass the frame untouched; drop it; send a tunnel (IPIP or IPv6)
 *          to a backend of the XDP service the datagram inside is for (its
 *          destination, or for an ICMP error the quoted source, and port),
 *          the datagram carried byte for byte under a sound outer header;
 *          or send an ICMP error from the VIP back to the sender;
 *   decap: pass the frame untouched; drop it; or pass the datagram the
 *          tunnel carried, byte for byte, behind the frame's own MACs.
 * Never XDP_ABORTED, never a frame to another service's backend. The
 * generator is seeded: the same packets every run.
 */
#define MUT_PER_ROW	400
#define MUT_HDR		128	/* where mutations land: the headers */

static __u64 mut_state = 0x243f6a8885a308d3ULL;

static __u32 mut_rand(void)
{
	mut_state ^= mut_state << 13;
	mut_state ^= mut_state >> 7;
	mut_state ^= mut_state << 17;
	return (__u32)(mut_state >> 11);
}

/* One to three mutations of frame b (*n bytes, room for cap). */
static void mutate(__u8 *b, size_t *n, size_t cap)
{
	int k = 1 + mut_rand() % 3;

	while (k-- && *n) {
		size_t at = mut_rand() % (*n < MUT_HDR ? *n : MUT_HDR);
		__u32 more;

		switch (mut_rand() % 8) {
		case 0: case 1: case 2:
			b[at] ^= 1 << (mut_rand() % 8);
			break;
		case 3:
			b[at] = 0;
			break;
		case 4:
			b[at] = 0xff;
			break;
		case 5:
			b[at] = mut_rand();
			break;
		case 6:		/* BPF_PROG_TEST_RUN takes no frame under ETH_HLEN */
			if (*n > ETH_HLEN)
				*n = ETH_HLEN + mut_rand() % (*n - ETH_HLEN);
			break;
		default:
			for (more = 1 + mut_rand() % 64; more-- && *n < cap;)
				b[(*n)++] = mut_rand();
		}
	}
}

/* The services and backends in the maps, read once. */
struct known {
	struct ferry_svc_key key[64];
	struct ferry_svc svc[64];
	int nsvc;
	__u32 be_id[256];
	struct ferry_backend be[256];
	int nbe;
};

static bool known_load(struct known *k)
{
	struct ferry_svc_key sk;
	__u32 id;

	k->nsvc = k->nbe = 0;
	while (k->nsvc < 64 &&
	       !bpf_map_get_next_key(fm.svc, k->nsvc ? &k->key[k->nsvc - 1] : NULL, &sk)) {
		k->key[k->nsvc] = sk;
		if (bpf_map_lookup_elem(fm.svc, &sk, &k->svc[k->nsvc]))
			return false;
		k->nsvc++;
	}
	while (k->nbe < 256 && !bpf_map_get_next_key(fm.be, k->nbe ? &k->be_id[k->nbe - 1] : NULL, &id)) {
		k->be_id[k->nbe] = id;
		if (bpf_map_lookup_elem(fm.be, &id, &k->be[k->nbe]))
			return false;
		k->nbe++;
	}
	return k->nsvc > 0 && k->nbe > 0;
}

/* The next backend at outer destination (af, addr) after index *i (start
 * at -1); NULL when no more. One address may serve several services. */
static const struct ferry_backend *known_be(const struct known *k, int af, const void *addr, int *i)
{
	while (++*i < k->nbe)
		if (k->be[*i].family == af && !memcmp(k->be[*i].addr, addr, af == AF_INET ? 4 : 16))
			return &k->be[*i];
	return NULL;
}

/* Is there an XDP service (af, addr, port, proto) with id svc_id? port < 0:
 * any port and protocol (a fragment that carries none). */
static bool known_vip(const struct known *k, __u32 svc_id, int af, const void *addr, int port,
		      int proto)
{
	int i;

	for (i = 0; i < k->nsvc; i++) {
		const struct ferry_svc_key *sk = &k->key[i];

		if (k->svc[i].id == svc_id && (k->svc[i].flags & FERRY_SVC_F_XDP) &&
		    sk->family == af && !memcmp(sk->addr, addr, af == AF_INET ? 4 : 16) &&
		    (port < 0 || (sk->port == htons(port) && sk->proto == proto)))
			return true;
	}
	return false;
}

/* Where the frame's L3 header starts, past up to two VLAN tags, and its
 * ethertype in *et; 0 if the frame ends first. */
static size_t l3_at(const __u8 *b, size_t n, __u16 *et)
{
	size_t off = 12;
	int tags;

	for (tags = 0; off + 2 <= n; tags++, off += 4) {
		*et = b[off] << 8 | b[off + 1];
		if ((*et != 0x8100 && *et != 0x88a8) || tags == 2)
			return off + 2;
	}
	return 0;
}

/* The IPv6 datagram p (n bytes): its upper-layer protocol past the extension
 * headers, at *off; *frag when a fragment header says it is not the first.
 * -1 if cut short. */
static int ip6_upper(const __u8 *p, size_t n, size_t *off, bool *frag)
{
	size_t o = 40;
	int nh = p[6], i;

	*frag = false;
	for (i = 0; i < 8 && (nh == 0 || nh == 43 || nh == 60 || nh == 44); i++) {
		if (o + 8 > n)
			return -1;
		if (nh == 44)
			*frag |= (p[o + 2] << 8 | p[o + 3]) >> 3 != 0;
		nh = p[o];
		o += nh == 44 ? 8 : (size_t)(p[o + 1] + 1) * 8;
	}
	*off = o;
	return nh;
}

/*
 * The datagram d (n bytes, family af) went to backend be: is it for be's
 * service? Its destination (or an ICMP error's quoted source) and port must
 * be an XDP VIP of that service.
 */
static bool inner_for(const struct known *k, const struct ferry_backend *be, int af,
		      const __u8 *d, size_t n)
{
	const __u8 *vip, *l4;
	size_t off;
	bool frag = false, icmp;
	int proto;

	if (af == AF_INET) {
		if (n < 20)
			return false;
		off = (d[0] & 15) * 4;
		proto = d[9];
		frag = ((d[6] << 8 | d[7]) & 0x1fff) != 0;
		vip = d + 16;
	} else {
		if (n < 40 || (proto = ip6_upper(d, n, &off, &frag)) < 0)
			return false;
		vip = d + 24;
	}
	if (frag)
		return known_vip(k, be->svc_id, af, vip, -1, 0);
	icmp = proto == (af == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
	if (icmp) {		/* the quoted datagram: from the VIP */
		const __u8 *q = d + off + 8;
		size_t qn = n > off + 8 ? n - off - 8 : 0, qoff;

		if (af == AF_INET) {
			if (qn < 20 || qn < (size_t)(q[0] & 15) * 4 + 4)
				return false;
			qoff = (q[0] & 15) * 4;
			proto = q[9];
			vip = q + 12;
		} else {
			bool qfrag;

			if (qn < 40 || (proto = ip6_upper(q, qn, &qoff, &qfrag)) < 0 || qn < qoff + 4)
				return false;
			vip = q + 8;
		}
		l4 = q + qoff;		/* the VIP's port: the quote's source port */
		return known_vip(k, be->svc_id, af, vip, l4[0] << 8 | l4[1], proto);
	}
	if (n < off + 4)
		return false;
	l4 = d + off;
	return known_vip(k, be->svc_id, af, vip, l4[2] << 8 | l4[3], proto);
}

/* The ICMP (v4) or ICMPv6 message after IP header ip (n bytes of datagram)
 * carries a correct checksum; ICMPv6's covers the pseudo-header. */
static bool icmp_csum_ok(int af, const __u8 *ip, size_t n)
{
	size_t hl = af == AF_INET ? (size_t)(ip[0] & 15) * 4 : 40, i;
	__u32 sum = 0;

	if (n < hl + 8)
		return false;
	if (af == AF_INET6) {
		for (i = 8; i < 40; i += 2)	/* the addresses */
			sum += ip[i] << 8 | ip[i + 1];
		sum += n - hl + IPPROTO_ICMPV6;
	}
	return csum16(ip + hl, n - hl, sum) == 0;
}

/* An IP datagram's length by its own header: IPv4's total length, or the
 * IPv6 header and its payload length. */
static size_t ip_dgram_len(const __u8 *ip, bool v4)
{
	return v4 ? (size_t)(ip[2] << 8 | ip[3]) : 40 + (size_t)(ip[4] << 8 | ip[5]);
}

/* A frame the LB sent out for in (its L3 at il3, family iaf): a tunnel to a
 * backend of the right service, or an ICMP error back to the sender. */
static bool lb_out_sound(const struct known *k, const __u8 *in, size_t inlen, size_t il3,
			 const __u8 *out, size_t outlen, const char **why)
{
	const struct ferry_backend *be;
	size_t l3, ol3;
	__u16 et = 0;
	int oaf, iproto, bi = -1;
	const __u8 *dst;
	const __u8 *o, *inner;
	size_t ilen;

	*why = "no L3 header";
	if (!(l3 = l3_at(out, outlen, &et)) || (et != 0x0800 && et != 0x86dd))
		return false;
	o = out + l3;
	oaf = et == 0x0800 ? AF_INET : AF_INET6;
	*why = "outer header cut";
	if (outlen < l3 + (oaf == AF_INET ? 20 : 40))
		return false;
	if (oaf == AF_INET) {
		ol3 = 20;
		iproto = o[9];
		*why = "outer IPv4 checksum";
		if (csum16(o, 20, 0))
			return false;
		dst = o + 16;
	} else {
		ol3 = 40;
		iproto = o[6];
		dst = o + 24;
	}
	/* An ICMP error back to the sender (the datagram too big): from the
	 * address it was sent to, to the one it came from. */
	if (iproto == (oaf == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6)) {
		*why = "ICMP, but not from the VIP to the sender";
		if (oaf == AF_INET ? memcmp(o + 12, in + il3 + 16, 4) || memcmp(o + 16, in + il3 + 12, 4) :
				     memcmp(o + 8, in + il3 + 24, 16) || memcmp(o + 24, in + il3 + 8, 16))
			return false;
		*why = "ICMP checksum";
		return icmp_csum_ok(oaf, o, outlen - l3);
	}
	*why = "neither a tunnel to a backend nor an ICMP error";
	if (!(be = known_be(k, oaf, dst, &bi)))
		return false;
	*why = "tunnel protocol";
	if (iproto != IPPROTO_IPIP && iproto != IPPROTO_IPV6)
		return false;
	inner = o + ol3;
	ilen = outlen - l3 - ol3;
	*why = "inner datagram not the one received";
	if (ilen > inlen - il3 || memcmp(inner, in + il3, ilen))
		return false;
	/* All of it: the frame after L2, or the datagram by its IP length
	 * where the tail past it was cut to fit the MTU. */
	*why = "inner datagram cut short";
	if (ilen != inlen - il3) {
		size_t dgram = ip_dgram_len(in + il3, iproto == IPPROTO_IPIP);

		if (ilen < (iproto == IPPROTO_IPIP ? 20u : 40u) || ilen != dgram)
			return false;
	}
	*why = "tunnel to a backend of another service";
	for (; be; be = known_be(k, oaf, dst, &bi))
		if (inner_for(k, be, iproto == IPPROTO_IPIP ? AF_INET : AF_INET6, inner, ilen))
			return true;
	return false;
}

/* A frame the decap passed changed: the MACs kept, then the datagram the
 * tunnel in carried, byte for byte: all that followed the outer header, or
 * the datagram by its own IP length (the frame's padding cut). */
static bool decap_out_sound(const __u8 *in, size_t inlen, const __u8 *out, size_t outlen)
{
	size_t l3 = 0, o, n, dgram;
	__u16 et = 0;

	if (outlen < 14 || memcmp(out, in, 12) || !(l3 = l3_at(out, outlen, &et)))
		return false;
	n = outlen - l3;
	if (n < 20)
		return false;
	dgram = ip_dgram_len(out + l3, et == 0x0800);
	for (o = l3 + 20; o <= inlen && o - l3 <= 60 + 40; o++)
		if (inlen - o >= n && !memcmp(out + l3, in + o, n))
			return n == inlen - o || n == dgram;
	return false;
}

static void test_mutations(void)
{
	static __u8 tunnels[sizeof(rows) / sizeof(rows[0])][512];
	static size_t tunlen[sizeof(rows) / sizeof(rows[0])];
	struct known k;
	size_t i, ntun = 0, runs = 0, sent = 0, decapped = 0;
	bool ok = true, dok = true;
	int m;

	if (!ASSERT_TRUE(known_load(&k), "services and backends read")) {
		verdict("xdp mutated packets: only sound verdicts", false);
		return;
	}
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]) && ok; i++) {
		const struct row *r = &rows[i];
		__u8 orig[2048], in[2048], out[2048];
		size_t olen, l3, inlen;
		__u32 outlen, act;

		olen = build(&r->in, orig, &l3);
		/* the row's own output: a tunnel the decap gets mutated below */
		outlen = sizeof(out);
		if (r->out == OUT_ENCAP && !run_on(lb_fd(), r->on_xdt0 ? lb_ifindex : 0, orig, olen,
						  out, &outlen, &act) && outlen <= sizeof(tunnels[0])) {
			memcpy(tunnels[ntun], out, outlen);
			tunlen[ntun++] = outlen;
		}
		for (m = 0; m < MUT_PER_ROW && ok; m++) {
			__u16 et = 0;
			const char *why = "";
			size_t il3;

			memcpy(in, orig, olen);
			inlen = olen;
			mutate(in, &inlen, sizeof(in) - 64);
			outlen = sizeof(out);
			ok &= ASSERT_EQ(run_on(lb_fd(), r->on_xdt0 ? lb_ifindex : 0, in, inlen, out,
					       &outlen, &act), 0, "test run");
			runs++;
			if (!ok)
				break;
			if (act == XDP_PASS) {
				ok &= ASSERT_TRUE(outlen == inlen && !memcmp(in, out, inlen),
						  "row '%s', mutation %d: passed, but changed", r->desc, m);
			} else if (act == XDP_TX || act == XDP_REDIRECT) {
				sent++;
				il3 = l3_at(in, inlen, &et);
				ok &= ASSERT_TRUE(il3 && lb_out_sound(&k, in, inlen, il3, out, outlen, &why),
						  "row '%s', mutation %d: sent out: %s", r->desc, m, why);
			} else {
				ok &= ASSERT_EQ(act, XDP_DROP, "row '%s', mutation %d: action", r->desc, m);
			}
		}
	}
	printf("  %zu mutated frames through the LB, %zu sent out\n", runs, sent);
	/* The seed is fixed: some frames must get through, or this showed nothing. */
	verdict("xdp mutated packets: the LB passes untouched, drops, or sends to the right service",
		ok && sent > 0);

	runs = 0;
	for (i = 0; i < ntun && dok; i++) {
		for (m = 0; m < MUT_PER_ROW && dok; m++) {
			__u8 in[1024], out[1024];
			size_t inlen = tunlen[i];
			__u32 outlen = sizeof(out), act;

			memcpy(in, tunnels[i], inlen);
			mutate(in, &inlen, sizeof(in));
			dok &= ASSERT_EQ(run(dc_fd(), in, inlen, out, &outlen, &act), 0, "test run");
			runs++;
			if (!dok)
				break;
			if (act == XDP_PASS && !(outlen == inlen && !memcmp(in, out, inlen))) {
				decapped++;
				dok &= ASSERT_TRUE(decap_out_sound(in, inlen, out, outlen),
						   "tunnel %zu, mutation %d: passed changed, not the carried datagram",
						   i, m);
			} else if (act != XDP_PASS) {
				dok &= ASSERT_EQ(act, XDP_DROP, "tunnel %zu, mutation %d: action", i, m);
			}
		}
	}
	printf("  %zu mutated tunnel frames through the decap, %zu decapsulated\n", runs, decapped);
	verdict("xdp mutated tunnels: the decap passes untouched, drops, or passes the carried datagram",
		dok && decapped > 0);
}

int main(void)
{
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid()) {
		printf("SKIP test_bpf_xdp: needs root\n");
		return 0;
	}
	if ((err = net_setup())) {	/* as root this must work: a failure, not a skip */
		printf("FAIL test_bpf_xdp: cannot build its network namespace: %s\n", strerror(-err));
		return 1;
	}
	on_cpu(0);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	err = load();
	if (err) {
		printf("FAIL xdp programs load: %s\n", strerror(-err));
		cleanup();
		return 1;
	}
	verdict("xdp programs load and pass the verifier", true);
	err = setup_services();
	verdict("xdp services planned and applied through reconcile (rings built)", !err);
	if (err) {
		cleanup();
		return 1;
	}
	test_xvlan_sync();	/* first: the rows show it kept the VLAN devices */
	test_rows();
	test_decap_rows();
	test_weights();
	test_stickiness_and_draining();
	test_flow_table();
	test_icmp_follows_flow(4);
	test_icmp_follows_flow(6);
	test_unusable();
	test_fallback();
	test_circuit_states();
	test_other_cpu();
	test_id_reuse();
	test_local_backend();
	test_ring_size_change();
	test_counters();
	test_counter_deltas();
	test_unsized_cpu();
	test_unsized_counters();
	test_geometry();
	test_vip_index();
	test_vip_filter();
	test_mutations();	/* last: its flows fill the table */
	cleanup();
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail ? 1 : 0;
}
