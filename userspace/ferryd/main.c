// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ferryd: loads and attaches ferry's programs, keeps the maps equal to the
 * registry file (inotify, SIGHUP, periodic resync), and leaves everything
 * pinned on exit so the data path outlives the daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "ferryd.h"
#include "log.h"
#include "metrics.h"

#define MAX_WATCHERS 64

static struct watcher {
	int	fd;
	ev_cb	cb;
	void	*arg;
} watchers[MAX_WATCHERS];

int ev_add(struct ferryd *d, int fd, uint32_t events, ev_cb cb, void *arg)
{
	struct epoll_event ev = { .events = events };
	int i;

	for (i = 0; i < MAX_WATCHERS && watchers[i].cb; i++)
		;
	if (i == MAX_WATCHERS)
		return -ENOSPC;
	watchers[i] = (struct watcher){ .fd = fd, .cb = cb, .arg = arg };
	ev.data.ptr = &watchers[i];
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		watchers[i].cb = NULL;
		return -errno;
	}
	return 0;
}

void ev_del(struct ferryd *d, int fd)
{
	int i;

	epoll_ctl(d->epfd, EPOLL_CTL_DEL, fd, NULL);
	for (i = 0; i < MAX_WATCHERS; i++)
		if (watchers[i].cb && watchers[i].fd == fd)
			watchers[i].cb = NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: ferryd --registry FILE [options]\n"
"  --registry FILE       service registry (JSON v1; docs/registry.md); watched with\n"
"                        inotify and re-read on SIGHUP\n"
"  --bpffs DIR           pin directory (default " FERRY_DEF_BPFFS "); bpffs is mounted if needed\n"
"  --cgroup DIR          cgroup v2 directory to attach to (default: the cgroup2 root)\n"
"  --state-dir DIR       a copy of the last good registry, for health checks after a\n"
"                        restart on a bad one (default " FERRYD_DEF_STATE_DIR "; keep it on a tmpfs\n"
"                        and one per --bpffs)\n"
"  --once                reconcile once, print a summary and exit; programs stay attached\n"
"  --resync SECONDS      re-apply the registry this often, undoing drift (default 60; 0 off)\n"
"  --no-circuit          no connection tracking (sockops): no circuit breaking,\n"
"                        max_connections or least_conn counts\n"
"  --least-conn-exact N  least_conn compares every backend of services up to N\n"
"                        backends, two random ones above (default 16)\n"
"  --max-services N      service map size (default %d)\n"
"  --max-backends N      backend map size (default %d)\n"
"  --max-revnat N        reverse-translation LRU size (default %d)\n"
"  --metrics-addr HOST:PORT  /metrics, /healthz, /readyz (default " FERRYD_DEF_METRICS_ADDR "; off;\n"
"                            port 0: any free port, logged)\n"
"  --metrics-max-backend-series N  backends with their own series; the rest are\n"
"                        summed as backend=\"__overflow__\" (default %d)\n"
"  --metrics-timeout MS  deadline for a metrics client's request (default %d)\n"
"  --sockmap on|off      same-node acceleration (sk_msg redirect; default on)\n"
"  --sockmap-exclude-port N     never accelerate connections with port N at either\n"
"                        end (repeatable; e.g. for receivers using splice()); a\n"
"                        backend's port: a VIP's is rewritten before this applies\n"
"  --sockmap-exclude-cidr CIDR  same for addresses in CIDR (repeatable; backends')\n"
XDP_USAGE
"  --log-format text|json\n"
"  -v                    more logging (twice: libbpf debug)\n"
"  --help, --version\n",
		FERRY_DEF_MAX_SERVICES, FERRY_DEF_MAX_BACKENDS, FERRY_DEF_MAX_REVNAT,
		FERRY_METRICS_DEF_MAX_BACKEND_SERIES, FERRYD_DEF_METRICS_TIMEOUT_MS);
}

