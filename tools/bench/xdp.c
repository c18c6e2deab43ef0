// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The XDP load balancer benchmark (tools/bench/xdp.sh).
 *
 *   xdp-ns:   ns per packet under BPF_PROG_TEST_RUN, repeat=1 per call over
 *             --calls calls, taking the kernel's own per-run duration (no
 *             syscall cost), minus a program that only returns XDP_PASS
 *             measured the same way in the same run. The backend side's
 *             decap too: an IPIP packet to the node carrying one to a local
 *             XDP VIP (stripped, XDP_PASS), and a plain packet to the node
 *             (not a tunnel, XDP_PASS untouched). And SYNs of new flows in
 *             a partial outage (OUTAGE_VIP: 62 of 64 backends UNHEALTHY, 2
 *             DEGRADED), most of which take the ring fallback. --case syn|
 *             hit|flows|nonvip|decap|decap_pass|outage measures that case
 *             alone (after the same warm-up), for quick A/B runs of a
 *             change, and adds the 10th percentile: on a host whose
 *             neighbours come and go, the low end of the distribution moves
 *             least between runs.
 *             repeat > 1 would run the program again on the packet it just
 *             rewrote (encapsulated), so every call starts from the
 *             original frame instead.
 *   xdp-veth: Mpps through a veth pair, generator, LB and sink on one CPU:
 *             an AF_PACKET socket bound to vg (PACKET_QDISC_BYPASS, 64
 *             frames per sendmmsg()) transmits one established flow's frame,
 *             veth hands it to vl's NAPI where the LB (native XDP)
 *             encapsulates and XDP_TXes it back, and a counting XDP_DROP
 *             program on vg is the sink. Mpps = frames sunk / wall time, and
 *             frames sent vs sunk are reported so losses show. The ceiling is
 *             the same with a program that only bounces frames; the two
 *             alternate over five rounds and the median round of each
 *             counts. The socket replaces a generator program run with
 *             BPF_F_TEST_XDP_LIVE_FRAMES,
 *             which returns EPERM on the kernel this runs on (6.18 as a PVM
 *             guest, for any program); a PACKET_TX_RING measured slower than
 *             sendmmsg(). The socket's own cost (syscall, skb, the copy veth
 *             makes for XDP) is on the same CPU, so both figures include it
 *             and the ratio understates the LB's own share.
 *
 * Both run in a network namespace of their own (unshare) with a veth, static
 * neighbours and forwarding on, so bpf_fib_lookup answers; maps are pinned
 * under --pin and removed at the end.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ferry/xdp.h>

#include "bench.h"
#include "maps.h"
#include "reconcile.h"
#include "registry.h"
#include "state.h"
#include "xdp_lb.skel.h"
#include "xdp_decap.skel.h"
#include "xdp_bench.skel.h"

#define VIP	"198.51.100.10"
#define NODE	"192.0.2.2"	/* vl's address: the decap's outer destination */

struct world {
	char	pin[256];
	struct xdp_lb_bpf *lb;
	struct xdp_bench_bpf *ref;
	struct xdp_decap_bpf *dc;
	struct ferry_maps fm;
};

static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd) ? -EIO : 0;
}

static void pin_cpu(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	sched_setaffinity(0, sizeof(s), &s);
}

/*
 * Own netns: veth vg <-> vl, vl 192.0.2.2/24 with the backends as static
 * neighbours. IPv6 off (where the kernel has it): the stack's own router
 * solicitations and MLD reports on vg and vl would reach the veth sink and
 * count as frames.
 */
static int net_setup(void)
{
	if (unshare(CLONE_NEWNET))
		return -errno;
	return sh("{ sysctl -qw net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true; } && "
		  "ip link set lo up && ip link add vg type veth peer name vl && "
		  "ip link set vg address 02:00:00:00:00:01 && ip link set vl address 02:00:00:00:00:02 && "
		  "ip addr add 192.0.2.2/24 dev vl && ip link set vg up && ip link set vl up && "
		  "ip neigh replace 192.0.2.11 lladdr 02:00:00:00:00:11 dev vl nud permanent && "
		  "ip neigh replace 192.0.2.12 lladdr 02:00:00:00:00:12 dev vl nud permanent && "
		  "sysctl -qw net.ipv4.conf.all.forwarding=1");
}

