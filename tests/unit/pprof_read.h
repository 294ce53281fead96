/* Reading a profile back, for the tests: gzipped or raw profile.proto
 * (zlib's gz reader takes both). Free the result with
 * perftools__profiles__profile__free_unpacked(prof, NULL); NULL on error. */
#ifndef MW_TEST_PPROF_READ_H
#define MW_TEST_PPROF_READ_H

#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

#include "profile.pb-c.h"

static inline Perftools__Profiles__Profile *pprof_read_file(const char *path)
{
	gzFile gz = gzopen(path, "rb");
	Perftools__Profiles__Profile *prof = NULL;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int n = 0;

	if (!gz)
		return NULL;
	do {
		if (len == cap) {
			uint8_t *nb = realloc(buf, cap = cap ? 2 * cap : 65536);
			if (!nb)
				goto out;
			buf = nb;
		}
		n = gzread(gz, buf + len, (unsigned)(cap - len));
		len += n > 0 ? (size_t)n : 0;
	} while (n > 0);
	if (n == 0)
		prof = perftools__profiles__profile__unpack(NULL, len, buf);
out:
	gzclose(gz);
	free(buf);
	return prof;
}

#endif
