#include "session/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "elf/elf_file.h"

void spawn_init(struct spawn *sp, const struct rlimit *nofile)
{
	*sp = (struct spawn){ .go_fd = -1, .nofile = *nofile };
}

char *spawn_find(const char *cmd)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (strchr(cmd, '/'))
		return access(cmd, X_OK) ? NULL : strdup(cmd);
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;) {
		size_t len = strcspn(p, ":");
		if (snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, len ? p : ".", cmd) < (int)sizeof(buf)) {
			struct stat st;
			if (!stat(buf, &st) && S_ISREG(st.st_mode) && !access(buf, X_OK))
				return strdup(buf);
		}
		p += len + (p[len] == ':');
	}
	return NULL;
}

static char *interpreter_of(const char *exe, int depth)
{
	int fd = open(exe, O_RDONLY | O_CLOEXEC);
	char head[256] = "";
	char *interp = NULL;

	if (fd < 0)
		return NULL;
	ssize_t n = pread(fd, head, sizeof(head) - 1, 0);
	if (n > 2 && head[0] == '#' && head[1] == '!' && depth == 0) {
		head[n] = 0;
		char *p = head + 2 + strspn(head + 2, " \t");
		p[strcspn(p, " \t\n")] = 0;
		close(fd);
		return interpreter_of(p, depth + 1);
	}
	struct elf_file *elf = elf_file_open(fd);
	close(fd);
	if (elf) {
		if (elf_file_interp(elf))
			interp = strdup(elf_file_interp(elf));
		elf_file_close(elf);
	}
	return interp;
}

char *spawn_interpreter(const char *path)
{
	return interpreter_of(path, 0);
}

/* The child: waits for a byte on the pipe, so the loader hook is in place
 * before ld.so runs. */
static void run_child(const struct spawn *sp, int go, const char *path, char **argv)
{
	sigset_t none;
	char byte;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setrlimit(RLIMIT_NOFILE, &sp->nofile);
	if (read(go, &byte, 1) != 1)
		_exit(127);
	execv(path, argv);
	fprintf(stderr, "memwatch: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int spawn_start(struct spawn *sp, const char *path, char **argv)
{
	int pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		int err = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return err;
	}
	if (pid == 0) {
		close(pfd[1]);
		run_child(sp, pfd[0], path, argv);
	}
	close(pfd[0]);
	sp->pid = pid;
	sp->go_fd = pfd[1];
	return 0;
}

int spawn_release(struct spawn *sp)
{
	int err = write(sp->go_fd, "g", 1) == 1 ? 0 : -errno;

	close(sp->go_fd);
	sp->go_fd = -1;
	return err;
}

void spawn_abandon(struct spawn *sp)
{
	if (sp->go_fd >= 0)
		close(sp->go_fd);	/* the child exits without running the command */
	sp->go_fd = -1;
	if (sp->pid > 0)
		waitpid(sp->pid, NULL, 0);
	sp->pid = 0;
}

int spawn_wait(struct spawn *sp)
{
	int status = 0;

	if (!sp->done) {
		while (waitpid(sp->pid, &status, 0) < 0 && errno == EINTR)
			;
		sp->status = status;
		sp->done = true;
	}
	if (WIFEXITED(sp->status))
		return WEXITSTATUS(sp->status);
	if (WIFSIGNALED(sp->status))
		return 128 + WTERMSIG(sp->status);
	return 1;
}