/* XDP service name at vip:80/TCP with backends rb[n], as ferryd would write it. */
static int bench_service(struct world *w, const char *name, const char *vip, struct reg_backend *rb,
			 int n)
{
	struct plan_opts po = { .owner = FERRY_SVC_F_MANUAL };
	struct reg_service want = {};
	char err[256] = "";
	struct fstate st;
	struct plan p;
	int ret;

	snprintf(want.name, sizeof(want.name), "%s", name);
	inet_pton(AF_INET, vip, want.key.addr);
	want.key.family = AF_INET;
	want.key.port = htons(80);
	want.key.proto = IPPROTO_TCP;
	want.xdp = true;
	circuit_defaults(&want.circuit);
	want.backends = rb;
	want.nbackends = n;
	/* As every writer: the lock from the read to the last write. */
	if ((ret = maps_lock(&w->fm, -1)))
		return bench_err("lock", w->pin, ret);
	if ((ret = fstate_load(&w->fm, &st))) {
		maps_unlock(&w->fm);
		return bench_err("read state", w->pin, ret);
	}
	plan_init(&p);
	ret = plan_service(&p, &st, NULL, &want, &po, err, sizeof(err));
	if (!ret)
		ret = plan_apply(&w->fm, &p, err, sizeof(err));
	maps_unlock(&w->fm);
	plan_free(&p);
	fstate_free(&st);
	return ret ? bench_err(err, "plan", ret) : 0;
}

/*
 * The outage case's service, at OUTAGE_VIP: OUTAGE_N backends, all but two
 * UNHEALTHY and those two (the static neighbours) DEGRADED, as the health
 * checker would mark them in a partial outage. Most new flows meet only
 * UNHEALTHY ones in their ring tries and take the fallback.
 */
#define OUTAGE_VIP	"198.51.100.20"
#define OUTAGE_N	64

static int outage_up(struct world *w)
{
	struct reg_backend rb[OUTAGE_N] = {};
	struct ferry_backend *bes = NULL;
	__u32 *keys = NULL;
	size_t n = 0, k;
	char ip[32];
	int ret, i, marked = 0;

	for (i = 0; i < OUTAGE_N; i++) {
		snprintf(ip, sizeof(ip), "192.0.2.%d", i < 2 ? 11 + i : 18 + i);
		faddr_parse(ip, &rb[i].addr);
		rb[i].port = 8080;
		rb[i].weight = 1;
	}
	if ((ret = bench_service(w, "bench/outage", OUTAGE_VIP, rb, OUTAGE_N)))
		return ret;
	/* The entries first, then the updates: an update moves its element to
	 * the head of its bucket, so a walk that updated as it went could
	 * revisit keys forever. Read-modify-writes: under the lock. */
	if ((ret = maps_lock(&w->fm, -1)))
		return bench_err("lock", w->pin, ret);
	if ((ret = map_dump(w->fm.be, sizeof(*keys), sizeof(*bes), (void **)&keys, (void **)&bes, &n))) {
		maps_unlock(&w->fm);
		return bench_err("read", FERRY_MAP_BACKEND, ret);
	}
	for (k = 0; k < n && !ret; k++) {
		if (ntohs(bes[k].port) != 8080)
			continue;
		i = ntohl(bes[k].addr[0]) & 0xff;
		bes[k].health = i == 11 || i == 12 ? FERRY_HEALTH_DEGRADED : FERRY_HEALTH_UNHEALTHY;
		if (bpf_map_update_elem(w->fm.be, &keys[k], &bes[k], BPF_EXIST))
			ret = bench_err("write", FERRY_MAP_BACKEND, -errno);
		marked++;
	}
	maps_unlock(&w->fm);
	free(keys);
	free(bes);
	if (ret)
		return ret;
	return marked == OUTAGE_N ? 0 : bench_err("mark health", FERRY_MAP_BACKEND, -ENOENT);
}

