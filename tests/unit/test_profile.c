/* The profile writer: parts over their own stacks tables in one profile,
 * pid and part labels, the main executable's mapping first with its
 * build-id and honest has_* flags, symbolized locations (callers at the
 * call instruction), synthetic frames, and the header fields. Read back
 * from the file it writes. */
#include <fcntl.h>
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

#include "elf/elf_file.h"
#include "profile/profile.h"
#include "own_stacks.h"
#include "pprof_read.h"

typedef Perftools__Profiles__Profile pb_profile;

static const char *str(const pb_profile *p, int64_t i)
{
	return p->string_table[i];
}

static const Perftools__Profiles__Mapping *mapping_by_id(const pb_profile *p, uint64_t id)
{
	for (size_t i = 0; i < p->n_mapping; i++)
		if (p->mapping[i]->id == id)
			return p->mapping[i];
	return NULL;
}

static const Perftools__Profiles__Location *location_by_id(const pb_profile *p, uint64_t id)
{
	for (size_t i = 0; i < p->n_location; i++)
		if (p->location[i]->id == id)
			return p->location[i];
	return NULL;
}

static const char *function_name(const pb_profile *p, const Perftools__Profiles__Location *l)
{
	for (size_t i = 0; i < p->n_function; i++)
		if (p->function[i]->id == l->line[l->n_line - 1]->function_id)
			return str(p, p->function[i]->name);
	return NULL;
}

static const char *label(const pb_profile *p, const Perftools__Profiles__Sample *s, const char *key, int64_t *num)
{
	for (size_t i = 0; i < s->n_label; i++) {
		if (strcmp(str(p, s->label[i]->key), key))
			continue;
		if (num)
			*num = s->label[i]->num;
		return s->label[i]->str ? str(p, s->label[i]->str) : "";
	}
	return NULL;
}

static pb_profile *write_and_read(struct own *o, const struct profile_spec *spec, const struct profile_part *parts,
				  size_t n)
{
	char path[] = "/tmp/mw-profile-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(profile_write_parts(&o->ps, spec, parts, n, fd), 0);
	close(fd);
	pb_profile *p = pprof_read_file(path);
	unlink(path);
	assert_non_null(p);
	return p;
}

static const struct profile_spec spec = {
	.types = { { "things", "count" }, { "space", "bytes" } },
	.ntypes = 2,
	.default_type = "space",
	.period_type = { "space", "bytes" },
	.period = 512,
	.drop_frames = "own_site_.*",
	.start_ns = 2000000000,
	.end_ns = 2500000000,
	.comments = (const char *const[]){ "first", "second", NULL },
};

