#include "proc/procmaps.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/array.h"

#define DELETED_SUFFIX " (deleted)"

static int parse_line(const char *line, size_t len, struct mapping *m)
{
	char perms[5];
	unsigned long long start, end, offset, inode;
	unsigned maj, min;
	int path_at = 0;

	if (sscanf(line, "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, perms, &offset, &maj, &min,
		   &inode, &path_at) < 7)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	m->start = start;
	m->end = end;
	m->offset = offset;
	m->inode = inode;
	m->dev_major = maj;
	m->dev_minor = min;
	m->readable = perms[0] == 'r';
	m->writable = perms[1] == 'w';
	m->executable = perms[2] == 'x';
	m->shared = perms[3] == 's';
	size_t path_len = path_at && (size_t)path_at < len ? len - path_at : 0;
	const char *path = line + (path_len ? (size_t)path_at : len);
	size_t sfx = strlen(DELETED_SUFFIX);
	if (inode && path_len > sfx && !memcmp(path + path_len - sfx, DELETED_SUFFIX, sfx)) {
		m->deleted = true;
		path_len -= sfx;
	}
	m->path = strndup(path, path_len);
	return m->path ? 0 : -ENOMEM;
}

int maps_parse(const char *text, struct maps *out)
{
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (len) {
			if (ARRAY_GROW(out->v, out->n, cap))
				goto nomem;
			int err = parse_line(line, len, &out->v[out->n]);
			if (err == -ENOMEM)
				goto nomem;
			if (!err)
				out->n++;
		}
		line += len + (nl ? 1 : 0);
	}
	return 0;
nomem:
	maps_free(out);
	return -ENOMEM;
}

static char *slurp(const char *path, int *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0, cap = 0;
	char *buf = NULL;

	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	for (;;) {
		if (array_reserve((void **)&buf, &cap, len + 65536, 1)) {
			*err = -ENOMEM;
			goto fail;
		}
		ssize_t got = read(fd, buf + len, cap - len - 1);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			*err = -errno;
			goto fail;
		}
		if (!got)
			break;
		len += got;
	}
	close(fd);
	buf[len] = 0;
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

int maps_read(pid_t pid, struct maps *out)
{
	char path[64];
	int err = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	char *text = slurp(path, &err);
	if (!text)
		return err;
	err = maps_parse(text, out);
	free(text);
	return err;
}

void maps_free(struct maps *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

const struct mapping *maps_find(const struct maps *m, uint64_t addr)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (addr < m->v[mid].start)
			hi = mid;
		else if (addr >= m->v[mid].end)
			lo = mid + 1;
		else
			return &m->v[mid];
	}
	return NULL;
}

bool mapping_is_file(const struct mapping *m)
{
	return m->inode != 0 && m->path[0] == '/';
}
