// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ferryctl stats: the counters ferryd exports on /metrics, read straight
 * from the pinned maps (no daemon needed): data-path outcomes, per service
 * and per backend connection counters with circuit and health state, map
 * fill and the registry sync status. Same snapshot as the exporter
 * (libferry metrics.c), so the two never disagree.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <bpf/libbpf.h>

#include "addr.h"
#include "ferryctl.h"
#include "metrics.h"
#include "registry.h"
#include "stat_names.h"

static const char *stat_name(const struct stat_desc *d, int i, const char *pfx, char *buf, size_t len)
{
	if (d[i].name)
		return d[i].name;
	snprintf(buf, len, "%sslot_%d", pfx, i);
	return buf;
}

static struct json_object *j_u64(__u64 v)
{
	return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

static void print_plain(const struct ferry_snapshot *s, bool backends)
{
	char name[128], vip[128], ep[128];
	size_t i, j, k = 0;
	int n;

	if (s->has_stats) {
		printf("data path:\n");
		for (n = 0; n < FERRY_STAT_MAX; n++)
			if (ferry_stat_descs[n].name || s->stats[n])
				printf("  %-24s %llu\n", stat_name(ferry_stat_descs, n, "", name, sizeof(name)),
				       (unsigned long long)s->stats[n]);
	}
	if (s->has_xdp) {
		printf("xdp:\n");
		for (n = 0; n < FERRY_XSTAT_MAX; n++)
			if (ferry_xstat_descs[n].name || s->xstats[n])
				printf("  %-24s %llu\n", stat_name(ferry_xstat_descs, n, "xdp_", name, sizeof(name)),
				       (unsigned long long)s->xstats[n]);
		if (s->xvip) {
			printf("xdp services:\n  %-28s %-26s %12s %14s\n", "SERVICE", "VIP", "PACKETS", "BYTES");
			for (i = 0; i < s->st.n; i++)
				if (s->st.svcs[i].val.flags & FERRY_SVC_F_XDP)
					printf("  %-28s %-26s %12llu %14llu\n",
					       snapshot_svc_label(&s->st.svcs[i], name, sizeof(name)),
					       svc_key_str(&s->st.svcs[i].key, vip, sizeof(vip)),
					       (unsigned long long)s->xvip[i].packets,
					       (unsigned long long)s->xvip[i].bytes);
		}
	}
	printf("services:\n  %-28s %-26s %5s %6s %10s %10s %8s %8s %8s\n", "SERVICE", "VIP", "BE", "USABLE",
	       "OPENED", "ESTABL", "FAILED", "ACTIVE", "CB_OPEN");
	for (i = 0; i < s->st.n; i++) {
		const struct svc_state *sv = &s->st.svcs[i];
		struct mx_svc_sum sum = {};

		for (j = 0; j < sv->n; j++)
			mx_svc_sum_add(&sum, &sv->bes[j], &s->bestat[k + j]);
		printf("  %-28s %-26s %5zu %6llu %10llu %10llu %8llu %8llu %8llu\n",
		       snapshot_svc_label(sv, name, sizeof(name)), svc_key_str(&sv->key, vip, sizeof(vip)),
		       sv->n, (unsigned long long)sum.usable, (unsigned long long)sum.opened,
		       (unsigned long long)sum.success, (unsigned long long)sum.failed,
		       (unsigned long long)sum.active, (unsigned long long)sum.circuit_open);
		k += sv->n;
	}
	if (backends) {
		printf("backends:\n  %-28s %-26s %-11s %-9s %-9s %10s %10s %8s %8s %9s\n", "SERVICE", "BACKEND",
		       "STATE", "HEALTH", "CIRCUIT", "OPENED", "ESTABL", "FAILED", "ACTIVE", "EJ_LEVEL");
		for (i = 0, k = 0; i < s->st.n; i++) {
			const struct svc_state *sv = &s->st.svcs[i];

			for (j = 0; j < sv->n; j++, k++) {
				const struct ferry_bestat *st = &s->bestat[k];

				backend_str(&sv->bes[j].be, ep, sizeof(ep));
				printf("  %-28s %-26s %-11s %-9s %-9s %10llu %10llu %8llu %8llu %9llu\n",
				       snapshot_svc_label(sv, name, sizeof(name)), ep,
				       be_state_name(sv->bes[j].be.state), health_name(sv->bes[j].be.health),
				       circuit_name(st->circuit), (unsigned long long)st->opened,
				       (unsigned long long)st->success, (unsigned long long)st->failed,
				       (unsigned long long)st->active, (unsigned long long)st->ejections);
			}
		}
	}
	if (s->nmaps) {
		printf("maps:\n  %-20s %10s %10s %6s\n", "MAP", "ENTRIES", "MAX", "FILL");
		for (i = 0; i < s->nmaps; i++) {
			const struct mx_map *m = &s->maps[i];

			if (m->has_entries)
				printf("  %-20s %10llu %10u %5.1f%%\n", m->name, (unsigned long long)m->entries,
				       m->max_entries, m->max_entries ? 100.0 * m->entries / m->max_entries : 0);
			else
				printf("  %-20s %10s %10u %6s\n", m->name, "-", m->max_entries, "-");
		}
	}
	if (s->has_status)
		printf("registry: %llu syncs, %llu errors, last %s in %.1f ms\n",
		       (unsigned long long)s->status.syncs, (unsigned long long)s->status.sync_errors,
		       !s->status.syncs ? "none" : s->status.last_ok ? "ok" : "FAILED",
		       s->status.last_sync_dur_ns / 1e6);
}

static struct json_object *json_snapshot(const struct ferry_snapshot *s, bool backends)
{
	struct json_object *o = json_object_new_object(), *dp, *svcs, *maps, *reg;
	char name[128], vip[128], ep[128];
	size_t i, j, k = 0;
	int n;

