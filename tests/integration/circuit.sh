#!/usr/bin/env bash
# Circuit breaking, outlier ejection, health checks, max_connections and
# least_conn end to end: ferryd attached to a throw-away cgroup, clients in
# a netns inside it, one circuit-peer process per backend in a second netns
# (so a backend can be killed alone). ferryd itself runs in the client netns
# (nsenter, so it still sees the host's bpffs and cgroupfs) but outside the
# managed cgroup: its health probes reach the backends and are not balanced.
#
# Conditions are polled (bounded); nothing asserts on elapsed time. Short
# ejection times (200 ms) only keep the waits short.
source "$(dirname "$0")/lib.sh"

command -v jq >/dev/null || skip_all "jq missing (make deps installs it)"
command -v nsenter >/dev/null || skip_all "nsenter missing (util-linux)"
world_up
P="$B/tests/circuit-peer"
REG="$TMP/registry.json"
CTL() { "$B/ferryctl" --bpffs "$PIN" "$@"; }

for h in 11 12 13 14; do backend_addr "192.0.2.$h"; done

declare -A BPID
serve() {	# ADDR:PORT: start (or restart) one backend, wait until it listens
	local ep=$1 out="$TMP/serve-${1//[:.]/_}.out"
	: >"$out"
	ip netns exec "$NS_B" "$P" serve "$ep" --ctl "$TMP/ctl-${ep//[:.]/_}" --timeout 600 >"$out" 2>&1 &
	BPID[$ep]=$!
	_PIDS+=($!)
	wait_for 200 grep -qx ready "$out" || { echo "backend $ep did not start"; cat "$out"; return 1; }
}
kill_be() {	# ADDR:PORT: the backend process dies (its port now answers RST)
	kill "${BPID[$1]}" 2>/dev/null
	wait "${BPID[$1]}" 2>/dev/null
}
health_ctl() {	# ADDR:PORT STATUS: what its /healthz answers (200, 503, flaky)
	echo "$2" >"$TMP/ctl-${1//[:.]/_}"
}
conn() {	# VIP:PORT N [args]: JSON report of N sequential connects
	local vip=$1 n=$2; shift 2
	in_client "$P" connect "$vip" -n "$n" "$@"
}
circuit() { CTL -j circuit "$1"; }
be_field() {	# VIP ADDR:PORT FIELD
	circuit "$1" | jq -r --arg b "$2" --arg f "$3" '.backends[] | select(.backend == $b) | .[$f]'
}
be_is() { [ "$(be_field "$1" "$2" "$3")" = "$4" ]; }
served() {	# REPORT ADDR:PORT: connects that reached it
	jq -r --arg b "$2" '.backends[$b] // 0' <<<"$1"
}
errors() { jq -r --arg e "$2" '.errors[$e] // 0' <<<"$1"; }
jqe() { jq -e "$@" >/dev/null; }

ferryd_start_ns() {	# waits for a good sync, unless NOSYNC is set
	nsenter --net="/run/netns/$NS_C" "$B/ferryd" --registry "$REG" --bpffs "$PIN" --state-dir "$(state_dir "$PIN")" --cgroup "$CG" \
		--metrics-addr off "$@" >"$TMP/ferryd.log" 2>&1 &
	FERRYD_PID=$!
	[ -n "${NOSYNC:-}" ] && return 0
	wait_for 200 ferryd_synced || { echo "ferryd did not sync:"; cat "$TMP/ferryd.log"; return 1; }
}

