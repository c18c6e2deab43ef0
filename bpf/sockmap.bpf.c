// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Same-node acceleration: when both ends of a TCP connection live on this
 * node (loopback, or two network namespaces), move data socket to socket
 * with sk_msg instead of through TCP/IP, netfilter and veth.
 *
 * ferry_sm_ops (sockops, attached to the managed cgroup next to the other
 * sockops programs) registers both ends of every connection between two
 * managed sockets in ferry_smap_v1, and their addresses in ferry_smsk_v1
 * (removed at close; the sockhash drops closed sockets by itself).
 * ferry_sm_msg (sk_msg, attached to the sockhash) runs on every sendmsg of a
 * registered socket and redirects the data to its peer's receive queue when
 * the rule in lib/sockmap.bpf.h allows it. Every other case returns SK_PASS:
 * the normal TCP path, never a drop.
 */
#include "lib/common.bpf.h"
#include "lib/maps.bpf.h"
#include "lib/sockmap.bpf.h"

static __always_inline int sm_ops_key(struct bpf_sock_ops *skops, struct ferry_sm_key *k)
{
	__u32 lip6[4] = {}, rip6[4] = {};
	int lo;

	if (skops->family == AF_INET6) {
		lip6[0] = skops->local_ip6[0];
		lip6[1] = skops->local_ip6[1];
		lip6[2] = skops->local_ip6[2];
		lip6[3] = skops->local_ip6[3];
		rip6[0] = skops->remote_ip6[0];
		rip6[1] = skops->remote_ip6[1];
		rip6[2] = skops->remote_ip6[2];
		rip6[3] = skops->remote_ip6[3];
	}
	lo = sm_key_build(k, skops->family, skops->local_ip4, skops->remote_ip4,
			  lip6, rip6, skops->local_port, skops->remote_port);
	if (lo < 0)
		return lo;
	if (lo)
		k->scope = bpf_get_netns_cookie(skops);
	return 0;
}

/* One end's address folded for the hints; false for a family we skip. */
static __always_inline bool sm_ops_fold(struct bpf_sock_ops *skops, bool remote, __u32 *a)
{
	__u32 ip6[4];

	if (skops->family == AF_INET) {
		*a = sm_fold4(remote ? skops->remote_ip4 : skops->local_ip4);
		return true;
	}
	if (skops->family != AF_INET6)
		return false;
	if (remote) {
		ip6[0] = skops->remote_ip6[0];
		ip6[1] = skops->remote_ip6[1];
		ip6[2] = skops->remote_ip6[2];
		ip6[3] = skops->remote_ip6[3];
	} else {
		ip6[0] = skops->local_ip6[0];
		ip6[1] = skops->local_ip6[1];
		ip6[2] = skops->local_ip6[2];
		ip6[3] = skops->local_ip6[3];
	}
	*a = sm_fold6(ip6);
	return true;
}

static __always_inline __u32 sm_ops_rport(struct bpf_sock_ops *skops)
{
	return (__u16)bpf_ntohl(skops->remote_port);
}

/* Whether the socket at addr still owns key k: open, with k's ports. An
 * entry whose socket closed without our STATE_CB (a program that cleared
 * the callback flags) must not keep a reused tuple from registering. */
static __always_inline bool sm_addr_owns(__u64 addr, const struct ferry_sm_key *k)
{
	struct tcp_sock *tp = bpf_rdonly_cast((void *)addr, bpf_core_type_id_kernel(struct tcp_sock));

	return tp->inet_conn.icsk_inet.sk.__sk_common.skc_state != SM_TCP_CLOSE &&
	       tp->inet_conn.icsk_inet.sk.__sk_common.skc_num == k->lport &&
	       tp->inet_conn.icsk_inet.sk.__sk_common.skc_dport == bpf_htons(k->rport);
}

/* Client side, before its SYN: its address is a managed local client's. */
static __always_inline void sm_client_seen(struct bpf_sock_ops *skops)
{
	__u32 a;

	if (sm_ops_fold(skops, false, &a))
		sm_hint_set(SM_HINT_CLIENT, sm_hint_bit(a, 0));
}

/* Server side, SYN received on a managed listener: remember the handshake
 * so the client knows its peer is a managed local socket. Only a client
 * address a managed client has used can be one; the exclusions are decided
 * here, once for both ends (the client registers only with this record).*/
