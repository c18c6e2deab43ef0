#!/usr/bin/env bash
# The XDP load balancer end to end, in namespaces of our own:
#
#              netns S: bridge br0 (one L2 segment)
#         +--------+----------+-----------+
#        sc       sl         s1          s2
#         |        |          |           |
#    C: cc0    L: ll0     B1: b10     B2: b20
#   client     LB (XDP)   decap       decap
#   203.0.113.1  192.0.2.2  192.0.2.11  192.0.2.12
#   2001:db8:c::1 2001:db8::2  + 203.0.113.11/12, 2001:db8:c::11/12
#                              VIPs 198.51.100.10, 2001:db8:ffff::10 on lo
#
# The client reaches the VIPs through the LB (an on-link route to 192.0.2.2);
# ferryd --xdp-iface ll0 encapsulates to a backend, ferryd --decap-iface on
# each backend strips the tunnel, and the backend answers the client from the
# VIP on the shared segment. The LB has no address or route for the client's
# subnets, so a completed conversation proves the replies went directly (DSR).
# Then one backend's weight goes to 0: its established connection keeps
# working, new connections all go to the other backend.
#
# The backends' ferryd has the XDP services in its registry (b.json): the
# decap strips only tunnels whose inner destination is one of their VIPs
# bound on the node, not one to the backend's own address or to elsewhere
# (forwarding on), and it follows the node's addresses: added and removed
# while it runs, and across a restart that finds entries left by hand.
source "$(dirname "$0")/lib.sh"
need_root
[ -x "$B/tests/xdp_peer" ] || skip_all "helper $B/tests/xdp_peer not built"

X="xd$TAG$$"
NS_L="ferry-xl-$X"; NS_S="ferry-xs-$X"; NS_B1="ferry-x1-$X"; NS_B2="ferry-x2-$X"
NS_C="ferry-xc-$X"
PIN_B1="$PIN-b1"; PIN_B2="$PIN-b2"
PEER="$B/tests/xdp_peer"
VIP4=198.51.100.10
VIP6=2001:db8:ffff::10
VIP4B=198.51.100.11	# an XDP VIP in the backends' registry that no backend binds
D_PIDS=()

xdp_down() {
	local p d
	[ -n "${SESS_PID:-}" ] && kill "$SESS_PID" 2>/dev/null
	for p in "${D_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${D_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for d in "$PIN_B1" "$PIN_B2"; do
		[ -d "$d" ] || continue
		"$B/ferryctl" --bpffs "$d" teardown >/dev/null 2>&1
		find "$d" -mindepth 1 -depth \( -type f -o -type l \) -exec rm -f {} + 2>/dev/null
		find "$d" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null
		rmdir "$d" 2>/dev/null
	done
	for d in "$NS_L" "$NS_S" "$NS_B1" "$NS_B2"; do ns_remove "$d"; done
	world_down	# removes $CG with lb, b1, b2 below it
}
trap xdp_down EXIT

mac_of() {	# netns, device
	ip -n "$1" -o link show dev "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'
}

