#!/usr/bin/env bash
# shellcheck disable=SC2034 # QUIET_* and MAX_OTHER are read by bench-lib.sh
# --max-overhead benchmark: the slowdown memwatch's duty cycle achieves on
# tools/churn.c with work between the calls (--work K loop iterations per
# malloc+free pair), for budgets 5, 10 and 25%, side by side with no probes
# and with the probes always on, all interleaved round-robin, medians.
#
# Configurations (memwatch attaches with -p while churn waits):
#   none        no probes
#   budget-P    memwatch -v -p PID --hook uprobe --max-overhead P -o FILE, P in --budgets
#   always-on   memwatch -p PID --hook uprobe -o FILE (run with N/10 pairs: it is slow)
# (--hook uprobe: the budget is for uprobe traps; detours take none to budget)
#
# Two slowdowns, each a median over rounds against none's median:
#   wall   churn's ns per pair (its loop's wall time);
#   CPU    churn's user + system time per pair (getrusage at its end): the
#          probes' traps run in churn's context and count there. On a
#          machine other processes share, CPU time moves less than wall
#          time: a run that waits for a CPU is slower but uses no more.
# And, from each budget run's profile comment (memwatch -v), the cost per
# trap it measured in churn, its always-on estimate, the share of time the
# probes were attached, and its own account of the probe time.
#
#   tools/bench-budget.sh [--rounds R] [--pairs N] [--work K] [--budgets LIST]
#                         [--quiet-wait S]
#
# Run as root after `make memwatch` (`tools/bench.sh --budget` runs it).
# Prints a Markdown table to stdout; progress goes to stderr.
set -euo pipefail

source "${MW_BENCH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/tools/bench-lib.sh"
run_from_private_copy "$@"

usage() {
	cat <<'EOF'
usage: tools/bench-budget.sh [--rounds R] [--pairs N] [--work K] [--budgets LIST]
                             [--quiet-wait S]
  --rounds R      rounds of every configuration, interleaved (default 7)
  --pairs N       malloc+free pairs per run (default 2000000; always-on N/10)
  --work K        churn's loop iterations of work per pair (default 5000)
  --budgets LIST  comma-separated --max-overhead percentages (default 5,10,25)
  --quiet-wait S  before each run, wait up to S seconds (120 in all) for idle
                  CPUs (default 5; 0: do not wait)
Environment: MEMWATCH (default ./memwatch).
EOF
}

die() {
	echo "bench-budget.sh: error: $*" >&2
	exit 1
}

