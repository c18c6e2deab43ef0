// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ferryctl circuit [VIP:PORT]: the circuit breaker's state per backend.
 * ferryctl explain VIP:PORT [--from CGROUP_OR_NETNS] [--src IP]: which
 * backends a new connection may go to right now, why each other one may
 * not, and where the policy sends it.
 *
 * Both read the pinned maps and judge backends with the kernel's own code
 * (bpf/lib/circuit_sm.h, include/ferry/flowhash.h) at the kernel's clock
 * (CLOCK_MONOTONIC = bpf_ktime_get_ns()), so the answer is the one the
 * connect hook would give at that instant.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <bpf/bpf.h>

#include "ferryctl.h"
#include "registry.h"
#include "state.h"
#include "../../bpf/lib/circuit_sm.h"
#include <ferry/flowhash.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/* The connect hook's defaults (bpf/lib/select.bpf.h). */
#define LC_EXACT_MAX	16
#define MAGLEV_PROBE	8
#define RR_TRIES	4
#define DRAW_TRIES	4

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Backends a service may eject at once: max_ejection_percent, at least one. */
static __u32 max_ejected(const struct ferry_circuit_cfg *cfg, __u32 n)
{
	__u32 m = (__u64)cfg->max_ejection_percent * n / 100;

	return m ? m : 1;
}

static int open_svcej(struct ctl *c)
{
	char path[PATH_MAX];

	ferry_pin_path(path, sizeof(path), c->bpffs, FERRY_MAP_SVCEJ);
	return bpf_obj_get(path);	/* < 0: no breaker state (old or --no-circuit) */
}

/* ---- a backend as the connect hook sees it ---- */

enum verdict { V_NO = 0, V_FULL, V_FALLBACK, V_YES };

struct view {
	const struct be_state *b;
	struct ferry_bestat st;
	bool	have_st;
	enum verdict v;
	char	why[512];	/* reasons it may not, or notes */
	struct json_object *reasons;
	double	share;
};

