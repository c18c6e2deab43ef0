/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Same-node acceleration: the sockhash of local sockets, its policy maps and
 * the workers the sockops and sk_msg hooks share. Workers take plain values
 * so the key layout and the redirect rule stand apart from the hook contexts.
 *
 * Who gets registered: only both ends of a connection between two managed
 * sockets of this node. The listener's side sees the SYN first (sockops
 * TIMEOUT_INIT on the request socket) and records the handshake in
 * ferry_smpend_v1; the client registers at ACTIVE_ESTABLISHED only if its
 * peer's handshake is recorded there; the accepted socket registers at
 * PASSIVE_ESTABLISHED only if the client did. A socket in a sockhash gets the
 * kernel's sockmap receive path (tcp_bpf), whose recvmsg/ioctl semantics
 * differ from TCP's in corners (docs/sockmap.md); a socket talking to
 * anything else gains nothing from it, so it never gets one.
 *
 * The redirect rule (sm_may_redirect) keeps the fast path correct:
 *
 *  - Ordering. A redirected message lands on the peer's psock queue, which
 *    its reader drains before the TCP receive queue: redirect -> TCP keeps
 *    order. TCP -> redirect never does: earlier bytes may be queued, in
 *    flight or unread, and a reader blocked in tcp_recvmsg (MSG_WAITALL,
 *    SO_RCVLOWAT) keeps waiting on the TCP queue while newer bytes pile up
 *    on the psock. So the choice is one-way: a socket redirects only while
 *    it has never sent a byte over TCP (bytes_sent == 0, nothing queued).
 *    Once a message takes TCP (peer not ready yet, backpressure, switched
 *    off), that direction of the connection stays on TCP.
 *
 *  - Identity. The socket found under the peer key must be our peer: its
 *    copied_seq equals our snd_una (32 bits of sequence space must match),
 *    which a stale entry or a same-tuple socket elsewhere does not.
 *
 *  - Backpressure. The kernel charges redirected bytes to the peer's
 *    sk_rmem_alloc but does not bound them by its sk_rcvbuf, so a slow
 *    reader would let a writer queue without limit. Worse, the peer's
 *    sk_rmem_alloc is what TCP checks before it queues a packet that
 *    arrives while the reader holds the socket (tcp_add_backlog): past
 *    about twice sk_rcvbuf the packet is dropped. A dropped FIN is sent
 *    again; a dropped RST never is, and the reader then waits forever on a
 *    connection that is gone. So a message is redirected only while the
 *    peer's queue, with it, stays within the peer's sk_rcvbuf, as TCP's
 *    window would keep it; otherwise it takes TCP, whose window and send
 *    buffer push back.
 *
 * Reading the peer: an sk_msg program may look a socket up in a sockhash but
 * may not release the reference it gets, so the peer is found through
 * ferry_smsk_v1 (key -> socket address, written at registration, removed at
 * close) and read through bpf_rdonly_cast(): untrusted, fault-safe loads. A
 * stale address can only yield values that fail the checks; delivery itself
 * goes through bpf_msg_redirect_hash() on the sockhash, which holds live
 * sockets only.
 */
#ifndef FERRY_SOCKMAP_BPF_H
#define FERRY_SOCKMAP_BPF_H

#include "common.bpf.h"
#include "maps.bpf.h"
#include <bpf/bpf_core_read.h>

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

#define SM_TCP_ESTABLISHED	1
#define SM_TCP_CLOSE		7
#define SM_TCP_CLOSE_WAIT	8
#define SM_RCV_SHUTDOWN		1
#define SM_SEND_SHUTDOWN	2

/* Established local sockets of the managed cgroup, by their own view. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, FERRY_DEF_SOCKMAP_MAX);
	__type(key, struct ferry_sm_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_smap_v1 SEC(".maps");

/* The same sockets' kernel addresses, to read a peer's state. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_DEF_SOCKMAP_MAX);
	__type(key, struct ferry_sm_key);
	__type(value, __u64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_smsk_v1 SEC(".maps");

/* Handshakes seen by a managed listener, by the listener side's key. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_DEF_SOCKMAP_MAX / 2);
	__type(key, struct ferry_sm_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_smpend_v1 SEC(".maps");

/* On/off and tunables (one entry); a missing entry means off. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_sm_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_smcfg_v1 SEC(".maps");

/*
 * Hints: two bitmaps that let the sockops program see in a few loads, with
 * no helper call and no map update, that a socket can never be registered.
 * A set bit means "maybe", a clear bit "certainly not"; bits are set by the
 * program and never cleared (a stale bit costs the lookup it would have
 * saved, nothing else). Words [0, SM_HINT_WORDS): a managed listener's end,
 * (address, port), set when it records a handshake. Words [SM_HINT_WORDS,
 * 2 * SM_HINT_WORDS): a managed client's address, set when it connects.
 */
