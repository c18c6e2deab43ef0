// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* ferryctl status / teardown: what is loaded, how full, the last sync. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ferryctl.h"

static const char *attach_name(__u32 t)
{
	const char *n = libbpf_bpf_attach_type_str(t);

	return n ? n : "?";
}

/* What a link attaches to. libbpf 1.1 predates sockmap links (type 14). */
static const char *link_kind(const struct bpf_link_info *li)
{
	if (li->type == BPF_LINK_TYPE_CGROUP)
		return attach_name(li->cgroup.attach_type);
	if (li->type == 14)
		return "sk_msg_verdict";
	return libbpf_bpf_link_type_str(li->type) ?: "?";
}

static void fmt_time(__u64 ns, char *buf, size_t len)
{
	time_t t = ns / 1000000000ULL;
	struct tm tm;

	if (!ns) {
		snprintf(buf, len, "never");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Links pinned under <bpffs>/links: program and attach point of each. */
static struct json_object *links_status(struct ctl *c, bool print)
{
	struct json_object *arr = json_object_new_array();
	char dir[512], path[1024];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/links", c->bpffs);
	d = opendir(dir);
	if (!d)
		return arr;
	if (print)
		printf("links:\n  %-22s %-8s %-26s %-8s %s\n", "LINK", "PROG_ID", "PROGRAM", "LINK_ID", "ATTACH");
	while ((e = readdir(d))) {
		struct bpf_link_info li = {};
		struct bpf_prog_info pi = {};
		__u32 len = sizeof(li);
		struct json_object *o;
		int fd, pfd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0 || bpf_obj_get_info_by_fd(fd, &li, &len)) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		pfd = bpf_prog_get_fd_by_id(li.prog_id);
		if (pfd >= 0) {
			len = sizeof(pi);
			bpf_obj_get_info_by_fd(pfd, &pi, &len);
			close(pfd);
		}
		o = json_object_new_object();
		json_object_object_add(o, "link", json_object_new_string(e->d_name));
		json_object_object_add(o, "link_id", json_object_new_int64(li.id));
		json_object_object_add(o, "prog_id", json_object_new_int64(li.prog_id));
		json_object_object_add(o, "program", json_object_new_string(pi.name));
		json_object_object_add(o, "attach_type", json_object_new_string(link_kind(&li)));
		if (li.type == BPF_LINK_TYPE_CGROUP)
			json_object_object_add(o, "cgroup_id", json_object_new_int64(li.cgroup.cgroup_id));
		if (print)
			printf("  %-22s %-8u %-26s %-8u %s\n", e->d_name, li.prog_id, pi.name, li.id,
			       json_object_get_string(json_object_object_get(o, "attach_type")));
		json_object_array_add(arr, o);
		close(fd);
	}
	closedir(d);
	return arr;
}

/* Every pinned map in the directory with its fill. */
static struct json_object *maps_status(struct ctl *c, bool print)
{
	struct json_object *arr = json_object_new_array();
	char path[1024];
	struct dirent *e;
	DIR *d = opendir(c->bpffs);

	if (!d)
		return arr;
	if (print)
		printf("maps:\n  %-18s %-16s %10s %10s %6s\n", "MAP", "TYPE", "ENTRIES", "MAX", "FILL");
	while ((e = readdir(d))) {
		struct bpf_map_info mi = {};
		__u32 len = sizeof(mi);
		struct json_object *o;
		size_t n = 0;
		int fd;

		if (e->d_name[0] == '.' || e->d_type == DT_DIR)
			continue;
		snprintf(path, sizeof(path), "%s/%s", c->bpffs, e->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		if (bpf_obj_get_info_by_fd(fd, &mi, &len) || !mi.type) {
			close(fd);
			continue;
		}
		switch (mi.type) {
		case BPF_MAP_TYPE_ARRAY:
		case BPF_MAP_TYPE_PERCPU_ARRAY:
		case BPF_MAP_TYPE_ARRAY_OF_MAPS:
			n = mi.max_entries;	/* arrays are always full */
			break;
		default:
			if (mi.key_size <= 256)
				map_count(fd, mi.key_size, &n);
		}
		o = json_object_new_object();
		json_object_object_add(o, "map", json_object_new_string(e->d_name));
		json_object_object_add(o, "type", json_object_new_string(libbpf_bpf_map_type_str(mi.type) ?: "?"));
		json_object_object_add(o, "entries", json_object_new_int64(n));
		json_object_object_add(o, "max_entries", json_object_new_int64(mi.max_entries));
		if (print)
			printf("  %-18s %-16s %10zu %10u %5.1f%%\n", e->d_name,
			       libbpf_bpf_map_type_str(mi.type) ?: "?", n, mi.max_entries,
			       mi.max_entries ? 100.0 * n / mi.max_entries : 0);
		json_object_array_add(arr, o);
		close(fd);
	}
	closedir(d);
	return arr;
}

int do_status(struct ctl *c, int argc, char **argv)
{
	struct ferry_status st = {};
	struct json_object *o, *links, *maps;
	char t1[64], t2[64];
	bool alive;
	int err;

	(void)argv;
	if (argc != 1)
		return ctl_usage(c, "status takes no arguments");
	if ((err = ctl_open(c)))
		return err;
	status_read(&c->maps, &st);
	alive = st.daemon_pid && !kill(st.daemon_pid, 0);
	fmt_time(st.last_sync_ns, t1, sizeof(t1));
	fmt_time(st.last_ok_ns, t2, sizeof(t2));
	if (!c->json) {
		printf("bpffs:       %s\n", c->bpffs);
		printf("ferryd:      %s (pid %u)\n", alive ? "running" : "not running", st.daemon_pid);
		printf("registry:    %s\n", st.registry[0] ? st.registry : "-");
		printf("last sync:   %s, %s, %.1f ms (%llu syncs, %llu errors)\n", t1,
		       !st.syncs ? "none yet" : st.last_ok ? "ok" : "FAILED", st.last_sync_dur_ns / 1e6,
		       (unsigned long long)st.syncs, (unsigned long long)st.sync_errors);
		printf("last good:   %s (%u services, %u backends)\n", t2, st.services, st.backends);
		if (st.error[0])
			printf("error:       %s\n", st.error);
	}
	links = links_status(c, !c->json);
	maps = maps_status(c, !c->json);
	if (c->json) {
		o = json_object_new_object();
		json_object_object_add(o, "bpffs", json_object_new_string(c->bpffs));
		json_object_object_add(o, "daemon_pid", json_object_new_int64(st.daemon_pid));
		json_object_object_add(o, "daemon_running", json_object_new_boolean(alive));
		json_object_object_add(o, "registry", json_object_new_string(st.registry));
		json_object_object_add(o, "last_sync", json_object_new_string(t1));
		json_object_object_add(o, "last_ok", json_object_new_boolean(st.syncs && st.last_ok));
		json_object_object_add(o, "last_good_sync", json_object_new_string(t2));
		json_object_object_add(o, "last_sync_duration_ms", json_object_new_double(st.last_sync_dur_ns / 1e6));
		json_object_object_add(o, "syncs", json_object_new_int64(st.syncs));
		json_object_object_add(o, "sync_errors", json_object_new_int64(st.sync_errors));
		json_object_object_add(o, "services", json_object_new_int64(st.services));
		json_object_object_add(o, "backends", json_object_new_int64(st.backends));
		json_object_object_add(o, "error", json_object_new_string(st.error));
		json_object_object_add(o, "links", links);
		json_object_object_add(o, "maps", maps);
		ctl_json_print(o);
	} else {
		json_object_put(links);
		json_object_put(maps);
	}
	return 0;
}

/* A BPF object pinned at dir/name that is a map of that name: ferry's maps
 * are pinned by name, so this tells ferry's pin directory from another. */
static bool pinned_map_named(const char *dir, const char *name)
{
	struct bpf_map_info mi = {};
	__u32 len = sizeof(mi);
	char path[1024];
	bool ok;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = bpf_obj_get(path)) < 0)
		return false;
	ok = !bpf_obj_get_info_by_fd(fd, &mi, &len) && !strncmp(mi.name, name, sizeof(mi.name) - 1);
	close(fd);
	return ok;
}

