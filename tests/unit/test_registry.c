// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Registry parsing: good documents and their defaults, and every kind of bad
 * input, each of which must be rejected whole with an error that names
 * file:line:col of the offending value.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include <ferry/abi.h>
#include "jsonpos.h"
#include "registry.h"

#define FNAME "reg.json"

static const struct registry_limits lim = { .max_services = 64, .max_backends = 256 };

/*
 * Line and column (1-based) of the nth occurrence of needle in doc. A '|' in
 * needle marks the position inside it ("\"port\": |0}"); without one the
 * position is where needle starts.
 */
static void pos_of(const char *doc, const char *needle, int nth, int *line, int *col)
{
	const char *p = doc, *hit = NULL, *q, *bar = strchr(needle, '|');
	char pat[256];
	size_t skip = 0;

	snprintf(pat, sizeof(pat), "%s", needle);
	if (bar) {
		skip = bar - needle;
		memmove(pat + skip, pat + skip + 1, strlen(pat + skip));
	}
	while (nth-- > 0) {
		hit = strstr(p, pat);
		if (!hit)
			fail_msg("test bug: \"%s\" not in the document", pat);
		p = hit + 1;
	}
	hit += skip;
	*line = 1;
	*col = 1;
	for (q = doc; q < hit; q++) {
		if (*q == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

static int parse(const char *doc, const struct registry_limits *l, struct registry *r,
		 char *err, size_t errlen)
{
	err[0] = '\0';
	return registry_parse(doc, strlen(doc), FNAME, l, r, err, errlen);
}

/*
 * doc must be rejected; the error must start with "reg.json:L:C: " where L:C
 * is where the nth occurrence of at stands, and contain what.
 */
static void expect_error_at(const char *doc, const struct registry_limits *l,
			    const char *at, int nth, const char *what)
{
	struct registry r;
	char err[FERRY_ERR_LEN], want[64];
	int line, col, ret;

	pos_of(doc, at, nth, &line, &col);
	memset(&r, 0xa5, sizeof(r));
	ret = parse(doc, l, &r, err, sizeof(err));
	if (ret != -EINVAL)
		fail_msg("expected -EINVAL for a document with %s, got %d (%s)", what, ret, err);
	snprintf(want, sizeof(want), FNAME ":%d:%d: ", line, col);
	if (strncmp(err, want, strlen(want)))
		fail_msg("error \"%s\" does not start with \"%s\"", err, want);
	if (!strstr(err, what))
		fail_msg("error \"%s\" does not mention \"%s\"", err, what);
	/* Rejected whole: nothing is handed out. */
	assert_null(r.svcs);
	assert_int_equal(r.nsvcs, 0);
	registry_free(&r);
}

static void expect_error(const char *doc, const char *at, const char *what)
{
	expect_error_at(doc, &lim, at, 1, what);
}

static void registry_minimal_defaults(void **state)
{
	static const char doc[] =
		"{\"services\": [{\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		"  \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 8080}]}]}\n";
	struct ferry_circuit_cfg cdef;
	struct registry r;
	char err[FERRY_ERR_LEN];
	const struct reg_service *s;

	(void)state;
	assert_int_equal(parse(doc, &lim, &r, err, sizeof(err)), 0);
	assert_int_equal(r.nsvcs, 1);
	assert_int_equal(r.nbackends, 1);
	s = &r.svcs[0];
	assert_string_equal(s->name, "a");
	assert_int_equal(s->key.family, AF_INET);
	assert_int_equal(s->key.addr[0], inet_addr("198.51.100.10"));
	assert_int_equal(s->key.addr[1] | s->key.addr[2] | s->key.addr[3], 0);
	assert_int_equal(s->key.port, htons(80));
	assert_int_equal(s->key.proto, IPPROTO_TCP);		/* default protocol */
	assert_int_equal(s->lb, FERRY_LB_ROUND_ROBIN);		/* default policy */
	assert_false(s->xdp);
	assert_int_equal(s->health.type, HEALTH_NONE);
	circuit_defaults(&cdef);
	assert_memory_equal(&s->circuit, &cdef, sizeof(cdef));
	assert_int_equal(s->nbackends, 1);
	assert_int_equal(s->backends[0].addr.family, AF_INET);
	assert_int_equal(s->backends[0].addr.a[0], inet_addr("192.0.2.11"));
	assert_int_equal(s->backends[0].port, 8080);		/* host order */
	assert_int_equal(s->backends[0].weight, 1);		/* default weight */
	assert_int_equal(s->backends[0].state, FERRY_BE_ACTIVE);
	registry_free(&r);
}

