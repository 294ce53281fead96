/* The driver core; see session.h. */
#include "session/session.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "kernel/bpflog.h"
#include "kernel/events.h"
#include "probes/allocators.h"
#include "proc/memstat.h"
#include "session/bpfconfig.h"
#include "util/array.h"
#include "util/report.h"

#define TICK_NS 1000000000ull	/* the default interval */
#define HOST_TICK_NS 60000000000ull	/* ... with --all */
/* With --all, a process's timeline keeps its last 720 to 1440 intervals
 * (12 to 24 hours at the default interval): processes live long there. */
#define HOST_TIMELINE_MAX 1440
#define WAIT_MS 100		/* the loop wakes at least this often */
#define LOOP_NICE_BOOST 5	/* nice levels above memwatch's own at start */

/* ---- targets ------------------------------------------------------------ */

struct target *session_target(const struct session *s, pid_t pid)
{
	void **slot = hmap_find(&s->targets, hash_u64(pid), pid);

	return slot ? *slot : NULL;
}

struct target *session_add_target(struct session *s, pid_t pid)
{
	struct target *t = calloc(1, sizeof(*t));
	struct probe_progs progs;

	if (!t)
		return NULL;
	if (!procs_get(&s->procs, pid) || hmap_put(&s->targets, hash_u64(pid), pid, t)) {
		free(t);
		return NULL;
	}
	t->pid = pid;
	heapprof_init(&t->heap, s->opt->sample_bytes, allocators_drop_frames());
	pageprof_init(&t->pages, s->opt->page_sample_bytes);
	heapbpf_progs(&s->bpf, &progs);
	progs.no_frees = s->opt->alloc_only;
	attacher_init(&t->att, &progs, s->opt->allocator, s->opt->verbose ? stderr : NULL);
	t->att.inl = hook_driver_inline(&s->hd);
	diagnosis_init(&t->diag, pid, s->have_heap ? &t->heap : NULL, &s->procs);
	if (s->opt->all)
		t->diag.mon.tl.max = HOST_TIMELINE_MAX;
	t->start_real_ns = (int64_t)clock_ns(CLOCK_REALTIME);
	t->start_ns = clock_ns(CLOCK_MONOTONIC);
	if (s->have_pages && s->opt->all)
		pages_set_profiled(&s->pages, pid, true);
	return t;
}

void session_drop_target(struct session *s, struct target *t)
{
	attacher_suspend(&t->att, t->pid);
	attacher_detach(&t->att);
	if (s->have_heap)
		lost_map_forget(heapbpf_lost_fd(&s->bpf), t->pid);
	if (s->have_pages && s->opt->all)
		pages_set_profiled(&s->pages, t->pid, false);
	hmap_remove(&s->targets, hash_u64(t->pid), t->pid, NULL);
	heapprof_free(&t->heap);
	pageprof_free(&t->pages);
	diagnosis_free(&t->diag);
	stacker_forget(&s->sk, t->pid);
	procs_forget(&s->procs, t->pid);
	free(t);
}

/* ---- what the core does for a target ------------------------------------ */

/* The latency probe goes on once its file is mapped. */
static void attach_latency(struct session *s, struct process *p)
{
	if (!s->have_lat || s->lat.attached)
		return;
	int r = latency_attach(&s->lat, &s->procs, p, s->opt->verbose ? stderr : NULL);
	if (r < 0) {
		report_error("--latency-probe %s: %s", s->opt->latency_probe,
			     r == -ENOENT ? "no such function in that file" : strerror(-r));
		s->lat_failed = true;
	}
}

static void hook_loader(struct session *s, struct target *t, struct process *p)
{
	char buf[96];
	const char *ld;

	if (t->loader_hooked || s->loader_stops || !s->have_heap)
		return;
	ld = process_loader_path(p, buf, sizeof(buf));
	if (ld && !attach_loader(&t->att, p->pid, ld))
		t->loader_hooked = true;
}

int target_attach(struct session *s, struct target *t)
{
	struct process *p = procs_find(&s->procs, t->pid);
	int n = 0;

	if (!p || process_refresh(&s->procs, p))
		return -ESRCH;
	/* No heap side, or the budget's off-window (attached when it ends). */
	if ((s->have_heap || s->floor) && !t->suspended) {
		n = attach_allocators(&t->att, &s->procs, p);
		if (n > 0)
			t->has_allocator = true;
		if (n >= 0)
			hook_loader(s, t, p);
		if (s->hooks && s->hooks->attached)
			s->hooks->attached(s->hooks_ctx, t, n);
	}
	attach_latency(s, p);
	return n;
}

