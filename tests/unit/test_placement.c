/* place_probe and find_tail_calls on hand-assembled code (the installed
 * allocators: test_placement_real.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elf/elf_file.h"
#include "probes/placement.h"

/* One decoder for every test (group setup). */
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

#define BASE 0x1000
#define RDI PLACE_ARG(0)
#define RSI PLACE_ARG(1)
#define RDX PLACE_ARG(2)


static struct placement place(const uint8_t *code, size_t len, unsigned mask)
{
	struct placement p;
	assert_int_equal(place_probe(dis, code, len, BASE, mask, &p), 0);
	return p;
}

static void assert_emulated_at(struct placement p, uint64_t offset, const char *insn)
{
	assert_true(p.emulated);
	assert_int_equal(p.offset, offset);
	assert_string_equal(p.insn, insn);
}

static void assert_first_byte_kept(struct placement p, const char *why_part)
{
	assert_false(p.emulated);
	assert_int_equal(p.offset, 0);
	if (!strstr(p.why, why_part))
		fail_msg("why \"%s\" lacks \"%s\"", p.why, why_part);
}

/* ---- hand-assembled sequences ---- */

static void glibc_malloc_start(void **state)
{
	static const uint8_t code[] = {
		0x41, 0x54,				/* push %r12 */
		0x55,					/* push %rbp */
		0x53,					/* push %rbx */
		0x48, 0x89, 0xfb,			/* mov %rdi,%rbx */
		0x48, 0x83, 0xec, 0x10,			/* sub $0x10,%rsp */
		0x80, 0x3d, 0x46, 0x1b, 0x14, 0x00, 0x00, /* cmpb $0x0,0x141b46(%rip) */
		0x0f, 0x84, 0xf8, 0x01, 0x00, 0x00,	/* je +0x1f8 */
		0x48, 0x83, 0xc4, 0x10,			/* add $0x10,%rsp */
		0x5b, 0x5d, 0x41, 0x5c, 0xc3,		/* pop; pop; pop; ret */
	};
	assert_emulated_at(place(code, sizeof(code), RDI), 0, "push r12");
}

static void glibc_free_start(void **state)
{
	static const uint8_t code[] = {
		0x48, 0x85, 0xff,			/* 0: test %rdi,%rdi */
		0x74, 0x10,				/* 3: je 0x15 */
		0x55,					/* 5: push %rbp */
		0x48, 0x8d, 0x77, 0xf0,			/* 6: lea -0x10(%rdi),%rsi */
		0x53,					/* a: push %rbx */
		0x48, 0x83, 0xec, 0x18,			/* b: sub $0x18,%rsp */
		0x48, 0x83, 0xc4, 0x18,			/* f: add $0x18,%rsp */
		0x5b, 0x5d,				/* 13: pop %rbx; pop %rbp */
		0xc3,					/* 15: ret */
	};
	assert_emulated_at(place(code, sizeof(code), RDI), 3, "je 0x1015");
}

static void jemalloc_malloc_start(void **state)
{
	static const uint8_t code[] = {
		0x48, 0x81, 0xff, 0x00, 0x10, 0x00, 0x00, /* cmp $0x1000,%rdi */
		0x77, 0x04,				/* ja +4 */
		0x48, 0x8d, 0x47, 0x07,			/* lea 0x7(%rdi),%rax */
		0xc3,
	};
	assert_emulated_at(place(code, sizeof(code), RDI), 7, "ja 0x100d");
}

static void posix_memalign_start(void **state)
{
	static const uint8_t code[] = {
		0x80, 0x3d, 0x01, 0x02, 0x14, 0x00, 0x00, /* cmpb $0x0,0x140201(%rip) */
		0x41, 0x54,				/* push %r12 */
		0x49, 0x89, 0xd4,			/* mov %rdx,%r12 */
		0x41, 0x5c, 0xc3,			/* pop %r12; ret */
	};
	assert_emulated_at(place(code, sizeof(code), RDI | RSI | RDX), 7, "push r12");
}

static void mul_writes_argument(void **state)
{
	static const uint8_t code[] = {
		0x48, 0x89, 0xf0,			/* mov %rsi,%rax */
		0x48, 0xf7, 0xe2,			/* mul %rdx */
		0x48, 0x89, 0xc6,			/* mov %rax,%rsi */
		0x70, 0x05,				/* jo +5 */
		0xe9, 0x00, 0x00, 0x00, 0x00,		/* jmp (tail call) */
		0x31, 0xc0, 0xc3,			/* xor %eax,%eax; ret */
	};
	struct placement p = place(code, sizeof(code), RDI | RSI | RDX);
	assert_first_byte_kept(p, "writes rdx (argument 2)");
	assert_string_equal(p.insn, "mov rax, rsi");
	/* Without rdx among the arguments read, mul may be passed, not mov %rax,%rsi. */
	assert_first_byte_kept(place(code, sizeof(code), RDI | RSI), "writes rsi (argument 1)");
	assert_emulated_at(place(code, sizeof(code), RDI), 9, "jo 0x1010");
}

