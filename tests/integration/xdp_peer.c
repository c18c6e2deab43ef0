// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Helper of tests/integration/xdp.sh (and tools/bench/xdp.sh):
 *
 *   xdp_peer serve PORT NAME [SECONDS]  line echo server on [::]:PORT (v4 and
 *                                       v6); answers "NAME <line>"; exits after
 *                                       SECONDS (default 60)
 *   xdp_peer once ADDR PORT MSG         one connection, one line, prints the reply
 *   xdp_peer session ADDR PORT          one connection; each stdin line is sent
 *                                       and its reply printed (stays open)
 *   xdp_peer syn ADDR PORT N            N non-blocking connects: each sends its
 *                                       SYN and is closed at once, waiting for
 *                                       nothing (the caller polls for the
 *                                       SYNs' effects)
 *   xdp_peer ethtool IFACE txcsum|gro on|off
 *                                       legacy ethtool ioctls (full checksums on
 *                                       frames that XDP bounces)
 *   xdp_peer xdp-pass IFACE             attach an XDP program that passes
 *                                       everything (netlink, no pin: it goes with
 *                                       the device). A veth only takes XDP_TX'd
 *                                       frames from its peer when it runs XDP.
 *   xdp_peer ipip OUTER SRC DST PORT MSG [SRC DST PORT MSG]...
 *                                       IPIP to OUTER carrying, for each group,
 *                                       one UDP datagram SRC:40000 -> DST:PORT
 *                                       with MSG (a raw socket, sent in order);
 *                                       an IPv6 OUTER sends IPv6 in IPv6
 *   xdp_peer udp-recv PORT LAST         print the payload of each datagram to
 *                                       any address on PORT (v4 and v6), one
 *                                       a line, until one is LAST
 *
 * Every wait is bounded (3 s per connect/reply).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/udp.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <bpf/libbpf.h>

#include "xdp_bench.skel.h"

#define MAXC	64

static int usage(void)
{
	fprintf(stderr, "usage: xdp_peer serve PORT NAME [SECONDS] | once ADDR PORT MSG | "
			"session ADDR PORT | syn ADDR PORT N | ethtool IFACE txcsum|gro on|off | xdp-pass IFACE | "
			"ipip OUTER SRC DST PORT MSG... | udp-recv PORT LAST\n");
	return 2;
}

static int serve(int port, const char *name, int secs)
{
	struct pollfd p[MAXC + 1];
	char buf[MAXC][512];
	size_t fill[MAXC] = {};
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	int one = 1, zero = 0, n = 1, i, ls;
	time_t end = time(NULL) + secs;

	ls = socket(AF_INET6, SOCK_STREAM, 0);
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) ||
	    bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 64)) {
		perror("xdp_peer serve");
		return 1;
	}
	p[0].fd = ls;
	p[0].events = POLLIN;
	while (time(NULL) < end) {
		if (poll(p, n, 200) <= 0)
			continue;
		if ((p[0].revents & POLLIN) && n <= MAXC) {
			int c = accept(ls, NULL, NULL);

			if (c >= 0) {
				p[n].fd = c;
				p[n].events = POLLIN;
				fill[n - 1] = 0;
				n++;
			}
		}
		for (i = 1; i < n; i++) {
			ssize_t r;
			char *nl;

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(p[i].fd, buf[i - 1] + fill[i - 1], sizeof(buf[0]) - 1 - fill[i - 1]);
			if (r <= 0) {
				close(p[i].fd);
				p[i] = p[n - 1];
				memcpy(buf[i - 1], buf[n - 2], fill[n - 2]);
				fill[i - 1] = fill[n - 2];
				n--;
				i--;
				continue;
			}
			fill[i - 1] += r;
			buf[i - 1][fill[i - 1]] = '\0';
			while ((nl = strchr(buf[i - 1], '\n'))) {
				char out[600];
				int len;

				*nl = '\0';
				len = snprintf(out, sizeof(out), "%s %s\n", name, buf[i - 1]);
				if (write(p[i].fd, out, len) != len)
					break;
				fill[i - 1] -= nl + 1 - buf[i - 1];
				memmove(buf[i - 1], nl + 1, fill[i - 1] + 1);
			}
		}
	}
	return 0;
}

static int sockaddr_of(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (void *)ss;
	struct sockaddr_in6 *s6 = (void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*len = sizeof(*s6);
	} else {
		fprintf(stderr, "xdp_peer: bad address %s\n", addr);
		return -1;
	}
	return 0;
}

