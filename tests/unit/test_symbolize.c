/* Unit tests for user/symbolize.c. Builds small shared objects from
 * tests/unit/fixtures/ at run time with gcc, objcopy and strip (those tests
 * fail without them), g++ and dwz (tools/deps.sh installs them all), and libc6-dbg. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <link.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "elf/symbolize.h"

#include "fixture_build.h"

#define LIBC_PATH "/lib/x86_64-linux-gnu/libc.so.6"
#define LIBSTDCXX_PATH "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"

/* ---- functions of this binary that the tests symbolize ---- */

/* Out of line and never cloned (a clone would be named foo.constprop.0). */
#ifdef __clang__
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif

static volatile int sink_value;
static unsigned inline_call_line;

enum { PLAIN_FIRST_LINE = __LINE__ };
NOIPA int symtest_plain(int x)
{
	sink_value += x;
	return sink_value * 3;
}
enum { PLAIN_LAST_LINE = __LINE__ };

enum { CALLEE_FIRST_LINE = __LINE__ };
static inline __attribute__((always_inline)) int symtest_callee(int x)
{
	int acc = 0;
	for (int i = 0; i < x; i++)
		acc += sink_value * i;
	return acc;
}
enum { CALLEE_LAST_LINE = __LINE__ };

NOIPA int symtest_caller(int x)
{
	int r = symtest_callee(x); inline_call_line = __LINE__;
	return r + sink_value;
}

/* ---- helpers ---- */

struct phdr_query {
	uintptr_t addr;
	uint64_t vaddr;
	bool found;
};

static int phdr_match(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct phdr_query *q = arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && q->addr >= start && q->addr < start + ph->p_memsz) {
			q->vaddr = q->addr - info->dlpi_addr;
			q->found = true;
			return 1;
		}
	}
	return 0;
}

/* The ELF virtual address of a code address of this process. */
static uint64_t runtime_to_vaddr(const void *addr)
{
	struct phdr_query q = { .addr = (uintptr_t)addr };
	dl_iterate_phdr(phdr_match, &q);
	assert_true(q.found);
	return q.vaddr;
}

/* st_value of the first FUNC symbol named name (or starting with name when
 * prefix) in .symtab or .dynsym of the file at path. */
