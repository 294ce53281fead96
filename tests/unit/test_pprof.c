#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "profile/pprof.h"
#include "pprof_read.h"
#include "profile.pb-c.h"

#define RATE 524288

/* Ids of the fixture profile. */
struct heap_ids {
	uint64_t exe, libc;			/* mappings */
	uint64_t f_malloc, f_helper, f_work, f_main;
	uint64_t l_malloc, l_inlined, l_main;
};

static const int64_t VALUES1[4] = { 512, 1048576, 256, 524288 };
static const int64_t VALUES2[4] = { 3, 24576, 0, 0 };

static struct pprof *heap_profile(struct heap_ids *ids)
{
	struct pprof *p = pprof_new();
	assert_non_null(p);
	assert_int_equal(pprof_add_sample_type(p, "alloc_objects", "count"), 0);
	assert_int_equal(pprof_add_sample_type(p, "alloc_space", "bytes"), 0);
	assert_int_equal(pprof_add_sample_type(p, "inuse_objects", "count"), 0);
	assert_int_equal(pprof_add_sample_type(p, "inuse_space", "bytes"), 0);
	pprof_set_period(p, "space", "bytes", RATE);
	pprof_set_drop_frames(p, "(malloc|calloc|realloc)");
	pprof_set_keep_frames(p, "keep_me");
	pprof_add_comment(p, "memwatch test");
	pprof_set_time(p, 1700000000000000000, 5000000000);

	struct pprof_mapping exe = {
		.start = 0x400000, .limit = 0x500000, .offset = 0,
		.filename = "/usr/bin/demo", .build_id = "0123456789abcdef",
		.has_functions = 1, .has_filenames = 1, .has_line_numbers = 1, .has_inline_frames = 1,
	};
	struct pprof_mapping libc = {
		.start = 0x7f0000000000, .limit = 0x7f0000200000, .offset = 0x28000,
		.filename = "/lib/x86_64-linux-gnu/libc.so.6",
	};
	ids->exe = pprof_mapping(p, &exe);
	ids->libc = pprof_mapping(p, &libc);

	ids->f_malloc = pprof_function(p, "malloc", "malloc", "", 0);
	ids->f_helper = pprof_function(p, "fill_buffer", "_Z11fill_bufferv", "demo.c", 40);
	ids->f_work = pprof_function(p, "do_work", "do_work", "demo.c", 10);
	ids->f_main = pprof_function(p, "main", "main", "demo.c", 3);

	struct pprof_line malloc_line = { ids->f_malloc, 0 };
	/* fill_buffer was inlined into do_work: innermost first. */
	struct pprof_line inlined[2] = { { ids->f_helper, 42 }, { ids->f_work, 17 } };
	struct pprof_line main_line = { ids->f_main, 5 };
	ids->l_malloc = pprof_location(p, ids->libc, 0x7f0000031234, &malloc_line, 1);
	ids->l_inlined = pprof_location(p, ids->exe, 0x401234, inlined, 2);
	ids->l_main = pprof_location(p, ids->exe, 0x402345, &main_line, 1);

	uint64_t stack1[] = { ids->l_malloc, ids->l_inlined, ids->l_main };
	uint64_t stack2[] = { ids->l_inlined, ids->l_main };
	struct pprof_label size1 = { .key = "bytes", .num = 2048, .num_unit = "bytes" };
	struct pprof_label labels2[] = {
		{ .key = "bytes", .num = 8192, .num_unit = "bytes" },
		{ .key = "thread", .str = "worker-1" },
	};
	assert_int_equal(pprof_add_sample(p, stack1, 3, VALUES1, 4, &size1, 1), 0);
	assert_int_equal(pprof_add_sample(p, stack2, 2, VALUES2, 4, labels2, 2), 0);
	return p;
}

static char *temp_path(void)
{
	char *path = strdup("/tmp/test_pprof.XXXXXX");
	assert_non_null(path);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	return path;
}

