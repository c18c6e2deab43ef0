#!/usr/bin/env bash
# ferryctl against a running ferryd: every command's plain and -j output,
# exit codes (2 usage, 1 runtime, naming the object), and ownership: a
# ferryctl edit of a registry service lasts until the next sync, a service
# ferryctl created survives syncs.
source "$(dirname "$0")/lib.sh"

command -v jq >/dev/null || skip_all "jq missing (make deps installs it)"
world_up
T="$B/tests/ferry-traffic"
REG="$TMP/registry.json"
CTL() { "$B/ferryctl" --bpffs "$PIN" "$@"; }

backend_addr 192.0.2.11
backend_addr 192.0.2.12
bg in_backend "$T" serve 192.0.2.11:8080 192.0.2.12:8080 192.0.2.11:9090 192.0.2.12:9090 --timeout 300 \
	>"$TMP/serve.out" 2>&1
wait_for 200 grep -qx ready "$TMP/serve.out" || skip_all "backends did not start"

cat >"$REG" <<'EOF'
{
  "services": [
    { "name": "web", "vip": "198.51.100.10", "port": 80, "lb": "round_robin",
      "backends": [ {"ip": "192.0.2.11", "port": 8080}, {"ip": "192.0.2.12", "port": 8080} ] },
    { "name": "dns", "vip": "198.51.100.53", "port": 53, "protocol": "udp", "lb": "random",
      "backends": [ {"ip": "192.0.2.11", "port": 5353} ] },
    { "name": "v6", "vip": "2001:db8:ffff::10", "port": 80, "lb": "maglev",
      "backends": [ {"ip": "2001:db8::11", "port": 8080} ] }
  ]
}
EOF
ferryd_start "$REG" || { echo "FAIL ferryd_start"; exit 1; }

syncs() { CTL -j status | jq -r .syncs; }
attached() {	# programs attached to our cgroup (bpftool prints nothing for none)
	local o
	o=$(bpftool -j cgroup show "$CG" 2>/dev/null)
	if [ -n "$o" ]; then jq length <<<"$o"; else echo 0; fi
}
resync() {	# SIGHUP our ferryd and wait for the sync it triggers
	local before
	before=$(syncs)
	kill -HUP "$FERRYD_PID"
	wait_for 200 synced_since "$before"
}
# run: sets $rc, $out (stdout), $err (stderr)
run() {
	out=$("$@" 2>"$TMP/stderr")
	rc=$?
	err=$(cat "$TMP/stderr")
}
is_json() { jq -e . >/dev/null 2>&1 <<<"$1"; }
verdict() {	# name: PASS/FAIL by the status of the command just before
	if [ $? = 0 ]; then
		echo "PASS $1"
	else
		echo "FAIL $1: exit $rc"
		printf '%s\n' "$out" "$err" | head -n 8 | sed 's/^/# /'
	fi
}
cnt() { awk -v id="$2" '$1 == id { print $2; f = 1 } END { if (!f) print 0 }' <<<"$1"; }

# ---- read commands, plain and JSON ----
run CTL service list
[ "$rc" = 0 ] && grep -q '^NAME ' <<<"$out" && grep -q 'web .*198.51.100.10:80/tcp .*round_robin .*2 *registry' <<<"$out"; verdict service_list_plain
run CTL -j service list
[ "$rc" = 0 ] && is_json "$out" &&
	[ "$(jq -r '[.[] | .service] | sort | join(" ")' <<<"$out")" = "198.51.100.10:80/tcp 198.51.100.53:53/udp [2001:db8:ffff::10]:80/tcp" ]; verdict service_list_json
assert_eq service_list_json_fields "$(jq -c '.[] | select(.name == "web") | [.vip, .port, .protocol, .lb, .owner, .backend_count]' <<<"$out")" \
	'["198.51.100.10",80,"tcp","round_robin","registry",2]'

