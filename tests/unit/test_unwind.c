/* Unit tests for user/unwind.c: this process's own stack, captured the way
 * memwatch's BPF program captures one at a probe (registers + a copy of the
 * stack from rsp up), unwound and symbolized. Build with -O2
 * -fomit-frame-pointer, like Debian's binaries: only CFI can unwind it.
 * The dlopen test builds tests/unit/fixtures/unwind_lib.c with gcc at run
 * time; the libc frames need libc6-dbg (for start_thread and
 * __libc_start_call_main, absent from libc's .dynsym).
 *
 * The fast path (the rule cache) must give libdwfl's results exactly: the
 * *_fast_matches_slow tests unwind each stack both ways (unwinder_set_fast)
 * and compare pcs and truncation reasons, on full and cut snapshots. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "elf_file.h"
#include "process.h"
#include "symbolize.h"
#include "unwind.h"

#include "fixture_build.h"

#include "fixtures/unwind_capture.h"

#define NOIPA __attribute__((noipa))
#define SNAPSHOT_CAP (512 * 1024)
#define TRUNC_SNAPSHOT "[truncated: stack snapshot too small]"

static volatile int sink;

/* ---- capturing this thread's stack, four calls deep ---- */

NOIPA static int capture(struct unwind_snapshot *s)
{
	UNWIND_CAPTURE(s);
	sink++;
	return (int)s->len;
}

NOIPA static int level3(struct unwind_snapshot *s)
{
	int r = capture(s);
	sink += r;
	return r + 1;
}

NOIPA static int level2(struct unwind_snapshot *s)
{
	int r = level3(s);
	sink += r;
	return r + 1;
}

NOIPA static int level1(struct unwind_snapshot *s)
{
	int r = level2(s);
	sink += r;
	return r + 1;
}

NOIPA static int recurse(struct unwind_snapshot *s, int depth)
{
	int r = depth ? recurse(s, depth - 1) : capture(s);
	sink += r;
	return r + 1;
}

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

static struct unwind_snapshot *snapshot_new(void)
{
	struct unwind_snapshot *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->stack = malloc(SNAPSHOT_CAP);
	assert_non_null(s->stack);
	s->cap = SNAPSHOT_CAP;
	s->stack_top = this_stack_top();
	assert_true(s->stack_top != 0);
	return s;
}

static void snapshot_free(struct unwind_snapshot *s)
{
	free(s->stack);
	free(s);
}

/* ---- the process, symbolized chains ---- */

struct fixture {
	struct procs ps;
	struct process *p;
	struct unwinder *u;
};

static void fixture_open(struct fixture *f)
{
	procs_init(&f->ps);
	f->p = procs_get(&f->ps, getpid());
	assert_non_null(f->p);
	f->u = unwinder_new();
	assert_non_null(f->u);
}

static void fixture_close(struct fixture *f)
{
	unwinder_free(f->u);
	procs_free(&f->ps);
}

static const char *function_at(struct fixture *f, uint64_t addr)
{
	struct frame_at at;
	if (!process_resolve(&f->ps, f->p, addr, &at) || !at.obj)
		return "?";
	struct sym_file *sym = objfile_symbols(&f->ps, at.obj);
	if (!sym)
		return "?";
	const struct sym_result *r = sym_file_lookup(sym, at.vaddr);
	return r->nlines && r->lines[r->nlines - 1].function ? r->lines[r->nlines - 1].function : "?";
}

/* Names of the frames, return addresses looked up at pc - 1. */
static void name_frames(struct fixture *f, const struct unwind_result *r, const char **names)
{
	for (uint32_t i = 0; i < r->n; i++)
		names[i] = function_at(f, i ? r->pcs[i] - 1 : r->pcs[i]);
}

static void print_chain(const struct unwind_result *r, const char **names)
{
	for (uint32_t i = 0; i < r->n; i++)
		print_message("  #%-2u %#014llx %s\n", i, (unsigned long long)r->pcs[i], names[i]);
	print_message("  (%s)\n", r->truncated ? r->truncated : "complete");
}

static int unwind_snapshot(struct fixture *f, const struct unwind_snapshot *s, size_t len,
			   struct unwind_result *r)
{
	return unwind_stack(f->u, &f->ps, f->p, s->regs, s->stack, len, r);
}

static int index_of(const char **names, uint32_t n, uint32_t from, const char *name)
{
	for (uint32_t i = from; i < n; i++)
		if (!strcmp(names[i], name))
			return (int)i;
	return -1;
}

/* names starts with want[0..n_want), in order. */
static void assert_chain_starts(const char **names, uint32_t n, const char *const *want, uint32_t n_want)
{
	assert_true(n >= n_want);
	for (uint32_t i = 0; i < n_want; i++)
		assert_string_equal(names[i], want[i]);
}

