// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The Prometheus renderer on hand-built snapshots: families and their
 * HELP/TYPE lines, per-service sums, the per-backend series cap and its
 * __overflow__ series, label escaping, unnamed counter slots, gzip, and the
 * stat names table's own consistency.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <setjmp.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>
#include <zlib.h>

#include <ferry/abi.h>
#include "metrics.h"
#include "stat_names.h"

/* Two services: "shop/cart" with 2 backends, an unnamed IPv6 one with 1. */
static void build(struct ferry_snapshot *s)
{
	struct svc_state *a, *b;

	memset(s, 0, sizeof(*s));
	assert_int_equal(fstate_init(&s->st, 16, 16), 0);
	s->st.svcs = calloc(2, sizeof(*s->st.svcs));
	assert_non_null(s->st.svcs);
	s->st.n = 2;
	a = &s->st.svcs[0];
	b = &s->st.svcs[1];

	a->key.family = AF_INET;
	a->key.addr[0] = htonl(0xc6336414);	/* 198.51.100.20 */
	a->key.port = htons(80);
	a->key.proto = IPPROTO_TCP;
	a->val.id = 1;
	a->val.count = 2;
	snprintf(a->name, sizeof(a->name), "shop/cart");
	a->n = 2;
	a->bes = calloc(2, sizeof(*a->bes));
	a->bes[0].id = 10;
	a->bes[0].be = (struct ferry_backend){ .family = AF_INET, .port = htons(8080), .weight = 1 };
	a->bes[0].be.addr[0] = htonl(0xc000020b);	/* 192.0.2.11 */
	a->bes[1] = a->bes[0];
	a->bes[1].id = 11;
	a->bes[1].be.addr[0] = htonl(0xc000020c);	/* 192.0.2.12 */
	a->bes[1].be.health = FERRY_HEALTH_UNHEALTHY;

	b->key.family = AF_INET6;
	b->key.addr[0] = htonl(0x20010db8);
	b->key.addr[3] = htonl(1);
	b->key.port = htons(443);
	b->key.proto = IPPROTO_TCP;
	b->val.id = 2;
	b->val.count = 1;
	b->n = 1;
	b->bes = calloc(1, sizeof(*b->bes));
	b->bes[0].id = 12;
	b->bes[0].be = (struct ferry_backend){ .family = AF_INET6, .port = htons(8443), .weight = 3 };
	b->bes[0].be.addr[0] = htonl(0x20010db8);
	b->bes[0].be.addr[3] = htonl(0x12);
	s->st.nbackends = 3;
	s->has_state = true;

	s->bestat = calloc(3, sizeof(*s->bestat));
	s->bestat[0] = (struct ferry_bestat){ .opened = 5, .success = 4, .failed = 1, .active = 2 };
	s->bestat[1] = (struct ferry_bestat){ .opened = 7, .success = 7, .active = 1, .ejections = 2,
					      .circuit = FERRY_CIRCUIT_OPEN };
	s->bestat[2] = (struct ferry_bestat){ .opened = 100, .success = 90, .failed = 10 };

	s->has_stats = true;
	s->stats[FERRY_STAT_CONNECT_HIT] = 112;
	s->stats[FERRY_STAT_CONNECT_MISS] = 3;

	s->has_status = true;
	s->status.syncs = 4;
	s->status.sync_errors = 1;
	s->status.last_ok = 1;
	s->status.last_sync_ns = 1700000000123456789ULL;
	s->status.last_sync_dur_ns = 2500000;
}

static char *render(const struct ferry_snapshot *s, __u32 cap)
{
	struct metrics_opts o = { .max_backend_series = cap, .version = "test" };
	struct mbuf b = {};

	assert_int_equal(metrics_render(s, &o, &b), 0);
	assert_false(b.oom);
	return b.p;	/* NUL-terminated */
}

static void has_line(const char *text, const char *line)
{
	const char *p = text;
	size_t n = strlen(line);

	while ((p = strstr(p, line))) {
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return;
		p += n;
	}
	fail_msg("missing line: %s", line);
}

