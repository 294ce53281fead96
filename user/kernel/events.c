#include "kernel/events.h"

#include <stdbool.h>

int events_dispatch(const struct event_handlers *h, void *ctx, const void *data, size_t len)
{
	const struct mw_event_head *e = data;
	
	if (len < sizeof(*e))
		return 0;
	switch (e->type) {
	case MW_EV_SAMPLE:
		if (h->sample && len >= sizeof(struct mw_sample_event))
			h->sample(ctx, data, len);
		break;
	case MW_EV_PAGE:
		if (h->page && len >= sizeof(struct mw_page_event))
			h->page(ctx, data, len);
		break;
	case MW_EV_CANCEL:
		if (h->cancel && len >= sizeof(struct mw_cancel_event))
			h->cancel(ctx, e->tgid, ((const struct mw_cancel_event *)data)->sample_id);
		break;
	case MW_EV_LOADER:
		if (h->loader)
			h->loader(ctx, e->tgid);
		break;
	case MW_EV_EXEC:
		if (h->exec)
			h->exec(ctx, e->tgid);
		break;
	case MW_EV_EXIT:
		if (h->exit)
			h->exit(ctx, e->tgid);
		break;
	}
	return 0;
}
