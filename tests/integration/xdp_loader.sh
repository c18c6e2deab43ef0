#!/usr/bin/env bash
# ferryd's XDP loader on less usual nodes:
# - a kernel config that cannot be read (a container without /boot, a kernel
#   without CONFIG_IKCONFIG_PROC): libbpf fails any object with a __kconfig
#   extern then, so ferryd hands it a config of its own and says so. The
#   test hides the config from ferryd alone: in a private mount namespace, a
#   device node nobody can open is bind-mounted over /proc/config.gz (and
#   /boot/config-$(uname -r) where it exists);
# - a jumbo-frame device: the gateway leg's MTU is the device's, not 1500;
# - ferryctl, editing the pinned state ferryd left, keeps an xdp service's
#   rule that a backend listens on the VIP's port (DSR translates no port);
# - a restart without an --xdp-iface / --decap-iface an earlier run had:
#   that link is detached and unpinned, and the interface can change roles;
# - --xdp-src with a bad prefix length is refused at start;
# - forwarding off: warned of for the families the XDP backends use, once.
source "$(dirname "$0")/lib.sh"
need_root
command -v unshare >/dev/null || skip_all "unshare not installed"
command -v bpftool >/dev/null || skip_all "bpftool not installed (make deps)"
command -v jq >/dev/null || skip_all "jq not installed"
world_up
ip -n "$NS_B" link set fb0 mtu 9000
ip -n "$NS_C" link set fc0 mtu 9000
REG="$TMP/registry.json"
printf '{ "services": [ { "name": "kc/web", "vip": "198.51.100.70", "port": 80, "xdp": true,\n  "backends": [ { "ip": "203.0.113.70", "port": 80 } ] } ] }\n' > "$REG"

# Char device 0:0 has no driver: open() fails (ENXIO; EACCES on a nodev mount).
mknod "$TMP/noconfig" c 0 0 || skip_all "cannot mknod"
hide="mount --bind '$TMP/noconfig' /proc/config.gz 2>/dev/null || [ ! -e /proc/config.gz ]"
if [ -e "/boot/config-$(uname -r)" ]; then
	hide="$hide && mount --bind '$TMP/noconfig' '/boot/config-$(uname -r)'"
fi

hidden() {	# command...: run with the kernel config hidden, in our backend netns
	unshare -m --propagation private bash -c "$hide && exec nsenter --net=/run/netns/$NS_B \"\$@\"" _ "$@"
}

check config_hidden hidden bash -c '! gzip -cd /proc/config.gz >/dev/null 2>&1 &&
	! [ -r "/boot/config-$(uname -r)" ] || ! cat "/boot/config-$(uname -r)" >/dev/null 2>&1'
if hidden "$B/ferryd" --registry "$REG" --bpffs "$PIN" --state-dir "$(state_dir "$PIN")" --cgroup "$CG" --once --metrics-addr off \
	--xdp-iface fb0 --xdp-flows 4096 > "$TMP/ferryd.log" 2>&1; then
	echo "PASS xdp_loads_without_kernel_config"
else
	echo "FAIL xdp_loads_without_kernel_config: $(tail -5 "$TMP/ferryd.log" | tr '\n' ' ')"
fi
check warns_of_missing_config grep -q "no kernel config" "$TMP/ferryd.log"
check xdp_link_pinned test -e "$PIN/links/xdp_fb0"
check vip_indexed bash -c '"$1" --bpffs "$2" -j xdp stats | grep -q "198.51.100.70:80"' _ "$B/ferryctl" "$PIN"
# With the config readable, libbpf reads it and ferryd says nothing.
nsenter --net="/run/netns/$NS_B" "$B/ferryd" --registry "$REG" --bpffs "$PIN" --state-dir "$(state_dir "$PIN")" --cgroup "$CG" --once --metrics-addr off \
	--xdp-iface fb0 --xdp-flows 4096 --xdp-gateway 02:00:00:00:00:01 > "$TMP/ferryd2.log" 2>&1 &
