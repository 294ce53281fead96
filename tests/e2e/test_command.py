"""-- CMD: the command is never left stopped by memwatch, keeps the stops
others give it, and runs whatever exec would run (a static binary), while
what exec could not run is refused as such (exit 127)."""
import os
import signal
import stat

from mwtest import (MEMWATCH, Attached, Profile, Running, TestCase, WaitingWorkload, memwatch, read_manifest,
                    wait_until, workload)


def proc_state(pid):
    """The one-letter state of /proc/PID/stat; None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(c) for c in f.read().split()]


class StopTest(TestCase):
    def start(self, name):
        """memwatch -- workload --wait: (memwatch, the command's pid)."""
        mw = Running([MEMWATCH, "-o", self.path("x.pb.gz"), "--", workload(name), "--wait"])
        m = mw.out.wait_for(r"^ready (\d+)")
        if not m:
            mw.kill()
            self.fail("the command did not start: %s" % mw.err.text())
        return mw, int(m.group(1))

    def test_memwatch_killed_at_a_loader_stop(self):
        """memwatch stopped, the command reaches a loader stop (its dlopen),
        memwatch is SIGKILLed: the command goes on to its end."""
        mw, pid = self.start("dlalloc")
        helpers = [c for c in children(mw.pid) if c != pid]
        try:
            os.kill(mw.pid, signal.SIGSTOP)
            os.kill(pid, signal.SIGUSR1)
            self.assertTrue(wait_until(lambda: proc_state(pid) == "T"), "the command never reached the loader stop")
            os.kill(mw.pid, signal.SIGKILL)
            done = mw.out.wait_for(r"^dlalloc: done", timeout=30)
            self.assertIsNotNone(done, "the command was left in state %s" % proc_state(pid))
        finally:
            if proc_state(pid) not in (None, "Z"):
                os.kill(pid, signal.SIGKILL)
            mw.kill()
        self.assertIn("resumed it", mw.err.text())
        for h in helpers:
            self.assertTrue(wait_until(lambda: proc_state(h) in (None, "Z")), "helper %d outlived memwatch" % h)

    def test_sigstop_from_elsewhere_stays(self):
        """A SIGSTOP the command gets from someone else is not undone; a
        SIGCONT from them resumes it, and the run ends as usual."""
        mw, pid = self.start("groundtruth")
        try:
            os.kill(pid, signal.SIGSTOP)
            self.assertIsNotNone(mw.err.wait_for(r"^memwatch: pid %d was stopped by SIGSTOP, not by memwatch: "
                                                 r"left stopped$" % pid, timeout=30), mw.err.text(0))
            self.assertEqual(proc_state(pid), "T")
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGUSR1)
            code, out, err = mw.finish()
        finally:
            if proc_state(pid) not in (None, "Z"):
                os.kill(pid, signal.SIGKILL)
            mw.kill()
        self.assertEqual(code, 3, err)
        self.assertIn("checksum=", out)
        # Sampled at the default rate: one small site may have no sample
        # (gt_malloc's 600 KiB: about 1.2 expected), but the command's
        # 33 MB in all give about 64, none with probability e^-64.
        self.assertTrue(Profile(self.path("x.pb.gz")).by_site(), "the profile holds the command's samples")


class FileTest(TestCase):
    def test_static_glibc_binary(self):
        """A statically linked glibc program is profiled as -p profiles it:
        every site exact at -s 1 (a site's samples are those whose stack
        names it: static glibc calls its calloc __calloc)."""
        out, man = self.path("x.pb.gz"), self.path("x.manifest")
        run = memwatch(["-s", "1", "--stack-mode", "fp", "-o", out, "--", workload("gt-static"), "--manifest", man])
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertRegex(run.stderr, r"memwatch: profiling pid \d+ \(gt-static\): (inline hooks in 1 allocator file and )?"
                                     r"\d+ probe sites,? in glibc")
        prof = Profile(out)
        for site, want in read_manifest(man).items():
            with self.subTest(site=site):
                got = [0, 0, 0, 0]
                for sample in prof.samples:
                    if site in prof.frames(sample):
                        got = [g + v for g, v in zip(got, sample[0][:4])]
                self.assertEqual(got, want)

    def assertCannotRun(self, path, why):
        run = memwatch(["-o", self.path("x.pb.gz"), "--", path])
        self.assertEqual(run.returncode, 127, run.stderr)
        self.assertOneLineError(run, "%s cannot be run: %s" % (path, why))
        self.assertNotIn("statically linked", run.stderr)

    def test_directory(self):
        self.assertCannotRun(self.dir, "is a directory")

    def test_corrupt_elf(self):
        path = self.path("corrupt")
        with open(workload("groundtruth"), "rb") as f:
            head = f.read(64)
        with open(path, "wb") as f:
            f.write(head[:16] + b"\xff" * 48)	# the magic, then a header no loader accepts
        os.chmod(path, stat.S_IRWXU)
        self.assertCannotRun(path, "is neither an ELF executable nor a #! script")

    def test_script_with_missing_interpreter(self):
        path = self.path("script")
        with open(path, "w") as f:
            f.write("#!/no/such/interpreter\n")
        os.chmod(path, stat.S_IRWXU)
        self.assertCannotRun(path, "its interpreter /no/such/interpreter: No such file or directory")


