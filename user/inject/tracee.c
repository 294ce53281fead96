#include "inject/tracee.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 64		/* rescans of /proc/PID/task for new threads */
/* The kernel's internal restart codes (include/linux/errno.h). */
#define ERESTARTSYS_ 512
#define ERESTARTNOINTR_ 513
#define ERESTARTNOHAND_ 514
#define ERESTART_RESTARTBLOCK_ 516
#define MAX_STEPS 32
#define STOP_TIMEOUT_NS 2000000000ull

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

const char *tracee_blocker(pid_t pid, char *buf, size_t len)
{
	char path[64], line[256], comm[64] = "?";
	int tracer = 0, seccomp = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "TracerPid: %d", &tracer) == 1 || sscanf(line, "Seccomp: %d", &seccomp) == 1)
			continue;
	fclose(f);
	if (seccomp == 1) {
		snprintf(buf, len, "in seccomp strict mode");
		return buf;
	}
	if (!tracer)
		return NULL;
	snprintf(path, sizeof(path), "/proc/%d/comm", tracer);
	f = fopen(path, "re");
	if (f) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
	}
	snprintf(buf, len, "traced by pid %d (%s)", tracer, comm);
	return buf;
}

static struct held_thread *find(struct tracee *t, pid_t tid)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->t[i].tid == tid)
			return &t->t[i];
	return NULL;
}

static int add(struct tracee *t, pid_t tid)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		struct held_thread *v = realloc(t->t, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->t = v;
		t->cap = cap;
	}
	t->t[t->n++] = (struct held_thread){ .tid = tid };
	return 0;
}

static void drop(struct tracee *t, size_t i)
{
	t->t[i] = t->t[--t->n];
}

/* waitpid for one thread, giving up after STOP_TIMEOUT_NS: a thread in
 * uninterruptible sleep must not hang memwatch (nor hold the others). */
static pid_t wait_for(pid_t tid, int *status)
{
	uint64_t deadline = now_ns() + STOP_TIMEOUT_NS;
	struct timespec nap = { 0, 0 };

	for (;;) {
		pid_t r = waitpid(tid, status, __WALL | WNOHANG);
		if (r != 0 && !(r < 0 && errno == EINTR))
			return r;
		if (now_ns() > deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		nanosleep(&nap, NULL);
		nap.tv_nsec = nap.tv_nsec ? (nap.tv_nsec < 1000000 ? 2 * nap.tv_nsec : nap.tv_nsec) : 20000;
	}
}

/* Waits for thread tid to stop. A signal it was about to take is kept for
 * its release. 0, -ESRCH if it is gone, -ETIMEDOUT. */
static int wait_stop(struct held_thread *h, bool want_step)
{
	for (;;) {
		int status;
		pid_t r = wait_for(h->tid, &status);
		if (r < 0 && errno == ETIMEDOUT)
			return -ETIMEDOUT;
		if (r < 0 || WIFEXITED(status) || WIFSIGNALED(status))
			return -ESRCH;
		if (!WIFSTOPPED(status))
			continue;
		int sig = WSTOPSIG(status), event = status >> 16;
		if (event)
			return 0;	/* the interrupt, or a group stop */
		if (!want_step) {
			h->pending_sig = sig;	/* a signal-delivery stop */
			return 0;
		}
		if (sig == SIGTRAP) {
			siginfo_t si;
			if (!ptrace(PTRACE_GETSIGINFO, h->tid, 0, &si) && si.si_code == TRAP_TRACE)
				return 0;
		}
		/* A signal arrived instead of the step: keep it, step again. */
		if (sig != SIGTRAP && sig != SIGSTOP)
			h->pending_sig = sig;
		if (ptrace(PTRACE_SINGLESTEP, h->tid, 0, 0))
			return -ESRCH;
	}
}

/* Seizes and interrupts the threads listed now that are not held yet, up
 * to max of them in all. Returns how many were new, or -errno. */
static int seize_new(struct tracee *t, size_t max)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int fresh = 0, err = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)t->pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while (t->n < max && (de = readdir(d))) {
		pid_t tid = atoi(de->d_name);
		if (tid <= 0 || find(t, tid))
			continue;
		if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD)) {
			if (errno == ESRCH)
				continue;	/* exited meanwhile */
			err = -errno;
			break;
		}
		ptrace(PTRACE_INTERRUPT, tid, 0, 0);
		if (add(t, tid)) {
			ptrace(PTRACE_DETACH, tid, 0, 0);
			err = -ENOMEM;
			break;
		}
		fresh++;
	}
	closedir(d);
	return err ? err : fresh;
}

