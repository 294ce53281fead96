// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The agent's slow path: the calls the stubs (stubs.S) could not pass
 * through on their own. Freestanding: no libc, no globals, no relocations;
 * everything is reached through the entry's descriptor. It never depends
 * on memwatch being alive: with nobody listening, the report functions
 * are empty and the backoff gives up on a silent control page.
 *
 * Sampling is bpf/capture.h's, per thread instead of per CPU: a countdown
 * of bytes reseeded from the same exponential table.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inject/agent/agent.h"
#include "memwatch.h"

struct mwa_rec {
	struct mw_agent_report rep;
	uint64_t args[6];
	uint64_t desc;
	uint64_t why;
	uint64_t ret;
};

_Static_assert(offsetof(struct mwa_rec, rep.entry_sp) == R_ENTRY_SP, "rec");
_Static_assert(offsetof(struct mwa_rec, rep.rbx) == R_RBX, "rec");
_Static_assert(offsetof(struct mwa_rec, rep.r15) == R_R15, "rec");
_Static_assert(offsetof(struct mwa_rec, args) == R_ARGS, "rec");
_Static_assert(offsetof(struct mwa_rec, desc) == R_DESC, "rec");
_Static_assert(offsetof(struct mwa_rec, why) == R_WHY, "rec");
_Static_assert(offsetof(struct mwa_rec, ret) == R_RET, "rec");
_Static_assert(sizeof(struct mwa_rec) <= R_FRAME && R_FRAME % 16 == 8, "rec frame");
_Static_assert(offsetof(struct mwa_desc, slots) == D_SLOTS, "desc");
_Static_assert(offsetof(struct mwa_desc, live_mask) == D_LIVE_MASK, "desc");
_Static_assert(offsetof(struct mwa_desc, twin) == D_TWIN, "desc");
_Static_assert(offsetof(struct mwa_desc, fn) == D_FN, "desc");
_Static_assert(offsetof(struct mwa_desc, twin_arg) == D_TWIN_ARG, "desc");
_Static_assert(sizeof(struct mwa_desc) == D_SIZE, "desc");
_Static_assert(sizeof(struct mwa_slot) == 1 << MWA_SLOT_SHIFT, "slot");
_Static_assert(offsetof(struct mwa_slot, countdown) == 8 && sizeof(struct mwa_control) <= MWA_PAGE, "slot, control");
_Static_assert(MW_EXP_CELLS == MW_EXP_SIZE, "exp table");
_Static_assert(sizeof(struct mwa_header) <= MWA_HEADER_BYTES, "header");

/* In stubs.S. Hidden: taken as addresses, they must not go through a GOT. */
#define HIDDEN __attribute__((visibility("hidden")))
HIDDEN void mwa_report_alloc(struct mw_agent_report *r);
HIDDEN void mwa_report_frees(struct mw_agent_report *r);
HIDDEN long mwa_syscall2(long nr, long a0, long a1);
long mwa_slow(struct mwa_rec *r);

#define SYS_nanosleep 35
#define SYS_clock_gettime 228
#define CLOCK_MONOTONIC 1
#define HEARTBEAT_STALE_NS 20000000ll	/* memwatch bumps it every 5 ms */
#define PROGRESS_STALE_NS 2000000000ll	/* alive but consuming nothing */

