/* place_probe and find_tail_calls on the allocators installed here, each
 * checked against what the rule gives on objdump's decoding of the same
 * bytes (insn_oracle.h): no offset or instruction of a particular build is
 * written down here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elf/elf_file.h"
#include "probes/placement.h"

#include "insn_oracle.h"

#define RDI PLACE_ARG(0)
#define RSI PLACE_ARG(1)
#define RDX PLACE_ARG(2)

#define LIBC "/lib/x86_64-linux-gnu/libc.so.6"
#define JEMALLOC "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
#define TCMALLOC "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"
#define TCMALLOC_MINIMAL "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"

static struct disasm *dis;

static int open_decoder(void **state)
{
	dis = disasm_new();
	return dis ? 0 : -1;
}

static int close_decoder(void **state)
{
	disasm_free(dis);
	return 0;
}

struct entry_point {
	const char *name;
	unsigned args;
};

static const struct entry_point allocator_functions[] = {
	{ "malloc", RDI }, { "free", RDI }, { "calloc", RDI | RSI }, { "realloc", RDI | RSI },
	{ "reallocarray", RDI | RSI | RDX }, { "posix_memalign", RDI | RSI | RDX },
	{ "aligned_alloc", RDI | RSI }, { "memalign", RDI | RSI }, { "valloc", RDI },
	{ "pvalloc", RDI }, { "_Znwm", RDI }, { "_ZdlPv", RDI }, { "_ZdlPvm", RDI | RSI },
	{ "sdallocx", RDI | RSI | RDX }, { "mallocx", RDI | RSI }, { "rallocx", RDI | RSI | RDX },
	{ "dallocx", RDI | RSI }, { "tc_malloc", RDI }, { "tc_free", RDI }, { "_ZnwmSt11align_val_t", RDI | RSI },
};

static struct elf_file *open_elf(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_msg("%s: not installed (tools/deps.sh installs it)", path);
	struct elf_file *f = elf_file_open(fd);
	close(fd);
	assert_non_null(f);
	return f;
}

/* What memwatch hands place_probe: the symbol's bytes (64 without a size). */
static uint8_t *read_function(struct elf_file *f, const struct elf_sym *sym, size_t *len)
{
	size_t want = sym->size ? sym->size : 64;
	uint8_t *buf = malloc(want);
	assert_non_null(buf);
	ssize_t n = elf_file_read(f, sym->vaddr, buf, want);
	assert_true(n > 0);
	*len = (size_t)n;
	return buf;
}

struct tally {
	int functions, emulated, moved;
};

static void check_placement(const char *path, const struct entry_point *ep, const struct elf_sym *sym,
			    const uint8_t *code, size_t len, struct oracle_fn *fn, struct tally *t)
{
	struct placement p;
	const char *why = "";

	assert_int_equal(place_probe(dis, code, len, sym->vaddr, ep->args, &p), 0);
	long want = oracle_place(fn, ep->args, &why);
	print_message("  %-22s +%-3llu %-9s %-28s objdump: +%ld %s\n", ep->name, (unsigned long long)p.offset,
		      p.emulated ? "emulated" : "stepped", p.insn, want >= 0 ? want : 0L,
		      want >= 0 ? "emulated" : why);
	if (want >= 0 && (!p.emulated || p.offset != (uint64_t)want))
		fail_msg("%s %s: objdump's decoding puts the probe at +%ld (%s), memwatch at +%llu (%s)", path,
			 ep->name, want, why, (unsigned long long)p.offset, p.insn);
	if (want < 0 && (p.emulated || p.offset != 0))
		fail_msg("%s %s: objdump's decoding keeps the first byte (%s), memwatch probes +%llu (%s)", path,
			 ep->name, why, (unsigned long long)p.offset, p.insn);
	t->emulated += p.emulated;
	t->moved += p.offset > 0;
}

static void check_tail_calls(const char *path, const struct entry_point *ep, const struct elf_sym *sym,
			     const uint8_t *code, size_t len, const struct oracle_fn *fn)
{
	uint64_t got[16], want[16];
	size_t n = find_tail_calls(dis, code, len, sym->vaddr, got, 16);
	size_t n_want = oracle_tail_calls(fn, want, 16);

	if (n != n_want)
		fail_msg("%s %s: %zu tail calls, objdump shows %zu", path, ep->name, n, n_want);
	for (size_t i = 0; i < n && i < 16; i++)
		if (got[i] != want[i])
			fail_msg("%s %s: tail call %zu to %#llx, objdump: %#llx", path, ep->name, i,
				 (unsigned long long)got[i], (unsigned long long)want[i]);
}

/* Every allocator entry the library defines: memwatch's placement and tail
 * calls equal the rule's on objdump's decoding. The library must have some
 * (and some emulated placements, else the comparison proves little). */
static void check_library(const char *path)
{
	static struct oracle_fn fn;
	struct elf_file *f = open_elf(path);
	struct tally t = { 0 };

	print_message("%s\n", path);
	for (size_t i = 0; i < sizeof(allocator_functions) / sizeof(allocator_functions[0]); i++) {
		const struct entry_point *ep = &allocator_functions[i];
		struct elf_sym sym;
		size_t len;
		if (!elf_file_find_func(f, ep->name, &sym))
			continue;
		uint8_t *code = read_function(f, &sym, &len);
		if (oracle_decode(path, sym.vaddr, sym.vaddr + len, &fn))
			fail_msg("objdump cannot decode %s in %s", ep->name, path);
		check_placement(path, ep, &sym, code, len, &fn, &t);
		check_tail_calls(path, ep, &sym, code, len, &fn);
		t.functions++;
		free(code);
	}
	elf_file_close(f);
	assert_true(t.functions >= 4);
	assert_true(t.emulated > 0);
}

static void real_glibc(void **state)
{
	check_library(LIBC);
}

static void real_jemalloc(void **state)
{
	check_library(JEMALLOC);
}

static void real_tcmalloc(void **state)
{
	check_library(TCMALLOC);
	check_library(TCMALLOC_MINIMAL);
}

/* glibc's reallocarray tail-jumps to realloc through the PLT (memwatch
 * counts it there), as objdump shows too (check_library). */
static void reallocarray_tail_calls_realloc(void **state)
{
	struct elf_file *f = open_elf(LIBC);
	struct elf_sym sym;
	size_t len;
	assert_true(elf_file_find_func(f, "reallocarray", &sym));
	uint8_t *code = read_function(f, &sym, &len);
	uint64_t targets[4];
	size_t n = find_tail_calls(dis, code, len, sym.vaddr, targets, 4);
	assert_int_equal(n, 1);
	assert_string_equal(elf_file_plt_target(f, targets[0]), "realloc");
	assert_null(elf_file_plt_target(f, targets[0] + 1));
	assert_null(elf_file_plt_target(f, sym.vaddr));
	free(code);
	elf_file_close(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(real_glibc),
		cmocka_unit_test(real_jemalloc),
		cmocka_unit_test(real_tcmalloc),
		cmocka_unit_test(reallocarray_tail_calls_realloc),
	};
	return cmocka_run_group_tests(tests, open_decoder, close_decoder);
}
