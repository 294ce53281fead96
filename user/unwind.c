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
#include "unwind.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "debugfile.h"
#include "elf_file.h"
#include "hashmap.h"
#include "process.h"

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

static const char TRUNC_SNAPSHOT[] = "[truncated: stack snapshot too small]";
static const char TRUNC_DEPTH[] = "[truncated: more than 256 frames]";
static const char TRUNC_NO_FILE[] = "[truncated: address in no mapped file]";
static const char TRUNC_UNREADABLE[] = "[truncated: unreadable stack memory]";
static const char TRUNC_NOMEM[] = "[truncated: out of memory]";
static const char TRUNC_FAILED[] = "[truncated: unwinding failed]";

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

/* ---- interned reasons: "[truncated: ...]" strings live as long as the program ---- */

static bool reason_eq(uint64_t stored, uint64_t probe, void *ctx)
{
	return strcmp((const char *)(uintptr_t)stored, (const char *)(uintptr_t)probe) == 0;
}

static struct hmap reasons = { .eq = reason_eq };

static const char *intern_reason(const char *what, const char *detail)
{
	char buf[512];
	int len = snprintf(buf, sizeof(buf), "[truncated: %s%s]", what, detail);
	if (len < 0 || (size_t)len >= sizeof(buf))
		return TRUNC_FAILED;
	uint64_t hash = hash_str(buf);
	void **slot = hmap_find(&reasons, hash, (uintptr_t)buf);
	if (slot)
		return *slot;
	char *copy = strdup(buf);
	if (!copy || hmap_insert_new(&reasons, hash, (uintptr_t)copy, copy)) {
		free(copy);
		return TRUNC_FAILED;
	}
	return copy;
}

static const char *dwfl_reason(int err)
{
	if (err == 0)	/* dwfl_errmsg(0) would describe some older error */
		return TRUNC_FAILED;
	return intern_reason(dwfl_errmsg(err), "");
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

static bool read_from_file(const struct process *p, uint64_t addr, Dwarf_Word *result)
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
static bool past_snapshot(struct sample *s, uint64_t addr)
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
	if (past_snapshot(s, addr))
		s->read_past_snapshot = true;
}

/* A read memory_read would serve from the snapshot. */
static inline bool snapshot_read(const struct sample *s, uint64_t addr, uint64_t *result)
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

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	struct unw_proc *up = arg;
	struct sample *s = &up->owner->cur;
	if (snapshot_read(s, addr, result))
		return true;
	if (read_from_file(up->proc, addr, result))
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

static const Dwfl_Thread_Callbacks thread_callbacks = {
	.next_thread = next_thread,
	.get_thread = get_thread,
	.memory_read = memory_read,
	.set_initial_registers = set_initial_registers,
};

/* ---- separate debug files, for .debug_frame ---- */

/* The objfile reported as modname. */
static const struct objfile *objfile_named(const struct unw_proc *up, const char *modname)
{
	for (size_t i = 0; i < up->n_exec_maps; i++)
		if (!strcmp(up->exec_maps[i].obj->path, modname))
			return up->exec_maps[i].obj;
	return NULL;
}

/* libdwfl asks for the main file's debug file, then (with the dwz
 * .gnu_debugaltlink name as debuglink_file) for its alt file, which
 * .debug_frame never needs. */
static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
			  const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
			  char **debuginfo_file_name)
{
	struct unw_proc *up = *userdata;
	const struct objfile *obj = up ? objfile_named(up, modname) : NULL;
	struct debug_want want = { .check_crc = true, .crc = debuglink_crc };
	const unsigned char *id;
	GElf_Addr id_vaddr;
	Dwarf_Addr bias;
	GElf_Word crc;
	struct debug_file found;
	struct stat self;

	*debuginfo_file_name = NULL;	/* libdwfl would open a name left here */
	Elf *main_elf = dwfl_module_getelf(mod, &bias);
	const char *main_link = main_elf ? dwelf_elf_gnu_debuglink(main_elf, &crc) : NULL;
	if (!obj || (debuglink_file && (!main_link || strcmp(main_link, debuglink_file))))
		return -1;
	if (!up->root_tried) {
		up->root_tried = true;
		if (debug_root_init(&up->root, up->proc->root))
			return -1;
	}
	int id_len = dwfl_module_build_id(mod, &id, &id_vaddr);
	if (id_len > 0) {
		want.build_id = id;
		want.build_id_len = id_len;
	}
	if (!fstat(obj->fd, &self)) {
		want.self_dev = self.st_dev;
		want.self_ino = self.st_ino;
	}
	if (debug_find_main(&up->root, &want, obj->path, debuglink_file, &found))
		return -1;
	int fd;
	*debuginfo_file_name = found.our_path;
	found.our_path = NULL;
	free(debug_file_take_path(&found, &fd));
	return fd;
}

