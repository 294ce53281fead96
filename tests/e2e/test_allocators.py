"""Every allocator a production process uses: glibc, jemalloc (preloaded,
linked, static, je_ and _rjem_ prefixed), gperftools tcmalloc and
tcmalloc_minimal (preloaded and static), C and C++, plus accuracy against the
allocators' own profilers and a real redis-server."""
import math
import os
import re
import shutil
import signal
import socket
import subprocess

from mwtest import (DEFAULT_RATE, Attached, Profile, Running, TestCase, WaitingWorkload, memwatch, read_manifest,
                    sampled_tolerance, wait_probed, wait_until, workload)

LIB = "/usr/lib/x86_64-linux-gnu/"
JEMALLOC = LIB + "libjemalloc.so.2"
TCMALLOC = LIB + "libtcmalloc.so.4"
TCMALLOC_MINIMAL = LIB + "libtcmalloc_minimal.so.4"

# name -> (binary, LD_PRELOAD or None, allocator line -v must print)
C_CONFIGS = {
    "glibc": ("groundtruth", None, r"glibc allocator in .*libc\.so\.6"),
    "jemalloc-preload": ("groundtruth", JEMALLOC, r"jemalloc allocator in .*libjemalloc\.so\.2"),
    "jemalloc-linked": ("gt-jemalloc", None, r"jemalloc allocator in .*libjemalloc\.so\.2"),
    "jemalloc-static": ("gt-jemalloc-static", None, r"jemalloc allocator in .*/gt-jemalloc-static "),
    "jemalloc-je-prefix": ("gt-je-prefixed", None, r"jemalloc \(prefix je_\) allocator in .*/gt-je-prefixed "),
    "jemalloc-rjem-prefix": ("gt-rjem-prefixed", None, r"jemalloc \(prefix _rjem_\) allocator in .*/gt-rjem-prefixed "),
    "tcmalloc-preload": ("groundtruth", TCMALLOC, r"tcmalloc allocator in .*libtcmalloc\.so"),
    "tcmalloc-minimal-preload": ("groundtruth", TCMALLOC_MINIMAL, r"tcmalloc allocator in .*libtcmalloc_minimal\.so"),
    "tcmalloc-static": ("gt-tcmalloc-static", None, r"tcmalloc allocator in .*/gt-tcmalloc-static "),
}
CXX_CONFIGS = {
    "glibc": ("gtcxx", None, r"glibc allocator"),
    "jemalloc-preload": ("gtcxx", JEMALLOC, r"jemalloc allocator"),
    "jemalloc-linked": ("gtcxx-jemalloc", None, r"jemalloc allocator"),
    "tcmalloc-preload": ("gtcxx", TCMALLOC, r"tcmalloc allocator"),
    "tcmalloc-minimal-preload": ("gtcxx", TCMALLOC_MINIMAL, r"tcmalloc allocator"),
}


def env_with(preload, **extra):
    env = dict(os.environ, **extra)
    if preload:
        env["LD_PRELOAD"] = preload
    return env


class ExactTest(TestCase):
    """-s 1: per-site alloc and inuse values exact under every allocator."""

    def run_exact(self, configs, extra_args):
        for name, (binary, preload, allocator_rx) in configs.items():
            with self.subTest(config=name):
                out, man = self.path(name + ".pb.gz"), self.path(name + ".manifest")
                run = memwatch(["-v", "-s", "1", "-o", out] + extra_args + ["--", workload(binary), "--manifest", man],
                               env=env_with(preload))
                self.assertIn(run.returncode, (0, 3), run.stderr)
                self.assertRegex(run.stderr, allocator_rx)
                sites = Profile(out).by_site()
                for site, want in read_manifest(man).items():
                    self.assertEqual(sites.get(site, [0, 0, 0, 0]), want, "%s %s" % (name, site))

    def test_c_api(self):
        # Frame-pointer stacks: eight threads allocating flat out would
        # outrun the DWARF unwinder (counted losses); accounting is the point.
        self.run_exact(C_CONFIGS, ["--stack-mode", "fp"])

    def test_cxx_new_delete(self):
        # DWARF stacks: with glibc, operator new is libstdc++'s, without frame pointers.
        self.run_exact(CXX_CONFIGS, [])


