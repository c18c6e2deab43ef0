/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The node's VLAN devices for ferry_xvlan_v1 (include/ferry/xdp.h), from
 * rtnetlink: RTM_NEWLINK / RTM_DELLINK messages, of a dump at start and of
 * RTNLGRP_LINK after. Only devices of kind "vlan" whose lower device is in
 * the same network namespace are kept.
 */
#ifndef FERRY_XVLAN_H
#define FERRY_XVLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <linux/netlink.h>
#include <ferry/xdp.h>

struct xvlan_ent {
	__u32	ifindex;		/* the VLAN device: the key */
	struct ferry_xvlan v;
};

/*
 * One link message: 1 and *v when nlh is an RTM_NEWLINK of a VLAN device;
 * 0 when it is a link that is none (another kind, a lower device in another
 * namespace) or an RTM_DELLINK; -EINVAL when it is no link message, or a
 * VLAN device's attributes are missing or malformed. *ifindex is the link's
 * whenever its header could be read (also with -EINVAL), else 0.
 */
int xvlan_parse(const struct nlmsghdr *nlh, __u32 *ifindex, struct ferry_xvlan *v);
/* Every VLAN device of this network namespace (an RTM_GETLINK dump), malloc'd. */
int xvlan_read(struct xvlan_ent **ents, size_t *n);
/* Make fd (ferry_xvlan_v1) hold exactly ents[0..n) (map_kv_sync()). */
int xvlan_sync(int fd, const struct xvlan_ent *ents, size_t n, size_t *written, size_t *removed);
/* One link message into fd: a VLAN device written, any other link (or one
 * going, or one not understood) deleted. *changed when the map changed. */
int xvlan_apply(int fd, const struct nlmsghdr *nlh, bool *changed);

#endif /* FERRY_XVLAN_H */
