/*
 * A process that forks children which allocate: the children are copies of
 * a profiled parent, breakpoints included.
 *   --wait        print "ready PID", wait for SIGUSR1 before forking
 *   (default)     fork one child, which makes one malloc+free pair, prints
 *                 "child PID" and waits for SIGTERM; the parent makes
 *                 allocations until the child is gone, then exits 0
 *   --seconds S   instead, fork children for S seconds, each making
 *                 --mallocs K malloc+free pairs (default 10000) and exiting;
 *                 print "forks=N" (the benchmark tools/bench-fork.sh runs)
 */
#define _GNU_SOURCE
#include <sys/wait.h>
#include <time.h>

#include "common.h"

NOINLINE void fork_pairs(long n)
{
	for (long i = 0; i < n; i++) {
		void *p = malloc(64 + (i & 63));
		KEEP(p);
		free(p);
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fork_for(double seconds, long mallocs)
{
	double end = now_s() + seconds;
	long forks = 0;

	while (now_s() < end) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			fork_pairs(mallocs);
			_exit(0);
		}
		if (waitpid(pid, NULL, 0) != pid)
			return 1;
		forks++;
	}
	printf("forks=%ld\n", forks);
	return 0;
}

static int fork_one(void)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		fork_pairs(1);
		printf("child %d\n", (int)getpid());
		fflush(stdout);
		for (;;)
			pause();
	}
	while (waitpid(pid, &status, WNOHANG) == 0) {
		fork_pairs(1000);
		usleep(1000);
	}
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *seconds = flag_value(argc, argv, "--seconds"), *mallocs = flag_value(argc, argv, "--mallocs");

	if (has_flag(argc, argv, "--wait"))
		wait_for_go();
	if (seconds)
		return fork_for(atof(seconds), mallocs ? atol(mallocs) : 10000);
	return fork_one();
}
