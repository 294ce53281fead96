/* libFuzzer target: the option parser over argv built from the input
 * (arguments separated by NUL bytes), as memwatch's main calls it. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/options.h"

#define MAX_ARGS 64

/* The parser's messages (usage, errors) go nowhere; the sanitizers and
 * libFuzzer write to fd 2 themselves. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	stdout = fopen("/dev/null", "w");
	stderr = fopen("/dev/null", "w");
	return stdout && stderr ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[MAX_ARGS + 2];
	int argc = 0;
	struct options o;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = "memwatch";
	for (char *p = buf; p <= buf + size && argc <= MAX_ARGS; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	optind = 0;	/* getopt's state starts afresh, as in a new process */
	options_parse(argc, argv, &o);
	options_free(&o);
	free(buf);
	return 0;
}