static void no_substr(const char *text, const char *s)
{
	if (strstr(text, s))
		fail_msg("unexpected: %s", s);
}

static void backend_and_service_series(void **state)
{
	struct ferry_snapshot s;
	char *t;

	(void)state;
	build(&s);
	t = render(&s, 100);
	has_line(t, "# TYPE ferry_backend_connections_opened_total counter");
	has_line(t, "ferry_backend_connections_opened_total{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\",backend=\"192.0.2.11:8080\"} 5");
	has_line(t, "ferry_backend_connections_opened_total{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\",backend=\"192.0.2.12:8080\"} 7");
	/* A service without a name is labelled by its VIP. */
	has_line(t, "ferry_backend_connections_opened_total{service=\"[2001:db8::1]:443/tcp\",vip=\"[2001:db8::1]:443/tcp\",backend=\"[2001:db8::12]:8443\"} 100");
	has_line(t, "ferry_backend_circuit_state{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\",backend=\"192.0.2.12:8080\"} 1");
	has_line(t, "ferry_backend_health_state{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\",backend=\"192.0.2.12:8080\"} 3");
	has_line(t, "ferry_backend_ejection_level{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\",backend=\"192.0.2.12:8080\"} 2");
	/* Service sums. */
	has_line(t, "ferry_service_connections_opened_total{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\"} 12");
	has_line(t, "ferry_service_connections_active{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\"} 3");
	has_line(t, "ferry_service_backends{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\"} 2");
	/* The unhealthy, circuit-open backend is not usable. */
	has_line(t, "ferry_service_backends_usable{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\"} 1");
	has_line(t, "ferry_services 2");
	has_line(t, "ferry_backends 3");
	has_line(t, "ferry_metrics_backends_overflowed 0");
	no_substr(t, "backend=\"" FERRY_METRICS_OVERFLOW "\"} ");
	free(t);
	snapshot_free(&s);
}

static void datapath_and_status(void **state)
{
	struct ferry_snapshot s;
	char *t;

	(void)state;
	build(&s);
	s.stats[60] = 9;	/* a slot nobody named yet */
	t = render(&s, 100);
	has_line(t, "ferry_build_info{version=\"test\"} 1");
	has_line(t, "# TYPE ferry_sock_connect_total counter");
	has_line(t, "ferry_sock_connect_total{outcome=\"hit\"} 112");
	has_line(t, "ferry_sock_connect_total{outcome=\"miss\"} 3");
	has_line(t, "ferry_datapath_events_total{slot=\"60\"} 9");
	has_line(t, "ferry_registry_syncs_total 4");
	has_line(t, "ferry_registry_sync_errors_total 1");
	has_line(t, "ferry_registry_last_sync_success 1");
	has_line(t, "ferry_registry_last_sync_timestamp_seconds 1700000000.123456789");
	has_line(t, "ferry_registry_last_sync_duration_seconds 0.002500000");
	free(t);
	snapshot_free(&s);
}

static void overflow_series(void **state)
{
	static const char ov[] = "{service=\"__overflow__\",vip=\"__overflow__\",backend=\"__overflow__\"}";
	struct ferry_snapshot s;
	char line[256], *t;

	(void)state;
	build(&s);
	t = render(&s, 1);	/* only 192.0.2.11 keeps its own series */
	has_line(t, "ferry_backend_connections_opened_total{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\",backend=\"192.0.2.11:8080\"} 5");
	no_substr(t, "backend=\"192.0.2.12:8080\"");
	no_substr(t, "backend=\"[2001:db8::12]:8443\"");
	snprintf(line, sizeof(line), "ferry_backend_connections_opened_total%s 107", ov);
	has_line(t, line);
	snprintf(line, sizeof(line), "ferry_backend_connections_failed_total%s 10", ov);
	has_line(t, line);
	/* States do not add up: no overflow series for them. */
	snprintf(line, sizeof(line), "ferry_backend_circuit_state%s", ov);
	no_substr(t, line);
	has_line(t, "ferry_metrics_backends_overflowed 2");
	has_line(t, "ferry_metrics_backend_series_limit 1");
	/* Service sums are never capped. */
	has_line(t, "ferry_service_connections_opened_total{service=\"[2001:db8::1]:443/tcp\",vip=\"[2001:db8::1]:443/tcp\"} 100");
	free(t);

	t = render(&s, 0);	/* everything folded */
	snprintf(line, sizeof(line), "ferry_backend_connections_opened_total%s 112", ov);
	has_line(t, line);
	has_line(t, "ferry_metrics_backends_overflowed 3");
	free(t);
	snapshot_free(&s);
}

