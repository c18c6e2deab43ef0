/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The service registry: the desired state of the node's services, parsed
 * from registry JSON v1 (docs/registry.md). Parsing never touches the maps;
 * a document with any error is rejected whole, so the last good state stays.
 */
#ifndef FERRY_REGISTRY_H
#define FERRY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <ferry/abi.h>

#include "addr.h"

enum health_type { HEALTH_NONE = 0, HEALTH_TCP, HEALTH_HTTP };

struct reg_health {
	enum health_type type;
	char	path[128];
	__u32	interval_ms;
	__u32	timeout_ms;
	__u32	healthy_after;
	__u32	unhealthy_after;
};

struct reg_backend {
	struct faddr addr;
	__u16	port;		/* host order */
	__u16	weight;
	__u8	state;		/* enum ferry_be_state */
};

struct reg_service {
	char	name[FERRY_NAME_LEN];
	struct ferry_svc_key key;	/* port in network order */
	__u8	lb;
	bool	xdp;
	struct ferry_circuit_cfg circuit;
	struct reg_health health;
	struct reg_backend *backends;
	size_t	nbackends;
};

struct registry {
	struct reg_service *svcs;
	size_t	nsvcs;
	size_t	nbackends;	/* over all services */
};

struct registry_limits {
	size_t	max_services;
	size_t	max_backends;
};

/*
 * Parse a registry document. fname only labels errors. On failure returns
 * -EINVAL (or -ENOMEM) and err holds "fname:line:col: what".
 */
int registry_parse(const char *text, size_t len, const char *fname,
		   const struct registry_limits *lim, struct registry *out,
		   char *err, size_t errlen);
/* The file's bytes in *text (malloc'd, the caller frees), *len of them. */
int registry_read(const char *path, char **text, size_t *len, char *err, size_t errlen);
int registry_load(const char *path, const struct registry_limits *lim,
		  struct registry *out, char *err, size_t errlen);
void registry_free(struct registry *r);

const char *lb_name(int lb);
int lb_parse(const char *s);
const char *be_state_name(int st);
int be_state_parse(const char *s);
const char *health_name(int h);
/* "unhealthy" etc. (health_name()'s names) -> enum ferry_health; -EINVAL. */
int health_parse(const char *s);
const char *circuit_name(int c);
/* Defaults applied when a service has no "circuit" object. */
void circuit_defaults(struct ferry_circuit_cfg *c);

#endif /* FERRY_REGISTRY_H */
