/* /proc/PID/maps parsing and lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "proc/procmaps.h"

static const char sample[] =
	"55d0c6a00000-55d0c6a02000 r--p 00000000 fe:00 1234                       /usr/bin/my prog\n"
	"55d0c6a02000-55d0c6a05000 r-xp 00002000 fe:00 1234                       /usr/bin/my prog\n"
	"55d0c7000000-55d0c7021000 rw-p 00000000 00:00 0                          [heap]\n"
	"7f0000000000-7f0000021000 rw-p 00000000 00:00 0 \n"
	"7f1000026000-7f100017c000 r-xp 00026000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	"7f2000000000-7f2000001000 r-xs 00003000 00:05 77 /memfd:jit (deleted)\n"
	"garbage line\n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]";

static void test_parse_fields(void **state)
{
	struct maps m;

	assert_int_equal(maps_parse(sample, &m), 0);
	assert_int_equal(m.n, 7);
	assert_string_equal(m.v[0].path, "/usr/bin/my prog");
	assert_true(m.v[1].executable && m.v[1].readable && !m.v[1].writable);
	assert_int_equal(m.v[1].offset, 0x2000);
	assert_int_equal(m.v[1].inode, 1234);
	assert_int_equal(m.v[1].dev_major, 0xfe);
	assert_string_equal(m.v[2].path, "[heap]");
	assert_string_equal(m.v[3].path, "");
	assert_false(mapping_is_file(&m.v[3]));
	assert_true(mapping_is_file(&m.v[4]));
	assert_int_equal(m.v[4].dev_minor, 1);
	assert_true(m.v[5].deleted && m.v[5].shared);
	assert_string_equal(m.v[5].path, "/memfd:jit");
	maps_free(&m);
}

static void test_find(void **state)
{
	struct maps m;

	assert_int_equal(maps_parse(sample, &m), 0);
	assert_ptr_equal(maps_find(&m, 0x55d0c6a02000), &m.v[1]);
	assert_ptr_equal(maps_find(&m, 0x55d0c6a04fff), &m.v[1]);
	assert_ptr_equal(maps_find(&m, 0x7f1000100000), &m.v[4]);
	assert_null(maps_find(&m, 0x55d0c6a05000));
	assert_null(maps_find(&m, 0x1000));
	maps_free(&m);
}

static void test_read_self(void **state)
{
	struct maps m;

	assert_int_equal(maps_read(getpid(), &m), 0);
	assert_true(m.n > 5);
	const struct mapping *me = maps_find(&m, (uint64_t)(uintptr_t)&test_read_self);
	assert_non_null(me);
	assert_true(me->executable);
	assert_non_null(strstr(me->path, "test_procmaps"));
	maps_free(&m);
	assert_int_equal(maps_read(0x7ffffff0, &m), -2 /* ENOENT */);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_read_self),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
