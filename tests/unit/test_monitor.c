/* The monitor: cumulative readings into per-interval timeline points
 * (deltas of the kernel side's counters, latency percentiles of the
 * interval alone, gauges as read), and the correlation of a probed
 * function's latency with thrash over the intervals. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/hist.h"
#include "diagnose/monitor.h"

/* The bucket that holds ns (4 per power of two from 8 ns up). */
static unsigned bucket_of(uint64_t ns)
{
	unsigned b = 0;

	while (b + 1 < MW_HIST_BUCKETS && hist_bucket_floor(b + 1) <= ns)
		b++;
	return b;
}

static struct memstat mem(int64_t rss_anon)
{
	return (struct memstat){ .rss_anon = rss_anon, .rss_file = 1 << 20, .rss_shmem = 0, .anonymous = rss_anon,
				 .lazyfree = 0 };
}

static void test_deltas_and_gauges(void **state)
{
	struct monitor m;
	struct mw_page_stats pages = { 0 };
	uint64_t lat[MW_HIST_BUCKETS] = { 0 };
	int64_t by_size[TL_SIZE_CLASSES] = { 0 };

	monitor_init(&m);
	/* First interval: 10 faults (3 refaults), one madvise purge and one
	 * munmap, 5 madvise calls; 100 calls of the probed function at 2 us. */
	pages.faults = 10, pages.fault_bytes = 40960, pages.refaults = 3, pages.refault_bytes = 12288;
	pages.purges = 1, pages.purge_bytes = 1 << 20, pages.unmaps = 1, pages.unmap_bytes = 65536;
	pages.calls[MW_SC_MADVISE] = 5;
	pages.latency[MW_SC_MADVISE][bucket_of(50000)] = 5;
	lat[bucket_of(2000)] = 100;
	by_size[3] = 4096;
	struct reading r = { .t = 1.0, .pages = &pages, .live_heap = 8 << 20, .latency = lat, .mem = mem(16 << 20),
			     .arenas = 2, .live_by_size = by_size };
	assert_int_equal(monitor_add(&m, &r), 0);
	/* Second: 4 more faults, no syscalls; 10 calls at 1 ms; the heap shrinks. */
	pages.faults = 14, pages.fault_bytes = 57344;
	lat[bucket_of(1000000)] = 10;
	r = (struct reading){ .t = 2.5, .pages = &pages, .live_heap = 4 << 20, .latency = lat, .mem = mem(8 << 20),
			      .arenas = 2, .live_by_size = by_size };
	assert_int_equal(monitor_add(&m, &r), 0);
	/* Third: no kernel side, no heap, no probe. */
	r = (struct reading){ .t = 3.0, .live_heap = -1, .mem = mem(-1), .arenas = -1 };
	assert_int_equal(monitor_add(&m, &r), 0);

	assert_int_equal(m.tl.n, 3);
	const struct tl_point *p = m.tl.v;
	assert_true(p[0].t == 1.0 && p[0].dt == 1.0 && p[1].dt == 1.5 && p[2].dt == 0.5);
	assert_int_equal(p[0].faults, 10);
	assert_int_equal(p[0].refault_bytes, 12288);
	/* Purges are everything given back: madvise and munmap. */
	assert_int_equal(p[0].purges, 2);
	assert_int_equal(p[0].purge_bytes, (1 << 20) + 65536);
	assert_int_equal(p[0].calls[TL_MADVISE], 5);
	assert_true(p[0].sys_p50_us[TL_MADVISE] >= hist_bucket_floor(bucket_of(50000)) / 1e3 &&
		    p[0].sys_p50_us[TL_MADVISE] < hist_bucket_floor(bucket_of(50000) + 1) / 1e3);
	assert_int_equal(p[0].probe_calls, 100);
	assert_true(p[0].probe_p99_us >= 1.5 && p[0].probe_p99_us < 2.5);
	assert_float_equal(p[0].utilization, 0.5, 1e-12);
	assert_int_equal(p[0].live_by_size[3], 4096);
	assert_int_equal(p[0].arenas, 2);
	/* The second interval's counts are its own. */
	assert_int_equal(p[1].faults, 4);
	assert_int_equal(p[1].fault_bytes, 16384);
	assert_int_equal(p[1].purges, 0);
	assert_int_equal(p[1].calls[TL_MADVISE], 0);
	assert_true(isnan(p[1].sys_p50_us[TL_MADVISE]));
	assert_int_equal(p[1].probe_calls, 10);
	assert_true(p[1].probe_p50_us > 900 && p[1].probe_p50_us < 1300);
	/* Not measured: NaN or -1, never 0. */
	assert_true(isnan(p[2].sys_p99_us[TL_MMAP]) && isnan(p[2].utilization) && isnan(p[2].probe_p50_us));
	assert_int_equal(p[2].live_heap, -1);
	assert_int_equal(p[2].live_by_size[0], -1);
	assert_int_equal(p[2].rss_anon, -1);
	assert_true(m.peak_live == 8 << 20);
	monitor_free(&m);
}

