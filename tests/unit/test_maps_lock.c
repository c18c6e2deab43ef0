// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The writers' lock on a pin directory (maps_lock()): two opens of the
 * directory exclude each other, in one process or two; calls nest on one
 * open without dropping the lock early; a bounded wait gives up with
 * -EAGAIN after about its time, and an unbounded one gets the lock when
 * the holder lets go. Any directory will do (flock(2) is the VFS's), so a
 * temporary one stands in for the bpffs pin directory.
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
#include <sys/file.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "maps.h"

static char dir[] = "/tmp/ferry-test-maplock.XXXXXX";

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A struct ferry_maps with no maps, only the directory (as ferry_maps_open
 * leaves it, lock-wise). */
static void open_dir(struct ferry_maps *m)
{
	memset(m, 0xff, sizeof(*m));
	m->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(m->dirfd >= 0);
	m->lock_depth = 0;
}

static void second_open_excluded(void **state)
{
	struct ferry_maps a, b;
	long t0, waited;

	(void)state;
	open_dir(&a);
	open_dir(&b);
	assert_int_equal(maps_lock(&a, 0), 0);
	assert_int_equal(maps_lock(&b, 0), -EAGAIN);
	t0 = now_ms();
	assert_int_equal(maps_lock(&b, 150), -EAGAIN);
	waited = now_ms() - t0;
	assert_true(waited >= 150);
	assert_true(waited < 2000);
	assert_int_equal(b.lock_depth, 0);	/* a failed lock leaves nothing to undo */
	maps_unlock(&a);
	assert_int_equal(maps_lock(&b, 0), 0);
	assert_int_equal(maps_lock(&a, 0), -EAGAIN);
	maps_unlock(&b);
	ferry_maps_close(&a);
	ferry_maps_close(&b);
}

/* The inner unlock of a nested pair keeps the outer caller's lock. */
static void nested_keeps_lock(void **state)
{
	struct ferry_maps a, b;

	(void)state;
	open_dir(&a);
	open_dir(&b);
	assert_int_equal(maps_lock(&a, 0), 0);
	assert_int_equal(maps_lock(&a, 0), 0);	/* say plan_apply() in a sync */
	assert_int_equal(a.lock_depth, 2);
	maps_unlock(&a);
	assert_int_equal(maps_lock(&b, 0), -EAGAIN);
	maps_unlock(&a);
	assert_int_equal(a.lock_depth, 0);
	assert_int_equal(maps_lock(&b, 0), 0);
	maps_unlock(&b);
	maps_unlock(&a);			/* one too many: nothing to drop */
	assert_int_equal(a.lock_depth, 0);
	ferry_maps_close(&a);
	ferry_maps_close(&b);
}

/* Closing the maps drops the lock with the directory. */
static void close_drops_lock(void **state)
{
	struct ferry_maps a, b;

	(void)state;
	open_dir(&a);
	open_dir(&b);
	assert_int_equal(maps_lock(&a, 0), 0);
	ferry_maps_close(&a);
	assert_int_equal(a.lock_depth, 0);
	assert_int_equal(maps_lock(&b, 0), 0);
	maps_unlock(&b);
	ferry_maps_close(&b);
}

/* Another process holds it for a while: a bounded wait longer than that,
 * and an unbounded one, get it once it lets go. */
static void waits_for_other_process(void **state)
{
	struct ferry_maps b;
	int pfd[2], k;
	long t0;
	char c;

	(void)state;
	for (k = 0; k < 2; k++) {
		pid_t pid;
		int st;

		assert_int_equal(pipe(pfd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (!pid) {
			int fd = open(dir, O_RDONLY | O_DIRECTORY);

			if (fd < 0 || flock(fd, LOCK_EX) || write(pfd[1], "x", 1) != 1)
				_exit(1);
			usleep(200 * 1000);
			_exit(0);	/* exiting drops it */
		}
		close(pfd[1]);
		assert_int_equal(read(pfd[0], &c, 1), 1);
		close(pfd[0]);
		open_dir(&b);
		t0 = now_ms();
		assert_int_equal(maps_lock(&b, k ? -1 : 5000), 0);
		assert_true(now_ms() - t0 >= 100);
		assert_int_equal(b.lock_depth, 1);
		maps_unlock(&b);
		ferry_maps_close(&b);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
}

/* Maps not opened from a directory (tests' own maps): nothing to lock. */
static void no_dir_no_lock(void **state)
{
	struct ferry_maps m;

	(void)state;
	memset(&m, 0xff, sizeof(m));
	assert_int_equal(maps_lock(&m, 0), 0);
	assert_int_equal(maps_lock(&m, -1), 0);
	maps_unlock(&m);
	maps_unlock(&m);
	assert_int_equal(pin_dir_lock(-1, 0), 0);
	pin_dir_unlock(-1);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(second_open_excluded),
		cmocka_unit_test(nested_keeps_lock),
		cmocka_unit_test(close_drops_lock),
		cmocka_unit_test(waits_for_other_process),
		cmocka_unit_test(no_dir_no_lock),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
