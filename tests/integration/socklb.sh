#!/usr/bin/env bash
# Socket-level load balancing end to end: ferryd attached to a throw-away
# cgroup, a client netns inside it, backends (ferry-traffic serve) in a
# second netns. One PASS/FAIL line per behaviour.
source "$(dirname "$0")/lib.sh"

command -v jq >/dev/null || skip_all "jq missing (make deps installs it)"
world_up
T="$B/tests/ferry-traffic"
REG="$TMP/registry.json"
CTL() { "$B/ferryctl" --bpffs "$PIN" "$@"; }

for a in 192.0.2.11 192.0.2.12 192.0.2.13 192.0.2.14 2001:db8::11 2001:db8::12; do
	backend_addr "$a"
done
# Distinct maglev clients: the client binds to one of these before connect.
for i in $(seq 101 120); do
	ip -n "$NS_C" addr add "192.0.2.$i/24" dev fc0
done

eps=()
for p in 8080 8081 8082 8083 8084 8085 8086; do
	for h in 11 12 13 14; do eps+=("192.0.2.$h:$p"); done
done
eps+=(192.0.2.11:5353 192.0.2.12:5353 "[2001:db8::11]:8080" "[2001:db8::12]:8080")
bg in_backend "$T" serve "${eps[@]}" --udp --timeout 600 >"$TMP/serve.out" 2>&1
wait_for 200 grep -qx ready "$TMP/serve.out" || { cat "$TMP/serve.out"; skip_all "backends did not start"; }

# ---- the registry; variables select the variants the tests switch to ----
RR_EXTRA=""		# a 4th round robin backend
DRAIN_STATE=active	# state of 192.0.2.12:8084
MAG_ALL=(192.0.2.11 192.0.2.12 192.0.2.13 192.0.2.14)
MAG_BES=""		# the maglev backends (mag_bes IP...)
mag_bes() {
	local ip sep=""
	MAG_BES=""
	for ip in "$@"; do
		MAG_BES="$MAG_BES$sep{\"ip\": \"$ip\", \"port\": 8083}"
		sep=", "
	done
}
mag_bes "${MAG_ALL[@]}"
registry() {
	cat <<EOF
{
  "services": [
    { "name": "rr", "vip": "198.51.100.10", "port": 80, "lb": "round_robin",
      "backends": [ {"ip": "192.0.2.11", "port": 8080}, {"ip": "192.0.2.12", "port": 8080},
                    {"ip": "192.0.2.13", "port": 8080}$RR_EXTRA ] },
    { "name": "weighted", "vip": "198.51.100.11", "port": 80, "lb": "weighted",
      "backends": [ {"ip": "192.0.2.11", "port": 8081, "weight": 3},
                    {"ip": "192.0.2.12", "port": 8081, "weight": 1} ] },
    { "name": "random", "vip": "198.51.100.12", "port": 80, "lb": "random",
      "backends": [ {"ip": "192.0.2.11", "port": 8082}, {"ip": "192.0.2.12", "port": 8082},
                    {"ip": "192.0.2.13", "port": 8082} ] },
    { "name": "maglev", "vip": "198.51.100.13", "port": 80, "lb": "maglev",
      "backends": [ $MAG_BES ] },
    { "name": "drain", "vip": "198.51.100.14", "port": 80,
      "backends": [ {"ip": "192.0.2.11", "port": 8084},
                    {"ip": "192.0.2.12", "port": 8084, "state": "$DRAIN_STATE"},
                    {"ip": "192.0.2.13", "port": 8084} ] },
    { "name": "weight0", "vip": "198.51.100.15", "port": 80,
      "backends": [ {"ip": "192.0.2.11", "port": 8085}, {"ip": "192.0.2.12", "port": 8085, "weight": 0},
                    {"ip": "192.0.2.13", "port": 8085} ] },
    { "name": "alldrain", "vip": "198.51.100.16", "port": 80,
      "backends": [ {"ip": "192.0.2.11", "port": 8086, "state": "draining"},
                    {"ip": "192.0.2.12", "port": 8086, "state": "draining"} ] },
    { "name": "dns", "vip": "198.51.100.53", "port": 53, "protocol": "udp",
      "backends": [ {"ip": "192.0.2.11", "port": 5353}, {"ip": "192.0.2.12", "port": 5353} ] },
    { "name": "v6", "vip": "2001:db8:ffff::10", "port": 80,
      "backends": [ {"ip": "2001:db8::11", "port": 8080}, {"ip": "2001:db8::12", "port": 8080} ] }
  ]
}
EOF
}
write_registry() {	# atomically, the way a config manager would
	registry >"$REG.tmp" && mv "$REG.tmp" "$REG"
}

