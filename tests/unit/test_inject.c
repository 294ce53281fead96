/* The in-process hooks end to end without BPF (user/inject): a forked copy
 * of this test gets the agent injected and glibc's entries detoured while
 * it waits; it then allocates on command, and the agent's own counters
 * (every call sampled) must match what it did exactly. Detaching restores
 * the file's bytes; attaching again reuses the same agent; a fork of the
 * hooked child runs normally. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probes/allocators.h"
#include "elf/elf_file.h"
#include "inject/hooks.h"
#include "inject/instance.h"
#include "proc/process.h"
#include "inject/tracee.h"

#define BLOCKS 1000
#define FREED 400

struct child {
	pid_t pid;
	int cmd, ack;		/* pipes: commands in, one byte back per command */
};

/* The child: allocates only when told to, so every count is known. */
static void child_loop(int cmd, int ack)
{
	static void *blocks[BLOCKS];
	char c;

	while (read(cmd, &c, 1) == 1) {
		char status = 'k';
		switch (c) {
		case 'a':	/* BLOCKS mallocs, FREED frees, then the same with calloc/realloc */
			for (int i = 0; i < BLOCKS; i++)
				blocks[i] = malloc(100 + i);
			for (int i = 0; i < FREED; i++)
				free(blocks[i]);
			for (int i = 0; i < FREED; i++)
				blocks[i] = calloc(2, 50);
			for (int i = 0; i < FREED; i++)
				blocks[i] = realloc(blocks[i], 1000);
			for (int i = 0; i < BLOCKS; i++)
				free(blocks[i]);
			break;
		case 's': {	/* a seccomp filter that kills on memfd_create */
			struct sock_filter insns[] = {
				BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
				BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_memfd_create, 0, 1),
				BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
				BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
			};
			struct sock_fprog prog = { sizeof(insns) / sizeof(insns[0]), insns };
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
				status = 'x';
			break;
		}
		case 'f': {	/* a forked grandchild allocates and exits normally */
			pid_t g = fork();
			if (g == 0) {
				for (int i = 0; i < 1000; i++)
					free(malloc(64));
				_exit(7);
			}
			int st = 0;
			waitpid(g, &st, 0);
			status = WIFEXITED(st) && WEXITSTATUS(st) == 7 ? 'k' : 'x';
			break;
		}
		}
		if (write(ack, &status, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

static struct child spawn(void)
{
	int cmd[2], ack[2];
	struct child c;

	assert_int_equal(pipe(cmd), 0);
	assert_int_equal(pipe(ack), 0);
	c.pid = fork();
	assert_true(c.pid >= 0);
	if (c.pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		child_loop(cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	c.cmd = cmd[1];
	c.ack = ack[0];
	return c;
}

static char command(struct child *c, char what)
{
	char status = 0;

	assert_int_equal(write(c->cmd, &what, 1), 1);
	assert_int_equal(read(c->ack, &status, 1), 1);
	return status;
}

static int finish(struct child *c)
{
	int st = 0;

	close(c->cmd);
	close(c->ack);
	waitpid(c->pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Hooks glibc in pid; returns the number of allocator files detoured. */
static int attach_glibc(struct hook_engine *h, struct procs *ps, pid_t pid)
{
	struct process *p = procs_get(ps, pid);
	int done = 0;

	assert_non_null(p);
	for (size_t i = 0; i < p->maps.n; i++) {
		struct mapping *m = &p->maps.v[i];
		struct objfile *o = m->data;
		struct allocator a;
		if (!m->executable || !o || !o->elf || !allocator_find(o->elf, o->path, "glibc", &a))
			continue;
		int r = hooks_attach(h, p, o, &a);
		assert_true(r >= 0);
		done += r;
	}
	return done;
}

static size_t agent_mappings(pid_t pid)
{
	char path[64], line[512];
	size_t n = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "memfd:" AGENT_NAME) != NULL;
	fclose(f);
	return n;
}

/* malloc's first 16 bytes in pid against the file's. */
static bool malloc_is_pristine(pid_t pid)
{
	uint8_t mem[16], file[16];
	int fd = open("/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY | O_CLOEXEC);
	struct elf_file *elf = elf_file_open(fd);
	struct elf_sym sym;
	bool same;

	close(fd);
	assert_non_null(elf);
	assert_true(elf_file_find_func(elf, "malloc", &sym));
	assert_int_equal(elf_file_read(elf, sym.vaddr, file, sizeof(file)), sizeof(file));
	elf_file_close(elf);
	/* The same libc is mapped at the same address in the child. */
	uint64_t at = (uint64_t)(uintptr_t)malloc - 0;
	assert_int_equal(proc_mem_read(pid, at, mem, sizeof(mem)), 0);
	same = !memcmp(mem, file, sizeof(mem));
	return same;
}

static struct hook_engine *engine(void)
{
	struct hook_config cfg = { .mode = HOOK_INLINE, .sample_bytes = 1, .max_live = 65536 };
	struct hook_engine *h = hooks_new(&cfg, NULL);

	assert_non_null(h);
	return h;
}

static void counts_exact_and_detach_restores(void **state)
{
	struct child c = spawn();
	struct hook_engine *h = engine();
	struct procs ps;
	struct hook_stats st;

	procs_init(&ps);
	assert_int_equal(attach_glibc(h, &ps, c.pid), 1);
	assert_false(malloc_is_pristine(c.pid));
	assert_int_equal(command(&c, 'a'), 'k');
	assert_int_equal(hooks_stats(h, c.pid, &st), 0);
	/* Every call is sampled: mallocs, callocs, reallocs (the old block
	 * released through its own report, not as a free). */
	assert_int_equal(st.samples, BLOCKS + 2 * FREED);
	assert_int_equal(st.frees, FREED + FREED + BLOCKS);
	assert_int_equal(st.lost + st.untracked + st.slot_misses, 0);
	hooks_detach(h, c.pid);
	assert_true(malloc_is_pristine(c.pid));
	assert_int_equal(agent_mappings(c.pid), 1);	/* stays, inert */
	assert_int_equal(command(&c, 'a'), 'k');
	hooks_free(h);
	procs_free(&ps);
	assert_int_equal(finish(&c), 0);
}

static void reattach_reuses_the_agent(void **state)
{
	struct child c = spawn();
	struct procs ps;
	struct hook_stats st;

	for (int round = 0; round < 3; round++) {
		struct hook_engine *h = engine();
		procs_init(&ps);
		assert_int_equal(attach_glibc(h, &ps, c.pid), 1);
		assert_int_equal(command(&c, 'a'), 'k');
		assert_int_equal(hooks_stats(h, c.pid, &st), 0);
		assert_int_equal(st.samples, BLOCKS + 2 * FREED);	/* counters start over */
		hooks_free(h);
		procs_free(&ps);
		assert_true(malloc_is_pristine(c.pid));
		assert_int_equal(agent_mappings(c.pid), 1);
	}
	assert_int_equal(finish(&c), 0);
}

static void forked_child_runs(void **state)
{
	struct child c = spawn();
	struct hook_engine *h = engine();
	struct procs ps;
	struct hook_stats st;

	procs_init(&ps);
	assert_int_equal(attach_glibc(h, &ps, c.pid), 1);
	assert_int_equal(command(&c, 'f'), 'k');
	assert_int_equal(hooks_stats(h, c.pid, &st), 0);
	assert_int_equal(st.samples, 0);	/* the grandchild's state was wiped: passed through */
	hooks_free(h);
	procs_free(&ps);
	assert_int_equal(finish(&c), 0);
}

static void killed_observer_leaves_a_working_target(void **state)
{
	struct child c = spawn();
	struct procs ps;

	/* An engine that never detaches: as if memwatch were SIGKILLed. */
	struct hook_engine *h = engine();
	procs_init(&ps);
	assert_int_equal(attach_glibc(h, &ps, c.pid), 1);
	hooks_forget(h, c.pid);
	assert_false(malloc_is_pristine(c.pid));
	for (int i = 0; i < 3; i++)
		assert_int_equal(command(&c, 'a'), 'k');
	hooks_free(h);
	procs_free(&ps);
	/* A later run finds the patched entries and takes them over. */
	h = engine();
	procs_init(&ps);
	assert_int_equal(attach_glibc(h, &ps, c.pid), 1);
	assert_int_equal(agent_mappings(c.pid), 1);
	hooks_free(h);
	procs_free(&ps);
	assert_true(malloc_is_pristine(c.pid));
	assert_int_equal(finish(&c), 0);
}

static void seccomp_filter_keeps_uprobes(void **state)
{
	struct child c = spawn();
	struct hook_config cfg = { .mode = HOOK_AUTO, .sample_bytes = 1, .max_live = 65536 };
	struct hook_engine *h = hooks_new(&cfg, NULL);
	struct procs ps;

	assert_int_equal(command(&c, 's'), 'k');
	procs_init(&ps);
	/* Injecting memfd_create would kill the child: nothing is injected. */
	assert_int_equal(attach_glibc(h, &ps, c.pid), 0);
	assert_true(malloc_is_pristine(c.pid));
	assert_int_equal(agent_mappings(c.pid), 0);
	assert_int_equal(command(&c, 'a'), 'k');
	hooks_free(h);
	procs_free(&ps);
	assert_int_equal(finish(&c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(counts_exact_and_detach_restores),
		cmocka_unit_test(reattach_reuses_the_agent),
		cmocka_unit_test(forked_child_runs),
		cmocka_unit_test(killed_observer_leaves_a_working_target),
		cmocka_unit_test(seccomp_filter_keeps_uprobes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
