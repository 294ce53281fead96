/* What an extended regular expression costs glibc's regcomp, before it is
 * compiled: --comm takes regexes from the command line. */
#ifndef MW_REGEX_COST_H
#define MW_REGEX_COST_H

/* An upper bound of the nodes regcomp builds for the extended regex rx
 * (repetitions duplicate what they repeat); HUGE_VAL for a repetition of
 * a repetition ('a*+') or groups nested too deep. */
double regex_nodes(const char *rx);

#endif
