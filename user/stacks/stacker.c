#include "stacks/stacker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proc/process.h"
#include "stacks/stacks.h"

static const char *const stack_modes[] = { [STACK_AUTO] = "auto", [STACK_DWARF] = "dwarf", [STACK_FP] = "fp" };

const char *stack_mode_name(enum stack_mode mode)
{
	return (unsigned)mode < sizeof(stack_modes) / sizeof(stack_modes[0]) ? stack_modes[mode] : "?";
}

int stack_mode_parse(const char *name, enum stack_mode *out)
{
	for (size_t i = 0; i < sizeof(stack_modes) / sizeof(stack_modes[0]); i++) {
		if (!strcmp(name, stack_modes[i])) {
			*out = (enum stack_mode)i;
			return 0;
		}
	}
	return -1;
}

#define TIME_EVERY 64

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int stacker_init(struct stacker *sk, enum stack_mode mode, uint32_t stack_bytes)
{
	memset(sk, 0, sizeof(*sk));
	sk->mode = mode;
	sk->stack_bytes = stack_bytes;
	fpcheck_init(&sk->fpc);
	sk->unw = unwinder_new();
	if (!sk->unw)
		return -ENOMEM;
	unwinder_set_strict(sk->unw, mode == STACK_DWARF);
	return 0;
}

void stacker_free(struct stacker *sk)
{
	unwinder_free(sk->unw);
	fpcheck_free(&sk->fpc);
	memset(sk, 0, sizeof(*sk));
}

void stacker_forget(struct stacker *sk, pid_t pid)
{
	if (sk->unw)
		unwinder_forget(sk->unw, pid);
}

/* The capture's frames, leaf first, and why they stop short (NULL: they
 * reach the outermost frame). */
static uint32_t capture_frames(struct stacker *sk, struct procs *ps, struct process *p, const struct mw_capture *cap,
			       const uint8_t *data, size_t len, const uint64_t **frames, const char **why)
{
	if (cap->mode == MW_STACK_FP) {
		uint32_t n = cap->nframes;
		if (n > len / sizeof(uint64_t))
			n = len / sizeof(uint64_t);
		*frames = (const uint64_t *)data;
		uint32_t kept = fpcheck_trusted(&sk->fpc, ps, p, *frames, n, why);
		sk->fp_truncated += *why != NULL;
		return kept;
	}
	size_t stack_len = cap->stack_len < len ? cap->stack_len : len;
	unwinder_set_returns(sk->unw, (const uint64_t *)cap->uret_slot, (const uint64_t *)cap->uret_orig,
			     cap->nuret < MW_URET_MAX ? cap->nuret : MW_URET_MAX);
	unwind_stack(sk->unw, ps, p, (const uint64_t *)cap->regs, data, stack_len, &sk->unwound);
	*frames = sk->unwound.pcs;
	*why = sk->unwound.truncated;
	return sk->unwound.n;
}

uint32_t stacker_intern(struct stacker *sk, struct stacks *st, struct procs *ps, struct process *p,
			const struct mw_capture *cap, const uint8_t *data, size_t len)
{
	/* A thread CPU clock read is a system call (2-3 us in a VM, more than
	 * a cached unwind): the first TIME_EVERY stacks are timed (the cold
	 * ones, that load modules), then one in TIME_EVERY. */
	bool timed = sk->stacks < TIME_EVERY || sk->stacks % TIME_EVERY == 0;
	uint64_t start = timed ? thread_cpu_ns() : 0;
	bool first = sk->stacks++ < TIME_EVERY;
	const uint64_t *frames;
	const char *why;

	uint32_t n = capture_frames(sk, ps, p, cap, data, len, &frames, &why);
	uint32_t stack = stacks_intern(st, ps, p, frames, n, why);
	if (first) {
		sk->first_ns += thread_cpu_ns() - start;
	} else if (timed) {
		sk->timed++;
		sk->timed_ns += thread_cpu_ns() - start;
	}
	return stack;
}

uint64_t stacker_cpu_ns(const struct stacker *sk)
{
	uint64_t rest = sk->stacks > TIME_EVERY ? sk->stacks - TIME_EVERY : 0;

	return sk->first_ns + (sk->timed ? (uint64_t)((double)sk->timed_ns / sk->timed * rest) : 0);
}

void stacker_describe(const struct stacker *sk, char *buf, size_t len)
{
	struct unwind_stats us;

	if (sk->mode == STACK_FP) {
		snprintf(buf, len, "stacks: fp (kernel frame-pointer walk, caller from [sp]); %" PRIu64 " stacks, %" PRIu64
				   " cut where a function keeps no frame pointer", sk->stacks, sk->fp_truncated);
		return;
	}
	unwinder_stats(sk->unw, &us);
	snprintf(buf, len, "stacks: %s (CFI unwinding of %u-byte stack snapshots%s); %" PRIu64 " stacks, %" PRIu64
			   " truncated: %" PRIu64 " snapshot too small, %" PRIu64 " other; %" PRIu64
			   " by cached rules, %" PRIu64 " by libdwfl",
		 stack_mode_name(sk->mode), sk->stack_bytes,
		 sk->mode == STACK_AUTO ? ", frame pointers where a module has no CFI" : "", sk->stacks,
		 us.truncated_snapshot + us.truncated_other, us.truncated_snapshot, us.truncated_other, us.fast_stacks,
		 us.slow_stacks);
}
