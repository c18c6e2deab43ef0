// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "jsonpos.h"
#include "registry.h"

static const char *lb_names[FERRY_LB_MAX] = {
	[FERRY_LB_ROUND_ROBIN]	= "round_robin",
	[FERRY_LB_RANDOM]	= "random",
	[FERRY_LB_WEIGHTED]	= "weighted",
	[FERRY_LB_MAGLEV]	= "maglev",
	[FERRY_LB_LEAST_CONN]	= "least_conn",
};

static const char *state_names[FERRY_BE_STATE_MAX] = {
	[FERRY_BE_ACTIVE]	= "active",
	[FERRY_BE_DRAINING]	= "draining",
	[FERRY_BE_QUARANTINED]	= "quarantined",
};

const char *lb_name(int lb)
{
	return lb >= 0 && lb < FERRY_LB_MAX ? lb_names[lb] : "?";
}

int lb_parse(const char *s)
{
	int i;

	for (i = 0; i < FERRY_LB_MAX; i++)
		if (!strcmp(s, lb_names[i]))
			return i;
	return -EINVAL;
}

const char *be_state_name(int st)
{
	return st >= 0 && st < FERRY_BE_STATE_MAX ? state_names[st] : "?";
}

int be_state_parse(const char *s)
{
	int i;

	for (i = 0; i < FERRY_BE_STATE_MAX; i++)
		if (!strcmp(s, state_names[i]))
			return i;
	return -EINVAL;
}

const char *health_name(int h)
{
	switch (h) {
	case FERRY_HEALTH_HEALTHY: return "healthy";
	case FERRY_HEALTH_DEGRADED: return "degraded";
	case FERRY_HEALTH_UNHEALTHY: return "unhealthy";
	default: return "unknown";
	}
}

int health_parse(const char *s)
{
	int h;

	for (h = FERRY_HEALTH_UNKNOWN; h <= FERRY_HEALTH_UNHEALTHY; h++)
		if (!strcmp(s, health_name(h)))
			return h;
	return -EINVAL;
}

const char *circuit_name(int c)
{
	switch (c) {
	case FERRY_CIRCUIT_OPEN: return "open";
	case FERRY_CIRCUIT_HALF_OPEN: return "half_open";
	case FERRY_CIRCUIT_OPENING: return "opening";
	default: return "closed";
	}
}

void circuit_defaults(struct ferry_circuit_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->consecutive_failures = 5;
	c->base_ejection_ms = 30000;
	c->max_ejection_ms = 300000;
	c->max_ejection_percent = 50;
	c->half_open_probes = 1;
	c->max_connections = 0;
}

struct pctx {
	const char *fname;
	char *err;
	size_t errlen;
};

static int perr(struct pctx *c, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int perr(struct pctx *c, int line, int col, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "%s:%d:%d: %s", c->fname, line, col, msg);
	return -EINVAL;
}

/* Reject keys the format does not define: a typo must not pass silently. */
static int check_keys(struct pctx *c, const struct jp_value *obj, const char *what,
		      const char *const *allowed)
{
	size_t i;

	for (i = 0; i < obj->len; i++) {
		const char *const *a;

		for (a = allowed; *a; a++)
			if (!strcmp(*a, obj->members[i].key))
				break;
		if (!*a)
			return perr(c, obj->members[i].line, obj->members[i].col,
				    "%s: unknown key \"%s\"", what, obj->members[i].key);
	}
	return 0;
}

static int want(struct pctx *c, const struct jp_value *v, enum jp_type t,
		const char *what, const char *field)
{
	if (v->type != t)
		return perr(c, v->line, v->col, "%s \"%s\": expected %s, got %s",
			    what, field, jp_type_name(t), jp_type_name(v->type));
	return 0;
}

static int get_uint(struct pctx *c, const struct jp_value *obj, const char *what,
		    const char *field, long long lo, long long hi, long long def,
		    long long *out)
{
	const struct jp_value *v = jp_get(obj, field);
	int err;

	if (!v) {
		*out = def;
		return 0;
	}
	if ((err = want(c, v, JP_NUMBER, what, field)))
		return err;
	if (!v->integer)
		return perr(c, v->line, v->col, "%s \"%s\": %s is not an integer (written with a fraction or an exponent); "
			    "expected an integer in %lld..%lld", what, field, v->str, lo, hi);
	if (v->ival < lo || v->ival > hi)
		return perr(c, v->line, v->col, "%s \"%s\": %s is not an integer in %lld..%lld",
			    what, field, v->str, lo, hi);
	*out = v->ival;
	return 0;
}

