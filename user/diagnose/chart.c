/* The timeline drawn: a self-contained SVG of three panels on one time
 * axis. */
#include "diagnose/chart.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/text.h"

/* s as XML character data, at most max_chars characters (then an ellipsis).
 * XML 1.0 forbids most control characters: they become spaces. */
static void write_xml_text(FILE *out, const char *str, size_t max_chars)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	uint32_t cp;

	for (size_t chars = 0; *s; chars++) {
		if (chars == max_chars) {
			fputs("\xe2\x80\xa6", out);	/* … */
			return;
		}
		size_t bad, len = utf8_decode((const char *)s, &cp, &bad);
		if (len == 0 || cp == 0xfffe || cp == 0xffff)
			fputs(UTF8_REPLACEMENT, out);
		else if (cp == '&')
			fputs("&amp;", out);
		else if (cp == '<')
			fputs("&lt;", out);
		else if (cp == '>')
			fputs("&gt;", out);
		else if (cp == '"')
			fputs("&quot;", out);
		else if (cp < 0x20 || cp == 0x7f)
			putc(' ', out);
		else
			fwrite(s, 1, len, out);
		s += len ? len : bad;
	}
}

/* Series colours: the Okabe-Ito palette, told apart with colour blindness. */
#define COLOR_LIVE_HEAP	"#0072b2"	/* blue */
#define COLOR_RSS_ANON	"#e69f00"	/* orange */
#define COLOR_RSS_FILE	"#999999"	/* grey */
#define COLOR_LAZYFREE	"#56b4e9"	/* sky blue */
#define COLOR_PURGES	"#009e73"	/* bluish green */
#define COLOR_REFAULTS	"#d55e00"	/* vermillion */
#define COLOR_PROBE_P50	"#cc79a7"	/* reddish purple */
#define COLOR_PROBE_P99	"#882255"	/* wine */
/* Chrome */
#define COLOR_TEXT	"#222222"
#define COLOR_MUTED	"#777777"
#define COLOR_GRID	"#e6e6e6"
#define COLOR_MINOR	"#f3f3f3"
#define COLOR_FRAME	"#bbbbbb"

/* Layout, in px. */
#define SVG_W		900
#define PLOT_X		72	/* left edge of the plots, after the y tick labels */
#define PLOT_W		(SVG_W - PLOT_X - 24)
#define HEADER_H	34
#define TITLE_H		24	/* a panel's title and legend row */
#define PANEL_GAP	12
#define XAXIS_H		38
#define CHAR_W		6.1	/* average width of an 11px sans-serif character */
#define TITLE_CHAR_W	7.5	/* ... of a bold 12px one */

typedef double series_value(const struct timeline *tl, const struct tl_point *p);

enum summary { SUMMARY_PEAK, SUMMARY_TOTAL };

struct series {
	const char *id;		/* its class, after "series" */
	const char *label;
	const char *color;
	series_value *value;	/* NaN where not measured: a gap */
	enum summary summary;	/* shown in the legend */
	bool only_if_nonzero;
	bool per_interval;	/* a rate over the interval: drawn as steps over a tint */
	const char *dash;	/* stroke-dasharray, for a line drawn over another */
};

enum axis_kind { AXIS_BYTES, AXIS_BYTE_RATE, AXIS_LATENCY };

struct panel {
	const char *title;
	enum axis_kind axis;
	const struct series *series;
	size_t nseries;
	int height;
};

static double gauge_value(int64_t v)
{
	return v >= 0 ? (double)v : NAN;
}

static double per_second(uint64_t bytes, double dt)
{
	return isfinite(dt) && dt > 0 ? (double)bytes / dt : NAN;
}

/* Latencies go on a log axis: nothing at or below zero. */
static double latency_value(const struct timeline *tl, double us)
{
	return tl->probe && isfinite(us) && us > 0 ? us : NAN;
}

static double live_heap_value(const struct timeline *tl, const struct tl_point *p)
{
	return tl->have_heap ? gauge_value(p->live_heap) : NAN;
}

static double rss_anon_value(const struct timeline *tl, const struct tl_point *p)
{
	return gauge_value(p->rss_anon);
}

static double rss_file_value(const struct timeline *tl, const struct tl_point *p)
{
	return gauge_value(p->rss_file);
}

