#!/usr/bin/env bash
# The in-process fast path against everything else that profiles a heap,
# side by side, interleaved round-robin, medians:
#
#   churn (tools/churn.c, one thread, malloc(64)+free pairs, only the loop
#   timed), per allocator (glibc; jemalloc and tcmalloc by LD_PRELOAD on
#   churn only):
#     none       no profiler
#     inline     memwatch -p PID --hook inline (attached while churn waits)
#     uprobe     memwatch -p PID --hook uprobe (N/10 pairs: a trap each)
#     own        the allocator's own sampler: jemalloc
#                MALLOC_CONF=prof:true,lg_prof_sample:19; gperftools
#                TCMALLOC_SAMPLE_PARAMETER=524288 (glibc has none)
#     heaptrack  heaptrack -o FILE churn (LD_PRELOAD; records every call)
#   every call recorded (glibc, -s 1, N/50 pairs, DWARF stacks):
#     s1-inline  memwatch -p PID -s 1 --hook inline
#     s1-uprobe  memwatch -p PID -s 1 --hook uprobe
#   and the stop-the-world pause of attach and detach with 100 threads
#   (tests/workloads/bin/stress --threads 100, idle and allocating flat
#   out), from memwatch -v's "threads held" lines.
#
# The machine may be shared: before each run the script waits up to
# --quiet-wait seconds for the CPUs to be idle. Prints Markdown tables to
# stdout; progress goes to stderr.
#
#   tools/bench-inline.sh [--rounds R] [--pairs N] [--pause-runs K] [--quiet-wait S] [--pause-only | --s1-only]
#
# --s1-only runs just the every-call-recorded pair (s1-inline, s1-uprobe).
#
# Run from anywhere, as root, after `make memwatch workloads`.
set -euo pipefail

source "${MW_BENCH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/tools/bench-lib.sh"
run_from_private_copy "$@"

die() { echo "bench-inline: $*" >&2; exit 1; }
note() { echo "bench-inline: $*" >&2; }

ROUNDS=5 PAIRS=2000000 PAUSE_RUNS=3 QUIET_WAIT=5 PAUSE_ONLY=0 S1_ONLY=0
while (($#)); do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--pairs) PAIRS=$2; shift 2 ;;
	--pause-runs) PAUSE_RUNS=$2; shift 2 ;;
	--quiet-wait) QUIET_WAIT=$2; shift 2 ;;
	--pause-only) PAUSE_ONLY=1; shift ;;
	--s1-only) S1_ONLY=1; shift ;;
	*) die "unknown argument $1 (see the head of this script)" ;;
	esac
done

ROOT=$MW_BENCH_ROOT
LIB=/usr/lib/x86_64-linux-gnu
JEMALLOC_SO=${JEMALLOC_SO:-$LIB/libjemalloc.so.2}
TCMALLOC_SO=${TCMALLOC_SO:-$LIB/libtcmalloc.so.4}
(($(id -u) == 0)) || die "needs root"
[[ -x $ROOT/memwatch && -x $ROOT/tests/workloads/bin/stress ]] || die "run 'make memwatch workloads' first"
command -v heaptrack >/dev/null || die "heaptrack not found (apt-get install heaptrack)"
TMP=$(mktemp -d /tmp/memwatch-bench-inline.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cp "$ROOT/memwatch" "$TMP/memwatch"
MEMWATCH=$TMP/memwatch
make -s -C "$ROOT" .output/churn
CHURN=$ROOT/.output/churn

# Up to QUIET_WAIT s for the CPUs to be mostly idle (under 0.2 CPUs busy).
wait_quiet() {
	local start a b
	start=$(now)
	while ! elapsed_over "$start" "$QUIET_WAIT"; do
		a=$(sys_ticks)
		sleep 0.5
		b=$(sys_ticks)
		awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); exit !((y[1] - x[1]) / (y[2] - x[2] + 1) < 0.1) }' &&
			return 0
	done
}

preload_of() {
	case "$1" in
	jemalloc) echo "$JEMALLOC_SO" ;;
	tcmalloc) echo "$TCMALLOC_SO" ;;
	*) echo "" ;;
	esac
}

