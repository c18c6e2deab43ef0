// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Same-node acceleration, userspace half: the daemon flags, the policy maps
 * (on/off, excluded ports and CIDRs) and the two attachments of sockmap.bpf.c.
 *
 * Attach order matters: a socket copies the sockhash's sk_msg program when it
 * is added, so the sk_msg program goes on the map first and the sockops
 * program that adds sockets goes on the cgroup last.
 *
 * The sk_msg program is attached with a sockmap bpf_link (kernel >= 6.10),
 * pinned as <bpffs>/links/sockmap_msg like the cgroup links: a restarted
 * daemon swaps its program in, `ferryctl teardown` unpins it. Older kernels
 * get bpf_prog_attach() to the map; that attachment lives as long as the
 * pinned map. Either way sockets already in the map keep the program they
 * were added with, and keep being served by it (and by the maps it holds)
 * until they close: a restart or a teardown never strands queued bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "addr.h"
#include "ferryd.h"
#include "log.h"
#include "sockmap.skel.h"

#ifndef BPF_LINK_TYPE_SOCKMAP
#define BPF_LINK_TYPE_SOCKMAP 14
#endif

#define SM_MSG_LINK	"sockmap_msg"
#define SM_OPS_LINK	"sockmap_ops"

int sockmap_parse_port(struct ferryd_cfg *c, const char *s)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > 65535) {
		fprintf(stderr, "ferryd: --sockmap-exclude-port: '%s' is not a port (1..65535)\n", s);
		return -EINVAL;
	}
	if (c->sm_nports == FERRYD_SM_MAX_EXCLUDE) {
		fprintf(stderr, "ferryd: --sockmap-exclude-port: more than %d ports\n",
			FERRYD_SM_MAX_EXCLUDE);
		return -E2BIG;
	}
	c->sm_ports[c->sm_nports++] = v;
	return 0;
}

/* "a.b.c.d/len", "v6/len" or a bare address; IPv4 as ::ffff:a.b.c.d/96+len. */
int sockmap_parse_cidr(struct ferryd_cfg *c, const char *s)
{
	struct ferry_sm_net_key *k;
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	struct faddr a;
	unsigned long len;
	__u8 *b;
	int i;

	if (c->sm_nnets == FERRYD_SM_MAX_EXCLUDE) {
		fprintf(stderr, "ferryd: --sockmap-exclude-cidr: more than %d CIDRs\n",
			FERRYD_SM_MAX_EXCLUDE);
		return -E2BIG;
	}
	snprintf(buf, sizeof(buf), "%s", s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	if (faddr_parse(buf, &a))
		goto bad;
	len = a.family == AF_INET ? 32 : 128;
	if (slash) {
		errno = 0;
		len = strtoul(slash, &end, 10);
		if (errno || *end || end == slash || len > (a.family == AF_INET ? 32u : 128u))
			goto bad;
	}
	k = &c->sm_nets[c->sm_nnets];
	memset(k, 0, sizeof(*k));
	if (a.family == AF_INET) {
		k->addr[2] = htonl(0x0000ffff);
		k->addr[3] = a.a[0];
		k->prefixlen = 96 + len;
	} else {
		memcpy(k->addr, a.a, sizeof(k->addr));
		k->prefixlen = len;
	}
	/* Clear the host bits so "10.1.2.3/8" and "10.0.0.0/8" are one entry. */
	b = (__u8 *)k->addr;
	for (i = 0; i < 16; i++) {
		int keep = (int)k->prefixlen - i * 8;

		if (keep <= 0)
			b[i] = 0;
		else if (keep < 8)
			b[i] &= (__u8)(0xff << (8 - keep));
	}
	c->sm_nnets++;
	return 0;
bad:
	fprintf(stderr, "ferryd: --sockmap-exclude-cidr: '%s' is not an IPv4 or IPv6 CIDR\n", s);
	return -EINVAL;
}

/* Make an exclusion map hold exactly keys[0..n) (map_set_sync(): the new
 * ones in before the stale ones go, so a port in both stays excluded). */
static int sync_set(int fd, const char *name, const void *keys, size_t ksz, int n)
{
	__u8 one = FERRY_SM_EXCLUDED;
	size_t added, removed;
	int err = map_set_sync(fd, keys, ksz, n, &one, sizeof(one), &added, &removed);

	if (err)
		log_warnx("sockmap: map %s: %s", name, strerror(-err));
	return err;
}

static int sm_configure(struct ferryd *d)
{
	struct sockmap_bpf *s = d->smap;
	struct ferry_sm_cfg cfg = {
		.enabled = d->cfg.sockmap,
	};
	__u32 zero = 0;
	int err;

	if ((err = sync_set(bpf_map__fd(s->maps.ferry_smport_v1), FERRY_MAP_SMPORT,
			    d->cfg.sm_ports, sizeof(d->cfg.sm_ports[0]), d->cfg.sm_nports)))
		return err;
	if ((err = sync_set(bpf_map__fd(s->maps.ferry_smnet_v1), FERRY_MAP_SMNET,
			    d->cfg.sm_nets, sizeof(d->cfg.sm_nets[0]), d->cfg.sm_nnets)))
		return err;
	if (bpf_map_update_elem(bpf_map__fd(s->maps.ferry_smcfg_v1), &zero, &cfg, BPF_ANY)) {
		err = -errno;
		log_warnx("sockmap: map %s: %s", FERRY_MAP_SMCFG, strerror(-err));
		return err;
	}
	return 0;
}

static __u32 map_id_of(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

/* The sockmap member of bpf_link_info's union (UAPI >= 6.10, newer than
 * the headers this builds against): map_id, attach_type. */
static bool link_is_ours(int link_fd, const void *arg)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info), *u;

	if (bpf_obj_get_info_by_fd(link_fd, &info, &len) || info.type != BPF_LINK_TYPE_SOCKMAP)
		return false;
	u = (__u32 *)&info.raw_tracepoint;
	return u[0] == *(const __u32 *)arg && u[1] == BPF_SK_MSG_VERDICT;
}

