// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ferryctl service ... / backend ...: read services from the maps, and edit
 * them through the same planner the daemon uses (reconcile.c), so an edit is
 * the same minimal, ordered set of writes a registry change would be.
 *
 * Ownership: a service the registry names belongs to the registry. An edit
 * here lasts until ferryd's next sync (file change, SIGHUP or the periodic
 * resync), which puts the registry's version back. Services created here are
 * never touched by registry syncs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "ferryctl.h"
#include "reconcile.h"
#include "registry.h"
#include "state.h"

static const char *owner_name(__u8 flags)
{
	return flags & FERRY_SVC_F_REGISTRY ? "registry" : flags & FERRY_SVC_F_MANUAL ? "ferryctl" : "unknown";
}

/* The services as they are now. An edit (edit true) reads them holding the
 * pin directory's lock, and keeps it until its last write (ctl_unlock()):
 * another writer could otherwise pick the same new ids from the same read. */
static int load_state(struct ctl *c, struct fstate *st, bool edit)
{
	int err;

	if ((err = edit ? ctl_lock(c) : ctl_open(c)))
		return err;
	if ((err = fstate_load(&c->maps, st))) {
		if (edit)
			ctl_unlock(c);
		return ctl_err(c, "cannot read the service maps in", c->bpffs, err);
	}
	return 0;
}

/* bs: the backend's counters; a backend without any (the lookup failed: not
 * yet counted) shows zeros and a closed circuit, as the plain output does. */
static struct json_object *backend_json(const struct be_state *b, const struct ferry_bestat *bs)
{
	struct json_object *o = json_object_new_object();
	struct faddr a = { .family = b->be.family };
	char ip[64];

	memcpy(a.a, b->be.addr, sizeof(a.a));
	json_object_object_add(o, "id", json_object_new_int64(b->id));
	json_object_object_add(o, "ip", json_object_new_string(faddr_str(&a, ip, sizeof(ip))));
	json_object_object_add(o, "port", json_object_new_int(ntohs(b->be.port)));
	json_object_object_add(o, "weight", json_object_new_int(b->be.weight));
	json_object_object_add(o, "state", json_object_new_string(be_state_name(b->be.state)));
	json_object_object_add(o, "health", json_object_new_string(health_name(b->be.health)));
	json_object_object_add(o, "circuit", json_object_new_string(circuit_name(bs->circuit)));
	json_object_object_add(o, "active", json_object_new_int64(bs->active));
	json_object_object_add(o, "opened", json_object_new_int64(bs->opened));
	json_object_object_add(o, "failed", json_object_new_int64(bs->failed));
	return o;
}

static struct json_object *service_json(const struct svc_state *s)
{
	struct json_object *o = json_object_new_object();
	struct faddr a = { .family = s->key.family };
	char ip[64], key[96];

	memcpy(a.a, s->key.addr, sizeof(a.a));
	json_object_object_add(o, "name", json_object_new_string(s->name));
	json_object_object_add(o, "service", json_object_new_string(svc_key_str(&s->key, key, sizeof(key))));
	json_object_object_add(o, "vip", json_object_new_string(faddr_str(&a, ip, sizeof(ip))));
	json_object_object_add(o, "port", json_object_new_int(ntohs(s->key.port)));
	json_object_object_add(o, "protocol", json_object_new_string(proto_name(s->key.proto)));
	json_object_object_add(o, "lb", json_object_new_string(lb_name(s->val.lb)));
	json_object_object_add(o, "id", json_object_new_int64(s->val.id));
	json_object_object_add(o, "owner", json_object_new_string(owner_name(s->val.flags)));
	json_object_object_add(o, "xdp", json_object_new_boolean(!!(s->val.flags & FERRY_SVC_F_XDP)));
	json_object_object_add(o, "backend_count", json_object_new_int64(s->n));
	return o;
}