FERRYD_PID=$!
wait "$FERRYD_PID"
rc=$?
FERRYD_PID=""
assert_eq xdp_loads_with_kernel_config "$rc" 0
check no_warning_with_config bash -c '! grep -q "no kernel config" "$1"' _ "$TMP/ferryd2.log"
gw_mtu=$(bpftool -j map dump pinned "$PIN/ferry_xcfg_v1" 2>/dev/null | grep -o '"gw_mtu": *[0-9]*' | grep -o '[0-9]*$')
assert_eq gateway_mtu_is_the_devices "$gw_mtu" 9000

# ferryctl adds a backend to the xdp service only on the VIP's port.
"$B/ferryctl" --bpffs "$PIN" backend add 198.51.100.70:80 203.0.113.71:8080 > "$TMP/add.out" 2>&1
assert_eq ferryctl_xdp_port_refused "$?" 1
check ferryctl_xdp_port_names_backend grep -q "'203.0.113.71:8080'" "$TMP/add.out"
check ferryctl_xdp_port_nothing_added bash -c '! "$1" --bpffs "$2" service show 198.51.100.70:80 | grep -q 203.0.113.71' \
	_ "$B/ferryctl" "$PIN"
check ferryctl_xdp_same_port_added bash -c '"$1" --bpffs "$2" backend add 198.51.100.70:80 203.0.113.71:80 >/dev/null 2>&1' \
	_ "$B/ferryctl" "$PIN"
check ferryctl_xdp_backend_listed bash -c '"$1" --bpffs "$2" service show 198.51.100.70:80 | grep -q "203.0.113.71:80"' \
	_ "$B/ferryctl" "$PIN"

# The decap on a node with more (outer address, VIP) pairs than its map holds
# (--max-services 4; 2 addresses x 3 bound XDP VIPs = 6): ferryd warns and
# the decap keeps its last pairs, at the first start and at a restart, where
# failing would crash-loop the daemon.
DPIN="$PIN/dc"
REG3="$TMP/registry3.json"
{
	printf '{ "services": ['
	for i in 0 1 2; do
		[ $i = 0 ] || printf ','
		printf ' { "name": "kc/d%s", "vip": "198.51.100.8%s", "port": 80, "xdp": true,' $i $i
		printf ' "backends": [ { "ip": "203.0.113.8%s", "port": 80 } ] }' $i
	done
	printf ' ] }\n'
} > "$REG3"
# A device of its own: fb0 carries the LB's program.
ip -n "$NS_B" link add dc0 type veth peer name dc1
ip -n "$NS_B" link set dc1 up
ip -n "$NS_B" link set dc0 up
ip -n "$NS_B" addr add 192.0.2.50/24 dev dc0
ip -n "$NS_B" addr add 192.0.2.51/24 dev dc0
for i in 0 1 2; do ip -n "$NS_B" addr add 198.51.100.8$i/32 dev lo; done
for run in first restart; do
	nsenter --net="/run/netns/$NS_B" "$B/ferryd" --registry "$REG3" --bpffs "$DPIN" --state-dir "$(state_dir "$DPIN")" --cgroup "$CG" --once \
		--metrics-addr off --max-services 4 --decap-iface dc0 > "$TMP/dc-$run.log" 2>&1
	assert_eq "decap_too_many_pairs_${run}_runs_on" "$?" 0
	check "decap_too_many_pairs_${run}_warns" grep -q "2 outer address(es) x 3 XDP VIP(s) bound here = 6 pairs, room for 4 (--max-services); the decap keeps its last pairs" "$TMP/dc-$run.log"
