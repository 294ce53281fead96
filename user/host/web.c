#include "host/web.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "host/profiles.h"
#include "host/table.h"
#include "host/http.h"
#include "host/metrics.h"
#include "host/outdir.h"
#include "session/session.h"
#include "proc/memstat.h"
#include "util/report.h"
#include "version.h"

#define MAX_DELTA_SECONDS 3600

struct delta_request {
	struct delta_request *next;
	struct http_request *req;
	enum profile_kind kind;
	pid_t pid;			/* 0: every profiled process */
	uint64_t deadline_ns;
	struct profile_bases bases;
};

static void answer_profile(struct web *w, struct http_request *req, struct hproc *hp, enum profile_kind kind,
			   const struct profile_bases *bases)
{
	char *buf = NULL, disposition[64];
	size_t len = 0;
	int err = host_profile_bytes(w->s, w->table, hp, kind, bases, &buf, &len);

	if (err) {
		http_respond_text(req, 500, "memwatch: cannot write the profile: %s\n", strerror(-err));
		return;
	}
	snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s\"", profile_kind_name(kind));
	http_header(req, "Content-Disposition", disposition);
	http_respond(req, 200, "application/octet-stream", buf, len);
	free(buf);
}

/* ---- delta requests --------------------------------------------------- */

static void free_delta(struct delta_request *d)
{
	profile_bases_free(&d->bases);
	free(d);
}

static struct delta_request *start_delta(struct web *w, struct http_request *req, struct hproc *only,
					 enum profile_kind kind, unsigned seconds)
{
	struct delta_request *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	session_scan_live(w->s);
	if (profile_bases_take(w->table, only, &d->bases)) {
		free(d);
		return NULL;
	}
	d->req = req;
	d->kind = kind;
	d->pid = only ? only->pid : 0;
	d->deadline_ns = clock_ns(CLOCK_MONOTONIC) + seconds * 1000000000ull;
	d->next = w->deltas;
	w->deltas = d;
	return d;
}

static void deliver(struct web *w, struct delta_request *d)
{
	struct hproc *hp = d->pid ? host_table_find(w->table, d->pid) : NULL;

	if (d->pid && (!hp || !hp->tgt))
		http_respond_text(d->req, 404, "memwatch: pid %d is gone\n", (int)d->pid);
	else
		answer_profile(w, d->req, hp, d->kind, &d->bases);
}

int web_next_deadline_ms(struct web *w)
{
	uint64_t now = clock_ns(CLOCK_MONOTONIC), next = UINT64_MAX;

	for (struct delta_request *d = w->deltas; d; d = d->next)
		if (d->deadline_ns < next)
			next = d->deadline_ns;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)((next - now) / 1000000) + 1;
}

void web_deliver_due(struct web *w)
{
	uint64_t now = clock_ns(CLOCK_MONOTONIC);
	bool scanned = false;

	for (struct delta_request **dp = &w->deltas; *dp;) {
		struct delta_request *d = *dp;
		if (d->deadline_ns > now) {
			dp = &d->next;
			continue;
		}
		if (!scanned) {
			session_scan_live(w->s);
			scanned = true;
		}
		*dp = d->next;
		deliver(w, d);
		free_delta(d);
	}
}

void web_process_gone(struct web *w, struct hproc *hp)
{
	for (struct delta_request **dp = &w->deltas; *dp;) {
		struct delta_request *d = *dp;
		if (d->pid != hp->pid) {
			dp = &d->next;
			continue;
		}
		*dp = d->next;
		answer_profile(w, d->req, hp, d->kind, &d->bases);
		free_delta(d);
	}
}

void web_abandoned(void *ctx, struct http_request *req)
{
	struct web *w = ctx;

	for (struct delta_request **dp = &w->deltas; *dp; dp = &(*dp)->next) {
		struct delta_request *d = *dp;
		if (d->req == req) {
			*dp = d->next;
			free_delta(d);
			return;
		}
	}
}

void web_init(struct web *w, struct session *s, struct host_table *table, struct outdir *outdir)
{
	*w = (struct web){ .s = s, .table = table, .outdir = outdir };
}

