/* -- CMD: a guardian process that resumes the command if memwatch dies
 * (SIGKILL, the OOM killer) while the command sits at a stop memwatch's
 * programs sent it, and does nothing else: a stop from anyone else stays. */
#ifndef MW_GUARD_H
#define MW_GUARD_H

#include <sys/types.h>

struct guard {
	pid_t pid;	/* the guardian; 0: none */
	int sock;	/* memwatch's end of the socket the stops map goes through; -1 */
};

void guard_init(struct guard *g);
/* Forks the guardian of command cmd (memwatch's child, not exec'd yet):
 * early, while memwatch is small, since the guardian shares its pages.
 * 0 or -errno. */
int guard_start(struct guard *g, pid_t cmd);
/* Hands the guardian the stops map (memwatch.h's struct mw_stops), before
 * the command may be stopped. 0 or -errno. */
int guard_arm(struct guard *g, int stops_fd);
/* memwatch ends normally: the guardian goes (killed and reaped). */
void guard_end(struct guard *g);

#endif
