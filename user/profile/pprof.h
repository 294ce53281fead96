/* pprof profile builder: interns strings, deduplicates mappings, functions
 * and locations by hash, and serializes profile.proto (raw or gzipped).
 *
 * Ids returned by pprof_mapping/function/location are 1-based and dense; 0
 * means failure (out of memory or an invalid argument). NULL strings count
 * as "". Setters returning void record out-of-memory in the builder, and
 * pprof_encode / pprof_encode_gz / pprof_write_gz then fail with -ENOMEM. */
#ifndef MW_PPROF_H
#define MW_PPROF_H

#include <stddef.h>
#include <stdint.h>

struct pprof;

struct pprof_mapping {
	uint64_t start, limit, offset;
	const char *filename;		/* may be NULL/"" */
	const char *build_id;		/* hex string, may be NULL/"" */
	int has_functions, has_filenames, has_line_numbers, has_inline_frames;
};

struct pprof_line {
	uint64_t function_id;
	int64_t line;
};

/* str != NULL: a string label; else numeric: num, with num_unit (may be NULL). */
struct pprof_label {
	const char *key;
	const char *str;
	int64_t num;
	const char *num_unit;
};

struct pprof *pprof_new(void);
void pprof_free(struct pprof *p);

/* Index of s in the string table ("" and NULL are 0), or -ENOMEM. */
int64_t pprof_string(struct pprof *p, const char *s);

/* Sample types come before the first sample. Returns 0 or -ENOMEM. */
int pprof_add_sample_type(struct pprof *p, const char *type, const char *unit);
void pprof_set_period(struct pprof *p, const char *type, const char *unit, int64_t period);
void pprof_set_default_sample_type(struct pprof *p, const char *type);
void pprof_set_drop_frames(struct pprof *p, const char *regex);
void pprof_set_keep_frames(struct pprof *p, const char *regex);
void pprof_add_comment(struct pprof *p, const char *text);
void pprof_set_time(struct pprof *p, int64_t time_nanos, int64_t duration_nanos);

/* Deduplicated on (start, limit, offset, filename, build_id); the has_* flags
 * of the first call win. */
uint64_t pprof_mapping(struct pprof *p, const struct pprof_mapping *m);

/* Deduplicated on all four fields. */
uint64_t pprof_function(struct pprof *p, const char *name, const char *system_name,
			const char *filename, int64_t start_line);

/* lines[] is innermost first: lines[0] is the function executing at address,
 * each following entry the function it was inlined into, the last one the
 * real (outermost) function. That is also profile.proto's order, so lines are
 * stored as given. mapping_id 0 = no mapping; mapping and function ids must
 * exist. Deduplicated on (mapping_id, address) when address != 0: a repeated
 * call returns the first location and ignores its lines. */
uint64_t pprof_location(struct pprof *p, uint64_t mapping_id, uint64_t address,
			const struct pprof_line *lines, size_t nlines);

/* Appends one sample (no merging): location ids leaf first, one value per
 * sample type. Returns 0, -ENOMEM, or -EINVAL (value count differs from the
 * sample type count, unknown location id, label without key). */
int pprof_add_sample(struct pprof *p, const uint64_t *location_ids, size_t nlocs,
		     const int64_t *values, size_t nvalues,
		     const struct pprof_label *labels, size_t nlabels);

size_t pprof_sample_count(const struct pprof *p);

/* Raw protobuf bytes, malloc'ed. Returns 0 or -errno. */
int pprof_encode(struct pprof *p, uint8_t **buf, size_t *len);
/* Gzip-compressed (gzip header, as `go tool pprof` expects), malloc'ed. */
int pprof_encode_gz(struct pprof *p, uint8_t **buf, size_t *len);
/* Gzip-compressed to an open fd. Returns 0 or -errno. */
int pprof_write_gz(struct pprof *p, int fd);

#endif
