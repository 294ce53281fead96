"""Shared helpers for memwatch's end-to-end tests.

Tests run the real memwatch binary against real processes, load real BPF
programs, and read the profiles back with `go tool pprof` (Debian's
golang-go), the reference reader of pprof files.
"""
import glob
import json
import math
import os
import re
import signal
import subprocess
import tempfile
import threading
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


def sampled_tolerance(count, size, rate):
    """4 standard errors of a Poisson-sampled estimate of count objects of
    size bytes at mean interval rate: each is sampled with probability
    p = 1 - exp(-size/rate) and weighted size/p, so the estimate's variance
    is count * size^2 * (1-p)/p."""
    if rate <= 1:
        return 0.0
    p = -math.expm1(-size / rate)
    return 4 * math.sqrt(count * size * size * (1 - p) / p)


def sampled_tolerance_bytes(total, rate):
    """4 standard errors of a Poisson-sampled estimate of total bytes made of
    events whose sizes are unknown: size^2 (1-p)/p = size^2 / (e^(size/rate) - 1)
    is at most size * rate, so the variance is at most total * rate."""
    if rate <= 1:
        return 0.0
    return 4 * math.sqrt(total * rate)


# bpftool and the kernel keep BPF_OBJ_NAME_LEN - 1 characters of a name.
BPF_NAME_LEN = 15


def memwatch_program_names():
    """The names of every BPF program memwatch can load, from the skeletons
    the build generated (so a program added or renamed later is known)."""
    skeletons = glob.glob(os.path.join(ROOT, ".output", "**", "*.skel.h"), recursive=True)
    names = set()
    for path in skeletons:
        with open(path) as f:
            names.update(n[:BPF_NAME_LEN] for n in re.findall(r'progs\[\d+\]\.name = "([^"]+)"', f.read()))
    if not names:
        raise RuntimeError("no BPF program names in %s/.output/**/*.skel.h: run make" % ROOT)
    return names


def _prog_holders():
    """BPF program id -> comms of the processes holding an fd to it
    (directly or through a link)."""
    holders = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fdinfo" % pid)
            with open("/proc/%s/comm" % pid) as f:
                comm = f.read().strip()
        except OSError:
            continue
        for fd in fds:
            try:
                with open("/proc/%s/fdinfo/%s" % (pid, fd)) as f:
                    m = re.search(r"^prog_id:\s+(\d+)", f.read(), re.M)
            except OSError:
                continue
            if m:
                holders.setdefault(int(m.group(1)), set()).add(comm)
    return holders


