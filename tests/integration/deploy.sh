#!/usr/bin/env bash
# deploy/ against the code it deploys: every manifest parses; every ferryd and
# ferryctl flag the manifests use exists; the DaemonSet, the teardown and the
# ConfigMap agree on paths and keys; the ConfigMap's registry is the example
# and ferryd takes it; `make install` puts runnable binaries where the
# DaemonSet runs them; the image (deploy/Dockerfile) installs every library
# they link. Nothing is deployed or built into an image here: no cluster, no
# BPF, no root, no Docker needed (make image builds and runs the image).
source "$(dirname "$0")/lib.sh"

DEP="$ROOT/deploy"
PY=/usr/bin/python3	# Debian's, with python3-yaml (make deps)
$PY -c 'import yaml' 2>/dev/null || skip_all "python3-yaml missing (make deps installs it)"

# yq-like: one field of a manifest, by a Python expression over the document.
field() {	# file, expression over d (the first document)
	$PY - "$1" "$2" <<'PYEOF'
import sys, yaml
d = next(yaml.safe_load_all(open(sys.argv[1])))
v = eval(sys.argv[2], {"d": d})
print("\n".join(map(str, v)) if isinstance(v, list) else v)
PYEOF
}

bad=""
for f in "$DEP"/kubernetes/*.yaml "$DEP"/prometheus/*.yml; do
	$PY -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$f" 2>"$TMP/yaml.err" ||
		bad="$bad $(basename "$f"): $(tail -1 "$TMP/yaml.err")"
done
assert_eq manifests_parse "$bad" ""
check dashboard_json_parses silently jq -e . "$DEP/grafana/ferry-dashboard.json"

DS="$DEP/kubernetes/ferry-daemonset.yaml"
C='d["spec"]["template"]["spec"]["containers"][0]'
cmd=$(field "$DS" "$C[\"command\"]")
# Every --flag the DaemonSet gives ferryd is one ferryd documents.
help=$("$B/ferryd" --help 2>&1)
missing=""
for fl in $(grep -o -- '^--[a-z0-9-]*' <<<"$cmd"); do
	grep -q -- "$fl\b" <<<"$help" || missing="$missing $fl"
done
assert_eq daemonset_flags_exist "$missing" ""
arg() { awk -v k="$1" 'p { print; exit } $0 == k { p = 1 }' <<<"$cmd"; }	# the value after flag $1
bpffs=$(arg --bpffs)
mport=$(arg --metrics-addr); mport=${mport##*:}
assert_eq daemonset_runs_usr_bin_ferryd "$(head -1 <<<"$cmd")" /usr/bin/ferryd
assert_eq probes_on_metrics_port "$(field "$DS" "[p['containerPort'] for p in $C['ports'] if p['name'] == 'metrics']")" "$mport"
assert_eq probes_paths "$(field "$DS" "$C['livenessProbe']['httpGet']['path'] + ' ' + $C['readinessProbe']['httpGet']['path']")" "/healthz /readyz"

# The registry: the ConfigMap's name and key are what the DaemonSet mounts and reads.
CM="$DEP/kubernetes/ferry-registry-configmap.yaml"
mounted=$(field "$DS" "[v['configMap']['name'] for v in d['spec']['template']['spec']['volumes'] if 'configMap' in v]")
assert_eq configmap_is_the_mounted_one "$(field "$CM" 'd["metadata"]["name"]')" "$mounted"
assert_eq configmap_key_is_the_registry_file "$(field "$CM" 'list(d["data"])')" "$(basename "$(arg --registry)")"
field "$CM" 'd["data"]["registry.json"]' >"$TMP/registry.json"
check configmap_registry_is_the_example cmp -s <(jq -S . "$TMP/registry.json") <(jq -S . "$DEP/examples/registry.json")
check configmap_registry_checks silently "$B/ferryctl" --bpffs "$TMP/no-node" registry check "$TMP/registry.json"

# The teardown removes what the DaemonSet pinned, and ferryctl knows its flags.
TD="$DEP/kubernetes/ferry-teardown.yaml"
tcmd=$(field "$TD" "$C[\"command\"][-1]")
check teardown_same_pin_dir grep -q -- "--bpffs $bpffs teardown" <<<"$tcmd"
check ferryctl_has_teardown grep -q '^  teardown' <("$B/ferryctl" --help 2>&1)

# make install: the binaries the image needs, where the DaemonSet runs them.
make -s -C "$ROOT" BUILD="$BUILD" install DESTDIR="$TMP/root" PREFIX=/usr >"$TMP/install.log" 2>&1
check install_puts_ferryd_and_ferryctl test -x "$TMP/root/usr/bin/ferryd" -a -x "$TMP/root/usr/bin/ferryctl"
check installed_ferryd_runs silently "$TMP/root/usr/bin/ferryd" --version

# The image's runtime stage installs every package that owns a library the binaries link (as
# built here): a library missing from it fails only when a node starts the pod. The list is the
# Dockerfile's RUNTIME_PKGS; package names are Debian 12's, so elsewhere the check is skipped.
runtime_pkgs=$(sed -n 's/^ARG RUNTIME_PKGS="\(.*\)"$/\1/p' "$DEP/Dockerfile" | tr -s ' \t' '\n\n')
libs=$(ldd "$B/ferryd" "$B/ferryctl" | awk '$3 ~ /^\// { print $3 }' | sort -u)
why=""
. /etc/os-release 2>/dev/null
if ! command -v dpkg >/dev/null || [ "${ID:-}" != debian ] || [ "${VERSION_ID:-}" != 12 ]; then
	why="not Debian 12 with dpkg: the image's package names are Debian 12's"
elif grep -q libasan <<<"$libs"; then
	why="$B is a sanitizer build (make check-sanitize), linking a runtime no image has"
fi
need=""
[ -n "$libs" ] || need=" (ldd found no library: are $B/ferryd and ferryctl built?)"
for lib in $libs; do
	[ -z "$why" ] || break
	pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1)
	[ -n "$pkg" ] || pkg=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1)
	[ "$pkg" = libc6 ] && continue		# the base image's own
	grep -qx "$pkg" <<<"$runtime_pkgs" || need="$need ${pkg:-no-package}($(basename "$lib"))"
done
if [ -n "$why" ]; then
	echo "SKIP image_installs_every_linked_library: $why"
else
	check dockerfile_names_runtime_packages test -n "$runtime_pkgs"
	assert_eq image_installs_every_linked_library "$need" ""
fi