static int stop_new(struct tracee *t, size_t from)
{
	for (size_t i = from; i < t->n;) {
		struct held_thread *h = &t->t[i];
		int err = wait_stop(h, false);
		if (err == -ETIMEDOUT)
			return err;
		if (err || ptrace(PTRACE_GETREGS, h->tid, 0, &h->regs)) {
			ptrace(PTRACE_DETACH, h->tid, 0, 0);
			drop(t, i);	/* exited */
			continue;
		}
		i++;
	}
	return 0;
}

/* Runs the calling thread ahead of the target's until sched_restore:
 * SCHED_FIFO at the lowest real-time priority (the kernel's real-time
 * throttling still leaves others 5% of each CPU). Silently unchanged where
 * refused (no CAP_SYS_NICE, a cgroup without real-time runtime). */
static void sched_raise(struct tracee *t)
{
	struct sched_param sp;
	struct sched_param fifo = { .sched_priority = sched_get_priority_min(SCHED_FIFO) };

	t->sched_policy = -1;
	int policy = sched_getscheduler(0);
	if (policy < 0 || policy == SCHED_FIFO || policy == SCHED_RR || sched_getparam(0, &sp))
		return;
	if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &fifo))
		return;
	t->sched_policy = policy;
	t->sched_priority = sp.sched_priority;
}

static void sched_restore(struct tracee *t)
{
	struct sched_param sp = { .sched_priority = t->sched_priority };

	if (t->sched_policy >= 0)
		sched_setscheduler(0, t->sched_policy, &sp);
	t->sched_policy = -1;
}

int tracee_hold(struct tracee *t, pid_t pid, bool all)
{
	char path[64];
	int err = 0;

	memset(t, 0, sizeof(*t));
	t->mem_fd = -1;
	t->pid = pid;
	sched_raise(t);
	t->start_ns = now_ns();
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	t->mem_fd = open(path, O_RDWR | O_CLOEXEC);
	if (t->mem_fd < 0) {
		err = -errno;
		sched_restore(t);
		return err;
	}
	/* Threads started by a thread not yet stopped appear in the next scan;
	 * once every thread is stopped, none can start. */
	for (int round = 0; round < MAX_ROUNDS; round++) {
		size_t before = t->n;
		int fresh = seize_new(t, all ? SIZE_MAX : 1);
		if (fresh < 0) {
			err = fresh;
			break;
		}
		err = stop_new(t, before);
		if (err || !fresh)
			break;
	}
	if (!err && !t->n)
		err = -ESRCH;
	if (err) {
		tracee_release(t);
		return err;
	}
	t->held_ns = now_ns();
	return 0;
}

void tracee_release(struct tracee *t)
{
	for (size_t i = 0; i < t->n; i++)
		ptrace(PTRACE_DETACH, t->t[i].tid, 0, (void *)(long)t->t[i].pending_sig);
	t->released_ns = now_ns();
	if (t->mem_fd >= 0)
		close(t->mem_fd);
	free(t->t);
	t->t = NULL;
	t->n = t->cap = 0;
	t->mem_fd = -1;
	sched_restore(t);
}

static int step(struct held_thread *h)
{
	if (ptrace(PTRACE_SINGLESTEP, h->tid, 0, 0))
		return -errno;
	return wait_stop(h, true);
}