static int parse_circuit(struct pctx *c, const struct jp_value *o, struct ferry_circuit_cfg *cc)
{
	static const char *const keys[] = { "consecutive_failures", "base_ejection_ms",
		"max_ejection_ms", "max_ejection_percent", "half_open_probes", "max_connections", NULL };
	long long v;
	int err;

	circuit_defaults(cc);
	if (!o)
		return 0;
	if ((err = want(c, o, JP_OBJECT, "service", "circuit")) ||
	    (err = check_keys(c, o, "circuit", keys)))
		return err;
	if ((err = get_uint(c, o, "circuit", "consecutive_failures", 0, 65535, cc->consecutive_failures, &v)))
		return err;
	cc->consecutive_failures = v;
	if ((err = get_uint(c, o, "circuit", "base_ejection_ms", 1, 86400000, cc->base_ejection_ms, &v)))
		return err;
	cc->base_ejection_ms = v;
	if ((err = get_uint(c, o, "circuit", "max_ejection_ms", 1, 86400000, cc->max_ejection_ms, &v)))
		return err;
	cc->max_ejection_ms = v;
	if ((err = get_uint(c, o, "circuit", "max_ejection_percent", 0, 100, cc->max_ejection_percent, &v)))
		return err;
	cc->max_ejection_percent = v;
	if ((err = get_uint(c, o, "circuit", "half_open_probes", 1, 65535, cc->half_open_probes, &v)))
		return err;
	cc->half_open_probes = v;
	if ((err = get_uint(c, o, "circuit", "max_connections", 0, 0xffffffffLL, cc->max_connections, &v)))
		return err;
	cc->max_connections = v;
	if (cc->max_ejection_ms < cc->base_ejection_ms)
		return perr(c, o->line, o->col, "circuit: max_ejection_ms %u is below base_ejection_ms %u",
			    cc->max_ejection_ms, cc->base_ejection_ms);
	return 0;
}

static int parse_health(struct pctx *c, const struct jp_value *o, struct reg_health *h)
{
	static const char *const keys[] = { "type", "path", "interval_ms", "timeout_ms",
		"healthy_after", "unhealthy_after", NULL };
	const struct jp_value *v;
	const unsigned char *p;
	long long n;
	int err;

	memset(h, 0, sizeof(*h));
	if (!o)
		return 0;
	if ((err = want(c, o, JP_OBJECT, "service", "health")) ||
	    (err = check_keys(c, o, "health", keys)))
		return err;
	v = jp_get(o, "type");
	if (!v)
		return perr(c, o->line, o->col, "health: \"type\" is required (tcp or http)");
	if ((err = want(c, v, JP_STRING, "health", "type")))
		return err;
	if (!strcmp(v->str, "tcp"))
		h->type = HEALTH_TCP;
	else if (!strcmp(v->str, "http"))
		h->type = HEALTH_HTTP;
	else
		return perr(c, v->line, v->col, "health \"type\": \"%s\" is not tcp or http", v->str);
	strcpy(h->path, "/healthz");
	if ((v = jp_get(o, "path"))) {
		if ((err = want(c, v, JP_STRING, "health", "path")))
			return err;
		/* It goes into an HTTP request line: printable ASCII only, no CR/LF. */
		for (p = (const unsigned char *)v->str; *p; p++)
			if (*p <= ' ' || *p >= 0x7f)
				return perr(c, v->line, v->col, "health \"path\": byte 0x%02x at offset %zu is not allowed: "
					    "only printable ASCII without spaces (percent-encode the rest)",
					    *p, (size_t)(p - (const unsigned char *)v->str));
		if (v->str[0] != '/' || strlen(v->str) >= sizeof(h->path))
			return perr(c, v->line, v->col, "health \"path\": \"%s\" must start with / and be under %zu characters without spaces",
				    v->str, sizeof(h->path));
		strcpy(h->path, v->str);
	}
	if ((err = get_uint(c, o, "health", "interval_ms", 100, 3600000, 5000, &n)))
		return err;
	h->interval_ms = n;
	if ((err = get_uint(c, o, "health", "timeout_ms", 10, 600000, 1000, &n)))
		return err;
	h->timeout_ms = n;
	if ((err = get_uint(c, o, "health", "healthy_after", 1, 100, 2, &n)))
		return err;
	h->healthy_after = n;
	if ((err = get_uint(c, o, "health", "unhealthy_after", 1, 100, 3, &n)))
		return err;
	h->unhealthy_after = n;
	return 0;
}

