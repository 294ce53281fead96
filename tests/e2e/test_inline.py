"""The in-process fast path (--hook inline): the suite's ground truths with
detoured entries, every way a call reaches the allocator, a target under
load while memwatch attaches, detaches and is killed, nothing lost with
every call sampled, and other tracers at the same time."""
import os
import re
import signal
import subprocess
import time

from mwtest import (DEFAULT_RATE, ROOT, Attached, MEMWATCH, Profile, Running, TestCase, WaitingWorkload, memwatch,
                    read_manifest, sampled_tolerance, workload)
from test_allocators import C_CONFIGS, CXX_CONFIGS, env_with

INLINE = ["--hook", "inline"]
NO_LOSS = re.compile(r"losses: ring buffer full 0, live map full 0, calls lost 0, samplers busy 0, unreadable "
                     r"stacks 0, in-process: unreported 0, untracked 0, no thread slot 0")


def exit_code(binary):
    """groundtruth and its builds exit 3; the C++ one 0."""
    return 0 if binary.startswith("gtcxx") else 3


def inline_allocators(stderr):
    """Allocator names memwatch -v says it detoured."""
    return set(re.findall(r": (\S+) allocator in \S+: inline hooks", stderr))


class GroundTruthTest(TestCase):
    """-s 1: exact per-site values with detoured entries, under every
    allocator the suite covers, by -- CMD and by -p."""

    def check(self, name, out, man, run, allocator_rx):
        self.assertRegex(run.stderr, allocator_rx)
        self.assertTrue(inline_allocators(run.stderr), run.stderr)
        self.assertNotIn("on uprobes", run.stderr)
        sites = Profile(out).by_site()
        for site, want in read_manifest(man).items():
            self.assertEqual(sites.get(site, [0, 0, 0, 0]), want, "%s %s" % (name, site))

    def run_command(self, configs, extra):
        for name, (binary, preload, allocator_rx) in configs.items():
            with self.subTest(config=name):
                out, man = self.path(name + ".pb.gz"), self.path(name + ".manifest")
                run = memwatch(["-v", "-s", "1", "-o", out] + INLINE + extra +
                               ["--", workload(binary), "--manifest", man], env=env_with(preload))
                self.assertEqual(run.returncode, exit_code(binary), run.stderr)
                self.check(name, out, man, run, allocator_rx)

    def run_pid(self, configs, extra):
        for name, (binary, preload, allocator_rx) in configs.items():
            with self.subTest(config=name):
                out, man = self.path(name + ".pb.gz"), self.path(name + ".manifest")
                w = WaitingWorkload([workload(binary), "--manifest", man], env=env_with(preload))
                try:
                    mw = Attached(w.pid, ["-v", "-s", "1", "-o", out] + INLINE + extra)
                    w.go()
                    self.assertEqual(w.finish()[0], exit_code(binary))
                finally:
                    w.kill()
                run = mw.wait()
                self.assertEqual(run.returncode, 0, run.stderr)
                self.check(name, out, man, run, allocator_rx)

    def test_c_command(self):
        self.run_command(C_CONFIGS, ["--stack-mode", "fp"])

    def test_c_pid(self):
        self.run_pid(C_CONFIGS, ["--stack-mode", "fp"])

    def test_cxx_command(self):
        self.run_command(CXX_CONFIGS, [])

    def test_cxx_pid(self):
        self.run_pid(CXX_CONFIGS, [])

    def test_default_interval(self):
        """Sampled by the agent's per-thread countdown: within four
        standard errors at the default interval."""
        sizes = {"gt_big_small": 1024, "gt_big_large": 1 << 20}
        for name in ("glibc", "jemalloc-preload", "tcmalloc-preload"):
            binary, preload, _ = C_CONFIGS[name]
            with self.subTest(config=name):
                out, man = self.path(name + ".pb.gz"), self.path(name + ".manifest")
                run = memwatch(["-v", "-o", out] + INLINE + ["--", workload(binary), "--big", "--manifest", man],
                               env=env_with(preload), timeout=300)
                self.assertEqual(run.returncode, 3, run.stderr)
                self.assertTrue(inline_allocators(run.stderr), run.stderr)
                sites = Profile(out).by_site()
                for site, want in read_manifest(man).items():
                    got = sites.get(site, [0, 0, 0, 0])
                    for idx in (1, 3):
                        tol = sampled_tolerance(want[idx - 1], sizes[site], DEFAULT_RATE)
                        self.assertLess(abs(got[idx] - want[idx]), tol, "%s %s[%d]: %d vs %d" %
                                        (name, site, idx, got[idx], want[idx]))