static int sm_attach_msg(struct ferryd *d)
{
	int prog = bpf_program__fd(d->smap->progs.ferry_sm_msg);
	int map = bpf_map__fd(d->smap->maps.ferry_smap_v1);
	__u32 map_id = map_id_of(map);
	char path[512];
	int fd, err;

	if (!loader_link_adopt(d, SM_MSG_LINK, prog, link_is_ours, &map_id, path, sizeof(path)))
		return 0;
	fd = bpf_link_create(prog, map, BPF_SK_MSG_VERDICT, NULL);
	if (fd < 0) {
		err = -errno;
		if (err != -EINVAL && err != -EOPNOTSUPP && err != -524 /* ENOTSUPP */)
			goto fail;
		/* No sockmap links: attach to the map itself (replaces). */
		if (bpf_prog_attach(prog, map, BPF_SK_MSG_VERDICT, 0)) {
			err = -errno;
			goto fail;
		}
		log_info("sockmap: kernel without sockmap links; sk_msg attached to map %s",
			 FERRY_MAP_SOCKMAP);
		return 0;
	}
	if ((err = loader_link_pin(fd, path)))
		return err;
	log_debug("link %s: attached and pinned", SM_MSG_LINK);
	return 0;
fail:
	log_warnx("sockmap: attach sk_msg to map %s: %s", FERRY_MAP_SOCKMAP, strerror(-err));
	return err;
}

static int sockmap_attach(struct ferryd *d)
{
	int err;

	if ((err = sm_configure(d)))
		return err;
	if ((err = sm_attach_msg(d)))
		return err;
	if ((err = loader_attach_cgroup(d, d->smap->progs.ferry_sm_ops, SM_OPS_LINK)))
		return err;
	log_info("sockmap: same-node acceleration on (%d excluded ports, %d excluded CIDRs)",
		 d->cfg.sm_nports, d->cfg.sm_nnets);
	return 0;
}

/*
 * Acceleration off (--sockmap off, or a load that failed): nothing loaded,
 * nothing attached, so nothing runs per socket. An earlier run's links are
 * detached and unpinned (as `ferryctl teardown` does), and its pinned config
 * switched off, so sockets it registered, which keep their sk_msg program,
 * send over TCP from their next message on. Its socket addresses go too:
 * with no sockops program their close is never seen, and an address left in
 * ferry_smsk_v1 would make a later connection reusing the 4-tuple look
 * registered once acceleration is back.
 */
static void sockmap_off(struct ferryd *d, const char *why)
{
	struct ferry_sm_cfg cfg = {};
	char path[512];
	__u32 zero = 0;
	int fd, err;

	loader_link_unpin(d, SM_OPS_LINK, why);
	loader_link_unpin(d, SM_MSG_LINK, why);
	snprintf(path, sizeof(path), "%s/%s", d->cfg.bpffs, FERRY_MAP_SMCFG);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		if (!bpf_map_lookup_elem(fd, &zero, &cfg) && cfg.enabled) {
			cfg.enabled = 0;
			if (bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY))
				log_warn("sockmap: map %s: switch off", FERRY_MAP_SMCFG);
		}
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/%s", d->cfg.bpffs, FERRY_MAP_SMSK);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		size_t added, removed;

		if ((err = map_set_sync(fd, NULL, sizeof(struct ferry_sm_key), 0, NULL,
					sizeof(__u64), &added, &removed)))
			log_warnx("sockmap: map %s: clear: %s", FERRY_MAP_SMSK, strerror(-err));
		close(fd);
	}
	log_info("sockmap: same-node acceleration off (%s)", why);
}

/* Same-node acceleration is an optimisation: without it (old kernel, no
 * sockmap) the data path stays correct, so a failure is a warning. */
void sockmap_load(struct ferryd *d, struct bpf_object_open_opts *oo)
{
	int err;

	if (!d->cfg.sockmap) {
		sockmap_off(d, "--sockmap off");
		return;
	}
	d->smap = sockmap_bpf__open_opts(oo);
	err = d->smap ? loader_set_sizes(d, d->smap->obj) : -errno;
	if (!err)
		err = sockmap_bpf__load(d->smap);
	if (!err)
		err = sockmap_attach(d);
	if (err) {
		log_warnx("sockmap: same-node acceleration unavailable: %s", strerror(-err));
		sockmap_bpf__destroy(d->smap);
		d->smap = NULL;
		/* Not an earlier run's programs either: they would go on with
		 * its exclusions, not the ones this run was given. */
		sockmap_off(d, "it did not load");
	}
}
