/* Unwinding of stack snapshots over libdwfl; see unwind.h.
 *
 * Each process gets one Dwfl (struct unw_proc), attached once with our
 * thread callbacks and the unw_proc as their argument. The sample being
 * unwound lives in the unwinder (struct sample, u->cur), which the callbacks
 * reach through unw_proc->owner: no per-sample setup touches the Dwfl.
 *
 * Debug files: .eh_frame (in every Debian binary) does the work; libdwfl
 * falls back to .debug_frame of the main file or of a separate debug file
 * found by build-id (target's root first, then the host's), and to frame
 * pointers where a module has no CFI for a pc.
 *
 * Fast path (fast_unwind): per-pc rules in a cache shared by all processes
 * (struct rule_cache, keyed by module file and ELF address), each computed
 * once from the same CFI libdwfl reads, with libdw, and applied to the
 * snapshot directly. It handles what x86-64 code nearly always has -- CFA =
 * rsp|rbp + offset, return address and rbp at CFA + offsets, an undefined
 * return address for the outermost frame, libdw's frame-pointer rule where a
 * module has no CFI -- and leaves the whole stack to libdwfl whenever a frame
 * needs anything else, or when the outcome could depend on something it does
 * not model (a read outside the snapshot other than the return address past
 * its end, a pc in no module, a register libdwfl would leave unset). So the
 * pcs and truncation reasons are libdwfl's on every stack. */
#include "stacks/unwind_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

const char TRUNC_SNAPSHOT[] = "[truncated: stack snapshot too small]";
const char TRUNC_DEPTH[] = "[truncated: more than 256 frames]";
const char TRUNC_NO_FILE[] = "[truncated: address in no mapped file]";
const char TRUNC_UNREADABLE[] = "[truncated: unreadable stack memory]";
const char TRUNC_NOMEM[] = "[truncated: out of memory]";
const char TRUNC_FAILED[] = "[truncated: unwinding failed]";

/* ---- interned reasons: "[truncated: ...]" strings live as long as the unwinder ---- */

/* Keys that are strings. */
static bool str_key_eq(uint64_t stored, uint64_t probe, void *ctx)
{
	return strcmp((const char *)(uintptr_t)stored, (const char *)(uintptr_t)probe) == 0;
}

const char *unw_reason(struct unwinder *u, const char *what, const char *detail)
{
	char buf[512];
	int len = snprintf(buf, sizeof(buf), "[truncated: %s%s]", what, detail);
	if (len < 0 || (size_t)len >= sizeof(buf))
		return TRUNC_FAILED;
	uint64_t hash = hash_str(buf);
	void **slot = hmap_find(&u->reasons, hash, (uintptr_t)buf);
	if (slot)
		return *slot;
	char *copy = strdup(buf);
	if (!copy || hmap_insert_new(&u->reasons, hash, (uintptr_t)copy, copy)) {
		free(copy);
		return TRUNC_FAILED;
	}
	return copy;
}

const char *unw_dwfl_reason(struct unwinder *u, int err)
{
	if (err == 0)	/* dwfl_errmsg(0) would describe some older error */
		return TRUNC_FAILED;
	return unw_reason(u, dwfl_errmsg(err), "");
}

/* ---- memory: the snapshot, else read-only file mappings ---- */

static const struct objfile *objfile_of_mapping(const struct maps *maps, const struct mapping *m)
{
	if (m->data)
		return m->data;
	/* Only executable mappings carry their objfile: borrow it from a
	 * neighbouring mapping of the same file. */
	size_t i = m - maps->v;
	for (size_t j = i > 8 ? i - 8 : 0; j < maps->n && j <= i + 8; j++) {
		const struct mapping *o = &maps->v[j];
		if (o->data && o->inode == m->inode && o->dev_major == m->dev_major &&
		    o->dev_minor == m->dev_minor)
			return o->data;
	}
	return NULL;
}

