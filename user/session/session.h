/* The driver core, one for -p, -- CMD and --all: the BPF objects and their
 * events, the address spaces and stacks of the profiled processes, their
 * targets (target.h), and the loop. What differs between the drivers comes
 * in as hooks: the single-target driver (single.h) and the host agent
 * (host/host.h). */
#ifndef MW_SESSION_H
#define MW_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli/options.h"
#include "kernel/heapbpf.h"
#include "kernel/pages.h"
#include "probes/latency.h"
#include "proc/process.h"
#include "session/hookdrv.h"
#include "session/target.h"
#include "stacks/stacker.h"
#include "util/hashmap.h"

struct ring_buffer;

/* What a driver adds to the core. Any may be NULL. */
struct session_hooks {
	/* Every turn of the loop, after the events were read. */
	void (*turn)(void *ctx, uint64_t now_ns);
	/* Every interval, after each target's reading. */
	void (*interval)(void *ctx, uint64_t now_ns);
	/* The longest the loop may wait now (ms), or -1 for no limit. */
	int (*timeout_ms)(void *ctx, uint64_t now_ns);
	/* An fd the driver added (session_watch) is readable. */
	void (*ready)(void *ctx, int fd);
	/* A signal came (SIGINT, SIGTERM, SIGHUP, SIGCHLD); all but SIGCHLD
	 * then stop the loop. */
	void (*signal)(void *ctx, int signo);
	/* target_attach probed n allocator files of t (-errno: failed). */
	void (*attached)(void *ctx, struct target *t, int n);
	/* A process called exec (without this hook its target follows it). */
	void (*exec)(void *ctx, pid_t pid);
	/* --all: a process exited; s->exit_epoch is the pass that read it. */
	void (*exit)(void *ctx, pid_t pid);
	/* Every exit read in pass epoch or before has had one more pass over
	 * the rings since (its last samples are read): forget them now. */
	void (*exits_read)(void *ctx, uint64_t epoch);
};

struct session {
	const struct options *opt;
	struct procs procs;		/* address spaces of the profiled */
	struct stacker sk;
	struct heapbpf bpf;
	bool have_heap;			/* heap programs loaded (not floor ones) */
	bool floor;			/* --empty-probes: the floor programs */
	struct hook_driver hd;		/* in-process detours (--hook); hd.engine NULL: uprobes only */
	struct pages pages;
	bool have_pages;
	struct latency_probe lat;	/* --latency-probe */
	bool have_lat;
	bool lat_failed;		/* attaching it failed (reported) */
	bool loader_stops;		/* -- CMD: the loader hook stops the command instead */
	struct ring_buffer *rb;		/* the events of every BPF object */
	uint64_t exit_epoch;		/* see session_consume() */
	size_t exits_pending;		/* exits read, not yet passed on as read */
	struct hmap targets;		/* pid -> struct target * */
	uint64_t live_orphans;		/* live blocks of processes no longer profiled, dropped */
	const struct session_hooks *hooks;
	void *hooks_ctx;
	int sigfd, epfd;
	uint64_t start_ns, tick_ns, next_tick_ns;	/* CLOCK_MONOTONIC */
	int64_t start_real_ns;
	bool stop;
};

/* Blocks the signals the loop reads (before anything is forked). */
void session_block_signals(void);
/* 0, or -errno (out of memory). */
int session_init(struct session *s, const struct options *opt);
void session_free(struct session *s);
/* Loads and attaches the BPF objects for tgid (0: every process): the heap
 * programs (the floor ones with --empty-probes) unless --pages-only or
 * heap is false, the kernel side unless --empty-probes without
 * --pages-only, the latency probe if asked for. Reports its errors: 0 or -1. */
int session_load(struct session *s, pid_t tgid, bool heap);
/* The loop's signals, events and fds; 0 or -errno. */
int session_setup_loop(struct session *s, const struct session_hooks *hooks, void *ctx);
/* Adds fd to what the loop waits for (hooks->ready gets it). */
int session_watch(struct session *s, int fd);
/* Runs until a signal, the duration, or a hook sets s->stop. */
void session_run(struct session *s);
/* Reads the events waiting; after exit events, one more pass (then
 * hooks->exits_read). */
void session_consume(struct session *s);

struct target *session_target(const struct session *s, pid_t pid);
/* A new target for pid (profiled from now); NULL when out of memory or
 * when the process cannot be read. */
struct target *session_add_target(struct session *s, pid_t pid);
/* Stops profiling it: detaches its probes, forgets its stacks and its
 * process, frees it. */
void session_drop_target(struct session *s, struct target *t);
/* The run ends now for every probe, whatever the attach mode: the live
 * blocks stay as they are while links detach. Before any detach. */
void session_end_run(struct session *s);
/* Fresh in-use values for every target, from one pass over the live map. */
void session_scan_live(struct session *s);
/* The heap and kernel-side counters, summed over CPUs. */
void session_heap_counters(const struct session *s, uint64_t out[MW_CNT_NR]);

#endif
