// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket load-balancing benchmark: connect()+close() rate through a ferry
 * VIP, through kube-proxy style iptables DNAT, and straight to the backend.
 *
 *   connect  the load generator, run in a client netns (and cgroup)
 *   sink     accept-and-close server in the backend netns
 *   genreg   the registry a ferryd --once loads (the measured services, each
 *            with its policy, and filler services)
 *   genipt   the same services as kube-proxy's iptables nat rules
 *   stats    ferry's connect counters from a pin dir (did ferry translate?)
 *   mark     a backend's health written as ferryd's health checker would
 *
 * Filler service i (0-based) has VIP 203.0.113.(1 + i % 254), port
 * 1024 + i / 254: the documentation range holds 100,000+ distinct
 * (VIP, port) keys without borrowing a private range. Its backend j is
 * 192.0.2.(100 + j), port 10000 + i % 50000; nothing ever connects to
 * fillers, they only fill the maps and the rule chain.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <bpf/bpf.h>

#include "bench.h"
#include "maps.h"
#include "registry.h"
#include "state.h"

#define FILLER_VIP_HOSTS	254
#define FILLER_PORT_BASE	1024
#define FILLER_MAX_SERVICES	(FILLER_VIP_HOSTS * (65535 - FILLER_PORT_BASE))
#define FILLER_MAX_BACKENDS	100
#define CONNECT_MAX_ERRORS	10

static void filler_vip(unsigned long i, char *ip, size_t len, unsigned *port)
{
	snprintf(ip, len, "203.0.113.%lu", 1 + i % FILLER_VIP_HOSTS);
	*port = FILLER_PORT_BASE + i / FILLER_VIP_HOSTS;
}

static void filler_backend(unsigned long i, unsigned long j, char *ip, size_t len, unsigned *port)
{
	snprintf(ip, len, "192.0.2.%lu", 100 + j);
	*port = 10000 + i % 50000;
}

/* "IP:PORT" -> text address and host-order port (IPv4 only: iptables). */
static int split_ep4(const char *cmd, const char *opt, const char *s, char *ip, size_t len,
		     unsigned *port)
{
	struct faddr a;
	int p;

	if (endpoint_parse(s, &a, &p, NULL) || a.family != AF_INET)
		return bench_usage(cmd, "%s: '%s' is not IPv4-ADDRESS:PORT", opt, s);
	faddr_str(&a, ip, len);
	*port = p;
	return 0;
}

/* ---- connect ---------------------------------------------------------- */

/*
 * In-kernel cost of ferry: every program behind a link pinned in
 * <bpffs>/links (connect4, sock_ops, sock_release, ...), their run_time_ns
 * and run_cnt from BPF_ENABLE_STATS (on only while the stats fd is open).
 * Reported per connect made, so programs that run several times per
 * connection (sock_ops callbacks) count in full.
 */
#define PROGCOST_MAX	32

struct progcost {
	int	stats_fd, n;
	struct {
		int	fd;
		__u32	id;
		char	name[BPF_OBJ_NAME_LEN];
		__u64	ns0, cnt0;	/* counters when the slice began */
		__u64	acc;		/* run time in this path's slices */
		double	ns;		/* per connect, at the end */
	} p[PROGCOST_MAX];
};

static int prog_counters(int prog_fd, __u64 *ns, __u64 *cnt)
{
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(pi);

	if (bpf_obj_get_info_by_fd(prog_fd, &pi, &len))
		return -errno;
	*ns = pi.run_time_ns;
	*cnt = pi.run_cnt;
	return 0;
}

static int progcost_add(struct progcost *pc, const char *path)
{
	struct bpf_link_info li = {};
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(li), plen = sizeof(pi);
	int lfd, fd, i, err;

	lfd = bpf_obj_get(path);
	if (lfd < 0)
		return bench_err("open pinned link", path, -errno);
	err = bpf_obj_get_info_by_fd(lfd, &li, &len) ? -errno : 0;
	close(lfd);
	if (err)
		return bench_err("link info of", path, err);
	for (i = 0; i < pc->n; i++)
		if (pc->p[i].id == li.prog_id)
			return 0;	/* one program behind two links */
	if (pc->n == PROGCOST_MAX)
		return bench_err("too many links in", path, -E2BIG);
	fd = bpf_prog_get_fd_by_id(li.prog_id);
	if (fd < 0)
		return bench_err("program behind", path, -errno);
	if (bpf_obj_get_info_by_fd(fd, &pi, &plen)) {
		err = -errno;
		close(fd);
		return bench_err("program info behind", path, err);
	}
	pc->p[pc->n].fd = fd;
	pc->p[pc->n].id = li.prog_id;
	snprintf(pc->p[pc->n].name, sizeof(pc->p[pc->n].name), "%s", pi.name);
	pc->n++;
	return 0;
}

