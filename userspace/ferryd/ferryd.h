/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ferryd's shared context: config, loaded objects, the event loop. */
#ifndef FERRYD_H
#define FERRYD_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/types.h>

#include "maps.h"
#include "registry.h"

struct sock_lb_bpf;
struct sock_ops_bpf;
struct health;
struct sockmap_bpf;
struct bpf_program;
struct ferryd;

typedef void (*ev_cb)(struct ferryd *d, int fd, uint32_t events, void *arg);

#define FERRYD_SM_MAX_EXCLUDE	64

struct ferryd_cfg {
	const char *registry;
	const char *bpffs;
	const char *cgroup;
	const char *state_dir;	/* the last good registry's copy (--state-dir) */
	bool	once;
	bool	log_json;
	int	verbose;
	__u32	max_services;
	__u32	max_backends;
	__u32	max_revnat;
	int	resync_s;	/* periodic resync; 0: off */
	bool	no_circuit;	/* no sockops: no connection tracking, no breaker */
	__u32	lc_exact_max;	/* least_conn: full scan up to this many backends */
	int	sockmap;	/* same-node acceleration: 1 on (default), 0 off */
	int	sm_nports, sm_nnets;
	__u16	sm_ports[FERRYD_SM_MAX_EXCLUDE];
	struct ferry_sm_net_key sm_nets[FERRYD_SM_MAX_EXCLUDE];
	const char *metrics_addr;	/* HOST:PORT, or "off" */
	__u32	metrics_max_series;	/* per-backend series cap */
	__u32	metrics_timeout_ms;	/* per-connection request deadline */
};

struct ferryd {
	struct ferryd_cfg cfg;
	struct ferry_maps maps;
	struct sock_lb_bpf *sock;
	struct sock_ops_bpf *ops;
	struct sockmap_bpf *smap;
	int	cgroup_fd;
	int	epfd;
	bool	stop;
	bool	synced;		/* the registry was applied at least once */
	/* Work that found the writers' lock busy runs again off this one-shot
	 * timer (-1 before the event loop runs: then the lock is waited for). */
	int	retry_fd;
	bool	retry_sync, retry_decap;
	__u64	lock_busy_ns;	/* CLOCK_MONOTONIC since a sync first found it busy; 0: free */
	bool	lock_busy_told;	/* that wait was reported */
	struct ferry_status status;
	/* The last good registry; only health probing reads it. Until a first
	 * good sync it may be the copy in cfg.state_dir (sync_fallback()),
	 * which is never applied to the maps. */
	struct registry reg;
	bool	state_warned;	/* saving that copy failed, and it was logged */
	struct health *health;
	struct metrics_srv *metrics;
};

/* Event loop: callbacks run on the daemon's one thread. */
int ev_add(struct ferryd *d, int fd, uint32_t events, ev_cb cb, void *arg);
void ev_del(struct ferryd *d, int fd);
/* The writers' lock: tried once from the event loop (-EAGAIN when busy),
 * waited for FERRYD_LOCK_WAIT_MS before it runs. */
int ferryd_lock(struct ferryd *d);
/* Run a registry sync and/or a decap sync again in FERRYD_LOCK_RETRY_MS. */
void ferryd_retry(struct ferryd *d, bool sync, bool decap);

/* loader.c: load, pin and attach every program; adopt pinned links. */
int loader_load(struct ferryd *d);
/* Unpin maps an earlier version pinned under other names (replaced). */
void loader_unpin_retired(const char *bpffs, const char *const *names, size_t n);
void loader_close(struct ferryd *d);
/* Attach prog to the cgroup, or swap it into the link pinned as name. */
int loader_attach_cgroup(struct ferryd *d, struct bpf_program *prog, const char *name);
/* Where links are pinned: <bpffs>/links/<name>. */
void loader_link_path(const struct ferryd *d, const char *name, char *buf, size_t len);
/*
 * The link pinned as links/<name> (its path into path): adopted, prog_fd
 * swapped in atomically, when ours(link, arg) says it is attached where it
 * should be (0); else unpinned and detached, or there was none (1: create
 * one and loader_link_pin() it).
 */
int loader_link_adopt(struct ferryd *d, const char *name, int prog_fd,
		      bool (*ours)(int link_fd, const void *arg), const void *arg, char *path,
		      size_t len);
/* Pin link fd at path and close fd (unpinned, the link goes). 0 or -errno. */
int loader_link_pin(int fd, const char *path);
/* Unpin and detach the link pinned as links/<name>, if there is one, and
 * log it at info level with why. 0 (also when none), or -errno. */
int loader_link_unpin(struct ferryd *d, const char *name, const char *why);

/* sockmap.c: same-node acceleration flags, policy maps, attachments. */
int sockmap_parse_port(struct ferryd_cfg *c, const char *s);
int sockmap_parse_cidr(struct ferryd_cfg *c, const char *s);
struct bpf_object_open_opts;
void sockmap_load(struct ferryd *d, struct bpf_object_open_opts *oo);

