/* Formatting into fixed buffers. */
#ifndef MW_TEXT_H
#define MW_TEXT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* snprintf for texts that may be cut short on purpose (no truncation
 * warning at the call site). */
__attribute__((format(printf, 3, 4)))
static inline void put_text(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

#endif
