/* The timeline as CSV and JSON, one column or key per measurement. */
#include "diagnose/timeline.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "diagnose/chart.h"
#include "util/text.h"

/* s as a JSON string, or null; invalid UTF-8 becomes U+FFFD. */
static void write_json_string(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	uint32_t cp;

	if (!s) {
		fputs("null", out);
		return;
	}
	putc('"', out);
	while (*s) {
		size_t bad, len = utf8_decode((const char *)s, &cp, &bad);
		if (len == 0) {
			fputs(UTF8_REPLACEMENT, out);
			s += bad;
			continue;
		}
		if (cp == '"' || cp == '\\')
			fprintf(out, "\\%c", (char)cp);
		else if (cp < 0x20)
			fprintf(out, "\\u%04x", (unsigned)cp);
		else
			fwrite(s, 1, len, out);
		s += len;
	}
	putc('"', out);
}

/* ---- Columns, shared by CSV and JSON ---------------------------------- */

enum cell_kind {
	CELL_DOUBLE,		/* NaN or infinite: not measured */
	CELL_GAUGE,		/* int64_t, negative: not measured */
	CELL_INT,		/* int, negative: not measured */
	CELL_COUNT,		/* uint64_t, always measured */
	CELL_HEAP,		/* CELL_GAUGE, and not measured without heap samples */
	CELL_PROBE_COUNT,	/* CELL_COUNT, not measured without a probe */
	CELL_PROBE_DOUBLE,	/* CELL_DOUBLE, not measured without a probe */
};

struct column {
	const char *name;
	enum cell_kind kind;
	size_t offset;
};

#define COL(name, kind, member) { name, kind, offsetof(struct tl_point, member) }
#define SYSCALL_COLS(sc, name)					\
	COL(name "_calls", CELL_COUNT, calls[sc]),		\
	COL(name "_p50_us", CELL_DOUBLE, sys_p50_us[sc]),	\
	COL(name "_p99_us", CELL_DOUBLE, sys_p99_us[sc])

_Static_assert(TL_NSYSCALLS == 5, "a syscall was added: add its columns");
_Static_assert(TL_SIZE_CLASSES == 9, "a size class was added: add its column");

/* The names are the CSV header and the JSON keys: keep them stable. */
static const struct column columns[] = {
	COL("t_s", CELL_DOUBLE, t),
	COL("dt_s", CELL_DOUBLE, dt),
	COL("live_heap_bytes", CELL_HEAP, live_heap),
	COL("rss_anon_bytes", CELL_GAUGE, rss_anon),
	COL("rss_file_bytes", CELL_GAUGE, rss_file),
	COL("rss_shmem_bytes", CELL_GAUGE, rss_shmem),
	COL("anonymous_bytes", CELL_GAUGE, anonymous),
	COL("lazyfree_bytes", CELL_GAUGE, lazyfree),
	COL("utilization", CELL_DOUBLE, utilization),
	COL("arenas", CELL_INT, arenas),
	COL("live_lt_64_bytes", CELL_HEAP, live_by_size[0]),
	COL("live_lt_256_bytes", CELL_HEAP, live_by_size[1]),
	COL("live_lt_1k_bytes", CELL_HEAP, live_by_size[2]),
	COL("live_lt_4k_bytes", CELL_HEAP, live_by_size[3]),
	COL("live_lt_16k_bytes", CELL_HEAP, live_by_size[4]),
	COL("live_lt_64k_bytes", CELL_HEAP, live_by_size[5]),
	COL("live_lt_256k_bytes", CELL_HEAP, live_by_size[6]),
	COL("live_lt_1m_bytes", CELL_HEAP, live_by_size[7]),
	COL("live_ge_1m_bytes", CELL_HEAP, live_by_size[8]),
	COL("faults", CELL_COUNT, faults),
	COL("fault_bytes", CELL_COUNT, fault_bytes),
	COL("refaults", CELL_COUNT, refaults),
	COL("refault_bytes", CELL_COUNT, refault_bytes),
	COL("purges", CELL_COUNT, purges),
	COL("purge_bytes", CELL_COUNT, purge_bytes),
	SYSCALL_COLS(TL_MADVISE, "madvise"),
	SYSCALL_COLS(TL_MMAP, "mmap"),
	SYSCALL_COLS(TL_MUNMAP, "munmap"),
	SYSCALL_COLS(TL_BRK, "brk"),
	SYSCALL_COLS(TL_MREMAP, "mremap"),
	COL("probe_calls", CELL_PROBE_COUNT, probe_calls),
	COL("probe_p50_us", CELL_PROBE_DOUBLE, probe_p50_us),
	COL("probe_p99_us", CELL_PROBE_DOUBLE, probe_p99_us),
};

