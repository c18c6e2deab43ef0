#!/usr/bin/env bash
# Socket load balancing: connect()+close() per second from a client netns to
# an accept-and-close sink in a backend netns, joined by veths:
#
#   direct      straight to the backend 192.0.2.2:8080, no ferry, no iptables
#   ferry-miss  straight to the backend from a cgroup where ferry is attached
#               (the cost ferry's programs add to traffic that is not a VIP)
#   ferry-N     through the VIP 198.51.100.10:80 with N services in the maps
#               (the measured one + N-1 fillers of one backend each), ferryd
#               with its defaults (sockmap acceleration on)
#   ferry-lean-N  the same with ferryd --no-circuit --sockmap off: the socket
#               LB without connection tracking and same-node acceleration
#   ipt-N       through kube-proxy style iptables DNAT rules for N services
#               in the nat OUTPUT of the client netns, measured VIP last
#   lb-P        through a VIP of 3 backends balanced by policy P (one
#               service per policy, all in one ferryd with its defaults;
#               FERRY_BENCH_LB picks the policies, default all five, "" none)
#   lb-P-out    the same with one of the 3 backends UNHEALTHY, for the
#               policies that draw again when they meet it (round_robin,
#               random, weighted, maglev; least_conn compares all 3 either
#               way); under maglev the one out is this client's own
#               backend, so every connect of it draws again
#
# On ferry paths the run time of each ferry program per connect is read
# from the kernel (BPF_ENABLE_STATS) as well: rates on a 2-CPU machine shared
# with other work move by 10% between runs, the programs' own cost less so.
#
# then the registry sync times of ferryd for 10,000 services x 10 backends:
# fresh maps, again with no change, and with one backend's weight edited.
#
# Every path is measured FERRY_BENCH_SECONDS (2) per round after a 0.3 s
# warmup, all paths in one process taking FERRY_BENCH_SLICE (0.05) second
# turns (drift hits every path alike); FERRY_BENCH_REPS (3) rounds, medians;
# the programs' run time in as many 1 s rounds of their own, medians. Each
# client netns, cgroup and ferry pin dir has the suffix bn<pid> and is
# removed on any exit.
#
# Client netns: c (direct, ferry; one child cgroup per ferry config, each
# with its own ferryd pin dir, so all configs stay loaded side by side), i1
# and i10k (iptables; their own netns, so conntrack and nat hooks registered
# there never touch the direct and ferry measurements).
set -u
source "$(dirname "$0")/lib.sh"

SECS=${FERRY_BENCH_SECONDS:-2}
REPS=${FERRY_BENCH_REPS:-3}
IPT_RESTORE=${FERRY_BENCH_IPTABLES_RESTORE:-iptables-restore}
IPT=${IPT_RESTORE%-restore}
VIP=198.51.100.10:80
BE_IP=192.0.2.2
BE=$BE_IP:8080
# The policies' services: 3 backends each, the first of them BE; all three
# served by the one sink, so every path's connects end in the same process.
LB_BES=("$BE" "$BE_IP:8081" "$BE_IP:8082")
LBS=(${FERRY_BENCH_LB-round_robin random weighted least_conn maglev})
MAXS=131072
MAXB=262144
FB="$B/ferry-bench"
FERRYD="$B/ferryd"
SYNC_SVCS=10000
SYNC_BPER=10

for x in "$FB" "$FERRYD" "$B/ferryctl"; do
	[ -x "$x" ] || bench_die "$x is not built (make BUILD=$BUILD all)"
done
command -v "$IPT_RESTORE" >/dev/null || bench_skip "no $IPT_RESTORE"
command -v jq >/dev/null || bench_skip "no jq"
# The policies that draw again past an unusable backend get a "one out"
# service too; least_conn compares every backend of a service this small,
# one out or not: it has no draw to repeat.
OUT_LBS=()
for lb in "${LBS[@]}"; do
	case "$lb" in
	round_robin|random|weighted|maglev) OUT_LBS+=("$lb") ;;
	least_conn) ;;
	*) bench_die "FERRY_BENCH_LB: '$lb' is not round_robin, random, weighted, least_conn or maglev" ;;
	esac
done
bench_init bn
OUT="$B/bench"
mkdir -p "$OUT"
T_START=$(date +%s)

