/* An output file (-o, --pages-output, --timeline, --plot), opened before
 * memwatch attaches so that a path it cannot or must not write is an error
 * up front, written when the run ends.
 *
 * - "-" is stdout; a FIFO or a character device (/dev/null, /dev/stdout on
 *   a pipe or a terminal) is streamed into, never replaced. A FIFO with no
 *   reader yet is waited for (SIGINT, SIGTERM or SIGHUP give up).
 * - A regular file, or a new one, is written unnamed in its directory and
 *   atomically replaces the old file when complete, taking over its owner,
 *   group and permission bits (never wider than before, never executable).
 *   A new file gets 0644 less the umask.
 * - Refused: a directory, a block device, a socket, a symlink to a regular
 *   file or to nothing (name the file itself: replacing the target through
 *   a link is how a planted link redirects a root process's writes). */
#ifndef MW_OUTFILE_H
#define MW_OUTFILE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "profile/newfile.h"

struct outfile {
	char *path;		/* as given */
	bool open;
	bool stream;		/* written in place: stdout, a FIFO, a character device */
	int fd;			/* where the content goes */
	int dirfd;		/* a regular file's directory (O_PATH) */
	char *name;		/* ... and its name there */
	struct newfile nf;	/* ... and its new content */
	bool have_id;		/* dev, ino: what the path named when opened */
	dev_t dev;
	ino_t ino;
	char *canon;		/* a regular file's path, its directory resolved */
	const char *refusal;	/* why it was refused, if not an errno */
};

/* 0 or -errno; outfile_strerror says why. */
int outfile_open(struct outfile *of, const char *path);
const char *outfile_strerror(const struct outfile *of, int err);
/* Do a and b (both open) name the same file? */
bool outfile_same(const struct outfile *a, const struct outfile *b);
/* Would it corrupt what is written to memwatch's stdout: "-", or the pipe,
 * FIFO or file stdout is (a file would be replaced, the command's output
 * lost)? A character device (/dev/null, a terminal) keeps nothing to
 * corrupt: not counted. */
bool outfile_mixes_with_stdout(const struct outfile *of);
/* A stream on the file (close it before outfile_commit); NULL on error. */
FILE *outfile_stream(struct outfile *of);
/* Completes the file (a regular file replaces the old one): 0 or -errno;
 * the file is closed either way. */
int outfile_commit(struct outfile *of);
void outfile_discard(struct outfile *of);

/* The outputs of a run. */
struct outfile_set {
	struct outfile *heap, *pages, *timeline, *plot;
};

struct outfile_paths {
	const char *heap;	/* NULL: none (--pages-only) */
	const char *pages;	/* NULL: the heap profile's name with .pages, if it is a file */
	const char *timeline, *plot;	/* NULL: none */
	bool stdout_taken;	/* stdout is the command's: not for a profile */
};

/* Opens every output given, refusing one that is the taken stdout and two
 * that are one file; why on stderr. 0 or -errno. */
int outfile_open_set(const struct outfile_set *set, const struct outfile_paths *paths);

#endif
