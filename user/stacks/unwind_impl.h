/* What the unwinder's files share (unwind.c: the driver and libdwfl's
 * callbacks; unwind_dwfl.c: each process's Dwfl; unwind_rules.c: the rule
 * cache and the fast path). Not for use outside them. */
#ifndef MW_UNWIND_IMPL_H
#define MW_UNWIND_IMPL_H

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "elf/debugfile.h"
#include "proc/process.h"
#include "stacks/unwind.h"
#include "util/hashmap.h"

#define REG_BP 6
#define REG_SP 7
#define REG_PC 16
#define NREGS 17		/* ebl_frame_nregs for x86_64: libdwfl unwinds 0..16 */
/* Rule cache: entries before it starts over, and its first size. */
#define RULE_CACHE_MAX (1u << 19)
#define RULE_CACHE_MIN_CAP 1024
/* After a refresh that explained no unknown address, the next one waits this
 * long: garbage return addresses must not cost a maps read per sample. */
#define QUIET_REFRESH_NS (10 * 1000 * 1000ull)

/* Truncation reasons unwind_stack compares by address. */
extern const char TRUNC_SNAPSHOT[];
extern const char TRUNC_DEPTH[];
extern const char TRUNC_NO_FILE[];
extern const char TRUNC_UNREADABLE[];
extern const char TRUNC_NOMEM[];
extern const char TRUNC_FAILED[];


/* ---- unwind rules: what the fast path knows about one pc ---- */

enum rule_kind {
	RULE_CFA,	/* CFA = rsp|rbp + cfa_off; return address at CFA + ra_off */
	RULE_OUTERMOST,	/* the return address is undefined: the chain ends, complete */
	RULE_NOCFI,	/* the module has no CFI for the address */
	RULE_COMPLEX,	/* anything else: libdwfl's job */
};

enum {
	RF_CFA_BP = 1,		/* the CFA is rbp + cfa_off, else rsp + cfa_off */
	RF_BP_SAVED = 2,	/* the caller's rbp is at CFA + bp_off */
	RF_BP_UNDEF = 4,	/* the caller's rbp is unknown; neither flag: same value */
	RF_SIGNAL = 8,		/* the CIE is a signal frame's (then RULE_COMPLEX) */
	RF_FROM_EH = 16,	/* from .eh_frame: the same in every process */
	RF_HAD_DWARF = 32,	/* not from .eh_frame, and the module had .debug_frame CFI */
};

struct rule {
	uint64_t vaddr;		/* the address looked up, in the file: pc (- 1) - load bias */
	uint32_t file;		/* file id; 0: empty slot */
	uint8_t kind, flags;
	int16_t ra_off;
	int32_t cfa_off;
	int16_t bp_off;
	/* libdwfl reads every register saved in memory, at CFA + [rd_lo, rd_hi]
	 * (8 bytes each); rd_lo > rd_hi: none. */
	int16_t rd_lo, rd_hi;
};

/* Open addressing, linear probing; cleared when full. */
struct rule_cache {
	struct rule *slots;
	size_t cap, len;	/* cap: a power of two, or 0 */
};

/* A module of a process's Dwfl, for the fast path. */
struct unw_mod {
	uint64_t start, end;	/* [start, end): dwfl_addrmodule finds mod there */
	uint64_t bias;		/* of the main file */
	Dwfl_Module *mod;
	uint32_t file;		/* rule cache id of the file; 0: none (no caching) */
	int8_t dwarf;		/* .debug_frame CFI: -1 not looked up, 0 none, 1 found */
	const char *no_cfi;	/* "[truncated: no unwind info for NAME]", made on first use */
};

/* An executable file mapping, as reported to a Dwfl. */
struct exec_map {
	uint64_t start, end, offset;
	const struct objfile *obj;
	uint64_t bias;		/* runtime address - ELF vaddr */
	bool has_bias;		/* no PT_LOAD matches the mapping: not reported */
};

