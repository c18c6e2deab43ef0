#!/usr/bin/env bash
# Metrics scrape cost at scale: 10,000 services x 10 backends, every backend
# with a counters entry, scraped over HTTP from ferryd (default series cap,
# plain and gzip), rendered with every backend's series (ferryctl stats
# --prometheus, no cap), and the event loop's stall: /healthz latency while
# scrapes run back to back. Baseline from the same run: a no-op reconcile of
# the same registry (SIGHUP), the daemon's other big loop job.
#
#   tools/bench/run.sh metrics      (MX_SERVICES, MX_BACKENDS_PER to resize)
source "$(dirname "$0")/lib.sh"
bench_init mx
command -v curl >/dev/null || bench_skip "curl not installed (make deps)"
command -v bpftool >/dev/null || bench_skip "bpftool not installed (make deps)"
SVCS=${MX_SERVICES:-10000}
PER=${MX_BACKENDS_PER:-10}
RUNS=5

bench_cgroup d; CGD=$REPLY	# programs attach here; nothing runs inside
bench_pin d; PIN=$REPLY

# 10k services: VIPs 198.51.100.1-250 x ports 1000+, backends 192.0.2.1-PER.
awk -v n="$SVCS" -v k="$PER" 'BEGIN {
	printf "{ \"services\": [\n"
	for (i = 0; i < n; i++) {
		printf "%s{ \"name\": \"bench/svc-%05d\", \"vip\": \"198.51.100.%d\", \"port\": %d, \"backends\": [", \
			i ? ",\n" : "", i, i % 250 + 1, 1000 + int(i / 250)
		for (j = 0; j < k; j++)
			printf "%s{ \"ip\": \"192.0.2.%d\", \"port\": 8080 }", j ? ", " : " ", j + 1
		printf " ] }"
	}
	printf "\n] }\n"
}' > "$TMP/registry.json"

bench_bg "$B/ferryd" --registry "$TMP/registry.json" --bpffs "$PIN" --cgroup "$CGD" --resync 0 \
	--metrics-addr 127.0.0.1:0 > "$TMP/ferryd.log" 2>&1	# port 0: any free one, logged
FERRYD=$BG_PID
logged() { grep -q 'metrics on http://' "$TMP/ferryd.log"; }
wait_for 1200 logged || { cat "$TMP/ferryd.log"; bench_die "ferryd logged no metrics address"; }
URL=$(sed -n 's|.*metrics on \(http://[^/]*\)/metrics.*|\1|p' "$TMP/ferryd.log" | head -n 1)
ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz")" = 200 ]; }
wait_for 1200 ready || { cat "$TMP/ferryd.log"; bench_die "ferryd did not apply the registry"; }

metric() { curl -s "$URL/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }

# A counters entry for every backend (ids are allocated densely from 1), so
# the scrape reads and renders as much as a busy node's.
NBE=$((SVCS * PER))
bemap="$PIN/$(ls "$PIN" | grep -m1 '^ferry_bestat_')"	# the layout version may move on
vsz=$(bpftool map show pinned "$bemap" | grep -o 'value [0-9]*B' | grep -o '[0-9]*')
[ -n "$vsz" ] || bench_die "cannot read the value size of $bemap"
awk -v n="$NBE" -v vsz="$vsz" -v m="$bemap" 'BEGIN {
	for (id = 1; id <= n; id++) {
		printf "map update pinned %s key %d %d %d %d value", m, id % 256, int(id / 256) % 256, int(id / 65536) % 256, 0
		# active, opened, success, failed: small non-zero counts
		for (b = 0; b < vsz; b++)
			printf " %d", (b % 8 == 0 && b < 32) ? (id * (b / 8 + 1)) % 200 + 1 : 0
		printf "\n"
	}
}' > "$TMP/bestat.batch"
bpftool batch file "$TMP/bestat.batch" > /dev/null || bench_die "cannot fill $bemap"

# Baseline: a no-op reconcile of the same registry.
syncs() { metric ferry_registry_syncs_total; }
sync_ms=()
for r in 1 2 3; do
	before=$(syncs)
	kill -HUP "$FERRYD"
	synced() { [ "$(syncs)" -gt "$before" ]; }
	wait_for 1200 synced || bench_die "SIGHUP resync did not finish"
	sync_ms+=("$(metric ferry_registry_last_sync_duration_seconds | awk '{ printf "%.1f", $1 * 1000 }')")
