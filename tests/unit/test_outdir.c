/* --output-dir: file names, atomic writes, retention by count and bytes,
 * files found at open, files that are not memwatch's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "host/outdir.h"

/* 2024-01-02T03:04:05.678Z */
#define T0 (1704164645ll * 1000000000 + 678000000)
#define SEC 1000000000ll

struct content {
	const char *text;
	size_t len;		/* of text, or 0 for strlen */
	int err;		/* returned after writing text */
};

static int write_content(void *ctx, int fd)
{
	const struct content *c = ctx;
	size_t len = c->len ? c->len : strlen(c->text);

	if (write(fd, c->text, len) != (ssize_t)len)
		return -errno;
	return c->err;
}

static int setup(void **state)
{
	char *dir = strdup("/tmp/test_outdir.XXXXXX");

	if (!dir || !mkdtemp(dir))
		return -1;
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s.moved'", (char *)*state, (char *)*state);
	free(*state);
	return system(cmd) ? -1 : 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir, sorted, one a line. */
static char *listing(const char *dir)
{
	static char text[8192];
	char *names[256];
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), by_name);
	text[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		strcat(text, names[i]);
		strcat(text, "\n");
		free(names[i]);
	}
	return text;
}

static void make_file(const char *dir, const char *name, size_t size)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

static int write_text(struct outdir *od, const char *comm, pid_t pid, int64_t ns, const char *text)
{
	struct content c = { .text = text };

	return outdir_write(od, comm, pid, ns, "heap", write_content, &c);
}

static void test_names(void **state)
{
	const char *dir = *state;
	struct outdir *od;
	struct outdir_stats st;
	char x100[101];

	memset(x100, 'x', 100);
	x100[100] = '\0';
	assert_int_equal(outdir_open(&od, dir, 100, 0), 0);
	assert_int_equal(write_text(od, "redis-server", 42, T0, "a"), 0);
	assert_int_equal(write_text(od, "a/b c", 42, T0, "a"), 0);
	assert_int_equal(write_text(od, ".hidden", 1, T0, "a"), 0);
	assert_int_equal(write_text(od, "..", 1, T0, "a"), 0);
	assert_int_equal(write_text(od, "", 2, T0, "a"), 0);
	assert_int_equal(write_text(od, NULL, 3, T0, "a"), 0);
	assert_int_equal(write_text(od, x100, 4, T0, "a"), 0);
	assert_int_equal(write_text(od, "caf\xc3\xa9", 5, T0, "a"), 0);
	assert_int_equal(write_text(od, "kworker/0:1-ev", 6, T0 + 999 * 1000000ll + 999999, "a"), 0);
	struct content c = { .text = "p" };
	assert_int_equal(outdir_write(od, "x", 7, 0, "pages", write_content, &c), 0);
	assert_string_equal(listing(dir),
		"_-2-20240102T030405.678Z.heap.pb.gz\n"
		"_-3-20240102T030405.678Z.heap.pb.gz\n"
		"_.-1-20240102T030405.678Z.heap.pb.gz\n"
		"_hidden-1-20240102T030405.678Z.heap.pb.gz\n"
		"a_b_c-42-20240102T030405.678Z.heap.pb.gz\n"
		"caf__-5-20240102T030405.678Z.heap.pb.gz\n"
		"kworker_0_1-ev-6-20240102T030406.677Z.heap.pb.gz\n"
		"redis-server-42-20240102T030405.678Z.heap.pb.gz\n"
		"x-7-19700101T000000.000Z.pages.pb.gz\n"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-4-20240102T030405.678Z.heap.pb.gz\n");

	/* Invalid kinds, pids and times. */
	assert_int_equal(outdir_write(od, "x", 1, T0, "Heap", write_content, &c), -EINVAL);
	assert_int_equal(outdir_write(od, "x", 1, T0, "", write_content, &c), -EINVAL);
	assert_int_equal(outdir_write(od, "x", 1, T0, NULL, write_content, &c), -EINVAL);
	assert_int_equal(outdir_write(od, "x", 1, T0, "he-ap", write_content, &c), -EINVAL);
	assert_int_equal(outdir_write(od, "x", 1, T0, "abcdefghijklmnopq", write_content, &c), -EINVAL);
	assert_int_equal(outdir_write(od, "x", -1, T0, "heap", write_content, &c), -EINVAL);
	assert_int_equal(outdir_write(od, "x", 1, -1, "heap", write_content, &c), -EINVAL);
	assert_int_equal(outdir_write(od, "x", 1, T0, "abcdefghijklmnop", write_content, &c), 0);
	outdir_stats(od, &st);
	assert_int_equal(st.written, 11);
	assert_int_equal(st.errors, 7);
	outdir_close(od);

	/* Every name written is recognized as memwatch's at open. */
	assert_int_equal(outdir_open(&od, dir, 100, 0), 0);
	outdir_stats(od, &st);
	assert_int_equal(st.files, 11);
	assert_int_equal(st.bytes, 11);
	outdir_close(od);
}

static void test_atomic(void **state)
{
	const char *dir = *state;
	struct content fails = { .text = "partial", .err = -ENOSPC };
	struct content positive = { .text = "partial", .err = 1 };
	struct content ok = { .text = "whole" };
	struct outdir_stats st;
	struct outdir *od;
	char path[512];
	char text[16] = "";

	assert_int_equal(outdir_open(&od, dir, 10, 0), 0);
	assert_int_equal(outdir_write(od, "a", 1, T0, "heap", write_content, &fails), -ENOSPC);
	assert_string_equal(listing(dir), "");
	assert_int_equal(outdir_write(od, "a", 1, T0, "heap", write_content, &positive), -EIO);
	assert_string_equal(listing(dir), "");
	assert_int_equal(outdir_write(od, "a", 1, T0, "heap", write_content, &ok), 0);
	assert_string_equal(listing(dir), "a-1-20240102T030405.678Z.heap.pb.gz\n");
	snprintf(path, sizeof(path), "%s/a-1-20240102T030405.678Z.heap.pb.gz", dir);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(text, sizeof(text), f));
	fclose(f);
	assert_string_equal(text, "whole");

	/* The same name again is refused; the first file stays. */
	assert_int_equal(outdir_write(od, "a", 1, T0, "heap", write_content, &fails), -EEXIST);
	assert_string_equal(listing(dir), "a-1-20240102T030405.678Z.heap.pb.gz\n");
	outdir_stats(od, &st);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.bytes, 5);
	assert_int_equal(st.written, 1);
	assert_int_equal(st.errors, 3);
	outdir_close(od);
}

