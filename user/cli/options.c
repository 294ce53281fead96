#include "cli/options.h"

#include "cli/bounds.h"
#include "inject/hooks.h"
#include "proc/cgroup.h"
#include "probes/allocators.h"
#include "util/regex_cost.h"
#include "version.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	OPT_MAX_LIVE = 256,
	OPT_RING_BYTES,
	OPT_EMPTY_PROBES,
	OPT_STACK_MODE,
	OPT_STACK_BYTES,
	OPT_ALLOCATOR,
	OPT_ATTACH_MODE,
	OPT_ALLOC_ONLY,
	OPT_MAX_OVERHEAD,
	OPT_PAGES_ONLY,
	OPT_PAGES_OUTPUT,
	OPT_PAGE_SAMPLE_BYTES,
	OPT_LATENCY_PROBE,
	OPT_TIMELINE,
	OPT_PLOT,
	OPT_ALL,
	OPT_COMM,
	OPT_CGROUP,
	OPT_LISTEN,
	OPT_OUTPUT_DIR,
	OPT_OUTPUT_KEEP,
	OPT_OUTPUT_MAX_BYTES,
	OPT_MAX_PROCESSES,
	OPT_MAX_PROFILED,
	OPT_HOOK,
	OPT_WEB_CONFIG,
	OPT_INSECURE_LISTEN,
};

#define STACK_BYTES_DEFAULT 32768
#define STACK_BYTES_MIN 4096
#define STACK_BYTES_MAX 65536

static const char usage_text[] =
	"Usage: memwatch -p PID [options]\n"
	"       memwatch [options] -- CMD [ARGS...]\n"
	"       memwatch --all [--comm REGEX] [--pid LIST] [--cgroup PATH]\n"
	"                [--listen [ADDR:]PORT|unix:PATH] [--output-dir DIR] [options]\n"
	"\n"
	"Attaches to a running process (or starts CMD) and samples its heap\n"
	"allocations with uprobes, then writes a gzipped pprof heap profile\n"
	"(alloc_objects, alloc_space, inuse_objects, inuse_space) that go tool\n"
	"pprof, Parca and Pyroscope read. Needs root (CAP_BPF, CAP_PERFMON,\n"
	"CAP_SYS_ADMIN) and a kernel with BTF.\n"
	"\n"
	"Target:\n"
	"  -p, --pid PID            profile the running process PID (all threads)\n"
	"  -- CMD [ARGS...]         run CMD and profile it from its first allocation;\n"
	"                           memwatch exits with CMD's exit status (127 if CMD\n"
	"                           cannot be run)\n"
	"\n"
	"Host-wide:\n"
	"      --all                every process on the host: the kernel side\n"
	"                           (faults, purges, refaults, syscall latency) for\n"
	"                           all; heap probes only for the processes matched\n"
	"                           below, found as they start (exec) or fork\n"
	"      --comm REGEX         profile the heap of processes whose comm matches\n"
	"                           REGEX (POSIX extended; repeatable)\n"
	"      --pid LIST           ... whose pid is in LIST (comma-separated;\n"
	"                           repeatable)\n"
	"      --cgroup PATH        ... that are in cgroup PATH or below it\n"
	"                           (/sys/fs/cgroup/... or as /proc/PID/cgroup\n"
	"                           names it; repeatable)\n"
	"      --listen [ADDR:]PORT serve /metrics (Prometheus) and /debug/pprof/\n"
	"                           {heap,allocs,pages}?pid=N[&seconds=N] (pprof);\n"
	"                           127.0.0.1 unless ADDR is given; unix:PATH: a\n"
	"                           Unix socket, mode 0600. They expose every\n"
	"                           profiled process's stacks, paths and build ids\n"
	"      --web-config FILE    TLS and basic authentication for --listen, in\n"
	"                           the Prometheus exporter-toolkit format\n"
	"      --insecure-listen    allow a --listen address other hosts reach\n"
	"                           without TLS and authentication\n"
	"      --output-dir DIR     write each profiled process's heap and page\n"
	"                           profiles there every -i seconds (default 60)\n"
	"      --output-keep N      keep at most N files there (default 1000; 0:\n"
	"                           no count bound)\n"
	"      --output-max-bytes N keep at most N bytes there (default 1g; 0: no\n"
	"                           byte bound); the oldest files go first\n"
	"      --max-processes N    processes tracked at once (default 4096); past\n"
	"                           it the least recently active are evicted\n"
	"      --max-profiled N     processes with heap probes at once (default\n"
	"                           64); past it the least recently active lose them\n"
	"      --max-live-samples N the same as --max-live, shared by all processes\n"
	"\n"
	"Output:\n"
	"  -o, --output FILE        profile file (default memwatch-PID.pb.gz; - is\n"
	"                           stdout; FIFOs and devices are written into)\n"
	"  -d, --duration SEC       stop after SEC seconds (default: when the target\n"
	"                           exits or on SIGINT/SIGTERM); the profile is always\n"
	"                           written\n"
	"  -i, --interval SEC       print a live summary to stderr every SEC seconds:\n"
	"                           top sites by in-use bytes, totals, samples, losses\n"
	"  -v, --verbose            say which files, functions and offsets were probed\n"
	"\n"
	"The kernel side (on by default; tracepoints, no uprobes):\n"
	"      --pages-only         only the kernel side: page faults, purges\n"
	"                           (madvise, munmap, brk), refaults and syscall\n"
	"                           latency; no probe in the target, any allocator\n"
	"      --pages-output FILE  page profile (stacks that fault memory in and\n"
	"                           that purge it; default: the output's name with\n"
	"                           .pages before .pb.gz; with --pages-only, -o)\n"
	"      --page-sample-bytes N  one fault or purge stack per N bytes (default 8m)\n"
	"      --latency-probe FILE:FUNCTION  time every call of FUNCTION in FILE\n"
	"                           (as the target names it; FUNCTION alone: its\n"
	"                           executable) and correlate it with thrash\n"
	"      --timeline FILE      per-interval timeline, CSV or JSON by extension\n"
	"                           (interval: -i, or 1 s); with --all one per\n"
	"                           profiled process, FILE with -PID\n"
	"      --plot FILE.svg      the timeline drawn: live heap vs RSS, purges and\n"
	"                           refaults, latency percentiles (--all: per process)\n"
	"\n"
	"Allocators (found by themselves: glibc, jemalloc with or without je_ or\n"
	"_rjem_ prefix, gperftools tcmalloc, Google tcmalloc; shared or static):\n"
	"      --allocator NAMES    probe only these (comma-separated: glibc,\n"
	"                           jemalloc, tcmalloc, tcmalloc-google), recognized\n"
	"                           by their symbols whatever their files are called\n"
	"\n"
	"Sampling:\n"
	"  -s, --sample-bytes N     mean sampling interval in bytes (default 524288;\n"
	"                           suffixes k, m, g); 1 records every allocation\n"
	"      --alloc-only         allocation profile only (alloc_objects,\n"
	"                           alloc_space): no probe on free and its kin, one\n"
	"                           trap per allocation; in-use values are absent\n"
	"      --max-overhead PCT   hold what the uprobe-based allocator probes cost\n"
	"                           the target near PCT percent of its own CPU time:\n"
	"                           they are attached only part of the time, as the\n"
	"                           cost per trap measured in the target (its system\n"
	"                           time per trap) and the trap rate allow; the\n"
	"                           profile says what share of the time it covers,\n"
	"                           and in-use values become partial (frees while\n"
	"                           detached are not seen)\n"
	"      --max-live N         sampled blocks tracked at once (default 262144);\n"
	"                           more are counted as lost\n"
	"      --ring-bytes N       ring buffer for events, one for the heap side and\n"
	"                           one for the kernel side (default 16m; with --all\n"
	"                           4m: each counts twice in memwatch's RSS); at least\n"
	"                           an event with its stack, at most 1/32 of memory\n"
	"      --hook MODE          how allocator entries are hooked: auto (default):\n"
	"                           in-process detours where they can be installed\n"
	"                           safely (ptrace; only sampled calls trap), uprobes\n"
	"                           elsewhere; inline: detours or an error; uprobe:\n"
	"                           uprobes only (a trap per call)\n"
	"      --attach-mode MODE   auto (default): the first the kernel offers of\n"
	"                           session (uprobe sessions, 6.13+: unsampled calls\n"
	"                           get no return probe), multi (uprobe_multi links,\n"
	"                           6.6+), classic (one perf event per probe)\n"
	"\n"
	"Stacks:\n"
	"      --stack-mode MODE    auto (default): unwind with the binaries' CFI\n"
	"                           (.eh_frame/.debug_frame), using the frame-pointer\n"
	"                           rule only for modules without CFI; dwarf: CFI only;\n"
	"                           fp: the kernel's frame-pointer walk, cut (and\n"
	"                           marked) where a function keeps no frame pointer\n"
	"      --stack-bytes N      stack copied per sampled call for unwinding\n"
	"                           (default 32k, 4k..64k, a multiple of 4k)\n"
	"\n"
	"Benchmarking:\n"
	"      --empty-probes       attach empty programs at the same probe sites and\n"
	"                           collect nothing: the cost floor of the probes\n"
	"                           (with --pages-only: of the kernel side's tracepoints)\n"
	"\n"
	"  -h, --help               this help\n"
	"  -V, --version            print the version\n";

int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;

	if (errno || end == s || *s < '0' || *s > '9')
		return -1;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || (shift && v > (ULLONG_MAX >> shift)))
		return -1;
	*out = v << shift;
	return 0;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);

	if (errno || end == s || *end || !(v > 0) || v > 1e9)
		return -1;
	*out = v;
	return 0;
}

static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "memwatch: invalid %s '%s' (see memwatch --help)\n", what, arg);
	return -1;
}

static int parse_u32(const char *s, uint32_t min, uint32_t *out)
{
	uint64_t v;

	if (parse_size(s, &v) || v < min || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n > k && !strcmp(s + n - k, suffix);
}

static const char *const hook_modes[] = { [HOOK_AUTO] = "auto", [HOOK_INLINE] = "inline", [HOOK_UPROBE] = "uprobe" };

const char *hook_mode_name(int mode)
{
	return hook_modes[mode];
}

static int parse_hook_mode(const char *s, int *out)
{
	for (int m = HOOK_AUTO; m <= HOOK_UPROBE; m++) {
		if (!strcmp(s, hook_modes[m])) {
			*out = m;
			return 0;
		}
	}
	return -1;
}

static int oom(void)
{
	fprintf(stderr, "memwatch: out of memory\n");
	return -1;
}

/* Appends to a growable array of pointers. */
static int push(const char ***v, size_t *n, const char *s)
{
	const char **nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -1;
	nv[(*n)++] = s;
	*v = nv;
	return 0;
}

/* Compiled: 80-370 bytes a node, and under 0.1 s even for nested
 * repetitions of what may be empty, '((p*)+)+...' (measured: 0.07 s at
 * 1,300 nodes, 0.7 s at 5,000, 20 s at 20,000). */
#define REGEX_MAX_NODES 2000

static int check_regex(const char *rx)
{
	regex_t compiled;

	if (regex_nodes(rx) > REGEX_MAX_NODES) {
		fprintf(stderr, "memwatch: --comm: the regex repeats a repetition ('a*+') or would compile to more "
				"than %d nodes: simplify it\n", REGEX_MAX_NODES);
		return -1;
	}
	int err = regcomp(&compiled, rx, REG_EXTENDED | REG_NOSUB);

	if (err) {
		char why[128];
		regerror(err, &compiled, why, sizeof(why));
		fprintf(stderr, "memwatch: --comm %s: %s\n", rx, why);
		return -1;
	}
	/* A regex that matches "" ('', 'x|', '.*') matches every comm: most
	 * likely an empty shell variable; '.' says "every process" on purpose. */
	bool matches_all = !regexec(&compiled, "", 0, NULL, 0);
	regfree(&compiled);
	if (matches_all) {
		fprintf(stderr, "memwatch: --comm '%s' matches the empty string, so every process (for every "
				"process, say --comm .)\n", rx);
		return -1;
	}
	return 0;
}

static int check_cgroup(const char *path)
{
	int err = cgroup_check(path);

	if (err)
		fprintf(stderr, "memwatch: --cgroup '%s': %s\n", path,
			err == -ENOENT ? "no such cgroup (it must exist when memwatch starts: name its parent to "
					 "cover cgroups created later)"
			: err == -EINVAL ? "no '.' or '..' in a cgroup path" : strerror(-err));
	return err ? -1 : 0;
}

static int parse_one_pid(const char *s, pid_t *out)
{
	uint64_t v;

	if (parse_size(s, &v) || v < 1 || v > INT_MAX || strpbrk(s, "kKmMgG"))
		return bad("PID", s);
	*out = (pid_t)v;
	return 0;
}

/* "1,2,3": every item a pid; an empty list or item ('', '1,,2') is refused:
 * it would select nothing, silently. */
static int parse_pid_list(struct options *o, const char *list)
{
	char *copy = strdup(list), *rest = copy, *tok;
	int r = copy ? 0 : oom();

	while (!r && (tok = strsep(&rest, ","))) {
		pid_t *np = realloc(o->pids, (o->npids + 1) * sizeof(*np));
		if (!np) {
			r = oom();
			break;
		}
		o->pids = np;
		if (!*tok)
			r = bad("--pid LIST (comma-separated pids)", list);
		else if (!(r = parse_one_pid(tok, &np[o->npids])))
			o->npids++;
	}
	free(copy);
	return r;
}

/* -p PID alone, or with --all any number of comma-separated lists. */
static int parse_pids(struct options *o, const char **args, size_t n)
{
	if (!o->all) {
		if (n > 1) {
			fprintf(stderr, "memwatch: one -p PID at a time (--all --pid LIST profiles several)\n");
			return -1;
		}
		return n ? parse_one_pid(args[0], &o->pid) : 0;
	}
	for (size_t i = 0; i < n; i++)
		if (parse_pid_list(o, args[i]))
			return -1;
	return 0;
}

static int check_host_options(const struct options *o)
{
	const char *clash = o->cmd ? "-- CMD" : o->output ? "-o" : o->latency_probe ? "--latency-probe"
		: o->pages_output ? "--pages-output" : o->max_overhead ? "--max-overhead"
		: o->empty_probes ? "--empty-probes" : NULL;

	if (clash) {
		fprintf(stderr, "memwatch: %s profiles one process: it cannot go with --all\n", clash);
		return -1;
	}
	if ((o->web_config || o->insecure_listen) && !o->listen) {
		fprintf(stderr, "memwatch: --web-config and --insecure-listen go with --listen\n");
		return -1;
	}
	if (o->pages_only && (o->ncomms || o->ncgroups)) {
		fprintf(stderr, "memwatch: --pages-only probes no heap: --comm and --cgroup have nothing to select\n");
		return -1;
	}
	return 0;
}

void options_free(struct options *o)
{
	free(o->comms);
	free(o->pids);
	free(o->cgroups);
}

/* ---- the sizes within the machine's bounds ---- */

/* "512m", "64k", "4096": sizes as the options take them. */
static const char *size_text(uint64_t v, char buf[32])
{
	const char *unit = "";

	if (v && !(v & ((1ull << 30) - 1)))
		v >>= 30, unit = "g";
	else if (v && !(v & ((1ull << 20) - 1)))
		v >>= 20, unit = "m";
	else if (v && !(v & ((1ull << 10) - 1)))
		v >>= 10, unit = "k";
	snprintf(buf, 32, "%" PRIu64 "%s", v, unit);
	return buf;
}

static uint32_t clamp(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v > hi ? hi : v < lo ? lo : v;
}

static int check_ring(struct options *o, const struct bounds *b, const struct machine *m)
{
	char v[32], lim[32], st[32];

	if (!o->ring_bytes) {
		o->ring_bytes = clamp(o->all ? RING_DEFAULT_ALL : RING_DEFAULT, b->ring_min, b->ring_max);
		return 0;
	}
	if (o->ring_bytes < b->ring_min) {
		fprintf(stderr, "memwatch: --ring-bytes %s: at least %s with --stack-bytes %s (a ring must hold "
				"an event with its stack)\n", size_text(o->ring_bytes, v), size_text(b->ring_min, lim),
			size_text(o->stack_bytes, st));
		return -1;
	}
	if (o->ring_bytes > b->ring_max) {
		fprintf(stderr, "memwatch: --ring-bytes %s: at most %s on this machine (the %d rings take at most "
				"1/%d of its %.1f GiB)\n", size_text(o->ring_bytes, v), size_text(b->ring_max, lim),
			BOUNDS_RINGS, BOUNDS_SHARE_OF_MEMORY, m->mem_bytes / 1073741824.0);
		return -1;
	}
	return 0;
}

static int check_count(const char *flag, uint32_t *value, uint32_t dflt, uint32_t max, const char *why,
		       const struct machine *m)
{
	if (!*value) {
		*value = clamp(dflt, 1, max);
		return 0;
	}
	if (*value <= max)
		return 0;
	fprintf(stderr, "memwatch: %s %" PRIu32 ": at most %" PRIu32 " on this machine (%s; %.1f GiB, %" PRIu32
			" CPUs, pid_max %" PRIu32 ")\n", flag, *value, max, why, m->mem_bytes / 1073741824.0, m->ncpus,
		m->pid_max);
	return -1;
}

int bounds_apply(struct options *o, const struct machine *m)
{
	struct bounds b;

	bounds_of(m, o->stack_mode, o->stack_bytes, &b);
	if (check_ring(o, &b, m) ||
	    check_count("--max-live", &o->max_live, LIVE_DEFAULT, b.live_max,
			"its kernel map may take 1/16 of the memory", m) ||
	    check_count("--max-processes", &o->max_processes, PROCESSES_DEFAULT, b.processes_max,
			"pid_max, and 1/16 of the memory for their kernel maps", m) ||
	    check_count("--max-profiled", &o->max_profiled, o->max_profiled, m->pid_max, "pid_max", m))
		return -1;
	return 0;
}

/* getopt_long's ':' (an option without its value) or '?' (unknown), said
 * in one line. */
static int getopt_error(int c, char *const *argv)
{
	if (c == ':')
		fprintf(stderr, "memwatch: %s needs a value (see memwatch --help)\n", argv[optind - 1]);
	else if (optopt)
		fprintf(stderr, "memwatch: unknown option -%c (see memwatch --help)\n", optopt);
	else
		fprintf(stderr, "memwatch: unknown option %s (see memwatch --help)\n", argv[optind - 1]);
	return -1;
}

/* One option of getopt_long's: 0, 1 (help or version printed) or -1. */
static int parse_option(int c, const char *arg, struct options *o, const char ***pid_args, size_t *npid_args)
{
	int r;

	switch (c) {
	case 'p':
		if (push(pid_args, npid_args, arg))
			return oom();
		break;
	case OPT_ALL:
		o->all = true;
		break;
	case OPT_COMM:
		if ((r = check_regex(arg)))
			return r;
		if (push(&o->comms, &o->ncomms, arg))
			return oom();
		break;
	case OPT_CGROUP:
		if (!*arg)
			return bad("--cgroup", arg);
		if ((r = check_cgroup(arg)))
			return r;
		if (push(&o->cgroups, &o->ncgroups, arg))
			return oom();
		break;
	case OPT_LISTEN:
		if (!*arg)
			return bad("--listen ([ADDR:]PORT or unix:PATH)", arg);
		o->listen = arg;
		break;
	case OPT_WEB_CONFIG:
		if (!*arg)
			return bad("--web-config", arg);
		o->web_config = arg;
		break;
	case OPT_INSECURE_LISTEN:
		o->insecure_listen = true;
		break;
	case OPT_OUTPUT_DIR:
		if (!*arg)
			return bad("--output-dir", arg);
		o->output_dir = arg;
		break;
	case OPT_OUTPUT_KEEP:
		if (parse_size(arg, &o->output_keep))
			return bad("--output-keep", arg);
		break;
	case OPT_OUTPUT_MAX_BYTES:
		if (parse_size(arg, &o->output_max_bytes))
			return bad("--output-max-bytes", arg);
		break;
	case OPT_MAX_PROCESSES:
		if (parse_u32(arg, 1, &o->max_processes))
			return bad("--max-processes", arg);
		break;
	case OPT_MAX_PROFILED:
		if (parse_u32(arg, 1, &o->max_profiled))
			return bad("--max-profiled", arg);
		break;
	case 'o':
		if (!*arg)
			return bad("output file", arg);
		o->output = arg;
		break;
	case 'd':
		if (parse_seconds(arg, &o->duration))
			return bad("duration", arg);
		break;
	case 's':
		if (parse_size(arg, &o->sample_bytes) || !o->sample_bytes)
			return bad("sampling interval", arg);
		break;
	case 'i':
		if (parse_seconds(arg, &o->interval))
			return bad("interval", arg);
		break;
	case 'v':
		o->verbose++;
		break;
	case 'h':
		fputs(usage_text, stdout);
		return 1;
	case 'V':
		printf("memwatch %s\n", MW_VERSION);
		return 1;
	case OPT_MAX_LIVE:
		if (parse_u32(arg, 1, &o->max_live))
			return bad("--max-live", arg);
		break;
	case OPT_RING_BYTES:
		if (parse_u32(arg, 4096, &o->ring_bytes) || (o->ring_bytes & (o->ring_bytes - 1)))
			return bad("--ring-bytes (a power of two)", arg);
		break;
	case OPT_EMPTY_PROBES:
		o->empty_probes = true;
		break;
	case OPT_STACK_MODE:
		if (stack_mode_parse(arg, &o->stack_mode))
			return bad("--stack-mode (auto, dwarf or fp)", arg);
		break;
	case OPT_PAGES_ONLY:
		o->pages_only = true;
		break;
	case OPT_PAGES_OUTPUT:
		if (!*arg)
			return bad("--pages-output", arg);
		o->pages_output = arg;
		break;
	case OPT_PAGE_SAMPLE_BYTES:
		if (parse_size(arg, &o->page_sample_bytes) || !o->page_sample_bytes)
			return bad("--page-sample-bytes", arg);
		break;
	case OPT_LATENCY_PROBE:
		if (!*arg || arg[strlen(arg) - 1] == ':')
			return bad("--latency-probe (FILE:FUNCTION)", arg);
		o->latency_probe = arg;
		break;
	case OPT_TIMELINE:
		if (!has_suffix(arg, ".csv") && !has_suffix(arg, ".json"))
			return bad("--timeline (a .csv or .json file)", arg);
		o->timeline = arg;
		break;
	case OPT_PLOT:
		if (!has_suffix(arg, ".svg"))
			return bad("--plot (an .svg file)", arg);
		o->plot = arg;
		break;
	case OPT_MAX_OVERHEAD:
		if (parse_seconds(arg, &o->max_overhead) || o->max_overhead > 10000)
			return bad("--max-overhead (a percentage above 0)", arg);
		o->max_overhead /= 100;
		break;
	case OPT_ALLOC_ONLY:
		o->alloc_only = true;
		break;
	case OPT_HOOK:
		if (parse_hook_mode(arg, &o->hook))
			return bad("--hook (auto, inline or uprobe)", arg);
		break;
	case OPT_ATTACH_MODE:
		if (attach_mode_parse(arg, &o->attach_mode))
			return bad("--attach-mode (auto, session, multi or classic)", arg);
		break;
	case OPT_ALLOCATOR:
		if (!*arg || allocator_names_valid(arg))
			return bad("--allocator (glibc, jemalloc, tcmalloc, tcmalloc-google)", arg);
		o->allocator = arg;
		break;
	case OPT_STACK_BYTES:
		if (parse_u32(arg, STACK_BYTES_MIN, &o->stack_bytes) || o->stack_bytes > STACK_BYTES_MAX ||
		    o->stack_bytes % 4096)
			return bad("--stack-bytes (4k..64k, a multiple of 4k)", arg);
		break;
	default:
		fprintf(stderr, "memwatch: see memwatch --help\n");
		return -1;
	}
	return 0;
}

int options_parse(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "output", required_argument, NULL, 'o' },
		{ "duration", required_argument, NULL, 'd' },
		{ "sample-bytes", required_argument, NULL, 's' },
		{ "interval", required_argument, NULL, 'i' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "max-live", required_argument, NULL, OPT_MAX_LIVE },
		{ "ring-bytes", required_argument, NULL, OPT_RING_BYTES },
		{ "empty-probes", no_argument, NULL, OPT_EMPTY_PROBES },
		{ "stack-mode", required_argument, NULL, OPT_STACK_MODE },
		{ "stack-bytes", required_argument, NULL, OPT_STACK_BYTES },
		{ "allocator", required_argument, NULL, OPT_ALLOCATOR },
		{ "attach-mode", required_argument, NULL, OPT_ATTACH_MODE },
		{ "hook", required_argument, NULL, OPT_HOOK },
		{ "alloc-only", no_argument, NULL, OPT_ALLOC_ONLY },
		{ "max-overhead", required_argument, NULL, OPT_MAX_OVERHEAD },
		{ "pages-only", no_argument, NULL, OPT_PAGES_ONLY },
		{ "pages-output", required_argument, NULL, OPT_PAGES_OUTPUT },
		{ "page-sample-bytes", required_argument, NULL, OPT_PAGE_SAMPLE_BYTES },
		{ "latency-probe", required_argument, NULL, OPT_LATENCY_PROBE },
		{ "timeline", required_argument, NULL, OPT_TIMELINE },
		{ "plot", required_argument, NULL, OPT_PLOT },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "comm", required_argument, NULL, OPT_COMM },
		{ "cgroup", required_argument, NULL, OPT_CGROUP },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "web-config", required_argument, NULL, OPT_WEB_CONFIG },
		{ "insecure-listen", no_argument, NULL, OPT_INSECURE_LISTEN },
		{ "output-dir", required_argument, NULL, OPT_OUTPUT_DIR },
		{ "output-keep", required_argument, NULL, OPT_OUTPUT_KEEP },
		{ "output-max-bytes", required_argument, NULL, OPT_OUTPUT_MAX_BYTES },
		{ "max-processes", required_argument, NULL, OPT_MAX_PROCESSES },
		{ "max-profiled", required_argument, NULL, OPT_MAX_PROFILED },
		{ "max-live-samples", required_argument, NULL, OPT_MAX_LIVE },
		{ 0 },
	};
	const char **pid_args = NULL;
	size_t npid_args = 0;
	struct machine machine;
	int c, r = 0;

	memset(o, 0, sizeof(*o));
	o->output_keep = 1000;
	o->output_max_bytes = 1ull << 30;
	o->max_processes = 0;	/* the default, within the machine's bounds */
	o->max_profiled = 64;
	o->sample_bytes = 524288;
	o->max_live = 0;	/* the default, within the machine's bounds */
	o->ring_bytes = 0;	/* by mode, within the machine's bounds */
	o->stack_bytes = STACK_BYTES_DEFAULT;
	o->page_sample_bytes = 8 << 20;
	opterr = 0;	/* getopt's own messages would take a second line */
	while (!r && (c = getopt_long(argc, argv, "+:p:o:d:s:i:vhV", longopts, NULL)) != -1)
		r = c == ':' || c == '?' ? getopt_error(c, argv) : parse_option(c, optarg, o, &pid_args, &npid_args);
	if (r) {
		free(pid_args);
		return r;
	}
	if (optind < argc)
		o->cmd = &argv[optind];
	r = o->all ? check_host_options(o) : 0;
	if (!r)
		r = parse_pids(o, pid_args, npid_args);
	free(pid_args);
	if (!r)
		r = machine_read(&machine) ? -1 : bounds_apply(o, &machine);
	if (r)
		return r;
	if (o->all)
		return 0;
	if (o->ncomms || o->ncgroups || o->listen || o->output_dir || o->web_config || o->insecure_listen) {
		fprintf(stderr, "memwatch: --comm, --cgroup, --listen, --web-config, --insecure-listen and "
				"--output-dir go with --all\n");
		return -1;
	}
	if (o->pages_only && (o->alloc_only || o->max_overhead)) {
		fprintf(stderr, "memwatch: --pages-only probes no allocator: it cannot go with --alloc-only "
				"or --max-overhead\n");
		return -1;
	}
	if (!o->pid == !o->cmd) {
		fprintf(stderr, "memwatch: %s (see memwatch --help)\n",
			o->pid ? "give either -p PID or -- CMD, not both" : "no target: give -p PID or -- CMD");
		return -1;
	}
	return 0;
}
