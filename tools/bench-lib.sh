#!/usr/bin/env bash
# What the benchmark scripts share (sourced by tools/bench.sh,
# tools/bench-budget.sh and tools/bench-redis.sh): clocks, CPU accounting, other tracers, waiting for
# processes and their lines, medians. Callers define die() and TMP.

# bash reads a script as it goes: the caller runs from a private copy, so
# that editing (or checking out) it during a run cannot change what the run
# does. The first call re-executes the script from the copy; in the copy it
# removes the file (bash keeps it open). MW_BENCH_ROOT: the source tree.
run_from_private_copy() {
	if [[ -n ${MW_BENCH_COPY:-} ]]; then
		rm -f "$MW_BENCH_COPY"
		export -n MW_BENCH_ROOT MW_BENCH_COPY
		return
	fi
	MW_BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[1]}")/.." && pwd)
	MW_BENCH_COPY=$(mktemp "/tmp/memwatch-$(basename "${BASH_SOURCE[1]}" .sh).XXXXXX")
	cp "${BASH_SOURCE[1]}" "$MW_BENCH_COPY"
	export MW_BENCH_ROOT MW_BENCH_COPY
	exec bash "$MW_BENCH_COPY" "$@"
}

CLK_TCK=$(getconf CLK_TCK)
NCPU_STAT=$(grep -c '^cpu[0-9]' /proc/stat)
declare -A TRACERS=()
TIMER_PID=

# in_list WORD WORDS...: whether WORD is one of WORDS.
in_list() {
	local w=$1 x
	shift
	for x in "$@"; do [[ $x == "$w" ]] && return 0; done
	return 1
}

now() { date +%s.%N; }

elapsed_over() { awk -v s="$1" -v n="$(now)" -v t="$2" 'BEGIN { exit !(n - s > t) }'; }

show() { sed 's/^/  | /' "$1"; }

# utime + stime of PID in clock ticks (0 once it is gone).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# shell_ticks VAR: sets VAR to the CPU clock ticks this shell and its reaped
# children used so far (the builtin times, run in this shell: in a $(...)
# subshell it would count the subshell's).
shell_ticks() {
	times >"$TMP/times"
	printf -v "$1" '%s' "$(awk -v hz="$CLK_TCK" '{ for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] } }
		END { printf "%d", t * hz }' "$TMP/times")"
}

# Processes other than this script's holding BPF links or perf events
# (profilers, tracers), but PID: "comm(pid)" each, space-separated.
other_tracers() {
	local f pid
	find /proc/[0-9]*/fd -maxdepth 1 \( -lname 'anon_inode:bpf_link' -o -lname 'anon_inode:\[perf_event\]' \) 2>/dev/null |
		cut -d/ -f3 | sort -un | while read -r pid; do
		[[ $pid == "$$" || $pid == "${1:-x}" ]] && continue
		f=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
		printf '%s(%s) ' "$f" "$pid"
	done
}

tracers_list() {
	if ((${#TRACERS[@]})); then
		echo "${!TRACERS[*]}"
	else
		echo none
	fi
}

note_tracers() {
	local t
	for t in $(other_tracers "${1:-}"); do TRACERS[$t]=1; done
}

# "busy total" clock ticks of all CPUs together, from /proc/stat.
sys_ticks() { awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6; exit }' /proc/stat; }

# Whether child PID has exited (zombie or reaped): kill -0 succeeds on zombies.
exited() {
	local state
	state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 0
	[[ -z $state || $state == Z || $state == X ]]
}

wait_exit() {
	local pid=$1 limit=$2 finished=
	sleep "$limit" &
	TIMER_PID=$!
	RC=0
	wait -n -p finished "$pid" "$TIMER_PID" || RC=$?
	[[ $finished == "$pid" ]] || return 1
	kill "$TIMER_PID" 2>/dev/null || true
	wait "$TIMER_PID" 2>/dev/null || true
	TIMER_PID=
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
			die "$what exited (status $RC) before printing /$re/; its output:$(printf '\n'; show "$file")"
		fi
		elapsed_over "$start" "$limit" && die "$what printed no /$re/ within ${limit}s; its output:$(printf '\n'; show "$file")"
		sleep 0.02
	done
}

# wait_quiet: (callers set QUIET_WAIT, QUIET_BUDGET, QUIET_WAITED=0 and
# MAX_OTHER) waits (up to QUIET_WAIT s per run, QUIET_BUDGET s in all)
# until the CPUs are idle for a third of a second, so that a run does not
# start in the middle of someone else's build or test.
wait_quiet() {
	local start s0 s1 busy
	((QUIET_WAIT > 0)) || return 0
	start=$(now)
	while :; do
		s0=$(sys_ticks)
		sleep 0.3
		s1=$(sys_ticks)
		busy=$(awk -v s0="$s0" -v s1="$s1" -v n="$NCPU_STAT" 'BEGIN { split(s0, a); split(s1, b)
			w = (b[2] - a[2]) / n; printf "%.2f", (w > 0 ? (b[1] - a[1]) / w : 0) }')
		awk -v b="$busy" -v m="$MAX_OTHER" 'BEGIN { exit !(b <= m) }' && break
		elapsed_over "$start" "$QUIET_WAIT" && break
		awk -v w="$QUIET_WAITED" -v s="$start" -v n="$(now)" -v b="$QUIET_BUDGET" 'BEGIN { exit !(w + n - s > b) }' && break
	done
	QUIET_WAITED=$(awk -v w="$QUIET_WAITED" -v s="$start" -v n="$(now)" 'BEGIN { printf "%.1f", w + n - s }')
}

# median VALUES [FORMAT]: median of whitespace-separated numbers (%.1f).
median() {
	tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk -v f="${2:-%.1f}" '{ v[NR] = $1 } END {
		if (NR == 0) exit 1
		if (NR % 2) printf f, v[(NR + 1) / 2]; else printf f, (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

# disturbed: whether the staged run had other processes busy on the CPUs.
disturbed() { [[ -n $R_OTHER ]] && awk -v o="$R_OTHER" -v m="$MAX_OTHER" 'BEGIN { exit !(o > m) }'; }