static void test_count_bound(void **state)
{
	const char *dir = *state;
	struct outdir_stats st;
	struct outdir *od;

	assert_int_equal(outdir_open(&od, dir, 3, 0), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(write_text(od, "w", 100 + i, T0 + i * SEC, "abc"), 0);
	assert_string_equal(listing(dir),
		"w-107-20240102T030412.678Z.heap.pb.gz\n"
		"w-108-20240102T030413.678Z.heap.pb.gz\n"
		"w-109-20240102T030414.678Z.heap.pb.gz\n");
	outdir_stats(od, &st);
	assert_int_equal(st.files, 3);
	assert_int_equal(st.bytes, 9);
	assert_int_equal(st.written, 10);
	assert_int_equal(st.deleted, 7);
	assert_int_equal(st.errors, 0);

	/* Oldest by time, not by pid or order of writing: an older file is the
	 * first to go, a newer one displaces the oldest. */
	assert_int_equal(write_text(od, "w", 999, T0, "abc"), 0);
	assert_int_equal(write_text(od, "w", 1, T0 + 20 * SEC, "abc"), 0);
	assert_string_equal(listing(dir),
		"w-1-20240102T030425.678Z.heap.pb.gz\n"
		"w-108-20240102T030413.678Z.heap.pb.gz\n"
		"w-109-20240102T030414.678Z.heap.pb.gz\n");
	outdir_stats(od, &st);
	assert_int_equal(st.written, 12);
	assert_int_equal(st.deleted, 9);
	outdir_close(od);
}

static void test_byte_bound(void **state)
{
	const char *dir = *state;
	char big[1500];
	struct content c = { .text = big, .len = 300 };
	struct outdir_stats st;
	struct outdir *od;

	memset(big, 'b', sizeof(big));
	assert_int_equal(outdir_open(&od, dir, 0, 1000), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(outdir_write(od, "b", 1, T0 + i * SEC, "heap", write_content, &c), 0);
	outdir_stats(od, &st);
	assert_int_equal(st.files, 3);
	assert_int_equal(st.bytes, 900);
	assert_string_equal(listing(dir),
		"b-1-20240102T030412.678Z.heap.pb.gz\n"
		"b-1-20240102T030413.678Z.heap.pb.gz\n"
		"b-1-20240102T030414.678Z.heap.pb.gz\n");

	/* 1000 bytes fit only alone. */
	c.len = 1000;
	assert_int_equal(outdir_write(od, "b", 1, T0 + 10 * SEC, "heap", write_content, &c), 0);
	assert_string_equal(listing(dir), "b-1-20240102T030415.678Z.heap.pb.gz\n");
	/* More than the bound alone: refused, nothing deleted for it. */
	c.len = 1001;
	assert_int_equal(outdir_write(od, "b", 1, T0 + 11 * SEC, "heap", write_content, &c), -EFBIG);
	assert_string_equal(listing(dir), "b-1-20240102T030415.678Z.heap.pb.gz\n");
	outdir_stats(od, &st);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.bytes, 1000);
	assert_int_equal(st.written, 11);
	assert_int_equal(st.deleted, 10);
	assert_int_equal(st.errors, 1);
	outdir_close(od);

	/* Both bounds: the count, then the bytes. */
	assert_int_equal(outdir_open(&od, dir, 2, 1500), 0);
	c.len = 100;
	assert_int_equal(outdir_write(od, "b", 2, T0 + 12 * SEC, "heap", write_content, &c), 0);
	outdir_stats(od, &st);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.bytes, 1100);
	assert_int_equal(write_text(od, "b", 3, T0 + 13 * SEC, "x"), 0);
	outdir_stats(od, &st);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.bytes, 101);
	c.len = 1450;
	assert_int_equal(outdir_write(od, "b", 4, T0 + 14 * SEC, "heap", write_content, &c), 0);
	c.len = 100;
	assert_int_equal(outdir_write(od, "b", 5, T0 + 15 * SEC, "heap", write_content, &c), 0);
	outdir_stats(od, &st);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.bytes, 100);
	assert_string_equal(listing(dir), "b-5-20240102T030420.678Z.heap.pb.gz\n");
	outdir_close(od);
}

