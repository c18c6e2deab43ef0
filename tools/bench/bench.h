/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ferry-bench: the benchmark harness behind `make bench`. One binary, one
 * subcommand per role (load generator, sink, input generators); the scripts
 * in tools/bench/ build the worlds and call it. A benchmark adds its
 * commands to the table in bench.c and declares them here.
 *
 * Exit codes: 0 ok, 1 runtime failure (including a measurement that saw
 * errors: its figure is not valid), 2 usage.
 */
#ifndef FERRY_BENCH_H
#define FERRY_BENCH_H

#include <stdbool.h>
#include <stdio.h>
#include <linux/types.h>

#include "addr.h"

#define EXIT_USAGE	2

struct bcmd {
	const char *name;
	int	(*fn)(int argc, char **argv);
	const char *usage;
};

/* Shared helpers (bench.c). */
double bench_now(void);			/* CLOCK_MONOTONIC seconds */
int bench_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int bench_err(const char *what, const char *obj, int err);
/* "IP:PORT" (IPv4 or [IPv6]) into a sockaddr_storage; 0 or -EINVAL. */
struct sockaddr_storage;
int bench_sockaddr(const char *s, struct sockaddr_storage *ss, unsigned *sslen);
int bench_double(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);
int bench_ulong(const char *cmd, const char *opt, const char *s, unsigned long lo,
		unsigned long hi, unsigned long *out);

/* Socket load balancing (socklb.c). */
int do_connect(int argc, char **argv);
int do_sink(int argc, char **argv);
int do_genreg(int argc, char **argv);
int do_genipt(int argc, char **argv);
int do_stats(int argc, char **argv);
int do_mark(int argc, char **argv);

/* Circuit breaking, connection tracking, least_conn, health (circuit.c). */
int do_failover(int argc, char **argv);
int do_msink(int argc, char **argv);
int do_hold(int argc, char **argv);

/* XDP load balancer (xdp.c). */
int do_xdp_ns(int argc, char **argv);
int do_xdp_veth(int argc, char **argv);

#endif /* FERRY_BENCH_H */