bool unw_read_from_file(const struct process *p, uint64_t addr, Dwarf_Word *result)
{
	const struct mapping *m = maps_find(&p->maps, addr);
	if (!m || !mapping_is_file(m) || m->writable || addr + sizeof(*result) > m->end)
		return false;
	const struct objfile *obj = objfile_of_mapping(&p->maps, m);
	if (!obj || obj->fd < 0)
		return false;
	return pread(obj->fd, result, sizeof(*result), addr - m->start + m->offset) == sizeof(*result);
}

/* Whether a read at addr, which failed, was past the end of the snapshot
 * but in the stack's mapping: a bigger snapshot would have had it. */
bool unw_past_snapshot(struct sample *s, uint64_t addr)
{
	if (addr < s->stack_hi)
		return false;
	if (!s->stack_limit) {
		const struct mapping *m = maps_find(&s->up->proc->maps, s->stack_lo);
		/* A thread stack mapped after the last maps read: any address
		 * above the snapshot may be stack. */
		s->stack_limit = m ? m->end : UINT64_MAX;
	}
	return addr < s->stack_limit;
}

static void note_failed_read(struct sample *s, uint64_t addr)
{
	s->read_failed = true;
	if (unw_past_snapshot(s, addr))
		s->read_past_snapshot = true;
}

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	struct unw_proc *up = arg;
	struct sample *s = &up->owner->cur;
	if (unw_snapshot_read(s, addr, result))
		return true;
	if (unw_read_from_file(up->proc, addr, result))
		return true;
	note_failed_read(s, addr);
	return false;
}

/* ---- the one thread of a sample ---- */

static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	struct unw_proc *up = arg;
	if (*thread_argp)
		return 0;
	*thread_argp = up;
	return up->pid;
}

static bool get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_argp)
{
	*thread_argp = arg;
	return true;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
	struct unw_proc *up = thread_arg;
	const uint64_t *regs = up->owner->cur.regs;
	if (!dwfl_thread_state_registers(thread, 0, MW_NREGS, regs))
		return false;
	dwfl_thread_state_register_pc(thread, regs[REG_PC]);
	return true;
}

const Dwfl_Thread_Callbacks unw_thread_callbacks = {
	.next_thread = next_thread,
	.get_thread = get_thread,
	.memory_read = memory_read,
	.set_initial_registers = set_initial_registers,
};

/* ---- per-process entries ---- */

static void unw_proc_free(struct unw_proc *up)
{
	unw_drop_dwfl(up);
	debug_root_free(&up->root);
	free(up->exec_maps);
	free(up);
}

static struct unw_proc *unw_proc_for(struct unwinder *u, struct process *p)
{
	bool inserted;
	void **slot = hmap_upsert(&u->procs, hash_u64(p->pid), p->pid, &inserted);
	if (!slot)
		return NULL;
	if (!inserted)
		return *slot;
	struct unw_proc *up = calloc(1, sizeof(*up));
	if (!up) {
		hmap_remove(&u->procs, hash_u64(p->pid), p->pid, NULL);
		return NULL;
	}
	up->owner = u;
	up->pid = p->pid;
	up->root.fd = -1;
	*slot = up;
	return up;
}

struct unwinder *unwinder_new(void)
{
	struct unwinder *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	hmap_init(&u->procs, NULL, NULL);
	hmap_init(&u->reasons, str_key_eq, NULL);
	hmap_init(&u->files, str_key_eq, NULL);
	const char *slow = getenv("MW_UNWIND_SLOW");
	u->fast = !slow || !*slow || !strcmp(slow, "0");
	return u;
}

void unwinder_set_returns(struct unwinder *u, const uint64_t *slots, const uint64_t *orig, unsigned n)
{
	u->uret_slot = slots;
	u->uret_orig = orig;
	u->nuret = n;
}

void unwinder_set_strict(struct unwinder *u, bool strict)
{
	u->strict = strict;
}

void unwinder_set_fast(struct unwinder *u, bool fast)
{
	u->fast = fast;
}

