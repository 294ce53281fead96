#include "inject/instance.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/agent_syms.h"
#include "proc/procmaps.h"
#include "util/sampling.h"
#include "inject/seccomp.h"
#include "inject/tracee.h"

extern const uint8_t mw_agent_blob[], mw_agent_blob_end[];

#define GUARD (64 << 10)	/* free space kept around an instance */
#define REACH ((1ull << 31) - (1ull << 20))
#define USER_TOP 0x7ffffffff000ull
#define USER_BOTTOM 0x10000ull

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 1
#endif
#define PR_SET_VMA_ 0x53564d41
#define PR_SET_VMA_ANON_NAME_ 0

static uint64_t page_up(uint64_t v)
{
	return (v + MWA_PAGE - 1) & ~(uint64_t)(MWA_PAGE - 1);
}

uint64_t agent_build(void)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const uint8_t *p = mw_agent_blob; p < mw_agent_blob_end; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return h;
}

uint64_t agent_live_buckets(uint32_t max_live)
{
	uint64_t want = max_live / 8, n = 512;

	while (n < want && n < (1u << 20))
		n <<= 1;
	return n;
}

static uint64_t image_bytes(void)
{
	return SYM_mwa_blob_end + MWA_PATCH_BYTES;
}

_Static_assert(MWA_HEADER_OFF + MWA_HEADER_BYTES <= 0x3000, "the header fits before the code (agent.lds)");

static uint64_t state_bytes(uint64_t buckets)
{
	return page_up(MWA_LIVE_OFF + MWA_LIVE_BYTES(buckets));
}

uint64_t instance_span(uint64_t live_buckets)
{
	return image_bytes() + MWA_CONTROL_BYTES + state_bytes(live_buckets);
}

static void layout(struct instance *in, uint64_t base, uint64_t buckets)
{
	in->base = base;
	in->image_bytes = image_bytes();
	in->control_off = in->image_bytes;
	in->state_off = in->image_bytes + MWA_CONTROL_BYTES;
	in->live_buckets = buckets;
	in->state_bytes = state_bytes(buckets);
}

uint64_t instance_state(const struct instance *in)
{
	return in->base + in->state_off;
}

uint64_t instance_slots(const struct instance *in)
{
	return instance_state(in) + MWA_SLOTS_OFF;
}

uint64_t instance_live(const struct instance *in)
{
	return instance_state(in) + MWA_LIVE_OFF;
}

uint64_t instance_sym(const struct instance *in, uint64_t sym_off)
{
	return in->base + sym_off;
}

uint64_t instance_patch_area(const struct instance *in)
{
	return in->base + SYM_mwa_blob_end;
}

bool instance_reaches(const struct instance *in, uint64_t lo, uint64_t hi)
{
	uint64_t end = in->base + instance_span(in->live_buckets);
	uint64_t far = hi > in->base ? hi - in->base : 0;

	if (end > lo && end - lo > far)
		far = end - lo;
	return far < REACH;
}

/* ---- finding ---- */

