/* /proc/PID/maps snapshots. */
#ifndef MW_PROCMAPS_H
#define MW_PROCMAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mapping {
	uint64_t start, end;	/* [start, end) */
	uint64_t offset;	/* file offset of start */
	uint64_t inode;
	uint32_t dev_major, dev_minor;
	bool readable, writable, executable, shared;
	bool deleted;		/* the file was deleted (" (deleted)" suffix) */
	char *path;		/* as the target names it, "" when anonymous */
	void *data;		/* the owner's per-mapping data */
};

struct maps {
	struct mapping *v;	/* sorted by start */
	size_t n;
};

/* 0 or -errno. */
int maps_read(pid_t pid, struct maps *out);
int maps_parse(const char *text, struct maps *out);
void maps_free(struct maps *m);
const struct mapping *maps_find(const struct maps *m, uint64_t addr);
bool mapping_is_file(const struct mapping *m);

#endif
