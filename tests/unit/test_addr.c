// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Address and endpoint parsing: the forms ferryctl and the registry accept. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include <ferry/abi.h>
#include "addr.h"

struct ep_ok {
	const char *in;
	int family, port, proto;
	const char *ip;		/* canonical text form */
};

static void endpoint_forms(void **state)
{
	static const struct ep_ok rows[] = {
		{ "192.0.2.1:80", AF_INET, 80, IPPROTO_TCP, "192.0.2.1" },
		{ "192.0.2.1:80/tcp", AF_INET, 80, IPPROTO_TCP, "192.0.2.1" },
		{ "198.51.100.53:53/udp", AF_INET, 53, IPPROTO_UDP, "198.51.100.53" },
		{ "203.0.113.7:1", AF_INET, 1, IPPROTO_TCP, "203.0.113.7" },
		{ "203.0.113.7:65535", AF_INET, 65535, IPPROTO_TCP, "203.0.113.7" },
		{ "[2001:db8::1]:443", AF_INET6, 443, IPPROTO_TCP, "2001:db8::1" },
		{ "[2001:db8::1]:443/udp", AF_INET6, 443, IPPROTO_UDP, "2001:db8::1" },
		{ "[2001:DB8:0:0::a]:8080/tcp", AF_INET6, 8080, IPPROTO_TCP, "2001:db8::a" },
		{ "[::ffff:192.0.2.9]:80", AF_INET6, 80, IPPROTO_TCP, "::ffff:192.0.2.9" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct faddr a;
		char buf[64];
		int port = -1, proto = -1;

		if (endpoint_parse(rows[i].in, &a, &port, &proto))
			fail_msg("endpoint_parse(\"%s\") failed, expected success", rows[i].in);
		assert_int_equal(a.family, rows[i].family);
		assert_int_equal(port, rows[i].port);
		assert_int_equal(proto, rows[i].proto);
		assert_string_equal(faddr_str(&a, buf, sizeof(buf)), rows[i].ip);
	}
}

static void endpoint_without_proto(void **state)
{
	struct faddr a;
	int port;

	(void)state;
	/* proto NULL: the caller accepts no /proto suffix. */
	assert_int_equal(endpoint_parse("192.0.2.1:80", &a, &port, NULL), 0);
	assert_int_equal(port, 80);
	assert_int_equal(endpoint_parse("192.0.2.1:80/tcp", &a, &port, NULL), -EINVAL);
	assert_int_equal(endpoint_parse("[2001:db8::1]:80/udp", &a, &port, NULL), -EINVAL);
}

static void endpoint_bad_inputs(void **state)
{
	static const char *const bad[] = {
		"",
		"192.0.2.1",			/* no port */
		"192.0.2.1:",			/* empty port */
		"192.0.2.1:0",			/* port 0 */
		"192.0.2.1:65536",		/* port too large */
		"192.0.2.1:-1",
		"192.0.2.1:+80",		/* a sign is not a port */
		"192.0.2.1: 80",		/* nor is whitespace */
		"192.0.2.1:8o",
		"192.0.2.1:80x",
		"192.0.2.300:80",		/* bad octet */
		"192.0.2:80",
		"example.com:80",		/* names are not resolved */
		"2001:db8::1:80",		/* bare IPv6 needs brackets */
		"[2001:db8::1]80",
		"[2001:db8::1]:",
		"[2001:db8::1:80",
		"[2001:db8::g]:80",
		"[192.0.2.1]:80",		/* brackets are for IPv6 only */
		"192.0.2.1:80/sctp",
		"192.0.2.1:80/",
		"192.0.2.1:80/TCP",
		"192.0.2.1:80/tcp/udp",
		":80",
		"[]:80",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct faddr a;
		int port, proto;

		if (endpoint_parse(bad[i], &a, &port, &proto) != -EINVAL)
			fail_msg("endpoint_parse(\"%s\") accepted a bad endpoint", bad[i]);
	}
}

/* A listen address takes port 0 (the kernel picks) and nothing else new. */
static void listen_addr_port_zero(void **state)
{
	struct faddr a;
	int port = -1;

	(void)state;
	assert_int_equal(listen_addr_parse("127.0.0.1:0", &a, &port), 0);
	assert_int_equal(port, 0);
	assert_int_equal(listen_addr_parse("[::1]:0", &a, &port), 0);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(listen_addr_parse("0.0.0.0:9464", &a, &port), 0);
	assert_int_equal(port, 9464);
	assert_int_equal(listen_addr_parse("127.0.0.1:0/tcp", &a, &port), -EINVAL);
	assert_int_equal(listen_addr_parse("127.0.0.1:65536", &a, &port), -EINVAL);
	assert_int_equal(listen_addr_parse("127.0.0.1", &a, &port), -EINVAL);
	/* Services and backends still refuse port 0. */
	assert_int_equal(endpoint_parse("127.0.0.1:0", &a, &port, NULL), -EINVAL);
}

static void endpoint_too_long(void **state)
{
	char buf[300];
	struct faddr a;
	int port, proto;

	(void)state;
	memset(buf, '1', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	assert_int_equal(endpoint_parse(buf, &a, &port, &proto), -EINVAL);
}

static void faddr_parse_forms(void **state)
{
	struct faddr a, b;

	(void)state;
	assert_int_equal(faddr_parse("192.0.2.1", &a), 0);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(a.a[0], htonl(0xc0000201));
	assert_int_equal(a.a[1] | a.a[2] | a.a[3], 0);
	assert_int_equal(faddr_parse("2001:db8::1", &b), 0);
	assert_int_equal(b.family, AF_INET6);
	assert_int_equal(b.a[0], htonl(0x20010db8));
	assert_int_equal(b.a[3], htonl(1));
	assert_false(faddr_eq(&a, &b));
	assert_int_equal(faddr_parse("192.0.2.1", &b), 0);
	assert_true(faddr_eq(&a, &b));
	assert_int_equal(faddr_parse("", &a), -EINVAL);
	assert_int_equal(faddr_parse("192.0.2.1/24", &a), -EINVAL);
	assert_int_equal(faddr_parse(" 192.0.2.1", &a), -EINVAL);
	assert_int_equal(faddr_parse("2001:db8::1%eth0", &a), -EINVAL);
}

/* svc_key_str's output parses back to the same key. */
static void svc_key_str_round_trip(void **state)
{
	static const char *const eps[] = {
		"198.51.100.10:80/tcp", "198.51.100.53:53/udp", "203.0.113.255:65535/tcp",
		"[2001:db8:ffff::10]:80/tcp", "[2001:db8::]:1/udp",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(eps) / sizeof(eps[0]); i++) {
		struct ferry_svc_key k = {}, k2 = {};
		struct faddr a;
		int port, proto;
		char buf[96], buf2[96];

		assert_int_equal(endpoint_parse(eps[i], &a, &port, &proto), 0);
		memcpy(k.addr, a.a, sizeof(k.addr));
		k.port = htons(port);
		k.proto = proto;
		k.family = a.family;
		assert_string_equal(svc_key_str(&k, buf, sizeof(buf)), eps[i]);

		assert_int_equal(endpoint_parse(buf, &a, &port, &proto), 0);
		memcpy(k2.addr, a.a, sizeof(k2.addr));
		k2.port = htons(port);
		k2.proto = proto;
		k2.family = a.family;
		assert_memory_equal(&k, &k2, sizeof(k));
		assert_string_equal(svc_key_str(&k2, buf2, sizeof(buf2)), buf);
	}
}

static void proto_names(void **state)
{
	(void)state;
	assert_int_equal(proto_parse("tcp"), IPPROTO_TCP);
	assert_int_equal(proto_parse("udp"), IPPROTO_UDP);
	assert_int_equal(proto_parse("icmp"), -EINVAL);
	assert_int_equal(proto_parse(""), -EINVAL);
	assert_string_equal(proto_name(IPPROTO_TCP), "tcp");
	assert_string_equal(proto_name(IPPROTO_UDP), "udp");
	assert_string_equal(proto_name(IPPROTO_SCTP), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(endpoint_forms),
		cmocka_unit_test(endpoint_without_proto),
		cmocka_unit_test(endpoint_bad_inputs),
		cmocka_unit_test(listen_addr_port_zero),
		cmocka_unit_test(endpoint_too_long),
		cmocka_unit_test(faddr_parse_forms),
		cmocka_unit_test(svc_key_str_round_trip),
		cmocka_unit_test(proto_names),
	};

	return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