# ---- backends and registry ----
# kill: 198.51.100.20, consecutive 3, long ejection (nothing reopens mid-test)
# probe: 198.51.100.21, consecutive 2, 200 ms base ejection
# pct: 198.51.100.22, 2 of 3 will die, 50%
# maxc: 198.51.100.23, max_connections 2
# health: 198.51.100.24 (one backend's /healthz says 503)
# degr: 198.51.100.25 (two 503, one flaky)
# lc: 198.51.100.26, least_conn (second backend added later)
# mag: 198.51.100.27, maglev
# syn: 198.51.100.28, SYN timeouts (iptables DROP), consecutive 1
# conc: 198.51.100.29, many clients at once (exact counters)
# wskew: 198.51.100.31, weighted, one of three equal backends OPEN (it does not listen)
# rskew: 198.51.100.32, random, one of three UNHEALTHY
# w21: 198.51.100.33, weighted 2:2:1, the middle one UNHEALTHY
# ru-*: 198.51.100.34-37, backend ids handed on (added at the end)
LC_EXTRA=""
LEAK_A='{"ip": "192.0.2.11", "port": 8010}, '
REUSE=""	# the id reuse services, added at the end
registry() {
	cat <<EOF
{ "services": [
  { "name": "kill", "vip": "198.51.100.20", "port": 80, "lb": "round_robin",
    "circuit": { "consecutive_failures": 3, "base_ejection_ms": 600000, "max_ejection_ms": 600000 },
    "backends": [ {"ip": "192.0.2.11", "port": 8000}, {"ip": "192.0.2.12", "port": 8000},
                  {"ip": "192.0.2.13", "port": 8000} ] },
  { "name": "probe", "vip": "198.51.100.21", "port": 80, "lb": "round_robin",
    "circuit": { "consecutive_failures": 2, "base_ejection_ms": 200, "max_ejection_ms": 60000 },
    "backends": [ {"ip": "192.0.2.11", "port": 8001}, {"ip": "192.0.2.12", "port": 8001},
                  {"ip": "192.0.2.13", "port": 8001} ] },
  { "name": "pct", "vip": "198.51.100.22", "port": 80, "lb": "round_robin",
    "circuit": { "consecutive_failures": 2, "base_ejection_ms": 600000, "max_ejection_ms": 600000,
                 "max_ejection_percent": 50 },
    "backends": [ {"ip": "192.0.2.11", "port": 8002}, {"ip": "192.0.2.12", "port": 8002},
                  {"ip": "192.0.2.13", "port": 8002} ] },
  { "name": "maxc", "vip": "198.51.100.23", "port": 80, "lb": "round_robin",
    "circuit": { "max_connections": 2 },
    "backends": [ {"ip": "192.0.2.11", "port": 8003}, {"ip": "192.0.2.12", "port": 8003} ] },
  { "name": "health", "vip": "198.51.100.24", "port": 80, "lb": "round_robin",
    "health": { "type": "http", "path": "/healthz", "interval_ms": 100, "timeout_ms": 1000,
                "healthy_after": 1, "unhealthy_after": 2 },
    "backends": [ {"ip": "192.0.2.11", "port": 8004}, {"ip": "192.0.2.12", "port": 8004},
                  {"ip": "192.0.2.13", "port": 8004} ] },
  { "name": "degr", "vip": "198.51.100.25", "port": 80, "lb": "round_robin",
    "health": { "type": "http", "path": "/healthz", "interval_ms": 100, "timeout_ms": 1000,
                "healthy_after": 1, "unhealthy_after": 2 },
    "backends": [ {"ip": "192.0.2.11", "port": 8005}, {"ip": "192.0.2.12", "port": 8005},
                  {"ip": "192.0.2.13", "port": 8005} ] },
  { "name": "lc", "vip": "198.51.100.26", "port": 80, "lb": "least_conn",
    "backends": [ {"ip": "192.0.2.11", "port": 8006}$LC_EXTRA ] },
  { "name": "mag", "vip": "198.51.100.27", "port": 80, "lb": "maglev",
    "backends": [ {"ip": "192.0.2.11", "port": 8007}, {"ip": "192.0.2.12", "port": 8007},
                  {"ip": "192.0.2.13", "port": 8007}, {"ip": "192.0.2.14", "port": 8007} ] },
  { "name": "syn", "vip": "198.51.100.28", "port": 80, "lb": "round_robin",
    "circuit": { "consecutive_failures": 1, "base_ejection_ms": 600000, "max_ejection_ms": 600000 },
    "backends": [ {"ip": "192.0.2.11", "port": 8008}, {"ip": "192.0.2.12", "port": 8008} ] },
  { "name": "conc", "vip": "198.51.100.29", "port": 80, "lb": "least_conn",
    "backends": [ {"ip": "192.0.2.11", "port": 8009}, {"ip": "192.0.2.12", "port": 8009},
                  {"ip": "192.0.2.13", "port": 8009} ] },
  { "name": "leak", "vip": "198.51.100.30", "port": 80, "lb": "round_robin",
    "circuit": { "consecutive_failures": 2, "base_ejection_ms": 600000, "max_ejection_ms": 600000,
                 "max_ejection_percent": 50 },
    "backends": [ $LEAK_A{"ip": "192.0.2.12", "port": 8010}, {"ip": "192.0.2.13", "port": 8010} ] },
  { "name": "wskew", "vip": "198.51.100.31", "port": 80, "lb": "weighted",
    "circuit": { "consecutive_failures": 1, "base_ejection_ms": 600000, "max_ejection_ms": 600000 },
    "backends": [ {"ip": "192.0.2.11", "port": 8011}, {"ip": "192.0.2.12", "port": 8011},
                  {"ip": "192.0.2.13", "port": 8011} ] },
  { "name": "rskew", "vip": "198.51.100.32", "port": 80, "lb": "random",
    "health": { "type": "http", "path": "/healthz", "interval_ms": 100, "timeout_ms": 1000,
                "healthy_after": 1, "unhealthy_after": 2 },
    "backends": [ {"ip": "192.0.2.11", "port": 8012}, {"ip": "192.0.2.12", "port": 8012},
                  {"ip": "192.0.2.13", "port": 8012} ] },
  { "name": "w21", "vip": "198.51.100.33", "port": 80, "lb": "weighted",
    "health": { "type": "http", "path": "/healthz", "interval_ms": 100, "timeout_ms": 1000,
                "healthy_after": 1, "unhealthy_after": 2 },
    "backends": [ {"ip": "192.0.2.12", "port": 8013, "weight": 2}, {"ip": "192.0.2.11", "port": 8013, "weight": 2},
                  {"ip": "192.0.2.13", "port": 8013, "weight": 1} ] }$REUSE
] }
EOF
}
write_registry() { registry >"$REG.tmp" && mv "$REG.tmp" "$REG"; }

for p in 8000 8001 8002 8004 8005 8007 8009 8010 8012 8013; do
	for h in 11 12 13; do serve "192.0.2.$h:$p" || skip_all "backends did not start"; done
done
for h in 12 13; do serve "192.0.2.$h:8011" || skip_all "backends did not start"; done
serve 192.0.2.14:8007 && serve 192.0.2.11:8003 && serve 192.0.2.12:8003 && serve 192.0.2.11:8006 &&
	serve 192.0.2.12:8006 && serve 192.0.2.11:8008 && serve 192.0.2.12:8008 || skip_all "backends did not start"
