/* What --all serves over --listen: /metrics in Prometheus' text format and
 * /debug/pprof/{heap,allocs,pages} as Go serves them (gzipped pprof,
 * ?seconds=N for a delta over the next N seconds), for one process (?pid=N)
 * or all profiled ones; and the profiles --output-dir writes. */
#ifndef MW_HOSTWEB_H
#define MW_HOSTWEB_H

#include <stdint.h>

struct host;
struct hproc;
struct http_request;
struct heap_snapshot;

enum profile_kind {
	PROFILE_HEAP,		/* in-use and allocations, default inuse_space */
	PROFILE_ALLOCS,		/* the same, default alloc_space */
	PROFILE_PAGES,		/* faults and purges */
};

/* The http_handler of --listen, and its abandoned callback. */
void hostweb_handle(void *ctx, struct http_request *req);
void hostweb_abandoned(void *ctx, struct http_request *req);
/* One process's profile (hp NULL: every profiled process) into fd. 0 or -errno. */
int hostweb_write_profile(struct host *h, struct hproc *hp, enum profile_kind kind, const void *base, int fd);
/* Delta requests: milliseconds to the next one due (-1: none), answer the
 * due ones, answer now the ones about a process that is going. */
int hostweb_next_deadline_ms(struct host *h);
void hostweb_deliver_due(struct host *h);
int hostweb_process_gone(struct host *h, struct hproc *hp);
void hostweb_free(struct host *h);

#endif
