/* memwatch: attach to a process (or start one), sample its heap, write pprof. */
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "allocators.h"
#include "attach.h"
#include "bpfconfig.h"
#include "bpflog.h"
#include "budget.h"
#include "calibrate.h"
#include "diagnose.h"
#include "elf_file.h"
#include "heapbpf.h"
#include "events.h"
#include "heapprof.h"
#include "hookdrv.h"
#include "host.h"
#include "latency.h"
#include "outfile.h"
#include "pageprof.h"
#include "pages.h"
#include "options.h"
#include "process.h"
#include "report.h"
#include "stacker.h"
#include "version.h"

#define TICK_NS 1000000000ull	/* the default interval */

struct session {
	struct options opt;
	struct heapbpf bpf;
	struct ring_buffer *rb;		/* events of every BPF object */
	struct attacher att;
	struct procs procs;
	struct heapprof hp;
	struct stacker sk;
	pid_t target;
	pid_t child;			/* -- CMD */
	int child_status;
	bool child_done;
	bool detached;
	int pidfd, sigfd, epfd;
	struct outfile heap_out, pages_out, timeline_out, plot_out;
	struct pages pages;		/* the kernel side */
	struct pageprof pp;
	bool have_pages;
	struct latency_probe lat;	/* --latency-probe */
	bool have_lat;
	struct diagnosis diag;
	int64_t start_real_ns;
	uint64_t start_ns, next_tick_ns, tick_ns;
	bool stop;
	bool announced;			/* the "profiling pid" line was printed */
	struct hook_driver hd;		/* in-process detours (--hook) */
	struct hook_engine *hooks;	/* hd.engine */
	char hook_note[1024];		/* which entries are detoured, which on uprobes and why */
	struct hook_stats hook_stats;	/* the agent's counters, as last read */
	uint64_t last_hits;		/* uprobe hits at the last tick */
	bool cost_noted;		/* the note on costly uprobes was printed */
	struct budget budget;		/* --max-overhead */
	struct probe_cost probe_cost;	/* calibrated for the budget */
	bool suspended;			/* allocator probes detached by the budget */
};

/* CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON, in the effective set. */
static bool have_privileges(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	unsigned long long caps = 0;
	char line[256];

	if (!f)
		return geteuid() == 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	fclose(f);
	bool sys_admin = caps & (1ull << 21);
	bool bpf_perfmon = (caps & (1ull << 39)) && (caps & (1ull << 38));
	return sys_admin || bpf_perfmon;
}

static int check_environment(void)
{
	if (!have_privileges()) {
		report_error("permission denied: run as root (needs CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN; uid %d has none)",
		     (int)geteuid());
		return -1;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		report_error("this kernel has no BTF (/sys/kernel/btf/vmlinux): memwatch needs CONFIG_DEBUG_INFO_BTF=y");
		return -1;
	}
	return 0;
}

static struct rlimit original_nofile;

/* The symbolizer keeps every object file (and debug file) open. A command
 * gets the original limit back before exec. */
static void raise_fd_limit(void)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &original_nofile))
		return;
	lim = original_nofile;
	if (lim.rlim_cur < lim.rlim_max) {
		lim.rlim_cur = lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
	}
}

/* ---- output ---------------------------------------------------------- */

/* Every output opens before memwatch attaches: a path that cannot be
 * written is an error before anything happens to the target. */
static int open_outputs(struct session *s)
{
	char dflt[64];
	const char *main_path = s->opt.output;

	if (!main_path) {
		snprintf(dflt, sizeof(dflt), "memwatch-%d.pb.gz", (int)s->target);
		main_path = dflt;
	}
	if (s->opt.empty_probes)
		return 0;
	struct outfile_set set = { &s->heap_out, &s->pages_out, &s->timeline_out, &s->plot_out };
	struct outfile_paths paths = {
		.heap = s->opt.pages_only ? NULL : main_path,
		.pages = s->opt.pages_only && !s->opt.pages_output ? main_path : s->opt.pages_output,
		.timeline = s->opt.timeline,
		.plot = s->opt.plot,
		.stdout_taken = s->opt.cmd != NULL,
	};
	return outfile_open_set(&set, &paths);
}

static void discard_outputs(struct session *s)
{
	outfile_discard(&s->heap_out);
	outfile_discard(&s->pages_out);
	outfile_discard(&s->timeline_out);
	outfile_discard(&s->plot_out);
}

/* ---- the command ----------------------------------------------------- */

static char *find_in_path(const char *cmd)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (strchr(cmd, '/'))
		return access(cmd, X_OK) ? NULL : strdup(cmd);
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;) {
		size_t len = strcspn(p, ":");
		if (snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, len ? p : ".", cmd) < (int)sizeof(buf)) {
			struct stat st;
			if (!stat(buf, &st) && S_ISREG(st.st_mode) && !access(buf, X_OK))
				return strdup(buf);
		}
		p += len + (p[len] == ':');
	}
	return NULL;
}

/* The dynamic loader the command will run under: PT_INTERP of the
 * executable, or of a script's #! interpreter. NULL for a static binary. */
