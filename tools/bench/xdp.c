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
 *             DEGRADED), most of which take the ring fallback. And SYNs of
 *             new flows into full tables (syn_full: every one evicts).
 *             Each LB case but the outage also on bench_peer, a model of
 *             the mature peer's forwarding path (Katran's; peer_up() says
 *             how it is set up), or with --peer-obj on Katran's own
 *             balancer, on the same frames, the two taking turns in rounds
 *             of 10,000 calls: a baseline from the same minutes on the
 *             same host. And the memory floor: what one
 *             cache miss costs here, in user space (memory_floor()).
 *             --case syn|hit|flows|nonvip|syn_full|peer_syn|peer_hit|
 *             peer_flows|peer_nonvip|peer_syn_full|decap|decap_pass|outage|
 *             floor measures that case alone (after the same warm-up), for
 *             quick A/B runs of a change, and adds the 10th percentile: on
 *             a host whose neighbours come and go, the low end of the
 *             distribution moves least between runs.
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
#include <ferry/bench_peer.h>

#include "bench.h"
#include "maglev.h"
#include "maps.h"
#include "reconcile.h"
#include "registry.h"
#include "state.h"
#include "xdp_lb.skel.h"
#include "xdp_decap.skel.h"
#include "xdp_bench.skel.h"

#define VIP	"198.51.100.10"
#define NODE	"192.0.2.2"	/* vl's address: the decap's outer destination */

/*
 * The peer the LB cases are measured against: bench_peer (the model, in
 * xdp_bench.bpf.o), or with --peer-obj Katran's own balancer, built by the
 * operator from its source (docs/benchmarks.md says how). Both have
 * Katran's maps (peer_maps[] names them), with the layouts of
 * <ferry/bench_peer.h>; map[] holds their fds.
 */
enum peer_map { PM_LRU_MAPPING, PM_VIP, PM_REALS, PM_RINGS, PM_CTL, PM_STATS, PM_MAX };

struct peer {
	const char *name;	/* "bench_peer", or the object's program name */
	struct bpf_object *obj;	/* --peer-obj's, else NULL (the skeleton's) */
	int	prog;
	int	map[PM_MAX];
	int	lru;		/* the connection table, CPU 0's (created here) */
};

struct world {
	char	pin[256];
	struct xdp_lb_bpf *lb;
	struct xdp_bench_bpf *ref;
	struct xdp_decap_bpf *dc;
	struct ferry_maps fm;
	struct peer peer;
	__u32	flows;		/* entries of the flow table and of peer.lru */
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

/* Katran's maps the harness writes or reads, with <ferry/bench_peer.h>'s
 * layouts and Katran's default sizes: another build's would be misread (the
 * stats slots past MAX_VIPS, the 65,537-slot ring). */
static const struct {
	const char *name;
	enum bpf_map_type type;
	__u32	key, value, min_entries;
} peer_maps[PM_MAX] = {
	[PM_LRU_MAPPING] = { "lru_mapping", BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 1 },
	[PM_VIP] = { "vip_map", BPF_MAP_TYPE_HASH, sizeof(struct peer_vip), sizeof(struct peer_vip_meta), 1 },
	[PM_REALS] = { "reals", BPF_MAP_TYPE_ARRAY, 4, sizeof(struct peer_real), 3 },
	[PM_RINGS] = { "ch_rings", BPF_MAP_TYPE_ARRAY, 4, 4, PEER_RING_SIZE },
	[PM_CTL] = { "ctl_array", BPF_MAP_TYPE_ARRAY, 4, sizeof(struct peer_ctl), 1 },
	[PM_STATS] = { "stats", BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(struct peer_stats), PEER_STAT_SLOTS },
};

/* The peer's map i: the model's from the skeleton, or the object's by name. */
static struct bpf_map *peer_map(struct world *w, enum peer_map i)
{
	struct bpf_map *own[PM_MAX] = {
		[PM_LRU_MAPPING] = w->ref->maps.peer_lru_map, [PM_VIP] = w->ref->maps.peer_vip_map,
		[PM_REALS] = w->ref->maps.peer_reals, [PM_RINGS] = w->ref->maps.peer_ch_rings,
		[PM_CTL] = w->ref->maps.peer_ctl, [PM_STATS] = w->ref->maps.peer_stats,
	};

