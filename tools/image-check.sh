#!/usr/bin/env bash
# Runs the node image (deploy/Dockerfile) the way the DaemonSet does, on a scale that touches
# nothing of the host's: `make image` calls it after the build; IMAGE is the tag.
#
#   - both binaries start and every library they link is in the image;
#   - ferryctl checks the example registry, deploy/examples/registry.json (what `make demo` runs
#     on; JSON only, no node state);
#   - ferryd, privileged as in the DaemonSet with the host's bpffs and cgroup2 mounted in,
#     reconciles that registry once into a throw-away child cgroup and pin dir, and ferryctl
#     in a second container reads from the pinned state that the sync succeeded; then ferryctl
#     teardown.
#
# Root, as the tests: it makes a cgroup and a bpffs pin dir (mounting bpffs if the host has
# none there, as tests/run.sh does).
#
# As a test does, with tests/integration/lib.sh: a child cgroup ($CG) and a bpffs pin dir ($PIN)
# of its own, removed on any exit (world_down, after ferryctl in the image tore down what its
# ferryd attached); check and silently for each step. No network for the containers
# (--network none), no interface touched.
set -u
IMAGE=${1:?usage: tools/image-check.sh IMAGE}
source "$(dirname "$0")/../tests/integration/lib.sh"
REG="$ROOT/deploy/examples/registry.json"
PRIV=()

img_teardown() {
	[ -d "$PIN" ] && docker run --rm --network none "${PRIV[@]}" -v /sys/fs/bpf:/sys/fs/bpf \
		--entrypoint /usr/bin/ferryctl "$IMAGE" --bpffs "$PIN" teardown >/dev/null 2>&1
	world_down
}
trap img_teardown EXIT

fail=0
step() {	# name, command...: check, counting failures for the exit status
	local out
	out=$(check "$1" silently "${@:2}")
	echo "$out"
	grep -q '^FAIL ' <<<"$out" && fail=1
}

run() { docker run --rm --network none "$@"; }

# As privileged as the DaemonSet; where the runtime cannot grant every capability (a sandbox
# that is itself a container), the ones ferryd uses: BPF and mounts under SYS_ADMIN, links
# and XDP under NET_ADMIN, and bpf(2) past Docker's default seccomp profile.
PRIV=(--privileged)
if ! docker run --rm --network none --privileged --entrypoint /bin/true "$IMAGE" >/dev/null 2>&1; then
	PRIV=(--cap-add SYS_ADMIN --cap-add NET_ADMIN --security-opt seccomp=unconfined
	      --security-opt apparmor=unconfined)
	echo "note: --privileged refused here; running with ${PRIV[*]}"
fi

[ "$(id -u)" = 0 ] || { echo "image-check: run as root (a cgroup and a bpffs pin dir of its own)" >&2; exit 1; }
[ -n "$CG2" ] || { echo "image-check: no cgroup2 mount in /proc/mounts" >&2; exit 1; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpffs /sys/fs/bpf
mkdir "$CG" || exit 1

step "ferryd --version" run "$IMAGE" --version
step "ferryctl --version" run --entrypoint /usr/bin/ferryctl "$IMAGE" --version
step "every linked library present" run --entrypoint /bin/sh "$IMAGE" -c \
	'ldd /usr/bin/ferryd /usr/bin/ferryctl > /tmp/ldd && ! grep "not found" /tmp/ldd'
step "ferryctl registry check (deploy/examples/registry.json)" run -v "$REG:/etc/ferry/registry.json:ro" \
	--entrypoint /usr/bin/ferryctl "$IMAGE" registry check /etc/ferry/registry.json
step "ferryd reconciles once (privileged, child cgroup)" run "${PRIV[@]}" \
	-v /sys/fs/bpf:/sys/fs/bpf -v "$CG2:$CG2" -v "$REG:/etc/ferry/registry.json:ro" "$IMAGE" \
	--registry /etc/ferry/registry.json --bpffs "$PIN" --cgroup "$CG" --state-dir /tmp/ferry \
	--metrics-addr off --once
step "ferryctl reads a good sync from the pinned state" run "${PRIV[@]}" -v /sys/fs/bpf:/sys/fs/bpf \
	--entrypoint /bin/sh "$IMAGE" -c "/usr/bin/ferryctl --bpffs '$PIN' -j status | grep -Eq '\"last_ok\": *true'"
step "ferryctl teardown" run "${PRIV[@]}" -v /sys/fs/bpf:/sys/fs/bpf \
	--entrypoint /usr/bin/ferryctl "$IMAGE" --bpffs "$PIN" teardown
[ $fail = 0 ] && echo "image-check: ok ($IMAGE)"
exit $fail
