#include "util/regex_cost.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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