/* Writes p gzipped to a new temp file; returns its path. */
static char *write_temp(struct pprof *p)
{
	char *path = temp_path();
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(pprof_write_gz(p, fileno(f)), 0);
	fclose(f);
	return path;
}

static const char *str(const Perftools__Profiles__Profile *prof, int64_t idx)
{
	assert_true(idx >= 0 && (size_t)idx < prof->n_string_table);
	return prof->string_table[idx];
}

static void assert_value_type(const Perftools__Profiles__Profile *prof,
			      const Perftools__Profiles__ValueType *vt,
			      const char *type, const char *unit)
{
	assert_non_null(vt);
	assert_string_equal(str(prof, vt->type), type);
	assert_string_equal(str(prof, vt->unit), unit);
}

static void assert_header(const Perftools__Profiles__Profile *prof)
{
	assert_true(prof->n_string_table > 0);
	assert_string_equal(prof->string_table[0], "");
	assert_int_equal(prof->n_sample_type, 4);
	assert_value_type(prof, prof->sample_type[0], "alloc_objects", "count");
	assert_value_type(prof, prof->sample_type[1], "alloc_space", "bytes");
	assert_value_type(prof, prof->sample_type[2], "inuse_objects", "count");
	assert_value_type(prof, prof->sample_type[3], "inuse_space", "bytes");
	assert_value_type(prof, prof->period_type, "space", "bytes");
	assert_int_equal(prof->period, RATE);
	assert_int_equal(prof->default_sample_type, 0);
	assert_string_equal(str(prof, prof->drop_frames), "(malloc|calloc|realloc)");
	assert_string_equal(str(prof, prof->keep_frames), "keep_me");
	assert_int_equal(prof->n_comment, 1);
	assert_string_equal(str(prof, prof->comment[0]), "memwatch test");
	assert_int_equal(prof->time_nanos, 1700000000000000000);
	assert_int_equal(prof->duration_nanos, 5000000000);
}

static void assert_mappings(const Perftools__Profiles__Profile *prof, const struct heap_ids *ids)
{
	assert_int_equal(prof->n_mapping, 2);
	const Perftools__Profiles__Mapping *exe = prof->mapping[0], *libc = prof->mapping[1];
	assert_int_equal(exe->id, ids->exe);
	assert_int_equal(exe->memory_start, 0x400000);
	assert_int_equal(exe->memory_limit, 0x500000);
	assert_int_equal(exe->file_offset, 0);
	assert_string_equal(str(prof, exe->filename), "/usr/bin/demo");
	assert_string_equal(str(prof, exe->build_id), "0123456789abcdef");
	assert_true(exe->has_functions && exe->has_filenames && exe->has_line_numbers &&
		    exe->has_inline_frames);
	assert_int_equal(libc->id, ids->libc);
	assert_int_equal(libc->memory_start, 0x7f0000000000);
	assert_int_equal(libc->memory_limit, 0x7f0000200000);
	assert_int_equal(libc->file_offset, 0x28000);
	assert_string_equal(str(prof, libc->filename), "/lib/x86_64-linux-gnu/libc.so.6");
	assert_int_equal(libc->build_id, 0);
	assert_false(libc->has_functions || libc->has_filenames || libc->has_line_numbers ||
		     libc->has_inline_frames);
}

static void assert_function(const Perftools__Profiles__Profile *prof, uint64_t id,
			    const char *name, const char *system_name,
			    const char *filename, int64_t start_line)
{
	const Perftools__Profiles__Function *f = prof->function[id - 1];
	assert_int_equal(f->id, id);
	assert_string_equal(str(prof, f->name), name);
	assert_string_equal(str(prof, f->system_name), system_name);
	assert_string_equal(str(prof, f->filename), filename);
	assert_int_equal(f->start_line, start_line);
}

static void assert_line(const Perftools__Profiles__Line *line, uint64_t function_id, int64_t lineno)
{
	assert_int_equal(line->function_id, function_id);
	assert_int_equal(line->line, lineno);
}