static int dial(const char *addr, int port)
{
	struct sockaddr_storage ss;
	struct timeval tv = { .tv_sec = 3 };
	socklen_t len;
	int fd;

	if (sockaddr_of(addr, port, &ss, &len))
		return -1;
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, len)) {
		perror("xdp_peer connect");
		close(fd);
		return -1;
	}
	return fd;
}

/* n SYNs: connect() sends the SYN before it returns EINPROGRESS; the
 * socket is closed right away (in SYN_SENT: no RST, no retransmission). */
static int syn_only(const char *addr, int port, int n)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int i, fd;

	if (n < 1 || sockaddr_of(addr, port, &ss, &len))
		return 2;
	for (i = 0; i < n; i++) {
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (fd < 0 || (connect(fd, (struct sockaddr *)&ss, len) && errno != EINPROGRESS)) {
			perror("xdp_peer syn");
			if (fd >= 0)
				close(fd);
			return 1;
		}
		close(fd);
	}
	return 0;
}

/* Send one line, print the one-line reply. */
static int exchange(int fd, const char *msg)
{
	char out[512], in[600];
	size_t got = 0;
	int len = snprintf(out, sizeof(out), "%s\n", msg);

	if (write(fd, out, len) != len)
		return -1;
	while (got < sizeof(in) - 1) {
		ssize_t r = read(fd, in + got, 1);

		if (r <= 0)
			return -1;
		if (in[got++] == '\n')
			break;
	}
	in[got] = '\0';
	fputs(in, stdout);
	fflush(stdout);
	return 0;
}

static int do_ethtool(const char *ifname, const char *what, const char *val)
{
	struct ethtool_value ev = { .data = !strcmp(val, "on") };
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM, 0), err;

	if (!strcmp(what, "txcsum"))
		ev.cmd = ETHTOOL_STXCSUM;
	else if (!strcmp(what, "gro"))
		ev.cmd = ETHTOOL_SGRO;
	else
		return usage();
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)&ev;
	err = ioctl(fd, SIOCETHTOOL, &ifr);
	if (err)
		perror("xdp_peer ethtool");
	close(fd);
	return err ? 1 : 0;
}

static int xdp_pass(const char *ifname)
{
	struct xdp_bench_bpf *o = xdp_bench_bpf__open_and_load();
	int ifindex = if_nametoindex(ifname), err;

	if (!o || !ifindex) {
		fprintf(stderr, "xdp_peer xdp-pass %s: %s\n", ifname, strerror(errno));
		xdp_bench_bpf__destroy(o);
		return 1;
	}
	err = bpf_xdp_attach(ifindex, bpf_program__fd(o->progs.bench_pass), XDP_FLAGS_DRV_MODE, NULL);
	if (err)
		fprintf(stderr, "xdp_peer xdp-pass %s: %s\n", ifname, strerror(-err));
	xdp_bench_bpf__destroy(o);	/* the attachment holds the program */
	return err ? 1 : 0;
}

static __u32 csum_add(__u32 sum, const void *p, size_t n)
{
	const __u8 *b = p;
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += b[i] << 8 | b[i + 1];
	if (n & 1)
		sum += b[n - 1] << 8;
	return sum;
}

static __u16 csum_fold(__u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons(~sum & 0xffff);
}

/* One inner datagram, SRC:40000 -> DST:PORT carrying MSG, written at pkt:
 * IPv4 + UDP (checksum 0: none) or IPv6 + UDP (checksummed: IPv6 requires
 * it). Returns its length, 0 if it does not fit or an address is not of
 * the family. */
static size_t inner_udp(__u8 *pkt, size_t cap, int af, char **g)
{
	size_t len = strlen(g[3]), l3 = af == AF_INET ? sizeof(struct iphdr) : sizeof(struct ip6_hdr);
	size_t tot = l3 + sizeof(struct udphdr) + len;
	struct udphdr *u = (struct udphdr *)(pkt + l3);

	if (tot > cap)
		return 0;
	memset(pkt, 0, tot);
	u->source = htons(40000);
	u->dest = htons(atoi(g[2]));
	u->len = htons(sizeof(*u) + len);
	memcpy(u + 1, g[3], len);
	if (af == AF_INET) {
		struct iphdr *ip = (struct iphdr *)pkt;

		if (inet_pton(AF_INET, g[0], &ip->saddr) != 1 || inet_pton(AF_INET, g[1], &ip->daddr) != 1)
			return 0;
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons(tot);
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		ip->check = csum_fold(csum_add(0, ip, sizeof(*ip)));
	} else {
		struct ip6_hdr *ip6 = (struct ip6_hdr *)pkt;
		__u32 sum;

		if (inet_pton(AF_INET6, g[0], &ip6->ip6_src) != 1 ||
		    inet_pton(AF_INET6, g[1], &ip6->ip6_dst) != 1)
			return 0;
		ip6->ip6_flow = htonl(6u << 28);
		ip6->ip6_plen = u->len;
		ip6->ip6_nxt = IPPROTO_UDP;
		ip6->ip6_hlim = 64;
		/* pseudo-header: addresses, upper-layer length, next header */
		sum = csum_add(0, &ip6->ip6_src, 32);
		sum += sizeof(*u) + len + IPPROTO_UDP;
		u->check = csum_fold(csum_add(sum, u, sizeof(*u) + len));
		if (!u->check)
			u->check = 0xffff;
	}
	return tot;
}