static int world_up(struct world *w, const char *pin, __u32 flows)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	struct ferry_xcfg xc = { .ring_size = FERRY_XDP_DEF_RING_M };
	struct reg_backend rb[2] = {};
	const char *which = NULL;
	__u32 zero = 0;
	int ret, i;

	snprintf(w->pin, sizeof(w->pin), "%s", pin);
	if ((ret = bpffs_prepare(w->pin)))
		return bench_err("bpffs", w->pin, ret);
	oo.pin_root_path = w->pin;
	w->lb = xdp_lb_bpf__open_opts(&oo);
	w->ref = xdp_bench_bpf__open();
	if (!w->lb || !w->ref)
		return bench_err("open", "xdp_lb", -errno);
	bpf_map__set_max_entries(w->lb->maps.ferry_xflow_v3, flows / FERRY_XFLOW_WAYS);
	bpf_map__set_max_entries(w->lb->maps.ferry_xclient_v1, flows / FERRY_XFLOW_WAYS);
	if ((ret = ferry_xdp_size(w->lb->obj, FERRY_DEF_MAX_SERVICES, FERRY_DEF_MAX_BACKENDS)))
		return bench_err("size", "xdp_lb", ret);
	if ((ret = xdp_lb_bpf__load(w->lb)) || (ret = xdp_bench_bpf__load(w->ref)))
		return bench_err("load", "xdp_lb/xdp_bench", ret);
	if ((ret = ferry_maps_open(w->pin, &w->fm, &which)))
		return bench_err("open pinned map", which, ret);
	inet_pton(AF_INET, "203.0.113.0", &xc.src4);
	xc.src4_mask = htonl(0xffffff00);
	/* Under the lock, as ferryd's load writes it (plan_apply() bumps its
	 * epoch by a read-modify-write of the whole value). */
	if ((ret = maps_lock(&w->fm, -1)))
		return bench_err("lock", w->pin, ret);
	ret = bpf_map_update_elem(w->fm.xcfg, &zero, &xc, BPF_ANY) ? -errno : 0;
	maps_unlock(&w->fm);
	if (ret)
		return bench_err("write", FERRY_MAP_XCFG, ret);

	for (i = 0; i < 2; i++) {
		faddr_parse(i ? "192.0.2.12" : "192.0.2.11", &rb[i].addr);
		rb[i].port = 80;
		rb[i].weight = 1;
	}
	if ((ret = bench_service(w, "bench/xdp", VIP, rb, 2)) || (ret = outage_up(w)))
		return ret;

	/* The backend side, in the same pin dir (it shares the counters and
	 * the services): the node's address as its outer one and the VIP
	 * bound, recorded as ferryd would; decap_derive() makes the VIP set
	 * and the pairs the program asks, as on a node. */
	w->dc = xdp_decap_bpf__open_opts(&oo);
	if (!w->dc)
		return bench_err("open", "xdp_decap", -errno);
	if ((ret = ferry_xdp_size(w->dc->obj, FERRY_DEF_MAX_SERVICES, FERRY_DEF_MAX_BACKENDS)) ||
	    (ret = xdp_decap_bpf__load(w->dc)))
		return bench_err("load", "xdp_decap", ret);
	{
		/* dirfd -1: the lock is held here, as ferryd's decap sync holds it. */
		struct decap_maps dm = {
			.svc = w->fm.svc, .addr = bpf_map__fd(w->dc->maps.ferry_xdaddr_v1),
			.outer = bpf_map__fd(w->dc->maps.ferry_xdcap_v1),
			.vip = bpf_map__fd(w->dc->maps.ferry_xdvip_v1),
			.pair = bpf_map__fd(w->dc->maps.ferry_xdpair_v1), .dirfd = -1,
		};
		struct ferry_xdcap_key k = { .family = AF_INET };
		struct decap_report dr;
		const char *verb = "write", *what = FERRY_MAP_XDCAP;
		__u32 one = 1;

		if ((ret = maps_lock(&w->fm, -1)))
			return bench_err("lock", w->pin, ret);
		inet_pton(AF_INET, NODE, k.addr);
		if (bpf_map_update_elem(dm.outer, &k, &one, BPF_ANY) ||
		    bpf_map_update_elem(dm.addr, &k, &one, BPF_ANY))
			ret = -errno;
		inet_pton(AF_INET, VIP, k.addr);
		if (!ret && bpf_map_update_elem(dm.addr, &k, &one, BPF_ANY)) {
			ret = -errno;
			what = FERRY_MAP_XDADDR;
		}
		if (!ret) {
			verb = "derive";
			what = FERRY_MAP_XDPAIR;
			if (!(ret = decap_derive(&dm, &dr)) && dr.pairs != 1)
				ret = -EPROTO;
		}
		maps_unlock(&w->fm);
		if (ret)
			return bench_err(verb, what, ret);
	}
	return 0;
}