topology() {
	local ns i
	mkdir -p "$CG/lb" "$CG/b1" "$CG/b2" || skip_all "cannot create cgroups under $CG"
	for ns in "$NS_C" "$NS_L" "$NS_S" "$NS_B1" "$NS_B2"; do
		ip netns add "$ns" || skip_all "cannot create netns"
		ip -n "$ns" link set lo up
	done
	ip -n "$NS_S" link add br0 type bridge
	ip -n "$NS_S" link set br0 up
	ip link add cc0 netns "$NS_C" type veth peer name sc netns "$NS_S"
	ip link add ll0 netns "$NS_L" type veth peer name sl netns "$NS_S"
	ip link add b10 netns "$NS_B1" type veth peer name s1 netns "$NS_S"
	ip link add b20 netns "$NS_B2" type veth peer name s2 netns "$NS_S"
	# The tunnel leg carries 20/40 bytes more than the client's MTU.
	for i in sl s1 s2; do ip -n "$NS_S" link set "$i" mtu 1600; done
	ip -n "$NS_L" link set ll0 mtu 1600
	ip -n "$NS_B1" link set b10 mtu 1600
	ip -n "$NS_B2" link set b20 mtu 1600
	for i in sc sl s1 s2; do
		ip -n "$NS_S" link set "$i" master br0
		ip -n "$NS_S" link set "$i" up
	done
	# XDP_TX out of ll0 lands in sl's XDP ring: a veth takes such frames from
	# its peer only while it runs XDP itself (GRO-mode NAPI did not deliver
	# them here), so sl gets a program that passes everything.
	ip netns exec "$NS_S" "$PEER" xdp-pass sl || return 1

	ip -n "$NS_C" addr add 203.0.113.1/24 dev cc0
	ip -n "$NS_C" addr add 2001:db8:c::1/64 dev cc0 nodad
	ip -n "$NS_C" link set cc0 up
	# Frames the LB bounces lose checksum offload state: send full checksums.
	ip netns exec "$NS_C" "$PEER" ethtool cc0 txcsum off >/dev/null || return 1

	ip -n "$NS_L" addr add 192.0.2.2/24 dev ll0
	ip -n "$NS_L" addr add 2001:db8::2/64 dev ll0 nodad
	ip -n "$NS_L" link set ll0 up
	ns_sysctl "$NS_L" net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1 || return 1

	for i in 1 2; do
		ns=$NS_B1; [ $i = 2 ] && ns=$NS_B2
		ip -n "$ns" addr add 192.0.2.1$i/24 dev b${i}0
		ip -n "$ns" addr add 203.0.113.1$i/24 dev b${i}0
		ip -n "$ns" addr add 2001:db8::1$i/64 dev b${i}0 nodad
		ip -n "$ns" addr add 2001:db8:c::1$i/64 dev b${i}0 nodad
		ip -n "$ns" addr add $VIP4/32 dev lo
		ip -n "$ns" addr add $VIP6/128 dev lo nodad
		ip -n "$ns" link set b${i}0 up
		ns_sysctl "$ns" net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
			net.ipv4.conf.b${i}0.rp_filter=0 || return 1
		# LB -> backend next hops, fixed so the test needs no ARP timing.
		ip -n "$NS_L" neigh replace 192.0.2.1$i lladdr "$(mac_of "$ns" b${i}0)" dev ll0 nud permanent
		ip -n "$NS_L" neigh replace 2001:db8::1$i lladdr "$(mac_of "$ns" b${i}0)" dev ll0 nud permanent
	done

	# Client -> VIPs via the LB, on-link: the client shares no subnet with it.
	local lbmac
	lbmac=$(mac_of "$NS_L" ll0)
	ip -n "$NS_C" neigh replace 192.0.2.2 lladdr "$lbmac" dev cc0 nud permanent
	ip -n "$NS_C" neigh replace 2001:db8::2 lladdr "$lbmac" dev cc0 nud permanent
	ip -n "$NS_C" route add $VIP4/32 via 192.0.2.2 dev cc0 onlink
	ip -n "$NS_C" -6 route add $VIP6/128 via 2001:db8::2 dev cc0 onlink
}

registry() {	# weight of backend 1, weight of backend 2
	cat > "$TMP/lb.json.tmp" <<EOF
{ "services": [
  { "name": "xdp/web4", "vip": "$VIP4", "port": 80, "protocol": "tcp", "xdp": true,
    "backends": [ { "ip": "192.0.2.11", "port": 80, "weight": $1 },
                  { "ip": "192.0.2.12", "port": 80, "weight": $2 } ] },
  { "name": "xdp/web6", "vip": "$VIP6", "port": 80, "protocol": "tcp", "xdp": true,
    "backends": [ { "ip": "2001:db8::11", "port": 80, "weight": $1 },
                  { "ip": "2001:db8::12", "port": 80, "weight": $2 } ] } ] }
EOF
	mv "$TMP/lb.json.tmp" "$TMP/lb.json"
}

backend_registry() {	# the backends' view: the XDP services, and one whose VIP no backend binds
	cat > "$TMP/b.json" <<EOF
{ "services": [
  { "name": "xdp/web4", "vip": "$VIP4", "port": 80, "protocol": "tcp", "xdp": true,
    "backends": [ { "ip": "192.0.2.11", "port": 80 }, { "ip": "192.0.2.12", "port": 80 } ] },
  { "name": "xdp/web6", "vip": "$VIP6", "port": 80, "protocol": "tcp", "xdp": true,
    "backends": [ { "ip": "2001:db8::11", "port": 80 }, { "ip": "2001:db8::12", "port": 80 } ] },
  { "name": "xdp/unbound", "vip": "$VIP4B", "port": 80, "protocol": "tcp", "xdp": true,
    "backends": [ { "ip": "192.0.2.11", "port": 80 } ] } ] }
EOF
}

