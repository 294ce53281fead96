#include "host/outdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/array.h"

#define STAMP_FORMAT "########T######.###Z"	/* # a digit */
#define STAMP_LEN (sizeof(STAMP_FORMAT) - 1)
#define SUFFIX ".pb.gz"
#define TMP_SUFFIX ".tmp"
#define COMM_MAX 32
#define KIND_MAX 16
#define PID_MAX_DIGITS 10

struct entry {
	char *name;
	const char *stamp;	/* in name */
	uint64_t size;
};

struct outdir {
	int dirfd;
	uint64_t max_files, max_bytes;
	struct entry *files;	/* oldest first */
	size_t nfiles, cap;
	struct outdir_stats stats;
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_comm_char(char c)
{
	return is_digit(c) || is_lower(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-';
}

static bool valid_stamp(const char *s)
{
	for (size_t i = 0; i < STAMP_LEN; i++)
		if (STAMP_FORMAT[i] == '#' ? !is_digit(s[i]) : s[i] != STAMP_FORMAT[i])
			return false;
	return true;
}

/* The time stamp in a memwatch file name of len bytes, or NULL if the
 * name is not one. Read from the end, as comm may hold '-' and '.'. */
static const char *name_stamp(const char *name, size_t len)
{
	const char *end = name + len, *kind, *stamp, *pid;

	if (len < strlen(SUFFIX) || memcmp(end - strlen(SUFFIX), SUFFIX, strlen(SUFFIX)))
		return NULL;
	end -= strlen(SUFFIX);
	for (kind = end; kind > name && is_lower(kind[-1]); kind--)
		;
	if (kind == end || end - kind > KIND_MAX || (size_t)(kind - name) < STAMP_LEN + 2 || kind[-1] != '.')
		return NULL;
	stamp = kind - 1 - STAMP_LEN;
	if (!valid_stamp(stamp) || stamp[-1] != '-')
		return NULL;
	end = stamp - 1;
	for (pid = end; pid > name && is_digit(pid[-1]); pid--)
		;
	if (pid == end || end - pid > PID_MAX_DIGITS || pid == name || pid[-1] != '-')
		return NULL;
	end = pid - 1;
	if (end - name > COMM_MAX || end == name || name[0] == '.')
		return NULL;
	for (const char *c = name; c < end; c++)
		if (!is_comm_char(*c))
			return NULL;
	return stamp;
}

/* A temporary file of a write memwatch did not finish. */
static bool is_stale_tmp(const char *name)
{
	size_t len = strlen(name);

	return name[0] == '.' && len > strlen(TMP_SUFFIX) + 1 &&
	       !strcmp(name + len - strlen(TMP_SUFFIX), TMP_SUFFIX) &&
	       name_stamp(name + 1, len - 1 - strlen(TMP_SUFFIX));
}

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = memcmp(x->stamp, y->stamp, STAMP_LEN);

	return c ? c : strcmp(x->name, y->name);
}

/* The index of the first entry not older than e. */
static size_t lower_bound(const struct outdir *od, const struct entry *e)
{
	size_t lo = 0, hi = od->nfiles;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (entry_cmp(&od->files[mid], e) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int reserve(struct outdir *od, size_t n)
{
	return array_reserve((void **)&od->files, &od->cap, n, sizeof(*od->files));
}

static void account_added(struct outdir *od, const struct entry *e)
{
	od->stats.files++;
	od->stats.bytes += e->size;
}

static void account_removed(struct outdir *od, const struct entry *e)
{
	od->stats.files--;
	od->stats.bytes -= e->size;
}

static bool over_bounds(const struct outdir *od)
{
	return (od->max_files && od->stats.files > od->max_files) ||
	       (od->max_bytes && od->stats.bytes > od->max_bytes);
}

/* Deletes the oldest files while beyond the bounds; on an error the file
 * stays in the index, and counted. */
static int prune(struct outdir *od)
{
	size_t drop = 0;
	int err = 0;

	while (drop < od->nfiles && over_bounds(od)) {
		struct entry *e = &od->files[drop];
		if (!unlinkat(od->dirfd, e->name, 0)) {
			od->stats.deleted++;
		} else if (errno != ENOENT) {
			err = -errno;
			od->stats.errors++;
			break;
		}
		account_removed(od, e);
		free(e->name);
		drop++;
	}
	if (drop) {
		od->nfiles -= drop;
		memmove(od->files, od->files + drop, od->nfiles * sizeof(*od->files));
	}
	return err;
}

/* Adds the regular file name to the index, unsorted. */
static int index_found(struct outdir *od, const char *name, const char *stamp)
{
	struct stat st;
	struct entry *e;

	if (fstatat(od->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
		return 0;
	if (reserve(od, od->nfiles + 1))
		return -ENOMEM;
	e = &od->files[od->nfiles];
	e->name = strdup(name);
	if (!e->name)
		return -ENOMEM;
	e->stamp = e->name + (stamp - name);
	e->size = st.st_size;
	od->nfiles++;
	account_added(od, e);
	return 0;
}

static int scan(struct outdir *od)
{
	int fd = openat(od->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!dir) {
		err = -errno;
		if (fd >= 0)
			close(fd);
		return err;
	}
	for (errno = 0; !err && (de = readdir(dir)); errno = 0) {
		const char *stamp = name_stamp(de->d_name, strlen(de->d_name));
		if (stamp)
			err = index_found(od, de->d_name, stamp);
		else if (is_stale_tmp(de->d_name))
			unlinkat(od->dirfd, de->d_name, 0);
	}
	if (!err && errno)
		err = -errno;
	closedir(dir);
	if (od->nfiles)
		qsort(od->files, od->nfiles, sizeof(*od->files), entry_cmp);
	return err;
}

int outdir_open(struct outdir **out, const char *dir, uint64_t max_files, uint64_t max_bytes)
{
	struct outdir *od;
	int err;

	if (!max_files && !max_bytes)
		return -EINVAL;
	if (mkdir(dir, 0750) && errno != EEXIST)
		return -errno;
	od = calloc(1, sizeof(*od));
	if (!od)
		return -ENOMEM;
	od->max_files = max_files;
	od->max_bytes = max_bytes;
	od->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	err = od->dirfd < 0 ? -errno : scan(od);
	if (!err)
		err = prune(od);
	if (err) {
		outdir_close(od);
		return err;
	}
	*out = od;
	return 0;
}

/* At most COMM_MAX of [A-Za-z0-9._-], others as '_', never empty or
 * hidden. */
static void sanitize_comm(char *out, const char *comm)
{
	size_t n = 0;

	for (; comm && comm[n] && n < COMM_MAX; n++)
		out[n] = is_comm_char(comm[n]) ? comm[n] : '_';
	if (!n)
		out[n++] = '_';
	if (out[0] == '.')
		out[0] = '_';
	out[n] = '\0';
}

static int format_stamp(char *out, size_t size, int64_t realtime_ns)
{
	time_t sec = realtime_ns / 1000000000;
	int ms = realtime_ns % 1000000000 / 1000000;
	struct tm tm;

	if (realtime_ns < 0 || !gmtime_r(&sec, &tm))
		return -EINVAL;
	if (snprintf(out, size, "%04d%02d%02dT%02d%02d%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms) != (int)STAMP_LEN)
		return -EINVAL;
	return 0;
}

static bool valid_kind(const char *kind)
{
	size_t n = 0;

	while (kind && is_lower(kind[n]))
		n++;
	return n && n <= KIND_MAX && !kind[n];
}

static int file_name(char **name, const char *comm, pid_t pid, int64_t realtime_ns, const char *kind)
{
	char safe[COMM_MAX + 1], stamp[32];

	if (pid < 0 || !valid_kind(kind) || format_stamp(stamp, sizeof(stamp), realtime_ns))
		return -EINVAL;
	sanitize_comm(safe, comm);
	if (asprintf(name, "%s-%d-%s.%s" SUFFIX, safe, (int)pid, stamp, kind) < 0)
		return -ENOMEM;
	return 0;
}

/* Writes tmp in full and renames it to name: its size, or -errno with no
 * file left. */
static int64_t write_file(struct outdir *od, const char *tmp, const char *name,
			  int (*write)(void *ctx, int fd), void *ctx)
{
	int fd = openat(od->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	struct stat st;
	int err;

	if (fd < 0)
		return -errno;
	err = write(ctx, fd);
	if (err > 0)
		err = -EIO;
	if (!err && fstat(fd, &st))
		err = -errno;
	if (!err && od->max_bytes && (uint64_t)st.st_size > od->max_bytes)
		err = -EFBIG;
	if (!err && fsync(fd))
		err = -errno;
	if (close(fd) && !err)
		err = -errno;
	if (!err && renameat(od->dirfd, tmp, od->dirfd, name))
		err = -errno;
	if (err)
		unlinkat(od->dirfd, tmp, 0);
	return err ? err : st.st_size;
}

int outdir_write(struct outdir *od, const char *comm, pid_t pid, int64_t realtime_ns, const char *kind,
		 int (*write)(void *ctx, int fd), void *ctx)
{
	struct entry e = { 0 };
	char *tmp = NULL;
	int64_t size;
	size_t at = 0;
	int err;

	err = file_name(&e.name, comm, pid, realtime_ns, kind);
	if (!err && asprintf(&tmp, ".%s" TMP_SUFFIX, e.name) < 0)
		err = -ENOMEM;
	/* Room in the index first: a file written must be accounted for. */
	if (!err)
		err = reserve(od, od->nfiles + 1);
	if (!err) {
		e.stamp = name_stamp(e.name, strlen(e.name));
		at = lower_bound(od, &e);
		if (at < od->nfiles && !entry_cmp(&od->files[at], &e))
			err = -EEXIST;
	}
	size = err ? err : write_file(od, tmp, e.name, write, ctx);
	free(tmp);
	if (size < 0) {
		free(e.name);
		od->stats.errors++;
		return size;
	}
	e.size = size;
	memmove(od->files + at + 1, od->files + at, (od->nfiles - at) * sizeof(*od->files));
	od->files[at] = e;
	od->nfiles++;
	account_added(od, &e);
	od->stats.written++;
	return prune(od);
}

void outdir_stats(const struct outdir *od, struct outdir_stats *out)
{
	*out = od->stats;
}

void outdir_close(struct outdir *od)
{
	if (!od)
		return;
	if (od->dirfd >= 0)
		close(od->dirfd);
	for (size_t i = 0; i < od->nfiles; i++)
		free(od->files[i].name);
	free(od->files);
	free(od);
}
