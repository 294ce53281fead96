/* Each process's Dwfl for the unwinder: its executable file mappings
 * reported at their load biases, rebuilt when they change; their separate
 * debug files (for .debug_frame) from debugfile.h. */
#include "stacks/unwind_impl.h"

#include <dwarf.h>
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf/elf_file.h"

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

bool unw_same_exec_maps(const struct unw_proc *up, const struct process *p)
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

void unw_drop_dwfl(struct unw_proc *up)
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
	unw_drop_dwfl(up);
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
	if (!dwfl_attach_state(up->dwfl, NULL, p->pid, &unw_thread_callbacks, up)) {
		up->build_failure = unw_dwfl_reason(u, dwfl_errno());
		unw_drop_dwfl(up);
		return -ENOENT;
	}
	return 0;
}

/* Another process now has the pid (or procs made a new struct process). */
static void start_over(struct unw_proc *up, struct process *p)
{
	unw_drop_dwfl(up);
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
int unw_ensure_dwfl(struct unwinder *u, struct unw_proc *up, struct process *p)
{
	if (up->proc != p || up->start_time != p->start_time)
		start_over(up, p);
	if (up->checked && up->generation == p->generation)
		return up->dwfl ? 0 : -ENOENT;
	if (up->checked && unw_same_exec_maps(up, p)) {
		up->generation = p->generation;
		return up->dwfl ? 0 : -ENOENT;
	}
	return build_dwfl(u, up, p);
}