static void reason(struct view *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reason(struct view *w, const char *fmt, ...)
{
	char msg[256];
	size_t l = strlen(w->why);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(w->why + l, sizeof(w->why) - l, "%s%s", l ? "; " : "", msg);
	json_object_array_add(w->reasons, json_object_new_string(msg));
}

static void judge(const struct svc_state *s, struct view *w, __u64 now)
{
	const struct ferry_circuit_cfg *cfg = &s->val.circuit;
	const struct ferry_backend *be = &w->b->be;
	const struct ferry_bestat *st = &w->st;
	bool blocked = false, full = false;
	int why;

	w->reasons = json_object_new_array();
	if (be->state == FERRY_BE_DRAINING)
		reason(w, "draining: keeps its connections, gets no new ones"), blocked = true;
	if (be->state == FERRY_BE_QUARANTINED)
		reason(w, "quarantined by hand (ferryctl backend set ... --state active restores it)"), blocked = true;
	if (be->weight == 0)
		reason(w, "weight 0"), blocked = true;
	if (be->health == FERRY_HEALTH_UNHEALTHY)
		reason(w, "UNHEALTHY: its health probes fail"), blocked = true;
	why = cb_check(cfg, w->have_st ? st : NULL, now);
	if (w->have_st && cb_enabled(cfg)) {
		if (st->circuit == FERRY_CIRCUIT_OPENING) {
			reason(w, "circuit opening (an ejection is being written)");
		} else if (st->circuit == FERRY_CIRCUIT_OPEN && now < st->open_until_ns) {
			reason(w, "circuit OPEN for %.0f ms more (ejection %llu, %llu ms long, after %llu failed connects in a row)",
			       (st->open_until_ns - now) / 1e6, (unsigned long long)st->ejections,
			       (unsigned long long)((st->open_until_ns - st->last_change_ns) / CB_NS_PER_MS),
			       (unsigned long long)st->consecutive);
		} else if (st->circuit == FERRY_CIRCUIT_OPEN) {
			if (!blocked && why == CB_OK)
				reason(w, "note: ejection over; the next connect that picks it is a half-open probe");
		} else if (st->circuit == FERRY_CIRCUIT_HALF_OPEN) {
			if (why == CB_DENY_OPEN)
				reason(w, "circuit HALF_OPEN: its %u probe slot(s) are taken, waiting for their outcome",
				       cb_probes(cfg));
			else if (!blocked)
				reason(w, "note: circuit HALF_OPEN; a connect now is a probe (%u of %u slots taken)",
				       st->half_open_inflight, cb_probes(cfg));
		}
	}
	if (why == CB_DENY_FULL) {
		reason(w, "at max_connections (%llu of %u)", (unsigned long long)st->active,
		       cfg->max_connections);
		full = true;
	}
	if (blocked || why == CB_DENY_OPEN)
		w->v = V_NO;
	else if (full)
		w->v = V_FULL;
	else if (be->health == FERRY_HEALTH_DEGRADED)
		w->v = V_FALLBACK;
	else
		w->v = V_YES;
	if (w->v == V_FALLBACK)
		reason(w, "DEGRADED (slow or intermittent probes): used only when no healthy backend is left");
}

static const char *verdict_name(enum verdict v)
{
	switch (v) {
	case V_YES: return "yes";
	case V_FALLBACK: return "fallback";
	case V_FULL: return "full";
	default: return "no";
	}
}

/* The kernel's scan_from(): first eligible slot from start, else the first
 * degraded one. -1 when none. */
static int scan_from(const struct view *w, size_t n, size_t start)
{
	int degraded = -1;
	size_t i;

	for (i = 0; i < n; i++) {
		size_t pos = (start + i) % n;

		if (w[pos].v == V_YES)
			return pos;
		if (w[pos].v == V_FALLBACK && degraded < 0)
			degraded = pos;
	}
	return degraded;
}

/*
 * The kernel's rr_pick(): claim cursor values until one names an eligible
 * backend (up to RR_TRIES), else scan from the last one claimed. Returns
 * the slot (-1: none) and advances *cur as the kernel's cursor would.
 */
static int rr_sim(const struct view *w, size_t n, __u32 *cur)
{
	size_t start = 0;
	int i;

	for (i = 0; i < RR_TRIES; i++) {
		start = (*cur)++ % n;
		if (w[start].v == V_YES)
			return start;
	}
	return scan_from(w, n, start);
}

/* The chance that one draw names slot i: by usable weight under weighted,
 * else uniform (random, maglev's fallback). */
static double draw_p(const struct svc_state *s, size_t i)
{
	__u32 prev = i ? s->bes[i - 1].cum_weight : 0;

	if (s->val.lb != FERRY_LB_WEIGHTED)
		return 1.0 / s->n;
	return (double)(s->bes[i].cum_weight - prev) / s->val.weight_sum;
}

/*
 * The kernel's draw_pick(), then scan_from() from the last slot drawn when
 * every draw missed, in the long run. With u the chance that one draw
 * names an ineligible backend, an eligible slot of draw chance p wins with
 * p x (1 + u + ... + u^(DRAW_TRIES-1)); an ineligible one is the last of
 * DRAW_TRIES misses with p x u^(DRAW_TRIES-1), and its share goes to the
 * scan from it.
 */
static void draw_shares(const struct svc_state *s, struct view *w)
{
	size_t i, n = s->n;
	double u = 0, hit = 0, miss = 1;
	int k, pos;

	if (s->val.lb == FERRY_LB_WEIGHTED && !s->val.weight_sum) {
		/* nothing to draw by: the kernel scans from slot 0 */
		pos = scan_from(w, n, 0);
		if (pos >= 0)
			w[pos].share += 1;
		return;
	}
	for (i = 0; i < n; i++)
		if (w[i].v != V_YES)
			u += draw_p(s, i);
	for (k = 0; k < DRAW_TRIES; k++) {
		hit += miss;
		if (k < DRAW_TRIES - 1)
			miss *= u;
	}
	for (i = 0; i < n; i++) {
		double p = draw_p(s, i);

		if (w[i].v == V_YES)
			w[i].share += p * hit;
		else if ((pos = scan_from(w, n, i)) >= 0)
			w[pos].share += p * miss;
	}
}

/* Long-run shares: round robin's cursor, or the policies that draw. */
static void start_shares(const struct svc_state *s, struct view *w)
{
	size_t i, n = s->n;
	int pos;

	if (s->val.lb == FERRY_LB_ROUND_ROBIN) {
		/* Simulate picks from the cursor: the cycle repeats within n
		 * picks, so n x RR_TRIES picks give exact shares. */
		__u32 cur = s->val.rr, picks = n * RR_TRIES;

		for (i = 0; i < picks; i++) {
			pos = rr_sim(w, n, &cur);
			if (pos >= 0)
				w[pos].share += 1.0 / picks;
		}
		return;
	}
	draw_shares(s, w);
}

/* The kernel's maglev fallback for flow hash: DRAW_TRIES slots drawn from
 * the hash, the first eligible one, else the scan from the last one drawn
 * (*last; -1 when a draw hit). -1 when none. */
static int maglev_fallback(const struct view *w, size_t n, __u32 hash, int *last)
{
	size_t pos = 0;
	int i;

	*last = -1;
	for (i = 0; i < DRAW_TRIES; i++) {
		pos = ferry_redraw_hash(hash, i) % n;
		if (w[pos].v == V_YES)
			return pos;
	}
	*last = pos;
	return scan_from(w, n, pos);
}

/* ---- the client: network namespace cookie (maglev affinity) ---- */

static int netns_fd_for(const char *from, char *desc, size_t dlen, bool *is_cgroup)
{
	char path[PATH_MAX];
	struct stat sb;
	FILE *f;
	int pid = 0;

	*is_cgroup = false;
	snprintf(path, sizeof(path), "%s/cgroup.procs", from);
	if ((f = fopen(path, "r"))) {
		*is_cgroup = true;
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
		if (!pid) {
			errno = ESRCH;
			return -1;
		}
		snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
		snprintf(desc, dlen, "cgroup %s (netns of its process %d)", from, pid);
		return open(path, O_RDONLY | O_CLOEXEC);
	}
	if (!stat(from, &sb) && !S_ISDIR(sb.st_mode)) {
		snprintf(desc, dlen, "netns %s", from);
		return open(from, O_RDONLY | O_CLOEXEC);
	}
	if (!strchr(from, '/')) {
		snprintf(path, sizeof(path), "/run/netns/%s", from);
		snprintf(desc, dlen, "netns %s", from);
		return open(path, O_RDONLY | O_CLOEXEC);
	}
	errno = ENOENT;
	return -1;
}

static int netns_cookie(int nsfd, __u64 *cookie)
{
	socklen_t len = sizeof(*cookie);
	int self = -1, s = -1, err = 0;

	if (nsfd >= 0) {
		self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		if (self < 0 || setns(nsfd, CLONE_NEWNET)) {
			err = -errno;
			goto out;
		}
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len))
		err = -errno;
	if (nsfd >= 0 && setns(self, CLONE_NEWNET) && !err)
		err = -errno;
out:
	if (s >= 0)
		close(s);
	if (self >= 0)
		close(self);
	return err;
}