void unwinder_free(struct unwinder *u)
{
	if (!u)
		return;
	struct hmap_slot *slot;
	for (size_t i = 0; hmap_next(&u->procs, &i, &slot);)
		unw_proc_free(slot->val);
	hmap_free(&u->procs);
	for (size_t i = 0; hmap_next(&u->files, &i, &slot);)
		free((char *)(uintptr_t)slot->key);
	hmap_free(&u->files);
	for (size_t i = 0; hmap_next(&u->reasons, &i, &slot);)
		free(slot->val);
	hmap_free(&u->reasons);
	free(u->rules.slots);
	free(u);
}

void unwinder_forget(struct unwinder *u, pid_t pid)
{
	void *up;
	if (hmap_remove(&u->procs, hash_u64(pid), pid, &up))
		unw_proc_free(up);
}

void unwinder_stats(const struct unwinder *u, struct unwind_stats *out)
{
	*out = u->stats;
}

/* ---- unwinding ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static bool address_unknown(const struct unw_proc *up, uint64_t addr)
{
	return !dwfl_addrmodule(up->dwfl, addr) && !maps_find(&up->proc->maps, addr);
}

static int on_frame(Dwfl_Frame *frame, void *arg)
{
	struct sample *s = arg;
	struct unwind_result *out = s->out;
	Dwarf_Addr pc;
	if (!dwfl_frame_pc(frame, &pc, NULL)) {
		s->abort_reason = unw_dwfl_reason(s->up->owner, dwfl_errno());
		return DWARF_CB_ABORT;
	}
	if (out->n == UNWIND_MAX_FRAMES) {
		s->abort_reason = TRUNC_DEPTH;
		return DWARF_CB_ABORT;
	}
	out->pcs[out->n++] = pc;
	/* Reads from here on belong to unwinding this frame. */
	s->read_past_snapshot = s->read_failed = false;
	if (address_unknown(s->up, out->n == 1 ? pc : pc - 1))
		s->unknown_addr = true;
	/* Strict: a frame without CFI is the last, before libdwfl tries
	 * frame pointers on it. */
	if (s->up->owner->strict && (s->abort_reason = unw_strict_stop(s->up->owner, s, pc, out->n == 1)))
		return DWARF_CB_ABORT;
	return DWARF_CB_OK;
}

/* Why the chain stopped after pcs[n-1], when libdwfl gave up on it. */
static const char *failure_reason(struct sample *s, int dwfl_err)
{
	const struct unwind_result *out = s->out;
	uint64_t pc = out->pcs[out->n - 1] - (out->n > 1);
	Dwfl_Module *mod = dwfl_addrmodule(s->up->dwfl, pc);
	if (!mod)
		return TRUNC_NO_FILE;
	if (unw_module_has_cfi(mod, pc, NULL))
		return s->read_failed ? TRUNC_UNREADABLE : unw_dwfl_reason(s->up->owner, dwfl_err);
	return unw_no_cfi_reason(s->up->owner, mod);
}

static void run_unwind(struct unwinder *u, struct unw_proc *up, struct unwind_result *out)
{
	struct sample *s = &u->cur;
	s->unknown_addr = s->read_past_snapshot = s->read_failed = false;
	s->abort_reason = NULL;
	s->signal = false;
	s->stack_limit = 0;
	out->n = 0;
	out->truncated = NULL;
	(void)dwfl_errno();	/* libdwfl reports the last error set, even a stale one */
	int rc = dwfl_getthread_frames(up->dwfl, up->pid, on_frame, s);
	int err = rc < 0 ? dwfl_errno() : 0;
	if (out->n == 0) {
		out->pcs[out->n++] = s->regs[REG_PC];
		out->truncated = s->abort_reason ?: unw_dwfl_reason(u, err);
	} else if (rc > 0) {
		out->truncated = s->abort_reason ?: TRUNC_FAILED;
	} else if (s->read_past_snapshot) {
		/* Also when rc == 0: a return address that cannot be read
		 * leaves the caller's pc undefined, which libdwfl takes for
		 * the outermost frame. */
		out->truncated = TRUNC_SNAPSHOT;
	} else if (rc < 0) {
		out->truncated = failure_reason(s, err);
	} else if (s->read_failed) {
		out->truncated = TRUNC_UNREADABLE;
	}
}

