#include "profile/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/report.h"

#define NEW_FILE_MODE 0644
#define FIFO_POLL_NS 100000000

static int refuse(struct outfile *of, const char *why)
{
	of->refusal = why;
	return -EINVAL;
}

const char *outfile_strerror(const struct outfile *of, int err)
{
	return of->refusal ? of->refusal : strerror(-err);
}

static int identify(struct outfile *of)
{
	struct stat st;

	if (fstat(of->fd, &st))
		return -errno;
	of->have_id = true;
	of->dev = st.st_dev;
	of->ino = st.st_ino;
	return 0;
}

/* Waits up to FIFO_POLL_NS for SIGINT, SIGTERM or SIGHUP: true if one came. */
static bool interrupted(void)
{
	struct timespec wait = { 0, FIFO_POLL_NS };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	return sigtimedwait(&set, NULL, &wait) > 0;
}

/* A FIFO's writer open blocks until a reader comes: waited for here, in
 * steps, so that a signal can end the wait. */
static int open_fifo(struct outfile *of)
{
	bool told = false;

	for (;;) {
		of->fd = open(of->path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (of->fd >= 0)
			break;
		if (errno != ENXIO)
			return -errno;
		if (!told)
			fprintf(stderr, "memwatch: %s is a FIFO: waiting for its reader\n", of->path);
		told = true;
		if (interrupted())
			return refuse(of, "interrupted while waiting for the FIFO's reader");
	}
	int flags = fcntl(of->fd, F_GETFL);
	if (flags < 0 || fcntl(of->fd, F_SETFL, flags & ~O_NONBLOCK))
		return -errno;
	return 0;
}

static int open_stream(struct outfile *of, const struct stat *st)
{
	int err;

	of->stream = true;
	if (!strcmp(of->path, "-"))
		of->fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	else if (S_ISFIFO(st->st_mode))
		return (err = open_fifo(of)) ? err : identify(of);
	else
		of->fd = open(of->path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	return of->fd < 0 ? -errno : identify(of);
}

/* of->canon: the directory resolved, the name as given. */
static int canonicalize(struct outfile *of, const char *dir)
{
	char *real = realpath(dir, NULL);
	int err = 0;

	if (!real)
		return -errno;
	if (asprintf(&of->canon, "%s/%s", strcmp(real, "/") ? real : "", of->name) < 0) {
		of->canon = NULL;
		err = -ENOMEM;
	}
	free(real);
	return err;
}

/* Splits of->path into its directory (opened) and name. */
static int open_dir(struct outfile *of)
{
	const char *slash = strrchr(of->path, '/');
	char *dir = slash ? strndup(of->path, slash == of->path ? 1 : (size_t)(slash - of->path)) : strdup(".");
	int err = 0;

	of->name = strdup(slash ? slash + 1 : of->path);
	if (!dir || !of->name)
		err = -ENOMEM;
	else if (!*of->name || !strcmp(of->name, ".") || !strcmp(of->name, ".."))
		err = refuse(of, "is a directory");
	else if ((of->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		err = -errno;
	else
		err = canonicalize(of, dir);
	free(dir);
	return err;
}

static int open_regular(struct outfile *of, const struct stat *existing)
{
	/* Never wider than the old file, even while a temporary name shows it. */
	mode_t mode = existing ? existing->st_mode & NEW_FILE_MODE & 0666 : NEW_FILE_MODE;
	int err = open_dir(of);

	if (!err && !(err = newfile_create(&of->nf, of->dirfd, mode))) {
		of->fd = of->nf.fd;
		newfile_sweep(of->dirfd);
	}
	if (!err && existing) {
		of->have_id = true;
		of->dev = existing->st_dev;
		of->ino = existing->st_ino;
	}
	return err;
}

/* By what path names now (following links), and what it is itself. */
static int open_by_type(struct outfile *of)
{
	struct stat st, lst;

	if (!strcmp(of->path, "-"))
		return open_stream(of, NULL);
	if (stat(of->path, &st)) {
		if (errno != ENOENT)
			return -errno;
		if (!lstat(of->path, &lst))
			return refuse(of, "is a symlink to nothing: name the file itself");
		return open_regular(of, NULL);
	}
	if (S_ISDIR(st.st_mode))
		return refuse(of, "is a directory");
	if (S_ISBLK(st.st_mode))
		return refuse(of, "is a block device");
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))
		return open_stream(of, &st);
	if (!S_ISREG(st.st_mode))
		return refuse(of, "is not a regular file, a FIFO or a character device");
	if (lstat(of->path, &lst))
		return -errno;
	if (S_ISLNK(lst.st_mode))
		return refuse(of, "is a symlink to a regular file: name the file itself (or - for stdout)");
	return open_regular(of, &st);
}

int outfile_open(struct outfile *of, const char *path)
{
	memset(of, 0, sizeof(*of));
	of->fd = of->dirfd = of->nf.fd = -1;
	of->path = strdup(path);
	int err = of->path ? open_by_type(of) : -ENOMEM;

	if (err) {
		const char *why = of->refusal;
		outfile_discard(of);
		of->refusal = why;
		return err;
	}
	of->open = true;
	return 0;
}

bool outfile_same(const struct outfile *a, const struct outfile *b)
{
	if (!a->open || !b->open)
		return false;
	if (a->have_id && b->have_id)
		return a->dev == b->dev && a->ino == b->ino;
	return a->canon && b->canon && !strcmp(a->canon, b->canon);
}

bool outfile_mixes_with_stdout(const struct outfile *of)
{
	struct stat st;

	if (!of->open)
		return false;
	if (!strcmp(of->path, "-"))
		return true;
	return of->have_id && !fstat(STDOUT_FILENO, &st) && st.st_dev == of->dev && st.st_ino == of->ino &&
	       !S_ISCHR(st.st_mode);
}

FILE *outfile_stream(struct outfile *of)
{
	int fd = of->open ? dup(of->fd) : -1;
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	if (!f && fd >= 0)
		close(fd);
	return f;
}

/* The new file takes the old one's owner, group and permission bits (less
 * any execute, setuid or setgid bit), if the old one is still the file the
 * path named when opened: one put there since (by whoever can write the
 * directory) does not hand the profile to its owner. */
static void adopt_old(struct outfile *of)
{
	struct stat old;

	if (!of->have_id || fstatat(of->dirfd, of->name, &old, AT_SYMLINK_NOFOLLOW) || !S_ISREG(old.st_mode) ||
	    old.st_dev != of->dev || old.st_ino != of->ino)
		return;
	/* Without CAP_CHOWN the file stays memwatch's, still no wider. */
	fchown(of->fd, old.st_uid, old.st_gid);
	fchmod(of->fd, old.st_mode & 0666);
}

int outfile_commit(struct outfile *of)
{
	int err = 0;

	if (!of->open)
		return -EBADF;
	if (of->stream) {
		err = close(of->fd) ? -errno : 0;
		of->fd = -1;
	} else {
		adopt_old(of);
		if (fsync(of->fd))
			err = -errno;
		if (!err)
			err = newfile_link(&of->nf, of->dirfd, of->name, true);
		newfile_discard(&of->nf, of->dirfd);
		of->fd = -1;
	}
	of->open = false;
	return err;
}

void outfile_discard(struct outfile *of)
{
	if (!of->path)
		return;		/* never opened */
	if (of->stream && of->fd >= 0)
		close(of->fd);
	else
		newfile_discard(&of->nf, of->dirfd);
	if (of->dirfd >= 0)
		close(of->dirfd);
	free(of->path);
	free(of->name);
	free(of->canon);
	memset(of, 0, sizeof(*of));
	of->fd = of->dirfd = of->nf.fd = -1;
}

/* ---- the outputs of a run ---- */

static int open_reported(struct outfile *of, const char *path, bool stdout_taken)
{
	int err = outfile_open(of, path);

	if (err) {
		report_error("cannot write %s: %s", path, outfile_strerror(of, err));
		return err;
	}
	if (stdout_taken && outfile_mixes_with_stdout(of)) {
		report_error("cannot write %s: it is the command's stdout too (give a file or a FIFO)", path);
		return -EINVAL;
	}
	return 0;
}

/* "x.pb.gz" -> "x.pages.pb.gz", "x" -> "x.pages" */
static char *pages_path_for(const char *heap_path)
{
	const char *ext = ".pb.gz";
	size_t n = strlen(heap_path), k = strlen(ext);
	char *out = NULL;
	int len = n > k && !strcmp(heap_path + n - k, ext)
			  ? asprintf(&out, "%.*s.pages%s", (int)(n - k), heap_path, ext)
			  : asprintf(&out, "%s.pages", heap_path);

	return len < 0 ? NULL : out;
}

/* The page profile: given, or named after a heap profile that is a file (a
 * stream, stdout, a FIFO or /dev/null, has no name to derive one from). */
static int open_pages(const struct outfile_set *set, const struct outfile_paths *paths)
{
	if (paths->pages)
		return open_reported(set->pages, paths->pages, paths->stdout_taken);
	if (!paths->heap || set->heap->stream)
		return 0;
	char *derived = pages_path_for(paths->heap);
	int err = derived ? open_reported(set->pages, derived, paths->stdout_taken) : -ENOMEM;
	free(derived);
	return err;
}

/* Two outputs onto one file would keep only the last written. */
static int check_distinct(const struct outfile_set *set)
{
	struct outfile *outs[] = { set->heap, set->pages, set->timeline, set->plot };
	size_t n = sizeof(outs) / sizeof(outs[0]);

	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (outfile_same(outs[i], outs[j])) {
				report_error("%s and %s are the same file: give each output its own", outs[i]->path,
					     outs[j]->path);
				return -EINVAL;
			}
	return 0;
}

int outfile_open_set(const struct outfile_set *set, const struct outfile_paths *paths)
{
	int err = paths->heap ? open_reported(set->heap, paths->heap, paths->stdout_taken) : 0;

	if (!err)
		err = open_pages(set, paths);
	if (!err && paths->timeline)
		err = open_reported(set->timeline, paths->timeline, paths->stdout_taken);
	if (!err && paths->plot)
		err = open_reported(set->plot, paths->plot, paths->stdout_taken);
	return err ? err : check_distinct(set);
}
