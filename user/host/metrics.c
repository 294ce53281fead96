#include "host/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/array.h"
#include "util/hist.h"
#include "util/text.h"

enum { TYPE_NONE, TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM };

/* Histogram bounds: every power of two of nanoseconds from 2^10 (1 us) to
 * 2^31 (2.1 s). Each is the floor of bucket 4 * log, so the buckets below
 * it hold exactly the durations below it (whole ns, truncated), which le
 * counts up to and including it: the same but for durations of exactly
 * 2^log ns. The last memwatch bucket starts at 3.76 s and is open-ended. */
#define LE_MIN_LOG 10
#define LE_MAX_LOG 31

void metrics_init(struct metrics *m)
{
	memset(m, 0, sizeof(*m));
}

void metrics_free(struct metrics *m)
{
	for (size_t i = 0; i < m->nfamilies; i++)
		free(m->families[i]);
	free(m->families);
	free(m->buf);
	metrics_init(m);
}

int metrics_error(const struct metrics *m)
{
	return m->err;
}

static void fail(struct metrics *m, int err)
{
	if (!m->err)
		m->err = err;
}

static void put(struct metrics *m, const char *s, size_t n)
{
	if (m->err)
		return;
	if (array_reserve((void **)&m->buf, &m->cap, m->len + n + 1, 1)) {
		fail(m, -ENOMEM);
		return;
	}
	memcpy(m->buf + m->len, s, n);
	m->len += n;
	m->buf[m->len] = '\0';
}

static void put_str(struct metrics *m, const char *s)
{
	put(m, s, strlen(s));
}

/* Drops a partly written line after an error. */
static void truncate_to(struct metrics *m, size_t mark)
{
	if (m->err && m->len > mark) {
		m->len = mark;
		m->buf[mark] = '\0';
	}
}

static const char *escape(unsigned char c, bool quotes)
{
	if (c == '\\')
		return "\\\\";
	if (c == '\n')
		return "\\n";
	if (c == '"' && quotes)
		return "\\\"";
	return NULL;
}

/* Text as valid UTF-8 with backslash and newline escaped, and double
 * quotes too in label values. */
static void put_escaped(struct metrics *m, const char *text, bool quotes)
{
	const unsigned char *s = (const unsigned char *)text, *run = s;

	while (*s) {
		const char *subst = escape(*s, quotes);
		size_t n = 1;

		if (!subst) {
			uint32_t cp;
			size_t good = utf8_decode((const char *)s, &cp, &n);
			if (good) {
				s += good;
				continue;
			}
			subst = UTF8_REPLACEMENT;
		}
		put(m, (const char *)run, s - run);
		put_str(m, subst);
		s += n;
		run = s;
	}
	put(m, (const char *)run, s - run);
}

/* The shortest decimal that reads back as v, in the notation of Go's
 * strconv.FormatFloat(v, 'g', -1, 64) that Prometheus' own clients use, so
 * le labels read the same whoever writes them. */