ORIG_ARGS=("$@")
ROUNDS=7
PAIRS=2000000
WORK=5000
BUDGETS=(5 10 25)
# wait_quiet (bench-lib.sh) reads these.
QUIET_WAIT=5 QUIET_BUDGET=120 QUIET_WAITED=0 MAX_OTHER=0.15
while (($#)); do
	case "$1" in
	--rounds | --pairs | --work | --quiet-wait)
		(($# >= 2)) || die "$1 needs a value"
		[[ $2 =~ ^[0-9]{1,12}$ ]] || die "$1: '$2' is not a number"
		case "$1" in
		--rounds) ROUNDS=$((10#$2)) ;;
		--pairs) PAIRS=$((10#$2)) ;;
		--work) WORK=$((10#$2)) ;;
		--quiet-wait) QUIET_WAIT=$((10#$2)) ;;
		esac
		shift 2
		;;
	--budgets)
		(($# >= 2)) || die "$1 needs a value"
		IFS=, read -r -a BUDGETS <<<"$2"
		((${#BUDGETS[@]})) || die "--budgets: empty list"
		for b in "${BUDGETS[@]}"; do [[ $b =~ ^[0-9]{1,4}$ ]] && ((b > 0)) || die "--budgets: '$b' is not a percentage"; done
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
((PAIRS >= 100)) || die "--pairs must be at least 100"

ROOT=$MW_BENCH_ROOT
MEMWATCH=${MEMWATCH:-$ROOT/memwatch}
CHURN=$ROOT/.output/churn
READY_TIMEOUT=10
EXIT_TIMEOUT=60
RUN_TIMEOUT=$((60 + PAIRS / 20000))

(($(id -u) == 0)) || die "needs root (memwatch loads BPF programs)"
[[ -x $MEMWATCH ]] || die "$MEMWATCH not found: run 'make memwatch' first"
mkdir -p "$ROOT/.output"
gcc -O2 -g -std=gnu11 -Wall -Wextra -pthread "$ROOT/tools/churn.c" -o "$CHURN" || die "cannot build tools/churn.c"

TMP=$(mktemp -d /tmp/memwatch-bench-budget.XXXXXX)
TARGET_PID='' MW_PID=''
cleanup() {
	local p
	for p in $MW_PID $TARGET_PID ${TIMER_PID:-}; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cp "$MEMWATCH" "$TMP/memwatch" || die "cannot copy $MEMWATCH"
MEMWATCH_SRC=$MEMWATCH MEMWATCH=$TMP/memwatch

CONFIGS=(none)
for b in "${BUDGETS[@]}"; do CONFIGS+=("budget-$b"); done
CONFIGS+=(always-on)
# Keyed by configuration: space-separated values, one per round.
declare -A NS CPU USER SYS ATTACHED COST ALWAYS PROBE OTHER

# run_one CONFIG ROUND: one churn run, its numbers appended to the arrays.
run_one() {
	local cfg=$1 round=$2 pairs=$PAIRS line
	local out=$TMP/churn.$cfg.$round.out err=$TMP/mw.$cfg.$round.err prof=$TMP/$cfg.$round.pb.gz
	local -a mw_args=()
	case "$cfg" in
	none) ;;
	always-on)
		mw_args=(--hook uprobe -o "$prof")
		pairs=$((PAIRS / 10))
		;;
	budget-*) mw_args=(-v --hook uprobe --max-overhead "${cfg#budget-}" -o "$prof") ;;
	esac
	env -u LD_PRELOAD "$CHURN" --wait --pairs "$pairs" --work "$WORK" >"$out" 2>&1 &
	TARGET_PID=$!
	wait_line "$out" '^ready [0-9]+$' "$TARGET_PID" "$READY_TIMEOUT" churn
	if ((${#mw_args[@]})); then
		"$MEMWATCH" -p "$TARGET_PID" "${mw_args[@]}" >/dev/null 2>"$err" &
		MW_PID=$!
		wait_line "$err" '^memwatch: profiling pid' "$MW_PID" "$READY_TIMEOUT" "memwatch ${mw_args[*]}"
	fi
	local s0 s1
	s0=$(sys_ticks)
	kill -USR1 "$TARGET_PID"
	wait_exit "$TARGET_PID" "$RUN_TIMEOUT" || die "churn ($cfg) still running after ${RUN_TIMEOUT}s"
	s1=$(sys_ticks)
	TARGET_PID=
	((RC == 0)) || die "churn ($cfg) exited with status $RC:$(printf '\n'; show "$out")"
	local ns user sys
	ns=$(sed -n 's/^ns_per_pair=//p' "$out")
	read -r user sys < <(sed -n 's/^user_s=\([0-9.]*\) sys_s=\([0-9.]*\)$/\1 \2/p' "$out")
	[[ -n $ns && -n ${sys:-} ]] || die "churn ($cfg) printed no ns_per_pair or user_s line:$(printf '\n'; show "$out")"
	NS[$cfg]+="$ns "
	CPU[$cfg]+="$(awk -v u="$user" -v s="$sys" -v n="$pairs" 'BEGIN { printf "%.2f", 1e9 * (u + s) / n }') "
	USER[$cfg]+="$(awk -v u="$user" -v n="$pairs" 'BEGIN { printf "%.2f", 1e9 * u / n }') "
	SYS[$cfg]+="$(awk -v s="$sys" -v n="$pairs" 'BEGIN { printf "%.2f", 1e9 * s / n }') "
	# All CPUs' busy time beyond one (churn's), over the wall time.
	OTHER[$cfg]+="$(awk -v s0="$s0" -v s1="$s1" -v n="$NCPU_STAT" 'BEGIN { split(s0, a); split(s1, b)
		w = (b[2] - a[2]) / n; v = (w > 0 ? (b[1] - a[1]) / w - 1 : 0); printf "%.2f", (v < 0 ? 0 : v) }') "
	if [[ -n $MW_PID ]]; then
		kill -INT "$MW_PID" 2>/dev/null || true
		wait_exit "$MW_PID" "$EXIT_TIMEOUT" || die "memwatch ($cfg) did not exit:$(printf '\n'; show "$err")"
		MW_PID=
		((RC == 0)) || die "memwatch ($cfg) exited with status $RC:$(printf '\n'; show "$err")"
	fi
	if [[ $cfg == budget-* ]]; then
		# "duty cycle (...): allocator probes attached A% of ...; a probe
		# trap cost the target C us: ...; always attached about O%; probe
		# time P s, Q% of the target's own ..."
		line=$(grep -m1 '^memwatch: duty cycle' "$err") || die "memwatch ($cfg) printed no duty cycle line:$(printf '\n'; show "$err")"
		ATTACHED[$cfg]+="$(sed -n 's/.*probes attached \([0-9.]*\)% of.*/\1/p' <<<"$line") "
		COST[$cfg]+="$(sed -n 's/.*a probe trap cost the target \([0-9.]*\) us.*/\1/p' <<<"$line") "
		ALWAYS[$cfg]+="$(sed -n 's/.*always attached about \([0-9]*\)%.*/\1/p' <<<"$line") "
		PROBE[$cfg]+="$(sed -n 's/.*probe time [0-9.]* s, \([0-9.]*\)% of.*/\1/p' <<<"$line") "
	fi
	rm -f "$prof" "${prof%.pb.gz}.pages.pb.gz"
	printf 'bench-budget.sh: round %d/%d %-10s %10s ns/pair, %10s CPU ns/pair, other CPUs busy %s\n' "$round" "$ROUNDS" \
		"$cfg" "$ns" "$(awk '{ print $NF }' <<<"${CPU[$cfg]}")" "$(awk '{ print $NF }' <<<"${OTHER[$cfg]}")" >&2
}

START=$(now)
for ((r = 1; r <= ROUNDS; r++)); do
	for ((i = 0; i < ${#CONFIGS[@]}; i++)); do
		wait_quiet
		run_one "${CONFIGS[(i + r - 1) % ${#CONFIGS[@]}]}" "$r"
	done
done
TOOK=$(awk -v s="$START" -v n="$(now)" 'BEGIN { printf "%.0f", n - s }')

CMDLINE="tools/bench.sh --budget"
((${#ORIG_ARGS[@]})) && CMDLINE+=$(printf ' %q' "${ORIG_ARGS[@]}")
# paired CFG ARRAY: each round's CFG value over none's of the same round, as
# slowdowns in percent, space-separated (ARRAY: NS or CPU).
paired() {
	local -n arr=$2
	local -a x y
	local i
	read -r -a x <<<"${arr[$1]}"
	read -r -a y <<<"${arr[none]}"
	for ((i = 0; i < ${#x[@]} && i < ${#y[@]}; i++)); do
		awk -v a="${x[i]}" -v b="${y[i]}" 'BEGIN { if (b > 0) printf "%.1f ", 100 * (a / b - 1) }'
	done
}
spread() {
	tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | sed -n '1p;$p' | awk '{ printf "%s%+.1f%%", (NR > 1 ? ".." : ""), $1 }'
}
cat <<EOF
### --max-overhead: achieved slowdown on churn --work $WORK

Command: \`$CMDLINE\` ($ROUNDS rounds of ${#CONFIGS[@]} runs interleaved, medians; took ${TOOK}s)
Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); kernel $(uname -r); $(nproc) CPUs; page-table isolation: $(cat /sys/devices/system/cpu/vulnerabilities/meltdown 2>/dev/null || echo unknown)
$("$MEMWATCH" -V 2>&1 | head -n1), copied from $MEMWATCH_SRC; tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown); churn: $(printf "%'d" "$PAIRS") pairs of 64 bytes per run (always-on: a tenth), glibc, 1 thread
Other processes (CPUs busy beyond churn's, median over all runs): $(median "$(printf '%s' "${OTHER[@]}")" %.2f); ${QUIET_WAITED}s spent waiting for idle CPUs

| configuration | wall ns/pair | wall slowdown, paired (range) | CPU ns/pair (user + system) | CPU slowdown, paired (range) | attached | cost per trap (measured) | always-on estimate | probe time / own CPU (memwatch's account) |
|---|--:|--:|--:|--:|--:|--:|--:|--:|
EOF
for cfg in "${CONFIGS[@]}"; do
	ns=$(median "${NS[$cfg]}" %.2f)
	cpu=$(median "${CPU[$cfg]}" %.2f)
	att=- cost=- always=- probe=- label=$cfg
	case "$cfg" in
	none) label="none (no probes)" ;;
	always-on) label="probes always on (\`memwatch -p PID --hook uprobe -o FILE\`)" ;;
	budget-*)
		label="\`--max-overhead ${cfg#budget-}\`"
		att="$(median "${ATTACHED[$cfg]}")%"
		cost="$(median "${COST[$cfg]}" %.2f) us"
		always="$(median "${ALWAYS[$cfg]}" %.0f)%"
		probe="$(median "${PROBE[$cfg]}")%"
		;;
	esac
	wall="-" cpuslow="-"
	if [[ $cfg != none ]]; then
		v=$(paired "$cfg" NS)
		wall="$(median "$v" %+.1f)% ($(spread "$v"))"
		v=$(paired "$cfg" CPU)
		cpuslow="$(median "$v" %+.1f)% ($(spread "$v"))"
	fi
	printf '| %s | %.1f | %s | %.1f (%.1f + %.1f) | %s | %s | %s | %s | %s |\n' "$label" "$ns" "$wall" "$cpu" \
		"$(median "${USER[$cfg]}" %.2f)" "$(median "${SYS[$cfg]}" %.2f)" "$cpuslow" "$att" "$cost" "$always" "$probe"
done
cat <<EOF

- Paired: each round's run against the same round's run without probes, median
  over rounds (range). CPU is churn's own user + system time per pair (the
  probes' traps run in its context); other processes on the machine move its
  user time by 10-20% from run to run, its system time hardly.
- Target: within +-30% of the budget (10% gives 7-13%).
EOF