static void progcost_close(struct progcost *pc)
{
	int i;

	for (i = 0; i < pc->n; i++)
		close(pc->p[i].fd);
	pc->n = 0;
	if (pc->stats_fd >= 0)
		close(pc->stats_fd);
	pc->stats_fd = -1;
}

static int progcost_start(struct progcost *pc, const char *bpffs)
{
	char dir[600], path[1024];
	struct dirent *e;
	DIR *d;
	int err = 0;

	snprintf(dir, sizeof(dir), "%s/links", bpffs);
	d = opendir(dir);
	if (!d)
		return bench_err("open link pins", dir, -errno);
	while (!err && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		err = progcost_add(pc, path);
	}
	closedir(d);
	if (err)
		return err;
	if (!pc->n)
		return bench_err("no pinned links in", dir, -ENOENT);
	pc->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (pc->stats_fd < 0)
		return bench_err("BPF_ENABLE_STATS for the programs in", dir, -errno);
	return 0;
}

/*
 * Around each slice of the path: the programs' run time in between is
 * this path's (only our load generator has sockets in the cgroup), even
 * when two paths share one cgroup's programs.
 */
static void progcost_begin(struct progcost *pc)
{
	int i;

	for (i = 0; i < pc->n; i++)
		if (prog_counters(pc->p[i].fd, &pc->p[i].ns0, &pc->p[i].cnt0))
			pc->p[i].ns0 = 0;
}

static void progcost_end(struct progcost *pc)
{
	__u64 ns, cnt;
	int i;

	for (i = 0; i < pc->n; i++)
		if (pc->p[i].ns0 && !prog_counters(pc->p[i].fd, &ns, &cnt) && ns >= pc->p[i].ns0)
			pc->p[i].acc += ns - pc->p[i].ns0;
}

/* Stop; ns per connect of each program and in all. */
static double progcost_stop(struct progcost *pc, unsigned long connects)
{
	double sum = 0;
	int i;

	for (i = 0; i < pc->n; i++) {
		pc->p[i].ns = connects ? (double)pc->p[i].acc / connects : 0;
		sum += pc->p[i].ns;
	}
	if (pc->stats_fd >= 0)
		close(pc->stats_fd);
	pc->stats_fd = -1;
	return sum;
}

/*
 * A path is what one connect goes through: a network namespace, a cgroup
 * (whose programs see the socket: a socket belongs to the cgroup of the
 * task that created it) and a target. One process measures several paths
 * by moving itself between them in short slices, round robin: load from
 * other work on the machine then hits every path alike, which separate
 * back-to-back runs on a shared 2-CPU machine do not get.
 */
#define MAX_PATHS	32	/* socklb.sh: 8 paths, and 9 for the policies */

struct cpath {
	char	name[64];
	char	to[128];
	char	netns[256], cgroup[512], pin[512];
	int	ns_fd, cg_fd;
	struct sockaddr_storage ss;
	unsigned sslen;
	struct progcost pc;
	unsigned long n, attempts, errors;
	double	secs, prog_ns;
	int	first_err;
};

/* NAME=NETNS,CGROUP,IP:PORT[,BPFFS]; "-" for NETNS or CGROUP: stay where we are. */
static int path_parse(const char *spec, struct cpath *p)
{
	char buf[1024], *f[4] = {}, *save = NULL, *eq, *tok;
	int i = 0;

	if (strlen(spec) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, spec);
	eq = strchr(buf, '=');
	if (!eq || eq == buf || eq - buf >= (long)sizeof(p->name))
		return -EINVAL;
	*eq = '\0';
	memcpy(p->name, buf, eq - buf + 1);	/* the name and its NUL: checked to fit */
	for (tok = strtok_r(eq + 1, ",", &save); tok && i < 4; tok = strtok_r(NULL, ",", &save))
		f[i++] = tok;
	if (i < 3 || tok)
		return -EINVAL;
	if (strcmp(f[0], "-"))
		snprintf(p->netns, sizeof(p->netns), "%s", f[0]);
	if (strcmp(f[1], "-"))
		snprintf(p->cgroup, sizeof(p->cgroup), "%s", f[1]);
	snprintf(p->to, sizeof(p->to), "%s", f[2]);
	if (f[3])
		snprintf(p->pin, sizeof(p->pin), "%s", f[3]);
	return 0;
}