	return w->peer.obj ? bpf_object__find_map_by_name(w->peer.obj, peer_maps[i].name) : own[i];
}

/*
 * Before the load: the peer's connection table, as many flows as ferry's,
 * which is also its lru_mapping's template (KatranLb::initLrus() does the
 * same; and libbpf 1.1 cannot resize a declared template); --peer-obj's
 * object opened, its maps checked before anything is created (its ring
 * alone is 128 MiB), and pinned, if it pins any, under the run's pin dir.
 */
static int peer_open(struct world *w, const char *obj)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = w->pin);
	struct peer *p = &w->peer;
	struct bpf_map *m;
	int i;

	p->name = "bench_peer";
	p->lru = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "peer_lru", sizeof(struct peer_flow),
				sizeof(struct peer_flow_dst), w->flows, NULL);
	if (p->lru < 0)
		return bench_err("create", "peer_lru", -errno);
	if (obj && !(p->obj = bpf_object__open_file(obj, &oo)))
		return bench_err("open", obj, -errno);
	for (i = 0; obj && i < PM_MAX; i++) {
		if (!(m = peer_map(w, i)))
			return bench_err("no such map (is it Katran's balancer?)", peer_maps[i].name, -ENOENT);
		if (bpf_map__type(m) != peer_maps[i].type || bpf_map__key_size(m) != peer_maps[i].key ||
		    bpf_map__value_size(m) != peer_maps[i].value ||
		    bpf_map__max_entries(m) < peer_maps[i].min_entries)
			return bench_err("type, key, value or size not Katran's defaults (bench_peer.h)",
					 peer_maps[i].name, -EINVAL);
	}
	if (bpf_map__set_inner_map_fd(peer_map(w, PM_LRU_MAPPING), p->lru))
		return bench_err("set inner map", "lru_mapping", -errno);
	return 0;
}

/* After the load: the peer's program and map fds. */
static int peer_load(struct world *w)
{
	struct peer *p = &w->peer;
	struct bpf_program *prog = NULL, *pr;
	int i, ret;

	if (p->obj && (ret = bpf_object__load(p->obj)))
		return bench_err("load (the verifier's log is above)", bpf_object__name(p->obj), ret);
	for (i = 0; i < PM_MAX; i++)
		p->map[i] = bpf_map__fd(peer_map(w, i));
	if (!p->obj) {
		p->prog = bpf_program__fd(w->ref->progs.bench_peer);
		return 0;
	}
	/* Its XDP program: balancer_ingress, else the first one. */
	bpf_object__for_each_program(pr, p->obj)
		if (bpf_program__type(pr) == BPF_PROG_TYPE_XDP &&
		    (!prog || !strcmp(bpf_program__name(pr), "balancer_ingress")))
			prog = pr;
	if (!prog)
		return bench_err("no XDP program", "--peer-obj", -ENOENT);
	p->name = bpf_program__name(prog);
	p->prog = bpf_program__fd(prog);
	return 0;
}

static int world_up(struct world *w, const char *pin, __u32 flows, const char *peer_obj)
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
	w->flows = flows;
	if ((ret = peer_open(w, peer_obj)))
		return ret;
	bpf_map__set_max_entries(w->lb->maps.ferry_xflow_v3, flows / FERRY_XFLOW_WAYS);
	bpf_map__set_max_entries(w->lb->maps.ferry_xclient_v1, flows / FERRY_XFLOW_WAYS);
	if ((ret = ferry_xdp_size(w->lb->obj, FERRY_DEF_MAX_SERVICES, FERRY_DEF_MAX_BACKENDS)))
		return bench_err("size", "xdp_lb", ret);
	if ((ret = xdp_lb_bpf__load(w->lb)) || (ret = xdp_bench_bpf__load(w->ref)))
		return bench_err("load", "xdp_lb/xdp_bench", ret);
	if ((ret = peer_load(w)))
		return ret;
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

/* A world nothing is up in yet: world_down() may be given it (no fd 0). */
static void world_init(struct world *w)
{
	memset(w, 0, sizeof(*w));
	ferry_maps_init(&w->fm);
}

