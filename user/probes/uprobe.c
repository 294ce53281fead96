/* uprobes on a file of a process: perf-event links one by one, or
 * uprobe_multi links (entry, return or session) for many offsets at once,
 * built with the raw syscall (libbpf 1.1 has no API for them). */
#include "probes/uprobe.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/array.h"
#include "util/parallel.h"

static int keep_link(struct link_set *set, struct bpf_link *link)
{
	if (ARRAY_GROW(set->links, set->nlinks, set->cap_links)) {
		bpf_link__destroy(link);
		return -ENOMEM;
	}
	set->links[set->nlinks++] = link;
	return 0;
}

static int keep_fd(struct link_set *set, int fd)
{
	if (ARRAY_GROW(set->fds, set->nfds, set->cap_fds)) {
		close(fd);
		return -ENOMEM;
	}
	set->fds[set->nfds++] = fd;
	return 0;
}

static void close_fd(void *set, size_t i)
{
	close(((struct link_set *)set)->fds[i]);
}

void link_set_close(struct link_set *set)
{
	for (size_t i = 0; i < set->nlinks; i++)
		bpf_link__destroy(set->links[i]);
	/* Closing a uprobe_multi link waits for an RCU grace period: closed
	 * side by side, the probes go away together. */
	parallel_for(set->nfds, close_fd, set);
	free(set->links);
	free(set->fds);
	memset(set, 0, sizeof(*set));
}

static int attach_classic(struct link_set *set, const struct probe_req *r, pid_t pid, const char *path)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = r->cookie, .retprobe = r->retprobe);
	struct bpf_link *link = bpf_program__attach_uprobe_opts(r->prog, pid, path, r->offset, &opts);

	if (!link)
		return -errno;
	return keep_link(set, link);
}

/* BPF_LINK_CREATE for uprobe_multi, laid out as in the kernel's union
 * bpf_attr: Debian's 6.1 uapi header predates it. */
struct uprobe_multi_attr {
	__u32 prog_fd, target_fd, attach_type, flags;
	__u64 path, offsets, ref_ctr_offsets, cookies;
	__u32 cnt, multi_flags, pid;
	__u32 pad[9];
};

#define BPF_TRACE_UPROBE_MULTI_ 48
#define BPF_TRACE_UPROBE_SESSION_ 57
#define BPF_F_UPROBE_MULTI_RETURN_ 1

/* A session link must have flags 0: with the return flag it silently
 * becomes a plain return probe on every call. */
static int link_multi(const struct probe_req *req, pid_t pid, const char *path, const uint64_t *offsets,
		      const uint64_t *cookies, uint32_t n)
{
	struct uprobe_multi_attr attr = {
		.prog_fd = bpf_program__fd(req->prog),
		.attach_type = req->session ? BPF_TRACE_UPROBE_SESSION_ : BPF_TRACE_UPROBE_MULTI_,
		.path = (uintptr_t)path,
		.offsets = (uintptr_t)offsets,
		.cookies = (uintptr_t)cookies,
		.cnt = n,
		.multi_flags = req->retprobe ? BPF_F_UPROBE_MULTI_RETURN_ : 0,
		.pid = pid,
	};
	int fd = syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));

	return fd < 0 ? -errno : fd;
}

/* One uprobe_multi link per (program, direction) for all of a file's
 * offsets: attaching and detaching cost one RCU wait per link, not per probe. */
static int attach_multi(struct link_set *set, const struct probe_req *reqs, size_t n, pid_t pid, const char *path)
{
	uint64_t offsets[64], cookies[64];
	bool done[64] = { false };

	for (size_t i = 0; i < n && i < 64; i++) {
		uint32_t cnt = 0;
		if (done[i])
			continue;
		for (size_t j = i; j < n && j < 64; j++) {
			if (reqs[j].prog != reqs[i].prog || reqs[j].retprobe != reqs[i].retprobe)
				continue;
			offsets[cnt] = reqs[j].offset;
			cookies[cnt++] = reqs[j].cookie;
			done[j] = true;
		}
		int fd = link_multi(&reqs[i], pid, path, offsets, cookies, cnt);
		if (fd < 0 || keep_fd(set, fd))
			return fd < 0 ? fd : -ENOMEM;
	}
	return 0;
}

int uprobe_attach(struct link_set *set, bool multi, const struct probe_req *reqs, size_t n, pid_t pid,
		  const char *path)
{
	if (multi)
		return attach_multi(set, reqs, n, pid, path);
	for (size_t i = 0; i < n; i++) {
		int err = attach_classic(set, &reqs[i], pid, path);
		if (err)
			return err;
	}
	return 0;
}

int attach_entry_exit(struct link_set *set, bool multi, struct bpf_program *enter, struct bpf_program *exit, pid_t pid,
		      const char *path, uint64_t offset)
{
	struct probe_req reqs[2] = {
		{ enter, offset, 0, false, false },
		{ exit, offset, 0, true, false },
	};
	return uprobe_attach(set, multi, reqs, exit ? 2 : 1, pid, path);
}