done
"$B/ferryctl" --bpffs "$DPIN" teardown >/dev/null 2>&1
# ---- links of interfaces a restarted ferryd no longer has ----
# Daemons in the backend netns, on its veth fb0 (and on a veth whose name
# makes its LB link's name read like a decap link's), --resync 0: syncs only
# when asked.
export FERRYD_NETNS=$NS_B
ip -n "$NS_B" link add decap_lk7 type veth peer name dlk7p &&
	ip -n "$NS_B" link set decap_lk7 up && ip -n "$NS_B" link set dlk7p up
xdp_prog_on() {	# iface: the name of the XDP program on it, or nothing
	ip -n "$NS_B" -d link show dev "$1" | sed -n 's/.*prog\/xdp id [0-9]* name \([^ ]*\).*/\1/p'
}
link_id() {	# pinned link: its id, or nothing
	bpftool -j link show pinned "$1" 2>/dev/null | jq -r '.id // empty'
}
L="$PIN/links"

ferryd_start "$REG" --resync 0 --xdp-iface fb0 --xdp-flows 4096 || echo "FAIL stale_lb_start"
assert_eq lb_attached "$(xdp_prog_on fb0)" ferry_xdp_lb
id=$(link_id "$L/xdp_fb0")
ferryd_stop
ferryd_start "$REG" --resync 0 --xdp-iface fb0 --xdp-flows 4096 || echo "FAIL stale_lb_restart"
check lb_link_id_known test -n "$id"
assert_eq lb_link_kept_while_configured "$(link_id "$L/xdp_fb0")" "$id"
ferryd_stop
# Neither --xdp-iface nor --decap-iface: the XDP part loads nothing, and
# still retires the link.
ferryd_start "$REG" --resync 0 || echo "FAIL stale_no_xdp_start"
check lb_link_unpinned_without_xdp_iface test ! -e "$L/xdp_fb0"
assert_eq lb_detached_without_xdp_iface "$(xdp_prog_on fb0)" ""
check lb_detach_logged grep -q "link xdp_fb0: detached and unpinned (no --xdp-iface fb0 now)" "$TMP/ferryd.log"
ferryd_stop

# An interface moved from the LB to the decap: the LB's link goes first, so
# the decap can attach (one XDP program per device).
ferryd_start "$REG" --resync 0 --xdp-iface fb0 --xdp-flows 4096 || echo "FAIL stale_lb_start2"
assert_eq lb_attached_again "$(xdp_prog_on fb0)" ferry_xdp_lb
ferryd_stop
check decap_starts_on_former_lb_iface ferryd_start "$REG" --resync 0 --decap-iface fb0
check lb_link_gone_for_decap test ! -e "$L/xdp_fb0"
check decap_link_pinned test -e "$L/xdp_decap_fb0"
assert_eq decap_attached "$(xdp_prog_on fb0)" ferry_xdp_decap
id=$(link_id "$L/xdp_decap_fb0")
ferryd_stop
# "xdp_decap_fb0" starts with "xdp_" too: it is the decap's, and kept.
ferryd_start "$REG" --resync 0 --decap-iface fb0 || echo "FAIL stale_decap_restart"
check decap_link_id_known test -n "$id"
assert_eq decap_link_kept_while_configured "$(link_id "$L/xdp_decap_fb0")" "$id"
ferryd_stop
ferryd_start "$REG" --resync 0 || echo "FAIL stale_no_decap_start"
check decap_link_unpinned_without_decap_iface test ! -e "$L/xdp_decap_fb0"
assert_eq decap_detached_without_decap_iface "$(xdp_prog_on fb0)" ""
ferryd_stop