static char *command_interpreter(const char *exe, int depth)
{
	int fd = open(exe, O_RDONLY | O_CLOEXEC);
	char head[256] = "";
	char *interp = NULL;

	if (fd < 0)
		return NULL;
	ssize_t n = pread(fd, head, sizeof(head) - 1, 0);
	if (n > 2 && head[0] == '#' && head[1] == '!' && depth == 0) {
		head[n] = 0;
		char *p = head + 2 + strspn(head + 2, " \t");
		p[strcspn(p, " \t\n")] = 0;
		close(fd);
		return command_interpreter(p, depth + 1);
	}
	struct elf_file *elf = elf_file_open(fd);
	close(fd);
	if (elf) {
		if (elf_file_interp(elf))
			interp = strdup(elf_file_interp(elf));
		elf_file_close(elf);
	}
	return interp;
}

/* Forks the command stopped before exec: it waits for a byte on a pipe so
 * the loader hook is in place before ld.so runs. */
static pid_t fork_command(char *path, char **argv, int *go_fd)
{
	int pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		sigset_t none;
		char go;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		setrlimit(RLIMIT_NOFILE, &original_nofile);
		close(pfd[1]);
		if (read(pfd[0], &go, 1) != 1)
			_exit(127);
		execv(path, argv);
		fprintf(stderr, "memwatch: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[0]);
	*go_fd = pfd[1];
	return pid;
}

static int attach_target(struct session *s, struct process *p);
static int attach_latency(struct session *s, struct process *p);

/* ---- events ---------------------------------------------------------- */

static void on_sample(void *ctx, const struct mw_sample_event *e, size_t len)
{
	struct session *s = ctx;
	struct process *p = procs_get(&s->procs, e->h.tgid);

	if (!p) {
		s->hp.tot.stack_oom++;
		return;
	}
	uint32_t stack = stacker_intern(&s->sk, &s->hp.st, &s->procs, p, e, len);
	if (stack == UINT32_MAX) {
		s->hp.tot.stack_oom++;
		return;
	}
	heapprof_add(&s->hp, e->sample_id, stack, e->h.tgid, e->size);
}

static void on_sample_event(void *ctx, const struct mw_sample_event *e, size_t len)
{
	hook_driver_event(&((struct session *)ctx)->hd, e);
	on_sample(ctx, e, len);
}

/* A sampled page fault or purge: its stack goes to the page profile. */
static void on_page(void *ctx, const struct mw_sample_event *e, size_t len)
{
	struct session *s = ctx;
	struct process *p = procs_get(&s->procs, e->h.tgid);

	if (!p)
		return;
	uint32_t stack = stacker_intern(&s->sk, &s->hp.st, &s->procs, p, e, len);
	if (stack != UINT32_MAX && e->h.fn < MW_PAGE_COUNT)
		pageprof_add(&s->pp, stack, e->h.tgid, (enum mw_page_event)e->h.fn, e->size);
}

/* The target called exec: new maps, new nesting ranges, maybe new
 * allocators (with -- CMD the loader stop that follows probes those). */
static void on_exec(void *ctx, pid_t tgid)
{
	struct session *s = ctx;
	struct process *p = procs_find(&s->procs, tgid);

	if (!p || process_exec(&s->procs, p))
		return;
	if (s->opt.verbose)
		fprintf(stderr, "memwatch: pid %d called exec: now %s\n", (int)tgid, p->comm);
	int err = s->opt.pages_only ? 0 : attach_after_exec(&s->att, &s->procs, p);
	if (err < 0)
		report_error("cannot follow exec of pid %d: %s", (int)tgid, strerror(-err));
	attach_latency(s, p);
}

/* ld.so changed a -p target's link map: read its maps now, so that later
 * samples resolve against them, and probe any allocator it brought. */
static void on_loader(void *ctx, pid_t tgid)
{
	struct session *s = ctx;
	struct process *p = procs_find(&s->procs, tgid);

	if (s->child || !p || process_refresh(&s->procs, p))
		return;
	attach_target(s, p);
	attach_latency(s, p);
}

static void on_cancel(void *ctx, pid_t tgid, uint64_t sample_id)
{
	heapprof_cancel(&((struct session *)ctx)->hp, sample_id);
}

static const struct event_handlers handlers = {
	.sample = on_sample_event, .page = on_page, .cancel = on_cancel, .loader = on_loader, .exec = on_exec,
};

static int on_event(void *ctx, void *data, size_t len)
{
	return events_dispatch(&handlers, ctx, data, len);
}

/* ---- attaching ------------------------------------------------------- */

static const char *describe_attach_mode(enum attach_mode mode, bool asked)
{
	switch (mode) {
	case ATTACH_SESSION:
		return "uprobe sessions (return probes only for sampled calls) and uprobe_multi links";
	case ATTACH_MULTI:
		return asked ? "uprobe_multi links, entry and return probes (as asked)"
			     : "uprobe_multi links, entry and return probes (this kernel has no uprobe sessions)";
	default:
		return asked ? "perf-event uprobes, entry and return probes (as asked)"
			     : "perf-event uprobes, entry and return probes (this kernel has no uprobe_multi)";
	}
}

static int on_event(void *ctx, void *data, size_t len);

/* Events of each BPF object arrive through one ring_buffer manager. */
static int add_events(struct session *s, int map_fd)
{
	int err = 0;

	if (!s->rb) {
		s->rb = ring_buffer__new(map_fd, on_event, s, NULL);
		err = s->rb ? 0 : -errno;
	} else if (ring_buffer__add(s->rb, map_fd, on_event, s)) {
		err = -errno;
	}
	if (err)
		report_error("cannot read BPF events: %s", strerror(-err));
	return err;
}

static int consume(struct session *s)
{
	return s->rb ? ring_buffer__consume(s->rb) : 0;
}

/* The budget needs what a probe hit costs; without it, it estimates. */
static void calibrate(struct session *s)
{
	int err = calibrate_probe_cost(s->bpf.mode, &s->probe_cost);

	if (err)
		memset(&s->probe_cost, 0, sizeof(s->probe_cost));
	if (s->opt.verbose && !err)
		fprintf(stderr, "memwatch: a probe hit costs %.2f us (allocation) and %.2f us (free) here\n",
			1e6 * s->probe_cost.alloc_s, 1e6 * s->probe_cost.free_s);
	else if (s->opt.verbose)
		fprintf(stderr, "memwatch: cannot time probe hits (%s): estimating from the target's system time\n",
			strerror(-err));
}

static int load_heap(struct session *s, pid_t tgid)
{
	struct heapbpf_config cfg;
	struct probe_progs progs;
	int err;

	bpfconfig_heap(&s->opt, tgid, &cfg);
	err = heapbpf_load(&s->bpf, &cfg);
	if (err) {
		report_error("cannot load BPF programs: %s%s", strerror(-err), bpflog_detail());
		return -1;
	}
	if (!s->opt.empty_probes && add_events(s, heapbpf_events_fd(&s->bpf)))
		return -1;
	heapbpf_progs(&s->bpf, &progs);
	progs.no_frees = s->opt.alloc_only;
	attacher_init(&s->att, &progs, s->opt.allocator, s->opt.verbose ? stderr : NULL);
	if (hook_driver_start(&s->hd, &s->opt, &s->bpf, &cfg, 1))
		return -1;
	s->hooks = s->att.hooks = s->hd.engine;
	if (s->opt.max_overhead)
		calibrate(s);
	if (s->opt.verbose)
		fprintf(stderr, "memwatch: probes attach as %s\n",
			describe_attach_mode(s->bpf.mode, s->opt.attach_mode != ATTACH_AUTO));
	return 0;
}

/* The kernel side: tracepoints, global but filtered to the target. */
static int load_pages(struct session *s, pid_t tgid)
{
	struct pages_config cfg;
	int err;

	bpfconfig_pages(&s->opt, tgid, &cfg);
	err = pages_load(&s->pages, &cfg);
	if (err) {
		report_error("cannot load the kernel-side programs: %s%s", strerror(-err), bpflog_detail());
		return -1;
	}
	s->have_pages = true;
	if (s->opt.verbose)
		fprintf(stderr, "memwatch: kernel side: page faults (tp_btf/page_fault_user), %s\n",
			s->pages.raw_syscalls ? "syscalls through raw_syscalls (no tracefs)"
					      : "madvise, mmap, munmap, brk, mremap tracepoints");
	return add_events(s, pages_events_fd(&s->pages));
}

static int load_bpf(struct session *s, pid_t tgid)
{
	if (!s->opt.pages_only && load_heap(s, tgid))
		return -1;
	if (s->opt.empty_probes && !s->opt.pages_only)
		return 0;
	if (load_pages(s, tgid))
		return -1;
	if (s->opt.latency_probe) {
		int err = latency_load(&s->lat, s->opt.latency_probe, tgid);
		if (err) {
			report_error("cannot set up --latency-probe %s: %s", s->opt.latency_probe, strerror(-err));
			return -1;
		}
		s->have_lat = true;
	}
	diagnosis_init(&s->diag, tgid, s->opt.pages_only ? NULL : &s->hp, &s->pages, s->have_lat ? &s->lat : NULL,
		       &s->procs);
	return 0;
}

/* The latency probe goes on once its file is mapped. */
static int attach_latency(struct session *s, struct process *p)
{
	if (!s->have_lat || s->lat.attached)
		return 0;
	int r = latency_attach(&s->lat, &s->procs, p, s->opt.verbose ? stderr : NULL);
	if (r < 0)
		report_error("--latency-probe %s: %s", s->opt.latency_probe,
		     r == -ENOENT ? "no such function in that file" : strerror(-r));
	return r < 0 ? -1 : 0;
}

/* Probes the allocators the target maps now; the loader hook reports later
 * changes. Returns the number of allocator files newly probed. */
static int attach_target(struct session *s, struct process *p)
{
	if (s->suspended || s->opt.pages_only)
		return 0;	/* the budget's off-window (attached when it ends), or no heap side */
	int n = attach_allocators(&s->att, &s->procs, p);

	if (n < 0)
		report_error("cannot attach to pid %d: %s%s", (int)p->pid, strerror(-n), bpflog_detail());
	return n;
}

static void announce(struct session *s, const struct process *p)
{
	if (s->opt.pages_only)
		fprintf(stderr, "memwatch: profiling pid %d (%s): kernel side only (--pages-only)%s\n", (int)p->pid,
			p->comm, s->opt.empty_probes ? " (empty programs)" : "");
	else if (s->att.ninline)
		fprintf(stderr, "memwatch: profiling pid %d (%s): inline hooks in %u allocator file%s and %u probe "
				"sites, in %s\n", (int)p->pid, p->comm, s->att.ninline, s->att.ninline > 1 ? "s" : "",
			s->att.nprobes, s->att.allocators);
	else
		fprintf(stderr, "memwatch: profiling pid %d (%s): %u probe sites in %s%s\n", (int)p->pid, p->comm,
			s->att.nprobes, s->att.allocators, s->opt.empty_probes ? " (empty programs)" : "");
}

static int start_pid(struct session *s)
{
	char buf[96];
	struct process *p;

	if (kill(s->target, 0) && errno == ESRCH) {
		report_error("no process with pid %d", (int)s->target);
		return -ESRCH;
	}
	if (s->target == getpid()) {
		report_error("memwatch does not profile itself");
		return -EINVAL;
	}
	if (open_outputs(s))
		return -1;
	if (load_bpf(s, s->target))
		return -1;
	p = procs_get(&s->procs, s->target);
	if (!p) {
		report_error("cannot read the memory map of pid %d: %s", (int)s->target, strerror(errno));
		return -1;
	}
	if (attach_latency(s, p))
		return -1;
	s->pidfd = syscall(SYS_pidfd_open, s->target, 0);
	if (s->opt.pages_only) {
		announce(s, p);
		return 0;
	}
	uint64_t attach_start = clock_ns(CLOCK_MONOTONIC);
	int n = attach_target(s, p);
	if (n > 0 && s->opt.verbose)
		fprintf(stderr, "memwatch: attached %u probe sites in %.1f ms\n", s->att.nprobes,
			(clock_ns(CLOCK_MONOTONIC) - attach_start) / 1e6);
	if (n < 0)
		return -1;
	if (n == 0) {
		report_error("pid %d (%s) maps no allocator memwatch knows (looked for %s)", (int)p->pid, p->comm,
		     allocators_looked_for());
		return -1;
	}
	const char *ld = process_loader_path(p, buf, sizeof(buf));
	if (ld && !s->opt.empty_probes)
		attach_loader(&s->att, p->pid, ld);
	announce(s, p);
	return 0;
}

static int start_command(struct session *s)
{
	char *path = find_in_path(s->opt.cmd[0]);
	int go_fd = -1;

	if (!path) {
		report_error("%s: command not found", s->opt.cmd[0]);
		return 127;
	}
	if (s->opt.empty_probes) {
		report_error("--empty-probes works with -p PID only");
		free(path);
		return 2;
	}
	char *interp = command_interpreter(path, 0);
	if (!interp && !s->opt.pages_only) {
		report_error("%s is statically linked: it maps no allocator library memwatch knows (looked for %s)",
		     s->opt.cmd[0], allocators_looked_for());
		free(path);
		return 1;
	}
	s->child = s->target = fork_command(path, s->opt.cmd, &go_fd);
	free(path);
	if (s->child < 0) {
		report_error("cannot fork: %s", strerror(errno));
		free(interp);
		return 1;
	}
	int err = open_outputs(s) ? -1 : load_bpf(s, s->child);
	/* --pages-only puts no probe in the command, not even the loader hook:
	 * its tracepoints are there before it runs. */
	if (!err && !s->opt.pages_only)
		err = attach_loader(&s->att, s->child, interp);
	if (err) {
		if (err != -1)
			report_error("cannot hook the dynamic loader %s: %s", interp, strerror(-err));
		free(interp);
		close(go_fd);	/* the child exits without running the command */
		waitpid(s->child, NULL, 0);
		s->child = 0;
		return 1;
	}
	free(interp);
	if (!s->opt.pages_only)
		heapbpf_stop_on_loader(&s->bpf, true);
	if (write(go_fd, "g", 1) != 1)
		err = -errno;
	close(go_fd);
	if (!err && s->opt.pages_only) {
		fprintf(stderr, "memwatch: profiling pid %d (%s): kernel side only (--pages-only)\n", (int)s->child,
			s->opt.cmd[0]);
		s->announced = true;
	}
	return err ? 1 : 0;
}

/* ld.so stopped the command at a link-map change: probe what it mapped. */
static void on_loader_stop(struct session *s)
{
	struct process *p;

	/* An exec event may be waiting: it must come first. */
	consume(s);
	p = procs_find(&s->procs, s->child);
	if (!p)
		p = procs_get(&s->procs, s->child);
	else
		process_refresh(&s->procs, p);
	if (p && attach_target(s, p) > 0 && !s->announced) {
		announce(s, p);
		s->announced = true;
	}
	if (p)
		attach_latency(s, p);
	kill(s->child, SIGCONT);
}

/* ---- the main loop --------------------------------------------------- */

static void reap_child(struct session *s)
{
	int status;

	for (;;) {
		pid_t r = waitpid(s->child, &status, WNOHANG | WUNTRACED);
		if (r <= 0)
			return;
		if (WIFSTOPPED(status)) {
			if (WSTOPSIG(status) == SIGSTOP && !s->detached)
				on_loader_stop(s);
			continue;
		}
		s->child_status = status;
		s->child_done = true;
		s->stop = true;
		return;
	}
}

static void on_signal(struct session *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			if (s->child)
				reap_child(s);
		} else {
			s->stop = true;
			/* The command gets SIGTERM/SIGHUP too, as under a shell. */
			if (s->child && !s->child_done && si.ssi_signo != SIGINT)
				kill(s->child, si.ssi_signo);
		}
	}
}

