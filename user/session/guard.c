/* The command's guardian; see guard.h. */
#include "session/guard.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memwatch.h"

void guard_init(struct guard *g)
{
	*g = (struct guard){ .pid = 0, .sock = -1 };
}

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Closes every fd but those in keep (sorted, ascending). */
static void close_all_but(const int *keep, int n)
{
	unsigned int from = 0;

	for (int i = 0; i < n; i++) {
		if ((unsigned int)keep[i] > from)
			syscall(SYS_close_range, from, (unsigned int)keep[i] - 1, 0);
		from = (unsigned int)keep[i] + 1;
	}
	syscall(SYS_close_range, from, ~0u, 0);
}

static int recv_fd(int sock)
{
	char byte;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c;
	int fd;

	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	return fd;
}

/* The guardian: system calls only (memwatch may have threads). It waits for
 * the stops map, then for memwatch to be gone (its fds closed, so its
 * probes are too: no new stop can come), then undoes a stop of memwatch's
 * the command may sit at. Signals stay blocked as memwatch blocked them: a
 * terminal's ^C is memwatch's to handle. */
static void run_guardian(int sock, pid_t parent, pid_t cmd)
{
	int parent_fd = pidfd_open(parent), cmd_fd = pidfd_open(cmd);

	prctl(PR_SET_NAME, "memwatch-guard");
	setpgid(0, 0);
	if (parent_fd < 0 || cmd_fd < 0 || getppid() != parent)
		_exit(0);	/* memwatch is already gone: the command never ran */
	int keep[] = { 2, sock, parent_fd, cmd_fd };
	for (int i = 1; i < 4; i++)	/* sorted: fds are small and distinct */
		for (int j = i; j > 0 && keep[j] < keep[j - 1]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	close_all_but(keep, 4);
	int map_fd = recv_fd(sock);
	if (map_fd < 0)
		_exit(0);
	const volatile struct mw_stops *st = mmap(NULL, sizeof(struct mw_stops), PROT_READ, MAP_SHARED, map_fd, 0);
	close(map_fd);
	close(sock);
	if (st == MAP_FAILED)
		_exit(1);
	struct pollfd pfd = { .fd = parent_fd, .events = POLLIN };
	while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
		;
	if (st->sent != st->resumed && !syscall(SYS_pidfd_send_signal, cmd_fd, SIGCONT, NULL, 0))
		dprintf(2, "memwatch: memwatch (pid %d) ended while pid %d sat at a stop of its own: resumed it\n",
			(int)parent, (int)cmd);
	_exit(0);
}

int guard_start(struct guard *g, pid_t cmd)
{
	int sv[2];
	pid_t parent = getpid();

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int err = -errno;
		close(sv[0]);
		close(sv[1]);
		return err;
	}
	if (pid == 0)
		run_guardian(sv[1], parent, cmd);
	close(sv[1]);
	g->pid = pid;
	g->sock = sv[0];
	return 0;
}

int guard_arm(struct guard *g, int stops_fd)
{
	char byte = 'm';
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	memset(ctl.buf, 0, sizeof(ctl.buf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &stops_fd, sizeof(int));
	if (sendmsg(g->sock, &msg, MSG_NOSIGNAL) != 1)
		return -errno;
	return 0;
}

void guard_end(struct guard *g)
{
	if (g->sock >= 0)
		close(g->sock);
	if (g->pid > 0) {
		kill(g->pid, SIGKILL);
		while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	guard_init(g);
}
