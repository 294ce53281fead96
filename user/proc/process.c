#include "proc/process.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "elf/elf_file.h"
#include "elf/rootpath.h"
#include "elf/symbolize.h"
#include "proc/procstat.h"

void procs_init(struct procs *ps)
{
	hmap_init(&ps->by_pid, NULL, NULL);
	hmap_init(&ps->files, NULL, NULL);
	hmap_init(&ps->by_content, NULL, NULL);
	hmap_init(&ps->aliases, NULL, NULL);
	ps->sym = NULL;
}

static void objfile_free(struct objfile *o)
{
	free(o->alloc);
	if (o->elf)
		elf_file_close(o->elf);
	if (o->fd >= 0)
		close(o->fd);
	free(o->path);
	free(o);
}

void procs_free(struct procs *ps)
{
	struct hmap_slot *s;

	for (size_t i = 0; hmap_next(&ps->by_pid, &i, &s);) {
		struct process *p = s->val;
		maps_free(&p->maps);
		free(p);
	}
	for (size_t i = 0; hmap_next(&ps->files, &i, &s);)
		objfile_free(s->val);
	hmap_free(&ps->by_pid);
	hmap_free(&ps->files);
	hmap_free(&ps->by_content);
	hmap_free(&ps->aliases);
	if (ps->sym)
		symbolizer_free(ps->sym);
}

void procs_forget(struct procs *ps, pid_t pid)
{
	void *val;

	if (!hmap_remove(&ps->by_pid, hash_u64(pid), pid, &val))
		return;
	struct process *p = val;
	maps_free(&p->maps);
	free(p);
}

static uint64_t file_key(const struct mapping *m)
{
	return m->inode ^ ((uint64_t)m->dev_major << 52) ^ ((uint64_t)m->dev_minor << 32);
}

/* The mapped file: through map_files, else (a mapping map_files does not
 * show) by its path inside the process's root. */
static int open_mapped(pid_t pid, const struct mapping *m)
{
	char path[96];
	int fd, root;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid, m->start, m->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 || m->deleted)
		return fd;
	snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
	root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return -1;
	fd = rootpath_open(root, m->path, O_RDONLY);
	close(root);
	return fd;
}

#define MEMFD_HASHED_MAX (4u << 20)	/* larger memfds are keyed by inode only */

/* A memfd's content hash (0: none). Every process memwatch detours maps
 * the same agent from a memfd of its own: keyed by content, they share one
 * objfile (its fd, ELF, symbols and unwind rules) instead of one each that
 * would outlive the process. */
static uint64_t memfd_content_key(int fd, const struct mapping *m)
{
	struct stat st;

	if (strncmp(m->path, "/memfd:", 7) || fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > MEMFD_HASHED_MAX)
		return 0;
	char *buf = malloc(st.st_size);
	if (!buf)
		return 0;
	uint64_t key = 0;
	if (pread(fd, buf, st.st_size, 0) == st.st_size)
		key = hash_bytes(buf, st.st_size, (uint64_t)st.st_size) | 1;
	free(buf);
	return key;
}

static struct objfile *objfile_new(pid_t pid, const struct mapping *m, int fd)
{
	struct objfile *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->dev = (uint64_t)m->dev_major << 32 | m->dev_minor;
	o->inode = m->inode;
	o->path = strdup(m->path);
	snprintf(o->root, sizeof(o->root), "/proc/%d/root", (int)pid);
	o->fd = fd;
	if (o->fd >= 0)
		o->elf = elf_file_open(o->fd);
	if (!o->path) {
		objfile_free(o);
		return NULL;
	}
	return o;
}

static struct objfile *objfile_for(struct procs *ps, pid_t pid, const struct mapping *m)
{
	uint64_t key = file_key(m);
	void **slot = hmap_find(&ps->files, hash_u64(key), key);

	if (!slot)
		slot = hmap_find(&ps->aliases, hash_u64(key), key);
	if (slot)
		return *slot;
	int fd = open_mapped(pid, m);
	uint64_t content = fd >= 0 ? memfd_content_key(fd, m) : 0;
	slot = content ? hmap_find(&ps->by_content, hash_u64(content), content) : NULL;
	if (slot) {
		close(fd);
		return hmap_put(&ps->aliases, hash_u64(key), key, *slot) ? NULL : *slot;
	}
	struct objfile *o = objfile_new(pid, m, fd);
	if (!o || hmap_put(&ps->files, hash_u64(key), key, o)) {
		if (o)
			objfile_free(o);
		else if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (content)	/* a failed insert only loses the sharing */
		hmap_put(&ps->by_content, hash_u64(content), content, o);
	return o;
}

static void attach_objfiles(struct procs *ps, struct process *p)
{
	for (size_t i = 0; i < p->maps.n; i++) {
		struct mapping *m = &p->maps.v[i];
		/* Code lives in executable mappings; opening the others would
		 * only pin data files. */
		if (mapping_is_file(m) && m->executable)
			m->data = objfile_for(ps, p->pid, m);
	}
}

/* The process's start time, 0 once it is gone. */
static uint64_t start_time_of(pid_t pid)
{
	struct proc_stat st;

	return procstat_read(pid, &st) ? 0 : st.start_time;
}

static void read_comm(struct process *p)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)p->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, p->comm, sizeof(p->comm) - 1);
	close(fd);
	if (n > 0) {
		p->comm[n] = 0;
		if (p->comm[n - 1] == '\n')	/* the kernel's; a newline inside is the comm's */
			p->comm[n - 1] = 0;
	}
}

