/* The events the BPF programs send (include/memwatch.h), checked for
 * length and handed to the callbacks of their type; a NULL callback
 * ignores its type. */
#ifndef MW_EVENTS_H
#define MW_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "memwatch.h"

struct event_handlers {
	void (*sample)(void *ctx, const struct mw_sample_event *e, size_t len);
	void (*page)(void *ctx, const struct mw_page_event *e, size_t len);
	void (*cancel)(void *ctx, pid_t tgid, uint64_t sample_id);
	void (*loader)(void *ctx, pid_t tgid);
	void (*exec)(void *ctx, pid_t tgid);
	void (*exit)(void *ctx, pid_t tgid);
};

/* One event; always 0 (the ring buffer's callback convention). */
int events_dispatch(const struct event_handlers *h, void *ctx, const void *data, size_t len);

#endif