/* Resumes the thread to its next system call stop (entry or exit). */
static int to_syscall_stop(struct held_thread *h)
{
	for (int tries = 0; tries < MAX_STEPS; tries++) {
		int status;
		if (ptrace(PTRACE_SYSCALL, h->tid, 0, 0))
			return -errno;
		pid_t r = wait_for(h->tid, &status);
		if (r < 0 || WIFEXITED(status) || WIFSIGNALED(status))
			return r < 0 && errno == ETIMEDOUT ? -ETIMEDOUT : -ESRCH;
		if (!WIFSTOPPED(status))
			continue;
		int sig = WSTOPSIG(status);
		if (sig == (SIGTRAP | 0x80))
			return 0;
		if (!(status >> 16) && sig != SIGTRAP)
			h->pending_sig = sig;	/* delivered on release */
	}
	return -EIO;
}

/* The registers to give the thread back. A thread stopped inside an
 * interrupted system call would have the kernel restart it on the way out;
 * after ours ran in its place, the restart is done here instead. */
static struct user_regs_struct restart_adjusted(struct user_regs_struct r)
{
	long ret = (long)r.rax;

	if ((long)r.orig_rax < 0)
		return r;
	if (ret == -ERESTARTSYS_ || ret == -ERESTARTNOINTR_ || ret == -ERESTARTNOHAND_) {
		r.rax = r.orig_rax;
		r.rip -= 2;
	} else if (ret == -ERESTART_RESTARTBLOCK_) {
		r.rax = SYS_restart_syscall;
		r.rip -= 2;
	} else {
		return r;
	}
	r.orig_rax = -1;
	return r;
}

int tracee_syscall(struct tracee *t, size_t i, uint64_t insn, long nr, const long args[6], long *ret)
{
	struct held_thread *h = &t->t[i];
	struct user_regs_struct regs = h->regs;
	int err;

	h->regs = restart_adjusted(h->regs);
	regs.rip = insn;
	regs.rax = nr;
	regs.orig_rax = -1;	/* no restart on the way in: this call is ours */
	regs.rdi = args[0];
	regs.rsi = args[1];
	regs.rdx = args[2];
	regs.r10 = args[3];
	regs.r8 = args[4];
	regs.r9 = args[5];
	if (ptrace(PTRACE_SETREGS, h->tid, 0, &regs))
		return -errno;
	err = to_syscall_stop(h);	/* entry */
	if (!err)
		err = to_syscall_stop(h);	/* exit */
	if (!err && ptrace(PTRACE_GETREGS, h->tid, 0, &regs))
		err = -errno;
	if (!err && regs.rip != insn + 2)
		err = -EIO;
	*ret = (long)regs.rax;
	if (ptrace(PTRACE_SETREGS, h->tid, 0, &h->regs) && !err)
		err = -errno;
	return err;
}

int tracee_step_out(struct tracee *t, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i < t->n; i++) {
		struct held_thread *h = &t->t[i];
		for (int s = 0; h->regs.rip > lo && h->regs.rip < hi; s++) {
			if (s == MAX_STEPS)
				return -EBUSY;
			int err = step(h);
			if (!err && ptrace(PTRACE_GETREGS, h->tid, 0, &h->regs))
				err = -errno;
			if (err)
				return err;
		}
	}
	return 0;
}

static int full_io(int fd, uint64_t addr, void *buf, size_t len, bool write)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write ? pwrite(fd, (char *)buf + done, len - done, (off_t)(addr + done))
				  : pread(fd, (char *)buf + done, len - done, (off_t)(addr + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += n;
	}
	return 0;
}

int tracee_read(struct tracee *t, uint64_t addr, void *buf, size_t len)
{
	return full_io(t->mem_fd, addr, buf, len, false);
}

int tracee_write(struct tracee *t, uint64_t addr, const void *buf, size_t len)
{
	return full_io(t->mem_fd, addr, (void *)buf, len, true);
}

static int proc_mem_io(pid_t pid, uint64_t addr, void *buf, size_t len, bool write)
{
	char path[64];
	int fd, err;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = full_io(fd, addr, buf, len, write);
	close(fd);
	return err;
}

int proc_mem_read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	return proc_mem_io(pid, addr, buf, len, false);
}

int proc_mem_write(pid_t pid, uint64_t addr, const void *buf, size_t len)
{
	return proc_mem_io(pid, addr, (void *)buf, len, true);
}
