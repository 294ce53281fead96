/* -- CMD: the command memwatch runs, held before exec until the probes are
 * in place, and its exit status passed on. */
#ifndef MW_SPAWN_H
#define MW_SPAWN_H

#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

struct spawn {
	pid_t pid;		/* 0: no command (yet) */
	int go_fd;		/* written once to let it exec; -1 after */
	bool done;		/* it exited (or was killed) */
	int status;		/* waitpid's, once done */
	struct rlimit nofile;	/* its file limit */
};

/* nofile: the file limit memwatch started with (it raises its own: it
 * keeps every object file of its targets open), which the command gets. */
void spawn_init(struct spawn *sp, const struct rlimit *nofile);
/* The command's path (cmd itself if it has a '/', else found in PATH),
 * malloc'ed; NULL if it is not there or not executable. */
char *spawn_find(const char *cmd);
/* The dynamic loader path will run under: PT_INTERP of the executable, or
 * of a script's #! interpreter; malloc'ed, NULL for a static binary. */
char *spawn_interpreter(const char *path);
/* Forks the command with every signal unblocked, held before exec until
 * spawn_release. 0 or -errno. */
int spawn_start(struct spawn *sp, const char *path, char **argv);
/* Lets it exec: 0 or -errno. Without a release (spawn_abandon) it exits
 * 127 without running the command. */
int spawn_release(struct spawn *sp);
void spawn_abandon(struct spawn *sp);
/* Waits for it (if not done yet) and returns memwatch's exit status for
 * it: its own, 128+N for signal N. */
int spawn_wait(struct spawn *sp);

#endif
