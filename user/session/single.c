/* -p PID and -- CMD over the driver core; see single.h. */
#include "session/single.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "elf/elf_file.h"
#include "kernel/bpflog.h"
#include "probes/allocators.h"
#include "session/budget.h"
#include "session/calibrate.h"
#include "session/guard.h"
#include "session/outputs.h"
#include "session/session.h"
#include "session/spawn.h"
#include "util/report.h"
#include "version.h"

#define MAX_COMMENTS 24

struct single {
	struct session s;
	const struct options *opt;
	struct target *t;
	pid_t pid;
	struct spawn child;		/* -- CMD */
	struct guard guard;		/* -- CMD: resumes it if memwatch dies */
	int pidfd;			/* -p: readable once the process exits */
	struct outputs out;
	bool announced;			/* the "profiling pid" line was printed */
	bool detached;
	struct budget budget;		/* --max-overhead */
	struct trap_cost trap_cost;	/* calibrated for the budget */
	char hook_note[1024];		/* which entries are detoured, which on uprobes and why */
	struct hook_stats hook_stats;	/* the agent's counters, as last read */
	uint64_t last_hits;		/* uprobe hits at the last interval */
	bool cost_noted;		/* the note on costly uprobes was printed */
};

/* ---- reports ------------------------------------------------------------ */

static void announce(struct single *r, const struct process *p)
{
	const struct options *o = r->opt;

	if (r->announced)
		return;
	r->announced = true;
	if (o->pages_only)
		report_error("profiling pid %d (%s): kernel side only (--pages-only)%s", (int)r->pid,
			p ? p->comm : o->cmd[0], o->empty_probes ? " (empty programs)" : "");
	else if (r->t->att.ninline)
		report_error("profiling pid %d (%s): inline hooks in %u allocator file%s and %u probe "
				"sites, in %s", (int)r->pid, p ? p->comm : "?", r->t->att.ninline,
			r->t->att.ninline > 1 ? "s" : "", r->t->att.nprobes, r->t->att.allocators);
	else
		report_error("profiling pid %d (%s): %u probe sites in %s%s", (int)r->pid,
			p ? p->comm : "?", r->t->att.nprobes, r->t->att.allocators,
			o->empty_probes ? " (empty programs)" : "");
}

/* The agent's own losses: sampled calls it could not report (memwatch
 * gone or stuck) and sampled blocks its live set had no room for. */
static void agent_losses(const struct single *r, char *buf, size_t len)
{
	const struct hook_stats *hs = &r->hook_stats;

	buf[0] = 0;
	if (hs->sites)
		snprintf(buf, len, ", in-process: unreported %" PRIu64 ", untracked %" PRIu64 ", no thread slot %" PRIu64,
			 hs->lost, hs->untracked, hs->slot_misses);
}

/* The agent's counters live in the target: read while it is there. */
static void read_hooks(struct single *r)
{
	struct hook_engine *h = r->s.hd.engine;
	struct hook_stats hs;

	if (!h || r->detached)
		return;
	if (!hooks_stats(h, r->pid, &hs) && hs.sites)
		r->hook_stats = hs;
	hooks_describe(h, r->pid, r->hook_note, sizeof(r->hook_note));
}

static void print_losses(struct single *r, FILE *out)
{
	uint64_t c[MW_CNT_NR];
	char agent[160];

	session_heap_counters(&r->s, c);
	agent_losses(r, agent, sizeof(agent));
	fprintf(out, "memwatch: losses: ring buffer full %" PRIu64 ", live map full %" PRIu64
		     ", calls lost %" PRIu64 ", samplers busy %" PRIu64 ", unreadable stacks %" PRIu64 "%s\n",
		c[MW_CNT_RINGBUF_FULL], c[MW_CNT_LIVE_FULL], c[MW_CNT_PENDING_FULL], c[MW_CNT_BUSY],
		c[MW_CNT_STACK_FAIL], agent);
}

