#!/usr/bin/env bash
# Fork benchmark: what a profiled process's forked children pay for the
# probes fork copied into them. tests/workloads/bin/forker forks children
# for S seconds, each making K malloc+free pairs and exiting, and counts
# them; it runs alone and under `memwatch -p PID` for each binary given,
# interleaved, R rounds; the table gives forks per run and their median.
#
#   tools/bench-fork.sh [--rounds R] [--seconds S] [--mallocs K] [MEMWATCH...]
#
# MEMWATCH defaults to ./memwatch; give an older build too to compare. As
# root, after `make memwatch workloads`.
set -euo pipefail

ROUNDS=3
SECONDS_=5
MALLOCS=10000
while (($#)); do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--seconds) SECONDS_=$2; shift 2 ;;
	--mallocs) MALLOCS=$2; shift 2 ;;
	*) break ;;
	esac
done
BINS=("$@")
((${#BINS[@]})) || BINS=(./memwatch)
FORKER=tests/workloads/bin/forker
TMP=$(mktemp -d)
MW=
trap '[ -n "$MW" ] && kill "$MW" 2>/dev/null; rm -rf "$TMP"' EXIT

# One run: forks counted with memwatch binary $1 attached ("none": alone).
run() {
	"$FORKER" --wait --seconds "$SECONDS_" --mallocs "$MALLOCS" >"$TMP/out" &
	local w=$! pid=
	until pid=$(awk '/^ready/ { print $2 }' "$TMP/out") && [ -n "$pid" ]; do sleep 0.05; done
	if [ "$1" != none ]; then
		"$1" -p "$pid" -o "$TMP/p.pb.gz" 2>"$TMP/err" &
		MW=$!
		until grep -q "profiling pid" "$TMP/err"; do sleep 0.05; done
	fi
	kill -USR1 "$pid"
	wait "$w"
	if [ -n "$MW" ]; then
		kill -INT "$MW"
		wait "$MW" || true
		MW=
	fi
	sed -n 's/^forks=//p' "$TMP/out"
}

CONFIGS=(none "${BINS[@]}")
printf "%-28s %s\n" configuration "forks per ${SECONDS_} s, each child ${MALLOCS} malloc+free pairs"
for ((r = 1; r <= ROUNDS; r++)); do
	for c in "${CONFIGS[@]}"; do
		n=$(run "$c")
		printf "%-28s round %d: %s\n" "$c" "$r" "$n"
		echo "$n" >>"$TMP/forks.$(echo "$c" | tr / _)"
	done
done
for c in "${CONFIGS[@]}"; do
	printf "%-28s median %s\n" "$c" "$(sort -n "$TMP/forks.$(echo "$c" | tr / _)" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
done
