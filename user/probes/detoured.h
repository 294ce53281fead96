/* Whether memwatch's in-process detours (inject/) may be installed in a
 * process for a given file: its agent is mapped there (by this memwatch,
 * another instance, or one that was killed and left them). A uprobe inside
 * the bytes a detour replaced (after the function's first instruction)
 * would cut the jmp in two, and on removal write the file's byte back into
 * its middle: where detours may be, probes go on the first byte. */
#ifndef MW_DETOURED_H
#define MW_DETOURED_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The bytes a detour replaces start after the function's first instruction
 * and are this many. */
#define DETOUR_JMP_BYTES 5

/* true if pid maps memwatch's agent and the file (dev as objfiles key it:
 * major << 32 | minor, inode), or if its maps cannot be read. */
bool file_detoured_in(pid_t pid, uint64_t dev, uint64_t inode);

#endif
