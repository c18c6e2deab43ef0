// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The HTTP ferryd reads (userspace/lib/http.c): status lines from probed
 * backends, request heads at the metrics endpoint, Accept-Encoding.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http.h"

static void http_status_lines(void **state)
{
	static const struct { const char *line; int want; } cases[] = {
		{ "HTTP/1.1 200 OK\r\n", 200 },
		{ "HTTP/1.0 204 No Content\r\n", 204 },
		{ "HTTP/1.1 301 \r\n", 301 },
		{ "HTTP/1.1 200\r\n", 200 },		/* no reason phrase */
		{ "HTTP/1.1 503 Service Unavailable\r\n", 503 },
		{ "HTTP/1.1 000 x\r\n", 0 },		/* three digits: a (failing) code */
		{ "HTTP/1.1 999 x\r\n", 999 },
		{ "HTTP/1.1 200 ", 200 },		/* enough to decide */
		/* need more */
		{ "", -EAGAIN },
		{ "HTTP/1", -EAGAIN },
		{ "HTTP/1.1 20", -EAGAIN },
		{ "HTTP/1.1 200", -EAGAIN },
		/* bad */
		{ "HTTP/1.1 2000000 whatever\r\n", -EPROTO },
		{ "HTTP/1.1 2000 OK\r\n", -EPROTO },
		{ "HTTP/1.1 200abc\r\n", -EPROTO },
		{ "HTTP/1.1 20 OK\r\n", -EPROTO },
		{ "HTTP/1.1 -11 OK\r\n", -EPROTO },
		{ "HTTP/1.1 +20 OK\r\n", -EPROTO },
		{ "HTTP/1.1  200 OK\r\n", -EPROTO },
		{ "HTTP/1.1 200\n", -EPROTO },
		{ "HTTP/1.1 200\tOK\r\n", -EPROTO },
		{ "HTTP/11.1 200 OK\r\n", -EPROTO },
		{ "HTTP/1 200 OK\r\n", -EPROTO },
		{ "HTTP/2 200\r\n", -EPROTO },
		{ "http/1.1 200 OK\r\n", -EPROTO },
		{ " HTTP/1.1 200 OK\r\n", -EPROTO },
		{ "SSH-2.0-OpenSSH_9.2\r\n", -EPROTO },
		{ "HTTP/x.1 200 OK\r\n", -EPROTO },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = http_status_line(cases[i].line, strlen(cases[i].line));

		if (got != cases[i].want)
			fail_msg("'%s': got %d, want %d", cases[i].line, got, cases[i].want);
	}
	/* A NUL is a byte like any other: no match. */
	assert_int_equal(http_status_line("HTTP/1.1 2\0" "00 OK\r\n", 19), -EPROTO);
}

/* A request head: what it asks, or the status it is refused with. */
#define REFUSED(h, st)	{ h, st, NULL, NULL, false, false, false, false }

static void request_heads(void **state)
{
	static const struct {
		const char *head;
		int	status;		/* 0: parsed */
		const char *method, *target;
		bool	head_only, gzip, body, close;
	} cases[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 0, "GET", "/metrics", false, false, false, false },
		{ "HEAD /healthz HTTP/1.1\r\n\r\n", 0, "HEAD", "/healthz", true, false, false, false },
		{ "GET /metrics?x=1&y HTTP/1.1\r\n\r\n", 0, "GET", "/metrics", false, false, false, false },
		{ "GET / HTTP/1.0\r\n\r\n", 0, "GET", "/", false, false, false, true },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, "GET", "/", false, false, false, false },
		{ "GET / HTTP/1.1\r\nconnection: Close\r\n\r\n", 0, "GET", "/", false, false, false, true },
		{ "GET / HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n", 0, "GET", "/", false, true, false, false },
		{ "GET / HTTP/1.1\r\nACCEPT-ENCODING:  br, GZIP;q=0.5 \r\n\r\n", 0, "GET", "/", false, true, false, false },
		{ "POST / HTTP/1.1\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n", 0, "POST", "/", false, false, true, true },
		{ "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0, "GET", "/", false, false, false, false },
		{ "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 0, "GET", "/", false, false, true, true },
		{ "GET / HTTP/1.1\n\n", 0, "GET", "/", false, false, false, false },	/* bare LF */
		{ "GET / HTTP/1.1\r\nno colon here\r\n\r\n", 0, "GET", "/", false, false, false, false },
		/* refused */
		REFUSED("", 400),
		REFUSED("\r\n\r\n", 400),
		REFUSED("GET\r\n\r\n", 400),
		REFUSED("GET /\r\n\r\n", 400),			/* HTTP/0.9 */
		REFUSED("GET metrics HTTP/1.1\r\n\r\n", 400),	/* not a path */
		REFUSED("GET * HTTP/1.1\r\n\r\n", 400),
		REFUSED("GET / HTTP/1.1 extra\r\n\r\n", 400),
		REFUSED("GET / HTTP/2.0\r\n\r\n", 505),
		REFUSED("GET / HTTP/1.10\r\n\r\n", 505),
		REFUSED("GET / HTTP/1.x\r\n\r\n", 505),
		REFUSED("GET / HTTP/1.\r\n\r\n", 505),
		REFUSED("GET / http/1.1\r\n\r\n", 505),
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[256];
		struct http_req r;
		int got;

		snprintf(buf, sizeof(buf), "%s", cases[i].head);
		got = http_req_parse(buf, &r);
		if (got != cases[i].status)
			fail_msg("case %zu: status %d, want %d", i, got, cases[i].status);
		if (got)
			continue;
		if (strcmp(r.method, cases[i].method) || strcmp(r.target, cases[i].target) ||
		    r.head != cases[i].head_only || r.gzip != cases[i].gzip ||
		    r.body != cases[i].body || r.close != cases[i].close)
			fail_msg("case %zu: %s %s head %d gzip %d body %d close %d", i, r.method,
				 r.target, r.head, r.gzip, r.body, r.close);
	}
}

/* Where a request head ends: CRLF CRLF or LF LF; 0 until then. */
static void head_ends(void **state)
{
	(void)state;
	assert_int_equal(http_head_end("GET / HTTP/1.1\r\n\r\nGET", 21), 18);
	assert_int_equal(http_head_end("GET / HTTP/1.1\n\nX", 17), 16);
	assert_int_equal(http_head_end("GET / HTTP/1.1\r\nHost: a\r\n", 25), 0);
	assert_int_equal(http_head_end("\n", 1), 0);
	assert_int_equal(http_head_end("\n\n", 2), 2);
	assert_int_equal(http_head_end("", 0), 0);
	assert_int_equal(http_head_end("\r\n\r", 3), 0);
}

static void accept_encodings(void **state)
{
	static const struct { const char *v; bool gzip; } cases[] = {
		{ "gzip", true }, { "x-gzip", true }, { "deflate, gzip", true },
		{ "gzip;q=0", false }, { "gzip; q=0.0", false }, { "gzip;q=0.001", true },
		{ "*", true }, { "*;q=0", false }, { "gzip;q=0, *", false },
		{ "br, *;q=0.1", true }, { "identity", false }, { "", false }, { ",,,", false },
		{ "gzipx", false }, { " GZip ", true },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (http_wants_gzip(cases[i].v) != cases[i].gzip)
			fail_msg("'%s': want %d", cases[i].v, cases[i].gzip);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(http_status_lines),
		cmocka_unit_test(request_heads),
		cmocka_unit_test(head_ends),
		cmocka_unit_test(accept_encodings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