static int service_list(struct ctl *c, int argc, char **argv)
{
	struct json_object *arr;
	struct fstate st;
	size_t i;
	int err;

	(void)argv;
	if (argc != 1)
		return ctl_usage(c, "service list takes no arguments");
	if ((err = load_state(c, &st, false)))
		return err;
	if (c->json) {
		arr = json_object_new_array();
		for (i = 0; i < st.n; i++)
			json_object_array_add(arr, service_json(&st.svcs[i]));
		ctl_json_print(arr);
	} else {
		printf("%-28s %-30s %-12s %8s  %s\n", "NAME", "SERVICE", "LB", "BACKENDS", "OWNER");
		for (i = 0; i < st.n; i++) {
			char key[96];

			printf("%-28s %-30s %-12s %8zu  %s\n", st.svcs[i].name,
			       svc_key_str(&st.svcs[i].key, key, sizeof(key)), lb_name(st.svcs[i].val.lb),
			       st.svcs[i].n, owner_name(st.svcs[i].val.flags));
		}
	}
	fstate_free(&st);
	return 0;
}

static int service_show(struct ctl *c, int argc, char **argv)
{
	struct ferry_svc_key k;
	struct svc_state *s;
	struct fstate st;
	char key[96];
	size_t i;
	int err;

	if (argc != 2)
		return ctl_usage(c, "service show VIP:PORT[/proto]");
	if ((err = ctl_parse_svc_key(c, argv[1], &k)) || (err = load_state(c, &st, false)))
		return err;
	s = fstate_find(&st, &k);
	if (!s) {
		fstate_free(&st);
		return ctl_err(c, "no such service", argv[1], -ENOENT);
	}
	if (c->json) {
		struct json_object *o = service_json(s), *arr = json_object_new_array();

		for (i = 0; i < s->n; i++) {
			struct ferry_bestat bs = {};

			bpf_map_lookup_elem(c->maps.bestat, &s->bes[i].id, &bs);	/* none yet: zeros */
			json_object_array_add(arr, backend_json(&s->bes[i], &bs));
		}
		json_object_object_add(o, "backends", arr);
		ctl_json_print(o);
	} else {
		printf("service %s  name %s  lb %s  id %u  owner %s%s\n", svc_key_str(&s->key, key, sizeof(key)),
		       s->name, lb_name(s->val.lb), s->val.id, owner_name(s->val.flags),
		       s->val.flags & FERRY_SVC_F_XDP ? "  xdp" : "");
		printf("  %-6s %-40s %6s %-11s %-9s %-9s %8s %10s %8s\n", "ID", "BACKEND", "WEIGHT", "STATE",
		       "HEALTH", "CIRCUIT", "ACTIVE", "OPENED", "FAILED");
		for (i = 0; i < s->n; i++) {
			const struct ferry_backend *b = &s->bes[i].be;
			struct ferry_bestat bs = {};
			char ep[80];

			bpf_map_lookup_elem(c->maps.bestat, &s->bes[i].id, &bs);
			backend_str(b, ep, sizeof(ep));
			printf("  %-6u %-40s %6u %-11s %-9s %-9s %8llu %10llu %8llu\n", s->bes[i].id, ep, b->weight,
			       be_state_name(b->state), health_name(b->health), circuit_name(bs.circuit),
			       (unsigned long long)bs.active, (unsigned long long)bs.opened,
			       (unsigned long long)bs.failed);
		}
	}
	fstate_free(&st);
	return 0;
}