static __always_inline void sm_syn_seen(struct bpf_sock_ops *skops)
{
	struct ferry_sm_key k;
	__u8 one = 1;
	__u32 a;

	if (!sm_ops_fold(skops, true, &a) || !sm_hint_test(SM_HINT_CLIENT, sm_hint_bit(a, 0)))
		return;
	if (!sm_cfg() || sm_ops_key(skops, &k))
		return;
	if (sm_excluded(&k)) {
		stat_add(FERRY_STAT_SOCKMAP_SKIP, 2);	/* both ends */
		return;
	}
	if (bpf_map_update_elem(&ferry_smpend_v1, &k, &one, BPF_ANY))
		return;
	if (sm_ops_fold(skops, false, &a))
		sm_hint_set(SM_HINT_SERVER, sm_hint_bit(a, k.lport));
}

/* Whether the peer can be a managed local socket, from the hints alone:
 * the client's peer a listener that recorded a handshake, the accepted
 * socket's peer a managed client. */
static __always_inline bool sm_peer_maybe_local(struct bpf_sock_ops *skops, bool active)
{
	__u32 a;

	if (!sm_ops_fold(skops, true, &a))
		return false;
	return active ? sm_hint_test(SM_HINT_SERVER, sm_hint_bit(a, sm_ops_rport(skops))) :
			sm_hint_test(SM_HINT_CLIENT, sm_hint_bit(a, 0));
}

static __always_inline void sm_register(struct bpf_sock_ops *skops, bool active)
{
	struct bpf_sock *sk = skops->sk;
	struct ferry_sm_key k, peer;
	__u64 addr;

	/* Most sockets end here: a peer elsewhere, or not managed. */
	if (!sk || !sm_peer_maybe_local(skops, active) || sm_ops_key(skops, &k))
		return;
	if (!active)	/* the handshake is done either way */
		bpf_map_delete_elem(&ferry_smpend_v1, &k);
	if (!sm_cfg())
		return;
	/* Only a pair of managed local sockets: the client needs the
	 * listener's record of this handshake (which it made only for a pair
	 * the exclusions allow), the accepted socket needs the registered
	 * client. */
	sm_key_peer(&peer, &k);
	if (active ? !bpf_map_lookup_elem(&ferry_smpend_v1, &peer) :
		     !bpf_map_lookup_elem(&ferry_smsk_v1, &peer))
		return;
	/* NOEXIST: a key already present belongs to a live socket of another
	 * namespace with the same addresses; never take its place. */
	addr = (__u64)sk;
	if (bpf_map_update_elem(&ferry_smsk_v1, &k, &addr, BPF_NOEXIST)) {
		__u64 *old = bpf_map_lookup_elem(&ferry_smsk_v1, &k);

		if (!old || sm_addr_owns(*old, &k) ||
		    bpf_map_update_elem(&ferry_smsk_v1, &k, &addr, BPF_EXIST)) {
			stat_inc(FERRY_STAT_SOCKMAP_ADD_FAIL);
			return;
		}
	}
	if (bpf_sock_hash_update(skops, &ferry_smap_v1, &k, BPF_NOEXIST)) {
		bpf_map_delete_elem(&ferry_smsk_v1, &k);
		stat_inc(FERRY_STAT_SOCKMAP_ADD_FAIL);
		return;
	}
	/* The one callback a registered socket needs: TCP_CLOSE, to remove its
	 * address. Other sockops programs set flags of their own: add ours. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	stat_inc(FERRY_STAT_SOCKMAP_ADD);
}

static __always_inline void sm_unregister(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct ferry_sm_key k;
	__u64 *addr;
	__u32 a;

	/* Other programs' STATE_CB runs us at every close: only a socket
	 * whose peer passed the hints at registration can be registered. */
	if (!sk || !sm_ops_fold(skops, true, &a))
		return;
	if (!sm_hint_test(SM_HINT_SERVER, sm_hint_bit(a, sm_ops_rport(skops))) &&
	    !sm_hint_test(SM_HINT_CLIENT, sm_hint_bit(a, 0)))
		return;
	if (sm_ops_key(skops, &k))
		return;
	addr = bpf_map_lookup_elem(&ferry_smsk_v1, &k);
	if (addr && *addr == (__u64)sk)
		bpf_map_delete_elem(&ferry_smsk_v1, &k);
}

/*
 * Every sockops callback of every socket in the cgroup runs every sockops
 * program attached there, ours included, whoever asked for the callback:
 * the ops that are not ours leave at the switch, and ours leave at the
 * hints unless the peer may be a managed local socket.
 */
