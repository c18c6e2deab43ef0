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
# Like the tests: a child cgroup and a bpffs pin dir of our own (unique suffix), removed on any
# exit; no network for the containers (--network none), no interface touched.
set -u
IMAGE=${1:?usage: tools/image-check.sh IMAGE}
cd "$(dirname "$0")/.."
SUF="img-$$-$RANDOM"
CG2=$(awk '$3=="cgroup2"{print $2; exit}' /proc/mounts)
CG="$CG2/ferry-$SUF"
PIN="/sys/fs/bpf/ferry-$SUF"
REG="$PWD/deploy/examples/registry.json"
fail=0

cleanup() {
	if [ -d "$PIN" ]; then
		docker run --rm --network none "${PRIV[@]}" -v /sys/fs/bpf:/sys/fs/bpf \
			--entrypoint /usr/bin/ferryctl "$IMAGE" --bpffs "$PIN" teardown >/dev/null 2>&1
		rm -rf "$PIN"
	fi
	[ -d "$CG" ] && rmdir "$CG" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() {	# name, command...
	local name=$1 out; shift
	if out=$("$@" 2>&1); then
		echo "ok   $name"
	else
		echo "FAIL $name"; tail -n 8 <<<"$out" | sed 's/^/     /'
		fail=1
	fi
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