static void registry_full_document(void **state)
{
	static const char doc[] =
		"{\n"
		"  \"services\": [\n"
		"    {\n"
		"      \"name\": \"ns/dns\", \"vip\": \"2001:db8:ffff::53\", \"port\": 53,\n"
		"      \"protocol\": \"udp\", \"lb\": \"maglev\", \"xdp\": false,\n"
		"      \"circuit\": { \"consecutive_failures\": 3, \"base_ejection_ms\": 1000,\n"
		"                   \"max_ejection_ms\": 2000, \"max_ejection_percent\": 20,\n"
		"                   \"half_open_probes\": 2, \"max_connections\": 100 },\n"
		"      \"health\": { \"type\": \"http\", \"path\": \"/ready\", \"interval_ms\": 200,\n"
		"                  \"timeout_ms\": 50, \"healthy_after\": 1, \"unhealthy_after\": 4 },\n"
		"      \"backends\": [\n"
		"        { \"ip\": \"2001:db8::11\", \"port\": 5353, \"weight\": 0 },\n"
		"        { \"ip\": \"2001:db8::12\", \"port\": 5353, \"weight\": 65535, \"state\": \"draining\" },\n"
		"        { \"ip\": \"2001:db8::12\", \"port\": 5354 }\n"
		"      ]\n"
		"    },\n"
		"    { \"name\": \"empty\", \"vip\": \"198.51.100.10\", \"port\": 80, \"lb\": \"least_conn\" },\n"
		"    { \"name\": \"same-vip-udp\", \"vip\": \"198.51.100.10\", \"port\": 80, \"protocol\": \"udp\",\n"
		"      \"lb\": \"weighted\", \"backends\": [] },\n"
		"    { \"name\": \"same-vip-other-port\", \"vip\": \"198.51.100.10\", \"port\": 81, \"lb\": \"random\", \"xdp\": true,\n"
		"      \"health\": { \"type\": \"tcp\" } }\n"
		"  ]\n"
		"}\n";
	struct registry r;
	char err[FERRY_ERR_LEN];
	const struct reg_service *s;
	struct faddr want;

	(void)state;
	if (parse(doc, &lim, &r, err, sizeof(err)))
		fail_msg("good document rejected: %s", err);
	assert_int_equal(r.nsvcs, 4);
	assert_int_equal(r.nbackends, 3);
	s = &r.svcs[0];
	assert_string_equal(s->name, "ns/dns");
	assert_int_equal(s->key.family, AF_INET6);
	assert_int_equal(faddr_parse("2001:db8:ffff::53", &want), 0);
	assert_memory_equal(s->key.addr, want.a, sizeof(want.a));
	assert_int_equal(s->key.port, htons(53));
	assert_int_equal(s->key.proto, IPPROTO_UDP);
	assert_int_equal(s->lb, FERRY_LB_MAGLEV);
	assert_false(s->xdp);
	assert_int_equal(s->circuit.consecutive_failures, 3);
	assert_int_equal(s->circuit.base_ejection_ms, 1000);
	assert_int_equal(s->circuit.max_ejection_ms, 2000);
	assert_int_equal(s->circuit.max_ejection_percent, 20);
	assert_int_equal(s->circuit.half_open_probes, 2);
	assert_int_equal(s->circuit.max_connections, 100);
	assert_int_equal(s->health.type, HEALTH_HTTP);
	assert_string_equal(s->health.path, "/ready");
	assert_int_equal(s->health.interval_ms, 200);
	assert_int_equal(s->health.timeout_ms, 50);
	assert_int_equal(s->health.healthy_after, 1);
	assert_int_equal(s->health.unhealthy_after, 4);
	assert_int_equal(s->nbackends, 3);
	assert_int_equal(s->backends[0].weight, 0);
	assert_int_equal(s->backends[0].state, FERRY_BE_ACTIVE);
	assert_int_equal(s->backends[1].weight, 65535);
	assert_int_equal(s->backends[1].state, FERRY_BE_DRAINING);
	assert_int_equal(s->backends[2].port, 5354);
	assert_int_equal(s->backends[2].addr.family, AF_INET6);

	s = &r.svcs[1];
	assert_int_equal(s->lb, FERRY_LB_LEAST_CONN);
	assert_int_equal(s->nbackends, 0);
	s = &r.svcs[2];
	assert_int_equal(s->key.proto, IPPROTO_UDP);
	assert_int_equal(s->lb, FERRY_LB_WEIGHTED);
	assert_int_equal(s->nbackends, 0);
	s = &r.svcs[3];
	assert_int_equal(s->lb, FERRY_LB_RANDOM);
	assert_true(s->xdp);
	/* health defaults */
	assert_int_equal(s->health.type, HEALTH_TCP);
	assert_string_equal(s->health.path, "/healthz");
	assert_int_equal(s->health.interval_ms, 5000);
	assert_int_equal(s->health.timeout_ms, 1000);
	assert_int_equal(s->health.healthy_after, 2);
	assert_int_equal(s->health.unhealthy_after, 3);
	registry_free(&r);
}

