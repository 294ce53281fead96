/* The record of the files memwatch wrote into an --output-dir, kept there
 * as ".memwatch-index": what proves, across runs, that a file is memwatch's
 * to delete. One line per change:
 *
 *   + INODE SIZE NAME     memwatch wrote NAME (appended before NAME exists)
 *   - NAME                memwatch deleted NAME, or gave up writing it
 *                         (appended after)
 *
 * so that a memwatch killed at any point leaves no file it wrote
 * unrecorded. *
 * The index is trusted only as a regular file owned by this user, writable
 * by no one else, with no other link: a user who can write the directory
 * cannot make one. A name in it is memwatch's only while the file there is
 * still a regular file of this user with the recorded inode and size. */
#ifndef MW_OUTINDEX_H
#define MW_OUTINDEX_H

#include <stddef.h>
#include <stdint.h>

#define OUTINDEX_NAME ".memwatch-index"

struct outindex_entry {
	char *name;
	uint64_t ino, size;
};

struct outindex {
	int dirfd;
	int fd;			/* appended to; -1: not kept (untrusted or failed) */
	size_t lines;		/* records in the file */
};

/* Opens the index of dirfd (created if absent) and reads it into *entries
 * (malloc'ed, with their names; the last record of a name wins, only
 * additions remain). 0; -EPERM if an index there is not memwatch's (ix is
 * then usable, keeping nothing); or -errno (nothing open). */
int outindex_open(struct outindex *ix, int dirfd, struct outindex_entry **entries, size_t *n);
/* Appends a record ('+' or '-') and syncs it: 0 or -errno. */
int outindex_append(struct outindex *ix, char op, const struct outindex_entry *e);
/* Replaces the index with these entries alone: 0 or -errno. */
int outindex_rewrite(struct outindex *ix, const struct outindex_entry *entries, size_t n);
void outindex_close(struct outindex *ix);
void outindex_free_entries(struct outindex_entry *entries, size_t n);

#endif
