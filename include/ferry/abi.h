/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ABI between ferry's BPF programs and userspace: map key/value layouts,
 * enums and limits. One definition, included by bpf/ (after vmlinux.h) and by
 * userspace (after <linux/types.h>). Plain __u32/__be32 types only.
 *
 * Every map is pinned by name under one bpffs directory. A map's name carries
 * its layout version (ferry_svc_v1); bump it when a layout below changes, so a
 * new daemon never reinterprets an old pinned map.
 */
#ifndef FERRY_ABI_H
#define FERRY_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Map sizes: load-time tunables; these are the defaults. */
#define FERRY_DEF_MAX_SERVICES	65536
#define FERRY_DEF_MAX_BACKENDS	262144
#define FERRY_DEF_MAX_REVNAT	262144
/* Backends in one service; bounds every in-kernel scan of a service. */
#define FERRY_MAX_SVC_BACKENDS	4096
/* Size of the per-service maglev lookup table used by the socket LB (prime). */
#define FERRY_SOCK_MAGLEV_M	16381
#define FERRY_MAX_WEIGHT	65535
#define FERRY_NAME_LEN		64
#define FERRY_ERR_LEN		256

/* Pinned map names (also the BPF map names: at most 15 characters). */
#define FERRY_MAP_SVC		"ferry_svc_v1"
#define FERRY_MAP_SLOT		"ferry_slot_v1"
#define FERRY_MAP_BACKEND	"ferry_be_v1"
#define FERRY_MAP_MAGLEV	"ferry_mag_v1"
#define FERRY_MAP_REVNAT	"ferry_rev_v1"
#define FERRY_MAP_STATS		"ferry_stats_v1"
#define FERRY_MAP_BESTAT	"ferry_bestat_v2"
#define FERRY_MAP_STATUS	"ferry_status_v1"
#define FERRY_MAP_SVCNAME	"ferry_name_v1"
#define FERRY_MAP_SVCEJ		"ferry_svcej_v1"
#define FERRY_MAP_CONN		"ferry_conn_v2"
/* Same-node acceleration (sockmap.bpf.c; docs/sockmap.md). */
#define FERRY_MAP_SOCKMAP	"ferry_smap_v1"		/* SOCKHASH of local sockets */
#define FERRY_MAP_SMCFG		"ferry_smcfg_v1"	/* struct ferry_sm_cfg, one entry */
#define FERRY_MAP_SMPORT	"ferry_smport_v1"	/* excluded ports */
#define FERRY_MAP_SMNET		"ferry_smnet_v1"	/* excluded CIDRs (LPM) */
#define FERRY_MAP_SMSK		"ferry_smsk_v1"		/* key -> socket address (kernel-only) */
#define FERRY_MAP_SMPEND	"ferry_smpend_v1"	/* handshakes at local listeners (kernel-only) */
#define FERRY_MAP_SMHINT	"ferry_smhint_v1"	/* may-be-local bitmaps (kernel-only) */

enum ferry_lb {
	FERRY_LB_ROUND_ROBIN	= 0,
	FERRY_LB_RANDOM		= 1,
	FERRY_LB_WEIGHTED	= 2,
	FERRY_LB_MAGLEV		= 3,
	FERRY_LB_LEAST_CONN	= 4,
	FERRY_LB_MAX,
};

/* Administrative state of a backend (set by the registry or ferryctl). */
enum ferry_be_state {
	FERRY_BE_ACTIVE		= 0,
	FERRY_BE_DRAINING	= 1,	/* keeps its connections, gets no new ones */
	FERRY_BE_QUARANTINED	= 2,	/* ejected by hand */
	FERRY_BE_STATE_MAX,
};

/* Health as probed by ferryd. UNKNOWN (never probed) counts as healthy. */
enum ferry_health {
	FERRY_HEALTH_UNKNOWN	= 0,
	FERRY_HEALTH_HEALTHY	= 1,
	FERRY_HEALTH_DEGRADED	= 2,
	FERRY_HEALTH_UNHEALTHY	= 3,
};

