/* Target processes: their address spaces (maps snapshots) and the object
 * files mapped in them, opened through /proc/PID/map_files so that a target in
 * another mount namespace, or running a deleted binary, is read correctly. */
#ifndef MW_PROCESS_H
#define MW_PROCESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proc/procmaps.h"
#include "util/hashmap.h"

struct elf_file;
struct sym_file;
struct symbolizer;
struct allocator;

struct objfile {
	uint64_t dev, inode;
	int fd;			/* -1: could not be opened */
	char *path;		/* as the first target that mapped it names it */
	char root[32];		/* "/proc/PID/root" of that target */
	struct elf_file *elf;	/* NULL: not an ELF file we can read */
	struct sym_file *sym;
	bool sym_tried;
	struct allocator *alloc;	/* what allocator_find found, cached */
	bool alloc_checked;
};

struct process {
	pid_t pid;
	char root[32];
	char comm[17];
	uint64_t start_time;	/* clock ticks after boot: tells a reused pid */
	uint64_t exe_dev, exe_inode;	/* the main executable, as objfiles key it */
	struct maps maps;	/* latest snapshot; data points at the objfile */
	unsigned generation;	/* bumped by every refresh that changed maps */
	unsigned epoch;		/* bumped by exec: addresses mean new things */
	bool gone;
};

struct procs {
	struct hmap by_pid;	/* pid -> struct process * */
	struct hmap files;	/* (dev, inode) -> struct objfile * */
	struct hmap by_content;	/* memfds: content hash -> struct objfile * (in files) */
	struct hmap aliases;	/* memfds: (dev, inode) -> the objfile of the same content */
	struct symbolizer *sym;
};

void procs_init(struct procs *ps);
void procs_free(struct procs *ps);
/* The process, reading its maps the first time; NULL with errno set. */
struct process *procs_get(struct procs *ps, pid_t pid);
struct process *procs_find(struct procs *ps, pid_t pid);
/* Drops pid's process (its object files stay, shared and cached). */
void procs_forget(struct procs *ps, pid_t pid);
/* Re-reads maps. 0, or -ESRCH once the process is gone (its last snapshot stays). */
int process_refresh(struct procs *ps, struct process *p);
/* p called exec: a new image in the same process. */
int process_exec(struct procs *ps, struct process *p);

/* A code address resolved to its file. */
struct frame_at {
	const struct mapping *map;	/* NULL: no mapping holds it */
	struct objfile *obj;		/* NULL: anonymous or unreadable */
	uint64_t vaddr;			/* ELF virtual address in obj */
};
/* Resolves addr in p's snapshot, refreshing it once if addr is unknown. */
bool process_resolve(struct procs *ps, struct process *p, uint64_t addr, struct frame_at *out);
struct sym_file *objfile_symbols(struct procs *ps, struct objfile *obj);
bool objfile_is_exe(const struct objfile *o, const struct process *p);
/* Where ELF address vaddr of o is mapped in p's snapshot, or 0. */
uint64_t process_runtime_addr(const struct process *p, const struct objfile *o, uint64_t vaddr);
/* The dynamic loader p maps (ld-*), as /proc/PID/map_files/START-END in buf
 * (which probes and reads work through whatever namespace p is in); NULL for
 * a static executable. */
const char *process_loader_path(const struct process *p, char *buf, size_t len);

#endif
