/* /proc/PID/stat: a process's name, state, flags, CPU time and start time. */
#ifndef MW_PROCSTAT_H
#define MW_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

#define PROC_PF_KTHREAD 0x00200000	/* flags: a kernel thread */

struct proc_stat {
	char comm[16];		/* at most 15 bytes, as the kernel keeps it */
	char state;		/* R, S, D, Z, ... */
	unsigned long flags;	/* PF_* */
	uint64_t utime, stime;	/* clock ticks (USER_HZ) */
	uint64_t start_time;	/* clock ticks after boot: tells a reused pid */
};

/* 0, or -errno: -ENOENT once the process is gone, -EINVAL for a line that
 * does not read as one. */
int procstat_read(pid_t pid, struct proc_stat *out);
/* The same from the file's text (NUL-terminated). */
int procstat_parse(const char *text, struct proc_stat *out);

#endif