/* Is cgroup dir at or below the cgroup ferry's connect hook is attached to? */
static int cgroup_under_ferry(struct ctl *c, const char *dir)
{
	struct bpf_link_info li = {};
	__u32 len = sizeof(li);
	char path[PATH_MAX], cur[PATH_MAX];
	struct stat sb;
	int fd, i;

	snprintf(path, sizeof(path), "%s/links/sock_connect4", c->bpffs);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -1;
	if (bpf_obj_get_info_by_fd(fd, &li, &len)) {
		close(fd);
		return -1;
	}
	close(fd);
	if (!realpath(dir, cur))
		return -1;
	for (i = 0; i < 64; i++) {
		if (stat(cur, &sb))
			return -1;
		if (sb.st_ino == li.cgroup.cgroup_id)
			return 1;
		if (!strcmp(cur, "/"))
			return 0;
		snprintf(path, sizeof(path), "%s", cur);
		snprintf(cur, sizeof(cur), "%s", dirname(path));
	}
	return 0;
}

/* Slot of backend id in the service, -1 if it is not one of its. */
static int slot_of(const struct svc_state *s, __u32 id)
{
	size_t j;

	for (j = 0; j < s->n; j++)
		if (s->bes[j].id == id)
			return j;
	return -1;
}

/* The kernel's maglev_pick() on table t from index idx: the slot it picks,
 * or -1 when it falls back to the scan. *tried: entries looked at. */
static int maglev_walk(const struct svc_state *s, const struct view *w, const __u32 *t,
		       __u32 idx, __u32 *tried)
{
	int j, i;

	for (i = 0; i < MAGLEV_PROBE; i++) {
		*tried = i + 1;
		if (!t[idx])
			return -1;
		j = slot_of(s, t[idx]);
		if (j >= 0 && w[j].v == V_YES)
			return j;
		idx = idx + 1 == FERRY_SOCK_MAGLEV_M ? 0 : idx + 1;
	}
	return -1;
}

/*
 * Maglev for this hash: the slot the kernel picks (-1: it falls back to
 * draws, maglev_fallback(); -2: no table), and in w[].share each backend's share of all
 * clients right now (skipping ineligible entries the way the kernel does;
 * a fallback counts as the kernel's draws over all slots, draw_shares()).
 */
