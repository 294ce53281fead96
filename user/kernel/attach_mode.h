/* How probes attach (--attach-mode): uprobe sessions for allocations
 * (6.13+: no return probe on unsampled calls), uprobe_multi links (6.6+),
 * or one perf event per probe; auto takes the first the kernel offers. */
#ifndef MW_ATTACH_MODE_H
#define MW_ATTACH_MODE_H

enum attach_mode {
	ATTACH_AUTO,
	ATTACH_SESSION,
	ATTACH_MULTI,
	ATTACH_CLASSIC,
};

/* "auto", "session", "multi", "classic". */
const char *attach_mode_name(enum attach_mode mode);
/* 0, or -1 for a name no mode has. */
int attach_mode_parse(const char *name, enum attach_mode *out);

#endif