static void print_hooks(const struct single *r)
{
	const struct hook_stats *hs = &r->hook_stats;

	if (!hs->sites)
		return;
	fprintf(stderr, "memwatch: inline hooks: %u entries in %u allocator files; reported %" PRIu64
			" allocations and %" PRIu64 " frees, %" PRIu64 " nested calls passed through; %" PRIu64
			" sampled calls waited for the ring (%" PRIu64 " gave up); last pause %.2f ms (%u threads)\n",
		hs->sites, hs->modules, hs->samples, hs->frees, hs->nested, hs->waits, hs->abandoned, hs->pause_ms,
		hs->threads);
}

static void print_summary(struct single *r, const char *when)
{
	const struct heap_totals *t = &r->t->heap.tot;

	fprintf(stderr, "memwatch: %s %.1fs: %" PRIu64 " samples; in use %.0f bytes in %.0f objects (est.), "
			"allocated %.0f bytes in %.0f objects (est.)\n",
		when, (clock_ns(CLOCK_MONOTONIC) - r->s.start_ns) / 1e9, t->samples, t->inuse_bytes, t->inuse_objects,
		t->alloc_bytes, t->alloc_objects);
	heapprof_print_top(&r->t->heap, &r->s.procs, stderr, 10);
	print_losses(r, stderr);
	if (r->opt->verbose) {
		char buf[512];
		uint64_t c[MW_CNT_NR];
		stacker_describe(&r->s.sk, buf, sizeof(buf));
		fprintf(stderr, "memwatch: %s\n", buf);
		session_heap_counters(&r->s, c);
		fprintf(stderr, "memwatch: probe counters: samples %" PRIu64 ", return halves %" PRIu64
				", nested calls skipped %" PRIu64 ", frees of sampled blocks %" PRIu64 "\n",
			c[MW_CNT_SAMPLES], c[MW_CNT_RETURNS], c[MW_CNT_NESTED], c[MW_CNT_FREES_TRACKED]);
		print_hooks(r);
	}
}

static void print_own_cost(struct single *r)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return;
	double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	fprintf(stderr, "memwatch: own cost: %.2f s CPU over %.1f s, %.1f us per stack (%" PRIu64 " stacks), max RSS %ld MiB\n",
		cpu, (clock_ns(CLOCK_MONOTONIC) - r->s.start_ns) / 1e9,
		r->s.sk.stacks ? stacker_cpu_ns(&r->s.sk) / 1e3 / r->s.sk.stacks : 0.0, r->s.sk.stacks, ru.ru_maxrss / 1024);
}

/* ---- --max-overhead ----------------------------------------------------- */

/* What a trap costs on memwatch's own thread: the budget's first estimate of
 * a trap's system time (until the target's clock ticks tell), and the user
 * time a trap costs after it, which the target's ticks cannot tell from its
 * own work. Without it the budget counts the measured system time alone. */
static void calibrate(struct single *r)
{
	int err = calibrate_trap_cost(r->s.bpf.mode, &r->trap_cost);

	if (err) {
		memset(&r->trap_cost, 0, sizeof(r->trap_cost));
		report_error("cannot time a probe trap (%s): the overhead budget counts the target's system time only",
			     strerror(-err));
	} else if (r->opt->verbose) {
		fprintf(stderr, "memwatch: a uprobe trap costs %.3f us of system time and %.3f us of user time after it "
				"here (%lu calls on memwatch's own probed function)\n",
			1e6 * r->trap_cost.sys_s, 1e6 * r->trap_cost.user_s, r->trap_cost.calls);
	}
}

/* 0, or -1 once the target is gone (out: the last reading). */
static int budget_sample(struct single *r, struct budget_sample *out)
{
	uint64_t c[MW_CNT_NR];
	struct budget_sample now;

	if (budget_read_cpu(r->pid, &now)) {
		*out = r->budget.last;
		return -1;
	}
	session_heap_counters(&r->s, c);
	now.traps = c[MW_CNT_HITS] + c[MW_CNT_FREE_HITS] + c[MW_CNT_RETURNS];
	*out = now;
	return 0;
}

static void print_budget_step(const struct budget *b)
{
	fprintf(stderr, "memwatch: a probe trap costs the target %.3f us (%.3f us of system time; its own work: %.1f%% "
			"system time), %.0f traps/s attached: always attached about %.0f%%; detached, to be attached "
			"%.1f%% of the time; credit %.3f s\n",
		1e6 * b->cost_per_trap, 1e6 * b->trap_sys_s, 100 * b->own_sys_share, budget_trap_rate(b),
		100 * budget_always_on(b), 100 * b->on_fraction, b->credit_s);
}

