#include "proc/procstat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int procstat_parse(const char *text, struct proc_stat *out)
{
	/* comm may hold spaces and parentheses: the fields restart after
	 * the last ')'. */
	const char *lp = strchr(text, '('), *rp = strrchr(text, ')');
	unsigned long long utime, stime, start;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (!lp || !rp || rp < lp)
		return -EINVAL;
	len = (size_t)(rp - lp - 1) < sizeof(out->comm) - 1 ? (size_t)(rp - lp - 1) : sizeof(out->comm) - 1;
	memcpy(out->comm, lp + 1, len);
	/* state (3), ppid, pgrp, session, tty_nr, tpgid, flags (9), minflt,
	 * cminflt, majflt, cmajflt, utime (14), stime (15), cutime, cstime,
	 * priority, nice, num_threads, itrealvalue, starttime (22). */
	if (sscanf(rp + 1, " %c %*d %*d %*d %*d %*d %lu %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu",
		   &out->state, &out->flags, &utime, &stime, &start) != 5)
		return -EINVAL;
	out->utime = utime;
	out->stime = stime;
	out->start_time = start;
	return 0;
}

int procstat_read(pid_t pid, struct proc_stat *out)
{
	char path[64], buf[1024];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return errno == ESRCH ? -ENOENT : -errno;
	buf[n] = 0;
	return procstat_parse(buf, out);
}