static int maglev_sim(struct ctl *c, const struct svc_state *s, struct view *w,
		      __u32 hash, __u32 *tried)
{
	__u32 id = s->val.id, inner_id, i, tr, *t;
	int fd, j, ret;
	double fallback = 0;

	*tried = 0;
	if (bpf_map_lookup_elem(c->maps.mag, &id, &inner_id))
		return -2;
	fd = bpf_map_get_fd_by_id(inner_id);
	if (fd < 0)
		return -2;
	t = calloc(FERRY_SOCK_MAGLEV_M, sizeof(*t));
	for (i = 0; t && i < FERRY_SOCK_MAGLEV_M; i++)
		if (bpf_map_lookup_elem(fd, &i, &t[i]))
			t[i] = 0;
	close(fd);
	if (!t)
		return -2;
	ret = maglev_walk(s, w, t, hash % FERRY_SOCK_MAGLEV_M, tried);
	for (i = 0; i < FERRY_SOCK_MAGLEV_M; i++) {
		j = maglev_walk(s, w, t, i, &tr);
		if (j >= 0)
			w[j].share += 1.0 / FERRY_SOCK_MAGLEV_M;
		else
			fallback += 1.0 / FERRY_SOCK_MAGLEV_M;
	}
	free(t);
	if (fallback > 0) {
		double *save = calloc(s->n + 1, sizeof(*save));
		size_t k;

		for (k = 0; save && k < s->n; k++) {
			save[k] = w[k].share;
			w[k].share = 0;
		}
		start_shares(s, w);
		for (k = 0; save && k < s->n; k++)
			w[k].share = save[k] + fallback * w[k].share;
		free(save);
	}
	return ret;
}

/* ---- ferryctl circuit ---- */

static struct json_object *circuit_cfg_json(const struct ferry_circuit_cfg *cfg)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "consecutive_failures", json_object_new_int(cfg->consecutive_failures));
	json_object_object_add(o, "base_ejection_ms", json_object_new_int64(cfg->base_ejection_ms));
	json_object_object_add(o, "max_ejection_ms", json_object_new_int64(cfg->max_ejection_ms));
	json_object_object_add(o, "max_ejection_percent", json_object_new_int(cfg->max_ejection_percent));
	json_object_object_add(o, "half_open_probes", json_object_new_int(cfg->half_open_probes));
	json_object_object_add(o, "max_connections", json_object_new_int64(cfg->max_connections));
	return o;
}

static void cfg_line(const struct ferry_circuit_cfg *cfg, char *buf, size_t len)
{
	if (!cb_enabled(cfg))
		snprintf(buf, len, "breaker off (consecutive_failures 0)");
	else
		snprintf(buf, len, "opens after %u failed connects in a row, for %u ms x ejections (max %u ms); "
			 "at most %u%% ejected; %u half-open probe(s)",
			 cfg->consecutive_failures, cfg->base_ejection_ms, cfg->max_ejection_ms,
			 cfg->max_ejection_percent, cb_probes(cfg));
	if (cfg->max_connections) {
		size_t l = strlen(buf);

		snprintf(buf + l, len - l, "; max_connections %u", cfg->max_connections);
	}
}

static struct json_object *bestat_json(const struct ferry_bestat *st, __u64 now)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "circuit", json_object_new_string(circuit_name(st->circuit)));
	json_object_object_add(o, "consecutive_failures", json_object_new_int64(st->consecutive));
	json_object_object_add(o, "ejections", json_object_new_int64(st->ejections));
	if (st->circuit == FERRY_CIRCUIT_OPEN) {
		json_object_object_add(o, "open_ms_left", json_object_new_int64(
			now < st->open_until_ns ? (st->open_until_ns - now) / CB_NS_PER_MS : 0));
		json_object_object_add(o, "ejection_ms", json_object_new_int64(
			(st->open_until_ns - st->last_change_ns) / CB_NS_PER_MS));
	} else {
		json_object_object_add(o, "open_ms_left", NULL);
		json_object_object_add(o, "ejection_ms", NULL);
	}
	json_object_object_add(o, "last_change_ms_ago", st->last_change_ns ?
			       json_object_new_int64((now - st->last_change_ns) / CB_NS_PER_MS) : NULL);
	json_object_object_add(o, "half_open_inflight", json_object_new_int64(st->half_open_inflight));
	json_object_object_add(o, "active", json_object_new_int64(st->active));
	json_object_object_add(o, "opened", json_object_new_int64(st->opened));
	json_object_object_add(o, "success", json_object_new_int64(st->success));
	json_object_object_add(o, "failed", json_object_new_int64(st->failed));
	json_object_object_add(o, "bytes_sent", json_object_new_int64(st->bytes_sent));
	json_object_object_add(o, "bytes_received", json_object_new_int64(st->bytes_received));
	return o;
}