/* Detaches or attaches the allocator probes as the duty cycle says. */
static void run_budget(void *ctx, uint64_t now)
{
	struct single *r = ctx;
	struct budget_sample sample;

	if (!r->opt->max_overhead || !procs_find(&r->s.procs, r->pid) || budget_sample(r, &sample))
		return;
	switch (budget_tick(&r->budget, now, &sample)) {
	case BUDGET_DETACH:
		attacher_suspend(&r->t->att, r->pid);
		r->t->suspended = true;
		budget_sample(r, &sample);
		budget_switched(&r->budget, clock_ns(CLOCK_MONOTONIC), &sample);
		if (r->opt->verbose)
			print_budget_step(&r->budget);
		break;
	case BUDGET_ATTACH:
		r->t->suspended = false;
		target_attach(&r->s, r->t);
		budget_sample(r, &sample);
		budget_switched(&r->budget, clock_ns(CLOCK_MONOTONIC), &sample);
		break;
	case BUDGET_NONE:
		break;
	}
}

/* Wakes when the budget's window ends. */
static int budget_timeout_ms(void *ctx, uint64_t now)
{
	struct single *r = ctx;
	uint64_t end = r->budget.phase_end_ns;

	if (!r->opt->max_overhead)
		return -1;
	return end <= now ? 0 : (int)((end - now) / 1000000) + 1;
}

static char *describe_budget(const struct single *r)
{
	const struct budget *b = &r->budget;
	double useful = budget_useful_s(b);
	char *line;

	if (asprintf(&line, "duty cycle (--max-overhead %g%%, uprobe traps): allocator probes attached %.1f%% of %.1f s "
			    "(%u windows); a probe trap cost the target %.3f us: %.3f us of system time (per trap while "
			    "attached, less the %.1f%% its own work takes) and %.3f us of user time after it (calibrated); "
			    "%.0f traps/s attached: always attached about %.0f%%; probe time %.3f s, %.1f%% of the "
			    "target's own %.3f s of CPU; values cover the attached windows only; in-use values are "
			    "partial: frees while detached were not seen",
		     100 * r->opt->max_overhead, b->total_ns ? 100.0 * b->on_ns / b->total_ns : 100.0,
		     b->total_ns / 1e9, b->windows, 1e6 * b->cost_per_trap, 1e6 * b->trap_sys_s, 100 * b->own_sys_share,
		     1e6 * b->prior.user_s, budget_trap_rate(b), 100 * budget_always_on(b), budget_probe_s(b),
		     useful > 0 ? 100 * budget_probe_s(b) / useful : 0.0, useful) < 0)
		return NULL;
	return line;
}

/* ---- costly uprobes ----------------------------------------------------- */

#define COSTLY_CALLS 20000		/* calls/s through uprobes worth timing */
#define COSTLY_SHARE 0.05		/* ... and worth a note past this share of a CPU */

/* Allocator calls still going through uprobes at a high rate cost the
 * target a trap each: say so once, with the numbers and what helps. */
static void note_uprobe_cost(struct single *r, double dt)
{
	const struct options *o = r->opt;
	uint64_t c[MW_CNT_NR];
	struct trap_cost cost;

	if (r->cost_noted || !r->t->att.nprobes || o->empty_probes || o->max_overhead)
		return;
	session_heap_counters(&r->s, c);
	uint64_t hits = c[MW_CNT_HITS] + c[MW_CNT_FREE_HITS];
	double rate = (hits - r->last_hits) / dt;
	r->last_hits = hits;
	if (rate < COSTLY_CALLS || calibrate_trap_cost(r->s.bpf.mode, &cost))
		return;
	double per_call = cost.sys_s + cost.user_s, share = rate * per_call;
	if (share < COSTLY_SHARE)
		return;
	r->cost_noted = true;
	char cpu[48];
	if (share >= 1)
		snprintf(cpu, sizeof(cpu), "%.1f CPUs", share);
	else
		snprintf(cpu, sizeof(cpu), "%.0f%% of a CPU", 100 * share);
	fprintf(stderr, "memwatch: pid %d calls its allocator %.0f times a second through uprobes, a trap of about "
			"%.1f us each (timed on this machine): %s; %s\n", (int)r->pid, rate, 1e6 * per_call, cpu,
		o->hook == HOOK_UPROBE ? "--hook auto would detour them in-process (a few ns a call)"
				       : "they could not be detoured (-v says why); --max-overhead PCT bounds "
					 "the cost");
}