static void registry_empty_services(void **state)
{
	struct registry r;
	char err[FERRY_ERR_LEN];

	(void)state;
	assert_int_equal(parse("{\"services\": []}", &lim, &r, err, sizeof(err)), 0);
	assert_int_equal(r.nsvcs, 0);
	assert_int_equal(r.nbackends, 0);
	registry_free(&r);
}

static void registry_load_file(void **state)
{
	static const char doc[] =
		"{\"services\": [{\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		"  \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 8080}, {\"ip\": \"192.0.2.12\", \"port\": 8080}]}]}\n";
	char path[] = "/tmp/ferry-test-registry-XXXXXX", err[FERRY_ERR_LEN];
	struct registry r;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
	close(fd);
	if (registry_load(path, &lim, &r, err, sizeof(err)))
		fail_msg("registry_load(%s): %s", path, err);
	assert_int_equal(r.nsvcs, 1);
	assert_int_equal(r.svcs[0].nbackends, 2);
	registry_free(&r);

	/* A bad file names itself (the path, not a label) in the error. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"services\": [}", 15), 15);
	close(fd);
	assert_int_equal(registry_load(path, &lim, &r, err, sizeof(err)), -EINVAL);
	assert_int_equal(strncmp(err, path, strlen(path)), 0);
	assert_non_null(strstr(err, ":1:15: "));
	unlink(path);

	/* A missing file: -ENOENT, the path and the reason. */
	assert_int_equal(registry_load(path, &lim, &r, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file"));
}

static void registry_bad_syntax(void **state)
{
	(void)state;
	/* missing comma between members: reported where the next key starts */
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\" \"vip\": \"198.51.100.10\", \"port\": 80}\n"
		     "]}\n", "\"vip\"", "expected ',' or '}'");
	/* trailing comma in an array */
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80},\n"
		     "]}\n", "]}", "");
	/* unterminated document */
	expect_error("{\"services\": [\n", "[\n|", "unexpected end of input");
	/* trailing garbage */
	expect_error("{\"services\": []} x\n", "x", "trailing characters");
	/* not JSON at all */
	expect_error("services:\n  - a\n", "services", "");
	/* duplicate key in one object */
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80, \"port\": 81}\n"
		     "]}\n", "\"port\": 81", "duplicate key");
	/* top level must be an object with services */
	expect_error("[]", "[", "expected object");
	expect_error("{}", "{", "\"services\" is required");
	expect_error("{\"services\": {}}", "{}", "expected array");
}

static void registry_unknown_key(void **state)
{
	(void)state;
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 8080, \"wieght\": 3}]}\n"
		     "]}\n", "\"wieght\"", "unknown key \"wieght\"");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80, \"policy\": \"maglev\"}\n"
		     "]}\n", "\"policy\"", "unknown key \"policy\"");
	expect_error("{\"version\": 1, \"services\": []}\n", "\"version\"", "unknown key \"version\"");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"circuit\": {\"max_conns\": 5}}\n"
		     "]}\n", "\"max_conns\"", "unknown key \"max_conns\"");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"health\": {\"type\": \"tcp\", \"every\": 5}}\n"
		     "]}\n", "\"every\"", "unknown key \"every\"");
}

static void registry_bad_address(void **state)
{
	(void)state;
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.300\", \"port\": 80}\n"
		     "]}\n", "\"198.51.100.300\"", "is not an IPv4 or IPv6 address");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 8080},\n"
		     "                {\"ip\": \"192.0.2.300\", \"port\": 8080}]}\n"
		     "]}\n", "\"192.0.2.300\"", "\"192.0.2.300\" is not an IPv4 or IPv6 address");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"backend.example\", \"port\": 80}\n"
		     "]}\n", "\"backend.example\"", "is not an IPv4 or IPv6 address");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10/32\", \"port\": 80}\n"
		     "]}\n", "\"198.51.100.10/32\"", "is not an IPv4 or IPv6 address");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": 3325256714, \"port\": 80}\n"
		     "]}\n", "3325256714", "expected string");
}

static void registry_family_mismatch(void **state)
{
	(void)state;
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"v6\", \"vip\": \"2001:db8:ffff::10\", \"port\": 80,\n"
		     "   \"backends\": [{\"ip\": \"2001:db8::11\", \"port\": 8080},\n"
		     "                {\"ip\": \"192.0.2.12\", \"port\": 8080}]}\n"
		     "]}\n", "\"192.0.2.12\"", "is IPv4 but the VIP is IPv6");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"v4\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"backends\": [{\"ip\": \"2001:db8::11\", \"port\": 8080}]}\n"
		     "]}\n", "\"2001:db8::11\"", "is IPv6 but the VIP is IPv4");
}

