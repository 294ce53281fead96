/* The BPF side's lifecycle: configure, load, seed the samplers, read the
 * counters, poll events. */
#ifndef MW_HEAPBPF_H
#define MW_HEAPBPF_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kernel/attach_mode.h"
#include "memwatch.h"

struct bpf_program;
struct heap_bpf;
struct heap_session_bpf;
struct floor_bpf;

struct bpf_link;
struct bpf_object;

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

struct heapbpf_config {
	pid_t tgid;		/* 0: any process the probes are attached to */
	uint64_t sample_bytes;
	uint32_t stack_mode, stack_bytes;
	uint32_t max_live, ring_bytes;
	bool empty;		/* load the empty floor programs instead */
	bool alloc_only;	/* no free probes, no live blocks */
	bool count_hits;	/* count probe hits (MW_CNT_HITS) */
	enum attach_mode mode;
};

struct heapbpf {
	struct heap_bpf *skel;
	struct heap_session_bpf *sess;	/* ATTACH_SESSION */
	struct floor_bpf *floor;
	struct bpf_link *exec_link;
	struct bpf_link *fork_link;
	enum attach_mode mode;		/* the one loaded */
	struct mw_stops *stops;		/* the stops map, mapped; NULL: none */
};

/* 0 or -errno; on failure nothing stays loaded. */
int heapbpf_load(struct heapbpf *b, const struct heapbpf_config *cfg);
void heapbpf_progs(const struct heapbpf *b, struct probe_progs *out);
/* A per-CPU counters map (bpf/capture.h) summed. */
void counters_read(int fd, uint64_t out[MW_CNT_NR]);
void heapbpf_counters(const struct heapbpf *b, uint64_t out[MW_CNT_NR]);
int heapbpf_live_fd(const struct heapbpf *b);
/* Calls visit for every live sampled block (the live map), in batches.
 * 0 or -errno. */
int live_map_scan(int live_fd, void (*visit)(void *ctx, const struct mw_live_key *key, uint64_t sample_id),
		  void *ctx);
int heapbpf_events_fd(const struct heapbpf *b);	/* the event ring; -1 without */
int heapbpf_lost_fd(const struct heapbpf *b);	/* sampled calls lost (struct mw_lost_key); -1 without */
/* Calls visit for every entry of the lost map with its values summed over
 * CPUs. 0 or -errno. */
int lost_map_scan(int lost_fd, void (*visit)(void *ctx, const struct mw_lost_key *key, const struct mw_lost_val *v),
		  void *ctx);
/* Deletes the lost map's entries of tgid (a process no longer profiled). */
void lost_map_forget(int lost_fd, __u32 tgid);
/* The heap object, whose maps other objects share; NULL without. */
struct bpf_object *heapbpf_object(const struct heapbpf *b);
void heapbpf_stop_on_loader(struct heapbpf *b, bool stop);
/* The programs stop the target process at its exec (a static command). */
void heapbpf_stop_on_exec(struct heapbpf *b, bool stop);
/* The stops the programs sent and memwatch undid (memwatch.h), shared with
 * the kernel; NULL if not loaded. Its map's fd, for the guardian: -1 if none. */
volatile struct mw_stops *heapbpf_stops(const struct heapbpf *b);
int heapbpf_stops_fd(const struct heapbpf *b);
/* The run's end, one instant for every heap program, in every object:
 * from now on none records or removes anything. Call it before detaching. */
void heapbpf_end_run(struct heapbpf *b);
void heapbpf_destroy(struct heapbpf *b);

#endif
