#!/usr/bin/env bash
# Probe-cost benchmark: ns per malloc+free pair of tools/churn.c under
#   none     no probes
#   floor    memwatch -p PID --empty-probes   (empty BPF programs at memwatch's probe sites)
#   default  memwatch -p PID -o FILE          (sampling interval 524288 bytes, DWARF stacks)
#   fp       memwatch -p PID --stack-mode fp  (the same with frame-pointer stacks)
#   s1       memwatch -p PID -s 1 -o FILE     (every allocation recorded; fewer pairs)
# and memwatch's own CPU: its share of one core, and its cost per 1,000
# stacks (from the -s 1 runs, where every call yields a stack).
# measured side by side, round-robin, R rounds; prints a Markdown table of the
# medians to stdout (progress goes to stderr).
#
#   tools/bench.sh [--rounds R] [--pairs N] [--size BYTES]
#
# Run from anywhere, as root, after `make memwatch` (`make bench` does both).
# Builds churn itself into .output/churn.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: tools/bench.sh [--rounds R] [--pairs N] [--size BYTES]
  --rounds R     rounds of all five configurations, interleaved (default 5)
  --pairs N      malloc+free pairs per run (default 2000000); the -s 1
                 configuration runs N/10 pairs (every call is recorded there)
  --size BYTES   bytes per malloc (default 64)
EOF
}

die() {
	echo "bench.sh: error: $*" >&2
	exit 1
}

