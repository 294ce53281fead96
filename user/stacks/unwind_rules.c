/* The unwinder's fast path: a cache of per-pc rules decoded from the CFI
 * libdwfl reads (see unwind.c), applied to the snapshot directly; and the
 * strict mode's CFI checks. */
#include "stacks/unwind_impl.h"

#include <dwarf.h>
#include <stdlib.h>

/* ---- CFI lookups ---- */

static bool cfi_covers(Dwarf_CFI *cfi, Dwarf_Addr bias, uint64_t pc, bool *signal)
{
	Dwarf_Frame *frame;
	Dwarf_Addr start, end;
	if (!cfi || dwarf_cfi_addrframe(cfi, pc - bias, &frame) != 0)
		return false;
	if (signal && dwarf_frame_info(frame, &start, &end, signal) < 0)
		*signal = false;
	free(frame);
	return true;
}

/* As libdwfl looks for CFI: .eh_frame, then .debug_frame. */
bool unw_module_has_cfi(Dwfl_Module *mod, uint64_t pc, bool *signal)
{
	Dwarf_Addr bias;
	Dwarf_CFI *cfi = dwfl_module_eh_cfi(mod, &bias);
	if (cfi_covers(cfi, bias, pc, signal))
		return true;
	cfi = dwfl_module_dwarf_cfi(mod, &bias);
	return cfi_covers(cfi, bias, pc, signal);
}

const char *unw_no_cfi_reason(struct unwinder *u, Dwfl_Module *mod)
{
	const char *name = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	return unw_reason(u, "no unwind info for ", name ? name : "?");
}

/* ---- the rule cache ---- */

static inline size_t rule_slot(uint32_t file, uint64_t vaddr, size_t cap)
{
	uint64_t h = (vaddr ^ ((uint64_t)file << 44) ^ file) * 0x9e3779b97f4a7c15ull;
	return (h ^ (h >> 31)) & (cap - 1);
}

static bool rules_grow(struct rule_cache *c)
{
	size_t cap = c->cap ? 2 * c->cap : RULE_CACHE_MIN_CAP;
	struct rule *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return false;
	for (size_t i = 0; i < c->cap; i++) {
		const struct rule *r = &c->slots[i];
		if (!r->file)
			continue;
		size_t j = rule_slot(r->file, r->vaddr, cap);
		while (slots[j].file)
			j = (j + 1) & (cap - 1);
		slots[j] = *r;
	}
	free(c->slots);
	c->slots = slots;
	c->cap = cap;
	return true;
}

/* A free slot for a new entry (the cache full: emptied first); NULL when
 * out of memory. */
static struct rule *rules_new_slot(struct rule_cache *c, uint32_t file, uint64_t vaddr)
{
	if (c->len >= RULE_CACHE_MAX) {
		memset(c->slots, 0, c->cap * sizeof(*c->slots));
		c->len = 0;
	}
	if ((c->len + 1) * 4 > c->cap * 3 && !rules_grow(c))
		return NULL;
	size_t i = rule_slot(file, vaddr, c->cap);
	while (c->slots[i].file)
		i = (i + 1) & (c->cap - 1);
	c->len++;
	return &c->slots[i];
}

/* One register's rule, as dwarf_frame_register describes it. */
enum reg_rule { REG_UNDEF, REG_SAME, REG_AT_CFA, REG_IS_CFA, REG_OTHER_REG, REG_EXPR };

static enum reg_rule reg_rule(Dwarf_Frame *frame, int regno, int64_t *off)
{
	Dwarf_Op mem[3], *ops;
	size_t nops;
	if (dwarf_frame_register(frame, regno, mem, &ops, &nops) != 0)
		return REG_EXPR;
	if (nops == 0)
		return ops == mem ? REG_UNDEF : ops == NULL ? REG_SAME : REG_EXPR;
	if (nops == 1 && ops[0].atom == DW_OP_regx)
		return REG_OTHER_REG;
	/* Evaluated by libdwfl's expr_eval: CFA (a location), + N, and
	 * DW_OP_stack_value for a value rather than a location. */
	if (ops[0].atom != DW_OP_call_frame_cfa)
		return REG_EXPR;
	size_t i = 1;
	*off = 0;
	if (i < nops && ops[i].atom == DW_OP_plus_uconst)
		*off = (int64_t)ops[i++].number;
	bool value = i < nops && ops[i].atom == DW_OP_stack_value;
	i += value;
	if (i != nops)
		return REG_EXPR;
	return value ? REG_IS_CFA : REG_AT_CFA;
}

