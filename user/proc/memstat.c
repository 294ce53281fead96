#include "proc/memstat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proc/procmaps.h"

#define ARENA_SIZE (64ull << 20)

static ssize_t read_proc(pid_t pid, const char *what, char *buf, size_t len)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int err = errno;
	close(fd);
	if (n < 0)
		return -err;
	buf[n] = 0;
	return n;
}

/* "Key:   123 kB" -> bytes, or -1. */
static int64_t field_kb(const char *text, const char *key)
{
	const char *p = text;
	size_t klen = strlen(key);
	long long kb;

	while ((p = strstr(p, key))) {
		if ((p == text || p[-1] == '\n') && p[klen] == ':' && sscanf(p + klen + 1, "%lld", &kb) == 1)
			return kb * 1024;
		p += klen;
	}
	return -1;
}

int memstat_read_status(pid_t pid, struct memstat *out)
{
	char buf[4096];
	ssize_t n = read_proc(pid, "status", buf, sizeof(buf));

	memset(out, 0xff, sizeof(*out));	/* all -1 */
	if (n < 0)
		return (int)n;
	out->rss_anon = field_kb(buf, "RssAnon");
	out->rss_file = field_kb(buf, "RssFile");
	out->rss_shmem = field_kb(buf, "RssShmem");
	return 0;
}

int memstat_read(pid_t pid, struct memstat *out)
{
	char buf[4096];
	int err = memstat_read_status(pid, out);

	if (err)
		return err;
	if (read_proc(pid, "smaps_rollup", buf, sizeof(buf)) > 0) {
		out->anonymous = field_kb(buf, "Anonymous");
		out->lazyfree = field_kb(buf, "LazyFree");
	}
	return 0;
}

int glibc_arenas(const struct maps *m)
{
	int arenas = 1;

	for (size_t i = 0; i < m->n; i++) {
		const struct mapping *start = &m->v[i];
		if (start->inode || start->path[0] || start->start % ARENA_SIZE)
			continue;
		/* The reservation is one or more anonymous mappings back to back. */
		uint64_t end = start->end;
		for (size_t j = i + 1; j < m->n && end < start->start + ARENA_SIZE; j++) {
			const struct mapping *next = &m->v[j];
			if (next->start != end || next->inode || next->path[0])
				break;
			end = next->end;
		}
		if (end - start->start == ARENA_SIZE && start->readable && start->writable)
			arenas++;
	}
	return arenas;
}