static void stack_adjust_first(void **state)
{
	static const uint8_t code[] = {
		0x48, 0x83, 0xec, 0x18,			/* sub $0x18,%rsp */
		0x53, 0xc3,				/* push %rbx; ret */
	};
	assert_first_byte_kept(place(code, sizeof(code), 0), "moves rsp");
}

static void candidate_is_branch_target(void **state)
{
	static const uint8_t code[] = {
		0x48, 0x85, 0xff,			/* 0: test %rdi,%rdi */
		0x74, 0x04,				/* 3: je 9 */
		0x55, 0x5d,				/* 5: push %rbp; pop %rbp */
		0xeb, 0xfa,				/* 7: jmp 3 */
		0xc3,					/* 9: ret */
	};
	assert_first_byte_kept(place(code, sizeof(code), RDI), "branch inside the function lands at +3");
}

static void branch_target_before_candidate(void **state)
{
	static const uint8_t code[] = {
		0x48, 0x89, 0xf0,			/* 0: mov %rsi,%rax */
		0x48, 0x85, 0xff,			/* 3: test %rdi,%rdi */
		0x74, 0x04,				/* 6: je 0xc */
		0x55, 0x5d,				/* 8: push %rbp; pop %rbp */
		0xeb, 0xf7,				/* a: jmp 3 */
		0xc3,					/* c: ret */
	};
	assert_first_byte_kept(place(code, sizeof(code), RDI), "lands at +3");
}

static void loop_back_to_entry_is_harmless(void **state)
{
	static const uint8_t code[] = {
		0x48, 0x85, 0xff,			/* 0: test %rdi,%rdi */
		0x74, 0x04,				/* 3: je 9 */
		0x55, 0x5d,				/* 5: push %rbp; pop %rbp */
		0xeb, 0xf7,				/* 7: jmp 0 */
		0xc3,					/* 9: ret */
	};
	assert_emulated_at(place(code, sizeof(code), RDI), 3, "je 0x1009");
}

static void endbr64_then_push(void **state)
{
	static const uint8_t code[] = {
		0xf3, 0x0f, 0x1e, 0xfa,			/* endbr64: single-stepped */
		0x41, 0x54,				/* push %r12 */
		0xc3,
	};
	assert_emulated_at(place(code, sizeof(code), RDI), 4, "push r12");
}

static void nops_the_kernel_knows(void **state)
{
	static const uint8_t nopl5[] = { 0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3 };
	static const uint8_t xchg_ax[] = { 0x66, 0x90, 0xc3 };
	static const uint8_t pause_[] = { 0xf3, 0x90, 0xc3 };
	/* nopl (%rax,%rax,1) in 4 bytes is no x86_nops[] entry: single-stepped. */
	static const uint8_t nopl4_sib[] = { 0x0f, 0x1f, 0x04, 0x00, 0x53, 0xc3 };
	/* cs-prefixed: the kernel refuses to probe it. */
	static const uint8_t cs_nopw[] = { 0x2e, 0x66, 0x0f, 0x1f, 0x04, 0x00, 0x53, 0xc3 };
	assert_emulated_at(place(nopl5, sizeof(nopl5), 0), 0, "nop dword ptr [rax + rax]");
	assert_emulated_at(place(xchg_ax, sizeof(xchg_ax), 0), 0, "nop");
	assert_emulated_at(place(pause_, sizeof(pause_), 0), 0, "pause");
	assert_emulated_at(place(nopl4_sib, sizeof(nopl4_sib), 0), 4, "push rbx");
	assert_emulated_at(place(cs_nopw, sizeof(cs_nopw), 0), 6, "push rbx");
}

static void xchg_r8_is_no_nop(void **state)
{
	/* 41 90 has opcode 0x90, which the kernel would wrongly emulate as a nop. */
	static const uint8_t code[] = { 0x41, 0x90, 0x53, 0xc3 };
	assert_emulated_at(place(code, sizeof(code), RDI), 2, "push rbx");
	assert_first_byte_kept(place(code, sizeof(code), PLACE_ARG(4)), "writes r8 (argument 4)");
}

static void pushes_the_kernel_skips(void **state)
{
	static const uint8_t rexw_push[] = { 0x48, 0x53, 0xc3 };	/* rex.W push %rbx */
	static const uint8_t push_imm[] = { 0x6a, 0x00, 0xc3 };		/* push $0 */
	assert_first_byte_kept(place(rexw_push, sizeof(rexw_push), 0), "moves rsp");
	assert_first_byte_kept(place(push_imm, sizeof(push_imm), 0), "moves rsp");
}

static void prefixed_branches(void **state)
{
	/* 66 jcc: the kernel refuses it; 2e jcc (branch hint): refused too. */
	static const uint8_t opsize_jcc[] = { 0x85, 0xff, 0x66, 0x74, 0x00, 0xc3 };
	static const uint8_t hint_jcc[] = { 0x85, 0xff, 0x2e, 0x74, 0x00, 0xc3 };
	static const uint8_t bnd_jmp[] = { 0x85, 0xff, 0xf2, 0xe9, 0x00, 0x00, 0x00, 0x00 };
	assert_first_byte_kept(place(opsize_jcc, sizeof(opsize_jcc), RDI), "leaves the entry path");
	assert_first_byte_kept(place(hint_jcc, sizeof(hint_jcc), RDI), "leaves the entry path");
	assert_emulated_at(place(bnd_jmp, sizeof(bnd_jmp), RDI), 2, "bnd jmp 0x1008");
}

