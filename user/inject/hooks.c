/*
 * The in-process fast path. Design (README "How it works" has the short
 * version):
 *
 * - An agent (user/inject/agent: freestanding C and assembly, no
 *   relocations) is mapped into the target from a memfd it creates
 *   ("memwatch-agent" in /proc/PID/maps), near each allocator so every
 *   detour reaches it with a rel32: memwatch runs memfd_create, mmap and
 *   madvise in one held thread (ptrace) and writes the image through
 *   /proc/PID/fd. Its state (sampler parameters, per-thread slots, the live
 *   set) is private and MADV_WIPEONFORK: a forked child's stubs pass
 *   everything through until a memwatch sets it up. A control page, a
 *   second memfd memwatch maps too (MADV_DONTFORK), carries the backoff.
 * - Each allocator entry keeps its first instruction (so another tool's
 *   uprobe on the first byte keeps working) and the bytes after it become
 *   a jmp to a per-entry prelude, which undoes the first instruction's
 *   effect on the stack and enters the stub of its argument layout. The
 *   entry's "original" replays the first instruction and the relocated
 *   window, then jumps back (detour.c decides what is safe, plan.c which
 *   entries, install.c writes it). All patches go in, and come out, while
 *   every thread is stopped and none is inside the bytes being replaced.
 * - An unsampled allocation costs the thread's countdown and a tail jump;
 *   a free, a lookup in the live set. A sampled allocation calls the
 *   original, inserts the block, and calls an empty report function whose
 *   first instruction is a 5-byte nop: memwatch's uprobe there (the kernel
 *   turns it into a call) runs bpf/hook.bpf.c, which builds the registers
 *   the entry saw and reuses the stack capture, live map and events of the
 *   uprobe path. Nothing in the target depends on memwatch: with it gone
 *   the report functions are empty and the backoff gives up.
 * - No sample lost: a sampled call takes a ticket and waits while the ring
 *   may be too full (memwatch publishes what it consumed); it stops waiting
 *   within milliseconds once memwatch's heartbeat (a thread here) stops.
 * - The header (pages 0-1 of an instance) records every patched entry with
 *   its original bytes: a later run, of this build or another, restores
 *   them, and reuses the instance when the build matches.
 */
#include "inject/hooks.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent_syms.h"
#include "probes/allocators.h"
#include "inject/install.h"
#include "inject/instance.h"
#include "inject/plan.h"
#include "proc/process.h"
#include "proc/procmaps.h"
#include "inject/tracee.h"

#define MAX_INSTANCES 8
#define MAX_MODULES 8
#define BEAT_NS 5000000		/* heartbeat period; the agent gives up after 20 ms without */

struct hinst {
	struct instance in;
	void *reports;		/* the reporter's handle */
};

struct hmod {
	struct hook_plan *plan;
	const char *alloc_name;
	char file[64];
	size_t inst;
};

struct hproc {
	pid_t pid;
	unsigned epoch;
	uint64_t syscall_insn;
	struct mwa_control *ctl;	/* our mapping of its control page */
	uint64_t control;		/* ... at this address in the target */
	uint64_t received, drops;	/* reports read, and dropped by BPF */
	struct hinst inst[MAX_INSTANCES];
	size_t ninst;
	struct hmod mods[MAX_MODULES];
	size_t nmods;
	bool looked_back;		/* a previous run's instances handled */
	char notes[512];		/* allocators left on uprobes, and why */
	struct hook_stats slot_totals;	/* the threads' counters (nested), as last read */
	double pause_ms, stop_ms;	/* the last patch: threads held, and until all had stopped */
	unsigned threads;
};

struct hook_engine {
	struct hook_config cfg;
	struct hook_reporter rep;
	bool have_rep;
	struct hproc **procs;
	size_t nprocs, cap;
	pthread_mutex_t lock;		/* procs' control pages, for the heartbeat */
	pthread_t beat;
	bool beating, stop;
	struct hproc *last;		/* hooks_consumed's cache */
};

/* The agent stops waiting after 20 ms without a beat: on a loaded machine
 * a normal thread can be kept off the CPU that long, so this one runs
 * SCHED_FIFO where allowed (a few microseconds every 5 ms). */