static void test_existing(void **state)
{
	const char *dir = *state;
	struct outdir_stats st;
	struct outdir *od;
	char path[512], target[512];

	make_file(dir, "old-1-20200101T000000.000Z.heap.pb.gz", 10);
	make_file(dir, "b-2-20210101T000000.000Z.pages.pb.gz", 20);
	make_file(dir, "a-3-20210101T000000.000Z.pages.pb.gz", 30);
	make_file(dir, "new-4-20230101T000000.000Z.heap.pb.gz", 40);
	make_file(dir, "z.y-x-9-20220101T000000.000Z.heap.pb.gz", 50);
	/* Not memwatch's. */
	make_file(dir, "notes.txt", 1000);
	make_file(dir, "x.pb.gz", 1000);
	make_file(dir, "a-1-20200101T000000.000Z.HEAP.pb.gz", 1000);
	make_file(dir, ".a-1-20200101T000000.000Z.heap.pb.gz", 1000);
	make_file(dir, "a-1-2020-01-01T000000.000Z.heap.pb.gz", 1000);
	make_file(dir, "a-x-20200101T000000.000Z.heap.pb.gz", 1000);
	make_file(dir, "-1-20200101T000000.000Z.heap.pb.gz", 1000);
	make_file(dir, "a-1-20200101T000000.000Z.heap.pb.gz.1", 1000);
	make_file(dir, "a-1-20200101T000000.000Z.heap.pb", 1000);
	make_file(dir, "a-1-20200101T000000.000Z.abcdefghijklmnopq.pb.gz", 1000);
	make_file(dir, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-1-20200101T000000.000Z.heap.pb.gz", 1000);
	make_file(dir, "a-1-20200101T000000.000Z.heap.pb.gz.tmp", 1000);
	snprintf(path, sizeof(path), "%s/d-1-20000101T000000.000Z.heap.pb.gz", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/l-1-20000101T000000.000Z.heap.pb.gz", dir);
	snprintf(target, sizeof(target), "%s/notes.txt", dir);
	assert_int_equal(symlink(target, path), 0);
	/* An unfinished write of memwatch's: deleted. */
	make_file(dir, ".s-1-20200101T000000.000Z.heap.pb.gz.tmp", 1000);

	/* Ties in time go by name: a-3 before b-2. */
	assert_int_equal(outdir_open(&od, dir, 2, 0), 0);
	outdir_stats(od, &st);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.bytes, 90);
	assert_int_equal(st.deleted, 3);
	assert_int_equal(st.written, 0);
	assert_string_equal(listing(dir),
		"-1-20200101T000000.000Z.heap.pb.gz\n"
		".a-1-20200101T000000.000Z.heap.pb.gz\n"
		"a-1-2020-01-01T000000.000Z.heap.pb.gz\n"
		"a-1-20200101T000000.000Z.HEAP.pb.gz\n"
		"a-1-20200101T000000.000Z.abcdefghijklmnopq.pb.gz\n"
		"a-1-20200101T000000.000Z.heap.pb\n"
		"a-1-20200101T000000.000Z.heap.pb.gz.1\n"
		"a-1-20200101T000000.000Z.heap.pb.gz.tmp\n"
		"a-x-20200101T000000.000Z.heap.pb.gz\n"
		"d-1-20000101T000000.000Z.heap.pb.gz\n"
		"l-1-20000101T000000.000Z.heap.pb.gz\n"
		"new-4-20230101T000000.000Z.heap.pb.gz\n"
		"notes.txt\n"
		"x.pb.gz\n"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-1-20200101T000000.000Z.heap.pb.gz\n"
		"z.y-x-9-20220101T000000.000Z.heap.pb.gz\n");
	outdir_close(od);

	/* Written at new-4's time: z.y goes first, then a-9, first by name. */
	assert_int_equal(outdir_open(&od, dir, 2, 0), 0);
	assert_int_equal(write_text(od, "a", 9, 1672531200ll * SEC, "x"), 0);
	assert_null(strstr(listing(dir), "z.y-x-9"));
	assert_non_null(strstr(listing(dir), "a-9-20230101T000000.000Z.heap.pb.gz\n"));
	assert_int_equal(write_text(od, "zz", 9, 1672531200ll * SEC, "x"), 0);
	assert_null(strstr(listing(dir), "a-9-"));
	assert_non_null(strstr(listing(dir), "\nnew-4-20230101T000000.000Z.heap.pb.gz\n"
					     "notes.txt\nx.pb.gz\n"
					     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-1-20200101T000000.000Z.heap.pb.gz\n"
					     "zz-9-20230101T000000.000Z.heap.pb.gz\n"));
	outdir_close(od);
}

static void test_open_errors(void **state)
{
	const char *dir = *state;
	struct outdir *od = NULL;
	struct stat st;
	char path[512];

	assert_int_equal(outdir_open(&od, dir, 0, 0), -EINVAL);
	snprintf(path, sizeof(path), "%s/no/such", dir);
	assert_int_equal(outdir_open(&od, path, 1, 0), -ENOENT);
	snprintf(path, sizeof(path), "%s/file", dir);
	make_file(dir, "file", 0);
	assert_int_equal(outdir_open(&od, path, 1, 0), -ENOTDIR);
	assert_null(od);

	/* Created if absent, 0750 (less the umask). */
	mode_t mask = umask(022);
	snprintf(path, sizeof(path), "%s/new", dir);
	assert_int_equal(outdir_open(&od, path, 1, 0), 0);
	umask(mask);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	outdir_close(od);
	outdir_close(NULL);
}

/* The directory is held open: renamed, and replaced by a symlink, it still
 * gets the files. */
static void test_dir_moved(void **state)
{
	const char *dir = *state;
	struct outdir *od;
	char moved[256], decoy[512], path[512];

	snprintf(moved, sizeof(moved), "%s.moved", dir);
	snprintf(decoy, sizeof(decoy), "%s/decoy", moved);
	assert_int_equal(outdir_open(&od, dir, 5, 0), 0);
	assert_int_equal(rename(dir, moved), 0);
	assert_int_equal(mkdir(decoy, 0755), 0);
	assert_int_equal(symlink(decoy, dir), 0);
	assert_int_equal(write_text(od, "m", 1, T0, "moved"), 0);
	snprintf(path, sizeof(path), "%s/m-1-20240102T030405.678Z.heap.pb.gz", moved);
	assert_int_equal(access(path, F_OK), 0);
	assert_string_equal(listing(decoy), "");
	outdir_close(od);
	assert_int_equal(unlink(dir), 0);
	assert_int_equal(rename(moved, dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_count_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_byte_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_existing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_moved, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