/* Size the shared maps of obj as sock_lb's (they are reused by name). */
struct bpf_object;
int loader_set_sizes(struct ferryd *d, struct bpf_object *obj);

/* xdp.c: the XDP load balancer (--xdp-*) and the backend decap (--decap-iface). */
enum { XDP_OPT_IFACE = 0x1000, XDP_OPT_DECAP, XDP_OPT_RING, XDP_OPT_FLOWS, XDP_OPT_GW,
       XDP_OPT_SRC, XDP_OPT_END };
#define XDP_LONG_OPTIONS \
	{ "xdp-iface", required_argument, NULL, XDP_OPT_IFACE }, \
	{ "decap-iface", required_argument, NULL, XDP_OPT_DECAP }, \
	{ "xdp-ring-size", required_argument, NULL, XDP_OPT_RING }, \
	{ "xdp-flows", required_argument, NULL, XDP_OPT_FLOWS }, \
	{ "xdp-gateway", required_argument, NULL, XDP_OPT_GW }, \
	{ "xdp-src", required_argument, NULL, XDP_OPT_SRC }
#define XDP_USAGE \
"  --xdp-iface IFACE     XDP load balancer for services with \"xdp\": true on IFACE\n" \
"                        (repeatable; native mode, generic as a fallback)\n" \
"  --decap-iface IFACE   strip the LB's IPIP/IPv6 tunnels arriving on IFACE that carry\n" \
"                        datagrams to XDP services' VIPs bound on the node (repeatable)\n" \
"  --xdp-ring-size N     maglev ring size, a prime 4099..1048573 (default 65537; same on\n" \
"                        every LB node)\n" \
"  --xdp-flows N         flow table entries, 4 per set (default 1048576)\n" \
"  --xdp-gateway MAC     next hop when bpf_fib_lookup has no answer\n" \
"  --xdp-src PREFIX/LEN  outer source prefix, v4 or v6 (default 172.16.0.0/16, 100::/64)\n"
int xdp_option(int opt, const char *arg);
int xdp_load(struct ferryd *d);
/* --xdp-iface or --decap-iface given: the load writes shared maps. */
bool xdp_configured(void);
/* The decap's address sets again from the node's addresses and the XDP
 * services in the maps (no-op without --decap-iface). */
void xdp_decap_sync(struct ferryd *d);
/* Warn when an --xdp-iface does not forward a family the XDP services'
 * backends use (from the maps); once per device and family until that
 * changes. After each sync; a no-op without --xdp-iface. */
void xdp_check_forwarding(struct ferryd *d);
/* The LB's VLAN devices (ferry_xvlan_v1) again from the node's links (no-op
 * without --xdp-iface). */
/* sync.c's last step: forwarding check; addresses and VLAN devices read
 * again where rtnetlink is not followed. */
void xdp_after_sync(struct ferryd *d);
void xdp_vlan_sync(struct ferryd *d);
void xdp_close(void);

/* sync.c: read the registry and make the maps equal to it; after each good
 * sync, save a copy to <state_dir>/FERRYD_STATE_REGISTRY (temp + rename). */
#define FERRYD_DEF_STATE_DIR	"/run/ferry"
#define FERRYD_STATE_REGISTRY	"registry"	/* + the pin dir, as a name, + .json */
int sync_registry(struct ferryd *d);
/* The first sync failed: probe the backends of the last good registry's
 * copy, if there is one (health checks only; never applied to the maps). */
void sync_fallback(struct ferryd *d);

/* health.c: active TCP/HTTP probes of backends, on the event loop; results
 * go to ferry_be_v1 .health. health_sync() re-reads the targets from d->reg
 * and the maps after every good sync (and after sync_fallback()). */
int health_start(struct ferryd *d);
void health_sync(struct ferryd *d);
void health_stop(struct ferryd *d);

/* metrics.c: the /metrics, /healthz, /readyz endpoint on the event loop. */
#define FERRYD_DEF_METRICS_ADDR		"127.0.0.1:9464"
#define FERRYD_DEF_METRICS_TIMEOUT_MS	5000
/* The writers' lock (maps_lock()) is never waited for on the event loop: a
 * stopped ferryctl (^Z mid-edit) must not freeze metrics, probes and events.
 * A sync or decap sync that finds it busy runs again FERRYD_LOCK_RETRY_MS
 * later; a sync reports a wait of FERRYD_LOCK_WAIT_MS; a health verdict is
 * written at a later probe. Before the loop (--once) a sync waits
 * FERRYD_LOCK_WAIT_MS at most; the load waits as long as it takes, saying so
 * every FERRYD_LOCK_WAIT_MS. */
#define FERRYD_LOCK_WAIT_MS		10000
#define FERRYD_LOCK_RETRY_MS		200
int metrics_start(struct ferryd *d);
void metrics_stop(struct ferryd *d);

#endif /* FERRYD_H */
