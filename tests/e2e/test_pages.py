"""The kernel side: thrash per allocator, leak and fragmentation verdicts
with counts checked against what the workloads did, latency correlation,
--pages-only without a single uprobe in the target, and the SVG plot.

The workloads and their settings follow the recipes in
shared/notes/allocators.md; each prints what it did (rounds, bytes leaked,
bytes kept, its own RssAnon) for the counts to be checked against.
"""
import csv
import json
import math
import re
import subprocess

from PIL import Image

from mwtest import (MEMWATCH, Attached, Profile, Run, Running, TestCase, WaitingWorkload, memwatch, read_manifest,
                    sampled_tolerance, sampled_tolerance_bytes, workload)

GLIBC_THRASH = "GLIBC_TUNABLES=glibc.malloc.trim_threshold=0:glibc.malloc.mmap_threshold=4194304"
JEMALLOC_THRASH = "MALLOC_CONF=dirty_decay_ms:0,muzzy_decay_ms:0"
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def shared_library(name):
    """The path of a shared library, as the dynamic linker finds it."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.strip().startswith(name + " "):
            return line.split("=>")[1].strip()
    raise RuntimeError(name + " not installed (tools/deps.sh installs it)")


def parse_bytes(text):
    value, unit = text.split()
    return float(value) * UNITS[unit]


def rounding(text):
    """Half the last printed digit of a value like "40.3 MiB" or "6.0": what
    printing it may have cut off."""
    value = text.split()[0]
    decimals = len(value.split(".")[1]) if "." in value else 0
    unit = UNITS[text.split()[1]] if " " in text else 1
    return 0.5 * 10 ** -decimals * unit


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def least_squares(xs, ys):
    """Slope and R^2 of the least-squares line through (xs, ys)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    vx = sum((x - mx) ** 2 for x in xs)
    vy = sum((y - my) ** 2 for y in ys)
    cxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return cxy / vx, cxy * cxy / (vx * vy)