/* The agent's own losses: sampled calls it could not report (memwatch
 * gone or stuck) and sampled blocks its live set had no room for. */
static void agent_losses(struct session *s, char *buf, size_t len)
{
	const struct hook_stats *hs = &s->hook_stats;

	buf[0] = 0;
	if (hs->sites)
		snprintf(buf, len, ", in-process: unreported %" PRIu64 ", untracked %" PRIu64 ", no thread slot %" PRIu64,
			 hs->lost, hs->untracked, hs->slot_misses);
}

/* The agent's counters live in the target: read while it is there. */
static void read_hooks(struct session *s)
{
	struct hook_stats hs;

	if (!s->hooks || s->detached)
		return;
	if (!hooks_stats(s->hooks, s->target, &hs) && hs.sites)
		s->hook_stats = hs;
	hooks_describe(s->hooks, s->target, s->hook_note, sizeof(s->hook_note));
}

static void print_losses(struct session *s, FILE *out)
{
	uint64_t c[MW_CNT_NR];
	char agent[160];

	heapbpf_counters(&s->bpf, c);
	agent_losses(s, agent, sizeof(agent));
	fprintf(out, "memwatch: losses: ring buffer full %" PRIu64 ", live map full %" PRIu64
		     ", calls lost %" PRIu64 ", samplers busy %" PRIu64 ", unreadable stacks %" PRIu64 "%s\n",
		c[MW_CNT_RINGBUF_FULL], c[MW_CNT_LIVE_FULL], c[MW_CNT_PENDING_FULL], c[MW_CNT_BUSY],
		c[MW_CNT_STACK_FAIL], agent);
}

