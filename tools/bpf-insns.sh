#!/usr/bin/env bash
# The BPF instructions of every program and subprogram in the objects given,
# as a markdown table (the one README.md keeps): one row per function symbol,
# from its size in the object file (8 bytes an instruction, 16 for the
# 64-bit immediate loads). libbpf appends the subprograms a program calls to
# the program when it loads it, so a loaded program is its own instructions
# plus those of the subprograms it calls.
#
#   tools/bpf-insns.sh .output/*.bpf.o           print the table
#   tools/bpf-insns.sh --check README.md OBJS    ... and say whether README.md has it
set -euo pipefail

readme=
if [ "${1:-}" = --check ]; then
	readme=$2
	shift 2
fi
READELF=${READELF:-$(command -v llvm-readelf || command -v readelf)}

table() {
	echo "| object | program | instructions |"
	echo "|---|---|--:|"
	for obj in "$@"; do
		"$READELF" -s "$obj" | awk -v obj="$(basename "$obj" .bpf.o)" '
			$4 == "FUNC" {
				name = $8
				if ($5 == "LOCAL")
					name = name " (subprogram)"
				printf "| %s | %s | %d |\n", obj, name, $3 / 8
			}'
	done
}

out=$(table "$@")
echo "$out"
if [ -n "$readme" ]; then
	stale=$(echo "$out" | while IFS= read -r line; do grep -qxF -- "$line" "$readme" || echo x; done)
	[ -z "$stale" ] || echo "note: $readme's BPF instruction counts differ from this build's: copy the table above there"
fi