static double lazyfree_value(const struct timeline *tl, const struct tl_point *p)
{
	return gauge_value(p->lazyfree);
}

static double purge_rate(const struct timeline *tl, const struct tl_point *p)
{
	return per_second(p->purge_bytes, p->dt);
}

static double refault_rate(const struct timeline *tl, const struct tl_point *p)
{
	return per_second(p->refault_bytes, p->dt);
}

static double probe_p50(const struct timeline *tl, const struct tl_point *p)
{
	return latency_value(tl, p->probe_p50_us);
}

static double probe_p99(const struct timeline *tl, const struct tl_point *p)
{
	return latency_value(tl, p->probe_p99_us);
}

#define SERIES(id_, label_, color_, value_, summary_, ...) \
	{ .id = id_, .label = label_, .color = color_, .value = value_, \
	  .summary = summary_, __VA_ARGS__ }

/* In legend order; drawn in reverse, so the first is on top. */
static const struct series memory_series[] = {
	SERIES("live_heap", "live heap", COLOR_LIVE_HEAP, live_heap_value, SUMMARY_PEAK),
	SERIES("rss_anon", "RSS anon", COLOR_RSS_ANON, rss_anon_value, SUMMARY_PEAK),
	SERIES("rss_file", "RSS file", COLOR_RSS_FILE, rss_file_value, SUMMARY_PEAK),
	SERIES("lazyfree", "LazyFree", COLOR_LAZYFREE, lazyfree_value, SUMMARY_PEAK,
	       .only_if_nonzero = true),
};

/* Refaults on top and dashed: in thrash they equal the purges. */
static const struct series kernel_series[] = {
	SERIES("refaults", "refaulted", COLOR_REFAULTS, refault_rate, SUMMARY_TOTAL,
	       .per_interval = true, .dash = "7 5"),
	SERIES("purges", "purged", COLOR_PURGES, purge_rate, SUMMARY_TOTAL, .per_interval = true),
};

static const struct series latency_series[] = {
	SERIES("probe_p50", "p50", COLOR_PROBE_P50, probe_p50, SUMMARY_PEAK),
	SERIES("probe_p99", "p99", COLOR_PROBE_P99, probe_p99, SUMMARY_PEAK),
};

#define NSERIES(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_SERIES 4
_Static_assert(NSERIES(memory_series) <= MAX_SERIES, "raise MAX_SERIES");

static const struct panel memory_panel = {
	.title = "Memory", .axis = AXIS_BYTES, .height = 170,
	.series = memory_series, .nseries = NSERIES(memory_series),
};
static const struct panel kernel_panel = {
	.title = "Purges and refaults per second", .axis = AXIS_BYTE_RATE, .height = 110,
	.series = kernel_series, .nseries = NSERIES(kernel_series),
};
static const struct panel latency_panel = {
	.title = "Latency", .axis = AXIS_LATENCY, .height = 120,
	.series = latency_series, .nseries = NSERIES(latency_series),
};

/* What a series holds over the whole timeline. */
struct series_stats {
	size_t n;		/* measured points */
	double min_positive, max, total;	/* total: the integral over time */
	bool shown;
};

/* A y axis. Linear: from 0, ticks every step, labelled in unit_name
 * (unit bytes). Log: decades lo..hi, a tick every step decades. */
struct yscale {
	double lo, hi, step;
	bool log;
	double unit;
	const char *unit_name;
};

struct svg {
	FILE *out;
	const struct timeline *tl;
	double t0, t1;		/* the x axis, seconds */
	double top;		/* where the next panel starts */
	double plot_bottom;	/* of the last plot, for the time axis */
};

/* 1, 2 or 5 times a power of ten, about range / target. */
static double nice_step(double range, int target)
{
	double raw = range / target;
	double mag = pow(10, floor(log10(raw)));
	double f = raw / mag;

	return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* Decimals that tell apart ticks a step apart. */
static int step_decimals(double step)
{
	return step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
}

static const char *const byte_units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };

/* The binary unit that shows v with at most three integer digits. */
static int byte_unit(double v)
{
	int k = 0;

	while (k < 6 && v / pow(1024, k) >= 999.5)
		k++;
	return k;
}

