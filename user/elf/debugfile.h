/* Separate debug files of a target's ELF files, for the symbolizer and the
 * unwinder alike: by GNU build-id under /usr/lib/debug/.build-id, by
 * .gnu_debuglink next to the file, in its .debug directory or under
 * /usr/lib/debug (checked by build-id or CRC), and the dwz alt file by
 * .gnu_debugaltlink; in the target's tree first (through rootpath.h),
 * then the host's. And the glue that hands such files to libdwfl, which
 * must never open a path by itself. */
#ifndef MW_DEBUGFILE_H
#define MW_DEBUGFILE_H

#include <elfutils/libdwfl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Where a target's files are. */
struct debug_root {
	int fd;			/* O_PATH of the target's root; -1: unreachable or closed */
	bool host;		/* the target's root is ours: search one tree */
	char *prefix;		/* the root as a path of ours ("" for the host), for names */
	uint64_t *opens;	/* counts the candidate files opened, or NULL */
};

/* root: the target's root as a path of ours ("/proc/PID/root"), NULL or
 * "/" for the host. An unreachable root only disables searching the
 * target's tree. 0, or -ENOMEM. */
int debug_root_init(struct debug_root *r, const char *root);
/* The searches are over (the target may go away): close the root. */
void debug_root_close(struct debug_root *r);
void debug_root_free(struct debug_root *r);

/* What the debug file of one file must be: not that file itself, and with
 * its build-id; without one, with the .gnu_debuglink CRC (if check_crc). */
struct debug_want {
	const void *build_id;
	size_t build_id_len;
	bool check_crc;
	uint32_t crc;
	dev_t self_dev;
	ino_t self_ino;
};

struct debug_file {
	int fd;
	bool in_target;		/* found in the target's tree, else the host's */
	char *path;		/* as that tree names it */
	char *our_path;		/* as a path of ours, for libdwfl's messages */
};

/* The file's separate debug file: by build-id, then by debuglink (may be
 * NULL) next to target_path (the file as the target names it, may be
 * NULL). 0 with *out filled, or -1 when none matches. */
int debug_find_main(const struct debug_root *r, const struct debug_want *want, const char *target_path,
		    const char *debuglink, struct debug_file *out);
/* The dwz alt file dw (loaded from dwarf_path, in the target's tree or
 * not) refers to. 0 with *out filled, -1 if it names none or none matches. */
int debug_find_alt(const struct debug_root *r, Dwarf *dw, const char *dwarf_path, bool dwarf_in_target,
		   struct debug_file *out);
/* Closes the fd and frees the names. */
void debug_file_release(struct debug_file *f);
/* The path, handed over (the fd too, when fd is given): the rest freed. */
char *debug_file_take_path(struct debug_file *f, int *fd);

/* libdwfl glue. A find_elf callback that finds nothing: every module comes
 * with its fd. */
int debugfile_no_find_elf(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
			  char **file_name, Elf **elfp);
/* Reports a dup of fd as a module of dwfl at bias (named name), with
 * userdata as its user data. NULL if libdwfl refuses it. */
Dwfl_Module *debugfile_report(Dwfl *dwfl, const char *name, int fd, Dwarf_Addr bias, void *userdata);

#endif