def loaded_programs():
    """(id, name) of every BPF program loaded in the kernel."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True).stdout
    return [(p["id"], p.get("name", "")) for p in json.loads(out or "[]")]


def leaked_programs(after_id=0):
    """memwatch's BPF programs (id above after_id) that no memwatch holds:
    what a memwatch that exited left behind, loaded by nobody or kept alive
    by another process (an fd leaked into a child). Programs of other
    memwatch instances running meanwhile are held by them."""
    ours = memwatch_program_names()
    loaded = [(i, n) for i, n in loaded_programs() if i > after_id and n in ours]
    if not loaded:
        return []
    holders = _prog_holders()
    return ["%s (id %d, held by %s)" % (n, i, ", ".join(sorted(holders.get(i, ()))) or "nobody")
            for i, n in loaded if "memwatch" not in holders.get(i, ())]


def wait_until(cond, timeout=20, step=0.05):
    """cond()'s first true value, polling; its last value at the deadline
    (a failure guard, not a delay: it returns as soon as cond holds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    return cond()


class Run:
    """A finished memwatch run."""

    def __init__(self, proc, stdout, stderr):
        self.returncode = proc.returncode
        self.stdout = stdout
        self.stderr = stderr


def memwatch(args, timeout=120, input=None, env=None):
    proc = subprocess.Popen([MEMWATCH] + args, stdin=subprocess.PIPE if input is not None else None,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = proc.communicate(input=input, timeout=timeout)
    return Run(proc, out, err)


class _Lines:
    """The lines of one of a process's output pipes, read by a thread as they
    come, so that a test can wait for a line while the process runs."""

    def __init__(self, pipe):
        self.lines = []
        self._cond = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe):
        for line in pipe:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        pipe.close()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def wait_for(self, pattern, timeout=60, start=0):
        """The match of pattern in the first line from index start on that
        has it; None if the pipe closed or the deadline (a failure guard)
        passed first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                for i in range(i, len(self.lines)):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                i = len(self.lines)
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    return None
                self._cond.wait(left)

    def count(self, pattern):
        rx = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self.lines if rx.search(line))

    def wait_count(self, pattern, n, timeout=60):
        """Waits until n lines match pattern; False if the pipe closed or
        the deadline (a failure guard) passed first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if sum(1 for line in self.lines if rx.search(line)) >= n:
                    return True
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    return False
                self._cond.wait(left)

    def text(self, timeout=None):
        """Everything, once the pipe closed (the process exited)."""
        self._thread.join(timeout)
        with self._cond:
            return "".join(self.lines)


class Running:
    """A process whose stdout and stderr lines are read as they come, with
    its stdin a pipe the test writes to."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.pid = self.proc.pid
        self.out = _Lines(self.proc.stdout)
        self.err = _Lines(self.proc.stderr)

    def send(self, line):
        """A line on the process's stdin (a command to the workload)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout=120):
        """(exit status, stdout, stderr) once it exits; its stdin is closed first."""
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        self.proc.wait(timeout=timeout)
        return self.proc.returncode, self.out.text(timeout), self.err.text(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()


class WaitingWorkload(Running):
    """A workload started with --wait: it prints `ready PID` and blocks until
    SIGUSR1. Its stdin is a pipe: workloads with --hold wait for a line there
    (or its end) before they exit."""

    def __init__(self, argv, env=None):
        super().__init__(argv + ["--wait"], env=env)
        m = self.out.wait_for(r"^ready (\d+)")
        if not m:
            self.kill()
            raise RuntimeError("workload did not start: %s %s" % (self.out.text(), self.err.text()))
        self.pid = int(m.group(1))

    def go(self):
        os.kill(self.pid, signal.SIGUSR1)

    def release(self):
        """Ends a workload's --hold."""
        self.send("")


class Attached(Running):
    """memwatch -p running in the background until the target exits or it is
    stopped; its stderr is read as it comes (see wait_for)."""

    def __init__(self, pid, args=(), ready_timeout=60):
        super().__init__([MEMWATCH, "-p", str(pid)] + list(args))
        self.target = pid
        if not self.err.wait_for(r"^memwatch: profiling pid", ready_timeout):
            self.kill()
            raise RuntimeError("memwatch did not attach: %s" % self.err.text())

    def wait_for(self, pattern, timeout=60):
        """A line of memwatch's stderr matching pattern (see _Lines.wait_for)."""
        return self.err.wait_for(pattern, timeout)

    @property
    def err_lines(self):
        return list(self.err.lines)

    def wait(self, timeout=120):
        code, out, err = self.finish(timeout)
        return Run(self.proc, out, err)

    def interrupt(self, timeout=120):
        self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)


def probe_sites(stderr, pid, lib="libc.so.6"):
    """The probes memwatch -v reports in the file named lib (or lib.N...: its
    last allocator section naming it) as pid maps them: entry name ->
    (address, file, file offset)."""
    def is_lib(path):
        name = os.path.basename(path)
        return name == lib or name.startswith(lib + ".")
    offsets = {}
    section = None
    for line in stderr.splitlines():
        m = re.match(r"memwatch: pid \d+: \S+ .*allocator in (\S+)", line)
        if m:
            section = m.group(1)
            if is_lib(section):
                offsets = {}
            continue
        m = re.match(r"^  (\S+) +0x[0-9a-f]+\+\d+ \(file offset (0x[0-9a-f]+)\)", line)
        if m and section and is_lib(section):
            offsets[m.group(1)] = int(m.group(2), 16)
    addresses = {}
    with open("/proc/%d/maps" % pid) as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and is_lib(fields[5]) and "x" in fields[1]:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                off = int(fields[2], 16)
                for name, fo in offsets.items():
                    if off <= fo < off + (end - start):
                        addresses[name] = (start + fo - off, fields[5], fo)
    return addresses


def probe_addresses(stderr, pid, lib="libc.so.6"):
    """Entry name -> runtime address of the probes memwatch -v reports in lib."""
    return {name: site[0] for name, site in probe_sites(stderr, pid, lib).items()}


def code_byte(pid, address):
    with open("/proc/%d/mem" % pid, "rb") as mem:
        mem.seek(address)
        return mem.read(1)[0]


def wait_probed(attached, lib, timeout=60):
    """Waits until every probe memwatch -v announced in lib is in the target's
    text (the byte differs from the file's: a breakpoint or the kernel's
    jump to its trampoline), the handshake for a target that was not
    stopped. Returns the probed entry names."""
    def all_in_place():
        found = probe_sites("".join(attached.err_lines), attached.target, lib)
        if not found:
            return None
        for address, path, file_offset in found.values():
            with open(path, "rb") as f:
                f.seek(file_offset)
                if code_byte(attached.target, address) == f.read(1)[0]:
                    return None
        return sorted(found)
    return wait_until(all_in_place, timeout)


class TestCase(unittest.TestCase):
    """Each test gets a directory of its own, and fails if it leaves BPF
    programs of memwatch's behind."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="memwatch-test-")
        self.dir = self.tmp.name
        self.first_prog_id = max((i for i, _ in loaded_programs()), default=0)

    def tearDown(self):
        self.tmp.cleanup()
        self.assertNothingLeaked()

    def assertNothingLeaked(self):
        """No program memwatch loaded since the test began outlives it. The
        kernel frees a closed program after an RCU grace period: waited for."""
        gone = wait_until(lambda: not leaked_programs(self.first_prog_id), timeout=20, step=0.1)
        self.assertTrue(gone, "memwatch left BPF programs loaded: %s" % leaked_programs(self.first_prog_id))

    def path(self, name):
        return os.path.join(self.dir, name)

    def assertOneLineError(self, run, pattern):
        lines = [l for l in run.stderr.splitlines() if l.strip()]
        self.assertNotEqual(run.returncode, 0, run.stderr)
        self.assertEqual(len(lines), 1, "expected a one-line error, got: %r" % run.stderr)
        self.assertRegex(lines[0], "^memwatch: .*" + pattern)
