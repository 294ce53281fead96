/* --listen for --all: the web config, the rule on who may connect, and
 * the server. A --listen address other hosts reach (not loopback, not a
 * Unix socket) serves only with TLS and authentication (--web-config), or
 * with --insecure-listen and a warning. */
#ifndef MW_HOSTLISTEN_H
#define MW_HOSTLISTEN_H

#include "cli/options.h"
#include "host/http.h"

struct web_config;

struct host_listen {
	struct http_server *http;	/* NULL: not serving */
	struct web_config *web;		/* --web-config */
};

/* Loads --web-config, checks the rule, starts the server with handler
 * and abandoned (their context: ctx): 0, or -errno after a one-line
 * error. */
int hostlisten_start(struct host_listen *l, const struct options *opt, http_handler *handler,
		     http_handler *abandoned, void *ctx);
/* "memwatch: serving ... on port N" (or "on unix:PATH"). */
void hostlisten_announce(const struct host_listen *l, const struct options *opt);
void hostlisten_stop(struct host_listen *l);

#endif