# ---- helpers over ferry-traffic's report ----
traffic() { in_client "$T" connect "$@"; }
cnt() { awk -v id="$2" '$1 == id { print $2; f = 1 } END { if (!f) print 0 }' <<<"$1"; }
field() { awk -v k="$2" '$1 == k { print $2; f = 1 } END { if (!f) print "?" }' <<<"$1"; }
errno_cnt() { awk -v e="$2" '$1 == "errno" && $2 == e { print $3; f = 1 } END { if (!f) print 0 }' <<<"$1"; }
nbackends() { grep -cE '^[0-9\[].* [0-9]+$' <<<"$1"; }
show() { CTL -j service show "$1"; }
syncs() { CTL -j status | jq -r .syncs; }
synced_after() { [ "$(syncs)" -gt "$1" ]; }
link_ids() { CTL -j status | jq -r '[.links[].link_id] | sort | map(tostring) | join(",")'; }
pos_of() {	# file, token, offset, nth: "line:col" of the nth token (+offset columns)
	awk -v t="$2" -v off="${3:-0}" -v nth="${4:-1}" \
		'{ i = index($0, t); if (i && ++seen == nth) { print NR ":" i + off; exit } }' "$1"
}

write_registry
ferryd_start "$REG" || { echo "FAIL ferryd_start"; exit 1; }

# ---- policies ----
out=$(traffic 198.51.100.10:80 -n 300)
assert_eq round_robin_exact "$(cnt "$out" 192.0.2.11:8080) $(cnt "$out" 192.0.2.12:8080) $(cnt "$out" 192.0.2.13:8080) $(field "$out" errors)" \
	"100 100 100 0"
assert_eq getpeername_shows_vip "$(field "$out" peer_mismatch)" 0

# 3:1 over 400 connects: the heavy backend's count is Binomial(400, 0.75),
# mean 300, sigma sqrt(400 * 0.75 * 0.25) = 8.66. Accept 4 sigma (266..334):
# a correct implementation fails this about once in 16000 runs.
out=$(traffic 198.51.100.11:80 -n 400)
a=$(cnt "$out" 192.0.2.11:8081) b=$(cnt "$out" 192.0.2.12:8081)
if [ "$((a + b))" = 400 ] && [ "$a" -ge 266 ] && [ "$a" -le 334 ]; then
	echo "PASS weighted_proportional"
else
	echo "FAIL weighted_proportional: 3:1 weights gave $a:$b of 400 (want 266..334 on the heavy side, no errors)"
fi

# 60 random picks among 3: P(some backend gets none) = 3 * (2/3)^60 < 1e-10.
out=$(traffic 198.51.100.12:80 -n 60)
assert_eq random_covers_all "$(nbackends "$out") $(field "$out" errors)" "3 0"

# Maglev: one client (the netns, unbound) always lands on the same backend.
out=$(traffic 198.51.100.13:80 -n 50)
assert_eq maglev_sticky "$(nbackends "$out") $(field "$out" errors)" "1 0"

# 20 distinct clients (bound source addresses), 5 connects each.
declare -A mag_before
maglev_clients() {	# fills the named assoc array: client -> its one backend (or "many")
	local -n map=$1
	local i o
	for i in $(seq 101 120); do
		o=$(traffic 198.51.100.13:80 -n 5 --bind "192.0.2.$i")
		if [ "$(nbackends "$o")" = 1 ] && [ "$(field "$o" errors)" = 0 ]; then
			map[$i]=$(awk 'NR == 1 { print $1 }' <<<"$o")
		else
			map[$i]=many
		fi
	done
}
maglev_clients mag_before
spread=$(printf '%s\n' "${mag_before[@]}" | sort -u | grep -vc many)
many=$(printf '%s\n' "${mag_before[@]}" | grep -c many)
if [ "$many" = 0 ] && [ "$spread" -ge 2 ]; then
	echo "PASS maglev_sticky_per_client"
