// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The XDP load balancer (--xdp-iface) and the backend-side decap
 * (--decap-iface): load both objects with their maps pinned by name next to
 * the socket LB's, write the LB's configuration, and attach through bpf_links
 * pinned as <bpffs>/links/xdp_<ifname> and links/xdp_decap_<ifname>. A
 * restarted ferryd swaps its programs into those links atomically, and
 * detaches the links of interfaces it no longer has in that role.
 *
 * Native XDP is asked for first; a driver without it gets generic XDP and a
 * warning (it works, at a fraction of the speed). The rings themselves are
 * planned by reconcile for every service with "xdp": true.
 *
 * The decap's address sets (outer: the --decap-iface addresses; the node's
 * addresses; from those and the services, the XDP VIPs bound here and the
 * (outer, VIP) pairs the program asks) are replaced at start, before
 * attaching, and kept equal to the node after: an rtnetlink subscription to
 * address changes, and every change of services (plan_apply(), ferryd's or
 * ferryctl's). The LB's VLAN devices (ferry_xvlan_v1: a route over one
 * leaves by its lower device with its tag) likewise: read at start, then
 * followed through link changes on the same rtnetlink socket.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ferry/xdp.h>

#include "ferryd.h"
#include "log.h"
#include "maglev.h"
#include "reconcile.h"
#include "xvlan.h"
#include "xdp_lb.skel.h"
#include "xdp_decap.skel.h"

#define XDP_MAX_IFACES	16

static struct {
	const char *lb_ifs[XDP_MAX_IFACES];
	int	n_lb;
	const char *dc_ifs[XDP_MAX_IFACES];
	int	n_dc;
	__u32	ring_size, flows;
	struct ferry_xcfg cfg;		/* prefixes and gateway as given */
	bool	src4_set, src6_set;
	struct mnl_socket *nl;		/* rtnetlink: addresses (decap), links (LB) */
	bool	decap_stale, vlan_stale;	/* the last read failed: again at the next sync */
	bool	dc_synced;		/* the decap's sets were written once */
	__u8	fwd_warned[XDP_MAX_IFACES];	/* per LB device: FWD_V4 | FWD_V6 said off */
} xo = { .ring_size = FERRY_XDP_DEF_RING_M, .flows = FERRY_XDP_DEF_FLOWS };

static struct xdp_lb_bpf *lb;
static struct xdp_decap_bpf *dc;

static int opt_err(const char *opt, const char *arg, const char *why)
{
	fprintf(stderr, "ferryd: %s: '%s' %s\n", opt, arg, why);
	return -EINVAL;
}

static bool in_list(const char *const *list, int n, const char *ifname)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(list[i], ifname))
			return true;
	return false;
}

static int add_iface(const char **list, int *n, const char *opt, const char *arg)
{
	if (!*arg || strlen(arg) >= IF_NAMESIZE)
		return opt_err(opt, arg, "is not an interface name");
	if (in_list(list, *n, arg))
		return 0;
	if (*n == XDP_MAX_IFACES)
		return opt_err(opt, arg, "is one interface too many (at most 16)");
	list[(*n)++] = arg;
	return 0;
}

static int parse_mac(const char *s, __u8 *mac)
{
	unsigned int b[6];
	char end;
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &end) != 6)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		if (b[i] > 0xff)
			return -EINVAL;
		mac[i] = b[i];
	}
	return 0;
}

