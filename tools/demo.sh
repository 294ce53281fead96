#!/usr/bin/env bash
# make demo: profile the bundled demo workload (tests/workloads/demo.c: a
# request loop whose sessions leak), show its top allocation sites by in-use
# bytes, and end with memwatch's verdict and where the profile and the plot
# are: demo.pb.gz and demo.svg in the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."

err=$(mktemp /tmp/memwatch-demo.XXXXXX)
trap 'rm -f "$err"' EXIT
# memwatch's lines to the terminal and, for the verdict, to $err.
{ ./memwatch -o demo.pb.gz --plot demo.svg -- tests/workloads/bin/demo 2>&1 1>&3 | tee "$err"; } 3>&1 1>&2
echo
echo "Top sites by in-use bytes (go tool pprof -top -sample_index=inuse_space demo.pb.gz):"
PPROF_BINARY_PATH=/nonexistent go tool pprof -symbolize=none -top -sample_index=inuse_space demo.pb.gz 2>/dev/null |
	sed -n '/flat%/,$p' | head -8
echo
verdict=$(sed -n 's/^memwatch: verdict: //p' "$err" | head -n1)
[[ -n $verdict ]] || verdict="none printed: see the memwatch lines above"
echo "Verdict: $verdict"
echo "Profile: $PWD/demo.pb.gz (go tool pprof -http=: demo.pb.gz for a flame graph)"
echo "Plot:    $PWD/demo.svg (live heap against RSS over the run; open it in a browser)"