static bool fits16(int64_t v)
{
	return v >= INT16_MIN && v <= INT16_MAX;
}

/* The rule for frame, the way handle_cfi (libdwfl) would apply it. */
static void decode_rule(Dwarf_Frame *frame, struct rule *r)
{
	Dwarf_Addr start, end;
	bool signal = false;
	int ra = dwarf_frame_info(frame, &start, &end, &signal);
	r->kind = RULE_COMPLEX;
	if (signal)
		r->flags |= RF_SIGNAL;
	if (ra != REG_PC || signal)
		return;

	Dwarf_Op *ops;
	size_t nops;
	int cfa_reg;
	int64_t cfa_off;
	if (dwarf_frame_cfa(frame, &ops, &nops) != 0 || nops != 1)
		return;
	if (ops[0].atom == DW_OP_bregx) {
		cfa_reg = (int)ops[0].number;
		cfa_off = (int64_t)ops[0].number2;
	} else if (ops[0].atom >= DW_OP_breg0 && ops[0].atom <= DW_OP_breg31) {
		cfa_reg = ops[0].atom - DW_OP_breg0;
		cfa_off = (int64_t)ops[0].number;
	} else {
		return;
	}
	if ((cfa_reg != REG_SP && cfa_reg != REG_BP) || cfa_off < INT32_MIN || cfa_off > INT32_MAX)
		return;

	int16_t rd_lo = INT16_MAX, rd_hi = INT16_MIN;
	uint8_t flags = cfa_reg == REG_BP ? RF_CFA_BP : 0;
	enum rule_kind kind = RULE_CFA;
	int16_t ra_off = 0, bp_off = 0;
	for (int regno = 0; regno < NREGS; regno++) {
		int64_t off = 0;
		enum reg_rule rr = reg_rule(frame, regno, &off);
		if (rr == REG_EXPR)
			return;
		if (rr == REG_AT_CFA) {
			if (!fits16(off) || !fits16(off + 8))
				return;
			rd_lo = off < rd_lo ? off : rd_lo;
			rd_hi = off > rd_hi ? off : rd_hi;
		}
		switch (regno) {
		case REG_SP:	/* the caller's rsp is the CFA */
			if (rr != REG_IS_CFA || off != 0)
				return;
			break;
		case REG_BP:
			if (rr == REG_AT_CFA) {
				flags |= RF_BP_SAVED;
				bp_off = off;
			} else if (rr == REG_UNDEF) {
				flags |= RF_BP_UNDEF;
			} else if (rr != REG_SAME) {
				return;
			}
			break;
		case REG_PC:
			if (rr == REG_UNDEF)
				kind = RULE_OUTERMOST;
			else if (rr == REG_AT_CFA)
				ra_off = off;
			else
				return;
			break;
		}
		/* Other registers: libdwfl computes them, but only pcs, rsp and
		 * rbp matter here; an expression could read memory, so those
		 * returned above. */
	}
	r->kind = kind;
	r->flags |= flags;
	r->cfa_off = cfa_off;
	r->ra_off = ra_off;
	r->bp_off = bp_off;
	r->rd_lo = rd_lo;
	r->rd_hi = rd_hi;
}

static bool module_has_dwarf_cfi(struct unw_mod *m)
{
	if (m->dwarf < 0) {
		Dwarf_Addr bias;
		m->dwarf = dwfl_module_dwarf_cfi(m->mod, &bias) != NULL;
	}
	return m->dwarf;
}