static void world_down(struct world *w)
{
	if (w->peer.lru > 0)
		close(w->peer.lru);
	bpf_object__close(w->peer.obj);
	ferry_maps_close(&w->fm);
	xdp_lb_bpf__destroy(w->lb);
	xdp_bench_bpf__destroy(w->ref);
	xdp_decap_bpf__destroy(w->dc);
	if (w->pin[0] && !getenv("FERRY_BENCH_KEEP_PIN"))
		sh("rm -rf '%s'", w->pin);
}

/*
 * The peer model (bench_peer in bpf/xdp_bench.bpf.c, a model of Katran's
 * forwarding path) serving ferry's benchmark service: VIP:80/TCP, the same
 * two backends, ring of Katran's size, and a connection table of as many
 * flows as ferry's flow table for the CPU the benchmark runs on (0). As
 * KatranLb does: the reals from index 1, the ring from the backends'
 * maglev permutation (ferry's maglev_build(): which entry names which
 * backend changes no cost), the default router's MAC in ctl_array[0], and
 * an LRU map created per forwarding CPU and set in lru_mapping.
 */
static int peer_up(struct world *w)
{
	struct maglev_backend mb[2] = {};
	struct peer_vip vip = { .port = htons(80), .proto = IPPROTO_TCP };
	struct peer_vip_meta meta = { .vip_num = 0 };
	struct peer_ctl gw = { .mac = { 0x02, 0, 0, 0, 0, 0x01 } };
	__u32 *keys = NULL, *ring = NULL, n = PEER_RING_SIZE, i, zero = 0;
	struct peer *p = &w->peer;
	int ret = 0;

	if (bpf_map_update_elem(p->map[PM_LRU_MAPPING], &zero, &p->lru, BPF_ANY))
		return bench_err("write", "lru_mapping", -errno);
	inet_pton(AF_INET, VIP, vip.addr);
	if (bpf_map_update_elem(p->map[PM_VIP], &vip, &meta, BPF_ANY) ||
	    bpf_map_update_elem(p->map[PM_CTL], &zero, &gw, BPF_ANY))
		return bench_err("write", "vip_map/ctl_array", -errno);
	for (i = 0; i < 2; i++) {
		struct peer_real r = {};
		__u32 k = i + 1;

		inet_pton(AF_INET, i ? "192.0.2.12" : "192.0.2.11", r.addr);
		mb[i].id = k;
		mb[i].weight = 1;
		memcpy(mb[i].addr, r.addr, sizeof(r.addr));
		mb[i].port = 80;
		if (bpf_map_update_elem(p->map[PM_REALS], &k, &r, BPF_ANY))
			return bench_err("write", "reals", -errno);
	}
	keys = malloc(n * sizeof(*keys));
	ring = malloc(n * sizeof(*ring));
	if (!keys || !ring)
		ret = bench_err("ring", "ch_rings", -ENOMEM);
	else if ((ret = maglev_build(mb, 2, n, ring)))
		ret = bench_err("maglev", "ch_rings", ret);
	for (i = 0; !ret && i < n; i++)
		keys[i] = i;
	if (!ret && bpf_map_update_batch(p->map[PM_RINGS], keys, ring, &n, NULL))
		ret = bench_err("write", "ch_rings", -errno);
	free(keys);
	free(ring);
	return ret;
}

/* The peer model's stats slot PEER_MAX_VIPS + slot, v1 summed over CPUs. */
static int peer_stat_v1(struct world *w, __u32 slot, __u64 *sum)
{
	int ncpu = libbpf_num_possible_cpus(), i;
	__u32 key = PEER_MAX_VIPS + slot;
	struct peer_stats *v;

	*sum = 0;
	if (ncpu <= 0 || !(v = calloc(ncpu, sizeof(*v))))
		return -ENOMEM;
	if (bpf_map_lookup_elem(w->peer.map[PM_STATS], &key, v)) {
		free(v);
		return -errno;
	}
	for (i = 0; i < ncpu; i++)
		*sum += v[i].v1;
	free(v);
	return 0;
}

/*
 * Both connection tables full of other flows, so that every new flow of
 * the next run evicts one: ferry's flow table, every way of every set
 * (written through its mapping, idle since jiffies 0, so the oldest); the
 * peer model's LRU, as many flows as it holds (10.0.0.0/8 clients), which
 * pushes out everything earlier runs left in it.
 */