/* XDP forwards by direct server return: the backend port must be the VIP's. */
static void registry_xdp_port_translation(void **state)
{
	struct registry r;
	char err[FERRY_ERR_LEN];

	(void)state;
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"x\", \"vip\": \"198.51.100.10\", \"port\": 80, \"xdp\": true,\n"
		     "   \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 8080}]}\n"
		     "]}\n", "8080", "cannot translate ports");
	assert_int_equal(parse("{\"services\": [{\"name\": \"x\", \"vip\": \"198.51.100.10\", \"port\": 80,"
			       " \"xdp\": true, \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 80}]}]}",
			       &lim, &r, err, sizeof(err)), 0);
	assert_true(r.svcs[0].xdp);
	registry_free(&r);
}

static void registry_duplicate_vip(void **state)
{
	static const char doc[] =
		"{\"services\": [\n"
		"  {\"name\": \"first\", \"vip\": \"198.51.100.10\", \"port\": 80},\n"
		"  {\"name\": \"other\", \"vip\": \"198.51.100.11\", \"port\": 80},\n"
		"  {\"name\": \"second\", \"vip\": \"198.51.100.10\", \"port\": 80, \"protocol\": \"tcp\"}\n"
		"]}\n";
	static const char v6[] =
		"{\"services\": [\n"
		"  {\"name\": \"first\", \"vip\": \"2001:db8::10\", \"port\": 80},\n"
		"  {\"name\": \"second\", \"vip\": \"2001:DB8:0::10\", \"port\": 80}\n"
		"]}\n";

	(void)state;
	/* the second use is the error; the message names both services */
	expect_error_at(doc, &lim, "\"198.51.100.10\"", 2, "VIP 198.51.100.10:80/tcp is already used by service \"first\"");
	expect_error_at(doc, &lim, "\"198.51.100.10\"", 2, "service \"second\"");
	/* same address written differently is the same VIP */
	expect_error(v6, "\"2001:DB8:0::10\"", "[2001:db8::10]:80/tcp is already used");
}

static void registry_duplicate_backend(void **state)
{
	static const char doc[] =
		"{\"services\": [\n"
		"  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80, \"backends\": [\n"
		"    {\"ip\": \"192.0.2.11\", \"port\": 8080},\n"
		"    {\"ip\": \"192.0.2.12\", \"port\": 8080},\n"
		"    {\"ip\": \"192.0.2.11\", \"port\": 8081},\n"
		"    {\"ip\": \"192.0.2.11\", \"port\": 8080, \"weight\": 5}\n"
		"  ]}\n"
		"]}\n";

	(void)state;
	expect_error(doc, "{\"ip\": \"192.0.2.11\", \"port\": 8080, \"weight\"",
		     "backend 192.0.2.11 port 8080 is listed twice");
}

static const char *svc_port_doc(const char *port)
{
	static char doc[512];

	snprintf(doc, sizeof(doc),
		 "{\"services\": [\n"
		 "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": %s}\n"
		 "]}\n", port);
	return doc;
}

static const char *be_field_doc(const char *field, const char *value)
{
	static char doc[512];

	snprintf(doc, sizeof(doc),
		 "{\"services\": [\n"
		 "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		 "   \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 8080, \"%s\": %s}]}\n"
		 "]}\n", field, value);
	return doc;
}

static void registry_bad_port(void **state)
{
	static const char *const bad[] = { "0", "65536", "-1", "80.5", "1e2", "99999999999999999999" };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(svc_port_doc(bad[i]), "\"port\": |", "\"port\"");
	expect_error(svc_port_doc("0"), "\"port\": |0}", "service \"port\": 0 is not an integer in 1..65535");
	expect_error(svc_port_doc("65536"), "65536", "service \"port\": 65536 is not an integer in 1..65535");
	expect_error(svc_port_doc("\"80\""), "\"80\"", "expected number, got string");
	/* backend ports: "port": 8080 is replaced by the bad value */
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 0}]}\n"
		     "]}\n", "\"port\": |0}", "backend \"port\": 0 is not an integer in 1..65535");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 65536}]}\n"
		     "]}\n", "65536", "backend \"port\": 65536 is not an integer in 1..65535");
	/* a missing port is an error too, at the object */
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"backends\": [{\"ip\": \"192.0.2.11\"}]}\n"
		     "]}\n", "{\"ip\"", "\"port\" is required");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\"}\n"
		     "]}\n", "{\"name\"", "\"port\" is required");
}

static void registry_bad_weight(void **state)
{
	(void)state;
	expect_error(be_field_doc("weight", "65536"), "65536", "backend \"weight\": 65536 is not an integer in 0..65535");
	expect_error(be_field_doc("weight", "-1"), "-1", "backend \"weight\": -1 is not an integer in 0..65535");
	expect_error(be_field_doc("weight", "1.5"), "1.5", "is not an integer");
	expect_error(be_field_doc("weight", "true"), "true", "expected number, got boolean");
}