class SampledTest(TestCase):
    """At the default interval every site is within four standard errors."""

    def test_default_interval(self):
        sizes = {"gt_big_small": 1024, "gt_big_large": 1 << 20}
        for name in ("jemalloc-preload", "jemalloc-je-prefix", "tcmalloc-preload", "tcmalloc-minimal-preload"):
            binary, preload, _ = C_CONFIGS[name]
            with self.subTest(config=name):
                out, man = self.path(name + ".pb.gz"), self.path(name + ".manifest")
                run = memwatch(["-o", out, "--", workload(binary), "--big", "--manifest", man],
                               env=env_with(preload), timeout=300)
                self.assertEqual(run.returncode, 3, run.stderr)
                sites = Profile(out).by_site()
                for site, want in read_manifest(man).items():
                    got = sites.get(site, [0, 0, 0, 0])
                    for idx in (1, 3):
                        tol = sampled_tolerance(want[idx - 1], sizes[site], DEFAULT_RATE)
                        self.assertLess(abs(got[idx] - want[idx]), tol, "%s %s[%d]: %d vs %d" %
                                        (name, site, idx, got[idx], want[idx]))


def pprof_text_inuse(tool, binary, profile, cum=False):
    """function -> in-use bytes, from jeprof or google-pprof --text."""
    args = [tool, "--text", "--inuse_space", "--show_bytes"] + (["--cum"] if cum else []) + [binary, profile]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    result = {}
    for line in out.splitlines():
        m = re.match(r"^\s*(\d+)\s+\S+\s+\S+\s+(\d+)\s+\S+\s+(.+)$", line)
        if m:
            result[m.group(3).strip()] = int(m.group(2) if cum else m.group(1))
    return result


class OwnProfilerTest(TestCase):
    """memwatch agrees with the allocators' own profilers on the same run.

    Their profilers unwind the stack inside the allocation call; on a call
    memwatch samples, the kernel's return probe has replaced the return
    address with its trampoline, and they lose that stack. With uprobe
    sessions that is a fraction p = 1 - exp(-size/R) of a site's calls: the
    workload keeps blocks small (1 and 8 KiB) and the checks allow for it.

    The allocator is a private copy of the library: a uprobe belongs to a
    file, and a session probed in another process (another memwatch on the
    same libjemalloc) makes the kernel plant the return probe on every call
    of this one too (the other link's pid filter answers "run the return
    probe" for foreign tasks), so the allocator's profiler loses every stack
    (measured on 6.18: 100% of jeprof's bytes at the trampoline)."""

    SIZES = {"gt_big_small": 1024, "gt_mid": 8192}

    def private_copy(self, library):
        """library copied into this test's directory: its own inode."""
        copy = self.path(os.path.basename(library))
        shutil.copy(library, copy)
        return copy

    def run_medium(self, binary, name, env):
        out, man = self.path(name + ".pb.gz"), self.path(name + ".manifest")
        # The variables go to the command only (through env), not to memwatch.
        run = memwatch(["-o", out, "--", "env"] + ["%s=%s" % kv for kv in env.items()] +
                       [binary, "--medium", "--manifest", man], timeout=300)
        self.assertEqual(run.returncode, 3, run.stderr)
        return Profile(out).by_site(), read_manifest(man)

    def test_jemalloc_prof(self):
        """jemalloc's sampler (lg_prof_sample:19) and memwatch's both sample at
        512 KiB: their difference has twice one sampler's variance."""
        binary = workload("gt-jemalloc")
        conf = "prof:true,lg_prof_sample:19,prof_final:true,prof_prefix:" + self.path("jeprof")
        lib_dir = os.path.dirname(self.private_copy(JEMALLOC))
        ours, truth = self.run_medium(binary, "je", {"MALLOC_CONF": conf, "LD_LIBRARY_PATH": lib_dir})
        heaps = [f for f in os.listdir(self.dir) if f.startswith("jeprof") and f.endswith(".heap")]
        self.assertEqual(len(heaps), 1, os.listdir(self.dir))
        theirs = pprof_text_inuse("jeprof", binary, self.path(heaps[0]))
        for site, want in truth.items():
            size = self.SIZES[site]
            lost = -math.expm1(-size / DEFAULT_RATE) * want[3]
            tol = math.sqrt(2) * sampled_tolerance(want[2], size, DEFAULT_RATE) + lost
            self.assertLess(abs(ours[site][3] - theirs[site]), tol,
                            "%s: memwatch %d, jeprof %d, truth %d" % (site, ours[site][3], theirs[site], want[3]))

    def test_gperftools_heapprofile(self):
        """gperftools' HEAPPROFILE records every allocation (no sampling) but
        loses the K live blocks memwatch sampled, K ~ Binomial(n, p): it
        reports (n - K) * size and memwatch K * size / p, so both
        differences follow from K's variance n p (1-p)."""
        binary = workload("groundtruth")
        env = {"LD_PRELOAD": self.private_copy(TCMALLOC), "HEAPPROFILE": self.path("hp")}
        ours, truth = self.run_medium(binary, "tc", env)
        heaps = sorted(f for f in os.listdir(self.dir) if f.startswith("hp") and f.endswith(".heap"))
        self.assertTrue(heaps, os.listdir(self.dir))
        theirs = pprof_text_inuse("google-pprof", binary, self.path(heaps[-1]), cum=True)
        for site, want in truth.items():
            size, n = self.SIZES[site], want[2]
            p = -math.expm1(-size / DEFAULT_RATE)
            lost, lost_sd = n * p * size, size * math.sqrt(n * p * (1 - p))
            self.assertLess(abs(want[3] - theirs[site] - lost), 4 * lost_sd,
                            "%s: HEAPPROFILE %d of %d, expected to miss %d" % (site, theirs[site], want[3], lost))
            # ours - theirs = K size (1/p + 1) - n size: mean n p size, SD (1+p) times memwatch's own.
            tol = (1 + p) * sampled_tolerance(n, size, DEFAULT_RATE)
            self.assertLess(abs(ours[site][3] - theirs[site] - lost), tol,
                            "%s: memwatch %d, HEAPPROFILE %d, truth %d" % (site, ours[site][3], theirs[site], want[3]))