static int parse_u32(const char *opt, const char *s, __u32 lo, __u32 *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > 0x7fffffff) {
		fprintf(stderr, "ferryd: %s: '%s' is not a number >= %u\n", opt, s, lo);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct ferryd_cfg *c)
{
	enum { O_REG = 256, O_BPFFS, O_CG, O_ONCE, O_LOGF, O_VER, O_MS, O_MB, O_MR, O_RESYNC,
	       O_MXADDR, O_MXSERIES, O_MXTIMEOUT, O_SM, O_SMPORT, O_SMCIDR, O_STATE };
	static const struct option opts[] = {
		{ "registry", required_argument, NULL, O_REG },
		{ "bpffs", required_argument, NULL, O_BPFFS },
		{ "cgroup", required_argument, NULL, O_CG },
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "once", no_argument, NULL, O_ONCE },
		{ "log-format", required_argument, NULL, O_LOGF },
		{ "max-services", required_argument, NULL, O_MS },
		{ "max-backends", required_argument, NULL, O_MB },
		{ "max-revnat", required_argument, NULL, O_MR },
		{ "resync", required_argument, NULL, O_RESYNC },
		{ "no-circuit", no_argument, NULL, 'C' },
		{ "least-conn-exact", required_argument, NULL, 'L' },
		{ "metrics-addr", required_argument, NULL, O_MXADDR },
		{ "metrics-max-backend-series", required_argument, NULL, O_MXSERIES },
		{ "metrics-timeout", required_argument, NULL, O_MXTIMEOUT },
		{ "sockmap", required_argument, NULL, O_SM },
		{ "sockmap-exclude-port", required_argument, NULL, O_SMPORT },
		{ "sockmap-exclude-cidr", required_argument, NULL, O_SMCIDR },
		XDP_LONG_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VER },
		{ NULL, 0, NULL, 0 },
	};
	__u32 v;
	int o;

	while ((o = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (o) {
		case O_REG: c->registry = optarg; break;
		case O_BPFFS: c->bpffs = optarg; break;
		case O_CG: c->cgroup = optarg; break;
		case O_STATE: c->state_dir = optarg; break;
		case O_ONCE: c->once = true; break;
		case O_LOGF:
			if (!strcmp(optarg, "json"))
				c->log_json = true;
			else if (strcmp(optarg, "text")) {
				fprintf(stderr, "ferryd: --log-format: '%s' is not text or json\n", optarg);
				return 2;
			}
			break;
		case O_MS:
			if (parse_u32("--max-services", optarg, 1, &c->max_services))
				return 2;
			break;
		case O_MB:
			if (parse_u32("--max-backends", optarg, 1, &c->max_backends))
				return 2;
			break;
		case O_MR:
			if (parse_u32("--max-revnat", optarg, 1, &c->max_revnat))
				return 2;
			break;
		case O_RESYNC:
			if (parse_u32("--resync", optarg, 0, &v))
				return 2;
			c->resync_s = v;
			break;
		case O_MXADDR: c->metrics_addr = optarg; break;
		case O_MXSERIES:
			if (parse_u32("--metrics-max-backend-series", optarg, 0, &c->metrics_max_series))
				return 2;
			break;
		case O_MXTIMEOUT:
			if (parse_u32("--metrics-timeout", optarg, 1, &c->metrics_timeout_ms))
				return 2;
			break;
		case O_SM:
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				fprintf(stderr, "ferryd: --sockmap: '%s' is not on or off\n", optarg);
				return 2;
			}
			c->sockmap = !strcmp(optarg, "on");
			break;
		case O_SMPORT:
			if (sockmap_parse_port(c, optarg))
				return 2;
			break;
		case O_SMCIDR:
			if (sockmap_parse_cidr(c, optarg))
				return 2;
			break;
		case 'C': c->no_circuit = true; break;
		case 'L':
			if (parse_u32("--least-conn-exact", optarg, 0, &c->lc_exact_max))
				return 2;
			break;
		case XDP_OPT_IFACE ... XDP_OPT_END - 1:
			if (xdp_option(o, optarg))
				return 2;
			break;
		case 'v': c->verbose++; break;
		case 'h': usage(stdout); exit(0);
		case O_VER: printf("ferryd %s\n", FERRY_VERSION); exit(0);
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ferryd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!c->registry) {
		fprintf(stderr, "ferryd: --registry FILE is required\n");
		usage(stderr);
		return 2;
	}
	return 0;
}

struct regwatch {
	int		fd;
	char		dir[PATH_MAX];
	char		base[NAME_MAX + 1];
	struct stat	seen;		/* the registry as of the last sync we started */
	bool		have_seen;
};