/* Does dir hold any map ferry pinned (a ferry_* pin that is a map of that
 * name)? A teardown interrupted after the service and status maps went
 * still finds the rest. */
static bool any_ferry_map(const char *dir)
{
	struct dirent *e;
	bool found = false;
	DIR *d = opendir(dir);

	if (!d)
		return false;
	while (!found && (e = readdir(d)))
		found = !strncmp(e->d_name, "ferry_", 6) && pinned_map_named(dir, e->d_name);
	closedir(d);
	return found;
}

/* The names ferryd pins its links under: sock_* (cgroup hooks), sockmap_*
 * and xdp_* / xdp_decap_* (per interface). */
static bool ferry_link_name(const char *n)
{
	return !strncmp(n, "sock_", 5) || !strncmp(n, "sockmap_", 8) || !strncmp(n, "xdp_", 4);
}

/* fd is a link whose program is one of ferry's (all are named ferry_*). */
static bool ferry_link_prog(int fd)
{
	struct bpf_link_info li = {};
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(li);
	bool ok;
	int pfd;

	if (bpf_obj_get_info_by_fd(fd, &li, &len) || !li.prog_id)
		return false;
	if ((pfd = bpf_prog_get_fd_by_id(li.prog_id)) < 0)
		return false;
	len = sizeof(pi);
	ok = !bpf_obj_get_info_by_fd(pfd, &pi, &len) && !strncmp(pi.name, "ferry_", 6);
	close(pfd);
	return ok;
}

