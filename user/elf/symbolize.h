/* Symbolizer: (ELF file, ELF virtual address) -> function names, source
 * file:line and inline frames, over elfutils libdwfl.
 *
 * Works for processes in other mount namespaces: the target's files are
 * handed in as open fds, and separate debug files are searched under the
 * target's root directory first (resolved with RESOLVE_IN_ROOT where the
 * kernel has openat2, by hand otherwise), then under the host's
 * /usr/lib/debug: by GNU build-id, then by .gnu_debuglink (checked by
 * build-id or CRC), and the dwz alt file (.gnu_debugaltlink) likewise.
 *
 * Each sym_file keeps an fd on its file (plus one per debug file) until
 * symbolizer_free; the target's root stays open until its first lookup.
 * Not thread-safe: one symbolizer per thread, or lock around it. */
#ifndef MW_SYMBOLIZE_H
#define MW_SYMBOLIZE_H

#include <stdbool.h>
#include <stdint.h>

struct symbolizer;
struct sym_file;

struct sym_line {
	const char *function;	/* demangled name, or NULL if unknown */
	const char *system_name;/* raw (mangled) symbol name, or NULL */
	const char *file;	/* source file, or NULL */
	unsigned line;		/* 0 if unknown */
};

struct sym_result {
	const struct sym_line *lines;	/* innermost (inlined callee) first, the real (outermost) function last */
	unsigned nlines;		/* 0: nothing known for this address */
};

struct sym_stats {
	uint64_t files;		/* distinct files registered */
	uint64_t debug_files;	/* separate debug files (incl. dwz alt files) opened */
	uint64_t lookups;	/* sym_file_lookup calls */
	uint64_t cache_hits;	/* lookups answered from the per-address cache */
	uint64_t elf_opens;	/* files opened: registrations that made a new sym_file (its fd
				 * dup'ed and handed to libdwfl) + debug file candidates.
				 * A registration answered from the cache only reads the
				 * ELF headers and notes of the fd it is given. */
};

struct symbolizer *symbolizer_new(void);
void symbolizer_free(struct symbolizer *s);

/* Registers the ELF file open as fd (the symbolizer dups it; the caller keeps
 * its own). display_path: the path the target uses for it (for messages and
 * .gnu_debuglink lookup; may be NULL); root: the target's root dir or NULL for
 * "/". Cached: a file with the same GNU build-id (or, without one, the same
 * st_dev/st_ino/st_size/st_mtime) returns the same sym_file without opening
 * anything. Returns NULL if fd is not a usable ELF. */
struct sym_file *symbolizer_file(struct symbolizer *s, int fd, const char *display_path, const char *root);

const char *sym_file_build_id(const struct sym_file *f);	/* lowercase hex, "" if none */
/* DWARF line info available. Loads the debug info if no lookup has yet. */
bool sym_file_has_debuginfo(const struct sym_file *f);

/* vaddr: an ELF virtual address of that file (as in its symbol table): for a
 * runtime address in a mapping at start with file offset off, the vaddr is
 * addr - start + off + (p_vaddr - p_offset) of the PT_LOAD holding off.
 * For a return address, pass address - 1 to get the call's line.
 * Results are cached per (file, vaddr) and stay valid until symbolizer_free;
 * strings are owned by the symbolizer and interned (the same function name is
 * the same pointer). Never NULL. */
const struct sym_result *sym_file_lookup(struct sym_file *f, uint64_t vaddr);

void symbolizer_stats(const struct symbolizer *s, struct sym_stats *out);

#endif