void web_free(struct web *w)
{
	while (w->deltas) {
		struct delta_request *d = w->deltas;
		w->deltas = d->next;
		http_respond_text(d->req, 503, "memwatch: shutting down\n");
		free_delta(d);
	}
}

/* ---- /metrics --------------------------------------------------------- */

static const char *const syscall_names[MW_SC_COUNT] = {
	[MW_SC_MADVISE] = "madvise", [MW_SC_MMAP] = "mmap", [MW_SC_MUNMAP] = "munmap",
	[MW_SC_BRK] = "brk", [MW_SC_MREMAP] = "mremap",
};

struct proc_reading {
	struct hproc *hp;
	struct mw_page_stats *st;	/* NULL: no kernel-side entry */
	int64_t rss_anon;
	char pid[16];
};

#define PROC_LABELS(r) ((const char *const[]){ "pid", (r)->pid, "comm", (r)->hp->comm, "container_id", \
					      (r)->hp->container, NULL })

static void read_processes(struct web *w, struct proc_reading *out, size_t *n)
{
	struct hmap_slot *s;
	struct memstat ms;

	*n = 0;
	for (size_t i = 0; hmap_next(&w->table->by_pid, &i, &s);) {
		struct proc_reading *r = &out[*n];
		r->hp = s->val;
		snprintf(r->pid, sizeof(r->pid), "%d", (int)r->hp->pid);
		r->st = malloc(sizeof(*r->st));
		if (r->st && pages_stats(&w->s->pages, r->hp->pid, r->st)) {
			free(r->st);
			r->st = NULL;
		}
		r->rss_anon = memstat_read_status(r->hp->pid, &ms) ? -1 : ms.rss_anon;
		(*n)++;
	}
}

typedef uint64_t stat_field(const struct mw_page_stats *st);
static uint64_t f_faults(const struct mw_page_stats *st) { return st->faults; }
static uint64_t f_refaults(const struct mw_page_stats *st) { return st->refaults; }
static uint64_t f_refault_bytes(const struct mw_page_stats *st) { return st->refault_bytes; }
static uint64_t f_purges(const struct mw_page_stats *st) { return st->purges; }
static uint64_t f_purge_bytes(const struct mw_page_stats *st) { return st->purge_bytes; }
static uint64_t f_unmaps(const struct mw_page_stats *st) { return st->unmaps; }
static uint64_t f_unmap_bytes(const struct mw_page_stats *st) { return st->unmap_bytes; }

static void kernel_counter(struct metrics *m, const struct proc_reading *r, size_t n, const char *name,
			   const char *help, stat_field *field)
{
	metrics_family(m, name, "counter", help);
	for (size_t i = 0; i < n; i++)
		if (r[i].st)
			metrics_sample_u64(m, name, PROC_LABELS(&r[i]), field(r[i].st));
}

static void kernel_metrics(struct metrics *m, const struct proc_reading *r, size_t n)
{
	kernel_counter(m, r, n, "memwatch_process_page_faults_total",
		       "Page faults on pages not present (user mode), per process.", f_faults);
	kernel_counter(m, r, n, "memwatch_process_refaults_total",
		       "Faults on pages the process had purged (madvise, munmap, brk shrink) before.", f_refaults);
	kernel_counter(m, r, n, "memwatch_process_refault_bytes_total", "Bytes of those refaults.",
		       f_refault_bytes);
	kernel_counter(m, r, n, "memwatch_process_purges_total",
		       "madvise DONTNEED/FREE/REMOVE/DONTNEED_LOCKED calls that succeeded.", f_purges);
	kernel_counter(m, r, n, "memwatch_process_purge_bytes_total", "Bytes those purges covered.",
		       f_purge_bytes);
	kernel_counter(m, r, n, "memwatch_process_unmaps_total", "munmap calls and brk shrinks.", f_unmaps);
	kernel_counter(m, r, n, "memwatch_process_unmap_bytes_total", "Bytes unmapped or given back by brk.",
		       f_unmap_bytes);
	metrics_family(m, "memwatch_process_rss_anon_bytes", "gauge", "Resident anonymous memory (RssAnon).");
	for (size_t i = 0; i < n; i++)
		if (r[i].rss_anon >= 0)
			metrics_sample_u64(m, "memwatch_process_rss_anon_bytes", PROC_LABELS(&r[i]), r[i].rss_anon);
}

