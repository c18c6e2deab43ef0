#!/usr/bin/env bash
# Same-node acceleration (docs/sockmap.md): real sockets in a throw-away
# cgroup, on loopback and across two network namespaces joined by a veth.
# Every case sends a verifiable stream (sockmap-check) and reads the kernel's
# counters: "fast" cases must have redirected bytes, "slow" ones none.
#
# The kernel's sockmap receive path has limits that cannot be fixed from BPF
# (splice from the socket, MSG_WAITALL, FIONREAD after a fallback, EAGAIN
# from blocking reads); those cases are run through the documented policy
# exclusion and must then behave exactly as TCP.
source "$(dirname "$0")/lib.sh"

CHK="$B/tests/sockmap-check"
[ -x "$CHK" ] || skip_all "$CHK not built"
world_up
OUTCG="$CG2/ferry-test-$SUF-out"	# a sibling cgroup: not managed
mkdir -p "$OUTCG" || skip_all "cannot create cgroup $OUTCG"
sm_down() {
	world_down
	cg_remove "$OUTCG"
}
trap sm_down EXIT

backend_addr 192.0.2.11
backend_addr 2001:db8::11
REG="$TMP/registry.json"
cat > "$REG" <<'EOF'
{ "services": [
  { "name": "test/sockmap", "vip": "198.51.100.10", "port": 80, "protocol": "tcp",
    "backends": [ { "ip": "192.0.2.11", "port": 8080 } ] } ] }
EOF

ferryd_once() {	# extra flags: (re)load and attach, then exit; everything stays pinned
	"$B/ferryd" --registry "$REG" --bpffs "$PIN" --state-dir "$(state_dir "$PIN")" --cgroup "$CG" --once \
		--metrics-addr off "$@" >"$TMP/ferryd.log" 2>&1 || { cat "$TMP/ferryd.log"; return 1; }
	grep -q "sockmap: same-node acceleration o" "$TMP/ferryd.log" || { cat "$TMP/ferryd.log"; return 1; }
}