# An LB on "decap_lk7" pins "xdp_decap_lk7", which reads as a decap link on
# "lk7": a link this run attaches through is kept, whatever its name reads as.
ferryd_start "$REG" --resync 0 --xdp-iface decap_lk7 --xdp-flows 4096 || echo "FAIL stale_ambiguous_start"
id=$(link_id "$L/xdp_decap_lk7")
ferryd_stop
ferryd_start "$REG" --resync 0 --xdp-iface decap_lk7 --xdp-flows 4096 || echo "FAIL stale_ambiguous_restart"
check ambiguous_link_id_known test -n "$id"
assert_eq lb_link_named_like_decap_kept "$(link_id "$L/xdp_decap_lk7")" "$id"
assert_eq lb_on_decap_named_iface "$(xdp_prog_on decap_lk7)" ferry_xdp_lb
ferryd_stop
ferryd_start "$REG" --resync 0 || echo "FAIL stale_ambiguous_no_xdp"
check lb_link_named_like_decap_detached test ! -e "$L/xdp_decap_lk7"
assert_eq lb_on_decap_named_iface_detached "$(xdp_prog_on decap_lk7)" ""
ferryd_stop

# ---- --xdp-src: a prefix length of digits only, in its family's range ----
# Refused while parsing the options (exit 2), before anything loads.
src_refused() {	# value, what the error says
	local out rc
	out=$("$B/ferryd" --registry "$REG" --bpffs "$PIN" --state-dir "$(state_dir "$PIN")" --cgroup "$CG" --once --metrics-addr off \
		--xdp-src "$1" 2>&1)
	rc=$?
	[ "$rc" = 2 ] && grep -qF -- "--xdp-src: '$1' $2" <<<"$out" ||
		{ echo "  --xdp-src '$1': exit $rc: $out"; return 1; }
}
notnum="is not PREFIX/LEN: the length is not a number"
check xdp_src_trailing_junk_refused src_refused 10.0.0.0/24junk "$notnum"
check xdp_src_empty_length_refused src_refused 10.0.0.0/ "$notnum"
check xdp_src_signed_length_refused src_refused 10.0.0.0/+24 "$notnum"
check xdp_src_v6_trailing_junk_refused src_refused 2001:db8::/96x "$notnum"
check xdp_src_v4_length_over_32_refused src_refused 10.0.0.0/33 "needs an IPv4 prefix length of 8..32"
check xdp_src_v4_length_under_8_refused src_refused 10.0.0.0/7 "needs an IPv4 prefix length of 8..32"
check xdp_src_v6_length_under_64_refused src_refused 2001:db8::/63 "needs an IPv6 prefix length of 64..128"
check xdp_src_v6_length_over_128_refused src_refused 2001:db8::/129 "needs an IPv6 prefix length of 64..128"
check xdp_src_too_long_refused src_refused "10.0.0.0/24$(printf '%060d' 0)" "is too long for PREFIX/LEN"
# --xdp-ring-size: a prime from 4099 (every backend of the largest service
# can own an entry) to 1048573, digits only.
ring_refused() {	# value
	local out rc
	out=$("$B/ferryd" --registry "$REG" --bpffs "$PIN" --state-dir "$(state_dir "$PIN")" --cgroup "$CG" --once --metrics-addr off \
		--xdp-ring-size "$1" 2>&1)
	rc=$?
	[ "$rc" = 2 ] && grep -qF -- "--xdp-ring-size: '$1' is not a prime from 4099 to 1048573" <<<"$out" ||
		{ echo "  --xdp-ring-size '$1': exit $rc: $out"; return 1; }
}
check xdp_ring_size_tiny_refused ring_refused 2
check xdp_ring_size_under_4099_refused ring_refused 4093
check xdp_ring_size_not_prime_refused ring_refused 65535
check xdp_ring_size_over_max_refused ring_refused 1048583
check xdp_ring_size_signed_refused ring_refused +65537
# ferryctl xdp flows --max: a positive number, not one strtoul wraps.
max_refused() {	# value
	local out rc
	out=$("$B/ferryctl" --bpffs "$PIN" xdp flows --max "$1" 2>&1)
	rc=$?
	[ "$rc" != 0 ] && grep -qF -- "--max '$1' is not a positive number" <<<"$out" ||
		{ echo "  xdp flows --max '$1': exit $rc: $out"; return 1; }
}
check ferryctl_xdp_flows_negative_max_refused max_refused -1
check ferryctl_xdp_flows_zero_max_refused max_refused 0
check ferryctl_xdp_flows_junk_max_refused max_refused 5x
# A good one is taken: the LB's configuration has its mask (/24, network
# order: bytes ff ff ff 00, which the dump reads as 16777215 on x86).
nsenter --net="/run/netns/$NS_B" "$B/ferryd" --registry "$REG" --bpffs "$PIN" --state-dir "$(state_dir "$PIN")" --cgroup "$CG" --once \
	--metrics-addr off --xdp-iface fb0 --xdp-flows 4096 --xdp-src 198.51.100.0/24 > "$TMP/src.log" 2>&1
