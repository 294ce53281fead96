/* The probe sites memwatch put in a process's files, and taking them back
 * out of a forked child: fork copies the parent's text breakpoints and all,
 * and the kernel keeps them there (uprobe_multi links filter by pid only
 * when they run), so an unprofiled child would pay a trap per call. */
#ifndef MW_UNPROBE_H
#define MW_UNPROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* An x86 instruction's longest encoding. */
#define UNPROBE_BYTES 15

struct probe_site {
	uint64_t dev, inode;	/* the file, as objfiles key it (major << 32 | minor) */
	uint64_t offset;	/* file offset of the probed instruction */
	uint8_t orig[UNPROBE_BYTES];	/* the file's bytes from there */
};

struct probe_sites {
	struct probe_site *v;
	size_t n, cap;
};

/* Adds a site (once). 0 or -ENOMEM. */
int probe_sites_add(struct probe_sites *s, const struct probe_site *site);
void probe_sites_free(struct probe_sites *s);
/* Puts the file's byte back at every site where child (a process parent
 * forked) has a breakpoint: only while its parent is parent and it runs the
 * parent's program (a child that exec'd, or the process a reused pid names
 * now, is left alone: -ESRCH), and only where its memory maps the same file
 * and holds 0xcc instead of a different byte followed by the file's own
 * bytes: a site someone else has rewritten, or is rewriting (an in-process
 * hook's jump over the same instruction), is left alone. Returns the sites
 * restored, or -errno. */
int unprobe_child(const struct probe_sites *s, pid_t child, pid_t parent);

#endif
