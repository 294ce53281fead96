#include "proc/cgroup.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* cgroup2's usual mount point: --cgroup takes paths under it too. */
#define CGROUP_MOUNT "/sys/fs/cgroup"

char *cgroup_normalize(const char *path)
{
	size_t mlen = strlen(CGROUP_MOUNT);
	char *out;

	if (!strncmp(path, CGROUP_MOUNT, mlen) && (path[mlen] == '/' || !path[mlen]))
		path += mlen;
	if (asprintf(&out, "%s%s", *path == '/' ? "" : "/", path) < 0)
		return NULL;
	for (size_t n = strlen(out); n > 1 && out[n - 1] == '/'; n--)
		out[n - 1] = 0;
	return out;
}

static bool has_dot_component(const char *path)
{
	for (const char *p = path; (p = strstr(p, "/.")); p++)
		if (p[2] == '/' || !p[2] || (p[2] == '.' && (p[3] == '/' || !p[3])))
			return true;
	return false;
}

/* The hierarchies a cgroup path may be in: cgroup2 (unified or hybrid),
 * or v1's name=systemd. */
static bool cgroup_dir_exists(const char *cgroup)
{
	static const char *const roots[] = { CGROUP_MOUNT, CGROUP_MOUNT "/unified", CGROUP_MOUNT "/systemd" };
	char path[4096];
	struct stat st;

	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
		if (snprintf(path, sizeof(path), "%s%s", roots[i], cgroup) < (int)sizeof(path) && !stat(path, &st) &&
		    S_ISDIR(st.st_mode))
			return true;
	return false;
}

int cgroup_check(const char *path)
{
	char *cgroup = cgroup_normalize(path);
	int err = !cgroup ? -ENOMEM : has_dot_component(cgroup) ? -EINVAL : cgroup_dir_exists(cgroup) ? 0 : -ENOENT;

	free(cgroup);
	return err;
}

/* A line of /proc/PID/cgroup: "ID:CONTROLLERS:PATH". */
static const char *cgroup_line_path(const char *line, const char *want_controllers)
{
	const char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

	if (!c2 || (size_t)(c2 - c1 - 1) != strlen(want_controllers) ||
	    strncmp(c1 + 1, want_controllers, c2 - c1 - 1))
		return NULL;
	return c2 + 1;
}

char *cgroup_of(pid_t pid)
{
	char path[64], *line = NULL, *v2 = NULL, *v1 = NULL;
	size_t cap = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = 0;
		const char *p;
		if (!v2 && (p = cgroup_line_path(line, "")) && !strncmp(line, "0:", 2))
			v2 = strdup(p);
		else if (!v1 && (p = cgroup_line_path(line, "name=systemd")))
			v1 = strdup(p);
	}
	free(line);
	fclose(f);
	if (v2) {
		free(v1);
		return v2;
	}
	return v1;
}

void container_id_of(const char *cgroup, char out[65])
{
	size_t run = 0;

	out[0] = 0;
	for (const char *p = cgroup; p && *p; p++) {
		run = isxdigit((unsigned char)*p) && !isupper((unsigned char)*p) ? run + 1 : 0;
		if (run == 64 && !isxdigit((unsigned char)p[1])) {
			memcpy(out, p - 63, 64);
			out[64] = 0;
		}
	}
}
