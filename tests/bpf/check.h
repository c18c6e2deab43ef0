/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The BPF tests' checks: ASSERT_* print where and why a check failed and
 * yield whether it held; verdict() prints one "PASS name" / "FAIL name"
 * line per behaviour, which tests/run.sh counts. One test binary per
 * source file, so the counters live here.
 */
#ifndef FERRY_TESTS_CHECK_H
#define FERRY_TESTS_CHECK_H

#include <stdbool.h>
#include <stdio.h>

static int npass, nfail;

#define ASSERT_EQ(actual, expected, fmt, ...) ({				\
	long long __a = (long long)(actual), __e = (long long)(expected);	\
	bool __ok = __a == __e;							\
	if (!__ok)								\
		printf("  %s:%d: " fmt ": got %lld, expected %lld\n", __FILE__,	\
		       __LINE__, ##__VA_ARGS__, __a, __e);			\
	__ok; })

#define ASSERT_TRUE(cond, fmt, ...) ({						\
	bool __ok = !!(cond);							\
	if (!__ok)								\
		printf("  %s:%d: " fmt "\n", __FILE__, __LINE__, ##__VA_ARGS__); \
	__ok; })

static void verdict(const char *name, bool ok)
{
	printf("%s %s\n", ok ? "PASS" : "FAIL", name);
	if (ok)
		npass++;
	else
		nfail++;
	fflush(stdout);
}

#endif /* FERRY_TESTS_CHECK_H */
