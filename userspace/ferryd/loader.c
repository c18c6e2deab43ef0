// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Load ferry's BPF objects with their maps pinned by name under --bpffs,
 * and attach programs through pinned bpf_links. A restarted ferryd finds the
 * pinned maps (libbpf reuses them) and the pinned links, and swaps its fresh
 * programs into those links with one atomic update: the data path never has
 * a moment without a program.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ferry/xdp.h>

#include "ferryd.h"
#include "log.h"
#include "reconcile.h"
#include "sock_lb.skel.h"
#include "sock_ops.skel.h"
#include "sockmap.skel.h"

void loader_link_path(const struct ferryd *d, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/links/%s", d->cfg.bpffs, name);
}

static __u64 cgroup_id_of_fd(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : st.st_ino;
}

int loader_link_adopt(struct ferryd *d, const char *name, int prog_fd,
		      bool (*ours)(int link_fd, const void *arg), const void *arg, char *path,
		      size_t len)
{
	int fd;

	loader_link_path(d, name, path, len);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 1;
	if (ours(fd, arg) && !bpf_link_update(fd, prog_fd, NULL)) {
		log_debug("link %s: adopted, program replaced in place", name);
		close(fd);
		return 0;
	}
	log_warnx("link %s: pinned link is stale or attached elsewhere; replacing it", name);
	unlink(path);
	bpf_link_detach(fd);
	close(fd);
	return 1;
}

int loader_link_pin(int fd, const char *path)
{
	int err = 0;

	if (bpf_obj_pin(fd, path)) {
		err = -errno;
		log_warnx("pin link %s: %s", path, strerror(-err));
	}
	close(fd);	/* unpinned, this detaches it */
	return err;
}

static bool on_cgroup(int link_fd, const void *arg)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	return !bpf_obj_get_info_by_fd(link_fd, &info, &len) && info.type == BPF_LINK_TYPE_CGROUP &&
	       info.cgroup.cgroup_id == *(const __u64 *)arg;
}

int loader_attach_cgroup(struct ferryd *d, struct bpf_program *prog, const char *name)
{
	__u64 cgid = cgroup_id_of_fd(d->cgroup_fd);
	int pfd = bpf_program__fd(prog), fd, err;
	char path[512];

	if (!(err = loader_link_adopt(d, name, pfd, on_cgroup, &cgid, path, sizeof(path))))
		return 0;
	fd = bpf_link_create(pfd, d->cgroup_fd, bpf_program__expected_attach_type(prog), NULL);
	if (fd < 0) {
		err = -errno;
		log_warnx("attach %s to cgroup %s: %s", name, d->cfg.cgroup, strerror(-err));
		return err;
	}
	if ((err = loader_link_pin(fd, path)))
		return err;
	log_debug("link %s: attached and pinned", name);
	return 0;
}

static int set_sizes(struct ferryd *d, struct bpf_object *obj)
{
	struct { const char *name; __u32 size; } t[] = {
		{ FERRY_MAP_SVC, d->cfg.max_services },
		{ FERRY_MAP_SVCNAME, d->cfg.max_services },
		{ FERRY_MAP_MAGLEV, d->cfg.max_services },
		{ FERRY_MAP_SLOT, d->cfg.max_backends },
		{ FERRY_MAP_BACKEND, d->cfg.max_backends },
		{ FERRY_MAP_BESTAT, d->cfg.max_backends },
		{ FERRY_MAP_SVCEJ, d->cfg.max_services + 1 },
		{ FERRY_MAP_CONN, d->cfg.max_revnat },
		{ FERRY_MAP_REVNAT, d->cfg.max_revnat },
		{ FERRY_MAP_XDVIP, d->cfg.max_services },
		{ FERRY_MAP_XDPAIR, d->cfg.max_services },
	};
	size_t i;
	int err;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(obj, t[i].name);

		if (m && (err = bpf_map__set_max_entries(m, t[i].size)))
			return err;
	}
	return 0;
}

