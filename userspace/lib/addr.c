// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/abi.h>
#include "addr.h"

int faddr_parse(const char *s, struct faddr *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, s, &out->a[0]) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, out->a) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

const char *proto_name(int proto)
{
	return proto == IPPROTO_UDP ? "udp" : proto == IPPROTO_TCP ? "tcp" : "?";
}

int proto_parse(const char *s)
{
	if (!strcmp(s, "tcp"))
		return IPPROTO_TCP;
	if (!strcmp(s, "udp"))
		return IPPROTO_UDP;
	return -EINVAL;
}

static int endpoint_parse_from(const char *s, struct faddr *addr, int *port, int *proto, long min_port)
{
	char buf[128], *host, *p, *slash, *end;
	long v;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strrchr(buf, '/');
	if (slash) {
		int pr;

		if (!proto)
			return -EINVAL;
		*slash = '\0';
		pr = proto_parse(slash + 1);
		if (pr < 0)
			return -EINVAL;
		*proto = pr;
	} else if (proto) {
		*proto = IPPROTO_TCP;
	}
	if (buf[0] == '[') {
		host = buf + 1;
		p = strchr(host, ']');
		if (!p || p[1] != ':')
			return -EINVAL;
		*p = '\0';
		p += 2;
	} else {
		host = buf;
		p = strrchr(buf, ':');
		if (!p || strchr(buf, ':') != p)	/* bare IPv6 needs [] */
			return -EINVAL;
		*p++ = '\0';
	}
	/* Digits only: strtol would also take a sign or leading blanks. */
	if (*p < '0' || *p > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(p, &end, 10);
	if (errno || *end || end == p || v < min_port || v > 65535)
		return -EINVAL;
	*port = (int)v;
	if (faddr_parse(host, addr))
		return -EINVAL;
	/* Brackets are for IPv6 literals (RFC 3986); "[192.0.2.1]:80" is a typo. */
	if ((buf[0] == '[') != (addr->family == AF_INET6))
		return -EINVAL;
	return 0;
}

int endpoint_parse(const char *s, struct faddr *addr, int *port, int *proto)
{
	return endpoint_parse_from(s, addr, port, proto, 1);
}

int listen_addr_parse(const char *s, struct faddr *addr, int *port)
{
	return endpoint_parse_from(s, addr, port, NULL, 0);
}

const char *faddr_str(const struct faddr *a, char *buf, size_t len)
{
	if (!inet_ntop(a->family == AF_INET6 ? AF_INET6 : AF_INET, a->a, buf, len))
		snprintf(buf, len, "?");
	return buf;
}

const char *endpoint_str(const __u32 *addr, __u8 family, __u16 port_be, char *buf, size_t len)
{
	struct faddr a = { .family = family };
	char ip[INET6_ADDRSTRLEN];

	memcpy(a.a, addr, sizeof(a.a));
	faddr_str(&a, ip, sizeof(ip));
	snprintf(buf, len, family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, ntohs(port_be));
	return buf;
}

const char *backend_str(const struct ferry_backend *b, char *buf, size_t len)
{
	return endpoint_str(b->addr, b->family, b->port, buf, len);
}

const char *svc_key_str(const struct ferry_svc_key *k, char *buf, size_t len)
{
	struct faddr a = { .family = k->family };
	char ip[INET6_ADDRSTRLEN];

	memcpy(a.a, k->addr, sizeof(a.a));
	faddr_str(&a, ip, sizeof(ip));
	snprintf(buf, len, k->family == AF_INET6 ? "[%s]:%u/%s" : "%s:%u/%s",
		 ip, ntohs(k->port), proto_name(k->proto));
	return buf;
}

bool faddr_eq(const struct faddr *a, const struct faddr *b)
{
	return a->family == b->family && !memcmp(a->a, b->a, sizeof(a->a));
}
