/* elf_file against readelf on the installed libc, ls and libc's debug file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elf/elf_file.h"

#define LIBC "/lib/x86_64-linux-gnu/libc.so.6"
#define LS "/bin/ls"

static struct elf_file *open_elf(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct elf_file *f = elf_file_open(fd);
	close(fd);	/* elf_file keeps its own dup */
	return f;
}

static int open_libc(void **state)
{
	*state = open_elf(LIBC);
	return *state ? 0 : -1;
}

static int close_elf(void **state)
{
	elf_file_close(*state);
	return 0;
}

/* ---- readelf as the reference ---- */

static void readelf_build_id(const char *path, char *out, size_t size)
{
	char cmd[512], line[512];
	snprintf(cmd, sizeof(cmd), "readelf -n '%s'", path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	out[0] = '\0';
	while (fgets(line, sizeof(line), p)) {
		char *id = strstr(line, "Build ID: ");
		if (id && sscanf(id + 10, "%127s", out) == 1)
			break;
	}
	pclose(p);
	assert_true(out[0] && size > strlen(out));
}

struct readelf_sym {
	unsigned long long vaddr, size;
};

/* The first defined FUNC called name (any version) in readelf -Ws --dyn-syms. */
static bool readelf_func(const char *path, const char *name, struct readelf_sym *out)
{
	char cmd[512], line[1024];
	snprintf(cmd, sizeof(cmd), "readelf -Ws --dyn-syms '%s'", path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	bool found = false;
	while (!found && fgets(line, sizeof(line), p)) {
		char type[32], bind[32], vis[32], ndx[32], sym[512];
		unsigned long long value, size;
		if (sscanf(line, " %*[0-9]: %llx %llu %31s %31s %31s %31s %511s", &value, &size, type, bind,
			   vis, ndx, sym) != 7)
			continue;
		char *at = strchr(sym, '@');
		if (at)
			*at = '\0';
		if (!strcmp(sym, name) && !strcmp(type, "FUNC") && strcmp(ndx, "UND")) {
			*out = (struct readelf_sym){ value, size };
			found = true;
		}
	}
	pclose(p);
	return found;
}

/* ---- tests ---- */

static void header_and_segments(void **state)
{
	struct elf_file *f = *state;
	assert_int_equal(elf_file_machine(f), EM_X86_64);
	assert_int_equal(elf_file_type(f), ET_DYN);
	const struct elf_segment *segs;
	size_t n = elf_file_segments(f, &segs);
	assert_true(n >= 2);
	bool executable = false;
	for (size_t i = 0; i < n; i++)
		executable |= (segs[i].flags & PF_X) != 0;
	assert_true(executable);
}

static void build_id_matches_readelf(void **state)
{
	char expected[128];
	readelf_build_id(LIBC, expected, sizeof(expected));
	assert_non_null(elf_file_build_id(*state));
	assert_string_equal(elf_file_build_id(*state), expected);
}

static void funcs_match_readelf(void **state)
{
	static const char *const names[] = { "malloc", "free", "calloc", "realloc", "posix_memalign" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct readelf_sym ref;
		struct elf_sym sym;
		assert_true(readelf_func(LIBC, names[i], &ref));
		assert_true(elf_file_find_func(*state, names[i], &sym));
		assert_string_equal(sym.name, names[i]);
		assert_int_equal(sym.vaddr, ref.vaddr);
		assert_int_equal(sym.size, ref.size);
		assert_int_equal(sym.type, STT_FUNC);
		assert_true(sym.dynamic);
	}
	struct elf_sym sym;
	assert_false(elf_file_find_func(*state, "no_such_function_here", &sym));
	assert_false(elf_file_find_func(*state, "environ", &sym));	/* an object */
}

static void names_at_memalign(void **state)
{
	struct elf_sym sym;
	const char *names[16];
	assert_true(elf_file_find_func(*state, "memalign", &sym));
	size_t n = elf_file_names_at(*state, sym.vaddr, names, 16);
	bool aligned_alloc = false, memalign = false;
	for (size_t i = 0; i < n && i < 16; i++) {
		aligned_alloc |= !strcmp(names[i], "aligned_alloc");
		memalign |= !strcmp(names[i], "memalign");
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(names[i], names[j]);
	}
	assert_true(aligned_alloc && memalign);
	assert_int_equal(elf_file_names_at(*state, sym.vaddr, names, 1), n);
	assert_int_equal(elf_file_names_at(*state, sym.vaddr + 1, names, 16), 0);
}

static void default_version_wins(void **state)
{
	/* pthread_kill@GLIBC_2.2.5 (hidden) and pthread_kill@@GLIBC_2.34. */
	struct readelf_sym ref = { 0 };
	struct elf_sym sym;
	FILE *p = popen("readelf -Ws --dyn-syms " LIBC " | grep ' pthread_kill@@'", "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, " %*[0-9]: %llx %llu", &ref.vaddr, &ref.size), 2);
	pclose(p);
	assert_true(elf_file_find_func(*state, "pthread_kill", &sym));
	assert_int_equal(sym.vaddr, ref.vaddr);
}

static void vaddr_offset_round_trip(void **state)
{
	struct elf_file *f = *state;
	struct elf_sym sym;
	uint64_t offset, vaddr;
	assert_true(elf_file_find_func(f, "malloc", &sym));
	assert_int_equal(elf_file_vaddr_to_offset(f, sym.vaddr, &offset), 0);
	assert_int_equal(elf_file_offset_to_vaddr(f, offset, &vaddr), 0);
	assert_int_equal(vaddr, sym.vaddr);

	uint8_t via_vaddr[16], via_offset[16];
	int fd = open(LIBC, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, via_offset, sizeof(via_offset), (off_t)offset), sizeof(via_offset));
	close(fd);
	assert_int_equal(elf_file_read(f, sym.vaddr, via_vaddr, sizeof(via_vaddr)), sizeof(via_vaddr));
	assert_memory_equal(via_vaddr, via_offset, sizeof(via_vaddr));

	assert_int_equal(elf_file_vaddr_to_offset(f, 0x7fffffff0000ull, &offset), -ENOENT);
	assert_int_equal(elf_file_read(f, 0x7fffffff0000ull, via_vaddr, 1), -ENOENT);
}

static void read_stops_at_segment_end(void **state)
{
	const struct elf_segment *segs;
	size_t n = elf_file_segments(*state, &segs);
	const struct elf_segment *s = &segs[n - 1];
	uint8_t buf[64];
	assert_true(s->filesz >= 8);
	assert_int_equal(elf_file_read(*state, s->vaddr + s->filesz - 8, buf, sizeof(buf)), 8);
}

struct func_census {
	size_t count;
	bool saw_malloc;
	const char *stop_at;
};

static int count_func(const struct elf_sym *sym, void *arg)
{
	struct func_census *c = arg;
	c->count++;
	c->saw_malloc |= !strcmp(sym->name, "malloc");
	return c->stop_at && !strcmp(sym->name, c->stop_at) ? 42 : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int collect_name(const struct elf_sym *sym, void *arg)
{
	const char ***cursor = arg;
	*(*cursor)++ = sym->name;
	return 0;
}

static void for_each_func_once(void **state)
{
	struct func_census c = { 0 };
	assert_int_equal(elf_file_for_each_func(*state, count_func, &c), 0);
	assert_true(c.count > 1000 && c.saw_malloc);

	const char **names = calloc(c.count, sizeof(*names)), **cursor = names;
	assert_non_null(names);
	assert_int_equal(elf_file_for_each_func(*state, collect_name, &cursor), 0);
	qsort(names, c.count, sizeof(*names), cmp_str);
	for (size_t i = 1; i < c.count; i++)
		assert_string_not_equal(names[i - 1], names[i]);
	free(names);

	struct func_census stop = { .stop_at = "malloc" };
	assert_int_equal(elf_file_for_each_func(*state, count_func, &stop), 42);
	assert_true(stop.count < c.count);
}

static void plt_stubs(void **state)
{
	struct elf_sym sym;
	assert_true(elf_file_find_func(*state, "malloc", &sym));
	assert_null(elf_file_plt_target(*state, sym.vaddr));
	/* Every .plt stub of libc names a JUMP_SLOT symbol; check one through objdump. */
	FILE *p = popen("objdump -d -j .plt " LIBC " | grep -m1 '<realloc@plt>:'", "r");
	unsigned long long stub;
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%llx", &stub), 1);
	pclose(p);
	assert_string_equal(elf_file_plt_target(*state, stub), "realloc");
}

static void interp_of_ls(void **state)
{
	struct elf_file *f = open_elf(LS);
	assert_non_null(f);
	assert_string_equal(elf_file_interp(f), "/lib64/ld-linux-x86-64.so.2");
	assert_non_null(elf_file_build_id(f));
	elf_file_close(f);
}

static void not_elf(void **state)
{
	char path[] = "/tmp/mw-test-elf-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_null(elf_file_open(fd));		/* empty */
	assert_int_equal(write(fd, "#!/bin/sh\necho not an ELF file\n", 31), 31);
	assert_null(elf_file_open(fd));
	close(fd);
	assert_null(elf_file_open(-1));
}

/* libc6-dbg: .symtab only, with versioned names ("pthread_kill@GLIBC_2.2.5"). */
static void debug_file_symtab(void **state)
{
	char build_id[128], path[256];
	readelf_build_id(LIBC, build_id, sizeof(build_id));
	snprintf(path, sizeof(path), "/usr/lib/debug/.build-id/%.2s/%s.debug", build_id, build_id + 2);
	struct elf_file *f = open_elf(path);
	if (!f) {
		fail_msg("%s: libc6-dbg not installed (tools/deps.sh installs it)", path);
	}
	struct elf_sym sym, dflt;
	assert_string_equal(elf_file_build_id(f), build_id);
	assert_null(elf_file_interp(f));	/* PT_INTERP without file contents */
	assert_true(elf_file_find_func(f, "_int_malloc", &sym));
	assert_int_equal(sym.bind, STB_LOCAL);
	assert_false(sym.dynamic);
	assert_true(elf_file_find_func(f, "pthread_kill", &sym));
	assert_true(elf_file_find_func(*state, "pthread_kill", &dflt));
	assert_int_equal(sym.vaddr, dflt.vaddr);
	assert_string_equal(sym.name, "pthread_kill");
	elf_file_close(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(header_and_segments, open_libc, close_elf),
		cmocka_unit_test_setup_teardown(build_id_matches_readelf, open_libc, close_elf),
		cmocka_unit_test_setup_teardown(funcs_match_readelf, open_libc, close_elf),
		cmocka_unit_test_setup_teardown(names_at_memalign, open_libc, close_elf),
		cmocka_unit_test_setup_teardown(default_version_wins, open_libc, close_elf),
		cmocka_unit_test_setup_teardown(vaddr_offset_round_trip, open_libc, close_elf),
		cmocka_unit_test_setup_teardown(read_stops_at_segment_end, open_libc, close_elf),
		cmocka_unit_test_setup_teardown(for_each_func_once, open_libc, close_elf),
		cmocka_unit_test_setup_teardown(plt_stubs, open_libc, close_elf),
		cmocka_unit_test_setup_teardown(debug_file_symtab, open_libc, close_elf),
		cmocka_unit_test(interp_of_ls),
		cmocka_unit_test(not_elf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