/*
 * Detach and unpin ferry's links and unpin ferry's maps under --bpffs, then
 * remove the directory if that emptied it. Only a directory that holds
 * ferry's pinned maps is touched, and in it only ferry_* pins and links/
 * entries by ferry's names whose program is ferry's: --bpffs /sys/fs/bpf
 * (or any directory shared with other software) must not wipe other pins.
 * Links are detached first, so the data path stops even if ferryd still
 * holds descriptors of them.
 */
int do_teardown(struct ctl *c, int argc, char **argv)
{
	char dir[512], path[1024];
	struct ferry_status st = {};
	int removed = 0, detached = 0, kept = 0, err = 0, lockfd;
	struct dirent *e;
	struct stat sb;
	DIR *d;

	(void)argv;
	if (argc != 1)
		return ctl_usage(c, "teardown takes no arguments");
	if (stat(c->bpffs, &sb))
		return ctl_err(c, "nothing to tear down at", c->bpffs, -errno);
	if (!any_ferry_map(c->bpffs))
		return ctl_err(c, "refusing to tear down: no ferry maps (ferry_*) pinned in", c->bpffs, 0);
	/* A writer mid-apply (ferryd's sync, a ferryctl edit) finishes first,
	 * or the teardown gives up and removes nothing. The lock goes with
	 * the process. */
	lockfd = open(c->bpffs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lockfd >= 0 && (err = pin_dir_lock(lockfd, CTL_LOCK_WAIT_MS)))
		return ctl_err(c, err == -EAGAIN ? "another writer (ferryd's sync or a ferryctl edit) "
			       "held the lock for 5 s on pin directory" : "cannot lock pin directory",
			       c->bpffs, err);
	if (!ferry_maps_open(c->bpffs, &c->maps, NULL)) {
		status_read(&c->maps, &st);
		ferry_maps_close(&c->maps);
		if (st.daemon_pid && !kill(st.daemon_pid, 0))
			fprintf(stderr, "Note: ferryd (pid %u) is still running; it will find nothing pinned on its next start\n",
				st.daemon_pid);
	}
	snprintf(dir, sizeof(dir), "%s/links", c->bpffs);
	if ((d = opendir(dir))) {
		while ((e = readdir(d))) {
			int fd;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			fd = ferry_link_name(e->d_name) ? bpf_obj_get(path) : -1;
			if (fd < 0 || !ferry_link_prog(fd)) {
				if (fd >= 0)
					close(fd);
				kept++;
				fprintf(stderr, "Note: %s is not one of ferry's links: left in place\n", path);
				continue;
			}
			if (!bpf_link_detach(fd))
				detached++;
			close(fd);
			if (unlink(path) && !err)
				err = -errno;
			else
				removed++;
		}
		closedir(d);
		if (!kept && rmdir(dir) && errno != ENOENT && !err)
			err = -errno;
	}
	if ((d = opendir(c->bpffs))) {
		while ((e = readdir(d))) {
			snprintf(path, sizeof(path), "%s/%s", c->bpffs, e->d_name);
			if (strncmp(e->d_name, "ferry_", 6) || lstat(path, &sb) || !S_ISREG(sb.st_mode))
				continue;	/* not a ferry pin (bpffs pins are regular files) */
			if (unlink(path) && !err)
				err = -errno;
			else
				removed++;
		}
		closedir(d);
	}
	if (err)
		return ctl_err(c, "cannot remove", c->bpffs, err);
	/* Empty now unless something else lives there: then it stays. */
	if (rmdir(c->bpffs) && errno != ENOTEMPTY && errno != EEXIST && errno != EBUSY)
		return ctl_err(c, "cannot remove", c->bpffs, -errno);
	if (c->json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "bpffs", json_object_new_string(c->bpffs));
		json_object_object_add(o, "links_detached", json_object_new_int(detached));
		json_object_object_add(o, "pins_removed", json_object_new_int(removed));
		ctl_json_print(o);
	} else {
		printf("teardown %s: %d links detached, %d pins removed\n", c->bpffs, detached, removed);
	}
	return 0;
}