static void circuit_service(struct ctl *c, const struct svc_state *s, int ejfd, __u64 now,
			    struct json_object *arr)
{
	const struct ferry_circuit_cfg *cfg = &s->val.circuit;
	struct ferry_svc_rt rt = {};
	char key[96], line[320];
	size_t i;

	if (ejfd >= 0)
		bpf_map_lookup_elem(ejfd, &s->val.id, &rt);
	if (c->json) {
		struct json_object *o = json_object_new_object(), *bes = json_object_new_array();

		json_object_object_add(o, "service", json_object_new_string(svc_key_str(&s->key, key, sizeof(key))));
		json_object_object_add(o, "name", json_object_new_string(s->name));
		json_object_object_add(o, "id", json_object_new_int64(s->val.id));
		json_object_object_add(o, "config", circuit_cfg_json(cfg));
		json_object_object_add(o, "ejected", json_object_new_int64(rt.ejected));
		json_object_object_add(o, "max_ejected", json_object_new_int64(max_ejected(cfg, s->n)));
		for (i = 0; i < s->n; i++) {
			struct ferry_bestat st = {};
			struct json_object *b;
			char ep[96];

			bpf_map_lookup_elem(c->maps.bestat, &s->bes[i].id, &st);
			b = bestat_json(&st, now);
			json_object_object_add(b, "id", json_object_new_int64(s->bes[i].id));
			json_object_object_add(b, "backend", json_object_new_string(backend_str(&s->bes[i].be, ep, sizeof(ep))));
			json_object_object_add(b, "state", json_object_new_string(be_state_name(s->bes[i].be.state)));
			json_object_object_add(b, "health", json_object_new_string(health_name(s->bes[i].be.health)));
			json_object_array_add(bes, b);
		}
		json_object_object_add(o, "backends", bes);
		json_object_array_add(arr, o);
		return;
	}
	cfg_line(cfg, line, sizeof(line));
	printf("service %s \"%s\": %s\n", svc_key_str(&s->key, key, sizeof(key)), s->name, line);
	printf("  ejected now: %u (at most %u of %zu)\n", rt.ejected, max_ejected(cfg, s->n), s->n);
	printf("  %-6s %-32s %-9s %7s %9s %-12s %7s %9s %9s %9s %-11s %s\n", "ID", "BACKEND", "CIRCUIT",
	       "CONSEC", "EJECTIONS", "LEFT", "ACTIVE", "OPENED", "OK", "FAILED", "HEALTH", "STATE");
	for (i = 0; i < s->n; i++) {
		struct ferry_bestat st = {};
		char ep[96], left[32] = "-";

		bpf_map_lookup_elem(c->maps.bestat, &s->bes[i].id, &st);
		if (st.circuit == FERRY_CIRCUIT_OPEN) {
			if (now < st.open_until_ns)
				snprintf(left, sizeof(left), "%.0f ms", (st.open_until_ns - now) / 1e6);
			else
				snprintf(left, sizeof(left), "probe due");
		} else if (st.circuit == FERRY_CIRCUIT_HALF_OPEN) {
			snprintf(left, sizeof(left), "probes %u/%u", st.half_open_inflight, cb_probes(cfg));
		}
		printf("  %-6u %-32s %-9s %7llu %9llu %-12s %7llu %9llu %9llu %9llu %-11s %s\n", s->bes[i].id,
		       backend_str(&s->bes[i].be, ep, sizeof(ep)), circuit_name(st.circuit),
		       (unsigned long long)st.consecutive, (unsigned long long)st.ejections, left,
		       (unsigned long long)st.active, (unsigned long long)st.opened,
		       (unsigned long long)st.success, (unsigned long long)st.failed,
		       health_name(s->bes[i].be.health), be_state_name(s->bes[i].be.state));
	}
}

