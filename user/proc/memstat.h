/* What /proc says about a process's memory: RSS by kind, smaps_rollup's
 * Anonymous and LazyFree, and glibc's arena count. */
#ifndef MW_MEMSTAT_H
#define MW_MEMSTAT_H

#include <stdint.h>
#include <sys/types.h>

struct maps;

struct memstat {
	int64_t rss_anon, rss_file, rss_shmem;	/* bytes, -1 if unknown */
	int64_t anonymous, lazyfree;
};

/* 0, or -errno (the process is gone, say); unknown fields are -1. */
int memstat_read(pid_t pid, struct memstat *out);
/* The RSS fields only (/proc/PID/status: cheap, no page-table walk). */
int memstat_read_status(pid_t pid, struct memstat *out);
/* glibc arenas: the main one, plus one per 64 MiB-aligned anonymous heap
 * reservation (HEAP_MAX_SIZE on 64-bit) the maps hold. */
int glibc_arenas(const struct maps *m);

#endif
