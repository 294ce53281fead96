#include "host/hostlisten.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/http.h"
#include "host/listen.h"
#include "cli/options.h"
#include "util/report.h"
#include "host/webconfig.h"

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

static int load_web_config(struct host_listen *l, const struct options *opt)
{
	char why[512];
	int err;

	l->web = calloc(1, sizeof(*l->web));
	if (!l->web)
		return -ENOMEM;
	err = web_config_load(opt->web_config, l->web, why, sizeof(why));
	if (err) {
		report_error("--web-config %s: %s", opt->web_config, why);
		free(l->web);
		l->web = NULL;
	}
	return err;
}

/* Other hosts reach it: TLS and authentication, or the explicit flag. */
static int check_exposure(const struct host_listen *l, const struct options *opt, const struct listen_addr *addr)
{
	bool tls = l->web && l->web->cert_pem, auth = web_config_authenticates(l->web);
	const char *missing = !tls && !auth ? "TLS and authentication" : !tls ? "TLS" : "authentication";

	if (addr->kind != LISTEN_NETWORK || (tls && auth))
		return 0;
	if (!opt->insecure_listen) {
		report_error("--listen %s: other hosts reach it, and it has no %s: every process's profiles would go "
			     "to anyone; give --web-config with tls_server_config and basic_auth_users, listen on "
			     "loopback or unix:PATH, or add --insecure-listen", opt->listen, missing);
		return -EPERM;
	}
	fprintf(stderr, "memwatch: warning: --listen %s serves every profiled process's stacks, paths and build "
			"ids to anyone who connects: no %s (--insecure-listen)\n", opt->listen, missing);
	return 0;
}

int hostlisten_start(struct host_listen *l, const struct options *opt, http_handler *handler,
		     http_handler *abandoned, void *ctx)
{
	struct http_config cfg = { .listen = opt->listen, .handler = handler, .abandoned = abandoned, .ctx = ctx };
	struct listen_addr addr;
	int err = listen_parse(opt->listen, &addr);

	if (err) {
		report_error("--listen %s: %s", opt->listen, start_error(err));
		return err;
	}
	if ((opt->web_config && (err = load_web_config(l, opt))) || (err = check_exposure(l, opt, &addr)))
		return err;
	cfg.web = l->web;
	err = http_start(&l->http, &cfg);
	if (err)
		report_error("--listen %s: %s", opt->listen, start_error(err));
	return err;
}

void hostlisten_announce(const struct host_listen *l, const struct options *opt)
{
	const char *how = l->web && l->web->cert_pem ? (web_config_authenticates(l->web) ? " (TLS, authenticated)"
										  : " (TLS)")
			  : web_config_authenticates(l->web) ? " (authenticated)" : "";

	if (!l->http)
		return;
	if (http_port(l->http))
		fprintf(stderr, "memwatch: serving /metrics and /debug/pprof/ on port %u%s\n",
			(unsigned)http_port(l->http), how);
	else
		fprintf(stderr, "memwatch: serving /metrics and /debug/pprof/ on %s%s\n", opt->listen, how);
}

void hostlisten_stop(struct host_listen *l)
{
	if (l->http)
		http_stop(l->http);
	l->http = NULL;
	if (l->web) {
		web_config_free(l->web);
		free(l->web);
		l->web = NULL;
	}
}