static void format_bytes(double v, char *buf, size_t size)
{
	int k = byte_unit(v);

	snprintf(buf, size, "%.3g %s", v / pow(1024, k), byte_units[k]);
}

static void format_us(double us, char *buf, size_t size)
{
	if (us < 0.9995)
		snprintf(buf, size, "%.3g ns", us * 1e3);
	else if (us < 999.5)
		snprintf(buf, size, "%.3g \xc2\xb5s", us);
	else if (us < 999.5e3)
		snprintf(buf, size, "%.3g ms", us / 1e3);
	else
		snprintf(buf, size, "%.3g s", us / 1e6);
}

static double text_width(const char *s, double char_w)
{
	size_t chars = 0;

	for (; *s; s++)
		chars += ((unsigned char)*s & 0xc0) != 0x80;
	return chars * char_w;
}

static double x_of(const struct svg *s, double t)
{
	return PLOT_X + (t - s->t0) / (s->t1 - s->t0) * PLOT_W;
}

static double y_of(const struct yscale *ys, double v, double top, double height)
{
	double f = ys->log ? log10(v / ys->lo) / log10(ys->hi / ys->lo)
			   : (v - ys->lo) / (ys->hi - ys->lo);

	return top + height - fmin(fmax(f, 0), 1) * height;
}

static struct series_stats series_stats(const struct timeline *tl, const struct series *se)
{
	struct series_stats st = { .min_positive = INFINITY };

	for (size_t i = 0; i < tl->n; i++) {
		double v = se->value(tl, &tl->v[i]);
		if (!isfinite(v))
			continue;
		st.n++;
		st.max = fmax(st.max, v);
		if (v > 0)
			st.min_positive = fmin(st.min_positive, v);
		if (isfinite(tl->v[i].dt) && tl->v[i].dt > 0)
			st.total += v * tl->v[i].dt;
	}
	st.shown = st.n > 0 && (!se->only_if_nonzero || st.max > 0);
	return st;
}

/* The x axis: from the start of the first interval to the end of the last. */
static void time_range(const struct timeline *tl, double *t0, double *t1)
{
	*t0 = INFINITY;
	*t1 = -INFINITY;
	for (size_t i = 0; i < tl->n; i++) {
		const struct tl_point *p = &tl->v[i];
		if (!isfinite(p->t))
			continue;
		double start = isfinite(p->dt) && p->dt > 0 ? p->t - p->dt : p->t;
		*t0 = fmin(*t0, start);
		*t1 = fmax(*t1, p->t);
	}
	if (!(*t1 > *t0)) {	/* one instant, or no time at all */
		double mid = isfinite(*t0) ? *t0 : 0;
		*t0 = mid - 0.5;
		*t1 = mid + 0.5;
	}
}

/* From 0 to a bit above max, in the byte unit that suits max. The floor of
 * a page keeps an all-zero series from getting a silly sub-byte axis. */
static struct yscale linear_scale(double max, enum axis_kind axis)
{
	static const char *const rate_units[] = {
		"B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s", "PiB/s", "EiB/s",
	};
	struct yscale ys = { .lo = 0 };
	int k;

	max = fmax(max, 4096);
	k = byte_unit(max);
	ys.unit = pow(1024, k);
	ys.unit_name = axis == AXIS_BYTE_RATE ? rate_units[k] : byte_units[k];
	ys.step = nice_step(max / ys.unit, 4) * ys.unit;
	ys.hi = ceil(max * 1.04 / ys.step) * ys.step;
	return ys;
}

static struct yscale log_scale(double min, double max)
{
	struct yscale ys = { .log = true };
	double lo = floor(log10(min / 1.05)), hi = ceil(log10(max * 1.05));

	if (hi <= lo)
		hi = lo + 1;
	ys.step = ceil((hi - lo) / 6);
	ys.lo = pow(10, lo);
	ys.hi = pow(10, hi);
	return ys;
}

static void svg_text(struct svg *s, double x, double y, const char *anchor,
		     const char *attrs, const char *text)
{
	fprintf(s->out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s%s>", x, y, anchor,
		attrs ? " " : "", attrs ? attrs : "");
	write_xml_text(s->out, text, 200);
	fputs("</text>\n", s->out);
}

static void svg_hline(struct svg *s, double y, const char *color)
{
	fprintf(s->out, "<path d=\"M%d %.1fh%d\" stroke=\"%s\"/>\n", PLOT_X, y, PLOT_W, color);
}