class DiscoveryTest(TestCase):
    def test_allocator_override(self):
        run = memwatch(["-v", "--allocator", "jemalloc", "-o", self.path("x.pb.gz"), "--", workload("gt-jemalloc")])
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertIn("jemalloc allocator", run.stderr)
        self.assertNotIn("glibc allocator", run.stderr)

    def test_unknown_allocator_name(self):
        run = memwatch(["--allocator", "hoard", "-p", "1"])
        self.assertOneLineError(run, "--allocator")

    def test_dlopen_during_command(self):
        """An allocator dlopen'ed by a command: probed before its first call."""
        out, man = self.path("dl.pb.gz"), self.path("dl.manifest")
        run = memwatch(["-v", "-s", "1", "--stack-mode", "fp", "-o", out, "--", workload("dlalloc"), "--manifest", man])
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertRegex(run.stderr, r"tcmalloc allocator in .*libtcmalloc_minimal")
        self.assertEqual(Profile(out).by_site()["dl_site"], read_manifest(man)["dl_site"])

    def test_dlopen_after_attach(self):
        """-p: memwatch hears of the dlopen and probes the new allocator. The
        target is not stopped meanwhile: it waits after the dlopen until the
        test sees the probes in its text (uprobes: test_inline has detours)."""
        out, man = self.path("dl.pb.gz"), self.path("dl.manifest")
        w = WaitingWorkload([workload("dlalloc"), "--pause", "--manifest", man])
        try:
            mw = Attached(w.pid, ["-v", "-s", "1", "--stack-mode", "fp", "-o", out, "--hook", "uprobe"])
            w.go()
            self.assertTrue(w.out.wait_for(r"^dlalloc: opened"), w.err.lines)
            probed = wait_probed(mw, "libtcmalloc_minimal.so.4")
            self.assertIn("malloc", probed or [], mw.err_lines)
            w.release()
            self.assertEqual(w.finish()[0], 0)
            run = mw.wait()
        finally:
            w.kill()
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(Profile(out).by_site()["dl_site"], read_manifest(man)["dl_site"])

    def test_exec_during_command(self):
        """A command that execs a jemalloc program: profiled from its first allocation."""
        out, man = self.path("ex.pb.gz"), self.path("ex.manifest")
        script = 'exec "$0" --manifest "$1"'
        run = memwatch(["-v", "-s", "1", "--stack-mode", "fp", "-o", out, "--", "sh", "-c", script,
                        workload("gt-jemalloc"), man])
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertRegex(run.stderr, r"jemalloc allocator in .*libjemalloc")
        sites = Profile(out).by_site()
        for site, want in read_manifest(man).items():
            self.assertEqual(sites.get(site), want, site)

    def test_exec_after_attach(self):
        """-p on a shell that later execs a jemalloc program: memwatch follows.
        The program waits (--wait) until the test sees jemalloc probed
        (uprobes: test_inline has detours)."""
        out, man = self.path("ex.pb.gz"), self.path("ex.manifest")
        shell = Running(["sh", "-c", 'echo started; read x; exec "$0" --wait --manifest "$1"',
                         workload("gt-jemalloc"), man])
        try:
            self.assertTrue(shell.out.wait_for(r"^started"), shell.err.lines)
            mw = Attached(shell.pid, ["-v", "-s", "1", "--stack-mode", "fp", "-o", out, "--hook", "uprobe"])
            shell.send("go")
            self.assertTrue(shell.out.wait_for(r"^ready \d+"), shell.err.lines)
            self.assertTrue(mw.wait_for(r"called exec"), mw.err_lines)
            probed = wait_probed(mw, "libjemalloc.so.2")
            self.assertIn("malloc", probed or [], mw.err_lines)
            os.kill(shell.pid, signal.SIGUSR1)
            self.assertEqual(shell.finish()[0], 3)
            run = mw.wait()
        finally:
            shell.kill()
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("called exec", run.stderr)
        self.assertRegex(run.stderr, r"jemalloc allocator in .*libjemalloc")
        sites = Profile(out).by_site()
        for site, want in read_manifest(man).items():
            self.assertEqual(sites.get(site), want, site)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisTest(TestCase):
    """Debian's redis-server (linked with jemalloc) under redis-benchmark."""

    def test_redis_benchmark(self):
        port = free_port()
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        try:
            self.wait_ready(port)
            out = self.path("redis.pb.gz")
            mw = Attached(server.pid, ["-o", out, "-d", "20"])
            requests = 20000
            bench = subprocess.run(["redis-benchmark", "-p", str(port), "-n", str(requests), "-c", "20", "-q",
                                    "-t", "set,get,lpush,lpop", "-d", "256", "--csv"],
                                   capture_output=True, text=True, timeout=120)
            self.assertEqual(bench.returncode, 0, bench.stderr)
            self.assertEqual(len(re.findall(r'^"(SET|GET|LPUSH|LPOP)', bench.stdout, re.M)), 4, bench.stdout)
            stats = subprocess.run(["redis-cli", "-p", str(port), "info", "stats"], capture_output=True,
                                   text=True).stdout
            processed = int(re.search(r"total_commands_processed:(\d+)", stats).group(1))
            self.assertGreaterEqual(processed, 4 * requests, "redis must answer every request")
            self.assertIn("rejected_connections:0", stats)
            run = mw.interrupt()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("jemalloc", run.stderr)
        prof = Profile(out)
        # Redis allocates through its zmalloc wrappers: the sites are those,
        # and the functions that call them.
        top = sorted(prof.by_site().items(), key=lambda kv: -kv[1][1])[:5]
        self.assertTrue(top)
        for name, _ in top:
            self.assertRegex(name, r"^z(malloc|calloc|realloc|try)", "top sites: %s" % top)
        callers = {}
        for sample in prof.samples:
            frames = [f for f in prof.frames(sample) if not re.match(r"^z(malloc|calloc|realloc|try)|^ztry", f)]
            user = [f for f in frames if not f.startswith("[") and not f.startswith("0x")]
            if user and frames[0] == user[0]:
                callers[user[0]] = callers.get(user[0], 0) + sample[0][1]
        top_callers = [n for n, _ in sorted(callers.items(), key=lambda kv: -kv[1])[:5]]
        self.assertGreaterEqual(len(top_callers), 4, callers)
        self.assertTrue(all(re.match(r"^[A-Za-z_]\w*$", n) for n in top_callers), top_callers)
        self.assertTrue(any(re.search(r"sds|Object|dict|list|Reply|Client|Command", n) for n in top_callers),
                        top_callers)

    def wait_ready(self, port):
        def pong():
            r = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
            return r.stdout.strip() == "PONG"
        self.assertTrue(wait_until(pong, timeout=30, step=0.1), "redis-server did not start")
