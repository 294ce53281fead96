#include "hostlisten.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "hostweb.h"
#include "http.h"
#include "listen.h"
#include "options.h"
#include "report.h"
#include "webconfig.h"

static const char *start_error(int err)
{
	switch (err) {
	case -EINVAL:
		return "not [ADDR:]PORT or unix:PATH";
	case -ENAMETOOLONG:
		return "a Unix socket's path has at most 107 bytes";
	case -EEXIST:
		return "exists and is not a socket: left alone";
	case -EADDRINUSE:
		return "in use (another memwatch?)";
	case -EOPNOTSUPP:
		return "this libmicrohttpd lacks epoll, TLS or basic authentication";
	default:
		return strerror(-err);
	}
}

static int load_web_config(struct host *h)
{
	char why[512];
	int err;

	h->web = calloc(1, sizeof(*h->web));
	if (!h->web)
		return -ENOMEM;
	err = web_config_load(h->opt->web_config, h->web, why, sizeof(why));
	if (err) {
		report_error("--web-config %s: %s", h->opt->web_config, why);
		free(h->web);
		h->web = NULL;
	}
	return err;
}

/* Other hosts reach it: TLS and authentication, or the explicit flag. */
static int check_exposure(const struct host *h, const struct listen_addr *addr)
{
	bool tls = h->web && h->web->cert_pem, auth = web_config_authenticates(h->web);
	const char *missing = !tls && !auth ? "TLS and authentication" : !tls ? "TLS" : "authentication";

	if (addr->kind != LISTEN_NETWORK || (tls && auth))
		return 0;
	if (!h->opt->insecure_listen) {
		report_error("--listen %s: other hosts reach it, and it has no %s: every process's profiles would go "
			     "to anyone; give --web-config with tls_server_config and basic_auth_users, listen on "
			     "loopback or unix:PATH, or add --insecure-listen", h->opt->listen, missing);
		return -EPERM;
	}
	fprintf(stderr, "memwatch: warning: --listen %s serves every profiled process's stacks, paths and build "
			"ids to anyone who connects: no %s (--insecure-listen)\n", h->opt->listen, missing);
	return 0;
}

int hostlisten_start(struct host *h)
{
	struct http_config cfg = {
		.listen = h->opt->listen, .handler = hostweb_handle, .abandoned = hostweb_abandoned, .ctx = h,
	};
	struct listen_addr addr;
	int err = listen_parse(h->opt->listen, &addr);

	if (err) {
		report_error("--listen %s: %s", h->opt->listen, start_error(err));
		return err;
	}
	if ((h->opt->web_config && (err = load_web_config(h))) || (err = check_exposure(h, &addr)))
		return err;
	cfg.web = h->web;
	err = http_start(&h->http, &cfg);
	if (err)
		report_error("--listen %s: %s", h->opt->listen, start_error(err));
	return err;
}

void hostlisten_announce(const struct host *h)
{
	const char *how = h->web && h->web->cert_pem ? (web_config_authenticates(h->web) ? " (TLS, authenticated)"
										  : " (TLS)")
			  : web_config_authenticates(h->web) ? " (authenticated)" : "";

	if (!h->http)
		return;
	if (http_port(h->http))
		fprintf(stderr, "memwatch: serving /metrics and /debug/pprof/ on port %u%s\n",
			(unsigned)http_port(h->http), how);
	else
		fprintf(stderr, "memwatch: serving /metrics and /debug/pprof/ on %s%s\n", h->opt->listen, how);
}

void hostlisten_stop(struct host *h)
{
	if (h->http)
		http_stop(h->http);
	h->http = NULL;
	if (h->web) {
		web_config_free(h->web);
		free(h->web);
		h->web = NULL;
	}
}
