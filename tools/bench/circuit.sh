#!/usr/bin/env bash
# Circuit breaking, the cost of connection tracking, least_conn, health checks.
#
#   failover   a steady stream of connect()+close() (one per ms) to a VIP of
#              three backends; one backend is killed a second in. Failed
#              connects and the time from the kill to the last failed one,
#              with the breaker (defaults: 5 failures in a row) and without
#              (consecutive_failures 0). Median of FERRY_BENCH_REPS kills.
#   cost       connect()+close() rate through a 1-backend VIP with the sockops
#              + breaker path (ferryd default) and without it (--no-circuit),
#              rounds alternating, plus the run time of every ferry program
#              per connect (BPF_ENABLE_STATS).
#   least_conn connect4's run time per connect for services of 8..4096
#              backends: full scan (--least-conn-exact 4096) vs power of two
#              choices (--least-conn-exact 0); and how evenly each spreads
#              long-lived connections (max - min active per backend).
#   health     10,000 backends under TCP probes (interval 5 s): time until
#              every one has a verdict, ferryd's CPU while probing, and a
#              registry sync's time while probes run.
#
# Every object has the suffix cb<pid> and is removed on any exit.
set -u
source "$(dirname "$0")/lib.sh"

SECS=${FERRY_BENCH_SECONDS:-2}
REPS=${FERRY_BENCH_REPS:-3}
SECTIONS=${FERRY_BENCH_CIRCUIT:-failover cost least_conn health}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
FB="$B/ferry-bench"
FERRYD="$B/ferryd"
CTL="$B/ferryctl"
COST_VIP=198.51.100.10:80
LC_SIZES=(8 16 32 64 512 4096)
HEALTH_N=10002		# 3 services x 3334 backends

for x in "$FB" "$FERRYD" "$CTL"; do
	[ -x "$x" ] || bench_die "$x is not built (make BUILD=$BUILD all)"
done
command -v jq >/dev/null || bench_skip "jq missing (make deps installs it)"
command -v nsenter >/dev/null || bench_skip "nsenter missing"
bench_init cb
OUT="$B/bench"
mkdir -p "$OUT"
T_START=$(date +%s)
log() { echo "circuit: $*" >&2; }

# ---- world: client netns c, backend netns b, one veth --------------------
bench_netns c; NS_C=$REPLY
bench_netns b; NS_B=$REPLY
bench_veth "$NS_C" c0 "$NS_B" b0
ip -n "$NS_C" addr add 192.0.2.1/24 dev c0
for h in 2 3 11 12 13; do ip -n "$NS_B" addr add "192.0.2.$h/24" dev b0; done
in_ns "$NS_C" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1

declare -A SINK
sink() {	# tag ip port [ports]: accept-and-close, pid in SINK[tag]
	bench_assert_netns "$NS_B"
	rm -f "$TMP/$1.ready"
	ip netns exec "$NS_B" "$FB" msink --listen "$2" --port "$3" --ports "${4:-1}" --timeout 900 \
		--ready "$TMP/$1.ready" >"$TMP/$1.out" 2>&1 &
	SINK[$1]=$!
	_BENCH_PIDS+=($!)
	wait_for 400 test -s "$TMP/$1.ready" || bench_die "sink $1 did not start: $(cat "$TMP/$1.out")"
}

