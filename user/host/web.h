/* What --all serves over --listen: /metrics in Prometheus' text format and
 * /debug/pprof/{heap,allocs,pages} as Go serves them (gzipped pprof,
 * ?seconds=N for a delta over the next N seconds), for one process (?pid=N)
 * or all profiled ones. */
#ifndef MW_HOST_WEB_H
#define MW_HOST_WEB_H

#include <stdint.h>

struct session;
struct host_table;
struct hproc;
struct http_request;
struct http_server;
struct outdir;
struct delta_request;

struct web {
	struct session *s;
	struct host_table *table;
	struct outdir *outdir;		/* --output-dir, for its metrics; may be NULL */
	struct http_server *http;	/* the server, for its metrics; may be NULL */
	struct delta_request *deltas;	/* ?seconds=N answers pending */
};

void web_init(struct web *w, struct session *s, struct host_table *table, struct outdir *outdir);
/* Answers the pending requests with 503. */
void web_free(struct web *w);
/* The http_handler of --listen (ctx: the struct web), and its abandoned
 * callback. */
void web_handle(void *ctx, struct http_request *req);
void web_abandoned(void *ctx, struct http_request *req);
/* Delta requests: milliseconds to the next one due (-1: none), answer the
 * due ones, answer now the ones about a process that is going. */
int web_next_deadline_ms(struct web *w);
void web_deliver_due(struct web *w);
void web_process_gone(struct web *w, struct hproc *hp);

#endif
