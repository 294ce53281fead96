/* The timeline drawn as a self-contained SVG (no scripts, no external
 * resources): three panels on one time axis, live heap vs RSS anon (and
 * file), purges and refaults per second, the probed function's p50 and p99
 * latency (when there is one); with titles, axes, units and a legend per
 * panel. */
#ifndef MW_CHART_H
#define MW_CHART_H

#include <stdio.h>

#include "diagnose/timeline.h"

/* 0 or -errno. */
int timeline_write_svg(const struct timeline *tl, FILE *out);

#endif