static void xdp_families(void **state)
{
	static const char ov[] = "{service=\"__overflow__\",vip=\"__overflow__\",backend=\"__overflow__\"}";
	struct ferry_snapshot s;
	char line[256], *t;

	(void)state;
	build(&s);
	t = render(&s, 100);
	no_substr(t, "ferry_xdp_");	/* XDP not loaded: no XDP families at all */
	free(t);

	s.has_xdp = true;
	s.xstats[FERRY_XSTAT_LRU_HIT] = 40;
	s.xstats[FERRY_XSTAT_LRU_MISS] = 2;
	s.xstats[FERRY_XSTAT_DROP_NO_ROUTE] = 3;
	s.xstats[FERRY_XSTAT_DECAP_BAD_OUTER] = 4;	/* the last slot; none is unnamed now */
	s.st.svcs[0].val.flags |= FERRY_SVC_F_XDP;
	s.xvip = calloc(2, sizeof(*s.xvip));
	s.xbe = calloc(3, sizeof(*s.xbe));
	s.xvip[0] = (struct ferry_xcnt){ .packets = 30, .bytes = 3000 };
	s.xbe[0] = (struct ferry_xcnt){ .packets = 10, .bytes = 1000 };
	s.xbe[1] = (struct ferry_xcnt){ .packets = 20, .bytes = 2000 };
	t = render(&s, 100);
	has_line(t, "ferry_xdp_flow_lookups_total{result=\"hit\"} 40");
	has_line(t, "ferry_xdp_flow_lookups_total{result=\"miss\"} 2");
	has_line(t, "ferry_xdp_drops_total{reason=\"no_route\"} 3");
	has_line(t, "ferry_xdp_decap_total{outcome=\"bad_outer\"} 4");
	/* Every slot of the XDP row has a name: no catch-all family (unnamed
	 * slots are datapath_and_status's, through the same renderer). */
	no_substr(t, "ferry_xdp_events_total");
	has_line(t, "ferry_xdp_packets_total{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\"} 30");
	has_line(t, "ferry_xdp_bytes_total{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\"} 3000");
	has_line(t, "ferry_xdp_backend_packets_total{service=\"shop/cart\",vip=\"198.51.100.20:80/tcp\",backend=\"192.0.2.12:8080\"} 20");
	/* Services not balanced in XDP have no XDP series. */
	no_substr(t, "ferry_xdp_packets_total{service=\"[2001:db8::1]:443/tcp\"");
	no_substr(t, "ferry_xdp_backend_packets_total{service=\"[2001:db8::1]:443/tcp\"");
	free(t);

	t = render(&s, 1);
	snprintf(line, sizeof(line), "ferry_xdp_backend_bytes_total%s 2000", ov);
	has_line(t, line);
	free(t);
	snapshot_free(&s);
}

static void label_escaping(void **state)
{
	struct ferry_snapshot s;
	char *t;

	(void)state;
	build(&s);
	snprintf(s.st.svcs[0].name, FERRY_NAME_LEN, "a\"b\\c\nd");
	t = render(&s, 100);
	has_line(t, "ferry_service_backends{service=\"a\\\"b\\\\c\\nd\",vip=\"198.51.100.20:80/tcp\"} 2");
	free(t);
	snapshot_free(&s);
}