/* Plan and apply one service's new form. */
static int apply_one(struct ctl *c, struct fstate *st, const struct svc_state *cur,
		     const struct reg_service *want, const char *obj)
{
	struct plan_opts o = { .owner = FERRY_SVC_F_MANUAL, .keep_quarantine = false };
	struct plan p;
	char err[FERRY_ERR_LEN] = "";
	int ret;

	if (cur && (cur->val.flags & FERRY_SVC_F_REGISTRY)) {
		o.owner = FERRY_SVC_F_REGISTRY;
		fprintf(stderr, "Note: %s is owned by the registry; ferryd's next sync puts the registry's version back\n", obj);
	}
	plan_init(&p);
	ret = plan_service(&p, st, cur, want, &o, err, sizeof(err));
	if (!ret)
		ret = plan_apply(&c->maps, &p, err, sizeof(err));
	if (ret) {
		plan_free(&p);
		return ctl_err(c, err[0] ? err : "cannot apply the change to", obj, err[0] ? 0 : ret);
	}
	if (c->json) {
		struct json_object *r = json_object_new_object();

		json_object_object_add(r, "service", json_object_new_string(obj));
		json_object_object_add(r, "map_writes", json_object_new_int64(plan_writes(&p)));
		ctl_json_print(r);
	} else {
		printf("%s: %zu map writes\n", obj, plan_writes(&p));
	}
	plan_free(&p);
	return 0;
}

static int service_add(struct ctl *c, int argc, char **argv)
{
	struct reg_service want = {};
	struct fstate st;
	int i, err, lb = FERRY_LB_ROUND_ROBIN;

	if (argc < 3)
		return ctl_usage(c, "service add NAME VIP:PORT[/proto] [--lb POLICY] [--xdp]");
	for (i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--lb") && i + 1 < argc) {
			if ((lb = lb_parse(argv[++i])) < 0)
				return ctl_usage(c, "--lb: '%s' is not round_robin, random, weighted, maglev or least_conn", argv[i]);
		} else if (!strcmp(argv[i], "--xdp")) {
			want.xdp = true;	/* also load balanced by the XDP LB, as "xdp": true */
		} else {
			return ctl_usage(c, "service add: unexpected '%s'", argv[i]);
		}
	}
	if (!argv[1][0] || strlen(argv[1]) >= FERRY_NAME_LEN)
		return ctl_usage(c, "service name must be 1..%d characters", FERRY_NAME_LEN - 1);
	if ((err = ctl_parse_svc_key(c, argv[2], &want.key)))
		return err;
	snprintf(want.name, sizeof(want.name), "%s", argv[1]);
	want.lb = lb;
	circuit_defaults(&want.circuit);
	if ((err = load_state(c, &st, true)))
		return err;
	if (fstate_find(&st, &want.key))
		err = ctl_err(c, "service already exists", argv[2], -EEXIST);
	else
		err = apply_one(c, &st, NULL, &want, argv[2]);
	ctl_unlock(c);
	fstate_free(&st);
	return err;
}

static int service_del(struct ctl *c, int argc, char **argv)
{
	struct ferry_svc_key k;
	struct svc_state *s;
	struct fstate st;
	int err;

	if (argc != 2)
		return ctl_usage(c, "service del VIP:PORT[/proto]");
	if ((err = ctl_parse_svc_key(c, argv[1], &k)) || (err = load_state(c, &st, true)))
		return err;
	s = fstate_find(&st, &k);
	err = s ? apply_one(c, &st, s, NULL, argv[1]) : ctl_err(c, "no such service", argv[1], -ENOENT);
	ctl_unlock(c);
	fstate_free(&st);
	return err;
}

int do_service(struct ctl *c, int argc, char **argv)
{
	static const struct cmd sub[] = {
		{ "list", service_list, NULL },
		{ "show", service_show, NULL },
		{ "add", service_add, NULL },
		{ "del", service_del, NULL },
		{ NULL, NULL, NULL },
	};

	return ctl_dispatch(c, sub, "service", argc - 1, argv + 1);
}