static void registry_unknown_enums(void **state)
{
	(void)state;
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80, \"lb\": \"round-robin\"}\n"
		     "]}\n", "\"round-robin\"", "\"round-robin\" is not round_robin, random, weighted, maglev or least_conn");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80, \"protocol\": \"sctp\"}\n"
		     "]}\n", "\"sctp\"", "\"sctp\" is not tcp or udp");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80, \"protocol\": \"TCP\"}\n"
		     "]}\n", "\"TCP\"", "\"TCP\" is not tcp or udp");
	expect_error(be_field_doc("state", "\"drained\""), "\"drained\"", "\"drained\" is not active or draining");
	/* quarantine is an operator action (ferryctl), never registry state */
	expect_error(be_field_doc("state", "\"quarantined\""), "\"quarantined\"", "is not active or draining");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80, \"health\": {\"type\": \"icmp\"}}\n"
		     "]}\n", "\"icmp\"", "\"icmp\" is not tcp or http");
}

static void registry_bad_other_values(void **state)
{
	(void)state;
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"\", \"vip\": \"198.51.100.10\", \"port\": 80}\n"
		     "]}\n", "\"\"", "\"name\": must be 1..63 characters");
	expect_error("{\"services\": [\n"
		     "  {\"vip\": \"198.51.100.10\", \"port\": 80}\n"
		     "]}\n", "{\"vip\"", "\"name\" is required");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"port\": 80}\n"
		     "]}\n", "{\"name\"", "\"vip\" is required");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80, \"xdp\": 1}\n"
		     "]}\n", "\"xdp\": |1}", "expected boolean, got number");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"circuit\": {\"base_ejection_ms\": 5000, \"max_ejection_ms\": 1000}}\n"
		     "]}\n", "{\"base", "max_ejection_ms 1000 is below base_ejection_ms 5000");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"circuit\": {\"max_ejection_percent\": 101}}\n"
		     "]}\n", "101", "\"max_ejection_percent\": 101 is not an integer in 0..100");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"health\": {\"type\": \"http\", \"path\": \"healthz\"}}\n"
		     "]}\n", "\"healthz\"", "must start with /");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"backends\": [{\"port\": 8080}]}\n"
		     "]}\n", "{\"port\"", "\"ip\" is required");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"backends\": [\"192.0.2.11:8080\"]}\n"
		     "]}\n", "\"192.0.2.11:8080\"", "expected object, got string");
}

/* Only the JSON number grammar; errors say what was written. */
static void registry_bad_numbers(void **state)
{
	(void)state;
	expect_error(svc_port_doc("01"), "\"port\": |01", "leading zeros are not allowed");
	expect_error(svc_port_doc("00"), "\"port\": |00", "leading zeros are not allowed");
	expect_error(svc_port_doc("-01"), "\"port\": |-01", "leading zeros are not allowed");
	expect_error(svc_port_doc("1e3"), "1e3", "service \"port\": 1e3 is not an integer (written with a fraction or an exponent)");
	expect_error(svc_port_doc("80.0"), "80.0", "service \"port\": 80.0 is not an integer (written with a fraction");
	expect_error(svc_port_doc("8E1"), "8E1", "8E1 is not an integer (written with a fraction or an exponent)");
	expect_error(svc_port_doc("99999999999999999999"), "9999",
		     "service \"port\": 99999999999999999999 is not an integer in 1..65535");
	expect_error(svc_port_doc("-"), "\"port\": -|}", "expected a digit after '-'");
	expect_error(svc_port_doc("1."), "\"port\": 1.|}", "expected a digit after '.'");
	expect_error(svc_port_doc("1.e2"), "\"port\": 1.|e2}", "expected a digit after '.'");
	expect_error(svc_port_doc("1e"), "\"port\": 1e|}", "expected a digit in the exponent");
	expect_error(svc_port_doc("1e+"), "\"port\": 1e+|}", "expected a digit in the exponent");
	expect_error(svc_port_doc("+1"), "+1", "unexpected character");
	expect_error(svc_port_doc(".5"), "\"port\": |.5", "unexpected character");
	expect_error(svc_port_doc("0x50"), "\"port\": 0|x50", "expected ',' or '}'");
	/* 0 alone, and a long integer the old 64-byte buffer cut short */
	expect_error(svc_port_doc("0"), "\"port\": |0}", "service \"port\": 0 is not an integer in 1..65535");
	expect_error(svc_port_doc("000000000000000000000000000000000000000000000000000000000000000000080"),
		     "\"port\": |00", "leading zeros");
	expect_error(svc_port_doc("1000000000000000000000000000000000000000000000000000000000000000000080"),
		     "\"port\": |1", "is not an integer in 1..65535");
}

/* A service whose name is the JSON string text n (without quotes). */
static const char *svc_name_doc(const char *n)
{
	static char doc[512];

	snprintf(doc, sizeof(doc),
		 "{\"services\": [\n"
		 "  {\"name\": \"%s\", \"vip\": \"198.51.100.10\", \"port\": 80}\n"
		 "]}\n", n);
	return doc;
}