static void world_down(struct world *w)
{
	ferry_maps_close(&w->fm);
	xdp_lb_bpf__destroy(w->lb);
	xdp_bench_bpf__destroy(w->ref);
	xdp_decap_bpf__destroy(w->dc);
	if (w->pin[0] && !getenv("FERRY_BENCH_KEEP_PIN"))
		sh("rm -rf '%s'", w->pin);
}

/* The header checksum of the IPv4 header at ip (20 bytes, no options). */
static void ip4_csum(__u8 *ip)
{
	__u32 sum = 0;
	int k;

	ip[10] = ip[11] = 0;
	for (k = 0; k < 20; k += 2)
		sum += ip[k] << 8 | ip[k + 1];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip[10] = ~sum >> 8;
	ip[11] = ~sum & 0xff;
}

/* Ethernet + IPv4 + TCP (20) frame of 64 bytes, client 192.0.2.100 + (i>>16), port i. */
static size_t frame(__u8 *b, const char *dst, __u32 i, __u8 flags)
{
	__u8 *ip = b + 14, *tcp = b + 34;
	__u32 src;

	memset(b, 0, 64);
	memcpy(b, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00", 14);
	ip[0] = 0x45;
	ip[3] = 50;			/* 20 + 20 + 10 */
	ip[6] = 0x40;			/* DF */
	ip[8] = 64;
	ip[9] = IPPROTO_TCP;
	src = htonl(0xc0000264 + (i >> 16));	/* 192.0.2.100 + */
	memcpy(ip + 12, &src, 4);
	inet_pton(AF_INET, dst, ip + 16);
	ip4_csum(ip);
	tcp[0] = (1024 + (i & 0xffff) % 64000) >> 8;
	tcp[1] = (1024 + (i & 0xffff) % 64000) & 0xff;
	tcp[3] = 80;
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	return 64;
}

/* The frame of frame(), inside an outer IPv4 header (IPIP) from 203.0.113.1 to outer. */
static size_t tunnel_frame(__u8 *b, const char *outer, const char *dst, __u32 i, __u8 flags)
{
	__u8 inner[64], *ip = b + 14;
	size_t len = frame(inner, dst, i, flags);

	memcpy(b, inner, 14);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[2] = (20 + len - 14) >> 8;
	ip[3] = (20 + len - 14) & 0xff;
	ip[8] = 64;
	ip[9] = IPPROTO_IPIP;
	inet_pton(AF_INET, "203.0.113.1", ip + 12);
	inet_pton(AF_INET, outer, ip + 16);
	ip4_csum(ip);
	memcpy(ip + 20, inner + 14, len - 14);
	return len + 20;
}

struct result {
	double	mean, median;	/* net of the XDP_PASS program */
	double	p10;		/* 10th percentile, net of XDP_PASS's */
	double	pass_mean, pass_median;
};

static int cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

static int run1(int fd, __u8 *buf, size_t len, __u32 *ns)
{
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = buf, .data_size_in = len, .repeat = 1);

	if (bpf_prog_test_run_opts(fd, &t))
		return -errno;
	*ns = t.duration;
	return 0;
}

