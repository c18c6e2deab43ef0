// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Registry -> maps. A registry that fails to parse or to plan changes
 * nothing: the maps keep the last good state, and the error goes to the log
 * and to the status map (ferryctl status).
 *
 * The bytes of each registry applied are also copied to --state-dir (default
 * /run/ferry: a tmpfs, like bpffs it lasts until the node reboots). A ferryd
 * restarted on a registry that does not apply finds there what its pinned
 * maps were made from, and keeps health-checking those backends: the last
 * good state keeps serving, so its verdicts must stay current. The copy is
 * only ever read for that, never applied to the maps.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "ferryd.h"
#include "log.h"
#include "reconcile.h"
#include "state.h"

static __u64 now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* partial: the maps may have taken some of the plan's writes before one failed (in
 * plan_apply()'s order, so nothing names an entry not written yet); the
 * next sync completes it. Otherwise nothing was written. */
static void status_fail(struct ferryd *d, const char *msg, bool partial)
{
	d->status.sync_errors++;
	d->status.last_ok = 0;
	snprintf(d->status.error, sizeof(d->status.error), "%s", msg);
	if (partial)
		log_warnx("registry not fully applied (writes before the failure stay, the next "
			  "sync completes them): %s", msg);
	else
		log_warnx("registry not applied, keeping the last good state: %s", msg);
}

/*
 * The copy's path: named for the pin directory it was applied to, so
 * ferryds on different --bpffs sharing a state directory (the default)
 * never take each other's copy: <state_dir>/registry<bpffs, '/' -> '_'>.json.
 */
static void state_path(const struct ferryd *d, char *buf, size_t len)
{
	char pin[256];
	size_t i;

	snprintf(pin, sizeof(pin), "%s", d->cfg.bpffs);
	for (i = 0; pin[i]; i++)
		if (pin[i] == '/')
			pin[i] = '_';
	snprintf(buf, len, "%s/" FERRYD_STATE_REGISTRY "%s.json", d->cfg.state_dir, pin);
}

/* Would writing the copy replace the registry itself (a registry kept in
 * the state directory, or a link into it)? Then every save would be a
 * change to the registry, and a sync: never saved. The same bytes as the
 * copy holds already: nothing to write. */
static bool state_skip(struct ferryd *d, const char *path, const char *buf, size_t len)
{
	struct stat reg, cp;
	bool same = false;
	char *old = NULL, err[FERRY_ERR_LEN];
	size_t oldlen = 0;

	if (stat(path, &cp))
		return false;
	if (!stat(d->cfg.registry, &reg) && reg.st_dev == cp.st_dev && reg.st_ino == cp.st_ino) {
		if (!d->state_warned)
			log_warnx("%s is the registry's own file: no copy kept (--state-dir another "
				  "directory)", path);
		d->state_warned = true;
		return true;
	}
	if ((size_t)cp.st_size == len && !registry_read(path, &old, &oldlen, err, sizeof(err)))
		same = oldlen == len && !memcmp(old, buf, len);
	free(old);
	return same;
}

/* The copy of the registry just applied: a temp file renamed over the old
 * copy, so a reader (a restarted ferryd) sees one whole copy or the other.
 * A failure only costs probing after a restart on a bad registry: logged
 * once until it works again. No fsync: the directory is a tmpfs. */
static void state_save(struct ferryd *d, const char *buf, size_t len)
{
	char path[PATH_MAX], tmp[PATH_MAX + 32];
	const char *what = "writing";
	size_t off = 0;
	ssize_t n;
	int fd, err = 0;

	state_path(d, path, sizeof(path));
	if (state_skip(d, path, buf, len))
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	if (mkdir(d->cfg.state_dir, 0700) && errno != EEXIST) {
		err = errno;
		what = "creating the directory for";
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = errno;
		goto out;
	}
	while (off < len && (n = write(fd, buf + off, len - off)) > 0)
		off += n;
	if (off < len)
		err = n < 0 ? errno : EIO;
	if (close(fd) && !err)
		err = errno;
	if (!err && rename(tmp, path))
		err = errno;
	if (err)
		unlink(tmp);
out:
	if (err && !d->state_warned) {
		log_warnx("%s %s: %s; a ferryd restarted on a bad registry will not probe the "
			  "backends", what, path, strerror(err));
		d->state_warned = true;
	} else if (!err && d->state_warned) {
		log_info("registry copy saved to %s again", path);
		d->state_warned = false;
	}
}

void sync_fallback(struct ferryd *d)
{
	struct registry_limits lim = {
		.max_services = d->maps.max_services, .max_backends = d->maps.max_backends,
	};
	char path[PATH_MAX], err[FERRY_ERR_LEN];
	struct registry reg;
	size_t i, nh = 0;
	int ret;

	if (d->synced)
		return;
	state_path(d, path, sizeof(path));
	ret = registry_load(path, &lim, &reg, err, sizeof(err));
	if (ret == -ENOENT) {
		log_warnx("no copy of a last good registry in %s: the backends in the maps are not "
			  "health-checked until %s applies", d->cfg.state_dir, d->cfg.registry);
		return;
	}
	if (ret) {
		log_warnx("the last good registry's copy is unusable (%s): the backends in the maps "
			  "are not health-checked until %s applies", err, d->cfg.registry);
		return;
	}
	for (i = 0; i < reg.nsvcs; i++)
		nh += reg.svcs[i].health.type != HEALTH_NONE;
	registry_free(&d->reg);
	d->reg = reg;
	health_sync(d);
	log_info("%s not applied: health checks of %zu services taken from %s, the copy of the "
		 "last good registry (only probed, never applied to the maps)", d->cfg.registry, nh,
		 path);
}