struct unw_proc {
	struct unwinder *owner;
	struct process *proc;
	pid_t pid;
	uint64_t start_time;
	unsigned generation;	/* of proc->maps when exec_maps was last checked */
	bool checked;		/* exec_maps and dwfl match generation */
	Dwfl *dwfl;		/* NULL: building it failed */
	const char *build_failure;	/* why, as a truncation reason */
	struct exec_map *exec_maps;
	size_t n_exec_maps;
	struct unw_mod *mods;	/* the Dwfl's modules, sorted by start */
	size_t n_mods;
	struct unw_mod *last_mod;	/* where the last lookup landed */
	struct debug_root root;	/* the target's, opened when first needed */
	bool root_tried;
	uint64_t quiet_since_ns;	/* last refresh that changed nothing */
};

/* The unwind in progress. */
struct sample {
	struct unw_proc *up;
	const uint64_t *regs;
	const uint8_t *stack;
	uint64_t stack_lo, stack_hi;	/* [rsp, rsp + stack_len) */
	uint64_t stack_limit;		/* end of the mapping holding rsp; 0: not looked up */
	struct unwind_result *out;
	bool unknown_addr;	/* a pc in no module and no mapping */
	/* Reads that failed while unwinding the newest frame. */
	bool read_past_snapshot, read_failed;
	const char *abort_reason;
	bool signal;		/* strict: the newest frame is a signal frame's caller */
	/* Return addresses a pending uretprobe replaced: slot -> original. */
	const uint64_t *uret_slot, *uret_orig;
	unsigned nuret;
};

struct unwinder {
	struct hmap procs;	/* pid -> struct unw_proc */
	struct hmap reasons;	/* interned "[truncated: ...]" strings */
	struct sample cur;
	struct unwind_stats stats;
	bool fast, strict;
	struct rule_cache rules;
	struct rule scratch;	/* a rule that could not be cached */
	struct hmap files;	/* file key (char *, "b:BUILD-ID" or "f:...") -> file id */
	uint32_t next_file;
	const uint64_t *uret_slot, *uret_orig;	/* for the next unwind_stack */
	unsigned nuret;
};

/* A read memory_read would serve from the snapshot. */
static inline bool unw_snapshot_read(const struct sample *s, uint64_t addr, uint64_t *result)
{
	if (addr >= s->stack_lo && addr < s->stack_hi && s->stack_hi - addr >= sizeof(*result)) {
		memcpy(result, s->stack + (addr - s->stack_lo), sizeof(*result));
		for (unsigned i = 0; i < s->nuret; i++)
			if (s->uret_slot[i] == addr)
				*result = s->uret_orig[i];
		return true;
	}
	return false;
}

/* unwind.c */
extern const Dwfl_Thread_Callbacks unw_thread_callbacks;
/* "[truncated: WHAT DETAIL]", interned for the unwinder's life. */
const char *unw_reason(struct unwinder *u, const char *what, const char *detail);
const char *unw_dwfl_reason(struct unwinder *u, int err);
bool unw_past_snapshot(struct sample *s, uint64_t addr);
bool unw_read_from_file(const struct process *p, uint64_t addr, Dwarf_Word *result);

/* unwind_dwfl.c */
int unw_ensure_dwfl(struct unwinder *u, struct unw_proc *up, struct process *p);
void unw_drop_dwfl(struct unw_proc *up);
bool unw_same_exec_maps(const struct unw_proc *up, const struct process *p);

/* unwind_rules.c */
struct unw_mod *unw_mod_at(struct unw_proc *up, uint64_t addr);
bool unw_module_has_cfi(Dwfl_Module *mod, uint64_t pc, bool *signal);
const char *unw_no_cfi_reason(struct unwinder *u, Dwfl_Module *mod);
bool unw_fast(struct unwinder *u, struct unw_proc *up, struct unwind_result *out);
const char *unw_strict_stop(struct unwinder *u, struct sample *s, uint64_t pc, bool first);

#endif