ORIG_ARGS=("$@")
ROUNDS=5
PAIRS=2000000
SIZE=64
while (($#)); do
	case "$1" in
	--rounds | --pairs | --size)
		(($# >= 2)) || die "$1 needs a value"
		[[ $2 =~ ^[0-9]{1,12}$ ]] || die "$1: '$2' is not a number"
		case "$1" in
		--rounds) ROUNDS=$((10#$2)) ;;
		--pairs) PAIRS=$((10#$2)) ;;
		--size) SIZE=$((10#$2)) ;;
		esac
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

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MEMWATCH=${MEMWATCH:-$ROOT/memwatch}	# overridable for testing the script
CHURN=$ROOT/.output/churn
READY_TIMEOUT=10	# s: churn's "ready" line, memwatch's "profiling pid" line
EXIT_TIMEOUT=30		# s: memwatch writing its profile and exiting after SIGINT
# s: one churn loop, generous even at 25 us per pair
RUN_TIMEOUT=$((30 + PAIRS / 40000))

(($(id -u) == 0)) || die "needs root (memwatch loads BPF programs)"
[[ -x $MEMWATCH ]] || die "$MEMWATCH not found: run 'make memwatch' first"
command -v gcc >/dev/null || die "gcc not found (needed to build tools/churn.c)"
mkdir -p "$ROOT/.output"
gcc -O2 -g -std=gnu11 -Wall -Wextra -pthread "$ROOT/tools/churn.c" -o "$CHURN" ||
	die "cannot build tools/churn.c"

TMP=$(mktemp -d /tmp/memwatch-bench.XXXXXX)
CHURN_PID=
MW_PID=
cleanup() {
	# Only the processes this script started, by pid.
	local p
	for p in $MW_PID $CHURN_PID; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
elapsed_over() { awk -v s="$1" -v n="$(now)" -v t="$2" 'BEGIN { exit !(n - s > t) }'; }

CLK_TCK=$(getconf CLK_TCK)
# utime + stime of PID in clock ticks (0 once it is gone).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Whether child PID has exited (zombie or reaped): kill -0 succeeds on zombies.
exited() {
	local state
	state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 0
	[[ -z $state || $state == Z || $state == X ]]
}

# wait_exit PID TIMEOUT: waits for child PID, sets RC; fails after TIMEOUT s.
wait_exit() {
	local pid=$1 limit=$2 start
	start=$(now)
	until exited "$pid"; do
		elapsed_over "$start" "$limit" && return 1
		sleep 0.02
	done
	RC=0
	wait "$pid" || RC=$?
	return 0
}

# wait_line FILE REGEX PID TIMEOUT WHAT: waits until FILE has a line matching
# REGEX; fails if child PID exits first or after TIMEOUT s.
wait_line() {
	local file=$1 re=$2 pid=$3 limit=$4 what=$5 start
	start=$(now)
	until grep -qE "$re" "$file" 2>/dev/null; do
		if exited "$pid"; then
			grep -qE "$re" "$file" 2>/dev/null && return 0
			RC=0
			wait "$pid" || RC=$?
			die "$what exited (status $RC) before printing /$re/; its output:$(printf '\n'; sed 's/^/  | /' "$file")"
		fi
		elapsed_over "$start" "$limit" && die "$what printed no /$re/ within ${limit}s; its output:$(printf '\n'; sed 's/^/  | /' "$file")"
		sleep 0.02
	done
}

CONFIGS=(none floor default fp s1)
declare -A LABEL=(
	[none]="none (no probes)"
	[floor]="floor: \`memwatch -p PID --empty-probes\`"
	[default]="memwatch default: \`memwatch -p PID -o FILE\` (-s 524288, DWARF stacks)"
	[fp]="memwatch, frame-pointer stacks: \`memwatch -p PID --stack-mode fp -o FILE\`"
	[s1]="memwatch -s 1: \`memwatch -p PID -s 1 -o FILE\`"
)
declare -A NS SAMPLES CPU_SHARE US_PER_STACK

# run_one CONFIG ROUND: one measurement; appends ns/pair to NS[CONFIG].
run_one() {
	local cfg=$1 round=$2 pairs=$PAIRS pid ns line
	local out=$TMP/churn.$cfg.$round.out err=$TMP/memwatch.$cfg.$round.err prof=$TMP/profile.$cfg.$round.pb.gz
	local -a mw_args=()
	case "$cfg" in
	none) ;;
	floor) mw_args=(--empty-probes) ;;
	default) mw_args=(-o "$prof") ;;
	fp) mw_args=(--stack-mode fp -o "$prof") ;;
	s1)
		mw_args=(-s 1 -o "$prof")
		pairs=$S1_PAIRS
		;;
	esac

	"$CHURN" --wait --pairs "$pairs" --size "$SIZE" >"$out" 2>&1 &
	CHURN_PID=$!
	wait_line "$out" '^ready [0-9]+$' "$CHURN_PID" "$READY_TIMEOUT" "churn"
	pid=$(sed -n 's/^ready \([0-9][0-9]*\)$/\1/p' "$out" | head -n1)
	[[ $pid == "$CHURN_PID" ]] || die "churn said 'ready $pid', expected pid $CHURN_PID"

	if ((${#mw_args[@]})); then
		"$MEMWATCH" -p "$pid" "${mw_args[@]}" 2>"$err" >/dev/null &
		MW_PID=$!
		wait_line "$err" '^memwatch: profiling pid' "$MW_PID" "$READY_TIMEOUT" "memwatch -p $pid ${mw_args[*]}"
	fi

	local ticks0=0 ticks1=0
	[[ -n $MW_PID ]] && ticks0=$(cpu_ticks "$MW_PID")
	kill -USR1 "$pid"
	wait_exit "$CHURN_PID" "$RUN_TIMEOUT" || die "churn ($cfg, $pairs pairs) still running after ${RUN_TIMEOUT}s"
	[[ -n $MW_PID ]] && ticks1=$(cpu_ticks "$MW_PID")
	CHURN_PID=
	((RC == 0)) || die "churn ($cfg) exited with status $RC; its output:$(printf '\n'; sed 's/^/  | /' "$out")"
	line=$(grep -E '^ns_per_pair=' "$out" || true)
	ns=${line#ns_per_pair=}
	[[ $ns =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "churn ($cfg) printed no ns_per_pair line; its output:$(printf '\n'; sed 's/^/  | /' "$out")"

	if [[ -n $MW_PID ]]; then
		# memwatch may already be on its way out: it stops when the target exits.
		kill -INT "$MW_PID" 2>/dev/null || true
		wait_exit "$MW_PID" "$EXIT_TIMEOUT" ||
			die "memwatch ($cfg) did not exit within ${EXIT_TIMEOUT}s of SIGINT; its stderr:$(printf '\n'; sed 's/^/  | /' "$err")"
		MW_PID=
		((RC == 0)) || die "memwatch ${mw_args[*]} exited with status $RC; its stderr:$(printf '\n'; sed 's/^/  | /' "$err")"
		if [[ $cfg != floor ]]; then
			[[ -s $prof ]] || die "memwatch ($cfg) exited 0 but wrote no profile $prof"
			local s
			s=$(sed -n 's/^memwatch: done after .*: \([0-9][0-9]*\) samples.*/\1/p' "$err" | head -n1)
			SAMPLES[$cfg]+="${s:-?} "
			# "memwatch: own cost: C s CPU over T s, U us per stack (...)"
			local cost
			cost=$(sed -n 's/^memwatch: own cost: \([0-9.]*\) s CPU over \([0-9.]*\) s, \([0-9.]*\) us per stack.*/\1 \2 \3/p' "$err" | head -n1)
			[[ -n $cost ]] || die "memwatch ($cfg) printed no 'own cost' line; its stderr:$(printf '\n'; sed 's/^/  | /' "$err")"
			read -r _ _ us <<<"$cost"
			# memwatch's CPU while the loop ran, against the loop's duration.
			CPU_SHARE[$cfg]+="$(awk -v t0="$ticks0" -v t1="$ticks1" -v hz="$CLK_TCK" -v n="$pairs" -v ns="$ns" \
				'BEGIN { d = n * ns / 1e9; printf "%.2f", (d > 0 ? 100 * (t1 - t0) / hz / d : 0) }') "
			US_PER_STACK[$cfg]+="$us "
		fi
	fi
	NS[$cfg]+="$ns "
	printf 'bench.sh: round %d/%d %-8s %10s ns/pair (%d pairs)\n' "$round" "$ROUNDS" "$cfg" "$ns" "$pairs" >&2
}

# Median of whitespace-separated numbers.
median() {
	tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) exit 1
		if (NR % 2) printf "%.1f", v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
spread() {
	local lo hi
	lo=$(tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | head -n1)
	hi=$(tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | tail -n1)
	printf '%s-%s' "$(fmt "$lo")" "$(fmt "$hi")"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
fmt() { awk -v x="$1" 'BEGIN { s = sprintf("%.1f", x); n = split(s, p, "."); i = p[1]; o = ""
	while (length(i) > 3) { o = "," substr(i, length(i) - 2) o; i = substr(i, 1, length(i) - 3) }
	printf "%s%s.%s", i, o, p[2] }'; }

START=$(now)
echo "bench.sh: $ROUNDS rounds of ${CONFIGS[*]}; $PAIRS pairs of $SIZE bytes ($S1_PAIRS for s1); churn: $CHURN" >&2
for ((r = 1; r <= ROUNDS; r++)); do
	# Round-robin, starting one configuration later each round so that no
	# configuration always runs first (cold caches) or last.
	for ((i = 0; i < ${#CONFIGS[@]}; i++)); do
		run_one "${CONFIGS[(i + r - 1) % ${#CONFIGS[@]}]}" "$r"
	done
done
TOOK=$(awk -v s="$START" -v n="$(now)" 'BEGIN { printf "%.0f", n - s }')

declare -A MED
for c in "${CONFIGS[@]}"; do MED[$c]=$(median "${NS[$c]}"); done

CMDLINE="tools/bench.sh"
((${#ORIG_ARGS[@]})) && CMDLINE+=$(printf ' %q' "${ORIG_ARGS[@]}")
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)

cat <<EOF
### memwatch probe cost: churn, ns per malloc+free pair

Command: \`$CMDLINE\` ($ROUNDS rounds, configurations interleaved round-robin, medians; took ${TOOK}s)
Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); kernel: $(uname -r) ($(uname -m)); CPU: ${CPU:-unknown}, $(nproc) CPUs
$("$MEMWATCH" -V 2>&1 | head -n1) (\`memwatch -V\`), tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown); glibc $(ldd --version 2>&1 | head -n1 | awk '{ print $NF }'); churn: \`gcc -O2 -g\`, $SIZE-byte blocks, 1 thread

| configuration | pairs per run | median ns/pair | range | x floor | x none | samples (median) | memwatch CPU, % of a core |
|---|--:|--:|--:|--:|--:|--:|--:|
EOF
for c in "${CONFIGS[@]}"; do
	pairs=$PAIRS
	[[ $c == s1 ]] && pairs=$S1_PAIRS
	samples="-"
	if [[ -n ${SAMPLES[$c]:-} ]]; then
		samples=$(median "${SAMPLES[$c]//\?/}" 2>/dev/null) && samples=$(fmt "$samples" | sed 's/\..*$//') || samples="?"
	fi
	share="-"
	[[ -n ${CPU_SHARE[$c]:-} ]] && share=$(median "${CPU_SHARE[$c]}")
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "${LABEL[$c]}" "$(fmt "$pairs" | sed 's/\.0$//')" \
		"$(fmt "${MED[$c]}")" "$(spread "${NS[$c]}")" "$(ratio "${MED[$c]}" "${MED[floor]}")" \
		"$(ratio "${MED[$c]}" "${MED[none]}")" "$samples" "$share"
done
cat <<EOF

- memwatch default / floor: **$(ratio "${MED[default]}" "${MED[floor]}")x**
  (memwatch's own work on top of the probe traps; the target is at most 1.2x)
- floor / none: **$(ratio "${MED[floor]}" "${MED[none]}")x** (what the uprobe traps cost by themselves)
- memwatch -s 1 / floor: $(ratio "${MED[s1]}" "${MED[floor]}")x (run with $(fmt "$S1_PAIRS" | sed 's/\.0$//') pairs instead of $(fmt "$PAIRS" | sed 's/\.0$//'): every call records a stack)
- DWARF stacks / frame-pointer stacks at the default interval: **$(ratio "${MED[default]}" "${MED[fp]}")x** ns/pair
- memwatch's CPU per 1,000 stacks unwound (DWARF, from the -s 1 runs): **$(awk -v u="$(median "${US_PER_STACK[s1]}")" 'BEGIN { printf "%.1f", u }') ms**
  (memwatch CPU = its CPU time while churn's loop ran, over the loop's duration, from /proc/PID/stat)
EOF