#define SM_HINT_BITS	16
#define SM_HINT_WORDS	(1u << (SM_HINT_BITS - 6))
#define SM_HINT_SERVER	0
#define SM_HINT_CLIENT	SM_HINT_WORDS

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * SM_HINT_WORDS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_smhint_v1 SEC(".maps");

/* Ports whose connections are never accelerated (either end). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_smport_v1 SEC(".maps");

/* CIDRs whose connections are never accelerated (either end). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct ferry_sm_net_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_smnet_v1 SEC(".maps");

static __always_inline void stat_add(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&ferry_stats_v1, &slot);

	if (v)
		*v += n;
}

static __always_inline const struct ferry_sm_cfg *sm_cfg(void)
{
	__u32 zero = 0;
	const struct ferry_sm_cfg *c = bpf_map_lookup_elem(&ferry_smcfg_v1, &zero);

	return c && c->enabled ? c : NULL;
}

static __always_inline bool sm_v4_loopback(__u32 a)
{
	return (bpf_ntohl(a) >> 24) == 127;
}

static __always_inline bool sm_v6_loopback(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == bpf_htonl(1);
}

/* An address folded to 32 bits, IPv4 and v4-mapped IPv6 alike (IPv4 as
 * ::ffff:a.b.c.d): the hints' input. */
static __always_inline __u32 sm_fold4(__u32 a)
{
	return a ^ bpf_htonl(0x0000ffff);
}

static __always_inline __u32 sm_fold6(const __u32 *a)
{
	return a[0] ^ a[1] ^ a[2] ^ a[3];
}

static __always_inline __u32 sm_hint_bit(__u32 addr, __u32 port)
{
	return ((addr ^ (port * 0x9e3779b1u)) * 0x85ebca6bu) >> (32 - SM_HINT_BITS);
}

/* Fails open: a missing word says "maybe". */
static __always_inline bool sm_hint_test(__u32 half, __u32 bit)
{
	__u32 i = half + (bit >> 6);
	__u64 *w = bpf_map_lookup_elem(&ferry_smhint_v1, &i);

	return !w || (*w & (1ull << (bit & 63)));
}

/* Written once per bit: a set bit is only read, so no cache line bounces. */
static __always_inline void sm_hint_set(__u32 half, __u32 bit)
{
	__u32 i = half + (bit >> 6);
	__u64 m = 1ull << (bit & 63), *w = bpf_map_lookup_elem(&ferry_smhint_v1, &i);

	if (w && !(*w & m))
		__sync_fetch_and_or(w, m);
}

/*
 * One end's key. ip6 arrays are read only for AF_INET6; a v4-mapped pair
 * becomes AF_INET so a dual-stack server socket and an AF_INET client agree.
 * rport_be is the port as both contexts give it: network order in the upper
 * 16 bits of a __u32. Returns 1 when an end is a loopback address: the
 * caller then sets scope to the netns cookie (a helper call, so only then).
 */
static __always_inline int sm_key_build(struct ferry_sm_key *k, __u32 family,
					__u32 lip4, __u32 rip4,
					const __u32 *lip6, const __u32 *rip6,
					__u32 lport, __u32 rport_be)
{
	bool lo;

	__builtin_memset(k, 0, sizeof(*k));
	if (family == AF_INET) {
		k->local[0] = lip4;
		k->remote[0] = rip4;
		k->family = AF_INET;
		lo = sm_v4_loopback(lip4) || sm_v4_loopback(rip4);
	} else if (family == AF_INET6) {
		if (addr6_is_v4mapped(lip6) && addr6_is_v4mapped(rip6)) {
			k->local[0] = lip6[3];
			k->remote[0] = rip6[3];
			k->family = AF_INET;
			lo = sm_v4_loopback(lip6[3]) || sm_v4_loopback(rip6[3]);
		} else {
			k->local[0] = lip6[0];
			k->local[1] = lip6[1];
			k->local[2] = lip6[2];
			k->local[3] = lip6[3];
			k->remote[0] = rip6[0];
			k->remote[1] = rip6[1];
			k->remote[2] = rip6[2];
			k->remote[3] = rip6[3];
			k->family = AF_INET6;
			lo = sm_v6_loopback(lip6) || sm_v6_loopback(rip6);
		}
	} else {
		return -FERRY_ENOENT;
	}
	k->lport = (__u16)lport;
	k->rport = (__u16)bpf_ntohl(rport_be);
	return lo;
}