health_ctl 192.0.2.13:8004 503
health_ctl 192.0.2.11:8005 503
health_ctl 192.0.2.12:8005 503
health_ctl 192.0.2.13:8005 flaky
health_ctl 192.0.2.11:8012 503
health_ctl 192.0.2.11:8013 503
write_registry
# The counters map of an earlier layout (ferry_bestat without gen): this
# ferryd removes it.
mkdir -p "$PIN" && bpftool map create "$PIN/ferry_bestat_v1" type hash key 4 value 88 entries 16 \
	name ferry_bestat_v1 || { echo "FAIL pinning an old ferry_bestat_v1"; exit 1; }
ferryd_start_ns || { echo "FAIL ferryd_start"; exit 1; }
check old_bestat_map_unpinned test ! -e "$PIN/ferry_bestat_v1"

# ---- a killed backend: exactly consecutive_failures failed connects ----
V=198.51.100.20:80
r=$(conn $V 6)
assert_eq kill_baseline_all_ok "$(jq -r .ok <<<"$r")" 6
kill_be 192.0.2.11:8000
r=$(conn $V 30)
assert_eq killed_exact_failures "$(errors "$r" ECONNREFUSED)" 3
# After the third failure no connect reaches it: the failures are the
# first three times round robin came to it, and nothing failed after.
last_err=$(jq -r '[.seq | to_entries[] | select(.value == "ECONNREFUSED") | .key] | max' <<<"$r")
check killed_failures_first_three_turns test "$last_err" -lt 9
assert_eq killed_others_served "$(jq -r .ok <<<"$r")" 27
assert_eq killed_circuit_open "$(be_field $V 192.0.2.11:8000 circuit)" open
assert_eq killed_kernel_failed_count "$(be_field $V 192.0.2.11:8000 failed)" 3
r=$(conn $V 12)
assert_eq killed_then_none_reach_it "$(errors "$r" ECONNREFUSED)/$(jq -r .ok <<<"$r")" 0/12
e=$(CTL -j explain $V)
check explain_names_open_circuit jqe '.backends[] | select(.backend == "192.0.2.11:8000") |
	.eligible == "no" and (.reasons | any(test("circuit OPEN")))' <<<"$e"
check explain_others_eligible jqe '[.backends[] | select(.eligible == "yes")] | length == 2' <<<"$e"
check explain_plain_why sh -c "\"$B/ferryctl\" --bpffs \"$PIN\" explain $V | grep -q 'circuit OPEN'"
check circuit_plain_shows_open sh -c "\"$B/ferryctl\" --bpffs \"$PIN\" circuit $V | grep -q '192.0.2.11:8000 *open'"

# ---- ejection time passes: a probe; failure doubles, success closes ----
V=198.51.100.21:80
B1=192.0.2.11:8001
kill_be $B1
eject() {	# connect one at a time until B1's circuit is OPEN (bounded)
	local i
	for i in $(seq 1 30); do
		be_is $V $B1 circuit open && return 0
		conn $V 1 >/dev/null
	done
	be_is $V $B1 circuit open
}
probe_due() {	# the ejection is over: the next connect that picks B1 is a probe
	[ "$(be_field $V $B1 open_ms_left)" = 0 ]
}
check probe_first_ejection eject
assert_eq probe_first_ejection_base_ms "$(be_field $V $B1 ejection_ms)" 200
assert_eq probe_ejections_1 "$(be_field $V $B1 ejections)" 1
check probe_due_after_ejection wait_for 400 probe_due
failed_before=$(be_field $V $B1 failed)
# Round robin comes to B1 within three connects; the probe fails (still dead).
conn $V 3 >/dev/null
assert_eq probe_failure_counted "$(be_field $V $B1 failed)" $((failed_before + 1))
assert_eq probe_failure_reopens "$(be_field $V $B1 circuit)" open
assert_eq repeated_ejection_doubles "$(be_field $V $B1 ejection_ms)" 400
assert_eq probe_ejections_2 "$(be_field $V $B1 ejections)" 2
serve $B1
check probe_due_again wait_for 400 probe_due
r=$(conn $V 3)
assert_eq probe_success_served "$(served "$r" $B1)" 1
assert_eq probe_success_closes "$(be_field $V $B1 circuit)" closed
assert_eq probe_closed_ejected_count "$(circuit $V | jq -r .ejected)" 0
r=$(conn $V 6)
assert_eq probe_closed_back_in_rotation "$(served "$r" $B1)" 2

# ---- max_ejection_percent with 2 of 3 backends dead ----
V=198.51.100.22:80
kill_be 192.0.2.11:8002
kill_be 192.0.2.12:8002
r=$(conn $V 30)
c=$(circuit $V)
assert_eq pct_one_ejected "$(jq -r .ejected <<<"$c")" 1
assert_eq pct_max_ejected "$(jq -r .max_ejected <<<"$c")" 1
assert_eq pct_one_open "$(jq -r '[.backends[] | select(.circuit == "open")] | length' <<<"$c")" 1
check pct_other_dead_stays_closed jqe '[.backends[] | select(.circuit == "closed" and
	.consecutive_failures >= 2 and .backend != "192.0.2.13:8002")] | length == 1' <<<"$c"
assert_eq pct_live_backend_served "$(served "$r" 192.0.2.13:8002)" \
	"$(( $(jq -r .ok <<<"$r") ))"