int do_circuit(struct ctl *c, int argc, char **argv)
{
	struct json_object *arr = NULL;
	struct ferry_svc_key k;
	struct fstate st;
	const struct svc_state *one = NULL;
	__u64 now;
	size_t i;
	int err, ejfd;

	if (argc > 2)
		return ctl_usage(c, "circuit [VIP:PORT[/proto]]");
	if (argc == 2 && (err = ctl_parse_svc_key(c, argv[1], &k)))
		return err;
	if ((err = ctl_open(c)))
		return err;
	if ((err = fstate_load(&c->maps, &st)))
		return ctl_err(c, "cannot read the service maps in", c->bpffs, err);
	if (argc == 2 && !(one = fstate_find(&st, &k))) {
		fstate_free(&st);
		return ctl_err(c, "no such service", argv[1], -ENOENT);
	}
	ejfd = open_svcej(c);
	now = mono_ns();
	if (c->json)
		arr = json_object_new_array();
	for (i = 0; i < st.n; i++) {
		if (one && &st.svcs[i] != one)
			continue;
		if (!c->json && i && !one)
			printf("\n");
		circuit_service(c, &st.svcs[i], ejfd, now, arr);
	}
	if (c->json)
		ctl_json_print(one ? json_object_get(json_object_array_get_idx(arr, 0)) : json_object_get(arr));
	if (arr)
		json_object_put(arr);
	if (ejfd >= 0)
		close(ejfd);
	fstate_free(&st);
	return 0;
}

/* ---- ferryctl explain ---- */

struct client {
	const char *from;
	char	desc[PATH_MAX + 64];
	__u64	cookie;
	__u32	src4;
	int	under;		/* cgroup under ferry's: 1 yes, 0 no, -1 unknown/n.a. */
};

static int explain_client(struct ctl *c, struct client *cl)
{
	bool is_cg = false;
	int fd = -1, err;

	cl->under = -1;
	if (cl->from) {
		fd = netns_fd_for(cl->from, cl->desc, sizeof(cl->desc), &is_cg);
		if (fd < 0)
			return ctl_err(c, is_cg ? "cannot tell the network namespace of cgroup (no process in it?)" :
				       "not a cgroup directory, netns file or netns name", cl->from, -errno);
		if (is_cg)
			cl->under = cgroup_under_ferry(c, cl->from);
	} else {
		snprintf(cl->desc, sizeof(cl->desc), "ferryctl's own netns");
	}
	err = netns_cookie(fd, &cl->cookie);
	if (fd >= 0)
		close(fd);
	if (err)
		return ctl_err(c, "cannot read the netns cookie of", cl->desc, err);
	return 0;
}