static void print_hooks(struct session *s)
{
	const struct hook_stats *hs = &s->hook_stats;

	if (!hs->sites)
		return;
	fprintf(stderr, "memwatch: inline hooks: %u entries in %u allocator files; reported %" PRIu64
			" allocations and %" PRIu64 " frees, %" PRIu64 " nested calls passed through; %" PRIu64
			" sampled calls waited for the ring (%" PRIu64 " gave up); last pause %.2f ms (%u threads)\n",
		hs->sites, hs->modules, hs->samples, hs->frees, hs->nested, hs->waits, hs->abandoned, hs->pause_ms,
		hs->threads);
}

static void print_summary(struct session *s, const char *when)
{
	const struct heap_totals *t = &s->hp.tot;

	fprintf(stderr, "memwatch: %s %.1fs: %" PRIu64 " samples; in use %.0f bytes in %.0f objects (est.), "
			"allocated %.0f bytes in %.0f objects (est.)\n",
		when, (clock_ns(CLOCK_MONOTONIC) - s->start_ns) / 1e9, t->samples, t->inuse_bytes, t->inuse_objects,
		t->alloc_bytes, t->alloc_objects);
	heapprof_print_top(&s->hp, &s->procs, stderr, 10);
	print_losses(s, stderr);
	if (s->opt.verbose) {
		char buf[512];
		uint64_t c[MW_CNT_NR];
		stacker_describe(&s->sk, buf, sizeof(buf));
		fprintf(stderr, "memwatch: %s\n", buf);
		heapbpf_counters(&s->bpf, c);
		fprintf(stderr, "memwatch: probe counters: samples %" PRIu64 ", return halves %" PRIu64
				", nested calls skipped %" PRIu64 ", frees of sampled blocks %" PRIu64 "\n",
			c[MW_CNT_SAMPLES], c[MW_CNT_RETURNS], c[MW_CNT_NESTED], c[MW_CNT_FREES_TRACKED]);
		print_hooks(s);
	}
}

