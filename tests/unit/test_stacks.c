/* Interned stacks and the stacker: locations and stacks deduplicated,
 * mappings as pprof describes them, synthetic frames; and events' captures
 * turned into stacks the way memwatch gets them from BPF: a frame-pointer
 * walk cut where a function keeps no frame pointer, and a stack snapshot
 * of this very thread unwound with its CFI. */
#include <pthread.h>
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

#include "memwatch.h"
#include "profile/profile.h"
#include "stacks/stacker.h"
#include "elf/symbolize.h"

#include "own_stacks.h"
#include "fixtures/unwind_capture.h"

#define NOIPA __attribute__((noipa))

static volatile int sink;

/* The innermost function a location names (inline frames expanded), or NULL. */
static const char *function_of(struct own *o, const struct stacks *st, uint32_t loc)
{
	const struct sym_result *r = loc_symbols(&o->ps, st->locs[loc]);

	return r && r->nlines ? r->lines[r->nlines - 1].function : NULL;
}

static void test_interning(void **state)
{
	struct own o;
	struct stacks st;
	const void *ab[] = { own_site_a, own_caller }, *bb[] = { own_site_b, own_caller };

	assert_int_equal(own_open(&o), 0);
	stacks_init(&st);
	uint32_t a = own_stack(&o, &st, ret_in(own_site_a), ab, 2);
	uint32_t a2 = own_stack(&o, &st, ret_in(own_site_a), ab, 2);
	uint32_t b = own_stack(&o, &st, ret_in(own_site_a), bb, 2);
	assert_int_equal(a, a2);
	assert_int_not_equal(a, b);
	assert_int_equal(st.nstacks, 2);
	/* leaf (not a return address), own_site_a and own_site_b (return
	 * addresses), own_caller: the leaf and own_site_a's return address
	 * are the same address seen two ways, so they are two locations. */
	assert_int_equal(st.nlocs, 4);
	const struct stack *s = stacks_get(&st, a);
	assert_int_equal(s->n, 3);
	assert_false(st.locs[s->locs[0]]->is_return);
	assert_true(st.locs[s->locs[1]]->is_return);
	assert_string_equal(function_of(&o, &st, s->locs[0]), "own_site_a");
	assert_string_equal(function_of(&o, &st, s->locs[1]), "own_site_a");
	assert_string_equal(function_of(&o, &st, s->locs[2]), "own_caller");
	stacks_free(&st);
	own_close(&o);
}

static void test_mappings_and_synthetic_frames(void **state)
{
	struct own o;
	struct stacks st;
	uint64_t frames[] = { ret_in(own_site_b), 0x10 };

	assert_int_equal(own_open(&o), 0);
	stacks_init(&st);
	uint32_t id = stacks_intern(&st, &o.ps, o.p, frames, 2, "[truncated: test]");
	const struct stack *s = stacks_get(&st, id);
	assert_int_equal(s->n, 3);
	/* The test binary: one mapping, the main executable's. */
	const struct loc *in_exe = st.locs[s->locs[0]];
	assert_int_not_equal(in_exe->pmap, NO_PMAP);
	const struct pmap *m = st.pmaps[in_exe->pmap];
	assert_true(m->is_exe);
	assert_true(m->start <= frames[0] && frames[0] < m->end);
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = 0;
	assert_string_equal(m->path, exe);
	/* An address no mapping holds, and the synthetic last frame. */
	const struct loc *nowhere = st.locs[s->locs[1]], *why = st.locs[s->locs[2]];
	assert_int_equal(nowhere->pmap, NO_PMAP);
	assert_null(nowhere->obj);
	assert_string_equal(why->special, "[truncated: test]");
	assert_int_equal(why->pmap, NO_PMAP);
	assert_int_equal(stacks_intern(&st, &o.ps, o.p, frames, 2, "[truncated: test]"), id);
	assert_int_not_equal(stacks_intern(&st, &o.ps, o.p, frames, 2, NULL), id);
	stacks_free(&st);
	own_close(&o);
}

/* ---- frame-pointer walks ---- */

/* -O0: the textbook prologue (push %rbp; mov %rsp,%rbp) the check looks
 * for; at -O2 GCC may schedule other instructions between the two. */
__attribute__((noinline, used, optimize("O0"))) static int keeps_fp(int x)
{
	sink += x;
	return own_site_a(x) + 1;
}

static const char *stack_names(struct own *o, struct stacks *st, uint32_t id, char *buf, size_t len)
{
	const struct stack *s = stacks_get(st, id);
	size_t used = 0;

	buf[0] = 0;
	for (uint32_t i = 0; i < s->n && used < len; i++) {
		const struct loc *l = st->locs[s->locs[i]];
		const char *name = l->special ? l->special : function_of(o, st, s->locs[i]);
		used += snprintf(buf + used, len - used, "%s%s", i ? " " : "", name ? name : "?");
	}
	return buf;
}