/* Every sample belongs to the family announced last; no family twice. */
static void families_well_formed(void **state)
{
	char fam[128] = "", seen[8192] = " ", *t, *line, *save = NULL;
	struct ferry_snapshot s;
	int samples = 0;

	(void)state;
	build(&s);
	s.stats[61] = 1;
	t = render(&s, 1);
	for (line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128], key[140];
		size_t n;

		if (!strncmp(line, "# HELP ", 7)) {
			sscanf(line + 7, "%127s", fam);
			snprintf(key, sizeof(key), " %s ", fam);
			if (strstr(seen, key))
				fail_msg("family %s announced twice", fam);
			strncat(seen, key + 1, sizeof(seen) - strlen(seen) - 1);
			continue;
		}
		if (!strncmp(line, "# TYPE ", 7)) {
			sscanf(line + 7, "%127s", name);
			assert_string_equal(name, fam);
			assert_true(strstr(line, " counter") || strstr(line, " gauge"));
			continue;
		}
		n = strcspn(line, "{ ");
		assert_true(n < sizeof(name));
		memcpy(name, line, n);
		name[n] = '\0';
		assert_string_equal(name, fam);
		assert_non_null(strchr(line, ' '));
		samples++;
	}
	assert_true(samples > 40);
	free(t);
	snapshot_free(&s);
}

static void empty_snapshot(void **state)
{
	struct ferry_snapshot s = {};
	char *t;

	(void)state;
	/* Nothing readable: build info and the collect time only, no error. */
	t = render(&s, 100);
	has_line(t, "ferry_build_info{version=\"test\"} 1");
	no_substr(t, "ferry_services");
	free(t);
}

static void check_names(const struct stat_desc *descs, int n)
{
	int i, j;

	for (i = 0; i < n; i++) {
		const struct stat_desc *d = &descs[i];
		bool first = true;

		if (!d->name)
			continue;
		assert_non_null(d->family);
		assert_non_null(d->labels);
		assert_int_equal(strncmp(d->family, "ferry_", 6), 0);
		assert_non_null(strstr(d->family, "_total"));
		for (j = 0; j < i; j++) {
			const struct stat_desc *e = &descs[j];

			if (!e->name)
				continue;
			if (!strcmp(e->name, d->name))
				fail_msg("slot %d and %d share the name %s", i, j, d->name);
			if (!strcmp(e->family, d->family)) {
				first = false;
				if (!strcmp(e->labels, d->labels))
					fail_msg("slot %d and %d are the same series %s{%s}", i, j,
						 d->family, d->labels);
			}
		}
		if (first && !d->help)
			fail_msg("slot %d starts family %s without HELP text", i, d->family);
	}
}

static void stat_names_consistent(void **state)
{
	(void)state;
	check_names(ferry_stat_descs, FERRY_STAT_MAX);
	check_names(ferry_xstat_descs, FERRY_XSTAT_MAX);
}

static void gzip_roundtrip(void **state)
{
	struct ferry_snapshot s;
	struct mbuf gz = {};
	uLongf outlen;
	char *t, *out;
	z_stream z = {};

	(void)state;
	build(&s);
	t = render(&s, 100);
	assert_int_equal(mbuf_gzip(t, strlen(t), &gz, 1), 0);
	assert_true(gz.len < strlen(t));
	assert_int_equal((unsigned char)gz.p[0], 0x1f);	/* gzip magic */
	assert_int_equal((unsigned char)gz.p[1], 0x8b);
	outlen = strlen(t) + 16;
	out = malloc(outlen);
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (Bytef *)gz.p;
	z.avail_in = gz.len;
	z.next_out = (Bytef *)out;
	z.avail_out = outlen;
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.total_out, strlen(t));
	assert_memory_equal(out, t, strlen(t));
	inflateEnd(&z);
	free(out);
	mbuf_free(&gz);
	free(t);
	snapshot_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(backend_and_service_series),
		cmocka_unit_test(datapath_and_status),
		cmocka_unit_test(overflow_series),
		cmocka_unit_test(xdp_families),
		cmocka_unit_test(label_escaping),
		cmocka_unit_test(families_well_formed),
		cmocka_unit_test(empty_snapshot),
		cmocka_unit_test(stat_names_consistent),
		cmocka_unit_test(gzip_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