# ---- max_connections ----
V=198.51.100.23:80
mkfifo "$TMP/hold"
in_client "$P" connect $V -n 4 --hold <"$TMP/hold" >"$TMP/held.json" 2>&1 &
HOLD=$!
_PIDS+=($HOLD)
exec 7>"$TMP/hold"
wait_for 200 test -s "$TMP/held.json"
h=$(cat "$TMP/held.json")
assert_eq maxconn_fills_both "$(served "$h" 192.0.2.11:8003)/$(served "$h" 192.0.2.12:8003)" 2/2
r=$(conn $V 3)
assert_eq maxconn_rejects_ebusy "$(errors "$r" EBUSY)" 3
check maxconn_explain_full sh -c "\"$B/ferryctl\" --bpffs \"$PIN\" -j explain $V | jq -e '.result == \"EBUSY\"' >/dev/null"
check maxconn_stat_counted sh -c "\"$B/ferryctl\" --bpffs \"$PIN\" -j stats --no-backends |
	jq -e '.datapath.max_conn_reject >= 3' >/dev/null"
exec 7>&-
wait "$HOLD" 2>/dev/null
active0() { [ "$(circuit $V | jq '[.backends[].active] | add')" = 0 ]; }
check maxconn_released wait_for 200 active0
r=$(conn $V 2)
assert_eq maxconn_after_release_ok "$(jq -r .ok <<<"$r")" 2

# ---- health: an UNHEALTHY backend gets nothing, and comes back ----
V=198.51.100.24:80
check health_marks_unhealthy wait_for 200 be_is $V 192.0.2.13:8004 health unhealthy
check health_others_healthy wait_for 200 be_is $V 192.0.2.11:8004 health healthy
r=$(conn $V 30)
assert_eq health_unhealthy_gets_nothing "$(served "$r" 192.0.2.13:8004)/$(jq -r .ok <<<"$r")" 0/30
check health_explain_unhealthy sh -c "\"$B/ferryctl\" --bpffs \"$PIN\" explain $V | grep '192.0.2.13:8004' | grep -q UNHEALTHY"
health_ctl 192.0.2.13:8004 200
check health_recovers wait_for 200 be_is $V 192.0.2.13:8004 health healthy
r=$(conn $V 6)
assert_eq health_recovered_serves "$(served "$r" 192.0.2.13:8004)" 2

# ---- all unhealthy but one degraded: the degraded one serves ----
V=198.51.100.25:80
check degr_flaky_degraded wait_for 200 be_is $V 192.0.2.13:8005 health degraded
check degr_others_unhealthy wait_for 200 sh -c "[ \"\$(\"$B/ferryctl\" --bpffs \"$PIN\" -j circuit $V |
	jq '[.backends[] | select(.health == \"unhealthy\")] | length')\" = 2 ]"
r=$(conn $V 10)
assert_eq degr_serves_fallback "$(served "$r" 192.0.2.13:8005)/$(jq -r .ok <<<"$r")" 10/10
check degr_explain_fallback sh -c "\"$B/ferryctl\" --bpffs \"$PIN\" -j explain $V |
	jq -e '.backends[] | select(.backend == \"192.0.2.13:8005\") | .eligible == \"fallback\"' >/dev/null"
# A healthy one comes back: the degraded one gets nothing any more.
health_ctl 192.0.2.11:8005 200
check degr_healthy_back wait_for 200 be_is $V 192.0.2.11:8005 health healthy
r=$(conn $V 10)
assert_eq degr_healthy_preferred "$(served "$r" 192.0.2.11:8005)/$(served "$r" 192.0.2.13:8005)" 10/0

# ---- random and weighted: an unusable backend's share is spread, not handed on ----
# A draw that lands on a backend that may not take the connection is drawn
# again (by weight under weighted): the usable ones keep their proportions.
# Scanning on from the unusable slot instead (what the kernel did) hands its
# whole share to the next slot: 2/3 vs 1/3 for two equal backends; 0.4 vs
# 0.6 for w21's 2:1 pair (the unusable one sits before the light one).
# With 4 draws, 1/81 of the picks (equal ones) or 0.4^4 (w21) still fall
# back to the scan. Equal: each count of 600 ~ Binomial(600, 0.49..0.51),
# sigma 12.2; 240..360 leaves over 4.5 sigma each side (old: 400:200).
# w21: the heavy one's mean 390, sigma 11.7; 330..450 leaves 5 sigma each
# side (old: mean 240).
SKEW_N=600
spread_ok() {	# NAME VIP GONE HEAVY LIGHT LO HI: of SKEW_N connects GONE gets none, HEAVY LO..HI, LIGHT the rest
	local r z a b
	r=$(conn "$2" $SKEW_N)
	z=$(served "$r" "$3") a=$(served "$r" "$4") b=$(served "$r" "$5")
	if [ "$z" = 0 ] && [ "$((a + b))" = $SKEW_N ] && [ "$a" -ge "$6" ] && [ "$a" -le "$7" ]; then
		echo "PASS $1 ($4 $a, $5 $b)"
	else
		echo "FAIL $1: $3 got $z, $4 $a, $5 $b of $SKEW_N (want 0, $6..$7, the rest; errors $(jq -c .errors <<<"$r"))"
	fi
}
share_in() {	# VIP ADDR:PORT LO HI: explain's share for it is within LO..HI
	CTL -j explain "$1" | jq -e --arg b "$2" --argjson lo "$3" --argjson hi "$4" \
		'.backends[] | select(.backend == $b) | .share >= $lo and .share <= $hi' >/dev/null
}
shares_in() {	# VIP A LO HI B LO HI
	share_in "$1" "$2" "$3" "$4" && share_in "$1" "$5" "$6" "$7"
}
both_healthy() { be_is "$1" "$2" health healthy && be_is "$1" "$3" health healthy; }
V=198.51.100.31:80
wopen() { conn $V 1 >/dev/null; be_is $V 192.0.2.11:8011 circuit open; }
check skew_weighted_ejected wait_for 60 wopen
spread_ok skew_weighted_open_even $V 192.0.2.11:8011 192.0.2.12:8011 192.0.2.13:8011 240 360
check skew_weighted_explain_even shares_in $V 192.0.2.12:8011 0.45 0.55 192.0.2.13:8011 0.45 0.55
V=198.51.100.32:80
check skew_random_unhealthy wait_for 200 be_is $V 192.0.2.11:8012 health unhealthy
check skew_random_others_healthy wait_for 200 both_healthy $V 192.0.2.12:8012 192.0.2.13:8012
spread_ok skew_random_unhealthy_even $V 192.0.2.11:8012 192.0.2.12:8012 192.0.2.13:8012 240 360
check skew_random_explain_even shares_in $V 192.0.2.12:8012 0.45 0.55 192.0.2.13:8012 0.45 0.55
V=198.51.100.33:80
check skew_w21_unhealthy wait_for 200 be_is $V 192.0.2.11:8013 health unhealthy
check skew_w21_others_healthy wait_for 200 both_healthy $V 192.0.2.12:8013 192.0.2.13:8013
spread_ok skew_weighted_2to1_kept $V 192.0.2.11:8013 192.0.2.12:8013 192.0.2.13:8013 330 450
check skew_w21_explain_2to1 shares_in $V 192.0.2.12:8013 0.6 0.7 192.0.2.13:8013 0.3 0.4

