// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket-level load balancing: cgroup connect/sendmsg hooks rewrite a
 * destination VIP to a backend chosen by the service's policy, and
 * getpeername/recvmsg hooks show the VIP back to the application.
 *
 * Hooks are thin: they build a service key, call a worker that returns 0 or
 * -errno, and turn that into a verdict. Anything unexpected (not a VIP, a map
 * miss) lets the syscall proceed unchanged. The one refusal: a service that
 * has backends, none of which may take a connection, fails fast with
 * ECONNREFUSED instead of sending a SYN to a VIP nobody serves.
 */
#include "lib/common.bpf.h"
#include "lib/maps.bpf.h"
#include "lib/select.bpf.h"
#include <ferry/flowhash.h>

#define SYS_PROCEED	1
#define SYS_REJECT	0
#define FERRY_ENODATA	61	/* a VIP without backends: proceed, counted apart */

/* Load-time tunable: 1 disables the sendmsg/recvmsg (unconnected UDP) path. */
const volatile __u32 cfg_no_udp_sendmsg = 0;
/* Load-time tunable: 1 stops tracking TCP connects (ferryd --no-circuit):
 * no circuit breaking, max_connections or connection counts. */
const volatile __u32 cfg_no_circuit = 0;

struct sock_target {
	__u32	addr[4];
	__u16	port;
	__u8	family;
};

static __always_inline void key_from_v4(struct ferry_svc_key *k, __u32 ip4,
					__u32 port, __u8 proto)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->addr[0] = ip4;
	k->port = (__u16)port;
	k->proto = proto;
	k->family = AF_INET;
}

static __always_inline void key_from_v6(struct ferry_svc_key *k, const __u32 *ip6,
					__u32 port, __u8 proto)
{
	__builtin_memset(k, 0, sizeof(*k));
	if (addr6_is_v4mapped(ip6)) {
		k->addr[0] = ip6[3];
		k->family = AF_INET;
	} else {
		k->addr[0] = ip6[0];
		k->addr[1] = ip6[1];
		k->addr[2] = ip6[2];
		k->addr[3] = ip6[3];
		k->family = AF_INET6;
	}
	k->port = (__u16)port;
	k->proto = proto;
}

static __always_inline __u8 ctx_proto(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol == IPPROTO_TCP || ctx->protocol == IPPROTO_UDP)
		return ctx->protocol;
	return ctx->type == SOCK_DGRAM ? IPPROTO_UDP : IPPROTO_TCP;
}

/* Affinity hash for maglev: the client's netns and, if bound, its address
 * (include/ferry/flowhash.h: ferryctl explain computes the same). */
static __always_inline __u32 flow_hash(struct bpf_sock_addr *ctx,
				       const struct ferry_svc_key *k)
{
	__u32 src4 = 0, src6_3 = 0;

	if (ctx->sk) {
		struct bpf_sock *sk = ctx->sk;

		src4 = sk->src_ip4;
		src6_3 = sk->src_ip6[3];
	}
	return ferry_flow_hash(bpf_get_netns_cookie(ctx), k, src4, src6_3);
}

static __always_inline void revnat_store(struct bpf_sock_addr *ctx,
					 const struct ferry_svc_key *k,
					 const struct ferry_backend *be, __u32 be_id)
{
	struct ferry_revnat_key rk = {};
	struct ferry_revnat rv = {};

	rk.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(rk.addr, be->addr, sizeof(rk.addr));
	rk.port = be->port;
	rk.family = be->family;
	__builtin_memcpy(rv.addr, k->addr, sizeof(rv.addr));
	rv.port = k->port;
	rv.family = k->family;
	rv.backend_id = be_id;
	if (bpf_map_update_elem(&ferry_rev_v1, &rk, &rv, BPF_ANY))
		stat_inc(FERRY_STAT_REVNAT_UPDATE_FAIL);
}

/*
 * Resolve the service for key k and pick a backend. Returns 0 with *out set,
 * -ENOENT when k is not a balanced VIP (proceed untouched), -ECONNREFUSED
 * when it is one but no backend may take the connection, or -EBUSY when
 * every candidate is at its max_connections.
 *
 * A TCP connect reserves a connection slot on the backend and is recorded
 * in ferry_conn_v2 until the socket is released (circuit.bpf.h); a socket
 * that is already connecting (a repeated connect() polling for EALREADY /
 * EISCONN) keeps its backend and counts nothing twice. *recorded: that
 * record answers getpeername(), no ferry_rev_v1 entry is needed.
 */