assert_eq xdp_src_valid_loads "$?" 0
src4_mask=$(bpftool -j map dump pinned "$PIN/ferry_xcfg_v1" 2>/dev/null | grep -o '"src4_mask": *[0-9]*' | grep -o '[0-9]*$')
assert_eq xdp_src_valid_mask_written "$src4_mask" 16777215

# ---- the forwarding warning: per family the XDP backends use, once ----
# fb0 forwards neither family; the registry has IPv4 backends only.
ns_sysctl "$NS_B" net.ipv4.conf.fb0.forwarding=0 net.ipv6.conf.fb0.forwarding=0
warns() {	# family (ipv4|ipv6): how many warnings of it the log holds
	grep -c "net\.$1\.conf\.fb0\.forwarding is 0" "$TMP/ferryd.log"
}
syncs_done() {	# n: this ferryd finished its nth sync (the status map is written
		# last, after the forwarding check)
	local st
	st=$("$B/ferryctl" --bpffs "$PIN" -j status 2>/dev/null) || return 1
	[ "$(jq -r --argjson p "$FERRYD_PID" 'select(.daemon_pid == $p) | .syncs' <<<"$st")" -ge "$1" ]
}
resync() {	# n: SIGHUP, wait for the nth sync
	kill -HUP "$FERRYD_PID" && wait_for 200 syncs_done "$1"
}
ferryd_start "$REG" --resync 0 --xdp-iface fb0 --xdp-flows 4096 || echo "FAIL fwd_start"
assert_eq ipv4_forwarding_warned "$(warns ipv4)" 1
assert_eq no_ipv6_warning_without_ipv6_backends "$(warns ipv6)" 0
check fwd_resync_2 resync 2
assert_eq forwarding_warning_not_repeated_by_sync "$(warns ipv4)" 1
# An XDP service with an IPv6 backend arrives: now IPv6 is warned of, once.
printf '{ "services": [ { "name": "kc/web", "vip": "198.51.100.70", "port": 80, "xdp": true,
  "backends": [ { "ip": "203.0.113.70", "port": 80 } ] },
  { "name": "kc/web6", "vip": "2001:db8:ffff::70", "port": 80, "xdp": true,
  "backends": [ { "ip": "2001:db8:70::1", "port": 80 } ] } ] }\n' > "$TMP/reg6.json"
mv "$TMP/reg6.json" "$REG"
check fwd_registry_synced wait_for 200 syncs_done 3
assert_eq ipv6_forwarding_warned_with_ipv6_backend "$(warns ipv6)" 1
check fwd_resync_4 resync 4
assert_eq ipv6_warning_not_repeated_by_sync "$(warns ipv6)" 1
assert_eq ipv4_warning_still_once "$(warns ipv4)" 1
# Forwarding on, then off again: a change, so warned again.
ns_sysctl "$NS_B" net.ipv4.conf.fb0.forwarding=1
check fwd_resync_5 resync 5
ns_sysctl "$NS_B" net.ipv4.conf.fb0.forwarding=0
check fwd_resync_6 resync 6
assert_eq ipv4_warned_again_after_change "$(warns ipv4)" 2
ferryd_stop
