// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The VLAN devices ferryd records for the XDP LB (ferry_xvlan_v1) from
 * rtnetlink link messages: xvlan_parse() on crafted RTM_NEWLINK /
 * RTM_DELLINK messages laid out as the kernel sends them (this kernel may
 * have no 8021q to make a real one).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>
#include <cmocka.h>

#include "xvlan.h"

static char buf[4096];

struct link_spec {
	int	type;			/* RTM_NEWLINK / RTM_DELLINK */
	int	ifindex;
	const char *kind;		/* NULL: no IFLA_LINKINFO */
	int	link;			/* IFLA_LINK; 0: none */
	int	vid;			/* -1: no IFLA_VLAN_ID */
	int	proto;			/* host order; 0: no IFLA_VLAN_PROTOCOL */
	bool	netnsid;		/* IFLA_LINK_NETNSID: lower device elsewhere */
	bool	no_data;		/* IFLA_LINKINFO without IFLA_INFO_DATA */
};

/* A link message as rtnl_fill_ifinfo() lays one out (the attributes that
 * matter here, among others that do not). */
static struct nlmsghdr *link_msg(const struct link_spec *s)
{
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	struct nlattr *li, *data;

	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = s->type;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = s->ifindex;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, "eth0.100");
	mnl_attr_put_u32(nlh, IFLA_MTU, 1500);
	if (s->link)
		mnl_attr_put_u32(nlh, IFLA_LINK, s->link);
	if (s->netnsid)
		mnl_attr_put_u32(nlh, IFLA_LINK_NETNSID, 1);
	if (s->kind) {
		li = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
		mnl_attr_put_strz(nlh, IFLA_INFO_KIND, s->kind);
		if (!s->no_data) {
			data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
			if (s->proto)
				mnl_attr_put_u16(nlh, IFLA_VLAN_PROTOCOL, htons(s->proto));
			if (s->vid >= 0)
				mnl_attr_put_u16(nlh, IFLA_VLAN_ID, s->vid);
			mnl_attr_nest_end(nlh, data);
		}
		mnl_attr_nest_end(nlh, li);
	}
	mnl_attr_put_u32(nlh, IFLA_GROUP, 0);
	return nlh;
}

/* Specs name the fields that matter; the flags default to false. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static void vlan_device(void **state)
{
	struct link_spec s = { RTM_NEWLINK, 7, "vlan", 2, 100, ETH_P_8021Q };
	struct ferry_xvlan v;
	__u32 ifindex;

	(void)state;
	assert_int_equal(xvlan_parse(link_msg(&s), &ifindex, &v), 1);
	assert_int_equal(ifindex, 7);
	assert_int_equal(v.lower_ifindex, 2);
	assert_int_equal(ntohs(v.proto), 0x8100);
	assert_int_equal(ntohs(v.tci), 100);
	/* As the program stores it: the tag's four bytes as on the wire. */
	assert_memory_equal(&v.proto, "\x81\x00\x00\x64", 4);
}

static void vlan_8021ad(void **state)
{
	struct link_spec s = { RTM_NEWLINK, 9, "vlan", 3, 4094, ETH_P_8021AD };
	struct ferry_xvlan v;
	__u32 ifindex;

	(void)state;
	assert_int_equal(xvlan_parse(link_msg(&s), &ifindex, &v), 1);
	assert_int_equal(ifindex, 9);
	assert_int_equal(v.lower_ifindex, 3);
	assert_memory_equal(&v.proto, "\x88\xa8\x0f\xfe", 4);
}

static void vlan_without_protocol_is_8021q(void **state)
{
	struct link_spec s = { RTM_NEWLINK, 7, "vlan", 2, 5, 0 };
	struct ferry_xvlan v;
	__u32 ifindex;

	(void)state;
	assert_int_equal(xvlan_parse(link_msg(&s), &ifindex, &v), 1);
	assert_int_equal(ntohs(v.proto), 0x8100);
	assert_int_equal(ntohs(v.tci), 5);
}

static void other_links_are_none(void **state)
{
	struct link_spec veth = { RTM_NEWLINK, 4, "veth", 5, -1, 0 };
	struct link_spec phys = { RTM_NEWLINK, 2, NULL, 0, -1, 0 };
	struct link_spec del = { RTM_DELLINK, 7, "vlan", 2, 100, ETH_P_8021Q };
	struct link_spec elsewhere = { RTM_NEWLINK, 7, "vlan", 2, 100, ETH_P_8021Q, .netnsid = true };
	struct ferry_xvlan v;
	__u32 ifindex;

	(void)state;
	assert_int_equal(xvlan_parse(link_msg(&veth), &ifindex, &v), 0);
	assert_int_equal(ifindex, 4);
	assert_int_equal(xvlan_parse(link_msg(&phys), &ifindex, &v), 0);
	assert_int_equal(ifindex, 2);
	/* A VLAN device going: no entry any more. */
	assert_int_equal(xvlan_parse(link_msg(&del), &ifindex, &v), 0);
	assert_int_equal(ifindex, 7);
	/* Its lower device in another namespace: that ifindex is not ours. */
	assert_int_equal(xvlan_parse(link_msg(&elsewhere), &ifindex, &v), 0);
	assert_int_equal(ifindex, 7);
}

static void malformed_vlan_refused(void **state)
{
	static const struct link_spec bad[] = {
		{ RTM_NEWLINK, 7, "vlan", 2, -1, ETH_P_8021Q },		/* no VLAN id */
		{ RTM_NEWLINK, 7, "vlan", 0, 100, ETH_P_8021Q },	/* no lower device */
		{ RTM_NEWLINK, 7, "vlan", 2, 4095, ETH_P_8021Q },	/* VID out of range */
		{ RTM_NEWLINK, 7, "vlan", 2, 100, 0x0800 },		/* not a tag protocol */
		{ RTM_NEWLINK, 7, "vlan", 2, 100, ETH_P_8021Q, .no_data = true },
	};
	struct ferry_xvlan v;
	__u32 ifindex;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (xvlan_parse(link_msg(&bad[i]), &ifindex, &v) != -EINVAL)
			fail_msg("row %zu: expected -EINVAL", i);
		/* Still named: the caller drops any entry it had. */
		assert_int_equal(ifindex, 7);
	}
}

static void truncated_or_foreign_refused(void **state)
{
	struct link_spec s = { RTM_NEWLINK, 7, "vlan", 2, 100, ETH_P_8021Q };
	struct nlmsghdr *nlh;
	struct ferry_xvlan v;
	__u32 ifindex;

	(void)state;
	/* An attribute running past the message. */
	nlh = link_msg(&s);
	nlh->nlmsg_len -= 6;
	assert_int_equal(xvlan_parse(nlh, &ifindex, &v), -EINVAL);
	/* No room for the ifinfomsg. */
	nlh = link_msg(&s);
	nlh->nlmsg_len = mnl_nlmsg_size(4);
	assert_int_equal(xvlan_parse(nlh, &ifindex, &v), -EINVAL);
	assert_int_equal(ifindex, 0);
	/* Not a link message. */
	nlh = link_msg(&s);
	nlh->nlmsg_type = RTM_NEWADDR;
	assert_int_equal(xvlan_parse(nlh, &ifindex, &v), -EINVAL);
	assert_int_equal(ifindex, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(vlan_device),
		cmocka_unit_test(vlan_8021ad),
		cmocka_unit_test(vlan_without_protocol_is_8021q),
		cmocka_unit_test(other_links_are_none),
		cmocka_unit_test(malformed_vlan_refused),
		cmocka_unit_test(truncated_or_foreign_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
