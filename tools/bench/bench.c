// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ferry-bench: command table and the helpers every benchmark shares.
 * tools/bench/run.sh builds the throw-away worlds and drives these commands.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bench.h"

static const struct bcmd cmds[] = {
	{ "connect", do_connect,
	  "connect --to IP:PORT [--netns NAME] [--cgroup DIR] [--prog-stats BPFFS] | --path\n"
	  "        NAME=NETNS,CGROUP,IP:PORT[,BPFFS]... [--seconds S] [--slice S] [--count N]\n"
	  "        [--warmup S] [--no-linger0] [-j]\n"
	  "        connect()+close() in a loop, per path: connects per second, and the ns per\n"
	  "        connect of the ferry programs pinned in BPFFS; several paths are measured\n"
	  "        in --slice turns, round robin (the process moves between netns and cgroups)" },
	{ "sink", do_sink,
	  "sink --listen IP:PORT... [--timeout S] [--backlog N] [--ready FILE] [-j]\n"
	  "        accept-and-close server on every --listen address, connections counted per address;\n"
	  "        stops by itself after --timeout (default 300 s)" },
	{ "genreg", do_genreg,
	  "genreg --services N [--backends-per K] [--vip IP:PORT[,LB]... --backend IP:PORT...] [--bump-weight]\n"
	  "        registry JSON v1 on stdout: the measured services (each over every --backend),\n"
	  "        then filler services" },
	{ "genipt", do_genipt,
	  "genipt --services N --vip IP:PORT --backend IP:PORT\n"
	  "        kube-proxy style iptables-restore input (nat table) on stdout, measured VIP last" },
	{ "stats", do_stats,
	  "stats --bpffs DIR\n"
	  "        ferry's connect counters (summed over CPUs) as JSON" },
	{ "mark", do_mark,
	  "mark --bpffs DIR --service VIP:PORT --backend IP:PORT --health unknown|healthy|degraded|unhealthy\n"
	  "        write a backend's health as ferryd's health checker would (no daemon needed)" },
	{ "failover", do_failover,
	  "failover --to IP:PORT --mark FILE [--netns NS] [--seconds S] [--interval-us U] [-j]\n"
	  "        steady connect()+close() stream; counts failures after FILE appears (a backend killed)" },
	{ "msink", do_msink,
	  "msink --listen IP --port P [--ports N] [--timeout S] [--ready FILE]\n"
	  "        accept-and-close on N consecutive ports" },
	{ "hold", do_hold,
	  "hold --to IP:PORT [--netns NS] [--count N]\n"
	  "        open N connections, keep them until stdin closes" },
	{ "xdp-ns", do_xdp_ns,
	  "xdp-ns --pin DIR [--calls N] [--case CASE] [--flows N] [--peer-obj FILE]\n"
	  "        ns per packet of the XDP LB under BPF_PROG_TEST_RUN, minus XDP_PASS (own netns),\n"
	  "        and of a model of the mature peer's path (Katran's) on the same frames, or of\n"
	  "        Katran's own balancer object (--peer-obj, built from its source);\n"
	  "        --case: syn|hit|flows|nonvip|syn_full, each also as peer_<case>, decap,\n"
	  "        decap_pass, outage, floor (ns per cache-missing load in user space);\n"
	  "        --flows: flow-table entries (default 1048576, as ferryd --xdp-flows)" },
	{ "xdp-veth", do_xdp_veth,
	  "xdp-veth --pin DIR [--frames N]\n"
	  "        Mpps of the XDP LB on a veth pair vs a bouncing program, one CPU (own netns)" },
	{ NULL, NULL, NULL },
};

static void usage(FILE *f)
{
	const struct bcmd *c;

	fprintf(f, "Usage: ferry-bench COMMAND [options]\n\nCommands:\n");
	for (c = cmds; c->name; c++)
		fprintf(f, "  %s\n", c->usage);
}

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int bench_usage(const char *cmd, const char *fmt, ...)
{
	const struct bcmd *c;
	va_list ap;

	fprintf(stderr, "ferry-bench %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	for (c = cmds; c->name; c++)
		if (!strcmp(c->name, cmd))
			fprintf(stderr, "Usage: ferry-bench %s\n", c->usage);
	return EXIT_USAGE;
}

int bench_err(const char *what, const char *obj, int err)
{
	if (err > 0)
		err = -err;
	if (err)
		fprintf(stderr, "Error: %s '%s': %s (%d)\n", what, obj, strerror(-err), -err);
	else
		fprintf(stderr, "Error: %s '%s'\n", what, obj);
	return 1;
}

int bench_sockaddr(const char *s, struct sockaddr_storage *ss, unsigned *sslen)
{
	struct faddr a;
	int port;

	if (endpoint_parse(s, &a, &port, NULL))
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (a.family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = a.a[0];
		*sslen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a.a, sizeof(a.a));
		*sslen = sizeof(*sin6);
	}
	return 0;
}

int bench_double(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || end == s || v < lo || v > hi)
		return bench_usage(cmd, "%s: '%s' is not a number in %g..%g", opt, s, lo, hi);
	*out = v;
	return 0;
}

int bench_ulong(const char *cmd, const char *opt, const char *s, unsigned long lo,
		unsigned long hi, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || v < lo || v > hi)
		return bench_usage(cmd, "%s: '%s' is not an integer in %lu..%lu", opt, s, lo, hi);
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	const struct bcmd *c;

	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (c = cmds; c->name; c++)
		if (!strcmp(c->name, argv[1]))
			return c->fn(argc - 1, argv + 1);
	fprintf(stderr, "ferry-bench: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
