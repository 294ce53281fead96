#!/usr/bin/env bash
# Host-agent cost benchmark: memwatch --all for a while (default 10 minutes)
# on this host, next to a fault-heavy workload (tools/faulter.c, kernel side
# only) and a malloc-heavy one (tools/churn.c, matched by --comm so it gets
# heap probes), with /metrics and a heap profile scraped every 15 s as
# Prometheus and Parca would. Reports memwatch's own CPU (share of one
# core) and RSS (peak of VmRSS, sampled every 5 s), and each workload's
# time per operation with and without memwatch: the first phase runs the
# workloads alone, the second the same workloads under memwatch.
#
#   tools/bench-host.sh [--minutes M] [--baseline-minutes B] [--work K]
#
# As root, after `make memwatch .output/churn .output/faulter`.
set -euo pipefail

MINUTES=10
BASELINE=3
WORK=1000	# churn: loop iterations of work per malloc+free pair
while (($#)); do
	case $1 in
	--minutes) MINUTES=$2; shift 2 ;;
	--baseline-minutes) BASELINE=$2; shift 2 ;;
	--work) WORK=$2; shift 2 ;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-host.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MEMWATCH=${MEMWATCH:-$ROOT/memwatch}
OUT=$ROOT/.output
[ "$(id -u)" -eq 0 ] || { echo "bench-host.sh: run as root" >&2; exit 1; }
for f in "$MEMWATCH" "$OUT/churn" "$OUT/faulter"; do
	[ -x "$f" ] || { echo "bench-host.sh: $f missing: make memwatch .output/churn .output/faulter" >&2; exit 1; }
done
TMP=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

# loop_workload NAME CMD... : runs CMD again and again until $TMP/stop-NAME
# exists, appending each run's result line to $TMP/NAME.
loop_workload() {
	local name=$1
	shift
	while [ ! -e "$TMP/stop-$name" ]; do
		"$@" | tail -1 | cut -d= -f2 >>"$TMP/$name"
	done
}

phase() {	# phase TAG SECONDS: runs both workloads for SECONDS
	local tag=$1 secs=$2
	rm -f "$TMP"/stop-*
	loop_workload "faulter.$tag" "$OUT/faulter" --rounds 100 &
	local f=$!
	loop_workload "churn.$tag" "$OUT/churn" --pairs 200000 --work "$WORK" &
	local c=$!
	sleep "$secs"
	touch "$TMP/stop-faulter.$tag" "$TMP/stop-churn.$tag"
	wait "$f" "$c"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

echo "bench-host.sh: baseline, ${BASELINE} min" >&2
phase none $((BASELINE * 60))

echo "bench-host.sh: memwatch --all, ${MINUTES} min" >&2
"$MEMWATCH" --all --comm '^churn$' --listen 127.0.0.1:0 2>"$TMP/mw.err" &
MW=$!
PIDS+=("$MW")
until port=$(sed -n 's/.*on port \([0-9]*\)$/\1/p' "$TMP/mw.err") && [ -n "$port" ]; do
	kill -0 "$MW" 2>/dev/null || { cat "$TMP/mw.err" >&2; exit 1; }
	sleep 0.1
done
(
	while kill -0 "$MW" 2>/dev/null; do
		curl -s -o /dev/null "http://127.0.0.1:$port/metrics" || true
		curl -s -o /dev/null "http://127.0.0.1:$port/debug/pprof/heap" || true
		sleep 15
	done
) &
PIDS+=($!)
(
	while kill -0 "$MW" 2>/dev/null; do
		rss_kib "$MW" >>"$TMP/rss" 2>/dev/null || true
		sleep 5
	done
) &
PIDS+=($!)
start_ticks=$(cpu_ticks "$MW")
start_s=$(date +%s.%N)
phase memwatch $((MINUTES * 60))
end_ticks=$(cpu_ticks "$MW")
end_s=$(date +%s.%N)
metrics=$(curl -s "http://127.0.0.1:$port/metrics")
kill -INT "$MW"
wait "$MW" || true

hz=$(getconf CLK_TCK)
cpu_pct=$(awk -v a="$start_ticks" -v b="$end_ticks" -v s="$start_s" -v e="$end_s" -v hz="$hz" \
	'BEGIN { printf "%.2f", 100 * (b - a) / hz / (e - s) }')
rss_peak=$(sort -n "$TMP/rss" | tail -1)
rss_first=$(head -1 "$TMP/rss")
rss_last=$(tail -1 "$TMP/rss")
runs=$(($(wc -l <"$TMP/churn.memwatch") + $(wc -l <"$TMP/faulter.memwatch")))
tracked=$(echo "$metrics" | sed -n 's/^memwatch_processes{state="tracked"} //p')
lost=$(echo "$metrics" | awk '/^memwatch_lost_events_total/ { s += $2 } END { print s + 0 }')

echo "memwatch --all cost, $(date -u +%F), $(uname -r), $(nproc) CPUs, ${MINUTES} min (baseline ${BASELINE} min)"
echo
echo "| measure | value |"
echo "|---|---|"
echo "| memwatch CPU | ${cpu_pct}% of one core |"
echo "| memwatch RSS (VmRSS every 5 s: first, last, peak) | $((rss_first / 1024)), $((rss_last / 1024)), $((rss_peak / 1024)) MiB |"
echo "| workload processes started and exited under memwatch | ${runs} |"
echo "| processes tracked at the end | ${tracked:-?} |"
echo "| events lost (all reasons) | ${lost} |"
echo
echo "| workload | alone | under memwatch --all | change |"
echo "|---|---|---|---|"
for wl in faulter churn; do
	unit=$([ "$wl" = faulter ] && echo "ns/fault" || echo "ns/pair")
	a=$(median <"$TMP/$wl.none")
	b=$(median <"$TMP/$wl.memwatch")
	awk -v wl="$wl" -v a="$a" -v b="$b" -v u="$unit" \
		'BEGIN { printf "| %s | %.1f %s | %.1f %s | %+.1f%% |\n", wl, a, u, b, u, (b / a - 1) * 100 }'
done