# ---- least_conn: new connections go to the idle backend ----
V=198.51.100.26:80
mkfifo "$TMP/hold2"
in_client "$P" connect $V -n 20 --hold <"$TMP/hold2" >"$TMP/held2.json" 2>&1 &
HOLD2=$!
_PIDS+=($HOLD2)
exec 8>"$TMP/hold2"
wait_for 200 test -s "$TMP/held2.json"
assert_eq lc_busy_holds_20 "$(be_field $V 192.0.2.11:8006 active)" 20
LC_EXTRA=', {"ip": "192.0.2.12", "port": 8006}'
write_registry
two_backends() { [ "$(circuit $V | jq '.backends | length')" = 2 ]; }
check lc_backend_added wait_for 200 two_backends
r=$(conn $V 10)
assert_eq lc_new_go_to_idle "$(served "$r" 192.0.2.12:8006)/$(served "$r" 192.0.2.11:8006)" 10/0
check lc_explain_idle sh -c "\"$B/ferryctl\" --bpffs \"$PIN\" -j explain $V | jq -e '.next.backend == \"192.0.2.12:8006\"' >/dev/null"
exec 8>&-
wait "$HOLD2" 2>/dev/null

# ---- maglev: explain names the backend this client gets ----
V=198.51.100.27:80
r=$(conn $V 3)
got=$(jq -r '.backends | keys[0]' <<<"$r")
assert_eq maglev_sticky_client "$(served "$r" "$got")" 3
e=$(CTL -j explain $V --from "$NS_C")
assert_eq explain_maglev_netns "$(jq -r .next.backend <<<"$e")" "$got"
# A process in the cgroup for explain to find; bg: $! is the subshell, the
# sleep its descendant, so it goes with kill_tree (and world_down).
bg in_client sleep 60
SLEEPER=$!
wait_for 100 sh -c "[ -n \"\$(cat $CG/cgroup.procs)\" ]"
e=$(CTL -j explain $V --from "$CG")
assert_eq explain_maglev_cgroup "$(jq -r .next.backend <<<"$e")" "$got"
assert_eq explain_cgroup_balanced "$(jq -r .client_balanced <<<"$e")" true
kill_tree "$SLEEPER"
wait "$SLEEPER" 2>/dev/null
cg_idle() { [ -z "$(cat "$CG/cgroup.procs")" ]; }
check explain_sleeper_gone wait_for 100 cg_idle
# Quarantine the client's backend by hand: explain and the kernel agree on the next one.
CTL backend set $V "$got" --state quarantined >/dev/null 2>&1
e=$(CTL -j explain $V --from "$NS_C")
check explain_quarantined jqe --arg b "$got" '.backends[] | select(.backend == $b) |
	(.reasons | any(test("quarantined")))' <<<"$e"
want=$(jq -r .next.backend <<<"$e")
r=$(conn $V 3)
assert_eq quarantine_kernel_matches_explain "$(served "$r" "$want")" 3
assert_eq quarantine_gets_nothing "$(served "$r" "$got")" 0
n0=$(CTL -j status | jq -r .syncs)
kill -HUP "$FERRYD_PID"
# Only a sync that happened can be survived: no sync, no pass.
if wait_for 100 synced_since "$n0"; then synced=yes; else synced="no sync after SIGHUP"; fi
r=$(conn $V 3)
assert_eq quarantine_survives_sync "$synced/$(served "$r" "$got")" yes/0
CTL backend set $V "$got" --state active >/dev/null 2>&1
r=$(conn $V 3)
assert_eq quarantine_restored "$(served "$r" "$got")" 3