/*
 * What the registry path leads to now (symlinks followed): true when that
 * differs from what was seen last, and then it is remembered.
 */
static bool regwatch_changed(struct ferryd *d, struct regwatch *w)
{
	struct stat st;
	bool ok = !stat(d->cfg.registry, &st), changed;

	if (!ok) {
		/* Gone: a change if it was there; its return will be one too. */
		changed = w->have_seen;
		w->have_seen = false;
		return changed;
	}
	changed = !w->have_seen || st.st_dev != w->seen.st_dev || st.st_ino != w->seen.st_ino ||
		  st.st_size != w->seen.st_size || st.st_mtim.tv_sec != w->seen.st_mtim.tv_sec ||
		  st.st_mtim.tv_nsec != w->seen.st_mtim.tv_nsec;
	w->seen = st;
	w->have_seen = true;
	return changed;
}

static void on_inotify(struct ferryd *d, int fd, uint32_t events, void *arg)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct regwatch *w = arg;
	bool hit = false, any = false;
	ssize_t n;

	(void)events;
	/* Drain everything queued: one sync for a burst of events. */
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		char *p;

		any = true;
		for (p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;

			if (e->len && !strcmp(e->name, w->base))
				hit = true;
			p += sizeof(*e) + e->len;
		}
	}
	/*
	 * An event on the file's own name, or what the path leads to changed:
	 * a Kubernetes ConfigMap volume is updated by renaming a new '..data'
	 * symlink over the old one, and no event names the registry's file.
	 * (The stat also runs on a named hit, to keep what was seen current.)
	 */
	if (any && regwatch_changed(d, w))
		hit = true;
	if (hit) {
		log_debug("registry %s changed", d->cfg.registry);
		sync_registry(d);
	}
}

static void on_signal(struct ferryd *d, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;

	(void)events;
	(void)arg;
	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP: re-reading %s", d->cfg.registry);
			sync_registry(d);
		} else {
			log_info("signal %u: stopping; programs and maps stay pinned", si.ssi_signo);
			d->stop = true;
		}
	}
}

static void on_resync(struct ferryd *d, int fd, uint32_t events, void *arg)
{
	__u64 ticks;

	(void)events;
	(void)arg;
	if (read(fd, &ticks, sizeof(ticks)) == sizeof(ticks))
		sync_registry(d);
}

int ferryd_lock(struct ferryd *d)
{
	return maps_lock(&d->maps, d->retry_fd >= 0 ? 0 : FERRYD_LOCK_WAIT_MS);
}

void ferryd_retry(struct ferryd *d, bool sync, bool decap)
{
	struct itimerspec its = {
		.it_value = { .tv_nsec = FERRYD_LOCK_RETRY_MS * 1000000L },
	};

	d->retry_sync |= sync;
	d->retry_decap |= decap;
	if (d->retry_fd >= 0 && timerfd_settime(d->retry_fd, 0, &its, NULL))
		log_warn("arming the lock retry timer");
}

/* Work that found the writers' lock busy: again (a sync does the decap's). */
static void on_retry(struct ferryd *d, int fd, uint32_t events, void *arg)
{
	bool sync = d->retry_sync, decap = d->retry_decap;
	__u64 ticks;

	(void)events;
	(void)arg;
	if (read(fd, &ticks, sizeof(ticks)) != sizeof(ticks))
		return;
	d->retry_sync = d->retry_decap = false;
	if (sync)
		sync_registry(d);
	else if (decap)
		xdp_decap_sync(d);
}

static int setup_watch(struct ferryd *d, struct regwatch *w)
{
	char tmp[PATH_MAX];
	int err;

	snprintf(tmp, sizeof(tmp), "%s", d->cfg.registry);
	snprintf(w->dir, sizeof(w->dir), "%s", dirname(tmp));
	snprintf(tmp, sizeof(tmp), "%s", d->cfg.registry);
	snprintf(w->base, sizeof(w->base), "%s", basename(tmp));
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0)
		return -errno;
	regwatch_changed(d, w);	/* before the first sync: what it will read */
	/*
	 * Watch the directory: editors and config managers replace the file,
	 * the kubelet swaps the '..data' symlink the file's path goes through.
	 */
	if (inotify_add_watch(w->fd, w->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE) < 0) {
		err = -errno;
		log_warn("inotify on %s", w->dir);
		return err;
	}
	return ev_add(d, w->fd, EPOLLIN, on_inotify, w);
}

