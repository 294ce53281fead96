/* Per-entry code in an instance's patch area, and the patches themselves:
 * written, and restored, while every thread of the target is held. */
#ifndef MW_INSTALL_H
#define MW_INSTALL_H

#include <stddef.h>
#include <stdint.h>

#include "inject/instance.h"
#include "inject/plan.h"

struct tracee;

/* Writes (or finds already written) each site's prelude, original and
 * descriptor in the instance's patch area, and computes its patch. The
 * sites become unreachable garbage until patched. 0, or -errno with why. */
int install_code(pid_t pid, struct instance *in, struct hook_plan *plan, char *why, size_t why_len);

/* Patches every site of plan (threads held): checks the bytes are still
 * the file's (a uprobe's int3 on the first byte is fine), steps threads
 * out of the windows, records the patches in the header, then writes them.
 * 0, or -errno with why (nothing patched). */
int install_patch(struct tracee *t, struct instance *in, struct hook_plan *plan, char *why, size_t why_len);

/* Restores the entries the instance's header says are patched (threads
 * held) and clears those records. Returns how many were restored. */
int install_restore(struct tracee *t, struct instance *in);

#endif
