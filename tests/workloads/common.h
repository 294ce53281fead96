/* Helpers shared by the test workloads. */
#ifndef WORKLOAD_COMMON_H
#define WORKLOAD_COMMON_H

#include <errno.h>
#include <poll.h>
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

/* Commands from the test, one per line on stdin (read with read(2), so
 * that polling for them between requests never blocks). */
struct line_reader {
	char buf[256];
	size_t len;
	int eof;
};

/* The next line (without its newline) into out: 1 if there is one, 0 if
 * none arrived within timeout_ms (-1: wait for one), -1 once stdin ended. */
static inline int next_line(struct line_reader *r, char *out, size_t size, int timeout_ms)
{
	for (;;) {
		char *nl = (char *)memchr(r->buf, '\n', r->len);
		if (nl) {
			size_t n = (size_t)(nl - r->buf);
			snprintf(out, size, "%.*s", (int)n, r->buf);
			memmove(r->buf, nl + 1, r->len - n - 1);
			r->len -= n + 1;
			return 1;
		}
		if (r->eof)
			return -1;
		struct pollfd pfd = { .fd = 0, .events = POLLIN };
		int ready = poll(&pfd, 1, timeout_ms);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0)
			return 0;
		if (r->len == sizeof(r->buf))
			r->len = 0;	/* a line too long for any command: dropped */
		ssize_t got = read(0, r->buf + r->len, sizeof(r->buf) - r->len);
		if (got <= 0)
			r->eof = 1;
		else
			r->len += (size_t)got;
	}
}

/* --hold: stay until the test sends a line (or closes stdin), so that it
 * decides when the process exits instead of a sleep guessing. */
static inline void hold(void)
{
	struct line_reader r = { .len = 0 };
	char line[8];

	next_line(&r, line, sizeof(line), -1);
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

/* Per-site totals a profiler should report, written with --manifest:
 *   site alloc_objects alloc_bytes inuse_objects inuse_bytes */
struct site_total {
	const char *name;
	unsigned long long alloc_objects, alloc_bytes, inuse_objects, inuse_bytes;
};

static struct site_total site_totals[64];
static int nsite_totals;

static inline struct site_total *site_total(const char *name)
{
	for (int i = 0; i < nsite_totals; i++)
		if (!strcmp(site_totals[i].name, name))
			return &site_totals[i];
	site_totals[nsite_totals].name = name;
	return &site_totals[nsite_totals++];
}

static inline void note_alloc(const char *name, size_t size)
{
	struct site_total *t = site_total(name);
	t->alloc_objects++;
	t->alloc_bytes += size;
	t->inuse_objects++;
	t->inuse_bytes += size;
}

static inline void note_free(const char *name, size_t size)
{
	struct site_total *t = site_total(name);
	t->inuse_objects--;
	t->inuse_bytes -= size;
}

static inline void write_manifest(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(1);
	}
	for (int i = 0; i < nsite_totals; i++)
		fprintf(f, "%s %llu %llu %llu %llu\n", site_totals[i].name, site_totals[i].alloc_objects,
			site_totals[i].alloc_bytes, site_totals[i].inuse_objects, site_totals[i].inuse_bytes);
	fclose(f);
}

#endif