/* ... then reaches main, called from __libc_start_call_main. */
static void assert_reaches_main(const char **names, uint32_t n)
{
	int at_main = index_of(names, n, 0, "main");
	assert_true(at_main > 0);
	assert_true((uint32_t)at_main + 1 < n);
	assert_string_equal(names[at_main + 1], "__libc_start_call_main");
}

static struct unwind_result *result_new(void)
{
	struct unwind_result *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	return r;
}

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

static void *thread_main(void *arg)
{
	struct unwind_snapshot *s = arg;
	s->stack_top = this_stack_top();
	level1(s);
	return NULL;
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

/* ---- libraries dlopen'ed after the Dwfl was built ---- */

static struct {
	char dir[64];		/* /tmp/test_unwind.XXXXXX */
	char src[PATH_MAX];	/* tests/unit/fixtures */
	bool plain, debug_frame, frame_pointers, cxx;	/* which libraries were built */
} fx;

static const char *fx_path(char *buf, const char *name)
{
	return fixture_path(buf, fx.dir, name);
}

static bool find_fixture_sources(void)
{
	return fixture_sources(fx.src);
}

static int build_lib(const char *name, const char *flags)
{
	return run("gcc -O2 -shared -fPIC -Wl,--build-id=sha1 %s -I%s %s/unwind_lib.c -o %s/%s", flags, fx.src,
		   fx.src, fx.dir, name);
}

static char *build_id_of(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct elf_file *elf = fd >= 0 ? elf_file_open(fd) : NULL;
	char *id = elf && elf_file_build_id(elf) ? strdup(elf_file_build_id(elf)) : NULL;
	if (elf)
		elf_file_close(elf);
	if (fd >= 0)
		close(fd);
	return id;
}

/* CFI only in .debug_frame, moved to a separate debug file installed by
 * build-id under root/ (the target's root in that test). */
static bool build_debug_frame_lib(void)
{
	const char *d = fx.dir;
	char lib[PATH_MAX];
	if (build_lib("libunwind_dbgframe.so", "-g -fomit-frame-pointer -fno-asynchronous-unwind-tables -fno-unwind-tables") ||
	    run("objcopy --only-keep-debug %s/libunwind_dbgframe.so %s/dbgframe.debug", d, d) ||
	    run("strip --strip-debug %s/libunwind_dbgframe.so", d))
		return false;
	char *id = build_id_of(fx_path(lib, "libunwind_dbgframe.so"));
	int rc = !id || strlen(id) < 4 ||
		 run("mkdir -p %s/root/usr/lib/debug/.build-id/%.2s && mv %s/dbgframe.debug %s/root/usr/lib/debug/.build-id/%.2s/%s.debug",
		     d, id, d, d, id, id + 2);
	free(id);
	return rc == 0;
}

static int group_setup(void **state)
{
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/test_unwind.XXXXXX");
	if (!mkdtemp(fx.dir) || !find_fixture_sources())
		return 0;	/* the fixture tests fail */
	fx.plain = !build_lib("libunwind_plain.so", "-g -fomit-frame-pointer");
	fx.debug_frame = build_debug_frame_lib();
	fx.frame_pointers = !build_lib("libunwind_fp.so",
				       "-fno-omit-frame-pointer -fno-asynchronous-unwind-tables -fno-unwind-tables");
	fx.cxx = !run("g++ -O2 -shared -fPIC -Wl,--build-id=sha1 -I%s %s/unwind_cxx.cc -o %s/libunwind_cxx.so", fx.src,
		      fx.src, fx.dir);
	return 0;
}

static int group_teardown(void **state)
{
	if (strncmp(fx.dir, "/tmp/test_unwind.", 17) == 0)
		run("rm -rf '%s'", fx.dir);
	return 0;
}

typedef int (*lib_entry_fn)(struct unwind_snapshot *);

NOIPA static int call_library(lib_entry_fn outer, struct unwind_snapshot *s)
{
	int r = outer(s);
	sink += r;
	return r + 1;
}

/* Captures s inside library name, dlopen'ed now; returns the handle. */
NOIPA static void *capture_in_library(const char *name, struct unwind_snapshot *s)
{
	char lib[PATH_MAX];
	void *handle = dlopen(fx_path(lib, name), RTLD_NOW | RTLD_LOCAL);
	if (!handle)
		fail_msg("dlopen %s: %s", lib, dlerror());
	lib_entry_fn outer = (lib_entry_fn)dlsym(handle, "unwind_lib_outer");
	assert_non_null(outer);
	call_library(outer, s);
	return handle;
}

/* Where the unwinder looks for the target's debug files. */
static void set_root(struct fixture *f, const char *root)
{
	assert_true(strlen(root) < sizeof(f->p->root));
	memcpy(f->p->root, root, strlen(root) + 1);
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