static void expect_name(const char *json, const char *want)
{
	struct registry r;
	char err[FERRY_ERR_LEN];

	if (parse(svc_name_doc(json), &lim, &r, err, sizeof(err)))
		fail_msg("name \"%s\" rejected: %s", json, err);
	assert_string_equal(r.svcs[0].name, want);
	registry_free(&r);
}

/* Strings are well-formed UTF-8, whatever way they were written. */
static void registry_utf8(void **state)
{
	static const char *const bad_raw[] = {
		"caf\xe9/x",			/* Latin-1, the reviewer's case */
		"caf\xc3",			/* truncated by the closing quote */
		"caf\x80",			/* stray continuation byte */
		"caf\xc0\xaf",			/* overlong '/' */
		"caf\xc1\xbf",			/* overlong */
		"caf\xe0\x80\xaf",		/* overlong, 3 bytes */
		"caf\xf0\x80\x80\xaf",		/* overlong, 4 bytes */
		"caf\xed\xa0\x80",		/* surrogate U+D800 */
		"caf\xed\xbf\xbf",		/* surrogate U+DFFF */
		"caf\xf4\x90\x80\x80",		/* U+110000 */
		"caf\xf5\x80\x80\x80",		/* no such lead byte */
		"caf\xff",
		"caf\xe2\x82" "x",		/* bad continuation */
	};
	size_t i;

	(void)state;
	expect_name("caf\xc3\xa9/x", "caf\xc3\xa9/x");
	expect_name("caf\\u00e9/x", "caf\xc3\xa9/x");
	expect_name("\xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf", "\xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf");
	expect_name("\\ud83d\\ude00", "\xf0\x9f\x98\x80");		/* a pair, combined */
	expect_name("\\uD83D\\uDE00", "\xf0\x9f\x98\x80");
	expect_name("\\udbff\\udfff", "\xf4\x8f\xbf\xbf");		/* U+10FFFF */
	expect_name("\\ufffd", "\xef\xbf\xbd");
	for (i = 0; i < sizeof(bad_raw) / sizeof(bad_raw[0]); i++)
		expect_error(svc_name_doc(bad_raw[i]), "caf|", "invalid UTF-8 in string");
	/* in a key too */
	expect_error("{\"services\": [], \"k\xe9y\": 1}\n", "\"k|", "invalid UTF-8 in string");
	/* escapes: lone surrogates, reported at their backslash */
	expect_error(svc_name_doc("ab\\ud800"), "ab|\\ud800", "lone high surrogate");
	expect_error(svc_name_doc("ab\\ud800x"), "ab|\\ud800", "lone high surrogate");
	expect_error(svc_name_doc("ab\\ud800\\n"), "ab|\\ud800", "lone high surrogate");
	expect_error(svc_name_doc("ab\\udc00"), "ab|\\udc00", "lone low surrogate");
	expect_error(svc_name_doc("ab\\udfff\\ud800"), "ab|\\udfff", "lone low surrogate");
	expect_error(svc_name_doc("ab\\ud800\\u0041"), "\\u0041", "is not a low surrogate");
	expect_error_at(svc_name_doc("ab\\ud800\\ud800"), &lim, "\\ud800", 2, "is not a low surrogate");
}

/* U+0000 would cut the C strings made of the values short: refused. */
static void registry_nul(void **state)
{
	(void)state;
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80, \"lb\\u0000typo\": \"maglev\"}\n"
		     "]}\n", "\"lb|\\u0000", "\\u0000 (NUL) is not allowed in a string");
	expect_error(svc_name_doc("a\\u0000hidden"), "\"a|\\u0000", "NUL");
	expect_error("{\"services\": [\n"
		     "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		     "   \"health\": {\"type\": \"http\", \"path\": \"/ok\\u0000\\r\\nX-Evil: 1\"}}\n"
		     "]}\n", "/ok|\\u0000", "NUL");
}

static const char *health_path_doc(const char *path)
{
	static char doc[512];

	snprintf(doc, sizeof(doc),
		 "{\"services\": [\n"
		 "  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		 "   \"health\": {\"type\": \"http\", \"path\": \"%s\"}}\n"
		 "]}\n", path);
	return doc;
}