/* "PREFIX/LEN", v4 (LEN 8..32) or v6 (LEN 64..128: hash bits in the last 32). */
static int parse_src(const char *arg)
{
	char buf[64], *slash, *end;
	unsigned long len;
	__u32 a6[4];

	/* Longer than any prefix: a cut copy could drop trailing junk. */
	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
		return opt_err("--xdp-src", arg, "is too long for PREFIX/LEN");
	slash = strchr(buf, '/');
	if (!slash)
		return opt_err("--xdp-src", arg, "is not PREFIX/LEN");
	*slash++ = '\0';
	/* Digits only: strtoul would take "24junk", " 24", "+24", "-24". */
	len = strtoul(slash, &end, 10);
	if (!isdigit((unsigned char)*slash) || *end)
		return opt_err("--xdp-src", arg, "is not PREFIX/LEN: the length is not a number");
	if (inet_pton(AF_INET, buf, &xo.cfg.src4) == 1) {
		if (len < 8 || len > 32)
			return opt_err("--xdp-src", arg, "needs an IPv4 prefix length of 8..32");
		xo.cfg.src4_mask = len == 32 ? 0xffffffff : htonl(~0U << (32 - len));
		xo.src4_set = true;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, a6) == 1) {
		if (len < 64 || len > 128)
			return opt_err("--xdp-src", arg, "needs an IPv6 prefix length of 64..128");
		memcpy(xo.cfg.src6, a6, sizeof(a6));
		xo.cfg.src6_mask = len <= 96 ? 0 : len == 128 ? 0xffffffff : htonl(~0U << (128 - len));
		xo.src6_set = true;
		return 0;
	}
	return opt_err("--xdp-src", arg, "is not an IPv4 or IPv6 prefix");
}

int xdp_option(int opt, const char *arg)
{
	unsigned long v;
	char *end;

	switch (opt) {
	case XDP_OPT_IFACE:
		return add_iface(xo.lb_ifs, &xo.n_lb, "--xdp-iface", arg);
	case XDP_OPT_DECAP:
		return add_iface(xo.dc_ifs, &xo.n_dc, "--decap-iface", arg);
	case XDP_OPT_RING:
		errno = 0;
		v = strtoul(arg, &end, 10);
		if (errno || *end || *arg < '0' || *arg > '9' || v < FERRY_XDP_MIN_RING_M ||
		    v > FERRY_XDP_MAX_RING_M || !maglev_is_prime(v))
			return opt_err("--xdp-ring-size", arg, "is not a prime from 4099 to 1048573");
		xo.ring_size = v;
		return 0;
	case XDP_OPT_FLOWS:
		errno = 0;
		v = strtoul(arg, &end, 10);
		if (errno || *end || v < 1024 || v > FERRY_XDP_MAX_FLOWS)
			return opt_err("--xdp-flows", arg, "is not a number of flows (1024..2^26)");
		xo.flows = v;
		return 0;
	case XDP_OPT_GW:
		if (parse_mac(arg, xo.cfg.gw_mac))
			return opt_err("--xdp-gateway", arg, "is not a MAC address");
		xo.cfg.flags |= FERRY_XCFG_F_GW;
		return 0;
	case XDP_OPT_SRC:
		return parse_src(arg);
	}
	return -EINVAL;
}

/* The families XDP services' backends use (FWD_V4 | FWD_V6), from the maps:
 * the registry's services and ferryctl's alike. */
enum { FWD_V4 = 1, FWD_V6 = 2 };

static int backend_families(const struct ferry_maps *m, unsigned int *fams)
{
	struct ferry_svc *vals = NULL;
	void *keys = NULL;
	size_t n, i;
	__u32 j;
	int err;

	*fams = 0;
	if ((err = map_dump(m->svc, sizeof(struct ferry_svc_key), sizeof(*vals), &keys,
			    (void **)&vals, &n)))
		return err;
	for (i = 0; i < n && *fams != (FWD_V4 | FWD_V6); i++) {
		if (!(vals[i].flags & FERRY_SVC_F_XDP))
			continue;
		for (j = 0; j < vals[i].count; j++) {
			struct ferry_slot_key sk = { .svc_id = vals[i].id, .slot = j };
			struct ferry_backend be;
			struct ferry_slot sl;

			if (bpf_map_lookup_elem(m->slot, &sk, &sl) ||
			    bpf_map_lookup_elem(m->be, &sl.backend_id, &be))
				continue;	/* mid-update: the next sync sees it */
			*fams |= be.family == AF_INET6 ? FWD_V6 : FWD_V4;
		}
	}
	free(keys);
	free(vals);
	return 0;
}

static bool forwarding_off(const char *fam, const char *ifname)
{
	char path[128], c = '1';
	FILE *f;

	snprintf(path, sizeof(path), "/proc/sys/net/%s/conf/%s/forwarding", fam, ifname);
	f = fopen(path, "r");
	if (f) {
		if (fread(&c, 1, 1, f) != 1)
			c = '1';
		fclose(f);
	}
	return c == '0';
}

