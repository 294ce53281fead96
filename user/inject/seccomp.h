/* Whether a thread's seccomp filters let a system call through: the
 * filters are read with PTRACE_SECCOMP_GET_FILTER (the thread held) and run
 * here, as the kernel would, on the call memwatch is about to inject. A
 * filter that would kill, trap or fail it means no injection: the target
 * gets uprobes instead. */
#ifndef MW_SECCOMP_H
#define MW_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sock_filter;

/* The verdict (SECCOMP_RET_*, data bits cleared) of one classic BPF filter
 * for system call nr with args at ip; SECCOMP_RET_KILL_PROCESS for a
 * program that does not run to a return. */
uint32_t seccomp_run(const struct sock_filter *prog, size_t len, int nr, uint64_t ip, const uint64_t args[6]);

/* Whether every filter of held thread tid allows (or only logs) each of
 * the calls: nr[i] with args[i]. 0 if so, -EPERM with the first refused
 * call's number in *refused, -errno if the filters cannot be read. */
int seccomp_allows(pid_t tid, const int *nr, const uint64_t (*args)[6], size_t ncalls, uint64_t ip, int *refused);

#endif