/* Circuit breaker state, kept by the kernel in struct ferry_bestat. */
enum ferry_circuit {
	FERRY_CIRCUIT_CLOSED	= 0,
	FERRY_CIRCUIT_OPEN	= 1,
	FERRY_CIRCUIT_HALF_OPEN	= 2,
	FERRY_CIRCUIT_OPENING	= 3,	/* transient: an ejection is being written */
};

/* ferry_svc.flags */
#define FERRY_SVC_F_REGISTRY	(1U << 0)	/* owned by the registry file */
#define FERRY_SVC_F_MANUAL	(1U << 1)	/* created by ferryctl */
#define FERRY_SVC_F_XDP		(1U << 2)	/* reachable from outside via XDP */

/*
 * Service key: (VIP, port, protocol). IPv4 addresses sit in addr[0] with
 * addr[1..3] zero; family tells which. Port in network byte order.
 */
struct ferry_svc_key {
	__u32	addr[4];	/* network byte order */
	__u16	port;		/* network byte order */
	__u8	proto;		/* IPPROTO_TCP / IPPROTO_UDP */
	__u8	family;		/* AF_INET / AF_INET6 */
};

/* Outlier detection config of a service (Envoy-style); 0 = default. */
struct ferry_circuit_cfg {
	__u16	consecutive_failures;	/* 0: circuit breaking off */
	__u16	half_open_probes;
	__u32	base_ejection_ms;
	__u32	max_ejection_ms;
	__u32	max_connections;	/* per backend; 0: unlimited */
	__u8	max_ejection_percent;
	__u8	pad[3];
};

/* Service value. Backends live in ferry_slot_v1 at (id, 0..count-1). */
struct ferry_svc {
	__u32	id;		/* 1..max_services */
	__u32	count;		/* backend slots in use */
	__u32	weight_sum;	/* weighted policy: sum of usable weights; else 0 */
	__u32	rr;		/* round robin cursor (atomically bumped) */
	__u8	lb;		/* enum ferry_lb */
	__u8	flags;		/* FERRY_SVC_F_* */
	__u16	pad;
	struct ferry_circuit_cfg circuit;
};

struct ferry_slot_key {
	__u32	svc_id;
	__u32	slot;
};

struct ferry_slot {
	__u32	backend_id;
	__u32	cum_weight;	/* weighted policy: sum of usable weights of slots 0..slot; else 0 */
};

/* Backend of one service; id is unique per (service, address, port). */
struct ferry_backend {
	__u32	addr[4];	/* network byte order */
	__u16	port;		/* network byte order */
	__u8	family;
	__u8	state;		/* enum ferry_be_state */
	__u16	weight;		/* 0: no new connections */
	__u8	health;		/* enum ferry_health, written by ferryd */
	__u8	pad;
	__u32	svc_id;
};

/*
 * Per-backend runtime counters and circuit state, written by the kernel
 * (sockops + connect hooks) with atomic operations; userspace only reads
 * them, and deletes them when a backend goes or its id is handed out anew.
 * The kernel creates an entry on the id's first connect, with a random
 * non-zero gen; a tracked connection records the gen it was counted on
 * (ferry_sk_conn.gen) and counts nothing on an entry of another gen (its
 * backend's counters are gone, the id may have a new owner). TCP only: UDP
 * "connects" count in opened and nothing else. v2 added gen.
 */
struct ferry_bestat {
	__u64	active;		/* TCP connects in progress + established, not closed */
	__u64	opened;		/* connects issued to this backend */
	__u64	success;	/* handshakes completed */
	__u64	failed;		/* handshakes failed (RST, timeout, unreachable) */
	__u64	consecutive;	/* failures since the last success */
	__u64	ejections;	/* times opened since the backend last stayed CLOSED for
				 * max_ejection_ms: an ejection lasts this x base_ejection_ms */
	__u64	open_until_ns;	/* bpf_ktime_get_ns() at which OPEN ends */
	__u64	last_change_ns;
	__u32	circuit;	/* enum ferry_circuit */
	__u32	half_open_inflight;
	__u64	bytes_sent;
	__u64	bytes_received;
	__u32	gen;		/* random, set by the kernel when it creates the entry: never 0 there */
	__u32	pad;
};

