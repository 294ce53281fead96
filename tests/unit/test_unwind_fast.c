/* Unit tests for the unwinder's fast path (the rule cache), which must give
 * libdwfl's results exactly: the *_fast_matches_slow tests unwind each stack
 * both ways (unwinder_set_fast) and compare pcs and truncation reasons, on
 * full and cut snapshots; strict mode (--stack-mode dwarf) both ways; and the
 * cache serving repeated stacks. Built like test_unwind.c (unwind_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unwind_fixture.h"

/* ---- the fast path against libdwfl ---- */

static void print_result(const char *what, const struct unwind_result *r)
{
	print_message("  %s: %u frames, %s\n", what, r->n, r->truncated ? r->truncated : "complete");
	for (uint32_t i = 0; i < r->n; i++)
		print_message("    #%-3u %#014llx\n", i, (unsigned long long)r->pcs[i]);
}

struct compare_tally {
	unsigned stacks, fast;	/* compared; of those, unwound by the fast path */
};

/* Unwinds the snapshot with the fast path, then with libdwfl only, and
 * asserts the same results. True when the fast path did the first one. */
static bool unwind_compare(struct fixture *f, const uint64_t *regs, const uint8_t *stack, size_t len,
			   struct compare_tally *t)
{
	static struct unwind_result fast, slow;
	struct unwind_stats before, after;
	unwinder_stats(f->u, &before);
	unwinder_set_fast(f->u, true);
	int rc_fast = unwind_stack(f->u, &f->ps, f->p, regs, stack, len, &fast);
	unwinder_stats(f->u, &after);
	bool was_fast = after.fast_stacks > before.fast_stacks;
	unwinder_set_fast(f->u, false);
	int rc_slow = unwind_stack(f->u, &f->ps, f->p, regs, stack, len, &slow);
	unwinder_set_fast(f->u, true);
	unwinder_stats(f->u, &before);
	assert_int_equal(before.slow_stacks, after.slow_stacks + 1);

	bool same = rc_fast == rc_slow && fast.n == slow.n && fast.truncated == slow.truncated &&
		    memcmp(fast.pcs, slow.pcs, fast.n * sizeof(fast.pcs[0])) == 0;
	if (!same) {
		print_message("  snapshot of %zu bytes: rc %d (fast path%s) vs %d\n", len, rc_fast,
			      was_fast ? "" : " gave up", rc_slow);
		print_result("fast", &fast);
		print_result("libdwfl", &slow);
		fail_msg("the fast path and libdwfl differ");
	}
	if (t) {
		t->stacks++;
		t->fast += was_fast;
	}
	return was_fast;
}

/* The snapshot as captured, then cut at every 8 bytes (and a few odd
 * lengths), in default and strict mode. Returns whether the full one took
 * the fast path (default mode). */
static bool compare_cuts(struct fixture *f, const struct unwind_snapshot *s, struct compare_tally *t)
{
	static struct unwind_result full;
	bool full_fast = false;
	for (int strict = 0; strict < 2; strict++) {
		unwinder_set_strict(f->u, strict);
		bool fast = unwind_compare(f, s->regs, s->stack, s->len, t);
		if (!strict)
			full_fast = fast;
		for (size_t len = 0; len < s->len; len += 8)
			unwind_compare(f, s->regs, s->stack, len, t);
		/* Return addresses astride the end of the snapshot. */
		unwind_stack(f->u, &f->ps, f->p, s->regs, s->stack, s->len, &full);
		for (size_t off = 0; off + 8 <= s->len; off += 8) {
			uint64_t v;
			memcpy(&v, s->stack + off, 8);
			for (uint32_t i = 1; i < full.n; i++) {
				if (v != full.pcs[i])
					continue;
				for (size_t cut = 1; cut < 8; cut += 3)
					unwind_compare(f, s->regs, s->stack, off + cut, t);
				break;
			}
		}
	}
	unwinder_set_strict(f->u, false);
	return full_fast;
}

static void print_tally(const char *what, const struct compare_tally *t)
{
	print_message("  %s: %u stacks compared, %u by the fast path\n", what, t->stacks, t->fast);
}