/* ---- the command -------------------------------------------------------- */

/* Undoes the stops memwatch's programs sent the command that it has not
 * undone yet (they count them). false if there are none. */
static bool resume_own_stops(struct single *r)
{
	volatile struct mw_stops *st = heapbpf_stops(&r->s.bpf);
	uint64_t sent = st ? st->sent : 0;

	if (!st || sent == st->resumed)
		return false;
	kill(r->pid, SIGCONT);
	st->resumed = sent;	/* after the SIGCONT: a guardian resumes once more rather than never */
	return true;
}

static bool own_stop_pending(const struct single *r)
{
	volatile struct mw_stops *st = heapbpf_stops(&r->s.bpf);

	return st && st->sent != st->resumed;
}

/* memwatch's programs stopped the command at a link-map change (or at the
 * exec of a static command): probe what it mapped. */
static void on_loader_stop(struct single *r)
{
	/* An exec event may be waiting: it must come first. */
	session_consume(&r->s);
	target_attach(&r->s, r->t);
	if (r->t->att.nprobes || r->t->att.ninline)	/* (a static command's exec event may have probed it) */
		announce(r, procs_find(&r->s.procs, r->pid));
	resume_own_stops(r);
}

/* A stop memwatch did not cause keeps its meaning. */
static void on_foreign_stop(struct single *r, int signo)
{
	const char *name = sigabbrev_np(signo);

	fprintf(stderr, "memwatch: pid %d was stopped by SIG%s, not by memwatch: left stopped\n", (int)r->pid,
		name ? name : "?");
}

static void reap_child(struct single *r)
{
	int status;

	for (;;) {
		pid_t pid = waitpid(r->pid, &status, WNOHANG | WUNTRACED);
		if (pid <= 0)
			return;
		if (WIFSTOPPED(status)) {
			if (r->detached)
				continue;
			if (WSTOPSIG(status) == SIGSTOP && own_stop_pending(r))
				on_loader_stop(r);
			else
				on_foreign_stop(r, WSTOPSIG(status));
			continue;
		}
		r->child.status = status;
		r->child.done = true;
		r->s.stop = true;
		return;
	}
}

static void on_signal(void *ctx, int signo)
{
	struct single *r = ctx;

	if (!r->child.pid)
		return;
	if (signo == SIGCHLD)
		reap_child(r);
	else if (!r->child.done && signo != SIGINT)
		kill(r->pid, signo);	/* the command gets SIGTERM/SIGHUP too, as under a shell */
}

static void on_ready(void *ctx, int fd)
{
	struct single *r = ctx;

	if (fd == r->pidfd)
		r->s.stop = true;	/* the process exited */
}

static void on_attached(void *ctx, struct target *t, int n)
{
	if (n < 0)
		report_error("cannot attach to pid %d: %s%s", (int)t->pid, strerror(-n), bpflog_detail());
}

static void on_interval(void *ctx, uint64_t now)
{
	struct single *r = ctx;

	note_uprobe_cost(r, r->s.tick_ns / 1e9);
	read_hooks(r);
	if (!r->opt->interval)
		return;
	print_summary(r, "after");
	diagnosis_print_interval(&r->t->diag, stderr);
}

static const struct session_hooks hooks = {
	.turn = run_budget,
	.interval = on_interval,
	.timeout_ms = budget_timeout_ms,
	.ready = on_ready,
	.signal = on_signal,
	.attached = on_attached,
};

/* ---- starting ----------------------------------------------------------- */