static __always_inline int sock_lb_pick(struct bpf_sock_addr *ctx,
					const struct ferry_svc_key *k, bool connect,
					struct ferry_backend *out, __u32 *out_id, bool *recorded)
{
	bool tcp = connect && k->proto == IPPROTO_TCP && !cfg_no_circuit;
	struct ferry_sk_conn *conn = NULL;
	struct ferry_backend *be;
	struct ferry_svc *svc;
	struct pick p = {};
	bool again = false;
	int err;

	svc = bpf_map_lookup_elem(&ferry_svc_v1, k);
	if (!svc)
		return -FERRY_ENOENT;
	if (!svc->count)
		return -FERRY_ENODATA;
	if (tcp) {
		conn = conn_get(bpf_get_socket_cookie(ctx));
		again = (p.id = conn_current(conn)) != 0;
	}
	if (!again) {
		/* Untrackable socket: balanced, but nothing reserved for it. */
		err = select_backend(svc, svc->lb == FERRY_LB_MAGLEV ? flow_hash(ctx, k) : 0,
				     conn != NULL, &p);
		if (err)
			return err;
	}
	be = bpf_map_lookup_elem(&ferry_be_v1, &p.id);
	/* A v4 VIP reached through a dual-stack socket only has v4 backends,
	 * and the registry keeps families apart: nothing else to translate. */
	if (!be || be->family != k->family) {
		if (p.tracked)
			circuit_unreserve(p.id, p.gen, p.probe);
		return -FERRY_ENOENT;
	}
	*recorded = again;
	if (again)
		goto out;
	if (conn && p.tracked) {
		conn_track(conn, k, p.id, p.gen, be, p.probe, p.now);
		*recorded = true;
	} else if (connect) {
		circuit_opened(p.id);
	}
out:
	*out = *be;
	*out_id = p.id;
	return 0;
}

static __always_inline int sock4_xlate(struct bpf_sock_addr *ctx, bool connect)
{
	struct ferry_svc_key k;
	struct ferry_backend be;
	bool recorded = false;
	__u32 id;
	int err;

	key_from_v4(&k, ctx->user_ip4, ctx->user_port, ctx_proto(ctx));
	err = sock_lb_pick(ctx, &k, connect, &be, &id, &recorded);
	if (err)
		return err;
	ctx->user_ip4 = be.addr[0];
	ctx->user_port = be.port;
	if (!recorded)
		revnat_store(ctx, &k, &be, id);
	return 0;
}

static __always_inline int sock6_xlate(struct bpf_sock_addr *ctx, bool connect)
{
	struct ferry_svc_key k;
	struct ferry_backend be;
	bool recorded = false;
	__u32 ip6[4], id;
	int err;

	ip6[0] = ctx->user_ip6[0];
	ip6[1] = ctx->user_ip6[1];
	ip6[2] = ctx->user_ip6[2];
	ip6[3] = ctx->user_ip6[3];
	key_from_v6(&k, ip6, ctx->user_port, ctx_proto(ctx));
	err = sock_lb_pick(ctx, &k, connect, &be, &id, &recorded);
	if (err)
		return err;
	if (be.family == AF_INET) {
		/* v4 VIP through a dual-stack socket: answer in v4-mapped form. */
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = be.addr[0];
	} else {
		ctx->user_ip6[0] = be.addr[0];
		ctx->user_ip6[1] = be.addr[1];
		ctx->user_ip6[2] = be.addr[2];
		ctx->user_ip6[3] = be.addr[3];
	}
	ctx->user_port = be.port;
	if (!recorded)
		revnat_store(ctx, &k, &be, id);
	return 0;
}