static void test_main_thread_fast_matches_slow(void **state)
{
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();
	struct compare_tally t = { 0 };

	level1(s);
	assert_true(compare_cuts(&f, s, &t));
	for (int depth = 0; depth <= 48; depth += (depth < 8 ? 1 : 5)) {
		recurse(s, depth);
		assert_true(compare_cuts(&f, s, &t));
	}
	/* 256 frames and more. */
	recurse(s, 300);
	assert_true(unwind_compare(&f, s->regs, s->stack, s->len, &t));
	recurse(s, 253);	/* capture, 254 recurse, test, ... */
	unwind_compare(&f, s->regs, s->stack, s->len, &t);
	print_tally("main thread", &t);

	struct unwind_stats st;
	unwinder_stats(f.u, &st);
	print_message("  stats: %llu fast, %llu slow, %llu given up; rules: %llu hits, %llu misses\n",
		      (unsigned long long)st.fast_stacks, (unsigned long long)st.slow_stacks,
		      (unsigned long long)st.fast_fallbacks, (unsigned long long)st.rule_cache_hits,
		      (unsigned long long)st.rule_cache_misses);
	assert_true(st.rule_cache_hits > 10 * st.rule_cache_misses);
	/* Cut snapshots end on a return address past the snapshot: the fast
	 * path keeps those too. */
	assert_true(t.fast > t.stacks / 2 * 9 / 10);
	snapshot_free(s);
	fixture_close(&f);
}

static void *thread_recurse(void *arg)
{
	struct unwind_snapshot *s = arg;
	s->stack_top = this_stack_top();
	recurse(s, 6);
	return NULL;
}

