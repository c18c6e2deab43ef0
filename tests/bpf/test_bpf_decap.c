// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * map_set_sync(), which ferryd keeps the decap's address sets with: the map
 * ends equal to the wanted set, and every write of a new key comes before
 * the first delete, so a key in both sets is never missing (the library's
 * map writes are watched through --wrap, as test_reconcile does).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <ferry/xdp.h>
#include "addr.h"
#include "maps.h"

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

/* ---- map writes, watched ------------------------------------------------ */

/* While spying, every update and delete of the map under test, in order. */
#define SPY_MAX 64
static struct spy_op {
	char	op;		/* 'u' update, 'd' delete */
	struct ferry_xdcap_key k;
} spy_ops[SPY_MAX];
static int spy_fd = -1, spy_n;

int __real_bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags);
int __real_bpf_map_delete_elem(int fd, const void *key);

int __wrap_bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags)
{
	if (fd == spy_fd && spy_n < SPY_MAX) {
		spy_ops[spy_n].op = 'u';
		memcpy(&spy_ops[spy_n++].k, key, sizeof(struct ferry_xdcap_key));
	}
	return __real_bpf_map_update_elem(fd, key, value, flags);
}

int __wrap_bpf_map_delete_elem(int fd, const void *key)
{
	if (fd == spy_fd && spy_n < SPY_MAX) {
		spy_ops[spy_n].op = 'd';
		memcpy(&spy_ops[spy_n++].k, key, sizeof(struct ferry_xdcap_key));
	}
	return __real_bpf_map_delete_elem(fd, key);
}

/* ---- map_set_sync ---------------------------------------------------------- */

static struct ferry_xdcap_key key_of(const char *addr)
{
	struct ferry_xdcap_key k = {};
	struct faddr a;

	faddr_parse(addr, &a);
	memcpy(k.addr, a.a, 16);
	k.family = a.family;
	return k;
}

static bool holds(int fd, const char *addr, __u32 *val)
{
	struct ferry_xdcap_key k = key_of(addr);
	__u32 v;

	if (bpf_map_lookup_elem(fd, &k, &v))
		return false;
	if (val)
		*val = v;
	return true;
}

/* The set becomes the wanted one; what stays is never written or missing:
 * every write of a new key comes before the first delete. */
static void test_set_sync(void)
{
	struct ferry_xdcap_key want[4], kept = key_of("192.0.2.11");
	__u32 one = 1, seven = 7, v = 0;
	size_t added = 0, removed = 0;
	const char *old[] = { "192.0.2.11", "192.0.2.12", "2001:db8::12" };
	bool ok = true, deleted = false;
	int fd, i;

	fd = bpf_map_create(BPF_MAP_TYPE_HASH, "ferry_test_set", sizeof(want[0]), sizeof(__u32), 64, NULL);
	if (!ASSERT_TRUE(fd >= 0, "create a hash map: %s", strerror(errno))) {
		verdict("map_set_sync: the map ends equal to the wanted set", false);
		return;
	}
	for (i = 0; i < 3; i++) {
		struct ferry_xdcap_key k = key_of(old[i]);

		ok &= ASSERT_EQ(bpf_map_update_elem(fd, &k, i ? &one : &seven, BPF_ANY), 0, "seed %s", old[i]);
	}
	want[0] = key_of("2001:db8::11");
	want[1] = kept;
	want[2] = key_of("198.51.100.10");
	want[3] = want[0];	/* repeated: one entry */
	spy_fd = fd;
	spy_n = 0;
	ok &= ASSERT_EQ(map_set_sync(fd, want, sizeof(want[0]), 4, &one, sizeof(one), &added, &removed),
			0, "map_set_sync");
	spy_fd = -1;
	ok &= ASSERT_EQ(added, 2, "added");
	ok &= ASSERT_EQ(removed, 2, "removed");
	ok &= ASSERT_TRUE(holds(fd, "2001:db8::11", NULL) && holds(fd, "198.51.100.10", NULL),
			  "new keys are in");
	ok &= ASSERT_TRUE(holds(fd, "192.0.2.11", &v), "a key in both sets stays");
	ok &= ASSERT_EQ(v, 7, "and keeps its value");
	ok &= ASSERT_TRUE(!holds(fd, "192.0.2.12", NULL) && !holds(fd, "2001:db8::12", NULL),
			  "stale keys are gone");
	ok &= ASSERT_EQ(spy_n, 4, "map writes");
	for (i = 0; i < spy_n; i++) {
		ok &= ASSERT_TRUE(memcmp(&spy_ops[i].k, &kept, sizeof(kept)), "write %d touches the kept key", i);
		if (spy_ops[i].op == 'd')
			deleted = true;
		else
			ok &= ASSERT_TRUE(!deleted, "write %d: an add after a delete", i);
	}
	verdict("map_set_sync: the map ends equal to the wanted set, adds before deletes", ok);

	ok = ASSERT_EQ(map_set_sync(fd, want, sizeof(want[0]), 0, &one, sizeof(one), &added, &removed),
		       0, "map_set_sync to nothing");
	ok &= ASSERT_EQ(removed, 3, "removed");
	ok &= ASSERT_TRUE(!holds(fd, "192.0.2.11", NULL), "empty");
	verdict("map_set_sync: an empty set empties the map", ok);
	close(fd);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid()) {
		printf("SKIP test_bpf_decap: needs root\n");
		return 0;
	}
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	test_set_sync();
	printf("%d passed, %d failed\n", npass, nfail);
	return nfail ? 1 : 0;
}
