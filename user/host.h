/* memwatch --all: every process on the host. The kernel side counts
 * faults, purges, refaults and syscall latency for all of them; the
 * processes the matcher selects also get heap probes, a heap profile and a
 * page profile. Processes are found at start, at exec and by a periodic
 * scan of /proc; they leave at exit. Everything is bounded: past
 * --max-processes and --max-profiled the least recently active go. */
#ifndef MW_HOST_H
#define MW_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "attach.h"
#include "hashmap.h"
#include "heapbpf.h"
#include "heapprof.h"
#include "hookdrv.h"
#include "match.h"
#include "memwatch.h"
#include "options.h"
#include "pageprof.h"
#include "pages.h"
#include "process.h"
#include "stacker.h"

struct ring_buffer;
struct http_server;
struct web_config;
struct outdir;
struct delta_request;

/* A process with heap probes. */
struct target {
	struct heapprof heap;
	struct pageprof pages;
	struct attacher att;
	int64_t start_real_ns;		/* when it was first profiled */
	bool has_allocator;		/* some allocator is probed */
	bool loader_hooked;
	int64_t next_write_ns;		/* --output-dir */
};

/* A process on the host. */
struct hproc {
	pid_t pid;
	uint64_t start_time;		/* tells a reused pid */
	char comm[16];
	char *cgroup;
	char *exe;
	char container[65];
	bool matched;			/* the matcher selects it */
	struct target *tgt;		/* NULL: kernel side only */
	uint64_t last_active_ns;	/* CLOCK_MONOTONIC: last change seen */
	uint64_t last_faults, last_calls, last_samples;
	bool seen;			/* by the current /proc scan */
	uint64_t exit_epoch;		/* 0, or the host's exit_epoch when its exit was read */
};

struct host_counts {
	uint64_t evicted_processes, evicted_profiled, dropped_processes;
	uint64_t exits, execs, attach_errors, live_orphans;
};

struct host {
	const struct options *opt;
	struct matcher match;
	struct procs procs;		/* address spaces of the profiled */
	struct stacker sk;
	struct heapbpf bpf;
	bool have_heap;
	struct hook_driver hd;		/* in-process detours (--hook) */
	struct pages pages;
	struct ring_buffer *rb;
	struct hmap by_pid;		/* pid -> struct hproc * */
	struct hmap skip;		/* (pid, start time) evicted: not re-added */
	size_t nprofiled;
	struct host_counts counts;
	struct http_server *http;
	struct web_config *web;		/* --web-config */
	struct outdir *outdir;
	struct delta_request *deltas;	/* ?seconds=N answers pending */
	uint64_t exit_epoch;		/* see consume() in host.c */
	size_t exits_pending;		/* exits read, the processes not yet forgotten */
	int sigfd, epfd;
	uint64_t start_ns, next_scan_ns;
	int64_t start_real_ns;
	bool stop;
};

/* Runs --all until SIGINT/SIGTERM or -d: 0, or 1 after a reported error. */
int host_run(const struct options *opt);

/* For the web side (hostweb.c). */
struct hproc *host_find(struct host *h, pid_t pid);
/* Fresh in-use values for every profile. */
void host_scan_live(struct host *h);

#endif
