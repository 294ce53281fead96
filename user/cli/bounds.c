#include "cli/bounds.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "kernel/capture.h"
#include "memwatch.h"

#define RING_PAGE 4096
#define RING_HEADER 8		/* BPF_RINGBUF_HDR_SZ */
/* Measured on kernel 6.18 (memlock in the maps' fdinfo): a hash map's
 * bucket array takes 16 bytes per power-of-two bucket at creation, and
 * each element of the live map 80 bytes once inserted; an LRU element 80
 * bytes plus its value (per CPU for per-CPU maps). */
#define HASH_BUCKET_BYTES 16
#define LIVE_ELEM_BYTES 80
#define LRU_ELEM_BYTES 80

static uint64_t pow2_ceil(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

static uint64_t pow2_floor(uint64_t v)
{
	uint64_t p = 1;

	while (p <= v / 2)
		p <<= 1;
	return p;
}

static uint64_t read_u64(const char *path, const char *fmt, uint64_t fallback)
{
	char line[256];
	unsigned long long v;
	FILE *f = fopen(path, "re");

	if (!f)
		return fallback;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, fmt, &v) == 1) {
			fclose(f);
			return v;
		}
	}
	fclose(f);
	return fallback;
}

int machine_read(struct machine *m)
{
	int ncpus = libbpf_num_possible_cpus();

	if (ncpus <= 0)
		ncpus = (int)sysconf(_SC_NPROCESSORS_CONF);
	m->ncpus = ncpus > 0 ? (uint32_t)ncpus : 1;
	m->mem_bytes = read_u64("/proc/meminfo", "MemTotal: %llu kB", 1ull << 20) << 10;
	m->pid_max = (uint32_t)read_u64("/proc/sys/kernel/pid_max", "%llu", 4194304);
	return 0;
}

uint64_t bounds_live_bytes(uint64_t n)
{
	return HASH_BUCKET_BYTES * pow2_ceil(n) + LIVE_ELEM_BYTES * n;
}

/* stats (an LRU hash), fault_counts (per-CPU LRU hash), profiled (LRU hash). */
uint64_t bounds_process_bytes(uint64_t n, uint32_t ncpus)
{
	uint64_t each = 3 * LRU_ELEM_BYTES + sizeof(struct mw_page_stats) + 1 +
			(uint64_t)ncpus * sizeof(struct mw_fault_counts);

	return n * each;
}

/* The largest n (1 at least) with cost(n) <= budget, cost increasing. */
static uint32_t largest_within(uint64_t budget, uint64_t (*cost)(uint64_t n, uint32_t arg), uint32_t arg)
{
	uint64_t lo = 1, hi = UINT32_MAX;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;
		if (cost(mid, arg) <= budget)
			lo = mid;
		else
			hi = mid - 1;
	}
	return (uint32_t)lo;
}

static uint64_t live_cost(uint64_t n, uint32_t unused)
{
	return bounds_live_bytes(n);
}

void bounds_of(const struct machine *m, enum stack_mode mode, uint32_t stack_bytes, struct bounds *b)
{
	uint32_t capture = mode == STACK_FP ? MW_STACK_FP : MW_STACK_SNAPSHOT;
	uint64_t record = capture_scratch_bytes(capture, stack_bytes) - MW_SCRATCH_HEAD + RING_HEADER;
	uint64_t budget = m->mem_bytes / BOUNDS_SHARE_OF_MEMORY;
	uint64_t ring_max = pow2_floor(budget / BOUNDS_RINGS);

	b->ring_min = (uint32_t)pow2_ceil(record > RING_PAGE ? record : RING_PAGE);
	b->ring_max = ring_max > (1u << 31) ? 1u << 31 : ring_max < b->ring_min ? b->ring_min : (uint32_t)ring_max;
	b->live_max = largest_within(budget, live_cost, 0);
	b->processes_max = largest_within(budget, bounds_process_bytes, m->ncpus);
	if (b->processes_max > m->pid_max)
		b->processes_max = m->pid_max;
}