/*
 * Kernel-measured ns of one run (repeat=1 per call) over calls calls, frame i
 * from flow i (or i % nflows; flow 0 for all when !vary). Each call of the
 * program under test follows a call of the XDP_PASS program on the same
 * frame, so both see the same machine; the result is the difference. The
 * mean is what was asked for; the median shrugs off the runs that another
 * task or an interrupt preempted on a shared machine.
 */
static int measure(int pass_fd, int prog_fd, const char *outer, const char *dst, __u32 calls,
		   __u32 nflows, __u8 flags, bool vary, struct result *r)
{
	__u32 *d = malloc(calls * sizeof(*d)), *b = malloc(calls * sizeof(*b)), i;
	__u64 total = 0, btotal = 0;
	__u8 buf[128];
	int err = 0;

	if (!d || !b) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < calls; i++) {
		__u32 f = vary ? (nflows ? i % nflows : i) : 0;
		size_t len = outer ? tunnel_frame(buf, outer, dst, f, flags) : frame(buf, dst, f, flags);

		if ((err = run1(pass_fd, buf, len, &b[i])) || (err = run1(prog_fd, buf, len, &d[i])))
			goto out;
		total += d[i];
		btotal += b[i];
	}
	qsort(d, calls, sizeof(*d), cmp_u32);
	qsort(b, calls, sizeof(*b), cmp_u32);
	r->pass_mean = (double)btotal / calls;
	r->pass_median = b[calls / 2];
	r->mean = (double)total / calls - r->pass_mean;
	r->median = (double)d[calls / 2] - r->pass_median;
	r->p10 = (double)d[calls / 10] - b[calls / 10];
out:
	free(d);
	free(b);
	return err;
}