/* Open what entering the path needs, while /sys/fs/bpf is still in view. */
static int path_open(struct cpath *p)
{
	char path[600];
	int ret;

	p->ns_fd = p->cg_fd = -1;
	p->pc.stats_fd = -1;
	if (bench_sockaddr(p->to, &p->ss, &p->sslen))
		return bench_usage("connect", "path %s: '%s' is not IP:PORT", p->name, p->to);
	if (p->pin[0] && (ret = progcost_start(&p->pc, p->pin)))
		return ret;
	if (p->netns[0]) {
		if (strchr(p->netns, '/'))
			snprintf(path, sizeof(path), "%s", p->netns);
		else
			snprintf(path, sizeof(path), "/run/netns/%s", p->netns);
		p->ns_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (p->ns_fd < 0)
			return bench_err("open netns", path, -errno);
	}
	if (p->cgroup[0]) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", p->cgroup);
		p->cg_fd = open(path, O_WRONLY | O_CLOEXEC);
		if (p->cg_fd < 0)
			return bench_err("open cgroup", path, -errno);
	}
	return 0;
}

static void path_close(struct cpath *p)
{
	if (p->ns_fd >= 0)
		close(p->ns_fd);
	if (p->cg_fd >= 0)
		close(p->cg_fd);
	p->ns_fd = p->cg_fd = -1;
	progcost_close(&p->pc);
}

static int path_enter(struct cpath *p)
{
	if (p->ns_fd >= 0 && setns(p->ns_fd, CLONE_NEWNET))
		return bench_err("setns for path", p->name, -errno);
	/* "0": the writing process itself moves. */
	if (p->cg_fd >= 0 && write(p->cg_fd, "0", 1) != 1)
		return bench_err("join the cgroup of path", p->name, -errno);
	return 0;
}

/*
 * connect()+close() on path p for dur seconds (or until p->n reaches count
 * when counting). One blocking connect at a time, like a client opening a
 * connection per request. SO_LINGER 0 closes with RST: no TIME_WAIT, so
 * the 4-tuple space never runs out however long the run. SO_SNDTIMEO
 * bounds a connect that gets no answer.
 */
static int path_slice(struct cpath *p, double dur, bool counted, unsigned long count,
		      bool linger0)
{
	const struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	const struct timeval tmo = { .tv_sec = 1 };
	double t0, now;
	int ret = 0;

	progcost_begin(&p->pc);
	t0 = now = bench_now();
	while (now - t0 < dur && (!counted || !count || p->n < count) &&
	       p->errors < CONNECT_MAX_ERRORS) {
		int fd = socket(p->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			ret = bench_err("socket for", p->to, -errno);
			break;
		}
		if ((linger0 && setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg))) ||
		    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo))) {
			ret = -errno;
			close(fd);
			ret = bench_err("setsockopt on a socket for", p->to, ret);
			break;
		}
		p->attempts++;
		if (connect(fd, (struct sockaddr *)&p->ss, p->sslen)) {
			if (!p->first_err)
				p->first_err = errno;
			p->errors++;
		} else if (counted) {
			p->n++;
		}
		close(fd);
		now = bench_now();
	}
	if (counted)
		p->secs += now - t0;
	progcost_end(&p->pc);
	return ret;
}

static void path_report(const struct cpath *p, bool json)
{
	double rate = p->secs > 0 ? p->n / p->secs : 0;
	int i;

	if (json) {
		printf("{\"path\": \"%s\", \"target\": \"%s\", \"connects\": %lu, \"seconds\": %.3f, "
		       "\"rate\": %.1f, \"total\": %lu, \"errors\": %lu, \"first_error\": \"%s\", "
		       "\"prog_ns\": %.1f, \"progs\": {", p->name, p->to, p->n, p->secs, rate,
		       p->attempts, p->errors, p->first_err ? strerror(p->first_err) : "", p->prog_ns);
		for (i = 0; i < p->pc.n; i++)
			printf("%s\"%s\": %.1f", i ? ", " : "", p->pc.p[i].name, p->pc.p[i].ns);
		printf("}}\n");
		return;
	}
	printf("%s %s: %lu connects in %.2f s = %.0f/s, %.2f us each (%lu in all, %lu errors)\n",
	       p->name, p->to, p->n, p->secs, rate, rate > 0 ? 1e6 / rate : 0, p->attempts, p->errors);
	if (p->pc.n) {
		printf("  ferry programs: %.0f ns per connect:", p->prog_ns);
		for (i = 0; i < p->pc.n; i++)
			if (p->pc.p[i].ns > 0)
				printf(" %s %.0f", p->pc.p[i].name, p->pc.p[i].ns);
		printf("\n");
	}
}

