"""Shared helpers for memwatch's end-to-end tests.

Tests run the real memwatch binary against real processes, load real BPF
programs, and read the profiles back with `go tool pprof` (Debian's
golang-go), the reference reader of pprof files.
"""
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MEMWATCH = os.path.join(ROOT, "memwatch")
WORKLOADS = os.path.join(ROOT, "tests", "workloads", "bin")
DEFAULT_RATE = 524288

# Allocator entry points: a sample's site is its first frame not matching.
ALLOCATOR_RX = re.compile(
    r"^(malloc|calloc|realloc|reallocarray|free|posix_memalign|aligned_alloc|memalign|valloc|pvalloc"
    r"|(__GI_)?__libc_(malloc|calloc|realloc|reallocarray|free|memalign|valloc|pvalloc)"
    r"|__posix_memalign|_int_(malloc|free|realloc|memalign)|_mid_memalign|operator new.*|operator delete.*)$")


def workload(name):
    return os.path.join(WORKLOADS, name)


class Profile:
    """A pprof profile as `go tool pprof -raw` prints it."""

    def __init__(self, path):
        env = dict(os.environ, PPROF_BINARY_PATH="/nonexistent", HOME=tempfile.gettempdir())
        out = subprocess.run(["go", "tool", "pprof", "-symbolize=none", "-raw", path],
                             capture_output=True, text=True, env=env, check=True).stdout
        self.text = out
        self.comments = []
        self.sample_types = []
        self.samples = []      # (values, [location ids leaf first], {label: value})
        self.locations = {}    # id -> [(function, file, line)] innermost first
        self.mappings = []
        self.period = None
        self._parse(out.splitlines())

    def _parse(self, lines):
        section = None
        last_loc = None
        for line in lines:
            if line.startswith("Comment: "):
                self.comments.append(line[len("Comment: "):])
            elif line.startswith("Period: "):
                self.period = int(line.split()[1])
            elif line.startswith("Samples:"):
                section = "samples_header"
            elif section == "samples_header":
                self.sample_types = line.split()
                section = "samples"
            elif line.startswith("Locations"):
                section = "locations"
            elif line.startswith("Mappings"):
                section = "mappings"
            elif section == "samples":
                self._parse_sample_line(line)
            elif section == "locations":
                last_loc = self._parse_location_line(line, last_loc)
            elif section == "mappings" and line.strip():
                self.mappings.append(line.strip())

    def _parse_sample_line(self, line):
        m = re.match(r"^\s+([-\d\s]+):([\d\s]*)$", line)
        if m:
            values = [int(v) for v in m.group(1).split()]
            locs = [int(v) for v in m.group(2).split()]
            self.samples.append((values, locs, {}))
            return
        for key, val in re.findall(r"(\w+):\[([^\]]*)\]", line):
            if self.samples:
                self.samples[-1][2][key] = val

    def _parse_location_line(self, line, last_loc):
        m = re.match(r"^\s+(\d+): (0x[0-9a-f]+) (?:M=\d+ )?(.*)$", line)
        if m:
            loc = int(m.group(1))
            self.locations[loc] = []
            self._add_line(loc, m.group(3))
            return loc
        if last_loc is not None and line.strip():
            self._add_line(last_loc, line.strip())
        return last_loc

    def _add_line(self, loc, text):
        m = re.match(r"^(.*) (\S*):(\d+) s=\d+", text)
        if m:
            self.locations[loc].append((m.group(1), m.group(2), int(m.group(3))))

    def frames(self, sample):
        """Function names of a sample, leaf first, inline frames expanded."""
        names = []
        for loc in sample[1]:
            names.extend(fn for fn, _, _ in self.locations.get(loc, []))
        return names

    def site_of(self, sample):
        for fn in self.frames(sample):
            if not ALLOCATOR_RX.match(fn):
                return fn
        return "[unknown]"

    def by_site(self):
        """site -> [alloc_objects, alloc_space, inuse_objects, inuse_space]."""
        totals = {}
        for sample in self.samples:
            t = totals.setdefault(self.site_of(sample), [0, 0, 0, 0])
            for i, v in enumerate(sample[0][:4]):
                t[i] += v
        return totals