int loader_link_unpin(struct ferryd *d, const char *name, const char *why)
{
	struct bpf_link *link;
	char path[512];
	int err;

	loader_link_path(d, name, path, sizeof(path));
	if (access(path, F_OK))
		return 0;
	if (!(link = bpf_link__open(path))) {
		err = -errno;
		log_warnx("link %s: cannot open %s to detach it (%s): %s", name, path, why,
			  strerror(-err));
		return err;
	}
	if ((err = bpf_link__unpin(link)))
		log_warnx("link %s: unpinning %s (%s): %s", name, path, why, strerror(-err));
	/* Detached even if the pin stays: whoever holds it holds a dead link. */
	bpf_link_detach(bpf_link__fd(link));
	bpf_link__destroy(link);
	if (!err)
		log_info("link %s: detached and unpinned (%s)", name, why);
	return err;
}

/*
 * Connection tracking and the circuit breaker (sock_ops.bpf.c): the sockops
 * program and cgroup/sock_release on the same cgroup. --no-circuit leaves
 * them out (and detaches what an earlier run attached).
 */
static int load_sock_ops(struct ferryd *d, struct bpf_object_open_opts *oo)
{
	int err;

	if (d->cfg.no_circuit) {
		loader_link_unpin(d, "sock_ops", "--no-circuit");
		loader_link_unpin(d, "sock_release", "--no-circuit");
		return 0;
	}
	d->ops = sock_ops_bpf__open_opts(oo);
	if (!d->ops) {
		err = -errno;
		log_warnx("open sock_ops: %s", strerror(-err));
		return err;
	}
	if ((err = set_sizes(d, d->ops->obj)))
		return err;
	if ((err = sock_ops_bpf__load(d->ops))) {
		log_warnx("load sock_ops: %s (--no-circuit runs without connection tracking)",
			  strerror(-err));
		return err;
	}
	if ((err = loader_attach_cgroup(d, d->ops->progs.ferry_sockops, "sock_ops")))
		return err;
	return loader_attach_cgroup(d, d->ops->progs.ferry_sock_release, "sock_release");
}

/*
 * Maps earlier versions pinned that this one replaced (a new layout takes a
 * new name): unpinned once this version's programs are in the links, so a
 * map still held by an old program lives on until that program goes. The
 * socket LB's here, the XDP path's in xdp.c.
 */
void loader_unpin_retired(const char *bpffs, const char *const *names, size_t n)
{
	char path[1024];
	size_t i;

	for (i = 0; i < n; i++) {
		ferry_pin_path(path, sizeof(path), bpffs, names[i]);
		if (!unlink(path))
			log_info("removed %s, pinned by an earlier version", path);
		else if (errno != ENOENT)
			log_warn("removing %s", path);
	}
}

static const char *const sock_retired[] = {
	"ferry_bestat_v1",	/* ferry_bestat without gen */
};

