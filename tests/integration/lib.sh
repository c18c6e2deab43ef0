#!/usr/bin/env bash
# Shared by the integration scripts: a throw-away world per script (cgroup,
# netns pair, bpffs pin dir, all with a unique suffix), removed on any exit.
#
#   source "$(dirname "$0")/lib.sh"
#   world_up                 # cgroup $CG, netns $NS_C (client) and $NS_B
#                            # (backends) joined by a veth: client 192.0.2.1,
#                            # 2001:db8::1; backends add their own addresses
#   backend_addr 192.0.2.11  # add an address in $NS_B (v4 or v6)
#   ferryd_start REGFILE [args]   # ferryd in the background, waits for the
#                                 # first sync; $FERRYD_PID, log $TMP/ferryd.log
#                                 # (FERRYD_NETNS=ns: in that netns)
#   state_dir PIN            # the --state-dir of a ferryd on pin dir PIN: under
#                            # $TMP, one per pin dir (never /run/ferry)
#   in_client CMD...         # run CMD in the client netns inside $CG
#   ns_sysctl NS KEY=VAL...  # sysctl -w in netns NS (writes /proc/sys)
#   check NAME CMD...        # PASS/FAIL NAME by CMD's exit status
#   assert_eq NAME ACTUAL EXPECTED
#
# Addresses come from the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
# 2001:db8::/32) and exist only inside our own namespaces.
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B="$ROOT/$BUILD"
case "$BUILD" in /*) B="$BUILD" ;; esac
# FERRY_TEST_TAG (optional, [a-z0-9]) leads every name: runs side by side,
# and anything a killed run left, can be told apart.
TAG=${FERRY_TEST_TAG:+$(tr -c 'a-z0-9\n' '-' <<<"$FERRY_TEST_TAG" | cut -c1-8)-}
SUF="$TAG$(basename "$0" .sh | tr -c 'a-z0-9\n' '-' | cut -c1-12)-$$-$RANDOM"
CG2=$(awk '$3=="cgroup2"{print $2; exit}' /proc/mounts)
CG="$CG2/ferry-test-$SUF"
NS_C="ferry-c-$SUF"
NS_B="ferry-b-$SUF"
PIN="/sys/fs/bpf/ferry-test-$SUF"
TMP=$(mktemp -d "/tmp/ferry-test-$SUF.XXXX")
FERRYD_PID=""
_PIDS=()

skip_all() { echo "SKIP $(basename "$0" .sh): $*"; exit 0; }
# CMD's output only when it fails (its last lines), for check: silently CMD...
silently() { local o; o=$("$@" 2>&1) || { tail -n 5 <<<"$o"; return 1; }; }

need_root() {
	[ "$(id -u)" = 0 ] || skip_all "needs root"
	[ -n "$CG2" ] || skip_all "no cgroup2 mount"
}

kill_tree() {	# pid: its descendants first (bg'd functions run the real
		# program as a child of a subshell), then itself
	local c
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		kill_tree "$c"
	done
	kill "$1" 2>/dev/null
}

# One round of emptying a cgroup of ours: kill what is in it (cgroup.kill,
# whole subtree, where the kernel has it; else each listed pid), then try
# to remove it. Stragglers are killed, never moved: moved elsewhere they
# would run on, hiding the leak.
_cg_reap() {	# cgroup dir
	local p
	if [ -e "$1/cgroup.kill" ]; then
		echo 1 >"$1/cgroup.kill"
	else
		for p in $(cat "$1/cgroup.procs"); do kill -KILL "$p"; done
	fi
	rmdir "$1"
}

cg_remove() {	# cgroup dir of ours: kill what is left in it (and below), remove it
	local d n
	[ -n "$1" ] && [ -d "$1" ] || return 0
	n=$(cat "$1"/cgroup.procs $(find "$1" -mindepth 1 -name cgroup.procs) 2>/dev/null | wc -l)
	[ "$n" -gt 0 ] && echo "note: $n process(es) left in $1: killed" >&2
	for d in $(find "$1" -mindepth 1 -depth -type d) "$1"; do
		# bounded: the kill is asynchronous, the cgroup goes once they exited
		wait_for 200 _cg_reap "$d" || echo "warning: cannot remove cgroup $d" >&2
	done
}

ns_remove() {	# netns of ours: kill what still runs in it, delete it
	local p
	[ -n "$1" ] && [ -e "/run/netns/$1" ] || return 0
	for p in $(ip netns pids "$1" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	ip netns del "$1" 2>/dev/null
}

world_down() {
	local p
	for p in "${_PIDS[@]}" $FERRYD_PID; do
		[ -n "$p" ] && kill_tree "$p"
	done
	for p in "${_PIDS[@]}" $FERRYD_PID; do
		[ -n "$p" ] && wait "$p" 2>/dev/null
	done
	# Links first (detaches from our cgroup), then every pin, then the rest.
	if [ -d "$PIN" ]; then
		"$B/ferryctl" --bpffs "$PIN" teardown >/dev/null 2>&1
		find "$PIN" -mindepth 1 -depth \( -type f -o -type l \) -exec rm -f {} + 2>/dev/null
		find "$PIN" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null
		rmdir "$PIN" 2>/dev/null
	fi
	cg_remove "$CG"
	ns_remove "$NS_C"
	ns_remove "$NS_B"
	rm -rf "$TMP"
}
trap world_down EXIT
trap 'exit 130' INT TERM

world_up() {
	need_root
	mkdir -p "$CG" || skip_all "cannot create cgroup $CG"
	ip netns add "$NS_C" && ip netns add "$NS_B" || skip_all "cannot create netns"
	ip link add fc0 netns "$NS_C" type veth peer name fb0 netns "$NS_B"
	ip -n "$NS_C" link set lo up
	ip -n "$NS_B" link set lo up
	ip -n "$NS_C" addr add 192.0.2.1/24 dev fc0
	ip -n "$NS_C" addr add 2001:db8::1/64 dev fc0 nodad
	ip -n "$NS_C" link set fc0 up
	ip -n "$NS_B" link set fb0 up
}

backend_addr() {	# v4 or v6 address in the backend netns
	case "$1" in
	*:*) ip -n "$NS_B" addr add "$1/64" dev fb0 nodad ;;
	*) ip -n "$NS_B" addr add "$1/24" dev fb0 ;;
	esac
}

# sysctl -w / sysctl -n in a netns of ours, through /proc/sys (no procps
# needed): /proc/sys/net is the writing process's netns. Keys with dots.
ns_sysctl() {	# netns, key=value...: fails on the first that does not take
	local ns=$1 kv; shift
	for kv in "$@"; do
		ip netns exec "$ns" sh -c 'echo "$2" > "$1"' _ "/proc/sys/$(tr . / <<<"${kv%%=*}")" "${kv#*=}" ||
			return 1
	done
}
ns_sysctl_get() {	# netns, key: its value
	ip netns exec "$1" cat "/proc/sys/$(tr . / <<<"$2")"
}

bg() {	# start a background command, remember its pid
	"$@" &
	_PIDS+=($!)
}

in_client() {	# run in the client netns, inside the managed cgroup
	bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec ip netns exec "$@"' _ "$CG" "$NS_C" "$@"
}

in_backend() {
	ip netns exec "$NS_B" "$@"
}

# Wait (bounded) until a command succeeds; polls an observable condition.
wait_for() {	# tries, command...
	local n=$1; shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		n=$((n - 1))
		sleep 0.05
	done
	return 1
}

ferryd_synced() {	# the status map says the last sync succeeded (by $FERRYD_PID if set:
			# a restarted daemon finds its predecessor's status pinned)
	local st
	st=$("$B/ferryctl" --bpffs "$PIN" -j status 2>/dev/null) || return 1
	grep -q '"last_ok": *true' <<<"$st" || return 1
	[ -z "$FERRYD_PID" ] || grep -q "\"daemon_pid\": *$FERRYD_PID," <<<"$st"
}

synced_since() {	# a sync counted after the first $1 (ferryctl status's .syncs) succeeded:
			# counted alone, a sync that failed (a bad registry, the lock busy) would do
	local st
	st=$("$B/ferryctl" --bpffs "$PIN" -j status 2>/dev/null) || return 1
	[ "$(jq -r .syncs <<<"$st")" -gt "$1" ] && [ "$(jq -r .last_ok <<<"$st")" = true ]
}

state_dir() {	# pin dir: its ferryd's --state-dir (a restart on the same pins
		# finds its predecessor's registry copy; nothing shared across runs)
	echo "$TMP/state-$(basename "$1")"
}

ferryd_start() {	# registry, extra args; in netns $FERRYD_NETNS if set (by nsenter:
			# ip netns exec remounts /sys, hiding bpffs and cgroup2)
	local reg=$1; shift
	${FERRYD_NETNS:+nsenter --net=/run/netns/$FERRYD_NETNS} "$B/ferryd" --registry "$reg" --bpffs "$PIN" --state-dir "$(state_dir "$PIN")" --cgroup "$CG" --metrics-addr off "$@" >"$TMP/ferryd.log" 2>&1 &
	FERRYD_PID=$!
	wait_for 200 ferryd_synced || { echo "ferryd did not sync:"; cat "$TMP/ferryd.log"; return 1; }
}

# The HOST:PORT a ferryd started with --metrics-addr HOST:0 logged for its
# listener, once it listens; fails when the daemon exits first.
metrics_hostport() {	# log, pid
	local log=$1 pid=$2 n=1200 hp
	while [ "$n" -gt 0 ]; do
		hp=$(sed -n 's|.*metrics on http://\([^/]*\)/metrics.*|\1|p' "$log" | head -n 1)
		[ -n "$hp" ] && { echo "$hp"; return 0; }
		kill -0 "$pid" 2>/dev/null || return 1
		n=$((n - 1))
		sleep 0.05
	done
	return 1
}

ferryd_stop() {
	[ -n "$FERRYD_PID" ] || return 0
	kill "$FERRYD_PID" 2>/dev/null
	wait "$FERRYD_PID" 2>/dev/null
	FERRYD_PID=""
}

check() {	# name, command...
	local name=$1; shift
	if "$@"; then echo "PASS $name"; else echo "FAIL $name"; fi
}

assert_eq() {	# name, actual, expected
	if [ "$2" = "$3" ]; then
		echo "PASS $1"
	else
		echo "FAIL $1: got '$2', expected '$3'"
	fi
}
