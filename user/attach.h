/* Allocator discovery and probe attachment: which files in a process hold an
 * allocator, where its entry points are, where to put each probe, and the
 * uprobes themselves. */
#ifndef MW_ATTACH_H
#define MW_ATTACH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "hashmap.h"
#include "memwatch.h"
#include "placement.h"

struct bpf_program;
struct bpf_link;
struct hook_engine;
struct process;
struct procs;
struct objfile;

/* The BPF programs put at probe sites (memwatch's, or empty ones). */
struct probe_progs {
	struct bpf_program *enter[MW_LAYOUT_COUNT];	/* entry, by argument layout */
	struct bpf_program *exit;	/* allocation return */
	struct bpf_program *loader;	/* ld.so _dl_debug_state; may be NULL */
	int nests_fd;			/* BPF map of nesting ranges; -1: none */
	bool multi;			/* uprobe_multi links, not perf events */
	bool session;			/* allocation entries are uprobe sessions */
	bool no_frees;			/* --alloc-only: release entries get no probe */
};

struct link_set {
	struct bpf_link **links;	/* classic perf-event uprobes */
	size_t nlinks, cap_links;
	int *fds;			/* uprobe_multi links */
	size_t nfds, cap_fds;
};

struct attacher {
	struct probe_progs progs;
	FILE *log;			/* -v output, or NULL */
	struct link_set heap;		/* allocator probes */
	struct link_set loader;		/* the dynamic loader hook */
	struct hmap done;		/* (pid, objfile) pairs already probed */
	unsigned nprobes;		/* probe sites attached */
	char allocators[128];		/* names of the allocators found, for reports */
	const char *only;		/* --allocator: these allocators only, or NULL */
	struct hook_engine *hooks;	/* in-process detours first, where they go (inject/hooks.h) */
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
/* Hooks the dynamic loader mapped in p (or, when p has not exec'd yet, the
 * interpreter file at path) so that memwatch hears of dlopen. */
int attach_loader(struct attacher *a, pid_t pid, const char *path);
void attacher_detach(struct attacher *a);
/* One probe of layout's kind (entry + return, session, or entry only) at a
 * file offset, into set. */
int attach_probe_at(struct attacher *a, struct link_set *set, enum mw_layout layout, pid_t pid, const char *path,
		    uint64_t offset);
void attach_close(struct link_set *set);
/* An entry program (and a return program, if exit) at a file offset:
 * uprobe_multi links when multi (programs loaded for them), else perf-event
 * uprobes. */
int attach_entry_exit(struct link_set *set, bool multi, struct bpf_program *enter, struct bpf_program *exit, pid_t pid,
		      const char *path, uint64_t offset);
/* Detaches the allocator probes of pid only (the loader hook stays);
 * attach_allocators attaches them again. */
void attacher_suspend(struct attacher *a, pid_t pid);

#endif