int loader_load(struct ferryd *d)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = d->cfg.bpffs);
	struct { struct bpf_program *prog; const char *name; } progs[8];
	char links[512];
	const char *which = NULL;
	size_t i;
	int err, dirfd = -1;

	if ((err = bpffs_prepare(d->cfg.bpffs))) {
		log_warnx("bpffs %s: %s (is it a bpffs mount?)", d->cfg.bpffs, strerror(-err));
		return err;
	}
	snprintf(links, sizeof(links), "%s/links", d->cfg.bpffs);
	if (mkdir(links, 0700) && errno != EEXIST) {
		err = -errno;
		log_warn("mkdir %s", links);
		return err;
	}
	d->cgroup_fd = open(d->cfg.cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->cgroup_fd < 0) {
		err = -errno;
		log_warn("cgroup %s", d->cfg.cgroup);
		return err;
	}

	d->sock = sock_lb_bpf__open_opts(&oo);
	if (!d->sock) {
		err = -errno;
		log_warnx("open sock_lb: %s", strerror(-err));
		return err;
	}
	if ((err = set_sizes(d, d->sock->obj)))
		return err;
	d->sock->rodata->cfg_no_circuit = d->cfg.no_circuit;
	d->sock->rodata->cfg_lc_exact_max = d->cfg.lc_exact_max;
	err = sock_lb_bpf__load(d->sock);
	if (err) {
		log_warnx("load sock_lb: %s (a pinned map whose size differs from --max-* cannot be reused: "
			  "ferryctl teardown, or the sizes it was created with)", strerror(-err));
		return err;
	}

	i = 0;
	progs[i].prog = d->sock->progs.ferry_connect4, progs[i++].name = "sock_connect4";
	progs[i].prog = d->sock->progs.ferry_connect6, progs[i++].name = "sock_connect6";
	progs[i].prog = d->sock->progs.ferry_sendmsg4, progs[i++].name = "sock_sendmsg4";
	progs[i].prog = d->sock->progs.ferry_sendmsg6, progs[i++].name = "sock_sendmsg6";
	progs[i].prog = d->sock->progs.ferry_getpeername4, progs[i++].name = "sock_getpeername4";
	progs[i].prog = d->sock->progs.ferry_getpeername6, progs[i++].name = "sock_getpeername6";
	progs[i].prog = d->sock->progs.ferry_recvmsg4, progs[i++].name = "sock_recvmsg4";
	progs[i].prog = d->sock->progs.ferry_recvmsg6, progs[i++].name = "sock_recvmsg6";
	for (i = 0; i < sizeof(progs) / sizeof(progs[0]); i++)
		if ((err = loader_attach_cgroup(d, progs[i].prog, progs[i].name)))
			return err;
	if ((err = load_sock_ops(d, &oo)))
		return err;

	sockmap_load(d, &oo);	/* an optimisation: failures only warn */

	/* The XDP load rewrites maps other writers use too (the config whose
	 * epoch plan_apply() bumps, the VIP filter, the decap's sets): under
	 * the writers' lock, taken on the directory itself since the maps are
	 * opened only after. Released before the maps are opened (the lock
	 * belongs to this open of the directory), taken again through them for
	 * the VIP index. Waited for as long as it takes: the event loop is not
	 * running yet, and a daemon that exited would only be restarted into
	 * the same wait. */
	if (xdp_configured()) {
		dirfd = open(d->cfg.bpffs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0) {
			err = -errno;
			log_warn("open %s", d->cfg.bpffs);
			return err;
		}
		while ((err = pin_dir_lock(dirfd, FERRYD_LOCK_WAIT_MS)) == -EAGAIN)
			log_warnx("load: waiting for the writers' lock on %s (a ferryctl edit holds it)",
				  d->cfg.bpffs);
		if (err) {
			log_warnx("locking %s: %s", d->cfg.bpffs, strerror(-err));
			close(dirfd);
			return err;
		}
	}
	err = xdp_load(d);
	if (dirfd >= 0)
		close(dirfd);	/* and the lock with it */
	if (err)
		return err;
	loader_unpin_retired(d->cfg.bpffs, sock_retired,
			     sizeof(sock_retired) / sizeof(sock_retired[0]));
	if ((err = ferry_maps_open(d->cfg.bpffs, &d->maps, &which))) {
		log_warnx("open pinned map %s/%s: %s", d->cfg.bpffs, which, strerror(-err));
		return err;
	}
	if (d->maps.xsvc >= 0) {
		struct xsvc_report xr;

		/* A new (or older) index is built from the services already
		 * pinned; until then the XDP path asks ferry_svc_v1. */
		while ((err = maps_lock(&d->maps, FERRYD_LOCK_WAIT_MS)) == -EAGAIN)
			log_warnx("load: waiting for the writers' lock on %s (a ferryctl edit holds it)",
				  d->cfg.bpffs);
		if (!err) {
			err = xsvc_sync_maps(&d->maps, &xr);
			maps_unlock(&d->maps);
		}
		if (err) {
			log_warnx("building %s: %s", FERRY_MAP_XSVC, strerror(-err));
			return err;
		}
		log_info("xdp: VIP index holds %zu VIP(s), %zu left to %s", xr.indexed,
			 xr.overflow, FERRY_MAP_SVC);
	}
	return 0;
}

int loader_set_sizes(struct ferryd *d, struct bpf_object *obj)
{
	return set_sizes(d, obj);
}

void loader_close(struct ferryd *d)
{
	ferry_maps_close(&d->maps);
	xdp_close();
	sock_lb_bpf__destroy(d->sock);
	d->sock = NULL;
	sock_ops_bpf__destroy(d->ops);
	d->ops = NULL;
	sockmap_bpf__destroy(d->smap);
	d->smap = NULL;
	if (d->cgroup_fd >= 0)
		close(d->cgroup_fd);
	d->cgroup_fd = -1;
}