class LatencyFileTest(TestCase):
    """--latency-probe FILE:FUNCTION: a bare FILE is a name the target maps
    a file by; a FILE the target does not map is an error, never silence."""

    def test_bare_library_name(self):
        w = WaitingWorkload([workload("groundtruth")])
        try:
            mw = Attached(w.pid, ["-v", "-o", self.path("x.pb.gz"), "--latency-probe", "libc.so.6:malloc"])
            w.go()
            w.finish()
            run = mw.wait()
        finally:
            w.kill()
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertRegex(run.stderr, r"memwatch: latency probe on malloc in /\S*/libc\.so\.6 at 0x")

    def test_pid_not_mapping_the_file(self):
        w = WaitingWorkload([workload("groundtruth")])
        try:
            run = memwatch(["-p", str(w.pid), "-d", "5", "-o", self.path("x.pb.gz"),
                            "--latency-probe", "libnotmapped.so.1:f"])
            self.assertOneLineError(run, r"--latency-probe libnotmapped.so.1:f: pid %d maps no file "
                                    r"libnotmapped.so.1$" % w.pid)
            self.assertIsNone(w.proc.poll(), "the target must keep running")
        finally:
            w.go()
            w.finish()

    def test_command_with_a_missing_file(self):
        run = memwatch(["-o", self.path("x.pb.gz"), "--latency-probe", "/no/such/lib.so:f", "--",
                        workload("groundtruth")])
        self.assertOneLineError(run, r"--latency-probe /no/such/lib.so:f: no file /no/such/lib.so$")
        self.assertNotIn("checksum", run.stdout)

    def test_command_never_mapping_the_file(self):
        run = memwatch(["-o", self.path("x.pb.gz"), "--latency-probe", "libnotmapped.so.1:f", "--",
                        workload("groundtruth")])
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertRegex(run.stderr, r"memwatch: --latency-probe libnotmapped.so.1:f: pid \d+ never mapped "
                         r"libnotmapped.so.1: no latency measured")


FORGED_NAME = "gt\nmemwatch: forged \x1b[2J"	# the comm keeps "gt\nmemwatch: fo"


class EscapeTest(TestCase):
    """Comms and paths (the target's to choose) are escaped on stderr: a
    newline in them cannot forge a line of memwatch's, nor an escape
    sequence drive the terminal."""

    def assertNoForgedLine(self, stderr):
        self.assertNotRegex(stderr, r"(?m)^memwatch: fo")
        self.assertNotIn("\x1b", stderr)

    def test_comm_of_a_command(self):
        link = self.path(FORGED_NAME)
        os.symlink(workload("groundtruth"), link)
        run = memwatch(["-v", "-o", self.path("x.pb.gz"), "--", link])
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertRegex(run.stderr, r"memwatch: profiling pid \d+ \(gt\\nmemwatch: fo\): ")
        self.assertNoForgedLine(run.stderr)

    def test_path_of_a_command(self):
        path = self.path(FORGED_NAME)
        os.mkdir(path)
        run = memwatch(["-o", self.path("x.pb.gz"), "--", path])
        self.assertEqual(run.returncode, 127, run.stderr)
        self.assertOneLineError(run, r"gt\\nmemwatch: forged \\x1b\[2J cannot be run: is a directory$")
        self.assertNoForgedLine(run.stderr)


class ExecTest(TestCase):
    def test_static_binary_a_shell_execs(self):
        """A static program the command execs is probed before its first
        instruction, as the command itself would be: exact at -s 1."""
        out, man = self.path("x.pb.gz"), self.path("x.manifest")
        run = memwatch(["-s", "1", "--stack-mode", "fp", "-o", out, "--", "/bin/sh", "-c",
                        'exec "$0" --manifest "$1"', workload("gt-static"), man])
        self.assertEqual(run.returncode, 3, run.stderr)
        prof = Profile(out)
        for site, want in read_manifest(man).items():
            with self.subTest(site=site):
                got = [0, 0, 0, 0]
                for sample in prof.samples:
                    if site in prof.frames(sample):
                        got = [g + v for g, v in zip(got, sample[0][:4])]
                self.assertEqual(got, want)