void target_exec(struct session *s, struct target *t)
{
	struct process *p = procs_find(&s->procs, t->pid);

	if (!p || process_exec(&s->procs, p))
		return;
	if (s->opt->verbose)
		report_error("pid %d called exec: now %s", (int)t->pid, p->comm);
	t->loader_hooked = false;
	int err = s->have_heap ? attach_after_exec(&t->att, &s->procs, p) : 0;
	if (err < 0)
		report_error("cannot follow exec of pid %d: %s", (int)t->pid, strerror(-err));
	target_attach(s, t);
}

void target_sample(struct session *s, struct target *t, uint64_t now_ns)
{
	struct mw_page_stats stats;
	uint64_t latency[MW_HIST_BUCKETS];
	struct process *p = procs_find(&s->procs, t->pid);
	struct reading r = { .t = (now_ns - t->start_ns) / 1e9, .arenas = -1 };
	bool lat = s->have_lat && s->lat.attached;

	if (!t->allocator && p)
		t->allocator = allocator_in_use(p, s->opt->allocator);
	memstat_read(t->pid, &r.mem);
	if (s->have_pages) {
		if (pages_stats(&s->pages, t->pid, &stats))
			memset(&stats, 0, sizeof(stats));
		r.pages = &stats;
	}
	if (lat && !latency_read(&s->lat, latency))
		r.latency = latency;
	if (p && t->allocator && !strcmp(t->allocator, "glibc") && !process_refresh(&s->procs, p))
		r.arenas = glibc_arenas(&p->maps);
	diagnosis_describe(&t->diag, p ? p->comm : NULL, t->allocator, lat ? s->lat.where : NULL,
			   lat ? s->lat.function : NULL);
	diagnosis_sample(&t->diag, &r);
}

size_t target_intervals(const struct target *t)
{
	return t->diag.mon.tl.n;
}

void target_conclude(struct target *t, const char *prefix, FILE *out)
{
	diagnosis_conclude(&t->diag);
	diagnosis_print(&t->diag, prefix, out);
}

/* ---- the live scan ------------------------------------------------------ */

struct live_scan {
	struct session *s;
	struct mw_live_key *orphans;	/* blocks of processes no longer profiled */
	size_t norphans, cap;
};

static void visit_live(void *ctx, const struct mw_live_key *key, uint64_t sample_id)
{
	struct live_scan *ls = ctx;
	struct target *t = session_target(ls->s, key->tgid);

	if (t) {
		heapprof_scan_count(&t->heap, sample_id);
		return;
	}
	if (!ARRAY_GROW(ls->orphans, ls->norphans, ls->cap))
		ls->orphans[ls->norphans++] = *key;
}

static void visit_lost(void *ctx, const struct mw_lost_key *key, const struct mw_lost_val *v)
{
	struct target *t = session_target(ctx, key->tgid);

	if (t)
		heapprof_set_lost(&t->heap, t->pid, key->reason, key->bucket, v->count, v->bytes);
}

void session_scan_live(struct session *s)
{
	struct live_scan ls = { .s = s };
	struct hmap_slot *slot;

	if (!s->have_heap)
		return;
	if (s->hd.engine)
		hooks_sweep(s->hd.engine);	/* the releases the agents published */
	for (size_t i = 0; hmap_next(&s->targets, &i, &slot);)
		heapprof_scan_begin(&((struct target *)slot->val)->heap);
	live_map_scan(heapbpf_live_fd(&s->bpf), visit_live, &ls);
	for (size_t i = 0; hmap_next(&s->targets, &i, &slot);)
		heapprof_scan_end(&((struct target *)slot->val)->heap);
	lost_map_scan(heapbpf_lost_fd(&s->bpf), visit_lost, s);
	if (ls.norphans) {
		__u32 count = ls.norphans;
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		bpf_map_delete_batch(heapbpf_live_fd(&s->bpf), ls.orphans, &count, &opts);
		s->live_orphans += ls.norphans;
	}
	free(ls.orphans);
}

void session_end_run(struct session *s)
{
	if (s->have_heap)
		heapbpf_end_run(&s->bpf);
	hook_driver_end_run(&s->hd);
}

void session_heap_counters(const struct session *s, uint64_t out[MW_CNT_NR])
{
	if (s->have_heap || s->floor)
		heapbpf_counters(&s->bpf, out);
	else
		memset(out, 0, MW_CNT_NR * sizeof(out[0]));
}