log() { echo "socklb: $*" >&2; }
commas() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
now_ms() { date +%s%3N; }

# ---- world ---------------------------------------------------------------
bench_netns b; NS_B=$REPLY
ip -n "$NS_B" addr add "$BE_IP/32" dev lo

# A client netns with its own veth into the backend netns: a /32 each way,
# so any number of clients share one backend address without a bridge.
client_netns() {	# name index -> REPLY
	local ns ip=192.0.2.$((10 + $2))
	bench_netns "$1"; ns=$REPLY
	bench_veth "$ns" c0 "$NS_B" "b$2"
	ip -n "$ns" addr add "$ip/32" dev c0
	ip -n "$ns" route add "$BE_IP/32" dev c0
	ip -n "$NS_B" route add "$ip/32" dev "b$2"
	# netns-local: a wide port range, and reuse of TIME_WAIT ports (the
	# load generator closes with RST, so there should be none anyway).
	in_ns "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1 ||
		bench_die "sysctl in $ns"
	REPLY=$ns
}
client_netns c 1; NS_C=$REPLY
client_netns i1 2; NS_I1=$REPLY
client_netns i10k 3; NS_I10K=$REPLY
# DNAT in OUTPUT happens after the route lookup for the VIP: the iptables
# clients need a route to the VIP ranges, as a node's default route gives.
# The ferry client has none: a VIP ferry failed to translate fails fast.
for ns in "$NS_I1" "$NS_I10K"; do
	ip -n "$ns" route add 198.51.100.0/24 dev c0
	ip -n "$ns" route add 203.0.113.0/24 dev c0
done