/*
 * Per-service runtime state of the circuit breaker: ferry_svcej_v1[svc id]
 * (an array). ejected counts backends whose circuit is not CLOSED, for
 * max_ejection_percent; the kernel recounts it from the backends (at most
 * every FERRY_RECOUNT_MS) when it would hold an ejection back, so a backend
 * removed while ejected does not leak a count.
 */
struct ferry_svc_rt {
	__u32	ejected;
	__u32	pad;
	__u64	recount_ns;
};

/*
 * Per-socket tracking, kernel-only: ferry_conn_v2, socket cookie -> record,
 * from the connect hook until the socket is released (or, earlier, its
 * connection reaches TCP_CLOSE; the record then stays until the release).
 * It also answers getpeername() for tracked TCP sockets (the VIP is svc,
 * the peer the kernel sees is be_addr/be_port), so they need no
 * ferry_rev_v1 entry. v2 added be_addr..be_family; gen took the place of a
 * pad field, so records written before it hold gen 0, which no counter
 * entry the kernel creates has: they count nothing.
 */
enum ferry_conn_phase {
	FERRY_CONN_NONE		= 0,
	FERRY_CONN_RESERVED	= 1,	/* connect hook counted it; no SYN yet */
	FERRY_CONN_CONNECTING	= 2,	/* SYN sent */
	FERRY_CONN_ESTABLISHED	= 3,
	FERRY_CONN_DONE		= 4,	/* counted out */
};

#define FERRY_CONN_F_PROBE	(1U << 0)	/* holds a half-open probe slot */
#define FERRY_CONN_F_DECIDED	(1U << 1)	/* success/failure already counted */
#define FERRY_CONN_F_SYN	(1U << 2)	/* SYN sent: a TCP_CLOSE callback will come */
#define FERRY_CONN_F_ESTABLISHED (1U << 3)	/* the handshake completed */
#define FERRY_CONN_F_RELEASED	(1U << 4)	/* the application closed the socket */
#define FERRY_CONN_F_TCP_CLOSED	(1U << 5)	/* the connection reached TCP_CLOSE */

struct ferry_sk_conn {
	struct ferry_svc_key svc;
	__u32	backend_id;
	__u32	phase;		/* enum ferry_conn_phase */
	__u32	flags;		/* FERRY_CONN_F_* */
	__u32	gen;		/* ferry_bestat.gen of backend_id's entry at connect(); 0: none */
	__u64	start_ns;	/* bpf_ktime_get_ns() at connect() */
	__u32	be_addr[4];	/* the backend the connect went to */
	__u16	be_port;	/* network order */
	__u8	be_family;
	__u8	pad2;
};

/* Reverse translation: which VIP a socket connected to a backend asked for. */
struct ferry_revnat_key {
	__u64	cookie;		/* socket cookie */
	__u32	addr[4];	/* backend address */
	__u16	port;		/* backend port, network order */
	__u8	family;
	__u8	pad[5];
};

struct ferry_revnat {
	__u32	addr[4];	/* VIP */
	__u16	port;		/* VIP port, network order */
	__u8	family;
	__u8	pad;
	__u32	backend_id;
};

