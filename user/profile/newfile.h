/* A file written in a directory without a name, and given one only when
 * complete: an O_TMPFILE where the file system offers it (nothing is left
 * behind if memwatch dies), else a hidden temporary name that says which
 * memwatch made it (boot, pid namespace, pid), so that a later memwatch
 * removes it once that process is gone (newfile_sweep). */
#ifndef MW_NEWFILE_H
#define MW_NEWFILE_H

#include <stdbool.h>
#include <sys/types.h>

#define NEWFILE_TMP_PREFIX ".memwatch-tmp."
#define NEWFILE_NAME_MAX 96

struct newfile {
	int fd;				/* -1: none */
	char tmpname[NEWFILE_NAME_MAX];	/* "": an O_TMPFILE, no name */
};

/* A new regular file in dirfd, mode (less the umask). 0 or -errno. */
int newfile_create(struct newfile *nf, int dirfd, mode_t mode);
/* Names the file name in dirfd. replace: atomically replacing whatever
 * name is (a symlink there is replaced, never followed); else -EEXIST if
 * name is taken, which is left alone. fd stays open. 0 or -errno. */
int newfile_link(struct newfile *nf, int dirfd, const char *name, bool replace);
/* Closes the file; a temporary name it still has is removed. */
void newfile_discard(struct newfile *nf, int dirfd);
/* Removes from dirfd the temporary files of memwatch processes of this boot
 * and pid namespace that no longer run, if they are regular files owned by
 * this user. The number removed. */
int newfile_sweep(int dirfd);
/* This process's temporary name prefix (NEWFILE_TMP_PREFIX, boot, pid
 * namespace, pid) into out: 0 or -errno. */
int newfile_tmp_prefix(char *out, size_t size, pid_t pid);

#endif