/*
 * bpf_fib_lookup answers only on devices that forward, per address family,
 * and the LB asks it the way to each backend: warn for a family XDP
 * services' backends use when an --xdp-iface does not forward it. After
 * every sync, where the services are known; once per interface and family
 * until that changes (forwarding turned on, or no such backend left), so
 * the periodic resync does not repeat it.
 */
void xdp_check_forwarding(struct ferryd *d)
{
	static const char *const sysctl[] = { "ipv4", "ipv6" }, *const fam[] = { "IPv4", "IPv6" };
	unsigned int used;
	int err, i, f;

	if (!lb)
		return;
	if ((err = backend_families(&d->maps, &used))) {
		log_warnx("xdp: reading the XDP services' backends to check forwarding: %s",
			  strerror(-err));
		return;
	}
	for (i = 0; i < xo.n_lb; i++)
		for (f = 0; f < 2; f++) {
			if (!(used & 1U << f) || !forwarding_off(sysctl[f], xo.lb_ifs[i])) {
				xo.fwd_warned[i] &= ~(1U << f);
				continue;
			}
			if (xo.fwd_warned[i] & 1U << f)
				continue;
			xo.fwd_warned[i] |= 1U << f;
			log_warnx("xdp %s: net.%s.conf.%s.forwarding is 0, so bpf_fib_lookup cannot "
				  "resolve the next hop to XDP services' %s backends: %s", xo.lb_ifs[i],
				  sysctl[f], xo.lb_ifs[i], fam[f],
				  xo.cfg.flags & FERRY_XCFG_F_GW ? "their packets go to the --xdp-gateway MAC" :
								   "their packets are dropped");
		}
}

static bool on_device(int link_fd, const void *arg)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	return !bpf_obj_get_info_by_fd(link_fd, &info, &len) && info.type == BPF_LINK_TYPE_XDP &&
	       info.xdp.ifindex == *(const __u32 *)arg;
}

/*
 * Attach prog to ifname through the link pinned as links/<kind>_<ifname>:
 * adopt (program swapped in) a pinned link on the same device, else create
 * one, native mode first.
 */
static int attach(struct ferryd *d, struct bpf_program *prog, const char *kind, const char *ifname)
{
	LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = XDP_FLAGS_DRV_MODE);
	__u32 ifindex = if_nametoindex(ifname);
	int pfd = bpf_program__fd(prog), fd, err;
	char name[64], path[512];

	if (!ifindex) {
		err = -errno;
		log_warnx("%s %s: no such interface: %s", kind, ifname, strerror(-err));
		return err;
	}
	snprintf(name, sizeof(name), "%s_%s", kind, ifname);
	if (!loader_link_adopt(d, name, pfd, on_device, &ifindex, path, sizeof(path)))
		return 0;
	fd = bpf_link_create(pfd, ifindex, BPF_XDP, &lo);
	if (fd < 0) {
		log_warnx("%s %s: native XDP unavailable (%s); using generic XDP, which is much slower",
			  kind, ifname, strerror(errno));
		lo.flags = XDP_FLAGS_SKB_MODE;
		fd = bpf_link_create(pfd, ifindex, BPF_XDP, &lo);
	}
	if (fd < 0) {
		err = -errno;
		log_warnx("attach %s to %s: %s (another XDP program there?)", kind, ifname, strerror(-err));
		return err;
	}
	if ((err = loader_link_pin(fd, path)))
		return err;
	log_info("%s: attached to %s (%s mode), pinned as %s", kind, ifname,
		 lo.flags == XDP_FLAGS_DRV_MODE ? "native" : "generic", path);
	return 0;
}

/*
 * The MTU toward the --xdp-gateway: that leg leaves by the ingress device, so
 * its MTU, the smallest over the LB's devices (the configuration is one for
 * all). 0 (unknown) makes the program assume 1500.
 */
static __u16 lb_ifaces_mtu(void)
{
	unsigned int mtu = 0;
	struct ifreq ifr;
	int fd, i;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	for (i = 0; i < xo.n_lb; i++) {
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", xo.lb_ifs[i]);
		if (ioctl(fd, SIOCGIFMTU, &ifr) || ifr.ifr_mtu <= 0)
			continue;
		if (!mtu || (unsigned int)ifr.ifr_mtu < mtu)
			mtu = ifr.ifr_mtu;
	}
	close(fd);
	return mtu > 0xffff ? 0xffff : mtu;
}

