// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ferryctl registry check FILE: would ferryd take this registry? Before a
 * ConfigMap is pushed (in CI, say), the same parser and planner ferryd runs
 * say yes, or name the place that is wrong ("FILE:line:col: what").
 *
 * Capacity comes from the node when ferry is loaded at --bpffs (its maps'
 * sizes), else from ferryd's defaults; --max-services / --max-backends set
 * either one. With the node's own capacity, the document is also planned
 * against what the maps hold now and the changes a sync would make are
 * shown (nothing is written; the maps are read without the writers' lock,
 * so a sync running meanwhile can make the preview stale, never wrong about
 * the document). Maps that exist but cannot be read are reported, not taken
 * for a node without ferry.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <ferry/xdp.h>

#include "ferryctl.h"
#include "reconcile.h"
#include "registry.h"
#include "state.h"

struct check {
	struct registry_limits lim;
	const char *svc_from, *be_from;	/* where each limit came from: node, default, option */
	bool	node;		/* planned against the maps at --bpffs */
	struct plan_summary sum;
	size_t	writes;
};

/* Plan reg against the node when ferry is loaded there, else against an
 * empty one; the plan's summary in ck. Nothing is written. */
static int check_registry(struct ctl *c, const struct registry *reg, struct check *ck,
			  char *err, size_t errlen)
{
	struct fstate st;
	struct plan p;
	int ret;

	if (ck->node) {
		if ((ret = fstate_load(&c->maps, &st))) {
			snprintf(err, errlen, "reading the maps at %s: %s", c->bpffs, strerror(-ret));
			return ret;
		}
	} else {
		if ((ret = fstate_init(&st, ck->lim.max_services, ck->lim.max_backends))) {
			snprintf(err, errlen, "a node of %zu services and %zu backends: %s",
				 ck->lim.max_services, ck->lim.max_backends, strerror(-ret));
			return ret;
		}
		st.xring_m = FERRY_XDP_DEF_RING_M;	/* XDP services plan their rings */
	}
	plan_init(&p);
	ret = plan_registry(&p, &st, reg, err, errlen);
	ck->sum = p.sum;
	ck->writes = plan_writes(&p);
	plan_free(&p);
	fstate_free(&st);
	return ret;
}

static struct json_object *svc_json(const struct reg_service *s)
{
	struct json_object *o = json_object_new_object();
	struct faddr a = { .family = s->key.family };
	char ip[INET6_ADDRSTRLEN];

	memcpy(a.a, s->key.addr, sizeof(a.a));
	json_object_object_add(o, "name", json_object_new_string(s->name));
	json_object_object_add(o, "vip", json_object_new_string(faddr_str(&a, ip, sizeof(ip))));
	json_object_object_add(o, "port", json_object_new_int(ntohs(s->key.port)));
	json_object_object_add(o, "protocol", json_object_new_string(proto_name(s->key.proto)));
	json_object_object_add(o, "lb", json_object_new_string(lb_name(s->lb)));
	json_object_object_add(o, "xdp", json_object_new_boolean(s->xdp));
	json_object_object_add(o, "backend_count", json_object_new_int64(s->nbackends));
	return o;
}

/* A limit's source for people: from is "node", "default" or "option". */
static const char *from_text(const char *from, const char *opt)
{
	return !strcmp(from, "node") ? "this node's maps" : !strcmp(from, "option") ? opt :
								     "ferryd's default";
}

static void print_ok(const char *file, const struct registry *reg, const struct check *ck)
{
	size_t i, nxdp = 0;
	char key[96];

	for (i = 0; i < reg->nsvcs; i++)
		nxdp += reg->svcs[i].xdp;
	printf("%s: ok: %zu services (%zu with XDP), %zu backends; capacity %zu services (%s), "
	       "%zu backends (%s)\n", file, reg->nsvcs, nxdp, reg->nbackends, ck->lim.max_services,
	       from_text(ck->svc_from, "--max-services"), ck->lim.max_backends,
	       from_text(ck->be_from, "--max-backends"));
	for (i = 0; i < reg->nsvcs; i++) {
		const struct reg_service *s = &reg->svcs[i];

		printf("  %-32s %-28s %-11s %3zu backends%s\n", s->name,
		       svc_key_str(&s->key, key, sizeof(key)), lb_name(s->lb), s->nbackends,
		       s->xdp ? "  xdp" : "");
	}
	if (ck->node)
		printf("a sync now: services +%zu -%zu ~%zu, backends +%zu -%zu ~%zu, %zu map writes\n",
		       ck->sum.svc_added, ck->sum.svc_removed, ck->sum.svc_changed, ck->sum.be_added,
		       ck->sum.be_removed, ck->sum.be_changed, ck->writes);
}