def libc_bytes(pid, name, n=16):
    """n bytes of libc function name: in pid's memory, and in the file."""
    with open("/proc/%d/maps" % pid) as f:
        line = next(l for l in f if "libc.so.6" in l and " 00000000 " in l)
    base, path = int(line.split("-")[0], 16), line.split()[5]
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True).stdout
    offset = next(int(l.split()[0], 16) for l in out.splitlines() if l.split()[2].split("@")[0] == name)
    with open("/proc/%d/mem" % pid, "rb") as mem:
        mem.seek(base + offset)
        memory = mem.read(n)
    with open(path, "rb") as f:
        f.seek(offset)
        return memory, f.read(n)


class AllocOnlyTest(TestCase):
    def test_alloc_only_leaves_free_alone(self):
        """--alloc-only: allocation entries are detoured, free is not touched."""
        out, man = self.path("a.pb.gz"), self.path("a.manifest")
        w = WaitingWorkload([workload("groundtruth"), "--manifest", man])
        try:
            mw = Attached(w.pid, ["-v", "--alloc-only", "-s", "1", "--stack-mode", "fp", "-o", out] + INLINE)
            memory, file = libc_bytes(w.pid, "malloc")
            self.assertNotEqual(memory, file, "malloc is detoured")
            memory, file = libc_bytes(w.pid, "free")
            self.assertEqual(memory, file, "free is untouched")
            w.go()
            self.assertEqual(w.finish()[0], 3)
        finally:
            w.kill()
        run = mw.wait()
        self.assertEqual(run.returncode, 0, run.stderr)
        sites = Profile(out).by_site()
        for site, want in read_manifest(man).items():
            self.assertEqual(sites.get(site, [0, 0])[:2], want[:2], site)


class PathsTest(TestCase):
    """Every path to the allocator goes through the detour."""

    def check_paths(self, out, man, stderr):
        prof = Profile(out)
        sites = prof.by_site()
        for site, want in read_manifest(man).items():
            self.assertEqual(sites.get(site, [0, 0, 0, 0]), want, site)
        by_caller = {}
        for sample in prof.samples:
            for fn in ("gt_strdup", "gt_fopen"):
                if fn in prof.frames(sample):
                    t = by_caller.setdefault(fn, [0, 0, 0, 0])
                    for i in range(4):
                        t[i] += sample[0][i]
        self.assertEqual(by_caller.get("gt_strdup"), [100, 30000, 100, 30000], "libc's strdup")
        fopen = by_caller.get("gt_fopen", [0, 0, 0, 0])
        self.assertGreaterEqual(fopen[0], 50, "libc's fopen")
        self.assertEqual(fopen[2:], [0, 0], "fclose frees what fopen allocated")

    def test_paths_pid(self):
        out, man = self.path("paths.pb.gz"), self.path("paths.manifest")
        w = WaitingWorkload([workload("paths"), "--manifest", man])
        try:
            mw = Attached(w.pid, ["-v", "-s", "1", "-o", out] + INLINE)
            w.go()
            code, stdout, stderr = w.finish()
        finally:
            w.kill()
        # The --wait handshake's line comes first, then what paths says.
        self.assertEqual((code, stdout), (0, "ready %d\npaths: ok\n" % w.pid), stderr)
        run = mw.wait()
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("glibc", inline_allocators(run.stderr))
        self.check_paths(out, man, run.stderr)

    def test_paths_command(self):
        out, man = self.path("paths.pb.gz"), self.path("paths.manifest")
        run = memwatch(["-v", "-s", "1", "-o", out] + INLINE + ["--", workload("paths"), "--manifest", man])
        self.assertEqual((run.returncode, run.stdout), (0, "paths: ok\n"), run.stderr)
        self.check_paths(out, man, run.stderr)

    def test_dlopen_after_attach(self):
        """An allocator dlopen'ed after attach is detoured at the loader
        event. The target waits after the dlopen until memwatch says so."""
        out, man = self.path("dl.pb.gz"), self.path("dl.manifest")
        w = WaitingWorkload([workload("dlalloc"), "--pause", "--manifest", man])
        try:
            mw = Attached(w.pid, ["-v", "-s", "1", "--stack-mode", "fp", "-o", out] + INLINE)
            w.go()
            self.assertTrue(w.out.wait_for(r"^dlalloc: opened"), w.err.lines)
            self.assertTrue(mw.wait_for(r"tcmalloc allocator in \S+: inline hooks"), mw.err_lines)
            w.release()
            self.assertEqual(w.finish()[0], 0)
        finally:
            w.kill()
        run = mw.wait()
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(inline_allocators(run.stderr), {"glibc", "tcmalloc"}, run.stderr)
        self.assertEqual(Profile(out).by_site()["dl_site"], read_manifest(man)["dl_site"])

    def test_exec_after_attach(self):
        """A shell that execs a jemalloc program: its new image is detoured
        like a fresh attach. The program waits (--wait) until memwatch says
        it detoured jemalloc."""
        out, man = self.path("ex.pb.gz"), self.path("ex.manifest")
        shell = Running(["sh", "-c", 'echo started; read x; exec "$0" --wait --manifest "$1"',
                         workload("gt-jemalloc"), man])
        try:
            self.assertTrue(shell.out.wait_for(r"^started"), shell.err.lines)
            mw = Attached(shell.pid, ["-v", "-s", "1", "--stack-mode", "fp", "-o", out] + INLINE)
            shell.send("go")
            self.assertTrue(shell.out.wait_for(r"^ready \d+"), shell.err.lines)
            self.assertTrue(mw.wait_for(r"called exec"), mw.err_lines)
            self.assertTrue(mw.wait_for(r"jemalloc allocator in \S+: inline hooks"), mw.err_lines)
            os.kill(shell.pid, signal.SIGUSR1)
            self.assertEqual(shell.finish()[0], 3)
            run = mw.wait()
        finally:
            shell.kill()
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("jemalloc", inline_allocators(run.stderr))
        sites = Profile(out).by_site()
        for site, want in read_manifest(man).items():
            self.assertEqual(sites.get(site), want, "%s: %s" % (site, run.stderr))