static const Dwfl_Callbacks dwfl_callbacks = {
	.find_elf = debugfile_no_find_elf,
	.find_debuginfo = find_debuginfo,
};

/* ---- building a process's Dwfl ---- */

static bool is_exec_file_mapping(const struct mapping *m)
{
	const struct objfile *obj = m->data;
	return m->executable && obj && obj->fd >= 0 && obj->elf;
}

static bool same_exec_maps(const struct unw_proc *up, const struct process *p)
{
	size_t k = 0;
	for (size_t i = 0; i < p->maps.n; i++) {
		const struct mapping *m = &p->maps.v[i];
		if (!is_exec_file_mapping(m))
			continue;
		if (k == up->n_exec_maps)
			return false;
		const struct exec_map *e = &up->exec_maps[k++];
		if (e->start != m->start || e->end != m->end || e->offset != m->offset || e->obj != m->data)
			return false;
	}
	return k == up->n_exec_maps;
}

/* Load bias of the file mapped by e: runtime address - ELF vaddr, taken
 * from a PT_LOAD whose file part overlaps the mapping. */
static bool load_bias(const struct exec_map *e, uint64_t *bias)
{
	const struct elf_segment *segs;
	size_t n = elf_file_segments(e->obj->elf, &segs);
	uint64_t map_end = e->offset + (e->end - e->start);
	bool found = false;
	for (size_t i = 0; i < n; i++) {
		const struct elf_segment *s = &segs[i];
		if (s->offset >= map_end || s->offset + s->filesz <= e->offset)
			continue;
		*bias = e->start - e->offset + s->offset - s->vaddr;
		found = true;
		if (s->flags & PF_X)
			break;
	}
	return found;
}

static int collect_exec_maps(struct unw_proc *up, const struct process *p)
{
	size_t n = 0;
	for (size_t i = 0; i < p->maps.n; i++)
		n += is_exec_file_mapping(&p->maps.v[i]);
	struct exec_map *v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < p->maps.n; i++) {
		const struct mapping *m = &p->maps.v[i];
		if (!is_exec_file_mapping(m))
			continue;
		struct exec_map *e = &v[n++];
		*e = (struct exec_map){ .start = m->start, .end = m->end, .offset = m->offset, .obj = m->data };
		e->has_bias = load_bias(e, &e->bias);
	}
	free(up->exec_maps);
	up->exec_maps = v;
	up->n_exec_maps = n;
	return 0;
}

/* A file mapped in several pieces (or twice at the same place) is one
 * module: libdwfl would take a second report of it for an overlap and
 * drop the module. */
static bool reported_before(const struct unw_proc *up, size_t i)
{
	const struct exec_map *e = &up->exec_maps[i];
	for (size_t j = 0; j < i; j++) {
		const struct exec_map *o = &up->exec_maps[j];
		if (o->has_bias && o->obj == e->obj && o->bias == e->bias)
			return true;
	}
	return false;
}

/* ---- rule cache ids of module files ---- */

static bool file_key_eq(uint64_t stored, uint64_t probe, void *ctx)
{
	return strcmp((const char *)(uintptr_t)stored, (const char *)(uintptr_t)probe) == 0;
}

/* The same id for the same file in every process: by build-id, else by the
 * objfile (which procs keeps for its whole life). 0 when out of memory. */
static uint32_t file_id(struct unwinder *u, const struct objfile *obj)
{
	char key[160];
	const char *id = obj->elf ? elf_file_build_id(obj->elf) : NULL;
	if (id && strlen(id) < sizeof(key) - 8)
		snprintf(key, sizeof(key), "b:%s", id);
	else
		snprintf(key, sizeof(key), "f:%p:%llx:%llx", (const void *)obj, (unsigned long long)obj->dev,
			 (unsigned long long)obj->inode);
	uint64_t hash = hash_str(key);
	void **slot = hmap_find(&u->files, hash, (uintptr_t)key);
	if (slot)
		return (uint32_t)(uintptr_t)*slot;
	if (u->next_file == UINT32_MAX)
		return 0;
	char *copy = strdup(key);
	uint32_t fid = u->next_file + 1;
	if (!copy || hmap_insert_new(&u->files, hash, (uintptr_t)copy, (void *)(uintptr_t)fid)) {
		free(copy);
		return 0;
	}
	u->next_file = fid;
	return fid;
}

static Dwfl_Module *report_exec_map(struct unw_proc *up, size_t i)
{
	const struct exec_map *e = &up->exec_maps[i];

	if (!e->has_bias || reported_before(up, i))
		return NULL;
	return debugfile_report(up->dwfl, e->obj->path, e->obj->fd, e->bias, up);
}