static void svg_vline(struct svg *s, double x, double top, double height, const char *color)
{
	fprintf(s->out, "<path d=\"M%.1f %.1fv%.1f\" stroke=\"%s\"/>\n", x, top, height, color);
}

static void draw_linear_ticks(struct svg *s, const struct yscale *ys, double top, double height)
{
	int decimals = step_decimals(ys->step / ys->unit);
	char label[32];

	for (int k = 0; k * ys->step <= ys->hi * (1 + 1e-9) && k <= 50; k++) {
		double v = k * ys->step, y = y_of(ys, v, top, height);
		if (k && v < ys->hi * (1 - 1e-9))
			svg_hline(s, y, COLOR_GRID);
		snprintf(label, sizeof(label), "%.*f", decimals, v / ys->unit);
		svg_text(s, PLOT_X - 6, y + 4, "end", NULL, label);
	}
}

static void draw_log_ticks(struct svg *s, const struct yscale *ys, double top, double height)
{
	double decades = round(log10(ys->hi / ys->lo));
	char label[32];

	for (int d = 0; d <= decades; d++) {
		double decade = ys->lo * pow(10, d);
		double y = y_of(ys, decade, top, height);
		if (ys->step == 1 && d < decades)
			for (int m = 2; m <= 9; m++)
				svg_hline(s, y_of(ys, decade * m, top, height), COLOR_MINOR);
		if (d > 0 && d < decades)
			svg_hline(s, y, fmod(d, ys->step) ? COLOR_MINOR : COLOR_GRID);
		if (fmod(d, ys->step) != 0)
			continue;
		format_us(decade, label, sizeof(label));
		svg_text(s, PLOT_X - 6, y + 4, "end", NULL, label);
	}
}

/* About ten round times across the x axis: the first, the spacing, how many. */
static int time_ticks(const struct svg *s, double *first, double *step)
{
	int n = 0;

	*step = nice_step(s->t1 - s->t0, 10);
	*first = ceil(s->t0 / *step) * *step;
	while (n < 50 && *first + n * *step <= s->t1)
		n++;
	return n;
}

static void draw_time_grid(struct svg *s, double top, double height)
{
	double first, step;
	int n = time_ticks(s, &first, &step);

	for (int k = 0; k < n; k++) {
		double x = x_of(s, first + k * step);
		if (x > PLOT_X + 0.5 && x < PLOT_X + PLOT_W - 0.5)
			svg_vline(s, x, top, height, COLOR_GRID);
	}
}

static void draw_time_axis(struct svg *s)
{
	double first, step;
	int n = time_ticks(s, &first, &step), decimals = step_decimals(step);
	char label[32];

	for (int k = 0; k < n; k++) {
		double t = first + k * step;
		snprintf(label, sizeof(label), "%.*f", decimals, fabs(t) < step / 2 ? 0 : t);
		svg_text(s, x_of(s, t), s->plot_bottom + 14, "middle", NULL, label);
	}
	svg_text(s, PLOT_X + PLOT_W / 2.0, s->plot_bottom + 30, "middle",
		 "fill=\"" COLOR_MUTED "\"", "time (s)");
}

/* Where point p of the series goes across: its instant, or for a rate its
 * whole interval (the rate is NaN where the interval is unknown). */
static void point_span(const struct svg *s, const struct series *se,
		       const struct tl_point *p, double *x0, double *x1)
{
	*x1 = x_of(s, p->t);
	*x0 = se->per_interval ? x_of(s, p->t - p->dt) : *x1;
}

/* The series' value at point i, false at a gap or past the end. */
static bool value_at(const struct svg *s, const struct series *se, size_t i, double *v)
{
	if (i >= s->tl->n || !isfinite(s->tl->v[i].t))
		return false;
	*v = se->value(s->tl, &s->tl->v[i]);
	return isfinite(*v);
}