static void print_own_cost(struct session *s)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return;
	double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	fprintf(stderr, "memwatch: own cost: %.2f s CPU over %.1f s, %.1f us per stack (%" PRIu64 " stacks), max RSS %ld MiB\n",
		cpu, (clock_ns(CLOCK_MONOTONIC) - s->start_ns) / 1e9,
		s->sk.stacks ? s->sk.cpu_ns / 1e3 / s->sk.stacks : 0.0, s->sk.stacks, ru.ru_maxrss / 1024);
}

static void budget_sample(struct session *s, struct budget_sample *out)
{
	uint64_t c[MW_CNT_NR];

	heapbpf_counters(&s->bpf, c);
	memset(out, 0, sizeof(*out));
	out->alloc_hits = c[MW_CNT_HITS];
	out->free_hits = c[MW_CNT_FREE_HITS];
	budget_read_cpu(s->target, out);
}

/* --max-overhead: detach or attach the allocator probes as the duty cycle
 * says. */
static void run_budget(struct session *s, uint64_t now)
{
	struct budget_sample sample;
	struct process *p = procs_find(&s->procs, s->target);

	if (!s->opt.max_overhead || !p)
		return;
	budget_sample(s, &sample);
	switch (budget_tick(&s->budget, now, &sample)) {
	case BUDGET_DETACH:
		attacher_suspend(&s->att, s->target);
		s->suspended = true;
		budget_sample(s, &sample);
		budget_switched(&s->budget, clock_ns(CLOCK_MONOTONIC), &sample);
		if (s->opt.verbose)
			fprintf(stderr, "memwatch: probes cost the target about %.0f%% (%.2f us per hit): attached "
					"%.1f%% of each second\n",
				100 * s->budget.overhead, 1e6 * s->budget.cost_per_hit, 100 * s->budget.on_fraction);
		break;
	case BUDGET_ATTACH:
		s->suspended = false;
		if (!process_refresh(&s->procs, p))
			attach_target(s, p);
		budget_sample(s, &sample);
		budget_switched(&s->budget, clock_ns(CLOCK_MONOTONIC), &sample);
		break;
	case BUDGET_NONE:
		break;
	}
}

