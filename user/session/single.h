/* -p PID and -- CMD: one target, profiled until it exits, a signal or -d;
 * then its report and files. */
#ifndef MW_SINGLE_H
#define MW_SINGLE_H

#include <sys/resource.h>

#include "cli/options.h"

/* nofile: the file limit memwatch started with (a command gets it back).
 * Returns memwatch's exit status: 0 (or the command's), 1 on a runtime
 * error, 2 on a usage error, 127 when the command cannot be found. */
int single_run(const struct options *opt, const struct rlimit *nofile);

#endif
