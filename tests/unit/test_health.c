// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Health verdicts from probe results (userspace/lib/healthsm.c): UNHEALTHY
 * after unhealthy_after failures in a row and back after healthy_after
 * passes, DEGRADED for intermittent failures and slow passes, HEALTHY
 * otherwise, and what a restarted ferryd keeps.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <ferry/abi.h>
#include "healthsm.h"

static struct reg_health hc(void)
{
	struct reg_health h = { .type = HEALTH_HTTP, .interval_ms = 100, .timeout_ms = 400,
				.healthy_after = 2, .unhealthy_after = 3 };
	return h;
}

static int feed(struct hstate *h, const struct reg_health *c, const char *pattern)
{
	int r = h->health;

	for (; *pattern; pattern++)
		r = hstate_update(h, c, *pattern == 'F' ? PROBE_FAIL : *pattern == 'S' ? PROBE_SLOW : PROBE_PASS);
	return r;
}

static void healthy_after_passes(void **state)
{
	struct reg_health c = hc();
	struct hstate h;

	(void)state;
	hstate_init(&h, FERRY_HEALTH_UNKNOWN);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_UNKNOWN);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_HEALTHY);
}

static void unhealthy_after_failures(void **state)
{
	struct reg_health c = hc();
	struct hstate h;

	(void)state;
	hstate_init(&h, FERRY_HEALTH_UNKNOWN);
	assert_int_equal(feed(&h, &c, "PP"), FERRY_HEALTH_HEALTHY);
	assert_int_equal(feed(&h, &c, "F"), FERRY_HEALTH_DEGRADED);
	assert_int_equal(feed(&h, &c, "F"), FERRY_HEALTH_DEGRADED);
	assert_int_equal(feed(&h, &c, "F"), FERRY_HEALTH_UNHEALTHY);
	/* Stays down until healthy_after passes in a row. */
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_UNHEALTHY);
	assert_int_equal(feed(&h, &c, "F"), FERRY_HEALTH_UNHEALTHY);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_UNHEALTHY);
	/* Recovered: the outage is not held against it. */
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_HEALTHY);
}

static void intermittent_is_degraded(void **state)
{
	struct reg_health c = hc();
	struct hstate h;

	(void)state;
	hstate_init(&h, FERRY_HEALTH_UNKNOWN);
	assert_int_equal(feed(&h, &c, "PFPFPFPF"), FERRY_HEALTH_DEGRADED);
	/* The last failure leaves the 8-probe window: healthy again. */
	assert_int_equal(feed(&h, &c, "PPPPPPP"), FERRY_HEALTH_DEGRADED);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_HEALTHY);
}

static void flaky_from_start_is_degraded(void **state)
{
	struct reg_health c = hc();
	struct hstate h;

	(void)state;
	c.unhealthy_after = 2;
	c.healthy_after = 1;
	hstate_init(&h, FERRY_HEALTH_UNKNOWN);
	assert_int_equal(feed(&h, &c, "F"), FERRY_HEALTH_DEGRADED);
	assert_int_equal(feed(&h, &c, "PFPFPF"), FERRY_HEALTH_DEGRADED);
}

static void slow_is_degraded(void **state)
{
	struct reg_health c = hc();
	struct hstate h;

	(void)state;
	assert_int_equal(probe_classify(&c, true, 200), PROBE_PASS);
	assert_int_equal(probe_classify(&c, true, 201), PROBE_SLOW);
	assert_int_equal(probe_classify(&c, false, 1), PROBE_FAIL);
	hstate_init(&h, FERRY_HEALTH_UNKNOWN);
	assert_int_equal(feed(&h, &c, "PP"), FERRY_HEALTH_HEALTHY);
	assert_int_equal(feed(&h, &c, "S"), FERRY_HEALTH_DEGRADED);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_DEGRADED);
	/* No slow one among the last healthy_after: healthy. */
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_HEALTHY);
	/* Slow for ever: degraded, never unhealthy. */
	assert_int_equal(feed(&h, &c, "SSSSSSSSSS"), FERRY_HEALTH_DEGRADED);
}

static void restart_keeps_verdict(void **state)
{
	struct reg_health c = hc();
	struct hstate h;

	(void)state;
	hstate_init(&h, FERRY_HEALTH_UNHEALTHY);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_UNHEALTHY);
	assert_int_equal(feed(&h, &c, "P"), FERRY_HEALTH_HEALTHY);
}

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(healthy_after_passes),
		cmocka_unit_test(unhealthy_after_failures),
		cmocka_unit_test(intermittent_is_degraded),
		cmocka_unit_test(flaky_from_start_is_degraded),
		cmocka_unit_test(slow_is_degraded),
		cmocka_unit_test(restart_keeps_verdict),
		cmocka_unit_test(http_status_lines),
	};

	return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