static int load_lb(struct ferryd *d, struct bpf_object_open_opts *oo)
{
	struct { struct bpf_map *m; __u32 n; } sz[4];
	__u32 zero = 0, sets = 64;
	int err, i;

	lb = xdp_lb_bpf__open_opts(oo);
	if (!lb) {
		err = -errno;
		log_warnx("open xdp_lb: %s", strerror(-err));
		return err;
	}
	if ((err = loader_set_sizes(d, lb->obj)))
		return err;
	sz[0].m = lb->maps.ferry_xring_v1, sz[0].n = d->cfg.max_services + 1;
	sz[1].m = lb->maps.ferry_xflow_v3;
	sz[1].n = (xo.flows + FERRY_XFLOW_WAYS - 1) / FERRY_XFLOW_WAYS;
	sz[2].m = lb->maps.ferry_xclient_v1, sz[2].n = sz[1].n;
	/* VIP index: a power of two, one way per service at --max-services. */
	while (sets < d->cfg.max_services / FERRY_XSVC_WAYS)
		sets <<= 1;
	sz[3].m = lb->maps.ferry_xsvc_v1, sz[3].n = sets;
	for (i = 0; i < 4; i++)
		if ((err = bpf_map__set_max_entries(sz[i].m, sz[i].n)))
			return err;
	/* Counters and next-hop cache: per CPU, per service, per backend; then
	 * the geometry, the tables' sizes among it, into the program. */
	if ((err = ferry_xdp_size(lb->obj, d->cfg.max_services, d->cfg.max_backends))) {
		log_warnx("sizing xdp_lb's per-CPU arrays: %s", strerror(-err));
		return err;
	}
	if ((err = xdp_lb_bpf__load(lb))) {
		log_warnx("load xdp_lb: %s (pinned XDP maps sized differently, e.g. by another "
			  "--xdp-flows, cannot be reused: ferryctl teardown first)", strerror(-err));
		return err;
	}
	/* Katran's defaults when no --xdp-src: 172.16.0.0/16, 100::/64. */
	if (!xo.src4_set) {
		inet_pton(AF_INET, "172.16.0.0", &xo.cfg.src4);
		xo.cfg.src4_mask = htonl(0xffff0000);
	}
	if (!xo.src6_set) {
		inet_pton(AF_INET6, "100::", xo.cfg.src6);
		xo.cfg.src6_mask = 0;
	}
	xo.cfg.ring_size = xo.ring_size;
	xo.cfg.gw_mtu = lb_ifaces_mtu();
	{
		struct ferry_xcfg cur;

		/* The epoch goes on from the pinned one: ferryctl compares
		 * nothing, but a program still attached from before does. */
		if (!bpf_map_lookup_elem(bpf_map__fd(lb->maps.ferry_xcfg_v1), &zero, &cur))
			xo.cfg.be_epoch = cur.be_epoch + 1;
	}
	if (bpf_map_update_elem(bpf_map__fd(lb->maps.ferry_xcfg_v1), &zero, &xo.cfg, BPF_ANY)) {
		err = -errno;
		log_warn("writing %s", FERRY_MAP_XCFG);
		return err;
	}
	/* A reused filter may predate VIPs an older version added (it did not
	 * keep the filter): "ask the index" until the sync after loading
	 * rebuilds it. */
	if ((err = xvipf_reset(bpf_map__fd(lb->maps.ferry_xvipf_v1)))) {
		log_warnx("clearing %s: %s", FERRY_MAP_XVIPF, strerror(-err));
		return err;
	}
	/* Not fatal: without it only routes over VLAN devices go wrong, and a
	 * restart that failed here would serve nothing. */
	xdp_vlan_sync(d);
	for (i = 0; i < xo.n_lb; i++)
		if ((err = attach(d, lb->progs.ferry_xdp_lb, "xdp", xo.lb_ifs[i])))
			return err;
	log_info("xdp: load balancer on %d interface(s), ring size %u, %u flows", xo.n_lb,
		 xo.ring_size, xo.flows);
	return 0;
}

