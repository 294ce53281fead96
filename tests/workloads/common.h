/* Helpers shared by the test workloads. */
#ifndef WORKLOAD_COMMON_H
#define WORKLOAD_COMMON_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Keeps the optimizer from deleting allocations whose result is unused. */
#define KEEP(p) __asm__ volatile("" ::"r"(p) : "memory")
#define NOINLINE __attribute__((noinline))

/* --wait: announce the pid, then block until SIGUSR1 so a profiler can attach. */
static inline void wait_for_go(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	sigwait(&set, &sig);
}

static inline int has_flag(int argc, char **argv, const char *flag)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], flag))
			return 1;
	return 0;
}

static inline const char *flag_value(int argc, char **argv, const char *flag)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], flag))
			return argv[i + 1];
	return NULL;
}

#endif
