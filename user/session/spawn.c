#include "session/spawn.h"

#include <errno.h>
#include <elf.h>
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

#define MAX_INTERP_DEPTH 4	/* the kernel's #! nesting limit (BINPRM_MAX_RECURSION) */

/* interp: the #! interpreter the reason is about; NULL: the command's file. */
static int cannot_run(struct spawn_exe *out, const char *interp, const char *reason)
{
	if (interp)
		snprintf(out->why, sizeof(out->why), "its interpreter %s: %s", interp, reason);
	else
		snprintf(out->why, sizeof(out->why), "%s", reason);
	return -1;
}

/* A #! line's interpreter, in head (NUL-terminated). */
static char *shebang_interpreter(char *head)
{
	char *p = head + 2 + strspn(head + 2, " \t");

	p[strcspn(p, " \t\n")] = 0;
	return p;
}

static int inspect(const char *path, int depth, struct spawn_exe *out)
{
	const char *whose = depth ? path : NULL;
	char head[256] = "";
	struct stat st = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return cannot_run(out, whose, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return cannot_run(out, whose, S_ISDIR(st.st_mode) ? "is a directory" : "is not a regular file");
	}
	ssize_t n = pread(fd, head, sizeof(head) - 1, 0);
	if (n > 2 && head[0] == '#' && head[1] == '!') {
		close(fd);
		head[n] = 0;
		char *interp = shebang_interpreter(head);
		if (depth >= MAX_INTERP_DEPTH)
			return cannot_run(out, NULL, "too many levels of #! interpreters");
		if (!*interp)
			return cannot_run(out, whose, "has a #! line naming no interpreter");
		return inspect(interp, depth + 1, out);
	}
	struct elf_file *elf = elf_file_open(fd);
	close(fd);
	if (!elf)
		return cannot_run(out, whose, "is neither an ELF executable nor a #! script");
	bool runs_here = elf_file_machine(elf) == EM_X86_64 &&
			 (elf_file_type(elf) == ET_EXEC || elf_file_type(elf) == ET_DYN);
	if (runs_here && elf_file_interp(elf))
		out->interp = strdup(elf_file_interp(elf));
	else if (runs_here)
		out->static_exe = strdup(path);
	elf_file_close(elf);
	if (!runs_here)
		return cannot_run(out, whose, "is not an x86-64 executable");
	return out->interp || out->static_exe ? 0 : cannot_run(out, NULL, "out of memory");
}

int spawn_inspect(const char *path, struct spawn_exe *out)
{
	memset(out, 0, sizeof(*out));
	return inspect(path, 0, out);
}

void spawn_exe_free(struct spawn_exe *exe)
{
	free(exe->interp);
	free(exe->static_exe);
	exe->interp = exe->static_exe = NULL;
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