/* One path per series; a NaN breaks the line, a lone point is a dot. */
static void draw_series(struct svg *s, const struct series *se, const struct yscale *ys,
			double top, double height)
{
	const struct timeline *tl = s->tl;
	size_t run = 0;
	double v, x0, x1;

	fprintf(s->out, "<path class=\"series %s\" stroke=\"%s\"", se->id, se->color);
	if (se->dash)
		fprintf(s->out, " stroke-dasharray=\"%s\"", se->dash);
	fputs(" d=\"", s->out);
	for (size_t i = 0; i <= tl->n; i++) {
		if (!value_at(s, se, i, &v)) {
			if (run == 1 && !se->per_interval)
				fputs("h0.01", s->out);
			run = 0;
			continue;
		}
		point_span(s, se, &tl->v[i], &x0, &x1);
		fprintf(s->out, "%s%.1f %.1f", run ? "L" : "M", x0, y_of(ys, v, top, height));
		if (x1 != x0)
			fprintf(s->out, "H%.1f", x1);
		run++;
	}
	fputs("\"/>\n", s->out);
}

/* The tint under a rate, closed down to zero at each gap. */
static void draw_area(struct svg *s, const struct series *se, const struct yscale *ys,
		      double top, double height)
{
	const struct timeline *tl = s->tl;
	double base = top + height, v, x0, x1;
	bool open = false;

	fprintf(s->out, "<path class=\"area %s\" fill=\"%s\" fill-opacity=\"0.15\" "
		"stroke=\"none\" d=\"", se->id, se->color);
	for (size_t i = 0; i <= tl->n; i++) {
		if (!value_at(s, se, i, &v)) {
			if (open)
				fprintf(s->out, "V%.1fZ", base);
			open = false;
			continue;
		}
		point_span(s, se, &tl->v[i], &x0, &x1);
		if (!open)
			fprintf(s->out, "M%.1f %.1f", x0, base);
		fprintf(s->out, "V%.1fH%.1f", y_of(ys, v, top, height), x1);
		open = true;
	}
	fputs("\"/>\n", s->out);
}

/* Tints first, then the lines, the first series on top. */
static void draw_all_series(struct svg *s, const struct panel *pl, const struct series_stats *st,
			    const struct yscale *ys, double top, double height)
{
	fputs("<g fill=\"none\" stroke-width=\"1.8\" stroke-linejoin=\"round\" "
	      "stroke-linecap=\"round\">\n", s->out);
	for (size_t i = pl->nseries; i-- > 0;)
		if (st[i].shown && pl->series[i].per_interval)
			draw_area(s, &pl->series[i], ys, top, height);
	for (size_t i = pl->nseries; i-- > 0;)
		if (st[i].shown)
			draw_series(s, &pl->series[i], ys, top, height);
	fputs("</g>\n", s->out);
}

static void format_summary(const struct series *se, const struct series_stats *st,
			   enum axis_kind axis, char *buf, size_t size)
{
	char value[32];
	bool total = se->summary == SUMMARY_TOTAL;
	double v = total ? st->total : st->max;

	if (axis == AXIS_LATENCY)
		format_us(v, value, sizeof(value));
	else
		format_bytes(v, value, sizeof(value));
	snprintf(buf, size, total ? "%s total" : "peak %s", value);
}

/* The last max_chars characters of str. */
static const char *last_chars(const char *str, size_t max_chars)
{
	size_t chars = 0;
	const char *s = str + strlen(str);

	while (s > str) {
		s--;
		if (((unsigned char)*s & 0xc0) != 0x80 && ++chars == max_chars)
			break;
	}
	return s;
}

/* The panel's title, then what it is about (the probe) cut from the left
 * to fit in room px; returns the width taken. */
/* "FUNCTION in /a/b/FILE" as "FUNCTION in FILE"; NULL without memory. */
static char *short_subject(const char *subject)
{
	const char *in = strstr(subject, " in "), *base;
	char *out;

	if (!in)
		return strdup(subject);
	base = strrchr(in + 4, '/');
	base = base ? base + 1 : in + 4;
	return asprintf(&out, "%.*s in %s", (int)(in - subject), subject, base) < 0 ? NULL : out;
}

