/* What memwatch tells its user: one-line errors, and the clocks its
 * reports are stamped with. */
#ifndef MW_REPORT_H
#define MW_REPORT_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* "memwatch: <message>" on stderr, one line: the message escaped as
 * text_escape does (a comm or path cannot forge a line). */
__attribute__((format(printf, 1, 2)))
void report_error(const char *fmt, ...);
/* The same line on f: a note, or -v's detail. */
__attribute__((format(printf, 2, 3)))
void report_to(FILE *f, const char *fmt, ...);

/* clk's time in nanoseconds. */
static inline uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

#endif