/*
 * The decap's address sets, from what the node has now: the addresses of
 * the --decap-iface devices (ferry_xdcap_v1, outer) and of every device
 * (ferry_xdaddr_v1), each made equal to its set by map_set_sync (new
 * entries in before stale ones go, so an address that stays is never
 * missing, across a restart too). Then, if either changed or derive says
 * so, decap_derive(): the XDP VIPs bound here (ferry_xdvip_v1) and the
 * pairs the program asks (ferry_xdpair_v1). A registry sync has derived
 * them already (plan_apply()), so it asks only for the addresses. The
 * caller holds the pin directory's lock (loader_load(), xdp_decap_sync()):
 * ferryctl's plan_apply() derives the same sets.
 */
static int decap_sync(struct ferryd *d, bool derive)
{
	struct ferry_xdcap_key *outer = NULL, *all = NULL;
	struct decap_maps dm = {
		.addr = bpf_map__fd(dc->maps.ferry_xdaddr_v1),
		.outer = bpf_map__fd(dc->maps.ferry_xdcap_v1),
		.vip = bpf_map__fd(dc->maps.ferry_xdvip_v1),
		.pair = bpf_map__fd(dc->maps.ferry_xdpair_v1),
		.dirfd = -1,	/* held by the caller */
	};
	struct decap_report dr = {};
	size_t no = 0, na = 0, oadd, odel, aadd, adel;
	char path[1024];
	__u32 one = 1;
	int err, svc_fd;

	ferry_pin_path(path, sizeof(path), d->cfg.bpffs, FERRY_MAP_SVC);
	if ((svc_fd = bpf_obj_get(path)) < 0) {
		err = -errno;
		log_warnx("xdp_decap: open %s: %s", path, strerror(-err));
		return err;
	}
	dm.svc = svc_fd;
	if ((err = node_addrs((const char *const *)xo.dc_ifs, xo.n_dc, &all, &na, &outer, &no)))
		goto cleanup;
	if ((err = map_set_sync(dm.outer, outer, sizeof(*outer), no, &one, sizeof(one), &oadd, &odel))) {
		log_warnx("xdp_decap: updating %s: %s", FERRY_MAP_XDCAP, strerror(-err));
		goto cleanup;
	}
	if ((err = map_set_sync(dm.addr, all, sizeof(*all), na, &one, sizeof(one), &aadd, &adel))) {
		log_warnx("xdp_decap: updating %s (%zu addresses, room for %d): %s", FERRY_MAP_XDADDR,
			  na, FERRY_XDADDR_MAX, strerror(-err));
		goto cleanup;
	}
	if ((derive || oadd || odel || aadd || adel) && (err = decap_derive(&dm, &dr))) {
		decap_warn(&dr, err);
		/* Too many pairs is the node's shape, not a fault: as in
		 * plan_apply(), the last pairs stay and ferryd runs on (a
		 * restart that failed here would crash-loop). */
		if (err != -E2BIG)
			goto cleanup;
		err = 0;
	}
	if (!no && (odel || !xo.dc_synced))
		log_warnx("xdp_decap: no address on %s%s: no tunnel will be accepted",
			  xo.dc_ifs[0], xo.n_dc > 1 ? " and the others" : "");
	xo.dc_synced = true;
	if (oadd || odel || dr.vip_added || dr.vip_removed)
		log_info("xdp_decap: tunnels to %zu address(es) (+%zu -%zu) for %zu local XDP VIP "
			 "address(es) (+%zu -%zu)", no, oadd, odel, dr.vips, dr.vip_added, dr.vip_removed);
cleanup:
	close(svc_fd);
	free(outer);
	free(all);
	return err;
}

/* The addresses again, and the VIPs and pairs if they changed: on an
 * address event, and after a registry sync where rtnetlink is not followed
 * or this failed last time (xdp_after_sync()). */
