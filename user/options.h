/* Command line. */
#ifndef MW_OPTIONS_H
#define MW_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct options {
	pid_t pid;		/* -p; 0 with a command */
	char **cmd;		/* after --; NULL with -p */
	const char *output;	/* NULL: memwatch-PID.pb.gz */
	double duration;	/* seconds; 0: until the target exits or a signal */
	uint64_t sample_bytes;
	double interval;	/* seconds between live summaries; 0: none */
	int verbose;
	uint32_t max_live;	/* sampled blocks tracked at once */
	uint32_t ring_bytes;
	bool empty_probes;	/* benchmark floor: empty programs, no profile */
};

/* 0: run; 1: done (help or version printed); -1: bad usage (reported). */
int options_parse(int argc, char **argv, struct options *o);
/* "512k", "1M", "4096": 0 or -1. */
int parse_size(const char *s, uint64_t *out);

#endif
