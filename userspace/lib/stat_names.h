/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Names of the per-CPU outcome counters (enum ferry_stat): one line per slot
 * in stat_names.c gives the slot a short name (ferryctl stats, JSON keys) and
 * a place in a Prometheus family. A slot without a line still shows up, as
 * ferry_datapath_events_total{slot="N"} (ferry_xdp_events_total for XDP).
 */
#ifndef FERRY_STAT_NAMES_H
#define FERRY_STAT_NAMES_H

#include <ferry/abi.h>
#include <ferry/xdp.h>

struct stat_desc {
	const char *name;	/* short name: "connect_hit" */
	const char *family;	/* Prometheus family: "ferry_sock_connect_total" */
	const char *labels;	/* label pairs of this slot: "outcome=\"hit\"", or "" */
	const char *help;	/* HELP of the family (the family's first slot wins) */
};

/* Indexed by enum ferry_stat; name == NULL for an unnamed slot. */
extern const struct stat_desc ferry_stat_descs[FERRY_STAT_MAX];
/* The XDP load balancer's and decap's counters, enum ferry_xstat. */
extern const struct stat_desc ferry_xstat_descs[FERRY_XSTAT_MAX];

#endif /* FERRY_STAT_NAMES_H */
