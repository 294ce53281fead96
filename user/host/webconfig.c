#include "host/webconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define MAX_FILE_BYTES (1 << 20)
#define BCRYPT_LEN 60

/* What a parse needs along the way. */
struct parse {
	yaml_document_t *doc;
	const char *dir;
	struct web_config *cfg;
	char *why;
	size_t why_len;
	/* tls_server_config's strings until they are checked */
	const char *cert_file, *key_file, *ca_file, *auth_type, *min_version, *max_version;
};

__attribute__((format(printf, 3, 4)))
static int fail(struct parse *p, const yaml_node_t *at, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (at)
		snprintf(p->why, p->why_len, "line %zu: %s", at->start_mark.line + 1, msg);
	else
		snprintf(p->why, p->why_len, "%s", msg);
	return -EINVAL;
}

static const char *scalar(const yaml_node_t *node)
{
	return node && node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

/* An empty value, "~" or "null": the key is as good as absent. */
static bool unset(const char *value)
{
	return !*value || !strcmp(value, "~") || !strcmp(value, "null");
}

static bool in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

typedef int pair_fn(struct parse *p, const char *key, const yaml_node_t *key_node,
		    const yaml_node_t *value);

/* Calls fn on each key and value of a mapping; keys are strings, once. */
static int each_pair(struct parse *p, const yaml_node_t *map, const char *where, pair_fn *fn)
{
	if (map->type != YAML_MAPPING_NODE)
		return fail(p, map, "%s: expected a mapping", where);
	for (yaml_node_pair_t *i = map->data.mapping.pairs.start; i < map->data.mapping.pairs.top; i++) {
		const yaml_node_t *k = yaml_document_get_node(p->doc, i->key);
		const char *key = scalar(k);
		int err;

		if (!key)
			return fail(p, k, "%s: keys are strings", where);
		for (yaml_node_pair_t *j = map->data.mapping.pairs.start; j < i; j++)
			if (scalar(yaml_document_get_node(p->doc, j->key)) &&
			    !strcmp(scalar(yaml_document_get_node(p->doc, j->key)), key))
				return fail(p, k, "%s.%s: given twice", where, key);
		if ((err = fn(p, key, k, yaml_document_get_node(p->doc, i->value))))
			return err;
	}
	return 0;
}

static int tls_pair(struct parse *p, const char *key, const yaml_node_t *key_node, const yaml_node_t *value)
{
	static const char *const unsupported[] = {
		"cert", "key", "cipher_suites", "curve_preferences", "prefer_server_cipher_suites",
		"client_allowed_sans", NULL,
	};
	const char **slot = !strcmp(key, "cert_file") ? &p->cert_file
		: !strcmp(key, "key_file") ? &p->key_file
		: !strcmp(key, "client_ca_file") ? &p->ca_file
		: !strcmp(key, "client_auth_type") ? &p->auth_type
		: !strcmp(key, "min_version") ? &p->min_version
		: !strcmp(key, "max_version") ? &p->max_version : NULL;

	if (!slot)
		return fail(p, key_node, "tls_server_config.%s: %s (memwatch implements cert_file, key_file, "
			    "client_auth_type, client_ca_file, min_version, max_version)", key,
			    in_list(key, unsupported) ? "not supported by memwatch" : "unknown key");
	if (!scalar(value))
		return fail(p, value, "tls_server_config.%s: expected a string", key);
	*slot = unset(scalar(value)) ? NULL : scalar(value);
	return 0;
}

static bool bcrypt_hash(const char *h)
{
	static const char B64[] = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	int cost;

	if (strlen(h) != BCRYPT_LEN || h[0] != '$' || h[1] != '2' || !strchr("aby", h[2]) || h[3] != '$' ||
	    h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' || h[6] != '$')
		return false;
	cost = (h[4] - '0') * 10 + h[5] - '0';
	return cost >= 4 && cost <= 31 && strspn(h + 7, B64) == BCRYPT_LEN - 7;
}

static int user_pair(struct parse *p, const char *name, const yaml_node_t *key_node, const yaml_node_t *value)
{
	struct web_config *cfg = p->cfg;
	const char *hash = scalar(value);
	struct web_user *users;

	if (!*name || strchr(name, ':'))
		return fail(p, key_node, "basic_auth_users: \"%s\" cannot be a user name (empty, or with a colon)",
			    name);
	if (!hash || !bcrypt_hash(hash))
		return fail(p, value, "basic_auth_users.%s: not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters)",
			    name);
	users = realloc(cfg->users, (cfg->nusers + 1) * sizeof(*users));
	if (!users)
		return -ENOMEM;
	cfg->users = users;
	users[cfg->nusers].name = strdup(name);
	users[cfg->nusers].hash = strdup(hash);
	if (!users[cfg->nusers].name || !users[cfg->nusers].hash) {
		free(users[cfg->nusers].name);
		free(users[cfg->nusers].hash);
		return -ENOMEM;
	}
	cfg->nusers++;
	return 0;
}

static int top_pair(struct parse *p, const char *key, const yaml_node_t *key_node, const yaml_node_t *value)
{
	if (!strcmp(key, "tls_server_config"))
		return scalar(value) && unset(scalar(value)) ? 0 : each_pair(p, value, key, tls_pair);
	if (!strcmp(key, "basic_auth_users"))
		return scalar(value) && unset(scalar(value)) ? 0 : each_pair(p, value, key, user_pair);
	return fail(p, key_node, "%s: %s (memwatch implements tls_server_config and basic_auth_users)", key,
		    !strcmp(key, "http_server_config") ? "not supported by memwatch" : "unknown key");
}

/* A file's whole text, NUL-terminated. */
static int read_text(const char *path, char **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;
	struct stat st;
	size_t len = 0;
	char *buf = NULL;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st))
		err = -errno;
	else if (!S_ISREG(st.st_mode))
		err = -EINVAL;
	else if (st.st_size > MAX_FILE_BYTES)
		err = -EFBIG;
	else if (!(buf = malloc(st.st_size + 1)))
		err = -ENOMEM;
	while (!err) {
		ssize_t n = read(fd, buf + len, st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err = -errno;
		else if (n == 0 || (len += n) == (size_t)st.st_size)
			break;
	}
	close(fd);
	if (err) {
		free(buf);
		return err;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

static int load_file(struct parse *p, const char *key, const char *name, char **out)
{
	char *path = NULL;
	int err;

	if (name[0] == '/' || !p->dir)
		path = strdup(name);
	else if (asprintf(&path, "%s/%s", p->dir, name) < 0)
		path = NULL;
	if (!path)
		return -ENOMEM;
	err = read_text(path, out);
	if (err)
		fail(p, NULL, "tls_server_config.%s: %s: %s", key, path,
		     err == -EINVAL ? "not a regular file" : strerror(-err));
	free(path);
	return err;
}

static int tls_version(struct parse *p, const char *key, const char *value, int fallback, int *out)
{
	static const char *const names[] = { "TLS10", "TLS11", "TLS12", "TLS13", NULL };

	*out = fallback;
	if (!value)
		return 0;
	for (int i = 0; names[i]; i++) {
		if (!strcmp(value, names[i])) {
			*out = i;
			return 0;
		}
	}
	return fail(p, NULL, "tls_server_config.%s: %s is not TLS10, TLS11, TLS12 or TLS13", key, value);
}

static int set_priorities(struct parse *p)
{
	static const char *const vers[] = { "+VERS-TLS1.0", "+VERS-TLS1.1", "+VERS-TLS1.2", "+VERS-TLS1.3" };
	char buf[128] = "NORMAL:-VERS-ALL";
	int min, max, err;

	if ((err = tls_version(p, "min_version", p->min_version, 2, &min)) ||
	    (err = tls_version(p, "max_version", p->max_version, 3, &max)))
		return err;
	if (min > max)
		return fail(p, NULL, "tls_server_config: min_version %s is above max_version %s", p->min_version,
			    p->max_version ? p->max_version : "TLS13");
	for (int v = max; v >= min; v--) {
		strcat(buf, ":");
		strcat(buf, vers[v]);
	}
	p->cfg->tls_priorities = strdup(buf);
	return p->cfg->tls_priorities ? 0 : -ENOMEM;
}

static int client_auth_of(struct parse *p)
{
	const char *t = p->auth_type;

	if (!t || !strcmp(t, "NoClientCert"))
		p->cfg->client_auth = CLIENT_CERT_NONE;
	else if (!strcmp(t, "VerifyClientCertIfGiven"))
		p->cfg->client_auth = CLIENT_CERT_IF_GIVEN;
	else if (!strcmp(t, "RequireAndVerifyClientCert"))
		p->cfg->client_auth = CLIENT_CERT_REQUIRED;
	else
		return fail(p, NULL, "tls_server_config.client_auth_type: %s: memwatch implements NoClientCert, "
			    "VerifyClientCertIfGiven and RequireAndVerifyClientCert", t);
	if (p->cfg->client_auth != CLIENT_CERT_NONE && !p->ca_file)
		return fail(p, NULL, "tls_server_config.client_auth_type %s needs client_ca_file", t);
	return 0;
}

/* GnuTLS reads the PEM now, for an error that names the file. */
static int check_pem(struct parse *p)
{
	struct web_config *cfg = p->cfg;
	gnutls_certificate_credentials_t cred;
	gnutls_datum_t cert = { (unsigned char *)cfg->cert_pem, strlen(cfg->cert_pem) };
	gnutls_datum_t key = { (unsigned char *)cfg->key_pem, strlen(cfg->key_pem) };
	int r;

	if (gnutls_certificate_allocate_credentials(&cred) < 0)
		return -ENOMEM;
	r = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0)
		fail(p, NULL, "tls_server_config: cert_file %s with key_file %s: %s", p->cert_file, p->key_file,
		     gnutls_strerror(r));
	if (r >= 0 && cfg->client_ca_pem) {
		gnutls_datum_t ca = { (unsigned char *)cfg->client_ca_pem, strlen(cfg->client_ca_pem) };
		int n = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
		if (n <= 0)
			r = fail(p, NULL, "tls_server_config.client_ca_file %s: %s", p->ca_file,
				 n < 0 ? gnutls_strerror(n) : "no certificate in it");
	}
	gnutls_certificate_free_credentials(cred);
	return r < 0 ? -EINVAL : 0;
}

static int finish_tls(struct parse *p)
{
	struct web_config *cfg = p->cfg;
	int err;

	if (!p->cert_file != !p->key_file)
		return fail(p, NULL, "tls_server_config: cert_file and key_file go together");
	if (!p->cert_file) {
		if (p->ca_file || p->auth_type || p->min_version || p->max_version)
			return fail(p, NULL, "tls_server_config: without cert_file and key_file there is no TLS "
				    "to configure");
		return 0;
	}
	if ((err = client_auth_of(p)) || (err = set_priorities(p)) ||
	    (err = load_file(p, "cert_file", p->cert_file, &cfg->cert_pem)) ||
	    (err = load_file(p, "key_file", p->key_file, &cfg->key_pem)))
		return err;
	if (p->ca_file && cfg->client_auth != CLIENT_CERT_NONE &&
	    (err = load_file(p, "client_ca_file", p->ca_file, &cfg->client_ca_pem)))
		return err;
	return check_pem(p);
}

/* A second document would be ignored: refused instead. */
static int one_document(struct parse *p, yaml_parser_t *parser)
{
	yaml_document_t next;
	bool more;

	if (!yaml_parser_load(parser, &next))
		return fail(p, NULL, "line %zu: %s", parser->problem_mark.line + 1,
			    parser->problem ? parser->problem : "not YAML");
	more = yaml_document_get_root_node(&next) != NULL;
	yaml_document_delete(&next);
	return more ? fail(p, NULL, "one YAML document only (a second starts with ---)") : 0;
}

int web_config_parse(const char *text, size_t len, const char *dir, struct web_config *out,
		     char *why, size_t why_len)
{
	struct parse p = { .dir = dir, .cfg = out, .why = why, .why_len = why_len };
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(why, why_len, "line %zu: %s", parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "not YAML");
		yaml_parser_delete(&parser);
		return -EINVAL;
	}
	p.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root && !(scalar(root) && unset(scalar(root))))
		err = each_pair(&p, root, "the file", top_pair);
	if (!err)
		err = one_document(&p, &parser);
	if (!err)
		err = finish_tls(&p);
	if (err == -ENOMEM)
		snprintf(why, why_len, "out of memory");
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (err)
		web_config_free(out);
	return err;
}

int web_config_load(const char *path, struct web_config *out, char *why, size_t why_len)
{
	char *text = NULL, *copy = strdup(path);
	int err;

	memset(out, 0, sizeof(*out));
	if (!copy)
		return -ENOMEM;
	err = read_text(path, &text);
	if (err)
		snprintf(why, why_len, "%s", err == -EINVAL ? "not a regular file" : strerror(-err));
	else
		err = web_config_parse(text, strlen(text), dirname(copy), out, why, why_len);
	free(text);
	free(copy);
	return err;
}

void web_config_free(struct web_config *cfg)
{
	free(cfg->cert_pem);
	if (cfg->key_pem) {
		explicit_bzero(cfg->key_pem, strlen(cfg->key_pem));
		free(cfg->key_pem);
	}
	free(cfg->client_ca_pem);
	free(cfg->tls_priorities);
	for (size_t i = 0; i < cfg->nusers; i++) {
		free(cfg->users[i].name);
		free(cfg->users[i].hash);
	}
	free(cfg->users);
	memset(cfg, 0, sizeof(*cfg));
}

bool web_config_authenticates(const struct web_config *cfg)
{
	return cfg && (cfg->nusers > 0 || cfg->client_auth == CLIENT_CERT_REQUIRED);
}
