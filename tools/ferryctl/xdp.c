// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ferryctl xdp stats | flows | decap: the XDP load balancer's counters
 * (summed over CPUs: outcomes, LRU hits/misses, drop reasons, packets and
 * bytes per VIP and per backend), a sample of its flow table, and the
 * addresses the backend-side decap accepts.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ferry/xdp.h>

#include "ferryctl.h"
#include "addr.h"
#include "state.h"

static const char *const xstat_names[FERRY_XSTAT_MAX] = {
	[FERRY_XSTAT_PASS_NOT_IP] = "pass_not_ip",
	[FERRY_XSTAT_PASS_NOT_VIP] = "pass_not_vip",
	[FERRY_XSTAT_PASS_FRAG] = "pass_fragment",
	[FERRY_XSTAT_PASS_MALFORMED] = "pass_malformed",
	[FERRY_XSTAT_PASS_ICMP] = "pass_icmp",
	[FERRY_XSTAT_PASS_NO_RING] = "pass_no_ring",
	[FERRY_XSTAT_PASS_V6_EXT] = "pass_ipv6_ext",
	[FERRY_XSTAT_LRU_HIT] = "lru_hit",
	[FERRY_XSTAT_LRU_MISS] = "lru_miss",
	[FERRY_XSTAT_SYN_NEW] = "syn_new_flow",
	[FERRY_XSTAT_RING_RETRY] = "ring_retry",
	[FERRY_XSTAT_NH_LOOKUP] = "nexthop_lookup",
	[FERRY_XSTAT_NH_GATEWAY] = "nexthop_gateway",
	[FERRY_XSTAT_ICMP_FWD] = "icmp_forwarded",
	[FERRY_XSTAT_ICMP_TOO_BIG] = "icmp_too_big_sent",
	[FERRY_XSTAT_TX] = "tx",
	[FERRY_XSTAT_REDIRECT] = "redirect",
	[FERRY_XSTAT_DROP_NO_BACKEND] = "drop_no_backend",
	[FERRY_XSTAT_DROP_MALFORMED] = "drop_malformed",
	[FERRY_XSTAT_DROP_NO_ROUTE] = "drop_no_route",
	[FERRY_XSTAT_DROP_TOO_BIG] = "drop_too_big",
	[FERRY_XSTAT_DROP_ADJUST] = "drop_adjust_failed",
	[FERRY_XSTAT_DECAP_OK] = "decap",
	[FERRY_XSTAT_DECAP_NOT_OURS] = "decap_not_ours",
	[FERRY_XSTAT_DECAP_MALFORMED] = "decap_malformed",
	[FERRY_XSTAT_VIP_SLOW] = "vip_slow_lookup",
	[FERRY_XSTAT_RING_FALLBACK] = "ring_fallback",
	[FERRY_XSTAT_DECAP_NOT_VIP] = "decap_not_vip",
	[FERRY_XSTAT_LOCAL] = "local",
	[FERRY_XSTAT_DECAP_CE_NOT_ECT] = "decap_ce_not_ect",
	[FERRY_XSTAT_DECAP_BAD_OUTER] = "decap_bad_outer",
};

static int open_pin(struct ctl *c, const char *name, int *fd)
{
	char path[512];

	ferry_pin_path(path, sizeof(path), c->bpffs, name);
	*fd = bpf_obj_get(path);
	if (*fd < 0)
		return ctl_err(c, "XDP load balancer not loaded (ferryd --xdp-iface): cannot open",
			       path, -errno);
	return 0;
}

