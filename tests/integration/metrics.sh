#!/usr/bin/env bash
# The metrics endpoint end to end: /readyz before and after the first sync,
# /metrics passes promtool and counts exactly the connections we make, gzip
# decodes to the same text, a real Prometheus scrapes ferryd and answers a
# query with our count, ferryctl stats agrees without the daemon, and bad
# clients (unknown path, wrong method, huge headers, slowloris, too many
# connections) get their status without stalling the daemon. Last, a second
# ferryd runs the XDP load balancer on the backend side's veth and its
# /metrics counts the packets we send to an XDP VIP.
source "$(dirname "$0")/lib.sh"
need_root
command -v curl >/dev/null || skip_all "curl not installed (make deps)"
command -v promtool >/dev/null || skip_all "promtool not installed (Debian package prometheus; make deps)"
[ -x "$B/tests/ferry-traffic" ] || skip_all "no $B/tests/ferry-traffic (make check builds it)"
world_up

N=7			# connections through the VIP
VIP=198.51.100.80
REG="$TMP/registry.json"
PROM_PID=""

free_port() {	# for Prometheus: a TCP port no socket holds, below the ephemeral range so
		# no outgoing connection takes it meanwhile (a race we accept: the start fails loudly)
	local p i lo
	read -r lo _ < /proc/sys/net/ipv4/ip_local_port_range
	[ "$lo" -gt 11024 ] || return 1
	for i in $(seq 1 50); do
		p=$((lo - 1 - RANDOM % 10000))
		ss -Htan "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
	done
	return 1
}

http_code() {	# url, curl args...: the status code only
	local url=$1; shift
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$url"
}

registry() {	# backends...: the test service with these backends
	local b first=1
	{
		printf '{ "services": [ { "name": "mx/web", "vip": "%s", "port": 80, "lb": "round_robin",\n  "backends": [' "$VIP"
		for b in "$@"; do
			[ $first = 1 ] || printf ','
			first=0
			printf ' { "ip": "%s", "port": 8080 }' "$b"
		done
		printf ' ] } ] }\n'
	} > "$REG.tmp" && mv "$REG.tmp" "$REG"	# atomic: ferryd never reads half a file
}

metric() {	# name{labels} as written by the exporter: its value (empty if absent)
	curl -s --max-time 5 "$MURL/metrics" | awk -v k="$1" '$1 == k { print $2 }'
}

backend_addr 192.0.2.11
backend_addr 192.0.2.12
bg ip netns exec "$NS_B" "$B/tests/ferry-traffic" serve 192.0.2.11:8080 192.0.2.12:8080 --timeout 300 \
	> "$TMP/serve.log" 2>&1
wait_for 100 grep -q ready "$TMP/serve.log" || { echo "FAIL metrics_setup: backends did not start"; exit 1; }

# --- /readyz is 503 until the registry is applied -----------------------
# The registry file does not exist yet: ferryd starts, the sync fails.
"$B/ferryd" --registry "$REG" --bpffs "$PIN" --state-dir "$(state_dir "$PIN")" --cgroup "$CG" --resync 0 \
	--metrics-addr 127.0.0.1:0 --metrics-timeout 1000 >"$TMP/ferryd.log" 2>&1 &
FERRYD_PID=$!
# Port 0: the kernel picks a free port and ferryd logs the one it bound.
if ! MHP=$(metrics_hostport "$TMP/ferryd.log" "$FERRYD_PID"); then
	echo "FAIL metrics_listen: ferryd logged no metrics address"; cat "$TMP/ferryd.log"; exit 1
