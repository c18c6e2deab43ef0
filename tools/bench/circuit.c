// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Circuit breaker benchmark commands (tools/bench/circuit.sh drives them):
 *
 *   failover  a steady stream of connect()+close() at a fixed pace; a file
 *             appearing marks the moment a backend was killed, and the
 *             report counts failed connects after it and the time from it
 *             to the last failed connect
 *   msink     accept-and-close on many consecutive ports (backends of large
 *             services, and health probe targets)
 *   hold      open N connections and keep them until stdin closes (the
 *             least_conn spread)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "bench.h"

#define MSINK_MAX_PORTS	16384

static int join_netns(const char *name)
{
	char path[512];
	int fd, err;

	if (strchr(name, '/'))
		snprintf(path, sizeof(path), "%s", name);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bench_err("open netns", path, -errno);
	err = setns(fd, CLONE_NEWNET) ? -errno : 0;
	close(fd);
	return err ? bench_err("setns", path, err) : 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void pace_until(double t)
{
	double now = bench_now();
	struct timespec ts;

	if (t <= now)
		return;
	ts.tv_sec = (time_t)(t - now);
	ts.tv_nsec = (long)((t - now - ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
}

/* ---- failover ---- */

int do_failover(int argc, char **argv)
{
	enum { O_TO = 256, O_NETNS, O_SECONDS, O_INTERVAL, O_MARK };
	static const struct option opts[] = {
		{ "to", required_argument, NULL, O_TO },
		{ "netns", required_argument, NULL, O_NETNS },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "interval-us", required_argument, NULL, O_INTERVAL },
		{ "mark", required_argument, NULL, O_MARK },
		{ NULL, 0, NULL, 0 },
	};
	const struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	const struct timeval tmo = { .tv_sec = 1 };
	const char *to = NULL, *netns = NULL, *mark = NULL;
	unsigned long interval_us = 1000, n = 0, ok = 0, failed = 0, after = 0, other = 0;
	double seconds = 3, t0, tmark = 0, first = -1, last = -1, now;
	struct sockaddr_storage ss;
	unsigned sslen;
	bool json = false;
	int o, ret;

	optind = 1;
	while ((o = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		switch (o) {
		case O_TO: to = optarg; break;
		case O_NETNS: netns = optarg; break;
		case O_MARK: mark = optarg; break;
		case O_SECONDS:
			if ((ret = bench_double("failover", "--seconds", optarg, 0.1, 600, &seconds)))
				return ret;
			break;
		case O_INTERVAL:
			if ((ret = bench_ulong("failover", "--interval-us", optarg, 10, 10000000, &interval_us)))
				return ret;
			break;
		case 'j': json = true; break;
		default: return bench_usage("failover", "bad option");
		}
	}
	if (!to || !mark)
		return bench_usage("failover", "--to IP:PORT and --mark FILE are required");
	if (bench_sockaddr(to, &ss, &sslen))
		return bench_usage("failover", "--to: '%s' is not IP:PORT", to);
	if (netns && (ret = join_netns(netns)))
		return ret;

	t0 = bench_now();
	for (now = t0; now < t0 + seconds; now = bench_now()) {
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return bench_err("socket for", to, -errno);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo));
		if (!tmark && !access(mark, F_OK))
			tmark = bench_now();
		n++;
		if (connect(fd, (struct sockaddr *)&ss, sslen)) {
			double t = bench_now();

			if (errno == ECONNREFUSED || errno == ETIMEDOUT || errno == EHOSTUNREACH ||
			    errno == EINPROGRESS) {
				failed++;
				if (tmark) {
					after++;
					if (first < 0)
						first = t - tmark;
					last = t - tmark;
				}
			} else {
				other++;	/* EBUSY etc.: not a backend failure */
			}
		} else {
			ok++;
		}
		close(fd);
		pace_until(t0 + (double)n * interval_us / 1e6);
	}
	if (json)
		printf("{\"target\": \"%s\", \"connects\": %lu, \"ok\": %lu, \"failed\": %lu, "
		       "\"failed_after_kill\": %lu, \"other_errors\": %lu, \"kill_at_ms\": %.1f, "
		       "\"first_fail_ms\": %.1f, \"last_fail_ms\": %.1f, \"after_kill_ms\": %.1f}\n",
		       to, n, ok, failed, after, other, tmark ? (tmark - t0) * 1e3 : -1,
		       first >= 0 ? first * 1e3 : -1, last >= 0 ? last * 1e3 : -1,
		       tmark ? (now - tmark) * 1e3 : 0);
	else
		printf("failover %s: %lu connects, %lu failed (%lu after the kill), last failure %.1f ms "
		       "after the kill\n", to, n, failed, after, last >= 0 ? last * 1e3 : 0);
	return tmark ? 0 : bench_err("the kill was never marked in", mark, -ENOENT);
}

/* ---- msink ---- */

static volatile sig_atomic_t msink_stop;

static void msink_on_stop(int sig)
{
	(void)sig;
	msink_stop = 1;
}

int do_msink(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_PORT, O_PORTS, O_TIMEOUT, O_READY };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "port", required_argument, NULL, O_PORT },
		{ "ports", required_argument, NULL, O_PORTS },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "ready", required_argument, NULL, O_READY },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long port = 0, nports = 1, timeout = 300, i;
	const char *ip = NULL, *ready = NULL;
	struct epoll_event ev, evs[64];
	char ep[96];
	int o, ret, epfd, one = 1;

	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_LISTEN: ip = optarg; break;
		case O_READY: ready = optarg; break;
		case O_PORT:
			if ((ret = bench_ulong("msink", "--port", optarg, 1, 65535, &port)))
				return ret;
			break;
		case O_PORTS:
			if ((ret = bench_ulong("msink", "--ports", optarg, 1, MSINK_MAX_PORTS, &nports)))
				return ret;
			break;
		case O_TIMEOUT:
			if ((ret = bench_ulong("msink", "--timeout", optarg, 1, 86400, &timeout)))
				return ret;
			break;
		default: return bench_usage("msink", "bad option");
		}
	}
	if (!ip || !port || port + nports - 1 > 65535)
		return bench_usage("msink", "--listen IP and --port P (P + --ports - 1 <= 65535) are required");
	raise_nofile();
	signal(SIGTERM, msink_on_stop);
	signal(SIGINT, msink_on_stop);
	signal(SIGALRM, msink_on_stop);
	alarm(timeout);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	for (i = 0; i < nports; i++) {
		struct sockaddr_storage ss;
		unsigned sslen;
		int fd;

		snprintf(ep, sizeof(ep), strchr(ip, ':') ? "[%s]:%lu" : "%s:%lu", ip, port + i);
		if (bench_sockaddr(ep, &ss, &sslen))
			return bench_usage("msink", "--listen: '%s' is not an address", ip);
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return bench_err("socket for", ep, -errno);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&ss, sslen) || listen(fd, 4096))
			return bench_err("listen on", ep, -errno);
		ev.events = EPOLLIN;
		ev.data.fd = fd;
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
	}
	if (ready) {
		FILE *f = fopen(ready, "w");

		if (f) {
			fprintf(f, "ready %lu\n", nports);
			fclose(f);
		}
	}
	while (!msink_stop) {
		int n = epoll_wait(epfd, evs, 64, 1000);

		for (o = 0; o < n; o++) {
			int c;

			while ((c = accept4(evs[o].data.fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
				close(c);
		}
	}
	return 0;
}

/* ---- hold ---- */

int do_hold(int argc, char **argv)
{
	enum { O_TO = 256, O_NETNS, O_COUNT };
	static const struct option opts[] = {
		{ "to", required_argument, NULL, O_TO },
		{ "netns", required_argument, NULL, O_NETNS },
		{ "count", required_argument, NULL, O_COUNT },
		{ NULL, 0, NULL, 0 },
	};
	const struct timeval tmo = { .tv_sec = 2 };
	const char *to = NULL, *netns = NULL;
	unsigned long count = 1, i, held = 0, errors = 0;
	struct sockaddr_storage ss;
	unsigned sslen;
	int *fds, o, ret;
	char line[16];

	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_TO: to = optarg; break;
		case O_NETNS: netns = optarg; break;
		case O_COUNT:
			if ((ret = bench_ulong("hold", "--count", optarg, 1, 1000000, &count)))
				return ret;
			break;
		default: return bench_usage("hold", "bad option");
		}
	}
	if (!to || bench_sockaddr(to, &ss, &sslen))
		return bench_usage("hold", "--to IP:PORT is required");
	if (netns && (ret = join_netns(netns)))
		return ret;
	raise_nofile();
	fds = calloc(count, sizeof(*fds));
	if (!fds)
		return bench_err("memory for", "connections", -ENOMEM);
	for (i = 0; i < count; i++) {
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return bench_err("socket for", to, -errno);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo));
		if (connect(fd, (struct sockaddr *)&ss, sslen)) {
			errors++;
			close(fd);
			continue;
		}
		fds[held++] = fd;
	}
	printf("{\"held\": %lu, \"errors\": %lu}\n", held, errors);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		line[0] = '\0';
	for (i = 0; i < held; i++)
		close(fds[i]);
	free(fds);
	return errors ? 1 : 0;
}