# sockmap-check inside the managed cgroup, client side in NS_C; its own
# setns keeps /sys/fs/bpf (ip netns exec would remount /sys).
smc() {	# name, expectation (fast|slow|any), args...
	local name=$1 expect=$2 out rc; shift 2
	out=$(bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' _ "$CG" \
		"$CHK" --client-netns "$NS_C" --pin "$PIN" --expect "$expect" "$@" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		echo "PASS $name ($(echo "$out" | grep -m1 '^stats' | cut -d' ' -f2-4))"
	else
		echo "FAIL $name: $(echo "$out" | tr '\n' ' ')"
	fi
	LAST_OUT=$out
}
stat_of() { echo "$LAST_OUT" | grep -m1 '^stats' | tr ' ' '\n' | sed -n "s/^$1=//p"; }

ferryd_once || { echo "FAIL sockmap: ferryd did not load"; exit 1; }
check "sockmap: sk_msg link pinned" test -e "$PIN/links/sockmap_msg"
check "sockmap: sockops link pinned" test -e "$PIN/links/sockmap_ops"

GIB=$((1024 * 1024 * 1024))
MIB=$((1024 * 1024))

# --- loopback, both ends in the managed cgroup: the fast path -------------
smc "sockmap: lo4 1 GiB stream, writes of 1 B..1 MiB" fast --bytes $GIB bulk
smc "sockmap: lo4 64 MiB in 4 MiB writes" fast --bytes $((64 * MIB)) large
smc "sockmap: lo4 many small writes" fast --bytes $MIB small
# A reader that keeps up (64 KiB granted at a time): nothing makes the stream
# fall back, every byte goes socket to socket, in order.
smc "sockmap: lo4 64 MiB stream, reader keeping up: all redirected" stream --bytes $((64 * MIB)) window
smc "sockmap: lo4 MSG_MORE and TCP_CORK" fast --bytes $((16 * MIB)) cork
smc "sockmap: lo4 sendfile" fast --bytes $((64 * MIB)) sendfile
smc "sockmap: lo4 splice into the socket" fast --bytes $((16 * MIB)) splice-send
smc "sockmap: lo4 MSG_PEEK" fast --bytes $((4 * MIB)) peek
smc "sockmap: lo4 shutdown(SHUT_WR) half-close" fast --bytes $((16 * MIB)) halfclose
smc "sockmap: lo4 SO_LINGER 0 close (RST)" fast --bytes $((16 * MIB)) rst
smc "sockmap: lo4 write to a closed peer fails" fast peerclose
smc "sockmap: lo4 non-blocking writer with EAGAIN, epoll ET reader" fast --bytes $((64 * MIB)) nonblock
smc "sockmap: lo4 slow reader bounds the writer" any --bytes $((16 * MIB)) slowreader
echo "$LAST_OUT" | grep -m1 '^slowreader'
assert_eq "sockmap: lo4 slow reader pushed back by falling back to TCP" \
	"$( [ "$(stat_of pressure)" -ge 1 ] 2>/dev/null && echo yes)" yes
smc "sockmap: lo4 request/response 1 B..64 KiB" fast --iters 20000 rr
assert_eq "sockmap: lo4 request/response never left the fast path" \
	"$(stat_of busy)/$(stat_of pressure)/$(stat_of miss)" "0/0/0"
smc "sockmap: lo4 10000 concurrent connections" fast --conns 10000 conc
assert_eq "sockmap: lo4 10000 connections all registered" "$(stat_of add)" 20000
# Every closed socket's address left ferry_smsk_v1 (STATE_CB at TCP_CLOSE,
# past the hints' early exit); the test's sockets are all closed by now.
sm_entries() { bpftool -j map dump pinned "$PIN/ferry_smsk_v1" 2>/dev/null | jq length; }
sm_empty() { [ "$(sm_entries)" = 0 ]; }
wait_for 100 sm_empty
assert_eq "sockmap: closed sockets are unregistered" "$(sm_entries)" 0
smc "sockmap: lo6 stream" fast -6 --bytes $((64 * MIB)) bulk
smc "sockmap: lo6 stream, reader keeping up: all redirected" stream -6 --bytes $((64 * MIB)) window
smc "sockmap: lo6 request/response" fast -6 --iters 5000 rr
smc "sockmap: v4-mapped (dual-stack server, IPv4 client)" fast --mapped --bytes $((64 * MIB)) bulk
smc "sockmap: v4-mapped, reader keeping up: all redirected" stream --mapped --bytes $((64 * MIB)) window

# --- two namespaces joined by a veth (pod to pod) ----------------------------
NS=(--server-netns "$NS_B" --server 192.0.2.11 --port 8080)
smc "sockmap: netns 256 MiB stream" fast "${NS[@]}" --bytes $((256 * MIB)) bulk
smc "sockmap: netns stream, reader keeping up: all redirected" stream "${NS[@]}" --bytes $((64 * MIB)) window
smc "sockmap: netns request/response" fast "${NS[@]}" --iters 10000 rr
smc "sockmap: netns half-close" fast "${NS[@]}" --bytes $((16 * MIB)) halfclose
smc "sockmap: netns SO_LINGER 0 close (RST)" fast "${NS[@]}" --bytes $((16 * MIB)) rst
smc "sockmap: netns IPv6 stream" fast -6 --server-netns "$NS_B" --server 2001:db8::11 \
	--port 8080 --bytes $((64 * MIB)) bulk
smc "sockmap: netns through the socket LB (VIP -> local backend)" fast "${NS[@]}" \
	--connect 198.51.100.10 --connect-port 80 --iters 5000 rr

# --- a peer outside the managed cgroup: the normal path ---------------------
smc "sockmap: server outside the cgroup takes TCP" slow --server-cgroup "$OUTCG" \
	--bytes $((64 * MIB)) bulk
assert_eq "sockmap: nothing registered for an unmanaged peer" "$(stat_of add)" 0
smc "sockmap: netns server outside the cgroup takes TCP" slow "${NS[@]}" \
	--server-cgroup "$OUTCG" --iters 2000 rr

# One connection held across an event: 100 round trips, then it goes on
# until released (a line on its stdin), then 100 more on the same
# connection. Released only after the event, so the last 100 cross it
# (few: a teardown leaves the connection its sk_msg program, which goes on
# redirecting into the unpinned maps; after --sockmap off they take TCP).
live_start() {	# tag: $LIVE_PID, $LIVE_OUT; the connection is live when it returns 0
	LIVE_OUT="$TMP/live.$1"
	rm -f "$TMP/ready" "$TMP/live.in"
	mkfifo "$TMP/live.in"
	bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' _ "$CG" "$CHK" \
		--client-netns "$NS_C" --pin "$PIN" --expect fast --iters 100 --loop \
		--ready-file "$TMP/ready" rr <"$TMP/live.in" >"$LIVE_OUT" 2>&1 &
	LIVE_PID=$!
	_PIDS+=("$LIVE_PID")
	exec 8>"$TMP/live.in"	# the client's open of the fifo completes
	wait_for 600 test -e "$TMP/ready"
}
live_end() {	# name: release the client, its verdict
	local rc after
	echo >&8
	exec 8>&-
	wait "$LIVE_PID"
	rc=$?
	after=$(sed -n 's/^rr before=[0-9]* after=\([0-9]*\)$/\1/p' "$LIVE_OUT")
	if [ "$rc" = 0 ] && [ "${after:-0}" -ge 100 ]; then
		echo "PASS $1 ($(grep '^rr ' "$LIVE_OUT"))"
	else
		echo "FAIL $1: exit $rc, $(grep -v '^stats' "$LIVE_OUT" | tr '\n' ' ')"
	fi
}
live_abort() {	# name: the client never got going
	exec 8>&-
	kill_tree "$LIVE_PID"
	wait "$LIVE_PID" 2>/dev/null
	echo "FAIL $1: the connection never got going: $(tr '\n' ' ' <"$LIVE_OUT")"
}
# --- policy: exclusions, and the kernel limits they are for -------------------
ferryd_once --sockmap-exclude-port 5301 --sockmap-exclude-cidr 198.51.100.0/24 \
	--sockmap-exclude-cidr 2001:db8::11/128 || echo "FAIL sockmap: ferryd with exclusions"
smc "sockmap: excluded port takes TCP" slow --port 5301 --bytes $((16 * MIB)) bulk
assert_eq "sockmap: excluded port counted as skipped" "$(stat_of skip)" 2
smc "sockmap: excluded IPv6 address takes TCP" slow -6 --server-netns "$NS_B" \
	--server 2001:db8::11 --port 8080 --bytes $((16 * MIB)) bulk
smc "sockmap: other ports still accelerated" fast --bytes $((16 * MIB)) bulk
smc "sockmap: excluded port: splice() from the socket" slow --port 5301 --bytes $((16 * MIB)) splice-recv
smc "sockmap: excluded port: MSG_WAITALL" slow --port 5301 --bytes $((16 * MIB)) waitall
smc "sockmap: excluded port: FIONREAD" slow --port 5301 --bytes $((16 * MIB)) fionread
smc "sockmap: excluded port: blocking reads never see EAGAIN" slow --strict --port 5301 \
	--bytes $((16 * MIB)) halfclose
# Off with a connection open: it goes on (over TCP), and its registration
# does not outlive it (nothing sees its close once sockops is detached).
if live_start off; then
	ferryd_once --sockmap off || echo "FAIL sockmap: ferryd --sockmap off"
	live_end "sockmap: a connection in flight survives --sockmap off"
else
	live_abort "sockmap: a connection in flight survives --sockmap off"
fi
check "sockmap: --sockmap off detached the earlier run's sockops link" \
	test ! -e "$PIN/links/sockmap_ops" -a ! -e "$PIN/links/sockmap_msg"
assert_eq "sockmap: --sockmap off leaves no socket registered" "$(sm_entries)" 0
smc "sockmap: --sockmap off takes TCP" slow --bytes $((16 * MIB)) bulk
assert_eq "sockmap: --sockmap off registers nothing" "$(stat_of add)" 0

# --- restart and teardown with a connection in flight -----------------------
ferryd_once || echo "FAIL sockmap: ferryd back on"
check "sockmap: on again after off: both links pinned" \
	test -e "$PIN/links/sockmap_ops" -a -e "$PIN/links/sockmap_msg"
smc "sockmap: on again after off accelerates" fast --bytes $((16 * MIB)) bulk
# A load that fails (here: another shape of map pinned under one of its
# names) must not leave the earlier run's programs running with the earlier
# exclusions: off, and said so.
rm -f "$PIN/ferry_smport_v1"
bpftool map create "$PIN/ferry_smport_v1" type hash key 4 value 4 entries 8 name smport
ferryd_once --sockmap-exclude-port 6006 || echo "FAIL sockmap: ferryd with a sockmap that cannot load"
check "sockmap: a failed load says so" grep -q "same-node acceleration unavailable" "$TMP/ferryd.log"
check "sockmap: a failed load leaves no program attached" \
	test ! -e "$PIN/links/sockmap_ops" -a ! -e "$PIN/links/sockmap_msg"
smc "sockmap: a failed load takes TCP" slow --port 6006 --bytes $((4 * MIB)) bulk
rm -f "$PIN/ferry_smport_v1"
ferryd_once || echo "FAIL sockmap: ferryd back on after the failed load"
check "sockmap: on again after a failed load" \
	test -e "$PIN/links/sockmap_ops" -a -e "$PIN/links/sockmap_msg"
if live_start restart; then
	ferryd_once || echo "FAIL sockmap: ferryd restart with a connection in flight"
	live_end "sockmap: a connection in flight survives a ferryd restart"
else
	live_abort "sockmap: a connection in flight survives a ferryd restart"
fi
if live_start teardown; then
	"$B/ferryctl" --bpffs "$PIN" teardown >/dev/null 2>&1
	check "sockmap: teardown removed the sk_msg link" test ! -e "$PIN/links/sockmap_msg"
	live_end "sockmap: a connection in flight survives ferryctl teardown"
else
	live_abort "sockmap: a connection in flight survives ferryctl teardown"
fi

exit 0	# verdicts are the PASS/FAIL lines