typedef uint64_t (*orig_fn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

struct call {
	struct mwa_rec *r;
	const struct mwa_desc *d;
	struct mwa_state *s;
	struct mwa_slot *slot;
	uint64_t size, old;
	bool sampled, old_tracked;
};

static inline uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline bool cas(uint64_t *p, uint64_t from, uint64_t to)
{
	return __atomic_compare_exchange_n(p, &from, to, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

static inline void bump(uint64_t *p)
{
	__atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
}

static inline uint64_t thread_pointer(void)
{
	uint64_t t;

	__asm__ volatile("movq %%fs:0, %0" : "=r"(t));
	return t;
}

static inline uint64_t hash_mul(uint64_t v)
{
	return v * (uint64_t)(int64_t)MWA_HASH_IMM;
}

/* ---- sampling: bpf/capture.h's exp_draw, on a per-thread generator ---- */

static uint32_t rand32(struct mwa_slot *sl)
{
	uint64_t x = sl->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	sl->rng = x;
	return (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 32);
}

static int64_t exp_draw(const struct mwa_state *s, struct mwa_slot *sl)
{
	uint32_t r = rand32(sl);
	uint32_t cell = r >> (32 - MW_EXP_BITS);
	uint64_t frac = r & ((1u << MW_EXP_FRAC_BITS) - 1);
	uint64_t extra = 0;

	if (s->sample_bytes <= 1)
		return 0;
	if (cell == 0) {
		/* u < 1/N: -ln(u) = ln(N) - ln(u') with u' uniform again. */
		extra = s->exp_edges[1];
		r = rand32(sl);
		cell = (r >> (32 - MW_EXP_BITS)) | 1;
		frac = r & ((1u << MW_EXP_FRAC_BITS) - 1);
	}
	uint64_t hi = s->exp_edges[cell & (MW_EXP_SIZE - 1)];
	uint64_t lo = s->exp_edges[(cell & (MW_EXP_SIZE - 1)) + 1];

	return (int64_t)(extra + hi - (((hi - lo) * frac) >> MW_EXP_FRAC_BITS));
}

/* bpf/capture.h's sample_decide, on the thread's countdown. */
static bool decide(const struct mwa_state *s, struct mwa_slot *sl, uint64_t size)
{
	if (s->sample_bytes <= 1)
		return true;
	if (sl->countdown > (int64_t)size) {
		sl->countdown -= size;
		return false;
	}
	return true;
}

/* ---- per-thread slots ---- */

static void slot_init(const struct mwa_state *s, struct mwa_slot *sl, uint64_t tp)
{
	uint64_t tsc_lo, tsc_hi;

	__asm__ volatile("rdtsc" : "=a"(tsc_lo), "=d"(tsc_hi));
	sl->rng = (s->seed ^ tp ^ (tsc_hi << 32 | tsc_lo)) | 1;
	sl->countdown = exp_draw(s, sl);
}

/* The calling thread's slot: its home slot or one of the next few, claimed
 * when free. With none free it takes a slot that is not busy (its owner,
 * likely a thread that exited, claims another when it comes back: a fresh
 * countdown is as good as the old one, the exponential has no memory; the
 * releases it had pending go with the next report of the new owner). */
static struct mwa_slot *slot_of(struct mwa_state *s, const struct mwa_desc *d, uint64_t tp)
{
	struct mwa_slot *slots = (struct mwa_slot *)d->slots;
	uint64_t home = hash_mul(tp) >> (64 - MWA_SLOT_BITS);

	for (int i = 0; i < MWA_SLOT_PROBES; i++) {
		struct mwa_slot *sl = &slots[(home + i) & (MWA_SLOTS - 1)];
		uint64_t owner = load(&sl->owner);
		if ((owner & ~1ull) == tp)
			return sl;
		if (!owner && cas(&sl->owner, 0, tp)) {
			slot_init(s, sl, tp);
			return sl;
		}
	}
	for (int i = 0; i < MWA_SLOT_PROBES; i++) {
		struct mwa_slot *sl = &slots[(home + i) & (MWA_SLOTS - 1)];
		uint64_t owner = load(&sl->owner);
		if (!(owner & 1) && cas(&sl->owner, owner, tp)) {
			slot_init(s, sl, tp);
			return sl;
		}
	}
	bump(&((struct mwa_control *)d->control)->slot_misses);
	return NULL;
}

/* ---- the live set: sampled blocks still allocated, with their tags ---- */

struct live_way {
	uint64_t *addr;
	uint32_t *tag;
};

static uint64_t *bucket_of(const struct mwa_desc *d, uint64_t addr)
{
	return (uint64_t *)(d->live + ((hash_mul(addr) >> MWA_LIVE_SHIFT) & d->live_mask));
}

/* The tags sit after the address buckets, 32 bytes per bucket. */
static uint32_t *tags_of(const struct mwa_desc *d, const uint64_t *bucket)
{
	uint64_t index = ((uint64_t)bucket - d->live) >> 6;
	uint64_t nbuckets = (d->live_mask >> 6) + 1;

	return (uint32_t *)(d->live + nbuckets * 64 + index * 32);
}

static bool live_contains(const struct mwa_desc *d, uint64_t addr)
{
	uint64_t *b = bucket_of(d, addr);

	for (int i = 0; i < MWA_WAYS; i++)
		if (load(&b[i]) == addr)
			return true;
	return false;
}

/* Removes addr; its tag, or 0 if it was not there. */
static uint32_t live_remove(const struct mwa_desc *d, uint64_t addr)
{
	uint64_t *b = bucket_of(d, addr);

	for (int i = 0; i < MWA_WAYS; i++) {
		if (load(&b[i]) != addr)
			continue;
		/* Only the thread releasing the block gets here: the tag is its. */
		uint32_t tag = __atomic_load_n(&tags_of(d, b)[i], __ATOMIC_ACQUIRE);
		if (cas(&b[i], addr, 0))
			return tag;
	}
	return 0;
}

/* Inserts addr with a new tag; the tag, or 0 when its bucket is full. */
static uint32_t live_insert(struct mwa_state *s, const struct mwa_desc *d, uint64_t addr)
{
	uint64_t *b = bucket_of(d, addr);

	for (int i = 0; i < MWA_WAYS; i++) {
		if (load(&b[i]) || !cas(&b[i], 0, addr))
			continue;
		uint32_t tag;
		do
			tag = (uint32_t)__atomic_add_fetch(&s->next_tag, 1, __ATOMIC_RELAXED);
		while (!tag);
		__atomic_store_n(&tags_of(d, b)[i], tag, __ATOMIC_RELEASE);
		return tag;
	}
	return 0;
}

/* ---- the backoff ---- */

static int64_t now_ns(void)
{
	struct { int64_t sec, nsec; } ts = { 0, 0 };

	mwa_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts);
	return ts.sec * 1000000000ll + ts.nsec;
}

static void nap(int64_t ns)
{
	struct { int64_t sec, nsec; } ts = { 0, ns };

	mwa_syscall2(SYS_nanosleep, (long)&ts, 0);
}

/* Waits while the ring may be too full for one more report. False when
 * memwatch is gone (its heartbeat stopped) or stuck (it consumed nothing
 * for 2 s): the call then goes unreported, and no later call waits until
 * memwatch, alive after all, clears `gone`. *wake:
 * the backlog is past half the limit, memwatch should read now. */
static bool room_to_report(struct mwa_control *c, bool *wake)
{
	int64_t t_beat = 0, t_progress = 0, nap_ns = 20000;
	uint64_t beat = 0, consumed = 0;

	if (load(&c->closed) || load(&c->gone))
		return false;
	uint64_t gen = load(&c->generation);
	uint64_t ticket = __atomic_fetch_add(&c->issued, 1, __ATOMIC_ACQ_REL);
	for (bool first = true;; first = false) {
		uint64_t limit = load(&c->limit);
		uint64_t done = load(&c->consumed) + load(&c->abandoned);
		if (!limit || ticket < done + limit) {
			*wake = limit && ticket >= done + limit / 2;
			return true;
		}
		if (load(&c->generation) != gen) {	/* counters reset: a new ticket */
			gen = load(&c->generation);
			ticket = __atomic_fetch_add(&c->issued, 1, __ATOMIC_ACQ_REL);
			continue;
		}
		int64_t now = now_ns();
		if (first) {
			bump(&c->waits);
			t_beat = t_progress = now;
			beat = load(&c->heartbeat);
			consumed = load(&c->consumed);
		}
		if (load(&c->heartbeat) != beat) {
			beat = load(&c->heartbeat);
			t_beat = now;
		}
		if (load(&c->consumed) != consumed) {
			consumed = load(&c->consumed);
			t_progress = now;
		}
		if (load(&c->closed) || now - t_beat > HEARTBEAT_STALE_NS || now - t_progress > PROGRESS_STALE_NS) {
			__atomic_store_n(&c->gone, 1, __ATOMIC_RELEASE);
			bump(&c->abandoned);
			return false;
		}
		nap(nap_ns);
		if (nap_ns < 1000000)
			nap_ns *= 2;
	}
}

/* ---- calls ---- */

/* The original, or for a throwing operator new its nothrow twin (no
 * exception may cross the agent's frames: they have no unwind info). */
static uint64_t call_original(struct call *c, bool through_twin)
{
	const uint64_t *a = c->r->args;
	uint64_t args[6] = { a[0], a[1], a[2], a[3], a[4], a[5] };
	uint64_t target = c->d->tramp;
	uint64_t ret;

	uint64_t tp = thread_pointer();

	if (through_twin) {
		/* A std::nothrow_t is empty: any valid address will do. */
		target = c->d->twin;
		args[c->d->twin_arg] = (uint64_t)c->d;
	}
	/* Busy: the thread's hooked calls inside pass through. CAS, since a
	 * thread that found no slot of its own may take this one. */
	cas(&c->slot->owner, tp, tp | 1);
	ret = ((orig_fn)target)(args[0], args[1], args[2], args[3], args[4], args[5]);
	/* The slot may have been reset (a new memwatch) or taken meanwhile. */
	cas(&c->slot->owner, tp | 1, tp);
	return ret;
}

static void report(struct call *c, void (*fn)(struct mw_agent_report *), uint64_t addr, uint32_t tag,
		   uint32_t flags)
{
	struct mw_agent_report *rep = &c->r->rep;

	rep->entry_ip = c->d->entry;
	rep->addr = addr;
	rep->size = c->size;
	rep->fn = c->d->fn;
	rep->flags = flags | (tag ? MW_REPORT_TRACK : 0);
	rep->tag = tag;
	rep->nfrees = 0;
	rep->frees = 0;
	fn(rep);
}

/* A tracked block is released: its key goes to the control page's ring,
 * for memwatch to drain (or through the kernel when the ring is full). */
static void released(struct call *c, uint64_t addr, uint32_t tag)
{
	struct mwa_control *ctl = (struct mwa_control *)c->d->control;
	struct mwa_release *ring = MWA_RELEASE_RING(ctl);
	uint64_t head = load(&ctl->rel_head);

	bump(&ctl->frees);
	if (load(&ctl->closed))
		return;
	for (;;) {
		if (head - load(&ctl->rel_tail) >= MWA_RELEASES) {
			struct mw_agent_free one = { addr, tag, 0 };
			struct mw_agent_report *rep = &c->r->rep;
			bump(&ctl->rel_full);
			rep->nfrees = 1;
			rep->frees = (uint64_t)&one;
			mwa_report_frees(rep);
			return;
		}
		if (__atomic_compare_exchange_n(&ctl->rel_head, &head, head + 1, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			break;
	}
	struct mwa_release *e = &ring[head % MWA_RELEASES];
	e->addr = addr;
	e->tag = tag;
	__atomic_store_n(&e->lap, (uint32_t)(head / MWA_RELEASES + 1), __ATOMIC_RELEASE);
}

static long slow_free(struct call *c)
{
	uint32_t tag = live_remove(c->d, c->r->args[0]);

	if (tag)
		released(c, c->r->args[0], tag);
	return 0;
}

/* The allocation's size and the block it may release; false when the call
 * allocates nothing (count * size overflows). */
static bool call_args(struct call *c)
{
	const uint64_t *a = c->r->args;

	c->old = 0;
	switch (c->d->layout) {
	case MW_LAYOUT_SIZE0:
		c->size = a[0];
		return true;
	case MW_LAYOUT_SIZE1:
		c->size = a[1];
		return true;
	case MW_LAYOUT_MEMALIGN_OUT:
		c->size = a[2];
		return true;
	case MW_LAYOUT_CALLOC:
		return !__builtin_mul_overflow(a[0], a[1], &c->size);
	case MW_LAYOUT_REALLOC:
	case MW_LAYOUT_XALLOCX:
		c->old = a[0];
		c->size = a[1];
		return true;
	case MW_LAYOUT_REALLOCARRAY:
		c->old = a[0];
		return !__builtin_mul_overflow(a[1], a[2], &c->size);
	default:
		return false;
	}
}

/* Did the call succeed, and where is its block? */
static bool result(struct call *c, uint64_t ret, uint64_t *addr)
{
	*addr = ret;
	switch (c->d->layout) {
	case MW_LAYOUT_MEMALIGN_OUT:
		if ((int)ret != 0)
			return false;
		*addr = *(uint64_t *)c->r->args[0];
		return true;
	case MW_LAYOUT_XALLOCX:
		*addr = c->old;
		return ret >= c->size;
	default:
		return ret != 0;
	}
}

/* A tracked block the call may have released: released on success (a
 * realloc moves or resizes it, an xallocx resizes it in place), and by
 * realloc(p, 0) returning NULL; a failed realloc leaves it as it was. */
static void settle_old(struct call *c, bool ok)
{
	bool gone = ok || (c->d->layout != MW_LAYOUT_XALLOCX && !c->size);
	uint32_t tag = gone ? live_remove(c->d, c->old) : 0;

	if (tag)
		released(c, c->old, tag);
}

static void record(struct call *c, uint64_t addr)
{
	struct mwa_control *ctl = (struct mwa_control *)c->d->control;
	uint32_t tag = 0;
	bool wake = false;

	if (!room_to_report(ctl, &wake)) {
		bump(&ctl->lost);
		return;
	}
	if (!c->s->alloc_only && !(tag = live_insert(c->s, c->d, addr)))
		bump(&ctl->untracked);
	report(c, mwa_report_alloc, addr, tag, wake ? MW_REPORT_WAKE : 0);
	bump(&ctl->samples);
}

static long slow_alloc(struct call *c)
{
	bool wrap = c->d->flags & MWA_F_WRAP, throws = c->d->flags & MWA_F_THROWS;
	uint64_t ret, addr;

	if (!c->slot)
		return 0;
	if (c->slot->owner & 1) {
		c->slot->nested++;
		return 0;
	}
	if (!call_args(c))
		return 0;
	c->sampled = c->r->why == 1 || decide(c->s, c->slot, c->size);
	if (c->sampled)
		c->slot->countdown = exp_draw(c->s, c->slot);
	c->old_tracked = c->old && live_contains(c->d, c->old);
	if (!c->sampled && !c->old_tracked && !wrap)
		return 0;
	ret = call_original(c, throws);
	if (throws && !ret)
		return 0;	/* the throwing original retries, and throws */
	bool ok = result(c, ret, &addr);
	if (c->old_tracked)
		settle_old(c, ok);
	if (c->sampled && ok)
		record(c, addr);
	c->r->ret = ret;
	return 1;
}

long mwa_slow(struct mwa_rec *r)
{
	struct call c = { .r = r, .d = (const struct mwa_desc *)r->desc };

	c.s = (struct mwa_state *)c.d->state;
	if (!load(&c.s->enabled))
		return 0;
	c.slot = slot_of(c.s, c.d, thread_pointer());
	if (c.d->layout == MW_LAYOUT_FREE)
		return slow_free(&c);
	return slow_alloc(&c);
}
