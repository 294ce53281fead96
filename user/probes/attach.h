/* The heap probes of a process: which files it maps hold an allocator
 * (allocators.h), where each entry point's probe goes (placement.h), the
 * ranges of allocator code whose calls to other entries are internal, the
 * dynamic loader hook; attached as uprobes (uprobe.h). */
#ifndef MW_ATTACH_H
#define MW_ATTACH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "kernel/heapbpf.h"
#include "memwatch.h"
#include "probes/placement.h"
#include "probes/unprobe.h"
#include "probes/uprobe.h"
#include "util/hashmap.h"

struct bpf_program;
struct bpf_link;
struct allocator;
struct process;
struct procs;
struct objfile;

/* In-process detours (the driver's: inject/ sits above probes/), tried
 * before the uprobes of each allocator file. */
struct attach_inline {
	/* 1: alloc's entries in o are detoured; 0: probe them; -errno. */
	int (*attach)(void *ctx, struct process *p, struct objfile *o, const struct allocator *alloc);
	/* Restores pid's entries. */
	void (*detach)(void *ctx, pid_t pid);
	void *ctx;
};

struct attacher {
	struct probe_progs progs;
	FILE *log;			/* -v output, or NULL */
	struct link_set heap;		/* allocator probes */
	struct link_set loader;		/* the dynamic loader hook */
	struct hmap done;		/* (pid, objfile) pairs already probed */
	unsigned nprobes;		/* probe sites attached */
	struct probe_sites sites;	/* every site probed, the loader hook's too */
	char allocators[128];		/* names of the allocators found, for reports */
	const char *only;		/* --allocator: these allocators only, or NULL */
	struct attach_inline inl;	/* in-process detours first, where they go */
	pid_t hooked_pid;		/* ... installed in this process */
	unsigned ninline;		/* allocator files detoured */
	struct hmap inlined;		/* (pid, objfile) pairs detoured: exec needs them again */
};

void attacher_init(struct attacher *a, const struct probe_progs *progs, const char *only, FILE *log);
/* Probes every allocator p maps that is not probed yet. Returns how many
 * allocator files were newly probed, or -errno. */
int attach_allocators(struct attacher *a, struct procs *ps, struct process *p);
/* p called exec: redo nesting ranges for its new maps, probe new allocators. */
int attach_after_exec(struct attacher *a, struct procs *ps, struct process *p);
/* The allocator p's malloc resolves to, by what discovery finds in the
 * files p maps (a jemalloc or tcmalloc before the glibc mapped anyway;
 * only: --allocator's list, or NULL); NULL if it finds none it knows. */
const char *allocator_in_use(struct process *p, const char *only);
/* Hooks the dynamic loader mapped in p (or, when p has not exec'd yet, the
 * interpreter file at path) so that memwatch hears of dlopen. */
int attach_loader(struct attacher *a, pid_t pid, const char *path);
void attacher_detach(struct attacher *a);
/* One probe of layout's kind (entry + return, session, or entry only) at a
 * file offset, into set. */
int attach_probe_at(struct attacher *a, struct link_set *set, enum mw_layout layout, pid_t pid, const char *path,
		    uint64_t offset);
/* Detaches the allocator probes of pid only (the loader hook stays);
 * attach_allocators attaches them again. */
void attacher_suspend(struct attacher *a, pid_t pid);
/* child, forked by parent, gets the bytes of the files back at every site
 * (unprobe.h). The sites restored, or -errno. */
int attacher_unprobe_child(struct attacher *a, pid_t child, pid_t parent);

#endif
