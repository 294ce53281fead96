/* --web-config files (webconfig.c), with certificates openssl makes in a
 * temporary directory. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture_build.h"
#include "host/webconfig.h"

/* Well-formed bcrypt (cost 4); parsing checks the form, not a password. */
#define HASH "$2y$04$H/3dK8C7hxs3uY9a0a8AF.Q6W.7o0hxQ/Je1xfV.kmqCiTMpCE3ZW"

static char dir[] = "/tmp/memwatch-webconfig-XXXXXX";

static int make_certificates(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	return run("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
		   "-out ca.crt -days 2 -subj /CN=ca >/dev/null 2>&1 && "
		   "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key "
		   "-out server.crt -days 2 -subj /CN=server >/dev/null 2>&1 && "
		   "openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out other.key >/dev/null 2>&1 && "
		   "echo not a certificate > junk.pem", dir) ? -1 : 0;
}

static int remove_certificates(void **state)
{
	return run("rm -rf %s", dir) ? -1 : 0;
}

static int parse(const char *text, struct web_config *cfg, char *why)
{
	return web_config_parse(text, strlen(text), dir, cfg, why, 512);
}

/* text is refused with a reason that contains expected. */
static void expect_error(const char *text, const char *expected)
{
	struct web_config cfg;
	char why[512] = "";

	if (parse(text, &cfg, why) >= 0)
		fail_msg("accepted: %s", text);
	if (!strstr(why, expected))
		fail_msg("\"%s\": \"%s\" does not say \"%s\"", text, why, expected);
	assert_null(cfg.users);
	assert_null(cfg.cert_pem);
}

static void test_empty(void **state)
{
	static const char *const EMPTY[] = { "", "---\n", "# nothing\n", "tls_server_config:\nbasic_auth_users:\n" };
	struct web_config cfg;
	char why[512];

	for (size_t i = 0; i < sizeof(EMPTY) / sizeof(EMPTY[0]); i++) {
		assert_int_equal(parse(EMPTY[i], &cfg, why), 0);
		assert_null(cfg.cert_pem);
		assert_int_equal(cfg.nusers, 0);
		assert_false(web_config_authenticates(&cfg));
		web_config_free(&cfg);
	}
	assert_false(web_config_authenticates(NULL));
}

static void test_users(void **state)
{
	struct web_config cfg;
	char why[512];

	assert_int_equal(parse("basic_auth_users:\n  prometheus: " HASH "\n  'alice': \"" HASH "\"\n", &cfg, why), 0);
	assert_int_equal(cfg.nusers, 2);
	assert_string_equal(cfg.users[0].name, "prometheus");
	assert_string_equal(cfg.users[1].name, "alice");
	assert_string_equal(cfg.users[1].hash, HASH);
	assert_null(cfg.cert_pem);
	assert_true(web_config_authenticates(&cfg));
	web_config_free(&cfg);
}

static void test_tls(void **state)
{
	struct web_config cfg;
	char why[512], text[1024];

	assert_int_equal(parse("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n", &cfg, why), 0);
	assert_non_null(strstr(cfg.cert_pem, "BEGIN CERTIFICATE"));
	assert_non_null(strstr(cfg.key_pem, "PRIVATE KEY"));
	assert_null(cfg.client_ca_pem);
	assert_int_equal(cfg.client_auth, CLIENT_CERT_NONE);
	assert_string_equal(cfg.tls_priorities, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2");
	assert_false(web_config_authenticates(&cfg));
	web_config_free(&cfg);

	snprintf(text, sizeof(text), "tls_server_config:\n  cert_file: %s/server.crt\n  key_file: server.key\n"
		 "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
		 "  min_version: TLS13\n", dir);
	assert_int_equal(parse(text, &cfg, why), 0);
	assert_non_null(strstr(cfg.client_ca_pem, "BEGIN CERTIFICATE"));
	assert_int_equal(cfg.client_auth, CLIENT_CERT_REQUIRED);
	assert_string_equal(cfg.tls_priorities, "NORMAL:-VERS-ALL:+VERS-TLS1.3");
	assert_true(web_config_authenticates(&cfg));
	web_config_free(&cfg);
}

static void test_refused(void **state)
{
	expect_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [a]\n",
		     "line 4: tls_server_config.cipher_suites: not supported by memwatch");
	expect_error("tls_server_config:\n  client_allowed_sans: [a]\n", "not supported by memwatch");
	expect_error("tls_server_config:\n  certfile: x\n", "line 2: tls_server_config.certfile: unknown key");
	expect_error("basic_auth_user:\n  a: " HASH "\n", "line 1: basic_auth_user: unknown key");
	expect_error("http_server_config:\n  http2: false\n", "http_server_config: not supported by memwatch");
	expect_error("basic_auth_users:\n  a: " HASH "\nbasic_auth_users:\n  b: " HASH "\n",
		     "line 3: the file.basic_auth_users: given twice");
	expect_error("basic_auth_users:\n  a: plain\n", "basic_auth_users.a: not a bcrypt hash");
	expect_error("basic_auth_users:\n  a: $1$abc$def\n", "not a bcrypt hash");
	expect_error("basic_auth_users:\n  a: [" HASH "]\n", "not a bcrypt hash");
	expect_error("basic_auth_users:\n  'a:b': " HASH "\n", "cannot be a user name");
	expect_error("basic_auth_users:\n  '': " HASH "\n", "cannot be a user name");
	expect_error("basic_auth_users: [a, b]\n", "basic_auth_users: expected a mapping");
	expect_error("- a\n- b\n", "the file: expected a mapping");
	expect_error("basic_auth_users: {a: [\n", "line");
	expect_error("basic_auth_users:\n  a: " HASH "\n---\nbasic_auth_users:\n  b: " HASH "\n",
		     "one YAML document only");
	expect_error("tls_server_config:\n  cert_file: server.crt\n", "cert_file and key_file go together");
	expect_error("tls_server_config:\n  client_ca_file: ca.crt\n", "there is no TLS");
	expect_error("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n", "with key_file other.key");
	expect_error("tls_server_config:\n  cert_file: junk.pem\n  key_file: server.key\n", "with key_file");
	expect_error("tls_server_config:\n  cert_file: nothere.crt\n  key_file: server.key\n",
		     "nothere.crt: No such file or directory");
	expect_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
		     "  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file");
	expect_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
		     "  client_auth_type: RequestClientCert\n  client_ca_file: ca.crt\n", "implements NoClientCert");
	expect_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
		     "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: junk.pem\n",
		     "client_ca_file junk.pem");
	expect_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n"
		     "  max_version: TLS12\n", "min_version TLS13 is above max_version TLS12");
	expect_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS14\n",
		     "TLS14 is not TLS10");
}

static void test_load(void **state)
{
	struct web_config cfg;
	char why[512], path[PATH_MAX];
	FILE *f;

	assert_int_equal(web_config_load("/nonexistent/web.yml", &cfg, why, sizeof(why)), -ENOENT);
	assert_int_equal(web_config_load(dir, &cfg, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "not a regular file");
	/* Relative paths: from the file's directory, wherever memwatch runs. */
	f = fopen(fixture_path(path, dir, "web.yml"), "w");
	assert_non_null(f);
	fputs("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	      "basic_auth_users:\n  p: " HASH "\n", f);
	fclose(f);
	assert_int_equal(chdir("/"), 0);
	assert_int_equal(web_config_load(path, &cfg, why, sizeof(why)), 0);
	assert_non_null(cfg.cert_pem);
	assert_int_equal(cfg.nusers, 1);
	web_config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_users),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, make_certificates, remove_certificates);
}
