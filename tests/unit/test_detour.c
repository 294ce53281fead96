/* Detours (user/inject/detour.c): plans for the Debian allocators'
 * entries, refusals of unsafe forms, and relocated code that really runs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "inject/detour.h"
#include "elf/elf_file.h"

#define BASE 0x400000
#define RDI DETOUR_ARG(0)
#define RSI DETOUR_ARG(1)

#define LIBC "/lib/x86_64-linux-gnu/libc.so.6"
#define JEMALLOC "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
#define TCMALLOC "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"

static int plan(const uint8_t *code, size_t len, unsigned flags, struct detour *d)
{
	return detour_plan(code, len, BASE, flags, d);
}

static void assert_refused(const uint8_t *code, size_t len, unsigned flags, const char *why_part)
{
	struct detour d;

	assert_int_equal(plan(code, len, flags, &d), -EPERM);
	if (!strstr(d.why, why_part))
		fail_msg("why \"%s\" lacks \"%s\"", d.why, why_part);
}

/* ---- plans for real entries ---- */

static void plan_entry(const char *path, const char *name, unsigned flags, struct detour *d)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct elf_file *elf;
	struct elf_sym sym;
	uint8_t code[4096];

	if (fd < 0)
		skip();
	elf = elf_file_open(fd);
	close(fd);
	assert_non_null(elf);
	assert_true(elf_file_find_func(elf, name, &sym));
	ssize_t n = elf_file_read(elf, sym.vaddr, code, sym.size < sizeof(code) ? sym.size : sizeof(code));
	assert_true(n > 0);
	assert_int_equal(detour_plan(code, n, sym.vaddr, flags, d), 0);
	elf_file_close(elf);
}

static void glibc_entries(void **state)
{
	struct detour d;

	plan_entry(LIBC, "malloc", RDI, &d);	/* push %r12 | push; push; mov */
	assert_int_equal(d.len0, 2);
	assert_int_equal(d.wlen, 5);
	assert_int_equal(d.undo, UNDO_PUSH);
	plan_entry(LIBC, "free", RDI, &d);	/* test %rdi,%rdi | je rel32 */
	assert_int_equal(d.len0, 3);
	assert_int_equal(d.wlen, 6);
	assert_int_equal(d.undo, UNDO_NONE);
	plan_entry(LIBC, "memalign", RSI, &d);	/* cmpb $0,x(%rip) | je rel8; jmp rel32 */
	assert_int_equal(d.len0, 7);
	assert_int_equal(d.wlen, 7);
	assert_non_null(strstr(d.text, "rip"));
}

static void jemalloc_and_tcmalloc_entries(void **state)
{
	struct detour d;

	plan_entry(JEMALLOC, "malloc", RDI, &d);	/* cmp $0x1000,%rdi | ja rel32 */
	assert_int_equal(d.len0, 7);
	assert_int_equal(d.wlen, 6);
	plan_entry(JEMALLOC, "free", RDI, &d);	/* mov %rdi,%rax | mov x(%rip),%rdx */
	assert_int_equal(d.len0, 3);
	assert_int_equal(d.wlen, 7);
	plan_entry(TCMALLOC, "malloc", RDI, &d);	/* mov x(%rip),%rax | mov; test */
	assert_int_equal(d.len0, 7);
	assert_true(d.wlen >= 5);
}

/* ---- refusals ---- */

static void refuses_unsafe_first_instructions(void **state)
{
	static const uint8_t call0[] = { 0xe8, 0, 0, 0, 0, 0x90, 0x90, 0x90, 0x90, 0x90, 0xc3 };
	static const uint8_t writes_arg[] = { 0x48, 0x89, 0xf7, 0x90, 0x90, 0x90, 0x90, 0x90, 0xc3 };	/* mov %rsi,%rdi */
	static const uint8_t read_write[] = { 0x48, 0x83, 0xc0, 0x01, 0x90, 0x90, 0x90, 0x90, 0x90, 0xc3 };	/* add $1,%rax */
	static const uint8_t reads_r11[] = { 0x4c, 0x89, 0xd8, 0x90, 0x90, 0x90, 0x90, 0x90, 0xc3 };	/* mov %r11,%rax */
	static const uint8_t stores[] = { 0x48, 0x89, 0x3e, 0x90, 0x90, 0x90, 0x90, 0x90, 0xc3 };	/* mov %rdi,(%rsi) */

	assert_refused(call0, sizeof(call0), RDI, "transfers control");
	assert_refused(writes_arg, sizeof(writes_arg), RDI, "overwrites an argument");
	assert_refused(read_write, sizeof(read_write), RDI, "reads what it writes");
	assert_refused(reads_r11, sizeof(reads_r11), RDI, "which the stub uses");
	assert_refused(stores, sizeof(stores), RDI, "writes memory");
}

static void refuses_unsafe_windows(void **state)
{
	static const uint8_t call_in_window[] = { 0x53, 0xe8, 0, 0, 0, 0, 0x5b, 0xc3 };	/* push; call; pop; ret */
	static const uint8_t ends_early[] = { 0x53, 0x5b, 0xc3 };	/* push; pop; ret */
	static const uint8_t indirect[] = { 0x53, 0xff, 0xe0, 0x90, 0x90, 0x90, 0x90 };	/* push; jmp *%rax */

	assert_refused(call_in_window, sizeof(call_in_window), RDI, "call");
	assert_refused(ends_early, sizeof(ends_early), RDI, "ret");
	assert_refused(indirect, sizeof(indirect), RDI, "jmp");
}

