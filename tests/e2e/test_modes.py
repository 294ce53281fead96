"""Cheaper modes: uprobe sessions (return probes only for sampled calls), the
fallbacks without them, --alloc-only, and the --max-overhead duty cycle."""
import os
import re
import subprocess

from mwtest import (ROOT, Attached, Profile, TestCase, WaitingWorkload, code_byte, memwatch, probe_addresses,
                    read_manifest, sampled_tolerance, workload)

GT = workload("groundtruth")
CHURN = os.path.join(ROOT, ".output", "churn")


def counters(stderr):
    m = re.search(r"probe counters: samples (\d+), return halves (\d+)", stderr)
    return int(m.group(1)), int(m.group(2))


class SessionTest(TestCase):
    def test_return_half_only_for_sampled_calls(self):
        """1 KiB blocks sampled at 1 MiB: about one call in a thousand."""
        out, man = self.path("s.pb.gz"), self.path("s.manifest")
        run = memwatch(["-v", "-s", "1m", "--hook", "uprobe", "-o", out, "--", GT, "--big", "--manifest", man],
                       timeout=300)
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertIn("uprobe sessions", run.stderr)
        samples, returns = counters(run.stderr)
        calls = sum(v[0] for v in read_manifest(man).values())
        self.assertLess(samples, calls / 100)
        self.assertEqual(returns, samples, "only sampled calls run their return half")
        # Every sampled block got its address: the kept ones are all in use.
        prof = Profile(out)
        self.assertTrue(all("unknown live blocks 0" in c for c in prof.comments if "unknown live" in c))
        want = read_manifest(man)["gt_big_small"]
        got = prof.by_site()["gt_big_small"]
        self.assertLess(abs(got[3] - want[3]), sampled_tolerance(want[2], 1024, 1 << 20))

    def test_without_sessions_every_call_returns(self):
        run = memwatch(["-v", "--hook", "uprobe", "--attach-mode", "multi", "-s", "1m", "-o", self.path("m.pb.gz"), "--",
                        GT, "--big"],
                       timeout=300)
        self.assertEqual(run.returncode, 3, run.stderr)
        samples, returns = counters(run.stderr)
        self.assertGreater(returns, 100 * samples)

    def test_same_profile_in_every_mode(self):
        """-s 1: the ground truth is exact whether sessions, uprobe_multi or
        perf-event uprobes carry the probes."""
        for mode in ("session", "multi", "classic"):
            with self.subTest(mode=mode):
                out, man = self.path(mode + ".pb.gz"), self.path(mode + ".manifest")
                run = memwatch(["-v", "--hook", "uprobe", "--attach-mode", mode, "-s", "1", "--stack-mode", "fp", "-o", out, "--",
                                GT, "--manifest", man])
                self.assertEqual(run.returncode, 3, run.stderr)
                sites = Profile(out).by_site()
                for site, want in read_manifest(man).items():
                    self.assertEqual(sites.get(site), want, "%s %s" % (mode, site))


class AllocOnlyTest(TestCase):
    def test_alloc_only(self):
        out, man = self.path("a.pb.gz"), self.path("a.manifest")
        w = WaitingWorkload([GT, "--manifest", man, "--hold"])
        try:
            mw = Attached(w.pid, ["-v", "--hook", "uprobe", "--alloc-only", "-s", "1", "--stack-mode", "fp", "-o", out])
            probes = probe_addresses("".join(mw.err_lines), w.pid)
            self.assertIn("malloc", probes)
            self.assertNotIn("free", probes)
            # No breakpoint in free's code; malloc's probe is an int3.
            free_addr = self.libc_symbol(w.pid, "free")
            self.assertEqual(code_byte(w.pid, probes["malloc"]), 0xcc)
            for offset in range(16):
                self.assertNotEqual(code_byte(w.pid, free_addr + offset), 0xcc, "free+%d" % offset)
            w.go()
            # The manifest is written before the checksum line: all allocations are made.
            self.assertTrue(w.out.wait_for(r"^checksum="), w.err.lines)
            run = mw.interrupt()
            w.release()
            self.assertEqual(w.finish()[0], 3)
        finally:
            w.kill()
        self.assertEqual(run.returncode, 0, run.stderr)
        prof = Profile(out)
        self.assertEqual(prof.sample_types, ["alloc_objects/count", "alloc_space/bytes[dflt]"])
        self.assertTrue(any("in-use values are absent" in c for c in prof.comments))
        sites = prof.by_site()
        for site, want in read_manifest(man).items():
            self.assertEqual(sites.get(site, [0, 0])[:2], want[:2], site)

    def libc_symbol(self, pid, name):
        with open("/proc/%d/maps" % pid) as maps:
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and fields[5].endswith("libc.so.6") and fields[2] == "00000000":
                    base = int(fields[0].split("-")[0], 16)
                    path = fields[5]
                    break
        out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True).stdout
        for line in out.splitlines():
            addr, _, sym = line.split()
            if sym.split("@")[0] == name:
                return base + int(addr, 16)
        self.fail("no %s in libc" % name)


class BudgetTest(TestCase):
    """--max-overhead 10 on churn with work between calls (probes always on
    would double its time): the slowdown stays near 10%."""

    def churn(self, args=None):
        w = subprocess.Popen([CHURN, "--wait", "--pairs", "2000000", "--work", "5000"], stdout=subprocess.PIPE,
                             text=True)
        pid = int(w.stdout.readline().split()[1])
        mw = Attached(pid, args) if args is not None else None
        os.kill(pid, 10)
        out = w.communicate(timeout=120)[0]
        ns = float(re.search(r"ns_per_pair=([\d.]+)", out).group(1))
        return ns, (mw.wait() if mw else None)

    def test_budget(self):
        """Medians of three runs: a shared 2-CPU machine varies by 10% from
        run to run."""
        subprocess.run(["make", "-s", "-C", ROOT, ".output/churn"], check=True)
        out = self.path("b.pb.gz")
        base = sorted(self.churn()[0] for _ in range(3))[1]
        # The budget is for probes that trap on every call: the uprobe path.
        full, _ = self.churn(["--hook", "uprobe", "-o", self.path("full.pb.gz")])
        runs = [self.churn(["-v", "--hook", "uprobe", "--max-overhead", "10", "-o", out]) for _ in range(3)]
        for _, run in runs:
            self.assertEqual(run.returncode, 0, run.stderr)
        limited = sorted(ns for ns, _ in runs)[1]
        self.assertGreater(full / base, 1.4, "the workload must be costly to probe")
        self.assertLess(limited / base, 1.22, "slowdown %.2f with a 10%% budget (%.2f without)" %
                        (limited / base, full / base))
        prof = Profile(out)
        coverage = [c for c in prof.comments if c.startswith("duty cycle")]
        self.assertTrue(coverage, prof.comments)
        share = float(re.search(r"attached ([\d.]+)% of", coverage[0]).group(1))
        self.assertLess(share, 50)
        self.assertGreater(share, 1)
        self.assertGreater(prof.by_site().get("run", [0, 0])[0] + sum(v[0] for v in prof.by_site().values()), 0)