#define COSTLY_CALLS 20000		/* calls/s through uprobes worth timing */
#define COSTLY_SHARE 0.05		/* ... and worth a note past this share of a CPU */

/* Allocator calls still going through uprobes at a high rate cost the
 * target a trap each: say so once, with the numbers and what helps. */
static void note_uprobe_cost(struct session *s, double dt)
{
	uint64_t c[MW_CNT_NR];
	struct probe_cost cost;

	if (s->cost_noted || !s->att.nprobes || s->opt.empty_probes || s->opt.max_overhead)
		return;
	heapbpf_counters(&s->bpf, c);
	uint64_t hits = c[MW_CNT_HITS] + c[MW_CNT_FREE_HITS];
	double rate = (hits - s->last_hits) / dt;
	s->last_hits = hits;
	if (rate < COSTLY_CALLS || calibrate_probe_cost(s->bpf.mode, &cost))
		return;
	double per_call = (cost.alloc_s + cost.free_s) / 2, share = rate * per_call;
	if (share < COSTLY_SHARE)
		return;
	s->cost_noted = true;
	char cpu[48];
	if (share >= 1)
		snprintf(cpu, sizeof(cpu), "%.1f CPUs", share);
	else
		snprintf(cpu, sizeof(cpu), "%.0f%% of a CPU", 100 * share);
	fprintf(stderr, "memwatch: pid %d calls its allocator %.0f times a second through uprobes, a trap of about "
			"%.1f us each (timed on this machine): %s; %s\n", (int)s->target, rate, 1e6 * per_call, cpu,
		s->opt.hook == HOOK_UPROBE ? "--hook auto would detour them in-process (a few ns a call)"
					   : "they could not be detoured (-v says why); --max-overhead PCT bounds "
					     "the cost");
}

/* Every interval (-i, or 1 s): the live blocks (which also keeps the
 * sample records bounded), the timeline's reading, the live summary. */
static void tick(struct session *s, uint64_t now)
{
	note_uprobe_cost(s, s->tick_ns / 1e9);
	read_hooks(s);
	if (s->hooks)
		hooks_sweep(s->hooks);
	if (!s->opt.pages_only)
		heapprof_scan_live(&s->hp, heapbpf_live_fd(&s->bpf));
	if (s->have_pages)
		diagnosis_sample(&s->diag, (now - s->start_ns) / 1e9);
	if (s->opt.interval) {
		print_summary(s, "after");
		diagnosis_print_interval(&s->diag, stderr);
	}
}

static void maintain(struct session *s)
{
	uint64_t now = clock_ns(CLOCK_MONOTONIC);

	run_budget(s, now);
	/* Events only wake us once a backlog builds up: drain on every turn. */
	consume(s);
	if (s->hooks)
		hooks_poll(s->hooks);
	if (now >= s->next_tick_ns) {
		tick(s, now);
		s->next_tick_ns += s->tick_ns;
		if (s->next_tick_ns <= now)
			s->next_tick_ns = now + s->tick_ns;
	}
	if (s->opt.duration && now - s->start_ns >= (uint64_t)(s->opt.duration * 1e9))
		s->stop = true;
}

static int setup_loop(struct session *s)
{
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	s->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->sigfd < 0 || s->epfd < 0)
		return -errno;
	ev.data.fd = s->sigfd;
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &ev);
	if (s->rb) {
		ev.data.fd = ring_buffer__epoll_fd(s->rb);
		epoll_ctl(s->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
	}
	if (s->pidfd >= 0) {
		ev.data.fd = s->pidfd;
		epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->pidfd, &ev);
	}
	return 0;
}

/* Wakes at least every 100 ms, and when the budget's phase ends. */
static int loop_timeout_ms(const struct session *s)
{
	uint64_t now, end = s->budget.phase_end_ns;

	if (!s->opt.max_overhead)
		return 100;
	now = clock_ns(CLOCK_MONOTONIC);
	if (end <= now)
		return 0;
	return end - now >= 100000000ull ? 100 : (int)((end - now) / 1000000) + 1;
}