int do_connect(int argc, char **argv)
{
	enum { O_TO = 256, O_SECONDS, O_COUNT, O_WARMUP, O_NOLINGER, O_PSTATS, O_NETNS,
	       O_CGROUP, O_CPATH, O_SLICE };
	static const struct option opts[] = {
		{ "to", required_argument, NULL, O_TO },
		{ "netns", required_argument, NULL, O_NETNS },
		{ "cgroup", required_argument, NULL, O_CGROUP },
		{ "prog-stats", required_argument, NULL, O_PSTATS },
		{ "path", required_argument, NULL, O_CPATH },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "slice", required_argument, NULL, O_SLICE },
		{ "count", required_argument, NULL, O_COUNT },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "no-linger0", no_argument, NULL, O_NOLINGER },
		{ NULL, 0, NULL, 0 },
	};
	static struct cpath paths[MAX_PATHS];
	struct cpath *single = &paths[0];
	double seconds = 2.5, warmup = 0.3, slice = 0;
	unsigned long count = 0;
	bool json = false, linger0 = true, more;
	int o, i, np = 0, ret = 0, failed = 0;

	memset(paths, 0, sizeof(paths));
	snprintf(single->name, sizeof(single->name), "connect");
	optind = 1;
	while ((o = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		switch (o) {
		case O_TO: snprintf(single->to, sizeof(single->to), "%s", optarg); break;
		case O_NETNS: snprintf(single->netns, sizeof(single->netns), "%s", optarg); break;
		case O_CGROUP: snprintf(single->cgroup, sizeof(single->cgroup), "%s", optarg); break;
		case O_PSTATS: snprintf(single->pin, sizeof(single->pin), "%s", optarg); break;
		case O_CPATH:
			if (np == MAX_PATHS)
				return bench_usage("connect", "at most %d paths", MAX_PATHS);
			/* paths[0] doubles as the --to path: --path entries start at 1. */
			if (path_parse(optarg, &paths[++np]))
				return bench_usage("connect", "--path: '%s' is not NAME=NETNS,CGROUP,IP:PORT[,BPFFS]",
						   optarg);
			break;
		case O_SECONDS:
			if ((ret = bench_double("connect", "--seconds", optarg, 0.01, 600, &seconds)))
				return ret;
			break;
		case O_SLICE:
			if ((ret = bench_double("connect", "--slice", optarg, 0.01, 600, &slice)))
				return ret;
			break;
		case O_COUNT:
			if ((ret = bench_ulong("connect", "--count", optarg, 1, 1UL << 40, &count)))
				return ret;
			break;
		case O_WARMUP:
			if ((ret = bench_double("connect", "--warmup", optarg, 0, 60, &warmup)))
				return ret;
			break;
		case O_NOLINGER: linger0 = false; break;
		case 'j': json = true; break;
		default: return bench_usage("connect", "bad option");
		}
	}
	if (optind < argc)
		return bench_usage("connect", "unexpected argument '%s'", argv[optind]);
	if (!single->to[0] == !np)
		return bench_usage("connect", "give either --to IP:PORT or --path ... (repeatable)");
	if (np == MAX_PATHS - 1 && single->to[0])
		return bench_usage("connect", "at most %d paths", MAX_PATHS - 1);
	/* The paths in use: paths[0] alone, or paths[1..np]. */
	{
		struct cpath *ps = single->to[0] ? paths : paths + 1;
		int n = single->to[0] ? 1 : np;

		if (slice <= 0 || slice > seconds)
			slice = seconds;
		for (i = 0; i < n; i++)
			if ((ret = path_open(&ps[i])))
				goto cleanup_n;
		/* Warmup: one unmeasured slice per path, then measured slices
		 * round robin until every path has its seconds. */
		for (i = 0; i < n && !ret; i++)
			if (warmup > 0 && !(ret = path_enter(&ps[i])))
				ret = path_slice(&ps[i], warmup, false, 0, linger0);
		do {
			more = false;
			for (i = 0; i < n && !ret; i++) {
				struct cpath *p = &ps[i];
				double left = seconds - p->secs;

				if (left <= 0 || p->errors >= CONNECT_MAX_ERRORS || (count && p->n >= count))
					continue;
				if ((ret = path_enter(p)) ||
				    (ret = path_slice(p, left < slice ? left : slice, true, count, linger0)))
					break;
				more = true;
			}
		} while (more && !ret);
		if (!ret) {
			for (i = 0; i < n; i++) {
				/* Program time includes the warmup: per connect attempt. */
				ps[i].prog_ns = progcost_stop(&ps[i].pc, ps[i].attempts);
				path_report(&ps[i], json);
				if (ps[i].errors) {
					fprintf(stderr, "Error: connect %s to '%s': %s (%d); %lu failed, figure not valid\n",
						ps[i].name, ps[i].to, strerror(ps[i].first_err), ps[i].first_err,
						ps[i].errors);
					failed = 1;
				} else if (!ps[i].n) {
					failed = 1;
				}
			}
		}
cleanup_n:
		for (i = 0; i < n; i++)
			path_close(&ps[i]);
	}
	return ret ? ret : failed;
}

