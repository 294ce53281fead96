/* For unit tests that build fixture libraries and programs at run time
 * (sources in tests/unit/fixtures) into a temporary directory. */
#ifndef TEST_FIXTURE_BUILD_H
#define TEST_FIXTURE_BUILD_H

#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* system() of a formatted command. */
__attribute__((format(printf, 1, 2)))
static inline int run(const char *fmt, ...)
{
	char cmd[4 * PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* dir/name in buf (PATH_MAX bytes). */
static inline const char *fixture_path(char *buf, const char *dir, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s", dir, name);
	return buf;
}

/* tests/unit/fixtures into src (PATH_MAX bytes): next to this header as
 * compiled (relative to the repository root, the usual working directory),
 * else found from the binary in .output/tests/. */
static inline bool fixture_sources(char *src)
{
	char file[PATH_MAX], exe[PATH_MAX];

	snprintf(file, sizeof(file), "%s", __FILE__);
	snprintf(src, PATH_MAX, "%s/fixtures", dirname(file));
	if (access(src, R_OK) == 0)
		return true;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	snprintf(src, PATH_MAX, "%s/../../tests/unit/fixtures", dirname(exe));
	return access(src, R_OK) == 0;
}

#endif