static void json_ok(const struct registry *reg, const struct check *ck, struct json_object *o)
{
	struct json_object *arr = json_object_new_array(), *chg;
	size_t i;

	for (i = 0; i < reg->nsvcs; i++)
		json_object_array_add(arr, svc_json(&reg->svcs[i]));
	json_object_object_add(o, "services", arr);
	json_object_object_add(o, "max_services", json_object_new_int64(ck->lim.max_services));
	json_object_object_add(o, "max_backends", json_object_new_int64(ck->lim.max_backends));
	json_object_object_add(o, "max_services_from", json_object_new_string(ck->svc_from));
	json_object_object_add(o, "max_backends_from", json_object_new_string(ck->be_from));
	if (!ck->node)
		return;
	chg = json_object_new_object();
	json_object_object_add(chg, "services_added", json_object_new_int64(ck->sum.svc_added));
	json_object_object_add(chg, "services_removed", json_object_new_int64(ck->sum.svc_removed));
	json_object_object_add(chg, "services_changed", json_object_new_int64(ck->sum.svc_changed));
	json_object_object_add(chg, "backends_added", json_object_new_int64(ck->sum.be_added));
	json_object_object_add(chg, "backends_removed", json_object_new_int64(ck->sum.be_removed));
	json_object_object_add(chg, "backends_changed", json_object_new_int64(ck->sum.be_changed));
	json_object_object_add(chg, "map_writes", json_object_new_int64(ck->writes));
	json_object_object_add(o, "sync", chg);
}

/* The verdict on file: ok (ck), or the error in err. */
static void check_done(struct ctl *c, const char *file, const struct registry *reg,
		       const struct check *ck, const char *err)
{
	struct json_object *o;

	if (!ck)
		fprintf(stderr, "Error: %s\n", err);
	else if (!c->json)
		print_ok(file, reg, ck);
	if (!c->json)
		return;
	o = json_object_new_object();
	json_object_object_add(o, "file", json_object_new_string(file));
	json_object_object_add(o, "ok", json_object_new_boolean(ck != NULL));
	if (ck)
		json_ok(reg, ck, o);
	else
		json_object_object_add(o, "error", json_object_new_string(err));
	ctl_json_print(o);
}

static int registry_check(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "max-services", required_argument, NULL, 's' },
		{ "max-backends", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct check ck = { .lim = { FERRY_DEF_MAX_SERVICES, FERRY_DEF_MAX_BACKENDS },
			    .svc_from = "default", .be_from = "default" };
	unsigned long max_svc = 0, max_be = 0;
	struct registry reg;
	char err[FERRY_ERR_LEN];
	const char *which = NULL;
	int opt, ret;

	optind = 0;	/* a fresh scan that may permute: options after FILE too */
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt == 's' ? ctl_parse_count(c, "registry check", "--max-services", optarg,
						 UINT32_MAX, &max_svc) :
		    opt == 'b' ? ctl_parse_count(c, "registry check", "--max-backends", optarg,
						 UINT32_MAX, &max_be) :
				 ctl_usage(c, "registry check: unknown option"))
			return EXIT_USAGE;
	}
	if (optind != argc - 1)
		return ctl_usage(c, "registry check FILE [--max-services N] [--max-backends N]");
	/* The node's capacity when ferry is loaded there. No ferry there (not
	 * even its first map) is no error; a part of it, or maps that cannot
	 * be read, are: the node's capacity is then unknown. */
	if (!c->maps_open) {
		ret = ferry_maps_open(c->bpffs, &c->maps, &which);
		if (!ret)
			c->maps_open = true;
		else if (ret != -ENOENT || !which || strcmp(which, FERRY_MAP_SVC))
			fprintf(stderr, "Warning: cannot read the node's maps ('%s/%s': %s): checking "
				"against ferryd's defaults\n", c->bpffs, which ? which : "?",
				strerror(-ret));
	}
	if (c->maps_open) {
		ck.lim.max_services = c->maps.max_services;
		ck.lim.max_backends = c->maps.max_backends;
		ck.svc_from = ck.be_from = "node";
	}
	/* The preview needs the node's own capacity: what its sync would use. */
	ck.node = c->maps_open && !max_svc && !max_be;
	if (max_svc) {
		ck.lim.max_services = max_svc;
		ck.svc_from = "option";
	}
	if (max_be) {
		ck.lim.max_backends = max_be;
		ck.be_from = "option";
	}

	ret = registry_load(argv[optind], &ck.lim, &reg, err, sizeof(err));
	if (ret) {
		check_done(c, argv[optind], NULL, NULL, err);
		return 1;
	}
	ret = check_registry(c, &reg, &ck, err, sizeof(err));
	check_done(c, argv[optind], &reg, ret ? NULL : &ck, err);
	registry_free(&reg);
	return ret ? 1 : 0;
}

int do_registry(struct ctl *c, int argc, char **argv)
{
	static const struct cmd sub[] = {
		{ "check", registry_check, "registry check FILE" },
		{ NULL, NULL, NULL },
	};

	return ctl_dispatch(c, sub, "registry", argc - 1, argv + 1);
}
