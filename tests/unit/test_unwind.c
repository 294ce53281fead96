/* Unit tests for user/stacks/unwind.c: this process's own stack, captured
 * the way memwatch's BPF program captures one at a probe (unwind_fixture.h),
 * unwound and symbolized. Built with -O2 -fomit-frame-pointer, like Debian's
 * binaries: only CFI can unwind it. The dlopen tests build
 * tests/unit/fixtures/unwind_lib.c with gcc at run time; the libc frames
 * need libc6-dbg (for start_thread and __libc_start_call_main, absent from
 * libc's .dynsym). The fast path against libdwfl: test_unwind_fast.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unwind_fixture.h"

/* ---- tests ---- */

static void test_main_thread_chain(void **state)
{
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();
	level1(s);
	struct unwind_result *r = result_new();
	const char *names[UNWIND_MAX_FRAMES];

	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	assert_true(r->n > 0);
	assert_true(r->pcs[0] == s->regs[16]);
	name_frames(&f, r, names);
	print_chain(r, names);
	static const char *const want[] = { "capture", "level3", "level2", "level1", "test_main_thread_chain" };
	assert_chain_starts(names, r->n, want, 5);
	assert_reaches_main(names, r->n);
	assert_null(r->truncated);

	struct unwind_stats st;
	unwinder_stats(f.u, &st);
	assert_int_equal(st.stacks, 1);
	assert_int_equal(st.complete, 1);
	assert_int_equal(st.frames, r->n);
	assert_int_equal(st.dwfl_builds, 1);
	free(r);
	snapshot_free(s);
	fixture_close(&f);
}