static void heap_metrics(struct metrics *m, const struct proc_reading *r, size_t n)
{
	static const struct {
		const char *name, *type, *help;
		int field;
	} heap[] = {
		{ "memwatch_process_live_heap_bytes", "gauge", "Estimated bytes in live heap blocks (sampled).", 0 },
		{ "memwatch_process_live_heap_objects", "gauge", "Estimated live heap blocks (sampled).", 1 },
		{ "memwatch_process_alloc_bytes_total", "counter", "Estimated bytes allocated since profiled.", 2 },
		{ "memwatch_process_alloc_objects_total", "counter", "Estimated allocations since profiled.", 3 },
	};

	for (size_t k = 0; k < sizeof(heap) / sizeof(heap[0]); k++) {
		metrics_family(m, heap[k].name, heap[k].type, heap[k].help);
		for (size_t i = 0; i < n; i++) {
			const struct target *t = r[i].hp->tgt;
			if (!t)
				continue;
			const struct heap_totals *tot = &t->heap.tot;
			double v[] = { tot->inuse_bytes, tot->inuse_objects, tot->alloc_bytes, tot->alloc_objects };
			metrics_sample_u64(m, heap[k].name, PROC_LABELS(&r[i]), v[heap[k].field] > 0 ?
					   (uint64_t)(v[heap[k].field] + 0.5) : 0);
		}
	}
	metrics_family(m, "memwatch_process_heap_utilization_ratio", "gauge",
		       "Estimated live heap over resident anonymous memory.");
	for (size_t i = 0; i < n; i++)
		if (r[i].hp->tgt && r[i].rss_anon > 0)
			metrics_sample_double(m, "memwatch_process_heap_utilization_ratio", PROC_LABELS(&r[i]),
					      r[i].hp->tgt->heap.tot.inuse_bytes / r[i].rss_anon);
}

static void latency_metrics(struct metrics *m, const struct proc_reading *r, size_t n)
{
	uint64_t total[MW_SC_COUNT][MW_HIST_BUCKETS] = { { 0 } };

	for (size_t i = 0; i < n; i++)
		for (int sc = 0; r[i].st && sc < MW_SC_COUNT; sc++)
			for (int b = 0; b < MW_HIST_BUCKETS; b++)
				total[sc][b] += r[i].st->latency[sc][b];
	metrics_family(m, "memwatch_syscall_latency_seconds", "histogram",
		       "Latency of the address-space syscalls, every process memwatch tracks.");
	for (int sc = 0; sc < MW_SC_COUNT; sc++)
		metrics_histogram_ns(m, "memwatch_syscall_latency_seconds",
				     (const char *const[]){ "syscall", syscall_names[sc], NULL }, total[sc]);
	metrics_family(m, "memwatch_process_syscall_latency_seconds", "histogram",
		       "Latency of the address-space syscalls, per profiled process.");
	for (size_t i = 0; i < n; i++) {
		if (!r[i].hp->tgt || !r[i].st)
			continue;
		for (int sc = 0; sc < MW_SC_COUNT; sc++)
			metrics_histogram_ns(m, "memwatch_process_syscall_latency_seconds",
					     (const char *const[]){ "pid", r[i].pid, "comm", r[i].hp->comm,
								    "container_id", r[i].hp->container, "syscall",
								    syscall_names[sc], NULL },
					     (const uint64_t *)r[i].st->latency[sc]);
	}
}

static void info_metrics(struct metrics *m, const struct proc_reading *r, size_t n)
{
	metrics_family(m, "memwatch_process_info", "gauge",
		       "1 per tracked process; profiled=\"1\" if its heap is probed.");
	for (size_t i = 0; i < n; i++)
		metrics_sample_u64(m, "memwatch_process_info",
				   (const char *const[]){ "pid", r[i].pid, "comm", r[i].hp->comm, "container_id",
							  r[i].hp->container, "exe", r[i].hp->exe ? r[i].hp->exe : "",
							  "profiled", r[i].hp->tgt ? "1" : "0", NULL },
				   1);
}

