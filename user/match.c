#include "match.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

/* cgroup2's usual mount point: --cgroup takes paths under it too. */
#define CGROUP_MOUNT "/sys/fs/cgroup"

/* "/sys/fs/cgroup/a/b/" -> "/a/b"; "a/b" -> "/a/b"; "/" stays. */
static char *normalize_cgroup(const char *path)
{
	size_t mlen = strlen(CGROUP_MOUNT);
	char *out;

	if (!strncmp(path, CGROUP_MOUNT, mlen) && (path[mlen] == '/' || !path[mlen]))
		path += mlen;
	if (asprintf(&out, "%s%s", *path == '/' ? "" : "/", path) < 0)
		return NULL;
	for (size_t n = strlen(out); n > 1 && out[n - 1] == '/'; n--)
		out[n - 1] = 0;
	return out;
}

static bool has_dot_component(const char *path)
{
	for (const char *p = path; (p = strstr(p, "/.")); p++)
		if (p[2] == '/' || !p[2] || (p[2] == '.' && (p[3] == '/' || !p[3])))
			return true;
	return false;
}

/* The hierarchies a cgroup path may be in: cgroup2 (unified or hybrid),
 * or v1's name=systemd. */
static bool cgroup_dir_exists(const char *cgroup)
{
	static const char *const roots[] = { CGROUP_MOUNT, CGROUP_MOUNT "/unified", CGROUP_MOUNT "/systemd" };
	char path[4096];
	struct stat st;

	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
		if (snprintf(path, sizeof(path), "%s%s", roots[i], cgroup) < (int)sizeof(path) && !stat(path, &st) &&
		    S_ISDIR(st.st_mode))
			return true;
	return false;
}

int cgroup_check(const char *path)
{
	char *cgroup = normalize_cgroup(path);
	int err = !cgroup ? -ENOMEM : has_dot_component(cgroup) ? -EINVAL : cgroup_dir_exists(cgroup) ? 0 : -ENOENT;

	free(cgroup);
	return err;
}

/* ---- what a --comm regex costs to compile ---- */

#define REGEX_MAX_DEPTH 64

struct regex_cost {
	double sum[REGEX_MAX_DEPTH + 1];	/* nodes of each open group so far */
	double last[REGEX_MAX_DEPTH + 1];	/* ... of its last element */
	int depth;
	bool repeated;				/* the last element is a repetition */
};

static void cost_element(struct regex_cost *c, double nodes)
{
	c->sum[c->depth] += nodes;
	c->last[c->depth] = nodes;
	c->repeated = false;
}

/* The last element repeated up to times (it is duplicated that often). A
 * repetition of a repetition ('a*+', 'a+{2}': undefined in POSIX) is
 * refused: glibc's time to compile it grows far faster than its size. */
static int cost_repeat(struct regex_cost *c, double times)
{
	double last = c->last[c->depth];

	if (c->repeated)
		return -1;
	c->sum[c->depth] += last * (times - 1) + 1;
	c->last[c->depth] = last * times + 1;
	c->repeated = true;
	return 0;
}

/* After a '[': the end of the bracket expression ("[]a]", "[[:alpha:]]"). */
static const char *skip_bracket(const char *p)
{
	if (*p == '^')
		p++;
	if (*p == ']')
		p++;
	for (; *p && *p != ']'; p++)
		if (*p == '[' && (p[1] == ':' || p[1] == '=' || p[1] == '.')) {
			const char *end = strchr(p + 2, p[1]);
			while (end && end[1] != ']')
				end = strchr(end + 1, p[1]);
			p = end ? end + 1 : p + 1;
		}
	return *p ? p : p - 1;
}

/* "{n}", "{n,}", "{n,m}" after the '{': the most repetitions (and the end
 * of the interval), or 0 if it is no interval (then '{' is a character). */
static double interval_times(const char *p, const char **end)
{
	char *e;
	double n = strtod(p, &e), m = n;

	if (e == p || !isdigit((unsigned char)*p))
		return 0;
	if (*e == ',') {
		p = e + 1;
		m = isdigit((unsigned char)*p) ? strtod(p, &e) : n + 1;
		if (isdigit((unsigned char)*p) && e == p)
			return 0;
		if (!isdigit((unsigned char)*p))
			e = (char *)p;
	}
	if (*e != '}')
		return 0;
	*end = e;
	return (m > n ? m : n) > 1 ? (m > n ? m : n) : 1;
}

static int cost_char(struct regex_cost *c, const char **pp)
{
	const char *p = *pp, *end;
	double times;

	switch (*p) {
	case '(':
		if (c->depth == REGEX_MAX_DEPTH)
			return -1;
		c->depth++;
		c->sum[c->depth] = c->last[c->depth] = 0;
		break;
	case ')':
		if (!c->depth) {
			cost_element(c, 1);
			break;
		}
		c->depth--;
		cost_element(c, c->sum[c->depth + 1] + 1);
		break;
	case '|':
		cost_element(c, 1);
		break;
	case '*':
	case '?':
		return cost_repeat(c, 1);
	case '+':
		return cost_repeat(c, 2);
	case '{':
		if ((times = interval_times(p + 1, &end))) {
			*pp = end;
			return cost_repeat(c, times);
		} else {
			cost_element(c, 1);
		}
		break;
	case '\\':
		p += p[1] != '\0';
		cost_element(c, 1);
		break;
	case '[':
		p = skip_bracket(p + 1);
		cost_element(c, 1);
		break;
	default:
		cost_element(c, 1);
	}
	*pp = p;
	return 0;
}