static void *heartbeat(void *arg)
{
	struct hook_engine *h = arg;
	const struct timespec period = { 0, BEAT_NS };
	struct sched_param fifo = { .sched_priority = sched_get_priority_min(SCHED_FIFO) };

	sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &fifo);
	for (;;) {
		pthread_mutex_lock(&h->lock);
		bool stop = h->stop;
		for (size_t i = 0; i < h->nprocs && !stop; i++)
			if (h->procs[i]->ctl)
				__atomic_fetch_add(&h->procs[i]->ctl->heartbeat, 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&h->lock);
		if (stop)
			return NULL;
		nanosleep(&period, NULL);
	}
}

struct hook_engine *hooks_new(const struct hook_config *cfg, const struct hook_reporter *rep)
{
	struct hook_engine *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->cfg = *cfg;
	if (rep) {
		h->rep = *rep;
		h->have_rep = true;
	}
	/* Priority inheritance: the heartbeat never waits behind a preempted
	 * normal thread holding the lock. */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT);
	pthread_mutex_init(&h->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	if (cfg->mode != HOOK_UPROBE) {
		/* Signals are the driver's to take (signalfd): none for this thread. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		int err = pthread_create(&h->beat, NULL, heartbeat, h);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (err) {
			free(h);
			errno = err;
			return NULL;
		}
		h->beating = true;
	}
	return h;
}

enum hook_mode hooks_mode(const struct hook_engine *h)
{
	return h->cfg.mode;
}

static struct hproc *proc_find(struct hook_engine *h, pid_t pid)
{
	if (h->last && h->last->pid == pid)
		return h->last;
	for (size_t i = 0; i < h->nprocs; i++)
		if (h->procs[i]->pid == pid)
			return h->last = h->procs[i];
	return NULL;
}

static struct hproc *proc_get(struct hook_engine *h, pid_t pid, unsigned epoch)
{
	struct hproc *hp = proc_find(h, pid);

	if (hp)
		return hp;
	if (h->nprocs == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 8;
		struct hproc **v = realloc(h->procs, cap * sizeof(*v));
		if (!v)
			return NULL;
		h->procs = v;
		h->cap = cap;
	}
	hp = calloc(1, sizeof(*hp));
	if (!hp)
		return NULL;
	hp->pid = pid;
	hp->epoch = epoch;
	pthread_mutex_lock(&h->lock);
	h->procs[h->nprocs++] = hp;
	pthread_mutex_unlock(&h->lock);
	return hp;
}

/* Drops everything memwatch holds for hp; the target is not touched. */
static void proc_clear(struct hook_engine *h, struct hproc *hp)
{
	pthread_mutex_lock(&h->lock);
	control_unmap(hp->ctl);
	hp->ctl = NULL;
	pthread_mutex_unlock(&h->lock);
	for (size_t i = 0; i < hp->ninst; i++)
		if (h->have_rep && hp->inst[i].reports)
			h->rep.detach(h->rep.ctx, hp->inst[i].reports);
	for (size_t i = 0; i < hp->nmods; i++)
		free(hp->mods[i].plan);
	unsigned epoch = hp->epoch;
	pid_t pid = hp->pid;
	memset(hp, 0, sizeof(*hp));
	hp->pid = pid;
	hp->epoch = epoch;
}

static void proc_remove(struct hook_engine *h, struct hproc *hp)
{
	proc_clear(h, hp);
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->nprocs; i++)
		if (h->procs[i] == hp)
			h->procs[i] = h->procs[--h->nprocs];
	pthread_mutex_unlock(&h->lock);
	if (h->last == hp)
		h->last = NULL;
	free(hp);
}

static void note(struct hproc *hp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct hproc *hp, const char *fmt, ...)
{
	size_t n = strlen(hp->notes);
	va_list ap;

	if (n && n + 2 < sizeof(hp->notes)) {
		strcpy(hp->notes + n, "; ");
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(hp->notes + n, sizeof(hp->notes) - n, fmt, ap);
	va_end(ap);
}

/* ---- control page ---- */

static int take_control(struct hook_engine *h, struct hproc *hp, uint64_t addr)
{
	struct mwa_control *c = control_map(hp->pid, addr);

	if (!c)
		return -errno ? -errno : -EIO;
	/* Every thread is held, or none can reach the agent yet. */
	c->issued = c->abandoned = c->gone = c->waits = 0;
	c->samples = c->frees = c->lost = c->untracked = c->slot_misses = 0;
	c->consumed = 0;
	c->closed = 0;
	c->limit = h->cfg.inflight;
	__atomic_fetch_add(&c->generation, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&h->lock);
	hp->ctl = c;
	hp->control = addr;
	hp->received = hp->drops = 0;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static bool control_beating(pid_t pid, uint64_t addr)
{
	struct mwa_control *c = control_map(pid, addr);
	const struct timespec wait = { 0, 4 * BEAT_NS };
	bool beating;

	if (!c)
		return false;
	uint64_t before = __atomic_load_n(&c->heartbeat, __ATOMIC_ACQUIRE);
	nanosleep(&wait, NULL);
	beating = !c->closed && __atomic_load_n(&c->heartbeat, __ATOMIC_ACQUIRE) != before;
	control_unmap(c);
	return beating;
}

static bool mapped_at(const struct maps *maps, uint64_t addr)
{
	const struct mapping *m = maps_find(maps, addr);
	return m && m->start == addr;
}

/* ---- instances ---- */

static int attach_reports(struct hook_engine *h, struct hproc *hp, struct hinst *hi)
{
	const uint64_t offsets[2] = { SYM_mwa_report_alloc, SYM_mwa_report_frees };
	char path[96];

	if (!h->have_rep)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)hp->pid, hi->in.base,
		 hi->in.base + hi->in.image_bytes);
	return h->rep.attach(h->rep.ctx, hp->pid, path, offsets, &hi->reports);
}

/* Adopts a previous run's instance of this build (threads held): fresh
 * state, the process's control page (a forked child has none). */
static int adopt(struct hook_engine *h, struct hproc *hp, struct tracee *t, const struct maps *maps,
		 const struct instance *found)
{
	struct hinst *hi = &hp->inst[hp->ninst];
	int err;

	hi->in = *found;
	err = instance_reset(t, hp->syscall_insn, &hi->in);
	if (!err)
		err = instance_configure(hp->pid, &hi->in, h->cfg.sample_bytes, h->cfg.alloc_only);
	if (!err && !hp->ctl && !mapped_at(maps, hi->in.control))
		err = instance_new_control(t, hp->syscall_insn, hi->in.control);
	if (!err && !hp->ctl)
		err = take_control(h, hp, hi->in.control);
	if (!err)
		hp->ninst++;
	return err;
}

/* A previous run's instances: every patch they recorded goes back (every
 * thread held); those of this build are adopted. */
static int look_back(struct hook_engine *h, struct hproc *hp, const struct maps *maps)
{
	struct instance found[MAX_INSTANCES];
	size_t n = instance_find_all(hp->pid, maps, found, MAX_INSTANCES);
	struct tracee t;
	int err;

	hp->looked_back = true;
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (mapped_at(maps, found[i].control) && control_beating(hp->pid, found[i].control))
			return -EBUSY;
	err = tracee_hold(&t, hp->pid, true);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++)
		install_restore(&t, &found[i]);
	for (size_t i = 0; i < n && !err; i++)
		if (found[i].hdr.build == agent_build() && hp->ninst < MAX_INSTANCES)
			err = adopt(h, hp, &t, maps, &found[i]);
	tracee_release(&t);
	for (size_t i = 0; i < hp->ninst && !err; i++)
		err = attach_reports(h, hp, &hp->inst[i]);
	return err;
}

