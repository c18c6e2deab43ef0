// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The node's VLAN devices, from rtnetlink, for the XDP load balancer's
 * ferry_xvlan_v1: bpf_fib_lookup names a route's VLAN device, the program
 * sends by its lower device with its tag. The parser is apart from the
 * socket so that a crafted message can test it (this kernel may have no
 * 8021q to make real ones).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <linux/if_ether.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>
#include <bpf/bpf.h>

#include "maps.h"
#include "xvlan.h"

#define XVLAN_VID_MAX	4094

/* Attributes of one nesting level by type, the last of each kept. */
struct attrs {
	const struct nlattr *a[IFLA_MAX + 1];
	int max;
};

static int attr_cb(const struct nlattr *attr, void *data)
{
	struct attrs *t = data;
	int type = mnl_attr_get_type(attr);

	if (type <= t->max)
		t->a[type] = attr;
	return MNL_CB_OK;
}

static bool u32_ok(const struct nlattr *a)
{
	return a && mnl_attr_validate(a, MNL_TYPE_U32) >= 0;
}

static bool u16_ok(const struct nlattr *a)
{
	return a && mnl_attr_validate(a, MNL_TYPE_U16) >= 0;
}

/* Do the attributes after off fill the message? libmnl stops quietly at
 * one that runs past it. */
static bool attrs_whole(const struct nlmsghdr *nlh, unsigned int off)
{
	const char *end = (const char *)nlh + nlh->nlmsg_len;
	const char *p = mnl_nlmsg_get_payload_offset(nlh, off);
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, off)
		p = (const char *)mnl_attr_next(a);
	return p >= end;
}

int xvlan_parse(const struct nlmsghdr *nlh, __u32 *ifindex, struct ferry_xvlan *v)
{
	struct attrs top = { .max = IFLA_MAX }, info = { .max = IFLA_INFO_MAX },
		     data = { .max = IFLA_VLAN_MAX };
	const struct ifinfomsg *ifi;
	__u16 vid, proto = ETH_P_8021Q;
	const char *kind;

	*ifindex = 0;
	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*ifi)) ||
	    (nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK))
		return -EINVAL;
	ifi = mnl_nlmsg_get_payload(nlh);
	if (ifi->ifi_index <= 0)
		return -EINVAL;
	*ifindex = ifi->ifi_index;
	if (nlh->nlmsg_type == RTM_DELLINK)
		return 0;
	if (mnl_attr_parse(nlh, sizeof(*ifi), attr_cb, &top) < 0 || !attrs_whole(nlh, sizeof(*ifi)))
		return -EINVAL;
	if (!top.a[IFLA_LINKINFO])
		return 0;	/* a device without rtnl_link_ops: no VLAN */
	if (mnl_attr_parse_nested(top.a[IFLA_LINKINFO], attr_cb, &info) < 0)
		return -EINVAL;
	if (!info.a[IFLA_INFO_KIND] || mnl_attr_validate(info.a[IFLA_INFO_KIND], MNL_TYPE_NUL_STRING) < 0)
		return -EINVAL;
	kind = mnl_attr_get_str(info.a[IFLA_INFO_KIND]);
	if (strcmp(kind, "vlan"))
		return 0;
	/* Its lower device in another namespace: an ifindex we cannot use. */
	if (top.a[IFLA_LINK_NETNSID])
		return 0;
	if (!u32_ok(top.a[IFLA_LINK]) || !info.a[IFLA_INFO_DATA] ||
	    mnl_attr_parse_nested(info.a[IFLA_INFO_DATA], attr_cb, &data) < 0 ||
	    !u16_ok(data.a[IFLA_VLAN_ID]))
		return -EINVAL;
	vid = mnl_attr_get_u16(data.a[IFLA_VLAN_ID]);
	if (data.a[IFLA_VLAN_PROTOCOL]) {
		if (!u16_ok(data.a[IFLA_VLAN_PROTOCOL]))
			return -EINVAL;
		proto = ntohs(mnl_attr_get_u16(data.a[IFLA_VLAN_PROTOCOL]));
	}
	if (vid > XVLAN_VID_MAX || (proto != ETH_P_8021Q && proto != ETH_P_8021AD) ||
	    !mnl_attr_get_u32(top.a[IFLA_LINK]))
		return -EINVAL;
	memset(v, 0, sizeof(*v));
	v->lower_ifindex = mnl_attr_get_u32(top.a[IFLA_LINK]);
	v->proto = htons(proto);
	v->tci = htons(vid);
	return 1;
}