static bool elf_symbol(const char *path, const char *name, bool prefix, uint64_t *value)
{
	elf_version(EV_CURRENT);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
	bool found = false;
	for (Elf_Scn *scn = NULL; elf && !found && (scn = elf_nextscn(elf, scn));) {
		GElf_Shdr shdr;
		if (!gelf_getshdr(scn, &shdr) || (shdr.sh_type != SHT_SYMTAB && shdr.sh_type != SHT_DYNSYM))
			continue;
		Elf_Data *data = elf_getdata(scn, NULL);
		size_t count = shdr.sh_entsize ? shdr.sh_size / shdr.sh_entsize : 0;
		for (size_t i = 0; data && i < count && !found; i++) {
			GElf_Sym sym;
			if (!gelf_getsym(data, i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC || !sym.st_value)
				continue;
			const char *sname = elf_strptr(elf, shdr.sh_link, sym.st_name);
			if (sname && (prefix ? !strncmp(sname, name, strlen(name)) : !strcmp(sname, name))) {
				*value = sym.st_value;
				found = true;
			}
		}
	}
	elf_end(elf);
	close(fd);
	return found;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

static const struct sym_line *outermost(const struct sym_result *r)
{
	return &r->lines[r->nlines - 1];
}

static struct sym_file *open_file(struct symbolizer *s, const char *path, const char *display,
				  const char *root)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct sym_file *f = symbolizer_file(s, fd, display, root);
	close(fd);
	return f;
}

/* ---- fixtures built at run time ---- */

static struct {
	bool built;
	bool cxx_built;
	bool dwz_built;
	char dir[64];
	char src[PATH_MAX];	/* tests/unit/fixtures */
} fx;

static const char *fx_path(char *buf, const char *name)
{
	return fixture_path(buf, fx.dir, name);
}

static bool find_fixture_sources(void)
{
	return fixture_sources(fx.src);
}

static char *build_id_of(const char *path)
{
	struct symbolizer *s = symbolizer_new();
	struct sym_file *f = open_file(s, path, path, NULL);
	char *id = f ? strdup(sym_file_build_id(f)) : NULL;
	symbolizer_free(s);
	return id;
}

/* libsymfix.so (with DWARF), its debug file under root/ by build-id through an
 * absolute symlink, a strip --strip-all copy, and a build-id-less copy found
 * by .gnu_debuglink under linkroot/. */
static bool build_c_fixtures(void)
{
	const char *d = fx.dir, *src = fx.src;
	if (run("gcc -g -O2 -shared -fPIC -Wl,--build-id=sha1 %s/symfix.c -o %s/libsymfix.so", src, d) ||
	    run("objcopy --only-keep-debug %s/libsymfix.so %s/libsymfix.debug", d, d) ||
	    run("strip --strip-all -o %s/libsymfix.stripped.so %s/libsymfix.so", d, d) ||
	    run("mkdir -p %s/emptyroot %s/root/usr/lib/debug/usr/lib", d, d) ||
	    run("cp %s/libsymfix.debug %s/root/usr/lib/debug/usr/lib/libsymfix.so.debug", d, d))
		return false;
	char so[PATH_MAX];
	char *id = build_id_of(fx_path(so, "libsymfix.so"));
	if (!id || strlen(id) < 4)
		return false;
	/* escaperoot's link climbs out of its root to a real copy: resolved
	 * inside the root, as the target would, it leads nowhere. */
	int rc = run("mkdir -p %s/root/usr/lib/debug/.build-id/%.2s && "
		     "ln -s /usr/lib/debug/usr/lib/libsymfix.so.debug %s/root/usr/lib/debug/.build-id/%.2s/%s.debug && "
		     "mkdir -p %s/escaperoot/usr/lib/debug/.build-id/%.2s && "
		     "ln -s ../../../../../../../../../../../../%s/libsymfix.debug %s/escaperoot/usr/lib/debug/.build-id/%.2s/%s.debug",
		     d, id, d, id, id + 2, d, id, d, d, id, id + 2);
	free(id);
	if (rc)
		return false;
	return !run("gcc -g -O2 -shared -fPIC -Wl,--build-id=none %s/symfix.c -o %s/libnobid.so", src, d) &&
	       !run("objcopy --only-keep-debug %s/libnobid.so %s/libnobid.debug", d, d) &&
	       !run("cd %s && objcopy --strip-debug --add-gnu-debuglink=libnobid.debug libnobid.so libnobid.linked.so", d) &&
	       !run("mkdir -p %s/linkroot/usr/lib/debug/opt/app %s/badlinkroot/opt/app", d, d) &&
	       !run("cp %s/libnobid.debug %s/linkroot/usr/lib/debug/opt/app/", d, d) &&
	       /* Same name, wrong contents: must fail the CRC check. */
	       !run("cp %s/libsymfix.debug %s/badlinkroot/opt/app/libnobid.debug", d, d);
}

/* Two copies of symfix_dwz.c whose shared DWARF dwz moved into an alt file,
 * installed only under dwzroot/ at the path their .gnu_debugaltlink names. */
static bool build_dwz_fixtures(void)
{
	const char *d = fx.dir, *src = fx.src;
	if (run("command -v dwz >/dev/null"))
		return false;
	return !run("mkdir -p %s/dwz %s/dwzroot/usr/lib/debug/.dwz", d, d) &&
	       !run("gcc -g -O2 -shared -fPIC -DVARIANT=a %s/symfix_dwz.c -o %s/dwz/liba.so", src, d) &&
	       !run("gcc -g -O2 -shared -fPIC -DVARIANT=b %s/symfix_dwz.c -o %s/dwz/libb.so", src, d) &&
	       !run("cd %s/dwz && dwz -m common.debug -M /usr/lib/debug/.dwz/symfix-common.debug liba.so libb.so", d) &&
	       !run("mv %s/dwz/common.debug %s/dwzroot/usr/lib/debug/.dwz/symfix-common.debug", d, d);
}

static int group_setup(void **state)
{
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/test_symbolize.XXXXXX");
	if (!mkdtemp(fx.dir))
		return 0;	/* fixture tests fail */
	if (!find_fixture_sources()) {
		print_message("tests/unit/fixtures not found: fixture tests fail\n");
		return 0;
	}
	fx.built = build_c_fixtures();
	fx.dwz_built = build_dwz_fixtures();
	fx.cxx_built = !run("g++ -g -O2 -shared -fPIC %s/symfix_cxx.cc -o %s/libsymfix_cxx.so 2>/dev/null",
			    fx.src, fx.dir);
	return 0;
}

static int group_teardown(void **state)
{
	if (fx.dir[0] && strncmp(fx.dir, "/tmp/test_symbolize.", 20) == 0)
		run("rm -rf '%s'", fx.dir);
	return 0;
}

#define NEED_FIXTURES() do { if (!fx.built) fail_msg("test fixtures could not be built"); } while (0)

/* ---- tests ---- */

static void test_self_noinline(void **state)
{
	struct symbolizer *s = symbolizer_new();
	struct sym_file *f = open_file(s, "/proc/self/exe", "/proc/self/exe", NULL);
	assert_non_null(f);
	assert_true(sym_file_has_debuginfo(f));
	assert_true(strlen(sym_file_build_id(f)) >= 32);

	const struct sym_result *r = sym_file_lookup(f, runtime_to_vaddr((void *)symtest_plain));
	assert_int_equal(r->nlines, 1);
	assert_string_equal(r->lines[0].function, "symtest_plain");
	assert_string_equal(r->lines[0].system_name, "symtest_plain");
	assert_non_null(r->lines[0].file);
	assert_true(ends_with(r->lines[0].file, "test_symbolize.c"));
	assert_in_range(r->lines[0].line, PLAIN_FIRST_LINE, PLAIN_LAST_LINE);
	symbolizer_free(s);
}

static void test_self_inline(void **state)
{
	assert_int_equal(symtest_caller(3), 0);	/* sets inline_call_line */
	assert_true(inline_call_line > 0);
	struct symbolizer *s = symbolizer_new();
	struct sym_file *f = open_file(s, "/proc/self/exe", "/proc/self/exe", NULL);
	assert_non_null(f);
	uint64_t start = runtime_to_vaddr((void *)symtest_caller);
	bool found = false;
	for (uint64_t off = 0; off < 1024 && !found; off++) {
		const struct sym_result *r = sym_file_lookup(f, start + off);
		if (r->nlines == 0)
			continue;
		if (strcmp(outermost(r)->function, "symtest_caller"))
			break;	/* past the end of the function */
		if (r->nlines != 2)
			continue;
		assert_string_equal(r->lines[0].function, "symtest_callee");
		assert_true(ends_with(r->lines[0].file, "test_symbolize.c"));
		assert_in_range(r->lines[0].line, CALLEE_FIRST_LINE, CALLEE_LAST_LINE);
		assert_string_equal(r->lines[1].function, "symtest_caller");
		assert_true(ends_with(r->lines[1].file, "test_symbolize.c"));
		assert_int_equal(r->lines[1].line, inline_call_line);
		found = true;
	}
	assert_true(found);
	symbolizer_free(s);
}

static void test_glibc_malloc(void **state)
{
	uint64_t vaddr;
	assert_true(elf_symbol(LIBC_PATH, "malloc", false, &vaddr));
	struct symbolizer *s = symbolizer_new();
	struct sym_file *f = open_file(s, LIBC_PATH, LIBC_PATH, NULL);
	assert_non_null(f);
	assert_true(sym_file_has_debuginfo(f));	/* libc6-dbg, by build-id */
	const struct sym_result *r = sym_file_lookup(f, vaddr);
	assert_true(r->nlines >= 1);
	assert_non_null(strstr(outermost(r)->function, "malloc"));
	assert_non_null(outermost(r)->file);
	assert_non_null(strstr(outermost(r)->file, "malloc"));
	assert_true(outermost(r)->line > 0);

	struct sym_stats st;
	symbolizer_stats(s, &st);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.debug_files, 1);
	symbolizer_free(s);
}