# ---- registry: every section's services in one file ---------------------
backends() {	# ip port count -> JSON backend list
	awk -v ip="$1" -v p="$2" -v n="$3" 'BEGIN { for (i = 0; i < n; i++)
		printf "%s{\"ip\": \"%s\", \"port\": %d}", i ? ", " : "", ip, p + i }'
}
{
	echo '{ "services": ['
	printf '{ "name": "cost", "vip": "198.51.100.10", "port": 80, "backends": [%s] }' "$(backends 192.0.2.2 9000 1)"
	for ((r = 0; r < REPS; r++)); do
		for mode in on off; do
			if [ $mode = on ]; then p=$((8100 + r)); cf=5; vip=198.51.100.$((20 + r)); else
				p=$((8200 + r)); cf=0; vip=198.51.100.$((30 + r)); fi
			printf ',\n{ "name": "failover-%s-%d", "vip": "%s", "port": 80, "lb": "round_robin",\n' $mode $r $vip
			printf '  "circuit": { "consecutive_failures": %d },\n' $cf
			printf '  "backends": [{"ip": "192.0.2.11", "port": %d}, {"ip": "192.0.2.12", "port": %d}, {"ip": "192.0.2.13", "port": %d}] }' $p $p $p
		done
	done
	i=0
	for n in "${LC_SIZES[@]}"; do
		printf ',\n{ "name": "lc-%d", "vip": "198.51.100.%d", "port": 80, "lb": "least_conn", "backends": [%s] }' \
			"$n" $((40 + i)) "$(backends 192.0.2.3 20000 "$n")"
		i=$((i + 1))
	done
	echo ' ] }'
} >"$TMP/registry.json"

SOCKMAP_OFF=()
"$FERRYD" --help 2>&1 | grep -q -- '--sockmap' && SOCKMAP_OFF=(--sockmap off)
declare -A CG PIN
load() {	# name [ferryd args]: ferryd --once in its own cgroup and pin dir
	local name=$1 t0
	shift
	bench_cgroup "$name"; CG[$name]=$REPLY
	bench_pin "$name"; PIN[$name]=$REPLY
	t0=$(date +%s%3N)
	"$FERRYD" --registry "$TMP/registry.json" --bpffs "${PIN[$name]}" --cgroup "${CG[$name]}" --once \
		--resync 0 --metrics-addr off "${SOCKMAP_OFF[@]}" "$@" >"$TMP/$name.out" 2>"$TMP/$name.log" ||
		{ cat "$TMP/$name.log" >&2; bench_die "ferryd --once ($name) failed"; }
	log "$name: loaded in $(($(date +%s%3N) - t0)) ms"
}
load ferry --least-conn-exact 4096	# the sockops + breaker path, full least_conn scans
load p2c --least-conn-exact 0		# least_conn by power of two choices
load nocircuit --no-circuit		# socket LB alone

sink cost 192.0.2.2 9000
sink lc 192.0.2.3 20000 4096
for ((r = 0; r < REPS; r++)); do
	for h in 11 12 13; do
		sink "on$r-$h" "192.0.2.$h" $((8100 + r))
		sink "off$r-$h" "192.0.2.$h" $((8200 + r))
	done
done

json() { jq -r "$1" <<<"$2"; }

# ---- failover ------------------------------------------------------------
if want failover; then
	declare -A FAILED LASTMS
	for ((r = 0; r < REPS; r++)); do
		for mode in on off; do
			if [ $mode = on ]; then vip=198.51.100.$((20 + r)):80; else vip=198.51.100.$((30 + r)):80; fi
			mark="$TMP/mark-$mode-$r"
			in_cg "${CG[ferry]}" "$FB" failover --netns "$NS_C" --to "$vip" --seconds 3 --interval-us 1000 \
				--mark "$mark" -j >"$TMP/failover-$mode-$r.json" 2>&1 &
			fpid=$!
			_BENCH_PIDS+=($fpid)
			sleep 1		# steady traffic first: part of the experiment, not a wait for an event
			kill "${SINK[$mode$r-11]}"
			wait "${SINK[$mode$r-11]}" 2>/dev/null
			touch "$mark"
			wait $fpid || bench_die "failover $mode $r: $(cat "$TMP/failover-$mode-$r.json")"
			o=$(cat "$TMP/failover-$mode-$r.json")
			FAILED[$mode]="${FAILED[$mode]:-} $(json .failed "$o")"
			LASTMS[$mode]="${LASTMS[$mode]:-} $(json .last_fail_ms "$o")"
			log "failover $mode run $r: $(json .connects "$o") connects, $(json .failed "$o") failed," \
				"last $(json .last_fail_ms "$o") ms after the kill (run went on $(json .after_kill_ms "$o") ms)"
		done
	done
