/* Command line. */
#ifndef MW_OPTIONS_H
#define MW_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "kernel/attach_mode.h"
#include "stacks/stack_mode.h"

struct options {
	pid_t pid;		/* -p; 0 with a command */
	char **cmd;		/* after --; NULL with -p */
	const char *output;	/* NULL: memwatch-PID.pb.gz */
	double duration;	/* seconds; 0: until the target exits or a signal */
	uint64_t sample_bytes;
	double interval;	/* seconds between live summaries; 0: none */
	int verbose;
	uint32_t max_live;	/* sampled blocks tracked at once */
	enum stack_mode stack_mode;
	uint32_t stack_bytes;	/* stack snapshot size (auto, dwarf) */
	uint32_t ring_bytes;
	bool empty_probes;	/* benchmark floor: empty programs, no profile */
	const char *allocator;	/* --allocator: only these (comma-separated) */
	enum attach_mode attach_mode;
	int hook;		/* enum hook_mode (inject/hooks.h) */
	bool alloc_only;	/* allocation rates only: no free probes */
	double max_overhead;	/* --max-overhead, as a fraction; 0: none */
	bool pages_only;	/* the kernel side only: no uprobes in the target */
	const char *pages_output;	/* NULL: derived from the output */
	uint64_t page_sample_bytes;
	const char *latency_probe;	/* FILE:FUNCTION */
	const char *timeline;	/* .csv or .json */
	const char *plot;	/* .svg */

	/* --all: every process on the host */
	bool all;
	const char **comms;	/* --comm REGEX: heap probes for matching comms */
	size_t ncomms;
	pid_t *pids;		/* --pid LIST under --all */
	size_t npids;
	const char **cgroups;	/* --cgroup PATH */
	size_t ncgroups;
	const char *listen;	/* --listen [ADDR:]PORT or unix:PATH */
	const char *web_config;	/* --web-config FILE */
	bool insecure_listen;	/* --insecure-listen */
	const char *output_dir;
	uint64_t output_keep;	/* files kept in --output-dir; 0: no count bound */
	uint64_t output_max_bytes;	/* bytes kept there; 0: no byte bound */
	uint32_t max_processes;	/* processes tracked at once */
	uint32_t max_profiled;	/* processes with heap probes at once */
};

/* 0: run; 1: done (help or version printed); -1: bad usage (reported). */
int options_parse(int argc, char **argv, struct options *o);
void options_free(struct options *o);
/* "512k", "1M", "4096": 0 or -1. */
int parse_size(const char *s, uint64_t *out);
const char *hook_mode_name(int mode);

struct machine;
/* Fills the sizes the user left to their defaults (0), clamped to the
 * machine (cli/bounds.h), and checks those given: 0, or -1 with the reason
 * on stderr. options_parse does it. */
int bounds_apply(struct options *o, const struct machine *m);

#endif