/* ---- sink ------------------------------------------------------------- */

static volatile sig_atomic_t sink_stop;

static void on_stop(int sig)
{
	(void)sig;
	sink_stop = 1;
}

/*
 * One sink serves every backend address of the run (the direct path's and
 * the measured services' three): each connect, whichever backend it
 * reaches, costs the same wakeup of the same process. accepted per address
 * says which backends a balanced service used.
 */
#define SINK_MAX_LISTEN	8

struct sink_ep {
	const char	*addr;
	int		fd;
	unsigned long	accepted;
};

/* Accept and close what is queued on e; 0 or -errno. */
static int sink_drain(struct sink_ep *e)
{
	int c;

	/* A connection already reset is accepted all the same. */
	while ((c = accept4(e->fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		close(c);
		e->accepted++;
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
		return bench_err("accept on", e->addr, -errno);
	return 0;
}

static int sink_listen(struct sink_ep *e, unsigned long backlog)
{
	struct sockaddr_storage ss;
	unsigned sslen = 0;
	int one = 1;

	if (bench_sockaddr(e->addr, &ss, &sslen))
		return bench_usage("sink", "--listen: '%s' is not IP:PORT", e->addr);
	e->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (e->fd < 0)
		return bench_err("socket for", e->addr, -errno);
	if (setsockopt(e->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(e->fd, (struct sockaddr *)&ss, sslen) || listen(e->fd, backlog))
		return bench_err("listen on", e->addr, -errno);	/* the caller closes e->fd */
	return 0;
}

static void sink_report(const struct sink_ep *eps, int n, double secs, bool json)
{
	unsigned long total = 0;
	int i;

	for (i = 0; i < n; i++)
		total += eps[i].accepted;
	if (!json) {
		for (i = 0; i < n; i++)
			printf("sink %s: %lu connections accepted in %.1f s\n", eps[i].addr,
			       eps[i].accepted, secs);
		return;
	}
	printf("{\"accepted\": %lu, \"seconds\": %.1f, \"by_address\": {", total, secs);
	for (i = 0; i < n; i++)
		printf("%s\"%s\": %lu", i ? ", " : "", eps[i].addr, eps[i].accepted);
	printf("}}\n");
}

int do_sink(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_TIMEOUT, O_BACKLOG, O_READY };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "backlog", required_argument, NULL, O_BACKLOG },
		{ "ready", required_argument, NULL, O_READY },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa = { .sa_handler = on_stop };	/* no SA_RESTART: poll returns */
	struct sink_ep eps[SINK_MAX_LISTEN] = {};
	struct pollfd pfds[SINK_MAX_LISTEN];
	const char *ready = NULL;
	double timeout = 300, t0, deadline;
	unsigned long backlog = 4096;
	bool json = false;
	int o, i, n = 0, ret = 0;

	optind = 1;
	while ((o = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		switch (o) {
		case O_LISTEN:
			if (n == SINK_MAX_LISTEN)
				return bench_usage("sink", "at most %d --listen", SINK_MAX_LISTEN);
			eps[n++].addr = optarg;
			break;
		case O_TIMEOUT:
			if ((ret = bench_double("sink", "--timeout", optarg, 0.1, 3600, &timeout)))
				return ret;
			break;
		case O_BACKLOG:
			if ((ret = bench_ulong("sink", "--backlog", optarg, 1, 65535, &backlog)))
				return ret;
			break;
		case O_READY: ready = optarg; break;
		case 'j': json = true; break;
		default: return bench_usage("sink", "bad option");
		}
	}
	if (!n)
		return bench_usage("sink", "--listen IP:PORT is required");

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (i = 0; i < n; i++)
		eps[i].fd = -1;
	for (i = 0; i < n && !ret; i++) {
		ret = sink_listen(&eps[i], backlog);
		pfds[i] = (struct pollfd){ .fd = eps[i].fd, .events = POLLIN };
	}
	if (!ret && ready) {
		int rfd = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (rfd < 0) {
			ret = bench_err("ready file", ready, -errno);
		} else {
			dprintf(rfd, "%d\n", getpid());
			close(rfd);
		}
	}

	t0 = bench_now();
	deadline = t0 + timeout;
	while (!ret && !sink_stop) {
		double left = deadline - bench_now();

		if (left <= 0)
			break;
		if (poll(pfds, n, left > 0.5 ? 500 : (int)(left * 1000) + 1) < 0 && errno != EINTR) {
			ret = bench_err("poll on", eps[0].addr, -errno);
			break;
		}
		for (i = 0; i < n && !ret; i++)
			if (pfds[i].revents)
				ret = sink_drain(&eps[i]);
	}
	for (i = 0; i < n; i++)
		if (eps[i].fd >= 0)
			close(eps[i].fd);
	if (!ret)
		sink_report(eps, n, bench_now() - t0, json);
	return ret;
}

/* ---- genreg / genipt -------------------------------------------------- */

/*
 * The measured services (--vip, repeatable, each IP:PORT[,LB]) share the
 * backends given by --backend (repeatable): one service per policy over
 * the same listeners compares the policies on equal terms.
 */
#define GEN_MAX_MEASURED	16
#define GEN_MAX_BACKENDS	8

struct gen_opts {
	unsigned long services, backends_per;
	const char *vip[GEN_MAX_MEASURED], *backend[GEN_MAX_BACKENDS];
	int	nvip, nbackend;
	bool bump_weight;
};

static int gen_parse(const char *cmd, int argc, char **argv, struct gen_opts *g)
{
	enum { O_SVCS = 256, O_BPER, O_VIP, O_BE, O_BUMP };
	static const struct option opts[] = {
		{ "services", required_argument, NULL, O_SVCS },
		{ "backends-per", required_argument, NULL, O_BPER },
		{ "vip", required_argument, NULL, O_VIP },
		{ "backend", required_argument, NULL, O_BE },
		{ "bump-weight", no_argument, NULL, O_BUMP },
		{ NULL, 0, NULL, 0 },
	};
	int o, ret;

	memset(g, 0, sizeof(*g));
	g->backends_per = 1;
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_SVCS:
			if ((ret = bench_ulong(cmd, "--services", optarg, 1, FILLER_MAX_SERVICES, &g->services)))
				return ret;
			break;
		case O_BPER:
			if ((ret = bench_ulong(cmd, "--backends-per", optarg, 1, FILLER_MAX_BACKENDS,
					       &g->backends_per)))
				return ret;
			break;
		case O_VIP:
			if (g->nvip == GEN_MAX_MEASURED)
				return bench_usage(cmd, "at most %d --vip", GEN_MAX_MEASURED);
			g->vip[g->nvip++] = optarg;
			break;
		case O_BE:
			if (g->nbackend == GEN_MAX_BACKENDS)
				return bench_usage(cmd, "at most %d --backend", GEN_MAX_BACKENDS);
			g->backend[g->nbackend++] = optarg;
			break;
		case O_BUMP: g->bump_weight = true; break;
		default: return bench_usage(cmd, "bad option");
		}
	}
	if (optind < argc)
		return bench_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (!g->services)
		return bench_usage(cmd, "--services N is required");
	if (!g->nvip != !g->nbackend)
		return bench_usage(cmd, "--vip and --backend go together");
	if ((unsigned long)g->nvip > g->services)
		return bench_usage(cmd, "--services %lu cannot hold %d measured services", g->services,
				   g->nvip);
	return 0;
}

/* An endpoint in text form and host-order port, split by split_ep4(). */
struct gen_ep {
	char	ip[64];
	unsigned port;
	char	lb[32];		/* measured services: the policy, "" for the default */
};

/* "IP:PORT[,LB]" of --vip into e. */
static int gen_vip_parse(const char *s, struct gen_ep *e)
{
	char spec[128], *lb;

	if (strlen(s) >= sizeof(spec))
		return bench_usage("genreg", "--vip: '%s' is too long", s);
	strcpy(spec, s);
	e->lb[0] = '\0';
	lb = strchr(spec, ',');
	if (lb) {
		*lb++ = '\0';
		if (lb_parse(lb) < 0)
			return bench_usage("genreg", "--vip %s: '%s' is not a policy (registry \"lb\")", s, lb);
		snprintf(e->lb, sizeof(e->lb), "%s", lb);
	}
	return split_ep4("genreg", "--vip", spec, e->ip, sizeof(e->ip), &e->port);
}

/* Measured service i as a registry entry over the backends be[0..nbe). */
static void genreg_measured(const struct gen_ep *v, int i, int nvip, const struct gen_ep *be, int nbe)
{
	int j;

	/* One measured service keeps its old name; several are numbered. */
	printf("%s\n    {\"name\": \"bench/measured", i ? "," : "");
	if (nvip > 1)
		printf("-%d", i);
	printf("\", \"vip\": \"%s\", \"port\": %u, ", v->ip, v->port);
	if (v->lb[0])
		printf("\"lb\": \"%s\", ", v->lb);
	printf("\"backends\": [");
	for (j = 0; j < nbe; j++)
		printf("%s{\"ip\": \"%s\", \"port\": %u}", j ? ", " : "", be[j].ip, be[j].port);
	printf("]}");
}

int do_genreg(int argc, char **argv)
{
	struct gen_ep vips[GEN_MAX_MEASURED], bes[GEN_MAX_BACKENDS];
	char ip[64];
	unsigned port;
	struct gen_opts g;
	unsigned long i, j, fillers;
	int k, ret;

	if ((ret = gen_parse("genreg", argc, argv, &g)))
		return ret;
	/* All input checked before the first line is written. */
	for (k = 0; k < g.nvip; k++)
		if ((ret = gen_vip_parse(g.vip[k], &vips[k])))
			return ret;
	for (k = 0; k < g.nbackend; k++)
		if ((ret = split_ep4("genreg", "--backend", g.backend[k], bes[k].ip, sizeof(bes[k].ip),
				     &bes[k].port)))
			return ret;
	fillers = g.services - g.nvip;
	printf("{\n  \"services\": [");
	for (k = 0; k < g.nvip; k++)
		genreg_measured(&vips[k], k, g.nvip, bes, g.nbackend);
	for (i = 0; i < fillers; i++) {
		filler_vip(i, ip, sizeof(ip), &port);
		printf("%s\n    {\"name\": \"bench/f%lu\", \"vip\": \"%s\", \"port\": %u, \"backends\": [",
		       (i || g.nvip) ? "," : "", i, ip, port);
		for (j = 0; j < g.backends_per; j++) {
			filler_backend(i, j, ip, sizeof(ip), &port);
			printf("%s{\"ip\": \"%s\", \"port\": %u%s}", j ? ", " : "", ip, port,
			       g.bump_weight && i == 0 && j == 0 ? ", \"weight\": 2" : "");
		}
		printf("]}");
	}
	printf("\n  ]\n}\n");
	if (fflush(stdout) || ferror(stdout))
		return bench_err("writing", "stdout", -EIO);
	return 0;
}

static void ipt_service(unsigned long idx, const char *name, const char *vip, unsigned vport,
			const char *be, unsigned bport)
{
	printf("-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"%s cluster IP\" "
	       "-m tcp --dport %u -j KUBE-SVC-%016lX\n", vip, name, vport, idx);
	printf("-A KUBE-SVC-%016lX -m comment --comment \"%s -> %s:%u\" -j KUBE-SEP-%016lX\n",
	       idx, name, be, bport, idx);
	printf("-A KUBE-SEP-%016lX -s %s/32 -m comment --comment \"%s\" -j KUBE-MARK-MASQ\n",
	       idx, be, name);
	printf("-A KUBE-SEP-%016lX -p tcp -m comment --comment \"%s\" -m tcp "
	       "-j DNAT --to-destination %s:%u\n", idx, name, be, bport);
}

/*
 * kube-proxy's iptables mode, trimmed to what a connect from this node
 * walks: OUTPUT -> KUBE-SERVICES (one match rule per service, linear) ->
 * KUBE-SVC-* -> KUBE-SEP-* (hairpin mark + DNAT). The measured service is
 * the last rule of KUBE-SERVICES: the worst case of the linear chain.
 */
int do_genipt(int argc, char **argv)
{
	char vip[64], be[64], fip[64], fbe[64], name[64];
	unsigned vport, bport, fport, fbport;
	struct gen_opts g;
	unsigned long i;
	int ret;

	if ((ret = gen_parse("genipt", argc, argv, &g)))
		return ret;
	if (g.nvip != 1 || g.nbackend != 1)
		return bench_usage("genipt", "one --vip and one --backend are required");
	if ((ret = split_ep4("genipt", "--vip", g.vip[0], vip, sizeof(vip), &vport)) ||
	    (ret = split_ep4("genipt", "--backend", g.backend[0], be, sizeof(be), &bport)))
		return ret;
	printf("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
	       ":POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n");
	for (i = 0; i < g.services; i++)
		printf(":KUBE-SVC-%016lX - [0:0]\n:KUBE-SEP-%016lX - [0:0]\n", i, i);
	printf("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n");
	printf("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n");
	for (i = 0; i + 1 < g.services; i++) {
		filler_vip(i, fip, sizeof(fip), &fport);
		filler_backend(i, 0, fbe, sizeof(fbe), &fbport);
		snprintf(name, sizeof(name), "bench/f%lu", i);
		ipt_service(i, name, fip, fport, fbe, fbport);
	}
	ipt_service(g.services - 1, "bench/measured", vip, vport, be, bport);
	printf("COMMIT\n");
	if (fflush(stdout) || ferror(stdout))
		return bench_err("writing", "stdout", -EIO);
	return 0;
}

/* ---- stats ------------------------------------------------------------ */

int do_stats(int argc, char **argv)
{
	static const struct { const char *name; __u32 slot; } slots[] = {
		{ "connect_hit", FERRY_STAT_CONNECT_HIT },
		{ "connect_miss", FERRY_STAT_CONNECT_MISS },
		{ "connect_no_backend", FERRY_STAT_CONNECT_NO_BACKEND },
		{ "lookup_fail", FERRY_STAT_LOOKUP_FAIL },
		{ "revnat_update_fail", FERRY_STAT_REVNAT_UPDATE_FAIL },
	};
	char path[512];
	size_t i;
	int fd, err;

	if (argc != 3 || strcmp(argv[1], "--bpffs"))
		return bench_usage("stats", "--bpffs DIR is required");
	ferry_pin_path(path, sizeof(path), argv[2], FERRY_MAP_STATS);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return bench_err("open pinned map", path, -errno);
	printf("{");
	for (i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		__u64 v;

		if ((err = percpu_sum(fd, slots[i].slot, &v))) {
			close(fd);
			printf("}\n");
			return bench_err("read", path, err);
		}
		printf("%s\"%s\": %llu", i ? ", " : "", slots[i].name, (unsigned long long)v);
	}
	printf("}\n");
	close(fd);
	return 0;
}

/* ---- mark ------------------------------------------------------------- */

/* The slot of backend (a, port) in service s; -1 if it has none. */
static int svc_backend_find(const struct svc_state *s, const struct faddr *a, int port)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		const struct ferry_backend *b = &s->bes[i].be;

		if (b->family == a->family && ntohs(b->port) == port &&
		    !memcmp(b->addr, a->a, sizeof(b->addr)))
			return i;
	}
	return -1;
}