# ---- SYN timeouts count as failures (no RST, no ICMP) ----
V=198.51.100.28:80
if ip netns exec "$NS_B" iptables -A INPUT -p tcp --dport 8008 -d 192.0.2.11 -j DROP 2>/dev/null; then
	# Round robin sends one of two connects to the silent backend. The
	# breaker counts it failed after two SYN timeouts (RTOs, in the
	# kernel); the client's connect waits on (no timeout of its own to
	# race), the test polls the counter, then stops the client.
	bg conn $V 2 --io-timeout 600 >"$TMP/syn.json"
	SYNC=$!
	syn_failed() { [ "$(be_field $V 192.0.2.11:8008 failed)" -ge 1 ]; }
	wait_for 600 syn_failed
	assert_eq syn_timeout_counted "$(be_field $V 192.0.2.11:8008 failed)" 1
	check syn_timeout_opens wait_for 100 be_is $V 192.0.2.11:8008 circuit open
	kill_tree "$SYNC"
	wait "$SYNC" 2>/dev/null
	r=$(conn $V 4)
	assert_eq syn_timeout_then_skipped "$(served "$r" 192.0.2.12:8008)" 4
	ip netns exec "$NS_B" iptables -D INPUT -p tcp --dport 8008 -d 192.0.2.11 -j DROP
else
	echo "SKIP syn_timeout_counted: iptables unavailable in the backend netns"
fi

# ---- counters exact under concurrency ----
V=198.51.100.29:80
pids=()
for i in 1 2 3 4; do
	conn $V 150 >"$TMP/conc$i.json" &
	pids+=($!)
done
wait "${pids[@]}"
ok=0
for i in 1 2 3 4; do ok=$((ok + $(jq -r .ok <"$TMP/conc$i.json"))); done
assert_eq conc_all_ok "$ok" 600
quiet() { [ "$(circuit $V | jq '[.backends[].active] | add')" = 0 ]; }
check conc_active_back_to_zero wait_for 200 quiet
c=$(circuit $V)
assert_eq conc_opened_exact "$(jq '[.backends[].opened] | add' <<<"$c")" 600
assert_eq conc_success_exact "$(jq '[.backends[].success] | add' <<<"$c")" 600
assert_eq conc_failed_none "$(jq '[.backends[].failed] | add' <<<"$c")" 0

# ---- a backend removed while ejected leaves no stale ejected count ----
V=198.51.100.30:80
kill_be 192.0.2.11:8010
open_a() { conn $V 1 >/dev/null; be_is $V 192.0.2.11:8010 circuit open; }
check leak_first_ejected wait_for 30 open_a
LEAK_A=""
write_registry
two_left() { [ "$(circuit $V | jq '.backends | length')" = 2 ]; }
check leak_backend_removed wait_for 200 two_left
assert_eq leak_count_still_held "$(circuit $V | jq -r .ejected)" 1
# Another backend dies: its ejection is held back at first, the kernel
# recounts the service's ejected backends and lets it go.
kill_be 192.0.2.12:8010
open_b() { conn $V 1 >/dev/null; be_is $V 192.0.2.12:8010 circuit open; }
check leak_recount_lets_next_ejection wait_for 60 open_b
assert_eq leak_count_exact_again "$(circuit $V | jq -r .ejected)" 1

# ---- ferryd restarted: breaker state and health verdicts stay ----
check ferryd_survived_everything kill -0 "$FERRYD_PID"
ferryd_stop
V=198.51.100.20:80
assert_eq restart_circuit_kept_while_down "$(be_field $V 192.0.2.11:8000 circuit)" open
ferryd_start_ns || echo "FAIL ferryd_restart"
assert_eq restart_circuit_kept "$(be_field $V 192.0.2.11:8000 circuit)" open
assert_eq restart_health_kept "$(be_field 198.51.100.25:80 192.0.2.12:8005 health)" unhealthy
r=$(conn $V 6)
assert_eq restart_still_skipped "$(errors "$r" ECONNREFUSED)" 0

# ---- restarted on a bad registry: the last good state's backends stay probed ----
# The maps keep serving what the last good registry made; ferryd probes
# them from that registry's copy in its --state-dir (never applied).
ferryd_stop
registry | sed 's/"name": "degr",/"name": "degr", "no_such_key": 1,/' >"$REG.tmp" && mv "$REG.tmp" "$REG"
NOSYNC=1 ferryd_start_ns
check badreg_probes_from_copy wait_for 200 grep -q 'health checks of [0-9]* services taken from' "$TMP/ferryd.log"
health_ctl 192.0.2.12:8005 200
check badreg_unhealthy_recovers wait_for 200 be_is 198.51.100.25:80 192.0.2.12:8005 health healthy
health_ctl 192.0.2.12:8005 503
check badreg_healthy_fails wait_for 200 be_is 198.51.100.25:80 192.0.2.12:8005 health unhealthy
check badreg_not_applied sh -c "\"$B/ferryctl\" --bpffs \"$PIN\" -j status | jq -e '.last_ok == false' >/dev/null"
# No copy: said so, nothing probed.
ferryd_stop
rm -rf "$(state_dir "$PIN")"
NOSYNC=1 ferryd_start_ns
check badreg_no_copy_warns wait_for 200 grep -q 'no copy of a last good registry' "$TMP/ferryd.log"
write_registry
check badreg_fixed_syncs wait_for 200 ferryd_synced
# The copy is named for the pin directory: ferryds on other pins that
# share a state directory never take it.
check badreg_copy_saved test -s "$(state_dir "$PIN")/registry${PIN//\//_}.json"
ferryd_stop
# A registry kept where the copy would go: no copy is written over it
# (each save was a change to the registry, a sync, a save: a loop).
own="$(state_dir "$PIN")/registry${PIN//\//_}.json"
cp "$REG" "$own"
nsenter --net="/run/netns/$NS_C" "$B/ferryd" --registry "$own" --bpffs "$PIN" \
	--state-dir "$(state_dir "$PIN")" --cgroup "$CG" --metrics-addr off >"$TMP/ferryd.log" 2>&1 &