static __always_inline int verdict(int err, __u32 hit, __u32 miss, __u32 refused)
{
	if (err == -FERRY_ENODATA) {
		stat_inc(FERRY_STAT_CONNECT_EMPTY);
		return SYS_PROCEED;
	}
	if (!err) {
		stat_inc(hit);
		return SYS_PROCEED;
	}
	if (err == -FERRY_ECONNREFUSED) {
		stat_inc(refused);
		bpf_set_retval(-FERRY_ECONNREFUSED);
		return SYS_REJECT;
	}
	if (err == -FERRY_EBUSY) {
		/* Every candidate at max_connections: EBUSY, which no TCP
		 * connect returns otherwise, so callers can tell it apart. */
		stat_inc(FERRY_STAT_MAX_CONN_REJECT);
		bpf_set_retval(-FERRY_EBUSY);
		return SYS_REJECT;
	}
	stat_inc(miss);
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int ferry_connect4(struct bpf_sock_addr *ctx)
{
	return verdict(sock4_xlate(ctx, true), FERRY_STAT_CONNECT_HIT,
		       FERRY_STAT_CONNECT_MISS, FERRY_STAT_CONNECT_NO_BACKEND);
}

SEC("cgroup/connect6")
int ferry_connect6(struct bpf_sock_addr *ctx)
{
	return verdict(sock6_xlate(ctx, true), FERRY_STAT_CONNECT_HIT,
		       FERRY_STAT_CONNECT_MISS, FERRY_STAT_CONNECT_NO_BACKEND);
}

SEC("cgroup/sendmsg4")
int ferry_sendmsg4(struct bpf_sock_addr *ctx)
{
	if (cfg_no_udp_sendmsg)
		return SYS_PROCEED;
	return verdict(sock4_xlate(ctx, false), FERRY_STAT_SENDMSG_HIT,
		       FERRY_STAT_SENDMSG_MISS, FERRY_STAT_SENDMSG_NO_BACKEND);
}

SEC("cgroup/sendmsg6")
int ferry_sendmsg6(struct bpf_sock_addr *ctx)
{
	if (cfg_no_udp_sendmsg)
		return SYS_PROCEED;
	return verdict(sock6_xlate(ctx, false), FERRY_STAT_SENDMSG_HIT,
		       FERRY_STAT_SENDMSG_MISS, FERRY_STAT_SENDMSG_NO_BACKEND);
}

/* Reverse: the peer address the application sees is the VIP it asked for.
 * A tracked TCP socket's record has it (circuit.bpf.h: conn_revnat), any
 * other socket's the ferry_rev_v1 entry its connect or sendmsg stored. */
static __always_inline int sock_revnat(struct bpf_sock_addr *ctx, bool v6)
{
	struct ferry_revnat_key rk = {};
	struct ferry_revnat *rv, from_conn;

	rk.cookie = bpf_get_socket_cookie(ctx);
	if (!v6) {
		rk.addr[0] = ctx->user_ip4;
		rk.family = AF_INET;
	} else {
		__u32 ip6[4] = { ctx->user_ip6[0], ctx->user_ip6[1],
				 ctx->user_ip6[2], ctx->user_ip6[3] };

		if (addr6_is_v4mapped(ip6)) {
			rk.addr[0] = ip6[3];
			rk.family = AF_INET;
		} else {
			__builtin_memcpy(rk.addr, ip6, sizeof(ip6));
			rk.family = AF_INET6;
		}
	}
	rk.port = (__u16)ctx->user_port;
	if (ctx->type == SOCK_STREAM && conn_revnat(&rk, &from_conn))
		rv = &from_conn;
	else
		rv = bpf_map_lookup_elem(&ferry_rev_v1, &rk);
	if (!rv) {
		stat_inc(FERRY_STAT_REVNAT_MISS);
		return SYS_PROCEED;
	}
	if (!v6) {
		ctx->user_ip4 = rv->addr[0];
	} else if (rv->family == AF_INET) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = rv->addr[0];
	} else {
		ctx->user_ip6[0] = rv->addr[0];
		ctx->user_ip6[1] = rv->addr[1];
		ctx->user_ip6[2] = rv->addr[2];
		ctx->user_ip6[3] = rv->addr[3];
	}
	ctx->user_port = rv->port;
	stat_inc(FERRY_STAT_REVNAT_HIT);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername4")
int ferry_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock_revnat(ctx, false);
}

SEC("cgroup/getpeername6")
int ferry_getpeername6(struct bpf_sock_addr *ctx)
{
	return sock_revnat(ctx, true);
}

SEC("cgroup/recvmsg4")
int ferry_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_revnat(ctx, false);
}

SEC("cgroup/recvmsg6")
int ferry_recvmsg6(struct bpf_sock_addr *ctx)
{
	return sock_revnat(ctx, true);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