else
	echo "FAIL maglev_sticky_per_client: $many clients saw more than one backend; $spread backends used"
fi

# IPv6 VIP
out=$(traffic "[2001:db8:ffff::10]:80" -n 100)
assert_eq ipv6_vip "$(cnt "$out" "[2001:db8::11]:8080") $(cnt "$out" "[2001:db8::12]:8080") $(field "$out" errors) $(field "$out" peer_mismatch)" \
	"50 50 0 0"

# An IPv4 VIP from a dual-stack IPv6 socket (::ffff:a.b.c.d): still balanced,
# and the peer shown is the mapped VIP.
out=$(traffic "[::ffff:198.51.100.10]:80" -n 30)
assert_eq dual_stack_v4_mapped "$(cnt "$out" 192.0.2.11:8080) $(cnt "$out" 192.0.2.12:8080) $(cnt "$out" 192.0.2.13:8080) $(field "$out" errors) $(field "$out" peer_mismatch)" \
	"10 10 10 0 0"

# UDP: unconnected sendmsg/recvmsg (recvfrom's source is the VIP) and connected.
out=$(traffic 198.51.100.53:53 --udp -n 40)
assert_eq udp_unconnected "$(cnt "$out" 192.0.2.11:5353) $(cnt "$out" 192.0.2.12:5353) $(field "$out" errors) $(field "$out" peer_mismatch)" \
	"20 20 0 0"
out=$(traffic 198.51.100.53:53 --connected-udp -n 40)
assert_eq udp_connected "$(cnt "$out" 192.0.2.11:5353) $(cnt "$out" 192.0.2.12:5353) $(field "$out" errors) $(field "$out" peer_mismatch)" \
	"20 20 0 0"

out=$(traffic 198.51.100.15:80 -n 30)
assert_eq weight0_gets_nothing "$(cnt "$out" 192.0.2.12:8085) $(($(cnt "$out" 192.0.2.11:8085) + $(cnt "$out" 192.0.2.13:8085))) $(field "$out" errors)" \
	"0 30 0"

# Every backend draining: refused by the hook. The backends listen, so
# ECONNREFUSED can only come from the hook: no SYN left the client.
out=$(traffic 198.51.100.16:80 -n 10)
assert_eq all_draining_refused "$(errno_cnt "$out" ECONNREFUSED) $(nbackends "$out")" "10 0"

# Not a VIP: a backend address directly, and a VIP address on another port.
out=$(traffic 192.0.2.11:8080 -n 10)
assert_eq non_vip_untouched "$(cnt "$out" 192.0.2.11:8080) $(field "$out" errors) $(field "$out" peer_mismatch)" "10 0 0"
out=$(traffic 198.51.100.10:81 -n 3)
assert_eq non_vip_port_untouched "$(errno_cnt "$out" ENETUNREACH)" 3

# ---- drain: no new connections, open ones stay up ----
mkfifo "$TMP/hold.in"
in_client "$T" connect 198.51.100.14:80 -n 3 --hold <"$TMP/hold.in" >"$TMP/hold.out" 2>&1 &
hold_pid=$!
_PIDS+=("$hold_pid")
exec 7>"$TMP/hold.in"
wait_for 200 grep -q '^held 3$' "$TMP/hold.out"
held_ok=$(grep -c '^192.0.2.1[123]:8084 1$' "$TMP/hold.out")
DRAIN_STATE=draining write_registry
drained() { show 198.51.100.14:80 | jq -e '.backends[] | select(.ip == "192.0.2.12") | .state == "draining"' >/dev/null; }
wait_for 200 drained
out=$(traffic 198.51.100.14:80 -n 30)
echo >&7
exec 7>&-
wait "$hold_pid"
assert_eq drain_no_new_connections "$held_ok $(cnt "$out" 192.0.2.12:8084) $(($(cnt "$out" 192.0.2.11:8084) + $(cnt "$out" 192.0.2.13:8084)))" \
	"3 0 30"
assert_eq drain_keeps_open_connection "$(grep -E '^(alive|dead) ' "$TMP/hold.out" | tr '\n' ' ')" "alive 3 dead 0 "

