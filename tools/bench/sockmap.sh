#!/usr/bin/env bash
# Same-node acceleration (docs/sockmap.md): plain TCP, ferry's sk_msg
# redirect and AF_UNIX (the floor) side by side, on loopback and pod to pod
# (two netns joined by a veth):
#
#   rr      request/response of 64 B, 1 KiB, 16 KiB each way (TCP_NODELAY):
#           p50 and p99 of FERRY_BENCH_SM_ITERS (20000) round trips
#   stream  FERRY_BENCH_SM_BYTES (512 MiB) in writes of 4 KiB, 64 KiB, 1 MiB
#           to a reader doing 256 KiB reads: MB/s at the reader
#
#   tcp          plain TCP from a cgroup ferry is not attached to
#   ferry        ferryd defaults (sockmap on) in the managed cgroup
#   ferry-excl   ferryd with the server port excluded (--sockmap-exclude-port),
#                the policy docs/sockmap.md gives for bulk transfers
#   unix         an AF_UNIX stream socketpair
#
# Every measurement is repeated FERRY_BENCH_REPS (3) times in rotating order
# (drift on a shared 2-CPU machine hits every path alike) and reported as the
# median. Cgroups, netns and pins carry the suffix sm<pid> and are removed on
# any exit.
set -u
source "$(dirname "$0")/lib.sh"

REPS=${FERRY_BENCH_REPS:-3}
ITERS=${FERRY_BENCH_SM_ITERS:-20000}
BYTES=${FERRY_BENCH_SM_BYTES:-536870912}
CHK="$B/tests/sockmap-check"
FERRYD="$B/ferryd"
PORT=5201
for x in "$CHK" "$FERRYD" "$B/ferryctl"; do
	[ -x "$x" ] || bench_die "$x is not built (make bench builds it; or make BUILD=$BUILD all $CHK)"
done
bench_init sm
log() { echo "sockmap: $*" >&2; }

# ---- world ---------------------------------------------------------------
bench_cgroup plain; PCG=$REPLY
bench_cgroup ferry; FCG=$REPLY
bench_cgroup excl; XCG=$REPLY
bench_netns c; NSC=$REPLY
bench_netns b; NSB=$REPLY
bench_veth "$NSC" smc0 "$NSB" smb0
ip -n "$NSC" addr add 192.0.2.1/24 dev smc0
ip -n "$NSB" addr add 192.0.2.2/24 dev smb0
bench_pin ferry; FPIN=$REPLY
bench_pin excl; XPIN=$REPLY
echo '{ "services": [] }' > "$TMP/registry.json"
"$FERRYD" --registry "$TMP/registry.json" --bpffs "$FPIN" --cgroup "$FCG" --once \
	--metrics-addr off >"$TMP/ferryd.log" 2>&1 || { cat "$TMP/ferryd.log"; bench_die "ferryd"; }
"$FERRYD" --registry "$TMP/registry.json" --bpffs "$XPIN" --cgroup "$XCG" --once \
	--metrics-addr off --sockmap-exclude-port $PORT >"$TMP/ferryd-x.log" 2>&1 ||
	{ cat "$TMP/ferryd-x.log"; bench_die "ferryd (exclusion)"; }

# ---- one measurement -------------------------------------------------------
run() {	# mode place args... -> REPLY: the helper's result line
	local mode=$1 place=$2 cg pin=() where=(); shift 2
	case $mode in
	tcp) cg=$PCG ;;
	ferry) cg=$FCG; pin=(--pin "$FPIN") ;;
	ferry-excl) cg=$XCG; pin=(--pin "$XPIN") ;;
	unix) cg=$PCG; where=(--unix) ;;
	esac
	if [ "$mode" != unix ]; then
		where=(--client-netns "$NSC" --port $PORT)
		[ "$place" = netns ] && where+=(--server-netns "$NSB" --server 192.0.2.2)
	fi
	REPLY=$(in_cg "$cg" "$CHK" "${pin[@]}" "${where[@]}" "$@" 2>&1 | grep -m1 -E '^(rr|stream) ')
	[ -n "$REPLY" ] || log "no result: $mode $place $*"
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

declare -A R
rr_modes=(tcp ferry unix)
st_modes=(tcp ferry ferry-excl unix)
for rep in $(seq 1 "$REPS"); do
	log "round $rep of $REPS"
	for place in lo netns; do
		# rotate the order each round
		modes=("${rr_modes[@]:$((rep % 3))}" "${rr_modes[@]:0:$((rep % 3))}")
		for sz in 64 1024 16384; do
			for m in "${modes[@]}"; do
				run "$m" "$place" --size $sz --iters "$ITERS" perf-rr
				R[rr,$place,$m,$sz,p50]+=" $(field "$REPLY" p50_us)"
				R[rr,$place,$m,$sz,p99]+=" $(field "$REPLY" p99_us)"
			done
		done
		modes=("${st_modes[@]:$((rep % 4))}" "${st_modes[@]:0:$((rep % 4))}")
		for sz in 4096 65536 1048576; do
			for m in "${modes[@]}"; do
				run "$m" "$place" --size $sz --bytes "$BYTES" perf-stream
				R[st,$place,$m,$sz]+=" $(field "$REPLY" MBps)"
				R[stred,$place,$m,$sz]+=" $(field "$REPLY" redirect_bytes)"
			done
		done
	done
done

med() { median ${R[$1]}; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo
echo "### Same-node acceleration: request/response latency (us, median of $REPS runs of $ITERS)"
echo
echo "| path | size | tcp p50 / p99 | ferry p50 / p99 | unix p50 / p99 | ferry/tcp p50 | ferry/unix p50 |"
echo "|---|---|---|---|---|---|---|"
for place in lo netns; do
	for sz in 64 1024 16384; do
		t50=$(med "rr,$place,tcp,$sz,p50"); t99=$(med "rr,$place,tcp,$sz,p99")
		f50=$(med "rr,$place,ferry,$sz,p50"); f99=$(med "rr,$place,ferry,$sz,p99")
		u50=$(med "rr,$place,unix,$sz,p50"); u99=$(med "rr,$place,unix,$sz,p99")
		echo "| $place | $sz B | $t50 / $t99 | $f50 / $f99 | $u50 / $u99 | $(ratio "$f50" "$t50") | $(ratio "$f50" "$u50") |"
	done
done
echo
echo "### Same-node acceleration: bulk throughput (MB/s at the reader, median of $REPS runs of $((BYTES / 1048576)) MiB)"
echo
echo "| path | write | tcp | ferry (redirected) | ferry-excl | unix | ferry/tcp | ferry-excl/tcp |"
echo "|---|---|---|---|---|---|---|---|"
for place in lo netns; do
	for sz in 4096 65536 1048576; do
		t=$(med "st,$place,tcp,$sz"); f=$(med "st,$place,ferry,$sz")
		x=$(med "st,$place,ferry-excl,$sz"); u=$(med "st,$place,unix,$sz")
		red=$(med "stred,$place,ferry,$sz")
		pct=$(awk -v r="$red" -v b="$BYTES" 'BEGIN { printf "%.0f%%", 100 * r / b }')
		echo "| $place | $((sz / 1024)) KiB | $t | $f ($pct) | $x | $u | $(ratio "$f" "$t") | $(ratio "$x" "$t") |"
	done
done