syncs() {	# pin dir -> number of syncs so far
	"$B/ferryctl" --bpffs "$1" -j status 2>/dev/null | sed -n 's/.*"syncs": *\([0-9]*\).*/\1/p'
}

synced_ok() {	# pin dir
	"$B/ferryctl" --bpffs "$1" -j status 2>/dev/null | grep -q '"last_ok": *true'
}

start_ferryd() {	# netns, pin, cgroup, log, args...
	local ns=$1 pin=$2 cg=$3 log=$4; shift 4
	# nsenter, not ip netns exec: that one remounts /sys, hiding bpffs and cgroup2.
	nsenter --net="/run/netns/$ns" "$B/ferryd" --bpffs "$pin" --state-dir "$(state_dir "$pin")" --cgroup "$cg" --resync 0 --metrics-addr off "$@" >"$log" 2>&1 &
	D_PID=$!
	D_PIDS+=($D_PID)
	wait_for 600 synced_ok "$pin" || { echo "ferryd in $ns did not sync:"; cat "$log"; return 1; }
}

listening() {	# netns
	ip netns exec "$1" ss -Hltn 'sport = :80' | grep -q .
}

xstat() {	# name of a counter [, pin dir: the LB's] -> value
	"$B/ferryctl" --bpffs "${2:-$PIN}" -j xdp stats 2>/dev/null |
		tr ',' '\n' | sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" | head -n1
}

decap_has() {	# pin dir, outer|vip, address: the decap there accepts it
	"$B/ferryctl" --bpffs "$1" xdp decap 2>/dev/null | grep -qx "$(printf '%-5s %s' "$2" "$3")"
}

decap_lacks() {	# the same, and it does not
	"$B/ferryctl" --bpffs "$1" xdp decap >/dev/null 2>&1 && ! decap_has "$@"
}

v4key() {	# IPv4 address -> the bytes of its struct ferry_xdcap_key, for bpftool
	local IFS=.
	printf '%02x ' $1
	echo 00 00 00 00 00 00 00 00 00 00 00 00 02 00 00 00
}

forwarded() {	# netns -> IP datagrams it has forwarded
	ip netns exec "$1" awk '/^Ip:/ { if (h) { print $f; exit } for (f = 1; f <= NF; f++) if ($f == "ForwDatagrams") break; h = 1 }' /proc/net/snmp
}

forwarded6() {	# netns -> IPv6 datagrams it has forwarded
	ip netns exec "$1" awk '$1 == "Ip6OutForwDatagrams" { print $2 }' /proc/net/snmp6
}

udp_listening() {	# netns, port
	ip netns exec "$1" ss -Hlun "sport = :$2" | grep -q .
}

topology || { echo "FAIL xdp: topology setup"; exit 1; }
registry 1 1
backend_registry

ip netns exec "$NS_B1" "$PEER" serve 80 b1 120 & D_PIDS+=($!)
ip netns exec "$NS_B2" "$PEER" serve 80 b2 120 & D_PIDS+=($!)
wait_for 100 listening "$NS_B1" && wait_for 100 listening "$NS_B2" ||
	{ echo "FAIL xdp: backends did not listen"; exit 1; }

start_ferryd "$NS_B1" "$PIN_B1" "$CG/b1" "$TMP/b1.log" --registry "$TMP/b.json" --decap-iface b10 &&
B1_PID=$D_PID &&
start_ferryd "$NS_B2" "$PIN_B2" "$CG/b2" "$TMP/b2.log" --registry "$TMP/b.json" --decap-iface b20 &&
# A counter map an earlier version pinned (per-CPU): this ferryd removes it.
mkdir -p "$PIN" && bpftool map create "$PIN/ferry_xstat_v1" type percpu_array key 4 value 8 \
	entries 32 name ferry_xstat_v1 || { echo "FAIL xdp: pinning an old map"; exit 1; }
# A VIP filter left stale by an older version: every bit says "no VIP here".
bpftool map create "$PIN/ferry_xvipf_v1" type array key 4 value 16384 entries 1 \
	name ferry_xvipf_v1 &&
	bpftool map update pinned "$PIN/ferry_xvipf_v1" key 0 0 0 0 value $(printf '0xff %.0s' $(seq 16384)) ||
	{ echo "FAIL xdp: pinning a stale filter"; exit 1; }