/* Per-CPU outcome counters: ferry_stats_v1[FERRY_STAT_*]. */
enum ferry_stat {
	FERRY_STAT_CONNECT_HIT = 0,	/* connect to a VIP rewritten */
	FERRY_STAT_CONNECT_MISS,	/* not a VIP: untouched */
	FERRY_STAT_CONNECT_NO_BACKEND,	/* VIP with backends, none usable: refused */
	FERRY_STAT_CONNECT_EMPTY,	/* VIP without backends (connect or sendmsg): untouched */
	FERRY_STAT_SENDMSG_HIT,
	FERRY_STAT_SENDMSG_MISS,
	FERRY_STAT_SENDMSG_NO_BACKEND,
	FERRY_STAT_REVNAT_HIT,		/* getpeername/recvmsg showed the VIP */
	FERRY_STAT_REVNAT_MISS,
	FERRY_STAT_REVNAT_UPDATE_FAIL,	/* reverse entry could not be stored */
	FERRY_STAT_SELECT_RETRY,	/* picked backend unusable, looked further */
	FERRY_STAT_LOOKUP_FAIL,		/* a slot or backend entry was missing */
	FERRY_STAT_MAX_CONN_REJECT,	/* all backends at max_connections */
	FERRY_STAT_CIRCUIT_OPENED,
	FERRY_STAT_CIRCUIT_HALF_OPEN,
	FERRY_STAT_CIRCUIT_CLOSED,
	FERRY_STAT_SOCKMAP_REDIRECT,	/* sk_msg redirected to the peer */
	FERRY_STAT_SOCKMAP_MISS,	/* peer not in the sockhash: normal path */
	FERRY_STAT_SOCKMAP_ADD,		/* socket registered */
	FERRY_STAT_SOCKMAP_SKIP,	/* excluded by policy */
	FERRY_STAT_CIRCUIT_EJECT_LIMITED, /* ejection held back by max_ejection_percent */
	FERRY_STAT_SOCKMAP_ADD_FAIL,	/* sockhash full or tuple taken: not accelerated */
	FERRY_STAT_SOCKMAP_BUSY,	/* this direction already used TCP (order): TCP */
	FERRY_STAT_SOCKMAP_PRESSURE,	/* peer's queue at its buffer limit: TCP (backpressure) */
	FERRY_STAT_SOCKMAP_BYTES,	/* bytes redirected (a byte count, not events) */
	FERRY_STAT_MAX = 64,
};

/*
 * Daemon status, one entry in ferry_status_v1. ferryd writes it after every
 * registry sync; ferryctl reads it with or without a running daemon.
 */
struct ferry_status {
	__u64	last_sync_ns;		/* CLOCK_REALTIME */
	__u64	last_ok_ns;
	__u64	last_sync_dur_ns;
	__u64	syncs;
	__u64	sync_errors;
	__u32	daemon_pid;
	__u32	services;
	__u32	backends;
	__u32	last_ok;		/* 1: last sync applied */
	char	registry[FERRY_ERR_LEN];
	char	error[FERRY_ERR_LEN];	/* last error, "" if none */
};

/* Service names (for humans and metrics): svc_id -> name. */
struct ferry_svc_name {
	char	name[FERRY_NAME_LEN];
};

/*
 * Same-node acceleration. Both ends of every TCP connection between two
 * sockets of the managed cgroup on this node are stored in ferry_smap_v1,
 * each under the key of its own view of the connection; a sender builds its
 * peer's key by swapping the ends. IPv4 and v4-mapped
 * IPv6 use family AF_INET with the address in local[0]/remote[0]. Ports in
 * host order. scope is the netns cookie when either end is a loopback address
 * (such a pair never spans namespaces, and every namespace has its own
 * 127.0.0.1), 0 otherwise.
 */
struct ferry_sm_key {
	__u32	local[4];	/* network byte order */
	__u32	remote[4];	/* network byte order */
	__u64	scope;
	__u16	lport;		/* host byte order */
	__u16	rport;		/* host byte order */
	__u8	family;
	__u8	pad[3];
};

#define FERRY_DEF_SOCKMAP_MAX	131072	/* sockets (two per local connection) */

/* ferry_smcfg_v1[0], written by ferryd from its flags. */
struct ferry_sm_cfg {
	__u32	enabled;	/* 0: register nothing new, redirect nothing */
	__u32	flags;		/* reserved, 0 */
	__u32	pad[2];
};

/* ferry_smport_v1: port (host order) -> FERRY_SM_EXCLUDED. */
#define FERRY_SM_EXCLUDED	1

/* ferry_smnet_v1: excluded CIDRs. IPv4 as ::ffff:a.b.c.d (prefixlen + 96). */
struct ferry_sm_net_key {
	__u32	prefixlen;
	__u32	addr[4];	/* network byte order */
};

#endif /* FERRY_ABI_H */