/* ---- events ------------------------------------------------------------- */

static void on_sample(void *ctx, const struct mw_sample_event *e, size_t len)
{
	struct session *s = ctx;
	struct target *t = session_target(s, e->h.tgid);
	struct process *p = t ? procs_get(&s->procs, e->h.tgid) : NULL;

	hook_driver_event(&s->hd, e);
	if (!t)
		return;
	uint32_t stack = p ? stacker_intern(&s->sk, &t->heap.st, &s->procs, p, &e->cap, e->data, len - sizeof(*e))
			   : UINT32_MAX;
	if (stack == UINT32_MAX)
		t->heap.tot.stack_oom++;
	else
		heapprof_add(&t->heap, e->s.sample_id, stack, e->h.tgid, e->s.size);
}

/* A sampled page fault or purge: its stack goes to the page profile. */
static void on_page(void *ctx, const struct mw_page_event *e, size_t len)
{
	struct session *s = ctx;
	struct target *t = session_target(s, e->h.tgid);
	struct process *p = t ? procs_get(&s->procs, e->h.tgid) : NULL;

	if (!p || e->p.kind >= MW_PAGE_COUNT)
		return;
	uint32_t stack = stacker_intern(&s->sk, &t->heap.st, &s->procs, p, &e->cap, e->data, len - sizeof(*e));
	if (stack != UINT32_MAX)
		pageprof_add(&t->pages, stack, e->h.tgid, (enum mw_page_kind)e->p.kind, e->p.bytes);
}

static void on_cancel(void *ctx, pid_t tgid, uint64_t sample_id)
{
	struct target *t = session_target(ctx, tgid);

	if (t)
		heapprof_cancel(&t->heap, sample_id);
}

/* ld.so changed a target's link map: read its maps now, so that later
 * samples resolve against them, and probe any allocator it brought. With
 * -- CMD the loader hook stops the command instead (single.c). */
static void on_loader(void *ctx, pid_t tgid)
{
	struct session *s = ctx;
	struct target *t = session_target(s, tgid);

	if (t && !s->loader_stops)
		target_attach(s, t);
}

static void on_exec(void *ctx, pid_t tgid)
{
	struct session *s = ctx;
	struct target *t = session_target(s, tgid);

	if (s->hooks && s->hooks->exec)
		s->hooks->exec(s->hooks_ctx, tgid);
	else if (t)
		target_exec(s, t);
}

static void on_exit_event(void *ctx, pid_t tgid)
{
	struct session *s = ctx;

	if (s->hooks && s->hooks->exit) {
		s->hooks->exit(s->hooks_ctx, tgid);
		s->exits_pending += s->hooks->exits_read != NULL;
	}
}

/* A target forked: the child is not profiled (--all may select it later,
 * with probes of its own), so its copy of the breakpoints goes. */
static void on_fork(void *ctx, pid_t tgid, pid_t child)
{
	struct session *s = ctx;
	struct target *t = session_target(s, tgid);

	if (t && !session_target(s, child))
		attacher_unprobe_child(&t->att, child, tgid);
}

/* The heap side's ring. With --all the kernel side has every process's
 * exec events: they come from there, not from both. */
static const struct event_handlers heap_handlers = {
	.sample = on_sample, .cancel = on_cancel, .loader = on_loader, .exec = on_exec, .fork = on_fork,
};
static const struct event_handlers heap_handlers_all = {
	.sample = on_sample, .cancel = on_cancel, .loader = on_loader, .fork = on_fork,
};
static const struct event_handlers pages_handlers = {
	.page = on_page, .exec = on_exec, .exit = on_exit_event,
};

static int on_heap_event(void *ctx, void *data, size_t len)
{
	struct session *s = ctx;

	return events_dispatch(s->opt->all ? &heap_handlers_all : &heap_handlers, ctx, data, len);
}

static int on_pages_event(void *ctx, void *data, size_t len)
{
	return events_dispatch(&pages_handlers, ctx, data, len);
}

/* A process's heap samples were all written before its exit event, but the
 * heap ring may have been read before they came and the kernel ring's exit
 * after: the exited are passed on as read only after one more pass (which
 * may read more exits, for the next round). */