static int mod_cmp(const void *a, const void *b)
{
	const struct unw_mod *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

struct mod_scan {
	struct unw_proc *up;
	const struct objfile **objs;	/* of up->mods[i].mod, as reported */
	size_t n;			/* up->mods entries reported */
};

/* Fills in, for the modules reported that the Dwfl has (all, normally),
 * the range dwfl_addrmodule finds them in. */
static int scan_module(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base, void *arg)
{
	struct mod_scan *ms = arg;
	struct unw_proc *up = ms->up;
	for (size_t i = 0; i < ms->n; i++) {
		struct unw_mod *m = &up->mods[i];
		if (m->mod != mod || m->dwarf != -2)
			continue;
		Dwarf_Addr start, end, bias;
		dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL, NULL);
		if (start < end && dwfl_module_getelf(mod, &bias)) {
			m->start = start;
			m->end = end;
			m->bias = bias;
			m->file = file_id(up->owner, ms->objs[i]);
			m->dwarf = -1;
		}
		break;
	}
	return DWARF_CB_OK;
}

static void build_mod_table(struct unw_proc *up, const struct objfile **objs, size_t n)
{
	struct mod_scan ms = { .up = up, .objs = objs, .n = n };
	for (size_t i = 0; i < n; i++)
		up->mods[i].dwarf = -2;	/* not seen in the Dwfl (yet) */
	dwfl_getmodules(up->dwfl, scan_module, &ms, 0);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		if (up->mods[i].dwarf == -1)
			up->mods[kept++] = up->mods[i];
	qsort(up->mods, kept, sizeof(*up->mods), mod_cmp);
	up->n_mods = kept;
	/* libdwfl refuses overlapping modules; should any be left, the fast
	 * path would not know which one dwfl_addrmodule picks. */
	for (size_t i = 1; i < kept; i++)
		if (up->mods[i].start < up->mods[i - 1].end)
			up->n_mods = 0;
}

static void drop_dwfl(struct unw_proc *up)
{
	if (up->dwfl)
		dwfl_end(up->dwfl);	/* closes the fds it was given */
	up->dwfl = NULL;
	free(up->mods);
	up->mods = NULL;
	up->n_mods = 0;
	up->last_mod = NULL;
}

static int build_dwfl(struct unwinder *u, struct unw_proc *up, struct process *p)
{
	drop_dwfl(up);
	up->checked = true;
	up->generation = p->generation;
	up->build_failure = TRUNC_NOMEM;
	if (collect_exec_maps(up, p))
		return -ENOMEM;
	u->stats.dwfl_builds++;
	up->dwfl = dwfl_begin(&dwfl_callbacks);
	if (!up->dwfl)
		return -ENOMEM;
	size_t n_alloc = up->n_exec_maps ? up->n_exec_maps : 1;
	up->mods = calloc(n_alloc, sizeof(*up->mods));
	const struct objfile **objs = calloc(n_alloc, sizeof(*objs));
	size_t n = 0;
	dwfl_report_begin(up->dwfl);
	for (size_t i = 0; i < up->n_exec_maps; i++) {
		Dwfl_Module *mod = report_exec_map(up, i);
		if (mod && up->mods && objs) {
			up->mods[n].mod = mod;
			objs[n++] = up->exec_maps[i].obj;
		}
	}
	dwfl_report_end(up->dwfl, NULL, NULL);
	if (up->mods && objs)
		build_mod_table(up, objs, n);
	free(objs);
	if (!dwfl_attach_state(up->dwfl, NULL, p->pid, &thread_callbacks, up)) {
		up->build_failure = dwfl_reason(dwfl_errno());
		drop_dwfl(up);
		return -ENOENT;
	}
	return 0;
}

/* Another process now has the pid (or procs made a new struct process). */
static void start_over(struct unw_proc *up, struct process *p)
{
	drop_dwfl(up);
	free(up->exec_maps);
	up->exec_maps = NULL;
	up->n_exec_maps = 0;
	up->checked = false;
	debug_root_free(&up->root);
	up->root = (struct debug_root){ .fd = -1 };
	up->root_tried = false;
	up->quiet_since_ns = 0;
	up->proc = p;
	up->start_time = p->start_time;
}

/* The Dwfl for p's current maps snapshot: rebuilt only when the executable
 * file mappings changed, not on every new generation (anonymous mmaps bump
 * it too). */
static int ensure_dwfl(struct unwinder *u, struct unw_proc *up, struct process *p)
{
	if (up->proc != p || up->start_time != p->start_time)
		start_over(up, p);
	if (up->checked && up->generation == p->generation)
		return up->dwfl ? 0 : -ENOENT;
	if (up->checked && same_exec_maps(up, p)) {
		up->generation = p->generation;
		return up->dwfl ? 0 : -ENOENT;
	}
	return build_dwfl(u, up, p);
}