static double draw_title(struct svg *s, const char *title, const char *full_subject, double room)
{
	double width = text_width(title, TITLE_CHAR_W);
	char *subject = full_subject ? short_subject(full_subject) : NULL;

	fprintf(s->out, "<text x=\"%d\" y=\"%.1f\" font-size=\"12\" font-weight=\"bold\">",
		PLOT_X, s->top + 15);
	write_xml_text(s->out, title, SIZE_MAX);
	if (subject) {
		double left = room - width - text_width(" of \xe2\x80\xa6", TITLE_CHAR_W);
		const char *tail = last_chars(subject, left > 8 * TITLE_CHAR_W ? left / TITLE_CHAR_W : 8);
		fprintf(s->out, " of %s", tail != subject ? "\xe2\x80\xa6" : "");
		write_xml_text(s->out, tail, SIZE_MAX);
		width += text_width(" of \xe2\x80\xa6", TITLE_CHAR_W) + text_width(tail, TITLE_CHAR_W);
	}
	fputs("</text>\n", s->out);
	free(subject);
	return width;
}

static double legend_entry_width(const char *label, const char *summary)
{
	return 21 + text_width(label, CHAR_W) + text_width(summary, CHAR_W) + 22;
}

/* The title, then a swatch, name and summary per shown series. */
static void draw_legend(struct svg *s, const struct panel *pl, const char *subject,
			const struct series_stats *st)
{
	double y = s->top + 15, legend_width = 0, x;
	char summary[MAX_SERIES][64];

	for (size_t i = 0; i < pl->nseries; i++) {
		if (!st[i].shown)
			continue;
		format_summary(&pl->series[i], &st[i], pl->axis, summary[i], sizeof(summary[i]));
		legend_width += legend_entry_width(pl->series[i].label, summary[i]);
	}
	x = PLOT_X + draw_title(s, pl->title, subject, PLOT_W - legend_width - 22) + 22;
	for (size_t i = 0; i < pl->nseries; i++) {
		const struct series *se = &pl->series[i];
		if (!st[i].shown)
			continue;
		fprintf(s->out, "<path class=\"legend %s\" d=\"M%.1f %.1fh16\" stroke=\"%s\" "
			"stroke-width=\"3\"%s%s%s/>\n", se->id, x, y - 4, se->color,
			se->dash ? " stroke-dasharray=\"" : "", se->dash ? se->dash : "", se->dash ? "\"" : "");
		fprintf(s->out, "<text x=\"%.1f\" y=\"%.1f\">%s <tspan fill=\"%s\">%s</tspan></text>\n",
			x + 21, y, se->label, COLOR_MUTED, summary[i]);
		x += legend_entry_width(se->label, summary[i]);
	}
}

static void draw_axis_title(struct svg *s, double top, double height, const char *title)
{
	fprintf(s->out, "<text transform=\"translate(14 %.1f) rotate(-90)\" text-anchor=\"middle\" "
		"fill=\"%s\">", top + height / 2, COLOR_MUTED);
	write_xml_text(s->out, title, 40);
	fputs("</text>\n", s->out);
}

static void draw_y_axis(struct svg *s, const struct panel *pl, const struct yscale *ys,
			double top, double height)
{
	static const char *const names[] = {
		[AXIS_BYTES] = "memory", [AXIS_BYTE_RATE] = "rate", [AXIS_LATENCY] = "latency",
	};
	char title[48];

	if (ys->log) {
		draw_log_ticks(s, ys, top, height);
		snprintf(title, sizeof(title), "%s (log)", names[pl->axis]);
	} else {
		draw_linear_ticks(s, ys, top, height);
		snprintf(title, sizeof(title), "%s (%s)", names[pl->axis], ys->unit_name);
	}
	draw_axis_title(s, top, height, title);
}

static void draw_panel(struct svg *s, const struct panel *pl, const char *subject)
{
	struct series_stats st[MAX_SERIES];
	double top = s->top + TITLE_H, height = pl->height;
	double min = INFINITY, max = 0;
	size_t shown = 0;

	for (size_t i = 0; i < pl->nseries; i++) {
		st[i] = series_stats(s->tl, &pl->series[i]);
		if (!st[i].shown)
			continue;
		shown++;
		min = fmin(min, st[i].min_positive);
		max = fmax(max, st[i].max);
	}
	draw_legend(s, pl, subject, st);
	fprintf(s->out, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"#ffffff\" "
		"stroke=\"%s\"/>\n", PLOT_X, top, PLOT_W, height, COLOR_FRAME);
	draw_time_grid(s, top, height);
	if (!shown) {
		svg_text(s, PLOT_X + PLOT_W / 2.0, top + height / 2 + 4, "middle",
			 "fill=\"" COLOR_MUTED "\"", "not measured");
	} else {
		struct yscale ys = pl->axis == AXIS_LATENCY ? log_scale(min, max)
							    : linear_scale(max, pl->axis);
		draw_y_axis(s, pl, &ys, top, height);
		draw_all_series(s, pl, st, &ys, top, height);
	}
	s->plot_bottom = top + height;
	s->top = top + height + PANEL_GAP;
}

