/* libFuzzer: bytes as a --web-config file (webconfig.c over libyaml and
 * GnuTLS). Relative paths resolve in a directory holding a CA and a
 * server certificate and key (server.crt, server.key, ca.crt), so inputs
 * can reach the TLS checks as well as the YAML walk. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "host/webconfig.h"

static char dir[] = "/tmp/memwatch-fuzz-webconfig-XXXXXX";

static void remove_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "fuzz_webconfig: cannot remove %s\n", dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char cmd[1024];

	if (!mkdtemp(dir))
		abort();
	atexit(remove_dir);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
		 "-out ca.crt -days 2 -subj /CN=ca >/dev/null 2>&1 && openssl req -x509 -newkey ec -pkeyopt "
		 "ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.crt -days 2 -subj /CN=s "
		 ">/dev/null 2>&1", dir);
	if (system(cmd))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct web_config cfg;
	char why[512];

	if (!web_config_parse((const char *)data, len, dir, &cfg, why, sizeof(why)))
		web_config_free(&cfg);
	return 0;
}
