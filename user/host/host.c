/* memwatch --all over the driver core; see host.h. */
#include "host/host.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diagnose/timeline.h"
#include "host/hostlisten.h"
#include "host/http.h"
#include "host/match.h"
#include "host/outdir.h"
#include "host/profiles.h"
#include "host/table.h"
#include "host/web.h"
#include "kernel/bpflog.h"
#include "profile/outfile.h"
#include "proc/cgroup.h"
#include "proc/procstat.h"
#include "session/session.h"
#include "util/array.h"
#include "util/report.h"

#define SCAN_NS 2000000000ull		/* /proc is scanned this often */
#define IDLE_NS 60000000000ull		/* evictable: no activity for a minute */
#define OUTPUT_INTERVAL_S 60
#define MIN_VERDICT_INTERVALS 3		/* fewer: verdict unknown, not printed at exit */

struct host {
	const struct options *opt;
	struct session s;
	struct host_table table;
	struct hmap skip;		/* (pid, start time) evicted: not re-added */
	struct matcher match;
	struct host_listen listen;	/* --listen */
	struct outdir *outdir;
	struct web web;
	uint64_t next_scan_ns;
	bool ending;			/* memwatch stops: every verdict is printed */
};

static char *read_exe_path(pid_t pid)
{
	char path[64], *buf = NULL;
	size_t cap = 0;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	for (;;) {
		if (array_reserve((void **)&buf, &cap, cap + 256, 1)) {
			free(buf);
			return NULL;
		}
		ssize_t n = readlink(path, buf, cap);
		if (n < 0) {
			free(buf);
			return NULL;
		}
		if ((size_t)n < cap) {
			buf[n] = 0;
			return buf;
		}
	}
}

static uint64_t skip_key(pid_t pid, uint64_t start_time)
{
	return hash_u64((uint64_t)pid << 40 ^ start_time);
}

/* ---- what a profiled process leaves ------------------------------------- */

static int write_profile_fd(struct host *h, struct hproc *hp, enum profile_kind kind, int fd)
{
	return host_profile_write(&h->s, &h->table, hp, kind, NULL, fd);
}

static int write_heap_fd(void *ctx, int fd)
{
	void **args = ctx;

	return write_profile_fd(args[0], args[1], PROFILE_HEAP, fd);
}

static int write_pages_fd(void *ctx, int fd)
{
	void **args = ctx;

	return write_profile_fd(args[0], args[1], PROFILE_PAGES, fd);
}

/* --output-dir: a heap and a page profile of hp. */
static void write_outputs(struct host *h, struct hproc *hp)
{
	void *args[] = { h, hp };
	int64_t now = (int64_t)clock_ns(CLOCK_REALTIME);
	int err;

	if (!h->outdir || !hp->tgt)
		return;
	if (!h->opt->pages_only && (err = outdir_write(h->outdir, hp->comm, hp->pid, now, "heap", write_heap_fd, args)))
		report_error("--output-dir: pid %d heap profile: %s", (int)hp->pid, strerror(-err));
	if ((err = outdir_write(h->outdir, hp->comm, hp->pid, now, "pages", write_pages_fd, args)))
		report_error("--output-dir: pid %d page profile: %s", (int)hp->pid, strerror(-err));
}

/* "t.json" -> "t-PID.json": each profiled process's own --timeline and --plot. */
static char *path_for(const char *path, pid_t pid)
{
	const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
	char *out = NULL;

	if (!dot || (slash && dot < slash))
		dot = path + strlen(path);
	if (asprintf(&out, "%.*s-%d%s", (int)(dot - path), path, (int)pid, dot) < 0)
		return NULL;
	return out;
}

