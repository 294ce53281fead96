/* The files -p and -- CMD write: the heap profile (-o), the page profile,
 * the timeline and the plot. All open before memwatch attaches, so that a
 * path that cannot be written is an error before anything happens to the
 * target; each renamed into place once written. */
#ifndef MW_OUTPUTS_H
#define MW_OUTPUTS_H

#include <sys/types.h>

#include "cli/options.h"
#include "profile/outfile.h"

struct procs;
struct target;

struct outputs {
	struct outfile heap, pages, timeline, plot;
};

/* pid names the default (memwatch-PID.pb.gz). 0, or -1 (reported). */
int outputs_open(struct outputs *o, const struct options *opt, pid_t pid);
void outputs_discard(struct outputs *o);
/* t's profiles with comments (NULL-terminated), start_real_ns to now, and
 * its timeline and plot: 0, or -EIO after reporting each failure. */
int outputs_write(struct outputs *o, const struct options *opt, struct procs *ps, struct target *t,
		  int64_t start_real_ns, const char *const *comments);

#endif
