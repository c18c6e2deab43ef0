// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target for the address forms ferry reads from its registry and
 * its command lines (addr.h): an address, an endpoint, a listen address.
 * What parses must print and parse back to the same thing: the forms
 * ferryctl prints (and a registry written from them) mean what they said.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "addr.h"

static void roundtrip_endpoint(const struct faddr *a, int port, int proto)
{
	struct faddr b;
	char buf[128];
	int p2, pr2 = 0;
	size_t n;

	endpoint_str(a->a, a->family, htons(port), buf, sizeof(buf));
	n = strlen(buf);
	if (proto)	/* endpoint_str() prints none: add what was parsed */
		snprintf(buf + n, sizeof(buf) - n, "/%s", proto_name(proto));
	if (endpoint_parse(buf, &b, &p2, &pr2) || !faddr_eq(a, &b) || p2 != port ||
	    (proto && pr2 != proto))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), buf[128];
	struct faddr a, b;
	int port, proto = 0;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (!faddr_parse(s, &a)) {
		if ((a.family != AF_INET && a.family != AF_INET6) ||
		    faddr_parse(faddr_str(&a, buf, sizeof(buf)), &b) || !faddr_eq(&a, &b))
			abort();
	}
	if (!endpoint_parse(s, &a, &port, &proto)) {
		if (port < 1 || port > 65535)
			abort();
		roundtrip_endpoint(&a, port, proto);
	}
	if (!endpoint_parse(s, &a, &port, NULL))
		roundtrip_endpoint(&a, port, 0);
	if (!listen_addr_parse(s, &a, &port) && (port < 0 || port > 65535))
		abort();
	free(s);
	return 0;
}