fi

# ---- cost ----------------------------------------------------------------
# One load generator measures both paths in 0.1 s turns, round robin: load
# from other work on the machine hits both alike. The rate rounds run
# without BPF_ENABLE_STATS (its clock reads would cost the path with more
# program runs more); one more round with it gives the per-program times.
if want cost; then
	declare -A RATE RROUND
	COST_ROUNDS=$((2 * REPS + 1))
	paths=(--path "with=$NS_C,${CG[ferry]},$COST_VIP" --path "without=$NS_C,${CG[nocircuit]},$COST_VIP")
	for ((r = 0; r < COST_ROUNDS; r++)); do
		out=$("$FB" connect -j "${paths[@]}" --seconds "$SECS" --slice 0.1 --warmup 0.1) ||
			bench_die "cost round $r: $out"
		for cfg in with without; do
			RROUND[$cfg,$r]=$(json .rate "$(grep -F "\"path\": \"$cfg\"," <<<"$out")")
			RATE[$cfg]="${RATE[$cfg]:-} ${RROUND[$cfg,$r]}"
		done
		log "cost round $r: with ${RROUND[with,$r]}/s, without ${RROUND[without,$r]}/s"
	done
	ratios=()
	for ((r = 0; r < COST_ROUNDS; r++)); do
		ratios+=("$(awk -v a="${RROUND[with,$r]}" -v b="${RROUND[without,$r]}" 'BEGIN { print b / a }')")
	done
	COST_RATIO=$(median "${ratios[@]}")
	COST_RATIOS=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ printf "%s%+.1f%%", (NR > 1 ? " " : ""), ($1 - 1) * 100 }')
	declare -A PNS PROGS
	out=$("$FB" connect -j --path "with=$NS_C,${CG[ferry]},$COST_VIP,${PIN[ferry]}" \
		--path "without=$NS_C,${CG[nocircuit]},$COST_VIP,${PIN[nocircuit]}" \
		--seconds "$SECS" --slice 0.1 --warmup 0.1) || bench_die "cost stats round: $out"
	for cfg in with without; do
		o=$(grep -F "\"path\": \"$cfg\"," <<<"$out")
		PNS[$cfg]=$(json .prog_ns "$o")
		PROGS[$cfg]=$(json '.progs | to_entries | map(select(.value > 0) | "\(.key) \(.value | floor)") | join(", ")' "$o")
		log "cost $cfg: ferry programs ${PNS[$cfg]} ns/connect (${PROGS[$cfg]})"
	done
fi

# ---- least_conn ----------------------------------------------------------
if want least_conn; then
	declare -A LCNS LCRATE
	i=0
	for n in "${LC_SIZES[@]}"; do
		vip=198.51.100.$((40 + i)):80
		for cfg in ferry p2c; do
			o=$(in_cg "${CG[$cfg]}" "$FB" connect --netns "$NS_C" --to "$vip" --seconds 1 -j \
				--prog-stats "${PIN[$cfg]}") || bench_die "least_conn $cfg $n: $o"
			LCNS[$cfg,$n]=$(json '.progs.ferry_connect4' "$o")
			LCRATE[$cfg,$n]=$(json .rate "$o")
			log "least_conn $n backends, $cfg: connect4 ${LCNS[$cfg,$n]} ns, $(json .rate "$o") connects/s"
		done
		i=$((i + 1))
	done
	declare -A SPREAD
	spread() {	# cfg vip count -> "max-min"
		local cfg=$1 vip=$2 cnt=$3 h=$TMP/hold-$1-$3
		mkfifo "$h.in"
		in_cg "${CG[$cfg]}" "$FB" hold --netns "$NS_C" --to "$vip" --count "$cnt" <"$h.in" >"$h.out" 2>&1 &
		hp=$!
		_BENCH_PIDS+=($hp)
		exec 9>"$h.in"
		wait_for 1200 test -s "$h.out" || bench_die "hold $cfg: $(cat "$h.out")"
		"$CTL" --bpffs "${PIN[$cfg]}" -j circuit "$vip" |
			jq -r '[.backends[].active] | "\(max - min) (\(min)..\(max))"' >"$h.res"
		exec 9>&-
		wait $hp
		cat "$h.res"
	}
	SPREAD[ferry,64]=$(spread ferry 198.51.100.43:80 1024)
	SPREAD[p2c,64]=$(spread p2c 198.51.100.43:80 1024)
	SPREAD[ferry,512]=$(spread ferry 198.51.100.44:80 4096)
	SPREAD[p2c,512]=$(spread p2c 198.51.100.44:80 4096)
	log "spread: ${SPREAD[*]}"