/* An upper bound of the nodes glibc's regcomp builds for an extended regex:
 * a repetition duplicates what it repeats ('+' twice, '{n,m}' max(n, m)
 * times), so stacked or nested repetitions grow exponentially with the
 * text: 'a+++...' of 40 characters takes gigabytes. HUGE_VAL for a
 * repetition of a repetition, or groups nested too deep. */
double regex_nodes(const char *rx)
{
	struct regex_cost c = { 0 };
	double total = 0;

	for (const char *p = rx; *p; p++)
		if (cost_char(&c, &p))
			return HUGE_VAL;
	for (int d = 0; d <= c.depth; d++)
		total += c.sum[d];
	return total;
}

int matcher_init(struct matcher *m, const char *const *comms, size_t ncomms, const pid_t *pids, size_t npids,
		 const char *const *cgroups, size_t ncgroups)
{
	memset(m, 0, sizeof(*m));
	m->comms = calloc(ncomms + 1, sizeof(*m->comms));
	m->cgroups = calloc(ncgroups + 1, sizeof(*m->cgroups));
	if (!m->comms || !m->cgroups) {
		matcher_free(m);
		return -ENOMEM;
	}
	for (; m->ncomms < ncomms; m->ncomms++) {
		if (regcomp(&m->comms[m->ncomms], comms[m->ncomms], REG_EXTENDED | REG_NOSUB)) {
			matcher_free(m);
			return -EINVAL;
		}
	}
	for (; m->ncgroups < ncgroups; m->ncgroups++) {
		if (!(m->cgroups[m->ncgroups] = normalize_cgroup(cgroups[m->ncgroups]))) {
			matcher_free(m);
			return -ENOMEM;
		}
	}
	m->pids = pids;
	m->npids = npids;
	return 0;
}

void matcher_free(struct matcher *m)
{
	for (size_t i = 0; i < m->ncomms; i++)
		regfree(&m->comms[i]);
	for (size_t i = 0; i < m->ncgroups; i++)
		free(m->cgroups[i]);
	free(m->comms);
	free(m->cgroups);
	memset(m, 0, sizeof(*m));
}

bool matcher_empty(const struct matcher *m)
{
	return !m->ncomms && !m->npids && !m->ncgroups;
}

static bool under(const char *cgroup, const char *prefix)
{
	size_t n = strlen(prefix);

	if (!strcmp(prefix, "/"))
		return true;
	return !strncmp(cgroup, prefix, n) && (cgroup[n] == '/' || !cgroup[n]);
}

bool matcher_match(const struct matcher *m, pid_t pid, const char *comm, const char *cgroup)
{
	for (size_t i = 0; i < m->npids; i++)
		if (m->pids[i] == pid)
			return true;
	for (size_t i = 0; comm && i < m->ncomms; i++)
		if (!regexec(&m->comms[i], comm, 0, NULL, 0))
			return true;
	for (size_t i = 0; cgroup && i < m->ncgroups; i++)
		if (under(cgroup, m->cgroups[i]))
			return true;
	return false;
}

/* A line of /proc/PID/cgroup: "ID:CONTROLLERS:PATH". */
static const char *cgroup_line_path(const char *line, const char *want_controllers)
{
	const char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

	if (!c2 || (size_t)(c2 - c1 - 1) != strlen(want_controllers) ||
	    strncmp(c1 + 1, want_controllers, c2 - c1 - 1))
		return NULL;
	return c2 + 1;
}

char *cgroup_of(pid_t pid)
{
	char path[64], *line = NULL, *v2 = NULL, *v1 = NULL;
	size_t cap = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = 0;
		const char *p;
		if (!v2 && (p = cgroup_line_path(line, "")) && !strncmp(line, "0:", 2))
			v2 = strdup(p);
		else if (!v1 && (p = cgroup_line_path(line, "name=systemd")))
			v1 = strdup(p);
	}
	free(line);
	fclose(f);
	if (v2) {
		free(v1);
		return v2;
	}
	return v1;
}

void container_id_of(const char *cgroup, char out[65])
{
	size_t run = 0;

	out[0] = 0;
	for (const char *p = cgroup; p && *p; p++) {
		run = isxdigit((unsigned char)*p) && !isupper((unsigned char)*p) ? run + 1 : 0;
		if (run == 64 && !isxdigit((unsigned char)p[1])) {
			memcpy(out, p - 63, 64);
			out[64] = 0;
		}
	}
}