uint64_t find_syscall_insn(pid_t pid, const struct maps *maps)
{
	static const uint8_t insn[] = { 0x0f, 0x05 };
	uint8_t buf[65536];

	/* libc first: its text is full of them. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < maps->n; i++) {
			const struct mapping *m = &maps->v[i];
			if (!m->executable || !m->path[0] || (pass == 0) != !!strstr(m->path, "libc"))
				continue;
			for (uint64_t at = m->start; at < m->end && at < m->start + (4u << 20); at += sizeof(buf) - 1) {
				size_t len = m->end - at < sizeof(buf) ? m->end - at : sizeof(buf);
				if (proc_mem_read(pid, at, buf, len))
					break;
				const uint8_t *p = memmem(buf, len, insn, sizeof(insn));
				if (p)
					return at + (p - buf);
			}
		}
	}
	return 0;
}

size_t instance_find_all(pid_t pid, const struct maps *maps, struct instance *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < maps->n && n < max; i++) {
		const struct mapping *m = &maps->v[i];
		struct instance *in = &out[n];
		if (m->offset || !strstr(m->path, "memfd:" AGENT_NAME))
			continue;
		memset(in, 0, sizeof(*in));
		if (proc_mem_read(pid, m->start + MWA_HEADER_OFF, &in->hdr, sizeof(in->hdr)) || in->hdr.magic != MWA_MAGIC ||
		    in->hdr.version != MWA_HEADER_VERSION || in->hdr.base != m->start)
			continue;
		in->base = m->start;
		in->image_bytes = in->hdr.image_bytes;
		in->control_off = in->hdr.control_off;
		in->state_off = in->hdr.state_off;
		in->state_bytes = in->hdr.state_bytes;
		in->live_buckets = in->hdr.live_buckets;
		in->control = in->hdr.control;
		in->reused = true;
		n++;
	}
	return n;
}

/* ---- placing ---- */

static uint64_t distance(uint64_t base, uint64_t span, uint64_t lo, uint64_t hi)
{
	return base + span <= lo ? hi - base : base + span - lo;
}

/* The free spot nearest to [lo, hi) that fits span bytes with guards, or
 * 0. Above the module only where no heap grows: not right after [heap]
 * or after the module's own last mapping (an executable's brk area). */
static uint64_t find_gap(const struct maps *maps, uint64_t lo, uint64_t hi, uint64_t span)
{
	uint64_t best = 0, best_dist = UINT64_MAX;

	for (size_t i = 0; i <= maps->n; i++) {
		uint64_t g0 = i ? maps->v[i - 1].end : USER_BOTTOM;
		uint64_t g1 = i < maps->n ? maps->v[i].start : USER_TOP;
		uint64_t base;
		if (g1 <= g0 || g1 - g0 < span + 2 * GUARD)
			continue;
		if (g1 <= lo) {
			base = (g1 - GUARD - span) & ~(uint64_t)(MWA_PAGE - 1);
		} else if (g0 >= hi) {
			const struct mapping *prev = i ? &maps->v[i - 1] : NULL;
			if (prev && (!strcmp(prev->path, "[heap]") || prev->end == hi))
				continue;
			base = page_up(g0 + GUARD);
		} else {
			continue;
		}
		uint64_t d = distance(base, span, lo, hi);
		if (d < REACH && d < best_dist) {
			best = base;
			best_dist = d;
		}
	}
	return best;
}

/* ---- creating ---- */

struct injector {
	struct tracee *t;
	uint64_t insn;
	uint64_t scratch;	/* below the held thread's red zone */
};

/* Runs a system call in the held thread, unless its seccomp filters would
 * refuse it (an injected call a filter kills would kill the target). */
static long inject(struct injector *j, long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
	const long args[6] = { a0, a1, a2, a3, a4, a5 };
	uint64_t uargs[1][6] = { { a0, a1, a2, a3, a4, a5 } };
	int nrs[1] = { (int)nr }, refused;
	long ret;
	int err = seccomp_allows(j->t->t[0].tid, nrs, uargs, 1, j->insn, &refused);

	if (err)
		return err == -EPERM ? -EACCES : err;
	err = tracee_syscall(j->t, 0, j->insn, nr, args, &ret);
	return err ? err : ret;
}

static int open_target_fd(pid_t pid, long fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/fd/%ld", (int)pid, fd);
	return open(path, O_RDWR | O_CLOEXEC);
}

/* A memfd in the target, of len bytes, data written at off. Returns the
 * target's fd or -errno. */
static long target_memfd(struct injector *j, const char *name, uint64_t len, const void *data, size_t data_len,
			 uint64_t off)
{
	long fd;
	int ours, err = 0;

	if (tracee_write(j->t, j->scratch, name, strlen(name) + 1))
		return -EFAULT;
	fd = inject(j, SYS_memfd_create, (long)j->scratch, MFD_CLOEXEC, 0, 0, 0, 0);
	if (fd < 0)
		return fd;
	ours = open_target_fd(j->t->pid, fd);
	if (ours < 0)
		err = -errno;
	else if (ftruncate(ours, (off_t)(len > off + data_len ? len : off + data_len)) ||
		 (data_len && pwrite(ours, data, data_len, (off_t)off) != (ssize_t)data_len))
		err = -errno;
	if (ours >= 0)
		close(ours);
	if (err) {
		inject(j, SYS_close, fd, 0, 0, 0, 0, 0);
		return err;
	}
	return fd;
}

static long map_at(struct injector *j, uint64_t addr, uint64_t len, int prot, int flags, long fd)
{
	long r = inject(j, SYS_mmap, (long)addr, (long)len, prot, flags | MAP_FIXED_NOREPLACE, fd, 0);

	if (r < 0)
		return r;
	if ((uint64_t)r != addr) {	/* a kernel without MAP_FIXED_NOREPLACE took it as a hint */
		inject(j, SYS_munmap, r, (long)len, 0, 0, 0, 0);
		return -EEXIST;
	}
	return 0;
}

static int map_instance(struct injector *j, struct instance *in, long fd, bool with_control)
{
	long err = map_at(j, in->base, in->image_bytes, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd);

	if (err)
		return (int)err;
	err = map_at(j, instance_state(in), in->state_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	if (!err)
		err = inject(j, SYS_madvise, (long)instance_state(in), (long)in->state_bytes, MADV_WIPEONFORK, 0, 0, 0);
	if (!err && with_control)
		err = instance_new_control(j->t, j->insn, in->base + in->control_off);
	if (err) {
		inject(j, SYS_munmap, (long)in->base, (long)(in->state_off + in->state_bytes), 0, 0, 0, 0);
		return (int)err;
	}
	/* "[anon:memwatch-state]" in /proc/PID/maps where the kernel names
	 * anonymous mappings; nothing depends on it. */
	if (!tracee_write(j->t, j->scratch, "memwatch-state", 15))
		inject(j, SYS_prctl, PR_SET_VMA_, PR_SET_VMA_ANON_NAME_, (long)instance_state(in), (long)in->state_bytes,
		       (long)j->scratch, 0);
	return 0;
}

static int setup_injector(struct injector *j, struct tracee *t, uint64_t insn)
{
	j->t = t;
	j->insn = insn;
	/* Under the held thread's stack pointer, past its red zone. */
	j->scratch = (t->t[0].regs.rsp - 512) & ~15ull;
	return insn ? 0 : -ENOEXEC;
}

int instance_new_control(struct tracee *t, uint64_t syscall_insn, uint64_t addr)
{
	struct injector j;
	long fd, err;

	if (setup_injector(&j, t, syscall_insn))
		return -ENOEXEC;
	fd = target_memfd(&j, CONTROL_NAME, MWA_CONTROL_BYTES, NULL, 0, 0);
	if (fd < 0)
		return (int)fd;
	/* A forked child has a hole there (MADV_DONTFORK), nothing else. */
	err = map_at(&j, addr, MWA_CONTROL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
	if (!err)
		err = inject(&j, SYS_madvise, (long)addr, MWA_CONTROL_BYTES, MADV_DONTFORK, 0, 0, 0);
	inject(&j, SYS_close, fd, 0, 0, 0, 0, 0);
	return (int)err;
}

int instance_create(struct tracee *t, uint64_t syscall_insn, const struct maps *maps, uint64_t lo, uint64_t hi,
		    uint64_t live_buckets, uint64_t control, struct instance *out, char *why, size_t why_len)
{
	struct injector j;
	uint64_t span = instance_span(live_buckets), base;
	long fd;
	int err;

	memset(out, 0, sizeof(*out));
	if (setup_injector(&j, t, syscall_insn)) {
		snprintf(why, why_len, "no syscall instruction found in the target's code");
		return -ENOEXEC;
	}
	base = find_gap(maps, lo, hi, span);
	if (!base) {
		snprintf(why, why_len, "no free address range within 2 GiB of the allocator");
		return -ENOMEM;
	}
	layout(out, base, live_buckets);
	fd = target_memfd(&j, AGENT_NAME, out->image_bytes, mw_agent_blob, mw_agent_blob_end - mw_agent_blob, 0);
	if (fd < 0) {
		snprintf(why, why_len, "memfd_create in the target failed: %s", strerror((int)-fd));
		return (int)fd;
	}
	err = map_instance(&j, out, fd, !control);
	inject(&j, SYS_close, fd, 0, 0, 0, 0, 0);
	if (err) {
		snprintf(why, why_len, "mapping the agent at 0x%llx failed: %s", (unsigned long long)base, strerror(-err));
		return err;
	}
	out->control = control ? control : base + out->control_off;
	return 0;
}

struct mwa_control *control_map(pid_t pid, uint64_t addr)
{
	char path[96];
	void *p;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid, (unsigned long long)addr,
		 (unsigned long long)(addr + MWA_CONTROL_BYTES));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	p = mmap(NULL, MWA_CONTROL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

void control_unmap(struct mwa_control *c)
{
	if (c)
		munmap(c, MWA_CONTROL_BYTES);
}

/* ---- state ---- */

int instance_reset(struct tracee *t, uint64_t syscall_insn, const struct instance *in)
{
	struct injector j;
	long err;

	if (setup_injector(&j, t, syscall_insn))
		return -ENOEXEC;
	err = inject(&j, SYS_madvise, (long)instance_slots(in), (long)(in->state_bytes - MWA_SLOTS_OFF), MADV_DONTNEED,
		     0, 0, 0);
	return (int)err;
}

int instance_configure(pid_t pid, const struct instance *in, uint64_t sample_bytes, bool alloc_only)
{
	struct mwa_state *s = calloc(1, sizeof(*s));
	uint64_t seed = 0;
	int err;

	if (!s)
		return -ENOMEM;
	if (getentropy(&seed, sizeof(seed)))
		seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
	exp_edges_fill(s->exp_edges, MW_EXP_CELLS, sample_bytes);
	s->sample_bytes = sample_bytes;
	s->seed = seed;
	s->alloc_only = alloc_only;
	err = proc_mem_write(pid, instance_state(in), s, sizeof(*s));
	if (!err) {
		uint64_t on = 1;
		err = proc_mem_write(pid, instance_state(in) + offsetof(struct mwa_state, enabled), &on, sizeof(on));
	}
	free(s);
	return err;
}

int instance_write_header(pid_t pid, const struct instance *in)
{
	struct mwa_header h = in->hdr;

	h.magic = MWA_MAGIC;
	h.version = MWA_HEADER_VERSION;
	h.header_bytes = sizeof(h);
	h.build = agent_build();
	h.base = in->base;
	h.image_bytes = in->image_bytes;
	h.control_off = in->control_off;
	h.state_off = in->state_off;
	h.state_bytes = in->state_bytes;
	h.control = in->control;
	h.live_buckets = in->live_buckets;
	h.report_off = SYM_mwa_report_page;
	h.patch_off = SYM_mwa_blob_end;
	return proc_mem_write(pid, in->base + MWA_HEADER_OFF, &h, sizeof(h));
}
