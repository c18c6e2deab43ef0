// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket load-balancing benchmark: connect()+close() rate through a ferry
 * VIP, through kube-proxy style iptables DNAT, and straight to the backend.
 *
 *   connect  the load generator, run in a client netns (and cgroup)
 *   sink     accept-and-close server in the backend netns
 *   genreg   the registry a ferryd --once loads (measured + filler services)
 *   genipt   the same services as kube-proxy's iptables nat rules
 *   stats    ferry's connect counters from a pin dir (did ferry translate?)
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
		__u64	ns0, cnt0;
		double	ns;	/* per connect, at the end */
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
	char dir[512], path[1024];
	struct dirent *e;
	DIR *d;
	int i, err = 0;

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
	for (i = 0; i < pc->n; i++)
		if ((err = prog_counters(pc->p[i].fd, &pc->p[i].ns0, &pc->p[i].cnt0)))
			return bench_err("program info in", dir, err);
	return 0;
}

/* Stop; ns per connect of each program and in all. */
static double progcost_stop(struct progcost *pc, unsigned long connects)
{
	double sum = 0;
	__u64 ns = 0, cnt = 0;
	int i;

	for (i = 0; i < pc->n; i++) {
		pc->p[i].ns = 0;
		if (connects && !prog_counters(pc->p[i].fd, &ns, &cnt))
			pc->p[i].ns = (double)(ns - pc->p[i].ns0) / connects;
		sum += pc->p[i].ns;
	}
	if (pc->stats_fd >= 0)
		close(pc->stats_fd);
	pc->stats_fd = -1;
	return sum;
}

/* Join the network namespace `ip netns add NAME` made (or a path to one). */
static int enter_netns(const char *name)
{
	char path[512];
	int fd, err;

	if (strchr(name, '/'))
		snprintf(path, sizeof(path), "%s", name);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bench_err("open netns", path, -errno);
	err = setns(fd, CLONE_NEWNET) ? -errno : 0;
	close(fd);
	return err ? bench_err("setns", path, err) : 0;
}

int do_connect(int argc, char **argv)
{
	enum { O_TO = 256, O_SECONDS, O_COUNT, O_WARMUP, O_NOLINGER, O_PSTATS, O_NETNS };
	static const struct option opts[] = {
		{ "to", required_argument, NULL, O_TO },
		{ "netns", required_argument, NULL, O_NETNS },
		{ "prog-stats", required_argument, NULL, O_PSTATS },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "count", required_argument, NULL, O_COUNT },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "no-linger0", no_argument, NULL, O_NOLINGER },
		{ NULL, 0, NULL, 0 },
	};
	const struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	const struct timeval tmo = { .tv_sec = 1 };
	struct sockaddr_storage ss;
	unsigned sslen = 0;
	struct progcost pc = { .stats_fd = -1 };
	const char *to = NULL, *pstats = NULL, *netns = NULL;
	double seconds = 2.5, warmup = 0.3, t0, tw, now, t_end, prog_ns = 0;
	unsigned long count = 0, n = 0, total = 0, errors = 0;
	bool json = false, linger0 = true;
	int o, first_err = 0, ret;

	optind = 1;
	while ((o = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		switch (o) {
		case O_TO: to = optarg; break;
		case O_SECONDS:
			if ((ret = bench_double("connect", "--seconds", optarg, 0.01, 600, &seconds)))
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
		case O_PSTATS: pstats = optarg; break;
		case O_NETNS: netns = optarg; break;
		case 'j': json = true; break;
		default: return bench_usage("connect", "bad option");
		}
	}
	if (!to)
		return bench_usage("connect", "--to IP:PORT is required");
	if (bench_sockaddr(to, &ss, &sslen))
		return bench_usage("connect", "--to: '%s' is not IP:PORT", to);

	/*
	 * One blocking connect at a time, like a client opening a connection
	 * per request. SO_LINGER 0 closes with RST: no TIME_WAIT, so the
	 * 4-tuple space never runs out however long the run. SO_SNDTIMEO
	 * bounds a connect that gets no answer.
	 */
	if (pstats && (ret = progcost_start(&pc, pstats))) {
		progcost_close(&pc);
		return ret;
	}
	/* The netns is entered after the pins are opened: `ip netns exec`
	 * would remount /sys and hide /sys/fs/bpf. */
	if (netns && (ret = enter_netns(netns))) {
		progcost_close(&pc);
		return ret;
	}
	t0 = bench_now();
	tw = t0 + warmup;
	t_end = tw + seconds;
	now = t0;
	while (now < t_end && (!count || n < count)) {
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			ret = -errno;
			progcost_close(&pc);
			return bench_err("socket for", to, ret);
		}
		if ((linger0 && setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg))) ||
		    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo))) {
			ret = -errno;
			close(fd);
			progcost_close(&pc);
			return bench_err("setsockopt on a socket for", to, ret);
		}
		if (connect(fd, (struct sockaddr *)&ss, sslen)) {
			if (!first_err)
				first_err = errno;
			close(fd);
			if (++errors >= CONNECT_MAX_ERRORS)
				break;
			now = bench_now();
			continue;
		}
		close(fd);
		total++;
		now = bench_now();
		if (now >= tw)
			n++;
	}
	now = bench_now();
	/* Counters ran from before the warmup: per connect over all of them
	 * (the last, failed attempts included). */
	prog_ns = progcost_stop(&pc, total + errors);
	if (json) {
		int i;

		printf("{\"target\": \"%s\", \"connects\": %lu, \"seconds\": %.3f, \"rate\": %.1f, "
		       "\"total\": %lu, \"errors\": %lu, \"first_error\": \"%s\", \"prog_ns\": %.1f, \"progs\": {",
		       to, n, now > tw ? now - tw : 0, now > tw ? n / (now - tw) : 0, total, errors,
		       first_err ? strerror(first_err) : "", prog_ns);
		for (i = 0; i < pc.n; i++)
			printf("%s\"%s\": %.1f", i ? ", " : "", pc.p[i].name, pc.p[i].ns);
		printf("}}\n");
	} else if (now > tw && n) {
		int i;

		printf("connect %s: %lu connects in %.2f s = %.0f/s, %.2f us each (%lu in all, %lu errors)\n",
		       to, n, now - tw, n / (now - tw), (now - tw) * 1e6 / n, total, errors);
		if (pc.n)
			printf("ferry programs: %.0f ns per connect:", prog_ns);
		for (i = 0; i < pc.n; i++)
			printf(" %s %.0f", pc.p[i].name, pc.p[i].ns);
		if (pc.n)
			printf("\n");
	}
	progcost_close(&pc);
	if (errors) {
		fprintf(stderr, "Error: connect to '%s': %s (%d); %lu failed, figure not valid\n",
			to, strerror(first_err), first_err, errors);
		return 1;
	}
	return n ? 0 : 1;
}

