#include "probes/detoured.h"
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AGENT_MAPPING "/memfd:memwatch-agent"

/* /proc/PID/maps whole, NUL-terminated; NULL if unreadable. */
static char *read_maps(const char *pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%s/maps", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t size = 0;
	FILE *mem = open_memstream(&buf, &size);
	char chunk[8192];
	size_t n;
	while (mem && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, mem);
	fclose(f);
	if (!mem || fclose(mem)) {
		free(buf);
		return NULL;
	}
	return buf;
}

static bool maps_hold(const char *maps, uint64_t dev, uint64_t inode)
{
	for (const char *line = maps; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		unsigned major, minor;
		uint64_t ino;
		if (sscanf(line, "%*x-%*x %*4s %*x %x:%x %" SCNu64, &major, &minor, &ino) == 3 && ino == inode &&
		    ((uint64_t)major << 32 | minor) == dev)
			return true;
	}
	return false;
}

bool file_detoured_in(pid_t pid, uint64_t dev, uint64_t inode)
{
	char name[16];
	snprintf(name, sizeof(name), "%d", (int)pid);
	char *maps = read_maps(name);
	bool found = !maps || (strstr(maps, AGENT_MAPPING) && maps_hold(maps, dev, inode));
	free(maps);
	return found;
}