/* Explain the pick in words and JSON; w[] judged. */
static void explain_pick(struct ctl *c, const struct svc_state *s, struct view *w,
			 const struct client *cl, struct json_object *o, char *msg, size_t len)
{
	size_t n = s->n, i;
	int pos = -1;
	char ep[96];
	bool any = false, full = false;

	for (i = 0; i < n; i++) {
		any |= w[i].v == V_YES || w[i].v == V_FALLBACK;
		full |= w[i].v == V_FULL;
	}
	if (!any) {
		snprintf(msg, len, "a connect now fails fast with %s: %s",
			 full ? "EBUSY" : "ECONNREFUSED",
			 full ? "every backend that could take it is at max_connections" :
				"no backend may take a new connection");
		json_object_object_add(o, "result", json_object_new_string(full ? "EBUSY" : "ECONNREFUSED"));
		return;
	}
	json_object_object_add(o, "result", json_object_new_string("ok"));
	switch (s->val.lb) {
	case FERRY_LB_MAGLEV: {
		__u32 hash = ferry_flow_hash(cl->cookie, &s->key, cl->src4, 0), tried;
		struct json_object *m = json_object_new_object();

		pos = maglev_sim(c, s, w, hash, &tried);
		json_object_object_add(m, "netns_cookie", json_object_new_int64(cl->cookie));
		json_object_object_add(m, "hash", json_object_new_int64(hash));
		json_object_object_add(m, "table_index", json_object_new_int64(hash % FERRY_SOCK_MAGLEV_M));
		json_object_object_add(m, "entries_tried", json_object_new_int64(tried));
		json_object_object_add(o, "maglev", m);
		if (pos >= 0) {
			snprintf(msg, len, "maglev: this client (%s, hash %u) gets backend %u (%s): table entry %u%s",
				 cl->desc, hash, s->bes[pos].id, backend_str(&s->bes[pos].be, ep, sizeof(ep)),
				 hash % FERRY_SOCK_MAGLEV_M,
				 tried > 1 ? " after skipping entries whose backend may not take it" : "");
		} else {
			int last;

			pos = maglev_fallback(w, n, hash, &last);
			if (last < 0)
				snprintf(msg, len, "maglev: this client's table entries (from %u) name no eligible "
					 "backend; it falls back to slots drawn from its hash (up to %d): backend %u (%s)",
					 hash % FERRY_SOCK_MAGLEV_M, DRAW_TRIES, s->bes[pos].id,
					 backend_str(&s->bes[pos].be, ep, sizeof(ep)));
			else
				snprintf(msg, len, "maglev: this client's table entries (from %u) name no eligible "
					 "backend, nor do the %d slots drawn from its hash; it falls back to the first "
					 "eligible slot from the last of them (%d): backend %u (%s)",
					 hash % FERRY_SOCK_MAGLEV_M, DRAW_TRIES, last, s->bes[pos].id,
					 backend_str(&s->bes[pos].be, ep, sizeof(ep)));
		}
		break;
	}
	case FERRY_LB_LEAST_CONN: {
		int best = -1;

		for (i = 0; i < n; i++) {
			if (w[i].v != V_YES)
				continue;
			if (best < 0 || w[i].st.active * w[best].b->be.weight <
					w[best].st.active * w[i].b->be.weight)
				best = i;
		}
		if (best < 0)
			best = scan_from(w, n, 0);
		pos = best;
		snprintf(msg, len, "least_conn: backend %u (%s) has the fewest connections per unit of weight (%llu/%u)%s",
			 s->bes[pos].id, backend_str(&s->bes[pos].be, ep, sizeof(ep)),
			 (unsigned long long)w[pos].st.active, w[pos].b->be.weight,
			 n > LC_EXACT_MAX ? "; this service has more than 16 backends (ferryd --least-conn-exact), "
					    "so the kernel compares two random eligible ones (power of two choices)" : "");
		for (i = 0; i < n; i++)
			w[i].share = (int)i == pos;
		break;
	}
	case FERRY_LB_ROUND_ROBIN: {
		size_t cur = s->val.rr % n;
		__u32 c2 = s->val.rr;
		char cep[96];

		start_shares(s, w);
		pos = rr_sim(w, n, &c2);
		if ((size_t)pos == cur)
			snprintf(msg, len, "round_robin: the cursor is on backend %u (%s): the next connect goes there",
				 s->bes[pos].id, backend_str(&s->bes[pos].be, ep, sizeof(ep)));
		else
			snprintf(msg, len, "round_robin: the cursor is on backend %u (%s), which %s, so the next "
				 "connect claims cursor values until one names a backend that may: backend %u (%s)",
				 s->bes[cur].id,
				 backend_str(&s->bes[cur].be, cep, sizeof(cep)),
				 w[cur].v == V_FALLBACK ? "is only a fallback" : "may not take it",
				 s->bes[pos].id, backend_str(&s->bes[pos].be, ep, sizeof(ep)));
		break;
	}
	default:
		start_shares(s, w);
		snprintf(msg, len, "%s: a random slot%s, drawn again (up to %d draws) while it names a backend "
			 "that may not take the connection, so the eligible ones keep their shares; when "
			 "every draw misses, the first eligible backend from the last slot drawn",
			 lb_name(s->val.lb), s->val.lb == FERRY_LB_WEIGHTED ? " by weight" : "", DRAW_TRIES);
		break;
	}
	if (pos >= 0) {
		struct json_object *nx = json_object_new_object();

		json_object_object_add(nx, "id", json_object_new_int64(s->bes[pos].id));
		json_object_object_add(nx, "backend", json_object_new_string(backend_str(&s->bes[pos].be, ep, sizeof(ep))));
		json_object_object_add(o, "next", nx);
	}
}