struct dump {
	struct xvlan_ent *ents;
	size_t n, cap;
};

static int dump_cb(const struct nlmsghdr *nlh, void *arg)
{
	struct dump *d = arg;
	struct ferry_xvlan v;
	__u32 ifindex;

	/* A link not understood is left out, as one that is no VLAN. */
	if (xvlan_parse(nlh, &ifindex, &v) != 1)
		return MNL_CB_OK;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct xvlan_ent *e = realloc(d->ents, cap * sizeof(*e));

		if (!e) {
			errno = ENOMEM;
			return MNL_CB_ERROR;
		}
		d->ents = e;
		d->cap = cap;
	}
	d->ents[d->n].ifindex = ifindex;
	d->ents[d->n++].v = v;
	return MNL_CB_OK;
}

int xvlan_read(struct xvlan_ent **ents, size_t *n)
{
	/* A link message with its statistics runs to a few KiB. */
	static char buf[32768];
	struct dump d = {};
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	struct nlattr *li;
	unsigned int seq = time(NULL), portid;
	ssize_t len;
	int ret, err = 0;

	*ents = NULL;
	*n = 0;
	nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID)) {
		err = -errno;
		goto cleanup;
	}
	portid = mnl_socket_get_portid(nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	/* Only VLAN devices, where the kernel knows the kind (8021q loaded;
	 * without it there are none, and it sends every link: parsed all the
	 * same). */
	li = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "vlan");
	mnl_attr_nest_end(nlh, li);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		err = -errno;
		goto cleanup;
	}
	do {
		len = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (len < 0) {
			err = -errno;
			goto cleanup;
		}
		ret = mnl_cb_run(buf, len, seq, portid, dump_cb, &d);
	} while (ret > MNL_CB_STOP);
	if (ret < 0)
		err = errno ? -errno : -EIO;
cleanup:
	mnl_socket_close(nl);
	if (err) {
		free(d.ents);
		return err;
	}
	*ents = d.ents;
	*n = d.n;
	return 0;
}

int xvlan_sync(int fd, const struct xvlan_ent *ents, size_t n, size_t *written, size_t *removed)
{
	__u32 *keys = malloc(n ? n * sizeof(*keys) : 1);
	struct ferry_xvlan *vals = malloc(n ? n * sizeof(*vals) : 1);
	size_t i;
	int err;

	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		keys[i] = ents[i].ifindex;
		vals[i] = ents[i].v;
	}
	err = map_kv_sync(fd, keys, vals, sizeof(*keys), sizeof(*vals), n, written, removed);
	free(keys);
	free(vals);
	return err;
}

int xvlan_apply(int fd, const struct nlmsghdr *nlh, bool *changed)
{
	struct ferry_xvlan v, cur;
	__u32 ifindex;
	int ret;

	*changed = false;
	ret = xvlan_parse(nlh, &ifindex, &v);
	if (!ifindex)
		return 0;		/* not a link: nothing to do with it */
	if (ret == 1) {
		if (!bpf_map_lookup_elem(fd, &ifindex, &cur) && !memcmp(&cur, &v, sizeof(v)))
			return 0;
		if (bpf_map_update_elem(fd, &ifindex, &v, BPF_ANY))
			return -errno;
		*changed = true;
		return 0;
	}
	/* No VLAN device (any more), or one we cannot read: untagged. */
	if (bpf_map_delete_elem(fd, &ifindex))
		return errno == ENOENT ? 0 : -errno;
	*changed = true;
	return 0;
}