static void assert_locations(const Perftools__Profiles__Profile *prof, const struct heap_ids *ids)
{
	assert_int_equal(prof->n_function, 4);
	assert_function(prof, ids->f_malloc, "malloc", "malloc", "", 0);
	assert_function(prof, ids->f_helper, "fill_buffer", "_Z11fill_bufferv", "demo.c", 40);
	assert_function(prof, ids->f_work, "do_work", "do_work", "demo.c", 10);
	assert_function(prof, ids->f_main, "main", "main", "demo.c", 3);

	assert_int_equal(prof->n_location, 3);
	const Perftools__Profiles__Location *loc = prof->location[ids->l_inlined - 1];
	assert_int_equal(loc->id, ids->l_inlined);
	assert_int_equal(loc->mapping_id, ids->exe);
	assert_int_equal(loc->address, 0x401234);
	assert_int_equal(loc->n_line, 2);
	assert_line(loc->line[0], ids->f_helper, 42);
	assert_line(loc->line[1], ids->f_work, 17);	/* outermost last */

	loc = prof->location[ids->l_malloc - 1];
	assert_int_equal(loc->mapping_id, ids->libc);
	assert_int_equal(loc->address, 0x7f0000031234);
	assert_int_equal(loc->n_line, 1);
	assert_line(loc->line[0], ids->f_malloc, 0);
}

static void assert_num_label(const Perftools__Profiles__Profile *prof,
			     const Perftools__Profiles__Label *l, const char *key,
			     int64_t num, const char *unit)
{
	assert_string_equal(str(prof, l->key), key);
	assert_int_equal(l->str, 0);
	assert_int_equal(l->num, num);
	assert_string_equal(str(prof, l->num_unit), unit);
}

static void assert_samples(const Perftools__Profiles__Profile *prof, const struct heap_ids *ids)
{
	assert_int_equal(prof->n_sample, 2);
	const Perftools__Profiles__Sample *s = prof->sample[0];
	assert_int_equal(s->n_location_id, 3);
	assert_int_equal(s->location_id[0], ids->l_malloc);
	assert_int_equal(s->location_id[1], ids->l_inlined);
	assert_int_equal(s->location_id[2], ids->l_main);
	assert_int_equal(s->n_value, 4);
	assert_memory_equal(s->value, VALUES1, sizeof(VALUES1));
	assert_int_equal(s->n_label, 1);
	assert_num_label(prof, s->label[0], "bytes", 2048, "bytes");

	s = prof->sample[1];
	assert_int_equal(s->n_location_id, 2);
	assert_int_equal(s->location_id[0], ids->l_inlined);
	assert_memory_equal(s->value, VALUES2, sizeof(VALUES2));
	assert_int_equal(s->n_label, 2);
	assert_num_label(prof, s->label[0], "bytes", 8192, "bytes");
	assert_string_equal(str(prof, s->label[1]->key), "thread");
	assert_string_equal(str(prof, s->label[1]->str), "worker-1");
	assert_int_equal(s->label[1]->num_unit, 0);
}

static void test_gzip_round_trip(void **state)
{
	struct heap_ids ids;
	struct pprof *p = heap_profile(&ids);
	char *path = write_temp(p);

	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fgetc(f), 0x1f);	/* gzip magic */
	assert_int_equal(fgetc(f), 0x8b);
	fclose(f);

	Perftools__Profiles__Profile *prof = pprof_read_file(path);
	assert_non_null(prof);
	assert_header(prof);
	assert_mappings(prof, &ids);
	assert_locations(prof, &ids);
	assert_samples(prof, &ids);
	perftools__profiles__profile__free_unpacked(prof, NULL);
	unlink(path);
	free(path);
	pprof_free(p);
}

