#!/usr/bin/env bash
# Runs every libFuzzer target in $BUILD/fuzz (tests/fuzz/fuzz_NAME.c) from its
# seed corpus tests/fuzz/corpus/NAME, with tests/fuzz/NAME.dict if there is
# one and the libFuzzer flags in tests/fuzz/NAME.options (one a line, after
# the default -max_len=4096: a later flag wins). By default a fixed number of inputs from a fixed seed
# (FERRY_FUZZ_RUNS, 30000: what make check runs, the same inputs each time);
# with FERRY_FUZZ_SECONDS, that long each (make fuzz: 300). Prints "PASS
# fuzz_NAME" or "FAIL fuzz_NAME" with the input that crashed, kept under
# $FERRY_FUZZ_ARTIFACTS (default: a temporary directory, printed).
#
# New inputs found go to a temporary directory, not to the seed corpus: the
# committed corpus changes only by hand (copy a find worth keeping into it).
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/ferry-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
art=${FERRY_FUZZ_ARTIFACTS:-}
[ -n "$art" ] || art=$(mktemp -d /tmp/ferry-fuzz-crash.XXXXXX)
mkdir -p "$art"
if [ -n "${FERRY_FUZZ_SECONDS:-}" ]; then
	budget=(-max_total_time="$FERRY_FUZZ_SECONDS")
else
	budget=(-runs="${FERRY_FUZZ_RUNS:-30000}" -seed=1)
fi
found=0 crashed=0
for t in "$BUILD"/fuzz/fuzz_*; do
	[ -x "$t" ] || continue
	found=1
	name=$(basename "$t")
	short=${name#fuzz_}
	dict=() opts=(-max_len=4096)
	[ -f "tests/fuzz/$short.dict" ] && dict=(-dict="tests/fuzz/$short.dict")
	[ -f "tests/fuzz/$short.options" ] && mapfile -t -O 1 opts <"tests/fuzz/$short.options"
	mkdir -p "$work/$short"
	# The first corpus directory is where new inputs go: ours, not the seeds.
	if "$t" "${budget[@]}" "${dict[@]}" "${opts[@]}" -artifact_prefix="$art/$name-" \
		"$work/$short" "tests/fuzz/corpus/$short" >"$work/$name.log" 2>&1; then
		echo "PASS $name ($(sed -n "s/^Done \([0-9]*\) runs.*/\1/p" "$work/$name.log" | tail -1) inputs, no crash)"
	else
		crashed=1
		grep -E 'ERROR|runtime error|SUMMARY|abort|parsed but' "$work/$name.log" | head -20
		echo "FAIL $name (crash input: $(ls "$art"/"$name"-* 2>/dev/null | head -1))"
	fi
done
[ $found = 1 ] || { echo "FAIL fuzz (no targets built in $BUILD/fuzz)"; exit 1; }
[ $crashed = 0 ] && [ -z "${FERRY_FUZZ_ARTIFACTS:-}" ] && rm -rf "$art"
exit $crashed
