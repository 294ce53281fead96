#include "profile/newfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ".memwatch-tmp.<boot>.<pidns>.": temporary files of memwatch processes
 * whose pids mean something here (this boot, this pid namespace). */
static int origin_prefix(char *out, size_t size)
{
	char boot[64] = "", ns[64];
	unsigned long long ns_ino;
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);

	if (!f)
		return -errno;
	if (!fgets(boot, sizeof(boot), f))
		boot[0] = '\0';
	fclose(f);
	if (n <= 0)
		return -ENOENT;
	ns[n] = '\0';
	if (strlen(boot) < 8 || sscanf(ns, "pid:[%llu]", &ns_ino) != 1)
		return -ENOENT;
	if (snprintf(out, size, NEWFILE_TMP_PREFIX "%.8s.%llu.", boot, ns_ino) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

int newfile_tmp_prefix(char *out, size_t size, pid_t pid)
{
	char origin[NEWFILE_NAME_MAX];
	int err = origin_prefix(origin, sizeof(origin));

	if (err)
		return err;
	if (snprintf(out, size, "%s%d.", origin, (int)pid) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

/* A fresh temporary name for this process. */
static int tmp_name(char *out, size_t size)
{
	char prefix[NEWFILE_NAME_MAX];
	uint32_t r;
	int err = newfile_tmp_prefix(prefix, sizeof(prefix), getpid());

	if (err)
		return err;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)clock() ^ (uint32_t)time(NULL) ^ (uint32_t)(uintptr_t)out;
	if (snprintf(out, size, "%s%08" PRIx32, prefix, r) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

static int create_named(struct newfile *nf, int dirfd, mode_t mode)
{
	for (int tries = 0; tries < 16; tries++) {
		int err = tmp_name(nf->tmpname, sizeof(nf->tmpname));
		if (err)
			return err;
		nf->fd = openat(dirfd, nf->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (nf->fd >= 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	nf->tmpname[0] = '\0';
	return -errno;
}

int newfile_create(struct newfile *nf, int dirfd, mode_t mode)
{
	nf->tmpname[0] = '\0';
	nf->fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
	if (nf->fd >= 0)
		return 0;
	/* EISDIR: a kernel that predates O_TMPFILE; the others: the file system. */
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -errno;
	return create_named(nf, dirfd, mode);
}

/* Gives the O_TMPFILE the name (never replacing one). */
static int link_unnamed(struct newfile *nf, int dirfd, const char *name)
{
	char self[64];

	snprintf(self, sizeof(self), "/proc/self/fd/%d", nf->fd);
	return linkat(AT_FDCWD, self, dirfd, name, AT_SYMLINK_FOLLOW) ? -errno : 0;
}

/* Moves the named temporary file to name, never replacing one. */
static int move_noreplace(struct newfile *nf, int dirfd, const char *name)
{
	if (!renameat2(dirfd, nf->tmpname, dirfd, name, RENAME_NOREPLACE))
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* A file system without RENAME_NOREPLACE: link, which never replaces. */
	if (linkat(dirfd, nf->tmpname, dirfd, name, 0))
		return -errno;
	unlinkat(dirfd, nf->tmpname, 0);
	return 0;
}

int newfile_link(struct newfile *nf, int dirfd, const char *name, bool replace)
{
	int err;

	if (nf->fd < 0)
		return -EBADF;
	if (!nf->tmpname[0]) {
		if (!replace)
			return link_unnamed(nf, dirfd, name);
		/* Linked under a temporary name first: only rename replaces atomically. */
		if ((err = tmp_name(nf->tmpname, sizeof(nf->tmpname))) ||
		    (err = link_unnamed(nf, dirfd, nf->tmpname))) {
			nf->tmpname[0] = '\0';
			return err;
		}
	}
	err = replace ? (renameat(dirfd, nf->tmpname, dirfd, name) ? -errno : 0) : move_noreplace(nf, dirfd, name);
	if (!err)
		nf->tmpname[0] = '\0';
	return err;
}

void newfile_discard(struct newfile *nf, int dirfd)
{
	if (nf->tmpname[0])
		unlinkat(dirfd, nf->tmpname, 0);
	nf->tmpname[0] = '\0';
	if (nf->fd >= 0)
		close(nf->fd);
	nf->fd = -1;
}

/* The pid of a temporary name after the origin prefix ("<pid>.<8 hex>"), or 0. */
static pid_t tmp_owner(const char *rest)
{
	char *end = NULL;
	long pid = *rest >= '1' && *rest <= '9' ? strtol(rest, &end, 10) : 0;

	if (!pid || *end != '.' || pid <= 0 || pid > INT32_MAX || strlen(end + 1) != 8 ||
	    strspn(end + 1, "0123456789abcdef") != 8)
		return 0;
	return (pid_t)pid;
}

static bool stale_tmp(int dirfd, const char *name, const char *origin)
{
	struct stat st;
	pid_t pid;

	if (strncmp(name, origin, strlen(origin)) || !(pid = tmp_owner(name + strlen(origin))))
		return false;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
		return false;
	return kill(pid, 0) && errno == ESRCH;
}

int newfile_sweep(int dirfd)
{
	char origin[NEWFILE_NAME_MAX];
	int fd, removed = 0;
	DIR *dir;
	struct dirent *de;

	if (origin_prefix(origin, sizeof(origin)))
		return 0;
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(dir)))
		if (stale_tmp(dirfd, de->d_name, origin) && !unlinkat(dirfd, de->d_name, 0))
			removed++;
	closedir(dir);
	return removed;
}