fi
MPORT=${MHP##*:}
MURL="http://$MHP"
assert_eq metrics_listen "$(http_code "$MURL/healthz")" 200
assert_eq readyz_503_before_sync "$(http_code "$MURL/readyz")" 503
assert_eq metrics_served_before_sync "$(http_code "$MURL/metrics")" 200
assert_eq metrics_last_sync_failed "$(metric ferry_registry_last_sync_success)" 0
registry 192.0.2.11 192.0.2.12
ready() { [ "$(http_code "$MURL/readyz")" = 200 ]; }
check readyz_200_after_sync wait_for 200 ready
assert_eq metrics_last_sync_ok "$(metric ferry_registry_last_sync_success)" 1

# --- format --------------------------------------------------------------
curl -s --max-time 5 "$MURL/metrics" > "$TMP/plain.txt"
if promtool check metrics < "$TMP/plain.txt" > "$TMP/promtool.out" 2>&1; then
	echo "PASS promtool_check_metrics"
else
	echo "FAIL promtool_check_metrics: $(head -5 "$TMP/promtool.out")"
fi
ctype=$(curl -s -o /dev/null -w '%{content_type}' "$MURL/metrics")
assert_eq metrics_content_type "$ctype" "text/plain; version=0.0.4; charset=utf-8"

# --- counters match what we did ------------------------------------------
L='service="mx/web",vip="198.51.100.80:80/tcp"'
assert_eq opened_before "$(metric "ferry_service_connections_opened_total{$L}")" 0
hit0=$(metric 'ferry_sock_connect_total{outcome="hit"}')
in_client "$B/tests/ferry-traffic" connect "$VIP:80" -n "$N" > "$TMP/connect.out" 2>&1
assert_eq connects_succeeded "$(awk '$1 == "errors" { print $2 }' "$TMP/connect.out")" 0
assert_eq service_opened_total "$(metric "ferry_service_connections_opened_total{$L}")" "$N"
hit1=$(metric 'ferry_sock_connect_total{outcome="hit"}')
assert_eq connect_hit_total_delta "$((hit1 - hit0))" "$N"
b1=$(metric "ferry_backend_connections_opened_total{$L,backend=\"192.0.2.11:8080\"}")
b2=$(metric "ferry_backend_connections_opened_total{$L,backend=\"192.0.2.12:8080\"}")
assert_eq backend_opened_total_sum "$((b1 + b2))" "$N"
assert_eq service_backends_gauge "$(metric "ferry_service_backends{$L}")" 2
# The sockops program counts handshakes and closes (circuit tracking).
est_n() { [ "$(metric "ferry_service_connections_established_total{$L}")" = "$N" ]; }
check service_established_total wait_for 100 est_n
idle() { [ "$(metric "ferry_service_connections_active{$L}")" = 0 ]; }
check service_active_back_to_zero wait_for 100 idle

# ferryctl stats reads the same counters straight from the maps.
sj=$("$B/ferryctl" --bpffs "$PIN" -j stats --no-backends)
assert_eq ferryctl_stats_opened "$(echo "$sj" | tr -d ' \n' | grep -o '"service":"mx/web","vip":"[^"]*","backends":2,[^}]*"opened":[0-9]*' | grep -o '"opened":[0-9]*$' | cut -d: -f2)" "$N"
assert_eq ferryctl_stats_connect_hit "$(echo "$sj" | tr -d ' \n' | grep -o '"connect_hit":[0-9]*' | cut -d: -f2)" "$hit1"
check ferryctl_stats_plain bash -c '"$1" --bpffs "$2" stats | grep -q "^  mx/web .* 198.51.100.80:80/tcp"' _ "$B/ferryctl" "$PIN"
check ferryctl_stats_prometheus_format bash -c '"$1" --bpffs "$2" stats --prometheus | promtool check metrics' _ "$B/ferryctl" "$PIN"

# --- gzip ----------------------------------------------------------------
# Between two scrapes only the exporter's own bookkeeping may change.
strip() { grep -vE '^(# (HELP|TYPE) )?ferry_(metrics_|daemon_ready)'; }
curl -s --max-time 5 -H 'Accept-Encoding: gzip' -D "$TMP/gz.hdr" "$MURL/metrics" > "$TMP/body.gz"
curl -s --max-time 5 "$MURL/metrics" > "$TMP/plain2.txt"
check gzip_content_encoding grep -qi '^Content-Encoding: gzip' "$TMP/gz.hdr"
if gunzip -c "$TMP/body.gz" > "$TMP/gunzipped.txt" 2>/dev/null && \
   diff <(strip < "$TMP/gunzipped.txt") <(strip < "$TMP/plain2.txt") > "$TMP/gz.diff"; then
	echo "PASS gzip_decodes_to_same_text"
else
	echo "FAIL gzip_decodes_to_same_text: $(head -5 "$TMP/gz.diff")"
fi
check gzip_smaller test "$(stat -c %s "$TMP/body.gz")" -lt "$(stat -c %s "$TMP/plain2.txt")"
check no_gzip_when_q0 bash -c '! curl -s -D - -o /dev/null -H "Accept-Encoding: gzip;q=0" "$1/metrics" | grep -qi "^Content-Encoding"' _ "$MURL"
# "*" is any coding not named: gzip included, unless refused by name or q=0.
gz_with() { curl -s -D - -o /dev/null --max-time 5 -H "Accept-Encoding: $1" "$MURL/metrics" | grep -qi '^Content-Encoding: gzip'; }
check gzip_when_star gz_with '*'
check gzip_when_star_after_identity gz_with 'identity;q=0.5, *;q=0.1'
no_gz_with() { ! gz_with "$1"; }
check no_gzip_when_star_q0 no_gz_with '*;q=0'
check no_gzip_when_gzip_q0_beside_star no_gz_with 'gzip;q=0, *'

# --- a real Prometheus scrapes ferryd ------------------------------------
PPORT=$(free_port) || { echo "FAIL prometheus_setup: no free port"; exit 1; }
mkdir -p "$TMP/prom-data"
cat > "$TMP/prom.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: ferry
    static_configs:
      - targets: ['127.0.0.1:$MPORT']
EOF
prometheus --config.file="$TMP/prom.yml" --storage.tsdb.path="$TMP/prom-data" \
	--web.listen-address="127.0.0.1:$PPORT" --log.level=warn > "$TMP/prom.log" 2>&1 &
PROM_PID=$!
_PIDS+=("$PROM_PID")
prom_value() {	# PromQL: the first sample's value
	curl -s --max-time 2 -G "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$1" |
		grep -o '"value":\[[^]]*\]' | head -1 | sed -E 's/.*,"([^"]*)"\]/\1/'
}
prom_sees_n() { [ "$(prom_value "ferry_service_connections_opened_total{service=\"mx/web\"}")" = "$N" ]; }
if wait_for 600 prom_sees_n; then
	echo "PASS prometheus_query_opened_total"
else
	echo "FAIL prometheus_query_opened_total: got '$(prom_value 'ferry_service_connections_opened_total')'"
	tail -5 "$TMP/prom.log"
fi
assert_eq prometheus_target_up "$(prom_value 'up{job="ferry"}')" 1
# Every query of the Grafana dashboard is valid PromQL (Prometheus parses it).
bad_q=0
while IFS= read -r q; do
	q=${q//\$__rate_interval/1m}
	q=${q//\$instance/.*}
	q=${q//\$service/.*}
	if ! curl -s --max-time 5 -G "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode "query=$q" |
		grep -q '"status":"success"'; then
		echo "bad dashboard query: $q"
		bad_q=$((bad_q + 1))
	fi
done < <(jq -r '.. | objects | .expr? // empty' "$ROOT/deploy/grafana/ferry-dashboard.json")
assert_eq dashboard_queries_parse "$bad_q" 0
kill "$PROM_PID" 2>/dev/null; wait "$PROM_PID" 2>/dev/null

# --- deploy/ matches the exporter ---------------------------------------
check prometheus_config_valid silently promtool check config "$ROOT/deploy/prometheus/scrape.yml"
check prometheus_rules_valid silently promtool check rules "$ROOT/deploy/prometheus/alerts.yml"
# Every ferry_* name the dashboard and the alerts use is one the exporter
# can emit (the families of features not loaded here included), or a pinned
# map's name (a value of the map label).
known=$({ cat "$ROOT"/userspace/lib/metrics.c "$ROOT"/userspace/lib/stat_names.c "$ROOT"/userspace/ferryd/metrics.c |
	grep -o 'ferry_[a-z0-9_]*'; cat "$ROOT"/include/ferry/*.h | grep -o '"ferry_[a-z0-9_]*"' | tr -d '"'; } | sort -u)
unknown=$(cat "$ROOT/deploy/grafana/ferry-dashboard.json" "$ROOT/deploy/prometheus/alerts.yml" |
	grep -o 'ferry_[a-z0-9_]*' | sort -u | grep -vxF "$known" | grep -v '^ferry_\(overview\|targets\)' | tr '\n' ' ')
assert_eq deploy_uses_known_families "$unknown" ""

# --- bad requests --------------------------------------------------------
assert_eq unknown_path_404 "$(http_code "$MURL/nope")" 404
assert_eq wrong_method_405 "$(http_code "$MURL/metrics" -X POST)" 405
big=$(head -c 20000 /dev/zero | tr '\0' a)
assert_eq huge_headers_431 "$(http_code "$MURL/metrics" -H "X-Big: $big")" 431
raw_status() {	# raw request text: the status line of the answer
	local fd line
	exec {fd}<>"/dev/tcp/127.0.0.1/$MPORT" || return
	printf "$1" >&"$fd"
	IFS= read -r -t 5 line <&"$fd"
	exec {fd}<&-
	printf '%s' "${line%$'\r'}"
}
assert_eq bad_request_400 "$(raw_status 'BLAH\r\n\r\n')" "HTTP/1.1 400 Bad Request"
assert_eq bad_version_505 "$(raw_status 'GET /metrics HTTP/3.0\r\n\r\n')" "HTTP/1.1 505 HTTP Version Not Supported"

# Slowloris: half a request head, then nothing. The daemon keeps serving
# and reconciling; the slow client is cut off with 408 at its deadline.
exec {slow}<>"/dev/tcp/127.0.0.1/$MPORT"
printf 'GET /metrics HTTP/1.1\r\nHost: x\r\n' >&"$slow"
assert_eq healthz_during_slow_client "$(http_code "$MURL/healthz")" 200
registry 192.0.2.11 192.0.2.12 192.0.2.13
three_backends() { [ "$(metric "ferry_service_backends{$L}")" = 3 ]; }
check reconcile_during_slow_client wait_for 200 three_backends
slow_reply=$(timeout 10 cat <&"$slow" | head -1 | tr -d '\r')
exec {slow}<&-
assert_eq slow_client_408 "$slow_reply" "HTTP/1.1 408 Request Timeout"

# Connection cap: hold more connections than the server takes; the excess
# is refused with 503 at once, and the daemon recovers when they go. One
# peer address gets a quarter of the slots: the kubelet's probe from
# another address (127.0.0.2, also loopback) is still answered.
rej0=$(metric ferry_metrics_http_connections_rejected_total)
fds=()
for i in $(seq 1 40); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$MPORT" && fds+=("$fd")
done
over=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$MURL/healthz")
other=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' --interface 127.0.0.2 "$MURL/healthz")
for fd in "${fds[@]}"; do exec {fd}<&-; done
assert_eq connection_cap_503 "$over" 503
assert_eq healthz_other_peer_during_cap "$other" 200
rej1=$(metric ferry_metrics_http_connections_rejected_total)
check connection_cap_rejections_counted test "$((rej1 - rej0))" -ge 31	# 40 - 8 - 2 probe-only, + the 503 above
# A peer holding just its share (8) still gets /healthz answered: past its
# share it may open two more, for the probes only (the kubelet probes from
# the node's address, which other host-network clients share).
open_conns() { curl -s --max-time 5 --interface 127.0.0.2 "$MURL/metrics" |
	awk '$1 == "ferry_metrics_http_connections_open" { print $2 }'; }
all_closed() { [ "$(open_conns)" = 1 ]; }	# the scrape's own
check connection_cap_drained wait_for 200 all_closed
fds=()
for i in $(seq 1 8); do
	exec {fd}<>"/dev/tcp/127.0.0.1/$MPORT" && fds+=("$fd")
done
share_held() { [ "$(open_conns)" = 9 ]; }
check peer_share_held wait_for 200 share_held
share_probe=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$MURL/healthz")
share_metrics=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$MURL/metrics")
for fd in "${fds[@]}"; do exec {fd}<&-; done
assert_eq healthz_from_peer_at_its_share "$share_probe" 200
assert_eq metrics_from_peer_at_its_share_503 "$share_metrics" 503
# Four addresses fill every slot but the reserved ones: a /metrics request
# from a fifth is refused, /healthz and /readyz from it are answered.
# All in one process, well inside the 1 s --metrics-timeout of the idle ones.
if command -v python3 >/dev/null; then
	res=$(python3 - "$MPORT" <<'PY'
import socket, sys
port = int(sys.argv[1])
held = []
for a in range(3, 7):
    for _ in range(7):
        s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.%d" % a, 0))
        held.append(s)
def open_conns():
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.8", 0))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    s.close()
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("ferry_metrics_http_connections_open "):
            return int(line.split()[1])
    return -1
# Every held connection accepted (28, and this scrape's own) before asking.
for _ in range(200):
    if open_conns() >= 29:
        break
def get(path):
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.7", 0))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    line = s.makefile("rb").readline().decode().split()
    s.close()
    return line[1] if len(line) > 1 else "none"
print(get("/metrics"), get("/healthz"), get("/readyz"))
PY
)
	assert_eq reserve_slots_probes_only "$res" "503 200 200"
else
	echo "SKIP reserve_slots_probes_only: no python3"
fi
healthy() { [ "$(http_code "$MURL/healthz")" = 200 ]; }
check healthz_after_cap wait_for 200 healthy
check ferryd_still_running kill -0 "$FERRYD_PID"
# A ferryctl stopped mid-edit holds the writers' lock: a sync finds it
# busy and is retried off a timer, never waited for on the event loop,
# which goes on serving; released, the sync lands.
mkfifo "$TMP/unlock"
flock "$PIN" -c "touch '$TMP/locked'; read -r _ < '$TMP/unlock'" &
holder=$!
wait_for 200 test -e "$TMP/locked"
registry 192.0.2.11 192.0.2.12
retrying() { grep -q "writers' lock on $PIN busy" "$TMP/ferryd.log"; }
check sync_retried_while_locked wait_for 200 retrying
assert_eq healthz_while_locked "$(http_code "$MURL/healthz")" 200
check lock_still_held_meanwhile kill -0 "$holder"
assert_eq sync_waits_for_lock "$(metric "ferry_service_backends{$L}")" 3
echo >"$TMP/unlock"
wait "$holder"
two_backends() { [ "$(metric "ferry_service_backends{$L}")" = 2 ]; }
check sync_after_lock_released wait_for 200 two_backends

n408=$(metric 'ferry_metrics_http_requests_total{code="408"}')
check timeouts_counted test "${n408:-0}" -ge 1

# --- XDP families from a real XDP load balancer ---------------------------
# A second ferryd in the backend netns, XDP on its end of the veth (fb0),
# own pins and cgroup; its metrics on that netns' loopback. SYNs from the
# client to an XDP VIP are encapsulated towards 203.0.113.50 (routed back
# through the client, where they die): the LB counts them either way.
XPIN="$PIN-x"
XCG="$CG/x"
XVIP=198.51.100.95
XREG="$TMP/xdp.json"
XPID=""
xdp_down() {
	[ -n "$XPID" ] && kill "$XPID" 2>/dev/null && wait "$XPID" 2>/dev/null
	if [ -d "$XPIN" ]; then
		"$B/ferryctl" --bpffs "$XPIN" teardown >/dev/null 2>&1
		find "$XPIN" -mindepth 1 -depth \( -type f -o -type l \) -exec rm -f {} + 2>/dev/null
		find "$XPIN" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null
		rmdir "$XPIN" 2>/dev/null
	fi
	world_down	# removes $CG with $XCG below it
}
trap xdp_down EXIT
mkdir -p "$XCG"
fc0_mac=$(ip -n "$NS_C" -o link show fc0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
ip -n "$NS_B" addr add 192.0.2.2/24 dev fb0
ns_sysctl "$NS_B" net.ipv4.ip_forward=1	# our netns: bpf_fib_lookup needs it
ip -n "$NS_B" route add 203.0.113.50/32 via 192.0.2.1 dev fb0
ip -n "$NS_B" neigh replace 192.0.2.1 lladdr "$fc0_mac" dev fb0
ip -n "$NS_C" route add "$XVIP/32" via 192.0.2.2 dev fc0
printf '{ "services": [ { "name": "mx/xdp", "vip": "%s", "port": 80, "xdp": true,\n  "backends": [ { "ip": "203.0.113.50", "port": 80 } ] } ] }\n' "$XVIP" > "$XREG"
# nsenter, not ip netns exec: that one remounts /sys, hiding bpffs and cgroup2.
# This one listens on [::] (the DaemonSet's address) in a netns whose sockets
# are IPv6-only unless they say otherwise: it must answer on IPv4 too.
ns_sysctl "$NS_B" net.ipv6.bindv6only=1
nsenter --net="/run/netns/$NS_B" "$B/ferryd" --registry "$XREG" --bpffs "$XPIN" --state-dir "$(state_dir "$XPIN")" --cgroup "$XCG" --resync 0 \
	--max-services 1024 --max-backends 4096 --xdp-flows 65536 --xdp-iface fb0 \
	--metrics-addr '[::]:0' > "$TMP/xdp-ferryd.log" 2>&1 &
XPID=$!
XPORT=$(metrics_hostport "$TMP/xdp-ferryd.log" "$XPID")
XPORT=${XPORT##*:}
xurl() { ip netns exec "$NS_B" curl -s --max-time 5 "http://127.0.0.1:$XPORT$1"; }
xready() { [ "$(ip netns exec "$NS_B" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$XPORT/readyz")" = 200 ]; }
# Our own veth in our own netns: an LB that does not come up is a failure.
if ! wait_for 400 xready || ! grep -q "attached to fb0" "$TMP/xdp-ferryd.log"; then
	echo "FAIL xdp_metrics: the XDP load balancer did not start: $(tail -3 "$TMP/xdp-ferryd.log" | tr '\n' ' ')"
	exit 1
fi
assert_eq metrics_any_address_answers_ipv6 \
	"$(ip netns exec "$NS_B" curl -s -o /dev/null -w '%{http_code}' "http://[::1]:$XPORT/healthz")" 200
xmetric() { xurl /metrics | awk -v k="$1" '$1 == k { print $2 }'; }
XL='service="mx/xdp",vip="198.51.100.95:80/tcp"'
# Three SYNs nobody answers (sent, the sockets closed at once); not in our
# cgroup, so no socket LB. Then wait for the LB to have counted them.
check xdp_syns_sent ip netns exec "$NS_C" "$B/tests/xdp_peer" syn "$XVIP" 80 3
xsyn() { local v; v=$(xmetric "ferry_xdp_packets_total{$XL}"); [ -n "$v" ] && [ "$v" -ge 3 ]; }
check xdp_vip_packets_counted wait_for 100 xsyn
v=$(xmetric "ferry_xdp_backend_packets_total{$XL,backend=\"203.0.113.50:80\"}")
check xdp_backend_packets_counted test "${v:-0}" -ge 3
v=$(xmetric 'ferry_xdp_actions_total{action="tx"}')
check xdp_tx_counted test "${v:-0}" -ge 3
# The flow table is an array of sets: its fill is the flows recorded, its capacity the ways.
xmap() { xurl /metrics | awk -v k="$1{map=\"ferry_xflow_v3\"" 'index($1, k) == 1 { print $2 }'; }
check xdp_flow_table_capacity test "$(xmap ferry_map_max_entries)" = 65536
v=$(xmap ferry_map_entries)
check xdp_flow_table_fill test "${v:-0}" -ge 1 -a "${v:-0}" -le 3
# The VIP index: 256 sets of 4 at --max-services 1024, one VIP in it, answering alone.
xidx() { xurl /metrics | awk -v k="$1{map=\"ferry_xsvc_v1\"" 'index($1, k) == 1 { print $2 }'; }
check xdp_vip_index_capacity test "$(xidx ferry_map_max_entries)" = 1024
check xdp_vip_index_fill test "$(xidx ferry_map_entries)" = 1
v=$(xmetric ferry_xdp_vip_slow_lookups_total)
check xdp_vip_index_answers_alone test "${v:-x}" = 0
check xdp_metrics_pass_promtool bash -c "ip netns exec '$NS_B' curl -s 'http://127.0.0.1:$XPORT/metrics' | promtool check metrics"
