#!/usr/bin/env bash
# Probe-cost benchmark: ns per malloc+free pair of tools/churn.c, one thread,
# under every allocator memwatch knows as a shared library, against every
# floor memwatch can attach, all interleaved round-robin, medians.
#
# Configurations (memwatch attaches with -p while churn waits, so only the
# loop is timed):
#   none            no probes
#   classic-floor   memwatch -p PID --empty-probes --attach-mode multi
#                   (empty uprobe + uretprobe on the allocation entries, empty
#                   uprobe on free and its kin, at memwatch's probe sites)
#   session-floor   memwatch -p PID --empty-probes --attach-mode session
#                   (empty uprobe session returning 1 on the allocation
#                   entries: no return probe; empty uprobe on free)
#   one-trap-floor  memwatch -p PID --empty-probes --attach-mode session --alloc-only
#                   (one trap per malloc, none per free)
#   default         memwatch -p PID --hook uprobe -o FILE (sessions on kernels
#                   that have them)
#   alloc-only      memwatch -p PID --hook uprobe --alloc-only -o FILE
#   fp              memwatch -p PID --hook uprobe --stack-mode fp -o FILE (glibc only)
#   s1              memwatch -p PID --hook uprobe -s 1 -o FILE, N/10 pairs (glibc only)
# Every memwatch here is on uprobes, the path the floors measure (its
# default, detours into the process, is tools/bench-inline.sh's).
# Allocators: glibc (churn as built), jemalloc and tcmalloc (LD_PRELOAD on
# churn only, never on memwatch).
#
# And, first, the attach/detach cost: tests/workloads/bin/gtcxx (glibc,
# libstdc++, jemalloc preloaded) under `memwatch -v -p PID -d 0.5 --hook uprobe
# --attach-mode M` for M in classic, multi, session; medians of the
# "attached ... in X ms" and "detached in Y ms" lines.
#
# The machine may be shared (other builds and tests): before each run the
# script waits a little for idle CPUs, measures how busy other processes kept
# the CPUs during the loop (all CPU time in /proc/stat but this script's,
# churn's and memwatch's), runs a disturbed run again (--redo), and reports
# how many runs it kept disturbed. A trap costs more while other processes
# run.
#
# Prints Markdown tables to stdout; progress goes to stderr.
# `tools/bench.sh --budget [OPTIONS]` runs tools/bench-budget.sh instead:
# the slowdown --max-overhead 5, 10 and 25 achieve against no probes.
#
#   tools/bench.sh [--rounds R] [--pairs N] [--size BYTES]
#                  [--allocators LIST] [--configs LIST] [--attach-runs K]
#                  [--attach-modes LIST] [--quiet-wait S] [--redo K]
#
# Run from anywhere, as root, after `make memwatch` and `make -C
# tests/workloads` (`make bench` does both). Builds churn itself into
# .output/churn.
set -euo pipefail

source "${MW_BENCH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/tools/bench-lib.sh"
run_from_private_copy "$@"
# The overhead budget's benchmark is its own script.
[[ ${1:-} == --budget ]] && exec bash "$MW_BENCH_ROOT/tools/bench-budget.sh" "${@:2}"

ALL_ALLOCATORS=(glibc jemalloc tcmalloc)
ALL_CONFIGS=(none classic-floor session-floor one-trap-floor default alloc-only fp s1)
ALL_MODES=(classic multi session)

usage() {
	cat <<'EOF'
usage: tools/bench.sh [--rounds R] [--pairs N] [--size BYTES]
                      [--allocators LIST] [--configs LIST] [--attach-runs K]
                      [--attach-modes LIST] [--quiet-wait S] [--redo K]
       tools/bench.sh --budget [OPTIONS]   (--max-overhead's achieved
                      slowdown: tools/bench-budget.sh --help)
  --rounds R          rounds of every (allocator, configuration), interleaved
                      round-robin (default 5)
  --pairs N           malloc+free pairs per run (default 1000000); the s1
                      configuration runs N/10 pairs (every call is recorded)
  --size BYTES        bytes per malloc (default 64)
  --allocators LIST   comma-separated, of glibc,jemalloc,tcmalloc (default: all)
  --configs LIST      comma-separated, of none,classic-floor,session-floor,
                      one-trap-floor,default,alloc-only,fp,s1 (default: all;
                      fp and s1 run on glibc only)
  --attach-runs K     attach/detach measurements per attach mode (default 3;
                      0 skips them)
  --attach-modes LIST comma-separated, of classic,multi,session (default: all)
  --quiet-wait S      before each run, wait up to S seconds (120 in all) for
                      idle CPUs (default 5; 0: do not wait)
  --redo K            run again, up to K times, a run during which other
                      processes kept more than 0.15 CPUs busy (default 2)
Environment: MEMWATCH (default ./memwatch), JEMALLOC_SO
(default /usr/lib/x86_64-linux-gnu/libjemalloc.so.2), TCMALLOC_SO
(default libtcmalloc.so.4 in the same directory).
EOF
}

die() {
	echo "bench.sh: error: $*" >&2
	exit 1
}