start_ferryd "$NS_L" "$PIN" "$CG/lb" "$TMP/lb.log" --registry "$TMP/lb.json" --xdp-iface ll0 \
	--max-services 1024 --max-backends 4096 --xdp-flows 65536 \
	--xdp-src 198.51.100.128/25 --xdp-src 2001:db8:f::/64 ||
	{ echo "FAIL xdp: ferryd start"; exit 1; }

check "xdp LB attached in native mode" grep -q "xdp: attached to ll0 (native mode)" "$TMP/lb.log"
check "xdp a map pinned by an earlier version is removed" test ! -e "$PIN/ferry_xstat_v1"
check "xdp decap attached on both backends" \
	bash -c "grep -q 'xdp_decap: attached to b10' '$TMP/b1.log' && grep -q 'xdp_decap: attached to b20' '$TMP/b2.log'"

# A TCP conversation over each family; replies can only come back directly.
r4=$(ip netns exec "$NS_C" "$PEER" once $VIP4 80 hello4)
case "$r4" in
"b1 hello4"|"b2 hello4") echo "PASS xdp v4 TCP conversation through the LB, replies direct" ;;
*) echo "FAIL xdp v4 TCP conversation: reply '$r4'"; cat "$TMP/lb.log" ;;
esac
r6=$(ip netns exec "$NS_C" "$PEER" once $VIP6 80 hello6)
case "$r6" in
"b1 hello6"|"b2 hello6") echo "PASS xdp v6 TCP conversation through the LB, replies direct" ;;
*) echo "FAIL xdp v6 TCP conversation: reply '$r6'" ;;
esac

# Both backends take new connections.
seen=""
for i in $(seq 1 24); do
	seen="$seen $(ip netns exec "$NS_C" "$PEER" once $VIP4 80 x$i | cut -d' ' -f1)"
done
check "xdp new connections spread over both backends" \
	bash -c "echo '$seen' | grep -q b1 && echo '$seen' | grep -q b2"
tx=$(xstat tx)
check "xdp stats count the bounced packets (tx=$tx)" test "${tx:-0}" -gt 0
# Both VIPs are in the VIP index, so no packet needed the service hash map.
check "xdp VIP index holds both VIPs" \
	bash -c "'$B/ferryctl' --bpffs '$PIN' xdp stats | grep -q '^VIP index: 2 VIP(s)'"
# Two VIPs: one or two bits of the filter open (two unless they share one).
check "xdp VIP filter built for the VIPs" \
	bash -c "'$B/ferryctl' --bpffs '$PIN' xdp stats | grep -Eq '^VIP filter: [12] of 131072 bits'"
check "xdp VIP index answered every lookup" test "$(xstat vip_slow_lookup)" = 0

# An established connection, then its backend's weight goes to 0.
coproc SESS { ip netns exec "$NS_C" "$PEER" session $VIP4 80; }
SESS_IN=${SESS[1]}
read -r -t 5 hello <&"${SESS[0]}"
echo first >&"$SESS_IN"
read -r -t 5 owner rest <&"${SESS[0]}"
assert_eq "xdp session established" "$hello/$rest" "connected/first"
n0=$(syncs "$PIN")
if [ "$owner" = b1 ]; then registry 0 1; other=b2; else registry 1 0; other=b1; fi
# ferryd sees the registry replaced (inotify); wait for that sync to land.
check "xdp weight change synced" wait_for 200 synced_since "$n0"
echo second >&"$SESS_IN"
read -r -t 5 owner2 rest2 <&"${SESS[0]}"
assert_eq "xdp established flow stays on its weight-0 backend" "$owner2/$rest2" "$owner/second"
bad=0
for i in $(seq 1 16); do
	b=$(ip netns exec "$NS_C" "$PEER" once $VIP4 80 y$i | cut -d' ' -f1)
	[ "$b" = "$other" ] || bad=$((bad + 1))
done
assert_eq "xdp new connections avoid the weight-0 backend" "$bad" 0
echo third >&"$SESS_IN"
read -r -t 5 owner3 rest3 <&"${SESS[0]}"
assert_eq "xdp established flow still served after new ones" "$owner3/$rest3" "$owner/third"
exec {SESS_IN}>&-
wait "$SESS_PID" 2>/dev/null

# The client's flows, with the client address the LB saw, v4 and v6.
check "ferryctl xdp flows lists the client's flows with their backends" \
	bash -c "'$B/ferryctl' --bpffs '$PIN' xdp flows --max 1000 |
		grep -q '^203\.0\.113\.1:[0-9]* .* 192\.0\.2\.1[12]:80'"