/* IPIP by hand: the kernel writes the outer header of a raw IPPROTO_IPIP
 * (IPPROTO_IPV6 for IPv6 in IPv6) socket's datagrams, we write the inner
 * header and UDP. */
static int send_ipip(const char *outer, char **groups, int n)
{
	struct sockaddr_storage o = {};
	socklen_t olen;
	int af, fd, i;

	if (inet_pton(AF_INET, outer, &((struct sockaddr_in *)&o)->sin_addr) == 1) {
		af = AF_INET;
		olen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, outer, &((struct sockaddr_in6 *)&o)->sin6_addr) == 1) {
		af = AF_INET6;
		olen = sizeof(struct sockaddr_in6);
	} else {
		fprintf(stderr, "xdp_peer ipip: bad address %s\n", outer);
		return 2;
	}
	o.ss_family = af;
	fd = socket(af, SOCK_RAW, af == AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6);
	if (fd < 0) {
		perror("xdp_peer ipip: socket");
		return 1;
	}
	for (i = 0; i + 4 <= n; i += 4) {
		__u8 pkt[512];
		size_t tot = inner_udp(pkt, sizeof(pkt), af, groups + i);

		if (!tot) {
			fprintf(stderr, "xdp_peer ipip: bad datagram %s -> %s\n", groups[i], groups[i + 1]);
			close(fd);
			return 2;
		}
		if (sendto(fd, pkt, tot, 0, (struct sockaddr *)&o, olen) != (ssize_t)tot) {
			perror("xdp_peer ipip: sendto");
			close(fd);
			return 1;
		}
	}
	close(fd);
	return 0;
}

/* Every datagram's payload, a line each, until LAST (bounded: 5 s each). */
static int udp_recv(int port, const char *last)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	struct timeval tv = { .tv_sec = 5 };
	int zero = 0, fd;
	char buf[512];
	ssize_t n;

	fd = socket(AF_INET6, SOCK_DGRAM, 0);
	if (fd < 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("xdp_peer udp-recv");
		return 1;
	}
	while ((n = recv(fd, buf, sizeof(buf) - 1, 0)) >= 0) {
		buf[n] = '\0';
		printf("%s\n", buf);
		fflush(stdout);
		if (!strcmp(buf, last)) {
			close(fd);
			return 0;
		}
	}
	perror("xdp_peer udp-recv");
	close(fd);
	return 1;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 4 && !strcmp(argv[1], "serve"))
		return serve(atoi(argv[2]), argv[3], argc > 4 ? atoi(argv[4]) : 60);
	if (argc == 5 && !strcmp(argv[1], "once")) {
		int fd = dial(argv[2], atoi(argv[3])), err;

		if (fd < 0)
			return 1;
		err = exchange(fd, argv[4]);
		close(fd);
		return err ? 1 : 0;
	}
	if (argc == 4 && !strcmp(argv[1], "session")) {
		char line[512];
		int fd = dial(argv[2], atoi(argv[3]));

		if (fd < 0)
			return 1;
		printf("connected\n");
		fflush(stdout);
		while (fgets(line, sizeof(line), stdin)) {
			line[strcspn(line, "\n")] = '\0';
			if (exchange(fd, line)) {
				printf("error\n");
				fflush(stdout);
			}
		}
		close(fd);
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "syn"))
		return syn_only(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 3 && !strcmp(argv[1], "xdp-pass"))
		return xdp_pass(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "ethtool"))
		return do_ethtool(argv[2], argv[3], argv[4]);
	if (argc >= 7 && (argc - 3) % 4 == 0 && !strcmp(argv[1], "ipip"))
		return send_ipip(argv[2], argv + 3, argc - 3);
	if (argc == 4 && !strcmp(argv[1], "udp-recv"))
		return udp_recv(atoi(argv[2]), argv[3]);
	return usage();
}
