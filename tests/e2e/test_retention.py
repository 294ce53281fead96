"""--output-dir: retention deletes only what memwatch provably wrote (its
index, the inode, size and owner recorded), never a file that merely looks
like one of its own; an unwritable or full directory is an error, in the
exit status and in /metrics."""
import errno
import os
import re
import subprocess

from mwtest import TestCase, WaitingWorkload, memwatch, workload
from test_host import Host, wait_for

GT = workload("groundtruth")
NOBODY = 65534


def snapshot(path):
    st = os.lstat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_uid)


class Tmpfs:
    """A private tmpfs mounted at path for the length of a with block."""

    def __init__(self, path, options):
        os.makedirs(path)
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "memwatch-test", path], check=True)
        self.path = path

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        subprocess.run(["umount", "-l", self.path], check=True)


def fill(directory):
    """Writes a file until the file system is full."""
    with open(os.path.join(directory, "filler"), "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise


class RetentionTest(TestCase):
    def plant(self):
        """Files memwatch did not write, some with its names: {name: snapshot}."""
        names = ["important-123-20200101T000000.000Z.heap.pb.gz",
                 ".s-1-20200101T000000.000Z.heap.pb.gz.tmp",
                 "nobody-5-20200101T000000.000Z.pages.pb.gz",
                 "decoy-7-20000101T000000.000Z.heap.pb.gz",
                 "notes.txt"] + ["zzz-%d-29991231T235959.999Z.heap.pb.gz" % i for i in range(3)]
        for name in names:
            with open(self.path(name), "w") as f:
                f.write("not memwatch's")
        os.chown(self.path(names[2]), NOBODY, NOBODY)
        os.truncate(self.path(names[3]), 2 << 30)   # sparse: 2 GiB that take no space
        return {name: snapshot(self.path(name)) for name in names}

    def ours(self, pid):
        return {n for n in os.listdir(self.dir) if re.match(r"^groundtruth-%d-\d{8}T\d{6}\.\d{3}Z\.(heap|pages)\.pb\.gz$"
                                                             % pid, n)}

    def test_planted_files_never_deleted(self):
        planted = self.plant()
        w = WaitingWorkload([GT, "--hold"])
        try:
            host = Host(["--pid", str(w.pid), "--output-dir", self.dir, "--output-keep", "3", "-i", "0.2"])
            seen = set()

            def written_beyond_bound():
                seen.update(self.ours(w.pid))
                return len(seen) >= 8

            try:
                w.go()
                self.assertTrue(wait_for(written_beyond_bound, timeout=60), seen)
            finally:
                code, err = host.stop()
        finally:
            w.kill()
        self.assertEqual(code, 0, err)
        self.assertIn("--output-dir %s: %d files there are not memwatch's" % (self.dir, len(planted)), err)
        for name, snap in planted.items():
            with self.subTest(file=name):
                self.assertTrue(os.path.lexists(self.path(name)), "deleted")
                self.assertEqual(snapshot(self.path(name)), snap)
        self.assertEqual(len(self.ours(w.pid)), 3, sorted(os.listdir(self.dir)))

    def test_earlier_runs_files_are_deleted(self):
        """What an earlier memwatch wrote is still memwatch's to delete."""
        first = self.run_once(["--output-keep", "100"])
        self.assertGreaterEqual(len(first), 2)
        second = self.run_once(["--output-keep", "2"])
        left = {n for n in os.listdir(self.dir) if n.startswith("groundtruth-")}
        self.assertEqual(left, second & left)
        self.assertEqual(len(left), 2)
        self.assertFalse(first & left)

    def run_once(self, args):
        w = WaitingWorkload([GT])
        try:
            host = Host(["--pid", str(w.pid), "--output-dir", self.dir] + args)
            try:
                w.go()
                w.finish()
                self.assertTrue(wait_for(lambda: len(self.ours(w.pid)) >= 2, timeout=30))
            finally:
                code, err = host.stop()
        finally:
            w.kill()
        self.assertEqual(code, 0, err)
        return self.ours(w.pid)

    def test_read_only_dir_fails_at_start(self):
        w = WaitingWorkload([GT])
        try:
            with Tmpfs(self.path("ro"), "ro,size=1m") as ro:
                run = memwatch(["--all", "--pid", str(w.pid), "--output-dir", ro, "-d", "2"])
        finally:
            w.kill()
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertOneLineError(run, "--output-dir .*/ro: Read-only file system")

    def test_full_dir_fails(self):
        w = WaitingWorkload([GT])
        try:
            with Tmpfs(self.path("full"), "size=256k") as full:
                host = Host(["--pid", str(w.pid), "--output-dir", full])
                try:
                    fill(full)
                    w.go()
                    w.finish()

                    def errors():
                        m = re.search(r"^memwatch_output_errors_total (\d+)$", host.metrics(), re.M)
                        return m and int(m.group(1)) >= 1

                    self.assertTrue(wait_for(errors, timeout=30))
                finally:
                    code, err = host.stop()
        finally:
            w.kill()
        self.assertEqual(code, 1, err)
        self.assertIn("No space left on device", err)
        self.assertRegex(err, r"memwatch: --output-dir .*/full: \d+ profiles or deletions failed")