/* Computes the rule for addr (the pc looked up, at runtime) in m, from the
 * CFI libdwfl would use: .eh_frame, else .debug_frame. */
static void compute_rule(struct unw_mod *m, uint64_t addr, struct rule *r)
{
	*r = (struct rule){ .vaddr = addr - m->bias, .file = m->file, .kind = RULE_NOCFI };
	Dwarf_Addr bias;
	Dwarf_Frame *frame = NULL;
	Dwarf_CFI *cfi = dwfl_module_eh_cfi(m->mod, &bias);
	if (cfi && dwarf_cfi_addrframe(cfi, addr - bias, &frame) == 0) {
		r->flags |= RF_FROM_EH;
	} else {
		frame = NULL;
		cfi = dwfl_module_dwarf_cfi(m->mod, &bias);
		m->dwarf = cfi != NULL;
		if (cfi)
			r->flags |= RF_HAD_DWARF;
		if (!cfi || dwarf_cfi_addrframe(cfi, addr - bias, &frame) != 0)
			return;
	}
	decode_rule(frame, r);
	free(frame);
}

/* A rule cached for the file holds here unless it came from .debug_frame,
 * or from finding none, and this process's module differs in having
 * .debug_frame CFI (separate debug files are looked up per process). */
static bool rule_holds(const struct rule *r, struct unw_mod *m)
{
	if (r->flags & RF_FROM_EH)
		return true;
	return !!(r->flags & RF_HAD_DWARF) == module_has_dwarf_cfi(m);
}

/* The rule for addr in m: valid until the next call. */
static const struct rule *rule_at(struct unwinder *u, struct unw_mod *m, uint64_t addr)
{
	struct rule_cache *c = &u->rules;
	uint64_t vaddr = addr - m->bias;
	if (c->cap && m->file) {
		size_t mask = c->cap - 1;
		for (size_t i = rule_slot(m->file, vaddr, c->cap);; i = (i + 1) & mask) {
			struct rule *r = &c->slots[i];
			if (!r->file)
				break;
			if (r->file != m->file || r->vaddr != vaddr)
				continue;
			if (rule_holds(r, m)) {
				u->stats.rule_cache_hits++;
				return r;
			}
			u->stats.rule_cache_misses++;
			compute_rule(m, addr, r);
			return r;
		}
	}
	u->stats.rule_cache_misses++;
	struct rule *r = m->file ? rules_new_slot(c, m->file, vaddr) : NULL;
	if (!r)
		r = &u->scratch;
	compute_rule(m, addr, r);
	return r;
}

/* The fast path's module lookup: only addresses strictly inside a module's
 * range (where dwfl_addrmodule finds that module, modules never overlapping). */