/* Through an outfile, like -p's: never into what a planted link points at. */
static void write_timeline(const struct hproc *hp, const char *pattern)
{
	char *path = pattern ? path_for(pattern, hp->pid) : NULL;
	struct outfile of;
	FILE *f = NULL;
	int err;

	if (!pattern)
		return;
	if (!path) {
		report_error("cannot write %s: %s", pattern, strerror(ENOMEM));
		return;
	}
	err = outfile_open(&of, path);
	if (!err) {
		f = outfile_stream(&of);
		err = f ? timeline_writer_for(pattern)(&hp->tgt->diag.mon.tl, f) : -errno;
		if (f && fclose(f) && !err)
			err = -errno;
		err = err ? (outfile_discard(&of), err) : outfile_commit(&of);
	}
	if (err)
		report_error("cannot write %s: %s", path, outfile_strerror(&of, err));
	free(path);
}

/* The verdict of a process that leaves (or of every one, when memwatch
 * stops), and its timeline files. */
static void conclude(struct host *h, struct hproc *hp)
{
	char prefix[64];

	if (!h->ending && target_intervals(hp->tgt) < MIN_VERDICT_INTERVALS)
		return;
	snprintf(prefix, sizeof(prefix), "pid %d (%s): ", (int)hp->pid, hp->comm);
	target_conclude(hp->tgt, prefix, stderr);
	if (target_intervals(hp->tgt)) {
		write_timeline(hp, h->opt->timeline);
		write_timeline(hp, h->opt->plot);
	}
}

/* ---- targets: the processes with heap probes ---------------------------- */

static void unprofile(struct host *h, struct hproc *hp)
{
	if (!hp->tgt)
		return;
	web_process_gone(&h->web, hp);
	write_outputs(h, hp);
	conclude(h, hp);
	session_drop_target(&h->s, hp->tgt);
	hp->tgt = NULL;
	h->table.nprofiled--;
}

static struct hproc *least_active(struct host *h, bool profiled)
{
	struct hproc *oldest = NULL;
	struct hmap_slot *s;

