/* Growable arrays: the caller keeps the pointer, the length and the
 * capacity (a size_t); these only make room. */
#ifndef MW_ARRAY_H
#define MW_ARRAY_H

#include <stddef.h>

/* Room for need elements of elem bytes in *arr, whose capacity is *cap:
 * doubles it (from 16) until they fit. 0, or -ENOMEM with *arr and *cap
 * unchanged. */
int array_reserve(void **arr, size_t *cap, size_t need, size_t elem);

/* Room for one more element at arr[len]: 0 or -ENOMEM. */
#define ARRAY_GROW(arr, len, cap)                                                     \
	({                                                                            \
		void *arr_ = (arr);                                                   \
		int rc_ = array_reserve(&arr_, &(cap), (size_t)(len) + 1, sizeof(*(arr))); \
		(arr) = arr_;                                                         \
		rc_;                                                                  \
	})

#endif