static void test_raw_round_trip(void **state)
{
	struct heap_ids ids;
	struct pprof *p = heap_profile(&ids);
	pprof_set_default_sample_type(p, "alloc_space");
	uint8_t *buf;
	size_t len;
	assert_int_equal(pprof_encode(p, &buf, &len), 0);
	char *path = temp_path();
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);

	Perftools__Profiles__Profile *prof = pprof_read_file(path);
	assert_non_null(prof);
	assert_string_equal(str(prof, prof->default_sample_type), "alloc_space");
	assert_samples(prof, &ids);
	perftools__profiles__profile__free_unpacked(prof, NULL);
	unlink(path);
	free(path);
	free(buf);
	pprof_free(p);
}

static void test_dedup(void **state)
{
	struct heap_ids ids;
	struct pprof *p = heap_profile(&ids);
	assert_int_equal(ids.exe, 1);
	assert_int_equal(ids.libc, 2);
	assert_int_equal(ids.f_main, 4);
	assert_int_equal(ids.l_main, 3);

	assert_int_equal(pprof_string(p, ""), 0);
	assert_int_equal(pprof_string(p, NULL), 0);
	int64_t s = pprof_string(p, "do_work");
	assert_true(s > 0);
	char copy[] = "do_work";
	assert_int_equal(pprof_string(p, copy), s);

	struct pprof_mapping exe = {
		.start = 0x400000, .limit = 0x500000, .filename = "/usr/bin/demo",
		.build_id = "0123456789abcdef",
	};
	assert_int_equal(pprof_mapping(p, &exe), ids.exe);
	exe.offset = 0x1000;
	assert_int_equal(pprof_mapping(p, &exe), 3);

	assert_int_equal(pprof_function(p, "do_work", "do_work", "demo.c", 10), ids.f_work);
	assert_int_equal(pprof_function(p, "do_work", "do_work", "demo.c", 11), 5);
	assert_int_equal(pprof_function(p, "do_work", NULL, "demo.c", 10), 6);
	assert_int_equal(pprof_function(p, "do_work", "", "demo.c", 10), 6);

	struct pprof_line line = { ids.f_main, 5 };
	assert_int_equal(pprof_location(p, ids.exe, 0x402345, &line, 1), ids.l_main);
	assert_int_equal(pprof_location(p, ids.libc, 0x402345, &line, 1), 4);
	assert_int_equal(pprof_location(p, 0, 0x402345, &line, 1), 5);
	/* Address 0 (unknown) is never merged. */
	assert_int_equal(pprof_location(p, ids.exe, 0, &line, 1), 6);
	assert_int_equal(pprof_location(p, ids.exe, 0, &line, 1), 7);
	pprof_free(p);
}

static void test_invalid_arguments(void **state)
{
	struct heap_ids ids;
	struct pprof *p = heap_profile(&ids);
	struct pprof_line bad_function = { 99, 1 };
	assert_int_equal(pprof_location(p, ids.exe, 0x1, &bad_function, 1), 0);
	assert_int_equal(pprof_location(p, 99, 0x1, NULL, 0), 0);

	uint64_t stack[] = { ids.l_main };
	uint64_t bad_stack[] = { 99 };
	int64_t values[4] = { 1, 2, 3, 4 };
	struct pprof_label no_key = { .num = 1 };
	assert_int_equal(pprof_add_sample(p, stack, 1, values, 3, NULL, 0), -EINVAL);
	assert_int_equal(pprof_add_sample(p, bad_stack, 1, values, 4, NULL, 0), -EINVAL);
	assert_int_equal(pprof_add_sample(p, stack, 1, values, 4, &no_key, 1), -EINVAL);
	assert_int_equal(pprof_sample_count(p), 2);
	assert_int_equal(pprof_add_sample(p, stack, 1, values, 4, NULL, 0), 0);
	assert_int_equal(pprof_sample_count(p), 3);
	assert_null(pprof_read_file("/nonexistent/profile.pb.gz"));
	pprof_free(p);
}

/* 100k distinct functions, locations and samples: ids stay dense and
 * lookups find every entry again. */
