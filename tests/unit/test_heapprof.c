/* The heap profile: samples into sites, unsampled estimates, cancels, live
 * scans and forgetting freed samples, rows and deltas, growth by site name,
 * live bytes by size, the top list, and the pprof file it writes, read back.
 * Stacks are the test process's own, symbolized from its DWARF. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "probes/allocators.h"
#include "profile/heapprof.h"
#include "own_stacks.h"
#include "pprof_read.h"

struct fx {
	struct own own;
	struct heapprof hp;
	uint32_t stack_a, stack_b;	/* malloc called from own_site_a / own_site_b */
};

static struct fx *fx_open(uint64_t rate)
{
	struct fx *f = calloc(1, sizeof(*f));
	const void *a[] = { own_site_a, own_caller }, *b[] = { own_site_b, own_caller };

	assert_non_null(f);
	assert_int_equal(own_open(&f->own), 0);
	heapprof_init(&f->hp, rate, allocators_drop_frames());
	f->stack_a = own_stack(&f->own, &f->hp.st, (uint64_t)(uintptr_t)&malloc, a, 2);
	f->stack_b = own_stack(&f->own, &f->hp.st, (uint64_t)(uintptr_t)&malloc, b, 2);
	assert_int_not_equal(f->stack_a, UINT32_MAX);
	assert_int_not_equal(f->stack_b, UINT32_MAX);
	assert_int_not_equal(f->stack_a, f->stack_b);
	return f;
}

static void fx_close(struct fx *f)
{
	heapprof_free(&f->hp);
	own_close(&f->own);
	free(f);
}

static void scan(struct heapprof *hp, const uint64_t *live, size_t n)
{
	heapprof_scan_begin(hp);
	for (size_t i = 0; i < n; i++)
		heapprof_scan_count(hp, live[i]);
	heapprof_scan_end(hp);
}

static void test_exact_totals_and_cancel(void **state)
{
	struct fx *f = fx_open(1);
	pid_t pid = getpid();

	assert_int_equal(heapprof_add(&f->hp, 1, f->stack_a, pid, 100), 0);
	assert_int_equal(heapprof_add(&f->hp, 2, f->stack_a, pid, 100), 0);
	assert_int_equal(heapprof_add(&f->hp, 3, f->stack_b, pid, 300), 0);
	assert_int_equal(heapprof_add(&f->hp, 4, f->stack_a, pid, 200), 0);
	/* Sites are (stack, pid, size): a, a at 200, b. */
	assert_int_equal(f->hp.nsites, 3);
	assert_int_equal(f->hp.tot.samples, 4);
	assert_true(f->hp.tot.alloc_bytes == 700 && f->hp.tot.alloc_objects == 4);

	heapprof_cancel(&f->hp, 3);
	heapprof_cancel(&f->hp, 3);	/* already gone */
	heapprof_cancel(&f->hp, 77);	/* never seen */
	assert_int_equal(f->hp.tot.cancels, 1);
	assert_int_equal(f->hp.tot.samples, 3);
	assert_true(f->hp.tot.alloc_bytes == 400 && f->hp.tot.alloc_objects == 3);
	fx_close(f);
}

/* At a mean interval of R bytes an allocation of S bytes stands for
 * S / (1 - exp(-S/R)) bytes. */
static void test_unsampled_estimates(void **state)
{
	struct fx *f = fx_open(1000);
	double w100 = 1.0 / (1.0 - exp(-100.0 / 1000.0)), w5000 = 1.0 / (1.0 - exp(-5.0));

	heapprof_add(&f->hp, 1, f->stack_a, getpid(), 100);
	heapprof_add(&f->hp, 2, f->stack_b, getpid(), 5000);
	assert_float_equal(f->hp.tot.alloc_objects, w100 + w5000, 1e-9);
	assert_float_equal(f->hp.tot.alloc_bytes, 100 * w100 + 5000 * w5000, 1e-6);
	uint64_t live[] = { 2 };
	scan(&f->hp, live, 1);
	assert_float_equal(f->hp.tot.inuse_bytes, 5000 * w5000, 1e-6);
	assert_float_equal(f->hp.tot.inuse_objects, w5000, 1e-9);
	fx_close(f);
}

static void test_live_scans(void **state)
{
	struct fx *f = fx_open(1);
	uint64_t first[] = { 1, 3, 99 }, second[] = { 3 };

	for (uint64_t id = 1; id <= 3; id++)
		heapprof_add(&f->hp, id, id == 3 ? f->stack_b : f->stack_a, getpid(), 64 * id);
	scan(&f->hp, first, 3);
	assert_true(f->hp.tot.inuse_bytes == 64 + 192);
	assert_int_equal(f->hp.tot.inuse_samples, 2);
	assert_int_equal(f->hp.tot.live_unknown, 1);	/* 99: never sampled */
	/* A scan recomputes from scratch. */
	scan(&f->hp, second, 1);
	assert_true(f->hp.tot.inuse_bytes == 192);
	assert_int_equal(f->hp.tot.live_unknown, 0);
	/* Sample 2 has been absent from two scans: forgotten, a cancel no
	 * longer finds it. Sample 1, absent from one, is still known. */
	heapprof_cancel(&f->hp, 2);
	assert_int_equal(f->hp.tot.cancels, 0);
	heapprof_cancel(&f->hp, 1);
	assert_int_equal(f->hp.tot.cancels, 1);
	fx_close(f);
}

