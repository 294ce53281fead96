"""Core profiler: exact values with -s 1, statistical accuracy at the default
interval, -p and -- CMD, a transparent target, and bad input."""
import os
import re
import subprocess

from mwtest import (DEFAULT_RATE, Attached, MEMWATCH, Profile, Run, Running, TestCase, WaitingWorkload, memwatch,
                    read_manifest, sampled_tolerance, workload)

GT = workload("groundtruth")


class ExactTest(TestCase):
    """With -s 1 every allocation is recorded: per-site values are exact.

    These test accounting, so they use cheap frame-pointer stacks: eight
    threads allocating flat out produce stacks faster than the DWARF
    unwinder consumes them (those losses are counted, not silent)."""

    def check_exact(self, prof, manifest):
        sites = prof.by_site()
        for name, want in manifest.items():
            with self.subTest(site=name):
                got = sites.get(name, [0, 0, 0, 0])
                self.assertEqual(got, want, "%s: alloc_objects alloc_space inuse_objects inuse_space" % name)

    def test_command_exact(self):
        out, man = self.path("gt.pb.gz"), self.path("gt.manifest")
        run = memwatch(["-s", "1", "--stack-mode", "fp", "-o", out, "--", GT, "--manifest", man])
        self.assertEqual(run.returncode, 3, run.stderr)
        prof = Profile(out)
        self.check_exact(prof, read_manifest(man))
        self.assertEqual(prof.period, 1)
        self.assertEqual(prof.sample_types, ["alloc_objects/count", "alloc_space/bytes",
                                             "inuse_objects/count", "inuse_space/bytes"])

    def test_pid_exact(self):
        out, man = self.path("gt.pb.gz"), self.path("gt.manifest")
        w = WaitingWorkload([GT, "--manifest", man])
        mw = Attached(w.pid, ["-s", "1", "--stack-mode", "fp", "-o", out])
        w.go()
        code, _, _ = w.finish()
        self.assertEqual(code, 3)
        run = mw.wait()
        self.assertEqual(run.returncode, 0, run.stderr)
        self.check_exact(Profile(out), read_manifest(man))

    def test_threads_leave_nothing_in_use(self):
        out, man = self.path("gt.pb.gz"), self.path("gt.manifest")
        run = memwatch(["-s", "1", "--stack-mode", "fp", "-o", out, "--", GT, "--manifest", man])
        self.assertEqual(run.returncode, 3, run.stderr)
        got = Profile(out).by_site()["gt_threads_work"]
        self.assertEqual(got[0], 8 * 78 * 64)
        self.assertEqual(got[2:], [0, 0])

    def test_labels_and_mappings(self):
        out = self.path("gt.pb.gz")
        run = memwatch(["-s", "1", "-o", out, "--", GT])
        self.assertEqual(run.returncode, 3, run.stderr)
        prof = Profile(out)
        sizes = {s[2].get("bytes") for s in prof.samples if prof.site_of(s) == "gt_malloc"}
        self.assertEqual(sizes, {"1024 bytes"})
        libc = [m for m in prof.mappings if "libc.so.6" in m]
        self.assertTrue(libc and "[FN]" in libc[0], prof.mappings)
        self.assertIn("groundtruth", prof.mappings[0], "the executable must be the first mapping")


class SampledTest(TestCase):
    """At the default interval every site is within four standard errors."""

    def test_default_interval(self):
        out, man = self.path("big.pb.gz"), self.path("big.manifest")
        run = memwatch(["-o", out, "--", GT, "--big", "--manifest", man], timeout=300)
        self.assertEqual(run.returncode, 3, run.stderr)
        prof = Profile(out)
        self.assertEqual(prof.period, DEFAULT_RATE)
        sites = prof.by_site()
        sizes = {"gt_big_small": 1024, "gt_big_large": 1 << 20}
        for name, want in read_manifest(man).items():
            size = sizes[name]
            got = sites.get(name, [0, 0, 0, 0])
            for idx, what in ((1, "alloc_space"), (3, "inuse_space")):
                count = want[idx - 1]
                tol = sampled_tolerance(count, size, DEFAULT_RATE)
                with self.subTest(site=name, value=what):
                    self.assertLess(abs(got[idx] - want[idx]), tol,
                                    "%s %s: got %d want %d (4 SE = %d)" % (name, what, got[idx], want[idx], tol))


