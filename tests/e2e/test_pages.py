"""The kernel side: thrash per allocator, leak and fragmentation verdicts
with counts checked against what the workloads did, latency correlation,
--pages-only without a single uprobe in the target, and the SVG plot.

The workloads and their settings follow the recipes in
shared/notes/allocators.md; each prints what it did (rounds, bytes leaked,
bytes kept, its own RssAnon) for the counts to be checked against.
"""
import csv
import json
import os
import re
import subprocess

from PIL import Image

from mwtest import Attached, Profile, TestCase, WaitingWorkload, memwatch, workload

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
        run = memwatch(["-s", "16k", "-o", self.path("leak.pb.gz"), "--", workload("leak")])
        self.assertEqual(run.returncode, 0, run.stderr)
        m = re.search(r"leak: \d+ objects, (\d+) bytes in ([\d.]+) s", run.stdout)
        leaked, seconds = int(m.group(1)), float(m.group(2))
        self.assertRegex(report_line(run, "verdict:"), r"^verdict: leak: .*top site leak_site$", run.stderr)
        site = evidence(run, r"site leak_site: \+[\d.]+ \w+ \([\d.]+ \w+ to ([\d.]+ \w+)\)")
        self.assertAlmostEqual(parse_bytes(site.group(1)) / leaked, 1.0, delta=0.1, msg=run.stderr)
        slope = evidence(run, r"linear fit: \+([\d.]+ \w+)/s")
        self.assertAlmostEqual(parse_bytes(slope.group(1)) / (leaked / seconds), 1.0, delta=0.1,
                               msg=run.stderr)
        # The sites that do not grow are not blamed.
        self.assertNotIn("churn_site", run.stderr)
        self.assertIsNone(evidence(run, "site cache_site"), run.stderr)
        # Faults inside a sampled malloc (whose return address the kernel's
        # uretprobe trampoline holds) unwind through to their caller.
        pages = Profile(self.path("leak.pages.pb.gz"))
        for loc, lines in pages.locations.items():
            self.assertTrue(lines, "location %d has no function: %s" % (loc, pages.text[:4000]))

    def test_fragmentation(self):
        run = memwatch(["-s", "8k", "-o", self.path("frag.pb.gz"), "--timeline", self.path("frag.csv"), "--",
                        workload("fragment")])
        self.assertEqual(run.returncode, 0, run.stderr)
        m = re.search(r"fragment: kept (\d+) objects, (\d+) bytes; live (\d+); rss_anon (\d+)", run.stdout)
        kept_bytes, live, rss = int(m.group(2)), int(m.group(3)), int(m.group(4))
        verdict = report_line(run, "verdict:")
        v = re.match(r"verdict: fragmentation: ([\d.]+ \w+) live in ([\d.]+ \w+) of RSS anon", verdict)
        self.assertIsNotNone(v, run.stderr)
        self.assertAlmostEqual(parse_bytes(v.group(1)) / live, 1.0, delta=0.1, msg=run.stderr)
        self.assertAlmostEqual(parse_bytes(v.group(2)) / rss, 1.0, delta=0.1, msg=run.stderr)
        # The survivors are the 512-byte objects.
        survivors = evidence(run, r"most in \[512 B, 1.0 KiB\): ([\d.]+ \w+)")
        self.assertIsNotNone(survivors, run.stderr)
        self.assertAlmostEqual(parse_bytes(survivors.group(1)) / kept_bytes, 1.0, delta=0.1, msg=run.stderr)
        self.assertIn("MALLOC_ARENA_MAX", report_line(run, "knob:"))
        # The size-class histogram, at the end and per interval: the kept
        # 512-byte objects in theirs, the array of pointers to all objects
        # (live minus kept) at 1 MiB and above, next to nothing elsewhere.
        array_bytes = live - kept_bytes
        sizes = report_line(run, "live heap by object size:")
        self.assertIsNotNone(sizes, run.stderr)
        small = re.search(r"256 B-1 KiB ([\d.]+ \w+) \((\d+)%\)", sizes)
        large = re.search(r">=1 MiB ([\d.]+ \w+) \((\d+)%\)", sizes)
        self.assertTrue(small and large, sizes)
        self.assertAlmostEqual(parse_bytes(small.group(1)) / kept_bytes, 1.0, delta=0.1, msg=sizes)
        self.assertAlmostEqual(parse_bytes(large.group(1)) / array_bytes, 1.0, delta=0.1, msg=sizes)
        self.assertGreaterEqual(int(small.group(2)) + int(large.group(2)), 98, sizes)
        with open(self.path("frag.csv")) as f:
            last = list(csv.DictReader(f))[-1]
        self.assertAlmostEqual(int(last["live_lt_1k_bytes"]) / kept_bytes, 1.0, delta=0.1, msg=last)
        self.assertAlmostEqual(int(last["live_ge_1m_bytes"]) / array_bytes, 1.0, delta=0.1, msg=last)
        others = sum(int(v) for k, v in last.items() if re.match(r"live_(lt|ge)_", k)
                     and k not in ("live_lt_1k_bytes", "live_ge_1m_bytes"))
        self.assertLess(others, 0.02 * live, last)


