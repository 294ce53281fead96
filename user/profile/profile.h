/* Writing a pprof profile from interned stacks: mappings (with honest
 * has_* flags), symbolized locations with inline frames, functions, and one
 * sample per row. The heap and the page profiles both go through here. */
#ifndef MW_PROFILE_H
#define MW_PROFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "stacks/stacks.h"

struct procs;
struct sym_result;

#define PROFILE_MAX_TYPES 4

struct profile_row {
	uint32_t stack;
	pid_t pid;			/* labelled when the rows have several */
	int64_t values[PROFILE_MAX_TYPES];
	int64_t bytes_label;		/* numeric label "bytes", or -1 for none */
	const char *str_label_key;	/* a string label, e.g. "event", or NULL */
	const char *str_label;
};

struct profile_spec {
	const char *types[PROFILE_MAX_TYPES][2];	/* sample type and unit */
	size_t ntypes;
	const char *default_type;	/* or NULL */
	const char *period_type[2];
	int64_t period;
	const char *drop_frames;	/* or NULL */
	int64_t start_ns, end_ns;	/* CLOCK_REALTIME */
	const char *const *comments;	/* NULL-terminated, or NULL */
};

#define PROFILE_MAX_PART_LABELS 4

/* Rows over one stacks table, with string labels every sample of theirs
 * carries (e.g. comm, exe, container_id), and then the pid too. */
struct profile_part {
	struct stacks *st;
	const struct profile_row *rows;
	size_t nrows;
	const char *labels[PROFILE_MAX_PART_LABELS][2];	/* key, value; ends at a NULL key */
};

/* Several parts in one profile (one per process, say). 0 or -errno. */
int profile_write_parts(struct procs *ps, const struct profile_spec *spec, const struct profile_part *parts,
			size_t nparts, int fd);
/* One part without labels. 0 or -errno. */
int profile_write(struct stacks *st, struct procs *ps, const struct profile_spec *spec, const struct profile_row *rows,
		  size_t nrows, int fd);
/* The frames of one location (inline expanded), or NULL if unknown. */
const struct sym_result *loc_symbols(struct procs *ps, const struct loc *l);

#endif