static void test_second_thread_fast_matches_slow(void **state)
{
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();
	struct compare_tally t = { 0 };
	pthread_t thread;

	assert_int_equal(pthread_create(&thread, NULL, thread_main, s), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_true(compare_cuts(&f, s, &t));
	assert_int_equal(pthread_create(&thread, NULL, thread_recurse, s), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_true(compare_cuts(&f, s, &t));
	print_tally("second thread", &t);
	snapshot_free(s);
	fixture_close(&f);
}

/* A signal frame (__restore_rt's CFI is expressions): the fast path leaves
 * the stack to libdwfl, which unwinds through it. */
static struct unwind_snapshot *signal_snap;

static void on_signal(int sig)
{
	level1(signal_snap);
}

static void test_signal_frame_fast_matches_slow(void **state)
{
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();
	struct compare_tally t = { 0 };
	struct sigaction sa = { .sa_handler = on_signal }, old;
	signal_snap = s;
	assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
	raise(SIGUSR1);
	sigaction(SIGUSR1, &old, NULL);

	compare_cuts(&f, s, &t);
	struct unwind_result *r = result_new();
	const char *names[UNWIND_MAX_FRAMES];
	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	name_frames(&f, r, names);
	print_chain(r, names);
	assert_true(index_of(names, r->n, 0, "test_signal_frame_fast_matches_slow") > 0);
	assert_null(r->truncated);
	print_tally("signal handler", &t);
	free(r);
	snapshot_free(s);
	fixture_close(&f);
}

/* Garbage registers and stacks: whatever libdwfl makes of them. */
static void test_garbage_fast_matches_slow(void **state)
{
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();
	struct compare_tally t = { 0 };
	uint64_t regs[MW_NREGS];
	level1(s);
	uint64_t code = s->regs[16];
	unsigned seed = 1;
	for (int round = 0; round < 200; round++) {
		memcpy(regs, s->regs, sizeof(regs));
		/* A real pc, a stack of return addresses near it and junk. */
		for (size_t i = 0; i < 512; i++) {
			uint64_t v = rand_r(&seed);
			uint64_t *slot = (uint64_t *)s->stack + i;
			*slot = v % 3 == 0 ? code + v % 4096 - 2048 : v % 3 == 1 ? regs[7] + v % 4096 : v;
		}
		regs[6] = round % 2 ? regs[7] + 64 : 0;
		unwind_compare(&f, regs, s->stack, 4096, &t);
	}
	print_tally("garbage", &t);
	snapshot_free(s);
	fixture_close(&f);
}

/* Compares stacks captured in a dlopen'ed library (after this binary's
 * stacks warmed the caches). */
static void compare_in_library(const char *name, const char *root, bool want_fast)
{
	struct fixture f;
	fixture_open(&f);
	if (root)
		set_root(&f, root);
	struct unwind_snapshot *s = snapshot_new();
	struct compare_tally t = { 0 };
	level1(s);
	unwind_compare(&f, s->regs, s->stack, s->len, &t);
	void *handle = capture_in_library(name, s);
	bool fast = compare_cuts(&f, s, &t);
	print_tally(name, &t);
	if (want_fast)
		assert_true(fast);
	snapshot_free(s);
	fixture_close(&f);
	dlclose(handle);
}

static void test_libraries_fast_matches_slow(void **state)
{
	char root[PATH_MAX];
	if (!fx.plain || !fx.debug_frame || !fx.frame_pointers)
		fail_msg("could not build the fixture libraries");
	compare_in_library("libunwind_plain.so", NULL, true);
	compare_in_library("libunwind_dbgframe.so", fx_path(root, "root"), true);	/* .debug_frame */
	compare_in_library("libunwind_dbgframe.so", fx_path(root, "none"), false);	/* no CFI */
	compare_in_library("libunwind_fp.so", NULL, true);	/* frame pointers */

	/* The no-CFI library as in test_no_unwind_info: no frame pointer either. */
	struct fixture f;
	fixture_open(&f);
	set_root(&f, fx_path(root, "none"));
	struct unwind_snapshot *s = snapshot_new();
	void *handle = capture_in_library("libunwind_dbgframe.so", s);
	s->regs[6] = 0;
	assert_true(unwind_compare(&f, s->regs, s->stack, s->len, NULL));
	snapshot_free(s);
	fixture_close(&f);
	dlclose(handle);
}

/* Rules found in .debug_frame are cached per file, but separate debug files
 * are found per process: a process without the debug file must not get
 * them (here: the same process, its Dwfl rebuilt with another root). */
static void test_debug_file_per_process(void **state)
{
	char root[PATH_MAX], lib[PATH_MAX], want[PATH_MAX + 64];
	if (!fx.debug_frame)
		fail_msg("could not build the fixture library with gcc, objcopy and strip");
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();
	void *handle = capture_in_library("libunwind_dbgframe.so", s);
	s->regs[6] = 0;	/* no frame pointer either */
	struct unwind_result *r = result_new();
	snprintf(want, sizeof(want), "[truncated: no unwind info for %s]", fx_path(lib, "libunwind_dbgframe.so"));

	for (int round = 0; round < 4; round++) {
		bool with_debug = round % 2 == 0;
		unwinder_forget(f.u, f.p->pid);
		set_root(&f, fx_path(root, with_debug ? "root" : "none"));
		assert_true(unwind_compare(&f, s->regs, s->stack, s->len, NULL));
		assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
		if (with_debug) {
			assert_null(r->truncated);
			assert_true(r->n > 6);
		} else {
			assert_int_equal(r->n, 1);
			assert_string_equal(r->truncated, want);
		}
	}
	free(r);
	snapshot_free(s);
	fixture_close(&f);
	dlclose(handle);
}

/* C++: captured in the new-handler that libstdc++'s operator new calls. */
static void test_cxx_fast_matches_slow(void **state)
{
	if (!fx.cxx)
		fail_msg("could not build the C++ fixture library with g++");
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();
	struct compare_tally t = { 0 };
	void *handle = capture_in_library("libunwind_cxx.so", s);
	struct unwind_result *r = result_new();
	const char *names[UNWIND_MAX_FRAMES];

	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	name_frames(&f, r, names);
	print_chain(r, names);
	assert_null(r->truncated);
	assert_true(strncmp(names[0], "cxx_new_handler", 15) == 0);	/* demangled: "...()" */
	struct frame_at at;
	assert_true(r->n > 2 && process_resolve(&f.ps, f.p, r->pcs[1] - 1, &at) && at.obj);
	print_message("  #1 is in %s\n", at.obj->path);
	assert_non_null(strstr(at.obj->path, "libstdc++"));
	assert_true(index_of(names, r->n, 2, "unwind_lib_outer") > 0);
	assert_reaches_main(names, r->n);

	assert_true(compare_cuts(&f, s, &t));
	print_tally("C++", &t);
	free(r);
	snapshot_free(s);
	fixture_close(&f);
	dlclose(handle);
}

/* ---- strict mode (--stack-mode dwarf) ---- */

static void strict_fp_library(bool fast)
{
	char lib[PATH_MAX], want[PATH_MAX + 64];
	struct fixture f;
	fixture_open(&f);
	unwinder_set_fast(f.u, fast);
	struct unwind_snapshot *s = snapshot_new();
	void *handle = capture_in_library("libunwind_fp.so", s);
	struct unwind_result *r = result_new();
	const char *names[UNWIND_MAX_FRAMES];

	/* Default: libdw's frame-pointer rule goes through the library. */
	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	assert_null(r->truncated);
	name_frames(&f, r, names);
	assert_reaches_main(names, r->n);

	/* Strict: the library's first frame is the last. */
	unwinder_set_strict(f.u, true);
	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	name_frames(&f, r, names);
	print_chain(r, names);
	assert_int_equal(r->n, 1);
	assert_string_equal(names[0], "lib_capture");
	snprintf(want, sizeof(want), "[truncated: no unwind info for %s]", fx_path(lib, "libunwind_fp.so"));
	assert_non_null(r->truncated);
	assert_string_equal(r->truncated, want);

	/* This binary's own stacks have CFI all the way: complete. */
	level1(s);
	assert_int_equal(unwind_snapshot(&f, s, s->len, r), 0);
	assert_null(r->truncated);
	name_frames(&f, r, names);
	assert_reaches_main(names, r->n);

	struct unwind_stats st;
	unwinder_stats(f.u, &st);
	assert_int_equal(fast ? st.slow_stacks : st.fast_stacks, 0);
	free(r);
	snapshot_free(s);
	fixture_close(&f);
	dlclose(handle);
}

static void test_strict_fast(void **state)
{
	if (!fx.frame_pointers)
		fail_msg("could not build the fixture library with gcc");
	strict_fp_library(true);
}

static void test_strict_slow(void **state)
{
	if (!fx.frame_pointers)
		fail_msg("could not build the fixture library with gcc");
	strict_fp_library(false);
}

/* ---- the rule cache serves repeated stacks ---- */

/* rounds unwinds of s with the fast path on or off: each agrees with want
 * (when given) and the stats move by what each way must do. */
static void unwind_rounds(struct fixture *f, const struct unwind_snapshot *s, bool fast, int rounds,
			  struct unwind_result *want)
{
	struct unwind_result *r = result_new();
	struct unwind_stats before, after;

	unwinder_set_fast(f->u, fast);
	assert_int_equal(unwind_snapshot(f, s, s->len, r), 0);	/* fills the cache */
	unwinder_stats(f->u, &before);
	for (int i = 0; i < rounds; i++) {
		assert_int_equal(unwind_snapshot(f, s, s->len, r), 0);
		if (want->n && (r->n != want->n || memcmp(r->pcs, want->pcs, r->n * sizeof(r->pcs[0]))))
			fail_msg("unwind %d (fast path %s) differs", i, fast ? "on" : "off");
		if (!want->n)
			*want = *r;
	}
	unwinder_stats(f->u, &after);
	assert_null(r->truncated);
	if (fast) {
		/* Every frame's rule from the cache, no stack handed to libdwfl. */
		assert_int_equal(after.fast_stacks - before.fast_stacks, rounds);
		assert_int_equal(after.rule_cache_hits - before.rule_cache_hits, (uint64_t)rounds * r->n);
		assert_int_equal(after.rule_cache_misses, before.rule_cache_misses);
		assert_int_equal(after.slow_stacks, before.slow_stacks);
	} else {
		assert_int_equal(after.slow_stacks - before.slow_stacks, rounds);
		assert_int_equal(after.fast_stacks, before.fast_stacks);
	}
	unwinder_set_fast(f->u, true);
	free(r);
}

static void test_fast_path_serves_repeats(void **state)
{
	struct fixture f;
	fixture_open(&f);
	struct unwind_snapshot *s = snapshot_new();

	for (int deep = 0; deep < 2; deep++) {
		struct unwind_result want = { .n = 0 };
		if (deep)
			recurse(s, 31);	/* 40 frames */
		else
			level1(s);
		unwind_rounds(&f, s, true, 1000, &want);
		unwind_rounds(&f, s, false, 100, &want);
		assert_true(want.n >= (deep ? 40u : 4u));
	}
	struct unwind_stats st;
	unwinder_stats(f.u, &st);
	assert_int_equal(st.fast_fallbacks, 0);
	snapshot_free(s);
	fixture_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_main_thread_fast_matches_slow),
		cmocka_unit_test(test_second_thread_fast_matches_slow),
		cmocka_unit_test(test_signal_frame_fast_matches_slow),
		cmocka_unit_test(test_garbage_fast_matches_slow),
		cmocka_unit_test(test_libraries_fast_matches_slow),
		cmocka_unit_test(test_debug_file_per_process),
		cmocka_unit_test(test_cxx_fast_matches_slow),
		cmocka_unit_test(test_strict_fast),
		cmocka_unit_test(test_strict_slow),
		cmocka_unit_test(test_fast_path_serves_repeats),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
