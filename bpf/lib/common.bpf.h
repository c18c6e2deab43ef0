/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Includes and small helpers every ferry BPF program uses: vmlinux types,
 * libbpf helpers, the shared ABI and the few UAPI constants vmlinux.h lacks.
 */
#ifndef FERRY_COMMON_BPF_H
#define FERRY_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <ferry/abi.h>

#ifndef AF_INET
#define AF_INET		2
#endif
#ifndef AF_INET6
#define AF_INET6	10
#endif
#define FERRY_ECONNREFUSED	111
#define FERRY_ENOENT		2

#ifndef likely
#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)
#endif

/* ::ffff:a.b.c.d, the form a dual-stack socket uses for an IPv4 peer. */
static __always_inline bool addr6_is_v4mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

#endif /* FERRY_COMMON_BPF_H */
