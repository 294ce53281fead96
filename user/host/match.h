/* --all's selection of the processes whose heap memwatch probes: by comm
 * (regular expressions), by pid, by cgroup (proc/cgroup.h). */
#ifndef MW_MATCH_H
#define MW_MATCH_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct matcher {
	regex_t *comms;
	size_t ncomms;
	const pid_t *pids;
	size_t npids;
	char **cgroups;		/* as /proc/PID/cgroup names them: "/a/b" */
	size_t ncgroups;
};

/* 0 or -errno (-EINVAL: a bad regex, already checked by the options). */
int matcher_init(struct matcher *m, const char *const *comms, size_t ncomms, const pid_t *pids, size_t npids,
		 const char *const *cgroups, size_t ncgroups);
void matcher_free(struct matcher *m);
bool matcher_empty(const struct matcher *m);
/* cgroup: the process's cgroup path (cgroup_of), or NULL if unknown. */
bool matcher_match(const struct matcher *m, pid_t pid, const char *comm, const char *cgroup);

#endif