int do_xdp_ns(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pin", required_argument, NULL, 'p' },
		{ "calls", required_argument, NULL, 'n' },
		{ "case", required_argument, NULL, 'c' },
		{ "flows", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cases[] = { "syn", "hit", "flows", "nonvip", "decap", "decap_pass",
					     "outage" };
	unsigned long calls = 1000000, flows = FERRY_XDP_DEF_FLOWS;
	const char *pin = NULL, *only = NULL;
	struct world w = {};
	struct result syn = {}, hit = {}, many = {}, miss = {}, dcap = {}, dpass = {}, out = {}, tmp;
	struct result *r = NULL;
	__u64 before[FERRY_XSTAT_MAX] = {}, after[FERRY_XSTAT_MAX] = {};
	int o, fd, dfd, pfd, ret = 1, c = -1, i;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'p')
			pin = optarg;
		else if (o == 'c')
			only = optarg;
		else if (o == 'f') {
			if (bench_ulong("xdp-ns", "--flows", optarg, 1024, FERRY_XDP_MAX_FLOWS, &flows))
				return bench_usage("xdp-ns", "bad option");
		} else if (o != 'n' || bench_ulong("xdp-ns", "--calls", optarg, 1000, 100000000, &calls))
			return bench_usage("xdp-ns", "bad option");
	}
	if (!pin)
		return bench_usage("xdp-ns", "--pin DIR is required");
	for (i = 0; only && i < 7; i++)
		if (!strcmp(only, cases[i]))
			c = i;
	if (only && c < 0)
		return bench_usage("xdp-ns", "--case is one of syn, hit, flows, nonvip, decap, decap_pass, outage");
	if (net_setup())
		return bench_err("network namespace", "vg/vl", -EIO);
	pin_cpu(0);
	if (world_up(&w, pin, flows))
		goto out;
	fd = bpf_program__fd(w.lb->progs.ferry_xdp_lb);
	dfd = bpf_program__fd(w.dc->progs.ferry_xdp_decap);
	pfd = bpf_program__fd(w.ref->progs.bench_pass);
	/* Warm the next-hop cache; 100k flows into the table. SYNs last: their
	 * million new flows evict the 100k established ones. */
	if (measure(pfd, fd, NULL, VIP, 100000, 100000, 0x02, true, &tmp) ||
	    (c < 0 || c == 1 ? measure(pfd, fd, NULL, VIP, calls, 0, 0x10, false, r = &hit) : 0) ||
	    (c < 0 || c == 2 ? measure(pfd, fd, NULL, VIP, calls, 100000, 0x10, true, r = &many) : 0) ||
	    (c < 0 || c == 3 ? measure(pfd, fd, NULL, "198.51.100.99", calls, 0, 0x10, false, r = &miss) : 0) ||
	    (c < 0 || c == 0 ? measure(pfd, fd, NULL, VIP, calls, 0, 0x02, true, r = &syn) : 0)) {
		bench_err("BPF_PROG_TEST_RUN", "ferry_xdp_lb", -errno);
		goto out;
	}
	/* The decap, one established flow's packets: tunnelled, and plain. */
	if ((c < 0 || c == 4 ? measure(pfd, dfd, NODE, VIP, calls, 0, 0x10, false, r = &dcap) : 0) ||
	    (c < 0 || c == 5 ? measure(pfd, dfd, NULL, NODE, calls, 0, 0x10, false, r = &dpass) : 0)) {
		bench_err("BPF_PROG_TEST_RUN", "ferry_xdp_decap", -errno);
		goto out;
	}
	/* New flows in a partial outage, a tenth of the calls in a full run
	 * (each costs the fallback); a figure for the path it names: the
	 * fallback placed flows, and none was dropped. */
	if (c < 0 || c == 6) {
		int xfd = bpf_map__fd(w.lb->maps.ferry_xstat_v2);

		if (xstat_sum(xfd, before) ||
		    measure(pfd, fd, NULL, OUTAGE_VIP, c < 0 ? calls / 10 : calls, 0, 0x02, true, r = &out) ||
		    xstat_sum(xfd, after)) {
			bench_err("BPF_PROG_TEST_RUN", "ferry_xdp_lb (outage)", -errno);
			goto out;
		}
		if (after[FERRY_XSTAT_RING_FALLBACK] == before[FERRY_XSTAT_RING_FALLBACK] ||
		    after[FERRY_XSTAT_DROP_NO_BACKEND] != before[FERRY_XSTAT_DROP_NO_BACKEND]) {
			bench_err("the outage's new flows did not take the fallback, or were dropped",
				  "ferry_xdp_lb", -EPROTO);
			goto out;
		}
		fprintf(stderr, "outage: %llu of %lu new flows placed by the fallback\n",
			(unsigned long long)(after[FERRY_XSTAT_RING_FALLBACK] - before[FERRY_XSTAT_RING_FALLBACK]),
			c < 0 ? calls / 10 : calls);
	}
	if (c < 0 || c == 4) {
		__u64 sum[FERRY_XSTAT_MAX] = {};

		/* A figure for the path it names: every tunnel was stripped. */
		if (xstat_sum(bpf_map__fd(w.dc->maps.ferry_xstat_v2), sum) || sum[FERRY_XSTAT_DECAP_OK] < calls) {
			bench_err("the decap did not strip every tunnel", "ferry_xdp_decap", -EPROTO);
			goto out;
		}
	}
	if (c >= 0) {
		/* One case (quick A/B runs): its figures and the XDP_PASS baseline. */
		printf("{\"calls\": %lu, \"case\": \"%s\", \"ns\": %.1f, \"median_ns\": %.0f, "
		       "\"pass_ns\": %.1f, \"pass_median_ns\": %.0f, \"p10_ns\": %.0f}\n", calls, only, r->mean,
		       r->median, r->pass_mean, r->pass_median, r->p10);
		ret = 0;
		goto out;
	}
	printf("{\"calls\": %lu, \"pass_ns\": %.1f, \"syn_new_flow_ns\": %.1f, \"lru_hit_ns\": %.1f, "
	       "\"flows_100k_ns\": %.1f, \"non_vip_ns\": %.1f, \"pass_median_ns\": %.0f, "
	       "\"syn_new_flow_median_ns\": %.0f, \"lru_hit_median_ns\": %.0f, "
	       "\"flows_100k_median_ns\": %.0f, \"non_vip_median_ns\": %.0f, \"decap_ns\": %.1f, "
	       "\"decap_median_ns\": %.0f, \"decap_pass_ns\": %.1f, \"decap_pass_median_ns\": %.0f, "
	       "\"outage_ns\": %.1f, \"outage_median_ns\": %.0f}\n",
	       calls, hit.pass_mean, syn.mean, hit.mean, many.mean, miss.mean, hit.pass_median,
	       syn.median, hit.median, many.median, miss.median, dcap.mean, dcap.median, dpass.mean,
	       dpass.median, out.mean, out.median);
	ret = 0;
