#!/usr/bin/env bash
# `make bench`: run the benchmarks named on the command line, or all of them.
#
#   tools/bench/run.sh [NAME...]      NAME: a tools/bench/NAME.sh script
#                                     (socklb, ...); default "all"
#
# Each benchmark is one script that sources tools/bench/lib.sh, builds its
# own throw-away world (cgroups, netns, pins with a unique suffix), removes it
# on any exit, and prints its results as a markdown table. A new benchmark is
# a new tools/bench/<name>.sh; nothing here needs to change.
set -u
BUILD=${BUILD:-build}
export BUILD
DIR=$(cd "$(dirname "$0")" && pwd)

all_benches() {
	local f
	for f in "$DIR"/*.sh; do
		case "$(basename "$f")" in run.sh|lib.sh) continue ;; esac
		basename "$f" .sh
	done
}

names=("$@")
[ ${#names[@]} -eq 0 ] && names=(all)
if [ "${names[0]}" = all ]; then
	mapfile -t names < <(all_benches)
fi

rc=0
for n in "${names[@]}"; do
	if [ ! -f "$DIR/$n.sh" ] || [ "$n" = run ] || [ "$n" = lib ]; then
		echo "run.sh: unknown benchmark '$n' (have: $(all_benches | tr '\n' ' '))" >&2
		exit 2
	fi
	echo "=== bench $n ==="
	bash "$DIR/$n.sh" || { echo "bench $n failed" >&2; rc=1; }
done
exit $rc