static void run_loop(struct session *s)
{
	struct epoll_event evs[8];

	s->start_ns = clock_ns(CLOCK_MONOTONIC);
	if (s->opt.max_overhead) {
		struct budget_sample sample;
		budget_sample(s, &sample);
		budget_init(&s->budget, s->opt.max_overhead, s->probe_cost.alloc_s, s->probe_cost.free_s, s->start_ns,
			    &sample);
	}
	s->tick_ns = s->opt.interval ? (uint64_t)(s->opt.interval * 1e9) : TICK_NS;
	s->next_tick_ns = s->start_ns + s->tick_ns;
	while (!s->stop) {
		int n = epoll_wait(s->epfd, evs, 8, loop_timeout_ms(s));
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == s->sigfd)
				on_signal(s);
			else if (evs[i].data.fd == s->pidfd)
				s->stop = true;
			else
				consume(s);
		}
		maintain(s);
	}
}

/* ---- the end --------------------------------------------------------- */

static void describe_budget(struct session *s, char **out)
{
	const struct budget *b = &s->budget;

	if (asprintf(out, "duty cycle (--max-overhead %.0f%%): allocator probes attached %.1f%% of %.1f s "
			  "(%u windows; always on they would cost the target about %.0f%%, %.2f us per hit); "
			  "values cover those windows only; in-use values are partial: frees while detached "
			  "were not seen",
		     100 * s->opt.max_overhead, b->total_ns ? 100.0 * b->on_ns / b->total_ns : 100.0, b->total_ns / 1e9,
		     b->windows, 100 * b->overhead, 1e6 * b->cost_per_hit) < 0)
		*out = NULL;
}

#define MAX_COMMENTS 24

/* The comments every profile carries: who, how, what was lost, and the
 * diagnosis. Returns the count; the lines are malloc'ed. */
static size_t profile_comments(struct session *s, char **lines)
{
	uint64_t c[MW_CNT_NR];
	struct process *p = procs_find(&s->procs, s->target);
	size_t n = 0;

	heapbpf_counters(&s->bpf, c);
	asprintf(&lines[n++], "memwatch %s: pid %d (%s), allocators: %s", MW_VERSION, (int)s->target,
		 p ? p->comm : "?", s->att.allocators[0] ? s->att.allocators : "not probed");
	if (!s->opt.pages_only)
		asprintf(&lines[n++], "sampling: Poisson by bytes, mean interval %" PRIu64 " bytes; values are estimates",
			 s->opt.sample_bytes);
	if (s->have_pages)
		asprintf(&lines[n++], "page stacks: one per %" PRIu64 " bytes faulted or purged (Poisson)",
			 s->opt.page_sample_bytes);
	lines[n] = malloc(512);
	if (lines[n])
		stacker_describe(&s->sk, lines[n++], 512);
	if (!s->opt.pages_only)
		asprintf(&lines[n++], "samples %" PRIu64 ", cancelled %" PRIu64 "; losses: ring buffer full %" PRIu64
				      ", live map full %" PRIu64 ", calls lost %" PRIu64 ", samplers busy %" PRIu64
				      ", unreadable stacks %" PRIu64 ", unknown live blocks %" PRIu64,
			 s->hp.tot.samples, s->hp.tot.cancels, c[MW_CNT_RINGBUF_FULL], c[MW_CNT_LIVE_FULL],
			 c[MW_CNT_PENDING_FULL], c[MW_CNT_BUSY], c[MW_CNT_STACK_FAIL], s->hp.tot.live_unknown);
	if (s->opt.alloc_only)
		asprintf(&lines[n++], "--alloc-only: allocations only; in-use values are absent (no free probes)");
	if (s->hooks && s->hook_note[0])
		asprintf(&lines[n++], "hooks (--hook %s): %s", hook_mode_name(s->opt.hook), s->hook_note);
	if (s->opt.max_overhead)
		describe_budget(s, &lines[n++]);
	if (s->have_pages)
		n += diagnosis_comments(&s->diag, lines + n, MAX_COMMENTS - 1 - n);
	return n;
}

static int commit(struct outfile *of, int err)
{
	if (!err)
		err = outfile_commit(of);
	if (err)
		report_error("cannot write %s: %s", of->path, strerror(-err));
	else
		fprintf(stderr, "memwatch: wrote %s\n", of->path);
	return err;
}