/* The health path goes into an HTTP request line; names into logs and labels. */
static void registry_control_characters(void **state)
{
	struct registry r;
	char err[FERRY_ERR_LEN];

	(void)state;
	expect_error(health_path_doc("/ok\\r\\nX-Evil: 1"), "\"/ok", "byte 0x0d at offset 3 is not allowed");
	expect_error(health_path_doc("/ok\\nX"), "\"/ok", "byte 0x0a at offset 3");
	expect_error(health_path_doc("/o\\tk"), "\"/o", "byte 0x09 at offset 2");
	expect_error(health_path_doc("/o k"), "\"/o", "byte 0x20 at offset 2");
	expect_error(health_path_doc("/o\\u007fk"), "\"/o", "byte 0x7f at offset 2");
	expect_error(health_path_doc("/caf\xc3\xa9"), "\"/caf", "byte 0xc3 at offset 4");
	/* what a path may hold */
	assert_int_equal(parse(health_path_doc("/ready?x=%C3%A9&y=[1]~!$'()*+,;=:@"), &lim, &r, err, sizeof(err)), 0);
	assert_string_equal(r.svcs[0].health.path, "/ready?x=%C3%A9&y=[1]~!$'()*+,;=:@");
	registry_free(&r);
	expect_error(svc_name_doc("a\\nb"), "\"a\\n", "control character 0x0a at offset 1");
	expect_error(svc_name_doc("a\\u001bb"), "\"a\\u", "control character 0x1b at offset 1");
	expect_error(svc_name_doc("a\\u007f"), "\"a\\u", "control character 0x7f at offset 1");
	expect_error(svc_name_doc("a\\u009bb"), "\"a\\u", "control character U+009B at offset 1");
	expect_error(svc_name_doc("a\xc2\x85"), "\"a", "control character U+0085 at offset 1");
	expect_name("caf\xc3\xa9 \xc2\xa0x", "caf\xc3\xa9 \xc2\xa0x");
	expect_name("default/reviews-v2.1", "default/reviews-v2.1");
}

/*
 * The duplicate-key check compares each key with the ones before it: the
 * members of one object are capped, and the cap comes before that work.
 */
static void registry_member_cap(void **state)
{
	const int nkeys = 100000;
	struct registry r;
	char err[FERRY_ERR_LEN], at[32], *doc, *p;
	int i, ret;

	(void)state;
	doc = malloc(nkeys * 16 + 64);
	assert_non_null(doc);
	p = doc + sprintf(doc, "{\"services\": []");
	for (i = 0; i < nkeys; i++)
		p += sprintf(p, ",\n\"k%d\": 0", i);
	strcpy(p, "}\n");
	/* Refused at the 65th key: the rest of the object is never read. */
	snprintf(at, sizeof(at), "\"k%d\"", JP_MAX_MEMBERS - 1);	/* services + 63 keys fill it */
	expect_error(doc, at, "object has more than 64 members");
	/* 64 members exactly: past the cap, then an unknown key */
	p = doc + sprintf(doc, "{\"services\": []");
	for (i = 0; i < JP_MAX_MEMBERS - 1; i++)
		p += sprintf(p, ",\n\"k%d\": 0", i);
	strcpy(p, "}\n");
	ret = parse(doc, &lim, &r, err, sizeof(err));
	assert_int_equal(ret, -EINVAL);
	assert_non_null(strstr(err, "reg.json:2:1: document: unknown key \"k0\""));
	free(doc);
	/* nested objects have the cap each, not together */
	doc = malloc(JP_MAX_MEMBERS * 40 + 256);
	assert_non_null(doc);
	p = doc + sprintf(doc, "{\"services\": [{\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80, \"x\": {\"a\": 1");
	for (i = 0; i < JP_MAX_MEMBERS; i++)
		p += sprintf(p, ", \"k%d\": 0", i);
	strcpy(p, "}}]}\n");
	expect_error(doc, "\"k63\"", "object has more than 64 members");
	free(doc);
}

static void registry_over_capacity(void **state)
{
	static const struct registry_limits small = { .max_services = 2, .max_backends = 3 };
	static const char three_svcs[] =
		"{\"services\": [\n"
		"  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80},\n"
		"  {\"name\": \"b\", \"vip\": \"198.51.100.11\", \"port\": 80},\n"
		"  {\"name\": \"c\", \"vip\": \"198.51.100.12\", \"port\": 80}\n"
		"]}\n";
	static const char four_bes[] =
		"{\"services\": [\n"
		"  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		"   \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 1}, {\"ip\": \"192.0.2.11\", \"port\": 2}]},\n"
		"  {\"name\": \"b\", \"vip\": \"198.51.100.11\", \"port\": 80,\n"
		"   \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 3}, {\"ip\": \"192.0.2.11\", \"port\": 4}]}\n"
		"]}\n";
	static const char three_bes[] =
		"{\"services\": [\n"
		"  {\"name\": \"a\", \"vip\": \"198.51.100.10\", \"port\": 80,\n"
		"   \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 1}, {\"ip\": \"192.0.2.11\", \"port\": 2}]},\n"
		"  {\"name\": \"b\", \"vip\": \"198.51.100.11\", \"port\": 80,\n"
		"   \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 3}]}\n"
		"]}\n";
	struct registry r;
	char err[FERRY_ERR_LEN];

	(void)state;
	expect_error_at(three_svcs, &small, "[", 1, "3 services exceed the capacity of 2");
	/* the service whose backends cross the limit is named, at its list */
	expect_error_at(four_bes, &small, "[{", 2, "service \"b\": backends exceed the capacity of 3 backends");
	/* exactly at capacity is fine */
	if (parse(three_bes, &small, &r, err, sizeof(err)))
		fail_msg("a registry at capacity was rejected: %s", err);
	assert_int_equal(r.nbackends, 3);
	registry_free(&r);
}

