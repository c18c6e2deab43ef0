#!/usr/bin/env bash
# The XDP benchmark's harness (ferry-bench xdp-ns, docs/benchmarks.md), on a
# small scale: its figures are only worth reading if its own checks hold.
# - a full run (every case, ferry and the peer model taking turns) finishes:
#   the model forwarded an established flow IPIP and passed a non-VIP packet,
#   used its CPU's LRU, the outage's new flows took the fallback, the decap
#   stripped every tunnel; and it prints every figure;
# - the same with --peer-obj on an object with Katran's map and program
#   names (the model renamed: Makefile, peer_as_katran.bpf.o);
# - --peer-obj with an object that is not Katran's balancer is refused,
#   naming the map it lacks, and a missing file naming the file; neither
#   leaves its pin dir behind.
# ferry-bench works in a network namespace of its own (unshare) and pins
# under $PIN only.
source "$(dirname "$0")/lib.sh"
need_root
command -v unshare >/dev/null || skip_all "unshare not installed"
command -v jq >/dev/null || skip_all "jq not installed"
[ -x "$B/ferry-bench" ] || skip_all "$B/ferry-bench not built"

run() {	# out-file, args...: ferry-bench xdp-ns on $PIN, small tables
	local out=$1; shift
	"$B/ferry-bench" xdp-ns --pin "$PIN" --calls 2000 --flows 65536 "$@" >"$out" 2>"$out.err"
}

if run "$TMP/full.json"; then
	echo "PASS full_run_passes_its_checks"
else
	echo "FAIL full_run_passes_its_checks: $(tail -3 "$TMP/full.json.err" | tr '\n' ' ')"
fi
check full_run_names_the_model silently jq -e '.peer == "bench_peer"' "$TMP/full.json"
keys=(syn_new_flow lru_hit flows_100k non_vip syn_full outage decap decap_pass)
missing=""
for k in "${keys[@]}" peer_syn_new_flow peer_lru_hit peer_flows_100k peer_non_vip peer_syn_full; do
	jq -e --arg k "${k}_ns" --arg m "${k}_median_ns" '(.[$k] | type) == "number" and (.[$m] | type) == "number"' \
		"$TMP/full.json" >/dev/null 2>&1 || missing="$missing $k"
done
assert_eq full_run_prints_every_case "$missing" ""
check full_run_prints_the_floor silently jq -e '.floor_ns > 0 and .floor_bytes > 0' "$TMP/full.json"
check full_run_removes_its_pins test ! -e "$PIN"

# An object with Katran's map and program names (the model renamed, built by make check):
# loaded by name, filled, checked and measured in place of the model.
if [ -f "$B/tests/peer_as_katran.bpf.o" ]; then
	if run "$TMP/kat.json" --peer-obj "$B/tests/peer_as_katran.bpf.o"; then
		echo "PASS peer_obj_full_run_passes_its_checks"
	else
		echo "FAIL peer_obj_full_run_passes_its_checks: $(tail -3 "$TMP/kat.json.err" | tr '\n' ' ')"
	fi
	check peer_obj_names_its_program silently jq -e '.peer == "balancer_ingress" and .peer_lru_hit_ns != null' \
		"$TMP/kat.json"
	check peer_obj_run_removes_its_pins test ! -e "$PIN"
else
	echo "SKIP peer_obj_full_run_passes_its_checks: $B/tests/peer_as_katran.bpf.o not built (make check builds it)"
fi

# ferry's own LB object has none of Katran's maps.
if run "$TMP/bad.json" --case peer_hit --peer-obj "$B/xdp_lb.bpf.o"; then
	echo "FAIL peer_obj_without_katran_maps_refused: it ran"
else
	check peer_obj_without_katran_maps_refused grep -q "lru_mapping" "$TMP/bad.json.err"
fi
check refused_run_removes_its_pins test ! -e "$PIN"
if run "$TMP/none.json" --case peer_hit --peer-obj "$TMP/no-such.o"; then
	echo "FAIL peer_obj_missing_refused: it ran"
else
	check peer_obj_missing_refused grep -q "no-such.o" "$TMP/none.json.err"
fi
check missing_obj_run_removes_its_pins test ! -e "$PIN"
