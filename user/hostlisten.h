/* --listen for --all: the web config, the rule on who may connect, and
 * the server. A --listen address other hosts reach (not loopback, not a
 * Unix socket) serves only with TLS and authentication (--web-config), or
 * with --insecure-listen and a warning. */
#ifndef MW_HOSTLISTEN_H
#define MW_HOSTLISTEN_H

struct host;

/* Loads --web-config, checks the rule, starts the server: 0, or -errno
 * after a one-line error. */
int hostlisten_start(struct host *h);
/* "memwatch: serving ... on port N" (or "on unix:PATH"). */
void hostlisten_announce(const struct host *h);
void hostlisten_stop(struct host *h);

#endif
