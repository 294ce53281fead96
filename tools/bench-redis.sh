#!/usr/bin/env bash
# Throughput benchmark on a real server: Debian's redis-server (jemalloc,
# glibc, libstdc++), requests per second from
#   redis-benchmark -p P -q -t set,get -n N -c C -d D --csv
# under
#   none         no profiler
#   default      memwatch -p REDISPID -o FILE (--hook auto: in-process detours)
#   uprobe       memwatch -p REDISPID --hook uprobe -o FILE (a trap per call)
#   alloc-only   memwatch -p REDISPID --alloc-only -o FILE
#   jemalloc-prof  jemalloc's own sampling profiler on a second redis-server,
#                started with MALLOC_CONF=prof:true,lg_prof_sample:19 (its
#                ratio is against the first server's none)
#   pages-only   memwatch -p REDISPID --pages-only -o FILE (only if
#                `memwatch --help` mentions --pages-only)
#   bpftrace     bpftrace -p REDISPID tools/memleak.bt REDISPID (what bcc's
#                memleak does on libjemalloc.so.2: uprobe + uretprobe at +0
#                of each allocation function, uprobe at +0 of each release
#                function, a map update per call)
# repeated and interleaved round-robin, medians; SET and GET separately.
# Each profiler is attached for the duration of one redis-benchmark run:
# started, waited for (memwatch's "profiling pid" line, bpftrace's
# "Attaching N probes" and BEGIN lines), then stopped with SIGINT after the
# benchmark; memwatch must exit 0 and write its profile. Every run must get
# every request answered: redis-benchmark exits 0 and redis' own
# total_commands_processed grows by exactly what the warm-up run showed
# (2N plus redis-benchmark's own set-up commands and one INFO).
#
# The machine may be shared: before each run the script waits a little for
# idle CPUs, measures how busy other processes kept the CPUs during the
# benchmark (all CPU time in /proc/stat but this script's, redis-benchmark's,
# redis-server's and the profiler's), runs a disturbed run again (--redo),
# and reports how many runs it kept disturbed, and which other processes held
# BPF links or perf events (other profilers) meanwhile.
#
# Prints a Markdown table to stdout; progress goes to stderr.
#
#   tools/bench-redis.sh [--rounds R] [--requests N] [--clients C]
#                        [--data-size D] [--port P] [--configs LIST]
#                        [--quiet-wait S] [--redo K]
#
# Run from anywhere, as root, after `make memwatch`.
set -euo pipefail

source "${MW_BENCH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/tools/bench-lib.sh"
run_from_private_copy "$@"

ALL_CONFIGS=(none default uprobe alloc-only jemalloc-prof pages-only bpftrace)

usage() {
	cat <<'EOF'
usage: tools/bench-redis.sh [--rounds R] [--requests N] [--clients C]
                            [--data-size D] [--port P] [--configs LIST]
                            [--quiet-wait S] [--redo K]
  --rounds R       rounds of all configurations, interleaved (default 5)
  --requests N     requests per test (SET, then GET) per run (default 100000)
  --clients C      redis-benchmark connections (default 20)
  --data-size D    bytes per SET value (default 256)
  --port P         loopback port for redis-server (default: a free one)
  --configs LIST   comma-separated, of none,default,uprobe,alloc-only,
                   jemalloc-prof,pages-only,bpftrace (default: all; pages-only
                   only if memwatch has it)
  --quiet-wait S   before each run, wait up to S seconds (60 in all) for
                   idle CPUs (default 5; 0: do not wait)
  --redo K         run again, up to K times (60 s in all), a run during which
                   other processes kept more than 0.15 CPUs busy (default 1)
Environment: MEMWATCH (default ./memwatch), REDIS_SERVER, REDIS_BENCHMARK,
REDIS_CLI, BPFTRACE (default: from PATH).
EOF
}

die() {
	echo "bench-redis.sh: error: $*" >&2
	exit 1
}
note() { echo "bench-redis.sh: $*" >&2; }