static void test_rows_and_deltas(void **state)
{
	struct fx *f = fx_open(1);
	struct heap_snapshot base;
	struct profile_row *rows;
	uint64_t live[] = { 1, 2 };

	heapprof_add(&f->hp, 1, f->stack_a, getpid(), 100);
	heapprof_add(&f->hp, 2, f->stack_b, getpid(), 50);
	scan(&f->hp, live, 2);
	long n = heapprof_rows(&f->hp, NULL, &rows);
	assert_int_equal(n, 2);
	for (long i = 0; i < n; i++) {
		bool a = rows[i].stack == f->stack_a;
		assert_int_equal(rows[i].values[0], 1);
		assert_int_equal(rows[i].values[1], a ? 100 : 50);
		assert_int_equal(rows[i].values[2], 1);
		assert_int_equal(rows[i].values[3], a ? 100 : 50);
		assert_int_equal(rows[i].bytes_label, a ? 100 : 50);
		assert_int_equal(rows[i].pid, getpid());
	}
	free(rows);

	/* What happened since the snapshot: b allocated twice more, a's block
	 * freed; a's row (-1 in use, nothing allocated) stays, b's shows +2. */
	assert_int_equal(heapprof_snapshot(&f->hp, &base), 0);
	heapprof_add(&f->hp, 3, f->stack_b, getpid(), 50);
	heapprof_add(&f->hp, 4, f->stack_b, getpid(), 50);
	uint64_t later[] = { 2, 3, 4 };
	scan(&f->hp, later, 3);
	n = heapprof_rows(&f->hp, &base, &rows);
	assert_int_equal(n, 2);
	for (long i = 0; i < n; i++) {
		if (rows[i].stack == f->stack_b) {
			assert_int_equal(rows[i].values[0], 2);
			assert_int_equal(rows[i].values[1], 100);
			assert_int_equal(rows[i].values[3], 100);
		} else {
			assert_int_equal(rows[i].values[0], 0);
			assert_int_equal(rows[i].values[2], -1);
			assert_int_equal(rows[i].values[3], -100);
		}
	}
	free(rows);
	/* Against a snapshot of now, nothing changed: no rows. */
	heap_snapshot_free(&base);
	assert_int_equal(heapprof_snapshot(&f->hp, &base), 0);
	assert_int_equal(heapprof_rows(&f->hp, &base, &rows), 0);
	free(rows);
	heap_snapshot_free(&base);
	fx_close(f);
}

static void test_site_names_and_growth(void **state)
{
	struct fx *f = fx_open(1);
	struct site_growth g[4];
	uint64_t before[] = { 1 }, after[] = { 1, 2, 3, 4 };

	/* malloc (an allocator frame) is skipped: the site is its caller. */
	assert_string_equal(heapprof_site_name(&f->hp, &f->own.ps, f->stack_a), "own_site_a");
	assert_string_equal(heapprof_site_name(&f->hp, &f->own.ps, f->stack_b), "own_site_b");

	heapprof_add(&f->hp, 1, f->stack_a, getpid(), 1000);
	scan(&f->hp, before, 1);
	heapprof_mark_baseline(&f->hp);
	heapprof_add(&f->hp, 2, f->stack_b, getpid(), 4000);
	heapprof_add(&f->hp, 3, f->stack_b, getpid(), 4000);
	heapprof_add(&f->hp, 4, f->stack_a, getpid(), 500);
	scan(&f->hp, after, 4);
	size_t n = heapprof_growth(&f->hp, &f->own.ps, g, 4);
	assert_int_equal(n, 2);
	assert_string_equal(g[0].name, "own_site_b");	/* grew 8000 */
	assert_true(g[0].first_bytes == 0 && g[0].last_bytes == 8000);
	assert_string_equal(g[1].name, "own_site_a");	/* grew 500 (two sizes, one name) */
	assert_true(g[1].first_bytes == 1000 && g[1].last_bytes == 1500);
	assert_int_equal(heapprof_growth(&f->hp, &f->own.ps, g, 1), 1);
	fx_close(f);
}