# churn_run ALLOC CONFIG: prints ns per pair.
churn_run() {
	local alloc=$1 cfg=$2 pre out=$TMP/churn.out err=$TMP/mw.err pairs=$PAIRS mw= cpid
	local -a env_args=() mw_args=()
	pre=$(preload_of "$alloc")
	[[ -n $pre ]] && env_args+=("LD_PRELOAD=$pre")
	case "$cfg" in
	none) ;;
	inline) mw_args=(--hook inline) ;;
	uprobe) mw_args=(--hook uprobe); pairs=$((PAIRS / 10)) ;;
	s1-inline) mw_args=(-s 1 --hook inline); pairs=$((PAIRS / 50)) ;;
	s1-uprobe) mw_args=(-s 1 --hook uprobe); pairs=$((PAIRS / 50)) ;;
	own)
		case "$alloc" in
		jemalloc) env_args+=("MALLOC_CONF=prof:true,lg_prof_sample:19,prof_prefix:$TMP/jeprof") ;;
		tcmalloc) env_args+=("TCMALLOC_SAMPLE_PARAMETER=524288") ;;
		*) return 1 ;;
		esac ;;
	heaptrack)
		env "${env_args[@]}" heaptrack -o "$TMP/ht" "$CHURN" --pairs "$pairs" >"$out" 2>&1
		rm -f "$TMP"/ht*
		sed -n 's/^ns_per_pair=//p' "$out"
		return ;;
	esac
	wait_quiet
	if ((${#mw_args[@]} == 0)); then
		env "${env_args[@]}" "$CHURN" --pairs "$pairs" >"$out"
		sed -n 's/^ns_per_pair=//p' "$out"
		return
	fi
	env "${env_args[@]}" "$CHURN" --pairs "$pairs" --wait >"$out" &
	cpid=$!
	wait_line "$out" '^ready ' "$cpid" 10 churn
	"$MEMWATCH" -p "$cpid" "${mw_args[@]}" -o "$TMP/p.pb.gz" 2>"$err" >/dev/null &
	mw=$!
	wait_line "$err" '^memwatch: profiling pid' "$mw" 30 memwatch
	case "$cfg" in
	*inline) grep -q "inline hooks in" "$err" || die "memwatch did not detour $alloc: $(cat "$err")" ;;
	esac
	kill -USR1 "$cpid"
	wait "$cpid"
	wait_exit "$mw" 60 || die "memwatch did not exit"
	((RC == 0)) || die "memwatch failed: $(cat "$err")"
	sed -n 's/^ns_per_pair=//p' "$out"
}

declare -A NS
ALLOCS=(glibc jemalloc tcmalloc)
((S1_ONLY)) && ALLOCS=()
CONFIGS=(none inline uprobe own heaptrack)
((PAUSE_ONLY)) && ROUNDS=0
for ((r = 1; r <= ROUNDS; r++)); do
	for a in "${ALLOCS[@]}"; do
		for c in "${CONFIGS[@]}"; do
			[[ $c == own && $a == glibc ]] && continue
			v=$(churn_run "$a" "$c")
			note "round $r: $a $c: $v ns/pair"
			NS[$a.$c]+="$v "
		done
	done
	for c in s1-inline s1-uprobe; do
		v=$(churn_run glibc "$c")
		note "round $r: glibc $c: $v ns/pair"
		NS[glibc.$c]+="$v "
	done
done

# pause THREADS_MODE: medians of attach and detach holds, in ms.
pause_runs() {
	local mode=$1 spid i err=$TMP/pause.err
	local -a attach=() detach=()
	mkfifo "$TMP/stress.in"
	"$ROOT/tests/workloads/bin/stress" --threads 100 $mode --wait <"$TMP/stress.in" >"$TMP/stress.out" &
	spid=$!
	exec 8>"$TMP/stress.in"
	wait_line "$TMP/stress.out" '^ready ' "$spid" 10 stress
	kill -USR1 "$spid"
	[[ $mode == --idle ]] || wait_line "$TMP/stress.out" '^stress: running' "$spid" 30 stress
	for ((i = 0; i < PAUSE_RUNS; i++)); do
		wait_quiet
		"$MEMWATCH" -v -p "$spid" -d 0.3 --hook inline -o "$TMP/s.pb.gz" 2>"$err" >/dev/null || die "memwatch: $(cat "$err")"
		# "... threads held 2.86 ms (all stopped after 2.25)"
		attach+=("$(sed -n 's/.*inline hooks, agent at .* threads held \([0-9.]*\) ms.*/\1/p' "$err" | head -1)")
		detach+=("$(sed -n 's/.*entries restored; .* threads held \([0-9.]*\) ms.*/\1/p' "$err" | head -1)")
	done
	echo stop >&8
	exec 8>&-
	wait "$spid" || die "stress failed"
	rm -f "$TMP/stress.in"
	printf '%s %s' "$(median "${attach[*]}" %.2f)" "$(median "${detach[*]}" %.2f)"
}
if ((!S1_ONLY)); then
	read -r IDLE_ATTACH IDLE_DETACH <<<"$(pause_runs --idle)"
	read -r BUSY_ATTACH BUSY_DETACH <<<"$(pause_runs "")"
fi

if ((!PAUSE_ONLY && !S1_ONLY)); then
echo "### Allocator calls: ns per malloc+free pair (medians of $ROUNDS, churn, one thread)"
echo
echo "| allocator | none | memwatch inline | memwatch uprobe | allocator's own sampler | heaptrack | inline - none |"
echo "|---|--:|--:|--:|--:|--:|--:|"
for a in "${ALLOCS[@]}"; do
	n=$(median "${NS[$a.none]}") i=$(median "${NS[$a.inline]}") u=$(median "${NS[$a.uprobe]}")
	o=n/a
	[[ -n ${NS[$a.own]:-} ]] && o=$(median "${NS[$a.own]}")
	h=$(median "${NS[$a.heaptrack]}")
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$a" "$n" "$i" "$u" "$o" "$h" \
		"$(awk -v i="$i" -v n="$n" 'BEGIN { printf "%+.1f", i - n }')"
done
echo
fi
if ((!PAUSE_ONLY)); then
si=$(median "${NS[glibc.s1-inline]}") su=$(median "${NS[glibc.s1-uprobe]}")
echo "### Every call recorded (-s 1, glibc, DWARF stacks): ns per pair"
echo
echo "| inline | uprobe | uprobe / inline |"
echo "|--:|--:|--:|"
printf '| %s | %s | %s |\n' "$si" "$su" "$(ratio "$su" "$si")"
echo "(per round: inline ${NS[glibc.s1-inline]}; uprobe ${NS[glibc.s1-uprobe]})"
echo
fi
((S1_ONLY)) && exit 0
echo "### Stop-the-world with 100 threads (medians of $PAUSE_RUNS), ms"
echo
echo "| threads | attach | detach |"
echo "|---|--:|--:|"
printf '| 100 idle | %s | %s |\n' "$IDLE_ATTACH" "$IDLE_DETACH"
printf '| 100 allocating flat out, 2 CPUs | %s | %s |\n' "$BUSY_ATTACH" "$BUSY_DETACH"
