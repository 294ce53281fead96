#include "stacks/fpcheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elf/elf_file.h"
#include "proc/process.h"

/* libstdc++'s demangler (memwatch links libstdc++ for the symbolizer too). */
char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

void fpcheck_init(struct fpcheck *fc)
{
	hmap_init(&fc->verdicts, NULL, NULL);
	hmap_init(&fc->reasons, NULL, NULL);
}

void fpcheck_free(struct fpcheck *fc)
{
	struct hmap_slot *s;

	for (size_t i = 0; hmap_next(&fc->reasons, &i, &s);)
		free(s->val);
	hmap_free(&fc->verdicts);
	hmap_free(&fc->reasons);
}

static const char *reason(struct fpcheck *fc, const char *fmt, const char *name)
{
	char buf[256];

	snprintf(buf, sizeof(buf), fmt, name);
	uint64_t h = hash_str(buf);
	void **slot = hmap_find(&fc->reasons, h, h);
	if (slot)
		return *slot;
	char *copy = strdup(buf);
	if (!copy || hmap_put(&fc->reasons, h, h, copy)) {
		free(copy);
		return "[truncated: frame pointer walk]";
	}
	return copy;
}

/* push %rbp; mov %rsp,%rbp, after an optional endbr64. */
static bool has_fp_prologue(const uint8_t *code, size_t len)
{
	static const uint8_t endbr64[] = { 0xf3, 0x0f, 0x1e, 0xfa };
	static const uint8_t prologue[] = { 0x55, 0x48, 0x89, 0xe5 };

	if (len >= sizeof(endbr64) && !memcmp(code, endbr64, sizeof(endbr64))) {
		code += sizeof(endbr64);
		len -= sizeof(endbr64);
	}
	return len >= sizeof(prologue) && !memcmp(code, prologue, sizeof(prologue));
}

/* Where every thread's stack begins: nothing lies beyond them. */
static bool is_outermost(const char *fn)
{
	static const char *const roots[] = { "_start", "clone", "clone3", "start_thread", "__clone", "__clone3" };

	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
		if (!strcmp(fn, roots[i]))
			return true;
	return false;
}

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* Does the function holding return address ra keep a frame pointer? NULL if
 * it does, else the reason to cut the stack after ra's frame. */
static const char *keeps_frame_pointer(struct fpcheck *fc, struct procs *ps, struct process *p, uint64_t ra)
{
	struct frame_at at;
	struct elf_sym sym;
	uint8_t code[8];

	if (!process_resolve(ps, p, ra - 1, &at) || !at.obj || !at.obj->elf)
		return "[truncated: frame pointer walk left mapped code]";
	if (!elf_file_func_containing(at.obj->elf, at.vaddr, &sym))
		return reason(fc, "[truncated: no symbol to check for a frame pointer in %s]", basename_of(at.obj->path));
	if (is_outermost(sym.name))
		return NULL;
	uint64_t key = hash_u64((uintptr_t)at.obj) ^ sym.vaddr;
	void **slot = hmap_find(&fc->verdicts, hash_u64(key), key);
	bool keeps;
	if (slot) {
		keeps = *slot != NULL;
	} else {
		ssize_t got = elf_file_read(at.obj->elf, sym.vaddr, code, sizeof(code));
		keeps = got > 0 && has_fp_prologue(code, got);
		hmap_put(&fc->verdicts, hash_u64(key), key, keeps ? (void *)1 : NULL);
	}
	if (keeps)
		return NULL;
	char *demangled = __cxa_demangle(sym.name, NULL, NULL, NULL);
	const char *why = reason(fc, "[truncated: %s keeps no frame pointer]", demangled ? demangled : sym.name);
	free(demangled);
	return why;
}

uint32_t fpcheck_trusted(struct fpcheck *fc, struct procs *ps, struct process *p, const uint64_t *frames,
			 uint32_t n, const char **why)
{
	*why = NULL;
	/* frames[2] came from the caller's %rbp, frames[k+1] from the %rbp of
	 * the function holding frames[k]. The last frame is checked too: a
	 * walk that stops in a function without a frame pointer stopped early;
	 * one that stops where %rbp chains end (0 in _start) is whole. */
	for (uint32_t k = 1; k < n; k++) {
		const char *bad = keeps_frame_pointer(fc, ps, p, frames[k]);
		if (bad) {
			*why = bad;
			return k + 1;
		}
	}
	return n;
}