static void test_second_thread_chain(void **state)
{
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();
	pthread_t thread;
	assert_int_equal(pthread_create(&thread, NULL, thread_main, s), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
	struct unwind_result *r = result_new();
	const char *names[UNWIND_MAX_FRAMES];

	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	name_frames(&f, r, names);
	print_chain(r, names);
	static const char *const want[] = { "capture", "level3", "level2", "level1", "thread_main",
					    "start_thread" };
	assert_chain_starts(names, r->n, want, 6);
	assert_true(r->n == 6 || (r->n == 7 && (!strcmp(names[6], "clone3") || !strcmp(names[6], "clone"))));
	assert_null(r->truncated);
	free(r);
	snapshot_free(s);
	fixture_close(&f);
}

static void test_small_snapshot(void **state)
{
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();
	level1(s);
	struct unwind_result *full = result_new(), *cut = result_new(), *again = result_new();

	assert_int_equal(unwind_snapshot(&f, s, s->len, full), 0);
	assert_null(full->truncated);
	assert_int_equal(unwind_snapshot(&f, s, 64, cut), 0);
	assert_non_null(cut->truncated);
	assert_string_equal(cut->truncated, TRUNC_SNAPSHOT);
	assert_true(cut->n >= 1 && cut->n < full->n);
	print_message("  64 bytes: %u of %u frames\n", cut->n, full->n);
	for (uint32_t i = 0; i < cut->n; i++)
		assert_true(cut->pcs[i] == full->pcs[i]);

	/* The same reason is the same pointer. */
	assert_int_equal(unwind_snapshot(&f, s, 64, again), 0);
	assert_ptr_equal(again->truncated, cut->truncated);
	/* Nothing at all copied: only the probed pc is known. */
	assert_int_equal(unwind_snapshot(&f, s, 0, again), 0);
	assert_ptr_equal(again->truncated, cut->truncated);
	assert_true(again->pcs[0] == s->regs[16]);

	struct unwind_stats st;
	unwinder_stats(f.u, &st);
	assert_int_equal(st.truncated_snapshot, 3);
	assert_int_equal(st.complete, 1);
	free(full);
	free(cut);
	free(again);
	snapshot_free(s);
	fixture_close(&f);
}

static void test_pc_in_no_mapping(void **state)
{
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();
	level1(s);
	struct unwind_result *r = result_new();
	uint64_t regs[MW_NREGS];
	memcpy(regs, s->regs, sizeof(regs));
	regs[16] = 0x10;	/* below mmap_min_addr: never mapped */

	int rc = unwind_stack(f.u, &f.ps, f.p, regs, s->stack, s->len, r);
	assert_true(rc < 0 || r->truncated);
	assert_true(r->n >= 1);
	assert_true(r->pcs[0] == 0x10);
	print_message("  pc 0x10: rc %d, %u frames, %s\n", rc, r->n, r->truncated ? r->truncated : "complete");

	struct unwind_stats st;
	unwinder_stats(f.u, &st);
	assert_true(st.refreshes >= 1);

	/* Garbage registers and stack: no crash either. */
	memset(regs, 0x41, sizeof(regs));
	memset(s->stack, 0x41, s->cap);
	rc = unwind_stack(f.u, &f.ps, f.p, regs, s->stack, s->cap, r);
	assert_true(rc < 0 || r->truncated);
	assert_true(r->n >= 1);
	free(r);
	snapshot_free(s);
	fixture_close(&f);
}

static void test_too_deep(void **state)
{
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();
	recurse(s, 300);
	struct unwind_result *r = result_new();
	const char *names[UNWIND_MAX_FRAMES];

	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	assert_int_equal(r->n, UNWIND_MAX_FRAMES);
	assert_non_null(r->truncated);
	assert_string_equal(r->truncated, "[truncated: more than 256 frames]");
	name_frames(&f, r, names);
	assert_string_equal(names[0], "capture");
	for (uint32_t i = 1; i < r->n; i++)
		assert_string_equal(names[i], "recurse");
	struct unwind_stats st;
	unwinder_stats(f.u, &st);
	assert_int_equal(st.truncated_other, 1);
	free(r);
	snapshot_free(s);
	fixture_close(&f);
}

/* Repeated unwinds of one stack reuse the process's Dwfl and agree. */
static void test_reuse(void **state)
{
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();
	level1(s);
	struct unwind_result *first = result_new(), *r = result_new();
	enum { ROUNDS = 10000 };

	assert_int_equal(unwind_snapshot(&f, s, s->len, first), 0);
	for (int i = 0; i < ROUNDS; i++) {
		assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
		if (r->n != first->n || memcmp(r->pcs, first->pcs, r->n * sizeof(r->pcs[0])) || r->truncated)
			fail_msg("unwind %d differs from the first", i);
	}

	struct unwind_stats st;
	unwinder_stats(f.u, &st);
	assert_int_equal(st.dwfl_builds, 1);
	assert_int_equal(st.refreshes, 0);
	assert_int_equal(st.stacks, ROUNDS + 1);
	assert_int_equal(st.complete, ROUNDS + 1);

	/* A new generation without new code (an anonymous mapping) keeps the Dwfl. */
	void *anon = mmap(NULL, 3 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(anon != MAP_FAILED);
	unsigned generation = f.p->generation;
	assert_int_equal(process_refresh(&f.ps, f.p), 0);
	assert_true(f.p->generation != generation);
	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	assert_null(r->truncated);
	unwinder_stats(f.u, &st);
	assert_int_equal(st.dwfl_builds, 1);
	munmap(anon, 3 * 4096);

	/* Forgetting the process drops its Dwfl. */
	unwinder_forget(f.u, f.p->pid);
	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	unwinder_stats(f.u, &st);
	assert_int_equal(st.dwfl_builds, 2);
	free(first);
	free(r);
	snapshot_free(s);
	fixture_close(&f);
}


/* First unwinds a stack of this binary (one Dwfl build), then one captured
 * in the new library: its pc is in no module, so the maps are re-read, the
 * Dwfl rebuilt, and the unwind retried. */
static void unwind_in_new_library(const char *name, const char *root)
{
	struct fixture f;
	fixture_open(&f);
	if (root)
		set_root(&f, root);
	struct unwind_snapshot *s = snapshot_new();
	level1(s);
	struct unwind_result *r = result_new();
	const char *names[UNWIND_MAX_FRAMES];
	struct unwind_stats st;

	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	assert_null(r->truncated);
	unwinder_stats(f.u, &st);
	assert_int_equal(st.dwfl_builds, 1);

	void *handle = capture_in_library(name, s);
	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	name_frames(&f, r, names);
	print_chain(r, names);
	unwinder_stats(f.u, &st);
	assert_int_equal(st.refreshes, 1);
	assert_int_equal(st.dwfl_builds, 2);
	static const char *const want[] = { "lib_capture", "lib_inner", "unwind_lib_outer", "call_library",
					    "capture_in_library", "unwind_in_new_library" };
	assert_chain_starts(names, r->n, want, 6);
	assert_reaches_main(names, r->n);
	assert_null(r->truncated);

	free(r);
	snapshot_free(s);
	fixture_close(&f);
	dlclose(handle);
}

static void test_dlopen_rebuilds(void **state)
{
	if (!fx.plain)
		fail_msg("could not build the fixture library with gcc");
	unwind_in_new_library("libunwind_plain.so", NULL);
}

/* No .eh_frame for the library's code: .debug_frame from its debug file,
 * found by build-id under the target's root. */
static void test_debug_frame_from_debug_file(void **state)
{
	char root[PATH_MAX];
	if (!fx.debug_frame)
		fail_msg("could not build the fixture library with gcc, objcopy and strip");
	unwind_in_new_library("libunwind_dbgframe.so", fx_path(root, "root"));
}

/* The same library without its debug file: no CFI and no frame pointers. */
static void test_no_unwind_info(void **state)
{
	char root[PATH_MAX], lib[PATH_MAX];
	if (!fx.debug_frame)
		fail_msg("could not build the fixture library with gcc, objcopy and strip");
	struct fixture f;
	fixture_open(&f);
	set_root(&f, fx_path(root, "none"));
	struct unwind_snapshot *s = snapshot_new();
	void *handle = capture_in_library("libunwind_dbgframe.so", s);
	s->regs[6] = 0;	/* rbp: no frame pointer for libdw's fallback to follow */
	struct unwind_result *r = result_new();
	const char *names[UNWIND_MAX_FRAMES];

	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	name_frames(&f, r, names);
	print_chain(r, names);
	assert_string_equal(names[0], "lib_capture");
	char want[PATH_MAX + 64];
	snprintf(want, sizeof(want), "[truncated: no unwind info for %s]", fx_path(lib, "libunwind_dbgframe.so"));
	assert_non_null(r->truncated);
	assert_string_equal(r->truncated, want);

	free(r);
	snapshot_free(s);
	fixture_close(&f);
	dlclose(handle);
}

/* No CFI at all, but frame pointers: libdw's x86_64 fallback. */
static void test_frame_pointer_fallback(void **state)
{
	if (!fx.frame_pointers)
		fail_msg("could not build the fixture library with gcc");
	unwind_in_new_library("libunwind_fp.so", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_main_thread_chain),
		cmocka_unit_test(test_second_thread_chain),
		cmocka_unit_test(test_small_snapshot),
		cmocka_unit_test(test_pc_in_no_mapping),
		cmocka_unit_test(test_too_deep),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_dlopen_rebuilds),
		cmocka_unit_test(test_debug_frame_from_debug_file),
		cmocka_unit_test(test_no_unwind_info),
		cmocka_unit_test(test_frame_pointer_fallback),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