static void return_address_slot(void **state)
{
	static const uint8_t to_slot[] = { 0x48, 0x89, 0x04, 0x24, 0x53, 0xc3 };	/* mov %rax,(%rsp) */
	static const uint8_t red_zone[] = { 0x48, 0x89, 0x7c, 0x24, 0xf8, 0x53, 0xc3 }; /* mov %rdi,-8(%rsp) */
	assert_first_byte_kept(place(to_slot, sizeof(to_slot), 0), "return address");
	assert_emulated_at(place(red_zone, sizeof(red_zone), RDI), 5, "push rbx");
}

static void call_and_ret(void **state)
{
	static const uint8_t call[] = { 0x31, 0xc0, 0xe8, 0x00, 0x00, 0x00, 0x00, 0xc3 };
	static const uint8_t ret[] = { 0x31, 0xc0, 0xc3 };
	static const uint8_t indirect[] = { 0x31, 0xc0, 0xff, 0xe0 };	/* jmp *%rax */
	assert_emulated_at(place(call, sizeof(call), RDI), 2, "call 0x1007");
	assert_first_byte_kept(place(ret, sizeof(ret), RDI), "ret at +2 leaves");
	assert_first_byte_kept(place(indirect, sizeof(indirect), RDI), "jmp rax at +2 leaves");
}

static void scan_limit_and_end(void **state)
{
	uint8_t code[2 * 17 + 2];
	for (int i = 0; i < 17; i++) {
		code[2 * i] = 0x89;	/* mov %eax,%eax */
		code[2 * i + 1] = 0xc0;
	}
	code[34] = 0x53;
	code[35] = 0xc3;
	assert_first_byte_kept(place(code, sizeof(code), RDI), "first 16");
	assert_first_byte_kept(place(code, 6, RDI), "code ends at +6");
	assert_first_byte_kept(place(code, 5, RDI), "cannot decode +4");
}

static void bad_arguments(void **state)
{
	static const uint8_t code[] = { 0xc3 };
	struct placement p;
	assert_int_equal(place_probe(dis, NULL, 1, BASE, 0, &p), -EINVAL);
	assert_int_equal(place_probe(dis, code, 0, BASE, 0, &p), -EINVAL);
	assert_int_equal(place_probe(dis, code, 1, BASE, 0, NULL), -EINVAL);
	assert_int_equal(place_probe(NULL, code, 1, BASE, 0, &p), -EINVAL);
}

static void tail_calls_synthetic(void **state)
{
	static const uint8_t code[] = {
		0x48, 0x85, 0xff,			/* 0: test %rdi,%rdi */
		0x74, 0x05,				/* 3: je 0xa */
		0xe9, 0xf6, 0x0f, 0x00, 0x00,		/* 5: jmp 0x2000 */
		0xeb, 0x00,				/* a: jmp 0xc (inside) */
		0xe9, 0xef, 0x0f, 0x00, 0x00,		/* c: jmp 0x2000 again */
		0xe9, 0xea, 0x1f, 0x00, 0x00,		/* 11: jmp 0x3000 */
		0x0f, 0x85, 0xe4, 0x2f, 0x00, 0x00,	/* 16: jne 0x4000: conditional, not counted */
	};
	uint64_t targets[4];
	assert_int_equal(find_tail_calls(dis, code, sizeof(code), BASE, targets, 4), 2);
	assert_int_equal(targets[0], 0x2000);
	assert_int_equal(targets[1], 0x3000);
	assert_int_equal(find_tail_calls(dis, code, sizeof(code), BASE, targets, 1), 2);
	assert_int_equal(targets[0], 0x2000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(glibc_malloc_start),
		cmocka_unit_test(glibc_free_start),
		cmocka_unit_test(jemalloc_malloc_start),
		cmocka_unit_test(posix_memalign_start),
		cmocka_unit_test(mul_writes_argument),
		cmocka_unit_test(stack_adjust_first),
		cmocka_unit_test(candidate_is_branch_target),
		cmocka_unit_test(branch_target_before_candidate),
		cmocka_unit_test(loop_back_to_entry_is_harmless),
		cmocka_unit_test(endbr64_then_push),
		cmocka_unit_test(nops_the_kernel_knows),
		cmocka_unit_test(xchg_r8_is_no_nop),
		cmocka_unit_test(pushes_the_kernel_skips),
		cmocka_unit_test(prefixed_branches),
		cmocka_unit_test(return_address_slot),
		cmocka_unit_test(call_and_ret),
		cmocka_unit_test(scan_limit_and_end),
		cmocka_unit_test(bad_arguments),
		cmocka_unit_test(tail_calls_synthetic),
	};
	return cmocka_run_group_tests(tests, open_decoder, close_decoder);
}