FERRYD_PID=$!
check own_file_no_copy wait_for 200 grep -q "is the registry's own file: no copy kept" "$TMP/ferryd.log"
# This ferryd's first sync, then the SIGHUP's: two, not hundreds.
kill -HUP "$FERRYD_PID"
check own_file_sighup_synced wait_for 200 synced_since 1
assert_eq own_file_no_sync_loop "$(CTL -j status | jq -r .syncs)" 2
ferryd_stop

# ---- a backend id handed on while connections to its last owner are open ----
# ferry_conn_v2 outlives ferryd and names a connection's backend by id; a
# restarted ferryd hands out the lowest free id. What the old connections
# still count must not land on the new owner's counters: an established
# one's close would take one off its `active` (wrapping to 2^64-1: "at
# max_connections" for ever), a handshake still pending would count its
# failure there (and eject it). Once with the ids going to other backends,
# once with a backend removed and added again (its id back, same address).
# ru-x 198.51.100.34: A, one held connection
# ru-s 198.51.100.35: S, nothing listens, its SYNs dropped: a handshake pending;
#                     consecutive_failures 1 (its breaker judges that handshake's
#                     failure: counted on a new owner, it would eject it)
# ru-y 198.51.100.36: Y1, then Y2 and Y3 take A's and S's ids
# ru-z 198.51.100.37: Z1, Z2; Z2 removed and added again
# ru-y and ru-z: least_conn, max_connections 1, consecutive_failures 1.
RU_X=198.51.100.34:80 RU_S=198.51.100.35:80 RU_Y=198.51.100.36:80 RU_Z=198.51.100.37:80
A=192.0.2.13:8014 S=192.0.2.13:8015 Y1=192.0.2.11:8016 Y2=192.0.2.12:8016 Y3=192.0.2.13:8016
Z1=192.0.2.11:8017 Z2=192.0.2.12:8017
be_list() {	# ADDR:PORT...: the insides of a registry backends list
	local e sep=""
	for e in "$@"; do printf '%s{"ip": "%s", "port": %s}' "$sep" "${e%:*}" "${e##*:}"; sep=", "; done
}
RU_CB='"circuit": { "max_connections": 1, "consecutive_failures": 1, "base_ejection_ms": 600000,
                 "max_ejection_ms": 600000 }'