check "ferryctl xdp flows -j" \
	bash -c "'$B/ferryctl' --bpffs '$PIN' -j xdp flows | grep -q '\"capacity\"'"
check "ferryctl xdp flows shows IPv6 clients" \
	bash -c "'$B/ferryctl' --bpffs '$PIN' xdp flows --max 1000 | grep -q '^\[2001:db8:c::1\]:'"

# The decap strips only tunnels to a local XDP VIP. From the client, in one
# run, IPIP to backend 1's address carrying: a datagram to the backend's own
# address, one to the client (from a spoofed source; backend 1 forwards for
# the occasion), then one to the VIP. Backend 1 handles them in that order,
# so when the last arrives the first two were either delivered (to the same
# listener) or forwarded (the kernel's counter), or neither.
decap_refusals() {	# 4|6, port, outer, own address, spoofed source, client, VIP
	local v=$1 port=$2 fam=ipv4 fwd=forwarded tag="" fwd0 nv0 pid fwd_on
	[ "$v" = 6 ] && { fam=ipv6; fwd=forwarded6; tag=" v6"; }
	ns_sysctl "$NS_B1" net.$fam.conf.all.forwarding=1
	# "nothing forwarded" means something only while backend 1 forwards.
	fwd_on=$(ns_sysctl_get "$NS_B1" net.$fam.conf.all.forwarding)
	ip netns exec "$NS_B1" "$PEER" udp-recv "$port" last >"$TMP/udp$v.out" 2>&1 &
	pid=$!
	D_PIDS+=($pid)
	if wait_for 100 udp_listening "$NS_B1" "$port"; then
		fwd0=$($fwd "$NS_B1")
		nv0=$(xstat decap_not_vip "$PIN_B1")
		ip netns exec "$NS_C" "$PEER" ipip "$3" \
			"$6" "$4" "$port" to-the-backend \
			"$5" "$6" "$port" to-elsewhere \
			"$6" "$7" "$port" last
		wait "$pid"
		assert_eq "xdp decap strips a$tag tunnel to the VIP, not one to the backend's own address" \
			"$(tr '\n' ' ' <"$TMP/udp$v.out")" "last "
		assert_eq "xdp decap does not strip a$tag tunnel to elsewhere: nothing forwarded" \
			"forwarding $fwd_on, forwarded $($fwd "$NS_B1")" "forwarding 1, forwarded $fwd0"
		assert_eq "xdp decap counts both$tag tunnels as decap_not_vip" \
			"$(($(xstat decap_not_vip "$PIN_B1") - ${nv0:-0}))" 2
	else
		echo "FAIL xdp decap$tag: the UDP listener did not start"
	fi
	ns_sysctl "$NS_B1" net.$fam.conf.all.forwarding=0
}
decap_refusals 4 5300 203.0.113.11 192.0.2.11 198.51.100.77 203.0.113.1 $VIP4
# The same in IPv6 in IPv6, to backend 1's address on the client's subnet.
decap_refusals 6 5301 2001:db8:c::11 2001:db8::11 2001:db8::77 2001:db8:c::1 $VIP6

# The decap follows the node's addresses while ferryd runs.
check "xdp decap accepts the backend's own addresses" decap_has "$PIN_B1" outer 2001:db8::11
check "xdp decap accepts the XDP VIPs bound on the backend" decap_has "$PIN_B1" vip $VIP6
check "xdp decap does not accept an XDP VIP the node does not bind" decap_lacks "$PIN_B1" vip $VIP4B
ip -n "$NS_B1" addr add 192.0.2.111/24 dev b10
ip -n "$NS_B1" addr add 2001:db8::111/64 dev b10 nodad
check "xdp decap accepts an IPv4 address added to its interface" wait_for 100 decap_has "$PIN_B1" outer 192.0.2.111
check "xdp decap accepts an IPv6 address added to its interface" wait_for 100 decap_has "$PIN_B1" outer 2001:db8::111
ip -n "$NS_B1" addr del 192.0.2.111/24 dev b10
ip -n "$NS_B1" addr del 2001:db8::111/64 dev b10
check "xdp decap forgets an IPv4 address removed from its interface" wait_for 100 decap_lacks "$PIN_B1" outer 192.0.2.111
check "xdp decap forgets an IPv6 address removed from its interface" wait_for 100 decap_lacks "$PIN_B1" outer 2001:db8::111
ip -n "$NS_B1" addr add $VIP4B/32 dev lo
check "xdp decap accepts an XDP VIP once it is bound" wait_for 100 decap_has "$PIN_B1" vip $VIP4B
ip -n "$NS_B1" addr del $VIP4B/32 dev lo
check "xdp decap forgets an XDP VIP once it is unbound" wait_for 100 decap_lacks "$PIN_B1" vip $VIP4B

