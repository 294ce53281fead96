/* What a process's cgroup is (/proc/PID/cgroup), its container, and the
 * cgroup paths --cgroup takes. */
#ifndef MW_CGROUP_H
#define MW_CGROUP_H

#include <sys/types.h>

/* "/sys/fs/cgroup/a/b/" -> "/a/b"; "a/b" -> "/a/b"; "/" stays. malloc'ed,
 * NULL if out of memory. */
char *cgroup_normalize(const char *path);
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