static void test_fp_walk_cut_where_no_frame_pointer(void **state)
{
	struct own o;
	struct stacks st;
	struct stacker sk;
	struct {
		struct mw_capture cap;
		uint64_t frames[5];
	} e = { .cap = { .mode = MW_STACK_FP, .nframes = 5 } };
	char names[512];

	assert_int_equal(own_open(&o), 0);
	stacks_init(&st);
	assert_int_equal(stacker_init(&sk, STACK_FP, 0), 0);
	/* The probed pc, then the callers: keeps_fp has a frame pointer, so
	 * the walk past it holds; own_caller (-O2) has none, so what the walk
	 * read past it is garbage and goes. */
	e.frames[0] = (uint64_t)(uintptr_t)own_site_b;
	e.frames[1] = ret_in(keeps_fp);
	e.frames[2] = ret_in(own_caller);
	e.frames[3] = 0x1234;
	e.frames[4] = 0x5678;
	uint32_t id = stacker_intern(&sk, &st, &o.ps, o.p, &e.cap, (const uint8_t *)e.frames, sizeof(e.frames));
	assert_int_not_equal(id, UINT32_MAX);
	assert_string_equal(stack_names(&o, &st, id, names, sizeof(names)),
			    "own_site_b keeps_fp own_caller [truncated: own_caller keeps no frame pointer]");
	assert_int_equal(sk.stacks, 1);
	assert_int_equal(sk.fp_truncated, 1);
	/* A payload shorter than nframes says: only what is there. */
	id = stacker_intern(&sk, &st, &o.ps, o.p, &e.cap, (const uint8_t *)e.frames, 2 * sizeof(uint64_t));
	assert_string_equal(stack_names(&o, &st, id, names, sizeof(names)), "own_site_b keeps_fp");
	stacker_describe(&sk, names, sizeof(names));
	assert_non_null(strstr(names, "stacks: fp"));
	assert_non_null(strstr(names, "2 stacks, 1 cut"));
	stacker_free(&sk);
	stacks_free(&st);
	own_close(&o);
}

/* ---- stack snapshots ---- */

struct snapshot_event {
	struct mw_capture cap;
	struct unwind_snapshot snap;
};

static uintptr_t this_stack_top(void)
{
	pthread_attr_t attr;
	void *addr = NULL;
	size_t size = 0;

	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		pthread_attr_getstack(&attr, &addr, &size);
		pthread_attr_destroy(&attr);
	}
	return (uintptr_t)addr + size;
}

NOIPA static int capture_here(struct unwind_snapshot *s)
{
	UNWIND_CAPTURE(s);
	sink++;
	return (int)s->len;
}

NOIPA static int snapshot_caller(struct unwind_snapshot *s)
{
	int r = capture_here(s);
	sink += r;
	return r + 1;
}

static uint32_t intern_snapshot(struct stacker *sk, struct stacks *st, struct own *o, size_t cap)
{
	struct snapshot_event e = { .cap = { .mode = MW_STACK_SNAPSHOT } };

	e.snap.stack = malloc(cap);
	e.snap.cap = cap;
	e.snap.stack_top = this_stack_top();
	assert_non_null(e.snap.stack);
	snapshot_caller(&e.snap);
	memcpy(e.cap.regs, e.snap.regs, sizeof(e.cap.regs));
	e.cap.stack_len = e.snap.len;
	uint32_t id = stacker_intern(sk, st, &o->ps, o->p, &e.cap, e.snap.stack, e.snap.len);
	free(e.snap.stack);
	return id;
}

static void test_snapshot_unwound(void **state)
{
	struct own o;
	struct stacks st;
	struct stacker sk;
	char names[4096];

	assert_int_equal(own_open(&o), 0);
	stacks_init(&st);
	assert_int_equal(stacker_init(&sk, STACK_DWARF, 65536), 0);
	uint32_t id = intern_snapshot(&sk, &st, &o, 65536);
	stack_names(&o, &st, id, names, sizeof(names));
	/* From the capture to main, and no truncation: the CFI of the test
	 * binary and of libc take it to the outermost frame. */
	assert_memory_equal(names, "capture_here snapshot_caller intern_snapshot test_snapshot_unwound",
			    strlen("capture_here snapshot_caller intern_snapshot test_snapshot_unwound"));
	assert_non_null(strstr(names, " main "));
	assert_null(strstr(names, "[truncated"));

	/* 256 bytes of stack hold the first frames only: marked, not wrong. */
	id = intern_snapshot(&sk, &st, &o, 256);
	stack_names(&o, &st, id, names, sizeof(names));
	assert_memory_equal(names, "capture_here", strlen("capture_here"));
	const struct stack *s = stacks_get(&st, id);
	assert_string_equal(st.locs[s->locs[s->n - 1]]->special, "[truncated: stack snapshot too small]");
	stacker_describe(&sk, names, sizeof(names));
	assert_non_null(strstr(names, "stacks: dwarf (CFI unwinding of 65536-byte stack snapshots)"));
	assert_non_null(strstr(names, "2 stacks, 1 truncated: 1 snapshot too small"));
	assert_int_equal(sk.stacks, 2);
	stacker_forget(&sk, getpid());
	stacker_free(&sk);
	stacks_free(&st);
	own_close(&o);
}

static void test_stack_mode_names(void **state)
{
	enum stack_mode m;

	assert_int_equal(stack_mode_parse("fp", &m), 0);
	assert_int_equal(m, STACK_FP);
	assert_int_equal(stack_mode_parse("auto", &m), 0);
	assert_int_equal(m, STACK_AUTO);
	assert_int_equal(stack_mode_parse("DWARF", &m), -1);
	assert_string_equal(stack_mode_name(STACK_DWARF), "dwarf");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_interning),
		cmocka_unit_test(test_mappings_and_synthetic_frames),
		cmocka_unit_test(test_fp_walk_cut_where_no_frame_pointer),
		cmocka_unit_test(test_snapshot_unwound),
		cmocka_unit_test(test_stack_mode_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