# ferryctl changes services too, here from another network namespace than
# the backend's: the VIP set follows at once, derived from the addresses
# ferryd recorded for the node, not from the caller's.
ip -n "$NS_B1" addr add 198.51.100.78/32 dev lo
check "xdp decap records an address bound on the node" wait_for 100 decap_has "$PIN_B1" node 198.51.100.78
check "xdp decap does not record IPv6 link-local addresses" \
	bash -c "! '$B/ferryctl' --bpffs '$PIN_B1' xdp decap | grep -q '^node  fe80:'"
quiet() { "$@" >/dev/null; }
check "ferryctl adds an xdp service on a backend, from another netns" \
	quiet "$B/ferryctl" --bpffs "$PIN_B1" service add manual 198.51.100.78:80 --xdp
check "xdp decap accepts the VIP of an xdp service ferryctl adds, at once" \
	decap_has "$PIN_B1" vip 198.51.100.78
check "xdp decap keeps the node's VIPs when ferryctl runs in another netns" \
	decap_has "$PIN_B1" vip $VIP6
check "ferryctl deletes it" quiet "$B/ferryctl" --bpffs "$PIN_B1" service del 198.51.100.78:80
check "xdp decap forgets the VIP of a service ferryctl deletes, at once" \
	decap_lacks "$PIN_B1" vip 198.51.100.78
ip -n "$NS_B1" addr del 198.51.100.78/32 dev lo
check "xdp decap forgets an address removed from the node" wait_for 100 decap_lacks "$PIN_B1" node 198.51.100.78

# A restarted ferryd replaces the sets: entries an earlier run (here: a
# hand) left for addresses the node does not have are gone. It adopts the
# pinned XDP link (same link, program swapped in) rather than re-attaching.
link_id() { bpftool -j link show pinned "$1" | jq -r .id; }
dlink0=$(link_id "$PIN_B1/links/xdp_decap_b10")
kill "$B1_PID"
wait "$B1_PID" 2>/dev/null
keep=()
for p in "${D_PIDS[@]}"; do [ "$p" = "$B1_PID" ] || keep+=("$p"); done
D_PIDS=("${keep[@]}")
bpftool map update pinned "$PIN_B1/ferry_xdcap_v1" key hex $(v4key 192.0.2.99) value hex 01 00 00 00 &&
	bpftool map update pinned "$PIN_B1/ferry_xdvip_v1" key hex $(v4key 198.51.100.99) value hex 01 00 00 00 ||
	echo "FAIL xdp decap: writing stale entries by hand"
check "xdp decap: a stale outer address is there before the restart" decap_has "$PIN_B1" outer 192.0.2.99
check "xdp decap: a stale VIP is there before the restart" decap_has "$PIN_B1" vip 198.51.100.99
nsenter --net="/run/netns/$NS_B1" "$B/ferryd" --bpffs "$PIN_B1" --state-dir "$(state_dir "$PIN_B1")" --cgroup "$CG/b1" --resync 0 --metrics-addr off \
	--registry "$TMP/b.json" --decap-iface b10 >"$TMP/b1r.log" 2>&1 &
D_PIDS+=($!)
if wait_for 600 grep -q 'xdp_decap: on 1 interface' "$TMP/b1r.log"; then
	check "xdp decap restart drops an outer address the node does not have" decap_lacks "$PIN_B1" outer 192.0.2.99
	check "xdp decap restart drops a VIP the node does not bind" decap_lacks "$PIN_B1" vip 198.51.100.99
	check "xdp decap restart keeps the node's address" decap_has "$PIN_B1" outer 192.0.2.11
	check "xdp decap restart keeps the node's VIP" decap_has "$PIN_B1" vip $VIP4
	assert_eq "xdp decap restart adopts the pinned link" "$(link_id "$PIN_B1/links/xdp_decap_b10")" "${dlink0:-no link before}"
else
	echo "FAIL xdp decap: restarted ferryd did not attach"; cat "$TMP/b1r.log"
fi