# ip netns exec execs the sink: $! is the sink itself, killed by pid.
bench_assert_netns "$NS_B"
# It stops by itself well after the longest run these settings allow: every
# path's timed rounds and program cost rounds, twice over.
NPATHS=$((8 + ${#LBS[@]} + ${#OUT_LBS[@]}))
SINK_TIMEOUT=$(awk -v s="$SECS" -v r="$REPS" -v n="$NPATHS" 'BEGIN { printf "%d", 300 + (s + 1) * r * n * 2 }')
SINK_LISTEN=()
for be in "${LB_BES[@]}"; do SINK_LISTEN+=(--listen "$be"); done
ip netns exec "$NS_B" "$FB" sink "${SINK_LISTEN[@]}" --timeout "$SINK_TIMEOUT" --ready "$TMP/sink.ready" -j \
	>"$TMP/sink.out" &
SINK_PID=$!
_BENCH_PIDS+=("$SINK_PID")
wait_for 200 test -s "$TMP/sink.ready" || bench_die "sink did not start"

bench_cgroup direct; CG_DIRECT=$REPLY

# ---- ferry ---------------------------------------------------------------
declare -A CG PIN SYNC_MS SYNC_WRITES WALL_MS

sync_line() {	# logfile -> "writes ms"
	sed -n 's/.* \([0-9][0-9]*\) map writes in \([0-9.][0-9.]*\) ms.*/\1 \2/p' "$1" | tail -n1
}

ferryd_once() {	# tag registry pin cgroup [ferryd args]: one --once sync, records writes/ms/wall
	local tag=$1 reg=$2 pin=$3 cg=$4 t0 t1 line
	shift 4
	bench_assert_cgroup "$cg"
	t0=$(now_ms)
	"$FERRYD" --registry "$reg" --bpffs "$pin" --cgroup "$cg" --once --resync 0 --metrics-addr off \
		--max-services "$MAXS" --max-backends "$MAXB" "$@" >"$TMP/$tag.out" 2>"$TMP/$tag.log" ||
		{ cat "$TMP/$tag.log" >&2; bench_die "ferryd --once ($tag) failed"; }
	t1=$(now_ms)
	line=$(sync_line "$TMP/$tag.log")
	[ -n "$line" ] || { cat "$TMP/$tag.log" >&2; bench_die "ferryd ($tag) printed no sync line"; }
	SYNC_WRITES[$tag]=${line% *}
	SYNC_MS[$tag]=${line#* }
	WALL_MS[$tag]=$((t1 - t0))
	log "$tag: ${SYNC_WRITES[$tag]} map writes in ${SYNC_MS[$tag]} ms (ferryd --once wall ${WALL_MS[$tag]} ms)"
}

load_registry() {	# name [ferryd args]: $TMP/name.json, in a cgroup and pin dir of its own
	local name=$1
	shift
	bench_cgroup "$name"; CG[$name]=$REPLY
	bench_pin "$name"; PIN[$name]=$REPLY
	ferryd_once "$name" "$TMP/$name.json" "${PIN[$name]}" "${CG[$name]}" "$@"
}

load_ferry() {	# name services [ferryd args]: the measured VIP of one backend, and fillers
	local name=$1 n=$2
	shift 2
	"$FB" genreg --services "$n" --vip "$VIP" --backend "$BE" > "$TMP/$name.json" ||
		bench_die "genreg $n"
	load_registry "$name" "$@"
}

# ferryd as deployed (every default on: connection tracking for circuit
# breaking, same-node sockmap acceleration), and once with the socket load
# balancer alone.
load_ferry ferry-1 1
load_ferry ferry-10k 10000
load_ferry ferry-100k 100000
load_ferry ferry-lean-100k 100000 --no-circuit --sockmap off

# ---- policies ------------------------------------------------------------
# One ferryd as deployed, a service per policy and one per "one out" case,
# each over the same 3 backends (LB_BES): the policies differ in nothing
# else. No fillers: the sweep above shows the service count costs nothing.
declare -A LB_VIP LB_OUT_BE
LB_CFGS=() GEN=()
lb_service() {	# cfg vip policy
	LB_VIP[$1]=$2
	LB_CFGS+=("$1")
	GEN+=(--vip "$2,$3")
}
for i in "${!LBS[@]}"; do lb_service "lb-${LBS[i]}" "198.51.100.$((20 + i)):80" "${LBS[i]}"; done
for i in "${!OUT_LBS[@]}"; do lb_service "lb-${OUT_LBS[i]}-out" "198.51.100.$((40 + i)):80" "${OUT_LBS[i]}"; done

ctl_lb() {	# ferryctl command... on the policies' pin dir, JSON
	"$B/ferryctl" --bpffs "${PIN[ferry-lb]}" -j "$@"
}
# Maglev's backend for this client, as the kernel hashes it (its netns).
client_backend() {	# vip
	ctl_lb explain "$1" --from "$NS_C" | jq -er '.next.backend'
}

# The one out is made UNHEALTHY (as ferryd's health checker would mark it):
# the slots and the maglev table still name it, so the policies meet it and
# draw again. The last backend, except under maglev: there this client's
# own backend, or its connects would never meet the one out.
mark_out() {	# cfg policy
	local be=${LB_BES[2]} after
	if [ "$2" = maglev ]; then
		be=$(client_backend "${LB_VIP[$1]}") || bench_die "$1: no maglev backend for netns $NS_C"
	fi
	"$FB" mark --bpffs "${PIN[ferry-lb]}" --service "${LB_VIP[$1]}" --backend "$be" --health unhealthy ||
		bench_die "$1: marking $be unhealthy failed"
	LB_OUT_BE[$1]=$be
	if [ "$2" = maglev ]; then
		after=$(client_backend "${LB_VIP[$1]}") || bench_die "$1: no maglev backend left"
		[ "$after" != "$be" ] || bench_die "$1: the client still gets $be"
	fi
	log "$1: backend $be UNHEALTHY"
}

if [ ${#LB_CFGS[@]} -gt 0 ]; then
	for be in "${LB_BES[@]}"; do GEN+=(--backend "$be"); done
	"$FB" genreg --services "${#LB_CFGS[@]}" "${GEN[@]}" > "$TMP/ferry-lb.json" ||
		bench_die "genreg policies"
	load_registry ferry-lb
	for lb in "${OUT_LBS[@]}"; do mark_out "lb-$lb-out" "$lb"; done
fi

# ---- iptables ------------------------------------------------------------
IPT_VERSION=$(in_ns "$NS_I1" "$IPT" --version 2>&1)
declare -A IPT_MS IPT_NS
load_ipt() {	# name netns services
	local t0 t1 n
	"$FB" genipt --services "$3" --vip "$VIP" --backend "$BE" > "$TMP/$1.rules" || bench_die "genipt $3"
	t0=$(now_ms)
	in_ns "$2" "$IPT_RESTORE" -w < "$TMP/$1.rules" || bench_die "$IPT_RESTORE ($1) failed"
	t1=$(now_ms)
	n=$(in_ns "$2" "$IPT" -w -t nat -S KUBE-SERVICES | grep -c '^-A KUBE-SERVICES')
	[ "$n" = "$3" ] || bench_die "$1: KUBE-SERVICES has $n rules, expected $3"
	IPT_MS[$1]=$((t1 - t0))
	IPT_NS[$1]=$2
	log "$1: $n services loaded with $IPT_RESTORE in ${IPT_MS[$1]} ms ($IPT_VERSION)"
}
load_ipt ipt-1 "$NS_I1" 1
load_ipt ipt-10k "$NS_I10K" 10000

# ---- connect rate --------------------------------------------------------
CONFIGS=(direct ferry-miss ferry-1 ferry-10k ferry-100k ferry-lean-100k ipt-1 ipt-10k "${LB_CFGS[@]}")
declare -A RATES PROG_NS PROGS
TOTAL_CONNECTS=0

path_spec() {	# cfg [with-prog-stats] -> NAME=NETNS,CGROUP,TARGET[,PIN] for ferry-bench connect --path
	local ns cg to pin=""
	case "$1" in
	direct) ns=$NS_C cg=$CG_DIRECT to=$BE ;;
	ferry-miss) ns=$NS_C cg=${CG[ferry-100k]} to=$BE pin=${PIN[ferry-100k]} ;;
	ferry-*) ns=$NS_C cg=${CG[$1]} to=$VIP pin=${PIN[$1]} ;;
	ipt-*) ns=${IPT_NS[$1]} cg=$CG_DIRECT to=$VIP ;;
	lb-*) ns=$NS_C cg=${CG[ferry-lb]} to=${LB_VIP[$1]} pin=${PIN[ferry-lb]} ;;
	esac
	bench_assert_netns "$ns"
	bench_assert_cgroup "$cg"
	[ -n "${2:-}" ] || pin=""
	echo "$1=$ns,$cg,$to${pin:+,$pin}"
}

json_num() {	# key json
	sed -n "s/.*\"$1\": \([0-9.][0-9.]*\).*/\1/p" <<<"$2"
}

# One load generator measures every path, moving itself between their netns
# and cgroups in SLICE-second turns, round robin: load from other work on the
# shared machine hits all paths alike instead of whichever ran at the time.
SLICE=${FERRY_BENCH_SLICE:-0.05}
PATHS=() COST_PATHS=()
for cfg in "${CONFIGS[@]}"; do
	PATHS+=(--path "$(path_spec "$cfg")")
	case "$cfg" in ferry-*|lb-*) COST_PATHS+=(--path "$(path_spec "$cfg" stats)") ;; esac
