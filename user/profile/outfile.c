#include "profile/outfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int outfile_open(struct outfile *of, const char *path)
{
	memset(of, 0, sizeof(*of));
	of->fd = -1;
	of->path = strdup(path);
	if (!of->path || asprintf(&of->tmp, "%s.XXXXXX", path) < 0) {
		free(of->path);
		of->path = NULL;
		of->tmp = NULL;
		return -ENOMEM;
	}
	of->fd = mkstemp(of->tmp);
	if (of->fd < 0) {
		int err = -errno;
		free(of->tmp);
		of->tmp = NULL;
		return err;
	}
	fchmod(of->fd, 0644);
	return 0;
}

FILE *outfile_stream(struct outfile *of)
{
	int fd = of->tmp ? dup(of->fd) : -1;
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	if (!f && fd >= 0)
		close(fd);
	return f;
}

int outfile_commit(struct outfile *of)
{
	int err = 0;

	if (!of->tmp)
		return -EBADF;
	if (fsync(of->fd) || rename(of->tmp, of->path))
		err = -errno;
	if (err)
		unlink(of->tmp);
	close(of->fd);
	free(of->tmp);
	of->tmp = NULL;
	return err;
}

void outfile_discard(struct outfile *of)
{
	if (of->tmp) {
		unlink(of->tmp);
		close(of->fd);
		free(of->tmp);
		of->tmp = NULL;
	}
	free(of->path);
	of->path = NULL;
}