/*
 * A backend's health written into its ferry_be_v1 entry, as ferryd's health
 * checker writes a verdict (under the writers' lock): a backend made
 * UNHEALTHY without a daemon probing it, and without touching the slots or
 * the maglev table, which still name it. So the policies meet it and draw
 * again, which is the work the "one out" measurements are after (draining
 * or weight 0 would be planned out of weighted's and maglev's tables).
 */
int do_mark(int argc, char **argv)
{
	enum { O_PIN = 256, O_SVC, O_BE, O_HEALTH };
	static const struct option opts[] = {
		{ "bpffs", required_argument, NULL, O_PIN },
		{ "service", required_argument, NULL, O_SVC },
		{ "backend", required_argument, NULL, O_BE },
		{ "health", required_argument, NULL, O_HEALTH },
		{ NULL, 0, NULL, 0 },
	};
	const char *pin = NULL, *svc = NULL, *be = NULL, *which = NULL;
	struct ferry_svc_key k = {};
	struct ferry_maps fm;
	struct ferry_backend b;
	struct svc_state *s;
	struct fstate st;
	struct faddr va, ba;
	int o, vport, bport, proto, health = -1, pos, ret;

	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_PIN: pin = optarg; break;
		case O_SVC: svc = optarg; break;
		case O_BE: be = optarg; break;
		case O_HEALTH:
			if ((health = health_parse(optarg)) < 0)
				return bench_usage("mark", "--health: '%s' is not unknown, healthy, degraded "
						   "or unhealthy", optarg);
			break;
		default: return bench_usage("mark", "bad option");
		}
	}
	if (optind < argc || !pin || !svc || !be || health < 0)
		return bench_usage("mark", "--bpffs, --service, --backend and --health are required");
	if (endpoint_parse(svc, &va, &vport, &proto))
		return bench_usage("mark", "--service: '%s' is not VIP:PORT[/tcp|udp]", svc);
	if (endpoint_parse(be, &ba, &bport, NULL))
		return bench_usage("mark", "--backend: '%s' is not IP:PORT", be);
	memcpy(k.addr, va.a, sizeof(k.addr));
	k.family = va.family;
	k.port = htons(vport);
	k.proto = proto;

	ferry_maps_init(&fm);
	if ((ret = ferry_maps_open(pin, &fm, &which)))
		return bench_err("open pinned map", which ? which : pin, ret);
	if ((ret = maps_lock(&fm, -1))) {
		ferry_maps_close(&fm);
		return bench_err("lock", pin, ret);
	}
	if ((ret = fstate_load(&fm, &st))) {
		ret = bench_err("read state", pin, ret);
		goto unlock;
	}
	s = fstate_find(&st, &k);
	pos = s ? svc_backend_find(s, &ba, bport) : -1;
	if (pos < 0) {
		ret = bench_err(s ? "no such backend in the service" : "no such service", s ? be : svc,
				-ENOENT);
	} else {
		b = s->bes[pos].be;
		b.health = health;
		if (bpf_map_update_elem(fm.be, &s->bes[pos].id, &b, BPF_EXIST))
			ret = bench_err("write", FERRY_MAP_BACKEND, -errno);
	}
	fstate_free(&st);
unlock:
	maps_unlock(&fm);
	ferry_maps_close(&fm);
	return ret;
}