static void test_root_build_id(void **state)
{
	NEED_FIXTURES();
	char so[PATH_MAX], root[PATH_MAX];
	uint64_t internal, exported;
	assert_true(elf_symbol(fx_path(so, "libsymfix.so"), "symfix_internal", true, &internal));
	assert_true(elf_symbol(so, "symfix_exported", false, &exported));

	struct symbolizer *s = symbolizer_new();
	/* The display path does not exist here: only the root is searched. */
	struct sym_file *f = open_file(s, fx_path(so, "libsymfix.stripped.so"), "/usr/lib/libsymfix.so",
				       fx_path(root, "root"));
	assert_non_null(f);
	assert_true(sym_file_has_debuginfo(f));
	const struct sym_result *r = sym_file_lookup(f, internal);
	assert_int_equal(r->nlines, 1);
	assert_string_equal(r->lines[0].function, "symfix_internal");
	assert_true(ends_with(r->lines[0].file, "symfix.c"));
	assert_true(r->lines[0].line > 0);
	r = sym_file_lookup(f, exported);
	assert_string_equal(outermost(r)->function, "symfix_exported");

	struct sym_stats st;
	symbolizer_stats(s, &st);
	assert_int_equal(st.debug_files, 1);
	symbolizer_free(s);
}

/* Whether the stripped libsymfix registered with root rootname finds its
 * debug file. */