	dp = json_object_new_object();
	for (n = 0; s->has_stats && n < FERRY_STAT_MAX; n++)
		if (ferry_stat_descs[n].name || s->stats[n])
			json_object_object_add(dp, stat_name(ferry_stat_descs, n, "", name, sizeof(name)),
					       j_u64(s->stats[n]));
	json_object_object_add(o, "datapath", dp);
	if (s->has_xdp) {
		struct json_object *xo = json_object_new_object();

		for (n = 0; n < FERRY_XSTAT_MAX; n++)
			if (ferry_xstat_descs[n].name || s->xstats[n])
				json_object_object_add(xo, stat_name(ferry_xstat_descs, n, "xdp_", name, sizeof(name)),
						       j_u64(s->xstats[n]));
		json_object_object_add(o, "xdp", xo);
	}

	svcs = json_object_new_array();
	for (i = 0; i < s->st.n; i++) {
		const struct svc_state *sv = &s->st.svcs[i];
		struct json_object *so = json_object_new_object(), *bes = json_object_new_array();
		struct mx_svc_sum sum = {};

		for (j = 0; j < sv->n; j++, k++) {
			const struct ferry_bestat *st = &s->bestat[k];
			struct json_object *bo;

			mx_svc_sum_add(&sum, &sv->bes[j], st);
			if (!backends)
				continue;
			bo = json_object_new_object();
			backend_str(&sv->bes[j].be, ep, sizeof(ep));
			json_object_object_add(bo, "backend", json_object_new_string(ep));
			json_object_object_add(bo, "id", json_object_new_int64(sv->bes[j].id));
			json_object_object_add(bo, "state", json_object_new_string(be_state_name(sv->bes[j].be.state)));
			json_object_object_add(bo, "health", json_object_new_string(health_name(sv->bes[j].be.health)));
			json_object_object_add(bo, "circuit", json_object_new_string(circuit_name(st->circuit)));
			json_object_object_add(bo, "weight", json_object_new_int64(sv->bes[j].be.weight));
			json_object_object_add(bo, "opened", j_u64(st->opened));
			json_object_object_add(bo, "established", j_u64(st->success));
			json_object_object_add(bo, "failed", j_u64(st->failed));
			json_object_object_add(bo, "active", j_u64(st->active));
			json_object_object_add(bo, "ejection_level", j_u64(st->ejections));
			json_object_object_add(bo, "consecutive_failures", j_u64(st->consecutive));
			json_object_object_add(bo, "bytes_sent", j_u64(st->bytes_sent));
			json_object_object_add(bo, "bytes_received", j_u64(st->bytes_received));
			if (s->xbe && (sv->val.flags & FERRY_SVC_F_XDP)) {
				json_object_object_add(bo, "xdp_packets", j_u64(s->xbe[k].packets));
				json_object_object_add(bo, "xdp_bytes", j_u64(s->xbe[k].bytes));
			}
			json_object_array_add(bes, bo);
		}
		json_object_object_add(so, "service", json_object_new_string(snapshot_svc_label(sv, name, sizeof(name))));
		json_object_object_add(so, "vip", json_object_new_string(svc_key_str(&sv->key, vip, sizeof(vip))));
		json_object_object_add(so, "backends", json_object_new_int64(sv->n));
		json_object_object_add(so, "backends_usable", j_u64(sum.usable));
		json_object_object_add(so, "backends_circuit_open", j_u64(sum.circuit_open));
		json_object_object_add(so, "backends_unhealthy", j_u64(sum.unhealthy));
		json_object_object_add(so, "opened", j_u64(sum.opened));
		json_object_object_add(so, "established", j_u64(sum.success));
		json_object_object_add(so, "failed", j_u64(sum.failed));
		json_object_object_add(so, "active", j_u64(sum.active));
		if (s->xvip && (sv->val.flags & FERRY_SVC_F_XDP)) {
			json_object_object_add(so, "xdp_packets", j_u64(s->xvip[i].packets));
			json_object_object_add(so, "xdp_bytes", j_u64(s->xvip[i].bytes));
		}
		if (backends)
			json_object_object_add(so, "backend_stats", bes);
		else
			json_object_put(bes);
		json_object_array_add(svcs, so);
	}
	json_object_object_add(o, "services", svcs);