/* backend add|del|set VIP:PORT[/proto] IP:PORT [--weight N] [--state S] */
int do_backend(struct ctl *c, int argc, char **argv)
{
	struct ferry_svc_key k;
	struct reg_service want;
	struct svc_state *s;
	struct fstate st;
	struct faddr ba;
	long weight = -1;
	int state = -1, port, i, err;
	size_t j;
	const char *op;
	bool found = false;

	if (argc < 4)
		return ctl_usage(c, "backend add|del|set VIP:PORT[/proto] IP:PORT [--weight N] [--state S]");
	op = argv[1];
	if (strcmp(op, "add") && strcmp(op, "del") && strcmp(op, "set"))
		return ctl_usage(c, "backend: unknown sub-command '%s'", op);
	if ((err = ctl_parse_svc_key(c, argv[2], &k)))
		return err;
	if (endpoint_parse(argv[3], &ba, &port, NULL))
		return ctl_usage(c, "'%s' is not IP:PORT (IPv6 as [addr]:port)", argv[3]);
	for (i = 4; i < argc; i++) {
		char *end;

		if (!strcmp(argv[i], "--weight") && i + 1 < argc) {
			weight = strtol(argv[++i], &end, 10);
			if (*end || end == argv[i] || weight < 0 || weight > FERRY_MAX_WEIGHT)
				return ctl_usage(c, "--weight: '%s' is not 0..%d", argv[i], FERRY_MAX_WEIGHT);
		} else if (!strcmp(argv[i], "--state") && i + 1 < argc) {
			if ((state = be_state_parse(argv[++i])) < 0)
				return ctl_usage(c, "--state: '%s' is not active, draining or quarantined", argv[i]);
		} else {
			return ctl_usage(c, "backend %s: unexpected '%s'", op, argv[i]);
		}
	}
	if (!strcmp(op, "set") && weight < 0 && state < 0)
		return ctl_usage(c, "backend set needs --weight N or --state S");
	if (!strcmp(op, "del") && (weight >= 0 || state >= 0))
		return ctl_usage(c, "backend del takes no --weight/--state");
	if (ba.family != k.family)
		return ctl_usage(c, "backend %s and service %s are of different address families", argv[3], argv[2]);

	if ((err = load_state(c, &st, true)))
		return err;
	want.backends = NULL;
	s = fstate_find(&st, &k);
	if (!s) {
		err = ctl_err(c, "no such service", argv[2], -ENOENT);
		goto cleanup;
	}
	if ((err = svc_state_to_reg(s, &want))) {
		err = ctl_err(c, "out of memory for", argv[2], err);
		goto cleanup;
	}
	for (j = 0; j < want.nbackends; j++) {
		struct reg_backend *b = &want.backends[j];

		if (!faddr_eq(&b->addr, &ba) || b->port != port)
			continue;
		found = true;
		if (!strcmp(op, "del")) {
			memmove(b, b + 1, (want.nbackends - j - 1) * sizeof(*b));
			want.nbackends--;
		} else {
			if (weight >= 0)
				b->weight = weight;
			if (state >= 0)
				b->state = state;
		}
		break;
	}
	if (!strcmp(op, "add")) {
		if (found) {
			err = ctl_err(c, "backend already in the service", argv[3], -EEXIST);
			goto cleanup;
		}
		/* As the registry has it: XDP forwards by direct server return. */
		if (want.xdp && port != ntohs(k.port)) {
			err = ctl_err(c, "an xdp service cannot translate ports (direct server return): "
				      "the backend's port must be the VIP's", argv[3], -EINVAL);
			goto cleanup;
		}
		if (want.nbackends >= FERRY_MAX_SVC_BACKENDS) {
			err = ctl_err(c, "service is at its backend limit", argv[2], -ENOSPC);
			goto cleanup;
		}
		/* svc_state_to_reg() leaves room for one more. */
		want.backends[want.nbackends] = (struct reg_backend){
			.addr = ba, .port = port, .weight = weight >= 0 ? weight : 1,
			.state = state >= 0 ? state : FERRY_BE_ACTIVE,
		};
		want.nbackends++;
	} else if (!found) {
		err = ctl_err(c, "no such backend in the service", argv[3], -ENOENT);
		goto cleanup;
	}
	err = apply_one(c, &st, s, &want, argv[2]);
cleanup:
	ctl_unlock(c);
	free(want.backends);
	fstate_free(&st);
	return err;
}
