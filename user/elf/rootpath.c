#include "elf/rootpath.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_SYMLINKS 40

/* The next component of *rest (advanced past it) into name; false at the end. */
static bool next_component(const char **rest, char *name, size_t size)
{
	const char *p = *rest;
	while (*p == '/')
		p++;
	if (!*p)
		return false;
	size_t len = strcspn(p, "/");
	if (len >= size)
		len = size - 1;	/* an over-long name fails to open anyway */
	memcpy(name, p, len);
	name[len] = '\0';
	*rest = p + strcspn(p, "/");
	return true;
}

static bool at_end(const char *rest)
{
	while (*rest == '/')
		rest++;
	return !*rest;
}

/* RESOLVE_IN_ROOT done by hand, for kernels before 5.6 (and sandboxes)
 * without openat2: one component at a time, absolute symlinks restart at
 * the root, ".." stops at it. */
struct walk {
	int root_fd;
	int dir;		/* the directory reached so far; -1 on failure */
	unsigned depth;		/* components below the root */
	unsigned links;
	const char *rest;	/* what is left of pending */
	char pending[2 * 4096];
};

/* Replaces w->dir (an fd we own) with next. */
static void walk_into(struct walk *w, int next)
{
	close(w->dir);
	w->dir = next;
}

static void walk_up(struct walk *w)
{
	if (w->depth == 0)
		return;
	walk_into(w, openat(w->dir, "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
	w->depth--;
}

/* Continues the walk at the target of the symlink link_fd. */
static bool walk_symlink(struct walk *w, int link_fd)
{
	char target[4096], joined[sizeof(w->pending)];
	ssize_t n = readlinkat(link_fd, "", target, sizeof(target) - 1);
	if (n <= 0 || ++w->links > MAX_SYMLINKS)
		return false;
	target[n] = '\0';
	if (snprintf(joined, sizeof(joined), "%s/%s", target, w->rest) >= (int)sizeof(joined))
		return false;
	memcpy(w->pending, joined, sizeof(joined));
	w->rest = w->pending;
	if (target[0] == '/') {
		walk_into(w, fcntl(w->root_fd, F_DUPFD_CLOEXEC, 0));
		w->depth = 0;
	}
	return true;
}

/* Handles one component: false to stop (failure, or *file opened). */
static bool walk_step(struct walk *w, const char *name, int flags, int *file)
{
	if (!strcmp(name, "."))
		return true;
	if (!strcmp(name, "..")) {
		walk_up(w);
		return true;
	}
	int fd = openat(w->dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	bool go_on = fd >= 0 && fstat(fd, &st) == 0;
	if (go_on && S_ISLNK(st.st_mode)) {
		go_on = walk_symlink(w, fd);
	} else if (go_on && at_end(w->rest)) {
		*file = openat(w->dir, name, flags | O_NOFOLLOW);
		go_on = false;
	} else if (go_on && S_ISDIR(st.st_mode)) {
		walk_into(w, fd);
		w->depth++;
		return true;
	} else {
		go_on = false;
	}
	if (fd >= 0)
		close(fd);
	return go_on;
}

static int open_in_root_by_hand(int root_fd, const char *path, int flags)
{
	struct walk *w = calloc(1, sizeof(*w));
	if (!w || snprintf(w->pending, sizeof(w->pending), "%s", path) >= (int)sizeof(w->pending)) {
		free(w);
		return -1;
	}
	w->root_fd = root_fd;
	w->dir = fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
	w->rest = w->pending;
	int file = -1;
	char name[256];
	while (w->dir >= 0 && next_component(&w->rest, name, sizeof(name)) &&
	       walk_step(w, name, flags, &file))
		;
	if (w->dir >= 0)
		close(w->dir);
	free(w);
	return file;
}

int rootpath_open(int root_fd, const char *path, int flags)
{
	flags |= O_CLOEXEC;
#ifdef SYS_openat2
	struct open_how how = { .flags = flags, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	for (int tries = 0; tries < 3; tries++) {
		int fd = syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
		if (fd >= 0)
			return fd;
		if (errno == EAGAIN)
			continue;
		if (errno != ENOSYS && errno != EPERM)
			return -1;
		break;	/* no openat2, or a seccomp filter forbids it */
	}
#endif
	return open_in_root_by_hand(root_fd, path, flags);
}
