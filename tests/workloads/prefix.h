/* Calls a prefixed jemalloc (PREFIX=je_ or _rjem_) instead of malloc & co,
 * as programs built against one do. pvalloc and reallocarray stay glibc's:
 * jemalloc has none. */
#define MW_CAT2(a, b) a##b
#define MW_CAT(a, b) MW_CAT2(a, b)
#define malloc MW_CAT(PREFIX, malloc)
#define calloc MW_CAT(PREFIX, calloc)
#define realloc MW_CAT(PREFIX, realloc)
#define free MW_CAT(PREFIX, free)
#define posix_memalign MW_CAT(PREFIX, posix_memalign)
#define aligned_alloc MW_CAT(PREFIX, aligned_alloc)
#define memalign MW_CAT(PREFIX, memalign)
#define valloc MW_CAT(PREFIX, valloc)
