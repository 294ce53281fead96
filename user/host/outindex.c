#include "host/outindex.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "profile/newfile.h"

#define INDEX_MAX_BYTES (256u << 20)	/* far beyond any real index: refused, not read */

struct record {
	struct outindex_entry e;
	size_t seq;
	char op;
};

/* Could only this user have written it? */
static bool trusted(int fd)
{
	struct stat st;

	return !fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_uid == geteuid() && !(st.st_mode & 022) &&
	       st.st_nlink == 1 && (uint64_t)st.st_size <= INDEX_MAX_BYTES;
}

static char *read_all(int fd, size_t *len)
{
	struct stat st;
	char *buf;
	size_t got = 0;

	if (fstat(fd, &st))
		return NULL;
	buf = malloc((size_t)st.st_size + 1);
	while (buf && got < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (buf)
		buf[got] = '\0';
	*len = got;
	return buf;
}

static bool valid_name(const char *name)
{
	return *name && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

/* "+ INO SIZE NAME" or "- NAME": false for anything else (a torn line). */
static bool parse_line(char *line, struct record *r)
{
	unsigned long long ino, size;
	int at = 0;

	memset(r, 0, sizeof(*r));
	if (line[0] == '+' && sscanf(line, "+ %llu %llu %n", &ino, &size, &at) == 2 && at) {
		r->op = '+';
		r->e.ino = ino;
		r->e.size = size;
	} else if (line[0] == '-' && line[1] == ' ') {
		r->op = '-';
		at = 2;
	} else {
		return false;
	}
	r->e.name = line + at;
	return valid_name(r->e.name);
}

static int by_name_then_seq(const void *a, const void *b)
{
	const struct record *x = a, *y = b;
	int c = strcmp(x->e.name, y->e.name);

	return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

static size_t parse_records(char *text, struct record *recs)
{
	size_t n = 0;

	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (parse_line(line, &recs[n])) {
			recs[n].seq = n;
			n++;
		}
	}
	return n;
}

/* The last record of each name, if an addition. */
static int replay(char *text, size_t len, struct outindex_entry **entries, size_t *n, size_t *lines)
{
	struct record *recs = calloc(len / 4 + 1, sizeof(*recs));	/* a record takes at least 4 bytes */
	size_t nrec, kept = 0;
	struct outindex_entry *out;

	if (!recs)
		return -ENOMEM;
	nrec = parse_records(text, recs);
	qsort(recs, nrec, sizeof(*recs), by_name_then_seq);
	out = calloc(nrec + 1, sizeof(*out));
	for (size_t i = 0; out && i < nrec; i++) {
		bool last = i + 1 == nrec || strcmp(recs[i].e.name, recs[i + 1].e.name);
		if (!last || recs[i].op != '+')
			continue;
		out[kept] = recs[i].e;
		if (!(out[kept].name = strdup(recs[i].e.name))) {
			outindex_free_entries(out, kept);
			out = NULL;
			break;
		}
		kept++;
	}
	free(recs);
	if (!out)
		return -ENOMEM;
	*entries = out;
	*n = kept;
	*lines = nrec;
	return 0;
}

int outindex_open(struct outindex *ix, int dirfd, struct outindex_entry **entries, size_t *n)
{
	int fd = openat(dirfd, OUTINDEX_NAME, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	size_t len;
	char *text;
	int err;

	ix->dirfd = dirfd;
	ix->fd = -1;
	ix->lines = 0;
	*entries = NULL;
	*n = 0;
	if (fd < 0)
		return errno == ELOOP || errno == EISDIR || errno == ENXIO ? -EPERM : -errno;
	if (!trusted(fd)) {
		close(fd);
		return -EPERM;
	}
	text = read_all(fd, &len);
	err = text ? replay(text, len, entries, n, &ix->lines) : -ENOMEM;
	free(text);
	if (err) {
		close(fd);
		return err;
	}
	ix->fd = fd;
	return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int format_record(char *buf, size_t size, char op, const struct outindex_entry *e)
{
	int n = op == '+' ? snprintf(buf, size, "+ %" PRIu64 " %" PRIu64 " %s\n", e->ino, e->size, e->name)
			  : snprintf(buf, size, "- %s\n", e->name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : n;
}

int outindex_append(struct outindex *ix, char op, const struct outindex_entry *e)
{
	char line[512];
	int n = format_record(line, sizeof(line), op, e), err;

	if (ix->fd < 0)
		return 0;
	if (n < 0)
		return n;
	if ((err = write_all(ix->fd, line, (size_t)n)) || (fdatasync(ix->fd) && (err = -errno)))
		return err;
	ix->lines++;
	return 0;
}

static int write_entries(int fd, const struct outindex_entry *entries, size_t n)
{
	char line[512];
	int err = 0;

	for (size_t i = 0; !err && i < n; i++) {
		int len = format_record(line, sizeof(line), '+', &entries[i]);
		err = len < 0 ? len : write_all(fd, line, (size_t)len);
	}
	return err;
}

int outindex_rewrite(struct outindex *ix, const struct outindex_entry *entries, size_t n)
{
	struct newfile nf;
	int err, flags;

	if (ix->fd < 0)
		return 0;
	if ((err = newfile_create(&nf, ix->dirfd, 0600)))
		return err;
	err = write_entries(nf.fd, entries, n);
	if (!err && fsync(nf.fd))
		err = -errno;
	if (!err)
		err = newfile_link(&nf, ix->dirfd, OUTINDEX_NAME, true);
	if (!err && ((flags = fcntl(nf.fd, F_GETFL)) < 0 || fcntl(nf.fd, F_SETFL, flags | O_APPEND)))
		err = -errno;
	if (err) {
		newfile_discard(&nf, ix->dirfd);
		return err;
	}
	close(ix->fd);
	ix->fd = nf.fd;
	ix->lines = n;
	return 0;
}

void outindex_close(struct outindex *ix)
{
	if (ix->fd >= 0)
		close(ix->fd);
	ix->fd = -1;
}

void outindex_free_entries(struct outindex_entry *entries, size_t n)
{
	for (size_t i = 0; entries && i < n; i++)
		free(entries[i].name);
	free(entries);
}