# ---- registry edits ----
RR_EXTRA=', {"ip": "192.0.2.14", "port": 8080}'
write_registry
four() { [ "$(show 198.51.100.10:80 | jq '.backends | length')" = 4 ]; }
if wait_for 200 four; then
	out=$(traffic 198.51.100.10:80 -n 400)
	assert_eq registry_edit_applied "$(cnt "$out" 192.0.2.11:8080) $(cnt "$out" 192.0.2.12:8080) $(cnt "$out" 192.0.2.13:8080) $(cnt "$out" 192.0.2.14:8080)" \
		"100 100 100 100"
else
	echo "FAIL registry_edit_applied: ferryctl never showed the 4th backend"
fi

# Maglev: drop the backend most clients use; the others' clients stay put.
victim=$(printf '%s\n' "${mag_before[@]}" | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')
victim_ip=${victim%:*}
survivors=()
for ip in "${MAG_ALL[@]}"; do [ "$ip" = "$victim_ip" ] || survivors+=("$ip"); done
mag_bes "${survivors[@]}"
write_registry
gone() { ! show 198.51.100.13:80 | jq -e --arg ip "$victim_ip" '.backends[] | select(.ip == $ip)' >/dev/null; }
# Maglev rebuilds the whole table, and a few entries of surviving backends
# change owner too: 0.07-0.15% of them for these four backends at M=16381
# (computed with maglev_build). With at most 20 survivor clients, two or more
# of them moving has a probability below 5e-4; one may move.
if wait_for 200 gone; then
	declare -A mag_after
	maglev_clients mag_after
	moved=0 stayed=0 shifted="" bad=""
	for i in "${!mag_before[@]}"; do
		if [ "${mag_before[$i]}" = "$victim" ]; then
			if [ "${mag_after[$i]}" != "$victim" ] && [ "${mag_after[$i]}" != many ]; then
				moved=$((moved + 1))
			else
				bad="$bad $i:${mag_after[$i]}"
			fi
		elif [ "${mag_after[$i]}" = "${mag_before[$i]}" ]; then
			stayed=$((stayed + 1))
		elif [ "${mag_after[$i]}" != many ] && [ -z "$shifted" ]; then
			shifted="$i:${mag_before[$i]}->${mag_after[$i]}"
		else
			bad="$bad $i:${mag_before[$i]}->${mag_after[$i]}"
		fi
	done
	if [ -z "$bad" ] && [ "$moved" -ge 1 ]; then
		echo "PASS maglev_removal_keeps_survivors ($stayed stayed, $moved moved off $victim${shifted:+, one shifted: $shifted})"
	else
		echo "FAIL maglev_removal_keeps_survivors: clients moved wrongly:$bad${shifted:+ $shifted} ($moved moved off $victim)"
	fi
else
	echo "FAIL maglev_removal_keeps_survivors: ferryctl still shows $victim"
fi
cp "$REG" "$TMP/good.json"

# ---- bad registries: old state stays, status names file:line:col ----
state_of() { CTL -j service list | jq -c '[.[] | {service, lb, backend_count, id}]'; }
good_state=$(state_of)
bad_registry() {	# name, sed expression, token, offset, nth (where the error must point)
	local name=$1 expr=$2 tok=$3 off=$4 nth=${5:-1} before pos st err
	sed "$expr" "$TMP/good.json" >"$REG.tmp"
	pos=$(pos_of "$REG.tmp" "$tok" "$off" "$nth")
	before=$(syncs)
	mv "$REG.tmp" "$REG"
	if ! wait_for 200 synced_after "$before"; then
		echo "FAIL $name: ferryd did not re-read the registry"
		return
	fi
	st=$(CTL -j status)
	err=$(jq -r .error <<<"$st")
	check "${name}_rejected" [ "$(jq -r .last_ok <<<"$st")" = false ]
	echo "# $name: $err"
	case "$err" in
	"$REG:$pos: "*) echo "PASS ${name}_error_names_place" ;;
	*) echo "FAIL ${name}_error_names_place: error '$err', expected it to start with '$REG:$pos: '" ;;
	esac
	assert_eq "${name}_keeps_state" "$(state_of)" "$good_state"
	CTL status | grep -qF "$REG:$pos" && echo "PASS ${name}_status_plain_shows_error" ||
		echo "FAIL ${name}_status_plain_shows_error"
}
bad_registry bad_syntax 's/"port": 80, "lb": "round_robin",/"port": 80,, "lb": "round_robin",/' '"port": 80,,' 11
bad_registry bad_ip 's/"ip": "192.0.2.11", "port": 8081/"ip": "192.0.2.311", "port": 8081/' '"192.0.2.311"' 0
# the second service with the VIP (in file order) is the one reported
bad_registry duplicate_vip 's/"vip": "198.51.100.12"/"vip": "198.51.100.10"/' '"vip": "198.51.100.10"' 7 2
# the data path never saw any of it
out=$(traffic 198.51.100.10:80 -n 400)
assert_eq bad_registry_still_balancing "$(cnt "$out" 192.0.2.11:8080) $(cnt "$out" 192.0.2.12:8080) $(cnt "$out" 192.0.2.13:8080) $(cnt "$out" 192.0.2.14:8080)" \
	"100 100 100 100"