#define NCOLUMNS (sizeof(columns) / sizeof(columns[0]))
#define CELL_MAX 32

/* %.9g: compact, and exact for the microsecond and byte values we hold. */
static bool format_double(double v, char *buf)
{
	if (!isfinite(v))
		return false;
	snprintf(buf, CELL_MAX, "%.9g", v);
	return true;
}

static bool format_gauge(int64_t v, char *buf)
{
	if (v < 0)
		return false;
	snprintf(buf, CELL_MAX, "%" PRId64, v);
	return true;
}

/* Formats the column of p into buf; false when it was not measured. */
static bool format_cell(const struct timeline *tl, const struct tl_point *p,
			const struct column *col, char buf[CELL_MAX])
{
	const char *field = (const char *)p + col->offset;

	switch (col->kind) {
	case CELL_DOUBLE:
		return format_double(*(const double *)field, buf);
	case CELL_PROBE_DOUBLE:
		return tl->probe && format_double(*(const double *)field, buf);
	case CELL_GAUGE:
		return format_gauge(*(const int64_t *)field, buf);
	case CELL_HEAP:
		return tl->have_heap && format_gauge(*(const int64_t *)field, buf);
	case CELL_INT:
		return format_gauge(*(const int *)field, buf);
	case CELL_PROBE_COUNT:
		if (!tl->probe)
			return false;
		/* fall through */
	case CELL_COUNT:
		snprintf(buf, CELL_MAX, "%" PRIu64, *(const uint64_t *)field);
		return true;
	}
	return false;
}

/* ---- CSV --------------------------------------------------------------- */

/* RFC 4180: a field holding a comma, quote or line break is quoted. The
 * cells are numbers, so only the header names could ever need it. */
static void write_csv_field(FILE *out, const char *s)
{
	if (!s[strcspn(s, ",\"\r\n")]) {
		fputs(s, out);
		return;
	}
	putc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			putc('"', out);
		putc(*s, out);
	}
	putc('"', out);
}

static void write_csv_row(const struct timeline *tl, const struct tl_point *p, FILE *out)
{
	char cell[CELL_MAX];

	for (size_t c = 0; c < NCOLUMNS; c++) {
		if (c)
			putc(',', out);
		if (format_cell(tl, p, &columns[c], cell))
			fputs(cell, out);
	}
	putc('\n', out);
}

int timeline_write_csv(const struct timeline *tl, FILE *out)
{
	if (!tl || !out)
		return -EINVAL;
	for (size_t c = 0; c < NCOLUMNS; c++) {
		if (c)
			putc(',', out);
		write_csv_field(out, columns[c].name);
	}
	putc('\n', out);
	for (size_t i = 0; i < tl->n; i++)
		write_csv_row(tl, &tl->v[i], out);
	return stream_finish(out);
}

/* ---- JSON -------------------------------------------------------------- */

static void write_json_point(const struct timeline *tl, const struct tl_point *p, FILE *out)
{
	char cell[CELL_MAX];

	for (size_t c = 0; c < NCOLUMNS; c++) {
		bool measured = format_cell(tl, p, &columns[c], cell);
		fprintf(out, "%s\"%s\":%s", c ? "," : "{", columns[c].name,
			measured ? cell : "null");
	}
	putc('}', out);
}

int timeline_write_json(const struct timeline *tl, FILE *out)
{
	if (!tl || !out)
		return -EINVAL;
	fprintf(out, "{\"pid\":%jd,\"comm\":", (intmax_t)tl->pid);
	write_json_string(out, tl->comm);
	fputs(",\"allocator\":", out);
	write_json_string(out, tl->allocator);
	fputs(",\"probe\":", out);
	write_json_string(out, tl->probe);
	fprintf(out, ",\"have_heap\":%s,\"intervals\":[", tl->have_heap ? "true" : "false");
	for (size_t i = 0; i < tl->n; i++) {
		fputs(i ? ",\n" : "\n", out);
		write_json_point(tl, &tl->v[i], out);
	}
	fputs(tl->n ? "\n]}\n" : "]}\n", out);
	return stream_finish(out);
}

/* ---- Files ------------------------------------------------------------- */

timeline_writer *timeline_writer_for(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (!dot || strchr(dot, '/'))
		return NULL;
	if (!strcasecmp(dot, ".csv"))
		return timeline_write_csv;
	if (!strcasecmp(dot, ".json"))
		return timeline_write_json;
	if (!strcasecmp(dot, ".svg"))
		return timeline_write_svg;
	return NULL;
}