	maps = json_object_new_array();
	for (i = 0; i < s->nmaps; i++) {
		struct json_object *mo = json_object_new_object();

		json_object_object_add(mo, "map", json_object_new_string(s->maps[i].name));
		json_object_object_add(mo, "type", json_object_new_string(libbpf_bpf_map_type_str(s->maps[i].type) ?: "?"));
		json_object_object_add(mo, "entries", s->maps[i].has_entries ? j_u64(s->maps[i].entries) : NULL);
		json_object_object_add(mo, "max_entries", json_object_new_int64(s->maps[i].max_entries));
		json_object_array_add(maps, mo);
	}
	json_object_object_add(o, "maps", maps);

	if (s->has_status) {
		reg = json_object_new_object();
		json_object_object_add(reg, "syncs", j_u64(s->status.syncs));
		json_object_object_add(reg, "sync_errors", j_u64(s->status.sync_errors));
		json_object_object_add(reg, "last_sync_ok", json_object_new_boolean(s->status.syncs && s->status.last_ok));
		json_object_object_add(reg, "last_sync_ns", j_u64(s->status.last_sync_ns));
		json_object_object_add(reg, "last_ok_ns", j_u64(s->status.last_ok_ns));
		json_object_object_add(reg, "last_sync_duration_ms", json_object_new_double(s->status.last_sync_dur_ns / 1e6));
		json_object_object_add(o, "registry", reg);
	}
	return o;
}

static int stats_prometheus(const struct ferry_snapshot *s)
{
	struct metrics_opts o = { .max_backend_series = UINT32_MAX, .version = FERRY_VERSION };
	struct mbuf b = {};
	int err;

	err = metrics_render(s, &o, &b);
	if (!err)
		fwrite(b.p, 1, b.len, stdout);
	mbuf_free(&b);
	return err;
}

int do_stats(struct ctl *c, int argc, char **argv)
{
	bool backends = true, prom = false;
	struct ferry_snapshot s;
	int i, err;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--no-backends"))
			backends = false;
		else if (!strcmp(argv[i], "--prometheus"))
			prom = true;
		else
			return ctl_usage(c, "stats: unknown argument '%s'", argv[i]);
	}
	/* -j promises JSON on every command; the exposition text is not. */
	if (prom && c->json)
		return ctl_usage(c, "stats: --prometheus prints the exposition text, not JSON: use one of -j and --prometheus");
	if ((err = ctl_open(c)))
		return err;
	err = snapshot_collect(&c->maps, c->bpffs, &s);
	if (err)
		return ctl_err(c, "cannot read the counters from", c->bpffs, err);
	if (prom)
		err = stats_prometheus(&s);
	else if (c->json)
		ctl_json_print(json_snapshot(&s, backends));
	else
		print_plain(&s, backends);
	snapshot_free(&s);
	return err ? ctl_err(c, "cannot render the counters from", c->bpffs, err) : 0;
}
