#include "bounds.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "capture.h"
#include "memwatch.h"

#define SHARE_OF_MEMORY 16	/* a sized structure takes at most 1/16 of it */
#define RINGS 2			/* the heap side's and the kernel side's */
#define RING_PAGE 4096
#define RING_HEADER 8		/* BPF_RINGBUF_HDR_SZ */
#define RING_DEFAULT (16u << 20)
#define RING_DEFAULT_ALL (4u << 20)
#define LIVE_DEFAULT 262144
#define PROCESSES_DEFAULT 4096
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
	uint64_t budget = m->mem_bytes / SHARE_OF_MEMORY;
	uint64_t ring_max = pow2_floor(budget / RINGS);

	b->ring_min = (uint32_t)pow2_ceil(record > RING_PAGE ? record : RING_PAGE);
	b->ring_max = ring_max > (1u << 31) ? 1u << 31 : ring_max < b->ring_min ? b->ring_min : (uint32_t)ring_max;
	b->live_max = largest_within(budget, live_cost, 0);
	b->processes_max = largest_within(budget, bounds_process_bytes, m->ncpus);
	if (b->processes_max > m->pid_max)
		b->processes_max = m->pid_max;
}

/* "512m", "64k", "4096": sizes as the options take them. */
static const char *size_text(uint64_t v, char buf[32])
{
	const char *unit = "";

	if (v && !(v & ((1ull << 30) - 1)))
		v >>= 30, unit = "g";
	else if (v && !(v & ((1ull << 20) - 1)))
		v >>= 20, unit = "m";
	else if (v && !(v & ((1ull << 10) - 1)))
		v >>= 10, unit = "k";
	snprintf(buf, 32, "%" PRIu64 "%s", v, unit);
	return buf;
}

static uint32_t clamp(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v > hi ? hi : v < lo ? lo : v;
}

static int check_ring(struct options *o, const struct bounds *b, const struct machine *m)
{
	char v[32], lim[32], st[32];

	if (!o->ring_bytes) {
		o->ring_bytes = clamp(o->all ? RING_DEFAULT_ALL : RING_DEFAULT, b->ring_min, b->ring_max);
		return 0;
	}
	if (o->ring_bytes < b->ring_min) {
		fprintf(stderr, "memwatch: --ring-bytes %s: at least %s with --stack-bytes %s (a ring must hold "
				"an event with its stack)\n", size_text(o->ring_bytes, v), size_text(b->ring_min, lim),
			size_text(o->stack_bytes, st));
		return -1;
	}
	if (o->ring_bytes > b->ring_max) {
		fprintf(stderr, "memwatch: --ring-bytes %s: at most %s on this machine (the %d rings take at most "
				"1/%d of its %.1f GiB)\n", size_text(o->ring_bytes, v), size_text(b->ring_max, lim), RINGS,
			SHARE_OF_MEMORY, m->mem_bytes / 1073741824.0);
		return -1;
	}
	return 0;
}

static int check_count(const char *flag, uint32_t *value, uint32_t dflt, uint32_t max, const char *why,
		       const struct machine *m)
{
	if (!*value) {
		*value = clamp(dflt, 1, max);
		return 0;
	}
	if (*value <= max)
		return 0;
	fprintf(stderr, "memwatch: %s %" PRIu32 ": at most %" PRIu32 " on this machine (%s; %.1f GiB, %" PRIu32
			" CPUs, pid_max %" PRIu32 ")\n", flag, *value, max, why, m->mem_bytes / 1073741824.0, m->ncpus,
		m->pid_max);
	return -1;
}

int bounds_apply(struct options *o, const struct machine *m)
{
	struct bounds b;

	bounds_of(m, o->stack_mode, o->stack_bytes, &b);
	if (check_ring(o, &b, m) ||
	    check_count("--max-live", &o->max_live, LIVE_DEFAULT, b.live_max,
			"its kernel map may take 1/16 of the memory", m) ||
	    check_count("--max-processes", &o->max_processes, PROCESSES_DEFAULT, b.processes_max,
			"pid_max, and 1/16 of the memory for their kernel maps", m) ||
	    check_count("--max-profiled", &o->max_profiled, o->max_profiled, m->pid_max, "pid_max", m))
		return -1;
	return 0;
}
