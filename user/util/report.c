#include "util/report.h"

#include <stdarg.h>
#include <stdio.h>

void report_error(const char *fmt, ...)
{
	va_list ap;

	fputs("memwatch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