static int fill_ferry(struct world *w)
{
	__u32 sets, i, k, x = 2463534242U;
	struct ferry_xflow_set *t;
	void *p;
	int err;

	if ((err = array_mmap(bpf_map__fd(w->lb->maps.ferry_xflow_v3), sizeof(*t), true, &p, &sets)))
		return bench_err("map", FERRY_MAP_XFLOW, err);
	t = p;
	for (i = 0; i < sets; i++)
		for (k = 0; k < FERRY_XFLOW_WAYS; k++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			t[i].way[k] = (struct ferry_xflow){ .id = (__u64)x << 32 | 1 };
		}
	array_munmap(t, sizeof(*t), sets);
	return 0;
}

static int fill_peer(struct world *w)
{
	struct peer_flow *keys = calloc(w->flows, sizeof(*keys));
	struct peer_flow_dst *vals = calloc(w->flows, sizeof(*vals));
	__u32 i;
	int ret = -ENOMEM;

	if (keys && vals) {
		for (i = 0; i < w->flows; i++) {
			keys[i].src[0] = htonl(0x0a000000 + i);
			inet_pton(AF_INET, VIP, &keys[i].dst[0]);
			keys[i].port16[0] = htons(1024);
			keys[i].port16[1] = htons(80);
			keys[i].proto = IPPROTO_TCP;
			vals[i].pos = 1;
		}
		ret = map_update_many(w->peer.lru, keys, vals, sizeof(*keys), sizeof(*vals), w->flows);
	}
	free(keys);
	free(vals);
	return ret ? bench_err("fill", "peer_lru", ret) : 0;
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

#define TCP_SYN	0x02
#define TCP_ACK	0x10

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

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

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
 *
 * With n programs (ferry's and the peer's), they take turns in rounds of
 * ROUND calls, each through its own frames 0..calls-1: a host that slows
 * down for a minute (it does, by up to 2x, the rounds in docs/benchmarks.md)
 * slows both, and their ratio holds. A round is long enough that the other
 * program's lines leave the caches' way within its first calls.
 */
#define ROUND	10000

struct samples {
	__u32	*d, *b;		/* program's and XDP_PASS's ns per call */
	__u64	total, btotal;
};

static int measure_n(int pass_fd, const int *prog_fd, int n, const char *outer, const char *dst,
		     __u32 calls, __u32 nflows, __u8 flags, bool vary, struct result *r)
{
	struct samples s[2] = {};
	__u32 i, start, end;
	__u8 buf[128];
	int err = 0, k;

	if (n < 1 || n > 2)
		return -EINVAL;
	for (k = 0; k < n; k++)
		if (!(s[k].d = malloc(calls * sizeof(__u32))) || !(s[k].b = malloc(calls * sizeof(__u32)))) {
			err = -ENOMEM;
			goto out;
		}
	for (start = 0; start < calls; start = end) {
		end = calls - start > ROUND ? start + ROUND : calls;
		for (k = 0; k < n; k++)
			for (i = start; i < end; i++) {
				__u32 f = vary ? (nflows ? i % nflows : i) : 0;
				size_t len = outer ? tunnel_frame(buf, outer, dst, f, flags) :
						     frame(buf, dst, f, flags);

				if ((err = run1(pass_fd, buf, len, &s[k].b[i])) ||
				    (err = run1(prog_fd[k], buf, len, &s[k].d[i])))
					goto out;
				s[k].total += s[k].d[i];
				s[k].btotal += s[k].b[i];
			}
	}
	for (k = 0; k < n; k++) {
		qsort(s[k].d, calls, sizeof(__u32), cmp_u32);
		qsort(s[k].b, calls, sizeof(__u32), cmp_u32);
		r[k].pass_mean = (double)s[k].btotal / calls;
		r[k].pass_median = s[k].b[calls / 2];
		r[k].mean = (double)s[k].total / calls - r[k].pass_mean;
		r[k].median = (double)s[k].d[calls / 2] - r[k].pass_median;
		r[k].p10 = (double)s[k].d[calls / 10] - s[k].b[calls / 10];
	}
out:
	for (k = 0; k < n; k++) {
		free(s[k].d);
		free(s[k].b);
	}
	return err;
}

static int measure(int pass_fd, int prog_fd, const char *outer, const char *dst, __u32 calls,
		   __u32 nflows, __u8 flags, bool vary, struct result *r)
{
	return measure_n(pass_fd, &prog_fd, 1, outer, dst, calls, nflows, flags, vary, r);
}

/*
 * What one cache miss costs on this host, to read the 100,000-flow figures
 * by: ns per load of a dependent pointer chase in user space (no syscall,
 * no BPF) through `lines` random 64-byte lines of a buffer of `bytes` (4 KiB
 * pages, as a map's), after a lap that faults the pages in. Ten laps timed
 * in FLOOR_SEGS segments, and the median segment: as the per-call median
 * of the BPF cases, it shrugs off the bursts in which the other CPU's work
 * or the hypervisor holds the memory (a lap's mean moved 2-4x with them).
 */
#define FLOOR_LAPS	10
#define FLOOR_SEGS	100

static int memory_floor(size_t bytes, __u32 lines, double *ns)
{
	size_t n = bytes / 64, per = (size_t)lines * FLOOR_LAPS / FLOOR_SEGS, i, j;
	__u32 *idx = malloc(n * sizeof(*idx)), x = 88172645U, t;
	char *buf = aligned_alloc(4096, bytes);
	double seg[FLOOR_SEGS], t0;
	void **p;
	int r;

	if (!idx || !buf || !per || lines > n) {
		free(idx);
		free(buf);
		return !per || lines > n ? -EINVAL : -ENOMEM;
	}
	for (i = 0; i < n; i++)
		idx[i] = i;
	for (i = 0; i < lines; i++) {	/* the first `lines` of a shuffle */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		j = i + x % (n - i);
		t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
	memset(buf, 0, bytes);
	for (i = 0; i < lines; i++)
		*(void **)(buf + (size_t)idx[i] * 64) = buf + (size_t)idx[(i + 1) % lines] * 64;
	p = (void **)(buf + (size_t)idx[0] * 64);
	for (i = 0; i < lines; i++)
		p = *p;
	for (r = 0; r < FLOOR_SEGS; r++) {
		t0 = bench_now();
		for (i = 0; i < per; i++)
			p = *p;
		seg[r] = (bench_now() - t0) * 1e9 / per;
	}
	asm volatile("" : : "r"(p));
	qsort(seg, FLOOR_SEGS, sizeof(seg[0]), cmp_double);
	*ns = seg[FLOOR_SEGS / 2];
	free(idx);
	free(buf);
	return 0;
}

/*
 * The peer forwards what it should before it is timed: an established
 * flow's packet leaves IPIP to one of the backends with a valid header
 * checksum (XDP_TX), a packet to no VIP passes.
 */
static int peer_check(const struct peer *p)
{
	__u8 in[64], out[128], h[20];
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = in, .data_size_in = sizeof(in), .data_out = out,
		    .data_size_out = sizeof(out), .repeat = 1);
	const __u8 *ip = out + 14;

	frame(in, VIP, 0, TCP_ACK);
	if (bpf_prog_test_run_opts(p->prog, &t))
		return bench_err("BPF_PROG_TEST_RUN", p->name, -errno);
	memcpy(h, ip, sizeof(h));
	ip4_csum(h);
	if (t.retval != XDP_TX || t.data_size_out != sizeof(in) + 20 || ip[9] != IPPROTO_IPIP ||
	    memcmp(ip + 16, "\xc0\x00\x02", 3) || (ip[19] != 11 && ip[19] != 12) || memcmp(h + 10, ip + 10, 2))
		return bench_err("an established flow's packet was not sent IPIP to a backend", p->name,
				 -EPROTO);
	frame(in, "198.51.100.99", 0, TCP_ACK);
	t.data_size_out = sizeof(out);
	if (bpf_prog_test_run_opts(p->prog, &t))
		return bench_err("BPF_PROG_TEST_RUN", p->name, -errno);
	return t.retval == XDP_PASS ? 0 : bench_err("a packet to no VIP did not pass", p->name, -EPROTO);
}

/* The cases of --case. */
enum xcase {
	C_SYN, C_HIT, C_FLOWS, C_NONVIP, C_DECAP, C_DECAP_PASS, C_OUTAGE,
	C_PEER_SYN, C_PEER_HIT, C_PEER_FLOWS, C_PEER_NONVIP, C_SYN_FULL, C_PEER_SYN_FULL,
	C_FLOOR, C_MAX
};

static const char *const case_names[C_MAX] = {
	"syn", "hit", "flows", "nonvip", "decap", "decap_pass", "outage",
	"peer_syn", "peer_hit", "peer_flows", "peer_nonvip", "syn_full", "peer_syn_full", "floor",
};

/* Their figures in a full run's JSON: "<key>_ns" and "<key>_median_ns". */
static const char *const case_keys[C_FLOOR] = {
	"syn_new_flow", "lru_hit", "flows_100k", "non_vip", "decap", "decap_pass", "outage",
	"peer_syn_new_flow", "peer_lru_hit", "peer_flows_100k", "peer_non_vip", "syn_full",
	"peer_syn_full",
};

#define NFLOWS	100000	/* established flows, cycled by the flows cases */

/*
 * The LB cases measured on ferry and on the peer model alike (the model on
 * the same frames right after ferry), in the order they run: the SYNs after
 * the established flows (their million new flows evict the 100,000), and
 * the SYNs into full tables last, after the outage's (which so finds the
 * table as before).
 */
static const struct lbcase {
	enum xcase c, peer;
	const char *dst;
	__u32	nflows;		/* frame i is flow i % nflows; 0: flow i, or flow 0 if !vary */
	__u8	flags;
	bool	vary;
	bool	full;		/* both tables filled first: every new flow evicts */
} lbcases[] = {
	{ C_HIT, C_PEER_HIT, VIP, 0, TCP_ACK, false, false },
	{ C_FLOWS, C_PEER_FLOWS, VIP, NFLOWS, TCP_ACK, true, false },
	{ C_NONVIP, C_PEER_NONVIP, "198.51.100.99", 0, TCP_ACK, false, false },
	{ C_SYN, C_PEER_SYN, VIP, 0, TCP_SYN, true, false },
	{ C_SYN_FULL, C_PEER_SYN_FULL, VIP, 0, TCP_SYN, true, true },
};

struct progs {
	int	pass, lb, peer, decap;
};

/* One of lbcases on ferry and on the peer, taking turns (measure_n());
 * only: the one side wanted alone, or -1 for both. */
static int lb_case(struct world *w, const struct progs *pg, const struct lbcase *k, int only,
		   __u32 calls, struct result *res)
{
	const struct {
		enum xcase c;
		int	prog;
		int	(*fill)(struct world *w);
	} side[] = { { k->c, pg->lb, fill_ferry }, { k->peer, pg->peer, fill_peer } };
	struct result r[2];
	enum xcase c[2];
	int fd[2], n = 0, i, err;

	for (i = 0; i < 2; i++) {
		if (only >= 0 && only != (int)side[i].c)
			continue;
		if (k->full && (err = side[i].fill(w)))
			return err;
		c[n] = side[i].c;
		fd[n++] = side[i].prog;
	}
	if (!n)
		return 0;
	if ((err = measure_n(pg->pass, fd, n, NULL, k->dst, calls, k->nflows, k->flags, k->vary, r)))
		return bench_err("BPF_PROG_TEST_RUN", n == 2 ? "ferry_xdp_lb and the peer" :
				 fd[0] == pg->lb ? "ferry_xdp_lb" : w->peer.name, err);
	for (i = 0; i < n; i++)
		res[c[i]] = r[i];
	return 0;
}

/* New flows in a partial outage, a tenth of the calls in a full run (each
 * costs the fallback); a figure for the path it names: the fallback placed
 * flows, and none was dropped. */
static int outage_case(struct world *w, const struct progs *pg, __u32 calls, struct result *r)
{
	int xfd = bpf_map__fd(w->lb->maps.ferry_xstat_v2), err;
	__u64 before[FERRY_XSTAT_MAX] = {}, after[FERRY_XSTAT_MAX] = {};

	if ((err = xstat_sum(xfd, before)) ||
	    (err = measure(pg->pass, pg->lb, NULL, OUTAGE_VIP, calls, 0, TCP_SYN, true, r)) ||
	    (err = xstat_sum(xfd, after)))
		return bench_err("BPF_PROG_TEST_RUN", "ferry_xdp_lb (outage)", err);
	if (after[FERRY_XSTAT_RING_FALLBACK] == before[FERRY_XSTAT_RING_FALLBACK] ||
	    after[FERRY_XSTAT_DROP_NO_BACKEND] != before[FERRY_XSTAT_DROP_NO_BACKEND])
		return bench_err("the outage's new flows did not take the fallback, or were dropped",
				 "ferry_xdp_lb", -EPROTO);
	fprintf(stderr, "outage: %llu of %u new flows placed by the fallback\n",
		(unsigned long long)(after[FERRY_XSTAT_RING_FALLBACK] - before[FERRY_XSTAT_RING_FALLBACK]),
		calls);
	return 0;
}

/* The decap, one established flow's packets: tunnelled, and plain; a
 * figure for the path it names: every tunnel was stripped. */
static int decap_cases(struct world *w, const struct progs *pg, int only, __u32 calls,
		       struct result *res)
{
	__u64 sum[FERRY_XSTAT_MAX] = {};
	int err;

	if ((only < 0 || only == C_DECAP) &&
	    (err = measure(pg->pass, pg->decap, NODE, VIP, calls, 0, TCP_ACK, false, &res[C_DECAP])))
		return bench_err("BPF_PROG_TEST_RUN", "ferry_xdp_decap", err);
	if ((only < 0 || only == C_DECAP_PASS) &&
	    (err = measure(pg->pass, pg->decap, NULL, NODE, calls, 0, TCP_ACK, false, &res[C_DECAP_PASS])))
		return bench_err("BPF_PROG_TEST_RUN", "ferry_xdp_decap", err);
	if ((only < 0 || only == C_DECAP) &&
	    (xstat_sum(bpf_map__fd(w->dc->maps.ferry_xstat_v2), sum) || sum[FERRY_XSTAT_DECAP_OK] < calls))
		return bench_err("the decap did not strip every tunnel", "ferry_xdp_decap", -EPROTO);
	return 0;
}

int do_xdp_ns(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pin", required_argument, NULL, 'p' },
		{ "calls", required_argument, NULL, 'n' },
		{ "case", required_argument, NULL, 'c' },
		{ "flows", required_argument, NULL, 'f' },
		{ "peer-obj", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long calls = 1000000, flows = FERRY_XDP_DEF_FLOWS;
	const char *pin = NULL, *only = NULL, *peer_obj = NULL;
	struct world w;
	struct result res[C_MAX] = {}, tmp;
	struct progs pg;
	size_t floor_bytes;
	__u32 floor_lines;
	double floor_ns = 0;
	__u64 fallback;
	int o, ret = 1, c = -1, i, err;

	world_init(&w);
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'p')
			pin = optarg;
		else if (o == 'c')
			only = optarg;
		else if (o == 'o')
			peer_obj = optarg;
		else if (o == 'f') {
			if (bench_ulong("xdp-ns", "--flows", optarg, 1024, FERRY_XDP_MAX_FLOWS, &flows))
				return bench_usage("xdp-ns", "bad option");
		} else if (o != 'n' || bench_ulong("xdp-ns", "--calls", optarg, 1000, 100000000, &calls))
			return bench_usage("xdp-ns", "bad option");
	}
	if (!pin)
		return bench_usage("xdp-ns", "--pin DIR is required");
	for (i = 0; only && i < C_MAX; i++)
		if (!strcmp(only, case_names[i]))
			c = i;
	if (only && c < 0)
		return bench_usage("xdp-ns", "--case is one of syn, hit, flows, nonvip, decap, decap_pass, "
				   "outage, peer_syn, peer_hit, peer_flows, peer_nonvip, syn_full, "
				   "peer_syn_full, floor");
	if (net_setup())
		return bench_err("network namespace", "vg/vl", -EIO);
	pin_cpu(0);
	/* The memory floor over the flow table's bytes, as many lines as the
	 * flows case reads (before the maps take their share of memory). */
	floor_bytes = flows / FERRY_XFLOW_WAYS * sizeof(struct ferry_xflow_set);
	floor_lines = NFLOWS < flows / FERRY_XFLOW_WAYS ? NFLOWS : flows / FERRY_XFLOW_WAYS;
	if ((c < 0 || c == C_FLOOR) && (err = memory_floor(floor_bytes, floor_lines, &floor_ns))) {
		bench_err("memory floor", "user space", err);
		goto out;
	}
	if (c == C_FLOOR) {
		printf("{\"case\": \"floor\", \"ns\": %.1f, \"bytes\": %zu, \"lines\": %u}\n", floor_ns,
		       floor_bytes, floor_lines);
		ret = 0;
		goto out;
	}
	if (world_up(&w, pin, flows, peer_obj) || peer_up(&w))
		goto out;
	pg.lb = bpf_program__fd(w.lb->progs.ferry_xdp_lb);
	pg.decap = bpf_program__fd(w.dc->progs.ferry_xdp_decap);
	pg.pass = bpf_program__fd(w.ref->progs.bench_pass);
	pg.peer = w.peer.prog;
	/* Warm the next-hop cache; the 100k flows into both tables. */
	if (measure(pg.pass, pg.lb, NULL, VIP, NFLOWS, NFLOWS, TCP_SYN, true, &tmp) ||
	    measure(pg.pass, pg.peer, NULL, VIP, NFLOWS, NFLOWS, TCP_SYN, true, &tmp)) {
		bench_err("BPF_PROG_TEST_RUN", "warm-up", -errno);
		goto out;
	}
	if (peer_check(&w.peer))
		goto out;
	for (i = 0; i < 4; i++)
		if (lb_case(&w, &pg, &lbcases[i], c, calls, res))
			goto out;
	if (decap_cases(&w, &pg, c, calls, res) ||
	    ((c < 0 || c == C_OUTAGE) && outage_case(&w, &pg, c < 0 ? calls / 10 : calls, &res[C_OUTAGE])) ||
	    lb_case(&w, &pg, &lbcases[4], c, calls, res))
		goto out;
	/* The model's figures are for the path they name: CPU 0's own LRU. */
	if (peer_stat_v1(&w, PEER_STAT_FALLBACK_LRU, &fallback) || fallback) {
		bench_err("packets took the fallback LRU, not their CPU's", w.peer.name, -EPROTO);
		goto out;
	}
	if (c >= 0) {
		struct result *r = &res[c];

		/* One case (quick A/B runs): its figures and the XDP_PASS baseline. */
		printf("{\"calls\": %lu, \"case\": \"%s\", \"peer\": \"%s\", \"ns\": %.1f, "
		       "\"median_ns\": %.0f, \"pass_ns\": %.1f, \"pass_median_ns\": %.0f, \"p10_ns\": %.0f}\n",
		       calls, only, w.peer.name, r->mean, r->median, r->pass_mean, r->pass_median, r->p10);
		ret = 0;
		goto out;
	}
	printf("{\"calls\": %lu, \"peer\": \"%s\", \"pass_ns\": %.1f, \"pass_median_ns\": %.0f", calls,
	       w.peer.name, res[C_HIT].pass_mean, res[C_HIT].pass_median);
	for (i = 0; i < C_FLOOR; i++)
		printf(", \"%s_ns\": %.1f, \"%s_median_ns\": %.0f", case_keys[i], res[i].mean, case_keys[i],
		       res[i].median);
	printf(", \"floor_ns\": %.1f, \"floor_bytes\": %zu}\n", floor_ns, floor_bytes);
	ret = 0;
out:
	world_down(&w);
	return ret;
}

#define VETH_BATCH	64	/* frames per sendmmsg() */
#define VETH_WARM	10000	/* warm-up frames before each timed run */
#define VETH_ROUNDS	5	/* LB and ceiling runs, alternated */

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
	struct world w;
	struct veth_result lb = {}, bounce = {};
	double lb_mpps[VETH_ROUNDS], bounce_mpps[VETH_ROUNDS];
	int o, ret = 1, err, i;

	world_init(&w);
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
	if (world_up(&w, pin, 1 << 18, NULL))
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