/* Re-reads p's maps because an address fell in none of them. True when the
 * Dwfl was rebuilt with new executable mappings. */
static bool refresh_for_unknown(struct unwinder *u, struct procs *ps, struct unw_proc *up,
				struct process *p)
{
	if (up->quiet_since_ns && now_ns() - up->quiet_since_ns < QUIET_REFRESH_NS)
		return false;
	unsigned generation = p->generation;
	u->stats.refreshes++;
	process_refresh(ps, p);
	if (p->generation == generation || unw_same_exec_maps(up, p)) {
		up->quiet_since_ns = now_ns();
		return false;
	}
	up->quiet_since_ns = 0;
	return true;
}

static void count(struct unwinder *u, const struct unwind_result *out)
{
	u->stats.frames += out->n;
	if (!out->truncated)
		u->stats.complete++;
	else if (out->truncated == TRUNC_SNAPSHOT)
		u->stats.truncated_snapshot++;
	else
		u->stats.truncated_other++;
}

/* One attempt: the fast path, else libdwfl. */
static void unwind_once(struct unwinder *u, struct unw_proc *up, struct unwind_result *out, bool *fast)
{
	struct sample *s = &u->cur;
	if (u->fast) {
		s->unknown_addr = false;
		s->stack_limit = 0;
		if ((*fast = unw_fast(u, up, out)))
			return;
		u->stats.fast_fallbacks++;
	}
	*fast = false;
	run_unwind(u, up, out);
}

static int give_up(struct unwinder *u, struct unwind_result *out, const char *reason, int err)
{
	out->truncated = reason;
	count(u, out);
	return err;
}

int unwind_stack(struct unwinder *u, struct procs *ps, struct process *p, const uint64_t regs[MW_NREGS],
		 const uint8_t *stack, size_t stack_len, struct unwind_result *out)
{
	u->stats.stacks++;
	out->pcs[0] = regs[REG_PC];
	out->n = 1;
	out->truncated = NULL;
	struct unw_proc *up = unw_proc_for(u, p);
	if (!up)
		return give_up(u, out, TRUNC_NOMEM, -ENOMEM);
	uint64_t sp = regs[REG_SP];
	u->cur = (struct sample){
		.up = up, .regs = regs, .stack = stack, .out = out,
		.stack_lo = sp, .stack_hi = sp + (stack_len < UINT64_MAX - sp ? stack_len : UINT64_MAX - sp),
		.uret_slot = u->uret_slot, .uret_orig = u->uret_orig, .nuret = u->nuret,
	};
	u->nuret = 0;
	int err = unw_ensure_dwfl(u, up, p);
	/* Without a Dwfl, or with a pc it cannot place, the maps may be stale. */
	bool refreshed = err == -ENOENT || (!err && !unw_mod_at(up, regs[REG_PC]) && address_unknown(up, regs[REG_PC]));
	if (refreshed && refresh_for_unknown(u, ps, up, p))
		err = unw_ensure_dwfl(u, up, p);
	if (err)
		return give_up(u, out, up->build_failure, err);
	bool fast;
	unwind_once(u, up, out, &fast);
	if (u->cur.unknown_addr && !refreshed && refresh_for_unknown(u, ps, up, p)) {
		if ((err = unw_ensure_dwfl(u, up, p)))
			return give_up(u, out, up->build_failure, err);
		unwind_once(u, up, out, &fast);
	}
	if (fast)
		u->stats.fast_stacks++;
	else
		u->stats.slow_stacks++;
	count(u, out);
	return 0;
}