ORIG_ARGS=("$@")
ROUNDS=5
REQUESTS=100000
CLIENTS=20
DATA_SIZE=256
PORT=
CONFIGS=("${ALL_CONFIGS[@]}")
REDO=1		# runs again while other processes disturbed the run
REDO_BUDGET=60	# s of such runs in all
QUIET_WAIT=5	# s to wait for idle CPUs before each run
QUIET_BUDGET=60	# s of such waiting in all
MAX_OTHER=0.15	# CPUs busy besides redis, redis-benchmark and the profiler that make a run disturbed
while (($#)); do
	case "$1" in
	--rounds | --requests | --clients | --data-size | --port | --redo | --quiet-wait)
		(($# >= 2)) || die "$1 needs a value"
		[[ $2 =~ ^[0-9]{1,9}$ ]] || die "$1: '$2' is not a number"
		case "$1" in
		--redo) REDO=$((10#$2)) ;;
		--quiet-wait) QUIET_WAIT=$((10#$2)) ;;
		--rounds) ROUNDS=$((10#$2)) ;;
		--requests) REQUESTS=$((10#$2)) ;;
		--clients) CLIENTS=$((10#$2)) ;;
		--data-size) DATA_SIZE=$((10#$2)) ;;
		--port) PORT=$((10#$2)) ;;
		esac
		shift 2
		;;
	--configs)
		(($# >= 2)) || die "$1 needs a value"
		IFS=, read -r -a want <<<"$2"
		((${#want[@]})) || die "--configs: empty list"
		for w in "${want[@]}"; do
			in_list "$w" "${ALL_CONFIGS[@]}" || die "--configs: unknown '$w' (known: ${ALL_CONFIGS[*]})"
		done
		CONFIGS=()
		for c in "${ALL_CONFIGS[@]}"; do in_list "$c" "${want[@]}" && CONFIGS+=("$c"); done
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
((REQUESTS >= 1)) || die "--requests must be at least 1"
((CLIENTS >= 1)) || die "--clients must be at least 1"
[[ -z $PORT ]] || ((PORT >= 1 && PORT <= 65535)) || die "--port must be 1..65535"

ROOT=$MW_BENCH_ROOT
MEMWATCH=${MEMWATCH:-$ROOT/memwatch}
MEMLEAK_BT=$ROOT/tools/memleak.bt
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || true)}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-$(command -v redis-benchmark || true)}
REDIS_CLI=${REDIS_CLI:-$(command -v redis-cli || true)}
BPFTRACE=${BPFTRACE:-$(command -v bpftrace || true)}
READY_TIMEOUT=30	# s: redis answering PING; memwatch's "profiling pid" line; bpftrace attached
EXIT_TIMEOUT=60		# s: a profiler writing its output and exiting after SIGINT
# s: one redis-benchmark run, generous even at 1,000 requests/s
BENCH_TIMEOUT=$((60 + 2 * REQUESTS / 1000))

(($(id -u) == 0)) || die "needs root (memwatch and bpftrace load BPF programs)"
[[ -x $MEMWATCH ]] || die "$MEMWATCH not found: run 'make memwatch' first"
[[ -n $REDIS_SERVER && -x $REDIS_SERVER ]] || die "redis-server not found (apt-get install redis-server)"
[[ -n $REDIS_BENCHMARK && -x $REDIS_BENCHMARK ]] || die "redis-benchmark not found (apt-get install redis-tools)"
[[ -n $REDIS_CLI && -x $REDIS_CLI ]] || die "redis-cli not found (apt-get install redis-tools)"
if in_list bpftrace "${CONFIGS[@]}"; then
	[[ -n $BPFTRACE && -x $BPFTRACE ]] || die "bpftrace not found (apt-get install bpftrace, or leave bpftrace out of --configs)"
	[[ -r $MEMLEAK_BT ]] || die "$MEMLEAK_BT not found"
fi

TMP=$(mktemp -d /tmp/memwatch-bench-redis.XXXXXX)
REDIS_PID=
TOOL_PID=
BENCH_PID=
cleanup() {
	# Only the processes this script started, by pid.
	local p
	for p in $BENCH_PID $TOOL_PID ${TIMER_PID:-}; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	for p in $REDIS_PID ${PROF_PID:-}; do
		kill -TERM "$p" 2>/dev/null || true
		for _ in $(seq 50); do exited "$p" && break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Every memwatch run uses this copy: a rebuild of ./memwatch during the
# benchmark must not mix two binaries in one table.
MEMWATCH_SRC=$MEMWATCH
MEMWATCH=$TMP/memwatch
cp "$MEMWATCH_SRC" "$MEMWATCH" || die "cannot copy $MEMWATCH_SRC"
MEMWATCH_SUM=$(sha256sum "$MEMWATCH" | cut -c1-12)

HAVE_PAGES_ONLY=0
"$MEMWATCH" --help 2>&1 | grep -q -- '--pages-only' && HAVE_PAGES_ONLY=1
if in_list pages-only "${CONFIGS[@]}" && ((!HAVE_PAGES_ONLY)); then
	note "memwatch --pages-only: not available in this memwatch (its --help does not mention it); that row is skipped"
fi

# wait_quiet: waits (up to QUIET_WAIT s per run, QUIET_BUDGET s in all) until
# the CPUs are idle but for redis-server for a third of a second.
wait_quiet() {
	local start s0 s1 r0 r1 busy
	((QUIET_WAIT > 0)) || return 0
	start=$(now)
	while :; do
		r0=$(cpu_ticks "$REDIS_PID")
		s0=$(sys_ticks)
		sleep 0.3
		s1=$(sys_ticks)
		r1=$(cpu_ticks "$REDIS_PID")
		busy=$(awk -v s0="$s0" -v s1="$s1" -v r="$((r1 - r0))" -v n="$NCPU_STAT" 'BEGIN { split(s0, a); split(s1, b)
			w = (b[2] - a[2]) / n; printf "%.2f", (w > 0 ? (b[1] - a[1] - r) / w : 0) }')
		awk -v b="$busy" -v m="$MAX_OTHER" 'BEGIN { exit !(b <= m) }' && break
		elapsed_over "$start" "$QUIET_WAIT" && break
		awk -v w="$QUIET_WAITED" -v s="$start" -v n="$(now)" -v b="$QUIET_BUDGET" 'BEGIN { exit !(w + n - s > b) }' && break
	done
	QUIET_WAITED=$(awk -v w="$QUIET_WAITED" -v s="$start" -v n="$(now)" 'BEGIN { printf "%.1f", w + n - s }')
}

# wait_exit PID TIMEOUT: waits for child PID, sets RC; fails after TIMEOUT s.
# Blocks in wait (a sleeping timer beside it): polling would take CPU from
# the run being measured.

rcli() { "$REDIS_CLI" -h 127.0.0.1 -p "$PORT" "$@"; }
commands_processed() {
	local v
	v=$(rcli info stats | tr -d '\r' | sed -n 's/^total_commands_processed://p')
	[[ $v =~ ^[0-9]+$ ]] || die "redis-cli info stats: no total_commands_processed (redis on port $PORT gone?)"
	echo "$v"
}

# ---- redis-server --------------------------------------------------------

port_in_use() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# start_redis PORT [ENV...]: starts redis-server on 127.0.0.1:PORT (with
# ENV); 0 once it answers PING as our own process, 1 if it could not bind.
start_redis() {
	local port=$1 start pid
	shift
	(cd "$TMP" && exec env "$@" "$REDIS_SERVER" --save "" --appendonly no --bind 127.0.0.1 --port "$port" \
		--dir "$TMP" --daemonize no) >"$TMP/redis.log" 2>&1 &
	REDIS_PID=$!
	start=$(now)
	until [[ $("$REDIS_CLI" -h 127.0.0.1 -p "$port" ping 2>/dev/null | tr -d '\r') == PONG ]]; do
		if exited "$REDIS_PID"; then
			wait "$REDIS_PID" 2>/dev/null || true
			REDIS_PID=
			grep -q 'Address already in use' "$TMP/redis.log" && return 1
			die "redis-server exited; its log:$(printf '\n'; show "$TMP/redis.log")"
		fi
		elapsed_over "$start" "$READY_TIMEOUT" && die "redis-server did not answer PING within ${READY_TIMEOUT}s; its log:$(printf '\n'; show "$TMP/redis.log")"
		sleep 0.05
	done
	# The server answering must be ours, not one someone else runs there.
	pid=$("$REDIS_CLI" -h 127.0.0.1 -p "$port" info server | tr -d '\r' | sed -n 's/^process_id://p')
	[[ $pid == "$REDIS_PID" ]] || die "port $port answers as redis pid '$pid', not ours ($REDIS_PID)"
	return 0
}

if [[ -n $PORT ]]; then
	port_in_use "$PORT" && die "port $PORT is in use"
	start_redis "$PORT" || die "redis-server cannot bind 127.0.0.1:$PORT (in use)"
else
	for _ in $(seq 20); do
		PORT=$((20000 + RANDOM % 30000))
		port_in_use "$PORT" && continue
		start_redis "$PORT" && break
	done
	[[ -n $REDIS_PID ]] || die "found no free port for redis-server in 20 tries"
fi
REDIS_VERSION=$("$REDIS_SERVER" --version | head -n1)
note "redis-server pid $REDIS_PID on 127.0.0.1:$PORT ($REDIS_VERSION)"
# jemalloc's own profiler needs it from the start: a second server.
PROF_CONF=prof:true,lg_prof_sample:19,prof_prefix:$TMP/jeprof
if in_list jemalloc-prof "${CONFIGS[@]}"; then
	MAIN_PID=$REDIS_PID
	for _ in $(seq 20); do
		PROF_PORT=$((20000 + RANDOM % 30000))
		[[ $PROF_PORT != "$PORT" ]] && ! port_in_use "$PROF_PORT" && start_redis "$PROF_PORT" "MALLOC_CONF=$PROF_CONF" &&
			break
	done
	PROF_PID=$REDIS_PID
	REDIS_PID=$MAIN_PID
	[[ $PROF_PID != "$MAIN_PID" ]] || die "found no free port for the second redis-server"
	note "redis-server with MALLOC_CONF=$PROF_CONF: pid $PROF_PID on 127.0.0.1:$PROF_PORT"
fi

# The libjemalloc.so.2 redis maps: memleak.bt's uprobes go there.
JEMALLOC_PATH=$(awk '$6 ~ /\/libjemalloc\.so[^\/]*$/ { print $6; exit }' "/proc/$REDIS_PID/maps")
if in_list bpftrace "${CONFIGS[@]}"; then
	[[ -n $JEMALLOC_PATH ]] || die "redis-server (pid $REDIS_PID) maps no libjemalloc.so: memleak.bt has nothing to probe"
	sed "s|/usr/lib/x86_64-linux-gnu/libjemalloc\.so\.2|$JEMALLOC_PATH|g" "$MEMLEAK_BT" >"$TMP/memleak.bt"
fi

# ---- one run ---------------------------------------------------------------

BENCH_ARGS=(-h 127.0.0.1 -p "$PORT" -q -t "set,get" -n "$REQUESTS" -c "$CLIENTS" -d "$DATA_SIZE" --csv)

# bench OUT: one redis-benchmark run into OUT; sets SET_RPS and GET_RPS.
bench() {
	local out=$1
	"$REDIS_BENCHMARK" "${BENCH_ARGS[@]}" >"$out" 2>"$out.err" &
	BENCH_PID=$!
	wait_exit "$BENCH_PID" "$BENCH_TIMEOUT" || die "redis-benchmark still running after ${BENCH_TIMEOUT}s"
	BENCH_PID=
	((RC == 0)) || die "redis-benchmark exited with status $RC; its output:$(printf '\n'; show "$out"; show "$out.err")"
	# "SET","79872.20","0.137",...
	SET_RPS=$(awk -F'"' '$2 == "SET" { print $4 }' "$out")
	GET_RPS=$(awk -F'"' '$2 == "GET" { print $4 }' "$out")
	[[ $SET_RPS =~ ^[0-9]+(\.[0-9]+)?$ && $GET_RPS =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
		die "redis-benchmark printed no SET and GET rps; its output:$(printf '\n'; show "$out")"
}

declare -A SET GET TOOL_CPU ATTACH_S OTHER LABEL=(
	[none]="none"
	[default]="memwatch default: \`memwatch -p REDISPID -o FILE\` (in-process detours)"
	[uprobe]="memwatch \`--hook uprobe -o FILE\` (a trap per call)"
	[jemalloc-prof]="jemalloc's own profiler: \`MALLOC_CONF=prof:true,lg_prof_sample:19\` (a second server)"
	[alloc-only]="memwatch \`--alloc-only -o FILE\`"
	[pages-only]="memwatch \`--pages-only -o FILE\`"
	[bpftrace]="bpftrace memleak-like: \`bpftrace -p REDISPID tools/memleak.bt REDISPID\`"
)
EXTRA=	# commands per run beyond 2N, from the warm-up
KEPT=0 DISTURBED_KEPT=0 REDONE=0 REDO_USED=0 QUIET_WAITED=0

# run_one CONFIG ROUND ATTEMPT: one run, staged in R_* (commit_run keeps it).
run_one() {
	local cfg=$1 round=$2 attempt=$3 tag=$1.$2.$3 before after delta t0 ticks=0 line
	local out=$TMP/bench.$tag.csv err=$TMP/tool.$tag.err prof=$TMP/profile.$tag.pb.gz
	local -a cmd=()
	case "$cfg" in
	none | jemalloc-prof) ;;
	default) cmd=("$MEMWATCH" -p "$REDIS_PID" -o "$prof") ;;
	uprobe) cmd=("$MEMWATCH" -p "$REDIS_PID" --hook uprobe -o "$prof") ;;
	alloc-only) cmd=("$MEMWATCH" -p "$REDIS_PID" --alloc-only -o "$prof") ;;
	pages-only) cmd=("$MEMWATCH" -p "$REDIS_PID" --pages-only -o "$prof") ;;
	bpftrace) cmd=("$BPFTRACE" -p "$REDIS_PID" "$TMP/memleak.bt" "$REDIS_PID") ;;
	esac
	R_SET='' R_GET='' R_CPU='' R_ATTACH='' R_OTHER=''

	before=$(commands_processed)
	if ((${#cmd[@]})); then
		t0=$(now)
		"${cmd[@]}" >"$err.out" 2>"$err" &
		TOOL_PID=$!
		if [[ $cfg == bpftrace ]]; then
			wait_line "$err.out" '^Attaching [0-9]+ probes' "$TOOL_PID" "$READY_TIMEOUT" "bpftrace"
			# BEGIN runs once every probe is in place.
			wait_line "$err.out" '^memleak\.bt: tracing pid' "$TOOL_PID" "$READY_TIMEOUT" "bpftrace"
		else
			wait_line "$err" '^memwatch: profiling pid' "$TOOL_PID" "$READY_TIMEOUT" "${cmd[*]}"
			line=$(grep -m1 '^memwatch: profiling pid' "$err")
			if [[ $cfg == pages-only ]]; then
				[[ $line == *"kernel side only"* ]] || die "memwatch --pages-only: unexpected line: $line"
			else
				[[ $line == *jemalloc* ]] || die "memwatch ($cfg) did not probe jemalloc: $line"
			fi
		fi
		R_ATTACH=$(awk -v s="$t0" -v n="$(now)" 'BEGIN { printf "%.2f", n - s }')
	fi

	# What other processes do to the CPUs while redis-benchmark runs: all
	# CPUs' busy time less this script's and its reaped children's
	# (redis-benchmark), redis-server's and the profiler's.
	note_tracers "${TOOL_PID:-}"
	local own0 own1 sys0 sys1 red0 red1 tl0=0 tl1=0
	[[ -n $TOOL_PID ]] && tl0=$(cpu_ticks "$TOOL_PID")
	red0=$(cpu_ticks "$REDIS_PID")
	shell_ticks own0
	sys0=$(sys_ticks)
	bench "$out"
	sys1=$(sys_ticks)
	shell_ticks own1
	red1=$(cpu_ticks "$REDIS_PID")
	[[ -n $TOOL_PID ]] && tl1=$(cpu_ticks "$TOOL_PID")
	R_OTHER=$(awk -v s0="$sys0" -v s1="$sys1" -v m="$((own1 - own0 + red1 - red0 + tl1 - tl0))" -v n="$NCPU_STAT" '
		BEGIN { split(s0, a); split(s1, b); wall = (b[2] - a[2]) / n
			if (wall >= 30) { v = (b[1] - a[1] - m) / wall; printf "%.2f", (v < 0 ? 0 : v) } }')

	if [[ -n $TOOL_PID ]]; then
		ticks=$(cpu_ticks "$TOOL_PID")
		kill -INT "$TOOL_PID" 2>/dev/null || true
		wait_exit "$TOOL_PID" "$EXIT_TIMEOUT" ||
			die "${cmd[*]} did not exit within ${EXIT_TIMEOUT}s of SIGINT; its stderr:$(printf '\n'; show "$err")"
		TOOL_PID=
		((RC == 0)) || die "${cmd[*]} exited with status $RC; its output:$(printf '\n'; show "$err.out"; show "$err")"
		if [[ $cfg == bpftrace ]]; then
			# It must have seen the calls: "@calls: N".
			local calls
			calls=$(sed -n 's/^@calls: \([0-9][0-9]*\)$/\1/p' "$err.out")
			[[ -n $calls && $calls -gt 0 ]] || die "bpftrace saw no allocation returns; its output:$(printf '\n'; show "$err.out")"
		else
			[[ -s $prof ]] || die "${cmd[*]} exited 0 but wrote no profile $prof; its stderr:$(printf '\n'; show "$err")"
			# The page profile, when memwatch has a kernel side, goes next to it.
			rm -f "$prof" "${prof%.pb.gz}.pages.pb.gz"
		fi
		R_CPU=$(awk -v t="$ticks" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
	fi

	after=$(commands_processed)
	delta=$((after - before - 2 * REQUESTS))
	((delta == EXTRA)) ||
		die "$cfg, round $round: redis processed $((after - before)) commands, expected $((2 * REQUESTS + EXTRA)) (2 x $REQUESTS requests + $EXTRA as in the warm-up)"
	R_SET=$SET_RPS
	R_GET=$GET_RPS
}

# commit_run CONFIG ROUND: keeps the staged run.
commit_run() {
	local cfg=$1 round=$2 flag=""
	SET[$cfg]+="$R_SET "
	GET[$cfg]+="$R_GET "
	[[ -n $R_CPU ]] && TOOL_CPU[$cfg]+="$R_CPU "
	[[ -n $R_ATTACH ]] && ATTACH_S[$cfg]+="$R_ATTACH "
	[[ -n $R_OTHER ]] && OTHER[$cfg]+="$R_OTHER "
	if disturbed; then
		DISTURBED_KEPT=$((DISTURBED_KEPT + 1))
		flag=" (kept)"
	fi
	KEPT=$((KEPT + 1))
	printf 'bench-redis.sh: round %d/%d %-11s SET %10s rps  GET %10s rps  (other CPUs busy: %s)%s\n' "$round" "$ROUNDS" \
		"$cfg" "$R_SET" "$R_GET" "${R_OTHER:--}" "$flag" >&2
}

# measure CONFIG ROUND: waits for idle CPUs, runs, and runs again (up to
# --redo times, within REDO_BUDGET seconds in all) while other processes
# disturbed the run.
measure() {
	local cfg=$1 round=$2 attempt t0
	# Dynamic scope: everything run_one calls talks to this server.
	local PORT=$PORT REDIS_PID=$REDIS_PID EXTRA=$EXTRA BENCH_ARGS=("${BENCH_ARGS[@]}")
	if [[ $cfg == jemalloc-prof ]]; then
		PORT=$PROF_PORT REDIS_PID=$PROF_PID EXTRA=$PROF_EXTRA
		BENCH_ARGS=(-h 127.0.0.1 -p "$PORT" "${BENCH_ARGS[@]:4}")
	fi
	for ((attempt = 0; ; attempt++)); do
		wait_quiet
		t0=$(now)
		run_one "$cfg" "$round" "$attempt"
		if ((attempt < REDO)) && disturbed &&
			awk -v u="$REDO_USED" -v b="$REDO_BUDGET" 'BEGIN { exit !(u < b) }'; then
			REDONE=$((REDONE + 1))
			REDO_USED=$(awk -v u="$REDO_USED" -v s="$t0" -v n="$(now)" 'BEGIN { printf "%.1f", u + n - s }')
			printf 'bench-redis.sh: round %d/%d %-11s SET %10s rps  GET %10s rps: other processes kept %s CPUs busy: again\n' \
				"$round" "$ROUNDS" "$cfg" "$R_SET" "$R_GET" "$R_OTHER" >&2
			continue
		fi
		commit_run "$cfg" "$round"
		return 0
	done
}

fmt_int() { awk -v x="$1" 'BEGIN { i = sprintf("%.0f", x); o = ""
	while (length(i) > 3) { o = "," substr(i, length(i) - 2) o; i = substr(i, 1, length(i) - 3) }
	printf "%s%s", i, o }'; }
spread() {
	local lo hi
	lo=$(tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | head -n1)
	hi=$(tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | tail -n1)
	printf '%s-%s' "$(fmt_int "$lo")" "$(fmt_int "$hi")"
}

# ---- the runs --------------------------------------------------------------

RUNS=()
for c in "${CONFIGS[@]}"; do
	[[ $c == pages-only ]] && ((!HAVE_PAGES_ONLY)) && continue
	RUNS+=("$c")
done
((${#RUNS[@]})) || die "nothing to run"

START=$(now)
# Warm-up (not measured): creates the keys, warms redis and jemalloc, and
# tells how many commands one run adds besides its 2N requests.
before=$(commands_processed)
bench "$TMP/warmup.csv"
after=$(commands_processed)
EXTRA=$((after - before - 2 * REQUESTS))
((EXTRA >= 0 && EXTRA <= 10)) ||
	die "warm-up: redis processed $((after - before)) commands for 2 x $REQUESTS requests"
note "warm-up: SET $SET_RPS rps, GET $GET_RPS rps; a run is 2 x $REQUESTS requests + $EXTRA other commands"
if [[ -n ${PROF_PID:-} ]]; then
	MAIN=("$PORT" "$REDIS_PID" "${BENCH_ARGS[@]}")
	PORT=$PROF_PORT REDIS_PID=$PROF_PID
	BENCH_ARGS=(-h 127.0.0.1 -p "$PORT" "${BENCH_ARGS[@]:4}")
	before=$(commands_processed)
	bench "$TMP/warmup-prof.csv"
	after=$(commands_processed)
	PROF_EXTRA=$((after - before - 2 * REQUESTS))
	PORT=${MAIN[0]} REDIS_PID=${MAIN[1]}
	BENCH_ARGS=("${MAIN[@]:2}")
	note "warm-up with jemalloc's profiler: SET $SET_RPS rps, GET $GET_RPS rps"
fi
note "$ROUNDS rounds of ${RUNS[*]}"

for ((r = 1; r <= ROUNDS; r++)); do
	for ((i = 0; i < ${#RUNS[@]}; i++)); do
		measure "${RUNS[(i + r - 1) % ${#RUNS[@]}]}" "$r"
	done
done
TOOK=$(awk -v s="$START" -v n="$(now)" 'BEGIN { printf "%.0f", n - s }')

# ---- the table -------------------------------------------------------------

CMDLINE="tools/bench-redis.sh"
((${#ORIG_ARGS[@]})) && CMDLINE+=$(printf ' %q' "${ORIG_ARGS[@]}")
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
SET_NONE=$(median "${SET[none]:-}" %.2f 2>/dev/null || true)
GET_NONE=$(median "${GET[none]:-}" %.2f 2>/dev/null || true)

cat <<EOF
### redis-server throughput under memwatch and a bpftrace memleak

Command: \`$CMDLINE\` ($ROUNDS rounds, configurations interleaved round-robin, medians; took ${TOOK}s)
Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); kernel: $(uname -r) ($(uname -m)); CPU: ${CPU:-unknown}, $(nproc) CPUs
$REDIS_VERSION, pid $REDIS_PID on 127.0.0.1:$PORT (\`--save "" --appendonly no\`, jemalloc: $JEMALLOC_PATH); $("$MEMWATCH" -V 2>&1 | head -n1) (binary sha256 $MEMWATCH_SUM, copied from $MEMWATCH_SRC at start); $("$BPFTRACE" --version 2>/dev/null || echo "bpftrace: none")
Other processes: $DISTURBED_KEPT of $KEPT runs kept had other processes keeping more than $MAX_OTHER CPUs busy during the benchmark ($REDONE disturbed runs were run again; ${QUIET_WAITED}s spent waiting for idle CPUs); other processes holding BPF links or perf events meanwhile: $(tracers_list)
Per run: \`redis-benchmark -p P -q -t set,get -n $REQUESTS -c $CLIENTS -d $DATA_SIZE --csv\`, the profiler attached before and detached after it; every run exited 0 and redis counted exactly 2 x $REQUESTS requests + $EXTRA other commands (as in an unmeasured warm-up run)

| configuration | SET rps (median) | SET range | SET x none | GET rps (median) | GET range | GET x none | profiler CPU, s per run | attach, s | other CPUs busy |
|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|
EOF
for c in "${ALL_CONFIGS[@]}"; do
	in_list "$c" "${CONFIGS[@]}" || continue
	if [[ $c == pages-only ]] && ((!HAVE_PAGES_ONLY)); then
		printf '| %s | not available | | | | | | | | |\n' "${LABEL[$c]} (this memwatch has no --pages-only)"
		continue
	fi
	s=$(median "${SET[$c]}" %.2f)
	g=$(median "${GET[$c]}" %.2f)
	cpu="-"
	att="-"
	[[ -n ${TOOL_CPU[$c]:-} ]] && cpu=$(median "${TOOL_CPU[$c]}" %.2f)
	[[ -n ${ATTACH_S[$c]:-} ]] && att=$(median "${ATTACH_S[$c]}" %.2f)
	other="-"
	[[ -n ${OTHER[$c]:-} ]] && other=$(median "${OTHER[$c]}" %.2f)
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "${LABEL[$c]}" \
		"$(fmt_int "$s")" "$(spread "${SET[$c]}")" "$(ratio "$s" "$SET_NONE")" \
		"$(fmt_int "$g")" "$(spread "${GET[$c]}")" "$(ratio "$g" "$GET_NONE")" "$cpu" "$att" "$other"
done
cat <<EOF

- x none: median rps over the median rps without a profiler (1.00 = no slowdown).
- profiler CPU: user + system time of memwatch or bpftrace over its whole life
  (load, attach, the run, up to SIGINT); BPF program time is charged to redis.
- attach: from starting the profiler to its ready line (memwatch's "profiling
  pid", memleak.bt's BEGIN line).
- other CPUs busy: median over runs of the CPUs other processes kept busy
  during the benchmark (beyond redis-server, redis-benchmark, the profiler).
EOF
