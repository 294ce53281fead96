#include "session/calibrate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "elf/elf_file.h"
#include "probes/attach.h"
#include "probes/placement.h"

#define CALLS 20000

/* Entries like glibc's: malloc begins with a push (emulated), free with
 * test; je (the je is emulated). */
__asm__(".text\n"
	".globl mw_calib_alloc\n"
	".type mw_calib_alloc, @function\n"
	"mw_calib_alloc:\n"
	"	push %rbx\n"
	"	mov %rdi, %rax\n"
	"	pop %rbx\n"
	"	ret\n"
	".size mw_calib_alloc, . - mw_calib_alloc\n"
	".globl mw_calib_free\n"
	".type mw_calib_free, @function\n"
	"mw_calib_free:\n"
	"	test %rdi, %rdi\n"
	"	je 1f\n"
	"	nop\n"
	"1:	ret\n"
	".size mw_calib_free, . - mw_calib_free\n");

void *mw_calib_alloc(size_t size);
void mw_calib_free(void *p);

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double time_calls(bool alloc)
{
	void *(*volatile a)(size_t) = mw_calib_alloc;
	void (*volatile f)(void *) = mw_calib_free;
	double start = now_s();

	for (int i = 0; i < CALLS; i++) {
		if (alloc)
			a(64);
		else
			f((void *)1);
	}
	return now_s() - start;
}

static int probe_offset(struct elf_file *elf, const char *name, unsigned args, uint64_t *offset)
{
	struct elf_sym sym;
	struct placement pl;
	uint8_t code[64];

	if (!elf_file_find_func(elf, name, &sym))
		return -ENOENT;
	ssize_t len = elf_file_read(elf, sym.vaddr, code, sym.size < sizeof(code) ? sym.size : sizeof(code));
	struct disasm *d = disasm_new();
	int placed = len > 0 && d ? place_probe(d, code, len, sym.vaddr, args, &pl) : -ENOENT;
	disasm_free(d);
	if (placed)
		return -ENOENT;
	return elf_file_vaddr_to_offset(elf, sym.vaddr + pl.offset, offset);
}

/* Seconds one call of kind layout costs with its probe attached. */
static int measure(struct attacher *a, enum mw_layout layout, uint64_t offset, double *cost)
{
	struct link_set links = { 0 };
	bool alloc = layout != MW_LAYOUT_FREE;
	double base = time_calls(alloc);
	int err = attach_probe_at(a, &links, layout, getpid(), "/proc/self/exe", offset);

	if (!err) {
		double probed = time_calls(alloc);
		*cost = probed > base ? (probed - base) / CALLS : 0;
	}
	link_set_close(&links);
	return err;
}

int calibrate_probe_cost(enum attach_mode mode, struct probe_cost *out)
{
	struct heapbpf_config cfg = { .empty = true, .mode = mode };
	struct heapbpf floor;
	struct probe_progs progs;
	struct attacher a;
	uint64_t alloc_off, free_off;
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	struct elf_file *elf = fd >= 0 ? elf_file_open(fd) : NULL;
	int err;

	if (fd >= 0)
		close(fd);
	if (!elf)
		return -ENOEXEC;
	err = probe_offset(elf, "mw_calib_alloc", PLACE_ARG(0), &alloc_off);
	if (!err)
		err = probe_offset(elf, "mw_calib_free", PLACE_ARG(0), &free_off);
	elf_file_close(elf);
	if (err)
		return err;
	err = heapbpf_load(&floor, &cfg);
	if (err)
		return err;
	heapbpf_progs(&floor, &progs);
	attacher_init(&a, &progs, NULL, NULL);
	err = measure(&a, MW_LAYOUT_SIZE0, alloc_off, &out->alloc_s);
	if (!err)
		err = measure(&a, MW_LAYOUT_FREE, free_off, &out->free_s);
	attacher_detach(&a);
	heapbpf_destroy(&floor);
	return err;
}
