#!/usr/bin/env bash
# Sample-loss benchmark: how many sampled allocations a starved consumer
# loses when the target's threads keep every CPU busy.
#
# memwatch -s 1 (a stack for every call, DWARF snapshots) runs
# `churn --threads T --pairs N` (tools/churn.c) as -- CMD, each round once
# per binary given (interleaved), and prints per run: samples, samples lost
# to a full ring, the lost share, the target's ns per malloc+free pair, and
# memwatch's CPU seconds; then the median lost share per binary.
#
#   tools/bench-loss.sh [--rounds R] [--threads T] [--pairs N] [MEMWATCH...]
#
# MEMWATCH defaults to ./memwatch; give an older build as a second binary to
# compare. As root, after `make memwatch .output/churn`.
set -euo pipefail

ROUNDS=3
THREADS=8
PAIRS=30000
while (($#)); do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--pairs) PAIRS=$2; shift 2 ;;
	*) break ;;
	esac
done
BINS=("$@")
((${#BINS[@]})) || BINS=(./memwatch)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

printf "%-28s %5s %9s %9s %7s %12s %7s\n" binary round samples lost lost% ns/pair cpu_s
for ((r = 1; r <= ROUNDS; r++)); do
	for b in "${BINS[@]}"; do
		"$b" -s 1 -o "$TMP/p.pb.gz" -- .output/churn --threads "$THREADS" --pairs "$PAIRS" >"$TMP/out" 2>"$TMP/err"
		ns=$(sed -n 's/^ns_per_pair=//p' "$TMP/out")
		samples=$(sed -n 's/^memwatch: done after .*: \([0-9]*\) samples.*/\1/p' "$TMP/err")
		lost=$(sed -n 's/^memwatch: losses: ring buffer full \([0-9]*\),.*/\1/p' "$TMP/err")
		cpu=$(sed -n 's/^memwatch: own cost: \([0-9.]*\) s CPU.*/\1/p' "$TMP/err")
		share=$(awk -v s="$samples" -v l="$lost" 'BEGIN { printf "%.1f", s + l ? 100 * l / (s + l) : 0 }')
		printf "%-28s %5d %9d %9d %7s %12s %7s\n" "$b" "$r" "$samples" "$lost" "$share" "$ns" "$cpu"
		echo "$share" >>"$TMP/share.$(echo "$b" | tr / _)"
	done
done
for b in "${BINS[@]}"; do
	f="$TMP/share.$(echo "$b" | tr / _)"
	printf "%s: median lost %s%% of samples over %d rounds\n" "$b" "$(sort -n "$f" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')" "$ROUNDS"
done