static void test_pearson(void **state)
{
	double x[] = { 1, 2, 3, 4, 5 }, up[] = { 2, 4, 6, 8, 10 }, down[] = { 5, 4, 3, 2, 1 };
	double flat[] = { 7, 7, 7, 7, 7 }, some[] = { 1, 3, 2, 5, 4 };

	assert_float_equal(pearson(x, up, 5), 1.0, 1e-12);
	assert_float_equal(pearson(x, down, 5), -1.0, 1e-12);
	assert_float_equal(pearson(x, some, 5), 0.8, 1e-12);
	assert_true(isnan(pearson(x, flat, 5)));
	assert_true(isnan(pearson(x, up, 2)));
}

/* A probed function whose p99 follows the refault rate: 12 intervals of
 * 1 s, thrashing in every other pair, and a short last interval, which
 * holds too few calls to count. */
static void test_correlation(void **state)
{
	struct monitor m;
	struct mw_page_stats pages = { 0 };
	uint64_t lat[MW_HIST_BUCKETS] = { 0 };

	monitor_init(&m);
	for (int i = 1; i <= 13; i++) {
		bool hot = (i / 2) % 2;
		pages.refaults += hot ? 25600 : 0;
		pages.refault_bytes += hot ? 100 << 20 : 0;	/* 100 MiB/s or nothing */
		pages.faults += hot ? 25600 : 10;
		lat[bucket_of(hot ? 3000000 : 20000)] += 100;
		struct reading r = { .t = i <= 12 ? i : 12.2, .pages = &pages, .live_heap = -1, .latency = lat,
				     .mem = mem(1 << 20), .arenas = -1 };
		assert_int_equal(monitor_add(&m, &r), 0);
	}
	struct correlation c;
	monitor_correlate(&m, &c);
	assert_int_equal(c.intervals, 12);	/* 0.2 s is under half the usual interval */
	assert_int_equal(c.hot_intervals, 6);
	assert_true(c.r_p99 > 0.99 && c.r_p50 > 0.99);
	assert_true(c.r_p99_faults > 0.99);
	/* Medians over the intervals: six at ~20 us, six at ~3 ms. */
	assert_true(c.p50_us > 20 && c.p50_us < 3500);
	monitor_free(&m);

	/* No probe calls: nothing to correlate. */
	monitor_init(&m);
	for (int i = 1; i <= 5; i++) {
		struct reading r = { .t = i, .pages = &pages, .live_heap = -1, .mem = mem(1), .arenas = -1 };
		monitor_add(&m, &r);
	}
	monitor_correlate(&m, &c);
	assert_int_equal(c.intervals, 0);
	assert_true(isnan(c.r_p99) && isnan(c.p99_us));
	monitor_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deltas_and_gauges),
		cmocka_unit_test(test_pearson),
		cmocka_unit_test(test_correlation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