run CTL service show 198.51.100.10:80
[ "$rc" = 0 ] && grep -q 'service 198.51.100.10:80/tcp .*name web .*lb round_robin' <<<"$out" &&
	grep -qE '192.0.2.11:8080 +1 +active' <<<"$out" && grep -qE '192.0.2.12:8080 +1 +active' <<<"$out"; verdict service_show_plain
run CTL -j service show 198.51.100.10:80/tcp
[ "$rc" = 0 ] && is_json "$out" &&
	[ "$(jq -c '[.backends[] | [.ip, .port, .weight, .state]]' <<<"$out")" = '[["192.0.2.11",8080,1,"active"],["192.0.2.12",8080,1,"active"]]' ]; verdict service_show_json
run CTL -j service show "[2001:db8:ffff::10]:80"
[ "$rc" = 0 ] && [ "$(jq -r '.lb + " " + .backends[0].ip' <<<"$out")" = "maglev 2001:db8::11" ]; verdict service_show_ipv6
run CTL -j service show 198.51.100.53:53/udp
[ "$rc" = 0 ] && [ "$(jq -r .protocol <<<"$out")" = udp ]; verdict service_show_udp
# No connection reached that backend yet: no counters in the kernel, and
# -j shows the zeros the plain output shows, not fewer fields.
assert_eq service_show_json_no_counters "$(jq -c '[.backends[] | [.circuit, .active, .opened, .failed]]' <<<"$out")" \
	'[["closed",0,0,0]]'

run CTL status
[ "$rc" = 0 ] && grep -q "ferryd: *running (pid $FERRYD_PID)" <<<"$out" &&
	grep -q "registry: *$REG" <<<"$out" && grep -qE 'last sync: .*, ok,' <<<"$out" && grep -q '^links:' <<<"$out"; verdict status_plain
run CTL -j status
[ "$rc" = 0 ] && is_json "$out" && [ "$(jq -r '.last_ok' <<<"$out")" = true ] &&
	[ "$(jq -r '.error' <<<"$out")" = "" ] && [ "$(jq -r '.daemon_pid' <<<"$out")" = "$FERRYD_PID" ] &&
	[ "$(jq -r '.services' <<<"$out")" = 3 ] && [ "$(jq '[.links[] | select(.cgroup_id)] | length' <<<"$out")" = "$(attached)" ]; verdict status_json

# ---- registry check: ferryd's parser and planner, nothing written ----
run CTL registry check "$REG"
[ "$rc" = 0 ] && grep -q "^$REG: ok: 3 services (0 with XDP), 4 backends; capacity [0-9]* services (this node's maps), [0-9]* backends (this node's maps)$" <<<"$out" &&
	grep -qE '^  web +198.51.100.10:80/tcp +round_robin +2 backends' <<<"$out" &&
	grep -qx 'a sync now: services +0 -0 ~0, backends +0 -0 ~0, 0 map writes' <<<"$out"; verdict registry_check_applied_is_no_change
# Another document: what a sync would do, and the maps untouched.
jq '.services |= map(select(.name != "dns")) | (.services[] | select(.name == "web") | .backends) += [{"ip": "192.0.2.13", "port": 8080}]' \
	"$REG" >"$TMP/next.json"
run CTL -j registry check "$TMP/next.json"
[ "$rc" = 0 ] && is_json "$out" && [ "$(jq -c '[.ok, .max_services_from, .max_backends_from, .sync.services_removed, .sync.services_changed, .sync.backends_added, .sync.backends_removed]' <<<"$out")" = '[true,"node","node",1,1,1,1]' ] &&
	CTL service show 198.51.100.53:53/udp >/dev/null && ! CTL service show 198.51.100.10:80 | grep -q 192.0.2.13; verdict registry_check_previews_without_writing