static int load(struct single *r)
{
	if (session_load(&r->s, r->pid, true))
		return -1;
	r->t = session_add_target(&r->s, r->pid);
	if (!r->t) {
		report_error("cannot read the memory map of pid %d: %s", (int)r->pid, strerror(errno ? errno : ENOMEM));
		return -1;
	}
	if (r->opt->max_overhead)
		calibrate(r);
	return 0;
}

static int start_pid(struct single *r)
{
	const struct options *o = r->opt;

	r->pid = o->pid;
	if (kill(r->pid, 0) && errno == ESRCH) {
		report_error("no process with pid %d", (int)r->pid);
		return 1;
	}
	if (r->pid == getpid()) {
		report_error("memwatch does not profile itself");
		return 1;
	}
	if (outputs_open(&r->out, o, r->pid) || load(r))
		return 1;
	r->pidfd = syscall(SYS_pidfd_open, r->pid, 0);
	uint64_t attach_start = clock_ns(CLOCK_MONOTONIC);
	int n = target_attach(&r->s, r->t);
	struct process *p = procs_find(&r->s.procs, r->pid);
	if (r->s.lat_failed || n < 0)
		return 1;
	if (r->s.have_lat && !r->s.lat.attached) {
		report_error("--latency-probe %s: pid %d maps no file %s", o->latency_probe, (int)r->pid, r->s.lat.file);
		return 1;
	}
	if (!o->pages_only && n == 0) {
		report_error("pid %d (%s) maps no allocator memwatch knows (looked for %s)", (int)r->pid,
			     p ? p->comm : "?", allocators_looked_for());
		return 1;
	}
	if (!o->pages_only && o->verbose)
		fprintf(stderr, "memwatch: attached %u probe sites in %.1f ms\n", r->t->att.nprobes,
			(clock_ns(CLOCK_MONOTONIC) - attach_start) / 1e6);
	announce(r, p);
	return 0;
}

/* A static command holds an allocator memwatch knows, or profiling it is
 * pointless: -p would say the same of the running process. */
static bool holds_allocator(const char *path, const char *only)
{
	struct allocator *a = malloc(sizeof(*a));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct elf_file *elf = fd >= 0 ? elf_file_open(fd) : NULL;
	bool found = a && elf && allocator_find(elf, path, only, a);

	if (elf)
		elf_file_close(elf);
	if (fd >= 0)
		close(fd);
	free(a);
	return found;
}

/* What the command will run, checked before it is forked: 0, or the exit
 * status to give up with. */
static int inspect_command(struct single *r, const char *path, struct spawn_exe *exe)
{
	const struct options *o = r->opt;

	if (spawn_inspect(path, exe)) {
		report_error("%s cannot be run: %s", o->cmd[0], exe->why);
		return 127;
	}
	if (o->empty_probes) {
		report_error("--empty-probes works with -p PID only");
		return 2;
	}
	if (exe->static_exe && !o->pages_only && !holds_allocator(exe->static_exe, o->allocator)) {
		report_error("%s is statically linked and holds no allocator memwatch knows (looked for %s)",
			     o->cmd[0], allocators_looked_for());
		return 1;
	}
	return 0;
}

/* The probes that catch the command's start: the dynamic loader's hook,
 * and a stop at every exec (a static command, or one a script or shell
 * execs, is probed before its first instruction). Then the guardian,
 * before any stop. */
static int hook_start(struct single *r, const struct spawn_exe *exe)
{
	int err;

	if (exe->interp && (err = attach_loader(&r->t->att, r->pid, exe->interp))) {
		report_error("cannot hook the dynamic loader %s: %s", exe->interp, strerror(-err));
		return err;
	}
	if ((err = guard_arm(&r->guard, heapbpf_stops_fd(&r->s.bpf)))) {
		report_error("cannot start the command's guardian: %s", strerror(-err));
		return err;
	}
	heapbpf_stop_on_loader(&r->s.bpf, true);
	heapbpf_stop_on_exec(&r->s.bpf, true);
	return 0;
}