# Colours of the plot's series (user/timeline.c).
SERIES_COLOURS = {
    "live_heap": (0x00, 0x72, 0xb2), "rss_anon": (0xe6, 0x9f, 0x00), "purges": (0x00, 0x9e, 0x73),
    "refaults": (0xd5, 0x5e, 0x00), "probe_p50": (0xcc, 0x79, 0xa7), "probe_p99": (0x88, 0x22, 0x55),
}


class LatencyTest(TestCase):
    """handle_request alternates calm and thrashing phases of 3 s; half-second
    intervals keep the phase boundaries' mixed intervals few. memwatch and the
    workload get a CPU each: a p99 is the latency of a few calls, and memwatch
    unwinding page stacks on the workload's CPU would make a calm interval's
    p99 look like thrash (Pearson's r, over 24 intervals, follows such an
    outlier)."""

    def run_phases(self, env, extra=()):
        argv = [workload("thrash-jemalloc"), "--seconds", "12", "--phases", "3"]
        ncpu = os.cpu_count() or 1
        pin = ["taskset", "-c", str(ncpu - 1)] if ncpu > 1 else []
        run = memwatch(["-i", "0.5", "--latency-probe", workload("thrash-jemalloc") + ":handle_request",
                        "-o", self.path("heap.pb.gz")] + list(extra) + ["--"] + pin + ["env"] + env + argv,
                       cpus=set(range(ncpu - 1)) if ncpu > 1 else None)
        self.assertEqual(run.returncode, 0, run.stderr)
        return run

    def test_thrash_correlates_with_latency(self):
        run = self.run_phases([JEMALLOC_THRASH], ["--plot", self.path("t.svg"),
                                                  "--timeline", self.path("t.json")])
        line = report_line(run, "latency:")
        m = re.search(r"p99 vs refault rate: r = ([-\d.]+) \((\w+)\), p50: r = ([-\d.]+)", line or "")
        self.assertIsNotNone(m, run.stderr)
        self.assertGreater(float(m.group(1)), 0.8, line)
        self.assertEqual(m.group(2), "strong", line)
        self.assertGreater(float(m.group(3)), 0.8, line)
        self.check_timeline(self.path("t.json"))
        self.check_plot(self.path("t.svg"))

    def test_calm_has_no_correlation(self):
        run = self.run_phases([])
        self.assertRegex(report_line(run, "latency:") or "", r"correlation with thrash: none", run.stderr)

    def check_timeline(self, path):
        with open(path) as f:
            points = json.load(f)
        if isinstance(points, dict):
            points = next(v for v in points.values() if isinstance(v, list))
        thrashing = [p for p in points if p.get("refault_bytes", 0) > 100 << 20]
        calm = [p for p in points if p.get("refault_bytes", 0) == 0 and p.get("probe_calls")]
        self.assertGreaterEqual(len(thrashing), 6, points)
        self.assertGreaterEqual(len(calm), 6, points)
        self.assertGreater(min(p["probe_p50_us"] for p in thrashing), 2 * max(p["probe_p50_us"] for p in calm))

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
        w = self.thrash_waiting()
        m = Attached(w.pid, ["--pages-only", "-o", self.path("pages.pb.gz")])
        self.assertEqual(text_patches(w.pid, "libc.so"), 0)
        self.assertEqual(text_patches(w.pid, "thrash"), 0)
        w.go()
        status, out, _ = w.finish()
        run = m.wait()
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
        purged = parse_bytes(evidence(run, r"purges: \d+ \(([\d.]+ \w+)\)").group(1))
        # The page profile: purges from handle_request's free, faults from its touches.
        profile = Profile(self.path("pages.pb.gz"))
        self.assertEqual(profile.sample_types[:4], ["faults/count", "fault_space/bytes[dflt]", "purges/count",
                                                     "purge_space/bytes"])
        purging = [s for s in profile.samples if s[0][2] > 0]
        faulting = [s for s in profile.samples if s[0][0] > 0]
        self.assertTrue(any("handle_request" in profile.frames(s) for s in purging), profile.text[:3000])
        self.assertTrue(any("touch_pages" in profile.frames(s) or "handle_request" in profile.frames(s)
                            for s in faulting))
        # Sampled by bytes, the profile's purged bytes estimate the exact count.
        purge_bytes = sum(s[0][3] for s in profile.samples)
        self.assertAlmostEqual(purge_bytes / purged, 1.0, delta=0.1)
