/* --all's selection of the processes whose heap memwatch probes: by comm
 * (regular expressions), by pid, by cgroup; and what /proc/PID/cgroup says
 * about a process's cgroup and container. */
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

/* An upper bound of the nodes regcomp builds for the extended regex rx
 * (repetitions duplicate what they repeat); HUGE_VAL for a repetition of
 * a repetition ('a*+') or groups nested too deep. */
double regex_nodes(const char *rx);
/* Is path (as --cgroup takes it) a cgroup that exists now? 0, -EINVAL
 * for "." or ".." in it, -ENOENT. */
int cgroup_check(const char *path);
/* The process's cgroup v2 path ("/system.slice/x.service"), malloc'ed;
 * NULL if it cannot be read. On a v1-only host, the name=systemd hierarchy's. */
char *cgroup_of(pid_t pid);
/* The container id a cgroup path names (the last run of 64 hex digits, as
 * docker, containerd, CRI-O and podman name their scopes) into out[65];
 * "" if none. */
void container_id_of(const char *cgroup, char out[65]);

#endif
