#include "host.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "allocators.h"
#include "bpfconfig.h"
#include "bpflog.h"
#include "events.h"
#include "hostlisten.h"
#include "hostweb.h"
#include "http.h"
#include "outdir.h"
#include "report.h"

#define SCAN_NS 2000000000ull		/* /proc is scanned this often */
#define TICK_MS 200			/* the loop wakes at least this often */
#define IDLE_NS 60000000000ull		/* evictable: no activity for a minute */
#define PF_KTHREAD 0x00200000
#define OUTPUT_INTERVAL_S 60


/* ---- /proc ------------------------------------------------------------ */

/* comm, flags and start time from /proc/PID/stat; false if it is gone. */
static bool read_stat(pid_t pid, char comm[16], unsigned long *flags, uint64_t *start_time)
{
	char path[64], buf[1024];
	unsigned long long start = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
	if (!lp || !rp || rp < lp)
		return false;
	size_t len = rp - lp - 1 < 15 ? (size_t)(rp - lp - 1) : 15;
	memcpy(comm, lp + 1, len);
	comm[len] = 0;
	/* After ')': state, ppid, pgrp, session, tty, tpgid, flags (9th field
	 * overall), ..., starttime (22nd). */
	if (sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %lu %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		   flags, &start) != 2)
		return false;
	*start_time = start;
	return true;
}

static char *read_exe_path(pid_t pid)
{
	char path[64], *buf = NULL;
	size_t cap = 256;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	for (;;) {
		char *nb = realloc(buf, cap);
		if (!nb) {
			free(buf);
			return NULL;
		}
		buf = nb;
		ssize_t n = readlink(path, buf, cap);
		if (n < 0) {
			free(buf);
			return NULL;
		}
		if ((size_t)n < cap) {
			buf[n] = 0;
			return buf;
		}
		cap *= 2;
	}
}

static uint64_t skip_key(pid_t pid, uint64_t start_time)
{
	return hash_u64((uint64_t)pid << 40 ^ start_time);
}

/* ---- targets: the processes with heap probes --------------------------- */

/* Probes the allocators p maps now, and hooks its loader for later ones. */
static void attach_target(struct host *h, struct hproc *hp)
{
	struct target *t = hp->tgt;
	struct process *p = procs_find(&h->procs, hp->pid);
	char buf[96];

	if (!p || process_refresh(&h->procs, p))
		return;
	int n = attach_allocators(&t->att, &h->procs, p);
	if (n < 0) {
		h->counts.attach_errors++;
		if (h->opt->verbose)
			report_error("pid %d (%s): cannot attach: %s", (int)hp->pid, hp->comm, strerror(-n));
		return;
	}
	if (n > 0) {
		t->has_allocator = true;
		if (h->opt->verbose)
			fprintf(stderr, "memwatch: profiling pid %d (%s): %u probe sites in %s\n", (int)hp->pid,
				hp->comm, t->att.nprobes, t->att.allocators);
	}
	const char *ld = t->loader_hooked ? NULL : process_loader_path(p, buf, sizeof(buf));
	if (ld && !attach_loader(&t->att, hp->pid, ld))
		t->loader_hooked = true;
}

static void write_outputs(struct host *h, struct hproc *hp);

static void unprofile(struct host *h, struct hproc *hp)
{
	struct target *t = hp->tgt;

	if (!t)
		return;
	hostweb_process_gone(h, hp);
	if (h->outdir)
		write_outputs(h, hp);
	attacher_suspend(&t->att, hp->pid);
	attacher_detach(&t->att);
	pages_set_profiled(&h->pages, hp->pid, false);
	heapprof_free(&t->heap);
	pageprof_free(&t->pages);
	stacker_forget(&h->sk, hp->pid);
	procs_forget(&h->procs, hp->pid);
	free(t);
	hp->tgt = NULL;
	h->nprofiled--;
}

static struct hproc *least_active(struct host *h, bool profiled)
{
	struct hproc *oldest = NULL;
	struct hmap_slot *s;

