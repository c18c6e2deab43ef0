// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ferryctl: inspect and configure a node through ferry's pinned maps, with
 * or without ferryd running.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include "addr.h"
#include "ferryctl.h"
#include "log.h"

static const struct cmd cmds[] = {
	{ "service", do_service, "service list | show VIP:PORT[/proto] | add NAME VIP:PORT[/proto] [--lb POLICY] [--xdp] | del VIP:PORT[/proto]" },
	{ "backend", do_backend, "backend add|del|set VIP:PORT[/proto] IP:PORT [--weight N] [--state active|draining|quarantined]" },
	{ "status", do_status, "status" },
	{ "stats", do_stats, "stats [--no-backends] [--prometheus]" },
	{ "circuit", do_circuit, "circuit [VIP:PORT[/proto]]" },
	{ "explain", do_explain, "explain VIP:PORT[/proto] [--from CGROUP_OR_NETNS] [--src IP]" },
	{ "xdp", do_xdp, "xdp stats | xdp flows [--max N] | xdp decap" },
	{ "teardown", do_teardown, "teardown" },
	{ "registry", do_registry, "registry check FILE [--max-services N] [--max-backends N]" },
	{ NULL, NULL, NULL },
};

static void usage(FILE *f)
{
	const struct cmd *c;

	fprintf(f, "Usage: ferryctl [-j] [--bpffs DIR] COMMAND\n\nCommands:\n");
	for (c = cmds; c->name; c++)
		fprintf(f, "  %s\n", c->usage);
	fprintf(f, "\n  -j           JSON output\n  --bpffs DIR  pin directory (default %s)\n", FERRY_DEF_BPFFS);
}

int ctl_open(struct ctl *c)
{
	const char *which = NULL;
	int err;

	if (c->maps_open)
		return 0;
	err = ferry_maps_open(c->bpffs, &c->maps, &which);
	if (err) {
		char obj[512];

		snprintf(obj, sizeof(obj), "%s/%s", c->bpffs, which ? which : "?");
		return ctl_err(c, "ferry is not loaded: cannot open pinned map", obj, err);
	}
	c->maps_open = true;
	return 0;
}

int ctl_lock(struct ctl *c)
{
	int err;

	if ((err = ctl_open(c)))
		return err;
	if ((err = maps_lock(&c->maps, CTL_LOCK_WAIT_MS))) {
		char what[160];

		if (err == -EAGAIN)
			snprintf(what, sizeof(what), "another writer (ferryd's sync or another ferryctl) "
				 "held the lock for %d s on pin directory", CTL_LOCK_WAIT_MS / 1000);
		else
			snprintf(what, sizeof(what), "cannot lock pin directory");
		return ctl_err(c, what, c->bpffs, err);
	}
	return 0;
}

void ctl_unlock(struct ctl *c)
{
	if (c->maps_open)
		maps_unlock(&c->maps);
}

int ctl_parse_svc_key(struct ctl *c, const char *s, struct ferry_svc_key *k)
{
	struct faddr a;
	int port, proto;

	if (endpoint_parse(s, &a, &port, &proto))
		return ctl_usage(c, "'%s' is not VIP:PORT[/tcp|udp] (IPv6 as [addr]:port)", s);
	memset(k, 0, sizeof(*k));
	memcpy(k->addr, a.a, sizeof(k->addr));
	k->family = a.family;
	k->port = htons(port);
	k->proto = proto;
	return 0;
}

int ctl_parse_count(struct ctl *c, const char *what, const char *opt, const char *s,
		    unsigned long max, unsigned long *out)
{
	unsigned long n;
	char *end;

	errno = 0;
	n = strtoul(s, &end, 10);
	/* Digits only: strtoul takes a sign, and wraps "-1" around. */
	if (*s < '0' || *s > '9' || *end || errno || !n || n > max)
		return ctl_usage(c, "%s: %s '%s' is not a positive number (at most %lu)", what, opt, s,
				 max);
	*out = n;
	return 0;
}

int ctl_err(struct ctl *c, const char *what, const char *obj, int err)
{
	if (err > 0)
		err = -err;
	if (c->json) {
		struct json_object *o = json_object_new_object();
		char msg[1024];

		if (err)
			snprintf(msg, sizeof(msg), "%s '%s': %s (%d)", what, obj, strerror(-err), -err);
		else
			snprintf(msg, sizeof(msg), "%s '%s'", what, obj);
		json_object_object_add(o, "error", json_object_new_string(msg));
		ctl_json_print(o);
	}
	if (err)
		fprintf(stderr, "Error: %s '%s': %s (%d)\n", what, obj, strerror(-err), -err);
	else
		fprintf(stderr, "Error: %s '%s'\n", what, obj);
	return 1;
}

int ctl_usage(struct ctl *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "error", json_object_new_string(msg));
		ctl_json_print(o);
	}
	fprintf(stderr, "Error: %s\n", msg);
	usage(stderr);
	return EXIT_USAGE;
}

void ctl_json_print(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

int ctl_dispatch(struct ctl *c, const struct cmd *table, const char *what, int argc, char **argv)
{
	const struct cmd *t;

	if (argc < 1)
		return ctl_usage(c, "%s: missing sub-command", what);
	for (t = table; t->name; t++)
		if (!strcmp(t->name, argv[0]))
			return t->fn(c, argc, argv);
	return ctl_usage(c, "%s: unknown sub-command '%s'", what, argv[0]);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "bpffs", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { .bpffs = FERRY_DEF_BPFFS };
	int o, ret;

	log_init(0, false);
	/* Options stop at the command: its own flags are its own. */
	while ((o = getopt_long(argc, argv, "+jh", opts, NULL)) != -1) {
		switch (o) {
		case 'j': c.json = true; break;
		case 'b': c.bpffs = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("ferryctl %s\n", FERRY_VERSION); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	optind = 1;
	ret = ctl_dispatch(&c, cmds, "ferryctl", argc, argv);
	if (c.maps_open)
		ferry_maps_close(&c.maps);
	return ret;
}