/* An instance in reach of the plan's file: one this run has, or a new one
 * (created through the held main thread). Its index, or -errno. */
static int instance_for(struct hook_engine *h, struct hproc *hp, const struct maps *maps,
			const struct hook_plan *plan, char *why, size_t why_len)
{
	struct hinst *hi = &hp->inst[hp->ninst];
	struct tracee t;
	int err;

	for (size_t i = 0; i < hp->ninst; i++)
		if (instance_reaches(&hp->inst[i].in, plan->lo, plan->hi))
			return (int)i;
	if (hp->ninst == MAX_INSTANCES) {
		snprintf(why, why_len, "too many agent instances");
		return -ENOSPC;
	}
	err = tracee_hold(&t, hp->pid, false);
	if (err) {
		snprintf(why, why_len, "ptrace: %s", strerror(-err));
		return err;
	}
	err = instance_create(&t, hp->syscall_insn, maps, plan->lo, plan->hi,
			      agent_live_buckets(h->cfg.max_live), hp->control, &hi->in, why, why_len);
	tracee_release(&t);
	if (err)
		return err;
	/* Nothing reaches the new instance before it is configured. */
	if (!hp->ctl)
		err = take_control(h, hp, hi->in.control);
	if (!err)
		err = instance_configure(hp->pid, &hi->in, h->cfg.sample_bytes, h->cfg.alloc_only);
	if (!err)
		err = instance_write_header(hp->pid, &hi->in);
	if (!err)
		err = attach_reports(h, hp, hi);
	if (err) {
		snprintf(why, why_len, "setting up the agent: %s", strerror(-err));
		return err;
	}
	return (int)hp->ninst++;
}

