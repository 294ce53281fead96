/* --output-dir: profiles written as files into a directory, the oldest
 * deleted to keep within a bound on their count and/or total size. Files
 * are named "<comm>-<pid>-<YYYYmmddTHHMMSS.mmmZ>.<kind>.pb.gz". Only files
 * memwatch provably wrote count and are ever deleted: those its index
 * (outindex.h) records, still with the recorded inode, size and owner.
 * Every other file there, whatever its name, is never touched. */
#ifndef MW_OUTDIR_H
#define MW_OUTDIR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct outdir;

/* Opens dir (created with mode 0750 if absent, its parent must exist) and
 * its index (created: a directory memwatch cannot write is an error here),
 * takes over the files earlier runs wrote, deleting the oldest if they are
 * already beyond the bounds; warns on stderr of files there that are not
 * memwatch's, and of an index that is not. max_files, max_bytes: 0 for no bound, but not
 * both (-EINVAL). 0 or -errno. */
int outdir_open(struct outdir **out, const char *dir, uint64_t max_files, uint64_t max_bytes);
/* Writes a file atomically (unnamed until complete, never replacing a
 * file of that name), its content written to fd (left open) by
 * write(ctx, fd), which returns 0 or -errno. comm is sanitized to at most 32 of [A-Za-z0-9._-], kind is 1 to
 * 16 of [a-z]. Then deletes the oldest files (by the time in their names,
 * then by name) beyond the bounds, this one too if it is the oldest.
 * 0 or -errno: the callback's error, -EFBIG for a file larger than
 * max_bytes alone, -EEXIST if the name is taken; no file of this write
 * remains then. An error deleting an old file is returned after the new
 * file is in place. */
int outdir_write(struct outdir *od, const char *comm, pid_t pid, int64_t realtime_ns, const char *kind,
		 int (*write)(void *ctx, int fd), void *ctx);

struct outdir_stats {
	uint64_t files, bytes;		/* memwatch's in the directory now */
	uint64_t written, deleted;	/* since open */
	uint64_t errors;		/* failed writes and deletions */
	uint64_t foreign;		/* files there at open that are not memwatch's */
	bool index_foreign;		/* the index there is not memwatch's: earlier
					 * runs' files are not recognized (nor deleted) */
};

void outdir_stats(const struct outdir *od, struct outdir_stats *out);
/* Reports failed writes and deletions: -EIO if any, else 0. */
int outdir_report(const struct outdir *od, const char *dir);
void outdir_close(struct outdir *od);

#endif