printf '{"services": [{"name": "web", "vip": "198.51.100.10", "port": 80,\n "backends": [{"ip": "192.0.2.300", "port": 8080}]}]}\n' >"$TMP/bad.json"
run CTL registry check "$TMP/bad.json"
[ "$rc" = 1 ] && grep -q "^Error: $TMP/bad.json:2:[0-9]*: .*192.0.2.300" <<<"$err"; verdict registry_check_names_the_place
run CTL -j registry check "$TMP/bad.json"
[ "$rc" = 1 ] && is_json "$out" && [ "$(jq -r '.ok' <<<"$out")" = false ] && jq -e '.error | test(":2:")' >/dev/null <<<"$out"; verdict registry_check_json_error
# Without ferry loaded: ferryd's default capacity, no preview; --max-* set either.
run "$B/ferryctl" -j --bpffs "$TMP/nowhere" registry check "$REG"
[ "$rc" = 0 ] && [ -z "$err" ] && [ "$(jq -c '[.max_services_from, .max_backends_from, has("sync"), (.services | length)]' <<<"$out")" = '["default","default",false,3]' ]; verdict registry_check_without_node
# A part of ferry (another program's map in its place): said, and the defaults used.
mkdir "$PIN-part" && bpftool map create "$PIN-part/ferry_svc_v1" type array key 4 value 4 entries 1 name part
run "$B/ferryctl" --bpffs "$PIN-part" registry check "$REG"
rm -rf "$PIN-part"
[ "$rc" = 0 ] && grep -q "^Warning: cannot read the node's maps ('$PIN-part/ferry_slot_v1'" <<<"$err" &&
	grep -q "(ferryd's default)" <<<"$out"; verdict registry_check_says_unreadable_node
