#include "host/outdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "host/outindex.h"
#include "profile/newfile.h"
#include "util/array.h"
#include "util/report.h"

#define STAMP_FORMAT "########T######.###Z"	/* # a digit */
#define STAMP_LEN (sizeof(STAMP_FORMAT) - 1)
#define SUFFIX ".pb.gz"
#define COMM_MAX 32
#define KIND_MAX 16
#define PID_MAX_DIGITS 10

struct entry {
	char *name;
	const char *stamp;	/* in name */
	uint64_t ino, size;
};

struct outdir {
	int dirfd;
	uint64_t max_files, max_bytes;
	struct entry *files;	/* memwatch's, oldest first */
	size_t nfiles, cap;
	struct outindex index;
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

static struct outindex_entry index_entry(const struct entry *e)
{
	return (struct outindex_entry){ .name = e->name, .ino = e->ino, .size = e->size };
}

/* Is the file named e still the one memwatch wrote? */
static bool still_ours(const struct outdir *od, const struct entry *e)
{
	struct stat st;

	return !fstatat(od->dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode) &&
	       st.st_ino == e->ino && (uint64_t)st.st_size == e->size && st.st_uid == geteuid();
}

/* Deletes the file of e if it is still memwatch's; one that is not (gone,
 * or replaced by someone) is left alone and forgotten. 0 or -errno. */
static int delete_own(struct outdir *od, const struct entry *e)
{
	struct outindex_entry ie = index_entry(e);

	if (still_ours(od, e)) {
		if (unlinkat(od->dirfd, e->name, 0) && errno != ENOENT)
			return -errno;
		od->stats.deleted++;
	}
	outindex_append(&od->index, '-', &ie);
	return 0;
}

/* The index rewritten once its records are mostly history. */
static int compact_index(struct outdir *od, bool now)
{
	struct outindex_entry *ies;
	int err;

	if (!now && od->index.lines <= 2 * od->nfiles + 64)
		return 0;
	ies = calloc(od->nfiles + 1, sizeof(*ies));
	if (!ies)
		return -ENOMEM;
	for (size_t i = 0; i < od->nfiles; i++)
		ies[i] = index_entry(&od->files[i]);
	err = outindex_rewrite(&od->index, ies, od->nfiles);
	free(ies);
	return err;
}

/* Deletes the oldest files while beyond the bounds; on an error the file
 * stays in the index, and counted. */
static int prune(struct outdir *od)
{
	size_t drop = 0;
	int err = 0;

	while (drop < od->nfiles && over_bounds(od)) {
		struct entry *e = &od->files[drop];
		if ((err = delete_own(od, e))) {
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
	int cerr = compact_index(od, false);
	return err ? err : cerr;
}

/* Adopts what the index says memwatch wrote, if still so. */
static int adopt(struct outdir *od, const struct outindex_entry *ie)
{
	struct entry e = { .name = ie->name, .ino = ie->ino, .size = ie->size };
	const char *stamp = name_stamp(ie->name, strlen(ie->name));

	if (!stamp || !still_ours(od, &e))
		return 0;
	if (reserve(od, od->nfiles + 1))
		return -ENOMEM;
	e.name = strdup(ie->name);
	if (!e.name)
		return -ENOMEM;
	e.stamp = e.name + (stamp - ie->name);
	od->files[od->nfiles++] = e;
	account_added(od, &e);
	return 0;
}

static int load_index(struct outdir *od)
{
	struct outindex_entry *ies;
	size_t n;
	int err = outindex_open(&od->index, od->dirfd, &ies, &n);

	if (err == -EPERM) {
		od->stats.index_foreign = true;
		return 0;
	}
	for (size_t i = 0; !err && i < n; i++)
		err = adopt(od, &ies[i]);
	outindex_free_entries(ies, n);
	if (od->nfiles)
		qsort(od->files, od->nfiles, sizeof(*od->files), entry_cmp);
	return err ? err : compact_index(od, true);
}

/* Files there that are not memwatch's (nor its index, nor a temporary file
 * of a memwatch at work): never touched, only counted. */
static int count_foreign(struct outdir *od)
{
	int fd = openat(od->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	uint64_t others = 0;

	if (!dir) {
		int err = -errno;
		if (fd >= 0)
			close(fd);
		return err;
	}
	while ((de = readdir(dir)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, OUTINDEX_NAME) &&
		    strncmp(de->d_name, NEWFILE_TMP_PREFIX, strlen(NEWFILE_TMP_PREFIX)))
			others++;
	closedir(dir);
	od->stats.foreign = others > od->nfiles ? others - od->nfiles : 0;
	return 0;
}

static void warn_foreign(const struct outdir *od, const char *dir)
{
	if (od->stats.foreign)
		report_error("--output-dir %s: %" PRIu64 " files there are not memwatch's: never deleted, not counted "
			     "in the bounds", dir, od->stats.foreign);
	if (od->stats.index_foreign)
		report_error("--output-dir %s: " OUTINDEX_NAME " is not memwatch's (another user's, writable by "
			     "others, or linked): files of earlier runs are not recognized, and this run's are "
			     "deleted only while it runs", dir);
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
	od->index.fd = -1;
	od->max_files = max_files;
	od->max_bytes = max_bytes;
	od->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (od->dirfd < 0) {
		err = -errno;
	} else {
		newfile_sweep(od->dirfd);
		err = load_index(od);
	}
	if (!err)
		err = count_foreign(od);
	if (!err)
		err = prune(od);
	if (err) {
		outdir_close(od);
		return err;
	}
	warn_foreign(od, dir);
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

/* Writes the content of a new file: its size, or -errno. */
static int64_t write_content(struct outdir *od, int fd, struct stat *st, int (*write)(void *ctx, int fd), void *ctx)
{
	int err = write(ctx, fd);

	if (err > 0)
		err = -EIO;
	if (!err && fstat(fd, st))
		err = -errno;
	if (!err && od->max_bytes && (uint64_t)st->st_size > od->max_bytes)
		err = -EFBIG;
	if (!err && fsync(fd))
		err = -errno;
	return err;
}

/* Writes e->name in full, recorded in the index before it gets its name,
 * never replacing a file there: 0 (e->ino, e->size set) or -errno with no
 * file left. */
static int write_file(struct outdir *od, struct entry *e, int (*write)(void *ctx, int fd), void *ctx)
{
	struct newfile nf;
	struct stat st;
	int err = newfile_create(&nf, od->dirfd, 0640);

	if (!err)
		err = write_content(od, nf.fd, &st, write, ctx);
	if (!err) {
		e->ino = st.st_ino;
		e->size = st.st_size;
		struct outindex_entry ie = index_entry(e);
		if (!(err = outindex_append(&od->index, '+', &ie)) &&
		    (err = newfile_link(&nf, od->dirfd, e->name, false)))
			outindex_append(&od->index, '-', &ie);
	}
	newfile_discard(&nf, od->dirfd);
	return err;
}

int outdir_write(struct outdir *od, const char *comm, pid_t pid, int64_t realtime_ns, const char *kind,
		 int (*write)(void *ctx, int fd), void *ctx)
{
	struct entry e = { 0 };
	size_t at = 0;
	int err;

	err = file_name(&e.name, comm, pid, realtime_ns, kind);
	/* Room in the index first: a file written must be accounted for. */
	if (!err)
		err = reserve(od, od->nfiles + 1);
	if (!err) {
		e.stamp = name_stamp(e.name, strlen(e.name));
		at = lower_bound(od, &e);
		if (at < od->nfiles && !entry_cmp(&od->files[at], &e))
			err = -EEXIST;
	}
	if (!err)
		err = write_file(od, &e, write, ctx);
	if (err) {
		free(e.name);
		od->stats.errors++;
		return err;
	}
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
	outindex_close(&od->index);
	if (od->dirfd >= 0)
		close(od->dirfd);
	for (size_t i = 0; i < od->nfiles; i++)
		free(od->files[i].name);
	free(od->files);
	free(od);
}

int outdir_report(const struct outdir *od, const char *dir)
{
	if (!od->stats.errors)
		return 0;
	report_error("--output-dir %s: %" PRIu64 " profiles or deletions failed", dir, od->stats.errors);
	return -EIO;
}