static void test_many_entries(void **state)
{
	enum { N = 100000 };
	struct pprof *p = pprof_new();
	assert_non_null(p);
	assert_int_equal(pprof_add_sample_type(p, "inuse_space", "bytes"), 0);
	struct pprof_mapping m = { .start = 0x1000, .limit = 0x10000000, .filename = "/bin/x" };
	uint64_t map = pprof_mapping(p, &m);
	char name[32];
	for (uint64_t i = 1; i <= N; i++) {
		snprintf(name, sizeof(name), "fn_%llu", (unsigned long long)i);
		assert_int_equal(pprof_function(p, name, name, "x.c", (int64_t)i), i);
		struct pprof_line line = { i, (int64_t)i };
		assert_int_equal(pprof_location(p, map, 0x1000 + i * 4, &line, 1), i);
		int64_t value = (int64_t)i;
		assert_int_equal(pprof_add_sample(p, &i, 1, &value, 1, NULL, 0), 0);
	}
	for (uint64_t i = 1; i <= N; i++) {
		snprintf(name, sizeof(name), "fn_%llu", (unsigned long long)i);
		assert_int_equal(pprof_function(p, name, name, "x.c", (int64_t)i), i);
		assert_int_equal(pprof_location(p, map, 0x1000 + i * 4, NULL, 0), i);
	}
	uint8_t *gz;
	size_t len;
	assert_int_equal(pprof_encode_gz(p, &gz, &len), 0);
	assert_true(len > 0);
	free(gz);
	pprof_free(p);
}

static void test_go_tool_pprof(void **state)
{
	if (system("command -v go >/dev/null 2>&1") != 0)
		fail_msg("`go` not found in PATH: install golang-go, this test runs `go tool pprof`");
	struct heap_ids ids;
	struct pprof *p = heap_profile(&ids);
	char *path = write_temp(p);
	char home[] = "/tmp/test_pprof_home.XXXXXX";
	assert_non_null(mkdtemp(home));
	setenv("HOME", home, 1);
	setenv("PPROF_BINARY_PATH", "/nonexistent", 1);
	setenv("PPROF_TMPDIR", home, 1);

	char cmd[512];
	snprintf(cmd, sizeof(cmd), "go tool pprof -raw -symbolize=none %s 2>&1", path);
	FILE *out = popen(cmd, "r");
	assert_non_null(out);
	static char text[65536];
	size_t len = fread(text, 1, sizeof(text) - 1, out);
	text[len] = 0;
	int status = pclose(out);
	if (status != 0)
		fail_msg("go tool pprof failed (%d):\n%s", status, text);

	const char *expect[] = {
		"alloc_objects/count", "inuse_space/bytes", "do_work", "fill_buffer",
		"512", "1048576", "256", "524288", "24576", "bytes:[2048 bytes]",
		"thread:[worker-1]", "/usr/bin/demo 0123456789abcdef [FN][FL][LN][IN]",
		/* drop_frames removed the malloc leaf from the first sample */
		"524288: 2 3",
	};
	for (size_t i = 0; i < sizeof(expect) / sizeof(*expect); i++)
		if (!strstr(text, expect[i]))
			fail_msg("`%s` missing from go tool pprof output:\n%s", expect[i], text);
	/* The inlined callee is listed first, its caller after it. */
	const char *callee = strstr(text, "fill_buffer demo.c:42");
	const char *caller = strstr(text, "do_work demo.c:17");
	if (!callee || !caller || caller < callee)
		fail_msg("inlined frames out of order:\n%s", text);

	unlink(path);
	free(path);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
	assert_int_equal(system(cmd), 0);
	pprof_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gzip_round_trip),
		cmocka_unit_test(test_raw_round_trip),
		cmocka_unit_test(test_dedup),
		cmocka_unit_test(test_invalid_arguments),
		cmocka_unit_test(test_many_entries),
		cmocka_unit_test(test_go_tool_pprof),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