/* ---- sink ------------------------------------------------------------- */

static volatile sig_atomic_t sink_stop;

static void on_stop(int sig)
{
	(void)sig;
	sink_stop = 1;
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
	struct sockaddr_storage ss;
	unsigned sslen = 0;
	const char *listen_on = NULL, *ready = NULL;
	double timeout = 300, t0, deadline;
	unsigned long backlog = 4096, accepted = 0;
	bool json = false;
	int o, fd, one = 1, ret;

	optind = 1;
	while ((o = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		switch (o) {
		case O_LISTEN: listen_on = optarg; break;
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
	if (!listen_on)
		return bench_usage("sink", "--listen IP:PORT is required");
	if (bench_sockaddr(listen_on, &ss, &sslen))
		return bench_usage("sink", "--listen: '%s' is not IP:PORT", listen_on);

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return bench_err("socket for", listen_on, -errno);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&ss, sslen) || listen(fd, backlog)) {
		ret = -errno;
		close(fd);
		return bench_err("listen on", listen_on, ret);
	}
	if (ready) {
		int rfd = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (rfd < 0) {
			ret = -errno;
			close(fd);
			return bench_err("ready file", ready, ret);
		}
		dprintf(rfd, "%d\n", getpid());
		close(rfd);
	}

	t0 = bench_now();
	deadline = t0 + timeout;
	while (!sink_stop) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		double left = deadline - bench_now();
		int c;

		if (left <= 0)
			break;
		if (poll(&pfd, 1, left > 0.5 ? 500 : (int)(left * 1000) + 1) < 0 && errno != EINTR) {
			ret = -errno;
			close(fd);
			return bench_err("poll on", listen_on, ret);
		}
		/* Drain the queue; a connection already reset is accepted all the same. */
		while ((c = accept4(fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
			close(c);
			accepted++;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED) {
			ret = -errno;
			close(fd);
			return bench_err("accept on", listen_on, ret);
		}
	}
	close(fd);
	if (json)
		printf("{\"listen\": \"%s\", \"accepted\": %lu, \"seconds\": %.1f}\n",
		       listen_on, accepted, bench_now() - t0);
	else
		printf("sink %s: %lu connections accepted in %.1f s\n", listen_on, accepted,
		       bench_now() - t0);
	return 0;
}

/* ---- genreg / genipt -------------------------------------------------- */

struct gen_opts {
	unsigned long services, backends_per;
	const char *vip, *backend;
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
		case O_VIP: g->vip = optarg; break;
		case O_BE: g->backend = optarg; break;
		case O_BUMP: g->bump_weight = true; break;
		default: return bench_usage(cmd, "bad option");
		}
	}
	if (optind < argc)
		return bench_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (!g->services)
		return bench_usage(cmd, "--services N is required");
	if (!g->vip != !g->backend)
		return bench_usage(cmd, "--vip and --backend go together");
	return 0;
}

int do_genreg(int argc, char **argv)
{
	char vip[64], be[64], ip[64];
	unsigned vport, bport, port;
	struct gen_opts g;
	unsigned long i, j, fillers;
	int ret;

	if ((ret = gen_parse("genreg", argc, argv, &g)))
		return ret;
	fillers = g.services;
	printf("{\n  \"services\": [");
	if (g.vip) {
		if ((ret = split_ep4("genreg", "--vip", g.vip, vip, sizeof(vip), &vport)) ||
		    (ret = split_ep4("genreg", "--backend", g.backend, be, sizeof(be), &bport)))
			return ret;
		printf("\n    {\"name\": \"bench/measured\", \"vip\": \"%s\", \"port\": %u, "
		       "\"backends\": [{\"ip\": \"%s\", \"port\": %u}]}", vip, vport, be, bport);
		fillers--;
	}
	for (i = 0; i < fillers; i++) {
		filler_vip(i, ip, sizeof(ip), &port);
		printf("%s\n    {\"name\": \"bench/f%lu\", \"vip\": \"%s\", \"port\": %u, \"backends\": [",
		       (i || g.vip) ? "," : "", i, ip, port);
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
	if (!g.vip)
		return bench_usage("genipt", "--vip and --backend are required");
	if ((ret = split_ep4("genipt", "--vip", g.vip, vip, sizeof(vip), &vport)) ||
	    (ret = split_ep4("genipt", "--backend", g.backend, be, sizeof(be), &bport)))
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
