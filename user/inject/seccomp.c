#include "inject/seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>

#define MAX_INSNS 4096		/* BPF_MAXINSNS */
#define MAX_FILTERS 64

/* The data a filter reads (struct seccomp_data), little endian. */
static uint32_t load_word(const struct seccomp_data *d, uint32_t off, bool *ok)
{
	uint32_t v;

	if (off > sizeof(*d) - 4 || off % 4) {
		*ok = false;
		return 0;
	}
	memcpy(&v, (const char *)d + off, 4);
	return v;
}

static bool alu(uint16_t op, uint32_t *a, uint32_t v)
{
	switch (op) {
	case BPF_ADD: *a += v; break;
	case BPF_SUB: *a -= v; break;
	case BPF_MUL: *a *= v; break;
	case BPF_DIV: if (!v) return false; *a /= v; break;
	case BPF_MOD: if (!v) return false; *a %= v; break;
	case BPF_AND: *a &= v; break;
	case BPF_OR: *a |= v; break;
	case BPF_XOR: *a ^= v; break;
	case BPF_LSH: *a = v < 32 ? *a << v : 0; break;
	case BPF_RSH: *a = v < 32 ? *a >> v : 0; break;
	case BPF_NEG: *a = -*a; break;
	default: return false;
	}
	return true;
}

static bool jump_taken(uint16_t op, uint32_t a, uint32_t v)
{
	switch (op) {
	case BPF_JEQ: return a == v;
	case BPF_JGT: return a > v;
	case BPF_JGE: return a >= v;
	case BPF_JSET: return a & v;
	default: return false;
	}
}

uint32_t seccomp_run(const struct sock_filter *prog, size_t len, int nr, uint64_t ip, const uint64_t args[6])
{
	struct seccomp_data d = { .nr = nr, .arch = AUDIT_ARCH_X86_64, .instruction_pointer = ip };
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = { 0 };
	bool ok = true;

	memcpy(d.args, args, sizeof(d.args));
	for (size_t pc = 0; pc < len && ok; pc++) {
		const struct sock_filter *f = &prog[pc];
		uint16_t code = f->code;
		uint32_t src = BPF_SRC(code) == BPF_X ? x : f->k;
		switch (BPF_CLASS(code)) {
		case BPF_LD:
			if (BPF_MODE(code) == BPF_ABS && BPF_SIZE(code) == BPF_W)
				a = load_word(&d, f->k, &ok);
			else if (BPF_MODE(code) == BPF_IMM)
				a = f->k;
			else if (BPF_MODE(code) == BPF_MEM && f->k < BPF_MEMWORDS)
				a = mem[f->k];
			else if (BPF_MODE(code) == BPF_LEN)
				a = sizeof(d);
			else
				ok = false;
			break;
		case BPF_LDX:
			if (BPF_MODE(code) == BPF_IMM)
				x = f->k;
			else if (BPF_MODE(code) == BPF_MEM && f->k < BPF_MEMWORDS)
				x = mem[f->k];
			else if (BPF_MODE(code) == BPF_LEN)
				x = sizeof(d);
			else
				ok = false;
			break;
		case BPF_ST:
		case BPF_STX:
			if (f->k >= BPF_MEMWORDS)
				ok = false;
			else
				mem[f->k] = BPF_CLASS(code) == BPF_ST ? a : x;
			break;
		case BPF_ALU:
			ok = alu(BPF_OP(code), &a, src);
			break;
		case BPF_JMP:
			if (BPF_OP(code) == BPF_JA)
				pc += f->k;
			else
				pc += jump_taken(BPF_OP(code), a, src) ? f->jt : f->jf;
			break;
		case BPF_RET:
			return (BPF_RVAL(code) == BPF_A ? a : f->k) & SECCOMP_RET_ACTION_FULL;
		case BPF_MISC:
			if (BPF_MISCOP(code) == BPF_TAX)
				x = a;
			else
				a = x;
			break;
		default:
			ok = false;
		}
	}
	return SECCOMP_RET_KILL_PROCESS;
}

static bool allowed(uint32_t action)
{
	return action == SECCOMP_RET_ALLOW || action == SECCOMP_RET_LOG;
}

int seccomp_allows(pid_t tid, const int *nr, const uint64_t (*args)[6], size_t ncalls, uint64_t ip, int *refused)
{
	struct sock_filter *prog = malloc(MAX_INSNS * sizeof(*prog));
	int err = 0;

	if (!prog)
		return -ENOMEM;
	for (long index = 0; index < MAX_FILTERS && !err; index++) {
		long len = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)index, prog);
		if (len < 0) {
			err = errno == ENOENT ? 1 : -errno;	/* ENOENT: no more filters */
			break;
		}
		for (size_t i = 0; i < ncalls && !err; i++)
			if (!allowed(seccomp_run(prog, (size_t)len, nr[i], ip, args[i]))) {
				*refused = nr[i];
				err = -EPERM;
			}
	}
	free(prog);
	/* EINVAL: the thread has no filter (or the kernel cannot tell). */
	return err == 1 || err == -EINVAL ? 0 : err;
}