out:
	world_down(&w);
	return ret;
}

#define VETH_BATCH	64	/* frames per sendmmsg() */
#define VETH_WARM	10000	/* warm-up frames before each timed run */
#define VETH_ROUNDS	5	/* LB and ceiling runs, alternated */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Frames the sink has counted, summed over CPUs (0 if unreadable). */
static __u64 veth_sunk(int cfd)
{
	__u64 sum;

	return percpu_sum(cfd, 0, &sum) ? 0 : sum;
}

/*
 * Send frames copies of buf out of the AF_PACKET socket fd, VETH_BATCH per
 * sendmmsg(); *sent counts those vg's xmit accepted. With PACKET_QDISC_BYPASS
 * there is no qdisc to hold a frame the driver refuses (its queue stopped):
 * the call fails with ENOBUFS. Then give the CPU to ksoftirqd and try again,
 * a bounded number of times in a row. (Not seen here: the softirq that
 * runs when the xmit re-enables BHs empties vl's ring frame by frame.)
 */
static int veth_send(int fd, __u8 *buf, __u64 frames, __u64 *sent)
{
	struct iovec iov = { .iov_base = buf, .iov_len = 64 };
	struct mmsghdr m[VETH_BATCH] = {};
	unsigned busy = 0;
	int i, n;

	for (i = 0; i < VETH_BATCH; i++) {
		m[i].msg_hdr.msg_iov = &iov;
		m[i].msg_hdr.msg_iovlen = 1;
	}
	*sent = 0;
	while (*sent < frames) {
		n = frames - *sent < VETH_BATCH ? frames - *sent : VETH_BATCH;
		if ((n = sendmmsg(fd, m, n, 0)) > 0) {
			*sent += n;
			busy = 0;
			continue;
		}
		if (n < 0 && (errno == ENOBUFS || errno == EAGAIN) && ++busy < 10000) {
			sched_yield();
			continue;
		}
		return n < 0 ? -errno : -EIO;
	}
	return 0;
}

/*
 * The frames still in flight after the last send (a NAPI poll deferred to
 * ksoftirqd): poll the sink every millisecond until its count stops moving,
 * at most 100 polls. Returns the count; *t (if t) moves to the last poll that
 * saw it grow, so the final, quiet poll is not timed.
 */
static __u64 veth_drain(int cfd, double *t)
{
	__u64 c = veth_sunk(cfd), n;
	int i;

	for (i = 0; i < 100; i++) {
		usleep(1000);
		if ((n = veth_sunk(cfd)) == c)
			break;
		c = n;
		if (t)
			*t = bench_now();
	}
	return c;
}

struct veth_result {
	double	mpps;		/* frames sunk / wall time of the timed run */
	__u64	sent, sunk;	/* frames vg's xmit accepted; frames the sink counted */
};

/*
 * frames copies of one established flow's frame from an AF_PACKET socket out
 * of vg -> the program under test on vl (native XDP) -> XDP_TX back to vg ->
 * the counting sink on vg; all on this CPU. The socket binds with protocol 0
 * so it receives nothing itself.
 */