/* Without --latency-probe, only a line that says so. */
static void draw_no_probe(struct svg *s)
{
	svg_text(s, PLOT_X, s->top + 15, "start", "font-size=\"12\" font-weight=\"bold\"",
		 "Latency");
	svg_text(s, PLOT_X + text_width("Latency", TITLE_CHAR_W) + 22, s->top + 15, "start",
		 "fill=\"" COLOR_MUTED "\"",
		 "no --latency-probe (run with --latency-probe FILE:FUNCTION to plot one)");
	s->top += TITLE_H;
}

static void format_span(double seconds, char *buf, size_t size)
{
	if (seconds < 10)
		snprintf(buf, size, "%.1f s", seconds);
	else if (seconds < 180)
		snprintf(buf, size, "%.0f s", seconds);
	else if (seconds < 7200)
		snprintf(buf, size, "%.1f min", seconds / 60);
	else
		snprintf(buf, size, "%.1f h", seconds / 3600);
}

static void draw_header(struct svg *s)
{
	const struct timeline *tl = s->tl;
	char line[512], span[32] = "";

	if (tl->n >= 2) {
		strcpy(span, " over ");
		format_span(s->t1 - s->t0, span + 6, sizeof(span) - 6);
	}
	snprintf(line, sizeof(line), "memwatch \xc2\xb7 pid %jd (%.64s) \xc2\xb7 allocator %.32s "
		 "\xc2\xb7 %zu interval%s%s", (intmax_t)tl->pid, tl->comm ? tl->comm : "?",
		 tl->allocator ? tl->allocator : "unknown", tl->n, tl->n == 1 ? "" : "s", span);
	svg_text(s, PLOT_X, 22, "start", "font-size=\"14\" font-weight=\"bold\"", line);
}

static void begin_svg(struct svg *s, double height)
{
	fprintf(s->out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%.0f\" "
		"viewBox=\"0 0 %d %.0f\" font-family=\"sans-serif\" font-size=\"11\" fill=\"%s\">\n"
		"<title>memwatch timeline</title>\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"#fafafa\"/>\n",
		SVG_W, height, SVG_W, height, COLOR_TEXT);
	draw_header(s);
}

static void write_svg_no_data(struct svg *s)
{
	char line[64];

	begin_svg(s, 110);
	snprintf(line, sizeof(line), "no data (%zu interval%s: nothing to plot)", s->tl->n,
		 s->tl->n == 1 ? "" : "s");
	svg_text(s, SVG_W / 2.0, 70, "middle", "font-size=\"13\" fill=\"" COLOR_MUTED "\"", line);
}

static void write_svg_plots(struct svg *s)
{
	const struct timeline *tl = s->tl;
	double height = HEADER_H + 2 * (TITLE_H + PANEL_GAP) + memory_panel.height +
			kernel_panel.height + XAXIS_H;

	height += tl->probe ? TITLE_H + PANEL_GAP + latency_panel.height : TITLE_H;
	time_range(tl, &s->t0, &s->t1);
	begin_svg(s, height);
	s->top = HEADER_H;
	draw_panel(s, &memory_panel, NULL);
	draw_panel(s, &kernel_panel, NULL);
	if (tl->probe) {
		draw_panel(s, &latency_panel, tl->probe);
		draw_time_axis(s);
	} else {
		draw_time_axis(s);
		s->top = s->plot_bottom + XAXIS_H;
		draw_no_probe(s);
	}
}

int timeline_write_svg(const struct timeline *tl, FILE *out)
{
	struct svg s = { .out = out, .tl = tl };

	if (!tl || !out)
		return -EINVAL;
	if (tl->n < 2)
		write_svg_no_data(&s);
	else
		write_svg_plots(&s);
	fputs("</svg>\n", out);
	return stream_finish(out);
}