class TransparencyTest(TestCase):
    """The target behaves the same: output, input and exit status."""

    def test_output_and_status(self):
        plain = subprocess.run([GT], capture_output=True, text=True)
        run = memwatch(["-o", self.path("p.pb.gz"), "--", GT])
        self.assertEqual(plain.returncode, 3)
        self.assertEqual(run.returncode, plain.returncode)
        self.assertEqual(run.stdout, plain.stdout)

    def test_stdin_passes_through(self):
        run = memwatch(["-o", self.path("p.pb.gz"), "--", GT, "--echo"], input="hello from stdin\n")
        self.assertTrue(run.stdout.startswith("hello from stdin\n"), run.stdout)
        self.assertEqual(run.returncode, 3)

    def test_signal_status(self):
        run = memwatch(["-o", self.path("p.pb.gz"), "--", "sh", "-c", "kill -TERM $$"])
        self.assertEqual(run.returncode, 128 + 15, run.stderr)

    def test_duration_with_command(self):
        """-d stops profiling and writes the profile; the command runs on
        (it waits for the test's word) and memwatch exits with its status."""
        out = self.path("p.pb.gz")
        mw = Running([MEMWATCH, "-d", "0.5", "-o", out, "--", GT, "--hold"])
        try:
            self.assertTrue(mw.err.wait_for(r"^memwatch: wrote %s$" % re.escape(out)), mw.err.lines)
            self.assertEqual(Profile(out).sample_types[0], "alloc_objects/count")
            self.assertIsNone(mw.proc.poll(), "memwatch must wait for its command")
            mw.send("")
            code, stdout, stderr = mw.finish()
        finally:
            mw.kill()
        self.assertEqual(code, 3, stderr)
        self.assertEqual(stdout.count("checksum="), 1, stdout)


