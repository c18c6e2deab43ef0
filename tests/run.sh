#!/usr/bin/env bash
# Runs every test: cmocka unit tests, BPF_PROG_TEST_RUN tests, then the
# integration scripts. Each reports "PASS name" / "FAIL name" / "SKIP name:
# reason" lines; the last line is "N passed, N failed, N skipped".
#
# A test that prints no verdict line fails, whatever its exit status; so
# does one still running after FERRY_TEST_TIMEOUT seconds (default 600): it
# gets SIGTERM (its traps clean up), SIGKILL 30 s later.
set -u
BUILD=${BUILD:-build}
export BUILD
cd "$(dirname "$0")/.."
# A fresh machine has no bpffs mounted; every test pins below /sys/fs/bpf.
if [ "$(id -u)" = 0 ] && ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpffs /sys/fs/bpf || echo "warning: cannot mount bpffs on /sys/fs/bpf"
fi
pass=0 fail=0 skip=0
failed_names=()
TEST_TIMEOUT=${FERRY_TEST_TIMEOUT:-600}
log=$(mktemp -d /tmp/ferry-test-log.XXXXXX)
cur=""	# the running test's timeout process
trap 'rm -rf "$log"' EXIT
# Stopped ourselves: stop the running test the way its timeout would.
trap '[ -n "$cur" ] && kill -TERM "$cur" 2>/dev/null && wait "$cur"; exit 130' INT TERM

tally() {	# reads a test's output, counts its verdict lines
	local line
	while IFS= read -r line; do
		printf '%s\n' "$line"
		case "$line" in
		PASS\ *) pass=$((pass + 1)) ;;
		FAIL\ *) fail=$((fail + 1)); failed_names+=("${line#FAIL }") ;;
		SKIP\ *) skip=$((skip + 1)) ;;
		esac
	done
}

run_one() {	# name, command...: a crash, a timeout, no verdict at all, or a non-zero
		# exit without FAIL lines counts as a failure
	local name=$1; shift
	local out="$log/$(echo "$name" | tr '/ ' '__').out" rc
	# In the background so that our INT/TERM trap runs while we wait.
	timeout --kill-after=30 "$TEST_TIMEOUT" "$@" >"$out" 2>&1 &
	cur=$!
	wait "$cur"
	rc=$?
	cur=""
	# 124: timeout sent SIGTERM; 137: the SIGKILL that follows it.
	local why="exit $rc"
	[ $rc -eq 124 ] || [ $rc -eq 137 ] && why="timed out after $TEST_TIMEOUT s"
	if ! grep -qE '^(PASS|FAIL|SKIP) ' "$out"; then
		cat "$out"
		echo "FAIL $name ($why, no verdicts)"
	else
		grep -vE '^(PASS|FAIL|SKIP) ' "$out" | tail -n 40
		grep -E '^(PASS|FAIL|SKIP) ' "$out"
		if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
			echo "FAIL $name ($why)"
		elif [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$out"; then
			echo "FAIL $name ($why)"
		fi
	fi
}

# cmocka per-test lines become PASS/FAIL/SKIP lines.
{
for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	case "$(basename "$t")" in
	test_bpf_*) run_one "$(basename "$t")" "$t" ;;
	# cmocka repeats failed and skipped names in its summary (and the summary
	# header looks like a name): translate names only, count each once.
	*) run_one "$(basename "$t")" bash -c '"$1" 2>&1 | sed -E "s/^\[       OK \] (.*)/PASS \1/; s/^\[  FAILED  \] ([^ ]+)$/FAIL \1/; s/^\[  SKIPPED \] ([^ ]+)$/SKIP \1/" | awk "!/^(PASS|FAIL|SKIP) / || !seen[\$0]++"; exit ${PIPESTATUS[0]}' _ "$t" ;;
	esac
done
# The fuzz targets, a fixed set of inputs each (tests/fuzz/run.sh); built
# sanitized whatever the build, so make check-sanitize leaves them to make
# check (FERRY_TEST_FUZZ=0).
if [ "${FERRY_TEST_FUZZ:-1}" = 0 ]; then
	echo "SKIP fuzz: run by make check (the targets are sanitized builds already)"
else
	run_one fuzz bash tests/fuzz/run.sh
fi
for t in tests/integration/*.sh; do
	[ -f "$t" ] || continue
	case "$(basename "$t")" in lib.sh) continue ;; esac
	run_one "$(basename "$t" .sh)" bash "$t"
done
} > "$log/all" 2>&1
tally < "$log/all"
if [ ${#failed_names[@]} -gt 0 ]; then
	echo "failed:"
	printf '  %s\n' "${failed_names[@]}"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