# On the node, one option overrides its limit only; the other stays the node's, and no preview.
run CTL -j registry check "$REG" --max-services 7
[ "$rc" = 0 ] && [ "$(jq -c '[.max_services, .max_services_from, .max_backends_from, has("sync")]' <<<"$out")" = '[7,"option","node",false]' ]; verdict registry_check_one_option_on_node
run "$B/ferryctl" --bpffs "$TMP/nowhere" registry check "$REG" --max-backends 3
[ "$rc" = 1 ] && grep -q "capacity of 3 backends" <<<"$err"; verdict registry_check_capacity
# The fuzzer's seeds (tests/fuzz/corpus) are documents ferryd takes.
bad_seed=""
for f in "$ROOT"/tests/fuzz/corpus/registry/*.json; do
	"$B/ferryctl" --bpffs "$TMP/nowhere" registry check "$f" >/dev/null || bad_seed="$bad_seed $f"
done
assert_eq registry_fuzz_seeds_valid "$bad_seed" ""

# ---- usage errors: exit 2 ----
usage_err() {	# name, args...: exit 2, a message on stderr, nothing half-done
	local name=$1; shift
	run "$B/ferryctl" "$@"
	if [ "$rc" = 2 ] && [ -n "$err" ]; then echo "PASS usage_$name"; else echo "FAIL usage_$name: exit $rc, stderr '$err'"; fi
}
usage_err no_command --bpffs "$PIN"
usage_err unknown_command --bpffs "$PIN" frobnicate
usage_err unknown_option --bpffs "$PIN" --frob status
usage_err service_no_sub --bpffs "$PIN" service
usage_err service_unknown_sub --bpffs "$PIN" service frob
usage_err show_no_key --bpffs "$PIN" service show
usage_err show_bad_key --bpffs "$PIN" service show 198.51.100.10
usage_err show_bare_ipv6 --bpffs "$PIN" service show 2001:db8:ffff::10:80
usage_err add_bad_lb --bpffs "$PIN" service add x 198.51.100.30:80 --lb fastest
usage_err add_no_key --bpffs "$PIN" service add x
usage_err backend_bad_sub --bpffs "$PIN" backend frob 198.51.100.10:80 192.0.2.11:8080
usage_err backend_set_nothing --bpffs "$PIN" backend set 198.51.100.10:80 192.0.2.11:8080
usage_err backend_bad_weight --bpffs "$PIN" backend set 198.51.100.10:80 192.0.2.11:8080 --weight 65536
usage_err backend_bad_state --bpffs "$PIN" backend set 198.51.100.10:80 192.0.2.11:8080 --state gone
usage_err backend_family --bpffs "$PIN" backend add 198.51.100.10:80 "[2001:db8::11]:8080"
usage_err status_extra --bpffs "$PIN" status now
usage_err registry_check_no_file --bpffs "$PIN" registry check
usage_err registry_check_bad_max --bpffs "$PIN" registry check "$REG" --max-services -1
# -j means JSON on every command; the exposition text is not, so refused
usage_err stats_json_prometheus -j --bpffs "$PIN" stats --prometheus
is_json "$out" && jq -e '.error | test("prometheus")' >/dev/null <<<"$out"; verdict usage_stats_json_prometheus_is_json
# in JSON mode a usage error is a JSON object too
run "$B/ferryctl" -j --bpffs "$PIN" service show nowhere
[ "$rc" = 2 ] && is_json "$out" && jq -e '.error | test("nowhere")' >/dev/null <<<"$out"; verdict usage_json_error

# ---- runtime errors: exit 1, naming the object ----
runtime_err() {	# name, object, args...
	local name=$1 obj=$2; shift 2
	run "$B/ferryctl" "$@"
	if [ "$rc" = 1 ] && grep -q "^Error: .*'$obj'" <<<"$err"; then
		echo "PASS runtime_$name"
	else
		echo "FAIL runtime_$name: exit $rc, stderr '$err' (want exit 1 naming '$obj')"
	fi
}
runtime_err no_such_service 198.51.100.99:80 --bpffs "$PIN" service show 198.51.100.99:80
runtime_err del_no_such_service 198.51.100.99:80 --bpffs "$PIN" service del 198.51.100.99:80
runtime_err add_existing 198.51.100.10:80 --bpffs "$PIN" service add again 198.51.100.10:80
runtime_err backend_no_service 198.51.100.99:80 --bpffs "$PIN" backend add 198.51.100.99:80 192.0.2.11:8080
runtime_err backend_no_such_backend 192.0.2.13:8080 --bpffs "$PIN" backend del 198.51.100.10:80 192.0.2.13:8080
runtime_err backend_exists 192.0.2.11:8080 --bpffs "$PIN" backend add 198.51.100.10:80 192.0.2.11:8080
runtime_err not_loaded "$TMP/nowhere/ferry_svc_v1" --bpffs "$TMP/nowhere" status
runtime_err teardown_nothing "$TMP/nowhere" --bpffs "$TMP/nowhere" teardown
# A directory without ferry's maps (another program's pins, or all of
# /sys/fs/bpf) is not torn down: refused, its pins left in place.
FOREIGN="$PIN-foreign"
trap 'rm -rf "$FOREIGN"; world_down' EXIT
mkdir -p "$FOREIGN/sub"
bpftool map create "$FOREIGN/other_arr" type array key 4 value 4 entries 1 name other_arr
runtime_err teardown_not_ferry "$FOREIGN" --bpffs "$FOREIGN" teardown
grep -q "no ferry maps" <<<"$err" && [ -e "$FOREIGN/other_arr" ] && [ -d "$FOREIGN/sub" ]; verdict teardown_not_ferry_untouched
# What an interrupted teardown leaves (its service and status maps gone,
# another ferry map pinned): a second teardown finishes it.
bpftool map create "$FOREIGN/ferry_name_v1" type array key 4 value 4 entries 1 name ferry_name_v1
run "$B/ferryctl" --bpffs "$FOREIGN" teardown
[ "$rc" = 0 ] && [ ! -e "$FOREIGN/ferry_name_v1" ] && [ -e "$FOREIGN/other_arr" ]; verdict teardown_finishes_interrupted_one
rm -rf "$FOREIGN"
trap world_down EXIT
run "$B/ferryctl" -j --bpffs "$PIN" service show 198.51.100.99:80
[ "$rc" = 1 ] && is_json "$out" && jq -e '.error | test("198.51.100.99:80")' >/dev/null <<<"$out"; verdict runtime_json_error

# ---- edits: ferryctl-created services ----
run CTL service add manual 198.51.100.20:80 --lb maglev
[ "$rc" = 0 ] && grep -qE '^198.51.100.20:80: [0-9]+ map writes$' <<<"$out"; verdict service_add_plain
run CTL -j backend add 198.51.100.20:80 192.0.2.11:9090
[ "$rc" = 0 ] && is_json "$out" && [ "$(jq -r .service <<<"$out")" = 198.51.100.20:80 ] &&
	[ "$(jq -r '.map_writes > 0' <<<"$out")" = true ]; verdict backend_add_json
run CTL backend add 198.51.100.20:80 192.0.2.12:9090 --weight 3
[ "$rc" = 0 ] && grep -q 'map writes' <<<"$out"; verdict backend_add_plain
run CTL -j backend set 198.51.100.20:80 192.0.2.12:9090 --weight 2
[ "$rc" = 0 ] && is_json "$out" &&
	[ "$(CTL -j service show 198.51.100.20:80 | jq -c '[.backends[] | [.ip, .weight]] | sort')" = '[["192.0.2.11",1],["192.0.2.12",2]]' ]; verdict backend_set_weight
show_manual=$(CTL -j service show 198.51.100.20:80)
assert_eq service_add_owner "$(jq -r '.owner + " " + .lb + " " + .name' <<<"$show_manual")" "ferryctl maglev manual"
out=$(in_client "$T" connect 198.51.100.20:80 -n 20)
assert_eq ferryctl_service_balances "$(awk '$1 ~ /:9090$/ { s += $2 } END { print s + 0 }' <<<"$out") $(awk '$1 == "errors" { print $2 }' <<<"$out")" "20 0"

# Each check after a resync reads "yes" first only when the sync happened:
# what "survives" a sync that never ran proves nothing.
synced() { if resync; then echo yes; else echo "no sync after SIGHUP"; fi; }
s=$(synced)
assert_eq ferryctl_service_survives_sync "$s $(CTL -j service show 198.51.100.20:80 | jq -c '[.owner, .lb, .id, (.backends | length)]')" \
	"yes $(jq -c '[.owner, .lb, .id, (.backends | length)]' <<<"$show_manual")"

run CTL backend del 198.51.100.20:80 192.0.2.11:9090
[ "$rc" = 0 ] && [ "$(CTL -j service show 198.51.100.20:80 | jq -r '[.backends[].ip] | join(",")')" = 192.0.2.12 ]; verdict backend_del
run CTL -j service del 198.51.100.20:80
[ "$rc" = 0 ] && is_json "$out"; verdict service_del_json
run CTL service show 198.51.100.20:80
[ "$rc" = 1 ]; verdict service_del_gone
run CTL -j service add other "[2001:db8:ffff::20]:53/udp" --lb random
[ "$rc" = 0 ] && is_json "$out" && [ "$(jq -r .service <<<"$out")" = "[2001:db8:ffff::20]:53/udp" ] &&
	[ "$(CTL -j service show "[2001:db8:ffff::20]:53/udp" | jq -r '.owner + " " + .lb + " " + .protocol')" = "ferryctl random udp" ]; verdict service_add_json
run CTL service del "[2001:db8:ffff::20]:53/udp"
[ "$rc" = 0 ] && grep -qE '^\[2001:db8:ffff::20\]:53/udp: [0-9]+ map writes$' <<<"$out" &&
	! CTL service show "[2001:db8:ffff::20]:53/udp" >/dev/null 2>&1; verdict service_del_plain

run CTL service add edge 198.51.100.21:80 --xdp
[ "$rc" = 0 ] && [ "$(CTL -j service show 198.51.100.21:80 | jq -r '.xdp')" = true ]; verdict service_add_xdp
run CTL backend add 198.51.100.21:80 192.0.2.11:8080
[ "$rc" = 1 ] && grep -q '192.0.2.11:8080' <<<"$out$err"; verdict service_add_xdp_keeps_vip_port
run CTL service del 198.51.100.21:80
[ "$rc" = 0 ]; verdict service_del_xdp

# ---- edits of a registry service last until the next sync ----
run CTL backend set 198.51.100.10:80 192.0.2.11:8080 --weight 5
[ "$rc" = 0 ] && grep -q 'owned by the registry' <<<"$err"; verdict registry_edit_noted
weight_11() { CTL -j service show 198.51.100.10:80 | jq -r '.backends[] | select(.ip == "192.0.2.11") | .weight'; }
edited=$(weight_11)
s=$(synced)
assert_eq registry_wins_after_sync "$s $edited -> $(weight_11)" "yes 5 -> 1"
# The delete must have happened (the service gone) for its restoring to mean anything.
run CTL service del 198.51.100.10:80
del_rc=$rc
CTL service show 198.51.100.10:80 >/dev/null 2>&1
gone_rc=$?
s=$(synced)
CTL service show 198.51.100.10:80 >/dev/null 2>&1
assert_eq registry_restores_deleted_service "del $del_rc, show before sync $gone_rc, $s, show after $?" \
	"del 0, show before sync 1, yes, show after 0"

# An operator's quarantine is the one edit syncs keep.
run CTL -j backend set 198.51.100.10:80 192.0.2.12:8080 --state quarantined
set_rc=$rc
s=$(synced)
assert_eq quarantine_survives_sync \
	"$set_rc $s $(CTL -j service show 198.51.100.10:80 | jq -r '.backends[] | select(.ip == "192.0.2.12") | .state')" "0 yes quarantined"
out=$(in_client "$T" connect 198.51.100.10:80 -n 10)
assert_eq quarantined_gets_nothing "$(cnt "$out" 192.0.2.12:8080) $(cnt "$out" 192.0.2.11:8080) $(cnt "$out" errors)" "0 10 0"
CTL backend set 198.51.100.10:80 192.0.2.12:8080 --state active >/dev/null 2>&1

# ---- writers take turns: the pin directory's lock ----
# Every edit reads the maps, plans (new backend ids from what it read) and
# writes. ferryctl editing two services at once, two edits of each per
# round: without one writer at a time they pick the same new ids and
# overwrite each other's backend entries (a service lists the other's
# backends), and two edits of one service lose one of the two.
RACE_N=20	# backends per service: RACE_N / 2 rounds of 4 edits
race_a=198.51.100.40:80 race_b=198.51.100.41:80
CTL service add race-a "$race_a" >/dev/null && CTL service add race-b "$race_b" >/dev/null; verdict race_services_added
race_failed=0
for r in $(seq 0 $((RACE_N / 2 - 1))); do
	pids=()
	for i in $((2 * r + 1)) $((2 * r + 2)); do
		CTL backend add "$race_a" "192.0.2.$((100 + i)):8080" >/dev/null 2>>"$TMP/race.err" &
		pids+=($!)
		CTL backend add "$race_b" "192.0.2.$((100 + i)):8081" >/dev/null 2>>"$TMP/race.err" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || race_failed=$((race_failed + 1))
	done
done
assert_eq race_every_edit_ok "$race_failed $(head -c 300 "$TMP/race.err")" "0 "
race_backends() { CTL -j service show "$1" | jq -r '.backends[] | "\(.ip):\(.port)"' | sort; }
race_own() {	# name, service, its backends' port: exactly its RACE_N backends
	local got want
	got=$(race_backends "$2")
	want=$(for i in $(seq 1 "$RACE_N"); do echo "192.0.2.$((100 + i)):$3"; done | sort)
	assert_eq "$1" "$(grep -c . <<<"$got") listed, $(grep -c ":$3\$" <<<"$got") own, $(grep -vc ":$3\$" <<<"$got") foreign, exact $([ "$got" = "$want" ] && echo yes || echo no)" \
		"$RACE_N listed, $RACE_N own, 0 foreign, exact yes"
}
race_own race_a_lists_its_backends "$race_a" 8080
race_own race_b_lists_its_backends "$race_b" 8081
race_ids=$( (CTL -j service show "$race_a"; CTL -j service show "$race_b") | jq -r '.backends[].id' | sort -n)
assert_eq race_backend_ids_unshared "$(grep -c . <<<"$race_ids") ids, $(uniq -d <<<"$race_ids" | grep -c .) shared" "$((2 * RACE_N)) ids, 0 shared"
assert_eq race_backend_counts "$(CTL -j service list | jq -r --arg a "$race_a/tcp" --arg b "$race_b/tcp" \
	'[.[] | select(.service == $a or .service == $b) | .backend_count] | join(" ")')" "$RACE_N $RACE_N"

# An edit waits for the lock (flock(1) on the pin directory takes it as a
# writer does) and lands once it is free; one that cannot get it in 5 s
# gives up naming the directory, having written nothing.
hold_lock() {	# seconds, marker: hold the lock in the background ($holder)
	rm -f "$2"
	flock "$PIN" -c "touch '$2'; sleep $1" &
	holder=$!
	wait_for 200 test -e "$2"
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
hold_lock 1 "$TMP/held"
t0=$(now_ms)
run CTL backend add "$race_a" 192.0.2.200:8080
waited=$(($(now_ms) - t0))
wait "$holder"
[ "$rc" = 0 ] && [ "$waited" -ge 800 ] && race_backends "$race_a" | grep -qx 192.0.2.200:8080; verdict edit_waits_for_lock
hold_lock 8 "$TMP/held"
run CTL backend add "$race_a" 192.0.2.201:8080
kill_tree "$holder"
wait "$holder"
[ "$rc" = 1 ] && grep -q "lock .*'$PIN'" <<<"$err" && ! race_backends "$race_a" | grep -qx 192.0.2.201:8080; verdict edit_gives_up_naming_pin_dir
# A teardown waits for a writer mid-apply the same way, and gives up
# having removed nothing.
hold_lock 8 "$TMP/held"
run CTL teardown
kill_tree "$holder"
wait "$holder"
[ "$rc" = 1 ] && grep -q "lock .*'$PIN'" <<<"$err" && [ -e "$PIN/ferry_svc_v1" ] && [ -d "$PIN/links" ]; verdict teardown_gives_up_while_locked
# ferryd's sync waits too: held, a SIGHUP's sync does not finish until released.
hold_lock 1.5 "$TMP/held"
before=$(syncs)
kill -HUP "$FERRYD_PID"
sleep 0.7
mid=$(syncs)
wait "$holder"
wait_for 200 synced_since "$before"; verdict ferryd_sync_after_lock_released
assert_eq ferryd_sync_waits_for_lock "$mid" "$before"
CTL service del "$race_a" >/dev/null && CTL service del "$race_b" >/dev/null; verdict race_services_deleted

# ---- teardown, plain and JSON ----
n_links=$(CTL -j status | jq '.links | length')
run CTL -j teardown
[ "$rc" = 0 ] && is_json "$out" && [ "$n_links" -gt 0 ] && [ "$(jq -r '.links_detached' <<<"$out")" = "$n_links" ] &&
	[ "$(jq -r '.pins_removed > 0' <<<"$out")" = true ]; verdict teardown_json
[ ! -e "$PIN" ] && [ "$(attached)" = 0 ]; verdict teardown_removed
ferryd_stop
ferryd_start "$REG" || echo "FAIL ferryd_restart_after_teardown"
# Another program's pin in ferry's directory: ferry's pins go, that one stays.
bpftool map create "$PIN/other_arr" type array key 4 value 4 entries 1 name other_arr
run CTL teardown
[ "$rc" = 0 ] && grep -qE "^teardown $PIN: $n_links links detached, [0-9]+ pins removed$" <<<"$out"; verdict teardown_plain
[ -e "$PIN/other_arr" ] && [ -z "$(find "$PIN" -name 'ferry_*')" ] && [ ! -e "$PIN/links" ] && [ "$(attached)" = 0 ]; verdict teardown_only_ferry_pins
rm -f "$PIN/other_arr"
ferryd_stop
