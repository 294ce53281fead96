"""Whole stacks without frame pointers: DWARF unwinding of stack snapshots,
and an honest frame-pointer mode."""
import subprocess

from mwtest import Profile, TestCase, memwatch, read_manifest, traces, workload

# bytes label -> the functions its stack must pass through, leaf to root,
# after pprof drops the allocator's frames.
EXPECTED = {
    "1001B": ["leaf_alloc"] + ["recurse"] * 40 + ["run_recursion", "main"],
    "7.83kB": ["cxx_build_vector", "run_cxx", "main"],
    "1003B": ["thread_alloc", "thread_main", "start_thread"],
    "1004B": ["lib_alloc_inner", "lib_alloc_outer", "run_library", "main"],
    "1005B": ["plugin_alloc_inner", "plugin_alloc", "run_plugin", "main"],
}
ROOTS = {"main": "__libc_start_call_main", "start_thread": "clone3"}


def name(frame):
    return frame.replace(" (inline)", "")


def is_subsequence(want, frames):
    it = iter(frames)
    return all(any(w == f for f in it) for w in want)


class UnwindTest(TestCase):
    def profile(self, binary, mode, extra=()):
        out = self.path("stacks.pb.gz")
        run = memwatch(["-s", "1", "--stack-mode", mode, "-o", out] + list(extra) + ["--", binary])
        self.assertEqual(run.returncode, 0, run.stderr)
        return [(labels, [name(f) for f in frames]) for labels, frames in traces(out)]

    def check_complete(self, binary, mode):
        seen = {size: 0 for size in EXPECTED}
        for labels, frames in self.profile(binary, mode):
            size = labels.get("bytes")
            if size not in EXPECTED:
                continue
            seen[size] += 1
            want = EXPECTED[size]
            with self.subTest(size=size, mode=mode):
                self.assertFalse([f for f in frames if f.startswith("[truncated")], frames)
                self.assertTrue(is_subsequence(want, frames), "want %s in %s" % (want, frames))
                # Complete: the chain goes on past main/start_thread to the root.
                last = want[-1]
                self.assertIn(ROOTS[last], frames[frames.index(last):], frames)
        for size, count in seen.items():
            self.assertEqual(count > 0, True, "no samples of %s" % size)

    def test_auto_without_frame_pointers(self):
        self.check_complete(workload("stacks"), "auto")

    def test_dwarf_without_frame_pointers(self):
        self.check_complete(workload("stacks"), "dwarf")

    def test_auto_at_O0(self):
        self.check_complete(workload("O0/stacks"), "auto")

    def test_cxx_goes_through_libstdcxx(self):
        for labels, frames in self.profile(workload("stacks"), "auto"):
            if labels.get("bytes") == "7.83kB":
                # The frame pprof shows first is libstdc++'s inlined allocator
                # code in the caller, reached by unwinding through operator new.
                self.assertRegex(frames[0], r"allocat|reserve", frames)

    def test_small_snapshot_is_marked(self):
        """A 4 KiB snapshot cannot hold the 40-deep recursion: marked, not wrong."""
        found = False
        for labels, frames in self.profile(workload("stacks"), "dwarf", ["--stack-bytes", "4096"]):
            if labels.get("bytes") != "1001B":
                continue
            found = True
            self.assertEqual(frames[-1], "[truncated: stack snapshot too small]", frames)
            real = frames[:-1]
            self.assertEqual(real, EXPECTED["1001B"][:len(real)], "frames before the mark must be right")
        self.assertTrue(found)


class FramePointerModeTest(TestCase):
    """--stack-mode fp: every stack is right as far as it goes and ends in a
    marked truncation frame where a function keeps no frame pointer."""

    def truth(self, binary):
        out = self.path("truth.pb.gz")
        run = memwatch(["-s", "1", "-o", out, "--", binary])
        self.assertEqual(run.returncode, 0, run.stderr)
        chains = {}
        for labels, frames in traces(out):
            chains.setdefault(labels.get("bytes"), [name(f) for f in frames])
        return chains

    def check_honest(self, binary, require_full=()):
        truth = self.truth(binary)
        out = self.path("fp.pb.gz")
        run = memwatch(["-s", "1", "--stack-mode", "fp", "-o", out, "--", binary])
        self.assertEqual(run.returncode, 0, run.stderr)
        checked = 0
        for labels, frames in traces(out):
            size = labels.get("bytes")
            if size not in EXPECTED:
                continue
            frames = [name(f) for f in frames]
            true_chain = truth[size]
            with self.subTest(size=size):
                if frames[-1].startswith("[truncated"):
                    self.assertRegex(frames[-1], r"^\[truncated: .*(frame pointer|no symbol)")
                    frames = frames[:-1]
                else:
                    self.assertEqual(frames, true_chain)
                self.assertEqual(frames, true_chain[:len(frames)], "fp frames must be a prefix of the truth")
                if size in require_full:
                    self.assertTrue(is_subsequence(EXPECTED[size], frames), frames)
                checked += 1
        self.assertGreater(checked, 0)

    def test_fp_without_frame_pointers(self):
        self.check_honest(workload("stacks"))

    def test_fp_at_O0(self):
        # At -O0 every function of ours keeps a frame pointer: the walk is
        # whole through them (libc's frames are cut).
        self.check_honest(workload("O0/stacks"), require_full=("1001B", "1003B", "1004B", "1005B"))


class OtherTracerTest(TestCase):
    """Another tool's uretprobes on the same allocator functions, for
    another process: the kernel replaces the return address with its
    trampoline in every process that hits them, before memwatch's probe a
    few bytes further in runs. The callers must still be the real ones."""

    SITES = ["gt_posix_memalign", "gt_aligned_alloc", "gt_memalign", "gt_valloc"]
    LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"

    def test_foreign_uretprobes(self):
        idle = subprocess.Popen(["sleep", "120"])
        probes = ",".join("uretprobe:%s:%s" % (self.LIBC, f) for f in ("posix_memalign", "aligned_alloc", "valloc"))
        tracer = subprocess.Popen(["bpftrace", "-p", str(idle.pid), "-e", probes + " { @n = count(); }"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            line = ""
            while "Attaching" not in line:
                line = tracer.stdout.readline()
                self.assertTrue(line, "bpftrace did not start")
            for mode in ("fp", "auto"):
                out, man = self.path(mode + ".pb.gz"), self.path(mode + ".manifest")
                run = memwatch(["-s", "1", "--stack-mode", mode, "-o", out, "--",
                                workload("groundtruth"), "--manifest", man])
                self.assertIn(run.returncode, (0, 3), run.stderr)   # groundtruth's own status
                sites = Profile(out).by_site()
                want = read_manifest(man)
                for site in self.SITES:
                    self.assertEqual(sites.get(site), want[site], "%s: %s" % (mode, site))
        finally:
            tracer.terminate()
            tracer.communicate()
            idle.kill()
            idle.wait()