ru_set() {	# backends of ru-x, ru-s, ru-y, ru-z (each "ADDR:PORT ..."): the registry
	REUSE=",
  { \"name\": \"ru-x\", \"vip\": \"198.51.100.34\", \"port\": 80, \"backends\": [ $(be_list $1) ] },
  { \"name\": \"ru-s\", \"vip\": \"198.51.100.35\", \"port\": 80, \"circuit\": { \"consecutive_failures\": 1 },
    \"backends\": [ $(be_list $2) ] },
  { \"name\": \"ru-y\", \"vip\": \"198.51.100.36\", \"port\": 80, \"lb\": \"least_conn\", $RU_CB,
    \"backends\": [ $(be_list $3) ] },
  { \"name\": \"ru-z\", \"vip\": \"198.51.100.37\", \"port\": 80, \"lb\": \"least_conn\", $RU_CB,
    \"backends\": [ $(be_list $4) ] }"
	write_registry
}
# Long-lived children (ferryd, clients) get none of the holds' fifo ends
# (fds 7-9): a copy kept open elsewhere would keep a client from ever
# seeing EOF.
declare -A HOLDPID
hold() {	# NAME FD VIP N: one client holds N connections to VIP open until unhold NAME FD
	rm -f "$TMP/hold-$1" "$TMP/hold-$1.json"
	mkfifo "$TMP/hold-$1"
	in_client "$P" connect "$3" -n "$4" --hold --timeout 600 <"$TMP/hold-$1" >"$TMP/hold-$1.json" \
		2>&1 7>&- 8>&- 9>&- &
	HOLDPID[$1]=$!
	_PIDS+=($!)
	eval "exec $2>\"\$TMP/hold-\$1\""
	wait_for 200 test -s "$TMP/hold-$1.json"
}
unhold() {	# NAME FD: the client closes its connections (sock_release runs in close()) and exits
	eval "exec $2>&-"
	wait "${HOLDPID[$1]}" 2>/dev/null
}
held() { served "$(cat "$TMP/hold-$1.json")" "$2"; }	# NAME ADDR:PORT
nbackends() { [ "$(circuit "$1" | jq '.backends | length')" = "$2" ]; }
ru_state() {	# VIP ADDR:PORT...: each one's active/failed/circuit
	local v=$1 b; shift
	for b in "$@"; do
		circuit $v | jq -r --arg b "$b" '.backends[] | select(.backend == $b) |
			"\(.active)/\(.failed)/\(.circuit)"'
	done | tr '\n' ' '
}
ru_fills() {	# VIP ADDR:PORT...: as many connections held as it has backends get one
		# each, none refused (max_connections 1 lets exactly that many in)
	local v=$1 r b got="" want=""; shift
	hold ru-fill 9 $v $#
	r=$(cat "$TMP/hold-ru-fill.json")
	unhold ru-fill 9
	for b in "$@"; do got+="$(served "$r" $b)/"; want+="1/"; done
	[ "$got$(jq -r .ok <<<"$r")" = "$want$#" ]
}
ru_not_full() {	# VIP: explain calls none of its backends full
	CTL -j explain $1 | jqe '[.backends[] | select(.eligible == "full")] | length == 0'
}

serve $A && serve $Y1 && serve $Y2 && serve $Y3 && serve $Z1 && serve $Z2 || echo "FAIL ru_backends_start"
# Started afresh (the allocator's hint back at 1): the new backends take the
# lowest free ids.
ferryd_stop
ru_set "$A" "$S" "$Y1" "$Z1 $Z2"
ferryd_start_ns 7>&- 8>&- 9>&- || echo "FAIL ru_ferryd_start"
id_a=$(be_field $RU_X $A id) id_s=$(be_field $RU_S $S id)
hold ru-old 7 $RU_X 1
assert_eq ru_old_connection_counted "$(be_field $RU_X $A active)" 1
RU_SYN=""
if ip netns exec "$NS_B" iptables -A INPUT -p tcp -d 192.0.2.13 --dport 8015 -j DROP 2>/dev/null; then
	RU_SYN=1
	bg conn $RU_S 1 --io-timeout 600 >"$TMP/ru-syn.json" 7>&- 8>&- 9>&-
	RU_SYNC=$!
	check ru_handshake_pending wait_for 100 be_is $RU_S $S active 1
else
	echo "SKIP ru_handshake_pending: iptables unavailable in the backend netns"
fi
# A and S go, their counters with them (well within the two SYN timeouts
# that would decide the handshake: it stays pending); ferryd restarted, Y2
# and Y3 get their ids.
ru_set "" "" "$Y1" "$Z1 $Z2"
ru_gone() { nbackends $RU_X 0 && nbackends $RU_S 0; }
check ru_old_backends_removed wait_for 200 ru_gone
ferryd_stop
ru_set "" "" "$Y1 $Y2 $Y3" "$Z1 $Z2"
ferryd_start_ns 7>&- 8>&- 9>&- || echo "FAIL ru_ferryd_restart"
assert_eq ru_ids_handed_on "$(for b in $Y2 $Y3; do be_field $RU_Y $b id; done | sort -n | tr '\n' ' ')" \
	"$(printf '%s\n' $id_a $id_s | sort -n | tr '\n' ' ')"
hold ru-new 8 $RU_Y 3
assert_eq ru_new_connections_one_each "$(held ru-new $Y1)/$(held ru-new $Y2)/$(held ru-new $Y3)" 1/1/1
if [ -n "$RU_SYN" ]; then
	# The pending handshake ends: the next SYN gets a RST (nothing listens on S).
	ip netns exec "$NS_B" iptables -D INPUT -p tcp -d 192.0.2.13 --dport 8015 -j DROP
	check ru_handshake_ended wait_for 600 test -s "$TMP/ru-syn.json"
	wait "$RU_SYNC" 2>/dev/null
	assert_eq ru_handshake_refused "$(errors "$(cat "$TMP/ru-syn.json")" ECONNREFUSED)" 1
fi
unhold ru-old 7
assert_eq ru_new_owners_untouched "$(ru_state $RU_Y $Y1 $Y2 $Y3)" "1/0/closed 1/0/closed 1/0/closed "
unhold ru-new 8
assert_eq ru_new_owners_idle "$(ru_state $RU_Y $Y1 $Y2 $Y3)" "0/0/closed 0/0/closed 0/0/closed "
check ru_explain_not_full ru_not_full $RU_Y
check ru_max_connections_fill ru_fills $RU_Y $Y1 $Y2 $Y3

# Z2 removed while a connection to it is open, added again: its id back.
hold ru-old 7 $RU_Z 2
assert_eq ru_z_both_held "$(held ru-old $Z1)/$(held ru-old $Z2)" 1/1
id_z2=$(be_field $RU_Z $Z2 id)
ru_set "" "" "$Y1 $Y2 $Y3" "$Z1"
check ru_z2_removed wait_for 200 nbackends $RU_Z 1
ferryd_stop
ru_set "" "" "$Y1 $Y2 $Y3" "$Z1 $Z2"
ferryd_start_ns 7>&- 8>&- 9>&- || echo "FAIL ru_ferryd_restart2"
assert_eq ru_same_id_back "$(be_field $RU_Z $Z2 id)" "$id_z2"
# Z1 still holds its old connection (max_connections 1): a new one can only
# go to Z2, whose counters started over.
hold ru-new 8 $RU_Z 1
assert_eq ru_readded_takes_new "$(held ru-new $Z2)" 1
unhold ru-old 7
assert_eq ru_readded_keeps_new_count "$(ru_state $RU_Z $Z1 $Z2)" "0/0/closed 1/0/closed "
unhold ru-new 8
assert_eq ru_readded_idle "$(ru_state $RU_Z $Z1 $Z2)" "0/0/closed 0/0/closed "
check ru_readded_explain_not_full ru_not_full $RU_Z
check ru_readded_max_connections_fill ru_fills $RU_Z $Z1 $Z2