static void own_losses(struct metrics *m, struct web *w)
{
	static const struct {
		int counter;
		const char *reason;
	} losses[] = {
		{ MW_CNT_RINGBUF_FULL, "ring_buffer_full" }, { MW_CNT_LIVE_FULL, "live_map_full" },
		{ MW_CNT_PENDING_FULL, "calls_lost" },	     { MW_CNT_BUSY, "samplers_busy" },
		{ MW_CNT_STACK_FAIL, "unreadable_stacks" },
	};
	uint64_t heap[MW_CNT_NR], kern[MW_CNT_NR];

	session_heap_counters(w->s, heap);
	pages_counters(&w->s->pages, kern);
	metrics_family(m, "memwatch_lost_events_total", "counter", "Events memwatch could not record, by reason.");
	for (size_t i = 0; i < sizeof(losses) / sizeof(losses[0]); i++) {
		metrics_sample_u64(m, "memwatch_lost_events_total",
				   (const char *const[]){ "side", "heap", "reason", losses[i].reason, NULL },
				   heap[losses[i].counter]);
		metrics_sample_u64(m, "memwatch_lost_events_total",
				   (const char *const[]){ "side", "kernel", "reason", losses[i].reason, NULL },
				   kern[losses[i].counter]);
	}
}

static void http_auth_metrics(struct metrics *m, const struct http_stats *hs)
{
	const char *name = "memwatch_http_authentications_total";

	metrics_family(m, name, "counter", "Basic authentications: passed or failed a bcrypt check, passed as a "
		       "password seen before, or refused (429) past the checks' CPU budget.");
	metrics_sample_u64(m, name, (const char *const[]){ "result", "passed", NULL }, hs->auth_passed);
	metrics_sample_u64(m, name, (const char *const[]){ "result", "failed", NULL }, hs->auth_failed);
	metrics_sample_u64(m, name, (const char *const[]){ "result", "remembered", NULL }, hs->auth_remembered);
	metrics_sample_u64(m, name, (const char *const[]){ "result", "refused", NULL }, hs->auth_refused);
}

