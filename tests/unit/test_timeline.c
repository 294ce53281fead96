/* The timeline writers: CSV and JSON contents, JSON validated by Python, SVG
 * rendered by rsvg-convert. TIMELINE_PNG=path keeps the thrash plot's PNG. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "diagnose/chart.h"
#include "diagnose/timeline.h"

/* What memwatch does with --timeline and --plot: the writer the path's
 * extension names, into the file. */
static int timeline_write_file(const struct timeline *tl, const char *path)
{
	timeline_writer *write;
	FILE *out;
	int err;

	if (!tl || !path || !(write = timeline_writer_for(path)))
		return -EINVAL;
	out = fopen(path, "we");
	if (!out)
		return -errno;
	err = write(tl, out);
	if (fclose(out) != 0 && !err)
		err = -errno;
	return err;
}

#define MiB (1024.0 * 1024)

static const char CSV_HEADER[] =
	"t_s,dt_s,live_heap_bytes,rss_anon_bytes,rss_file_bytes,rss_shmem_bytes,"
	"anonymous_bytes,lazyfree_bytes,utilization,arenas,"
	"live_lt_64_bytes,live_lt_256_bytes,live_lt_1k_bytes,live_lt_4k_bytes,live_lt_16k_bytes,"
	"live_lt_64k_bytes,live_lt_256k_bytes,live_lt_1m_bytes,live_ge_1m_bytes,faults,fault_bytes,"
	"refaults,refault_bytes,purges,purge_bytes,"
	"madvise_calls,madvise_p50_us,madvise_p99_us,mmap_calls,mmap_p50_us,mmap_p99_us,"
	"munmap_calls,munmap_p50_us,munmap_p99_us,brk_calls,brk_p50_us,brk_p99_us,"
	"mremap_calls,mremap_p50_us,mremap_p99_us,probe_calls,probe_p50_us,probe_p99_us\n";

/* A point where nothing was measured. */
static struct tl_point unmeasured(double t)
{
	struct tl_point p = {
		.t = t, .dt = 1, .live_heap = -1, .rss_anon = -1, .rss_file = -1,
		.rss_shmem = -1, .anonymous = -1, .lazyfree = -1, .utilization = NAN,
		.arenas = -1, .probe_p50_us = NAN, .probe_p99_us = NAN,
	};
	for (int i = 0; i < TL_NSYSCALLS; i++)
		p.sys_p50_us[i] = p.sys_p99_us[i] = NAN;
	for (int c = 0; c < TL_SIZE_CLASSES; c++)
		p.live_by_size[c] = -1;
	return p;
}

static struct tl_point measured(double t)
{
	struct tl_point p = {
		.t = t, .dt = 0.5, .live_heap = 1000, .rss_anon = 4096, .rss_file = 8192,
		.rss_shmem = 0, .anonymous = 4096, .lazyfree = 0, .utilization = 0.25,
		.arenas = 3, .faults = 7, .fault_bytes = 7 * 4096, .refaults = 2,
		.refault_bytes = 8192, .purges = 1, .purge_bytes = 65536,
		.probe_calls = 100, .probe_p50_us = 1.5, .probe_p99_us = 42,
	};
	for (int i = 0; i < TL_NSYSCALLS; i++) {
		p.calls[i] = 10 + i;
		p.sys_p50_us[i] = 2 + i;
		p.sys_p99_us[i] = 20.5 + i;
	}
	for (int c = 0; c < TL_SIZE_CLASSES; c++)
		p.live_by_size[c] = c == 2 ? 1000 : 0;
	return p;
}

static void add(struct timeline *tl, struct tl_point p)
{
	assert_int_equal(timeline_add(tl, &p), 0);
}

typedef int writer_fn(const struct timeline *tl, FILE *out);

static char *write_to_string(writer_fn *write, const struct timeline *tl)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	assert_int_equal(write(tl, out), 0);
	assert_int_equal(fclose(out), 0);
	return buf;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;

	assert_non_null(f);
	ssize_t len = getdelim(&buf, &cap, '\0', f);
	fclose(f);
	assert_true(len >= 0);
	return buf;
}

