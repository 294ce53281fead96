/* An output file written atomically: opened (as a temporary file next to
 * its path) before memwatch attaches, so an unwritable path is an error up
 * front; renamed into place when complete. */
#ifndef MW_OUTFILE_H
#define MW_OUTFILE_H

#include <stdio.h>

struct outfile {
	char *path;
	char *tmp;		/* NULL: not open */
	int fd;
};

/* 0 or -errno. */
int outfile_open(struct outfile *of, const char *path);
/* A stream on the file (close it before outfile_commit); NULL on error. */
FILE *outfile_stream(struct outfile *of);
/* fsync and rename into place: 0 or -errno (the temporary file is gone either way). */
int outfile_commit(struct outfile *of);
void outfile_discard(struct outfile *of);

#endif