static int xdp_stats(struct ctl *c, int argc, char **argv)
{
	struct json_object *jo = NULL, *jc = NULL, *jv = NULL;
	__u64 used, cap, full;
	struct xdp_counters x = {};
	struct fstate st = {};
	int ret = 1, err;
	size_t i, j;

	(void)argv;
	if (argc > 1)
		return ctl_usage(c, "xdp stats: unexpected argument '%s'", argv[1]);
	if (ctl_open(c))
		goto cleanup;
	if ((err = xdp_counters_open(c->bpffs, &x))) {
		ret = ctl_err(c, err == -ENOENT ? "XDP load balancer not loaded (ferryd "
			      "--xdp-iface): no counters under" : "reading the XDP counters under",
			      c->bpffs, err);
		goto cleanup;
	}
	if ((err = fstate_load(&c->maps, &st))) {
		ret = ctl_err(c, "reading the maps under", c->bpffs, err);
		goto cleanup;
	}
	if (c->json) {
		jo = json_object_new_object();
		jc = json_object_new_object();
		jv = json_object_new_array();
		json_object_object_add(jo, "counters", jc);
		json_object_object_add(jo, "vips", jv);
	} else {
		printf("%-22s %14s\n", "counter", "packets");
	}
	for (i = 0; i < FERRY_XSTAT_MAX; i++) {
		if (!xstat_names[i])
			continue;
		if (jc)
			json_object_object_add(jc, xstat_names[i], json_object_new_int64(x.stat[i]));
		else if (x.stat[i])
			printf("%-22s %14llu\n", xstat_names[i], (unsigned long long)x.stat[i]);
	}
	/* ctl_open() opened the VIP index with the other maps (-1 if absent). */
	if (c->maps.xsvc >= 0 && !xsvc_count(c->maps.xsvc, &used, &cap, &full)) {
		if (jo) {
			struct json_object *jx = json_object_new_object();

			json_object_object_add(jx, "vips", json_object_new_int64(used));
			json_object_object_add(jx, "capacity", json_object_new_int64(cap));
			json_object_object_add(jx, "sets_full", json_object_new_int64(full));
			json_object_object_add(jo, "vip_index", jx);
		} else {
			printf("\nVIP index: %llu VIP(s) in %llu ways; %llu full set(s) send misses to %s\n",
			       (unsigned long long)used, (unsigned long long)cap,
			       (unsigned long long)full, FERRY_MAP_SVC);
		}
	}
	if (c->maps.xvipf >= 0 && !xvipf_count(c->maps.xvipf, &used)) {
		if (jo) {
			struct json_object *jx = json_object_new_object();

			json_object_object_add(jx, "open_bits", json_object_new_int64(used));
			json_object_object_add(jx, "bits", json_object_new_int64(FERRY_XVIPF_BITS));
			json_object_object_add(jo, "vip_filter", jx);
		} else if (used == FERRY_XVIPF_BITS) {
			printf("VIP filter: not built: every packet asks the index\n");
		} else {
			printf("VIP filter: %llu of %u bits let packets on to the index (%.2f%%)\n",
			       (unsigned long long)used, FERRY_XVIPF_BITS, 100.0 * used / FERRY_XVIPF_BITS);
		}
	}
	if (!c->json && x.vip.a && x.be.a)
		printf("\n%-32s %-28s %12s %14s\n", "service / backend", "address", "packets", "bytes");
	for (i = 0; x.vip.a && x.be.a && i < st.n; i++) {
		const struct svc_state *s = &st.svcs[i];
		struct json_object *js = NULL, *jb = NULL;
		struct ferry_xcnt cnt;
		char key[96], bs[96];

		if (!(s->val.flags & FERRY_SVC_F_XDP))
			continue;
		xcnt_get(&x.vip, s->val.id, &cnt);
		svc_key_str(&s->key, key, sizeof(key));
		if (c->json) {
			js = json_object_new_object();
			jb = json_object_new_array();
			json_object_object_add(js, "name", json_object_new_string(s->name));
			json_object_object_add(js, "vip", json_object_new_string(key));
			json_object_object_add(js, "ring", json_object_new_int64(s->xring_m));
			json_object_object_add(js, "packets", json_object_new_int64(cnt.packets));
			json_object_object_add(js, "bytes", json_object_new_int64(cnt.bytes));
			json_object_object_add(js, "backends", jb);
			json_object_array_add(jv, js);
		} else {
			printf("%-32s %-28s %12llu %14llu%s\n", s->name, key, (unsigned long long)cnt.packets,
			       (unsigned long long)cnt.bytes, s->xring_m ? "" : "  (no ring yet)");
		}
		for (j = 0; j < s->n; j++) {
			const struct be_state *b = &s->bes[j];

			xcnt_get(&x.be, b->id, &cnt);
			backend_str(&b->be, bs, sizeof(bs));
			if (jb) {
				struct json_object *o = json_object_new_object();

				json_object_object_add(o, "id", json_object_new_int64(b->id));
				json_object_object_add(o, "addr", json_object_new_string(bs));
				json_object_object_add(o, "weight", json_object_new_int64(b->be.weight));
				json_object_object_add(o, "packets", json_object_new_int64(cnt.packets));
				json_object_object_add(o, "bytes", json_object_new_int64(cnt.bytes));
				json_object_array_add(jb, o);
			} else {
				printf("  %-30s %-28s %12llu %14llu\n", "", bs, (unsigned long long)cnt.packets,
				       (unsigned long long)cnt.bytes);
			}
		}
	}
	if (jo) {
		ctl_json_print(jo);
		jo = NULL;
	}
	ret = 0;
cleanup:
	json_object_put(jo);
	fstate_free(&st);
	xdp_counters_close(&x);
	return ret;
}