SEC("sockops")
int ferry_sm_ops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TIMEOUT_INIT:
		if (skops->is_fullsock)		/* an active open, before its SYN */
			sm_client_seen(skops);
		else				/* a request socket: SYN at a listener */
			sm_syn_seen(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		sm_register(skops, true);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sm_register(skops, false);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == SM_TCP_CLOSE)
			sm_unregister(skops);
		break;
	}
	return 1;
}

/* Both ends' state; the peer through an untrusted view of its address. */
static __always_inline int sm_read_sides(struct tcp_sock *me, __u64 peer_addr,
					 const struct ferry_sm_key *peer, struct sm_side *s)
{
	struct tcp_sock *pt;

	pt = bpf_rdonly_cast((void *)peer_addr, bpf_core_type_id_kernel(struct tcp_sock));
	/* A recycled address is not our peer any more. */
	if (pt->inet_conn.icsk_inet.sk.__sk_common.skc_num != peer->lport ||
	    pt->inet_conn.icsk_inet.sk.__sk_common.skc_dport != bpf_htons(peer->rport))
		return -FERRY_ENOENT;
	s->bytes_sent = me->bytes_sent;
	s->write_seq = me->write_seq;
	s->snd_una = me->snd_una;
	s->state = me->inet_conn.icsk_inet.sk.__sk_common.skc_state;
	s->shutdown = me->inet_conn.icsk_inet.sk.sk_shutdown;
	s->copied_seq = pt->copied_seq;
	s->peer_state = pt->inet_conn.icsk_inet.sk.__sk_common.skc_state;
	s->peer_shutdown = pt->inet_conn.icsk_inet.sk.sk_shutdown;
	s->peer_rcvbuf = pt->inet_conn.icsk_inet.sk.sk_rcvbuf;
	s->peer_queued = pt->inet_conn.icsk_inet.sk.sk_backlog.rmem_alloc.counter;
	return 0;
}

SEC("sk_msg")
int ferry_sm_msg(struct sk_msg_md *msg)
{
	const struct ferry_sm_cfg *cfg = sm_cfg();
	__u32 lip6[4] = {}, rip6[4] = {};
	struct ferry_sm_key k, peer;
	struct tcp_sock *me;
	struct sm_side s;
	__u64 *paddr;
	int err;

	me = bpf_skc_to_tcp_sock(msg->sk);
	if (!cfg || !me)
		return SK_PASS;
	/* A direction that has used TCP stays there (see the ordering rule):
	 * answered first, as it is every message of a stream that fell back. */
	if (me->bytes_sent || me->write_seq != me->snd_una) {
		stat_inc(FERRY_STAT_SOCKMAP_BUSY);
		return SK_PASS;
	}
	if (msg->family == AF_INET6) {
		lip6[0] = msg->local_ip6[0];
		lip6[1] = msg->local_ip6[1];
		lip6[2] = msg->local_ip6[2];
		lip6[3] = msg->local_ip6[3];
		rip6[0] = msg->remote_ip6[0];
		rip6[1] = msg->remote_ip6[1];
		rip6[2] = msg->remote_ip6[2];
		rip6[3] = msg->remote_ip6[3];
	}
	err = sm_key_build(&k, msg->family, msg->local_ip4, msg->remote_ip4, lip6, rip6,
			   msg->local_port, msg->remote_port);
	if (err < 0)
		return SK_PASS;
	if (err)
		k.scope = bpf_get_netns_cookie(msg);
	sm_key_peer(&peer, &k);

	paddr = bpf_map_lookup_elem(&ferry_smsk_v1, &peer);
	if (!paddr) {
		stat_inc(FERRY_STAT_SOCKMAP_MISS);
		return SK_PASS;
	}
	err = sm_read_sides(me, *paddr, &peer, &s);
	s.msg_size = msg->size;
	if (!err)
		err = sm_may_redirect(&s);
	if (err) {
		stat_inc(err == -SM_ENOBUFS ? FERRY_STAT_SOCKMAP_PRESSURE :
			 err == -SM_EBUSY ? FERRY_STAT_SOCKMAP_BUSY : FERRY_STAT_SOCKMAP_MISS);
		return SK_PASS;
	}
	/* The peer may have closed since: then nothing is set, and SK_PASS
	 * sends over TCP, which answers as TCP would. */
	if (bpf_msg_redirect_hash(msg, &ferry_smap_v1, &peer, BPF_F_INGRESS) != SK_PASS) {
		stat_inc(FERRY_STAT_SOCKMAP_MISS);
		return SK_PASS;
	}
	stat_inc(FERRY_STAT_SOCKMAP_REDIRECT);
	stat_add(FERRY_STAT_SOCKMAP_BYTES, msg->size);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