static void finds_branches_into_windows(void **state)
{
	/* 0: push %rbx; 1: mov %rdi,%rbx; 4: nop; 5: jne 1 (into the window) */
	static const uint8_t code[] = { 0x53, 0x48, 0x89, 0xfb, 0x90, 0x75, 0xfa, 0xc3 };
	uint64_t targets[8], sources[4];
	ssize_t n = detour_branch_targets(code, sizeof(code), BASE, targets, 8);

	assert_int_equal(n, 1);
	assert_int_equal(targets[0], BASE + 1);
	/* A call rel32 at 0x10 to BASE+2, among other bytes. */
	uint8_t text[32] = { 0 };
	int32_t rel = (int32_t)((BASE + 2) - (BASE + 0x10 + 5));
	text[0x10] = 0xe8;
	memcpy(text + 0x11, &rel, 4);
	assert_int_equal(detour_text_branch_sources(text, sizeof(text), BASE, BASE + 1, BASE + 6, 0, 0, sources, 4), 1);
	assert_int_equal(sources[0], BASE + 0x10);
	assert_int_equal(detour_text_branch_sources(text, sizeof(text), BASE, BASE + 1, BASE + 6, BASE + 0x10,
						    BASE + 0x20, sources, 4), 0);
}

/* ---- relocated code, run ---- */

/* flag_fn(): 1 if mw_flag is 0, else 2. The detour keeps the RIP-relative
 * cmpb in place; its original replays it, then a rel8 je widened to rel32,
 * then jumps back. */
__asm__(".text\n"
	".globl mw_flag_fn\n"
	".type mw_flag_fn, @function\n"
	"mw_flag_fn:\n"
	"	cmpb $0, mw_flag(%rip)\n"
	"	je 1f\n"
	"	movl $2, %eax\n"
	"	ret\n"
	"1:	movl $1, %eax\n"
	"	ret\n"
	".size mw_flag_fn, . - mw_flag_fn\n");
int mw_flag_fn(void);
volatile char mw_flag;

/* An executable page within rel32 reach of the test's own code. */
static uint8_t *near_page(void *code)
{
	uintptr_t want = ((uintptr_t)code & ~0xfffffull) - (64 << 20);

	for (int i = 0; i < 64; i++, want -= 1 << 20) {
		void *p = mmap((void *)want, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p != MAP_FAILED)
			return p;
	}
	return NULL;
}

static void relocated_original_runs(void **state)
{
	struct detour d;
	uint8_t *page = near_page((void *)mw_flag_fn);
	uint64_t entry = (uint64_t)(uintptr_t)mw_flag_fn;

	assert_non_null(page);
	assert_int_equal(detour_plan((const uint8_t *)mw_flag_fn, 16, entry, 0, &d), 0);
	assert_int_equal(d.len0, 7);	/* cmpb $0, x(%rip) */
	assert_int_equal(d.wlen, 7);	/* je rel8; movl $2, %eax */
	ssize_t n = detour_original(&d, entry, (uint64_t)(uintptr_t)page, page, 4096);
	assert_true(n > 0);
	/* The je grew from 2 to 6 bytes; a jmp back follows. */
	assert_int_equal(n, 7 + 6 + 5 + 5);
	int (*original)(void) = (int (*)(void))page;
	mw_flag = 0;
	assert_int_equal(original(), mw_flag_fn());
	assert_int_equal(original(), 1);
	mw_flag = 1;
	assert_int_equal(original(), 2);
	munmap(page, 4096);
}

static void out_of_reach_is_refused(void **state)
{
	struct detour d;
	uint8_t buf[64];
	uint64_t entry = (uint64_t)(uintptr_t)mw_flag_fn;

	assert_int_equal(detour_plan((const uint8_t *)mw_flag_fn, 16, entry, 0, &d), 0);
	assert_int_equal(detour_original(&d, entry, entry + (3ull << 31), buf, sizeof(buf)), -ERANGE);
	assert_int_equal(detour_patch(&d, entry, entry + (3ull << 31), buf), -ERANGE);
}

static void prelude_and_patch(void **state)
{
	static const uint8_t code[] = { 0x41, 0x54, 0x55, 0x53, 0x48, 0x89, 0xfb, 0xc3 };	/* glibc malloc */
	struct detour d;
	uint8_t out[64], patch[DETOUR_MAX_BYTES];

	assert_int_equal(plan(code, sizeof(code), RDI, &d), 0);
	ssize_t n = detour_prelude(&d, BASE + 0x1000, BASE + 0x1100, BASE + 0x2000, out, sizeof(out));
	assert_int_equal(n, 5 + 7 + 5);
	static const uint8_t lea8[] = { 0x48, 0x8d, 0x64, 0x24, 0x08 };	/* lea 8(%rsp),%rsp */
	assert_memory_equal(out, lea8, 5);
	assert_int_equal(out[5], 0x4c);	/* lea desc(%rip),%r11 */
	assert_int_equal(out[12], 0xe9);	/* jmp stub */
	assert_int_equal(detour_patch(&d, BASE, BASE + 0x1000, patch), 0);
	assert_int_equal(patch[0], 0xe9);
	int32_t rel;
	memcpy(&rel, patch + 1, 4);
	assert_int_equal(BASE + d.len0 + 5 + rel, BASE + 0x1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(glibc_entries),
		cmocka_unit_test(jemalloc_and_tcmalloc_entries),
		cmocka_unit_test(refuses_unsafe_first_instructions),
		cmocka_unit_test(refuses_unsafe_windows),
		cmocka_unit_test(finds_branches_into_windows),
		cmocka_unit_test(relocated_original_runs),
		cmocka_unit_test(out_of_reach_is_refused),
		cmocka_unit_test(prelude_and_patch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
