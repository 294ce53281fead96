#include "host/match.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

bool matcher_match(const struct matcher *m, pid_t pid, const char *comm, const char *cgroup)
{
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