static void test_live_by_size(void **state)
{
	struct fx *f = fx_open(1);
	double buckets[48];
	uint64_t live[] = { 1, 2, 3 };

	heapprof_add(&f->hp, 1, f->stack_a, getpid(), 100);	/* [64, 128): bucket 6 */
	heapprof_add(&f->hp, 2, f->stack_a, getpid(), 127);
	heapprof_add(&f->hp, 3, f->stack_b, getpid(), 4096);	/* bucket 12 */
	heapprof_add(&f->hp, 4, f->stack_b, getpid(), 1 << 20);	/* freed */
	scan(&f->hp, live, 3);
	heapprof_live_by_size(&f->hp, buckets, 48);
	for (int b = 0; b < 48; b++)
		assert_true(buckets[b] == (b == 6 ? 227 : b == 12 ? 4096 : 0));
	fx_close(f);
}

static void test_print_top(void **state)
{
	struct fx *f = fx_open(1);
	uint64_t live[] = { 1, 2, 3 };
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	heapprof_add(&f->hp, 1, f->stack_a, getpid(), 1024);
	heapprof_add(&f->hp, 2, f->stack_b, getpid(), 3 << 20);
	heapprof_add(&f->hp, 3, f->stack_b, getpid(), 1 << 20);
	scan(&f->hp, live, 3);
	heapprof_print_top(&f->hp, &f->own.ps, out, 10);
	fclose(out);
	/* By in-use bytes, one line per function: b's 4 MiB first. */
	char *b = strstr(text, "own_site_b"), *a = strstr(text, "own_site_a");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(b < a);
	assert_non_null(strstr(text, "4.0 MiB"));
	assert_non_null(strstr(text, "2 objs"));
	free(text);
	fx_close(f);
}

static char *temp_path(void)
{
	char *path = strdup("/tmp/mw-heapprof-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	return path;
}

static void test_written_profile(void **state)
{
	struct fx *f = fx_open(4096);
	const char *comments[] = { "hello", NULL };
	struct profile_meta meta = { .start_ns = 1000000000, .end_ns = 3000000000, .comments = comments };
	uint64_t live[] = { 1 };
	char *path = temp_path();
	FILE *file = fopen(path, "w");

	heapprof_add(&f->hp, 1, f->stack_a, getpid(), 8192);
	heapprof_add(&f->hp, 2, f->stack_b, getpid(), 16);
	scan(&f->hp, live, 1);
	assert_int_equal(heapprof_write(&f->hp, &f->own.ps, &meta, fileno(file)), 0);
	fclose(file);

	Perftools__Profiles__Profile *prof = pprof_read_file(path);
	assert_non_null(prof);
	const char *const want[] = { "alloc_objects", "alloc_space", "inuse_objects", "inuse_space" };
	assert_int_equal(prof->n_sample_type, 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(prof->string_table[prof->sample_type[i]->type], want[i]);
	assert_int_equal(prof->period, 4096);
	assert_int_equal(prof->time_nanos, 1000000000);
	assert_int_equal(prof->duration_nanos, 2000000000);
	assert_int_equal(prof->default_sample_type, 0);
	assert_string_equal(prof->string_table[prof->comment[0]], "hello");
	assert_non_null(strstr(prof->string_table[prof->drop_frames], "malloc"));
	assert_int_equal(prof->n_sample, 2);
	double w8192 = 1.0 / (1.0 - exp(-2.0)), w16 = 1.0 / (1.0 - exp(-16.0 / 4096));
	for (size_t i = 0; i < prof->n_sample; i++) {
		Perftools__Profiles__Sample *s = prof->sample[i];
		assert_int_equal(s->n_value, 4);
		assert_int_equal(s->n_label, 1);
		assert_string_equal(prof->string_table[s->label[0]->key], "bytes");
		bool big = s->label[0]->num == 8192;
		assert_int_equal(s->value[0], llround(big ? w8192 : w16));
		assert_int_equal(s->value[1], llround(big ? 8192 * w8192 : 16 * w16));
		assert_int_equal(s->value[3], big ? llround(8192 * w8192) : 0);
		assert_int_equal(s->n_location_id, 3);
	}
	perftools__profiles__profile__free_unpacked(prof, NULL);

	/* --alloc-only: Go's allocs profile, the in-use types absent. */
	meta.alloc_only = true;
	file = fopen(path, "w");
	assert_int_equal(heapprof_write(&f->hp, &f->own.ps, &meta, fileno(file)), 0);
	fclose(file);
	prof = pprof_read_file(path);
	assert_non_null(prof);
	assert_int_equal(prof->n_sample_type, 2);
	assert_string_equal(prof->string_table[prof->default_sample_type], "alloc_space");
	assert_int_equal(prof->sample[0]->n_value, 2);
	perftools__profiles__profile__free_unpacked(prof, NULL);
	unlink(path);
	free(path);
	fx_close(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_totals_and_cancel),
		cmocka_unit_test(test_unsampled_estimates),
		cmocka_unit_test(test_live_scans),
		cmocka_unit_test(test_rows_and_deltas),
		cmocka_unit_test(test_site_names_and_growth),
		cmocka_unit_test(test_live_by_size),
		cmocka_unit_test(test_print_top),
		cmocka_unit_test(test_written_profile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
