#!/usr/bin/env bash
# Kernel-side cost benchmark: what the page-fault and syscall tracepoints
# cost a page-fault-heavy workload and a malloc-heavy one.
#
# Workloads (each waits with --wait, memwatch attaches with -p, only the
# loop is timed):
#   faulter   tools/faulter.c: touch 16 MiB page by page, madvise it away,
#             again (ns per page fault, the madvise included)
#   churn     tools/churn.c: malloc+free pairs of 64 bytes (ns per pair)
# Configurations:
#   none        no memwatch
#   floor       memwatch -p PID --pages-only --empty-probes (the same
#               tracepoints with empty programs: what attaching them costs)
#   pages-only  memwatch -p PID --pages-only (tracepoints only)
#   both        memwatch -p PID (tracepoints and the allocator uprobes)
# Then the fault program's own cost, which run-to-run noise on a shared VM
# hides: with kernel.bpf_stats_enabled, the run time per call of on_fault
# under floor and under pages-only while faulter runs (--stats-rounds
# rounds, interleaved); the difference is what memwatch's fault program
# adds to each fault, beyond the tracepoint and the stats' own timing.
#
# Every (workload, configuration) runs once per round, interleaved; the
# table gives medians over the rounds with their range, the ratio of the
# medians to none, the same ratio taken within each round (median and
# range), and memwatch's own CPU time over its life (start-up included) per
# second of it. churn runs 50x the pairs where no uprobe slows it down, so
# that every run lasts long enough to time.
#
#   tools/bench-pages.sh [--rounds R] [--fault-rounds N] [--pairs N]
#                        [--stats-rounds S]
#
# As root, after `make memwatch .output/churn .output/faulter`.
set -euo pipefail

ROUNDS=7
FAULT_ROUNDS=600
PAIRS=2000000
STATS_ROUNDS=5
while (($#)); do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--fault-rounds) FAULT_ROUNDS=$2; shift 2 ;;
	--pairs) PAIRS=$2; shift 2 ;;
	--stats-rounds) STATS_ROUNDS=$2; shift 2 ;;
	-h | --help)
		sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) echo "bench-pages.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MEMWATCH=${MEMWATCH:-$ROOT/memwatch}
OUT=$ROOT/.output
[ "$(id -u)" -eq 0 ] || { echo "bench-pages.sh: run as root" >&2; exit 1; }
for f in "$MEMWATCH" "$OUT/churn" "$OUT/faulter"; do
	[ -x "$f" ] || { echo "bench-pages.sh: $f missing: make memwatch .output/churn .output/faulter" >&2; exit 1; }
done
TMP=$(mktemp -d)
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
trap 'rm -rf "$TMP"; sysctl -q kernel.bpf_stats_enabled="$STATS_WAS"' EXIT

CONFIGS=(none floor pages-only both)
WORKLOADS=(faulter churn)

workload_cmd() {
	case $1 in
	faulter) echo "$OUT/faulter --rounds $FAULT_ROUNDS --wait" ;;
	churn) echo "$OUT/churn --pairs $([ "$2" = both ] && echo "$PAIRS" || echo $((PAIRS * 50))) --wait" ;;
	esac
}

config_flags() {
	case $1 in
	floor) echo "--pages-only --empty-probes" ;;
	pages-only) echo "--pages-only" ;;
	both) echo "" ;;
	esac
}

# attach_memwatch PID CONFIG: starts memwatch on PID and waits until it has
# attached; its pid in MW_PID.
attach_memwatch() {
	# shellcheck disable=SC2046
	"$MEMWATCH" -p "$1" $(config_flags "$2") -o "$TMP/p.pb.gz" 2>"$TMP/mw.err" &
	MW_PID=$!
	until grep -q '^memwatch: profiling pid' "$TMP/mw.err" 2>/dev/null; do
		kill -0 "$MW_PID" 2>/dev/null || { cat "$TMP/mw.err" >&2; exit 1; }
		sleep 0.05
	done
}

