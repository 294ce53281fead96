#include "kernel/bpflog.h"

#include <bpf/libbpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* libbpf's print callback takes no context pointer: what it needs has to
 * live here, set once by bpflog_install. */
static char detail[258];	/* ": " and the message */
static int verbosity;

static int bpflog_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	va_list copy;

	if (level == LIBBPF_DEBUG)
		return 0;
	va_copy(copy, ap);
	vsnprintf(detail + 2, sizeof(detail) - 2, fmt, copy);
	va_end(copy);
	detail[strcspn(detail, "\n")] = '\0';
	detail[0] = ':';
	detail[1] = ' ';
	return verbosity >= 2 ? vfprintf(stderr, fmt, ap) : 0;
}

void bpflog_install(int verbose)
{
	verbosity = verbose;
	libbpf_set_print(bpflog_print);
}

const char *bpflog_detail(void)
{
	return detail;
}