struct unw_mod *unw_mod_at(struct unw_proc *up, uint64_t addr)
{
	struct unw_mod *m = up->last_mod;
	if (m && addr - m->start < m->end - m->start)
		return m;
	size_t lo = 0, hi = up->n_mods;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (up->mods[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	m = &up->mods[lo - 1];
	if (addr >= m->end)
		return NULL;
	up->last_mod = m;
	return m;
}

static const char *mod_no_cfi_reason(struct unwinder *u, struct unw_mod *m)
{
	if (!m->no_cfi)
		m->no_cfi = unw_no_cfi_reason(u, m->mod);
	return m->no_cfi;
}

/* ---- the fast path ---- */

/* Whether libdwfl, in the frame whose CFA is cfa, would read every register
 * r saves from the snapshot (then no read sets a flag). */
static bool rule_reads_in_snapshot(const struct sample *s, const struct rule *r, uint64_t cfa)
{
	if (r->rd_lo > r->rd_hi)
		return true;
	uint64_t lo = cfa + (int64_t)r->rd_lo, hi = cfa + (int64_t)r->rd_hi;
	return lo >= s->stack_lo && hi >= lo && hi < s->stack_hi && s->stack_hi - hi >= 8;
}

/* Unwinds u->cur as libdwfl would, from the rule cache. False when it
 * cannot be sure of libdwfl's result: out is then garbage. */
bool unw_fast(struct unwinder *u, struct unw_proc *up, struct unwind_result *out)
{
	struct sample *s = &u->cur;
	uint64_t pc = s->regs[REG_PC], sp = s->regs[REG_SP], bp = s->regs[REG_BP];
	bool bp_ok = true;	/* libdwfl has a value for rbp */
	out->n = 0;
	out->truncated = NULL;
	for (;;) {
		if (out->n == UNWIND_MAX_FRAMES) {
			out->truncated = TRUNC_DEPTH;
			return true;
		}
		out->pcs[out->n++] = pc;
		/* Return addresses are looked up at the call: pc - 1. */
		uint64_t addr = out->n == 1 ? pc : pc - 1;
		struct unw_mod *m = unw_mod_at(up, addr);
		if (!m)
			return false;	/* libdwfl's frame-pointer rule, refreshes */
		const struct rule *r = rule_at(u, m, addr);
		uint64_t cfa, ra, prev_bp;
		switch (r->kind) {
		case RULE_CFA:
			if ((r->flags & RF_CFA_BP) && !bp_ok)
				return false;
			cfa = ((r->flags & RF_CFA_BP) ? bp : sp) + (int64_t)r->cfa_off;
			if (!unw_snapshot_read(s, cfa + (int64_t)r->ra_off, &ra)) {
				/* libdwfl: the return address undefined, the
				 * read past the snapshot noted. */
				uint64_t at = cfa + (int64_t)r->ra_off, v;
				if (unw_past_snapshot(s, at) && !unw_read_from_file(up->proc, at, &v)) {
					out->truncated = TRUNC_SNAPSHOT;
					return true;
				}
				return false;
			}
			if (ra == 0)	/* libdwfl: the outermost frame */
				return rule_reads_in_snapshot(s, r, cfa);
			if (r->flags & RF_BP_SAVED) {
				if (!unw_snapshot_read(s, cfa + (int64_t)r->bp_off, &bp))
					return false;
				bp_ok = true;
			} else if (r->flags & RF_BP_UNDEF) {
				bp_ok = false;
			}
			sp = cfa;
			pc = ra;
			break;
		case RULE_OUTERMOST:
			if (r->rd_lo > r->rd_hi)
				return true;
			if ((r->flags & RF_CFA_BP) && !bp_ok)
				return false;
			cfa = ((r->flags & RF_CFA_BP) ? bp : sp) + (int64_t)r->cfa_off;
			return rule_reads_in_snapshot(s, r, cfa);
		case RULE_NOCFI:
			if (u->strict || !bp_ok || bp == 0) {
				/* libdwfl: no CFI, and (without strict) no
				 * frame pointer to follow. */
				out->truncated = mod_no_cfi_reason(u, m);
				return true;
			}
			/* libdw's x86_64 frame-pointer rule (x86_64_unwind). */
			if (!unw_snapshot_read(s, bp, &prev_bp) || !unw_snapshot_read(s, bp + 8, &ra) || sp >= bp + 16)
				return false;
			sp = bp + 16;
			bp = prev_bp;
			pc = ra;
			break;
		default:
			return false;
		}
	}
}

/* Strict mode in the slow path: whether the newest frame, at pc, is the
 * last one (the reason), else NULL. */
const char *unw_strict_stop(struct unwinder *u, struct sample *s, uint64_t pc, bool first)
{
	uint64_t addr = first || s->signal ? pc : pc - 1;
	struct unw_mod *m = unw_mod_at(s->up, addr);
	if (m) {
		const struct rule *r = rule_at(u, m, addr);
		s->signal = r->flags & RF_SIGNAL;
		return r->kind == RULE_NOCFI ? mod_no_cfi_reason(u, m) : NULL;
	}
	Dwfl_Module *mod = dwfl_addrmodule(s->up->dwfl, addr);
	if (!mod)
		return TRUNC_NO_FILE;
	bool signal = false;
	if (!unw_module_has_cfi(mod, addr, &signal))
		return unw_no_cfi_reason(u, mod);
	s->signal = signal;
	return NULL;
}
