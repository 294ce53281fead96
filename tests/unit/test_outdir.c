/* --output-dir: file names, atomic writes, retention by count and bytes,
 * files of earlier runs proven by the index, files that are not memwatch's
 * (whatever their names), a planted index. */
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
#include "host/outindex.h"

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
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, OUTINDEX_NAME))
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

static void stat_name(const char *dir, const char *name, struct stat *st)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(lstat(path, st), 0);
}

/* Files of an earlier run are memwatch's by the index; files that only
 * look like memwatch's, whatever their time stamps, are never touched. */
static void test_existing(void **state)
{
	const char *dir = *state;
	struct outdir_stats st;
	struct outdir *od;
	char path[512], target[512];
	static const char *const foreign[] = {
		"important-123-20200101T000000.000Z.heap.pb.gz",	/* a user's, in the format */
		"zzz-1-29991231T000000.000Z.heap.pb.gz",		/* future-dated: newest of all */
		"aaa-1-19700101T000000.000Z.heap.pb.gz",		/* oldest of all */
		".s-1-20200101T000000.000Z.heap.pb.gz.tmp",		/* like an old temporary */
		"notes.txt",
	};

	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
		make_file(dir, foreign[i], 1000);
	snprintf(path, sizeof(path), "%s/d-1-20000101T000000.000Z.heap.pb.gz", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/l-1-20000101T000000.000Z.heap.pb.gz", dir);
	snprintf(target, sizeof(target), "%s/notes.txt", dir);
	assert_int_equal(symlink(target, path), 0);
	char *before = strdup(listing(dir));

	assert_int_equal(outdir_open(&od, dir, 2, 0), 0);
	outdir_stats(od, &st);
	assert_int_equal(st.files, 0);
	assert_int_equal(st.foreign, 7);
	assert_false(st.index_foreign);
	for (int i = 0; i < 4; i++)
		assert_int_equal(write_text(od, "w", 10 + i, T0 + i * SEC, "abc"), 0);
	outdir_stats(od, &st);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.deleted, 2);
	outdir_close(od);

	/* A later run takes over this one's files and deletes them by age. */
	assert_int_equal(outdir_open(&od, dir, 1, 0), 0);
	outdir_stats(od, &st);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.deleted, 1);
	assert_int_equal(st.foreign, 7);
	outdir_close(od);
	assert_non_null(strstr(listing(dir), "w-13-20240102T030408.678Z.heap.pb.gz\n"));
	assert_null(strstr(listing(dir), "w-12-"));

	/* Only the foreign files and w-13 remain. */
	snprintf(path, sizeof(path), "%s/w-13-20240102T030408.678Z.heap.pb.gz", dir);
	assert_int_equal(unlink(path), 0);
	assert_string_equal(listing(dir), before);
	free(before);
}

/* A name in the index whose file was replaced (same name, same size) is not
 * memwatch's any more: never deleted. */
static void test_replaced_file(void **state)
{
	const char *dir = *state;
	struct outdir_stats st;
	struct outdir *od;
	struct stat a, b;
	char path[512], moved[512];
	const char *name = "r-1-20240102T030405.678Z.heap.pb.gz";

	assert_int_equal(outdir_open(&od, dir, 10, 0), 0);
	assert_int_equal(write_text(od, "r", 1, T0, "abc"), 0);
	outdir_close(od);
	stat_name(dir, name, &a);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(moved, sizeof(moved), "%s/moved", dir);
	assert_int_equal(rename(path, moved), 0);
	make_file(dir, name, 3);
	stat_name(dir, name, &b);
	assert_int_not_equal(a.st_ino, b.st_ino);

	assert_int_equal(outdir_open(&od, dir, 1, 0), 0);
	outdir_stats(od, &st);
	assert_int_equal(st.files, 0);
	assert_int_equal(write_text(od, "r", 2, T0 + SEC, "abc"), 0);
	assert_int_equal(write_text(od, "r", 3, T0 + 2 * SEC, "abc"), 0);
	outdir_stats(od, &st);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.deleted, 1);
	outdir_close(od);
	assert_string_equal(listing(dir), "moved\n"
					  "r-1-20240102T030405.678Z.heap.pb.gz\n"
					  "r-3-20240102T030407.678Z.heap.pb.gz\n");
}

static void write_index(const char *dir, const char *text, mode_t mode, uid_t uid)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/" OUTINDEX_NAME, dir);
	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	assert_int_equal(chown(path, uid, uid), 0);
}

/* An index someone else could have written proves nothing. */
static void test_planted_index(void **state)
{
	const char *dir = *state;
	const char *victim = "v-1-20200101T000000.000Z.heap.pb.gz";
	struct outdir_stats st;
	struct outdir *od;
	struct stat v;
	char text[256];

	make_file(dir, victim, 7);
	stat_name(dir, victim, &v);
	snprintf(text, sizeof(text), "+ %llu 7 %s\n", (unsigned long long)v.st_ino, victim);
	/* Not this user's; writable by others. */
	write_index(dir, text, 0600, 65534);
	assert_int_equal(outdir_open(&od, dir, 1, 0), 0);
	outdir_stats(od, &st);
	assert_true(st.index_foreign);
	assert_int_equal(st.files, 0);
	/* Retention still works for this run's files, kept in memory. */
	assert_int_equal(write_text(od, "n", 1, T0, "x"), 0);
	assert_int_equal(write_text(od, "n", 2, T0 + SEC, "x"), 0);
	outdir_close(od);
	assert_string_equal(listing(dir), "n-2-20240102T030406.678Z.heap.pb.gz\n"
					  "v-1-20200101T000000.000Z.heap.pb.gz\n");
	write_index(dir, text, 0666, getuid());
	assert_int_equal(outdir_open(&od, dir, 1, 0), 0);
	outdir_stats(od, &st);
	assert_true(st.index_foreign);
	outdir_close(od);
	assert_non_null(strstr(listing(dir), victim));

	/* This user's, well-formed but for a torn last line: the victim
	 * (regular, this user's, inode and size as recorded) is taken over. */
	snprintf(text, sizeof(text), "+ %llu 7 %s\n+ 12", (unsigned long long)v.st_ino, victim);
	write_index(dir, text, 0600, getuid());
	assert_int_equal(outdir_open(&od, dir, 100, 0), 0);
	outdir_stats(od, &st);
	assert_false(st.index_foreign);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.bytes, 7);
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
		cmocka_unit_test_setup_teardown(test_replaced_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_planted_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_moved, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