	for (size_t i = 0; hmap_next(&h->by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		if (profiled && !hp->tgt)
			continue;
		if (!oldest || hp->last_active_ns < oldest->last_active_ns)
			oldest = hp;
	}
	return oldest;
}

static void refresh_activity(struct host *h);

/* Room for one more profiled process: the least recently active one goes
 * if it has been idle for a while. */
static bool room_to_profile(struct host *h)
{
	if (h->nprofiled < h->opt->max_profiled)
		return true;
	refresh_activity(h);
	struct hproc *victim = least_active(h, true);
	if (!victim || clock_ns(CLOCK_MONOTONIC) - victim->last_active_ns < IDLE_NS)
		return false;
	hmap_put(&h->skip, skip_key(victim->pid, victim->start_time), victim->pid, NULL);
	unprofile(h, victim);
	h->counts.evicted_profiled++;
	return true;
}

static void profile(struct host *h, struct hproc *hp)
{
	struct probe_progs progs;

	if (hp->tgt || !h->have_heap || !room_to_profile(h))
		return;
	struct target *t = calloc(1, sizeof(*t));
	if (!t)
		return;
	if (!procs_get(&h->procs, hp->pid)) {
		free(t);
		return;
	}
	heapprof_init(&t->heap, h->opt->sample_bytes, allocators_drop_frames());
	pageprof_init(&t->pages, h->opt->page_sample_bytes);
	heapbpf_progs(&h->bpf, &progs);
	progs.no_frees = h->opt->alloc_only;
	attacher_init(&t->att, &progs, h->opt->allocator, h->opt->verbose ? stderr : NULL);
	t->att.hooks = h->hd.engine;
	t->start_real_ns = (int64_t)clock_ns(CLOCK_REALTIME);
	t->next_write_ns = 0;
	hp->tgt = t;
	h->nprofiled++;
	pages_set_profiled(&h->pages, hp->pid, true);
	attach_target(h, hp);
}

/* ---- the process table ------------------------------------------------ */

struct hproc *host_find(struct host *h, pid_t pid)
{
	void **slot = hmap_find(&h->by_pid, hash_u64(pid), pid);

	return slot ? *slot : NULL;
}

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
	pages_forget(&h->pages, hp->pid);
	hmap_remove(&h->by_pid, hash_u64(hp->pid), hp->pid, NULL);
	free(hp->cgroup);
	free(hp->exe);
	free(hp);
}

