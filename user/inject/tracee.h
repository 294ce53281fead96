/* A target held still with ptrace: some or all of its threads seized and
 * stopped (PTRACE_SEIZE + PTRACE_INTERRUPT, so nothing is reported to its
 * parent), system calls run in one of them, threads stepped out of code
 * about to change, then every thread let go as it was. Signals that arrive
 * meanwhile are delivered when the thread is released. */
#ifndef MW_TRACEE_H
#define MW_TRACEE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct held_thread {
	pid_t tid;
	int pending_sig;	/* to deliver on release */
	struct user_regs_struct regs;	/* as stopped */
};

struct tracee {
	pid_t pid;
	struct held_thread *t;
	size_t n, cap;
	int mem_fd;		/* /proc/PID/mem */
	/* CLOCK_MONOTONIC: first seize, all stopped, all let go */
	uint64_t start_ns, held_ns, released_ns;
	int sched_policy;	/* the holding thread's, restored on release (-1: unchanged) */
	int sched_priority;
};

/* Why ptrace cannot be used on pid, in buf ("traced by pid 123 (gdb)",
 * "ptrace refused: ..."), or NULL if it looks possible. */
const char *tracee_blocker(pid_t pid, char *buf, size_t len);

/* Stops pid's main thread (all: every thread, until no new one appears).
 * The calling thread runs SCHED_FIFO until the release where it may: the
 * target's threads wait on it, and a busy target (100 runnable threads on
 * 2 CPUs) would otherwise keep it off the CPU for tens of milliseconds.
 * 0 or -errno; on failure nothing stays held. */
int tracee_hold(struct tracee *t, pid_t pid, bool all);
/* Lets every held thread go, registers as they were. */
void tracee_release(struct tracee *t);

/* Runs system call nr in held thread i; its registers are restored after.
 * insn: the address of a `syscall` instruction in the target. 0 with *ret
 * (the raw return value), or -errno if the thread could not run it. */
int tracee_syscall(struct tracee *t, size_t i, uint64_t insn, long nr, const long args[6], long *ret);
/* Single-steps every held thread whose rip is in (lo, hi) until it is not
 * (at most 32 steps each). 0 or -errno. */
int tracee_step_out(struct tracee *t, uint64_t lo, uint64_t hi);

int tracee_read(struct tracee *t, uint64_t addr, void *buf, size_t len);
int tracee_write(struct tracee *t, uint64_t addr, const void *buf, size_t len);
/* The same without holding anything: /proc/PID/mem. */
int proc_mem_read(pid_t pid, uint64_t addr, void *buf, size_t len);
int proc_mem_write(pid_t pid, uint64_t addr, const void *buf, size_t len);

#endif
