/* Read-only view of an ELF file through a file descriptor (libelf): header,
 * PT_LOAD segments, build-id, PT_INTERP, function symbols and PLT stubs.
 * Symbol and PLT indexes are built once, on first use; lookups by name are
 * hashed, lookups by address are binary searches. Strings returned stay valid
 * until elf_file_close. Not thread-safe. */
#ifndef MW_ELF_FILE_H
#define MW_ELF_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct elf_file;

struct elf_sym {
	const char *name;	/* without any "@VERSION" suffix */
	uint64_t vaddr, size;
	unsigned char bind, type;	/* STB_*, STT_FUNC or STT_GNU_IFUNC */
	bool dynamic;		/* also defined in .dynsym (exported) */
};

struct elf_segment {		/* PT_LOAD */
	uint64_t vaddr, memsz, offset, filesz;
	uint32_t flags;		/* PF_R | PF_W | PF_X */
};

/* Dups fd (the caller keeps its own). NULL with errno set if fd is not an
 * ELF file we can read. */
struct elf_file *elf_file_open(int fd);
void elf_file_close(struct elf_file *f);

uint16_t elf_file_machine(const struct elf_file *f);	/* e_machine */
uint16_t elf_file_type(const struct elf_file *f);	/* ET_EXEC / ET_DYN / ... */
const char *elf_file_build_id(const struct elf_file *f);	/* lowercase hex, NULL if none */
const char *elf_file_interp(const struct elf_file *f);	/* PT_INTERP path or NULL */
size_t elf_file_segments(const struct elf_file *f, const struct elf_segment **segs);

/* The defined (st_shndx != SHN_UNDEF) FUNC or GNU_IFUNC symbol called name,
 * from .symtab and .dynsym. When several match: GLOBAL beats WEAK beats LOCAL,
 * then a default version beats a hidden one ("name@V" vs "name@@V", or the
 * versym hidden bit), then .symtab beats .dynsym, then the lower address. */
bool elf_file_find_func(struct elf_file *f, const char *name, struct elf_sym *out);

/* Every defined function symbol name at vaddr (aliases), from both tables,
 * deduplicated. Returns the count; fills up to max. */
size_t elf_file_names_at(struct elf_file *f, uint64_t vaddr, const char **names, size_t max);

/* The function symbol whose [vaddr, vaddr + size) holds vaddr. */
bool elf_file_func_containing(struct elf_file *f, uint64_t vaddr, struct elf_sym *out);

/* Calls fn for every defined function symbol name once, in address order,
 * with the symbol elf_file_find_func would return for that name. Stops when
 * fn returns nonzero and returns that value; 0 after the last, -ENOMEM if the
 * index cannot be built. */
int elf_file_for_each_func(struct elf_file *f, int (*fn)(const struct elf_sym *sym, void *arg),
			   void *arg);

/* Through the PT_LOAD segments' file parts. 0 or -ENOENT. */
int elf_file_vaddr_to_offset(const struct elf_file *f, uint64_t vaddr, uint64_t *offset);
int elf_file_offset_to_vaddr(const struct elf_file *f, uint64_t offset, uint64_t *vaddr);

/* Copies up to len bytes of the file image at vaddr, stopping at the end of
 * the file part of the PT_LOAD holding vaddr. Returns the bytes copied,
 * -ENOENT if no PT_LOAD file part holds vaddr, or -errno from pread. */
ssize_t elf_file_read(const struct elf_file *f, uint64_t vaddr, void *buf, size_t len);

/* If vaddr is the start of a PLT stub (.plt, .plt.sec, or .plt.got), the name
 * of the symbol its JUMP_SLOT (GLOB_DAT for .plt.got) relocation binds, e.g.
 * "realloc"; else NULL. x86-64 only. */
const char *elf_file_plt_target(struct elf_file *f, uint64_t vaddr);

#endif