done

scrape() {	# curl args...: prints "ms bytes"
	curl -s -o /dev/null -w '%{time_total} %{size_download}\n' "$@" "$URL/metrics" |
		awk '{ printf "%.1f %d\n", $1 * 1000, $2 }'
}
plain_ms=() gzip_ms=() build_ms=() collect_ms=()
for r in $(seq 1 $RUNS); do
	read -r ms plain_bytes < <(scrape)
	plain_ms+=("$ms")
	build_ms+=("$(metric ferry_metrics_last_scrape_duration_seconds | awk '{ printf "%.1f", $1 * 1000 }')")
	read -r ms gzip_bytes < <(scrape -H 'Accept-Encoding: gzip')
	gzip_ms+=("$ms")
done
for r in $(seq 1 $RUNS); do
	collect_ms+=("$(metric ferry_metrics_collect_duration_seconds | awk '{ printf "%.1f", $1 * 1000 }')")
done
series=$(curl -s "$URL/metrics" | grep -vc '^#')

full_ms=()
for r in 1 2 3; do
	t0=$(date +%s%N)
	"$B/ferryctl" --bpffs "$PIN" stats --prometheus > "$TMP/full.txt"
	full_ms+=("$(( ($(date +%s%N) - t0) / 100000 ))")
done
full_bytes=$(stat -c %s "$TMP/full.txt")
full_series=$(grep -vc '^#' "$TMP/full.txt")

# Loop stall: /healthz while another client scrapes back to back.
hz() { curl -s -o /dev/null -w '%{time_total}\n' "$URL/healthz" | awk '{ printf "%.2f\n", $1 * 1000 }'; }
idle_hz=()
for r in $(seq 1 20); do idle_hz+=("$(hz)"); done
( for r in $(seq 1 30); do curl -s -o /dev/null "$URL/metrics"; done ) &
LOOP=$!
_BENCH_PIDS+=("$LOOP")
busy_hz=()
for r in $(seq 1 20); do busy_hz+=("$(hz)"); done
wait "$LOOP" 2>/dev/null

max() { printf '%s\n' "$@" | sort -g | tail -1; }
tenth() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 10 }'; }
sync_med=$(median "${sync_ms[@]}")
plain_med=$(median "${plain_ms[@]}")
cat <<EOF

Metrics scrape, $SVCS services x $PER backends ($NBE backends, each with counters), median of $RUNS:

| measurement | time | size | vs. no-op reconcile |
|---|---|---|---|
| no-op reconcile of the same registry (SIGHUP; baseline) | $sync_med ms | | 1.00 |
| GET /metrics, default cap (10,000 backend series + overflow), plain | $plain_med ms | $((plain_bytes / 1024)) KiB, $series samples | $(awk -v a="$plain_med" -v b="$sync_med" 'BEGIN { printf "%.2f", a / b }') |
| GET /metrics, same, gzip | $(median "${gzip_ms[@]}") ms | $((gzip_bytes / 1024)) KiB | $(awk -v a="$(median "${gzip_ms[@]}")" -v b="$sync_med" 'BEGIN { printf "%.2f", a / b }') |
| of which reading the maps (ferry_metrics_collect_duration_seconds) | $(median "${collect_ms[@]}") ms | | |
| building the body (worker thread, off the loop; ferry_metrics_last_scrape_duration_seconds) | $(median "${build_ms[@]}") ms | | |
| ferryctl stats --prometheus, no cap (every backend's series, new process) | $(tenth "$(median "${full_ms[@]}")") ms | $((full_bytes / 1024)) KiB, $full_series samples | $(awk -v a="$(tenth "$(median "${full_ms[@]}")")" -v b="$sync_med" 'BEGIN { printf "%.2f", a / b }') |
| GET /healthz, idle loop (median / max of 20) | $(median "${idle_hz[@]}") / $(max "${idle_hz[@]}") ms | | |
| GET /healthz while scrapes run back to back (median / max of 20) | $(median "${busy_hz[@]}") / $(max "${busy_hz[@]}") ms | | |
EOF