static void registry_too_many_backends_in_service(void **state)
{
	static const struct registry_limits big = { .max_services = 4, .max_backends = 100000 };
	size_t n = FERRY_MAX_SVC_BACKENDS + 1, i, off;
	char *doc = malloc(n * 48 + 256);

	(void)state;
	assert_non_null(doc);
	off = sprintf(doc, "{\"services\": [\n  {\"name\": \"big\", \"vip\": \"198.51.100.10\", \"port\": 80,\n   \"backends\": [");
	for (i = 0; i < n; i++)
		off += sprintf(doc + off, "%s{\"ip\": \"192.0.2.%zu\", \"port\": %zu}", i ? "," : "",
			       1 + i % 250, 1 + i / 250);
	sprintf(doc + off, "]}\n]}\n");
	expect_error_at(doc, &big, "[{", 1, "4097 backends, at most 4096 per service");
	free(doc);
}

/*
 * Deterministic mutations of a good document (bytes replaced, dropped,
 * inserted, the tail cut): every result either parses or is rejected with
 * -EINVAL and an error that starts with file:line:col.
 */
static void registry_mutations_fail_cleanly(void **state)
{
	static const char base[] =
		"{\"services\": [{\"name\": \"a\\u00e9\\n\", \"vip\": \"198.51.100.10\", \"port\": 80, \"lb\": \"maglev\",\n"
		" \"xdp\": true, \"circuit\": {\"consecutive_failures\": 3}, \"health\": {\"type\": \"http\", \"path\": \"/x\"},\n"
		" \"backends\": [{\"ip\": \"192.0.2.11\", \"port\": 8080, \"weight\": 2, \"state\": \"draining\"},\n"
		"               {\"ip\": \"192.0.2.12\", \"port\": 8081}]},\n"
		" {\"name\": \"b\", \"vip\": \"2001:db8::1\", \"port\": 53, \"protocol\": \"udp\",\n"
		"  \"backends\": [{\"ip\": \"2001:db8::2\", \"port\": 53}]}]}\n";
	static const char alphabet[] = "{}[]\",:\\0123456789-.eE+ntfu \n\x01\xff";
	size_t n = sizeof(base) - 1;
	char *buf = malloc(n + 64), err[FERRY_ERR_LEN];
	unsigned seed = 42;
	int it, ok = 0;

	(void)state;
	assert_non_null(buf);
	for (it = 0; it < 20000; it++) {
		struct registry r;
		size_t len = n;
		int m, ret, line, col;

		memcpy(buf, base, n);
		for (m = 1 + rand_r(&seed) % 3; m > 0 && len; m--) {
			size_t pos = rand_r(&seed) % len;

			switch (rand_r(&seed) % 4) {
			case 0:
				buf[pos] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
				break;
			case 1:
				memmove(buf + pos, buf + pos + 1, len - pos - 1);
				len--;
				break;
			case 2:
				len = pos;
				break;
			default:
				memmove(buf + pos + 1, buf + pos, len - pos);
				buf[pos] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
				len++;
			}
		}
		err[0] = '\0';
		ret = registry_parse(buf, len, FNAME, &lim, &r, err, sizeof(err));
		if (!ret) {
			ok++;
			registry_free(&r);
			continue;
		}
		if (ret != -EINVAL || sscanf(err, FNAME ":%d:%d: ", &line, &col) != 2 || line < 1 || col < 1)
			fail_msg("mutation %d: ret %d, error \"%s\" names no place", it, ret, err);
	}
	print_message("%d of 20000 mutated documents still parsed\n", ok);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(registry_minimal_defaults),
		cmocka_unit_test(registry_full_document),
		cmocka_unit_test(registry_empty_services),
		cmocka_unit_test(registry_load_file),
		cmocka_unit_test(registry_bad_syntax),
		cmocka_unit_test(registry_unknown_key),
		cmocka_unit_test(registry_bad_address),
		cmocka_unit_test(registry_family_mismatch),
		cmocka_unit_test(registry_xdp_port_translation),
		cmocka_unit_test(registry_duplicate_vip),
		cmocka_unit_test(registry_duplicate_backend),
		cmocka_unit_test(registry_bad_port),
		cmocka_unit_test(registry_bad_weight),
		cmocka_unit_test(registry_unknown_enums),
		cmocka_unit_test(registry_bad_other_values),
		cmocka_unit_test(registry_bad_numbers),
		cmocka_unit_test(registry_utf8),
		cmocka_unit_test(registry_nul),
		cmocka_unit_test(registry_control_characters),
		cmocka_unit_test(registry_member_cap),
		cmocka_unit_test(registry_over_capacity),
		cmocka_unit_test(registry_too_many_backends_in_service),
		cmocka_unit_test(registry_mutations_fail_cleanly),
	};

	return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