void session_consume(struct session *s)
{
	if (!s->rb)
		return;
	ring_buffer__consume(s->rb);
	while (s->exits_pending) {
		uint64_t epoch = s->exit_epoch++;
		s->exits_pending = 0;
		ring_buffer__consume(s->rb);
		s->hooks->exits_read(s->hooks_ctx, epoch);
	}
}

/* ---- loading ------------------------------------------------------------ */

static int add_ring(struct session *s, int fd, ring_buffer_sample_fn fn)
{
	int err = 0;

	if (!s->rb) {
		s->rb = ring_buffer__new(fd, fn, s, NULL);
		err = s->rb ? 0 : -errno;
	} else if (ring_buffer__add(s->rb, fd, fn, s)) {
		err = -errno;
	}
	if (err)
		report_error("cannot read BPF events: %s", strerror(-err));
	return err;
}

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

static int load_heap(struct session *s, pid_t tgid)
{
	struct heapbpf_config cfg;
	int err;

	bpfconfig_heap(s->opt, tgid, &cfg);
	err = heapbpf_load(&s->bpf, &cfg);
	if (err) {
		report_error("cannot load BPF programs: %s%s", strerror(-err), bpflog_detail());
		return -1;
	}
	s->floor = cfg.empty;
	s->have_heap = !cfg.empty;
	/* --all's processes share the ring: each may fill its share only. */
	if (s->have_heap && hook_driver_start(&s->hd, s->opt, &s->bpf, &cfg, s->opt->all ? s->opt->max_profiled : 1))
		return -1;
	if (s->opt->verbose)
		fprintf(stderr, "memwatch: probes attach as %s\n",
			describe_attach_mode(s->bpf.mode, s->opt->attach_mode != ATTACH_AUTO));
	return s->have_heap && add_ring(s, heapbpf_events_fd(&s->bpf), on_heap_event) ? -1 : 0;
}

/* The kernel side: tracepoints, global, filtered to tgid (0: all but memwatch). */
static int load_pages(struct session *s, pid_t tgid)
{
	struct pages_config cfg;
	int err;

	bpfconfig_pages(s->opt, tgid, &cfg);
	err = pages_load(&s->pages, &cfg);
	if (err) {
		report_error("cannot load the kernel-side programs: %s%s", strerror(-err), bpflog_detail());
		return -1;
	}
	s->have_pages = true;
	if (s->opt->verbose)
		fprintf(stderr, "memwatch: kernel side: page faults (tp_btf/page_fault_user), %s\n",
			s->pages.raw_syscalls ? "syscalls through raw_syscalls (no tracefs)"
					      : "madvise, mmap, munmap, brk, mremap tracepoints");
	return add_ring(s, pages_events_fd(&s->pages), on_pages_event) ? -1 : 0;
}

int session_load(struct session *s, pid_t tgid, bool heap)
{
	const struct options *o = s->opt;

	if (heap && !o->pages_only && load_heap(s, tgid))
		return -1;
	if (o->empty_probes && !o->pages_only)
		return 0;
	if (load_pages(s, tgid))
		return -1;
	if (o->latency_probe) {
		int err = latency_load(&s->lat, o->latency_probe, tgid);
		if (err) {
			report_error("cannot set up --latency-probe %s: %s", o->latency_probe, strerror(-err));
			return -1;
		}
		s->have_lat = true;
	}
	return 0;
}

/* ---- the loop ----------------------------------------------------------- */

static void signal_mask(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGHUP);
	sigaddset(mask, SIGCHLD);
}

void session_block_signals(void)
{
	sigset_t mask;

	signal_mask(&mask);
	sigprocmask(SIG_BLOCK, &mask, NULL);
}

int session_watch(struct session *s, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* The loop reads what the probes write. At the target's priority it is
 * starved whenever the target's threads keep every CPU busy: at -s 1, 8
 * threads allocating flat out on 2 CPUs lost 48% of their samples ("ring
 * buffer full"), none with the loop 5 nice levels above them
 * (tools/bench-loss.sh). Linux's nice is per thread: a command forked before
 * keeps memwatch's old one. */
static void raise_priority(const struct options *o)
{
	int nice, want;

	errno = 0;
	nice = getpriority(PRIO_PROCESS, 0);
	if (nice == -1 && errno)
		return;
	want = nice - LOOP_NICE_BOOST < -20 ? -20 : nice - LOOP_NICE_BOOST;
	if (setpriority(PRIO_PROCESS, 0, want) && o->verbose)
		fprintf(stderr, "memwatch: cannot raise the event loop's priority: %s\n", strerror(errno));
}

int session_setup_loop(struct session *s, const struct session_hooks *hooks, void *ctx)
{
	sigset_t mask;

	raise_priority(s->opt);
	s->hooks = hooks;
	s->hooks_ctx = ctx;
	signal_mask(&mask);
	s->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->sigfd < 0 || s->epfd < 0)
		return -errno;
	if (session_watch(s, s->sigfd))
		return -errno;
	return s->rb ? session_watch(s, ring_buffer__epoll_fd(s->rb)) : 0;
}

static void on_signals(struct session *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (s->hooks && s->hooks->signal)
			s->hooks->signal(s->hooks_ctx, si.ssi_signo);
		if (si.ssi_signo != SIGCHLD)
			s->stop = true;
	}
}