def pearson(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def report_line(run, prefix):
    """The first line of memwatch's report starting with prefix, without `memwatch: `."""
    for line in run.stderr.splitlines():
        if line.startswith("memwatch: " + prefix):
            return line[len("memwatch: "):]
    return None


def evidence(run, pattern):
    """The match of pattern in the first evidence line it matches."""
    for line in run.stderr.splitlines():
        if line.startswith("memwatch: evidence: "):
            m = re.search(pattern, line)
            if m:
                return m
    return None


def reported_refault_fraction(run):
    """The refault fraction memwatch reports (percent), or None."""
    m = evidence(run, r"refault fraction:? .*?(\d+)%")
    return int(m.group(1)) if m else None


class ThrashTest(TestCase):
    """Each allocator thrashes with the recipe's settings and stays calm
    with its defaults; the same program, only the environment differs."""

    def run_thrash(self, env, argv):
        run = memwatch(["-o", self.path("heap.pb.gz"), "--", "env"] + env + argv)
        self.assertEqual(run.returncode, 0, run.stderr)
        rounds = int(re.search(r"thrash: (\d+) rounds", run.stdout).group(1))
        return run, rounds

    def check_thrash(self, run, rounds, knob):
        self.assertRegex(report_line(run, "verdict:"), r"^verdict: madvise thrash", run.stderr)
        self.assertGreater(reported_refault_fraction(run), 80, run.stderr)
        # Every round frees its block and the allocator purges it at once.
        purges = int(evidence(run, r"purges: (\d+) \(").group(1))
        self.assertAlmostEqual(purges / rounds, 1.0, delta=0.1, msg=run.stderr)
        self.assertIn(knob, report_line(run, "knob:"))

    def check_calm(self, run, rounds):
        self.assertNotRegex(report_line(run, "verdict:"), "^verdict: madvise thrash", run.stderr)
        fraction = reported_refault_fraction(run)
        self.assertTrue(fraction is None or fraction <= 80, run.stderr)
        m = evidence(run, r"purges: ([\d.]+)/s, .* over ([\d.]+) s")
        self.assertLess(float(m.group(1)) * float(m.group(2)), 0.1 * rounds, run.stderr)

    def test_jemalloc(self):
        argv = [workload("thrash-jemalloc"), "--seconds", "4"]
        self.check_thrash(*self.run_thrash([JEMALLOC_THRASH], argv), "dirty_decay_ms")
        self.check_calm(*self.run_thrash([], argv))

    def test_static_jemalloc_gets_jemalloc_knobs(self):
        """jemalloc linked into the executable: the allocator discovery
        found is the one advised, with probes or without (--pages-only)."""
        argv = [workload("thrash-jemalloc-static"), "--seconds", "4"]
        self.check_thrash(*self.run_thrash([JEMALLOC_THRASH], argv), "dirty_decay_ms")
        run = memwatch(["--pages-only", "-o", self.path("pages.pb.gz"), "--", "env", JEMALLOC_THRASH] + argv)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertRegex(report_line(run, "verdict:"), r"^verdict: madvise thrash", run.stderr)
        self.assertIn("dirty_decay_ms", report_line(run, "knob:"))

    def test_glibc_trim_in_a_second_thread(self):
        argv = [workload("thrash"), "--thread", "--seconds", "4"]
        self.check_thrash(*self.run_thrash([GLIBC_THRASH], argv), "trim_threshold")
        self.check_calm(*self.run_thrash([], argv))

    def test_tcmalloc_aggressive_decommit(self):
        preload = "LD_PRELOAD=" + shared_library("libtcmalloc.so.4")
        argv = [workload("thrash"), "--seconds", "4"]
        self.check_thrash(*self.run_thrash([preload, "TCMALLOC_AGGRESSIVE_DECOMMIT=t"], argv),
                          "TCMALLOC_AGGRESSIVE_DECOMMIT")
        self.check_calm(*self.run_thrash([preload], argv))


class HeapVerdictTest(TestCase):
    def test_leak_names_the_site(self):
        rate, man = 16384, self.path("leak.manifest")
        run = memwatch(["-s", "16k", "-o", self.path("leak.pb.gz"), "--timeline", self.path("leak.csv"), "--",
                        workload("leak"), "--manifest", man])
        self.assertEqual(run.returncode, 0, run.stderr)
        leaked = read_manifest(man)["leak_site"]
        self.assertRegex(report_line(run, "verdict:"), r"^verdict: leak: .*top site leak_site$", run.stderr)
        # The site's live bytes at the end estimate what it leaked (4096-byte objects, all live).
        site = evidence(run, r"site leak_site: \+[\d.]+ \w+ \([\d.]+ \w+ to ([\d.]+ \w+)\)")
        tol = sampled_tolerance(leaked[2], 4096, rate) + rounding(site.group(1))
        self.assertLess(abs(parse_bytes(site.group(1)) - leaked[3]), tol, run.stderr)
        # The trend is the least-squares line through the timeline's live heap.
        rows = read_csv(self.path("leak.csv"))
        slope, r2 = least_squares([float(r["t_s"]) for r in rows], [float(r["live_heap_bytes"]) for r in rows])
        fit = evidence(run, r"linear fit: \+([\d.]+ \w+)/s, R\^2 ([\d.]+)")
        self.assertLessEqual(abs(parse_bytes(fit.group(1)) - slope), rounding(fit.group(1)), run.stderr)
        self.assertLessEqual(abs(float(fit.group(2)) - r2), rounding(fit.group(2)), run.stderr)
        # ... whose last point is the live heap at the end: every site's in-use bytes, estimated.
        truth = read_manifest(man)
        end_tol = math.sqrt(sum(sampled_tolerance(v[2], v[3] / v[2], rate) ** 2 for v in truth.values() if v[2]))
        self.assertLess(abs(float(rows[-1]["live_heap_bytes"]) - sum(v[3] for v in truth.values())), end_tol, rows[-1])
        # The sites that do not grow are not blamed.
        self.assertNotIn("churn_site", run.stderr)
        self.assertIsNone(evidence(run, "site cache_site"), run.stderr)
        # Faults inside a sampled malloc (whose return address the kernel's
        # uretprobe trampoline holds) unwind through to their caller.
        pages = Profile(self.path("leak.pages.pb.gz"))
        for loc, lines in pages.locations.items():
            self.assertTrue(lines, "location %d has no function: %s" % (loc, pages.text[:4000]))

    def test_fragmentation(self):
        """The live heap's size classes hold exactly what the workload keeps
        (it allocates nothing else): its 512-byte survivors, sampled, and the
        table of pointers to them, one block far above the sampling interval
        (weight 1: exact)."""
        rate = 8192
        run = memwatch(["-s", "8k", "-o", self.path("frag.pb.gz"), "--timeline", self.path("frag.csv"), "--",
                        workload("fragment")])
        self.assertEqual(run.returncode, 0, run.stderr)
        m = re.search(r"fragment: kept (\d+) objects, (\d+) bytes; live (\d+); rss_anon (\d+)", run.stdout)
        kept, kept_bytes, live, rss = (int(v) for v in m.groups())
        array_bytes = live - kept_bytes
        kept_tol = sampled_tolerance(kept, kept_bytes / kept, rate)
        verdict = report_line(run, "verdict:")
        v = re.match(r"verdict: fragmentation: ([\d.]+ \w+) live in ([\d.]+ \w+) of RSS anon", verdict)
        self.assertIsNotNone(v, run.stderr)
        self.assertLess(abs(parse_bytes(v.group(1)) - live), kept_tol + rounding(v.group(1)), run.stderr)
        # RSS is read, not sampled: the workload's reading and memwatch's last one.
        self.assertAlmostEqual(parse_bytes(v.group(2)) / rss, 1.0, delta=0.1, msg=run.stderr)
        survivors = evidence(run, r"most in \[512 B, 1.0 KiB\): ([\d.]+ \w+)")
        self.assertIsNotNone(survivors, run.stderr)
        self.assertLess(abs(parse_bytes(survivors.group(1)) - kept_bytes), kept_tol + rounding(survivors.group(1)),
                        run.stderr)
        self.assertIn("MALLOC_ARENA_MAX", report_line(run, "knob:"))
        # The size-class histogram, at the end and per interval: the kept
        # 512-byte objects in theirs, the array at 1 MiB and above, nothing elsewhere.
        sizes = report_line(run, "live heap by object size:")
        self.assertIsNotNone(sizes, run.stderr)
        classes = re.findall(r"([^:,]+?) ([\d.]+ \w+) \(\d+%\)", sizes.split(":", 1)[1])
        self.assertEqual([c.strip() for c, _ in classes], ["256 B-1 KiB", ">=1 MiB"], sizes)
        small, large = (value for _, value in classes)
        self.assertLess(abs(parse_bytes(small) - kept_bytes), kept_tol + rounding(small), sizes)
        self.assertLessEqual(abs(parse_bytes(large) - array_bytes), rounding(large), sizes)
        last = read_csv(self.path("frag.csv"))[-1]
        self.assertLess(abs(int(last["live_lt_1k_bytes"]) - kept_bytes), kept_tol, last)
        self.assertLessEqual(abs(int(last["live_ge_1m_bytes"]) - array_bytes), 1, last)
        others = {k: v for k, v in last.items() if re.match(r"live_(lt|ge)_", k)
                  and k not in ("live_lt_1k_bytes", "live_ge_1m_bytes")}
        self.assertEqual(set(others.values()), {"0"}, last)


# Colours of the plot's series (user/timeline.c).
SERIES_COLOURS = {
    "live_heap": (0x00, 0x72, 0xb2), "rss_anon": (0xe6, 0x9f, 0x00), "purges": (0x00, 0x9e, 0x73),
    "refaults": (0xd5, 0x5e, 0x00), "probe_p50": (0xcc, 0x79, 0xa7), "probe_p99": (0x88, 0x22, 0x55),
}


def strength(r):
    """The word memwatch gives a correlation (README: strong from 0.8)."""
    a = abs(r)
    return "strong" if a >= 0.8 else "moderate" if a >= 0.5 else "weak" if a >= 0.3 else "none"


class LatencyTest(TestCase):
    """handle_request is timed on every call while the test drives the
    workload through calm and thrashing phases (stdin commands), switching
    right after memwatch reports an interval. What is asserted holds at any
    machine speed and load: every call is counted; the reported r is
    Pearson's r over the intervals of the timeline memwatch wrote; and the
    function's median latency is higher in the intervals that refault than
    in those that do not: a thrashing request faults in 256 purged pages, a
    calm one none, hundreds of times slower, and a median over a run's
    intervals follows no single preempted call."""

    PHASES = ["thrash", "calm"] * 3
    PHASE_INTERVALS = 3
    INTERVAL = r"^memwatch: after [\d.]+s:"

    def run_phases(self, env, extra=()):
        binary = workload("thrash-jemalloc")
        mw = Running([MEMWATCH, "-i", "0.5", "--latency-probe", binary + ":handle_request", "-o",
                      self.path("heap.pb.gz"), "--timeline", self.path("t.json")] + list(extra) +
                     ["--", "env"] + env + [binary, "--control"])
        try:
            reported = 1
            self.assertTrue(mw.err.wait_count(self.INTERVAL, reported), mw.err.lines)
            for phase in self.PHASES:
                mw.send(phase)
                reported += self.PHASE_INTERVALS
                self.assertTrue(mw.err.wait_count(self.INTERVAL, reported), mw.err.lines)
            mw.send("quit")
            code, out, err = mw.finish()
        finally:
            mw.kill()
        self.assertEqual(code, 0, err)
        self.assertEqual(len(re.findall(r"^phase (thrash|calm) at", out, re.M)), len(self.PHASES), out)
        rounds = int(re.search(r"thrash: (\d+) rounds", out).group(1))
        with open(self.path("t.json")) as f:
            points = json.load(f)["intervals"]
        # Every call timed, in some interval.
        self.assertEqual(sum(p["probe_calls"] for p in points), rounds, points)
        return Run(mw.proc, out, err), points

    @staticmethod
    def correlatable(points):
        """The intervals memwatch correlates: with calls, and at least half
        the typical interval long (not the run's short tail)."""
        min_dt = median([p["dt_s"] for p in points if p["dt_s"] > 0]) / 2
        return [p for p in points if p["probe_calls"] and p.get("probe_p99_us") is not None
                and p["dt_s"] > 0 and p["dt_s"] >= min_dt]

    def test_thrash_correlates_with_latency(self):
        run, points = self.run_phases([JEMALLOC_THRASH], ["--plot", self.path("t.svg")])
        line = report_line(run, "latency:")
        m = re.search(r"p99 vs refault rate: r = ([-\d.]+) \((\w+)\), p50: r = ([-\d.]+) \(\w+\); "
                      r"p99 vs fault rate: r = [-\d.na]+; over (\d+) intervals, (\d+) refaulting", line or "")
        self.assertIsNotNone(m, run.stderr)
        used = self.correlatable(points)
        rate = [p["refault_bytes"] / p["dt_s"] for p in used]
        self.assertEqual(int(m.group(4)), len(used), line)
        self.assertEqual(int(m.group(5)), sum(1 for r in rate if r >= 4 << 20), line)
        r_p99 = pearson(rate, [p["probe_p99_us"] for p in used])
        r_p50 = pearson(rate, [p["probe_p50_us"] for p in used])
        self.assertLessEqual(abs(float(m.group(1)) - r_p99), rounding(m.group(1)) + 1e-6, line)
        self.assertLessEqual(abs(float(m.group(3)) - r_p50), rounding(m.group(3)) + 1e-6, line)
        self.assertEqual(m.group(2), strength(r_p99), line)
        # The phases show in the timeline: intervals that refault and intervals
        # that do not, and the function slower in the former.
        thrashing = [p for p in used if p["refault_bytes"] > 0]
        calm = [p for p in used if p["refault_bytes"] == 0]
        self.assertGreaterEqual(len(thrashing), self.PHASE_INTERVALS, points)
        self.assertGreaterEqual(len(calm), self.PHASE_INTERVALS, points)
        self.assertGreater(median([p["probe_p50_us"] for p in thrashing]),
                           median([p["probe_p50_us"] for p in calm]), points)
        self.check_plot(self.path("t.svg"))

    def test_calm_has_no_correlation(self):
        """jemalloc's defaults keep freed pages (purging only slowly, as they
        decay): the same phases refault in few intervals, and memwatch finds
        no thrash to correlate with, whatever r."""
        run, points = self.run_phases([])
        line = report_line(run, "latency:") or ""
        m = re.search(r"correlation with thrash: none \(refaults reached 4 MiB/s in (\d+) of them: no thrash\)",
                      line)
        self.assertIsNotNone(m, run.stderr)
        used = self.correlatable(points)
        hot = sum(1 for p in used if p["refault_bytes"] / p["dt_s"] >= 4 << 20)
        self.assertEqual(int(m.group(1)), hot, points)
        self.assertLess(hot, len(used) / 4, points)

    def check_plot(self, svg):
        with open(svg) as f:
            text = f.read()
        png = self.path("t.png")
        subprocess.run(["rsvg-convert", "-o", png, svg], check=True)
        pixels = Image.open(png).convert("RGB").getdata()
        counts = {}
        for px in pixels:
            counts[px] = counts.get(px, 0) + 1
        for name, colour in SERIES_COLOURS.items():
            self.assertIn('class="series %s"' % name, text)
            near = sum(n for px, n in counts.items() if max(abs(a - b) for a, b in zip(px, colour)) <= 24)
            self.assertGreater(near, 50, "series %s not drawn in the PNG" % name)


def text_patches(pid, path_part):
    """Bytes of path_part's executable mappings in pid that differ from the
    file: a uprobe is an int3 written over the file's text."""
    differing = 0
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb") as mem:
        for line in maps:
            fields = line.split()
            if len(fields) < 6 or "x" not in fields[1] or path_part not in fields[5]:
                continue
            start, end = (int(v, 16) for v in fields[0].split("-"))
            mem.seek(start)
            live = mem.read(end - start)
            with open(fields[5], "rb") as f:
                f.seek(int(fields[2], 16))
                disk = f.read(end - start)
            differing += sum(1 for a, b in zip(live, disk) if a != b)
    return differing


class PagesOnlyTest(TestCase):
    def thrash_waiting(self):
        return WaitingWorkload(["env", GLIBC_THRASH, workload("thrash"), "--thread", "--seconds", "4"])

    def test_default_mode_patches_malloc(self):
        """The control: without --pages-only, libc's text carries uprobes."""
        w = self.thrash_waiting()
        m = Attached(w.pid, ["-o", self.path("heap.pb.gz")])
        try:
            self.assertGreater(text_patches(w.pid, "libc.so"), 0)
        finally:
            m.interrupt()
            w.go()
            w.finish()

    def test_pages_only(self):
        rate = 1 << 20
        w = self.thrash_waiting()
        try:
            m = Attached(w.pid, ["--pages-only", "--page-sample-bytes", "1m", "-o", self.path("pages.pb.gz"),
                                 "--timeline", self.path("pages.csv")])
            self.assertEqual(text_patches(w.pid, "libc.so"), 0)
            self.assertEqual(text_patches(w.pid, "thrash"), 0)
            w.go()
            status, out, _ = w.finish()
            run = m.wait()
        finally:
            w.kill()
        self.assertEqual(status, 0)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertNotIn("probe sites", run.stderr)
        rounds = int(re.search(r"thrash: (\d+) rounds", out).group(1))
        self.assertRegex(report_line(run, "verdict:"), r"^verdict: madvise thrash", run.stderr)
        self.assertGreater(reported_refault_fraction(run), 80, run.stderr)
        # Each round touches its 1 MiB block afresh, pages the heap shrink purged.
        faults = evidence(run, r"page faults: (\d+) \(.*\), (\d+) of them")
        self.assertGreater(int(faults.group(2)), rounds * 256 * 0.8, run.stderr)
        self.assertGreaterEqual(int(faults.group(1)), int(faults.group(2)))
        # The page profile: purges from handle_request's free, faults from its touches.
        profile = Profile(self.path("pages.pb.gz"))
        self.assertEqual(profile.sample_types[:4], ["faults/count", "fault_space/bytes[dflt]", "purges/count",
                                                     "purge_space/bytes"])
        purging = [s for s in profile.samples if s[0][2] > 0]
        faulting = [s for s in profile.samples if s[0][0] > 0]
        self.assertTrue(any("handle_request" in profile.frames(s) for s in purging), profile.text[:3000])
        self.assertTrue(any("touch_pages" in profile.frames(s) or "handle_request" in profile.frames(s)
                            for s in faulting))
        # Sampled by bytes, the profile estimates the exact counts of the
        # timeline, within 4 standard errors: faults are pages (4096 bytes
        # each); purges vary in size, so their variance takes its bound.
        rows = read_csv(self.path("pages.csv"))
        self.assertEqual(int(faults.group(1)), sum(int(r["faults"]) for r in rows))
        fault_bytes = sum(int(r["fault_bytes"]) for r in rows)
        self.assertEqual(fault_bytes, 4096 * int(faults.group(1)))
        estimate = sum(s[0][1] for s in faulting)
        self.assertLess(abs(estimate - fault_bytes), sampled_tolerance(fault_bytes // 4096, 4096, rate),
                        "faulted %d bytes, estimated %d" % (fault_bytes, estimate))
        madvised = sum(int(r["purge_bytes"]) for r in rows)
        self.assertGreater(madvised, 0)
        estimate = sum(s[0][3] for s in purging if s[2].get("event") == "madvise")
        self.assertLess(abs(estimate - madvised), sampled_tolerance_bytes(madvised, rate),
                        "purged %d bytes with madvise, estimated %d" % (madvised, estimate))
