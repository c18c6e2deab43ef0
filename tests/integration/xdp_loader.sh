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
#   rule that a backend listens on the VIP's port (DSR translates no port).
source "$(dirname "$0")/lib.sh"
need_root
command -v unshare >/dev/null || skip_all "unshare not installed"
command -v bpftool >/dev/null || skip_all "bpftool not installed (make deps)"
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
if hidden "$B/ferryd" --registry "$REG" --bpffs "$PIN" --cgroup "$CG" --once --metrics-addr off \
	--xdp-iface fb0 --xdp-flows 4096 > "$TMP/ferryd.log" 2>&1; then
	echo "PASS xdp_loads_without_kernel_config"
else
	echo "FAIL xdp_loads_without_kernel_config: $(tail -5 "$TMP/ferryd.log" | tr '\n' ' ')"
fi
check warns_of_missing_config grep -q "no kernel config" "$TMP/ferryd.log"
check xdp_link_pinned test -e "$PIN/links/xdp_fb0"
check vip_indexed bash -c '"$1" --bpffs "$2" -j xdp stats | grep -q "198.51.100.70:80"' _ "$B/ferryctl" "$PIN"
# With the config readable, libbpf reads it and ferryd says nothing.
nsenter --net="/run/netns/$NS_B" "$B/ferryd" --registry "$REG" --bpffs "$PIN" --cgroup "$CG" --once --metrics-addr off \
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
	nsenter --net="/run/netns/$NS_B" "$B/ferryd" --registry "$REG3" --bpffs "$DPIN" --cgroup "$CG" --once \
		--metrics-addr off --max-services 4 --decap-iface dc0 > "$TMP/dc-$run.log" 2>&1
	assert_eq "decap_too_many_pairs_${run}_runs_on" "$?" 0
	check "decap_too_many_pairs_${run}_warns" grep -q "2 outer address(es) x 3 XDP VIP(s) bound here = 6 pairs, room for 4 (--max-services); the decap keeps its last pairs" "$TMP/dc-$run.log"
done
"$B/ferryctl" --bpffs "$DPIN" teardown >/dev/null 2>&1