static int veth_run(struct world *w, int prog_fd, __u64 frames, struct veth_result *r)
{
	int vg = if_nametoindex("vg"), vl = if_nametoindex("vl");
	int cfd = bpf_map__fd(w->ref->maps.bench_count), fd = -1, one = 1, err;
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = vg };
	__u64 before, warm;
	double t0, t1;
	__u8 buf[64];

	frame(buf, VIP, 0, 0x10);
	if ((err = bpf_xdp_attach(vl, prog_fd, XDP_FLAGS_DRV_MODE, NULL)))
		goto out;
	if ((fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one))) {
		err = -errno;
		goto out;
	}
	/* Warm up: the first frames resolve the next hop and fill the flow table. */
	if ((err = veth_send(fd, buf, VETH_WARM, &warm)))
		goto out;
	before = veth_drain(cfd, NULL);
	t0 = bench_now();
	if ((err = veth_send(fd, buf, frames, &r->sent)))
		goto out;
	t1 = bench_now();
	r->sunk = veth_drain(cfd, &t1) - before;
	r->mpps = r->sunk / (t1 - t0) / 1e6;
out:
	if (fd >= 0)
		close(fd);
	bpf_xdp_detach(vl, XDP_FLAGS_DRV_MODE, NULL);
	return err;
}

int do_xdp_veth(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pin", required_argument, NULL, 'p' },
		{ "frames", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long frames = 5000000;
	const char *pin = NULL;
	struct world w = {};
	struct veth_result lb = {}, bounce = {};
	double lb_mpps[VETH_ROUNDS], bounce_mpps[VETH_ROUNDS];
	int o, ret = 1, err, i;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'p')
			pin = optarg;
		else if (o != 'n' || bench_ulong("xdp-veth", "--frames", optarg, 10000, 1000000000, &frames))
			return bench_usage("xdp-veth", "bad option");
	}
	if (!pin)
		return bench_usage("xdp-veth", "--pin DIR is required");
	if (net_setup())
		return bench_err("network namespace", "vg/vl", -EIO);
	pin_cpu(0);
	if (world_up(&w, pin, 1 << 18))
		goto out;
	if ((err = bpf_xdp_attach(if_nametoindex("vg"), bpf_program__fd(w.ref->progs.bench_sink),
				  XDP_FLAGS_DRV_MODE, NULL))) {
		bench_err("attach sink", "vg", err);
		goto out;
	}
	/* Alternate LB and ceiling in VETH_ROUNDS rounds of frames / VETH_ROUNDS
	 * each, so both see the same machine; report the median round of each. */
	for (i = 0; i < VETH_ROUNDS; i++) {
		struct veth_result a = {}, b = {};

		if ((err = veth_run(&w, bpf_program__fd(w.lb->progs.ferry_xdp_lb), frames / VETH_ROUNDS, &a)) ||
		    (err = veth_run(&w, bpf_program__fd(w.ref->progs.bench_bounce), frames / VETH_ROUNDS, &b))) {
			bench_err("AF_PACKET frames", "vg/vl", err);
			goto out;
		}
		lb_mpps[i] = a.mpps;
		bounce_mpps[i] = b.mpps;
		lb.sent += a.sent;
		lb.sunk += a.sunk;
		bounce.sent += b.sent;
		bounce.sunk += b.sunk;
	}
	qsort(lb_mpps, VETH_ROUNDS, sizeof(double), cmp_double);
	qsort(bounce_mpps, VETH_ROUNDS, sizeof(double), cmp_double);
	lb.mpps = lb_mpps[VETH_ROUNDS / 2];
	bounce.mpps = bounce_mpps[VETH_ROUNDS / 2];
	printf("{\"frames\": %lu, \"lb_mpps\": %.3f, \"bounce_mpps\": %.3f, \"ratio\": %.3f, "
	       "\"lb_sent\": %llu, \"lb_sunk\": %llu, \"bounce_sent\": %llu, \"bounce_sunk\": %llu}\n",
	       frames, lb.mpps, bounce.mpps, bounce.mpps > 0 ? lb.mpps / bounce.mpps : 0,
	       (unsigned long long)lb.sent, (unsigned long long)lb.sunk,
	       (unsigned long long)bounce.sent, (unsigned long long)bounce.sunk);
	ret = 0;
out:
	bpf_xdp_detach(if_nametoindex("vg"), XDP_FLAGS_DRV_MODE, NULL);
	world_down(&w);
	return ret;
}