before=$(syncs)
cp "$TMP/good.json" "$REG.tmp" && mv "$REG.tmp" "$REG"
wait_for 200 synced_after "$before"
check registry_recovers ferryd_synced

# ---- the daemon can die: the data path stays ----
links_before=$(link_ids)
kill -9 "$FERRYD_PID"
wait "$FERRYD_PID" 2>/dev/null
FERRYD_PID=""
out=$(traffic 198.51.100.10:80 -n 400)
assert_eq kill9_keeps_balancing "$(cnt "$out" 192.0.2.11:8080) $(cnt "$out" 192.0.2.12:8080) $(cnt "$out" 192.0.2.13:8080) $(cnt "$out" 192.0.2.14:8080) $(field "$out" errors)" \
	"100 100 100 100 0"

# Restart while a client keeps connecting: a new daemon adopts the pinned
# links and maps (same link ids, same service ids) and no connect fails,
# across both an unclean (kill -9 above) and a clean (SIGTERM) restart.
mkfifo "$TMP/loop.in"
in_client "$T" connect 198.51.100.10:80 --loop -n 200 <"$TMP/loop.in" >"$TMP/loop.out" 2>&1 &
loop_pid=$!
_PIDS+=("$loop_pid")
exec 8>"$TMP/loop.in"
wait_for 200 grep -q '^looping$' "$TMP/loop.out"
ferryd_start "$REG"
links_mid=$(link_ids)
ferryd_stop
ferryd_start "$REG"
echo >&8
exec 8>&-
wait "$loop_pid"
out=$(cat "$TMP/loop.out")
assert_eq restart_adopts_links "$links_mid $(link_ids)" "$links_before $links_before"
assert_eq restart_keeps_state "$(state_of)" "$good_state"
total=$(awk '$1 ~ /^192/ { s += $2 } END { print s + 0 }' <<<"$out")
if [ "$(field "$out" errors)" = 0 ] && [ "$total" -gt 200 ]; then
	echo "PASS restart_no_failed_connect ($total connects across two restarts)"
else
	echo "FAIL restart_no_failed_connect: $(field "$out" errors) errors in $total connects"
	grep errno <<<"$out"
fi

# ---- teardown: nothing pinned, nothing attached ----
attached() {	# programs attached to our cgroup (bpftool prints nothing for none)
	local o
	o=$(bpftool -j cgroup show "$CG" 2>/dev/null)
	if [ -n "$o" ]; then jq length <<<"$o"; else echo 0; fi
}
n_attached=$(attached)
n_links=$(CTL -j status | jq '.links | length')
n_cg_links=$(CTL -j status | jq '[.links[] | select(.cgroup_id)] | length')
CTL teardown >"$TMP/teardown.out" 2>&1
check teardown_ok grep -q "$n_links links detached" "$TMP/teardown.out"
# every program on the cgroup came from one of ferry's pinned cgroup links, and none is left
assert_eq teardown_detaches_all "$n_attached -> $(attached)" "$n_cg_links -> 0"
assert_eq teardown_removes_pins "$(find "$PIN" 2>/dev/null | wc -l)" 0
out=$(traffic 198.51.100.10:80 -n 3)
assert_eq teardown_vip_untouched "$(errno_cnt "$out" ENETUNREACH)" 3
ferryd_stop