static int parse_backend(struct pctx *c, const struct jp_value *o, const struct reg_service *s,
			 struct reg_backend *b)
{
	static const char *const keys[] = { "ip", "port", "weight", "state", NULL };
	const struct jp_value *v;
	long long n;
	int err;

	if ((err = want(c, o, JP_OBJECT, "backends", "[]")) ||
	    (err = check_keys(c, o, "backend", keys)))
		return err;
	v = jp_get(o, "ip");
	if (!v)
		return perr(c, o->line, o->col, "backend: \"ip\" is required");
	if ((err = want(c, v, JP_STRING, "backend", "ip")))
		return err;
	if (faddr_parse(v->str, &b->addr))
		return perr(c, v->line, v->col, "backend \"ip\": \"%s\" is not an IPv4 or IPv6 address", v->str);
	if (b->addr.family != s->key.family)
		return perr(c, v->line, v->col, "backend \"ip\": \"%s\" is IPv%d but the VIP is IPv%d",
			    v->str, b->addr.family == AF_INET ? 4 : 6, s->key.family == AF_INET ? 4 : 6);
	v = jp_get(o, "port");
	if (!v)
		return perr(c, o->line, o->col, "backend: \"port\" is required");
	if ((err = get_uint(c, o, "backend", "port", 1, 65535, 0, &n)))
		return err;
	b->port = n;
	/* XDP forwards by direct server return: no port translation. */
	if (s->xdp && b->port != ntohs(s->key.port)) {
		v = jp_get(o, "port");
		return perr(c, v->line, v->col, "backend \"port\": %u differs from the VIP port %u, but an xdp service "
			    "forwards with direct server return and cannot translate ports", b->port, ntohs(s->key.port));
	}
	if ((err = get_uint(c, o, "backend", "weight", 0, FERRY_MAX_WEIGHT, 1, &n)))
		return err;
	b->weight = n;
	b->state = FERRY_BE_ACTIVE;
	if ((v = jp_get(o, "state"))) {
		int st;

		if ((err = want(c, v, JP_STRING, "backend", "state")))
			return err;
		st = be_state_parse(v->str);
		if (st != FERRY_BE_ACTIVE && st != FERRY_BE_DRAINING)
			return perr(c, v->line, v->col, "backend \"state\": \"%s\" is not active or draining", v->str);
		b->state = st;
	}
	return 0;
}

static int cmp_backend(const void *a, const void *b)
{
	const struct reg_backend *x = a, *y = b;
	int r = memcmp(&x->addr, &y->addr, sizeof(x->addr));

	return r ? r : (int)x->port - (int)y->port;
}