class BadInputTest(TestCase):
    """Errors are one line; nothing stays attached (TestCase checks that
    after every test, and these check it mid-test too)."""

    def assertNothingAttached(self):
        self.assertNothingLeaked()

    def test_missing_pid(self):
        run = memwatch(["-p", "4194000", "-o", self.path("x.pb.gz")])
        self.assertOneLineError(run, "no process with pid 4194000")
        self.assertFalse(os.path.exists(self.path("x.pb.gz")))
        self.assertNothingAttached()

    def test_static_binary_without_libc(self):
        proc = subprocess.Popen([workload("nolibc")])
        try:
            run = memwatch(["-p", str(proc.pid), "-o", self.path("x.pb.gz")])
            self.assertOneLineError(run, "maps no allocator memwatch knows .*glibc.*jemalloc.*tcmalloc")
            self.assertIsNone(proc.poll(), "the target must keep running")
        finally:
            proc.kill()
            proc.wait()
        self.assertNothingAttached()
        run = memwatch(["-o", self.path("y.pb.gz"), "--", workload("nolibc")])
        self.assertOneLineError(run, "statically linked")

    def test_unprivileged(self):
        w = WaitingWorkload([GT])
        try:
            cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
                   "--bounding-set=-all", MEMWATCH, "-p", str(w.pid), "-o", "/tmp/never.pb.gz"]
            p = subprocess.run(cmd, capture_output=True, text=True)
            run = Run(p, p.stdout, p.stderr)
            self.assertOneLineError(run, "permission denied")
        finally:
            w.go()
            w.finish()
        self.assertNothingAttached()

    def test_unwritable_output(self):
        w = WaitingWorkload([GT])
        try:
            run = memwatch(["-p", str(w.pid), "-o", "/nonexistent/dir/x.pb.gz"])
            self.assertOneLineError(run, "cannot write /nonexistent/dir/x.pb.gz")
            self.assertNothingAttached()
        finally:
            w.go()
            code, out, _ = w.finish()
        self.assertEqual(code, 3)

    def test_missing_command(self):
        run = memwatch(["-o", self.path("x.pb.gz"), "--", "/no/such/command"])
        self.assertEqual(run.returncode, 127)
        self.assertOneLineError(run, "command not found")

    def test_usage_errors(self):
        for args in (["-s", "abc", "-p", "1"], ["-p", "1", "--", "true"], [], ["-d", "-1", "-p", "1"]):
            with self.subTest(args=args):
                run = memwatch(args)
                self.assertEqual(run.returncode, 2)
                self.assertOneLineError(run, "")

    def test_target_exits_mid_run(self):
        out = self.path("x.pb.gz")
        w = WaitingWorkload([GT])
        mw = Attached(w.pid, ["-o", out, "-s", "1"])
        w.go()
        w.finish()
        run = mw.wait(timeout=30)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("gt_malloc", Profile(out).by_site())
        self.assertNothingAttached()

    def test_interrupt_writes_profile(self):
        out = self.path("x.pb.gz")
        w = WaitingWorkload([GT, "--hold"])
        try:
            mw = Attached(w.pid, ["-o", out, "-s", "1"])
            w.go()
            self.assertTrue(w.out.wait_for(r"^checksum="), "the workload did not finish allocating")
            run = mw.interrupt()
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertIn("gt_malloc", Profile(out).by_site())
            self.assertNothingAttached()
            self.assertIsNone(w.proc.poll(), "the target must keep running")
            w.release()
            self.assertEqual(w.finish()[0], 3)
        finally:
            w.kill()


class CliTest(TestCase):
    def test_help_lists_every_flag(self):
        run = memwatch(["--help"])
        self.assertEqual(run.returncode, 0)
        for flag in ("--pid", "--output", "--duration", "--sample-bytes", "--interval", "--verbose",
                     "--help", "--version"):
            self.assertIn(flag, run.stdout)
        # ... and the README documents every one of them.
        with open(os.path.join(os.path.dirname(MEMWATCH), "README.md")) as f:
            readme = f.read()
        flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", run.stdout))
        self.assertGreater(len(flags), 30)
        for flag in sorted(flags):
            self.assertRegex(readme, r"`[^`]*%s\b" % re.escape(flag), "%s is not in the README" % flag)

    def test_version(self):
        run = memwatch(["-V"])
        self.assertEqual(run.returncode, 0)
        self.assertRegex(run.stdout, r"^memwatch \S+")

    def test_verbose_names_probes(self):
        run = memwatch(["-v", "--hook", "uprobe", "-o", self.path("x.pb.gz"), "--", GT])
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertRegex(run.stderr, r"malloc +0x[0-9a-f]+\+0 \(file offset 0x[0-9a-f]+\): push")
        self.assertRegex(run.stderr, r"free +0x[0-9a-f]+\+3 .*je .*emulated")
        self.assertRegex(run.stderr, r"reallocarray +forwards to realloc: counted there")

    def test_interval_summary(self):
        """A summary every -i while the command runs (it waits for one)."""
        mw = Running([MEMWATCH, "-i", "0.2", "-o", self.path("x.pb.gz"), "--", GT, "--hold"])
        try:
            self.assertTrue(mw.out.wait_for(r"^checksum="), mw.err.lines)
            summary = mw.err.wait_for(r"^memwatch: after [\d.]+s: (\d+) samples")
            self.assertTrue(summary, mw.err.lines)
            mw.send("")
            code, _, stderr = mw.finish()
        finally:
            mw.kill()
        self.assertEqual(code, 3, stderr)
        self.assertIn("memwatch: losses:", stderr)