/* ---- attach and detach ---- */

static void log_sites(struct hook_engine *h, const struct hproc *hp, const struct hmod *m, const struct hinst *hi)
{
	FILE *log = h->cfg.log;

	if (!log)
		return;
	fprintf(log, "memwatch: pid %d: %s allocator in %s: inline hooks, agent at 0x%" PRIx64 " (%s); "
		     "%u threads held %.2f ms (all stopped after %.2f)\n", (int)hp->pid, m->alloc_name, m->file,
		hi->in.base, hi->in.reused ? "reused" : "new", hp->threads, hp->pause_ms, hp->stop_ms);
	for (size_t i = 0; i < m->plan->n; i++) {
		const struct hook_site *s = &m->plan->sites[i];
		fprintf(log, "  %-24s 0x%" PRIx64 ": %s%s%s%s%s\n", s->name, s->entry, s->d.text,
			s->aliases[0] ? "; aliases " : "", s->aliases,
			s->flags & MWA_F_WRAP ? "; calls other entries: wrapped" : "",
			s->flags & MWA_F_THROWS ? "; sampled through its nothrow variant" : "");
	}
}

static int patch(struct hook_engine *h, struct hproc *hp, struct hinst *hi, struct hook_plan *plan, char *why,
		 size_t why_len)
{
	struct tracee t;
	int err = install_code(hp->pid, &hi->in, plan, why, why_len);

	if (err)
		return err;
	err = tracee_hold(&t, hp->pid, true);
	if (err) {
		snprintf(why, why_len, "ptrace: %s", strerror(-err));
		return err;
	}
	err = install_patch(&t, &hi->in, plan, why, why_len);
	hp->threads = t.n;
	tracee_release(&t);
	hp->pause_ms = (t.released_ns - t.start_ns) / 1e6;
	hp->stop_ms = (t.held_ns - t.start_ns) / 1e6;
	return err;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static int refused(struct hook_engine *h, struct hproc *hp, const struct allocator *alloc, const char *file,
		   const char *why)
{
	note(hp, "%s in %s on uprobes: %s", alloc->name, file, why);
	if (h->cfg.log)
		fprintf(h->cfg.log, "memwatch: pid %d: %s allocator in %s stays on uprobes: %s\n", (int)hp->pid,
			alloc->name, file, why);
	return h->cfg.mode == HOOK_INLINE ? -EPERM : 0;
}

static bool installed(const struct hproc *hp, const struct objfile *o, const struct process *p)
{
	for (size_t i = 0; i < p->maps.n; i++) {
		const struct mapping *m = &p->maps.v[i];
		if (m->data != o)
			continue;
		for (size_t k = 0; k < hp->nmods; k++)
			if (m->start >= hp->mods[k].plan->lo && m->start < hp->mods[k].plan->hi)
				return true;
		return false;
	}
	return false;
}

int hooks_attach(struct hook_engine *h, struct process *p, struct objfile *o, const struct allocator *alloc)
{
	const char *file = base_name(o->path);
	struct hproc *hp;
	struct hook_plan *plan;
	struct maps maps = { 0 };
	char why[256] = "", buf[128];
	int err, idx;

	if (h->cfg.mode == HOOK_UPROBE)
		return 0;
	hp = proc_get(h, p->pid, p->epoch);
	if (!hp)
		return -ENOMEM;
	if (hp->epoch != p->epoch) {	/* exec: a new image */
		proc_clear(h, hp);
		hp->epoch = p->epoch;
	}
	if (installed(hp, o, p))
		return 1;
	if (hp->nmods == MAX_MODULES)
		return refused(h, hp, alloc, file, "too many allocators");
	if (tracee_blocker(p->pid, buf, sizeof(buf))) {
		fprintf(stderr, "memwatch: pid %d is %s: inline hooks need ptrace; %s allocator probes are uprobes\n",
			(int)p->pid, buf, alloc->name);
		return refused(h, hp, alloc, file, buf);
	}
	plan = calloc(1, sizeof(*plan));
	if (!plan)
		return -ENOMEM;
	err = plan_allocator(p, o, alloc, h->cfg.alloc_only, h->cfg.log, plan);
	if (err) {
		snprintf(why, sizeof(why), "%s", err == -EPERM ? plan->why : strerror(-err));
		goto fail;
	}
	err = maps_read(p->pid, &maps);
	if (err) {
		snprintf(why, sizeof(why), "cannot read its maps: %s", strerror(-err));
		goto fail;
	}
	if (!hp->syscall_insn)
		hp->syscall_insn = find_syscall_insn(p->pid, &maps);
	if (!hp->looked_back && (err = look_back(h, hp, &maps))) {
		snprintf(why, sizeof(why), err == -EBUSY ? "another memwatch has inline hooks in it"
							   : "an earlier run's agent: %s", strerror(-err));
		goto fail;
	}
	idx = instance_for(h, hp, &maps, plan, why, sizeof(why));
	if (idx < 0) {
		err = idx;
		goto fail;
	}
	err = patch(h, hp, &hp->inst[idx], plan, why, sizeof(why));
	if (err)
		goto fail;
	maps_free(&maps);
	struct hmod *m = &hp->mods[hp->nmods++];
	*m = (struct hmod){ .plan = plan, .alloc_name = alloc->name, .inst = idx };
	snprintf(m->file, sizeof(m->file), "%s", file);
	log_sites(h, hp, m, &hp->inst[idx]);
	return 1;
fail:
	maps_free(&maps);
	free(plan);
	return refused(h, hp, alloc, file, why[0] ? why : strerror(-err));
}

static struct mwa_slot *read_slots(pid_t pid, const struct instance *in)
{
	struct mwa_slot *slots = malloc(MWA_SLOTS * sizeof(*slots));

	if (slots && proc_mem_read(pid, instance_slots(in), slots, MWA_SLOTS * sizeof(*slots))) {
		free(slots);
		return NULL;
	}
	return slots;
}

/* Releases the agent published in the control page's ring: their keys
 * leave the live map. After the target is gone (final), entries claimed
 * but never written are skipped instead of waited for. */
static void drain(struct hook_engine *h, struct hproc *hp, bool final)
{
	struct mwa_control *c = hp->ctl;
	struct mw_agent_free batch[256];
	size_t n = 0;

	if (!c || !h->have_rep || !h->rep.released)
		return;
	struct mwa_release *ring = MWA_RELEASE_RING(c);
	uint64_t tail = c->rel_tail, head = __atomic_load_n(&c->rel_head, __ATOMIC_ACQUIRE);
	for (; tail < head; tail++) {
		struct mwa_release *e = &ring[tail % MWA_RELEASES];
		if (__atomic_load_n(&e->lap, __ATOMIC_ACQUIRE) != (uint32_t)(tail / MWA_RELEASES + 1)) {
			if (final)
				continue;
			break;	/* being written: next time */
		}
		batch[n++] = (struct mw_agent_free){ .addr = e->addr, .tag = e->tag };
		if (n == sizeof(batch) / sizeof(batch[0])) {
			h->rep.released(h->rep.ctx, hp->pid, batch, n);
			n = 0;
		}
	}
	if (n)
		h->rep.released(h->rep.ctx, hp->pid, batch, n);
	__atomic_store_n(&c->rel_tail, tail, __ATOMIC_RELEASE);
}

/* The agent stops waiting for good once it finds memwatch silent; a
 * memwatch that is in fact alive (it was starved of CPU) lets it wait
 * again. The calls meanwhile were counted lost. */
static void resume(struct hproc *hp)
{
	struct mwa_control *c = hp->ctl;

	if (c && __atomic_load_n(&c->gone, __ATOMIC_ACQUIRE) && !__atomic_load_n(&c->closed, __ATOMIC_ACQUIRE))
		__atomic_store_n(&c->gone, 0, __ATOMIC_RELEASE);
}

void hooks_sweep(struct hook_engine *h)
{
	for (size_t i = 0; i < h->nprocs; i++) {
		drain(h, h->procs[i], false);
		resume(h->procs[i]);
	}
}

void hooks_detach(struct hook_engine *h, pid_t pid)
{
	struct hproc *hp = proc_find(h, pid);
	struct tracee t;

	if (!hp)
		return;
	if (hp->ctl)
		__atomic_store_n(&hp->ctl->closed, 1, __ATOMIC_RELEASE);
	drain(h, hp, false);	/* most of it before the threads stop, the rest held */
	if (hp->ninst && !tracee_hold(&t, pid, true)) {
		int restored = 0;
		for (size_t i = 0; i < hp->ninst; i++)
			restored += install_restore(&t, &hp->inst[i].in);
		drain(h, hp, false);
		size_t held = t.n;
		tracee_release(&t);
		if (h->cfg.log)
			fprintf(h->cfg.log, "memwatch: pid %d: %d entries restored; %zu threads held %.2f ms (all stopped after %.2f)\n",
				(int)pid, restored, held, (t.released_ns - t.start_ns) / 1e6, (t.held_ns - t.start_ns) / 1e6);
	} else {
		drain(h, hp, true);	/* it exited: what it published is all there is */
	}
	proc_remove(h, hp);
}

void hooks_forget(struct hook_engine *h, pid_t pid)
{
	struct hproc *hp = proc_find(h, pid);

	if (hp)
		proc_remove(h, hp);
}

void hooks_free(struct hook_engine *h)
{
	if (!h)
		return;
	while (h->nprocs)
		hooks_detach(h, h->procs[0]->pid);
	if (h->beating) {
		pthread_mutex_lock(&h->lock);
		h->stop = true;
		pthread_mutex_unlock(&h->lock);
		pthread_join(h->beat, NULL);
	}
	pthread_mutex_destroy(&h->lock);
	free(h->procs);
	free(h);
}

/* ---- the backoff's bookkeeping ---- */

static void publish(struct hproc *hp)
{
	if (hp->ctl)
		__atomic_store_n(&hp->ctl->consumed, hp->received + hp->drops, __ATOMIC_RELEASE);
}

void hooks_consumed(struct hook_engine *h, pid_t pid)
{
	struct hproc *hp = proc_find(h, pid);

	if (hp) {
		hp->received++;
		publish(hp);
	}
}

void hooks_poll(struct hook_engine *h)
{
	hooks_sweep(h);
	if (!h->have_rep || !h->rep.drops)
		return;
	for (size_t i = 0; i < h->nprocs; i++) {
		struct hproc *hp = h->procs[i];
		uint64_t d = hp->ctl ? h->rep.drops(h->rep.ctx, hp->pid) : 0;
		if (d != hp->drops) {
			hp->drops = d;
			publish(hp);
		}
	}
}

/* ---- reporting ---- */

/* The per-thread totals of one instance; false once the target is gone. */
static bool add_slots(pid_t pid, const struct instance *in, struct hook_stats *out)
{
	struct mwa_slot *slots = read_slots(pid, in);

	if (!slots)
		return false;
	for (size_t i = 0; i < MWA_SLOTS; i++)
		out->nested += slots[i].nested;
	free(slots);
	return true;
}

int hooks_stats(struct hook_engine *h, pid_t pid, struct hook_stats *out)
{
	struct hproc *hp = proc_find(h, pid);

	memset(out, 0, sizeof(*out));
	if (!hp)
		return -ENOENT;
	out->modules = hp->nmods;
	for (size_t i = 0; i < hp->nmods; i++)
		out->sites += hp->mods[i].plan->n;
	struct hook_stats slots = { 0 };
	bool readable = true;
	for (size_t i = 0; i < hp->ninst && readable; i++)
		readable = add_slots(pid, &hp->inst[i].in, &slots);
	if (readable)
		hp->slot_totals = slots;	/* else the last reading before it exited */
	out->nested = hp->slot_totals.nested;
	if (hp->ctl) {
		out->waits = hp->ctl->waits;
		out->abandoned = hp->ctl->abandoned;
		out->samples = hp->ctl->samples;
		out->frees = hp->ctl->frees;
		out->lost = hp->ctl->lost;
		out->untracked = hp->ctl->untracked;
		out->slot_misses = hp->ctl->slot_misses;
	}
	out->pause_ms = hp->pause_ms;
	out->threads = hp->threads;
	return 0;
}

void hooks_describe(struct hook_engine *h, pid_t pid, char *buf, size_t len)
{
	struct hproc *hp = proc_find(h, pid);
	size_t n = 0;

	buf[0] = 0;
	if (!hp)
		return;
	for (size_t i = 0; i < hp->nmods && n < len; i++) {
		const struct hmod *m = &hp->mods[i];
		n += snprintf(buf + n, len - n, "%s%s in %s inline (", n ? "; " : "", m->alloc_name, m->file);
		for (size_t k = 0; k < m->plan->n && n < len; k++)
			n += snprintf(buf + n, len - n, "%s%s", k ? ", " : "", m->plan->sites[k].name);
		if (n < len)
			n += snprintf(buf + n, len - n, ")");
	}
	if (hp->notes[0] && n < len)
		snprintf(buf + n, len - n, "%s%s", n ? "; " : "", hp->notes);
}
