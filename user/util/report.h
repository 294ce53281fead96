/* What memwatch tells its user: one-line errors, and the clocks its
 * reports are stamped with. */
#ifndef MW_REPORT_H
#define MW_REPORT_H

#include <stdint.h>
#include <time.h>

/* "memwatch: <message>" on stderr, one line. */
__attribute__((format(printf, 1, 2)))
void report_error(const char *fmt, ...);

/* clk's time in nanoseconds. */
static inline uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

#endif
