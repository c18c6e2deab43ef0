// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * One line per enum ferry_stat (and enum ferry_xstat) slot. Adding a counter: add the slot to abi.h
 * and one line here; a new family needs its HELP text on its first line.
 * Families are emitted in the order of their first slot.
 */
#include <stddef.h>

#include "stat_names.h"

#define S(slot, name, family, labels, help) \
	[FERRY_STAT_##slot] = { name, family, labels, help }

const struct stat_desc ferry_stat_descs[FERRY_STAT_MAX] = {
	S(CONNECT_HIT, "connect_hit", "ferry_sock_connect_total", "outcome=\"hit\"",
	  "connect() calls seen by the socket LB, by outcome: hit (VIP rewritten to a backend), miss (not a VIP), no_backend (refused: no usable backend), empty (VIP without backends)."),
	S(CONNECT_MISS, "connect_miss", "ferry_sock_connect_total", "outcome=\"miss\"", NULL),
	S(CONNECT_NO_BACKEND, "connect_no_backend", "ferry_sock_connect_total", "outcome=\"no_backend\"", NULL),
	S(CONNECT_EMPTY, "connect_empty", "ferry_sock_connect_total", "outcome=\"empty\"", NULL),
	S(SENDMSG_HIT, "sendmsg_hit", "ferry_sock_sendmsg_total", "outcome=\"hit\"",
	  "Unconnected UDP sendmsg() calls seen by the socket LB, by outcome (hit, miss, no_backend)."),
	S(SENDMSG_MISS, "sendmsg_miss", "ferry_sock_sendmsg_total", "outcome=\"miss\"", NULL),
	S(SENDMSG_NO_BACKEND, "sendmsg_no_backend", "ferry_sock_sendmsg_total", "outcome=\"no_backend\"", NULL),
	S(REVNAT_HIT, "revnat_hit", "ferry_sock_revnat_total", "outcome=\"hit\"",
	  "Reverse translations (getpeername/recvmsg show the VIP), by outcome: hit, miss, update_failed (entry could not be stored)."),
	S(REVNAT_MISS, "revnat_miss", "ferry_sock_revnat_total", "outcome=\"miss\"", NULL),
	S(REVNAT_UPDATE_FAIL, "revnat_update_fail", "ferry_sock_revnat_total", "outcome=\"update_failed\"", NULL),
	S(SELECT_RETRY, "select_retry", "ferry_sock_select_retries_total", "",
	  "Backend picks that found the chosen backend unusable and looked further."),
	S(LOOKUP_FAIL, "lookup_fail", "ferry_sock_lookup_failures_total", "",
	  "Slot or backend entries missing during selection (the connect proceeded untouched)."),
	S(MAX_CONN_REJECT, "max_conn_reject", "ferry_sock_max_connections_rejects_total", "",
	  "Selections refused because every backend was at its max_connections."),
	S(CIRCUIT_OPENED, "circuit_opened", "ferry_circuit_transitions_total", "state=\"open\"",
	  "Circuit breaker transitions of any backend, by the state entered (state=\"open\": ejections)."),
	S(CIRCUIT_HALF_OPEN, "circuit_half_open", "ferry_circuit_transitions_total", "state=\"half_open\"", NULL),
	S(CIRCUIT_CLOSED, "circuit_closed", "ferry_circuit_transitions_total", "state=\"closed\"", NULL),
	S(CIRCUIT_EJECT_LIMITED, "circuit_eject_limited", "ferry_circuit_ejections_limited_total", "",
	  "Ejections held back because the service already had max_ejection_percent of its backends ejected."),
	S(SOCKMAP_REDIRECT, "sockmap_redirect", "ferry_sockmap_redirects_total", "",
	  "Messages redirected socket-to-socket by sk_msg (local fast path)."),
	S(SOCKMAP_MISS, "sockmap_miss", "ferry_sockmap_fallbacks_total", "reason=\"no_peer\"",
	  "Messages of registered sockets that took TCP, by reason: no_peer (peer not registered), tcp_used (this direction already used TCP, so order keeps it there), backpressure (the peer has queued what TCP would buffer)."),
	S(SOCKMAP_ADD, "sockmap_add", "ferry_sockmap_sockets_added_total", "",
	  "Sockets registered in the sockhash."),
	S(SOCKMAP_SKIP, "sockmap_skip", "ferry_sockmap_sockets_skipped_total", "",
	  "Sockets not registered in the sockhash because policy excluded them."),
	S(SOCKMAP_ADD_FAIL, "sockmap_add_fail", "ferry_sockmap_sockets_add_failed_total", "",
	  "Sockets of a local pair that could not be registered (sockhash full, or the tuple taken in another netns)."),
	S(SOCKMAP_BUSY, "sockmap_busy", "ferry_sockmap_fallbacks_total", "reason=\"tcp_used\"", NULL),
	S(SOCKMAP_PRESSURE, "sockmap_pressure", "ferry_sockmap_fallbacks_total", "reason=\"backpressure\"", NULL),
	S(SOCKMAP_BYTES, "sockmap_bytes", "ferry_sockmap_redirected_bytes_total", "",
	  "Bytes redirected socket-to-socket by sk_msg."),
};

#define X(slot, name, family, labels, help) \
	[FERRY_XSTAT_##slot] = { name, family, labels, help }

const struct stat_desc ferry_xstat_descs[FERRY_XSTAT_MAX] = {
	X(PASS_NOT_IP, "xdp_pass_not_ip", "ferry_xdp_pass_total", "reason=\"not_ip\"",
	  "Packets the XDP load balancer passed to the stack untouched, by reason."),
	X(PASS_NOT_VIP, "xdp_pass_not_vip", "ferry_xdp_pass_total", "reason=\"not_vip\"", NULL),
	X(PASS_FRAG, "xdp_pass_fragment", "ferry_xdp_pass_total", "reason=\"fragment\"", NULL),
	X(PASS_MALFORMED, "xdp_pass_malformed", "ferry_xdp_pass_total", "reason=\"malformed\"", NULL),
	X(PASS_ICMP, "xdp_pass_icmp", "ferry_xdp_pass_total", "reason=\"icmp\"", NULL),
	X(PASS_NO_RING, "xdp_pass_no_ring", "ferry_xdp_pass_total", "reason=\"no_ring\"", NULL),
	X(PASS_V6_EXT, "xdp_pass_ipv6_ext", "ferry_xdp_pass_total", "reason=\"ipv6_extension\"", NULL),
	X(LRU_HIT, "xdp_lru_hit", "ferry_xdp_flow_lookups_total", "result=\"hit\"",
	  "Flow table lookups of the XDP load balancer, by result: hit, miss (chosen from the ring again and recorded); other_cpu is unused and stays 0."),
	X(LRU_MISS, "xdp_lru_miss", "ferry_xdp_flow_lookups_total", "result=\"miss\"", NULL),
	X(LRU_OTHER_CPU, "xdp_lru_other_cpu", "ferry_xdp_flow_lookups_total", "result=\"other_cpu\"", NULL),
	X(SYN_NEW, "xdp_syn_new", "ferry_xdp_syn_new_flows_total", "",
	  "TCP SYNs the XDP load balancer placed fresh on the ring (a recorded backend is not taken)."),
	X(RING_RETRY, "xdp_ring_retry", "ferry_xdp_ring_retries_total", "",
	  "Ring entries skipped because their backend may not take new flows."),
	X(NH_LOOKUP, "xdp_nexthop_lookup", "ferry_xdp_nexthop_resolutions_total", "source=\"fib\"",
	  "Next-hop cache misses of the XDP load balancer, by how they were resolved: fib (bpf_fib_lookup), gateway (the configured gateway MAC)."),
	X(NH_GATEWAY, "xdp_nexthop_gateway", "ferry_xdp_nexthop_resolutions_total", "source=\"gateway\"", NULL),
	X(ICMP_FWD, "xdp_icmp_forwarded", "ferry_xdp_icmp_total", "kind=\"forwarded\"",
	  "ICMP handled by the XDP load balancer: forwarded (an error sent on to the flow's backend), too_big_answered (frag-needed / packet-too-big sent back)."),
	X(ICMP_TOO_BIG, "xdp_icmp_too_big", "ferry_xdp_icmp_total", "kind=\"too_big_answered\"", NULL),
	X(TX, "xdp_tx", "ferry_xdp_actions_total", "action=\"tx\"",
	  "Packets the XDP load balancer sent on to a backend, by XDP action: tx, redirect, local (the backend is this node: passed to its stack unencapsulated)."),
	X(REDIRECT, "xdp_redirect", "ferry_xdp_actions_total", "action=\"redirect\"", NULL),
	X(DROP_NO_BACKEND, "xdp_drop_no_backend", "ferry_xdp_drops_total", "reason=\"no_backend\"",
	  "Packets to an XDP VIP that were dropped, by reason."),
	X(DROP_MALFORMED, "xdp_drop_malformed", "ferry_xdp_drops_total", "reason=\"malformed\"", NULL),
	X(DROP_NO_ROUTE, "xdp_drop_no_route", "ferry_xdp_drops_total", "reason=\"no_route\"", NULL),
	X(DROP_TOO_BIG, "xdp_drop_too_big", "ferry_xdp_drops_total", "reason=\"too_big\"", NULL),
	X(DROP_ADJUST, "xdp_drop_adjust", "ferry_xdp_drops_total", "reason=\"adjust_failed\"", NULL),
	X(DECAP_OK, "xdp_decap_ok", "ferry_xdp_decap_total", "outcome=\"ok\"",
	  "Tunnel packets seen by the backend-side decap, by outcome: ok (stripped), not_ours (outer address not ours), malformed (dropped), not_vip (inner destination not an XDP VIP bound here; passed untouched), ce_not_ect (outer marked CE over a Not-ECT inner: dropped, RFC 6040), bad_outer (outer header the kernel would refuse: version, IPv4 checksum or header length, length past the frame; passed untouched)."),
	X(DECAP_NOT_OURS, "xdp_decap_not_ours", "ferry_xdp_decap_total", "outcome=\"not_ours\"", NULL),
	X(DECAP_MALFORMED, "xdp_decap_malformed", "ferry_xdp_decap_total", "outcome=\"malformed\"", NULL),
	X(VIP_SLOW, "xdp_vip_slow_lookup", "ferry_xdp_vip_slow_lookups_total", "",
	  "Packets whose VIP lookup the XDP VIP index could not answer (its set not built yet, or full), so the service hash map did."),
	X(RING_FALLBACK, "xdp_ring_fallback", "ferry_xdp_ring_fallbacks_total", "",
	  "New flows none of whose tried ring entries could take them, placed by the fallback (a scan of the service's backends, a walk on along the ring) instead of dropped."),
	X(DECAP_NOT_VIP, "xdp_decap_not_vip", "ferry_xdp_decap_total", "outcome=\"not_vip\"", NULL),
	X(LOCAL, "xdp_local", "ferry_xdp_actions_total", "action=\"local\"", NULL),
	X(DECAP_CE_NOT_ECT, "xdp_decap_ce_not_ect", "ferry_xdp_decap_total", "outcome=\"ce_not_ect\"", NULL),
	X(DECAP_BAD_OUTER, "xdp_decap_bad_outer", "ferry_xdp_decap_total", "outcome=\"bad_outer\"", NULL),
};
