// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* --latency-probe: how long each call of one function of the target takes,
 * as a histogram (entry and return probes, like a uprobe + uretprobe). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "memwatch.h"
#include "lib/arch.h"
#include "lib/hist.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 cfg_target_tgid = 0;

struct call_key {
	__u64 pid_tgid;
	__u64 sp;		/* at entry: recursive calls differ */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct call_key);
	__type(value, __u64);
} starts SEC(".maps");

struct histogram {
	__u64 buckets[MW_HIST_BUCKETS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct histogram);
} latency SEC(".maps");

SEC("uprobe")
int lat_enter(struct pt_regs *ctx)
{
	struct call_key key = { .pid_tgid = bpf_get_current_pid_tgid(), .sp = arch_sp(ctx) };
	__u64 now = bpf_ktime_get_ns();

	if (cfg_target_tgid && key.pid_tgid >> 32 != cfg_target_tgid)
		return 0;
	bpf_map_update_elem(&starts, &key, &now, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int lat_exit(struct pt_regs *ctx)
{
	/* The return popped the return address the entry saw at [sp]. */
	struct call_key key = { .pid_tgid = bpf_get_current_pid_tgid(), .sp = arch_sp(ctx) - sizeof(__u64) };
	__u64 *start = bpf_map_lookup_elem(&starts, &key);
	__u32 zero = 0;

	if (!start)
		return 0;
	__u64 took = bpf_ktime_get_ns() - *start;
	bpf_map_delete_elem(&starts, &key);
	struct histogram *h = bpf_map_lookup_elem(&latency, &zero);
	if (h)
		h->buckets[bucket_of(took)]++;
	return 0;
}
