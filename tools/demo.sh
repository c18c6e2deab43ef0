#!/usr/bin/env bash
# make demo: ferry's main job on the embedded default registry, no cluster.
# ferryd runs in a throw-away cgroup; a client in its own netns connects to
# the VIPs of deploy/examples/registry.json and is balanced across backends
# in a second netns. Everything it creates is removed on exit.
#
# It is also a check: it exits non-zero when a client run reports errors
# (or a VIP shown by getpeername() that is not the VIP), when the drained
# backend still gets new connections, or when a metric family it shows is
# missing; the last line says which.
set -u
source "$(dirname "$0")/../tests/integration/lib.sh"
REG="$ROOT/deploy/examples/registry.json"
T="$B/tests/ferry-traffic"
CTL=("$B/ferryctl" --bpffs "$PIN")

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
PROBLEMS=()
problem() { PROBLEMS+=("$*"); }
field() { awk -v k="$2" '$1 == k { print $2 }' <<<"$1"; }	# report, first column
client() {	# VIP:PORT, ferry-traffic connect args...: show the report, keep it in $OUT
	local vip=$1 errs mism; shift
	OUT=$(in_client "$T" connect "$vip" "$@" 2>&1)
	sed 's/^/  /' <<<"$OUT"
	errs=$(field "$OUT" errors) mism=$(field "$OUT" peer_mismatch)
	[ "$errs" = 0 ] && [ "$mism" = 0 ] ||
		problem "client -> $vip: errors ${errs:-none reported}, peer_mismatch ${mism:-none reported}"
}

world_up
for a in 192.0.2.11 192.0.2.12 192.0.2.13 2001:db8::11 2001:db8::12; do backend_addr "$a"; done
eps=()
for a in 192.0.2.11 192.0.2.12 192.0.2.13; do
	for p in 8080 8081 8082; do eps+=("$a:$p"); done
done
eps+=("[2001:db8::11]:8080" "[2001:db8::12]:8080")
in_backend "$T" serve "${eps[@]}" --timeout 120 > "$TMP/serve.out" 2>&1 &
_PIDS+=($!)
in_backend "$T" serve 192.0.2.11:5353 192.0.2.12:5353 --udp --timeout 120 > "$TMP/serve-udp.out" 2>&1 &
_PIDS+=($!)
wait_for 200 grep -q ready "$TMP/serve.out" || { echo "backends did not start"; cat "$TMP/serve.out"; exit 1; }
wait_for 200 grep -q ready "$TMP/serve-udp.out" || { echo "udp backends did not start"; exit 1; }

say "ferryd: loading, pinning in $PIN, attaching to $CG"
ferryd_start "$REG" --metrics-addr 127.0.0.1:0 || exit 1	# port 0: any free one, logged
MHP=$(metrics_hostport "$TMP/ferryd.log" "$FERRYD_PID") || { echo "ferryd logged no metrics address"; exit 1; }
sed 's/^/  /' "$TMP/ferryd.log"

say "ferryctl service list"
"${CTL[@]}" service list

for vip in 198.51.100.10:80 198.51.100.11:80 198.51.100.12:80 "[2001:db8:ffff::10]:80"; do
	say "client -> $vip  ($("${CTL[@]}" -j service show "$vip" | sed -n 's/.*"lb": "\(.*\)".*/\1/p'))"
	client "$vip" -n 60
done
say "client -> 198.51.100.53:53/udp (unconnected UDP, random)"
client 198.51.100.53:53 -n 60 --udp

say "ferryctl explain 198.51.100.12:80 --from $NS_C  (why this client lands where it does)"
"${CTL[@]}" explain 198.51.100.12:80 --from "$NS_C" | sed 's/^/  /'

say "drain 192.0.2.11:8080 with ferryctl; new connections avoid it"
"${CTL[@]}" backend set 198.51.100.10:80 192.0.2.11:8080 --state draining || problem "ferryctl could not drain 192.0.2.11:8080"
client 198.51.100.10:80 -n 60
drained=$(field "$OUT" 192.0.2.11:8080)
[ "${drained:-0}" = 0 ] || problem "the drained backend 192.0.2.11:8080 still got $drained new connections"
"${CTL[@]}" service show 198.51.100.10:80

say "Prometheus metrics (curl $MHP/metrics, a few families)"
FAMILIES=(ferry_service_connections_opened_total ferry_sock_connect_total ferry_registry_syncs_total ferry_daemon_ready)
metrics=$(curl -s "http://$MHP/metrics")
grep -E "^($(IFS='|'; echo "${FAMILIES[*]}"))[{ ]" <<<"$metrics" | head -n 14 | sed 's/^/  /'
for f in "${FAMILIES[@]}"; do
	grep -qE "^$f[{ ]" <<<"$metrics" || problem "metric family $f missing from /metrics"
done

say "ferryctl status"
"${CTL[@]}" status
say "done: tearing down (programs detached, pins, cgroup and netns removed)"
if [ ${#PROBLEMS[@]} -gt 0 ]; then
	printf '  %s\n' "${PROBLEMS[@]}"
	echo "demo: FAILED (${#PROBLEMS[@]} problem(s) above)"
	exit 1
fi
echo "demo: ok (every client run answered without errors, the drained backend got no new connections)"