	for (size_t i = 0; hmap_next(&h->table.by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		if (profiled && !hp->tgt)
			continue;
		if (!oldest || hp->last_active_ns < oldest->last_active_ns)
			oldest = hp;
	}
	return oldest;
}

/* Whether the kernel side or the heap probes saw each process do anything
 * since last time. */
static void refresh_activity(struct host *h)
{
	struct mw_page_stats st;
	uint64_t now = clock_ns(CLOCK_MONOTONIC);
	struct hmap_slot *s;

	for (size_t i = 0; hmap_next(&h->table.by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		uint64_t calls = 0, samples = hp->tgt ? hp->tgt->heap.tot.samples : 0;
		if (pages_stats(&h->s.pages, hp->pid, &st))
			memset(&st, 0, sizeof(st));
		for (int sc = 0; sc < MW_SC_COUNT; sc++)
			calls += st.calls[sc];
		if (st.faults != hp->last_faults || calls != hp->last_calls || samples != hp->last_samples)
			hp->last_active_ns = now;
		hp->last_faults = st.faults;
		hp->last_calls = calls;
		hp->last_samples = samples;
	}
}

/* Room for one more profiled process: the least recently active one goes
 * if it has been idle for a while. */
static bool room_to_profile(struct host *h)
{
	if (h->table.nprofiled < h->opt->max_profiled)
		return true;
	refresh_activity(h);
	struct hproc *victim = least_active(h, true);
	if (!victim || clock_ns(CLOCK_MONOTONIC) - victim->last_active_ns < IDLE_NS)
		return false;
	hmap_put(&h->skip, skip_key(victim->pid, victim->start_time), victim->pid, NULL);
	unprofile(h, victim);
	h->table.counts.evicted_profiled++;
	return true;
}

static void profile(struct host *h, struct hproc *hp)
{
	if (hp->tgt || !h->s.have_heap || !room_to_profile(h))
		return;
	hp->tgt = session_add_target(&h->s, hp->pid);
	if (!hp->tgt)
		return;
	hp->next_write_ns = 0;
	h->table.nprofiled++;
	target_attach(&h->s, hp->tgt);
}

/* The allocators a target probed (or why it could not). */
static void on_attached(void *ctx, struct target *t, int n)
{
	struct host *h = ctx;
	struct hproc *hp = host_table_find(&h->table, t->pid);
	const char *comm = hp ? hp->comm : "?";

	if (n < 0) {
		h->table.counts.attach_errors++;
		if (h->opt->verbose)
			report_error("pid %d (%s): cannot attach: %s%s", (int)t->pid, comm, strerror(-n), bpflog_detail());
	} else if (n > 0 && h->opt->verbose) {
		fprintf(stderr, "memwatch: profiling pid %d (%s): %u probe sites in %s\n", (int)t->pid, comm,
			t->att.nprobes, t->att.allocators);
	}
}

/* ---- the process table -------------------------------------------------- */

static void identify(struct host *h, struct hproc *hp)
{
	free(hp->cgroup);
	free(hp->exe);
	hp->cgroup = cgroup_of(hp->pid);
	hp->exe = read_exe_path(hp->pid);
	container_id_of(hp->cgroup, hp->container);
	hp->matched = matcher_match(&h->match, hp->pid, hp->comm, hp->cgroup);
}

static void forget(struct host *h, struct hproc *hp)
{
	unprofile(h, hp);
	pages_forget(&h->s.pages, hp->pid);
	hmap_remove(&h->table.by_pid, hash_u64(hp->pid), hp->pid, NULL);
	free(hp->cgroup);
	free(hp->exe);
	free(hp);
}

/* Room for one more process: the least recently active idle one goes. */
static bool room_to_track(struct host *h)
{
	if (h->table.by_pid.len < h->opt->max_processes)
		return true;
	refresh_activity(h);
	struct hproc *victim = least_active(h, false);
	if (!victim || clock_ns(CLOCK_MONOTONIC) - victim->last_active_ns < IDLE_NS) {
		h->table.counts.dropped_processes++;
		return false;
	}
	hmap_put(&h->skip, skip_key(victim->pid, victim->start_time), victim->pid, NULL);
	forget(h, victim);
	h->table.counts.evicted_processes++;
	return true;
}

static struct hproc *track(struct host *h, pid_t pid, const char *comm, uint64_t start_time)
{
	if (pid == getpid() || hmap_find(&h->skip, skip_key(pid, start_time), pid) || !room_to_track(h))
		return NULL;
	struct hproc *hp = calloc(1, sizeof(*hp));
	if (!hp)
		return NULL;
	hp->pid = pid;
	hp->start_time = start_time;
	snprintf(hp->comm, sizeof(hp->comm), "%s", comm);
	hp->last_active_ns = clock_ns(CLOCK_MONOTONIC);
	hp->seen = true;
	if (hmap_put(&h->table.by_pid, hash_u64(pid), pid, hp)) {
		free(hp);
		return NULL;
	}
	identify(h, hp);
	if (hp->matched)
		profile(h, hp);
	return hp;
}

/* The process is there now; returns its record if memwatch tracks it. */
static struct hproc *notice(struct host *h, pid_t pid)
{
	struct proc_stat st;

	if (procstat_read(pid, &st) || (st.flags & PROC_PF_KTHREAD))
		return NULL;
	struct hproc *hp = host_table_find(&h->table, pid);
	if (hp && hp->start_time != st.start_time) {
		forget(h, hp);	/* the pid was reused */
		hp = NULL;
	}
	if (hp) {
		hp->seen = true;
		return hp;
	}
	return track(h, pid, st.comm, st.start_time);
}

static void scan_proc(struct host *h)
{
	struct hmap_slot *s;
	struct dirent *de;
	DIR *d = opendir("/proc");

	if (!d)
		return;
	for (size_t i = 0; hmap_next(&h->table.by_pid, &i, &s);)
		((struct hproc *)s->val)->seen = false;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		notice(h, (pid_t)strtol(de->d_name, NULL, 10));
	}
	closedir(d);
	for (size_t i = 0; hmap_next(&h->table.by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		if (hp->seen)
			continue;
		forget(h, hp);
		h->table.counts.exits++;
		i--;	/* the removal moved a later entry here */
	}
	/* A profiled process may have mapped its allocator since. */
	for (size_t i = 0; hmap_next(&h->table.by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		if (hp->tgt && !hp->tgt->has_allocator)
			target_attach(&h->s, hp->tgt);
	}
}

/* ---- events ------------------------------------------------------------- */

static void on_exec(void *ctx, pid_t pid)
{
	struct host *h = ctx;
	struct hproc *hp = notice(h, pid);
	struct proc_stat st;

	h->table.counts.execs++;
	if (!hp)
		return;
	if (!procstat_read(pid, &st)) {
		memcpy(hp->comm, st.comm, sizeof(hp->comm));
		hp->start_time = st.start_time;
	}
	identify(h, hp);
	if (hp->tgt && !hp->matched)
		unprofile(h, hp);
	else if (hp->tgt)
		target_exec(&h->s, hp->tgt);
	else if (hp->matched)
		profile(h, hp);
}

/* The process is forgotten once its last samples are read (exits_read). */
static void on_exit_event(void *ctx, pid_t pid)
{
	struct host *h = ctx;
	struct hproc *hp = host_table_find(&h->table, pid);

	if (!hp || hp->exit_epoch)
		return;
	hp->exit_epoch = h->s.exit_epoch;
	h->table.counts.exits++;
}

static void on_exits_read(void *ctx, uint64_t epoch)
{
	struct host *h = ctx;
	struct hmap_slot *s;

	for (size_t i = 0; hmap_next(&h->table.by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		if (!hp->exit_epoch || hp->exit_epoch > epoch)
			continue;
		forget(h, hp);
		i--;	/* the removal moved a later entry here */
	}
}

/* ---- the loop ----------------------------------------------------------- */

/* --output-dir: every profiled process's profiles once per interval. */
static void write_due(struct host *h)
{
	int64_t now = (int64_t)clock_ns(CLOCK_REALTIME);
	double interval = h->opt->interval > 0 ? h->opt->interval : OUTPUT_INTERVAL_S;
	struct hmap_slot *s;
	bool scanned = false;

	if (!h->outdir)
		return;
	for (size_t i = 0; hmap_next(&h->table.by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		if (!hp->tgt)
			continue;
		if (!hp->next_write_ns)
			hp->next_write_ns = hp->tgt->start_real_ns + (int64_t)(interval * 1e9);
		if (now < hp->next_write_ns)
			continue;
		if (!scanned) {
			session_scan_live(&h->s);
			scanned = true;
		}
		write_outputs(h, hp);
		hp->next_write_ns += (int64_t)(interval * 1e9);
		if (hp->next_write_ns <= now)
			hp->next_write_ns = now + (int64_t)(interval * 1e9);
	}
}

static void on_turn(void *ctx, uint64_t now)
{
	struct host *h = ctx;

	if (h->listen.http)
		http_run(h->listen.http);
	session_consume(&h->s);
	if (now >= h->next_scan_ns) {
		scan_proc(h);
		h->next_scan_ns = now + SCAN_NS;
	}
	web_deliver_due(&h->web);
	write_due(h);
}

static int on_timeout(void *ctx, uint64_t now)
{
	struct host *h = ctx;
	int t = web_next_deadline_ms(&h->web);

	if (h->listen.http) {
		int ht = http_timeout_ms(h->listen.http);
		if (ht >= 0 && (t < 0 || ht < t))
			t = ht;
	}
	return t;
}

static void on_ready(void *ctx, int fd)
{
	struct host *h = ctx;

	if (h->listen.http && fd == http_fd(h->listen.http))
		http_run(h->listen.http);
}

static const struct session_hooks hooks = {
	.turn = on_turn,
	.timeout_ms = on_timeout,
	.ready = on_ready,
	.attached = on_attached,
	.exec = on_exec,
	.exit = on_exit_event,
	.exits_read = on_exits_read,
};

/* ---- start and end ------------------------------------------------------ */

static int open_outputs(struct host *h)
{
	int err;

	if (h->opt->output_dir &&
	    (err = outdir_open(&h->outdir, h->opt->output_dir, h->opt->output_keep, h->opt->output_max_bytes))) {
		report_error("--output-dir %s: %s", h->opt->output_dir,
			     err == -EINVAL ? "give --output-keep or --output-max-bytes a bound" : strerror(-err));
		return err;
	}
	web_init(&h->web, &h->s, &h->table, h->outdir);
	if (h->opt->listen &&
	    (err = hostlisten_start(&h->listen, h->opt, web_handle, web_abandoned, &h->web)))
		return err;
	h->web.http = h->listen.http;
	return 0;
}

static int start(struct host *h)
{
	int err = session_init(&h->s, h->opt);

	if (!err)
		err = matcher_init(&h->match, h->opt->comms, h->opt->ncomms, h->opt->pids, h->opt->npids,
				   h->opt->cgroups, h->opt->ncgroups);
	if (err) {
		report_error("cannot start: %s", strerror(-err));
		return -1;
	}
	if (open_outputs(h) || session_load(&h->s, 0, !matcher_empty(&h->match)))
		return -1;
	if (session_setup_loop(&h->s, &hooks, h) ||
	    (h->listen.http && session_watch(&h->s, http_fd(h->listen.http)))) {
		report_error("cannot set up the event loop: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void print_end(struct host *h)
{
	struct hmap_slot *s;
	size_t n = 0;

	fprintf(stderr, "memwatch: done after %.1fs: %zu processes tracked, %zu profiled; evicted %" PRIu64
			" processes and %" PRIu64 " profiled ones, dropped %" PRIu64 " (limits)\n",
		(clock_ns(CLOCK_MONOTONIC) - h->s.start_ns) / 1e9, h->table.by_pid.len, h->table.nprofiled,
		h->table.counts.evicted_processes, h->table.counts.evicted_profiled, h->table.counts.dropped_processes);
	for (size_t i = 0; hmap_next(&h->table.by_pid, &i, &s) && n < 20;) {
		struct hproc *hp = s->val;
		if (!hp->tgt)
			continue;
		fprintf(stderr, "memwatch:   pid %d (%s): %.1f MiB in use (est.), %" PRIu64 " samples\n", (int)hp->pid,
			hp->comm, hp->tgt->heap.tot.inuse_bytes / 1048576.0, hp->tgt->heap.tot.samples);
		n++;
	}
}

/* Every profiled process's last reading: its verdict comes as it is
 * forgotten. */
static void last_readings(struct host *h)
{
	uint64_t now = clock_ns(CLOCK_MONOTONIC);
	struct hmap_slot *s;

	session_scan_live(&h->s);
	for (size_t i = 0; hmap_next(&h->table.by_pid, &i, &s);)
		if (((struct hproc *)s->val)->tgt)
			target_sample(&h->s, ((struct hproc *)s->val)->tgt, now);
	h->ending = true;
}

static void teardown(struct host *h)
{
	struct hmap_slot *s;

	for (size_t i = 0; hmap_next(&h->table.by_pid, &i, &s); i--)
		forget(h, s->val);
	web_free(&h->web);
	hostlisten_stop(&h->listen);
	if (h->outdir)
		outdir_close(h->outdir);
	session_free(&h->s);
	hmap_free(&h->table.by_pid);
	hmap_free(&h->skip);
	matcher_free(&h->match);
}

int host_run(const struct options *opt)
{
	struct host *h = calloc(1, sizeof(*h));
	int status = 1;

	if (!h) {
		report_error("out of memory");
		return 1;
	}
	h->opt = opt;
	hmap_init(&h->table.by_pid, NULL, NULL);
	hmap_init(&h->skip, NULL, NULL);
	session_block_signals();
	if (!start(h)) {
		scan_proc(h);
		h->next_scan_ns = clock_ns(CLOCK_MONOTONIC) + SCAN_NS;
		fprintf(stderr, "memwatch: watching %zu processes, %zu with heap probes\n", h->table.by_pid.len,
			h->table.nprofiled);
		hostlisten_announce(&h->listen, h->opt);
		session_run(&h->s);
		last_readings(h);
		print_end(h);
		status = h->outdir && outdir_report(h->outdir, opt->output_dir) ? 1 : 0;
	}
	teardown(h);
	free(h);
	return status;
}
