#!/usr/bin/env bash
# ferryd sees registry replacements without a SIGHUP or the periodic resync
# (--resync 0 here): a Kubernetes ConfigMap volume, updated by the kubelet
# swapping the '..data' symlink (no event names registry.json), and a plain
# file renamed over. A bad replacement leaves the last good state applied,
# with an error naming file:line:col.
source "$(dirname "$0")/lib.sh"

command -v jq >/dev/null || skip_all "jq missing (make deps installs it)"
world_up
CTL() { "$B/ferryctl" --bpffs "$PIN" "$@"; }

reg() {	# backend IP...: a registry with one service (web) and those backends
	local ip sep="" bes=""
	for ip in "$@"; do
		bes="$bes$sep{\"ip\": \"$ip\", \"port\": 8080}"
		sep=", "
	done
	printf '{"services": [\n  {"name": "web", "vip": "198.51.100.10", "port": 80,\n   "backends": [%s]}\n]}\n' "$bes"
}
backends() { CTL -j service show 198.51.100.10:80 2>/dev/null | jq -r '[.backends[].ip] | sort | join(" ")'; }
has_backends() { [ "$(backends)" = "$1" ]; }
status_error() { CTL -j status 2>/dev/null | jq -r '.error // ""'; }
failed_with() { [ "$(CTL -j status | jq -r .last_ok)" = false ] && grep -q -- "$1" <<<"$(status_error)"; }
check_ok() {	# name, command...: PASS/FAIL with what was seen
	local name=$1; shift
	if "$@"; then echo "PASS $name"; else echo "FAIL $name: backends '$(backends)', error '$(status_error)'"; fi
}

# The layout the kubelet makes for a ConfigMap volume.
CM="$TMP/configmap"
mkdir -p "$CM/..2026_01_01_00_00_00.1"
reg 192.0.2.11 >"$CM/..2026_01_01_00_00_00.1/registry.json"
ln -s ..2026_01_01_00_00_00.1 "$CM/..data"
ln -s ..data/registry.json "$CM/registry.json"

swap() {	# version dir name, registry text on stdin: the kubelet's atomic update
	local old
	old=$(readlink "$CM/..data")
	mkdir "$CM/$1"
	cat >"$CM/$1/registry.json"
	ln -s "$1" "$CM/..data_tmp"
	mv -T "$CM/..data_tmp" "$CM/..data"
	rm -rf "${CM:?}/$old"
}

ferryd_start "$CM/registry.json" --resync 0 || { echo "FAIL ferryd_start"; exit 1; }
check_ok configmap_initial has_backends 192.0.2.11

reg 192.0.2.11 192.0.2.12 | swap ..2026_01_01_00_00_00.2
check_ok configmap_symlink_swap wait_for 200 has_backends "192.0.2.11 192.0.2.12"

# A bad update (invalid UTF-8 in the name): refused at its place, the
# previous state stays.
printf '{"services": [\n  {"name": "caf\xe9", "vip": "198.51.100.10", "port": 80}\n]}\n' |
	swap ..2026_01_01_00_00_00.3
check_ok configmap_bad_update_refused wait_for 200 failed_with "registry.json:2:16: invalid UTF-8"
check_ok configmap_bad_update_keeps_state has_backends "192.0.2.11 192.0.2.12"

reg 192.0.2.13 | swap ..2026_01_01_00_00_00.4
check_ok configmap_recovers wait_for 200 has_backends 192.0.2.13

# Same size, same inode number is possible after a delete: a swap to a
# registry of identical length still syncs (mtime/inode differ).
reg 192.0.2.14 | swap ..2026_01_01_00_00_00.5
check_ok configmap_same_size_swap wait_for 200 has_backends 192.0.2.14

kill_tree "$FERRYD_PID"
wait "$FERRYD_PID" 2>/dev/null
FERRYD_PID=""

# A plain file replaced by rename, the editors' way: still seen.
PLAIN="$TMP/plain"
mkdir -p "$PLAIN"
reg 192.0.2.11 >"$PLAIN/registry.json"
ferryd_start "$PLAIN/registry.json" --resync 0 || { echo "FAIL ferryd_start plain"; exit 1; }
reg 192.0.2.12 >"$PLAIN/.registry.json.tmp"
mv "$PLAIN/.registry.json.tmp" "$PLAIN/registry.json"
check_ok plain_rename wait_for 200 has_backends 192.0.2.12
# written in place
reg 192.0.2.13 >"$PLAIN/registry.json"
check_ok plain_write_in_place wait_for 200 has_backends 192.0.2.13
