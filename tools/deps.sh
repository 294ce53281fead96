#!/usr/bin/env bash
# Installs the Debian 12 packages memwatch needs to build and test, when
# missing. Safe to run repeatedly: it does nothing once everything is there.
set -euo pipefail

build=(clang llvm libbpf-dev bpftool libelf-dev libdw-dev zlib1g-dev libprotobuf-c-dev protobuf-c-compiler
       libmicrohttpd-dev libgnutls28-dev libyaml-dev libcrypt-dev libcapstone-dev pkg-config make gcc g++ binutils
       python3)
test=(libcmocka-dev golang-go libc6-dbg libc6-dev python3 util-linux procps elfutils
      libjemalloc-dev libjemalloc2 libgoogle-perftools-dev redis-server redis-tools prometheus
      librsvg2-bin python3-pil bpftrace strace dwz google-perftools libtcmalloc-minimal4 libgoogle-perftools4
      libclang-rt-14-dev openssl)

missing=()
for pkg in "${build[@]}" "${test[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
	echo "tools/deps.sh: installing ${missing[*]}" >&2
	if [ "$(id -u)" -ne 0 ]; then
		echo "tools/deps.sh: run as root to install packages" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Classic tracepoints need tracefs; libbpf finds tracepoint ids there.
if [ ! -e /sys/kernel/tracing/events ] && [ "$(id -u)" -eq 0 ]; then
	mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi
