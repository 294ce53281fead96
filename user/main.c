/* memwatch: attach to a process (or start one, or watch the whole host),
 * sample its heap and the kernel side of its memory, write pprof. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/options.h"
#include "host/host.h"
#include "kernel/bpflog.h"
#include "session/single.h"
#include "util/report.h"

/* CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON, in the effective set. */
static bool have_privileges(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	unsigned long long caps = 0;
	char line[256];

	if (!f)
		return geteuid() == 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	fclose(f);
	bool sys_admin = caps & (1ull << 21);
	bool bpf_perfmon = (caps & (1ull << 39)) && (caps & (1ull << 38));
	return sys_admin || bpf_perfmon;
}

static int check_environment(void)
{
	if (!have_privileges()) {
		report_error("permission denied: run as root (needs CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN; uid %d has none)",
			     (int)geteuid());
		return -1;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		report_error("this kernel has no BTF (/sys/kernel/btf/vmlinux): memwatch needs CONFIG_DEBUG_INFO_BTF=y");
		return -1;
	}
	return 0;
}

/* memwatch keeps every object file (and debug file) of its targets open:
 * its own file limit goes up; a command gets the original back. */
static void raise_fd_limit(struct rlimit *original)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, original))
		return;
	lim = *original;
	if (lim.rlim_cur < lim.rlim_max) {
		lim.rlim_cur = lim.rlim_max;
		setrlimit(RLIMIT_NOFILE, &lim);
	}
}

int main(int argc, char **argv)
{
	struct options opt;
	struct rlimit nofile = { 0 };
	int r = options_parse(argc, argv, &opt);

	if (r)
		return r > 0 ? 0 : 2;
	setvbuf(stderr, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	bpflog_install(opt.verbose);
	if (check_environment()) {
		options_free(&opt);
		return 1;
	}
	raise_fd_limit(&nofile);
	r = opt.all ? host_run(&opt) : single_run(&opt, &nofile);
	options_free(&opt);
	return r;
}