void xdp_decap_sync(struct ferryd *d)
{
	int err;

	if (!dc)
		return;
	if ((err = ferryd_lock(d)) == -EAGAIN && d->retry_fd >= 0) {
		log_debug("xdp_decap: writers' lock busy, sync retried in %d ms", FERRYD_LOCK_RETRY_MS);
		ferryd_retry(d, false, true);
		return;
	}
	if (!err) {
		err = decap_sync(d, false);
		maps_unlock(&d->maps);
	}
	xo.decap_stale = err != 0;
	if (err)
		log_warnx("xdp_decap: sync incomplete (%s, above); a set not written keeps its last "
			  "entries until the next address event or registry sync", strerror(-err));
}

/*
 * The LB's VLAN devices again from a dump of the node's links: at load, when
 * link messages were lost, and after a registry sync where rtnetlink is not
 * followed or this failed last time (xdp_after_sync()). Entries that stay are never
 * missing (map_kv_sync()).
 */
void xdp_vlan_sync(struct ferryd *d)
{
	struct xvlan_ent *ents = NULL;
	size_t n = 0, written, removed;
	int err;

	(void)d;
	if (!lb)
		return;
	err = xvlan_read(&ents, &n);
	if (!err)
		err = xvlan_sync(bpf_map__fd(lb->maps.ferry_xvlan_v1), ents, n, &written, &removed);
	xo.vlan_stale = err != 0;
	if (err) {
		log_warnx("xdp: reading VLAN devices into %s: %s; routes over a VLAN device may leave "
			  "untagged or by the wrong device until the next registry sync", FERRY_MAP_XVLAN,
			  strerror(-err));
	} else if (written || removed) {
		log_info("xdp: %zu VLAN device(s) (%zu written, %zu removed)", n, written, removed);
	}
	free(ents);
}

/*
 * After a registry sync, good or bad. The services are known now (ferryctl's
 * too, from the maps): which backend families the LB needs forwarding for.
 * The decap's addresses and the LB's VLAN devices are read again where
 * rtnetlink is not followed (--once, or its socket failed), or where the
 * last read failed: followed, it tells of every change, and a lost message
 * sets off a dump of its own. plan_apply() has derived the decap's VIPs
 * and pairs from the services.
 */
void xdp_after_sync(struct ferryd *d)
{
	if (!xo.nl || xo.decap_stale)
		xdp_decap_sync(d);
	if (!xo.nl || xo.vlan_stale)
		xdp_vlan_sync(d);
	xdp_check_forwarding(d);
}

struct rtnl_seen {
	bool	addrs;		/* an address changed: decap_sync() */
	bool	links;		/* a link message could not be applied, or was lost: dump them */
};

static int rtnl_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct rtnl_seen *s = arg;
	struct ferry_xvlan v;
	__u32 ifindex;
	bool changed;

	switch (nlh->nlmsg_type) {
	case RTM_NEWADDR:
	case RTM_DELADDR:
		s->addrs = true;
		break;
	case RTM_NEWLINK:
	case RTM_DELLINK:
		if (!lb)
			break;
		if (xvlan_apply(bpf_map__fd(lb->maps.ferry_xvlan_v1), nlh, &changed)) {
			s->links = true;
		} else if (changed) {
			if (xvlan_parse(nlh, &ifindex, &v) == 1)
				log_info("xdp: VLAN device %u: VLAN %u (%04x) over ifindex %u", ifindex,
					 ntohs(v.tci), ntohs(v.proto), v.lower_ifindex);
			else
				log_info("xdp: VLAN device %u gone", ifindex);
		}
		break;
	}
	return MNL_CB_OK;
}

/*
 * rtnetlink messages: address changes anywhere on the node
 * (RTNLGRP_IPV4_IFADDR, _IPV6_IFADDR) where the decap runs: a decap
 * interface's addresses are the outer set, and a VIP bound or unbound on any
 * device changes the inner one; every such message leads to one
 * decap_sync() from the full address list after the socket is drained. Link
 * changes (RTNLGRP_LINK) where the LB runs: each is applied to
 * ferry_xvlan_v1 as it comes. An overflow of the socket's buffer (ENOBUFS:
 * messages were lost) or a message too large for ours means both are read
 * again whole.
 */
