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
 * pointers where a module has no CFI for a pc. */
#include "unwind.h"

#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "elf_file.h"
#include "hashmap.h"
#include "process.h"

#define REG_SP 7
#define REG_PC 16
#define DEBUG_BUILD_ID_DIR "/usr/lib/debug/.build-id/"
/* After a refresh that explained no unknown address, the next one waits this
 * long: garbage return addresses must not cost a maps read per sample. */
#define QUIET_REFRESH_NS (10 * 1000 * 1000ull)

static const char TRUNC_SNAPSHOT[] = "[truncated: stack snapshot too small]";
static const char TRUNC_DEPTH[] = "[truncated: more than 256 frames]";
static const char TRUNC_NO_FILE[] = "[truncated: address in no mapped file]";
static const char TRUNC_UNREADABLE[] = "[truncated: unreadable stack memory]";
static const char TRUNC_NOMEM[] = "[truncated: out of memory]";
static const char TRUNC_FAILED[] = "[truncated: unwinding failed]";

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
	int root_fd;		/* the target's root; -1: not open (yet) */
	bool root_tried, root_is_host;
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
};

struct unwinder {
	struct hmap procs;	/* pid -> struct unw_proc */
	struct sample cur;
	struct unwind_stats stats;
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

static void note_failed_read(struct sample *s, uint64_t addr)
{
	s->read_failed = true;
	if (addr < s->stack_hi)
		return;
	if (!s->stack_limit) {
		const struct mapping *m = maps_find(&s->up->proc->maps, s->stack_lo);
		/* A thread stack mapped after the last maps read: any address
		 * above the snapshot may be stack. */
		s->stack_limit = m ? m->end : UINT64_MAX;
	}
	if (addr < s->stack_limit)
		s->read_past_snapshot = true;
}

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	struct unw_proc *up = arg;
	struct sample *s = &up->owner->cur;
	if (addr >= s->stack_lo && addr < s->stack_hi && s->stack_hi - addr >= sizeof(*result)) {
		memcpy(result, s->stack + (addr - s->stack_lo), sizeof(*result));
		return true;
	}
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

static bool build_id_matches(int fd, const unsigned char *id, int id_len)
{
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	const void *bits;
	ssize_t len = elf ? dwelf_elf_gnu_build_id(elf, &bits) : -1;
	bool same = len == id_len && memcmp(bits, id, len) == 0;
	if (elf)
		elf_end(elf);
	return same;
}

static void open_target_root(struct unw_proc *up)
{
	struct stat ours, theirs;
	up->root_tried = true;
	up->root_fd = open(up->proc->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	up->root_is_host = up->root_fd >= 0 && !fstat(up->root_fd, &theirs) && !stat("/", &ours) &&
			   ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino;
}

/* path resolved inside the target's root, so its absolute symlinks stay there. */
static int open_in_target_root(struct unw_proc *up, const char *path)
{
	if (!up->root_tried)
		open_target_root(up);
	if (up->root_fd < 0)
		return -1;
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	int fd = syscall(SYS_openat2, up->root_fd, path, &how, sizeof(how));
	if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
		return fd;
	/* No openat2: the build-id check below still rejects a wrong file. */
	char joined[4096];
	if (snprintf(joined, sizeof(joined), "%s%s", up->proc->root, path) >= (int)sizeof(joined))
		return -1;
	return open(joined, O_RDONLY | O_CLOEXEC);
}

static int open_debug_file(struct unw_proc *up, const char *path, bool in_target,
			   const unsigned char *id, int id_len)
{
	int fd = in_target ? open_in_target_root(up, path) : open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && !build_id_matches(fd, id, id_len)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* libdwfl asks for the main file's debug file, then (with the dwz
 * .gnu_debugaltlink name as debuglink_file) for its alt file, which
 * .debug_frame never needs. */
static bool is_alt_request(Dwfl_Module *mod, const char *debuglink_file)
{
	if (!debuglink_file)
		return false;
	Dwarf_Addr bias;
	GElf_Word crc;
	Elf *main_elf = dwfl_module_getelf(mod, &bias);
	const char *main_link = main_elf ? dwelf_elf_gnu_debuglink(main_elf, &crc) : NULL;
	return !main_link || strcmp(main_link, debuglink_file) != 0;
}

static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
			  const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
			  char **debuginfo_file_name)
{
	struct unw_proc *up = *userdata;
	const unsigned char *id;
	GElf_Addr id_vaddr;
	int id_len = dwfl_module_build_id(mod, &id, &id_vaddr);
	*debuginfo_file_name = NULL;	/* libdwfl would open a name left here */
	if (!up || id_len < 2 || is_alt_request(mod, debuglink_file))
		return -1;
	char path[sizeof(DEBUG_BUILD_ID_DIR) + 2 * 64 + 16];
	int len = snprintf(path, sizeof(path), DEBUG_BUILD_ID_DIR "%02x/", id[0]);
	for (int i = 1; i < id_len && len < (int)sizeof(path) - 8; i++)
		len += snprintf(path + len, sizeof(path) - len, "%02x", id[i]);
	snprintf(path + len, sizeof(path) - len, ".debug");
	int fd = open_debug_file(up, path, true, id, id_len);
	if (fd < 0 && !up->root_is_host)
		fd = open_debug_file(up, path, false, id, id_len);
	if (fd >= 0)
		*debuginfo_file_name = strdup(path);
	return fd;
}

static int no_find_elf(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
		       char **file_name, Elf **elfp)
{
	return -1;	/* every module comes with its fd */
}

static const Dwfl_Callbacks dwfl_callbacks = {
	.find_elf = no_find_elf,
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

static void report_exec_map(struct unw_proc *up, size_t i)
{
	const struct exec_map *e = &up->exec_maps[i];
	if (!e->has_bias || reported_before(up, i))
		return;
	int fd = fcntl(e->obj->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return;
	Dwfl_Module *mod = dwfl_report_elf(up->dwfl, e->obj->path, e->obj->path, fd, e->bias, true);
	if (!mod) {
		close(fd);	/* libdwfl keeps the fd only on success */
		return;
	}
	void **userdata;
	dwfl_module_info(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL);
	*userdata = up;
}

static void drop_dwfl(struct unw_proc *up)
{
	if (up->dwfl)
		dwfl_end(up->dwfl);	/* closes the fds it was given */
	up->dwfl = NULL;
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
	dwfl_report_begin(up->dwfl);
	for (size_t i = 0; i < up->n_exec_maps; i++)
		report_exec_map(up, i);
	dwfl_report_end(up->dwfl, NULL, NULL);
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
	if (up->root_fd >= 0)
		close(up->root_fd);
	up->root_fd = -1;
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
	if (up->root_fd >= 0)
		close(up->root_fd);
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
	up->root_fd = -1;
	*slot = up;
	return up;
}

struct unwinder *unwinder_new(void)
{
	struct unwinder *u = calloc(1, sizeof(*u));
	if (u)
		hmap_init(&u->procs, NULL, NULL);
	return u;
}

void unwinder_free(struct unwinder *u)
{
	if (!u)
		return;
	struct hmap_slot *slot;
	for (size_t i = 0; hmap_next(&u->procs, &i, &slot);)
		unw_proc_free(slot->val);
	hmap_free(&u->procs);
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
	return DWARF_CB_OK;
}

static bool cfi_covers(Dwarf_CFI *cfi, Dwarf_Addr bias, uint64_t pc)
{
	Dwarf_Frame *frame;
	if (!cfi || dwarf_cfi_addrframe(cfi, pc - bias, &frame) != 0)
		return false;
	free(frame);
	return true;
}

static bool module_has_cfi(Dwfl_Module *mod, uint64_t pc)
{
	Dwarf_Addr bias;
	Dwarf_CFI *cfi = dwfl_module_eh_cfi(mod, &bias);
	if (cfi_covers(cfi, bias, pc))
		return true;
	cfi = dwfl_module_dwarf_cfi(mod, &bias);
	return cfi_covers(cfi, bias, pc);
}

/* Why the chain stopped after pcs[n-1], when libdwfl gave up on it. */
static const char *failure_reason(struct sample *s, int dwfl_err)
{
	const struct unwind_result *out = s->out;
	uint64_t pc = out->pcs[out->n - 1] - (out->n > 1);
	Dwfl_Module *mod = dwfl_addrmodule(s->up->dwfl, pc);
	if (!mod)
		return TRUNC_NO_FILE;
	if (module_has_cfi(mod, pc))
		return s->read_failed ? TRUNC_UNREADABLE : dwfl_reason(dwfl_err);
	const char *name = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	return intern_reason("no unwind info for ", name ? name : "?");
}

static void run_unwind(struct unwinder *u, struct unw_proc *up, struct unwind_result *out)
{
	struct sample *s = &u->cur;
	s->unknown_addr = s->read_past_snapshot = s->read_failed = false;
	s->abort_reason = NULL;
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
	};
	int err = ensure_dwfl(u, up, p);
	/* Without a Dwfl, or with a pc it cannot place, the maps may be stale. */
	bool refreshed = err == -ENOENT || (!err && address_unknown(up, regs[REG_PC]));
	if (refreshed && refresh_for_unknown(u, ps, up, p))
		err = ensure_dwfl(u, up, p);
	if (err)
		return give_up(u, out, up->build_failure, err);
	run_unwind(u, up, out);
	if (u->cur.unknown_addr && !refreshed && refresh_for_unknown(u, ps, up, p)) {
		if ((err = ensure_dwfl(u, up, p)))
			return give_up(u, out, up->build_failure, err);
		run_unwind(u, up, out);
	}
	count(u, out);
	return 0;
}
