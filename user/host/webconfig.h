/* --web-config FILE: TLS and basic authentication for --listen, in the
 * format of the Prometheus exporter toolkit (node_exporter's
 * --web.config.file):
 *
 *   tls_server_config:
 *     cert_file: server.crt        # PEM, with its chain
 *     key_file: server.key
 *     client_auth_type: RequireAndVerifyClientCert   # or NoClientCert,
 *     client_ca_file: ca.crt       #   VerifyClientCertIfGiven
 *     min_version: TLS12           # TLS10..TLS13 (default TLS12)
 *     max_version: TLS13
 *   basic_auth_users:
 *     prometheus: $2y$10$...       # bcrypt ($2a$, $2b$, $2y$)
 *
 * Relative paths are relative to FILE's directory. Keys memwatch does not
 * implement (cipher_suites, client_allowed_sans, http_server_config, ...)
 * are errors, never ignored. */
#ifndef MW_WEBCONFIG_H
#define MW_WEBCONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum client_auth {
	CLIENT_CERT_NONE,		/* NoClientCert */
	CLIENT_CERT_IF_GIVEN,		/* VerifyClientCertIfGiven */
	CLIENT_CERT_REQUIRED,		/* RequireAndVerifyClientCert */
};

struct web_user {
	char *name;
	char *hash;		/* bcrypt */
};

struct web_config {
	char *cert_pem;		/* NULL: no TLS */
	char *key_pem;
	char *client_ca_pem;	/* NULL: no client certificates */
	enum client_auth client_auth;
	char *tls_priorities;	/* GnuTLS priority string (the versions) */
	struct web_user *users;	/* basic authentication; none: open */
	size_t nusers;
};

/* 0, or -errno with a one-line reason in why. */
int web_config_load(const char *path, struct web_config *out, char *why, size_t why_len);
/* The same from text (YAML); relative paths are taken from dir. */
int web_config_parse(const char *text, size_t len, const char *dir, struct web_config *out,
		     char *why, size_t why_len);
void web_config_free(struct web_config *cfg);

/* Whether every request must prove who sends it: a password or a client
 * certificate the configured CA signed. */
bool web_config_authenticates(const struct web_config *cfg);

#endif