class Stress:
    """tests/workloads/stress: 8 threads allocating and freeing flat out,
    checking every block, until told to stop; returned once every thread
    has made its first thousands of steps."""

    def __init__(self):
        self.proc = subprocess.Popen([workload("stress"), "--wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("ready "), line
        self.pid = int(line.split()[1])
        os.kill(self.pid, signal.SIGUSR1)
        line = self.proc.stdout.readline()
        assert line == "stress: running\n", line

    def stop(self):
        out, err = self.proc.communicate("stop\n", timeout=120)
        return self.proc.returncode, out, err


class LoadTest(TestCase):
    """The target's output and exit status stay those of a run without
    memwatch while memwatch comes and goes."""

    def baseline(self):
        return Stress().stop()[:2]

    def test_attach_detach_50_times(self):
        want = self.baseline()
        self.assertEqual(want, (0, "stress: ok\n"))
        s = Stress()
        try:
            for i in range(50):
                run = memwatch(["-p", str(s.pid), "-d", "0.2", "-s", "64k", "-o", self.path("s.pb.gz")] + INLINE,
                               timeout=60)
                self.assertEqual(run.returncode, 0, "attach %d: %s" % (i, run.stderr))
                self.assertNotRegex(run.stderr, r"memwatch: (cannot|error)", run.stderr)
            self.assertEqual(self.agent_mappings(s.pid), 1, "the agent is mapped once and reused")
        finally:
            got = s.stop()
        self.assertEqual(got[:2], want, got[2])

    KILL_POINTS = (r"probes attach as", r"allocator in .*\(build-id", r"inline hooks, agent at", r"loader hook on",
                   r"profiling pid")

    def test_sigkill_20_times(self):
        want = self.baseline()
        s = Stress()
        try:
            for i in range(20):
                # Killed at varied points of attaching: before and after the
                # detours go in, and once profiling.
                mw = subprocess.Popen([MEMWATCH, "-v", "-p", str(s.pid), "-s", "64k", "-o", self.path("k.pb.gz")] +
                                      INLINE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                point = re.compile(self.KILL_POINTS[i % len(self.KILL_POINTS)])
                lines = []
                for line in mw.stderr:
                    lines.append(line)
                    if point.search(line):
                        break
                mw.kill()
                mw.communicate()
                self.assertTrue(point.search(lines[-1]) if lines else False, "".join(lines))
            # A last, clean run takes the agent over and detaches.
            run = memwatch(["-v", "-p", str(s.pid), "-d", "0.5", "-o", self.path("k.pb.gz")] + INLINE, timeout=60)
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertRegex(run.stderr, r"agent at 0x[0-9a-f]+ \(reused\)")
            self.assertEqual(self.agent_mappings(s.pid), 1)
        finally:
            got = s.stop()
        self.assertEqual(got[:2], want, got[2])

    def agent_mappings(self, pid):
        with open("/proc/%d/maps" % pid) as f:
            return sum("memfd:memwatch-agent" in line for line in f)


class NoLossTest(TestCase):
    """-s 1, 8 threads allocating flat out on this machine's CPUs, DWARF
    stacks: sampled calls wait for the ring instead of being dropped."""

    PAIRS = 20000

    # churn built with jemalloc linked in (the top Makefile's churn-jemalloc-*
    # targets) stands for the suite's gt-jemalloc and gt-jemalloc-static.
    CHURNS = {"jemalloc-linked": "churn-jemalloc-linked", "jemalloc-static": "churn-jemalloc-static"}
    CONFIGS = ("glibc", "jemalloc-preload", "jemalloc-linked", "jemalloc-static", "tcmalloc-preload",
               "tcmalloc-minimal-preload")

    def test_every_allocator(self):
        churns = [".output/churn"] + [".output/" + c for c in self.CHURNS.values()]
        subprocess.run(["make", "-s", "-C", ROOT] + churns, check=True)
        outdir = os.path.join(ROOT, ".output")
        for name in self.CONFIGS:
            _, preload, allocator_rx = C_CONFIGS[name]
            churn = os.path.join(outdir, self.CHURNS.get(name, "churn"))
            allocator_rx = allocator_rx.replace("gt-jemalloc-static", "churn-jemalloc-static")
            with self.subTest(config=name):
                run = memwatch(["-v", "-s", "1", "-o", self.path("n.pb.gz")] + INLINE +
                               ["--", churn, "--threads", "8", "--pairs", str(self.PAIRS)],
                               env=env_with(preload), timeout=600)
                self.assertEqual(run.returncode, 0, run.stderr)
                self.assertRegex(run.stderr, allocator_rx)
                self.assertTrue(inline_allocators(run.stderr), run.stderr)
                self.assertNotIn("on uprobes", run.stderr)
                self.assertRegex(run.stderr, NO_LOSS)
                samples = int(re.search(r"done after [\d.]+s: (\d+) samples", run.stderr).group(1))
                self.assertGreaterEqual(samples, 8 * self.PAIRS)
                self.assertLess(samples, 8 * self.PAIRS + 1000)


class CoexistenceTest(TestCase):
    def test_traced_target_falls_back_to_uprobes(self):
        """strace attached first: ptrace is taken, the uprobe path serves,
        with a one-line note; the profile is still exact."""
        out, man = self.path("gt.pb.gz"), self.path("gt.manifest")
        w = WaitingWorkload([workload("groundtruth"), "--manifest", man])
        tracer = Running(["strace", "-f", "-e", "trace=none", "-o", "/dev/null", "-p", str(w.pid)])
        try:
            self.assertTrue(tracer.err.wait_for(r"^strace: Process %d attached" % w.pid), tracer.err.lines)
            self.assertEqual(self.tracer_of(w.pid), tracer.pid)
            mw = Attached(w.pid, ["-s", "1", "--stack-mode", "fp", "-o", out])
            w.go()
            self.assertEqual(w.finish()[0], 3)
            run = mw.wait()
        finally:
            w.kill()
            tracer.kill()
        self.assertEqual(run.returncode, 0, run.stderr)
        notes = [l for l in run.stderr.splitlines() if "need ptrace" in l]
        self.assertEqual(len(notes), 1, run.stderr)
        self.assertRegex(notes[0], r"traced by pid %d \(strace\)" % tracer.pid)
        sites = Profile(out).by_site()
        for site, want in read_manifest(man).items():
            self.assertEqual(sites.get(site, [0, 0, 0, 0]), want, site)

    def test_gdb_attached_first(self):
        """gdb attached first and holding the target (continued, its commands
        from a pipe the test holds): the uprobe path serves with the same
        one-line note, the profile is exact, and gdb detaches cleanly after;
        the target's output and exit status are those of a run alone."""
        alone = subprocess.run([workload("groundtruth")], capture_output=True, text=True)
        out, man = self.path("gt.pb.gz"), self.path("gt.manifest")
        w = WaitingWorkload([workload("groundtruth"), "--manifest", man, "--hold"])
        gdb = Running(["gdb", "-q", "-nx", "-p", str(w.pid)])
        try:
            # SIGUSR1 (the workload's go) passes through unseen; SIGUSR2,
            # from the test, stops the target in gdb and is not delivered.
            for cmd in ("set pagination off", "set confirm off", "handle SIGUSR1 nostop noprint pass",
                        "handle SIGUSR2 stop print nopass", "echo gdb-attached\\n", "continue"):
                gdb.send(cmd)
            self.assertTrue(gdb.out.wait_for(r"gdb-attached$"), gdb.out.lines)
            self.assertEqual(self.tracer_of(w.pid), gdb.pid)
            mw = Attached(w.pid, ["-s", "1", "--stack-mode", "fp", "-o", out])
            w.go()
            self.assertTrue(w.out.wait_for(r"^checksum="), w.err.lines)
            os.kill(w.pid, signal.SIGUSR2)
            self.assertTrue(gdb.out.wait_for(r"received signal SIGUSR2"), gdb.out.lines)
            gdb.send("detach")
            gdb.send("quit")
            gdb_code, gdb_out, gdb_err = gdb.finish()
            self.assertEqual(gdb_code, 0, gdb_out + gdb_err)
            self.assertRegex(gdb_out, r"\[Inferior 1 \(process %d\) detached\]" % w.pid)
            self.assertEqual(self.tracer_of(w.pid), 0)
            w.release()
            code, stdout, stderr = w.finish()
            run = mw.wait()
        finally:
            w.kill()
            gdb.kill()
        self.assertEqual((code, stdout), (alone.returncode, "ready %d\n%s" % (w.pid, alone.stdout)), stderr)
        self.assertEqual(run.returncode, 0, run.stderr)
        notes = [l for l in run.stderr.splitlines() if "need ptrace" in l]
        self.assertEqual(len(notes), 1, run.stderr)
        self.assertRegex(notes[0], r"traced by pid %d \(gdb\): inline hooks need ptrace; .* probes are uprobes"
                         % gdb.pid)
        sites = Profile(out).by_site()
        for site, want in read_manifest(man).items():
            self.assertEqual(sites.get(site, [0, 0, 0, 0]), want, site)

    def tracer_of(self, pid):
        with open("/proc/%d/status" % pid) as f:
            return int(re.search(r"TracerPid:\s+(\d+)", f.read()).group(1))

    def malloc_first_byte(self, pid):
        with open("/proc/%d/maps" % pid) as f:
            libc = next(l for l in f if "libc.so.6" in l and " r--p 00000000 " in l)
        base = int(libc.split("-")[0], 16)
        out = subprocess.run(["nm", "-D", "/lib/x86_64-linux-gnu/libc.so.6"], capture_output=True, text=True).stdout
        offset = int(re.search(r"^([0-9a-f]+) T malloc@@", out, re.M).group(1), 16)
        with open("/proc/%d/mem" % pid, "rb") as mem:
            mem.seek(base + offset)
            return mem.read(1)[0]

    def bpftrace(self, pid):
        """bpftrace counting malloc(1000) calls of pid (paths' gt_saved_pointer
        makes 200; its forked child none), with its uprobe on malloc's first
        byte (waited for: its int3 in the target)."""
        # bpftrace 0.17's -p does not filter uprobe hits: every process's
        # malloc fires it (other tests' workloads once added 18 calls).
        prog = 'uprobe:/lib/x86_64-linux-gnu/libc.so.6:malloc /pid == %d && arg0 == 1000/ { @n = count(); }' % pid
        # bpftrace runs BEGIN once every probe is attached.
        prog += ' BEGIN { printf("bpftrace-ready\\n"); }'
        bt = Running(["bpftrace", "-p", str(pid), "-e", prog])
        self.assertTrue(bt.out.wait_for(r"^bpftrace-ready"), bt.out.lines + bt.err.lines)
        self.assertEqual(self.malloc_first_byte(pid), 0xcc, "bpftrace's uprobe on malloc's first byte")
        return bt

    def bpftrace_count(self, bt):
        bt.proc.send_signal(signal.SIGINT)
        out = bt.finish(timeout=60)[1]
        return int(re.search(r"@n: (\d+)", out).group(1))

    def run_both(self, bpftrace_first):
        out, man = self.path("paths.pb.gz"), self.path("paths.manifest")
        w = WaitingWorkload([workload("paths"), "--manifest", man])
        bt = None
        try:
            if bpftrace_first:
                bt = self.bpftrace(w.pid)
            mw = Attached(w.pid, ["-v", "-s", "1", "-o", out] + INLINE)
            if not bpftrace_first:
                bt = self.bpftrace(w.pid)
            w.go()
            self.assertEqual(w.finish()[0], 0)
            run = mw.wait()
            count = self.bpftrace_count(bt)
        finally:
            w.kill()
            if bt:
                bt.kill()
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("glibc", inline_allocators(run.stderr))
        self.assertEqual(count, 200, "bpftrace saw every malloc(1000)")
        self.assertEqual(Profile(out).by_site()["gt_saved_pointer"], read_manifest(man)["gt_saved_pointer"])

    def test_bpftrace_before(self):
        self.run_both(True)

    def test_bpftrace_after(self):
        self.run_both(False)


class HostTest(TestCase):
    def test_all_detours_profiled_processes(self):
        """--all: a selected process gets the fast path; allocation values
        exact with -s 1 in its --output-dir profile."""
        man, outdir = self.path("h.manifest"), self.path("out")
        os.mkdir(outdir)
        w = WaitingWorkload([workload("groundtruth"), "--manifest", man])
        host = Running([MEMWATCH, "--all", "-v", "-s", "1", "--pid", str(w.pid), "--output-dir", outdir] + INLINE)
        try:
            self.assertTrue(host.err.wait_for(r"pid %d: glibc allocator in \S+: inline hooks" % w.pid),
                            host.err.lines)
            w.go()
            self.assertEqual(w.finish()[0], 3)
            # Written when memwatch has read the exit (no line says so).
            deadline = time.time() + 30
            while not [f for f in os.listdir(outdir) if f.endswith(".heap.pb.gz")]:
                self.assertLess(time.time(), deadline, "no profile at exit: %s" % "".join(host.err.lines))
                time.sleep(0.1)
        finally:
            w.kill()
            host.proc.send_signal(signal.SIGINT)
            code, _, err = host.finish(timeout=60)
        self.assertEqual(code, 0, err)
        profile = [f for f in os.listdir(outdir) if f.endswith(".heap.pb.gz")][0]
        sites = Profile(os.path.join(outdir, profile)).by_site()
        for site, want in read_manifest(man).items():
            self.assertEqual(sites.get(site, [0, 0])[:2], want[:2], site)


class UprobesBesideDetoursTest(TestCase):
    """memwatch on uprobes (--hook uprobe, or another instance) in a process
    whose detours a killed memwatch left behind: a uprobe inside the bytes a
    detour replaced would make the kernel run the file's instruction there
    and, removed, write the file's byte into the middle of the jmp. Probes
    go on the first byte there, and the target runs on unharmed."""

    def test_uprobes_in_a_detoured_process(self):
        want = LoadTest.baseline(self)
        s = Stress()
        try:
            mw = Attached(s.pid, ["-s", "64k", "-o", self.path("d.pb.gz")] + INLINE)
            mw.kill()	# the detours stay: nothing in the target depends on memwatch
            memory, file = libc_bytes(s.pid, "free")
            self.assertNotEqual(memory, file, "free is detoured")
            runs = [memwatch(["-v", "--hook", "uprobe", "-p", str(s.pid), "-d", "0.5", "-o", self.path("u.pb.gz")],
                             timeout=120) for _ in range(3)]
        finally:
            got = s.stop()
        self.assertEqual(got[:2], want, got[2])
        for run in runs:
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertIn("memwatch's detours may have replaced the bytes after it", run.stderr)