/* A sync that could not take the lock: counted and reported in the status
 * map at once (the sync's own status write is never reached). */
static void lock_fail(struct ferryd *d, const char *msg)
{
	d->status.syncs++;
	status_fail(d, msg, false);
	if (status_write(&d->maps, &d->status))
		log_warn("writing %s", FERRY_MAP_STATUS);
}

/*
 * The writers' lock for a sync. From the event loop it is tried, never
 * waited for: busy, the sync runs again in FERRYD_LOCK_RETRY_MS (the loop
 * goes on serving metrics, probes and events meanwhile), and only a wait
 * longer than FERRYD_LOCK_WAIT_MS is reported, once. Before the loop runs
 * (--once), it is waited for, that long at most.
 */
static int sync_lock(struct ferryd *d)
{
	char err[FERRY_ERR_LEN];
	__u64 now;
	int ret = ferryd_lock(d);

	if (!ret) {
		if (d->lock_busy_told)
			log_info("writers' lock on %s free again: syncing", d->cfg.bpffs);
		d->lock_busy_ns = 0;
		d->lock_busy_told = false;
		return 0;
	}
	if (ret == -EAGAIN && d->retry_fd >= 0) {
		now = now_ns(CLOCK_MONOTONIC);
		if (!d->lock_busy_ns) {
			d->lock_busy_ns = now;
			log_info("writers' lock on %s busy (a ferryctl edit): sync retried every %d ms",
				 d->cfg.bpffs, FERRYD_LOCK_RETRY_MS);
		} else if (!d->lock_busy_told &&
			   now - d->lock_busy_ns >= FERRYD_LOCK_WAIT_MS * 1000000ULL) {
			snprintf(err, sizeof(err), "another writer (a ferryctl edit) has held the lock "
				 "on pin directory '%s' for %d s; retrying", d->cfg.bpffs,
				 FERRYD_LOCK_WAIT_MS / 1000);
			lock_fail(d, err);
			d->lock_busy_told = true;	/* not again until it is free */
		}
		ferryd_retry(d, true, false);
		return ret;
	}
	if (ret == -EAGAIN)
		snprintf(err, sizeof(err), "another writer (a ferryctl edit) held the lock on pin "
			 "directory '%s' for %d s", d->cfg.bpffs, FERRYD_LOCK_WAIT_MS / 1000);
	else
		snprintf(err, sizeof(err), "locking pin directory '%s': %s", d->cfg.bpffs,
			 strerror(-ret));
	lock_fail(d, err);
	return ret;
}

int sync_registry(struct ferryd *d)
{
	struct registry_limits lim = {
		.max_services = d->maps.max_services, .max_backends = d->maps.max_backends,
	};
	__u64 t0 = now_ns(CLOCK_MONOTONIC);
	struct registry reg;
	struct fstate st;
	struct plan plan;
	char err[FERRY_ERR_LEN], *text = NULL;
	size_t textlen = 0;
	bool partial = false;
	int ret;

	/* One writer at a time, from the read the plan's new ids come from
	 * to the last write: ferryctl edits wait for the sync, and it for
	 * them. */
	if ((ret = sync_lock(d)))
		return ret;
	d->status.syncs++;
	d->status.last_sync_ns = now_ns(CLOCK_REALTIME);
	d->status.daemon_pid = getpid();
	snprintf(d->status.registry, sizeof(d->status.registry), "%s", d->cfg.registry);

	memset(&reg, 0, sizeof(reg));
	ret = registry_read(d->cfg.registry, &text, &textlen, err, sizeof(err));
	if (!ret)
		ret = registry_parse(text, textlen, d->cfg.registry, &lim, &reg, err, sizeof(err));
	if (ret) {
		maps_unlock(&d->maps);
		status_fail(d, err, false);
		goto out;
	}
	ret = fstate_load(&d->maps, &st);
	if (ret) {
		maps_unlock(&d->maps);
		snprintf(err, sizeof(err), "reading the maps: %s", strerror(-ret));
		status_fail(d, err, false);
		registry_free(&reg);
		goto out;
	}
	plan_init(&plan);
	ret = plan_registry(&plan, &st, &reg, err, sizeof(err));
	if (!ret && (ret = plan_apply(&d->maps, &plan, err, sizeof(err))))
		partial = plan_writes(&plan) > 0;
	maps_unlock(&d->maps);
	if (ret) {
		status_fail(d, err, partial);
		registry_free(&reg);
	} else {
		struct plan_summary *s = &plan.sum;

		registry_free(&d->reg);
		d->reg = reg;
		d->synced = true;
		state_save(d, text, textlen);
		health_sync(d);
		d->status.last_ok = 1;
		d->status.last_ok_ns = d->status.last_sync_ns;
		d->status.error[0] = '\0';
		d->status.services = reg.nsvcs;
		d->status.backends = reg.nbackends;
		log_info("sync %s: %zu services (+%zu -%zu ~%zu), backends +%zu -%zu ~%zu, %zu map writes in %.1f ms",
			 d->cfg.registry, reg.nsvcs, s->svc_added, s->svc_removed, s->svc_changed,
			 s->be_added, s->be_removed, s->be_changed, plan_writes(&plan),
			 (now_ns(CLOCK_MONOTONIC) - t0) / 1e6);
	}
	plan_free(&plan);
	fstate_free(&st);
out:
	free(text);
	xdp_after_sync(d);
	d->status.last_sync_dur_ns = now_ns(CLOCK_MONOTONIC) - t0;
	if (status_write(&d->maps, &d->status))
		log_warn("writing %s", FERRY_MAP_STATUS);
	return ret;
}
