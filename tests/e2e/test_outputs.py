"""Output files (-o, --pages-output, --timeline, --plot): what memwatch does
to the paths it is given. Devices, FIFOs and stdout are streamed into, never
replaced; regular files are replaced atomically keeping their owner and no
wider mode; directories, links to files and one file named twice are
refused before attaching; a killed memwatch leaves no temporary file."""
import os
import signal
import stat
import subprocess
import threading

from mwtest import MEMWATCH, Attached, Profile, TestCase, WaitingWorkload, memwatch, workload

GT = workload("groundtruth")
NOBODY = 65534


def boot_and_pidns():
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read()[:8]
    ns = os.readlink("/proc/self/ns/pid")
    return boot, ns[len("pid:["):-1]


def wait_attached(proc):
    """Reads memwatch's stderr (bytes) up to its "profiling pid" line."""
    lines = []
    for line in iter(proc.stderr.readline, b""):
        lines.append(line.decode())
        if line.startswith(b"memwatch: profiling pid"):
            return lines
    raise RuntimeError("memwatch did not attach: %s" % "".join(lines))


def dead_pid():
    """A pid no process has: that of a child already reaped."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


class StreamTest(TestCase):
    def test_character_device_stays(self):
        null = self.path("null")
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        run = memwatch(["-o", null, "--", GT])
        self.assertEqual(run.returncode, 3, run.stderr)
        st = os.lstat(null)
        self.assertTrue(stat.S_ISCHR(st.st_mode), "the device was replaced by a regular file")
        self.assertEqual(st.st_rdev, os.makedev(1, 3))
        self.assertEqual(sorted(os.listdir(self.dir)), ["null"], "no page profile is derived from a device")

    def test_device_that_is_the_commands_stdout(self):
        """`-o /dev/null -- CMD > /dev/null` (a cron job's form): a device keeps
        nothing the profile could corrupt, so it is not refused."""
        null = self.path("null")
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        with open(null, "wb") as sink:
            run = subprocess.run([MEMWATCH, "-o", null, "--", GT], stdout=sink, stderr=subprocess.PIPE,
                                 text=True, timeout=120)
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertIn("memwatch: wrote %s" % null, run.stderr)
        st = os.lstat(null)
        self.assertTrue(stat.S_ISCHR(st.st_mode), "the device was replaced by a regular file")
        self.assertEqual(sorted(os.listdir(self.dir)), ["null"])

    def test_symlink_to_device_written_through(self):
        null = self.path("null")
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.symlink(null, self.path("out"))
        run = memwatch(["-o", self.path("out"), "--", GT])
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertTrue(os.path.islink(self.path("out")))
        self.assertTrue(stat.S_ISCHR(os.stat(self.path("out")).st_mode))

    def test_fifo_is_streamed(self):
        fifo = self.path("fifo")
        os.mkfifo(fifo)
        got = {}

        def read_all():
            with open(fifo, "rb") as f:
                got["data"] = f.read()

        reader = threading.Thread(target=read_all)
        reader.start()
        try:
            run = memwatch(["-s", "1", "-o", fifo, "--", GT])
        finally:
            if reader.is_alive() and "data" not in got:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))   # lets the reader end
            reader.join(timeout=60)
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced")
        with open(self.path("got.pb.gz"), "wb") as f:
            f.write(got["data"])
        self.assertIn("gt_malloc", Profile(self.path("got.pb.gz")).by_site())

    def test_fifo_reader_comes_later(self):
        """memwatch says it waits for the reader, before attaching."""
        fifo = self.path("fifo")
        os.mkfifo(fifo)
        w = WaitingWorkload([GT])
        mw = subprocess.Popen([MEMWATCH, "-p", str(w.pid), "-s", "1", "-o", fifo, "-d", "0.5"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = mw.stderr.readline().decode()
            self.assertIn("is a FIFO: waiting for its reader", line)
            with open(fifo, "rb") as f:
                wait_attached(mw)
                w.go()
                data = f.read()
            _, err = mw.communicate(timeout=60)
            self.assertEqual(mw.returncode, 0, err)
        finally:
            mw.kill()
            mw.communicate()
            w.kill()
        with open(self.path("got.pb.gz"), "wb") as f:
            f.write(data)
        Profile(self.path("got.pb.gz"))   # a whole profile

    def test_stdout_dash(self):
        w = WaitingWorkload([GT, "--hold"])
        try:
            mw = subprocess.Popen([MEMWATCH, "-p", str(w.pid), "-s", "1", "-o", "-", "-d", "1"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.dir)
            wait_attached(mw)
            w.go()
            out, err = mw.communicate(timeout=60)
        finally:
            w.kill()
        self.assertEqual(mw.returncode, 0, err)
        self.assertEqual(os.listdir(self.dir), [], "no file named - nor a page profile")
        with open(self.path("got.pb.gz"), "wb") as f:
            f.write(out)
        self.assertIn("gt_malloc", Profile(self.path("got.pb.gz")).by_site())

    def test_stdout_refused_with_command(self):
        """-- CMD writes its own stdout: a profile there would be corrupted."""
        run = memwatch(["-o", "-", "--", GT])
        self.assertOneLineError(run, "cannot write -: it is the command's stdout")
        self.assertEqual(run.stdout, "")

    def test_file_that_is_the_commands_stdout_refused(self):
        """`-o log -- CMD > log`: replacing the file would lose the command's output."""
        log = self.path("log")
        with open(log, "w") as f:
            f.write("kept\n")
        with open(log, "a") as out:
            run = subprocess.run([MEMWATCH, "-o", log, "--", GT], stdout=out, stderr=subprocess.PIPE, text=True,
                                 timeout=120)
        self.assertOneLineError(run, "cannot write .*/log: it is the command's stdout")
        with open(log) as f:
            self.assertEqual(f.read(), "kept\n")


class RefusedTest(TestCase):
    def assertRefusedBeforeAttach(self, args, pattern):
        w = WaitingWorkload([GT])
        try:
            run = memwatch(["-p", str(w.pid)] + args)
            self.assertEqual(run.returncode, 1, run.stderr)
            self.assertOneLineError(run, pattern)
            self.assertNothingLeaked()
        finally:
            w.go()
            self.assertEqual(w.finish()[0], 3)

    def test_directory(self):
        self.assertRefusedBeforeAttach(["-o", self.dir], "cannot write .*: is a directory")
        self.assertEqual(os.listdir(self.dir), [])

    def test_same_file_twice(self):
        a = self.path("a.pb.gz")
        self.assertRefusedBeforeAttach(["-o", a, "--pages-output", a], "the same file")
        self.assertRefusedBeforeAttach(["-o", a, "--pages-output", self.dir + "/./a.pb.gz"], "the same file")
        self.assertRefusedBeforeAttach(["-o", self.path("t.csv"), "--timeline", self.path("t.csv")],
                                       "the same file")
        with open(a, "w") as f:
            f.write("keep")
        os.link(a, self.path("b.pb.gz"))
        self.assertRefusedBeforeAttach(["-o", a, "--pages-output", self.path("b.pb.gz")], "the same file")
        with open(a) as f:
            self.assertEqual(f.read(), "keep")

    def test_symlink_to_file(self):
        """A planted link must not redirect root's write onto its target."""
        victim = self.path("victim")
        with open(victim, "w") as f:
            f.write("precious")
        os.symlink(victim, self.path("x.pb.gz"))
        self.assertRefusedBeforeAttach(["-o", self.path("x.pb.gz")], "is a symlink to a regular file")
        os.symlink(self.path("nowhere"), self.path("d.pb.gz"))
        self.assertRefusedBeforeAttach(["-o", self.path("d.pb.gz")], "is a symlink to nothing")
        with open(victim) as f:
            self.assertEqual(f.read(), "precious")
        self.assertTrue(os.path.islink(self.path("x.pb.gz")))
        self.assertFalse(os.path.exists(self.path("nowhere")))


class RegularFileTest(TestCase):
    def test_keeps_owner_and_mode(self):
        out = self.path("u.pb.gz")
        with open(out, "w") as f:
            f.write("old")
        os.chown(out, NOBODY, NOBODY)
        os.chmod(out, 0o600)
        os.chmod(self.dir, 0o755)
        run = memwatch(["-s", "1", "-o", out, "--", GT])
        self.assertEqual(run.returncode, 3, run.stderr)
        st = os.lstat(out)
        self.assertEqual((st.st_uid, st.st_gid), (NOBODY, NOBODY))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertIn("gt_malloc", Profile(out).by_site())

    def test_never_wider_nor_executable(self):
        out = self.path("x.pb.gz")
        with open(out, "w") as f:
            f.write("old")
        os.chmod(out, 0o751)
        run = memwatch(["-o", out, "--", GT])
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertEqual(stat.S_IMODE(os.lstat(out).st_mode), 0o640)

    def test_file_put_there_during_the_run_not_adopted(self):
        """Whoever can write the directory and swaps in a file of their own
        while memwatch runs does not get the profile (owner, mode)."""
        out = self.path("x.pb.gz")
        with open(out, "w") as f:
            f.write("old")
        os.chmod(out, 0o600)
        os.chmod(self.dir, 0o777)
        w = WaitingWorkload([GT, "--hold"])
        try:
            mw = Attached(w.pid, ["-s", "1", "-o", out, "--pages-output", self.path("p.pb.gz")])
            swapped = self.path("swap")
            with open(swapped, "w") as f:
                f.write("planted")
            os.chown(swapped, NOBODY, NOBODY)
            os.chmod(swapped, 0o666)
            os.rename(swapped, out)
            w.go()
            # Its allocations are done (and reported) once it prints the
            # checksum: detours detach in milliseconds, so an interrupt
            # right after go() could beat the first allocation.
            self.assertTrue(w.out.wait_for(r"^checksum="), w.err.lines)
            run = mw.interrupt()
        finally:
            w.kill()
        self.assertEqual(run.returncode, 0, run.stderr)
        st = os.lstat(out)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, 0, 0o600))
        self.assertIn("gt_malloc", Profile(out).by_site())

    def test_sigkill_leaves_no_temporary_file(self):
        out = self.path("x.pb.gz")
        w = WaitingWorkload([GT, "--hold"])
        try:
            mw = Attached(w.pid, ["-o", out, "--timeline", self.path("t.csv")])
            w.go()
            mw.proc.kill()
            mw.finish()
        finally:
            w.kill()
        self.assertEqual(os.listdir(self.dir), [])

    def test_stale_temporaries_of_dead_memwatch_removed(self):
        """Only regular files of this user whose memwatch (this boot, this pid
        namespace) is gone; anything else with such a name stays."""
        boot, ns = boot_and_pidns()
        stale = ".memwatch-tmp.%s.%s.%d.0123abcd" % (boot, ns, dead_pid())
        alive = ".memwatch-tmp.%s.%s.%d.0123abcd" % (boot, ns, os.getpid())
        foreign = ".memwatch-tmp.%s.%s.%d.4567abcd" % (boot, ns, dead_pid())
        other_boot = ".memwatch-tmp.%s.%s.%d.0123abcd" % ("0" * 8 if boot != "0" * 8 else "1" * 8, ns, dead_pid())
        for name in (stale, alive, foreign, other_boot):
            with open(self.path(name), "w") as f:
                f.write("x")
        os.chown(self.path(foreign), NOBODY, NOBODY)
        run = memwatch(["-o", self.path("x.pb.gz"), "--", GT])
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertEqual(sorted(os.listdir(self.dir)),
                         sorted([alive, foreign, other_boot, "x.pb.gz", "x.pages.pb.gz"]))