static void format_double(char *out, size_t size, double v)
{
	int prec, exp;

	if (isnan(v) || isinf(v)) {
		snprintf(out, size, "%s", isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (prec = 1;; prec++) {
		snprintf(out, size, "%.*e", prec - 1, v);
		if (prec == 17 || strtod(out, NULL) == v)
			break;
	}
	exp = atoi(strchr(out, 'e') + 1);
	if (exp < -4 || exp >= 6)
		return;
	snprintf(out, size, "%.*f", prec - 1 - exp > 0 ? prec - 1 - exp : 0, v);
}

static bool valid_name(const char *s, bool metric)
{
	if (!s || !*s || !strncmp(s, "__", 2))
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (metric && c == ':') || (p > s && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

/* Valid, distinct label names with values; a histogram's own is le. */
static bool valid_labels(const char *const *labels, bool histogram)
{
	for (size_t i = 0; labels && labels[i]; i += 2) {
		if (!valid_name(labels[i], false) || !labels[i + 1])
			return false;
		if (histogram && !strcmp(labels[i], "le"))
			return false;
		for (size_t j = 0; j < i; j += 2)
			if (!strcmp(labels[i], labels[j]))
				return false;
	}
	return true;
}

static bool is_current(const struct metrics *m, const char *name, int type)
{
	return m->nfamilies && m->type == type && !strcmp(m->families[m->nfamilies - 1], name);
}

static void put_labels(struct metrics *m, const char *const *labels, const char *le)
{
	const char *sep = "{";

	for (size_t i = 0; labels && labels[i]; i += 2) {
		put_str(m, sep);
		put_str(m, labels[i]);
		put_str(m, "=\"");
		put_escaped(m, labels[i + 1], true);
		put_str(m, "\"");
		sep = ",";
	}
	if (le) {
		put_str(m, sep);
		put_str(m, "le=\"");
		put_str(m, le);
		put_str(m, "\"");
		sep = ",";
	}
	if (*sep == ',')
		put_str(m, "}");
}

static void put_sample(struct metrics *m, const char *name, const char *suffix,
		       const char *const *labels, const char *le, const char *value)
{
	put_str(m, name);
	put_str(m, suffix);
	put_labels(m, labels, le);
	put_str(m, " ");
	put_str(m, value);
	put_str(m, "\n");
}

static int parse_type(const char *type)
{
	if (!type)
		return TYPE_NONE;
	if (!strcmp(type, "counter"))
		return TYPE_COUNTER;
	if (!strcmp(type, "gauge"))
		return TYPE_GAUGE;
	if (!strcmp(type, "histogram"))
		return TYPE_HISTOGRAM;
	return TYPE_NONE;
}

static bool declared(const struct metrics *m, const char *name)
{
	for (size_t i = 0; i < m->nfamilies; i++)
		if (!strcmp(m->families[i], name))
			return true;
	return false;
}

static int add_family(struct metrics *m, const char *name)
{
	if (ARRAY_GROW(m->families, m->nfamilies, m->families_cap))
		return -ENOMEM;
	m->families[m->nfamilies] = strdup(name);
	if (!m->families[m->nfamilies])
		return -ENOMEM;
	m->nfamilies++;
	return 0;
}

void metrics_family(struct metrics *m, const char *name, const char *type, const char *help)
{
	size_t mark = m->len;
	int t = parse_type(type);

	if (m->err)
		return;
	if (t == TYPE_NONE || !valid_name(name, true) || !help || declared(m, name)) {
		fail(m, -EINVAL);
		return;
	}
	int err = add_family(m, name);
	if (err) {
		fail(m, err);
		return;
	}
	m->type = t;
	put_str(m, "# HELP ");
	put_str(m, name);
	put_str(m, " ");
	put_escaped(m, help, false);
	put_str(m, "\n# TYPE ");
	put_str(m, name);
	put_str(m, " ");
	put_str(m, type);
	put_str(m, "\n");
	truncate_to(m, mark);
}

static void sample(struct metrics *m, const char *name, const char *const *labels, const char *value)
{
	size_t mark = m->len;

	if (m->err)
		return;
	if ((!is_current(m, name, TYPE_COUNTER) && !is_current(m, name, TYPE_GAUGE)) ||
	    !valid_labels(labels, false)) {
		fail(m, -EINVAL);
		return;
	}
	put_sample(m, name, "", labels, NULL, value);
	truncate_to(m, mark);
}

void metrics_sample_u64(struct metrics *m, const char *name, const char *const *labels, uint64_t value)
{
	char text[24];

	snprintf(text, sizeof(text), "%" PRIu64, value);
	sample(m, name, labels, text);
}

void metrics_sample_double(struct metrics *m, const char *name, const char *const *labels, double value)
{
	char text[32];

	format_double(text, sizeof(text), value);
	sample(m, name, labels, text);
}

/* The mean of the whole nanoseconds bucket b holds, were they spread evenly:
 * exact for buckets of width 1. bucket_of() puts 0..3 ns in buckets 0..3
 * and 4 ns and more in buckets 8 and up, so 4..7 stay empty (and have no
 * hist_bucket_floor()). The open-ended last bucket counts at the middle of
 * its nominal width, an underestimate for longer waits. */
static double bucket_mid_ns(unsigned b)
{
	if (b < 8)
		return b < 4 ? b : 3;
	uint64_t width = 1ull << (b / 4 - 2);
	return hist_bucket_floor(b) + (width - 1) / 2.0;
}

void metrics_histogram_ns(struct metrics *m, const char *name, const char *const *labels,
			  const uint64_t counts[MW_HIST_BUCKETS])
{
	size_t mark = m->len;
	uint64_t below = 0;
	double sum_ns = 0;
	char le[32], value[32], sum[32];
	unsigned b = 0;

	if (m->err)
		return;
	if (!is_current(m, name, TYPE_HISTOGRAM) || !valid_labels(labels, true)) {
		fail(m, -EINVAL);
		return;
	}
	for (unsigned log = LE_MIN_LOG; log <= LE_MAX_LOG; log++) {
		for (; b < 4 * log; b++)
			below += counts[b];
		format_double(le, sizeof(le), (double)(1ull << log) / 1e9);
		snprintf(value, sizeof(value), "%" PRIu64, below);
		put_sample(m, name, "_bucket", labels, le, value);
	}
	for (; b < MW_HIST_BUCKETS; b++)
		below += counts[b];
	snprintf(value, sizeof(value), "%" PRIu64, below);
	put_sample(m, name, "_bucket", labels, "+Inf", value);

	for (b = 0; b < MW_HIST_BUCKETS; b++)
		sum_ns += counts[b] * bucket_mid_ns(b);
	format_double(sum, sizeof(sum), sum_ns / 1e9);
	put_sample(m, name, "_sum", labels, NULL, sum);
	put_sample(m, name, "_count", labels, NULL, value);
	truncate_to(m, mark);
}