/* One way of the flow table, and its client, as text / JSON. */
static void flow_show(struct ctl *c, const struct ferry_xflow *w, const struct ferry_xclient *cl,
		      struct json_object *ja)
{
	struct faddr fa = { .family = cl->family };
	struct ferry_svc_name sn = { .name = "-" };
	struct ferry_backend be;
	__u32 be_id = (__u32)w->id;
	char cs[64], ca[80], bs[96] = "-";

	memcpy(fa.a, cl->addr, sizeof(fa.a));
	faddr_str(&fa, cs, sizeof(cs));
	snprintf(ca, sizeof(ca), cl->family == AF_INET6 ? "[%s]:%u" : "%s:%u", cs, ntohs(cl->port));
	if (bpf_map_lookup_elem(c->maps.name, &w->svc_id, &sn))
		snprintf(sn.name, sizeof(sn.name), "svc#%u", w->svc_id);
	sn.name[sizeof(sn.name) - 1] = 0;
	if (!bpf_map_lookup_elem(c->maps.be, &be_id, &be))
		backend_str(&be, bs, sizeof(bs));
	if (ja) {
		struct json_object *jo = json_object_new_object();

		json_object_object_add(jo, "client", json_object_new_string(ca));
		json_object_object_add(jo, "service", json_object_new_string(sn.name));
		json_object_object_add(jo, "proto", json_object_new_string(proto_name(cl->proto)));
		json_object_object_add(jo, "backend_id", json_object_new_int64(be_id));
		json_object_object_add(jo, "backend", json_object_new_string(bs));
		json_object_array_add(ja, jo);
	} else {
		printf("%-44s %-32s %-5s %s\n", ca, sn.name, proto_name(cl->proto), bs);
	}
}

/*
 * A sample of the flow table: the first --max flows in set order; the rest
 * only counted, read through a read-only mapping of the pinned table (no
 * syscall per set).
 */
