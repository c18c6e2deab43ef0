/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The BPF tests' bpffs pin directory: one per run, named like
 * tests/integration/lib.sh names its worlds,
 *
 *   /sys/fs/bpf/ferry-test-[TAG-]KIND-PID-RANDOM
 *
 * (TAG: FERRY_TEST_TAG, [a-z0-9], at most 8 characters, as lib.sh takes
 * it), created exclusively: a directory that is there already (left by a
 * killed run with the same pid, say) is never reused, another name is
 * drawn. pin_dir_remove() takes it away with everything below it; it is
 * also run on SIGINT, SIGTERM, SIGHUP and on a crash (SIGSEGV, SIGBUS,
 * SIGABRT, SIGFPE, SIGILL), from the signal handler, with system calls
 * only (no stdio, no malloc), before the signal takes its default course.
 * Only SIGKILL leaves the directory, under a name no later run takes.
 */
#ifndef FERRY_TESTS_PINDIR_H
#define FERRY_TESTS_PINDIR_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "maps.h"

static char pin_dir_path[160];	/* "" until made, and again once removed */

/* Remove dirfd's entries, depth first (bpffs: pins and directories).
 * Passes from the start until one removes nothing: empty, or stuck. */
static void pin_dir_empty(int dirfd, int depth)
{
	char buf[4096];
	long n, off;
	int pass, removed;

	for (pass = 0; pass < 64; pass++) {
		removed = 0;
		lseek(dirfd, 0, SEEK_SET);
		while ((n = syscall(SYS_getdents64, dirfd, buf, sizeof(buf))) > 0) {
			for (off = 0; off < n;) {
				struct dirent64 *d = (struct dirent64 *)(buf + off);

				off += d->d_reclen;
				if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
					continue;
				if (d->d_type == DT_DIR && depth < 8) {
					int sub = openat(dirfd, d->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

					if (sub >= 0) {
						pin_dir_empty(sub, depth + 1);
						close(sub);
					}
					removed += !unlinkat(dirfd, d->d_name, AT_REMOVEDIR);
				} else {
					removed += !unlinkat(dirfd, d->d_name, 0);
				}
			}
		}
		if (!removed)
			break;
	}
}

/* Async-signal-safe: open, getdents64, unlinkat, rmdir, close. */
static void pin_dir_remove(void)
{
	int fd;

	if (!pin_dir_path[0])
		return;
	fd = open(pin_dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		pin_dir_empty(fd, 0);
		close(fd);
	}
	rmdir(pin_dir_path);
	pin_dir_path[0] = '\0';
}

static void pin_dir_on_signal(int sig)
{
	pin_dir_remove();
	signal(sig, SIG_DFL);	/* SA_RESETHAND did that already; to be sure */
	raise(sig);		/* die of it, as without the handler */
}

/* Make the run's pin directory in *buf (len bytes), and arrange for its
 * removal at exit and on the signals above. kind: the test's short name. */
static int pin_dir_create(char *buf, size_t len, const char *kind)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };
	struct sigaction sa = { .sa_handler = pin_dir_on_signal, .sa_flags = SA_RESETHAND };
	const char *t = getenv("FERRY_TEST_TAG");
	char tag[10] = "";
	size_t i;
	int err, try;

	if (t && *t) {
		for (i = 0; t[i] && i < 8; i++)
			tag[i] = (t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') ? t[i] : '-';
		tag[i] = '-';
	}
	/* bpffs on /sys/fs/bpf (mounted if nobody has), the directory itself exclusive. */
	if ((err = bpffs_prepare("/sys/fs/bpf/")))
		return err;
	for (try = 0; try < 16; try++) {
		unsigned int r;

		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			return -errno;
		snprintf(pin_dir_path, sizeof(pin_dir_path), "/sys/fs/bpf/ferry-test-%s%s-%d-%08x", tag,
			 kind, getpid(), r);
		if (!mkdir(pin_dir_path, 0700))
			break;
		err = -errno;
		pin_dir_path[0] = '\0';
		if (err != -EEXIST)
			return err;
	}
	if (!pin_dir_path[0])
		return -EEXIST;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	atexit(pin_dir_remove);
	if ((size_t)snprintf(buf, len, "%s", pin_dir_path) >= len)
		return -ENAMETOOLONG;	/* made, and removed at exit; unusable by the caller */
	return 0;
}

#endif /* FERRY_TESTS_PINDIR_H */