/* ---- per-process entries ---- */

static void unw_proc_free(struct unw_proc *up)
{
	drop_dwfl(up);
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
	hmap_init(&u->files, file_key_eq, NULL);
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
static bool module_has_cfi(Dwfl_Module *mod, uint64_t pc, bool *signal)
{
	Dwarf_Addr bias;
	Dwarf_CFI *cfi = dwfl_module_eh_cfi(mod, &bias);
	if (cfi_covers(cfi, bias, pc, signal))
		return true;
	cfi = dwfl_module_dwarf_cfi(mod, &bias);
	return cfi_covers(cfi, bias, pc, signal);
}

static const char *no_cfi_reason(Dwfl_Module *mod)
{
	const char *name = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	return intern_reason("no unwind info for ", name ? name : "?");
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
static struct unw_mod *mod_at(struct unw_proc *up, uint64_t addr)
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

static const char *mod_no_cfi_reason(struct unw_mod *m)
{
	if (!m->no_cfi)
		m->no_cfi = no_cfi_reason(m->mod);
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
static bool fast_unwind(struct unwinder *u, struct unw_proc *up, struct unwind_result *out)
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
		struct unw_mod *m = mod_at(up, addr);
		if (!m)
			return false;	/* libdwfl's frame-pointer rule, refreshes */
		const struct rule *r = rule_at(u, m, addr);
		uint64_t cfa, ra, prev_bp;
		switch (r->kind) {
		case RULE_CFA:
			if ((r->flags & RF_CFA_BP) && !bp_ok)
				return false;
			cfa = ((r->flags & RF_CFA_BP) ? bp : sp) + (int64_t)r->cfa_off;
			if (!snapshot_read(s, cfa + (int64_t)r->ra_off, &ra)) {
				/* libdwfl: the return address undefined, the
				 * read past the snapshot noted. */
				uint64_t at = cfa + (int64_t)r->ra_off, v;
				if (past_snapshot(s, at) && !read_from_file(up->proc, at, &v)) {
					out->truncated = TRUNC_SNAPSHOT;
					return true;
				}
				return false;
			}
			if (ra == 0)	/* libdwfl: the outermost frame */
				return rule_reads_in_snapshot(s, r, cfa);
			if (r->flags & RF_BP_SAVED) {
				if (!snapshot_read(s, cfa + (int64_t)r->bp_off, &bp))
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
				out->truncated = mod_no_cfi_reason(m);
				return true;
			}
			/* libdw's x86_64 frame-pointer rule (x86_64_unwind). */
			if (!snapshot_read(s, bp, &prev_bp) || !snapshot_read(s, bp + 8, &ra) || sp >= bp + 16)
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
static const char *strict_stop(struct unwinder *u, struct sample *s, uint64_t pc, bool first)
{
	uint64_t addr = first || s->signal ? pc : pc - 1;
	struct unw_mod *m = mod_at(s->up, addr);
	if (m) {
		const struct rule *r = rule_at(u, m, addr);
		s->signal = r->flags & RF_SIGNAL;
		return r->kind == RULE_NOCFI ? mod_no_cfi_reason(m) : NULL;
	}
	Dwfl_Module *mod = dwfl_addrmodule(s->up->dwfl, addr);
	if (!mod)
		return TRUNC_NO_FILE;
	bool signal = false;
	if (!module_has_cfi(mod, addr, &signal))
		return no_cfi_reason(mod);
	s->signal = signal;
	return NULL;
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
		s->abort_reason = dwfl_reason(dwfl_errno());
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
	if (s->up->owner->strict && (s->abort_reason = strict_stop(s->up->owner, s, pc, out->n == 1)))
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
	if (module_has_cfi(mod, pc, NULL))
		return s->read_failed ? TRUNC_UNREADABLE : dwfl_reason(dwfl_err);
	return no_cfi_reason(mod);
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
		out->truncated = s->abort_reason ?: dwfl_reason(err);
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
	if (p->generation == generation || same_exec_maps(up, p)) {
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
		if ((*fast = fast_unwind(u, up, out)))
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
	int err = ensure_dwfl(u, up, p);
	/* Without a Dwfl, or with a pc it cannot place, the maps may be stale. */
	bool refreshed = err == -ENOENT || (!err && !mod_at(up, regs[REG_PC]) && address_unknown(up, regs[REG_PC]));
	if (refreshed && refresh_for_unknown(u, ps, up, p))
		err = ensure_dwfl(u, up, p);
	if (err)
		return give_up(u, out, up->build_failure, err);
	bool fast;
	unwind_once(u, up, out, &fast);
	if (u->cur.unknown_addr && !refreshed && refresh_for_unknown(u, ps, up, p)) {
		if ((err = ensure_dwfl(u, up, p)))
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
