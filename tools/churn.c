// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * churn: a malloc/free loop for the probe-cost benchmark (tools/bench.sh).
 *
 *   churn [--pairs N] [--size BYTES] [--threads T] [--work K] [--wait]
 *
 * Each of T threads (default 1) does N malloc+free pairs (default 2,000,000)
 * of BYTES bytes (default 64). Only the loop is timed, with
 * clock_gettime(CLOCK_MONOTONIC); the program prints one line
 *
 *   ns_per_pair=<float>
 *
 * the mean over threads of (thread's loop time / N): what one malloc+free
 * pair costs the thread that makes it, then
 *
 *   user_s=<float> sys_s=<float>
 *
 * the process's CPU time (getrusage): where the time went, whatever else ran
 * on the machine (the probes' traps count as system time).
 *
 * With --wait it first prints "ready <pid>" (flushed) and blocks in sigwait
 * until SIGUSR1 arrives, so that a profiler can attach with -p PID before
 * the loop starts. Exits 0 on success, 1 on a failed allocation or thread,
 * 2 on bad usage.
 *
 * Build: gcc -O2 -g -pthread tools/churn.c -o .output/churn (no frame-pointer
 * flags: it stands for an ordinary Debian-built binary).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static unsigned long long opt_pairs = 2000000;
static size_t opt_size = 64;
static unsigned opt_threads = 1;
static unsigned long long opt_work;	/* loop iterations of work per pair */
static pthread_barrier_t start_line;

struct worker {
	pthread_t thread;
	double ns;		/* loop time */
	int failed;
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	unsigned long long n = opt_pairs;
	size_t size = opt_size;

	if (opt_threads > 1)
		pthread_barrier_wait(&start_line);
	double t0 = now_ns();
	for (unsigned long long i = 0; i < n; i++) {
		void *p = malloc(size);
		if (__builtin_expect(!p && size, 0)) {
			w->failed = 1;
			break;
		}
		/* Keeps the pair alive: -O2 may delete malloc+free otherwise. */
		__asm__ volatile("" ::"r"(p) : "memory");
		for (unsigned long long k = 0; k < opt_work; k++)
			__asm__ volatile("" ::: "memory");
		free(p);
	}
	w->ns = now_ns() - t0;
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: churn [--pairs N] [--size BYTES] [--threads T] [--work K] [--wait]\n"
		   "  --work K       K loop iterations of work between malloc and free (default 0)\n"
		   "  --pairs N      malloc+free pairs per thread (default 2000000)\n"
		   "  --size BYTES   bytes per malloc (default 64)\n"
		   "  --threads T    threads running the loop at once (default 1)\n"
		   "  --wait         print \"ready <pid>\", then wait for SIGUSR1 before the loop\n"
		   "prints ns_per_pair=<float>\n");
}

static int parse_ull(const char *s, const char *what, unsigned long long min, unsigned long long max,
		     unsigned long long *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "churn: bad %s '%s' (want %llu..%llu)\n", what, s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pairs", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "work", required_argument, NULL, 'k' },
		{ "wait", no_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	int wait = 0, c;

	while ((c = getopt_long(argc, argv, "n:s:t:k:wh", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			if (parse_ull(optarg, "--work", 0, ~0ULL >> 1, &v))
				return 2;
			opt_work = v;
			break;
		case 'n':
			if (parse_ull(optarg, "--pairs", 1, ~0ULL >> 1, &v))
				return 2;
			opt_pairs = v;
			break;
		case 's':
			if (parse_ull(optarg, "--size", 0, SIZE_MAX >> 1, &v))
				return 2;
			opt_size = v;
			break;
		case 't':
			if (parse_ull(optarg, "--threads", 1, 1024, &v))
				return 2;
			opt_threads = v;
			break;
		case 'w':
			wait = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "churn: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	if (wait) {
		sigset_t set;
		int sig = 0;

		/* Blocked before anything else can run, so SIGUSR1 waits for
		 * sigwait instead of killing the process. */
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		if ((errno = pthread_sigmask(SIG_BLOCK, &set, NULL))) {
			perror("churn: pthread_sigmask");
			return 1;
		}
		printf("ready %d\n", (int)getpid());
		fflush(stdout);
		do {
			if ((errno = sigwait(&set, &sig))) {
				perror("churn: sigwait");
				return 1;
			}
		} while (sig != SIGUSR1);
	}

	struct worker *w = calloc(opt_threads, sizeof(*w));
	if (!w) {
		perror("churn: calloc");
		return 1;
	}
	if (opt_threads == 1) {
		run(&w[0]);
	} else {
		if ((errno = pthread_barrier_init(&start_line, NULL, opt_threads))) {
			perror("churn: pthread_barrier_init");
			return 1;
		}
		for (unsigned i = 0; i < opt_threads; i++) {
			if ((errno = pthread_create(&w[i].thread, NULL, run, &w[i]))) {
				perror("churn: pthread_create");
				return 1;
			}
		}
		for (unsigned i = 0; i < opt_threads; i++)
			pthread_join(w[i].thread, NULL);
		pthread_barrier_destroy(&start_line);
	}

	double sum = 0;
	for (unsigned i = 0; i < opt_threads; i++) {
		if (w[i].failed) {
			fprintf(stderr, "churn: malloc(%zu) failed\n", opt_size);
			return 1;
		}
		sum += w[i].ns / (double)opt_pairs;
	}
	free(w);
	printf("ns_per_pair=%.2f\n", sum / opt_threads);
	struct rusage ru;
	if (!getrusage(RUSAGE_SELF, &ru))
		printf("user_s=%.6f sys_s=%.6f\n", ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
		       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	fflush(stdout);
	return 0;
}