static int xdp_flows(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "max", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const struct ferry_xflow_set *sets = NULL;
	const struct ferry_xclient_set *clients = NULL;
	struct json_object *ja = NULL;
	unsigned long max = 20, shown = 0, total = 0;
	__u32 nsets = 0, ncl = 0, i;
	int fd = -1, fdc = -1, ret = 1, o, k, err;
	void *p;

	while ((o = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
		if (o != 'n')
			return ctl_usage(c, "xdp flows: unknown option");
		if (ctl_parse_count(c, "xdp flows", "--max", optarg, ULONG_MAX, &max))
			return EXIT_USAGE;
	}
	if (optind < argc)
		return ctl_usage(c, "xdp flows: unexpected argument '%s'", argv[optind]);
	if (ctl_open(c) || open_pin(c, FERRY_MAP_XFLOW, &fd) || open_pin(c, FERRY_MAP_XCLIENT, &fdc))
		goto cleanup;
	if ((err = array_mmap(fd, sizeof(*sets), false, &p, &nsets))) {
		ret = ctl_err(c, err == -EPROTO ? "flow table layout differs from this ferryctl's:" :
			      "mapping", FERRY_MAP_XFLOW, err);
		goto cleanup;
	}
	sets = p;
	if ((err = array_mmap(fdc, sizeof(*clients), false, &p, &ncl))) {
		ret = ctl_err(c, err == -EPROTO ? "flow client layout differs from this ferryctl's:" :
			      "mapping", FERRY_MAP_XCLIENT, err);
		goto cleanup;
	}
	clients = p;
	if (c->json)
		ja = json_object_new_array();
	else
		printf("%-44s %-32s %-5s %s\n", "client", "service", "proto", "backend");
	for (i = 0; i < nsets; i++) {
		for (k = 0; k < FERRY_XFLOW_WAYS; k++) {
			const struct ferry_xflow *w = &sets[i].way[k];
			struct ferry_xclient cl = {};
			struct ferry_xflow copy;

			if (!(__u32)w->id)
				continue;
			total++;
			if (shown >= max)
				continue;
			/* the kernel may rewrite both meanwhile */
			memcpy(&copy, w, sizeof(copy));
			if (i < ncl)
				memcpy(&cl, &clients[i].way[k], sizeof(cl));
			shown++;
			flow_show(c, &copy, &cl, ja);
		}
	}
	if (ja) {
		struct json_object *jo = json_object_new_object();

		json_object_object_add(jo, "flows", ja);
		json_object_object_add(jo, "shown", json_object_new_int64(shown));
		json_object_object_add(jo, "total", json_object_new_int64(total));
		json_object_object_add(jo, "capacity",
				       json_object_new_int64((__u64)nsets * FERRY_XFLOW_WAYS));
		ja = NULL;
		ctl_json_print(jo);
	} else {
		printf("%lu of %lu flows shown (table: %llu)\n", shown, total,
		       (unsigned long long)nsets * FERRY_XFLOW_WAYS);
	}
	ret = 0;
cleanup:
	json_object_put(ja);
	array_munmap(sets, sizeof(*sets), nsets);
	array_munmap(clients, sizeof(*clients), ncl);
	if (fd >= 0)
		close(fd);
	if (fdc >= 0)
		close(fdc);
	return ret;
}

static int xdcap_cmp(const void *a, const void *b)
{
	const struct ferry_xdcap_key *x = a, *y = b;

	if (x->family != y->family)
		return x->family - y->family;
	return memcmp(x->addr, y->addr, sizeof(x->addr));
}

/*
 * What the decap accepts: tunnels to an outer address (ferry_xdcap_v1, the
 * --decap-iface addresses) whose inner destination is a VIP address
 * (ferry_xdvip_v1, XDP VIPs bound on the node); and the node's addresses
 * the second is derived from (ferry_xdaddr_v1). ferryd keeps all three.
 */
static int xdp_decap(struct ctl *c, int argc, char **argv)
{
	static const struct { const char *map, *kind, *json; } sets[] = {
		{ FERRY_MAP_XDCAP, "outer", "outer" }, { FERRY_MAP_XDVIP, "vip", "vips" },
		{ FERRY_MAP_XDADDR, "node", "node" },
	};
	struct json_object *jo = NULL;
	struct ferry_xdcap_key *keys = NULL;
	__u32 *vals = NULL;
	char path[512], as[64];
	size_t i, j, n;
	int fd = -1, ret = 1, err;

	(void)argv;
	if (argc > 1)
		return ctl_usage(c, "xdp decap: unexpected argument '%s'", argv[1]);
	if (c->json)
		jo = json_object_new_object();
	for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		struct json_object *ja = NULL;

		ferry_pin_path(path, sizeof(path), c->bpffs, sets[i].map);
		if ((fd = bpf_obj_get(path)) < 0) {
			ret = ctl_err(c, "decap not loaded (ferryd --decap-iface): cannot open", path, -errno);
			goto cleanup;
		}
		if ((err = map_dump(fd, sizeof(*keys), sizeof(*vals), (void **)&keys, (void **)&vals, &n))) {
			ret = ctl_err(c, "reading", path, err);
			goto cleanup;
		}
		qsort(keys, n, sizeof(*keys), xdcap_cmp);
		if (jo) {
			ja = json_object_new_array();
			json_object_object_add(jo, sets[i].json, ja);
		}
		for (j = 0; j < n; j++) {
			struct faddr fa = { .family = keys[j].family };

			memcpy(fa.a, keys[j].addr, sizeof(fa.a));
			faddr_str(&fa, as, sizeof(as));
			if (ja)
				json_object_array_add(ja, json_object_new_string(as));
			else
				printf("%-5s %s\n", sets[i].kind, as);
		}
		free(keys);
		free(vals);
		keys = NULL;
		vals = NULL;
		close(fd);
		fd = -1;
	}
	if (jo) {
		ctl_json_print(jo);
		jo = NULL;
	}
	ret = 0;
cleanup:
	json_object_put(jo);
	free(keys);
	free(vals);
	if (fd >= 0)
		close(fd);
	return ret;
}

int do_xdp(struct ctl *c, int argc, char **argv)
{
	static const struct cmd sub[] = {
		{ "stats", xdp_stats, "xdp stats" },
		{ "flows", xdp_flows, "xdp flows [--max N]" },
		{ "decap", xdp_decap, "xdp decap" },
		{ NULL, NULL, NULL },
	};

	return ctl_dispatch(c, sub, "xdp", argc - 1, argv + 1);
}
