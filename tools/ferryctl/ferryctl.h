/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ferryctl: one do_<cmd>() per command, each with a plain table and a -j JSON
 * branch. Exit codes: 0 ok, 1 runtime failure, 2 usage.
 */
#ifndef FERRYCTL_H
#define FERRYCTL_H

#include <stdbool.h>
#include <json-c/json.h>

#include "maps.h"

#define EXIT_USAGE	2

struct ctl {
	bool	json;
	const char *bpffs;
	struct ferry_maps maps;
	bool	maps_open;
};

struct cmd {
	const char *name;
	int	(*fn)(struct ctl *c, int argc, char **argv);
	const char *usage;
};

/* Open the pinned maps (once); prints the error and returns 1 on failure. */
int ctl_open(struct ctl *c);
/* How long an edit waits for another writer (ferryd's sync, another
 * ferryctl) to let go of the pin directory's lock. */
#define CTL_LOCK_WAIT_MS	5000
/* ctl_open(), then the pin directory's lock (maps_lock()), waiting at most
 * CTL_LOCK_WAIT_MS: an edit holds it from reading the maps to its last
 * write, and drops it with ctl_unlock(). Prints the error, returns 1. */
int ctl_lock(struct ctl *c);
void ctl_unlock(struct ctl *c);
/* VIP:PORT[/tcp|udp] into a service key; a usage error (exit 2) otherwise. */
int ctl_parse_svc_key(struct ctl *c, const char *s, struct ferry_svc_key *k);
/* An option's whole number 1..max into *out; else a usage error naming
 * what (the command) and opt, returning EXIT_USAGE. */
int ctl_parse_count(struct ctl *c, const char *what, const char *opt, const char *s,
		    unsigned long max, unsigned long *out);
/* "Error: <what> '<object>': <strerror> (<errno>)" or {"error": ...}; returns 1. */
int ctl_err(struct ctl *c, const char *what, const char *obj, int err);
/* Usage error: message (+ usage line), returns EXIT_USAGE. */
int ctl_usage(struct ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a JSON document (takes ownership) in -j mode. */
void ctl_json_print(struct json_object *o);
/* Dispatch argv[0] in a sub-command table. */
int ctl_dispatch(struct ctl *c, const struct cmd *cmds, const char *what, int argc, char **argv);

/* Commands (one file each). */
int do_service(struct ctl *c, int argc, char **argv);	/* service.c */
int do_backend(struct ctl *c, int argc, char **argv);	/* service.c */
int do_status(struct ctl *c, int argc, char **argv);	/* status.c */
int do_teardown(struct ctl *c, int argc, char **argv);	/* status.c */
int do_stats(struct ctl *c, int argc, char **argv);	/* stats.c */
int do_circuit(struct ctl *c, int argc, char **argv);	/* circuit.c */
int do_explain(struct ctl *c, int argc, char **argv);	/* circuit.c */
int do_xdp(struct ctl *c, int argc, char **argv);	/* xdp.c */
int do_registry(struct ctl *c, int argc, char **argv);	/* registry.c */

#endif /* FERRYCTL_H */