static bool root_gives_debuginfo(const char *rootname)
{
	char so[PATH_MAX], root[PATH_MAX];
	struct symbolizer *s = symbolizer_new();
	int fd = open(fx_path(so, "libsymfix.stripped.so"), O_RDONLY | O_CLOEXEC);
	struct sym_file *f = symbolizer_file(s, fd, "/usr/lib/libsymfix.so", fx_path(root, rootname));
	bool found = f && sym_file_has_debuginfo(f);
	symbolizer_free(s);
	close(fd);
	return found;
}

static void test_root_no_escape(void **state)
{
	NEED_FIXTURES();
	assert_false(root_gives_debuginfo("escaperoot"));
}

/* What kernels before 5.6 and some container sandboxes do. */
static bool forbid_openat2(void)
{
#ifndef SYS_openat2
	return false;
#else
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	       prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0 &&
	       syscall(SYS_openat2, AT_FDCWD, "/", NULL, 0) < 0 && errno == ENOSYS;
#endif
}

static void test_root_without_openat2(void **state)
{
	NEED_FIXTURES();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (!forbid_openat2())
			_exit(2);
		_exit(root_gives_debuginfo("root") && !root_gives_debuginfo("escaperoot") ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 2)
		fail_msg("missing prerequisite: run tools/deps.sh");
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_no_debuginfo_dynsym(void **state)
{
	NEED_FIXTURES();
	char so[PATH_MAX], root[PATH_MAX];
	uint64_t exported;
	assert_true(elf_symbol(fx_path(so, "libsymfix.so"), "symfix_exported", false, &exported));
	struct symbolizer *s = symbolizer_new();
	struct sym_file *f = open_file(s, fx_path(so, "libsymfix.stripped.so"), "/usr/lib/libsymfix.so",
				       fx_path(root, "emptyroot"));
	assert_non_null(f);
	assert_false(sym_file_has_debuginfo(f));
	const struct sym_result *r = sym_file_lookup(f, exported);
	assert_int_equal(r->nlines, 1);
	assert_string_equal(r->lines[0].function, "symfix_exported");
	assert_string_equal(r->lines[0].system_name, "symfix_exported");
	assert_null(r->lines[0].file);
	assert_int_equal(r->lines[0].line, 0);
	symbolizer_free(s);
}

static void test_stripped_internal(void **state)
{
	NEED_FIXTURES();
	char so[PATH_MAX], root[PATH_MAX];
	uint64_t internal;
	assert_true(elf_symbol(fx_path(so, "libsymfix.so"), "symfix_internal", true, &internal));
	struct symbolizer *s = symbolizer_new();
	struct sym_file *f = open_file(s, fx_path(so, "libsymfix.stripped.so"), "/usr/lib/libsymfix.so",
				       fx_path(root, "emptyroot"));
	assert_non_null(f);
	const struct sym_result *r = sym_file_lookup(f, internal);
	assert_int_equal(r->nlines, 0);
	assert_int_equal(sym_file_lookup(f, internal + 1)->nlines, 0);
	symbolizer_free(s);
}

static void test_debuglink(void **state)
{
	NEED_FIXTURES();
	char so[PATH_MAX], root[PATH_MAX];
	uint64_t internal;
	assert_true(elf_symbol(fx_path(so, "libnobid.so"), "symfix_internal", true, &internal));
	fx_path(so, "libnobid.linked.so");

	struct symbolizer *s = symbolizer_new();
	struct sym_file *f = open_file(s, so, "/opt/app/libnobid.so", fx_path(root, "linkroot"));
	assert_non_null(f);
	assert_string_equal(sym_file_build_id(f), "");
	assert_true(sym_file_has_debuginfo(f));
	const struct sym_result *r = sym_file_lookup(f, internal);
	assert_int_equal(r->nlines, 1);
	assert_true(ends_with(r->lines[0].file, "symfix.c"));
	symbolizer_free(s);

	/* A file with the debuglink's name but the wrong CRC is refused. */
	s = symbolizer_new();
	f = open_file(s, so, "/opt/app/libnobid.so", fx_path(root, "badlinkroot"));
	assert_non_null(f);
	assert_false(sym_file_has_debuginfo(f));
	struct sym_stats st;
	symbolizer_stats(s, &st);
	assert_int_equal(st.debug_files, 0);
	assert_int_equal(st.elf_opens, 2);	/* the file and the refused candidate */
	symbolizer_free(s);
}

static void test_cache(void **state)
{
	uint64_t malloc_vaddr, free_vaddr;
	assert_true(elf_symbol(LIBC_PATH, "malloc", false, &malloc_vaddr));
	assert_true(elf_symbol(LIBC_PATH, "free", false, &free_vaddr));
	struct symbolizer *s = symbolizer_new();
	struct sym_file *f = open_file(s, LIBC_PATH, LIBC_PATH, NULL);
	assert_non_null(f);
	const struct sym_result *a = sym_file_lookup(f, malloc_vaddr);
	struct sym_stats before, after;
	symbolizer_stats(s, &before);

	/* Same file through a second fd and another path: same sym_file. */
	int fd1 = open(LIBC_PATH, O_RDONLY), fd2 = open("/usr/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY);
	assert_ptr_equal(symbolizer_file(s, fd1, "/other/libc.so.6", NULL), f);
	assert_ptr_equal(symbolizer_file(s, fd2, LIBC_PATH, "/"), f);
	close(fd1);
	close(fd2);
	assert_ptr_equal(sym_file_lookup(f, malloc_vaddr), a);
	symbolizer_stats(s, &after);
	assert_int_equal(after.elf_opens, before.elf_opens);
	assert_int_equal(after.files, 1);
	assert_int_equal(after.lookups, before.lookups + 1);
	assert_int_equal(after.cache_hits, before.cache_hits + 1);

	/* Interned strings: the same file name is the same pointer. */
	const struct sym_result *b = sym_file_lookup(f, free_vaddr);
	assert_true(b->nlines >= 1);
	assert_ptr_equal(outermost(b)->file, outermost(a)->file);
	/* Two addresses inside one function share the function name. */
	const struct sym_result *c = sym_file_lookup(f, malloc_vaddr + 4);
	assert_ptr_equal(outermost(c)->function, outermost(a)->function);
	symbolizer_free(s);
}

static void test_demangle_libstdcxx(void **state)
{
	uint64_t vaddr;
	if (!elf_symbol(LIBSTDCXX_PATH, "_Znwm", false, &vaddr))
		fail_msg("missing prerequisite: run tools/deps.sh");
	struct symbolizer *s = symbolizer_new();
	struct sym_file *f = open_file(s, LIBSTDCXX_PATH, LIBSTDCXX_PATH, NULL);
	assert_non_null(f);
	const struct sym_result *r = sym_file_lookup(f, vaddr);
	assert_true(r->nlines >= 1);
	assert_string_equal(outermost(r)->function, "operator new(unsigned long)");
	assert_string_equal(outermost(r)->system_name, "_Znwm");
	symbolizer_free(s);
}

static void test_demangle_dwarf(void **state)
{
	if (!fx.cxx_built)
		fail_msg("missing prerequisite: run tools/deps.sh");
	char so[PATH_MAX];
	uint64_t vaddr;
	assert_true(elf_symbol(fx_path(so, "libsymfix_cxx.so"), "_ZN6symfix6Widget4growEi", false, &vaddr));
	struct symbolizer *s = symbolizer_new();
	struct sym_file *f = open_file(s, so, "/usr/lib/libsymfix_cxx.so", NULL);
	assert_non_null(f);
	assert_true(sym_file_has_debuginfo(f));
	const struct sym_result *r = sym_file_lookup(f, vaddr);
	assert_int_equal(r->nlines, 1);
	assert_string_equal(r->lines[0].function, "symfix::Widget::grow(int)");
	assert_string_equal(r->lines[0].system_name, "_ZN6symfix6Widget4growEi");
	assert_true(ends_with(r->lines[0].file, "symfix_cxx.cc"));
	symbolizer_free(s);
}

/* The first address in [start, start + 256) with an inline frame. */
static const struct sym_result *first_inlined(struct sym_file *f, uint64_t start)
{
	for (uint64_t off = 0; off < 256; off++) {
		const struct sym_result *r = sym_file_lookup(f, start + off);
		if (r->nlines == 2)
			return r;
	}
	return NULL;
}

static void test_dwz_alt_file(void **state)
{
	if (!fx.dwz_built)
		fail_msg("missing prerequisite: run tools/deps.sh");
	char so[PATH_MAX], root[PATH_MAX];
	uint64_t entry;
	assert_true(elf_symbol(fx_path(so, "dwz/liba.so"), "symfix_dwz_entry_a", false, &entry));

	/* The inlined function's name lives in the alt file, found under root. */
	struct symbolizer *s = symbolizer_new();
	struct sym_file *f = open_file(s, so, "/usr/lib/liba.so", fx_path(root, "dwzroot"));
	assert_non_null(f);
	const struct sym_result *r = first_inlined(f, entry);
	assert_non_null(r);
	assert_string_equal(r->lines[0].function, "symfix_shared_step");
	assert_true(ends_with(r->lines[0].file, "symfix_dwz.c"));
	assert_string_equal(r->lines[1].function, "symfix_dwz_entry_a");
	struct sym_stats st;
	symbolizer_stats(s, &st);
	assert_int_equal(st.debug_files, 1);
	symbolizer_free(s);

	/* Without it: the frames and lines are still there, the name is not. */
	s = symbolizer_new();
	f = open_file(s, so, "/usr/lib/liba.so", fx_path(root, "emptyroot"));
	r = first_inlined(f, entry);
	assert_non_null(r);
	assert_null(r->lines[0].function);
	assert_true(ends_with(r->lines[0].file, "symfix_dwz.c"));
	assert_string_equal(r->lines[1].function, "symfix_dwz_entry_a");
	symbolizer_free(s);
}

/* ---- many lookups across 50 libraries ---- */

#define NUM_OBJECTS 50
#define LIBDIR "/usr/lib/x86_64-linux-gnu"

struct object {
	char path[PATH_MAX];
	uint64_t exec_start, exec_end;	/* ELF vaddrs of the executable segment */
};

struct object_list {
	struct object obj[NUM_OBJECTS];
	int n;
};

/* Adds path if it is an ELF file with code not listed yet. */
static void add_object(struct object_list *list, const char *path)
{
	char real[PATH_MAX];
	if (list->n == NUM_OBJECTS || !realpath(path, real))
		return;
	for (int i = 0; i < list->n; i++)
		if (!strcmp(list->obj[i].path, real))
			return;
	int fd = open(real, O_RDONLY | O_CLOEXEC);
	Elf *elf = fd >= 0 ? elf_begin(fd, ELF_C_READ, NULL) : NULL;
	size_t phnum = 0;
	if (elf && elf_kind(elf) == ELF_K_ELF && elf_getphdrnum(elf, &phnum) == 0) {
		for (size_t i = 0; i < phnum; i++) {
			GElf_Phdr ph;
			if (!gelf_getphdr(elf, i, &ph) || ph.p_type != PT_LOAD || !(ph.p_flags & PF_X) || !ph.p_memsz)
				continue;
			struct object *o = &list->obj[list->n++];
			snprintf(o->path, sizeof(o->path), "%s", real);
			o->exec_start = ph.p_vaddr;
			o->exec_end = ph.p_vaddr + ph.p_memsz;
			break;
		}
	}
	elf_end(elf);
	if (fd >= 0)
		close(fd);
}

static int add_loaded_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	add_object(arg, info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe");
	return 0;	/* the vDSO has no file: realpath fails */
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* This process's objects, then other libraries from LIBDIR up to 50. */
static void collect_objects(struct object_list *list)
{
	elf_version(EV_CURRENT);
	list->n = 0;
	dl_iterate_phdr(add_loaded_object, list);
	struct dirent **names;
	int n = scandir(LIBDIR, &names, NULL, by_name);
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		if (strstr(names[i]->d_name, ".so") &&
		    snprintf(path, sizeof(path), LIBDIR "/%s", names[i]->d_name) < (int)sizeof(path))
			add_object(list, path);
		free(names[i]);
	}
	if (n >= 0)
		free(names);
}

static uint64_t next_random(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void lookup_pass(struct sym_file **files, const struct object_list *list, unsigned count)
{
	uint64_t rnd = 0x9e3779b97f4a7c15ull;
	for (unsigned i = 0; i < count; i++) {
		int k = i % list->n;
		const struct object *o = &list->obj[k];
		uint64_t vaddr = o->exec_start + next_random(&rnd) % (o->exec_end - o->exec_start);
		const struct sym_result *r = sym_file_lookup(files[k], vaddr);
		for (unsigned j = 0; j < r->nlines; j++)
			assert_true(r->lines[j].function || r->lines[j].file);
	}
}

static int count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

static void test_many_lookups_no_reopen(void **state)
{
	static struct object_list list;
	int fds_before = count_open_fds();
	collect_objects(&list);
	assert_int_equal(list.n, NUM_OBJECTS);
	struct symbolizer *s = symbolizer_new();
	struct sym_file *files[NUM_OBJECTS];
	for (int i = 0; i < list.n; i++) {
		files[i] = open_file(s, list.obj[i].path, list.obj[i].path, "/");
		assert_non_null(files[i]);
	}
	struct sym_stats registered, first, second;
	symbolizer_stats(s, &registered);

	enum { COUNT = 100000 };
	lookup_pass(files, &list, COUNT);
	symbolizer_stats(s, &first);
	/* The only files opened while looking up are debug files, once each. */
	assert_int_equal(first.elf_opens - registered.elf_opens, first.debug_files);
	assert_true(first.debug_files <= first.files);

	lookup_pass(files, &list, COUNT);
	symbolizer_stats(s, &second);
	assert_int_equal(second.elf_opens, first.elf_opens);
	assert_int_equal(second.cache_hits - first.cache_hits, COUNT);
	print_message("%d objects (%" PRIu64 " files, %" PRIu64 " debug files), %d lookups; elf_opens %" PRIu64 "\n",
		      list.n, second.files, second.debug_files, COUNT, second.elf_opens);
	symbolizer_free(s);
	assert_int_equal(count_open_fds(), fds_before);
}

static void test_bad_input(void **state)
{
	struct symbolizer *s = symbolizer_new();
	assert_null(symbolizer_file(s, -1, "x", NULL));
	int fd = open("/etc/hostname", O_RDONLY);
	if (fd >= 0) {
		assert_null(symbolizer_file(s, fd, "/etc/hostname", NULL));
		close(fd);
	}
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	assert_null(symbolizer_file(s, pipefd[0], "pipe", NULL));
	close(pipefd[0]);
	close(pipefd[1]);
	/* A root that does not exist only disables the target-side search. */
	struct sym_file *f = open_file(s, LIBC_PATH, LIBC_PATH, "/nonexistent/root");
	assert_non_null(f);
	assert_true(sym_file_has_debuginfo(f));	/* host /usr/lib/debug fallback */
	assert_int_equal(sym_file_lookup(NULL, 0)->nlines, 0);
	assert_int_equal(sym_file_lookup(f, UINT64_MAX - 16)->nlines, 0);
	struct sym_stats st;
	symbolizer_stats(s, &st);
	assert_int_equal(st.files, 1);
	symbolizer_free(s);
	symbolizer_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_self_noinline),
		cmocka_unit_test(test_self_inline),
		cmocka_unit_test(test_glibc_malloc),
		cmocka_unit_test(test_root_build_id),
		cmocka_unit_test(test_root_no_escape),
		cmocka_unit_test(test_root_without_openat2),
		cmocka_unit_test(test_no_debuginfo_dynsym),
		cmocka_unit_test(test_stripped_internal),
		cmocka_unit_test(test_debuglink),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_demangle_libstdcxx),
		cmocka_unit_test(test_demangle_dwarf),
		cmocka_unit_test(test_dwz_alt_file),
		cmocka_unit_test(test_many_lookups_no_reopen),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