static void on_rtnl(struct ferryd *d, int fd, uint32_t events, void *arg)
{
	static char buf[32768];		/* a link message runs to a few KiB */
	struct rtnl_seen seen = {};
	ssize_t n;

	(void)fd;
	(void)events;
	(void)arg;
	for (;;) {
		n = mnl_socket_recvfrom(xo.nl, buf, sizeof(buf));
		if (n > 0) {
			if (mnl_cb_run(buf, n, 0, 0, rtnl_cb, &seen) < 0)
				seen.addrs = seen.links = true;
			continue;
		}
		if (n < 0 && (errno == ENOBUFS || errno == ENOSPC)) {
			seen.addrs = seen.links = true;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			log_warn("xdp: reading rtnetlink");
		break;
	}
	if (seen.addrs)
		xdp_decap_sync(d);
	if (seen.links)
		xdp_vlan_sync(d);
}

/*
 * One rtnetlink socket for both programs: address groups for the decap,
 * the link group for the LB. Subscribed before the first decap_sync() and
 * the first VLAN dump: no change falls between the two (a message about a
 * change the dump saw already is applied again, the same).
 */
static int watch_rtnl(struct ferryd *d)
{
	int groups[3], ng = 0, err, i;

	if (xo.n_dc) {
		groups[ng++] = RTNLGRP_IPV4_IFADDR;
		groups[ng++] = RTNLGRP_IPV6_IFADDR;
	}
	if (xo.n_lb)
		groups[ng++] = RTNLGRP_LINK;
	xo.nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!xo.nl)
		return -errno;
	if (mnl_socket_bind(xo.nl, 0, MNL_SOCKET_AUTOPID))
		goto fail;
	for (i = 0; i < ng; i++)
		if (mnl_socket_setsockopt(xo.nl, NETLINK_ADD_MEMBERSHIP, &groups[i], sizeof(groups[i])))
			goto fail;
	if ((err = ev_add(d, mnl_socket_get_fd(xo.nl), EPOLLIN, on_rtnl, NULL))) {
		errno = -err;
		goto fail;
	}
	return 0;
fail:
	err = -errno;
	mnl_socket_close(xo.nl);
	xo.nl = NULL;
	return err;
}

static int load_decap(struct ferryd *d, struct bpf_object_open_opts *oo)
{
	int err, i;

	dc = xdp_decap_bpf__open_opts(oo);
	if (!dc) {
		err = -errno;
		log_warnx("open xdp_decap: %s", strerror(-err));
		return err;
	}
	/* Its outcome counters are the load balancer's, sized the same; its
	 * inner addresses at most one per service. */
	if ((err = loader_set_sizes(d, dc->obj)) ||
	    (err = ferry_xdp_size(dc->obj, d->cfg.max_services, d->cfg.max_backends)) ||
	    (err = xdp_decap_bpf__load(dc))) {
		log_warnx("load xdp_decap: %s", strerror(-err));
		return err;
	}
	/* Before attaching: a restart drops what an earlier run accepted and
	 * the node no longer has, and keeps what it still has. */
	if ((err = decap_sync(d, true)))
		return err;
	for (i = 0; i < xo.n_dc; i++)
		if ((err = attach(d, dc->progs.ferry_xdp_decap, "xdp_decap", xo.dc_ifs[i])))
			return err;
	log_info("xdp_decap: on %d interface(s)", xo.n_dc);
	return 0;
}

/* The XDP path's maps earlier versions pinned (loader_unpin_retired()). */
static const char *const xdp_retired[] = {
	"ferry_xflow_v1", "ferry_xflow_v2",			/* LRU hash; 160-byte sets */
	"ferry_xstat_v1", "ferry_xvip_v1", "ferry_xbe_v1",	/* per-CPU maps */
};

/*
 * Links an earlier run pinned for a role this run does not have on that
 * interface (an --xdp-iface or --decap-iface dropped, or moved to the other
 * role): unpinned and detached, before anything is attached, so a retired
 * interface stops balancing or decapsulating and the other role can take it
 * (the kernel allows one XDP program per device). Called whether or not any
 * XDP program loads now: dropping the last flag retires them all.
 *
 * "xdp_decap_eth0" also starts with "xdp_": the decap's prefix is matched
 * first. An LB on an interface named "decap_x" pins as "xdp_decap_x" too;
 * a name this run will attach through is kept, whichever role it reads as
 * (attach() adopts it, or replaces it when it is on another device).
 */
