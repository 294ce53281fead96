/* The page profile: faults and purges sampled by bytes into sites,
 * unsampled estimates, the rows of each kind in their own columns, deltas,
 * and the pprof file read back. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "profile/pageprof.h"
#include "own_stacks.h"
#include "pprof_read.h"

#define RATE 8192
#define PAGE 4096

struct fx {
	struct own own;
	struct stacks st;
	struct pageprof pg;
	uint32_t fault_stack, purge_stack;
};

static void fx_open(struct fx *f)
{
	const void *callers[] = { own_caller };

	memset(f, 0, sizeof(*f));
	assert_int_equal(own_open(&f->own), 0);
	stacks_init(&f->st);
	pageprof_init(&f->pg, RATE);
	f->fault_stack = own_stack(&f->own, &f->st, (uint64_t)(uintptr_t)own_site_a, callers, 1);
	f->purge_stack = own_stack(&f->own, &f->st, (uint64_t)(uintptr_t)own_site_b, callers, 1);
}

static void fx_close(struct fx *f)
{
	pageprof_free(&f->pg);
	stacks_free(&f->st);
	own_close(&f->own);
}

static double weight(double bytes)
{
	return 1.0 / (1.0 - exp(-bytes / RATE));
}

static const struct profile_row *row_of(const struct profile_row *rows, long n, uint32_t stack, const char *event)
{
	for (long i = 0; i < n; i++)
		if (rows[i].stack == stack && !strcmp(rows[i].str_label, event))
			return &rows[i];
	return NULL;
}

static void test_sites_and_rows(void **state)
{
	struct fx f;
	struct profile_row *rows;
	pid_t pid = getpid();

	fx_open(&f);
	/* Three sampled faults of a page each, one madvise purge of 1 MiB
	 * and one munmap of 64 KiB from the same stack. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(pageprof_add(&f.pg, f.fault_stack, pid, MW_PAGE_FAULT, PAGE), 0);
	assert_int_equal(pageprof_add(&f.pg, f.purge_stack, pid, MW_PAGE_MADVISE, 1 << 20), 0);
	assert_int_equal(pageprof_add(&f.pg, f.purge_stack, pid, MW_PAGE_MUNMAP, 64 << 10), 0);
	assert_int_equal(f.pg.nsites, 3);
	assert_int_equal(f.pg.samples, 5);

	long n = pageprof_rows(&f.pg, NULL, &rows);
	assert_int_equal(n, 3);
	const struct profile_row *fault = row_of(rows, n, f.fault_stack, "fault");
	const struct profile_row *madv = row_of(rows, n, f.purge_stack, "madvise");
	const struct profile_row *unmap = row_of(rows, n, f.purge_stack, "munmap");
	assert_non_null(fault);
	assert_non_null(madv);
	assert_non_null(unmap);
	/* Faults in the first two columns, purges in the last two. */
	assert_int_equal(fault->values[0], llround(3 * weight(PAGE)));
	assert_int_equal(fault->values[1], llround(3 * PAGE * weight(PAGE)));
	assert_true(fault->values[2] == 0 && fault->values[3] == 0);
	assert_true(madv->values[0] == 0 && madv->values[1] == 0);
	assert_int_equal(madv->values[2], 1);	/* 1 MiB at 8 KiB: weight 1 */
	assert_int_equal(madv->values[3], 1 << 20);
	assert_int_equal(unmap->values[3], llround((64 << 10) * weight(64 << 10)));
	assert_int_equal(fault->bytes_label, -1);
	assert_string_equal(fault->str_label_key, "event");
	free(rows);
	fx_close(&f);
}

static void test_deltas(void **state)
{
	struct fx f;
	struct page_snapshot base;
	struct profile_row *rows;

	fx_open(&f);
	pageprof_add(&f.pg, f.fault_stack, getpid(), MW_PAGE_FAULT, PAGE);
	pageprof_add(&f.pg, f.purge_stack, getpid(), MW_PAGE_BRK, 1 << 20);
	assert_int_equal(pageprof_snapshot(&f.pg, &base), 0);
	assert_int_equal(pageprof_rows(&f.pg, &base, &rows), 0);
	free(rows);
	/* Two more faults: only they show against the snapshot. */
	pageprof_add(&f.pg, f.fault_stack, getpid(), MW_PAGE_FAULT, PAGE);
	pageprof_add(&f.pg, f.fault_stack, getpid(), MW_PAGE_FAULT, PAGE);
	long n = pageprof_rows(&f.pg, &base, &rows);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].stack, f.fault_stack);
	assert_int_equal(rows[0].values[1], llround(2 * PAGE * weight(PAGE)));
	free(rows);
	page_snapshot_free(&base);
	fx_close(&f);
}

static void test_event_names(void **state)
{
	assert_string_equal(page_event_name(MW_PAGE_FAULT), "fault");
	assert_string_equal(page_event_name(MW_PAGE_MADVISE), "madvise");
	assert_string_equal(page_event_name(MW_PAGE_MUNMAP), "munmap");
	assert_string_equal(page_event_name(MW_PAGE_BRK), "brk");
	assert_string_equal(page_event_name(MW_PAGE_COUNT), "?");
}

static void test_written_profile(void **state)
{
	struct fx f;
	const char *comments[] = { "pages", NULL };
	struct profile_spec base = { .start_ns = 5, .end_ns = 10, .comments = comments, .drop_frames = "malloc" };
	char path[] = "/tmp/mw-pageprof-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	fx_open(&f);
	pageprof_add(&f.pg, f.fault_stack, getpid(), MW_PAGE_FAULT, PAGE);
	pageprof_add(&f.pg, f.purge_stack, getpid(), MW_PAGE_MADVISE, 2 << 20);
	assert_int_equal(pageprof_write(&f.pg, &f.st, &f.own.ps, &base, fd), 0);
	close(fd);
	Perftools__Profiles__Profile *prof = pprof_read_file(path);
	assert_non_null(prof);
	const char *const want[] = { "faults", "fault_space", "purges", "purge_space" };
	assert_int_equal(prof->n_sample_type, 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(prof->string_table[prof->sample_type[i]->type], want[i]);
	assert_string_equal(prof->string_table[prof->default_sample_type], "fault_space");
	assert_int_equal(prof->period, RATE);
	assert_string_equal(prof->string_table[prof->comment[0]], "pages");
	assert_int_equal(prof->n_sample, 2);
	bool fault_seen = false, purge_seen = false;
	for (size_t i = 0; i < prof->n_sample; i++) {
		Perftools__Profiles__Sample *s = prof->sample[i];
		assert_int_equal(s->n_label, 1);
		assert_string_equal(prof->string_table[s->label[0]->key], "event");
		const char *event = prof->string_table[s->label[0]->str];
		if (!strcmp(event, "fault")) {
			fault_seen = true;
			assert_int_equal(s->value[1], llround(PAGE * weight(PAGE)));
		} else {
			purge_seen = !strcmp(event, "madvise");
			assert_int_equal(s->value[3], 2 << 20);
		}
	}
	assert_true(fault_seen && purge_seen);
	perftools__profiles__profile__free_unpacked(prof, NULL);
	unlink(path);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sites_and_rows),
		cmocka_unit_test(test_deltas),
		cmocka_unit_test(test_event_names),
		cmocka_unit_test(test_written_profile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