int main(int argc, char **argv)
{
	struct ferryd d = { .cgroup_fd = -1, .epfd = -1 };
	struct regwatch w = { .fd = -1 };
	char cgroot[PATH_MAX];
	int sfd = -1, tfd = -1, err;
	sigset_t mask;

	d.cfg.bpffs = FERRY_DEF_BPFFS;
	d.cfg.state_dir = FERRYD_DEF_STATE_DIR;
	d.cfg.max_services = FERRY_DEF_MAX_SERVICES;
	d.cfg.max_backends = FERRY_DEF_MAX_BACKENDS;
	d.cfg.max_revnat = FERRY_DEF_MAX_REVNAT;
	d.cfg.resync_s = 60;
	d.cfg.lc_exact_max = 16;
	d.cfg.sockmap = 1;
	d.cfg.metrics_addr = FERRYD_DEF_METRICS_ADDR;
	d.cfg.metrics_max_series = FERRY_METRICS_DEF_MAX_BACKEND_SERIES;
	d.cfg.metrics_timeout_ms = FERRYD_DEF_METRICS_TIMEOUT_MS;
	ferry_maps_init(&d.maps);
	d.retry_fd = -1;
	if ((err = parse_args(argc, argv, &d.cfg)))
		return err;
	log_init(d.cfg.verbose, d.cfg.log_json);
	log_libbpf_setup();
	if (!d.cfg.cgroup) {
		if (cgroup2_mount(cgroot, sizeof(cgroot)))
			fatalx("no cgroup2 mount in /proc/mounts; pass --cgroup DIR");
		d.cfg.cgroup = cgroot;
	}

	d.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d.epfd < 0)
		fatal("epoll_create1");
	if ((err = loader_load(&d)))
		goto cleanup;
	log_info("ferryd %s: attached to cgroup %s, state pinned in %s", FERRY_VERSION,
		 d.cfg.cgroup, d.cfg.bpffs);

	if (d.cfg.once) {
		err = sync_registry(&d);
		printf("%s: %s; %u services, %u backends; state pinned in %s\n",
		       d.cfg.registry, err ? d.status.error : "applied",
		       d.status.services, d.status.backends, d.cfg.bpffs);
		goto cleanup;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0 || ev_add(&d, sfd, EPOLLIN, on_signal, NULL))
		fatal("signalfd");
	if ((err = setup_watch(&d, &w)))
		goto cleanup;
	if (d.cfg.resync_s) {
		struct itimerspec its = {
			.it_interval = { .tv_sec = d.cfg.resync_s },
			.it_value = { .tv_sec = d.cfg.resync_s },
		};

		tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) || ev_add(&d, tfd, EPOLLIN, on_resync, NULL))
			fatal("timerfd");
	}
	/* From here on the writers' lock is only tried: busy, work retries. */
	d.retry_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d.retry_fd < 0 || ev_add(&d, d.retry_fd, EPOLLIN, on_retry, NULL))
		fatal("timerfd");
	metrics_start(&d);	/* /readyz says 503 until the first good sync */
	if ((err = health_start(&d)))
		goto cleanup;
	/* A bad registry at start still leaves the daemon up, and the last good
	 * state pinned: its backends stay probed. */
	if (sync_registry(&d))
		sync_fallback(&d);

	while (!d.stop) {
		struct epoll_event evs[16];
		int n, i;

		n = epoll_wait(d.epfd, evs, 16, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			log_warn("epoll_wait");
			break;
		}
		for (i = 0; i < n && !d.stop; i++) {
			struct watcher *wt = evs[i].data.ptr;

			if (wt->cb)
				wt->cb(&d, wt->fd, evs[i].events, wt->arg);
		}
	}
	err = 0;
cleanup:
	health_stop(&d);
	metrics_stop(&d);
	if (w.fd >= 0)
		close(w.fd);
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	if (d.retry_fd >= 0)
		close(d.retry_fd);
	registry_free(&d.reg);
	loader_close(&d);
	if (d.epfd >= 0)
		close(d.epfd);
	return err < 0 ? 1 : err;
}
