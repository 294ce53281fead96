/* The BPF loaders' configurations as the command line asks for them. */
#ifndef MW_BPFCONFIG_H
#define MW_BPFCONFIG_H

#include <sys/types.h>

#include "cli/options.h"
#include "kernel/heapbpf.h"
#include "kernel/pages.h"

/* tgid: the target, or 0 for every process (--all). */
void bpfconfig_heap(const struct options *o, pid_t tgid, struct heapbpf_config *out);
void bpfconfig_pages(const struct options *o, pid_t tgid, struct pages_config *out);

#endif
