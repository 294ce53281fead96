/* memwatch --all: every process on the host, over the driver core. The
 * kernel side counts faults, purges, refaults and syscall latency for all
 * of them; the processes the selection matches also get heap probes, a heap
 * and a page profile, and a diagnosis: their verdict when they leave (after
 * 3 intervals or more) and when memwatch stops. Processes are found at
 * start, at exec and by a periodic scan of /proc; they leave at exit.
 * Everything is bounded: past --max-processes and --max-profiled the least
 * recently active go. */
#ifndef MW_HOST_H
#define MW_HOST_H

#include "cli/options.h"

/* Runs --all until SIGINT/SIGTERM or -d: 0, or 1 after a reported error. */
int host_run(const struct options *opt);

#endif
