/* For the unwinder's unit tests (test_unwind.c, test_unwind_fast.c): this
 * thread's stack captured the way memwatch's BPF program captures one at a
 * probe (registers + a copy of the stack from rsp up), four calls deep or
 * inside a fixture library built at run time (tests/unit/fixtures, group_setup),
 * and the process and unwinder to unwind and name it with. Include it after
 * <cmocka.h>, in a file built with -O2 -fomit-frame-pointer. */
#ifndef TEST_UNWIND_FIXTURE_H
#define TEST_UNWIND_FIXTURE_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "elf/elf_file.h"
#include "proc/process.h"
#include "elf/symbolize.h"
#include "stacks/unwind.h"

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

static inline uintptr_t this_stack_top(void)
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

static inline struct unwind_snapshot *snapshot_new(void)
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

static inline void snapshot_free(struct unwind_snapshot *s)
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

static inline void fixture_open(struct fixture *f)
{
	procs_init(&f->ps);
	f->p = procs_get(&f->ps, getpid());
	assert_non_null(f->p);
	f->u = unwinder_new();
	assert_non_null(f->u);
}

static inline void fixture_close(struct fixture *f)
{
	unwinder_free(f->u);
	procs_free(&f->ps);
}

static inline const char *function_at(struct fixture *f, uint64_t addr)
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
static inline void name_frames(struct fixture *f, const struct unwind_result *r, const char **names)
{
	for (uint32_t i = 0; i < r->n; i++)
		names[i] = function_at(f, i ? r->pcs[i] - 1 : r->pcs[i]);
}

static inline void print_chain(const struct unwind_result *r, const char **names)
{
	for (uint32_t i = 0; i < r->n; i++)
		print_message("  #%-2u %#014llx %s\n", i, (unsigned long long)r->pcs[i], names[i]);
	print_message("  (%s)\n", r->truncated ? r->truncated : "complete");
}

static inline int unwind_snapshot(struct fixture *f, const struct unwind_snapshot *s, size_t len,
			   struct unwind_result *r)
{
	return unwind_stack(f->u, &f->ps, f->p, s->regs, s->stack, len, r);
}

static inline int index_of(const char **names, uint32_t n, uint32_t from, const char *name)
{
	for (uint32_t i = from; i < n; i++)
		if (!strcmp(names[i], name))
			return (int)i;
	return -1;
}

/* names starts with want[0..n_want), in order. */
static inline void assert_chain_starts(const char **names, uint32_t n, const char *const *want, uint32_t n_want)
{
	assert_true(n >= n_want);
	for (uint32_t i = 0; i < n_want; i++)
		assert_string_equal(names[i], want[i]);
}

/* ... then reaches main, called from __libc_start_call_main. */
static inline void assert_reaches_main(const char **names, uint32_t n)
{
	int at_main = index_of(names, n, 0, "main");
	assert_true(at_main > 0);
	assert_true((uint32_t)at_main + 1 < n);
	assert_string_equal(names[at_main + 1], "__libc_start_call_main");
}

static inline struct unwind_result *result_new(void)
{
	struct unwind_result *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	return r;
}

static inline void *thread_main(void *arg)
{
	struct unwind_snapshot *s = arg;
	s->stack_top = this_stack_top();
	level1(s);
	return NULL;
}

/* ---- libraries dlopen'ed after the Dwfl was built ---- */

static struct {
	char dir[64];		/* /tmp/test_unwind.XXXXXX */
	char src[PATH_MAX];	/* tests/unit/fixtures */
	bool plain, debug_frame, frame_pointers, cxx;	/* which libraries were built */
} fx;

static inline const char *fx_path(char *buf, const char *name)
{
	return fixture_path(buf, fx.dir, name);
}

static inline bool find_fixture_sources(void)
{
	return fixture_sources(fx.src);
}

static inline int build_lib(const char *name, const char *flags)
{
	return run("gcc -O2 -shared -fPIC -Wl,--build-id=sha1 %s -I%s %s/unwind_lib.c -o %s/%s", flags, fx.src,
		   fx.src, fx.dir, name);
}

static inline char *build_id_of(const char *path)
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
static inline bool build_debug_frame_lib(void)
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

static inline int group_setup(void **state)
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

static inline int group_teardown(void **state)
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
static inline void set_root(struct fixture *f, const char *root)
{
	assert_true(strlen(root) < sizeof(f->p->root));
	memcpy(f->p->root, root, strlen(root) + 1);
}

#endif