static void own_metrics(struct metrics *m, struct web *w)
{
	struct rusage ru;
	struct memstat ms;
	const struct host_counts *c = &w->table->counts;
	char evicted[2][8] = { "process", "profiled" };

	own_losses(m, w);
	metrics_family(m, "memwatch_evictions_total", "counter",
		       "Processes memwatch stopped tracking (process) or profiling (profiled) to stay in its bounds.");
	metrics_sample_u64(m, "memwatch_evictions_total", (const char *const[]){ "what", evicted[0], NULL },
			   c->evicted_processes);
	metrics_sample_u64(m, "memwatch_evictions_total", (const char *const[]){ "what", evicted[1], NULL },
			   c->evicted_profiled);
	metrics_family(m, "memwatch_dropped_processes_total", "counter",
		       "Processes not tracked: --max-processes reached and none idle to evict.");
	metrics_sample_u64(m, "memwatch_dropped_processes_total", NULL, c->dropped_processes);
	metrics_family(m, "memwatch_processes", "gauge", "Processes tracked, and of them profiled.");
	metrics_sample_u64(m, "memwatch_processes", (const char *const[]){ "state", "tracked", NULL },
			   w->table->by_pid.len);
	metrics_sample_u64(m, "memwatch_processes", (const char *const[]){ "state", "profiled", NULL },
			   w->table->nprofiled);
	metrics_family(m, "memwatch_stacks_total", "counter", "Stacks unwound and interned.");
	metrics_sample_u64(m, "memwatch_stacks_total", NULL, w->s->sk.stacks);
	if (!getrusage(RUSAGE_SELF, &ru)) {
		metrics_family(m, "memwatch_cpu_seconds_total", "counter", "CPU time memwatch used (user + system).");
		metrics_sample_double(m, "memwatch_cpu_seconds_total", NULL,
				      ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
					      (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	}
	if (!memstat_read_status(getpid(), &ms)) {
		metrics_family(m, "memwatch_resident_memory_bytes", "gauge", "memwatch's own resident memory.");
		metrics_sample_u64(m, "memwatch_resident_memory_bytes", NULL,
				   (uint64_t)(ms.rss_anon + ms.rss_file + ms.rss_shmem));
	}
	if (w->http) {
		struct http_stats hs;
		http_stats(w->http, &hs);
		metrics_family(m, "memwatch_http_connections_closed_total", "counter",
			       "Connections the server closed: to make room for other clients (evicted), or past their "
			       "deadline for a request or an answer (timeout).");
		metrics_sample_u64(m, "memwatch_http_connections_closed_total",
				   (const char *const[]){ "reason", "evicted", NULL }, hs.evicted);
		metrics_sample_u64(m, "memwatch_http_connections_closed_total",
				   (const char *const[]){ "reason", "timeout", NULL }, hs.timed_out);
		http_auth_metrics(m, &hs);
	}
	if (w->outdir) {
		struct outdir_stats os;
		outdir_stats(w->outdir, &os);
		metrics_family(m, "memwatch_output_files", "gauge", "Profiles kept in --output-dir.");
		metrics_sample_u64(m, "memwatch_output_files", NULL, os.files);
		metrics_family(m, "memwatch_output_bytes", "gauge", "Bytes of the profiles kept in --output-dir.");
		metrics_sample_u64(m, "memwatch_output_bytes", NULL, os.bytes);
		metrics_family(m, "memwatch_output_errors_total", "counter", "Profiles --output-dir failed to write.");
		metrics_sample_u64(m, "memwatch_output_errors_total", NULL, os.errors);
	}
}

static void answer_metrics(struct web *w, struct http_request *req)
{
	struct proc_reading *r = calloc(w->table->by_pid.len + 1, sizeof(*r));
	struct metrics m;
	size_t n = 0;

	if (!r) {
		http_respond_text(req, 500, "memwatch: out of memory\n");
		return;
	}
	session_scan_live(w->s);
	read_processes(w, r, &n);
	metrics_init(&m);
	info_metrics(&m, r, n);
	kernel_metrics(&m, r, n);
	heap_metrics(&m, r, n);
	latency_metrics(&m, r, n);
	own_metrics(&m, w);
	if (metrics_error(&m))
		http_respond_text(req, 500, "memwatch: cannot render metrics: %s\n", strerror(-metrics_error(&m)));
	else
		http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", m.buf, m.len);
	metrics_free(&m);
	for (size_t i = 0; i < n; i++)
		free(r[i].st);
	free(r);
}

/* ---- /debug/pprof/ ---------------------------------------------------- */

static void html_escaped(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

static void answer_index(struct web *w, struct http_request *req)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct hmap_slot *s;

	if (!f) {
		http_respond_text(req, 500, "memwatch: out of memory\n");
		return;
	}
	fputs("<!DOCTYPE html>\n<html><head><title>memwatch /debug/pprof/</title></head><body>\n"
	      "<h1>memwatch: profiled processes</h1>\n<p>All of them: <a href=\"heap\">heap</a> "
	      "<a href=\"allocs\">allocs</a> <a href=\"pages\">pages</a>; add ?seconds=N for a delta.</p>\n"
	      "<table>\n<tr><th>pid</th><th>comm</th><th>container</th><th>profiles</th></tr>\n", f);
	for (size_t i = 0; hmap_next(&w->table->by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		if (!hp->tgt)
			continue;
		fprintf(f, "<tr><td>%d</td><td>", (int)hp->pid);
		html_escaped(f, hp->comm);
		fputs("</td><td>", f);
		html_escaped(f, hp->container[0] ? hp->container : "-");
		fprintf(f, "</td><td><a href=\"heap?pid=%d\">heap</a> <a href=\"allocs?pid=%d\">allocs</a> "
			   "<a href=\"pages?pid=%d\">pages</a></td></tr>\n", (int)hp->pid, (int)hp->pid, (int)hp->pid);
	}
	fputs("</table>\n</body></html>\n", f);
	if (fclose(f)) {
		free(buf);
		http_respond_text(req, 500, "memwatch: out of memory\n");
		return;
	}
	http_respond(req, 200, "text/html; charset=utf-8", buf, len);
	free(buf);
}

/* A decimal number in [min, max], nothing else. */
static bool parse_number(const char *s, long min, long max, long *out)
{
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return false;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static void answer_pprof(struct web *w, struct http_request *req, enum profile_kind kind)
{
	static const char *const known[] = { "pid", "seconds", "gc", "debug", NULL };
	const char *pid_s = http_param(req, "pid"), *sec_s = http_param(req, "seconds");
	const char *debug = http_param(req, "debug"), *gc = http_param(req, "gc");
	struct hproc *hp = NULL;
	long pid = 0, seconds = 0;

	if (http_has_unknown_param(req, known)) {
		http_respond_text(req, 400, "memwatch: unknown parameter: pid, seconds, gc and debug are known\n");
		return;
	}
	if ((pid_s && !parse_number(pid_s, 1, INT_MAX, &pid)) ||
	    (sec_s && !parse_number(sec_s, 1, MAX_DELTA_SECONDS, &seconds)) ||
	    (gc && strcmp(gc, "0") && strcmp(gc, "1"))) {
		http_respond_text(req, 400, "memwatch: pid must be a process id, seconds a whole number from 1 to %d\n",
				  MAX_DELTA_SECONDS);
		return;
	}
	if (debug && strcmp(debug, "0")) {
		http_respond_text(req, 400, "memwatch: only the protobuf format (debug=0) is served\n");
		return;
	}
	if (pid_s) {
		hp = host_table_find(w->table, (pid_t)pid);
		if (!hp || !hp->tgt) {
			http_respond_text(req, 404, hp ? "memwatch: pid %ld is not profiled (--comm, --pid and --cgroup "
							 "select the processes that are)\n"
						       : "memwatch: no process %ld is tracked\n", pid);
			return;
		}
	}
	if (kind != PROFILE_PAGES && !w->s->have_heap) {
		http_respond_text(req, 404, "memwatch: no heap profiles (--pages-only, or no --comm/--pid/--cgroup)\n");
		return;
	}
	if (!seconds) {
		session_scan_live(w->s);
		answer_profile(w, req, hp, kind, NULL);
		return;
	}
	if (http_defer(req)) {
		http_header(req, "Retry-After", "10");
		http_respond_text(req, 503, "memwatch: too many ?seconds requests waiting (%d at once, %d per client)\n",
				  HTTP_MAX_DEFERRED, HTTP_MAX_DEFERRED_PER_CLIENT);
		return;
	}
	if (!start_delta(w, req, hp, kind, (unsigned)seconds))
		http_respond_text(req, 500, "memwatch: out of memory\n");
}

void web_handle(void *ctx, struct http_request *req)
{
	struct web *w = ctx;
	const char *path = http_path(req);
	static const char *const none[] = { NULL };

	if (!strcmp(path, "/metrics")) {
		if (http_has_unknown_param(req, none))
			http_respond_text(req, 400, "memwatch: /metrics takes no parameters\n");
		else
			answer_metrics(w, req);
	} else if (!strcmp(path, "/debug/pprof/heap")) {
		answer_pprof(w, req, PROFILE_HEAP);
	} else if (!strcmp(path, "/debug/pprof/allocs")) {
		answer_pprof(w, req, PROFILE_ALLOCS);
	} else if (!strcmp(path, "/debug/pprof/pages")) {
		answer_pprof(w, req, PROFILE_PAGES);
	} else if (!strcmp(path, "/debug/pprof/") || !strcmp(path, "/debug/pprof")) {
		answer_index(w, req);
	} else if (!strcmp(path, "/")) {
		http_respond_text(req, 200, "memwatch %s: /metrics (Prometheus), /debug/pprof/ (pprof)\n", MW_VERSION);
	} else {
		http_respond_text(req, 404, "memwatch: no such page; try /metrics or /debug/pprof/\n");
	}
}
