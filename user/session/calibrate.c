#include "session/calibrate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "elf/elf_file.h"
#include "probes/attach.h"
#include "probes/placement.h"

#define CHUNK 1000		/* calls between clock readings */
#define PROBED_CPU_S 0.25	/* of the thread's CPU time with the probe on */

/* An entry like glibc free's: test; je (the probe goes on the je, which the
 * kernel emulates). */
__asm__(".text\n"
	".globl mw_calib_free\n"
	".type mw_calib_free, @function\n"
	"mw_calib_free:\n"
	"	test %rdi, %rdi\n"
	"	je 1f\n"
	"	nop\n"
	"1:	ret\n"
	".size mw_calib_free, . - mw_calib_free\n");

void mw_calib_free(void *p);

struct thread_times {
	double cpu_s, sys_s;
};

static void thread_times(struct thread_times *out)
{
	struct timespec ts;
	struct rusage ru;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	out->cpu_s = ts.tv_sec + ts.tv_nsec / 1e9;
	getrusage(RUSAGE_THREAD, &ru);
	out->sys_s = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void call_free(unsigned long calls)
{
	void (*volatile f)(void *) = mw_calib_free;

	for (unsigned long i = 0; i < calls; i++)
		f((void *)1);
}

/* Calls until min_cpu_s of thread CPU time went by; the times they took. */
static unsigned long time_calls(double min_cpu_s, unsigned long min_calls, struct thread_times *took)
{
	struct thread_times start, now;
	unsigned long calls = 0;

	thread_times(&start);
	do {
		call_free(CHUNK);
		calls += CHUNK;
		thread_times(&now);
	} while (calls < min_calls || now.cpu_s - start.cpu_s < min_cpu_s);
	took->cpu_s = now.cpu_s - start.cpu_s;
	took->sys_s = now.sys_s - start.sys_s;
	return calls;
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

/* The probed loop, then the same calls unprobed. */
static int measure(struct attacher *a, uint64_t offset, struct trap_cost *out)
{
	struct link_set links = { 0 };
	struct thread_times probed, bare;
	int err = attach_probe_at(a, &links, MW_LAYOUT_FREE, getpid(), "/proc/self/exe", offset);

	if (err)
		return err;
	call_free(CHUNK);	/* the first traps set up the process's uprobe state */
	out->calls = time_calls(PROBED_CPU_S, 0, &probed);
	link_set_close(&links);
	time_calls(0, out->calls, &bare);
	double user = probed.cpu_s - probed.sys_s - (bare.cpu_s - bare.sys_s);
	out->sys_s = probed.sys_s / out->calls;
	out->user_s = user > 0 ? user / out->calls : 0;
	return 0;
}

int calibrate_trap_cost(enum attach_mode mode, struct trap_cost *out)
{
	struct heapbpf_config cfg = { .empty = true, .mode = mode };
	struct heapbpf floor;
	struct probe_progs progs;
	struct attacher a;
	uint64_t offset;
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	struct elf_file *elf = fd >= 0 ? elf_file_open(fd) : NULL;
	int err;

	if (fd >= 0)
		close(fd);
	if (!elf)
		return -ENOEXEC;
	err = probe_offset(elf, "mw_calib_free", PLACE_ARG(0), &offset);
	elf_file_close(elf);
	if (err)
		return err;
	err = heapbpf_load(&floor, &cfg);
	if (err)
		return err;
	heapbpf_progs(&floor, &progs);
	attacher_init(&a, &progs, NULL, NULL);
	err = measure(&a, offset, out);
	attacher_detach(&a);
	heapbpf_destroy(&floor);
	return err;
}