int do_explain(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "src", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct client cl = { .under = -1 };
	struct ferry_svc_key k;
	struct svc_state *s;
	struct fstate st;
	struct view *w;
	struct json_object *o, *arr;
	char key[96], line[320], msg[6144], ep[96];
	const char *svc = NULL;
	struct faddr src;
	__u64 now;
	size_t i;
	int opt, err;

	optind = 0;	/* a fresh scan that may permute: options after VIP:PORT too */
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'f': cl.from = optarg; break;
		case 's':
			if (faddr_parse(optarg, &src) || src.family != AF_INET)
				return ctl_usage(c, "--src: '%s' is not an IPv4 address", optarg);
			cl.src4 = src.a[0];
			break;
		default:
			return ctl_usage(c, "explain VIP:PORT[/proto] [--from CGROUP_OR_NETNS] [--src IP]");
		}
	}
	if (optind < argc)
		svc = argv[optind++];
	if (!svc || optind != argc)
		return ctl_usage(c, "explain VIP:PORT[/proto] [--from CGROUP_OR_NETNS] [--src IP]");
	if ((err = ctl_parse_svc_key(c, svc, &k)))
		return err;
	if ((err = ctl_open(c)))
		return err;
	if ((err = fstate_load(&c->maps, &st)))
		return ctl_err(c, "cannot read the service maps in", c->bpffs, err);
	s = fstate_find(&st, &k);
	if (!s) {
		fstate_free(&st);
		return ctl_err(c, "not a ferry service (connects to it are not balanced)", svc, -ENOENT);
	}
	if (s->val.lb == FERRY_LB_MAGLEV && (err = explain_client(c, &cl))) {
		fstate_free(&st);
		return err;
	}
	if (s->val.lb != FERRY_LB_MAGLEV && cl.from) {
		bool is_cg;
		int fd = netns_fd_for(cl.from, cl.desc, sizeof(cl.desc), &is_cg);

		if (fd >= 0)
			close(fd);
		cl.under = is_cg ? cgroup_under_ferry(c, cl.from) : -1;
	}
	w = calloc(s->n + 1, sizeof(*w));
	if (!w) {
		fstate_free(&st);
		return ctl_err(c, "out of memory for", svc, -ENOMEM);
	}
	now = mono_ns();
	for (i = 0; i < s->n; i++) {
		w[i].b = &s->bes[i];
		w[i].have_st = !bpf_map_lookup_elem(c->maps.bestat, &s->bes[i].id, &w[i].st);
		judge(s, &w[i], now);
	}
	o = json_object_new_object();
	if (!s->n) {
		snprintf(msg, sizeof(msg), "the service has no backends: connects to it proceed untouched");
		json_object_object_add(o, "result", json_object_new_string("untouched"));
	} else {
		explain_pick(c, s, w, &cl, o, msg, sizeof(msg));
	}

	json_object_object_add(o, "service", json_object_new_string(svc_key_str(&s->key, key, sizeof(key))));
	json_object_object_add(o, "name", json_object_new_string(s->name));
	json_object_object_add(o, "lb", json_object_new_string(lb_name(s->val.lb)));
	json_object_object_add(o, "config", circuit_cfg_json(&s->val.circuit));
	if (cl.under >= 0)
		json_object_object_add(o, "client_balanced", json_object_new_boolean(cl.under));
	json_object_object_add(o, "summary", json_object_new_string(msg));
	arr = json_object_new_array();
	for (i = 0; i < s->n; i++) {
		struct json_object *b = json_object_new_object();

		json_object_object_add(b, "id", json_object_new_int64(s->bes[i].id));
		json_object_object_add(b, "backend", json_object_new_string(backend_str(&s->bes[i].be, ep, sizeof(ep))));
		json_object_object_add(b, "eligible", json_object_new_string(verdict_name(w[i].v)));
		json_object_object_add(b, "reasons", json_object_get(w[i].reasons));
		json_object_object_add(b, "share", json_object_new_double(w[i].share));
		json_object_object_add(b, "counters", bestat_json(&w[i].st, now));
		json_object_array_add(arr, b);
	}
	json_object_object_add(o, "backends", arr);

	if (c->json) {
		ctl_json_print(o);
	} else {
		cfg_line(&s->val.circuit, line, sizeof(line));
		printf("service %s \"%s\"  lb %s  %zu backends\n", svc_key_str(&s->key, key, sizeof(key)),
		       s->name, lb_name(s->val.lb), s->n);
		printf("breaker: %s\n", line);
		if (cl.under == 0)
			printf("warning: %s is not under ferry's cgroup: its connects are not balanced at all\n",
			       cl.from);
		printf("\n  %-6s %-32s %-9s %6s  %s\n", "ID", "BACKEND", "ELIGIBLE", "SHARE", "WHY");
		for (i = 0; i < s->n; i++) {
			char ok[128];

			snprintf(ok, sizeof(ok), "%s, circuit %s, %llu active",
				 w[i].b->be.health ? health_name(w[i].b->be.health) : "not probed",
				 circuit_name(w[i].st.circuit), (unsigned long long)w[i].st.active);
			printf("  %-6u %-32s %-9s %5.1f%%  %s\n", s->bes[i].id,
			       backend_str(&s->bes[i].be, ep, sizeof(ep)), verdict_name(w[i].v), w[i].share * 100,
			       w[i].why[0] ? w[i].why : ok);
		}
		printf("\n%s\n", msg);
		json_object_put(o);
	}
	for (i = 0; i < s->n; i++)
		json_object_put(w[i].reasons);
	free(w);
	fstate_free(&st);
	return 0;
}