/* Writes the timeline through its outfile, by the path's extension. */
static int write_timeline(struct session *s, struct outfile *of, int (*writer)(const struct timeline *, FILE *))
{
	FILE *f = outfile_stream(of);
	int err = f ? writer(&s->diag.mon.tl, f) : -errno;

	if (f && fclose(f) && !err)
		err = -errno;
	return commit(of, err);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

static int write_outputs(struct session *s)
{
	char *comments[MAX_COMMENTS] = { 0 };
	size_t nc = profile_comments(s, comments);
	struct profile_meta meta = {
		.start_ns = s->start_real_ns,
		.end_ns = (int64_t)clock_ns(CLOCK_REALTIME),
		.comments = (const char *const *)comments,
		.alloc_only = s->opt.alloc_only,
	};
	struct profile_spec page_spec = {
		.drop_frames = allocators_drop_frames(),
		.start_ns = meta.start_ns,
		.end_ns = meta.end_ns,
		.comments = meta.comments,
	};
	int err = 0;

	if (s->heap_out.open)
		err |= commit(&s->heap_out, heapprof_write(&s->hp, &s->procs, &meta, s->heap_out.fd));
	if (s->pages_out.open)
		err |= commit(&s->pages_out, pageprof_write(&s->pp, &s->hp.st, &s->procs, &page_spec, s->pages_out.fd));
	if (s->timeline_out.open)
		err |= write_timeline(s, &s->timeline_out,
				      ends_with(s->opt.timeline, ".json") ? timeline_write_json : timeline_write_csv);
	if (s->plot_out.open)
		err |= write_timeline(s, &s->plot_out, timeline_write_svg);
	for (size_t i = 0; i < nc; i++)
		free(comments[i]);
	return err ? -EIO : 0;
}

/* The last interval's reading, the verdict and the correlation. */
static void conclude(struct session *s)
{
	if (!s->have_pages)
		return;
	diagnosis_sample(&s->diag, (clock_ns(CLOCK_MONOTONIC) - s->start_ns) / 1e9);
	diagnosis_conclude(&s->diag);
	diagnosis_print(&s->diag, stderr);
}

static int finish(struct session *s)
{
	if (s->opt.max_overhead)
		budget_finish(&s->budget, clock_ns(CLOCK_MONOTONIC));
	/* Detach first so the target runs at full speed while we write. */
	read_hooks(s);
	uint64_t detach_start = clock_ns(CLOCK_MONOTONIC);
	attacher_detach(&s->att);
	if (s->have_lat)
		attach_close(&s->lat.links);
	if (s->opt.verbose)
		fprintf(stderr, "memwatch: detached in %.1f ms\n", (clock_ns(CLOCK_MONOTONIC) - detach_start) / 1e6);
	s->detached = true;
	if (s->child && !s->child_done)
		kill(s->child, SIGCONT);
	consume(s);
	if (s->opt.empty_probes) {
		discard_outputs(s);
		return 0;
	}
	if (!s->opt.pages_only)
		heapprof_scan_live(&s->hp, heapbpf_live_fd(&s->bpf));
	print_summary(s, "done after");
	if (s->opt.max_overhead) {
		char *line = NULL;
		describe_budget(s, &line);
		if (line)
			fprintf(stderr, "memwatch: %s\n", line);
		free(line);
	}
	conclude(s);
	int err = write_outputs(s);
	print_own_cost(s);
	return err;
}

static int child_exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

static int wait_child(struct session *s)
{
	int status;

	if (!s->child_done) {
		while (waitpid(s->child, &status, 0) < 0 && errno == EINTR)
			;
		s->child_status = status;
	}
	return child_exit_code(s->child_status);
}

int main(int argc, char **argv)
{
	static struct session s = { .pidfd = -1, .sigfd = -1, .epfd = -1 };
	sigset_t mask;
	int r = options_parse(argc, argv, &s.opt);

	if (r)
		return r > 0 ? 0 : 2;
	setvbuf(stderr, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	bpflog_install(s.opt.verbose);
	if (check_environment())
		return 1;
	raise_fd_limit();
	if (s.opt.all) {
		r = host_run(&s.opt);
		options_free(&s.opt);
		return r;
	}
	/* Signals are read from a signalfd; block them before forking. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	procs_init(&s.procs);
	if (stacker_init(&s.sk, s.opt.stack_mode, s.opt.stack_bytes)) {
		report_error("out of memory");
		return 1;
	}
	heapprof_init(&s.hp, s.opt.sample_bytes, allocators_drop_frames());
	pageprof_init(&s.pp, s.opt.page_sample_bytes);
	s.start_real_ns = (int64_t)clock_ns(CLOCK_REALTIME);

	if (s.opt.cmd) {
		r = start_command(&s);
		if (r)
			goto out;
	} else {
		s.target = s.opt.pid;
		if (start_pid(&s)) {
			r = 1;
			goto out;
		}
	}
	if (setup_loop(&s)) {
		report_error("cannot set up the event loop: %s", strerror(errno));
		r = 1;
		goto out;
	}
	if (s.child)
		reap_child(&s);	/* a stop may have come before the signalfd */
	run_loop(&s);
	r = finish(&s) ? 1 : 0;
	if (s.child)
		r = wait_child(&s);
out:
	attacher_detach(&s.att);
	hook_driver_stop(&s.hd);
	if (s.child && !s.child_done && r != 0 && !s.detached) {
		kill(s.child, SIGCONT);
		wait_child(&s);
	}
	discard_outputs(&s);
	ring_buffer__free(s.rb);
	heapbpf_destroy(&s.bpf);
	if (s.have_lat)
		latency_destroy(&s.lat);
	if (s.have_pages) {
		diagnosis_free(&s.diag);
		pages_destroy(&s.pages);
	}
	heapprof_free(&s.hp);
	pageprof_free(&s.pp);
	stacker_free(&s.sk);
	procs_free(&s.procs);
	options_free(&s.opt);
	return r;
}
