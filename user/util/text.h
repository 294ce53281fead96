/* Text: formatting into fixed buffers, and reading UTF-8. */
#ifndef MW_TEXT_H
#define MW_TEXT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

/* len bytes as lowercase hex, malloc'ed; NULL when out of memory. */
char *hex_string(const void *bytes, size_t len);

/* Flushes out: 0, or the -errno of any write to it that failed. */
int stream_finish(FILE *out);

/* U+FFFD, for bytes that are not UTF-8. */
#define UTF8_REPLACEMENT "\xef\xbf\xbd"

/* The well-formed UTF-8 sequence at s (NUL-terminated): its length (1-4)
 * and code point into *cp; or 0, with *bad the length of its longest
 * ill-formed start (at least 1), which one U+FFFD replaces, as Unicode
 * recommends. Overlong forms, surrogates and code points above U+10FFFF
 * are ill-formed. */
size_t utf8_decode(const char *s, uint32_t *cp, size_t *bad);

#endif