# parse_list OPTION VALUE ALLOWED...: prints VALUE's comma-separated words,
# one per line, in the order of ALLOWED; dies on an unknown or empty one.
parse_list() {
	local opt=$1 value=$2 w
	shift 2
	local -a words
	IFS=, read -r -a words <<<"$value"
	((${#words[@]})) || die "$opt: empty list"
	for w in "${words[@]}"; do
		in_list "$w" "$@" || die "$opt: unknown '$w' (known: $(
			IFS=,
			echo "$*"
		))"
	done
	for w in "$@"; do in_list "$w" "${words[@]}" && echo "$w"; done
	return 0
}

ORIG_ARGS=("$@")
ROUNDS=5
PAIRS=1000000
SIZE=64
ATTACH_RUNS=3
REDO=2		# runs again while other processes disturbed the loop
QUIET_WAIT=5	# s to wait for idle CPUs before each run
QUIET_BUDGET=120	# s of such waiting in all
MAX_OTHER=0.15	# CPUs busy besides churn and memwatch that make a run disturbed
ALLOCATORS=("${ALL_ALLOCATORS[@]}")
CONFIGS=("${ALL_CONFIGS[@]}")
MODES=("${ALL_MODES[@]}")
while (($#)); do
	case "$1" in
	--rounds | --pairs | --size | --attach-runs | --redo | --quiet-wait)
		(($# >= 2)) || die "$1 needs a value"
		[[ $2 =~ ^[0-9]{1,12}$ ]] || die "$1: '$2' is not a number"
		case "$1" in
		--rounds) ROUNDS=$((10#$2)) ;;
		--pairs) PAIRS=$((10#$2)) ;;
		--size) SIZE=$((10#$2)) ;;
		--attach-runs) ATTACH_RUNS=$((10#$2)) ;;
		--redo) REDO=$((10#$2)) ;;
		--quiet-wait) QUIET_WAIT=$((10#$2)) ;;
		esac
		shift 2
		;;
	--allocators | --configs | --attach-modes)
		(($# >= 2)) || die "$1 needs a value"
		case "$1" in
		--allocators) mapfile -t ALLOCATORS < <(parse_list "$1" "$2" "${ALL_ALLOCATORS[@]}") ;;
		--configs) mapfile -t CONFIGS < <(parse_list "$1" "$2" "${ALL_CONFIGS[@]}") ;;
		--attach-modes) mapfile -t MODES < <(parse_list "$1" "$2" "${ALL_MODES[@]}") ;;
		esac
		# parse_list dies in a subshell: catch it here.
		case "$1" in
		--allocators) ((${#ALLOCATORS[@]})) ;;
		--configs) ((${#CONFIGS[@]})) ;;
		--attach-modes) ((${#MODES[@]})) ;;
		esac || exit 1
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		die "unknown argument '$1'"
		;;
	esac
done
((ROUNDS >= 1)) || die "--rounds must be at least 1"
((PAIRS >= 10)) || die "--pairs must be at least 10"
S1_PAIRS=$((PAIRS / 10))

ROOT=$MW_BENCH_ROOT
MEMWATCH=${MEMWATCH:-$ROOT/memwatch}	# overridable for testing the script
CHURN=$ROOT/.output/churn
GTCXX=$ROOT/tests/workloads/bin/gtcxx
LIBDIR=/usr/lib/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
JEMALLOC_SO=${JEMALLOC_SO:-$LIBDIR/libjemalloc.so.2}
TCMALLOC_SO=${TCMALLOC_SO:-$LIBDIR/libtcmalloc.so.4}
READY_TIMEOUT=10	# s: churn's "ready" line, memwatch's "profiling pid" line
EXIT_TIMEOUT=30		# s: memwatch writing its profile and exiting after SIGINT
# s: one churn loop, generous even at 25 us per pair
RUN_TIMEOUT=$((30 + PAIRS / 40000))
ATTACH_TIMEOUT=120	# s: one attach/detach run (classic detach takes seconds)

(($(id -u) == 0)) || die "needs root (memwatch loads BPF programs)"
[[ -x $MEMWATCH ]] || die "$MEMWATCH not found: run 'make memwatch' first"
command -v gcc >/dev/null || die "gcc not found (needed to build tools/churn.c)"

declare -A PRELOAD=([glibc]="" [jemalloc]=$JEMALLOC_SO [tcmalloc]=$TCMALLOC_SO)
# What memwatch calls the allocator in its "probe sites in ..." line, and
# what the target's maps show once the library is loaded.
declare -A MAPS_RE=([glibc]='/libc\.so\.6$' [jemalloc]='/libjemalloc\.so' [tcmalloc]='/libtcmalloc[^/]*\.so')
for a in "${ALLOCATORS[@]}"; do
	[[ -z ${PRELOAD[$a]} || -r ${PRELOAD[$a]} ]] ||
		die "$a: ${PRELOAD[$a]} not found (install the Debian package, or set ${a^^}_SO)"
done
if ((ATTACH_RUNS > 0)); then
	[[ -x $GTCXX ]] || die "$GTCXX not found: run 'make -C tests/workloads' first (or pass --attach-runs 0)"
	[[ -r $JEMALLOC_SO ]] || die "$JEMALLOC_SO not found: the attach/detach target preloads it (or pass --attach-runs 0)"
fi

mkdir -p "$ROOT/.output"
gcc -O2 -g -std=gnu11 -Wall -Wextra -pthread "$ROOT/tools/churn.c" -o "$CHURN" ||
	die "cannot build tools/churn.c"

TMP=$(mktemp -d /tmp/memwatch-bench.XXXXXX)
TARGET_PID=
MW_PID=
cleanup() {
	# Only the processes this script started, by pid.
	local p
	for p in $MW_PID $TARGET_PID ${TIMER_PID:-}; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Every run uses this copy: a rebuild of ./memwatch during the benchmark must
# not mix two binaries in one table (the BPF programs are built in).
MEMWATCH_SRC=$MEMWATCH
MEMWATCH=$TMP/memwatch
cp "$MEMWATCH_SRC" "$MEMWATCH" || die "cannot copy $MEMWATCH_SRC"
MEMWATCH_SUM=$(sha256sum "$MEMWATCH" | cut -c1-12)

# wait_exit PID TIMEOUT: waits for child PID, sets RC; fails after TIMEOUT s.
# Blocks in wait (a sleeping timer beside it): polling would take CPU from
# the run being measured.

# start_target OUT PRELOAD CMD...: starts CMD --wait-style (it prints "ready
# PID" and waits for SIGUSR1) with LD_PRELOAD=PRELOAD, sets TARGET_PID.
start_target() {
	local out=$1 preload=$2 pid
	shift 2
	if [[ -n $preload ]]; then
		LD_PRELOAD=$preload "$@" >"$out" 2>&1 &
	else
		env -u LD_PRELOAD "$@" >"$out" 2>&1 &
	fi
	TARGET_PID=$!
	wait_line "$out" '^ready [0-9]+$' "$TARGET_PID" "$READY_TIMEOUT" "$(basename "$1")"
	pid=$(sed -n 's/^ready \([0-9][0-9]*\)$/\1/p' "$out" | head -n1)
	[[ $pid == "$TARGET_PID" ]] || die "$(basename "$1") said 'ready $pid', expected pid $TARGET_PID"
}

# stop_target: kills the waiting target (it never got SIGUSR1).
stop_target() {
	kill -KILL "$TARGET_PID" 2>/dev/null || true
	wait "$TARGET_PID" 2>/dev/null || true
	TARGET_PID=
}

spread() {
	local lo hi
	lo=$(tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | head -n1)
	hi=$(tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | tail -n1)
	printf '%s-%s' "$(fmt "$lo")" "$(fmt "$hi")"
}
fmt() { awk -v x="$1" 'BEGIN { s = sprintf("%.1f", x); n = split(s, p, "."); i = p[1]; o = ""
	while (length(i) > 3) { o = "," substr(i, length(i) - 2) o; i = substr(i, 1, length(i) - 3) }
	printf "%s%s.%s", i, o, p[2] }'; }
fmt_int() { fmt "$1" | sed 's/\.[0-9]*$//'; }
# goal RATIO LIMIT: "met" or "NOT met".
goal() { awk -v r="$1" -v l="$2" 'BEGIN { if (r == "n/a") print "n/a"; else if (r <= l) print "met"; else print "**NOT met**" }'; }

# ---- which attach mode memwatch's default picks here -------------------

# A short empty-probe run on a waiting glibc churn: memwatch -v says how the
# probes attach. The session and one-trap floors need uprobe sessions, the
# classic floor uprobe_multi; the floor of today's table is plain
# --empty-probes (auto), which on a kernel with sessions is the session floor.
start_target "$TMP/probe.out" "" "$CHURN" --wait --pairs 10
"$MEMWATCH" -v -p "$TARGET_PID" --empty-probes -d 0.1 >/dev/null 2>"$TMP/probe.err" &
MW_PID=$!
wait_exit "$MW_PID" "$EXIT_TIMEOUT" || die "memwatch -v --empty-probes -d 0.1 did not exit within ${EXIT_TIMEOUT}s"
MW_PID=
((RC == 0)) || die "memwatch -v -p PID --empty-probes -d 0.1 exited with status $RC:$(printf '\n'; show "$TMP/probe.err")"
stop_target
AUTO_LINE=$(sed -n 's/^memwatch: probes attach as //p' "$TMP/probe.err" | head -n1)
case "$AUTO_LINE" in
"uprobe sessions"*) AUTO_MODE=session ;;
"uprobe_multi"*) AUTO_MODE=multi ;;
"perf-event"*) AUTO_MODE=classic ;;
*) die "cannot tell memwatch's attach mode from its -v output:$(printf '\n'; show "$TMP/probe.err")" ;;
esac
# The floor row of the glibc table: the floor at auto's mode.
FLOOR_OF_AUTO=
case "$AUTO_MODE" in
session) FLOOR_OF_AUTO=session-floor ;;
multi) FLOOR_OF_AUTO=classic-floor ;;
esac
if [[ $AUTO_MODE != session ]]; then
	DROP=()
	for c in session-floor one-trap-floor; do in_list "$c" "${CONFIGS[@]}" && DROP+=("$c"); done
	if ((${#DROP[@]})); then
		echo "bench.sh: memwatch attaches with $AUTO_MODE here (no uprobe sessions): skipping ${DROP[*]}" >&2
		mapfile -t CONFIGS < <(for c in "${CONFIGS[@]}"; do in_list "$c" "${DROP[@]}" || echo "$c"; done)
	fi
	if [[ $AUTO_MODE == classic ]] && in_list classic-floor "${CONFIGS[@]}"; then
		echo "bench.sh: memwatch attaches with perf-event uprobes here (no uprobe_multi): skipping classic-floor" >&2
		mapfile -t CONFIGS < <(for c in "${CONFIGS[@]}"; do [[ $c == classic-floor ]] || echo "$c"; done)
	fi
	if in_list session "${MODES[@]}"; then
		echo "bench.sh: no uprobe sessions here: attach/detach runs skip --attach-mode session" >&2
		mapfile -t MODES < <(for m in "${MODES[@]}"; do [[ $m == session ]] || echo "$m"; done)
	fi
	if [[ $AUTO_MODE == classic ]] && in_list multi "${MODES[@]}"; then
		mapfile -t MODES < <(for m in "${MODES[@]}"; do [[ $m == multi ]] || echo "$m"; done)
	fi
fi
# Without a floor at auto's mode (perf-event uprobes only), run plain
# --empty-probes as the glibc table's floor.
RUN_FLOOR=0
if [[ -z $FLOOR_OF_AUTO ]] && in_list glibc "${ALLOCATORS[@]}"; then
	RUN_FLOOR=1
	FLOOR_OF_AUTO=floor
fi

# ---- the churn runs ----------------------------------------------------

declare -A LABEL=(
	[none]="none (no probes)"
	[floor]="floor: \`memwatch -p PID --empty-probes\`"
	[classic-floor]="classic floor: \`--empty-probes --attach-mode multi\` (uprobe + uretprobe at allocations, uprobe at frees)"
	[session-floor]="session floor: \`--empty-probes --attach-mode session\` (session returning 1 at allocations, uprobe at frees)"
	[one-trap-floor]="one-trap floor: \`--empty-probes --attach-mode session --alloc-only\` (one trap per malloc, none per free)"
	[default]="memwatch on uprobes: \`memwatch -p PID --hook uprobe -o FILE\`"
	[alloc-only]="memwatch \`--hook uprobe --alloc-only -o FILE\`"
	[fp]="memwatch, frame-pointer stacks: \`memwatch -p PID --hook uprobe --stack-mode fp -o FILE\`"
	[s1]="memwatch -s 1: \`memwatch -p PID --hook uprobe -s 1 -o FILE\`"
)
# Keyed by ALLOCATOR/CONFIG.
declare -A NS SAMPLES CPU_SHARE US_PER_STACK SITES OTHER
KEPT=0 DISTURBED_KEPT=0 REDONE=0 QUIET_WAITED=0

# The runs of one round: every (allocator, configuration); fp and s1 on
# glibc only.
RUNS=()
for a in "${ALLOCATORS[@]}"; do
	for c in "${CONFIGS[@]}"; do
		[[ $a != glibc && ($c == fp || $c == s1) ]] && continue
		RUNS+=("$a/$c")
	done
	[[ $a == glibc ]] && ((RUN_FLOOR)) && RUNS+=("glibc/floor")
done
((${#RUNS[@]})) || die "nothing to run"

# run_one ALLOCATOR/CONFIG ROUND ATTEMPT: one measurement, staged in R_*
# (commit_run keeps it); sets R_OTHER to the CPUs other processes kept busy
# during the loop (empty when the loop was too short to tell).
run_one() {
	local key=$1 round=$2 attempt=$3 pairs=$PAIRS pid ns line
	local alloc=${key%%/*} cfg=${key#*/}
	local tag=${alloc}.${cfg}.$round.$attempt
	local out=$TMP/churn.$tag.out err=$TMP/memwatch.$tag.err prof=$TMP/profile.$tag.pb.gz
	local -a mw_args=()
	case "$cfg" in
	none) ;;
	floor) mw_args=(--empty-probes) ;;
	classic-floor) mw_args=(--empty-probes --attach-mode multi) ;;
	session-floor) mw_args=(--empty-probes --attach-mode session) ;;
	one-trap-floor) mw_args=(--empty-probes --attach-mode session --alloc-only) ;;
	default) mw_args=(--hook uprobe -o "$prof") ;;
	alloc-only) mw_args=(--hook uprobe --alloc-only -o "$prof") ;;
	fp) mw_args=(--hook uprobe --stack-mode fp -o "$prof") ;;
	s1)
		mw_args=(--hook uprobe -s 1 -o "$prof")
		pairs=$S1_PAIRS
		;;
	esac
	R_NS='' R_SAMPLES='' R_SHARE='' R_US='' R_OTHER='' R_PAIRS=$pairs

	start_target "$out" "${PRELOAD[$alloc]}" "$CHURN" --wait --pairs "$pairs" --size "$SIZE"
	pid=$TARGET_PID
	grep -qE "${MAPS_RE[$alloc]}" <(awk '{ print $6 }' "/proc/$pid/maps") ||
		die "churn ($alloc) does not map ${PRELOAD[$alloc]:-libc.so.6}"

	if ((${#mw_args[@]})); then
		"$MEMWATCH" -p "$pid" "${mw_args[@]}" 2>"$err" >/dev/null &
		MW_PID=$!
		wait_line "$err" '^memwatch: profiling pid' "$MW_PID" "$READY_TIMEOUT" "memwatch -p $pid ${mw_args[*]}"
		# "memwatch: profiling pid P (churn): N probe sites in glibc,jemalloc"
		line=$(grep -m1 '^memwatch: profiling pid' "$err")
		[[ $line =~ :\ ([0-9]+)\ probe\ sites\ in\ ([a-z0-9,-]+) ]] ||
			die "memwatch ($key): cannot read its 'profiling pid' line: $line"
		local nsites=${BASH_REMATCH[1]} probed
		IFS=, read -r -a probed <<<"${BASH_REMATCH[2]}"
		in_list "$alloc" "${probed[@]}" || die "memwatch ($key) did not probe $alloc: $line"
		[[ -n ${SITES[$key]:-} ]] || SITES[$key]=$nsites
	fi

	note_tracers "${MW_PID:-}"
	local ticks0=0 ticks1=0 sys0 sys1 own0 own1
	[[ -n $MW_PID ]] && ticks0=$(cpu_ticks "$MW_PID")
	shell_ticks own0
	sys0=$(sys_ticks)
	kill -USR1 "$pid"
	wait_exit "$TARGET_PID" "$RUN_TIMEOUT" || die "churn ($key, $pairs pairs) still running after ${RUN_TIMEOUT}s"
	sys1=$(sys_ticks)
	[[ -n $MW_PID ]] && ticks1=$(cpu_ticks "$MW_PID")
	shell_ticks own1
	TARGET_PID=
	((RC == 0)) || die "churn ($key) exited with status $RC; its output:$(printf '\n'; show "$out")"
	line=$(grep -E '^ns_per_pair=' "$out" || true)
	ns=${line#ns_per_pair=}
	[[ $ns =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "churn ($key) printed no ns_per_pair line; its output:$(printf '\n'; show "$out")"
	# Other processes' CPUs: all CPUs' busy time over the wall time, less
	# this script's, churn's (reaped: the probes run in its context) and
	# memwatch's. Only meaningful for loops of many clock ticks.
	R_OTHER=$(awk -v s0="$sys0" -v s1="$sys1" -v m="$((ticks1 - ticks0 + own1 - own0))" -v n="$NCPU_STAT" '
		BEGIN { split(s0, a); split(s1, b); wall = (b[2] - a[2]) / n
			if (wall >= 30) { v = (b[1] - a[1] - m) / wall; printf "%.2f", (v < 0 ? 0 : v) } }')

	if [[ -n $MW_PID ]]; then
		# memwatch may already be on its way out: it stops when the target exits.
		kill -INT "$MW_PID" 2>/dev/null || true
		wait_exit "$MW_PID" "$EXIT_TIMEOUT" ||
			die "memwatch ($key) did not exit within ${EXIT_TIMEOUT}s of SIGINT; its stderr:$(printf '\n'; show "$err")"
		MW_PID=
		((RC == 0)) || die "memwatch ${mw_args[*]} ($alloc) exited with status $RC; its stderr:$(printf '\n'; show "$err")"
		if [[ $cfg != *floor ]]; then
			[[ -s $prof ]] || die "memwatch ($key) exited 0 but wrote no profile $prof"
			R_SAMPLES=$(sed -n 's/^memwatch: done after .*: \([0-9][0-9]*\) samples.*/\1/p' "$err" | head -n1)
			# "memwatch: own cost: C s CPU over T s, U us per stack (...)"
			local cost
			cost=$(sed -n 's/^memwatch: own cost: \([0-9.]*\) s CPU over \([0-9.]*\) s, \([0-9.]*\) us per stack.*/\1 \2 \3/p' "$err" | head -n1)
			[[ -n $cost ]] || die "memwatch ($key) printed no 'own cost' line; its stderr:$(printf '\n'; show "$err")"
			read -r _ _ R_US <<<"$cost"
			# memwatch's CPU while the loop ran, against the loop's duration.
			R_SHARE=$(awk -v t0="$ticks0" -v t1="$ticks1" -v hz="$CLK_TCK" -v n="$pairs" -v ns="$ns" \
				'BEGIN { d = n * ns / 1e9; printf "%.2f", (d > 0 ? 100 * (t1 - t0) / hz / d : 0) }')
		fi
		# The heap profile and, from memwatch versions with a kernel side,
		# the page profile next to it.
		rm -f "$prof" "${prof%.pb.gz}.pages.pb.gz"
	fi
	R_NS=$ns
}

# commit_run KEY ROUND: keeps the staged run.
commit_run() {
	local key=$1 round=$2 flag=""
	NS[$key]+="$R_NS "
	if [[ -n $R_SHARE ]]; then
		SAMPLES[$key]+="${R_SAMPLES:-?} "
		CPU_SHARE[$key]+="$R_SHARE "
		US_PER_STACK[$key]+="$R_US "
	fi
	[[ -n $R_OTHER ]] && OTHER[$key]+="$R_OTHER "
	if disturbed; then
		DISTURBED_KEPT=$((DISTURBED_KEPT + 1))
		flag=" (other processes: $R_OTHER CPUs; kept)"
	fi
	KEPT=$((KEPT + 1))
	printf 'bench.sh: round %d/%d %-24s %10s ns/pair (%d pairs; other CPUs busy: %s)%s\n' "$round" "$ROUNDS" "$key" \
		"$R_NS" "$R_PAIRS" "${R_OTHER:--}" "$flag" >&2
}

# measure KEY ROUND: waits for a quiet machine, runs, and runs again (up to
# --redo times) while other processes disturbed the loop.
measure() {
	local key=$1 round=$2 attempt
	for ((attempt = 0; ; attempt++)); do
		wait_quiet
		run_one "$key" "$round" "$attempt"
		if ((attempt < REDO)) && disturbed; then
			REDONE=$((REDONE + 1))
			printf 'bench.sh: round %d/%d %-24s %10s ns/pair: other processes kept %s CPUs busy: again\n' \
				"$round" "$ROUNDS" "$key" "$R_NS" "$R_OTHER" >&2
			continue
		fi
		commit_run "$key" "$round"
		return 0
	done
}

# ---- attach / detach ---------------------------------------------------

declare -A ATT_MS DET_MS ATT_SITES
# attach_one MODE RUN: gtcxx (jemalloc preloaded) waiting; memwatch -v -d 0.5.
attach_one() {
	local mode=$1 run=$2 line
	local out=$TMP/gtcxx.$mode.$run.out err=$TMP/attach.$mode.$run.err prof=$TMP/attach.$mode.$run.pb.gz
	start_target "$out" "$JEMALLOC_SO" "$GTCXX" --wait
	"$MEMWATCH" -v -p "$TARGET_PID" -d 0.5 --hook uprobe --attach-mode "$mode" -o "$prof" >/dev/null 2>"$err" &
	MW_PID=$!
	wait_exit "$MW_PID" "$ATTACH_TIMEOUT" ||
		die "memwatch -v -d 0.5 --attach-mode $mode still running after ${ATTACH_TIMEOUT}s; its stderr:$(printf '\n'; show "$err")"
	MW_PID=
	((RC == 0)) || die "memwatch -v -p PID -d 0.5 --attach-mode $mode exited with status $RC; its stderr:$(printf '\n'; show "$err")"
	stop_target
	[[ -s $prof ]] || die "memwatch --attach-mode $mode exited 0 but wrote no profile $prof"
	rm -f "$prof"
	# "memwatch: attached N probe sites in X ms", "memwatch: detached in Y ms"
	line=$(grep -m1 -E '^memwatch: attached [0-9]+ probe sites in [0-9.]+ ms$' "$err") ||
		die "memwatch --attach-mode $mode printed no 'attached' line; its stderr:$(printf '\n'; show "$err")"
	read -r _ _ n _ _ _ x _ <<<"$line"
	ATT_MS[$mode]+="$x "
	ATT_SITES[$mode]=$n
	line=$(grep -m1 -E '^memwatch: detached in [0-9.]+ ms$' "$err") ||
		die "memwatch --attach-mode $mode printed no 'detached' line; its stderr:$(printf '\n'; show "$err")"
	read -r _ _ _ y _ <<<"$line"
	DET_MS[$mode]+="$y "
	# "memwatch: profiling pid P (gtcxx): N probe sites in jemalloc,glibc"
	line=$(grep -m1 '^memwatch: profiling pid' "$err") || line=
	local probed
	IFS=, read -r -a probed <<<"${line##* probe sites in }"
	if ! in_list glibc "${probed[@]}" || ! in_list jemalloc "${probed[@]}"; then
		die "memwatch --attach-mode $mode did not probe both glibc and jemalloc:$(printf '\n'; show "$err")"
	fi
	printf 'bench.sh: attach run %d/%d %-8s %3d sites, attached in %8s ms, detached in %8s ms\n' \
		"$run" "$ATTACH_RUNS" "$mode" "$n" "$x" "$y" >&2
}

START=$(now)
# The attach/detach runs first: they are short, and fail early if they fail.
if ((ATTACH_RUNS > 0 && ${#MODES[@]})); then
	for ((r = 1; r <= ATTACH_RUNS; r++)); do
		for ((i = 0; i < ${#MODES[@]}; i++)); do
			attach_one "${MODES[(i + r - 1) % ${#MODES[@]}]}" "$r"
		done
	done
fi
CHURN_START=$(now)
echo "bench.sh: $ROUNDS rounds of ${#RUNS[@]} runs (${RUNS[*]}); $PAIRS pairs of $SIZE bytes ($S1_PAIRS for s1); memwatch's default attaches with $AUTO_MODE here" >&2
for ((r = 1; r <= ROUNDS; r++)); do
	# Round-robin, starting one run later each round so that no
	# configuration always runs first (cold caches) or last.
	for ((i = 0; i < ${#RUNS[@]}; i++)); do
		measure "${RUNS[(i + r - 1) % ${#RUNS[@]}]}" "$r"
	done
done
CHURN_TOOK=$(awk -v s="$CHURN_START" -v n="$(now)" 'BEGIN { printf "%.0f", n - s }')
TOOK=$(awk -v s="$START" -v n="$(now)" 'BEGIN { printf "%.0f", n - s }')

# ---- tables ------------------------------------------------------------

declare -A MED
for k in "${RUNS[@]}"; do MED[$k]=$(median "${NS[$k]}"); done
[[ $FLOOR_OF_AUTO != floor && -n $FLOOR_OF_AUTO && -n ${MED[glibc/$FLOOR_OF_AUTO]:-} ]] &&
	MED[glibc/floor]=${MED[glibc/$FLOOR_OF_AUTO]} && NS[glibc/floor]=${NS[glibc/$FLOOR_OF_AUTO]}
med() { echo "${MED[$1]:-}"; }
has() { [[ -n ${MED[$1]:-} ]]; }

CMDLINE="tools/bench.sh"
((${#ORIG_ARGS[@]})) && CMDLINE+=$(printf ' %q' "${ORIG_ARGS[@]}")
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
pkg_version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"; }

samples_of() {
	local s="-"
	if [[ -n ${SAMPLES[$1]:-} ]]; then
		s=$(median "${SAMPLES[$1]//\?/}" 2>/dev/null) && s=$(fmt_int "$s") || s="?"
	fi
	echo "$s"
}
share_of() {
	local s="-"
	[[ -n ${CPU_SHARE[$1]:-} ]] && s=$(median "${CPU_SHARE[$1]}")
	echo "$s"
}

cat <<EOF
### memwatch probe cost: churn, ns per malloc+free pair

Command: \`$CMDLINE\` ($ROUNDS rounds of ${#RUNS[@]} runs, every allocator and configuration interleaved round-robin, medians; took ${TOOK}s, ${CHURN_TOOK}s of them churn runs)
Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); kernel: $(uname -r) ($(uname -m)); CPU: ${CPU:-unknown}, $(nproc) CPUs
Other processes: $DISTURBED_KEPT of $KEPT runs kept had other processes keeping more than $MAX_OTHER CPUs busy during the loop ($REDONE disturbed runs were run again, up to $REDO times each; ${QUIET_WAITED}s spent waiting for idle CPUs before runs)
Other processes holding BPF links or perf events during the runs: $(tracers_list)
$("$MEMWATCH" -V 2>&1 | head -n1) (\`memwatch -V\`; binary sha256 $MEMWATCH_SUM, copied from $MEMWATCH_SRC at start), tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown); glibc $(ldd --version 2>&1 | head -n1 | awk '{ print $NF }'), jemalloc $(pkg_version libjemalloc2), tcmalloc $(pkg_version libgoogle-perftools4); churn: \`gcc -O2 -g\`, $SIZE-byte blocks, 1 thread, $(fmt_int "$PAIRS") pairs per run; memwatch's default attach mode here: $AUTO_MODE
EOF

if in_list glibc "${ALLOCATORS[@]}"; then
	cat <<EOF

#### glibc: the table of earlier releases

| configuration | pairs per run | median ns/pair | range | x floor | x none | samples (median) | memwatch CPU, % of a core |
|---|--:|--:|--:|--:|--:|--:|--:|
EOF
	for c in none floor default fp s1; do
		has "glibc/$c" || continue
		pairs=$PAIRS
		[[ $c == s1 ]] && pairs=$S1_PAIRS
		label=${LABEL[$c]}
		[[ $c == floor && $FLOOR_OF_AUTO != floor ]] &&
			label+=" (auto = $AUTO_MODE here: the ${FLOOR_OF_AUTO/-/ } runs below)"
		printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$(fmt_int "$pairs")" \
			"$(fmt "$(med "glibc/$c")")" "$(spread "${NS[glibc/$c]}")" "$(ratio "$(med "glibc/$c")" "$(med glibc/floor)")" \
			"$(ratio "$(med "glibc/$c")" "$(med glibc/none)")" "$(samples_of "glibc/$c")" "$(share_of "glibc/$c")"
	done
	echo
	has glibc/default && has glibc/floor &&
		echo "- memwatch default / floor: **$(ratio "$(med glibc/default)" "$(med glibc/floor)")x** (memwatch's own work on top of the probe traps)"
	has glibc/floor && has glibc/none &&
		echo "- floor / none: **$(ratio "$(med glibc/floor)" "$(med glibc/none)")x** (what the uprobe traps cost by themselves)"
	has glibc/s1 && has glibc/floor &&
		echo "- memwatch -s 1 / floor: $(ratio "$(med glibc/s1)" "$(med glibc/floor)")x (run with $(fmt_int "$S1_PAIRS") pairs instead of $(fmt_int "$PAIRS"): every call records a stack)"
	has glibc/default && has glibc/fp &&
		echo "- DWARF stacks / frame-pointer stacks at the default interval: **$(ratio "$(med glibc/default)" "$(med glibc/fp)")x** ns/pair"
	[[ -n ${US_PER_STACK[glibc/s1]:-} ]] &&
		echo "- memwatch's CPU per 1,000 stacks unwound (DWARF, from the -s 1 runs): **$(awk -v u="$(median "${US_PER_STACK[glibc/s1]}")" 'BEGIN { printf "%.1f", u }') ms**"
	echo "  (memwatch CPU = its CPU time while churn's loop ran, over the loop's duration, from /proc/PID/stat)"
fi

for a in "${ALLOCATORS[@]}"; do
	pre=${PRELOAD[$a]}
	how="churn as built"
	[[ -n $pre ]] && how="LD_PRELOAD=$pre on churn only"
	cat <<EOF

#### $a: floors and memwatch ($how)

| configuration | probe sites | median ns/pair | range | x none | x classic floor | x its floor | samples (median) | memwatch CPU, % of a core | other CPUs busy (median) |
|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|
EOF
	for c in none classic-floor session-floor one-trap-floor default alloc-only; do
		has "$a/$c" || continue
		own="-"
		case "$c" in
		default) own="$(ratio "$(med "$a/$c")" "$(med "$a/session-floor")") (session floor)" ;;
		alloc-only) own="$(ratio "$(med "$a/$c")" "$(med "$a/one-trap-floor")") (one-trap floor)" ;;
		esac
		other="-"
		[[ -n ${OTHER[$a/$c]:-} ]] && other=$(median "${OTHER[$a/$c]}" %.2f)
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "${LABEL[$c]}" "${SITES[$a/$c]:--}" \
			"$(fmt "$(med "$a/$c")")" "$(spread "${NS[$a/$c]}")" "$(ratio "$(med "$a/$c")" "$(med "$a/none")")" \
			"$(ratio "$(med "$a/$c")" "$(med "$a/classic-floor")")" "$own" "$(samples_of "$a/$c")" "$(share_of "$a/$c")" "$other"
	done
done

cat <<EOF

#### Summary: medians (ns/pair) and ratios

| allocator | none | classic floor | session floor | one-trap floor | default | alloc-only | default / session floor (goal <= 1.1) | alloc-only / one-trap floor (goal <= 1.1) | default / classic floor | session floor / classic floor |
|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|
EOF
for a in "${ALLOCATORS[@]}"; do
	cells=()
	for c in none classic-floor session-floor one-trap-floor default alloc-only; do
		if has "$a/$c"; then cells+=("$(fmt "$(med "$a/$c")")"); else cells+=("-"); fi
	done
	r1=$(ratio "$(med "$a/default")" "$(med "$a/session-floor")")
	r2=$(ratio "$(med "$a/alloc-only")" "$(med "$a/one-trap-floor")")
	printf '| %s | %s | %s | %s | %s | %s | %s | %s (%s) | %s (%s) | %s | %s |\n' "$a" "${cells[@]}" \
		"$r1" "$(goal "$r1" 1.1)" "$r2" "$(goal "$r2" 1.1)" \
		"$(ratio "$(med "$a/default")" "$(med "$a/classic-floor")")" \
		"$(ratio "$(med "$a/session-floor")" "$(med "$a/classic-floor")")"
done
cat <<EOF

- Ratios are of medians; "its floor" is the session floor for the default and
  the one-trap floor for --alloc-only: memwatch's own BPF work on top of the
  traps it cannot avoid. A run's own noise here is several percent (see the
  ranges), so the same ratios taken within each round (the two runs a minute
  apart at most) follow: median, and range over the rounds.
EOF
# paired A B: the per-round ratios NS[A]/NS[B], space-separated.
paired() {
	local -a x y
	local i
	read -r -a x <<<"${NS[$1]:-}"
	read -r -a y <<<"${NS[$2]:-}"
	for ((i = 0; i < ${#x[@]} && i < ${#y[@]}; i++)); do
		awk -v a="${x[i]}" -v b="${y[i]}" 'BEGIN { if (b > 0) printf "%.3f ", a / b }'
	done
}
for a in "${ALLOCATORS[@]}"; do
	line=""
	for pair in default:session-floor alloc-only:one-trap-floor session-floor:classic-floor; do
		num=${pair%%:*} den=${pair#*:}
		if ! has "$a/$num" || ! has "$a/$den"; then continue; fi
		v=$(paired "$a/$num" "$a/$den")
		[[ -n $v ]] || continue
		line+="${line:+; }$num / $den $(median "$v" %.2f) ($(tr ' ' '\n' <<<"$v" | grep -v '^$' | sort -g | sed -n '1p;$p' | awk '{ printf "%s%.2f", (NR > 1 ? "-" : ""), $1 }'))"
	done
	[[ -n $line ]] && echo "- $a, per round: $line"
done
for a in "${ALLOCATORS[@]}"; do
	has "$a/default" && has "$a/session-floor" &&
		printf -- '- %s: memwatch adds %s ns/pair over the session floor (default), %s ns/pair over the one-trap floor (--alloc-only)\n' "$a" \
			"$(awk -v x="$(med "$a/default")" -v y="$(med "$a/session-floor")" 'BEGIN { printf "%.0f", x - y }')" \
			"$(has "$a/alloc-only" && has "$a/one-trap-floor" && awk -v x="$(med "$a/alloc-only")" -v y="$(med "$a/one-trap-floor")" 'BEGIN { printf "%.0f", x - y }' || echo n/a)"
done

if ((ATTACH_RUNS > 0 && ${#MODES[@]})); then
	cat <<EOF

#### Attach and detach: \`memwatch -v -p PID -d 0.5 --attach-mode M -o FILE\`

Target: \`LD_PRELOAD=$JEMALLOC_SO tests/workloads/bin/gtcxx --wait\` (glibc, libstdc++ and jemalloc loaded, idle); $ATTACH_RUNS runs per mode, interleaved; medians (range) of memwatch's \`attached N probe sites in X ms\` and \`detached in Y ms\` lines.

| attach mode | probe sites | attach, ms | detach, ms |
|---|--:|--:|--:|
EOF
	for m in "${MODES[@]}"; do
		[[ -n ${ATT_MS[$m]:-} ]] || continue
		printf '| %s | %s | %s (%s) | %s (%s) |\n' "$m" "${ATT_SITES[$m]}" \
			"$(fmt "$(median "${ATT_MS[$m]}")")" "$(spread "${ATT_MS[$m]}")" \
			"$(fmt "$(median "${DET_MS[$m]}")")" "$(spread "${DET_MS[$m]}")"
	done
fi
