#!/usr/bin/env bash
# make demo: profile the bundled demo workload, show its top allocation sites
# by in-use bytes, and leave the profile in demo.pb.gz.
set -euo pipefail
cd "$(dirname "$0")/.."

./memwatch -o demo.pb.gz -- tests/workloads/bin/demo
echo
echo "Top sites by in-use bytes (go tool pprof -top -sample_index=inuse_space demo.pb.gz):"
PPROF_BINARY_PATH=/nonexistent go tool pprof -symbolize=none -top -sample_index=inuse_space demo.pb.gz 2>/dev/null |
	sed -n '/flat%/,$p' | head -12
echo
echo "Profile: demo.pb.gz (go tool pprof -http=: demo.pb.gz for a flame graph)"