static void test_two_parts(void **state)
{
	struct own o;
	struct stacks one, two;
	const void *callers[] = { own_caller };

	assert_int_equal(own_open(&o), 0);
	stacks_init(&one);
	stacks_init(&two);
	/* The leaf in libc, so that libc's mapping is noted before the
	 * executable's: pprof still gets the executable first. */
	uint32_t s1 = own_stack(&o, &one, (uint64_t)(uintptr_t)&malloc, callers, 1);
	uint32_t s2 = own_stack(&o, &two, (uint64_t)(uintptr_t)own_site_b, callers, 1);
	struct profile_row r1[] = { { .stack = s1, .pid = getpid(), .values = { 3, 300 }, .bytes_label = 100 } };
	struct profile_row r2[] = {
		{ .stack = s2, .pid = 4242, .values = { 1, 64 }, .bytes_label = -1, .str_label_key = "event",
		  .str_label = "fault" },
	};
	struct profile_part parts[] = {
		{ .st = &one, .rows = r1, .nrows = 1 },
		{ .st = &two, .rows = r2, .nrows = 1, .labels = { { "comm", "worker" }, { "exe", "" } } },
	};
	pb_profile *p = write_and_read(&o, &spec, parts, 2);

	assert_string_equal(str(p, p->default_sample_type), "space");
	assert_int_equal(p->period, 512);
	assert_string_equal(str(p, p->period_type->type), "space");
	assert_int_equal(p->time_nanos, 2000000000);
	assert_int_equal(p->duration_nanos, 500000000);
	assert_string_equal(str(p, p->drop_frames), "own_site_.*");
	assert_int_equal(p->n_comment, 2);
	assert_string_equal(str(p, p->comment[1]), "second");
	assert_int_equal(p->n_sample, 2);

	/* Two pids: every sample says which; the second part's labels, but
	 * not its empty one. */
	int64_t pid = 0;
	const Perftools__Profiles__Sample *a = p->sample[0], *b = p->sample[1];
	assert_non_null(label(p, a, "pid", &pid));
	assert_int_equal(pid, getpid());
	assert_non_null(label(p, a, "bytes", &pid));
	assert_int_equal(pid, 100);
	assert_null(label(p, a, "comm", NULL));
	assert_non_null(label(p, b, "pid", &pid));
	assert_int_equal(pid, 4242);
	assert_string_equal(label(p, b, "comm", NULL), "worker");
	assert_null(label(p, b, "exe", NULL));
	assert_string_equal(label(p, b, "event", NULL), "fault");
	assert_null(label(p, b, "bytes", NULL));
	assert_int_equal(b->value[1], 64);

	/* The executable first, with its build-id, and has_* set: every
	 * location in it was symbolized from its DWARF. */
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = 0;
	const Perftools__Profiles__Mapping *m0 = p->mapping[0];
	assert_string_equal(str(p, m0->filename), exe);
	assert_true(m0->has_functions && m0->has_filenames && m0->has_line_numbers);
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	struct elf_file *elf = elf_file_open(fd);
	close(fd);
	assert_non_null(elf);
	assert_non_null(elf_file_build_id(elf));
	assert_string_equal(str(p, m0->build_id), elf_file_build_id(elf));
	elf_file_close(elf);

	/* Leaf first; a caller's location is at its call instruction. */
	const Perftools__Profiles__Location *leaf = location_by_id(p, b->location_id[0]);
	const Perftools__Profiles__Location *caller = location_by_id(p, b->location_id[1]);
	assert_string_equal(function_name(p, leaf), "own_site_b");
	assert_int_equal(leaf->address, (uint64_t)(uintptr_t)own_site_b);
	assert_string_equal(function_name(p, caller), "own_caller");
	assert_int_equal(caller->address, ret_in(own_caller) - 1);
	assert_ptr_equal(mapping_by_id(p, caller->mapping_id), m0);
	assert_true(caller->line[0]->line > 0);
	perftools__profiles__profile__free_unpacked(p, NULL);
	stacks_free(&one);
	stacks_free(&two);
	own_close(&o);
}

static void test_one_process_synthetic_frame(void **state)
{
	struct own o;
	struct stacks st;
	uint64_t frames[] = { (uint64_t)(uintptr_t)own_site_a };

	assert_int_equal(own_open(&o), 0);
	stacks_init(&st);
	uint32_t s = stacks_intern(&st, &o.ps, o.p, frames, 1, "[truncated: stack snapshot too small]");
	struct profile_row rows[] = {
		{ .stack = s, .pid = getpid(), .values = { 1, 2 }, .bytes_label = -1 },
		{ .stack = s, .pid = getpid(), .values = { 3, 4 }, .bytes_label = -1 },
	};
	pb_profile *p = write_and_read(&o, &spec, &(struct profile_part){ .st = &st, .rows = rows, .nrows = 2 }, 1);

	/* One process: no pid labels. Two rows, two samples over one stack. */
	assert_int_equal(p->n_sample, 2);
	assert_int_equal(p->sample[0]->n_label, 0);
	assert_int_equal(p->sample[0]->n_location_id, 2);
	assert_int_equal(p->sample[0]->location_id[1], p->sample[1]->location_id[1]);
	const Perftools__Profiles__Location *why = location_by_id(p, p->sample[0]->location_id[1]);
	assert_int_equal(why->mapping_id, 0);
	assert_string_equal(function_name(p, why), "[truncated: stack snapshot too small]");
	perftools__profiles__profile__free_unpacked(p, NULL);
	stacks_free(&st);
	own_close(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_parts),
		cmocka_unit_test(test_one_process_synthetic_frame),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