static void detach_stale(struct ferryd *d)
{
	char dir[512], why[128];
	const char *ifname;
	struct dirent *e;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s/links", d->cfg.bpffs);
	if (!(dp = opendir(dir))) {
		if (errno != ENOENT)
			log_warn("xdp: listing %s for stale links", dir);
		return;
	}
	while ((e = readdir(dp))) {
		if (!strncmp(e->d_name, "xdp_decap_", 10)) {
			ifname = e->d_name + 10;
			if (in_list(xo.dc_ifs, xo.n_dc, ifname) ||
			    in_list(xo.lb_ifs, xo.n_lb, e->d_name + 4))
				continue;
			snprintf(why, sizeof(why), "no --decap-iface %s now", ifname);
		} else if (!strncmp(e->d_name, "xdp_", 4)) {
			ifname = e->d_name + 4;
			if (in_list(xo.lb_ifs, xo.n_lb, ifname))
				continue;
			snprintf(why, sizeof(why), "no --xdp-iface %s now", ifname);
		} else {
			continue;
		}
		loader_link_unpin(d, e->d_name, why);
	}
	closedir(dp);
}

/*
 * The LB reads CONFIG_HZ (its next-hop TTL in jiffies) as a weak __kconfig
 * extern. libbpf looks for the kernel config in /boot/config-$(uname -r)
 * and /proc/config.gz only, and fails the whole load when it can open
 * neither, weak extern or not: a container without /boot, on a kernel
 * without CONFIG_IKCONFIG_PROC, has neither. Then hand libbpf a config of
 * its own instead, CONFIG_HZ=0, and the program falls back to 250 ticks.
 */
static const char *kconfig_or_empty(void)
{
	char path[PATH_MAX];
	struct utsname u;
	gzFile f;

	if (!uname(&u)) {
		snprintf(path, sizeof(path), "/boot/config-%s", u.release);
		if ((f = gzopen(path, "re")) || (f = gzopen("/proc/config.gz", "re"))) {
			gzclose(f);
			return NULL;	/* libbpf reads it */
		}
	}
	log_warnx("xdp: no kernel config (/boot/config-%s, /proc/config.gz): next-hop "
		  "resolutions are kept 250 jiffies (0.25 s at HZ=1000, 2.5 s at HZ=100)",
		  uname(&u) ? "?" : u.release);
	/* libbpf still reads the system config for any extern left unset here:
	 * name every __kconfig extern of bpf/xdp_lb.bpf.c. 0 reads as unknown. */
	return "CONFIG_HZ=0\n";
}

int xdp_load(struct ferryd *d)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = d->cfg.bpffs);
	int err, i, j;

	for (i = 0; i < xo.n_lb; i++)
		for (j = 0; j < xo.n_dc; j++)
			if (!strcmp(xo.lb_ifs[i], xo.dc_ifs[j])) {
				log_warnx("%s: --xdp-iface and --decap-iface on one interface: "
					  "one XDP program per device", xo.lb_ifs[i]);
				return -EINVAL;
			}
	detach_stale(d);
	if ((xo.n_lb || xo.n_dc) && !d->cfg.once && (err = watch_rtnl(d)))
		log_warnx("xdp: cannot follow rtnetlink (%s): %s read again at each registry sync only",
			  strerror(-err), xo.n_dc ? "the node's addresses (and VLAN devices) are" :
				      "the VLAN devices are");
	if (xo.n_lb) {
		oo.kconfig = kconfig_or_empty();
		if ((err = load_lb(d, &oo)))
			return err;
	}
	if (xo.n_dc && (err = load_decap(d, &oo)))
		return err;
	if (xo.n_lb || xo.n_dc)
		loader_unpin_retired(d->cfg.bpffs, xdp_retired,
				     sizeof(xdp_retired) / sizeof(xdp_retired[0]));
	return 0;
}

bool xdp_configured(void)
{
	return xo.n_lb || xo.n_dc;
}

void xdp_close(void)
{
	xdp_lb_bpf__destroy(lb);
	lb = NULL;
	xdp_decap_bpf__destroy(dc);
	dc = NULL;
	if (xo.nl)
		mnl_socket_close(xo.nl);	/* closing it leaves the epoll set */
	xo.nl = NULL;
}