fi

# ---- health: 10,000 backends under probes ---------------------------------
if want health; then
	sink hc 0.0.0.0 30000 3334
	{
		echo '{ "services": ['
		for h in 11 12 13; do
			[ $h = 11 ] || echo ','
			printf '{ "name": "hc-%d", "vip": "198.51.100.%d", "port": 80,\n' $h $((50 + h))
			printf '  "health": { "type": "tcp", "interval_ms": 5000, "timeout_ms": 1000, "healthy_after": 2 },\n'
			printf '  "backends": [%s] }' "$(backends 192.0.2.$h 30000 3334)"
		done
		echo ' ] }'
	} >"$TMP/health.json"
	bench_cgroup health; CG[health]=$REPLY
	bench_pin health; PIN[health]=$REPLY
	t0=$(date +%s%3N)
	# ferryd probes from the client netns (nsenter keeps the host's bpffs and cgroupfs).
	nsenter --net="/run/netns/$NS_C" "$FERRYD" --registry "$TMP/health.json" --bpffs "${PIN[health]}" \
		--cgroup "${CG[health]}" --resync 0 --metrics-addr off "${SOCKMAP_OFF[@]}" \
		--max-backends 16384 >"$TMP/health.log" 2>&1 &
	HPID=$!
	_BENCH_PIDS+=($HPID)
	synced() { "$CTL" --bpffs "${PIN[health]}" -j status 2>/dev/null | jq -e '.last_ok' >/dev/null; }
	wait_for 1200 synced || bench_die "health ferryd did not sync: $(tail -5 "$TMP/health.log")"
	t1=$(date +%s%3N)
	healthy() {
		[ "$("$CTL" --bpffs "${PIN[health]}" -j circuit 2>/dev/null |
			jq '[.[].backends[] | select(.health == "healthy")] | length')" = "$HEALTH_N" ] && return 0
		sleep 0.5
		return 1
	}
	wait_for 120 healthy || bench_die "not every backend became healthy: $(tail -5 "$TMP/health.log")"
	t2=$(date +%s%3N)
	HEALTH_ALL_MS=$((t2 - t1))
	cpu() { awk '{ print $14 + $15 }' "/proc/$HPID/stat"; }
	c0=$(cpu); w0=$(date +%s%3N)
	sleep 10		# steady probing: the measured window
	c1=$(cpu); w1=$(date +%s%3N)
	HEALTH_CPU=$(awk -v c="$((c1 - c0))" -v w="$((w1 - w0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", c / hz * 1000 / w * 100 }')
	n0=$("$CTL" --bpffs "${PIN[health]}" -j status | jq .syncs)
	kill -HUP $HPID
	resynced() { [ "$("$CTL" --bpffs "${PIN[health]}" -j status | jq .syncs)" -gt "$n0" ]; }
	wait_for 400 resynced || bench_die "no sync after SIGHUP"
	HEALTH_SYNC_MS=$("$CTL" --bpffs "${PIN[health]}" -j status | jq '.last_sync_duration_ms | floor')
	log "health: all $HEALTH_N healthy ${HEALTH_ALL_MS} ms after the first sync; ferryd ${HEALTH_CPU}% CPU; sync ${HEALTH_SYNC_MS} ms"