def traces(path, sample_index="alloc_space"):
    """`go tool pprof -traces`: a list of ({label: value}, [frames leaf first])."""
    env = dict(os.environ, PPROF_BINARY_PATH="/nonexistent", HOME=tempfile.gettempdir())
    out = subprocess.run(["go", "tool", "pprof", "-symbolize=none", "-traces", "-sample_index=" + sample_index,
                          path], capture_output=True, text=True, env=env, check=True).stdout
    result = []
    for block in out.split("-----------+-------------------------------------------------------\n")[1:]:
        labels, frames = {}, []
        for line in block.splitlines():
            if len(line) > 11 and line[10] == ":" and line[:10].strip().isidentifier():
                labels[line[:10].strip()] = line[11:].strip()
            elif len(line) > 13:
                frames.append(line[13:].strip())
        if frames:
            result.append((labels, frames))
    return result


def read_manifest(path):
    sites = {}
    with open(path) as f:
        for line in f:
            name, *vals = line.split()
            sites[name] = [int(v) for v in vals]
    return sites


def _held_prog_ids():
    """BPF program ids some live process holds an fd to (directly or
    through a link)."""
    held = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fdinfo" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                with open("/proc/%s/fdinfo/%s" % (pid, fd)) as f:
                    m = re.search(r"^prog_id:\s+(\d+)", f.read(), re.M)
            except OSError:
                continue
            if m:
                held.add(int(m.group(1)))
    return held


def bpf_programs():
    """Names of memwatch's BPF programs loaded in the kernel that no process
    holds any more: what a memwatch that exited left behind. (Programs of
    another memwatch running meanwhile are held by it.)"""
    out = subprocess.run(["bpftool", "prog", "show"], capture_output=True, text=True).stdout
    ours = {"enter_size0", "enter_size1", "enter_calloc", "enter_realloc", "enter_reallocar",
            "enter_memalign_", "free_enter", "alloc_exit", "loader_state", "report_alloc", "report_frees"}
    loaded = [(int(i), n) for i, n in re.findall(r"^(\d+): \S+\s+name (\S+)", out, re.M) if n in ours]
    if not loaded:
        return []
    held = _held_prog_ids()
    return [n for i, n in loaded if i not in held]


class Run:
    """A finished memwatch run."""

    def __init__(self, proc, stdout, stderr):
        self.returncode = proc.returncode
        self.stdout = stdout
        self.stderr = stderr


def memwatch(args, timeout=120, input=None, env=None, cpus=None):
    """memwatch with args; cpus: the CPUs memwatch may run on (not its command's)."""
    proc = subprocess.Popen([MEMWATCH] + args, stdin=subprocess.PIPE if input is not None else None,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    out, err = proc.communicate(input=input, timeout=timeout)
    return Run(proc, out, err)


class WaitingWorkload:
    """A workload started with --wait: it prints `ready PID` and blocks until SIGUSR1."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(argv + ["--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        line = self.proc.stdout.readline()
        if not line.startswith("ready "):
            raise RuntimeError("workload did not start: %r" % line)
        self.pid = int(line.split()[1])

    def go(self):
        os.kill(self.pid, signal.SIGUSR1)

    def finish(self, timeout=120):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


class Attached:
    """memwatch -p running in the background until the target exits or it is stopped."""

    def __init__(self, pid, args=(), ready_timeout=20):
        self.proc = subprocess.Popen([MEMWATCH, "-p", str(pid)] + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.err_lines = []
        deadline = time.time() + ready_timeout
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.err_lines.append(line)
            if line.startswith("memwatch: profiling pid"):
                return
        self.proc.kill()
        raise RuntimeError("memwatch did not attach: %s" % "".join(self.err_lines))

    def wait(self, timeout=120):
        out, err = self.proc.communicate(timeout=timeout)
        return Run(self.proc, out, "".join(self.err_lines) + err)

    def interrupt(self, timeout=120):
        self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)


class TestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="memwatch-test-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def assertOneLineError(self, run, pattern):
        lines = [l for l in run.stderr.splitlines() if l.strip()]
        self.assertNotEqual(run.returncode, 0, run.stderr)
        self.assertEqual(len(lines), 1, "expected a one-line error, got: %r" % run.stderr)
        self.assertRegex(lines[0], "^memwatch: .*" + pattern)
