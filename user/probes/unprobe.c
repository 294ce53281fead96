#include "probes/unprobe.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc/procmaps.h"
#include "util/array.h"

#define BREAKPOINT 0xcc	/* x86 int3, what uprobes write */

int probe_sites_add(struct probe_sites *s, const struct probe_site *site)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].dev == site->dev && s->v[i].inode == site->inode && s->v[i].offset == site->offset)
			return 0;
	if (ARRAY_GROW(s->v, s->n, s->cap))
		return -ENOMEM;
	s->v[s->n++] = *site;
	return 0;
}

void probe_sites_free(struct probe_sites *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* The parent in /proc/PID/stat (after the comm's last ')'), or -1. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *end;
	int ppid = -1;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	end = strrchr(buf, ')');
	if (!end || sscanf(end + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

/* Does child still run its parent's program (no exec since the fork)? */
static bool same_program(pid_t child, pid_t parent)
{
	char path[64];
	struct stat a, b;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)child);
	if (stat(path, &a))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)parent);
	return !stat(path, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Where site is mapped executable in maps, or 0. */
static uint64_t site_address(const struct maps *maps, const struct probe_site *site)
{
	for (size_t i = 0; i < maps->n; i++) {
		const struct mapping *m = &maps->v[i];
		uint64_t dev = (uint64_t)m->dev_major << 32 | m->dev_minor;
		if (m->executable && dev == site->dev && m->inode == site->inode && site->offset >= m->offset &&
		    site->offset < m->offset + (m->end - m->start))
			return m->start + (site->offset - m->offset);
	}
	return 0;
}

int unprobe_child(const struct probe_sites *s, pid_t child, pid_t parent)
{
	char path[64];
	struct maps maps = { 0 };
	int restored = 0, fd, err;

	/* The fd holds the address space the child has now: if it execs
	 * later, writes go to the old one, which is going away. */
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)child);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = parent_of(child) == parent && same_program(child, parent) ? maps_read(child, &maps) : -ESRCH;
	for (size_t i = 0; !err && i < s->n; i++) {
		const struct probe_site *site = &s->v[i];
		uint64_t addr = site_address(&maps, site);
		uint8_t now[UNPROBE_BYTES];
		if (!addr || site->orig[0] == BREAKPOINT || pread(fd, now, sizeof(now), (off_t)addr) != sizeof(now) ||
		    now[0] != BREAKPOINT || memcmp(now + 1, site->orig + 1, sizeof(now) - 1))
			continue;
		/* One byte: the child may run this very instruction; it sees
		 * the breakpoint or the original, and the kernel restarts an
		 * instruction whose breakpoint went away. */
		if (pwrite(fd, site->orig, 1, (off_t)addr) == 1)
			restored++;
	}
	maps_free(&maps);
	close(fd);
	return err ? err : restored;
}