done
path_line() {	# cfg output -> the JSON line of that path
	grep -F "\"path\": \"$1\"," <<<"$2"
}
count_total() {	# output: add the connects of every path to TOTAL_CONNECTS
	local line
	while read -r line; do
		TOTAL_CONNECTS=$((TOTAL_CONNECTS + $(json_num total "$line")))
	done <<<"$1"
}

# Every path must work before anything is timed.
out=$("$FB" connect -j "${PATHS[@]}" --count 200 --seconds 5 --warmup 0) ||
	bench_die "connect check failed: $out"
count_total "$out"

# Rounds of SECS seconds per path; a path's ratio is the median over rounds
# of its rate / direct's rate in the same round.
log "measuring ${#CONFIGS[@]} paths x $REPS rounds of ${SECS}s each, in ${SLICE}s turns"
declare -A ROUND
for ((r = 0; r < REPS; r++)); do
	out=$("$FB" connect -j "${PATHS[@]}" --seconds "$SECS" --slice "$SLICE" --warmup 0.1) ||
		bench_die "round $((r + 1)): $out"
	count_total "$out"
	for cfg in "${CONFIGS[@]}"; do
		rate=$(json_num rate "$(path_line "$cfg" "$out")")
		RATES[$cfg]="${RATES[$cfg]:-} $rate"
		ROUND[$cfg,$r]=$rate
		log "round $((r + 1)) $cfg: $rate/s"
	done
