// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * One line per enum ferry_stat slot. Adding a counter: add the slot to abi.h
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
	  "Circuit breaker transitions of any backend, by the state entered."),
	S(CIRCUIT_HALF_OPEN, "circuit_half_open", "ferry_circuit_transitions_total", "state=\"half_open\"", NULL),
	S(CIRCUIT_CLOSED, "circuit_closed", "ferry_circuit_transitions_total", "state=\"closed\"", NULL),
	S(SOCKMAP_REDIRECT, "sockmap_redirect", "ferry_sockmap_redirects_total", "",
	  "Messages redirected socket-to-socket by sk_msg (local fast path)."),
	S(SOCKMAP_MISS, "sockmap_miss", "ferry_sockmap_fallbacks_total", "",
	  "Messages that took the normal stack because the peer socket was not in the sockhash."),
	S(SOCKMAP_ADD, "sockmap_add", "ferry_sockmap_sockets_added_total", "",
	  "Sockets registered in the sockhash."),
	S(SOCKMAP_SKIP, "sockmap_skip", "ferry_sockmap_sockets_skipped_total", "",
	  "Sockets not registered in the sockhash because policy excluded them."),
};
