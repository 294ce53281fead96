"""memwatch --all: host-wide tracking, scraped by a real Prometheus and read
with `go tool pprof` over HTTP; processes in their own mount namespace, that
start later, that exit; bad requests.
"""
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from mwtest import DEFAULT_RATE, MEMWATCH, ROOT, TestCase, WaitingWorkload, sampled_tolerance, wait_until, workload

JEMALLOC_THRASH = "MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0"


class Host:
    """memwatch --all in the background, serving on a free loopback port."""

    def __init__(self, args, timeout=30):
        self.proc = subprocess.Popen([MEMWATCH, "--all", "--listen", "127.0.0.1:0"] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err_lines = []
        self.port = None
        deadline = time.time() + timeout
        while time.time() < deadline and self.port is None:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.err_lines.append(line)
            m = re.search(r"serving /metrics and /debug/pprof/ on port (\d+)", line)
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("memwatch --all did not start: %s" % "".join(self.err_lines))
        self.base = "http://127.0.0.1:%d" % self.port

    def get(self, path, timeout=30):
        """(status, body bytes)."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metrics(self):
        status, body = self.get("/metrics")
        if status != 200:
            raise RuntimeError("/metrics: %d %s" % (status, body[:200]))
        return body.decode()

    def profiled(self):
        """pids memwatch profiles now."""
        return {int(p) for p in re.findall(r'^memwatch_process_info\{pid="(\d+)".*profiled="1"\} 1$',
                                           self.metrics(), re.M)}

    def tracked(self):
        return {int(p) for p in re.findall(r'^memwatch_process_info\{pid="(\d+)"', self.metrics(), re.M)}

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, "".join(self.err_lines) + err


def wait_for(cond, timeout=30, step=0.2):
    return wait_until(cond, timeout, step)


def sample_value(metrics, name, pid):
    m = re.search(r'^%s\{pid="%d"[^}]*\} (\S+)$' % (re.escape(name), pid), metrics, re.M)
    return float(m.group(1)) if m else None


def pprof_top(url, *flags):
    """(function, flat) rows of `go tool pprof -top URL`."""
    env = dict(os.environ, HOME=tempfile.gettempdir(), PPROF_TMPDIR=tempfile.gettempdir())
    out = subprocess.run(["go", "tool", "pprof", "-top"] + list(flags) + [url], capture_output=True, text=True,
                         env=env, timeout=120).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"^\s*([\d.]+\w*B?)\s+[\d.]+%\s+[\d.]+%\s+\S+\s+[\d.]+%\s+(.+)$", line)
        if m:
            rows.append((m.group(2).strip(), m.group(1)))
    return rows, out


class Prometheus:
    """Debian's prometheus, scraping one target every second."""

    def __init__(self, target, workdir):
        self.port = free_port()
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: memwatch\n    static_configs:\n"
                    "      - targets: ['%s']\n" % target)
        self.proc = subprocess.Popen(["prometheus", "--config.file=" + config,
                                      "--storage.tsdb.path=" + os.path.join(workdir, "tsdb"),
                                      "--web.listen-address=127.0.0.1:%d" % self.port],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = "http://127.0.0.1:%d" % self.port
        if not wait_for(self.ready, timeout=30):
            self.stop()
            raise RuntimeError("prometheus did not become ready")

    def ready(self):
        try:
            with urllib.request.urlopen(self.base + "/-/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def query(self, expr):
        url = self.base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as r:
            data = json.load(r)
        return [float(v["value"][1]) for v in data["data"]["result"]]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusTest(TestCase):
    def test_scraped_series_match_the_workloads(self):
        """Both workloads hold once done, until Prometheus has scraped them
        after that: the series then hold their final values."""
        rate = 16384
        thrash = WaitingWorkload(["env", JEMALLOC_THRASH, workload("thrash-jemalloc"), "--seconds", "6", "--hold"])
        frag = WaitingWorkload([workload("fragment"), "--hold"])
        host = Host(["-s", "16k", "--comm", "^(thrash-jemalloc|fragment)$"])
        prom = None
        try:
            self.assertTrue(wait_for(lambda: {thrash.pid, frag.pid} <= host.profiled()), host.metrics()[:2000])
            prom = Prometheus("127.0.0.1:%d" % host.port, self.dir)
            thrash.go()
            frag.go()
            done = thrash.out.wait_for(r"thrash: (\d+) rounds", timeout=120)
            kept = frag.out.wait_for(r"fragment: kept (\d+) objects, (\d+) bytes; live (\d+)", timeout=120)
            self.assertTrue(done and kept, (thrash.out.lines, frag.out.lines))
            finished = time.time()
            refaults = 'memwatch_process_refault_bytes_total{pid="%d"}' % thrash.pid
            heap = 'memwatch_process_live_heap_bytes{pid="%d"}' % frag.pid

            def scraped_since_done():
                stamps = [prom.query("timestamp(%s)" % expr) for expr in (refaults, heap)]
                return all(len(t) == 1 and t[0] > finished for t in stamps)
            self.assertTrue(wait_for(scraped_since_done, timeout=60), "no scrape after the workloads finished")
            # Each round frees a 1 MiB block that jemalloc purges at once and
            # the next round faults back: exact counters, the allocator's behaviour.
            rounds = int(done.group(1))
            self.assertAlmostEqual(prom.query(refaults)[0] / (rounds << 20), 1.0, delta=0.1)
            # The live heap: the 512-byte survivors, sampled, and their table (exact).
            objects, kept_bytes, live = (int(v) for v in kept.groups())
            tol = sampled_tolerance(objects, kept_bytes / objects, rate)
            self.assertLess(abs(prom.query(heap)[0] - live), tol, "live %d" % live)
            for w in (thrash, frag):
                w.release()
                self.assertEqual(w.finish()[0], 0)
        finally:
            thrash.kill()
            frag.kill()
            if prom:
                prom.stop()
            host.stop()


class PprofTest(TestCase):
    def test_top_functions_and_delta(self):
        """leak's sites allocate per tick of its loop, late_site (or
        leak_site) 20 objects of 4 KiB for churn_site's 7 of 1 KiB: sampled
        at 64 KiB, a few seconds hold hundreds of samples, and the ranks
        below are many standard errors apart however fast the loop runs.
        Absent sites allocated nothing in the window: no sample can exist."""
        leak = WaitingWorkload([workload("leak"), "--control"])
        host = Host(["-s", "64k", "--comm", "^leak$"])
        try:
            self.assertTrue(wait_for(lambda: leak.pid in host.profiled()))
            leak.go()
            # In use: leak_site grows past cache_site's 4 MiB (one block, always sampled).
            top = wait_for(lambda: self.top_is("leak_site", "/debug/pprof/heap?pid=%d" % leak.pid, host), 60, 0.5)
            self.assertTrue(top, self.last_top)
            leak.send("late")
            self.assertTrue(leak.out.wait_for(r"^leak: late"), leak.out.lines)
            rows, out = pprof_top("%s/debug/pprof/allocs?pid=%d&seconds=3" % (host.base, leak.pid),
                                  "-sample_index=alloc_space")
            names = [r[0] for r in rows]
            self.assertEqual(names[:1], ["late_site"], out)
            self.assertNotIn("leak_site", names, out)
            self.assertNotIn("cache_site", names, out)
            # Without seconds: everything since memwatch found it.
            rows, out = pprof_top("%s/debug/pprof/allocs?pid=%d" % (host.base, leak.pid), "-sample_index=alloc_space")
            names = [r[0] for r in rows]
            self.assertIn("leak_site", names, out)
            self.assertIn("late_site", names, out)
            leak.send("quit")
            self.assertEqual(leak.finish()[0], 0)
        finally:
            host.stop()
            leak.kill()

    def top_is(self, name, path, host):
        rows, self.last_top = pprof_top(host.base + path)
        return rows and rows[0][0] == name


LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"


class ProcessesTest(TestCase):
    def test_namespace_late_start_and_exit(self):
        # A: an ordinary process. B: its own mount namespace, with its own
        # copy of libc bind-mounted over the usual path (another inode:
        # probes on the host's file would never fire there).
        copy = self.path("libc.so.6")
        shutil.copy(LIBC, copy)
        a = WaitingWorkload([workload("leak"), "--control"])
        b = WaitingWorkload(["unshare", "-m", "--propagation", "private", "sh", "-c",
                             'mount --bind "$0" %s && exec "$@"' % LIBC, copy, workload("leak"), "--control"])
        host = Host(["--comm", "^leak$"])
        c = None
        try:
            self.assertNotEqual(self.libc_inode(a.pid), self.libc_inode(b.pid), "the namespace's libc is the host's")
            self.assertTrue(wait_for(lambda: {a.pid, b.pid} <= host.profiled()), host.metrics()[:3000])
            # C starts after memwatch.
            c = WaitingWorkload([workload("leak"), "--control"])
            self.assertTrue(wait_for(lambda: c.pid in host.profiled()), host.metrics()[:3000])
            for w in (a, b, c):
                w.go()
            # Each leaks steadily next to a 4 MiB cache: once its live heap
            # passes 12 MiB, leak_site holds most of it.
            def leaking(w):
                live = sample_value(host.metrics(), "memwatch_process_live_heap_bytes", w.pid)
                return live is not None and live > 12 << 20
            for w in (a, b, c):
                self.assertTrue(wait_for(lambda: leaking(w), timeout=60), "pid %d: %s" % (w.pid, host.metrics()[:3000]))
                rows, out = pprof_top("%s/debug/pprof/heap?pid=%d" % (host.base, w.pid))
                self.assertEqual(rows[0][0], "leak_site", out)
            # A exits: it leaves /metrics.
            a.kill()
            self.assertTrue(wait_for(lambda: a.pid not in host.tracked()))
            self.assertIn(b.pid, host.profiled())
            status, body = host.get("/debug/pprof/heap?pid=%d" % a.pid)
            self.assertEqual(status, 404, body)
        finally:
            host.stop()
            for w in (a, b, c):
                if w:
                    w.kill()

    @staticmethod
    def libc_inode(pid):
        with open("/proc/%d/maps" % pid) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[5] == LIBC:
                    return fields[4]
        return None


class VerdictTest(TestCase):
    def test_each_profiled_process_gets_its_verdict(self):
        """--all diagnoses every process it profiles: a verdict, with its
        evidence and the knob of the allocator in use, when the process
        exits and, for the ones still there, when memwatch stops; and each
        one's timeline (--timeline FILE: FILE with -PID)."""
        thrasher = WaitingWorkload(["env", JEMALLOC_THRASH, workload("thrash-jemalloc"), "--seconds", "5"])
        leaker = WaitingWorkload([workload("leak"), "--control"])
        timeline = self.path("t.json")
        host = Host(["--comm", "^(leak|thrash-jemalloc)$", "-i", "1", "--timeline", timeline])
        try:
            self.assertTrue(wait_for(lambda: {thrasher.pid, leaker.pid} <= host.profiled()),
                            host.metrics()[:3000])
            leaker.go()
            thrasher.go()
            rc, _, err = thrasher.finish()
            self.assertEqual(rc, 0, err)
            # The thrasher's verdict as it leaves (it exits, memwatch notices).
            self.assertTrue(wait_for(lambda: thrasher.pid not in host.tracked(), timeout=10))
        finally:
            status, err = host.stop()
            leaker.kill()
            thrasher.kill()
        self.assertEqual(status, 0, err)
        lines = err.splitlines()

        def lines_of(pid):
            prefix = "memwatch: pid %d (" % pid
            return [line[line.index("): ") + 3:] for line in lines if line.startswith(prefix) and "): " in line]

        thrash = lines_of(thrasher.pid)
        self.assertTrue(thrash and thrash[0].startswith("verdict: madvise thrash"), err)
        self.assertTrue(any(l.startswith("knob: ") and "dirty_decay_ms" in l for l in thrash), err)
        # The thrasher's verdict came before memwatch's end, the leaker's after.
        done = next(i for i, line in enumerate(lines) if line.startswith("memwatch: done after"))
        first = next(i for i, line in enumerate(lines) if line.startswith("memwatch: pid %d (" % thrasher.pid))
        self.assertLess(first, done, err)
        leak = lines_of(leaker.pid)
        self.assertTrue(leak and re.match(r"verdict: leak: .*top site leak_site$", leak[0]), err)
        for w in (thrasher, leaker):
            with open(self.path("t-%d.json" % w.pid)) as f:
                tl = json.load(f)
            self.assertEqual(tl["pid"], w.pid)
            self.assertGreaterEqual(len(tl["intervals"]), 3, tl)
        with open(self.path("t-%d.json" % thrasher.pid)) as f:
            thrash_tl = json.load(f)
        self.assertTrue(any(p["refault_bytes"] > 0 for p in thrash_tl["intervals"]), thrash_tl)


def own_value(metrics, name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), metrics, re.M)
    return float(m.group(1)) if m else None


def heap_losses(metrics):
    return sum(float(v) for v in re.findall(r'^memwatch_lost_events_total\{side="heap"[^}]*\} (\S+)$', metrics, re.M))


class ManyProcessesTest(TestCase):
    PAIRS, SIZE = 5000, 4096

    def test_memory_stays_bounded(self):
        """Short-lived profiled processes one batch after another: what
        memwatch keeps for each goes when it exits (the unwinding state of
        every exited process was once kept, 70 KiB each)."""
        churn = os.path.join(ROOT, ".output", "churn")
        host = Host(["--comm", "^churn$"])

        def batches(n, size=4):
            pids = set()
            for _ in range(n // size):
                ws = [WaitingWorkload([churn, "--pairs", str(self.PAIRS), "--size", str(self.SIZE)])
                      for _ in range(size)]
                try:
                    self.assertTrue(wait_for(lambda: {w.pid for w in ws} <= host.profiled(), step=0.05),
                                    host.metrics()[:2000])
                    for w in ws:
                        w.go()
                    for w in ws:
                        rc, _, err = w.finish()
                        self.assertEqual(rc, 0, err)
                finally:
                    for w in ws:
                        w.kill()
                pids |= {w.pid for w in ws}
            return pids

        try:
            batches(20)
            before = host.metrics()
            pids = batches(160)
            self.assertTrue(wait_for(lambda: not (pids & host.tracked())), "exited processes still tracked")
            after = host.metrics()
            stacks = [own_value(m, "memwatch_stacks_total") + heap_losses(m) for m in (before, after)]
            rss = [own_value(m, "memwatch_resident_memory_bytes") for m in (before, after)]
            # Each allocation is sampled with probability p: the loops' samples
            # alone are Binomial(160 * PAIRS, p), each a stack or a counted
            # loss; other stacks only add.
            n = 160 * self.PAIRS
            p = -math.expm1(-self.SIZE / DEFAULT_RATE)
            self.assertGreater(stacks[1] - stacks[0], n * p - 4 * math.sqrt(n * p * (1 - p)),
                               "stacks and losses: %s" % re.findall(r"^memwatch_(?:stacks|lost).*$", after, re.M))
            self.assertLess(rss[1] - rss[0], 4 << 20, "RSS %.1f -> %.1f MiB" % (rss[0] / 2**20, rss[1] / 2**20))
            self.assertLessEqual(len(host.tracked() & host.profiled()), 4)
        finally:
            rc, err = host.stop()
        self.assertEqual(rc, 0, err)


class BadRequestTest(TestCase):
    def test_errors_and_still_serving(self):
        host = Host(["--comm", "^nothing-matches-this$"])
        try:
            cases = [
                ("/debug/pprof/heap?pid=999999999", 404),
                ("/debug/pprof/heap?pid=1", 404),       # tracked, not profiled
                ("/debug/pprof/heap?pid=abc", 400),
                ("/debug/pprof/heap?pid=-1", 400),
                ("/debug/pprof/heap?seconds=0", 400),
                ("/debug/pprof/heap?seconds=99999", 400),
                ("/debug/pprof/heap?debug=1", 400),
                ("/debug/pprof/heap?frobnicate=1", 400),
                ("/metrics?x=1", 400),
                ("/etc/passwd", 404),
                ("/debug/pprof/../../etc/passwd", 404),
                ("/debug/pprof/heap?pid=" + "9" * 9000, 414),
            ]
            for path, want in cases:
                status, body = host.get(path)
                self.assertEqual(status, want, "%s: %r" % (path, body[:200]))
            # Many clients at once, some of them slow: refused or reset past
            # the connection limit, each tries again until served.
            results = []

            def client(i):
                deadline = time.monotonic() + 120
                while True:
                    try:
                        status = host.get("/metrics" if i % 2 else "/debug/pprof/", timeout=60)[0]
                    except Exception as e:
                        status = repr(e)
                    if status == 200 or time.monotonic() > deadline:
                        results.append(status)
                        return
                    time.sleep(0.05)
            slow = [socket.create_connection(("127.0.0.1", host.port)) for _ in range(20)]
            for s in slow:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")   # never finished
            threads = [threading.Thread(target=client, args=(i,)) for i in range(150)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            for s in slow:
                s.close()
            self.assertEqual(results, [200] * len(threads), results)
            self.assertEqual(host.get("/metrics")[0], 200)
            self.assertIsNone(host.proc.poll())
        finally:
            status, err = host.stop()
            self.assertEqual(status, 0, err)
