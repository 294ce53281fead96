/* uprobes on a file of a process, as sets of links to detach together. */
#ifndef MW_UPROBE_H
#define MW_UPROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bpf_link;
struct bpf_program;

struct link_set {
	struct bpf_link **links;	/* classic perf-event uprobes */
	size_t nlinks, cap_links;
	int *fds;			/* uprobe_multi links */
	size_t nfds, cap_fds;
};

/* One probe to attach: entry or return of a program at a file offset, or a
 * session (both). */
struct probe_req {
	struct bpf_program *prog;
	uint64_t offset, cookie;
	bool retprobe;
	bool session;
};

/* reqs on the file at path (as pid sees it, e.g. /proc/PID/map_files/...),
 * for pid only: one uprobe_multi link per program and direction when multi
 * (the programs loaded for it), else a perf-event uprobe each. 0 or -errno. */
int uprobe_attach(struct link_set *set, bool multi, const struct probe_req *reqs, size_t n, pid_t pid,
		  const char *path);
/* An entry program (and a return program, if exit) at a file offset. */
int attach_entry_exit(struct link_set *set, bool multi, struct bpf_program *enter, struct bpf_program *exit, pid_t pid,
		      const char *path, uint64_t offset);
/* Detaches everything in set (uprobe_multi links side by side) and empties it. */
void link_set_close(struct link_set *set);

#endif
