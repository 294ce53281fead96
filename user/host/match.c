#include "host/match.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc/cgroup.h"

int matcher_init(struct matcher *m, const char *const *comms, size_t ncomms, const pid_t *pids, size_t npids,
		 const char *const *cgroups, size_t ncgroups)
{
	memset(m, 0, sizeof(*m));
	m->comms = calloc(ncomms + 1, sizeof(*m->comms));
	m->cgroups = calloc(ncgroups + 1, sizeof(*m->cgroups));
	if (!m->comms || !m->cgroups) {
		matcher_free(m);
		return -ENOMEM;
	}
	for (; m->ncomms < ncomms; m->ncomms++) {
		if (regcomp(&m->comms[m->ncomms], comms[m->ncomms], REG_EXTENDED | REG_NOSUB)) {
			matcher_free(m);
			return -EINVAL;
		}
	}
	for (; m->ncgroups < ncgroups; m->ncgroups++) {
		if (!(m->cgroups[m->ncgroups] = cgroup_normalize(cgroups[m->ncgroups]))) {
			matcher_free(m);
			return -ENOMEM;
		}
	}
	m->pids = pids;
	m->npids = npids;
	struct stat self;
	if (!stat("/proc/self/exe", &self)) {
		m->self_dev = self.st_dev;
		m->self_ino = self.st_ino;
	}
	return 0;
}

void matcher_free(struct matcher *m)
{
	for (size_t i = 0; i < m->ncomms; i++)
		regfree(&m->comms[i]);
	for (size_t i = 0; i < m->ncgroups; i++)
		free(m->cgroups[i]);
	free(m->comms);
	free(m->cgroups);
	memset(m, 0, sizeof(*m));
}

bool matcher_empty(const struct matcher *m)
{
	return !m->ncomms && !m->npids && !m->ncgroups;
}

static bool under(const char *cgroup, const char *prefix)
{
	size_t n = strlen(prefix);

	if (!strcmp(prefix, "/"))
		return true;
	return !strncmp(cgroup, prefix, n) && (cgroup[n] == '/' || !cgroup[n]);
}

/* pid runs memwatch: this very executable, or (another build) one whose
 * name and comm start with "memwatch". */
static bool runs_memwatch(const struct matcher *m, pid_t pid, const char *comm)
{
	char path[64], exe[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st))
		return false;
	if (m->self_ino && st.st_dev == m->self_dev && st.st_ino == m->self_ino)
		return true;
	if (!comm || strncmp(comm, "memwatch", 8))
		return false;
	ssize_t n = readlink(path, exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = 0;
	const char *slash = strrchr(exe, '/');
	return !strncmp(slash ? slash + 1 : exe, "memwatch", 8);
}

bool matcher_match(const struct matcher *m, pid_t pid, const char *comm, const char *cgroup)
{
	if (runs_memwatch(m, pid, comm))
		return false;	/* two --all would probe each other's allocations */
	for (size_t i = 0; i < m->npids; i++)
		if (m->pids[i] == pid)
			return true;
	for (size_t i = 0; comm && i < m->ncomms; i++)
		if (!regexec(&m->comms[i], comm, 0, NULL, 0))
			return true;
	for (size_t i = 0; cgroup && i < m->ncgroups; i++)
		if (under(cgroup, m->cgroups[i]))
			return true;
	return false;
}