static int parse_service(struct pctx *c, const struct jp_value *o, struct reg_service *s,
			 const struct registry_limits *lim, size_t *total_be)
{
	static const char *const keys[] = { "name", "vip", "port", "protocol", "lb",
		"backends", "circuit", "health", "xdp", NULL };
	struct faddr vip;
	const struct jp_value *v, *bes;
	long long n;
	size_t i;
	int err;

	if ((err = want(c, o, JP_OBJECT, "services", "[]")) ||
	    (err = check_keys(c, o, "service", keys)))
		return err;
	v = jp_get(o, "name");
	if (!v)
		return perr(c, o->line, o->col, "service: \"name\" is required");
	if ((err = want(c, v, JP_STRING, "service", "name")))
		return err;
	if (!v->str[0] || strlen(v->str) >= FERRY_NAME_LEN)
		return perr(c, v->line, v->col, "service \"name\": must be 1..%d characters", FERRY_NAME_LEN - 1);
	/* Names reach logs, metrics labels and terminals: no control
	 * characters, C0, DEL or C1 (U+0080..U+009F, UTF-8 C2 80..C2 9F:
	 * some terminals take U+009B for a control sequence introducer). */
	for (i = 0; v->str[i]; i++) {
		unsigned char ch = v->str[i], next = v->str[i + 1];

		if (ch < 0x20 || ch == 0x7f)
			return perr(c, v->line, v->col, "service \"name\": control character 0x%02x at offset %zu is not allowed",
				    ch, i);
		if (ch == 0xc2 && next >= 0x80 && next <= 0x9f)
			return perr(c, v->line, v->col, "service \"name\": control character U+%04X at offset %zu is not allowed",
				    next, i);
	}
	strcpy(s->name, v->str);
	v = jp_get(o, "vip");
	if (!v)
		return perr(c, o->line, o->col, "service \"%s\": \"vip\" is required", s->name);
	if ((err = want(c, v, JP_STRING, "service", "vip")))
		return err;
	if (faddr_parse(v->str, &vip))
		return perr(c, v->line, v->col, "service \"vip\": \"%s\" is not an IPv4 or IPv6 address", v->str);
	memcpy(s->key.addr, vip.a, sizeof(vip.a));
	s->key.family = vip.family;
	if (!jp_get(o, "port"))
		return perr(c, o->line, o->col, "service \"%s\": \"port\" is required", s->name);
	if ((err = get_uint(c, o, "service", "port", 1, 65535, 0, &n)))
		return err;
	s->key.port = htons(n);
	s->key.proto = IPPROTO_TCP;
	if ((v = jp_get(o, "protocol"))) {
		int p;

		if ((err = want(c, v, JP_STRING, "service", "protocol")))
			return err;
		if ((p = proto_parse(v->str)) < 0)
			return perr(c, v->line, v->col, "service \"protocol\": \"%s\" is not tcp or udp", v->str);
		s->key.proto = p;
	}
	s->lb = FERRY_LB_ROUND_ROBIN;
	if ((v = jp_get(o, "lb"))) {
		int lb;

		if ((err = want(c, v, JP_STRING, "service", "lb")))
			return err;
		if ((lb = lb_parse(v->str)) < 0)
			return perr(c, v->line, v->col,
				    "service \"lb\": \"%s\" is not round_robin, random, weighted, maglev or least_conn", v->str);
		s->lb = lb;
	}
	if ((v = jp_get(o, "xdp"))) {
		if ((err = want(c, v, JP_BOOL, "service", "xdp")))
			return err;
		s->xdp = v->boolean;
	}
	if ((err = parse_circuit(c, jp_get(o, "circuit"), &s->circuit)) ||
	    (err = parse_health(c, jp_get(o, "health"), &s->health)))
		return err;

	bes = jp_get(o, "backends");
	if (!bes)
		return 0;
	if ((err = want(c, bes, JP_ARRAY, "service", "backends")))
		return err;
	if (bes->len > FERRY_MAX_SVC_BACKENDS)
		return perr(c, bes->line, bes->col, "service \"%s\": %zu backends, at most %d per service",
			    s->name, bes->len, FERRY_MAX_SVC_BACKENDS);
	*total_be += bes->len;
	if (*total_be > lim->max_backends)
		return perr(c, bes->line, bes->col, "service \"%s\": backends exceed the capacity of %zu backends (ferryd --max-backends)",
			    s->name, lim->max_backends);
	s->backends = calloc(bes->len ? bes->len : 1, sizeof(*s->backends));
	if (!s->backends)
		return -ENOMEM;
	s->nbackends = bes->len;
	for (i = 0; i < bes->len; i++)
		if ((err = parse_backend(c, bes->items[i], s, &s->backends[i])))
			return err;
	/* Duplicate endpoints: find them on a sorted copy, report the second. */
	if (bes->len > 1) {
		struct reg_backend *sorted = malloc(bes->len * sizeof(*sorted));

		if (!sorted)
			return -ENOMEM;
		memcpy(sorted, s->backends, bes->len * sizeof(*sorted));
		qsort(sorted, bes->len, sizeof(*sorted), cmp_backend);
		for (i = 1; i < bes->len; i++) {
			if (!cmp_backend(&sorted[i - 1], &sorted[i])) {
				size_t j, seen = 0;
				char ip[64];

				for (j = 0; j < bes->len; j++)
					if (!cmp_backend(&s->backends[j], &sorted[i]) && seen++) {
						free(sorted);
						return perr(c, bes->items[j]->line, bes->items[j]->col,
							    "service \"%s\": backend %s port %u is listed twice",
							    s->name, faddr_str(&s->backends[j].addr, ip, sizeof(ip)),
							    s->backends[j].port);
					}
			}
		}
		free(sorted);
	}
	return 0;
}