/* Room for one more process: the least recently active idle one goes. */
static bool room_to_track(struct host *h)
{
	if (h->by_pid.len < h->opt->max_processes)
		return true;
	refresh_activity(h);
	struct hproc *victim = least_active(h, false);
	if (!victim || clock_ns(CLOCK_MONOTONIC) - victim->last_active_ns < IDLE_NS) {
		h->counts.dropped_processes++;
		return false;
	}
	hmap_put(&h->skip, skip_key(victim->pid, victim->start_time), victim->pid, NULL);
	forget(h, victim);
	h->counts.evicted_processes++;
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
	if (hmap_put(&h->by_pid, hash_u64(pid), pid, hp)) {
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
	char comm[16];
	unsigned long flags;
	uint64_t start_time;

	if (!read_stat(pid, comm, &flags, &start_time) || (flags & PF_KTHREAD))
		return NULL;
	struct hproc *hp = host_find(h, pid);
	if (hp && hp->start_time != start_time) {
		forget(h, hp);	/* the pid was reused */
		hp = NULL;
	}
	if (hp) {
		hp->seen = true;
		return hp;
	}
	return track(h, pid, comm, start_time);
}

static void scan_proc(struct host *h)
{
	struct hmap_slot *s;
	struct dirent *de;
	DIR *d = opendir("/proc");

	if (!d)
		return;
	for (size_t i = 0; hmap_next(&h->by_pid, &i, &s);)
		((struct hproc *)s->val)->seen = false;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		notice(h, (pid_t)strtol(de->d_name, NULL, 10));
	}
	closedir(d);
	for (size_t i = 0; hmap_next(&h->by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		if (hp->seen)
			continue;
		forget(h, hp);
		h->counts.exits++;
		i--;	/* the removal moved a later entry here */
	}
	/* A profiled process may have mapped its allocator since. */
	for (size_t i = 0; hmap_next(&h->by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		if (hp->tgt && !hp->tgt->has_allocator)
			attach_target(h, hp);
	}
}

/* Whether the kernel side or the heap probes saw the process do anything
 * since last time. */
static void refresh_activity(struct host *h)
{
	static struct mw_page_stats st;
	uint64_t now = clock_ns(CLOCK_MONOTONIC);
	struct hmap_slot *s;

	for (size_t i = 0; hmap_next(&h->by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		uint64_t calls = 0, samples = hp->tgt ? hp->tgt->heap.tot.samples : 0;
		if (pages_stats(&h->pages, hp->pid, &st))
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

/* ---- events ----------------------------------------------------------- */

static void on_exec(void *ctx, pid_t pid)
{
	struct host *h = ctx;
	struct hproc *hp = notice(h, pid);

	h->counts.execs++;
	if (!hp)
		return;
	read_stat(pid, hp->comm, &(unsigned long){ 0 }, &hp->start_time);
	identify(h, hp);
	if (hp->tgt && !hp->matched) {
		unprofile(h, hp);
	} else if (hp->tgt) {
		struct process *p = procs_find(&h->procs, pid);
		hp->tgt->loader_hooked = false;
		if (p && !process_exec(&h->procs, p))
			attach_after_exec(&hp->tgt->att, &h->procs, p);
		attach_target(h, hp);
	} else if (hp->matched) {
		profile(h, hp);
	}
}

/* The process is forgotten once its last samples are read (consume()). */
static void on_exit_event(void *ctx, pid_t pid)
{
	struct host *h = ctx;
	struct hproc *hp = host_find(h, pid);

	if (!hp || hp->exit_epoch)
		return;
	hp->exit_epoch = h->exit_epoch;
	h->exits_pending++;
	h->counts.exits++;
}

static void forget_exited(struct host *h, uint64_t epoch)
{
	struct hmap_slot *s;

	for (size_t i = 0; hmap_next(&h->by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		if (!hp->exit_epoch || hp->exit_epoch > epoch)
			continue;
		forget(h, hp);
		i--;	/* the removal moved a later entry here */
	}
}

/* Reads both rings. A process's heap samples were all written before its
 * exit event, but the heap ring may have been read before they came and the
 * kernel ring's exit after: so the exited are forgotten only after one more
 * pass (which may read more exits, for the next round). */
static void consume(struct host *h)
{
	ring_buffer__consume(h->rb);
	while (h->exits_pending) {
		uint64_t epoch = h->exit_epoch++;
		h->exits_pending = 0;
		ring_buffer__consume(h->rb);
		forget_exited(h, epoch);
	}
}

static struct target *target_of(struct host *h, pid_t pid, struct process **p)
{
	struct hproc *hp = host_find(h, pid);

	if (!hp || !hp->tgt)
		return NULL;
	*p = procs_find(&h->procs, pid);
	return *p ? hp->tgt : NULL;
}

static void on_sample(void *ctx, const struct mw_sample_event *e, size_t len)
{
	struct host *h = ctx;
	struct process *p;
	struct target *t = target_of(h, e->h.tgid, &p);

	hook_driver_event(&h->hd, e);
	if (!t)
		return;
	uint32_t stack = stacker_intern(&h->sk, &t->heap.st, &h->procs, p, e, len);
	if (stack == UINT32_MAX)
		t->heap.tot.stack_oom++;
	else
		heapprof_add(&t->heap, e->sample_id, stack, e->h.tgid, e->size);
}

static void on_page(void *ctx, const struct mw_sample_event *e, size_t len)
{
	struct host *h = ctx;
	struct process *p;
	struct target *t = target_of(h, e->h.tgid, &p);

	if (!t || e->h.fn >= MW_PAGE_COUNT)
		return;
	uint32_t stack = stacker_intern(&h->sk, &t->heap.st, &h->procs, p, e, len);
	if (stack != UINT32_MAX)
		pageprof_add(&t->pages, stack, e->h.tgid, (enum mw_page_event)e->h.fn, e->size);
}

static void on_loader(void *ctx, pid_t pid)
{
	struct host *h = ctx;
	struct hproc *hp = host_find(h, pid);

	if (hp && hp->tgt)
		attach_target(h, hp);
}

static void on_cancel(void *ctx, pid_t tgid, uint64_t sample_id)
{
	struct process *p;
	struct target *t = target_of(ctx, tgid, &p);

	if (t)
		heapprof_cancel(&t->heap, sample_id);
}

/* The heap side's ring; its exec events are the kernel side's too, which
 * has them for every process: they come from there. */
static const struct event_handlers heap_handlers = {
	.sample = on_sample, .cancel = on_cancel, .loader = on_loader,
};
static const struct event_handlers pages_handlers = {
	.page = on_page, .exec = on_exec, .exit = on_exit_event,
};

static int on_heap_event(void *ctx, void *data, size_t len)
{
	return events_dispatch(&heap_handlers, ctx, data, len);
}

static int on_pages_event(void *ctx, void *data, size_t len)
{
	return events_dispatch(&pages_handlers, ctx, data, len);
}

/* ---- the live scan ---------------------------------------------------- */

struct orphans {
	struct mw_live_key *keys;
	size_t n, cap;
};

struct scan_ctx {
	struct host *h;
	struct orphans orphans;
};

static void visit_live(void *ctx, const struct mw_live_key *key, uint64_t sample_id)
{
	struct scan_ctx *sc = ctx;
	struct hproc *hp = host_find(sc->h, key->tgid);
	struct orphans *o = &sc->orphans;

	if (hp && hp->tgt) {
		heapprof_scan_count(&hp->tgt->heap, sample_id);
		return;
	}
	/* A block of a process memwatch no longer profiles: it goes. */
	if (o->n == o->cap) {
		size_t ncap = o->cap ? o->cap * 2 : 256;
		struct mw_live_key *nk = realloc(o->keys, ncap * sizeof(*nk));
		if (!nk)
			return;
		o->keys = nk;
		o->cap = ncap;
	}
	o->keys[o->n++] = *key;
}

void host_scan_live(struct host *h)
{
	struct scan_ctx sc = { .h = h };
	struct hmap_slot *s;

	if (!h->have_heap)
		return;
	if (h->hd.engine)
		hooks_sweep(h->hd.engine);	/* releases the agents published */
	for (size_t i = 0; hmap_next(&h->by_pid, &i, &s);)
		if (((struct hproc *)s->val)->tgt)
			heapprof_scan_begin(&((struct hproc *)s->val)->tgt->heap);
	live_map_scan(heapbpf_live_fd(&h->bpf), visit_live, &sc);
	for (size_t i = 0; hmap_next(&h->by_pid, &i, &s);)
		if (((struct hproc *)s->val)->tgt)
			heapprof_scan_end(&((struct hproc *)s->val)->tgt->heap);
	if (sc.orphans.n) {
		__u32 count = sc.orphans.n;
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		bpf_map_delete_batch(heapbpf_live_fd(&h->bpf), sc.orphans.keys, &count, &opts);
		h->counts.live_orphans += sc.orphans.n;
	}
	free(sc.orphans.keys);
}

/* ---- --output-dir ----------------------------------------------------- */

struct write_ctx {
	struct host *h;
	struct hproc *hp;
	bool pages;
};

static int write_profile_fd(void *ctx, int fd)
{
	struct write_ctx *w = ctx;

	return hostweb_write_profile(w->h, w->hp, w->pages ? PROFILE_PAGES : PROFILE_HEAP, NULL, fd);
}

static void write_outputs(struct host *h, struct hproc *hp)
{
	struct write_ctx heap = { h, hp, false }, pages = { h, hp, true };
	int64_t now = (int64_t)clock_ns(CLOCK_REALTIME);
	int err;

	if (!h->outdir || !hp->tgt)
		return;
	if (!h->opt->pages_only &&
	    (err = outdir_write(h->outdir, hp->comm, hp->pid, now, "heap", write_profile_fd, &heap)))
		report_error("--output-dir: pid %d heap profile: %s", (int)hp->pid, strerror(-err));
	if ((err = outdir_write(h->outdir, hp->comm, hp->pid, now, "pages", write_profile_fd, &pages)))
		report_error("--output-dir: pid %d page profile: %s", (int)hp->pid, strerror(-err));
}

static void write_due(struct host *h)
{
	int64_t now = (int64_t)clock_ns(CLOCK_REALTIME);
	double interval = h->opt->interval > 0 ? h->opt->interval : OUTPUT_INTERVAL_S;
	struct hmap_slot *s;
	bool scanned = false;

	if (!h->outdir)
		return;
	for (size_t i = 0; hmap_next(&h->by_pid, &i, &s);) {
		struct hproc *hp = s->val;
		struct target *t = hp->tgt;
		if (!t)
			continue;
		if (!t->next_write_ns)
			t->next_write_ns = t->start_real_ns + (int64_t)(interval * 1e9);
		if (now < t->next_write_ns)
			continue;
		if (!scanned) {
			host_scan_live(h);
			scanned = true;
		}
		write_outputs(h, hp);
		t->next_write_ns += (int64_t)(interval * 1e9);
		if (t->next_write_ns <= now)
			t->next_write_ns = now + (int64_t)(interval * 1e9);
	}
}

/* ---- loading ---------------------------------------------------------- */

static int add_ring(struct host *h, int fd, ring_buffer_sample_fn fn)
{
	if (!h->rb) {
		h->rb = ring_buffer__new(fd, fn, h, NULL);
		return h->rb ? 0 : -errno;
	}
	return ring_buffer__add(h->rb, fd, fn, h) ? -errno : 0;
}

static int load(struct host *h)
{
	const struct options *o = h->opt;
	struct pages_config pc;
	int err;

	bpfconfig_pages(o, 0, &pc);
	if (!o->pages_only && !matcher_empty(&h->match)) {
		struct heapbpf_config hc;
		bpfconfig_heap(o, 0, &hc);
		if ((err = heapbpf_load(&h->bpf, &hc))) {
			report_error("cannot load BPF programs: %s%s", strerror(-err), bpflog_detail());
			return err;
		}
		h->have_heap = true;
		if (hook_driver_start(&h->hd, o, &h->bpf, &hc, o->max_profiled))
			return -1;
		if ((err = add_ring(h, heapbpf_events_fd(&h->bpf), on_heap_event)))
			return err;
	}
	if ((err = pages_load(&h->pages, &pc))) {
		report_error("cannot load the kernel-side programs: %s%s", strerror(-err), bpflog_detail());
		return err;
	}
	return add_ring(h, pages_events_fd(&h->pages), on_pages_event);
}

static int open_outputs(struct host *h)
{
	int err;

	if (h->opt->output_dir &&
	    (err = outdir_open(&h->outdir, h->opt->output_dir, h->opt->output_keep, h->opt->output_max_bytes))) {
		report_error("--output-dir %s: %s", h->opt->output_dir,
		     err == -EINVAL ? "give --output-keep or --output-max-bytes a bound" : strerror(-err));
		return err;
	}
	return h->opt->listen ? hostlisten_start(h) : 0;
}

/* ---- the loop --------------------------------------------------------- */

static int setup_loop(struct host *h)
{
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	h->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (h->sigfd < 0 || h->epfd < 0)
		return -errno;
	ev.data.fd = h->sigfd;
	epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->sigfd, &ev);
	ev.data.fd = ring_buffer__epoll_fd(h->rb);
	epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
	if (h->http) {
		ev.data.fd = http_fd(h->http);
		epoll_ctl(h->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
	}
	return 0;
}

static int timeout_ms(struct host *h)
{
	int t = TICK_MS;

	if (h->http) {
		int ht = http_timeout_ms(h->http);
		if (ht >= 0 && ht < t)
			t = ht;
	}
	int dt = hostweb_next_deadline_ms(h);
	return dt >= 0 && dt < t ? dt : t;
}

static void maintain(struct host *h)
{
	uint64_t now = clock_ns(CLOCK_MONOTONIC);

	consume(h);
	if (now >= h->next_scan_ns) {
		scan_proc(h);
		h->next_scan_ns = now + SCAN_NS;
	}
	hostweb_deliver_due(h);
	write_due(h);
	if (h->opt->duration && now - h->start_ns >= (uint64_t)(h->opt->duration * 1e9))
		h->stop = true;
}

static void run_loop(struct host *h)
{
	struct epoll_event evs[8];
	struct signalfd_siginfo si;

	while (!h->stop) {
		int n = epoll_wait(h->epfd, evs, 8, timeout_ms(h));
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == h->sigfd) {
				while (read(h->sigfd, &si, sizeof(si)) == sizeof(si))
					h->stop = true;
			} else if (h->http && evs[i].data.fd == http_fd(h->http)) {
				http_run(h->http);
			} else {
				consume(h);
			}
		}
		if (h->http)
			http_run(h->http);
		maintain(h);
	}
}

static void print_end(struct host *h)
{
	struct hmap_slot *s;
	size_t n = 0;

	fprintf(stderr, "memwatch: done after %.1fs: %zu processes tracked, %zu profiled; evicted %" PRIu64
			" processes and %" PRIu64 " profiled ones, dropped %" PRIu64 " (limits)\n",
		(clock_ns(CLOCK_MONOTONIC) - h->start_ns) / 1e9, h->by_pid.len, h->nprofiled, h->counts.evicted_processes,
		h->counts.evicted_profiled, h->counts.dropped_processes);
	for (size_t i = 0; hmap_next(&h->by_pid, &i, &s) && n < 20;) {
		struct hproc *hp = s->val;
		if (!hp->tgt)
			continue;
		fprintf(stderr, "memwatch:   pid %d (%s): %.1f MiB in use (est.), %" PRIu64 " samples\n", (int)hp->pid,
			hp->comm, hp->tgt->heap.tot.inuse_bytes / 1048576.0, hp->tgt->heap.tot.samples);
		n++;
	}
}

static void teardown(struct host *h)
{
	struct hmap_slot *s;

	for (size_t i = 0; hmap_next(&h->by_pid, &i, &s);) {
		forget(h, s->val);
		i--;
	}
	hostweb_free(h);
	hostlisten_stop(h);
	if (h->outdir)
		outdir_close(h->outdir);
	ring_buffer__free(h->rb);
	hook_driver_stop(&h->hd);
	if (h->have_heap)
		heapbpf_destroy(&h->bpf);
	pages_destroy(&h->pages);
	hmap_free(&h->by_pid);
	hmap_free(&h->skip);
	stacker_free(&h->sk);
	procs_free(&h->procs);
	matcher_free(&h->match);
	if (h->sigfd >= 0)
		close(h->sigfd);
	if (h->epfd >= 0)
		close(h->epfd);
}

int host_run(const struct options *opt)
{
	static struct host h;
	int err;

	memset(&h, 0, sizeof(h));
	h.opt = opt;
	h.sigfd = h.epfd = -1;
	h.exit_epoch = 1;
	hmap_init(&h.by_pid, NULL, NULL);
	hmap_init(&h.skip, NULL, NULL);
	procs_init(&h.procs);
	err = matcher_init(&h.match, opt->comms, opt->ncomms, opt->pids, opt->npids, opt->cgroups, opt->ncgroups);
	if (!err)
		err = stacker_init(&h.sk, opt->stack_mode, opt->stack_bytes);
	if (err) {
		report_error("cannot start: %s", strerror(-err));
		teardown(&h);
		return 1;
	}
	h.start_ns = clock_ns(CLOCK_MONOTONIC);
	h.start_real_ns = (int64_t)clock_ns(CLOCK_REALTIME);
	if (open_outputs(&h) || load(&h) || setup_loop(&h)) {
		teardown(&h);
		return 1;
	}
	scan_proc(&h);
	h.next_scan_ns = clock_ns(CLOCK_MONOTONIC) + SCAN_NS;
	fprintf(stderr, "memwatch: watching %zu processes, %zu with heap probes\n", h.by_pid.len, h.nprofiled);
	hostlisten_announce(&h);
	run_loop(&h);
	host_scan_live(&h);
	print_end(&h);
	err = h.outdir ? outdir_report(h.outdir, opt->output_dir) : 0;
	teardown(&h);
	return err ? 1 : 0;
}
