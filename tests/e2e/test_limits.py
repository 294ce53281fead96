"""Bounds and selections: sizes beyond what the machine can give (or too
small to work) and selections that would profile everything or nothing are
usage errors, before anything is loaded."""
import os

from mwtest import Profile, TestCase, memwatch, workload

GT = workload("groundtruth")
MISSING_PID = "4194000"   # above any pid_max: a run that got past the options fails on it


def mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal")


class BoundsTest(TestCase):
    def assertUsageError(self, args, pattern):
        run = memwatch(args, timeout=60)
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertOneLineError(run, pattern)
        self.assertNothingLeaked()

    def test_ring_larger_than_the_machine(self):
        """Two rings of N bytes (each mapped twice in RSS): at most 1/16 of memory."""
        too_big = 1 << 31
        self.assertGreater(2 * too_big, mem_total() // 16, "this machine would allow it")
        self.assertUsageError(["--ring-bytes", "2g", "-p", MISSING_PID], r"--ring-bytes 2g: at most \d+[kmg]? ")

    def test_ring_that_cannot_hold_an_event(self):
        self.assertUsageError(["--ring-bytes", "4096", "-p", MISSING_PID],
                              r"--ring-bytes 4k: at least 64k with --stack-bytes 32k")
        self.assertUsageError(["--ring-bytes", "64k", "--stack-bytes", "64k", "-p", MISSING_PID],
                              r"at least 128k")

    def test_smallest_ring_records_stacks(self):
        """The smallest ring allowed holds events: samples reach the profile."""
        out = self.path("x.pb.gz")
        run = memwatch(["--ring-bytes", "64k", "-s", "1", "-o", out, "--", GT])
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertIn("gt_malloc", Profile(out).by_site())

    def test_live_map_larger_than_the_machine(self):
        # 100m blocks: a 2 GiB bucket array at load, 8 GiB more when full.
        self.assertUsageError(["--max-live", "100m", "-p", MISSING_PID], r"--max-live 104857600: at most \d+ ")
        self.assertUsageError(["--all", "--pages-only", "--max-live-samples", "100m", "-d", "1"], r"--max-live 104857600")

    def test_processes_beyond_pid_max(self):
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
        self.assertUsageError(["--all", "--max-processes", str(pid_max + 1), "-d", "1"],
                              r"--max-processes %d: at most \d+" % (pid_max + 1))
        self.assertUsageError(["--all", "--max-profiled", str(pid_max + 1), "-d", "1"],
                              r"--max-profiled %d: at most %d" % (pid_max + 1, pid_max))


class SelectionTest(TestCase):
    """--all's selections that would silently probe every process or none."""

    def assertUsageError(self, args, pattern):
        run = memwatch(["--all", "-d", "2"] + args, timeout=60)
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertOneLineError(run, pattern)

    def test_comm_matching_everything(self):
        for rx in ("", "redis|", ".*"):
            with self.subTest(comm=rx):
                self.assertUsageError(["--comm", rx], "matches the empty string, so every process")

    def test_empty_pid_list(self):
        for arg in ("", ",", "1,,2"):
            with self.subTest(pid=arg):
                self.assertUsageError(["--pid", arg], "invalid --pid LIST")

    def test_missing_cgroup(self):
        self.assertUsageError(["--cgroup", "/nonexistent-memwatch-test"], "no such cgroup")
        self.assertUsageError(["--cgroup", "/sys/fs/cgroup/../../etc"], r"no '\.' or '\.\.'")
        self.assertTrue(os.path.isdir("/etc"))
