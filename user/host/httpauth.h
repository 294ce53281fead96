/* Who may read the endpoints: basic authentication against bcrypt hashes
 * and client certificates (--web-config).
 *
 * A bcrypt check takes 1 ms to a quarter of a second of CPU (cost 4 to
 * 12): it runs on a thread of its own, so that the loop (which drains the
 * ring buffers) never waits for one, and within a budget (a tenth of one
 * CPU on average, a second at most at once), so that a flood of wrong
 * passwords costs the host little; past it the client gets a 429. A
 * password that passed is remembered (a salted SHA-256 digest), so a
 * scraper's requests after its first cost no bcrypt at all. */
#ifndef MW_HTTPAUTH_H
#define MW_HTTPAUTH_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdint.h>

#include "host/webconfig.h"

#define AUTH_MAX_PENDING	4	/* checks queued or running at once */
#define AUTH_CPU_SHARE		10	/* % of one CPU the checks may take */
#define AUTH_BURST_MS		1000	/* CPU the checks may take at once */

struct http_auth;

enum auth_verdict {
	AUTH_OK,
	AUTH_DENIED,		/* wrong or missing user or password */
	AUTH_BUSY,		/* over the budget: try again later */
	AUTH_PENDING,		/* on the thread: httpauth_take has the verdict */
};

/* users: the config's (kept, not copied); wake_fd: an eventfd written
 * whenever a check is done. 0 or -errno. */
int httpauth_start(struct http_auth **out, const struct web_config *cfg, int wake_fd);
void httpauth_stop(struct http_auth *auth);

/* user NULL: no credentials sent. token identifies the check (the
 * request) for httpauth_take and httpauth_cancel. */
enum auth_verdict httpauth_check(struct http_auth *auth, const char *user, const char *password,
				 void *token);
/* A finished check's token and whether it passed; false when none. */
bool httpauth_take(struct http_auth *auth, void **token, bool *ok);
/* The check of token is no longer wanted (its client left). */
void httpauth_cancel(struct http_auth *auth, void *token);

struct auth_counts {
	uint64_t passed, failed;	/* bcrypt checks */
	uint64_t remembered;		/* passed without one */
	uint64_t refused;		/* AUTH_BUSY */
};
void httpauth_counts(const struct http_auth *auth, struct auth_counts *out);

/* Whether a TLS session's client certificate satisfies mode: 0,
 * -ENOENT (none sent, one required) or -EACCES (not signed by the CA,
 * expired, ...). */
int httpauth_client_cert(gnutls_session_t session, enum client_auth mode);

/* Whether a and b (len bytes each) are equal, in time independent of
 * where they differ. */
bool httpauth_equal(const void *a, const void *b, size_t len);

#endif