static int cmp_svc_idx(const void *a, const void *b, void *arg)
{
	const struct reg_service *s = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int r = memcmp(&s[x].key, &s[y].key, sizeof(s[x].key));

	return r ? r : (x < y ? -1 : x > y);
}

int registry_parse(const char *text, size_t len, const char *fname,
		   const struct registry_limits *lim, struct registry *out,
		   char *err, size_t errlen)
{
	static const char *const keys[] = { "services", NULL };
	struct pctx c = { .fname = fname, .err = err, .errlen = errlen };
	struct jp_doc doc;
	const struct jp_value *svcs;
	size_t i, *idx = NULL;
	char perrbuf[200];
	int ret;

	memset(out, 0, sizeof(*out));
	if (jp_parse(text, len, &doc, perrbuf, sizeof(perrbuf))) {
		snprintf(err, errlen, "%s:%s", fname, perrbuf);
		return -EINVAL;
	}
	if ((ret = want(&c, doc.root, JP_OBJECT, "document", "")) ||
	    (ret = check_keys(&c, doc.root, "document", keys)))
		goto cleanup;
	svcs = jp_get(doc.root, "services");
	if (!svcs) {
		ret = perr(&c, 1, 1, "document: \"services\" is required");
		goto cleanup;
	}
	if ((ret = want(&c, svcs, JP_ARRAY, "document", "services")))
		goto cleanup;
	if (svcs->len > lim->max_services) {
		ret = perr(&c, svcs->line, svcs->col, "%zu services exceed the capacity of %zu (ferryd --max-services)",
			   svcs->len, lim->max_services);
		goto cleanup;
	}
	out->svcs = calloc(svcs->len ? svcs->len : 1, sizeof(*out->svcs));
	idx = calloc(svcs->len ? svcs->len : 1, sizeof(*idx));
	if (!out->svcs || !idx) {
		ret = -ENOMEM;
		goto cleanup;
	}
	out->nsvcs = svcs->len;
	for (i = 0; i < svcs->len; i++) {
		ret = parse_service(&c, svcs->items[i], &out->svcs[i], lim, &out->nbackends);
		if (ret)
			goto cleanup;
		idx[i] = i;
	}
	qsort_r(idx, svcs->len, sizeof(*idx), cmp_svc_idx, out->svcs);
	for (i = 1; i < svcs->len; i++) {
		if (!memcmp(&out->svcs[idx[i - 1]].key, &out->svcs[idx[i]].key, sizeof(struct ferry_svc_key))) {
			const struct jp_value *v = jp_get(svcs->items[idx[i]], "vip");
			char k[96];

			ret = perr(&c, v->line, v->col, "service \"%s\": VIP %s is already used by service \"%s\"",
				   out->svcs[idx[i]].name, svc_key_str(&out->svcs[idx[i]].key, k, sizeof(k)),
				   out->svcs[idx[i - 1]].name);
			goto cleanup;
		}
	}
	ret = 0;
cleanup:
	if (ret == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", fname);
	free(idx);
	jp_free(&doc);
	if (ret)
		registry_free(out);
	return ret;
}

int registry_read(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	size_t off = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto cleanup;
	}
	buf = malloc(st.st_size + 1);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto cleanup;
	}
	while (off < (size_t)st.st_size && (n = read(fd, buf + off, st.st_size - off)) > 0)
		off += n;
	*text = buf;
	*len = off;
	buf = NULL;
cleanup:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

int registry_load(const char *path, const struct registry_limits *lim,
		  struct registry *out, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	if ((ret = registry_read(path, &text, &len, err, errlen)))
		return ret;
	ret = registry_parse(text, len, path, lim, out, err, errlen);
	free(text);
	return ret;
}

void registry_free(struct registry *r)
{
	size_t i;

	for (i = 0; i < r->nsvcs; i++)
		free(r->svcs[i].backends);
	free(r->svcs);
	memset(r, 0, sizeof(*r));
}
