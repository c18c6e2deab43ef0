/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The BPF tests' Internet checksum, to build packets and to check outputs. */
#ifndef FERRY_TESTS_CSUM_H
#define FERRY_TESTS_CSUM_H

#include <stddef.h>
#include <arpa/inet.h>
#include <linux/types.h>

/* One's-complement sum of p[0..n) added to sum, folded and complemented:
 * the checksum to store (network order), or 0 when p holds a correct one. */
static __u16 csum16(const void *p, size_t n, __u32 sum)
{
	const __u8 *b = p;
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += b[i] << 8 | b[i + 1];
	if (n & 1)
		sum += b[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons(~sum & 0xffff);
}

#endif /* FERRY_TESTS_CSUM_H */
