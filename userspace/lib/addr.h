/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Addresses in the ABI's form: 4 x __u32 network order + family. */
#ifndef FERRY_ADDR_H
#define FERRY_ADDR_H

#include <stdbool.h>
#include <linux/types.h>

struct ferry_svc_key;

struct faddr {
	__u32	a[4];
	__u8	family;	/* AF_INET / AF_INET6 */
};

/* "10.0.0.1" or "fd00::1": 0 or -EINVAL. */
int faddr_parse(const char *s, struct faddr *out);
/* "IP:PORT", "[IPv6]:PORT", each optionally "/tcp" or "/udp" (proto may be NULL:
 * then a suffix is an error). Port 1..65535, host order. */
int endpoint_parse(const char *s, struct faddr *addr, int *port, int *proto);
/* An address to listen on: as endpoint_parse() without a protocol, and port 0
 * too (the kernel picks a free one; the listener reports it). */
int listen_addr_parse(const char *s, struct faddr *addr, int *port);
/* Text form into buf (at least 64 bytes). */
const char *faddr_str(const struct faddr *a, char *buf, size_t len);
/* "192.0.2.11:8080" or "[2001:db8::11]:8080"; port in network order. */
const char *endpoint_str(const __u32 *addr, __u8 family, __u16 port_be, char *buf, size_t len);
/* A backend's endpoint, as endpoint_str(). */
struct ferry_backend;
const char *backend_str(const struct ferry_backend *b, char *buf, size_t len);
/* "10.96.0.10:9080/tcp" or "[fd00::1]:80/udp". */
const char *svc_key_str(const struct ferry_svc_key *k, char *buf, size_t len);
const char *proto_name(int proto);
int proto_parse(const char *s);
bool faddr_eq(const struct faddr *a, const struct faddr *b);

#endif /* FERRY_ADDR_H */
