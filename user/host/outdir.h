/* --output-dir: profiles written as files into a directory, the oldest
 * deleted to keep within a bound on their count and/or total size. Files
 * are named "<comm>-<pid>-<YYYYmmddTHHMMSS.mmmZ>.<kind>.pb.gz"; only files
 * so named count, and only they are ever deleted. */
#ifndef MW_OUTDIR_H
#define MW_OUTDIR_H

#include <stdint.h>
#include <sys/types.h>

struct outdir;

/* Opens dir (created with mode 0750 if absent, its parent must exist) and
 * indexes the files written there before, deleting the oldest if they are
 * already beyond the bounds. max_files, max_bytes: 0 for no bound, but not
 * both (-EINVAL). 0 or -errno. */
int outdir_open(struct outdir **out, const char *dir, uint64_t max_files, uint64_t max_bytes);
/* Writes a file atomically (a temporary dot-file, fsync, rename), its
 * content written to fd (left open) by write(ctx, fd), which returns 0 or
 * -errno. comm is sanitized to at most 32 of [A-Za-z0-9._-], kind is 1 to
 * 16 of [a-z]. Then deletes the oldest files (by the time in their names,
 * then by name) beyond the bounds, this one too if it is the oldest.
 * 0 or -errno: the callback's error, -EFBIG for a file larger than
 * max_bytes alone, -EEXIST if the name is taken; no file of this write
 * remains then. An error deleting an old file is returned after the new
 * file is in place. */
int outdir_write(struct outdir *od, const char *comm, pid_t pid, int64_t realtime_ns, const char *kind,
		 int (*write)(void *ctx, int fd), void *ctx);

struct outdir_stats {
	uint64_t files, bytes;		/* in the directory now */
	uint64_t written, deleted;	/* since open */
	uint64_t errors;		/* failed writes and deletions */
};

void outdir_stats(const struct outdir *od, struct outdir_stats *out);
void outdir_close(struct outdir *od);

#endif
