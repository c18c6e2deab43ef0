#!/usr/bin/env bash
# Shared by the benchmark scripts in tools/bench/: a throw-away world per
# script, every object named with a unique suffix and removed on any exit
# (trap), success or failure.
#
#   source "$(dirname "$0")/lib.sh"
#   bench_init bn                 # suffix "bn<pid>"; parent cgroup $BCG
#   bench_cgroup f1; cg=$REPLY    # child cgroup $BCG/f1 (never the root)
#   bench_netns c; ns=$REPLY      # netns ferry-<suffix>-c, removed on exit
#   bench_veth NS_A IF_A NS_B IF_B   # veth created straight inside two of ours
#   bench_pin f1; pin=$REPLY      # bpffs dir /sys/fs/bpf/ferry-test-<suffix>/f1
# (results come back in $REPLY, not on stdout: the bookkeeping for cleanup
# must happen in this shell, not in a $(...) subshell)
#   bench_bg CMD...               # background process, pid kept and killed on exit
#   in_ns_cg NS CG CMD...         # run CMD in netns NS inside cgroup CG
#   in_cg CG CMD...               # run CMD inside cgroup CG (CMD joins a netns
#                                 # itself; ip netns exec hides /sys/fs/bpf)
#   wait_for TRIES CMD...         # poll a condition, bounded
#   median a b c                  # median of numbers
#
# Safety: cgroups are only ever created below $CG2/ferry-test-<suffix>, every
# interface is created inside a netns this script made, and bench_assert_*
# refuse anything else before it is touched.
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B="$ROOT/$BUILD"
case "$BUILD" in /*) B="$BUILD" ;; esac
_BENCH_PIDS=()
_BENCH_NETNS=()
_BENCH_CGROUPS=()
_BENCH_PINS=()
TMP=""

bench_skip() { echo "SKIP bench: $*"; exit 0; }
bench_die() { echo "bench: error: $*" >&2; exit 1; }

bench_init() {	# prefix
	SUF="$1$$"
	[ "$(id -u)" = 0 ] || bench_skip "needs root"
	CG2=$(awk '$3=="cgroup2"{print $2; exit}' /proc/mounts)
	[ -n "$CG2" ] || bench_skip "no cgroup2 mount"
	BCG="$CG2/ferry-test-$SUF"
	PINROOT="/sys/fs/bpf/ferry-test-$SUF"
	TMP=$(mktemp -d "/tmp/ferry-bench-$SUF.XXXX")
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	bench_assert_cgroup "$BCG"
	mkdir "$BCG" || bench_die "cannot create cgroup $BCG"
	_BENCH_CGROUPS+=("$BCG")
}

# A cgroup we may create, attach to or remove: strictly below our own parent.
bench_assert_cgroup() {
	local p=$1
	case "$p" in
	"$CG2"|"$CG2/"|"") bench_die "refusing the root cgroup '$p'" ;;
	"$CG2/ferry-test-$SUF"|"$CG2/ferry-test-$SUF"/*) ;;
	*) bench_die "refusing cgroup '$p': not below $CG2/ferry-test-$SUF" ;;
	esac
	case "$p" in *..*) bench_die "refusing cgroup '$p': contains '..'" ;; esac
}

bench_assert_netns() {	# a netns we created
	local n
	for n in "${_BENCH_NETNS[@]}"; do [ "$n" = "$1" ] && return 0; done
	bench_die "refusing netns '$1': not created by this run"
}

bench_cgroup() {	# name -> REPLY: the path
	local p="$BCG/$1"
	bench_assert_cgroup "$p"
	mkdir "$p" || bench_die "cannot create cgroup $p"
	_BENCH_CGROUPS+=("$p")
	REPLY=$p
}

bench_netns() {	# name -> REPLY: the netns name
	local n="ferry-$SUF-$1"
	ip netns add "$n" || bench_die "cannot create netns $n"
	_BENCH_NETNS+=("$n")
	ip -n "$n" link set lo up
	REPLY=$n
}

bench_veth() {	# ns_a if_a ns_b if_b: both ends born inside our namespaces
	bench_assert_netns "$1"
	bench_assert_netns "$3"
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3" ||
		bench_die "cannot create veth $2/$4"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

bench_pin() {	# name -> REPLY: the bpffs dir (ferryd creates it)
	local p="$PINROOT/$1"
	_BENCH_PINS+=("$p")
	REPLY=$p
}

bench_bg() {	# command...; sets BG_PID
	"$@" &
	BG_PID=$!
	_BENCH_PIDS+=("$BG_PID")
}

in_ns_cg() {	# netns cgroup command...
	bench_assert_netns "$1"
	bench_assert_cgroup "$2"
	bash -c 'echo $$ > "$1/cgroup.procs" && ns=$2 && shift 2 && exec ip netns exec "$ns" "$@"' \
		_ "$2" "$1" "${@:3}"
}

in_cg() {	# cgroup command...: for a command that enters its netns itself
	bench_assert_cgroup "$1"
	bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' _ "$@"
}

in_ns() {	# netns command...
	bench_assert_netns "$1"
	ip netns exec "$@"
}

wait_for() {	# tries command...: poll an observable condition, bounded
	local n=$1; shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		n=$((n - 1))
		sleep 0.05
	done
	return 1
}

median() {	# numbers...
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

_cgroup_empty() { [ ! -s "$1/cgroup.procs" ]; }

_bench_dbg() { [ -n "${FERRY_BENCH_DEBUG:-}" ] && echo "bench: $(date +%T.%N | cut -c1-12) $*" >&2; return 0; }

bench_cleanup() {
	local p i
	_bench_dbg "cleanup: processes"
	for p in "${_BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${_BENCH_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	# Links first (detaches programs from our cgroups), then every pin.
	_bench_dbg "cleanup: pins"
	for p in "${_BENCH_PINS[@]}"; do
		[ -d "$p" ] || continue
		"$B/ferryctl" --bpffs "$p" teardown >/dev/null 2>&1 ||
			find "$p/links" -mindepth 1 -exec rm -f {} + 2>/dev/null
		find "$p" -mindepth 1 -depth \( -type f -o -type l \) -exec rm -f {} + 2>/dev/null
		find "$p" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	[ -d "$PINROOT" ] && rmdir "$PINROOT" 2>/dev/null
	_bench_dbg "cleanup: cgroups"
	# Deepest cgroup first. Only our own load generators ever ran in them:
	# a straggler is killed through the cgroup itself (cgroup.kill), so
	# nothing is written to any cgroup outside ours.
	for ((i = ${#_BENCH_CGROUPS[@]} - 1; i >= 0; i--)); do
		p=${_BENCH_CGROUPS[i]}
		[ -d "$p" ] || continue
		if [ -s "$p/cgroup.procs" ]; then
			echo 1 > "$p/cgroup.kill" 2>/dev/null
			wait_for 100 _cgroup_empty "$p"
		fi
		rmdir "$p" 2>/dev/null || echo "bench: warning: could not remove cgroup $p" >&2
	done
	# Deleting a netns removes its veths and its iptables rules with it.
	_bench_dbg "cleanup: netns"
	for p in "${_BENCH_NETNS[@]}"; do ip netns del "$p" 2>/dev/null; done
	[ -n "$TMP" ] && rm -rf "$TMP"
	_bench_dbg "cleanup: done"
}
