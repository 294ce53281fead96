#include "util/array.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#define MIN_CAP 16

int array_reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : MIN_CAP;
	void *grown;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	grown = reallocarray(*arr, ncap, elem);
	if (!grown)
		return -ENOMEM;
	*arr = grown;
	*cap = ncap;
	return 0;
}