static void read_exe(struct process *p)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)p->pid);
	if (stat(path, &st))
		return;
	p->exe_dev = (uint64_t)major(st.st_dev) << 32 | minor(st.st_dev);
	p->exe_inode = st.st_ino;
}

bool objfile_is_exe(const struct objfile *o, const struct process *p)
{
	return o && o->inode == p->exe_inode && o->dev == p->exe_dev;
}

static bool same_maps(const struct maps *a, const struct maps *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct mapping *x = &a->v[i], *y = &b->v[i];
		if (x->start != y->start || x->end != y->end || x->offset != y->offset ||
		    x->inode != y->inode || x->executable != y->executable)
			return false;
	}
	return true;
}

int process_refresh(struct procs *ps, struct process *p)
{
	struct maps fresh;
	int err;

	if (p->gone)
		return -ESRCH;
	err = maps_read(p->pid, &fresh);
	/* A zombie or exited process reads as no maps at all. */
	if (!err && fresh.n == 0)
		err = -ESRCH;
	if (!err && p->start_time && start_time_of(p->pid) != p->start_time)
		err = -ESRCH;
	if (err) {
		if (err == -ESRCH || err == -ENOENT) {
			p->gone = true;
			err = -ESRCH;
		}
		return err;
	}
	if (p->maps.n && same_maps(&p->maps, &fresh)) {
		maps_free(&fresh);
		return 0;
	}
	/* Frames already resolved keep pointing at objfiles, never at the old
	 * snapshot, so the old snapshot can go. */
	maps_free(&p->maps);
	p->maps = fresh;
	p->generation++;
	attach_objfiles(ps, p);
	return 0;
}

int process_exec(struct procs *ps, struct process *p)
{
	p->epoch++;
	p->gone = false;
	read_comm(p);
	read_exe(p);
	return process_refresh(ps, p);
}

struct process *procs_find(struct procs *ps, pid_t pid)
{
	void **slot = hmap_find(&ps->by_pid, hash_u64(pid), pid);

	return slot ? *slot : NULL;
}

struct process *procs_get(struct procs *ps, pid_t pid)
{
	struct process *p = procs_find(ps, pid);

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->pid = pid;
	snprintf(p->root, sizeof(p->root), "/proc/%d/root", (int)pid);
	p->start_time = start_time_of(pid);
	read_comm(p);
	read_exe(p);
	int err = process_refresh(ps, p);
	if (err || hmap_put(&ps->by_pid, hash_u64(pid), pid, p)) {
		maps_free(&p->maps);
		free(p);
		errno = err ? -err : ENOMEM;
		return NULL;
	}
	return p;
}

static bool resolve_in(const struct process *p, uint64_t addr, struct frame_at *out)
{
	const struct mapping *m = maps_find(&p->maps, addr);

	memset(out, 0, sizeof(*out));
	if (!m)
		return false;
	out->map = m;
	out->obj = m->data;
	if (out->obj && out->obj->elf &&
	    elf_file_offset_to_vaddr(out->obj->elf, addr - m->start + m->offset, &out->vaddr))
		out->obj = NULL;
	return true;
}

bool process_resolve(struct procs *ps, struct process *p, uint64_t addr, struct frame_at *out)
{
	if (resolve_in(p, addr, out))
		return true;
	if (process_refresh(ps, p))
		return false;
	return resolve_in(p, addr, out);
}

struct sym_file *objfile_symbols(struct procs *ps, struct objfile *obj)
{
	if (obj->sym_tried)
		return obj->sym;
	obj->sym_tried = true;
	if (!ps->sym)
		ps->sym = symbolizer_new();
	if (ps->sym && obj->fd >= 0)
		obj->sym = symbolizer_file(ps->sym, obj->fd, obj->path, obj->root);
	return obj->sym;
}

const char *process_loader_path(const struct process *p, char *buf, size_t len)
{
	for (size_t i = 0; i < p->maps.n; i++) {
		const struct mapping *m = &p->maps.v[i];
		const char *base = strrchr(m->path, '/');
		if (m->executable && base && !strncmp(base + 1, "ld-", 3)) {
			snprintf(buf, len, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)p->pid, m->start, m->end);
			return buf;
		}
	}
	return NULL;
}

uint64_t process_runtime_addr(const struct process *p, const struct objfile *o, uint64_t vaddr)
{
	uint64_t off;

	if (!o->elf || elf_file_vaddr_to_offset(o->elf, vaddr, &off))
		return 0;
	for (size_t i = 0; i < p->maps.n; i++) {
		const struct mapping *m = &p->maps.v[i];
		if (m->data == o && off >= m->offset && off < m->offset + (m->end - m->start))
			return m->start + (off - m->offset);
	}
	return 0;
}
