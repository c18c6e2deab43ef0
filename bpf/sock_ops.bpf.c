// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Per-backend connection accounting and the circuit breaker's inputs.
 *
 * The connect hooks (sock_lb.bpf.c) reserve a slot on the chosen backend
 * and record the socket in ferry_conn_v2 (by cookie). This sockops program,
 * on the same cgroup, follows each recorded socket:
 *
 *   TCP_CONNECT_CB          SYN leaves: ask for state and RTO callbacks
 *   ACTIVE_ESTABLISHED_CB   handshake done: success (closes a half-open
 *                           circuit when it was a probe)
 *   RTO_CB in SYN_SENT      cfg_syn_timeout_rtos SYN timeouts in a row:
 *                           failure (ETIMEDOUT), long before the kernel's
 *                           own SYN retries (~127 s) give up
 *   STATE_CB -> CLOSE       from SYN_SENT with sk_err set: failure (RST:
 *                           ECONNREFUSED, ICMP: EHOSTUNREACH..., timeout);
 *                           with sk_err 0 the application gave up: not the
 *                           backend's fault, only the slot is given back;
 *                           from an established state: the connection ends
 *
 * cgroup/sock_release runs when the application closes the socket: what is
 * still counted ends there (an established connection: the application is
 * done with it; a connect it gave up on; a slot whose SYN never left because
 * connect failed locally, e.g. no free port), and the record goes. So
 * "active" counts connections from connect() until TCP_CLOSE or close(),
 * whichever comes first.
 *
 * Sockets without a record (not a connect to a VIP, server sockets) cost
 * one map lookup on TCP_CONNECT_CB and nothing else: no callbacks are
 * enabled for them. Callback flags are OR-ed in, never replaced, so another
 * sockops program on the cgroup keeps the ones it asked for.
 */
#include "lib/common.bpf.h"
#include "lib/maps.bpf.h"
#include "lib/circuit.bpf.h"

/* Load-time tunable: SYN timeouts (RTOs) that count as a failed connect.
 * With the default initial RTO of 1 s, 2 means ~3 s without a SYN-ACK. */
const volatile __u32 cfg_syn_timeout_rtos = 2;

static __always_inline struct ferry_sk_conn *sockops_conn(struct bpf_sock_ops *skops)
{
	__u64 cookie = bpf_get_socket_cookie(skops);

	return bpf_map_lookup_elem(&ferry_conn_v2, &cookie);
}

/* sk_err of a full TCP socket: why its handshake ended. */
static __always_inline __u32 sockops_sk_err(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct tcp_sock *tp;

	if (!sk)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	return tp->inet_conn.icsk_inet.sk.sk_err;
}

SEC("sockops")
int ferry_sockops(struct bpf_sock_ops *skops)
{
	struct ferry_sk_conn *conn;
	__u32 op = skops->op;

	/* After TCP_CONNECT_CB, a socket is ours only if it carries our RTO
	 * callback flag (the same-node acceleration asks for state callbacks
	 * only): other sockets cost no map lookup. */
	if (op != BPF_SOCK_OPS_TCP_CONNECT_CB &&
	    (!(skops->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_RTO_CB_FLAG) ||
	     (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_RTO_CB &&
	      (op != BPF_SOCK_OPS_STATE_CB || skops->args[1] != BPF_TCP_CLOSE))))
		return 1;
	conn = sockops_conn(skops);
	if (!conn)
		return 1;

	switch (op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		if (conn_syn_sent(conn))
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						  BPF_SOCK_OPS_STATE_CB_FLAG |
						  BPF_SOCK_OPS_RTO_CB_FLAG);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		conn_established(conn, bpf_ktime_get_ns());
		break;
	case BPF_SOCK_OPS_RTO_CB:
		if (skops->state == BPF_TCP_SYN_SENT &&
		    skops->args[0] + 1 >= cfg_syn_timeout_rtos)
			conn_syn_timeout(conn, bpf_ktime_get_ns());
		break;
	case BPF_SOCK_OPS_STATE_CB:	/* to TCP_CLOSE */
		if (conn_tcp_closed(conn, skops->args[0] == BPF_TCP_SYN_SENT ? sockops_sk_err(skops) : 0,
				    skops->bytes_acked, skops->bytes_received, bpf_ktime_get_ns())) {
			__u64 cookie = bpf_get_socket_cookie(skops);

			bpf_map_delete_elem(&ferry_conn_v2, &cookie);
		}
		break;
	}
	return 1;
}

SEC("cgroup/sock_release")
int ferry_sock_release(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct ferry_sk_conn *conn;

	conn = bpf_map_lookup_elem(&ferry_conn_v2, &cookie);
	if (conn && conn_released(conn, bpf_ktime_get_ns()))
		bpf_map_delete_elem(&ferry_conn_v2, &cookie);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