/* The key the peer registered under: ends swapped, same scope. */
static __always_inline void sm_key_peer(struct ferry_sm_key *p, const struct ferry_sm_key *k)
{
	__builtin_memset(p, 0, sizeof(*p));
	p->local[0] = k->remote[0];
	p->local[1] = k->remote[1];
	p->local[2] = k->remote[2];
	p->local[3] = k->remote[3];
	p->remote[0] = k->local[0];
	p->remote[1] = k->local[1];
	p->remote[2] = k->local[2];
	p->remote[3] = k->local[3];
	p->lport = k->rport;
	p->rport = k->lport;
	p->family = k->family;
	p->scope = k->scope;
}

static __always_inline bool sm_addr_excluded(const __u32 *a, __u8 family)
{
	struct ferry_sm_net_key nk = {};

	nk.prefixlen = 128;
	if (family == AF_INET) {
		nk.addr[2] = bpf_htonl(0x0000ffff);
		nk.addr[3] = a[0];
	} else {
		nk.addr[0] = a[0];
		nk.addr[1] = a[1];
		nk.addr[2] = a[2];
		nk.addr[3] = a[3];
	}
	return bpf_map_lookup_elem(&ferry_smnet_v1, &nk) != NULL;
}

/* Policy: a connection with an excluded port or address at either end. */
static __always_inline bool sm_excluded(const struct ferry_sm_key *k)
{
	__u16 p;

	p = k->lport;
	if (bpf_map_lookup_elem(&ferry_smport_v1, &p))
		return true;
	p = k->rport;
	if (bpf_map_lookup_elem(&ferry_smport_v1, &p))
		return true;
	return sm_addr_excluded(k->local, k->family) || sm_addr_excluded(k->remote, k->family);
}

/* What the redirect rule needs from both ends, read without their locks. */
struct sm_side {
	__u64	bytes_sent;	/* sender: bytes ever transmitted by TCP */
	__u32	write_seq;	/* sender: end of the data queued to TCP */
	__u32	snd_una;	/* sender: first unacknowledged byte */
	__u32	state;		/* sender's TCP state */
	__u32	shutdown;	/* sender's sk_shutdown */
	__u32	msg_size;	/* bytes of the message to place */
	__u32	copied_seq;	/* peer: next byte its application reads */
	__u32	peer_state;
	__u32	peer_shutdown;
	__s32	peer_queued;	/* peer's sk_rmem_alloc */
	__s32	peer_rcvbuf;
};

#define SM_EBUSY	16
#define SM_ENOBUFS	105

/*
 * 0: redirect. -EBUSY: this direction has used TCP, or TCP must answer for
 * the socket (closing, shut down), or the peer is not who the key says:
 * TCP. -ENOBUFS: the peer's queue is at its limit: TCP, for backpressure.
 */
static __always_inline int sm_may_redirect(const struct sm_side *s)
{
	if (s->state != SM_TCP_ESTABLISHED && s->state != SM_TCP_CLOSE_WAIT)
		return -SM_EBUSY;
	if (s->peer_state == SM_TCP_CLOSE)
		return -SM_EBUSY;
	/* After shutdown(SHUT_WR) the TCP path must answer EPIPE; a peer that
	 * shut its reading side gets TCP semantics too. */
	if ((s->shutdown & SM_SEND_SHUTDOWN) || (s->peer_shutdown & SM_RCV_SHUTDOWN))
		return -SM_EBUSY;
	if (s->bytes_sent || s->write_seq != s->snd_una || s->copied_seq != s->snd_una)
		return -SM_EBUSY;
	/* Within the peer's receive buffer, so its backlog keeps room for
	 * the packets TCP still delivers (RST, FIN): see Backpressure. */
	if ((__s64)s->peer_queued + s->msg_size > (__s64)s->peer_rcvbuf)
		return -SM_ENOBUFS;
	return 0;
}

#endif /* FERRY_SOCKMAP_BPF_H */
