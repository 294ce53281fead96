#include "util/text.h"

#include <errno.h>
#include <stdlib.h>

char *hex_string(const void *bytes, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = bytes;
	char *s = malloc(len * 2 + 1);

	if (!s)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		s[2 * i] = digits[b[i] >> 4];
		s[2 * i + 1] = digits[b[i] & 15];
	}
	s[len * 2] = '\0';
	return s;
}

int stream_finish(FILE *out)
{
	errno = 0;
	if (fflush(out) != 0)
		return -(errno ? errno : EIO);
	return ferror(out) ? -EIO : 0;
}

size_t utf8_decode(const char *str, uint32_t *cp, size_t *bad)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		need = 2, *cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		need = 3, *cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 4, *cp = c & 0x07;
	else {
		*bad = 1;
		return 0;
	}
	/* Second byte ranges that exclude overlong forms, surrogates and code
	 * points above U+10FFFF. */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	for (size_t i = 1; i < need; i++, lo = 0x80, hi = 0xbf) {
		if (s[i] < lo || s[i] > hi) {	/* also stops at the NUL */
			*bad = i;
			return 0;
		}
		*cp = *cp << 6 | (s[i] & 0x3f);
	}
	return need;
}