# run WORKLOAD CONFIG: prints "<ns> <memwatch cpu s per s>" (cpu - for none).
run_one() {
	local wl=$1 cfg=$2 pid line mw_pid=
	coproc WL { $(workload_cmd "$wl" "$cfg") 2>&1; }
	read -r line <&"${WL[0]}"
	pid=${line#ready }
	if [ "$cfg" != none ]; then
		attach_memwatch "$pid" "$cfg"
		mw_pid=$MW_PID
	fi
	kill -USR1 "$pid"
	read -r line <&"${WL[0]}"
	wait "$WL_PID" 2>/dev/null || true
	local ns=${line#*=} cpu=-
	if [ -n "$mw_pid" ]; then
		wait "$mw_pid" || true
		cpu=$(sed -n 's/^memwatch: own cost: \([0-9.]*\) s CPU over \([0-9.]*\) s.*/\1 \2/p' "$TMP/mw.err" |
			awk '{ printf "%.4f", ($2 > 0 ? $1 / $2 : 0) }')
	fi
	echo "$ns ${cpu:--}"
}

for ((r = 1; r <= ROUNDS; r++)); do
	for wl in "${WORKLOADS[@]}"; do
		for cfg in "${CONFIGS[@]}"; do
			res=$(run_one "$wl" "$cfg")
			echo "bench-pages.sh: round $r/$ROUNDS $wl $cfg: ${res% *} ns, memwatch CPU ${res#* } s/s" >&2
			echo "$r $res" >>"$TMP/$wl.$cfg"
		done
	done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.1f-%.1f", lo, hi }'; }
# per_round WL CFG: CFG's time over none's, round by round, one per line.
per_round() { join <(sort -k1,1 "$TMP/$1.none") <(sort -k1,1 "$TMP/$1.$2") | awk '{ print $4 / $2 }'; }

echo "Command: \`tools/bench-pages.sh --rounds $ROUNDS --fault-rounds $FAULT_ROUNDS --pairs $PAIRS\`; $(date -u +%F), kernel $(uname -r), $(nproc) CPUs; medians of $ROUNDS rounds"
echo
echo "| workload | configuration | time per op (median) | range | vs none (medians) | vs none, per round: median (range) | memwatch CPU |"
echo "|---|---|--:|--:|--:|--:|--:|"
for wl in "${WORKLOADS[@]}"; do
	unit=$([ "$wl" = faulter ] && echo "ns/fault" || echo "ns/pair")
	base=$(cut -d' ' -f2 "$TMP/$wl.none" | median)
	for cfg in "${CONFIGS[@]}"; do
		ns=$(cut -d' ' -f2 "$TMP/$wl.$cfg" | median)
		rng=$(cut -d' ' -f2 "$TMP/$wl.$cfg" | range)
		cpu="-" rounds="-"
		if [ "$cfg" != none ]; then
			[ "$cfg" = floor ] ||
				cpu=$(cut -d' ' -f3 "$TMP/$wl.$cfg" | median | awk '{ printf "%.1f%% of a core", $1 * 100 }')
			rounds=$(awk -v m="$(per_round "$wl" "$cfg" | median)" -v r="$(per_round "$wl" "$cfg" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%+.1f%% to %+.1f%%", (lo - 1) * 100, (hi - 1) * 100 }')" \
				'BEGIN { printf "%+.1f%% (%s)", (m - 1) * 100, r }')
		fi
		awk -v wl="$wl" -v cfg="$cfg" -v ns="$ns" -v rng="$rng" -v base="$base" -v unit="$unit" -v cpu="$cpu" -v rounds="$rounds" \
			'BEGIN { printf "| %s | %s | %.1f %s | %s | %+.1f%% | %s | %s |\n", wl, cfg, ns, unit, rng, (ns / base - 1) * 100, rounds, cpu }'
	done
done

# on_fault's (run count, run ns) so far: the busiest program of that name.
fault_prog_stats() {
	bpftool prog show -j | python3 -c '
import json, sys
progs = [p for p in json.load(sys.stdin) if p.get("name") == "on_fault"]
best = max(progs, key=lambda p: p.get("run_cnt", 0), default={})
print(best.get("run_cnt", 0), best.get("run_time_ns", 0))'
}

# stats_run CONFIG: ns per run of on_fault over 2 s of faulter's loop.
stats_run() {
	local cfg=$1 pid f_pid mw_pid a b
	"$OUT/faulter" --rounds "$FAULT_ROUNDS" --wait >"$TMP/faulter.out" 2>&1 &
	f_pid=$!
	until pid=$(sed -n 's/^ready //p' "$TMP/faulter.out") && [ -n "$pid" ]; do
		kill -0 "$f_pid" 2>/dev/null || { cat "$TMP/faulter.out" >&2; exit 1; }
		sleep 0.05
	done
	attach_memwatch "$pid" "$cfg"
	mw_pid=$MW_PID
	kill -USR1 "$pid"
	sleep 0.5
	a=$(fault_prog_stats)
	sleep 2
	b=$(fault_prog_stats)
	wait "$f_pid" || true
	wait "$mw_pid" || true
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); n = y[1] - x[1]
		if (n > 0) printf "%.1f\n", (y[2] - x[2]) / n; else print "nan" }'
}

sysctl -q kernel.bpf_stats_enabled=1
for ((r = 1; r <= STATS_ROUNDS; r++)); do
	for cfg in floor pages-only; do
		ns=$(stats_run "$cfg")
		echo "bench-pages.sh: stats round $r/$STATS_ROUNDS $cfg: on_fault $ns ns per run" >&2
		echo "$r $ns" >>"$TMP/stats.$cfg"
	done
done
sysctl -q kernel.bpf_stats_enabled="$STATS_WAS"

floor_ns=$(cut -d' ' -f2 "$TMP/stats.floor" | median)
full_ns=$(cut -d' ' -f2 "$TMP/stats.pages-only" | median)
added=$(join <(sort -k1,1 "$TMP/stats.floor") <(sort -k1,1 "$TMP/stats.pages-only") | awk '{ print $3 - $2 }' | median)
fault_ns=$(cut -d' ' -f2 "$TMP/faulter.none" | median)
echo
echo "The fault program's own cost (kernel.bpf_stats_enabled, $STATS_ROUNDS rounds, medians): on_fault runs"
echo "$floor_ns ns per call empty (floor: the stats' own timing) and $full_ns ns as memwatch's (pages-only):"
awk -v d="$added" -v f="$fault_ns" 'BEGIN { printf "memwatch adds %.1f ns to each fault, %.1f%% of the %.0f ns a fault takes without memwatch.\n", d, 100 * d / f, f }'