fi

# ---- report ----------------------------------------------------------------
{
	echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)"
	want failover && {
	echo
	echo "Failover: one connect()+close() per ms to a round-robin VIP of three backends; one is"
	echo "killed 1 s in (its port then answers RST), the stream runs 2 s more. Median of $REPS kills."
	echo
	echo "| breaker | failed connects | last failed connect after the kill |"
	echo "| --- | ---: | ---: |"
	printf '| on (5 failures in a row) | %s | %s ms |\n' "$(median ${FAILED[on]})" "$(median ${LASTMS[on]})"
	printf '| off (consecutive_failures 0) | %s | %s ms (until the run ended) |\n' "$(median ${FAILED[off]})" "$(median ${LASTMS[off]})"
	}
	want cost && {
	echo
	echo "Cost: connect()+close() through a 1-backend VIP; one load generator alternates between the"
	echo "two cgroups in 0.1 s turns; $COST_ROUNDS rounds of $SECS s per path. Slowdown: median over rounds"
	echo "of rate without / rate with the sockops + breaker path, minus 1 (all rounds: $COST_RATIOS)."
	echo "Program times: one more round with BPF_ENABLE_STATS (which itself adds ~30-50 ns per run)."
	echo
	echo "| path | connects/s (median) | ferry programs per connect | programs (ns) |"
	echo "| --- | ---: | ---: | --- |"
	printf '| socket LB alone (--no-circuit) | %.0f | %.0f ns | %s |\n' "$(median ${RATE[without]})" \
		"${PNS[without]}" "${PROGS[without]}"
	printf '| socket LB + sockops + breaker | %.0f | %.0f ns | %s |\n' "$(median ${RATE[with]})" \
		"${PNS[with]}" "${PROGS[with]}"
	awk -v q="$COST_RATIO" -v a="${PNS[with]}" -v b="${PNS[without]}" -v r="$(median ${RATE[without]})" 'BEGIN {
		printf "\nSlowdown per connect with the tracking path: %+.1f%%; its programs run %.0f ns more\n", (q - 1) * 100, a - b
		printf "(%.1f%% of a %.1f us connect+close).\n", (a - b) / (1e9 / r) * 100, 1e6 / r }'
	}
	want least_conn && {
	echo
	echo "least_conn: connect4's run time per connect (BPF_ENABLE_STATS) and connects/s, full scan vs"
	echo "power of two choices; spread = max - min active connections per backend after opening"
	echo "N long-lived connections one after the other."
	echo
	echo "| backends | full scan: connect4 ns | connects/s | p2c: connect4 ns | connects/s |"
	echo "| ---: | ---: | ---: | ---: | ---: |"
	for n in "${LC_SIZES[@]}"; do
		printf '| %s | %.0f | %.0f | %.0f | %.0f |\n' "$n" "${LCNS[ferry,$n]}" "${LCRATE[ferry,$n]}" \
			"${LCNS[p2c,$n]}" "${LCRATE[p2c,$n]}"
	done
	echo
	echo "| service | connections | full scan spread | p2c spread |"
	echo "| ---: | ---: | ---: | ---: |"
	echo "| 64 backends | 1024 | ${SPREAD[ferry,64]} | ${SPREAD[p2c,64]} |"
	echo "| 512 backends | 4096 | ${SPREAD[ferry,512]} | ${SPREAD[p2c,512]} |"
	}
	want health && {
	echo
	echo "Health checks: $HEALTH_N backends (3 services), TCP probes every 5 s, healthy_after 2."
	echo
	echo "| every backend HEALTHY after the first sync | ferryd CPU while probing (10 s window) | registry sync while probing |"
	echo "| ---: | ---: | ---: |"
	echo "| ${HEALTH_ALL_MS} ms | ${HEALTH_CPU}% of one CPU | ${HEALTH_SYNC_MS} ms |"
	}
	echo
	echo "Total run: $(($(date +%s) - T_START)) s."
} | tee "$OUT/circuit.md"