static int start_command(struct single *r)
{
	const struct options *o = r->opt;
	char *path = spawn_find(o->cmd[0]);
	struct spawn_exe exe;
	int err;

	if (!path) {
		report_error("%s: command not found", o->cmd[0]);
		return 127;
	}
	err = inspect_command(r, path, &exe);
	if (!err && (err = spawn_start(&r->child, path, o->cmd)))
		report_error("cannot fork: %s", strerror(-err));
	else if (!err && !o->pages_only && (err = guard_start(&r->guard, r->child.pid)))
		report_error("cannot fork: %s", strerror(-err));
	free(path);
	if (err) {
		spawn_exe_free(&exe);
		spawn_abandon(&r->child);
		return err > 0 ? err : 1;
	}
	r->pid = r->child.pid;
	r->s.loader_stops = !o->pages_only;
	err = outputs_open(&r->out, o, r->pid) || load(r) ? -1 : 0;
	if (!err && r->s.have_lat && latency_file_missing(&r->s.lat, "/")) {
		report_error("--latency-probe %s: no file %s", o->latency_probe, r->s.lat.file);
		err = -1;
	}
	/* --pages-only puts no probe in the command, not even the loader hook:
	 * its tracepoints are there before it runs. */
	if (!err && !o->pages_only)
		err = hook_start(r, &exe);
	spawn_exe_free(&exe);
	if (err) {
		spawn_abandon(&r->child);
		return 1;
	}
	if (spawn_release(&r->child))
		return 1;
	if (o->pages_only)
		announce(r, NULL);
	return 0;
}

/* ---- the end ------------------------------------------------------------ */

/* The comments every profile carries: who, how, what was lost, and the
 * diagnosis. Returns the count; the lines are malloc'ed. */
static size_t profile_comments(struct single *r, char **lines)
{
	const struct options *o = r->opt;
	const struct heap_totals *tot = &r->t->heap.tot;
	struct process *p = procs_find(&r->s.procs, r->pid);
	uint64_t c[MW_CNT_NR];
	size_t n = 0;

	session_heap_counters(&r->s, c);
	if (asprintf(&lines[n], "memwatch %s: pid %d (%s), allocators: %s", MW_VERSION, (int)r->pid,
		     p ? p->comm : "?", r->t->att.allocators[0] ? r->t->att.allocators : "not probed") >= 0)
		n++;
	if (!o->pages_only && asprintf(&lines[n], "sampling: Poisson by bytes, mean interval %" PRIu64
				       " bytes; values are estimates", o->sample_bytes) >= 0)
		n++;
	if (r->s.have_pages && asprintf(&lines[n], "page stacks: one per %" PRIu64
					" bytes faulted or purged (Poisson)", o->page_sample_bytes) >= 0)
		n++;
	if ((lines[n] = malloc(512)))
		stacker_describe(&r->s.sk, lines[n++], 512);
	if (!o->pages_only &&
	    asprintf(&lines[n], "samples %" PRIu64 ", cancelled %" PRIu64 "; losses: ring buffer full %" PRIu64
				", live map full %" PRIu64 ", calls lost %" PRIu64 ", samplers busy %" PRIu64
				", unreadable stacks %" PRIu64 ", unknown live blocks %" PRIu64,
		     tot->samples, tot->cancels, c[MW_CNT_RINGBUF_FULL], c[MW_CNT_LIVE_FULL], c[MW_CNT_PENDING_FULL],
		     c[MW_CNT_BUSY], c[MW_CNT_STACK_FAIL], tot->live_unknown) >= 0)
		n++;
	if (o->alloc_only && (lines[n] = strdup("--alloc-only: allocations only; in-use values are absent (no "
						"free probes)")))
		n++;
	if (r->s.hd.engine && r->hook_note[0] &&
	    asprintf(&lines[n], "hooks (--hook %s): %s", hook_mode_name(o->hook), r->hook_note) >= 0)
		n++;
	if (o->max_overhead && (lines[n] = describe_budget(r)))
		n++;
	if (r->s.have_pages)
		n += diagnosis_comments(&r->t->diag, lines + n, MAX_COMMENTS - 1 - n);
	return n;
}

static int write_outputs(struct single *r)
{
	char *comments[MAX_COMMENTS] = { 0 };
	size_t n = profile_comments(r, comments);
	int err = outputs_write(&r->out, r->opt, &r->s.procs, r->t, r->s.start_real_ns,
				(const char *const *)comments);

	for (size_t i = 0; i < n; i++)
		free(comments[i]);
	return err;
}