static char *make_temp_dir(void)
{
	char *dir = strdup("/tmp/test_timeline.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return dir;
}

static char *path_in(const char *dir, const char *name)
{
	char *path;
	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	return path;
}

static void remove_dir(char *dir)
{
	char *cmd;
	assert_true(asprintf(&cmd, "rm -rf '%s'", dir) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(dir);
}

static void test_add_grows(void **state)
{
	struct timeline tl;

	timeline_init(&tl);
	for (int i = 0; i < 1000; i++)
		add(&tl, measured(i));
	assert_int_equal(tl.n, 1000);
	assert_true(tl.cap >= 1000);
	assert_true(tl.v[999].t == 999);
	assert_int_equal(tl.v[500].arenas, 3);
	timeline_free(&tl);
	assert_null(tl.v);
	assert_int_equal(tl.n, 0);
}

/* A bounded timeline keeps its newest points, in order. */
static void test_bounded(void **state)
{
	struct timeline tl;

	timeline_init(&tl);
	tl.max = 10;
	for (int i = 0; i < 25; i++) {
		add(&tl, measured(i));
		assert_true(tl.n <= 10);
		assert_true(tl.v[tl.n - 1].t == i);
		for (size_t k = 1; k < tl.n; k++)
			assert_true(tl.v[k].t == tl.v[k - 1].t + 1);
	}
	assert_true(tl.n >= 5);
	assert_true(tl.cap <= 16);
	timeline_free(&tl);
}

static void test_syscall_names(void **state)
{
	assert_string_equal(tl_syscall_name(TL_MADVISE), "madvise");
	assert_string_equal(tl_syscall_name(TL_MMAP), "mmap");
	assert_string_equal(tl_syscall_name(TL_MUNMAP), "munmap");
	assert_string_equal(tl_syscall_name(TL_BRK), "brk");
	assert_string_equal(tl_syscall_name(TL_MREMAP), "mremap");
	assert_string_equal(tl_syscall_name(TL_NSYSCALLS), "unknown");
}

static void test_size_classes(void **state)
{
	static const struct { uint64_t size; unsigned cls; } cases[] = {
		{ 0, 0 }, { 1, 0 }, { 63, 0 }, { 64, 1 }, { 255, 1 }, { 256, 2 }, { 1023, 2 },
		{ 1024, 3 }, { 4095, 3 }, { 4096, 4 }, { 65535, 5 }, { 65536, 6 }, { 262143, 6 },
		{ 262144, 7 }, { 1048575, 7 }, { 1048576, 8 }, { UINT64_MAX, 8 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(tl_size_class(cases[i].size), cases[i].cls);
	assert_string_equal(tl_size_class_label(0), "<64 B");
	assert_string_equal(tl_size_class_label(2), "256 B-1 KiB");
	assert_string_equal(tl_size_class_label(TL_SIZE_CLASSES - 1), ">=1 MiB");
	assert_string_equal(tl_size_class_label(TL_SIZE_CLASSES), "?");
}

static void test_csv(void **state)
{
	struct timeline tl;

	timeline_init(&tl);
	tl.comm = "a,\"b\"";
	tl.have_heap = true;
	tl.probe = "/bin/x:f";
	add(&tl, measured(1.5));
	add(&tl, unmeasured(2));
	char *csv = write_to_string(timeline_write_csv, &tl);
	char *rows = csv + strlen(CSV_HEADER);

	assert_memory_equal(csv, CSV_HEADER, strlen(CSV_HEADER));
	assert_string_equal(rows,
		"1.5,0.5,1000,4096,8192,0,4096,0,0.25,3,0,0,1000,0,0,0,0,0,0,7,28672,2,8192,1,65536,"
		"10,2,20.5,11,3,21.5,12,4,22.5,13,5,23.5,14,6,24.5,100,1.5,42\n"
		"2,1,,,,,,,,,,,,,,,,,,0,0,0,0,0,0,"
		"0,,,0,,,0,,,0,,,0,,,0,,\n");
	free(csv);

	/* Without heap samples or a probe, those cells are empty. */
	tl.have_heap = false;
	tl.probe = NULL;
	tl.n = 1;
	csv = write_to_string(timeline_write_csv, &tl);
	assert_string_equal(csv + strlen(CSV_HEADER),
		"1.5,0.5,,4096,8192,0,4096,0,0.25,3,,,,,,,,,,7,28672,2,8192,1,65536,"
		"10,2,20.5,11,3,21.5,12,4,22.5,13,5,23.5,14,6,24.5,,,\n");
	free(csv);
	timeline_free(&tl);
}

static void test_csv_empty(void **state)
{
	struct timeline tl;

	timeline_init(&tl);
	char *csv = write_to_string(timeline_write_csv, &tl);
	assert_string_equal(csv, CSV_HEADER);
	free(csv);
}

/* Runs cmd, returns its output; *status is its exit status. */
static char *run(const char *cmd, int *status)
{
	FILE *p = popen(cmd, "r");
	char *buf = NULL;
	size_t cap = 0;

	assert_non_null(p);
	if (getdelim(&buf, &cap, '\0', p) < 0) {
		free(buf);
		buf = strdup("");
	}
	int rc = pclose(p);
	*status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
	return buf;
}

static void test_json(void **state)
{
	struct timeline tl;
	char *dir = make_temp_dir(), *path = path_in(dir, "t.json"), *cmd, *pretty;
	int status;

	timeline_init(&tl);
	tl.pid = 4242;
	tl.comm = "we\"ird\\ \x01\n\xff caf\xc3\xa9";
	tl.allocator = "jemalloc";
	tl.have_heap = true;
	add(&tl, measured(1));
	add(&tl, unmeasured(2));
	assert_int_equal(timeline_write_file(&tl, path), 0);

	assert_true(asprintf(&cmd, "python3 -m json.tool '%s'", path) > 0);
	pretty = run(cmd, &status);
	assert_int_equal(status, 0);
	assert_non_null(strstr(pretty, "\"pid\": 4242,"));
	assert_non_null(strstr(pretty, "\"comm\": \"we\\\"ird\\\\ \\u0001\\n\\ufffd caf\\u00e9\""));
	assert_non_null(strstr(pretty, "\"allocator\": \"jemalloc\""));
	assert_non_null(strstr(pretty, "\"probe\": null"));
	assert_non_null(strstr(pretty, "\"have_heap\": true"));
	assert_non_null(strstr(pretty, "\"rss_anon_bytes\": 4096,"));
	assert_non_null(strstr(pretty, "\"utilization\": 0.25,"));
	assert_non_null(strstr(pretty, "\"mremap_p99_us\": 24.5,"));
	assert_non_null(strstr(pretty, "\"live_heap_bytes\": null,"));
	assert_non_null(strstr(pretty, "\"probe_p99_us\": null"));
	free(pretty);
	free(cmd);

	/* Every interval has every column, as a number or null. */
	assert_true(asprintf(&cmd, "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
		"v=d[\"intervals\"]; assert len(v)==2 and len(v[0])==43 and len(v[1])==43; "
		"assert v[0][\"live_heap_bytes\"]==1000 and v[0][\"t_s\"]==1; "
		"assert v[0][\"live_lt_1k_bytes\"]==1000 and v[0][\"live_ge_1m_bytes\"]==0; "
		"assert v[1][\"live_lt_1k_bytes\"] is None; "
		"assert all(x is None or type(x) in (int,float) for p in v for x in p.values()); "
		"print(v[1][\"rss_file_bytes\"], v[1][\"purges\"])' '%s'", path) > 0);
	pretty = run(cmd, &status);
	assert_int_equal(status, 0);
	assert_string_equal(pretty, "None 0\n");
	free(pretty);
	free(cmd);

	timeline_free(&tl);
	free(path);
	remove_dir(dir);
}

static void test_json_empty(void **state)
{
	struct timeline tl;

	timeline_init(&tl);
	char *json = write_to_string(timeline_write_json, &tl);
	assert_string_equal(json, "{\"pid\":0,\"comm\":null,\"allocator\":null,\"probe\":null,"
			    "\"have_heap\":false,\"intervals\":[]}\n");
	free(json);
}

/* 60 s of madvise thrash: every 10 s the allocator purges a few hundred MiB,
 * the next seconds refault most of it, and the probed function's p99 jumps. */
static void thrash_timeline(struct timeline *tl)
{
	timeline_init(tl);
	tl->pid = 31337;
	tl->comm = "kv-server";
	tl->allocator = "jemalloc";
	tl->probe = "/usr/bin/kv-server:handle_request";
	tl->have_heap = true;
	for (int i = 1; i <= 60; i++) {
		struct tl_point p = measured(i);
		int phase = i % 10;
		double heap = 300 * MiB + 40 * MiB * sin(i / 4.0) + i * 1.5 * MiB;
		p.dt = 1;
		p.live_heap = heap;
		p.rss_anon = heap + 180 * MiB - (phase == 0 ? 160 * MiB : phase == 1 ? 80 * MiB : 0);
		p.rss_file = 42 * MiB;
		p.lazyfree = phase == 0 ? 60 * MiB : 0;
		p.purge_bytes = phase == 0 ? 240 * MiB : 2 * MiB;
		p.refault_bytes = phase == 1 ? 150 * MiB : phase == 2 ? 60 * MiB : MiB / 4;
		p.refaults = p.refault_bytes / 4096;
		p.probe_p50_us = 18 + 4 * (phase == 1);
		p.probe_p99_us = phase == 1 ? 4200 : phase == 2 ? 900 : 160 + 5 * (i % 3);
		add(tl, p);
	}
}

static void assert_png_plausible(const char *png)
{
	unsigned char ihdr[24];
	struct stat st;
	FILE *f = fopen(png, "rb");

	assert_non_null(f);
	assert_int_equal(fread(ihdr, 1, sizeof(ihdr), f), sizeof(ihdr));
	fclose(f);
	assert_memory_equal(ihdr, "\x89PNG\r\n\x1a\n", 8);
	uint32_t width = (uint32_t)ihdr[16] << 24 | ihdr[17] << 16 | ihdr[18] << 8 | ihdr[19];
	uint32_t height = (uint32_t)ihdr[20] << 24 | ihdr[21] << 16 | ihdr[22] << 8 | ihdr[23];
	assert_int_equal(width, 900);
	assert_true(height >= 100 && height <= 1000);
	assert_int_equal(stat(png, &st), 0);
	assert_true(st.st_size > 2000);
}

/* Writes tl as SVG, renders it to png (or a temporary PNG) and returns the SVG. */
static char *render_svg(const struct timeline *tl, const char *png)
{
	char *dir = make_temp_dir(), *svg = path_in(dir, "t.svg"), *tmp_png = path_in(dir, "t.png");
	char *cmd, *out, *text;
	int status;

	assert_int_equal(timeline_write_file(tl, svg), 0);
	assert_true(asprintf(&cmd, "rsvg-convert -o '%s' '%s' 2>&1", png ? png : tmp_png, svg) > 0);
	out = run(cmd, &status);
	if (status != 0)
		fail_msg("rsvg-convert: %s", out);
	assert_png_plausible(png ? png : tmp_png);
	free(out);
	free(cmd);
	assert_true(asprintf(&cmd, "python3 -c 'import sys, xml.etree.ElementTree as E; "
		"E.parse(sys.argv[1])' '%s' 2>&1", svg) > 0);
	out = run(cmd, &status);
	if (status != 0)
		fail_msg("not well-formed XML: %s", out);
	text = read_file(svg);
	assert_null(strstr(text, "<script"));
	assert_null(strstr(text, "href"));
	assert_null(strstr(text, "url("));
	assert_non_null(strstr(text, "<svg xmlns=\"http://www.w3.org/2000/svg\""));

	free(out);
	free(cmd);
	free(tmp_png);
	free(svg);
	remove_dir(dir);
	return text;
}

static size_t count(const char *s, const char *needle)
{
	size_t n = 0;
	for (; (s = strstr(s, needle)); s++)
		n++;
	return n;
}

/* The path of one series: its d attribute. */
static char *series_path(const char *svg, const char *id)
{
	char *needle;
	assert_true(asprintf(&needle, "class=\"series %s\"", id) > 0);
	const char *at = strstr(svg, needle);
	free(needle);
	if (!at)
		return NULL;
	at = strstr(at, " d=\"");
	assert_non_null(at);
	at += 4;
	return strndup(at, strcspn(at, "\""));
}

static void assert_series(const char *svg, const char *id, size_t npoints)
{
	char *d = series_path(svg, id);
	if (!d)
		fail_msg("no series %s", id);
	assert_int_equal(count(d, "M") + count(d, "L"), npoints);
	free(d);
}

static void test_svg_thrash(void **state)
{
	struct timeline tl;

	thrash_timeline(&tl);
	char *svg = render_svg(&tl, getenv("TIMELINE_PNG"));
	static const char *const ids[] = {
		"live_heap", "rss_anon", "rss_file", "lazyfree", "purges", "refaults",
		"probe_p50", "probe_p99",
	};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		assert_series(svg, ids[i], 60);
	assert_non_null(strstr(svg, "pid 31337 (kv-server)"));
	assert_non_null(strstr(svg, "allocator jemalloc"));
	assert_non_null(strstr(svg, "Latency of /usr/bin/kv-server:handle_request<"));
	assert_non_null(strstr(svg, "60 intervals over 60 s"));
	assert_non_null(strstr(svg, "memory (MiB)"));
	assert_non_null(strstr(svg, "rate (MiB/s)"));
	assert_non_null(strstr(svg, "time (s)"));
	assert_non_null(strstr(svg, ">1 ms<"));
	assert_null(strstr(svg, "no --latency-probe"));
	free(svg);
	timeline_free(&tl);
}

static void test_svg_without_probe_or_heap(void **state)
{
	struct timeline tl;

	thrash_timeline(&tl);
	tl.probe = NULL;
	tl.have_heap = false;
	for (size_t i = 0; i < tl.n; i++)
		tl.v[i].lazyfree = 0;
	char *svg = render_svg(&tl, NULL);
	assert_non_null(strstr(svg, "no --latency-probe"));
	assert_null(series_path(svg, "probe_p50"));
	assert_null(series_path(svg, "probe_p99"));
	assert_null(series_path(svg, "live_heap"));
	assert_null(series_path(svg, "lazyfree"));	/* all zero */
	assert_series(svg, "rss_anon", 60);
	free(svg);
	timeline_free(&tl);
}

/* Gaps, a late start, a constant and a huge series, an isolated point. */
static void test_svg_edges(void **state)
{
	struct timeline tl;

	timeline_init(&tl);
	tl.comm = "<&\"odd\">\x01\xff";
	tl.probe = "f";
	for (int i = 0; i < 20; i++) {
		struct tl_point p = measured(1000 + i * 0.25);
		p.dt = 0.25;
		p.rss_anon = (int64_t)1 << 60;			/* 1 EiB, constant */
		p.live_heap = i == 5 || i == 6 ? -1 : i * ((int64_t)1 << 55);
		p.rss_file = i == 10 ? 100 : -1;		/* one isolated point */
		p.probe_p50_us = i % 4 ? 0.01 : NAN;
		p.probe_p99_us = 5e6;				/* 5 s */
		p.refault_bytes = UINT64_MAX;
		add(&tl, p);
	}
	tl.have_heap = true;
	char *svg = render_svg(&tl, NULL);
	char *heap = series_path(svg, "live_heap"), *file = series_path(svg, "rss_file");

	assert_int_equal(count(heap, "M"), 2);		/* broken at the gap */
	assert_int_equal(count(heap, "L"), 16);
	assert_string_equal(strchr(file, 'h'), "h0.01");	/* a dot */
	assert_non_null(strstr(svg, "&lt;&amp;&quot;odd&quot;&gt; \xef\xbf\xbd"));
	assert_non_null(strstr(svg, "memory (EiB)"));
	assert_non_null(strstr(svg, ">1000.5<"));
	assert_null(strstr(svg, "nan"));
	assert_null(strstr(svg, "inf"));
	free(file);
	free(heap);
	free(svg);

	/* All zero and all at one instant. */
	for (size_t i = 0; i < tl.n; i++) {
		tl.v[i] = measured(7);
		tl.v[i].purge_bytes = tl.v[i].refault_bytes = 0;
		tl.v[i].dt = NAN;
	}
	svg = render_svg(&tl, NULL);
	assert_null(strstr(svg, "nan"));
	free(svg);
	timeline_free(&tl);
}

static void test_svg_no_data(void **state)
{
	struct timeline tl;

	timeline_init(&tl);
	char *svg = render_svg(&tl, NULL);
	assert_non_null(strstr(svg, "no data"));
	free(svg);

	add(&tl, measured(1));
	svg = render_svg(&tl, NULL);
	assert_non_null(strstr(svg, "no data"));
	assert_null(strstr(svg, "class=\"series"));
	free(svg);
	timeline_free(&tl);
}

static void test_write_file(void **state)
{
	struct timeline tl;
	char *dir = make_temp_dir();
	static const struct {
		const char *name;
		const char *starts;
	} files[] = {
		{ "t.csv", "t_s,dt_s," },
		{ "t.json", "{\"pid\":" },
		{ "T.SVG", "<?xml" },
		{ "a.b.svg", "<?xml" },
	};

	timeline_init(&tl);
	add(&tl, measured(1));
	add(&tl, measured(2));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *path = path_in(dir, files[i].name);
		assert_int_equal(timeline_write_file(&tl, path), 0);
		char *text = read_file(path);
		assert_memory_equal(text, files[i].starts, strlen(files[i].starts));
		free(text);
		free(path);
	}
	static const char *const bad[] = { "t.txt", "t", "svg", "t.svg.gz", "t.", "x.svg/t" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *path = path_in(dir, bad[i]);
		assert_int_equal(timeline_write_file(&tl, path), -EINVAL);
		assert_int_equal(access(path, F_OK), -1);	/* not created */
		free(path);
	}
	char *missing = path_in(dir, "no/such/dir/t.csv");
	assert_int_equal(timeline_write_file(&tl, missing), -ENOENT);
	free(missing);
	assert_int_equal(timeline_write_file(&tl, NULL), -EINVAL);
	assert_int_equal(timeline_write_file(NULL, "/tmp/x.csv"), -EINVAL);
	timeline_free(&tl);
	remove_dir(dir);
}

static void test_write_errors(void **state)
{
	static writer_fn *const writers[] = {
		timeline_write_csv, timeline_write_json, timeline_write_svg,
	};
	struct timeline tl;

	thrash_timeline(&tl);
	for (size_t i = 0; i < 3; i++) {
		FILE *full = fopen("/dev/full", "w");
		assert_non_null(full);
		assert_int_equal(writers[i](&tl, full), -ENOSPC);
		fclose(full);
		assert_int_equal(writers[i](&tl, NULL), -EINVAL);
		assert_int_equal(writers[i](NULL, stdout), -EINVAL);
	}
	assert_int_equal(timeline_write_file(&tl, "/dev/full/t.svg"), -ENOTDIR);
	timeline_free(&tl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_grows),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_syscall_names),
		cmocka_unit_test(test_size_classes),
		cmocka_unit_test(test_csv),
		cmocka_unit_test(test_csv_empty),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_empty),
		cmocka_unit_test(test_svg_thrash),
		cmocka_unit_test(test_svg_without_probe_or_heap),
		cmocka_unit_test(test_svg_edges),
		cmocka_unit_test(test_svg_no_data),
		cmocka_unit_test(test_write_file),
		cmocka_unit_test(test_write_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