/* Every interval: the live blocks (which also keeps the sample records
 * bounded), each target's reading, then the driver's own work. */
static void tick(struct session *s, uint64_t now)
{
	struct hmap_slot *slot;

	session_scan_live(s);
	for (size_t i = 0; hmap_next(&s->targets, &i, &slot);)
		target_sample(s, slot->val, now);
	if (s->hooks && s->hooks->interval)
		s->hooks->interval(s->hooks_ctx, now);
}

static void maintain(struct session *s)
{
	uint64_t now = clock_ns(CLOCK_MONOTONIC);

	if (s->hooks && s->hooks->turn)
		s->hooks->turn(s->hooks_ctx, now);
	/* Events only wake us once a backlog builds up: drain on every turn. */
	session_consume(s);
	if (s->hd.engine)
		hooks_poll(s->hd.engine);
	if (now >= s->next_tick_ns) {
		tick(s, now);
		s->next_tick_ns += s->tick_ns;
		if (s->next_tick_ns <= now)
			s->next_tick_ns = now + s->tick_ns;
	}
	if (s->opt->duration && now - s->start_ns >= (uint64_t)(s->opt->duration * 1e9))
		s->stop = true;
}

static int timeout_ms(struct session *s)
{
	uint64_t now = clock_ns(CLOCK_MONOTONIC);
	int ms = WAIT_MS;

	if (s->hooks && s->hooks->timeout_ms) {
		int t = s->hooks->timeout_ms(s->hooks_ctx, now);
		if (t >= 0 && t < ms)
			ms = t;
	}
	return ms;
}

void session_run(struct session *s)
{
	struct epoll_event evs[8];
	int rb_fd = s->rb ? ring_buffer__epoll_fd(s->rb) : -1;

	s->tick_ns = s->opt->interval ? (uint64_t)(s->opt->interval * 1e9) : s->opt->all ? HOST_TICK_NS : TICK_NS;
	s->next_tick_ns = s->start_ns + s->tick_ns;
	while (!s->stop) {
		int n = epoll_wait(s->epfd, evs, 8, timeout_ms(s));
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == s->sigfd)
				on_signals(s);
			else if (evs[i].data.fd == rb_fd)
				session_consume(s);
			else if (s->hooks && s->hooks->ready)
				s->hooks->ready(s->hooks_ctx, evs[i].data.fd);
		}
		maintain(s);
	}
}

/* ---- lifetime ----------------------------------------------------------- */

int session_init(struct session *s, const struct options *opt)
{
	memset(s, 0, sizeof(*s));
	s->opt = opt;
	s->sigfd = s->epfd = -1;
	s->exit_epoch = 1;
	procs_init(&s->procs);
	hmap_init(&s->targets, NULL, NULL);
	s->start_ns = clock_ns(CLOCK_MONOTONIC);
	s->start_real_ns = (int64_t)clock_ns(CLOCK_REALTIME);
	return stacker_init(&s->sk, opt->stack_mode, opt->stack_bytes);
}

void session_free(struct session *s)
{
	struct hmap_slot *slot;

	for (size_t i = 0; hmap_next(&s->targets, &i, &slot); i--)
		session_drop_target(s, slot->val);
	ring_buffer__free(s->rb);
	hook_driver_stop(&s->hd);	/* its programs share the heap object's maps */
	heapbpf_destroy(&s->bpf);
	if (s->have_lat)
		latency_destroy(&s->lat);
	if (s->have_pages)
		pages_destroy(&s->pages);
	hmap_free(&s->targets);
	stacker_free(&s->sk);
	procs_free(&s->procs);
	if (s->sigfd >= 0)
		close(s->sigfd);
	if (s->epfd >= 0)
		close(s->epfd);
}