done

# The in-kernel cost: rounds of their own on the ferry paths with the run
# time of every ferry program in the cgroup counted (BPF_ENABLE_STATS, on
# only while they run), as many as the timed rounds, medians. Kept out of
# the timed rounds: the accounting reads the clock twice per program run,
# which itself costs ~1 us per connect here. The policies differ by tens
# of ns in connect4: compared round by round, paired, not across rounds.
prog_of() {	# program progs: its ns per connect in a "name: ns, ..." list
	# (summed: names are cut to 15 characters, getpeername4/6 share one)
	tr ',' '\n' <<<"$2" | awk -F': ' -v n="$1" '{ sub(/^ */, "") } $1 == n { t += $2 } END { print t + 0 }'
}
declare -A PROG_R
for ((r = 0; r < REPS; r++)); do
	out=$("$FB" connect -j "${COST_PATHS[@]}" --seconds 1 --slice "$SLICE" --warmup 0.1) ||
		bench_die "program cost round $((r + 1)): $out"
	count_total "$out"
	for cfg in "${CONFIGS[@]}"; do
		line=$(path_line "$cfg" "$out")
		[ -n "$line" ] || continue
		PROG_R[$cfg]="${PROG_R[$cfg]:-} $(json_num prog_ns "$line")"
		PROGS[$cfg,$r]=$(sed -n 's/.*"progs": {\([^}]*\)}.*/\1/p' <<<"$line" | tr -d '"')
		log "cost round $((r + 1)) $cfg: ferry programs $(json_num prog_ns "$line") ns/connect (${PROGS[$cfg,$r]})"
	done
done
for cfg in "${!PROG_R[@]}"; do PROG_NS[$cfg]=$(median ${PROG_R[$cfg]}); done
prog_median() {	# cfg program: median over the cost rounds
	local r v=()
	for ((r = 0; r < REPS; r++)); do v+=("$(prog_of "$2" "${PROGS[$1,$r]}")"); done
	median "${v[@]}"
}

