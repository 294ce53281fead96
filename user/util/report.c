#include "util/report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/text.h"

/* The message escaped (text_escape): names and paths from the targets
 * (comms, file names, symbols) cannot forge lines or drive a terminal. One
 * write, so that lines of concurrent writers do not interleave. */
static void report_v(FILE *f, const char *fmt, va_list ap)
{
	char *msg = NULL;
	int n = vasprintf(&msg, fmt, ap);

	if (n < 0) {
		fputs("memwatch: out of memory\n", f);
		return;
	}
	size_t size = TEXT_ESCAPED((size_t)n);
	char *safe = malloc(size);
	fprintf(f, "memwatch: %s\n", safe ? text_escape(msg, safe, size) : "out of memory");
	free(safe);
	free(msg);
}

void report_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report_v(stderr, fmt, ap);
	va_end(ap);
}

void report_to(FILE *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report_v(f, fmt, ap);
	va_end(ap);
}