static int finish(struct single *r)
{
	const struct options *o = r->opt;

	if (o->max_overhead) {
		struct budget_sample sample;
		budget_sample(r, &sample);
		budget_finish(&r->budget, clock_ns(CLOCK_MONOTONIC), &sample);
	}
	/* One instant ends the run for every probe; then detach, so the
	 * target runs at full speed while we write. */
	session_end_run(&r->s);
	read_hooks(r);
	uint64_t detach_start = clock_ns(CLOCK_MONOTONIC);
	heapbpf_stop_on_loader(&r->s.bpf, false);
	heapbpf_stop_on_exec(&r->s.bpf, false);
	attacher_detach(&r->t->att);
	if (r->s.have_lat)
		link_set_close(&r->s.lat.links);
	if (o->verbose)
		fprintf(stderr, "memwatch: detached in %.1f ms\n", (clock_ns(CLOCK_MONOTONIC) - detach_start) / 1e6);
	r->detached = true;
	if (r->child.pid && !r->child.done)
		resume_own_stops(r);
	session_consume(&r->s);
	if (o->empty_probes) {
		outputs_discard(&r->out);
		return 0;
	}
	session_scan_live(&r->s);
	if (r->s.have_lat && !r->s.lat.attached && !r->s.lat_failed)
		report_error("--latency-probe %s: pid %d never mapped %s: no latency measured", o->latency_probe,
			     (int)r->pid, r->s.lat.file);
	print_summary(r, "done after");
	if (o->max_overhead) {
		char *line = describe_budget(r);
		if (line)
			fprintf(stderr, "memwatch: %s\n", line);
		free(line);
	}
	/* The last interval's reading, the verdict and the correlation. */
	if (r->s.have_pages) {
		target_sample(&r->s, r->t, clock_ns(CLOCK_MONOTONIC));
		target_conclude(r->t, "", stderr);
	}
	int err = write_outputs(r);
	print_own_cost(r);
	return err;
}

static int run(struct single *r)
{
	int status = r->opt->cmd ? start_command(r) : start_pid(r);

	if (status)
		return status;
	if (session_setup_loop(&r->s, &hooks, r) || (r->pidfd >= 0 && session_watch(&r->s, r->pidfd))) {
		report_error("cannot set up the event loop: %s", strerror(errno));
		return 1;
	}
	if (r->child.pid)
		reap_child(r);	/* a stop may have come before the signalfd */
	r->s.start_ns = r->t->start_ns = clock_ns(CLOCK_MONOTONIC);
	if (r->opt->max_overhead) {
		struct budget_sample sample;
		budget_sample(r, &sample);
		struct budget_prior prior = { r->trap_cost.sys_s, r->trap_cost.user_s };
		budget_init(&r->budget, r->opt->max_overhead, &prior, r->s.start_ns, &sample);
	}
	session_run(&r->s);
	status = finish(r) ? 1 : 0;
	return r->child.pid ? spawn_wait(&r->child) : status;
}

int single_run(const struct options *opt, const struct rlimit *nofile)
{
	struct single *r = calloc(1, sizeof(*r));
	int status;

	if (!r || session_init(&r->s, opt)) {
		report_error("out of memory");
		free(r);
		return 1;
	}
	r->opt = opt;
	r->pidfd = -1;
	spawn_init(&r->child, nofile);
	guard_init(&r->guard);
	/* Signals are read from a signalfd; block them before forking. */
	session_block_signals();
	status = run(r);
	if (r->t)
		attacher_detach(&r->t->att);
	if (r->child.pid && !r->child.done && status != 0 && !r->detached) {
		heapbpf_stop_on_loader(&r->s.bpf, false);
		heapbpf_stop_on_exec(&r->s.bpf, false);
		resume_own_stops(r);
		spawn_wait(&r->child);
	}
	guard_end(&r->guard);
	outputs_discard(&r->out);
	if (r->pidfd >= 0)
		close(r->pidfd);
	session_free(&r->s);
	free(r);
	return status;
}