# Cross-checks: the sink saw every connect, ferry's connect4 translated the
# VIP connects, iptables' measured DNAT rule matched, each policy's service
# used the backends it should and never the one out.
kill "$SINK_PID" 2>/dev/null
wait "$SINK_PID" 2>/dev/null
SINK_ACCEPTED=$(json_num accepted "$(cat "$TMP/sink.out" 2>/dev/null)")
CHECKS=""
FERRY_CFGS=(ferry-1 ferry-10k ferry-100k ferry-lean-100k)
[ ${#LB_CFGS[@]} -gt 0 ] && FERRY_CFGS+=(ferry-lb)
for f in "${FERRY_CFGS[@]}"; do
	st=$("$FB" stats --bpffs "${PIN[$f]}") || bench_die "stats $f"
	CHECKS="$CHECKS $f: $(json_num connect_hit "$st") VIP connects translated, $(json_num lookup_fail "$st") lookup failures;"
	[ "$(json_num connect_hit "$st")" -gt 0 ] || bench_die "$f: ferry translated no connect: $st"
done
for f in ipt-1 ipt-10k; do
	n=${f#ipt-}; n=${n/k/000}
	p=$(in_ns "${IPT_NS[$f]}" "$IPT" -w -t nat -L "KUBE-SEP-$(printf %016X $((n - 1)))" -v -x -n |
		awk '/DNAT/ { print $1 }')
	CHECKS="$CHECKS $f: measured DNAT rule matched ${p:-0} times;"
	[ "${p:-0}" -gt 0 ] || bench_die "$f: the measured DNAT rule never matched"
done
# Backends that took connects: all 3 (2 with one out); under maglev the
# client's one alone.
for cfg in "${LB_CFGS[@]}"; do
	st=$(ctl_lb circuit "${LB_VIP[$cfg]}") || bench_die "ferryctl circuit ${LB_VIP[$cfg]}"
	used=$(jq -r '[.. | objects | select(has("opened") and .opened > 0) | .backend] | sort | join(" ")' <<<"$st")
	out=${LB_OUT_BE[$cfg]:-}
	want=3
	[ -n "$out" ] && want=2
	case "$cfg" in lb-maglev*) want=1 ;; esac
	n=$(wc -w <<<"$used")
	[ "$n" = "$want" ] || bench_die "$cfg: connects went to $n backends ($used), expected $want"
	[ -z "$out" ] || ! grep -qwF "$out" <<<"$used" || bench_die "$cfg: the UNHEALTHY $out took connects"
	CHECKS="$CHECKS $cfg: backends used $used${out:+, not $out};"
done

# ---- registry sync -------------------------------------------------------
bench_cgroup sync; CG_SYNC=$REPLY
bench_pin sync; PIN_SYNC=$REPLY
"$FB" genreg --services "$SYNC_SVCS" --backends-per "$SYNC_BPER" > "$TMP/sync.json" || bench_die "genreg sync"
ferryd_once sync-fresh "$TMP/sync.json" "$PIN_SYNC" "$CG_SYNC"
ferryd_once sync-same "$TMP/sync.json" "$PIN_SYNC" "$CG_SYNC"
"$FB" genreg --services "$SYNC_SVCS" --backends-per "$SYNC_BPER" --bump-weight > "$TMP/sync.json.new" &&
	mv "$TMP/sync.json.new" "$TMP/sync.json" || bench_die "genreg sync bump"
ferryd_once sync-one "$TMP/sync.json" "$PIN_SYNC" "$CG_SYNC"

# ---- report --------------------------------------------------------------
D=$(median ${RATES[direct]})
ratio() {	# cfg: median over the rounds of its rate / direct's in the same round
	local r ratios=()
	for ((r = 0; r < REPS; r++)); do
		ratios+=("$(awk -v a="${ROUND[$1,$r]}" -v b="${ROUND[direct,$r]}" 'BEGIN { print a / b }')")
	done
	median "${ratios[@]}"
}
row() {	# cfg label services
	local m lo hi p q
	m=$(median ${RATES[$1]})
	lo=$(printf '%s\n' ${RATES[$1]} | sort -g | head -n1)
	hi=$(printf '%s\n' ${RATES[$1]} | sort -g | tail -n1)
	p=${PROG_NS[$1]:-0}
	q=$(ratio "$1")
	awk -v l="$2" -v s="$3" -v m="$m" -v lo="$lo" -v hi="$hi" -v d="$D" -v p="$p" -v q="$q" 'BEGIN {
		printf "| %s | %s | %.0f | %.0f-%.0f | %.2f | %+.1f%% | %.1f |", l, s, m, lo, hi, q, (q - 1) * 100, 1e6 / m
		if (p > 0)
			printf " %.0f ns (%.1f%%) |\n", p, p / (1e9 / d) * 100
		else
			printf " - |\n" }'
}
# The redraw's price: connect4's run time with one out minus all usable,
# round by round (the two paths ran side by side), the median of that.
out_delta() {	# cfg-out cfg
	local r d=()
	for ((r = 0; r < REPS; r++)); do
		d+=("$(awk -v a="$(prog_of ferry_connect4 "${PROGS[$1,$r]}")" \
			    -v b="$(prog_of ferry_connect4 "${PROGS[$2,$r]}")" 'BEGIN { print a - b }')")
	done
	median "${d[@]}"
}
lb_row() {	# cfg policy usable
	local m p c q d=""
	m=$(median ${RATES[$1]})
	p=${PROG_NS[$1]}
	c=$(prog_median "$1" ferry_connect4)
	q=$(ratio "$1")
	case "$1" in *-out) d=$(out_delta "$1" "${1%-out}") ;; esac
	awk -v l="$2" -v u="$3" -v m="$m" -v q="$q" -v c="$c" -v p="$p" -v d="$D" -v x="$d" 'BEGIN {
		printf "| %s | %s | %.0f | %.2f | %+.1f%% | %.0f ns | %.0f ns (%.1f%%) |", l, u, m, q, (q - 1) * 100, c,
			p, p / (1e9 / d) * 100
		if (x != "")
			printf " %+.0f ns |\n", x
		else
			printf " |\n" }'
}
lb_table() {
	local lb
	echo "| policy, 3 backends | usable | connects/s | ratio to direct | vs direct | connect4 per connect | ferry programs per connect (share of a direct connect) | connect4, one out - all usable |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	for lb in "${LBS[@]}"; do
		lb_row "lb-$lb" "$lb" "3 of 3"
		[ -n "${LB_OUT_BE[lb-$lb-out]:-}" ] || continue
		if [ "$lb" = maglev ]; then
			lb_row "lb-$lb-out" "$lb" "2 of 3 (this client's backend UNHEALTHY)"
		else
			lb_row "lb-$lb-out" "$lb" "2 of 3 (one UNHEALTHY)"
		fi
	done
}
{
	echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), kernel $(uname -r)"
	echo "iptables: $IPT_VERSION (via $IPT_RESTORE)"
	echo "connects/s: median of $REPS rounds of ${SECS} s per path, the paths taking ${SLICE} s turns"
	echo "within a round (range = min-max); ratio: median over the rounds of the path's rate / direct's"
	echo "rate in the same round; ferry programs: the run time of every ferry program in the cgroup per"
	echo "connect (BPF_ENABLE_STATS, median of $REPS separate 1 s rounds) and that as a share of a direct"
	echo "connect."
	echo
	echo "| path | services | connects/s | range | ratio to direct | vs direct | us/connect | ferry programs per connect (share of a direct connect) |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	row direct "direct to backend" "-"
	row ferry-miss "direct, ferry attached (not a VIP)" "100,000"
	row ferry-1 "ferry VIP" "1"
	row ferry-10k "ferry VIP" "10,000"
	row ferry-100k "ferry VIP" "100,000"
	row ferry-lean-100k "ferry VIP, LB alone (--no-circuit --sockmap off)" "100,000"
	row ipt-1 "iptables DNAT (kube-proxy style)" "1"
	row ipt-10k "iptables DNAT (kube-proxy style)" "10,000"
	echo
	if [ ${#LB_CFGS[@]} -gt 0 ]; then
		echo "Policies: one service each (one ferryd, defaults), 3 backends, in the same rounds as the"
		echo "paths above; the last column is the median over the cost rounds of the difference within"
		echo "a round."
		echo
		lb_table
		echo
	fi
	echo "| registry sync (ferryd --once) | map writes | sync time | ferryd wall time |"
	echo "| --- | ---: | ---: | ---: |"
	printf '| 100,000 services x 1 backend, fresh maps | %s | %s ms | %s ms |\n' \
		"${SYNC_WRITES[ferry-100k]}" "${SYNC_MS[ferry-100k]}" "${WALL_MS[ferry-100k]}"
	printf '| %s services x %s backends, fresh maps | %s | %s ms | %s ms |\n' "$(commas "$SYNC_SVCS")" "$SYNC_BPER" \
		"${SYNC_WRITES[sync-fresh]}" "${SYNC_MS[sync-fresh]}" "${WALL_MS[sync-fresh]}"
	printf '| same registry again (no change) | %s | %s ms | %s ms |\n' \
		"${SYNC_WRITES[sync-same]}" "${SYNC_MS[sync-same]}" "${WALL_MS[sync-same]}"
	printf '| one backend weight edited | %s | %s ms | %s ms |\n' \
		"${SYNC_WRITES[sync-one]}" "${SYNC_MS[sync-one]}" "${WALL_MS[sync-one]}"
	printf '| iptables-restore, 10,000 services | - | - | %s ms |\n' "${IPT_MS[ipt-10k]}"
	echo
	echo "Sink accepted ${SINK_ACCEPTED:-?} connections; the load generators made $TOTAL_CONNECTS."
	echo "Checks:$CHECKS"
	echo
	echo "ferry programs that ran, ns per connect (medians over the cost rounds):"
	for cfg in ferry-miss ferry-1 ferry-10k ferry-100k ferry-lean-100k "${LB_CFGS[@]}"; do
		list=()
		for p in $(tr ',' '\n' <<<"${PROGS[$cfg,0]:-}" | sed -n 's/^ *\([^:]*\):.*/\1/p' | awk '!seen[$0]++'); do
			v=$(prog_median "$cfg" "$p")
			case "$v" in 0|0.0) ;; *) list+=("$p: $v") ;; esac
		done
		echo "- $cfg: $(printf '%s\n' "${list[@]}" | paste -sd, | sed 's/,/, /g')"
	done
	echo "Total run: $(($(date +%s) - T_START)) s."
} | tee "$OUT/socklb.md"
